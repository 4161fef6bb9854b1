//! Types shared by the eBPF dataplane (`rtpengine-ebpf`) and the daemon.
//!
//! Everything here is `no_std`, `#[repr(C)]` and free of implicit padding, because
//! the kernel hashes and copies raw bytes: a stray padding byte would make a key
//! written by userspace differ from the one the BPF program builds. The
//! `bytemuck::Pod` derives enforce the "no implicit padding" rule at compile time.
//!
//! # Map layout
//!
//! All daemons (tables 0..63) share **one flat hash map**, [`FLOWS_MAP`], keyed by
//! the local (destination) endpoint of a media socket ([`FlowKey`]), with the
//! owning table id stored in the value ([`FlowTarget::table`]). A local
//! address:port belongs to exactly one daemon, so the key is globally unique and a
//! packet needs a single lookup; the table id is not in the packet anyway (with
//! rtpengine's kernel module it came from the netfilter rule). Flushing one table
//! means iterating and deleting the entries whose `table` matches, which only
//! happens at daemon start-up and shutdown.
//!
//! Counters live in a second hash, [`FLOW_STATS_MAP`], keyed exactly like
//! `FLOWS`: replacing a target (userspace update of a hash value) then never loses
//! increments done concurrently by the dataplane. Per-table totals live in a
//! 64-entry per-CPU array, [`TABLE_STATS_MAP`], indexed by table id.
//!
//! Each table holds a lease in [`TABLE_LEASE_MAP`] (a 64-entry array): the
//! owning daemon renews it every fraction of a second, and the dataplane
//! forwards a table's flows only while it is current. A daemon that dies
//! (SIGKILL, crash, a frozen control runtime) thus stops forwarding within
//! the lease, instead of relaying its old calls forever.
//!
//! Addresses and ports are network-order byte arrays everywhere, exactly as they
//! appear in packets, so neither side ever converts byte order.
#![no_std]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod classify;
pub mod csum;

/// Number of forwarding tables, as rtpengine's kernel module (`--table=0..63`).
pub const MAX_TABLES: u32 = 64;

/// Version of the pinned map layout. Bump it whenever a shared type changes, so a
/// daemon never reuses maps pinned by an incompatible build (aya does not check).
pub const MAP_LAYOUT_VERSION: u32 = 3;

/// Capacity of [`FLOWS_MAP`] and [`FLOW_STATS_MAP`], shared by all tables
/// (a call usually needs four entries: RTP and RTCP in each direction).
pub const MAX_FLOWS: u32 = 65536;

/// Name of the flow table map (`HashMap<FlowKey, FlowTarget>`).
pub const FLOWS_MAP: &str = "FLOWS";
/// Name of the per-flow counters map (`HashMap<FlowKey, FlowStats>`).
pub const FLOW_STATS_MAP: &str = "FLOW_STATS";
/// Name of the per-table counters map (`PerCpuArray<TableStats>`, [`MAX_TABLES`] entries).
pub const TABLE_STATS_MAP: &str = "TABLE_STATS";
/// Name of the per-table lease map (`Array<TableLease>`, [`MAX_TABLES`] entries).
pub const TABLE_LEASE_MAP: &str = "TABLE_LEASE";
/// Name of the AF_XDP socket map (`XskMap`, [`MAX_TABLES`] × [`XSK_SLOTS_PER_TABLE`]
/// entries): table `t` owns slots `t * XSK_SLOTS_PER_TABLE ..`.
pub const XSKS_MAP: &str = "XSKS";
/// Name of the map telling the dataplane which [`XSKS_MAP`] slots serve a
/// table's packets arriving on a device (`HashMap<XskSlotKey, XskSlots>`).
pub const XSK_SLOTS_MAP: &str = "XSK_SLOTS";
/// AF_XDP socket slots each table owns in [`XSKS_MAP`] (one per receive
/// queue of each of its devices; queues beyond stay with the stack).
pub const XSK_SLOTS_PER_TABLE: u32 = 64;
/// Capacity of [`XSK_SLOTS_MAP`] (devices × tables).
pub const MAX_XSK_DEVICES: u32 = 1024;
/// Size of an AF_XDP UMEM frame of the daemon's sockets.
pub const XSK_FRAME_SIZE: u32 = 2048;
/// The longest packet an AF_XDP socket in copy mode takes into an
/// [`XSK_FRAME_SIZE`] frame (the kernel keeps `XDP_PACKET_HEADROOM`, 256
/// bytes, in front of it); longer ones would be dropped, so the program
/// hands them to the stack.
pub const XSK_MAX_PACKET: u32 = XSK_FRAME_SIZE - 256;

