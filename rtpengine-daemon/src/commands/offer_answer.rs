//! `offer` and `answer`: the request's keys and flags become a
//! [`call::OfferAnswer`], the SDP is parsed, and the call model writes the
//! SDP for the other party.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::error::{BAD_SDP, NO_CALL_ID, NO_FROM_TAG, NO_SDP, NO_TO_TAG, SESSION_LIMIT};
use super::put;
use super::sdp_options::{list_and_flags, sdes_options, sdp_options};
use crate::call::controls::MediaEcho;
use crate::call::offer_answer::trickle::Trickled;
use crate::call::offer_answer::{BundleOptions, IceMode, Lite, Osrtp, WebrtcOptions};
use crate::call::{self, Calls, OfferAnswer, Replace, RtcpMux, Side};
use crate::crypto::dtls::Hash;
use crate::ng::frame::NgError;
use crate::ng::request::Request;
use crate::ng::value::{Dict, Value};
use crate::relay::learning::Policy;
use crate::sdp;

/// Runs an offer or answer.
pub(super) fn run(calls: &Calls, req: &Request, side: Side) -> Result<Dict, NgError> {
    let body = req
        .get("sdp")
        .and_then(Value::as_bytes)
        .filter(|b| !b.is_empty())
        .ok_or(NO_SDP)?;
    if side == Side::Offer && req.flag("fragment") {
        return trickle(calls, req, body);
    }
    let mut oa = options(req, side, calls.settings().learning)?;
    // `--dtls-passive`, unless the request says `DTLS=active`.
    let active = req
        .str("dtls")
        .is_some_and(|d| d.eq_ignore_ascii_case("active"));
    if calls.settings().dtls_passive && !active {
        oa.webrtc.dtls_passive = true;
    }
    legacy_direction(&mut oa, &calls.interfaces);
    let sdp = sdp::parse(body).map_err(|e| {
        tracing::warn!(error = %e, "Failed to parse SDP");
        BAD_SDP
    })?;
    if side == Side::Offer {
        oa.alias_key = alias_key(req, body, &sdp);
    }
    if req.flag("loop-protect") {
        // Our own SDP coming back (a signalling loop): returned untouched,
        // no call is created or changed (upstream's rule).
        if carries_instance(&sdp, &calls.instance_id) {
            tracing::info!(call_id = %oa.call_id, "Loop protection: SDP already rewritten by this daemon, left untouched");
            let mut d = Dict::new();
            put(&mut d, "sdp", Value::Bytes(body.to_vec()));
            return Ok(d);
        }
        oa.sdp.loop_protect = Some(calls.instance_id.clone());
    }
    match calls.offer_answer(&oa, &sdp) {
        Ok(out) => {
            let mut d = Dict::new();
            put(&mut d, "sdp", Value::Bytes(out));
            Ok(d)
        }
        // A client that announced `load limit` support gets a result it can
        // act on instead of an error.
        Err(call::Error::SessionLimit) if supports_load_limit(req) => {
            let mut d = Dict::new();
            put(&mut d, "result", "load limit");
            put(&mut d, "message", SESSION_LIMIT);
            Ok(d)
        }
        Err(e) => Err(e.into()),
    }
}

/// An `offer` with `fragment`: a trickle ICE SDP fragment for a party of
/// a call. It is consumed: the reply carries no SDP (as upstream). One for
/// a call or party not known yet waits 3 s for its SDP, as upstream; where
/// it can be neither applied nor kept the reply says so in `warning`.
fn trickle(calls: &Calls, req: &Request, body: &[u8]) -> Result<Dict, NgError> {
    let call_id = req.nonempty("call-id").ok_or(NO_CALL_ID)?;
    let from_tag = req.nonempty("from-tag").ok_or(NO_FROM_TAG)?;
    let sections = sdp::parse_fragment(body).map_err(|e| {
        tracing::warn!(error = %e, "Failed to parse SDP fragment");
        BAD_SDP
    })?;
    let mut d = Dict::new();
    match calls.trickle(call_id, from_tag, sections) {
        Ok(Trickled::Applied(n)) => {
            tracing::debug!(call_id, candidates = n, "Trickle ICE fragment applied")
        }
        Ok(Trickled::Queued) => {}
        Err(e) => {
            tracing::warn!(call_id, error = %e, "Trickle ICE fragment dropped");
            put(
                &mut d,
                "warning",
                format!("Trickle ICE fragment not applied: {e}"),
            )
        }
    }
    Ok(d)
}

