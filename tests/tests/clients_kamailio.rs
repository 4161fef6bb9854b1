//! Real calls: SIPp UAC → Kamailio 5.6 (rtpengine module: offer on INVITE,
//! answer on replies with SDP, delete on BYE) → SIPp UAS with `-rtp_echo`,
//! media anchored on the daemon. Everything runs on 127.0.0.1 inside a network
//! namespace made by the test: nothing binds or sends outside it.
//!
//! Config and scenarios: tests/kamailio/kamailio.cfg, tests/sipp/uac_pcma.xml
//! (offers `8 101`, plays /usr/share/sip-tester/g711a.pcap),
//! tests/sipp/uas_pcma.xml (answers `8 101`). The daemon does not transcode,
//! hence PCMA on both sides.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtpengine_tests::*;

const CALLS: u32 = 10;
const NG: &str = "127.0.0.1:2223";
const KAMAILIO_PONG: &str = "rtpengine instance <udp:127.0.0.1:2223> found, support for it enabled";

/// A process started in the namespace; SIGTERM, then SIGKILL, on drop.
struct Proc {
    child: Child,
    what: &'static str,
}

impl Proc {
    fn spawn(what: &'static str, cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        Proc { child, what }
    }

    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} ignored SIGTERM; killing it", self.what);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `t` for the process to exit; its exit code.
    fn wait_exit(&mut self, t: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + t;
        loop {
            if let Some(st) = self.child.try_wait().ok().flatten() {
                return Some(st.code());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kills whatever this test left in its namespace (only processes it started
/// live there), so deleting the namespace leaves nothing behind.
struct NsReaper<'a>(&'a Netns);

impl Drop for NsReaper<'_> {
    fn drop(&mut self) {
        let Ok(pids) = sh(&["ip", "netns", "pids", &self.0.name]) else {
            return;
        };
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            eprintln!("killing leftover pid {pid} in {}", self.0.name);
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn log_file(path: &Path) -> std::fs::File {
    std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until something inside the namespace holds UDP `addr`.
fn wait_bound(ns: &Netns, addr: &str, what: &str, t: Duration) {
    let addr: SocketAddr = addr.parse().unwrap();
    let deadline = Instant::now() + t;
    while ns.run(move || UdpSocket::bind(addr).is_ok()) {
        assert!(Instant::now() < deadline, "{what} did not bind {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn work_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rtpengine-kamailio-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

fn need(cmd: &str, pkg: &str) {
    let found = Command::new("sh")
        .args([
            "-c",
            &format!("command -v {cmd} || test -x /usr/sbin/{cmd}"),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{cmd} is missing: apt-get install {pkg} (cargo xtask test does)"
    );
}

/// Per call-id and tag: the most ingress RTP packets seen on the tag's
/// streams (from `query`), and what `statistics` said last.
#[derive(Default, Debug)]
struct Seen {
    calls: BTreeMap<String, BTreeMap<String, i64>>,
    queries: u32,
}

fn list_calls(ng: &NgClient) -> Vec<String> {
    let r = ng
        .call(&dict([
            ("command", Value::str("list")),
            ("limit", Value::Int(1000)),
        ]))
        .expect("list");
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    match r.get(&b"calls"[..]) {
        Some(Value::List(l)) => l
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        other => panic!("list without calls: {other:?}"),
    }
}

fn poll(ng: &NgClient, seen: &mut Seen) {
    for call_id in list_calls(ng) {
        let Ok(q) = ng.call(&dict([
            ("command", Value::str("query")),
            ("call-id", Value::str(&call_id)),
        ])) else {
            continue;
        };
        if q.get(&b"result"[..]).and_then(Value::as_str) != Some("ok") {
            continue; // deleted between list and query
        }
        seen.queries += 1;
        let entry = seen.calls.entry(call_id).or_default();
        let Some(Value::Dict(tags)) = dig(&q, &["tags"]) else {
            continue;
        };
        for (tag, t) in tags {
            let tag = String::from_utf8_lossy(tag).into_owned();
            if tag.starts_with("<untagged") {
                continue;
            }
            let Value::Dict(t) = t else { continue };
            let mut packets = 0;
            if let Some(Value::List(medias)) = t.get(&b"medias"[..]) {
                for m in medias {
                    if let Some(Value::List(streams)) = m.get("streams") {
                        for s in streams {
                            if let Some(Value::Int(n)) =
                                s.get("stats").and_then(|st| st.get("packets"))
                            {
                                packets += n;
                            }
                        }
                    }
                }
            }
            let e = entry.entry(tag).or_insert(0);
            *e = (*e).max(packets);
        }
    }
}

/// The last "Successful call" / "Failed call" cumulative counters on SIPp's
/// final statistics screen.
fn sipp_counter(screen: &str, name: &str) -> Option<u64> {
    screen
        .lines()
        .rfind(|l| l.trim_start().starts_with(name))
        .and_then(|l| l.rsplit('|').next())
        .and_then(|v| v.trim().parse().ok())
}

/// A column of the last row of SIPp's `-trace_stat` CSV.
fn csv_last(csv: &str, column: &str) -> Option<u64> {
    let mut lines = csv.lines().filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next()?.split(';').collect();
    let idx = header.iter().position(|h| *h == column)?;
    let last: Vec<&str> = lines.next_back()?.split(';').collect();
    last.get(idx)?.trim().parse().ok()
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn kamailio_sipp_calls_through_daemon() {
    require_root();
    need("kamailio", "kamailio");
    need("sipp", "sip-tester");
    let pcap = Path::new("/usr/share/sip-tester/g711a.pcap");
    assert!(
        pcap.exists(),
        "{} is missing (package sip-tester)",
        pcap.display()
    );

    let ns = Netns::new("kam").expect("netns");
    let _reaper = NsReaper(&ns);
    let work = work_dir();
    let cfg = tests_dir().join("kamailio/kamailio.cfg");
    let uac_xml = tests_dir().join("sipp/uac_pcma.xml");
    let uas_xml = tests_dir().join("sipp/uas_pcma.xml");
    let daemon_log = work.join("daemon.log");
    let kam_log = work.join("kamailio.log");
    let diag = || {
        format!(
            "--- daemon log (tail)\n{}\n--- kamailio log\n{}\n(all logs in {})",
            tail(&read(&daemon_log), 60),
            tail(&read(&kam_log), 60),
            work.display()
        )
    };

    let mut daemon = Daemon::start_logged(
        Some(&ns.name),
        NG.parse().unwrap(),
        &["--delete-delay=0", "-i", "127.0.0.1"],
        "debug",
        &daemon_log,
    )
    .expect("daemon");

    let mut kam = Proc::spawn(
        "kamailio",
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "kamailio", "-DD", "-E", "-f"])
            .arg(&cfg)
            .arg("-Y")
            .arg(&work)
            .stdin(Stdio::null())
            .stdout(log_file(&work.join("kamailio.out")))
            .stderr(log_file(&kam_log)),
    );
    wait_bound(&ns, "127.0.0.1:5060", "kamailio", Duration::from_secs(10));
    // Kamailio pings every rtpengine node when its workers start and needs
    // exactly `pong` back; otherwise it logs the node as disabled.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read(&kam_log).contains(KAMAILIO_PONG) {
        assert!(
            kam.child.try_wait().ok().flatten().is_none(),
            "kamailio exited\n{}",
            diag()
        );
        assert!(
            Instant::now() < deadline,
            "kamailio never logged {KAMAILIO_PONG:?}\n{}",
            diag()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let klog = read(&kam_log);
    assert!(
        !klog.contains("disabled") && !klog.contains("did not respond"),
        "kamailio disabled the node\n{}",
        diag()
    );
    assert!(
        read(&daemon_log).contains("command=\"ping\""),
        "the daemon did not log Kamailio's ping\n{}",
        diag()
    );

    let calls = CALLS.to_string();
    let mut uas = Proc::spawn(
        "sipp uas",
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "sipp", "-sf"])
            .arg(&uas_xml)
            .args(["-i", "127.0.0.1", "-p", "5080"])
            .args(["-mi", "127.0.0.1", "-mp", "17000", "-rtp_echo"])
            .args(["-m", &calls, "-nostdin", "-trace_err"])
            .current_dir(&work)
            .stdin(Stdio::null())
            .stdout(log_file(&work.join("uas.out")))
            .stderr(log_file(&work.join("uas.err"))),
    );
    wait_bound(&ns, "127.0.0.1:5080", "sipp uas", Duration::from_secs(10));

    // Poll list + query over ng while the calls run.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        let ng = ns
            .run(|| NgClient::new(NG.parse().unwrap()))
            .expect("ng client");
        std::thread::spawn(move || {
            let mut seen = Seen::default();
            while !stop.load(Ordering::Relaxed) {
                poll(&ng, &mut seen);
                std::thread::sleep(Duration::from_millis(200));
            }
            (seen, ng)
        })
    };

    let stat_csv = work.join("uac_stat.csv");
    let uac = run_timeout(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "sipp", "127.0.0.1:5060", "-sf"])
            .arg(&uac_xml)
            .args(["-s", "echo", "-i", "127.0.0.1", "-p", "5070"])
            .args(["-mi", "127.0.0.1", "-mp", "16000"])
            .args(["-m", &calls, "-l", "5", "-r", "5", "-d", "3000"])
            .args(["-nostdin", "-trace_err", "-trace_stat", "-fd", "1", "-stf"])
            .arg(&stat_csv)
            .current_dir(&work),
        Duration::from_secs(120),
    )
    .expect("sipp uac");
    stop.store(true, Ordering::Relaxed);
    // Reuse the poller's client: cookies are `<pid>_<seq>`, so a second
    // NgClient in this process would repeat its cookies and get the daemon's
    // cached replies (the cache is keyed by cookie alone, as upstream's).
    let (seen, ng) = poller.join().expect("poller");
    let screen = &uac.stdout;
    println!(
        "{} queries; per call, tag → max ingress packets: {:#?}",
        seen.queries, seen.calls
    );

    assert_eq!(
        uac.code,
        Some(0),
        "sipp uac failed\n{}\n{}",
        tail(&uac.transcript(), 80),
        diag()
    );
    assert_eq!(
        sipp_counter(screen, "Successful call"),
        Some(u64::from(CALLS)),
        "{}",
        tail(screen, 40)
    );
    assert_eq!(
        sipp_counter(screen, "Failed call"),
        Some(0),
        "{}",
        tail(screen, 40)
    );
    let csv = read(&stat_csv);
    assert_eq!(
        csv_last(&csv, "SuccessfulCall(C)"),
        Some(u64::from(CALLS)),
        "{csv}"
    );
    assert_eq!(csv_last(&csv, "FailedCall(C)"), Some(0), "{csv}");

    // Every call was anchored on the daemon and carried RTP both ways: the
    // caller's tag received the pcap, the callee's tag the UAS's echo.
    let both_ways: BTreeSet<&String> = seen
        .calls
        .iter()
        .filter(|(_, tags)| tags.len() == 2 && tags.values().all(|&p| p > 0))
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        both_ways.len(),
        CALLS as usize,
        "calls with RTP relayed both ways (per call: tag → max ingress packets): {:#?}\n{}",
        seen,
        diag()
    );

    let stats = ng
        .call(&dict([("command", Value::str("statistics"))]))
        .expect("statistics");
    let relayed = dig_int(&stats, &["statistics", "totalstatistics", "relayedpackets"]);
    assert!(
        relayed.is_some_and(|n| n > 0),
        "totalstatistics.relayedpackets: {relayed:?} in {stats:?}"
    );
    println!("statistics.totalstatistics.relayedpackets = {relayed:?}");
    let managed = dig_int(
        &stats,
        &["statistics", "totalstatistics", "managedsessions"],
    );
    assert_eq!(managed, Some(i64::from(CALLS)), "{stats:?}");

    // The BYEs went through Kamailio's rtpengine_delete: no call is left.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut left = list_calls(&ng);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = list_calls(&ng);
    }
    assert!(
        left.is_empty(),
        "calls left after the BYEs: {left:?}\n{}",
        diag()
    );

    // The UAS saw all calls (it exits after -m calls, 0 when all succeeded).
    let uas_code = uas.wait_exit(Duration::from_secs(15));
    assert_eq!(
        uas_code,
        Some(Some(0)),
        "sipp uas\n{}\n{}",
        tail(&read(&work.join("uas.out")), 40),
        read(&work.join("uas.err"))
    );

    assert!(daemon.alive(), "daemon died\n{}", diag());
    let klog = read(&kam_log);
    assert!(
        !klog.contains("TEST-FAIL"),
        "kamailio: rtpengine call failed\n{}",
        diag()
    );
    kam.stop();
    drop(daemon);
    let _ = std::fs::remove_dir_all(&work);
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
