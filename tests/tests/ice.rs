//! The full ICE agent against a real one (aioice, as a SIP phone that
//! speaks ICE would run it): both roles, RTP and RTCP components for a
//! party that does not multiplex, and an ICE restart; media is checked on
//! every component both ways.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rtpengine_tests::*;

/// The ICE phone's address (its only host candidate).
const ICE_PHONE: &str = "198.51.100.1";
/// The plain phone's.
const PHONE: &str = "198.51.100.3";

fn daemon(port: u16) -> SocketAddr {
    format!("203.0.113.1:{port}").parse().unwrap()
}

/// An SDP for the ICE phone: its RTP candidate's port on `m=`, its RTCP
/// one on `a=rtcp` (it does not mux).
fn ice_sdp(ice: &IceLines) -> String {
    format!(
        "v=0\no=- 1 1 IN IP4 {ICE_PHONE}\ns=-\nt=0 0\nm=audio {} RTP/AVP 0\nc=IN IP4 {ICE_PHONE}\n\
         a=rtcp:{}\na=sendrecv\n{}",
        ice.port(1),
        ice.port(2),
        ice.sdp_lines()
    )
}

fn plain_sdp(port: u16) -> String {
    format!(
        "v=0\no=- 1 1 IN IP4 {PHONE}\ns=-\nt=0 0\nm=audio {port} RTP/AVP 0\nc=IN IP4 {PHONE}\na=sendrecv\n"
    )
}

/// A minimal RTCP receiver report (no blocks) from `ssrc`.
fn rtcp_rr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend(ssrc.to_be_bytes());
    p
}

/// Our ICE towards the ICE phone: a full agent (no `a=ice-lite`), host
/// candidates on our RTP and RTCP ports.
fn check_our_ice(sdp: &str) -> IceLines {
    assert!(!sdp.contains("a=ice-lite"), "{sdp}");
    let ours = IceLines::from_sdp(sdp);
    assert_eq!(ours.candidates.len(), 2, "{sdp}");
    let rtp = media_ports(sdp)[0];
    assert_eq!(ours.port(1), rtp, "{sdp}");
    assert_eq!(ours.port(2), rtp + 1, "{sdp}");
    assert!(ours.candidates.iter().all(|c| c.contains(" typ host")));
    ours
}

