//! The once-a-second timer of the call model: it ends calls whose time is
//! up and computes the rates `statistics` reports.

use std::sync::Arc;
use std::time::Duration;

use super::stats::Rates;
use super::{Call, Calls, EndReason};
use crate::clock;
use crate::relay::{MediaSocket, Totals};

/// How often the timer runs.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// What the previous tick saw, for the rates.
#[derive(Debug, Default)]
pub struct Timer {
    last_relayed: Totals,
    last_kernel: Totals,
}

impl Timer {
    /// One tick: ends calls, then updates the rates.
    pub fn tick(&mut self, calls: &Calls) {
        calls.expire();
        calls.webrtc_tick();
        let (relayed, kernel) = calls.stats.relayed_since_start(&calls.live());
        calls.stats.set_rates(Rates {
            relayed: relayed.since(self.last_relayed),
            kernel: kernel.since(self.last_kernel),
        });
        self.last_relayed = relayed;
        self.last_kernel = kernel;
    }
}

/// Runs the timer every [`INTERVAL`] until the task is dropped.
pub async fn run(calls: Arc<Calls>) {
    let mut interval = tokio::time::interval(INTERVAL);
    let mut timer = Timer::default();
    loop {
        tokio::select! {
            _ = interval.tick() => timer.tick(&calls),
            () = crate::relay::webrtc::ICE_SELECTED.notified() => calls.follow_ice(),
        }
    }
}

impl Calls {
    /// A party with several of our addresses: media to it goes out of the
    /// one its selected ICE pair has (run at once when the relay selects
    /// one, and at every turn).
    pub fn follow_ice(&self) {
        let mut map = self.lock();
        for call in map.values_mut() {
            for p in 0..call.parties.len() {
                let Some(q) = call.parties[p].peer else {
                    continue;
                };
                for i in 0..call.parties[p].medias.len() {
                    let m = &mut call.parties[p].medias[i];
                    let (Some(leg), mux) = (m.webrtc.clone(), m.mux) else {
                        continue;
                    };
                    if m.sockets
                        .as_mut()
                        .is_some_and(|s| s.follow_selection(&leg, mux))
                    {
                        super::sockets::route(call, p, q, i);
                    }
                }
            }
        }
    }

    /// ICE checks and consent, DTLS retransmissions and handshakes we start
    /// towards WebRTC parties without ICE (their sockets send, outside the
    /// call table's lock).
    pub fn webrtc_tick(&self) {
        self.follow_ice();
        let map = self.lock();
        let sockets: Vec<Arc<MediaSocket>> = map
            .values()
            .flat_map(|c| c.parties.iter())
            .flat_map(|p| p.medias.iter())
            .filter(|m| m.webrtc.is_some())
            .filter_map(|m| m.sockets.as_ref().map(|s| (s, m.mux)))
            .flat_map(|(s, mux)| {
                // Each address's sockets; the RTCP port runs ICE component
                // 2 when the party does not mux.
                s.sets()
                    .flat_map(move |set| {
                        let rtcp = set.rtcp.clone().filter(|_| !mux);
                        std::iter::once(set.rtp.clone()).chain(rtcp)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        drop(map);
        sockets.iter().for_each(|s| s.webrtc_tick());
    }

    /// Ends the calls whose delete delay, timeouts or final timeout have
    /// passed. Returns how many ended.
    pub fn expire(&self) -> usize {
        // Offloaded packets never reach the relay: fold the kernel's counters
        // in first so the timeouts see that media is flowing. The map reads
        // are syscalls, so they run without the call table locked (ng waits
        // for that lock).
        if self.offload.is_some() {
            let sockets: Vec<Arc<MediaSocket>> = self
                .lock()
                .values()
                .flat_map(Call::sockets)
                .cloned()
                .collect();
            sockets.iter().for_each(|s| s.merge_kernel());
        }
        let now = clock::now_ms();
        let s = &self.settings();
        let mut map = self.lock();
        let mut ending = Vec::new();
        for (id, c) in map.iter_mut() {
            // A standby's copy of another daemon's call: media reaching it
            // here means its address moved to us (failover); until then it
            // is not ours to time out.
            if let Some(since) = c.foreign_since_ms {
                if c.last_activity_ms() <= since {
                    continue;
                }
                c.foreign_since_ms = None;
                tracing::info!(call_id = %id, "Media arrived for a foreign call: taking it over");
                if let Some(e) = self.events() {
                    e.taken_over(c);
                }
            }
            // Branches whose delayed delete is due go first; a call left
            // with no dialogue ends with them.
            let (gone, call_ends) = c.remove_due_branches(now);
            self.stats.branch_ended(&gone);
            let why = if call_ends || c.destroy_at_ms.is_some_and(|t| t <= now) {
                Some(EndReason::Deleted)
            } else if s.final_timeout > 0
                && now.saturating_sub(c.created_ms) >= s.final_timeout * 1000
            {
                Some(EndReason::FinalTimeout)
            } else if !c.answered {
                (now.saturating_sub(c.last_signal_ms) >= s.offer_timeout * 1000)
                    .then_some(EndReason::OfferTimeout)
            } else {
                let idle = now.saturating_sub(c.last_activity_ms());
                if c.all_held() {
                    (idle >= s.silent_timeout * 1000).then_some(EndReason::SilentTimeout)
                } else {
                    (idle >= s.timeout * 1000).then_some(EndReason::Timeout)
                }
            };
            if let Some(why) = why {
                ending.push((id.clone(), why));
            }
        }
        for (id, why) in &ending {
            drop(self.destroy(&mut map, id, *why));
        }
        ending.len()
    }
}
