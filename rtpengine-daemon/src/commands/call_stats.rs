//! The statistics tree `query` and `delete` answer with: the call, its
//! parties (tags), their media and each media's streams (sockets), in
//! upstream's layout.

use std::net::{IpAddr, SocketAddr};

use super::put;
use crate::call::{Call, Party};
use crate::clock;
use crate::ng::value::{Dict, Value};
use crate::relay::filter::Echo;
use crate::relay::ssrc::SsrcStats;
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

/// One SSRC's counters (upstream's `ng_stats_ssrc_1`), with its `SSRC`
/// key in lists.
fn ssrc_dict(e: &SsrcStats, with_ssrc: bool) -> Value {
    let mut d = Dict::new();
    if with_ssrc {
        put(&mut d, "SSRC", u64::from(e.ssrc));
    }
    put(&mut d, "bytes", e.bytes);
    put(&mut d, "packets", e.packets);
    put(&mut d, "last RTP timestamp", u64::from(e.last_ts));
    put(&mut d, "last RTP seq", u64::from(e.last_seq));
    Value::Dict(d)
}

fn ssrc_list(entries: &[SsrcStats]) -> Value {
    Value::List(entries.iter().map(|e| ssrc_dict(e, true)).collect())
}

/// The RTP ingress SSRCs of a media's sockets.
fn media_ssrcs(m: &crate::call::PartyMedia) -> Vec<SsrcStats> {
    m.sockets
        .as_ref()
        .map(|s| s.targets(m.mux).0.ssrcs())
        .unwrap_or_default()
}

fn stream_dict(s: &StreamInfo, created: u64, suite: Option<crate::crypto::Suite>) -> Value {
    let mut d = Dict::new();
    if let Some(suite) = suite {
        put(&mut d, "crypto suite", suite.name());
    }
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
    if let Some(first) = s.ssrcs.first() {
        put(&mut d, "SSRC", u64::from(first.ssrc));
    }
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

fn party_dict(call: &Call, me: usize) -> Value {
    let p = &call.parties[me];
    let mut d = Dict::new();
    put(&mut d, "tag", p.tag.clone().unwrap_or_default());
    put(&mut d, "created", p.created);
    if let Some(v) = &p.via_branch {
        put(&mut d, "via-branch", v.clone());
    }
    if !p.tag_aliases.is_empty() {
        let aliases = p.tag_aliases.iter().map(Value::str).collect();
        put(&mut d, "tag-aliases", Value::List(aliases));
    }
    if let Some(l) = &p.label {
        put(&mut d, "label", l.clone());
    }
    // Each party receives from its peer and sends to it; a caller with
    // forked callees is what several of them send to (subscribers).
    let tag_of = |q: &Party| q.tag.clone().unwrap_or_default();
    let link = |q: &Party| {
        let mut l = Dict::new();
        put(&mut l, "tag", tag_of(q));
        put(&mut l, "type", "offer/answer");
        Value::Dict(l)
    };
    let subscriptions: Vec<Value> = p
        .peer
        .and_then(|i| call.parties.get(i))
        .map(link)
        .into_iter()
        .collect();
    let subscribers: Vec<Value> = call
        .parties
        .iter()
        .filter(|q| q.peer == Some(me))
        .map(link)
        .collect();
    put(&mut d, "subscriptions", Value::List(subscriptions));
    put(&mut d, "subscribers", Value::List(subscribers));
    // No DTMF triggers here (VSC are reported as upstream does, empty).
    put(&mut d, "VSC", Value::List(Vec::new()));
    let medias = p
        .medias
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut md = Dict::new();
            put(&mut md, "index", (i + 1) as u64);
            put(&mut md, "type", m.kind.clone());
            put(&mut md, "protocol", m.protocol.clone());
            // The codec of the payload type received (upstream: once RTP came).
            let seen = m
                .sockets
                .as_ref()
                .and_then(|s| s.targets(m.mux).0.rtp_seen());
            if let Some(codec) = seen.and_then(|r| {
                let pt = r.payload_type().to_string();
                m.negotiated
                    .codecs_own
                    .iter()
                    .find(|c| c.pt == pt && !c.rtpmap.is_empty())
            }) {
                put(&mut md, "codec", codec.rtpmap.clone());
            }
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
            if m.negotiated.srtp {
                flags.push(Value::str("SDES"));
            }
            if m.loop_check {
                flags.push(Value::str("loop check"));
            }
            match p.echo {
                Echo::Off => {}
                Echo::Reflect => flags.push(Value::str("echo")),
                Echo::Blackhole => flags.push(Value::str("blackhole")),
            }
            put(&mut md, "flags", Value::List(flags));
            let streams = m
                .sockets
                .as_ref()
                .map(|s| {
                    s.shown()
                        .map(|s| stream_dict(&s.info(), p.created, m.srtp.suite()))
                        .collect()
                })
                .unwrap_or_default();
            put(&mut md, "streams", Value::List(streams));
            // What this party sends (ingress) and what it gets: its peer's
            // ingress on the same section (egress).
            put(&mut md, "ingress SSRCs", ssrc_list(&media_ssrcs(m)));
            let egress = p
                .peer
                .and_then(|q| call.parties.get(q))
                .and_then(|q| q.medias.get(i))
                .map(media_ssrcs)
                .unwrap_or_default();
            put(&mut md, "egress SSRCs", ssrc_list(&egress));
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
    put(
        &mut d,
        "created_ts",
        u64::try_from(call.created.as_micros()).unwrap_or(u64::MAX),
    );
    put(&mut d, "last signal", clock::unix_secs(call.last_signal_ms));
    put(&mut d, "last redis update", 0u64);
    let mut ssrcs = Dict::new();
    for e in call
        .parties
        .iter()
        .flat_map(|p| p.medias.iter())
        .flat_map(media_ssrcs)
    {
        ssrcs
            .entry(e.ssrc.to_string().into_bytes())
            .or_insert_with(|| ssrc_dict(&e, false));
    }
    put(&mut d, "SSRC", Value::Dict(ssrcs));
    let mut tags = Dict::new();
    let mut untagged = 0;
    for (i, p) in call.parties.iter().enumerate() {
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
        tags.insert(key.clone().into_bytes(), party_dict(call, i));
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
