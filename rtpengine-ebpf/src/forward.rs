//! Per-family parsing, policy checks and rewrite.
//!
//! Order of operations for a packet to a known local endpoint:
//! 1. sanity (no IP options, no fragments, lengths consistent) else `XDP_PASS`;
//! 2. the owning table's lease has expired (its daemon is gone) → `XDP_PASS`;
//!    STUN / DTLS payload → `XDP_PASS` (userspace handles ICE and handshakes);
//!    a stream userspace relays over AF_XDP ([`FlowTarget::TO_XSK`]) → its
//!    table's socket of the receiving queue (`to_xsk`);
//! 3. source check per the target's flags (drop + error, or pass);
//! 4. the next hop: the one the daemon resolved over rtnetlink (`NEXT_HOP`:
//!    device, MACs, MTU; no forwarding sysctl needed), else `bpf_fib_lookup`
//!    with the **rewritten** addresses; both before touching the packet, so
//!    every `XDP_PASS` hands the stack the original packet;
//! 5. rewrite MACs, addresses, ports, TOS/TTL with incremental checksums (direct
//!    writes, no checksum helpers), count, and `XDP_TX` / redirect.
//!
//! A target of the other family is translated (`xlate.rs`) after step 3.

use aya_ebpf::{
    bindings::{
        bpf_fib_lookup as FibParams, xdp_action, BPF_FIB_LKUP_RET_BLACKHOLE,
        BPF_FIB_LKUP_RET_PROHIBIT, BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LKUP_RET_UNREACHABLE,
        BPF_NOEXIST,
    },
    helpers::generated::{bpf_fib_lookup, bpf_ktime_get_coarse_ns, bpf_redirect},
    programs::XdpContext,
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
    udp::UdpHdr,
};
use rtpengine_common::{
    classify, csum, FlowKey, FlowStats, FlowTarget, XskSlotKey, FAMILY_V4, FAMILY_V6,
    XSK_MAX_PACKET,
};

use rtpengine_ebpf::ptr_at;

use crate::{xlate, FLOWS, FLOW_STATS, TABLE_LEASE, TABLE_STATS, XSKS, XSK_SLOTS};

pub(crate) const ETH_LEN: usize = EthHdr::LEN;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
pub(crate) const IPPROTO_UDP: u8 = 17;
const PASS: u32 = xdp_action::XDP_PASS;
pub(crate) const DROP: u32 = xdp_action::XDP_DROP;

