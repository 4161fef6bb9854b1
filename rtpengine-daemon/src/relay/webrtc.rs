//! A WebRTC leg on the relay: what arrives on a party's media port besides
//! RTP (RFC 7983: STUN is first byte 0–3, DTLS 20–63) and the SRTP keys the
//! DTLS handshake puts in force.
//!
//! One [`Leg`] per media section of a party that speaks ICE or DTLS-SRTP,
//! shared by its sockets. Signalling ([`Leg::configure`]) sets our ICE
//! credentials (and, for a full agent, the peer's and our role), our DTLS
//! role and the fingerprint the peer announced; the relay hands it the
//! peer's STUN and DTLS datagrams and sends what comes back; the call timer
//! drives ICE checks and DTLS retransmissions ([`Leg::tick`]). Keys
//! are installed only once the peer's certificate matches its fingerprint
//! (which may come with the answer after the handshake finished).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::ice::{self, Credentials};
use super::ice_agent::{self, Agent, Peer};
use super::srtp::Shared;
use crate::crypto::dtls::{Fingerprint, Identity, Role, Session, State};
use crate::crypto::srtp::{Context, Params};

/// Raised when ICE selected a pair on another of our addresses than
/// before: the call timer makes the other party's sockets send through
/// it at once (`Calls::follow_ice`), not at its next turn.
pub static ICE_SELECTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// What signalling decided for DTLS on a leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtlsPlan {
    /// Our role.
    pub role: Role,
    /// The peer's `a=fingerprint` (none yet: an offer we sent is not
    /// answered).
    pub remote: Option<Fingerprint>,
    /// The peer's `a=tls-id` (RFC 8842), if it sends one: a new one is a
    /// new association.
    pub tls_id: Option<String>,
}

/// What signalling decided for ICE checks of our own on a leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IcePlan {
    /// None: no ICE, or we are lite towards the party (we only answer).
    Lite,
    /// A full agent, but the offer is not answered yet: one already
    /// running goes on (a re-offer, with the party's new candidates), none
    /// starts.
    Pending(Peer),
    /// A full agent checking the peer; whether we control.
    Full(Peer, bool),
}

/// The leg's signalled state and its handshake.
#[derive(Default)]
struct LegState {
    /// Ours: checks made with them are answered.
    ice: Option<Credentials>,
    /// Ours before an ICE restart: still answered until the peer checks
    /// with the new ones (it learns them with our answer, RFC 8445 §9).
    ice_old: Option<Credentials>,
    /// The full agent's checks, per component: RTP (on the RTP port) and
    /// RTCP (on the RTCP port of a party that does not mux). None: we are
    /// lite towards the party, or it has no candidates of that component.
    agents: [Option<Agent>; 2],
    /// The ICE session's tie-breaker, one for both components (RFC 8445
    /// §7.1.1).
    tie: u64,
    /// We are a lite agent towards the party: its nomination alone
    /// selects. A full leg without an agent yet only answers.
    lite: bool,
    dtls: Option<DtlsPlan>,
    /// The DTLS association per ICE component: on the RTP port, and on
    /// the RTCP port of a party that does not mux (RFC 5764 §4.2: each
    /// component runs its own handshake and keys its own SRTP/SRTCP).
    assoc: [Assoc; 2],
    /// As a lite agent: our address of the pair the peer nominated, per
    /// component (a full agent knows its own).
    lite_selected: [Option<SocketAddr>; 2],
}

/// One DTLS association of a leg (one component).
#[derive(Default)]
struct Assoc {
    /// The session whose keys are in force (or the first handshake).
    session: Option<Session>,
    /// A handshake the peer started anew over a finished session: the old
    /// keys stay in force until it is done and verified.
    pending: Option<Session>,
    /// When the last handshake was started on the peer's hello: one per
    /// second at most (each costs a signature and a certificate flight).
    last_start: Option<Instant>,
    /// Where the peer's nominated (else first valid) check came from; DTLS
    /// goes there. Without ICE: the party's address, followed until its
    /// first DTLS datagram arrives.
    peer: Option<SocketAddr>,
    /// Our address `peer` reached (ICE): only that socket's timer turn
    /// retransmits DTLS (a party with several of our addresses).
    peer_local: Option<SocketAddr>,
    /// A DTLS datagram arrived from `peer` (no ICE: it is final).
    heard: bool,
    /// The keys in the slots come from the current session.
    keyed: bool,
}

