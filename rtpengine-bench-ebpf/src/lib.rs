//! Types and names the benchmark's floor programs (`src/main.rs`) share with
//! the benchmark (`rtpengine-bench`), which fills their maps. Kept out of
//! `rtpengine-common` and the dataplane's object so a running daemon neither
//! loads nor allocates them.
#![no_std]

/// The XDP floor forwarder.
pub const FLOOR_PROGRAM: &str = "rtpengine_floor";
/// The AF_XDP floor's redirect program.
pub const XSK_FLOOR_PROGRAM: &str = "rtpengine_xsk_floor";
/// Floor rules (`HashMap<FloorKey, FloorTarget>`).
pub const FLOOR_MAP: &str = "FLOOR_FLOWS";
/// AF_XDP sockets of the XSK floor (`XskMap`).
pub const XSK_MAP: &str = "XSK_FLOOR";
/// First `XSK_FLOOR` slot of each device (`HashMap<u32, u32>`, ifindex → slot).
pub const XSK_BASE_MAP: &str = "XSK_BASE";
/// Capacity of [`FLOOR_MAP`].
pub const MAX_FLOOR_FLOWS: u32 = 65536;

/// Key of the floor's map: destination address and port as they appear in
/// the packet (network byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FloorKey {
    /// IPv4 destination address.
    pub addr: [u8; 4],
    /// UDP destination port.
    pub port: [u8; 2],
    /// Zero.
    pub pad: [u8; 2],
}

/// Value of the floor's map: new source and destination (network byte
/// order), egress device and MACs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FloorTarget {
    /// New IPv4 source address.
    pub src_addr: [u8; 4],
    /// New IPv4 destination address.
    pub dst_addr: [u8; 4],
    /// New UDP source port.
    pub src_port: [u8; 2],
    /// New UDP destination port.
    pub dst_port: [u8; 2],
    /// Egress device.
    pub ifindex: u32,
    /// Source MAC.
    pub smac: [u8; 6],
    /// Destination MAC.
    pub dmac: [u8; 6],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both are #[repr(C)], Copy, and bytemuck::Pod (derive-checked:
    // no padding, every bit pattern valid).
    unsafe impl aya::Pod for super::FloorKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FloorTarget {}
}
