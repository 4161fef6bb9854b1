//! The AF_XDP relay end to end: SRTP the daemon encrypts and decrypts
//! cannot be forwarded by the kernel program, so after its first packet
//! each such stream is steered to the daemon's AF_XDP sockets (real XDP
//! program, real veths in namespaces) and its packets go out as frames
//! built in userspace. Checked: every packet arrives, with the right
//! source and valid checksums, SRTP checked by libsrtp both ways; the
//! `/metrics` counters show the packets took AF_XDP; without a resolved
//! neighbour the relay falls back to the socket and catches up once the
//! stack resolved it; with `--no-af-xdp` the sockets relay everything.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use rtpengine_tests::sdes_sdp as sdp;
use rtpengine_tests::*;

const CALLER: &str = Topology::CALLER_V4;
const CALLEE: &str = Topology::CALLEE_V4;
const METRICS: &str = "127.0.0.1:2280";
/// The callee's key (30 bytes, AES-128 counter mode).
const KEY_B: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";

/// A plain caller (port 5000) calls an SDES callee (port 6000) through
/// the proxy's `int` and `ext` interfaces. Returns our key towards the
/// callee, the callee's key, and where the callee and the caller send.
fn plain_to_srtp(p: &Proxy, id: &str) -> (CryptoLine, CryptoLine, SocketAddr, SocketAddr) {
    let offered = offer_int_to_ext(
        p,
        id,
        "ft",
        &sdp(CALLER, 5000, "RTP/AVP", &[]),
        vec![("transport-protocol", Value::str("RTP/SAVP"))],
    );
    let to_b = crypto_lines(&offered)
        .into_iter()
        .find(|c| c.suite == "AES_CM_128_HMAC_SHA1_80")
        .expect("AES_CM_128_HMAC_SHA1_80 offered");
    let b_key = CryptoLine {
        tag: to_b.tag,
        suite: to_b.suite.clone(),
        key: KEY_B.into(),
    };
    let r =
        p.ng.call(&sdp_cmd(
            "answer",
            id,
            "ft",
            Some("tt"),
            &sdp(CALLEE, 6000, "RTP/SAVP", std::slice::from_ref(&b_key)),
            Vec::new(),
        ))
        .unwrap();
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    let answered = get_str(&r, "sdp").to_owned();
    (
        to_b,
        b_key,
        sa(Topology::PROXY_EXT_V4, media_ports(&offered)[0]),
        sa(Topology::PROXY_INT_V4, media_ports(&answered)[0]),
    )
}

/// Sends `n` packets each way: plain from the caller, which the callee
/// must be able to unprotect; SRTP from the callee, which must reach the
/// caller plain.
#[allow(clippy::too_many_arguments, reason = "both ends of a call")]
fn exchange_srtp(
    peer: &mut SrtpPeer,
    (a, b): (&UdpSocket, &UdpSocket),
    (to_b, b_key): (&CryptoLine, &CryptoLine),
    (pa, pb): (SocketAddr, SocketAddr),
    seq0: u16,
    n: u16,
) {
    for i in 0..n {
        let seq = seq0 + i;
        let plain = rtp(0, seq, 160 * u32::from(seq), 0xaaaa, seq as u8);
        a.send_to(&plain, pb).unwrap();
        let mut buf = [0u8; 2048];
        let (len, from) = b.recv_from(&mut buf).expect("SRTP at the callee");
        assert_eq!(from, pa);
        assert_eq!(
            peer.unprotect(false, to_b, &buf[..len]).as_deref(),
            Ok(&plain[..]),
            "packet {seq} to the callee"
        );
        let plain = rtp(0, 1000 + seq, 160 * u32::from(seq), 0xbbbb, !(seq as u8));
        b.send_to(&peer.protect(false, b_key, &plain), pa).unwrap();
        expect_packet(a, pb, &plain);
    }
}