/// IPv4/UDP packet after the Ethernet header. Inlined (BPF subprograms would
/// receive `ctx` in a form the verifier rejects after LLVM's zero-extension).
#[inline(always)]
pub fn ipv4(ctx: &XdpContext) -> u32 {
    const IP_OFF: usize = ETH_LEN;
    const UDP_OFF: usize = IP_OFF + Ipv4Hdr::LEN;
    const PAYLOAD_OFF: usize = UDP_OFF + UdpHdr::LEN;

    let (Some(eth), Some(ip), Some(udp)) = (
        ptr_at::<EthHdr>(ctx, 0),
        ptr_at::<Ipv4Hdr>(ctx, IP_OFF),
        ptr_at::<UdpHdr>(ctx, UDP_OFF),
    ) else {
        return PASS;
    };
    // SAFETY: all three headers are inside the packet (checked above); packet
    // memory is valid for reads and writes for the duration of the program.
    let (ip_r, udp_r) = unsafe { (*ip, *udp) };
    // Options, non-UDP and fragments (MF set or offset != 0) go to the stack.
    if ip_r.vihl != 0x45 || ip_r.proto != IPPROTO_UDP {
        return PASS;
    }
    if ip_r.frags[0] & 0x3f != 0 || ip_r.frags[1] != 0 {
        return PASS;
    }
    let tot_len = usize::from(u16::from_be_bytes(ip_r.tot_len));
    let udp_len = usize::from(u16::from_be_bytes(udp_r.len));
    if udp_len < UdpHdr::LEN || tot_len != Ipv4Hdr::LEN + udp_len {
        return PASS;
    }
    if ctx.data() + IP_OFF + tot_len > ctx.data_end() {
        return PASS;
    }

    let d = ip_r.dst_addr;
    let key = FlowKey {
        family: FAMILY_V4,
        _pad: 0,
        port: udp_r.dst,
        addr: [d[0], d[1], d[2], d[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    let Some(tp) = FLOWS.get_ptr(key) else {
        return PASS;
    };
    // SAFETY: a map value pointer from a successful lookup; hash values stay
    // valid for the whole program run (RCU), even if userspace replaces them.
    let t: &FlowTarget = unsafe { &*tp };
    if lease_expired(t.table) {
        return PASS;
    }
    let payload_len = udp_len - UdpHdr::LEN;
    if userspace_payload(ctx, PAYLOAD_OFF, payload_len, t.flags) {
        return PASS;
    }
    // Userspace checks the source of what it relays itself.
    if t.flags & FlowTarget::TO_XSK != 0 {
        return to_xsk(ctx, t.table);
    }
    let src_ok = ip_r.src_addr == first4(&t.expected_src.addr) && udp_r.src == t.expected_src.port;
    if let Some(verdict) = source_verdict(src_ok, t, &key) {
        return verdict;
    }
    if t.family == FAMILY_V6 {
        return xlate::v4_to_v6(ctx, t, &key, &ip_r, &udp_r, udp_len);
    }
    if t.family != FAMILY_V4 {
        return PASS;
    }

    let new_src = first4(&t.src.addr);
    let new_dst = first4(&t.dst.addr);
    let new_tos = if t.flags & FlowTarget::SET_TOS != 0 {
        t.tos
    } else {
        ip_r.tos
    };
    let new_ttl = if t.ttl != 0 { t.ttl } else { ip_r.ttl };

    let old_ports = [udp_r.src[0], udp_r.src[1], udp_r.dst[0], udp_r.dst[1]];
    let new_ports = [t.src.port[0], t.src.port[1], t.dst.port[0], t.dst.port[1]];
    let addr_d = csum::replace(
        csum::replace(0, &ip_r.src_addr, &new_src),
        &ip_r.dst_addr,
        &new_dst,
    );
    let ip_d = csum::replace(
        csum::replace(addr_d, &[ip_r.vihl, ip_r.tos], &[ip_r.vihl, new_tos]),
        &[ip_r.ttl, ip_r.proto],
        &[new_ttl, ip_r.proto],
    );
    let udp_d = csum::replace(addr_d, &old_ports, &new_ports);
    // See ipv6: keep the sums from being sunk past the helper call.
    let (ip_d, udp_d) = (pin(ip_d), pin(udp_d));

    let hop = match resolved_hop(t, tot_len) {
        Some(Ok(hop)) => hop,
        Some(Err(verdict)) => return verdict,
        None => {
            // SAFETY: all-zero is a valid bpf_fib_lookup.
            let mut fib: FibParams = unsafe { core::mem::zeroed() };
            fib.family = AF_INET;
            fib.l4_protocol = IPPROTO_UDP;
            fib.sport = u16::from_ne_bytes(t.src.port);
            fib.dport = u16::from_ne_bytes(t.dst.port);
            fib.__bindgen_anon_1.tot_len = tot_len as u16;
            fib.ifindex = ctx.ingress_ifindex() as u32;
            fib.__bindgen_anon_2.tos = new_tos;
            fib.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(new_src);
            fib.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(new_dst);
            if let Some(verdict) = fib_verdict(ctx, &mut fib, &key, t) {
                return verdict;
            }
            Hop {
                ifindex: fib.ifindex,
                smac: fib.smac,
                dmac: fib.dmac,
            }
        }
    };

    // SAFETY: bounds-checked pointers into the packet (see above); the FIB helper
    // does not change packet data, so they are still valid.
    unsafe {
        (*eth).dst_addr = hop.dmac;
        (*eth).src_addr = hop.smac;
        (*ip).tos = new_tos;
        (*ip).ttl = new_ttl;
        (*ip).src_addr = new_src;
        (*ip).dst_addr = new_dst;
        (*ip).check = csum::update(ip_r.check, ip_d);
        (*udp).src = t.src.port;
        (*udp).dst = t.dst.port;
        (*udp).check = csum::update_udp4(udp_r.check, udp_d);
    }
    count_forward(&key, t.table, payload_len as u64);
    transmit(ctx, hop.ifindex)
}

/// IPv6/UDP packet (UDP directly after the fixed header) after the Ethernet
/// header. Inlined, like [`ipv4`]. Header fields are read where they are
/// used rather than copied up front: a 40-byte header copy becomes 40 spilled
/// byte registers and blows the 512-byte BPF stack.
#[inline(always)]
pub fn ipv6(ctx: &XdpContext) -> u32 {
    const IP_OFF: usize = ETH_LEN;
    const UDP_OFF: usize = IP_OFF + Ipv6Hdr::LEN;
    const PAYLOAD_OFF: usize = UDP_OFF + UdpHdr::LEN;

    let (Some(eth), Some(ip), Some(udp)) = (
        ptr_at::<EthHdr>(ctx, 0),
        ptr_at::<Ipv6Hdr>(ctx, IP_OFF),
        ptr_at::<UdpHdr>(ctx, UDP_OFF),
    ) else {
        return PASS;
    };
    // SAFETY: the three headers are inside the packet (checked above);
    // packet memory is valid for reads and writes for the duration of the
    // program, and the FIB helper does not move it (this holds for every
    // packet access below).
    let (next_hdr, payload_len, udp_len, udp_check) = unsafe {
        (
            (*ip).next_hdr,
            usize::from(u16::from_be_bytes((*ip).payload_len)),
            usize::from(u16::from_be_bytes((*udp).len)),
            (*udp).check,
        )
    };
    if next_hdr != IPPROTO_UDP {
        return PASS;
    }
    if udp_len < UdpHdr::LEN || udp_len != payload_len {
        return PASS;
    }
    if ctx.data() + UDP_OFF + udp_len > ctx.data_end() {
        return PASS;
    }
    // A zero UDP checksum is invalid over IPv6: let the stack deal with it.
    if udp_check == [0, 0] {
        return PASS;
    }

    // SAFETY: the headers are inside the packet (checked above).
    let (dst_port, dst_addr) = unsafe { ((*udp).dst, (*ip).dst_addr) };
    let key = FlowKey {
        family: FAMILY_V6,
        _pad: 0,
        port: dst_port,
        addr: dst_addr,
    };
    let Some(tp) = FLOWS.get_ptr(key) else {
        return PASS;
    };
    // SAFETY: a map value pointer from a successful lookup (valid for the run).
    let t: &FlowTarget = unsafe { &*tp };
    if lease_expired(t.table) {
        return PASS;
    }
    let data_len = udp_len - UdpHdr::LEN;
    if userspace_payload(ctx, PAYLOAD_OFF, data_len, t.flags) {
        return PASS;
    }
    // SAFETY: the headers are inside the packet (checked above).
    let src_ok =
        unsafe { eq16(&(*ip).src_addr, &t.expected_src.addr) && (*udp).src == t.expected_src.port };
    if let Some(verdict) = source_verdict(src_ok, t, &key) {
        return verdict;
    }
    if t.family == FAMILY_V4 {
        return xlate::v6_to_v4(ctx, t, &key, udp_len);
    }
    if t.family != FAMILY_V6 {
        return PASS;
    }

    // SAFETY: the IPv6 header is inside the packet (checked above).
    let v = unsafe { (*ip).vcf };
    let new_vcf = if t.flags & FlowTarget::SET_TOS != 0 {
        [
            (v[0] & 0xf0) | (t.tos >> 4),
            (v[1] & 0x0f) | (t.tos << 4),
            v[2],
            v[3],
        ]
    } else {
        v
    };

    // Checksum delta computed before the FIB helper call, so only one u64 (not
    // every header byte) stays live across it.
    // SAFETY: the headers are inside the packet (checked above).
    let d = unsafe {
        let old_ports = [(*udp).src[0], (*udp).src[1], (*udp).dst[0], (*udp).dst[1]];
        let new_ports = [t.src.port[0], t.src.port[1], t.dst.port[0], t.dst.port[1]];
        let d = csum::replace(0, &(*ip).src_addr, &t.src.addr);
        let d = csum::replace(d, &(*ip).dst_addr, &t.dst.addr);
        csum::replace(d, &old_ports, &new_ports)
    };
    // Force the sum to be complete here: otherwise LLVM sinks the arithmetic
    // past the helper call and keeps ~64 loaded bytes alive (spilled) across it.
    let d = pin(d);

    let hop = match resolved_hop(t, Ipv6Hdr::LEN + payload_len) {
        Some(Ok(hop)) => hop,
        Some(Err(verdict)) => return verdict,
        None => {
            // SAFETY: all-zero is a valid bpf_fib_lookup.
            let mut fib: FibParams = unsafe { core::mem::zeroed() };
            fib.family = AF_INET6;
            fib.l4_protocol = IPPROTO_UDP;
            fib.sport = u16::from_ne_bytes(t.src.port);
            fib.dport = u16::from_ne_bytes(t.dst.port);
            fib.__bindgen_anon_1.tot_len = (Ipv6Hdr::LEN + payload_len) as u16;
            fib.ifindex = ctx.ingress_ifindex() as u32;
            fib.__bindgen_anon_2.flowinfo =
                u32::from_ne_bytes([new_vcf[0] & 0x0f, new_vcf[1], new_vcf[2], new_vcf[3]]);
            fib.__bindgen_anon_3.ipv6_src = words(&t.src.addr);
            fib.__bindgen_anon_4.ipv6_dst = words(&t.dst.addr);
            if let Some(verdict) = fib_verdict(ctx, &mut fib, &key, t) {
                return verdict;
            }
            Hop {
                ifindex: fib.ifindex,
                smac: fib.smac,
                dmac: fib.dmac,
            }
        }
    };

    // SAFETY: the headers are inside the packet (checked above); the FIB
    // helper does not move packet data, so the pointers are still valid.
    unsafe {
        (*eth).dst_addr = hop.dmac;
        (*eth).src_addr = hop.smac;
        (*ip).vcf = new_vcf;
        if t.ttl != 0 {
            (*ip).hop_limit = t.ttl;
        }
        (*ip).src_addr = t.src.addr;
        (*ip).dst_addr = t.dst.addr;
        (*udp).src = t.src.port;
        (*udp).dst = t.dst.port;
        (*udp).check = csum::update_udp(udp_check, d);
    }
    count_forward(&key, t.table, data_len as u64);
    transmit(ctx, hop.ifindex)
}

/// Whether `table`'s lease has run out: its daemon stopped renewing it (killed,
/// crashed, frozen), so its flows go to the stack, which has no socket for
/// them any more (or a restarted daemon's). Counted per table.
#[inline(always)]
fn lease_expired(table: u32) -> bool {
    let Some(lease) = TABLE_LEASE.get(table) else {
        return true;
    };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if now <= lease.expires_ns {
        return false;
    }
    if let Some(s) = TABLE_STATS.get_ptr_mut(table) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe { (*s).expired += 1 };
    }
    true
}

/// Whether the payload belongs to userspace (DTLS, STUN, RTCP with
/// `PUNT_RTCP`), or cannot be read.
#[inline(always)]
fn userspace_payload(ctx: &XdpContext, off: usize, len: usize, flags: u32) -> bool {
    if len == 0 {
        return false;
    }
    let Some(first) = ptr_at::<u8>(ctx, off) else {
        return true;
    };
    // SAFETY: bounds-checked.
    if classify::looks_dtls(unsafe { *first }) {
        return true;
    }
    if flags & FlowTarget::PUNT_RTCP != 0 && len >= 2 {
        let Some(head) = ptr_at::<[u8; 2]>(ctx, off) else {
            return true;
        };
        // SAFETY: bounds-checked.
        if classify::is_rtcp(unsafe { &*head }) {
            return true;
        }
    }
    if len >= classify::STUN_HEADER_LEN {
        let Some(head) = ptr_at::<[u8; 8]>(ctx, off) else {
            return true;
        };
        // SAFETY: bounds-checked.
        if classify::is_stun(len, unsafe { &*head }) {
            return true;
        }
    }
    false
}

/// Redirects the packet to `table`'s AF_XDP socket of the queue it arrived
/// on; the stack takes it where the table has none there, or where it
/// does not fit a frame (the daemon's UDP socket relays it then), counted
/// as a fallback.
#[inline(always)]
fn to_xsk(ctx: &XdpContext, table: u32) -> u32 {
    if ctx.data_end() - ctx.data() > XSK_MAX_PACKET as usize {
        return fallback(table);
    }
    let key = XskSlotKey {
        table,
        ifindex: ctx.ingress_ifindex() as u32,
    };
    let Some(slots) = XSK_SLOTS.get_ptr(key) else {
        return fallback(table);
    };
    // SAFETY: a map value, valid during the run.
    let (base, queues) = unsafe { ((*slots).base, (*slots).queues) };
    let queue = ctx.rx_queue_index();
    if queue >= queues {
        return fallback(table);
    }
    // An empty slot (the daemon's socket closed) → XDP_PASS (the low bits
    // of the flags).
    match XSKS.redirect(base + queue, u64::from(PASS)) {
        Ok(action) | Err(action) => action,
    }
}

/// What to do on a source mismatch; `None` = forward.
#[inline(always)]
fn source_verdict(src_ok: bool, t: &FlowTarget, key: &FlowKey) -> Option<u32> {
    if src_ok {
        return None;
    }
    if t.flags & FlowTarget::STRICT_SOURCE != 0 {
        count_error(key, t.table);
        return Some(DROP);
    }
    if t.flags & FlowTarget::PASS_ON_MISMATCH != 0 {
        return Some(PASS);
    }
    None
}

/// Runs the FIB lookup; `None` = route found with a resolved neighbour (forward),
/// otherwise the verdict (the packet is still untouched).
#[inline(always)]
fn fib_verdict(
    ctx: &XdpContext,
    fib: &mut FibParams,
    key: &FlowKey,
    t: &FlowTarget,
) -> Option<u32> {
    // SAFETY: valid context and a fully initialised params struct on our stack.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.ctx.cast(),
            fib,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    };
    if rc == i64::from(BPF_FIB_LKUP_RET_SUCCESS) {
        return None;
    }
    if rc == i64::from(BPF_FIB_LKUP_RET_BLACKHOLE)
        || rc == i64::from(BPF_FIB_LKUP_RET_UNREACHABLE)
        || rc == i64::from(BPF_FIB_LKUP_RET_PROHIBIT)
    {
        count_error(key, t.table);
        return Some(DROP);
    }
    // NO_NEIGH (the stack resolves it; later packets go fast), FWD_DISABLED,
    // FRAG_NEEDED, NOT_FWDED, UNSUPP_LWT, NO_SRC_ADDR, errors: userspace relays.
    Some(fallback(t.table))
}

/// The next hop the daemon resolved, if the flow has one (`NEXT_HOP`):
/// `Err(verdict)` when the IP packet (`ip_len` bytes as sent) is longer than
/// its MTU, so userspace sends it.
#[inline(always)]
pub(crate) fn resolved_hop(t: &FlowTarget, ip_len: usize) -> Option<Result<Hop, u32>> {
    if t.flags & FlowTarget::NEXT_HOP == 0 {
        return None;
    }
    if ip_len > usize::from(t.mtu) {
        return Some(Err(fallback(t.table)));
    }
    Some(Ok(Hop {
        ifindex: t.oif,
        smac: t.smac,
        dmac: t.dmac,
    }))
}

/// The device and MACs a rewritten packet leaves with.
pub(crate) struct Hop {
    pub(crate) ifindex: u32,
    pub(crate) smac: [u8; 6],
    pub(crate) dmac: [u8; 6],
}

/// Hands an offloaded flow's packet to userspace untouched, counted.
#[inline(always)]
pub(crate) fn fallback(table: u32) -> u32 {
    if let Some(s) = TABLE_STATS.get_ptr_mut(table) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe { (*s).fallback += 1 };
    }
    PASS
}

