//! In-kernel forwarding: loads the XDP dataplane (`rtpengine-ebpf`), owns one
//! forwarding table (0..63) in the shared pinned maps and installs, removes and
//! reads flow entries.
//!
//! # Model
//!
//! All daemons share one flat hash, `FLOWS`, pinned under
//! `/sys/fs/bpf/rtpengine/v<MAP_LAYOUT_VERSION>/`, keyed by the local
//! (destination) endpoint of a media socket, with the owning table in the value
//! (see `rtpengine_common` for the layout rationale). A [`Kernel`] handle owns
//! table `N`: at open it flushes entries left over by a crashed daemon with the
//! same table, and on drop/[`Kernel::close`] it detaches its XDP programs and
//! removes its entries, leaving other tables alone.
//!
//! # Limits
//!
//! One XDP program per device (aya has no multi-program dispatcher): a second
//! daemon attaching to a device that already carries the program fails with
//! EBUSY. Because the maps are shared and the program does not look at the
//! table id, a second table can open with no devices and still have its entries
//! forwarded by the first daemon's attachment (for as long as that one runs).
//! Forwarding needs `net.ipv{4,6}.conf.<ingress>.forwarding=1` (else
//! `bpf_fib_lookup` says FWD_DISABLED and everything falls back to userspace;
//! [`Kernel::open`] warns) and, for native redirects between devices, the
//! program attached to the egress device too (pass every media device).
//!
//! # Integration
//!
//! Build entries with [`flow_key`] / [`FlowTargetBuilder`] from the stream's
//! local socket, the peer it forwards to and the local socket that sends to that
//! peer. Packets the dataplane does not forward (STUN, DTLS, source mismatch with
//! `PASS_ON_MISMATCH`, unresolved neighbours, …) still reach the daemon's sockets.
//! Stats: [`FlowStats::last_seen_ns`] is CLOCK_MONOTONIC_COARSE; compare it with
//! [`now_ns`] (CLOCK_MONOTONIC), e.g. `now_ns().saturating_sub(last_seen_ns)`.
#![warn(missing_docs)]

mod bpffs;
mod dump;
mod offload;
mod target;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context as _};
use aya::maps::{HashMap, Map, MapData, MapError, PerCpuArray, PerCpuValues};
use aya::programs::{xdp::XdpLinkId, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
pub use rtpengine_common::{
    Endpoint, FlowKey, FlowStats, FlowTarget, TableStats, FAMILY_V4, FAMILY_V6, MAP_LAYOUT_VERSION,
    MAX_FLOWS, MAX_TABLES,
};
use rtpengine_common::{FLOWS_MAP, FLOW_STATS_MAP, TABLE_STATS_MAP, XDP_PROGRAM};

pub use dump::{dump, dump_from, format_entries};
pub use target::{flow_key, FlowTargetBuilder, SourcePolicy};

/// The XDP object built by `build.rs` (aya-build) from `rtpengine-ebpf`.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rtpengine-xdp"));

/// Where bpffs is expected (and mounted if nothing is).
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// The pin directory of this build's map layout:
/// `/sys/fs/bpf/rtpengine/v<MAP_LAYOUT_VERSION>`.
pub fn default_pin_dir() -> PathBuf {
    Path::new(BPFFS_ROOT)
        .join("rtpengine")
        .join(format!("v{MAP_LAYOUT_VERSION}"))
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds: the clock to compare
/// [`FlowStats::last_seen_ns`] with (the kernel stamps with the coarse variant
/// of the same clock, which lags by at most a tick: use `saturating_sub`).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// How to attach the XDP program to a device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// Native (driver) mode, falling back to generic (SKB) mode per device.
    #[default]
    Auto,
    /// Native (driver) mode only; fail if the driver cannot.
    Native,
    /// Generic (SKB) mode only: works on any device, slower.
    Generic,
}

impl std::fmt::Display for XdpAttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            XdpAttachMode::Auto => "auto",
            XdpAttachMode::Native => "native",
            XdpAttachMode::Generic => "generic",
        })
    }
}

