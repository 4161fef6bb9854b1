//! The registry of calls and the daemon-wide settings the call model needs.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use super::stats::{kernel, relayed, streams, Live, StatsSnapshot};
use super::{Call, EndReason, Error, GlobalStats};
use crate::interfaces::Interfaces;
use crate::relay::learning::EndpointLearning;
use crate::relay::offload::Offload;
use crate::relay::poller::Poller;

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
    /// `--dtls-passive`.
    pub dtls_passive: bool,
}

impl Default for Settings {
    /// Upstream's defaults.
    fn default() -> Self {
        Settings {
            learning: EndpointLearning::Heuristic,
            tos: None,
            timeout: 60,
            silent_timeout: 3600,
            offer_timeout: 3600,
            final_timeout: 0,
            delete_delay: 30,
            max_sessions: -1,
            dtls_passive: false,
        }
    }
}

/// What the registry tells persistence about calls it changes on its own
/// (not through a request).
pub trait CallEvents: Send + Sync {
    /// Call `id` ended (timeout, delete delay, operator).
    fn ended(&self, id: &str);
    /// A standby's foreign call saw media here: it is ours now.
    fn taken_over(&self, call: &Call);
}

/// The registry of calls.
pub struct Calls {
    calls: Mutex<HashMap<String, Call>>,
    /// Media interfaces.
    pub interfaces: Interfaces,
    /// Settings; the CLI changes some while the daemon runs.
    settings: Mutex<Settings>,
    /// Daemon-wide counters.
    pub stats: GlobalStats,
    /// In-kernel forwarding, when available.
    pub offload: Option<Arc<dyn Offload>>,
    /// The relay threads media sockets are served by.
    pub media: Arc<Poller>,
    /// This daemon's instance id: what `loop protect` writes into SDP
    /// (`a=rtpengine:<id>`) to recognise its own SDP coming back.
    pub instance_id: String,
    /// Ports a restore allocates again, per call-id, in order.
    planned: Mutex<HashMap<String, VecDeque<SocketAddr>>>,
    /// Told about calls that end or are taken over (persistence).
    events: OnceLock<Arc<dyn CallEvents>>,
    /// The certificate DTLS-SRTP handshakes present.
    dtls: Arc<crate::crypto::dtls::Identity>,
    /// Trickle ICE fragments that came before their party's SDP (locked
    /// after `calls` where both are held).
    fragments: Mutex<super::offer_answer::trickle::PendingFragments>,
}

