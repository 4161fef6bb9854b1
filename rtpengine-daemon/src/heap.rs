//! Handing freed heap memory back to the system.
//!
//! glibc keeps what threads free in its arenas and by itself returns only
//! the top of the main heap. After a burst (thousands of calls ended, a
//! flood's cached replies expired) a daemon can keep tens of MiB resident
//! that it no longer uses: one that had churned 32 000 calls stayed at
//! 17.9 MiB resident with 1 MiB of heap in use, and fell to 9 MiB after one
//! `malloc_trim`. [`Trimmer::tick`], called every 5 s on a blocking thread
//! (a trim walks the allocator's free lists under its locks), returns that
//! memory once the freed memory kept resident, beyond what the last trim
//! could not return, exceeds [`SLACK`] or a quarter of the heap in use,
//! whichever is larger.
//!
//! What the last trim could not return (fragments between live blocks)
//! raises the floor, so a futile trim is not repeated every tick; the
//! floor falls back to the idle one once the heap in use has halved, or
//! [`FLOOR_LIFETIME`] after that trim: the blocks that pinned those pages
//! may be gone by then without the heap in use falling much (a daemon
//! whose last calls ended right after a trim kept 7 MiB it could return).
//!
//! The share keeps trims for when the load fell. Under steady churn the
//! allocator reuses what was freed within seconds, and a trim only costs:
//! it holds the arena locks that every allocating thread waits for, and
//! the pages it returns are faulted back in. With a fixed 2 MiB, a
//! 2 000-call soak (46 MiB of heap in use) trimmed about every 30 s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Freed memory the allocator may always keep resident.
pub const SLACK: u64 = 2 << 20;

/// Freed memory the allocator may keep resident, as a share of the heap in
/// use: 1/`SHARE`.
pub const SHARE: u64 = 4;

/// How long what a trim could not return keeps the next one back: at
/// most one futile trim a minute.
pub const FLOOR_LIFETIME: Duration = Duration::from_secs(60);

/// Trims done since start (`rtpengine_heap_trims_total`).
pub static TRIMS: AtomicU64 = AtomicU64::new(0);

/// The process's memory as the kernel and the allocator see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Resident bytes (`/proc/self/statm`).
    pub resident: u64,
    /// Heap bytes the program holds: chunks in use in the arenas plus
    /// blocks mmapped on their own. What grows here is a leak; what
    /// grows only in `resident` is the allocator's keeping.
    pub in_use: u64,
    /// Freed bytes the allocator keeps in its arenas for reuse, resident
    /// or not (pages it gave back with `madvise` count too).
    pub free: u64,
}

/// What one trim did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trimmed {
    /// Resident bytes released.
    pub released: u64,
    /// How long the trim took.
    pub took: Duration,
}

/// Watches resident size against the heap in use.
#[derive(Debug, Default)]
pub struct Trimmer {
    /// Resident memory beyond the heap in use at the first tick or right
    /// after the last trim: code, stacks, and what that trim could not
    /// return (partial pages, fragments). Taking it from the last trim
    /// means a trim that returned little is not repeated until another
    /// [`SLACK`] has been freed.
    floor: Option<u64>,
    /// The floor of the first tick: it applies again once the heap in use
    /// is below half of [`Self::in_use_at_trim`], when what a trim under
    /// the old load could not return (fragments between live blocks) says
    /// nothing about now.
    first: u64,
    /// The heap in use right after the last trim.
    in_use_at_trim: u64,
    /// When the last trim was.
    trimmed_at: Option<Instant>,
}

impl Trimmer {
    /// Returns the allocator's free memory to the system when more than
    /// [`SLACK`], or 1/[`SHARE`] of the heap in use, of it is resident
    /// beyond the floor.
    pub fn tick(&mut self) -> Option<Trimmed> {
        self.tick_with(
            Instant::now(),
            || usage().map(|u| (u.resident, u.in_use)),
            trim,
        )
    }

