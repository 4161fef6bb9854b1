//! The table's lease: the dataplane forwards this table's flows only while
//! the daemon keeps renewing it, so media of a daemon that died (SIGKILL, a
//! crash, a control runtime that stopped running) stops within the lease
//! instead of flowing to its old peers for ever; a restart within the lease
//! keeps forwarding without a gap.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rtpengine_common::TableLease;

use super::{now_ns, Kernel};

/// Default lease (`--kernel-lease`): long enough for a restart, short enough
/// that a dead daemon's media stops within a few seconds.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);

impl Kernel {
    /// How long the dataplane keeps forwarding after the last renewal
    /// (`None`: for ever, as rtpengine's kernel module did).
    pub fn lease(&self) -> Option<Duration> {
        self.lease
    }

    /// Extends the lease to now + [`Kernel::lease`].
    pub fn renew_lease(&self) -> anyhow::Result<()> {
        let expires_ns = match self.lease {
            Some(l) => now_ns().saturating_add(u64::try_from(l.as_nanos()).unwrap_or(u64::MAX)),
            None => u64::MAX,
        };
        let mut maps = self.maps()?;
        maps.lease
            .set(self.table.get(), TableLease { expires_ns }, 0)
            .context("renewing the kernel table's lease")
    }

    /// Whether the table's lease (as the previous owner left it) has run
    /// out, or was never set.
    pub(super) fn lease_ran_out(&self) -> bool {
        let Ok(maps) = self.maps() else { return true };
        maps.lease
            .get(&self.table.get(), 0)
            .map_or(true, |l| l.expires_ns < now_ns())
    }

    /// How often to renew: five times per lease, so a late tick or two never
    /// lets it lapse, but at most once a second and at least every 100 ms.
    pub fn renew_interval(&self) -> Duration {
        self.lease
            .map_or(Duration::from_secs(1), |l| l / 5)
            .clamp(Duration::from_millis(100), Duration::from_secs(1))
    }
}

/// Renews `kernel`'s lease until the task is dropped. It runs on the control
/// runtime on purpose: if that runtime stops making progress, ng, timers and
/// the lease stop together, and the dataplane hands the media back to the
/// stack.
pub async fn keep_renewing(kernel: Arc<Kernel>) {
    let mut interval = tokio::time::interval(kernel.renew_interval());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        interval.tick().await;
        match kernel.renew_lease() {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(table = %kernel.table(), "kernel table lease renewed again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::error!(table = %kernel.table(), error = %format!("{e:#}"), "Failed to renew the kernel table lease: its flows stop within the lease");
            }
            Err(_) => {}
        }
    }
}
