//! Relaying: endpoint learning, strict source, media handover, asymmetric,
//! TOS marking, RTCP, and what `query` reports about it.

use std::net::{SocketAddr, UdpSocket};

use rtpengine_tests::*;

/// The `medias[0].streams[n]` dictionary of party `tag` in a query reply.
fn stream<'a>(q: &'a Dict, tag: &str, n: usize) -> &'a Value {
    let medias = q
        .get(&b"tags"[..])
        .and_then(|t| t.get(tag))
        .and_then(|t| t.get("medias"))
        .unwrap_or_else(|| panic!("no tags.{tag}.medias in {q:?}"));
    let Value::List(medias) = medias else {
        panic!("medias not a list: {medias:?}")
    };
    let Some(Value::List(streams)) = medias[0].get("streams") else {
        panic!("no streams in {:?}", medias[0])
    };
    &streams[n]
}

fn int(v: &Value, path: &[&str]) -> i64 {
    let mut v = v;
    for k in path {
        v = v.get(k).unwrap_or_else(|| panic!("no {path:?} in {v:?}"));
    }
    match v {
        Value::Int(i) => *i,
        other => panic!("{path:?} not an integer: {other:?}"),
    }
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut v = v;
    for k in path {
        v = v.get(k).unwrap_or_else(|| panic!("no {path:?} in {v:?}"));
    }
    v.as_str()
        .unwrap_or_else(|| panic!("{path:?} not a string"))
}

fn flags(v: &Value) -> Vec<String> {
    match v.get("flags") {
        Some(Value::List(l)) => l
            .iter()
            .filter_map(|f| f.as_str().map(String::from))
            .collect(),
        other => panic!("no flags list: {other:?}"),
    }
}

/// The caller is behind NAT: announces 2010, sends from 2050. B's packets
/// must follow the learned source.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn learning_follows_nat_port() {
    require_root();
    let rig = Rig::new("nat", &["--endpoint-learning=immediate"]);
    let (pa, pb) = rig.answered_call("nat-1", Vec::new);
    let a_sdp = rig.socket("198.51.100.1:2010");
    let a_nat = rig.socket("198.51.100.1:2050");
    let b = rig.socket("198.51.100.3:2012");

    let p = rtp(0, 1000, 3000, 0x1234, 1);
    a_nat.send_to(&p, pb).unwrap();
    expect_packet(&b, pa, &p);
    let p = rtp(0, 2000, 4000, 0x5678, 2);
    b.send_to(&p, pa).unwrap();
    expect_packet(&a_nat, pb, &p);
    expect_silence(&a_sdp);

    let q = rig.query("nat-1");
    let s = stream(&q, "ft", 0);
    assert_eq!(int(s, &["local port"]), i64::from(pb.port()), "{s:?}");
    assert_eq!(text(s, &["local address"]), "203.0.113.1");
    assert_eq!(text(s, &["family"]), "IPv4");
    assert_eq!(text(s, &["endpoint", "address"]), "198.51.100.1");
    assert_eq!(int(s, &["endpoint", "port"]), 2050);
    assert_eq!(text(s, &["advertised endpoint", "address"]), "198.51.100.1");
    assert_eq!(int(s, &["advertised endpoint", "port"]), 2010);
    assert_eq!(int(s, &["stats", "packets"]), 1);
    assert_eq!(int(s, &["stats", "bytes"]), 172);
    let f = flags(s);
    for want in ["RTP", "filled", "confirmed"] {
        assert!(f.iter().any(|x| x == want), "flag {want} missing: {f:?}");
    }
    let s = stream(&q, "tt", 0);
    assert_eq!(int(s, &["local port"]), i64::from(pa.port()), "{s:?}");
    assert_eq!(int(s, &["endpoint", "port"]), 2012);
    let rtcp = stream(&q, "tt", 1);
    assert_eq!(int(rtcp, &["local port"]), i64::from(pa.port() + 1));
    assert!(flags(rtcp).iter().any(|x| x == "RTCP"), "{rtcp:?}");
}

