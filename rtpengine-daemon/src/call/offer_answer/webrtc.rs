//! WebRTC parties in offers and answers: DTLS-SRTP terminated here between
//! a party whose protocol is `UDP/TLS/RTP/SAVP(F)` and one that speaks
//! plain RTP or SDES, and ICE-lite on the WebRTC party's ports.
//!
//! A party's leg is DTLS-terminated when its own SDP or the SDP written to
//! it says `UDP/TLS/…` and the other side's does not (`transport-protocol`
//! switches between them). Its `a=fingerprint`/`a=setup` then stop here:
//! the other side never sees them, and the SDP written to the WebRTC party
//! carries ours (`a=setup:actpass` in offers; in answers the role taken,
//! active unless `DTLS=passive`, as upstream). Between two `UDP/TLS`
//! parties DTLS passes through untouched, as before.
//!
//! ICE: we are an ICE-lite agent (RFC 8445 §2.5) towards every party that
//! gets ICE: our credentials and host candidates go into its SDP with
//! `a=ice-lite`, and its checks are answered on our ports. A DTLS party
//! that announced ICE gets it unless `ICE=remove`; `ICE=force` gives it to
//! any party. Upstream runs a full agent; a lite agent is enough for
//! browsers and other full agents, which then take the controlling role.

use super::{OfferAnswer, Side};
use std::sync::Arc;

use crate::call::{Call, Negotiated, PartyMedia};
use crate::crypto::dtls::{Fingerprint, Hash, Identity, Role};
use crate::relay::ice::Credentials;
use crate::relay::webrtc::{DtlsPlan, Leg};
use crate::sdp::{Attribute, Media};

/// The protocols whose SRTP keys come from DTLS.
pub fn is_dtls(protocol: &str) -> bool {
    matches!(protocol, "UDP/TLS/RTP/SAVP" | "UDP/TLS/RTP/SAVPF")
}

/// The `ICE` option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IceMode {
    /// No `ICE` given: ICE for WebRTC parties that announced it.
    #[default]
    Default,
    /// `ICE=remove`: no ICE towards the receiver.
    Remove,
    /// `ICE=force`: ICE towards the receiver in any case.
    Force,
}

/// The WebRTC options of one request.
#[derive(Debug, Clone, Default)]
pub struct WebrtcOptions {
    /// `ICE`.
    pub ice: IceMode,
    /// `DTLS=off`: neither offer nor accept DTLS-SRTP.
    pub dtls_off: bool,
    /// `DTLS=passive` (or `--dtls-passive` without `DTLS=active`): take the
    /// server role where the peer lets us choose.
    pub dtls_passive: bool,
    /// `DTLS-fingerprint`: the hash of our fingerprint.
    pub fingerprint_hash: Option<Hash>,
}

/// Attributes DTLS negotiation consists of (removed where it stops here).
pub(super) const DTLS_ATTRS: &[&str] = &["setup", "fingerprint", "tls-id"];

/// An attribute of the section, else of the session.
fn attr<'a>(m: &'a Media, session: &'a [Attribute], name: &str) -> Option<&'a str> {
    m.attributes
        .iter()
        .chain(session)
        .find(|a| a.name == name)
        .and_then(|a| a.value.as_deref())
}

/// What a party's own SDP says about its DTLS and ICE.
struct Announced {
    fingerprint: Option<Fingerprint>,
    setup: Option<String>,
    ufrag: Option<String>,
}

fn announced(m: &Media, session: &[Attribute]) -> Announced {
    let fingerprint = attr(m, session, "fingerprint").and_then(|v| {
        let f = Fingerprint::parse(v);
        if f.is_none() {
            tracing::warn!(value = v, "Ignoring a=fingerprint line");
        }
        f
    });
    Announced {
        fingerprint,
        setup: attr(m, session, "setup").map(|s| s.trim().to_ascii_lowercase()),
        ufrag: attr(m, session, "ice-ufrag").map(str::to_owned),
    }
}

/// Our ICE credentials for a party whose own ufrag is `theirs`: kept while
/// it keeps its own, new when it restarts ICE with a new one.
fn ice_for(neg: &mut Negotiated, theirs: Option<&str>) {
    let restart = match (&neg.ice_remote, theirs) {
        (Some(old), Some(new)) => old != new,
        _ => false,
    };
    if restart || neg.ice.is_none() {
        neg.ice = Some(Credentials::generate());
    }
    if let Some(t) = theirs {
        neg.ice_remote = Some(t.to_owned());
    }
}

/// No ICE with this party.
fn clear_ice(neg: &mut Negotiated) {
    neg.ice = None;
    neg.ice_remote = None;
}

/// No WebRTC on this party's leg.
fn clear(neg: &mut Negotiated) {
    neg.dtls = None;
    clear_ice(neg);
}

/// Gives `m` the WebRTC leg its negotiation calls for (none, or one that
/// answers ICE checks, or runs DTLS too) and returns it where it keys SRTP
/// from DTLS.
pub(super) fn update_leg(m: &mut PartyMedia, id: &Arc<Identity>) -> Option<Arc<Leg>> {
    let n = &m.negotiated;
    if n.dtls.is_none() && n.ice.is_none() {
        m.webrtc = None;
        return None;
    }
    let leg = m.webrtc.get_or_insert_with(|| Leg::new(id.clone()));
    leg.configure(n.ice.clone(), n.dtls.clone());
    n.dtls.as_ref().map(|_| leg.clone())
}

