//! Counters and the `query`/`delete` statistics tree.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use super::{Call, EndReason, Party};
use crate::clock;
use crate::ng::value::{Dict, Value};
use crate::relay::{Counters, MediaSocket};

/// Daemon-wide counters for `statistics`.
#[derive(Debug)]
pub struct GlobalStats {
    started: Instant,
    managed: AtomicU64,
    rejected: AtomicU64,
    timeout: AtomicU64,
    silent_timeout: AtomicU64,
    offer_timeout: AtomicU64,
    final_timeout: AtomicU64,
    regular: AtomicU64,
    duration_ms: AtomicU64,
    ended: AtomicU64,
    /// Totals of calls that have ended.
    pub ended_totals: [AtomicU64; 3],
    /// Per-second rates computed by the timer: packets, bytes, errors.
    pub rates: [AtomicU64; 3],
    /// Packets of ended calls forwarded in the kernel.
    pub ended_kernel: AtomicU64,
    /// Per-second rate of packets forwarded in the kernel.
    pub kernel_rate: AtomicU64,
}

impl Default for GlobalStats {
    fn default() -> Self {
        GlobalStats {
            started: Instant::now(),
            managed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            timeout: AtomicU64::new(0),
            silent_timeout: AtomicU64::new(0),
            offer_timeout: AtomicU64::new(0),
            final_timeout: AtomicU64::new(0),
            regular: AtomicU64::new(0),
            duration_ms: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            ended_totals: Default::default(),
            rates: Default::default(),
            ended_kernel: AtomicU64::new(0),
            kernel_rate: AtomicU64::new(0),
        }
    }
}

/// Packet totals: packets, bytes, errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Errors.
    pub errors: u64,
}

impl Totals {
    fn add(&mut self, c: &Counters) {
        self.packets += c.packets.load(Relaxed);
        self.bytes += c.bytes.load(Relaxed);
        self.errors += c.errors.load(Relaxed);
    }

    fn dict(&self) -> Value {
        let mut d = Dict::new();
        put(&mut d, "packets", self.packets);
        put(&mut d, "bytes", self.bytes);
        put(&mut d, "errors", self.errors);
        Value::Dict(d)
    }
}

fn put(d: &mut Dict, k: &str, v: impl Into<Value>) {
    d.insert(k.as_bytes().to_vec(), v.into());
}

impl GlobalStats {
    /// A new call was refused by a limit.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    /// A call ended.
    pub fn ended(&self, call: &Call, why: EndReason) {
        let c = match why {
            EndReason::Deleted => &self.regular,
            EndReason::Timeout => &self.timeout,
            EndReason::SilentTimeout => &self.silent_timeout,
            EndReason::OfferTimeout => &self.offer_timeout,
            EndReason::FinalTimeout => &self.final_timeout,
        };
        c.fetch_add(1, Relaxed);
        // Upstream counts managed sessions when they end.
        self.managed.fetch_add(1, Relaxed);
        self.ended.fetch_add(1, Relaxed);
        self.duration_ms
            .fetch_add(clock::now_ms().saturating_sub(call.created_ms), Relaxed);
        let t = relayed(call);
        for (a, v) in self.ended_totals.iter().zip([t.packets, t.bytes, t.errors]) {
            a.fetch_add(v, Relaxed);
        }
        self.ended_kernel.fetch_add(kernel_packets(call), Relaxed);
    }

    /// The `statistics` reply.
    pub fn statistics(&self, calls: usize, live: Totals, live_kernel: u64) -> Dict {
        let total = |i: usize, live: u64| self.ended_totals[i].load(Relaxed) + live;
        let mut cur = Dict::new();
        put(&mut cur, "sessionsown", calls as u64);
        put(&mut cur, "sessionsforeign", 0u64);
        put(&mut cur, "sessionstotal", calls as u64);
        put(&mut cur, "transcodedmedia", 0u64);
        put(&mut cur, "packetrate", self.rates[0].load(Relaxed));
        put(&mut cur, "byterate", self.rates[1].load(Relaxed));
        put(&mut cur, "errorrate", self.rates[2].load(Relaxed));
        let krate = self.kernel_rate.load(Relaxed);
        put(
            &mut cur,
            "packetrate_user",
            self.rates[0].load(Relaxed).saturating_sub(krate),
        );
        put(&mut cur, "packetrate_kernel", krate);

        let ended = self.ended.load(Relaxed);
        let mut tot = Dict::new();
        put(&mut tot, "uptime", self.started.elapsed().as_secs());
        put(&mut tot, "managedsessions", self.managed.load(Relaxed));
        put(&mut tot, "rejectedsessions", self.rejected.load(Relaxed));
        put(&mut tot, "timeoutsessions", self.timeout.load(Relaxed));
        put(
            &mut tot,
            "silenttimeoutsessions",
            self.silent_timeout.load(Relaxed),
        );
        put(
            &mut tot,
            "finaltimeoutsessions",
            self.final_timeout.load(Relaxed),
        );
        put(
            &mut tot,
            "offertimeoutsessions",
            self.offer_timeout.load(Relaxed),
        );
        put(
            &mut tot,
            "regularterminatedsessions",
            self.regular.load(Relaxed),
        );
        put(&mut tot, "forcedterminatedsessions", 0u64);
        put(&mut tot, "relayedpackets", total(0, live.packets));
        put(&mut tot, "relayedbytes", total(1, live.bytes));
        put(&mut tot, "relayedpacketerrors", total(2, live.errors));
        let kernel = self.ended_kernel.load(Relaxed) + live_kernel;
        put(
            &mut tot,
            "relayedpackets_user",
            total(0, live.packets).saturating_sub(kernel),
        );
        put(&mut tot, "relayedpackets_kernel", kernel);
        put(&mut tot, "zerowaystreams", 0u64);
        put(&mut tot, "onewaystreams", 0u64);
        put(
            &mut tot,
            "avgcallduration",
            self.duration_ms
                .load(Relaxed)
                .checked_div(ended)
                .unwrap_or(0)
                / 1000,
        );

        let mut d = Dict::new();
        put(&mut d, "currentstatistics", Value::Dict(cur));
        put(&mut d, "totalstatistics", Value::Dict(tot));
        let mut control = Dict::new();
        put(&mut control, "proxies", Value::List(Vec::new()));
        put(&mut d, "controlstatistics", Value::Dict(control));
        put(&mut d, "mos", Value::Dict(Dict::new()));
        d
    }
}

