//! `rtpengine-bench`: load generator and side-by-side benchmark of ng media
//! proxies. Run it through `cargo xtask bench` (builds in release mode, as
//! root); `--help` lists the options, BENCHMARKS.md describes the method.

#[path = "../bench/mod.rs"]
mod bench;

fn main() {
    if let Err(e) = bench::main() {
        eprintln!("rtpengine-bench: {e:#}");
        std::process::exit(1);
    }
}
