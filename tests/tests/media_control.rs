//! `block media`, `block DTMF`, `silence media` and their opposites,
//! through the real daemon with media: what each selector (whole call,
//! `from-tag` + `directional`, `label`, `address`, `to-tag`, `all`)
//! reaches, that DTMF passes media blocking and RTCP passes everything,
//! that silencing rewrites G.711 payloads only, and upstream's errors.

use std::net::{SocketAddr, UdpSocket};

use rtpengine_tests::*;

const OFFER: &str = "
v=0
o=- 1 1 IN IP4 198.51.100.1
s=-
t=0 0
m=audio 2000 RTP/AVP 0 101
c=IN IP4 198.51.100.1
a=rtpmap:101 telephone-event/8000
a=sendrecv
";

const ANSWER: &str = "
v=0
o=- 2 1 IN IP4 198.51.100.3
s=-
t=0 0
m=audio 3000 RTP/AVP 0 101
c=IN IP4 198.51.100.3
a=rtpmap:101 telephone-event/8000
a=sendrecv
";

/// A call between a (198.51.100.1:2000) and b (198.51.100.3:3000).
struct Call {
    a: UdpSocket,
    b: UdpSocket,
    /// The daemon's port facing a, and facing b.
    to_a: SocketAddr,
    to_b: SocketAddr,
    seq: std::cell::Cell<u16>,
}

impl Call {
    fn new(rig: &Rig, id: &str) -> Call {
        let offer = rig.offer(id, "a", OFFER, vec![("label", Value::str("caller"))]);
        let answer = rig.answer(id, "a", "b", ANSWER, vec![]);
        let at = |p: u16| SocketAddr::from(([203, 0, 113, 1], p));
        let call = Call {
            a: rig.socket("198.51.100.1:2000"),
            b: rig.socket("198.51.100.3:3000"),
            to_a: at(media_ports(&answer)[0]),
            to_b: at(media_ports(&offer)[0]),
            seq: std::cell::Cell::new(0),
        };
        // Both sides learned before anything is blocked.
        call.check(true, 0, true);
        call.check(false, 0, true);
        call
    }

    /// Sends a packet of payload type `pt` from a (or b) and asserts it
    /// arrives (as `want`, if given) or not.
    fn send(&self, from_a: bool, pt: u8, want: Option<&[u8]>) {
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        let p = rtp(pt, seq, 160 * u32::from(seq), 0x1234, 0x55);
        let (src, dst, via_in, via_out) = match from_a {
            true => (&self.a, &self.b, self.to_a, self.to_b),
            false => (&self.b, &self.a, self.to_b, self.to_a),
        };
        src.send_to(&p, via_in).unwrap();
        match want {
            Some(w) => expect_packet(dst, via_out, w),
            None => expect_silence(dst),
        }
    }

    fn check(&self, from_a: bool, pt: u8, passes: bool) {
        let seq = self.seq.get() + 1;
        let p = rtp(pt, seq, 160 * u32::from(seq), 0x1234, 0x55);
        self.send(from_a, pt, passes.then_some(&p[..]));
    }
}

fn control(rig: &Rig, cmd: &str, extra: Vec<(&str, Value)>) -> Dict {
    let mut v = vec![("call-id", Value::str("mc"))];
    v.extend(extra);
    rig.ng_cmd(cmd, v)
}

