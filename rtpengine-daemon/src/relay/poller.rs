//! Relay threads: one `epoll` set, wake-ups coalesced, work shared out only
//! when there is enough of it.
//!
//! At RTP rates (50 packets/s per stream) almost every packet arrives at a
//! sleeping relay, and the wake-up (park, epoll, schedule, unpark) costs far
//! more than forwarding the packet. One thread, the poller, therefore takes
//! everything that became readable in one pass and then, unless it fell
//! behind, waits out the rest of the coalescing interval before it looks
//! again: under load it wakes once per interval for many packets, not once
//! per packet. An idle poller blocks in `epoll_wait` with no timer, so a lone
//! packet is relayed at once; a packet arriving while it waits is delayed by
//! at most the interval (`--media-coalesce`, 0 = off).
//!
//! A pass with more work than half an interval (estimated from the time per
//! socket of the passes before) is split: the other threads (helpers) drain
//! parts of it in parallel and the poller waits for them before its next
//! pass, so no socket is ever read by two threads at once (packet order is
//! kept) and all cores work once one is not enough. Lighter passes stay on
//! the poller: waking a second thread costs more than it saves (measured:
//! spreading a light load over two threads doubled the CPU per packet; see
//! BENCHMARKS.md).
//!
//! Sockets are registered edge-triggered (Linux reports every arriving
//! datagram, and a level-triggered set would poll each drained socket once
//! more) and drained with one `recvmmsg` per pass: fewer datagrams than asked
//! for means the queue is empty; a full batch puts the socket on the next
//! pass's list, and such a pass neither waits nor blocks, so a flood is
//! served at full speed without starving the other sockets.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{MediaSocket, MAX_PACKET};
use crate::net::{Epoll, RecvBatch};

/// Datagrams taken from one socket per pass.
pub const RECV_BATCH: usize = 32;

/// Readiness events handled per pass.
const EVENTS: usize = 1024;

/// Ready sockets per thread below which a pass is never split.
const MIN_PART: usize = 8;

/// Work (per thread) a pass must have before it is split, when coalescing
/// is off.
const MIN_SPLIT_WORK: Duration = Duration::from_micros(500);

/// The epoll token of the stop eventfd.
const STOP: u64 = u64::MAX;

type Ready = Vec<(u64, Arc<MediaSocket>)>;

/// The relay's threads.
pub struct Poller {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    epoll: Epoll,
    stop: OwnedFd,
    sockets: Mutex<HashMap<u64, Arc<MediaSocket>>>,
    next_token: AtomicU64,
    /// Odd while a pass runs (and threads may hold socket references), even
    /// between passes.
    pass: AtomicU64,
    coalesce: Duration,
    jobs: Mutex<Jobs>,
    /// Helpers wait here for parts.
    work: Condvar,
    /// The poller waits here for the helpers to finish a pass.
    done: Condvar,
    /// One entry per thread, the poller first.
    counters: Box<[ThreadCounters]>,
}

/// What one relay thread has done (for `/metrics`); each thread writes only
/// its own, on its own cache line, so counting costs no contention.
#[derive(Debug, Default)]
#[repr(align(64))]
struct ThreadCounters {
    wakeups: AtomicU64,
    items: AtomicU64,
}

/// What one relay thread has done since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// Passes (the poller) or parts (a helper) it worked on.
    pub wakeups: u64,
    /// Ready sockets it drained.
    pub items: u64,
}

#[derive(Default)]
struct Jobs {
    parts: Vec<Ready>,
    /// Parts handed out and not finished yet.
    pending: usize,
    /// Tokens of sockets the helpers left with a full batch.
    again: Vec<u64>,
    stop: bool,
}