/// RTP and RTCP both ways between the ICE phone (on its selected pairs)
/// and the plain phone (`phone`, `phone_rtcp`), which sends to the
/// daemon's `to_daemon` port (and the next one for RTCP).
fn media_both_ways(ice: &mut IcePeer, phone: &UdpSocket, phone_rtcp: &UdpSocket, to_daemon: u16) {
    let from_ice = rtp(0, 1, 160, 0x1ce0_0001, 0x11);
    let rr = rtcp_rr(0x1ce0_0001);
    // The plain phone sends while the ICE phone runs (in another process).
    let sender = {
        let (phone, phone_rtcp) = (phone.try_clone().unwrap(), phone_rtcp.try_clone().unwrap());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut seq = 0u16;
            while start.elapsed() < Duration::from_millis(1500) {
                let pkt = rtp(0, seq, 160 * u32::from(seq), 0x0000_beef, 0x22);
                phone.send_to(&pkt, daemon(to_daemon)).unwrap();
                if seq.is_multiple_of(10) {
                    phone_rtcp
                        .send_to(&rtcp_rr(0xbeef), daemon(to_daemon + 1))
                        .unwrap();
                }
                seq += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let got = ice.exchange(&[(1, &from_ice, 40), (2, &rr, 5)], 1.0);
    sender.join().unwrap();
    let rtp_in = got.get(&1).map_or(0, |l| {
        l.iter()
            .filter(|p| p.len() > 12 && p[12..].iter().all(|&b| b == 0x22))
            .count()
    });
    assert!(rtp_in > 20, "{rtp_in} RTP packets reached the ICE phone");
    let rtcp_in = got
        .get(&2)
        .map_or(0, |l| l.iter().filter(|p| p.get(1) == Some(&201)).count());
    assert!(rtcp_in > 0, "RTCP reached the ICE phone on component 2");
    // What the ICE phone sent reached the plain phone.
    let count = |s: &UdpSocket, want: &dyn Fn(&[u8]) -> bool| {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while let Ok((len, _)) = s.recv_from(&mut buf) {
            n += usize::from(want(&buf[..len]));
        }
        n
    };
    let rtp_out = count(phone, &|p| {
        p.len() > 12 && p[12..].iter().all(|&b| b == 0x11)
    });
    assert!(
        rtp_out > 20,
        "{rtp_out} RTP packets reached the plain phone"
    );
    let rtcp_out = count(phone_rtcp, &|p| {
        p.get(1) == Some(&201) && p[4..8] == [0x1c, 0xe0, 0, 1]
    });
    assert!(
        rtcp_out > 0,
        "RTCP from component 2 reached the plain phone"
    );
}

/// The ICE phone calls a plain phone and controls (it offered); we are a
/// full agent (upstream's default) on both components, checked back and
/// nominated by it.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ice_caller_controls_both_components() {
    require_root();
    let rig = Rig::new("ice-caller", &[]);
    let mut ice = IcePeer::start(&rig.ns, ICE_PHONE);
    let phone = rig.socket(&format!("{PHONE}:6030"));
    let phone_rtcp = rig.socket(&format!("{PHONE}:6031"));

    let lines = ice.agent(2, true);
    // No ICE key: the callee gets our ICE because the caller's SDP had it.
    let to_phone = rig.offer("ice-1", "caller", &ice_sdp(&lines), Vec::new());
    check_our_ice(&to_phone);
    let to_caller = rig.answer("ice-1", "caller", "callee", &plain_sdp(6030), Vec::new());
    let ours = check_our_ice(&to_caller);
    let done = ice.connect(&ours);
    // A full agent checks back on both components (a lite one never
    // would).
    for component in [1, 2] {
        assert!(
            done.checks.get(&component).is_some_and(|&n| n > 0),
            "{done:?}"
        );
    }
    let port = media_ports(&to_caller)[0];
    assert_eq!(done.selected.get(&1), Some(&daemon(port)), "{done:?}");
    assert_eq!(done.selected.get(&2), Some(&daemon(port + 1)), "{done:?}");
    media_both_ways(&mut ice, &phone, &phone_rtcp, media_ports(&to_phone)[0]);
}

/// A plain phone calls the ICE phone with `ICE=force`: we sent the offer,
/// so we control and nominate (aioice is controlled and waits for our
/// USE-CANDIDATE on both components), also after early media from another
/// fork that answered without ICE. Then the ICE phone restarts ICE in a
/// re-INVITE (new credentials, new ports, now controlling as the
/// offerer): our credentials change and media follows it.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn we_control_towards_an_ice_callee_and_follow_its_restart() {
    require_root();
    let rig = Rig::new("ice-callee", &[]);
    let mut ice = IcePeer::start(&rig.ns, ICE_PHONE);
    let phone = rig.socket(&format!("{PHONE}:6032"));
    let phone_rtcp = rig.socket(&format!("{PHONE}:6033"));

    let to_ice = rig.offer(
        "ice-2",
        "phone",
        &plain_sdp(6032),
        vec![("ICE", Value::str("force"))],
    );
    let ours = check_our_ice(&to_ice);
    // Early media from another fork first, without ICE: the ICE fork's
    // answer still finds the credentials we offered.
    rig.answer("ice-2", "phone", "early", &plain_sdp(6038), Vec::new());
    let lines = ice.agent(2, false);
    let to_phone = rig.answer("ice-2", "phone", "ice", &ice_sdp(&lines), Vec::new());
    assert!(!to_phone.contains("a=ice-"), "{to_phone}");
    let done = ice.connect(&ours);
    assert!(!done.controlling, "{done:?}");
    let port = media_ports(&to_ice)[0];
    assert_eq!(done.selected.get(&1), Some(&daemon(port)), "{done:?}");
    assert_eq!(done.selected.get(&2), Some(&daemon(port + 1)), "{done:?}");
    let to_daemon = media_ports(&to_phone)[0];
    media_both_ways(&mut ice, &phone, &phone_rtcp, to_daemon);

    // ICE restart by the ICE phone's re-INVITE.
    let restarted = ice.agent(2, true);
    assert_ne!(restarted.port(1), lines.port(1));
    // (The plain phone now gets our ICE too: the offer had ICE.)
    let to_phone2 = rig.offer("ice-2", "ice", &ice_sdp(&restarted), Vec::new());
    let to_ice2 = rig.answer("ice-2", "ice", "phone", &plain_sdp(6032), Vec::new());
    let ours2 = check_our_ice(&to_ice2);
    assert_ne!(ours2.ufrag, ours.ufrag, "new credentials on a restart");
    assert_ne!(ours2.pwd, ours.pwd);
    let done = ice.connect(&ours2);
    assert_eq!(
        done.selected.get(&1),
        Some(&daemon(media_ports(&to_ice2)[0]))
    );
    media_both_ways(&mut ice, &phone, &phone_rtcp, media_ports(&to_phone2)[0]);
}

