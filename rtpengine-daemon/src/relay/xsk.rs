//! The userspace relay over AF_XDP, for the streams the kernel cannot
//! forward (SRTP the daemon encrypts or decrypts, bundles, filtered media).
//!
//! Measured with the benchmark (BENCHMARKS.md, "SRTP through the daemon
//! over AF_XDP"), receiving and sending through AF_XDP instead of UDP
//! sockets takes microseconds off each SRTP packet: the socket layer, not
//! the crypto, is most of a userspace relay's cost.
//!
//! - **In.** Once such a stream's socket has relayed a packet, it is
//!   *steered*: a [`FlowTarget::TO_XSK`](rtpengine_common::FlowTarget::TO_XSK)
//!   flow makes the XDP program hand its packets (not STUN or DTLS, which
//!   keep going to the socket) to this table's AF_XDP socket of the queue
//!   they arrive on, one per receive queue of every device the dataplane is
//!   attached to. One thread, [`XskRelay`], owns them all: it takes what
//!   arrived, finds each packet's [`MediaSocket`] by its destination and
//!   relays it exactly as the socket's own packets are relayed
//!   (`MediaSocket::forward`: learning, SRTP, filters, counters).
//! - **Out.** What the relay sends becomes an Ethernet frame on the egress
//!   device's AF_XDP socket ([`Egress`]), to the next hop the dataplane
//!   resolved over rtnetlink (cached until the monitor sees a change). It
//!   goes out of the stream's socket instead (`sendto`, counted as a
//!   fallback) wherever a frame cannot: IPv6, no resolved next hop (local
//!   peers, a neighbour not resolved yet: the stack resolves it), a device
//!   without the dataplane, longer than the path's MTU, or a full ring.
//! - **Without XDP** (no kernel table, AF_XDP refused, `--no-af-xdp`)
//!   nothing is steered and the sockets relay everything, as before.
//!
//! Wake-ups are coalesced like the poller's (`--media-coalesce`): one pass
//! takes everything that arrived, then waits out the interval unless a
//! ring had a full batch.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rtpengine_common::csum;

use super::offload::{
    KernelCounters, NextHop, Offload, OffloadError, Refusals, Rule, XskBackend, XskDevice,
};
use super::socket::{Egress, SocketEgress};
use super::MediaSocket;
use crate::net::xsk::{Xsk, FRAME};
use crate::net::Epoll;

/// Frames taken from one socket per pass.
const BATCH: u32 = 64;

/// UMEM frames per socket for reception: 1 024 packets can wait for the
/// relay, 10 ms of 100 000 packets/s on one queue (a 1 ms pass needs 100;
/// the rest rides out the thread being scheduled late, as a socket's
/// receive buffer does; the benchmark lost packets with 256).
const RX_FRAMES: u32 = 1024;

/// UMEM frames per socket for transmission: frames leave within the pass
/// that queued them (copy mode sends them in `flush`), and a pass that
/// queues more sends the rest out of the sockets. With `RX_FRAMES`, 3 MiB
/// of locked memory per queue.
const TX_FRAMES: u32 = 512;

/// Next hops the thread keeps between generations, at most.
const MAX_CACHED_HOPS: usize = 65_536;

/// The epoll token of the stop eventfd.
const STOP: u64 = u64::MAX;

/// Ethernet + IPv4 + UDP headers.
const HEADERS: usize = 14 + 20 + 8;

/// What the AF_XDP path did since start.
#[derive(Debug, Default)]
pub struct XskStats {
    /// Packets received through AF_XDP.
    pub received: AtomicU64,
    /// Packets sent as AF_XDP frames.
    pub sent: AtomicU64,
    /// Packets relayed off AF_XDP that left through their socket instead.
    pub fallback: AtomicU64,
    /// Received packets no steered socket took (closed meanwhile) or that
    /// could not be parsed.
    pub dropped: AtomicU64,
    /// Packets the kernel dropped before the relay saw them (a full ring or
    /// no free frame: the relay fell behind), read from the sockets'
    /// `XDP_STATISTICS` once a second.
    pub overflow: AtomicU64,
}

/// How often the kernel's drop counters are read.
const STATISTICS_EVERY: Duration = Duration::from_secs(1);

