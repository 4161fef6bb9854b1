//! The benchmark's floor forwarder must pass the verifier (the benchmark
//! would otherwise report it as failed).

use rtpengine::kernel::EBPF_OBJECT;
use rtpengine_tests::require_root;

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn floor_program_loads() {
    require_root();
    let mut ebpf = aya::EbpfLoader::new().load(EBPF_OBJECT).expect("object");
    let prog: &mut aya::programs::Xdp = ebpf
        .program_mut("rtpengine_floor")
        .expect("floor program in the object")
        .try_into()
        .expect("an XDP program");
    if let Err(e) = prog.load() {
        panic!("verifier rejected the floor program: {e}");
    }
}
