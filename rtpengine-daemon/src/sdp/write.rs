//! SDP writer in upstream rtpengine's current layout (`sdp_create()`).
//!
//! Order per media section, which upstream's tests assert: `m=`, `i=`, `c=`,
//! `b=`, `k=`, `a=mid`, `a=label`, codec lines (`a=rtpmap` for every payload
//! type, static ones too, each followed by its `a=fmtp` and `a=rtcp-fb`),
//! `a=extmap`, pass-through attributes, the direction, `a=rtcp`/`a=rtcp-mux`,
//! `a=crypto`, `a=setup`/`a=fingerprint`/`a=tls-id`, `a=ptime`/`a=maxptime`,
//! then our own ICE lines where ICE runs with the receiver.
//! There is never a session-level `c=`. The sender's ICE attributes are
//! always removed: a candidate naming the peer's address would let media
//! bypass the proxy.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::{static_rtpmap, Attribute, Direction, Media, Origin, Session};

/// Session-level values the caller decided.
#[derive(Debug, Clone)]
pub struct SessionOut {
    /// The `o=` line to write.
    pub origin: Origin,
    /// The `s=` value to write.
    pub name: String,
}

/// How to write `a=rtcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpOut {
    /// No `a=rtcp` line.
    None,
    /// `a=rtcp:<port>`
    Port(u16),
    /// `a=rtcp:<port> IN IP4|IP6 <addr>`
    Full(u16, IpAddr),
}

/// Per-media values the caller decided.
#[derive(Debug, Clone)]
pub struct MediaOut {
    /// Port for `m=` (0 rejects the media).
    pub port: u16,
    /// Address for `c=`.
    pub address: IpAddr,
    /// Direction attribute to write.
    pub direction: Direction,
    /// `a=rtcp` form.
    pub rtcp: RtcpOut,
    /// Whether to write `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// Written exactly as received, with `port` and `address` (media this
    /// daemon does not relay, such as TCP-based MSRP).
    pub passthrough: bool,
    /// Our ICE credentials and host candidates, where ICE runs with the
    /// receiver.
    pub ice: Option<IceOut>,
}

/// Our ICE lines for one media section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceOut {
    /// Whose credentials the section carries.
    pub lines: IceLines,
    /// Our candidates: component (1 RTP, 2 RTCP), address, port. Each
    /// address after the first has a local preference one lower (as
    /// upstream: 2130706175 for the second's RTP).
    pub candidates: Vec<(u8, IpAddr, u16)>,
    /// Our candidates are of type `relay` (`ICE=force-relay`), else `host`.
    pub relay: bool,
    /// `a=ice-lite`: we are an ICE-lite agent towards the receiver, or
    /// (with [`IceLines::Theirs`]) the sender is one.
    pub lite: bool,
    /// We take trickled candidates (`a=ice-options:trickle`).
    pub trickle: bool,
    /// We do RFC 8445 ICE (`a=ice-options:ice2`).
    pub ice2: bool,
}

/// Whose ICE a section written with ICE carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IceLines {
    /// Ours: ICE ends here, with these credentials.
    Ours {
        /// `a=ice-ufrag`.
        ufrag: String,
        /// `a=ice-pwd`.
        pwd: String,
    },
    /// The sender's (`ICE=optional`/`force-relay` between two ICE parties,
    /// as upstream's passthrough): its credentials and candidates pass
    /// (`relay` ones not with `force-relay`) and ours join them at a lower
    /// priority; the parties check each other end to end.
    Theirs,
}

/// A candidate's priority (RFC 8445 §5.1.2.1).
fn priority(type_pref: u32, local_pref: u32, component: u8) -> u32 {
    (type_pref << 24) | (local_pref << 8) | (256 - u32::from(component))
}

/// RFC 8445's recommended type preferences.
const HOST_PREF: u32 = 126;
const RELAY_PREF: u32 = 0;

/// One `a=candidate` value's component, priority and type.
fn candidate_fields(v: &str) -> Option<(&str, u32, &str)> {
    let f: Vec<&str> = v.split_ascii_whitespace().collect();
    match f.as_slice() {
        [_, component, _, prio, _, _, "typ", kind, ..] => {
            Some((component, prio.parse().ok()?, kind))
        }
        _ => None,
    }
}

