//! The call model without root or a daemon: offer/answer, re-offers and port
//! reuse, direction, rtcp-mux decisions, limits, delete and expiry, on real
//! sockets from a loopback port pool.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::*;
use crate::interfaces::{parse_interface, Interfaces};
use crate::relay::learning::EndpointLearning;
use crate::relay::poller::Poller;
use crate::sdp;

/// One relay thread for every test of this binary.
fn poller() -> Arc<Poller> {
    static POLLER: OnceLock<Arc<Poller>> = OnceLock::new();
    POLLER
        .get_or_init(|| Arc::new(Poller::start(1, Duration::from_millis(1)).expect("relay thread")))
        .clone()
}

/// A disjoint port range per registry, so tests running in parallel never
/// share ports (a port in use elsewhere is skipped anyway).
fn port_range(pairs: u16) -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 43000 + (std::process::id() % 50) as u16 * 200;
    let start = base + NEXT.fetch_add(2 * pairs, Ordering::Relaxed);
    (start, start + 2 * pairs - 1)
}

fn settings() -> Settings {
    Settings::default()
}

/// A registry on 127.0.0.1 (interface `default`) and ::1 (`v6`) with
/// `pairs` port pairs per address.
fn registry_with(settings: Settings, pairs: u16) -> Calls {
    let mut specs = parse_interface("127.0.0.1").unwrap();
    specs.extend(parse_interface("v6/::1").unwrap());
    let (min, max) = port_range(pairs);
    let ifs = Interfaces::new(&specs, min, max).unwrap();
    Calls::new(ifs, settings, None, poller(), dtls_identity())
}

/// One certificate for all tests (generating keys costs).
pub(crate) fn dtls_identity() -> Arc<crate::crypto::dtls::Identity> {
    use crate::crypto::dtls::{Identity, KeyType, DEFAULT_CIPHERS, DEFAULT_MTU};
    static ID: std::sync::OnceLock<Arc<Identity>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        Arc::new(Identity::new(KeyType::Ec, DEFAULT_MTU, DEFAULT_CIPHERS).expect("DTLS identity"))
    })
    .clone()
}

fn registry() -> Calls {
    registry_with(settings(), 8)
}

fn options(side: Side, call: &str, from: &str, to: Option<&str>) -> OfferAnswer {
    OfferAnswer::new(side, call, from, to, EndpointLearning::Heuristic)
}

fn offer(call: &str) -> OfferAnswer {
    options(Side::Offer, call, "caller", None)
}

fn answer(call: &str) -> OfferAnswer {
    options(Side::Answer, call, "caller", Some("callee"))
}

/// An audio-only SDP from `addr`:`port` with extra media attributes.
fn sdp_from(addr: &str, port: u16, attrs: &[&str]) -> sdp::Session {
    let v = if addr.contains(':') { "IP6" } else { "IP4" };
    let mut s = format!(
        "v=0\r\no=- 1 1 IN {v} {addr}\r\ns=-\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\nc=IN {v} {addr}\r\n"
    );
    for a in attrs {
        s.push_str(&format!("a={a}\r\n"));
    }
    sdp::parse(s.as_bytes()).unwrap()
}

/// Runs `oa` and returns the SDP written, parsed.
fn run(calls: &Calls, oa: &OfferAnswer, sdp: &sdp::Session) -> sdp::Session {
    let out = calls.offer_answer(oa, sdp).unwrap();
    sdp::parse(&out).unwrap()
}

fn media_endpoint(s: &sdp::Session) -> SocketAddr {
    SocketAddr::new(s.media[0].address(s).unwrap(), s.media[0].port)
}

fn has(s: &sdp::Session, attr: &str) -> bool {
    s.media[0].has_attr(attr)
}