/// Trickle ICE: a caller's offer without candidates (`a=ice-options:trickle`,
/// the 0.0.0.0 placeholder), then its candidates in an SDP fragment
/// (`fragment`, as Kamailio passes a SIP INFO body): our agent checks the
/// trickled candidate; the fragment is consumed (no SDP in the reply). A
/// fragment that comes before its offer waits for it; a bad one is
/// answered with the SDP error.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn trickled_candidates_are_checked() {
    require_root();
    let rig = Rig::new("ice-trickle", &[]);
    let candidate = rig.socket(&format!("{ICE_PHONE}:6040"));
    let pwd = "trickletrickletrickle12";
    let offer = format!(
        "v=0\no=- 1 1 IN IP4 {ICE_PHONE}\ns=-\nt=0 0\nm=audio 9 RTP/AVP 0\nc=IN IP4 0.0.0.0\n\
         a=mid:0\na=ice-ufrag:trk1\na=ice-pwd:{pwd}\na=ice-options:trickle\na=rtcp-mux\na=sendrecv\n"
    );
    let trickle = || ("flags", Value::List(vec![Value::str("trickle ICE")]));
    let to_phone = rig.offer("ice-3", "caller", &offer, vec![trickle()]);
    assert!(to_phone.contains("a=ice-options:trickle"), "{to_phone}");
    let to_caller = rig.answer(
        "ice-3",
        "caller",
        "callee",
        &plain_sdp(6034),
        vec![trickle()],
    );
    assert!(to_caller.contains("a=ice-options:trickle"), "{to_caller}");
    assert!(to_caller.contains("a=end-of-candidates"), "{to_caller}");

    let fragment = format!(
        "a=ice-ufrag:trk1\na=ice-pwd:{pwd}\nm=audio 9 RTP/AVP 0\na=mid:0\n\
         a=candidate:1 1 UDP 2130706431 {ICE_PHONE} 6040 typ host\na=end-of-candidates\n"
    );
    let frag = |call: &str, body: &str| {
        rig.cmd(sdp_cmd(
            "offer",
            call,
            "caller",
            None,
            &crlf(body),
            vec![("flags", Value::List(vec![Value::str("fragment")]))],
        ))
    };
    let r = frag("ice-3", &fragment);
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    assert!(!r.contains_key(b"sdp".as_slice()), "consumed: {r:?}");
    assert!(!r.contains_key(b"warning".as_slice()), "{r:?}");

    // Our check reaches the trickled candidate (the call timer runs the
    // agent once a second), made with its ufrag and ours.
    candidate
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = candidate
        .recv_from(&mut buf)
        .expect("a check from the daemon");
    let pkt = &buf[..n];
    assert_eq!(pkt[..2], [0, 1], "a Binding request");
    assert_eq!(pkt[4..8], [0x21, 0x12, 0xa4, 0x42], "STUN magic cookie");
    let ours = IceLines::from_sdp(&to_caller);
    let user = format!("trk1:{}", ours.ufrag);
    assert!(
        pkt.windows(user.len()).any(|w| w == user.as_bytes()),
        "USERNAME {user}"
    );
    assert_eq!(from, daemon(media_ports(&to_caller)[0]));

    // A fragment that overtakes its offer (the INFO racing the INVITE)
    // waits for it, as upstream: consumed without a warning, and its
    // candidate is checked once the call is answered.
    let early = rig.socket(&format!("{ICE_PHONE}:6041"));
    let r = frag("ice-3b", &fragment.replace(" 6040 ", " 6041 "));
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    assert!(!r.contains_key(b"sdp".as_slice()), "consumed: {r:?}");
    assert!(!r.contains_key(b"warning".as_slice()), "{r:?}");
    rig.offer("ice-3b", "caller", &offer, vec![trickle()]);
    let to_caller = rig.answer(
        "ice-3b",
        "caller",
        "callee",
        &plain_sdp(6044),
        vec![trickle()],
    );
    early
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let (n, from) = early
        .recv_from(&mut buf)
        .expect("a check to the early candidate");
    assert_eq!(buf[..2], [0, 1], "a Binding request");
    assert!(n > 20);
    assert_eq!(from, daemon(media_ports(&to_caller)[0]));

    let r = frag("ice-3", "v=0\n");
    assert_eq!(get_str(&r, "result"), "error", "{r:?}");
    assert_eq!(get_str(&r, "error-reason"), "Failed to parse SDP", "{r:?}");
}