/// The offer's `alias key` (`SDP`, `address`/`endpoint`; `off` and
/// unknown values: none).
fn alias_key(req: &Request, body: &[u8], sdp: &sdp::Session) -> Option<call::AliasKey> {
    match req.str("alias-key")?.to_ascii_lowercase().as_str() {
        "sdp" => {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            body.hash(&mut h);
            Some(call::AliasKey::Sdp(h.finish()))
        }
        "address" | "endpoint" => {
            let m = sdp.media.first()?;
            Some(call::AliasKey::Address(std::net::SocketAddr::new(
                m.address(sdp)?,
                m.port,
            )))
        }
        _ => None,
    }
}

/// Whether `sdp` has `a=rtpengine:<id>` (session or media level).
fn carries_instance(sdp: &sdp::Session, id: &str) -> bool {
    sdp.attributes
        .iter()
        .chain(sdp.media.iter().flat_map(|m| m.attributes.iter()))
        .any(|a| a.name == "rtpengine" && a.value.as_deref() == Some(id))
}

fn supports_load_limit(req: &Request) -> bool {
    req.words("supports").iter().any(|w| w == "load-limit")
}

/// The request's options, with defaults from the daemon's settings.
fn options(
    req: &Request,
    side: Side,
    default_learning: crate::relay::learning::EndpointLearning,
) -> Result<OfferAnswer, NgError> {
    let call_id = req.nonempty("call-id").ok_or(NO_CALL_ID)?.to_owned();
    let from_tag = req.nonempty("from-tag").ok_or(NO_FROM_TAG)?.to_owned();
    let to_tag = req.nonempty("to-tag").map(str::to_owned);
    if side == Side::Answer && to_tag.is_none() {
        return Err(NO_TO_TAG);
    }
    let (replace, rtcp_mux) = replace_and_mux(req);
    // Interface names are case-sensitive (as upstream): not canonicalised.
    let direction = req.strings("direction");
    let from_interface = req
        .nonempty("from-interface")
        .map(str::to_owned)
        .or_else(|| direction.first().cloned())
        .or_else(|| req.nonempty("interface").map(str::to_owned));
    let to_interface = req
        .nonempty("to-interface")
        .map(str::to_owned)
        .or_else(|| direction.get(1).cloned())
        .or_else(|| req.nonempty("interface").map(str::to_owned));
    let ipv6 = match req
        .str("address-family")
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None => None,
        Some("IP4") => Some(false),
        Some("IP6") => Some(true),
        Some(_) => {
            tracing::warn!("Unrecognised address-family, ignored");
            None
        }
    };
    let media_address = req.nonempty("media-address").and_then(|a| a.parse().ok());
    let source_address = if req.flag("sip-source-address") {
        received_from(req)
    } else {
        None
    };
    let given: Option<crate::relay::learning::EndpointLearning> =
        req.str("endpoint-learning").and_then(|m| m.parse().ok());
    let mode = given.unwrap_or(default_learning);
    let policy = Policy {
        mode,
        strict: req.flag("strict-source"),
        handover: req.flag("media-handover"),
        asymmetric: req.flag("asymmetric"),
        nat_wait: req.flag("nat-wait"),
    };
    let tos_value = req.int("tos").ok().flatten();
    let tos = tos_value.and_then(|t| u8::try_from(t).ok());
    let tos_keep = tos_value.is_some_and(|t| t < 0);
    let mut oa = OfferAnswer {
        side,
        call_id,
        from_tag,
        to_tag,
        via_branch: req.nonempty("via-branch").map(str::to_owned),
        proxy: req.peer,
        replace,
        rtcp_mux,
        from_interface,
        to_interface,
        ipv6,
        media_address,
        source_address,
        policy,
        tos,
        tos_keep,
        learning_given: given.is_some(),
        label: req
            .nonempty("label")
            .or_else(|| req.nonempty("from-label"))
            .map(str::to_owned),
        original_sendrecv: req.flag("original-sendrecv"),
        no_rtcp_attr: req.flag("no-rtcp-attribute"),
        full_rtcp_attr: req.flag("full-rtcp-attribute"),
        port_latching: req.flag("port-latching"),
        sdp: sdp_options(req, side)?,
        alias_key: None,
        // `stop` wins over `start` (upstream).
        drop_traffic: {
            let v = req.words("drop-traffic");
            if v.iter().any(|w| w == "stop") {
                Some(false)
            } else if v.iter().any(|w| w == "start") {
                Some(true)
            } else {
                None
            }
        },
        block_dtmf: req.flag("block-dtmf"),
        sdes: sdes_options(req, side),
        recrypt: req.flag("recrypt"),
        reset: side == Side::Offer && req.flag("reset"),
        webrtc: webrtc_options(req, side),
        osrtp: osrtp_options(req),
        bundle: BundleOptions::default(),
        media_echo: match req.str("media-echo").map(str::to_ascii_lowercase) {
            None => None,
            Some(v) => match MediaEcho::parse(&v) {
                Some(e) => Some(e),
                None => {
                    tracing::warn!("Unknown 'media-echo' flag encountered: '{v}'");
                    None
                }
            },
        },
    };
    bundle_options(req, &mut oa);
    if req.flag("webrtc") {
        webrtc_preset(&mut oa);
    }
    Ok(oa)
}

