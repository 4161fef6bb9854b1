//! The offer/answer options that reshape the SDP: `codec` manipulation,
//! `single codec`, `ptime`/`ptime-reverse`, `transport-protocol`,
//! `extmap`, `sdp-attr` and `sdp-media-remove`, in dictionary, flag and
//! `rtpp-flags` form, byte-exact modulo `PORT`.
//!
//! Where an expectation says "10.5", it is what Debian's rtpengine
//! 10.5.3.5-1+deb12u1 wrote for the same request (run side by side); where
//! it says "master", 10.5 lacks the option (`sdp-attr`, `sdp-media-remove`,
//! `allow no codec media`, `codec-…` in `rtpp-flags`) and the expectation
//! follows current master's `docs/ng_control_protocol.md`.

use std::net::SocketAddr;

use rtpengine_tests::*;

const HEAD: &str = "v=0
o=- 1545997027 1 IN IP4 198.51.100.1
s=tester
t=0 0";

/// The caller's offer: opus, PCMU, PCMA, telephone-event at both rates, CN.
fn offer_sdp() -> String {
    format!(
        "{HEAD}
        m=audio 2000 RTP/AVP 96 0 8 101 102 13
        c=IN IP4 198.51.100.1
        a=rtpmap:96 opus/48000/2
        a=fmtp:96 useinbandfec=1
        a=rtpmap:101 telephone-event/48000
        a=rtpmap:102 telephone-event/8000
        a=fmtp:102 0-15
        a=ptime:20
        a=sendrecv"
    )
}

/// The rewritten offer with only the payload types `pts` left.
fn offer_out(pts: &str, ptime: &str) -> String {
    let mut lines = vec![
        format!("m=audio PORT RTP/AVP {pts}"),
        "c=IN IP4 203.0.113.1".into(),
    ];
    for pt in pts.split(' ') {
        lines.extend(
            match pt {
                "96" => &["a=rtpmap:96 opus/48000/2", "a=fmtp:96 useinbandfec=1"][..],
                "0" => &["a=rtpmap:0 PCMU/8000"][..],
                "8" => &["a=rtpmap:8 PCMA/8000"][..],
                "101" => &["a=rtpmap:101 telephone-event/48000"][..],
                "102" => &["a=rtpmap:102 telephone-event/8000", "a=fmtp:102 0-15"][..],
                "13" => &["a=rtpmap:13 CN/8000"][..],
                other => panic!("pt {other}"),
            }
            .iter()
            .map(|s| s.to_string()),
        );
    }
    lines.extend([
        "a=sendrecv".into(),
        "a=rtcp:PORT".into(),
        format!("a=ptime:{ptime}"),
    ]);
    format!("{HEAD}\n{}", lines.join("\n"))
}

fn l(items: &[&str]) -> Value {
    Value::List(items.iter().copied().map(Value::str).collect())
}

fn d(pairs: &[(&str, Value)]) -> Value {
    Value::Dict(
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
            .collect(),
    )
}