/// Packets relayed by a call (sent to its parties).
pub fn relayed(call: &Call) -> Totals {
    let mut t = Totals::default();
    for s in call.sockets() {
        t.add(&s.stats_out);
        t.errors += s.stats_in.errors.load(Relaxed);
    }
    t
}

/// Packets of a call forwarded in the kernel.
pub fn kernel_packets(call: &Call) -> u64 {
    call.sockets()
        .map(|s| s.kernel_in.packets.load(Relaxed))
        .sum()
}

fn family(a: &std::net::IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn endpoint_dict(ep: std::net::SocketAddr) -> Value {
    let mut d = Dict::new();
    put(&mut d, "family", family(&ep.ip()));
    put(&mut d, "address", ep.ip().to_string());
    put(&mut d, "port", u64::from(ep.port()));
    Value::Dict(d)
}

fn stream_dict(s: &MediaSocket, created: u64) -> Value {
    let st = s.state();
    let mut d = Dict::new();
    put(&mut d, "local port", u64::from(s.local.port()));
    put(&mut d, "local address", s.local.ip().to_string());
    put(&mut d, "family", family(&s.local.ip()));
    if let Some(ep) = st.endpoint.destination(&st.policy) {
        put(&mut d, "endpoint", endpoint_dict(ep));
    }
    if let Some(ep) = st.endpoint.sdp {
        put(&mut d, "advertised endpoint", endpoint_dict(ep));
    }
    let unix = |ms: u64| {
        if ms == 0 {
            created
        } else {
            clock::unix_secs(ms)
        }
    };
    put(
        &mut d,
        "last packet",
        unix(s.stats_in.last_ms.load(Relaxed)),
    );
    put(
        &mut d,
        "last user packet",
        unix(s.user_last_ms.load(Relaxed)),
    );
    put(
        &mut d,
        "last kernel packet",
        unix(s.kernel_in.last_ms.load(Relaxed)),
    );
    let mut flags = vec![Value::str(if s.is_rtcp { "RTCP" } else { "RTP" })];
    if st.endpoint.destination(&st.policy).is_some() {
        flags.push(Value::str("filled"));
    }
    if st.endpoint.confirmed {
        flags.push(Value::str("confirmed"));
    }
    if st.kernel.is_some() {
        flags.push(Value::str("kernelized"));
    } else if !s.kernel_capable() {
        flags.push(Value::str("no kernel support"));
    }
    if st.policy.strict {
        flags.push(Value::str("strict source address"));
    }
    if st.policy.handover {
        flags.push(Value::str("media handover"));
    }
    put(&mut d, "flags", Value::List(flags));
    drop(st);
    let mut t = Totals::default();
    t.add(&s.stats_in);
    put(&mut d, "stats", t.dict());
    let mut t = Totals::default();
    t.add(&s.stats_out);
    put(&mut d, "stats_out", t.dict());
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
            if matches!(
                m.direction,
                crate::sdp::Direction::SendRecv | crate::sdp::Direction::RecvOnly
            ) {
                flags.push(Value::str("recv"));
            }
            if m.mux {
                flags.push(Value::str("rtcp-mux"));
            }
            put(&mut md, "flags", Value::List(flags));
            let streams = m
                .sockets
                .as_ref()
                .map(|s| s.all().map(|s| stream_dict(s, p.created)).collect())
                .unwrap_or_default();
            put(&mut md, "streams", Value::List(streams));
            Value::Dict(md)
        })
        .collect();
    put(&mut d, "medias", Value::List(medias));
    Value::Dict(d)
}

/// The statistics tree of `query` and `delete`. With `tags`, only those
/// parties are listed.
pub fn call_stats(call: &Call, only: &[&str]) -> Dict {
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
    let mut totals = Dict::new();
    put(&mut totals, "RTP", rtp.dict());
    put(&mut totals, "RTCP", rtcp.dict());
    put(&mut d, "totals", Value::Dict(totals));
    d
}
