//! Soak mode (`--soak SECS`): thousands of calls with continuous churn and
//! media for a long time, then floods, then a check that nothing leaked.
//!
//! One run per daemon, in two phases of the same shape:
//! 1. **warm** (a tenth of the soak, at least 20 s): brings every cache, pool
//!    and allocator arena to its working size;
//! 2. **soak** (`--soak` seconds), followed by the floods.
//!
//! In each phase half of `--calls` are *stable* calls with media in both
//! directions all along (re-INVITEd every ~30 s on the same ports), the other
//! half are *churn* slots: every second a share of them is replaced. A
//! replaced call is deleted, or (one in ten) abandoned after a burst of media
//! so that the media timeout ends it, or (one in ten) was only offered so
//! that the offer timeout ends it. New churn calls get a burst of media both
//! ways (learning, kernel offload, removal).
//!
//! After a phase every call is deleted or left to time out and the daemon
//! must report no session. The snapshot after the warm phase is the
//! baseline; after the soak, open descriptors, sockets and kernel map
//! entries must be back to it exactly and the resident size within
//! [`RSS_TOLERANCE`]. Samples every `--soak-sample` seconds record RSS,
//! descriptors, sockets, map entries, relay loss and ng latency.
//!
//! Floods (at the end of each phase's churn, while the stable calls' media
//! runs, so the baseline has seen them too): ng requests at
//! `--ng-flood-rate` (valid, invalid and unknown-call requests mixed, each
//! with a fresh cookie, without waiting for replies), then RTP at
//! `--rtp-flood-rate` from a stranger to ports of allocated calls and to
//! unallocated ports of the range. The loss on the stable calls during each
//! flood must stay under `--flood-max-loss`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value as Json};

mod churn;
mod flood;

use super::cli::Opts;
use super::cpu::{self, Meter};
use super::daemon::{DaemonProc, Kind, Launch};
use super::media::{bind_sockets, Interval, Media, Path, Stream};
use super::ng::{self, get_int, media_addr, Ng};
use super::scenario::{answer_body, delete_body, offer_body};
use super::topo::{self, in_ns, Topology};
use churn::{churn_loop, CHURN_PORT};
use flood::{check_loss, run_floods};

/// How far the resident size may end above the baseline: allocator arenas
/// and per-thread caches keep some freed memory. Descriptors, sockets,
/// threads and map entries are compared exactly; memory catches leaks of
/// about 4 MiB over the soak or more: over 30 minutes of the default churn
/// (≈ 180 000 calls) that is ~25 bytes per call; over CI's two minutes of
/// 400 calls (≈ 2 400 calls), ~1.7 KiB per call.
pub const RSS_TOLERANCE: (f64, u64) = (0.10, 4096);

/// How long after the ng flood the snapshot waits: the flood's distinct
/// cookies are remembered for retransmissions, and that bounded, timed
/// memory is not a leak. Ours keeps a generation 30 s and checks every
/// 5 s, so a reply is forgotten at most ~70 s after it was cached (2 × 16
/// MiB at most meanwhile); upstream rotates only when a request comes,
/// hence the pings during the wait. 80 s leaves a margin.
const COOKIE_CACHE_LIFETIME: Duration = Duration::from_secs(80);

/// Where the daemon's `/metrics` is served (`--listen-http`, inside the
/// proxy namespace); upstream serves it too.
const METRICS_ADDR: &str = "127.0.0.1:2225";

/// One resource snapshot of the daemon.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    rss_kib: u64,
    fds: u64,
    sockets: u64,
    threads: u64,
    map_entries: u64,
    /// Heap in use and freed heap the allocator keeps, KiB, from
    /// `/metrics` (ours only): tells a leak from the allocator's keeping.
    heap_kib: Option<(u64, u64)>,
}

/// Takes snapshots of one daemon.
struct Probe<'a> {
    pid: u32,
    /// The proxy namespace, where `/metrics` is reached.
    ns: &'a str,
}

