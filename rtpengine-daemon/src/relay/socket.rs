//! One local media port: its state, the per-packet forwarding decision and
//! the hand-over to the kernel.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

use super::bundle;
use super::filter::{
    set_extension, strip_extensions, strip_feedback, Action, Filter, LoopDetect, ECHO_SSRC_XOR,
};
use super::ice;
use super::learning::{Endpoint, EndpointLearning, Policy, Verdict};
use super::offload::{KernelCounters, Offload, Rule};
use super::srtp::{self, Transform};
use super::ssrc::{SsrcStats, SsrcTable};
use super::webrtc::{self, Leg};
use super::{is_rtcp, Counters, Totals, MAX_PACKET};
use crate::clock;
use crate::interfaces::PortLease;
use crate::net::RecvBatch;

/// Where the relay's packets leave: out of the sending socket, or as
/// AF_XDP frames (`relay/xsk.rs`).
pub(crate) trait Egress {
    /// Sends `pkt` from `from`'s local address to `dst` (`tos`: the
    /// socket's TOS, for frames built without it).
    fn send(
        &mut self,
        from: &MediaSocket,
        pkt: &[u8],
        dst: SocketAddr,
        tos: Option<u8>,
    ) -> io::Result<()>;
}

/// [`Egress`] through the sockets.
pub(crate) struct SocketEgress;

impl Egress for SocketEgress {
    fn send(
        &mut self,
        from: &MediaSocket,
        pkt: &[u8],
        dst: SocketAddr,
        _tos: Option<u8>,
    ) -> io::Result<()> {
        crate::net::send_to(from.sock.as_raw_fd(), pkt, dst).map(drop)
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
    /// TOS / traffic class of packets sent from here.
    pub tos: Option<u8>,
    /// The rule installed in the kernel, if offloaded.
    pub kernel: Option<Rule>,
    /// Kernel counters already merged into the socket's counters.
    kernel_seen: KernelCounters,
    /// Offloading failed once for this socket; do not retry every packet.
    kernel_failed: bool,
    /// What the party sends here is relayed over AF_XDP (`relay/xsk.rs`).
    steered: bool,
    /// Steering failed (or is unavailable); retried once signalling changes
    /// the stream.
    steer_failed: bool,
    /// `block media` / `block DTMF` / `silence media` on what the party sends.
    filter: Filter,
    /// Per-SSRC counters of the RTP received.
    ssrcs: SsrcTable,
    /// Duplicate runs, when the filter asks for loop checks (boxed: rare,
    /// and every socket would carry it).
    loops: Option<Box<LoopDetect>>,
    /// SRTP: what is unprotected from the party and protected towards the
    /// peer (nothing for plain RTP and SRTP passthrough).
    pub transform: Transform,
    /// ICE and DTLS of a WebRTC party: its STUN and DTLS datagrams are
    /// handled here instead of relayed.
    pub webrtc: Option<Arc<Leg>>,
    /// BUNDLE head: the sections the party's packets arriving here are
    /// handed to (see [`bundle`]).
    bundle: Option<Arc<bundle::Routes>>,
    /// What the head learned about the bundle's SSRCs.
    bundle_learned: bundle::Learned,
    /// BUNDLE member: the head's socket its media to the party leaves
    /// through.
    via: Option<Weak<MediaSocket>>,
    /// A bundled section: the MID extension (ID, the section's mid) put on
    /// the RTP sent to the party through it, so the party can tell the
    /// sections apart (as upstream).
    mid_out: Option<(u8, Arc<[u8]>)>,
}

impl SocketState {
    /// Fresh state for a socket talking to a party at (not yet known) `endpoint`.
    pub fn new(endpoint: Endpoint, policy: Policy, tos: Option<u8>) -> SocketState {
        SocketState {
            endpoint,
            policy,
            muxed: false,
            peer_rtp: Weak::new(),
            peer_rtcp: Weak::new(),
            tos,
            kernel: None,
            kernel_seen: KernelCounters::default(),
            kernel_failed: false,
            steered: false,
            steer_failed: false,
            filter: Filter::default(),
            ssrcs: SsrcTable::default(),
            loops: None,
            transform: Transform::default(),
            webrtc: None,
            bundle: None,
            bundle_learned: bundle::Learned::default(),
            via: None,
            mid_out: None,
        }
    }
}

/// SSRC and payload type of the first RTP packet a socket received, packed
/// in one word (bit 40 marks it as set, so 0 means none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpSeen(u64);

impl RtpSeen {
    /// From an RTP packet (version 2, not RTCP), else `None`.
    fn of(pkt: &[u8]) -> Option<RtpSeen> {
        if pkt.len() < 12 || pkt[0] >> 6 != 2 || is_rtcp(pkt) {
            return None;
        }
        let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
        Some(RtpSeen(
            1 << 40 | u64::from(pkt[1] & 0x7f) << 32 | u64::from(ssrc),
        ))
    }

    /// The SSRC.
    pub fn ssrc(self) -> u32 {
        self.0 as u32
    }

