//! The call model: calls keyed by call-id, parties (upstream's "monologues")
//! keyed by tag, each with media sections whose local sockets are the ones
//! advertised to that party.
//!
//! Naming: the sockets of party A are the local ports *A* talks to (written
//! into the SDP sent to A); packets from A arrive there and leave through the
//! sockets of A's peer towards the peer. A party's sockets are tied to the
//! endpoint its *peer* announced (upstream's endpoint maps): the same endpoint
//! keeps them (retransmitted or repeated offers return the same ports), a new
//! one gets new ones.
//!
//! Where things are: the registry and its settings in [`registry`],
//! offer/answer in [`offer_answer`], `delete` in [`delete`], sockets and their
//! wiring in [`sockets`], the once-a-second timer in [`timer`], counters in
//! [`stats`], and failures in [`Error`]. Nothing here knows the ng protocol
//! or the command line: requests arrive as plain option structs and replies
//! are built by the command handlers from what this module exposes.

pub mod controls;
mod delete;
mod error;
pub mod offer_answer;
mod registry;
pub mod sockets;
mod stats;
pub mod timer;

#[cfg(test)]
mod tests;

pub use delete::{Delete, Deleted};
pub use error::Error;
pub use offer_answer::{OfferAnswer, Replace, RtcpMux, Side};
pub use registry::{CallEvents, Calls, Settings};
pub use sockets::Sockets;
pub use stats::{kernel, relayed, GlobalStats, Live, StatsSnapshot, Streams};

use std::net::SocketAddr;
use std::sync::Arc;

use crate::clock;
use crate::relay::learning::Policy;
use crate::relay::MediaSocket;
use crate::sdp::{Direction, Origin};

/// One media section of one party.
pub struct PartyMedia {
    /// `audio`, `video`, …
    pub kind: String,
    /// Transport protocol as announced.
    pub protocol: String,
    /// RTP endpoint the party announced (zero address and port 0 map to `None`).
    pub rtp_endpoint: Option<SocketAddr>,
    /// RTCP endpoint the party announced (or RTP + 1).
    pub rtcp_endpoint: Option<SocketAddr>,
    /// The party announced `a=rtcp-mux` in its latest SDP.
    pub mux_offered: bool,
    /// RTCP is multiplexed onto the RTP port for this party (in effect).
    pub mux: bool,
    /// The offer's `rtcp-mux` options (`demux`, `accept`) accept this
    /// party's mux whatever the answer says.
    pub mux_override: bool,
    /// Direction the party announced.
    pub direction: Direction,
    /// The party announced the zero address (hold).
    pub zero_address: bool,
    /// The media was rejected (port 0).
    pub rejected: bool,
    /// Local sockets advertised to this party.
    pub sockets: Option<Sockets>,
    /// Sockets tied to earlier peer endpoints, kept so a return to one of
    /// them gets its ports back (at most [`MAX_PREVIOUS_SOCKETS`]).
    pub previous: Vec<Sockets>,
    /// What the SDP exchange decided beyond addresses and ports.
    pub negotiated: Negotiated,
    /// The party announced one of our own addresses (upstream's loop check).
    pub loop_check: bool,
    /// SRTP contexts from the SDES keys in force ([`Negotiated::key_in`],
    /// [`Negotiated::key_out`]).
    pub srtp: crate::relay::srtp::MediaSrtp,
    /// ICE and DTLS-SRTP on its ports, when it is a WebRTC party
    /// ([`Negotiated::dtls`], [`Negotiated::ice`]).
    pub webrtc: Option<std::sync::Arc<crate::relay::webrtc::Leg>>,
    /// Its place in the party's BUNDLE group, where it is bundled (from
    /// the party's latest SDP).
    pub bundle: Option<offer_answer::Bundled>,
}

impl PartyMedia {
    /// The head of the bundle whose transport the party uses for this
    /// section (not one we offered that it has yet to accept).
    pub fn bundle_head(&self) -> Option<usize> {
        self.bundle.as_ref().filter(|b| b.shared).map(|b| b.head)
    }

    /// Bundled into another section's transport (`i` is this section's
    /// index).
    pub fn bundle_member(&self, i: usize) -> bool {
        self.bundle_head().is_some_and(|h| h != i)
    }
}

