//! SDP rewriting through the real daemon, byte-exact modulo `PORT` (as
//! upstream's t/auto-daemon-tests*.pl), plus media where the SDP decides
//! where packets go (families, interfaces, rtcp-mux). Cases that differ only
//! in their input and expected output are rows of a table.

use std::net::{SocketAddr, UdpSocket};

use rtpengine_tests::*;

/// The usual rewritten audio section on `addr` (c= family `fam`).
fn out_audio(fam: &str, addr: &str) -> String {
    format!(
        "m=audio PORT RTP/AVP 0 8
        c=IN {fam} {addr}
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=sendrecv
        a=rtcp:PORT"
    )
}

/// The whole SDP a party gets: the sender's session lines with `origin` in
/// `o=`, then [`out_audio`], then `extra` lines.
fn out_sdp(origin: &str, fam: &str, addr: &str, extra: &str) -> String {
    let ofam = if origin.contains(':') { "IP6" } else { "IP4" };
    format!(
        "v=0
        o=- 1545997027 1 IN {ofam} {origin}
        s=tester
        t=0 0
        {}
        {extra}",
        out_audio(fam, addr)
    )
}

/// Checks RTP/RTCP ports captured from a standard section: RTCP = RTP + 1.
fn rtp_port(ports: &[u16]) -> u16 {
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_eq!(ports[1], ports[0] + 1, "a=rtcp must be RTP port + 1");
    assert_eq!(ports[0] % 2, 0, "RTP port must be even");
    ports[0]
}

/// RTP both ways between `a` and `b`; `pa`/`pb` are the daemon's addresses
/// facing B and A respectively.
fn media_both_ways(a: &UdpSocket, b: &UdpSocket, pa: SocketAddr, pb: SocketAddr) {
    let p1 = rtp(0, 1000, 3000, 0x1234, 0x11);
    a.send_to(&p1, pb).unwrap();
    expect_packet(b, pa, &p1);
    let p2 = rtp(0, 2000, 4000, 0x5678, 0x22);
    b.send_to(&p2, pa).unwrap();
    expect_packet(a, pb, &p2);
}

const V6_OFFER: &str = "
v=0
o=- 1545997027 1 IN IP6 2001:db8::10
s=tester
t=0 0
m=audio 2010 RTP/AVP 0 8
c=IN IP6 2001:db8::10
a=sendrecv
";

const V6_ANSWER: &str = "
v=0
o=- 1545997027 1 IN IP6 2001:db8::10
s=tester
t=0 0
m=audio 2012 RTP/AVP 0 8
c=IN IP6 2001:db8::10
a=sendrecv
";

