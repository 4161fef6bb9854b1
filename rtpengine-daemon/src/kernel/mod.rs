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
//! same table, and on drop/[`Kernel::close`] it removes its entries, leaving
//! other tables alone.
//!
//! # Shared attachments
//!
//! One program serves every table (it does not look at the table id), so the
//! attachment is shared too: several daemons, with different tables and local
//! addresses, may list the same devices.
//!
//! - The first handle to use a device attaches the program with a BPF link and
//!   pins the link at `<pin_dir>/links/netns-<inode>/<device>` (the network
//!   namespace's nsfs inode keeps equal device names of different namespaces
//!   apart). A pinned link keeps the program attached independent of any
//!   process.
//! - A later handle finding that pin shares it ([`Attachment::shared`], logged
//!   as "sharing the XDP dataplane already attached to <dev>") instead of
//!   attaching (which would fail: one XDP program per device). A pin whose
//!   link is defunct (device gone or recreated, program detached) is removed
//!   and the device attached afresh; a live link running a program with other
//!   maps or another build's code is switched to ours atomically
//!   (`BPF_LINK_UPDATE`), so forwarding never stops.
//! - Every handle keeps a descriptor of each link it uses, so the program stays
//!   attached while any handle using the device lives. If our program is on the
//!   device through a link whose pin was removed (see below), an opener finds
//!   that link and pins it again.
//! - A device carrying any other XDP program (foreign, or ours attached through
//!   netlink) makes the open fail with an error naming the device; the daemon
//!   then falls back to userspace (or exits with `--no-fallback`).
//! - Close (and drop) first removes the table's entries, then, per device,
//!   removes the pin only if no other table has entries left in `FLOWS`;
//!   otherwise the link stays pinned so the other daemons keep forwarding.
//!   Without the pin, the program is detached once the last handle holding the
//!   link is gone.
//!
//! **Restart semantics.** A daemon that crashes (or is killed) leaves its pin
//! and its entries: the kernel keeps forwarding its existing calls, as classic
//! rtpengine did while the daemon restarted. The next open of the same table
//! shares the pinned link and flushes the stale entries (the restarted daemon
//! re-installs entries for the calls it knows). A clean close of the last
//! daemon detaches the program.
//!
//! # Limits
//!
//! No multi-program dispatcher: a device already running another XDP program
//! cannot be used. The first daemon picks the attach mode; later daemons share
//! it whatever they ask for (a warning says so); an opener whose build differs
//! switches the shared program to its own code (same maps, so compatible by
//! `MAP_LAYOUT_VERSION`). Pins are per pin directory: two
//! daemons only share if they use the same one (they must anyway to share
//! `FLOWS`). Sharing needs XDP BPF links (Linux 5.9+). Forwarding needs
//! `net.ipv{4,6}.conf.<ingress>.forwarding=1` (else `bpf_fib_lookup` says
//! FWD_DISABLED and everything falls back to userspace; [`Kernel::open`] warns)
//! and, for native redirects between devices, the program attached to the
//! egress device too (pass every media device).
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
mod xdp_link;

use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context as _};
use aya::maps::{HashMap, Map, MapData, MapError, MapInfo, PerCpuArray, PerCpuValues};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{xdp::XdpLink, Xdp, XdpMode};
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
    /// The mode in effect ([`XdpAttachMode::Native`] or [`XdpAttachMode::Generic`]);
    /// for a shared attachment, the mode its creator got.
    pub mode: XdpAttachMode,
    /// `false`: this handle attached the program (and pinned the link);
    /// `true`: it found the pinned link of another daemon (or of a previous,
    /// crashed instance) and shares it.
    pub shared: bool,
}

/// A device's pinned XDP link as used by one handle.
struct Link {
    attachment: Attachment,
    /// `<pin_dir>/links/netns-<inode>/<device>`.
    pin: PathBuf,
    /// Kernel id of the link (to check the pin still names it at close).
    link_id: u32,
    /// Keeps the link, hence the program, attached while this handle lives,
    /// even if another daemon removes the pin meanwhile.
    _fd: OwnedFd,
}

struct Maps {
    flows: HashMap<MapData, FlowKey, FlowTarget>,
    stats: HashMap<MapData, FlowKey, FlowStats>,
    table_stats: PerCpuArray<MapData, TableStats>,
}

struct Prog {
    ebpf: Ebpf,
    links: Vec<Link>,
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

