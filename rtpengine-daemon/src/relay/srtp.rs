//! SRTP on the relay path: the contexts of one party's media (its key
//! unprotects what it sends, ours protects what is sent to it) and what a
//! socket does to the packets passing through it.
//!
//! A context is shared (`Arc<Mutex<…>>`) by every socket that uses it: the
//! RTP and RTCP ports of a party both unprotect with its key, and both of
//! the peer's ports protect towards it. One context per key and direction
//! keeps one rollover counter, one SRTCP index and one replay window per
//! SSRC, whichever port a packet takes (two copies would send an SRTCP
//! index twice under one key, or accept a replay on the other port).

use std::sync::{Arc, Mutex, PoisonError};

use crate::crypto::sdes::Crypto;
use crate::crypto::srtp::{Context, Params, SrtpError};
use crate::crypto::Suite;

/// An SRTP context shared by the sockets that use it; empty until its key
/// is known (a DTLS leg before its handshake is done): packets needing it
/// are then dropped.
pub type Shared = Arc<Mutex<Option<Context>>>;

/// One SRTP context with the `a=crypto` line it was made from (none for
/// keys from DTLS).
struct Keyed {
    line: Option<Crypto>,
    ctx: Shared,
}

impl Keyed {
    fn new(line: &Crypto) -> Option<Keyed> {
        let params = params(line);
        match Context::new(line.suite, &line.key_salt, params, line.mki) {
            Ok(ctx) => Some(Keyed {
                line: Some(line.clone()),
                ctx: Arc::new(Mutex::new(Some(ctx))),
            }),
            Err(e) => {
                // `Crypto::parse` checks the key length: not reached.
                tracing::warn!(error = %e, "SRTP key refused");
                None
            }
        }
    }
}

fn params(c: &Crypto) -> Params {
    Params {
        unencrypted_srtp: c.unencrypted_srtp,
        unencrypted_srtcp: c.unencrypted_srtcp,
        unauthenticated_srtp: c.unauthenticated_srtp,
    }
}

/// Whether two lines key SRTP the same way (the tag and lifetime do not
/// change the packets).
fn same_key(a: &Crypto, b: &Crypto) -> bool {
    same_material(a, b) && params(a) == params(b)
}

/// Whether two lines carry one master key (whatever their parameters).
fn same_material(a: &Crypto, b: &Crypto) -> bool {
    a.suite == b.suite && a.key_salt == b.key_salt && a.mki == b.mki
}

/// The SRTP contexts of one party's media section.
#[derive(Default)]
pub struct MediaSrtp {
    /// Unprotects what the party sends (its key).
    rx: Option<Keyed>,
    /// Protects what is sent to it (our key).
    tx: Option<Keyed>,
    /// A DTLS leg's contexts of its RTCP port's own handshake (RFC 5764
    /// §4.2: without rtcp-mux each component keys its own), used for
    /// SRTCP where the party does not mux; `None`: SRTCP under `rx`/`tx`.
    rtcp: Option<(Keyed, Keyed)>,
    /// Its leg is SRTP terminated here: without a key, nothing is relayed
    /// from or to it (never plain RTP in place of SRTP).
    srtp: bool,
}

impl MediaSrtp {
    /// Makes the contexts match the lines now in force. A context whose key
    /// did not change is kept: its rollover counters and replay windows
    /// must go on across re-INVITEs.
    pub fn update(&mut self, rx: Option<&Crypto>, tx: Option<&Crypto>, srtp: bool) {
        self.srtp = srtp;
        self.rtcp = None;
        for (slot, want) in [(&mut self.rx, rx), (&mut self.tx, tx)] {
            match want {
                None => *slot = None,
                Some(w)
                    if slot
                        .as_ref()
                        .and_then(|k| k.line.as_ref())
                        .is_some_and(|l| same_key(l, w)) => {}
                Some(w) => *slot = Keyed::new(w),
            }
        }
    }

