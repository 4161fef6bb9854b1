//! Retransmission cache keyed by cookie.
//!
//! SIP proxies resend a request with the same cookie when a reply is late. The
//! command must run once: a repeat gets the cached reply, and a repeat that
//! arrives while the first is still being processed waits for it. Replies are
//! kept in two generations swapped every [`GENERATION`], so each lives 30–60 s
//! (plus up to 5 s until the expiry task drops a due generation),
//! as upstream's `cookie_cache.c`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long one generation lasts.
pub const GENERATION: Duration = Duration::from_secs(30);
/// Entries per generation before it is rotated early, bounding memory under a
/// flood of distinct cookies (a proxy sending 3 000 requests/s fills 90 000
/// in a generation; a flood of 50 000/s rotates every 2 s, which only
/// shortens the window in which retransmissions are recognised).
pub const MAX_ENTRIES: usize = 100_000;
/// Memory per generation before it is rotated early: cookie and reply bytes
/// plus [`ENTRY_OVERHEAD`] per entry (large `query` replies would otherwise
/// make the entry bound meaningless). Both generations: at most twice this.
pub const MAX_BYTES: usize = 16 << 20;
/// What an entry costs besides its cookie and reply bytes: the map slot,
/// the allocations' headers, the pending reply's channel. The 2 000-call
/// soak's ng flood measured ~170 bytes per cached small reply.
pub const ENTRY_OVERHEAD: usize = 160;

type Reply = Arc<[u8]>;

enum Slot {
    Pending(watch::Receiver<Option<Reply>>),
    Done(Reply),
}

struct Inner {
    current: HashMap<Vec<u8>, Slot>,
    previous: HashMap<Vec<u8>, Slot>,
    rotated: Instant,
    /// Memory held by `current` (see [`MAX_BYTES`]).
    bytes: usize,
}

impl Inner {
    /// Starts a new generation; returns the one that is forgotten.
    fn rotate(&mut self) -> HashMap<Vec<u8>, Slot> {
        let current = std::mem::take(&mut self.current);
        self.rotated = Instant::now();
        self.bytes = 0;
        std::mem::replace(&mut self.previous, current)
    }
}

/// The cache; shared by every transport.
pub struct CookieCache {
    inner: Mutex<Inner>,
    generation: Duration,
}

/// Result of looking up a cookie.
pub enum Lookup<'a> {
    /// Seen before and answered: send this again.
    Cached(Reply),
    /// Seen before and still running: await [`wait`] for its reply.
    InProgress(watch::Receiver<Option<Reply>>),
    /// New: run the command and hand the reply to [`Ticket::complete`].
    New(Ticket<'a>),
}

/// Proof that this caller runs the command for a cookie. Dropping it without
/// completing (e.g. a cancelled task) forgets the cookie so a retransmission
/// runs the command instead of waiting forever.
pub struct Ticket<'a> {
    cache: &'a CookieCache,
    cookie: Vec<u8>,
    tx: Option<watch::Sender<Option<Reply>>>,
}

impl Default for CookieCache {
    fn default() -> Self {
        Self::new(GENERATION)
    }
}

impl CookieCache {
    /// A cache whose generations last `generation`.
    pub fn new(generation: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner {
                current: HashMap::new(),
                previous: HashMap::new(),
                rotated: Instant::now(),
                bytes: 0,
            }),
            generation,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Looks up `cookie`, registering it as in progress when it is new.
    pub fn lookup(&self, cookie: &[u8]) -> Lookup<'_> {
        let mut inner = self.lock();
        if inner.rotated.elapsed() >= self.generation
            || inner.current.len() >= MAX_ENTRIES
            || inner.bytes >= MAX_BYTES
        {
            inner.rotate();
        }
        let found = inner
            .current
            .get(cookie)
            .or_else(|| inner.previous.get(cookie));
        match found {
            Some(Slot::Done(r)) => Lookup::Cached(r.clone()),
            Some(Slot::Pending(rx)) => Lookup::InProgress(rx.clone()),
            None => {
                let (tx, rx) = watch::channel(None);
                inner.current.insert(cookie.to_vec(), Slot::Pending(rx));
                inner.bytes += cookie.len() + ENTRY_OVERHEAD;
                Lookup::New(Ticket {
                    cache: self,
                    cookie: cookie.to_vec(),
                    tx: Some(tx),
                })
            }
        }
    }

    /// Rotates when a generation is due even if no request comes (after a
    /// flood the cache would otherwise hold its entries until the next
    /// request); returns how many entries were forgotten. Their memory is
    /// freed after the lock is released.
    pub fn expire(&self) -> usize {
        let dropped = {
            let mut inner = self.lock();
            if inner.rotated.elapsed() < self.generation {
                return 0;
            }
            inner.rotate()
        };
        dropped.len()
    }

    /// Number of cookies remembered (both generations).
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.current.len() + inner.previous.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Waits for the reply of a request that is still in progress. `None` if the
/// first request was abandoned without a reply.
pub async fn wait(mut rx: watch::Receiver<Option<Reply>>) -> Option<Reply> {
    match rx.wait_for(Option::is_some).await {
        Ok(r) => r.clone(),
        Err(_) => None,
    }
}