impl Assoc {
    /// The handshake datagrams and timers drive: a restarted one while it
    /// runs, else the session in force.
    fn live(&mut self) -> Option<&mut Session> {
        match self.pending {
            Some(ref mut p) => Some(p),
            None => self.session.as_mut(),
        }
    }
}

/// What the timer's turn of a leg produced.
#[derive(Debug, Default)]
pub struct Tick {
    /// Datagrams (ICE checks, DTLS flights) and where they go.
    pub out: Vec<(SocketAddr, Vec<u8>)>,
    /// ICE consent to send expired (RFC 7675): no more media to the party
    /// until a pair is selected again.
    pub consent_lost: bool,
}

/// One party's WebRTC leg (see the module documentation).
pub struct Leg {
    identity: Arc<Identity>,
    state: Mutex<LegState>,
    /// Unprotects what the party sends (filled by the handshake).
    pub rx: Shared,
    /// Protects what is sent to it.
    pub tx: Shared,
    /// The same from the RTCP port's handshake (a party that does not
    /// mux): its SRTCP.
    pub rtcp_rx: Shared,
    /// Protects the SRTCP sent to such a party.
    pub rtcp_tx: Shared,
}

impl std::fmt::Debug for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leg").finish_non_exhaustive()
    }
}

/// What the relay does with a STUN or DTLS datagram it handed in.
#[derive(Debug, Default)]
pub struct Reply {
    /// Datagrams to send back to the source.
    pub out: Vec<Vec<u8>>,
    /// The source is the nominated (selected) pair: it becomes the
    /// party's confirmed endpoint.
    pub nominated: bool,
    /// The selected pair is now on another of our addresses (see
    /// [`ICE_SELECTED`]).
    pub moved: bool,
    /// The datagram was refused (counted as an error).
    pub refused: bool,
}

impl Reply {
    fn refused() -> Reply {
        Reply {
            refused: true,
            ..Reply::default()
        }
    }
}

impl Leg {
    /// A leg presenting `identity` in DTLS handshakes, with nothing signalled.
    pub fn new(identity: Arc<Identity>) -> Arc<Leg> {
        Arc::new(Leg {
            identity,
            state: Mutex::new(LegState {
                tie: rand::random(),
                ..LegState::default()
            }),
            rx: Shared::default(),
            tx: Shared::default(),
            rtcp_rx: Shared::default(),
            rtcp_tx: Shared::default(),
        })
    }

