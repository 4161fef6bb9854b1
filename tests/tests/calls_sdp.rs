//! SDP rewriting through the real daemon, byte-exact modulo `PORT` (as
//! upstream's t/auto-daemon-tests*.pl), plus media where the SDP decides
//! where packets go (families, interfaces, rtcp-mux).

use std::net::SocketAddr;

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

/// Checks RTP/RTCP ports captured from a standard section: RTCP = RTP + 1.
fn rtp_port(ports: &[u16]) -> u16 {
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_eq!(ports[1], ports[0] + 1, "a=rtcp must be RTP port + 1");
    assert_eq!(ports[0] % 2, 0, "RTP port must be even");
    ports[0]
}

/// RTP both ways between `a` and `b`; `pa`/`pb` are the daemon's addresses
/// facing B and A respectively.
fn media_both_ways(
    a: &std::net::UdpSocket,
    b: &std::net::UdpSocket,
    pa: SocketAddr,
    pb: SocketAddr,
) {
    let p1 = rtp(0, 1000, 3000, 0x1234, 0x11);
    a.send_to(&p1, pb).unwrap();
    expect_packet(b, pa, &p1);
    let p2 = rtp(0, 2000, 4000, 0x5678, 0x22);
    b.send_to(&p2, pa).unwrap();
    expect_packet(a, pb, &p2);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv6_caller() {
    require_root();
    let rig = Rig::new("v6", &["-i", "203.0.113.1", "-i", "2001:db8:4321::1"]);
    let sdp = rig.offer(
        "v6-1",
        "ft",
        "v=0
        o=- 1545997027 1 IN IP6 2001:db8::10
        s=tester
        t=0 0
        m=audio 2010 RTP/AVP 0 8
        c=IN IP6 2001:db8::10
        a=sendrecv",
        vec![],
    );
    let port_a = rtp_port(&match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP6 2001:db8::10
            s=tester
            t=0 0
            {}",
            out_audio("IP6", "2001:db8:4321::1")
        ),
    ));
    let sdp = rig.answer(
        "v6-1",
        "ft",
        "tt",
        "v=0
        o=- 1545997027 1 IN IP6 2001:db8::10
        s=tester
        t=0 0
        m=audio 2012 RTP/AVP 0 8
        c=IN IP6 2001:db8::10
        a=sendrecv",
        vec![],
    );
    let port_b = rtp_port(&match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP6 2001:db8::10
            s=tester
            t=0 0
            {}",
            out_audio("IP6", "2001:db8:4321::1")
        ),
    ));
    let a = rig.socket("[2001:db8::10]:2010");
    let b = rig.socket("[2001:db8::10]:2012");
    media_both_ways(
        &a,
        &b,
        sa("2001:db8:4321::1", port_a),
        sa("2001:db8:4321::1", port_b),
    );
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

/// Upstream's "intfs selection" idea: the offerer sits on `foo`, the
/// answerer on `bar`.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn bridging_direction() {
    require_root();
    let rig = Rig::new(
        "bridge",
        &["-i", "foo/203.0.113.1", "-i", "bar/203.0.113.2"],
    );
    let sdp = rig.offer(
        "br-1",
        "ft",
        OFFER,
        vec![("direction", strs(&["foo", "bar"]))],
    );
    let port_a = rtp_port(&match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP4 198.51.100.1
            s=tester
            t=0 0
            {}",
            out_audio("IP4", "203.0.113.2")
        ),
    ));
    let sdp = rig.answer("br-1", "ft", "tt", ANSWER, vec![]);
    let port_b = rtp_port(&match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP4 198.51.100.3
            s=tester
            t=0 0
            {}",
            out_audio("IP4", "203.0.113.1")
        ),
    ));
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    media_both_ways(&a, &b, sa("203.0.113.2", port_a), sa("203.0.113.1", port_b));
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn advertised_address() {
    require_root();
    let rig = Rig::new("adv", &["-i", "203.0.113.1!192.0.2.99"]);
    let sdp = rig.offer("adv-1", "ft", OFFER, vec![]);
    let port_a = rtp_port(&match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP4 198.51.100.1
            s=tester
            t=0 0
            {}",
            out_audio("IP4", "192.0.2.99")
        ),
    ));
    let sdp = rig.answer("adv-1", "ft", "tt", ANSWER, vec![]);
    let port_b = rtp_port(&match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP4 198.51.100.3
            s=tester
            t=0 0
            {}",
            out_audio("IP4", "192.0.2.99")
        ),
    ));
    // Media really uses the local address.
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    media_both_ways(&a, &b, sa("203.0.113.1", port_a), sa("203.0.113.1", port_b));
    // replace origin uses the advertised address too.
    let sdp = rig.offer("adv-2", "ft", OFFER, vec![("replace", strs(&["origin"]))]);
    match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP4 192.0.2.99
            s=tester
            t=0 0
            {}",
            out_audio("IP4", "192.0.2.99")
        ),
    );
}

