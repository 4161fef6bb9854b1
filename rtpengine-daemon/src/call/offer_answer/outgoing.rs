//! The sender's SDP as it goes on to the receiver, before addresses and
//! ports: codecs narrowed (`codec`, the answer to what was offered,
//! `single codec`), the transport protocol, `a=ptime`, stripped header
//! extensions, and the sections `sdp-media-remove` leaves out. What a
//! later message needs (the codecs sent, the ptimes) is kept on the media.

use std::borrow::Cow;

use super::{OfferAnswer, Side};
use crate::call::Call;
use crate::crypto::dtls::Identity;
use crate::sdp::attr_ops::{AttrOps, MEDIA_TYPES};
use crate::sdp::codecs::{self, CodecOps, Outcome};
use crate::sdp::Attribute;
use crate::sdp::{Media, Session};

/// The transport protocols this daemon switches between: plain RTP,
/// SDES-keyed SRTP (terminated here when one side is plain or the keys
/// differ) and DTLS-keyed SRTP (terminated here when one side is not DTLS).
pub const SWITCHABLE: &[&str] = &[
    "RTP/AVP",
    "RTP/AVPF",
    "RTP/SAVP",
    "RTP/SAVPF",
    "UDP/TLS/RTP/SAVP",
    "UDP/TLS/RTP/SAVPF",
];

/// A party's protocol as upstream remembers it (see
/// [`Negotiated::protocol_last`](crate::call::Negotiated::protocol_last)):
/// the profile, and whether it is OSRTP (a plain profile with keys, RFC
/// 8643), which upstream treats as a protocol of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastProtocol {
    pub name: String,
    pub osrtp: bool,
}

impl LastProtocol {
    /// The protocol of section `m` (`session`: its session's attributes).
    fn of(m: &Media, session: &[Attribute]) -> LastProtocol {
        LastProtocol {
            name: m.protocol.clone(),
            osrtp: super::sdes::is_plain(&m.protocol)
                && (m.has_attr("crypto") || super::webrtc::has_fingerprint(m, session)),
        }
    }
}

/// The options that shape the SDP written onwards, beyond addresses and ports.
#[derive(Debug, Clone, Default)]
pub struct SdpOptions {
    /// `codec` strip/except/offer/mask/consume (offer only).
    pub codecs: CodecOps,
    /// `allow no codec media`: a media left without codecs is rejected.
    pub allow_no_codec_media: bool,
    /// `single codec` (answer): only the first codec stays.
    pub single_codec: bool,
    /// `static codecs` (offer): a re-offer writes the codecs written before.
    pub static_codecs: bool,
    /// `reuse codecs` / `no codec renegotiation`: a re-offer keeps the
    /// codec settled on first.
    pub reuse_codecs: bool,
    /// `sdp-attr`.
    pub attrs: AttrOps,
    /// `sdp-media-remove`: media types (lower case, or `other`).
    pub media_remove: Vec<String>,
    /// `ptime` (offer): `a=ptime` towards the answerer.
    pub ptime: Option<u32>,
    /// `ptime-reverse` (offer): `a=ptime` in the answer towards the offerer.
    pub ptime_reverse: Option<u32>,
    /// `transport-protocol`: one of [`SWITCHABLE`].
    pub transport: Option<&'static str>,
    /// `transport-protocol: accept` (answer): keep the answerer's protocol.
    pub accept_transport: bool,
    /// `extmap: strip` (and `strip extmap`): extension names, or `all`.
    pub extmap_strip: Vec<String>,
    /// `extmap: mask`: extension names, or `all`.
    pub extmap_mask: Vec<String>,
    /// `loop protect`: write `a=rtpengine:<instance id>` at session level.
    pub loop_protect: Option<String>,
    /// `generate mid`: sections without `a=mid` get one (their index).
    pub generate_mid: bool,
}

