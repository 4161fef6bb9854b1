//! SDES-keyed SRTP through the daemon, checked against libsrtp: plain RTP
//! to SRTP and back (`transport-protocol`), SRTP to SRTP with different
//! suites (unprotected and protected again), passthrough where both sides
//! use the same key, and forged packets, which must neither be relayed nor
//! move the stream.

use std::net::{SocketAddr, UdpSocket};

use rtpengine_tests::sdes_sdp as sdp;
use rtpengine_tests::*;

const A: &str = "198.51.100.1";
const B: &str = "198.51.100.3";

fn line(tag: u32, suite: &str, key: &str) -> CryptoLine {
    CryptoLine {
        tag,
        suite: suite.into(),
        key: key.into(),
    }
}

/// The key used by the caller (30 bytes, AES-128 counter mode).
const KEY_A: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
/// The callee's (30 bytes).
const KEY_B: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";
/// 28 bytes, AES-128-GCM.
const KEY_GCM: &str = "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3Bxcg";

fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, src) = s
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("expected a packet: {e}"));
    (buf[..n].to_vec(), src)
}

fn port_of(sdp: &str) -> u16 {
    media_ports(sdp)[0]
}

fn daemon(port: u16) -> SocketAddr {
    format!("203.0.113.1:{port}").parse().unwrap()
}

/// The `medias[0]` of party `tag` in a query reply.
fn media<'a>(q: &'a Dict, tag: &str) -> &'a Value {
    let Some(Value::List(m)) = dig(q, &["tags", tag, "medias"]) else {
        panic!("no medias for {tag} in {q:?}")
    };
    &m[0]
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::List(l)) => l
            .iter()
            .filter_map(|f| f.as_str().map(String::from))
            .collect(),
        other => panic!("not a list: {other:?}"),
    }
}

/// Offers plain RTP from A (`a_port`) as `RTP/SAVP` to B (`b_port`),
/// checks the twelve lines offered, and answers from B with
/// AES_CM_128_HMAC_SHA1_80 under its own key. Returns our key towards B,
/// B's key, and where B and A send.
fn plain_to_srtp(
    rig: &Rig,
    call: &str,
    a_port: u16,
    b_port: u16,
) -> (CryptoLine, CryptoLine, SocketAddr, SocketAddr) {
    let offer = rig.offer(
        call,
        "ft",
        &sdp(A, a_port, "RTP/AVP", &[]),
        vec![("transport-protocol", Value::str("RTP/SAVP"))],
    );
    assert!(offer.contains(" RTP/SAVP 0"), "{offer}");
    let ours = crypto_lines(&offer);
    let suites: Vec<&str> = ours.iter().map(|c| c.suite.as_str()).collect();
    assert_eq!(
        suites,
        [
            "AEAD_AES_256_GCM",
            "AEAD_AES_128_GCM",
            "AES_256_CM_HMAC_SHA1_80",
            "AES_256_CM_HMAC_SHA1_32",
            "AES_192_CM_HMAC_SHA1_80",
            "AES_192_CM_HMAC_SHA1_32",
            "AES_CM_128_HMAC_SHA1_80",
            "AES_CM_128_HMAC_SHA1_32",
            "F8_128_HMAC_SHA1_80",
            "F8_128_HMAC_SHA1_32",
            "NULL_HMAC_SHA1_80",
            "NULL_HMAC_SHA1_32"
        ],
        "{offer}"
    );
    let tags: Vec<u32> = ours.iter().map(|c| c.tag).collect();
    assert_eq!(tags, (1..=12).collect::<Vec<_>>());
    // a=crypto follows a=rtcp, as upstream writes it.
    let rtcp_at = offer.find("a=rtcp:").expect("a=rtcp");
    assert!(
        offer.find("a=crypto:").expect("a=crypto") > rtcp_at,
        "{offer}"
    );
    let to_b = ours[6].clone();
    let b_key = line(to_b.tag, &to_b.suite, KEY_B);
    let answer = rig.answer(
        call,
        "ft",
        "tt",
        &sdp(B, b_port, "RTP/SAVP", std::slice::from_ref(&b_key)),
        Vec::new(),
    );
    assert!(answer.contains(" RTP/AVP 0"), "{answer}");
    assert!(crypto_lines(&answer).is_empty(), "{answer}");
    (
        to_b,
        b_key,
        daemon(port_of(&offer)),
        daemon(port_of(&answer)),
    )
}