/// Name of the XDP program in the object file.
pub const XDP_PROGRAM: &str = "rtpengine_xdp";

/// Address family value for IPv4 in [`FlowKey::family`] and [`FlowTarget::family`].
pub const FAMILY_V4: u8 = 4;
/// Address family value for IPv6 in [`FlowKey::family`] and [`FlowTarget::family`].
pub const FAMILY_V6: u8 = 6;

/// Key of [`FLOWS_MAP`] and [`FLOW_STATS_MAP`]: the **local** (destination)
/// address and port of a media socket, as found in the packet's IP/UDP headers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FlowKey {
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// Always zero (the kernel hashes raw key bytes).
    pub _pad: u8,
    /// UDP port, network byte order.
    pub port: [u8; 2],
    /// Address, network byte order; IPv4 in the first 4 bytes, the rest zero.
    pub addr: [u8; 16],
}

impl FlowKey {
    /// Builds a key from a socket address (IPv4-mapped IPv6 addresses stay IPv6,
    /// as they appear that way on the wire only when they really are IPv6).
    pub fn from_socket_addr(sa: core::net::SocketAddr) -> FlowKey {
        let ep = Endpoint::from_socket_addr(sa);
        FlowKey {
            family: family_of(&sa),
            _pad: 0,
            port: ep.port,
            addr: ep.addr,
        }
    }

    /// The key as a socket address (`None` for an unknown family).
    pub fn socket_addr(&self) -> Option<core::net::SocketAddr> {
        Endpoint {
            addr: self.addr,
            port: self.port,
            _pad: [0; 2],
        }
        .socket_addr(self.family)
    }
}

/// An address and port, network byte order, as used inside [`FlowTarget`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Endpoint {
    /// Address; IPv4 in the first 4 bytes, the rest zero.
    pub addr: [u8; 16],
    /// UDP port.
    pub port: [u8; 2],
    /// Always zero.
    pub _pad: [u8; 2],
}

impl Endpoint {
    /// Builds an endpoint from a socket address.
    pub fn from_socket_addr(sa: core::net::SocketAddr) -> Endpoint {
        let mut addr = [0u8; 16];
        match sa {
            core::net::SocketAddr::V4(v4) => addr[..4].copy_from_slice(&v4.ip().octets()),
            core::net::SocketAddr::V6(v6) => addr = v6.ip().octets(),
        }
        Endpoint {
            addr,
            port: sa.port().to_be_bytes(),
            _pad: [0; 2],
        }
    }

    /// The endpoint as a socket address of `family` (`None` for an unknown family).
    pub fn socket_addr(&self, family: u8) -> Option<core::net::SocketAddr> {
        let port = u16::from_be_bytes(self.port);
        match family {
            FAMILY_V4 => {
                let a = [self.addr[0], self.addr[1], self.addr[2], self.addr[3]];
                Some(core::net::SocketAddr::from((a, port)))
            }
            FAMILY_V6 => Some(core::net::SocketAddr::from((self.addr, port))),
            _ => None,
        }
    }
}

/// [`FAMILY_V4`] or [`FAMILY_V6`] for a socket address.
pub fn family_of(sa: &core::net::SocketAddr) -> u8 {
    if sa.is_ipv4() {
        FAMILY_V4
    } else {
        FAMILY_V6
    }
}

