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
//! and its entries. The kernel keeps forwarding its existing calls for the
//! rest of the table's [lease](lease) (renewed by the daemon several times
//! per lease), then hands their packets to the stack: a restart within the
//! lease continues without a gap, as classic rtpengine did while the daemon
//! restarted, but a daemon that is gone for good does not leave media flowing
//! to its old peers. The next open of the same table shares the pinned link
//! and flushes the stale entries (the restarted daemon re-installs entries
//! for the calls it knows). A clean close of the last daemon detaches the
//! program.
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
//! # Layout
//!
//! This file holds the handle's lifecycle (open, close); [`attach`]-ing the
//! program to devices (with the raw link calls in `xdp_link`) and reading
//! and writing the maps (`maps`) are beside it, with `dump` for listings,
//! `target` for building entries, `offload` for the relay's view (and the
//! refusals it counts), `lease` for the table's lease and `table` for the
//! validated table id.
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

mod attach;
mod bpffs;
mod dump;
mod lease;
mod maps;
mod nexthop;
mod offload;
mod rtnl;
mod table;
mod target;
#[cfg(feature = "testing")]
mod testing;
mod xdp_link;
mod xsk;

use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use aya::maps::MapInfo;
use aya::programs::Xdp;
use aya::EbpfLoader;
pub use rtpengine_common::{
    Endpoint, FlowKey, FlowStats, FlowTarget, TableStats, FAMILY_V4, FAMILY_V6, MAP_LAYOUT_VERSION,
    MAX_FLOWS, MAX_TABLES,
};
use rtpengine_common::{
    FLOWS_MAP, FLOW_STATS_MAP, TABLE_LEASE_MAP, TABLE_STATS_MAP, XDP_PROGRAM, XSKS_MAP,
    XSK_SLOTS_MAP,
};

pub use attach::Attachment;
use attach::Prog;
pub use dump::{dump, dump_from, format_entries};
pub use lease::{keep_renewing, DEFAULT_LEASE};
pub use maps::TableFull;
use maps::{take_map, Maps};
pub use table::{TableId, TableOutOfRange};
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

impl std::str::FromStr for XdpAttachMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(XdpAttachMode::Auto),
            "native" => Ok(XdpAttachMode::Native),
            "generic" => Ok(XdpAttachMode::Generic),
            _ => Err(format!("unknown XDP mode '{s}' (auto, native, generic)")),
        }
    }
}

/// Where the dataplane takes a flow's next hop from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NextHopMode {
    /// Resolved by the daemon over rtnetlink (route, device, neighbour) and
    /// kept in the flow, followed on changes; the FIB lookup only where that
    /// is not possible yet. No IP forwarding needed.
    #[default]
    Resolve,
    /// `bpf_fib_lookup` per packet, as before: needs IP forwarding enabled
    /// on the media devices (kept for comparison and for routing the FIB
    /// decides per packet, e.g. multipath).
    Fib,
}

impl std::fmt::Display for NextHopMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NextHopMode::Resolve => "resolve",
            NextHopMode::Fib => "fib",
        })
    }
}

impl std::str::FromStr for NextHopMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "resolve" => Ok(NextHopMode::Resolve),
            "fib" => Ok(NextHopMode::Fib),
            _ => Err(format!("unknown next-hop mode '{s}' (resolve, fib)")),
        }
    }
}

/// Everything [`Kernel::open_with`] needs.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// Table id (0..63) this daemon owns.
    pub table: TableId,
    /// Devices to attach the XDP program to (every device media enters *or
    /// leaves* through: native redirect needs a program on the egress device).
    pub devices: Vec<String>,
    /// Attach mode.
    pub mode: XdpAttachMode,
    /// Pin directory of the shared maps ([`default_pin_dir`] normally; tests use
    /// their own so they cannot disturb a running daemon).
    pub pin_dir: PathBuf,
    /// How long the dataplane keeps forwarding the table's flows after the
    /// daemon last renewed its lease (`None`: for ever).
    pub lease: Option<Duration>,
    /// Where next hops come from.
    pub next_hop: NextHopMode,
    /// Keep the table's flows at open and close instead of flushing them:
    /// the calls are restored after a restart (Redis) and their flows
    /// adopted ([`Kernel::adopt_flows`]), so media never stops; a daemon
    /// that does not come back leaves them to the lease.
    pub keep_flows: bool,
}

