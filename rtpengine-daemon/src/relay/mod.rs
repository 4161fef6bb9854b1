//! Userspace RTP/RTCP relay.
//!
//! Each local media port is a [`MediaSocket`]. A packet from party X arrives
//! on the socket advertised to X; after the endpoint check ([`learning`]) it
//! leaves through the socket advertised to the other party Y (symmetric RTP:
//! Y sees the port it was given) towards Y's learned or announced address.
//! Sockets know their peer only weakly, so dropping a call's streams closes
//! everything.
//!
//! Streams the kernel cannot forward skip the socket layer where the XDP
//! dataplane runs: [`xsk`] relays them over AF_XDP.
//!
//! Sockets are served by the [`poller`]'s threads, which coalesce wake-ups
//! (the dominant cost at RTP packet rates) and drain each ready socket with
//! one `recvmmsg` into a per-thread buffer: no per-socket buffer
//! (tens of thousands of sockets), and a full send buffer drops the packet
//! (counted as an error) instead of stalling the stream.

pub mod bundle;
pub mod filter;
pub mod ice;
pub mod ice_agent;
pub mod learning;
pub mod offload;
pub mod poller;
mod socket;
pub mod srtp;
pub mod ssrc;
pub mod webrtc;
pub mod xsk;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use socket::{MediaSocket, RtpSeen, SocketState, StreamInfo};

/// Largest datagram relayed; longer ones are truncated by the kernel and
/// counted as errors.
pub const MAX_PACKET: usize = 9000;

/// Packet counters of one direction of one socket.
#[derive(Debug, Default)]
pub struct Counters {
    /// Packets.
    pub packets: AtomicU64,
    /// Bytes (UDP payload).
    pub bytes: AtomicU64,
    /// Dropped packets.
    pub errors: AtomicU64,
    /// Monotonic milliseconds ([`clock::now_ms`]) of the last packet, 0 = never.
    pub last_ms: AtomicU64,
}

impl Counters {
    pub(crate) fn count(&self, len: usize, now_ms: u64) {
        self.packets.fetch_add(1, Relaxed);
        self.bytes.fetch_add(len as u64, Relaxed);
        self.last_ms.store(now_ms, Relaxed);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }
}

/// A snapshot of packet counters: packets, bytes, errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Errors.
    pub errors: u64,
}

impl Totals {
    /// Adds what `c` counted so far.
    pub fn add(&mut self, c: &Counters) {
        self.packets += c.packets.load(Relaxed);
        self.bytes += c.bytes.load(Relaxed);
        self.errors += c.errors.load(Relaxed);
    }

    /// The sum of both, field by field.
    pub fn plus(self, o: Totals) -> Totals {
        Totals {
            packets: self.packets + o.packets,
            bytes: self.bytes + o.bytes,
            errors: self.errors + o.errors,
        }
    }

    /// What came since `earlier`, field by field (0 where a counter went
    /// back).
    pub fn since(self, earlier: Totals) -> Totals {
        Totals {
            packets: self.packets.saturating_sub(earlier.packets),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            errors: self.errors.saturating_sub(earlier.errors),
        }
    }

    /// What `c` counted so far.
    pub fn of(c: &Counters) -> Totals {
        let mut t = Totals::default();
        t.add(c);
        t
    }
}

/// RTCP packet types 192–223 (RFC 5761 §4): how RTCP is told apart from RTP
/// on a multiplexed port (the same test the kernel program makes).
pub use rtpengine_common::classify::is_rtcp_packet as is_rtcp;