/// Codec options on the offer: what the answerer is offered.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn codec_manipulation_in_offers() {
    let rig = Rig::new("sdpcodec", &[]);
    type Case = (&'static str, Vec<(&'static str, Value)>, &'static str);
    let cases: Vec<Case> = vec![
        // 10.5: a stripped codec takes the telephone-event of its rate along.
        (
            "strip",
            vec![("codec", d(&[("strip", l(&["opus"]))]))],
            "0 8 102 13",
        ),
        // 10.5: names match case-insensitively, with all parameters.
        (
            "case",
            vec![("codec", d(&[("strip", l(&["pcmu"]))]))],
            "96 8 101 102 13",
        ),
        (
            "params",
            vec![("codec", d(&[("strip", l(&["opus/48000/2"]))]))],
            "0 8 102 13",
        ),
        (
            "params-differ",
            vec![("codec", d(&[("strip", l(&["opus/48000/1"]))]))],
            "96 0 8 101 102 13",
        ),
        // 10.5: payload type numbers are not codec names.
        (
            "numbers",
            vec![("codec", d(&[("strip", l(&["8", "101"]))]))],
            "96 0 8 101 102 13",
        ),
        // 10.5: all/full keep only `except`, `offer` appends in its order.
        (
            "all-except",
            vec![(
                "codec",
                d(&[
                    ("strip", l(&["all"])),
                    ("except", l(&["PCMA", "telephone-event"])),
                ]),
            )],
            "8 102",
        ),
        (
            "all-offer",
            vec![(
                "codec",
                d(&[("strip", l(&["all"])), ("offer", l(&["PCMA", "PCMU"]))]),
            )],
            "8 0",
        ),
        (
            "full-except-offer",
            vec![(
                "codec",
                d(&[
                    ("strip", l(&["full"])),
                    ("except", l(&["PCMU"])),
                    ("offer", l(&["PCMA"])),
                ]),
            )],
            "0 8",
        ),
        // 10.5: nothing left is a usage error: the list comes back whole.
        (
            "all-alone",
            vec![("codec", d(&[("strip", l(&["all"]))]))],
            "96 0 8 101 102 13",
        ),
        // 10.5: `offer`/`except` alone change nothing.
        (
            "offer-alone",
            vec![("codec", d(&[("offer", l(&["PCMA", "PCMU"]))]))],
            "96 0 8 101 102 13",
        ),
        // 10.5: without transcoding, mask and consume strip; accept and set change nothing.
        (
            "mask",
            vec![("codec", d(&[("mask", l(&["PCMU"]))]))],
            "96 8 101 102 13",
        ),
        (
            "consume",
            vec![("codec", d(&[("consume", l(&["PCMU"]))]))],
            "96 8 101 102 13",
        ),
        (
            "mask-all",
            vec![(
                "codec",
                d(&[("mask", l(&["all"])), ("except", l(&["opus/48000/2"]))]),
            )],
            "96",
        ),
        (
            "accept",
            vec![("codec", d(&[("accept", l(&["PCMU"]))]))],
            "96 0 8 101 102 13",
        ),
        (
            "set",
            vec![("codec", d(&[("set", l(&["opus/48000/2/32000"]))]))],
            "96 0 8 101 102 13",
        ),
        // 10.5: the flag form.
        (
            "flags",
            vec![("flags", l(&["codec-strip-PCMA", "codec-offer-PCMU"]))],
            "96 0 101 102 13",
        ),
        // master: the rtpp-flags forms (10.5 ignores them).
        (
            "rtpp",
            vec![("rtpp-flags", Value::str("codec-strip-PCMA codec-mask=opus"))],
            "0 102 13",
        ),
    ];
    for (i, (name, opts, pts)) in cases.into_iter().enumerate() {
        let sdp = rig.offer(&format!("codec-{i}"), "a", &offer_sdp(), opts);
        eprintln!("case {name}");
        match_sdp(&sdp, &offer_out(pts, "20"));
    }
}

/// `allow no codec media` (master): a section left without codecs is
/// rejected instead of restored, and gets no ports.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn no_codec_left_rejects_the_section_when_allowed() {
    let rig = Rig::new("sdpnocodec", &[]);
    let sdp = rig.offer(
        "nc",
        "a",
        &offer_sdp(),
        vec![
            ("codec", d(&[("strip", l(&["all"]))])),
            ("flags", l(&["allow no codec media"])),
        ],
    );
    match_sdp(
        &sdp,
        &format!(
            "{HEAD}
            m=audio 0 RTP/AVP 0
            c=IN IP4 0.0.0.0"
        ),
    );
}