#[test]
fn offer_and_answer_rewrite_to_local_ports() {
    let calls = registry();
    let to_callee = run(&calls, &offer("c1"), &sdp_from("192.0.2.10", 5000, &[]));
    let ep = media_endpoint(&to_callee);
    assert_eq!(ep.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(ep.port() % 2, 0, "RTP on an even port");
    assert_eq!(to_callee.media[0].rtcp_attr(), Some((ep.port() + 1, None)));

    let to_caller = run(&calls, &answer("c1"), &sdp_from("192.0.2.20", 6000, &[]));
    let back = media_endpoint(&to_caller);
    assert_ne!(back, ep, "each side gets its own ports");
    calls.with_call("c1", |call| {
        assert!(call.answered);
        assert_eq!(call.parties.len(), 2);
        let (a, b) = (&call.parties[0], &call.parties[1]);
        assert_eq!(
            (a.tag.as_deref(), b.tag.as_deref()),
            (Some("caller"), Some("callee"))
        );
        assert_eq!((a.peer, b.peer), (Some(1), Some(0)));
        // The caller's sockets are the ones written into the SDP sent to it.
        let caller_rtp = a.medias[0].sockets.as_ref().unwrap().rtp.local;
        assert_eq!(caller_rtp, back);
        assert_eq!(
            a.medias[0].rtp_endpoint,
            Some("192.0.2.10:5000".parse().unwrap())
        );
    });
}

#[test]
fn repeated_offer_keeps_ports_and_a_new_endpoint_gets_new_ones() {
    let calls = registry();
    let first = media_endpoint(&run(
        &calls,
        &offer("c"),
        &sdp_from("192.0.2.10", 5000, &[]),
    ));
    let again = media_endpoint(&run(
        &calls,
        &offer("c"),
        &sdp_from("192.0.2.10", 5000, &[]),
    ));
    assert_eq!(first, again, "a retransmitted offer gets the same ports");
    let moved = media_endpoint(&run(
        &calls,
        &offer("c"),
        &sdp_from("192.0.2.10", 5002, &[]),
    ));
    assert_ne!(
        first, moved,
        "a new caller endpoint gives the callee new ports"
    );
    let back = media_endpoint(&run(
        &calls,
        &offer("c"),
        &sdp_from("192.0.2.10", 5000, &[]),
    ));
    assert_eq!(
        back, first,
        "returning to an earlier endpoint brings its ports back"
    );
    calls.with_call("c", |call| {
        assert_eq!(call.parties.len(), 2, "re-offers add no parties");
    });
}

#[test]
fn directions_and_hold() {
    let calls = registry();
    let out = run(
        &calls,
        &offer("d"),
        &sdp_from("192.0.2.10", 5000, &["sendonly"]),
    );
    assert_eq!(out.media[0].direction(&out), sdp::Direction::SendOnly);

    // Hold with the zero address: kept, and sendrecv becomes sendonly…
    let hold = run(&calls, &offer("d"), &sdp_from("0.0.0.0", 5000, &[]));
    assert!(media_endpoint(&hold).ip().is_unspecified());
    assert_eq!(hold.media[0].direction(&hold), sdp::Direction::SendOnly);
    // …unless `original sendrecv`; with `replace: zero-address` our address
    // is written instead.
    let mut o = offer("d");
    o.original_sendrecv = true;
    let hold = run(&calls, &o, &sdp_from("0.0.0.0", 5000, &[]));
    assert_eq!(hold.media[0].direction(&hold), sdp::Direction::SendRecv);
    o.replace.zero_address = true;
    let hold = run(&calls, &o, &sdp_from("0.0.0.0", 5000, &[]));
    assert!(!media_endpoint(&hold).ip().is_unspecified());
    calls.with_call("d", |call| assert!(call.parties[0].medias[0].zero_address));
}

#[test]
fn rtcp_mux_offered_and_accepted() {
    let calls = registry();
    let to_callee = run(
        &calls,
        &offer("m"),
        &sdp_from("192.0.2.10", 5000, &["rtcp-mux"]),
    );
    assert!(has(&to_callee, "rtcp-mux"), "mux offered onward");
    // The answerer accepts: both sides mux, and the caller is told so.
    let to_caller = run(
        &calls,
        &answer("m"),
        &sdp_from("192.0.2.20", 6000, &["rtcp-mux"]),
    );
    assert!(has(&to_caller, "rtcp-mux"));
    let ep = media_endpoint(&to_caller);
    assert_eq!(to_caller.media[0].rtcp_attr(), Some((ep.port(), None)));
    calls.with_call("m", |call| {
        assert!(call.parties[0].medias[0].mux && call.parties[1].medias[0].mux);
    });
}

#[test]
fn rtcp_mux_declined_by_the_answerer() {
    let calls = registry();
    run(
        &calls,
        &offer("n"),
        &sdp_from("192.0.2.10", 5000, &["rtcp-mux"]),
    );
    let to_caller = run(&calls, &answer("n"), &sdp_from("192.0.2.20", 6000, &[]));
    assert!(!has(&to_caller, "rtcp-mux"));
    calls.with_call("n", |call| {
        assert!(!call.parties[0].medias[0].mux && !call.parties[1].medias[0].mux);
    });
}

#[test]
fn ptime_is_one_per_party_and_sticks_as_upstream() {
    let calls = registry();
    let ptime = |s: &sdp::Session| s.media[0].attr("ptime").and_then(|a| a.value.clone());
    let (a, b) = (
        sdp_from("192.0.2.10", 5000, &[]),
        sdp_from("192.0.2.20", 6000, &[]),
    );
    let b30 = sdp_from("192.0.2.20", 6000, &["ptime:30"]);
    let from_b = options(Side::Offer, "pt", "callee", Some("caller"));
    let a_back = options(Side::Answer, "pt", "callee", Some("caller"));
    assert_eq!(ptime(&run(&calls, &offer("pt"), &a)), None);
    assert_eq!(
        ptime(&run(&calls, &answer("pt"), &b30)).as_deref(),
        Some("30")
    );
    // Neither side says it again: both keep hearing it.
    assert_eq!(ptime(&run(&calls, &from_b, &b)).as_deref(), Some("30"));
    assert_eq!(ptime(&run(&calls, &a_back, &a)).as_deref(), Some("30"));
    // `ptime` fixes it towards the answerer; the offerer keeps its own.
    let mut o = offer("pt");
    o.sdp.ptime = Some(20);
    let a10 = sdp_from("192.0.2.10", 5000, &["ptime:10"]);
    assert_eq!(ptime(&run(&calls, &o, &a10)).as_deref(), Some("20"));
    assert_eq!(
        ptime(&run(&calls, &answer("pt"), &b30)).as_deref(),
        Some("10")
    );
    assert_eq!(
        ptime(&run(&calls, &offer("pt"), &a10)).as_deref(),
        Some("20")
    );
}

#[test]
fn a_party_is_re_offered_its_own_mid() {
    let calls = registry();
    let mid = |s: &sdp::Session| s.media[0].attr("mid").and_then(|a| a.value.clone());
    // The caller's mid goes on to a callee without one.
    let to_b = run(
        &calls,
        &offer("mid"),
        &sdp_from("192.0.2.10", 5000, &["mid:a0"]),
    );
    assert_eq!(mid(&to_b).as_deref(), Some("a0"));
    run(&calls, &answer("mid"), &sdp_from("192.0.2.20", 6000, &[]));
    // The callee re-offers without a mid: the caller gets its own back.
    let from_b = options(Side::Offer, "mid", "callee", Some("caller"));
    let to_a = run(&calls, &from_b, &sdp_from("192.0.2.20", 6000, &[]));
    assert_eq!(mid(&to_a).as_deref(), Some("a0"));
    // With a mid of the callee's own, the caller still gets its own.
    let to_a = run(&calls, &from_b, &sdp_from("192.0.2.20", 6000, &["mid:b9"]));
    assert_eq!(mid(&to_a).as_deref(), Some("a0"));
}

#[test]
fn a_muxing_receiver_is_re_offered_mux_without_a_fallback() {
    let calls = registry();
    // We offer the callee mux, and it takes it.
    let callee_muxes = || {
        let mut o = offer("mx");
        o.rtcp_mux.offer = true;
        run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
        run(
            &calls,
            &answer("mx"),
            &sdp_from("192.0.2.20", 6000, &["rtcp-mux"]),
        );
    };
    callee_muxes();
    // The caller re-offers without mux and without options: the callee
    // keeps muxing, its RTCP on the RTP port (as upstream).
    let to_callee = run(&calls, &offer("mx"), &sdp_from("192.0.2.10", 5000, &[]));
    assert!(has(&to_callee, "rtcp-mux"));
    let port = to_callee.media[0].port;
    assert_eq!(to_callee.media[0].rtcp_attr(), Some((port, None)));
    // Its plain answer without mux then ends it.
    run(&calls, &answer("mx"), &sdp_from("192.0.2.20", 6000, &[]));
    calls.with_call("mx", |call| assert!(!call.parties[1].medias[0].mux));
    // `demux` takes a muxing callee off it: two ports, no a=rtcp-mux.
    callee_muxes();
    let mut o = offer("mx");
    o.rtcp_mux.demux = true;
    let to_callee = run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
    assert!(!has(&to_callee, "rtcp-mux"));
    let port = to_callee.media[0].port;
    assert_eq!(to_callee.media[0].rtcp_attr(), Some((port + 1, None)));
}

#[test]
fn rtcp_mux_require_demux_and_reject() {
    let calls = registry();
    // require: the callee is told to mux and gets a single port.
    let mut o = offer("r");
    o.rtcp_mux.require = true;
    let to_callee = run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
    assert!(has(&to_callee, "rtcp-mux"));
    calls.with_call("r", |call| {
        let callee = call.parties[1].medias[0].sockets.as_ref().unwrap();
        assert!(callee.rtcp.is_none(), "one port for a muxing callee");
        assert!(call.parties[0].medias[0]
            .sockets
            .as_ref()
            .unwrap()
            .rtcp
            .is_some());
    });

    // demux: the caller's mux is accepted here, not offered onward.
    let mut o = offer("x");
    o.rtcp_mux.demux = true;
    let to_callee = run(&calls, &o, &sdp_from("192.0.2.10", 5000, &["rtcp-mux"]));
    assert!(!has(&to_callee, "rtcp-mux"));
    let to_caller = run(&calls, &answer("x"), &sdp_from("192.0.2.20", 6000, &[]));
    assert!(has(&to_caller, "rtcp-mux"), "the caller keeps its mux");
    calls.with_call("x", |call| assert!(call.parties[0].medias[0].mux));

    // reject: the caller's mux is ignored.
    let mut o = offer("y");
    o.rtcp_mux.reject = true;
    let to_callee = run(&calls, &o, &sdp_from("192.0.2.10", 5000, &["rtcp-mux"]));
    assert!(!has(&to_callee, "rtcp-mux"));
}

#[test]
fn address_family_bridging() {
    let calls = registry();
    let mut o = offer("f");
    o.ipv6 = Some(true);
    o.to_interface = Some("v6".into());
    let to_callee = run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
    assert_eq!(
        media_endpoint(&to_callee).ip(),
        "::1".parse::<IpAddr>().unwrap()
    );
    let mut a = answer("f");
    a.from_interface = Some("v6".into());
    let to_caller = run(&calls, &a, &sdp_from("2001:db8::20", 6000, &[]));
    assert_eq!(
        media_endpoint(&to_caller).ip(),
        "127.0.0.1".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn errors_leave_nothing_behind() {
    let calls = registry();
    let s = sdp_from("192.0.2.10", 5000, &[]);
    assert_eq!(
        calls.offer_answer(&answer("nope"), &s),
        Err(Error::UnknownCall)
    );
    let own_peer = options(Side::Offer, "same", "t", Some("t"));
    assert_eq!(
        calls.offer_answer(&own_peer, &s),
        Err(Error::InvalidDialogue)
    );
    assert!(calls.is_empty(), "a failed new call is not kept");
    run(&calls, &offer("a"), &s);
    let stranger = options(Side::Answer, "a", "someone", Some("callee"));
    assert_eq!(
        calls.offer_answer(&stranger, &s),
        Err(Error::InvalidDialogue)
    );
}

#[test]
fn session_limit() {
    let mut s = settings();
    s.max_sessions = 1;
    let calls = registry_with(s, 8);
    let sdp = sdp_from("192.0.2.10", 5000, &[]);
    run(&calls, &offer("one"), &sdp);
    assert_eq!(
        calls.offer_answer(&offer("two"), &sdp),
        Err(Error::SessionLimit)
    );
    run(&calls, &offer("one"), &sdp);
    assert_eq!(calls.statistics().rejected, 1);
}

#[test]
fn out_of_ports_frees_the_half_built_call() {
    let calls = registry_with(settings(), 1);
    let sdp = sdp_from("192.0.2.10", 5000, &[]);
    // One port pair per address: the caller's side takes it, the callee's
    // side finds none.
    assert_eq!(
        calls.offer_answer(&offer("p"), &sdp),
        Err(Error::OutOfPorts)
    );
    assert!(calls.is_empty());
    let pool = &calls.interfaces.default_interface().addrs[0].pool;
    assert_eq!(pool.available(), pool.total(), "every port is back");
}

#[test]
fn delete_now_later_and_by_tags() {
    let calls = registry();
    let sdp = sdp_from("192.0.2.10", 5000, &[]);
    run(&calls, &offer("del"), &sdp);
    run(&calls, &answer("del"), &sdp_from("192.0.2.20", 6000, &[]));
    let d = |from: Option<&'static str>, to, delay_secs| Delete {
        call_id: "del",
        from_tag: from,
        to_tag: to,
        via_branch: None,
        delay_secs,
    };
    let tags = |call: &Call| call.parties.len();
    assert!(matches!(
        calls.delete(&d(Some("stranger"), None, 0), tags),
        Deleted::NotFound
    ));
    assert!(matches!(
        calls.delete(&d(Some("caller"), Some("other"), 0), tags),
        Deleted::NotFound
    ));
    assert!(matches!(
        calls.delete(&d(Some("caller"), Some("callee"), 5), tags),
        Deleted::Later { report: 2 }
    ));
    assert_eq!(calls.len(), 1, "still there during the delay");
    match calls.delete(&d(None, None, 0), tags) {
        Deleted::Now { report: 2, call } => drop(call),
        _ => panic!("deleted now"),
    }
    assert!(calls.is_empty());
    assert_eq!(calls.statistics().regular, 1);
}

/// Forks (upstream's via-branch model, checked side by side with 10.5): each
/// branch of an offer gets a callee party with its own ports; an answer
/// picks its branch; deleting one callee leaves the caller talking to the
/// other, and deleting the last one ends the call.
#[test]
fn forked_offers_and_branch_deletes() {
    let mut s = settings();
    s.offer_timeout = 3600;
    let calls = registry_with(s, 16);
    let pool = calls.interfaces.get_or_default(None).addrs[0].pool.clone();
    let branch = |side: Side, to: Option<&str>, v: &str| OfferAnswer {
        via_branch: Some(v.to_owned()),
        ..options(side, "fork", "caller", to)
    };
    let caller = sdp_from("192.0.2.10", 5000, &[]);
    let to_b1 = run(&calls, &branch(Side::Offer, None, "v1"), &caller);
    let to_b2 = run(&calls, &branch(Side::Offer, None, "v2"), &caller);
    assert_ne!(
        media_endpoint(&to_b1),
        media_endpoint(&to_b2),
        "each fork has its own ports"
    );
    // A retransmission of a branch's offer keeps that branch's ports.
    assert_eq!(
        media_endpoint(&run(&calls, &branch(Side::Offer, None, "v1"), &caller)),
        media_endpoint(&to_b1)
    );
    run(
        &calls,
        &branch(Side::Answer, Some("b1"), "v1"),
        &sdp_from("192.0.2.21", 6000, &[]),
    );
    run(
        &calls,
        &branch(Side::Answer, Some("b2"), "v2"),
        &sdp_from("192.0.2.22", 6002, &[]),
    );
    let tags = |call: &Call| {
        call.parties
            .iter()
            .map(|p| p.tag.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        calls.with_call("fork", tags).unwrap(),
        ["caller", "b1", "b2"]
    );
    let used = pool.total() - pool.available();
    let d = |to: Option<&'static str>, v: Option<&'static str>, delay_secs| Delete {
        call_id: "fork",
        from_tag: Some("caller"),
        to_tag: to,
        via_branch: v,
        delay_secs,
    };
    // b1 goes, with its ports; the caller stays with b2.
    match calls.delete(&d(Some("b1"), None, 0), tags) {
        Deleted::Branch { report, sockets } => {
            assert_eq!(report, ["caller", "b1", "b2"]);
            assert_eq!(sockets.len(), 1);
            drop(sockets);
        }
        _ => panic!("branch deleted"),
    }
    assert_eq!(calls.with_call("fork", tags).unwrap(), ["caller", "b2"]);
    // b1's pair is free; the caller keeps the pair it had for b1's
    // endpoint among its earlier sockets (as upstream: only b1's own close).
    assert_eq!(
        pool.total() - pool.available(),
        used - 1,
        "b1's pair is free"
    );
    // A delayed delete of the last branch (by via-branch) ends the call
    // when the timer sees it due.
    assert!(matches!(
        calls.delete(&d(None, Some("v2"), 1), tags),
        Deleted::Later { .. }
    ));
    assert_eq!(calls.expire(), 0);
    if let Some(c) = calls.lock().get_mut("fork") {
        c.parties[1].delete_at_ms = Some(0);
    }
    assert_eq!(calls.expire(), 1);
    assert!(calls.is_empty());
    assert_eq!(pool.available(), pool.total());
}

#[test]
fn unanswered_calls_expire_on_the_offer_timeout() {
    let mut s = settings();
    s.offer_timeout = 0;
    let calls = registry_with(s, 8);
    run(&calls, &offer("late"), &sdp_from("192.0.2.10", 5000, &[]));
    assert_eq!(calls.expire(), 1);
    assert!(calls.is_empty());
    let stats = calls.statistics();
    assert_eq!((stats.offer_timeout, stats.managed), (1, 1));
}

/// `reuse codecs`: the codec the answer settled on stays first in a
/// re-offer.
#[test]
fn reuse_codecs_keeps_the_settled_codec_first() {
    let calls = registry();
    let offer_sdp = sdp::parse(b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=t\r\nt=0 0\r\nm=audio 2000 RTP/AVP 96 0 8\r\nc=IN IP4 192.0.2.10\r\na=rtpmap:96 opus/48000/2\r\n").unwrap();
    let ans = sdp::parse(b"v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=t\r\nt=0 0\r\nm=audio 3000 RTP/AVP 8\r\nc=IN IP4 192.0.2.20\r\n").unwrap();
    run(&calls, &offer("ru"), &offer_sdp);
    run(&calls, &answer("ru"), &ans);
    let mut o = offer("ru");
    o.sdp.reuse_codecs = true;
    assert_eq!(
        run(&calls, &o, &offer_sdp).media[0].formats,
        ["8", "96", "0"]
    );
    assert_eq!(
        run(&calls, &offer("ru"), &offer_sdp).media[0].formats,
        ["96", "0", "8"]
    );
}

/// `endpoint-learning` in an answer replaces the offer's mode; without it
/// the offer's stays.
#[test]
fn an_answers_endpoint_learning_replaces_the_offers() {
    use crate::relay::learning::EndpointLearning;
    let calls = registry();
    let sdp = sdp_from("192.0.2.10", 5000, &[]);
    let mut o = offer("el");
    o.policy.mode = EndpointLearning::Delayed;
    run(&calls, &o, &sdp);
    run(&calls, &answer("el"), &sdp_from("192.0.2.20", 6000, &[]));
    let mode = || {
        calls
            .with_call("el", |c| c.policy.map(|p| p.mode))
            .flatten()
    };
    assert_eq!(mode(), Some(EndpointLearning::Delayed));
    let mut a = answer("el");
    a.policy.mode = EndpointLearning::Immediate;
    a.learning_given = true;
    run(&calls, &a, &sdp_from("192.0.2.20", 6000, &[]));
    assert_eq!(mode(), Some(EndpointLearning::Immediate));
}

/// An SDP with `protocol` and `a=crypto` lines.
fn srtp_sdp(addr: &str, port: u16, protocol: &str, crypto: &[&str]) -> sdp::Session {
    let mut s = format!(
        "v=0\r\no=- 1 1 IN IP4 {addr}\r\ns=-\r\nt=0 0\r\nm=audio {port} {protocol} 0\r\nc=IN IP4 {addr}\r\n"
    );
    for c in crypto {
        s.push_str(&format!("a=crypto:{c}\r\n"));
    }
    sdp::parse(s.as_bytes()).unwrap()
}

fn crypto_values(s: &sdp::Session) -> Vec<String> {
    s.media[0]
        .attributes
        .iter()
        .filter(|a| a.name == "crypto")
        .filter_map(|a| a.value.clone())
        .collect()
}

/// The context the RTP socket of party `p` protects with (its address).
fn encrypt_context(calls: &Calls, id: &str, p: usize) -> Option<usize> {
    calls
        .with_call(id, |c| {
            let st = c.parties[p].medias[0].sockets.as_ref().unwrap().rtp.state();
            st.transform
                .encrypt
                .as_ref()
                .map(|a| Arc::as_ptr(a) as usize)
        })
        .unwrap()
}

/// (decrypt, encrypt) of the RTP socket of party `p`.
fn transform(calls: &Calls, id: &str, p: usize) -> (bool, bool) {
    calls
        .with_call(id, |c| {
            let st = c.parties[p].medias[0].sockets.as_ref().unwrap().rtp.state();
            (
                st.transform.decrypt.is_some(),
                st.transform.encrypt.is_some(),
            )
        })
        .unwrap()
}

const KEY1: &str = "AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
const KEY2: &str = "AES_CM_128_HMAC_SHA1_80 inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";

#[test]
fn re_offers_keep_each_sides_protocol_as_upstream() {
    let calls = registry();
    let mut o = offer("keep-1");
    o.sdp.transport = Some("RTP/SAVP");
    run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
    let b = srtp_sdp("192.0.2.20", 6000, "RTP/SAVP", &[&format!("1 {KEY2}")]);
    run(&calls, &answer("keep-1"), &b);
    // A re-INVITE from the SRTP side, no options: the plain side stays
    // plain, and its answer goes back as SRTP.
    let from_b = options(Side::Offer, "keep-1", "callee", Some("caller"));
    let to_a = run(&calls, &from_b, &b);
    assert_eq!(to_a.media[0].protocol, "RTP/AVP");
    assert!(crypto_values(&to_a).is_empty());
    let a_back = options(Side::Answer, "keep-1", "callee", Some("caller"));
    let to_b = run(&calls, &a_back, &sdp_from("192.0.2.10", 5000, &[]));
    assert_eq!(to_b.media[0].protocol, "RTP/SAVP");
    assert_eq!(crypto_values(&to_b).len(), 1);
    // A re-INVITE from the plain side, no options: still SRTP towards B,
    // our key in force first.
    let to_b = run(&calls, &offer("keep-1"), &sdp_from("192.0.2.10", 5000, &[]));
    assert_eq!(to_b.media[0].protocol, "RTP/SAVP");
    assert_eq!(crypto_values(&to_b).len(), 12);
    // A sender that changes its own protocol: the receiver follows it
    // (guards against keeping the receiver's protocol for good).
    let savp_a = srtp_sdp("192.0.2.10", 5000, "RTP/SAVP", &[&format!("1 {KEY1}")]);
    let to_b = run(&calls, &offer("keep-1"), &savp_a);
    assert_eq!(to_b.media[0].protocol, "RTP/SAVP");
    let to_b = run(&calls, &offer("keep-1"), &sdp_from("192.0.2.10", 5000, &[]));
    assert_eq!(to_b.media[0].protocol, "RTP/AVP");
}

#[test]
fn a_receiver_keyed_by_sdes_is_re_offered_sdes_alone() {
    let calls = registry();
    let mut o = offer("sdo");
    o.sdp.transport = Some("RTP/SAVP");
    let a = sdp_from("192.0.2.10", 5000, &[]);
    // Neither chosen yet: our DTLS beside our SDES lines.
    assert!(run(&calls, &o, &a).media[0].has_attr("fingerprint"));
    let b = srtp_sdp("192.0.2.20", 6000, "RTP/SAVP", &[&format!("7 {KEY2}")]);
    run(&calls, &answer("sdo"), &b);
    // It answered with SDES: a re-offer carries SDES only (upstream).
    let again = run(&calls, &offer("sdo"), &a);
    assert!(!again.media[0].has_attr("fingerprint"));
    assert!(!again.media[0].has_attr("setup"));
    assert_eq!(crypto_values(&again).len(), 12);
}

#[test]
fn a_session_level_fingerprint_is_not_remembered_for_a_plain_receiver() {
    let calls = registry();
    // A plain phone offers to a browser (WebRTC), which answers with its
    // fingerprint at session level.
    let mut o = offer("slfp");
    o.sdp.transport = Some("UDP/TLS/RTP/SAVPF");
    o.webrtc.ice = offer_answer::IceMode::Force;
    let a = sdp_from("192.0.2.10", 5000, &[]);
    run(&calls, &o, &a);
    let fp = dtls_lines("active");
    let browser = format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nt=0 0\r\na={}\r\n\
m=audio 6000 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 192.0.2.20\r\na={}\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\n",
        fp[1], fp[0]
    );
    let mut answer_o = answer("slfp");
    answer_o.sdp.transport = Some("RTP/AVP");
    run(&calls, &answer_o, &sdp::parse(browser.as_bytes()).unwrap());
    // The phone re-offers, no options: the browser keeps UDP/TLS.
    let to_b = run(&calls, &offer("slfp"), &a);
    assert_eq!(to_b.media[0].protocol, "UDP/TLS/RTP/SAVPF");
}

#[test]
fn osrtp_kept_ignores_an_answer_with_lines_never_offered() {
    let calls = registry();
    let caller = srtp_sdp("192.0.2.10", 5000, "RTP/AVP", &[&format!("1 {KEY1}")]);
    run(&calls, &offer("osx"), &caller);
    let mut a = answer("osx");
    a.osrtp.accept = true;
    let ours = crypto_values(&run(&calls, &a, &sdp_from("192.0.2.20", 6000, &[])));
    // The caller re-offers OSRTP: the callee gets no lines, and answers
    // with one of its own anyway: ignored, the caller keeps our key.
    run(&calls, &offer("osx"), &caller);
    let odd = srtp_sdp("192.0.2.20", 6000, "RTP/AVP", &[&format!("1 {KEY2}")]);
    let to_a = run(&calls, &answer("osx"), &odd);
    assert_eq!(crypto_values(&to_a), ours);
    assert_eq!(transform(&calls, "osx", 0), (true, false));
}

#[test]
fn sdes_between_plain_and_srtp() {
    let calls = registry();
    let mut o = offer("sd1");
    o.sdp.transport = Some("RTP/SAVP");
    let to_callee = run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
    assert_eq!(to_callee.media[0].protocol, "RTP/SAVP");
    let lines = crypto_values(&to_callee);
    assert_eq!(lines.len(), 12);
    assert!(lines[6].starts_with("7 AES_CM_128_HMAC_SHA1_80 inline:"));
    // Before the answer: our first key protects towards the callee.
    assert_eq!(transform(&calls, "sd1", 0), (false, true));
    let to_caller = run(
        &calls,
        &answer("sd1"),
        &srtp_sdp("192.0.2.20", 6000, "RTP/SAVP", &[&format!("7 {KEY2}")]),
    );
    assert_eq!(to_caller.media[0].protocol, "RTP/AVP");
    assert!(crypto_values(&to_caller).is_empty());
    calls.with_call("sd1", |c| {
        let callee = &c.parties[1].medias[0].negotiated;
        assert_eq!(callee.crypto_out.len(), 12, "what was offered stays");
        assert_eq!(
            callee.key_out.as_ref().map(|k| k.tag),
            Some(7),
            "the line taken"
        );
        assert_eq!(callee.key_in.as_ref().map(|k| k.tag), Some(7));
        assert!(!c.parties[0].medias[0].negotiated.srtp);
    });
    // The caller's packets are protected, the callee's unprotected.
    assert_eq!(transform(&calls, "sd1", 0), (false, true));
    assert_eq!(transform(&calls, "sd1", 1), (true, false));
}

#[test]
fn sdes_srtp_caller_to_plain_callee_gets_a_key_of_ours() {
    let calls = registry();
    let mut o = offer("sd2");
    o.sdp.transport = Some("RTP/AVP");
    let to_callee = run(
        &calls,
        &o,
        &srtp_sdp(
            "192.0.2.10",
            5000,
            "RTP/SAVP",
            &[&format!("1 {KEY1}"), &format!("2 {KEY2}")],
        ),
    );
    assert_eq!(to_callee.media[0].protocol, "RTP/AVP");
    assert!(crypto_values(&to_callee).is_empty());
    let first = run(&calls, &answer("sd2"), &sdp_from("192.0.2.20", 6000, &[]));
    assert_eq!(first.media[0].protocol, "RTP/SAVP");
    let back = crypto_values(&first);
    assert_eq!(back.len(), 1);
    assert!(back[0].starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"));
    assert!(
        !back[0].contains("WVNfX19"),
        "a key of ours, not the caller's"
    );
    assert_eq!(transform(&calls, "sd2", 0), (true, false));
    assert_eq!(transform(&calls, "sd2", 1), (false, true));
    // A repeated answer keeps our key and the context with its state.
    let before = encrypt_context(&calls, "sd2", 1);
    let again = run(&calls, &answer("sd2"), &sdp_from("192.0.2.20", 6000, &[]));
    assert_eq!(crypto_values(&again), back);
    assert_eq!(encrypt_context(&calls, "sd2", 1), before);
    assert!(before.is_some());
}

/// The answer names a line that was never offered: nothing is relayed to
/// the callee (never plain RTP where SRTP was negotiated).
#[test]
fn sdes_an_answer_naming_an_unknown_line_gets_no_media() {
    let calls = registry();
    let mut o = offer("sd5");
    o.sdp.transport = Some("RTP/SAVP");
    run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
    let bogus = format!("99 {KEY2}");
    run(
        &calls,
        &answer("sd5"),
        &srtp_sdp("192.0.2.20", 6000, "RTP/SAVP", &[&bogus]),
    );
    let dropped = calls
        .with_call("sd5", |c| {
            let s = c.parties[0].medias[0].sockets.as_ref().unwrap();
            let st = s.rtp.state();
            st.transform.drop
        })
        .unwrap();
    assert!(dropped);
}

/// A DTLS-only offer on RTP/SAVPF (a fingerprint, no a=crypto) passes
/// through untouched: no SDES lines are added.
#[test]
fn sdes_leaves_dtls_only_offers_alone() {
    let calls = registry();
    let caller = srtp_sdp("192.0.2.10", 5000, "RTP/SAVPF", &[]);
    let mut caller = caller;
    caller.media[0].attributes.push(sdp::Attribute {
        name: "fingerprint".into(),
        value: Some("sha-256 AB:CD".into()),
    });
    let to_callee = run(&calls, &offer("sd6"), &caller);
    assert!(crypto_values(&to_callee).is_empty());
    assert!(to_callee.media[0].has_attr("fingerprint"));
    assert_eq!(transform(&calls, "sd6", 0), (false, false));
}

#[test]
fn sdes_same_keys_pass_through_and_a_re_offer_keeps_the_accepted_line() {
    let calls = registry();
    let caller = srtp_sdp("192.0.2.10", 5000, "RTP/SAVP", &[&format!("1 {KEY1}")]);
    let to_callee = run(&calls, &offer("sd3"), &caller);
    let offered = crypto_values(&to_callee);
    assert_eq!(offered[0], format!("1 {KEY1}"));
    assert_eq!(offered.len(), 12);
    let callee = srtp_sdp("192.0.2.20", 6000, "RTP/SAVP", &[&format!("1 {KEY2}")]);
    let to_caller = run(&calls, &answer("sd3"), &callee);
    assert_eq!(crypto_values(&to_caller), [format!("1 {KEY2}")]);
    assert_eq!(transform(&calls, "sd3", 0), (false, false));
    assert_eq!(transform(&calls, "sd3", 1), (false, false));
    // The re-offer: the caller's line first, fresh keys for the others,
    // tagged after it; the keys in force stay until the answer.
    let again = crypto_values(&run(&calls, &offer("sd3"), &caller));
    assert_eq!(again[0], format!("1 {KEY1}"));
    assert_eq!(again.len(), 12);
    assert_ne!(again[1], offered[1], "fresh keys for the other suites");
    assert_eq!(transform(&calls, "sd3", 0), (false, false));
    // `recrypt`: authenticated, never protected again under the sender's key.
    let mut r = answer("sd3");
    r.recrypt = true;
    run(&calls, &r, &callee);
    assert_eq!(transform(&calls, "sd3", 0), (true, false));
    assert_eq!(transform(&calls, "sd3", 1), (true, false));
}

#[test]
fn plain_to_plain_passes_osrtp_lines_untouched() {
    let calls = registry();
    let caller = srtp_sdp("192.0.2.10", 5000, "RTP/AVP", &[&format!("1 {KEY1}")]);
    let to_callee = run(&calls, &offer("sd4"), &caller);
    assert_eq!(crypto_values(&to_callee), [format!("1 {KEY1}")]);
    assert_eq!(transform(&calls, "sd4", 0), (false, false));
}

#[test]
fn osrtp_carries_over_re_invites_of_either_side() {
    let calls = registry();
    let caller = srtp_sdp("192.0.2.10", 5000, "RTP/AVP", &[&format!("1 {KEY1}")]);
    let callee = sdp_from("192.0.2.20", 6000, &[]);
    run(&calls, &offer("os-1"), &caller);
    let mut a = answer("os-1");
    a.osrtp.accept = true;
    let to_a = run(&calls, &a, &callee);
    let ours = crypto_values(&to_a);
    assert_eq!(ours.len(), 1);
    // The callee re-offers, no options: the caller is offered OSRTP
    // again, the key in force first; the callee's answer-back is plain.
    let from_b = options(Side::Offer, "os-1", "callee", Some("caller"));
    let to_a = run(&calls, &from_b, &callee);
    assert_eq!(to_a.media[0].protocol, "RTP/AVP");
    let lines = crypto_values(&to_a);
    assert_eq!(lines.len(), 12);
    assert_eq!(lines[0], ours[0]);
    let a_back = options(Side::Answer, "os-1", "callee", Some("caller"));
    let caller_takes = srtp_sdp("192.0.2.10", 5000, "RTP/AVP", &[&ours[0]]);
    let to_b = run(&calls, &a_back, &caller_takes);
    assert!(crypto_values(&to_b).is_empty());
    // The caller's packets are unprotected, the callee's protected.
    assert_eq!(transform(&calls, "os-1", 0), (true, false));
    assert_eq!(transform(&calls, "os-1", 1), (false, true));
    // The caller re-offers OSRTP, no options: its lines stop here, and
    // the plain answer keeps it SRTP under our key.
    let to_b = run(&calls, &offer("os-1"), &caller);
    assert!(crypto_values(&to_b).is_empty());
    let to_a = run(&calls, &answer("os-1"), &callee);
    assert_eq!(crypto_values(&to_a), ours);
    // The caller's packets are unprotected, the callee's protected.
    assert_eq!(transform(&calls, "os-1", 0), (true, false));
    assert_eq!(transform(&calls, "os-1", 1), (false, true));
    // A plain re-offer of the caller: plain from then on.
    run(&calls, &offer("os-1"), &sdp_from("192.0.2.10", 5000, &[]));
    let to_a = run(&calls, &answer("os-1"), &callee);
    assert!(crypto_values(&to_a).is_empty());
    assert_eq!(transform(&calls, "os-1", 0), (false, false));
    assert_eq!(transform(&calls, "os-1", 1), (false, false));
}

/// An SDP from `addr`:`port` with `protocol` and extra media attributes.
fn proto_sdp(addr: &str, port: u16, protocol: &str, attrs: &[String]) -> sdp::Session {
    let mut s = format!(
        "v=0\r\no=- 1 1 IN IP4 {addr}\r\ns=-\r\nt=0 0\r\nm=audio {port} {protocol} 0\r\nc=IN IP4 {addr}\r\n"
    );
    for a in attrs {
        s.push_str(&format!("a={a}\r\n"));
    }
    sdp::parse(s.as_bytes()).unwrap()
}

/// A party's DTLS lines (`a=setup:<setup>` and a fingerprint).
fn dtls_lines(setup: &str) -> Vec<String> {
    let fp = dtls_identity()
        .fingerprint(crate::crypto::dtls::Hash::Sha256)
        .write();
    vec![format!("setup:{setup}"), format!("fingerprint:{fp}")]
}

fn dtls_plan(calls: &Calls, id: &str, p: usize) -> bool {
    calls
        .with_call(id, |c| c.parties[p].medias[0].negotiated.dtls.is_some())
        .unwrap()
}

/// Our offer to an `RTP/SAVP` callee carries our DTLS beside SDES; its
/// DTLS answer keys its leg, also when the same answer comes twice (a 183
/// and its 200); a re-offer with `DTLS=off` keeps DTLS until answered.
#[test]
fn savp_callee_keyed_by_dtls_across_answers_and_reoffers() {
    let calls = registry();
    let mut o = offer("sv1");
    o.sdp.transport = Some("RTP/SAVP");
    let to_callee = run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
    assert!(!crypto_values(&to_callee).is_empty());
    assert_eq!(
        to_callee.media[0]
            .attr("setup")
            .and_then(|a| a.value.as_deref()),
        Some("actpass")
    );
    assert!(has(&to_callee, "fingerprint"));
    assert!(
        !has(&to_callee, "ice-ufrag"),
        "no ICE forced on a SIP party"
    );
    let callee_answer = proto_sdp("192.0.2.20", 6000, "RTP/SAVP", &dtls_lines("active"));
    for _ in 0..2 {
        let to_caller = run(&calls, &answer("sv1"), &callee_answer);
        assert!(!has(&to_caller, "fingerprint") && crypto_values(&to_caller).is_empty());
        assert!(dtls_plan(&calls, "sv1", 1), "the callee is keyed by DTLS");
    }
    let mut re = offer("sv1");
    re.webrtc.dtls_off = true;
    re.sdp.transport = Some("RTP/SAVP");
    let to_callee = run(&calls, &re, &sdp_from("192.0.2.10", 5000, &[]));
    assert!(!has(&to_callee, "fingerprint"), "DTLS=off: SDES alone");
    assert!(dtls_plan(&calls, "sv1", 1), "kept until it answers");
}

/// `SDES=off` towards an `RTP/SAVP` receiver: our DTLS alone.
#[test]
fn sdes_off_offers_dtls_alone() {
    let calls = registry();
    let mut o = offer("sv2");
    o.sdp.transport = Some("RTP/SAVP");
    o.sdes.off = true;
    let to_callee = run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
    assert!(crypto_values(&to_callee).is_empty());
    assert!(has(&to_callee, "fingerprint") && has(&to_callee, "setup"));
}

/// An `RTP/SAVP` DTLS offer to a `UDP/TLS` receiver: terminated on both
/// sides (each gets our fingerprint), never passed through.
#[test]
fn savp_dtls_offer_to_a_udp_tls_receiver_is_terminated_on_both_sides() {
    let calls = registry();
    let mut o = offer("sv3");
    o.sdp.transport = Some("UDP/TLS/RTP/SAVPF");
    let sbc = proto_sdp("192.0.2.10", 5000, "RTP/SAVP", &dtls_lines("actpass"));
    let to_browser = run(&calls, &o, &sbc);
    assert_eq!(to_browser.media[0].protocol, "UDP/TLS/RTP/SAVPF");
    // Ours, actpass (one certificate in these tests: theirs and ours are
    // the same text, so the roles and plans tell).
    assert_eq!(
        to_browser.media[0]
            .attr("setup")
            .and_then(|a| a.value.as_deref()),
        Some("actpass")
    );
    assert!(has(&to_browser, "fingerprint") && has(&to_browser, "tls-id"));
    assert!(dtls_plan(&calls, "sv3", 0), "the SBC's DTLS ends here");
    assert!(dtls_plan(&calls, "sv3", 1), "the browser's too");
    // The browser answers our fingerprint: both stay terminated, and the
    // SBC hears back our DTLS (we are the client: it offered actpass).
    let browser = proto_sdp(
        "192.0.2.20",
        6000,
        "UDP/TLS/RTP/SAVPF",
        &dtls_lines("passive"),
    );
    let to_sbc = run(&calls, &answer("sv3"), &browser);
    assert_eq!(to_sbc.media[0].protocol, "RTP/SAVP");
    assert_eq!(
        to_sbc.media[0]
            .attr("setup")
            .and_then(|a| a.value.as_deref()),
        Some("active")
    );
    assert!(dtls_plan(&calls, "sv3", 0) && dtls_plan(&calls, "sv3", 1));
}

/// `DTLS=off` in the answer to an `RTP/SAVP` offerer keyed by DTLS: its
/// leg is left without a key (its media dropped), never relayed as plain.
#[test]
fn dtls_off_in_the_answer_never_makes_an_srtp_offerer_plain() {
    let calls = registry();
    let sbc = proto_sdp("192.0.2.10", 5000, "RTP/SAVP", &dtls_lines("actpass"));
    let mut o = offer("sv4");
    o.sdp.transport = Some("RTP/AVP");
    run(&calls, &o, &sbc);
    assert!(dtls_plan(&calls, "sv4", 0));
    let mut a = answer("sv4");
    a.webrtc.dtls_off = true;
    run(&calls, &a, &sdp_from("192.0.2.20", 6000, &[]));
    calls.with_call("sv4", |c| {
        assert!(c.parties[0].medias[0].negotiated.srtp, "still SRTP");
    });
    let st = |calls: &Calls| {
        calls
            .with_call("sv4", |c| {
                c.parties[0].medias[0]
                    .sockets
                    .as_ref()
                    .unwrap()
                    .rtp
                    .state()
                    .transform
                    .drop
            })
            .unwrap()
    };
    assert!(st(&calls), "nothing relayed from or to it");
}

/// A max-bundle offer: audio and video on one transport (`bundle-only`
/// video with port 0, as Firefox writes it).
fn bundled_offer() -> sdp::Session {
    sdp::parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
a=group:BUNDLE a v\r\n\
m=audio 5000 RTP/AVP 0\r\na=mid:a\r\na=rtcp-mux\r\na=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
m=video 0 RTP/AVP 96\r\na=mid:v\r\na=bundle-only\r\na=rtpmap:96 VP8/90000\r\n",
    )
    .expect("valid SDP")
}

fn two_section_answer() -> sdp::Session {
    sdp::parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\nm=video 6002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n",
    )
    .expect("valid SDP")
}

/// A callee's answer accepting our bundle offer: one port, its group,
/// the MID extension under ID 1.
fn bundled_answer() -> sdp::Session {
    sdp::parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.30\r\ns=-\r\nc=IN IP4 192.0.2.30\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
m=audio 7000 RTP/AVP 0\r\na=mid:0\r\na=rtcp-mux\r\na=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
m=video 7000 RTP/AVP 96\r\na=mid:1\r\na=rtcp-mux\r\na=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n",
    )
    .expect("valid SDP")
}

fn group_lines(s: &sdp::Session) -> Vec<String> {
    s.attributes
        .iter()
        .filter(|a| a.name == "group")
        .filter_map(|a| a.value.clone())
        .collect()
}

#[test]
fn bundle_accept_answers_bundled_and_offers_onwards_unbundled() {
    let calls = registry();
    let mut o = offer("bundle-1");
    o.bundle.accept = true;
    let onward = run(&calls, &o, &bundled_offer());
    // Towards the callee: two sections with ports of their own, no group,
    // no bundle-only.
    assert!(group_lines(&onward).is_empty());
    assert!(onward.media.iter().all(|m| !m.has_attr("bundle-only")));
    assert_ne!(onward.media[0].port, onward.media[1].port);
    assert!(onward.media[1].port != 0);
    let back = run(&calls, &answer("bundle-1"), &two_section_answer());
    // Towards the caller: one transport, its group and mids, the MID
    // extension under its ID.
    assert_eq!(group_lines(&back), ["BUNDLE a v"]);
    assert_eq!(back.media[0].port, back.media[1].port);
    assert_ne!(back.media[0].port, 0);
    let mids: Vec<_> = back
        .media
        .iter()
        .map(|m| m.attr("mid").and_then(|a| a.value.clone()))
        .collect();
    assert_eq!(mids, [Some("a".into()), Some("v".into())]);
    assert!(back.media.iter().all(|m| m.has_attr("rtcp-mux")));
    assert!(back.media[1]
        .attributes
        .iter()
        .any(|a| a.value.as_deref() == Some("3 urn:ietf:params:rtp-hdrext:sdes:mid")));
    // The caller's sections: the video one is bundled into the audio one.
    let map = calls.lock();
    let caller = &map["bundle-1"].parties[0];
    assert_eq!(caller.medias[1].bundle.as_ref().map(|b| b.head), Some(0));
    assert!(caller.medias[1].bundle_member(1));
    assert!(!caller.medias[0].bundle_member(0));
}

#[test]
fn bundles_are_ignored_by_default_and_broken_up_on_reject() {
    let calls = registry();
    // Without `accept` (upstream's default) a bundle-only section is one
    // its sender rejects; no group goes either way.
    let onward = run(&calls, &offer("bundle-2"), &bundled_offer());
    assert!(group_lines(&onward).is_empty());
    assert_eq!(onward.media[1].port, 0);
    let back = run(&calls, &answer("bundle-2"), &two_section_answer());
    assert!(group_lines(&back).is_empty());
    assert_eq!(back.media[1].port, 0);

    // Bundled, then a re-offer with `reject`: each section its own
    // transport again.
    let mut o = offer("bundle-3");
    o.bundle.accept = true;
    run(&calls, &o, &bundled_offer());
    let back = run(&calls, &answer("bundle-3"), &two_section_answer());
    assert_eq!(back.media[0].port, back.media[1].port);
    let mut o = offer("bundle-3");
    o.bundle.reject = true;
    let mut reoffer = bundled_offer();
    reoffer.media[1].port = 5002;
    reoffer.media[1]
        .attributes
        .retain(|a| a.name != "bundle-only");
    run(&calls, &o, &reoffer);
    let back = run(&calls, &answer("bundle-3"), &two_section_answer());
    assert!(group_lines(&back).is_empty());
    assert_ne!(back.media[0].port, back.media[1].port);
}

fn mids(s: &sdp::Session) -> Vec<Option<String>> {
    s.media
        .iter()
        .map(|m| m.attr("mid").and_then(|a| a.value.clone()))
        .collect()
}

#[test]
fn bundle_offer_require_and_strict_shape_our_offer() {
    let calls = registry_with(settings(), 32);
    let plain = || {
        let mut s = two_section_answer();
        s.media[0].port = 5000;
        s.media[1].port = 5002;
        s
    };
    let with = |call: &str, offer: bool, require: bool, strict: bool| {
        let mut o = options(Side::Offer, call, "caller", None);
        o.bundle.offer = offer;
        o.bundle.require = require;
        o.bundle.strict = strict;
        o.sdp.generate_mid = true;
        run(&calls, &o, &plain())
    };
    let mid_ext = |m: &sdp::Media| {
        m.attributes
            .iter()
            .any(|a| a.value.as_deref() == Some("1 urn:ietf:params:rtp-hdrext:sdes:mid"))
    };
    // `offer`: a group over both, the MID extension under the lowest free
    // ID, each section still on its own port.
    let out = with("bo-1", true, false, false);
    assert_eq!(group_lines(&out), ["BUNDLE 0 1"]);
    assert_eq!(mids(&out), [Some("0".into()), Some("1".into())]);
    assert!(out.media.iter().all(mid_ext));
    assert_ne!(out.media[0].port, out.media[1].port);
    assert!(out.media.iter().all(|m| !m.has_attr("bundle-only")));
    // `require`: one port, the second section bundle-only.
    let out = with("bo-2", true, true, false);
    assert_eq!(out.media[0].port, out.media[1].port);
    assert!(!out.media[0].has_attr("bundle-only") && out.media[1].has_attr("bundle-only"));
    // `strict`: port 0 for the second.
    let out = with("bo-3", true, true, true);
    assert_eq!(group_lines(&out), ["BUNDLE 0 1"]);
    assert_eq!(out.media[1].port, 0);
    assert!(out.media[1].has_attr("bundle-only"));

    // The callee answers `offer` bundled: it is bundled from then on, and
    // the caller hears nothing of it.
    let answer_sdp = bundled_answer();
    let back = run(&calls, &answer("bo-1"), &answer_sdp);
    assert!(group_lines(&back).is_empty());
    assert_ne!(back.media[0].port, back.media[1].port);
    let map = calls.lock();
    let callee = &map["bo-1"].parties[1];
    assert_eq!(callee.medias[1].bundle_head(), Some(0));
    assert!(callee.medias[1].bundle_member(1));
}

#[test]
fn sections_that_cannot_be_told_apart_are_not_bundled() {
    let calls = registry();
    // Two sections listing the same payload type, without the MID
    // extension: upstream's rule leaves the bundle out.
    let offer_sdp = sdp::parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
a=group:BUNDLE a b\r\n\
m=audio 5000 RTP/AVP 0\r\na=mid:a\r\na=rtcp-mux\r\n\
m=audio 5000 RTP/AVP 0\r\na=mid:b\r\na=rtcp-mux\r\n",
    )
    .expect("valid SDP");
    let mut o = offer("bundle-4");
    o.bundle.accept = true;
    run(&calls, &o, &offer_sdp);
    let back = run(&calls, &answer("bundle-4"), &two_section_answer());
    assert!(group_lines(&back).is_empty());
    assert_ne!(back.media[0].port, back.media[1].port);
}