    /// The key slots of component `slot` (0 RTP, 1 RTCP).
    fn slots(&self, slot: usize) -> (&Shared, &Shared) {
        match slot {
            0 => (&self.rx, &self.tx),
            _ => (&self.rtcp_rx, &self.rtcp_tx),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LegState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies what an offer or answer decided. A changed role or peer
    /// fingerprint is a new association (RFC 5763 §6.6, DTLS re-keying on
    /// a re-INVITE): the keys go and a new handshake starts. An unchanged
    /// plan keeps the session and its keys. New ICE credentials keep the
    /// old ones answered until the peer uses the new ones. A full agent
    /// keeps its checks while neither side's credentials change.
    pub fn configure(&self, ice: Option<Credentials>, agent: IcePlan, dtls: Option<DtlsPlan>) {
        let mut st = self.state();
        let restart = st.ice.is_some() && ice.is_some() && st.ice != ice;
        if restart {
            st.ice_old = st.ice.take();
        } else if ice.is_none() {
            st.ice_old = None;
        }
        st.ice = ice;
        st.lite = agent == IcePlan::Lite;
        let mut running: [Option<Agent>; 2] = [st.agents[0].take(), st.agents[1].take()];
        if restart || st.ice.is_none() {
            running = [None, None];
        }
        // The role a role conflict settled stays (one per session).
        let settled = running.iter().flatten().map(Agent::controlling).next();
        for (i, component) in [1u8, 2].into_iter().enumerate() {
            let kept = match &agent {
                IcePlan::Full(peer, _) | IcePlan::Pending(peer) => running[i]
                    .take()
                    .filter(|_| st.ice.is_some())
                    .and_then(|mut a| a.keeps(peer).then_some(a)),
                IcePlan::Lite => None,
            };
            st.agents[i] = match (&agent, kept) {
                (_, Some(a)) => Some(a),
                // Both components: the RTCP one learns its pairs from the
                // party's checks if it lists no candidates for it (its
                // RTCP socket feeds it only where the party does not mux).
                (IcePlan::Full(peer, controlling), None) if st.ice.is_some() => Some(Agent::new(
                    peer.clone(),
                    component,
                    settled.unwrap_or(*controlling),
                    st.tie,
                )),
                _ => None,
            };
        }
        let restart = match (&st.dtls, &dtls) {
            (Some(old), Some(new)) => {
                old.role != new.role
                    || old
                        .remote
                        .as_ref()
                        .is_some_and(|r| Some(r) != new.remote.as_ref())
                    || matches!((&old.tls_id, &new.tls_id), (Some(a), Some(b)) if a != b)
            }
            (None, None) => false,
            _ => true,
        };
        st.dtls = dtls;
        for slot in 0..2 {
            if restart {
                let a = &mut st.assoc[slot];
                a.session = None;
                a.pending = None;
                a.heard = false;
                self.unkey(&mut st, slot);
            }
            self.install_keys(&mut st, slot);
        }
    }

    /// Whether DTLS is terminated on this leg (else DTLS between two
    /// WebRTC parties is relayed as any packet).
    pub fn has_dtls(&self) -> bool {
        self.state().dtls.is_some()
    }

    /// Whether a full agent runs for ICE `component` (only it can lift a
    /// consent gate on the party's endpoint).
    pub fn has_agent(&self, component: u8) -> bool {
        self.state().agents[usize::from(component != 1)].is_some()
    }

    /// Our ICE credentials, if ICE runs on this leg.
    pub fn ice(&self) -> Option<Credentials> {
        self.state().ice.clone()
    }

    /// Our current addresses per ICE component (signalling replaced
    /// ports, or gave a party more or fewer addresses): the agents forget
    /// pairs and a selection on others, and DTLS no longer waits for a
    /// socket that is gone.
    pub fn set_locals(&self, locals: [Vec<SocketAddr>; 2]) {
        let mut guard = self.state();
        let st = &mut *guard;
        for (slot, list) in locals.iter().enumerate() {
            if let Some(a) = st.agents[slot].as_mut() {
                a.keep_locals(list);
            }
            if st.lite_selected[slot].is_some_and(|l| !list.contains(&l)) {
                st.lite_selected[slot] = None;
            }
            let a = &mut st.assoc[slot];
            if a.peer_local.is_some_and(|l| !list.contains(&l)) {
                a.peer_local = None;
            }
        }
    }

    /// Our address of the selected pair of ICE `component`: the socket
    /// media to the party goes out of (`None`: none selected yet).
    pub fn selected_local(&self, component: u8) -> Option<SocketAddr> {
        let st = self.state();
        let slot = usize::from(component != 1);
        match &st.agents[slot] {
            Some(a) => a.selected_local(),
            None => st.lite_selected[slot],
        }
    }

    /// A STUN datagram from `src` to our address `local`, on the port of
    /// ICE `component` (1 RTP, 2 RTCP): a connectivity check is answered
    /// (and, by a full agent, checked back), a response to our own check
    /// goes to the agent; a client's handshake starts once the peer is
    /// reachable on RTP.
    pub fn stun(&self, pkt: &[u8], (local, src): (SocketAddr, SocketAddr), component: u8) -> Reply {
        let before = self.selected_local(component);
        let mut reply = self.answer_stun(pkt, (local, src), component);
        reply.moved = reply.nominated && self.selected_local(component) != before;
        reply
    }

    fn answer_stun(
        &self,
        pkt: &[u8],
        (local, src): (SocketAddr, SocketAddr),
        component: u8,
    ) -> Reply {
        let mut guard = self.state();
        let st = &mut *guard;
        let now = Instant::now();
        let rtp = component == 1;
        let slot = usize::from(!rtp);
        if ice::is_response(pkt) {
            let (Some(agent), Some(ours)) = (st.agents[slot].as_mut(), st.ice.as_ref()) else {
                return Reply::refused();
            };
            let responded = agent.on_response(pkt, (local, src), ours, now);
            sync_roles(st, slot);
            if !responded.selected {
                // Our nominating check of a pair that just became valid.
                return Reply {
                    out: responded.nominate.into_iter().collect(),
                    ..Reply::default()
                };
            }
            st.assoc[slot].peer = Some(src);
            st.assoc[slot].peer_local = Some(local);
            return Reply {
                out: self.start_client(st, slot),
                nominated: true,
                ..Reply::default()
            };
        }
        let Some(creds) = &st.ice else {
            return Reply::refused();
        };
        let (check, creds, current) = match ice::verify(pkt, creds) {
            // The peer has our new credentials: the old ones retire.
            Ok(c) => {
                st.ice_old = None;
                (c, creds, true)
            }
            Err(e) => match st.ice_old.as_ref().map(|old| (ice::verify(pkt, old), old)) {
                Some((Ok(c), old)) => (c, old, false),
                _ => {
                    tracing::debug!(%src, error = %e, "STUN message dropped");
                    return Reply::refused();
                }
            },
        };
        let answer = match st.agents[slot].as_mut() {
            Some(a) if current => a.on_check(&check, (local, src), creds, now),
            // The generation before an ICE restart: answered, nothing
            // more (the agent checks the new one).
            Some(_) => ice_agent::Answer::default(),
            // Lite: the controlling peer's nomination decides.
            None if st.lite => ice_agent::Answer {
                selected: check.nominated,
                ..Default::default()
            },
            // A full agent not running yet: answered, nothing more.
            None => ice_agent::Answer::default(),
        };
        let mut out = vec![ice::respond(pkt, src, creds, answer.conflict)];
        sync_roles(st, slot);
        if answer.conflict {
            return Reply {
                out,
                ..Reply::default()
            };
        }
        out.extend(answer.triggered);
        if answer.selected && st.lite {
            st.lite_selected[slot] = Some(local);
        }
        let a = &mut st.assoc[slot];
        if answer.selected || a.peer.is_none() {
            a.peer = Some(src);
            a.peer_local = Some(local);
        }
        out.extend(self.start_client(st, slot));
        Reply {
            out,
            nominated: answer.selected,
            ..Reply::default()
        }
    }

    /// A DTLS datagram from `src` to our address `local`. `known`: without
    /// ICE, whether `src` is where the party's media goes (or nothing is
    /// confirmed yet); with ICE only the address that passed a check is
    /// the peer.
    pub fn dtls(
        &self,
        pkt: &[u8],
        (local, src): (SocketAddr, SocketAddr),
        component: u8,
        known: bool,
    ) -> Reply {
        let mut guard = self.state();
        let st = &mut *guard;
        let slot = usize::from(component != 1);
        let Some(plan) = st.dtls.clone() else {
            return Reply::refused();
        };
        let ice = st.ice.is_some();
        let a = &mut st.assoc[slot];
        let from_peer = match ice {
            true => a.peer == Some(src),
            false => known,
        };
        if !from_peer {
            return Reply::refused();
        }
        a.peer = Some(src);
        a.peer_local = Some(local);
        a.heard = true;
        // A client hello: the first handshake of a server, or the peer
        // starting over on a finished (or failed) session. The keys in
        // force stay until the new handshake is done and verified; one new
        // handshake per second at most.
        let hello = pkt.len() > 13 && pkt[0] == 22 && pkt[13] == 1;
        let finished = a
            .session
            .as_ref()
            .is_some_and(|s| s.state() != State::Handshake);
        let fresh = a.session.is_none() || (hello && finished && a.pending.is_none());
        if plan.role == Role::Server && fresh {
            let now = Instant::now();
            if a.last_start
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
            {
                return Reply::refused();
            }
            a.last_start = Some(now);
            match Session::new(&self.identity, Role::Server) {
                Ok(s) if a.session.is_none() => a.session = Some(s),
                Ok(s) => a.pending = Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "DTLS session not created");
                    return Reply::default();
                }
            }
        }
        let Some(session) = a.live() else {
            return Reply::refused();
        };
        let out = match session.drive(Some(pkt)) {
            Ok(out) => out,
            Err(e) => {
                tracing::info!(%src, error = %e, "DTLS handshake failed");
                Vec::new()
            }
        };
        self.promote(st, slot);
        self.install_keys(st, slot);
        Reply {
            out,
            ..Reply::default()
        }
    }