impl KernelConfig {
    /// A configuration with the default pin directory.
    pub fn new(table: TableId, devices: &[String], mode: XdpAttachMode) -> KernelConfig {
        KernelConfig {
            table,
            devices: devices.to_vec(),
            mode,
            pin_dir: default_pin_dir(),
            lease: Some(DEFAULT_LEASE),
            next_hop: NextHopMode::Resolve,
            keep_flows: false,
        }
    }
}

/// An open forwarding table: the loaded program, its attachments and the maps.
/// Cheap to share (`Arc<Kernel>`); all methods take `&self`.
pub struct Kernel {
    table: TableId,
    pin_dir: PathBuf,
    maps: Arc<Mutex<Maps>>,
    nexthops: Arc<Mutex<nexthop::NextHops>>,
    /// `nexthops`' generation: next hops cached outside it (the AF_XDP
    /// relay's) are stale once it moved.
    hop_generation: Arc<AtomicU64>,
    monitor_stop: Arc<AtomicBool>,
    prog: Mutex<Prog>,
    lease: Option<Duration>,
    keep_flows: AtomicBool,
    /// Set when a daemon with `keep_flows` stops: the closing sockets leave
    /// their flows for the restarted daemon.
    retaining: AtomicBool,
    refusals: offload::RefusalLog,
    closed: bool,
}

impl Kernel {
    /// Loads the dataplane, reuses (or creates and pins) the shared maps in the
    /// default pin directory, flushes table `table`'s leftover entries and
    /// attaches to `devices`.
    pub fn open(table: TableId, devices: &[String], mode: XdpAttachMode) -> anyhow::Result<Kernel> {
        Self::open_with(&KernelConfig::new(table, devices, mode))
    }

    /// [`Kernel::open`] with every knob.
    pub fn open_with(cfg: &KernelConfig) -> anyhow::Result<Kernel> {
        bpffs::ensure_mounted(Path::new(BPFFS_ROOT))?;
        std::fs::create_dir_all(&cfg.pin_dir)
            .with_context(|| format!("creating pin directory {}", cfg.pin_dir.display()))?;

        let flows_pin = cfg.pin_dir.join(FLOWS_MAP);
        let stats_pin = cfg.pin_dir.join(FLOW_STATS_MAP);
        let table_pin = cfg.pin_dir.join(TABLE_STATS_MAP);
        let lease_pin = cfg.pin_dir.join(TABLE_LEASE_MAP);
        let xsks_pin = cfg.pin_dir.join(XSKS_MAP);
        let xsk_slots_pin = cfg.pin_dir.join(XSK_SLOTS_MAP);
        let mut ebpf = EbpfLoader::new()
            .map_pin_path(FLOWS_MAP, flows_pin.as_path())
            .map_pin_path(FLOW_STATS_MAP, stats_pin.as_path())
            .map_pin_path(TABLE_STATS_MAP, table_pin.as_path())
            .map_pin_path(TABLE_LEASE_MAP, lease_pin.as_path())
            .map_pin_path(XSKS_MAP, xsks_pin.as_path())
            .map_pin_path(XSK_SLOTS_MAP, xsk_slots_pin.as_path())
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
            lease: take_map(&mut ebpf, TABLE_LEASE_MAP, &cfg.pin_dir)?,
            xsks: take_map(&mut ebpf, XSKS_MAP, &cfg.pin_dir)?,
            xsk_slots: take_map(&mut ebpf, XSK_SLOTS_MAP, &cfg.pin_dir)?,
            xsk_used: 0,
        };

        let prog: &mut Xdp = ebpf
            .program_mut(XDP_PROGRAM)
            .with_context(|| format!("program {XDP_PROGRAM} missing from the eBPF object"))?
            .try_into()
            .map_err(|e| anyhow!("program {XDP_PROGRAM} is not XDP: {e}"))?;
        // ProgramError's Display carries the verifier log.
        prog.load()
            .map_err(|e| anyhow!("loading XDP program {XDP_PROGRAM} failed: {e}"))?;

