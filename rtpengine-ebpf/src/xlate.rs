//! IPv4 ↔ IPv6 translation of offloaded flows whose local socket and peer
//! differ in family (a caller on IPv4 bridged to a callee on IPv6).
//!
//! The packet's head grows or shrinks by the 20 bytes the IP headers differ
//! (`bpf_xdp_adjust_head`), a fresh IP header is written, and the UDP
//! checksum is updated incrementally: the pseudo-headers of both families
//! sum the protocol and the UDP length the same way, so only the addresses
//! (and ports) change. Translation needs the next hop the daemon resolved
//! (the FIB lookup is per family and would need forwarding); without it, or
//! over the egress MTU, or with a zero IPv4 UDP checksum (which IPv6 does not
//! allow and which cannot be updated), the packet goes to userspace untouched.
//! Everything is decided before the head moves: once it has, every packet is
//! sent.

use aya_ebpf::{helpers::generated::bpf_xdp_adjust_head, programs::XdpContext};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
    udp::UdpHdr,
};
use rtpengine_common::{csum, FlowKey, FlowTarget};

use rtpengine_ebpf::ptr_at;

use crate::forward::{
    count_forward, fallback, first4, resolved_hop, transmit, DROP, ETH_LEN, IPPROTO_UDP,
};

/// How much longer an IPv6 header is than an IPv4 one without options.
const GROWTH: usize = Ipv6Hdr::LEN - Ipv4Hdr::LEN;

/// An IPv4 packet to an IPv6 peer. `ip_r`/`udp_r` are copies of the received
/// headers (the caller checked lengths and the source).
#[inline(always)]
pub fn v4_to_v6(
    ctx: &XdpContext,
    t: &FlowTarget,
    key: &FlowKey,
    ip_r: &Ipv4Hdr,
    udp_r: &UdpHdr,
    udp_len: usize,
) -> u32 {
    if udp_r.check == [0, 0] {
        return fallback(t.table);
    }
    let hop = match resolved_hop(t, Ipv6Hdr::LEN + udp_len) {
        Some(Ok(hop)) => hop,
        Some(Err(verdict)) => return verdict,
        None => return fallback(t.table),
    };
    let old_ports = [udp_r.src[0], udp_r.src[1], udp_r.dst[0], udp_r.dst[1]];
    let new_ports = [t.src.port[0], t.src.port[1], t.dst.port[0], t.dst.port[1]];
    let d = csum::replace(0, &ip_r.src_addr, &t.src.addr);
    let d = csum::replace(d, &ip_r.dst_addr, &t.dst.addr);
    let check = csum::update_udp(udp_r.check, csum::replace(d, &old_ports, &new_ports));
    let tclass = if t.flags & FlowTarget::SET_TOS != 0 {
        t.tos
    } else {
        ip_r.tos
    };
    let hops = if t.ttl != 0 { t.ttl } else { ip_r.ttl };
    let payload_len = (udp_len as u16).to_be_bytes();

    // SAFETY: a valid XDP context; growing the head by 20 bytes is within
    // the headroom XDP guarantees (256 bytes).
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(GROWTH as i32)) } != 0 {
        return fallback(t.table);
    }
    let (Some(eth), Some(ip), Some(udp)) = (
        ptr_at::<EthHdr>(ctx, 0),
        ptr_at::<Ipv6Hdr>(ctx, ETH_LEN),
        ptr_at::<UdpHdr>(ctx, ETH_LEN + Ipv6Hdr::LEN),
    ) else {
        // Cannot happen (the packet only grew); the head has moved, so the
        // stack could not parse it any more.
        return DROP;
    };
    // SAFETY: the three headers are inside the (grown) packet, checked
    // above; packet memory is writable.
    unsafe {
        (*eth).dst_addr = hop.dmac;
        (*eth).src_addr = hop.smac;
        (*eth).ether_type = EtherType::Ipv6 as u16;
        (*ip).vcf = [0x60 | (tclass >> 4), tclass << 4, 0, 0];
        (*ip).payload_len = payload_len;
        (*ip).next_hdr = IPPROTO_UDP;
        (*ip).hop_limit = hops;
        (*ip).src_addr = t.src.addr;
        (*ip).dst_addr = t.dst.addr;
        (*udp).src = t.src.port;
        (*udp).dst = t.dst.port;
        (*udp).check = check;
    }
    count_forward(key, t.table, (udp_len - UdpHdr::LEN) as u64);
    transmit(ctx, hop.ifindex)
}