/// `address-family: IP6` in the offer: IPv4 caller, IPv6 callee, RTP both
/// ways with the right sources (upstream "control E" for the SDP).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn address_family_bridge_v4_v6() {
    require_root();
    let rig = Rig::new("af", &["-i", "203.0.113.1", "-i", "2001:db8:4321::1"]);
    let sdp = rig.offer(
        "af-1",
        "ft",
        OFFER,
        vec![("address-family", Value::str("IP6"))],
    );
    let port_a = rtp_port(&match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP4 198.51.100.1
            s=tester
            t=0 0
            {}",
            out_audio("IP6", "2001:db8:4321::1")
        ),
    ));
    let sdp = rig.answer(
        "af-1",
        "ft",
        "tt",
        "v=0
        o=- 1545997027 1 IN IP6 2001:db8::10
        s=tester
        t=0 0
        m=audio 2012 RTP/AVP 0 8
        c=IN IP6 2001:db8::10
        a=sendrecv",
        vec![],
    );
    let port_b = rtp_port(&match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP6 2001:db8::10
            s=tester
            t=0 0
            {}",
            out_audio("IP4", "203.0.113.1")
        ),
    ));
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("[2001:db8::10]:2012");
    media_both_ways(
        &a,
        &b,
        sa("2001:db8:4321::1", port_a),
        sa("203.0.113.1", port_b),
    );
    // And RTCP.
    let a1 = rig.socket("198.51.100.1:2011");
    let b1 = rig.socket("[2001:db8::10]:2013");
    let sr = rtcp_sr(0x1234);
    a1.send_to(&sr, sa("203.0.113.1", port_b + 1)).unwrap();
    expect_packet(&b1, sa("2001:db8:4321::1", port_a + 1), &sr);
    b1.send_to(&sr, sa("2001:db8:4321::1", port_a + 1)).unwrap();
    expect_packet(&a1, sa("203.0.113.1", port_b + 1), &sr);
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

/// Offerer and answerer both do rtcp-mux: the offer carries `a=rtcp:<port+1>`
/// and `a=rtcp-mux`; the answer `a=rtcp:<port>` and `a=rtcp-mux`, and RTCP
/// travels muxed on the RTP ports.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn rtcp_mux_offered_and_accepted() {
    require_root();
    let rig = Rig::new("mux", &[]);
    let sdp = rig.offer("mux-1", "ft", &format!("{OFFER}a=rtcp-mux\n"), vec![]);
    let ports = match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP4 198.51.100.1
            s=tester
            t=0 0
            {}
            a=rtcp-mux",
            out_audio("IP4", "203.0.113.1")
        ),
    );
    let port_a = rtp_port(&ports);
    let sdp = rig.answer(
        "mux-1",
        "ft",
        "tt",
        &format!("{ANSWER}a=rtcp-mux\n"),
        vec![],
    );
    let ports = match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP4 198.51.100.3
            s=tester
            t=0 0
            {}
            a=rtcp-mux",
            out_audio("IP4", "203.0.113.1")
        ),
    );
    assert_eq!(ports[0], ports[1], "muxed answer: a=rtcp is the RTP port");
    let port_b = ports[0];
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    let (pa, pb) = (sa("203.0.113.1", port_a), sa("203.0.113.1", port_b));
    media_both_ways(&a, &b, pa, pb);
    let sr = rtcp_sr(0x1234);
    a.send_to(&sr, pb).unwrap();
    expect_packet(&b, pa, &sr);
    b.send_to(&sr, pa).unwrap();
    expect_packet(&a, pb, &sr);
}