/// `XDP_TX` when leaving through the ingress device, else redirect.
#[inline(always)]
pub(crate) fn transmit(ctx: &XdpContext, ifindex: u32) -> u32 {
    if ifindex == ctx.ingress_ifindex() as u32 {
        xdp_action::XDP_TX
    } else {
        // SAFETY: plain helper call.
        unsafe { bpf_redirect(ifindex, 0) as u32 }
    }
}

/// The flow's counters, created on first use (userspace normally creates them
/// at install time).
#[inline(always)]
fn flow_stats(key: &FlowKey) -> Option<*mut FlowStats> {
    if let Some(p) = FLOW_STATS.get_ptr_mut(key) {
        return Some(p);
    }
    let _ = FLOW_STATS.insert(key, FlowStats::default(), u64::from(BPF_NOEXIST));
    FLOW_STATS.get_ptr_mut(key)
}

/// Adds `v` to the counter at `p` atomically (BPF's XADD: the result is not
/// fetched). The BPF target has no 64-bit `AtomicU64::fetch_add`, hence the
/// intrinsic there; the host stub uses the std type.
///
/// # Safety
/// `p` is valid and aligned, and every concurrent access to it is atomic.
#[inline(always)]
unsafe fn atomic_add(p: *mut u64, v: u64) {
    #[cfg(target_arch = "bpf")]
    // SAFETY: guaranteed by the caller.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            p, v,
        );
    }
    #[cfg(not(target_arch = "bpf"))]
    // SAFETY: guaranteed by the caller.
    unsafe {
        core::sync::atomic::AtomicU64::from_ptr(p)
            .fetch_add(v, core::sync::atomic::Ordering::Relaxed);
    }
}

