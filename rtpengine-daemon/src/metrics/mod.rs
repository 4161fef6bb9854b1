//! `GET /metrics`: Prometheus text exposition, rendered per scrape with the
//! `prometheus` crate from the live counters.
//!
//! Names, types and labels are upstream's (`rtpengine_sessions{type="own"}`,
//! `rtpengine_requests_total{proxy=…,request=…}`, `rtpengine_ports_used{name=…,address=…}`
//! and the rest), so dashboards and alerts built for rtpengine keep working.
//! Unlike upstream, each metric family is written in one block with its
//! `# HELP` (upstream interleaves families, which the text format forbids).
//! Upstream metrics whose data this daemon does not have (MOS, jitter,
//! transcoding, media/player caches) are left out rather than reported as
//! zeros. Ours: `rtpengine_kernel_*{table=…}` for the eBPF table,
//! `rtpengine_poller_*{index=…}` for the relay threads and
//! `rtpengine_af_xdp_packets_total{type=…}` for the AF_XDP relay.
//!
//! The per-proxy request counters are kept by the dispatcher ([`control`]).

pub mod control;

pub use control::ControlStats;

use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};
use prometheus::{Opts, Registry, TextEncoder};

use crate::call::Calls;
use crate::kernel::Kernel;
use crate::ng::request::COMMAND_NAMES;
use crate::relay::poller::Poller;
use crate::relay::xsk::Steering;

/// Everything `/metrics` reads.
pub struct Metrics {
    /// The calls (sessions, streams, relayed totals, ports).
    pub calls: Arc<Calls>,
    /// Per-proxy request counters.
    pub control: Arc<ControlStats>,
    /// The kernel table, when open.
    pub kernel: Option<Arc<Kernel>>,
    /// The relay threads.
    pub media: Arc<Poller>,
    /// The AF_XDP relay, when running.
    pub af_xdp: Option<Arc<Steering>>,
}

/// Metric name prefix, as upstream.
const PREFIX: &str = "rtpengine";

/// Collects metrics into a fresh registry; registration only fails on a
/// duplicate name, which would be a bug here.
struct Builder {
    registry: Registry,
}

impl Builder {
    fn opts(name: &str, help: &str) -> Opts {
        Opts::new(name, help).namespace(PREFIX)
    }

    fn add<C: Collector + Clone + 'static>(&self, c: C) -> prometheus::Result<C> {
        self.registry.register(Box::new(c.clone()))?;
        Ok(c)
    }

    fn gauge(&self, name: &str, help: &str, v: i64) -> prometheus::Result<()> {
        self.add(IntGauge::with_opts(Self::opts(name, help))?)?
            .set(v);
        Ok(())
    }

    fn gauge_f(&self, name: &str, help: &str, v: f64) -> prometheus::Result<()> {
        self.add(Gauge::with_opts(Self::opts(name, help))?)?.set(v);
        Ok(())
    }

    fn counter(&self, name: &str, help: &str, v: u64) -> prometheus::Result<()> {
        self.add(IntCounter::with_opts(Self::opts(name, help))?)?
            .inc_by(v);
        Ok(())
    }

    /// A counter of seconds (upstream prints these as `%.6f`).
    fn counter_f(&self, name: &str, help: &str, v: f64) -> prometheus::Result<()> {
        let c = prometheus::Counter::with_opts(Self::opts(name, help))?;
        self.add(c)?.inc_by(v.max(0.0));
        Ok(())
    }

    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
        self.add(IntGaugeVec::new(Self::opts(name, help), labels)?)
    }

    fn counters(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntCounterVec> {
        self.add(IntCounterVec::new(Self::opts(name, help), labels)?)
    }
}