/// Value of [`FLOWS_MAP`]: what to do with a packet that hit a local endpoint.
///
/// The forwarded packet leaves from [`src`](Self::src) (the local socket the peer
/// knows) to [`dst`](Self::dst), both of [`family`](Self::family). When that
/// differs from the key's family the dataplane translates between IPv4 and
/// IPv6 (only with [`NEXT_HOP`](Self::NEXT_HOP)); [`expected_src`](Self::expected_src)
/// is of the key's family.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FlowTarget {
    /// Owning table (0..63): the daemon instance that installed the entry.
    pub table: u32,
    /// Policy bits: [`STRICT_SOURCE`](Self::STRICT_SOURCE),
    /// [`PASS_ON_MISMATCH`](Self::PASS_ON_MISMATCH), [`SET_TOS`](Self::SET_TOS),
    /// [`PUNT_RTCP`](Self::PUNT_RTCP), [`NEXT_HOP`](Self::NEXT_HOP).
    pub flags: u32,
    /// [`FAMILY_V4`] or [`FAMILY_V6`]: the family of [`src`](Self::src) and
    /// [`dst`](Self::dst) (the key's, unless the flow is translated).
    pub family: u8,
    /// TOS / IPv6 traffic class written when [`SET_TOS`](Self::SET_TOS) is set.
    pub tos: u8,
    /// TTL / hop limit of forwarded packets; 0 keeps the received value.
    pub ttl: u8,
    /// Always zero.
    pub _pad: u8,
    /// Source the packets are expected from (checked only with
    /// [`STRICT_SOURCE`](Self::STRICT_SOURCE) or
    /// [`PASS_ON_MISMATCH`](Self::PASS_ON_MISMATCH)).
    pub expected_src: Endpoint,
    /// Source of forwarded packets: the local socket the peer expects to see.
    pub src: Endpoint,
    /// Destination of forwarded packets: the peer.
    pub dst: Endpoint,
    /// Egress device of the resolved next hop (with [`NEXT_HOP`](Self::NEXT_HOP)).
    pub oif: u32,
    /// Source MAC (the egress device's) of the resolved next hop.
    pub smac: [u8; 6],
    /// Destination MAC (the neighbour's) of the resolved next hop.
    pub dmac: [u8; 6],
    /// MTU of the egress device: longer IP packets go to the stack.
    pub mtu: u16,
    /// Always zero.
    pub _pad2: [u8; 2],
}

impl FlowTarget {
    /// Drop packets whose source is not `expected_src` (counted as errors).
    pub const STRICT_SOURCE: u32 = 1 << 0;
    /// Hand packets whose source is not `expected_src` to userspace (media
    /// handover, endpoint learning). [`STRICT_SOURCE`](Self::STRICT_SOURCE) wins
    /// when both are set. With neither, the source is not checked.
    pub const PASS_ON_MISMATCH: u32 = 1 << 1;
    /// Rewrite the IPv4 TOS / IPv6 traffic class to [`tos`](Self::tos).
    pub const SET_TOS: u32 = 1 << 2;
    /// Hand RTCP to userspace: the key is an RTP port whose party does not
    /// multiplex, so RTCP arriving there goes to the peer's RTCP port, not
    /// to [`dst`](Self::dst).
    pub const PUNT_RTCP: u32 = 1 << 3;
    /// The daemon resolved the next hop ([`oif`](Self::oif),
    /// [`smac`](Self::smac), [`dmac`](Self::dmac), [`mtu`](Self::mtu)) over
    /// rtnetlink: send there without the kernel's FIB lookup, which answers
    /// only on devices with IP forwarding enabled. Without it the dataplane
    /// asks the FIB.
    pub const NEXT_HOP: u32 = 1 << 4;
    /// All defined flag bits.
    /// Hand the packet to the table's AF_XDP socket of the receiving
    /// device queue (see [`XSK_SLOTS_MAP`]) instead of forwarding it: a
    /// stream the daemon must see (SRTP it encrypts or decrypts, a
    /// bundle), relayed in userspace without the socket layer. STUN, DTLS
    /// and unusable packets still go to the stack; nothing but
    /// [`table`](Self::table) matters with this flag.
    pub const TO_XSK: u32 = 1 << 5;
    /// All defined flag bits.
    pub const ALL_FLAGS: u32 = Self::STRICT_SOURCE
        | Self::PASS_ON_MISMATCH
        | Self::SET_TOS
        | Self::PUNT_RTCP
        | Self::NEXT_HOP
        | Self::TO_XSK;
}

/// Key of [`XSK_SLOTS_MAP`]: a table and the device packets arrive on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct XskSlotKey {
    /// Table id.
    pub table: u32,
    /// Ingress device.
    pub ifindex: u32,
}

/// Value of [`XSK_SLOTS_MAP`]: the [`XSKS_MAP`] slots of a table's sockets
/// on a device, one per receive queue: queue `q` uses slot `base + q`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct XskSlots {
    /// Slot of queue 0.
    pub base: u32,
    /// Queues with a socket (0..queues).
    pub queues: u32,
}

