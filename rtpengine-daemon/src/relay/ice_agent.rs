//! A full ICE agent (RFC 8445) for one party's media section, as upstream
//! runs by default: besides answering the peer's checks (as the lite agent
//! does), it checks the peer's candidates itself, nominates as the
//! controlling agent (regular nomination, RFC 8445 §8.1.1, as upstream:
//! the best pair whose check succeeded is checked again with
//! USE-CANDIDATE — at once when no better pair is still being checked,
//! else at the timer's next turn — and selected when that succeeds),
//! resolves role conflicts, and keeps consent to send (RFC 7675) on the
//! selected pair.
//!
//! One agent per component: RTP (1) on our RTP ports and, for a party that
//! does not multiplex RTCP, RTCP (2) on our RTCP ports. Its local
//! candidates are our host candidates of that component, one per address
//! of the interface (the sockets that poll it or hand it checks make them
//! known), so a pair is one of ours and one of the peer's. The agent only
//! decides; the media socket of the pair's local candidate sends what it
//! returns, and the call timer polls it once a second per local candidate
//! (retransmissions, new checks, consent). Times are passed in, so the
//! tests run the agent without waiting.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stun_types::attribute::ErrorCode;
use stun_types::message::TransactionId;

use super::ice::{self, Check, Credentials, Request, Response};

/// Most candidates of the peer checked (further ones in the SDP are
/// ignored; peer-reflexive ones learnt from checks count too).
pub const MAX_CANDIDATES: usize = 16;
/// Most local candidates per agent (addresses of one interface).
pub const MAX_LOCALS: usize = 8;
/// Transmissions of one check before its pair fails (RFC 8489's Rc).
pub const MAX_TRIES: u8 = 7;
/// Consent checks on the selected pair, on average (RFC 7675 §5.1: 5 s,
/// randomised by ±20 %).
pub const CONSENT_INTERVAL: Duration = Duration::from_secs(5);
/// Consent lost after this long without a response (RFC 7675 §5.1).
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);
/// New checks an agent starts per turn of the timer (RFC 8445 §14 paces
/// them; triggered checks are not counted): a burst of new calls does not
/// become a burst of checks.
pub const CHECKS_PER_TURN: usize = 4;

/// What the peer's SDP says about its ICE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// `a=ice-ufrag`.
    pub ufrag: String,
    /// `a=ice-pwd`.
    pub pwd: String,
    /// Its UDP candidates of component 1 with their priorities, highest
    /// first (host names such as mDNS `.local` ones are left out: their
    /// checks make them known as peer-reflexive).
    pub candidates: Vec<(SocketAddr, u32)>,
    /// The same for component 2 (RTCP without rtcp-mux).
    pub rtcp_candidates: Vec<(SocketAddr, u32)>,
    /// `a=ice-lite`: it makes no checks; we control.
    pub lite: bool,
}

impl Peer {
    /// The peer from its SDP's ICE lines; `None` without credentials, or
    /// with credentials outside RFC 8839's sizes (ufrag 4–256, password
    /// 22–256 characters: a longer one would not fit a STUN USERNAME).
    pub fn from_sdp<'a>(
        ufrag: Option<&'a str>,
        pwd: Option<&'a str>,
        candidates: impl Iterator<Item = &'a str> + Clone,
        lite: bool,
    ) -> Option<Peer> {
        let (ufrag, pwd) = (ufrag?, pwd?);
        if !(4..=256).contains(&ufrag.len()) || !(22..=256).contains(&pwd.len()) {
            tracing::warn!(
                ufrag_len = ufrag.len(),
                pwd_len = pwd.len(),
                "ICE credentials of an invalid size: no ICE with this party"
            );
            return None;
        }
        Some(Peer {
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
            candidates: of_component(candidates.clone(), "1"),
            rtcp_candidates: of_component(candidates, "2"),
            lite,
        })
    }

    /// Adds trickled candidates (`a=candidate` values, RFC 8838) within the
    /// limits; returns how many are new.
    pub fn trickle<'a, I: Iterator<Item = &'a str> + Clone>(&mut self, values: I) -> usize {
        let mut added = 0;
        for (list, component) in [
            (&mut self.candidates, "1"),
            (&mut self.rtcp_candidates, "2"),
        ] {
            for c in of_component(values.clone(), component) {
                if list.len() < MAX_CANDIDATES && !list.iter().any(|x| x.0 == c.0) {
                    list.push(c);
                    added += 1;
                }
            }
            list.sort_by_key(|x| std::cmp::Reverse(x.1));
        }
        added
    }

    /// Its candidates of `component` (1 or 2).
    pub fn of(&self, component: u8) -> &[(SocketAddr, u32)] {
        match component {
            1 => &self.candidates,
            _ => &self.rtcp_candidates,
        }
    }
}

/// The candidates of one component, highest priority first, one per
/// address, at most [`MAX_CANDIDATES`].
fn of_component<'a, I: Iterator<Item = &'a str>>(
    candidates: I,
    component: &str,
) -> Vec<(SocketAddr, u32)> {
    let mut c: Vec<(SocketAddr, u32)> =
        candidates.filter_map(|v| candidate(v, component)).collect();
    c.sort_by_key(|x| std::cmp::Reverse(x.1));
    // One pair per address, at its best priority.
    let mut seen = std::collections::HashSet::new();
    c.retain(|x| seen.insert(x.0));
    if c.len() > MAX_CANDIDATES {
        tracing::warn!(
            candidates = c.len(),
            "Only the first {MAX_CANDIDATES} ICE candidates are checked"
        );
        c.truncate(MAX_CANDIDATES);
    }
    c
}