/// Everything [`Kernel::open_with`] needs.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// Table id (0..63) this daemon owns.
    pub table: u32,
    /// Devices to attach the XDP program to (every device media enters *or
    /// leaves* through: native redirect needs a program on the egress device).
    pub devices: Vec<String>,
    /// Attach mode.
    pub mode: XdpAttachMode,
    /// Pin directory of the shared maps ([`default_pin_dir`] normally; tests use
    /// their own so they cannot disturb a running daemon).
    pub pin_dir: PathBuf,
}

impl KernelConfig {
    /// A configuration with the default pin directory.
    pub fn new(table: u32, devices: &[String], mode: XdpAttachMode) -> KernelConfig {
        KernelConfig {
            table,
            devices: devices.to_vec(),
            mode,
            pin_dir: default_pin_dir(),
        }
    }
}

/// One device the program is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Interface name.
    pub device: String,
    /// The mode that worked ([`XdpAttachMode::Native`] or [`XdpAttachMode::Generic`]).
    pub mode: XdpAttachMode,
}

struct Maps {
    flows: HashMap<MapData, FlowKey, FlowTarget>,
    stats: HashMap<MapData, FlowKey, FlowStats>,
    table_stats: PerCpuArray<MapData, TableStats>,
}

struct Prog {
    ebpf: Ebpf,
    links: Vec<(Attachment, XdpLinkId)>,
}

/// An open forwarding table: the loaded program, its attachments and the maps.
/// Cheap to share (`Arc<Kernel>`); all methods take `&self`.
pub struct Kernel {
    table: u32,
    pin_dir: PathBuf,
    maps: Mutex<Maps>,
    prog: Mutex<Prog>,
    closed: bool,
}

const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;

impl Kernel {
    /// Loads the dataplane, reuses (or creates and pins) the shared maps in the
    /// default pin directory, flushes table `table`'s leftover entries and
    /// attaches to `devices`.
    pub fn open(table: u32, devices: &[String], mode: XdpAttachMode) -> anyhow::Result<Kernel> {
        Self::open_with(&KernelConfig::new(table, devices, mode))
    }

    /// [`Kernel::open`] with every knob.
    pub fn open_with(cfg: &KernelConfig) -> anyhow::Result<Kernel> {
        if cfg.table >= MAX_TABLES {
            bail!(
                "kernel table {} out of range 0..{}",
                cfg.table,
                MAX_TABLES - 1
            );
        }
        bpffs::ensure_mounted(Path::new(BPFFS_ROOT))?;
        std::fs::create_dir_all(&cfg.pin_dir)
            .with_context(|| format!("creating pin directory {}", cfg.pin_dir.display()))?;

        let flows_pin = cfg.pin_dir.join(FLOWS_MAP);
        let stats_pin = cfg.pin_dir.join(FLOW_STATS_MAP);
        let table_pin = cfg.pin_dir.join(TABLE_STATS_MAP);
        let mut ebpf = EbpfLoader::new()
            .map_pin_path(FLOWS_MAP, flows_pin.as_path())
            .map_pin_path(FLOW_STATS_MAP, stats_pin.as_path())
            .map_pin_path(TABLE_STATS_MAP, table_pin.as_path())
            .load(EBPF_OBJECT)
            .map_err(|e| {
                anyhow!(
                    "loading the eBPF object (maps in {}): {e}",
                    cfg.pin_dir.display()
                )
            })?;

        let maps = Maps {
            flows: take_map(&mut ebpf, FLOWS_MAP, &cfg.pin_dir)?,
            stats: take_map(&mut ebpf, FLOW_STATS_MAP, &cfg.pin_dir)?,
            table_stats: take_map(&mut ebpf, TABLE_STATS_MAP, &cfg.pin_dir)?,
        };

        let prog: &mut Xdp = ebpf
            .program_mut(XDP_PROGRAM)
            .with_context(|| format!("program {XDP_PROGRAM} missing from the eBPF object"))?
            .try_into()
            .map_err(|e| anyhow!("program {XDP_PROGRAM} is not XDP: {e}"))?;
        // ProgramError's Display carries the verifier log.
        prog.load()
            .map_err(|e| anyhow!("loading XDP program {XDP_PROGRAM} failed: {e}"))?;

        let mut kernel = Kernel {
            table: cfg.table,
            pin_dir: cfg.pin_dir.clone(),
            maps: Mutex::new(maps),
            prog: Mutex::new(Prog {
                ebpf,
                links: Vec::new(),
            }),
            closed: false,
        };
        let flushed = kernel.flush()?;
        if flushed > 0 {
            tracing::warn!(
                table = cfg.table,
                flushed,
                "removed kernel forwarding entries left over by a previous instance"
            );
        }
        kernel.reset_table_stats();
        for dev in &cfg.devices {
            kernel.attach(dev, cfg.mode)?;
            forwarding_check(dev);
        }
        tracing::info!(
            table = cfg.table,
            pin_dir = %cfg.pin_dir.display(),
            devices = ?kernel.attachments(),
            "kernel forwarding table open"
        );
        Ok(kernel)
    }