/// One two-party call: daemon options, what the offer and answer say, what
/// each side must get, and the addresses RTP then flows between.
struct Call {
    name: &'static str,
    args: &'static [&'static str],
    offer: &'static str,
    offer_opts: fn() -> Vec<(&'static str, Value)>,
    /// SDP to the callee: `o=` address, `c=` family and address.
    to_callee: (&'static str, &'static str, &'static str),
    answer: &'static str,
    /// SDP to the caller.
    to_caller: (&'static str, &'static str, &'static str),
    /// The phones' RTP sockets.
    caller: &'static str,
    callee: &'static str,
    /// Our local addresses facing the callee and the caller.
    facing: (&'static str, &'static str),
}

fn none() -> Vec<(&'static str, Value)> {
    Vec::new()
}

const CALLS: &[Call] = &[
    Call {
        name: "ipv6 caller and callee",
        args: &["-i", "203.0.113.1", "-i", "2001:db8:4321::1"],
        offer: V6_OFFER,
        offer_opts: none,
        to_callee: ("2001:db8::10", "IP6", "2001:db8:4321::1"),
        answer: V6_ANSWER,
        to_caller: ("2001:db8::10", "IP6", "2001:db8:4321::1"),
        caller: "[2001:db8::10]:2010",
        callee: "[2001:db8::10]:2012",
        facing: ("2001:db8:4321::1", "2001:db8:4321::1"),
    },
    // Upstream's "intfs selection" idea: the offerer sits on `foo`, the
    // answerer on `bar`.
    Call {
        name: "bridging by direction",
        args: &["-i", "foo/203.0.113.1", "-i", "bar/203.0.113.2"],
        offer: OFFER,
        offer_opts: || vec![("direction", strs(&["foo", "bar"]))],
        to_callee: ("198.51.100.1", "IP4", "203.0.113.2"),
        answer: ANSWER,
        to_caller: ("198.51.100.3", "IP4", "203.0.113.1"),
        caller: "198.51.100.1:2010",
        callee: "198.51.100.3:2012",
        facing: ("203.0.113.2", "203.0.113.1"),
    },
    // The advertised address goes into SDP; media uses the local one.
    Call {
        name: "advertised address",
        args: &["-i", "203.0.113.1!192.0.2.99"],
        offer: OFFER,
        offer_opts: none,
        to_callee: ("198.51.100.1", "IP4", "192.0.2.99"),
        answer: ANSWER,
        to_caller: ("198.51.100.3", "IP4", "192.0.2.99"),
        caller: "198.51.100.1:2010",
        callee: "198.51.100.3:2012",
        facing: ("203.0.113.1", "203.0.113.1"),
    },
    // `address-family: IP6` in the offer: IPv4 caller, IPv6 callee
    // (upstream "control E" for the SDP).
    Call {
        name: "address family bridge v4 to v6",
        args: &["-i", "203.0.113.1", "-i", "2001:db8:4321::1"],
        offer: OFFER,
        offer_opts: || vec![("address-family", Value::str("IP6"))],
        to_callee: ("198.51.100.1", "IP6", "2001:db8:4321::1"),
        answer: V6_ANSWER,
        to_caller: ("2001:db8::10", "IP4", "203.0.113.1"),
        caller: "198.51.100.1:2010",
        callee: "[2001:db8::10]:2012",
        facing: ("2001:db8:4321::1", "203.0.113.1"),
    },
];

/// Runs `c`: offer, answer, SDP checked both ways, RTP both ways. Returns
/// the rig and our RTP ports facing the callee and the caller.
fn two_party(c: &Call) -> (Rig, u16, u16) {
    eprintln!("case: {}", c.name);
    let rig = Rig::new("sdp", c.args);
    let call_id = c.name.replace(' ', "-");
    let sdp = rig.offer(&call_id, "ft", c.offer, (c.offer_opts)());
    let (o, fam, addr) = c.to_callee;
    let port_a = rtp_port(&match_sdp(&sdp, &out_sdp(o, fam, addr, "")));
    let sdp = rig.answer(&call_id, "ft", "tt", c.answer, vec![]);
    let (o, fam, addr) = c.to_caller;
    let port_b = rtp_port(&match_sdp(&sdp, &out_sdp(o, fam, addr, "")));
    let a = rig.socket(c.caller);
    let b = rig.socket(c.callee);
    media_both_ways(&a, &b, sa(c.facing.0, port_a), sa(c.facing.1, port_b));
    (rig, port_a, port_b)
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn two_party_calls() {
    require_root();
    for c in CALLS {
        two_party(c);
    }
}

/// What [`two_party_calls`] does not cover: `replace: origin` writes the
/// advertised address into `o=` too, and RTCP crosses the family bridge.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn advertised_origin_and_bridged_rtcp() {
    require_root();
    let (rig, _, _) = two_party(&CALLS[2]);
    let sdp = rig.offer("adv-2", "ft", OFFER, vec![("replace", strs(&["origin"]))]);
    match_sdp(&sdp, &out_sdp("192.0.2.99", "IP4", "192.0.2.99", ""));

    let (rig, port_a, port_b) = two_party(&CALLS[3]);
    let a1 = rig.socket("198.51.100.1:2011");
    let b1 = rig.socket("[2001:db8::10]:2013");
    let sr = rtcp_sr(0x1234);
    a1.send_to(&sr, sa("203.0.113.1", port_b + 1)).unwrap();
    expect_packet(&b1, sa("2001:db8:4321::1", port_a + 1), &sr);
    b1.send_to(&sr, sa("2001:db8:4321::1", port_a + 1)).unwrap();
    expect_packet(&a1, sa("203.0.113.1", port_b + 1), &sr);
}

/// Where RTCP the caller sends muxed (to our RTP port facing it) arrives.
#[derive(Clone, Copy, Debug)]
enum Rtcp {
    /// Muxed at the callee too, both ways.
    Muxed,
    /// On the callee's RTCP port from our RTCP port, and back muxed.
    Demuxed,
    /// Not checked (the answer is not sent).
    Unchecked,
}

/// One rtcp-mux negotiation: does the offer announce mux, the `rtcp-mux`
/// options, whether the callee is told to mux, does the answer mux,
/// whether the caller is told to mux, and where RTCP goes.
struct Mux {
    name: &'static str,
    offer_mux: bool,
    opts: &'static [&'static str],
    callee_told: bool,
    answer_mux: bool,
    caller_told: bool,
    rtcp: Rtcp,
}

const MUX: &[Mux] = &[
    // Both mux: RTCP travels on the RTP ports.
    Mux {
        name: "offered and accepted",
        offer_mux: true,
        opts: &[],
        callee_told: true,
        answer_mux: true,
        caller_told: true,
        rtcp: Rtcp::Muxed,
    },
    // `demux`: mux accepted towards the offerer, not offered onward.
    Mux {
        name: "demux",
        offer_mux: true,
        opts: &["demux"],
        callee_told: false,
        answer_mux: false,
        caller_told: true,
        rtcp: Rtcp::Demuxed,
    },
    // `accept` (what jambonz sends): offered onward, and the offerer gets
    // mux even when the answerer declines (upstream `__rtcp_mux_logic()`:
    // RTCP_MUX_OVERRIDE); RTCP is then demuxed towards the answerer.
    Mux {
        name: "accept, answerer declines",
        offer_mux: true,
        opts: &["accept"],
        callee_told: true,
        answer_mux: false,
        caller_told: true,
        rtcp: Rtcp::Demuxed,
    },
    // `require`: mux offered even when the offerer does not, with a=rtcp
    // on the RTP port.
    Mux {
        name: "require",
        offer_mux: false,
        opts: &["require"],
        callee_told: true,
        answer_mux: false,
        caller_told: false,
        rtcp: Rtcp::Unchecked,
    },
];

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn rtcp_mux_negotiation() {
    require_root();
    let rig = Rig::new("mux", &[]);
    let with_mux = |sdp: &str, mux: bool| {
        if mux {
            format!("{sdp}a=rtcp-mux\n")
        } else {
            sdp.to_string()
        }
    };
    let mux_line = |told: bool| if told { "a=rtcp-mux" } else { "" };
    for (i, m) in MUX.iter().enumerate() {
        eprintln!("case: {}", m.name);
        let call_id = format!("mux-{i}");
        let opts = if m.opts.is_empty() {
            vec![]
        } else {
            vec![("rtcp-mux", strs(m.opts))]
        };
        let sdp = rig.offer(&call_id, "ft", &with_mux(OFFER, m.offer_mux), opts);
        let expected = out_sdp(
            "198.51.100.1",
            "IP4",
            "203.0.113.1",
            mux_line(m.callee_told),
        );
        let ports = match_sdp(&sdp, &expected);
        let port_a = if m.opts.contains(&"require") {
            assert_eq!(ports[0], ports[1], "required mux: a=rtcp is the RTP port");
            ports[0]
        } else {
            rtp_port(&ports)
        };
        if matches!(m.rtcp, Rtcp::Unchecked) {
            continue;
        }
        let answer = with_mux(ANSWER, m.answer_mux);
        let sdp = rig.answer(&call_id, "ft", "tt", &answer, vec![]);
        let expected = out_sdp(
            "198.51.100.3",
            "IP4",
            "203.0.113.1",
            mux_line(m.caller_told),
        );
        let ports = match_sdp(&sdp, &expected);
        assert_eq!(ports[0], ports[1], "muxed answer: a=rtcp is the RTP port");
        let port_b = ports[0];

        let a = rig.socket("198.51.100.1:2010");
        let b = rig.socket("198.51.100.3:2012");
        let b1 = rig.socket("198.51.100.3:2013");
        let (pa, pb) = (sa("203.0.113.1", port_a), sa("203.0.113.1", port_b));
        media_both_ways(&a, &b, pa, pb);
        let sr = rtcp_sr(0x1234);
        a.send_to(&sr, pb).unwrap();
        match m.rtcp {
            Rtcp::Muxed => {
                expect_packet(&b, pa, &sr);
                b.send_to(&sr, pa).unwrap();
                expect_packet(&a, pb, &sr);
            }
            Rtcp::Demuxed => {
                let pa1 = sa("203.0.113.1", port_a + 1);
                expect_packet(&b1, pa1, &sr);
                let sr2 = rtcp_sr(0x5678);
                b1.send_to(&sr2, pa1).unwrap();
                expect_packet(&a, pb, &sr2);
            }
            Rtcp::Unchecked => {}
        }
        for s in [&a, &b, &b1] {
            expect_silence(s);
        }
        rig.delete_now(&call_id);
    }
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn audio_and_video() {
    require_root();
    let rig = Rig::new("av", &[]);
    let offer = "
        v=0
        o=- 1545997027 1 IN IP4 198.51.100.1
        s=tester
        t=0 0
        m=audio 2010 RTP/AVP 0 8
        c=IN IP4 198.51.100.1
        a=sendrecv
        m=video 2020 RTP/AVP 96
        c=IN IP4 198.51.100.1
        a=rtpmap:96 H264/90000
        a=sendrecv";
    let sdp = rig.offer("av-1", "ft", offer, vec![]);
    let ports = match_sdp(
        &sdp,
        "v=0
        o=- 1545997027 1 IN IP4 198.51.100.1
        s=tester
        t=0 0
        m=audio PORT RTP/AVP 0 8
        c=IN IP4 203.0.113.1
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=sendrecv
        a=rtcp:PORT
        m=video PORT RTP/AVP 96
        c=IN IP4 203.0.113.1
        a=rtpmap:96 H264/90000
        a=sendrecv
        a=rtcp:PORT",
    );
    let (audio_a, video_a) = (rtp_port(&ports[..2]), rtp_port(&ports[2..]));
    assert_ne!(audio_a, video_a);
    let answer = offer
        .replace("198.51.100.1", "198.51.100.3")
        .replace("2010", "2012")
        .replace("2020", "2022");
    let sdp = rig.answer("av-1", "ft", "tt", &answer, vec![]);
    let ports = match_sdp(
        &sdp,
        "v=0
        o=- 1545997027 1 IN IP4 198.51.100.3
        s=tester
        t=0 0
        m=audio PORT RTP/AVP 0 8
        c=IN IP4 203.0.113.1
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=sendrecv
        a=rtcp:PORT
        m=video PORT RTP/AVP 96
        c=IN IP4 203.0.113.1
        a=rtpmap:96 H264/90000
        a=sendrecv
        a=rtcp:PORT",
    );
    let (audio_b, video_b) = (rtp_port(&ports[..2]), rtp_port(&ports[2..]));
    let mut all = vec![audio_a, video_a, audio_b, video_b];
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4, "all four pairs distinct");

    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    let av = rig.socket("198.51.100.1:2020");
    let bv = rig.socket("198.51.100.3:2022");
    let ip = "203.0.113.1";
    media_both_ways(&a, &b, sa(ip, audio_a), sa(ip, audio_b));
    media_both_ways(&av, &bv, sa(ip, video_a), sa(ip, video_b));
    for s in [&a, &b, &av, &bv] {
        expect_silence(s);
    }
}

const HOLD_OFFER: &str = "
v=0
o=- 1545997027 1 IN IP4 198.51.100.11
s=tester
c=IN IP4 0.0.0.0
t=0 0
m=audio 3000 RTP/AVP 8
a=sendrecv
";

const HOLD_ANSWER: &str = "
v=0
o=- 1545997027 1 IN IP4 198.51.100.11
s=tester
c=IN IP4 0.0.0.0
t=0 0
m=audio 3000 RTP/AVP 8
a=recvonly
";

fn hold_out(dir: &str) -> String {
    format!(
        "v=0
        o=- 1545997027 1 IN IP4 198.51.100.11
        s=tester
        t=0 0
        m=audio PORT RTP/AVP 8
        c=IN IP4 0.0.0.0
        a=rtpmap:8 PCMA/8000
        a={dir}
        a=rtcp:PORT"
    )
}

/// Upstream's "original sendrecv control" / "original sendrecv".
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn hold_zero_address() {
    require_root();
    let rig = Rig::new("hold", &[]);
    let sdp = rig.offer("hold-1", "ft", HOLD_OFFER, vec![]);
    rtp_port(&match_sdp(&sdp, &hold_out("sendonly")));
    let sdp = rig.answer("hold-1", "ft", "tt", HOLD_ANSWER, vec![]);
    rtp_port(&match_sdp(&sdp, &hold_out("inactive")));

    let flags = || vec![("flags", strs(&["original sendrecv"]))];
    let sdp = rig.offer("hold-2", "ft", HOLD_OFFER, flags());
    rtp_port(&match_sdp(&sdp, &hold_out("sendrecv")));
    let sdp = rig.answer("hold-2", "ft", "tt", HOLD_ANSWER, flags());
    rtp_port(&match_sdp(&sdp, &hold_out("recvonly")));
}

/// ICE attributes are stripped with `ICE: remove`; unknown attributes pass
/// through in their order, before the direction attribute.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ice_removed_unknown_attributes_kept() {
    require_root();
    let rig = Rig::new("ice", &[]);
    let sdp = rig.offer(
        "ice-1",
        "ft",
        "v=0
        o=- 1545997027 1 IN IP4 198.51.100.1
        s=tester
        t=0 0
        a=ice-lite
        a=x-session-thing:1
        m=audio 2010 RTP/AVP 0 8
        c=IN IP4 198.51.100.1
        a=x-alpha:1
        a=ice-ufrag:abcd
        a=ice-pwd:0123456789abcdefghijklmn
        a=candidate:1 1 UDP 2130706431 198.51.100.1 2010 typ host
        a=candidate:1 2 UDP 2130706430 198.51.100.1 2011 typ host
        a=end-of-candidates
        a=sendrecv
        a=x-beta
        a=x-gamma:3 4",
        vec![("ICE", Value::str("remove"))],
    );
    rtp_port(&match_sdp(
        &sdp,
        "v=0
        o=- 1545997027 1 IN IP4 198.51.100.1
        s=tester
        t=0 0
        a=x-session-thing:1
        m=audio PORT RTP/AVP 0 8
        c=IN IP4 203.0.113.1
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=x-alpha:1
        a=x-beta
        a=x-gamma:3 4
        a=sendrecv
        a=rtcp:PORT",
    ));
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn replace_origin_and_session_name() {
    require_root();
    let rig = Rig::new("replace", &[]);
    let out = |o: &str, s: &str| {
        format!(
            "v=0
            o=- 1545997027 1 IN IP4 {o}
            s={s}
            t=0 0
            {}",
            out_audio("IP4", "203.0.113.1")
        )
    };
    let sdp = rig.offer("rep-1", "ft", OFFER, vec![("replace", strs(&["origin"]))]);
    match_sdp(&sdp, &out("203.0.113.1", "tester"));

    // session-name: the first s= seen is kept for later offers.
    let renamed = OFFER.replace("s=tester", "s=other");
    let sdp = rig.offer(
        "rep-2",
        "ft",
        OFFER,
        vec![("replace", strs(&["session-name"]))],
    );
    match_sdp(&sdp, &out("198.51.100.1", "tester"));
    let sdp = rig.offer(
        "rep-2",
        "ft",
        &renamed,
        vec![("replace", strs(&["session-name"]))],
    );
    match_sdp(&sdp, &out("198.51.100.1", "tester"));
    // Without the option, the new name goes through.
    let sdp = rig.offer("rep-2", "ft", &renamed, vec![]);
    match_sdp(&sdp, &out("198.51.100.1", "other"));
}

fn versioned(ver: u32, codecs: &str) -> String {
    format!(
        "v=0
        o=- 1545997027 {ver} IN IP4 198.51.100.1
        s=tester
        t=0 0
        m=audio 2010 RTP/AVP {codecs}
        c=IN IP4 198.51.100.1
        a=sendrecv"
    )
}

fn versioned_out(ver: u32, codecs: &str) -> String {
    let maps: String = codecs
        .split(' ')
        .map(|pt| match pt {
            "0" => "a=rtpmap:0 PCMU/8000\n".to_string(),
            "8" => "a=rtpmap:8 PCMA/8000\n".to_string(),
            other => panic!("no rtpmap for {other}"),
        })
        .collect();
    format!(
        "v=0
        o=- 1545997027 {ver} IN IP4 198.51.100.1
        s=tester
        t=0 0
        m=audio PORT RTP/AVP {codecs}
        c=IN IP4 203.0.113.1
        {maps}
        a=sendrecv
        a=rtcp:PORT"
    )
}

/// `replace: [SDP-version]` (upstream "SDP version simple increments", with
/// a codec change instead of a port change as the modification): the
/// version only moves when the SDP sent changes, whatever the input says.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn replace_sdp_version() {
    require_root();
    let rig = Rig::new("sdpver", &[]);
    let opt = || vec![("replace", strs(&["SDP-version"]))];
    let steps = [
        (1, "0", 1),
        (1, "0", 1),
        (2, "0", 1),
        (3, "0", 1),
        (1, "0 8", 2),
        (4, "0 8", 2),
        (5, "0", 3),
    ];
    for (i, (ver_in, codecs, ver_out)) in steps.into_iter().enumerate() {
        let sdp = rig.offer("ver-1", "ft", &versioned(ver_in, codecs), opt());
        eprintln!("step {i}");
        match_sdp(&sdp, &versioned_out(ver_out, codecs));
    }
}

/// `replace: [force-increment-sdp-ver]` (upstream "SDP version force
/// increase"): every offer after the first bumps the version.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn force_increment_sdp_version() {
    require_root();
    let rig = Rig::new("sdpforce", &[]);
    let opt = || vec![("replace", strs(&["force-increment-sdp-ver"]))];
    for (i, (ver_in, ver_out)) in [(1, 1), (2, 2), (3, 3), (3, 4), (1, 5)]
        .into_iter()
        .enumerate()
    {
        let sdp = rig.offer("force-1", "ft", &versioned(ver_in, "0"), opt());
        eprintln!("step {i}");
        match_sdp(&sdp, &versioned_out(ver_out, "0"));
    }
}
