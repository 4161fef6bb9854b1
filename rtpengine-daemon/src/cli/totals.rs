//! `list totals`, `list counters`, `list jsonstats` and `list interfaces`:
//! the daemon-wide statistics in upstream's text layout (` %-48s:%s` per
//! line), and as JSON.
//!
//! Left out, as this daemon has no data for them: the graphite interval
//! section (no graphite), MOS (no RTCP-XR/MOS computation) and transcoders
//! (no transcoding).

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::Cli;
use crate::call::StatsSnapshot;
use crate::ng::request::COMMAND_NAMES;

/// The ng commands of upstream 10.5's control-statistics table: column
/// title and command name.
const CONTROL_COLUMNS: &[(&str, &str)] = &[
    ("Ping", "ping"),
    ("Offer", "offer"),
    ("Answer", "answer"),
    ("Delete", "delete"),
    ("Query", "query"),
    ("List", "list"),
    ("StartRec", "start recording"),
    ("StopRec", "stop recording"),
    ("StartFwd", "start forwarding"),
    ("StopFwd", "stop forwarding"),
    ("BlkDTMF", "block DTMF"),
    ("UnblkDTMF", "unblock DTMF"),
    ("BlkMedia", "block media"),
    ("UnblkMedia", "unblock media"),
    ("PlayMedia", "play media"),
    ("StopMedia", "stop media"),
    ("PlayDTMF", "play DTMF"),
    ("Stats", "statistics"),
    ("SlnMedia", "silence media"),
    ("UnslnMedia", "unsilence media"),
    ("Pub", "publish"),
    ("SubReq", "subscribe request"),
    ("SubAns", "subscribe answer"),
    ("Unsub", "unsubscribe"),
];

/// One `label: value` line of the text layout.
fn line(out: &mut String, descr: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, " {descr:<48}:{value}");
}

/// The per-second rate lines (`list counters` and the current section).
fn rates(out: &mut String, s: &StatsSnapshot) {
    let (total, kernel, user) = (s.rates.relayed, s.rates.kernel, s.rates.userspace());
    line(out, "Packets per second (userspace)", user.packets);
    line(out, "Bytes per second (userspace)", user.bytes);
    line(out, "Errors per second (userspace)", user.errors);
    line(out, "Packets per second (kernel)", kernel.packets);
    line(out, "Bytes per second (kernel)", kernel.bytes);
    line(out, "Errors per second (kernel)", kernel.errors);
    line(out, "Packets per second (total)", total.packets);
    line(out, "Bytes per second (total)", total.bytes);
    line(out, "Errors per second (total)", total.errors);
}

/// `list counters`.
pub(super) fn counters(cli: &Cli, _: &str) -> String {
    let mut out = String::from("\nCurrent per-second counters:\n\n");
    rates(&mut out, &cli.calls.statistics());
    out
}