#[inline(always)]
pub(crate) fn count_forward(key: &FlowKey, table: u32, bytes: u64) {
    if let Some(s) = flow_stats(key) {
        // SAFETY: a valid, aligned map value pointer that other CPUs only
        // touch atomically; the counters are added atomically (results
        // ignored, so LLVM emits BPF's XADD), last_seen is a plain store.
        unsafe {
            atomic_add(&raw mut (*s).packets, 1);
            atomic_add(&raw mut (*s).bytes, bytes);
            (*s).last_seen_ns = bpf_ktime_get_coarse_ns();
        }
    }
    if let Some(s) = TABLE_STATS.get_ptr_mut(table) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe {
            (*s).packets += 1;
            (*s).bytes += bytes;
        }
    }
}

#[inline(always)]
fn count_error(key: &FlowKey, table: u32) {
    if let Some(s) = flow_stats(key) {
        // SAFETY: a valid, aligned map value pointer that other CPUs only
        // touch atomically; atomic add with the result ignored.
        unsafe {
            atomic_add(&raw mut (*s).errors, 1);
        }
    }
    if let Some(s) = TABLE_STATS.get_ptr_mut(table) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe { (*s).errors += 1 };
    }
}

#[inline(always)]
pub(crate) fn first4(a: &[u8; 16]) -> [u8; 4] {
    [a[0], a[1], a[2], a[3]]
}

/// 16-byte comparison without a `memcmp` call (BPF has none).
#[inline(always)]
fn eq16(a: &[u8; 16], b: &[u8; 16]) -> bool {
    let w = |x: &[u8; 16], i: usize| {
        u64::from_ne_bytes([
            x[i],
            x[i + 1],
            x[i + 2],
            x[i + 3],
            x[i + 4],
            x[i + 5],
            x[i + 6],
            x[i + 7],
        ])
    };
    w(a, 0) == w(b, 0) && w(a, 8) == w(b, 8)
}

#[inline(always)]
fn words(a: &[u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

/// Materialises `v` at this point of the program (a volatile round trip through
/// the stack), so LLVM cannot sink its computation past a helper call.
#[inline(always)]
fn pin(v: u64) -> u64 {
    let mut slot = v;
    // SAFETY: a local variable.
    unsafe {
        core::ptr::write_volatile(&mut slot, v);
        core::ptr::read_volatile(&slot)
    }
}
