//! What the sender's SDP does to the call's media: its endpoints, direction
//! and mux offer; who multiplexes RTCP; and which sockets each side gets.

use std::net::SocketAddr;

use super::{OfferAnswer, Side};
use crate::call::sockets::{allocate_sockets, Sockets};
use crate::call::{Call, Calls, Error, PartyMedia, MAX_PREVIOUS_SOCKETS};
use crate::relay::learning::Policy;
use crate::sdp::{Direction, Session};

impl OfferAnswer {
    /// The sender's media from its SDP; the receiver gets a placeholder
    /// for each new section.
    pub(super) fn update_sender_media(
        &self,
        call: &mut Call,
        snd: usize,
        rcv: usize,
        sdp: &Session,
    ) {
        for (i, m) in sdp.media.iter().enumerate() {
            let announced = m.address(sdp);
            // A zero address is hold, except as a trickle-ICE placeholder
            // (`c=0.0.0.0`, port 9 or `a=ice-options:trickle`, with ICE
            // credentials): the address comes with the candidates later.
            let zero =
                announced.is_some_and(|a| a.is_unspecified()) && !trickle_placeholder(m, sdp);
            let address = self
                .media_address
                .or(self.source_address)
                .or(announced)
                .filter(|a| !a.is_unspecified());
            let rtp = address
                .filter(|_| m.port != 0)
                .map(|a| SocketAddr::new(a, m.port));
            let rtcp = match m.rtcp_attr() {
                Some((port, addr)) => address.map(|a| SocketAddr::new(addr.unwrap_or(a), port)),
                None => rtp.and_then(|e| Some(SocketAddr::new(e.ip(), e.port().checked_add(1)?))),
            };
            let pm = PartyMedia {
                kind: m.kind.clone(),
                protocol: m.protocol.clone(),
                rtp_endpoint: rtp,
                rtcp_endpoint: rtcp,
                mux_offered: m.rtcp_mux() && !self.rtcp_mux.reject,
                mux: false,
                mux_override: false,
                direction: m.direction(sdp),
                zero_address: zero,
                rejected: m.port == 0,
                sockets: None,
                previous: Vec::new(),
                negotiated: Default::default(),
                loop_check: false,
                srtp: Default::default(),
                webrtc: None,
                bundle: None,
            };
            let medias = &mut call.parties[snd].medias;
            match medias.get_mut(i) {
                Some(old) => {
                    *old = PartyMedia {
                        sockets: old.sockets.take(),
                        previous: std::mem::take(&mut old.previous),
                        negotiated: std::mem::take(&mut old.negotiated),
                        srtp: std::mem::take(&mut old.srtp),
                        webrtc: old.webrtc.take(),
                        // Decided again from this SDP (`update_bundle`).
                        bundle: old.bundle.take(),
                        mux: old.mux,
                        mux_override: old.mux_override,
                        ..pm
                    };
                }
                None => medias.push(pm),
            }
            let rmedias = &mut call.parties[rcv].medias;
            if rmedias.len() <= i {
                rmedias.push(PartyMedia {
                    kind: m.kind.clone(),
                    protocol: m.protocol.clone(),
                    rtp_endpoint: None,
                    rtcp_endpoint: None,
                    mux_offered: false,
                    mux: false,
                    mux_override: false,
                    direction: Direction::SendRecv,
                    zero_address: false,
                    rejected: false,
                    sockets: None,
                    previous: Vec::new(),
                    negotiated: Default::default(),
                    loop_check: false,
                    srtp: Default::default(),
                    webrtc: None,
                    bundle: None,
                });
            } else if self.side == Side::Offer && (m.port != 0 || m.has_attr("bundle-only")) {
                // A section the receiver rejected earlier is offered again:
                // it answers anew, so it gets ports (upstream re-opens it).
                rmedias[i].rejected = false;
            }
        }
    }

