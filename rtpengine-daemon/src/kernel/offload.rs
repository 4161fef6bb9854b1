//! [`Offload`] for the relay: turns its [`Rule`]s into flow entries and the
//! kernel's counters back into relay counters, and counts and logs the
//! streams the kernel refuses.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use super::{flow_key, now_ns, FlowTargetBuilder, Kernel, SourcePolicy, TableFull};
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
        if let Err(e) = Kernel::remove(self, flow_key(local)) {
            tracing::warn!(%local, error = %format!("{e:#}"), "Failed to remove kernel flow");
        }
    }

    fn counters(&self, local: SocketAddr) -> Option<KernelCounters> {
        let s = self.stats(flow_key(local))?;
        // The kernel stamps CLOCK_MONOTONIC_COARSE; map it onto the relay's
        // clock by its age.
        let last_ms = if s.last_seen_ns == 0 {
            0
        } else {
            let age_ms = now_ns().saturating_sub(s.last_seen_ns) / 1_000_000;
            clock::now_ms().saturating_sub(age_ms).max(1)
        };
        Some(KernelCounters {
            packets: s.packets,
            bytes: s.bytes,
            errors: s.errors,
            last_ms,
        })
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