impl Calls {
    /// An empty registry.
    pub fn new(
        interfaces: Interfaces,
        settings: Settings,
        offload: Option<Arc<dyn Offload>>,
        media: Arc<Poller>,
        dtls: Arc<crate::crypto::dtls::Identity>,
    ) -> Calls {
        Calls {
            calls: Mutex::new(HashMap::new()),
            interfaces,
            settings: Mutex::new(settings),
            stats: GlobalStats::default(),
            offload,
            media,
            // 12 hex digits, as upstream's.
            instance_id: format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff),
            planned: Mutex::new(HashMap::new()),
            events: OnceLock::new(),
            dtls,
            fragments: Mutex::default(),
        }
    }

    /// The certificate DTLS-SRTP handshakes present.
    pub fn dtls_identity(&self) -> Arc<crate::crypto::dtls::Identity> {
        Arc::clone(&self.dtls)
    }

    /// Tells `events` about calls that end or are taken over from now on
    /// (set once; persistence).
    pub fn set_events(&self, events: Arc<dyn CallEvents>) {
        let _ = self.events.set(events);
    }

    /// The registered [`CallEvents`], if any.
    pub(crate) fn events(&self) -> Option<&Arc<dyn CallEvents>> {
        self.events.get()
    }

    /// Makes the next socket allocations of call `id` use `ports`, in order
    /// (replaying a restored call's journal gets its ports back).
    pub fn plan_ports(&self, id: &str, ports: Vec<SocketAddr>) {
        let mut planned = self.planned.lock().unwrap_or_else(PoisonError::into_inner);
        if ports.is_empty() {
            planned.remove(id);
        } else {
            planned.insert(id.to_owned(), ports.into());
        }
    }

    /// The port call `id`'s next allocation should take, if planned.
    pub(crate) fn next_planned(&self, id: &str) -> Option<SocketAddr> {
        let mut planned = self.planned.lock().unwrap_or_else(PoisonError::into_inner);
        let q = planned.get_mut(id)?;
        let next = q.pop_front();
        if q.is_empty() {
            planned.remove(id);
        }
        next
    }

    /// Runs `f` on call `id` mutably, without merging kernel counters.
    /// `f` runs with the call table locked.
    pub fn with_call_mut<R>(&self, id: &str, f: impl FnOnce(&mut Call) -> R) -> Option<R> {
        self.lock().get_mut(id).map(f)
    }

    /// The settings now.
    pub fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes the settings (the CLI's `set`). Lock order: the call table
    /// (when held) before the settings; `f` must not call back into the
    /// registry.
    pub fn update_settings(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.settings.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Locks the trickle ICE fragments waiting for their party.
    pub(crate) fn pending_fragments(
        &self,
    ) -> MutexGuard<'_, super::offer_answer::trickle::PendingFragments> {
        self.fragments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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

    /// Removes a call and records why it ended. Returns the call: dropping
    /// it closes its sockets as the relay lets go of them; [`Call::close`]
    /// waits for that.
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
        if let Some(e) = self.events.get() {
            e.ended(id);
        }
        Some(call)
    }

    /// Ends calls on the operator's word: `Some(id)` that call, `None` every
    /// call. Returns them; dropping them closes their sockets.
    pub fn terminate(&self, id: Option<&str>) -> Vec<Call> {
        let mut map = self.lock();
        let ids: Vec<String> = match id {
            Some(id) => map
                .contains_key(id)
                .then(|| id.to_owned())
                .into_iter()
                .collect(),
            None => map.keys().cloned().collect(),
        };
        ids.iter()
            .filter_map(|id| self.destroy(&mut map, id, EndReason::Forced))
            .collect()
    }

    /// Refuses a new call when `--max-sessions` is reached.
    pub fn check_session_limit(&self, current: usize) -> Result<(), Error> {
        let max = self.settings().max_sessions;
        if max >= 0 && current as i64 >= max {
            self.stats.rejected();
            return Err(Error::SessionLimit);
        }
        Ok(())
    }

    /// Runs `f` on call `id` (with the kernel's counters merged first), if
    /// there is such a call. `f` runs with the call table locked: it must
    /// not call back into the registry.
    pub fn with_call<R>(&self, id: &str, f: impl FnOnce(&Call) -> R) -> Option<R> {
        let map = self.lock();
        let call = map.get(id)?;
        call.merge_kernel();
        Some(f(call))
    }

    /// Up to `limit` call-ids.
    pub fn ids(&self, limit: usize) -> Vec<String> {
        self.lock().keys().take(limit).cloned().collect()
    }

    /// The calls now: how many, what their sockets have relayed so far, and
    /// how many of those packets the kernel forwarded.
    pub fn live(&self) -> Live {
        let map = self.lock();
        let mut live = Live {
            calls: map.len(),
            ..Live::default()
        };
        for c in map.values() {
            live.relayed = live.relayed.plus(relayed(c));
            live.kernel = live.kernel.plus(kernel(c));
            let n = streams(c);
            live.streams.userspace += n.userspace;
            live.streams.kernel += n.kernel;
            live.streams.mixed += n.mixed;
        }
        live
    }

    /// How many calls have media on IPv4 only, IPv6 only, and both (calls
    /// without sockets count in none).
    pub fn families(&self) -> (usize, usize, usize) {
        let (mut v4, mut v6, mut mixed) = (0, 0, 0);
        for call in self.lock().values() {
            let (mut has4, mut has6) = (false, false);
            for s in call.sockets() {
                has4 |= s.local.is_ipv4();
                has6 |= s.local.is_ipv6();
            }
            match (has4, has6) {
                (true, false) => v4 += 1,
                (false, true) => v6 += 1,
                (true, true) => mixed += 1,
                (false, false) => {}
            }
        }
        (v4, v6, mixed)
    }

    /// Everything `statistics` reports: the counters of ended calls plus
    /// the live ones.
    pub fn statistics(&self) -> StatsSnapshot {
        let mut s = self.stats.snapshot(&self.live());
        if let Some(o) = &self.offload {
            s.kernel_refusals = o.refusals();
        }
        s
    }
}
