//! BUNDLE (RFC 9143) on the wire: a party's sections on one transport
//! through the daemon with `bundle=accept`, against plain sockets and
//! libsrtp (the WebRTC stacks' bundles are in `webrtc.rs` and
//! `webrtc_browser.rs`).

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use rtpengine_tests::*;

const A: &str = "198.51.100.1";
const B: &str = "198.51.100.3";

/// The caller's key (30 bytes, AES-128 counter mode).
const KEY_A: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

fn line(tag: u32, suite: &str, key: &str) -> CryptoLine {
    CryptoLine {
        tag,
        suite: suite.into(),
        key: key.into(),
    }
}

fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    let (n, src) = s
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("expected a packet: {e}"));
    (buf[..n].to_vec(), src)
}

fn daemon(port: u16) -> SocketAddr {
    format!("203.0.113.1:{port}").parse().unwrap()
}

/// A plain caller behind NAT whose bundle only sends in its second
/// section: the head learns where the caller is from those packets (all
/// of the bundle's media to it goes there), so the first section's media
/// reaches it too.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_bundle_learns_its_party_from_any_section() {
    require_root();
    let rig = Rig::new("bundle-nat", &[]);
    // What the caller announces, and where its packets really come from.
    let announced = 2000;
    let a = rig.socket(&format!("{A}:2100"));
    let b_rtp = [
        rig.socket(&format!("{B}:2010")),
        rig.socket(&format!("{B}:2012")),
    ];
    let offer = format!(
        "v=0\no=- 1 1 IN IP4 {A}\ns=-\nt=0 0\na=group:BUNDLE a v\n\
m=audio {announced} RTP/AVP 0\nc=IN IP4 {A}\na=mid:a\na=rtcp-mux\na=recvonly\n\
m=audio {announced} RTP/AVP 8\nc=IN IP4 {A}\na=mid:v\na=rtcp-mux\n"
    );
    let to_b = rig.offer(
        "bundle-nat",
        "ft",
        &offer,
        vec![("bundle", Value::List(vec![Value::str("accept")]))],
    );
    let ports = media_ports(&to_b);
    assert!(ports.len() == 2 && ports[0] != ports[1], "{to_b}");
    let to_a = rig.answer(
        "bundle-nat",
        "ft",
        "tt",
        &format!(
            "v=0\no=- 1 1 IN IP4 {B}\ns=-\nt=0 0\nc=IN IP4 {B}\n\
m=audio 2010 RTP/AVP 0\na=sendonly\nm=audio 2012 RTP/AVP 8\n"
        ),
        Vec::new(),
    );
    let a_port = media_ports(&to_a)[0];
    // The caller sends in its second section only (PCMA: told by its
    // payload type), from its real address.
    for seq in 0..3u16 {
        a.send_to(
            &rtp(8, seq, 160 * u32::from(seq), 0x4444, 0xd5),
            daemon(a_port),
        )
        .expect("send");
        let (got, _) = recv(&b_rtp[1]);
        assert_eq!(got[1] & 0x7f, 8);
    }
    // The first section's media now reaches it where it is.
    b_rtp[0]
        .send_to(&rtp(0, 1, 160, 0x6666, 0x8f), daemon(ports[0]))
        .expect("send");
    let (got, src) = recv(&a);
    assert_eq!(src, daemon(a_port), "from the bundle's port");
    assert_eq!(&got[8..12], &0x6666u32.to_be_bytes());
}