impl Metrics {
    /// The exposition text, `text/plain; version=0.0.4`.
    pub fn render(&self) -> prometheus::Result<String> {
        let b = Builder {
            registry: Registry::new(),
        };
        self.sessions(&b)?;
        self.requests(&b)?;
        self.ports(&b)?;
        // The kernel's maps failing to read must not cost the rest.
        if let Err(e) = self.kernel(&b) {
            tracing::warn!(error = %e, "Kernel table metrics unavailable");
        }
        self.relay_threads(&b)?;
        self.af_xdp(&b)?;
        self.listeners(&b)?;
        self.memory(&b)?;
        let mut out = Vec::new();
        TextEncoder::new().encode(&b.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }

    /// Sessions, streams, relayed totals and call durations.
    fn sessions(&self, b: &Builder) -> prometheus::Result<()> {
        let s = self.calls.statistics();
        let sessions = b.gauges("sessions", "Owned and foreign sessions", &["type"])?;
        sessions.with_label_values(&["own"]).set(s.calls as i64);
        // Redis-backed foreign calls do not exist here (yet).
        sessions.with_label_values(&["foreign"]).set(0);
        let streams = b.gauges(
            "mediastreams",
            "Media streams by where they are relayed",
            &["type"],
        )?;
        streams
            .with_label_values(&["userspace"])
            .set(s.streams.userspace as i64);
        streams
            .with_label_values(&["kernel"])
            .set(s.streams.kernel as i64);
        streams
            .with_label_values(&["mixed"])
            .set(s.streams.mixed as i64);
        b.gauge(
            "uptime_seconds",
            "Uptime of rtpengine",
            s.uptime_secs as i64,
        )?;
        b.counter("sessions_total", "Total managed sessions", s.managed)?;
        let closed = b.counters(
            "closed_sessions_total",
            "Total closed sessions by reason",
            &["reason"],
        )?;
        for (reason, n) in [
            ("rejected", s.rejected),
            ("timeout", s.timeout),
            ("silent_timeout", s.silent_timeout),
            ("final_timeout", s.final_timeout),
            ("offer_timeout", s.offer_timeout),
            ("terminated", s.regular),
            ("force_terminated", s.forced),
        ] {
            closed.with_label_values(&[reason]).inc_by(n);
        }
        let user = s.userspace();
        for (name, help, u, k) in [
            (
                "packets_total",
                "Total relayed packets",
                user.packets,
                s.kernel.packets,
            ),
            (
                "packet_errors_total",
                "Total relayed packet errors",
                user.errors,
                s.kernel.errors,
            ),
            (
                "bytes_total",
                "Total relayed bytes",
                user.bytes,
                s.kernel.bytes,
            ),
        ] {
            let c = b.counters(name, help, &["type"])?;
            c.with_label_values(&["userspace"]).inc_by(u);
            c.with_label_values(&["kernel"]).inc_by(k);
        }
        b.counter(
            "zero_packet_streams_total",
            "Total number of streams with no relayed packets",
            s.zero_streams,
        )?;
        b.counter(
            "one_way_sessions_total",
            "Total number of 1-way streams",
            s.one_way_streams,
        )?;
        b.gauge_f(
            "call_duration_avg",
            "Average call duration",
            s.avg_call_duration(),
        )?;
        b.counter_f(
            "call_duration_total",
            "Total calls duration",
            s.call_duration_secs,
        )?;
        b.counter_f(
            "call_duration2_total",
            "Total calls duration squared",
            s.call_duration2_secs,
        )
    }

    /// Per-proxy ng requests, their time and errors.
    fn requests(&self, b: &Builder) -> prometheus::Result<()> {
        let proxies = self.control.snapshot();
        if proxies.is_empty() {
            return Ok(());
        }
        let requests = b.counters(
            "requests_total",
            "ng requests by proxy and command",
            &["proxy", "request"],
        )?;
        let seconds = prometheus::CounterVec::new(
            Builder::opts(
                "request_seconds_total",
                "Time spent on ng requests by proxy and command",
            ),
            &["proxy", "request"],
        )?;
        let seconds = b.add(seconds)?;
        let errors = b.counters(
            "errors_total",
            "ng requests answered with an error",
            &["proxy"],
        )?;
        for (ip, c) in &proxies {
            let proxy = ip.to_string();
            for (i, name) in COMMAND_NAMES.iter().enumerate() {
                let n = c.requests.get(i).copied().unwrap_or(0);
                let t = c.time.get(i).map_or(0.0, |d| d.as_secs_f64());
                requests
                    .with_label_values(&[proxy.as_str(), name])
                    .inc_by(n);
                seconds.with_label_values(&[proxy.as_str(), name]).inc_by(t);
            }
            errors.with_label_values(&[&proxy]).inc_by(c.errors);
        }
        Ok(())
    }

    /// Media ports per local interface address.
    fn ports(&self, b: &Builder) -> prometheus::Result<()> {
        let labels = ["name", "address"];
        let used = b.gauges("ports_used", "Media ports in use", &labels)?;
        let free = b.gauges("ports_free", "Media ports free", &labels)?;
        let all = b.gauges("ports", "Media ports of the range", &labels)?;
        for i in self.calls.interfaces.iter() {
            for a in &i.addrs {
                let l = [i.name.as_str(), &a.local.to_string()];
                // Pairs, counted as two ports each (RTP and RTCP).
                used.with_label_values(&l).set(a.pool.used() as i64);
                free.with_label_values(&l)
                    .set(a.pool.available() as i64 * 2);
                all.with_label_values(&l).set(a.pool.range() as i64);
            }
        }
        Ok(())
    }

    /// The eBPF table: flows now, and what it forwarded since it opened.
    fn kernel(&self, b: &Builder) -> prometheus::Result<()> {
        let Some(k) = &self.kernel else {
            return Ok(());
        };
        let table = k.table().to_string();
        let l = [table.as_str()];
        let stats = k
            .table_stats()
            .map_err(|e| prometheus::Error::Msg(format!("{e:#}")))?;
        let flows = k
            .flow_count()
            .map_err(|e| prometheus::Error::Msg(format!("{e:#}")))?;
        b.gauges("kernel_flows", "Flows in the kernel table", &["table"])?
            .with_label_values(&l)
            .set(flows as i64);
        let refused = crate::relay::offload::Offload::refusals(k.as_ref());
        let c = b.counters(
            "kernel_refused_streams_total",
            "Media streams the kernel table refused (they stay in userspace)",
            &["table", "reason"],
        )?;
        c.with_label_values(&[table.as_str(), "full"])
            .inc_by(refused.full);
        c.with_label_values(&[table.as_str(), "rejected"])
            .inc_by(refused.rejected);
        for (name, help, v) in [
            (
                "kernel_packets_total",
                "Packets forwarded by the kernel table",
                stats.packets,
            ),
            (
                "kernel_bytes_total",
                "UDP payload bytes forwarded by the kernel table",
                stats.bytes,
            ),
            (
                "kernel_errors_total",
                "Packets the kernel table dropped (source mismatch, unroutable)",
                stats.errors,
            ),
            (
                "kernel_fallback_total",
                "Packets of kernel flows handed to userspace",
                stats.fallback,
            ),
            (
                "kernel_lease_expired_total",
                "Packets of kernel flows handed to the stack because the table's lease had expired",
                stats.expired,
            ),
        ] {
            b.counters(name, help, &["table"])?
                .with_label_values(&l)
                .inc_by(v);
        }
        Ok(())
    }

    /// The control listeners and the supervised background tasks.
    fn listeners(&self, b: &Builder) -> prometheus::Result<()> {
        b.counter(
            "accept_failures_total",
            "Connections the TCP listeners (ng, CLI) failed to accept (e.g. out of descriptors)",
            crate::server::ACCEPT_FAILURES.load(std::sync::atomic::Ordering::Relaxed),
        )?;
        b.counter(
            "connections_refused_total",
            "Control connections closed at once: a listener's connection bounds were reached",
            crate::server::limits::REFUSED.load(std::sync::atomic::Ordering::Relaxed),
        )?;
        b.counter(
            "control_refused_total",
            "Control requests and connections refused: source not in --ng-allow-from",
            crate::server::sources::REFUSED.load(std::sync::atomic::Ordering::Relaxed),
        )?;
        b.counter(
            "task_panics_total",
            "Panics of background tasks (timer, lease renewal, Redis follower), each restarted",
            crate::supervise::TASK_PANICS.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Memory: resident and the heap's view of it, so that a growing
    /// resident size can be told apart as a leak (in use grows) or the
    /// allocator's keeping (free grows; see [`crate::heap`]).
    fn memory(&self, b: &Builder) -> prometheus::Result<()> {
        b.counter(
            "heap_trims_total",
            "Times freed heap memory was returned to the system",
            crate::heap::TRIMS.load(std::sync::atomic::Ordering::Relaxed),
        )?;
        let Some(u) = crate::heap::usage() else {
            return Ok(());
        };
        let bytes = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        b.gauge(
            "resident_memory_bytes",
            "Resident memory of the daemon",
            bytes(u.resident),
        )?;
        b.gauge(
            "heap_in_use_bytes",
            "Heap memory allocated and not freed",
            bytes(u.in_use),
        )?;
        b.gauge(
            "heap_free_bytes",
            "Freed heap memory the allocator keeps for reuse, resident or not",
            bytes(u.free),
        )
    }

    /// The AF_XDP relay: packets received, sent as frames, sent through
    /// sockets instead, dropped.
    fn af_xdp(&self, b: &Builder) -> prometheus::Result<()> {
        let Some(x) = &self.af_xdp else {
            return Ok(());
        };
        let c = b.counters(
            "af_xdp_packets",
            "Packets of the AF_XDP relay: received, sent as frames, sent through the stream's socket instead (fallback), dropped, dropped by the kernel before the relay saw them (overflow)",
            &["type"],
        )?;
        for (t, v) in [
            ("received", &x.stats.received),
            ("sent", &x.stats.sent),
            ("fallback", &x.stats.fallback),
            ("dropped", &x.stats.dropped),
            ("overflow", &x.stats.overflow),
        ] {
            c.with_label_values(&[t])
                .inc_by(v.load(std::sync::atomic::Ordering::Relaxed));
        }
        Ok(())
    }

    /// The relay threads: wake-ups and sockets drained per thread.
    fn relay_threads(&self, b: &Builder) -> prometheus::Result<()> {
        let threads = self.media.thread_stats();
        b.gauge(
            "relay_threads",
            "Userspace relay threads",
            threads.len() as i64,
        )?;
        let wakeups = b.counters(
            "poller_wakeups",
            "Relay thread wake-ups with work",
            &["index", "type"],
        )?;
        let items = b.counters(
            "poller_items",
            "Ready media sockets drained",
            &["index", "type"],
        )?;
        for (i, t) in threads.iter().enumerate() {
            let l = [i.to_string(), "user".to_owned()];
            let l = [l[0].as_str(), l[1].as_str()];
            wakeups.with_label_values(&l).inc_by(t.wakeups);
            items.with_label_values(&l).inc_by(t.items);
        }
        Ok(())
    }
}
