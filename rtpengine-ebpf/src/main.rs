//! XDP dataplane of rtpengine-rs.
//!
//! For every UDP packet whose destination (local address, port) is in `FLOWS`,
//! rewrite it to the flow's target and send it out (`XDP_TX` / redirect) without
//! going through the stack. Everything else — unknown destinations, STUN, DTLS,
//! fragments, IP options, VLAN tags, anything the kernel cannot route right now —
//! goes to the normal stack (`XDP_PASS`), where the daemon's sockets handle it.
//! The program never drops traffic it does not own: the only drops are a source
//! mismatch under `STRICT_SOURCE` and routes that are blackhole/unreachable/
//! prohibit for an offloaded flow.
//!
//! Module layout: this file holds the maps and the entry point; `forward.rs`
//! the per-family parse/check/rewrite logic, `xlate.rs` the IPv4↔IPv6
//! translation; bounds-checked packet access is
//! in the crate's library (`lib.rs`). Checksum arithmetic and payload
//! classification are in `rtpengine-common` so they are unit-tested on the
//! host.
//!
//! Built for `bpfel-unknown-none` by the daemon's `build.rs`. On the host the
//! same code compiles as an empty binary, so `cargo check --workspace` and
//! clippy see it (as aya's template does).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(
    target_arch = "bpf",
    allow(
        internal_features,
        reason = "atomic_xadd: the BPF target has no AtomicU64::fetch_add"
    )
)]

mod forward;
mod xlate;

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, HashMap, PerCpuArray, XskMap},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use network_types::eth::{EthHdr, EtherType};
use rtpengine_common::{
    FlowKey, FlowStats, FlowTarget, TableLease, TableStats, XskSlotKey, XskSlots, MAX_FLOWS,
    MAX_TABLES, MAX_XSK_DEVICES, XSK_SLOTS_PER_TABLE,
};
use rtpengine_ebpf::ptr_at;

/// Flow table shared by all daemons: local endpoint → target (owner table inside).
#[btf_map]
static FLOWS: HashMap<FlowKey, FlowTarget, { MAX_FLOWS as usize }> = HashMap::new();

/// Per-flow counters, keyed like `FLOWS` (kept apart so target updates keep counts).
#[btf_map]
static FLOW_STATS: HashMap<FlowKey, FlowStats, { MAX_FLOWS as usize }> = HashMap::new();

/// Per-table totals, one slot per table id, per CPU.
#[btf_map]
static TABLE_STATS: PerCpuArray<TableStats, { MAX_TABLES as usize }> = PerCpuArray::new();

/// Per-table leases: a table's flows are forwarded only until its owner
/// stops renewing them.
#[btf_map]
static TABLE_LEASE: Array<TableLease, { MAX_TABLES as usize }> = Array::new();

/// AF_XDP sockets of every table ([`FlowTarget::TO_XSK`] flows), indexed as
/// `XSK_SLOTS` says.
#[btf_map]
static XSKS: XskMap<{ (MAX_TABLES * XSK_SLOTS_PER_TABLE) as usize }> = XskMap::new();

/// Which `XSKS` slots serve a table on an ingress device.
#[btf_map]
static XSK_SLOTS: HashMap<XskSlotKey, XskSlots, { MAX_XSK_DEVICES as usize }> = HashMap::new();

/// Entry point attached to the interfaces that carry media addresses.
#[xdp]
pub fn rtpengine_xdp(ctx: XdpContext) -> u32 {
    let Some(eth) = ptr_at::<EthHdr>(&ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: bounds-checked above.
    let ether_type = unsafe { (*eth).ether_type };
    if ether_type == EtherType::Ipv4 as u16 {
        forward::ipv4(&ctx)
    } else if ether_type == EtherType::Ipv6 as u16 {
        forward::ipv6(&ctx)
    } else {
        xdp_action::XDP_PASS
    }
}

#[cfg(all(target_arch = "bpf", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The host build is a stub: the program only runs in the kernel.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
