//! `GET /metrics` against known traffic, parsed by the reference Prometheus
//! parser: upstream's names and labels with the values the traffic implies.
//! (The kernel table's metrics are checked in `offload.rs`, where media is
//! forwarded in the kernel.)

use std::net::SocketAddr;
use std::time::Duration;

use rtpengine_tests::*;

const HTTP: &str = "127.0.0.1:2280";

/// Offer from 198.51.100.1:`a`, answer from 198.51.100.3:`b`; returns where
/// each party sends.
fn call(rig: &Rig, id: &str, a: u16, b: u16) -> (SocketAddr, SocketAddr) {
    let offer = OFFER.replace("2010", &a.to_string());
    let answer = ANSWER.replace("2012", &b.to_string());
    let to_b = media_ports(&rig.offer(id, "ft", &offer, vec![]))[0];
    let to_a = media_ports(&rig.answer(id, "ft", "tt", &answer, vec![]))[0];
    (sa("203.0.113.1", to_a), sa("203.0.113.1", to_b))
}

/// 10 RTP packets of 172 bytes (160 payload, as upstream's capture) from
/// `from` to the proxy at `to`, each checked at `peer`.
fn send10(from: &std::net::UdpSocket, to: SocketAddr, peer: &std::net::UdpSocket, src: SocketAddr) {
    for i in 0..10u16 {
        let p = rtp(8, i, 160 * u32::from(i), 0x1234, 0xd5);
        assert_eq!(p.len(), 172);
        from.send_to(&p, to).unwrap();
        expect_packet(peer, src, &p);
    }
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn metrics_follow_calls_traffic_and_requests() {
    let rig = Rig::new("metrics", &[&format!("--listen-http={HTTP}")]);
    let http: SocketAddr = HTTP.parse().unwrap();
    let m = scrape(Some(&rig.ns.name), http).unwrap();
    assert_eq!(m.content_type, "text/plain; version=0.0.4");
    assert_eq!(m.value("rtpengine_sessions", &[("type", "own")]), 0.0);
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(m.value("rtpengine_relay_threads", &[]), cores as f64);
    // The harness pinged until the daemon answered; nothing else yet.
    let proxy = ("proxy", "127.0.0.1");
    assert!(m.value("rtpengine_requests_total", &[proxy, ("request", "ping")]) >= 1.0);
    assert_eq!(
        m.value("rtpengine_requests_total", &[proxy, ("request", "offer")]),
        0.0
    );
    let ports = [("name", "default"), ("address", "203.0.113.1")];
    assert_eq!(m.value("rtpengine_ports", &ports), 10001.0, "30000..=40000");
    assert_eq!(m.value("rtpengine_ports_used", &ports), 0.0);
    // Memory as the kernel sees it (within the time between the two
    // reads) and the heap's part of it.
    let resident = m.value("rtpengine_resident_memory_bytes", &[]);
    let vm_rss = std::fs::read_to_string(format!("/proc/{}/status", rig.daemon.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap()
        * 1024.0;
    assert!(
        (resident - vm_rss).abs() < vm_rss / 4.0,
        "resident {resident} vs VmRSS {vm_rss}"
    );
    let in_use = m.value("rtpengine_heap_in_use_bytes", &[]);
    assert!(in_use > 0.0 && in_use < resident, "heap in use {in_use}");
    assert!(m.value("rtpengine_heap_free_bytes", &[]) >= 0.0);
    assert!(m.value("rtpengine_heap_trims_total", &[]) >= 0.0);
    // The names on the wire, which the parser may normalise (it reports a
    // counter's samples with `_total` appended): upstream's, exactly.
    let raw = rig.ns.run(move || http_get(http, "/metrics").unwrap());
    for line in [
        "# TYPE rtpengine_sessions gauge\n",
        "# TYPE rtpengine_sessions_total counter\n",
        "# TYPE rtpengine_poller_items counter\n",
        "rtpengine_sessions{type=\"own\"} 0\n",
        "rtpengine_closed_sessions_total{reason=\"terminated\"} 0\n",
    ] {
        assert!(raw.contains(line), "no {line:?} in\n{raw}");
    }

    // Call 1 two-way, call 2 one-way (only the caller sends).
    let (a1, b1) = (
        rig.socket("198.51.100.1:4000"),
        rig.socket("198.51.100.3:4002"),
    );
    let (a2, b2) = (
        rig.socket("198.51.100.1:4010"),
        rig.socket("198.51.100.3:4012"),
    );
    let (to_b1, to_a1) = call(&rig, "m1", 4000, 4002);
    let (to_b2, to_a2) = call(&rig, "m2", 4010, 4012);
    send10(&a1, to_b1, &b1, to_a1);
    send10(&b1, to_a1, &a1, to_b1);
    send10(&a2, to_b2, &b2, to_a2);
    // A request that fails counts as an error of this proxy.
    let bad = rig.ng.raw(b"c1 d7:command5:bogus3:foo3:bare").unwrap();
    assert!(String::from_utf8_lossy(&bad).contains("error"));

    let m = scrape(Some(&rig.ns.name), http).unwrap();
    assert_eq!(m.value("rtpengine_sessions", &[("type", "own")]), 2.0);
    assert_eq!(m.value("rtpengine_sessions", &[("type", "foreign")]), 0.0);
    assert_eq!(
        m.value("rtpengine_mediastreams", &[("type", "userspace")]),
        4.0
    );
    assert_eq!(
        m.value("rtpengine_mediastreams", &[("type", "kernel")]),
        0.0
    );
    assert_eq!(
        m.value("rtpengine_packets_total", &[("type", "userspace")]),
        30.0
    );
    assert_eq!(
        m.value("rtpengine_bytes_total", &[("type", "userspace")]),
        30.0 * 172.0
    );
    assert_eq!(
        m.value("rtpengine_packets_total", &[("type", "kernel")]),
        0.0
    );
    assert_eq!(
        m.value("rtpengine_packet_errors_total", &[("type", "userspace")]),
        0.0
    );
    assert_eq!(
        m.value("rtpengine_ports_used", &ports),
        8.0,
        "2 calls x 2 sides x RTP+RTCP"
    );
    // Free: the 5 000 even/odd pairs of 30000..=40000 not taken, two ports each.
    assert_eq!(
        m.value("rtpengine_ports_free", &ports),
        2.0 * (5000.0 - 4.0)
    );
    let proxy = ("proxy", "127.0.0.1");
    assert_eq!(
        m.value("rtpengine_requests_total", &[proxy, ("request", "offer")]),
        2.0
    );
    assert_eq!(
        m.value("rtpengine_requests_total", &[proxy, ("request", "answer")]),
        2.0
    );
    assert_eq!(
        m.value(
            "rtpengine_requests_total",
            &[proxy, ("request", "start recording")]
        ),
        0.0
    );
    let offer_secs = m.value(
        "rtpengine_request_seconds_total",
        &[proxy, ("request", "offer")],
    );
    assert!(offer_secs > 0.0 && offer_secs < 1.0, "{offer_secs}");
    assert_eq!(m.value("rtpengine_errors_total", &[proxy]), 1.0);
    assert_eq!(
        m.value("rtpengine_sessions_total", &[]),
        0.0,
        "counted when calls end"
    );
    let items: f64 = m
        .samples
        .iter()
        .filter(|(n, _, _)| n == "rtpengine_poller_items_total")
        .map(|(_, _, v)| v)
        .sum();
    assert!(
        items >= 30.0,
        "relay threads drained {items} sockets for 30 packets"
    );

    // Ending both: durations, zero-packet and one-way streams are counted.
    std::thread::sleep(Duration::from_millis(200));
    rig.delete_now("m1");
    rig.delete_now("m2");
    let m = scrape(Some(&rig.ns.name), http).unwrap();
    assert_eq!(m.value("rtpengine_sessions", &[("type", "own")]), 0.0);
    assert_eq!(m.value("rtpengine_sessions_total", &[]), 2.0);
    assert_eq!(
        m.value(
            "rtpengine_closed_sessions_total",
            &[("reason", "terminated")]
        ),
        2.0
    );
    assert_eq!(
        m.value("rtpengine_closed_sessions_total", &[("reason", "timeout")]),
        0.0
    );
    assert_eq!(
        m.value("rtpengine_zero_packet_streams_total", &[]),
        1.0,
        "m2's callee side"
    );
    assert_eq!(
        m.value("rtpengine_one_way_sessions_total", &[]),
        1.0,
        "m2's caller side"
    );
    let total = m.value("rtpengine_call_duration_total", &[]);
    let squares = m.value("rtpengine_call_duration2_total", &[]);
    assert!(total > 0.2 && total < 30.0, "{total}");
    assert!(
        squares > 0.0 && squares <= total * total,
        "{squares} vs {total}"
    );
    assert!((m.value("rtpengine_call_duration_avg", &[]) - total / 2.0).abs() < 1e-6);
    // Traffic of ended calls stays in the totals.
    assert_eq!(
        m.value("rtpengine_packets_total", &[("type", "userspace")]),
        30.0
    );
    assert_eq!(m.value("rtpengine_ports_used", &ports), 0.0);
}
