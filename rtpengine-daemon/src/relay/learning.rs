//! Endpoint learning: from which address a party really sends, and whether a
//! packet from a given source is accepted (upstream's
//! `media_packet_address_check()`, see sdp-and-media.md §6).
//!
//! Pure logic, so every mode is unit-tested without sockets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How a stream learns its peer's real address (`--endpoint-learning`, ng
/// key `endpoint-learning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointLearning {
    /// Track sources for 3 s after signalling; the next packet confirms.
    Delayed,
    /// The first packet's source confirms.
    Immediate,
    /// Never learn; send to the SDP address.
    Off,
    /// Rank sources by how well they match the SDP for 3 s (upstream default).
    #[default]
    Heuristic,
}

impl EndpointLearning {
    /// Every mode with its name, as upstream spells them.
    pub const ALL: [(&'static str, EndpointLearning); 4] = [
        ("delayed", EndpointLearning::Delayed),
        ("immediate", EndpointLearning::Immediate),
        ("off", EndpointLearning::Off),
        ("heuristic", EndpointLearning::Heuristic),
    ];
}

impl std::str::FromStr for EndpointLearning {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, mode)| *mode)
            .ok_or_else(|| {
                format!("unknown endpoint learning mode '{s}' (delayed, immediate, off, heuristic)")
            })
    }
}

/// How long after each signalling event sources are still being ranked.
pub const LEARNING_WINDOW: Duration = Duration::from_secs(3);

/// Per-stream policy from flags and options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Learning mode.
    pub mode: EndpointLearning,
    /// `strict source`: drop packets from anyone but the learned endpoint.
    pub strict: bool,
    /// `media handover`: a new source takes over the stream.
    pub handover: bool,
    /// `asymmetric`: never learn; always send to the SDP address.
    pub asymmetric: bool,
    /// `NAT-wait`: send nothing to the party before it has sent something
    /// (so its NAT binding is open first).
    pub nat_wait: bool,
}

/// What the party announced and what has been learned about it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Address from SDP (`None` when unknown or the zero address).
    pub sdp: Option<SocketAddr>,
    /// Best source seen so far (confirmed or candidate).
    pub learned: Option<SocketAddr>,
    /// Whether `learned` is final.
    pub confirmed: bool,
    score: u8,
    /// Until when sources are ranked rather than confirmed.
    pub window_end: Instant,
    /// Whether both sides of the stream have been negotiated.
    pub answered: bool,
    /// A packet from the party has been accepted since its SDP address
    /// last changed (`NAT-wait`).
    pub heard: bool,
    /// ICE consent to send was lost (RFC 7675): nothing goes to the party
    /// and nothing is learnt until ICE selects a pair again
    /// ([`Endpoint::adopt`]).
    pub gated: bool,
}

/// The decision for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it.
    Accept,
    /// Drop it and count an error.
    Reject,
}

impl Endpoint {
    /// A new endpoint with the SDP address (if any), window starting now.
    pub fn new(sdp: Option<SocketAddr>, now: Instant) -> Endpoint {
        Endpoint {
            sdp,
            learned: None,
            confirmed: false,
            score: 0,
            window_end: now + LEARNING_WINDOW,
            answered: false,
            heard: false,
            gated: false,
        }
    }

    /// A signalling event: new SDP address, learning restarts its window. A
    /// changed SDP endpoint forgets what was learned.
    pub fn signal(&mut self, sdp: Option<SocketAddr>, answered: bool, now: Instant) {
        if sdp != self.sdp {
            self.sdp = sdp;
            self.learned = None;
            self.confirmed = false;
            self.score = 0;
            self.heard = false;
        }
        self.answered = answered;
        self.window_end = now + LEARNING_WINDOW;
    }

    /// Takes `addr` as the confirmed source: what a kernel flow adopted
    /// after a restart expects (the previous process had confirmed it).
    pub fn adopt(&mut self, addr: SocketAddr) {
        self.learned = Some(addr);
        self.confirmed = true;
        self.heard = true;
        self.gated = false;
    }

    /// ICE consent lost: the endpoint is [`Endpoint::gated`] until ICE
    /// adopts an address again. What was learnt stays for strict source.
    pub fn gate(&mut self) {
        self.gated = true;
    }

    /// Where packets to this party go.
    pub fn destination(&self, policy: &Policy) -> Option<SocketAddr> {
        if self.gated {
            return None;
        }
        if policy.nat_wait && !self.heard {
            return None;
        }
        if policy.asymmetric || policy.mode == EndpointLearning::Off {
            return self.sdp;
        }
        self.learned.or(self.sdp)
    }

