//! [`Offload`] for the relay: turns its [`Rule`]s into flow entries and the
//! kernel's counters back into relay counters.

use std::net::SocketAddr;

use super::{flow_key, now_ns, FlowTargetBuilder, Kernel, SourcePolicy};
use crate::clock;
use crate::relay::offload::{KernelCounters, Offload, Rule};

impl Offload for Kernel {
    fn install(&self, local: SocketAddr, rule: &Rule) -> anyhow::Result<()> {
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