    /// Once a second, for the port of ICE `component` (`local`: our
    /// candidate there): the full agent's checks and consent; then, on the
    /// RTP port, retransmits a DTLS flight whose timer ran out, or starts
    /// (again, after a failure) a client's handshake towards the peer;
    /// without ICE that is `dest`, the party's address, until the peer sent
    /// DTLS.
    pub fn tick(&self, dest: Option<SocketAddr>, local: SocketAddr, component: u8) -> Tick {
        let mut guard = self.state();
        let st = &mut *guard;
        let mut tick = Tick::default();
        let slot = usize::from(component != 1);
        if let (Some(agent), Some(ours)) = (st.agents[slot].as_mut(), st.ice.as_ref()) {
            let poll = agent.poll(ours, local, Instant::now());
            tick.out = poll.out;
            tick.consent_lost = poll.consent_lost;
        }
        // DTLS from the socket the peer reached (the first one, on `c=`,
        // until it reached one).
        let ice = st.ice.is_some();
        let a = &mut st.assoc[slot];
        if a.peer_local.is_some_and(|l| l != local) {
            return tick;
        }
        if !ice && !a.heard && dest.is_some() {
            a.peer = dest;
        }
        let Some(peer) = a.peer else {
            return tick;
        };
        let mut out = self.start_client(st, slot);
        if out.is_empty() {
            if let Some(s) = st.assoc[slot]
                .live()
                .filter(|s| s.state() == State::Handshake)
            {
                out = s.drive(None).unwrap_or_default();
            }
        }
        tick.out.extend(out.into_iter().map(|d| (peer, d)));
        tick
    }