#[test]
fn re_offers_to_a_bundled_party_keep_each_sides_mids() {
    let calls = registry_with(settings(), 32);
    let mut o = offer("bundle-5");
    o.bundle.accept = true;
    run(&calls, &o, &bundled_offer());
    let callee = |mids: [&str; 2]| {
        sdp::parse(
            format!(
                "v=0\r\no=- 1 2 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\na=mid:{}\r\nm=video 6002 RTP/AVP 96\r\na=mid:{}\r\na=rtpmap:96 VP8/90000\r\n",
                mids[0], mids[1]
            )
            .as_bytes(),
        )
        .expect("valid SDP")
    };
    run(&calls, &answer("bundle-5"), &callee(["audio", "video"]));
    // The callee re-offers (its own mids): the caller is offered its
    // bundle again, under its mids, one port, the second bundle-only.
    let reoffer = options(Side::Offer, "bundle-5", "callee", Some("caller"));
    let to_caller = run(&calls, &reoffer, &callee(["audio", "video"]));
    assert_eq!(group_lines(&to_caller), ["BUNDLE a v"]);
    assert_eq!(mids(&to_caller), [Some("a".into()), Some("v".into())]);
    assert_eq!(to_caller.media[0].port, to_caller.media[1].port);
    assert!(to_caller.media[1].has_attr("bundle-only"));
    // Its answer (its mids, bundled) goes back under the callee's mids.
    let mut back = bundled_offer();
    back.media[1].port = back.media[0].port;
    let reanswer = options(Side::Answer, "bundle-5", "callee", Some("caller"));
    let to_callee = run(&calls, &reanswer, &back);
    assert!(group_lines(&to_callee).is_empty());
    assert_eq!(
        mids(&to_callee),
        [Some("audio".into()), Some("video".into())]
    );
    assert_ne!(to_callee.media[0].port, to_callee.media[1].port);
}