/// `replace` and `rtcp-mux` from their lists and from `replace-…` /
/// `rtcp-mux-…` flags.
fn replace_and_mux(req: &Request) -> (Replace, RtcpMux) {
    let mut replace: BTreeSet<String> = req.words("replace").into_iter().collect();
    let mut mux: BTreeSet<String> = req.words("rtcp-mux").into_iter().collect();
    for f in &req.flags {
        if let Some(r) = f.strip_prefix("replace-") {
            replace.insert(r.to_owned());
        } else if let Some(r) = f.strip_prefix("rtcp-mux-") {
            mux.insert(r.to_owned());
        }
    }
    if replace.contains("session-connection") {
        tracing::info!(
            "replace: session-connection is not supported anymore (no session-level c= is written)"
        );
    }
    let r = |w: &str| replace.contains(w);
    let m = |w: &str| mux.contains(w);
    (
        Replace {
            origin: r("origin"),
            origin_full: r("origin-full"),
            session_name: r("session-name"),
            username: r("username"),
            sdp_version: r("sdp-version"),
            force_increment_sdp_version: r("force-increment-sdp-ver"),
            zero_address: r("zero-address"),
        },
        RtcpMux {
            offer: m("offer"),
            require: m("require"),
            demux: m("demux"),
            accept: m("accept"),
            reject: m("reject"),
        },
    )
}

/// The address of `received-from: [family, address]`.
/// `direction` with `internal`/`external` and no interfaces of those names:
/// upstream's legacy selectors, IPv4 and IPv6 for the receiver's side (the
/// sender's family is its SDP's).
fn legacy_direction(oa: &mut OfferAnswer, interfaces: &crate::interfaces::Interfaces) {
    let legacy = |i: &Option<String>| {
        matches!(i.as_deref(), Some("internal" | "external"))
            && interfaces.get(i.as_deref().unwrap_or_default()).is_none()
    };
    if legacy(&oa.from_interface) {
        oa.from_interface = None;
    }
    if legacy(&oa.to_interface) {
        if oa.ipv6.is_none() {
            oa.ipv6 = Some(oa.to_interface.as_deref() == Some("external"));
        }
        oa.to_interface = None;
    }
}

/// The address of `received-from`: `[family, address]`, or the same as
/// one string (`"IP4 192.0.2.1"`) as upstream also takes it.
fn received_from(req: &Request) -> Option<IpAddr> {
    match req.get("received-from") {
        Some(Value::List(l)) => l.get(1).and_then(Value::as_str)?.parse().ok(),
        Some(v) => v.as_str()?.split_whitespace().last()?.parse().ok(),
        None => None,
    }
}

