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
use rtpengine_common::{FloorKey, FloorTarget};

use super::topo::in_ns;

/// Name of the pass-everything program (the project's dataplane with private,
/// empty maps: every lookup misses and the packet goes to the stack).
const PASS_PROGRAM: &str = "rtpengine_xdp";
/// Name of the floor forwarder (rtpengine-ebpf/src/floor.rs).
pub const FLOOR_PROGRAM: &str = "rtpengine_floor";
/// Its flow map.
const FLOOR_MAP: &str = "FLOOR_FLOWS";

/// Loaded programs; detached when dropped.
pub struct Loaded(#[allow(dead_code)] Vec<Ebpf>);

fn load_private() -> anyhow::Result<Ebpf> {
    // No pin path: private maps, so nothing touches a running daemon's tables.
    EbpfLoader::new()
        .load(EBPF_OBJECT)
        .context("loading the eBPF object")
}

/// Attaches a native-mode pass program to each `(namespace, device)`.
pub fn attach_pass(devs: &[(String, &'static str)]) -> anyhow::Result<Loaded> {
    let mut out = Vec::new();
    for (ns, dev) in devs {
        let dev = *dev;
        let e = in_ns(ns, move || {
            let mut ebpf = load_private()?;
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

/// Whether the embedded object has the floor program.
pub fn floor_available() -> bool {
    load_private().is_ok_and(|e| e.program(FLOOR_PROGRAM).is_some())
}

/// Loads the floor forwarder on `devs` (in namespace `ns`) with `rules`.
pub fn attach_floor(
    ns: &str,
    devs: &[&'static str],
    rules: Vec<FloorRule>,
) -> anyhow::Result<Loaded> {
    let devs = devs.to_vec();
    let e = in_ns(ns, move || {
        let mut ebpf = load_private()?;
        {
            let Some(prog) = ebpf.program_mut(FLOOR_PROGRAM) else {
                bail!("this build's eBPF object has no {FLOOR_PROGRAM} program");
            };
            let prog: &mut Xdp = prog.try_into()?;
            prog.load()?;
            for dev in &devs {
                prog.attach(dev, XdpMode::Driver)
                    .with_context(|| format!("attaching floor to {dev}"))?;
            }
        }
        let mut map: BpfHashMap<_, FloorKey, FloorTarget> =
            BpfHashMap::try_from(ebpf.map_mut(FLOOR_MAP).context("floor map missing")?)?;
        for r in rules {
            let key = FloorKey {
                addr: r.local.ip().octets(),
                port: r.local.port().to_be_bytes(),
                pad: [0; 2],
            };
            let t = FloorTarget {
                src_addr: r.new_src.ip().octets(),
                dst_addr: r.dst.ip().octets(),
                src_port: r.new_src.port().to_be_bytes(),
                dst_port: r.dst.port().to_be_bytes(),
                ifindex: r.ifindex,
                smac: r.smac,
                dmac: r.dmac,
            };
            map.insert(key, t, 0).context("inserting a floor rule")?;
        }
        Ok(ebpf)
    })?;
    Ok(Loaded(vec![e]))
}
