//! WebRTC parties in offers and answers: DTLS-SRTP terminated here between
//! a party whose protocol is `UDP/TLS/RTP/SAVP(F)` and one that speaks
//! plain RTP or SDES, and ICE on the ports of the parties that get it.
//!
//! A party's leg is DTLS-terminated when its own SDP or the SDP written to
//! it says `UDP/TLS/…` and the other side's does not (`transport-protocol`
//! switches between them). Its `a=fingerprint`/`a=setup` then stop here:
//! the other side never sees them, and the SDP written to the WebRTC party
//! carries ours (`a=setup:actpass` in offers; in answers the role taken,
//! active unless `DTLS=passive`, as upstream). Between two `UDP/TLS`
//! parties DTLS passes through untouched, as before.
//!
//! ICE: towards every party that gets ICE, our credentials and host
//! candidate go into its SDP and an agent runs on its ports: a full one
//! (RFC 8445, as upstream's default: it checks the party's candidates,
//! controls when it sent the offer or the party is lite, and keeps
//! consent), or a lite one with `ICE-lite` (then `a=ice-lite`, and only the
//! party's checks are answered). A receiver gets ICE when the offer had
//! ICE (`ICE=default`; a DTLS-terminated party always gets it), any
//! receiver with `ICE=force`, none with `ICE=remove`; an answer keeps what
//! its offer decided.

use super::{OfferAnswer, Side};
use std::sync::Arc;

use crate::call::{Call, Negotiated, PartyMedia};
use crate::crypto::dtls::{Fingerprint, Hash, Identity, Role};
use crate::relay::ice::Credentials;
use crate::relay::ice_agent::Peer;
use crate::relay::webrtc::{DtlsPlan, IcePlan, Leg};
use crate::sdp::{Attribute, Media};

/// The protocols whose SRTP keys come from DTLS.
pub fn is_dtls(protocol: &str) -> bool {
    matches!(protocol, "UDP/TLS/RTP/SAVP" | "UDP/TLS/RTP/SAVPF")
}

/// The `ICE` option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IceMode {
    /// No `ICE` given: ICE towards the receiver when the offer had ICE (a
    /// DTLS-terminated receiver always), as upstream.
    #[default]
    Default,
    /// `ICE=remove`: no ICE towards the receiver.
    Remove,
    /// `ICE=force`: ICE towards the receiver in any case.
    Force,
    /// `ICE=optional`: as `force` when the sender has no ICE; else the
    /// receiver gets the sender's ICE with us added as a low-priority host
    /// candidate, and the parties check each other (through us or not).
    Optional,
    /// `ICE=force-relay`: as `optional`, but we are a `relay` candidate
    /// (the sender's relay candidates are left out) and `c=`/`m=` stay the
    /// sender's.
    ForceRelay,
}

/// `ICE-lite` (or `lite-…` in the `ICE` list): towards whom we are an
/// ICE-lite agent from this offer on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lite {
    /// Towards the offer's receiver.
    Forward,
    /// Towards the offer's sender.
    Backward,
    /// Towards both.
    Both,
    /// Towards neither: full agents.
    Off,
}

impl Lite {
    /// The option's value, in upstream's spellings.
    pub fn parse(v: &str) -> Option<Lite> {
        Some(match v.to_ascii_lowercase().as_str() {
            "forward" | "offer" | "fwd" | "fw" => Lite::Forward,
            "backward" | "backwards" | "reverse" | "answer" | "back" | "bkw" | "bk" => {
                Lite::Backward
            }
            "both" => Lite::Both,
            "off" | "none" | "no" => Lite::Off,
            _ => return None,
        })
    }

    /// Whether the offer's sender and receiver get a lite agent (as
    /// upstream: one side lite means the other full).
    fn sides(self) -> (bool, bool) {
        match self {
            Lite::Forward => (false, true),
            Lite::Backward => (true, false),
            Lite::Both => (true, true),
            Lite::Off => (false, false),
        }
    }
}

