//! One scenario = one daemon × one call count × one round: start the daemon,
//! set up the calls, run media (warmup, alternating proxy/direct CPU intervals,
//! flat out, max-rate search), signalling under media load, delete and check
//! the daemon's counters, stop the daemon.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value as Json};

use super::cli::Opts;
use super::cpu::{self, Meter};
use super::daemon::{DaemonProc, Kind, Launch, NG_ADDR};
use super::media::{bind_sockets, Interval, Media, Path, Stream};
use super::ng::{self, encode, get_int, media_addr, phone_sdp, Ng, PipeStats, B};
use super::report;
use super::topo::{self, caller_port, in_ns, Topology};
use super::xdp;
use super::{floorsrtp, sockfloor, uringfloor, xskfloor};
use rtpengine::crypto::sdes::Crypto;

const FLOOR_PORT_BASE: u16 = 20000;

/// Runs everything the options ask for.
pub fn run_all(o: &Opts) -> anyhow::Result<()> {
    if let Some(tag) = &o.teardown {
        topo::teardown(tag);
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("rtpengine-bench needs root (network namespaces, XDP); use `sudo cargo xtask bench`");
    }
    topo::remove_stale();
    if let Some(tag) = &o.setup_only {
        let t = Topology::create(tag, true)?;
        println!(
            "namespaces: caller {} proxy {} callee {}\nstart the daemon in {} with -i caller/{} -i callee/{} -n {NG_ADDR}",
            t.caller,
            t.proxy,
            t.callee,
            t.proxy,
            topo::PROXY_CALLER_IP,
            topo::PROXY_CALLEE_IP
        );
        return Ok(());
    }
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let launch = Launch {
        ours_bin: o
            .ours_bin
            .clone()
            .unwrap_or_else(|| exe_dir.join("rtpengine")),
        upstream_bin: o.upstream_bin.clone(),
        table: o.table,
        xdp_mode: o.xdp_mode.clone(),
        extra: o.daemon_args.clone(),
        log_dir: o.log_dir.clone().unwrap_or_else(|| {
            PathBuf::from(format!("/tmp/rtpengine-bench-{}", std::process::id()))
        }),
        port_min: 20000,
        port_max: 59999,
        timeout: 600,
    };
    let machine = cpu::machine();
    eprintln!(
        "bench: {machine}; daemon logs in {}",
        launch.log_dir.display()
    );
    let topo = match &o.reuse {
        Some(tag) => Topology::reuse(tag)?,
        None => Topology::create(&std::process::id().to_string(), false)?,
    };
    let _peer = if o.peer_xdp {
        let devs = [
            (topo.caller.clone(), "c0"),
            (topo.caller.clone(), "d0"),
            (topo.callee.clone(), "e0"),
            (topo.callee.clone(), "d1"),
        ];
        match xdp::attach_pass(&devs) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("bench: warning: no native pass programs on the endpoint veths: {e:#}");
                None
            }
        }
    } else {
        None
    };
    if o.soak > 0 {
        super::soak::run(o, &topo, &launch)?;
        return Ok(());
    }
    let floor_ok = xdp::floor_available();
    let total = o.rounds * o.calls.len() * o.daemons.len();
    let mut done = 0usize;
    let mut results = Vec::new();
    let started = Instant::now();
    for round in 1..=o.rounds {
        for &n in &o.calls {
            // Alternate the daemon order between rounds so drift hits everyone alike.
            let mut order = o.daemons.clone();
            let len = order.len();
            order.rotate_left((round - 1) % len.max(1));
            for kind in order {
                done += 1;
                eprintln!(
                    "bench: [{done}/{total}] round {round}, {n} calls, {} (elapsed {:.0} s)",
                    kind.name(),
                    started.elapsed().as_secs_f64()
                );
                let r = if kind == Kind::Floor && !floor_ok {
                    json!({"daemon": "floor", "calls": n, "round": round, "ok": false,
                           "error": "skipped: the eBPF object has no floor program"})
                } else {
                    match scenario(&kind, n, round, &topo, o, &launch) {
                        Ok(v) => v,
                        Err(e) => {
                            if super::stop::requested() {
                                return Err(e);
                            }
                            eprintln!("bench: {} with {n} calls failed: {e:#}", kind.name());
                            json!({"daemon": kind.name(), "calls": n, "round": round, "ok": false,
                                   "error": format!("{e:#}")})
                        }
                    }
                };
                results.push(r);
            }
        }
    }
    let summary = report::summarize(&results);
    report::print_table(&summary, &machine);
    let line = json!({"bench": "rtpengine-bench", "version": 1, "machine": machine,
                      "quick": o.quick, "summary": summary});
    println!("{line}");
    if let Some(p) = &o.json {
        let all = json!({"machine": machine, "summary": summary, "scenarios": results});
        std::fs::write(p, serde_json::to_string_pretty(&all)?)
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("bench: wrote {}", p.display());
        if let Some(png) = &o.plot {
            report::plot(p, png)?;
        }
    }
    if o.quick {
        let failed = report::smoke_failures(&summary);
        if !failed.is_empty() {
            bail!("smoke test failed:\n  {}", failed.join("\n  "));
        }
    }
    Ok(())
}

