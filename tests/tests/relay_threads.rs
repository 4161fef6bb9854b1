//! The relay's worker threads (`relay::poller`): `--media-num-threads`, the
//! `--media-coalesce` bound on the added delay, and edge-triggered draining
//! that never strands queued packets.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rtpengine_tests::*;

/// A daemon with `args` and one answered call: (rig, pa, pb, a, b), where
/// phone B sends to `pa` and phone A to `pb`.
fn one_call(tag: &str, args: &[&str]) -> (Rig, SocketAddr, SocketAddr, UdpSocket, UdpSocket) {
    let rig = Rig::new(tag, args);
    let (pa, pb) = rig.answered_call(&format!("{tag}-1"), Vec::new);
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    (rig, pa, pb, a, b)
}

/// Sends `p` from `a` to `to` and returns how long it took to reach `b`.
fn relay_delay(
    a: &UdpSocket,
    to: SocketAddr,
    b: &UdpSocket,
    from: SocketAddr,
    p: &[u8],
) -> Duration {
    let t0 = Instant::now();
    a.send_to(p, to).unwrap();
    expect_packet(b, from, p);
    t0.elapsed()
}

/// The daemon's threads named `rtpe-media-*`.
fn media_threads(pid: u32) -> usize {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir");
    dir.filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|c| c.starts_with("rtpe-media-"))
        .count()
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn media_num_threads_sets_the_relay_thread_count() {
    require_root();
    let rig = Rig::new("mthr3", &["--media-num-threads=3"]);
    assert_eq!(media_threads(rig.daemon.pid()), 3);
    // --num-threads is the default for it, as upstream.
    let rig = Rig::new("mthr2", &["--num-threads=2"]);
    assert_eq!(media_threads(rig.daemon.pid()), 2);
}

/// An idle relay forwards a packet at once; one arriving while the thread
/// waits out its coalescing interval (100 ms here, to make it observable)
/// waits at most that long.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn coalescing_delays_packets_at_most_the_interval() {
    require_root();
    let (_rig, pa, pb, a, b) = one_call(
        "coal",
        &[
            "--media-coalesce=100000",
            "--media-num-threads=1",
            "--endpoint-learning=immediate",
        ],
    );

    let d = relay_delay(&a, pb, &b, pa, &rtp(0, 1, 160, 0x1111, 1));
    assert!(d < Duration::from_millis(50), "idle relay took {d:?}");
    // The thread now waits ~100 ms before it looks again.
    let d = relay_delay(&a, pb, &b, pa, &rtp(0, 2, 320, 0x1111, 2));
    assert!(
        (Duration::from_millis(40)..Duration::from_millis(250)).contains(&d),
        "packet during the interval took {d:?}"
    );
    // Idle again (the interval is over and nothing came): at once.
    std::thread::sleep(Duration::from_millis(300));
    let d = relay_delay(&b, pa, &a, pb, &rtp(0, 7, 160, 0x2222, 3));
    assert!(d < Duration::from_millis(50), "idle relay took {d:?}");
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn coalescing_off_relays_every_packet_at_once() {
    require_root();
    let (_rig, pa, pb, a, b) = one_call(
        "nocoal",
        &[
            "--media-coalesce=0",
            "--media-num-threads=1",
            "--endpoint-learning=immediate",
        ],
    );
    for seq in 0..20 {
        let d = relay_delay(&a, pb, &b, pa, &rtp(0, seq, 160, 0x1111, 1));
        assert!(d < Duration::from_millis(50), "packet {seq} took {d:?}");
    }
}

/// A burst far larger than one receive batch, then silence: the socket is
/// registered edge-triggered, so nothing but the relay's own bookkeeping
/// brings it back for the rest; all of it must arrive, in order, and the
/// other direction must keep flowing meanwhile.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_burst_is_relayed_in_full_without_further_packets() {
    require_root();
    let (rig, pa, pb, a, b) = one_call(
        "burst",
        &["--media-num-threads=1", "--endpoint-learning=immediate"],
    );
    // Learn both ends first.
    relay_delay(&a, pb, &b, pa, &rtp(0, 0, 0, 0x1111, 0));
    relay_delay(&b, pa, &a, pb, &rtp(0, 0, 0, 0x2222, 0));

    const BURST: u16 = 100;
    for seq in 1..=BURST {
        a.send_to(&rtp(0, seq, 160, 0x1111, 1), pb).unwrap();
    }
    let back = relay_delay(&b, pa, &a, pb, &rtp(0, 1, 160, 0x2222, 2));
    assert!(
        back < Duration::from_millis(500),
        "reverse direction took {back:?}"
    );
    for seq in 1..=BURST {
        expect_packet(&b, pa, &rtp(0, seq, 160, 0x1111, 1));
    }
    let q = rig.query("burst-1");
    assert_eq!(
        get_int(&q, &["totals", "RTP", "packets"]),
        i64::from(BURST) + 3,
        "{q:?}"
    );
}