impl Ticket<'_> {
    /// Stores the reply and wakes every waiting duplicate.
    pub fn complete(mut self, reply: Reply) {
        let mut inner = self.cache.lock();
        let inner = &mut *inner;
        // It may have rotated into the previous generation while running
        // (then its bytes no longer count towards the current one).
        if let Some(slot) = inner.current.get_mut(&self.cookie) {
            *slot = Slot::Done(reply.clone());
            inner.bytes += reply.len();
        } else if let Some(slot) = inner.previous.get_mut(&self.cookie) {
            *slot = Slot::Done(reply.clone());
        }
        if let Some(tx) = self.tx.take() {
            tx.send_replace(Some(reply));
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.tx.is_some() {
            let mut inner = self.cache.lock();
            let inner = &mut *inner;
            for generation in [&mut inner.current, &mut inner.previous] {
                if matches!(generation.get(&self.cookie), Some(Slot::Pending(_))) {
                    generation.remove(&self.cookie);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(s: &str) -> Reply {
        Arc::from(s.as_bytes())
    }

    #[test]
    fn repeat_gets_cached_reply() {
        let c = CookieCache::default();
        let Lookup::New(t) = c.lookup(b"k1") else {
            panic!("new")
        };
        t.complete(reply("r1"));
        let Lookup::Cached(r) = c.lookup(b"k1") else {
            panic!("cached")
        };
        assert_eq!(&*r, b"r1");
        assert!(matches!(c.lookup(b"k2"), Lookup::New(_)));
    }

    #[tokio::test]
    async fn concurrent_duplicate_waits_for_first() {
        let c = Arc::new(CookieCache::default());
        let Lookup::New(t) = c.lookup(b"k") else {
            panic!("new")
        };
        let Lookup::InProgress(rx) = c.lookup(b"k") else {
            panic!("in progress")
        };
        let Lookup::InProgress(rx2) = c.lookup(b"k") else {
            panic!("in progress")
        };
        let w = tokio::spawn(wait(rx));
        let w2 = tokio::spawn(wait(rx2));
        tokio::task::yield_now().await;
        t.complete(reply("done"));
        assert_eq!(w.await.unwrap().as_deref(), Some(&b"done"[..]));
        assert_eq!(w2.await.unwrap().as_deref(), Some(&b"done"[..]));
    }

    #[tokio::test]
    async fn abandoned_ticket_forgets_cookie() {
        let c = CookieCache::default();
        let Lookup::New(t) = c.lookup(b"k") else {
            panic!("new")
        };
        let Lookup::InProgress(rx) = c.lookup(b"k") else {
            panic!("in progress")
        };
        drop(t);
        assert_eq!(wait(rx).await, None);
        assert!(matches!(c.lookup(b"k"), Lookup::New(_)));
    }

    #[test]
    fn generations_expire() {
        let c = CookieCache::new(Duration::from_millis(20));
        let Lookup::New(t) = c.lookup(b"k") else {
            panic!("new")
        };
        t.complete(reply("r"));
        std::thread::sleep(Duration::from_millis(25));
        // Rotated once: still remembered in the previous generation.
        assert!(matches!(c.lookup(b"k"), Lookup::Cached(_)));
        std::thread::sleep(Duration::from_millis(25));
        // Rotated twice: gone (the lookup registers it anew).
        assert!(matches!(c.lookup(b"k"), Lookup::New(_)));
    }

    #[test]
    fn a_flood_of_distinct_cookies_stays_bounded() {
        let c = CookieCache::default();
        let big = reply(&"x".repeat(4000));
        for i in 0..40_000u32 {
            match c.lookup(format!("flood-{i}").as_bytes()) {
                Lookup::New(t) => t.complete(big.clone()),
                _ => panic!("cookie {i} not new"),
            }
        }
        // 4 KB replies: the byte bound rotates long before the entry bound.
        let per_generation = MAX_BYTES / (4000 + ENTRY_OVERHEAD);
        assert!(c.len() <= 2 * (per_generation + 1), "{} entries", c.len());
        for i in 0..250_000u32 {
            if let Lookup::New(t) = c.lookup(format!("small-{i}").as_bytes()) {
                t.complete(reply("d6:result4:ponge"));
            }
        }
        assert!(c.len() <= 2 * MAX_ENTRIES, "{} entries", c.len());
    }

    #[test]
    fn expire_forgets_without_requests() {
        let c = CookieCache::new(Duration::from_millis(20));
        for k in [&b"a"[..], b"b"] {
            let Lookup::New(t) = c.lookup(k) else {
                panic!("new")
            };
            t.complete(reply("r"));
        }
        assert_eq!(c.expire(), 0, "nothing due yet");
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(c.expire(), 0, "rotated into the previous generation");
        assert_eq!(c.len(), 2);
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(c.expire(), 2);
        assert!(c.is_empty());
    }

    #[test]
    fn completes_after_rotation() {
        let c = CookieCache::new(Duration::from_millis(10));
        let Lookup::New(t) = c.lookup(b"k") else {
            panic!("new")
        };
        std::thread::sleep(Duration::from_millis(15));
        let _ = c.lookup(b"other"); // rotates: "k" is now in the previous generation
        t.complete(reply("late"));
        let Lookup::Cached(r) = c.lookup(b"k") else {
            panic!("cached")
        };
        assert_eq!(&*r, b"late");
    }
}