/// One packet each way between plain A and SRTP B, checked with libsrtp.
fn both_ways(
    peer: &mut SrtpPeer,
    (a, b): (&UdpSocket, &UdpSocket),
    (to_b, b_key): (&CryptoLine, &CryptoLine),
    (pa, pb): (SocketAddr, SocketAddr),
    seq: u16,
) {
    let plain = rtp(0, seq, 160 * u32::from(seq), 0xaaaa, seq as u8);
    a.send_to(&plain, pb).unwrap();
    let (srtp, from) = recv(b);
    assert_eq!(from, pa);
    assert_ne!(srtp, plain);
    assert_eq!(
        peer.unprotect(false, to_b, &srtp).as_deref(),
        Ok(&plain[..])
    );
    let plain = rtp(0, 1000 + seq, 160 * u32::from(seq), 0xbbbb, seq as u8);
    b.send_to(&peer.protect(false, b_key, &plain), pa).unwrap();
    expect_packet(a, pb, &plain);
}

/// One packet each way between SRTP A (sending under `a_key`, hearing
/// `to_a`) and plain B: A's unprotected on the way, B's protected with
/// our key, checked with libsrtp.
fn srtp_caller_both_ways(
    peer: &mut SrtpPeer,
    (a, b): (&UdpSocket, &UdpSocket),
    (a_key, to_a): (&CryptoLine, &CryptoLine),
    (pa, pb): (SocketAddr, SocketAddr),
    seq: u16,
) {
    let plain = rtp(0, seq, 160 * u32::from(seq), 0xaaaa, seq as u8);
    a.send_to(&peer.protect(false, a_key, &plain), pb).unwrap();
    expect_packet(b, pa, &plain);
    let plain = rtp(0, 500 + seq, 160 * u32::from(seq), 0xbbbb, seq as u8);
    b.send_to(&plain, pa).unwrap();
    let (srtp, from) = recv(a);
    assert_eq!(from, pb);
    assert_eq!(
        peer.unprotect(false, to_a, &srtp).as_deref(),
        Ok(&plain[..])
    );
}

/// A plain RTP caller and an SDES callee: the daemon offers every suite
/// with its own keys, the callee picks one; media both ways, RTP and RTCP,
/// decrypted and encrypted by libsrtp on the callee's side; a forged packet
/// from another source is dropped and does not move the stream.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn plain_caller_to_srtp_callee() {
    require_root();
    // Immediate learning: any packet that got through would move the stream.
    let rig = Rig::new("srtp-plain", &["--endpoint-learning=immediate"]);
    let mut peer = SrtpPeer::start();
    let a = rig.socket(&format!("{A}:2000"));
    let a_rtcp = rig.socket(&format!("{A}:2001"));
    let b = rig.socket(&format!("{B}:2002"));
    let b_rtcp = rig.socket(&format!("{B}:2003"));
    let b_forger = rig.socket(&format!("{B}:2050"));

    let (to_b, b_key, pa, pb) = plain_to_srtp(&rig, "srtp-1", 2000, 2002);
    let (pa_rtcp, pb_rtcp) = (daemon(pa.port() + 1), daemon(pb.port() + 1));

    // A forged packet from another port of the callee's host comes first:
    // dropped before learning.
    let plain_b = rtp(0, 100, 1000, 0xbbbb, 0x42);
    let mut forged = peer.protect(false, &b_key, &plain_b);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    b_forger.send_to(&forged, pa).unwrap();
    expect_silence(&a);

    // Caller → callee: plain in, SRTP out under our key; callee → caller:
    // SRTP under its key in, plain out.
    for seq in 0..5u16 {
        both_ways(&mut peer, (&a, &b), (&to_b, &b_key), (pa, pb), seq);
    }
    // SRTCP both ways.
    let sr = rtcp_sr(0xbbbb);
    b_rtcp
        .send_to(&peer.protect(true, &b_key, &sr), pa_rtcp)
        .unwrap();
    expect_packet(&a_rtcp, pb_rtcp, &sr);
    let sr = rtcp_sr(0xaaaa);
    a_rtcp.send_to(&sr, pb_rtcp).unwrap();
    let (srtcp, from) = recv(&b_rtcp);
    assert_eq!(from, pa_rtcp);
    assert_eq!(peer.unprotect(true, &to_b, &srtcp).as_deref(), Ok(&sr[..]));

    // A forged packet now: dropped; media still goes to the learned port.
    b_forger.send_to(&forged, pa).unwrap();
    expect_silence(&a);
    let plain = rtp(0, 99, 0, 0xaaaa, 9);
    a.send_to(&plain, pb).unwrap();
    let (srtp, _) = recv(&b);
    assert_eq!(
        peer.unprotect(false, &to_b, &srtp).as_deref(),
        Ok(&plain[..])
    );
    expect_silence(&b_forger);
    // A replayed packet is dropped too.
    let plain = rtp(0, 3000, 0, 0xbbbb, 7);
    let once = peer.protect(false, &b_key, &plain);
    b.send_to(&once, pa).unwrap();
    expect_packet(&a, pb, &plain);
    b.send_to(&once, pa).unwrap();
    expect_silence(&a);

    let q = rig.query("srtp-1");
    let mb = media(&q, "tt");
    assert!(
        str_list(mb.get("flags")).contains(&"SDES".to_string()),
        "{mb:?}"
    );
    assert_eq!(
        dig(&q, &["tags", "tt", "medias"])
            .and_then(|m| match m {
                Value::List(l) => l[0].get("streams"),
                _ => None,
            })
            .and_then(|s| match s {
                Value::List(l) => l[0]
                    .get("crypto suite")
                    .and_then(Value::as_str)
                    .map(String::from),
                _ => None,
            })
            .as_deref(),
        Some("AES_CM_128_HMAC_SHA1_80"),
        "{q:?}"
    );
    let ma = media(&q, "ft");
    assert!(
        !str_list(ma.get("flags")).contains(&"SDES".to_string()),
        "{ma:?}"
    );
    rig.delete_now("srtp-1");
}

