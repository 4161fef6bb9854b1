//! Offer/answer: update the call model from a party's SDP, allocate and wire
//! sockets, and write the SDP for the other party.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::{
    allocate_sockets, Call, Calls, Party, PartyMedia, SdpOutState, Sockets, MAX_PARTIES,
    MAX_PREVIOUS_SOCKETS,
};
use crate::clock;
use crate::config::EndpointLearning;
use crate::ng::frame::NgError;
use crate::ng::request::Request;
use crate::relay::learning::Policy;
use crate::relay::MediaSocket;
use crate::sdp::{self, Direction, MediaOut, Origin, RtcpOut, Session, SessionOut};

/// Which half of the exchange a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `offer`: from-tag sends the SDP.
    Offer,
    /// `answer`: to-tag sends the SDP.
    Answer,
}

/// Everything offer/answer needs from a request, parsed once.
#[derive(Debug, Clone)]
pub struct Negotiation {
    /// Offer or answer.
    pub side: Side,
    /// `call-id`.
    pub call_id: String,
    /// `from-tag`.
    pub from_tag: String,
    /// `to-tag`.
    pub to_tag: Option<String>,
    /// `via-branch`.
    pub via_branch: Option<String>,
    /// `replace` options (and `replace-*` flags), canonical.
    pub replace: BTreeSet<String>,
    /// `rtcp-mux` options (and `rtcp-mux-*` flags), canonical.
    pub rtcp_mux: BTreeSet<String>,
    /// Interface facing the sender of the SDP.
    pub from_interface: Option<String>,
    /// Interface facing the receiver.
    pub to_interface: Option<String>,
    /// `address-family`: `Some(true)` for IPv6.
    pub ipv6: Option<bool>,
    /// `media-address`.
    pub media_address: Option<IpAddr>,
    /// `received-from` address when `SIP source address` is set.
    pub source_address: Option<IpAddr>,
    /// Learning and source policy.
    pub policy: Policy,
    /// `TOS`.
    pub tos: Option<u8>,
    /// `label`.
    pub label: Option<String>,
    /// `original sendrecv`.
    pub original_sendrecv: bool,
    /// `no rtcp attribute`.
    pub no_rtcp_attr: bool,
    /// `full rtcp attribute`.
    pub full_rtcp_attr: bool,
}

fn bad(what: &'static str) -> NgError {
    NgError::Other(what)
}

