//! [`Offload`] for the relay: turns its [`Rule`]s into flow entries and the
//! kernel's counters back into relay counters, and counts and logs the
//! streams the kernel refuses.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use super::{
    flow_key, now_ns, FlowKey, FlowStats, FlowTarget, FlowTargetBuilder, Kernel, SourcePolicy,
    TableFull,
};
use crate::clock;
use crate::relay::offload::{KernelCounters, Offload, OffloadError, Refusals, Rule};

/// Refused streams, counted per reason and logged once per episode: the
/// first refusal after a success is logged, the rest only counted (a full
/// table would otherwise log every new stream), and the first success after
/// refusals says so.
#[derive(Debug, Default)]
pub(super) struct RefusalLog {
    full: AtomicU64,
    rejected: AtomicU64,
    refusing: AtomicBool,
}

impl RefusalLog {
    fn refused(&self, table: super::TableId, e: anyhow::Error) -> OffloadError {
        let full = e.downcast_ref::<TableFull>().is_some();
        if full {
            self.full.fetch_add(1, Relaxed);
        } else {
            self.rejected.fetch_add(1, Relaxed);
        }
        if !self.refusing.swap(true, Relaxed) {
            tracing::error!(%table, error = %format!("{e:#}"), "Kernel refused a media stream: new streams stay in userspace (counted as kernel refusals) until it accepts one again");
        }
        if full {
            OffloadError::Full
        } else {
            OffloadError::Rejected(e)
        }
    }

    fn accepted(&self, table: super::TableId) {
        if self.refusing.load(Relaxed) && self.refusing.swap(false, Relaxed) {
            tracing::info!(%table, refused = self.full.load(Relaxed) + self.rejected.load(Relaxed), "Kernel accepts media streams again");
        }
    }
}

impl Offload for Kernel {
    fn install(&self, local: SocketAddr, rule: &Rule) -> Result<(), OffloadError> {
        self.install_rule(local, rule)
            .map(|()| self.refusals.accepted(self.table))
            .map_err(|e| self.refusals.refused(self.table, e))
    }

    fn refusals(&self) -> Refusals {
        Refusals {
            full: self.refusals.full.load(Relaxed),
            rejected: self.refusals.rejected.load(Relaxed),
        }
    }

    fn remove(&self, local: SocketAddr) {
        // Stopping for a restart: the flow stays for the next daemon.
        if self.retaining.load(Relaxed) {
            return;
        }
        if let Err(e) = Kernel::remove(self, flow_key(local)) {
            tracing::warn!(%local, error = %format!("{e:#}"), "Failed to remove kernel flow");
        }
    }

    fn counters(&self, local: SocketAddr) -> Option<KernelCounters> {
        self.stats(flow_key(local)).map(counters_of)
    }
}

/// The relay's view of a flow's counters. The kernel stamps
/// CLOCK_MONOTONIC_COARSE; it is mapped onto the relay's clock by its age.
fn counters_of(s: FlowStats) -> KernelCounters {
    let last_ms = if s.last_seen_ns == 0 {
        0
    } else {
        let age_ms = now_ns().saturating_sub(s.last_seen_ns) / 1_000_000;
        clock::now_ms().saturating_sub(age_ms).max(1)
    };
    KernelCounters {
        packets: s.packets,
        bytes: s.bytes,
        errors: s.errors,
        last_ms,
    }
}

/// The relay's rule of an installed flow.
fn rule_of(key: &FlowKey, t: &FlowTarget) -> Option<Rule> {
    Some(Rule {
        expected_src: t.expected_src.socket_addr(key.family)?,
        src: t.src.socket_addr(t.family)?,
        dst: t.dst.socket_addr(t.family)?,
        strict: t.flags & FlowTarget::STRICT_SOURCE != 0,
        punt_mismatch: t.flags & FlowTarget::PASS_ON_MISMATCH != 0,
        tos: (t.flags & FlowTarget::SET_TOS != 0).then_some(t.tos),
        punt_rtcp: t.flags & FlowTarget::PUNT_RTCP != 0,
    })
}

impl Kernel {
    /// Whether this table keeps its flows across a restart (`keep_flows`,
    /// unless persistence turned out unavailable).
    pub fn keeps_flows(&self) -> bool {
        self.keep_flows.load(Relaxed)
    }

    /// Persistence is not available after all: flows go at a clean stop.
    pub fn drop_flows_at_stop(&self) {
        self.keep_flows.store(false, Relaxed);
    }

    /// The daemon stops and will be restarted with its calls (`keep_flows`):
    /// from now on the sockets that close leave their flows in place, for
    /// the next daemon to adopt (or the lease to end).
    pub fn retain_for_restart(&self) {
        if self.keeps_flows() {
            self.retaining.store(true, Relaxed);
        }
    }

    /// While `on`, sockets that close leave the table's flows alone (a
    /// restore replaying calls; [`Kernel::adopt_flows`] then removes the
    /// flows nobody took).
    pub fn hold_flows(&self, on: bool) {
        self.retaining.store(on, Relaxed);
    }

    /// After a restart that kept the table's flows: offers each to `adopt`
    /// (the restored socket with that local address takes it over, with its
    /// rule and counters) and removes the ones nobody took. The adopted ones
    /// are written again, so their next hops are tracked by this process.
    /// Returns (adopted, removed).
    pub fn adopt_flows(
        &self,
        mut adopt: impl FnMut(SocketAddr, Rule, KernelCounters) -> bool,
    ) -> (usize, usize) {
        let (mut adopted, mut removed) = (0, 0);
        for (key, t, s) in self.entries() {
            // Steering flows are this process's own (the previous one's
            // went at open): sockets restored so far steered again.
            if t.flags & FlowTarget::TO_XSK != 0 {
                continue;
            }
            // Written again first: a socket only takes over a flow that is
            // there, with its next hop tracked by this process.
            let taken = match (key.socket_addr(), rule_of(&key, &t)) {
                (Some(local), Some(rule)) => {
                    Kernel::install(self, key, t).is_ok() && adopt(local, rule, counters_of(s))
                }
                _ => false,
            };
            if taken {
                adopted += 1;
            } else {
                if let Err(e) = Kernel::remove(self, key) {
                    tracing::warn!(error = %format!("{e:#}"), "Failed to remove a kernel flow left over by the previous process");
                }
                removed += 1;
            }
        }
        (adopted, removed)
    }
}

impl Kernel {
    fn install_rule(&self, local: SocketAddr, rule: &Rule) -> anyhow::Result<()> {
        let policy = if rule.strict {
            SourcePolicy::Drop
        } else if rule.punt_mismatch {
            SourcePolicy::Userspace
        } else {
            SourcePolicy::Ignore
        };
        let mut b =
            FlowTargetBuilder::new(rule.src, rule.dst)?.expect_source(rule.expected_src, policy)?;
        if let Some(tos) = rule.tos {
            b = b.tos(tos);
        }
        if rule.punt_rtcp {
            b = b.punt_rtcp();
        }
        Kernel::install(self, flow_key(local), b.build())
    }
}