/// An SRTP caller (AES-128-GCM) and an SRTP callee that picks one of the
/// daemon's suites (AES_CM_128_HMAC_SHA1_80): packets are unprotected and
/// protected again, each side with the keys it negotiated.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn srtp_to_srtp_across_suites() {
    require_root();
    let rig = Rig::new("srtp-x", &[]);
    let mut peer = SrtpPeer::start();
    let a = rig.socket(&format!("{A}:2000"));
    let b = rig.socket(&format!("{B}:2002"));
    let a_key = line(1, "AEAD_AES_128_GCM", KEY_GCM);
    let offer = rig.offer(
        "srtp-2",
        "ft",
        &sdp(A, 2000, "RTP/SAVP", std::slice::from_ref(&a_key)),
        Vec::new(),
    );
    let ours = crypto_lines(&offer);
    // The caller's line passes on first, under its tag and key.
    assert_eq!(ours[0], a_key, "{offer}");
    assert_eq!(ours.len(), 12, "{offer}");
    let to_b = ours
        .iter()
        .find(|c| c.suite == "AES_CM_128_HMAC_SHA1_80")
        .cloned()
        .expect("AES_CM_128_HMAC_SHA1_80 offered");
    let b_key = line(to_b.tag, &to_b.suite, KEY_B);
    let answer = rig.answer(
        "srtp-2",
        "ft",
        "tt",
        &sdp(B, 2002, "RTP/SAVP", std::slice::from_ref(&b_key)),
        Vec::new(),
    );
    // The caller gets its own suite and tag back, with a key of ours.
    let back = crypto_lines(&answer);
    assert_eq!(back.len(), 1, "{answer}");
    let to_a = back[0].clone();
    assert_eq!((to_a.tag, to_a.suite.as_str()), (1, "AEAD_AES_128_GCM"));
    assert_ne!(to_a.key, KEY_GCM);
    let (pa, pb) = (daemon(port_of(&offer)), daemon(port_of(&answer)));
    for seq in 0..5u16 {
        let plain = rtp(0, 10 + seq, 0, 0xaaaa, seq as u8);
        a.send_to(&peer.protect(false, &a_key, &plain), pb).unwrap();
        let (got, from) = recv(&b);
        assert_eq!(from, pa);
        assert_eq!(
            peer.unprotect(false, &to_b, &got).as_deref(),
            Ok(&plain[..])
        );
        let plain = rtp(0, 500 + seq, 0, 0xbbbb, seq as u8);
        b.send_to(&peer.protect(false, &b_key, &plain), pa).unwrap();
        let (got, from) = recv(&a);
        assert_eq!(from, pb);
        assert_eq!(
            peer.unprotect(false, &to_a, &got).as_deref(),
            Ok(&plain[..])
        );
    }
    rig.delete_now("srtp-2");
}