impl OfferAnswer {
    /// WebRTC for media `i` of an offer or answer (`sender_protocol`: the
    /// sender's own; `m` already has the protocol the receiver gets).
    pub(super) fn webrtc_media(
        &self,
        call: &mut Call,
        (snd, rcv, i): (usize, usize, usize),
        m: &mut Media,
        (session, id): (&[Attribute], &Identity),
        sender_protocol: &str,
    ) {
        let o = &self.webrtc;
        let sender_dtls = is_dtls(sender_protocol) && !o.dtls_off;
        let receiver_dtls = is_dtls(&m.protocol) && !o.dtls_off;
        // The sender's leg: terminated when it speaks DTLS and the
        // receiver does not; its DTLS attributes stop here.
        let neg = &mut call.parties[snd].medias[i].negotiated;
        if sender_dtls && !receiver_dtls {
            let theirs = announced(m, session);
            // A re-offer of the same association (its fingerprint, no ICE
            // restart) keeps the role: browsers always re-offer actpass
            // and refuse a role that flips (RFC 8842 §5.3).
            let restart = matches!((&neg.ice_remote, &theirs.ufrag), (Some(a), Some(b)) if a != b);
            let same = neg
                .dtls
                .as_ref()
                .filter(|d| d.remote.is_some() && d.remote == theirs.fingerprint && !restart)
                .map(|d| d.role);
            let role = match (theirs.setup.as_deref(), self.side, same) {
                (Some("active"), _, _) => Role::Server,
                (Some("passive"), _, _) => Role::Client,
                (_, _, Some(kept)) => kept,
                // An answer must choose; one that does not leaves it to us.
                (_, Side::Answer, None) => Role::Client,
                (_, Side::Offer, None) if o.dtls_passive => Role::Server,
                (_, Side::Offer, None) => Role::Client,
            };
            if theirs.fingerprint.is_none() {
                tracing::warn!(
                    media = i,
                    "DTLS-SRTP without a=fingerprint: no media until one comes"
                );
            }
            neg.dtls_hash = o
                .fingerprint_hash
                .or(theirs.fingerprint.as_ref().map(|f| f.hash))
                .or(neg.dtls_hash);
            neg.dtls = Some(DtlsPlan {
                role,
                remote: theirs.fingerprint,
            });
            // `ICE` concerns the SDP written onwards; whether this party
            // gets ICE back is up to the answer's (or next offer's) options.
            match (&theirs.ufrag, self.side) {
                // Its offer: ours are new if it restarts ICE.
                (Some(u), Side::Offer) => ice_for(neg, Some(u)),
                // Its answer: it has ours from our offer already.
                (Some(u), Side::Answer) => {
                    if neg.ice.is_none() {
                        neg.ice = Some(Credentials::generate());
                    }
                    neg.ice_remote = Some(u.clone());
                }
                // A peer without ICE: DTLS goes to its SDP address.
                (None, _) => clear_ice(neg),
            }
            m.attributes
                .retain(|a| !DTLS_ATTRS.contains(&a.name.as_str()));
        } else {
            clear(neg);
        }
        // The receiver's leg: our DTLS attributes and ICE in what it gets.
        let neg = &mut call.parties[rcv].medias[i].negotiated;
        if receiver_dtls && !sender_dtls {
            let setup = match (self.side, &neg.dtls) {
                // Offers leave the role to the answerer (RFC 5763 §5).
                (Side::Offer, _) => "actpass",
                (Side::Answer, Some(d)) if d.role == Role::Server => "passive",
                (Side::Answer, _) => "active",
            };
            if neg.dtls.is_none() {
                // Until it answers: a client hello it sends at once (its
                // answer may reach us after its handshake started) is taken.
                neg.dtls = Some(DtlsPlan {
                    role: Role::Server,
                    remote: None,
                });
            }
            let hash = o.fingerprint_hash.or(neg.dtls_hash).unwrap_or(Hash::Sha256);
            neg.dtls_hash = Some(hash);
            m.attributes
                .retain(|a| !DTLS_ATTRS.contains(&a.name.as_str()));
            m.attributes.push(Attribute {
                name: "setup".to_owned(),
                value: Some(setup.to_owned()),
            });
            m.attributes.push(Attribute {
                name: "fingerprint".to_owned(),
                value: Some(id.fingerprint(hash).write()),
            });
            // An answer keeps what its offer decided about ICE.
            let wants_ice = match self.side {
                Side::Offer => o.ice != IceMode::Remove,
                Side::Answer => o.ice != IceMode::Remove && neg.ice.is_some(),
            };
            match wants_ice || o.ice == IceMode::Force {
                true => {
                    let theirs_before = neg.ice_remote.clone();
                    ice_for(neg, theirs_before.as_deref());
                }
                false => clear_ice(neg),
            }
        } else if o.ice == IceMode::Force {
            let theirs_before = neg.ice_remote.clone();
            ice_for(neg, theirs_before.as_deref());
        } else {
            clear(neg);
        }
    }
}
