//! A party's local sockets for one media section: allocating them from an
//! interface's port pool, retiring them when new ones replace them, and
//! wiring both directions of a media section to each other.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::{Call, Error};
use crate::interfaces::LocalAddress;
use crate::relay::learning::{Endpoint, Policy};
use crate::relay::offload::Offload;
use crate::relay::poller::{Poller, Registration};
use crate::relay::{MediaSocket, SocketState};

/// Local sockets of one media section of one party.
pub struct Sockets {
    /// RTP socket.
    pub rtp: Arc<MediaSocket>,
    /// RTCP socket (absent when allocated for rtcp-mux only).
    pub rtcp: Option<Arc<MediaSocket>>,
    /// Address written into SDP for these sockets.
    pub advertised: IpAddr,
    /// The peer's endpoint these sockets are tied to (`None` = not yet known).
    pub key: Option<SocketAddr>,
    /// The relay's hold on the sockets; closing waits for it to let go.
    registrations: Vec<Registration>,
    /// The same ports' counterparts on the interface's other addresses of
    /// the family, for a party we give ICE: more host candidates (as
    /// upstream lists every address), and ICE may select one of them.
    pub alternates: Vec<Sockets>,
    /// Which set media to the party goes out of, per ICE component (0:
    /// these, `k`: `alternates[k - 1]`): the address of the selected pair.
    pub selected: [usize; 2],
}

impl Sockets {
    /// These and the alternates, in order (`set(k)` is the `k`th).
    /// Alternates have none of their own.
    pub fn sets(&self) -> impl Iterator<Item = &Sockets> {
        std::iter::once(self).chain(&self.alternates)
    }

    /// Every socket, RTP first, then the alternates'.
    pub fn all(&self) -> impl Iterator<Item = &Arc<MediaSocket>> {
        self.sets()
            .flat_map(|s| std::iter::once(&s.rtp).chain(s.rtcp.as_ref()))
    }

    /// The set of `k` (0: these, else an alternate's), if there is one.
    pub fn set(&self, k: usize) -> Option<&Sockets> {
        match k {
            0 => Some(self),
            k => self.alternates.get(k - 1),
        }
    }

    /// The sockets media to the party goes out of: RTP, and RTCP (the RTP
    /// socket when it muxes or has no RTCP socket).
    pub fn targets(&self, mux: bool) -> (&Arc<MediaSocket>, &Arc<MediaSocket>) {
        let rtp = &self.set(self.selected[0]).unwrap_or(self).rtp;
        let rtcp_set = self.set(self.selected[1]).unwrap_or(self);
        let rtcp = match (&rtcp_set.rtcp, mux) {
            (Some(r), false) => r,
            _ => rtp,
        };
        (rtp, rtcp)
    }

    /// Our addresses per ICE component: every set's RTP socket, and its
    /// RTCP socket where the party does not mux.
    pub fn locals(&self, mux: bool) -> [Vec<SocketAddr>; 2] {
        [
            self.sets().map(|s| s.rtp.local).collect(),
            match mux {
                true => Vec::new(),
                false => self
                    .sets()
                    .filter_map(|s| s.rtcp.as_ref().map(|r| r.local))
                    .collect(),
            },
        ]
    }

    /// Port pairs held: these and the alternates'.
    pub fn pairs(&self) -> usize {
        1 + self.alternates.len()
    }

    /// The sockets shown for the media (query, CLI): the selected set.
    pub fn shown(&self) -> impl Iterator<Item = &Arc<MediaSocket>> {
        let set = self.set(self.selected[0]).unwrap_or(self);
        std::iter::once(&set.rtp).chain(set.rtcp.as_ref())
    }

    /// Closes the sockets and returns once the relay has let go of them, so
    /// their ports are free.
    pub async fn close(self) {
        let alternates = self.alternates.into_iter().flat_map(|a| a.registrations);
        for r in self.registrations.into_iter().chain(alternates) {
            r.close().await;
        }
    }

