//! Call lifetime: timeouts, delete delays, session limits, statistics, and
//! a thousand calls set up and torn down without leaking descriptors.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtpengine_tests::*;

/// Asserts the daemon no longer holds the RTP ports `rtp` nor their RTCP
/// ports.
fn assert_ports_free(rig: &Rig, rtp: &[SocketAddr]) {
    for a in rtp {
        for port in [a.port(), a.port() + 1] {
            let addr = SocketAddr::new(a.ip(), port);
            if let Err(e) = rig.try_bind(addr) {
                panic!("{addr} still in use: {e}");
            }
        }
    }
}

fn total(rig: &Rig, key: &str) -> i64 {
    get_int(&rig.statistics(), &["totalstatistics", key])
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn timeout_without_media() {
    require_root();
    let rig = Rig::new("timeout", &["--timeout", "2"]);
    let start = Instant::now();
    let (pa, pb) = rig.answered_call("to-1", Vec::new);
    assert!(
        wait_until(Duration::from_secs(6), || rig.list_calls().is_empty()),
        "call still listed after 6 s"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "timed out too early: {took:?}"
    );
    assert!(
        took <= Duration::from_secs(5),
        "timed out too late: {took:?}"
    );
    assert_ports_free(&rig, &[pa, pb]);
    assert_eq!(error_reason(&rig.query("to-1")), "Unknown call-id");
    assert_eq!(total(&rig, "timeoutsessions"), 1);
    assert_eq!(total(&rig, "managedsessions"), 1);
    assert_eq!(total(&rig, "regularterminatedsessions"), 0);
}

/// Media in one direction every 200 ms keeps the call past `--timeout`.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn media_keeps_call_alive() {
    require_root();
    let rig = Rig::new("alive", &["--timeout", "2"]);
    let (pa, pb) = rig.answered_call("alive-1", Vec::new);
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    let start = Instant::now();
    let mut seq = 0u16;
    while start.elapsed() < Duration::from_millis(4500) {
        let p = rtp(0, seq, u32::from(seq) * 160, 0x1234, 0);
        a.send_to(&p, pb).unwrap();
        expect_packet(&b, pa, &p);
        seq += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(rig.list_calls(), vec!["alive-1".to_string()]);
    assert_eq!(total(&rig, "timeoutsessions"), 0);
    // Once media stops, the timeout applies.
    assert!(
        wait_until(Duration::from_secs(5), || rig.list_calls().is_empty()),
        "call never timed out after media stopped"
    );
    assert_eq!(total(&rig, "timeoutsessions"), 1);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn offer_timeout() {
    require_root();
    let rig = Rig::new("offerto", &["--offer-timeout", "2"]);
    let start = Instant::now();
    let pa = sa(
        "203.0.113.1",
        media_ports(&rig.offer("ot-1", "ft", OFFER, vec![]))[0],
    );
    assert!(
        wait_until(Duration::from_secs(6), || rig.list_calls().is_empty()),
        "unanswered call still listed after 6 s"
    );
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1500), "too early: {took:?}");
    assert_ports_free(&rig, &[pa]);
    assert_eq!(total(&rig, "offertimeoutsessions"), 1);
    assert_eq!(total(&rig, "timeoutsessions"), 0);
}