    fn score_of(&self, src: SocketAddr) -> u8 {
        match self.sdp {
            Some(sdp) if sdp == src => 3,
            Some(sdp) if sdp.ip() == src.ip() => 2,
            Some(sdp) if sdp.port() == src.port() => 1,
            _ => 0,
        }
    }

    /// Checks a packet from `src` and updates what is learned.
    pub fn check(&mut self, src: SocketAddr, policy: &Policy, now: Instant) -> Verdict {
        if self.gated {
            // Media from the party still goes on (consent is about sending
            // to it); it teaches nothing.
            return match policy.strict && self.learned.is_some_and(|l| l != src) {
                true => Verdict::Reject,
                false => Verdict::Accept,
            };
        }
        if policy.mode == EndpointLearning::Off {
            // Nothing is learned; strict source compares with the SDP address.
            return match (policy.strict, self.sdp) {
                (true, Some(sdp)) if sdp != src => Verdict::Reject,
                _ => Verdict::Accept,
            };
        }
        // `asymmetric` learns like the others (what strict source checks
        // against), only the destination stays the SDP address.
        if self.confirmed {
            if self.learned == Some(src) {
                return Verdict::Accept;
            }
            // Upstream's "other options before dropping": the address the
            // party announced is good too (except for asymmetric streams,
            // whose announced address is where they receive, not send).
            if !policy.asymmetric && self.sdp == Some(src) {
                return Verdict::Accept;
            }
            if policy.handover {
                tracing::info!(old = ?self.learned, new = %src, "Media handover: switching endpoint");
                self.learned = Some(src);
                return Verdict::Accept;
            }
            return if policy.strict {
                Verdict::Reject
            } else {
                Verdict::Accept
            };
        }
        let score = self.score_of(src);
        let in_window = now < self.window_end || !self.answered;
        match policy.mode {
            EndpointLearning::Immediate if self.answered => {
                self.confirm(src);
            }
            EndpointLearning::Delayed if !in_window => {
                self.confirm(src);
            }
            EndpointLearning::Heuristic if self.answered && score == 3 => {
                self.confirm(src);
            }
            EndpointLearning::Heuristic if !in_window => {
                let best = self.learned.unwrap_or(src);
                self.confirm(best);
            }
            EndpointLearning::Heuristic => {
                // One candidate per rank, the latest of a rank replacing the
                // earlier one (upstream's detected_endpoints slots).
                if self.learned.is_none() || score >= self.score {
                    self.learned = Some(src);
                    self.score = score;
                } else if policy.strict && score < self.score {
                    return Verdict::Reject;
                }
            }
            _ => {
                // Still learning (delayed, or not answered yet): follow the
                // latest source.
                self.learned = Some(src);
            }
        }
        if self.confirmed && policy.strict && self.learned != Some(src) {
            return Verdict::Reject;
        }
        Verdict::Accept
    }

    /// Checks a packet that must not teach anything (RTCP arriving on an
    /// RTP port the party does not mux: upstream does not learn from it):
    /// strict source still applies once the address is confirmed.
    pub fn admit(&self, src: SocketAddr, policy: &Policy) -> Verdict {
        let expected = match policy.mode {
            EndpointLearning::Off => self.sdp,
            _ if self.confirmed => self.learned,
            _ => None,
        };
        match expected {
            Some(e) if policy.strict && e != src && self.sdp != Some(src) => Verdict::Reject,
            _ => Verdict::Accept,
        }
    }

