//! The three-namespace topology of the kernel-forwarding tests (caller,
//! proxy, callee joined by veth pairs), and kernel table listings.

use std::path::PathBuf;

use crate::daemon::daemon_bin;
use crate::netns::{sh, Netns};
use crate::util::require_root;

/// caller (c0) ↔ (p0) proxy (p1) ↔ (e0) callee, IPv4 and IPv6, joined by
/// veth pairs with static neighbours; a private bpffs for the daemon's pins.
///
/// Set up for native XDP on the proxy's p0/p1 (kernel-offload.md B7): tx
/// checksum offload is off on the senders c0/e0 and an XDP_PASS program sits
/// on each receiving peer. The proxy forwards (sysctl), so it is also a plain
/// router between caller and callee. Everything goes away on drop.
pub struct Topology {
    /// The caller's namespace (c0).
    pub caller: Netns,
    /// The proxy's namespace (p0, p1): where the daemon runs.
    pub proxy: Netns,
    /// The callee's namespace (e0).
    pub callee: Netns,
    _peers: Vec<aya::Ebpf>,
    /// Mount point of the private bpffs.
    pub pins: PathBuf,
}

impl Topology {
    /// Caller's IPv4 address (c0).
    pub const CALLER_V4: &'static str = "10.1.0.2";
    /// Proxy's caller-side IPv4 address (p0, interface `int`).
    pub const PROXY_INT_V4: &'static str = "10.1.0.1";
    /// Proxy's callee-side IPv4 address (p1, interface `ext`).
    pub const PROXY_EXT_V4: &'static str = "10.2.0.1";
    /// Callee's IPv4 address (e0).
    pub const CALLEE_V4: &'static str = "10.2.0.2";
    /// Caller's IPv6 address (c0).
    pub const CALLER_V6: &'static str = "fd00:1::2";
    /// Proxy's caller-side IPv6 address (p0).
    pub const PROXY_INT_V6: &'static str = "fd00:1::1";
    /// Proxy's callee-side IPv6 address (p1).
    pub const PROXY_EXT_V6: &'static str = "fd00:2::1";
    /// Callee's IPv6 address (e0).
    pub const CALLEE_V6: &'static str = "fd00:2::2";