    /// The payload type.
    pub fn payload_type(self) -> u8 {
        (self.0 >> 32) as u8 & 0x7f
    }
}

/// The next [`MediaSocket::key`].
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// [`MediaSocket::bundle_role`]: the head of a bundle.
const HEAD: u8 = 1;
/// [`MediaSocket::bundle_role`]: a member sending through its head.
const MEMBER: u8 = 2;

/// What `query` and `delete` report about one socket, read under one lock.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// Local address and port.
    pub local: SocketAddr,
    /// The RTCP port of a pair.
    pub is_rtcp: bool,
    /// Where packets to the party go (learned, else announced).
    pub endpoint: Option<SocketAddr>,
    /// What the party announced in SDP.
    pub advertised: Option<SocketAddr>,
    /// The party's address is confirmed by learning.
    pub confirmed: bool,
    /// Forwarded in the kernel now.
    pub kernelized: bool,
    /// An offload backend exists at all.
    pub kernel_capable: bool,
    /// `strict source`.
    pub strict: bool,
    /// `media handover`.
    pub handover: bool,
    /// [`clock::now_ms`] of the last packet from the party, 0 = never.
    pub last_packet_ms: u64,
    /// The same for packets relayed in userspace.
    pub last_user_packet_ms: u64,
    /// The same for packets forwarded in the kernel.
    pub last_kernel_packet_ms: u64,
    /// Packets from the party.
    pub received: Totals,
    /// Packets to the party.
    pub sent: Totals,
    /// Per-SSRC counters of the RTP received, in the order first seen.
    pub ssrcs: Vec<SsrcStats>,
}

/// One local media port.
pub struct MediaSocket {
    /// Local address and port.
    pub local: SocketAddr,
    /// Whether this is the RTCP port of a pair.
    pub is_rtcp: bool,
    pub(super) sock: UdpSocket,
    state: Mutex<SocketState>,
    /// Packets received from the party (accepted ones, and rejected as errors).
    pub stats_in: Counters,
    /// Packets sent to the party.
    pub stats_out: Counters,
    /// The share of `stats_in` forwarded in the kernel.
    pub kernel_in: Counters,
    /// [`clock::now_ms`] of the last packet relayed in userspace, 0 = never.
    pub user_last_ms: AtomicU64,
    /// The first RTP packet's SSRC and payload type (see [`RtpSeen`]), for
    /// the CLI; 0 until one arrives.
    rtp_seen: AtomicU64,
    /// Mirrors `SocketState::kernel.is_some()`, so statistics can count
    /// offloaded streams without taking the lock the relay takes per packet.
    offloaded: AtomicBool,
    /// Unique for the process's life (a bundle's learning names sections
    /// by it: an address could be reused by a socket made anew).
    key: u64,
    /// Mirrors the BUNDLE role in the state (0 none, [`HEAD`], [`MEMBER`]),
    /// so unbundled packets pay no extra lock.
    bundle_role: AtomicU8,
    /// The last SSRC sent to the party through this bundle member, so the
    /// head learns each one once.
    bundle_sent: AtomicU32,
    offload: Option<Arc<dyn Offload>>,
    /// This socket, for the AF_XDP relay's lookup of steered sockets.
    me: Weak<MediaSocket>,
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

impl MediaSocket {
    /// Wraps a bound socket.
    pub fn new(
        sock: UdpSocket,
        is_rtcp: bool,
        lease: Arc<PortLease>,
        state: SocketState,
        offload: Option<Arc<dyn Offload>>,
    ) -> io::Result<Arc<MediaSocket>> {
        let local = sock.local_addr()?;
        sock.set_nonblocking(true)?;
        Ok(Arc::new_cyclic(|me| MediaSocket {
            local,
            is_rtcp,
            sock,
            state: Mutex::new(state),
            stats_in: Counters::default(),
            stats_out: Counters::default(),
            kernel_in: Counters::default(),
            user_last_ms: AtomicU64::new(0),
            rtp_seen: AtomicU64::new(0),
            offloaded: AtomicBool::new(false),
            key: NEXT_KEY.fetch_add(1, Relaxed),
            bundle_role: AtomicU8::new(0),
            bundle_sent: AtomicU32::new(0),
            offload,
            me: me.clone(),
            _lease: lease,
        }))
    }

    /// Locks the state.
    pub fn state(&self) -> MutexGuard<'_, SocketState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the filter on what the party sends here; an active one takes the
    /// stream out of the kernel (the relay re-offloads it once lifted).
    pub fn set_filter(&self, filter: Filter) {
        let mut st = self.state();
        if st.filter == filter {
            return;
        }
        st.filter = filter;
        if filter.active() {
            self.unoffload_locked(&mut st, "media filtered");
        }
    }

    /// Sets the IPv4 TOS / IPv6 traffic class of packets sent from here.
    pub fn set_tos(&self, tos: u8) -> io::Result<()> {
        crate::net::set_tos(self.sock.as_raw_fd(), self.local.is_ipv6(), tos)
    }

    /// Changes the TOS of a running stream (the call's `TOS` changed): the
    /// socket option, and the kernel rule, which the next packet re-installs.
    pub fn change_tos(&self, tos: u8) {
        let mut st = self.state();
        if st.tos == Some(tos) {
            return;
        }
        if let Err(e) = self.set_tos(tos) {
            tracing::warn!(local = %self.local, error = %e, "Failed to set TOS");
        }
        st.tos = Some(tos);
        self.unoffload_locked(&mut st, "TOS changed");
    }

