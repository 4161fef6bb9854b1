//! SDES in offers and answers: which `a=crypto` lines the SDP written
//! onwards carries, and which keys then protect each direction (the
//! decisions on lines are [`crate::crypto::negotiate`]'s; this file applies
//! them to the call's media and to the outgoing SDP).
//!
//! A party speaks SDES on a section whose protocol is `RTP/SAVP` or
//! `RTP/SAVPF` (unless it offers or answers DTLS only: an `a=fingerprint`
//! and no `a=crypto`, which passes through untouched as before). Between
//! two such parties, or between one and a plain RTP party
//! (`transport-protocol`), SRTP is terminated here. A plain party's own
//! `a=crypto` lines (opportunistic SRTP, RFC 8643) pass through untouched
//! when the other side is plain too: the two ends then key SRTP between
//! themselves.
//!
//! The keys in force (`key_in`, `key_out`) change with answers only: a
//! re-offer's new lines take effect once answered, so media keeps flowing
//! under the old keys meanwhile.

use super::OfferAnswer;
use crate::call::{Call, Negotiated};
use crate::crypto::negotiate;
use crate::crypto::sdes::Crypto;
use crate::crypto::Suite;
use crate::sdp::{Attribute, Media};

/// The protocols whose keys come with SDES.
pub fn is_sdes(protocol: &str) -> bool {
    matches!(protocol, "RTP/SAVP" | "RTP/SAVPF")
}

/// Plain RTP protocols, the ones OSRTP (RFC 8643) adds `a=crypto` to.
pub(super) fn is_plain(protocol: &str) -> bool {
    matches!(protocol, "RTP/AVP" | "RTP/AVPF")
}

/// The sender's valid `a=crypto` lines (invalid ones are skipped, as
/// upstream skips them, with a warning).
fn lines(m: &Media) -> Vec<Crypto> {
    m.attributes
        .iter()
        .filter(|a| a.name == "crypto")
        .filter_map(|a| {
            let v = a.value.as_deref().unwrap_or_default();
            match Crypto::parse(v) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "Ignoring a=crypto line");
                    None
                }
            }
        })
        .collect()
}

/// The sender's lines (none unless `sender_sdes`), or `None` when it
/// speaks DTLS only (a fingerprint, no SDES line): then SDES is off on
/// both legs and the SDP passes through untouched.
fn sender_lines(
    call: &mut Call,
    (snd, rcv, i): (usize, usize, usize),
    m: &Media,
    sender_sdes: bool,
) -> Option<Vec<Crypto>> {
    let found = match sender_sdes {
        true => lines(m),
        false => Vec::new(),
    };
    if sender_sdes && found.is_empty() && m.has_attr("fingerprint") {
        clear(&mut call.parties[snd].medias[i].negotiated);
        clear(&mut call.parties[rcv].medias[i].negotiated);
        return None;
    }
    Some(found)
}

/// Runs `f` with a source of fresh keys and records the keys it handed
/// out as ours on `neg` (with the ones still referenced from before).
fn with_keys<T>(neg: &mut Negotiated, f: impl FnOnce(negotiate::KeySource) -> T) -> T {
    let mut made = Vec::new();
    let out = f(&mut |suite: Suite| {
        let k = negotiate::fresh_key(suite);
        made.push(k.clone());
        k
    });
    neg.ours.extend(made);
    out
}

/// Forgets the keys of ours no longer referenced by `neg`.
fn prune_ours(neg: &mut Negotiated) {
    let referenced: Vec<&[u8]> = neg
        .crypto_out
        .iter()
        .chain(neg.key_out.as_ref())
        .map(|c| c.key_salt.as_slice())
        .collect();
    neg.ours.retain(|k| referenced.contains(&k.as_slice()));
}

/// A plain answer: no keys in force with this party, but what we offered
/// it stays (a later answer, after early media or from another fork, may
/// still take one of our lines).
fn plain_answer(neg: &mut Negotiated) {
    neg.crypto_in.clear();
    neg.key_in = None;
    neg.key_out = None;
    neg.srtp = false;
    prune_ours(neg);
}

/// No SDES on this party's leg (plain, or DTLS passed through).
fn clear(neg: &mut Negotiated) {
    neg.crypto_in.clear();
    neg.crypto_out.clear();
    neg.key_in = None;
    neg.key_out = None;
    neg.srtp = false;
    neg.ours.clear();
    neg.osrtp_in = false;
    neg.osrtp_out = false;
    neg.osrtp_accept = false;
}

