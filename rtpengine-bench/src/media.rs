//! The RTP engine: paced or flat-out G.711 streams in both directions of every
//! call, sent with `sendmmsg` and received with `recvmmsg` on one thread (so
//! it costs one core at most), with per-stream sequence checks.
//!
//! Packet: 12-byte RTP header (PT 0, seq, timestamp, SSRC = stream id) and 160
//! bytes of payload, 172 bytes of UDP payload in all. The payload starts with a
//! magic, a 32-bit sequence number, the path (proxy/direct) and the interval id,
//! so late packets of an earlier interval are not counted in the next one and
//! the expected source can be checked per path.
//!
//! Sockets are dual-stack (bound on `[::]`): IPv4 peers are written as
//! IPv4-mapped IPv6 addresses, so one code path (`sockaddr_in6`) serves both
//! families and a call may bridge an IPv4 caller to an IPv6 callee.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::cpu::{Meter, Sample};
use super::topo::in_ns;
use rtpengine::crypto::srtp::Context;

/// UDP payload size of every packet (12-byte RTP header + 20 ms of G.711).
pub const PACKET: usize = 172;
/// SSRC of stream 0; stream `i` has `SSRC_BASE + i`.
pub const SSRC_BASE: u32 = 0x5000_0000;
const MAGIC: &[u8; 4] = b"RBN1";
const BATCH: usize = 64;
const RXBUF: usize = 2048;

/// Which way packets travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Through the daemon's ports in the proxy namespace.
    Proxy,
    /// Straight to the other side over the direct veth pair.
    Direct,
}

impl Path {
    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Path::Proxy => "proxy",
            Path::Direct => "direct",
        }
    }
}

/// One direction of one call.
#[derive(Debug)]
pub struct Stream {
    /// Index of the sending socket.
    pub sock: usize,
    /// Destination through the proxy (IPv4 as mapped IPv6, see [`mapped`]).
    pub via_proxy: SocketAddrV6,
    /// Destination on the direct path.
    pub via_direct: SocketAddrV6,
    /// Source the receiver must see on the proxy path.
    pub src_proxy: SocketAddrV6,
    /// Source the receiver must see on the direct path.
    pub src_direct: SocketAddrV6,
    seq: u32,
    rx_next: u32,
    /// Packets sent through the proxy (all intervals).
    pub tx_proxy: u64,
    /// Packets received through the proxy (all intervals).
    pub rx_proxy: u64,
    /// `--srtp`: protects what this stream sends (the callee's key).
    pub srtp_tx: Option<Box<Context>>,
    /// `--srtp`: unprotects what arrives of this stream as SRTP (the
    /// daemon's key towards the callee, or the callee's own on the direct
    /// path).
    pub srtp_rx: Option<Box<Context>>,
}

impl Stream {
    /// A stream sent from socket `sock`.
    pub fn new(
        sock: usize,
        via_proxy: SocketAddr,
        via_direct: SocketAddr,
        src_proxy: SocketAddr,
        src_direct: SocketAddr,
    ) -> Stream {
        Stream {
            sock,
            via_proxy: mapped(via_proxy),
            via_direct: mapped(via_direct),
            src_proxy: mapped(src_proxy),
            src_direct: mapped(src_direct),
            seq: 0,
            rx_next: 0,
            tx_proxy: 0,
            rx_proxy: 0,
            srtp_tx: None,
            srtp_rx: None,
        }
    }
}

/// What one interval measured.
#[derive(Clone, Debug, Default)]
pub struct Interval {
    /// Path used.
    pub path: &'static str,
    /// Target rate, packets/s (0 = flat out).
    pub target_pps: f64,
    /// Sending time, s.
    pub secs: f64,
    /// Packets sent.
    pub tx: u64,
    /// Packets received (this interval's).
    pub rx: u64,
    /// Packets of an earlier interval that arrived during this one.
    pub late: u64,
    /// Received from an unexpected source address.
    pub wrong_src: u64,
    /// Received with a sequence number not above the stream's last.
    pub out_of_order: u64,
    /// Received but malformed (size, magic, unknown SSRC).
    pub malformed: u64,
    /// Packets the generator could not send (full socket buffer).
    pub send_fail: u64,
    /// CPU used during the interval.
    pub cpu: Sample,
    /// Streams (of those that sent) that received nothing.
    pub silent_streams: usize,
}

impl Interval {
    /// Loss fraction (0..1).
    pub fn loss(&self) -> f64 {
        if self.tx == 0 {
            return 0.0;
        }
        self.tx.saturating_sub(self.rx) as f64 / self.tx as f64
    }

