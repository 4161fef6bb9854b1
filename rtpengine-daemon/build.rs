//! Builds the eBPF dataplane with nightly (aya-build) so the daemon can embed it.
//! `AYA_BUILD_SKIP=1` skips it (e.g. for clippy on a machine without bpf-linker).

fn main() -> aya_build::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../rtpengine-ebpf");
    println!("cargo:rerun-if-changed={root}/src");
    println!("cargo:rerun-if-changed=../rtpengine-common/src");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "rtpengine-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
