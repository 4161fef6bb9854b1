//! `rtpengine-bench`: load generator and CPU-per-packet benchmark for ng media
//! proxies (this project's daemon in userspace and in-kernel mode, Debian's
//! upstream rtpengine, any external ng daemon, a minimal XDP forwarder
//! "floor", a minimal relay on kernel sockets, the "socket floor", the same
//! relay with io_uring, the "io_uring floor", and over AF_XDP, the "XSK floor").
//!
//! Library code here never panics on input: every failure is an
//! `anyhow::Error` that unwinds through the RAII guards ([`topo::Topology`],
//! [`daemon::DaemonProc`]) so namespaces and processes are removed on every
//! exit path. See BENCHMARKS.md for the method.

pub mod cli;
pub mod cpu;
pub mod daemon;
pub mod media;
pub mod ng;
pub mod report;
pub mod scenario;
pub mod sockfloor;
pub mod stop;
pub mod topo;
pub mod uringfloor;
pub mod xdp;
pub mod xsk;
pub mod xskfloor;

/// Entry point of the binary.
pub fn main() -> anyhow::Result<()> {
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
    let opts = cli::Opts::parse(std::env::args().skip(1))?;
    if opts.help {
        print!("{}", cli::USAGE);
        return Ok(());
    }
    stop::install();
    scenario::run_all(&opts)
}