/// The callee takes the caller's own line: both sides then use the same
/// keys end to end and packets pass untouched (upstream's passthrough, so a
/// damaged packet passes too); `recrypt` makes the daemon authenticate
/// them (still relayed as received: protecting them again under the key
/// the caller sends with would repeat its indexes).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn same_keys_pass_through_unless_recrypt() {
    require_root();
    let rig = Rig::new("srtp-p", &[]);
    let mut peer = SrtpPeer::start();
    let a = rig.socket(&format!("{A}:2000"));
    let b = rig.socket(&format!("{B}:2002"));
    let a_key = line(1, "AES_CM_128_HMAC_SHA1_80", KEY_A);
    let b_key = line(1, "AES_CM_128_HMAC_SHA1_80", KEY_B);
    for (call, recrypt, ssrc) in [("srtp-3", false, 0xaaaa), ("srtp-4", true, 0xcccc)] {
        let flags = || match recrypt {
            true => vec![("flags", strs(&["recrypt"]))],
            false => Vec::new(),
        };
        let offer = rig.offer(
            call,
            "ft",
            &sdp(A, 2000, "RTP/SAVP", std::slice::from_ref(&a_key)),
            flags(),
        );
        assert_eq!(crypto_lines(&offer)[0], a_key);
        let answer = rig.answer(
            call,
            "ft",
            "tt",
            &sdp(B, 2002, "RTP/SAVP", std::slice::from_ref(&b_key)),
            flags(),
        );
        // The callee's line goes back verbatim.
        assert_eq!(
            crypto_lines(&answer),
            std::slice::from_ref(&b_key),
            "{answer}"
        );
        let (pa, pb) = (daemon(port_of(&offer)), daemon(port_of(&answer)));
        // (libsrtp never protects an index twice: one SSRC per call.)
        let plain = rtp(0, 10, 0, ssrc, 1);
        let srtp = peer.protect(false, &a_key, &plain);
        a.send_to(&srtp, pb).unwrap();
        expect_packet(&b, pa, &srtp);
        let plain = rtp(0, 11, 0, ssrc, 2);
        let mut damaged = peer.protect(false, &a_key, &plain);
        damaged[20] ^= 0xff;
        a.send_to(&damaged, pb).unwrap();
        match recrypt {
            false => expect_packet(&b, pa, &damaged),
            true => expect_silence(&b),
        }
        rig.delete_now(call);
    }
}

/// `SDES-only-`, `SDES-no-`, `SDES-pad` and `SDES-lifetime` shape the lines
/// offered; `SDES-off` leaves them out.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn sdes_flags_shape_the_offer() {
    require_root();
    let rig = Rig::new("srtp-f", &[]);
    let offer = rig.offer(
        "srtp-5",
        "ft",
        &sdp(A, 2000, "RTP/AVP", &[]),
        vec![
            ("transport-protocol", Value::str("RTP/SAVP")),
            (
                "flags",
                strs(&[
                    "SDES-only-AES_CM_128_HMAC_SHA1_80",
                    "SDES-only-AEAD_AES_128_GCM",
                    "SDES-pad",
                    "SDES-lifetime",
                ]),
            ),
        ],
    );
    let lines: Vec<&str> = offer
        .lines()
        .filter(|l| l.starts_with("a=crypto:"))
        .collect();
    assert_eq!(lines.len(), 2, "{offer}");
    assert!(
        lines[0].starts_with("a=crypto:1 AEAD_AES_128_GCM inline:"),
        "{offer}"
    );
    assert!(
        lines[0].ends_with("=|2^31"),
        "padded, with lifetime: {offer}"
    );
    assert!(
        lines[1].starts_with("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{offer}"
    );
    let r = rig.cmd(sdp_cmd(
        "offer",
        "srtp-6",
        "ft",
        None,
        &crlf(&sdp(A, 2004, "RTP/AVP", &[])),
        vec![
            ("transport-protocol", Value::str("RTP/SAVP")),
            (
                "SDES",
                strs(&[
                    "no-NULL_HMAC_SHA1_32",
                    "no-F8_128_HMAC_SHA1_80",
                    "order:AES_CM_128_HMAC_SHA1_80;AEAD_AES_128_GCM",
                    "prefer",
                ]),
            ),
        ],
    ));
    let offer = get_str(&r, "sdp");
    let ours = crypto_lines(offer);
    assert_eq!(ours.len(), 10, "{offer}");
    assert!(!offer.contains("NULL_HMAC_SHA1_32") && !offer.contains("F8_128_HMAC_SHA1_80 "));
    // `order:` puts the named suites first, tags unchanged.
    let head: Vec<(u32, &str)> = ours[..3]
        .iter()
        .map(|c| (c.tag, c.suite.as_str()))
        .collect();
    assert_eq!(
        head,
        [
            (7, "AES_CM_128_HMAC_SHA1_80"),
            (2, "AEAD_AES_128_GCM"),
            (1, "AEAD_AES_256_GCM")
        ],
        "{offer}"
    );
    // Every option is one of ours: no warning (`prefer` matters where
    // DTLS is offered too).
    assert!(!r.contains_key(b"warning".as_slice()), "{r:?}");
    let offer = rig.offer(
        "srtp-7",
        "ft",
        &sdp(A, 2008, "RTP/AVP", &[]),
        vec![
            ("transport-protocol", Value::str("RTP/SAVP")),
            ("flags", strs(&["SDES-off"])),
        ],
    );
    assert!(crypto_lines(&offer).is_empty(), "{offer}");
    for c in ["srtp-5", "srtp-6", "srtp-7"] {
        rig.delete_now(c);
    }
}