/// The answer carries only codecs that were offered to the answerer
/// (10.5), `single codec` keeps the first one with its telephone-event
/// (10.5), and `ptime`/`ptime-reverse` set `a=ptime` each way (10.5).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn answers_and_ptime() {
    let rig = Rig::new("sdpanswer", &[]);
    let answer = |pts: &str, extra: &str| {
        format!(
            "v=0
            o=- 2 1 IN IP4 198.51.100.2
            s=tester
            t=0 0
            m=audio 3000 RTP/AVP {pts}
            c=IN IP4 198.51.100.2
            {extra}
            a=sendrecv"
        )
    };
    let answer_out = |pts: &str, lines: &str| {
        format!(
            "v=0
            o=- 2 1 IN IP4 198.51.100.2
            s=tester
            t=0 0
            m=audio PORT RTP/AVP {pts}
            c=IN IP4 203.0.113.1
            {lines}
            a=sendrecv
            a=rtcp:PORT"
        )
    };
    // PCMA was stripped from the offer: the answer may not pick it.
    rig.offer(
        "an1",
        "a",
        &offer_sdp(),
        vec![("codec", d(&[("strip", l(&["PCMA"]))]))],
    );
    let out = rig.answer(
        "an1",
        "a",
        "b",
        &answer("8 0 102", "a=rtpmap:102 telephone-event/8000"),
        vec![],
    );
    // An answer without a=ptime gets the offerer's own back (10.5).
    match_sdp(
        &out,
        &answer_out(
            "0 102",
            "a=rtpmap:0 PCMU/8000\na=rtpmap:102 telephone-event/8000\n",
        )
        .replace("a=rtcp:PORT", "a=rtcp:PORT\na=ptime:20"),
    );
    // single codec: the first real codec, supplemental ones stay in place.
    rig.offer("an2", "a", &offer_sdp(), vec![]);
    let out = rig.answer(
        "an2",
        "a",
        "b",
        &answer("102 0 8", "a=rtpmap:102 telephone-event/8000\na=ptime:30"),
        vec![("flags", l(&["single codec"]))],
    );
    match_sdp(
        &out,
        &answer_out(
            "102 0",
            "a=rtpmap:102 telephone-event/8000\na=rtpmap:0 PCMU/8000",
        )
        .replace("a=rtcp:PORT", "a=rtcp:PORT\na=ptime:30"),
    );
    // ptime towards the answerer, ptime-reverse into the answer.
    let out = rig.offer(
        "an3",
        "a",
        &offer_sdp(),
        vec![("ptime", Value::Int(40)), ("ptime-reverse", Value::Int(10))],
    );
    match_sdp(&out, &offer_out("96 0 8 101 102 13", "40"));
    let out = rig.answer(
        "an3",
        "a",
        "b",
        &answer("0", "a=ptime:30"),
        vec![("ptime", Value::Int(50))],
    );
    match_sdp(
        &out,
        &answer_out("0", "a=rtpmap:0 PCMU/8000").replace("a=rtcp:PORT", "a=rtcp:PORT\na=ptime:10"),
    );
}

/// A caller with audio (AVP) and video (AVPF, feedback, header extensions).
fn av_offer() -> String {
    format!(
        "{HEAD}
        a=group:BUNDLE 0 1
        a=tool:gen 1
        m=audio 2000 RTP/AVP 0 101
        c=IN IP4 198.51.100.1
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-15
        a=ptime:20
        a=x-foo:bar baz
        m=video 2002 RTP/AVPF 96
        c=IN IP4 198.51.100.1
        a=rtpmap:96 VP8/90000
        a=rtcp-fb:96 nack
        a=rtcp-fb:96 nack pli
        a=extmap:1 urn:ietf:params:rtp-hdrext:toffset
        a=extmap:2/sendonly urn:3gpp:video-orientation
        a=extmap-allow-mixed
        a=sendrecv"
    )
}