/// One `a=candidate` value (RFC 8839 §5.1) if it is UDP, of `component`
/// and an IP address: `foundation component transport priority address
/// port typ type …`.
fn candidate(v: &str, component: &str) -> Option<(SocketAddr, u32)> {
    let f: Vec<&str> = v.split_ascii_whitespace().collect();
    if f.len() < 8 || f[1] != component || !f[2].eq_ignore_ascii_case("udp") || f[6] != "typ" {
        return None;
    }
    let priority = f[3].parse().ok()?;
    let addr = SocketAddr::new(f[4].parse().ok()?, f[5].parse().ok()?);
    Some((addr, priority))
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Waiting,
    InProgress {
        tid: TransactionId,
        nominate: bool,
        /// The role the check claimed (a 487 answers that claim).
        controlling: bool,
        sent: Instant,
        tries: u8,
        bytes: Vec<u8>,
    },
    Succeeded,
    Failed,
}

#[derive(Clone, Debug)]
struct Pair {
    /// Our candidate: the socket that sends its checks.
    local: SocketAddr,
    remote: SocketAddr,
    priority: u32,
    state: State,
    /// The controlling peer sent USE-CANDIDATE for it.
    peer_nominated: bool,
}

/// What the agent wants sent: datagrams and their destinations.
pub type Out = Vec<(SocketAddr, Vec<u8>)>;

/// The agent's answer to a check of the peer.
#[derive(Debug, Default)]
pub struct Answer {
    /// 487 Role Conflict instead of success.
    pub conflict: bool,
    /// A triggered check of ours back to the check's source.
    pub triggered: Option<Vec<u8>>,
    /// The check's source is the selected pair: media goes there.
    pub selected: bool,
}

/// What a response to one of our checks did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Responded {
    /// The pair is the selected one (newly or still).
    pub selected: bool,
    /// Controlling, the pair just became valid: our nominating check of
    /// it, to send at once from the same address to the same candidate.
    pub nominate: Option<Vec<u8>>,
}

/// What a poll of the agent produced.
#[derive(Debug, Default)]
pub struct Poll {
    /// Checks to send.
    pub out: Out,
    /// Consent on the selected pair expired: stop sending media to it.
    pub consent_lost: bool,
}

/// A full agent (see the module documentation).
#[derive(Debug)]
pub struct Agent {
    peer: Peer,
    component: u8,
    controlling: bool,
    tie: u64,
    /// The peer's candidates (from its SDP and trickled, and
    /// peer-reflexive ones learnt from its checks), with priorities.
    remotes: Vec<(SocketAddr, u32)>,
    /// Ours, in the order they became known (the first is the one on
    /// `c=`/`m=`).
    locals: Vec<SocketAddr>,
    pairs: Vec<Pair>,
    /// The selected pair: (ours, the peer's).
    selected: Option<(SocketAddr, SocketAddr)>,
    /// The pair our nominating check is in flight for (controlling).
    nominating: Option<(SocketAddr, SocketAddr)>,
    /// When the first pair became valid with nothing nominated yet: better
    /// pairs still being checked are waited for until the next turn.
    valid_since: Option<Instant>,
    /// The last response on the selected pair.
    consent_ok: Option<Instant>,
    next_consent: Option<Instant>,
    consent_tid: Option<TransactionId>,
    /// When this turn of the timer began, and the checks it started (one
    /// budget for all our addresses: RFC 8445 §14 paces the agent).
    turn: Option<Instant>,
    started: usize,
}

impl Agent {
    /// A new agent checking `peer`'s candidates of `component` in
    /// `controlling` role, with the ICE session's tie-breaker `tie` (one
    /// for all components, RFC 8445 §7.1.1).
    pub fn new(peer: Peer, component: u8, controlling: bool, tie: u64) -> Agent {
        let remotes = peer.of(component).to_vec();
        Agent {
            peer,
            component,
            controlling,
            tie,
            remotes,
            locals: Vec::new(),
            pairs: Vec::new(),
            selected: None,
            nominating: None,
            valid_since: None,
            consent_ok: None,
            next_consent: None,
            consent_tid: None,
            turn: None,
            started: 0,
        }
    }

    /// Whether this agent goes on checking `peer`: the same credentials
    /// (no ICE restart). Its new candidates are added.
    pub fn keeps(&mut self, peer: &Peer) -> bool {
        if peer.ufrag != self.peer.ufrag || peer.pwd != self.peer.pwd {
            return false;
        }
        for &(remote, priority) in peer.of(self.component) {
            self.add_remote(remote, priority);
        }
        true
    }

    /// A candidate of the peer (at most [`MAX_CANDIDATES`]) paired with
    /// each of ours of its family; `false` when there is no room.
    fn add_remote(&mut self, remote: SocketAddr, priority: u32) -> bool {
        if self.remotes.iter().any(|r| r.0 == remote) {
            return true;
        }
        if self.remotes.len() >= MAX_CANDIDATES {
            return false;
        }
        self.remotes.push((remote, priority));
        for i in 0..self.locals.len() {
            self.pair(self.locals[i], remote, priority);
        }
        self.sort();
        true
    }

    /// Our candidate `local` (at most [`MAX_LOCALS`]) paired with each of
    /// the peer's of its family; `false` when there is no room.
    fn add_local(&mut self, local: SocketAddr) -> bool {
        if self.locals.contains(&local) {
            return true;
        }
        if self.locals.len() >= MAX_LOCALS {
            return false;
        }
        self.locals.push(local);
        for i in 0..self.remotes.len() {
            let (remote, priority) = self.remotes[i];
            self.pair(local, remote, priority);
        }
        self.sort();
        true
    }

