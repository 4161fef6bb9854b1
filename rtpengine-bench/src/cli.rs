//! Command-line options. Defaults that depend on `--quick` are resolved after
//! parsing ([`Opts::from`]), so the help text states both.

use std::path::PathBuf;

use clap::Parser;

use super::daemon::Kind;

/// The options as given.
#[derive(Debug, Parser)]
#[command(
    name = "rtpengine-bench",
    about = "Load generator and CPU-per-packet benchmark for ng media proxies",
    after_help = "Run as root; see BENCHMARKS.md for the method."
)]
struct Cli {
    /// CI smoke test (< 2 min): 50 calls, 1 round, short intervals; fails if
    /// a configuration does not run, loses > 1 %, or relays from a wrong source.
    #[arg(long)]
    quick: bool,
    /// Daemons to measure: ours, ours-kernel, ours-kernel-fib, upstream, floor, socket-floor,
    /// uring-floor, xsk-floor, external [default: all but external].
    #[arg(long, value_delimiter = ',', value_parser = Kind::parse, value_name = "LIST")]
    daemons: Vec<Kind>,
    /// Concurrent calls per scenario [default: 100,1000,10000; 50 with --quick].
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    calls: Vec<usize>,
    /// Rounds; every round runs every daemon once per call count [default: 3; 1 with --quick].
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Length of one CPU interval in seconds [default: 5; 1 with --quick].
    #[arg(long, value_name = "SECS")]
    interval: Option<f64>,
    /// Proxy/direct interval pairs per scenario [default: 3; 2 with --quick].
    #[arg(long, value_name = "N")]
    pairs: Option<usize>,
    /// Packets/s per stream (50: G.711 at 20 ms).
    #[arg(long, value_name = "R", default_value_t = 50.0)]
    pps_per_stream: f64,
    /// Total packets/s instead, spread over all streams (for scaling runs).
    #[arg(long, value_name = "R")]
    total_pps: Option<f64>,
    /// One-way media: only the callers send (announcements, music on hold,
    /// early media); `--pps-per-stream` then gives half the packets.
    #[arg(long)]
    one_way: bool,
    /// The callee side speaks IPv6: offers ask for it (`address family`)
    /// and the daemon bridges IPv4 callers to IPv6 callees (no floors: they
    /// forward IPv4 only).
    #[arg(long)]
    callee_ipv6: bool,
    /// The callee side speaks SDES-keyed SRTP (AES_CM_128_HMAC_SHA1_80,
    /// `transport-protocol: RTP/SAVP`): the daemon encrypts what callers
    /// send and decrypts what callees send; the generator protects and
    /// checks the callee side with the daemon's own SRTP code [default
    /// daemons: ours, ours-kernel (SRTP relayed over AF_XDP), upstream,
    /// socket-floor, xsk-floor (the floors do the same SRTP work; not with
    /// --callee-ipv6)].
    #[arg(long)]
    srtp: bool,
    /// Skip the flat-out intervals.
    #[arg(long)]
    no_flat_out: bool,
    /// Search the max rate with < 0.1 % loss [default: on; off with --quick].
    #[arg(long, overrides_with = "no_max_rate")]
    max_rate: bool,
    /// Do not search the max rate.
    #[arg(long, overrides_with = "max_rate")]
    no_max_rate: bool,
    /// Generator sockets per side (at most one per call).
    #[arg(long, value_name = "K", default_value_t = 64)]
    sockets: usize,
    /// ng requests in flight.
    #[arg(long, value_name = "W", default_value_t = 16)]
    window: usize,
    /// Extra calls set up and deleted while media runs [default: N/5, max 500].
    #[arg(long, value_name = "M")]
    sig_load_calls: Option<usize>,
    /// Media before measuring (endpoint learning, offload), seconds [default: 4; 1.5 with --quick].
    #[arg(long, value_name = "SECS")]
    warmup: Option<f64>,
    /// Kernel table for ours-kernel.
    #[arg(long, value_name = "N", default_value_t = 42)]
    table: u32,
    /// --xdp-mode for ours-kernel: native, generic, auto, or none.
    #[arg(long, value_name = "MODE", default_value = "native")]
    xdp_mode: String,
    /// Native pass programs on the endpoints' veths (on|off).
    #[arg(long, value_name = "on|off", default_value = "on")]
    peer_xdp: String,
    /// Our daemon [default: target/release/rtpengine next to this binary].
    #[arg(long, value_name = "PATH")]
    ours_bin: Option<PathBuf>,
    /// Upstream daemon.
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/rtpengine")]
    upstream_bin: PathBuf,
    /// Extra argument for every daemon started (repeatable).
    #[arg(long = "daemon-arg", value_name = "ARG", allow_hyphen_values = true)]
    daemon_args: Vec<String>,
    /// External daemon: its ng address inside the proxy namespace (with --pid).
    #[arg(long, value_name = "ADDR", requires = "pid")]
    ng: Option<String>,
    /// External daemon: its pid (with --ng).
    #[arg(long, value_name = "PID", requires = "ng")]
    pid: Option<u32>,
    /// Use namespaces made by --setup-only TAG (for external daemons).
    #[arg(long, value_name = "TAG")]
    reuse: Option<String>,
    /// Create namespaces rtpb-TAG-{c,p,e}, print them, exit.
    #[arg(long, value_name = "TAG")]
    setup_only: Option<String>,
    /// Delete the namespaces of --setup-only TAG.
    #[arg(long, value_name = "TAG")]
    teardown: Option<String>,
    /// Also write every scenario's results (JSON array) to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Plot CPU per packet vs calls (needs --json; python3-matplotlib).
    #[arg(long, value_name = "PNG", requires = "json")]
    plot: Option<PathBuf>,
    /// Daemon logs [default: /tmp/rtpengine-bench-<pid>].
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Soak mode: SECS of churn (setups, re-INVITEs, deletes, timeouts) and
    /// media on --calls calls [default 2000; 400 with --quick], then the
    /// floods; fails on a leak (see BENCHMARKS.md) [default daemon: ours-kernel].
    #[arg(long, value_name = "SECS")]
    soak: Option<u64>,
    /// Soak: seconds between samples [default: 30; 10 with --quick].
    #[arg(long, value_name = "SECS")]
    soak_sample: Option<u64>,
    /// Soak: the daemon's --timeout and --offer-timeout; churn calls live half of it.
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    soak_timeout: u64,
    /// Soak: seconds of each flood (0: none).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    flood_secs: u64,
    /// Soak: ng requests/s of the ng flood.
    #[arg(long, value_name = "R", default_value_t = 50_000.0)]
    ng_flood_rate: f64,
    /// Soak: packets/s of the RTP flood.
    #[arg(long, value_name = "R", default_value_t = 50_000.0)]
    rtp_flood_rate: f64,
    /// Soak: the most media loss on the stable calls during a phase or a flood.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.01)]
    flood_max_loss: f64,
}