#[test]
fn a_rejected_head_hands_the_bundle_on_and_force_relay_keeps_it() {
    let calls = registry_with(settings(), 32);
    // Three sections bundled; the callee rejects the first (the head).
    let three = sdp::parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
a=group:BUNDLE a v w\r\n\
m=audio 5000 RTP/AVP 0\r\na=mid:a\r\na=rtcp-mux\r\n\
m=video 0 RTP/AVP 96\r\na=mid:v\r\na=bundle-only\r\na=rtpmap:96 VP8/90000\r\n\
m=video 0 RTP/AVP 97\r\na=mid:w\r\na=bundle-only\r\na=rtpmap:97 H264/90000\r\n",
    )
    .expect("valid SDP");
    let mut o = offer("bundle-6");
    o.bundle.accept = true;
    run(&calls, &o, &three);
    let answer_sdp = sdp::parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 0 RTP/AVP 0\r\nm=video 6002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n\
m=video 6004 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n",
    )
    .expect("valid SDP");
    let back = run(&calls, &answer("bundle-6"), &answer_sdp);
    assert_eq!(group_lines(&back), ["BUNDLE v w"]);
    assert_eq!(back.media[0].port, 0);
    assert_ne!(back.media[1].port, 0);
    assert_eq!(back.media[1].port, back.media[2].port);

    // `ICE=force-relay`: we are only a candidate; the sender's bundle
    // passes as it is.
    let mut o = offer("bundle-7");
    o.bundle.accept = true;
    o.webrtc.ice = offer_answer::IceMode::ForceRelay;
    let onward = run(&calls, &o, &three);
    assert_eq!(group_lines(&onward), ["BUNDLE a v w"]);
    assert!(onward.media[1].has_attr("bundle-only"));
}