    fn pair(&mut self, local: SocketAddr, remote: SocketAddr, priority: u32) {
        if local.is_ipv4() == remote.is_ipv4() {
            self.pairs.push(Pair {
                local,
                remote,
                priority,
                state: State::Waiting,
                peer_nominated: false,
            });
        }
    }

    /// Keeps only our candidates in `locals` (our ports were replaced):
    /// their pairs go, and a selected pair among them (consent with it
    /// too), so checks start on the new ones.
    pub fn keep_locals(&mut self, locals: &[SocketAddr]) {
        self.locals.retain(|l| locals.contains(l));
        self.pairs.retain(|p| locals.contains(&p.local));
        if self.nominating.is_some_and(|(l, _)| !locals.contains(&l)) {
            self.nominating = None;
        }
        if self.selected.is_some_and(|(l, _)| !locals.contains(&l)) {
            self.selected = None;
            self.consent_ok = None;
            self.next_consent = None;
            self.consent_tid = None;
        }
    }

    /// Our role.
    pub fn controlling(&self) -> bool {
        self.controlling
    }

    /// Takes `controlling` (a role conflict was settled, here or on the
    /// other component): checks in flight claimed the old role, so they
    /// start over.
    pub fn set_role(&mut self, controlling: bool) {
        if self.controlling == controlling {
            return;
        }
        self.controlling = controlling;
        self.nominating = None;
        for p in &mut self.pairs {
            if matches!(p.state, State::InProgress { .. }) {
                p.state = State::Waiting;
            }
        }
    }

    /// The selected pair's remote candidate.
    pub fn selected(&self) -> Option<SocketAddr> {
        self.selected.map(|s| s.1)
    }

    /// The selected pair's local candidate: the socket media goes out of.
    pub fn selected_local(&self) -> Option<SocketAddr> {
        self.selected.map(|s| s.0)
    }

    /// Pairs by the peer's candidate priority, then ours in the order
    /// they became known (stable: the first address first).
    fn sort(&mut self) {
        let rank = |l: SocketAddr, locals: &[SocketAddr]| locals.iter().position(|&x| x == l);
        let locals = self.locals.clone();
        self.pairs
            .sort_by_key(|p| (std::cmp::Reverse(p.priority), rank(p.local, &locals)));
    }

    /// Our Binding request with `nominate`, under transaction `tid`.
    fn request(&self, ours: &Credentials, nominate: bool, tid: TransactionId) -> Vec<u8> {
        ice::request(
            &Request {
                ours,
                theirs: (&self.peer.ufrag, &self.peer.pwd),
                controlling: self.controlling,
                tie: self.tie,
                nominate,
                component: self.component,
            },
            tid,
        )
    }

    /// Starts (or restarts) a check of pair `i`; returns its datagram
    /// (empty, and the pair failed, if no request could be made of our
    /// credentials).
    fn start(&mut self, i: usize, ours: &Credentials, now: Instant) -> Vec<u8> {
        self.check(i, ours, false, now)
    }

    /// Starts our nominating check of the valid pair `i` (controlling).
    fn nominate(&mut self, i: usize, ours: &Credentials, now: Instant) -> Vec<u8> {
        let bytes = self.check(i, ours, true, now);
        if !bytes.is_empty() {
            self.nominating = Some((self.pairs[i].local, self.pairs[i].remote));
        }
        bytes
    }

    fn check(&mut self, i: usize, ours: &Credentials, nominate: bool, now: Instant) -> Vec<u8> {
        let tid = TransactionId::generate();
        let bytes = self.request(ours, nominate, tid);
        if bytes.is_empty() {
            self.pairs[i].state = State::Failed;
            return bytes;
        }
        self.pairs[i].state = State::InProgress {
            tid,
            nominate,
            controlling: self.controlling,
            sent: now,
            tries: 1,
            bytes: bytes.clone(),
        };
        bytes
    }

    /// A verified check of the peer from `src` (RFC 8445 §7.3): role
    /// conflicts resolved by the tie-breakers, the pair learnt if new, a
    /// triggered check back, and the nomination noted (it selects the pair
    /// once our own check of it succeeded, §7.3.1.5: a nomination alone
    /// does not move media, whatever source the check claims).
    pub fn on_check(
        &mut self,
        check: &Check,
        (local, src): (SocketAddr, SocketAddr),
        ours: &Credentials,
        now: Instant,
    ) -> Answer {
        match check.role {
            // Both controlling: the larger tie-breaker keeps the role.
            Some((true, theirs)) if self.controlling => {
                if self.tie >= theirs {
                    return Answer {
                        conflict: true,
                        ..Answer::default()
                    };
                }
                self.set_role(false);
            }
            Some((false, theirs)) if !self.controlling => {
                if self.tie < theirs {
                    return Answer {
                        conflict: true,
                        ..Answer::default()
                    };
                }
                self.set_role(true);
            }
            _ => {}
        }
        let priority = check
            .priority
            .unwrap_or(ice::peer_reflexive(self.component));
        if !self.add_local(local) || !self.add_remote(src, priority) {
            return Answer::default();
        }
        let Some(i) = self
            .pairs
            .iter()
            .position(|p| p.local == local && p.remote == src)
        else {
            return Answer::default();
        };
        let triggered = matches!(self.pairs[i].state, State::Waiting | State::Failed)
            .then(|| self.start(i, ours, now))
            .filter(|b| !b.is_empty());
        let mut selected = false;
        if check.nominated && !self.controlling {
            self.pairs[i].peer_nominated = true;
            selected = self.pairs[i].state == State::Succeeded && self.select((local, src), now);
        }
        self.sort();
        Answer {
            conflict: false,
            triggered,
            selected,
        }
    }