    /// Relays what is queued (one `recvmmsg`); returns how many datagrams
    /// were taken.
    pub(crate) fn drain(&self, batch: &mut RecvBatch) -> usize {
        // An error concerns one datagram (or none); the socket stays served.
        let n = batch.recv(self.sock.as_raw_fd()).unwrap_or(0);
        // One clock read per batch: its datagrams arrived together.
        let now = Instant::now();
        for i in 0..n {
            match batch.get(i) {
                (pkt, Some(src)) => self.forward(pkt, src, now, &mut SocketEgress),
                _ => self.stats_in.error(),
            }
        }
        n
    }

    /// Handles one packet from `src`, received at `now` (on this socket,
    /// or steered here over AF_XDP), sending what it relays through `tx`.
    ///
    /// Lock discipline: at most one [`SocketState`] lock is held at a time
    /// (two sockets forwarding to each other would otherwise deadlock).
    pub(super) fn forward(&self, pkt: &[u8], src: SocketAddr, now: Instant, tx: &mut dyn Egress) {
        let now_ms = clock::ms_of(now);
        // RTP and RTCP start with version 2 (first byte 128–191): one
        // comparison keeps the media path as it was.
        if pkt.first().is_some_and(|&b| b < 64) && self.webrtc(pkt, src, now_ms) {
            return;
        }
        if self.bundle_role.load(Relaxed) == HEAD {
            return self.forward_bundled(pkt, src, now, now_ms, tx);
        }
        self.relay(pkt, src, now, now_ms, None, tx);
    }

    /// A packet on a bundle's head: relayed by the section it belongs to
    /// (this one when it cannot be told). What it teaches (an SSRC's
    /// section; the party's address, where all sections' media to it go)
    /// is kept only once that section accepted it: a forged packet
    /// teaches nothing.
    fn forward_bundled(
        &self,
        pkt: &[u8],
        src: SocketAddr,
        now: Instant,
        now_ms: u64,
        tx: &mut dyn Egress,
    ) {
        // One lock for the routes and the decision.
        let decided = {
            let st = self.state();
            st.bundle.clone().map(|routes| {
                let mut demux = routes.member_of(&st.bundle_learned, pkt);
                let mut plain = None;
                // RTCP of an unknown sender: by the SSRC it reports on,
                // which SRTCP encrypts: unprotected here under the head's
                // keys (the sections share the head's contexts; its
                // section then takes the plain packet as it is). One that
                // does not authenticate is dropped here (not checked a
                // second time): `None`.
                if demux.is_none() && is_rtcp(pkt) {
                    let ctx = st.transform.decrypt_for(self.is_rtcp);
                    let unprotected = ctx.and_then(|ctx| srtp::unprotect(ctx, pkt, true).ok());
                    if ctx.is_some() && unprotected.is_none() {
                        return None;
                    }
                    let clear = unprotected.as_deref().unwrap_or(pkt);
                    demux = routes
                        .rtcp_by_reportee(&st.bundle_learned, clear)
                        .map(|member| bundle::Demux {
                            member,
                            learn: None,
                        });
                    plain = unprotected;
                }
                Some((routes, demux, plain))
            })
        };
        let (routes, demux, plain) = match decided {
            // Not a head any more (a race with signalling).
            None => {
                self.relay(pkt, src, now, now_ms, None, tx);
                return;
            }
            Some(None) => return self.stats_in.error(),
            Some(Some(d)) => d,
        };
        let Some(d) = demux.filter(|d| d.member != 0) else {
            // The head's own section (first in the routes), or unknown.
            let learn = demux.and_then(|d| d.learn);
            let head = routes.members.first().map(|m| m.key);
            if self.relay(pkt, src, now, now_ms, plain, tx) {
                if let (Some(ssrc), Some(key)) = (learn, head) {
                    self.state().bundle_learned.received(ssrc, key);
                }
            }
            return;
        };
        // A section whose socket is gone: its media has nowhere to go (not
        // into the head's section).
        let Some(member) = routes.members.get(d.member) else {
            return;
        };
        let Some(sock) = member.socket.upgrade() else {
            self.stats_in.error();
            return;
        };
        if !sock.relay(pkt, src, now, now_ms, plain, tx) {
            return;
        }
        let mut st = self.state();
        let st = &mut *st;
        self.steer_locked(st);
        if let Some(ssrc) = d.learn {
            st.bundle_learned.received(ssrc, member.key);
        }
        // Where the party is: what all the bundle's media to it uses.
        if st.endpoint.check(src, &st.policy, now) != Verdict::Reject {
            st.endpoint.heard = true;
        }
    }

    /// Makes this socket the head of a bundle (`Some`) or not (`None`).
    pub fn set_bundle(&self, routes: Option<Arc<bundle::Routes>>) {
        let mut st = self.state();
        let role = match routes.is_some() {
            true => HEAD,
            false if st.via.is_some() => MEMBER,
            false => 0,
        };
        if routes.is_some() != st.bundle.is_some() {
            self.unoffload_locked(&mut st, "bundle changed");
        }
        // What it learned stays across a re-linking: it names sections by
        // their sockets, so it cannot point at another section.
        if routes.is_none() {
            st.bundle_learned = bundle::Learned::default();
        }
        st.bundle = routes;
        st.via = st.via.take().filter(|_| role != HEAD);
        self.set_role(st, role);
    }

