//! WebRTC ↔ SIP bridging checked against a real WebRTC stack (aiortc: ICE,
//! DTLS-SRTP, rtcp-mux, SAVPF): the WebRTC party offers or answers through
//! the daemon, the other side speaks plain RTP or SDES-keyed SRTP, media
//! flows both ways and its content is checked on both ends.

use std::net::{SocketAddr, UdpSocket};

use rtpengine_tests::*;

/// The WebRTC party's address (its only host candidate).
const BROWSER: &str = "198.51.100.1";
/// The SIP party's.
const PHONE: &str = "198.51.100.3";

fn daemon(port: u16) -> SocketAddr {
    format!("203.0.113.1:{port}").parse().unwrap()
}

fn plain_sdp(port: u16, protocol: &str, extra: &str) -> String {
    format!(
        "v=0\no=- 1 1 IN IP4 {PHONE}\ns=-\nt=0 0\nm=audio {port} {protocol} 0\nc=IN IP4 {PHONE}\na=sendrecv\n{extra}"
    )
}

fn lines<'a>(sdp: &'a str, prefix: &str) -> Vec<&'a str> {
    sdp.lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with(prefix))
        .collect()
}

/// What the SDP towards the WebRTC party must carry: our DTLS and ICE
/// attributes (one candidate: ICE runs on the RTP port, the party muxes;
/// `a=ice-lite` where we are a lite agent), rtcp-mux, nothing of the other
/// side's, no BUNDLE.
fn check_webrtc_sdp(sdp: &str, setup: &str, lite: bool) {
    assert!(sdp.contains(" UDP/TLS/RTP/SAVPF 0"), "{sdp}");
    assert_eq!(
        lines(sdp, "a=setup:"),
        [format!("a=setup:{setup}")],
        "{sdp}"
    );
    let fp = lines(sdp, "a=fingerprint:");
    assert_eq!(fp.len(), 1, "{sdp}");
    assert!(fp[0].starts_with("a=fingerprint:sha-256 "), "{sdp}");
    assert_eq!(fp[0].len(), "a=fingerprint:sha-256 ".len() + 32 * 3 - 1);
    assert_eq!(lines(sdp, "a=ice-lite").len(), usize::from(lite), "{sdp}");
    assert_eq!(
        lines(sdp, "a=ice-ufrag:")[0].len(),
        "a=ice-ufrag:".len() + 8
    );
    assert_eq!(lines(sdp, "a=ice-pwd:")[0].len(), "a=ice-pwd:".len() + 26);
    // RTP, and RTCP where it has a port of its own (mux offered, not yet
    // required: as upstream).
    let port = media_ports(sdp)[0];
    let rtcp = lines(sdp, "a=rtcp:")
        .first()
        .and_then(|l| l["a=rtcp:".len()..].split(' ').next()?.parse::<u16>().ok())
        .filter(|&p| p != port);
    let want: Vec<(u16, &str, &str)> = [(port, "1", "2130706431")]
        .into_iter()
        .chain(rtcp.map(|p| (p, "2", "2130706430")))
        .collect();
    let cands = lines(sdp, "a=candidate:");
    assert_eq!(cands.len(), want.len(), "{sdp}");
    for (c, (port, comp, prio)) in cands.iter().zip(want) {
        let fields: Vec<&str> = c.split_whitespace().collect();
        assert_eq!(fields[0].len(), "a=candidate:".len() + 16);
        let port = port.to_string();
        assert_eq!(
            fields[1..],
            [comp, "UDP", prio, "203.0.113.1", &port, "typ", "host"],
            "{sdp}"
        );
    }
    assert!(lines(sdp, "a=group:").is_empty(), "{sdp}");
    assert_eq!(lines(sdp, "a=end-of-candidates").len(), 1, "{sdp}");
    assert_eq!(lines(sdp, "a=rtcp-mux").len(), 1, "{sdp}");
    assert!(lines(sdp, "a=crypto:").is_empty(), "{sdp}");
}

/// What the SDP towards the SIP party must not carry: anything of WebRTC.
fn check_sip_sdp(sdp: &str, protocol: &str) {
    assert!(sdp.contains(&format!(" {protocol} ")), "{sdp}");
    for gone in [
        "a=setup:",
        "a=fingerprint:",
        "a=ice-",
        "a=candidate:",
        "a=end-of-candidates",
        "a=group:BUNDLE",
        "a=bundle-only",
    ] {
        assert!(lines(sdp, gone).is_empty(), "{gone} in {sdp}");
    }
}

/// Media both ways for `secs`: the peer's tone reaches the plain side as
/// PCMU 0xCE, the plain side's 0xCE reaches the peer (decoded as 988); the
/// peer had the ICE role `ice_role`.
fn media_both_ways(
    peer: &mut WebrtcPeer,
    phone: &UdpSocket,
    to_daemon: SocketAddr,
    ice_role: &str,
) {
    peer.run(3.0);
    let got = plain_side(phone, to_daemon, PEER_SAMPLE_BYTE, 3.0);
    let report = peer.report();
    assert_eq!(report.state, "connected", "{report:?}");
    assert_eq!(report.ice_role, ice_role, "{report:?}");
    let audio: Vec<&Vec<u8>> = got
        .iter()
        .filter(|p| p.len() == 172 && p[1] & 0x7f == 0)
        .collect();
    assert!(
        audio.len() > 50,
        "{} of {} packets are PCMU from the peer",
        audio.len(),
        got.len()
    );
    assert!(
        audio
            .iter()
            .all(|p| p[12..].iter().all(|&b| b == PEER_SAMPLE_BYTE)),
        "decrypted payload is the peer's tone"
    );
    assert!(report.frames > 50, "{report:?}");
    assert_eq!(report.samples, [DECODED_CE], "{report:?}");
}