/// Upstream's "strict source, forward" (t/auto-daemon-tests-heuristic.pl):
/// impostors are dropped and counted as errors.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn strict_source_drops_impostors() {
    require_root();
    let rig = Rig::new("strict", &["--endpoint-learning=heuristic"]);
    let (pa, pb) = rig.answered_call("strict-1", || vec![("flags", strs(&["strict source"]))]);
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    let imps = [
        rig.socket("198.51.100.3:2032"),
        rig.socket("198.51.100.6:2012"),
        rig.socket("198.51.100.6:2032"),
    ];
    let p = rtp(0, 1000, 3000, 0x1234, 0);
    a.send_to(&p, pb).unwrap();
    expect_packet(&b, pa, &p);
    let p = rtp(0, 2000, 4000, 0x5678, 0);
    b.send_to(&p, pa).unwrap();
    expect_packet(&a, pb, &p);
    for (i, imp) in imps.iter().enumerate() {
        imp.send_to(&rtp(0, 2001, 4160, 0x5678, 9), pa).unwrap();
        expect_silence(&a);
        let q = rtp(0, 1001 + i as u16, 3160, 0x1234, 1);
        a.send_to(&q, pb).unwrap();
        expect_packet(&b, pa, &q);
    }
    for s in imps.iter().chain([&a, &b]) {
        expect_silence(s);
    }
    let q = rig.query("strict-1");
    let s = stream(&q, "tt", 0);
    assert_eq!(int(s, &["stats", "errors"]), 3, "{s:?}");
    assert_eq!(int(s, &["stats", "packets"]), 1, "{s:?}");
    assert_eq!(get_int(&q, &["totals", "RTP", "errors"]), 3);
}

/// `media handover`: a new source takes over the stream at once.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn media_handover_switches_destination() {
    require_root();
    let rig = Rig::new("handover", &["--endpoint-learning=immediate"]);
    let (pa, pb) = rig.answered_call("ho-1", || vec![("flags", strs(&["media handover"]))]);
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    let b2 = rig.socket("198.51.100.6:2032");
    let p = rtp(0, 1000, 3000, 0x1234, 0);
    a.send_to(&p, pb).unwrap();
    expect_packet(&b, pa, &p);
    let p = rtp(0, 2000, 4000, 0x5678, 0);
    b.send_to(&p, pa).unwrap();
    expect_packet(&a, pb, &p);
    // B moves to another address.
    let p = rtp(0, 2001, 4160, 0x5678, 1);
    b2.send_to(&p, pa).unwrap();
    expect_packet(&a, pb, &p);
    let p = rtp(0, 1001, 3160, 0x1234, 1);
    a.send_to(&p, pb).unwrap();
    expect_packet(&b2, pa, &p);
    expect_silence(&b);
    let q = rig.query("ho-1");
    let s = stream(&q, "tt", 0);
    assert_eq!(text(s, &["endpoint", "address"]), "198.51.100.6", "{s:?}");
    assert_eq!(int(s, &["endpoint", "port"]), 2032);
}

/// `asymmetric`: never learn, always send to the SDP address.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn asymmetric_sends_to_sdp_address() {
    require_root();
    let rig = Rig::new("asym", &[]);
    let (pa, pb) = rig.answered_call("asym-1", || vec![("flags", strs(&["asymmetric"]))]);
    let a = rig.socket("198.51.100.1:2010");
    let a_src = rig.socket("198.51.100.1:2050");
    let b = rig.socket("198.51.100.3:2012");
    let b_src = rig.socket("198.51.100.3:2052");
    let p = rtp(0, 1000, 3000, 0x1234, 0);
    a_src.send_to(&p, pb).unwrap();
    expect_packet(&b, pa, &p);
    let p = rtp(0, 2000, 4000, 0x5678, 0);
    b_src.send_to(&p, pa).unwrap();
    expect_packet(&a, pb, &p);
    for i in 0..3u16 {
        let p = rtp(0, 1001 + i, 3160, 0x1234, 1);
        a_src.send_to(&p, pb).unwrap();
        expect_packet(&b, pa, &p);
        let p = rtp(0, 2001 + i, 4160, 0x5678, 1);
        b_src.send_to(&p, pa).unwrap();
        expect_packet(&a, pb, &p);
    }
    for s in [&a_src, &b_src, &a, &b] {
        expect_silence(s);
    }
}