    /// Achieved receive rate, packets/s.
    pub fn rx_pps(&self) -> f64 {
        self.rx as f64 / self.secs.max(1e-9)
    }

    /// CPU ns (generator + daemon + ksoftirqd) per received packet.
    pub fn ns_per_packet(&self) -> f64 {
        self.cpu.sum() as f64 / self.rx.max(1) as f64
    }
}

/// Sockets, streams and buffers.
pub struct Media {
    socks: Vec<UdpSocket>,
    /// Streams, ordered by sending socket (so batches share a socket).
    pub streams: Vec<Stream>,
    epoll: OwnedFd,
    cursor: usize,
    interval_id: u8,
    send_bufs: Vec<[u8; PACKET]>,
    /// Protected copies of `send_bufs` (`--srtp`), reused.
    send_srtp: Vec<Vec<u8>>,
    /// An unprotected copy of a received SRTP packet, reused.
    recv_plain: Vec<u8>,
    send_addrs: Vec<libc::sockaddr_in6>,
    send_iovs: Vec<libc::iovec>,
    send_hdrs: Vec<libc::mmsghdr>,
    send_idx: Vec<usize>,
    recv_bufs: Vec<[u8; RXBUF]>,
    recv_addrs: Vec<libc::sockaddr_in6>,
    recv_iovs: Vec<libc::iovec>,
    recv_hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in the mmsghdr/iovec scratch arrays are rewritten
// before every syscall and never dereferenced by Rust code.
unsafe impl Send for Media {}

/// Binds `ports` on the dual-stack wildcard address inside namespace `ns`,
/// non-blocking, with large socket buffers.
pub fn bind_sockets(ns: &str, ports: Vec<u16>) -> anyhow::Result<Vec<UdpSocket>> {
    in_ns(ns, move || {
        let mut out = Vec::with_capacity(ports.len());
        for p in ports {
            let s = UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, p, 0, 0))
                .with_context(|| format!("binding UDP port {p}"))?;
            s.set_nonblocking(true)?;
            for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
                let v: libc::c_int = 8 << 20;
                // SAFETY: valid socket and option buffer.
                unsafe {
                    libc::setsockopt(
                        s.as_raw_fd(),
                        libc::SOL_SOCKET,
                        opt,
                        &v as *const _ as *const libc::c_void,
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    );
                }
            }
            out.push(s);
        }
        Ok(out)
    })
}

/// `a` as the sockets see it: IPv6, IPv4 as mapped IPv6.
pub fn mapped(a: SocketAddr) -> SocketAddrV6 {
    match a {
        SocketAddr::V4(v4) => SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0),
        SocketAddr::V6(v6) => v6,
    }
}

fn sockaddr(a: SocketAddrV6) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: a.port().to_be(),
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr {
            s6_addr: a.ip().octets(),
        },
        sin6_scope_id: 0,
    }
}

fn from_sockaddr(s: &libc::sockaddr_in6) -> SocketAddrV6 {
    SocketAddrV6::new(
        Ipv6Addr::from(s.sin6_addr.s6_addr),
        u16::from_be(s.sin6_port),
        0,
        0,
    )
}

