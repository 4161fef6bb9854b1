//! Legacy ("best effort") OSRTP, as upstream's `OSRTP=offer-legacy` and
//! `accept-legacy`: a media section offered twice in a row, once as plain
//! RTP and once as SRTP, the answerer keeping one and rejecting the other.
//!
//! The call model has one section per medium, so such an SDP is collapsed
//! on the way in (the SRTP twin is kept unless it is the rejected one) and
//! each party is written the twins it expects on the way out: a party that
//! sent twins gets the dropped one back as a rejected section in its
//! place; a receiver offered legacy SRTP gets a plain twin before each SRTP
//! section, and its answer is collapsed without the option (upstream needs
//! `accept-legacy` in every message for that).

use std::borrow::Cow;

use super::{OfferAnswer, Side};
use crate::call::Call;
use crate::sdp::{Media, MediaOut, Session};

/// A section's twin that the party sent and the call model dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Twin {
    /// Before the kept section (else after it).
    pub before: bool,
    /// Its protocol.
    pub protocol: String,
}

/// The plain protocol of an SRTP one (SDES or DTLS, as upstream pairs
/// them).
fn plain_of(protocol: &str) -> Option<&'static str> {
    match protocol {
        "RTP/SAVP" | "UDP/TLS/RTP/SAVP" => Some("RTP/AVP"),
        "RTP/SAVPF" | "UDP/TLS/RTP/SAVPF" => Some("RTP/AVPF"),
        _ => None,
    }
}

fn is_srtp(m: &Media) -> bool {
    plain_of(&m.protocol).is_some()
}

fn is_plain(m: &Media) -> bool {
    matches!(m.protocol.as_str(), "RTP/AVP" | "RTP/AVPF")
}

/// `sdp` with each pair of twins collapsed into one section (upstream's
/// rules: the SRTP twin unless it is rejected and the plain one is not),
/// and per kept section the twin that went.
fn collapse(sdp: &Session) -> (Session, Vec<Option<Twin>>) {
    let mut out = sdp.clone();
    out.media.clear();
    let mut twins: Vec<Option<Twin>> = Vec::new();
    for m in &sdp.media {
        let prev = out.media.last();
        let paired = prev.is_some_and(|p| {
            twins.last().is_some_and(Option::is_none)
                && p.kind.eq_ignore_ascii_case(&m.kind)
                && ((is_plain(p) && is_srtp(m)) || (is_srtp(p) && is_plain(m)))
        });
        let Some(prev) = prev.filter(|_| paired).cloned() else {
            out.media.push(m.clone());
            twins.push(None);
            continue;
        };
        let twin = |gone: &Media, before: bool| {
            Some(Twin {
                before,
                protocol: gone.protocol.clone(),
            })
        };
        let last = out.media.len() - 1;
        match (is_plain(&prev), prev.port != 0, m.port != 0) {
            // Plain, then SRTP offered: the SRTP one stays.
            (true, _, true) => {
                out.media[last] = m.clone();
                twins[last] = twin(&prev, true);
            }
            // Plain offered, SRTP rejected: the plain one stays.
            (true, true, false) => twins[last] = twin(m, false),
            // SRTP offered, then plain: the SRTP one stays.
            (false, true, _) => twins[last] = twin(m, false),
            // SRTP rejected, then plain: the plain one stays.
            (false, false, _) => {
                out.media[last] = m.clone();
                twins[last] = twin(&prev, true);
            }
            // Both rejected: one rejected section (the plain one).
            (true, false, false) => twins[last] = twin(m, false),
        }
    }
    (out, twins)
}