    /// Starts our handshake as the client: the first time, or again after
    /// the session failed (an alert, or OpenSSL gave up retransmitting).
    fn start_client(&self, st: &mut LegState, slot: usize) -> Vec<Vec<u8>> {
        let client = st.dtls.as_ref().is_some_and(|p| p.role == Role::Client);
        let a = &st.assoc[slot];
        let failed = a
            .session
            .as_ref()
            .is_some_and(|s| s.state() == State::Failed);
        if !client || (a.session.is_some() && !failed) {
            return Vec::new();
        }
        let mut session = match Session::new(&self.identity, Role::Client) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "DTLS session not created");
                return Vec::new();
            }
        };
        let out = session.drive(None).unwrap_or_default();
        st.assoc[slot].session = Some(session);
        if failed {
            self.unkey(st, slot);
        }
        out
    }

    /// A restarted handshake that is done and whose peer matches its
    /// fingerprint replaces the session (its keys are installed by
    /// [`Leg::install_keys`]); a failed or unverified one is dropped and
    /// the old session and keys stay.
    fn promote(&self, st: &mut LegState, slot: usize) {
        let remote = st.dtls.as_ref().and_then(|p| p.remote.clone());
        let verified = |s: &Session| remote.as_ref().is_some_and(|r| s.peer_matches(r));
        let a = &mut st.assoc[slot];
        match a.pending.as_ref().map(|s| (s.state(), verified(s))) {
            Some((State::Done, true)) => {
                a.session = a.pending.take();
                a.keyed = false;
            }
            Some((State::Done, false)) => {
                tracing::warn!("Restarted DTLS handshake with a certificate not matching a=fingerprint: ignored");
                a.pending = None;
            }
            Some((State::Failed, _)) => a.pending = None,
            _ => {}
        }
    }

    /// Fills the key slots from a finished handshake whose peer matches
    /// its fingerprint; a mismatch ends the session.
    fn install_keys(&self, st: &mut LegState, slot: usize) {
        let Some(remote) = st.dtls.as_ref().and_then(|p| p.remote.clone()) else {
            return;
        };
        let a = &mut st.assoc[slot];
        if a.keyed {
            return;
        }
        let Some(session) = a.session.as_ref().filter(|s| s.state() == State::Done) else {
            return;
        };
        if !session.peer_matches(&remote) {
            tracing::warn!("DTLS peer certificate does not match its a=fingerprint: no keys");
            a.session = None;
            self.unkey(st, slot);
            return;
        }
        let keys = match session.keys() {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "No SRTP keys from the DTLS handshake");
                return;
            }
        };
        let ctx = |k: &[u8]| Context::new(keys.suite, k, Params::default(), None).ok();
        let (rx, tx) = self.slots(slot);
        *lock(rx) = ctx(&keys.remote);
        *lock(tx) = ctx(&keys.local);
        a.keyed = true;
        tracing::info!(
            suite = keys.suite.name(),
            component = slot + 1,
            "DTLS-SRTP established"
        );
    }

    fn unkey(&self, st: &mut LegState, slot: usize) {
        let (rx, tx) = self.slots(slot);
        *lock(rx) = None;
        *lock(tx) = None;
        st.assoc[slot].keyed = false;
    }
}

