//! A minimal AF_XDP socket: copy mode (works on every driver, veth has no
//! zero-copy), one UMEM per socket, the four rings mapped straight from the
//! kernel, no libbpf. Used by the relay's AF_XDP path
//! (`relay/xsk.rs`) and the benchmark's kernel-bypass floor.
//!
//! The UMEM holds `rx_frames` frames for reception and `tx_frames` for
//! transmission; every ring has `2 * rx_frames` entries. The reception
//! frames feed the fill ring (the kernel writes
//! received frames into them): half the ring's size, because the kernel
//! publishes received frames before it releases their fill-ring slots, so a
//! full ring could refuse a frame handed straight back. The rest is a free
//! list for transmission. Rings
//! follow the kernel's single-producer/single-consumer protocol: entries are
//! written before the producer index is published (release), and read after
//! the producer index is observed (acquire).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use std::io;

/// Size of a UMEM frame (one packet).
pub const FRAME: usize = rtpengine_common::XSK_FRAME_SIZE as usize;

/// `err` (the last OS error) with what was being done.
fn os_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// An anonymous or ring mapping, unmapped on drop.
pub struct Mmap {
    ptr: *mut u8,
    len: usize,
}

impl Mmap {
    /// `len` bytes of page-aligned anonymous memory.
    pub fn anonymous(len: usize) -> io::Result<Mmap> {
        Mmap::new(len, -1, 0)
    }

