//! Trickle ICE: candidates a party sends after its SDP (RFC 8838), in the
//! SDP fragments that proxies pass in an `offer` with the `fragment` flag
//! (RFC 8840). They join the party's ICE and its agent checks them; the
//! fragment is consumed, and nothing is written back (as upstream).
//!
//! A fragment can overtake the offer it belongs to (a SIP INFO racing the
//! INVITE through the proxy): one for a call or party not known yet is
//! kept for [`MAX_AGE`], as upstream, and applied once that party's offer
//! or answer has been processed. The queue is bounded
//! ([`MAX_PENDING`] fragments, [`MAX_PENDING_BYTES`] of candidates); a
//! fragment that does not fit is refused with a warning.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::webrtc::update_leg;
use crate::call::{Calls, Error, PartyMedia};
use crate::sdp::FragmentSection;

/// How long a fragment waits for its party (upstream's 3 s).
pub const MAX_AGE: Duration = Duration::from_secs(3);
/// Fragments waiting, over all calls.
pub const MAX_PENDING: usize = 128;
/// Bytes of candidate lines waiting, over all calls.
pub const MAX_PENDING_BYTES: usize = 256 * 1024;
/// Fragments waiting for one call: one call cannot take every slot.
pub const MAX_PENDING_PER_CALL: usize = 16;

/// What became of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trickled {
    /// Applied: this many candidates were new.
    Applied(usize),
    /// Its call or party is not known yet: kept for [`MAX_AGE`].
    Queued,
}

/// Why a fragment was neither applied nor kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TrickleError {
    /// The party's call is unknown, and the queue is full.
    #[error(
        "{0}, and {MAX_PENDING} fragments ({MAX_PENDING_BYTES} bytes) already wait for theirs"
    )]
    QueueFull(Error),
}

/// A fragment's sections and when it came.
type Waiting = (Instant, Vec<FragmentSection>);

/// Fragments waiting for their party, by call-id and tag.
#[derive(Default)]
pub struct PendingFragments {
    waiting: HashMap<(String, String), Vec<Waiting>>,
    count: usize,
    bytes: usize,
}

/// What a fragment's sections hold, in bytes (strings, and a little for
/// each section and candidate itself).
fn size(sections: &[FragmentSection]) -> usize {
    sections
        .iter()
        .map(|s| {
            let strings = s.mid.iter().chain(&s.ufrag).map(String::len).sum::<usize>();
            let candidates: usize = s.candidates.iter().map(|c| c.len() + 24).sum();
            64 + strings + candidates
        })
        .sum()
}

impl PendingFragments {
    /// Keeps `sections` for party `tag` of `call_id`; `false` when the
    /// queue is full (after dropping what is older than [`MAX_AGE`]).
    fn push(
        &mut self,
        call_id: &str,
        tag: &str,
        sections: Vec<FragmentSection>,
        now: Instant,
    ) -> bool {
        self.expire(now);
        let bytes = size(&sections);
        let for_call: usize = self
            .waiting
            .iter()
            .filter(|((c, _), _)| c == call_id)
            .map(|(_, l)| l.len())
            .sum();
        if self.count >= MAX_PENDING
            || self.bytes + bytes > MAX_PENDING_BYTES
            || for_call >= MAX_PENDING_PER_CALL
        {
            return false;
        }
        self.count += 1;
        self.bytes += bytes;
        self.waiting
            .entry((call_id.to_owned(), tag.to_owned()))
            .or_default()
            .push((now, sections));
        true
    }

    /// The fragments still young enough for party `tag` of `call_id`, in
    /// the order they came; they leave the queue.
    fn take(&mut self, call_id: &str, tag: &str, now: Instant) -> Vec<Vec<FragmentSection>> {
        let Some(list) = self.waiting.remove(&(call_id.to_owned(), tag.to_owned())) else {
            return Vec::new();
        };
        list.into_iter()
            .filter_map(|(at, sections)| {
                self.count -= 1;
                self.bytes -= size(&sections);
                (now.duration_since(at) <= MAX_AGE).then_some(sections)
            })
            .collect()
    }

    /// Drops what is older than [`MAX_AGE`].
    fn expire(&mut self, now: Instant) {
        let (mut count, mut bytes) = (0, 0);
        self.waiting.retain(|_, list| {
            list.retain(|(at, sections)| {
                let keep = now.duration_since(*at) <= MAX_AGE;
                if keep {
                    count += 1;
                    bytes += size(sections);
                }
                keep
            });
            !list.is_empty()
        });
        (self.count, self.bytes) = (count, bytes);
    }
}

impl Calls {
    /// Adds the candidates of `sections` to the ICE of party `from_tag` of
    /// call `call_id`: a section by its `a=mid`, else by its position, and
    /// only while the party's ICE credentials are the fragment's. For a
    /// call or party not known yet the fragment waits (see the module).
    pub fn trickle(
        &self,
        call_id: &str,
        from_tag: &str,
        sections: Vec<FragmentSection>,
    ) -> Result<Trickled, TrickleError> {
        let id = self.dtls_identity();
        let mut map = self.lock();
        let party = match map.get_mut(call_id) {
            None => Err(Error::UnknownCall),
            Some(call) => call
                .party(from_tag)
                .map(|p| (call, p))
                .ok_or(Error::InvalidDialogue),
        };
        match party {
            Ok((call, p)) => Ok(Trickled::Applied(apply(
                &mut call.parties[p].medias,
                &sections,
                &id,
            ))),
            Err(e) => {
                let mut pending = self.pending_fragments();
                match pending.push(call_id, from_tag, sections, Instant::now()) {
                    true => {
                        tracing::debug!(
                            call_id,
                            tag = from_tag,
                            "Trickle ICE fragment for an unknown party kept"
                        );
                        Ok(Trickled::Queued)
                    }
                    false => Err(TrickleError::QueueFull(e)),
                }
            }
        }
    }