    fn attach(&mut self, dev: &str, mode: XdpAttachMode) -> anyhow::Result<()> {
        let prog = self
            .prog
            .get_mut()
            .map_err(|_| anyhow!("kernel state poisoned"))?;
        let xdp: &mut Xdp = prog
            .ebpf
            .program_mut(XDP_PROGRAM)
            .context("XDP program vanished")?
            .try_into()
            .map_err(|e| anyhow!("{e}"))?;
        let (id, used) = match mode {
            XdpAttachMode::Native => (
                xdp.attach(dev, XdpMode::Driver)
                    .map_err(|e| anyhow!("attaching XDP (native) to {dev}: {e}"))?,
                XdpAttachMode::Native,
            ),
            XdpAttachMode::Generic => (
                xdp.attach(dev, XdpMode::Skb)
                    .map_err(|e| anyhow!("attaching XDP (generic) to {dev}: {e}"))?,
                XdpAttachMode::Generic,
            ),
            XdpAttachMode::Auto => match xdp.attach(dev, XdpMode::Driver) {
                Ok(id) => (id, XdpAttachMode::Native),
                Err(native) => {
                    let id = xdp.attach(dev, XdpMode::Skb).map_err(|e| {
                        anyhow!("attaching XDP to {dev}: native: {native}; generic: {e}")
                    })?;
                    tracing::warn!(device = dev, error = %native, "native XDP unavailable, using generic (SKB) mode");
                    (id, XdpAttachMode::Generic)
                }
            },
        };
        tracing::info!(device = dev, mode = %used, "XDP program attached");
        prog.links.push((
            Attachment {
                device: dev.to_string(),
                mode: used,
            },
            id,
        ));
        Ok(())
    }

    /// The table id this handle owns.
    pub fn table(&self) -> u32 {
        self.table
    }

    /// The directory holding the pinned maps.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Devices the program is attached to, with the mode that worked.
    pub fn attachments(&self) -> Vec<Attachment> {
        self.prog
            .lock()
            .map(|p| p.links.iter().map(|(a, _)| a.clone()).collect())
            .unwrap_or_default()
    }

    fn maps(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Maps>> {
        self.maps
            .lock()
            .map_err(|_| anyhow!("kernel map state poisoned"))
    }

    /// Installs (or replaces) the entry for local endpoint `key`. The target's
    /// `table` is set to this handle's table; counters of an existing entry are
    /// kept. Fails if the key belongs to another table or the entry is invalid
    /// (family mismatch, unknown flags).
    pub fn install(&self, key: FlowKey, target: FlowTarget) -> anyhow::Result<()> {
        let key = normalize_key(key)?;
        let mut target = target;
        target.table = self.table;
        target._pad = 0;
        target.expected_src._pad = [0; 2];
        target.src._pad = [0; 2];
        target.dst._pad = [0; 2];
        if target.family != key.family {
            bail!(
                "flow {}: target family {} differs from the local family {} (no IPv4/IPv6 translation in the kernel)",
                fmt_key(&key),
                target.family,
                key.family
            );
        }
        if target.flags & !FlowTarget::ALL_FLAGS != 0 {
            bail!(
                "flow {}: unknown flag bits {:#x}",
                fmt_key(&key),
                target.flags
            );
        }
        let mut maps = self.maps()?;
        match maps.flows.get(&key, 0) {
            Ok(existing) if existing.table != self.table => bail!(
                "flow {} is owned by kernel table {}, not {}",
                fmt_key(&key),
                existing.table,
                self.table
            ),
            _ => {}
        }
        // Keep counters of an existing entry (EEXIST is the expected failure).
        let _ = maps.stats.insert(key, FlowStats::default(), BPF_NOEXIST);
        maps.flows
            .insert(key, target, BPF_ANY)
            .with_context(|| format!("installing kernel flow {}", fmt_key(&key)))?;
        Ok(())
    }

    /// Removes the entry for `key` and its counters (no-op if absent; refuses
    /// entries of other tables).
    pub fn remove(&self, key: FlowKey) -> anyhow::Result<()> {
        let key = normalize_key(key)?;
        let mut maps = self.maps()?;
        match maps.flows.get(&key, 0) {
            Ok(t) if t.table != self.table => bail!(
                "flow {} is owned by kernel table {}, not {}",
                fmt_key(&key),
                t.table,
                self.table
            ),
            Ok(_) => {
                ignore_missing(maps.flows.remove(&key))
                    .with_context(|| format!("removing kernel flow {}", fmt_key(&key)))?;
                ignore_missing(maps.stats.remove(&key))
                    .with_context(|| format!("removing counters of {}", fmt_key(&key)))?;
                Ok(())
            }
            Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("looking up kernel flow {}", fmt_key(&key))),
        }
    }

