//! Relay worker threads: one `epoll` set per core, wake-ups coalesced.
//!
//! At RTP rates (50 packets/s per stream) almost every packet arrives at a
//! sleeping relay, and the wake-up (park, epoll, schedule, unpark) costs far
//! more than forwarding the packet. A worker therefore handles everything
//! that became readable on its sockets in one pass and then, unless it fell
//! behind, waits out the rest of the coalescing interval before it looks
//! again: under load it wakes once per interval for many packets, not once
//! per packet. An idle worker blocks in `epoll_wait` with no timer, so a lone
//! packet is relayed at once; a packet arriving while the worker waits is
//! delayed by at most the interval (`--media-coalesce`, 0 = off).
//!
//! Each socket belongs to one worker (round robin) for its whole life. It is
//! registered edge-triggered (Linux reports every arriving datagram, and a
//! level-triggered set would poll each drained socket once more) and drained
//! with one `recvmmsg` per pass: fewer datagrams than asked for means the
//! queue is empty; a full batch puts the socket on the next pass's list, and
//! such a pass neither waits nor blocks, so a flood is served at full speed
//! without starving the other sockets.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{MediaSocket, MAX_PACKET};
use crate::net::RecvBatch;

/// Datagrams taken from one socket per pass.
pub const RECV_BATCH: usize = 32;

/// Readiness events handled per pass.
const EVENTS: usize = 1024;

/// The epoll token of a worker's stop eventfd.
const STOP: u64 = u64::MAX;

/// The relay's worker threads.
pub struct Poller {
    workers: Vec<Arc<Worker>>,
    threads: Vec<JoinHandle<()>>,
    next: AtomicUsize,
}

struct Worker {
    epoll: OwnedFd,
    stop: OwnedFd,
    sockets: Mutex<HashMap<u64, Arc<MediaSocket>>>,
    next_token: AtomicU64,
    /// Odd while a pass runs (and may hold socket references), even between.
    pass: AtomicU64,
    coalesce: Duration,
}

/// A socket's membership in a worker; dropping it stops the relaying.
pub struct Registration {
    worker: Arc<Worker>,
    token: u64,
    fd: RawFd,
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Poller {
    /// Starts `threads` workers (at least one) that coalesce wake-ups over
    /// `coalesce`.
    pub fn start(threads: usize, coalesce: Duration) -> io::Result<Poller> {
        let mut workers = Vec::new();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            // SAFETY: plain syscalls; the fds are owned right after.
            let (epoll, stop) = unsafe {
                let e = OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?);
                let s = OwnedFd::from_raw_fd(cvt(libc::eventfd(
                    0,
                    libc::EFD_CLOEXEC | libc::EFD_NONBLOCK,
                ))?);
                (e, s)
            };
            let w = Arc::new(Worker {
                epoll,
                stop,
                sockets: Mutex::new(HashMap::new()),
                next_token: AtomicU64::new(0),
                pass: AtomicU64::new(0),
                coalesce,
            });
            w.ctl(libc::EPOLL_CTL_ADD, w.stop.as_raw_fd(), STOP)?;
            let run = Arc::clone(&w);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("rtpe-media-{i}"))
                    .spawn(move || run.run())?,
            );
            workers.push(w);
        }
        Ok(Poller {
            workers,
            threads: handles,
            next: AtomicUsize::new(0),
        })
    }

    /// Starts relaying `sock` on the next worker.
    pub fn register(&self, sock: &Arc<MediaSocket>) -> io::Result<Registration> {
        let i = self.next.fetch_add(1, SeqCst) % self.workers.len();
        let worker = Arc::clone(&self.workers[i]);
        let token = worker.next_token.fetch_add(1, SeqCst);
        let fd = sock.sock.as_raw_fd();
        // In the map first: an event for the token must find the socket.
        worker.sockets().insert(token, Arc::clone(sock));
        if let Err(e) = worker.ctl(libc::EPOLL_CTL_ADD, fd, token) {
            worker.sockets().remove(&token);
            return Err(e);
        }
        Ok(Registration { worker, token, fd })
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        for w in &self.workers {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a local to the worker's eventfd.
            unsafe { libc::write(w.stop.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Registration {
    /// Stops relaying and returns once no worker holds the socket any more
    /// (its port is free when the caller drops the last reference).
    pub async fn close(self) {
        let worker = Arc::clone(&self.worker);
        drop(self);
        let pass = worker.pass.load(SeqCst);
        // Even: no pass running, and the next one cannot see the socket.
        while pass % 2 == 1 && worker.pass.load(SeqCst) == pass {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let sock = self.worker.sockets().remove(&self.token);
        // The socket (and fd) is still alive here: `sock` holds it.
        let _ = self.worker.ctl(libc::EPOLL_CTL_DEL, self.fd, self.token);
        drop(sock);
    }
}

impl Worker {
    fn sockets(&self) -> MutexGuard<'_, HashMap<u64, Arc<MediaSocket>>> {
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: valid epoll fd; `ev` outlives the call.
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    fn run(&self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        let mut ready: Vec<(u64, Arc<MediaSocket>)> = Vec::with_capacity(EVENTS);
        // Sockets whose last drain filled a whole batch (maybe more queued);
        // tokens, not references, so nothing is held between passes.
        let mut again: Vec<u64> = Vec::new();
        let mut batch = RecvBatch::new(RECV_BATCH, MAX_PACKET);
        loop {
            let timeout = if again.is_empty() { -1 } else { 0 };
            // SAFETY: the buffer holds EVENTS entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    EVENTS as libc::c_int,
                    timeout,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "Media worker stopped");
                return;
            }
            let start = Instant::now();
            self.pass.fetch_add(1, SeqCst);
            let mut stop = false;
            {
                let map = self.sockets();
                let tokens = events[..n as usize].iter().map(|e| e.u64);
                for token in again.drain(..).chain(tokens) {
                    if token == STOP {
                        stop = true;
                    } else if let Some(s) = map.get(&token) {
                        ready.push((token, Arc::clone(s)));
                    }
                }
            }
            for (token, s) in ready.drain(..) {
                // A bug in one stream's handling must not stop the thread
                // that serves thousands of others.
                let drained = catch_unwind(AssertUnwindSafe(|| s.drain(&mut batch)));
                match drained {
                    Ok(RECV_BATCH) => again.push(token),
                    Ok(_) => {}
                    Err(_) => tracing::error!(local = %s.local, "Media socket handler panicked"),
                }
            }
            let behind = n as usize == EVENTS || !again.is_empty();
            self.pass.fetch_add(1, SeqCst);
            if stop {
                return;
            }
            if !behind {
                if let Some(rest) = self.coalesce.checked_sub(start.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        }
    }
}