/// A role conflict settled on one component settles it for the other too
/// (one role per ICE session).
fn sync_roles(st: &mut LegState, slot: usize) {
    let Some(role) = st.agents[slot].as_ref().map(Agent::controlling) else {
        return;
    };
    if let Some(other) = st.agents[1 - slot].as_mut() {
        other.set_role(role);
    }
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Option<Context>> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether `pkt` is DTLS (RFC 7983: first byte 20–63).
pub fn is_dtls(pkt: &[u8]) -> bool {
    pkt.len() >= 13 && (20..=63).contains(&pkt[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::dtls::{Hash, KeyType, DEFAULT_CIPHERS, DEFAULT_MTU};

    /// Our address in these tests.
    fn us() -> SocketAddr {
        "192.0.2.1:30000".parse().unwrap()
    }

    fn identity() -> Arc<Identity> {
        Arc::new(Identity::new(KeyType::Ec, DEFAULT_MTU, DEFAULT_CIPHERS).unwrap())
    }

    /// A browser-like peer (DTLS client) against a leg in the server role:
    /// keys only once the fingerprint is known and matches.
    #[test]
    fn keys_follow_a_verified_handshake() {
        let (ours, theirs) = (identity(), identity());
        let leg = Leg::new(ours.clone());
        let peer_at: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        // Offer sent to the peer: its fingerprint comes with the answer.
        leg.configure(
            None,
            IcePlan::Lite,
            Some(DtlsPlan {
                role: Role::Server,
                remote: None,
                tls_id: None,
            }),
        );
        let mut peer = Session::new(&theirs, Role::Client).unwrap();
        let mut to_leg = peer.drive(None).unwrap();
        for _ in 0..10 {
            let mut back = Vec::new();
            for d in to_leg.drain(..) {
                assert!(is_dtls(&d));
                back.extend(leg.dtls(&d, (us(), peer_at), 1, true).out);
            }
            for d in back {
                to_leg.extend(peer.drive(Some(&d)).unwrap());
            }
        }
        assert_eq!(peer.state(), State::Done);
        assert!(lock(&leg.rx).is_none(), "no keys before the fingerprint");
        // The answer brings a wrong fingerprint: still no keys.
        let wrong = ours.fingerprint(Hash::Sha256);
        leg.configure(
            None,
            IcePlan::Lite,
            Some(DtlsPlan {
                role: Role::Server,
                remote: Some(wrong),
                tls_id: None,
            }),
        );
        assert!(lock(&leg.rx).is_none());
    }

    /// An RTP packet (sequence number `seq`) protected with the keys
    /// `peer` sends with, and the plain packet.
    fn sent_by(peer: &Session, seq: u8) -> (Vec<u8>, Vec<u8>) {
        let k = peer.keys().unwrap();
        let mut tx = Context::new(k.suite, &k.local, Params::default(), None).unwrap();
        let plain = vec![0x80, 0, 0, seq, 0, 0, 0, 0, 0, 0, 0, 7, 0xaa, 0xbb];
        let mut rtp = plain.clone();
        tx.protect_rtp(&mut rtp).unwrap();
        (rtp, plain)
    }

    /// Runs `peer` (a client) against `leg` from `at` until both are quiet.
    fn shake(leg: &Leg, peer: &mut Session, at: SocketAddr, hello: Vec<Vec<u8>>) {
        let mut to_leg = hello;
        for _ in 0..10 {
            let mut back = Vec::new();
            for d in to_leg.drain(..) {
                back.extend(leg.dtls(&d, (us(), at), 1, true).out);
            }
            for d in back {
                to_leg.extend(peer.drive(Some(&d)).unwrap());
            }
        }
    }

    /// With ICE, DTLS only from the address that passed a check; a peer
    /// that starts over keeps the old keys until the new handshake is
    /// verified, and a stranger's certificate never replaces them.
    #[test]
    fn only_the_checked_peer_handshakes_and_restarts_keep_keys_until_verified() {
        let (ours, theirs, stranger) = (identity(), identity(), identity());
        let leg = Leg::new(ours);
        let creds = Credentials::generate();
        leg.configure(
            Some(creds.clone()),
            IcePlan::Lite,
            Some(DtlsPlan {
                role: Role::Server,
                remote: Some(theirs.fingerprint(Hash::Sha256)),
                tls_id: None,
            }),
        );
        let at: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let mut peer = Session::new(&theirs, Role::Client).unwrap();
        let hello = peer.drive(None).unwrap();
        // No check passed yet: refused.
        assert!(leg.dtls(&hello[0], (us(), at), 1, true).refused);
        // A check with our credentials makes `at` the peer.
        let check = {
            use stun_types::attribute::Username;
            use stun_types::message::{
                IntegrityAlgorithm, Message, MessageWrite, MessageWriteExt, MessageWriteVec,
                ShortTermCredentials, BINDING,
            };
            let mut m = Message::builder_request(BINDING, MessageWriteVec::new());
            m.add_attribute(&Username::new(&format!("{}:x", creds.ufrag)).unwrap())
                .unwrap();
            let key = ShortTermCredentials::new(creds.pwd).into();
            m.add_message_integrity(&key, IntegrityAlgorithm::Sha1)
                .unwrap();
            m.finish()
        };
        assert!(!leg.stun(&check, (us(), at), 1).refused);
        shake(&leg, &mut peer, at, hello);
        assert_eq!(peer.state(), State::Done);
        assert!(lock(&leg.rx).is_some(), "keys after a verified handshake");
        // Another address, even with a valid hello: refused.
        let mut other = Session::new(&theirs, Role::Client).unwrap();
        let other_hello = other.drive(None).unwrap();
        let elsewhere: SocketAddr = "198.51.100.1:5002".parse().unwrap();
        assert!(
            leg.dtls(&other_hello[0], (us(), elsewhere), 1, true)
                .refused
        );
        // The peer's address, a certificate not matching its fingerprint:
        // the handshake completes but the old keys stay.
        std::thread::sleep(Duration::from_millis(1100));
        let mut impostor = Session::new(&stranger, Role::Client).unwrap();
        let hello = impostor.drive(None).unwrap();
        shake(&leg, &mut impostor, at, hello);
        assert_eq!(impostor.state(), State::Done);
        // What the real peer sends under the first handshake's keys still
        // unprotects.
        let (rtp, plain) = sent_by(&peer, 1);
        assert_eq!(
            super::super::srtp::unprotect(&leg.rx, &rtp, false).unwrap(),
            plain,
            "old keys kept"
        );
        // The real peer starting over: new keys once verified.
        std::thread::sleep(Duration::from_millis(1100));
        let mut again = Session::new(&theirs, Role::Client).unwrap();
        let hello = again.drive(None).unwrap();
        shake(&leg, &mut again, at, hello);
        assert_eq!(again.state(), State::Done);
        let (rtp, plain) = sent_by(&again, 2);
        assert_eq!(
            super::super::srtp::unprotect(&leg.rx, &rtp, false).unwrap(),
            plain
        );
    }

    #[test]
    fn the_right_fingerprint_installs_matching_keys_until_the_association_changes() {
        let (ours, theirs) = (identity(), identity());
        let leg = Leg::new(ours.clone());
        let peer_at: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        leg.configure(
            None,
            IcePlan::Lite,
            Some(DtlsPlan {
                role: Role::Client,
                remote: Some(theirs.fingerprint(Hash::Sha256)),
                tls_id: None,
            }),
        );
        let mut peer = Session::new(&theirs, Role::Server).unwrap();
        let tick = leg.tick(Some(peer_at), us(), 1);
        assert!(!tick.out.is_empty(), "client hello");
        assert!(tick.out.iter().all(|(to, _)| *to == peer_at));
        let mut to_peer: Vec<Vec<u8>> = tick.out.into_iter().map(|(_, d)| d).collect();
        for _ in 0..10 {
            let mut back = Vec::new();
            for d in to_peer.drain(..) {
                back.extend(peer.drive(Some(&d)).unwrap());
            }
            for d in back {
                to_peer.extend(leg.dtls(&d, (us(), peer_at), 1, true).out);
            }
        }
        let keys = peer.keys().unwrap();
        assert!(peer.peer_matches(&ours.fingerprint(Hash::Sha256)));
        // What the leg protects, the peer's keys unprotect.
        let mut rtp = vec![0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0xaa, 0xbb];
        let plain = rtp.clone();
        super::super::srtp::protect(&leg.tx, &mut rtp, false).unwrap();
        let theirs_rx =
            Mutex::new(Context::new(keys.suite, &keys.remote, Params::default(), None).ok());
        assert_eq!(
            super::super::srtp::unprotect(&theirs_rx, &rtp, false).unwrap(),
            plain
        );
        // Unchanged plan (a tls-id where there was none changes nothing):
        // keys kept; a new peer tls-id, or a new fingerprint: gone.
        let plan = |tls_id: Option<&str>| {
            Some(DtlsPlan {
                role: Role::Client,
                remote: Some(theirs.fingerprint(Hash::Sha256)),
                tls_id: tls_id.map(str::to_owned),
            })
        };
        leg.configure(None, IcePlan::Lite, plan(None));
        assert!(lock(&leg.tx).is_some());
        leg.configure(None, IcePlan::Lite, plan(Some("first")));
        assert!(lock(&leg.tx).is_some());
        leg.configure(None, IcePlan::Lite, plan(Some("second")));
        assert!(lock(&leg.tx).is_none(), "a new association");
        leg.configure(
            None,
            IcePlan::Lite,
            Some(DtlsPlan {
                role: Role::Client,
                remote: Some(ours.fingerprint(Hash::Sha256)),
                tls_id: None,
            }),
        );
        assert!(lock(&leg.tx).is_none());
    }
}