fn tos_of_relayed(a: &UdpSocket, b: &UdpSocket, pa: SocketAddr, pb: SocketAddr) -> (u8, u8) {
    enable_recvtos(a);
    enable_recvtos(b);
    let p = rtp(0, 1000, 3000, 0x1234, 0);
    a.send_to(&p, pb).unwrap();
    let (data, src, tos_b) = recv_with_tos(b).expect("packet at B");
    assert_eq!((data.as_slice(), src), (p.as_slice(), pa));
    let p = rtp(0, 2000, 4000, 0x5678, 0);
    b.send_to(&p, pa).unwrap();
    let (data, src, tos_a) = recv_with_tos(a).expect("packet at A");
    assert_eq!((data.as_slice(), src), (p.as_slice(), pb));
    (tos_b, tos_a)
}

/// `TOS` in the offer marks the call's outgoing packets; without it (and
/// without `--tos`) the TOS byte is left alone (0).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn tos_from_offer() {
    require_root();
    let rig = Rig::new("tos", &[]);
    let (pa, pb) = rig.answered_call("tos-1", || vec![("TOS", Value::Int(184))]);
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    assert_eq!(tos_of_relayed(&a, &b, pa, pb), (184, 184));
    // A re-offer changes the running streams' TOS; a negative one keeps it.
    rig.offer("tos-1", "ft", OFFER, vec![("TOS", Value::Int(96))]);
    assert_eq!(tos_of_relayed(&a, &b, pa, pb), (96, 96));
    rig.offer("tos-1", "ft", OFFER, vec![("TOS", Value::Int(-1))]);
    assert_eq!(tos_of_relayed(&a, &b, pa, pb), (96, 96));

    // A second call without TOS, on other phone ports.
    let port_a = media_ports(&rig.offer("tos-2", "ft", &OFFER.replace("2010", "2110"), vec![]))[0];
    let port_b =
        media_ports(&rig.answer("tos-2", "ft", "tt", &ANSWER.replace("2012", "2112"), vec![]))[0];
    let (pa, pb) = (sa("203.0.113.1", port_a), sa("203.0.113.1", port_b));
    let a = rig.socket("198.51.100.1:2110");
    let b = rig.socket("198.51.100.3:2112");
    assert_eq!(tos_of_relayed(&a, &b, pa, pb), (0, 0));
}

/// `--tos` sets the default for every call.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn tos_from_config() {
    require_root();
    let rig = Rig::new("tosconf", &["--tos", "160"]);
    let (pa, pb) = rig.answered_call("tosc-1", Vec::new);
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    assert_eq!(tos_of_relayed(&a, &b, pa, pb), (160, 160));
}

/// RTCP both ways on RTP port + 1, from RTP port + 1, counted under
/// `totals.RTCP`; RTP and RTCP counters stay apart.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn rtcp_both_ways() {
    require_root();
    let rig = Rig::new("rtcp", &[]);
    let (pa, pb) = rig.answered_call("rtcp-1", Vec::new);
    let a1 = rig.socket("198.51.100.1:2011");
    let b1 = rig.socket("198.51.100.3:2013");
    let (pa1, pb1) = (
        sa("203.0.113.1", pa.port() + 1),
        sa("203.0.113.1", pb.port() + 1),
    );
    for i in 0..3 {
        let sr = rtcp_sr(0x1234 + i);
        a1.send_to(&sr, pb1).unwrap();
        expect_packet(&b1, pa1, &sr);
    }
    let sr = rtcp_sr(0x5678);
    b1.send_to(&sr, pa1).unwrap();
    expect_packet(&a1, pb1, &sr);
    // The relay counts a packet as sent once `sendto` returned, which may
    // be just after the receiver has it: give the counter a moment.
    let mut q = rig.query("rtcp-1");
    for _ in 0..20 {
        if int(stream(&q, "ft", 1), &["stats_out", "packets"]) == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        q = rig.query("rtcp-1");
    }
    assert_eq!(get_int(&q, &["totals", "RTCP", "packets"]), 4, "{q:?}");
    assert_eq!(get_int(&q, &["totals", "RTCP", "bytes"]), 4 * 28);
    assert_eq!(get_int(&q, &["totals", "RTP", "packets"]), 0);
    let s = stream(&q, "ft", 1);
    assert_eq!(int(s, &["stats", "packets"]), 3, "{s:?}");
    assert_eq!(int(s, &["stats_out", "packets"]), 1, "{s:?}");
}