    /// Who multiplexes RTCP. The offerer muxes once the answer accepts (or
    /// at once with `demux`, where we accept without offering onward); the
    /// answerer muxes if its answer says so (or `require` forces it).
    pub(super) fn decide_mux(&self, call: &mut Call, snd: usize, rcv: usize, n: usize) {
        let demux = self.rtcp_mux.demux;
        for i in 0..n {
            let announced = call.parties[snd].medias[i].mux_offered;
            match self.side {
                Side::Offer => {
                    let m = &mut call.parties[snd].medias[i];
                    // `demux`/`accept` in the offer decide for the offerer
                    // whatever the answer says; remembered for the answer.
                    // So does a bundle: RTCP comes on its one transport
                    // (RFC 9143 §9.3), demultiplexed towards the answerer.
                    m.mux_override = demux || self.rtcp_mux.accept || m.bundle.is_some();
                    m.mux = announced && (m.mux_override || m.mux);
                    let r = &mut call.parties[rcv].medias[i];
                    // `demux` takes a muxing receiver off it (upstream's
                    // __rtcp_mux_set).
                    r.mux = (r.mux && !demux) || self.rtcp_mux.require;
                }
                Side::Answer => {
                    call.parties[snd].medias[i].mux = announced;
                    let r = &mut call.parties[rcv].medias[i];
                    r.mux = r.mux_offered && (announced || demux || r.mux_override);
                }
            }
        }
    }

    /// The ports advertised to a party are tied to the endpoint its *peer*
    /// announced (upstream's endpoint maps): a re-offer from a new caller
    /// endpoint gives the callee new ports, a return to an earlier endpoint
    /// brings the earlier ports back, and a repeated offer keeps them.
    pub(super) fn allocate(
        &self,
        calls: &Calls,
        call: &mut Call,
        snd: usize,
        rcv: usize,
        sdp: &Session,
        policy: Policy,
    ) -> Result<(), Error> {
        let tos = call.tos;
        for i in 0..sdp.media.len() {
            let snd_v6 = sdp.media[i].address(sdp).is_some_and(|a| a.is_ipv6());
            // `address family` picks the family of the SDP written (in an
            // answer too: the offerer is then told the other family).
            let rcv_v6 = match self.side {
                Side::Offer => self.ipv6.unwrap_or(snd_v6),
                Side::Answer => self.ipv6.unwrap_or_else(|| {
                    call.parties[rcv].medias[i]
                        .sockets
                        .as_ref()
                        .map(|s| s.rtp.local.is_ipv6())
                        .unwrap_or(snd_v6)
                }),
            };
            for (idx, other, v6) in [(snd, rcv, snd_v6), (rcv, snd, rcv_v6)] {
                let held = call.port_pairs();
                let key = call.parties[other].medias[i].rtp_endpoint;
                let iface = calls
                    .interfaces
                    .resolve(call.parties[idx].interface.as_deref());
                let m = &mut call.parties[idx].medias[i];
                if m.rejected || call_media_rejected(sdp, i) {
                    m.sockets = None;
                    continue;
                }
                let latch = self.port_latching;
                let fits = |s: &Sockets, exact: bool| {
                    s.rtp.local.is_ipv6() == v6
                        && (s.key == key || (!exact && (latch || s.key.is_none() || key.is_none())))
                };
                if m.sockets.as_ref().is_some_and(|s| fits(s, false)) {
                    if let (Some(s), Some(k)) = (m.sockets.as_mut(), key) {
                        s.key = Some(k);
                    }
                    continue;
                }
                let old = m.sockets.take();
                if let Some(s) = &old {
                    s.retire();
                }
                let earlier = m.previous.iter().position(|s| fits(s, true));
                let sockets = match earlier {
                    Some(p) => m.previous.remove(p),
                    None => {
                        let addr = iface.address(!v6).ok_or_else(|| {
                            tracing::error!(interface = %iface.name, ipv6 = v6, "No local address of the requested family");
                            Error::OutOfPorts
                        })?;
                        let single = m.mux && self.rtcp_mux.require && idx == rcv;
                        if held >= super::super::MAX_PORT_PAIRS {
                            tracing::warn!(call_id = %call.id, pairs = held, "Call refused more ports: at its limit");
                            return Err(Error::TooManyPorts);
                        }
                        let planned = calls.next_planned(&call.id);
                        let s = allocate_sockets(
                            addr,
                            single,
                            key,
                            policy,
                            tos,
                            calls.offload.as_ref(),
                            &calls.media,
                            planned,
                        )?;
                        call.ports.push(s.rtp.local);
                        s
                    }
                };
                m.sockets = Some(sockets);
                if let Some(old) = old {
                    m.previous.push(old);
                    if m.previous.len() > MAX_PREVIOUS_SOCKETS {
                        m.previous.remove(0);
                    }
                }
            }
            for idx in [snd, rcv] {
                self.allocate_alternates(calls, call, idx, i, policy);
            }
        }

        Ok(())
    }