impl OfferAnswer {
    /// The sender's SDP with legacy OSRTP twins collapsed, with
    /// `accept-legacy`, or in an answer to our legacy offer, or from a
    /// party that sent twins before; and per kept section the twin that
    /// went (`None`: not collapsed at all).
    pub(super) fn collapse_legacy<'a>(
        &self,
        call: &Call,
        snd: usize,
        sdp: &'a Session,
    ) -> (Cow<'a, Session>, Option<Vec<Option<Twin>>>) {
        let medias = &call.parties[snd].medias;
        let offered =
            self.side == Side::Answer && medias.iter().any(|m| m.negotiated.legacy_offered);
        let known = medias.iter().any(|m| m.negotiated.twin.is_some());
        if !(self.osrtp.accept_legacy || offered || known) {
            return (Cow::Borrowed(sdp), None);
        }
        let (collapsed, twins) = collapse(sdp);
        match collapsed.media.len() == sdp.media.len() {
            true => (Cow::Borrowed(sdp), Some(twins)),
            false => (Cow::Owned(collapsed), Some(twins)),
        }
    }

    /// Remembers on the sender's sections (once they exist) the twins that
    /// went: the SDP written to it restores them. An answer to an offer
    /// `sdp-media-remove` narrowed lacks the removed sections: they have
    /// no twin.
    pub(super) fn note_twins(&self, call: &mut Call, snd: usize, twins: Option<Vec<Option<Twin>>>) {
        let Some(twins) = twins else {
            return;
        };
        let medias = &mut call.parties[snd].medias;
        let removed = medias.iter().filter(|m| m.negotiated.removed).count();
        let narrowed =
            self.side == Side::Answer && removed > 0 && twins.len() + removed == medias.len();
        let mut twins = twins.into_iter();
        for m in medias.iter_mut() {
            let twin = match narrowed && m.negotiated.removed {
                true => None,
                false => twins.next().flatten(),
            };
            m.negotiated.twin = twin;
            m.negotiated.legacy_offered = false;
        }
    }

    /// The twins of the SDP written to `rcv`: the ones it sent back as
    /// rejected sections, and with `offer-legacy` in an offer a plain twin
    /// (same port, no keys) before each SRTP section. `index`: the call's
    /// section of each one written (`sdp-media-remove` may have left some
    /// out).
    pub(super) fn expand_legacy(
        &self,
        call: &mut Call,
        rcv: usize,
        index: &[usize],
        sdp: &mut Cow<'_, Session>,
        media_out: &mut Vec<MediaOut>,
    ) {
        let offer_legacy = self.side == Side::Offer && self.osrtp.offer_legacy;
        let medias = &mut call.parties[rcv].medias;
        let any = medias.iter().any(|m| m.negotiated.twin.is_some());
        if !any && !offer_legacy {
            return;
        }
        let mut out_media = Vec::with_capacity(2 * sdp.media.len());
        let mut out_mo = Vec::with_capacity(2 * media_out.len());
        for (pos, (m, mo)) in sdp.media.iter().zip(media_out.iter()).enumerate() {
            let i = index.get(pos).copied().unwrap_or(pos);
            let twin = medias.get(i).and_then(|pm| pm.negotiated.twin.clone());
            let rejected = |protocol: &str| {
                let mut t = Media {
                    protocol: protocol.to_owned(),
                    attributes: Vec::new(),
                    ..m.clone()
                };
                t.port = 0;
                let tmo = MediaOut {
                    port: 0,
                    ice: None,
                    ..mo.clone()
                };
                (t, tmo)
            };
            // `offer-legacy`: a new best-effort offer (whatever the party
            // picked before, as upstream).
            let plain_twin = match plain_of(&m.protocol) {
                Some(plain) if offer_legacy && mo.port != 0 => {
                    let mut t = m.clone();
                    t.protocol = plain.to_owned();
                    // Neither keys nor what names the section (its twin
                    // is the one the mid, a bundle and DTLS speak of).
                    t.attributes.retain(|a| {
                        let names_the_section = matches!(
                            a.name.as_str(),
                            "crypto" | "mid" | "bundle-only" | "fingerprint" | "setup" | "tls-id"
                        );
                        let mid_ext = a.name == "extmap"
                            && a.value
                                .as_deref()
                                .is_some_and(|v| v.contains(super::bundle::MID_EXT));
                        !(names_the_section || mid_ext)
                    });
                    if let Some(pm) = medias.get_mut(i) {
                        pm.negotiated.legacy_offered = true;
                    }
                    Some((t, mo.clone()))
                }
                _ => None,
            };
            let (before, after) = match (plain_twin, twin) {
                (Some(p), _) => (Some(p), None),
                (None, Some(t)) if t.before => (Some(rejected(&t.protocol)), None),
                (None, Some(t)) => (None, Some(rejected(&t.protocol))),
                (None, None) => (None, None),
            };
            if let Some((tm, tmo)) = before {
                out_media.push(tm);
                out_mo.push(tmo);
            }
            out_media.push(m.clone());
            out_mo.push(mo.clone());
            if let Some((tm, tmo)) = after {
                out_media.push(tm);
                out_mo.push(tmo);
            }
        }
        if out_media.len() != sdp.media.len() {
            sdp.to_mut().media = out_media;
            *media_out = out_mo;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sections: &[(&str, u16)]) -> Session {
        let mut s = String::from(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n",
        );
        for (proto, port) in sections {
            s.push_str(&format!("m=audio {port} {proto} 0\r\n"));
        }
        crate::sdp::parse(s.as_bytes()).expect("valid SDP")
    }

    fn shape(s: &Session) -> Vec<(String, u16)> {
        s.media
            .iter()
            .map(|m| (m.protocol.clone(), m.port))
            .collect()
    }

    #[test]
    fn twins_collapse_as_upstream_and_remember_what_went() {
        let (s, t) = collapse(&session(&[("RTP/AVP", 4000), ("RTP/SAVP", 4002)]));
        assert_eq!(shape(&s), [("RTP/SAVP".into(), 4002)]);
        assert_eq!(
            t,
            [Some(Twin {
                before: true,
                protocol: "RTP/AVP".into()
            })]
        );
        // Reversed: SRTP first.
        let (s, t) = collapse(&session(&[("RTP/SAVP", 4002), ("RTP/AVP", 4000)]));
        assert_eq!(shape(&s), [("RTP/SAVP".into(), 4002)]);
        assert_eq!(
            t,
            [Some(Twin {
                before: false,
                protocol: "RTP/AVP".into()
            })]
        );
        // The SRTP twin rejected (an answer that kept plain): plain stays.
        let (s, t) = collapse(&session(&[("RTP/AVP", 4000), ("RTP/SAVP", 0)]));
        assert_eq!(shape(&s), [("RTP/AVP".into(), 4000)]);
        assert_eq!(
            t,
            [Some(Twin {
                before: false,
                protocol: "RTP/SAVP".into()
            })]
        );
        // No twins: untouched; a third section does not pair again.
        let (s, t) = collapse(&session(&[
            ("RTP/AVP", 4000),
            ("RTP/SAVP", 4002),
            ("RTP/AVP", 4004),
        ]));
        assert_eq!(
            shape(&s),
            [("RTP/SAVP".into(), 4002), ("RTP/AVP".into(), 4004)]
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t[1], None);
        let (s, t) = collapse(&session(&[("RTP/AVP", 4000), ("RTP/AVP", 4002)]));
        assert_eq!(s.media.len(), 2);
        assert!(t.iter().all(Option::is_none));
    }
}