    /// Records a new BUNDLE role; where it changed, the kernel rules of
    /// the sockets sending to this one's party go (media to a bundled party
    /// is relayed here: it carries the section's MID, and a member's leaves
    /// through the head).
    fn set_role(&self, st: MutexGuard<'_, SocketState>, role: u8) {
        let before = self.bundle_role.swap(role, Relaxed);
        if before == role || self.offload.is_none() {
            return;
        }
        let peers = [st.peer_rtp.clone(), st.peer_rtcp.clone()];
        drop(st);
        for p in peers.iter().filter_map(Weak::upgrade) {
            p.unoffload("peer bundled");
        }
    }

    /// Makes this socket a bundle member whose media to the party leaves
    /// through `head` (`Some`), or not (`None`).
    pub fn set_via(&self, via: Option<Weak<MediaSocket>>) {
        let mut st = self.state();
        if via.is_some() {
            self.unoffload_locked(&mut st, "bundled");
            st.bundle = None;
        }
        let role = match (&via, &st.bundle) {
            (Some(_), _) => MEMBER,
            (None, Some(_)) => HEAD,
            (None, None) => 0,
        };
        st.via = via;
        // A new head learns the SSRCs sent through this section anew.
        self.bundle_sent.store(0, Relaxed);
        self.set_role(st, role);
    }

    /// Sets the MID extension put on RTP to the party (see
    /// [`SocketState`]'s `mid_out`).
    pub fn set_mid_out(&self, mid: Option<(u8, Arc<[u8]>)>) {
        self.state().mid_out = mid;
    }

    /// Unique for the process's life (see [`bundle::Learned`]).
    pub fn key(&self) -> u64 {
        self.key
    }

    /// Whether this socket is part of a bundle (head or member): media to
    /// its party is relayed here, never in the kernel (it carries the
    /// section's MID, and leaves through the head).
    fn bundled(&self) -> bool {
        self.bundle_role.load(Relaxed) != 0
    }

    /// The head a bundle member sends through.
    fn via(&self) -> Option<Arc<MediaSocket>> {
        self.bundle_out().0
    }

    /// What sending to the party through this bundled section takes: the
    /// head to send through (a member's) and the MID extension to put on.
    #[allow(clippy::type_complexity, reason = "read together under one lock")]
    fn bundle_out(&self) -> (Option<Arc<MediaSocket>>, Option<(u8, Arc<[u8]>)>) {
        if !self.bundled() {
            return (None, None);
        }
        let st = self.state();
        (st.via.as_ref().and_then(Weak::upgrade), st.mid_out.clone())
    }