/// `query` in master's layout: the call's `SSRC` table, each media's
/// ingress and egress SSRCs and received codec, each stream's first SSRC,
/// the parties' subscriptions/subscribers and (empty) VSC list.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn query_reports_ssrcs_and_subscriptions() {
    require_root();
    let rig = Rig::new("qssrc", &[]);
    let (pa, pb) = rig.answered_call("qs-1", Vec::new);
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    for i in 0..3u16 {
        let p = rtp(8, 100 + i, 160 * u32::from(i), 0x1234, 1);
        a.send_to(&p, pb).unwrap();
        expect_packet(&b, pa, &p);
    }
    let q = rig.query("qs-1");
    assert!(
        get_int(&q, &["created_ts"]) > 1_000_000_000_000_000,
        "{q:?}"
    );
    assert_eq!(get_int(&q, &["SSRC", "4660", "packets"]), 3, "{q:?}");
    assert_eq!(get_int(&q, &["SSRC", "4660", "last RTP seq"]), 102, "{q:?}");
    assert_eq!(
        get_int(&q, &["SSRC", "4660", "last RTP timestamp"]),
        320,
        "{q:?}"
    );
    let media = |tag: &str| {
        let Some(Value::List(m)) = dig(&q, &["tags", tag, "medias"]) else {
            panic!("{q:?}")
        };
        m[0].clone()
    };
    let ft = media("ft");
    assert_eq!(text(&ft, &["codec"]), "PCMA/8000", "{ft:?}");
    let Some(Value::List(ingress)) = ft.get("ingress SSRCs") else {
        panic!("{ft:?}")
    };
    assert_eq!(int(&ingress[0], &["SSRC"]), 0x1234);
    assert_eq!(int(&ingress[0], &["bytes"]), 3 * 172);
    assert_eq!(int(stream(&q, "ft", 0), &["SSRC"]), 0x1234);
    let tt = media("tt");
    assert_eq!(tt.get("ingress SSRCs"), Some(&Value::List(Vec::new())));
    let Some(Value::List(egress)) = tt.get("egress SSRCs") else {
        panic!("{tt:?}")
    };
    assert_eq!(int(&egress[0], &["SSRC"]), 0x1234);
    for (tag, other) in [("ft", "tt"), ("tt", "ft")] {
        for key in ["subscriptions", "subscribers"] {
            let Some(Value::List(l)) = dig(&q, &["tags", tag, key]) else {
                panic!("{q:?}")
            };
            assert_eq!(l.len(), 1, "{tag} {key}");
            assert_eq!(text(&l[0], &["tag"]), other);
            assert_eq!(text(&l[0], &["type"]), "offer/answer");
        }
        assert_eq!(
            dig(&q, &["tags", tag, "VSC"]),
            Some(&Value::List(Vec::new()))
        );
    }
}

/// RTCP a party sends to its RTP port without announcing rtcp-mux goes to
/// the other party's RTCP port (upstream demultiplexes it); RTP on the same
/// port still goes to the RTP port.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn unannounced_rtcp_on_the_rtp_port_goes_to_the_rtcp_port() {
    require_root();
    let rig = Rig::new("rtcpdemux", &[]);
    let (pa, pb) = rig.answered_call("rd-1", Vec::new);
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    let b1 = rig.socket("198.51.100.3:2013");
    let sr = rtcp_sr(0x1234);
    a.send_to(&sr, pb).unwrap();
    expect_packet(&b1, sa("203.0.113.1", pa.port() + 1), &sr);
    expect_silence(&b);
    let p = rtp(0, 1, 160, 0x1234, 1);
    a.send_to(&p, pb).unwrap();
    expect_packet(&b, pa, &p);
}

