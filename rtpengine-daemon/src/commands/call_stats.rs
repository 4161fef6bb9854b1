//! The statistics tree `query` and `delete` answer with: the call, its
//! parties (tags), their media and each media's streams (sockets), in
//! upstream's layout.

use std::net::{IpAddr, SocketAddr};

use super::put;
use crate::call::{Call, Party};
use crate::clock;
use crate::ng::value::{Dict, Value};
use crate::relay::{StreamInfo, Totals};
use crate::sdp::Direction;

fn totals(t: &Totals) -> Value {
    let mut d = Dict::new();
    put(&mut d, "packets", t.packets);
    put(&mut d, "bytes", t.bytes);
    put(&mut d, "errors", t.errors);
    Value::Dict(d)
}

fn family(a: &IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn endpoint_dict(ep: SocketAddr) -> Value {
    let mut d = Dict::new();
    put(&mut d, "family", family(&ep.ip()));
    put(&mut d, "address", ep.ip().to_string());
    put(&mut d, "port", u64::from(ep.port()));
    Value::Dict(d)
}

fn stream_dict(s: &StreamInfo, created: u64) -> Value {
    let mut d = Dict::new();
    put(&mut d, "local port", u64::from(s.local.port()));
    put(&mut d, "local address", s.local.ip().to_string());
    put(&mut d, "family", family(&s.local.ip()));
    if let Some(ep) = s.endpoint {
        put(&mut d, "endpoint", endpoint_dict(ep));
    }
    if let Some(ep) = s.advertised {
        put(&mut d, "advertised endpoint", endpoint_dict(ep));
    }
    let unix = |ms: u64| {
        if ms == 0 {
            created
        } else {
            clock::unix_secs(ms)
        }
    };
    put(&mut d, "last packet", unix(s.last_packet_ms));
    put(&mut d, "last user packet", unix(s.last_user_packet_ms));
    put(&mut d, "last kernel packet", unix(s.last_kernel_packet_ms));
    let mut flags = vec![Value::str(if s.is_rtcp { "RTCP" } else { "RTP" })];
    if s.endpoint.is_some() {
        flags.push(Value::str("filled"));
    }
    if s.confirmed {
        flags.push(Value::str("confirmed"));
    }
    if s.kernelized {
        flags.push(Value::str("kernelized"));
    } else if !s.kernel_capable {
        flags.push(Value::str("no kernel support"));
    }
    if s.strict {
        flags.push(Value::str("strict source address"));
    }
    if s.handover {
        flags.push(Value::str("media handover"));
    }
    put(&mut d, "flags", Value::List(flags));
    put(&mut d, "stats", totals(&s.received));
    put(&mut d, "stats_out", totals(&s.sent));
    Value::Dict(d)
}

fn party_dict(call: &Call, p: &Party) -> Value {
    let mut d = Dict::new();
    put(&mut d, "tag", p.tag.clone().unwrap_or_default());
    put(&mut d, "created", p.created);
    if let Some(v) = &p.via_branch {
        put(&mut d, "via-branch", v.clone());
    }
    if let Some(l) = &p.label {
        put(&mut d, "label", l.clone());
    }
    if let Some(peer) = p.peer.and_then(|i| call.parties.get(i)) {
        put(
            &mut d,
            "in dialogue with",
            peer.tag.clone().unwrap_or_default(),
        );
    }
    let medias = p
        .medias
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut md = Dict::new();
            put(&mut md, "index", (i + 1) as u64);
            put(&mut md, "type", m.kind.clone());
            put(&mut md, "protocol", m.protocol.clone());
            let mut flags = vec![Value::str("initialized")];
            if m.direction.sends() && !m.zero_address {
                flags.push(Value::str("send"));
            }
            if matches!(m.direction, Direction::SendRecv | Direction::RecvOnly) {
                flags.push(Value::str("recv"));
            }
            if m.mux {
                flags.push(Value::str("rtcp-mux"));
            }
            put(&mut md, "flags", Value::List(flags));
            let streams = m
                .sockets
                .as_ref()
                .map(|s| s.all().map(|s| stream_dict(&s.info(), p.created)).collect())
                .unwrap_or_default();
            put(&mut md, "streams", Value::List(streams));
            Value::Dict(md)
        })
        .collect();
    put(&mut d, "medias", Value::List(medias));
    Value::Dict(d)
}

/// The statistics tree of `query` and `delete`. With `only`, only the
/// parties with those tags are listed.
pub(super) fn call_stats(call: &Call, only: &[&str]) -> Dict {
    let mut d = Dict::new();
    put(&mut d, "created", call.created.as_secs());
    put(
        &mut d,
        "created_us",
        u64::from(call.created.subsec_micros()),
    );
    put(&mut d, "last signal", clock::unix_secs(call.last_signal_ms));
    put(&mut d, "last redis update", 0u64);
    put(&mut d, "SSRC", Value::Dict(Dict::new()));
    let mut tags = Dict::new();
    let mut untagged = 0;
    for p in &call.parties {
        let key = match &p.tag {
            Some(t) => t.clone(),
            None => {
                untagged += 1;
                format!("<untagged {untagged}>")
            }
        };
        if !only.is_empty() && !p.tag.as_deref().is_some_and(|t| only.contains(&t)) {
            continue;
        }
        tags.insert(key.clone().into_bytes(), party_dict(call, p));
    }
    put(&mut d, "tags", Value::Dict(tags));
    let (mut rtp, mut rtcp) = (Totals::default(), Totals::default());
    for s in call.sockets() {
        if s.is_rtcp {
            rtcp.add(&s.stats_in);
        } else {
            rtp.add(&s.stats_in);
        }
    }
    let mut sums = Dict::new();
    put(&mut sums, "RTP", totals(&rtp));
    put(&mut sums, "RTCP", totals(&rtcp));
    put(&mut d, "totals", Value::Dict(sums));
    d
}
