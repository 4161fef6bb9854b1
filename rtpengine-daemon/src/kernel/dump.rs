//! Human-readable listing of kernel tables (for a `dump-table N` command),
//! in the spirit of rtpengine's `/proc/rtpengine/N/list`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Context as _};
use aya::maps::{HashMap, Map, MapData};
use rtpengine_common::{FlowKey, FlowStats, FlowTarget, FLOWS_MAP, FLOW_STATS_MAP};

use super::maps::{collect_entries, fmt_key};
use super::{default_pin_dir, now_ns, TableId};

/// Lists table `table` from the maps pinned in the default pin directory
/// (works while a daemon runs, from another process).
pub fn dump(table: TableId) -> anyhow::Result<String> {
    dump_from(&default_pin_dir(), Some(table))
}

/// Lists table `table` (or every table with `None`) from the maps pinned in
/// `pin_dir`.
pub fn dump_from(pin_dir: &Path, table: Option<TableId>) -> anyhow::Result<String> {
    let open = |name: &str| -> anyhow::Result<Map> {
        let path = pin_dir.join(name);
        let data = MapData::from_pin(&path).map_err(|e| {
            anyhow!(
                "no kernel forwarding maps at {} ({e}); is a daemon with a kernel table running?",
                path.display()
            )
        })?;
        Map::from_map_data(data).with_context(|| format!("opening {}", path.display()))
    };
    let flows: HashMap<MapData, FlowKey, FlowTarget> =
        HashMap::try_from(open(FLOWS_MAP)?).context("FLOWS has an unexpected layout")?;
    let stats: HashMap<MapData, FlowKey, FlowStats> =
        HashMap::try_from(open(FLOW_STATS_MAP)?).context("FLOW_STATS has an unexpected layout")?;
    let entries = collect_entries(&flows, &stats, table.map(TableId::get));
    let now = now_ns();
    match table {
        Some(n) => Ok(format_entries(n.get(), &entries, now)),
        None => {
            let mut tables: Vec<u32> = entries.iter().map(|(_, t, _)| t.table).collect();
            tables.dedup();
            let mut out = String::new();
            for n in tables {
                let mine: Vec<_> = entries
                    .iter()
                    .filter(|(_, t, _)| t.table == n)
                    .copied()
                    .collect();
                out.push_str(&format_entries(n, &mine, now));
            }
            if out.is_empty() {
                out.push_str("no kernel forwarding entries\n");
            }
            Ok(out)
        }
    }
}

/// Formats entries of table `table`; `now` is [`now_ns`] (CLOCK_MONOTONIC).
pub fn format_entries(
    table: u32,
    entries: &[(FlowKey, FlowTarget, FlowStats)],
    now: u64,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "kernel table {table}: {} flow(s)", entries.len());
    for (k, t, s) in entries {
        if t.flags & FlowTarget::TO_XSK != 0 {
            let _ = writeln!(out, "local {} -> AF_XDP (relayed in userspace)", fmt_key(k));
            continue;
        }
        let ep = |e: &rtpengine_common::Endpoint| {
            e.socket_addr(t.family)
                .map(|a| a.to_string())
                .unwrap_or_else(|| "?".into())
        };
        let _ = writeln!(
            out,
            "local {} -> {} (source rewritten to {})",
            fmt_key(k),
            ep(&t.dst),
            ep(&t.src)
        );
        // Packets arrive in the key's family (the target's may differ: then
        // the dataplane translates).
        let expected = t
            .expected_src
            .socket_addr(k.family)
            .map(|a| a.to_string())
            .unwrap_or_else(|| "?".into());
        let policy = if t.flags & FlowTarget::STRICT_SOURCE != 0 {
            format!("expect {expected} (strict: drop others)")
        } else if t.flags & FlowTarget::PASS_ON_MISMATCH != 0 {
            format!("expect {expected} (others to userspace)")
        } else {
            "any source".to_string()
        };
        let tos = if t.flags & FlowTarget::SET_TOS != 0 {
            format!(", tos {:#04x}", t.tos)
        } else {
            String::new()
        };
        let ttl = if t.ttl != 0 {
            format!(", ttl {}", t.ttl)
        } else {
            String::new()
        };
        let rtcp = if t.flags & FlowTarget::PUNT_RTCP != 0 {
            ", RTCP to userspace"
        } else {
            ""
        };
        let _ = writeln!(out, "    {policy}{tos}{ttl}{rtcp}");
        if t.flags & FlowTarget::NEXT_HOP != 0 {
            let mac = |m: &[u8; 6]| {
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            };
            let _ = writeln!(
                out,
                "    next hop: device {}, {} -> {}, mtu {}",
                t.oif,
                mac(&t.smac),
                mac(&t.dmac),
                t.mtu
            );
        } else {
            let _ = writeln!(out, "    next hop: FIB lookup");
        }
        let last = if s.last_seen_ns == 0 {
            "never".to_string()
        } else {
            format!(
                "{:.1} s ago",
                now.saturating_sub(s.last_seen_ns) as f64 / 1e9
            )
        };
        let _ = writeln!(
            out,
            "    packets {}, bytes {}, errors {}, last packet {last}",
            s.packets, s.bytes, s.errors
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::target::SourcePolicy;
    use crate::kernel::{flow_key, FlowTargetBuilder};

    #[test]
    fn formats_an_entry() {
        let k = flow_key("192.0.2.1:30000".parse().unwrap());
        let mut t = FlowTargetBuilder::new(
            "192.0.2.1:30002".parse().unwrap(),
            "198.51.100.7:6000".parse().unwrap(),
        )
        .unwrap()
        .expect_source("198.51.100.5:5000".parse().unwrap(), SourcePolicy::Drop)
        .unwrap()
        .build();
        t.table = 3;
        let s = FlowStats {
            packets: 5,
            bytes: 860,
            errors: 1,
            last_seen_ns: 1_000_000_000,
        };
        let text = format_entries(3, &[(k, t, s)], 1_500_000_000);
        let mut resolved = t;
        resolved.flags |= FlowTarget::NEXT_HOP;
        resolved.oif = 4;
        resolved.smac = [2, 0, 0, 0, 0, 1];
        resolved.dmac = [2, 0, 0, 0, 0, 0xaa];
        resolved.mtu = 1500;
        assert!(
            format_entries(3, &[(k, resolved, s)], 1_500_000_000).contains(
                "    next hop: device 4, 02:00:00:00:00:01 -> 02:00:00:00:00:aa, mtu 1500\n"
            )
        );
        assert_eq!(
            text,
            "kernel table 3: 1 flow(s)\n\
             local 192.0.2.1:30000 -> 198.51.100.7:6000 (source rewritten to 192.0.2.1:30002)\n    \
             expect 198.51.100.5:5000 (strict: drop others), ttl 64\n    \
             next hop: FIB lookup\n    \
             packets 5, bytes 860, errors 1, last packet 0.5 s ago\n"
        );
    }
}
