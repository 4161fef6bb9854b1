//! XDP pieces the bench loads itself: native "pass" programs on the
//! endpoints' veths (veth's native redirect needs a program on the receiving
//! peer; we load them for every configuration so all share one topology) and
//! the minimal forwarder of the floor measurement.

use std::net::SocketAddrV4;

use anyhow::{bail, Context as _};
use aya::maps::HashMap as BpfHashMap;
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use rtpengine::kernel::EBPF_OBJECT;
pub use rtpengine_bench_ebpf::FLOOR_PROGRAM;
use rtpengine_bench_ebpf::{FloorKey, FloorTarget, FLOOR_MAP};

use super::topo::caller_port;
use super::topo::{in_ns, CALLEE_IP, CALLER_IP, PROXY_CALLEE_IP, PROXY_CALLER_IP};

/// Name of the pass-everything program (the project's dataplane with private,
/// empty maps: every lookup misses and the packet goes to the stack).
const PASS_PROGRAM: &str = "rtpengine_xdp";
/// Loaded programs; detached when dropped.
pub struct Loaded(
    #[allow(dead_code, reason = "held only so its programs stay attached")] Vec<Ebpf>,
);

/// Loads `object` with private maps (no pin path), so nothing touches a
/// running daemon's tables.
fn load_private(object: &[u8]) -> anyhow::Result<Ebpf> {
    EbpfLoader::new()
        .load(object)
        .context("loading an eBPF object")
}

/// Attaches a native-mode pass program to each `(namespace, device)`.
pub fn attach_pass(devs: &[(String, &'static str)]) -> anyhow::Result<Loaded> {
    let mut out = Vec::new();
    for (ns, dev) in devs {
        let dev = *dev;
        let e = in_ns(ns, move || {
            let mut ebpf = load_private(EBPF_OBJECT)?;
            let prog: &mut Xdp = ebpf
                .program_mut(PASS_PROGRAM)
                .context("pass program missing")?
                .try_into()?;
            prog.load()?;
            prog.attach(dev, XdpMode::Driver)
                .with_context(|| format!("attaching to {dev}"))?;
            Ok(ebpf)
        })?;
        out.push(e);
    }
    Ok(Loaded(out))
}

/// One floor rule: packets to `local` leave `ifindex` from `new_src` to `dst`.
#[derive(Clone, Copy, Debug)]
pub struct FloorRule {
    /// Address:port the packet arrives at.
    pub local: SocketAddrV4,
    /// New source.
    pub new_src: SocketAddrV4,
    /// New destination.
    pub dst: SocketAddrV4,
    /// Egress device (in the proxy namespace).
    pub ifindex: u32,
    /// Egress MAC.
    pub smac: [u8; 6],
    /// Next hop MAC.
    pub dmac: [u8; 6],
}

impl FloorRule {
    /// Its `FLOOR_FLOWS` key.
    pub fn key(&self) -> FloorKey {
        FloorKey {
            addr: self.local.ip().octets(),
            port: self.local.port().to_be_bytes(),
            pad: [0; 2],
        }
    }

    /// Its `FLOOR_FLOWS` value (network byte order, ready to write).
    pub fn target(&self) -> FloorTarget {
        FloorTarget {
            src_addr: self.new_src.ip().octets(),
            dst_addr: self.dst.ip().octets(),
            src_port: self.new_src.port().to_be_bytes(),
            dst_port: self.dst.port().to_be_bytes(),
            ifindex: self.ifindex,
            smac: self.smac,
            dmac: self.dmac,
        }
    }
}

/// Whether the embedded floor object loads and has the floor program.
pub fn floor_available() -> bool {
    load_private(crate::FLOOR_OBJECT).is_ok_and(|e| e.program(FLOOR_PROGRAM).is_some())
}

/// The floor rules for `calls` calls on ports `port_base + 2c` of both proxy
/// addresses, relaying to the generator's ports (`k` sockets per side):
/// `rules[2c]` for packets from the caller (out `p1` to the callee),
/// `rules[2c + 1]` for packets from the callee (out `p0`). `p0`/`p1` are the
/// proxy devices' (ifindex, MAC), `c0`/`e0` the endpoints' MACs.
pub fn floor_rules(
    calls: usize,
    port_base: u16,
    k: usize,
    p0: (u32, [u8; 6]),
    p1: (u32, [u8; 6]),
    c0: [u8; 6],
    e0: [u8; 6],
) -> Vec<FloorRule> {
    let mut rules = Vec::with_capacity(2 * calls);
    for c in 0..calls {
        let p = port_base + 2 * c as u16;
        let port = caller_port(c, k);
        rules.push(FloorRule {
            local: SocketAddrV4::new(PROXY_CALLER_IP, p),
            new_src: SocketAddrV4::new(PROXY_CALLEE_IP, p),
            dst: SocketAddrV4::new(CALLEE_IP, port),
            ifindex: p1.0,
            smac: p1.1,
            dmac: e0,
        });
        rules.push(FloorRule {
            local: SocketAddrV4::new(PROXY_CALLEE_IP, p),
            new_src: SocketAddrV4::new(PROXY_CALLER_IP, p),
            dst: SocketAddrV4::new(CALLER_IP, port),
            ifindex: p0.0,
            smac: p0.1,
            dmac: c0,
        });
    }
    rules
}

/// Loads floor program `program` (in the current namespace), attaches it to
/// `devs` in native mode and fills `FLOOR_FLOWS` with `rules`; detached when
/// the returned object drops.
pub fn load_floor(program: &str, devs: &[&str], rules: &[FloorRule]) -> anyhow::Result<Ebpf> {
    let mut ebpf = load_private(crate::FLOOR_OBJECT)?;
    {
        let Some(prog) = ebpf.program_mut(program) else {
            bail!("the floor object has no {program} program");
        };
        let prog: &mut Xdp = prog.try_into()?;
        prog.load()?;
        for dev in devs {
            prog.attach(dev, XdpMode::Driver)
                .with_context(|| format!("attaching {program} to {dev}"))?;
        }
    }
    let mut map: BpfHashMap<_, FloorKey, FloorTarget> =
        BpfHashMap::try_from(ebpf.map_mut(FLOOR_MAP).context("floor map missing")?)?;
    for r in rules {
        map.insert(r.key(), r.target(), 0)
            .context("inserting a floor rule")?;
    }
    Ok(ebpf)
}

/// Loads the XDP floor forwarder on `devs` (in namespace `ns`) with `rules`.
pub fn attach_floor(
    ns: &str,
    devs: &[&'static str],
    rules: Vec<FloorRule>,
) -> anyhow::Result<Loaded> {
    let devs = devs.to_vec();
    let e = in_ns(ns, move || load_floor(FLOOR_PROGRAM, &devs, &rules))?;
    Ok(Loaded(vec![e]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The floor programs must pass the verifier, or the benchmark would
    /// report those configurations as failed.
    #[test]
    #[ignore = "privileged: run with cargo xtask test"]
    fn floor_programs_load() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "needs root (eBPF)");
        for name in [FLOOR_PROGRAM, rtpengine_bench_ebpf::XSK_FLOOR_PROGRAM] {
            let mut ebpf = load_private(crate::FLOOR_OBJECT).expect("floor object");
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .unwrap_or_else(|| panic!("{name} in the object"))
                .try_into()
                .expect("an XDP program");
            if let Err(e) = prog.load() {
                panic!("verifier rejected {name}: {e}");
            }
        }
    }
}