/// The relay's view of the kernel with steering: what [`Offload`] does,
/// plus the steered sockets by local address (the AF_XDP thread's lookup).
pub struct Steering {
    offload: Arc<dyn Offload>,
    backend: Arc<dyn XskBackend>,
    sockets: RwLock<HashMap<SocketAddr, Weak<MediaSocket>>>,
    /// What the AF_XDP thread did.
    pub stats: XskStats,
}

impl Steering {
    /// The steered socket of each packet's destination, under one lock.
    fn lookup(&self, received: &[Received], out: &mut Vec<Option<Arc<MediaSocket>>>) {
        let map = self.sockets.read().unwrap_or_else(PoisonError::into_inner);
        out.extend(
            received
                .iter()
                .map(|r| map.get(&r.dst).and_then(Weak::upgrade)),
        );
    }
}

impl Offload for Steering {
    fn install(&self, local: SocketAddr, rule: &Rule) -> Result<(), OffloadError> {
        // A kernel rule replaces the steering flow of the same address.
        self.offload.install(local, rule)
    }

    fn remove(&self, local: SocketAddr) {
        self.sockets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&local);
        self.offload.remove(local);
    }

    fn counters(&self, local: SocketAddr) -> Option<KernelCounters> {
        self.offload.counters(local)
    }

    fn refusals(&self) -> Refusals {
        self.offload.refusals()
    }

    fn steer(&self, local: SocketAddr, sock: Weak<MediaSocket>) -> Result<(), OffloadError> {
        // Only IPv4 frames are built here; IPv6 streams stay on sockets,
        // and so do wildcard-bound ones (no packet is addressed to them).
        if !local.is_ipv4() || local.ip().is_unspecified() {
            return Err(OffloadError::Unsupported);
        }
        // Known before the first packet can arrive.
        self.sockets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(local, sock);
        let r = self.backend.steer_flow(local);
        if r.is_err() {
            self.sockets
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&local);
        }
        r
    }
}

/// One AF_XDP socket: a receive queue of a device.
struct Port {
    ifindex: u32,
    xsk: Xsk,
}

