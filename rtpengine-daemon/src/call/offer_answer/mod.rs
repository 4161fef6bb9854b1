//! Offer/answer: update the call model from a party's SDP, allocate and wire
//! sockets, and write the SDP for the other party.
//!
//! The options come as a plain [`OfferAnswer`] (the ng handler in
//! `commands::offer_answer` builds it from the request); the steps are here,
//! what the sender's SDP does to its media and who multiplexes RTCP in
//! [`media`], the SDP written for the receiver in [`sdp_out`].

mod bundle;
mod legacy;
mod media;
mod outgoing;
mod sdes;
mod sdp_out;
pub mod trickle;
mod webrtc;

pub(crate) use bundle::link as link_bundles;
pub use bundle::{BundleOptions, Bundled};
pub use legacy::Twin;
pub use outgoing::{LastProtocol, SdpOptions, SWITCHABLE};
pub use webrtc::{is_dtls, IceMode, Lite, WebrtcOptions};

use std::net::IpAddr;

use super::sockets::wire;
use super::{Call, Calls, Error, Party, MAX_PARTIES};
use crate::clock;
use crate::relay::learning::Policy;
use crate::sdp::Session;

/// Which half of the exchange a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `offer`: from-tag sends the SDP.
    Offer,
    /// `answer`: to-tag sends the SDP.
    Answer,
}

/// The `replace` options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replace {
    /// `origin`: the local address in `o=`.
    pub origin: bool,
    /// `origin-full`: our own `o=` (username, session id, address) pinned
    /// for the whole call, with a version that counts changes.
    pub origin_full: bool,
    /// `session-name`: `s=` pinned to the first one seen.
    pub session_name: bool,
    /// `username`: the `o=` username pinned to the first one seen.
    pub username: bool,
    /// `SDP-version`: a session version that only changes with the SDP.
    pub sdp_version: bool,
    /// `force-increment-sdp-ver`: a session version that always changes.
    pub force_increment_sdp_version: bool,
    /// `zero-address`: a zero address is written as ours, not kept.
    pub zero_address: bool,
}

/// The `rtcp-mux` options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtcpMux {
    /// Offer mux to the answerer even if the offerer did not.
    pub offer: bool,
    /// The answerer must mux (a single port is allocated).
    pub require: bool,
    /// Accept the offerer's mux and demultiplex towards the answerer.
    pub demux: bool,
    /// Accept the offerer's mux whatever the answer says.
    pub accept: bool,
    /// Ignore the offerer's mux.
    pub reject: bool,
}

/// Everything offer/answer needs, parsed once from the request.
#[derive(Debug, Clone)]
pub struct OfferAnswer {
    /// Offer or answer.
    pub side: Side,
    /// `call-id`.
    pub call_id: String,
    /// `from-tag`.
    pub from_tag: String,
    /// `to-tag`.
    pub to_tag: Option<String>,
    /// `via-branch`.
    pub via_branch: Option<String>,
    /// The control client that sent the request.
    pub proxy: Option<std::net::SocketAddr>,
    /// `replace` options.
    pub replace: Replace,
    /// `rtcp-mux` options.
    pub rtcp_mux: RtcpMux,
    /// Interface facing the sender of the SDP.
    pub from_interface: Option<String>,
    /// Interface facing the receiver.
    pub to_interface: Option<String>,
    /// `address-family`: `Some(true)` for IPv6.
    pub ipv6: Option<bool>,
    /// `media-address`.
    pub media_address: Option<IpAddr>,
    /// `received-from` address when `SIP source address` is set.
    pub source_address: Option<IpAddr>,
    /// Learning and source policy.
    pub policy: Policy,
    /// `TOS`.
    pub tos: Option<u8>,
    /// `TOS` was negative: keep the call's TOS as it is.
    pub tos_keep: bool,
    /// `endpoint-learning` was given (an answer's then replaces the offer's).
    pub learning_given: bool,
    /// `label`.
    pub label: Option<String>,
    /// `original sendrecv`.
    pub original_sendrecv: bool,
    /// `no rtcp attribute`.
    pub no_rtcp_attr: bool,
    /// `full rtcp attribute`.
    pub full_rtcp_attr: bool,
    /// `port latching`: keep the local ports when the peer's endpoint
    /// changes (instead of new ports for a new endpoint).
    pub port_latching: bool,
    /// Codec, protocol and attribute options for the SDP written onwards.
    pub sdp: SdpOptions,
    /// `media echo`.
    pub media_echo: Option<crate::call::controls::MediaEcho>,
    /// `alias key`: this offer's key (its SDP or first media endpoint).
    pub alias_key: Option<crate::call::AliasKey>,
    /// `drop-traffic`: `Some(true)` start, `Some(false)` stop (call-wide).
    pub drop_traffic: Option<bool>,
    /// Flag `block DTMF`: DTMF from the sender of this message is dropped.
    pub block_dtmf: bool,
    /// `SDES` options.
    pub sdes: crate::crypto::negotiate::SdesOptions,
    /// Flag `recrypt`: no SRTP passthrough for this call.
    pub recrypt: bool,
    /// Flag `reset` (offer): both parties' ICE follows the offer again,
    /// as before either sent an SDP (upstream clears INITIALIZED).
    pub reset: bool,
    /// `ICE`, `DTLS`, `DTLS-fingerprint`.
    pub webrtc: WebrtcOptions,
    /// `OSRTP`.
    pub osrtp: Osrtp,
    /// `bundle`.
    pub bundle: BundleOptions,
}