    fn confirm(&mut self, src: SocketAddr) {
        tracing::debug!(endpoint = %src, "Confirmed peer address");
        self.learned = Some(src);
        self.confirmed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn policy(mode: EndpointLearning) -> Policy {
        Policy {
            mode,
            strict: false,
            handover: false,
            asymmetric: false,
            nat_wait: false,
        }
    }

    fn answered(sdp: &str, now: Instant) -> Endpoint {
        let mut e = Endpoint::new(Some(a(sdp)), now);
        e.signal(Some(a(sdp)), true, now);
        e
    }

    /// ICE consent lost: nothing is sent, nothing learnt (a stranger's
    /// packet is relayed onwards but does not become the destination),
    /// until ICE adopts an address.
    #[test]
    fn a_gated_endpoint_sends_nowhere_until_ice_adopts() {
        let now = Instant::now();
        for mode in [
            EndpointLearning::Heuristic,
            EndpointLearning::Immediate,
            EndpointLearning::Delayed,
            EndpointLearning::Off,
        ] {
            let p = policy(mode);
            let mut e = answered("198.51.100.1:5000", now);
            e.adopt(a("198.51.100.1:5000"));
            e.gate();
            assert_eq!(e.destination(&p), None, "{mode:?}");
            let later = now + LEARNING_WINDOW * 2;
            assert_eq!(e.check(a("203.0.113.66:9"), &p, later), Verdict::Accept);
            assert_eq!(e.destination(&p), None, "{mode:?}: learnt nothing");
            e.adopt(a("198.51.100.1:5002"));
            assert!(e.destination(&p).is_some(), "{mode:?}");
        }
        let strict = Policy {
            strict: true,
            ..policy(EndpointLearning::Heuristic)
        };
        let mut e = answered("198.51.100.1:5000", now);
        e.adopt(a("198.51.100.1:5000"));
        e.gate();
        assert_eq!(e.check(a("203.0.113.66:9"), &strict, now), Verdict::Reject);
        assert_eq!(
            e.check(a("198.51.100.1:5000"), &strict, now),
            Verdict::Accept,
            "the party's own media still goes on"
        );
    }

    #[test]
    fn heuristic_exact_sdp_confirms_at_once() {
        let now = Instant::now();
        let mut e = answered("198.51.100.1:2010", now);
        let p = policy(EndpointLearning::Heuristic);
        assert_eq!(e.check(a("198.51.100.1:2010"), &p, now), Verdict::Accept);
        assert!(e.confirmed);
        // Impostors are still forwarded without strict source, destination stays.
        assert_eq!(e.check(a("198.51.100.6:2032"), &p, now), Verdict::Accept);
        assert_eq!(e.destination(&p), Some(a("198.51.100.1:2010")));
    }

    #[test]
    fn heuristic_ranks_then_confirms_best_after_window() {
        let now = Instant::now();
        let mut e = answered("198.51.100.1:2010", now);
        let p = Policy {
            strict: true,
            ..policy(EndpointLearning::Heuristic)
        };
        assert_eq!(e.check(a("203.0.113.9:5000"), &p, now), Verdict::Accept);
        assert_eq!(
            e.check(a("198.51.100.1:4000"), &p, now),
            Verdict::Accept,
            "same address ranks higher"
        );
        assert_eq!(
            e.check(a("203.0.113.9:5000"), &p, now),
            Verdict::Reject,
            "worse candidate with strict"
        );
        let later = now + LEARNING_WINDOW + Duration::from_millis(1);
        assert_eq!(e.check(a("198.51.100.1:4000"), &p, later), Verdict::Accept);
        assert!(e.confirmed);
        assert_eq!(e.learned, Some(a("198.51.100.1:4000")));
        assert_eq!(e.check(a("203.0.113.9:5000"), &p, later), Verdict::Reject);
    }

    #[test]
    fn nat_port_change_is_followed() {
        // Heuristic: the NAT rewrote the port; the same address is learned.
        let now = Instant::now();
        let mut e = answered("198.51.100.1:2010", now);
        let p = policy(EndpointLearning::Heuristic);
        e.check(a("198.51.100.1:61000"), &p, now);
        assert_eq!(e.destination(&p), Some(a("198.51.100.1:61000")));
    }

    #[test]
    fn delayed_and_immediate() {
        let now = Instant::now();
        let mut e = answered("198.51.100.1:2010", now);
        let p = policy(EndpointLearning::Delayed);
        e.check(a("192.0.2.1:1"), &p, now);
        assert!(!e.confirmed);
        e.check(a("192.0.2.2:2"), &p, now + LEARNING_WINDOW);
        assert!(e.confirmed);
        assert_eq!(e.learned, Some(a("192.0.2.2:2")));

        let mut e = answered("198.51.100.1:2010", now);
        let p = policy(EndpointLearning::Immediate);
        e.check(a("192.0.2.1:1"), &p, now);
        assert!(e.confirmed);
        assert_eq!(e.destination(&p), Some(a("192.0.2.1:1")));
    }

    #[test]
    fn unanswered_streams_never_confirm() {
        let now = Instant::now();
        let mut e = Endpoint::new(Some(a("198.51.100.1:2010")), now);
        let p = policy(EndpointLearning::Immediate);
        e.check(a("198.51.100.1:2010"), &p, now + Duration::from_secs(10));
        assert!(!e.confirmed);
    }

    #[test]
    fn handover_strict_asymmetric_off() {
        let now = Instant::now();
        let sdp = "198.51.100.1:2010";
        let mut e = answered(sdp, now);
        let p = Policy {
            handover: true,
            ..policy(EndpointLearning::Heuristic)
        };
        e.check(a(sdp), &p, now);
        e.check(a("198.51.100.6:2012"), &p, now);
        assert_eq!(e.destination(&p), Some(a("198.51.100.6:2012")));

        let mut e = answered(sdp, now);
        let p = Policy {
            strict: true,
            ..policy(EndpointLearning::Heuristic)
        };
        e.check(a(sdp), &p, now);
        assert_eq!(e.check(a("198.51.100.6:2012"), &p, now), Verdict::Reject);

        // asymmetric: it learns (strict source checks the learned source)
        // but always sends to the SDP address.
        let mut e = answered(sdp, now);
        let p = Policy {
            asymmetric: true,
            strict: true,
            ..policy(EndpointLearning::Immediate)
        };
        assert_eq!(e.check(a("192.0.2.1:9"), &p, now), Verdict::Accept);
        assert!(e.confirmed);
        assert_eq!(e.destination(&p), Some(a(sdp)));
        assert_eq!(e.check(a("192.0.2.1:9"), &p, now), Verdict::Accept);
        // Its SDP address is where it receives: not a valid source.
        assert_eq!(e.check(a(sdp), &p, now), Verdict::Reject);
        assert_eq!(e.check(a("192.0.2.7:9"), &p, now), Verdict::Reject);

        // Strict source after confirmation still takes the SDP address
        // (upstream's second chance), and RTCP that must not teach is
        // checked the same way.
        let mut e = answered(sdp, now);
        let p = Policy {
            strict: true,
            ..policy(EndpointLearning::Immediate)
        };
        e.check(a("198.51.100.1:40000"), &p, now);
        assert_eq!(e.check(a(sdp), &p, now), Verdict::Accept);
        assert_eq!(e.learned, Some(a("198.51.100.1:40000")), "not re-learned");
        assert_eq!(e.admit(a("198.51.100.9:1"), &p), Verdict::Reject);
        assert_eq!(e.admit(a(sdp), &p), Verdict::Accept);

        let mut e = answered(sdp, now);
        let p = policy(EndpointLearning::Off);
        e.check(a("192.0.2.1:9"), &p, now);
        assert_eq!(e.destination(&p), Some(a(sdp)));
    }

    #[test]
    fn new_sdp_endpoint_forgets_learned() {
        let now = Instant::now();
        let mut e = answered("198.51.100.1:2010", now);
        let p = policy(EndpointLearning::Immediate);
        e.check(a("192.0.2.1:1"), &p, now);
        e.signal(Some(a("198.51.100.1:2020")), true, now);
        assert!(!e.confirmed);
        assert_eq!(e.destination(&p), Some(a("198.51.100.1:2020")));
    }

    /// Equal ranks: the latest source of a rank is the candidate (upstream
    /// overwrites its slot).
    #[test]
    fn heuristic_ties_go_to_the_latest() {
        let now = Instant::now();
        let mut e = answered("198.51.100.1:2010", now);
        let p = policy(EndpointLearning::Heuristic);
        e.check(a("198.51.100.1:4000"), &p, now);
        e.check(a("198.51.100.1:4002"), &p, now);
        assert_eq!(e.learned, Some(a("198.51.100.1:4002")));
        // A worse rank does not displace it.
        e.check(a("203.0.113.9:4000"), &p, now);
        assert_eq!(e.learned, Some(a("198.51.100.1:4002")));
    }

    #[test]
    fn nat_wait_sends_nothing_before_the_party_was_heard() {
        let now = Instant::now();
        let sdp = Some("192.0.2.1:4000".parse().unwrap());
        let p = Policy {
            nat_wait: true,
            ..policy(EndpointLearning::Heuristic)
        };
        let mut e = Endpoint::new(sdp, now);
        assert_eq!(e.destination(&p), None);
        e.heard = true;
        assert_eq!(e.destination(&p), sdp);
        // A new SDP address waits again.
        e.signal(Some("192.0.2.2:4000".parse().unwrap()), true, now);
        assert_eq!(e.destination(&p), None);
    }
}
