//! `rtpengine-bench`: load generator and CPU-per-packet benchmark for ng media
//! proxies (this project's daemon in userspace and in-kernel mode, Debian's
//! upstream rtpengine, any external ng daemon, a minimal XDP forwarder
//! "floor", a minimal relay on kernel sockets, the "socket floor", the same
//! relay with io_uring, the "io_uring floor", and over AF_XDP, the "XSK floor").
//!
//! Library code here never panics on input: every failure is an
//! `anyhow::Error` that unwinds through the RAII guards ([`topo::Topology`],
//! [`daemon::DaemonProc`]) so namespaces and processes are removed on every
//! exit path. See BENCHMARKS.md for the method; run it through
//! `cargo xtask bench` (release build, as root); `--help` lists the options.

mod cli;
mod cpu;
mod daemon;
mod floorsrtp;
mod media;
mod ng;
mod report;
mod scenario;
mod soak;
mod sockfloor;
mod stop;
mod topo;
mod uringfloor;
mod xdp;
mod xskfloor;

/// The XDP floor programs built by `build.rs` from `rtpengine-bench-ebpf`.
pub static FLOOR_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rtpengine-floor"));

fn main() {
    if let Err(e) = run() {
        eprintln!("rtpengine-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve-socket-floor") {
        return sockfloor::serve(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--serve-uring-floor") {
        return uringfloor::serve(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--serve-xsk-floor") {
        return xskfloor::serve(&args[1..]);
    }
    let opts = cli::Opts::parse();
    stop::install();
    scenario::run_all(&opts)
}