    /// The start of the mapping.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// `len` bytes mapped from `fd` at `offset`, or anonymous if `fd < 0`.
    fn new(len: usize, fd: RawFd, offset: libc::off_t) -> io::Result<Mmap> {
        let (flags, fd) = if fd < 0 {
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
        } else {
            (libc::MAP_SHARED | libc::MAP_POPULATE, fd)
        };
        // SAFETY: a fresh mapping; the kernel checks fd and offset.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(os_err("mmap"));
        }
        Ok(Mmap {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One mapped ring of `T` entries (`size`, a power of two).
struct Ring<T> {
    _map: Mmap,
    size: u32,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    desc: *mut T,
    /// Our side's index (producer for fill/tx, consumer for rx/completion).
    local: u32,
}

impl<T: Copy> Ring<T> {
    fn map(fd: RawFd, off: &libc::xdp_ring_offset, pgoff: u64, size: u32) -> io::Result<Ring<T>> {
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        let map = Mmap::new(len, fd, pgoff as libc::off_t)?;
        // SAFETY: the kernel placed these fields at these offsets in the mapping.
        let (producer, consumer, desc) = unsafe {
            (
                map.ptr.add(off.producer as usize) as *const AtomicU32,
                map.ptr.add(off.consumer as usize) as *const AtomicU32,
                map.ptr.add(off.desc as usize) as *mut T,
            )
        };
        Ok(Ring {
            _map: map,
            size,
            producer,
            consumer,
            desc,
            local: 0,
        })
    }

    fn slot(&self, i: u32) -> *mut T {
        // SAFETY: the index is masked into the ring.
        unsafe { self.desc.add((i & (self.size - 1)) as usize) }
    }

    /// Producer side: pushes `v` if there is room (publish with `submit`).
    fn push(&mut self, v: T) -> bool {
        // SAFETY: the consumer index is the kernel's, in the mapping.
        let cons = unsafe { (*self.consumer).load(Ordering::Acquire) };
        if self.local.wrapping_sub(cons) >= self.size {
            return false;
        }
        // SAFETY: the slot is ours until the producer index passes it.
        unsafe { self.slot(self.local).write(v) };
        self.local = self.local.wrapping_add(1);
        true
    }

    /// Producer side: publishes the pushed entries.
    fn submit(&self) {
        // SAFETY: the producer index is ours.
        unsafe { (*self.producer).store(self.local, Ordering::Release) };
    }

    /// Producer side: published entries the kernel has not consumed yet.
    fn pending(&self) -> u32 {
        // SAFETY: the consumer index is the kernel's, in the mapping.
        self.local
            .wrapping_sub(unsafe { (*self.consumer).load(Ordering::Acquire) })
    }

    /// Consumer side: the entries available now.
    fn available(&self) -> u32 {
        // SAFETY: the producer index is the kernel's, in the mapping.
        unsafe { (*self.producer).load(Ordering::Acquire) }.wrapping_sub(self.local)
    }

    /// Consumer side: entry `i` of those available.
    fn peek(&self, i: u32) -> T {
        // SAFETY: below the producer index, so written by the kernel.
        unsafe { self.slot(self.local.wrapping_add(i)).read() }
    }

    /// Consumer side: hands `n` entries back.
    fn release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        // SAFETY: the consumer index is ours.
        unsafe { (*self.consumer).store(self.local, Ordering::Release) };
    }
}

/// An AF_XDP socket bound to one device queue, with its own UMEM.
pub struct Xsk {
    fd: OwnedFd,
    umem: Mmap,
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    free: Vec<u64>,
    queued: bool,
}

// SAFETY: the mappings are owned by this value and only touched through &mut.
unsafe impl Send for Xsk {}

fn setopt<T>(fd: RawFd, opt: libc::c_int, v: &T, what: &str) -> io::Result<()> {
    // SAFETY: v is a valid T of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(os_err(&format!("setsockopt {what}")));
    }
    Ok(())
}

/// Reads `SOL_XDP` option `opt`: a plain C struct of integers (the
/// kernel's `xdp_mmap_offsets`, `xdp_statistics`), so all-zero is a valid
/// start and any bytes the kernel writes are a valid value.
fn getopt<T: Copy>(fd: RawFd, opt: libc::c_int, what: &str) -> io::Result<T> {
    // SAFETY: T is one of the kernel's integer-only structs (see above).
    let mut v: T = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: v/len describe a writable buffer of T's size.
    let r =
        unsafe { libc::getsockopt(fd, libc::SOL_XDP, opt, (&mut v as *mut T).cast(), &mut len) };
    if r < 0 {
        return Err(os_err(what));
    }
    Ok(v)
}

impl Xsk {
    /// Binds a copy-mode socket to queue `queue` of `ifindex`, with
    /// `rx_frames` frames (a power of two, at least 4) that packets can
    /// wait in until `receive` takes them, and `tx_frames` (at least 1) for
    /// packets queued to send.
    pub fn bind(ifindex: u32, queue: u32, rx_frames: u32, tx_frames: u32) -> io::Result<Xsk> {
        // The UMEM must be whole pages (two frames each).
        if rx_frames < 4
            || !rx_frames.is_power_of_two()
            || tx_frames == 0
            || !tx_frames.is_multiple_of(2)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("AF_XDP UMEM of {rx_frames} + {tx_frames} frames: the first must be a power of two of at least 4, the second even and positive"),
            ));
        }
        let ring = rx_frames * 2;
        let frames = rx_frames + tx_frames;
        // SAFETY: plain socket(2).
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(os_err("socket(AF_XDP)"));
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let umem = Mmap::anonymous(frames as usize * FRAME)?;
        let reg = libc::xdp_umem_reg {
            addr: umem.ptr as u64,
            len: umem.len as u64,
            chunk_size: FRAME as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setopt(raw, libc::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        for (opt, what) in [
            (libc::XDP_UMEM_FILL_RING, "fill ring"),
            (libc::XDP_UMEM_COMPLETION_RING, "completion ring"),
            (libc::XDP_RX_RING, "rx ring"),
            (libc::XDP_TX_RING, "tx ring"),
        ] {
            setopt(raw, opt, &ring, what)?;
        }
        let off: libc::xdp_mmap_offsets = getopt(raw, libc::XDP_MMAP_OFFSETS, "XDP_MMAP_OFFSETS")?;
        let mut xsk = Xsk {
            fill: Ring::map(raw, &off.fr, libc::XDP_UMEM_PGOFF_FILL_RING, ring)?,
            comp: Ring::map(raw, &off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING, ring)?,
            rx: Ring::map(raw, &off.rx, libc::XDP_PGOFF_RX_RING as u64, ring)?,
            tx: Ring::map(raw, &off.tx, libc::XDP_PGOFF_TX_RING as u64, ring)?,
            fd,
            umem,
            free: Vec::new(),
            queued: false,
        };
        for f in 0..rx_frames {
            xsk.fill.push(u64::from(f) * FRAME as u64);
        }
        xsk.fill.submit();
        xsk.free = (rx_frames..frames)
            .map(|f| u64::from(f) * FRAME as u64)
            .collect();
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libc::XDP_COPY,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: sa is a valid sockaddr_xdp of the size passed.
        let r = unsafe {
            libc::bind(
                raw,
                (&sa as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(os_err(&format!(
                "binding AF_XDP to ifindex {ifindex} queue {queue}"
            )));
        }
        Ok(xsk)
    }

    /// Calls `f` with each received frame (mutable, in place), then returns
    /// the frames to the fill ring. Returns how many were received.
    pub fn receive(&mut self, max: u32, mut f: impl FnMut(&mut [u8])) -> u32 {
        let n = self.rx.available().min(max);
        for i in 0..n {
            let d = self.rx.peek(i);
            let (addr, len) = (d.addr as usize, d.len as usize);
            if addr + len <= self.umem.len {
                // SAFETY: in bounds (checked); the frame is ours until it is
                // back in the fill ring.
                f(unsafe { std::slice::from_raw_parts_mut(self.umem.ptr.add(addr), len) });
            }
            // Cannot fail: at most the reception frames (half the ring)
            // are ever in it.
            self.fill.push(d.addr & !(FRAME as u64 - 1));
        }
        if n > 0 {
            self.rx.release(n);
            self.fill.submit();
        }
        n
    }

    /// Queues `pkt` for transmission (sent on `flush`); false if no frame or
    /// ring slot is free (the packet is dropped, as a full socket buffer would).
    pub fn queue(&mut self, pkt: &[u8]) -> bool {
        if pkt.len() > FRAME {
            return false;
        }
        self.queue_with(|frame| {
            frame[..pkt.len()].copy_from_slice(pkt);
            pkt.len()
        })
    }

    /// Queues a frame `write` builds in place (it gets the whole [`FRAME`]
    /// and returns the length written; 0 abandons it); false if nothing
    /// was queued (no free frame or ring slot, or abandoned).
    pub fn queue_with(&mut self, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let Some(addr) = self.free.pop() else {
            return false;
        };
        // SAFETY: addr is a whole free frame of the UMEM, ours until queued.
        let frame =
            unsafe { std::slice::from_raw_parts_mut(self.umem.ptr.add(addr as usize), FRAME) };
        let len = write(frame).min(FRAME);
        if len == 0 {
            self.free.push(addr);
            return false;
        }
        let d = libc::xdp_desc {
            addr,
            len: len as u32,
            options: 0,
        };
        if !self.tx.push(d) {
            self.free.push(addr);
            return false;
        }
        self.queued = true;
        true
    }

    /// Publishes queued packets and kicks the kernel until it has taken them
    /// all (copy mode transmits inside `sendto`, at most 32 frames per call),
    /// then reclaims completed frames.
    pub fn flush(&mut self) {
        if self.queued {
            self.queued = false;
            self.tx.submit();
        }
        // Bounded: a device that stops taking frames must not hang the relay
        // (what it leaves in the ring is kicked again by the next flush).
        for _ in 0..1024 {
            if self.tx.pending() == 0 {
                break;
            }
            // SAFETY: a zero-length kick on our socket.
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            let err = std::io::Error::last_os_error().raw_os_error();
            if r < 0 && !matches!(err, Some(libc::EAGAIN | libc::EBUSY)) {
                break;
            }
        }
        let n = self.comp.available();
        for i in 0..n {
            self.free.push(self.comp.peek(i));
        }
        if n > 0 {
            self.comp.release(n);
        }
    }

    /// The kernel's counters of this socket (`XDP_STATISTICS`).
    pub fn statistics(&self) -> io::Result<libc::xdp_statistics> {
        getopt(self.fd.as_raw_fd(), libc::XDP_STATISTICS, "XDP_STATISTICS")
    }

    /// The socket (for epoll and the XSKMAP).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The real receive queues of `dev` (from sysfs).
pub fn rx_queues(dev: &str) -> io::Result<u32> {
    let n = std::fs::read_dir(format!("/sys/class/net/{dev}/queues"))
        .map_err(|e| io::Error::new(e.kind(), format!("reading {dev}'s queues: {e}")))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{dev} has no receive queues"),
        ));
    }
    Ok(n as u32)
}