/// A browser-like caller (aiortc offers ICE, DTLS-SRTP, rtcp-mux) to a
/// plain RTP phone, with the options Kamailio configurations use for it.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn webrtc_caller_to_plain_callee() {
    require_root();
    let rig = Rig::new("webrtc-plain", &[]);
    let mut peer = WebrtcPeer::start(&rig.ns, BROWSER);
    let phone = rig.socket(&format!("{PHONE}:6000"));

    let offer = peer.offer();
    let to_phone = rig.offer(
        "webrtc-1",
        "browser",
        &offer,
        vec![
            ("transport-protocol", Value::str("RTP/AVP")),
            ("ICE", Value::str("remove")),
            ("rtcp-mux", Value::List(vec![Value::str("demux")])),
        ],
    );
    check_sip_sdp(&to_phone, "RTP/AVP");
    assert!(lines(&to_phone, "a=rtcp-mux").is_empty(), "{to_phone}");
    let to_browser = rig.answer(
        "webrtc-1",
        "browser",
        "phone",
        &plain_sdp(6000, "RTP/AVP", ""),
        Vec::new(),
    );
    // aiortc offered actpass: we take the client role, as upstream. We are
    // a full ICE agent, controlled (the browser offered).
    check_webrtc_sdp(&to_browser, "active", false);
    // Its mid comes back though the phone wrote none.
    assert_eq!(lines(&to_browser, "a=mid:"), ["a=mid:0"], "{to_browser}");
    peer.remote_answer(&to_browser);
    media_both_ways(
        &mut peer,
        &phone,
        daemon(media_ports(&to_phone)[0]),
        "controlling",
    );

    // query names the suite DTLS negotiated.
    let q = rig.query("webrtc-1");
    let suite = dig(&q, &["tags", "browser", "medias"])
        .and_then(|m| match m {
            Value::List(l) => l.first(),
            _ => None,
        })
        .and_then(|m| m.get("streams"))
        .and_then(|s| match s {
            Value::List(l) => l.first(),
            _ => None,
        })
        .and_then(|s| s.get("crypto suite"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    assert!(
        matches!(
            suite.as_deref(),
            Some("AEAD_AES_256_GCM" | "AEAD_AES_128_GCM" | "AES_CM_128_HMAC_SHA1_80")
        ),
        "{suite:?}"
    );
}

/// A SIP party that keys SRTP by DTLS under `RTP/SAVPF` (as SBCs write
/// it), offering `a=crypto` too, to a plain phone: DTLS wins, as upstream
/// (the real DTLS stack of aiortc behind the relabelled protocol), and
/// neither its lines nor its fingerprint reach the plain side; media both
/// ways. With `SDES-prefer` its SDES line is answered instead.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn savpf_dtls_caller_to_plain_callee() {
    require_root();
    let rig = Rig::new("webrtc-savpf", &[]);
    let mut peer = WebrtcPeer::start(&rig.ns, BROWSER);
    let phone = rig.socket(&format!("{PHONE}:6004"));
    let crypto =
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
    let offer = format!("{}{crypto}", peer.offer()).replace("UDP/TLS/RTP/SAVPF", "RTP/SAVPF");
    let plain = || {
        vec![
            ("transport-protocol", Value::str("RTP/AVP")),
            ("ICE", Value::str("remove")),
            ("rtcp-mux", Value::List(vec![Value::str("demux")])),
        ]
    };
    let to_phone = rig.offer("savpf-1", "sbc", &offer, plain());
    check_sip_sdp(&to_phone, "RTP/AVP");
    assert!(lines(&to_phone, "a=crypto:").is_empty(), "{to_phone}");
    let to_sbc = rig.answer(
        "savpf-1",
        "sbc",
        "phone",
        &plain_sdp(6004, "RTP/AVP", ""),
        Vec::new(),
    );
    assert!(to_sbc.contains(" RTP/SAVPF 0"), "{to_sbc}");
    assert_eq!(lines(&to_sbc, "a=setup:"), ["a=setup:active"], "{to_sbc}");
    assert_eq!(lines(&to_sbc, "a=fingerprint:").len(), 1, "{to_sbc}");
    assert!(lines(&to_sbc, "a=crypto:").is_empty(), "{to_sbc}");
    peer.remote_answer(&to_sbc.replace("RTP/SAVPF", "UDP/TLS/RTP/SAVPF"));
    media_both_ways(
        &mut peer,
        &phone,
        daemon(media_ports(&to_phone)[0]),
        "controlling",
    );

    // SDES-prefer: the same offer is answered with SDES.
    let mut opts = plain();
    opts.push(("SDES", Value::List(vec![Value::str("prefer")])));
    rig.offer("savpf-2", "sbc", &offer, opts);
    let to_sbc = rig.answer(
        "savpf-2",
        "sbc",
        "phone",
        &plain_sdp(6006, "RTP/AVP", ""),
        Vec::new(),
    );
    assert_eq!(lines(&to_sbc, "a=crypto:").len(), 1, "{to_sbc}");
    assert!(lines(&to_sbc, "a=setup:").is_empty(), "{to_sbc}");
    assert!(lines(&to_sbc, "a=fingerprint:").is_empty(), "{to_sbc}");
}

/// A plain caller to a WebRTC callee: the daemon offers DTLS (actpass) and
/// ICE, aiortc answers and takes a DTLS role; media both ways. As a full
/// agent that sent the offer we control and nominate (aiortc is
/// controlled); with `ICE-lite=forward` we only answer its checks and it
/// controls.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn plain_caller_to_webrtc_callee() {
    require_root();
    let rig = Rig::new("webrtc-callee", &[]);
    for (n, lite, role) in [(0, false, "controlled"), (1, true, "controlling")] {
        let mut peer = WebrtcPeer::start(&rig.ns, BROWSER);
        let port = 6002 + 10 * n;
        let phone = rig.socket(&format!("{PHONE}:{port}"));
        let call = format!("webrtc-2-{n}");
        let mut opts = vec![
            ("transport-protocol", Value::str("UDP/TLS/RTP/SAVPF")),
            ("ICE", Value::str("force")),
            ("rtcp-mux", Value::List(vec![Value::str("offer")])),
        ];
        if lite {
            opts.push(("ICE-lite", Value::str("forward")));
        }
        let to_browser = rig.offer(&call, "phone", &plain_sdp(port, "RTP/AVP", ""), opts);
        check_webrtc_sdp(&to_browser, "actpass", lite);
        let answer = peer.answer_to(&to_browser);
        let to_phone = rig.answer(&call, "phone", "browser", &answer, Vec::new());
        check_sip_sdp(&to_phone, "RTP/AVP");
        media_both_ways(&mut peer, &phone, daemon(media_ports(&to_phone)[0]), role);
    }
}