/// The `OSRTP` options: RFC 8643's, and the legacy twinned sections
/// (see `legacy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Osrtp {
    /// `offer` (`offer-RFC`): a plain offer goes on as an OSRTP offer.
    pub offer: bool,
    /// `accept-RFC` (`accept`): an OSRTP offer answered plain still gets
    /// SRTP.
    pub accept: bool,
    /// `offer-legacy`: each SRTP section of our offer has a plain twin.
    pub offer_legacy: bool,
    /// `accept-legacy` (`accept`): twinned sections are taken as one.
    pub accept_legacy: bool,
}

impl OfferAnswer {
    /// An offer or answer with nothing but its dialogue: every option at
    /// its default (learning as `learning`), for callers that set a few
    /// with struct-update syntax.
    pub fn new(
        side: Side,
        call_id: &str,
        from_tag: &str,
        to_tag: Option<&str>,
        learning: crate::relay::learning::EndpointLearning,
    ) -> OfferAnswer {
        OfferAnswer {
            side,
            call_id: call_id.to_owned(),
            from_tag: from_tag.to_owned(),
            to_tag: to_tag.map(str::to_owned),
            via_branch: None,
            proxy: None,
            replace: Replace::default(),
            rtcp_mux: RtcpMux::default(),
            from_interface: None,
            to_interface: None,
            ipv6: None,
            media_address: None,
            source_address: None,
            policy: Policy {
                mode: learning,
                strict: false,
                handover: false,
                asymmetric: false,
                nat_wait: false,
            },
            tos: None,
            tos_keep: false,
            learning_given: false,
            label: None,
            original_sendrecv: false,
            no_rtcp_attr: false,
            full_rtcp_attr: false,
            port_latching: false,
            sdp: SdpOptions::default(),
            media_echo: None,
            alias_key: None,
            drop_traffic: None,
            block_dtmf: false,
            sdes: Default::default(),
            recrypt: false,
            reset: false,
            webrtc: WebrtcOptions::default(),
            osrtp: Osrtp::default(),
            bundle: BundleOptions::default(),
        }
    }
}

impl Calls {
    /// Runs an offer or answer and returns the SDP for the other party.
    pub fn offer_answer(&self, oa: &OfferAnswer, sdp: &Session) -> Result<Vec<u8>, Error> {
        let out = oa.run(self, sdp)?;
        // Trickled candidates that came before this SDP (as upstream,
        // after the SDP is written: they change nothing in it).
        let sender = match oa.side {
            Side::Offer => Some(&oa.from_tag),
            Side::Answer => oa.to_tag.as_ref(),
        };
        if let Some(tag) = sender {
            self.trickle_pending(&oa.call_id, tag);
        }
        Ok(out)
    }
}