impl Negotiation {
    /// Extracts the options from a request.
    pub fn from_request(
        req: &Request,
        side: Side,
        default_learning: EndpointLearning,
    ) -> Result<Negotiation, NgError> {
        let call_id = req
            .nonempty("call-id")
            .ok_or(bad("No call-id in message"))?
            .to_owned();
        let from_tag = req
            .nonempty("from-tag")
            .ok_or(bad("No from-tag in message"))?
            .to_owned();
        let to_tag = req.nonempty("to-tag").map(str::to_owned);
        if side == Side::Answer && to_tag.is_none() {
            return Err(bad("No to-tag in message"));
        }
        let mut replace: BTreeSet<String> = req.words("replace").into_iter().collect();
        let mut rtcp_mux: BTreeSet<String> = req.words("rtcp-mux").into_iter().collect();
        for f in &req.flags {
            if let Some(r) = f.strip_prefix("replace-") {
                replace.insert(r.to_owned());
            } else if let Some(r) = f.strip_prefix("rtcp-mux-") {
                rtcp_mux.insert(r.to_owned());
            }
        }
        if replace.contains("session-connection") {
            tracing::info!("replace: session-connection is not supported anymore (no session-level c= is written)");
        }
        let direction = req.words("direction");
        let from_interface = req
            .nonempty("from-interface")
            .map(str::to_owned)
            .or_else(|| direction.first().cloned())
            .or_else(|| req.nonempty("interface").map(str::to_owned));
        let to_interface = req
            .nonempty("to-interface")
            .map(str::to_owned)
            .or_else(|| direction.get(1).cloned())
            .or_else(|| req.nonempty("interface").map(str::to_owned));
        let ipv6 = match req
            .str("address-family")
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None => None,
            Some("IP4") => Some(false),
            Some("IP6") => Some(true),
            Some(_) => {
                tracing::warn!("Unrecognised address-family, ignored");
                None
            }
        };
        let media_address = req.nonempty("media-address").and_then(|a| a.parse().ok());
        let source_address = if req.flag("sip-source-address") {
            match req.get("received-from") {
                Some(crate::ng::value::Value::List(l)) => l
                    .get(1)
                    .and_then(|v| v.as_str())
                    .and_then(|a| a.parse().ok()),
                _ => None,
            }
        } else {
            None
        };
        let mode = match req.str("endpoint-learning") {
            Some("off") => EndpointLearning::Off,
            Some("immediate") => EndpointLearning::Immediate,
            Some("delayed") => EndpointLearning::Delayed,
            Some("heuristic") => EndpointLearning::Heuristic,
            _ => default_learning,
        };
        let policy = Policy {
            mode,
            strict: req.flag("strict-source"),
            handover: req.flag("media-handover"),
            asymmetric: req.flag("asymmetric"),
        };
        let tos = match req.int("tos") {
            Ok(Some(t)) => u8::try_from(t).ok(),
            _ => None,
        };
        match req.str("ice").map(str::to_ascii_lowercase).as_deref() {
            None | Some("remove") | Some("default") => {}
            Some(other) => {
                tracing::warn!("ICE '{other}' is not supported: ICE attributes are removed")
            }
        }
        Ok(Negotiation {
            side,
            call_id,
            from_tag,
            to_tag,
            via_branch: req.nonempty("via-branch").map(str::to_owned),
            replace,
            rtcp_mux,
            from_interface,
            to_interface,
            ipv6,
            media_address,
            source_address,
            policy,
            tos,
            label: req.nonempty("label").map(str::to_owned),
            original_sendrecv: req.flag("original-sendrecv"),
            no_rtcp_attr: req.flag("no-rtcp-attribute"),
            full_rtcp_attr: req.flag("full-rtcp-attribute"),
        })
    }

    /// Runs the offer or answer and returns the SDP for the other party.
    pub fn run(&self, calls: &Calls, sdp: &Session) -> Result<Vec<u8>, NgError> {
        let mut map = calls.lock();
        let new_call = !map.contains_key(&self.call_id);
        if new_call && self.side == Side::Answer {
            return Err(bad("Unknown call-id"));
        }
        if new_call {
            calls.check_session_limit(map.len())?;
        }
        let call = map
            .entry(self.call_id.clone())
            .or_insert_with(|| Call::new(&self.call_id));
        let result = self.negotiate(calls, call, sdp);
        if new_call && result.is_err() {
            // Nothing of a failed new call survives: its ports close here.
            map.remove(&self.call_id);
        }
        result
    }

    fn parties(&self, call: &mut Call) -> Result<(usize, usize), NgError> {
        let (sender_tag, receiver_tag) = match self.side {
            Side::Offer => (Some(&self.from_tag), self.to_tag.as_ref()),
            Side::Answer => (self.to_tag.as_ref(), Some(&self.from_tag)),
        };
        if receiver_tag == sender_tag {
            // A party cannot be its own peer (media would loop back to it).
            return Err(bad("Invalid dialogue association"));
        }
        match self.side {
            Side::Offer => {
                let a = match call.party(&self.from_tag) {
                    Some(i) => i,
                    None => {
                        add_party(call, Party::new(sender_tag.cloned()))?;
                        call.parties.len() - 1
                    }
                };
                let b = match receiver_tag.and_then(|t| call.party(t)) {
                    Some(i) => i,
                    None => match call.parties[a].peer {
                        Some(i) => i,
                        None => {
                            let mut p = Party::new(receiver_tag.cloned());
                            p.via_branch = self.via_branch.clone();
                            add_party(call, p)?;
                            call.parties.len() - 1
                        }
                    },
                };
                call.parties[a].peer = Some(b);
                call.parties[b].peer = Some(a);
                Ok((a, b))
            }
            Side::Answer => {
                let a = call
                    .party(&self.from_tag)
                    .ok_or(bad("Invalid dialogue association"))?;
                let to_tag = self.to_tag.as_deref().unwrap_or_default();
                let b = match call.party(to_tag) {
                    Some(b) => b,
                    // The callee gets its tag with the answer; a later answer
                    // with another tag (a different fork) takes over the leg.
                    None => call.parties[a]
                        .peer
                        .ok_or(bad("Invalid dialogue association"))?,
                };
                call.parties[b].tag = Some(to_tag.to_owned());
                call.parties[a].peer = Some(b);
                call.parties[b].peer = Some(a);
                Ok((b, a))
            }
        }
    }

    fn negotiate(&self, calls: &Calls, call: &mut Call, sdp: &Session) -> Result<Vec<u8>, NgError> {
        let (snd, rcv) = self.parties(call)?;
        // An answer adds its source flags to the offer's; it does not clear them.
        let policy = match (self.side, call.policy) {
            (Side::Answer, Some(offer)) => Policy {
                mode: offer.mode,
                strict: offer.strict || self.policy.strict,
                handover: offer.handover || self.policy.handover,
                asymmetric: offer.asymmetric || self.policy.asymmetric,
            },
            _ => self.policy,
        };
        call.policy = Some(policy);
        call.last_signal_ms = clock::now_ms();
        if self.side == Side::Answer {
            call.answered = true;
        }
        if let Some(t) = self.tos.or(calls.settings.tos) {
            call.tos = Some(t);
        }
        if let Some(l) = &self.label {
            call.parties[snd].label = Some(l.clone());
        }
        for (idx, iface) in [(snd, &self.from_interface), (rcv, &self.to_interface)] {
            let p = &mut call.parties[idx];
            if p.interface.is_none() {
                p.interface = Some(
                    calls
                        .interfaces
                        .get_or_default(iface.as_deref())
                        .name
                        .clone(),
                );
            }
        }

        // 1. The sender's media from its SDP.
        for (i, m) in sdp.media.iter().enumerate() {
            let announced = m.address(sdp);
            let zero = announced.is_some_and(|a| a.is_unspecified());
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
                mux_offered: m.rtcp_mux() && !self.rtcp_mux.contains("reject"),
                mux: false,
                mux_override: false,
                direction: m.direction(sdp),
                zero_address: zero,
                rejected: m.port == 0,
                sockets: None,
                previous: Vec::new(),
            };
            let medias = &mut call.parties[snd].medias;
            match medias.get_mut(i) {
                Some(old) => {
                    *old = PartyMedia {
                        sockets: old.sockets.take(),
                        previous: std::mem::take(&mut old.previous),
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
                });
            }
        }

        // 2. Who multiplexes RTCP. The offerer muxes once the answer accepts
        // (or at once with `demux`, where we accept without offering onward);
        // the answerer muxes if its answer says so (or `require` forces it).
        let demux = self.rtcp_mux.contains("demux");
        for i in 0..sdp.media.len() {
            let announced = call.parties[snd].medias[i].mux_offered;
            match self.side {
                Side::Offer => {
                    let m = &mut call.parties[snd].medias[i];
                    // `demux`/`accept` in the offer decide for the offerer
                    // whatever the answer says; remembered for the answer.
                    m.mux_override = demux || self.rtcp_mux.contains("accept");
                    m.mux = announced && (m.mux_override || m.mux);
                    let r = &mut call.parties[rcv].medias[i];
                    r.mux = r.mux || self.rtcp_mux.contains("require");
                }
                Side::Answer => {
                    call.parties[snd].medias[i].mux = announced;
                    let r = &mut call.parties[rcv].medias[i];
                    r.mux = r.mux_offered && (announced || demux || r.mux_override);
                }
            }
        }

        // 3. Sockets. A failure (out of ports) still wires what was
        // committed, so media keeps flowing on the streams that have sockets.
        let allocated = self.allocate(calls, call, snd, rcv, sdp, policy);

        // 4. Wire both directions and restart learning.
        wire(call, snd, rcv, policy);
        allocated?;

        // 5. The SDP for the receiver.
        Ok(self.write_sdp(call, snd, rcv, sdp))
    }

    /// The ports advertised to a party are tied to the endpoint its *peer*
    /// announced (upstream's endpoint maps): a re-offer from a new caller
    /// endpoint gives the callee new ports, a return to an earlier endpoint
    /// brings the earlier ports back, and a repeated offer keeps them.
    fn allocate(
        &self,
        calls: &Calls,
        call: &mut Call,
        snd: usize,
        rcv: usize,
        sdp: &Session,
        policy: Policy,
    ) -> Result<(), NgError> {
        let tos = call.tos;
        for i in 0..sdp.media.len() {
            let snd_v6 = sdp.media[i].address(sdp).is_some_and(|a| a.is_ipv6());
            let rcv_v6 = match self.side {
                Side::Offer => self.ipv6.unwrap_or(snd_v6),
                Side::Answer => call.parties[rcv].medias[i]
                    .sockets
                    .as_ref()
                    .map(|s| s.rtp.local.is_ipv6())
                    .unwrap_or(snd_v6),
            };
            for (idx, other, v6) in [(snd, rcv, snd_v6), (rcv, snd, rcv_v6)] {
                let key = call.parties[other].medias[i].rtp_endpoint;
                let iface = calls
                    .interfaces
                    .get_or_default(call.parties[idx].interface.as_deref());
                let m = &mut call.parties[idx].medias[i];
                if m.rejected || call_media_rejected(sdp, i) {
                    m.sockets = None;
                    continue;
                }
                let fits = |s: &Sockets, exact: bool| {
                    s.rtp.local.is_ipv6() == v6
                        && (s.key == key || (!exact && (s.key.is_none() || key.is_none())))
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
                            bad("Ran out of ports")
                        })?;
                        let single = m.mux && self.rtcp_mux.contains("require") && idx == rcv;
                        allocate_sockets(
                            addr,
                            single,
                            key,
                            policy,
                            tos,
                            calls.offload.as_ref(),
                            &calls.media,
                        )?
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
        }

        Ok(())
    }

    fn write_sdp(&self, call: &mut Call, snd: usize, rcv: usize, sdp: &Session) -> Vec<u8> {
        let mut media_out = Vec::with_capacity(sdp.media.len());
        for (i, m) in sdp.media.iter().enumerate() {
            let smedia = &call.parties[snd].medias[i];
            let rmedia = &call.parties[rcv].medias[i];
            let Some(sockets) = rmedia.sockets.as_ref().filter(|_| !smedia.rejected) else {
                let v6 = m.address(sdp).is_some_and(|a| a.is_ipv6());
                media_out.push(MediaOut {
                    port: 0,
                    address: zero(v6),
                    direction: m.direction(sdp),
                    rtcp: RtcpOut::None,
                    rtcp_mux: false,
                });
                continue;
            };
            let port = sockets.rtp.local.port();
            let hold = smedia.zero_address && !self.replace.contains("zero-address");
            let address = if hold {
                zero(sockets.advertised.is_ipv6())
            } else {
                sockets.advertised
            };
            let mut direction = m.direction(sdp);
            if hold && !self.original_sendrecv {
                direction = match direction {
                    Direction::SendRecv => Direction::SendOnly,
                    Direction::RecvOnly => Direction::Inactive,
                    d => d,
                };
            }
            // What the receiver is told about RTCP multiplexing.
            let (mux_attr, rtcp_on_rtp) = match self.side {
                Side::Offer => {
                    let require = self.rtcp_mux.contains("require");
                    let offer = !self.rtcp_mux.contains("reject")
                        && !self.rtcp_mux.contains("demux")
                        && (smedia.mux_offered || self.rtcp_mux.contains("offer"));
                    (require || offer, require)
                }
                Side::Answer => (rmedia.mux, rmedia.mux),
            };
            let rtcp_port = if rtcp_on_rtp || sockets.rtcp.is_none() {
                port
            } else {
                port + 1
            };
            let rtcp = if self.no_rtcp_attr {
                RtcpOut::None
            } else if self.full_rtcp_attr {
                RtcpOut::Full(rtcp_port, address)
            } else {
                RtcpOut::Port(rtcp_port)
            };
            media_out.push(MediaOut {
                port,
                address,
                direction,
                rtcp,
                rtcp_mux: mux_attr,
            });
        }
        let local = media_out
            .iter()
            .map(|m| m.address)
            .find(|a| !a.is_unspecified());
        let st = &mut call.parties[rcv].sdp_out;
        self.finish_sdp(sdp, st, local, &media_out)
    }

    /// Applies the `replace` options to `o=` and `s=`, then writes.
    fn finish_sdp(
        &self,
        sdp: &Session,
        st: &mut SdpOutState,
        local: Option<IpAddr>,
        media: &[MediaOut],
    ) -> Vec<u8> {
        let r = |o: &str| self.replace.contains(o);
        let mut origin = sdp.origin.clone();
        if let Some(local) = local.filter(|_| r("origin") || r("origin-full")) {
            origin.addr_type = if local.is_ipv4() { "IP4" } else { "IP6" }.into();
            origin.address = local.to_string();
        }
        if r("origin-full") {
            let pinned = st.origin.get_or_insert_with(|| Origin {
                username: "-".into(),
                session_id: rand::random::<u32>().to_string(),
                ..origin.clone()
            });
            origin.username = pinned.username.clone();
            origin.session_id = pinned.session_id.clone();
        }
        if r("username") {
            origin.username = st
                .origin
                .get_or_insert_with(|| origin.clone())
                .username
                .clone();
        }
        let name = if r("session-name") {
            st.name.get_or_insert_with(|| sdp.name.clone()).clone()
        } else {
            sdp.name.clone()
        };
        let mut out = sdp::write(
            sdp,
            &SessionOut {
                origin: origin.clone(),
                name: name.clone(),
            },
            media,
        );
        let body = without_origin(&out);
        let bump = r("force-increment-sdp-ver");
        if r("sdp-version") || bump || r("origin-full") {
            let input: u64 = origin.version.parse().unwrap_or(0);
            let changed = st.last_body.as_deref() != Some(body.as_slice());
            let version = match st.version {
                None => input,
                Some(v) if bump || changed => v.wrapping_add(1),
                Some(v) => v,
            };
            st.version = Some(version);
            if version.to_string() != origin.version {
                origin.version = version.to_string();
                out = sdp::write(sdp, &SessionOut { origin, name }, media);
            }
        }
        st.last_body = Some(body);
        out
    }
}

