//! The legacy rtpproxy protocol (`--listen-udp`) by hand, against replies
//! captured from upstream rtpengine 10.5 for the same requests (ports
//! masked: they are random on both). Kamailio's `rtpproxy` module is run in
//! `clients_kamailio.rs`.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use rtpengine_tests::*;

const RTPP: &str = "127.0.0.1:7722";

struct Legacy {
    rig: Rig,
    sock: UdpSocket,
}

impl Legacy {
    fn new(tag: &str) -> Legacy {
        let rig = Rig::new(
            tag,
            &[
                &format!("--listen-udp={RTPP}"),
                "-i",
                "internal/203.0.113.1",
                "-i",
                "external/203.0.113.2",
                "--delete-delay=0",
            ],
        );
        let sock = rig.socket("127.0.0.1:0");
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Legacy { rig, sock }
    }

    /// Sends `line`, returns the reply.
    fn send(&self, line: &str) -> String {
        self.sock.send_to(line.as_bytes(), RTPP).unwrap();
        let mut buf = [0u8; 2048];
        let n = self
            .sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no reply to {line:?}: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// The reply with the port (a random even number) checked and masked.
    fn send_masked(&self, line: &str) -> String {
        let reply = self.send(line);
        let words: Vec<&str> = reply.split(' ').collect();
        match words.get(1).and_then(|p| p.parse::<u16>().ok()) {
            Some(p) if p >= 30000 => {
                assert_eq!(p % 2, 0, "{reply}");
                reply.replacen(&format!(" {p} "), " PORT ", 1)
            }
            _ => reply,
        }
    }

    /// The port in a U/L reply.
    fn port(&self, line: &str) -> u16 {
        let r = self.send(line);
        r.split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{r}"))
    }
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn versions_and_errors_as_upstream() {
    let l = Legacy::new("rpv");
    for (req, want) in [
        ("c1 V", "c1 20040107\n"),
        ("c2 VF 20040107", "c2 1\n"),
        ("c3 VF 20050322", "c3 1\n"),
        ("c4 VF 20060704", "c4 1\n"),
        ("c5 VF 20071116", "c5 0\n"),
        ("c6 VF 20081102", "c6 0\n"),
        ("c10 vf 20050322", "c10 1\n"),
        ("c12b VF 20050322\r\n", "c12b 1\n"),
        ("c15 VX 20050322", "c15 20040107\n"),
        ("c18\tV", "c18 20040107\n"),
        // Upstream 10.5 crashes here.
        ("c8 VF", "c8 0\n"),
        ("m1 U call 1.2.3.4 4000 ftag", "m1 4000 1.2.3.4\n"),
        ("m3 X foo bar", "m3 E8\n"),
        ("m4", "m4 E8\n"),
        ("m5 U", "m5 E8\n"),
        ("m8 U call 1.2.3.4 4000", "m8 4000 1.2.3.4\n"),
        ("m9 D call", "m9 E8\n"),
        ("m11 R call ftag ttag", "m11 E8\n"),
        ("m14 S call ftag;1 ttag;1", "m14 E8\n"),
        (
            "m17 U call hostname.example 4000 ftag;1",
            "m17 4000 hostname.example\n",
        ),
        ("m20 U call 300.2.3.4 4000 ftag;1", "m20 E8\n"),
        (
            "l3 L nosuchcall 192.0.2.20 5000 ftag1;1 ttag1;1",
            "l3 0 0.0.0.0\n",
        ),
        ("d3 D nosuchcall ftag1", "d3 E8\n"),
        ("q9 Q nosuchcall ftag1", "q9 E8\n"),
    ] {
        assert_eq!(l.send(req), want, "{req:?}");
    }
    // No cookie, no reply.
    l.sock.send_to(b"   ", RTPP).unwrap();
    let mut buf = [0u8; 64];
    assert!(l.sock.recv(&mut buf).is_err(), "a reply to whitespace");
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_call_with_media_query_and_delete() {
    let l = Legacy::new("rpc");
    let caller = l.rig.socket("198.51.100.1:4000");
    let callee = l.rig.socket("198.51.100.3:5000");
    // Offer "ie": from the internal side to the external one: the callee
    // gets the external address. Retransmitted with the same cookie: the
    // same reply, the command ran once.
    let u = l.send_masked("u1 UIE c1 198.51.100.1 4000 ft;1");
    assert_eq!(u, "u1 PORT 203.0.113.2 4\n");
    assert_eq!(l.send_masked("u1 UIE c1 198.51.100.1 4000 ft;1"), u);
    let to_callee_port = l.port("u2 UIE c1 198.51.100.1 4000 ft;1");
    // Answer "ei": back from external to internal: the caller gets the
    // internal address.
    assert_eq!(
        l.send_masked("l1 LEI c1 198.51.100.3 5000 ft;1 tt;1"),
        "l1 PORT 203.0.113.1 4\n"
    );
    let to_caller_port = l.port("l2 LEI c1 198.51.100.3 5000 ft;1 tt;1");
    let caller_sends_to: SocketAddr = sa("203.0.113.1", to_caller_port);
    let callee_sends_to: SocketAddr = sa("203.0.113.2", to_callee_port);
    for i in 0..5u16 {
        let p = rtp(0, i, 160 * u32::from(i), 1, 1);
        caller.send_to(&p, caller_sends_to).unwrap();
        expect_packet(&callee, callee_sends_to, &p);
    }
    for i in 0..3u16 {
        let p = rtp(0, i, 160 * u32::from(i), 2, 2);
        callee.send_to(&p, callee_sends_to).unwrap();
        expect_packet(&caller, caller_sends_to, &p);
    }
    // Q: seconds left of the silent timeout, RTP and RTCP packets from both.
    let q = l.send("q1 Q c1 ft;1 tt");
    let words: Vec<&str> = q.trim_end().split(' ').collect();
    assert_eq!(words[0], "q1");
    let ttl: i64 = words[1].parse().unwrap();
    assert!((3590..=3600).contains(&ttl), "{q}");
    assert_eq!(words[2..], ["8", "0", "0", "0"], "{q}");
    // Port 0 (a rejected stream) answers with the interface address.
    assert_eq!(
        l.send("z1 U p0 198.51.100.1 0 f1;1"),
        "z1 0 203.0.113.1 4\n"
    );
    // A second stream is refused rather than mixed into the first.
    assert_eq!(l.send("s2 U c1 198.51.100.1 4002 ft;2"), "s2 E8\n");
    // D as Kamailio sends it for a BYE from the callee (tags as in the SIP
    // message): the call ends.
    assert_eq!(l.send("d1 D c1 tt ft"), "d1 0\n");
    assert!(
        l.rig.list_calls().iter().all(|c| c != "c1"),
        "{:?}",
        l.rig.list_calls()
    );
    assert_eq!(l.send("d2 D c1 ft tt"), "d2 E8\n");
    // Upstream's last resort: the first tag, while its peer has no tag yet.
    l.send("a6 U dc4 198.51.100.1 4000 f1;1");
    assert_eq!(l.send("d4 D dc4 nosuchtag"), "d4 E8\n");
    assert_eq!(l.send("d4b D dc4 f1 nosuchtag"), "d4b 0\n");
}