/// Consent freshness (RFC 7675): the ICE phone goes away without a word
/// (its process killed, its port now held by a socket that answers
/// nothing). Our consent checks go unanswered, and within 30 s (plus a
/// check interval) nothing more is sent to it; a stranger's RTP sent to
/// our port meanwhile does not become the destination either.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn media_stops_when_consent_expires() {
    require_root();
    let rig = Rig::new("ice-consent", &[]);
    let mut ice = IcePeer::start(&rig.ns, ICE_PHONE);
    let phone = rig.socket(&format!("{PHONE}:6036"));
    let phone_rtcp = rig.socket(&format!("{PHONE}:6037"));
    let lines = ice.agent(2, true);
    let to_phone = rig.offer("ice-4", "caller", &ice_sdp(&lines), Vec::new());
    let to_caller = rig.answer("ice-4", "caller", "callee", &plain_sdp(6036), Vec::new());
    ice.connect(&check_our_ice(&to_caller));
    let to_daemon = media_ports(&to_phone)[0];
    media_both_ways(&mut ice, &phone, &phone_rtcp, to_daemon);
    drop(ice);

    // The phone's old address, silent from now on.
    let gone = rig.socket(&format!("{ICE_PHONE}:{}", lines.port(1)));
    gone.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let stranger = rig.socket(&format!("{ICE_PHONE}:6099"));
    stranger
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let ice_side = daemon(media_ports(&to_caller)[0]);
    let start = Instant::now();
    let (mut last_rtp, mut consent_checks, mut seq) = (None, 0, 0u16);
    let mut buf = [0u8; 2048];
    while start.elapsed() < Duration::from_secs(40) {
        phone
            .send_to(
                &rtp(0, seq, 160 * u32::from(seq), 0xbeef, 0x22),
                daemon(to_daemon),
            )
            .unwrap();
        if start.elapsed() > Duration::from_secs(20) {
            stranger
                .send_to(&rtp(0, seq, 0, 0x5eed, 0x33), ice_side)
                .unwrap();
            assert!(
                stranger.recv_from(&mut buf).is_err(),
                "media went to a stranger"
            );
        }
        seq = seq.wrapping_add(1);
        while let Ok((n, _)) = gone.recv_from(&mut buf) {
            match buf[0] {
                0..=3 => consent_checks += 1,
                _ if n > 12 => last_rtp = Some(start.elapsed()),
                _ => {}
            }
        }
    }
    let last = last_rtp.expect("media went on for a while");
    assert!(consent_checks >= 3, "{consent_checks} consent checks");
    assert!(
        last > Duration::from_secs(20) && last < Duration::from_secs(38),
        "the last packet to the silent phone at {last:?}"
    );
}