/// Value of [`FLOW_STATS_MAP`]: counters of one flow, updated atomically by the
/// dataplane.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FlowStats {
    /// Packets forwarded in the kernel.
    pub packets: u64,
    /// UDP payload bytes forwarded in the kernel (headers excluded, like the
    /// userspace relay counts).
    pub bytes: u64,
    /// Packets dropped in the kernel: source mismatch under `STRICT_SOURCE`, or
    /// a blackhole/unreachable/prohibit route to the destination.
    pub errors: u64,
    /// `bpf_ktime_get_coarse_ns()` (CLOCK_MONOTONIC_COARSE) of the last forwarded
    /// packet; 0 = never. Compare with `clock_gettime(CLOCK_MONOTONIC)`.
    pub last_seen_ns: u64,
}

/// Value of [`TABLE_STATS_MAP`] (one per CPU; userspace sums them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TableStats {
    /// Packets forwarded in the kernel.
    pub packets: u64,
    /// UDP payload bytes forwarded in the kernel.
    pub bytes: u64,
    /// Packets dropped by policy (source mismatch, blackhole/unreachable routes).
    pub errors: u64,
    /// Packets of offloaded flows handed to userspace because the kernel could not
    /// forward them (no neighbour entry yet, forwarding disabled, MTU, …).
    pub fallback: u64,
    /// Packets of the table's flows handed to the stack because its lease had
    /// expired (the owning daemon stopped renewing it).
    pub expired: u64,
}

/// Value of [`TABLE_LEASE_MAP`]: until when a table's flows may be forwarded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TableLease {
    /// CLOCK_MONOTONIC nanoseconds after which the dataplane stops forwarding
    /// the table's flows (compared with `bpf_ktime_get_coarse_ns()`); 0 =
    /// never renewed (expired), `u64::MAX` = never expires.
    pub expires_ns: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)] and bytemuck::Pod (derive-checked: no padding, any bit pattern valid).
    unsafe impl aya::Pod for super::FlowKey {}
    // SAFETY: #[repr(C)] and bytemuck::Pod (derive-checked: no padding, any bit pattern valid).
    unsafe impl aya::Pod for super::Endpoint {}
    // SAFETY: #[repr(C)] and bytemuck::Pod (derive-checked: no padding, any bit pattern valid).
    unsafe impl aya::Pod for super::FlowTarget {}
    // SAFETY: #[repr(C)] and bytemuck::Pod (derive-checked: no padding, any bit pattern valid).
    unsafe impl aya::Pod for super::FlowStats {}
    // SAFETY: #[repr(C)] and bytemuck::Pod (derive-checked: no padding, any bit pattern valid).
    unsafe impl aya::Pod for super::TableStats {}
    // SAFETY: #[repr(C)] and bytemuck::Pod (derive-checked: no padding, any bit pattern valid).
    unsafe impl aya::Pod for super::TableLease {}
    // SAFETY: #[repr(C)] and bytemuck::Pod (derive-checked: no padding, any bit pattern valid).
    unsafe impl aya::Pod for super::XskSlotKey {}
    // SAFETY: #[repr(C)] and bytemuck::Pod (derive-checked: no padding, any bit pattern valid).
    unsafe impl aya::Pod for super::XskSlots {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_are_stable() {
        assert_eq!(size_of::<FlowKey>(), 20);
        assert_eq!(size_of::<Endpoint>(), 20);
        assert_eq!(size_of::<FlowTarget>(), 92);
        assert_eq!(size_of::<FlowStats>(), 32);
        assert_eq!(size_of::<TableStats>(), 40);
        assert_eq!(size_of::<TableLease>(), 8);
        assert_eq!(size_of::<XskSlotKey>(), 8);
        assert_eq!(size_of::<XskSlots>(), 8);
    }

    #[test]
    fn key_from_socket_addr() {
        let k = FlowKey::from_socket_addr("192.0.2.1:30000".parse().unwrap());
        assert_eq!(k.family, FAMILY_V4);
        assert_eq!(k.port, [0x75, 0x30]);
        assert_eq!(&k.addr[..4], &[192, 0, 2, 1]);
        assert!(k.addr[4..].iter().all(|&b| b == 0));
        assert_eq!(k.socket_addr(), Some("192.0.2.1:30000".parse().unwrap()));

        let k6 = FlowKey::from_socket_addr("[2001:db8::1]:5004".parse().unwrap());
        assert_eq!(k6.family, FAMILY_V6);
        assert_eq!(k6.addr[0..2], [0x20, 0x01]);
        assert_eq!(k6.addr[15], 1);
        assert_eq!(
            k6.socket_addr(),
            Some("[2001:db8::1]:5004".parse().unwrap())
        );
    }
}