impl OfferAnswer {
    fn run(&self, calls: &Calls, sdp: &Session) -> Result<Vec<u8>, Error> {
        let mut map = calls.lock();
        let new_call = !map.contains_key(&self.call_id);
        if new_call && self.side == Side::Answer {
            return Err(Error::UnknownCall);
        }
        if new_call {
            calls.check_session_limit(map.len())?;
        }
        let call = map
            .entry(self.call_id.clone())
            .or_insert_with(|| Call::new(&self.call_id, self.proxy));
        let result = self.negotiate(calls, call, sdp);
        if new_call && result.is_err() {
            // Nothing of a failed new call survives: its ports close here.
            map.remove(&self.call_id);
        }
        result
    }

    /// The sending and receiving party of this request (indexes into
    /// [`Call::parties`]), created as needed.
    fn parties(&self, call: &mut Call) -> Result<(usize, usize), Error> {
        let (sender_tag, receiver_tag) = match self.side {
            Side::Offer => (Some(&self.from_tag), self.to_tag.as_ref()),
            Side::Answer => (self.to_tag.as_ref(), Some(&self.from_tag)),
        };
        if receiver_tag == sender_tag {
            // A party cannot be its own peer (media would loop back to it).
            return Err(Error::InvalidDialogue);
        }
        match self.side {
            Side::Offer => {
                let a = match call.party(&self.from_tag).or_else(|| self.alias_of(call)) {
                    Some(i) => i,
                    None => {
                        add_party(call, Party::new(sender_tag.cloned()))?;
                        call.parties.len() - 1
                    }
                };
                let b = match receiver_tag.and_then(|t| call.party(t)) {
                    Some(i) => i,
                    None => match self.branch_party(call, a) {
                        Some(i) => i,
                        None => {
                            let mut p = Party::new(receiver_tag.cloned());
                            p.via_branch = self.via_branch.clone();
                            add_party(call, p)?;
                            call.parties.len() - 1
                        }
                    },
                };
                call.parties[a].peer = Some(b);
                call.parties[b].peer = Some(a);
                if self.alias_key.is_some() {
                    call.parties[a].alias_key = self.alias_key;
                }
                Ok((a, b))
            }
            Side::Answer => {
                let a = call.party(&self.from_tag).ok_or(Error::InvalidDialogue)?;
                let to_tag = self.to_tag.as_deref().unwrap_or_default();
                let b = match call.party(to_tag) {
                    Some(b) => b,
                    // The callee gets its tag with the answer: the branch
                    // the answer names, else the caller's current peer (an
                    // answer from another fork without via-branch takes
                    // over the leg).
                    None => self
                        .via_branch
                        .as_deref()
                        .and_then(|v| call.branch(v))
                        .filter(|&b| b != a && call.parties[b].tag.is_none())
                        .or(call.parties[a].peer)
                        .ok_or(Error::InvalidDialogue)?,
                };
                call.parties[b].tag = Some(to_tag.to_owned());
                call.parties[a].peer = Some(b);
                call.parties[b].peer = Some(a);
                Ok((b, a))
            }
        }
    }

    /// `alias key`: an offer from an unknown from-tag whose key matches a
    /// party's (same SDP, or same first endpoint) is that party under a new
    /// tag; the old one is kept as an alias (upstream's rule).
    fn alias_of(&self, call: &mut Call) -> Option<usize> {
        let key = self.alias_key?;
        let i = call.parties.iter().position(|p| p.alias_key == Some(key))?;
        let p = &mut call.parties[i];
        if let Some(old) = p.tag.replace(self.from_tag.clone()) {
            tracing::info!(call_id = %self.call_id, old = %old, new = %self.from_tag, "From-tag alias");
            p.tag_aliases.push(old);
        }
        Some(i)
    }

    /// The callee an offer from party `a` without a known to-tag goes to:
    /// the party of its `via-branch` (a retransmission, or a fork seen
    /// before), else `a`'s current peer unless that one belongs to another
    /// branch (then this offer is a new fork and gets a party of its own,
    /// with its own ports, as upstream).
    fn branch_party(&self, call: &mut Call, a: usize) -> Option<usize> {
        let Some(v) = self.via_branch.as_deref() else {
            return call.parties[a].peer;
        };
        if let Some(b) = call.branch(v).filter(|&b| b != a) {
            return Some(b);
        }
        let peer = call.parties[a].peer?;
        match &call.parties[peer].via_branch {
            Some(other) if other != v && call.parties[peer].tag.is_none() => None,
            Some(_) => Some(peer),
            None => {
                call.parties[peer].via_branch = Some(v.to_owned());
                Some(peer)
            }
        }
    }