/// A call whose SRTP is terminated here, restored from Redis after a
/// restart: what the SDES phone sends is still unprotected (its key comes
/// back with the replayed SDP), but our keys towards it are new, never the
/// old ones (a fresh context under an old key would send packet indexes
/// again: a two-time pad, and with AES-GCM the authentication key). A
/// re-INVITE gives the phone the new key.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_restart_never_reuses_our_srtp_keys() {
    require_root();
    let mut rig = Rig::new("srtp-r", &[]);
    let redis = RedisServer::start(&rig.ns.name, 6392).unwrap();
    let args = ["-i", "203.0.113.1", "--redis=127.0.0.1:6392/1"];
    let ng = rig.daemon.ng;
    let restart = |rig: &mut Rig| {
        rig.daemon.terminate().unwrap();
        rig.daemon = Daemon::start_with(Some(&rig.ns.name), ng, &args).unwrap();
    };
    restart(&mut rig);
    let mut peer = SrtpPeer::start();
    let a = rig.socket(&format!("{A}:2000"));
    let b = rig.socket(&format!("{B}:2002"));
    let (to_b, b_key, pa, pb) = plain_to_srtp(&rig, "srtp-8", 2000, 2002);
    both_ways(&mut peer, (&a, &b), (&to_b, &b_key), (pa, pb), 1);
    assert!(
        wait_until(std::time::Duration::from_secs(3), || redis.dbsize(1) == 1),
        "the call is not in Redis"
    );
    restart(&mut rig);
    // The phone's packets still come through.
    let plain = rtp(0, 1002, 0, 0xbbbb, 2);
    b.send_to(&peer.protect(false, &b_key, &plain), pa).unwrap();
    expect_packet(&a, pb, &plain);
    // Ours go out under a key the phone does not have yet.
    let plain = rtp(0, 2, 0, 0xaaaa, 2);
    a.send_to(&plain, pb).unwrap();
    let (srtp, _) = recv(&b);
    assert!(
        peer.unprotect(false, &to_b, &srtp).is_err(),
        "old key reused"
    );
    // The re-INVITE's offer carries the key in force; with it, media flows.
    let offer = rig.offer(
        "srtp-8",
        "ft",
        &sdp(A, 2000, "RTP/AVP", &[]),
        vec![("transport-protocol", Value::str("RTP/SAVP"))],
    );
    let new = crypto_lines(&offer)
        .into_iter()
        .find(|c| c.tag == to_b.tag)
        .expect("the accepted line is offered again");
    assert_ne!(new.key, to_b.key);
    rig.answer(
        "srtp-8",
        "ft",
        "tt",
        &sdp(B, 2002, "RTP/SAVP", std::slice::from_ref(&b_key)),
        Vec::new(),
    );
    both_ways(&mut peer, (&a, &b), (&new, &b_key), (pa, pb), 3);
    rig.delete_now("srtp-8");
}