/// Per-media results of the SDP exchange that a later message needs.
#[derive(Debug, Clone, Default)]
pub struct Negotiated {
    /// The codecs last written to this party (its answer may only pick
    /// from these; `static codecs` writes them again).
    pub codecs_sent: Vec<crate::sdp::codecs::Codec>,
    /// The `a=ptime` written to this party (upstream's per-media ptime):
    /// set by every SDP of either party that has one, and by `ptime`
    /// (towards the answerer) or `ptime-reverse` (towards the offerer).
    pub ptime: Option<u32>,
    /// `ptime`/`ptime-reverse` fixed [`Negotiated::ptime`]: the parties'
    /// own ptimes no longer change it.
    pub ptime_override: bool,
    /// The codecs of this party's own latest SDP (the payload types it
    /// sends with).
    pub codecs_own: Vec<crate::sdp::codecs::Codec>,
    /// The transport protocol last written to this party.
    pub protocol_sent: Option<String>,
    /// The codec the last answer settled on (its first real codec), for
    /// `reuse codecs`.
    pub preferred: Option<crate::sdp::codecs::Codec>,
    /// Header extension IDs (this party's numbering) of the extensions
    /// `extmap` strip/mask took out: removed from the RTP it sends.
    pub ext_strip_ids: Vec<u8>,
    /// Its `a=extmap` lines `extmap` mask took out of the offer: the answer
    /// to it carries them back (masked extensions stay accepted from it).
    pub ext_masked: Vec<crate::sdp::Attribute>,
    /// The transport protocol of this party's own latest SDP.
    pub protocol_own: Option<String>,
    /// The protocol upstream remembers for this party: its own latest
    /// SDP's or the latest we wrote it, whichever came last. While a
    /// sender keeps its own, an offer keeps the receiver's (a re-INVITE
    /// from the SRTP side of a bridge stays plain towards the plain side).
    pub protocol_last: Option<offer_answer::LastProtocol>,
    /// This party's own SDP announced `a=rtcp-fb` (it takes RTCP feedback
    /// whatever its protocol says).
    pub rtcp_fb: bool,
    /// The section was left out of the SDP written to this party
    /// (`sdp-media-remove`); its answer lacks it.
    pub removed: bool,
    /// SDES: the `a=crypto` lines of this party's own latest SDP when it
    /// speaks SRTP.
    pub crypto_in: Vec<crate::crypto::sdes::Crypto>,
    /// SDES: our `a=crypto` lines in the latest SDP written to it (all
    /// those offered; the one line of an answer).
    pub crypto_out: Vec<crate::crypto::sdes::Crypto>,
    /// The key it sends with, in force: set by the first offer, then by
    /// each answer (a re-offer's new keys apply once answered).
    pub key_in: Option<crate::crypto::sdes::Crypto>,
    /// Our key towards it, in force: the line its answer accepted (before
    /// the first answer, the first line offered), or our line in the
    /// answer to it.
    pub key_out: Option<crate::crypto::sdes::Crypto>,
    /// Its leg is SDES-keyed SRTP terminated here: without a key in force,
    /// its packets are dropped, never relayed as plain RTP.
    pub srtp: bool,
    /// The key material of our lines still referenced by `crypto_out` or
    /// `key_out` that we generated: only those are kept as ours on a
    /// re-offer or re-answer (never a key a party sends with).
    pub ours: Vec<Vec<u8>>,
    /// Its latest offer was OSRTP (a plain protocol with `a=crypto`, RFC
    /// 8643): [`Negotiated::crypto_in`] holds its lines.
    pub osrtp_in: bool,
    /// We offered it OSRTP (`OSRTP=offer`): an answer with `a=crypto`
    /// makes its leg SRTP.
    pub osrtp_out: bool,
    /// Its latest offer was OSRTP while its leg was SRTP with us through
    /// OSRTP: the answer keeps it SRTP, as `OSRTP=accept` would.
    pub osrtp_accept: bool,
    /// `SDES-offerer_pref` of this party's offer: the suites the answer to
    /// it picks from its lines.
    pub offerer_pref: Vec<crate::crypto::Suite>,
    /// DTLS-SRTP with this party is terminated here: our role and the
    /// fingerprint it announced.
    pub dtls: Option<crate::relay::webrtc::DtlsPlan>,
    /// The hash of our `a=fingerprint` towards it.
    pub dtls_hash: Option<crate::crypto::dtls::Hash>,
    /// Our `a=tls-id` towards it: names the DTLS association (new with a
    /// new association).
    pub tls_id: Option<String>,
    /// Our latest offer to it carried our DTLS beside our SDES lines (an
    /// `RTP/SAVP(F)` receiver, as upstream): its answer picks one.
    pub dtls_offered: bool,
    /// Our ICE credentials towards it: ICE runs on its ports.
    pub ice: Option<crate::relay::ice::Credentials>,
    /// Our ICE credentials in the latest offer to it (an answer with ICE
    /// uses them even after an answer without: early media, forks).
    pub ice_sent: Option<crate::relay::ice::Credentials>,
    /// Its ICE credentials and candidates (a new ufrag is an ICE restart:
    /// ours change too).
    pub ice_peer: Option<crate::relay::ice_agent::Peer>,
    /// We are an ICE-lite agent towards it (`ICE-lite`); else a full one.
    pub ice_lite: bool,
    /// Whether its own latest SDP had ICE credentials (`None` before it
    /// sent any): with `ICE=default` an offer to it has ICE as this says.
    pub ice_own: Option<bool>,
    /// We told it we take trickled candidates (`trickle ICE`).
    pub ice_trickle: bool,
    /// Our ICE lines to it advertise `ice2` (`ICE=ice2` in an offer).
    pub ice2: bool,
    /// The legacy OSRTP twin of this section the party sent, which the
    /// call model dropped (written back to it rejected).
    pub twin: Option<offer_answer::Twin>,
    /// We offered it this section with a legacy OSRTP twin: its answer is
    /// collapsed.
    pub legacy_offered: bool,
    /// The latest offer between us went from us to it: as full agents we
    /// control (RFC 8445 §6.1.1).
    pub ice_offerer: bool,
    /// The latest offer to or from it is answered: both sides know each
    /// other's credentials, so our checks may start.
    pub ice_answered: bool,
    /// `ICE=optional`/`force-relay` between two ICE parties (upstream's
    /// passthrough, set on both): no agent here; the SDP written to it
    /// carries the other party's ICE lines with ours added, and checks
    /// are relayed as media. Decided by offers, kept by answers with ICE.
    pub ice_passthrough: bool,
    /// `ICE=force-relay` in the latest request writing to it: our
    /// candidates are `relay` ones and `c=`/`m=` stay the sender's.
    pub ice_relay: bool,
    /// The `a=mid` of its own latest SDP: the answer to it carries it
    /// back when the answerer wrote none (RFC 8843 wants it there).
    pub mid: Option<String>,
}