/// `rtcp-mux: [demux]`: mux accepted towards the offerer, not offered to the
/// answerer; RTCP muxed on A's side arrives on B's RTCP port from the
/// B-facing RTCP port, and back.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn rtcp_mux_demux() {
    require_root();
    let rig = Rig::new("demux", &[]);
    let sdp = rig.offer(
        "demux-1",
        "ft",
        &format!("{OFFER}a=rtcp-mux\n"),
        vec![("rtcp-mux", strs(&["demux"]))],
    );
    let port_a = rtp_port(&match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP4 198.51.100.1
            s=tester
            t=0 0
            {}",
            out_audio("IP4", "203.0.113.1")
        ),
    ));
    let sdp = rig.answer("demux-1", "ft", "tt", ANSWER, vec![]);
    let ports = match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP4 198.51.100.3
            s=tester
            t=0 0
            {}
            a=rtcp-mux",
            out_audio("IP4", "203.0.113.1")
        ),
    );
    assert_eq!(ports[0], ports[1], "muxed answer: a=rtcp is the RTP port");
    let port_b = ports[0];
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    let b1 = rig.socket("198.51.100.3:2013");
    let (pa, pb) = (sa("203.0.113.1", port_a), sa("203.0.113.1", port_b));
    media_both_ways(&a, &b, pa, pb);
    let sr = rtcp_sr(0x1234);
    a.send_to(&sr, pb).unwrap();
    expect_packet(&b1, sa("203.0.113.1", port_a + 1), &sr);
    let sr2 = rtcp_sr(0x5678);
    b1.send_to(&sr2, sa("203.0.113.1", port_a + 1)).unwrap();
    expect_packet(&a, pb, &sr2);
    for s in [&a, &b, &b1] {
        expect_silence(s);
    }
}

/// `rtcp-mux: [require]`: mux even in the offer, `a=rtcp` = RTP port.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn rtcp_mux_require() {
    require_root();
    let rig = Rig::new("muxreq", &[]);
    let sdp = rig.offer("req-1", "ft", OFFER, vec![("rtcp-mux", strs(&["require"]))]);
    let ports = match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP4 198.51.100.1
            s=tester
            t=0 0
            {}
            a=rtcp-mux",
            out_audio("IP4", "203.0.113.1")
        ),
    );
    assert_eq!(ports[0], ports[1], "required mux: a=rtcp is the RTP port");
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

/// `rtcp-mux: [accept]` (what jambonz sends): mux is offered onward, and
/// the offerer gets mux in the answer even when the answerer declines it
/// (upstream `__rtcp_mux_logic()`: RTCP_MUX_OVERRIDE); RTCP is then demuxed
/// towards the answerer.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn rtcp_mux_accept_answerer_declines() {
    require_root();
    let rig = Rig::new("muxacc", &[]);
    let sdp = rig.offer(
        "acc-1",
        "ft",
        &format!("{OFFER}a=rtcp-mux\n"),
        vec![("rtcp-mux", strs(&["accept"]))],
    );
    let port_a = rtp_port(&match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP4 198.51.100.1
            s=tester
            t=0 0
            {}
            a=rtcp-mux",
            out_audio("IP4", "203.0.113.1")
        ),
    ));
    let sdp = rig.answer("acc-1", "ft", "tt", ANSWER, vec![]);
    let ports = match_sdp(
        &sdp,
        &format!(
            "v=0
            o=- 1545997027 1 IN IP4 198.51.100.3
            s=tester
            t=0 0
            {}
            a=rtcp-mux",
            out_audio("IP4", "203.0.113.1")
        ),
    );
    assert_eq!(ports[0], ports[1], "muxed answer: a=rtcp is the RTP port");
    let port_b = ports[0];
    let a = rig.socket("198.51.100.1:2010");
    let b1 = rig.socket("198.51.100.3:2013");
    let sr = rtcp_sr(0x1234);
    a.send_to(&sr, sa("203.0.113.1", port_b)).unwrap();
    expect_packet(&b1, sa("203.0.113.1", port_a + 1), &sr);
}