/// `NAT-wait`: nothing goes to a party before it has sent something (its
/// NAT binding is open only then); afterwards media flows both ways.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn nat_wait_holds_media_until_the_party_has_sent() {
    require_root();
    let rig = Rig::new("natwait", &[]);
    let (pa, pb) = rig.answered_call("nw-1", || vec![("flags", strs(&["NAT-wait"]))]);
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    // b has not sent yet: a's packet goes nowhere.
    a.send_to(&rtp(0, 1, 160, 0x1234, 1), pb).unwrap();
    expect_silence(&b);
    // b sends (a has sent, so this one reaches a), then a reaches b.
    let p = rtp(0, 1, 160, 0x5678, 2);
    b.send_to(&p, pa).unwrap();
    expect_packet(&a, pb, &p);
    let p = rtp(0, 2, 320, 0x1234, 3);
    a.send_to(&p, pb).unwrap();
    expect_packet(&b, pa, &p);
}

/// `transport-protocol: RTP/AVP` towards a party that announced no
/// `a=rtcp-fb`: RTCP feedback (RTPFB, PSFB) from the AVPF side is removed
/// from compound RTCP, the rest passes; the other direction is untouched;
/// an answerer that announces `a=rtcp-fb` gets it all (upstream's AVPF to
/// AVP filter).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn rtcp_feedback_is_filtered_towards_avp() {
    require_root();
    let rig = Rig::new("rtcpfb", &[]);
    let offer = "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nt=0 0\nm=video 2000 RTP/AVPF 96\n\
                 c=IN IP4 198.51.100.1\na=rtpmap:96 VP8/90000\na=rtcp-fb:96 nack pli\na=sendrecv";
    let answer = |fb: &str| {
        format!(
            "v=0\no=- 2 1 IN IP4 198.51.100.3\ns=-\nt=0 0\nm=video 3000 RTP/AVP 96\n\
             c=IN IP4 198.51.100.3\na=rtpmap:96 VP8/90000\n{fb}a=sendrecv"
        )
    };
    let rr: Vec<u8> = [&[0x81u8, 201, 0, 7][..], &[0; 28]].concat();
    let pli = [0x81u8, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
    let compound = [&rr[..], &pli].concat();
    let a = rig.socket("198.51.100.1:2001");
    let b = rig.socket("198.51.100.3:3001");
    for (i, (fb, stripped)) in [("", true), ("a=rtcp-fb:96 nack pli\n", false)]
        .into_iter()
        .enumerate()
    {
        let id = format!("fb{i}");
        let to_b = rig.offer(
            &id,
            "a",
            offer,
            vec![("transport-protocol", Value::str("RTP/AVP"))],
        );
        assert!(
            to_b.contains("m=video") && to_b.contains(" RTP/AVP 96"),
            "{to_b}"
        );
        let to_a = rig.answer(&id, "a", "b", &answer(fb), vec![]);
        let pa1 = sa("203.0.113.1", media_ports(&to_a)[0] + 1);
        let pb1 = sa("203.0.113.1", media_ports(&to_b)[0] + 1);
        a.send_to(&compound, pa1).unwrap();
        expect_packet(&b, pb1, if stripped { &rr } else { &compound });
        // A datagram of feedback only is dropped altogether.
        a.send_to(&pli, pa1).unwrap();
        if stripped {
            expect_silence(&b);
        } else {
            expect_packet(&b, pb1, &pli);
        }
        b.send_to(&compound, pb1).unwrap();
        expect_packet(&a, pa1, &compound);
        rig.delete_now(&id);
    }
}

