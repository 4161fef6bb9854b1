//! Daemon-wide counters for `statistics`, and what one call has relayed.
//! The reply dictionaries are built by the command handlers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::{Call, EndReason};
use crate::clock;
use crate::relay::Totals;

/// Packet totals counted atomically.
#[derive(Debug, Default)]
struct AtomicTotals {
    packets: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

impl AtomicTotals {
    fn add(&self, t: Totals) {
        self.packets.fetch_add(t.packets, Relaxed);
        self.bytes.fetch_add(t.bytes, Relaxed);
        self.errors.fetch_add(t.errors, Relaxed);
    }

    fn store(&self, t: Totals) {
        self.packets.store(t.packets, Relaxed);
        self.bytes.store(t.bytes, Relaxed);
        self.errors.store(t.errors, Relaxed);
    }

    fn get(&self) -> Totals {
        Totals {
            packets: self.packets.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }
}

/// What the live calls add up to (see [`Calls::live`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Live {
    /// Number of calls.
    pub calls: usize,
    /// Packets relayed to their parties.
    pub relayed: Totals,
    /// The share of them forwarded in the kernel.
    pub kernel: Totals,
    /// Media streams (RTP sockets) by where they are relayed now.
    pub streams: Streams,
}

/// Media streams (one per RTP socket, so one per party and media) by where
/// their packets go: `userspace` never offloaded, `kernel` offloaded now,
/// `mixed` offloaded before and back in userspace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streams {
    /// Relayed in userspace only.
    pub userspace: u64,
    /// Forwarded in the kernel now.
    pub kernel: u64,
    /// Back in userspace after kernel forwarding.
    pub mixed: u64,
}

/// Per-second rates, as the timer last computed them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    /// Packets, bytes and errors relayed per second (userspace and kernel).
    pub relayed: Totals,
    /// The share forwarded in the kernel.
    pub kernel: Totals,
}

impl Rates {
    /// The share relayed in userspace.
    pub fn userspace(&self) -> Totals {
        self.relayed.since(self.kernel)
    }
}

/// Daemon-wide counters for `statistics`.
#[derive(Debug)]
pub struct GlobalStats {
    started: Instant,
    /// Calls that ended, as upstream counts "managed sessions".
    managed: AtomicU64,
    rejected: AtomicU64,
    timeout: AtomicU64,
    silent_timeout: AtomicU64,
    offer_timeout: AtomicU64,
    final_timeout: AtomicU64,
    regular: AtomicU64,
    forced: AtomicU64,
    /// Seconds of the ended calls: sum and sum of squares (for upstream's
    /// `call_duration_total` / `call_duration2_total`).
    durations: Mutex<(f64, f64)>,
    /// RTP streams of ended calls that received nothing.
    zero_streams: AtomicU64,
    /// RTP streams of ended calls that received media while their peer did not.
    one_way_streams: AtomicU64,
    /// What ended calls relayed.
    ended_relayed: AtomicTotals,
    /// The share of it forwarded in the kernel.
    ended_kernel: AtomicTotals,
    rate_relayed: AtomicTotals,
    rate_kernel: AtomicTotals,
}

impl Default for GlobalStats {
    fn default() -> Self {
        GlobalStats {
            started: Instant::now(),
            managed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            timeout: AtomicU64::new(0),
            silent_timeout: AtomicU64::new(0),
            offer_timeout: AtomicU64::new(0),
            final_timeout: AtomicU64::new(0),
            regular: AtomicU64::new(0),
            forced: AtomicU64::new(0),
            durations: Mutex::new((0.0, 0.0)),
            zero_streams: AtomicU64::new(0),
            one_way_streams: AtomicU64::new(0),
            ended_relayed: AtomicTotals::default(),
            ended_kernel: AtomicTotals::default(),
            rate_relayed: AtomicTotals::default(),
            rate_kernel: AtomicTotals::default(),
        }
    }
}

/// Everything `statistics` reports, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Calls now.
    pub calls: u64,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Calls that ended.
    pub managed: u64,
    /// Calls refused by a limit.
    pub rejected: u64,
    /// Calls ended by `--timeout`.
    pub timeout: u64,
    /// Calls ended by `--silent-timeout`.
    pub silent_timeout: u64,
    /// Calls ended by `--final-timeout`.
    pub final_timeout: u64,
    /// Calls ended by `--offer-timeout`.
    pub offer_timeout: u64,
    /// Calls ended by `delete`.
    pub regular: u64,
    /// Calls ended by the operator (CLI `terminate`).
    pub forced: u64,
    /// Relayed since start (ended and live calls).
    pub relayed: Totals,
    /// The share of it forwarded in the kernel.
    pub kernel: Totals,
    /// Rates over the last second.
    pub rates: Rates,
    /// Sum of the durations of the ended calls, seconds.
    pub call_duration_secs: f64,
    /// Sum of their squares.
    pub call_duration2_secs: f64,
    /// RTP streams of ended calls that received nothing.
    pub zero_streams: u64,
    /// RTP streams of ended calls that received media while their peer did not.
    pub one_way_streams: u64,
    /// The live calls' media streams.
    pub streams: Streams,
    /// Streams the kernel refused (table full, entry rejected): they stayed
    /// in userspace.
    pub kernel_refusals: crate::relay::offload::Refusals,
}

impl StatsSnapshot {
    /// Average duration of the ended calls, seconds.
    pub fn avg_call_duration(&self) -> f64 {
        if self.managed == 0 {
            0.0
        } else {
            self.call_duration_secs / self.managed as f64
        }
    }