/// The AF_XDP relay thread and its sockets; dropping it stops the thread
/// and closes the sockets (their slots empty: the program hands the
/// steered streams to the stack, where the sockets relay them).
pub struct XskRelay {
    steering: Arc<Steering>,
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl XskRelay {
    /// Opens an AF_XDP socket on every receive queue of every device
    /// `backend` is attached to, registers them with it and starts the
    /// thread. `offload` is the same backend's rule side.
    pub fn start(
        offload: Arc<dyn Offload>,
        backend: Arc<dyn XskBackend>,
        coalesce: Duration,
    ) -> anyhow::Result<XskRelay> {
        let epoll = Epoll::new().context("epoll")?;
        let mut ports = Vec::new();
        let devices = backend.xsk_devices()?;
        if devices.is_empty() {
            anyhow::bail!("the XDP dataplane is attached to no Ethernet device");
        }
        for XskDevice {
            name: dev,
            ifindex,
            rx_queues,
        } in devices
        {
            let mut socks = Vec::new();
            // Queues past the table's free slots stay with the sockets:
            // not even opened (each costs locked memory).
            let queues = rx_queues.max(1).min(backend.xsk_slots_free());
            if queues < rx_queues {
                tracing::warn!(device = %dev, rx_queues, queues, "More receive queues than AF_XDP slots: the others' packets go to the sockets");
            }
            for q in 0..queues {
                match Xsk::bind(ifindex, q, RX_FRAMES, TX_FRAMES) {
                    Ok(x) => socks.push(x),
                    // Queues allocated but not in use refuse a bind.
                    Err(e) if q > 0 && e.kind() == io::ErrorKind::InvalidInput => break,
                    // EBUSY: another process (a daemon of another table)
                    // has AF_XDP sockets on this queue; one UMEM per queue.
                    Err(e) => {
                        return Err(e).with_context(|| format!("AF_XDP socket on {dev} queue {q}"))
                    }
                }
            }
            let fds: Vec<_> = socks.iter().map(Xsk::fd).collect();
            let bound = backend
                .bind_xsk(ifindex, &fds)
                .with_context(|| format!("registering the AF_XDP sockets of {dev}"))?;
            socks.truncate(bound);
            for xsk in socks {
                epoll.add(xsk.fd(), ports.len() as u64)?;
                ports.push(Port { ifindex, xsk });
            }
            tracing::info!(device = %dev, queues = bound, "AF_XDP relay sockets bound");
        }
        if ports.is_empty() {
            anyhow::bail!("no AF_XDP slot left for this table");
        }
        // SAFETY: plain syscall.
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if stop < 0 {
            return Err(io::Error::last_os_error()).context("eventfd");
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let stop = unsafe { OwnedFd::from_raw_fd(stop) };
        epoll.add(stop.as_raw_fd(), STOP)?;
        let steering = Arc::new(Steering {
            offload,
            backend: Arc::clone(&backend),
            sockets: RwLock::new(HashMap::new()),
            stats: XskStats::default(),
        });
        let s = Arc::clone(&steering);
        let thread = std::thread::Builder::new()
            .name("rtpe-af-xdp".into())
            .spawn(move || run(&epoll, ports, &s, backend.as_ref(), coalesce))?;
        Ok(XskRelay {
            steering,
            stop,
            thread: Some(thread),
        })
    }

    /// The offload backend for the media sockets: the kernel's, with
    /// steering.
    pub fn steering(&self) -> Arc<Steering> {
        Arc::clone(&self.steering)
    }
}

impl Drop for XskRelay {
    fn drop(&mut self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local to the eventfd.
        unsafe { libc::write(self.stop.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A received packet: where it came from and went to, and where its UDP
/// payload is in the pass's buffer.
struct Received {
    src: SocketAddr,
    dst: SocketAddr,
    at: usize,
    len: usize,
}

/// The UDP payload of an IPv4 frame the program redirected, with its
/// source and destination; `None` for anything else.
fn parse(f: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    if f.len() < HEADERS || f[12..14] != [0x08, 0x00] || f[14] != 0x45 || f[23] != 17 {
        return None;
    }
    let addr = |at: usize| Ipv4Addr::new(f[at], f[at + 1], f[at + 2], f[at + 3]);
    let port = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
    let udp_len = usize::from(port(38));
    let payload = f.get(HEADERS..34 + udp_len.max(8))?;
    let src = SocketAddr::V4(SocketAddrV4::new(addr(26), port(34)));
    let dst = SocketAddr::V4(SocketAddrV4::new(addr(30), port(36)));
    Some((src, dst, payload))
}

/// Writes an IPv4/UDP frame carrying `payload` from `src` to `dst` through
/// `hop` into `frame`; returns its length (0 if it does not fit).
fn build(
    frame: &mut [u8],
    hop: &NextHop,
    (src, dst): (SocketAddrV4, SocketAddrV4),
    tos: u8,
    payload: &[u8],
) -> usize {
    let len = HEADERS + payload.len();
    if len > frame.len() {
        return 0;
    }
    let f = &mut frame[..len];
    f[0..6].copy_from_slice(&hop.dmac);
    f[6..12].copy_from_slice(&hop.smac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (len - 14) as u16;
    let udp_len = (len - 34) as u16;
    // Version 4, 20-byte header, don't fragment (as the stack sends UDP
    // with path MTU discovery on), TTL 64, UDP.
    f[14] = 0x45;
    f[15] = tos;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[18..22].copy_from_slice(&[0, 0, 0x40, 0]);
    f[22] = 64;
    f[23] = 17;
    f[24..26].copy_from_slice(&[0, 0]);
    f[26..30].copy_from_slice(&src.ip().octets());
    f[30..34].copy_from_slice(&dst.ip().octets());
    let check = csum::ipv4_header_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&check);
    f[34..36].copy_from_slice(&src.port().to_be_bytes());
    f[36..38].copy_from_slice(&dst.port().to_be_bytes());
    f[38..40].copy_from_slice(&udp_len.to_be_bytes());
    f[40..42].copy_from_slice(&[0, 0]);
    f[HEADERS..].copy_from_slice(payload);
    let check = csum::udp4_checksum(src.ip().octets(), dst.ip().octets(), &f[34..]);
    f[40..42].copy_from_slice(&check);
    len
}

/// Sends what the relay hands over as AF_XDP frames where it can (see the
/// module docs), else out of the stream's socket.
struct XskEgress<'a> {
    ports: &'a mut [Port],
    backend: &'a dyn XskBackend,
    /// Next hops by (source, destination), valid for `generation`.
    hops: &'a mut HashMap<(Ipv4Addr, Ipv4Addr), Option<NextHop>>,
    stats: &'a XskStats,
}

impl XskEgress<'_> {
    fn hop(&mut self, src: Ipv4Addr, dst: Ipv4Addr) -> Option<NextHop> {
        if let Some(hop) = self.hops.get(&(src, dst)) {
            return *hop;
        }
        // Not cached when the query failed: the next packet asks again.
        let hop = self
            .backend
            .next_hop(IpAddr::V4(src), IpAddr::V4(dst))
            .ok()?;
        // Bounded: the backend forgets its pairs (and moves the generation)
        // long before, unless it resolves none (no rtnetlink).
        if self.hops.len() >= MAX_CACHED_HOPS {
            self.hops.clear();
        }
        self.hops.insert((src, dst), hop);
        hop
    }

    /// Queues the frame; false if it must go out of the socket.
    fn frame(&mut self, from: SocketAddr, pkt: &[u8], dst: SocketAddr, tos: Option<u8>) -> bool {
        let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (from, dst) else {
            return false;
        };
        if src.ip().is_unspecified() {
            return false;
        }
        let Some(hop) = self.hop(*src.ip(), *dst.ip()) else {
            return false;
        };
        if 28 + pkt.len() > usize::from(hop.mtu) || HEADERS + pkt.len() > FRAME {
            return false;
        }
        let Some(port) = self.ports.iter_mut().find(|p| p.ifindex == hop.ifindex) else {
            return false;
        };
        port.xsk
            .queue_with(|frame| build(frame, &hop, (src, dst), tos.unwrap_or(0), pkt))
    }
}

impl Egress for XskEgress<'_> {
    fn send(
        &mut self,
        from: &MediaSocket,
        pkt: &[u8],
        dst: SocketAddr,
        tos: Option<u8>,
    ) -> io::Result<()> {
        if self.frame(from.local, pkt, dst, tos) {
            self.stats.sent.fetch_add(1, Relaxed);
            return Ok(());
        }
        self.stats.fallback.fetch_add(1, Relaxed);
        SocketEgress.send(from, pkt, dst, tos)
    }
}

/// The AF_XDP thread: until the stop eventfd fires.
fn run(
    epoll: &Epoll,
    mut ports: Vec<Port>,
    steering: &Steering,
    backend: &dyn XskBackend,
    coalesce: Duration,
) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; ports.len() + 1];
    let mut buf: Vec<u8> = Vec::with_capacity(BATCH as usize * FRAME);
    let mut received: Vec<Received> = Vec::with_capacity(BATCH as usize);
    let mut socks: Vec<Option<Arc<MediaSocket>>> = Vec::with_capacity(BATCH as usize);
    let mut hops = HashMap::new();
    let mut generation = backend.hop_generation();
    let mut again = false;
    let mut statistics_at = Instant::now();
    loop {
        let n = match epoll.wait(&mut events, if again { 0 } else { -1 }) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "AF_XDP relay stopped");
                return;
            }
        };
        if events[..n].iter().any(|e| e.u64 == STOP) {
            return;
        }
        let start = Instant::now();
        let g = backend.hop_generation();
        if g != generation {
            hops.clear();
            generation = g;
        }
        again = false;
        buf.clear();
        received.clear();
        for p in &mut ports {
            let n = p.xsk.receive(BATCH, |f| match parse(f) {
                Some((src, dst, payload)) => {
                    received.push(Received {
                        src,
                        dst,
                        at: buf.len(),
                        len: payload.len(),
                    });
                    buf.extend_from_slice(payload);
                }
                None => {
                    steering.stats.dropped.fetch_add(1, Relaxed);
                }
            });
            again |= n == BATCH;
        }
        steering
            .stats
            .received
            .fetch_add(received.len() as u64, Relaxed);
        socks.clear();
        steering.lookup(&received, &mut socks);
        let now = Instant::now();
        let mut tx = XskEgress {
            ports: &mut ports,
            backend,
            hops: &mut hops,
            stats: &steering.stats,
        };
        for (r, sock) in received.iter().zip(socks.drain(..)) {
            let Some(sock) = sock else {
                steering.stats.dropped.fetch_add(1, Relaxed);
                continue;
            };
            let pkt = &buf[r.at..r.at + r.len];
            // A bug in one stream's handling must not stop the thread that
            // serves all the steered ones.
            if catch_unwind(AssertUnwindSafe(|| sock.forward(pkt, r.src, now, &mut tx))).is_err() {
                tracing::error!(local = %sock.local, "Media socket handler panicked (AF_XDP)");
            }
        }
        for p in &mut ports {
            p.xsk.flush();
        }
        if statistics_at.elapsed() >= STATISTICS_EVERY {
            statistics_at = Instant::now();
            let overflow: u64 = ports
                .iter()
                .filter_map(|p| p.xsk.statistics().ok())
                .map(|s| s.rx_dropped + s.rx_ring_full)
                .sum();
            steering.stats.overflow.store(overflow, Relaxed);
        }
        if !again {
            if let Some(rest) = coalesce.checked_sub(start.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_frame_parses_back_with_valid_checksums() {
        let hop = NextHop {
            ifindex: 3,
            smac: [2, 0, 0, 0, 0, 1],
            dmac: [2, 0, 0, 0, 0, 2],
            mtu: 1500,
        };
        let src: SocketAddrV4 = "198.18.0.1:30000".parse().unwrap();
        let dst: SocketAddrV4 = "198.18.1.2:5004".parse().unwrap();
        let payload: Vec<u8> = (0..171u8).collect();
        let mut frame = vec![0u8; FRAME];
        let len = build(&mut frame, &hop, (src, dst), 0xb8, &payload);
        assert_eq!(len, HEADERS + payload.len());
        let f = &frame[..len];
        assert_eq!(f[0..6], hop.dmac);
        assert_eq!(f[6..12], hop.smac);
        assert_eq!(f[15], 0xb8);
        // A valid IPv4 header or UDP datagram (with its pseudo-header)
        // sums to all ones, checksum included.
        assert_eq!(csum::fold(csum::add_slice(0, &f[14..34])), 0xffff);
        let udp_len = (len - 34) as u16;
        let pseudo = [&f[26..34], &[0, 17], &udp_len.to_be_bytes()[..]].concat();
        let sum = csum::add_slice(csum::add_slice(0, &pseudo), &f[34..]);
        assert_eq!(csum::fold(sum), 0xffff);
        let (s, d, p) = parse(f).unwrap();
        assert_eq!((s, d), (SocketAddr::V4(src), SocketAddr::V4(dst)));
        assert_eq!(p, &payload[..]);
        // Too long for the frame: nothing written.
        assert_eq!(build(&mut frame[..100], &hop, (src, dst), 0, &payload), 0);
    }

    #[test]
    fn parse_refuses_what_is_not_ipv4_udp() {
        let hop = NextHop {
            ifindex: 1,
            smac: [0; 6],
            dmac: [0; 6],
            mtu: 1500,
        };
        let mut frame = vec![0u8; 200];
        let len = build(
            &mut frame,
            &hop,
            (
                "192.0.2.1:1".parse().unwrap(),
                "192.0.2.2:2".parse().unwrap(),
            ),
            0,
            b"x",
        );
        let good = frame[..len].to_vec();
        assert!(parse(&good).is_some());
        for (at, v) in [(12, 0x86), (14, 0x46), (23, 6)] {
            let mut f = good.clone();
            f[at] = v;
            assert!(parse(&f).is_none(), "byte {at} = {v:#x}");
        }
        // A UDP length past the frame, a truncated frame.
        let mut f = good.clone();
        f[38..40].copy_from_slice(&1000u16.to_be_bytes());
        assert!(parse(&f).is_none());
        assert!(parse(&good[..HEADERS - 1]).is_none());
    }
}
