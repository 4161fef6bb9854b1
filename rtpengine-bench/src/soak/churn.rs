//! The churn of a soak phase: every second a share of the churn slots gets
//! a new call (offer, answer unless offer-only, a burst of media both ways)
//! and its previous call is deleted or left to a timeout; a share of the
//! stable calls is re-INVITEd.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::{media_v6, Phase};
use crate::ng::{self, media_addr, Ng};
use crate::scenario::{answer_body, delete_body, offer_body};
use crate::topo;

/// The churn sockets' port (one per side; every churn call uses it).
pub(super) const CHURN_PORT: u16 = 30000;
/// Packets per direction sent to a new churn call.
const CHURN_BURST: usize = 3;

/// What a churn slot's current call will do when the slot is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// No call in the slot.
    Empty,
    /// Deleted.
    Delete,
    /// Left alone after its media burst: the media timeout ends it.
    Abandon,
    /// Only offered, never answered: the offer timeout ends it.
    OfferOnly,
}

/// One churn job of a round.
#[derive(Clone, Copy)]
enum Job {
    /// Delete churn call `slot`/`gen`.
    Delete(usize, u64),
    /// Set up churn call `slot`/`gen` (offer, then answer unless offer-only).
    Setup(usize, u64, Fate),
    /// Re-INVITE stable call `c` (offer + answer, same SDP, same ports).
    Reinvite(usize),
}

/// Replaces `n_churn / lifetime` churn slots and re-INVITEs `n_stable / 30`
/// stable calls every second until `stop`; at the end ends every slot.
pub(super) fn churn_loop(
    ph: &Phase<'_>,
    ngc: &Ng,
    socks: &[UdpSocket],
    stable_caller_dst: &[SocketAddr],
    k: usize,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let per_round = (ph.n_churn as u64).div_ceil(ph.lifetime) as usize;
    let reinvites = ph.n_stable.div_ceil(30);
    let mut slots: Vec<(Fate, u64)> = vec![(Fate::Empty, 0); ph.n_churn];
    let (mut next_slot, mut next_stable, mut generation) = (0usize, 0usize, 0u64);
    let cid = |slot: usize, g: u64| ph.call_id("c", slot) + &format!("-{g}");
    let round = |jobs: Vec<Job>| -> anyhow::Result<()> {
        let mut answered: Vec<(usize, SocketAddr, SocketAddr)> = Vec::new();
        let mut offer_reply: Vec<Option<SocketAddr>> = vec![None; jobs.len()];
        let mut stage = vec![0u8; jobs.len()];
        let st = ngc.pipeline(
            jobs.len(),
            ph.o.window,
            "c",
            |j, reply| {
                let first = reply.is_none();
                let addr = reply
                    .and_then(|r| ng::get_str(r, "sdp"))
                    .and_then(media_addr);
                match jobs[j] {
                    Job::Delete(slot, g) => Ok(first.then(|| delete_body(&cid(slot, g)))),
                    Job::Setup(slot, g, fate) => {
                        let id = cid(slot, g);
                        if first {
                            stage[j] = 1;
                            return Ok(Some(offer_body(&id, CHURN_PORT, 5000 + g, false)));
                        }
                        if stage[j] == 1 && fate != Fate::OfferOnly {
                            stage[j] = 2;
                            offer_reply[j] = addr;
                            return Ok(Some(answer_body(&id, CHURN_PORT, 6000 + g, false)));
                        }
                        if let (Some(callee_side), Some(caller_side)) = (offer_reply[j], addr) {
                            answered.push((slot, caller_side, callee_side));
                        }
                        Ok(None)
                    }
                    Job::Reinvite(c) => {
                        let id = ph.call_id("s", c);
                        let port = topo::caller_port(c, k);
                        if first {
                            stage[j] = 1;
                            return Ok(Some(offer_body(&id, port, 1000 + c as u64, false)));
                        }
                        if stage[j] == 1 {
                            stage[j] = 2;
                            return Ok(Some(answer_body(&id, port, 2000 + c as u64, false)));
                        }
                        // Same SDP, same ports: the media must not notice.
                        if addr.is_some_and(|a| a != stable_caller_dst[c]) {
                            bail!("re-INVITE of stable call {c} moved its port");
                        }
                        Ok(None)
                    }
                }
            },
            |_| {},
        )?;
        ph.note(&st);
        // The media burst of the new calls: caller → daemon's caller side,
        // callee → daemon's callee side.
        let payload = [0x80u8, 0, 0, 1, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44];
        for (_, caller_side, callee_side) in &answered {
            for _ in 0..CHURN_BURST {
                let _ = socks[0].send_to(&payload, media_v6(*caller_side));
                let _ = socks[1].send_to(&payload, media_v6(*callee_side));
            }
        }
        let mut buf = [0u8; 2048];
        let mut rx = 0u64;
        for s in socks {
            while s.recv_from(&mut buf).is_ok() {
                rx += 1;
            }
        }
        if let Ok(mut r) = ph.churn_rx.lock() {
            *r += rx;
        }
        Ok(())
    };
    let end_fate = |f: Fate, counts: &mut [u64; 4]| match f {
        Fate::Delete => counts[1] += 1,
        Fate::Abandon => counts[2] += 1,
        Fate::OfferOnly => counts[3] += 1,
        Fate::Empty => {}
    };
    while !stop.load(Ordering::Relaxed) {
        crate::stop::check()?;
        let t = Instant::now();
        let mut jobs = Vec::new();
        let mut counts = [0u64; 4];
        for _ in 0..per_round {
            let slot = next_slot;
            next_slot = (next_slot + 1) % ph.n_churn;
            let (old, old_gen) = slots[slot];
            if old == Fate::Delete {
                jobs.push(Job::Delete(slot, old_gen));
            }
            end_fate(old, &mut counts);
            generation += 1;
            let fate = match generation % 10 {
                0 => Fate::Abandon,
                5 => Fate::OfferOnly,
                _ => Fate::Delete,
            };
            slots[slot] = (fate, generation);
            jobs.push(Job::Setup(slot, generation, fate));
            counts[0] += 1;
        }
        for _ in 0..reinvites {
            jobs.push(Job::Reinvite(next_stable));
            next_stable = (next_stable + 1) % ph.n_stable;
        }
        round(jobs)?;
        if let Ok(mut c) = ph.churn_counts.lock() {
            for (a, b) in c.iter_mut().zip(counts) {
                *a += b;
            }
        }
        if let Some(rest) = Duration::from_secs(1).checked_sub(t.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    // End every slot as its fate says.
    let mut counts = [0u64; 4];
    let mut jobs = Vec::new();
    for (slot, &(f, g)) in slots.iter().enumerate() {
        if f == Fate::Delete {
            jobs.push(Job::Delete(slot, g));
        }
        end_fate(f, &mut counts);
    }
    round(jobs)?;
    if let Ok(mut c) = ph.churn_counts.lock() {
        for (a, b) in c.iter_mut().zip(counts) {
            *a += b;
        }
    }
    Ok(())
}