/// The options with every default resolved.
#[derive(Clone, Debug)]
pub struct Opts {
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
    /// Only callers send.
    pub one_way: bool,
    /// The callee side speaks IPv6.
    pub callee_ipv6: bool,
    /// The callee side speaks SRTP.
    pub srtp: bool,
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
    /// XDP mode for ours-kernel (empty: none).
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
    /// Soak seconds (0: no soak).
    pub soak: u64,
    /// Soak sample interval, s.
    pub soak_sample: u64,
    /// Soak daemon timeouts, s.
    pub soak_timeout: u64,
    /// Seconds per flood.
    pub flood_secs: u64,
    /// ng flood rate.
    pub ng_flood_rate: f64,
    /// RTP flood rate.
    pub rtp_flood_rate: f64,
    /// Loss bound during the soak and the floods.
    pub flood_max_loss: f64,
}

impl Opts {
    /// Parses the process arguments; exits with clap's message on errors
    /// and after `--help`.
    pub fn parse() -> Opts {
        let cli = Cli::parse();
        match Opts::from(cli) {
            Ok(o) => o,
            Err(e) => Cli::command_error(&e),
        }
    }

    /// Resolves the defaults of `cli` and checks the combinations.
    fn from(c: Cli) -> Result<Opts, String> {
        let quick = c.quick;
        let soak = c.soak.unwrap_or(0);
        let daemons = if !c.daemons.is_empty() {
            c.daemons
        } else if soak > 0 {
            vec![Kind::OursKernel]
        } else if c.ng.is_some() {
            vec![Kind::External]
        } else if c.srtp && c.callee_ipv6 {
            // The floors forward IPv4 only.
            vec![Kind::Ours, Kind::Upstream]
        } else if c.srtp {
            vec![
                Kind::Ours,
                Kind::OursKernel,
                Kind::Upstream,
                Kind::SocketFloor,
                Kind::XskFloor,
            ]
        } else {
            vec![
                Kind::Ours,
                Kind::OursKernel,
                Kind::Upstream,
                Kind::Floor,
                Kind::SocketFloor,
                Kind::UringFloor,
                Kind::XskFloor,
            ]
        };
        let o = Opts {
            quick,
            daemons,
            calls: if !c.calls.is_empty() {
                c.calls
            } else if soak > 0 {
                vec![if quick { 400 } else { 2000 }]
            } else if quick {
                vec![50]
            } else {
                vec![100, 1000, 10000]
            },
            rounds: c.rounds.unwrap_or(if quick { 1 } else { 3 }),
            interval: c.interval.unwrap_or(if quick { 1.0 } else { 5.0 }),
            pairs: c.pairs.unwrap_or(if quick { 2 } else { 3 }),
            pps_per_stream: c.pps_per_stream,
            // The soak's stable calls share 20 000 packets/s (10 000 with
            // --quick): a long run measures leaks, not throughput.
            total_pps: c.total_pps.or((soak > 0).then_some(if quick {
                10_000.0
            } else {
                20_000.0
            })),
            one_way: c.one_way,
            callee_ipv6: c.callee_ipv6,
            srtp: c.srtp,
            flat_out: !c.no_flat_out,
            max_rate: if c.max_rate {
                true
            } else if c.no_max_rate {
                false
            } else {
                !quick
            },
            sockets: c.sockets,
            window: c.window,
            sig_load_calls: c.sig_load_calls,
            warmup: c.warmup.unwrap_or(if quick { 1.5 } else { 4.0 }),
            table: c.table,
            xdp_mode: if c.xdp_mode == "none" {
                String::new()
            } else {
                c.xdp_mode
            },
            peer_xdp: matches!(c.peer_xdp.as_str(), "on" | "yes" | "1"),
            ours_bin: c.ours_bin,
            upstream_bin: c.upstream_bin,
            daemon_args: c.daemon_args,
            ng: c.ng,
            pid: c.pid,
            reuse: c.reuse,
            setup_only: c.setup_only,
            teardown: c.teardown,
            json: c.json,
            plot: c.plot,
            log_dir: c.log_dir,
            soak,
            soak_sample: c.soak_sample.unwrap_or(if quick { 10 } else { 30 }),
            soak_timeout: c.soak_timeout,
            flood_secs: c.flood_secs,
            ng_flood_rate: c.ng_flood_rate,
            rtp_flood_rate: c.rtp_flood_rate,
            flood_max_loss: c.flood_max_loss,
        };
        if o.daemons.contains(&Kind::External) && o.ng.is_none() {
            return Err("the external daemon needs --ng ADDR --pid PID".into());
        }
        if o.rounds == 0 || o.pairs == 0 || o.calls.contains(&0) {
            return Err("--rounds, --pairs and --calls must be positive".into());
        }
        if !(o.interval > 0.0 && o.interval <= 600.0 && o.warmup >= 0.0 && o.warmup <= 600.0) {
            return Err("--interval and --warmup must be within 0..600 s".into());
        }
        if o.sockets == 0 || o.window == 0 {
            return Err("--sockets and --window must be positive".into());
        }
        if o.soak > 0 && (o.calls.len() != 1 || o.calls[0] < 4 || o.soak_timeout < 4) {
            return Err(
                "--soak takes one --calls count (at least 4) and --soak-timeout ≥ 4".into(),
            );
        }
        if !(0.0..=1.0).contains(&o.flood_max_loss) {
            return Err("--flood-max-loss is a fraction (0..1)".into());
        }
        if o.callee_ipv6
            && o.daemons.iter().any(|d| {
                matches!(
                    d,
                    Kind::Floor | Kind::SocketFloor | Kind::XskFloor | Kind::UringFloor
                )
            })
        {
            return Err("--callee-ipv6 measures daemons only (the floors forward IPv4)".into());
        }
        if o.srtp
            && (o.soak > 0
                || o.daemons.iter().any(|d| {
                    !matches!(
                        d,
                        Kind::Ours
                            | Kind::OursKernel
                            | Kind::Upstream
                            | Kind::External
                            | Kind::SocketFloor
                            | Kind::XskFloor
                    )
                }))
        {
            return Err(
                "--srtp measures ours (with a kernel table: over AF_XDP), upstream, an external daemon, socket-floor or xsk-floor (no soak)"
                    .into(),
            );
        }
        Ok(o)
    }
}