struct Sides {
    /// Where the caller sends (the daemon's caller-facing port).
    caller_dst: Vec<Option<SocketAddr>>,
    /// Where the callee sends (the daemon's callee-facing port).
    callee_dst: Vec<Option<SocketAddr>>,
    /// `--srtp`: the key the daemon protects towards the callee with, and
    /// the callee's own.
    srtp: Vec<Option<(Crypto, Crypto)>>,
}

/// The daemon's AES_CM_128_HMAC_SHA1_80 line in the SDP it offers the
/// callee, and a key of the callee's for call `c` under the same tag.
fn srtp_keys(sdp: &str, c: usize) -> anyhow::Result<(Crypto, Crypto)> {
    let ours = sdp
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=crypto:"))
        .filter_map(|v| Crypto::parse(v).ok())
        .find(|k| k.suite.name() == floorsrtp::SUITE)
        .context("the daemon offered no AES_CM_128_HMAC_SHA1_80 line")?;
    let callee = floorsrtp::callee_line(c, ours.suite, ours.tag);
    Ok((ours, callee))
}

fn call_id(round: usize, n: usize, c: usize) -> String {
    format!("bench-{}-{round}-{n}-{c}", std::process::id())
}

/// The callee's address: IPv6 with `--callee-ipv6`.
fn callee_ip(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(topo::CALLEE_IP6)
    } else {
        IpAddr::V4(topo::CALLEE_IP)
    }
}

pub(crate) fn offer_body(cid: &str, port: u16, session: u64, v6: bool) -> Vec<u8> {
    offer_body_with(cid, port, session, v6, false)
}

/// [`offer_body`], asking for SRTP towards the callee with `srtp`.
fn offer_body_with(cid: &str, port: u16, session: u64, v6: bool, srtp: bool) -> Vec<u8> {
    let sdp = phone_sdp(IpAddr::V4(topo::CALLER_IP), port, session);
    let caller_ip = topo::CALLER_IP.to_string();
    let received_from = ["IP4", caller_ip.as_str()];
    let mut pairs = vec![
        ("supports", B::L(&["load limit"])),
        ("sdp", B::S(&sdp)),
        ("ICE", B::S("remove")),
        ("replace", B::L(&["origin"])),
        ("direction", B::L(&["caller", "callee"])),
        ("call-id", B::S(cid)),
        ("received-from", B::L(&received_from)),
        ("from-tag", B::S("ftag")),
        ("command", B::S("offer")),
    ];
    if v6 {
        // The daemon bridges: the offer to the callee carries IPv6.
        pairs.push(("address family", B::S("IP6")));
    }
    if srtp {
        pairs.push(("transport-protocol", B::S("RTP/SAVP")));
    }
    encode(&pairs)
}

pub(crate) fn answer_body(cid: &str, port: u16, session: u64, v6: bool) -> Vec<u8> {
    answer_body_with(cid, port, session, v6, None)
}

/// [`answer_body`] from an SDES callee answering with `crypto`.
fn answer_body_with(
    cid: &str,
    port: u16,
    session: u64,
    v6: bool,
    crypto: Option<&Crypto>,
) -> Vec<u8> {
    let ip = callee_ip(v6);
    let mut sdp = phone_sdp(ip, port, session);
    if let Some(c) = crypto {
        sdp = sdp.replace(" RTP/AVP ", " RTP/SAVP ");
        sdp.push_str(&format!("a=crypto:{}\r\n", c.write(Default::default())));
    }
    let callee_ip = ip.to_string();
    let fam = if v6 { "IP6" } else { "IP4" };
    encode(&[
        ("supports", B::L(&["load limit"])),
        ("sdp", B::S(&sdp)),
        ("ICE", B::S("remove")),
        ("replace", B::L(&["origin"])),
        ("call-id", B::S(cid)),
        ("received-from", B::L(&[fam, &callee_ip])),
        ("from-tag", B::S("ftag")),
        ("to-tag", B::S("ttag")),
        ("command", B::S("answer")),
    ])
}