    /// Keys from a DTLS handshake: `rx` and `tx` are filled once it is
    /// done (and emptied when it restarts); until then nothing is relayed
    /// from or to the party. `rtcp`: those of the RTCP port's handshake,
    /// for SRTCP where the party does not mux.
    pub fn use_dtls(&mut self, (rx, tx): (&Shared, &Shared), rtcp: (&Shared, &Shared)) {
        let shares =
            |k: &Option<Keyed>, s: &Shared| k.as_ref().is_some_and(|k| Arc::ptr_eq(&k.ctx, s));
        let keyed = |s: &Shared| Keyed {
            line: None,
            ctx: s.clone(),
        };
        if !shares(&self.rx, rx) || !shares(&self.tx, tx) {
            self.rx = Some(keyed(rx));
            self.tx = Some(keyed(tx));
        }
        let same_rtcp = self
            .rtcp
            .as_ref()
            .is_some_and(|(r, t)| Arc::ptr_eq(&r.ctx, rtcp.0) && Arc::ptr_eq(&t.ctx, rtcp.1));
        if !same_rtcp {
            self.rtcp = Some((keyed(rtcp.0), keyed(rtcp.1)));
        }
        self.srtp = true;
    }

    /// A bundled section keyed by SDES: each direction whose key is its
    /// head's takes the head's context itself (one SRTP session per
    /// transport: one rollover counter and replay window per SSRC,
    /// whichever section it is in); a direction under a key of its own
    /// keeps its own.
    pub fn share_head(&mut self, head: &MediaSrtp) {
        for (mine, theirs) in [(&mut self.rx, &head.rx), (&mut self.tx, &head.tx)] {
            let same = match (mine.as_ref(), theirs.as_ref()) {
                (Some(m), Some(h)) => match (&m.line, &h.line) {
                    (Some(a), Some(b)) => same_key(a, b),
                    _ => false,
                },
                _ => false,
            };
            if let (true, Some(h)) = (same, theirs) {
                *mine = Some(Keyed {
                    line: h.line.clone(),
                    ctx: h.ctx.clone(),
                });
            }
        }
    }

    /// The suite the party's packets are unprotected with (else the one
    /// protecting what it is sent), for `query`.
    pub fn suite(&self) -> Option<Suite> {
        let suite = |k: &Keyed| match &k.line {
            Some(l) => Some(l.suite),
            None => lock(&k.ctx).as_ref().map(Context::suite),
        };
        self.rx
            .as_ref()
            .and_then(suite)
            .or_else(|| self.tx.as_ref().and_then(suite))
    }

    /// What a socket of this party does to the packets it relays to a
    /// party whose contexts are `peer`: unprotect with this party's key,
    /// protect with the one towards the peer. Where the two are one key
    /// (the answerer took a line the offerer's key came in), packets pass
    /// through untouched, as upstream does; `recrypt` authenticates them
    /// first but still relays them as received (protecting them again under
    /// the key the sender uses would repeat its packet indexes). A leg that
    /// speaks SRTP without a key in force gets nothing, and nothing from it
    /// is relayed.
    pub fn transform(&self, peer: &MediaSrtp, recrypt: bool) -> Transform {
        self.transform_muxed(peer, recrypt, (true, true))
    }

    /// [`Self::transform`] where this party and the peer mux RTCP (`mux`)
    /// or not: SRTCP of a DTLS party that does not is under its RTCP
    /// port's own keys.
    pub fn transform_muxed(
        &self,
        peer: &MediaSrtp,
        recrypt: bool,
        (mux, peer_mux): (bool, bool),
    ) -> Transform {
        let mut t = self.transform_rtp(peer, recrypt);
        let ctx = |k: &Keyed| Some(k.ctx.clone());
        if let Some((rx, tx)) = self.rtcp.as_ref().filter(|_| !mux && t.decrypt.is_some()) {
            t.rtcp.decrypt = ctx(rx);
            t.rtcp.echo = ctx(tx);
        }
        if let Some((_, tx)) = peer
            .rtcp
            .as_ref()
            .filter(|_| !peer_mux && t.encrypt.is_some())
        {
            t.rtcp.encrypt = ctx(tx);
        }
        t
    }