/// `ICE`, `ICE-lite`, `reject ICE`, `DTLS`, `DTLS-fingerprint`,
/// `no-tls-id`. Values not done here
/// are logged (and reported in `warning` by `ng::support`).
fn webrtc_options(req: &Request, side: Side) -> WebrtcOptions {
    let mut o = WebrtcOptions::default();
    for w in req.words("ice") {
        match w.to_ascii_lowercase().as_str() {
            "remove" => o.ice = IceMode::Remove,
            "force" => o.ice = IceMode::Force,
            "default" => o.ice = IceMode::Default,
            "optional" => o.ice = IceMode::Optional,
            "force-relay" => o.ice = IceMode::ForceRelay,
            "lite" => o.lite = Some(Lite::Forward),
            "trickle" => o.trickle = true,
            "ice2" => o.ice2 = true,
            "no-lite" => o.lite = Some(Lite::Off),
            other => match other.strip_prefix("lite-").and_then(Lite::parse) {
                Some(l) => o.lite = Some(l),
                None => tracing::warn!("ICE '{other}' is not supported: ICE as by default"),
            },
        }
    }
    if let Some(v) = req.str("ice-lite") {
        match Lite::parse(v) {
            Some(l) => o.lite = Some(l),
            None => tracing::warn!("Unknown 'ICE-lite' flag encountered: '{v}'"),
        }
    }
    if side != Side::Offer {
        // Valid in offers only (as upstream).
        o.lite = None;
    }
    o.trickle |= req.flag("trickle-ice");
    if side == Side::Offer && (req.flag("reject-ice") || req.flag("ice-reject")) {
        o.ice = IceMode::Remove;
    }
    match req.str("dtls").map(str::to_ascii_lowercase).as_deref() {
        Some("off" | "no" | "disable" | "disabled") => o.dtls_off = true,
        Some("passive") => o.dtls_passive = true,
        Some("active") | None => {}
        Some(other) => tracing::warn!("Unknown 'DTLS' value '{other}'"),
    }
    o.no_tls_id = req.flag("no-tls-id");
    if let Some(h) = req.str("dtls-fingerprint") {
        o.fingerprint_hash = Hash::from_name(h);
        if o.fingerprint_hash.is_none() {
            tracing::warn!("Unknown 'DTLS-fingerprint' value '{h}'");
        }
    }
    o
}

/// The `WebRTC` flag: what upstream makes of it.
fn webrtc_preset(oa: &mut OfferAnswer) {
    oa.sdp.transport = Some("UDP/TLS/RTP/SAVPF");
    oa.webrtc.ice = IceMode::Force;
    oa.webrtc.trickle = true;
    oa.rtcp_mux.offer = true;
    oa.rtcp_mux.require = true;
    oa.no_rtcp_attr = true;
    oa.sdes.off = true;
    oa.sdp.generate_mid = true;
    oa.bundle.offer = true;
    oa.bundle.require = true;
}

/// `bundle` (list or `BUNDLE-…` flags); `offer`, `require` and `strict`
/// imply the ones before them and `generate-mid`, as upstream.
fn bundle_options(req: &Request, oa: &mut OfferAnswer) {
    for w in list_and_flags(req, "bundle") {
        let b = &mut oa.bundle;
        match w.to_ascii_lowercase().as_str() {
            "accept" => b.accept = true,
            "reject" => b.reject = true,
            "offer" => b.offer = true,
            "require" => (b.offer, b.require) = (true, true),
            "strict" => (b.offer, b.require, b.strict) = (true, true, true),
            other => {
                tracing::warn!("Unknown 'BUNDLE' flag encountered: '{other}'");
                continue;
            }
        }
        if b.offer {
            oa.sdp.generate_mid = true;
        }
    }
}

/// `OSRTP` (list or `OSRTP-…` flags): the RFC 8643 forms; the legacy ones
/// are reported by `ng::support`.
fn osrtp_options(req: &Request) -> Osrtp {
    let mut o = Osrtp::default();
    for w in list_and_flags(req, "osrtp") {
        match w.to_ascii_lowercase().as_str() {
            "offer" | "offer-rfc" => o.offer = true,
            "accept-rfc" => o.accept = true,
            "offer-legacy" => o.offer_legacy = true,
            "accept-legacy" => o.accept_legacy = true,
            "accept" => (o.accept, o.accept_legacy) = (true, true),
            other => tracing::warn!("OSRTP '{other}' is not supported"),
        }
    }
    o
}