/// The WebRTC options of one request.
#[derive(Debug, Clone, Default)]
pub struct WebrtcOptions {
    /// `ICE`.
    pub ice: IceMode,
    /// `ICE-lite` (offers only).
    pub lite: Option<Lite>,
    /// `trickle ICE` (or `trickle` in the `ICE` list): we take trickled
    /// candidates (`fragment`) and say so with `a=ice-options:trickle`.
    pub trickle: bool,
    /// `ice2` in the `ICE` list: our ICE lines to the receiver advertise
    /// RFC 8445 (`a=ice-options:ice2`; our agent nominates as it asks).
    pub ice2: bool,
    /// `DTLS=off`: neither offer nor accept DTLS-SRTP.
    pub dtls_off: bool,
    /// `DTLS=passive` (or `--dtls-passive` without `DTLS=active`): take the
    /// server role where the peer lets us choose.
    pub dtls_passive: bool,
    /// `DTLS-fingerprint`: the hash of our fingerprint.
    pub fingerprint_hash: Option<Hash>,
    /// `no-tls-id`: no `a=tls-id` in what we write.
    pub no_tls_id: bool,
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

/// Whether a party's SDP offers DTLS (`a=fingerprint`, in the section or
/// at session level).
pub(super) fn has_fingerprint(m: &Media, session: &[Attribute]) -> bool {
    attr(m, session, "fingerprint").is_some()
}

/// What a party's own SDP says about its DTLS and ICE.
struct Announced {
    fingerprint: Option<Fingerprint>,
    setup: Option<String>,
    tls_id: Option<String>,
    ice: Option<Peer>,
    /// Its `a=ice-options`: `trickle`, `ice2`.
    trickle: bool,
    ice2: bool,
}

fn announced(m: &Media, session: &[Attribute]) -> Announced {
    let fingerprint = attr(m, session, "fingerprint").and_then(|v| {
        let f = Fingerprint::parse(v);
        if f.is_none() {
            tracing::warn!(value = v, "Ignoring a=fingerprint line");
        }
        f
    });
    let candidates = m
        .attributes
        .iter()
        .filter(|a| a.name == "candidate")
        .filter_map(|a| a.value.as_deref());
    // Upstream's reading: the options only with ICE credentials, and
    // without `a=ice-options` the trickle placeholder address (port 9,
    // no address) means trickle.
    let options = attr(m, session, "ice-options");
    let option = |o: &str| options.is_some_and(|v| v.split_whitespace().any(|x| x == o));
    let placeholder = m.port == 9
        && m.connection
            .as_ref()
            .is_none_or(|c| c.address.is_unspecified());
    let credentials = attr(m, session, "ice-ufrag").is_some();
    Announced {
        trickle: credentials && (option("trickle") || (options.is_none() && placeholder)),
        ice2: credentials && option("ice2"),
        fingerprint,
        setup: attr(m, session, "setup").map(|s| s.trim().to_ascii_lowercase()),
        tls_id: attr(m, session, "tls-id").map(|s| s.trim().to_owned()),
        ice: Peer::from_sdp(
            attr(m, session, "ice-ufrag"),
            attr(m, session, "ice-pwd"),
            candidates,
            session.iter().any(|a| a.name == "ice-lite"),
        ),
    }
}

/// Our ICE credentials for a party whose own ICE is `theirs`: kept while
/// it keeps its ufrag, new when it restarts ICE with a new one.
fn ice_for(neg: &mut Negotiated, theirs: Option<Peer>) {
    let restart = match (&neg.ice_peer, &theirs) {
        (Some(old), Some(new)) => old.ufrag != new.ufrag,
        _ => false,
    };
    if restart || neg.ice.is_none() {
        neg.ice = Some(Credentials::generate());
    }
    if theirs.is_some() {
        neg.ice_peer = theirs;
    }
}

/// No ICE with this party.
fn clear_ice(neg: &mut Negotiated) {
    neg.ice = None;
    neg.ice_peer = None;
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
    // A full agent once the offer is answered (the party knows our
    // credentials); we control when we sent the offer or it is lite (RFC
    // 8445 §6.1.1).
    let agent = match (&n.ice_peer, n.ice_lite, n.ice_answered) {
        (Some(p), false, true) => IcePlan::Full(p.clone(), p.lite || n.ice_offerer),
        (Some(p), false, false) => IcePlan::Pending(p.clone()),
        _ => IcePlan::Lite,
    };
    let leg = m.webrtc.get_or_insert_with(|| Leg::new(id.clone()));
    leg.configure(n.ice.clone(), agent, n.dtls.clone());
    n.dtls.as_ref().map(|_| leg.clone())
}

impl OfferAnswer {
    /// Whether an answer goes back to party `rcv`, an `RTP/SAVP(F)`
    /// offerer keyed by DTLS, the way it goes to a `UDP/TLS` one
    /// (`protocol`: what it hears back). Read before the answer's SDES
    /// lines are decided, so both agree.
    pub(super) fn savp_offerer_dtls(
        &self,
        call: &Call,
        rcv: usize,
        i: usize,
        protocol: &str,
    ) -> bool {
        self.side == Side::Answer
            && !self.webrtc.dtls_off
            && super::sdes::is_sdes(protocol)
            && call.parties[rcv].medias[i].negotiated.dtls.is_some()
    }

