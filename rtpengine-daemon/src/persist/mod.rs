//! Calls that survive a restart: call state in Redis (`--redis`, as
//! upstream), restored at start.
//!
//! # Model
//!
//! As upstream, one key per call, named by its call-id, written (`SET … EX
//! --redis-expires`) after every request that changed the call and deleted
//! when the call ends. The value is ours (upstream's serialisation of its
//! internal call structures is not a documented interface): a JSON
//! [`Record`] holding the call's **journal** — the offer, answer, delete and
//! media-control requests that shaped it, as received — and the local ports
//! allocated for it, in order. A restart replays each journal through the
//! normal request path with those ports planned ([`Calls::plan_ports`]), so
//! the restored call has the same parties, SDP state, ports and options as
//! before, by construction rather than by a second serialisation of every
//! field. What media taught (learned endpoints) is not in the journal: the
//! kernel flows the previous process left in place carry it and are adopted
//! ([`restore`]); userspace streams learn again from their next packet.
//!
//! Writes are asynchronous (a bounded queue to one writer task, coalesced
//! per call), so Redis never delays a reply; a full queue or a Redis that is
//! down costs persistence, logged, never signalling.
//!
//! # Standby
//!
//! With `--subscribe-keyspace` the daemon follows another daemon's calls
//! through Redis keyspace notifications ([`follow_keyspaces`]): a `SET`
//! replays the new part of the call's journal, a `DEL` (or expiry) drops
//! it. Such *foreign* calls bind their ports (with `IP_FREEBIND`: the media
//! address arrives with a failover), are not written back and do not time
//! out; the first request or media for one here makes it ours.

mod redis;
mod restore;
mod standby;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;

use crate::call::{Call, CallEvents, Calls, JournalEntry};

pub use self::redis::{RedisTarget, Store};
pub use restore::{restore, Restored};
pub use standby::follow_keyspaces;

/// Version of [`Record`]'s layout.
pub const RECORD_VERSION: u64 = 1;

/// What is stored per call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The call-id (also the key).
    pub call_id: String,
    /// The requests, in order.
    pub journal: Vec<JournalEntry>,
    /// The RTP sockets allocated, in order.
    pub ports: Vec<SocketAddr>,
}

impl Record {
    /// The record of `call` now.
    pub fn of(call: &Call) -> Record {
        Record {
            call_id: call.id.clone(),
            journal: call.journal.clone(),
            ports: call.ports.clone(),
        }
    }

    /// The stored form: JSON, requests hex-encoded (bencode may hold any
    /// byte; JSON strings may not).
    pub fn to_json(&self) -> String {
        json!({
            "rtpengine-rs": RECORD_VERSION,
            "call-id": self.call_id,
            "journal": self.journal.iter().map(|e| json!({
                "peer": e.peer.to_string(),
                "request": hex(&e.request),
            })).collect::<Vec<_>>(),
            "ports": self.ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
        .to_string()
    }

    /// Parses the stored form; `None` for anything else (another version,
    /// another program's data).
    pub fn from_json(text: &str) -> Option<Record> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        if v.get("rtpengine-rs")?.as_u64()? != RECORD_VERSION {
            return None;
        }
        let journal = v
            .get("journal")?
            .as_array()?
            .iter()
            .map(|e| {
                Some(JournalEntry {
                    peer: e.get("peer")?.as_str()?.parse().ok()?,
                    request: unhex(e.get("request")?.as_str()?)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let ports = v
            .get("ports")?
            .as_array()?
            .iter()
            .map(|p| p.as_str()?.parse().ok())
            .collect::<Option<Vec<_>>>()?;
        Some(Record {
            call_id: v.get("call-id")?.as_str()?.to_owned(),
            journal,
            ports,
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The control path's handle on persistence.
pub struct Persist {
    store: Store,
    /// Calls of another daemon this one follows as a standby
    /// (`--subscribe-keyspace`), with how many journal entries were replayed.
    foreign: Mutex<HashMap<String, usize>>,
}

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A control client.
    Live,
    /// A stored journal, replayed (restore, or a standby following).
    Replay,
}

impl Persist {
    /// Persistence through `store`.
    pub fn new(store: Store) -> Arc<Persist> {
        Arc::new(Persist {
            store,
            foreign: Mutex::new(HashMap::new()),
        })
    }

    fn foreign(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.foreign.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a request that changed call `call_id` to its journal and
    /// stores the call (or forgets it, if the request ended it). Replays
    /// write nothing: the journal rebuilds what is stored. With `write`
    /// false (the `no-redis-update` flag) the change is journaled but not
    /// written now: the next change of the call writes it. A live request
    /// for a foreign call takes it over.
    pub fn record(
        &self,
        calls: &Calls,
        call_id: &str,
        request: Vec<u8>,
        peer: SocketAddr,
        origin: Origin,
        write: bool,
    ) {
        let take_over = origin == Origin::Live && self.foreign().remove(call_id).is_some();
        let record = calls.with_call_mut(call_id, |call| {
            call.journal.push(JournalEntry { request, peer });
            call.ports_journaled = call.ports.len();
            if take_over {
                call.foreign_since_ms = None;
                tracing::info!(%call_id, "Request for a foreign call: taking it over");
            }
            Record::of(call)
        });
        if origin == Origin::Replay {
            return;
        }
        match record {
            Some(r) if write || take_over => self.store.set(r),
            Some(_) => {}
            None => self.store.delete(call_id),
        }
    }

    /// Waits (at most `timeout`) until every change so far is in Redis.
    pub async fn flush(&self, timeout: std::time::Duration) {
        self.store.flush(timeout).await;
    }

    /// A request for call `call_id` failed: it is not journaled, so the
    /// ports it allocated leave the call's port list (the positions of the
    /// later ones must match what a replay allocates).
    pub fn failed(&self, calls: &Calls, call_id: &str) {
        calls.with_call_mut(call_id, |call| call.ports.truncate(call.ports_journaled));
    }

    /// Marks call `call_id` foreign (a standby's copy) with `replayed`
    /// journal entries applied.
    fn follow(&self, calls: &Calls, call_id: &str, replayed: usize) {
        let now = crate::clock::now_ms();
        if calls
            .with_call_mut(call_id, |c| c.foreign_since_ms = Some(now))
            .is_some()
        {
            self.foreign().insert(call_id.to_owned(), replayed);
        }
    }
}

impl CallEvents for Persist {
    fn ended(&self, id: &str) {
        // A foreign call that ends here (its owner deleted it) is not ours
        // to delete from Redis.
        if self.foreign().remove(id).is_none() {
            self.store.delete(id);
        }
    }

    fn taken_over(&self, call: &Call) {
        self.foreign().remove(&call.id);
        self.store.set(Record::of(call));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let r = Record {
            call_id: "abc@host".into(),
            journal: vec![JournalEntry {
                request: b"d7:command5:offere\xff\x00".to_vec(),
                peer: "127.0.0.1:5060".parse().unwrap(),
            }],
            ports: vec![
                "10.0.0.1:30000".parse().unwrap(),
                "[fd00::1]:30002".parse().unwrap(),
            ],
        };
        assert_eq!(Record::from_json(&r.to_json()), Some(r));
        assert_eq!(Record::from_json("{\"callid\":\"x\"}"), None);
        assert_eq!(Record::from_json("not json"), None);
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
