//! Userspace RTP/RTCP relay.
//!
//! Each local media port is a [`MediaSocket`] with its own receive task. A
//! packet from party X arrives on the socket advertised to X; after the
//! endpoint check ([`learning`]) it leaves through the socket advertised to
//! the other party Y (symmetric RTP: Y sees the port it was given) towards Y's
//! learned or announced address. Sockets know their peer only weakly, so
//! dropping a call's streams closes everything.
//!
//! The receive loop waits for readiness and then drains the socket with
//! non-blocking calls into a per-thread buffer: no per-socket buffer (tens of
//! thousands of sockets), no await per packet, and a full send buffer drops
//! the packet (counted as an error) instead of stalling the stream.

pub mod learning;

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::clock;
use crate::interfaces::PortLease;
use learning::{Endpoint, Policy, Verdict};

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
    fn count(&self, len: usize, now_ms: u64) {
        self.packets.fetch_add(1, Relaxed);
        self.bytes.fetch_add(len as u64, Relaxed);
        self.last_ms.store(now_ms, Relaxed);
    }

    fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }
}

/// Mutable per-socket state, changed by signalling and by learning.
#[derive(Debug)]
pub struct SocketState {
    /// The party this socket talks to.
    pub endpoint: Endpoint,
    /// Learning and source policy.
    pub policy: Policy,
    /// The party multiplexes RTCP onto this (RTP) socket.
    pub muxed: bool,
    /// The other party's RTP socket.
    pub peer_rtp: Weak<MediaSocket>,
    /// The other party's socket for RTCP (its RTP socket when it muxes).
    pub peer_rtcp: Weak<MediaSocket>,
}

/// One local media port.
pub struct MediaSocket {
    /// Local address and port.
    pub local: SocketAddr,
    /// Whether this is the RTCP port of a pair.
    pub is_rtcp: bool,
    sock: UdpSocket,
    state: Mutex<SocketState>,
    /// Packets received from the party (accepted ones, and rejected as errors).
    pub stats_in: Counters,
    /// Packets sent to the party.
    pub stats_out: Counters,
    // Declared after `sock` so the port returns to the pool after closing.
    _lease: Arc<PortLease>,
}

impl std::fmt::Debug for MediaSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSocket")
            .field("local", &self.local)
            .finish()
    }
}

/// Aborts a task when dropped.
pub struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl MediaSocket {
    /// Wraps a bound socket (must be called inside the runtime).
    pub fn new(
        sock: StdUdpSocket,
        is_rtcp: bool,
        lease: Arc<PortLease>,
        state: SocketState,
    ) -> io::Result<Arc<MediaSocket>> {
        let local = sock.local_addr()?;
        Ok(Arc::new(MediaSocket {
            local,
            is_rtcp,
            sock: UdpSocket::from_std(sock)?,
            state: Mutex::new(state),
            stats_in: Counters::default(),
            stats_out: Counters::default(),
            _lease: lease,
        }))
    }

    /// Locks the state.
    pub fn state(&self) -> MutexGuard<'_, SocketState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the IPv4 TOS / IPv6 traffic class of packets sent from here.
    pub fn set_tos(&self, tos: u8) -> io::Result<()> {
        crate::net::set_tos(self.sock.as_raw_fd(), self.local.is_ipv6(), tos)
    }

    /// Starts the receive loop; it stops when the guard is dropped.
    pub fn spawn(self: &Arc<Self>) -> TaskGuard {
        TaskGuard(tokio::spawn(Arc::clone(self).run()))
    }

    async fn run(self: Arc<Self>) {
        thread_local! {
            static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_PACKET]);
        }
        loop {
            if self.sock.readable().await.is_err() {
                return;
            }
            BUF.with_borrow_mut(|buf| loop {
                match self.sock.try_recv_from(buf) {
                    Ok((n, src)) => self.forward(&buf[..n], src),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // ICMP errors from earlier sends surface here; keep going.
                    Err(_) => {}
                }
            });
        }
    }

    /// Handles one packet from `src`.
    fn forward(&self, pkt: &[u8], src: SocketAddr) {
        let now = Instant::now();
        let now_ms = clock::now_ms();
        let target = {
            let mut st = self.state();
            let st = &mut *st;
            if st.endpoint.check(src, &st.policy, now) == Verdict::Reject {
                self.stats_in.error();
                return;
            }
            let rtcp = self.is_rtcp || (st.muxed && is_rtcp(pkt));
            if rtcp {
                st.peer_rtcp.upgrade()
            } else {
                st.peer_rtp.upgrade()
            }
        };
        if pkt.len() >= MAX_PACKET {
            self.stats_in.error();
            return;
        }
        self.stats_in.count(pkt.len(), now_ms);
        let Some(target) = target else { return };
        let dst = {
            let st = target.state();
            st.endpoint.destination(&st.policy)
        };
        let Some(dst) = dst else { return };
        match target.sock.try_send_to(pkt, dst) {
            Ok(_) => target.stats_out.count(pkt.len(), now_ms),
            Err(_) => target.stats_out.error(),
        }
    }
}

/// RTCP packet types 192–223 (RFC 5761 §4): how RTCP is told apart from RTP
/// on a multiplexed port.
pub fn is_rtcp(pkt: &[u8]) -> bool {
    pkt.len() >= 8 && pkt[0] >> 6 == 2 && (192..=223).contains(&pkt[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtcp_classification() {
        assert!(is_rtcp(&[0x80, 200, 0, 6, 0, 0, 0, 1]));
        assert!(is_rtcp(&[0x81, 201, 0, 1, 0, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0, 0, 1, 0, 0, 0, 1]), "RTP PT 0");
        assert!(
            !is_rtcp(&[0x80, 0x80 | 8, 0, 1, 0, 0, 0, 1]),
            "RTP PT 8 with marker"
        );
        assert!(!is_rtcp(&[0x80, 200]), "too short");
        assert!(!is_rtcp(&[0x00, 200, 0, 6, 0, 0, 0, 1]), "not version 2");
    }
}