impl OfferAnswer {
    /// Replaces `m`'s `a=crypto` lines with `lines` (written as the
    /// request's `SDES-pad`/`SDES-lifetime` say).
    fn put_lines(&self, m: &mut Media, lines: &[Crypto]) {
        m.attributes.retain(|a| a.name != "crypto");
        m.attributes.extend(lines.iter().map(|c| Attribute {
            name: "crypto".to_owned(),
            value: Some(c.write(self.sdes.write)),
        }));
    }

    /// An offer: the offerer's keys, and the lines offered to the receiver
    /// (`sender_sdes`: the offerer's own protocol is SDES; `m` already has
    /// the protocol the receiver is offered). `osrtp`: the offerer's, and
    /// the receiver's, leg is SRTP with us through OSRTP and stays so (as
    /// if `OSRTP=accept` and `OSRTP=offer` were given: upstream remembers
    /// OSRTP as a protocol across re-INVITEs).
    pub(super) fn offer_sdes(
        &self,
        call: &mut Call,
        (snd, rcv, i): (usize, usize, usize),
        m: &mut Media,
        sender_sdes: bool,
        (osrtp_from_sender, osrtp_to_receiver): (bool, bool),
    ) {
        let Some(offered) = sender_lines(call, (snd, rcv, i), m, sender_sdes) else {
            return;
        };
        // An OSRTP offer (plain protocol with a=crypto): its lines, in case
        // the answer accepts them for it (`OSRTP=accept`).
        let plain_sender = is_plain(&call.parties[snd].medias[i].protocol);
        let osrtp_in = match plain_sender && !sender_sdes && m.has_attr("crypto") {
            true => lines(m),
            false => Vec::new(),
        };
        {
            let a = &mut call.parties[snd].medias[i].negotiated;
            a.osrtp_in = !osrtp_in.is_empty();
            a.osrtp_accept = a.osrtp_in && osrtp_from_sender;
            a.crypto_in = match a.osrtp_in {
                true => osrtp_in,
                false => offered.clone(),
            };
            a.offerer_pref = self.sdes.offerer_pref.clone();
            if !a.srtp && sender_sdes {
                // First negotiation: its first line until the answer picks.
                a.key_in = offered.first().cloned();
                a.srtp = true;
            }
        }
        let r = &mut call.parties[rcv].medias[i].negotiated;
        if is_sdes(&m.protocol) {
            let previous: Vec<Crypto> = r.own_key_out().cloned().into_iter().collect();
            let out = with_keys(r, |keys| {
                negotiate::offer(&offered, &previous, &self.sdes, keys)
            });
            self.put_lines(m, &out);
            r.crypto_out = out;
            if !r.srtp {
                r.key_out = r.crypto_out.first().cloned();
                r.srtp = true;
            }
            prune_ours(r);
        } else if (self.osrtp.offer || osrtp_to_receiver)
            && is_plain(&m.protocol)
            && (sender_sdes || osrtp_from_sender || !m.has_attr("crypto"))
            && !m.has_attr("fingerprint")
        {
            // `OSRTP=offer`: a plain offer becomes an OSRTP offer (our
            // lines, protocol unchanged); SRTP with the receiver only if
            // its answer takes one.
            let previous: Vec<Crypto> = r.own_key_out().cloned().into_iter().collect();
            let out = with_keys(r, |keys| {
                negotiate::offer(&offered, &previous, &self.sdes, keys)
            });
            self.put_lines(m, &out);
            r.crypto_out = out;
            r.osrtp_out = true;
            prune_ours(r);
        } else {
            // Towards a plain receiver: SRTP lines removed (and an OSRTP
            // sender's whose leg is SRTP with us); plain to plain, any
            // a=crypto (OSRTP) passes on untouched.
            if sender_sdes || osrtp_from_sender {
                m.attributes.retain(|a| a.name != "crypto");
            }
            r.crypto_out.clear();
            r.osrtp_out = false;
            prune_ours(r);
        }
    }