impl OfferAnswer {
    /// An answer to an offer that `sdp-media-remove` narrowed has fewer
    /// sections than the call: the left-out ones come back as rejected
    /// sections, so indexes line up and the offerer gets a zeroed section
    /// for each (RFC 3264 wants every offered section answered).
    pub(super) fn with_removed<'a>(
        &self,
        call: &Call,
        snd: usize,
        sdp: &'a Session,
    ) -> Cow<'a, Session> {
        let medias = &call.parties[snd].medias;
        let removed = medias.iter().filter(|m| m.negotiated.removed).count();
        if self.side != Side::Answer || removed == 0 || sdp.media.len() + removed != medias.len() {
            return Cow::Borrowed(sdp);
        }
        let mut full = sdp.clone();
        let mut answered = sdp.media.iter();
        full.media = medias
            .iter()
            .map(|pm| match pm.negotiated.removed {
                true => placeholder(pm),
                // Counted above: there is one answered section per kept one.
                false => answered.next().cloned().unwrap_or_else(|| placeholder(pm)),
            })
            .collect();
        Cow::Owned(full)
    }

    /// The sender's SDP with this request's codec, protocol and attribute
    /// options applied, for the receiver; remembers on the media what the
    /// answer will need.
    pub(super) fn outgoing(
        &self,
        call: &mut Call,
        snd: usize,
        rcv: usize,
        sdp: &Session,
        id: &Identity,
    ) -> Session {
        let o = &self.sdp;
        let mut out = sdp.clone();
        // DTLS and ICE attributes may stand at session level.
        let session_attrs = out.attributes.clone();
        // RFC 8285 IDs: 1-14 and 16-255; master drops other a=extmap lines.
        out.attributes.retain(valid_extmap);
        for m in &mut out.media {
            m.attributes.retain(valid_extmap);
        }
        if let Some(id) = &o.loop_protect {
            // First among the session attributes, as upstream writes it.
            out.attributes.insert(
                0,
                crate::sdp::Attribute {
                    name: "rtpengine".to_owned(),
                    value: Some(id.clone()),
                },
            );
        }
        for (i, m) in out.media.iter_mut().enumerate() {
            let kind = m.kind.to_ascii_lowercase();
            // Upstream's ptime: one per party, set by either party's SDP
            // (unless overridden) and written in everything sent to it.
            let own_ptime = m
                .attr("ptime")
                .and_then(|a| a.value.as_deref())
                .and_then(leading_int)
                .filter(|&p| p > 0);
            let (fwd, rev) = match self.side {
                Side::Offer => (o.ptime, o.ptime_reverse),
                Side::Answer => (None, None),
            };
            set_ptime(
                &mut call.parties[snd].medias[i].negotiated,
                own_ptime,
                rev,
                fwd,
            );
            set_ptime(
                &mut call.parties[rcv].medias[i].negotiated,
                own_ptime,
                fwd,
                rev,
            );
            let neg = &mut call.parties[snd].medias[i].negotiated;
            neg.codecs_own = codecs::codecs(m);
            neg.rtcp_fb = m.has_attr("rtcp-fb");
            neg.protocol_own = Some(m.protocol.clone());
            // Upstream's rule: a sender that keeps its protocol leaves the
            // receiver the one it last had with us.
            let own = LastProtocol::of(m, &session_attrs);
            let kept = neg.protocol_last.as_ref() == Some(&own);
            // A sender whose leg is SRTP with us through OSRTP, and stays
            // OSRTP: its lines are its keys, and the answer keeps it SRTP.
            let osrtp_from_sender = kept && own.osrtp && neg.srtp;
            neg.protocol_last = Some(own);
            neg.mid = m.attr("mid").and_then(|a| a.value.clone());
            match self.side {
                Side::Offer => {
                    let removed = o.media_remove.iter().any(|t| {
                        *t == kind || (t == "other" && !MEDIA_TYPES.contains(&kind.as_str()))
                    });
                    let neg = &mut call.parties[rcv].medias[i].negotiated;
                    neg.removed = removed;
                    if removed {
                        // Its payload types stand in the rejected section
                        // the answer gets back.
                        neg.codecs_sent = codecs::codecs(m);
                        m.port = 0;
                        continue;
                    }
                    let keep = match kept {
                        true => call.parties[rcv].medias[i].negotiated.protocol_last.clone(),
                        false => None,
                    };
                    self.offer_media(
                        call,
                        (snd, rcv, i),
                        m,
                        (&session_attrs, id),
                        (keep, osrtp_from_sender),
                    );
                    // The receiver hears its own mid back once it has one
                    // (upstream's media_id): a browser re-offered by the
                    // SIP side finds its sections by it.
                    if let Some(mid) = &call.parties[rcv].medias[i].negotiated.mid {
                        m.set_attr("mid", Some(mid.clone()));
                    }
                }
                Side::Answer => {
                    if call.parties[snd].medias[i].negotiated.removed {
                        continue;
                    }
                    self.answer_media(call, (snd, rcv, i), m, (&session_attrs, id));
                }
            }
            if o.generate_mid && !m.has_attr("mid") {
                m.attributes.push(Attribute {
                    name: "mid".to_owned(),
                    value: Some(i.to_string()),
                });
            }
            let (ids, masked) = extmap_taken(m, &o.extmap_strip, &o.extmap_mask);
            let neg = &mut call.parties[snd].medias[i].negotiated;
            neg.ext_strip_ids = ids;
            if self.side == Side::Offer {
                neg.ext_masked = masked;
            }
            strip_extmap(m, &o.extmap_strip);
            strip_extmap(m, &o.extmap_mask);
            let neg = &mut call.parties[rcv].medias[i].negotiated;
            // RTP sections only, as upstream writes it.
            match neg.ptime.filter(|_| m.is_rtp()) {
                Some(p) => m.set_attr("ptime", Some(p.to_string())),
                None if m.is_rtp() => m.attributes.retain(|a| a.name != "ptime"),
                None => {}
            }
            neg.protocol_sent = Some(m.protocol.clone());
            // Media-level only: the sender's session-level DTLS lines are
            // not what the receiver gets (they are stripped below).
            neg.protocol_last = Some(LastProtocol::of(m, &[]));
        }
        // Session-level DTLS attributes of a sender whose DTLS stops here.
        let terminated = |p: usize| {
            call.parties[p]
                .medias
                .iter()
                .any(|m| m.negotiated.dtls.is_some())
        };
        // Nor do an SRTP sender's mean anything to a plain receiver.
        let to_plain = out.media.iter().enumerate().any(|(i, m)| {
            super::sdes::is_plain(&m.protocol)
                && call.parties[snd]
                    .medias
                    .get(i)
                    .is_some_and(|pm| !super::sdes::is_plain(&pm.protocol))
        });
        // Nor where the receiver gets our DTLS (beside SDES, or kept).
        let ours_to_rcv = call.parties[rcv]
            .medias
            .iter()
            .any(|m| m.negotiated.dtls_offered || m.negotiated.dtls.is_some());
        if terminated(snd) || to_plain || ours_to_rcv {
            out.attributes
                .retain(|a| !super::webrtc::DTLS_ATTRS.contains(&a.name.as_str()));
        }
        self.bundle_out(call, snd, rcv, &mut out);
        out
    }

    fn offer_media(
        &self,
        call: &mut Call,
        (snd, rcv, i): (usize, usize, usize),
        m: &mut Media,
        dtls: (&[Attribute], &Identity),
        (keep, osrtp_from_sender): (Option<LastProtocol>, bool),
    ) {
        let o = &self.sdp;
        if !m.is_rtp() {
            return;
        }
        let sender_protocol = m.protocol.clone();
        // The receiver keeps the protocol it last had with us (the sender
        // kept its own), as upstream: without `transport-protocol`, a
        // re-INVITE of either side keeps a bridge's two protocols. A
        // receiver whose leg is SRTP with us through OSRTP is offered
        // OSRTP again (upstream remembers OSRTP as a protocol).
        let mut osrtp_to_receiver = false;
        if let Some(k) = keep.filter(|k| {
            SWITCHABLE.contains(&k.name.as_str()) && SWITCHABLE.contains(&m.protocol.as_str())
        }) {
            osrtp_to_receiver = k.osrtp && call.parties[rcv].medias[i].negotiated.srtp;
            m.protocol = k.name;
        }
        if let Some(t) = o
            .transport
            .filter(|_| SWITCHABLE.contains(&m.protocol.as_str()))
        {
            m.protocol = t.to_owned();
            osrtp_to_receiver = false;
        }
        // An `RTP/SAVP(F)` offerer that offers DTLS (`a=fingerprint`) is
        // keyed by DTLS here, also when it offers `a=crypto` too (unless
        // `SDES-prefer`), as upstream, towards a receiver that does not
        // get the same protocol (plain, or `UDP/TLS`), and always once it
        // is keyed so (its re-offers): its lines go nowhere. Between two
        // `RTP/SAVP(F)` parties its DTLS passes through as before.
        let fingerprint = super::webrtc::has_fingerprint(m, dtls.0);
        let keyed_here = call.parties[snd].medias[i].negotiated.dtls.is_some();
        let savp_dtls = super::sdes::is_sdes(&sender_protocol)
            && (!super::sdes::is_sdes(&m.protocol) || keyed_here)
            && !self.webrtc.dtls_off
            && fingerprint
            && !(self.sdes.prefer && m.has_attr("crypto"));
        if savp_dtls {
            m.attributes.retain(|a| a.name != "crypto");
        }
        let sender_srtp = super::sdes::is_sdes(&sender_protocol) && !savp_dtls;
        self.offer_sdes(
            call,
            (snd, rcv, i),
            m,
            sender_srtp,
            (osrtp_from_sender, osrtp_to_receiver),
        );
        self.webrtc_media(call, (snd, rcv, i), m, dtls, (&sender_protocol, savp_dtls));
        let sent = &call.parties[rcv].medias[i].negotiated.codecs_sent;
        if o.static_codecs && !sent.is_empty() {
            m.formats = sent.iter().map(|c| c.pt.clone()).collect();
        } else {
            match codecs::apply_offer(m, &o.codecs, o.allow_no_codec_media) {
                Outcome::Kept => {}
                Outcome::Empty => {
                    tracing::info!(
                        media = i,
                        "No codecs left: media rejected (allow no codec media)"
                    );
                }
                Outcome::Restored => tracing::warn!(
                    media = i,
                    "Usage error: list of codecs empty, restoring the original list of codecs"
                ),
            }
        }
        if o.reuse_codecs {
            if let Some(p) = &call.parties[snd].medias[i].negotiated.preferred {
                codecs::prefer(m, p);
            }
        }
        call.parties[rcv].medias[i].negotiated.codecs_sent = codecs::codecs(m);
    }

    fn answer_media(
        &self,
        call: &mut Call,
        (snd, rcv, i): (usize, usize, usize),
        m: &mut Media,
        dtls: (&[Attribute], &Identity),
    ) {
        let o = &self.sdp;
        if !m.is_rtp() {
            return;
        }
        let offered = &call.parties[snd].medias[i].negotiated.codecs_sent;
        codecs::narrow_answer(m, offered, o.single_codec);
        // What this exchange settled on, for `reuse codecs` later.
        let settled = codecs::codecs(m).into_iter().find(|c| !c.supplemental());
        call.parties[snd].medias[i].negotiated.preferred = settled.clone();
        call.parties[rcv].medias[i].negotiated.preferred = settled;
        let offerer = &call.parties[rcv].medias[i];
        // The offerer hears back the protocol it offered, unless the answer
        // sets one or `accept`s the answerer's (upstream's rule).
        let protocol = match o.transport {
            Some(t) => Some(t),
            None if o.accept_transport => None,
            None => SWITCHABLE.iter().find(|p| **p == offerer.protocol).copied(),
        };
        // Offered our DTLS beside our SDES lines, an `RTP/SAVP(F)`
        // answerer with `a=fingerprint` took DTLS (preferred, as upstream).
        let chose_dtls = super::sdes::is_sdes(&m.protocol)
            && call.parties[snd].medias[i].negotiated.dtls_offered
            && !self.webrtc.dtls_off
            && super::webrtc::has_fingerprint(m, dtls.0);
        if chose_dtls {
            m.attributes.retain(|a| a.name != "crypto");
        }
        let sender_srtp = super::sdes::is_sdes(&m.protocol) && !chose_dtls;
        let sender_protocol = m.protocol.clone();
        if let Some(p) = protocol.filter(|_| SWITCHABLE.contains(&m.protocol.as_str())) {
            m.protocol = p.to_owned();
        }
        self.answer_sdes(call, (snd, rcv, i), m, sender_srtp);
        self.webrtc_media(call, (snd, rcv, i), m, dtls, (&sender_protocol, chose_dtls));
        let offerer = &call.parties[rcv].medias[i];
        // The offerer hears its own mid back (the answerer's may be one a
        // bundle of its own gave it, or none).
        if let Some(mid) = &offerer.negotiated.mid {
            m.set_attr("mid", Some(mid.clone()));
        }
        // Masked extensions stay accepted from the offerer: its answer
        // lists them again.
        for a in &offerer.negotiated.ext_masked {
            if !m.attributes.contains(a) {
                m.attributes.push(a.clone());
            }
        }
    }
}

