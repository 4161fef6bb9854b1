//! `delete`: ending a call at once or after a delay.

use super::{Call, Calls, EndReason};
use crate::clock;

/// A `delete` request.
#[derive(Debug, Clone, Copy)]
pub struct Delete<'a> {
    /// The call.
    pub call_id: &'a str,
    /// Only if it has a party with this tag.
    pub from_tag: Option<&'a str>,
    /// …whose peer has this tag (upstream's `to-tag` flag narrows the match).
    pub to_tag: Option<&'a str>,
    /// Seconds until it ends (0 = now).
    pub delay_secs: u64,
}

/// What a `delete` did.
pub enum Deleted<R> {
    /// No call matched.
    NotFound,
    /// The call ended now; close it ([`Call::close`]) to free its ports.
    Now {
        /// What the caller read from the call before it ended.
        report: R,
        /// The ended call.
        call: Call,
    },
    /// The call ends after the delay.
    Later {
        /// What the caller read from the call.
        report: R,
    },
}

impl Calls {
    /// Deletes a call; `report` reads what the reply needs from the call
    /// first, with the call table locked (it must not call back into the
    /// registry).
    pub fn delete<R>(&self, d: &Delete<'_>, report: impl FnOnce(&Call) -> R) -> Deleted<R> {
        let mut map = self.lock();
        let Some(call) = map
            .get_mut(d.call_id)
            .filter(|c| d.from_tag.is_none_or(|from| c.has_dialogue(from, d.to_tag)))
        else {
            return Deleted::NotFound;
        };
        let report = report(call);
        if d.delay_secs > 0 {
            let at = clock::now_ms().saturating_add(d.delay_secs.saturating_mul(1000));
            call.destroy_at_ms = Some(call.destroy_at_ms.map_or(at, |t| t.min(at)));
            return Deleted::Later { report };
        }
        match self.destroy(&mut map, d.call_id, EndReason::Deleted) {
            Some(call) => Deleted::Now { report, call },
            None => Deleted::NotFound,
        }
    }
}