        let hop_generation = Arc::new(AtomicU64::new(0));
        let mut kernel = Kernel {
            table: cfg.table,
            pin_dir: cfg.pin_dir.clone(),
            maps: Arc::new(Mutex::new(maps)),
            nexthops: Arc::new(Mutex::new(nexthop::NextHops::new(
                cfg.next_hop == NextHopMode::Resolve,
                Arc::clone(&hop_generation),
            ))),
            hop_generation,
            monitor_stop: Arc::new(AtomicBool::new(false)),
            prog: Mutex::new(Prog {
                ebpf,
                links: Vec::new(),
            }),
            lease: cfg.lease,
            keep_flows: AtomicBool::new(cfg.keep_flows),
            retaining: AtomicBool::new(false),
            refusals: offload::RefusalLog::default(),
            closed: false,
        };
        // Flows kept for a restart are only worth keeping while their lease
        // runs: after it, media has stopped anyway and the calls behind them
        // may be gone.
        let keep = cfg.keep_flows && !kernel.lease_ran_out();
        // Renewed before the flush: no entry of ours is ever forwarded under
        // a lease this handle did not set.
        kernel.renew_lease()?;
        if cfg.next_hop == NextHopMode::Resolve {
            if let Err(e) = nexthop::spawn_monitor(
                Arc::downgrade(&kernel.nexthops),
                Arc::downgrade(&kernel.maps),
                cfg.table.get(),
                Arc::clone(&kernel.monitor_stop),
            ) {
                tracing::warn!(error = %e, "Cannot follow neighbour and route changes: next hops come from the FIB lookup (which needs IP forwarding)");
                kernel.nexthops().disable();
            }
        }
        let flushed = if keep { 0 } else { kernel.flush()? };
        // Sockets of a previous instance are gone with it, and so is the
        // use of its steering flows.
        kernel.clear_xsk_slots();
        kernel.remove_steering_flows();
        if flushed > 0 {
            tracing::warn!(
                table = %cfg.table,
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
            }
            // A native redirect needs the program on the egress device too:
            // next hops through other devices are left to the FIB/userspace.
            let egress = cfg
                .devices
                .iter()
                .filter_map(|d| xdp_link::ifindex(d).ok())
                .collect();
            kernel.nexthops().set_egress(egress);
        }
        tracing::info!(
            table = %cfg.table,
            pin_dir = %cfg.pin_dir.display(),
            devices = ?kernel.attachments(),
            "kernel forwarding table open"
        );
        Ok(kernel)
    }

    /// The table id this handle owns.
    pub fn table(&self) -> TableId {
        self.table
    }

    /// The directory holding the pinned maps.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
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
        self.monitor_stop.store(true, Relaxed);
        self.clear_xsk_slots();
        let mut result = Ok(());
        if self.keep_flows.load(Relaxed) {
            tracing::info!(table = %self.table, "kernel forwarding table closed, its flows kept for the restart (the lease ends them otherwise)");
            // The attachments stay pinned: the flows need the program.
            if let Ok(prog) = self.prog.get_mut() {
                prog.links.clear();
            }
            return result;
        }
        match self.flush() {
            Ok(n) => tracing::info!(
                table = %self.table,
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
}

impl Drop for Kernel {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        if let Err(e) = self.shutdown() {
            tracing::warn!(table = %self.table, error = %format!("{e:#}"), "closing kernel table");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    /// The daemon carries only what it loads: the dataplane and its maps,
    /// none of the benchmark's floor programs or their 65 536-entry map.
    #[test]
    fn the_embedded_object_holds_only_the_dataplane() {
        assert!(contains(EBPF_OBJECT, XDP_PROGRAM));
        for map in [
            FLOWS_MAP,
            FLOW_STATS_MAP,
            TABLE_STATS_MAP,
            TABLE_LEASE_MAP,
            XSKS_MAP,
            XSK_SLOTS_MAP,
        ] {
            assert!(contains(EBPF_OBJECT, map), "{map}");
        }
        for floor in [
            "FLOOR_FLOWS",
            "XSK_FLOOR",
            "rtpengine_floor",
            "rtpengine_xsk_floor",
        ] {
            assert!(
                !contains(EBPF_OBJECT, floor),
                "{floor} in the daemon's object"
            );
        }
    }
}