impl Negotiated {
    /// `key_out` if we generated it.
    pub fn own_key_out(&self) -> Option<&crate::crypto::sdes::Crypto> {
        self.key_out
            .as_ref()
            .filter(|k| self.ours.contains(&k.key_salt))
    }
}

/// Most parties one call may have (forks and re-offers with new tags add
/// parties; a bound keeps a misbehaving client from growing a call forever).
pub const MAX_PARTIES: usize = 32;

/// Most port pairs one call may hold, its parties' current and kept earlier
/// sockets together: one call-id must not take a large share of the port
/// range (upstream bounds it only through its other limits, ~20 000 ports).
/// One SDP has at most 64 media sections (the SDP parser refuses more).
pub const MAX_PORT_PAIRS: usize = 256;

/// How many earlier socket sets a media keeps.
pub const MAX_PREVIOUS_SOCKETS: usize = 4;

/// What was last sent to a party, for `SDP-version` and `origin-full`.
#[derive(Debug, Clone, Default)]
pub struct SdpOutState {
    /// Body of the last SDP sent, without its `o=` line.
    pub last_body: Option<Vec<u8>>,
    /// Session version last sent.
    pub version: Option<u64>,
    /// Pinned session name (`replace: session-name`).
    pub name: Option<String>,
    /// Pinned origin (`replace: origin-full`).
    pub origin: Option<Origin>,
}