/// A socket's membership in the relay; dropping it stops the relaying.
pub struct Registration {
    shared: Arc<Shared>,
    token: u64,
    fd: RawFd,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Poller {
    /// Starts `threads` relay threads (at least one: the poller) that
    /// coalesce wake-ups over `coalesce`.
    pub fn start(threads: usize, coalesce: Duration) -> io::Result<Poller> {
        let epoll = Epoll::new()?;
        // SAFETY: plain syscall.
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if stop < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let stop = unsafe { OwnedFd::from_raw_fd(stop) };
        let shared = Arc::new(Shared {
            epoll,
            stop,
            sockets: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(0),
            pass: AtomicU64::new(0),
            coalesce,
            jobs: Mutex::new(Jobs::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            counters: (0..threads.max(1))
                .map(|_| ThreadCounters::default())
                .collect(),
        });
        shared.epoll.add(shared.stop.as_raw_fd(), STOP)?;
        let mut poller = Poller {
            shared,
            threads: Vec::new(),
        };
        let threads = threads.max(1);
        for i in 0..threads {
            let s = Arc::clone(&poller.shared);
            let t = std::thread::Builder::new().name(format!("rtpe-media-{i}"));
            // On error, dropping `poller` stops the threads already started.
            poller.threads.push(if i == 0 {
                t.spawn(move || s.poll(threads))?
            } else {
                t.spawn(move || s.help(i))?
            });
        }
        Ok(poller)
    }

    /// What each thread has done, the poller first.
    pub fn thread_stats(&self) -> Vec<ThreadStats> {
        self.shared
            .counters
            .iter()
            .map(|c| ThreadStats {
                wakeups: c.wakeups.load(Relaxed),
                items: c.items.load(Relaxed),
            })
            .collect()
    }

    /// Starts relaying `socks`.
    pub fn register(&self, socks: &[&Arc<MediaSocket>]) -> io::Result<Vec<Registration>> {
        let shared = &self.shared;
        let mut regs = Vec::with_capacity(socks.len());
        for sock in socks {
            let token = shared.next_token.fetch_add(1, SeqCst);
            let fd = sock.sock.as_raw_fd();
            // In the map first: an event for the token must find the socket.
            lock(&shared.sockets).insert(token, Arc::clone(sock));
            if let Err(e) = shared.epoll.add(fd, token) {
                lock(&shared.sockets).remove(&token);
                // `regs` drops here: the ones already added leave again.
                return Err(e);
            }
            regs.push(Registration {
                shared: Arc::clone(shared),
                token,
                fd,
            });
        }
        Ok(regs)
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        lock(&self.shared.jobs).stop = true;
        self.shared.work.notify_all();
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local to the eventfd.
        unsafe { libc::write(self.shared.stop.as_raw_fd(), (&one as *const u64).cast(), 8) };
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Registration {
    /// Stops relaying and returns once no thread holds the socket any more
    /// (its port is free when the caller drops the last reference).
    pub async fn close(self) {
        let shared = Arc::clone(&self.shared);
        drop(self);
        let pass = shared.pass.load(SeqCst);
        // Even: no pass running, and the next one cannot see the socket.
        while pass % 2 == 1 && shared.pass.load(SeqCst) == pass {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let sock = lock(&self.shared.sockets).remove(&self.token);
        // The socket (and fd) is still alive here: `sock` holds it.
        let _ = self.shared.epoll.delete(self.fd);
        drop(sock);
    }
}

/// Drains every socket of `part`; adds the tokens of those that may have
/// more queued to `again`.
fn drain(part: &mut Ready, batch: &mut RecvBatch, again: &mut Vec<u64>) {
    for (token, s) in part.drain(..) {
        // A bug in one stream's handling must not stop the thread that
        // serves thousands of others.
        match catch_unwind(AssertUnwindSafe(|| s.drain(batch))) {
            Ok(RECV_BATCH) => again.push(token),
            Ok(_) => {}
            Err(_) => tracing::error!(local = %s.local, "Media socket handler panicked"),
        }
    }
}

impl Shared {
    /// The poller thread; `threads` counts it and the helpers.
    fn poll(&self, threads: usize) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        let mut ready: Ready = Vec::with_capacity(EVENTS);
        // Sockets whose last drain filled a whole batch (maybe more queued);
        // tokens, not references, so nothing is held between passes.
        let mut again: Vec<u64> = Vec::new();
        let mut batch = RecvBatch::new(RECV_BATCH, MAX_PACKET);
        // Smoothed time one ready socket takes, in nanoseconds.
        let mut per_socket_ns = 0u64;
        let budget = (self.coalesce / 2).max(MIN_SPLIT_WORK);
        loop {
            let timeout = if again.is_empty() { -1 } else { 0 };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "Media relay stopped");
                    return;
                }
            };
            let start = Instant::now();
            self.pass.fetch_add(1, SeqCst);
            let mut stop = false;
            {
                // A socket carried over may have a new event too: list it
                // once, or two threads could read it at the same time.
                again.sort_unstable();
                again.dedup();
                let map = lock(&self.sockets);
                for &token in &again {
                    if let Some(s) = map.get(&token) {
                        ready.push((token, Arc::clone(s)));
                    }
                }
                for token in events[..n].iter().map(|e| e.u64) {
                    if token == STOP {
                        stop = true;
                    } else if again.binary_search(&token).is_ok() {
                        continue;
                    } else if let Some(s) = map.get(&token) {
                        ready.push((token, Arc::clone(s)));
                    }
                }
                drop(map);
                again.clear();
            }
            let count = ready.len();
            let work = per_socket_ns.saturating_mul(count as u64);
            let by_work = work.div_ceil(budget.as_nanos().max(1) as u64) as usize;
            let mut parts = threads.min(count / MIN_PART).min(by_work).max(1);
            let drain_start = Instant::now();
            if parts > 1 {
                let size = ready.len().div_ceil(parts);
                let mut jobs = lock(&self.jobs);
                // Helpers may be gone once stopping: keep everything here.
                if jobs.stop {
                    parts = 1;
                }
                while parts > 1 && ready.len() > size {
                    jobs.parts.push(ready.split_off(ready.len() - size));
                    jobs.pending += 1;
                }
                drop(jobs);
                self.work.notify_all();
            }
            if count > 0 {
                // Its own share; helpers count theirs.
                self.count(0, ready.len());
            }
            drain(&mut ready, &mut batch, &mut again);
            if parts > 1 {
                let mut jobs = lock(&self.jobs);
                while jobs.pending > 0 {
                    jobs = self.done.wait(jobs).unwrap_or_else(PoisonError::into_inner);
                }
                again.append(&mut jobs.again);
            }
            if count > 0 {
                // Thread time per socket: a split pass's wall time covers
                // `parts` threads working side by side.
                let took = drain_start.elapsed().as_nanos() as u64 * parts as u64;
                let sample = took / count as u64;
                per_socket_ns = match per_socket_ns {
                    0 => sample,
                    old => (old * 3 + sample) / 4,
                };
            }
            self.pass.fetch_add(1, SeqCst);
            if stop {
                return;
            }
            let behind = n == EVENTS || !again.is_empty();
            if !behind {
                if let Some(rest) = self.coalesce.checked_sub(start.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        }
    }

    /// Adds one wake-up with `items` ready sockets to thread `index`.
    fn count(&self, index: usize, items: usize) {
        if let Some(c) = self.counters.get(index) {
            c.wakeups.fetch_add(1, Relaxed);
            c.items.fetch_add(items as u64, Relaxed);
        }
    }

    /// Helper thread `index`: drains the parts the poller hands out.
    fn help(&self, index: usize) {
        let mut batch = RecvBatch::new(RECV_BATCH, MAX_PACKET);
        let mut again = Vec::new();
        loop {
            let mut part = {
                let mut jobs = lock(&self.jobs);
                loop {
                    // Parts first: the poller waits for every part it handed out.
                    if let Some(p) = jobs.parts.pop() {
                        break p;
                    }
                    if jobs.stop {
                        return;
                    }
                    jobs = self.work.wait(jobs).unwrap_or_else(PoisonError::into_inner);
                }
            };
            self.count(index, part.len());
            drain(&mut part, &mut batch, &mut again);
            let mut jobs = lock(&self.jobs);
            jobs.again.append(&mut again);
            jobs.pending -= 1;
            if jobs.pending == 0 {
                self.done.notify_one();
            }
        }
    }
}
