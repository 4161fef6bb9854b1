//! Where log lines go, as upstream: `--foreground --log-stderr` → stderr;
//! `--foreground` alone → syslog, with warnings and worse also on stderr;
//! daemonized → syslog only. Syslog is caught on a `/dev/log` socket the
//! test binds in a private mount namespace (nothing reaches the host's
//! logger). Also `--log-facility`, `--log-name`, `--no-log-timestamps` and
//! `--log-level-<subsystem>`.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rtpengine_tests::*;

/// A fake `/dev` with a `log` socket and `null`, mounted over `/dev` for
/// the daemon only.
struct Syslog {
    dir: PathBuf,
    sock: UnixDatagram,
}

impl Syslog {
    fn new(tag: &str) -> Syslog {
        let dir = scratch_dir(&format!("rtpe-dev-{tag}"));
        std::fs::write(dir.join("null"), b"").unwrap();
        let sock = UnixDatagram::bind(dir.join("log")).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Syslog { dir, sock }
    }

    /// The daemon with `args`, `/dev` replaced in its own mount namespace.
    fn command(&self, args: &[&str]) -> Command {
        let d = self.dir.display();
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind /dev/null {d}/null && mount --rbind {d} /dev && exec \"$0\" \"$@\""
            ))
            .arg(daemon_bin())
            .args(["--config-file=none", "--table=-1", "--interface=127.0.0.1"])
            .args(args)
            .env_remove("RTPENGINE_LOG")
            .stdin(Stdio::null());
        c
    }

    /// Messages received until `pred` holds for one (or 10 s pass).
    fn until(&self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; 65536];
        while Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = pred(&m);
                got.push(m);
                if done {
                    break;
                }
            }
        }
        got
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ping(ng: std::net::SocketAddr) {
    assert!(wait_pong(ng, Duration::from_secs(10)), "no pong from {ng}");
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn foreground_logs_to_syslog_and_warnings_to_stderr() {
    require_root();
    let log = Syslog::new("fg");
    let ng = sa("127.0.0.1", free_udp_port());
    let stderr_path = log.dir.join("stderr.txt");
    let mut child = log
        .command(&[
            "--foreground",
            &format!("--listen-ng={ng}"),
            "--log-facility=local3",
            "--log-name=rtpe-test",
            "--log-level-control=7",
            // Unknown to this daemon: warned about, so a warning is logged.
            "--homer-id=5",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    ping(ng);
    let got = log.until(|m| m.contains("Received command"));
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let all = got.join("\n");
    // local3 = 19: <19*8 + severity>; the ident is --log-name with the pid.
    assert!(
        got.iter().any(|m| m.starts_with("<157>")
            && m.contains("rtpe-test[")
            && m.contains("Startup complete")),
        "{all}"
    );
    // --log-level-control=7: the control subsystem's debug lines…
    assert!(got.iter().any(|m| m.contains("Received command")), "{all}");
    assert!(
        got.iter()
            .any(|m| m.contains("homer-id") && m.starts_with("<156>")),
        "{all}"
    );
    // …stderr has only the warning.
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(stderr.contains("homer-id"), "{stderr}");
    assert!(!stderr.contains("Startup complete"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "no colour in a file: {stderr:?}");
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn daemonized_logs_to_syslog_only() {
    require_root();
    let log = Syslog::new("bg");
    let ng = sa("127.0.0.1", free_udp_port());
    let pidfile = log.dir.join("rtpengine.pid");
    let mut cmd = log.command(&[
        &format!("--listen-ng={ng}"),
        &format!("--pidfile={}", pidfile.display()),
        // Even with -E: a detached daemon has no stderr (as upstream).
        "--log-stderr",
    ]);
    let ran = run_timeout(&mut cmd, Duration::from_secs(10)).unwrap();
    assert_eq!(
        ran.code,
        Some(0),
        "the parent exits at once: {}",
        ran.transcript()
    );
    ping(ng);
    let got = log.until(|m| m.contains("Startup complete"));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: plain kill(2) on the daemon we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(
        wait_until(Duration::from_secs(10), || !pidfile.exists()),
        "pidfile left"
    );
    assert!(
        got.iter().any(|m| m.starts_with("<29>")
            && m.contains("rtpengine[")
            && m.contains("Startup complete")),
        "{got:#?}"
    );
    assert_eq!(ran.stderr, "", "nothing on the terminal");
}

/// A daemon that fails after detaching (its ng port is taken) still
/// reports it: the parent prints why and exits 1, as upstream's start
/// fails before it detaches.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn daemonized_startup_failure_reaches_the_terminal() {
    require_root();
    let log = Syslog::new("bgfail");
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let ng = taken.local_addr().unwrap();
    let mut cmd = log.command(&[&format!("--listen-ng={ng}")]);
    let ran = run_timeout(&mut cmd, Duration::from_secs(10)).unwrap();
    assert_eq!(ran.code, Some(1), "{}", ran.transcript());
    assert!(
        ran.stderr.contains("binding ng socket") && ran.stderr.contains(&ng.to_string()),
        "{}",
        ran.transcript()
    );
}

#[test]
fn stderr_without_timestamps() {
    let ng = sa("127.0.0.1", free_udp_port());
    let log = std::env::temp_dir().join(format!("rtpe-nots-{}.log", std::process::id()));
    let mut d = Daemon::start_logged(None, ng, &["--no-log-timestamps"], "", &log).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    d.terminate().unwrap();
    let _ = std::fs::remove_file(&log);
    let first = text.lines().next().unwrap_or_default().trim_start();
    assert!(
        first.starts_with("INFO") || first.starts_with("WARN"),
        "{text}"
    );
}