    /// Builds the topology; `tag` makes the namespace names unique.
    pub fn new(tag: &str) -> Topology {
        require_root();
        let caller = Netns::new(&format!("{tag}c")).unwrap();
        let proxy = Netns::new(&format!("{tag}p")).unwrap();
        let callee = Netns::new(&format!("{tag}e")).unwrap();
        for (a, ans, amac, b, bmac) in [
            (
                "c0",
                &caller,
                "02:00:00:00:01:02",
                "p0",
                "02:00:00:00:01:01",
            ),
            (
                "e0",
                &callee,
                "02:00:00:00:02:02",
                "p1",
                "02:00:00:00:02:01",
            ),
        ] {
            sh(&[
                "ip",
                "link",
                "add",
                a,
                "netns",
                &ans.name,
                "address",
                amac,
                "type",
                "veth",
                "peer",
                "name",
                b,
                "netns",
                &proxy.name,
                "address",
                bmac,
            ])
            .unwrap();
        }
        run_all(
            &caller,
            &[
                "ip addr add 10.1.0.2/24 dev c0",
                "ip -6 addr add fd00:1::2/64 dev c0 nodad",
                "ip link set c0 up",
                "ip route add default via 10.1.0.1",
                "ip -6 route add default via fd00:1::1",
                // Locally generated packets are CHECKSUM_PARTIAL; XDP never
                // completes them (kernel-offload.md B7).
                "ethtool -K c0 tx off",
                // Static neighbours: the first packets must not wait for ARP/ND.
                "ip neigh replace 10.1.0.1 lladdr 02:00:00:00:01:01 dev c0 nud permanent",
                "ip -6 neigh replace fd00:1::1 lladdr 02:00:00:00:01:01 dev c0 nud permanent",
            ],
        );
        run_all(
            &callee,
            &[
                "ip addr add 10.2.0.2/24 dev e0",
                "ip -6 addr add fd00:2::2/64 dev e0 nodad",
                "ip link set e0 up",
                "ip route add default via 10.2.0.1",
                "ip -6 route add default via fd00:2::1",
                "ethtool -K e0 tx off",
                "ip neigh replace 10.2.0.1 lladdr 02:00:00:00:02:01 dev e0 nud permanent",
                "ip -6 neigh replace fd00:2::1 lladdr 02:00:00:00:02:01 dev e0 nud permanent",
            ],
        );
        run_all(
            &proxy,
            &[
                "ip addr add 10.1.0.1/24 dev p0",
                "ip addr add 10.2.0.1/24 dev p1",
                "ip -6 addr add fd00:1::1/64 dev p0 nodad",
                "ip -6 addr add fd00:2::1/64 dev p1 nodad",
                "ip link set p0 up",
                "ip link set p1 up",
                "sysctl -qw net.ipv4.conf.all.forwarding=1",
                "sysctl -qw net.ipv6.conf.all.forwarding=1",
                "ip neigh replace 10.1.0.2 lladdr 02:00:00:00:01:02 dev p0 nud permanent",
                "ip -6 neigh replace fd00:1::2 lladdr 02:00:00:00:01:02 dev p0 nud permanent",
                "ip neigh replace 10.2.0.2 lladdr 02:00:00:00:02:02 dev p1 nud permanent",
                "ip -6 neigh replace fd00:2::2 lladdr 02:00:00:00:02:02 dev p1 nud permanent",
            ],
        );
        let peers = vec![
            xdp_pass_program(&caller, "c0"),
            xdp_pass_program(&callee, "e0"),
        ];
        // A private bpffs outside /sys: `ip netns exec` gives the daemon its own
        // /sys, and the test (and `--dump-table`) must see the daemon's pins.
        let pins = std::env::temp_dir().join(format!("rtpe-bpffs-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&pins).unwrap();
        sh(&["mount", "-t", "bpf", "bpf", pins.to_str().unwrap()]).unwrap();
        Topology {
            caller,
            proxy,
            callee,
            _peers: peers,
            pins,
        }
    }

    /// The directory to give the daemon as `--bpf-pin-dir`.
    pub fn pin_dir(&self) -> String {
        self.pins.join("maps").to_string_lossy().into_owned()
    }

    /// `rtpengine --dump-table=<table>` against the daemon's pins in
    /// [`Topology::pin_dir`].
    pub fn dump_table(&self, table: u32) -> String {
        dump_table(&self.pin_dir(), table)
    }
}

/// `rtpengine --dump-table=<table> --bpf-pin-dir=<pin_dir>` (the daemon's
/// pins are read from bpffs; no namespace needed).
pub fn dump_table(pin_dir: &str, table: u32) -> String {
    sh(&[
        daemon_bin().to_str().unwrap(),
        "--config-file=none",
        &format!("--dump-table={table}"),
        &format!("--bpf-pin-dir={pin_dir}"),
    ])
    .unwrap()
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = sh(&["umount", self.pins.to_str().unwrap_or_default()]);
        let _ = std::fs::remove_dir_all(&self.pins);
    }
}

/// The `N` of `kernel table T: N flow(s)` in a `--dump-table` output.
pub fn dumped_flows(dump: &str) -> Option<usize> {
    dump.lines()
        .find_map(|l| l.strip_prefix("kernel table ")?.split_once(": "))
        .and_then(|(_, rest)| rest.strip_suffix(" flow(s)")?.parse().ok())
}

/// Runs space-separated commands inside `ns`, panicking on the first failure.
fn run_all(ns: &Netns, cmds: &[&str]) {
    for c in cmds {
        ns.exec(&c.split(' ').collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("{c}: {e}"));
    }
}

/// An XDP_PASS program (the daemon's, with empty maps) in native mode on a
/// receiving veth peer: veth's native XDP redirect only delivers to a peer
/// that has one (kernel-offload.md B7).
pub fn xdp_pass_program(ns: &Netns, dev: &'static str) -> aya::Ebpf {
    ns.run(move || {
        let mut ebpf = aya::Ebpf::load(rtpengine::kernel::EBPF_OBJECT).expect("load");
        let prog: &mut aya::programs::Xdp = ebpf
            .program_mut("rtpengine_xdp")
            .expect("program")
            .try_into()
            .expect("xdp");
        prog.load().expect("verifier");
        prog.attach(dev, aya::programs::XdpMode::Driver)
            .expect("attach");
        ebpf
    })
}