/// `list totals`.
pub(super) fn totals(cli: &Cli, _: &str) -> String {
    let s = cli.calls.statistics();
    let mut out = String::from("\nStatistics over currently running sessions:\n\n");
    line(&mut out, "Owned sessions", s.calls);
    line(&mut out, "Foreign sessions", 0);
    line(&mut out, "Total sessions", s.calls);
    line(&mut out, "Transcoded media", 0);
    rates(&mut out, &s);
    line(
        &mut out,
        "Userspace-only media streams",
        s.streams.userspace,
    );
    line(&mut out, "Kernel-only media streams", s.streams.kernel);
    line(
        &mut out,
        "Mixed kernel/userspace media streams",
        s.streams.mixed,
    );
    out.push_str("\nTotal statistics (does not include current running sessions):\n\n");
    line(
        &mut out,
        "Uptime of rtpengine",
        format!("{} seconds", s.uptime_secs),
    );
    line(&mut out, "Total managed sessions", s.managed);
    line(&mut out, "Total rejected sessions", s.rejected);
    line(&mut out, "Total timed-out sessions via TIMEOUT", s.timeout);
    line(
        &mut out,
        "Total timed-out sessions via SILENT_TIMEOUT",
        s.silent_timeout,
    );
    line(
        &mut out,
        "Total timed-out sessions via FINAL_TIMEOUT",
        s.final_timeout,
    );
    line(
        &mut out,
        "Total timed-out sessions via OFFER_TIMEOUT",
        s.offer_timeout,
    );
    line(&mut out, "Total regular terminated sessions", s.regular);
    line(&mut out, "Total forced terminated sessions", s.forced);
    let user = s.userspace();
    line(&mut out, "Total relayed packets (userspace)", user.packets);
    line(
        &mut out,
        "Total relayed packet errors (userspace)",
        user.errors,
    );
    line(&mut out, "Total relayed bytes (userspace)", user.bytes);
    line(&mut out, "Total relayed packets (kernel)", s.kernel.packets);
    line(
        &mut out,
        "Total relayed packet errors (kernel)",
        s.kernel.errors,
    );
    line(&mut out, "Total relayed bytes (kernel)", s.kernel.bytes);
    line(&mut out, "Total relayed packets", s.relayed.packets);
    line(&mut out, "Total relayed packet errors", s.relayed.errors);
    line(&mut out, "Total relayed bytes", s.relayed.bytes);
    line(
        &mut out,
        "Total number of streams with no relayed packets",
        s.zero_streams,
    );
    line(&mut out, "Total number of 1-way streams", s.one_way_streams);
    let secs = |v: f64| format!("{v:.6} seconds");
    line(
        &mut out,
        "Average call duration",
        secs(s.avg_call_duration()),
    );
    line(&mut out, "Total calls duration", secs(s.call_duration_secs));
    line(
        &mut out,
        "Total calls duration squared",
        format!("{:.6} seconds squared", s.call_duration2_secs),
    );
    line(
        &mut out,
        "Total calls duration standard deviation",
        secs(s.call_duration_stddev()),
    );
    out.push_str("\n\nControl statistics:\n\n");
    let _ = write!(out, " {:>20} ", "Proxy");
    for (title, _) in CONTROL_COLUMNS {
        let _ = write!(out, "| {title:>10} ");
    }
    out.push('\n');
    for (ip, c) in cli.control.snapshot() {
        let _ = write!(out, " {:>20} ", ip.to_string());
        for (_, name) in CONTROL_COLUMNS {
            let _ = write!(out, "| {:>10} ", count(&c.requests, name));
        }
        out.push('\n');
    }
    out.push_str("\n\n\n\n");
    out
}

/// The counter of command `name` in a per-command list.
fn count(per_command: &[u64], name: &str) -> u64 {
    COMMAND_NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| per_command.get(i))
        .copied()
        .unwrap_or(0)
}

/// `list interfaces`: each local address with its port range and use.
pub(super) fn interfaces(cli: &Cli, _: &str) -> String {
    let mut out = String::new();
    for i in cli.calls.interfaces.iter() {
        for a in &i.addrs {
            let (min, max) = a.pool.bounds();
            let (used, range) = (a.pool.used(), a.pool.range());
            let family = if a.local.is_ipv4() { "IPv4" } else { "IPv6" };
            let _ = write!(
                out,
                "Interface '{}' address '{}' ({family})\n Port range: {min:>5} - {max:>5}\n \
                 Ports used: {used:>5} / {range:>5} ({:>5.1}%)\n Last port used: {:>5}\n",
                i.name,
                a.local,
                used as f64 * 100.0 / range.max(1) as f64,
                a.pool.last_used(),
            );
        }
    }
    out
}

