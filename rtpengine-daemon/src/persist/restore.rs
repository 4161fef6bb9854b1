//! Restoring the calls stored in Redis at start, and adopting the kernel
//! flows the previous process left for them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::Persist;
use crate::call::{Call, Calls};
use crate::kernel::Kernel;
use crate::relay::MediaSocket;
use crate::server::dispatch::Control;

/// What a restore did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Calls back.
    pub calls: usize,
    /// Stored calls whose journal did not replay fully (those that did not
    /// come back at all are dropped from Redis).
    pub failed: usize,
    /// Keys that are not ours.
    pub foreign: usize,
    /// Kernel flows taken over by restored sockets.
    pub adopted: usize,
    /// Kernel flows of the previous process nobody took (removed).
    pub removed: usize,
}

/// Replays every stored call's journal through `control` with its ports
/// planned, then hands the table's kept flows to the restored sockets. Runs
/// before the control listeners open. A `standby` restores them as foreign
/// calls (another daemon owns them).
pub async fn restore(
    persist: &Arc<Persist>,
    control: &Control,
    calls: &Calls,
    kernel: Option<&Kernel>,
    standby: bool,
) -> anyhow::Result<Restored> {
    let (records, foreign) = persist.store.load().await?;
    let mut done = Restored {
        foreign,
        ..Restored::default()
    };
    // Every stored call's ports are held for it before any replays: a call
    // that cannot get one of its own then takes a random port, never
    // another call's.
    for p in records.iter().flat_map(|r| r.ports.iter()) {
        if let Some(pool) = calls.interfaces.pool_of(p.ip()) {
            pool.reserve(p.port());
        }
    }
    // Sockets that a replay opens and closes again (replaced ports, a
    // replayed delete) must not take the kept flows with them: the flows
    // nobody adopts are removed at the end.
    if let Some(k) = kernel {
        k.hold_flows(true);
    }
    for r in &records {
        let ok = replay(control, calls, r, 0, 0).await;
        let back = calls.with_call_mut(&r.call_id, |_| ()).is_some();
        if back && standby {
            persist.follow(calls, &r.call_id, r.journal.len());
        }
        if back && ok {
            done.calls += 1;
        } else if back {
            // Partly restored: keep what replayed, and store that.
            done.calls += 1;
            done.failed += 1;
        } else {
            done.failed += 1;
            if !standby {
                persist.store.delete(&r.call_id);
            }
        }
        // Replays never wait: let the lease renewal and the timer run.
        tokio::task::yield_now().await;
    }
    for i in calls.interfaces.iter() {
        for a in &i.addrs {
            a.pool.release_reserved();
        }
    }
    // Store what replayed (identical unless something failed); a standby
    // leaves the owner's data alone.
    for r in records.iter().filter(|_| !standby) {
        if let Some(rec) = calls.with_call_mut(&r.call_id, |c| super::Record::of(c)) {
            if rec != *r {
                persist.store.set(rec);
            }
        }
    }
    if let Some(k) = kernel {
        let sockets: HashMap<SocketAddr, Arc<MediaSocket>> = calls
            .lock()
            .values()
            .flat_map(Call::sockets)
            .map(|s| (s.local, Arc::clone(s)))
            .collect();
        let (adopted, removed) = k.adopt_flows(|local, rule, counters| {
            sockets.get(&local).is_some_and(|s| s.adopt(rule, counters))
        });
        k.hold_flows(false);
        done.adopted = adopted;
        done.removed = removed;
    }
    tracing::info!(
        standby,
        calls = done.calls,
        failed = done.failed,
        foreign_keys = done.foreign,
        kernel_flows_adopted = done.adopted,
        kernel_flows_removed = done.removed,
        "Restored calls from Redis"
    );
    Ok(done)
}

/// Replays `r`'s journal from entry `from` on, with its ports from
/// `ports_from` on planned; whether every entry applied.
pub(super) async fn replay(
    control: &Control,
    calls: &Calls,
    r: &super::Record,
    from: usize,
    ports_from: usize,
) -> bool {
    calls.plan_ports(
        &r.call_id,
        r.ports.get(ports_from..).unwrap_or_default().to_vec(),
    );
    let mut ok = true;
    for e in r.journal.get(from..).unwrap_or_default() {
        if let Err(err) = control.replay(&e.request, e.peer).await {
            tracing::warn!(call_id = %r.call_id, error = %err, "A stored request no longer applies");
            ok = false;
        }
    }
    calls.plan_ports(&r.call_id, Vec::new());
    ok
}
