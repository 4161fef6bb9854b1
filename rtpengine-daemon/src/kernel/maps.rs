//! Reading and writing this table's entries in the shared maps.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use aya::maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray, PerCpuValues, XskMap};
use aya::Ebpf;
use rtpengine_common::{
    FlowKey, FlowStats, FlowTarget, TableLease, TableStats, XskSlotKey, XskSlots, FAMILY_V4,
    FAMILY_V6,
};

use super::{format_entries, now_ns, Kernel};

pub(super) struct Maps {
    pub(super) flows: HashMap<MapData, FlowKey, FlowTarget>,
    pub(super) stats: HashMap<MapData, FlowKey, FlowStats>,
    pub(super) table_stats: PerCpuArray<MapData, TableStats>,
    pub(super) lease: Array<MapData, TableLease>,
    pub(super) xsks: XskMap<MapData>,
    pub(super) xsk_slots: HashMap<MapData, XskSlotKey, XskSlots>,
    /// `XSKS` slots this table gave out so far (from its first one).
    pub(super) xsk_used: u32,
}

/// The shared flow table has no room for another entry (`E2BIG` from the
/// hash map): [`MAX_FLOWS`](rtpengine_common::MAX_FLOWS) entries across all
/// tables.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "kernel flow table full ({} entries shared by all tables)",
    rtpengine_common::MAX_FLOWS
)]
pub struct TableFull;

pub(super) const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;

impl Kernel {
    pub(super) fn maps(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Maps>> {
        self.maps
            .lock()
            .map_err(|_| anyhow!("kernel map state poisoned"))
    }

    pub(super) fn nexthops(&self) -> std::sync::MutexGuard<'_, super::nexthop::NextHops> {
        self.nexthops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Installs (or replaces) the entry for local endpoint `key`. The target's
    /// `table` is set to this handle's table and its next hop to the one the
    /// daemon resolved (see `nexthop`); counters of an existing entry are
    /// kept. Fails if the key belongs to another table or the entry is invalid
    /// (family mismatch, unknown flags).
    pub fn install(&self, key: FlowKey, target: FlowTarget) -> anyhow::Result<()> {
        let key = normalize_key(key)?;
        // Held while writing, so the monitor cannot replace this next hop
        // between the lookup and the write.
        let mut hops = self.nexthops();
        let mut target = target;
        hops.fill(key, &mut target);
        let written = self.write(key, target);
        if written.is_err() {
            hops.forget(&key);
        }
        written
    }

    pub(super) fn write(&self, key: FlowKey, target: FlowTarget) -> anyhow::Result<()> {
        let mut target = target;
        target.table = self.table.get();
        target._pad = 0;
        target.expected_src._pad = [0; 2];
        target.src._pad = [0; 2];
        target.dst._pad = [0; 2];
        target._pad2 = [0; 2];
        // A target family other than the key's is translated by the
        // dataplane.
        if target.family != FAMILY_V4 && target.family != FAMILY_V6 {
            bail!(
                "flow {}: unknown target family {}",
                fmt_key(&key),
                target.family
            );
        }
        if target.flags & !FlowTarget::ALL_FLAGS != 0 {
            bail!(
                "flow {}: unknown flag bits {:#x}",
                fmt_key(&key),
                target.flags
            );
        }
        let mut maps = self.maps()?;
        let replacing = match maps.flows.get(&key, 0) {
            Ok(existing) if existing.table != self.table.get() => bail!(
                "flow {} is owned by kernel table {}, not {}",
                fmt_key(&key),
                existing.table,
                self.table
            ),
            Ok(_) => true,
            Err(_) => false,
        };
        // A replaced entry keeps its counters; a new one starts from zero even
        // if a packet in flight during an earlier remove re-created them.
        let flags = if replacing { BPF_NOEXIST } else { BPF_ANY };
        let _ = maps.stats.insert(key, FlowStats::default(), flags);
        if let Err(e) = maps.flows.insert(key, target, BPF_ANY) {
            if !replacing {
                let _ = maps.stats.remove(&key);
            }
            if matches!(&e, MapError::SyscallError(s) if s.io_error.raw_os_error() == Some(libc::E2BIG))
            {
                return Err(anyhow::Error::new(TableFull))
                    .with_context(|| format!("installing kernel flow {}", fmt_key(&key)));
            }
            return Err(e).with_context(|| format!("installing kernel flow {}", fmt_key(&key)));
        }
        Ok(())
    }

    /// Removes the entry for `key` and its counters (no-op if absent; refuses
    /// entries of other tables).
    pub fn remove(&self, key: FlowKey) -> anyhow::Result<()> {
        let key = normalize_key(key)?;
        // Only this table's keys are in the cache.
        self.nexthops().forget(&key);
        let mut maps = self.maps()?;
        match maps.flows.get(&key, 0) {
            Ok(t) if t.table != self.table.get() => bail!(
                "flow {} is owned by kernel table {}, not {}",
                fmt_key(&key),
                t.table,
                self.table
            ),
            Ok(_) => {
                ignore_missing(maps.flows.remove(&key))
                    .with_context(|| format!("removing kernel flow {}", fmt_key(&key)))?;
                ignore_missing(maps.stats.remove(&key))
                    .with_context(|| format!("removing counters of {}", fmt_key(&key)))?;
                Ok(())
            }
            Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("looking up kernel flow {}", fmt_key(&key))),
        }
    }