/// OSRTP (RFC 8643): `OSRTP=offer` turns a plain offer into one with our
/// a=crypto lines on RTP/AVP, and a callee that takes one gets SRTP;
/// `OSRTP=accept` gives an OSRTP caller SRTP though the callee answered
/// plain. Both checked with libsrtp; without the options, OSRTP passes
/// through end to end as before.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn osrtp_offer_and_accept() {
    require_root();
    let rig = Rig::new("srtp-osrtp", &["--endpoint-learning=immediate"]);
    let mut peer = SrtpPeer::start();
    let a = rig.socket(&format!("{A}:2010"));
    let b = rig.socket(&format!("{B}:2012"));

    // offer: plain caller, OSRTP towards the callee, which takes a line.
    let offer = rig.offer(
        "osrtp-1",
        "ft",
        &sdp(A, 2010, "RTP/AVP", &[]),
        vec![("OSRTP", Value::str("offer"))],
    );
    assert!(offer.contains(" RTP/AVP 0"), "{offer}");
    let ours = crypto_lines(&offer);
    assert_eq!(ours.len(), 12, "{offer}");
    let to_b = ours
        .iter()
        .find(|c| c.suite == "AES_CM_128_HMAC_SHA1_80")
        .expect("offered")
        .clone();
    let b_key = line(to_b.tag, &to_b.suite, KEY_B);
    // Early media answered plain first: the offer's lines stay ours, so
    // the final answer may still take one.
    let early = rig.answer(
        "osrtp-1",
        "ft",
        "tt",
        &sdp(B, 2012, "RTP/AVP", &[]),
        Vec::new(),
    );
    assert!(crypto_lines(&early).is_empty(), "{early}");
    let answer = rig.answer(
        "osrtp-1",
        "ft",
        "tt",
        &sdp(B, 2012, "RTP/AVP", std::slice::from_ref(&b_key)),
        Vec::new(),
    );
    assert!(
        crypto_lines(&answer).is_empty(),
        "the caller is plain: {answer}"
    );
    let (pa, pb) = (daemon(port_of(&offer)), daemon(port_of(&answer)));
    for seq in 0..3u16 {
        both_ways(&mut peer, (&a, &b), (&to_b, &b_key), (pa, pb), seq);
    }
    rig.delete_now("osrtp-1");

    // accept: an OSRTP caller, a plain answer; the caller gets our line.
    let a_key = line(1, "AES_CM_128_HMAC_SHA1_80", KEY_A);
    let offer = rig.offer(
        "osrtp-2",
        "ft",
        &sdp(A, 2010, "RTP/AVP", std::slice::from_ref(&a_key)),
        Vec::new(),
    );
    // Passed on untouched: the callee may take it end to end.
    assert_eq!(
        crypto_lines(&offer),
        std::slice::from_ref(&a_key),
        "{offer}"
    );
    let answer = rig.answer(
        "osrtp-2",
        "ft",
        "tt",
        &sdp(B, 2012, "RTP/AVP", &[]),
        vec![("OSRTP", Value::str("accept"))],
    );
    assert!(answer.contains(" RTP/AVP 0"), "{answer}");
    let to_a = crypto_lines(&answer);
    assert_eq!(to_a.len(), 1, "{answer}");
    assert_eq!(
        (to_a[0].tag, to_a[0].suite.as_str()),
        (1, "AES_CM_128_HMAC_SHA1_80")
    );
    assert_ne!(to_a[0].key, a_key.key, "our key towards the caller");
    let (pa, pb) = (daemon(port_of(&offer)), daemon(port_of(&answer)));
    for seq in 0..3u16 {
        srtp_caller_both_ways(&mut peer, (&a, &b), (&a_key, &to_a[0]), (pa, pb), seq);
    }
    rig.delete_now("osrtp-2");

    // An OSRTP caller and an SDES callee (transport-protocol RTP/SAVP):
    // the caller keeps SRTP, with our line.
    let offer = rig.offer(
        "osrtp-4",
        "ft",
        &sdp(A, 2010, "RTP/AVP", std::slice::from_ref(&a_key)),
        vec![("transport-protocol", Value::str("RTP/SAVP"))],
    );
    let to_b = crypto_lines(&offer)
        .into_iter()
        .find(|c| c.suite == "AES_CM_128_HMAC_SHA1_80")
        .expect("offered");
    assert_ne!(to_b.key, a_key.key, "our own key towards the callee");
    let b_key = line(to_b.tag, &to_b.suite, KEY_B);
    let answer = rig.answer(
        "osrtp-4",
        "ft",
        "tt",
        &sdp(B, 2012, "RTP/SAVP", std::slice::from_ref(&b_key)),
        Vec::new(),
    );
    assert!(answer.contains(" RTP/AVP 0"), "{answer}");
    let to_a = crypto_lines(&answer);
    assert_eq!(to_a.len(), 1, "{answer}");
    assert_eq!(to_a[0].tag, a_key.tag);
    assert_ne!(to_a[0].key, b_key.key, "never the callee's key");
    let (pa, pb) = (daemon(port_of(&offer)), daemon(port_of(&answer)));
    let plain = rtp(0, 20, 0, 0xaaaa, 4);
    a.send_to(&peer.protect(false, &a_key, &plain), pb).unwrap();
    let (srtp, from) = recv(&b);
    assert_eq!(from, pa);
    assert_eq!(
        peer.unprotect(false, &to_b, &srtp).as_deref(),
        Ok(&plain[..])
    );
    rig.delete_now("osrtp-4");

    // Without OSRTP options: plain to plain, the caller's line passes both
    // ways untouched and nothing is decrypted here.
    let offer = rig.offer(
        "osrtp-3",
        "ft",
        &sdp(A, 2010, "RTP/AVP", std::slice::from_ref(&a_key)),
        Vec::new(),
    );
    let answer = rig.answer(
        "osrtp-3",
        "ft",
        "tt",
        &sdp(B, 2012, "RTP/AVP", std::slice::from_ref(&b_key)),
        Vec::new(),
    );
    assert_eq!(crypto_lines(&offer), std::slice::from_ref(&a_key));
    assert_eq!(crypto_lines(&answer), std::slice::from_ref(&b_key));
    let (pa, pb) = (daemon(port_of(&offer)), daemon(port_of(&answer)));
    let srtp = peer.protect(false, &a_key, &rtp(0, 9, 0, 0xaaaa, 1));
    a.send_to(&srtp, pb).unwrap();
    expect_packet(&b, pa, &srtp);
    rig.delete_now("osrtp-3");
}

