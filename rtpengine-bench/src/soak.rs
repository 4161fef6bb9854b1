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

use super::cli::Opts;
use super::cpu::{self, Meter};
use super::daemon::{DaemonProc, Kind, Launch};
use super::media::{bind_sockets, Interval, Media, Path, Stream};
use super::ng::{self, get_int, media_addr, Ng};
use super::scenario::{answer_body, delete_body, iv_json, offer_body};
use super::topo::{self, in_ns, Topology};

/// How far the resident size may end above the baseline: allocator arenas
/// and per-thread caches keep some freed memory. Descriptors, sockets,
/// threads and map entries are compared exactly; memory catches leaks of
/// about 4 MiB over the soak or more: over 30 minutes of the default churn
/// (≈ 180 000 calls) that is ~25 bytes per call; over CI's minute of 400
/// calls (≈ 1 200 calls), ~4 KiB per call.
pub const RSS_TOLERANCE: (f64, u64) = (0.10, 4096);

/// The churn sockets' port (one per side; every churn call uses it).
const CHURN_PORT: u16 = 30000;
/// The RTP flooder's port in the caller namespace.
const FLOOD_PORT: u16 = 31000;
/// Calls with ports but no media, the RTP flood's allocated targets.
const FLOOD_VICTIMS: usize = 50;
/// Packets per direction sent to a new churn call.
const CHURN_BURST: usize = 3;

/// What a churn slot's current call will do when the slot is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// No call in the slot.
    Empty,
    /// Deleted.
    Delete,
    /// Left alone after its media burst: the media timeout ends it.
    Abandon,
    /// Only offered, never answered: the offer timeout ends it.
    OfferOnly,
}

/// One resource snapshot of the daemon.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    rss_kib: u64,
    fds: u64,
    sockets: u64,
    threads: u64,
    map_entries: u64,
}

impl Snapshot {
    fn take(pid: u32) -> anyhow::Result<Snapshot> {
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
        Ok(Snapshot {
            rss_kib: cpu::rss_kib(pid),
            fds,
            sockets,
            threads,
            map_entries: flow_entries(&map_ids)?,
        })
    }