    /// Relays one packet of the party's that belongs to this socket's
    /// section (arrived here, or handed over by its bundle's head, which
    /// may have unprotected it already: `plain`). Returns whether the
    /// packet was accepted (authenticated, from a source the section takes).
    fn relay(
        &self,
        pkt: &[u8],
        src: SocketAddr,
        now: Instant,
        now_ms: u64,
        plain: Option<Vec<u8>>,
        tx: &mut dyn Egress,
    ) -> bool {
        // RTCP by its port, or by its packet type where it arrives on an
        // RTP port (muxed, or unannounced); the header is clear in SRTCP too.
        let rtcp = self.is_rtcp || is_rtcp(pkt);
        let (target, peers, filter, filter_ext, transform, decrypted) = {
            let mut st = self.state();
            let st = &mut *st;
            if st.transform.drop {
                // An SRTP leg without a key in force.
                self.stats_in.error();
                return false;
            }
            // SRTP is authenticated before anything learns from the packet
            // (a forged one must not move the stream) and then handled as
            // the plain packet it carries.
            // Keys are scoped to the transport (RFC 5764 §4.2): the RTCP
            // port's association's on that port, the RTP port's for
            // anything on it (stray RTCP of a party that does not mux).
            let decrypted = match st.transform.decrypt_for(self.is_rtcp) {
                // Unprotected by the bundle's head (under the same keys).
                Some(_) if plain.is_some() => plain,
                None => None,
                Some(ctx) => match srtp::unprotect(ctx, pkt, rtcp) {
                    Ok(plain) => Some(plain),
                    Err(e) => {
                        tracing::trace!(local = %self.local, %src, error = %e, "SRTP packet dropped");
                        self.stats_in.error();
                        return false;
                    }
                },
            };
            let pkt = decrypted.as_deref().unwrap_or(pkt);
            let before = (st.endpoint.learned, st.endpoint.confirmed);
            let dest_before = st.endpoint.destination(&st.policy);
            // RTCP on the RTP port of a party that does not mux teaches
            // nothing about where its RTP comes from (upstream #697).
            let stray_rtcp = !self.is_rtcp && !st.muxed && is_rtcp(pkt);
            let verdict = match stray_rtcp {
                true => st.endpoint.admit(src, &st.policy),
                false => st.endpoint.check(src, &st.policy, now),
            };
            if verdict == Verdict::Reject {
                self.stats_in.error();
                return false;
            }
            if st.filter.loop_check && st.loops.get_or_insert_default().looping(pkt, now_ms) {
                tracing::warn!(local = %self.local, %src, "More than 30 duplicate packets: dropped to avoid a media loop");
                self.stats_in.error();
                return false;
            }
            st.endpoint.heard = true;
            // The sockets sending to this party care when where it receives
            // changes (a learned or first-heard address: their kernel rules
            // follow), when it becomes final, or when it moves (media
            // handover: their rules are stale).
            let confirmed_now = !before.1 && st.endpoint.confirmed;
            let moved = before.1 && st.endpoint.learned != before.0;
            let dest_changed = st.endpoint.destination(&st.policy) != dest_before;
            let peers = (confirmed_now || moved || dest_changed)
                .then(|| (moved, [st.peer_rtp.clone(), st.peer_rtcp.clone()]));
            if !rtcp {
                st.ssrcs.record(pkt, now_ms);
            }
            // Accepted: later packets may skip the socket layer.
            self.steer_locked(st);
            // RTCP arriving on the RTP port of a party that does not mux
            // (unannounced) goes to the peer's RTCP port all the same, as
            // upstream demultiplexes it.
            let target = if rtcp { &st.peer_rtcp } else { &st.peer_rtp };
            // RTCP passes filters even where it arrives unannounced on an
            // RTP port.
            let filter = st.filter.active().then(|| st.filter.decide(pkt, rtcp));
            let transform = match st.transform.active() {
                true => Some(st.transform.clone()),
                false => None,
            };
            // Authenticated only (`recrypt` on one key): relayed as received.
            let decrypted = decrypted.filter(|_| st.transform.terminates());
            (
                target.upgrade(),
                peers,
                filter,
                st.filter.strip_ext,
                transform,
                decrypted,
            )
        };
        // Once per socket: one relaxed load per packet after that.
        if self.rtp_seen.load(Relaxed) == 0 && !self.is_rtcp {
            if let Some(seen) = RtpSeen::of(pkt) {
                self.rtp_seen.store(seen.0, Relaxed);
            }
        }
        if let (Some((moved, peers)), true) = (peers, self.offload.is_some()) {
            for peer in peers.iter().filter_map(Weak::upgrade) {
                if moved {
                    peer.unoffload("peer address changed");
                }
                peer.try_offload();
            }
        }
        if pkt.len() >= MAX_PACKET {
            self.stats_in.error();
            return false;
        }
        self.stats_in.count(pkt.len(), now_ms);
        self.user_last_ms.store(now_ms, Relaxed);
        // From here on the packet is plain (`decrypted`) or as received;
        // only a rewritten or transformed packet pays for a buffer.
        let mut buf = decrypted;
        if let Some(Action::Reflect(ssrc_at)) = filter {
            let echo = transform.as_ref().and_then(|t| t.echo_for(self.is_rtcp));
            self.reflect(buf.as_deref().unwrap_or(pkt), ssrc_at, echo, rtcp, now_ms);
            return true;
        }
        let Some(target) = target else { return true };
        // A bundled section's media leaves through its bundle's head, with
        // the section's MID on.
        let (via, mid_out) = target.bundle_out();
        match filter {
            None | Some(Action::Forward) => {}
            Some(Action::Drop) | Some(Action::Reflect(_)) => return true,
            Some(Action::Silence(start, end, byte)) => {
                let mut out = buf.take().unwrap_or_else(|| pkt.to_vec());
                out[start..end].fill(byte);
                buf = Some(out);
            }
            Some(Action::StripExtensions) => {
                if let Some(out) = strip_extensions(buf.as_deref().unwrap_or(pkt), filter_ext) {
                    buf = Some(out);
                }
            }
            Some(Action::StripFeedback) => match strip_feedback(buf.as_deref().unwrap_or(pkt)) {
                Some(out) => buf = Some(out),
                None => return true,
            },
        }
        if let (Some((id, mid)), false) = (&mid_out, rtcp) {
            if let Some(out) = set_extension(buf.as_deref().unwrap_or(pkt), *id, mid) {
                buf = Some(out);
            }
        }
        if let Some(ctx) = transform.as_ref().and_then(|t| t.encrypt_for(rtcp)) {
            let mut out = buf.take().unwrap_or_else(|| srtp::with_room(pkt));
            if let Err(e) = srtp::protect(ctx, &mut out, rtcp) {
                tracing::debug!(local = %target.local, error = %e, "SRTP protect failed, packet dropped");
                target.stats_out.error();
                return true;
            }
            buf = Some(out);
        }
        let pkt = buf.as_deref().unwrap_or(pkt);
        let out = via.as_ref().unwrap_or(&target);
        let (dst, tos) = out.destination();
        let Some(dst) = dst else { return true };
        // Install the kernel rule before sending: once the peer has this
        // packet it may answer at once, and its reply should already find
        // the rule in place. As upstream, a stream goes to the kernel once
        // its source is confirmed and its sink's address is known (from SDP
        // or learned, not necessarily confirmed): one-way media too; a sink
        // learned later updates the rule (see `dest_changed`).
        if self.offload.is_some() && !target.bundled() {
            self.offload_to(&target, dst, tos);
        }
        match tx.send(out, pkt, dst, tos) {
            Ok(()) => target.stats_out.count(pkt.len(), now_ms),
            Err(_) => target.stats_out.error(),
        }
        if let (Some(head), false) = (&via, rtcp) {
            target.note_sent(head, pkt);
        }
        true
    }

    /// Tells a bundle's head which section (this member's socket) an SSRC
    /// sent to the party belongs to (its RTCP about it is routed there),
    /// once per SSRC.
    fn note_sent(&self, head: &MediaSocket, pkt: &[u8]) {
        let Some(ssrc) = pkt.get(8..12).and_then(|b| b.try_into().ok()) else {
            return;
        };
        let ssrc = u32::from_be_bytes(ssrc);
        if self.bundle_sent.swap(ssrc, Relaxed) != ssrc {
            head.state().bundle_learned.sent(ssrc, self.key);
        }
    }