    /// Follows the ICE pair `leg` selected: the set whose address it is
    /// becomes the one media to the party goes out of. Returns whether
    /// that changed (then the other party's sockets must send through it).
    pub fn follow_selection(&mut self, leg: &crate::relay::webrtc::Leg, mux: bool) -> bool {
        if self.alternates.is_empty() {
            return false;
        }
        let mut changed = false;
        for (slot, component) in [(0usize, 1u8), (1, 2)] {
            if component == 2 && mux {
                continue;
            }
            let Some(local) = leg.selected_local(component) else {
                continue;
            };
            let k = self.sets().position(|set| match component {
                1 => set.rtp.local == local,
                _ => set.rtcp.as_ref().is_some_and(|r| r.local == local),
            });
            if let Some(k) = k.filter(|&k| k != self.selected[slot]) {
                self.selected[slot] = k;
                changed = true;
            }
        }
        changed
    }

    /// Parks these sockets when newer ones replace them: out of the kernel and
    /// cut off from the peer (packets to them are dropped), but kept open so
    /// a return to their endpoint gets the same ports back.
    pub fn retire(&self) {
        for s in self.all() {
            let mut st = s.state();
            s.unoffload_locked(&mut st, "ports replaced");
            st.peer_rtp = std::sync::Weak::new();
            st.peer_rtcp = std::sync::Weak::new();
            // Its checks and handshakes no longer reach the party's ICE
            // agent or DTLS (they would pin them to these ports).
            st.webrtc = None;
            drop(st);
            s.set_bundle(None);
            s.set_via(None);
        }
    }
}

/// Allocates sockets for a party's media on `addr` and starts their loops;
/// on `planned` (a restored call's port) if it is free.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, the socket's whole setup"
)]
pub(crate) fn allocate_sockets(
    addr: &LocalAddress,
    single: bool,
    key: Option<SocketAddr>,
    policy: Policy,
    tos: Option<u8>,
    offload: Option<&Arc<dyn Offload>>,
    media: &Poller,
    planned: Option<SocketAddr>,
) -> Result<Sockets, Error> {
    let again = planned.filter(|p| p.ip() == addr.local).and_then(|p| {
        let pair = addr.pool.allocate_at(p.port(), single);
        if pair.is_none() {
            tracing::warn!(port = %p, "A restored call's port is taken; it gets another one");
        }
        pair
    });
    let pair = again
        .or_else(|| addr.pool.allocate(single))
        .ok_or_else(|| {
            tracing::error!(
                "Failed to get {} consecutive ports on interface {}",
                if single { 1 } else { 2 },
                addr.local
            );
            Error::OutOfPorts
        })?;
    let lease = Arc::new(pair.lease);
    let now = Instant::now();
    let state = || SocketState::new(Endpoint::new(None, now), policy, tos);
    let io = |e: std::io::Error| {
        tracing::error!(error = %e, "Failed to register media socket");
        Error::OutOfPorts
    };
    let rtp =
        MediaSocket::new(pair.rtp, false, lease.clone(), state(), offload.cloned()).map_err(io)?;
    let rtcp = match pair.rtcp {
        Some(s) => Some(MediaSocket::new(s, true, lease, state(), offload.cloned()).map_err(io)?),
        None => None,
    };
    let socks: Vec<&Arc<MediaSocket>> = std::iter::once(&rtp).chain(rtcp.as_ref()).collect();
    let tasks = media.register(&socks).map_err(io)?;
    let sockets = Sockets {
        rtp,
        rtcp,
        advertised: addr.advertised,
        key,
        registrations: tasks,
        alternates: Vec::new(),
        selected: [0, 0],
    };
    if let Some(tos) = tos {
        for s in sockets.all() {
            if let Err(e) = s.set_tos(tos) {
                tracing::warn!(error = %e, "Failed to set TOS");
            }
        }
    }
    Ok(sockets)
}