/// An SDES phone and a WebRTC caller: SRTP keyed by DTLS on one side and by
/// a=crypto on the other, both terminated here; checked with libsrtp.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn webrtc_caller_to_sdes_callee() {
    require_root();
    let rig = Rig::new("webrtc-sdes", &[]);
    let mut peer = WebrtcPeer::start(&rig.ns, BROWSER);
    let mut srtp = SrtpPeer::start();
    let phone = rig.socket(&format!("{PHONE}:6004"));

    let offer = peer.offer();
    let to_phone = rig.offer(
        "webrtc-3",
        "browser",
        &offer,
        vec![
            ("transport-protocol", Value::str("RTP/SAVP")),
            ("ICE", Value::str("remove")),
            // We are a lite agent towards the browser (the offer's
            // sender): it checks and nominates, we only answer.
            ("ICE-lite", Value::str("backward")),
            ("rtcp-mux", Value::List(vec![Value::str("demux")])),
        ],
    );
    // SDES, with our DTLS beside it (as upstream): the phone picks; the
    // browser's own DTLS stops here.
    let browser_fp = lines(&offer, "a=fingerprint:")[0].to_owned();
    assert_eq!(
        lines(&to_phone, "a=setup:"),
        ["a=setup:actpass"],
        "{to_phone}"
    );
    let fp = lines(&to_phone, "a=fingerprint:");
    assert!(fp.len() == 1 && fp[0] != browser_fp, "ours: {to_phone}");
    let without_dtls = to_phone
        .lines()
        .filter(|l| {
            !l.starts_with("a=setup:")
                && !l.starts_with("a=fingerprint:")
                && !l.starts_with("a=tls-id:")
        })
        .collect::<Vec<_>>()
        .join("\n");
    check_sip_sdp(&without_dtls, "RTP/SAVP");
    let ours = crypto_lines(&to_phone);
    let to_b = ours
        .iter()
        .find(|c| c.suite == "AES_CM_128_HMAC_SHA1_80")
        .expect("AES_CM_128_HMAC_SHA1_80 offered")
        .clone();
    let b_key = CryptoLine {
        tag: to_b.tag,
        suite: to_b.suite.clone(),
        key: "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk".into(),
    };
    let to_browser = rig.answer(
        "webrtc-3",
        "browser",
        "phone",
        &plain_sdp(6004, "RTP/SAVP", &format!("{}\n", b_key.attr())),
        Vec::new(),
    );
    check_webrtc_sdp(&to_browser, "active", true);
    peer.remote_answer(&to_browser);

    // The phone's side, by hand: SRTP under its key out, ours in.
    let to_daemon = daemon(media_ports(&to_phone)[0]);
    peer.run(3.0);
    phone
        .set_read_timeout(Some(std::time::Duration::from_millis(20)))
        .unwrap();
    let start = std::time::Instant::now();
    let (mut seq, mut plain_in) = (0u16, Vec::new());
    let mut buf = [0u8; 2048];
    while start.elapsed().as_secs_f64() < 3.0 {
        let pkt = rtp(0, seq, 160 * u32::from(seq), 0x5157_0002, PEER_SAMPLE_BYTE);
        phone
            .send_to(&srtp.protect(false, &b_key, &pkt), to_daemon)
            .unwrap();
        seq += 1;
        while let Ok((n, _)) = phone.recv_from(&mut buf) {
            if let Ok(p) = srtp.unprotect(false, &to_b, &buf[..n]) {
                plain_in.push(p);
            }
        }
    }
    let report = peer.report();
    assert_eq!(report.state, "connected", "{report:?}");
    assert_eq!(report.ice_role, "controlling", "{report:?}");
    assert!(
        plain_in.len() > 50,
        "{} SRTP packets from the peer unprotected",
        plain_in.len()
    );
    assert!(plain_in
        .iter()
        .all(|p| p[12..].iter().all(|&b| b == PEER_SAMPLE_BYTE)));
    assert_eq!(report.samples, [DECODED_CE], "{report:?}");
}

/// A re-INVITE from a new WebRTC session on the same dialogue (new
/// certificate, new ICE credentials: what a browser does after a reload or
/// an ICE restart): our ICE credentials change, a new DTLS handshake keys
/// SRTP again, and media flows again.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn reinvite_rekeys_dtls_and_restarts_ice() {
    require_root();
    let rig = Rig::new("webrtc-rekey", &[]);
    let phone = rig.socket(&format!("{PHONE}:6006"));
    let opts = || {
        vec![
            ("transport-protocol", Value::str("RTP/AVP")),
            ("ICE", Value::str("remove")),
            ("rtcp-mux", Value::List(vec![Value::str("demux")])),
        ]
    };
    let mut first = WebrtcPeer::start(&rig.ns, BROWSER);
    let to_phone = rig.offer("webrtc-4", "browser", &first.offer(), opts());
    let answer = plain_sdp(6006, "RTP/AVP", "");
    let to_browser = rig.answer("webrtc-4", "browser", "phone", &answer, Vec::new());
    first.remote_answer(&to_browser);
    let to_daemon = daemon(media_ports(&to_phone)[0]);
    media_both_ways(&mut first, &phone, to_daemon, "controlling");
    drop(first);

    let mut second = WebrtcPeer::start(&rig.ns, BROWSER);
    let to_phone2 = rig.offer("webrtc-4", "browser", &second.offer(), opts());
    let to_browser2 = rig.answer("webrtc-4", "browser", "phone", &answer, Vec::new());
    assert_ne!(
        lines(&to_browser2, "a=ice-ufrag:"),
        lines(&to_browser, "a=ice-ufrag:"),
        "an ICE restart gets new credentials"
    );
    assert_eq!(
        lines(&to_browser2, "a=fingerprint:"),
        lines(&to_browser, "a=fingerprint:"),
        "our certificate stays"
    );
    second.remote_answer(&to_browser2);
    media_both_ways(
        &mut second,
        &phone,
        daemon(media_ports(&to_phone2)[0]),
        "controlling",
    );
}

/// A browser's offer as Chrome writes it (trickle placeholder address,
/// ICE, DTLS actpass, BUNDLE, mux), with the fingerprint hash `hash` and
/// `a=setup:<setup>`.
fn chrome_offer(hash: &str, setup: &str) -> String {
    let len = match hash {
        "sha-1" => 20,
        "sha-384" => 48,
        _ => 32,
    };
    let digest: Vec<String> = (0..len).map(|i| format!("{:02X}", i * 7 % 256)).collect();
    format!(
        "v=0\no=- 4611731400430051336 2 IN IP4 127.0.0.1\ns=-\nt=0 0\na=group:BUNDLE 0\n\
         a=msid-semantic: WMS\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\nc=IN IP4 0.0.0.0\n\
         a=rtcp:9 IN IP4 0.0.0.0\n\
         a=candidate:1467250027 1 udp 2122260223 {BROWSER} 50000 typ host generation 0\n\
         a=ice-ufrag:Qx4F\na=ice-pwd:vbDw7zPm8j0ohzM4c4Yx3qB1\na=ice-options:trickle\n\
         a=fingerprint:{hash} {}\na=setup:{setup}\na=mid:0\na=sendrecv\na=rtcp-mux\n\
         a=rtpmap:111 opus/48000/2\na=rtpmap:0 PCMU/8000\n",
        digest.join(":")
    )
}