    /// STUN and DTLS of a WebRTC party (RFC 7983); `false` when `pkt` is
    /// neither or the party has no WebRTC leg (then it is relayed as any
    /// packet: ICE and DTLS between two WebRTC parties pass through).
    fn webrtc(&self, pkt: &[u8], src: SocketAddr, now_ms: u64) -> bool {
        let stun = ice::is_stun(pkt);
        if !stun && !webrtc::is_dtls(pkt) {
            return false;
        }
        let (leg, known) = {
            let st = self.state();
            // Without ICE, DTLS is taken from where the party's media goes
            // (or from anyone until its address is confirmed, as learning
            // does): a stranger cannot restart the handshake.
            let known = !st.endpoint.confirmed || st.endpoint.destination(&st.policy) == Some(src);
            (st.webrtc.clone(), known)
        };
        let Some(leg) = leg else {
            return false;
        };
        if !stun && !leg.has_dtls() {
            return false;
        }
        let reply = match stun {
            true => leg.stun(pkt, (self.local, src), self.component()),
            // A party that does not mux runs a second handshake on its
            // RTCP port (RFC 5764 §4.2): the leg keys its SRTCP from it.
            false => leg.dtls(pkt, (self.local, src), self.component(), known),
        };
        if reply.refused {
            self.stats_in.error();
            return true;
        }
        if reply.nominated {
            // The nominated pair is where the party receives (RFC 8445
            // §8.1.1): media goes there from now on, also from the kernel
            // rules of the sockets sending to it.
            let peers = {
                let mut st = self.state();
                let before = st.endpoint.destination(&st.policy);
                if st.endpoint.learned != Some(src) || !st.endpoint.confirmed || st.endpoint.gated {
                    tracing::debug!(local = %self.local, %src, "ICE pair nominated");
                    st.endpoint.adopt(src);
                }
                (st.endpoint.destination(&st.policy) != before)
                    .then(|| [st.peer_rtp.clone(), st.peer_rtcp.clone()])
            };
            for peer in peers.iter().flatten().filter_map(Weak::upgrade) {
                peer.unoffload("peer address changed");
                peer.try_offload();
            }
            if reply.moved {
                webrtc::ICE_SELECTED.notify_one();
            }
        }
        for d in &reply.out {
            self.send_control(d, src, now_ms);
        }
        true
    }

    /// The ICE component this socket serves (RFC 8445: 1 RTP, 2 RTCP).
    fn component(&self) -> u8 {
        match self.is_rtcp {
            true => 2,
            false => 1,
        }
    }

    /// Sends a datagram of our own (STUN, DTLS) to the party.
    fn send_control(&self, pkt: &[u8], dst: SocketAddr, now_ms: u64) {
        match crate::net::send_to(self.sock.as_raw_fd(), pkt, dst) {
            Ok(_) => self.stats_out.count(pkt.len(), now_ms),
            Err(_) => self.stats_out.error(),
        }
    }

    /// The timer's turn for a WebRTC leg served by this socket: ICE checks
    /// and consent, DTLS retransmissions, or a client handshake towards a
    /// peer without ICE.
    pub fn webrtc_tick(&self) {
        let (leg, dest) = {
            let st = self.state();
            (st.webrtc.clone(), st.endpoint.destination(&st.policy))
        };
        let Some(leg) = leg else { return };
        let tick = leg.tick(dest, self.local, self.component());
        let now_ms = clock::now_ms();
        for (dst, d) in &tick.out {
            self.send_control(d, *dst, now_ms);
        }
        if tick.consent_lost {
            // No more media to the party (RFC 7675 §5.1), from here or
            // from the kernel rule on the peer's socket, until a pair is
            // selected again.
            let peers = {
                let mut st = self.state();
                st.endpoint.gate();
                [st.peer_rtp.clone(), st.peer_rtcp.clone()]
            };
            for p in peers.iter().filter_map(Weak::upgrade) {
                p.unoffload("ICE consent lost");
            }
        }
    }