    /// The offer or answer on an existing (or just created) call.
    fn negotiate(&self, calls: &Calls, call: &mut Call, sdp: &Session) -> Result<Vec<u8>, Error> {
        let (snd, rcv) = self.parties(call)?;
        // An answer adds its source flags to the offer's; it does not clear them.
        let policy = match (self.side, call.policy) {
            (Side::Answer, Some(offer)) => Policy {
                // The offer's mode, unless the answer names one.
                mode: match self.learning_given {
                    true => self.policy.mode,
                    false => offer.mode,
                },
                strict: offer.strict || self.policy.strict,
                handover: offer.handover || self.policy.handover,
                asymmetric: offer.asymmetric || self.policy.asymmetric,
                nat_wait: offer.nat_wait || self.policy.nat_wait,
            },
            _ => self.policy,
        };
        call.policy = Some(policy);
        call.last_signal_ms = clock::now_ms();
        if self.side == Side::Answer {
            call.answered = true;
        }
        // `TOS`: a value sets it, a negative one keeps it, none (or one
        // too large) reverts to `--tos`; the call's running streams follow.
        if !self.tos_keep {
            if let Some(t) = self.tos.or(calls.settings().tos) {
                if call.tos != Some(t) {
                    call.tos = Some(t);
                    call.sockets().for_each(|s| s.change_tos(t));
                }
            }
        }
        if let Some(l) = &self.label {
            call.parties[snd].label = Some(l.clone());
        }
        if let Some(echo) = self.media_echo {
            (call.parties[snd].echo, call.parties[rcv].echo) = echo.modes();
        }
        if let Some(drop) = self.drop_traffic {
            call.controls.drop_all = drop;
        }
        if self.block_dtmf {
            call.parties[snd].controls.block_dtmf = true;
        }
        for (idx, iface) in [(snd, &self.from_interface), (rcv, &self.to_interface)] {
            let p = &mut call.parties[idx];
            if p.interface.is_none() {
                p.interface = Some(
                    calls
                        .interfaces
                        .get_or_default(iface.as_deref())
                        .name
                        .clone(),
                );
            }
        }

        // 1. The sender's media from its SDP (an answer to a narrowed offer
        // gets the left-out sections back first); 2. what goes on to the
        // receiver (codecs, protocol, ptime); 3. who multiplexes RTCP.
        let (sdp, twins) = self.collapse_legacy(call, snd, sdp);
        let sdp = self.with_removed(call, snd, &sdp);
        self.update_sender_media(call, snd, rcv, &sdp);
        self.note_twins(call, snd, twins);
        self.update_bundle(call, snd, &sdp);
        // A party announcing our own address may loop media through us:
        // such streams get upstream's duplicate check.
        for m in &mut call.parties[snd].medias {
            m.loop_check = m.rtp_endpoint.is_some_and(|e| calls.interfaces.is_ours(e));
        }
        let identity = calls.dtls_identity();
        let out = self.outgoing(call, snd, rcv, &sdp, &identity);
        self.update_srtp(call, snd, rcv, &identity);
        self.decide_mux(call, snd, rcv, sdp.media.len());

        // 4. Sockets (none for sections the outgoing SDP rejects). A failure
        // (out of ports) still wires what was committed, so media keeps
        // flowing on the streams that have sockets.
        let allocated = self.allocate(calls, call, snd, rcv, &out, policy);

        // 5. Wire both directions and restart learning; new sockets get the
        // call's media controls.
        wire(call, snd, rcv, policy);
        call.apply_filters();
        allocated?;

        // 6. The SDP for the receiver.
        Ok(self.write_sdp(call, snd, rcv, &out))
    }
}

/// Adds a party, refusing more than [`MAX_PARTIES`] per call.
fn add_party(call: &mut Call, p: Party) -> Result<(), Error> {
    if call.parties.len() >= MAX_PARTIES {
        tracing::warn!(call_id = %call.id, "Too many parties in one call");
        return Err(Error::InvalidDialogue);
    }
    call.parties.push(p);
    Ok(())
}