#[test]
fn ice2_is_advertised_from_an_offer_on() {
    let calls = registry();
    let mut o = offer("ice2-1");
    o.webrtc.ice = offer_answer::IceMode::Force;
    o.webrtc.ice2 = true;
    o.webrtc.trickle = true;
    let out = run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
    let options = |s: &sdp::Session| s.media[0].attr("ice-options").and_then(|a| a.value.clone());
    assert_eq!(options(&out).as_deref(), Some("trickle ice2"));
    // A later offer without it still says so (remembered, as upstream).
    let mut again = offer("ice2-1");
    again.webrtc.ice = offer_answer::IceMode::Force;
    let out = run(&calls, &again, &sdp_from("192.0.2.10", 5000, &[]));
    assert_eq!(options(&out).as_deref(), Some("trickle ice2"));
}

#[test]
fn ice_default_follows_each_partys_own_sdp_once_it_sent_one() {
    let calls = registry();
    let has_ice = |s: &sdp::Session| s.media[0].has_attr("ice-ufrag");
    let ice = [
        "ice-ufrag:abcd",
        "ice-pwd:0123456789abcdefghijkl",
        "candidate:1 1 UDP 2130706431 192.0.2.10 5000 typ host",
    ];
    let a = sdp_from("192.0.2.10", 5000, &ice);
    let b = sdp_from("192.0.2.20", 6000, &[]);
    // The callee has sent nothing yet: it gets ICE as the offer had it.
    assert!(has_ice(&run(&calls, &offer("icd"), &a)));
    assert!(has_ice(&run(&calls, &answer("icd"), &b)));
    // Its answer had no ICE: a re-offer with ICE gives it none.
    assert!(!has_ice(&run(&calls, &offer("icd"), &a)));
    run(&calls, &answer("icd"), &b);
    // The callee re-offers without ICE: the caller, whose SDP had ICE,
    // still gets it.
    let from_b = options(Side::Offer, "icd", "callee", Some("caller"));
    assert!(has_ice(&run(&calls, &from_b, &b)));
    let a_back = options(Side::Answer, "icd", "callee", Some("caller"));
    run(&calls, &a_back, &a);
    // `reset`: the callee follows the offer again.
    let mut o = offer("icd");
    o.reset = true;
    assert!(has_ice(&run(&calls, &o, &a)));
}