    fn json(&self) -> Json {
        json!({"rss_kib": self.rss_kib, "fds": self.fds, "sockets": self.sockets,
               "threads": self.threads, "map_entries": self.map_entries})
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
    pid: u32,
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

    fn call_id(&self, what: &str, i: usize) -> String {
        format!("soak-{}-{}-{what}-{i}", std::process::id(), self.name)
    }
}

fn soak(kind: &Kind, topo: &Topology, o: &Opts, launch: &Launch) -> anyhow::Result<Json> {
    let mut launch = launch.clone();
    launch.timeout = o.soak_timeout;
    let mut daemon = DaemonProc::start(kind, topo, &launch)?;
    let pid = daemon.pid;
    let ng_addr = daemon.ng;
    let ngc = in_ns(&topo.proxy, move || Ng::connect(ng_addr))?;
    let churn_ng = in_ns(&topo.proxy, move || Ng::connect(ng_addr))?;
    let meter = Meter::new(Some(pid));
    let fresh = Snapshot::take(pid)?;
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
        pid,
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
        let snap = Snapshot::take(pid)?;
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
        problems.push(format!(
            "resident size: {} KiB after the soak, {} KiB at the baseline (limit {limit} KiB)",
            now.rss_kib, base.rss_kib
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
        super::stop::check()?;
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
                let snap = Snapshot::take(cx.pid)?;
                let lat = std::mem::take(&mut *ph.latencies.lock().map_err(poisoned)?);
                let errors = ph.errors.lock().map_err(poisoned)?.0;
                let row = json!({
                    "t": t0.elapsed().as_secs(), "loss": iv.loss(), "tx": iv.tx, "rx": iv.rx,
                    "wrong_src": iv.wrong_src, "ng_requests": lat.len(),
                    "ng_p50_us": ng::percentile(&lat, 50.0), "ng_p99_us": ng::percentile(&lat, 99.0),
                    "ng_errors": errors, "daemon": snap.json(),
                });
                eprintln!(
                    "soak: {} {:>5} s: loss {:.3}% ng {} req p99 {} µs, rss {} KiB, fds {}, map {}",
                    ph.name,
                    t0.elapsed().as_secs(),
                    iv.loss() * 100.0,
                    lat.len(),
                    ng::percentile(&lat, 99.0),
                    snap.rss_kib,
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
    if totals.loss() > o.flood_max_loss {
        problems.push(format!(
            "{}: media loss {:.3} % on the stable calls",
            ph.name,
            totals.loss() * 100.0
        ));
    }
    if o.flood_secs > 0 {
        res["floods"] = run_floods(ph, cx, &mut media, problems)?;
    }
    // Teardown: delete the stable calls; the churn loop already ended its
    // slots (deleted or left to time out).
    let del = cx.ngc.pipeline(
        ph.n_stable,
        o.window,
        "sd",
        |c, r| Ok(r.is_none().then(|| delete_body(&ph.call_id("s", c)))),
        |_| {},
    )?;
    ph.note(&del);
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

/// One churn job of a round.
#[derive(Clone, Copy)]
enum Job {
    /// Delete churn call `slot`/`gen`.
    Delete(usize, u64),
    /// Set up churn call `slot`/`gen` (offer, then answer unless offer-only).
    Setup(usize, u64, Fate),
    /// Re-INVITE stable call `c` (offer + answer, same SDP, same ports).
    Reinvite(usize),
}

/// Replaces `n_churn / lifetime` churn slots and re-INVITEs `n_stable / 30`
/// stable calls every second until `stop`; at the end ends every slot.
fn churn_loop(
    ph: &Phase<'_>,
    ngc: &Ng,
    socks: &[UdpSocket],
    stable_caller_dst: &[SocketAddr],
    k: usize,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let per_round = (ph.n_churn as u64).div_ceil(ph.lifetime) as usize;
    let reinvites = ph.n_stable.div_ceil(30);
    let mut slots: Vec<(Fate, u64)> = vec![(Fate::Empty, 0); ph.n_churn];
    let (mut next_slot, mut next_stable, mut generation) = (0usize, 0usize, 0u64);
    let cid = |slot: usize, g: u64| ph.call_id("c", slot) + &format!("-{g}");
    let round = |jobs: Vec<Job>| -> anyhow::Result<()> {
        let mut answered: Vec<(usize, SocketAddr, SocketAddr)> = Vec::new();
        let mut offer_reply: Vec<Option<SocketAddr>> = vec![None; jobs.len()];
        let mut stage = vec![0u8; jobs.len()];
        let st = ngc.pipeline(
            jobs.len(),
            ph.o.window,
            "c",
            |j, reply| {
                let first = reply.is_none();
                let addr = reply
                    .and_then(|r| ng::get_str(r, "sdp"))
                    .and_then(media_addr);
                match jobs[j] {
                    Job::Delete(slot, g) => Ok(first.then(|| delete_body(&cid(slot, g)))),
                    Job::Setup(slot, g, fate) => {
                        let id = cid(slot, g);
                        if first {
                            stage[j] = 1;
                            return Ok(Some(offer_body(&id, CHURN_PORT, 5000 + g, false)));
                        }
                        if stage[j] == 1 && fate != Fate::OfferOnly {
                            stage[j] = 2;
                            offer_reply[j] = addr;
                            return Ok(Some(answer_body(&id, CHURN_PORT, 6000 + g, false)));
                        }
                        if let (Some(callee_side), Some(caller_side)) = (offer_reply[j], addr) {
                            answered.push((slot, caller_side, callee_side));
                        }
                        Ok(None)
                    }
                    Job::Reinvite(c) => {
                        let id = ph.call_id("s", c);
                        let port = topo::caller_port(c, k);
                        if first {
                            stage[j] = 1;
                            return Ok(Some(offer_body(&id, port, 1000 + c as u64, false)));
                        }
                        if stage[j] == 1 {
                            stage[j] = 2;
                            return Ok(Some(answer_body(&id, port, 2000 + c as u64, false)));
                        }
                        // Same SDP, same ports: the media must not notice.
                        if addr.is_some_and(|a| a != stable_caller_dst[c]) {
                            bail!("re-INVITE of stable call {c} moved its port");
                        }
                        Ok(None)
                    }
                }
            },
            |_| {},
        )?;
        ph.note(&st);
        // The media burst of the new calls: caller → daemon's caller side,
        // callee → daemon's callee side.
        let payload = [0x80u8, 0, 0, 1, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44];
        for (_, caller_side, callee_side) in &answered {
            for _ in 0..CHURN_BURST {
                let _ = socks[0].send_to(&payload, media_v6(*caller_side));
                let _ = socks[1].send_to(&payload, media_v6(*callee_side));
            }
        }
        let mut buf = [0u8; 2048];
        let mut rx = 0u64;
        for s in socks {
            while s.recv_from(&mut buf).is_ok() {
                rx += 1;
            }
        }
        if let Ok(mut r) = ph.churn_rx.lock() {
            *r += rx;
        }
        Ok(())
    };
    let end_fate = |f: Fate, counts: &mut [u64; 4]| match f {
        Fate::Delete => counts[1] += 1,
        Fate::Abandon => counts[2] += 1,
        Fate::OfferOnly => counts[3] += 1,
        Fate::Empty => {}
    };
    while !stop.load(Ordering::Relaxed) {
        super::stop::check()?;
        let t = Instant::now();
        let mut jobs = Vec::new();
        let mut counts = [0u64; 4];
        for _ in 0..per_round {
            let slot = next_slot;
            next_slot = (next_slot + 1) % ph.n_churn;
            let (old, old_gen) = slots[slot];
            if old == Fate::Delete {
                jobs.push(Job::Delete(slot, old_gen));
            }
            end_fate(old, &mut counts);
            generation += 1;
            let fate = match generation % 10 {
                0 => Fate::Abandon,
                5 => Fate::OfferOnly,
                _ => Fate::Delete,
            };
            slots[slot] = (fate, generation);
            jobs.push(Job::Setup(slot, generation, fate));
            counts[0] += 1;
        }
        for _ in 0..reinvites {
            jobs.push(Job::Reinvite(next_stable));
            next_stable = (next_stable + 1) % ph.n_stable;
        }
        round(jobs)?;
        if let Ok(mut c) = ph.churn_counts.lock() {
            for (a, b) in c.iter_mut().zip(counts) {
                *a += b;
            }
        }
        if let Some(rest) = Duration::from_secs(1).checked_sub(t.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    // End every slot as its fate says.
    let mut counts = [0u64; 4];
    let mut jobs = Vec::new();
    for (slot, &(f, g)) in slots.iter().enumerate() {
        if f == Fate::Delete {
            jobs.push(Job::Delete(slot, g));
        }
        end_fate(f, &mut counts);
    }
    round(jobs)?;
    if let Ok(mut c) = ph.churn_counts.lock() {
        for (a, b) in c.iter_mut().zip(counts) {
            *a += b;
        }
    }
    Ok(())
}

/// The churn sockets are dual-stack: IPv4 destinations as mapped IPv6.
fn media_v6(a: SocketAddr) -> SocketAddr {
    SocketAddr::V6(super::media::mapped(a))
}

/// The ng flood, then the RTP flood, each during one media interval of
/// `--flood-secs`; a quiet interval before them is the reference.
fn run_floods(
    ph: &Phase<'_>,
    cx: &Ctx<'_>,
    media: &mut Media,
    problems: &mut Vec<String>,
) -> anyhow::Result<Json> {
    let (o, ngc, meter, topo, rate) = (ph.o, cx.ngc, cx.meter, cx.topo, cx.rate);
    let dur = Duration::from_secs(o.flood_secs);
    let drain = Duration::from_millis(500);
    // Calls with ports but no media: the RTP flood's allocated targets.
    let (victim_callers, victim_callees) = setup(ph, ngc, "v", FLOOD_VICTIMS, cx.k)?;
    let quiet = media.interval(Path::Proxy, Some(rate), dur, drain, meter, None)?;
    eprintln!("soak: quiet: loss {:.3}%", quiet.loss() * 100.0);

    // ng flood.
    let ng_addr = super::daemon::NG_ADDR.parse::<SocketAddr>()?;
    let flood_sock = in_ns(&topo.proxy, move || {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.connect(ng_addr)?;
        s.set_nonblocking(true)?;
        Ok(s)
    })?;
    let msgs = ng_flood_messages();
    let stop = AtomicBool::new(false);
    let (iv, (sent, replies)) = std::thread::scope(|s| -> anyhow::Result<_> {
        let f = s.spawn(|| {
            let mut framed = Vec::with_capacity(65536);
            paced(
                o.ng_flood_rate,
                &stop,
                |i| {
                    let m = match &msgs[i as usize % msgs.len()] {
                        FloodMsg::Raw(m) => m,
                        FloodMsg::Body(b) => {
                            framed.clear();
                            framed.extend_from_slice(format!("fl{}-{i} ", ph.name).as_bytes());
                            framed.extend_from_slice(b);
                            &framed
                        }
                    };
                    flood_sock.send(m).is_ok()
                },
                || {
                    let mut buf = [0u8; 65536];
                    let mut n = 0;
                    while flood_sock.recv(&mut buf).is_ok() {
                        n += 1;
                    }
                    n
                },
            )
        });
        let iv = media.interval(Path::Proxy, Some(rate), dur, drain, meter, None);
        stop.store(true, Ordering::Relaxed);
        let fr = f
            .join()
            .map_err(|_| anyhow::anyhow!("ng flood thread panicked"))?;
        Ok((iv?, fr))
    })?;
    eprintln!(
        "soak: ng flood: {sent} requests ({:.0}/s), {replies} replies; media loss {:.3}%",
        sent as f64 / iv.secs.max(1e-9),
        iv.loss() * 100.0
    );
    let ng_json = json!({"sent": sent, "rate": sent as f64 / iv.secs.max(1e-9),
                         "replies": replies, "media": iv_json(&iv)});
    if iv.loss() > o.flood_max_loss {
        problems.push(format!(
            "ng flood: media loss {:.3} % (bound {:.3} %)",
            iv.loss() * 100.0,
            o.flood_max_loss * 100.0
        ));
    }
    if !ngc.ping(Duration::from_secs(2)) {
        problems.push("ng flood: no pong afterwards".into());
    }

    // RTP flood from a stranger: half to the victim calls' ports, half to
    // ports of the range nobody holds.
    let allocated: Vec<SocketAddr> = victim_callers
        .iter()
        .chain(&victim_callees)
        .map(|a| media_v6(*a))
        .collect();
    // Unallocated: ports of the range the daemon does not hold now (the
    // churn has stopped), found by binding them in its namespace.
    let unallocated: Vec<SocketAddr> = in_ns(&topo.proxy, || {
        Ok((20000u16..60000)
            .step_by(97)
            .filter(|&p| {
                let a = SocketAddr::new(topo::PROXY_CALLER_IP.into(), p);
                UdpSocket::bind(a).is_ok()
            })
            .take(200)
            .map(|p| media_v6(SocketAddr::new(topo::PROXY_CALLER_IP.into(), p)))
            .collect())
    })?;
    if unallocated.is_empty() || allocated.is_empty() {
        bail!(
            "no ports to flood ({} allocated, {} free)",
            allocated.len(),
            unallocated.len()
        );
    }
    let rtp = bind_sockets(&topo.caller, vec![FLOOD_PORT])?;
    let stranger = &rtp[0];
    let mut pkt = [0u8; 172];
    pkt[0] = 0x80;
    pkt[8..12].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    let stop = AtomicBool::new(false);
    let (iv, (sent, _)) = std::thread::scope(|s| -> anyhow::Result<_> {
        let f = s.spawn(|| {
            paced(
                o.rtp_flood_rate,
                &stop,
                |i| {
                    let to = if i % 2 == 0 {
                        allocated[(i / 2) as usize % allocated.len()]
                    } else {
                        unallocated[(i / 2) as usize % unallocated.len()]
                    };
                    stranger.send_to(&pkt, to).is_ok()
                },
                || {
                    let mut buf = [0u8; 2048];
                    let mut n = 0;
                    while stranger.recv_from(&mut buf).is_ok() {
                        n += 1;
                    }
                    n
                },
            )
        });
        let iv = media.interval(Path::Proxy, Some(rate), dur, drain, meter, None);
        stop.store(true, Ordering::Relaxed);
        let fr = f
            .join()
            .map_err(|_| anyhow::anyhow!("RTP flood thread panicked"))?;
        Ok((iv?, fr))
    })?;
    eprintln!(
        "soak: RTP flood: {sent} packets ({:.0}/s) to {} allocated and {} unallocated ports; media loss {:.3}%",
        sent as f64 / iv.secs.max(1e-9),
        allocated.len(),
        unallocated.len(),
        iv.loss() * 100.0
    );
    let rtp_json = json!({"sent": sent, "rate": sent as f64 / iv.secs.max(1e-9),
                          "allocated_ports": allocated.len(), "unallocated_ports": unallocated.len(),
                          "media": iv_json(&iv)});
    if iv.loss() > o.flood_max_loss {
        problems.push(format!(
            "RTP flood: media loss {:.3} % (bound {:.3} %)",
            iv.loss() * 100.0,
            o.flood_max_loss * 100.0
        ));
    }
    if iv.wrong_src > 0 {
        problems.push(format!(
            "RTP flood: {} packets relayed from a wrong source",
            iv.wrong_src
        ));
    }
    // The victims go with the stable calls' teardown.
    let del = ngc.pipeline(
        FLOOD_VICTIMS,
        o.window,
        "vd",
        |c, r| Ok(r.is_none().then(|| delete_body(&ph.call_id("v", c)))),
        |_| {},
    )?;
    ph.note(&del);
    Ok(
        json!({"quiet": iv_json(&quiet), "ng": ng_json, "rtp": rtp_json,
              "max_loss": o.flood_max_loss}),
    )
}

/// Calls `send(i)` at `rate` per second until `stop`, draining with
/// `drain()` in between; returns (sent, drained).
fn paced(
    rate: f64,
    stop: &AtomicBool,
    mut send: impl FnMut(u64) -> bool,
    mut drain: impl FnMut() -> u64,
) -> (u64, u64) {
    let t0 = Instant::now();
    let (mut i, mut sent, mut drained) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let due = (rate * t0.elapsed().as_secs_f64()) as u64;
        let mut burst = 0;
        while i < due && burst < 256 {
            if send(i) {
                sent += 1;
            }
            i += 1;
            burst += 1;
        }
        drained += drain();
        if i >= due {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    (sent, drained + drain())
}

/// One message of the ng flood: a body sent with a fresh cookie each time
/// (a repeated cookie would only exercise the cookie cache), or raw bytes.
enum FloodMsg {
    Body(Vec<u8>),
    Raw(Vec<u8>),
}

/// The ng flood's mix: valid requests (ping, statistics, query and delete of
/// unknown calls, a JSON ping), malformed ones (broken bencode, not a
/// dictionary, unknown command, a 60 KB string), datagrams without a cookie
/// and garbage.
fn ng_flood_messages() -> Vec<FloodMsg> {
    use FloodMsg::{Body, Raw};
    let mut v = Vec::new();
    for i in 0..16 {
        let call = format!("nope-{i}");
        v.push(Body(b"d7:command4:pinge".to_vec()));
        v.push(Body(ng::encode(&[
            ("command", ng::B::S("query")),
            ("call-id", ng::B::S(&call)),
        ])));
        v.push(Body(ng::encode(&[
            ("command", ng::B::S("delete")),
            ("call-id", ng::B::S(&call)),
            ("from-tag", ng::B::S("x")),
        ])));
        v.push(Body(br#"{"command":"ping"}"#.to_vec()));
        v.push(Body(b"d7:command".to_vec()));
        v.push(Body(b"l4:pinge".to_vec()));
        v.push(Body(b"d7:command7:explodee".to_vec()));
        v.push(Raw(b"no-cookie-here".to_vec()));
        v.push(Raw(vec![0xff; 40 + i]));
    }
    v.push(Body(ng::encode(&[
        ("command", ng::B::S("ping")),
        ("x", ng::B::S(&"a".repeat(60_000))),
    ])));
    v.push(Body(b"d7:command10:statisticse".to_vec()));
    v
}