fn ok(r: &Dict) {
    assert_eq!(get_str(r, "result"), "ok", "{r:?}");
    assert!(!r.contains_key(&b"warning"[..]), "{r:?}");
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn block_media_and_dtmf() {
    let rig = Rig::new("mctl", &[]);
    let c = Call::new(&rig, "mc");
    // Directional: a's media is dropped, its DTMF passes, b is untouched.
    let dir = || {
        vec![
            ("from-tag", Value::str("a")),
            ("flags", strs(&["directional"])),
        ]
    };
    ok(&control(&rig, "block media", dir()));
    c.check(true, 0, false);
    c.check(true, 101, true);
    c.check(false, 0, true);
    // RTCP passes media blocking (here sent to the RTP port without mux:
    // it reaches b's RTCP port).
    let sr = rtcp_sr(0x1234);
    let b_rtcp = rig.socket("198.51.100.3:3001");
    c.a.send_to(&sr, c.to_a).unwrap();
    let from = SocketAddr::new(c.to_b.ip(), c.to_b.port() + 1);
    expect_packet(&b_rtcp, from, &sr);
    ok(&control(&rig, "unblock media", dir()));
    c.check(true, 0, true);
    // A from-tag without `directional` is the whole call.
    ok(&control(
        &rig,
        "block media",
        vec![("from-tag", Value::str("a"))],
    ));
    c.check(false, 0, false);
    c.check(true, 0, false);
    ok(&control(&rig, "unblock media", vec![]));
    c.check(false, 0, true);
    // By label and by to-tag (the flow a -> b).
    ok(&control(
        &rig,
        "block media",
        vec![("label", Value::str("caller"))],
    ));
    c.check(true, 0, false);
    ok(&control(
        &rig,
        "unblock media",
        vec![("label", Value::str("caller"))],
    ));
    ok(&control(
        &rig,
        "block media",
        vec![
            ("from-tag", Value::str("b")),
            ("to-tag", Value::str("a")),
            ("flags", strs(&["directional"])),
        ],
    ));
    c.check(false, 0, false);
    c.check(true, 0, true);
    // A call-wide unblock leaves directional blocks unless `all`.
    ok(&control(&rig, "unblock media", vec![]));
    c.check(false, 0, false);
    ok(&control(
        &rig,
        "unblock media",
        vec![("flags", strs(&["all"]))],
    ));
    c.check(false, 0, true);

    // DTMF: dropped from b (by its address), audio passes.
    ok(&control(
        &rig,
        "block DTMF",
        vec![("address", Value::str("198.51.100.3"))],
    ));
    c.check(false, 101, false);
    c.check(false, 0, true);
    c.check(true, 101, true);
    ok(&control(
        &rig,
        "unblock DTMF",
        vec![("address", Value::str("198.51.100.3"))],
    ));
    c.check(false, 101, true);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn silence_media_rewrites_g711_only() {
    let rig = Rig::new("msil", &[]);
    let c = Call::new(&rig, "mc");
    // Silencing takes a from-tag without `directional`.
    ok(&control(
        &rig,
        "silence media",
        vec![("from-tag", Value::str("a"))],
    ));
    let seq = c.seq.get() + 1;
    let mut silent = rtp(0, seq, 160 * u32::from(seq), 0x1234, 0x55);
    silent[12..].fill(0xff);
    c.send(true, 0, Some(&silent));
    c.check(true, 101, true);
    c.check(false, 0, true);
    ok(&control(
        &rig,
        "unsilence media",
        vec![("from-tag", Value::str("a"))],
    ));
    c.check(true, 0, true);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn errors_are_upstreams() {
    let rig = Rig::new("merr", &[]);
    let _c = Call::new(&rig, "mc");
    for (cmd, extra, err) in [
        (
            "block media",
            vec![("call-id", Value::str("nope"))],
            "Unknown call-ID",
        ),
        (
            "block media",
            vec![
                ("from-tag", Value::str("x")),
                ("flags", strs(&["directional"])),
            ],
            "From-tag given, but no such tag exists",
        ),
        (
            "block DTMF",
            vec![("label", Value::str("x"))],
            "No monologue matching the given label",
        ),
        (
            "block media",
            vec![("address", Value::str("192.0.2.9"))],
            "Failed to match address to any tag",
        ),
        (
            "block media",
            vec![("address", Value::str("bogus"))],
            "Failed to parse network address",
        ),
        (
            "silence media",
            vec![("from-tag", Value::str("a")), ("to-tag", Value::str("x"))],
            "Media flow not found (to-tag not found)",
        ),
        (
            "silence media",
            vec![
                ("from-tag", Value::str("a")),
                ("all", Value::str("except-offer-answer")),
            ],
            "No eligible media subscriptions found",
        ),
    ] {
        let r = if extra[0].0 == "call-id" {
            rig.ng_cmd(cmd, extra)
        } else {
            control(&rig, cmd, extra)
        };
        assert_eq!(error_reason(&r), err, "{cmd}: {r:?}");
    }
    let r = rig.ng_cmd("block media", vec![]);
    assert_eq!(error_reason(&r), "No call-id in message");
    // A key these commands do not honour is named, the command still runs.
    let r = control(
        &rig,
        "block DTMF",
        vec![("DTMF-security", Value::str("silence"))],
    );
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    assert_eq!(
        get_str(&r, "warning"),
        "Unsupported, ignored: key 'dtmf-security'",
        "{r:?}"
    );
}

/// `media echo` (upstream's modes, relative to the message's sender): the
/// echoed party gets its own packets back from the port it sends to, RTP
/// with another SSRC; a blackholed party's packets go nowhere.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn media_echo_modes() {
    let rig = Rig::new("mecho", &[]);
    let c = Call::new(&rig, "mc");
    let echo = |mode: &str| {
        rig.offer("mc", "a", OFFER, vec![("media echo", Value::str(mode))]);
    };
    let p = rtp(0, 50, 8000, 0x1234, 7);
    let mut back = p.clone();
    back[8..12].copy_from_slice(&(0x1234u32 ^ 0x4563_686f).to_be_bytes());
    // backwards: the sender (a) hears itself, b's media is dropped.
    echo("backwards");
    c.a.send_to(&p, c.to_a).unwrap();
    expect_packet(&c.a, c.to_a, &back);
    expect_silence(&c.b);
    c.b.send_to(&p, c.to_b).unwrap();
    expect_silence(&c.a);
    expect_silence(&c.b);
    let q = rig.query("mc");
    let Some(Value::List(m)) = dig(&q, &["tags", "a", "medias"]) else {
        panic!("{q:?}")
    };
    assert!(
        matches!(m[0].get("flags"), Some(Value::List(f)) if f.contains(&Value::str("echo"))),
        "{q:?}"
    );
    // forward: the receiver (b) hears itself.
    echo("forward");
    c.b.send_to(&p, c.to_b).unwrap();
    expect_packet(&c.b, c.to_b, &back);
    c.a.send_to(&p, c.to_a).unwrap();
    expect_silence(&c.b);
    expect_silence(&c.a);
    // both, then blackhole.
    echo("both");
    c.a.send_to(&p, c.to_a).unwrap();
    expect_packet(&c.a, c.to_a, &back);
    c.b.send_to(&p, c.to_b).unwrap();
    expect_packet(&c.b, c.to_b, &back);
    echo("blackhole");
    c.a.send_to(&p, c.to_a).unwrap();
    c.b.send_to(&p, c.to_b).unwrap();
    expect_silence(&c.a);
    expect_silence(&c.b);
}

/// `drop-traffic` (call-wide, `stop` wins) and the offer flag `block DTMF`
/// (DTMF from the offer's sender dropped).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn drop_traffic_and_the_block_dtmf_flag() {
    let rig = Rig::new("mdrop", &[]);
    let c = Call::new(&rig, "mc");
    rig.offer(
        "mc",
        "a",
        OFFER,
        vec![("drop-traffic", Value::str("start"))],
    );
    c.check(true, 0, false);
    c.check(false, 0, false);
    c.check(false, 101, false);
    rig.offer(
        "mc",
        "a",
        OFFER,
        vec![("drop-traffic", strs(&["start", "stop"]))],
    );
    c.check(true, 0, true);
    c.check(false, 0, true);
    rig.offer("mc", "a", OFFER, vec![("flags", strs(&["block DTMF"]))]);
    c.check(true, 101, false);
    c.check(true, 0, true);
    c.check(false, 101, true);
}
