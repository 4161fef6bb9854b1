//! The seam between the userspace relay and in-kernel forwarding.
//!
//! The relay decides *when* a socket's traffic may bypass it (peer endpoint
//! confirmed, one destination) and *what* the kernel
//! must do with it ([`Rule`]); an [`Offload`] implementation (the eBPF
//! dataplane in [`crate::kernel`]) does it. Offloaded packets never reach the
//! relay, so the kernel's counters are merged back once a second.

use std::net::SocketAddr;

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
}