impl Probe<'_> {
    fn take(&self) -> anyhow::Result<Snapshot> {
        let pid = self.pid;
        let (mut fds, mut sockets) = (0, 0);
        let mut map_ids = Vec::new();
        for e in std::fs::read_dir(format!("/proc/{pid}/fd"))?.flatten() {
            fds += 1;
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue; // closed meanwhile
            };
            let target = target.to_string_lossy();
            if target.starts_with("socket:") {
                sockets += 1;
            } else if target == "anon_inode:bpf-map" {
                let info = std::fs::read_to_string(format!(
                    "/proc/{pid}/fdinfo/{}",
                    e.file_name().to_string_lossy()
                ))
                .unwrap_or_default();
                map_ids.extend(
                    info.lines()
                        .find_map(|l| l.strip_prefix("map_id:"))
                        .and_then(|v| v.trim().parse::<u64>().ok()),
                );
            }
        }
        map_ids.sort_unstable();
        map_ids.dedup();
        let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))?
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        // After the descriptors are counted: the scrape's connection is
        // closed before the next snapshot counts them.
        let heap_kib = self.heap_kib();
        Ok(Snapshot {
            rss_kib: cpu::rss_kib(pid),
            fds,
            sockets,
            threads,
            map_entries: flow_entries(&map_ids)?,
            heap_kib,
        })
    }

    /// (in use, free) heap KiB from `/metrics`; `None` when the daemon does
    /// not report them (upstream) or the scrape fails (reported by the
    /// other figures, not here).
    fn heap_kib(&self) -> Option<(u64, u64)> {
        let text = in_ns(self.ns, || http_get(METRICS_ADDR)).ok()?;
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|v| v as u64 / 1024)
        };
        Some((
            value("rtpengine_heap_in_use_bytes")?,
            value("rtpengine_heap_free_bytes")?,
        ))
    }
}

/// The body of `GET /metrics` from `addr` (HTTP/1.0: the server closes).
fn http_get(addr: &str) -> anyhow::Result<String> {
    use std::io::{Read as _, Write as _};
    let addr: SocketAddr = addr.parse()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

impl Snapshot {
    fn json(&self) -> Json {
        let mut j = json!({"rss_kib": self.rss_kib, "fds": self.fds, "sockets": self.sockets,
               "threads": self.threads, "map_entries": self.map_entries});
        if let Some((in_use, free)) = self.heap_kib {
            j["heap_in_use_kib"] = json!(in_use);
            j["heap_free_kib"] = json!(free);
        }
        j
    }
}

/// Entries in the daemon's flow maps (`FLOWS`, `FLOW_STATS`) among the maps
/// `ids` it holds open, counted by bpftool from the kernel's side, not from
/// the daemon's bookkeeping.
fn flow_entries(ids: &[u64]) -> anyhow::Result<u64> {
    let mut n = 0;
    for id in ids {
        let id = id.to_string();
        let show: Json =
            serde_json::from_str(&topo::sh(&["bpftool", "-j", "map", "show", "id", &id])?)
                .context("bpftool map show")?;
        if !matches!(show["name"].as_str(), Some("FLOWS" | "FLOW_STATS")) {
            continue;
        }
        let dump: Json =
            serde_json::from_str(&topo::sh(&["bpftool", "-j", "map", "dump", "id", &id])?)
                .context("bpftool map dump")?;
        let Json::Array(e) = dump else {
            bail!("bpftool map dump id {id}: not a list");
        };
        n += e.len() as u64;
    }
    Ok(n)
}

/// Runs the soak for every daemon of `o`; fails if one leaked, lost calls
/// or lost too much media during a flood.
pub fn run(o: &Opts, topo: &Topology, launch: &Launch) -> anyhow::Result<Vec<Json>> {
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for kind in &o.daemons {
        if !matches!(kind, Kind::Ours | Kind::OursKernel | Kind::Upstream) {
            bail!(
                "--soak runs ours, ours-kernel or upstream, not {}",
                kind.name()
            );
        }
        eprintln!(
            "soak: {} with {} calls for {} s",
            kind.name(),
            o.calls[0],
            o.soak
        );
        match soak(kind, topo, o, launch) {
            Ok(r) => {
                if let Some(problems) = r["problems"].as_array().filter(|p| !p.is_empty()) {
                    failed.push(format!(
                        "{}: {}",
                        kind.name(),
                        Json::Array(problems.clone())
                    ));
                }
                out.push(r);
            }
            Err(e) => {
                if super::stop::requested() {
                    return Err(e);
                }
                failed.push(format!("{}: {e:#}", kind.name()));
                out.push(json!({"daemon": kind.name(), "ok": false, "error": format!("{e:#}")}));
            }
        }
    }
    if let Some(p) = &o.json {
        std::fs::write(p, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("soak: wrote {}", p.display());
    }
    if !failed.is_empty() {
        bail!("soak failed:\n  {}", failed.join("\n  "));
    }
    Ok(out)
}

/// What every phase of one daemon's run uses.
struct Ctx<'a> {
    ngc: &'a Ng,
    churn_ng: &'a Ng,
    meter: &'a Meter,
    probe: &'a Probe<'a>,
    topo: &'a Topology,
    /// Media sockets per side.
    k: usize,
    /// Media packets/s of the stable calls.
    rate: f64,
}

/// State shared by one phase's threads.
struct Phase<'a> {
    name: &'static str,
    o: &'a Opts,
    n_stable: usize,
    n_churn: usize,
    /// Lifetime of a churn call, s.
    lifetime: u64,
    /// ng latencies (µs) since the last sample.
    latencies: Mutex<Vec<u64>>,
    /// ng errors: (count, first samples).
    errors: Mutex<(u64, Vec<String>)>,
    /// Churn calls set up, deleted, abandoned, only offered.
    churn_counts: Mutex<[u64; 4]>,
    /// Churn media packets received back.
    churn_rx: Mutex<u64>,
    /// When the ng flood's last request was sent.
    ng_flood_end: Mutex<Option<Instant>>,
}

