//! The benchmark's floors, in an object of their own: the daemon never loads
//! them.
//!
//! `rtpengine_floor`: the least an XDP forwarder can do for an IPv4/UDP flow
//! (match the destination, rewrite addresses, ports and MACs from a
//! precomputed rule, fix checksums incrementally, redirect). No policy, no FIB
//! lookup, no statistics. `cargo xtask bench` measures it in the same topology
//! as the real dataplane to show how close `rtpengine_xdp` gets to the
//! physical limit.
//!
//! `rtpengine_xsk_floor`: hands the packets of the same flows to an AF_XDP
//! socket (`XSK_FLOOR[XSK_BASE[ingress ifindex] + rx queue]`), for the
//! bench's kernel-bypass userspace floor (`rtpengine-bench/src/xskfloor.rs`).
//!
//! Built for `bpfel-unknown-none` by the bench's `build.rs`; on the host it
//! compiles as an empty binary (see `rtpengine-ebpf`).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{HashMap, XskMap},
    helpers::generated::bpf_redirect,
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::Ipv4Hdr,
    udp::UdpHdr,
};
use rtpengine_bench_ebpf::{FloorKey, FloorTarget, MAX_FLOOR_FLOWS};
use rtpengine_common::csum;
use rtpengine_ebpf::ptr_at;

/// Floor rules, filled by the benchmark.
#[btf_map]
static FLOOR_FLOWS: HashMap<FloorKey, FloorTarget, { MAX_FLOOR_FLOWS as usize }> = HashMap::new();

/// AF_XDP sockets of the XSK floor, indexed by `XSK_BASE[ifindex] + rx queue`.
#[btf_map]
static XSK_FLOOR: XskMap<256> = XskMap::new();

/// First `XSK_FLOOR` slot of each device (ifindex → slot).
#[btf_map]
static XSK_BASE: HashMap<u32, u32, 16> = HashMap::new();

/// The IPv4/UDP headers of a packet for a `FLOOR_FLOWS` destination, and its
/// rule. Inlined like the dataplane's `forward::ipv4`: as a BPF subprogram,
/// LLVM's zero-extension of `ctx` fields is rejected by the verifier.
#[inline(always)]
fn floor_flow(
    ctx: &XdpContext,
) -> Option<(*mut EthHdr, *mut Ipv4Hdr, *mut UdpHdr, *const FloorTarget)> {
    const IP_OFF: usize = EthHdr::LEN;
    const UDP_OFF: usize = IP_OFF + Ipv4Hdr::LEN;
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds-checked above.
    if unsafe { (*eth).ether_type } != EtherType::Ipv4 as u16 {
        return None;
    }
    let (ip, udp) = (
        ptr_at::<Ipv4Hdr>(ctx, IP_OFF)?,
        ptr_at::<UdpHdr>(ctx, UDP_OFF)?,
    );
    // SAFETY: bounds-checked above; packet memory is valid during the run.
    let key = unsafe {
        if (*ip).vihl != 0x45 || (*ip).proto != 17 {
            return None;
        }
        FloorKey {
            addr: (*ip).dst_addr,
            port: (*udp).dst,
            pad: [0; 2],
        }
    };
    let t = FLOOR_FLOWS.get_ptr(key)?;
    Some((eth, ip, udp, t))
}

/// The XSK floor's entry point: packets of a `FLOOR_FLOWS` destination go to
/// the device queue's AF_XDP socket, everything else to the stack.
#[xdp]
pub fn rtpengine_xsk_floor(ctx: XdpContext) -> u32 {
    if floor_flow(&ctx).is_none() {
        return xdp_action::XDP_PASS;
    }
    let Some(base) = XSK_BASE.get_ptr(ctx.ingress_ifindex() as u32) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: a value of XSK_BASE, valid during the run.
    let slot = unsafe { *base } + ctx.rx_queue_index();
    // No socket in the slot → XDP_PASS (the low bits of the flags).
    match XSK_FLOOR.redirect(slot, xdp_action::XDP_PASS as u64) {
        Ok(action) | Err(action) => action,
    }
}

/// The floor forwarder.
#[xdp]
pub fn rtpengine_floor(ctx: XdpContext) -> u32 {
    let Some((eth, ip, udp, t)) = floor_flow(&ctx) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: pointers from `floor_flow`, valid during the run.
    unsafe {
        let t = &*t;
        let addr_d = csum::replace(
            csum::replace(0, &(*ip).src_addr, &t.src_addr),
            &(*ip).dst_addr,
            &t.dst_addr,
        );
        let old_ports = [(*udp).src[0], (*udp).src[1], (*udp).dst[0], (*udp).dst[1]];
        let new_ports = [t.src_port[0], t.src_port[1], t.dst_port[0], t.dst_port[1]];
        (*ip).check = csum::update((*ip).check, addr_d);
        (*udp).check =
            csum::update_udp4((*udp).check, csum::replace(addr_d, &old_ports, &new_ports));
        (*ip).src_addr = t.src_addr;
        (*ip).dst_addr = t.dst_addr;
        (*udp).src = t.src_port;
        (*udp).dst = t.dst_port;
        (*eth).src_addr = t.smac;
        (*eth).dst_addr = t.dmac;
        if t.ifindex == ctx.ingress_ifindex() as u32 {
            xdp_action::XDP_TX
        } else {
            bpf_redirect(t.ifindex, 0) as u32
        }
    }
}

#[cfg(all(target_arch = "bpf", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// The host build is a stub: the programs only run in the kernel.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