#[test]
fn a_partys_own_ice_options_come_back_to_it() {
    let calls = registry();
    let options = |s: &sdp::Session| s.media[0].attr("ice-options").and_then(|a| a.value.clone());
    let ice = ["ice-ufrag:abcd", "ice-pwd:0123456789abcdefghijkl"];
    let with = |opts: &str| {
        let mut lines = ice.to_vec();
        lines.push(opts);
        sdp_from("192.0.2.10", 5000, &lines)
    };
    // Its offer says `trickle ice2`: our answer to it says so too, while
    // the offer onwards (no ICE flags) says nothing.
    let mut o = offer("iceopt-1");
    o.webrtc.ice = offer_answer::IceMode::Force;
    let onward = run(&calls, &o, &with("ice-options:trickle ice2"));
    assert_eq!(options(&onward), None);
    let back = run(
        &calls,
        &answer("iceopt-1"),
        &sdp_from("192.0.2.20", 6000, &[]),
    );
    assert_eq!(options(&back).as_deref(), Some("trickle ice2"));
    // A re-offer without them: they are gone from what it gets back.
    run(&calls, &o, &sdp_from("192.0.2.10", 5000, &ice));
    let back = run(
        &calls,
        &answer("iceopt-1"),
        &sdp_from("192.0.2.20", 6000, &[]),
    );
    assert_eq!(options(&back), None);
    // The answerer's own `ice2` comes back to it in the next offer.
    let mut o = offer("iceopt-2");
    o.webrtc.ice = offer_answer::IceMode::Force;
    run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
    let mut lines = ice.to_vec();
    lines.push("ice-options:ice2");
    let mut a = answer("iceopt-2");
    a.webrtc.ice = offer_answer::IceMode::Force;
    run(&calls, &a, &sdp_from("192.0.2.20", 6000, &lines));
    let again = run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
    assert_eq!(options(&again).as_deref(), Some("ice2"));
    // Options go with the party's next SDP even when it has no ICE: the
    // callee answers without, and the next offer to it (ICE forced) says
    // nothing.
    let mut a = answer("iceopt-2");
    a.webrtc.ice = offer_answer::IceMode::Force;
    run(&calls, &a, &sdp_from("192.0.2.20", 6000, &[]));
    let again = run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
    assert_eq!(options(&again), None);
    // The trickle placeholder (port 9, no address) means trickle.
    let mut o = offer("iceopt-3");
    o.webrtc.ice = offer_answer::IceMode::Force;
    run(&calls, &o, &sdp_from("0.0.0.0", 9, &ice));
    let back = run(
        &calls,
        &answer("iceopt-3"),
        &sdp_from("192.0.2.20", 6000, &[]),
    );
    assert_eq!(options(&back).as_deref(), Some("trickle"));
}