    /// The target installed for `key` by this table.
    pub fn target(&self, key: FlowKey) -> Option<FlowTarget> {
        let maps = self.maps().ok()?;
        maps.flows
            .get(&key, 0)
            .ok()
            .filter(|t| t.table == self.table)
    }

    /// Counters of `key` (`None` if this table has no such entry).
    pub fn stats(&self, key: FlowKey) -> Option<FlowStats> {
        let maps = self.maps().ok()?;
        let t = maps.flows.get(&key, 0).ok()?;
        if t.table != self.table {
            return None;
        }
        Some(maps.stats.get(&key, 0).unwrap_or_default())
    }

    /// All entries of this table with their counters.
    pub fn entries(&self) -> Vec<(FlowKey, FlowTarget, FlowStats)> {
        let Ok(maps) = self.maps() else {
            return Vec::new();
        };
        collect_entries(&maps.flows, &maps.stats, Some(self.table))
    }

    /// This table's totals (summed over CPUs) since it was opened.
    pub fn table_stats(&self) -> anyhow::Result<TableStats> {
        let maps = self.maps()?;
        let per_cpu = maps
            .table_stats
            .get(&self.table, 0)
            .context("reading per-table counters")?;
        Ok(sum_table_stats(per_cpu.iter()))
    }

    /// Human-readable listing of this table (see [`dump`]).
    pub fn dump(&self) -> String {
        format_entries(self.table, &self.entries(), now_ns())
    }

    /// Runs the program once on `opts` with `BPF_PROG_TEST_RUN` (tests and
    /// diagnostics; `bpf_fib_lookup` then uses the caller's network namespace).
    pub fn test_run(
        &self,
        opts: aya::programs::TestRunOptions<'_>,
    ) -> anyhow::Result<aya::programs::TestRunResult> {
        use aya::programs::TestRun as _;
        let prog = self
            .prog
            .lock()
            .map_err(|_| anyhow!("kernel state poisoned"))?;
        let xdp: &Xdp = prog
            .ebpf
            .program(XDP_PROGRAM)
            .context("XDP program vanished")?
            .try_into()
            .map_err(|e| anyhow!("{e}"))?;
        xdp.test_run(opts)
            .map_err(|e| anyhow!("BPF_PROG_TEST_RUN: {e}"))
    }