/// The second ICE phone's address (for the passthrough cases).
const ICE_PHONE_B: &str = "198.51.100.6";

/// An SDP for an ICE phone that muxes RTCP (one component), with its
/// credentials but none of its candidates: the phones can only reach each
/// other through the candidate the daemon adds.
fn ice_sdp_without_candidates(address: &str, ice: &IceLines) -> String {
    format!(
        "v=0\no=- 1 1 IN IP4 {address}\ns=-\nt=0 0\nm=audio {} RTP/AVP 0\nc=IN IP4 {address}\n\
         a=rtcp-mux\na=sendrecv\na=ice-ufrag:{}\na=ice-pwd:{}\n",
        ice.port(1),
        ice.ufrag,
        ice.pwd
    )
}

/// `ICE=optional` and `ICE=force-relay` between two ICE phones (upstream's
/// passthrough): each phone gets the other's credentials with the daemon
/// added as a candidate (host, or relay with c=/m= left alone), no agent
/// runs here, and the phones' own checks are relayed end to end: they
/// select the daemon's ports and media flows both ways. An agent here
/// would answer the checks itself (they carry the other phone's
/// credentials) and no pair would be selected.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn passthrough_modes_relay_the_phones_own_checks() {
    require_root();
    let rig = Rig::new("ice-pass", &[]);
    for (n, mode) in ["optional", "force-relay"].into_iter().enumerate() {
        let mut a = IcePeer::start(&rig.ns, ICE_PHONE);
        let mut b = IcePeer::start(&rig.ns, ICE_PHONE_B);
        let (la, lb) = (a.agent(1, true), b.agent(1, false));
        let call = format!("ice-pass-{n}");
        let ice = || ("ICE", Value::str(mode));
        let to_b = rig.offer(
            &call,
            "a",
            &ice_sdp_without_candidates(ICE_PHONE, &la),
            vec![ice()],
        );
        let to_a = rig.answer(
            &call,
            "a",
            "b",
            &ice_sdp_without_candidates(ICE_PHONE_B, &lb),
            vec![ice()],
        );
        let (for_b, for_a) = (IceLines::from_sdp(&to_b), IceLines::from_sdp(&to_a));
        assert_eq!((&for_b.ufrag, &for_b.pwd), (&la.ufrag, &la.pwd), "{to_b}");
        assert_eq!((&for_a.ufrag, &for_a.pwd), (&lb.ufrag, &lb.pwd), "{to_a}");
        let kind = if mode == "optional" {
            " typ host"
        } else {
            " typ relay raddr "
        };
        for (sdp, lines, sender) in [(&to_b, &for_b, &la), (&to_a, &for_a, &lb)] {
            // Ours only (component 2 too in the offer: RTCP has its own
            // port until the answer muxes it).
            assert!(!lines.candidates.is_empty(), "{sdp}");
            assert!(lines.candidates.iter().all(|c| c.contains(kind)), "{sdp}");
            // force-relay leaves c= and m= to the sender.
            let own = media_ports(sdp)[0] == sender.port(1);
            assert_eq!(own, mode == "force-relay", "{sdp}");
        }
        let (pa, pb) = (daemon(for_a.port(1)), daemon(for_b.port(1)));
        let (da, db) = std::thread::scope(|s| {
            let ha = s.spawn(|| a.connect(&for_a));
            let hb = s.spawn(|| b.connect(&for_b));
            (ha.join().unwrap(), hb.join().unwrap())
        });
        assert_eq!(da.selected.get(&1), Some(&pa), "{mode}: {da:?}");
        assert_eq!(db.selected.get(&1), Some(&pb), "{mode}: {db:?}");
        // Each phone was checked by the other, through us.
        assert!(da.checks.get(&1).is_some_and(|&c| c > 0), "{mode}: {da:?}");
        assert!(db.checks.get(&1).is_some_and(|&c| c > 0), "{mode}: {db:?}");
        let (from_a, from_b) = (rtp(0, 1, 160, 0xa, 0x11), rtp(0, 1, 160, 0xb, 0x22));
        let (got_a, got_b) = std::thread::scope(|s| {
            let ha = s.spawn(|| a.exchange(&[(1, &from_a, 30)], 1.0));
            let hb = s.spawn(|| b.exchange(&[(1, &from_b, 30)], 1.0));
            (ha.join().unwrap(), hb.join().unwrap())
        });
        let count = |got: &std::collections::BTreeMap<u8, Vec<Vec<u8>>>, byte: u8| {
            got.get(&1).map_or(0, |l| {
                l.iter()
                    .filter(|p| p.len() > 12 && p[12..].iter().all(|&x| x == byte))
                    .count()
            })
        };
        assert!(count(&got_b, 0x11) > 20, "{mode}: A's media reached B");
        assert!(count(&got_a, 0x22) > 20, "{mode}: B's media reached A");
    }
}

