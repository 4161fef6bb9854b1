//! `statistics`: daemon-wide counters in upstream's layout.

use super::put;
use crate::call::{Calls, StatsSnapshot};
use crate::ng::value::{Dict, Value};

/// The reply.
pub(super) fn run(calls: &Calls) -> Dict {
    let mut d = Dict::new();
    put(&mut d, "statistics", Value::Dict(tree(&calls.statistics())));
    d
}

/// The `statistics` dictionary of a snapshot.
fn tree(s: &StatsSnapshot) -> Dict {
    let rate = s.rates.relayed.packets;
    let krate = s.rates.kernel.packets;
    let mut cur = Dict::new();
    put(&mut cur, "sessionsown", s.calls);
    put(&mut cur, "sessionsforeign", 0u64);
    put(&mut cur, "sessionstotal", s.calls);
    put(&mut cur, "transcodedmedia", 0u64);
    put(&mut cur, "packetrate", rate);
    put(&mut cur, "byterate", s.rates.relayed.bytes);
    put(&mut cur, "errorrate", s.rates.relayed.errors);
    put(&mut cur, "packetrate_user", s.rates.userspace().packets);
    put(&mut cur, "packetrate_kernel", krate);

    let mut tot = Dict::new();
    put(&mut tot, "uptime", s.uptime_secs);
    put(&mut tot, "managedsessions", s.managed);
    put(&mut tot, "rejectedsessions", s.rejected);
    put(&mut tot, "timeoutsessions", s.timeout);
    put(&mut tot, "silenttimeoutsessions", s.silent_timeout);
    put(&mut tot, "finaltimeoutsessions", s.final_timeout);
    put(&mut tot, "offertimeoutsessions", s.offer_timeout);
    put(&mut tot, "regularterminatedsessions", s.regular);
    put(&mut tot, "forcedterminatedsessions", s.forced);
    put(&mut tot, "relayedpackets", s.relayed.packets);
    put(&mut tot, "relayedbytes", s.relayed.bytes);
    put(&mut tot, "relayedpacketerrors", s.relayed.errors);
    put(&mut tot, "relayedpackets_user", s.userspace().packets);
    put(&mut tot, "relayedpackets_kernel", s.kernel.packets);
    // Ours: streams the kernel refused (table full, entry rejected).
    put(&mut tot, "kernelrefusedstreams", s.kernel_refusals.total());
    put(&mut tot, "zerowaystreams", s.zero_streams);
    put(&mut tot, "onewaystreams", s.one_way_streams);
    put(&mut tot, "avgcallduration", s.avg_call_duration() as u64);

    let mut d = Dict::new();
    put(&mut d, "currentstatistics", Value::Dict(cur));
    put(&mut d, "totalstatistics", Value::Dict(tot));
    let mut control = Dict::new();
    put(&mut control, "proxies", Value::List(Vec::new()));
    put(&mut d, "controlstatistics", Value::Dict(control));
    put(&mut d, "mos", Value::Dict(Dict::new()));
    d
}