impl Phase<'_> {
    fn note(&self, st: &ng::PipeStats) {
        if let Ok(mut l) = self.latencies.lock() {
            l.extend_from_slice(&st.latencies_us);
        }
        if st.errors > 0 {
            if let Ok(mut e) = self.errors.lock() {
                e.0 += st.errors as u64;
                for s in &st.error_samples {
                    if e.1.len() < 5 {
                        e.1.push(s.clone());
                    }
                }
            }
        }
    }

    /// Deletes calls `what-0` .. `what-(count-1)`, noting failures.
    fn delete(&self, ngc: &Ng, what: &str, count: usize) -> anyhow::Result<()> {
        let st = ngc.pipeline(
            count,
            self.o.window,
            &format!("{what}d"),
            |c, r| Ok(r.is_none().then(|| delete_body(&self.call_id(what, c)))),
            |_| {},
        )?;
        self.note(&st);
        Ok(())
    }

    fn call_id(&self, what: &str, i: usize) -> String {
        format!("soak-{}-{}-{what}-{i}", std::process::id(), self.name)
    }
}

fn soak(kind: &Kind, topo: &Topology, o: &Opts, launch: &Launch) -> anyhow::Result<Json> {
    let mut launch = launch.clone();
    launch.timeout = o.soak_timeout;
    launch.extra.push(format!("--listen-http={METRICS_ADDR}"));
    let mut daemon = DaemonProc::start(kind, topo, &launch)?;
    let pid = daemon.pid;
    let probe = Probe {
        pid,
        ns: &topo.proxy,
    };
    let ng_addr = daemon.ng;
    let ngc = in_ns(&topo.proxy, move || Ng::connect(ng_addr))?;
    let churn_ng = in_ns(&topo.proxy, move || Ng::connect(ng_addr))?;
    let meter = Meter::new(Some(pid));
    let fresh = probe.take()?;
    let n = o.calls[0].max(4);
    let n_stable = n / 2;
    let k = o.sockets.min(n_stable).min(2000);
    let ports: Vec<u16> = (0..k)
        .map(|j| topo::CALLER_PORT_BASE + 2 * j as u16)
        .collect();
    let mut socks = bind_sockets(&topo.caller, ports.clone())?;
    socks.extend(bind_sockets(&topo.callee, ports)?);
    let mut churn_socks = bind_sockets(&topo.caller, vec![CHURN_PORT])?;
    churn_socks.extend(bind_sockets(&topo.callee, vec![CHURN_PORT])?);
    let rate = o
        .total_pps
        .unwrap_or(o.pps_per_stream * n_stable as f64 * 2.0);
    let mut out = json!({"daemon": kind.name(), "calls": n, "stable_calls": n_stable,
                         "churn_slots": n - n_stable, "rate_pps": rate,
                         "timeout_s": o.soak_timeout, "fresh": fresh.json()});
    let mut problems: Vec<String> = Vec::new();

    let cx = Ctx {
        ngc: &ngc,
        churn_ng: &churn_ng,
        meter: &meter,
        probe: &probe,
        topo,
        k,
        rate,
    };
    let warm_secs = (o.soak / 10).max(20);
    let mut phases = Vec::new();
    let mut baseline = None;
    for (name, secs) in [("warm", warm_secs), ("soak", o.soak)] {
        let ph = Phase {
            name,
            o,
            n_stable,
            n_churn: n - n_stable,
            lifetime: (o.soak_timeout / 2).max(2),
            latencies: Mutex::new(Vec::new()),
            errors: Mutex::new((0, Vec::new())),
            churn_counts: Mutex::new([0; 4]),
            churn_rx: Mutex::new(0),
            ng_flood_end: Mutex::new(None),
        };
        let socks: Vec<UdpSocket> = socks
            .iter()
            .map(UdpSocket::try_clone)
            .collect::<Result<_, _>>()?;
        let r = phase(&ph, &cx, secs, socks, &churn_socks, &mut problems)?;
        if !daemon.alive() {
            bail!("the daemon died; log: {}", daemon.tail_log());
        }
        let idle = wait_idle(&ngc, o.soak_timeout, &mut problems)?;
        let flood_end = *ph.ng_flood_end.lock().map_err(poisoned)?;
        if let Some(end) = flood_end {
            eprintln!(
                "soak: waiting {:.0} s for the retransmission cache to forget the ng flood",
                COOKIE_CACHE_LIFETIME
                    .saturating_sub(end.elapsed())
                    .as_secs_f64()
            );
            while end.elapsed() < COOKIE_CACHE_LIFETIME {
                crate::stop::check()?;
                ngc.ping(Duration::from_secs(1));
                let left = COOKIE_CACHE_LIFETIME.saturating_sub(end.elapsed());
                std::thread::sleep(left.min(Duration::from_secs(5)));
            }
        }
        let snap = probe.take()?;
        eprintln!(
            "soak: after {name}: {} (sessions gone after {:.1} s)",
            snap.json(),
            idle
        );
        let mut r = r;
        r["after"] = snap.json();
        r["idle_after_s"] = json!(idle);
        phases.push(r);
        match &baseline {
            None => baseline = Some(snap),
            Some(b) => compare(b, &snap, &mut problems),
        }
    }
    out["phases"] = Json::Array(phases);
    out["baseline"] = baseline.map(|b| b.json()).unwrap_or(Json::Null);
    out["rss_tolerance"] = json!({"fraction": RSS_TOLERANCE.0, "kib": RSS_TOLERANCE.1});
    out["ok"] = json!(problems.is_empty());
    out["problems"] = json!(problems);
    for p in &problems {
        eprintln!("soak: PROBLEM: {p}");
    }
    daemon.stop();
    Ok(out)
}