    /// Removes every entry of this table (returns how many).
    pub fn flush(&self) -> anyhow::Result<usize> {
        let mut maps = self.maps()?;
        let mine: Vec<FlowKey> = maps
            .flows
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, t)| t.table == self.table)
            .map(|(k, _)| k)
            .collect();
        for k in &mine {
            ignore_missing(maps.flows.remove(k))
                .with_context(|| format!("removing kernel flow {}", fmt_key(k)))?;
            let _ = maps.stats.remove(k);
        }
        Ok(mine.len())
    }

    fn reset_table_stats(&self) {
        let Ok(mut maps) = self.maps() else { return };
        let Ok(n) = aya::util::nr_cpus() else { return };
        if let Ok(zero) = PerCpuValues::try_from(vec![TableStats::default(); n]) {
            let _ = maps.table_stats.set(self.table, zero, 0);
        }
    }

    /// Detaches the program and removes this table's entries, reporting errors
    /// (dropping the handle does the same, logging them instead).
    pub fn close(mut self) -> anyhow::Result<()> {
        self.closed = true;
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        if let Ok(prog) = self.prog.get_mut() {
            let links = std::mem::take(&mut prog.links);
            if let Some(xdp) = prog
                .ebpf
                .program_mut(XDP_PROGRAM)
                .and_then(|p| <&mut Xdp>::try_from(p).ok())
            {
                for (a, id) in links {
                    if let Err(e) = xdp.detach(id) {
                        result = Err(anyhow!("detaching XDP from {}: {e}", a.device));
                    }
                }
            }
        }
        match self.flush() {
            Ok(n) => tracing::info!(
                table = self.table,
                removed = n,
                "kernel forwarding table closed"
            ),
            Err(e) => result = Err(e),
        }
        result
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        if let Err(e) = self.shutdown() {
            tracing::warn!(table = self.table, error = %format!("{e:#}"), "closing kernel table");
        }
    }
}

fn take_map<V: TryFrom<Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    name: &str,
    pin_dir: &Path,
) -> anyhow::Result<V> {
    let map = ebpf
        .take_map(name)
        .with_context(|| format!("map {name} missing from the eBPF object"))?;
    V::try_from(map).map_err(|e| {
        anyhow!(
            "map {name} pinned in {} has an incompatible layout ({e}); a build with a \
             different layout must bump MAP_LAYOUT_VERSION, or remove the stale pin",
            pin_dir.display()
        )
    })
}

pub(crate) fn collect_entries(
    flows: &HashMap<MapData, FlowKey, FlowTarget>,
    stats: &HashMap<MapData, FlowKey, FlowStats>,
    table: Option<u32>,
) -> Vec<(FlowKey, FlowTarget, FlowStats)> {
    let mut out: Vec<_> = flows
        .iter()
        .filter_map(Result::ok)
        .filter(|(_, t)| table.is_none_or(|n| t.table == n))
        .map(|(k, t)| {
            let s = stats.get(&k, 0).unwrap_or_default();
            (k, t, s)
        })
        .collect();
    out.sort_by_key(|(k, t, _)| (t.table, k.family, k.addr, u16::from_be_bytes(k.port)));
    out
}

pub(crate) fn sum_table_stats<'a>(it: impl Iterator<Item = &'a TableStats>) -> TableStats {
    it.fold(TableStats::default(), |a, s| TableStats {
        packets: a.packets + s.packets,
        bytes: a.bytes + s.bytes,
        errors: a.errors + s.errors,
        fallback: a.fallback + s.fallback,
    })
}

fn normalize_key(mut key: FlowKey) -> anyhow::Result<FlowKey> {
    key._pad = 0;
    match key.family {
        FAMILY_V4 => key.addr[4..].fill(0),
        FAMILY_V6 => {}
        f => bail!("flow key with unknown family {f}"),
    }
    Ok(key)
}

fn ignore_missing(r: Result<(), MapError>) -> Result<(), MapError> {
    match r {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

pub(crate) fn fmt_key(k: &FlowKey) -> String {
    k.socket_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| format!("<family {}>", k.family))
}

/// Warns when `bpf_fib_lookup` will answer FWD_DISABLED for packets entering
/// `dev` (then every packet falls back to userspace).
fn forwarding_check(dev: &str) {
    for (fam, path) in [
        ("ipv4", format!("/proc/sys/net/ipv4/conf/{dev}/forwarding")),
        ("ipv6", format!("/proc/sys/net/ipv6/conf/{dev}/forwarding")),
    ] {
        if let Ok(v) = std::fs::read_to_string(&path) {
            if v.trim() == "0" {
                tracing::warn!(
                    device = dev,
                    "{fam} forwarding is disabled on {dev}: the XDP FIB lookup fails and \
                     {fam} media stays in userspace (set {path} to 1, and drop routed \
                     non-media traffic with nftables if the host must not route)"
                );
            }
        }
    }
}
