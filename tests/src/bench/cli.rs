//! Command-line options (hand-rolled: no extra dependency for the tests crate).

use std::path::PathBuf;

use anyhow::{bail, Context as _};

use super::daemon::Kind;

/// Usage text.
pub const USAGE: &str = "\
rtpengine-bench: load generator and CPU-per-packet benchmark for ng media proxies

usage: rtpengine-bench [options]        (as root; see BENCHMARKS.md)

  --quick                 CI smoke test (< 2 min): 50 calls, 1 round, short intervals; fails if a
                          configuration does not run, loses > 1 %, or relays from a wrong source
  --daemons LIST          ours,ours-kernel,upstream,floor,socket-floor,uring-floor,
                          xsk-floor,external
                          (default: all but external)
  --calls LIST            concurrent calls per scenario (default 100,1000,10000)
  --rounds N              rounds; every round runs every daemon once per call count (default 3)
  --interval SECS         length of one CPU interval (default 5)
  --pairs N               proxy/direct interval pairs per scenario (default 3)
  --pps-per-stream R      packets/s per stream (default 50: G.711 at 20 ms)
  --total-pps R           total packets/s instead, spread over all streams (for scaling runs)
  --no-flat-out           skip the flat-out intervals
  --max-rate / --no-max-rate   search the max rate with < 0.1% loss (default: on, off with --quick)
  --sockets K             generator sockets per side (default 64, at most one per call)
  --window W              ng requests in flight (default 16)
  --sig-load-calls M      extra calls set up and deleted while media runs (default N/5, max 500)
  --warmup SECS           media before measuring (endpoint learning, offload; default 4)
  --table N               kernel table for ours-kernel (default 42)
  --xdp-mode MODE         --xdp-mode for ours-kernel: native, generic, auto, or none (default native)
  --peer-xdp on|off       native pass programs on the endpoints' veths (default on)
  --ours-bin PATH         our daemon (default: target/release/rtpengine next to this binary)
  --upstream-bin PATH     upstream daemon (default /usr/bin/rtpengine)
  --daemon-arg ARG        extra argument for every daemon started (repeatable)
  --ng ADDR --pid PID     external daemon (ng address inside the proxy namespace, its pid)
  --reuse TAG             use namespaces made by --setup-only TAG (for external daemons)
  --setup-only TAG        create namespaces rtpb-TAG-{c,p,e}, print them, exit
  --teardown TAG          delete them
  --json FILE             also write every scenario's results (JSON array) to FILE
  --plot PNG              plot CPU per packet vs calls (needs --json; python3-matplotlib)
  --log-dir DIR           daemon logs (default /tmp/rtpengine-bench-<pid>)
";

/// Parsed options.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Print usage.
    pub help: bool,
    /// Quick mode.
    pub quick: bool,
    /// Daemons to measure, in order.
    pub daemons: Vec<Kind>,
    /// Call counts.
    pub calls: Vec<usize>,
    /// Rounds.
    pub rounds: usize,
    /// CPU interval, s.
    pub interval: f64,
    /// Proxy/direct pairs.
    pub pairs: usize,
    /// Packets/s per stream.
    pub pps_per_stream: f64,
    /// Total packets/s override.
    pub total_pps: Option<f64>,
    /// Flat-out intervals.
    pub flat_out: bool,
    /// Max-rate search.
    pub max_rate: bool,
    /// Sockets per side.
    pub sockets: usize,
    /// ng window.
    pub window: usize,
    /// Calls for signalling-under-load (None: default).
    pub sig_load_calls: Option<usize>,
    /// Warmup, s.
    pub warmup: f64,
    /// Kernel table.
    pub table: u32,
    /// XDP mode for ours-kernel.
    pub xdp_mode: String,
    /// Pass programs on endpoint veths.
    pub peer_xdp: bool,
    /// Our binary.
    pub ours_bin: Option<PathBuf>,
    /// Upstream binary.
    pub upstream_bin: PathBuf,
    /// Extra daemon args.
    pub daemon_args: Vec<String>,
    /// External ng address.
    pub ng: Option<String>,
    /// External pid.
    pub pid: Option<u32>,
    /// Reuse namespaces.
    pub reuse: Option<String>,
    /// Setup only.
    pub setup_only: Option<String>,
    /// Teardown.
    pub teardown: Option<String>,
    /// JSON output.
    pub json: Option<PathBuf>,
    /// Plot output.
    pub plot: Option<PathBuf>,
    /// Log directory.
    pub log_dir: Option<PathBuf>,
}

fn num<T: std::str::FromStr>(k: &str, v: &str) -> anyhow::Result<T> {
    v.parse()
        .ok()
        .with_context(|| format!("{k}: bad number {v:?}"))
}