/// Whether a media section was rejected by the SDP being processed.
fn call_media_rejected(sdp: &Session, i: usize) -> bool {
    sdp.media.get(i).is_some_and(|m| m.port == 0)
}

/// Adds a party, refusing more than [`MAX_PARTIES`] per call.
fn add_party(call: &mut Call, p: Party) -> Result<(), NgError> {
    if call.parties.len() >= MAX_PARTIES {
        tracing::warn!(call_id = %call.id, "Too many parties in one call");
        return Err(bad("Invalid dialogue association"));
    }
    call.parties.push(p);
    Ok(())
}

fn zero(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// The SDP without its `o=` line (line two), for change detection.
fn without_origin(sdp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sdp.len());
    for (i, line) in sdp.split_inclusive(|&b| b == b'\n').enumerate() {
        if i != 1 {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Points each party's sockets at the other's and refreshes learning state.
/// A kernel rule goes whenever its path changes: its own party's endpoint,
/// its peer socket, or the address it sends to (the other party's endpoint);
/// the relay installs it again once the new path is confirmed.
fn wire(call: &mut Call, a: usize, b: usize, policy: Policy) {
    let now = Instant::now();
    let answered = call.answered;
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
            let peer_rtcp = match (&os.rtcp, po.mux) {
                (Some(r), false) => r,
                _ => &os.rtp,
            };
            let set = |s: &Arc<MediaSocket>, ep: Option<SocketAddr>, muxed: bool| {
                let peer_rtp = Arc::downgrade(&os.rtp);
                let peer_rtcp = Arc::downgrade(peer_rtcp);
                let mut st = s.state();
                let changed = other_moved
                    || st.policy != policy
                    || st.muxed != muxed
                    || st.endpoint.sdp != ep
                    || !st.peer_rtp.ptr_eq(&peer_rtp)
                    || !st.peer_rtcp.ptr_eq(&peer_rtcp);
                if changed {
                    s.unoffload_locked(&mut st, "signalling changed the stream");
                }
                st.policy = policy;
                st.muxed = muxed;
                st.peer_rtp = peer_rtp;
                st.peer_rtcp = peer_rtcp;
                st.endpoint.signal(ep, answered, now);
            };
            set(&ms.rtp, pm.rtp_endpoint, pm.mux);
            if let Some(r) = &ms.rtcp {
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

impl Calls {
    /// Refuses a new call when `--max-sessions` is reached.
    pub fn check_session_limit(&self, current: usize) -> Result<(), NgError> {
        let max = self.settings.max_sessions;
        if max >= 0 && current as i64 >= max {
            self.stats.rejected();
            return Err(NgError::Other("Parallel session limit reached"));
        }
        Ok(())
    }
}