    /// WebRTC for media `i` of an offer or answer (`sender_protocol`: the
    /// sender's own; `savp_dtls`: an `RTP/SAVP(F)` sender keyed by DTLS
    /// with us; `m` already has the protocol the receiver gets).
    pub(super) fn webrtc_media(
        &self,
        call: &mut Call,
        (snd, rcv, i): (usize, usize, usize),
        m: &mut Media,
        (session, id): (&[Attribute], &Identity),
        (sender_protocol, savp_dtls): (&str, bool),
    ) {
        let o = &self.webrtc;
        if self.reset && self.side == Side::Offer {
            for p in [snd, rcv] {
                call.parties[p].medias[i].negotiated.ice_own = None;
            }
        }
        let sender_dtls = (is_dtls(sender_protocol) || savp_dtls) && !o.dtls_off;
        let receiver_dtls = (is_dtls(&m.protocol)
            || self.savp_offerer_dtls(call, rcv, i, &m.protocol))
            && !o.dtls_off;
        // The sender's leg: terminated when it speaks DTLS and the
        // receiver does not; its DTLS attributes stop here.
        let theirs = announced(m, session);
        let sender_ice = theirs.ice.is_some();
        // A sender keyed by DTLS with us (an `RTP/SAVP(F)` one, or one
        // answering the fingerprint we offered it) ends its DTLS here even
        // where the receiver speaks DTLS too; so does a receiver whose
        // association with us the offer began (both sides terminated:
        // an `RTP/SAVP` DTLS party and a `UDP/TLS` one).
        let ours = |p: usize| {
            self.side == Side::Answer && call.parties[p].medias[i].negotiated.dtls.is_some()
        };
        let terminated = sender_dtls && (!receiver_dtls || savp_dtls || ours(snd));
        let receiver_terminated = receiver_dtls && (!sender_dtls || savp_dtls || ours(rcv));
        let mut mode = o.ice;
        if matches!(mode, IceMode::Optional | IceMode::ForceRelay)
            && (terminated || receiver_terminated)
        {
            // DTLS ends here, so media must: so does ICE. (Upstream passes
            // ICE and DTLS through then, and the call has no media.)
            tracing::warn!(
                media = i,
                "ICE={mode:?} with DTLS-SRTP terminated here: ICE is terminated too"
            );
            mode = IceMode::Force;
        }
        // Passthrough: decided by an offer, kept by an answer that has ICE.
        let passthrough = match self.side {
            Side::Offer => sender_ice && matches!(mode, IceMode::Optional | IceMode::ForceRelay),
            Side::Answer => sender_ice && call.parties[snd].medias[i].negotiated.ice_passthrough,
        };
        for p in [snd, rcv] {
            call.parties[p].medias[i].negotiated.ice_passthrough = passthrough;
        }
        call.parties[rcv].medias[i].negotiated.ice_relay = mode == IceMode::ForceRelay;
        if self.side == Side::Offer {
            // Lite or full is one choice per party (`a=ice-lite` is
            // session-level): a section without its own choice yet takes
            // the party's.
            let lite = o.lite.map(Lite::sides);
            let party_lite =
                |p: usize| call.parties[p].medias.iter().any(|m| m.negotiated.ice_lite);
            let (snd_lite, rcv_lite) = (party_lite(snd), party_lite(rcv));
            let neg = &mut call.parties[snd].medias[i].negotiated;
            neg.ice_offerer = false;
            neg.ice_lite = lite.map_or(snd_lite, |l| l.0);
            let neg = &mut call.parties[rcv].medias[i].negotiated;
            neg.ice_offerer = true;
            neg.ice_lite = lite.map_or(rcv_lite, |l| l.1);
        }
        for p in [snd, rcv] {
            call.parties[p].medias[i].negotiated.ice_answered = self.side == Side::Answer;
        }
        let neg = &mut call.parties[snd].medias[i].negotiated;
        if terminated {
            // A re-offer of the same association keeps the role: browsers
            // always re-offer actpass and refuse a role that flips (RFC
            // 8842 §5.3). The same association: its fingerprint, and its
            // a=tls-id if it sends one (RFC 8842 §5.2). An ICE restart
            // alone keeps it (browsers keep DTLS across restartIce()).
            let same = neg
                .dtls
                .as_ref()
                .filter(|d| {
                    let continued = match (&d.tls_id, &theirs.tls_id) {
                        (Some(a), Some(b)) => a == b,
                        _ => true,
                    };
                    d.remote.is_some() && d.remote == theirs.fingerprint && continued
                })
                .map(|d| d.role);
            if same.is_none() && neg.dtls.as_ref().is_some_and(|d| d.remote.is_some()) {
                // A new association: our a=tls-id changes too.
                neg.tls_id = None;
            }
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
                tls_id: theirs.tls_id,
            });
            m.attributes
                .retain(|a| !DTLS_ATTRS.contains(&a.name.as_str()));
        } else {
            neg.dtls = None;
            if !receiver_dtls
                && super::sdes::is_plain(&m.protocol)
                && !super::sdes::is_plain(sender_protocol)
            {
                // An SRTP sender's DTLS offer means nothing to a plain
                // receiver (SDES keys its leg here).
                m.attributes
                    .retain(|a| !DTLS_ATTRS.contains(&a.name.as_str()));
            }
        }
        // ICE with the sender. `ICE` concerns the SDP written onwards;
        // whether this party gets ICE back is up to the answer's (or next
        // offer's) options. A peer without ICE: DTLS goes to its SDP
        // address.
        match (theirs.ice, self.side) {
            // The parties check each other.
            _ if passthrough => clear_ice(neg),
            // Its offer: ours are new if it restarts ICE.
            (Some(p), Side::Offer) => ice_for(neg, Some(p)),
            // Its answer: it has ours from our offer (also after an
            // earlier answer without ICE: early media, another fork).
            // Without them (we offered none) there is no ICE with it.
            (Some(p), Side::Answer) if neg.ice_sent.is_some() => {
                neg.ice = neg.ice_sent.clone();
                neg.ice_peer = Some(p);
            }
            _ => clear_ice(neg),
        }
        // Its own ICE options come back to it in what we answer or offer
        // it next (upstream copies them from each SDP a party sends, also
        // clearing them).
        if m.port != 0 {
            neg.ice_trickle = theirs.trickle;
            neg.ice2 = theirs.ice2;
            neg.ice_own = Some(sender_ice);
        }
        // The receiver's leg: our DTLS attributes and ICE in what it gets.
        // An `RTP/SAVP(F)` receiver offered our SDES lines gets our DTLS
        // beside them, as upstream: its answer picks one (a DTLS choice
        // made earlier stays in force until then).
        let neg = &mut call.parties[rcv].medias[i].negotiated;
        let savp_receiver =
            self.side == Side::Offer && !receiver_terminated && super::sdes::is_sdes(&m.protocol);
        // Unless the sender's own DTLS passes through to it (its
        // attributes are still there), or `DTLS=off`; with `SDES=off` our
        // DTLS alone. A party keyed by DTLS stays so until it answers
        // (kept through answers too: a 183 and its 200, another fork);
        // one keyed by SDES is offered SDES alone, as upstream offers both
        // only while neither is chosen.
        let settled_sdes = neg.key_in.is_some() && neg.dtls.is_none();
        let beside_sdes =
            savp_receiver && !o.dtls_off && !m.has_attr("fingerprint") && !settled_sdes;
        let keep = savp_receiver && neg.dtls.is_some();
        if self.side == Side::Offer {
            neg.dtls_offered = beside_sdes;
        }
        if receiver_terminated || beside_sdes {
            let setup = match (self.side, &neg.dtls) {
                // Offers leave the role to the answerer (RFC 5763 §5).
                (Side::Offer, _) => "actpass",
                (Side::Answer, Some(d)) if d.role == Role::Server => "passive",
                (Side::Answer, _) => "active",
            };
            if neg.dtls.is_none() && receiver_terminated {
                // Until it answers: a client hello it sends at once (its
                // answer may reach us after its handshake started) is taken.
                neg.dtls = Some(DtlsPlan {
                    role: Role::Server,
                    remote: None,
                    tls_id: None,
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
            // Ours names the association (RFC 8842 §5.2): kept until it
            // changes.
            let tls_id = neg
                .tls_id
                .get_or_insert_with(|| crate::relay::ice::random_chars(32))
                .clone();
            if !o.no_tls_id {
                m.attributes.push(Attribute {
                    name: "tls-id".to_owned(),
                    value: Some(tls_id),
                });
            }
        } else if !keep {
            neg.dtls = None;
        }
        // ICE towards the receiver: a DTLS party always gets it, another
        // one as its own latest SDP had it, or, before it sent any, as the
        // offer had it (upstream's `default`); an answer keeps what its
        // offer decided (the receiver offered ICE, or we did).
        let wants_ice = match (mode, self.side) {
            _ if passthrough => false,
            (IceMode::Force | IceMode::Optional | IceMode::ForceRelay, _) => true,
            (IceMode::Remove, _) => false,
            (IceMode::Default, Side::Offer) => {
                receiver_terminated || neg.ice_own.unwrap_or(sender_ice)
            }
            (IceMode::Default, Side::Answer) => neg.ice.is_some(),
        };
        match wants_ice {
            true => {
                let theirs_before = neg.ice_peer.clone();
                ice_for(neg, theirs_before);
                // `trickle ICE` counts in offers only, as upstream.
                neg.ice_trickle |= o.trickle && self.side == Side::Offer;
                // Advertised from an offer on, as upstream.
                neg.ice2 |= o.ice2 && self.side == Side::Offer;
            }
            false => {
                clear_ice(neg);
                neg.ice_trickle = false;
                neg.ice2 = false;
            }
        }
        // What the latest offer to it carried (its answer may come after
        // another answer without ICE).
        if self.side == Side::Offer {
            neg.ice_sent = neg.ice.clone();
        }
    }
}