/// `list jsonstats`: the same statistics as one JSON object, with
/// upstream's keys (no newline at the end, as upstream).
pub(super) fn jsonstats(cli: &Cli, _: &str) -> String {
    let s = cli.calls.statistics();
    let (rate, krate, urate) = (s.rates.relayed, s.rates.kernel, s.rates.userspace());
    let user = s.userspace();
    let proxies: Vec<Value> = cli
        .control
        .snapshot()
        .into_iter()
        .map(|(ip, c)| {
            let mut p = Map::new();
            p.insert("proxy".into(), json!(ip.to_string()));
            for (i, name) in COMMAND_NAMES.iter().enumerate() {
                let key = short_key(name);
                let n = c.requests.get(i).copied().unwrap_or(0);
                let t = c.time.get(i).map_or(0.0, |d| d.as_secs_f64());
                p.insert(format!("{key}count"), json!(n));
                p.insert(format!("{key}duration"), json!(t));
            }
            p.insert("errorcount".into(), json!(c.errors));
            Value::Object(p)
        })
        .collect();
    let interfaces: Vec<Value> = cli
        .calls
        .interfaces
        .iter()
        .flat_map(|i| {
            i.addrs.iter().map(|a| {
                let (min, max) = a.pool.bounds();
                let (used, range) = (a.pool.used(), a.pool.range());
                json!({
                    "name": i.name,
                    "address": a.local.to_string(),
                    "ports": {
                        "min": min, "max": max, "used": used,
                        "used_pct": used as f64 * 100.0 / range.max(1) as f64,
                        "free": range.saturating_sub(used), "totals": range,
                        "last": a.pool.last_used(),
                    }
                })
            })
        })
        .collect();
    json!({
        "currentstatistics": {
            "sessionsown": s.calls, "sessionsforeign": 0, "sessionstotal": s.calls,
            "transcodedmedia": 0,
            "packetrate_user": urate.packets, "byterate_user": urate.bytes,
            "errorrate_user": urate.errors,
            "packetrate_kernel": krate.packets, "byterate_kernel": krate.bytes,
            "errorrate_kernel": krate.errors,
            "packetrate": rate.packets, "byterate": rate.bytes, "errorrate": rate.errors,
            "media_userspace": s.streams.userspace, "media_kernel": s.streams.kernel,
            "media_mixed": s.streams.mixed,
        },
        "totalstatistics": {
            "uptime": s.uptime_secs, "managedsessions": s.managed,
            "rejectedsessions": s.rejected, "timeoutsessions": s.timeout,
            "silenttimeoutsessions": s.silent_timeout,
            "finaltimeoutsessions": s.final_timeout,
            "offertimeoutsessions": s.offer_timeout,
            "regularterminatedsessions": s.regular,
            "forcedterminatedsessions": s.forced,
            "relayedpackets_user": user.packets, "relayedpacketerrors_user": user.errors,
            "relayedbytes_user": user.bytes,
            "relayedpackets_kernel": s.kernel.packets,
            "relayedpacketerrors_kernel": s.kernel.errors,
            "relayedbytes_kernel": s.kernel.bytes,
            "relayedpackets": s.relayed.packets, "relayedpacketerrors": s.relayed.errors,
            "relayedbytes": s.relayed.bytes,
            "zerowaystreams": s.zero_streams, "onewaystreams": s.one_way_streams,
            "avgcallduration": s.avg_call_duration(),
            "totalcallsduration": s.call_duration_secs,
            "totalcallsduration2": s.call_duration2_secs,
            "totalcallsduration_stddev": s.call_duration_stddev(),
        },
        "controlstatistics": { "proxies": proxies },
        "interfaces": interfaces,
    })
    .to_string()
}

/// Upstream's JSON key stem of a command: the lower-cased column title
/// (`offer`, `startrec`, `blkdtmf`, …), or the name without spaces for
/// commands newer than 10.5's table.
fn short_key(name: &str) -> String {
    CONTROL_COLUMNS
        .iter()
        .find(|(_, n)| *n == name)
        .map_or_else(|| name.replace(' ', ""), |(t, _)| (*t).to_owned())
        .to_ascii_lowercase()
}