/// A call without media sections holds no port, but it is a session: an
/// unanswered one ends on the offer timeout, an answered one on the media
/// timeout (no media can ever refresh it), not after an hour.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn calls_without_media_expire() {
    require_root();
    let rig = Rig::new("nomedia", &["--offer-timeout", "2", "--timeout", "2"]);
    let no_media = |ip: &str| format!("v=0\no=- 1 1 IN IP4 {ip}\ns=-\nc=IN IP4 {ip}\nt=0 0\n");
    let start = Instant::now();
    rig.offer("nm-offered", "ft", &no_media("198.51.100.1"), vec![]);
    rig.offer("nm-answered", "ft", &no_media("198.51.100.1"), vec![]);
    rig.answer("nm-answered", "ft", "tt", &no_media("198.51.100.3"), vec![]);
    let mut calls = rig.list_calls();
    calls.sort();
    assert_eq!(calls, ["nm-answered", "nm-offered"]);
    assert!(
        wait_until(Duration::from_secs(8), || rig.list_calls().is_empty()),
        "calls without media still listed: {:?}",
        rig.list_calls()
    );
    assert!(start.elapsed() >= Duration::from_millis(1500));
    assert_eq!(total(&rig, "offertimeoutsessions"), 1);
    assert_eq!(total(&rig, "timeoutsessions"), 1);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn delete_with_delay() {
    require_root();
    let rig = Rig::new("deldelay", &[]);
    let (pa, pb) = rig.answered_call("dd-1", Vec::new);
    let r = rig.ng_cmd(
        "delete",
        vec![
            ("call-id", Value::str("dd-1")),
            ("delete-delay", Value::Int(2)),
        ],
    );
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    assert!(
        r.contains_key(&b"tags"[..]),
        "delete reply has stats: {r:?}"
    );
    assert!(
        r.contains_key(&b"totals"[..]),
        "delete reply has stats: {r:?}"
    );
    let start = Instant::now();
    // Still there for now.
    let q = rig.query("dd-1");
    assert_eq!(get_str(&q, "result"), "ok", "{q:?}");
    assert!(
        wait_until(Duration::from_secs(5), || get_str(
            &rig.query("dd-1"),
            "result"
        ) == "error"),
        "call still queryable 5 s after delete with delay 2"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "removed too early: {took:?}"
    );
    assert!(rig.list_calls().is_empty());
    assert_ports_free(&rig, &[pa, pb]);
    assert_eq!(total(&rig, "regularterminatedsessions"), 1);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn delete_at_once_frees_ports() {
    require_root();
    let rig = Rig::new("delnow", &[]);
    let (pa, pb) = rig.answered_call("dn-1", Vec::new);
    rig.delete_now("dn-1");
    assert_eq!(error_reason(&rig.query("dn-1")), "Unknown call-id");
    assert!(rig.list_calls().is_empty());
    assert_ports_free(&rig, &[pa, pb]);
    assert_eq!(total(&rig, "regularterminatedsessions"), 1);
    assert_eq!(total(&rig, "managedsessions"), 1);
    // Deleting again: the call is gone.
    let r = rig.ng_cmd("delete", vec![("call-id", Value::str("dn-1"))]);
    assert_eq!(
        get_str(&r, "warning"),
        "Call-ID not found or tags didn't match"
    );
}

/// Upstream's `call_offer_session_limit()`: new calls are refused at the
/// limit, re-offers of existing calls proceed, rejections are counted.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn max_sessions() {
    require_root();
    let rig = Rig::new("maxsess", &["--max-sessions", "1"]);
    let (pa, _) = rig.answered_call("ms-1", Vec::new);
    let st = rig.statistics();
    assert_eq!(get_int(&st, &["currentstatistics", "sessionsown"]), 1);
    assert_eq!(get_int(&st, &["totalstatistics", "managedsessions"]), 0);

    let r = rig.cmd(sdp_cmd("offer", "ms-2", "ft", None, &crlf(OFFER), vec![]));
    assert_eq!(error_reason(&r), "Parallel session limit reached");
    let r = rig.cmd(sdp_cmd(
        "offer",
        "ms-3",
        "ft",
        None,
        &crlf(OFFER),
        vec![("supports", strs(&["load limit"]))],
    ));
    assert_eq!(get_str(&r, "result"), "load limit", "{r:?}");
    assert_eq!(get_str(&r, "message"), "Parallel session limit reached");
    assert!(!r.contains_key(&b"error-reason"[..]), "{r:?}");
    assert_eq!(rig.list_calls(), vec!["ms-1".to_string()]);
    assert_eq!(total(&rig, "rejectedsessions"), 2);

    // The existing call can still re-offer (same ports).
    let again = media_ports(&rig.offer("ms-1", "ft", OFFER, vec![]))[0];
    assert_eq!(again, pa.port());
    assert_eq!(total(&rig, "rejectedsessions"), 2);

    rig.delete_now("ms-1");
    let st = rig.statistics();
    assert_eq!(get_int(&st, &["currentstatistics", "sessionsown"]), 0);
    assert_eq!(get_int(&st, &["totalstatistics", "managedsessions"]), 1);
    assert_eq!(
        get_int(&st, &["totalstatistics", "regularterminatedsessions"]),
        1
    );
    rig.answered_call("ms-4", Vec::new);
    assert_eq!(rig.list_calls(), vec!["ms-4".to_string()]);
}

/// 1000 concurrent calls set up and deleted: no descriptor left open.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn thousand_calls_no_fd_leak() {
    require_root();
    let rig = Rig::new("scale", &[]);
    let pid = rig.daemon.pid();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
    assert_eq!(comm.trim(), "rtpengine", "pid {pid} is not the daemon");
    let before = fd_count(pid);

    const N: usize = 1000;
    for i in 0..N {
        rig.answered_call(&format!("scale-{i}"), Vec::new);
    }
    assert_eq!(rig.list_calls().len(), N);
    let during = fd_count(pid);
    assert!(
        during >= before + 4 * N,
        "expected ≥ 4 sockets per call: {before} → {during}"
    );
    for i in 0..N {
        rig.delete_now(&format!("scale-{i}"));
    }
    assert!(rig.list_calls().is_empty());
    let mut after = 0;
    let closed = wait_until(Duration::from_secs(1), || {
        after = fd_count(pid);
        after == before
    });
    assert!(closed, "fds before {before}, after {after}");
    let st = rig.statistics();
    assert_eq!(get_int(&st, &["currentstatistics", "sessionsown"]), 0);
    assert_eq!(
        get_int(&st, &["totalstatistics", "managedsessions"]),
        N as i64
    );
}