    /// Standard deviation of the ended calls' durations, seconds.
    pub fn call_duration_stddev(&self) -> f64 {
        if self.managed == 0 {
            return 0.0;
        }
        let mean = self.avg_call_duration();
        (self.call_duration2_secs / self.managed as f64 - mean * mean)
            .max(0.0)
            .sqrt()
    }

    /// The share of what was relayed that went through userspace.
    pub fn userspace(&self) -> Totals {
        self.relayed.since(self.kernel)
    }
}

impl GlobalStats {
    /// A new call was refused by a limit.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    /// A call ended.
    pub fn ended(&self, call: &Call, why: EndReason) {
        let c = match why {
            EndReason::Deleted => &self.regular,
            EndReason::Timeout => &self.timeout,
            EndReason::SilentTimeout => &self.silent_timeout,
            EndReason::OfferTimeout => &self.offer_timeout,
            EndReason::FinalTimeout => &self.final_timeout,
            EndReason::Forced => &self.forced,
        };
        c.fetch_add(1, Relaxed);
        // Upstream counts managed sessions when they end.
        self.managed.fetch_add(1, Relaxed);
        let secs = clock::now_ms().saturating_sub(call.created_ms) as f64 / 1000.0;
        {
            let mut d = self
                .durations
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            d.0 += secs;
            d.1 += secs * secs;
        }
        let (zero, one_way) = silent_streams(call);
        self.zero_streams.fetch_add(zero, Relaxed);
        self.one_way_streams.fetch_add(one_way, Relaxed);
        self.ended_relayed.add(relayed(call));
        self.ended_kernel.add(kernel(call));
    }

    /// Adds what the sockets of a deleted branch (parties removed from a
    /// call that goes on) relayed, so the totals never go back.
    pub fn branch_ended(&self, sockets: &[super::Sockets]) {
        for s in sockets.iter().flat_map(super::Sockets::all) {
            s.merge_kernel();
            let mut t = Totals::default();
            t.add(&s.stats_out);
            t.errors += s.stats_in.errors.load(Relaxed);
            self.ended_relayed.add(t);
            let mut k = Totals::default();
            k.add(&s.kernel_in);
            self.ended_kernel.add(k);
        }
    }

    /// What ended calls plus `live` ones relayed since start, and the share
    /// forwarded in the kernel.
    pub fn relayed_since_start(&self, live: &Live) -> (Totals, Totals) {
        let relayed = self.ended_relayed.get().plus(live.relayed);
        let kernel = self.ended_kernel.get().plus(live.kernel);
        (relayed, kernel)
    }

    /// Stores the rates the timer computed.
    pub fn set_rates(&self, rates: Rates) {
        self.rate_relayed.store(rates.relayed);
        self.rate_kernel.store(rates.kernel);
    }

    /// The counters now, with the live calls' share.
    pub fn snapshot(&self, live: &Live) -> StatsSnapshot {
        let (relayed, kernel) = self.relayed_since_start(live);
        let managed = self.managed.load(Relaxed);
        let (call_duration_secs, call_duration2_secs) = *self
            .durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        StatsSnapshot {
            calls: live.calls as u64,
            uptime_secs: self.started.elapsed().as_secs(),
            managed,
            rejected: self.rejected.load(Relaxed),
            timeout: self.timeout.load(Relaxed),
            silent_timeout: self.silent_timeout.load(Relaxed),
            final_timeout: self.final_timeout.load(Relaxed),
            offer_timeout: self.offer_timeout.load(Relaxed),
            regular: self.regular.load(Relaxed),
            forced: self.forced.load(Relaxed),
            relayed,
            kernel,
            rates: Rates {
                relayed: self.rate_relayed.get(),
                kernel: self.rate_kernel.get(),
            },
            call_duration_secs,
            call_duration2_secs,
            zero_streams: self.zero_streams.load(Relaxed),
            one_way_streams: self.one_way_streams.load(Relaxed),
            streams: live.streams,
            kernel_refusals: Default::default(),
        }
    }
}

/// Packets relayed by a call (sent to its parties; errors of both ways).
pub fn relayed(call: &Call) -> Totals {
    let mut t = Totals::default();
    for s in call.sockets() {
        t.add(&s.stats_out);
        t.errors += s.stats_in.errors.load(Relaxed);
    }
    t
}

/// What a call's sockets forwarded in the kernel.
pub fn kernel(call: &Call) -> Totals {
    let mut t = Totals::default();
    for s in call.sockets() {
        t.add(&s.kernel_in);
    }
    t
}

/// A call's media streams (RTP sockets) by where they are relayed now.
pub fn streams(call: &Call) -> Streams {
    let mut n = Streams::default();
    for s in call.shown_sockets().filter(|s| !s.is_rtcp) {
        if s.offloaded() {
            n.kernel += 1;
        } else if s.kernel_in.packets.load(Relaxed) > 0 {
            n.mixed += 1;
        } else {
            n.userspace += 1;
        }
    }
    n
}

/// A call's RTP streams that received nothing, and those that received
/// media while the stream they relay to received none (one-way media).
fn silent_streams(call: &Call) -> (u64, u64) {
    let (mut zero, mut one_way) = (0, 0);
    for s in call.shown_sockets().filter(|s| !s.is_rtcp) {
        if s.stats_in.packets.load(Relaxed) == 0 {
            zero += 1;
            continue;
        }
        let peer = s.state().peer_rtp.upgrade();
        if peer.is_some_and(|p| p.stats_in.packets.load(Relaxed) == 0) {
            one_way += 1;
        }
    }
    (zero, one_way)
}