/// The type and local preference of our candidates among the sender's
/// (passthrough): one type preference below its lowest candidate of our
/// type on component 1, local preference 0. That is upstream's value when
/// the sender uses the usual local preference (65535: a host candidate
/// gets 2097152255); with any other, upstream's ends up above the
/// sender's candidate, ours always below it ("a low-priority candidate").
/// Without such a candidate, the type's preference and 65535.
fn below_theirs(theirs: &[&str], relay: bool) -> (u32, u32) {
    let (kind, pref) = if relay {
        ("relay", RELAY_PREF)
    } else {
        ("host", HOST_PREF)
    };
    theirs
        .iter()
        .filter_map(|v| candidate_fields(v))
        .filter(|&(component, _, k)| component == "1" && k == kind)
        .map(|(_, prio, _)| prio)
        .min()
        .map_or((pref, 65535), |lowest| {
            ((lowest >> 24).saturating_sub(1), 0)
        })
}

/// A candidate's foundation: 16 alphanumerics standing for the address
/// (equal for candidates of one base, RFC 8445 §5.1.1.3), as upstream's.
fn foundation(addr: IpAddr) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    // FNV-1a: stable across runs, unlike the standard hasher.
    let bytes = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..16)
        .map(|i| {
            let x = h.rotate_left(i * 4) ^ (u64::from(i) * 0x9e37_79b9);
            CHARS[(x % CHARS.len() as u64) as usize] as char
        })
        .collect()
}

fn write_ice(out: &mut String, ice: &IceOut, m: &Media, session: &[Attribute]) {
    let mut theirs_end = false;
    let (type_pref, local_pref) = match &ice.lines {
        IceLines::Ours { ufrag, pwd } => {
            let _ = write!(out, "a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n");
            match (ice.trickle, ice.ice2) {
                (true, true) => out.push_str("a=ice-options:trickle ice2\r\n"),
                (true, false) => out.push_str("a=ice-options:trickle\r\n"),
                (false, true) => out.push_str("a=ice-options:ice2\r\n"),
                (false, false) => {}
            }
            (if ice.relay { RELAY_PREF } else { HOST_PREF }, 65535)
        }
        IceLines::Theirs => {
            // The section's own lines, else the session's (written here:
            // session-level ICE lines are not passed).
            let own = |name: &str| {
                m.attributes
                    .iter()
                    .find(|a| a.name == name)
                    .or_else(|| session.iter().find(|a| a.name == name))
            };
            for name in ["ice-ufrag", "ice-pwd", "ice-options", "ice-pacing"] {
                if let Some(a) = own(name) {
                    attr_line(out, a);
                }
            }
            let candidates: Vec<&str> = m
                .attributes
                .iter()
                .filter(|a| a.name == "candidate")
                .filter_map(|a| a.value.as_deref())
                .collect();
            let passed = candidates
                .iter()
                .filter(|v| !ice.relay || candidate_fields(v).is_none_or(|(_, _, k)| k != "relay"));
            for c in passed {
                let _ = write!(out, "a=candidate:{c}\r\n");
            }
            theirs_end = m.attributes.iter().any(|a| a.name == "end-of-candidates");
            // Below the sender's relay candidates too, though they are
            // left out (as upstream).
            below_theirs(&candidates, ice.relay)
        }
    };
    let mut addrs: Vec<IpAddr> = Vec::new();
    for &(component, addr, port) in &ice.candidates {
        let rank = match addrs.iter().position(|&a| a == addr) {
            Some(r) => r,
            None => {
                addrs.push(addr);
                addrs.len() - 1
            }
        };
        let local_pref = local_pref.saturating_sub(rank as u32);
        let _ = write!(
            out,
            "a=candidate:{} {component} UDP {} {addr} {port} typ ",
            foundation(addr),
            priority(type_pref, local_pref, component)
        );
        match ice.relay {
            // RFC 8839 §5.1: raddr/rport on every other type; ours is its
            // own base.
            true => {
                let _ = write!(out, "relay raddr {addr} rport {port}\r\n");
            }
            false => out.push_str("host\r\n"),
        }
    }
    if theirs_end || matches!(ice.lines, IceLines::Ours { .. }) {
        out.push_str("a=end-of-candidates\r\n");
    }
}