/// Browser hash and a=setup, offer and answer options, and the a=setup
/// and fingerprint hash the answer to the browser must carry.
type Case<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, Value)>,
    Vec<(&'a str, Value)>,
    &'a str,
    &'a str,
);

/// Protocol-level cases of the DTLS and ICE options, SDP only (what they
/// write follows upstream's documentation of the options).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn dtls_and_ice_options_shape_the_sdp() {
    require_root();
    let rig = Rig::new("webrtc-options", &[]);
    let to_plain = || {
        vec![
            ("transport-protocol", Value::str("RTP/AVP")),
            ("ICE", Value::str("remove")),
            ("rtcp-mux", Value::List(vec![Value::str("demux")])),
        ]
    };
    let answer = plain_sdp(6020, "RTP/AVP", "");
    // Our role follows the browser's a=setup; actpass leaves it to us
    // (active unless DTLS=passive). Our fingerprint's hash is the peer's,
    // unless DTLS-fingerprint names one.
    let cases: [Case; 5] = [
        ("sha-256", "actpass", vec![], vec![], "active", "sha-256"),
        ("sha-256", "active", vec![], vec![], "passive", "sha-256"),
        ("sha-384", "passive", vec![], vec![], "active", "sha-384"),
        (
            "sha-256",
            "actpass",
            vec![("DTLS", Value::str("passive"))],
            vec![],
            "passive",
            "sha-256",
        ),
        (
            "sha-1",
            "actpass",
            vec![],
            vec![("DTLS-fingerprint", Value::str("SHA-512"))],
            "active",
            "sha-512",
        ),
    ];
    for (n, (hash, setup, offer_opts, answer_opts, ours, our_hash)) in cases.into_iter().enumerate()
    {
        let call = format!("opts-{n}");
        let mut o = to_plain();
        o.extend(offer_opts);
        let to_phone = rig.offer(&call, "browser", &chrome_offer(hash, setup), o);
        check_sip_sdp(&to_phone, "RTP/AVP");
        let to_browser = rig.answer(&call, "browser", "phone", &answer, answer_opts);
        assert_eq!(
            lines(&to_browser, "a=setup:"),
            [format!("a=setup:{ours}")],
            "{to_browser}"
        );
        let fp = lines(&to_browser, "a=fingerprint:");
        assert!(
            fp[0].starts_with(&format!("a=fingerprint:{our_hash} ")),
            "{to_browser}"
        );
        assert!(lines(&to_browser, "a=ice-lite").is_empty(), "{to_browser}");
        assert_eq!(lines(&to_browser, "a=mid:"), ["a=mid:0"], "{to_browser}");
    }

    // A re-offer of the same association (same fingerprint and ufrag, now
    // actpass, as browsers re-offer) keeps our role and our ICE
    // credentials; a new ufrag changes only the latter.
    rig.offer(
        "opts-re",
        "browser",
        &chrome_offer("sha-256", "active"),
        to_plain(),
    );
    let first = rig.answer("opts-re", "browser", "phone", &answer, Vec::new());
    assert_eq!(lines(&first, "a=setup:"), ["a=setup:passive"], "{first}");
    rig.offer(
        "opts-re",
        "browser",
        &chrome_offer("sha-256", "actpass"),
        to_plain(),
    );
    let again = rig.answer("opts-re", "browser", "phone", &answer, Vec::new());
    assert_eq!(lines(&again, "a=setup:"), ["a=setup:passive"], "{again}");
    assert_eq!(lines(&again, "a=ice-ufrag:"), lines(&first, "a=ice-ufrag:"));
    assert_eq!(lines(&again, "a=ice-pwd:"), lines(&first, "a=ice-pwd:"));
    // An ICE restart (browsers keep DTLS across restartIce()): new ICE
    // credentials, the same association (our role and tls-id kept).
    let restart = chrome_offer("sha-256", "actpass").replace("ice-ufrag:Qx4F", "ice-ufrag:Zz9Q");
    rig.offer("opts-re", "browser", &restart, to_plain());
    let restarted = rig.answer("opts-re", "browser", "phone", &answer, Vec::new());
    assert_eq!(
        lines(&restarted, "a=setup:"),
        ["a=setup:passive"],
        "{restarted}"
    );
    assert_eq!(
        lines(&restarted, "a=tls-id:"),
        lines(&first, "a=tls-id:"),
        "{restarted}"
    );
    assert_ne!(
        lines(&restarted, "a=ice-ufrag:"),
        lines(&first, "a=ice-ufrag:")
    );

    // a=tls-id (RFC 8842): ours names the association and stays with it;
    // the browser's names its own: a new one is a new association (our
    // role is chosen again, our tls-id changes) even with the same
    // fingerprint and ICE credentials. `no-tls-id` writes none.
    let tls = |sdp: &str| lines(sdp, "a=tls-id:").first().map(|l| l.to_string());
    let with_tls = |id: &str| {
        chrome_offer("sha-256", "active").replace(
            "a=setup:active\n",
            &format!("a=setup:active\na=tls-id:{id}\n"),
        )
    };
    rig.offer(
        "opts-tls",
        "browser",
        &with_tls("AAAAAAAAAAAAAAAAAAAA1"),
        to_plain(),
    );
    let first = rig.answer("opts-tls", "browser", "phone", &answer, Vec::new());
    let ours = tls(&first).expect("a=tls-id");
    assert_eq!(ours.len(), "a=tls-id:".len() + 32, "{first}");
    assert_eq!(lines(&first, "a=setup:"), ["a=setup:passive"], "{first}");
    let actpass = |id: &str| with_tls(id).replace("a=setup:active", "a=setup:actpass");
    rig.offer(
        "opts-tls",
        "browser",
        &actpass("AAAAAAAAAAAAAAAAAAAA1"),
        to_plain(),
    );
    let again = rig.answer("opts-tls", "browser", "phone", &answer, Vec::new());
    assert_eq!(
        tls(&again).as_ref(),
        Some(&ours),
        "same association: {again}"
    );
    assert_eq!(
        lines(&again, "a=setup:"),
        ["a=setup:passive"],
        "role kept: {again}"
    );
    rig.offer(
        "opts-tls",
        "browser",
        &actpass("BBBBBBBBBBBBBBBBBBBB2"),
        to_plain(),
    );
    let renewed = rig.answer("opts-tls", "browser", "phone", &answer, Vec::new());
    assert_ne!(tls(&renewed).as_ref(), Some(&ours), "{renewed}");
    assert_eq!(lines(&renewed, "a=setup:"), ["a=setup:active"], "{renewed}");
    let mut o = to_plain();
    o.push(("flags", Value::List(vec![Value::str("no-tls-id")])));
    rig.offer(
        "opts-no-tls",
        "browser",
        &actpass("AAAAAAAAAAAAAAAAAAAA1"),
        o,
    );
    let none = rig.answer(
        "opts-no-tls",
        "browser",
        "phone",
        &answer,
        vec![("flags", Value::List(vec![Value::str("no-tls-id")]))],
    );
    assert_eq!(tls(&none), None, "{none}");
    assert_eq!(lines(&none, "a=fingerprint:").len(), 1, "{none}");

    // ICE=remove in the answer: no ICE towards the browser.
    rig.offer(
        "opts-ice",
        "browser",
        &chrome_offer("sha-256", "actpass"),
        to_plain(),
    );
    let to_browser = rig.answer(
        "opts-ice",
        "browser",
        "phone",
        &answer,
        vec![("ICE", Value::str("remove"))],
    );
    assert!(lines(&to_browser, "a=ice-").is_empty(), "{to_browser}");
    assert!(
        lines(&to_browser, "a=candidate:").is_empty(),
        "{to_browser}"
    );
    assert_eq!(lines(&to_browser, "a=setup:").len(), 1, "{to_browser}");

    // DTLS=off: nothing is terminated, and the browser's DTLS attributes
    // mean nothing to the plain phone: they stop here (as 10.5 does).
    let mut o = to_plain();
    o.push(("DTLS", Value::str("off")));
    let to_phone = rig.offer(
        "opts-off",
        "browser",
        &chrome_offer("sha-256", "actpass"),
        o,
    );
    assert!(lines(&to_phone, "a=setup:").is_empty(), "{to_phone}");
    assert!(lines(&to_phone, "a=fingerprint:").is_empty(), "{to_phone}");

    // WebRTC on an offer from a plain phone: the preset's SDP.
    let to_browser = rig.offer(
        "opts-webrtc",
        "phone",
        &plain_sdp(6022, "RTP/AVP", ""),
        vec![("flags", Value::List(vec![Value::str("WebRTC")]))],
    );
    assert!(to_browser.contains(" UDP/TLS/RTP/SAVPF 0"), "{to_browser}");
    assert_eq!(
        lines(&to_browser, "a=setup:"),
        ["a=setup:actpass"],
        "{to_browser}"
    );
    assert_eq!(lines(&to_browser, "a=rtcp-mux").len(), 1, "{to_browser}");
    assert!(lines(&to_browser, "a=rtcp:").is_empty(), "{to_browser}");
    assert_eq!(
        lines(&to_browser, "a=candidate:").len(),
        1,
        "mux required: RTP only"
    );
    assert_eq!(lines(&to_browser, "a=mid:"), ["a=mid:0"], "{to_browser}");
    assert!(lines(&to_browser, "a=crypto:").is_empty(), "{to_browser}");
    let r = rig.ng_cmd(
        "offer",
        vec![
            ("call-id", Value::str("opts-webrtc")),
            ("from-tag", Value::str("phone")),
            ("sdp", Value::str(plain_sdp(6022, "RTP/AVP", ""))),
            ("flags", Value::List(vec![Value::str("WebRTC")])),
        ],
    );
    assert!(
        !r.contains_key(b"warning".as_slice()),
        "the preset is supported: {r:?}"
    );

    // A malformed fingerprint is skipped with a warning in the log; the
    // answer still carries ours (no media can flow without the peer's).
    let bad = chrome_offer("sha-256", "actpass")
        .replace("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 ZZ");
    rig.offer("opts-bad", "browser", &bad, to_plain());
    let to_browser = rig.answer("opts-bad", "browser", "phone", &answer, Vec::new());
    assert_eq!(
        lines(&to_browser, "a=fingerprint:").len(),
        1,
        "{to_browser}"
    );

    // ICE-lite (offers only): `backward` makes us lite towards the offer's
    // sender, the `lite-…` forms of the ICE list do the same.
    for (n, opt) in [
        ("ICE-lite", Value::str("backward")),
        ("ICE", Value::List(vec![Value::str("lite-both")])),
    ]
    .into_iter()
    .enumerate()
    {
        let call = format!("opts-lite-{n}");
        let mut o = to_plain();
        o.retain(|(k, _)| *k != "ICE" || n == 0);
        o.push(opt);
        let r = rig.ng_cmd(
            "offer",
            [
                vec![
                    ("call-id", Value::str(&call)),
                    ("from-tag", Value::str("browser")),
                    ("sdp", Value::str(chrome_offer("sha-256", "actpass"))),
                ],
                o,
            ]
            .concat(),
        );
        assert!(!r.contains_key(b"warning".as_slice()), "{r:?}");
        let to_browser = rig.answer(&call, "browser", "phone", &answer, Vec::new());
        assert_eq!(lines(&to_browser, "a=ice-lite").len(), 1, "{to_browser}");
    }

    // ICE=default (no ICE key) between plain parties, as upstream: the
    // callee gets our ICE when the caller's SDP had ICE, the caller gets
    // ours back in the answer; `ICE-lite=forward` makes us lite towards the
    // callee only.
    let ice_phone = plain_sdp(
        6024,
        "RTP/AVP",
        "a=ice-ufrag:pHn1\na=ice-pwd:phonephonephonephonephone1\n\
         a=candidate:1 1 UDP 2130706431 198.51.100.3 6024 typ host\n",
    );
    for (n, lite) in [(0, false), (1, true)] {
        let call = format!("opts-plain-ice-{n}");
        let opts = match lite {
            true => vec![("ICE-lite", Value::str("forward"))],
            false => vec![],
        };
        let to_callee = rig.offer(&call, "caller", &ice_phone, opts);
        assert_eq!(lines(&to_callee, "a=ice-ufrag:").len(), 1, "{to_callee}");
        // RTP and RTCP (nobody muxes).
        assert_eq!(lines(&to_callee, "a=candidate:").len(), 2, "{to_callee}");
        assert!(!to_callee.contains("pHn1"), "{to_callee}");
        assert_eq!(
            lines(&to_callee, "a=ice-lite").len(),
            usize::from(lite),
            "{to_callee}"
        );
        let to_caller = rig.answer(&call, "caller", "callee", &answer, Vec::new());
        assert_eq!(lines(&to_caller, "a=ice-ufrag:").len(), 1, "{to_caller}");
        assert!(lines(&to_caller, "a=ice-lite").is_empty(), "{to_caller}");
    }
    let to_callee = rig.offer(
        "opts-plain-ice-off",
        "caller",
        &ice_phone,
        vec![("ICE", Value::str("remove"))],
    );
    assert!(lines(&to_callee, "a=ice-").is_empty(), "{to_callee}");
    let to_caller = rig.answer(
        "opts-plain-ice-off",
        "caller",
        "callee",
        &answer,
        vec![("ICE", Value::str("remove"))],
    );
    assert!(lines(&to_caller, "a=ice-").is_empty(), "{to_caller}");
}

