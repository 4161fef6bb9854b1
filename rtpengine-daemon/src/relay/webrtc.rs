//! A WebRTC leg on the relay: what arrives on a party's media port besides
//! RTP (RFC 7983: STUN is first byte 0–3, DTLS 20–63) and the SRTP keys the
//! DTLS handshake puts in force.
//!
//! One [`Leg`] per media section of a party that speaks ICE or DTLS-SRTP,
//! shared by its sockets. Signalling ([`Leg::configure`]) sets our ICE
//! credentials, our DTLS role and the fingerprint the peer announced; the
//! relay hands it the peer's STUN and DTLS datagrams and sends what comes
//! back; the call timer drives DTLS retransmissions ([`Leg::tick`]). Keys
//! are installed only once the peer's certificate matches its fingerprint
//! (which may come with the answer after the handshake finished).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use super::ice::{self, Credentials};
use super::srtp::Shared;
use crate::crypto::dtls::{Fingerprint, Identity, Role, Session, State};
use crate::crypto::srtp::{Context, Params};

/// What signalling decided for DTLS on a leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtlsPlan {
    /// Our role.
    pub role: Role,
    /// The peer's `a=fingerprint` (none yet: an offer we sent is not
    /// answered).
    pub remote: Option<Fingerprint>,
}

/// The leg's signalled state and its handshake.
#[derive(Default)]
struct LegState {
    /// Ours: checks made with them are answered.
    ice: Option<Credentials>,
    dtls: Option<DtlsPlan>,
    session: Option<Session>,
    /// Where the peer's nominated (else last valid) check came from: DTLS
    /// goes there.
    peer: Option<SocketAddr>,
    /// The keys in the slots come from the current session.
    keyed: bool,
}

/// One party's WebRTC leg (see the module documentation).
pub struct Leg {
    identity: Arc<Identity>,
    state: Mutex<LegState>,
    /// Unprotects what the party sends (filled by the handshake).
    pub rx: Shared,
    /// Protects what is sent to it.
    pub tx: Shared,
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
    /// The source passed a nominating connectivity check: it becomes the
    /// party's confirmed endpoint.
    pub nominated: bool,
    /// The datagram was refused (counted as an error).
    pub refused: bool,
}

impl Leg {
    /// A leg presenting `identity` in DTLS handshakes, with nothing signalled.
    pub fn new(identity: Arc<Identity>) -> Arc<Leg> {
        Arc::new(Leg {
            identity,
            state: Mutex::new(LegState::default()),
            rx: Shared::default(),
            tx: Shared::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LegState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies what an offer or answer decided. A changed role or peer
    /// fingerprint starts a new handshake (DTLS re-keying on a re-INVITE,
    /// RFC 5763 §6.6); until it is done nothing is relayed from or to the
    /// party. An unchanged plan keeps the session and its keys.
    pub fn configure(&self, ice: Option<Credentials>, dtls: Option<DtlsPlan>) {
        let mut st = self.state();
        st.ice = ice;
        let restart = match (&st.dtls, &dtls) {
            (Some(old), Some(new)) => {
                old.role != new.role
                    || old
                        .remote
                        .as_ref()
                        .is_some_and(|r| Some(r) != new.remote.as_ref())
            }
            (None, None) => false,
            _ => true,
        };
        st.dtls = dtls;
        if restart {
            st.session = None;
            self.unkey(&mut st);
        }
        self.install_keys(&mut st);
    }

    /// Our ICE credentials, if ICE runs on this leg.
    pub fn ice(&self) -> Option<Credentials> {
        self.state().ice.clone()
    }

    /// A STUN datagram from `src`: a connectivity check is answered; a
    /// client's handshake starts once the peer is reachable.
    pub fn stun(&self, pkt: &[u8], src: SocketAddr) -> Reply {
        let mut st = self.state();
        let Some(creds) = &st.ice else {
            return Reply {
                refused: true,
                ..Reply::default()
            };
        };
        let answered = match ice::answer(pkt, src, creds) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(%src, error = %e, "STUN message dropped");
                return Reply {
                    refused: true,
                    ..Reply::default()
                };
            }
        };
        if answered.nominated || st.peer.is_none() {
            st.peer = Some(src);
        }
        let mut out = vec![answered.response];
        out.extend(self.start_client(&mut st));
        Reply {
            out,
            nominated: answered.nominated,
            refused: false,
        }
    }

    /// A DTLS datagram from `src`.
    pub fn dtls(&self, pkt: &[u8], src: SocketAddr) -> Reply {
        let mut st = self.state();
        let Some(plan) = st.dtls.clone() else {
            return Reply {
                refused: true,
                ..Reply::default()
            };
        };
        // With ICE, only the address that passed a check is the peer.
        if st.ice.is_some() && st.peer != Some(src) {
            return Reply {
                refused: true,
                ..Reply::default()
            };
        }
        st.peer = Some(src);
        // A client hello on a finished (or failed) server session: the
        // peer restarted its side; answer with a new session.
        let hello = pkt.len() > 13 && pkt[0] == 22 && pkt[13] == 1;
        let stale = st
            .session
            .as_ref()
            .is_some_and(|s| s.state() != State::Handshake);
        if plan.role == Role::Server && (st.session.is_none() || (hello && stale)) {
            match Session::new(&self.identity, Role::Server) {
                Ok(s) => {
                    st.session = Some(s);
                    self.unkey(&mut st);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "DTLS session not created");
                    return Reply::default();
                }
            }
        }
        let Some(session) = st.session.as_mut() else {
            return Reply {
                refused: true,
                ..Reply::default()
            };
        };
        let out = match session.drive(Some(pkt)) {
            Ok(out) => out,
            Err(e) => {
                tracing::info!(%src, error = %e, "DTLS handshake failed");
                Vec::new()
            }
        };
        self.install_keys(&mut st);
        Reply {
            out,
            ..Reply::default()
        }
    }