pub(crate) fn delete_body(cid: &str) -> Vec<u8> {
    encode(&[
        ("call-id", B::S(cid)),
        ("from-tag", B::S("ftag")),
        ("delete-delay", B::I(0)),
        ("command", B::S("delete")),
    ])
}

/// Offer + answer for `n` calls; fills `sides` when given.
fn setup_calls(
    ngc: &Ng,
    n: usize,
    k: usize,
    o: &Opts,
    ids: &dyn Fn(usize) -> String,
    mut sides: Option<&mut Sides>,
    label: &str,
) -> anyhow::Result<PipeStats> {
    let (window, v6, srtp) = (o.window, o.callee_ipv6, o.srtp);
    let mut stage = vec![0u8; n];
    let st = ngc.pipeline(
        n,
        window,
        "b",
        |c, reply| {
            let cid = ids(c);
            let port = caller_port(c, k);
            let Some(reply) = reply else {
                stage[c] = 1;
                return Ok(Some(offer_body_with(&cid, port, 1000 + c as u64, v6, srtp)));
            };
            let sdp = ng::get_str(reply, "sdp").context("reply without sdp")?;
            let addr = media_addr(sdp).context("no audio address in the rewritten SDP")?;
            if stage[c] == 1 {
                stage[c] = 2;
                let keys = match srtp {
                    true => Some(srtp_keys(sdp, c)?),
                    false => None,
                };
                let callee_line = keys.as_ref().map(|k| k.1.clone());
                if let Some(s) = sides.as_deref_mut() {
                    s.callee_dst[c] = Some(addr);
                    s.srtp[c] = keys;
                }
                Ok(Some(answer_body_with(
                    &cid,
                    port,
                    2000 + c as u64,
                    v6,
                    callee_line.as_ref(),
                )))
            } else {
                if let Some(s) = sides.as_deref_mut() {
                    s.caller_dst[c] = Some(addr);
                }
                Ok(None)
            }
        },
        |done| eprintln!("bench:   {label}: {done}/{n} calls"),
    )?;
    Ok(st)
}

fn sig_json(s: &PipeStats) -> Json {
    json!({
        "calls_per_s": s.rate(),
        "p50_us": s.percentile(50.0),
        "p99_us": s.percentile(99.0),
        "requests": s.requests,
        "completed": s.completed,
        "errors": s.errors,
        "error_samples": s.error_samples,
        "retransmits": s.retransmits,
    })
}