/// After the soak, descriptors, sockets and map entries must equal the
/// baseline; the resident size may exceed it by [`RSS_TOLERANCE`].
fn compare(base: &Snapshot, now: &Snapshot, problems: &mut Vec<String>) {
    for (what, b, a) in [
        ("descriptors", base.fds, now.fds),
        ("sockets", base.sockets, now.sockets),
        ("kernel map entries", base.map_entries, now.map_entries),
        ("threads", base.threads, now.threads),
    ] {
        if a != b {
            problems.push(format!("{what}: {a} after the soak, {b} at the baseline"));
        }
    }
    let limit = (base.rss_kib as f64 * (1.0 + RSS_TOLERANCE.0)) as u64 + RSS_TOLERANCE.1;
    if now.rss_kib > limit {
        let heap = |s: &Snapshot| {
            s.heap_kib.map_or(String::new(), |(u, f)| {
                format!(" (heap {u} KiB in use, {f} KiB free)")
            })
        };
        problems.push(format!(
            "resident size: {} KiB{} after the soak, {} KiB{} at the baseline (limit {limit} KiB)",
            now.rss_kib,
            heap(now),
            base.rss_kib,
            heap(base)
        ));
    }
}

/// Polls `statistics` until the daemon owns no session; returns the wait in
/// seconds. Abandoned calls need the media timeout, offered ones the offer
/// timeout (both `--soak-timeout`), checked once a second by the daemon.
fn wait_idle(ngc: &Ng, timeout: u64, problems: &mut Vec<String>) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let limit = Duration::from_secs(timeout + 15);
    loop {
        crate::stop::check()?;
        let mut sessions = None;
        let st = ngc.pipeline(
            1,
            1,
            "st",
            |_, r| {
                if let Some(r) = r {
                    sessions = get_int(r, &["statistics", "currentstatistics", "sessionsown"]);
                    return Ok(None);
                }
                Ok(Some(ng::encode(&[("command", ng::B::S("statistics"))])))
            },
            |_| {},
        )?;
        ng::require_ok("statistics", &st)?;
        match sessions {
            Some(0) => break,
            Some(_) => {}
            None => bail!("statistics without currentstatistics.sessionsown"),
        }
        if t0.elapsed() > limit {
            problems.push(format!(
                "{sessions:?} sessions left {} s after the last request (timeouts {timeout} s)",
                limit.as_secs()
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let secs = t0.elapsed().as_secs_f64();
    // Kernel flows go with the call; their removal is not synchronous with
    // the session count, give it a moment.
    std::thread::sleep(Duration::from_millis(1500));
    Ok(secs)
}

fn phase(
    ph: &Phase<'_>,
    cx: &Ctx<'_>,
    secs: u64,
    socks: Vec<UdpSocket>,
    churn_socks: &[UdpSocket],
    problems: &mut Vec<String>,
) -> anyhow::Result<Json> {
    let (o, k, rate, meter) = (ph.o, cx.k, cx.rate, cx.meter);
    // Stable calls: set up, then media both ways for the whole phase.
    let (caller_dst, callee_dst) = setup(ph, cx.ngc, "s", ph.n_stable, k)?;
    let mut streams = Vec::with_capacity(2 * ph.n_stable);
    for c in 0..ph.n_stable {
        let p = topo::caller_port(c, k);
        // The soak never uses the direct path.
        let direct = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p);
        let (cd, ed) = (caller_dst[c], callee_dst[c]);
        streams.push(Stream::new(c % k, cd, direct, ed, direct));
        streams.push(Stream::new(k + c % k, ed, direct, cd, direct));
    }
    let mut media = Media::new(socks, streams)?;
    let sample = Duration::from_secs(o.soak_sample.max(1));
    let drain = Duration::from_millis(300);
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let mut rows = Vec::new();
    let mut totals = Interval::default();
    let churn_result = std::thread::scope(|s| -> anyhow::Result<()> {
        let churn = s.spawn(|| churn_loop(ph, cx.churn_ng, churn_socks, &caller_dst, k, &stop));
        let r = (|| -> anyhow::Result<()> {
            while t0.elapsed() < Duration::from_secs(secs) {
                let iv = media.interval(Path::Proxy, Some(rate), sample, drain, meter, None)?;
                let snap = cx.probe.take()?;
                let lat = std::mem::take(&mut *ph.latencies.lock().map_err(poisoned)?);
                let errors = ph.errors.lock().map_err(poisoned)?.0;
                let row = json!({
                    "t": t0.elapsed().as_secs(), "loss": iv.loss(), "tx": iv.tx, "rx": iv.rx,
                    "wrong_src": iv.wrong_src, "ng_requests": lat.len(),
                    "ng_p50_us": ng::percentile(&lat, 50.0), "ng_p99_us": ng::percentile(&lat, 99.0),
                    "ng_errors": errors, "daemon": snap.json(),
                });
                eprintln!(
                    "soak: {} {:>5} s: loss {:.3}% ng {} req p99 {} µs, rss {} KiB (heap {:?}), fds {}, map {}",
                    ph.name,
                    t0.elapsed().as_secs(),
                    iv.loss() * 100.0,
                    lat.len(),
                    ng::percentile(&lat, 99.0),
                    snap.rss_kib,
                    snap.heap_kib,
                    snap.fds,
                    snap.map_entries
                );
                add(&mut totals, &iv);
                rows.push(row);
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        match churn.join() {
            Ok(c) => c?,
            Err(_) => bail!("churn thread panicked"),
        }
        r
    });
    churn_result?;
    let mut res = json!({"phase": ph.name, "secs": secs, "samples": rows,
                         "media": {"tx": totals.tx, "rx": totals.rx, "loss": totals.loss(),
                                   "wrong_src": totals.wrong_src}});
    if totals.wrong_src > 0 {
        problems.push(format!(
            "{}: {} packets relayed from a wrong source",
            ph.name, totals.wrong_src
        ));
    }
    check_loss(ph.name, &totals, o.flood_max_loss, problems);
    if o.flood_secs > 0 {
        res["floods"] = run_floods(ph, cx, &mut media, problems)?;
    }
    // Teardown: delete the stable calls; the churn loop already ended its
    // slots (deleted or left to time out).
    ph.delete(cx.ngc, "s", ph.n_stable)?;
    let (errs, samples) = ph.errors.lock().map_err(poisoned)?.clone();
    let counts = *ph.churn_counts.lock().map_err(poisoned)?;
    let churn_rx = *ph.churn_rx.lock().map_err(poisoned)?;
    res["churn"] = json!({"set_up": counts[0], "deleted": counts[1], "abandoned": counts[2],
                          "offered_only": counts[3], "media_received": churn_rx});
    res["ng_errors"] = json!({"count": errs, "samples": samples});
    eprintln!(
        "soak: {}: churn {counts:?} (set up, deleted, abandoned, offered only), media back {churn_rx}; media loss {:.3}%; ng errors {errs} {samples:?}",
        ph.name,
        totals.loss() * 100.0
    );
    if errs > 0 {
        problems.push(format!(
            "{}: {errs} ng requests failed: {samples:?}",
            ph.name
        ));
    }
    if counts[0] > 0 && churn_rx == 0 {
        problems.push(format!("{}: no churn media came back", ph.name));
    }
    Ok(res)
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> anyhow::Error {
    anyhow::anyhow!("a soak thread panicked")
}

fn add(total: &mut Interval, iv: &Interval) {
    total.tx += iv.tx;
    total.rx += iv.rx;
    total.wrong_src += iv.wrong_src;
}

/// Offer + answer for `count` calls `what-i` from the stable sockets; returns
/// the daemon's caller- and callee-facing addresses.
fn setup(
    ph: &Phase<'_>,
    ngc: &Ng,
    what: &str,
    count: usize,
    k: usize,
) -> anyhow::Result<(Vec<SocketAddr>, Vec<SocketAddr>)> {
    let unset = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    let mut caller_dst = vec![unset; count];
    let mut callee_dst = vec![unset; count];
    let mut stage = vec![0u8; count];
    let st = ngc.pipeline(
        count,
        ph.o.window,
        what,
        |c, reply| {
            let cid = ph.call_id(what, c);
            let port = topo::caller_port(c, k);
            let Some(reply) = reply else {
                stage[c] = 1;
                return Ok(Some(offer_body(&cid, port, 1000 + c as u64, false)));
            };
            let sdp = ng::get_str(reply, "sdp").context("reply without sdp")?;
            let addr = media_addr(sdp).context("no audio address in the rewritten SDP")?;
            if stage[c] == 1 {
                stage[c] = 2;
                callee_dst[c] = addr;
                Ok(Some(answer_body(&cid, port, 2000 + c as u64, false)))
            } else {
                caller_dst[c] = addr;
                Ok(None)
            }
        },
        |_| {},
    )?;
    ng::require_ok(&format!("{} setup", ph.name), &st)?;
    Ok((caller_dst, callee_dst))
}

/// The churn sockets are dual-stack: IPv4 destinations as mapped IPv6.
fn media_v6(a: SocketAddr) -> SocketAddr {
    SocketAddr::V6(super::media::mapped(a))
}