    /// [`Self::tick`] at `now` with the measurement and the trim given
    /// (tests).
    fn tick_with(
        &mut self,
        now: Instant,
        mut usage: impl FnMut() -> Option<(u64, u64)>,
        trim: impl FnOnce(),
    ) -> Option<Trimmed> {
        let (resident, in_use) = usage()?;
        let Some(mut floor) = self.floor else {
            self.first = resident.saturating_sub(in_use);
            self.floor = Some(self.first);
            return None;
        };
        let stale = self
            .trimmed_at
            .is_some_and(|t| now.duration_since(t) >= FLOOR_LIFETIME);
        if in_use < self.in_use_at_trim / 2 || stale {
            floor = floor.min(self.first);
        }
        if resident.saturating_sub(in_use) <= floor + SLACK.max(in_use / SHARE) {
            return None;
        }
        let start = Instant::now();
        trim();
        TRIMS.fetch_add(1, Ordering::Relaxed);
        let took = start.elapsed();
        let (after, in_use) = usage()?;
        self.floor = Some(after.saturating_sub(in_use));
        self.in_use_at_trim = in_use;
        self.trimmed_at = Some(now);
        Some(Trimmed {
            released: resident.saturating_sub(after),
            took,
        })
    }
}

/// The process's memory now; `None` where the allocator cannot say (not
/// glibc).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn usage() -> Option<Usage> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    // SAFETY: mallinfo2 has no preconditions; it reads the allocator's
    // counters under its own locks.
    let info = unsafe { libc::mallinfo2() };
    // Chunks in use in the arenas, plus blocks mmapped on their own.
    let in_use = u64::try_from(info.uordblks + info.hblkhd).ok()?;
    Some(Usage {
        resident: pages * page,
        in_use,
        free: u64::try_from(info.fordblks).ok()?,
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim has no preconditions; it only returns free pages.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn usage() -> Option<Usage> {
    None
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    const MIB: u64 = 1 << 20;

    /// A heap that frees and trims as told: (resident, in use).
    fn fake(heap: &Cell<(u64, u64)>) -> impl FnMut() -> Option<(u64, u64)> + '_ {
        || Some(heap.get())
    }

    #[test]
    fn trims_beyond_the_slack_and_does_not_repeat_a_futile_trim() {
        let heap = Cell::new((8 * MIB, MIB));
        let trims = Cell::new(0);
        let count = || trims.set(trims.get() + 1);
        let mut t = Trimmer::default();
        // The first tick learns the floor (7 MiB held).
        assert_eq!(t.tick_with(Instant::now(), fake(&heap), count), None);
        // A larger live heap is not held memory.
        heap.set((12 * MIB, 5 * MIB));
        assert_eq!(t.tick_with(Instant::now(), fake(&heap), count), None);
        // 2 MiB freed: within the slack.
        heap.set((12 * MIB, 3 * MIB));
        assert_eq!(t.tick_with(Instant::now(), fake(&heap), count), None);
        assert_eq!(trims.get(), 0);
        // 4 MiB freed; the trim returns 3 of them.
        heap.set((12 * MIB, MIB));
        let r = t.tick_with(Instant::now(), fake(&heap), || {
            count();
            heap.set((9 * MIB, MIB));
        });
        assert_eq!(r.map(|r| r.released), Some(3 * MIB));
        // What it could not return is the new floor: no trim every tick.
        for _ in 0..3 {
            assert_eq!(t.tick_with(Instant::now(), fake(&heap), count), None);
        }
        assert_eq!(trims.get(), 1);
        // Another 3 MiB freed: trimmed again.
        heap.set((12 * MIB, MIB));
        assert!(t.tick_with(Instant::now(), fake(&heap), count).is_some());
        assert_eq!(trims.get(), 2);
    }

    #[test]
    fn a_busy_heap_keeps_a_quarter_of_its_size_in_free_memory() {
        let heap = Cell::new((8 * MIB, MIB));
        let trims = Cell::new(0);
        let count = || trims.set(trims.get() + 1);
        let mut t = Trimmer::default();
        assert_eq!(
            t.tick_with(Instant::now(), fake(&heap), count),
            None,
            "floor: 7 MiB"
        );
        // Steady churn on a 400 MiB heap: up to 100 MiB freed and reused.
        for freed in [10, 50, 99] {
            heap.set((407 * MIB + freed * MIB, 400 * MIB));
            assert_eq!(t.tick_with(Instant::now(), fake(&heap), count), None);
        }
        assert_eq!(trims.get(), 0);
        // The load fell: 390 MiB freed.
        heap.set((407 * MIB, 10 * MIB));
        let r = t.tick_with(Instant::now(), fake(&heap), || {
            count();
            heap.set((20 * MIB, 10 * MIB));
        });
        assert_eq!(r.map(|r| r.released), Some(387 * MIB));
    }

    #[test]
    fn a_trim_under_load_does_not_keep_the_idle_daemon_from_trimming() {
        let heap = Cell::new((8 * MIB, MIB));
        let mut t = Trimmer::default();
        assert_eq!(
            t.tick_with(Instant::now(), fake(&heap), || {}),
            None,
            "floor: 7 MiB"
        );
        // Under load, a trim leaves 15 MiB it cannot return (fragments).
        heap.set((80 * MIB, 40 * MIB));
        let r = t.tick_with(Instant::now(), fake(&heap), || {
            heap.set((55 * MIB, 40 * MIB))
        });
        assert!(r.is_some());
        // The calls end: 16 MiB held, within that trim's floor + slack,
        // but the load fell, so the first floor applies again.
        heap.set((20 * MIB, 4 * MIB));
        let r = t.tick_with(Instant::now(), fake(&heap), || {
            heap.set((12 * MIB, 4 * MIB))
        });
        assert_eq!(r.map(|r| r.released), Some(8 * MIB));
        // And not again and again.
        assert_eq!(t.tick_with(Instant::now(), fake(&heap), || {}), None);
    }

    #[test]
    fn a_futile_trim_holds_the_next_one_back_for_a_minute() {
        let heap = Cell::new((8 * MIB, MIB));
        let mut t = Trimmer::default();
        let t0 = Instant::now();
        assert_eq!(t.tick_with(t0, fake(&heap), || {}), None, "floor: 7 MiB");
        // Live blocks pin the freed pages: the trim returns 1 of 9 MiB.
        heap.set((20 * MIB, 4 * MIB));
        assert!(t
            .tick_with(t0, fake(&heap), || heap.set((19 * MIB, 4 * MIB)))
            .is_some());
        // Those blocks are freed: 1.5 MiB less in use (not half), the
        // pages are returnable now, but within that trim's floor + slack.
        heap.set((19 * MIB, 5 * MIB / 2));
        let later = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(t.tick_with(later(30), fake(&heap), || {}), None);
        // A minute after the futile trim the idle floor applies again.
        let r = t.tick_with(later(60), fake(&heap), || heap.set((9 * MIB, 5 * MIB / 2)));
        assert_eq!(r.map(|r| r.released), Some(10 * MIB));
        assert_eq!(t.tick_with(later(65), fake(&heap), || {}), None);
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_freed_burst_is_returned() {
        let mut t = Trimmer::default();
        assert_eq!(t.tick(), None, "the first tick learns the floor");
        // 64 MiB in 1000-byte blocks, touched; one block in 64 is kept, so
        // the freed memory is not just the top of a heap (which glibc
        // returns by itself) but runs between live blocks.
        let mut blocks: Vec<Vec<u8>> = (0..64 * 1024).map(|_| vec![1u8; 1000]).collect();
        let kept: Vec<Vec<u8>> = blocks.iter_mut().step_by(64).map(std::mem::take).collect();
        drop(blocks);
        // Other tests run in this process meanwhile: only a lower bound.
        let released = t.tick().map_or(0, |r| r.released);
        assert!(released > 16 * MIB, "released {released} bytes");
        drop(kept);
    }
}