/// `first` followed by the media sections of `second` (legacy OSRTP twins).
fn twinned(first: &str, second: &str) -> String {
    let at = second.find("m=").expect("a media section");
    format!("{first}{}", &second[at..])
}

/// OSRTP's legacy form (RFC 8643 §3.2: a plain section and its SRTP twin
/// on one port), with media checked by libsrtp: `offer-legacy` towards a
/// callee that takes the SRTP twin, and `accept-legacy` from a caller that
/// twins its offer.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn osrtp_legacy_twins_carry_media() {
    require_root();
    let rig = Rig::new("srtp-osrtp-legacy", &["--endpoint-learning=immediate"]);
    let mut peer = SrtpPeer::start();
    let a = rig.socket(&format!("{A}:2010"));
    let b = rig.socket(&format!("{B}:2012"));

    // offer-legacy: a plain twin and the SRTP section, on one port.
    let offer = rig.offer(
        "legacy-1",
        "ft",
        &sdp(A, 2010, "RTP/AVP", &[]),
        vec![
            ("transport-protocol", Value::str("RTP/SAVP")),
            ("OSRTP", Value::str("offer-legacy")),
        ],
    );
    let ports = media_ports(&offer);
    assert_eq!(ports.len(), 2, "{offer}");
    assert_eq!(ports[0], ports[1], "{offer}");
    let plain_at = offer.find(" RTP/AVP 0").expect("the plain twin");
    let srtp_at = offer.find(" RTP/SAVP 0").expect("the SRTP twin");
    assert!(plain_at < srtp_at, "{offer}");
    assert!(!offer[..srtp_at].contains("a=crypto:"), "{offer}");
    let to_b = crypto_lines(&offer)
        .into_iter()
        .find(|c| c.suite == "AES_CM_128_HMAC_SHA1_80")
        .expect("offered");
    let b_key = line(to_b.tag, &to_b.suite, KEY_B);
    // The callee takes the SRTP twin and rejects the plain one.
    let answer = rig.answer(
        "legacy-1",
        "ft",
        "tt",
        &twinned(
            &sdp(B, 0, "RTP/AVP", &[]),
            &sdp(B, 2012, "RTP/SAVP", std::slice::from_ref(&b_key)),
        ),
        Vec::new(),
    );
    assert_eq!(media_ports(&answer).len(), 1, "{answer}");
    assert!(answer.contains(" RTP/AVP 0"), "{answer}");
    assert!(crypto_lines(&answer).is_empty(), "{answer}");
    let (pa, pb) = (daemon(ports[0]), daemon(port_of(&answer)));
    for seq in 0..3u16 {
        both_ways(&mut peer, (&a, &b), (&to_b, &b_key), (pa, pb), seq);
    }
    rig.delete_now("legacy-1");

    // accept-legacy: the caller twins its offer; the callee gets one plain
    // section, the caller both back (its plain twin rejected in place).
    let a_key = line(1, "AES_CM_128_HMAC_SHA1_80", KEY_A);
    let offer = rig.offer(
        "legacy-2",
        "ft",
        &twinned(
            &sdp(A, 2010, "RTP/AVP", &[]),
            &sdp(A, 2010, "RTP/SAVP", std::slice::from_ref(&a_key)),
        ),
        vec![
            ("transport-protocol", Value::str("RTP/AVP")),
            ("OSRTP", Value::str("accept-legacy")),
        ],
    );
    assert_eq!(media_ports(&offer).len(), 1, "{offer}");
    assert!(crypto_lines(&offer).is_empty(), "{offer}");
    let answer = rig.answer(
        "legacy-2",
        "ft",
        "tt",
        &sdp(B, 2012, "RTP/AVP", &[]),
        Vec::new(),
    );
    let ports = media_ports(&answer);
    assert_eq!(ports.len(), 2, "{answer}");
    assert_eq!(ports[0], 0, "{answer}");
    let to_a = crypto_lines(&answer);
    assert_eq!(to_a.len(), 1, "{answer}");
    assert_eq!(to_a[0].tag, 1);
    assert_ne!(to_a[0].key, a_key.key, "our key towards the caller");
    let (pa, pb) = (daemon(port_of(&offer)), daemon(ports[1]));
    for seq in 0..3u16 {
        srtp_caller_both_ways(&mut peer, (&a, &b), (&a_key, &to_a[0]), (pa, pb), seq);
    }
    rig.delete_now("legacy-2");
}

