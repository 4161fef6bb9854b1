//! In-kernel forwarding end to end: the real daemon in a proxy namespace
//! between caller and callee namespaces joined by veth pairs, with its XDP
//! dataplane attached in native mode. After offer/answer and learning, media
//! must flow in the kernel: the receivers get every packet with the right
//! source, payload and checksum while the daemon's userspace counters stay
//! flat and the kernel's grow.

use std::time::Duration;

use rtpengine_tests::*;

fn offloaded_call(v6: bool) {
    let t = Topology::new(if v6 { "o6" } else { "o4" });
    let p = start_proxy(&t, &["--listen-http=127.0.0.1:2280"]).unwrap();
    let (caller_ip, proxy_int, proxy_ext, callee_ip) = if v6 {
        ("fd00:1::2", "fd00:1::1", "fd00:2::1", "fd00:2::2")
    } else {
        ("10.1.0.2", "10.1.0.1", "10.2.0.1", "10.2.0.2")
    };
    let a = t.caller.bind_udp(&sa(caller_ip, 5000).to_string());
    let b = t.callee.bind_udp(&sa(callee_ip, 6000).to_string());
    let (pa, pb) = setup_call(&p, "k1", (caller_ip, 5000), (callee_ip, 6000), vec![]);
    let (to_proxy_a, to_proxy_b) = (sa(proxy_int, pa), sa(proxy_ext, pb));
    let csum = (t.caller.udp_in_csum_errors(), t.callee.udp_in_csum_errors());

    // The first packet each way is relayed in userspace, which confirms the
    // endpoints and hands both sockets to the kernel.
    exchange(&a, &b, to_proxy_a, to_proxy_b, 1, 1);
    assert!(stream_flags(&p, "k1", "ft").contains(&"kernelized".to_owned()));
    assert!(stream_flags(&p, "k1", "tt").contains(&"kernelized".to_owned()));
    let d = dump_table(&p.pin_dir, 0);
    assert!(d.contains("kernel table 0: 2 flow(s)"), "{d}");

    std::thread::sleep(Duration::from_millis(1100));
    let user_before = stat(&p, "relayedpackets_user");
    exchange(&a, &b, to_proxy_a, to_proxy_b, 50, 100);
    assert!(
        wait_until(Duration::from_secs(3), || stat(&p, "relayedpackets_kernel")
            == 100),
        "kernel counted {}",
        stat(&p, "relayedpackets_kernel")
    );
    assert_eq!(
        stat(&p, "relayedpackets_user"),
        user_before,
        "userspace stayed flat"
    );
    assert_eq!(
        (t.caller.udp_in_csum_errors(), t.callee.udp_in_csum_errors()),
        csum,
        "receivers saw bad UDP checksums"
    );
    // /metrics: the table's own counters and the kernel share of the totals.
    let m = scrape(Some(&t.proxy.name), sa("127.0.0.1", 2280)).unwrap();
    let table = [("table", "0")];
    assert_eq!(m.value("rtpengine_kernel_flows", &table), 2.0);
    assert_eq!(m.value("rtpengine_kernel_packets_total", &table), 100.0);
    assert_eq!(
        m.value("rtpengine_kernel_bytes_total", &table),
        100.0 * 172.0
    );
    assert_eq!(m.value("rtpengine_kernel_errors_total", &table), 0.0);
    assert_eq!(
        m.value("rtpengine_packets_total", &[("type", "kernel")]),
        100.0
    );
    assert_eq!(
        m.value("rtpengine_bytes_total", &[("type", "kernel")]),
        100.0 * 172.0
    );
    assert_eq!(
        m.value("rtpengine_mediastreams", &[("type", "kernel")]),
        2.0
    );
    assert_eq!(
        m.value("rtpengine_mediastreams", &[("type", "userspace")]),
        0.0
    );
    // Kernel packets show up in the call's stats and keep it alive.
    let q =
        p.ng.call(&dict([
            ("command", Value::str("query")),
            ("call-id", Value::str("k1")),
        ]))
        .unwrap();
    assert_eq!(
        dig_int(&q, &["totals", "RTP", "packets"]),
        Some(102),
        "{q:?}"
    );
    // The SSRC table counts them too: the kernel's packets go to the SSRC
    // userspace saw (0x1111 = 4369 from the caller, 0x2222 = 8738 back).
    assert_eq!(dig_int(&q, &["SSRC", "4369", "packets"]), Some(51), "{q:?}");
    assert_eq!(dig_int(&q, &["SSRC", "8738", "packets"]), Some(51), "{q:?}");

    // Delete takes the flows out of the kernel.
    let r =
        p.ng.call(&dict([
            ("command", Value::str("delete")),
            ("call-id", Value::str("k1")),
            ("delete-delay", Value::Int(0)),
        ]))
        .unwrap();
    assert_eq!(get_str(&r, "result"), "ok");
    assert!(dump_table(&p.pin_dir, 0).contains("kernel table 0: 0 flow(s)"));
    drop(p.daemon);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv4_call_is_forwarded_in_the_kernel() {
    offloaded_call(false);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv6_call_is_forwarded_in_the_kernel() {
    offloaded_call(true);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn tos_and_strict_source_in_the_kernel() {
    let t = Topology::new("ots");
    let p = start_proxy(&t, &[]).unwrap();
    let a = t.caller.bind_udp("10.1.0.2:5000");
    let b = t.callee.bind_udp("10.2.0.2:6000");
    enable_recvtos(&b);
    let extra = vec![
        ("TOS", Value::Int(184)),
        ("flags", strs(&["strict source"])),
    ];
    let (pa, pb) = setup_call(&p, "k2", ("10.1.0.2", 5000), ("10.2.0.2", 6000), extra);
    let (to_a, to_b) = (sa("10.1.0.1", pa), sa("10.2.0.1", pb));
    // First packet each way through userspace, then kernel.
    let first = rtp(8, 1, 0, 0x1111, 1);
    a.send_to(&first, to_a).unwrap();
    let (data, from, tos) = recv_with_tos(&b).unwrap();
    assert_eq!((data.as_slice(), from, tos), (first.as_slice(), to_b, 184));
    let back = rtp(8, 1, 0, 0x2222, 1);
    b.send_to(&back, to_b).unwrap();
    expect_packet(&a, to_a, &back);
    assert!(stream_flags(&p, "k2", "ft").contains(&"kernelized".to_owned()));
    for i in 0..10u16 {
        let pkt = rtp(8, 10 + i, 0, 0x1111, 2);
        a.send_to(&pkt, to_a).unwrap();
        let (data, from, tos) = recv_with_tos(&b).unwrap();
        assert_eq!(
            (data.as_slice(), from, tos),
            (pkt.as_slice(), to_b, 184),
            "kernel-forwarded packet {i}"
        );
    }
    // An impostor in the caller's namespace is dropped in the kernel.
    let imp = t.caller.bind_udp("10.1.0.2:5009");
    for _ in 0..3 {
        imp.send_to(&rtp(8, 99, 0, 0x6666, 6), to_a).unwrap();
    }
    expect_silence(&b);
    assert!(
        wait_until(Duration::from_secs(3), || {
            let q =
                p.ng.call(&dict([
                    ("command", Value::str("query")),
                    ("call-id", Value::str("k2")),
                ]))
                .unwrap();
            dig_int(&q, &["totals", "RTP", "errors"]) == Some(3)
        }),
        "three strict-source drops counted"
    );
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn reoffer_removes_and_readds_the_flow() {
    let t = Topology::new("ore");
    let p = start_proxy(&t, &[]).unwrap();
    let a = t.caller.bind_udp("10.1.0.2:5000");
    let b = t.callee.bind_udp("10.2.0.2:6000");
    let (pa, pb) = setup_call(&p, "k3", ("10.1.0.2", 5000), ("10.2.0.2", 6000), vec![]);
    exchange(&a, &b, sa("10.1.0.1", pa), sa("10.2.0.1", pb), 2, 1);
    assert!(dump_table(&p.pin_dir, 0).contains("2 flow(s)"));

    // The caller moves to port 5002: the callee gets new ports, and nothing
    // stays in the kernel until the new path is confirmed.
    let a2 = t.caller.bind_udp("10.1.0.2:5002");
    let (pa2, pb2) = setup_call(&p, "k3", ("10.1.0.2", 5002), ("10.2.0.2", 6000), vec![]);
    assert_ne!(
        pb2, pb,
        "callee-facing ports follow the caller's new endpoint"
    );
    assert_eq!(pa2, pa);
    assert!(
        dump_table(&p.pin_dir, 0).contains("kernel table 0: 0 flow(s)"),
        "{}",
        dump_table(&p.pin_dir, 0)
    );
    exchange(&a2, &b, sa("10.1.0.1", pa2), sa("10.2.0.1", pb2), 3, 10);
    let d = dump_table(&p.pin_dir, 0);
    assert!(d.contains("kernel table 0: 2 flow(s)"), "{d}");
    assert!(d.contains(&format!("10.2.0.1:{pb2}")), "{d}");
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn offloaded_call_times_out_only_when_media_stops() {
    let t = Topology::new("oto");
    let p = start_proxy(&t, &["--timeout=2"]).unwrap();
    let a = t.caller.bind_udp("10.1.0.2:5000");
    let b = t.callee.bind_udp("10.2.0.2:6000");
    let (pa, pb) = setup_call(&p, "k4", ("10.1.0.2", 5000), ("10.2.0.2", 6000), vec![]);
    let (to_a, to_b) = (sa("10.1.0.1", pa), sa("10.2.0.1", pb));
    exchange(&a, &b, to_a, to_b, 1, 1);
    assert!(stream_flags(&p, "k4", "ft").contains(&"kernelized".to_owned()));
    let list = |p: &Proxy| {
        let d = p.ng.call(&dict([("command", Value::str("list"))])).unwrap();
        matches!(d.get(&b"calls"[..]), Some(Value::List(l)) if !l.is_empty())
    };
    // 4 s of media only in the kernel: twice the timeout, the call lives.
    for i in 0..20u16 {
        exchange(&a, &b, to_a, to_b, 1, 10 + i);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(list(&p), "call with kernel-only media must not time out");
    assert_eq!(stat(&p, "timeoutsessions"), 0);
    // Media stops: gone within timeout + a tick or two.
    assert!(
        wait_until(Duration::from_secs(5), || !list(&p)),
        "call did not time out"
    );
    assert_eq!(stat(&p, "timeoutsessions"), 1);
    assert!(dump_table(&p.pin_dir, 0).contains("kernel table 0: 0 flow(s)"));
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn fallback_and_no_fallback() {
    let t = Topology::new("ofb");
    // A device that does not exist: the daemon relays in userspace.
    let p = start_proxy(&t, &["--xdp-device=nosuchdev0"]).unwrap();
    let a = t.caller.bind_udp("10.1.0.2:5000");
    let b = t.callee.bind_udp("10.2.0.2:6000");
    let (pa, pb) = setup_call(&p, "k5", ("10.1.0.2", 5000), ("10.2.0.2", 6000), vec![]);
    exchange(&a, &b, sa("10.1.0.1", pa), sa("10.2.0.1", pb), 3, 1);
    assert!(stream_flags(&p, "k5", "ft").contains(&"no kernel support".to_owned()));
    assert_eq!(stat(&p, "relayedpackets_kernel"), 0);
    drop(p);
    // With --no-fallback the daemon refuses to start.
    let e = start_proxy(&t, &["--xdp-device=nosuchdev0", "--no-fallback"]);
    assert!(
        e.is_err(),
        "--no-fallback must exit when the table cannot be opened"
    );
}

/// Two daemons on one host, tables 0 and 1, different local addresses on the
/// same devices: both offload, and a clean stop of one leaves the other's
/// flows and forwarding alone.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn two_daemons_on_tables_0_and_1() {
    let t = Topology::new("o2d");
    t.proxy
        .exec(&["ip", "addr", "add", "10.1.0.11/24", "dev", "p0"])
        .unwrap();
    t.proxy
        .exec(&["ip", "addr", "add", "10.2.0.11/24", "dev", "p1"])
        .unwrap();
    let mut d0 = start_proxy(&t, &[]).unwrap();
    let pin_arg = format!("--bpf-pin-dir={}", t.pin_dir());
    let d1_args = [
        "--table=1",
        "--xdp-mode=native",
        "--xdp-device=p0",
        "--xdp-device=p1",
        "-i",
        "int/10.1.0.11",
        "-i",
        "ext/10.2.0.11",
        &pin_arg,
    ];
    let d1 = Proxy {
        daemon: Daemon::start_with(
            Some(&t.proxy.name),
            "127.0.0.1:2224".parse().unwrap(),
            &d1_args,
        )
        .unwrap(),
        ng: t
            .proxy
            .run(|| NgClient::new("127.0.0.1:2224".parse().unwrap()))
            .unwrap(),
        pin_dir: t.pin_dir(),
    };

    let (a0, b0) = (
        t.caller.bind_udp("10.1.0.2:5000"),
        t.callee.bind_udp("10.2.0.2:6000"),
    );
    let (a1, b1) = (
        t.caller.bind_udp("10.1.0.2:5010"),
        t.callee.bind_udp("10.2.0.2:6010"),
    );
    let (pa0, pb0) = setup_call(&d0, "t0", ("10.1.0.2", 5000), ("10.2.0.2", 6000), vec![]);
    let (pa1, pb1) = setup_call(&d1, "t1", ("10.1.0.2", 5010), ("10.2.0.2", 6010), vec![]);
    let (to_a0, to_b0) = (sa("10.1.0.1", pa0), sa("10.2.0.1", pb0));
    let (to_a1, to_b1) = (sa("10.1.0.11", pa1), sa("10.2.0.11", pb1));
    exchange(&a0, &b0, to_a0, to_b0, 5, 1);
    exchange(&a1, &b1, to_a1, to_b1, 5, 1);
    assert!(
        t.dump_table(0).contains("kernel table 0: 2 flow(s)"),
        "{}",
        t.dump_table(0)
    );
    assert!(
        t.dump_table(1).contains("kernel table 1: 2 flow(s)"),
        "{}",
        t.dump_table(1)
    );
    for (d, table) in [(&d0, 0), (&d1, 1)] {
        assert!(
            wait_until(Duration::from_secs(3), || stat(d, "relayedpackets_kernel")
                == 8),
            "table {table}: {} kernel of {} packets\n{}",
            stat(d, "relayedpackets_kernel"),
            stat(d, "relayedpackets"),
            t.dump_table(table)
        );
    }

    // Clean stop of table 0: its flows go, table 1 keeps forwarding in the kernel.
    let st = d0.daemon.terminate().unwrap();
    assert!(st.success(), "clean stop: {st}");
    assert!(
        t.dump_table(0).contains("kernel table 0: 0 flow(s)"),
        "{}",
        t.dump_table(0)
    );
    assert!(
        t.dump_table(1).contains("kernel table 1: 2 flow(s)"),
        "{}",
        t.dump_table(1)
    );
    exchange(&a1, &b1, to_a1, to_b1, 10, 100);
    assert!(
        wait_until(Duration::from_secs(3), || stat(
            &d1,
            "relayedpackets_kernel"
        ) == 28),
        "table 1 still forwards in the kernel: {}",
        stat(&d1, "relayedpackets_kernel")
    );
}

/// A caller behind NAT: it announces one port and sends from another. As
/// upstream, the callee's stream goes to the kernel once the callee is
/// confirmed, towards the caller's known address (its SDP one until it has
/// sent: where userspace would send too); the caller's first packet moves
/// the rule to its learned address.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn nat_caller_gets_media_at_its_learned_address() {
    let t = Topology::new("onat");
    let p = start_proxy(&t, &["--endpoint-learning=immediate"]).unwrap();
    let a = t.caller.bind_udp("10.1.0.2:5050"); // what the NAT really uses
    let b = t.callee.bind_udp("10.2.0.2:6000");
    let (pa, pb) = setup_call(&p, "nat", ("10.1.0.2", 5000), ("10.2.0.2", 6000), vec![]);
    let (to_a, to_b) = (sa("10.1.0.1", pa), sa("10.2.0.1", pb));
    // The callee speaks first: it goes to the SDP address, where nobody is.
    b.send_to(&rtp(8, 1, 0, 0x2222, 1), to_b).unwrap();
    expect_silence(&a);
    let d = t.dump_table(0);
    assert!(d.contains("-> 10.1.0.2:5000"), "{d}");
    // The caller's first packet confirms 10.1.0.2:5050; from then on both
    // directions use it, in the kernel.
    exchange(&a, &b, to_a, to_b, 10, 10);
    let d = t.dump_table(0);
    assert!(d.contains("kernel table 0: 2 flow(s)"), "{d}");
    assert!(d.contains("-> 10.1.0.2:5050"), "{d}");
    assert!(!d.contains("-> 10.1.0.2:5000"), "{d}");
    assert!(wait_until(Duration::from_secs(3), || stat(
        &p,
        "relayedpackets_kernel"
    ) >= 17));
}

/// `block media` takes the blocked party's flow out of the kernel (the
/// relay drops its packets), the other direction stays offloaded; after
/// `unblock media` the next packet puts the flow back.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn blocked_media_leaves_the_kernel_and_comes_back() {
    let t = Topology::new("oblk");
    let p = start_proxy(&t, &[]).unwrap();
    let a = t.caller.bind_udp("10.1.0.2:5000");
    let b = t.callee.bind_udp("10.2.0.2:6000");
    let (pa, pb) = setup_call(&p, "kb", ("10.1.0.2", 5000), ("10.2.0.2", 6000), vec![]);
    let (to_a, to_b) = (sa("10.1.0.1", pa), sa("10.2.0.1", pb));
    exchange(&a, &b, to_a, to_b, 2, 1);
    assert!(dump_table(&p.pin_dir, 0).contains("2 flow(s)"));
    let control = |cmd: &str| {
        let r =
            p.ng.call(&dict([
                ("command", Value::str(cmd)),
                ("call-id", Value::str("kb")),
                ("from-tag", Value::str("ft")),
                ("flags", strs(&["directional"])),
            ]))
            .unwrap();
        assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    };
    control("block media");
    let d = dump_table(&p.pin_dir, 0);
    assert!(d.contains("kernel table 0: 1 flow(s)"), "{d}");
    assert!(!stream_flags(&p, "kb", "ft").contains(&"kernelized".to_owned()));
    let blocked = rtp(8, 10, 1600, 0x1111, 1);
    a.send_to(&blocked, to_a).unwrap();
    expect_silence(&b);
    let q = rtp(8, 10, 1600, 0x2222, 2);
    b.send_to(&q, to_b).unwrap();
    expect_packet(&a, to_a, &q);
    control("unblock media");
    exchange(&a, &b, to_a, to_b, 2, 20);
    let d = dump_table(&p.pin_dir, 0);
    assert!(d.contains("kernel table 0: 2 flow(s)"), "{d}");
}

/// One-way media (the callee never sends: an announcement, music on hold)
/// goes to the kernel once the caller is confirmed, towards the callee's
/// SDP address, as upstream does; when the callee then sends from another
/// address (NAT), the caller's rule follows it.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn one_way_media_is_offloaded_and_follows_a_learned_sink() {
    let t = Topology::new("oow");
    let p = start_proxy(&t, &[]).unwrap();
    let a = t.caller.bind_udp("10.1.0.2:5000");
    let b = t.callee.bind_udp("10.2.0.2:6000");
    let (pa, pb) = setup_call(&p, "ow", ("10.1.0.2", 5000), ("10.2.0.2", 6000), vec![]);
    let (to_a, to_b) = (sa("10.1.0.1", pa), sa("10.2.0.1", pb));
    // The first packet confirms the caller (exact SDP match) and installs
    // the rule; the rest is forwarded by the kernel.
    for i in 0..20u16 {
        let p = rtp(8, i, 160 * u32::from(i), 0x1111, i as u8);
        a.send_to(&p, to_a).unwrap();
        expect_packet(&b, to_b, &p);
    }
    let d = dump_table(&p.pin_dir, 0);
    assert!(d.contains("kernel table 0: 1 flow(s)"), "{d}");
    assert!(
        wait_until(Duration::from_secs(3), || stat(&p, "relayedpackets_kernel")
            == 19),
        "kernel counted {}",
        stat(&p, "relayedpackets_kernel")
    );
    // With the daemon frozen, the one-way stream still flows: the kernel
    // alone carries it.
    p.daemon.signal(libc::SIGSTOP).unwrap();
    for i in 20..40u16 {
        let pkt = rtp(8, i, 160 * u32::from(i), 0x1111, i as u8);
        a.send_to(&pkt, to_a).unwrap();
        expect_packet(&b, to_b, &pkt);
    }
    p.daemon.signal(libc::SIGCONT).unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || stat(&p, "relayedpackets_kernel")
            == 39),
        "kernel counted {}",
        stat(&p, "relayedpackets_kernel")
    );
    // The callee answers from another port (NAT): once learned, the
    // caller's packets go there, still in the kernel.
    let b2 = t.callee.bind_udp("10.2.0.2:6100");
    let q = rtp(8, 1, 160, 0x2222, 1);
    b2.send_to(&q, to_b).unwrap();
    expect_packet(&a, to_a, &q);
    let p2 = rtp(8, 30, 4800, 0x1111, 30);
    a.send_to(&p2, to_a).unwrap();
    expect_packet(&b2, to_b, &p2);
    let d = dump_table(&p.pin_dir, 0);
    assert!(d.contains("10.2.0.2:6100"), "{d}");
}

/// The table's lease: a frozen daemon (SIGSTOP, shorter than the lease)
/// keeps its media flowing in the kernel; a killed one (SIGKILL) stops
/// forwarding once the lease runs out, instead of relaying its old calls
/// for ever.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_killed_daemon_stops_forwarding_within_its_lease() {
    let t = Topology::new("olease");
    let mut p = start_proxy(&t, &["--kernel-lease=3"]).unwrap();
    let a = t.caller.bind_udp("10.1.0.2:5000");
    let b = t.callee.bind_udp("10.2.0.2:6000");
    let (pa, pb) = setup_call(&p, "ls", ("10.1.0.2", 5000), ("10.2.0.2", 6000), vec![]);
    let (to_a, to_b) = (sa("10.1.0.1", pa), sa("10.2.0.1", pb));
    exchange(&a, &b, to_a, to_b, 1, 1);
    assert!(dump_table(&p.pin_dir, 0).contains("kernel table 0: 2 flow(s)"));

    // Frozen for 1.5 s (well under the 3 s lease, renewed every 600 ms):
    // every packet still crosses, so the kernel alone carried them.
    p.daemon.signal(libc::SIGSTOP).unwrap();
    let start = std::time::Instant::now();
    let mut seq = 10;
    while start.elapsed() < Duration::from_millis(1500) {
        exchange(&a, &b, to_a, to_b, 1, seq);
        seq += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    p.daemon.signal(libc::SIGCONT).unwrap();
    assert!(seq > 40, "sent {seq} packets while frozen");
    std::thread::sleep(Duration::from_millis(500));

    // Killed: forwarding goes on until the lease runs out, then stops.
    p.daemon.signal(libc::SIGKILL).unwrap();
    p.daemon.wait(Duration::from_secs(5)).unwrap();
    let killed = std::time::Instant::now();
    exchange(&a, &b, to_a, to_b, 1, 500);
    let mut last_forwarded = killed;
    b.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 2048];
    while killed.elapsed() < Duration::from_secs(5) {
        a.send_to(&rtp(8, seq, 0, 0x1111, 0), to_a).unwrap();
        seq += 1;
        if b.recv_from(&mut buf).is_ok() {
            last_forwarded = std::time::Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let forwarded_for = last_forwarded - killed;
    // The lease ran out 2.4–3 s after the last renewal before the kill.
    assert!(
        forwarded_for < Duration::from_millis(3600),
        "media still forwarded {forwarded_for:?} after SIGKILL with a 3 s lease"
    );
    assert!(
        forwarded_for > Duration::from_millis(1800),
        "forwarding stopped after {forwarded_for:?}, before the lease ran out"
    );
    // The stale flows stay until the table is opened again.
    assert!(dump_table(&p.pin_dir, 0).contains("kernel table 0: 2 flow(s)"));
}

/// The shared flow map full: the stream that does not fit stays in
/// userspace (its media still flows), the refusal is counted in
/// `statistics` and `/metrics` and logged once, not per stream; when room
/// comes back, new streams go to the kernel again (logged too).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_full_kernel_table_leaves_new_streams_in_userspace() {
    use rtpengine::kernel::{
        flow_key, FlowTargetBuilder, Kernel, KernelConfig, TableId, XdpAttachMode, MAX_FLOWS,
    };
    let t = Topology::new("ofull");
    let log = std::env::temp_dir().join(format!("rtpe-full-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let p = start_proxy_logged(&t, &["--listen-http=127.0.0.1:2280"], Some(&log)).unwrap();
    // Another table (this test, as a second daemon would) takes all but one
    // entry of the map the tables share.
    let pin_dir = p.pin_dir.clone();
    let filler = t.proxy.run(move || {
        let k = Kernel::open_with(&KernelConfig {
            table: TableId::new(1).unwrap(),
            devices: vec![],
            mode: XdpAttachMode::Auto,
            pin_dir: pin_dir.into(),
            lease: None,
            next_hop: Default::default(),
            keep_flows: false,
        })
        .unwrap();
        let target = FlowTargetBuilder::new(sa("198.19.0.1", 1), sa("198.19.0.2", 2))
            .unwrap()
            .build();
        for i in 0..MAX_FLOWS - 1 {
            let local = sa(&format!("198.18.{}.{}", i >> 8, i & 0xff), 10000);
            k.install(flow_key(local), target).unwrap();
        }
        k
    });

    let a = t.caller.bind_udp("10.1.0.2:5000");
    let b = t.callee.bind_udp("10.2.0.2:6000");
    let (pa, pb) = setup_call(&p, "f1", ("10.1.0.2", 5000), ("10.2.0.2", 6000), vec![]);
    let (to_a, to_b) = (sa("10.1.0.1", pa), sa("10.2.0.1", pb));
    // The caller's stream takes the last entry; the callee's does not fit
    // and stays in userspace, where its media still flows.
    exchange(&a, &b, to_a, to_b, 20, 1);
    assert!(stream_flags(&p, "f1", "ft").contains(&"kernelized".to_owned()));
    assert!(!stream_flags(&p, "f1", "tt").contains(&"kernelized".to_owned()));
    assert!(dump_table(&p.pin_dir, 0).contains("kernel table 0: 1 flow(s)"));
    assert_eq!(stat(&p, "kernelrefusedstreams"), 1);

    // A second call: both streams refused, still relayed.
    let c = t.caller.bind_udp("10.1.0.2:5002");
    let d = t.callee.bind_udp("10.2.0.2:6002");
    let (pc, pd) = setup_call(&p, "f2", ("10.1.0.2", 5002), ("10.2.0.2", 6002), vec![]);
    exchange(&c, &d, sa("10.1.0.1", pc), sa("10.2.0.1", pd), 10, 1);
    assert_eq!(stat(&p, "kernelrefusedstreams"), 3);
    let m = scrape(Some(&t.proxy.name), sa("127.0.0.1", 2280)).unwrap();
    let full = [("table", "0"), ("reason", "full")];
    assert_eq!(
        m.value("rtpengine_kernel_refused_streams_total", &full),
        3.0
    );
    assert_eq!(
        m.value("rtpengine_mediastreams", &[("type", "userspace")]),
        3.0
    );

    // Room again: the other table goes away; a new call is offloaded.
    t.proxy.run(move || drop(filler));
    let e = t.caller.bind_udp("10.1.0.2:5004");
    let f = t.callee.bind_udp("10.2.0.2:6004");
    let (pe, pf) = setup_call(&p, "f3", ("10.1.0.2", 5004), ("10.2.0.2", 6004), vec![]);
    exchange(&e, &f, sa("10.1.0.1", pe), sa("10.2.0.1", pf), 2, 1);
    assert!(stream_flags(&p, "f3", "tt").contains(&"kernelized".to_owned()));
    assert_eq!(stat(&p, "kernelrefusedstreams"), 3);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("Kernel refused a media stream").count(),
        1,
        "logged once per episode:\n{text}"
    );
    assert!(text.contains("kernel flow table full"), "{text}");
    assert!(
        text.contains("Kernel accepts media streams again"),
        "{text}"
    );
    let _ = std::fs::remove_file(&log);
}

/// IP forwarding off on every device of the proxy, IPv4 and IPv6: the
/// daemon resolves next hops itself (route, device, neighbour over
/// rtnetlink), so calls are still forwarded in the kernel and the host
/// routes nothing else.
fn offloaded_without_forwarding(v6: bool) {
    let t = Topology::new(if v6 { "onf6" } else { "onf4" });
    let p = start_proxy(&t, &[]).unwrap();
    for s in [
        "net.ipv4.conf.all.forwarding=0",
        "net.ipv4.conf.default.forwarding=0",
        "net.ipv4.conf.p0.forwarding=0",
        "net.ipv4.conf.p1.forwarding=0",
        "net.ipv6.conf.all.forwarding=0",
        "net.ipv6.conf.p0.forwarding=0",
        "net.ipv6.conf.p1.forwarding=0",
    ] {
        t.proxy.exec(&["sysctl", "-qw", s]).unwrap();
    }
    // No static neighbours: the stack resolves them when userspace relays
    // the first packets, and the daemon picks that up from rtnetlink.
    for (ip, dev) in [
        ("10.1.0.2", "p0"),
        ("fd00:1::2", "p0"),
        ("10.2.0.2", "p1"),
        ("fd00:2::2", "p1"),
    ] {
        t.proxy
            .exec(&["ip", "neigh", "del", ip, "dev", dev])
            .unwrap();
    }
    let (caller_ip, proxy_int, proxy_ext, callee_ip) = if v6 {
        ("fd00:1::2", "fd00:1::1", "fd00:2::1", "fd00:2::2")
    } else {
        ("10.1.0.2", "10.1.0.1", "10.2.0.1", "10.2.0.2")
    };
    let a = t.caller.bind_udp(&sa(caller_ip, 5000).to_string());
    let b = t.callee.bind_udp(&sa(callee_ip, 6000).to_string());
    let (pa, pb) = setup_call(&p, "nf", (caller_ip, 5000), (callee_ip, 6000), vec![]);
    let (to_a, to_b) = (sa(proxy_int, pa), sa(proxy_ext, pb));
    // Userspace relays the first packets, which makes the stack resolve
    // the neighbours; the daemon then completes the flows' next hops.
    exchange(&a, &b, to_a, to_b, 2, 1);
    assert!(
        wait_until(Duration::from_secs(3), || dump_table(&p.pin_dir, 0)
            .matches("next hop: device")
            .count()
            == 2),
        "{}",
        dump_table(&p.pin_dir, 0)
    );
    std::thread::sleep(Duration::from_millis(1100));
    let user_before = stat(&p, "relayedpackets_user");
    let kernel_before = stat(&p, "relayedpackets_kernel");
    exchange(&a, &b, to_a, to_b, 50, 100);
    assert!(
        wait_until(Duration::from_secs(3), || stat(&p, "relayedpackets_kernel")
            == kernel_before + 100),
        "kernel counted {} (from {kernel_before})",
        stat(&p, "relayedpackets_kernel")
    );
    assert_eq!(stat(&p, "relayedpackets_user"), user_before);
    // Forwarding really is off: the proxy does not route between the sides.
    let fwd = if v6 {
        "/proc/sys/net/ipv6/conf/all/forwarding"
    } else {
        "/proc/sys/net/ipv4/conf/all/forwarding"
    };
    assert_eq!(t.proxy.exec(&["cat", fwd]).unwrap().trim(), "0");
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv4_offloaded_without_ip_forwarding() {
    offloaded_without_forwarding(false);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv6_offloaded_without_ip_forwarding() {
    offloaded_without_forwarding(true);
}

/// A caller on IPv4 bridged to a callee on IPv6 (`address family: IP6`):
/// both directions are translated in the kernel, and each receiver's stack
/// verifies the checksums of what arrives (none may be bad).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv4_to_ipv6_bridging_in_the_kernel() {
    let t = Topology::new("oxl");
    let p = start_proxy(&t, &[]).unwrap();
    let a = t.caller.bind_udp("10.1.0.2:5000");
    let b = t.callee.bind_udp("[fd00:2::2]:6000");
    let (to_callee, to_caller) = setup_call_sdps(
        &p,
        "x1",
        ("10.1.0.2", 5000),
        ("fd00:2::2", 6000),
        vec![("address family", Value::str("IP6"))],
        vec![],
    );
    assert!(to_callee.contains("c=IN IP6 fd00:2::1"), "{to_callee}");
    assert!(to_caller.contains("c=IN IP4 10.1.0.1"), "{to_caller}");
    let (pa, pb) = (media_ports(&to_caller)[0], media_ports(&to_callee)[0]);
    let (to_a, to_b) = (sa("10.1.0.1", pa), sa("fd00:2::1", pb));
    let csum = (t.caller.udp_in_csum_errors(), t.callee.udp_in_csum_errors());

    exchange(&a, &b, to_a, to_b, 1, 1);
    let d = dump_table(&p.pin_dir, 0);
    assert!(d.contains("kernel table 0: 2 flow(s)"), "{d}");
    assert!(d.contains("-> [fd00:2::2]:6000"), "{d}");
    assert!(d.contains("-> 10.1.0.2:5000"), "{d}");
    std::thread::sleep(Duration::from_millis(1100));
    let user_before = stat(&p, "relayedpackets_user");
    exchange(&a, &b, to_a, to_b, 50, 100);
    assert!(
        wait_until(Duration::from_secs(3), || stat(&p, "relayedpackets_kernel")
            == 100),
        "kernel counted {}",
        stat(&p, "relayedpackets_kernel")
    );
    assert_eq!(stat(&p, "relayedpackets_user"), user_before);
    assert_eq!(
        (t.caller.udp_in_csum_errors(), t.callee.udp_in_csum_errors()),
        csum,
        "receivers saw bad UDP checksums"
    );
}
