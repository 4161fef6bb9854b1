//! Starting the real `rtpengine` binary and stopping it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::netns::in_netns;
use crate::ng::NgClient;
use crate::util::free_udp_port;

/// Path of the daemon binary (`RTPENGINE_BIN`, else next to the test binary).
pub fn daemon_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RTPENGINE_BIN") {
        return PathBuf::from(p);
    }
    // target/debug/deps/<test> → target/debug/rtpengine
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("rtpengine"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --bins), or use cargo xtask test",
        bin.display()
    );
    bin
}

/// The daemon's command line: inside namespace `ns` when given, no config
/// file, foreground, logs on stderr, ng on `ng`, then `args`.
fn command(ns: Option<&str>, ng: SocketAddr, args: &[&str]) -> Command {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(daemon_bin());
            c
        }
        None => Command::new(daemon_bin()),
    };
    cmd.args(["--config-file=none", "--foreground", "--log-stderr"])
        .arg(format!("--listen-ng={ng}"))
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// A running daemon; killed on drop.
pub struct Daemon {
    child: Child,
    /// Its ng UDP address.
    pub ng: SocketAddr,
}

impl Daemon {
    /// Starts the daemon on loopback with a free ng port plus `args`.
    pub fn start(args: &[&str]) -> anyhow::Result<Daemon> {
        let port = free_udp_port();
        let ng: SocketAddr = ([127, 0, 0, 1], port).into();
        Self::start_with(None, ng, args)
    }

    /// Starts the daemon (inside network namespace `ns` when given) with ng on
    /// `ng` plus `args`, and waits until it answers ping.
    pub fn start_with(ns: Option<&str>, ng: SocketAddr, args: &[&str]) -> anyhow::Result<Daemon> {
        let mut cmd = command(ns, ng, args);
        if std::env::var_os("RTPENGINE_TEST_LOG").is_none() {
            cmd.stderr(Stdio::null());
        }
        Self::spawn(cmd, ns, ng)
    }

    /// [`Daemon::start`] with at most `nofile` open descriptors (soft and
    /// hard limit), as a host or container would cap it.
    pub fn start_with_nofile(args: &[&str], nofile: u64) -> anyhow::Result<Daemon> {
        let ng: SocketAddr = ([127, 0, 0, 1], free_udp_port()).into();
        let mut cmd = command(None, ng, args);
        if std::env::var_os("RTPENGINE_TEST_LOG").is_none() {
            cmd.stderr(Stdio::null());
        }
        {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: setrlimit is async-signal-safe; it only touches the
            // child between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: nofile,
                        rlim_max: nofile,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Self::spawn(cmd, None, ng)
    }

    /// Spawns `cmd` and waits until the daemon answers ping on `ng`.
    fn spawn(mut cmd: Command, ns: Option<&str>, ng: SocketAddr) -> anyhow::Result<Daemon> {
        let child = cmd.spawn().context("spawning rtpengine")?;
        let mut d = Daemon { child, ng };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = d.child.try_wait()? {
                bail!("rtpengine exited during startup: {st}");
            }
            let ok = match ns {
                Some(ns) => in_netns(ns, move || ping_once(ng)),
                None => ping_once(ng),
            };
            if ok {
                return Ok(d);
            }
            if Instant::now() > deadline {
                bail!("rtpengine did not answer ping on {ng}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Like [`Daemon::start_with`], but with `RTPENGINE_LOG=<filter>` (none
    /// when `filter` is empty: the daemon's own level) and stderr appended
    /// to `log` (to assert on what the daemon logged).
    pub fn start_logged(
        ns: Option<&str>,
        ng: SocketAddr,
        args: &[&str],
        filter: &str,
        log: &std::path::Path,
    ) -> anyhow::Result<Daemon> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = command(ns, ng, args);
        cmd.env_remove("RTPENGINE_LOG")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(file);
        if !filter.is_empty() {
            cmd.env("RTPENGINE_LOG", filter);
        }
        Self::spawn(cmd, ns, ng)
    }

    /// Stops the daemon cleanly (SIGTERM, as an init system would) and waits
    /// for it; `Drop` kills it instead, like a crash.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.signal(libc::SIGTERM)?;
        self.wait(Duration::from_secs(10))
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: libc::c_int) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: plain kill(2) on our own child.
        if unsafe { libc::kill(pid, sig) } != 0 {
            bail!("kill: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` for the daemon to exit.
    pub fn wait(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait()? {
                return Ok(st);
            }
            if Instant::now() > deadline {
                bail!("rtpengine did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pings `ng` from the calling thread's namespace until it answers or
/// `timeout` passes (a daemon the test did not start itself: a container,
/// a detached daemon).
pub fn wait_pong(ng: SocketAddr, timeout: Duration) -> bool {
    crate::util::wait_until(timeout, || ping_once(ng))
}

fn ping_once(ng: SocketAddr) -> bool {
    let Ok(c) = NgClient::new(ng) else {
        return false;
    };
    let _ = c.sock.set_read_timeout(Some(Duration::from_millis(200)));
    c.raw(b"probe d7:command4:pinge")
        .is_ok_and(|r| r == b"probe d6:result4:ponge")
}

/// Number of open file descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/<pid>/fd")
        .count()
}

// ---------------------------------------------------------------------------
// Three namespaces for in-kernel forwarding (offload.rs, clients_kamailio.rs).
