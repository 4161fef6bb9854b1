//! Calls through the real daemon in a network namespace: offer/answer SDP as
//! upstream writes it, and RTP/RTCP relayed with the right sources.

use rtpengine_tests::*;

/// Upstream's "basic, forward" case (t/auto-daemon-tests-heuristic.pl).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn basic_forward() {
    require_root();
    let rig = Rig::new("basic", &["--endpoint-learning=heuristic"]);
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    let imp1 = rig.socket("198.51.100.3:2032");
    let imp2 = rig.socket("198.51.100.6:2012");

    let r = rig.cmd(sdp_cmd(
        "offer",
        "basic-1",
        "ft",
        None,
        &crlf(OFFER),
        vec![],
    ));
    assert_eq!(get_str(&r, "result"), "ok");
    let ports = match_sdp(
        get_str(&r, "sdp"),
        "v=0
        o=- 1545997027 1 IN IP4 198.51.100.1
        s=tester
        t=0 0
        m=audio PORT RTP/AVP 0 8
        c=IN IP4 203.0.113.1
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=sendrecv
        a=rtcp:PORT",
    );
    let port_a = ports[0];
    assert_eq!(ports[1], port_a + 1);

    let r = rig.cmd(sdp_cmd(
        "answer",
        "basic-1",
        "ft",
        Some("tt"),
        &crlf(ANSWER),
        vec![],
    ));
    let ports = match_sdp(
        get_str(&r, "sdp"),
        "v=0
        o=- 1545997027 1 IN IP4 198.51.100.3
        s=tester
        t=0 0
        m=audio PORT RTP/AVP 0 8
        c=IN IP4 203.0.113.1
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=sendrecv
        a=rtcp:PORT",
    );
    let port_b = ports[0];
    assert_ne!(port_a, port_b);
    let pa: std::net::SocketAddr = format!("203.0.113.1:{port_a}").parse().unwrap();
    let pb: std::net::SocketAddr = format!("203.0.113.1:{port_b}").parse().unwrap();

    let p1 = rtp(0, 1000, 3000, 0x1234, 0);
    a.send_to(&p1, pb).unwrap();
    expect_packet(&b, pa, &p1);
    let p2 = rtp(0, 2000, 4000, 0x3456, 0);
    b.send_to(&p2, pa).unwrap();
    expect_packet(&a, pb, &p2);

    // Impostors are still forwarded to A (no strict source) and A→B stays
    // on the learned endpoint.
    for imp in [&imp1, &imp2] {
        let p = rtp(0, 2001, 4160, 0x3456, 1);
        imp.send_to(&p, pa).unwrap();
        expect_packet(&a, pb, &p);
        let q = rtp(0, 1001, 3160, 0x1234, 1);
        a.send_to(&q, pb).unwrap();
        expect_packet(&b, pa, &q);
    }
    for s in [&a, &b, &imp1, &imp2] {
        expect_silence(s);
    }

    // RTCP both ways on port + 1, from port + 1.
    let a_rtcp = rig.socket("198.51.100.1:2011");
    let b_rtcp = rig.socket("198.51.100.3:2013");
    let sr = [
        0x80, 200, 0, 6, 0, 0, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        17, 18, 19, 20,
    ];
    let pa1: std::net::SocketAddr = format!("203.0.113.1:{}", port_a + 1).parse().unwrap();
    let pb1: std::net::SocketAddr = format!("203.0.113.1:{}", port_b + 1).parse().unwrap();
    a_rtcp.send_to(&sr, pb1).unwrap();
    expect_packet(&b_rtcp, pa1, &sr);
    b_rtcp.send_to(&sr, pa1).unwrap();
    expect_packet(&a_rtcp, pb1, &sr);

    let q = rig.cmd(dict([
        ("command", Value::str("query")),
        ("call-id", Value::str("basic-1")),
    ]));
    let totals = q.get(&b"totals"[..]).unwrap();
    let rtp_t = totals.get("RTP").unwrap();
    assert_eq!(
        rtp_t.get("packets"),
        Some(&Value::Int(6)),
        "A 3, B 1, impostors 2: {q:?}"
    );
    assert_eq!(
        totals.get("RTCP").unwrap().get("packets"),
        Some(&Value::Int(2))
    );
}