    /// `media echo`: sends `pkt` back to this socket's own party, with the
    /// SSRC at `ssrc_at` changed (and protected with the key towards the
    /// party, `echo`, where its media is SRTP we terminate).
    fn reflect(
        &self,
        pkt: &[u8],
        ssrc_at: Option<usize>,
        echo: Option<&srtp::Shared>,
        rtcp: bool,
        now_ms: u64,
    ) {
        let via = self.via();
        let sender = via.as_deref().unwrap_or(self);
        let (dst, _) = sender.destination();
        let Some(dst) = dst else { return };
        let mut out = srtp::with_room(pkt);
        if let Some(at) = ssrc_at {
            let ssrc = u32::from_be_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]]);
            out[at..at + 4].copy_from_slice(&(ssrc ^ ECHO_SSRC_XOR).to_be_bytes());
        }
        if let Some(ctx) = echo {
            if srtp::protect(ctx, &mut out, rtcp).is_err() {
                self.stats_out.error();
                return;
            }
        }
        match crate::net::send_to(sender.sock.as_raw_fd(), &out, dst) {
            Ok(_) => self.stats_out.count(out.len(), now_ms),
            Err(_) => self.stats_out.error(),
        }
    }

    /// Where packets to this socket's party go (learned, else announced;
    /// none before it was heard with `NAT-wait`), and the TOS to send with.
    fn destination(&self) -> (Option<SocketAddr>, Option<u8>) {
        let st = self.state();
        (st.endpoint.destination(&st.policy), st.tos)
    }

    /// Steers what the party sends here to the AF_XDP relay, once, if the
    /// kernel cannot forward it (SRTP to encrypt or decrypt, a bundle's
    /// head, filtered media) and the backend can steer. Not a bundle
    /// member: its party sends to the head (steered for the section it
    /// hands a packet to, in `forward_bundled`).
    fn steer_locked(&self, st: &mut SocketState) {
        let Some(offload) = &self.offload else { return };
        if st.steered || st.steer_failed || st.kernel.is_some() || st.via.is_some() {
            return;
        }
        if !(st.transform.active() || st.bundle.is_some() || st.filter.active()) {
            return;
        }
        match offload.steer(self.local, self.me.clone()) {
            Ok(()) => {
                tracing::debug!(local = %self.local, "Media stream relayed over AF_XDP");
                st.steered = true;
            }
            Err(e) => {
                if !matches!(e, super::offload::OffloadError::Unsupported) {
                    tracing::debug!(local = %self.local, error = %format!("{e:#}"), "Steering to AF_XDP refused");
                }
                st.steer_failed = true;
            }
        }
    }

    /// Offloads this socket if its path is ready (called when where the
    /// party it sends to receives changed or became final, so the rule
    /// follows and the first reply need not wait for another packet
    /// through userspace).
    fn try_offload(&self) {
        let target = {
            let st = self.state();
            let t = if self.is_rtcp {
                &st.peer_rtcp
            } else {
                &st.peer_rtp
            };
            t.upgrade()
        };
        let Some(target) = target else { return };
        if target.bundled() {
            // To a bundled party: relayed here (the section's MID goes on,
            // a member's media leaves through the head).
            return;
        }
        if let (Some(dst), tos) = target.destination() {
            self.offload_to(&target, dst, tos);
            // The target may have moved (a new ICE pair, consent lost)
            // while the rule went in: a rule for the old address goes.
            if target.destination().0 != Some(dst) {
                self.unoffload("peer address changed");
            }
        }
    }

    /// Hands this socket's traffic to the kernel: packets from its party go
    /// out of `src` (the peer's socket) to the peer's final address `dst`.
    /// Only once this party's address is final too, and only for one plain
    /// path (IPv4 and IPv6 sides are translated by the dataplane).
    fn offload_to(&self, target: &MediaSocket, dst: SocketAddr, tos: Option<u8>) {
        let Some(offload) = &self.offload else { return };
        let src = target.local;
        let mut st = self.state();
        // Read under our lock: a party that becomes bundled swaps its role
        // before it takes out our rule (which waits for this lock).
        if target.bundled() {
            return;
        }
        // SRTP we unprotect or protect is relayed here: the kernel program
        // forwards packets unchanged.
        // Nor a bundle: the head hands packets to several sections.
        if st.kernel_failed
            || st.filter.active()
            || st.transform.active()
            || st.bundle.is_some()
            || st.via.is_some()
        {
            return;
        }
        // The source the kernel expects: the SDP address when nothing is
        // learned, else the confirmed one (asymmetric streams learn their
        // source too, they only send to the SDP address).
        let expected = if st.policy.mode == EndpointLearning::Off {
            st.endpoint.sdp
        } else {
            st.endpoint.learned.filter(|_| st.endpoint.confirmed)
        };
        let Some(expected) = expected else { return };
        // A muxed socket carries RTP and RTCP; both must go to one place.
        if st.muxed && !Weak::ptr_eq(&st.peer_rtp, &st.peer_rtcp) {
            return;
        }
        // Packets arrive in the local socket's family and leave in the
        // peer's; the dataplane translates between IPv4 and IPv6.
        let family = |a: &SocketAddr| a.ip().to_canonical().is_ipv6();
        if family(&expected) != family(&self.local) || family(&src) != family(&dst) {
            return;
        }
        let rule = Rule {
            expected_src: expected,
            src,
            dst,
            strict: st.policy.strict,
            punt_mismatch: st.policy.handover,
            tos,
            punt_rtcp: !self.is_rtcp && !st.muxed,
        };
        if st.kernel == Some(rule) {
            return;
        }
        match offload.install(self.local, &rule) {
            Ok(()) => {
                tracing::debug!(local = %self.local, ?rule, "Kernelizing media stream");
                // A replaced rule keeps its kernel counters; a new one starts at 0.
                if st.kernel.is_none() {
                    st.kernel_seen = KernelCounters::default();
                }
                st.kernel = Some(rule);
                // The rule replaced the steering flow of this address.
                st.steered = false;
                self.offloaded.store(true, Relaxed);
            }
            Err(e) => {
                // The backend counts and logs refusals (once per episode: a
                // full table would otherwise log every new stream). The
                // stream stays in userspace until its path changes.
                tracing::debug!(local = %self.local, error = %format!("{e:#}"), "Kernel refused media stream");
                st.kernel_failed = true;
            }
        }
    }

    /// Removes this socket's kernel rule (signalling changed, or its peer
    /// moved), merging its last counters first.
    pub fn unoffload(&self, reason: &str) {
        let mut st = self.state();
        self.unoffload_locked(&mut st, reason);
    }

    /// [`MediaSocket::unoffload`] for a caller that holds the state lock and
    /// changes the state in the same critical section (so the relay cannot
    /// re-install a rule for the old path in between).
    pub fn unoffload_locked(&self, st: &mut SocketState, reason: &str) {
        st.kernel_failed = false;
        st.steer_failed = false;
        let Some(offload) = &self.offload else { return };
        if st.kernel.is_none() {
            return;
        }
        self.merge_locked(st);
        offload.remove(self.local);
        st.kernel = None;
        self.offloaded.store(false, Relaxed);
        tracing::debug!(local = %self.local, reason, "Removing media stream from kernel");
    }

    /// Adds what the kernel forwarded since the last call to the counters
    /// (called once a second by the timer, and before replies that report
    /// them).
    pub fn merge_kernel(&self) {
        let mut st = self.state();
        self.merge_locked(&mut st);
    }

    fn merge_locked(&self, st: &mut SocketState) {
        let Some(offload) = &self.offload else { return };
        if st.kernel.is_none() {
            return;
        }
        let Some(now) = offload.counters(self.local) else {
            return;
        };
        let seen = st.kernel_seen;
        // Counters restart when an entry is re-created: then all of `now` is new.
        let base = if now.packets < seen.packets || now.bytes < seen.bytes {
            KernelCounters::default()
        } else {
            seen
        };
        let dp = now.packets.saturating_sub(base.packets);
        let db = now.bytes.saturating_sub(base.bytes);
        let de = now.errors.saturating_sub(base.errors);
        st.ssrcs.add_kernel(dp, db);
        for c in [&self.stats_in, &self.kernel_in] {
            c.packets.fetch_add(dp, Relaxed);
            c.bytes.fetch_add(db, Relaxed);
            c.errors.fetch_add(de, Relaxed);
            if dp > 0 {
                c.last_ms.fetch_max(now.last_ms, Relaxed);
            }
        }
        // Only atomics of the socket packets leave from: no second lock.
        let out = if self.is_rtcp {
            &st.peer_rtcp
        } else {
            &st.peer_rtp
        };
        if let Some(t) = out.upgrade() {
            t.stats_out.packets.fetch_add(dp, Relaxed);
            t.stats_out.bytes.fetch_add(db, Relaxed);
            if dp > 0 {
                t.stats_out.last_ms.fetch_max(now.last_ms, Relaxed);
            }
        }
        st.kernel_seen = now;
    }

    /// Takes over a kernel flow a previous process installed for this
    /// socket (a restart with the calls restored): its rule, its confirmed
    /// source, and its counters so far as already counted (they belong to
    /// the previous process's statistics). Refused (`false`) unless the
    /// rule leaves from this socket's peer and nothing filters the stream:
    /// a flow of another path must not be taken for this one.
    pub fn adopt(&self, rule: Rule, counters: KernelCounters) -> bool {
        let mut st = self.state();
        let peer = if self.is_rtcp {
            &st.peer_rtcp
        } else {
            &st.peer_rtp
        };
        // (Atomic reads of the peer: no second lock.)
        let from_peer = peer
            .upgrade()
            .is_some_and(|p| p.local == rule.src && !p.bundled());
        if !from_peer || st.filter.active() || st.transform.active() || self.bundled() {
            return false;
        }
        st.endpoint.adopt(rule.expected_src);
        st.kernel = Some(rule);
        st.kernel_seen = counters;
        st.kernel_failed = false;
        self.offloaded.store(true, Relaxed);
        true
    }

    /// Whether the kernel forwards this socket's packets now.
    pub fn offloaded(&self) -> bool {
        self.offloaded.load(Relaxed)
    }

    /// The first RTP packet received here, if any.
    pub fn rtp_seen(&self) -> Option<RtpSeen> {
        match self.rtp_seen.load(Relaxed) {
            0 => None,
            v => Some(RtpSeen(v)),
        }
    }

    /// Per-SSRC counters of the RTP received, in the order first seen.
    pub fn ssrcs(&self) -> Vec<SsrcStats> {
        self.state().ssrcs.entries()
    }

    /// Whether an offload backend exists at all.
    pub fn kernel_capable(&self) -> bool {
        self.offload.is_some()
    }

    /// A snapshot for replies.
    pub fn info(&self) -> StreamInfo {
        let st = self.state();
        StreamInfo {
            local: self.local,
            is_rtcp: self.is_rtcp,
            endpoint: st.endpoint.destination(&st.policy),
            advertised: st.endpoint.sdp,
            confirmed: st.endpoint.confirmed,
            kernelized: st.kernel.is_some(),
            kernel_capable: self.kernel_capable(),
            strict: st.policy.strict,
            handover: st.policy.handover,
            last_packet_ms: self.stats_in.last_ms.load(Relaxed),
            last_user_packet_ms: self.user_last_ms.load(Relaxed),
            last_kernel_packet_ms: self.kernel_in.last_ms.load(Relaxed),
            received: Totals::of(&self.stats_in),
            sent: Totals::of(&self.stats_out),
            ssrcs: st.ssrcs.entries(),
        }
    }
}

impl Drop for MediaSocket {
    fn drop(&mut self) {
        // Unconditionally: a rule must never outlive its socket (the port goes
        // back to the pool and the next call would inherit the old path).
        if let Some(offload) = &self.offload {
            offload.remove(self.local);
        }
    }
}