        let flows_id = MapInfo::from_pin(&flows_pin)
            .map_err(|e| anyhow!("reading {}: {e}", flows_pin.display()))?
            .id();
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
        if !cfg.devices.is_empty() {
            let links_dir = cfg.pin_dir.join("links").join(format!(
                "netns-{}",
                xdp_link::netns_id().context("identifying the network namespace")?
            ));
            std::fs::create_dir_all(&links_dir)
                .with_context(|| format!("creating {}", links_dir.display()))?;
            for dev in &cfg.devices {
                // On error, `kernel` drops: links made so far are released
                // like at close.
                kernel.attach(&links_dir, dev, cfg.mode, flows_id)?;
                forwarding_check(dev);
            }
        }
        tracing::info!(
            table = cfg.table,
            pin_dir = %cfg.pin_dir.display(),
            devices = ?kernel.attachments(),
            "kernel forwarding table open"
        );
        Ok(kernel)
    }

    fn attach(
        &mut self,
        links_dir: &Path,
        dev: &str,
        mode: XdpAttachMode,
        flows_id: u32,
    ) -> anyhow::Result<()> {
        let prog = self
            .prog
            .get_mut()
            .map_err(|_| anyhow!("kernel state poisoned"))?;
        let link = attach_device(&mut prog.ebpf, links_dir, dev, mode, flows_id)?;
        let a = &link.attachment;
        if a.shared {
            tracing::info!(
                device = dev,
                mode = %a.mode,
                "sharing the XDP dataplane already attached to {dev}"
            );
            if mode != XdpAttachMode::Auto && mode != a.mode {
                tracing::warn!(
                    device = dev,
                    requested = %mode,
                    actual = %a.mode,
                    "the shared XDP attachment on {dev} uses another mode than requested"
                );
            }
        } else {
            tracing::info!(device = dev, mode = %a.mode, pin = %link.pin.display(), "XDP program attached");
        }
        prog.links.push(link);
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
            .map(|p| p.links.iter().map(|l| l.attachment.clone()).collect())
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
        let replacing = match maps.flows.get(&key, 0) {
            Ok(existing) if existing.table != self.table => bail!(
                "flow {} is owned by kernel table {}, not {}",
                fmt_key(&key),
                existing.table,
                self.table
            ),
            Ok(_) => true,
            Err(_) => false,
        };
        // A replaced entry keeps its counters; a new one starts from zero even
        // if a packet in flight during an earlier remove re-created them.
        let flags = if replacing { BPF_NOEXIST } else { BPF_ANY };
        let _ = maps.stats.insert(key, FlowStats::default(), flags);
        if let Err(e) = maps.flows.insert(key, target, BPF_ANY) {
            if !replacing {
                let _ = maps.stats.remove(&key);
            }
            return Err(e).with_context(|| format!("installing kernel flow {}", fmt_key(&key)));
        }
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

    /// Removes this table's entries, then releases its devices: a device's
    /// XDP link is unpinned (detaching the program once no other handle holds
    /// it) unless other tables still have entries, in which case it stays
    /// pinned so their daemons keep forwarding in the kernel. Reports errors
    /// (dropping the handle does the same, logging them instead).
    pub fn close(mut self) -> anyhow::Result<()> {
        self.closed = true;
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        match self.flush() {
            Ok(n) => tracing::info!(
                table = self.table,
                removed = n,
                "kernel forwarding table closed"
            ),
            Err(e) => result = Err(e),
        }
        let links = match self.prog.get_mut() {
            Ok(prog) => std::mem::take(&mut prog.links),
            Err(_) => Vec::new(),
        };
        if links.is_empty() {
            return result;
        }
        let others = match self.other_tables() {
            Ok(t) => t,
            Err(e) => {
                // Unsure: keep the attachment (a later open shares it).
                result = Err(e);
                vec![u32::MAX]
            }
        };
        for link in links {
            let dev = &link.attachment.device;
            if !others.is_empty() {
                tracing::info!(
                    device = %dev,
                    tables = ?others,
                    "leaving the shared XDP dataplane attached to {dev}: other tables have entries"
                );
                continue;
            }
            // Only remove the pin if it still names our link (a later open
            // may have replaced a link it found defunct).
            let ours = xdp_link::obj_get(&link.pin)
                .and_then(|fd| xdp_link::link_info(fd.as_fd()))
                .is_ok_and(|i| i.id == link.link_id);
            if ours {
                if let Err(e) = std::fs::remove_file(&link.pin) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        result = Err(anyhow!("unpinning the XDP link of {dev}: {e}"));
                        continue;
                    }
                }
            }
            tracing::info!(device = %dev, "XDP dataplane released on {dev}");
            // Dropping `link` closes our descriptor: without the pin, the
            // program is detached once no other handle holds the link.
        }
        result
    }

    /// Tables other than ours with entries in `FLOWS`.
    fn other_tables(&self) -> anyhow::Result<Vec<u32>> {
        let maps = self.maps()?;
        let mut tables: Vec<u32> = maps
            .flows
            .iter()
            .filter_map(Result::ok)
            .map(|(_, t)| t.table)
            .filter(|t| *t != self.table)
            .collect();
        tables.sort_unstable();
        tables.dedup();
        Ok(tables)
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

/// Attaches the program to `dev`, or shares the link pinned there by another
/// handle (see the module docs).
fn attach_device(
    ebpf: &mut Ebpf,
    links_dir: &Path,
    dev: &str,
    mode: XdpAttachMode,
    flows_id: u32,
) -> anyhow::Result<Link> {
    let ifindex = xdp_link::ifindex(dev).with_context(|| format!("no network device {dev}"))?;
    let pin = links_dir.join(dev);
    let link = |fd: OwnedFd, mode: XdpAttachMode, shared: bool| -> anyhow::Result<Link> {
        let info = xdp_link::link_info(fd.as_fd())
            .with_context(|| format!("reading the XDP link of {dev}"))?;
        Ok(Link {
            attachment: Attachment {
                device: dev.to_string(),
                mode,
                shared,
            },
            pin: pin.clone(),
            link_id: info.id,
            _fd: fd,
        })
    };
    // A second round covers another daemon attaching between our look and
    // our attach.
    for round in 0..2 {
        let current = xdp_link::device_xdp(ifindex)
            .with_context(|| format!("querying the XDP program of {dev}"))?;
        let current_mode = match current.map(|c| c.attached) {
            Some(xdp_link::XDP_ATTACHED_SKB) => XdpAttachMode::Generic,
            _ => XdpAttachMode::Native,
        };
        match xdp_link::obj_get(&pin) {
            Ok(fd) => {
                let info = xdp_link::link_info(fd.as_fd())
                    .with_context(|| format!("reading the pinned link {}", pin.display()))?;
                let live = info.type_ == xdp_link::LINK_TYPE_XDP
                    && info.ifindex == ifindex
                    && current.is_some_and(|c| c.prog_id == info.prog_id);
                if live {
                    let theirs = program_info(info.prog_id);
                    let our_tag = our_xdp(ebpf)?
                        .info()
                        .map_err(|e| anyhow!("reading our program's info: {e}"))?
                        .tag();
                    if theirs.uses(flows_id) && theirs.tag == Some(our_tag) {
                        return link(fd, current_mode, true);
                    }
                    // Ours by location, but running other maps (the pins
                    // were recreated) or another build's code: swap the
                    // program under the link atomically.
                    tracing::warn!(
                        device = dev,
                        program = info.prog_id,
                        same_maps = theirs.uses(flows_id),
                        "replacing the stale XDP program behind the pinned link of {dev}"
                    );
                    drop(fd);
                    replace_program(ebpf, &pin)
                        .with_context(|| format!("updating the pinned XDP link of {dev}"))?;
                    let fd = xdp_link::obj_get(&pin)
                        .with_context(|| format!("reopening {}", pin.display()))?;
                    return link(fd, current_mode, true);
                }
                tracing::warn!(
                    device = dev,
                    pin = %pin.display(),
                    "removing a defunct pinned XDP link (device gone, recreated or detached)"
                );
                drop(fd);
                match std::fs::remove_file(&pin) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("removing {}", pin.display())),
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e).with_context(|| format!("opening {}", pin.display())),
        }

        if let Some(c) = current {
            let theirs = program_info(c.prog_id);
            if c.prog_id != 0 && theirs.uses(flows_id) {
                // Our dataplane, linked by a handle that still runs but whose
                // pin was removed (its peer closed): pin it again and share.
                if let Some(fd) = xdp_link::find_xdp_link(ifindex, c.prog_id)
                    .with_context(|| format!("looking for the XDP link of {dev}"))?
                {
                    match xdp_link::obj_pin(fd.as_fd(), &pin) {
                        Ok(()) => return link(fd, current_mode, true),
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) && round == 0 => continue,
                        Err(e) => {
                            return Err(e).with_context(|| format!("pinning {}", pin.display()))
                        }
                    }
                }
                bail!(
                    "{dev} runs this dataplane's XDP program (id {}) without a BPF link, so it \
                     cannot be shared; detach it (ip link set dev {dev} xdp off)",
                    c.prog_id
                );
            }
            bail!(
                "{dev} already carries a foreign XDP program ({}); the kernel dataplane needs \
                 the device's XDP hook: detach it (ip link set dev {dev} xdp off) or leave {dev} \
                 out of the kernel devices",
                match (c.prog_id, theirs.name.as_deref()) {
                    (0, _) => "several programs".to_string(),
                    (id, Some(name)) => format!("id {id}, name {name}"),
                    (id, None) => format!("id {id}"),
                }
            );
        }

        let (fd_link, used) = match attach_new(ebpf, dev, mode) {
            Ok(x) => x,
            // Lost a race with another opener: look again.
            Err(_) if round == 0 && matches!(xdp_link::device_xdp(ifindex), Ok(Some(_))) => {
                continue
            }
            Err(e) => return Err(e),
        };
        match fd_link.pin(&pin) {
            Ok(pinned) => {
                let fd = xdp_link::obj_get(&pin)
                    .with_context(|| format!("reopening {}", pin.display()))?;
                // The pin and `fd` keep the link; aya's copy can go.
                drop(pinned);
                return link(fd, used, false);
            }
            Err(e) => {
                // Our unpinned link detaches when `fd_link` (moved into the
                // failed pin call) is dropped.
                if round == 0 && pin.exists() {
                    continue;
                }
                bail!("pinning the XDP link of {dev} at {}: {e}", pin.display());
            }
        }
    }
    bail!("attaching XDP to {dev}: another process keeps changing it")
}