/// A plain caller that starts its RTP sequence over under the same SSRC (a
/// re-INVITE, a B2BUA switching sources) keeps reaching its SRTP callee:
/// libsrtp refuses indexes behind its window, so the daemon renumbers
/// what it protects (one packet is lost). Upstream sends the old indexes
/// again, which libsrtp drops.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_plain_caller_starting_its_sequence_over_keeps_reaching_an_srtp_callee() {
    require_root();
    let rig = Rig::new("srtp-restart", &["--endpoint-learning=immediate"]);
    let mut peer = SrtpPeer::start();
    let a = rig.socket(&format!("{A}:2020"));
    let b = rig.socket(&format!("{B}:2022"));
    let (to_b, _, pa, pb) = plain_to_srtp(&rig, "restart-1", 2020, 2022);
    let plain = |seq: u16| rtp(0, seq, 160 * u32::from(seq), 0xaaaa, seq as u8);
    let through = |peer: &mut SrtpPeer, seq: u16| {
        a.send_to(&plain(seq), pb).unwrap();
        let (srtp, from) = recv(&b);
        assert_eq!(from, pa);
        peer.unprotect(false, &to_b, &srtp)
            .unwrap_or_else(|e| panic!("libsrtp refused seq {seq}: {e}"))
    };
    for seq in 20_000..20_010u16 {
        assert_eq!(through(&mut peer, seq), plain(seq));
    }
    // Started over at 100: the first packet is not sent, the rest follow
    // 20 009 and libsrtp takes each.
    a.send_to(&plain(100), pb).unwrap();
    expect_silence(&b);
    for (n, seq) in (101..110u16).enumerate() {
        let got = through(&mut peer, seq);
        assert_eq!(got[2..4], (20_010 + n as u16).to_be_bytes(), "renumbered");
        assert_eq!(got[4..], plain(seq)[4..]);
    }
    rig.delete_now("restart-1");
}