fn sections(s: &sdp::Session) -> Vec<(String, bool, bool)> {
    s.media
        .iter()
        .map(|m| (m.protocol.clone(), m.port != 0, m.has_attr("crypto")))
        .collect()
}

#[test]
fn legacy_osrtp_twins_are_accepted_and_answered_in_place() {
    let calls = registry();
    let twins = srtp_sdp("192.0.2.10", 5002, "RTP/SAVP", &[&format!("1 {KEY1}")]);
    let mut offer_sdp = sdp_from("192.0.2.10", 5000, &[]);
    offer_sdp.media.extend(twins.media);
    let mut o = offer("leg-1");
    o.osrtp.accept_legacy = true;
    o.sdp.transport = Some("RTP/AVP");
    let onward = run(&calls, &o, &offer_sdp);
    // One section goes on (the SRTP twin, made plain for the callee).
    assert_eq!(sections(&onward), [("RTP/AVP".into(), true, false)]);
    let back = run(&calls, &answer("leg-1"), &sdp_from("192.0.2.20", 6000, &[]));
    // The caller hears both again: its plain twin rejected in its place,
    // then its SRTP section answered with a key of ours.
    assert_eq!(
        sections(&back),
        [
            ("RTP/AVP".into(), false, false),
            ("RTP/SAVP".into(), true, true)
        ]
    );
}