/// The number an attribute value starts with (`20`, `20.0`, `30 `), as
/// upstream reads `a=ptime`.
fn leading_int(v: &str) -> Option<u32> {
    let v = v.trim_start();
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    v[..end].parse().ok()
}

/// Upstream's `media_set_ptime` for one party: the SDP's own ptime unless
/// overridden; `set` fixes it; `fixes` (the other direction's option)
/// only freezes it.
fn set_ptime(
    neg: &mut crate::call::Negotiated,
    own: Option<u32>,
    set: Option<u32>,
    fixes: Option<u32>,
) {
    if let Some(p) = own.filter(|_| !neg.ptime_override) {
        neg.ptime = Some(p);
    }
    if let Some(p) = set {
        neg.ptime = Some(p);
        neg.ptime_override = true;
    }
    if fixes.is_some() {
        neg.ptime_override = true;
    }
}

/// A rejected section standing in for one the answer does not have: the
/// type, protocol and payload types of the offered one.
fn placeholder(pm: &crate::call::PartyMedia) -> Media {
    let mut formats: Vec<String> = pm
        .negotiated
        .codecs_sent
        .iter()
        .map(|c| c.pt.clone())
        .collect();
    if formats.is_empty() {
        formats.push("0".to_owned());
    }
    Media {
        kind: pm.kind.clone(),
        port: 0,
        port_count: None,
        protocol: pm.protocol.clone(),
        formats,
        info: None,
        connection: None,
        bandwidth: Vec::new(),
        attributes: Vec::new(),
    }
}