/// Points each party's sockets at the other's and refreshes learning state.
/// A kernel rule goes whenever its path changes: its own party's endpoint,
/// its peer socket, or the address it sends to (the other party's endpoint);
/// the relay installs it again once the new path is confirmed.
pub(crate) fn wire(call: &mut Call, a: usize, b: usize, policy: Policy) {
    let now = Instant::now();
    let answered = call.answered;
    let recrypt = call.recrypt;
    let n = call.parties[a]
        .medias
        .len()
        .min(call.parties[b].medias.len());
    for i in 0..n {
        // Whether each party announced a new RTP endpoint: read before any
        // socket of this media is updated.
        let moved = |p: usize| {
            let m = &call.parties[p].medias[i];
            m.sockets
                .as_ref()
                .is_some_and(|s| s.rtp.state().endpoint.sdp != m.rtp_endpoint)
        };
        let (a_moved, b_moved) = (moved(a), moved(b));
        for (me, other, other_moved) in [(a, b, b_moved), (b, a, a_moved)] {
            let (pm, po) = (&call.parties[me].medias[i], &call.parties[other].medias[i]);
            let (Some(ms), Some(os)) = (&pm.sockets, &po.sockets) else {
                continue;
            };
            // The other party is sent to through the sockets of its
            // selected ICE pair (the first set without ICE).
            let (peer_rtp, peer_rtcp) = os.targets(po.mux);
            let transform = pm.srtp.transform_muxed(&po.srtp, recrypt, (pm.mux, po.mux));
            // ICE and DTLS run on the RTP port, and on the RTCP port of a
            // party that does not mux (component 2, and its own DTLS
            // association).
            let set = |s: &Arc<MediaSocket>, ep: Option<SocketAddr>, muxed: bool| {
                let peer_rtp = Arc::downgrade(peer_rtp);
                let peer_rtcp = Arc::downgrade(peer_rtcp);
                let mut st = s.state();
                let changed = other_moved
                    || st.policy != policy
                    || st.muxed != muxed
                    || st.endpoint.sdp != ep
                    || !st.peer_rtp.ptr_eq(&peer_rtp)
                    || !st.peer_rtcp.ptr_eq(&peer_rtcp)
                    || !st.transform.same(&transform);
                if changed {
                    s.unoffload_locked(&mut st, "signalling changed the stream");
                }
                st.transform = transform.clone();
                // Not on the RTCP port of a party that announced mux
                // while the exchange is unanswered (it may well mux: a
                // handshake from there would meet its RTP port's).
                let rtcp_port_serves = !pm.mux && (!pm.mux_offered || answered);
                st.webrtc = pm.webrtc.clone().filter(|_| !s.is_rtcp || rtcp_port_serves);
                let component = if s.is_rtcp { 2 } else { 1 };
                if !st.webrtc.as_ref().is_some_and(|l| l.has_agent(component)) {
                    // No full agent (any more): nothing could lift a
                    // consent gate.
                    st.endpoint.gated = false;
                }
                st.policy = policy;
                st.muxed = muxed;
                st.peer_rtp = peer_rtp;
                st.peer_rtcp = peer_rtcp;
                st.endpoint.signal(ep, answered, now);
            };
            // The party's ICE pairs only our current sockets (replaced
            // ones are retired).
            if let Some(leg) = &pm.webrtc {
                leg.set_locals(ms.locals(pm.mux));
            }
            for set_k in ms.sets() {
                set(&set_k.rtp, pm.rtp_endpoint, pm.mux);
                if let Some(r) = &set_k.rtcp {
                    let ep = if pm.mux {
                        pm.rtp_endpoint
                    } else {
                        pm.rtcp_endpoint
                    };
                    set(r, ep, false);
                }
            }
        }
    }
    for p in [a, b] {
        super::offer_answer::link_bundles(call, p);
    }
}

/// Points the other party's sockets (all of them, alternates too) at the
/// sockets of party `me`'s selected ICE pair for media `i`: what it is sent
/// goes out of the address it selected. A kernel rule whose source socket
/// changes goes (the relay installs it again).
pub(crate) fn route(call: &Call, me: usize, other: usize, i: usize) {
    let (Some(pm), Some(po)) = (
        call.parties.get(me).and_then(|p| p.medias.get(i)),
        call.parties.get(other).and_then(|p| p.medias.get(i)),
    ) else {
        return;
    };
    let (Some(ms), Some(os)) = (&pm.sockets, &po.sockets) else {
        return;
    };
    let (rtp, rtcp) = ms.targets(pm.mux);
    let (rtp, rtcp) = (Arc::downgrade(rtp), Arc::downgrade(rtcp));
    for s in os.all() {
        let mut st = s.state();
        if !st.peer_rtp.ptr_eq(&rtp) || !st.peer_rtcp.ptr_eq(&rtcp) {
            s.unoffload_locked(&mut st, "ICE selected another of our addresses");
            st.peer_rtp = rtp.clone();
            st.peer_rtcp = rtcp.clone();
        }
    }
    // The bundle's other sections send through the selected address too.
    if pm.bundle.is_some() {
        super::offer_answer::link_bundles(call, me);
    }
}
