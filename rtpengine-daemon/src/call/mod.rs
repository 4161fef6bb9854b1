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

mod negotiate;
mod stats;

pub use negotiate::{Negotiation, Side};
pub use stats::{call_stats, kernel_packets, relayed, GlobalStats, Totals};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::clock;
use crate::config::{Config, EndpointLearning};
use crate::interfaces::{Interfaces, LocalAddress};
use crate::ng::frame::NgError;
use crate::relay::learning::{Endpoint, Policy};
use crate::relay::offload::Offload;
use crate::relay::poller::{Poller, Registration};
use crate::relay::{MediaSocket, SocketState};
use crate::sdp::{Direction, Origin};

/// Daemon-wide settings the call model needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Default endpoint learning mode.
    pub learning: EndpointLearning,
    /// Default TOS.
    pub tos: Option<u8>,
    /// `--timeout` seconds.
    pub timeout: u64,
    /// `--silent-timeout` seconds.
    pub silent_timeout: u64,
    /// `--offer-timeout` seconds.
    pub offer_timeout: u64,
    /// `--final-timeout` seconds (0 = off).
    pub final_timeout: u64,
    /// `--delete-delay` seconds.
    pub delete_delay: u64,
    /// `--max-sessions` (negative = unlimited).
    pub max_sessions: i64,
}

impl Settings {
    /// Settings from the configuration.
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            learning: c.endpoint_learning,
            tos: c.tos,
            timeout: c.timeout.into(),
            silent_timeout: c.silent_timeout.into(),
            offer_timeout: c.offer_timeout.into(),
            final_timeout: c.final_timeout.into(),
            delete_delay: c.delete_delay.into(),
            max_sessions: c.max_sessions,
        }
    }
}

/// Local sockets of one media section of one party.
pub struct Sockets {
    /// RTP socket.
    pub rtp: Arc<MediaSocket>,
    /// RTCP socket (absent when allocated for rtcp-mux only).
    pub rtcp: Option<Arc<MediaSocket>>,
    /// Address written into SDP for these sockets.
    pub advertised: IpAddr,
    /// The peer's endpoint these sockets are tied to (`None` = not yet known).
    pub key: Option<SocketAddr>,
    _tasks: Vec<Registration>,
}

impl Sockets {
    /// The sockets, RTP first.
    pub fn all(&self) -> impl Iterator<Item = &Arc<MediaSocket>> {
        std::iter::once(&self.rtp).chain(self.rtcp.as_ref())
    }

    /// Parks these sockets when newer ones replace them: out of the kernel and
    /// cut off from the peer (packets to them are dropped), but kept open so
    /// a return to their endpoint gets the same ports back.
    pub fn retire(&self) {
        for s in self.all() {
            let mut st = s.state();
            s.unoffload_locked(&mut st, "ports replaced");
            st.peer_rtp = std::sync::Weak::new();
            st.peer_rtcp = std::sync::Weak::new();
        }
    }
}

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
}

/// Most parties one call may have (forks and re-offers with new tags add
/// parties; a bound keeps a misbehaving client from growing a call forever).
pub const MAX_PARTIES: usize = 32;

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
    /// Index of its peer in [`Call::parties`].
    pub peer: Option<usize>,
    /// Logical interface facing this party.
    pub interface: Option<String>,
    /// Media sections, in SDP order.
    pub medias: Vec<PartyMedia>,
    /// State of the SDP sent to it.
    pub sdp_out: SdpOutState,
}