impl Opts {
    /// Parses `args` (without the program name).
    pub fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Opts> {
        let args: Vec<String> = args.collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = Opts {
            help: false,
            quick,
            daemons: vec![
                Kind::Ours,
                Kind::OursKernel,
                Kind::Upstream,
                Kind::Floor,
                Kind::SocketFloor,
                Kind::UringFloor,
                Kind::XskFloor,
            ],
            calls: if quick {
                vec![50]
            } else {
                vec![100, 1000, 10000]
            },
            rounds: if quick { 1 } else { 3 },
            interval: if quick { 1.0 } else { 5.0 },
            pairs: if quick { 2 } else { 3 },
            pps_per_stream: 50.0,
            total_pps: None,
            flat_out: true,
            max_rate: !quick,
            sockets: 64,
            window: 16,
            sig_load_calls: None,
            warmup: if quick { 1.5 } else { 4.0 },
            table: 42,
            xdp_mode: "native".into(),
            peer_xdp: true,
            ours_bin: None,
            upstream_bin: PathBuf::from("/usr/bin/rtpengine"),
            daemon_args: Vec::new(),
            ng: None,
            pid: None,
            reuse: None,
            setup_only: None,
            teardown: None,
            json: None,
            plot: None,
            log_dir: None,
        };
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let (k, inline) = match a.split_once('=') {
                Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
                _ => (a.clone(), None),
            };
            let flag = |name: &str| -> anyhow::Result<()> {
                if inline.is_some() {
                    bail!("{name} takes no value");
                }
                Ok(())
            };
            match k.as_str() {
                "-h" | "--help" => o.help = true,
                "--quick" => flag("--quick")?,
                "--no-flat-out" => {
                    flag(&k)?;
                    o.flat_out = false
                }
                "--max-rate" => {
                    flag(&k)?;
                    o.max_rate = true
                }
                "--no-max-rate" => {
                    flag(&k)?;
                    o.max_rate = false
                }
                _ => {
                    let v = match inline {
                        Some(v) => v,
                        None => it.next().with_context(|| format!("{k} needs a value"))?,
                    };
                    match k.as_str() {
                        "--daemons" => {
                            o.daemons = v
                                .split(',')
                                .filter(|s| !s.is_empty())
                                .map(Kind::parse)
                                .collect::<Result<_, _>>()?
                        }
                        "--calls" => {
                            o.calls = v.split(',').map(|c| num(&k, c)).collect::<Result<_, _>>()?
                        }
                        "--rounds" => o.rounds = num(&k, &v)?,
                        "--interval" => o.interval = num(&k, &v)?,
                        "--pairs" => o.pairs = num(&k, &v)?,
                        "--pps-per-stream" => o.pps_per_stream = num(&k, &v)?,
                        "--total-pps" => o.total_pps = Some(num(&k, &v)?),
                        "--sockets" => o.sockets = num(&k, &v)?,
                        "--window" => o.window = num(&k, &v)?,
                        "--sig-load-calls" => o.sig_load_calls = Some(num(&k, &v)?),
                        "--warmup" => o.warmup = num(&k, &v)?,
                        "--table" => o.table = num(&k, &v)?,
                        "--xdp-mode" => o.xdp_mode = if v == "none" { String::new() } else { v },
                        "--peer-xdp" => o.peer_xdp = matches!(v.as_str(), "on" | "yes" | "1"),
                        "--ours-bin" => o.ours_bin = Some(v.into()),
                        "--upstream-bin" => o.upstream_bin = v.into(),
                        "--daemon-arg" => o.daemon_args.push(v),
                        "--ng" => o.ng = Some(v),
                        "--pid" => o.pid = Some(num(&k, &v)?),
                        "--reuse" => o.reuse = Some(v),
                        "--setup-only" => o.setup_only = Some(v),
                        "--teardown" => o.teardown = Some(v),
                        "--json" => o.json = Some(v.into()),
                        "--plot" => o.plot = Some(v.into()),
                        "--log-dir" => o.log_dir = Some(v.into()),
                        _ => bail!("unknown option {k} (see --help)"),
                    }
                }
            }
        }
        if o.ng.is_some() != o.pid.is_some() {
            bail!("--ng and --pid go together");
        }
        if o.ng.is_some() && !o.daemons.contains(&Kind::External) {
            o.daemons = vec![Kind::External];
        }
        if o.daemons.contains(&Kind::External) && o.ng.is_none() {
            bail!("the external daemon needs --ng ADDR --pid PID");
        }
        if o.rounds == 0 || o.pairs == 0 || o.calls.is_empty() || o.calls.contains(&0) {
            bail!("--rounds, --pairs and --calls must be positive");
        }
        if !(o.interval > 0.0 && o.interval <= 600.0 && o.warmup >= 0.0 && o.warmup <= 600.0) {
            bail!("--interval and --warmup must be within 0..600 s");
        }
        if o.sockets == 0 || o.window == 0 {
            bail!("--sockets and --window must be positive");
        }
        Ok(o)
    }
}