pub(crate) fn iv_json(iv: &Interval) -> Json {
    json!({
        "path": iv.path, "target_pps": iv.target_pps, "secs": iv.secs,
        "tx": iv.tx, "rx": iv.rx, "late": iv.late, "loss": iv.loss(),
        "wrong_src": iv.wrong_src, "out_of_order": iv.out_of_order,
        "malformed": iv.malformed, "send_fail": iv.send_fail,
        "silent_streams": iv.silent_streams, "rx_pps": iv.rx_pps(),
        "cpu_ns": {"generator": iv.cpu.generator, "daemon": iv.cpu.daemon,
                   "ksoftirqd": iv.cpu.softirqd, "sum": iv.cpu.sum(), "system": iv.cpu.system},
        "ns_per_packet": iv.ns_per_packet(),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn scenario(
    kind: &Kind,
    n: usize,
    round: usize,
    topo: &Topology,
    o: &Opts,
    launch: &Launch,
) -> anyhow::Result<Json> {
    let mut daemon = match kind {
        Kind::Ours | Kind::OursKernel | Kind::OursKernelFib | Kind::Upstream => {
            Some(DaemonProc::start(kind, topo, launch)?)
        }
        Kind::External | Kind::Floor | Kind::SocketFloor | Kind::XskFloor | Kind::UringFloor => {
            None
        }
    };
    let floor_kind = matches!(
        kind,
        Kind::Floor | Kind::SocketFloor | Kind::XskFloor | Kind::UringFloor
    );
    if n > FLOOR_PORT_BASE as usize / 2 && floor_kind {
        bail!("too many calls for the floor's port plan");
    }
    let k = o.sockets.min(n).min(2000);
    let floor_proc = match kind {
        Kind::SocketFloor => Some(sockfloor::start(
            &topo.proxy,
            n,
            FLOOR_PORT_BASE,
            k,
            o.srtp,
        )?),
        Kind::UringFloor => Some(uringfloor::start(&topo.proxy, n, FLOOR_PORT_BASE, k)?),
        Kind::XskFloor => Some(xskfloor::start(
            &topo.proxy,
            n,
            FLOOR_PORT_BASE,
            k,
            Topology::mac(&topo.caller, "c0")?,
            Topology::mac(&topo.callee, "e0")?,
            o.srtp,
        )?),
        _ => None,
    };
    let pid = daemon
        .as_ref()
        .map(|d| d.pid)
        .or(floor_proc.as_ref().map(|f| f.pid))
        .or(if *kind == Kind::External { o.pid } else { None });
    let ng_addr: SocketAddr = match (&daemon, &o.ng) {
        (Some(d), _) => d.ng,
        (None, Some(a)) => a.parse().with_context(|| format!("bad --ng {a}"))?,
        (None, None) => NG_ADDR.parse()?,
    };
    let meter = Meter::new(pid);
    let ports: Vec<u16> = (0..k)
        .map(|j| topo::CALLER_PORT_BASE + 2 * j as u16)
        .collect();
    let mut socks = bind_sockets(&topo.caller, ports.clone())?;
    socks.extend(bind_sockets(&topo.callee, ports)?);
    let rss0 = pid.map_or(0, cpu::rss_kib);
    let mut out = json!({"daemon": kind.name(), "calls": n, "round": round, "sockets_per_side": k,
                         "one_way": o.one_way, "callee_ipv6": o.callee_ipv6, "srtp": o.srtp,
                         "softirqd_threads": meter.softirqd_threads()});

    // Signalling: offer + answer for every call.
    let mut sides = Sides {
        caller_dst: vec![None; n],
        callee_dst: vec![None; n],
        srtp: vec![None; n],
    };
    let mut _floor = None;
    let ngc = if floor_kind {
        for c in 0..n {
            let p = FLOOR_PORT_BASE + 2 * c as u16;
            sides.caller_dst[c] = Some(SocketAddr::new(topo::PROXY_CALLER_IP.into(), p));
            sides.callee_dst[c] = Some(SocketAddr::new(topo::PROXY_CALLEE_IP.into(), p));
            if o.srtp {
                sides.srtp[c] = Some(floorsrtp::keys(c)?);
            }
        }
        if *kind == Kind::Floor {
            _floor = Some(install_floor(topo, n, k)?);
        }
        None
    } else {
        let ngc = in_ns(&topo.proxy, move || Ng::connect(ng_addr))?;
        let ids = |c: usize| call_id(round, n, c);
        let st = setup_calls(&ngc, n, k, o, &ids, Some(&mut sides), "setup")?;
        eprintln!(
            "bench:   setup: {} calls in {:.2} s ({:.0} calls/s), latency p50 {} µs p99 {} µs",
            st.completed,
            st.elapsed.as_secs_f64(),
            st.rate(),
            st.percentile(50.0),
            st.percentile(99.0)
        );
        ng::require_ok("call setup", &st)?;
        out["signalling"] = sig_json(&st);
        Some(ngc)
    };

    // Streams: caller → callee on caller socket j, callee → caller on callee
    // socket j (not with --one-way: the callee only receives).
    let sides_sending = if o.one_way { 1 } else { 2 };
    let mut streams = Vec::with_capacity(sides_sending * n);
    let mut call_streams = vec![(0usize, None::<usize>); n];
    let callee_port = caller_port;
    for side in 0..sides_sending {
        for j in 0..k {
            for c in (j..n).step_by(k) {
                let (Some(cd), Some(ed)) = (sides.caller_dst[c], sides.callee_dst[c]) else {
                    bail!("call {c} has no media address");
                };
                let cp = caller_port(c, k);
                let ep = callee_port(c, k);
                // The direct pair speaks the callee side's family.
                let (dcaller, dcallee): (IpAddr, IpAddr) = if o.callee_ipv6 {
                    (
                        topo::DIRECT_CALLER_IP6.into(),
                        topo::DIRECT_CALLEE_IP6.into(),
                    )
                } else {
                    (topo::DIRECT_CALLER_IP.into(), topo::DIRECT_CALLEE_IP.into())
                };
                let mut s = if side == 0 {
                    call_streams[c].0 = streams.len();
                    Stream::new(
                        j,
                        cd,
                        SocketAddr::new(dcallee, ep),
                        ed,
                        SocketAddr::new(dcaller, cp),
                    )
                } else {
                    call_streams[c].1 = Some(streams.len());
                    Stream::new(
                        k + j,
                        ed,
                        SocketAddr::new(dcaller, cp),
                        cd,
                        SocketAddr::new(dcallee, ep),
                    )
                };
                // --srtp: what the caller sends reaches the callee under the
                // daemon's key; what the callee sends goes out under its
                // own (and arrives so on the direct path).
                if let Some((ours, callee)) = &sides.srtp[c] {
                    if side == 0 {
                        s.srtp_rx = Some(floorsrtp::context(ours)?);
                    } else {
                        s.srtp_tx = Some(floorsrtp::context(callee)?);
                        s.srtp_rx = Some(floorsrtp::context(callee)?);
                    }
                }
                streams.push(s);
            }
        }
    }
    let mut media = Media::new(socks, streams)?;
    let rate = o
        .total_pps
        .unwrap_or(o.pps_per_stream * (sides_sending * n) as f64);
    let iv_dur = Duration::from_secs_f64(o.interval);
    let drain = Duration::from_millis(300);
    out["rate_pps"] = json!(rate);

    // Warmup: endpoint learning, offload.
    let w = media.interval(
        Path::Proxy,
        Some(rate),
        Duration::from_secs_f64(o.warmup),
        drain,
        &meter,
        None,
    )?;
    eprintln!(
        "bench:   warmup: {} sent, {} received, {} silent streams, {} wrong source",
        w.tx, w.rx, w.silent_streams, w.wrong_src
    );
    out["warmup"] = iv_json(&w);
    let rss1 = pid.map_or(0, cpu::rss_kib);
    out["rss_kib"] = json!({"before": rss0, "with_calls": rss1,
                            "per_1000_calls": (rss1 as f64 - rss0 as f64) * 1000.0 / n as f64});
    out["xdp"] = json!({"p0": topo.xdp_state("p0"), "p1": topo.xdp_state("p1")});
    if matches!(kind, Kind::OursKernel | Kind::OursKernelFib)
        && daemon
            .as_ref()
            .is_some_and(|d| d.log_contains("KERNEL FORWARDING DISABLED"))
    {
        out["note"] =
            json!("the daemon fell back to userspace relaying (KERNEL FORWARDING DISABLED)");
    }

    // Alternating proxy/direct intervals at the realistic rate.
    let mut ivs = Vec::new();
    let (mut fwd, mut fwd_sys, mut prox, mut dir, mut dmn) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..o.pairs {
        let order = if i % 2 == 0 {
            [Path::Proxy, Path::Direct]
        } else {
            [Path::Direct, Path::Proxy]
        };
        let mut pair = [Interval::default(), Interval::default()];
        for p in order {
            let iv = media.interval(p, Some(rate), iv_dur, drain, &meter, None)?;
            eprintln!(
                "bench:   pair {}/{} {:>6}: tx {} rx {} loss {:.3}% cpu {:.0} ns/pkt (daemon {:.0})",
                i + 1,
                o.pairs,
                p.name(),
                iv.tx,
                iv.rx,
                iv.loss() * 100.0,
                iv.ns_per_packet(),
                iv.cpu.daemon as f64 / iv.rx.max(1) as f64
            );
            pair[(p == Path::Direct) as usize] = iv;
        }
        let [pi, di] = pair;
        prox.push(pi.ns_per_packet());
        dir.push(di.ns_per_packet());
        fwd.push(pi.ns_per_packet() - di.ns_per_packet());
        fwd_sys.push(
            pi.cpu.system as f64 / pi.rx.max(1) as f64 - di.cpu.system as f64 / di.rx.max(1) as f64,
        );
        dmn.push(pi.cpu.daemon as f64 / pi.rx.max(1) as f64);
        ivs.push(iv_json(&pi));
        ivs.push(iv_json(&di));
    }
    let proxy_ivs: Vec<&Json> = ivs.iter().filter(|v| v["path"] == "proxy").collect();
    let sum = |key: &str| -> u64 { proxy_ivs.iter().filter_map(|v| v[key].as_u64()).sum() };
    let (ptx, prx) = (sum("tx"), sum("rx"));
    out["cpu"] = json!({
        "forward_ns_per_pkt": median(fwd),
        "forward_ns_per_pkt_system": median(fwd_sys),
        "proxy_ns_per_pkt": median(prox),
        "direct_ns_per_pkt": median(dir),
        "daemon_ns_per_pkt": median(dmn),
    });
    out["media"] = json!({
        "tx": ptx, "rx": prx,
        "loss": if ptx > 0 { ptx.saturating_sub(prx) as f64 / ptx as f64 } else { 0.0 },
        "wrong_src": sum("wrong_src"), "out_of_order": sum("out_of_order"),
        "malformed": sum("malformed"), "late": sum("late"), "send_fail": sum("send_fail"),
    });

    // Signalling while media runs.
    if let Some(ngc) = &ngc {
        let m = o.sig_load_calls.unwrap_or((n / 5).clamp(10, 500));
        let stop = AtomicBool::new(false);
        let ids = |c: usize| format!("{}-load", call_id(round, n, c));
        let (sig, bg) = std::thread::scope(|s| {
            let bg = s.spawn(|| {
                media.interval(
                    Path::Proxy,
                    Some(rate),
                    Duration::from_secs(600),
                    drain,
                    &meter,
                    Some(&stop),
                )
            });
            std::thread::sleep(Duration::from_millis(200));
            let sig = setup_calls(ngc, m, k, o, &ids, None, "setup under load").and_then(|st| {
                let del = ngc.pipeline(
                    m,
                    o.window,
                    "l",
                    |c, r| Ok(r.is_none().then(|| delete_body(&ids(c)))),
                    |_| {},
                )?;
                Ok((st, del))
            });
            stop.store(true, Ordering::Relaxed);
            (sig, bg.join())
        });
        let bg = match bg {
            Ok(r) => r?,
            Err(_) => bail!("media thread panicked"),
        };
        let (st, del) = sig?;
        eprintln!(
            "bench:   setup under load: {} calls ({} failed), {:.0} calls/s, p50 {} µs p99 {} µs; media loss {:.3}%",
            st.completed,
            st.errors,
            st.rate(),
            st.percentile(50.0),
            st.percentile(99.0),
            bg.loss() * 100.0
        );
        let mut sj = sig_json(&st);
        sj["calls"] = json!(m);
        sj["delete_errors"] = json!(del.errors);
        sj["media_loss"] = json!(bg.loss());
        out["signalling_under_load"] = sj;
    }

    // Flat out.
    if o.flat_out {
        let fp = media.interval(Path::Proxy, None, iv_dur, drain, &meter, None)?;
        let fd = media.interval(Path::Direct, None, iv_dur, drain, &meter, None)?;
        eprintln!(
            "bench:   flat out: proxy {:.0} pps (loss {:.2}%), direct {:.0} pps",
            fp.rx_pps(),
            fp.loss() * 100.0,
            fd.rx_pps()
        );
        out["flat_out"] = json!({
            "proxy_rx_pps": fp.rx_pps(), "proxy_loss": fp.loss(),
            "proxy_ns_per_pkt": fp.ns_per_packet(),
            "direct_rx_pps": fd.rx_pps(), "direct_ns_per_pkt": fd.ns_per_packet(),
            "forward_ns_per_pkt": fp.ns_per_packet() - fd.ns_per_packet(),
        });
        ivs.push(iv_json(&fp));
        ivs.push(iv_json(&fd));
    }
    if o.max_rate {
        out["max_rate"] = max_rate(&mut media, &meter, o)?;
    }
    out["intervals"] = Json::Array(ivs);
    // Let the daemon drain its socket queues before counting.
    std::thread::sleep(Duration::from_millis(500));

    // Teardown: delete every call and compare its counters with ours.
    if let Some(ngc) = &ngc {
        // Kernel counters are merged into the call once a second.
        std::thread::sleep(Duration::from_millis(1000));
        let mut daemon_pkts = vec![None; n];
        let del = ngc.pipeline(
            n,
            o.window,
            "d",
            |c, r| match r {
                None => Ok(Some(delete_body(&call_id(round, n, c)))),
                Some(r) => {
                    daemon_pkts[c] = get_int(r, &["totals", "RTP", "packets"]);
                    Ok(None)
                }
            },
            |done| {
                if done > 0 {
                    eprintln!("bench:   delete: {done}/{n}")
                }
            },
        )?;
        let (mut checked, mut bad, mut dsum, mut tsum, mut rsum) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut samples = Vec::new();
        for (c, &(a, b)) in call_streams.iter().enumerate() {
            let back = |f: fn(&Stream) -> u64| b.map_or(0, |b| f(&media.streams[b]));
            let tx = media.streams[a].tx_proxy + back(|s| s.tx_proxy);
            let rx = media.streams[a].rx_proxy + back(|s| s.rx_proxy);
            tsum += tx;
            rsum += rx;
            if let Some(d) = daemon_pkts[c] {
                checked += 1;
                let d = d.max(0) as u64;
                dsum += d;
                if d < rx || d > tx {
                    bad += 1;
                    if samples.len() < 3 {
                        samples.push(format!("call {c}: daemon {d}, sent {tx}, received {rx}"));
                    }
                }
            }
        }
        eprintln!(
            "bench:   delete: {} calls, daemon counted {dsum} packets, we sent {tsum} and received {rsum}; {bad} calls outside [received, sent]",
            del.completed
        );
        out["stats_check"] = json!({
            "deleted": del.completed, "delete_errors": del.errors, "calls_with_totals": checked,
            "mismatched_calls": bad, "daemon_packets": dsum, "sent": tsum, "received": rsum,
            "samples": samples, "ok": del.errors == 0 && checked == n as u64 && bad == 0,
        });
        out["signalling"]["delete_p50_us"] = json!(del.percentile(50.0));
    }
    if let Some(d) = daemon.as_mut() {
        if !d.alive() {
            bail!("daemon died during the run; log: {}", d.tail_log());
        }
        out["rss_kib"]["after_delete"] = json!(cpu::rss_kib(d.pid));
        d.stop();
    }
    out["ok"] = json!(true);
    Ok(out)
}

/// Finds the highest total rate with < 0.1% loss on the proxy path.
fn max_rate(media: &mut Media, meter: &Meter, o: &Opts) -> anyhow::Result<Json> {
    let step = Duration::from_secs_f64((o.interval / 2.0).clamp(1.0, 3.0));
    let drain = Duration::from_millis(300);
    let (mut lo, mut hi): (f64, Option<f64>) = (0.0, None);
    let mut r = 20_000.0;
    let mut gen_limited = false;
    let mut tries = Vec::new();
    for _ in 0..12 {
        let iv = media.interval(Path::Proxy, Some(r), step, drain, meter, None)?;
        let sent_enough = iv.tx as f64 >= 0.97 * r * iv.secs;
        let pass = iv.loss() < 0.001 && sent_enough;
        eprintln!(
            "bench:   max rate: {r:.0} pps → rx {:.0} pps, loss {:.3}%{}",
            iv.rx_pps(),
            iv.loss() * 100.0,
            if sent_enough {
                ""
            } else {
                " (generator could not send that fast)"
            }
        );
        tries.push(
            json!({"pps": r, "rx_pps": iv.rx_pps(), "loss": iv.loss(), "tx_ok": sent_enough}),
        );
        if pass {
            lo = r;
        } else {
            hi = Some(r);
            gen_limited = !sent_enough;
        }
        r = match hi {
            None => r * 2.0,
            Some(h) if h - lo <= (lo * 0.05).max(2000.0) => break,
            Some(h) => (lo + h) / 2.0,
        };
        if r > 4_000_000.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(json!({"pps": lo, "generator_limited": gen_limited, "tries": tries}))
}

/// Floor "calls": rules installed directly, no daemon.
fn install_floor(topo: &Topology, n: usize, k: usize) -> anyhow::Result<xdp::Loaded> {
    let rules = xdp::floor_rules(
        n,
        FLOOR_PORT_BASE,
        k,
        (
            Topology::ifindex(&topo.proxy, "p0")?,
            Topology::mac(&topo.proxy, "p0")?,
        ),
        (
            Topology::ifindex(&topo.proxy, "p1")?,
            Topology::mac(&topo.proxy, "p1")?,
        ),
        Topology::mac(&topo.caller, "c0")?,
        Topology::mac(&topo.callee, "e0")?,
    );
    xdp::attach_floor(&topo.proxy, &["p0", "p1"], rules)
}