    /// The target installed for `key` by this table.
    pub fn target(&self, key: FlowKey) -> Option<FlowTarget> {
        let maps = self.maps().ok()?;
        maps.flows
            .get(&key, 0)
            .ok()
            .filter(|t| t.table == self.table.get())
    }

    /// Counters of `key` (`None` if this table has no such entry).
    pub fn stats(&self, key: FlowKey) -> Option<FlowStats> {
        let maps = self.maps().ok()?;
        let t = maps.flows.get(&key, 0).ok()?;
        if t.table != self.table.get() {
            return None;
        }
        Some(maps.stats.get(&key, 0).unwrap_or_default())
    }

    /// All entries of this table with their counters.
    pub fn entries(&self) -> Vec<(FlowKey, FlowTarget, FlowStats)> {
        let Ok(maps) = self.maps() else {
            return Vec::new();
        };
        collect_entries(&maps.flows, &maps.stats, Some(self.table.get()))
    }

    /// How many flows this table holds now.
    pub fn flow_count(&self) -> anyhow::Result<usize> {
        let maps = self.maps()?;
        Ok(maps
            .flows
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, t)| t.table == self.table.get())
            .count())
    }

    /// This table's totals (summed over CPUs) since it was opened.
    pub fn table_stats(&self) -> anyhow::Result<TableStats> {
        let maps = self.maps()?;
        let per_cpu = maps
            .table_stats
            .get(&self.table.get(), 0)
            .context("reading per-table counters")?;
        Ok(sum_table_stats(per_cpu.iter()))
    }

    /// Human-readable listing of this table (see [`dump`]).
    pub fn dump(&self) -> String {
        format_entries(self.table.get(), &self.entries(), now_ns())
    }

    /// Removes every entry of this table (returns how many).
    pub fn flush(&self) -> anyhow::Result<usize> {
        let mut hops = self.nexthops();
        hops.clear();
        let mut maps = self.maps()?;
        let mine: Vec<FlowKey> = maps
            .flows
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, t)| t.table == self.table.get())
            .map(|(k, _)| k)
            .collect();
        for k in &mine {
            ignore_missing(maps.flows.remove(k))
                .with_context(|| format!("removing kernel flow {}", fmt_key(k)))?;
            let _ = maps.stats.remove(k);
        }
        Ok(mine.len())
    }

    pub(super) fn reset_table_stats(&self) {
        let Ok(mut maps) = self.maps() else { return };
        let Ok(n) = aya::util::nr_cpus() else { return };
        if let Ok(zero) = PerCpuValues::try_from(vec![TableStats::default(); n]) {
            let _ = maps.table_stats.set(self.table.get(), zero, 0);
        }
    }

    /// Tables other than ours with entries in `FLOWS`.
    pub(super) fn other_tables(&self) -> anyhow::Result<Vec<u32>> {
        let maps = self.maps()?;
        let mut tables: Vec<u32> = maps
            .flows
            .iter()
            .filter_map(Result::ok)
            .map(|(_, t)| t.table)
            .filter(|t| *t != self.table.get())
            .collect();
        tables.sort_unstable();
        tables.dedup();
        Ok(tables)
    }
}

pub(super) fn take_map<V: TryFrom<Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    name: &str,
    pin_dir: &Path,
) -> anyhow::Result<V> {
    let map = ebpf
        .take_map(name)
        .with_context(|| format!("map {name} missing from the eBPF object"))?;
    V::try_from(map).map_err(|e| {
        anyhow!(
            "map {name} pinned in {} has an incompatible layout ({e}); a build with a \
             different layout must bump MAP_LAYOUT_VERSION, or remove the stale pin",
            pin_dir.display()
        )
    })
}

pub(crate) fn collect_entries(
    flows: &HashMap<MapData, FlowKey, FlowTarget>,
    stats: &HashMap<MapData, FlowKey, FlowStats>,
    table: Option<u32>,
) -> Vec<(FlowKey, FlowTarget, FlowStats)> {
    let mut out: Vec<_> = flows
        .iter()
        .filter_map(Result::ok)
        .filter(|(_, t)| table.is_none_or(|n| t.table == n))
        .map(|(k, t)| {
            let s = stats.get(&k, 0).unwrap_or_default();
            (k, t, s)
        })
        .collect();
    out.sort_by_key(|(k, t, _)| (t.table, k.family, k.addr, u16::from_be_bytes(k.port)));
    out
}

fn sum_table_stats<'s, I: Iterator<Item = &'s TableStats>>(it: I) -> TableStats {
    it.fold(TableStats::default(), |a, s| TableStats {
        packets: a.packets + s.packets,
        bytes: a.bytes + s.bytes,
        errors: a.errors + s.errors,
        fallback: a.fallback + s.fallback,
        expired: a.expired + s.expired,
    })
}

pub(super) fn normalize_key(mut key: FlowKey) -> anyhow::Result<FlowKey> {
    key._pad = 0;
    match key.family {
        FAMILY_V4 => key.addr[4..].fill(0),
        FAMILY_V6 => {}
        f => bail!("flow key with unknown family {f}"),
    }
    Ok(key)
}

pub(super) fn ignore_missing(r: Result<(), MapError>) -> Result<(), MapError> {
    match r {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

pub(crate) fn fmt_key(k: &FlowKey) -> String {
    k.socket_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| format!("<family {}>", k.family))
}