    fn transform_rtp(&self, peer: &MediaSrtp, recrypt: bool) -> Transform {
        if (self.srtp && self.rx.is_none()) || (peer.srtp && peer.tx.is_none()) {
            return Transform {
                drop: true,
                ..Transform::default()
            };
        }
        let ctx = |k: &Option<Keyed>| k.as_ref().map(|k| k.ctx.clone());
        let lines = (
            self.rx.as_ref().and_then(|k| k.line.as_ref()),
            peer.tx.as_ref().and_then(|k| k.line.as_ref()),
        );
        if let (Some(a), Some(b)) = lines {
            if same_material(a, b) {
                return match recrypt {
                    false => Transform::default(),
                    true => Transform {
                        decrypt: ctx(&self.rx),
                        rtcp: RtcpContexts {
                            decrypt: ctx(&self.rx),
                            ..RtcpContexts::default()
                        },
                        verify_only: true,
                        ..Transform::default()
                    },
                };
            }
        }
        let (decrypt, encrypt, echo) = (ctx(&self.rx), ctx(&peer.tx), ctx(&self.tx));
        Transform {
            rtcp: RtcpContexts {
                decrypt: decrypt.clone(),
                encrypt: encrypt.clone(),
                echo: echo.clone(),
            },
            decrypt,
            encrypt,
            echo,
            ..Transform::default()
        }
    }
}

/// The contexts SRTCP goes through: the RTP ones, or those of a DTLS
/// party's RTCP port (see [`MediaSrtp::transform_muxed`]).
#[derive(Clone, Default)]
pub struct RtcpContexts {
    /// Unprotects the party's SRTCP.
    pub decrypt: Option<Shared>,
    /// Protects the SRTCP going on to the peer.
    pub encrypt: Option<Shared>,
    /// Protects the SRTCP `media echo` sends back to the party.
    pub echo: Option<Shared>,
}

/// What one socket does to the packets it relays (see
/// [`MediaSrtp::transform`]); all `None` for plain RTP and passthrough.
#[derive(Clone, Default)]
pub struct Transform {
    /// Unprotects what the party sends here.
    pub decrypt: Option<Shared>,
    /// Protects what goes on to the peer.
    pub encrypt: Option<Shared>,
    /// Protects what `media echo` sends back to the party itself.
    pub echo: Option<Shared>,
    /// The same for SRTCP.
    pub rtcp: RtcpContexts,
    /// Authenticate only: relay the packet as received (`recrypt` where
    /// both sides use one key).
    pub verify_only: bool,
    /// Relay nothing: a leg that speaks SRTP has no key in force.
    pub drop: bool,
}

impl std::fmt::Debug for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transform")
            .field("decrypt", &self.decrypt.is_some())
            .field("encrypt", &self.encrypt.is_some())
            .field("verify_only", &self.verify_only)
            .field("drop", &self.drop)
            .finish()
    }
}

impl Transform {
    /// The context unprotecting what the party sends (SRTCP if `rtcp`).
    pub fn decrypt_for(&self, rtcp: bool) -> Option<&Shared> {
        match rtcp {
            true => self.rtcp.decrypt.as_ref(),
            false => self.decrypt.as_ref(),
        }
    }

    /// The context protecting what goes on to the peer (SRTCP if `rtcp`).
    pub fn encrypt_for(&self, rtcp: bool) -> Option<&Shared> {
        match rtcp {
            true => self.rtcp.encrypt.as_ref(),
            false => self.encrypt.as_ref(),
        }
    }

    /// The context protecting what `media echo` returns (SRTCP if `rtcp`).
    pub fn echo_for(&self, rtcp: bool) -> Option<&Shared> {
        match rtcp {
            true => self.rtcp.echo.as_ref(),
            false => self.echo.as_ref(),
        }
    }

