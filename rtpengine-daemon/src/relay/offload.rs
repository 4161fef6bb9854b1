//! The seam between the userspace relay and in-kernel forwarding.
//!
//! The relay decides *when* a socket's traffic may bypass it (peer endpoint
//! confirmed, one destination) and *what* the kernel
//! must do with it ([`Rule`]); an [`Offload`] implementation (the eBPF
//! dataplane in [`crate::kernel`]) does it. Offloaded packets never reach the
//! relay, so the kernel's counters are merged back once a second.
//!
//! Streams the kernel cannot forward (SRTP the daemon encrypts or decrypts,
//! bundles) can still skip the socket layer: an [`XskBackend`] steers their
//! packets to AF_XDP sockets and resolves next hops for the frames the
//! relay sends back out (`relay/xsk.rs`).

use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::Weak;

use super::MediaSocket;

/// What the kernel does with packets arriving at one local socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The party's confirmed address.
    pub expected_src: SocketAddr,
    /// Local socket the packet leaves from (the one advertised to the peer).
    pub src: SocketAddr,
    /// The peer's address.
    pub dst: SocketAddr,
    /// Drop packets from any other source (`strict source`).
    pub strict: bool,
    /// Hand packets from any other source to userspace (`media handover`).
    pub punt_mismatch: bool,
    /// TOS / traffic class to set.
    pub tos: Option<u8>,
    /// Hand RTCP to userspace (an RTP port whose party does not mux: RTCP
    /// arriving there goes to the peer's RTCP port).
    pub punt_rtcp: bool,
}

/// Kernel counters of one offloaded socket since it was installed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Packets forwarded.
    pub packets: u64,
    /// Bytes forwarded.
    pub bytes: u64,
    /// Packets dropped (strict source).
    pub errors: u64,
    /// Milliseconds ([`crate::clock::now_ms`] scale) of the last packet, 0 = never.
    pub last_ms: u64,
}

/// Why the kernel refused a rule; the stream stays in userspace.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    /// The flow table has no room.
    #[error("kernel flow table full")]
    Full,
    /// Anything else (the map or the program refused the entry).
    #[error(transparent)]
    Rejected(#[from] anyhow::Error),
    /// The backend cannot do this (steering without AF_XDP, IPv6).
    #[error("not supported by this dataplane")]
    Unsupported,
}

/// Streams the kernel refused since start (they stayed in userspace).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals {
    /// Refused because the flow table was full.
    pub full: u64,
    /// Refused for any other reason.
    pub rejected: u64,
}

impl Refusals {
    /// Both reasons together.
    pub fn total(&self) -> u64 {
        self.full + self.rejected
    }
}

/// An in-kernel forwarding backend.
pub trait Offload: Send + Sync {
    /// Installs or replaces the rule for `local`. A refusal is counted and
    /// logged by the backend (once per episode, not per stream).
    fn install(&self, local: SocketAddr, rule: &Rule) -> Result<(), OffloadError>;
    /// Removes the rule for `local` (absent is fine).
    fn remove(&self, local: SocketAddr);
    /// Counters of `local` since its rule was (re)installed.
    fn counters(&self, local: SocketAddr) -> Option<KernelCounters>;
    /// Streams refused since start.
    fn refusals(&self) -> Refusals;
    /// Relays what arrives for `local` (the socket `sock`) over AF_XDP
    /// from now on (see `relay/xsk.rs`); removed with
    /// [`remove`](Self::remove) or replaced by [`install`](Self::install).
    fn steer(&self, local: SocketAddr, sock: Weak<MediaSocket>) -> Result<(), OffloadError> {
        let _ = (local, sock);
        Err(OffloadError::Unsupported)
    }
}

/// Where a frame the relay builds itself leaves: the egress device, its MAC
/// and MTU, and the neighbour's MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Egress device.
    pub ifindex: u32,
    /// The device's MAC.
    pub smac: [u8; 6],
    /// The neighbour's MAC.
    pub dmac: [u8; 6],
    /// The largest IP packet the path takes.
    pub mtu: u16,
}

/// A device the dataplane is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XskDevice {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    /// Receive queues it has (some may not be in use).
    pub rx_queues: u32,
}

/// What the relay's AF_XDP path needs from the kernel dataplane.
pub trait XskBackend: Send + Sync {
    /// The Ethernet devices the dataplane is attached to.
    fn xsk_devices(&self) -> anyhow::Result<Vec<XskDevice>>;
    /// Makes `fds` (one AF_XDP socket per receive queue of `ifindex`, in
    /// queue order) the ones this table's steered packets arriving there
    /// go to, as many as the table has slots left for; returns how many
    /// (the queues of the others stay with the stack).
    fn bind_xsk(&self, ifindex: u32, fds: &[RawFd]) -> anyhow::Result<usize>;
    /// Steers what arrives for `local` to the AF_XDP sockets (replacing any
    /// rule for it); removed with [`Offload::remove`].
    fn steer_flow(&self, local: SocketAddr) -> Result<(), OffloadError>;
    /// The next hop from local address `src` to `dst`, if one is resolved
    /// through a device of the dataplane (an error: the answer is not
    /// known now, ask again).
    fn next_hop(&self, src: IpAddr, dst: IpAddr) -> std::io::Result<Option<NextHop>>;
    /// AF_XDP sockets this table can still register ([`bind_xsk`](Self::bind_xsk)).
    fn xsk_slots_free(&self) -> u32;
    /// Changes whenever next hops may have changed (routes, links,
    /// neighbours): cached ones are stale.
    fn hop_generation(&self) -> u64;
}