/// An OpenSSL DTLS phone (the daemon's DTLS wrapper, a second instance
/// with its own certificate): the handshake on `sock` with the daemon's
/// port `at` (as the client it starts), checked against the daemon's
/// fingerprint `ours`; the SRTP keys.
fn phone_handshake(
    sock: &UdpSocket,
    id: &rtpengine::crypto::dtls::Identity,
    role: rtpengine::crypto::dtls::Role,
    at: SocketAddr,
    ours: &rtpengine::crypto::dtls::Fingerprint,
) -> rtpengine::crypto::dtls::Keys {
    use rtpengine::crypto::dtls::{Session, State};
    use std::time::{Duration, Instant};
    let mut session = Session::new(id, role).unwrap();
    for d in session.drive(None).unwrap_or_default() {
        sock.send_to(&d, at).unwrap();
    }
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    while session.state() != State::Done {
        assert!(start.elapsed() < Duration::from_secs(8), "handshake");
        let out = match sock.recv_from(&mut buf) {
            Ok((n, _)) => session.drive(Some(&buf[..n])),
            // Our own retransmissions.
            Err(_) => session.drive(None),
        };
        for d in out.unwrap_or_default() {
            sock.send_to(&d, at).unwrap();
        }
    }
    assert!(session.peer_matches(ours), "the daemon's certificate");
    session.keys().unwrap()
}