/// Whether an attribute is not an `a=extmap` with an invalid ID (0, 15,
/// 256 and above, or not a number), as master's parser decides.
fn valid_extmap(a: &crate::sdp::Attribute) -> bool {
    if a.name != "extmap" {
        return true;
    }
    let digits: String = a
        .value
        .as_deref()
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    matches!(digits.parse::<u32>(), Ok(1..=14 | 16..=255))
}

/// The IDs of `m`'s extensions named in `strip` or `mask` (or all), and the
/// `a=extmap` lines named in `mask`.
fn extmap_taken(
    m: &Media,
    strip: &[String],
    mask: &[String],
) -> (Vec<u8>, Vec<crate::sdp::Attribute>) {
    let named = |list: &[String], uri: &str| {
        list.iter()
            .any(|n| n.eq_ignore_ascii_case("all") || n == uri)
    };
    let mut ids = Vec::new();
    let mut masked = Vec::new();
    for a in m.attributes.iter().filter(|a| a.name == "extmap") {
        let mut words = a.value.as_deref().unwrap_or_default().split_whitespace();
        let id = words
            .next()
            .and_then(|i| i.split('/').next())
            .and_then(|i| i.parse::<u8>().ok());
        let uri = words.next().unwrap_or_default();
        let Some(id) = id.filter(|&i| i > 0) else {
            continue;
        };
        if named(strip, uri) || named(mask, uri) {
            ids.push(id);
        }
        if named(mask, uri) {
            masked.push(a.clone());
        }
    }
    (ids, masked)
}

/// Removes `a=extmap` lines naming one of `names` (or all with `all`).
fn strip_extmap(m: &mut Media, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let all = names.iter().any(|n| n.eq_ignore_ascii_case("all"));
    m.attributes.retain(|a| {
        if a.name != "extmap" {
            return true;
        }
        let uri = a
            .value
            .as_deref()
            .and_then(|v| v.split_whitespace().nth(1))
            .unwrap_or_default();
        !(all || names.iter().any(|n| n == uri))
    });
}