    /// Once a second: retransmits a flight whose timer ran out, or starts
    /// a client's handshake towards `dest` (a peer without ICE: its SDP
    /// address). Returns where to send what.
    pub fn tick(&self, dest: Option<SocketAddr>) -> Option<(SocketAddr, Vec<Vec<u8>>)> {
        let mut st = self.state();
        if st.ice.is_none() && st.peer.is_none() {
            st.peer = dest;
        }
        let peer = st.peer?;
        let mut out = self.start_client(&mut st);
        if out.is_empty() {
            if let Some(s) = st
                .session
                .as_mut()
                .filter(|s| s.state() == State::Handshake)
            {
                out = s.drive(None).unwrap_or_default();
            }
        }
        (!out.is_empty()).then_some((peer, out))
    }

    /// Starts our handshake as the client, once.
    fn start_client(&self, st: &mut LegState) -> Vec<Vec<u8>> {
        let client = st.dtls.as_ref().is_some_and(|p| p.role == Role::Client);
        if !client || st.session.is_some() {
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
        st.session = Some(session);
        out
    }

    /// Fills the key slots from a finished handshake whose peer matches
    /// its fingerprint; a mismatch ends the session.
    fn install_keys(&self, st: &mut LegState) {
        if st.keyed {
            return;
        }
        let Some(remote) = st.dtls.as_ref().and_then(|p| p.remote.clone()) else {
            return;
        };
        let Some(session) = st.session.as_ref().filter(|s| s.state() == State::Done) else {
            return;
        };
        if !session.peer_matches(&remote) {
            tracing::warn!("DTLS peer certificate does not match its a=fingerprint: no keys");
            st.session = None;
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
        *lock(&self.rx) = ctx(&keys.remote);
        *lock(&self.tx) = ctx(&keys.local);
        st.keyed = true;
        tracing::info!(suite = keys.suite.name(), "DTLS-SRTP established");
    }

    fn unkey(&self, st: &mut LegState) {
        *lock(&self.rx) = None;
        *lock(&self.tx) = None;
        st.keyed = false;
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
            Some(DtlsPlan {
                role: Role::Server,
                remote: None,
            }),
        );
        let mut peer = Session::new(&theirs, Role::Client).unwrap();
        let mut to_leg = peer.drive(None).unwrap();
        for _ in 0..10 {
            let mut back = Vec::new();
            for d in to_leg.drain(..) {
                assert!(is_dtls(&d));
                back.extend(leg.dtls(&d, peer_at).out);
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
            Some(DtlsPlan {
                role: Role::Server,
                remote: Some(wrong),
            }),
        );
        assert!(lock(&leg.rx).is_none());
    }

    #[test]
    fn the_right_fingerprint_installs_matching_keys() {
        let (ours, theirs) = (identity(), identity());
        let leg = Leg::new(ours.clone());
        let peer_at: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        leg.configure(
            None,
            Some(DtlsPlan {
                role: Role::Client,
                remote: Some(theirs.fingerprint(Hash::Sha256)),
            }),
        );
        let mut peer = Session::new(&theirs, Role::Server).unwrap();
        let (to, mut to_peer) = leg.tick(Some(peer_at)).expect("client hello");
        assert_eq!(to, peer_at);
        for _ in 0..10 {
            let mut back = Vec::new();
            for d in to_peer.drain(..) {
                back.extend(peer.drive(Some(&d)).unwrap());
            }
            for d in back {
                to_peer.extend(leg.dtls(&d, peer_at).out);
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
        // Unchanged plan: keys kept; a new peer fingerprint: gone.
        leg.configure(
            None,
            Some(DtlsPlan {
                role: Role::Client,
                remote: Some(theirs.fingerprint(Hash::Sha256)),
            }),
        );
        assert!(lock(&leg.tx).is_some());
        leg.configure(
            None,
            Some(DtlsPlan {
                role: Role::Client,
                remote: Some(ours.fingerprint(Hash::Sha256)),
            }),
        );
        assert!(lock(&leg.tx).is_none());
    }
}