fn av_out(audio_proto: &str, video_proto: &str, video_extmap: &str) -> String {
    format!(
        "{HEAD}
        a=tool:gen 1
        m=audio PORT {audio_proto} 0 101
        c=IN IP4 203.0.113.1
        a=rtpmap:0 PCMU/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-15
        a=x-foo:bar baz
        a=sendrecv
        a=rtcp:PORT
        a=ptime:20
        m=video PORT {video_proto} 96
        c=IN IP4 203.0.113.1
        a=rtpmap:96 VP8/90000
        a=rtcp-fb:96 nack
        a=rtcp-fb:96 nack pli
        {video_extmap}
        a=extmap-allow-mixed
        a=sendrecv
        a=rtcp:PORT"
    )
}

const BOTH_EXTMAPS: &str = "a=extmap:1 urn:ietf:params:rtp-hdrext:toffset
    a=extmap:2/sendonly urn:3gpp:video-orientation";

/// `transport-protocol` switches RTP/AVP and RTP/AVPF (10.5: feedback lines
/// stay; the offerer hears its own protocol back unless the answer says
/// `accept`), in every spelling; `extmap` strip (master; `strip extmap`
/// as 10.5).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn transport_protocol_and_extmap() {
    let rig = Rig::new("sdptp", &[]);
    let to_avp = [
        ("transport-protocol", Value::str("RTP/AVP")),
        ("transport protocol", Value::str("RTP/AVP")),
        ("rtpp-flags", Value::str("RTP/AVP")),
        ("rtpp-flags", Value::str("RTP/AVPF AVP")),
    ];
    for (i, (k, v)) in to_avp.into_iter().enumerate() {
        let out = rig.offer(&format!("tp{i}"), "a", &av_offer(), vec![(k, v)]);
        match_sdp(&out, &av_out("RTP/AVP", "RTP/AVP", BOTH_EXTMAPS));
    }
    let out = rig.offer(
        "tpf",
        "a",
        &av_offer(),
        vec![("rtpp-flags", Value::str("RTP AVPF"))],
    );
    match_sdp(&out, &av_out("RTP/AVPF", "RTP/AVPF", BOTH_EXTMAPS));
    // The AVP answer to the AVPF video goes back to the caller as AVPF…
    let answer = "v=0
        o=- 2 1 IN IP4 198.51.100.2
        s=tester
        t=0 0
        m=audio 3000 RTP/AVP 0
        c=IN IP4 198.51.100.2
        m=video 3002 RTP/AVP 96
        c=IN IP4 198.51.100.2
        a=rtpmap:96 VP8/90000";
    let answer_out = |video: &str| {
        format!(
            "v=0
            o=- 2 1 IN IP4 198.51.100.2
            s=tester
            t=0 0
            m=audio PORT RTP/AVP 0
            c=IN IP4 203.0.113.1
            a=rtpmap:0 PCMU/8000
            a=sendrecv
            a=rtcp:PORT
            a=ptime:20
            m=video PORT {video} 96
            c=IN IP4 203.0.113.1
            a=rtpmap:96 VP8/90000
            a=sendrecv
            a=rtcp:PORT"
        )
    };
    let out = rig.answer("tp0", "a", "b", answer, vec![]);
    match_sdp(&out, &answer_out("RTP/AVPF"));
    // … unless the answer accepts the answerer's protocol.
    let out = rig.answer(
        "tp1",
        "a",
        "b",
        answer,
        vec![("transport-protocol", Value::str("accept"))],
    );
    match_sdp(&out, &answer_out("RTP/AVP"));
    // extmap strip by name, all of them, and the legacy flag.
    let out = rig.offer(
        "ex1",
        "a",
        &av_offer(),
        vec![(
            "extmap",
            d(&[("strip", l(&["urn:ietf:params:rtp-hdrext:toffset"]))]),
        )],
    );
    match_sdp(
        &out,
        &av_out(
            "RTP/AVP",
            "RTP/AVPF",
            "a=extmap:2/sendonly urn:3gpp:video-orientation",
        ),
    );
    for (i, opt) in [
        ("extmap", d(&[("strip", l(&["all"]))])),
        ("flags", l(&["strip extmap"])),
    ]
    .into_iter()
    .enumerate()
    {
        let out = rig.offer(&format!("ex2{i}"), "a", &av_offer(), vec![opt]);
        let want = av_out("RTP/AVP", "RTP/AVPF", "").replace("\n        \n", "\n");
        match_sdp(&out, &want);
    }
}