fn af_xdp(p: &Topology, kind: &str) -> f64 {
    scrape(Some(&p.proxy.name), METRICS.parse().unwrap())
        .unwrap()
        .value("rtpengine_af_xdp_packets_total", &[("type", kind)])
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn srtp_is_relayed_over_af_xdp() {
    let t = Topology::new("x4");
    let p = start_proxy(&t, &[&format!("--listen-http={METRICS}")]).unwrap();
    let mut peer = SrtpPeer::start();
    let a = t.caller.bind_udp(&format!("{CALLER}:5000"));
    let b = t.callee.bind_udp(&format!("{CALLEE}:6000"));
    let (to_b, b_key, pa, pb) = plain_to_srtp(&p, "x1");
    let csum = (t.caller.udp_in_csum_errors(), t.callee.udp_in_csum_errors());

    // The first packet each way goes through the sockets and steers both
    // streams; the dump shows them.
    exchange_srtp(&mut peer, (&a, &b), (&to_b, &b_key), (pa, pb), 1, 1);
    assert_eq!(af_xdp(&t, "received"), 0.0);
    let d = dump_table(&p.pin_dir, 0);
    assert_eq!(d.matches("-> AF_XDP").count(), 2, "{d}");
    assert!(!stream_flags(&p, "x1", "ft").contains(&"kernelized".to_owned()));

    exchange_srtp(&mut peer, (&a, &b), (&to_b, &b_key), (pa, pb), 2, 50);
    assert_eq!(af_xdp(&t, "received"), 100.0);
    assert_eq!(af_xdp(&t, "sent"), 100.0);
    assert_eq!(af_xdp(&t, "fallback"), 0.0);
    assert_eq!(af_xdp(&t, "dropped"), 0.0);
    assert_eq!(
        (t.caller.udp_in_csum_errors(), t.callee.udp_in_csum_errors()),
        csum,
        "receivers saw bad UDP checksums"
    );
    // Relayed in userspace, and counted as such: 51 each way.
    let q =
        p.ng.call(&dict([
            ("command", Value::str("query")),
            ("call-id", Value::str("x1")),
        ]))
        .unwrap();
    assert_eq!(
        dig_int(&q, &["totals", "RTP", "packets"]),
        Some(102),
        "{q:?}"
    );

    // A forged packet (not under the callee's key) is dropped there too,
    // and moves nothing: the next genuine one still arrives.
    b.send_to(&rtp(0, 7, 7, 0xbbbb, 7), pa).unwrap();
    exchange_srtp(&mut peer, (&a, &b), (&to_b, &b_key), (pa, pb), 60, 1);
    assert_eq!(af_xdp(&t, "received"), 103.0);

    // Delete takes the steering flows out with the sockets.
    let r =
        p.ng.call(&dict([
            ("command", Value::str("delete")),
            ("call-id", Value::str("x1")),
            ("delete-delay", Value::Int(0)),
        ]))
        .unwrap();
    assert_eq!(get_str(&r, "result"), "ok");
    assert!(
        wait_until(Duration::from_secs(3), || dump_table(&p.pin_dir, 0)
            .contains("kernel table 0: 0 flow(s)")),
        "{}",
        dump_table(&p.pin_dir, 0)
    );
    drop(p.daemon);
}

/// No neighbour entry for the callee: the frames have no next hop, so the
/// relay sends through the socket (the stack resolves the neighbour on
/// the way) and builds frames again once the monitor saw it resolved.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn an_unresolved_neighbour_falls_back_to_the_socket() {
    let t = Topology::new("xn");
    t.proxy
        .exec(&["ip", "neigh", "del", CALLEE, "dev", "p1"])
        .unwrap();
    let p = start_proxy(&t, &[&format!("--listen-http={METRICS}")]).unwrap();
    let mut peer = SrtpPeer::start();
    let a = t.caller.bind_udp(&format!("{CALLER}:5000"));
    let b = t.callee.bind_udp(&format!("{CALLEE}:6000"));
    let (to_b, b_key, pa, pb) = plain_to_srtp(&p, "x2");
    exchange_srtp(&mut peer, (&a, &b), (&to_b, &b_key), (pa, pb), 1, 1);
    t.proxy
        .exec(&["ip", "neigh", "flush", "dev", "p1"])
        .unwrap();
    exchange_srtp(&mut peer, (&a, &b), (&to_b, &b_key), (pa, pb), 2, 1);
    assert_eq!(af_xdp(&t, "received"), 2.0);
    assert!(
        af_xdp(&t, "fallback") >= 1.0,
        "the first went through the socket"
    );
    // Once resolved, frames again (every packet still arrives).
    exchange_srtp(&mut peer, (&a, &b), (&to_b, &b_key), (pa, pb), 3, 30);
    assert_eq!(af_xdp(&t, "received"), 62.0);
    assert!(af_xdp(&t, "sent") >= 30.0, "sent {}", af_xdp(&t, "sent"));
    drop(p.daemon);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn without_af_xdp_the_sockets_relay_srtp() {
    let t = Topology::new("xo");
    let p = start_proxy(&t, &[&format!("--listen-http={METRICS}"), "--no-af-xdp"]).unwrap();
    let mut peer = SrtpPeer::start();
    let a = t.caller.bind_udp(&format!("{CALLER}:5000"));
    let b = t.callee.bind_udp(&format!("{CALLEE}:6000"));
    let (to_b, b_key, pa, pb) = plain_to_srtp(&p, "x3");
    exchange_srtp(&mut peer, (&a, &b), (&to_b, &b_key), (pa, pb), 1, 20);
    let m = scrape(Some(&t.proxy.name), METRICS.parse().unwrap()).unwrap();
    assert!(m
        .get("rtpengine_af_xdp_packets_total", &[("type", "received")])
        .is_none());
    assert!(dump_table(&p.pin_dir, 0).contains("kernel table 0: 0 flow(s)"));
    drop(p.daemon);
}

/// A WebRTC caller (aiortc: ICE, DTLS-SRTP, rtcp-mux) to a plain phone
/// across the proxy: ICE and DTLS go to the sockets, the SRTP after them
/// over AF_XDP, both ways, decrypted and decoded at each end.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn webrtc_media_is_relayed_over_af_xdp() {
    let t = Topology::new("xw");
    let p = start_proxy(&t, &[&format!("--listen-http={METRICS}")]).unwrap();
    let mut browser = WebrtcPeer::start(&t.caller, CALLER);
    let phone = t.callee.bind_udp(&format!("{CALLEE}:6000"));
    let to_phone = offer_int_to_ext(
        &p,
        "xw1",
        "browser",
        &browser.offer(),
        vec![
            ("transport-protocol", Value::str("RTP/AVP")),
            ("ICE", Value::str("remove")),
            ("rtcp-mux", Value::List(vec![Value::str("demux")])),
        ],
    );
    let r =
        p.ng.call(&sdp_cmd(
            "answer",
            "xw1",
            "browser",
            Some("phone"),
            &sdp(CALLEE, 6000, "RTP/AVP", &[]),
            Vec::new(),
        ))
        .unwrap();
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    browser.remote_answer(get_str(&r, "sdp"));
    browser.run(3.0);
    let to_daemon = sa(Topology::PROXY_EXT_V4, media_ports(&to_phone)[0]);
    let got = plain_side(&phone, to_daemon, PEER_SAMPLE_BYTE, 3.0);
    let report = browser.report();
    assert_eq!(report.state, "connected", "{report:?}");
    let audio = got
        .iter()
        .filter(|p| p.len() == 172 && p[1] & 0x7f == 0)
        .filter(|p| p[12..].iter().all(|&b| b == PEER_SAMPLE_BYTE))
        .count();
    assert!(
        audio > 50,
        "{audio} of {} packets are the browser's tone",
        got.len()
    );
    assert!(report.frames > 50, "{report:?}");
    assert_eq!(report.samples, [DECODED_CE], "{report:?}");
    // The media took AF_XDP, in and out (over 50 packets each way were
    // checked above; only the first each way went through the sockets).
    let (received, sent) = (af_xdp(&t, "received"), af_xdp(&t, "sent"));
    assert!(received > 100.0, "received {received}");
    assert!(sent > 100.0, "sent {sent}");
    assert_eq!(af_xdp(&t, "fallback"), 0.0);
    assert_eq!(af_xdp(&t, "overflow"), 0.0);
    drop(p.daemon);
}