    /// Makes `pair` (ours, the peer's) the selected pair unless a pair
    /// worth more is. Returns whether `pair` is selected.
    fn select(&mut self, pair: (SocketAddr, SocketAddr), now: Instant) -> bool {
        if self.selected == Some(pair) {
            return true;
        }
        // Worth more: the peer's candidate's priority, then our address's
        // rank (the peer's latest nomination among equals wins).
        let worth = |(l, r): (SocketAddr, SocketAddr)| {
            let prio = self
                .pairs
                .iter()
                .find(|p| p.local == l && p.remote == r)
                .map_or(0, |p| p.priority);
            let rank = self
                .locals
                .iter()
                .position(|&x| x == l)
                .unwrap_or(usize::MAX);
            (prio, std::cmp::Reverse(rank))
        };
        if self.selected.is_some_and(|cur| worth(cur) > worth(pair)) {
            return false;
        }
        self.selected = Some(pair);
        self.valid_since = None;
        self.consent_ok = Some(now);
        self.next_consent = Some(now + CONSENT_INTERVAL);
        true
    }

    /// A response to one of our checks, from `src` to our candidate
    /// `local`: whether that pair is the selected one (newly or still),
    /// and our nominating check where it just became valid; unknown
    /// transactions and responses that fail the peer's integrity are
    /// ignored.
    pub fn on_response(
        &mut self,
        pkt: &[u8],
        (local, src): (SocketAddr, SocketAddr),
        ours: &Credentials,
        now: Instant,
    ) -> Responded {
        let Ok(Response { tid, outcome }) = ice::response(pkt, &self.peer.pwd) else {
            return Responded::default();
        };
        if self.consent_tid == Some(tid) && Some((local, src)) == self.selected {
            self.consent_tid = None;
            if outcome.is_ok() {
                self.consent_ok = Some(now);
                return Responded {
                    selected: true,
                    nominate: None,
                };
            }
            return Responded::default();
        }
        let Some(i) = self
            .pairs
            .iter()
            .position(|p| matches!(&p.state, State::InProgress { tid: t, .. } if *t == tid))
        else {
            return Responded::default();
        };
        let State::InProgress {
            nominate,
            controlling: claimed,
            ..
        } = self.pairs[i].state
        else {
            return Responded::default();
        };
        let pair = (self.pairs[i].local, self.pairs[i].remote);
        if nominate && self.nominating == Some(pair) {
            // Settled one way or another: another pair may be nominated.
            self.nominating = None;
        }
        // A response from elsewhere than the check went, or to another of
        // our addresses, fails it (RFC 8445 §7.2.5.2.1: non-symmetric
        // transport addresses).
        if pair != (local, src) {
            self.pairs[i].state = State::Failed;
            return Responded::default();
        }
        match outcome {
            Ok(()) => {
                self.pairs[i].state = State::Succeeded;
                if !self.controlling {
                    let selected = self.pairs[i].peer_nominated && self.select(pair, now);
                    return Responded {
                        selected,
                        nominate: None,
                    };
                }
                if nominate {
                    return Responded {
                        selected: self.select(pair, now),
                        nominate: None,
                    };
                }
                // Valid: nominated at once unless a pair is selected or
                // being nominated, or a better one is still being checked
                // (then the best valid one, at the next turn).
                let free = self.selected.is_none() && self.nominating.is_none();
                if free {
                    self.valid_since.get_or_insert(now);
                }
                let nominate = (free && !self.better_pending(i))
                    .then(|| self.nominate(i, ours, now))
                    .filter(|b| !b.is_empty());
                Responded {
                    selected: false,
                    nominate,
                }
            }
            // The peer keeps the role we claimed: we take the other one
            // and check again at the next poll (RFC 8445 §7.2.5.1).
            Err(ErrorCode::ROLE_CONFLICT) => {
                self.set_role(!claimed);
                self.pairs[i].state = State::Waiting;
                Responded::default()
            }
            Err(code) => {
                tracing::debug!(%src, code, "ICE check failed");
                self.pairs[i].state = State::Failed;
                Responded::default()
            }
        }
    }

    /// Whether a pair ranked before pair `i` (pairs are sorted best first)
    /// is still waiting or being checked.
    fn better_pending(&self, i: usize) -> bool {
        self.pairs[..i]
            .iter()
            .any(|p| matches!(p.state, State::Waiting | State::InProgress { .. }))
    }