/// The largest datagram the relay takes (`MAX_PACKET` − 1 bytes) goes
/// through intact; a longer one is truncated by the kernel into the receive
/// buffer, so it is dropped and counted as an error, and the stream goes on.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn oversized_datagrams_are_counted_and_dropped() {
    require_root();
    let (rig, pa, pb, a, b) = one_call("oversize", &["--endpoint-learning=immediate"]);

    let mut largest = rtp(0, 1, 160, 0x1111, 1);
    largest.resize(8999, 0xab);
    a.send_to(&largest, pb).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, src) = b.recv_from(&mut buf).expect("the largest datagram");
    assert_eq!(src, pa);
    assert!(
        buf[..n] == largest[..],
        "{n} bytes arrived, content differs"
    );
    let mut too_big = rtp(0, 2, 320, 0x1111, 2);
    too_big.resize(9000, 0xcd);
    a.send_to(&too_big, pb).unwrap();
    expect_silence(&b);
    let next = rtp(0, 3, 480, 0x1111, 3);
    relay_delay(&a, pb, &b, pa, &next);

    let q = rig.query("oversize-1");
    assert_eq!(get_int(&q, &["totals", "RTP", "errors"]), 1, "{q:?}");
    // Only relayed datagrams count as packets.
    assert_eq!(get_int(&q, &["totals", "RTP", "packets"]), 2, "{q:?}");
}

/// CPU time (ns) the daemon's thread `name` has run so far.
fn thread_cpu_ns(pid: u32, name: &str) -> u64 {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir");
    for t in dir.filter_map(Result::ok) {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let s = std::fs::read_to_string(t.path().join("schedstat")).expect("schedstat");
            return s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .expect("run time");
        }
    }
    panic!("no thread {name}");
}

/// A pass with more work than half an interval is split with the helper
/// thread (all cores work under load), and every packet still arrives
/// intact and in order. The burst lasts longer than an interval whatever the
/// machine's speed (sending a packet costs the test about what relaying it
/// costs the daemon), so some pass always holds more than half an interval
/// of work.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_heavy_pass_is_shared_with_the_helper_thread() {
    require_root();
    let rig = Rig::new(
        "split",
        &["--media-num-threads=2", "--endpoint-learning=immediate"],
    );
    const CALLS: u16 = 200;
    // More than one receive batch per socket: carried-over sockets too.
    const EACH: u16 = 40;
    let targets: Vec<(SocketAddr, SocketAddr)> = (0..CALLS)
        .map(|c| rig.answered_call(&format!("split-{c}"), Vec::new))
        .collect();
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    // Beyond rmem_max (root): the whole burst may queue up at B.
    set_int_opt(
        &b,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        32 << 20,
        "SO_RCVBUFFORCE",
    );
    let pid = rig.daemon.pid();
    let before = thread_cpu_ns(pid, "rtpe-media-1");
    let pkt = |c: u16, seq: u16| rtp(0, seq, 160 * u32::from(seq), 0x1000 + u32::from(c), c as u8);
    for seq in 0..EACH {
        for (c, (_, pb)) in (0..CALLS).zip(&targets) {
            a.send_to(&pkt(c, seq), *pb).unwrap();
        }
    }
    let mut next = std::collections::HashMap::new();
    let mut buf = [0u8; 2048];
    for _ in 0..u32::from(CALLS) * u32::from(EACH) {
        let (n, src) = b.recv_from(&mut buf).expect("relayed packet");
        let c = targets
            .iter()
            .position(|(pa, _)| *pa == src)
            .unwrap_or_else(|| panic!("packet from unknown {src}")) as u16;
        let seq = next.entry(c).or_insert(0u16);
        assert_eq!(
            &buf[..n],
            &pkt(c, *seq)[..],
            "call {c}, packet {seq} (order kept)"
        );
        *seq += 1;
    }
    let after = thread_cpu_ns(pid, "rtpe-media-1");
    assert!(after > before, "the helper thread never ran ({before} ns)");
}