    /// Applies the fragments that waited for party `tag` of `call_id`
    /// (called once its offer or answer is processed).
    pub(super) fn trickle_pending(&self, call_id: &str, tag: &str) {
        let fragments = self.pending_fragments().take(call_id, tag, Instant::now());
        if fragments.is_empty() {
            return;
        }
        let id = self.dtls_identity();
        let mut map = self.lock();
        let Some(call) = map.get_mut(call_id) else {
            return;
        };
        let Some(p) = call.party(tag) else { return };
        for sections in fragments {
            let n = apply(&mut call.parties[p].medias, &sections, &id);
            tracing::debug!(
                call_id,
                tag,
                candidates = n,
                "Kept trickle ICE fragment applied"
            );
        }
    }
}

/// Adds the candidates of `sections` to `medias`' ICE; returns how many
/// are new.
fn apply(
    medias: &mut [PartyMedia],
    sections: &[FragmentSection],
    id: &std::sync::Arc<crate::crypto::dtls::Identity>,
) -> usize {
    let mut added = 0;
    for (n, s) in sections.iter().enumerate() {
        let i = match &s.mid {
            Some(mid) => medias
                .iter()
                .position(|m| m.negotiated.mid.as_deref() == Some(mid.as_str())),
            None => Some(n),
        };
        // A bundled section's candidates are its transport's: the head's.
        let i = i.map(|i| medias.get(i).and_then(|m| m.bundle_head()).unwrap_or(i));
        let Some(m) = i.and_then(|i| medias.get_mut(i)) else {
            tracing::warn!(mid = ?s.mid, "No matching media for trickle ICE update found");
            continue;
        };
        let Some(peer) = m.negotiated.ice_peer.as_mut() else {
            tracing::warn!(mid = ?s.mid, "Media for trickle ICE update is not ICE-enabled");
            continue;
        };
        if s.ufrag.as_ref().is_some_and(|u| *u != peer.ufrag) {
            // Candidates of an ICE generation the party has left (or
            // not yet signalled).
            tracing::warn!(mid = ?s.mid, "Trickle ICE update for other ICE credentials: ignored");
            continue;
        }
        added += peer.trickle(s.candidates.iter().map(String::as_str));
        update_leg(m, id);
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(candidates: usize, len: usize) -> Vec<FragmentSection> {
        vec![FragmentSection {
            candidates: vec!["x".repeat(len); candidates],
            ..Default::default()
        }]
    }

    #[test]
    fn kept_for_three_seconds_in_order() {
        let mut q = PendingFragments::default();
        let t0 = Instant::now();
        assert!(q.push("c", "a", fragment(1, 10), t0));
        assert!(q.push("c", "a", fragment(2, 10), t0 + Duration::from_secs(2)));
        assert!(q.push("c", "b", fragment(1, 10), t0));
        // At 4 s the first is too old, the second is not.
        let got = q.take("c", "a", t0 + Duration::from_secs(4));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0][0].candidates.len(), 2);
        assert!(q.take("c", "a", t0 + Duration::from_secs(4)).is_empty());
        assert_eq!((q.count, q.bytes), (1, size(&fragment(1, 10))));
        // Expired entries leave on the next push.
        assert!(q.push("d", "a", fragment(1, 5), t0 + Duration::from_secs(4)));
        assert_eq!((q.count, q.bytes), (1, size(&fragment(1, 5))));
        assert!(q.take("c", "b", t0 + Duration::from_secs(4)).is_empty());
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let mut q = PendingFragments::default();
        let t0 = Instant::now();
        for i in 0..MAX_PENDING {
            assert!(q.push(&format!("c{i}"), "a", fragment(1, 1), t0));
        }
        assert!(!q.push("full", "a", fragment(1, 1), t0));
        // Once they have expired there is room again.
        assert!(q.push("full", "a", fragment(1, 1), t0 + MAX_AGE * 2));
        assert_eq!(q.count, 1);

        let mut q = PendingFragments::default();
        assert!(q.push("c", "a", fragment(2, MAX_PENDING_BYTES / 2 - 100), t0));
        assert!(!q.push("c", "a", fragment(1, 1), t0));
        assert_eq!(q.take("c", "a", t0).len(), 1);
        assert_eq!((q.count, q.bytes), (0, 0));
        // Sections without candidates count too.
        let empty = vec![FragmentSection::default(); MAX_PENDING_BYTES / 64 + 1];
        assert!(!q.push("c", "a", empty, t0));
    }

    /// One call cannot take every slot: other calls' fragments still wait.
    #[test]
    fn bounded_per_call() {
        let mut q = PendingFragments::default();
        let t0 = Instant::now();
        for _ in 0..MAX_PENDING_PER_CALL {
            assert!(q.push("greedy", "a", fragment(1, 1), t0));
        }
        assert!(!q.push("greedy", "b", fragment(1, 1), t0));
        assert!(q.push("other", "a", fragment(1, 1), t0));
    }
}