    /// Whether packets are checked or changed on the way (then they stay
    /// in userspace).
    pub fn active(&self) -> bool {
        self.decrypt.is_some() || self.encrypt.is_some() || self.drop
    }

    /// Whether what the party sends is unprotected here and handled as
    /// plain RTP (filters may rewrite it).
    pub fn terminates(&self) -> bool {
        self.decrypt.is_some() && !self.verify_only
    }

    /// Whether `other` uses the same contexts.
    pub fn same(&self, other: &Transform) -> bool {
        let eq = |a: &Option<Shared>, b: &Option<Shared>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        eq(&self.decrypt, &other.decrypt)
            && eq(&self.encrypt, &other.encrypt)
            && eq(&self.echo, &other.echo)
            && eq(&self.rtcp.decrypt, &other.rtcp.decrypt)
            && eq(&self.rtcp.encrypt, &other.rtcp.encrypt)
            && eq(&self.rtcp.echo, &other.rtcp.echo)
            && self.verify_only == other.verify_only
            && self.drop == other.drop
    }
}

fn lock(ctx: &Mutex<Option<Context>>) -> std::sync::MutexGuard<'_, Option<Context>> {
    ctx.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Unprotects `pkt` (SRTCP if `rtcp`) into a new buffer.
pub fn unprotect(
    ctx: &Mutex<Option<Context>>,
    pkt: &[u8],
    rtcp: bool,
) -> Result<Vec<u8>, SrtpError> {
    let mut guard = lock(ctx);
    let c = guard.as_mut().ok_or(SrtpError::NoKey)?;
    let mut buf = with_room(pkt);
    match rtcp {
        true => c.unprotect_rtcp(&mut buf)?,
        false => c.unprotect_rtp(&mut buf)?,
    }
    Ok(buf)
}

/// A copy of `pkt` with room for a tag, an MKI and an SRTCP index, so that
/// protecting it (again) does not reallocate.
pub fn with_room(pkt: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(pkt.len() + 32);
    buf.extend_from_slice(pkt);
    buf
}