const ICE: &[&str] = &[
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
    "ice-pacing",
    "candidate",
    "end-of-candidates",
    "remote-candidates",
];
const DIRECTIONS: &[&str] = &["sendrecv", "sendonly", "recvonly", "inactive"];
/// Attributes written in a fixed slot instead of passing through.
const SLOTTED: &[&str] = &[
    "mid",
    "label",
    "rtpmap",
    "fmtp",
    "rtcp-fb",
    "extmap",
    "rtcp",
    "rtcp-mux",
    "crypto",
    "setup",
    "fingerprint",
    "tls-id",
    "ptime",
    "maxptime",
    "k=",
];

fn addr_type(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

fn attr_line(out: &mut String, a: &Attribute) {
    match &a.value {
        Some(v) => {
            let _ = write!(out, "a={}:{}\r\n", a.name, v);
        }
        None => {
            let _ = write!(out, "a={}\r\n", a.name);
        }
    }
}

/// Writes `session` with the caller's decisions applied. `media` has one entry
/// per media section of `session`, in order.
pub fn write(session: &Session, s: &SessionOut, media: &[MediaOut]) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    let o = &s.origin;
    let _ = write!(
        out,
        "v=0\r\no={} {} {} {} {} {}\r\ns={}\r\n",
        o.username, o.session_id, o.version, o.net_type, o.addr_type, o.address, s.name
    );
    for (ty, v) in &session.info {
        let _ = write!(out, "{ty}={v}\r\n");
    }
    for b in &session.bandwidth {
        let _ = write!(out, "b={b}\r\n");
    }
    if session.timing.is_empty() {
        out.push_str("t=0 0\r\n");
    }
    for (ty, v) in &session.timing {
        let _ = write!(out, "{ty}={v}\r\n");
    }
    for a in session.attributes.iter().filter(|a| a.name == "k=") {
        let _ = write!(out, "k={}\r\n", a.value.as_deref().unwrap_or(""));
    }
    for a in &session.attributes {
        let n = a.name.as_str();
        if ICE.contains(&n) || DIRECTIONS.contains(&n) || n == "k=" {
            continue;
        }
        attr_line(&mut out, a);
    }
    // One choice per party (signalling keeps its sections alike).
    if media.iter().any(|m| m.ice.as_ref().is_some_and(|i| i.lite)) {
        out.push_str("a=ice-lite\r\n");
    }
    for (m, mo) in session.media.iter().zip(media) {
        write_media(&mut out, m, mo, &session.attributes);
    }
    out.into_bytes()
}

fn write_media(out: &mut String, m: &Media, mo: &MediaOut, session: &[Attribute]) {
    let _ = write!(out, "m={} {}", m.kind, mo.port);
    if let Some(c) = m.port_count.filter(|_| mo.port != 0) {
        let _ = write!(out, "/{c}");
    }
    let formats = if m.is_rtp() {
        payload_types(m)
    } else {
        m.formats.iter().map(String::as_str).collect()
    };
    let _ = write!(out, " {}", m.protocol);
    for f in formats {
        let _ = write!(out, " {f}");
    }
    out.push_str("\r\n");
    // RFC 9143's `bundle-only` section has port 0 but is not rejected.
    if mo.port == 0 && !mo.passthrough && !m.has_attr("bundle-only") {
        // A rejected section: the m= line and an address, nothing else
        // (upstream's layout; its attributes would describe nothing).
        let _ = write!(out, "c=IN {} {}\r\n", addr_type(mo.address), mo.address);
        return;
    }
    if mo.passthrough {
        write_passthrough(out, m, mo);
        return;
    }
    if let Some(i) = &m.info {
        let _ = write!(out, "i={i}\r\n");
    }
    let _ = write!(out, "c=IN {} {}\r\n", addr_type(mo.address), mo.address);
    for b in &m.bandwidth {
        let _ = write!(out, "b={b}\r\n");
    }
    let named = |name: &'static str| m.attributes.iter().filter(move |a| a.name == name);
    for a in named("k=") {
        let _ = write!(out, "k={}\r\n", a.value.as_deref().unwrap_or(""));
    }
    for a in named("mid").chain(named("label")) {
        attr_line(out, a);
    }
    if m.is_rtp() {
        write_codecs(out, m);
    } else {
        for a in named("rtpmap").chain(named("fmtp")).chain(named("rtcp-fb")) {
            attr_line(out, a);
        }
    }
    for a in named("extmap") {
        attr_line(out, a);
    }
    for a in &m.attributes {
        let n = a.name.as_str();
        if ICE.contains(&n) || DIRECTIONS.contains(&n) || SLOTTED.contains(&n) {
            continue;
        }
        attr_line(out, a);
    }
    let _ = write!(out, "a={}\r\n", mo.direction.as_str());
    match mo.rtcp {
        RtcpOut::None => {}
        RtcpOut::Port(p) => {
            let _ = write!(out, "a=rtcp:{p}\r\n");
        }
        RtcpOut::Full(p, a) => {
            let _ = write!(out, "a=rtcp:{p} IN {} {a}\r\n", addr_type(a));
        }
    }
    if mo.rtcp_mux {
        out.push_str("a=rtcp-mux\r\n");
    }
    for name in [
        "crypto",
        "setup",
        "fingerprint",
        "tls-id",
        "ptime",
        "maxptime",
    ] {
        for a in named(name) {
            attr_line(out, a);
        }
    }
    if let Some(ice) = &mo.ice {
        write_ice(out, ice, m, session);
    }
}