/// An IPv6 packet to an IPv4 peer (the caller checked lengths, the nonzero
/// UDP checksum and the source).
#[inline(always)]
pub fn v6_to_v4(ctx: &XdpContext, t: &FlowTarget, key: &FlowKey, udp_len: usize) -> u32 {
    let tot_len = Ipv4Hdr::LEN + udp_len;
    let hop = match resolved_hop(t, tot_len) {
        Some(Ok(hop)) => hop,
        Some(Err(verdict)) => return verdict,
        None => return fallback(t.table),
    };
    let (Some(ip), Some(udp)) = (
        ptr_at::<Ipv6Hdr>(ctx, ETH_LEN),
        ptr_at::<UdpHdr>(ctx, ETH_LEN + Ipv6Hdr::LEN),
    ) else {
        return fallback(t.table);
    };
    let new_src = first4(&t.src.addr);
    let new_dst = first4(&t.dst.addr);
    // SAFETY: both headers are inside the packet (checked above).
    let (check, tclass, hop_limit) = unsafe {
        let old_ports = [(*udp).src[0], (*udp).src[1], (*udp).dst[0], (*udp).dst[1]];
        let new_ports = [t.src.port[0], t.src.port[1], t.dst.port[0], t.dst.port[1]];
        let d = csum::replace(0, &(*ip).src_addr, &new_src);
        let d = csum::replace(d, &(*ip).dst_addr, &new_dst);
        let v = (*ip).vcf;
        (
            csum::update_udp((*udp).check, csum::replace(d, &old_ports, &new_ports)),
            (v[0] << 4) | (v[1] >> 4),
            (*ip).hop_limit,
        )
    };
    let tos = if t.flags & FlowTarget::SET_TOS != 0 {
        t.tos
    } else {
        tclass
    };
    let ttl = if t.ttl != 0 { t.ttl } else { hop_limit };
    let len = (tot_len as u16).to_be_bytes();
    // DF set and ID 0 (RFC 6864: an atomic datagram needs no ID).
    let hdr = Ipv4Hdr {
        vihl: 0x45,
        tos,
        tot_len: len,
        id: [0, 0],
        frags: [0x40, 0],
        ttl,
        proto: IPPROTO_UDP,
        check: [0, 0],
        src_addr: new_src,
        dst_addr: new_dst,
    };
    let sum = csum::add(
        csum::add(
            csum::add(0, &[hdr.vihl, hdr.tos, len[0], len[1]]),
            &[0, 0, 0x40, 0],
        ),
        &[ttl, IPPROTO_UDP],
    );
    let sum = csum::add(csum::add(sum, &new_src), &new_dst);
    let ip_check = (!csum::fold(sum)).to_ne_bytes();

    // SAFETY: a valid XDP context; the packet is longer than the 20 bytes
    // dropped from its head.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, GROWTH as i32) } != 0 {
        return fallback(t.table);
    }
    let (Some(eth), Some(ip), Some(udp)) = (
        ptr_at::<EthHdr>(ctx, 0),
        ptr_at::<Ipv4Hdr>(ctx, ETH_LEN),
        ptr_at::<UdpHdr>(ctx, ETH_LEN + Ipv4Hdr::LEN),
    ) else {
        // Cannot happen (the headers were there); the head has moved.
        return DROP;
    };
    // SAFETY: the three headers are inside the (shrunk) packet, checked
    // above; packet memory is writable.
    unsafe {
        (*eth).dst_addr = hop.dmac;
        (*eth).src_addr = hop.smac;
        (*eth).ether_type = EtherType::Ipv4 as u16;
        *ip = hdr;
        (*ip).check = ip_check;
        (*udp).src = t.src.port;
        (*udp).dst = t.dst.port;
        (*udp).check = check;
    }
    count_forward(key, t.table, (udp_len - UdpHdr::LEN) as u64);
    transmit(ctx, hop.ifindex)
}
