//! The benchmark's floor programs must pass the verifier (the benchmark
//! would otherwise report them as failed): the XDP floor forwarder and the
//! AF_XDP floor's redirect program.

use rtpengine::kernel::EBPF_OBJECT;
use rtpengine_tests::require_root;

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn floor_programs_load() {
    require_root();
    for name in ["rtpengine_floor", "rtpengine_xsk_floor"] {
        let mut ebpf = aya::EbpfLoader::new().load(EBPF_OBJECT).expect("object");
        let prog: &mut aya::programs::Xdp = ebpf
            .program_mut(name)
            .unwrap_or_else(|| panic!("{name} in the object"))
            .try_into()
            .expect("an XDP program");
        if let Err(e) = prog.load() {
            panic!("verifier rejected {name}: {e}");
        }
    }
}