    /// A party we give ICE gets sockets on every other address of the
    /// interface of its family too, each one more host candidate (as
    /// upstream); ICE may select any. Once per socket set; an address
    /// without free ports (or beyond the call's port limit) is left out
    /// (the call does not need it); a party without ICE of ours (any
    /// more) keeps only the first. Their ports are not journaled: after a
    /// restart or failover the replayed offer gives them other ports, and
    /// a call whose ICE had selected one needs ICE to select again.
    fn allocate_alternates(
        &self,
        calls: &Calls,
        call: &mut Call,
        idx: usize,
        i: usize,
        policy: Policy,
    ) {
        let tos = call.tos;
        let iface = calls
            .interfaces
            .resolve(call.parties[idx].interface.as_deref());
        let held = call.port_pairs();
        let m = &mut call.parties[idx].medias[i];
        // ICE of ours with it, or offered to it (an early answer without
        // ICE may be followed by a fork's with it).
        // A bundled section's transport is its head's.
        let ours = (m.negotiated.ice.is_some() || m.negotiated.ice_sent.is_some())
            && !m.negotiated.ice_passthrough
            && !m.bundle_member(i);
        if !ours {
            // No (more) ICE of ours with it: one address, the one on `c=`.
            if let Some(s) = m.sockets.as_mut().filter(|s| !s.alternates.is_empty()) {
                for a in std::mem::take(&mut s.alternates) {
                    a.retire();
                }
                s.selected = [0, 0];
            }
            return;
        }
        let Some(s) = m.sockets.as_ref().filter(|s| s.alternates.is_empty()) else {
            return;
        };
        let (primary, key, single) = (s.rtp.local, s.key, s.rtcp.is_none());
        let others: Vec<_> = iface
            .addrs
            .iter()
            .filter(|a| a.local.is_ipv4() == primary.is_ipv4() && a.local != primary.ip())
            .take(crate::relay::ice_agent::MAX_LOCALS - 1)
            .collect();
        if held + others.len() > super::super::MAX_PORT_PAIRS {
            tracing::warn!(call_id = %call.id, pairs = held, "No ICE candidates on the interface's other addresses: the call is at its port limit");
            return;
        }
        let mut alternates = Vec::with_capacity(others.len());
        for addr in others {
            match allocate_sockets(
                addr,
                single,
                key,
                policy,
                tos,
                calls.offload.as_ref(),
                &calls.media,
                None,
            ) {
                Ok(s) => alternates.push(s),
                Err(e) => {
                    tracing::warn!(call_id = %call.id, address = %addr.local, error = %e, "No ICE candidate on this address");
                }
            }
        }
        if let Some(s) = call.parties[idx].medias[i].sockets.as_mut() {
            s.alternates = alternates;
        }
    }
}

fn trickle_placeholder(m: &crate::sdp::Media, sdp: &Session) -> bool {
    let session_or_media = |name: &str| m.attr(name).or_else(|| sdp.attr(name));
    let trickle = session_or_media("ice-options")
        .and_then(|a| a.value.as_deref())
        .is_some_and(|v| v.split_whitespace().any(|o| o == "trickle"));
    session_or_media("ice-ufrag").is_some() && (m.port == 9 || trickle)
}

/// Whether a media section was rejected by the SDP being processed.
/// (or is passed through without relaying).
fn call_media_rejected(sdp: &Session, i: usize) -> bool {
    sdp.media
        .get(i)
        .is_some_and(|m| m.port == 0 || m.is_passthrough())
}