/// A party (upstream: monologue).
pub struct Party {
    /// Its tag; the callee has none until the answer.
    pub tag: Option<String>,
    /// `via-branch` of the offer that created it.
    pub via_branch: Option<String>,
    /// Label from `label`/`from-label`/`to-label`.
    pub label: Option<String>,
    /// UNIX seconds of creation.
    pub created: u64,
    /// The same to the microsecond (the CLI's call durations).
    pub created_at: std::time::Duration,
    /// Index of its peer in [`Call::parties`].
    pub peer: Option<usize>,
    /// Logical interface facing this party.
    pub interface: Option<String>,
    /// Media sections, in SDP order.
    pub medias: Vec<PartyMedia>,
    /// State of the SDP sent to it.
    pub sdp_out: SdpOutState,
    /// When a delayed `delete` of this party (a branch) is due
    /// ([`clock::now_ms`]).
    pub delete_at_ms: Option<u64>,
    /// `block media`/`block DTMF`/`silence media` on what it sends.
    pub controls: controls::Controls,
    /// `media echo` on what it sends.
    pub echo: crate::relay::filter::Echo,
    /// What `alias key` matches a later offer from an unknown from-tag
    /// against (set by an offer with `alias key`).
    pub alias_key: Option<AliasKey>,
    /// Earlier from-tags of this party (`alias key` matched).
    pub tag_aliases: Vec<String>,
}

/// What an offer's `alias key` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasKey {
    /// `SDP`: the whole SDP body as received (a 64-bit hash of it; only
    /// parties of one call are compared).
    Sdp(u64),
    /// `address`/`endpoint`: the first media section's address and port.
    Address(SocketAddr),
}

impl Party {
    pub(crate) fn new(tag: Option<String>) -> Party {
        let now = clock::unix_now();
        Party {
            tag,
            via_branch: None,
            label: None,
            created: now.as_secs(),
            created_at: now,
            peer: None,
            interface: None,
            medias: Vec::new(),
            sdp_out: SdpOutState::default(),
            delete_at_ms: None,
            controls: controls::Controls::default(),
            echo: crate::relay::filter::Echo::Off,
            alias_key: None,
            tag_aliases: Vec::new(),
        }
    }
}

/// Why a call ended, for statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `delete` (after its delay).
    Deleted,
    /// No media for `--timeout`.
    Timeout,
    /// No media on held media for `--silent-timeout`.
    SilentTimeout,
    /// Never answered within `--offer-timeout`.
    OfferTimeout,
    /// `--final-timeout` reached.
    FinalTimeout,
    /// Terminated by the operator (CLI `terminate`).
    Forced,
}

/// A call.
pub struct Call {
    /// Its call-id.
    pub id: String,
    /// The control client whose offer created it.
    pub proxy: Option<SocketAddr>,
    /// Creation time (UNIX).
    pub created: std::time::Duration,
    /// Creation time ([`clock::now_ms`]).
    pub created_ms: u64,
    /// Last offer/answer ([`clock::now_ms`]).
    pub last_signal_ms: u64,
    /// Parties.
    pub parties: Vec<Party>,
    /// An answer has been seen.
    pub answered: bool,
    /// When a `delete` with delay destroys it ([`clock::now_ms`]).
    pub destroy_at_ms: Option<u64>,
    /// Per-call TOS (`TOS` key).
    pub tos: Option<u8>,
    /// Learning and source policy of the last offer (an answer adds to it).
    pub policy: Option<Policy>,
    /// Call-wide `block media`/`block DTMF`/`silence media`.
    pub controls: controls::Controls,
    /// The requests that shaped the call, in order, for persistence
    /// (`--redis`): opaque here, replayed after a restart.
    pub journal: Vec<JournalEntry>,
    /// Every RTP socket allocated for the call, in order: a replay of the
    /// journal allocates the same ones again ([`Calls::plan_ports`]).
    pub ports: Vec<SocketAddr>,
    /// How many of [`Call::ports`] the journal accounts for: ports a failed
    /// request allocated are dropped from the list (a replay would not
    /// allocate them).
    pub ports_journaled: usize,
    /// A standby's copy of another daemon's call ([`clock::now_ms`] of its
    /// last sync): not ours until a request or media for it arrives here,
    /// exempt from timeouts meanwhile.
    pub foreign_since_ms: Option<u64>,
    /// `recrypt`: SRTP is unprotected and protected again even where both
    /// sides use the same key (no passthrough).
    pub recrypt: bool,
}