/// Both handshakes of a DTLS phone that does not mux (`dtls`: its RTP and
/// RTCP sockets) with the daemon's `port` and `port + 1`, then RTP and
/// RTCP both ways with a plain phone (`plain`, sending to `back` and
/// `back + 1`), each under its own port's keys: what we send to the RTCP
/// port does not open under the RTP keys.
fn dtls_phone_media(
    dtls: &[UdpSocket; 2],
    (id, role, ours): (
        &rtpengine::crypto::dtls::Identity,
        rtpengine::crypto::dtls::Role,
        &rtpengine::crypto::dtls::Fingerprint,
    ),
    port: u16,
    plain: &[UdpSocket; 2],
    back: u16,
) {
    use rtpengine::crypto::srtp::{Context, Params};
    use std::time::Duration;
    let keys = std::thread::scope(|s| {
        let rtp_port = s.spawn(|| phone_handshake(&dtls[0], id, role, daemon(port), ours));
        let rtcp_port = s.spawn(|| phone_handshake(&dtls[1], id, role, daemon(port + 1), ours));
        [rtp_port.join().unwrap(), rtcp_port.join().unwrap()]
    });
    assert_ne!(keys[0].local, keys[1].local, "one key per component");
    let ctx = |k: &[u8]| Context::new(keys[0].suite, k, Params::default(), None).unwrap();
    let (mut rtp_tx, mut rtp_rx) = (ctx(&keys[0].local), ctx(&keys[0].remote));
    let (mut rtcp_tx, mut rtcp_rx) = (ctx(&keys[1].local), ctx(&keys[1].remote));
    let rr = |ssrc: u32| {
        let mut p = vec![0x80, 201, 0, 1];
        p.extend(ssrc.to_be_bytes());
        p
    };
    // DTLS phone → plain phone: SRTP and SRTCP arrive plain.
    for seq in 0..5u16 {
        let mut p = rtp(0, seq, 160 * u32::from(seq), 0x5bc, 0x11);
        rtp_tx.protect_rtp(&mut p).unwrap();
        dtls[0].send_to(&p, daemon(port)).unwrap();
        let mut c = rr(0x5bc);
        rtcp_tx.protect_rtcp(&mut c).unwrap();
        dtls[1].send_to(&c, daemon(port + 1)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut buf = [0u8; 2048];
    for s in plain.iter().chain(dtls) {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    }
    let (n, _) = plain[0]
        .recv_from(&mut buf)
        .expect("RTP at the plain phone");
    assert!(
        n == 172 && buf[12..n].iter().all(|&b| b == 0x11),
        "plain RTP"
    );
    let (n, _) = plain[1]
        .recv_from(&mut buf)
        .expect("RTCP at the plain phone");
    assert_eq!(buf[..n], rr(0x5bc)[..], "plain RTCP");
    // Plain phone → DTLS phone: protected under each port's keys.
    for seq in 0..5u16 {
        let p = rtp(0, seq, 160 * u32::from(seq), 0xf0e, 0x22);
        plain[0].send_to(&p, daemon(back)).unwrap();
        plain[1].send_to(&rr(0xf0e), daemon(back + 1)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let (n, _) = dtls[0].recv_from(&mut buf).expect("SRTP at the DTLS phone");
    let mut p = buf[..n].to_vec();
    rtp_rx
        .unprotect_rtp(&mut p)
        .expect("SRTP under the RTP keys");
    assert!(p[12..].iter().all(|&b| b == 0x22));
    let (n, _) = dtls[1]
        .recv_from(&mut buf)
        .expect("SRTCP at the DTLS phone");
    let srtcp = buf[..n].to_vec();
    let mut wrong = ctx(&keys[0].remote);
    assert!(
        wrong.unprotect_rtcp(&mut srtcp.clone()).is_err(),
        "not under the RTP port's keys"
    );
    let mut c = srtcp;
    rtcp_rx
        .unprotect_rtcp(&mut c)
        .expect("SRTCP under the RTCP keys");
    assert_eq!(c, rr(0xf0e));
}

/// A SIP phone that keys SRTP by DTLS under `RTP/SAVP` without rtcp-mux
/// (as Asterisk's `media_encryption=dtls` does) to a plain phone: RFC 5764
/// §4.2 has a handshake on each port, and its SRTCP is keyed by the RTCP
/// port's own. It offered actpass, so we are the client of both
/// handshakes (started by the call timer).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn dtls_on_a_separate_rtcp_port_keys_srtcp() {
    use rtpengine::crypto::dtls::{
        Fingerprint, Hash, Identity, KeyType, Role, DEFAULT_CIPHERS, DEFAULT_MTU,
    };
    require_root();
    let rig = Rig::new("dtls-rtcp", &[]);
    let id = Identity::new(KeyType::Ec, DEFAULT_MTU, DEFAULT_CIPHERS).unwrap();
    let sbc = [
        rig.socket(&format!("{BROWSER}:6070")),
        rig.socket(&format!("{BROWSER}:6071")),
    ];
    let phone = [
        rig.socket(&format!("{PHONE}:6072")),
        rig.socket(&format!("{PHONE}:6073")),
    ];
    let offer = format!(
        "v=0\no=- 1 1 IN IP4 {BROWSER}\ns=-\nt=0 0\nm=audio 6070 RTP/SAVP 0\nc=IN IP4 {BROWSER}\n\
         a=sendrecv\na=setup:actpass\na=fingerprint:{}\n",
        id.fingerprint(Hash::Sha256).write()
    );
    let to_phone = rig.offer(
        "dtls-rtcp",
        "sbc",
        &offer,
        vec![("transport-protocol", Value::str("RTP/AVP"))],
    );
    check_sip_sdp(&to_phone, "RTP/AVP");
    let to_sbc = rig.answer(
        "dtls-rtcp",
        "sbc",
        "phone",
        &plain_sdp(6072, "RTP/AVP", ""),
        Vec::new(),
    );
    assert!(to_sbc.contains(" RTP/SAVP 0"), "{to_sbc}");
    assert_eq!(lines(&to_sbc, "a=setup:"), ["a=setup:active"], "{to_sbc}");
    assert!(lines(&to_sbc, "a=rtcp-mux").is_empty(), "{to_sbc}");
    let ours = Fingerprint::parse(&lines(&to_sbc, "a=fingerprint:")[0]["a=fingerprint:".len()..])
        .expect("our fingerprint");
    dtls_phone_media(
        &sbc,
        (&id, Role::Server, &ours),
        media_ports(&to_sbc)[0],
        &phone,
        media_ports(&to_phone)[0],
    );
}

/// A plain caller to an `RTP/SAVP` callee: our offer carries SDES lines
/// and our DTLS beside them (as upstream); the callee answers DTLS only
/// (`a=setup:active`, its fingerprint, no `a=crypto`), so its leg is keyed
/// by its handshakes (it is the client, on both ports: it does not mux),
/// and media flows both ways.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn savp_callee_picks_dtls_from_our_offer() {
    use rtpengine::crypto::dtls::{
        Fingerprint, Hash, Identity, KeyType, Role, DEFAULT_CIPHERS, DEFAULT_MTU,
    };
    require_root();
    let rig = Rig::new("savp-pick", &[]);
    let id = Identity::new(KeyType::Ec, DEFAULT_MTU, DEFAULT_CIPHERS).unwrap();
    let callee = [
        rig.socket(&format!("{BROWSER}:6080")),
        rig.socket(&format!("{BROWSER}:6081")),
    ];
    let caller = [
        rig.socket(&format!("{PHONE}:6082")),
        rig.socket(&format!("{PHONE}:6083")),
    ];
    let to_callee = rig.offer(
        "savp-pick",
        "caller",
        &plain_sdp(6082, "RTP/AVP", ""),
        vec![("transport-protocol", Value::str("RTP/SAVP"))],
    );
    assert!(to_callee.contains(" RTP/SAVP 0"), "{to_callee}");
    assert!(!lines(&to_callee, "a=crypto:").is_empty(), "{to_callee}");
    assert_eq!(
        lines(&to_callee, "a=setup:"),
        ["a=setup:actpass"],
        "{to_callee}"
    );
    assert!(
        lines(&to_callee, "a=ice-ufrag:").is_empty(),
        "no ICE: {to_callee}"
    );
    let ours =
        Fingerprint::parse(&lines(&to_callee, "a=fingerprint:")[0]["a=fingerprint:".len()..])
            .expect("our fingerprint");
    let answer = format!(
        "v=0\no=- 1 1 IN IP4 {BROWSER}\ns=-\nt=0 0\nm=audio 6080 RTP/SAVP 0\nc=IN IP4 {BROWSER}\n\
         a=sendrecv\na=setup:active\na=fingerprint:{}\n",
        id.fingerprint(Hash::Sha256).write()
    );
    let to_caller = rig.answer("savp-pick", "caller", "callee", &answer, Vec::new());
    check_sip_sdp(&to_caller, "RTP/AVP");
    assert!(lines(&to_caller, "a=crypto:").is_empty(), "{to_caller}");
    dtls_phone_media(
        &callee,
        (&id, Role::Client, &ours),
        media_ports(&to_callee)[0],
        &caller,
        media_ports(&to_caller)[0],
    );
}

/// G.711 A-law to linear (ITU-T G.711): what a PCMA payload byte decodes to.
fn alaw(byte: u8) -> i64 {
    let a = byte ^ 0x55;
    let mut t = i64::from(a & 0x0f) << 4;
    match (a & 0x70) >> 4 {
        0 => t += 8,
        1 => t += 0x108,
        seg => t = (t + 0x108) << (seg - 1),
    }
    if a & 0x80 != 0 {
        t
    } else {
        -t
    }
}

/// A max-bundle WebRTC caller (aiortc: two audio sections on one
/// transport, PCMU and PCMA) to a plain phone with `bundle=accept`: the
/// phone gets two sections with ports of their own, the caller an answer
/// bundled on one port; each section's media reaches its own port on the
/// phone's side and comes back into its own track, both ways decrypted and
/// re-encrypted under the one DTLS association.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn max_bundle_caller_to_plain_callee() {
    require_root();
    let rig = Rig::new("webrtc-bundle", &[]);
    let mut peer = WebrtcPeer::start_bundled(&rig.ns, BROWSER);
    let phones = [
        rig.socket(&format!("{PHONE}:6020")),
        rig.socket(&format!("{PHONE}:6022")),
    ];
    let offer = peer.offer();
    assert_eq!(lines(&offer, "a=group:BUNDLE"), ["a=group:BUNDLE 0 1"]);
    let to_phone = rig.offer(
        "bundle-1",
        "browser",
        &offer,
        vec![
            ("transport-protocol", Value::str("RTP/AVP")),
            ("ICE", Value::str("remove")),
            ("rtcp-mux", Value::List(vec![Value::str("demux")])),
            ("bundle", Value::List(vec![Value::str("accept")])),
        ],
    );
    check_sip_sdp(&to_phone, "RTP/AVP");
    let ports = media_ports(&to_phone);
    assert!(ports.len() == 2 && ports[0] != ports[1], "{to_phone}");
    let answer = format!(
        "v=0\r\no=- 1 1 IN IP4 {PHONE}\r\ns=-\r\nc=IN IP4 {PHONE}\r\nt=0 0\r\n\
m=audio 6020 RTP/AVP 0\r\na=sendrecv\r\nm=audio 6022 RTP/AVP 8\r\na=sendrecv\r\n"
    );
    let to_browser = rig.answer("bundle-1", "browser", "phone", &answer, Vec::new());
    assert_eq!(
        lines(&to_browser, "a=group:BUNDLE"),
        ["a=group:BUNDLE 0 1"],
        "{to_browser}"
    );
    let bports = media_ports(&to_browser);
    assert!(bports.len() == 2 && bports[0] == bports[1], "{to_browser}");
    assert_eq!(lines(&to_browser, "a=mid:"), ["a=mid:0", "a=mid:1"]);
    assert_eq!(lines(&to_browser, "a=rtcp-mux").len(), 2, "{to_browser}");
    peer.remote_answer(&to_browser);
    two_sections_both_ways(&mut peer, &phones, [daemon(ports[0]), daemon(ports[1])]);
}

/// Media of two bundled audio sections for 3 s: the phone's side sends
/// PCMU 0xCE into the first, PCMA 0xD5 into the second, each from its own
/// socket to its own port of ours; what the peer sends each section must
/// arrive decrypted on that section's socket (PCMU of its tone on the
/// first, PCMA on the second, nothing crossed over), and what the phone
/// sends in each section in the peer's track of that section.
fn two_sections_both_ways(peer: &mut WebrtcPeer, phones: &[UdpSocket; 2], to: [SocketAddr; 2]) {
    peer.run(3.0);
    let mut got: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    let start = std::time::Instant::now();
    let mut next = start;
    let mut seq = 0u16;
    let mut buf = [0u8; 2048];
    for p in phones {
        p.set_nonblocking(true).expect("nonblocking");
    }
    while start.elapsed().as_secs_f64() < 3.0 {
        if std::time::Instant::now() >= next {
            for (k, (pt, byte)) in [(0u8, PEER_SAMPLE_BYTE), (8, 0xd5)].into_iter().enumerate() {
                let pkt = rtp(pt, seq, 160 * u32::from(seq), 0x6200 + k as u32, byte);
                let _ = phones[k].send_to(&pkt, to[k]);
            }
            seq = seq.wrapping_add(1);
            next += std::time::Duration::from_millis(20);
        }
        for (k, p) in phones.iter().enumerate() {
            while let Ok((n, _)) = p.recv_from(&mut buf) {
                got[k].push(buf[..n].to_vec());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let report = peer.report();
    assert_eq!(report.state, "connected", "{report:?}");
    // Each section's media on its own port, decrypted: PCMU of the tone on
    // the first, PCMA of it on the second, nothing crossed over.
    // Its MID extension stays on (unknown to the phone, ignored).
    let payloads = |k: usize| -> Vec<(u8, &[u8])> {
        got[k]
            .iter()
            .filter(|p| p.len() > 12 && p[1] & 0x7f < 64)
            .filter_map(|p| Some((p[1] & 0x7f, payload_of(p)?)))
            .filter(|(_, payload)| payload.len() == 160)
            .collect()
    };
    let (first, second) = (payloads(0), payloads(1));
    assert!(
        first.len() > 50 && second.len() > 50,
        "{} {}",
        first.len(),
        second.len()
    );
    assert!(first
        .iter()
        .all(|(pt, p)| *pt == 0 && p.iter().all(|&b| b == PEER_SAMPLE_BYTE)));
    let byte = second[0].1[0];
    assert!(second
        .iter()
        .all(|(pt, p)| *pt == 8 && p.iter().all(|&b| b == byte)));
    // And back: each into its own track.
    let track = |mid: &str| report.tracks.get(mid).cloned().unwrap_or_default();
    let (f0, s0) = track("0");
    let (f1, s1) = track("1");
    assert!(f0 > 50 && f1 > 50, "{report:?}");
    assert_eq!(s0, [DECODED_CE], "{report:?}");
    assert_eq!(s1, [alaw(0xd5)], "{report:?}");
}

/// A plain caller with two audio sections to a WebRTC callee under the
/// `WebRTC` flag, which (as upstream) offers one bundle on one port
/// (`bundle=require`, `generate-mid`): aiortc answers bundled, and each
/// section's media keeps to its own section both ways.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn plain_caller_to_bundling_webrtc_callee() {
    require_root();
    let rig = Rig::new("webrtc-bundle-offer", &[]);
    let mut peer = WebrtcPeer::start_bundled(&rig.ns, BROWSER);
    let phones = [
        rig.socket(&format!("{PHONE}:6030")),
        rig.socket(&format!("{PHONE}:6032")),
    ];
    let offer = format!(
        "v=0\r\no=- 1 1 IN IP4 {PHONE}\r\ns=-\r\nc=IN IP4 {PHONE}\r\nt=0 0\r\n\
m=audio 6030 RTP/AVP 0\r\na=sendrecv\r\nm=audio 6032 RTP/AVP 8\r\na=sendrecv\r\n"
    );
    let to_browser = rig.offer(
        "bundle-2",
        "phone",
        &offer,
        vec![("flags", Value::List(vec![Value::str("WebRTC")]))],
    );
    assert_eq!(
        lines(&to_browser, "a=group:BUNDLE"),
        ["a=group:BUNDLE 0 1"],
        "{to_browser}"
    );
    let bports = media_ports(&to_browser);
    assert!(bports.len() == 2 && bports[0] == bports[1], "{to_browser}");
    assert_eq!(lines(&to_browser, "a=bundle-only").len(), 1, "{to_browser}");
    let answer = peer.answer_to(&to_browser);
    assert_eq!(lines(&answer, "a=group:BUNDLE"), ["a=group:BUNDLE 0 1"]);
    let to_phone = rig.answer("bundle-2", "phone", "browser", &answer, Vec::new());
    check_sip_sdp(&to_phone, "RTP/AVP");
    let ports = media_ports(&to_phone);
    assert!(ports.len() == 2 && ports[0] != ports[1], "{to_phone}");
    two_sections_both_ways(&mut peer, &phones, [daemon(ports[0]), daemon(ports[1])]);
}