    /// An answer (`snd` answers `rcv`'s offer): the answerer's keys, the
    /// line it took from ours, and the line the answer to the offerer
    /// carries (`sender_sdes`: the answerer's own protocol is SDES; `m`
    /// already has the protocol the offerer hears back).
    pub(super) fn answer_sdes(
        &self,
        call: &mut Call,
        (snd, rcv, i): (usize, usize, usize),
        m: &mut Media,
        sender_sdes: bool,
    ) {
        // A plain answer taking a line of our OSRTP offer speaks SDES.
        let took_osrtp = !sender_sdes
            && call.parties[snd].medias[i].negotiated.osrtp_out
            && m.has_attr("crypto");
        let sender_sdes = sender_sdes || took_osrtp;
        let Some(answered) = sender_lines(call, (snd, rcv, i), m, sender_sdes) else {
            return;
        };
        {
            let b = &mut call.parties[snd].medias[i].negotiated;
            if sender_sdes {
                b.key_out = negotiate::accepted(&b.crypto_out, answered.first());
                b.key_in = answered.first().cloned();
                b.crypto_in = answered.clone();
                b.srtp = true;
                prune_ours(b);
            } else {
                plain_answer(b);
            }
        }
        // An `RTP/SAVP(F)` offerer keyed by DTLS (its offer had
        // `a=fingerprint`, see `webrtc`) gets no SDES line back while it
        // stays so (else an SDES answer, or no key: its media dropped).
        let offerer_sdes = is_sdes(&call.parties[rcv].medias[i].protocol)
            && !self.savp_offerer_dtls(call, rcv, i, &m.protocol);
        let a = &mut call.parties[rcv].medias[i].negotiated;
        // An OSRTP offerer keeps SRTP when the answerer is SRTP with us
        // (its line is ours, not the offerer's to take); `OSRTP=accept`
        // gives it SRTP though the answer is plain (as upstream).
        // One whose leg was SRTP with us through OSRTP stays so whatever
        // the answer says (an answer with lines we never offered is
        // ignored, as upstream).
        let osrtp_keep = !offerer_sdes
            && a.osrtp_in
            && (sender_sdes || a.osrtp_accept || (self.osrtp.accept && !m.has_attr("crypto")));
        let answered = match osrtp_keep {
            true => Vec::new(),
            false => answered,
        };
        if (is_sdes(&m.protocol) && offerer_sdes) || osrtp_keep {
            let previous = a.own_key_out().cloned();
            let offered = a.crypto_in.clone();
            // The offer decided the offerer's preference (upstream's rule).
            let opts = negotiate::SdesOptions {
                offerer_pref: a.offerer_pref.clone(),
                ..self.sdes.clone()
            };
            let line = with_keys(a, |keys| {
                negotiate::answer(&offered, &answered, previous.as_ref(), &opts, keys)
            });
            let out: Vec<Crypto> = line.into_iter().collect();
            self.put_lines(m, &out);
            a.key_in = match out.first() {
                Some(l) => a.crypto_in.iter().find(|c| c.tag == l.tag).cloned(),
                None => a.crypto_in.first().cloned(),
            };
            a.key_out = out.first().cloned();
            a.crypto_out = out;
            a.srtp = true;
            prune_ours(a);
        } else {
            // The offerer is plain (or hears back a plain protocol). Lines
            // it never saw (it offered none) are not passed on either:
            // upstream ignores such an OSRTP answer.
            if sender_sdes || offerer_sdes || !a.osrtp_in {
                m.attributes.retain(|a| a.name != "crypto");
            }
            clear(a);
        }
    }

    /// Brings the SRTP contexts of both parties' media in line with the
    /// keys in force (SDES lines, or a WebRTC leg's DTLS handshake) before
    /// the sockets are wired.
    pub(super) fn update_srtp(
        &self,
        call: &mut Call,
        snd: usize,
        rcv: usize,
        id: &std::sync::Arc<crate::crypto::dtls::Identity>,
    ) {
        if self.recrypt {
            call.recrypt = true;
        }
        for p in [snd, rcv] {
            let medias = &mut call.parties[p].medias;
            let mut dtls_legs = Vec::with_capacity(medias.len());
            for (i, m) in medias.iter_mut().enumerate() {
                // A bundled section has no transport of its own: no ICE or
                // DTLS of its own either.
                let leg = match m.bundle_member(i) {
                    true => {
                        m.webrtc = None;
                        None
                    }
                    false => super::webrtc::update_leg(m, id),
                };
                match &leg {
                    Some(leg) => m
                        .srtp
                        .use_dtls((&leg.rx, &leg.tx), (&leg.rtcp_rx, &leg.rtcp_tx)),
                    None => {
                        let n = &m.negotiated;
                        m.srtp.update(n.key_in.as_ref(), n.key_out.as_ref(), n.srtp);
                    }
                }
                dtls_legs.push(leg);
            }
            // Its SRTP is its head's: keyed by the head's handshake, or the
            // head's SDES contexts themselves where its keys are the head's
            // (as upstream: one SRTP session per transport).
            for i in 0..medias.len() {
                let Some(h) = medias[i].bundle_head().filter(|&h| h != i) else {
                    continue;
                };
                if let Some(leg) = dtls_legs.get(h).and_then(Option::as_ref) {
                    medias[i]
                        .srtp
                        .use_dtls((&leg.rx, &leg.tx), (&leg.rtcp_rx, &leg.rtcp_tx));
                } else if h < medias.len() {
                    // Out of the list while the member takes from it.
                    let head = std::mem::take(&mut medias[h].srtp);
                    medias[i].srtp.share_head(&head);
                    medias[h].srtp = head;
                }
            }
        }
    }
}