#[test]
fn legacy_osrtp_offer_twins_each_srtp_section_and_takes_the_answers_pick() {
    let calls = registry();
    let mut o = offer("leg-2");
    o.osrtp.offer_legacy = true;
    o.sdp.transport = Some("RTP/SAVP");
    let onward = run(&calls, &o, &sdp_from("192.0.2.10", 5000, &[]));
    // A plain twin (same port, no keys) before the SRTP section.
    assert_eq!(
        sections(&onward),
        [
            ("RTP/AVP".into(), true, false),
            ("RTP/SAVP".into(), true, true)
        ]
    );
    assert_eq!(onward.media[0].port, onward.media[1].port);
    // The callee takes the SRTP twin (the plain one rejected): collapsed
    // without any option, and the caller gets its one section back.
    let mut picked = sdp_from("192.0.2.20", 0, &[]);
    let srtp = srtp_sdp("192.0.2.20", 6000, "RTP/SAVP", &[&format!("1 {KEY2}")]);
    picked.media.extend(srtp.media);
    let back = run(&calls, &answer("leg-2"), &picked);
    assert_eq!(sections(&back), [("RTP/AVP".into(), true, false)]);
    calls.with_call("leg-2", |c| {
        let callee = &c.parties[1].medias[0].negotiated;
        assert_eq!(callee.key_in.as_ref().map(|k| k.tag), Some(1));
        assert!(callee.twin.as_ref().is_some_and(|t| t.before));
    });
}

#[test]
fn an_answerer_that_declares_the_mid_extension_gets_it_stamped() {
    let calls = registry_with(settings(), 32);
    let mut o = options(Side::Offer, "bo-4", "caller", None);
    o.bundle.offer = true;
    o.bundle.require = true;
    o.sdp.generate_mid = true;
    let mut plain = two_section_answer();
    plain.media[0].port = 5000;
    plain.media[1].port = 5002;
    run(&calls, &o, &plain);
    let answer_sdp = bundled_answer();
    run(&calls, &answer("bo-4"), &answer_sdp);
    let map = calls.lock();
    let callee = &map["bo-4"].parties[1];
    assert!(callee
        .medias
        .iter()
        .all(|m| m.bundle.as_ref().is_some_and(|b| b.stamp)));
}

#[test]
fn legacy_twins_stay_on_their_sections_when_one_is_removed() {
    let calls = registry();
    // Audio and video, SRTP offered with legacy twins; audio removed.
    let mut o = offer("leg-3");
    o.osrtp.offer_legacy = true;
    o.sdp.transport = Some("RTP/SAVP");
    o.sdp.media_remove = vec!["audio".into()];
    let mut two = sdp_from("192.0.2.10", 5000, &[]);
    two.media
        .extend(two_section_answer().media.into_iter().skip(1));
    let onward = run(&calls, &o, &two);
    // Only video goes on, twinned.
    assert_eq!(
        sections(&onward),
        [
            ("RTP/AVP".into(), true, false),
            ("RTP/SAVP".into(), true, true)
        ]
    );
    assert!(onward.media.iter().all(|m| m.kind == "video"));
    let mut picked = sdp::parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=video 6002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\nm=video 0 RTP/SAVP 96\r\n",
    )
    .expect("valid SDP");
    picked.media[1].formats = vec!["96".into()];
    run(&calls, &answer("leg-3"), &picked);
    calls.with_call("leg-3", |c| {
        let callee = &c.parties[1].medias;
        assert_eq!(callee[0].negotiated.twin, None, "audio: removed, no twin");
        assert!(callee[1]
            .negotiated
            .twin
            .as_ref()
            .is_some_and(|t| !t.before));
    });
    // A re-offer with offer-legacy offers the twins anew: the plain one
    // live before the SRTP one, whatever the callee picked before.
    let again = run(&calls, &o, &two);
    assert_eq!(
        sections(&again),
        [
            ("RTP/AVP".into(), true, false),
            ("RTP/SAVP".into(), true, true)
        ]
    );
}