/// A section this daemon does not relay: everything as received, in order.
fn write_passthrough(out: &mut String, m: &Media, mo: &MediaOut) {
    if let Some(i) = &m.info {
        let _ = write!(out, "i={i}\r\n");
    }
    let _ = write!(out, "c=IN {} {}\r\n", addr_type(mo.address), mo.address);
    for b in &m.bandwidth {
        let _ = write!(out, "b={b}\r\n");
    }
    for a in &m.attributes {
        if a.name == "k=" {
            let _ = write!(out, "k={}\r\n", a.value.as_deref().unwrap_or(""));
        } else {
            attr_line(out, a);
        }
    }
}

/// The `m=` line's payload types, each once (first position): a type listed
/// twice is one codec, and writing its lines once per listing would grow the
/// SDP with every pass through the proxy.
fn payload_types(m: &Media) -> Vec<&str> {
    let mut seen: Vec<&str> = Vec::with_capacity(m.formats.len());
    for f in &m.formats {
        if !seen.contains(&f.as_str()) {
            seen.push(f);
        }
    }
    seen
}

/// `a=rtpmap` for every payload type (synthesised for static ones), each
/// followed by its `a=fmtp` and `a=rtcp-fb` lines. Lines for payload types
/// not in the `m=` line are dropped; `a=rtcp-fb:*` is kept.
fn write_codecs(out: &mut String, m: &Media) {
    let for_pt = |name: &'static str, pt: &str| {
        m.attributes
            .iter()
            .filter(move |a| a.name == name)
            .filter_map(|a| a.value.as_deref())
            .filter(move |v| v.split_whitespace().next() == Some(pt))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for pt in payload_types(m) {
        match for_pt("rtpmap", pt).first() {
            Some(v) => {
                let _ = write!(out, "a=rtpmap:{v}\r\n");
            }
            None => {
                if let Some(enc) = static_rtpmap(pt) {
                    let _ = write!(out, "a=rtpmap:{pt} {enc}\r\n");
                }
            }
        }
        for v in for_pt("fmtp", pt) {
            let _ = write!(out, "a=fmtp:{v}\r\n");
        }
        for v in for_pt("rtcp-fb", pt) {
            let _ = write!(out, "a=rtcp-fb:{v}\r\n");
        }
    }
    for v in for_pt("rtcp-fb", "*") {
        let _ = write!(out, "a=rtcp-fb:{v}\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::parse;

    fn out_for(s: &Session, port: u16) -> Vec<u8> {
        let so = SessionOut {
            origin: s.origin.clone(),
            name: s.name.clone(),
        };
        let mo: Vec<MediaOut> = s
            .media
            .iter()
            .map(|m| MediaOut {
                port,
                address: "203.0.113.1".parse().unwrap(),
                direction: m.direction(s),
                rtcp: RtcpOut::Port(port + 1),
                rtcp_mux: false,
                passthrough: false,
                ice: None,
            })
            .collect();
        write(s, &so, &mo)
    }

    /// Upstream's "basic, forward" offer, byte for byte.
    #[test]
    fn basic_forward_offer() {
        let s = parse(b"v=0\r\no=- 1545997027 1 IN IP4 198.51.100.1\r\ns=tester\r\nt=0 0\r\nm=audio 2010 RTP/AVP 0 8\r\nc=IN IP4 198.51.100.1\r\na=sendrecv\r\n").unwrap();
        assert_eq!(
            String::from_utf8(out_for(&s, 30000)).unwrap(),
            "v=0\r\no=- 1545997027 1 IN IP4 198.51.100.1\r\ns=tester\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 8\r\nc=IN IP4 203.0.113.1\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\na=rtcp:30001\r\n"
        );
    }

    #[test]
    fn attribute_order_and_ice_removal() {
        let input = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=ice-lite\r\na=group:BUNDLE 0\r\n\
            m=audio 5000 RTP/AVP 111 0 101\r\nb=AS:64\r\na=ptime:20\r\na=x-custom:1\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10\r\n\
            a=rtcp-fb:111 transport-cc\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=rtpmap:99 dropped/8000\r\na=mid:0\r\n\
            a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=candidate:1 1 UDP 2130706431 192.0.2.1 5000 typ host\r\n\
            a=ice-ufrag:abcd\r\na=ice-pwd:secretsecretsecretsecret\r\na=rtcp:5001\r\na=recvonly\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n";
        let s = parse(input.as_bytes()).unwrap();
        let got = String::from_utf8(out_for(&s, 40000)).unwrap();
        assert_eq!(
            got,
            "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
             m=audio 40000 RTP/AVP 111 0 101\r\nc=IN IP4 203.0.113.1\r\nb=AS:64\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
             a=fmtp:111 minptime=10\r\na=rtcp-fb:111 transport-cc\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=x-custom:1\r\na=recvonly\r\n\
             a=rtcp:40001\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\na=ptime:20\r\n"
        );
    }

    /// Found by fuzzing: a payload type listed twice had its codec lines
    /// written twice, and each pass through the proxy doubled them again.
    #[test]
    fn duplicate_payload_type_written_once() {
        let input = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n\
            m=video 5000 RTP/AVP 97 0 97\r\na=rtpmap:97 H264/90000\r\na=fmtp:97 a=1\r\na=fmtp:97 b=2\r\n";
        let s = parse(input.as_bytes()).unwrap();
        let once = out_for(&s, 40000);
        assert_eq!(
            String::from_utf8(once.clone()).unwrap(),
            "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n\
             m=video 40000 RTP/AVP 97 0\r\nc=IN IP4 203.0.113.1\r\na=rtpmap:97 H264/90000\r\n\
             a=fmtp:97 a=1\r\na=fmtp:97 b=2\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\na=rtcp:40001\r\n"
        );
        assert_eq!(out_for(&parse(&once).unwrap(), 40000), once);
    }

    #[test]
    fn rtcp_forms_and_rejected_media() {
        let s = parse(b"v=0\r\no=- 1 2 IN IP6 ::1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\nc=IN IP6 2001:db8::1\r\nm=video 6000 RTP/AVP 96\r\nc=IN IP6 2001:db8::1\r\n").unwrap();
        let so = SessionOut {
            origin: s.origin.clone(),
            name: s.name.clone(),
        };
        let a6: IpAddr = "2001:db8::9".parse().unwrap();
        let out = write(
            &s,
            &so,
            &[
                MediaOut {
                    port: 0,
                    address: "::".parse().unwrap(),
                    direction: Direction::Inactive,
                    rtcp: RtcpOut::None,
                    rtcp_mux: false,
                    passthrough: false,
                    ice: None,
                },
                MediaOut {
                    port: 30000,
                    address: a6,
                    direction: Direction::SendRecv,
                    rtcp: RtcpOut::Full(30000, a6),
                    rtcp_mux: true,
                    passthrough: false,
                    ice: None,
                },
            ],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "v=0\r\no=- 1 2 IN IP6 ::1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\nc=IN IP6 ::\r\n\
             m=video 30000 RTP/AVP 96\r\nc=IN IP6 2001:db8::9\r\na=sendrecv\r\na=rtcp:30000 IN IP6 2001:db8::9\r\na=rtcp-mux\r\n"
        );
    }

    fn ice_lines(s: &Session, relay: bool) -> String {
        let so = SessionOut {
            origin: s.origin.clone(),
            name: s.name.clone(),
        };
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let mo = MediaOut {
            port: 30000,
            address: a,
            direction: Direction::SendRecv,
            rtcp: RtcpOut::None,
            rtcp_mux: true,
            passthrough: false,
            ice: Some(IceOut {
                lines: IceLines::Theirs,
                candidates: vec![(1, a, 30000)],
                relay,
                lite: false,
                trickle: false,
                ice2: false,
            }),
        };
        let out = String::from_utf8(write(s, &so, &[mo])).unwrap();
        out.lines()
            .filter(|l| l.starts_with("a=ice") || l.contains("candidate"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `ICE=optional`/`force-relay` between ICE parties: the sender's lines
    /// (session-level credentials written in the section) and ours below
    /// its candidates, at upstream's priorities (checked against 10.5).
    #[test]
    fn passthrough_ice_keeps_the_senders_lines() {
        let s = parse(
            b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:abcd\r\n\
              a=ice-pwd:0123456789012345678901234\r\nm=audio 41000 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n\
              a=candidate:1 1 UDP 2130706431 192.0.2.1 41000 typ host\r\n\
              a=candidate:2 1 UDP 16777215 198.51.100.7 40000 typ relay raddr 192.0.2.1 rport 41000\r\n\
              a=end-of-candidates\r\n",
        )
        .unwrap();
        let ours = format!(
            "a=candidate:{} 1 UDP",
            foundation("203.0.113.1".parse().unwrap())
        );
        assert_eq!(
            ice_lines(&s, false),
            format!(
                "a=ice-ufrag:abcd\na=ice-pwd:0123456789012345678901234\n\
                 a=candidate:1 1 UDP 2130706431 192.0.2.1 41000 typ host\n\
                 a=candidate:2 1 UDP 16777215 198.51.100.7 40000 typ relay raddr 192.0.2.1 rport 41000\n\
                 {ours} 2097152255 203.0.113.1 30000 typ host\na=end-of-candidates"
            )
        );
        // force-relay: its relay candidate goes; ours is below it anyway.
        assert_eq!(
            ice_lines(&s, true),
            format!(
                "a=ice-ufrag:abcd\na=ice-pwd:0123456789012345678901234\n\
                 a=candidate:1 1 UDP 2130706431 192.0.2.1 41000 typ host\n\
                 {ours} 255 203.0.113.1 30000 typ relay raddr 203.0.113.1 rport 30000\n\
                 a=end-of-candidates"
            )
        );
    }

    /// Ours stay below the sender's lowest candidate of our type, also
    /// where upstream's rule would put them above it.
    #[test]
    fn passthrough_priority_below_the_senders() {
        assert_eq!(below_theirs(&[], false), (HOST_PREF, 65535));
        assert_eq!(below_theirs(&[], true), (RELAY_PREF, 65535));
        let host = |p: u32| format!("1 1 UDP {p} 192.0.2.1 4000 typ host");
        let (a, b) = (host(priority(126, 65535, 1)), host(priority(110, 1000, 1)));
        assert_eq!(below_theirs(&[a.as_str(), b.as_str()], false), (109, 0));
        // Component 2 and other types do not count.
        let rtcp = format!("1 2 UDP {} 192.0.2.1 4001 typ host", priority(5, 0, 2));
        assert_eq!(below_theirs(&[a.as_str(), rtcp.as_str()], false), (125, 0));
        assert_eq!(below_theirs(&[a.as_str()], true), (RELAY_PREF, 65535));
        let relay = format!(
            "1 1 UDP {} 192.0.2.1 4000 typ relay raddr 192.0.2.1 rport 4000",
            priority(0, 7, 1)
        );
        assert_eq!(below_theirs(&[relay.as_str()], true), (0, 0));
    }
}