impl Cli {
    /// Exits the way clap does for a bad combination of options.
    fn command_error(msg: &str) -> ! {
        use clap::CommandFactory as _;
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, msg)
            .exit()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn opts(args: &[&str]) -> Result<Opts, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("rtpengine-bench").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        Opts::from(cli)
    }

    #[test]
    fn quick_changes_the_defaults_unless_given() {
        let q = opts(&["--quick"]).unwrap();
        assert_eq!((q.calls.clone(), q.rounds, q.pairs), (vec![50], 1, 2));
        assert!(!q.max_rate);
        let q = opts(&["--quick", "--max-rate", "--calls=10,20", "--rounds", "2"]).unwrap();
        assert_eq!((q.calls, q.rounds), (vec![10, 20], 2));
        assert!(q.max_rate);
        let full = opts(&[]).unwrap();
        assert_eq!(full.calls, vec![100, 1000, 10000]);
        assert!(full.max_rate && full.flat_out && full.peer_xdp);
        assert_eq!(full.daemons.len(), 7);
        assert!(!opts(&["--no-max-rate"]).unwrap().max_rate);
        // --srtp runs ours over AF_XDP (a kernel table) and the two
        // userspace floors too, except over IPv6.
        let srtp = opts(&["--srtp"]).unwrap();
        assert_eq!(srtp.daemons.len(), 5);
        let v6 = opts(&["--srtp", "--callee-ipv6"]).unwrap();
        assert_eq!(v6.daemons, vec![Kind::Ours, Kind::Upstream]);
        assert!(opts(&["--srtp", "--daemons", "floor"]).is_err());
    }

    #[test]
    fn bad_combinations_are_refused() {
        assert!(
            opts(&["--ng", "10.0.0.1:2223"]).is_err(),
            "--ng needs --pid"
        );
        assert!(opts(&["--daemons", "external"]).is_err());
        assert!(opts(&["--daemons", "nope"]).is_err());
        assert!(opts(&["--calls", "0"]).is_err());
        assert!(opts(&["--interval", "0"]).is_err());
        assert!(opts(&["--plot", "x.png"]).is_err(), "--plot needs --json");
        let ext = opts(&["--ng", "10.0.0.1:2223", "--pid", "7"]).unwrap();
        assert_eq!(ext.daemons, vec![Kind::External]);
        let xdp = opts(&[
            "--xdp-mode",
            "none",
            "--daemon-arg",
            "--foo",
            "--peer-xdp=off",
        ])
        .unwrap();
        assert_eq!(xdp.xdp_mode, "");
        assert_eq!(xdp.daemon_args, vec!["--foo"]);
        assert!(!xdp.peer_xdp);
    }
}