/// Protects `buf` in place (SRTCP if `rtcp`).
pub fn protect(
    ctx: &Mutex<Option<Context>>,
    buf: &mut Vec<u8>,
    rtcp: bool,
) -> Result<(), SrtpError> {
    let mut guard = lock(ctx);
    let c = guard.as_mut().ok_or(SrtpError::NoKey)?;
    match rtcp {
        true => c.protect_rtcp(buf),
        false => c.protect_rtp(buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(tag: u32, key: u8) -> Crypto {
        Crypto {
            tag,
            suite: Suite::AesCm128HmacSha1_80,
            key_salt: vec![key; 30],
            lifetime: None,
            mki: None,
            unencrypted_srtp: false,
            unencrypted_srtcp: false,
            unauthenticated_srtp: false,
        }
    }

    #[test]
    fn an_unchanged_key_keeps_its_context() {
        let mut m = MediaSrtp::default();
        m.update(Some(&line(1, 1)), None, true);
        let before = m.transform(&MediaSrtp::default(), false);
        // Same key under another tag: same context (same rollover state).
        m.update(Some(&line(3, 1)), None, true);
        assert!(before.same(&m.transform(&MediaSrtp::default(), false)));
        m.update(Some(&line(3, 2)), None, true);
        assert!(!before.same(&m.transform(&MediaSrtp::default(), false)));
        m.update(None, None, false);
        assert!(!m.transform(&MediaSrtp::default(), false).active());
    }

    /// A DTLS party that does not mux: its SRTCP goes through the
    /// contexts of its RTCP port's handshake, both ways; muxed, through
    /// the RTP ones.
    #[test]
    fn srtcp_of_a_dtls_party_without_mux_uses_its_rtcp_keys() {
        let (rx, tx, crx, ctx) = (
            Shared::default(),
            Shared::default(),
            Shared::default(),
            Shared::default(),
        );
        let mut a = MediaSrtp::default();
        a.use_dtls((&rx, &tx), (&crx, &ctx));
        let plain = MediaSrtp::default();
        let is = |got: Option<&Shared>, want: &Shared| got.is_some_and(|g| Arc::ptr_eq(g, want));
        let t = a.transform_muxed(&plain, false, (false, true));
        assert!(is(t.decrypt_for(false), &rx) && is(t.decrypt_for(true), &crx));
        assert!(is(t.echo_for(false), &tx) && is(t.echo_for(true), &ctx));
        let t = a.transform_muxed(&plain, false, (true, true));
        assert!(is(t.decrypt_for(true), &rx));
        let t = plain.transform_muxed(&a, false, (true, false));
        assert!(is(t.encrypt_for(false), &tx) && is(t.encrypt_for(true), &ctx));
        assert!(!t.same(&plain.transform_muxed(&a, false, (true, true))));
        // SDES keys again: no RTCP contexts of their own.
        a.update(Some(&line(1, 1)), Some(&line(1, 2)), true);
        let t = a.transform_muxed(&plain, false, (false, true));
        assert!(t
            .decrypt_for(true)
            .is_some_and(|c| Arc::ptr_eq(c, t.decrypt_for(false).unwrap())));
    }

    #[test]
    fn equal_keys_pass_through_unless_recrypt() {
        let mut a = MediaSrtp::default();
        let mut b = MediaSrtp::default();
        a.update(Some(&line(1, 1)), Some(&line(1, 2)), true);
        b.update(Some(&line(1, 2)), Some(&line(1, 1)), true);
        assert!(!a.transform(&b, false).active());
        assert!(!b.transform(&a, false).active());
        // `recrypt`: authenticated, never protected again under the
        // sender's own key.
        let t = a.transform(&b, true);
        assert!(t.decrypt.is_some() && t.encrypt.is_none() && t.verify_only);
        assert!(!t.terminates());
        // One side plain: decrypt only.
        let plain = MediaSrtp::default();
        let t = a.transform(&plain, false);
        assert!(t.decrypt.is_some() && t.encrypt.is_none() && t.terminates());
        // An SRTP leg without a key in force: nothing relayed to it.
        let mut keyless = MediaSrtp::default();
        keyless.update(Some(&line(1, 3)), None, true);
        assert!(a.transform(&keyless, false).drop);
        assert!(!keyless.transform(&plain, false).drop);
    }

    #[test]
    fn what_one_side_protects_the_other_unprotects() {
        let mut a = MediaSrtp::default();
        let mut b = MediaSrtp::default();
        // a sends under key 1; we send to b under key 2.
        a.update(Some(&line(1, 1)), None, true);
        b.update(Some(&line(1, 2)), Some(&line(1, 2)), true);
        let t = a.transform(&b, false);
        let sender = Mutex::new(Some(
            Context::new(
                Suite::AesCm128HmacSha1_80,
                &[1; 30],
                Params::default(),
                None,
            )
            .unwrap(),
        ));
        let receiver = Mutex::new(Some(
            Context::new(
                Suite::AesCm128HmacSha1_80,
                &[2; 30],
                Params::default(),
                None,
            )
            .unwrap(),
        ));
        let mut rtp = vec![0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0xaa, 0xbb];
        let plain = rtp.clone();
        protect(&sender, &mut rtp, false).unwrap();
        let mut relayed = unprotect(t.decrypt.as_ref().unwrap(), &rtp, false).unwrap();
        assert_eq!(relayed, plain);
        protect(t.encrypt.as_ref().unwrap(), &mut relayed, false).unwrap();
        assert_eq!(unprotect(&receiver, &relayed, false).unwrap(), plain);
        // A replay of the same packet is refused.
        assert_eq!(
            unprotect(t.decrypt.as_ref().unwrap(), &rtp, false),
            Err(SrtpError::Replay)
        );
    }
}
