//! `delete`: ending a call, or one branch of it (a party and what only it
//! kept alive), at once or after a delay.
//!
//! Which party a `delete` names follows upstream: the `to-tag`'s, else the
//! party of the `via-branch`, else the `from-tag`'s. Deleting a party also
//! deletes each party that was only in dialogue with it; once no two
//! parties are in dialogue any more, the whole call ends. So a plain
//! two-party call ends whichever tag is named, while deleting one of two
//! forked callees leaves the caller and the other callee talking.

use super::{Call, Calls, EndReason, Sockets};
use crate::clock;

/// A `delete` request.
#[derive(Debug, Clone, Copy)]
pub struct Delete<'a> {
    /// The call.
    pub call_id: &'a str,
    /// The party to delete (with `to_tag`/`via_branch`: the dialogue it is in).
    pub from_tag: Option<&'a str>,
    /// The party to delete, when given.
    pub to_tag: Option<&'a str>,
    /// The branch to delete, when no to-tag is given.
    pub via_branch: Option<&'a str>,
    /// Seconds until it ends (0 = now).
    pub delay_secs: u64,
}

/// What a `delete` did.
pub enum Deleted<R> {
    /// No call or party matched.
    NotFound,
    /// The call ended now; close it ([`Call::close`]) to free its ports.
    Now {
        /// What the caller read from the call before it ended.
        report: R,
        /// The ended call.
        call: Call,
    },
    /// Some parties ended now and the call goes on; close their sockets.
    Branch {
        /// What the caller read from the call before.
        report: R,
        /// The sockets of the parties that ended.
        sockets: Vec<Sockets>,
    },
    /// The call or branch ends after the delay.
    Later {
        /// What the caller read from the call.
        report: R,
    },
}

impl Delete<'_> {
    /// The party this request names, as upstream picks it.
    fn target(&self, call: &Call, from: &str) -> Option<usize> {
        if let Some(p) = self.to_tag.and_then(|t| call.party(t)) {
            return Some(p);
        }
        if let Some(p) = self.via_branch.and_then(|v| call.branch(v)) {
            return Some(p);
        }
        match self.to_tag {
            None => call.party(from),
            // A to-tag the call does not know yet: the offer was never
            // answered, and deleting its sender ends the call (upstream's
            // last resort).
            Some(_) => call.party(from).filter(|&a| {
                call.parties[a]
                    .peer
                    .is_none_or(|b| call.parties[b].tag.is_none())
            }),
        }
    }
}

impl Calls {
    /// Deletes a call or a branch; `report` reads what the reply needs from
    /// the call first, with the call table locked (it must not call back
    /// into the registry).
    pub fn delete<R>(&self, d: &Delete<'_>, report: impl FnOnce(&Call) -> R) -> Deleted<R> {
        let mut map = self.lock();
        let Some(call) = map.get_mut(d.call_id) else {
            return Deleted::NotFound;
        };
        let target = match d.from_tag {
            None => None,
            Some(from) => match d.target(call, from) {
                Some(t) => Some(t),
                None => return Deleted::NotFound,
            },
        };
        let report = report(call);
        let at = clock::now_ms().saturating_add(d.delay_secs.saturating_mul(1000));
        match target {
            Some(t) if d.delay_secs > 0 => {
                let p = &mut call.parties[t];
                p.delete_at_ms = Some(p.delete_at_ms.map_or(at, |x| x.min(at)));
                return Deleted::Later { report };
            }
            Some(t) => {
                let doomed = call.branch_of(t);
                if call.in_dialogue_without(&doomed) {
                    let sockets = call.remove_parties(&doomed);
                    self.stats.branch_ended(&sockets);
                    tracing::info!(call_id = %d.call_id, "Call branch deleted");
                    return Deleted::Branch { report, sockets };
                }
            }
            None if d.delay_secs > 0 => {
                call.destroy_at_ms = Some(call.destroy_at_ms.map_or(at, |t| t.min(at)));
                return Deleted::Later { report };
            }
            None => {}
        }
        match self.destroy(&mut map, d.call_id, EndReason::Deleted) {
            Some(call) => Deleted::Now { report, call },
            None => Deleted::NotFound,
        }
    }
}

impl Call {
    /// Parties in dialogue with party `x`.
    fn associated(&self, x: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.parties.len()).filter(move |&y| {
            y != x && (self.parties[x].peer == Some(y) || self.parties[y].peer == Some(x))
        })
    }

    /// Whether two parties outside `doomed` are still in dialogue.
    pub fn in_dialogue_without(&self, doomed: &[usize]) -> bool {
        self.parties
            .iter()
            .enumerate()
            .any(|(i, p)| !doomed.contains(&i) && p.peer.is_some_and(|q| !doomed.contains(&q)))
    }

    /// Party `x` and every party only in dialogue with those (what
    /// deleting `x` takes along), sorted.
    pub(crate) fn branch_of(&self, x: usize) -> Vec<usize> {
        let mut doomed = vec![x];
        let mut i = 0;
        while i < doomed.len() {
            let d = doomed[i];
            let orphans: Vec<usize> = self
                .associated(d)
                .filter(|q| !doomed.contains(q))
                .filter(|&q| self.associated(q).all(|r| doomed.contains(&r)))
                .collect();
            doomed.extend(orphans);
            i += 1;
        }
        doomed.sort_unstable();
        doomed
    }

    /// Removes the parties `doomed` (sorted); returns their sockets (to
    /// close).
    pub(crate) fn remove_parties(&mut self, doomed: &[usize]) -> Vec<Sockets> {
        let mut sockets = Vec::new();
        for &d in doomed.iter().rev() {
            let party = self.parties.remove(d);
            tracing::info!(call_id = %self.id, tag = party.tag.as_deref().unwrap_or_default(), "Party deleted");
            for m in party.medias {
                sockets.extend(m.sockets.into_iter().chain(m.previous));
            }
            // Indexes after `d` move down by one; a peer that is gone is none.
            for p in &mut self.parties {
                p.peer = match p.peer {
                    Some(q) if q == d => None,
                    Some(q) if q > d => Some(q - 1),
                    other => other,
                };
            }
        }
        sockets
    }

    /// Removes the branches whose delayed delete is due while others stay
    /// in dialogue; returns their sockets (dropping them closes them) and
    /// whether a due branch would leave no dialogue (the whole call ends).
    pub(crate) fn remove_due_branches(&mut self, now: u64) -> (Vec<Sockets>, bool) {
        let mut sockets = Vec::new();
        while let Some(d) = self
            .parties
            .iter()
            .position(|p| p.delete_at_ms.is_some_and(|t| t <= now))
        {
            let doomed = self.branch_of(d);
            if !self.in_dialogue_without(&doomed) {
                return (sockets, true);
            }
            sockets.extend(self.remove_parties(&doomed));
        }
        (sockets, false)
    }
}