/// `sdp-attr` (master): add at the end of the scope (once), remove by
/// name, name:tag or whole value, substitute; the lines the daemon writes
/// itself included; dictionary and flag forms; bad input is an error.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn sdp_attr_manipulations() {
    let rig = Rig::new("sdpattr", &[]);
    let out = rig.offer(
        "at1",
        "a",
        &av_offer(),
        vec![(
            "sdp-attr",
            d(&[
                (
                    "none",
                    d(&[
                        ("add", l(&["foo:1"])),
                        (
                            "substitute",
                            Value::List(vec![l(&["tool:gen 1", "tool:gen 0"])]),
                        ),
                    ]),
                ),
                (
                    "audio",
                    d(&[
                        (
                            "remove",
                            l(&["ptime", "rtpmap:101", "FMTP:101 0-15", "x-foo:bar"]),
                        ),
                        (
                            "substitute",
                            Value::List(vec![l(&["sendrecv", "sendonly"]), l(&["rtcp", "rtcp:9"])]),
                        ),
                        ("add", l(&["x-new", "x-new"])),
                    ]),
                ),
                (
                    "video",
                    d(&[("remove", l(&["rtcp-fb:96 nack pli", "extmap"]))]),
                ),
            ]),
        )],
    );
    match_sdp(
        &out,
        &format!(
            "{HEAD}
            a=tool:gen 0
            a=foo:1
            m=audio PORT RTP/AVP 0 101
            c=IN IP4 203.0.113.1
            a=rtpmap:0 PCMU/8000
            a=sendonly
            a=rtcp:9
            a=x-new
            m=video PORT RTP/AVPF 96
            c=IN IP4 203.0.113.1
            a=rtpmap:96 VP8/90000
            a=rtcp-fb:96 nack
            a=extmap-allow-mixed
            a=sendrecv
            a=rtcp:PORT"
        ),
    );
    // Flag form, in `flags` and in `rtpp-flags`: `--` is `=`, `..` a space.
    for (i, opt) in [
        (
            "flags",
            l(&[
                "sdp-attr-add-audio-fmtp:0..x--1",
                "sdp-attr-remove-video-extmap-allow-mixed",
                "sdp-attr-substitute-global-tool:gen..1>tool:gen..2",
            ]),
        ),
        (
            "rtpp-flags",
            Value::str(
                "sdp-attr-add-audio-fmtp:0..x--1 sdp-attr-remove-video-extmap-allow-mixed \
                 sdp-attr-substitute-global-tool:gen..1>tool:gen..2",
            ),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let out = rig.offer(&format!("at2{i}"), "a", &av_offer(), vec![opt]);
        let want = av_out("RTP/AVP", "RTP/AVPF", BOTH_EXTMAPS)
            .replace("a=tool:gen 1", "a=tool:gen 2")
            .replace("a=ptime:20", "a=ptime:20\na=fmtp:0 x=1")
            .replace("a=extmap-allow-mixed\n", "");
        match_sdp(&out, &want);
    }
    // Errors, with upstream's texts; nothing is left behind.
    for (opt, err) in [
        (
            d(&[("bogus", d(&[("add", l(&["x"]))]))]),
            "unsupported sdp section",
        ),
        (
            d(&[("audio", d(&[("frob", l(&["x"]))]))]),
            "unknown manipulation command",
        ),
        (l(&["audio"]), "wrong type used"),
        (
            d(&[("audio", d(&[("add", l(&["x\r\nm=audio 9 RTP/AVP 0"]))]))]),
            "invalid sdp-attr value",
        ),
    ] {
        let r = rig.cmd(sdp_cmd(
            "offer",
            "at3",
            "a",
            None,
            &crlf(&av_offer()),
            vec![("sdp-attr", opt)],
        ));
        assert_eq!(get_str(&r, "result"), "error", "{r:?}");
        assert_eq!(get_str(&r, "error-reason"), err, "{r:?}");
    }
    assert!(!rig.list_calls().contains(&"at3".to_owned()));
}