/// One request of a call's [`Call::journal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// The request as received (bencoded dictionary).
    pub request: Vec<u8>,
    /// The control client that sent it.
    pub peer: SocketAddr,
}

impl Call {
    pub(crate) fn new(id: &str, proxy: Option<SocketAddr>) -> Call {
        let now = clock::now_ms();
        Call {
            id: id.to_owned(),
            proxy,
            created: clock::unix_now(),
            created_ms: now,
            last_signal_ms: now,
            parties: Vec::new(),
            answered: false,
            destroy_at_ms: None,
            tos: None,
            policy: None,
            controls: controls::Controls::default(),
            journal: Vec::new(),
            ports: Vec::new(),
            ports_journaled: 0,
            foreign_since_ms: None,
            recrypt: false,
        }
    }

    /// Index of the party tagged `tag`.
    pub fn party(&self, tag: &str) -> Option<usize> {
        self.parties
            .iter()
            .position(|p| p.tag.as_deref() == Some(tag))
            // Earlier tags of a party (`alias key`) still name it.
            .or_else(|| {
                self.parties
                    .iter()
                    .position(|p| p.tag_aliases.iter().any(|a| a == tag))
            })
    }

    /// Index of the party created by the offer with `via-branch` `v`.
    pub fn branch(&self, v: &str) -> Option<usize> {
        self.parties
            .iter()
            .position(|p| p.via_branch.as_deref() == Some(v))
    }

    /// Port pairs the call holds (current and kept earlier sockets).
    pub fn port_pairs(&self) -> usize {
        self.parties
            .iter()
            .flat_map(|p| p.medias.iter())
            .map(|m| {
                m.sockets
                    .iter()
                    .chain(&m.previous)
                    .map(Sockets::pairs)
                    .sum::<usize>()
            })
            .sum()
    }

    /// The socket sets in use, one per media and party.
    fn socket_sets(&self) -> impl Iterator<Item = &Sockets> {
        self.parties
            .iter()
            .flat_map(|p| p.medias.iter())
            .filter_map(|m| m.sockets.as_ref())
    }

    /// Every local socket of the call.
    pub fn sockets(&self) -> impl Iterator<Item = &Arc<MediaSocket>> {
        self.socket_sets().flat_map(Sockets::all)
    }

    /// The sockets of each media's selected address (one stream per
    /// media and party, as upstream counts them; `sockets` has every
    /// address's).
    pub fn shown_sockets(&self) -> impl Iterator<Item = &Arc<MediaSocket>> {
        self.socket_sets().flat_map(Sockets::shown)
    }

    /// Closes every socket of the call and returns once their ports are free
    /// (a `delete` reply then means the ports can be reused at once).
    pub async fn close(mut self) {
        let sets = self
            .parties
            .iter_mut()
            .flat_map(|p| p.medias.iter_mut())
            .flat_map(|m| {
                m.sockets
                    .take()
                    .into_iter()
                    .chain(std::mem::take(&mut m.previous))
            });
        let sets: Vec<Sockets> = sets.collect();
        for s in sets {
            s.close().await;
        }
    }

    /// Folds what the kernel forwarded for this call into its counters (the
    /// timer does it every second; replies and the end of a call need it now).
    pub fn merge_kernel(&self) {
        for s in self.sockets() {
            s.merge_kernel();
        }
    }

    /// Latest media activity or signalling ([`clock::now_ms`]).
    pub fn last_activity_ms(&self) -> u64 {
        self.sockets()
            .map(|s| {
                s.stats_in
                    .last_ms
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .fold(self.last_signal_ms, u64::max)
    }

    /// Whether every media is on hold or inactive (silent timeout applies).
    pub fn all_held(&self) -> bool {
        let mut medias = self.parties.iter().flat_map(|p| p.medias.iter()).peekable();
        // A call without media sections is not on hold: nothing can ever
        // flow, so it ends on the media timeout, not after the silent one
        // (an hour by default).
        medias.peek().is_some()
            && medias.all(|m| m.rejected || m.zero_address || !m.direction.sends())
    }
}
