//! Handing freed heap memory back to the system.
//!
//! glibc keeps what threads free in its arenas and by itself returns only
//! the top of the main heap. After a burst (thousands of calls ended, a
//! flood's cached replies expired) the daemon kept tens of MiB resident that
//! it no longer used: 44 MiB against a 12.6 MiB baseline after the
//! 30-minute soak with every call gone, and a daemon that had churned 32 000
//! calls 17.9 MiB resident with 1 MiB of heap in use, 9 MiB after one
//! `malloc_trim`. [`Trimmer::tick`], called every 5 s, returns
//! that memory once the free memory held resident exceeds [`SLACK`]. A trim
//! walks the allocator's free lists (well under a millisecond for the
//! soak's 65 MiB heap); with fragmentation a trim cannot undo, it repeats
//! every tick at that cost.

/// Freed memory the allocator may keep resident before it is returned.
pub const SLACK: u64 = 2 << 20;

/// Watches resident size against the heap in use.
#[derive(Debug, Default)]
pub struct Trimmer {
    /// The least resident memory beyond the heap in use seen at the first
    /// tick or right after a trim: code, stacks, what no trim returns. The
    /// least, because right after a trim memory still in use may be freed
    /// a moment later and then counts as held.
    floor: Option<u64>,
}

impl Trimmer {
    /// Returns the allocator's free memory to the system when more than
    /// [`SLACK`] of it is resident; returns the resident bytes released.
    pub fn tick(&mut self) -> Option<u64> {
        let (resident, in_use) = usage()?;
        if !should_trim(self.floor, resident, in_use) {
            self.floor.get_or_insert(resident.saturating_sub(in_use));
            return None;
        }
        trim();
        let (after, in_use) = usage()?;
        let held = after.saturating_sub(in_use);
        self.floor = self.floor.map(|f| f.min(held));
        Some(resident.saturating_sub(after))
    }
}

/// Whether `resident` exceeds the heap `in_use` by more than [`SLACK`] over
/// the `floor` that a trim cannot go below.
fn should_trim(floor: Option<u64>, resident: u64, in_use: u64) -> bool {
    let held = resident.saturating_sub(in_use);
    match floor {
        Some(floor) => held > floor + SLACK,
        // The first tick only learns the floor.
        None => false,
    }
}

/// (resident bytes, heap bytes in use).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn usage() -> Option<(u64, u64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    // SAFETY: mallinfo2 has no preconditions; it reads the allocator's
    // counters under its own locks.
    let info = unsafe { libc::mallinfo2() };
    // Chunks in use in the arenas, plus blocks mmapped on their own.
    let in_use = u64::try_from(info.uordblks + info.hblkhd).ok()?;
    Some((pages * page, in_use))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim has no preconditions; it only returns free pages.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn usage() -> Option<(u64, u64)> {
    None
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn trims_only_beyond_the_slack_over_the_floor() {
        assert!(!should_trim(None, 500 * MIB, MIB));
        assert!(!should_trim(Some(6 * MIB), 8 * MIB, MIB));
        assert!(!should_trim(Some(6 * MIB), 9 * MIB, MIB));
        assert!(should_trim(Some(6 * MIB), 9 * MIB + 1, MIB));
        // Memory in use is not held: a large live heap never triggers it.
        assert!(!should_trim(Some(6 * MIB), 400 * MIB, 395 * MIB));
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
        let released = t.tick().unwrap_or(0);
        assert!(released > 16 * MIB, "released {released} bytes");
        drop(kept);
    }
}