impl Party {
    fn new(tag: Option<String>) -> Party {
        Party {
            tag,
            via_branch: None,
            label: None,
            created: clock::unix_now().as_secs(),
            peer: None,
            interface: None,
            medias: Vec::new(),
            sdp_out: SdpOutState::default(),
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
}

/// A call.
pub struct Call {
    /// Its call-id.
    pub id: String,
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
}

impl Call {
    fn new(id: &str) -> Call {
        let now = clock::now_ms();
        Call {
            id: id.to_owned(),
            created: clock::unix_now(),
            created_ms: now,
            last_signal_ms: now,
            parties: Vec::new(),
            answered: false,
            destroy_at_ms: None,
            tos: None,
            policy: None,
        }
    }

    /// Index of the party tagged `tag`.
    pub fn party(&self, tag: &str) -> Option<usize> {
        self.parties
            .iter()
            .position(|p| p.tag.as_deref() == Some(tag))
    }

    /// Every local socket of the call.
    pub fn sockets(&self) -> impl Iterator<Item = &Arc<MediaSocket>> {
        self.parties
            .iter()
            .flat_map(|p| p.medias.iter())
            .filter_map(|m| m.sockets.as_ref())
            .flat_map(Sockets::all)
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
            for t in s._tasks {
                t.close().await;
            }
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
        self.parties
            .iter()
            .flat_map(|p| p.medias.iter())
            .all(|m| m.rejected || m.zero_address || !m.direction.sends())
    }
}

/// The registry of calls.
pub struct Calls {
    calls: Mutex<HashMap<String, Call>>,
    /// Media interfaces.
    pub interfaces: Interfaces,
    /// Settings.
    pub settings: Settings,
    /// Daemon-wide counters.
    pub stats: GlobalStats,
    /// In-kernel forwarding, when available.
    pub offload: Option<Arc<dyn Offload>>,
    /// The relay threads media sockets are served by.
    pub media: Arc<Poller>,
}

impl Calls {
    /// An empty registry.
    pub fn new(
        interfaces: Interfaces,
        settings: Settings,
        offload: Option<Arc<dyn Offload>>,
        media: Arc<Poller>,
    ) -> Calls {
        Calls {
            calls: Mutex::new(HashMap::new()),
            interfaces,
            settings,
            stats: GlobalStats::default(),
            offload,
            media,
        }
    }

    /// Locks the call table.
    pub fn lock(&self) -> MutexGuard<'_, HashMap<String, Call>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of calls.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are no calls.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes a call and records why it ended. Its sockets close as the
    /// value drops.
    /// Returns the call: dropping it closes its sockets as their relay tasks
    /// wind down; [`Call::close`] waits for that.
    pub fn destroy(
        &self,
        map: &mut HashMap<String, Call>,
        id: &str,
        why: EndReason,
    ) -> Option<Call> {
        let call = map.remove(id)?;
        call.merge_kernel();
        self.stats.ended(&call, why);
        tracing::info!(call_id = %id, reason = ?why, "Call destroyed");
        Some(call)
    }

    /// One timer pass: ends calls whose delete delay, timeouts or final
    /// timeout have passed. Returns how many ended.
    pub fn tick(&self) -> usize {
        // Offloaded packets never reach the relay: fold the kernel's counters
        // in first so the timeouts see that media is flowing. The map reads
        // are syscalls, so they run without the call table locked (ng waits
        // for that lock).
        if self.offload.is_some() {
            let sockets: Vec<Arc<MediaSocket>> = self
                .lock()
                .values()
                .flat_map(Call::sockets)
                .cloned()
                .collect();
            sockets.iter().for_each(|s| s.merge_kernel());
        }
        let now = clock::now_ms();
        let s = &self.settings;
        let mut map = self.lock();
        let mut ending = Vec::new();
        for (id, c) in map.iter() {
            let why = if c.destroy_at_ms.is_some_and(|t| t <= now) {
                Some(EndReason::Deleted)
            } else if s.final_timeout > 0
                && now.saturating_sub(c.created_ms) >= s.final_timeout * 1000
            {
                Some(EndReason::FinalTimeout)
            } else if !c.answered {
                (now.saturating_sub(c.last_signal_ms) >= s.offer_timeout * 1000)
                    .then_some(EndReason::OfferTimeout)
            } else {
                let idle = now.saturating_sub(c.last_activity_ms());
                if c.all_held() {
                    (idle >= s.silent_timeout * 1000).then_some(EndReason::SilentTimeout)
                } else {
                    (idle >= s.timeout * 1000).then_some(EndReason::Timeout)
                }
            };
            if let Some(why) = why {
                ending.push((id.clone(), why));
            }
        }
        for (id, why) in &ending {
            drop(self.destroy(&mut map, id, *why));
        }
        ending.len()
    }
}

/// Allocates sockets for a party's media on `addr` and starts their loops.
pub(crate) fn allocate_sockets(
    addr: &LocalAddress,
    single: bool,
    key: Option<SocketAddr>,
    policy: Policy,
    tos: Option<u8>,
    offload: Option<&Arc<dyn Offload>>,
    media: &Poller,
) -> Result<Sockets, NgError> {
    let pair = addr.pool.allocate(single).ok_or_else(|| {
        tracing::error!(
            "Failed to get {} consecutive ports on interface {}",
            if single { 1 } else { 2 },
            addr.local
        );
        NgError::Other("Ran out of ports")
    })?;
    let lease = Arc::new(pair.lease);
    let now = Instant::now();
    let state = || SocketState::new(Endpoint::new(None, now), policy, tos);
    let io = |e: std::io::Error| {
        tracing::error!(error = %e, "Failed to register media socket");
        NgError::Other("Ran out of ports")
    };
    let rtp =
        MediaSocket::new(pair.rtp, false, lease.clone(), state(), offload.cloned()).map_err(io)?;
    let rtcp = match pair.rtcp {
        Some(s) => Some(MediaSocket::new(s, true, lease, state(), offload.cloned()).map_err(io)?),
        None => None,
    };
    let socks: Vec<&Arc<MediaSocket>> = std::iter::once(&rtp).chain(rtcp.as_ref()).collect();
    let tasks = media.register(&socks).map_err(io)?;
    let sockets = Sockets {
        rtp,
        rtcp,
        advertised: addr.advertised,
        key,
        _tasks: tasks,
    };
    if let Some(tos) = tos {
        for s in sockets.all() {
            if let Err(e) = s.set_tos(tos) {
                tracing::warn!(error = %e, "Failed to set TOS");
            }
        }
    }
    Ok(sockets)
}