fn our_xdp(ebpf: &mut Ebpf) -> anyhow::Result<&mut Xdp> {
    ebpf.program_mut(XDP_PROGRAM)
        .context("XDP program vanished")?
        .try_into()
        .map_err(|e| anyhow!("{e}"))
}

/// Attaches our program to `dev` with a new BPF link (not pinned yet).
fn attach_new(
    ebpf: &mut Ebpf,
    dev: &str,
    mode: XdpAttachMode,
) -> anyhow::Result<(FdLink, XdpAttachMode)> {
    let xdp = our_xdp(ebpf)?;
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
    let link = xdp
        .take_link(id)
        .map_err(|e| anyhow!("taking the XDP link of {dev}: {e}"))?;
    let fd_link = FdLink::try_from(link).map_err(|e| {
        anyhow!(
            "attaching XDP to {dev}: the kernel has no XDP BPF links (Linux 5.9+), so the \
             attachment cannot be pinned and shared ({e})"
        )
    })?;
    Ok((fd_link, used))
}

/// Points the pinned link at `pin` to our program (`BPF_LINK_UPDATE`).
fn replace_program(ebpf: &mut Ebpf, pin: &Path) -> anyhow::Result<()> {
    let xdp = our_xdp(ebpf)?;
    let pinned = PinnedLink::from_pin(pin).map_err(|e| anyhow!("{e}"))?;
    let link = XdpLink::try_from(FdLink::from(pinned)).map_err(|e| anyhow!("{e}"))?;
    let id = xdp.attach_to_link(link).map_err(|e| anyhow!("{e}"))?;
    // The pin keeps the link; dropping aya's copy only closes a descriptor.
    drop(xdp.take_link(id).map_err(|e| anyhow!("{e}"))?);
    Ok(())
}

/// What we know about a loaded program.
#[derive(Default)]
struct ProgInfo {
    name: Option<String>,
    tag: Option<u64>,
    map_ids: Vec<u32>,
}

impl ProgInfo {
    fn uses(&self, map_id: u32) -> bool {
        self.map_ids.contains(&map_id)
    }
}

fn program_info(prog_id: u32) -> ProgInfo {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == prog_id)
        .map(|p| ProgInfo {
            name: p.name_as_str().map(str::to_string),
            tag: Some(p.tag()),
            map_ids: p.map_ids().ok().flatten().unwrap_or_default(),
        })
        .unwrap_or_default()
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