/// Two addresses on the interface: our ICE lists host candidates on both
/// (the second's local preference one lower, as upstream: 2130706175),
/// and a phone that can reach only the second one (the first is blocked
/// both ways in the namespace's firewall) gets there by ICE: the selected
/// pairs are the second address's ports, and media flows both ways
/// through them, RTP and RTCP.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn every_address_is_a_candidate_and_ice_selects_the_reachable_one() {
    require_root();
    let rig = Rig::new("ice-addrs", &["-i", "203.0.113.1", "-i", "203.0.113.2"]);
    for (s, d) in [(ICE_PHONE, "203.0.113.1"), ("203.0.113.1", ICE_PHONE)] {
        rig.ns
            .exec(&["iptables", "-A", "INPUT", "-s", s, "-d", d, "-j", "DROP"])
            .expect("iptables");
    }
    let mut ice = IcePeer::start(&rig.ns, ICE_PHONE);
    let phone = rig.socket(&format!("{PHONE}:6050"));
    let phone_rtcp = rig.socket(&format!("{PHONE}:6051"));
    let lines = ice.agent(2, true);
    let to_phone = rig.offer("ice-6", "caller", &ice_sdp(&lines), Vec::new());
    let to_caller = rig.answer("ice-6", "caller", "callee", &plain_sdp(6050), Vec::new());
    let ours = IceLines::from_sdp(&to_caller);
    let fields: Vec<Vec<&str>> = ours
        .candidates
        .iter()
        .map(|c| c.split_whitespace().collect())
        .collect();
    let rtp = media_ports(&to_caller)[0];
    let got: Vec<(&str, &str, &str)> = fields.iter().map(|f| (f[1], f[3], f[4])).collect();
    assert_eq!(
        got,
        [
            ("1", "2130706431", "203.0.113.1"),
            ("2", "2130706430", "203.0.113.1"),
            ("1", "2130706175", "203.0.113.2"),
            ("2", "2130706174", "203.0.113.2"),
        ],
        "{to_caller}"
    );
    assert_eq!(
        fields[0][5],
        rtp.to_string(),
        "c=/m= name the first address"
    );
    assert_ne!(fields[0][0], fields[2][0], "one foundation per address");
    let port = |i: usize| fields[i][5].parse::<u16>().unwrap();
    let second = |p: u16| -> SocketAddr { format!("203.0.113.2:{p}").parse().unwrap() };
    let done = ice.connect(&ours);
    assert_eq!(done.selected.get(&1), Some(&second(port(2))), "{done:?}");
    assert_eq!(done.selected.get(&2), Some(&second(port(3))), "{done:?}");
    media_both_ways(&mut ice, &phone, &phone_rtcp, media_ports(&to_phone)[0]);
}