    /// The agent's turn for our candidate `local` (once a second each):
    /// retransmits its checks, gives up on pairs after [`MAX_TRIES`]
    /// transmissions, starts the waiting ones until a pair is selected,
    /// and keeps consent on the selected pair if it is `local`'s.
    pub fn poll(&mut self, ours: &Credentials, local: SocketAddr, now: Instant) -> Poll {
        let mut poll = Poll::default();
        self.add_local(local);
        // The timer polls each of our addresses once a turn.
        if self
            .turn
            .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(900))
        {
            self.turn = Some(now);
            self.started = 0;
        }
        for i in 0..self.pairs.len() {
            let p = &mut self.pairs[i];
            if p.local != local {
                continue;
            }
            match &mut p.state {
                State::InProgress {
                    sent, tries, bytes, ..
                } if now.duration_since(*sent) >= Duration::from_millis(500) => {
                    if *tries >= MAX_TRIES {
                        if self.nominating == Some((p.local, p.remote)) {
                            self.nominating = None;
                        }
                        p.state = State::Failed;
                    } else {
                        *tries += 1;
                        *sent = now;
                        poll.out.push((p.remote, bytes.clone()));
                    }
                }
                State::Waiting if self.selected.is_none() && self.started < CHECKS_PER_TURN => {
                    let remote = p.remote;
                    let bytes = self.start(i, ours, now);
                    if !bytes.is_empty() {
                        poll.out.push((remote, bytes));
                    }
                    self.started += 1;
                }
                _ => {}
            }
        }
        // Controlling, nothing selected or being nominated (better pairs
        // waited for, a role that changed, a nomination that failed): the
        // best valid pair of this address is nominated, once no better one
        // is pending or a turn has passed since a pair became valid.
        if self.controlling && self.selected.is_none() && self.nominating.is_none() {
            let waited = self
                .valid_since
                .is_some_and(|t| now.duration_since(t) >= Duration::from_millis(500));
            let valid = self
                .pairs
                .iter()
                .position(|p| p.local == local && p.state == State::Succeeded)
                .filter(|&i| waited || !self.better_pending(i));
            if let Some(i) = valid {
                let remote = self.pairs[i].remote;
                let bytes = self.nominate(i, ours, now);
                if !bytes.is_empty() {
                    poll.out.push((remote, bytes));
                }
            }
        }
        let Some((sel_local, sel)) = self.selected else {
            return poll;
        };
        if sel_local != local {
            return poll;
        }
        if self
            .consent_ok
            .is_some_and(|t| now.duration_since(t) >= CONSENT_TIMEOUT)
        {
            tracing::info!(remote = %sel, "ICE consent expired: no more media to it");
            self.selected = None;
            self.nominating = None;
            self.valid_since = None;
            self.consent_ok = None;
            self.next_consent = None;
            // Checks start over: a pair is selected again once one
            // succeeds (nominated by us; as controlled, the peer's earlier
            // nomination stands: it does not nominate twice).
            for p in &mut self.pairs {
                p.state = State::Waiting;
            }
            poll.consent_lost = true;
            return poll;
        }
        if self.next_consent.is_some_and(|t| now >= t) {
            let tid = TransactionId::generate();
            let bytes = self.request(ours, false, tid);
            self.consent_tid = Some(tid);
            let jitter = rand::random_range(0.8..1.2);
            self.next_consent = Some(now + CONSENT_INTERVAL.mul_f64(jitter));
            poll.out.push((sel, bytes));
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::ice::{respond, verify};

    fn peer_with(creds: &Credentials, candidates: &[(&str, u32)], lite: bool) -> Peer {
        Peer {
            ufrag: creds.ufrag.clone(),
            pwd: creds.pwd.clone(),
            candidates: candidates
                .iter()
                .map(|(a, p)| (a.parse().unwrap(), *p))
                .collect(),
            rtcp_candidates: Vec::new(),
            lite,
        }
    }

    #[test]
    fn candidates_from_sdp() {
        let lines = [
            "1 1 UDP 2130706431 198.51.100.1 5000 typ host",
            "2 1 udp 1694498815 203.0.113.7 6000 typ srflx raddr 198.51.100.1 rport 5000",
            "3 2 UDP 2130706430 198.51.100.1 5001 typ host",
            "4 1 TCP 1518280447 198.51.100.1 9 typ host tcptype active",
            "5 1 udp 2122260223 0b7c2a0e-1b4f.local 54321 typ host",
            "bogus",
        ];
        let (u, pw) = (Some("ufrg"), Some("password-of-22-chars.."));
        let p = Peer::from_sdp(u, pw, lines.into_iter(), false).unwrap();
        assert_eq!(
            p.candidates,
            vec![
                ("198.51.100.1:5000".parse().unwrap(), 2130706431),
                ("203.0.113.7:6000".parse().unwrap(), 1694498815)
            ]
        );
        assert_eq!(
            p.of(2),
            [("198.51.100.1:5001".parse().unwrap(), 2130706430)]
        );
        assert!(Peer::from_sdp(u, None, lines.into_iter(), false).is_none());
        // Credentials of a size RFC 8839 does not allow: no ICE.
        assert!(Peer::from_sdp(Some("abc"), pw, lines.into_iter(), false).is_none());
        let long = "u".repeat(257);
        assert!(Peer::from_sdp(Some(&long), pw, lines.into_iter(), false).is_none());
        assert!(Peer::from_sdp(u, Some("short"), lines.into_iter(), false).is_none());
        let many: Vec<String> = (0..40)
            .map(|i| format!("{i} 1 UDP {i} 198.51.100.1 {} typ host", 5000 + i))
            .collect();
        let p = Peer::from_sdp(u, pw, many.iter().map(String::as_str), false);
        assert_eq!(p.unwrap().candidates.len(), MAX_CANDIDATES);
    }

    const LOCAL: &str = "192.0.2.1:30000";

    /// Answers our check `req` (sent from `local` to `to`) as the peer
    /// would, and the nominating check that follows as controlling;
    /// returns whether the pair ended selected.
    fn answer_and_nominate(
        a: &mut Agent,
        req: &[u8],
        (local, to): (SocketAddr, SocketAddr),
        (ours, theirs): (&Credentials, &Credentials),
        now: Instant,
    ) -> bool {
        let r = a.on_response(&respond(req, local, theirs, false), (local, to), ours, now);
        match r.nominate {
            Some(n) => {
                assert!(verify(&n, theirs).unwrap().nominated, "USE-CANDIDATE");
                a.on_response(&respond(&n, local, theirs, false), (local, to), ours, now)
                    .selected
            }
            None => r.selected,
        }
    }

    fn local() -> SocketAddr {
        LOCAL.parse().unwrap()
    }

    /// Several of our addresses: each one's turn checks its own pairs
    /// (the same candidate of the peer from each), a response counts only
    /// on the address its check went from, the pair selected names ours,
    /// and consent is kept from that address alone.
    #[test]
    fn every_local_address_checks_its_own_pairs() {
        let (ours, theirs) = (Credentials::generate(), Credentials::generate());
        let peer = peer_with(&theirs, &[("198.51.100.1:5000", 100)], false);
        let mut a = Agent::new(peer, 1, true, 7);
        let second: SocketAddr = "192.0.2.2:30010".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:30020".parse().unwrap();
        let t0 = Instant::now();
        let first = a.poll(&ours, local(), t0);
        let other = a.poll(&ours, second, t0);
        assert_eq!((first.out.len(), other.out.len()), (1, 1));
        // No pair across families.
        assert!(a.poll(&ours, v6, t0).out.is_empty());
        let to = first.out[0].0;
        assert_eq!(other.out[0].0, to);
        // The first address's check answered as if to the second: it
        // fails (non-symmetric), nothing is selected.
        let r1 = respond(&first.out[0].1, local(), &theirs, false);
        assert_eq!(
            a.on_response(&r1, (second, to), &ours, t0),
            Responded::default()
        );
        assert_eq!(a.selected(), None);
        assert!(answer_and_nominate(
            &mut a,
            &other.out[0].1,
            (second, to),
            (&ours, &theirs),
            t0
        ));
        assert_eq!((a.selected_local(), a.selected()), (Some(second), Some(to)));
        // Consent goes from the selected address only.
        let later = t0 + CONSENT_INTERVAL * 2;
        assert!(a.poll(&ours, local(), later).out.is_empty());
        assert_eq!(a.poll(&ours, second, later).out.len(), 1);
    }

    /// Our ports replaced (same credentials): the old address's pairs
    /// and its selection go, consent with it too, and checks start from
    /// the new one. New checks share one budget per turn over all our
    /// addresses.
    #[test]
    fn replaced_ports_drop_their_pairs_and_selection() {
        let (ours, theirs) = (Credentials::generate(), Credentials::generate());
        let many: Vec<(String, u32)> = (0..6)
            .map(|i| (format!("198.51.100.1:{}", 5000 + i), 100 - i))
            .collect();
        let refs: Vec<(&str, u32)> = many.iter().map(|(a, p)| (a.as_str(), *p)).collect();
        let mut a = Agent::new(peer_with(&theirs, &refs, false), 1, true, 7);
        let other: SocketAddr = "192.0.2.9:31000".parse().unwrap();
        let t0 = Instant::now();
        let first = a.poll(&ours, local(), t0).out;
        let second = a.poll(&ours, other, t0).out;
        assert_eq!(first.len() + second.len(), CHECKS_PER_TURN, "one budget");
        let (to, req) = &first[0];
        assert!(answer_and_nominate(
            &mut a,
            req,
            (local(), *to),
            (&ours, &theirs),
            t0
        ));
        assert_eq!(a.selected_local(), Some(local()));
        // local() is gone: only `other` is ours now.
        a.keep_locals(&[other]);
        assert_eq!(a.selected(), None);
        let later = t0 + Duration::from_secs(1);
        let out = a.poll(&ours, other, later).out;
        assert!(!out.is_empty() && out.iter().all(|(_, r)| verify(r, &theirs).is_ok()));
        assert!(a.pairs.iter().all(|p| p.local == other));
    }

    /// We control: checks go to every candidate of the peer without
    /// USE-CANDIDATE; the first success is checked again with it at once
    /// (regular nomination), whose success selects the pair, and the others
    /// stop; responses from the wrong address or with the wrong integrity
    /// change nothing.
    #[test]
    fn controlling_checks_then_nominates() {
        let (ours, theirs) = (Credentials::generate(), Credentials::generate());
        let peer = peer_with(
            &theirs,
            &[("198.51.100.1:5000", 100), ("198.51.100.2:5000", 50)],
            true,
        );
        let mut a = Agent::new(peer, 1, true, 7);
        let t0 = Instant::now();
        let poll = a.poll(&ours, local(), t0);
        assert_eq!(poll.out.len(), 2);
        for (_, req) in &poll.out {
            let c = verify(req, &theirs).unwrap();
            assert!(!c.nominated, "regular nomination: checks first");
            assert_eq!(c.role, Some((true, 7)));
            assert_eq!(c.priority, Some(ice::peer_reflexive(1)));
        }
        let (to0, req0) = &poll.out[0];
        let (to1, req1) = &poll.out[1];
        let resp = |a: &mut Agent, req: &[u8], pwd: &Credentials, to: SocketAddr| {
            a.on_response(&respond(req, local(), pwd, false), (local(), to), &ours, t0)
        };
        // Signed with the wrong password (the check is still in progress):
        // ignored.
        assert_eq!(resp(&mut a, req0, &ours, *to0), Responded::default());
        // From the wrong address: that pair fails.
        assert_eq!(resp(&mut a, req1, &theirs, *to0), Responded::default());
        // Success: no selection yet, but our nominating check of the pair.
        let r = resp(&mut a, req0, &theirs, *to0);
        assert!(!r.selected);
        let nom = r.nominate.expect("nominating check");
        assert!(verify(&nom, &theirs).unwrap().nominated);
        assert_eq!(a.selected(), None);
        // The late right response of the failed pair: no such transaction.
        assert_eq!(resp(&mut a, req1, &theirs, *to1), Responded::default());
        // Our nominating check succeeds: selected.
        let r = resp(&mut a, &nom, &theirs, *to0);
        assert!(r.selected && r.nominate.is_none());
        assert_eq!(a.selected(), Some(*to0));
        // No retransmissions once done; consent checks go to the selected
        // pair (one by 5 s ± 20 %).
        let mut sent = Vec::new();
        for s in 1..=10 {
            let poll = a.poll(&ours, local(), t0 + Duration::from_millis(500 * s));
            sent.extend(poll.out);
        }
        assert!((1..=2).contains(&sent.len()), "{sent:?}");
        assert!(sent.iter().all(|(to, _)| to == to0));
    }

    /// A worse pair valid first waits for the better one still being
    /// checked: the better one is nominated as soon as it is valid; had it
    /// not answered, the worse one would be at the next turn.
    #[test]
    fn the_best_valid_pair_is_nominated() {
        let (ours, theirs) = (Credentials::generate(), Credentials::generate());
        let peer = peer_with(
            &theirs,
            &[("198.51.100.1:5000", 100), ("198.51.100.2:5000", 50)],
            false,
        );
        let t0 = Instant::now();
        for better_answers in [true, false] {
            let mut a = Agent::new(peer.clone(), 1, true, 7);
            let poll = a.poll(&ours, local(), t0);
            let (best, worse) = (poll.out[0].clone(), poll.out[1].clone());
            let answer = |a: &mut Agent, (to, req): &(SocketAddr, Vec<u8>)| {
                a.on_response(
                    &respond(req, local(), &theirs, false),
                    (local(), *to),
                    &ours,
                    t0,
                )
            };
            assert_eq!(answer(&mut a, &worse), Responded::default(), "waits");
            let nominated = match better_answers {
                true => {
                    let r = answer(&mut a, &best);
                    (best.0, r.nominate.expect("the better one at once"))
                }
                false => {
                    let poll = a.poll(&ours, local(), t0 + Duration::from_millis(600));
                    let n = poll
                        .out
                        .into_iter()
                        .find(|(_, req)| verify(req, &theirs).unwrap().nominated)
                        .expect("the worse one at the next turn");
                    (n.0, n.1)
                }
            };
            let want = if better_answers { best.0 } else { worse.0 };
            assert_eq!(nominated.0, want);
            assert!(verify(&nominated.1, &theirs).unwrap().nominated);
        }
    }

    /// A nominating check that gets no answer fails after its tries; the
    /// next valid pair is nominated at the next turn.
    #[test]
    fn a_failed_nomination_moves_on() {
        let (ours, theirs) = (Credentials::generate(), Credentials::generate());
        let peer = peer_with(
            &theirs,
            &[("198.51.100.1:5000", 100), ("198.51.100.2:5000", 50)],
            false,
        );
        let mut a = Agent::new(peer, 1, true, 7);
        let t0 = Instant::now();
        let poll = a.poll(&ours, local(), t0);
        let (to0, req0) = poll.out[0].clone();
        let (to1, req1) = poll.out[1].clone();
        let r0 = a.on_response(
            &respond(&req0, local(), &theirs, false),
            (local(), to0),
            &ours,
            t0,
        );
        assert!(r0.nominate.is_some());
        // The second pair becomes valid while the first is being
        // nominated: no second nomination.
        let r1 = a.on_response(
            &respond(&req1, local(), &theirs, false),
            (local(), to1),
            &ours,
            t0,
        );
        assert_eq!(r1, Responded::default());
        // The nomination goes unanswered: retried, then failed; the next
        // turn nominates the other valid pair.
        let mut nominated_to = Vec::new();
        for s in 1..=12 {
            let poll = a.poll(&ours, local(), t0 + Duration::from_millis(600 * s));
            for (to, req) in poll.out {
                if verify(&req, &theirs).unwrap().nominated {
                    nominated_to.push(to);
                }
            }
        }
        assert!(
            nominated_to.contains(&to0) && nominated_to.contains(&to1),
            "{nominated_to:?}"
        );
        assert_eq!(a.selected(), None);
    }

    /// The peer controls: its check is answered with a triggered check;
    /// its nomination selects the pair only once our own check of it
    /// succeeded (a nomination alone, whatever its source, moves nothing).
    #[test]
    fn controlled_selects_a_nominated_pair_once_checked() {
        let (ours, theirs) = (Credentials::generate(), Credentials::generate());
        let mut a = Agent::new(peer_with(&theirs, &[], false), 1, false, 7);
        let src: SocketAddr = "198.51.100.9:7000".parse().unwrap();
        let now = Instant::now();
        let nominate = Check {
            nominated: true,
            role: Some((true, 5)),
            priority: Some(1234),
        };
        let ans = a.on_check(&nominate, (local(), src), &ours, now);
        assert!(!ans.conflict);
        assert!(!ans.selected, "not before our check succeeded");
        assert_eq!(a.selected(), None);
        let trig = ans.triggered.expect("triggered check");
        let c = verify(&trig, &theirs).unwrap();
        assert_eq!(c.role, Some((false, 7)));
        assert!(!c.nominated, "the controlled agent does not nominate");
        // Our check succeeds: the nominated pair is selected.
        let r = a.on_response(
            &respond(&trig, local(), &theirs, false),
            (local(), src),
            &ours,
            now,
        );
        assert!(r.selected && r.nominate.is_none());
        assert_eq!(a.selected(), Some(src));
        // Later nominations of it say so again (the relay re-adopts).
        assert!(a.on_check(&nominate, (local(), src), &ours, now).selected);
        // A nominating check from elsewhere (a spoofed source) selects
        // nothing: it only gets a triggered check.
        let other: SocketAddr = "203.0.113.66:9".parse().unwrap();
        let ans = a.on_check(&nominate, (local(), other), &ours, now);
        assert!(!ans.selected && ans.triggered.is_some());
        assert_eq!(a.selected(), Some(src));
    }

    /// Both controlling: the larger tie-breaker keeps the role, the other
    /// gets 487 and switches. A 487 to our check sets the opposite of the
    /// role that check claimed (however many arrive), and checks in flight
    /// start over with the new role.
    #[test]
    fn role_conflicts_follow_the_tie_breakers() {
        let (ours, theirs) = (Credentials::generate(), Credentials::generate());
        let src: SocketAddr = "198.51.100.9:7000".parse().unwrap();
        let now = Instant::now();
        let mut a = Agent::new(peer_with(&theirs, &[], false), 1, true, 10);
        let high = Check {
            nominated: true,
            role: Some((true, 11)),
            priority: None,
        };
        let ans = a.on_check(&high, (local(), src), &ours, now);
        assert!(!ans.conflict && !a.controlling(), "the peer wins");
        let low = Check {
            nominated: true,
            role: Some((true, 9)),
            priority: None,
        };
        let mut b = Agent::new(peer_with(&theirs, &[], false), 1, true, 10);
        assert!(b.on_check(&low, (local(), src), &ours, now).conflict);
        assert!(b.controlling(), "we win");

        let mut c = Agent::new(
            peer_with(
                &theirs,
                &[("198.51.100.9:7000", 9), ("198.51.100.10:7000", 8)],
                false,
            ),
            1,
            true,
            10,
        );
        let poll = c.poll(&ours, local(), now);
        assert_eq!(poll.out.len(), 2);
        // Both checks claimed controlling; both get 487: controlled once,
        // not flipped back by the second.
        for (to, req) in &poll.out {
            let r = c.on_response(
                &respond(req, *to, &theirs, true),
                (local(), *to),
                &ours,
                now,
            );
            assert_eq!(r, Responded::default());
        }
        assert!(!c.controlling());
        let again = c.poll(&ours, local(), now);
        assert_eq!(again.out.len(), 2, "both checked again");
        for (_, req) in &again.out {
            let chk = verify(req, &theirs).unwrap();
            assert_eq!(chk.role, Some((false, 10)));
            assert!(!chk.nominated);
        }
    }

    /// Consent: checks on the selected pair; no response for 30 s stops
    /// media; the pairs are checked again, and (as we control) a success
    /// selects one again.
    #[test]
    fn consent_expires_without_responses_and_recovers() {
        let (ours, theirs) = (Credentials::generate(), Credentials::generate());
        let src: SocketAddr = "198.51.100.9:7000".parse().unwrap();
        let t0 = Instant::now();
        let mut a = Agent::new(
            peer_with(&theirs, &[("198.51.100.9:7000", 9)], true),
            1,
            true,
            7,
        );
        let answer_all = |a: &mut Agent, out: Vec<(SocketAddr, Vec<u8>)>, now| {
            for (to, req) in out {
                answer_and_nominate(a, &req, (local(), to), (&ours, &theirs), now);
            }
        };
        let poll = a.poll(&ours, local(), t0);
        answer_all(&mut a, poll.out, t0);
        assert_eq!(a.selected(), Some(src));
        // Consent checks answered for 40 s: kept.
        for s in 1..=40 {
            let now = t0 + Duration::from_secs(s);
            let poll = a.poll(&ours, local(), now);
            assert!(!poll.consent_lost);
            for (_, req) in &poll.out {
                assert!(
                    !verify(req, &theirs).unwrap().nominated,
                    "consent checks do not nominate"
                );
            }
            answer_all(&mut a, poll.out, now);
        }
        assert_eq!(a.selected(), Some(src));
        // Then silence: lost within 30 s, reported once.
        let mut lost = 0;
        let mut t = t0;
        for s in 41..=75 {
            t = t0 + Duration::from_secs(s);
            let poll = a.poll(&ours, local(), t);
            lost += usize::from(poll.consent_lost);
            if lost > 0 {
                break;
            }
        }
        assert_eq!(lost, 1);
        assert_eq!(a.selected(), None);
        // The next turn checks again, then nominates; a success selects.
        let poll = a.poll(&ours, local(), t + Duration::from_secs(1));
        assert_eq!(poll.out.len(), 1);
        assert!(!verify(&poll.out[0].1, &theirs).unwrap().nominated);
        answer_all(&mut a, poll.out, t);
        assert_eq!(a.selected(), Some(src));
    }

    /// Controlled: after consent loss the peer does not nominate again;
    /// its earlier nomination stands, so our fresh check's success selects
    /// the pair again.
    #[test]
    fn controlled_recovers_after_consent_loss() {
        let (ours, theirs) = (Credentials::generate(), Credentials::generate());
        let src: SocketAddr = "198.51.100.9:7000".parse().unwrap();
        let t0 = Instant::now();
        let mut a = Agent::new(peer_with(&theirs, &[], false), 1, false, 7);
        let nominate = Check {
            nominated: true,
            role: Some((true, u64::MAX)),
            priority: None,
        };
        let trig = a
            .on_check(&nominate, (local(), src), &ours, t0)
            .triggered
            .unwrap();
        let r = a.on_response(
            &respond(&trig, local(), &theirs, false),
            (local(), src),
            &ours,
            t0,
        );
        assert!(r.selected);
        let lost = (1..=40)
            .map(|s| a.poll(&ours, local(), t0 + Duration::from_secs(s)))
            .position(|p| p.consent_lost)
            .expect("consent lost");
        let t = t0 + Duration::from_secs(lost as u64 + 2);
        let poll = a.poll(&ours, local(), t);
        assert_eq!(poll.out.len(), 1, "checked again");
        let r = a.on_response(
            &respond(&poll.out[0].1, local(), &theirs, false),
            (local(), src),
            &ours,
            t,
        );
        assert!(r.selected);
        assert_eq!(a.selected(), Some(src));
    }
}