/// Upstream's loop detection: a party announcing one of our own endpoints
/// (our address, a port of our range) gets its streams checked for runs of
/// duplicates; the 31st identical packet within a second is dropped, a
/// different one passes. `query` shows the media's "loop check" flag.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn duplicate_runs_from_our_own_endpoint_are_dropped() {
    require_root();
    let rig = Rig::new("loopchk", &[]);
    let offer = OFFER
        .replace("198.51.100.1 ", "203.0.113.1 ")
        .replace("c=IN IP4 198.51.100.1", "c=IN IP4 203.0.113.1")
        .replace("m=audio 2010", "m=audio 39990");
    // As `setup`: pa is where B sends (offered to B), pb where A sends.
    let pa = media_ports(&rig.offer("lc-1", "ft", &offer, vec![]))[0];
    let pb = media_ports(&rig.answer("lc-1", "ft", "tt", ANSWER, vec![]))[0];
    let (pa, pb) = (sa("203.0.113.1", pa), sa("203.0.113.1", pb));
    let a = rig.socket("203.0.113.1:39990");
    let b = rig.socket("198.51.100.3:2012");
    let p = rtp(0, 7, 160, 0x1234, 9);
    for _ in 0..31 {
        a.send_to(&p, pb).unwrap();
        expect_packet(&b, pa, &p);
    }
    a.send_to(&p, pb).unwrap();
    expect_silence(&b);
    let q = rtp(0, 8, 320, 0x1234, 9);
    a.send_to(&q, pb).unwrap();
    expect_packet(&b, pa, &q);
    let query = rig.query("lc-1");
    let Some(Value::List(m)) = dig(&query, &["tags", "ft", "medias"]) else {
        panic!("{query:?}")
    };
    assert!(flags(&m[0]).contains(&"loop check".to_owned()), "{query:?}");
}

/// `extmap: mask` (master): the masked extension leaves the offer but the
/// answer to the offerer lists it again (it stays accepted from it), and it
/// is removed from the RTP header extensions forwarded to the answerer;
/// other extensions pass.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn masked_header_extensions_leave_sdp_and_rtp() {
    require_root();
    let rig = Rig::new("extmask", &[]);
    let offer = "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nt=0 0\nm=video 2000 RTP/AVP 96\n\
                 c=IN IP4 198.51.100.1\na=rtpmap:96 VP8/90000\n\
                 a=extmap:1 urn:ietf:params:rtp-hdrext:toffset\na=extmap:2 urn:3gpp:video-orientation\na=sendrecv";
    let mask = || {
        let mut d = Dict::new();
        d.insert(b"mask".to_vec(), strs(&["urn:3gpp:video-orientation"]));
        vec![("extmap", Value::Dict(d))]
    };
    let to_b = rig.offer("em", "a", offer, mask());
    assert!(
        to_b.contains("a=extmap:1 urn:ietf:params:rtp-hdrext:toffset"),
        "{to_b}"
    );
    assert!(!to_b.contains("video-orientation"), "{to_b}");
    let answer = "v=0\no=- 2 1 IN IP4 198.51.100.3\ns=-\nt=0 0\nm=video 3000 RTP/AVP 96\n\
                  c=IN IP4 198.51.100.3\na=rtpmap:96 VP8/90000\n\
                  a=extmap:1 urn:ietf:params:rtp-hdrext:toffset\na=sendrecv";
    let to_a = rig.answer("em", "a", "b", answer, vec![]);
    assert!(
        to_a.contains("a=extmap:2 urn:3gpp:video-orientation"),
        "{to_a}"
    );
    let a = rig.socket("198.51.100.1:2000");
    let b = rig.socket("198.51.100.3:3000");
    let (pa, pb) = (
        sa("203.0.113.1", media_ports(&to_a)[0]),
        sa("203.0.113.1", media_ports(&to_b)[0]),
    );
    let head = [0x90u8, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
    let sent = [
        &head[..],
        &[0xbe, 0xde, 0, 2, 0x12, 1, 2, 3, 0x20, 0xcc, 0, 0],
        &[7; 20],
    ]
    .concat();
    let want = [&head[..], &[0xbe, 0xde, 0, 1, 0x12, 1, 2, 3], &[7; 20]].concat();
    a.send_to(&sent, pa).unwrap();
    expect_packet(&b, pb, &want);
    // The other direction is untouched.
    b.send_to(&sent, pb).unwrap();
    expect_packet(&a, pa, &sent);
}
