//! Builds the floor programs (`rtpengine-bench-ebpf`) with nightly
//! (aya-build) so the benchmark can embed them; the daemon's object never
//! contains them.

fn main() -> aya_build::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../rtpengine-bench-ebpf");
    println!("cargo:rerun-if-changed={root}/src");
    println!("cargo:rerun-if-changed=../rtpengine-ebpf/src/lib.rs");
    println!("cargo:rerun-if-changed=../rtpengine-common/src");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "rtpengine-bench-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