/// `sdp-media-remove` (master): the video section is not offered and gets
/// no ports; the answer (audio only) goes back with a rejected video
/// section in its place; audio media flows.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn media_sections_removed_from_the_offer() {
    let rig = Rig::new("sdpmrem", &[]);
    let out = rig.offer(
        "mr",
        "a",
        &av_offer(),
        vec![("sdp-media-remove", l(&["video"]))],
    );
    let want = av_out("RTP/AVP", "RTP/AVPF", BOTH_EXTMAPS);
    let want = &want[..want.find("m=video").expect("video section")];
    let ports = match_sdp(&out, want);
    let answer = "v=0
        o=- 2 1 IN IP4 198.51.100.2
        s=tester
        t=0 0
        m=audio 3000 RTP/AVP 0
        c=IN IP4 198.51.100.3
        a=sendrecv";
    let back = rig.answer("mr", "a", "b", answer, vec![]);
    let back_ports = match_sdp(
        &back,
        "v=0
        o=- 2 1 IN IP4 198.51.100.2
        s=tester
        t=0 0
        m=audio PORT RTP/AVP 0
        c=IN IP4 203.0.113.1
        a=rtpmap:0 PCMU/8000
        a=sendrecv
        a=rtcp:PORT
        a=ptime:20
        m=video 0 RTP/AVPF 96
        c=IN IP4 203.0.113.1",
    );
    let a = rig.socket("198.51.100.1:2000");
    let b = rig.socket("198.51.100.3:3000");
    let to_b: SocketAddr = format!("203.0.113.1:{}", back_ports[0]).parse().unwrap();
    let to_a: SocketAddr = format!("203.0.113.1:{}", ports[0]).parse().unwrap();
    let p = rtp(0, 1, 160, 0x11, 0xaa);
    a.send_to(&p, to_b).unwrap();
    expect_packet(&b, to_a, &p);
    let p = rtp(0, 1, 160, 0x22, 0xbb);
    b.send_to(&p, to_a).unwrap();
    expect_packet(&a, to_b, &p);
    // An unknown media type is an error (upstream's text).
    let r = rig.cmd(sdp_cmd(
        "offer",
        "mr2",
        "a",
        None,
        &crlf(&av_offer()),
        vec![("sdp-media-remove", l(&["hologram"]))],
    ));
    assert_eq!(
        get_str(&r, "error-reason"),
        "unsupported sdp section",
        "{r:?}"
    );
}

/// `reuse codecs` (and `no codec renegotiation`): a re-offer keeps the codec
/// the earlier answer settled on first; without it the order is the
/// offerer's.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn reuse_codecs_keeps_the_settled_codec_first() {
    let rig = Rig::new("sdpreuse", &[]);
    let answer = "v=0\no=- 2 1 IN IP4 198.51.100.3\ns=-\nt=0 0\nm=audio 3000 RTP/AVP 8\nc=IN IP4 198.51.100.3\na=sendrecv";
    for (i, flag) in ["reuse codecs", "no codec renegotiation"]
        .iter()
        .enumerate()
    {
        let id = format!("ru{i}");
        rig.offer(&id, "a", &offer_sdp(), vec![]);
        rig.answer(&id, "a", "b", answer, vec![]);
        let again = rig.offer(&id, "a", &offer_sdp(), vec![("flags", strs(&[flag]))]);
        match_sdp(&again, &offer_out("8 96 0 101 102 13", "20"));
        let plain = rig.offer(&id, "a", &offer_sdp(), vec![]);
        match_sdp(&plain, &offer_out("96 0 8 101 102 13", "20"));
    }
}
