//! CPU accounting from /proc.
//!
//! On veth, XDP and the receive path run inside the sender's `sendmmsg` (as
//! softirq work at the end of the send) and in `ksoftirqd`, so the cost of a
//! relayed packet is spread over the generator, the daemon and the ksoftirqd
//! threads. We sum the on-CPU time of all three: per thread
//! `/proc/<pid>/task/<tid>/schedstat` (nanoseconds; this kernel build has no
//! IRQ time accounting, so softirq work done in a task's context is charged to
//! that task), falling back to `utime+stime` of `/proc/<pid>/stat` (clock ticks)
//! where schedstat is missing. As a cross-check we also read machine-wide busy
//! time from `/proc/stat`, which sees everything but also other users' work.

use std::fs;

/// One reading.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// Generator process (all threads), ns.
    pub generator: u64,
    /// Daemon process (all threads), ns.
    pub daemon: u64,
    /// All ksoftirqd threads, ns.
    pub softirqd: u64,
    /// Machine-wide busy time from /proc/stat, ns.
    pub system: u64,
}

impl Sample {
    /// generator + daemon + ksoftirqd.
    pub fn sum(&self) -> u64 {
        self.generator + self.daemon + self.softirqd
    }

    /// `self - earlier`, saturating.
    pub fn since(&self, earlier: &Sample) -> Sample {
        Sample {
            generator: self.generator.saturating_sub(earlier.generator),
            daemon: self.daemon.saturating_sub(earlier.daemon),
            softirqd: self.softirqd.saturating_sub(earlier.softirqd),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Reads the counters of a generator, a daemon (pid; `None` for the floor,
/// which has no process) and the ksoftirqd threads.
pub struct Meter {
    daemon: Option<u32>,
    softirqd: Vec<u32>,
    tick_ns: u64,
}

impl Meter {
    /// A meter for daemon `daemon`.
    pub fn new(daemon: Option<u32>) -> Meter {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let tick_ns = if hz > 0 {
            1_000_000_000 / hz as u64
        } else {
            10_000_000
        };
        Meter {
            daemon,
            softirqd: ksoftirqd_pids(),
            tick_ns,
        }
    }

    /// Number of ksoftirqd threads found.
    pub fn softirqd_threads(&self) -> usize {
        self.softirqd.len()
    }

    /// Takes a reading.
    pub fn sample(&self) -> Sample {
        Sample {
            generator: process_ns(std::process::id(), self.tick_ns),
            daemon: self.daemon.map_or(0, |p| process_ns(p, self.tick_ns)),
            softirqd: self
                .softirqd
                .iter()
                .map(|&p| task_ns(p, p, self.tick_ns))
                .sum(),
            system: system_busy_ns(self.tick_ns),
        }
    }
}

fn ksoftirqd_pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("ksoftirqd/"))
        })
        .collect()
}

/// Sum over all threads of `pid` (threads that exited are lost; the daemons
/// and the generator keep their threads for the whole run).
pub fn process_ns(pid: u32, tick_ns: u64) -> u64 {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .map(|tid| task_ns(pid, tid, tick_ns))
        .sum()
}

fn task_ns(pid: u32, tid: u32, tick_ns: u64) -> u64 {
    if let Ok(s) = fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")) {
        if let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok()) {
            return ns;
        }
    }
    fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised comm: utime is the 14th field overall.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: u64 = f.get(11)?.parse().ok()?;
            let st: u64 = f.get(12)?.parse().ok()?;
            Some((ut + st) * tick_ns)
        })
        .unwrap_or(0)
}

fn system_busy_ns(tick_ns: u64) -> u64 {
    let Ok(s) = fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = s.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let busy: u64 = v
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(i, 0 | 1 | 2 | 5 | 6 | 7))
        .map(|(_, x)| x)
        .sum();
    busy * tick_ns
}

/// Resident set size of `pid` in KiB (VmRSS), 0 if unreadable.
pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU model, core count and kernel, for the report.
pub fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cpus} CPUs, Linux {}", kernel.trim())
}
