//! Aggregation over rounds (medians), the results table, the plot.

use std::collections::BTreeMap;
use std::path::Path as FsPath;

use anyhow::{bail, Context as _};
use serde_json::{json, Value as Json};

/// The plot script (also usable by hand: `python3 plot.py results.json out.png`).
pub const PLOT_PY: &str = include_str!("plot.py");

fn num(v: &Json, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for k in path {
        cur = cur.get(*k)?;
    }
    cur.as_f64()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

const METRICS: &[(&str, &[&str])] = &[
    ("forward_ns_per_pkt", &["cpu", "forward_ns_per_pkt"]),
    (
        "forward_ns_per_pkt_system",
        &["cpu", "forward_ns_per_pkt_system"],
    ),
    ("daemon_ns_per_pkt", &["cpu", "daemon_ns_per_pkt"]),
    ("proxy_ns_per_pkt", &["cpu", "proxy_ns_per_pkt"]),
    ("direct_ns_per_pkt", &["cpu", "direct_ns_per_pkt"]),
    ("loss", &["media", "loss"]),
    ("wrong_src", &["media", "wrong_src"]),
    ("out_of_order", &["media", "out_of_order"]),
    ("flat_out_pps", &["flat_out", "proxy_rx_pps"]),
    ("flat_out_direct_pps", &["flat_out", "direct_rx_pps"]),
    ("max_rate_pps", &["max_rate", "pps"]),
    ("setup_calls_per_s", &["signalling", "calls_per_s"]),
    ("setup_p50_us", &["signalling", "p50_us"]),
    ("setup_p99_us", &["signalling", "p99_us"]),
    (
        "load_calls_per_s",
        &["signalling_under_load", "calls_per_s"],
    ),
    ("load_p50_us", &["signalling_under_load", "p50_us"]),
    ("load_p99_us", &["signalling_under_load", "p99_us"]),
    ("rss_kib_per_1000_calls", &["rss_kib", "per_1000_calls"]),
    ("rate_pps", &["rate_pps"]),
];

/// What makes a smoke run (`--quick`) fail: a configuration that did not run,
/// lost more than 1 % of its packets, relayed from a wrong source or
/// miscounted. No performance thresholds.
pub fn smoke_failures(summary: &[Json]) -> Vec<String> {
    let mut out = Vec::new();
    for s in summary {
        let name = format!(
            "{} with {} calls",
            s["daemon"].as_str().unwrap_or("?"),
            s["calls"]
        );
        if let Some(e) = s["error"].as_str() {
            out.push(format!("{name}: {e}"));
        } else if s["loss"].as_f64().is_none_or(|l| l > 0.01) {
            let pct = s["loss"].as_f64().map_or(f64::NAN, |l| l * 100.0);
            out.push(format!("{name}: loss {pct:.1} %"));
        } else if s["wrong_src"].as_f64().is_none_or(|w| w > 0.0) {
            out.push(format!(
                "{name}: {} packets from a wrong source",
                s["wrong_src"]
            ));
        } else if s["stats_ok"] != json!(true) {
            out.push(format!("{name}: the daemon's counters do not match"));
        }
    }
    out
}

/// Upstream's forward ns/pkt, max rate, setup rate and flat-out rate.
type UpstreamRef = (Option<f64>, Option<f64>, Option<f64>, Option<f64>);

/// Medians per (daemon, calls) over successful rounds, with ratios against
/// upstream at the same call count.
pub fn summarize(results: &[Json]) -> Vec<Json> {
    let mut groups: BTreeMap<(String, u64), Vec<&Json>> = BTreeMap::new();
    let mut failures: BTreeMap<(String, u64), Vec<String>> = BTreeMap::new();
    for r in results {
        let d = r["daemon"].as_str().unwrap_or("?").to_string();
        let n = r["calls"].as_u64().unwrap_or(0);
        if r["ok"] == json!(true) {
            groups.entry((d, n)).or_default().push(r);
        } else {
            failures
                .entry((d, n))
                .or_default()
                .push(r["error"].as_str().unwrap_or("?").to_string());
        }
    }
    let mut out = Vec::new();
    for ((d, n), rs) in &groups {
        let mut s = json!({"daemon": d, "calls": n, "rounds": rs.len()});
        for (name, path) in METRICS {
            let m = median(rs.iter().filter_map(|r| num(r, path)).collect());
            s[*name] = m.map_or(Json::Null, |m| json!(m));
        }
        s["stats_ok"] = json!(rs.iter().all(|r| r["stats_check"]["ok"] != json!(false)));
        let notes: Vec<&str> = rs.iter().filter_map(|r| r["note"].as_str()).collect();
        if let Some(n) = notes.first() {
            s["note"] = json!(n);
        }
        s["xdp"] = rs[0]["xdp"].clone();
        out.push(s);
    }
    for ((d, n), errs) in failures {
        if !groups.contains_key(&(d.clone(), n)) {
            out.push(json!({"daemon": d, "calls": n, "rounds": 0, "error": errs.first()}));
        }
    }
    // Ratios against upstream at the same call count.
    let up: BTreeMap<u64, UpstreamRef> = out
        .iter()
        .filter(|s| s["daemon"] == "upstream")
        .filter_map(|s| {
            Some((
                s["calls"].as_u64()?,
                (
                    s["forward_ns_per_pkt"].as_f64(),
                    s["max_rate_pps"].as_f64(),
                    s["setup_calls_per_s"].as_f64(),
                    s["flat_out_pps"].as_f64(),
                ),
            ))
        })
        .collect();
    for s in &mut out {
        let Some(&(fwd, max, setup, flat)) = s["calls"].as_u64().and_then(|n| up.get(&n)) else {
            continue;
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b.abs() > 1e-9 => json!(a / b),
            _ => Json::Null,
        };
        s["cpu_vs_upstream"] = ratio(s["forward_ns_per_pkt"].as_f64(), fwd);
        s["max_rate_vs_upstream"] = ratio(s["max_rate_pps"].as_f64(), max);
        s["setup_vs_upstream"] = ratio(s["setup_calls_per_s"].as_f64(), setup);
        s["flat_out_vs_upstream"] = ratio(s["flat_out_pps"].as_f64(), flat);
    }
    out
}

fn f(v: &Json, k: &str, scale: f64, prec: usize) -> String {
    v[k].as_f64()
        .map_or("-".into(), |x| format!("{:.*}", prec, x * scale))
}

/// Prints the results table (markdown).
pub fn print_table(summary: &[Json], machine: &str) {
    println!("\nrtpengine-bench results ({machine}); medians over rounds");
    println!("forward ns/pkt = CPU (generator + daemon + ksoftirqd) per packet through the proxy minus straight to the receiver\n");
    println!("| daemon | calls | rounds | fwd ns/pkt | × upstream | daemon ns/pkt | sys fwd ns/pkt | loss % | wrong src | ooo | flat-out kpps | max kpps | setup calls/s | setup p50/p99 ms | under load p50/p99 ms | RSS KiB/1k calls | stats |");
    println!(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for s in summary {
        if let Some(e) = s["error"].as_str() {
            println!(
                "| {} | {} | 0 | failed: {} |",
                s["daemon"].as_str().unwrap_or("?"),
                s["calls"],
                e.replace('|', "/")
            );
            continue;
        }
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {}/{} | {} | {} |",
            s["daemon"].as_str().unwrap_or("?"),
            s["calls"],
            s["rounds"],
            f(s, "forward_ns_per_pkt", 1.0, 0),
            f(s, "cpu_vs_upstream", 1.0, 2),
            f(s, "daemon_ns_per_pkt", 1.0, 0),
            f(s, "forward_ns_per_pkt_system", 1.0, 0),
            f(s, "loss", 100.0, 3),
            f(s, "wrong_src", 1.0, 0),
            f(s, "out_of_order", 1.0, 0),
            f(s, "flat_out_pps", 0.001, 1),
            f(s, "max_rate_pps", 0.001, 1),
            f(s, "setup_calls_per_s", 1.0, 0),
            f(s, "setup_p50_us", 0.001, 2),
            f(s, "setup_p99_us", 0.001, 2),
            f(s, "load_p50_us", 0.001, 2),
            f(s, "load_p99_us", 0.001, 2),
            f(s, "rss_kib_per_1000_calls", 1.0, 0),
            if s["stats_ok"] == json!(true) { "ok" } else { "MISMATCH" },
        );
    }
    for s in summary {
        if let Some(n) = s["note"].as_str() {
            println!(
                "note: {} ({} calls): {n}",
                s["daemon"].as_str().unwrap_or("?"),
                s["calls"]
            );
        }
    }
    println!();
}

/// Debian's python3 (where python3-matplotlib lives) rather than a pyenv shim.
pub fn python3() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Writes the PNG plot from a results file with python3 + matplotlib.
pub fn plot(json_file: &FsPath, png: &FsPath) -> anyhow::Result<()> {
    let script =
        std::env::temp_dir().join(format!("rtpengine-bench-plot-{}.py", std::process::id()));
    std::fs::write(&script, PLOT_PY)?;
    let st = std::process::Command::new(python3())
        .arg(&script)
        .arg(json_file)
        .arg(png)
        .status();
    let _ = std::fs::remove_file(&script);
    let st = st.context("running python3 (install python3-matplotlib)")?;
    if !st.success() {
        bail!("plot script failed: {st}");
    }
    eprintln!("bench: wrote {}", png.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoke_failures_flag_broken_configurations_only() {
        let good = json!({"daemon": "ours", "calls": 50, "loss": 0.0, "wrong_src": 0.0,
                          "stats_ok": true});
        assert!(smoke_failures(std::slice::from_ref(&good)).is_empty());
        // `loss` is a fraction: 0.5 % passes, 2 % does not.
        let mut slight = good.clone();
        slight["loss"] = json!(0.005);
        assert!(smoke_failures(&[slight]).is_empty());
        let mut lossy = good.clone();
        lossy["loss"] = json!(0.11);
        let mut spoofed = good.clone();
        spoofed["wrong_src"] = json!(3.0);
        let mut miscounted = good.clone();
        miscounted["stats_ok"] = json!(false);
        let failed = json!({"daemon": "xsk-floor", "calls": 50, "rounds": 0,
                            "error": "did not start"});
        let out = smoke_failures(&[good, lossy, spoofed, miscounted, failed]);
        assert_eq!(out.len(), 4, "{out:?}");
        assert!(out[0].contains("loss 11.0 %"), "{out:?}");
        assert!(out[1].contains("wrong source"), "{out:?}");
        assert!(out[2].contains("counters"), "{out:?}");
        assert!(
            out[3].contains("xsk-floor with 50 calls: did not start"),
            "{out:?}"
        );
    }
}
