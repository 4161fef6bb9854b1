//! The io_uring floor: the socket floor's job (same sockets, fixed
//! destinations, no logic, one thread, 1 ms coalescing) done with io_uring
//! instead of epoll + `recvmmsg` + `sendto`, to measure what io_uring would
//! save a relay on kernel UDP sockets before building it into the daemon.
//!
//! Every receiving socket has one multishot `recvmsg` drawing from a
//! provided-buffer ring; a received buffer is sent as is (`IORING_OP_SEND`
//! with the leg's destination) from the paired socket and returned to the
//! ring when the send completes. The ring runs with `DEFER_TASKRUN`, so
//! packets arriving while the thread sleeps out the coalescing interval
//! cost no wake-up; their receive work runs when the thread enters the ring
//! again, and each pass drains all of it.
//! `rtpengine-bench --serve-uring-floor CALLS PORT_BASE K`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use io_uring::{cqueue, opcode, squeue, types, IoUring};

use rtpengine::net::to_sockaddr;

use super::sockfloor::{bind_legs, FloorProc};
use rtpengine::net::xsk::Mmap;

const COALESCE: Duration = Duration::from_millis(1);
/// Provided buffers (power of two) and their size.
const BUFS: u16 = 4096;
const BUF: usize = 2048;
const BGID: u16 = 0;
/// user_data bit of sends (the rest is the buffer id); receives carry the leg.
const SEND: u64 = 1 << 63;

/// Starts the io_uring floor in namespace `ns` (see `sockfloor::start`).
pub fn start(ns: &str, calls: usize, port_base: u16, k: usize) -> anyhow::Result<FloorProc> {
    let args = [calls.to_string(), port_base.to_string(), k.to_string()];
    FloorProc::start(ns, "--serve-uring-floor", &args)
}

/// The provided-buffer ring and its buffers.
struct BufRing {
    map: Mmap,
    mem: Vec<u8>,
    tail: u16,
}

impl BufRing {
    /// Allocates the ring and its buffers (created before the io_uring, so
    /// dropped after it).
    fn new() -> anyhow::Result<BufRing> {
        let len = usize::from(BUFS) * std::mem::size_of::<types::BufRingEntry>();
        Ok(BufRing {
            // Page-aligned, as the kernel requires.
            map: Mmap::anonymous(len).context("mmap buffer ring")?,
            mem: vec![0; usize::from(BUFS) * BUF],
            tail: 0,
        })
    }

    fn ring(&self) -> *mut types::BufRingEntry {
        self.map.ptr().cast()
    }

    /// Registers the ring with `uring` and hands the kernel every buffer.
    fn register(&mut self, uring: &IoUring) -> anyhow::Result<()> {
        // SAFETY: the ring memory outlives `uring` (see `new`).
        unsafe {
            uring
                .submitter()
                .register_buf_ring_with_flags(self.ring() as u64, BUFS, BGID, 0)
        }
        .context("registering the buffer ring")?;
        for bid in 0..BUFS {
            self.push(bid);
        }
        self.publish();
        Ok(())
    }

    /// Gives buffer `bid` back to the kernel (visible after `publish`).
    fn push(&mut self, bid: u16) {
        let addr = self.mem[usize::from(bid) * BUF..].as_ptr() as u64;
        // SAFETY: the index is masked into the ring.
        let e = unsafe { &mut *self.ring().add(usize::from(self.tail & (BUFS - 1))) };
        e.set_addr(addr);
        e.set_len(BUF as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field of the first entry, shared with the kernel.
        let tail = unsafe {
            &*(types::BufRingEntry::tail(self.ring()) as *const std::sync::atomic::AtomicU16)
        };
        tail.store(self.tail, std::sync::atomic::Ordering::Release);
    }

    fn buf(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * BUF;
        &self.mem[start..start + len.min(BUF)]
    }
}

/// Pushes `e`, submitting first if the queue is full.
fn push(ring: &mut IoUring, e: &squeue::Entry) -> anyhow::Result<()> {
    loop {
        // SAFETY: every pointer in our entries (msghdr, buffers, addresses)
        // outlives the operation.
        if unsafe { ring.submission().push(e) }.is_ok() {
            return Ok(());
        }
        ring.submit().context("io_uring submit")?;
    }
}

/// The floor process: binds, arms, says "ready", relays until killed.
pub fn serve(args: &[String]) -> anyhow::Result<()> {
    let (_socks, legs) = bind_legs(args)?;
    let dsts: Vec<_> = legs
        .iter()
        .map(|l| to_sockaddr(SocketAddr::V4(l.dst)))
        .collect();
    let mut bufs = BufRing::new()?;
    let mut ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag()
        .setup_cqsize(4 * u32::from(BUFS))
        .build(u32::from(BUFS))
        .context("creating the io_uring (needs Linux ≥ 6.1)")?;
    bufs.register(&ring)?;
    // SAFETY: all-zero is a valid msghdr; only the name length matters.
    let mut msghdr: libc::msghdr = unsafe { std::mem::zeroed() };
    msghdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
    let arm = |leg: usize| {
        opcode::RecvMsgMulti::new(types::Fd(legs[leg].rx), &msghdr, BGID)
            .build()
            .user_data(leg as u64)
    };
    for i in 0..legs.len() {
        push(&mut ring, &arm(i))?;
    }
    ring.submit().context("arming receives")?;
    println!("ready");
    std::io::stdout().flush()?;

    let mut done: Vec<(u64, i32, u32)> = Vec::with_capacity(4096);
    loop {
        // Idle: block for the first completion, no timer (like the socket floor).
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e).context("io_uring wait"),
        }
        let start = Instant::now();
        // One enter runs at most 20 deferred task-work items (the receives;
        // Linux ≥ 6.13), so keep entering while the kernel flags pending task
        // work or completions arrive: every ready socket is served each pass.
        // (Without this a pass served ~20 sockets and the rest waited ~100 ms
        // in their buffers: cheaper per packet, but not a relay.) A zero-timeout
        // wait with a large `want` drains too, but costs a schedule per call.
        loop {
            done.clear();
            done.extend(
                ring.completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            if done.is_empty() && !ring.submission().taskrun() {
                break;
            }
            for &(ud, res, flags) in &done {
                if ud & SEND != 0 {
                    bufs.push((ud & 0xffff) as u16);
                    continue;
                }
                let leg = ud as usize;
                if let (true, Some(bid)) = (res >= 0, cqueue::buffer_select(flags)) {
                    let payload = types::RecvMsgOut::parse(bufs.buf(bid, res as usize), &msghdr)
                        .ok()
                        .filter(|m| !m.is_payload_truncated())
                        .map(|m| (m.payload_data().as_ptr(), m.payload_data().len()));
                    match payload {
                        Some((ptr, len)) => {
                            let send = opcode::Send::new(types::Fd(legs[leg].tx), ptr, len as u32)
                                .dest_addr((&dsts[leg].0 as *const libc::sockaddr_storage).cast())
                                .dest_addr_len(dsts[leg].1)
                                .build()
                                .user_data(SEND | u64::from(bid));
                            push(&mut ring, &send)?;
                        }
                        None => bufs.push(bid),
                    }
                }
                if !cqueue::more(flags) {
                    // Multishot ended (e.g. out of buffers): re-arm.
                    push(&mut ring, &arm(leg))?;
                }
            }
            bufs.publish();
            // Submits the sends and runs the pending receive work.
            match ring.submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(e).context("io_uring submit"),
            }
        }
        if let Some(rest) = COALESCE.checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}