impl Media {
    /// An engine over `socks` (indexed by [`Stream::sock`]) and `streams`.
    pub fn new(socks: Vec<UdpSocket>, streams: Vec<Stream>) -> anyhow::Result<Media> {
        if streams.len() > u32::MAX as usize - SSRC_BASE as usize {
            bail!("too many streams");
        }
        if streams.iter().any(|s| s.sock >= socks.len()) {
            bail!("stream refers to a missing socket");
        }
        // SAFETY: epoll_create1 has no preconditions.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("epoll_create1");
        }
        // SAFETY: fd is a fresh descriptor we own.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        for (i, s) in socks.iter().enumerate() {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            // SAFETY: valid epoll fd, socket fd and event.
            if unsafe { libc::epoll_ctl(fd, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) } != 0 {
                return Err(std::io::Error::last_os_error()).context("epoll_ctl");
            }
        }
        let zero_sa = sockaddr(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0));
        let zero_iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        // SAFETY: mmsghdr is plain data; all-zero is a valid value.
        let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let mut m = Media {
            socks,
            streams,
            epoll,
            cursor: 0,
            interval_id: 0,
            send_bufs: vec![[0xff; PACKET]; BATCH],
            send_srtp: (0..BATCH)
                .map(|_| Vec::with_capacity(PACKET + 32))
                .collect(),
            recv_plain: Vec::with_capacity(RXBUF),
            send_addrs: vec![zero_sa; BATCH],
            send_iovs: vec![zero_iov; BATCH],
            send_hdrs: vec![zero_hdr; BATCH],
            send_idx: vec![0; BATCH],
            recv_bufs: vec![[0; RXBUF]; BATCH],
            recv_addrs: vec![zero_sa; BATCH],
            recv_iovs: vec![zero_iov; BATCH],
            recv_hdrs: vec![zero_hdr; BATCH],
        };
        for b in &mut m.send_bufs {
            b[0] = 0x80; // V=2
            b[1] = 0x00; // PT 0 (PCMU)
            b[12..16].copy_from_slice(MAGIC);
        }
        Ok(m)
    }

    /// Sends `count` packets round-robin over the streams; returns (sent, failed).
    fn send(&mut self, path: Path, mut count: u64, iv: &mut Interval) {
        let n = self.streams.len();
        if n == 0 {
            return;
        }
        while count > 0 {
            let sock = self.streams[self.cursor].sock;
            let mut k = 0usize;
            while k < BATCH && (k as u64) < count {
                let idx = self.cursor;
                let st = &mut self.streams[idx];
                if st.sock != sock {
                    break;
                }
                let b = &mut self.send_bufs[k];
                let seq = st.seq;
                st.seq = st.seq.wrapping_add(1);
                b[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
                b[4..8].copy_from_slice(&seq.wrapping_mul(160).to_be_bytes());
                b[8..12].copy_from_slice(&(SSRC_BASE + idx as u32).to_be_bytes());
                b[16..20].copy_from_slice(&seq.to_be_bytes());
                b[20] = matches!(path, Path::Direct) as u8;
                b[21] = self.interval_id;
                self.send_addrs[k] = sockaddr(match path {
                    Path::Proxy => st.via_proxy,
                    Path::Direct => st.via_direct,
                });
                self.send_idx[k] = idx;
                if let Some(ctx) = st.srtp_tx.as_mut() {
                    let out = &mut self.send_srtp[k];
                    out.clear();
                    out.extend_from_slice(b);
                    if ctx.protect_rtp(out).is_err() {
                        out.clear();
                    }
                }
                k += 1;
                self.cursor = (self.cursor + 1) % n;
                if self.cursor == 0 {
                    break; // wrap: the next stream may share this socket but start a new round
                }
            }
            for i in 0..k {
                let srtp = self.streams[self.send_idx[i]].srtp_tx.is_some();
                self.send_iovs[i] = match srtp {
                    true => libc::iovec {
                        iov_base: self.send_srtp[i].as_mut_ptr() as *mut libc::c_void,
                        iov_len: self.send_srtp[i].len(),
                    },
                    false => libc::iovec {
                        iov_base: self.send_bufs[i].as_mut_ptr() as *mut libc::c_void,
                        iov_len: PACKET,
                    },
                };
                let h = &mut self.send_hdrs[i].msg_hdr;
                h.msg_name = &mut self.send_addrs[i] as *mut _ as *mut libc::c_void;
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
                h.msg_iov = &mut self.send_iovs[i];
                h.msg_iovlen = 1;
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
                h.msg_flags = 0;
            }
            let fd = self.socks[sock].as_raw_fd();
            // SAFETY: hdrs[..k] point at live buffers owned by self.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.send_hdrs.as_mut_ptr(),
                    k as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            let sent = if r < 0 { 0 } else { r as usize };
            for i in 0..k {
                let st = &mut self.streams[self.send_idx[i]];
                if i < sent {
                    if path == Path::Proxy {
                        st.tx_proxy += 1;
                    }
                } else {
                    // Not sent: give the sequence number back so it is not counted lost.
                    st.seq = st.seq.wrapping_sub(1);
                }
            }
            iv.tx += sent as u64;
            iv.send_fail += (k - sent) as u64;
            count -= k as u64;
            if sent < k {
                return; // socket buffer full: let the receive side run
            }
        }
    }

    /// Waits up to `timeout_ms` for packets and drains every ready socket.
    fn receive(&mut self, timeout_ms: i32, iv: &mut Interval) {
        // SAFETY: epoll_event is plain data.
        let mut evs: [libc::epoll_event; 64] = unsafe { std::mem::zeroed() };
        // SAFETY: valid epoll fd and event buffer.
        let n =
            unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), evs.as_mut_ptr(), 64, timeout_ms) };
        for ev in evs.iter().take(n.max(0) as usize) {
            let sock = ev.u64 as usize;
            for _ in 0..8 {
                if self.recv_batch(sock, iv) < BATCH {
                    break;
                }
            }
        }
    }

    fn recv_batch(&mut self, sock: usize, iv: &mut Interval) -> usize {
        let Some(s) = self.socks.get(sock) else {
            return 0;
        };
        let fd = s.as_raw_fd();
        for i in 0..BATCH {
            self.recv_iovs[i] = libc::iovec {
                iov_base: self.recv_bufs[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: RXBUF,
            };
            let h = &mut self.recv_hdrs[i].msg_hdr;
            h.msg_name = &mut self.recv_addrs[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            h.msg_iov = &mut self.recv_iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        // SAFETY: hdrs point at live buffers owned by self.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.recv_hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r <= 0 {
            return 0;
        }
        let r = r as usize;
        for i in 0..r {
            let len = (self.recv_hdrs[i].msg_len as usize).min(RXBUF);
            let from = from_sockaddr(&self.recv_addrs[i]);
            let mut b = &self.recv_bufs[i][..len];
            // SRTP (`--srtp`): unprotected with the key of the stream its
            // clear header names; a packet that fails is malformed.
            if len > PACKET {
                let ssrc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
                let ctx = ssrc
                    .checked_sub(SSRC_BASE)
                    .and_then(|i| self.streams.get_mut(i as usize))
                    .and_then(|st| st.srtp_rx.as_mut());
                self.recv_plain.clear();
                self.recv_plain.extend_from_slice(b);
                match ctx.map(|c| c.unprotect_rtp(&mut self.recv_plain)) {
                    Some(Ok(())) => b = &self.recv_plain,
                    _ => {
                        iv.malformed += 1;
                        continue;
                    }
                }
            }
            if b.len() != PACKET || &b[12..16] != MAGIC {
                iv.malformed += 1;
                continue;
            }
            let ssrc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
            let Some(st) = ssrc
                .checked_sub(SSRC_BASE)
                .and_then(|i| self.streams.get_mut(i as usize))
            else {
                iv.malformed += 1;
                continue;
            };
            if b[21] != self.interval_id {
                iv.late += 1;
                continue;
            }
            let seq = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
            let direct = b[20] == 1;
            iv.rx += 1;
            let expect = if direct { st.src_direct } else { st.src_proxy };
            if from != expect {
                iv.wrong_src += 1;
            }
            if !direct {
                st.rx_proxy += 1;
            }
            if seq >= st.rx_next {
                st.rx_next = seq.wrapping_add(1);
            } else {
                iv.out_of_order += 1;
            }
        }
        r
    }

    /// Sends for `dur` on `path` at `pps` packets/s in total (`None`: flat
    /// out), then drains for up to `drain`; CPU is sampled around it all.
    /// `stop_early` is polled to end a background interval.
    pub fn interval(
        &mut self,
        path: Path,
        pps: Option<f64>,
        dur: Duration,
        drain: Duration,
        meter: &Meter,
        stop_early: Option<&std::sync::atomic::AtomicBool>,
    ) -> anyhow::Result<Interval> {
        self.interval_id = self.interval_id.wrapping_add(1);
        let rx_before: Vec<u32> = self.streams.iter().map(|s| s.rx_next).collect();
        let seq_before: Vec<u32> = self.streams.iter().map(|s| s.seq).collect();
        let mut iv = Interval {
            path: path.name(),
            target_pps: pps.unwrap_or(0.0),
            ..Default::default()
        };
        let c0 = meter.sample();
        let t0 = Instant::now();
        loop {
            super::stop::check()?;
            if stop_early.is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed)) {
                break;
            }
            let el = t0.elapsed();
            if el >= dur {
                break;
            }
            match pps {
                Some(r) => {
                    let due = ((r * el.as_secs_f64()) as u64).saturating_sub(iv.tx + iv.send_fail);
                    self.send(path, due.min(4096), &mut iv);
                    // Sleep in epoll until the next packet is due (≤ 1 ms).
                    let wait = if due > 0 || r <= 0.0 { 0 } else { 1 };
                    self.receive(wait, &mut iv);
                }
                None => {
                    self.send(path, (BATCH * 4) as u64, &mut iv);
                    self.receive(0, &mut iv);
                }
            }
        }
        iv.secs = t0.elapsed().as_secs_f64();
        let dl = Instant::now() + drain;
        while Instant::now() < dl && iv.rx < iv.tx {
            super::stop::check()?;
            self.receive(1, &mut iv);
        }
        iv.cpu = meter.sample().since(&c0);
        iv.silent_streams = self
            .streams
            .iter()
            .zip(rx_before.iter().zip(&seq_before))
            .filter(|(s, (&rx0, &seq0))| s.seq != seq0 && s.rx_next == rx0)
            .count();
        Ok(iv)
    }
}
