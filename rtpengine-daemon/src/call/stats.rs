//! Daemon-wide counters for `statistics`, and what one call has relayed.
//! The reply dictionaries are built by the command handlers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
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
    pub kernel_packets: u64,
}

/// Per-second rates, as the timer last computed them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    /// Packets, bytes and errors relayed per second (userspace and kernel).
    pub relayed: Totals,
    /// Packets per second forwarded in the kernel.
    pub kernel_packets: u64,
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
    duration_ms: AtomicU64,
    /// What ended calls relayed.
    ended_relayed: AtomicTotals,
    /// The share of it forwarded in the kernel.
    ended_kernel_packets: AtomicU64,
    rate_relayed: AtomicTotals,
    rate_kernel_packets: AtomicU64,
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
            duration_ms: AtomicU64::new(0),
            ended_relayed: AtomicTotals::default(),
            ended_kernel_packets: AtomicU64::new(0),
            rate_relayed: AtomicTotals::default(),
            rate_kernel_packets: AtomicU64::new(0),
        }
    }
}

/// Everything `statistics` reports, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    /// The share of the packets forwarded in the kernel.
    pub kernel_packets: u64,
    /// Rates over the last second.
    pub rates: Rates,
    /// Average duration of the ended calls, seconds.
    pub avg_call_duration_secs: u64,
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
        self.duration_ms
            .fetch_add(clock::now_ms().saturating_sub(call.created_ms), Relaxed);
        self.ended_relayed.add(relayed(call));
        self.ended_kernel_packets
            .fetch_add(kernel_packets(call), Relaxed);
    }

    /// What ended calls plus `live` ones relayed since start, and the share
    /// forwarded in the kernel.
    pub fn relayed_since_start(&self, live: &Live) -> (Totals, u64) {
        let relayed = self.ended_relayed.get().plus(live.relayed);
        let kernel = self.ended_kernel_packets.load(Relaxed) + live.kernel_packets;
        (relayed, kernel)
    }

    /// Stores the rates the timer computed.
    pub fn set_rates(&self, rates: Rates) {
        self.rate_relayed.store(rates.relayed);
        self.rate_kernel_packets
            .store(rates.kernel_packets, Relaxed);
    }

    /// The counters now, with the live calls' share.
    pub fn snapshot(&self, live: &Live) -> StatsSnapshot {
        let (relayed, kernel_packets) = self.relayed_since_start(live);
        let managed = self.managed.load(Relaxed);
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
            kernel_packets,
            rates: Rates {
                relayed: self.rate_relayed.get(),
                kernel_packets: self.rate_kernel_packets.load(Relaxed),
            },
            avg_call_duration_secs: self
                .duration_ms
                .load(Relaxed)
                .checked_div(managed)
                .unwrap_or(0)
                / 1000,
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

/// Packets of a call forwarded in the kernel.
pub fn kernel_packets(call: &Call) -> u64 {
    call.sockets()
        .map(|s| s.kernel_in.packets.load(Relaxed))
        .sum()
}