/// A bundle keyed by SDES (`bundle=accept`): one SRTP session for the
/// transport (every section under the head's keys, as upstream; the
/// answer says so). The caller's SRTCP whose sender is unknown (a
/// receive-only report) is routed by the SSRC it reports on, which SRTCP
/// encrypts: the head unprotects it once and the section it reports on
/// relays it in clear to its own RTCP port on the plain side. A replay
/// goes nowhere, also once its sender is known and it would go straight to
/// its section (one replay window), and so does a forgery.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn bundled_srtcp_follows_the_ssrc_it_reports_on() {
    require_root();
    let rig = Rig::new("srtp-bundle", &[]);
    let mut peer = SrtpPeer::start();
    let a = rig.socket(&format!("{A}:2000"));
    let b_rtp = [
        rig.socket(&format!("{B}:2010")),
        rig.socket(&format!("{B}:2012")),
    ];
    let b_rtcp = [
        rig.socket(&format!("{B}:2011")),
        rig.socket(&format!("{B}:2013")),
    ];
    let a_key = line(1, "AES_CM_128_HMAC_SHA1_80", KEY_A);
    let offer = format!(
        "v=0\no=- 1 1 IN IP4 {A}\ns=-\nt=0 0\na=group:BUNDLE a v\n\
m=audio 2000 RTP/SAVP 0\nc=IN IP4 {A}\na=mid:a\na=rtcp-mux\n{k}\n\
m=audio 2000 RTP/SAVP 8\nc=IN IP4 {A}\na=mid:v\na=rtcp-mux\n{k}\n",
        k = a_key.attr()
    );
    let to_b = rig.offer(
        "srtp-bundle",
        "ft",
        &offer,
        vec![
            ("transport-protocol", Value::str("RTP/AVP")),
            ("rtcp-mux", Value::List(vec![Value::str("demux")])),
            ("bundle", Value::List(vec![Value::str("accept")])),
        ],
    );
    let ports = media_ports(&to_b);
    assert!(ports.len() == 2 && ports[0] != ports[1], "{to_b}");
    let to_a = rig.answer(
        "srtp-bundle",
        "ft",
        "tt",
        &format!(
            "v=0\no=- 1 1 IN IP4 {B}\ns=-\nt=0 0\nc=IN IP4 {B}\n\
m=audio 2010 RTP/AVP 0\nm=audio 2012 RTP/AVP 8\n"
        ),
        Vec::new(),
    );
    let a_ports = media_ports(&to_a);
    assert!(a_ports.len() == 2 && a_ports[0] == a_ports[1], "{to_a}");
    let ours = crypto_lines(&to_a);
    assert!(
        ours.len() == 2 && ours[0] == ours[1],
        "the head's key for both: {to_a}"
    );
    // B's second section sends: the head learns its SSRC went to A
    // through that section.
    b_rtp[1]
        .send_to(&rtp(8, 1, 160, 0x5555, 0xd5), daemon(ports[1]))
        .expect("send");
    let (got, _) = recv(&a);
    assert_eq!(&got[8..12], &0x5555u32.to_be_bytes());
    // A's receive report from an SSRC never seen, about 0x5555.
    let mut rr = vec![0x81, 201, 0, 7];
    rr.extend_from_slice(&0x9999u32.to_be_bytes());
    rr.extend_from_slice(&0x5555u32.to_be_bytes());
    rr.extend_from_slice(&[0; 20]);
    let protected = peer.protect(true, &a_key, &rr);
    a.send_to(&protected, daemon(a_ports[0])).expect("send");
    b_rtcp[1]
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .expect("timeout");
    let (got, _) = recv(&b_rtcp[1]);
    assert_eq!(
        got, rr,
        "the report, in clear, on the second section's RTCP port"
    );
    // Its sender becomes known in the second section (PCMA there only).
    let media = peer.protect(false, &a_key, &rtp(8, 7, 1120, 0x9999, 0xd5));
    a.send_to(&media, daemon(a_ports[0])).expect("send");
    let (got, _) = recv(&b_rtp[1]);
    assert_eq!(&got[8..12], &0x9999u32.to_be_bytes());
    // A replay of the report (now routed by its sender), and a forgery, go
    // nowhere.
    let mut forged = protected.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    for p in [&protected, &forged] {
        a.send_to(p, daemon(a_ports[0])).expect("send");
    }
    for s in &b_rtcp {
        s.set_read_timeout(Some(std::time::Duration::from_millis(300)))
            .expect("timeout");
        let mut buf = [0u8; 2048];
        assert!(s.recv_from(&mut buf).is_err(), "nothing more arrives");
    }
}
