//! The XDP dataplane: BPF_PROG_TEST_RUN fixtures (packet in → exact packet out)
//! and an end-to-end forward through three network namespaces.
//!
//! Everything here needs root (eBPF, namespaces); run with `cargo xtask test`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aya::programs::TestRunOptions;
use rtpengine::kernel::{
    flow_key, FlowStats, FlowTarget, FlowTargetBuilder, Kernel, KernelConfig, SourcePolicy,
    TableId, XdpAttachMode, EBPF_OBJECT,
};
use rtpengine_common::csum;
use rtpengine_tests::*;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

const MAC_A0: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x00];
const MAC_A_PEER: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x02];
const MAC_B0: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x00];
const MAC_B_PEER: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x02];
/// Whatever MAC the test packets arrive with.
const MAC_IN_SRC: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0x01];

/// Kernel table `n`.
fn table(n: u32) -> TableId {
    TableId::new(n).expect("a table id below 64")
}

static PIN_SEQ: AtomicU32 = AtomicU32::new(0);

/// A private pin directory (so tests never touch a running daemon's maps),
/// removed on drop.
struct PinDir(PathBuf);

impl PinDir {
    fn new() -> PinDir {
        PinDir(PathBuf::from(format!(
            "/sys/fs/bpf/rtpengine-test-{}-{}",
            std::process::id(),
            PIN_SEQ.fetch_add(1, Ordering::Relaxed)
        )))
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        // Maps and, under links/, pinned XDP links.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(i, 0, "no interface {name}");
    i
}

// ---------------------------------------------------------------------------
// Packet builders (by hand, checksums computed from scratch).

fn rtp_payload(seq: u16, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x80;
    p[1] = 0x08;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(12) {
        *b = (i as u8).wrapping_mul(7);
    }
    p
}

struct V4 {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    tos: u8,
    ttl: u8,
    frags: [u8; 2],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    udp_csum: bool,
}

impl V4 {
    fn new(src: (&str, u16), dst: (&str, u16)) -> V4 {
        V4 {
            eth_dst: MAC_A0,
            eth_src: MAC_IN_SRC,
            tos: 0,
            ttl: 63,
            frags: [0x40, 0], // DF
            src: (src.0.parse().unwrap(), src.1),
            dst: (dst.0.parse().unwrap(), dst.1),
            udp_csum: true,
        }
    }

    fn build(&self, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend(self.eth_dst);
        p.extend(self.eth_src);
        p.extend([0x08, 0x00]);
        let tot = (20 + 8 + payload.len()) as u16;
        let mut ip = vec![0x45, self.tos];
        ip.extend(tot.to_be_bytes());
        ip.extend([0x12, 0x34]);
        ip.extend(self.frags);
        ip.extend([self.ttl, 17, 0, 0]);
        ip.extend(self.src.0.octets());
        ip.extend(self.dst.0.octets());
        let c = csum::ipv4_header_checksum(&ip);
        ip[10..12].copy_from_slice(&c);
        p.extend(&ip);
        let mut udp = Vec::new();
        udp.extend(self.src.1.to_be_bytes());
        udp.extend(self.dst.1.to_be_bytes());
        udp.extend(((8 + payload.len()) as u16).to_be_bytes());
        udp.extend([0, 0]);
        udp.extend(payload);
        if self.udp_csum {
            let c = csum::udp4_checksum(self.src.0.octets(), self.dst.0.octets(), &udp);
            udp[6..8].copy_from_slice(&c);
        }
        p.extend(udp);
        p
    }
}

struct V6 {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    tclass: u8,
    flow: u32,
    hop: u8,
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    zero_csum: bool,
}

impl V6 {
    fn new(src: (&str, u16), dst: (&str, u16)) -> V6 {
        V6 {
            eth_dst: MAC_A0,
            eth_src: MAC_IN_SRC,
            tclass: 0,
            flow: 0x12345,
            hop: 63,
            src: (src.0.parse().unwrap(), src.1),
            dst: (dst.0.parse().unwrap(), dst.1),
            zero_csum: false,
        }
    }

    fn build(&self, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend(self.eth_dst);
        p.extend(self.eth_src);
        p.extend([0x86, 0xdd]);
        let vcf = (6u32 << 28) | (u32::from(self.tclass) << 20) | (self.flow & 0xfffff);
        p.extend(vcf.to_be_bytes());
        p.extend(((8 + payload.len()) as u16).to_be_bytes());
        p.extend([17, self.hop]);
        p.extend(self.src.0.octets());
        p.extend(self.dst.0.octets());
        let mut udp = Vec::new();
        udp.extend(self.src.1.to_be_bytes());
        udp.extend(self.dst.1.to_be_bytes());
        udp.extend(((8 + payload.len()) as u16).to_be_bytes());
        udp.extend([0, 0]);
        udp.extend(payload);
        if !self.zero_csum {
            let c = csum::udp6_checksum(self.src.0.octets(), self.dst.0.octets(), &udp);
            udp[6..8].copy_from_slice(&c);
        }
        p.extend(udp);
        p
    }
}

/// Independent check: a receiver's view of the IPv4 and UDP checksums.
fn assert_v4_checksums_valid(p: &[u8]) {
    let ip = &p[14..34];
    assert_eq!(
        csum::fold(csum::add_slice(0, ip)),
        0xffff,
        "IPv4 header checksum"
    );
    let udp = &p[34..];
    if udp[6..8] == [0, 0] {
        return;
    }
    let mut acc = csum::add_slice(0, &ip[12..20]);
    acc = csum::add(acc, &[0, 17]);
    acc = csum::add(acc, &(udp.len() as u16).to_be_bytes());
    assert_eq!(
        csum::fold(csum::add_slice(acc, udp)),
        0xffff,
        "UDP checksum"
    );
}

// ---------------------------------------------------------------------------
// The TEST_RUN rig: a namespace with two veth pairs, addresses, static
// neighbours, forwarding on, a blackhole route; the program loaded (not
// attached) with private pins.

struct Rig {
    kernel: Kernel,
    a0: u32,
    b0: u32,
}

impl Rig {
    /// Runs the program on `pkt` arriving on `a0`; returns (action, packet out).
    fn run(&self, pkt: &[u8]) -> (u32, Vec<u8>) {
        self.run_on(self.a0, pkt)
    }

    fn run_on(&self, ifindex: u32, pkt: &[u8]) -> (u32, Vec<u8>) {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex.
        let mut ctx = Vec::new();
        for v in [0u32, pkt.len() as u32, 0, ifindex, 0, 0] {
            ctx.extend(v.to_ne_bytes());
        }
        let mut out = vec![0u8; pkt.len() + 256];
        let r = self
            .kernel
            .test_run(TestRunOptions {
                data_in: Some(pkt),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                ..TestRunOptions::default()
            })
            .unwrap();
        out.truncate(r.data_size_out as usize);
        (r.return_value, out)
    }

    fn install(&self, local: &str, target: FlowTarget) {
        self.kernel
            .install(flow_key(local.parse().unwrap()), target)
            .unwrap();
    }

    fn stats(&self, local: &str) -> FlowStats {
        self.kernel
            .stats(flow_key(local.parse().unwrap()))
            .expect("entry exists")
    }
}

fn target(src: &str, dst: &str) -> FlowTargetBuilder {
    FlowTargetBuilder::new(src.parse().unwrap(), dst.parse().unwrap()).unwrap()
}

/// Builds the namespace and runs `f` inside it with a loaded program.
fn with_rig(f: impl FnOnce(&Rig) + Send + 'static) {
    require_root();
    let ns = Netns::new("xdp").unwrap();
    for cmd in [
        "ip link add a0 address 02:00:00:00:0a:00 type veth peer name a1",
        "ip link add b0 address 02:00:00:00:0b:00 type veth peer name b1",
        "ip link set a0 up",
        "ip link set a1 up",
        "ip link set b0 up",
        "ip link set b1 up",
        "ip addr add 10.10.0.1/24 dev a0",
        "ip addr add 10.20.0.1/24 dev b0",
        "ip -6 addr add 2001:db8:10::1/64 dev a0 nodad",
        "ip -6 addr add 2001:db8:20::1/64 dev b0 nodad",
        "sysctl -qw net.ipv4.ip_forward=1",
        "sysctl -qw net.ipv6.conf.all.forwarding=1",
        "ip route add blackhole 198.51.100.0/24",
    ] {
        ns.exec(&cmd.split(' ').collect::<Vec<_>>()).unwrap();
    }
    for (ip, m, dev) in [
        ("10.10.0.2", MAC_A_PEER, "a0"),
        ("10.20.0.2", MAC_B_PEER, "b0"),
        ("2001:db8:10::2", MAC_A_PEER, "a0"),
        ("2001:db8:20::2", MAC_B_PEER, "b0"),
    ] {
        ns.exec(&[
            "ip",
            "neigh",
            "replace",
            ip,
            "lladdr",
            &mac(&m),
            "dev",
            dev,
            "nud",
            "permanent",
        ])
        .unwrap();
    }
    let pins = PinDir::new();
    let pin_dir = pins.0.clone();
    ns.run(move || {
        let kernel = Kernel::open_with(&KernelConfig {
            table: table(7),
            devices: vec![],
            mode: XdpAttachMode::Auto,
            pin_dir,
        })
        .unwrap();
        let rig = Rig {
            kernel,
            a0: ifindex("a0"),
            b0: ifindex("b0"),
        };
        f(&rig);
    });
    drop(pins);
}

// ---------------------------------------------------------------------------
// TEST_RUN fixtures.

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv4_rewrite_and_redirect() {
    with_rig(|rig| {
        rig.install(
            "10.10.0.1:30000",
            target("10.20.0.1:30002", "10.20.0.2:6000")
                .expect_source("10.10.0.2:5000".parse().unwrap(), SourcePolicy::Drop)
                .unwrap()
                .build(),
        );
        let payload = rtp_payload(1, 172);
        let input = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30000)).build(&payload);
        let (action, out) = rig.run(&input);
        assert_eq!(action, XDP_REDIRECT, "egress b0 differs from ingress a0");
        let mut exp = V4::new(("10.20.0.1", 30002), ("10.20.0.2", 6000));
        exp.eth_dst = MAC_B_PEER;
        exp.eth_src = MAC_B0;
        exp.ttl = 64;
        assert_eq!(out, exp.build(&payload));
        assert_v4_checksums_valid(&out);
        let s = rig.stats("10.10.0.1:30000");
        assert_eq!((s.packets, s.bytes, s.errors), (1, 172, 0));
        assert_ne!(s.last_seen_ns, 0);
        let t = rig.kernel.table_stats().unwrap();
        assert_eq!((t.packets, t.bytes), (1, 172));
        let _ = rig.b0;
    });
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv4_tx_with_tos_and_kept_ttl() {
    with_rig(|rig| {
        rig.install(
            "10.10.0.1:30004",
            target("10.10.0.1:30006", "10.10.0.2:7000")
                .tos(0xb8)
                .ttl(0)
                .build(),
        );
        let payload = rtp_payload(2, 160);
        let mut inp = V4::new(("10.10.0.2", 5002), ("10.10.0.1", 30004));
        inp.tos = 0x10;
        let (action, out) = rig.run(&inp.build(&payload));
        assert_eq!(action, XDP_TX, "egress == ingress");
        let mut exp = V4::new(("10.10.0.1", 30006), ("10.10.0.2", 7000));
        exp.eth_dst = MAC_A_PEER;
        exp.eth_src = MAC_A0;
        exp.tos = 0xb8;
        exp.ttl = 63;
        assert_eq!(out, exp.build(&payload));
        assert_v4_checksums_valid(&out);
    });
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv4_zero_udp_checksum_stays_zero() {
    with_rig(|rig| {
        rig.install(
            "10.10.0.1:30000",
            target("10.20.0.1:30002", "10.20.0.2:6000").build(),
        );
        let payload = rtp_payload(3, 100);
        let mut inp = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30000));
        inp.udp_csum = false;
        let (action, out) = rig.run(&inp.build(&payload));
        assert_eq!(action, XDP_REDIRECT);
        let mut exp = V4::new(("10.20.0.1", 30002), ("10.20.0.2", 6000));
        exp.eth_dst = MAC_B_PEER;
        exp.eth_src = MAC_B0;
        exp.ttl = 64;
        exp.udp_csum = false;
        assert_eq!(out, exp.build(&payload));
    });
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv6_rewrite_and_redirect() {
    with_rig(|rig| {
        rig.install(
            "[2001:db8:10::1]:30000",
            target("[2001:db8:20::1]:30002", "[2001:db8:20::2]:6000")
                .expect_source("[2001:db8:10::2]:5000".parse().unwrap(), SourcePolicy::Drop)
                .unwrap()
                .tos(0xb8)
                .build(),
        );
        let payload = rtp_payload(4, 172);
        let inp = V6::new(("2001:db8:10::2", 5000), ("2001:db8:10::1", 30000));
        let (action, out) = rig.run(&inp.build(&payload));
        assert_eq!(action, XDP_REDIRECT);
        let mut exp = V6::new(("2001:db8:20::1", 30002), ("2001:db8:20::2", 6000));
        exp.eth_dst = MAC_B_PEER;
        exp.eth_src = MAC_B0;
        exp.tclass = 0xb8;
        exp.hop = 64;
        assert_eq!(out, exp.build(&payload));
        let s = rig.stats("[2001:db8:10::1]:30000");
        assert_eq!((s.packets, s.bytes), (1, 172));
    });
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv6_tx_back_out_of_ingress() {
    with_rig(|rig| {
        rig.install(
            "[2001:db8:10::1]:30010",
            target("[2001:db8:10::1]:30012", "[2001:db8:10::2]:7000").build(),
        );
        let payload = rtp_payload(5, 33); // odd length
        let inp = V6::new(("2001:db8:10::2", 5000), ("2001:db8:10::1", 30010));
        let (action, out) = rig.run(&inp.build(&payload));
        assert_eq!(action, XDP_TX);
        let mut exp = V6::new(("2001:db8:10::1", 30012), ("2001:db8:10::2", 7000));
        exp.eth_dst = MAC_A_PEER;
        exp.eth_src = MAC_A0;
        exp.hop = 64;
        assert_eq!(out, exp.build(&payload));
    });
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn packets_the_program_does_not_own_pass_untouched() {
    with_rig(|rig| {
        rig.install(
            "10.10.0.1:30000",
            target("10.20.0.1:30002", "10.20.0.2:6000").build(),
        );
        rig.install(
            "[2001:db8:10::1]:30000",
            target("[2001:db8:20::1]:30002", "[2001:db8:20::2]:6000").build(),
        );
        let rtp = rtp_payload(1, 172);
        let known = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30000));

        let mut stun = vec![0u8; 20];
        stun[0..2].copy_from_slice(&[0x00, 0x01]);
        stun[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        let dtls = [22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];

        let mut frag = known.build(&rtp);
        frag[20] |= 0x20; // MF
        let c = csum::ipv4_header_checksum(&frag[14..34]);
        frag[24..26].copy_from_slice(&c);

        let mut later_frag = known.build(&rtp);
        later_frag[20..22].copy_from_slice(&[0x00, 0x10]); // offset 16*8
        let c = csum::ipv4_header_checksum(&later_frag[14..34]);
        later_frag[24..26].copy_from_slice(&c);

        // IPv4 with 4 bytes of options (NOPs): IHL 6.
        let mut opts = known.build(&rtp);
        opts[14] = 0x46;
        opts.splice(34..34, [1u8, 1, 1, 1]);
        let tot = (opts.len() - 14) as u16;
        opts[16..18].copy_from_slice(&tot.to_be_bytes());
        opts[24..26].copy_from_slice(&[0, 0]);
        let c = csum::ipv4_header_checksum(&opts[14..38]);
        opts[24..26].copy_from_slice(&c);

        let mut v6_zero = V6::new(("2001:db8:10::2", 5000), ("2001:db8:10::1", 30000));
        v6_zero.zero_csum = true;

        let mut vlan = known.build(&rtp);
        vlan.splice(12..12, [0x81, 0x00, 0x00, 0x05]);

        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "unknown port",
                V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30001)).build(&rtp),
            ),
            (
                "unknown address",
                V4::new(("10.10.0.2", 5000), ("10.10.0.9", 30000)).build(&rtp),
            ),
            (
                "unknown v6",
                V6::new(("2001:db8:10::2", 5000), ("2001:db8:10::1", 30001)).build(&rtp),
            ),
            ("stun", known.build(&stun)),
            ("dtls", known.build(&dtls)),
            ("first fragment", frag),
            ("later fragment", later_frag),
            ("ip options", opts),
            ("ipv6 zero checksum", v6_zero.build(&rtp)),
            ("vlan", vlan),
            ("arp-ish", vec![0xff; 60]),
            ("runt", vec![0x02; 20]),
        ];
        for (name, pkt) in cases {
            let (action, out) = rig.run(&pkt);
            assert_eq!(action, XDP_PASS, "{name}");
            assert_eq!(out, pkt, "{name}: packet modified");
        }
        let s = rig.stats("10.10.0.1:30000");
        assert_eq!((s.packets, s.errors), (0, 0));
    });
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn source_policies() {
    with_rig(|rig| {
        rig.install(
            "10.10.0.1:30000",
            target("10.20.0.1:30002", "10.20.0.2:6000")
                .expect_source("10.10.0.2:5000".parse().unwrap(), SourcePolicy::Drop)
                .unwrap()
                .build(),
        );
        rig.install(
            "10.10.0.1:30002",
            target("10.20.0.1:30004", "10.20.0.2:6002")
                .expect_source("10.10.0.2:5002".parse().unwrap(), SourcePolicy::Userspace)
                .unwrap()
                .build(),
        );
        rig.install(
            "10.10.0.1:30004",
            target("10.20.0.1:30006", "10.20.0.2:6004")
                .expect_source("10.10.0.2:5004".parse().unwrap(), SourcePolicy::Ignore)
                .unwrap()
                .build(),
        );
        let rtp = rtp_payload(1, 172);
        // Wrong port, then wrong address.
        for src in [("10.10.0.2", 5001), ("10.10.0.3", 5000)] {
            let pkt = V4::new(src, ("10.10.0.1", 30000)).build(&rtp);
            let (action, _) = rig.run(&pkt);
            assert_eq!(action, XDP_DROP);
        }
        let s = rig.stats("10.10.0.1:30000");
        assert_eq!((s.packets, s.errors), (0, 2));
        assert_eq!(rig.kernel.table_stats().unwrap().errors, 2);

        let pkt = V4::new(("10.10.0.2", 5003), ("10.10.0.1", 30002)).build(&rtp);
        let (action, out) = rig.run(&pkt);
        assert_eq!(action, XDP_PASS);
        assert_eq!(out, pkt);
        let pkt = V4::new(("10.10.0.2", 5002), ("10.10.0.1", 30002)).build(&rtp);
        assert_eq!(rig.run(&pkt).0, XDP_REDIRECT, "expected source forwards");

        let pkt = V4::new(("10.10.0.9", 1), ("10.10.0.1", 30004)).build(&rtp);
        assert_eq!(rig.run(&pkt).0, XDP_REDIRECT, "no check without a policy");
    });
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn routing_outcomes() {
    with_rig(|rig| {
        // No neighbour entry for 10.20.0.3: the stack must resolve it first.
        rig.install(
            "10.10.0.1:30000",
            target("10.20.0.1:30002", "10.20.0.3:6000").build(),
        );
        // Blackhole route.
        rig.install(
            "10.10.0.1:30002",
            target("10.20.0.1:30004", "198.51.100.1:6000").build(),
        );
        let rtp = rtp_payload(1, 172);
        let pkt = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30000)).build(&rtp);
        let (action, out) = rig.run(&pkt);
        assert_eq!(action, XDP_PASS);
        assert_eq!(out, pkt, "NO_NEIGH must leave the packet untouched");
        assert_eq!(rig.kernel.table_stats().unwrap().fallback, 1);
        assert_eq!(rig.stats("10.10.0.1:30000").packets, 0);

        let pkt = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30002)).build(&rtp);
        assert_eq!(rig.run(&pkt).0, XDP_DROP);
        assert_eq!(rig.stats("10.10.0.1:30002").errors, 1);

        // Forwarding disabled on the ingress device: FWD_DISABLED → pass.
        rig.install(
            "10.10.0.1:30004",
            target("10.20.0.1:30006", "10.20.0.2:6000").build(),
        );
        sh(&["sysctl", "-qw", "net.ipv4.conf.a0.forwarding=0"]).unwrap();
        let pkt = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30004)).build(&rtp);
        let (action, out) = rig.run(&pkt);
        assert_eq!(action, XDP_PASS);
        assert_eq!(out, pkt);
    });
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn counters_accumulate_and_survive_target_updates() {
    with_rig(|rig| {
        let key = "10.10.0.1:30000";
        rig.install(key, target("10.20.0.1:30002", "10.20.0.2:6000").build());
        let before = rtpengine::kernel::now_ns();
        for i in 0..10u16 {
            let pkt = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30000))
                .build(&rtp_payload(i, 100 + usize::from(i)));
            assert_eq!(rig.run(&pkt).0, XDP_REDIRECT);
        }
        let after = rtpengine::kernel::now_ns();
        let s = rig.stats(key);
        assert_eq!(s.packets, 10);
        assert_eq!(s.bytes, (100..110).sum::<u64>());
        // Coarse clock: may lag CLOCK_MONOTONIC by a tick.
        assert!(s.last_seen_ns + 20_000_000 >= before && s.last_seen_ns <= after);

        // Replacing the target keeps the counters.
        rig.install(key, target("10.20.0.1:30002", "10.20.0.2:6002").build());
        let pkt = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30000)).build(&rtp_payload(0, 50));
        assert_eq!(rig.run(&pkt).0, XDP_REDIRECT);
        assert_eq!(rig.stats(key).packets, 11);

        let entries = rig.kernel.entries();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].2.packets, 11);
        let dump = rig.kernel.dump();
        assert!(
            dump.contains("local 10.10.0.1:30000 -> 10.20.0.2:6002"),
            "{dump}"
        );
        assert!(dump.contains("packets 11"), "{dump}");
        let from_pins =
            rtpengine::kernel::dump_from(rig.kernel.pin_dir(), Some(rig.kernel.table())).unwrap();
        assert_eq!(from_pins.lines().next(), dump.lines().next());

        // Removing drops entry and counters.
        rig.kernel.remove(flow_key(key.parse().unwrap())).unwrap();
        assert!(rig.kernel.stats(flow_key(key.parse().unwrap())).is_none());
        assert_eq!(rig.run(&pkt).0, XDP_PASS);
    });
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn tables_are_isolated_and_flushed() {
    require_root();
    let pins = PinDir::new();
    let cfg = |n| KernelConfig {
        table: table(n),
        devices: vec![],
        mode: XdpAttachMode::Auto,
        pin_dir: pins.0.clone(),
    };
    let t1 = Kernel::open_with(&cfg(1)).unwrap();
    let t2 = Kernel::open_with(&cfg(2)).unwrap();
    let k1 = flow_key("192.0.2.1:30000".parse().unwrap());
    let k2 = flow_key("192.0.2.1:30002".parse().unwrap());
    let t = target("192.0.2.1:30004", "192.0.2.9:6000").build();
    t1.install(k1, t).unwrap();
    t2.install(k2, t).unwrap();
    assert!(t2.install(k1, t).is_err(), "key owned by table 1");
    assert!(t2.remove(k1).is_err());
    assert_eq!(t1.entries().len(), 1);
    assert_eq!(t2.entries().len(), 1);
    // A crash of table 1 (no cleanup) then a restart: leftovers flushed.
    let _crashed = std::mem::ManuallyDrop::new(t1);
    let t1 = Kernel::open_with(&cfg(1)).unwrap();
    assert!(t1.entries().is_empty());
    assert_eq!(t2.entries().len(), 1, "table 2 untouched");
    // Clean close removes only its own entries.
    t1.install(k1, t).unwrap();
    t1.close().unwrap();
    let all = rtpengine::kernel::dump_from(&pins.0, None).unwrap();
    assert!(all.contains("kernel table 2: 1 flow(s)"), "{all}");
    assert!(!all.contains("kernel table 1"), "{all}");
    drop(t2);
    assert!(rtpengine::kernel::dump_from(&pins.0, Some(table(2)))
        .unwrap()
        .starts_with("kernel table 2: 0 flow(s)"));
    assert!(TableId::new(64).is_err());
}

// ---------------------------------------------------------------------------
// End to end: caller ns ↔ proxy ns ↔ callee ns over veth pairs.

struct ThreeNs {
    caller: Netns,
    proxy: Netns,
    callee: Netns,
}

fn three_namespaces() -> ThreeNs {
    let caller = Netns::new("xcaller").unwrap();
    let proxy = Netns::new("xproxy").unwrap();
    let callee = Netns::new("xcallee").unwrap();
    sh(&[
        "ip",
        "link",
        "add",
        "c0",
        "netns",
        &caller.name,
        "address",
        "02:00:00:00:01:02",
        "type",
        "veth",
        "peer",
        "name",
        "p0",
        "netns",
        &proxy.name,
        "address",
        "02:00:00:00:01:01",
    ])
    .unwrap();
    sh(&[
        "ip",
        "link",
        "add",
        "e0",
        "netns",
        &callee.name,
        "address",
        "02:00:00:00:02:02",
        "type",
        "veth",
        "peer",
        "name",
        "p1",
        "netns",
        &proxy.name,
        "address",
        "02:00:00:00:02:01",
    ])
    .unwrap();
    for (ns, cmds) in [
        (
            &caller,
            &[
                "ip addr add 10.1.0.2/24 dev c0",
                "ip link set c0 up",
                "ip route add default via 10.1.0.1",
            ][..],
        ),
        (
            &callee,
            &[
                "ip addr add 10.2.0.2/24 dev e0",
                "ip link set e0 up",
                "ip route add default via 10.2.0.1",
            ][..],
        ),
        (
            &proxy,
            &[
                "ip addr add 10.1.0.1/24 dev p0",
                "ip addr add 10.2.0.1/24 dev p1",
                "ip link set p0 up",
                "ip link set p1 up",
                "sysctl -qw net.ipv4.ip_forward=1",
                "ip neigh replace 10.1.0.2 lladdr 02:00:00:00:01:02 dev p0 nud permanent",
                "ip neigh replace 10.2.0.2 lladdr 02:00:00:00:02:02 dev p1 nud permanent",
            ][..],
        ),
    ] {
        for c in cmds {
            ns.exec(&c.split(' ').collect::<Vec<_>>()).unwrap();
        }
    }
    ThreeNs {
        caller,
        proxy,
        callee,
    }
}

fn end_to_end(mode: XdpAttachMode) {
    require_root();
    let n = three_namespaces();
    let mut peers = Vec::new();
    if mode == XdpAttachMode::Native {
        peers.push(xdp_pass_program(&n.caller, "c0"));
        peers.push(xdp_pass_program(&n.callee, "e0"));
        // Locally generated packets are CHECKSUM_PARTIAL; XDP never completes them.
        n.caller
            .exec(&["ethtool", "-K", "c0", "tx", "off"])
            .unwrap();
        n.callee
            .exec(&["ethtool", "-K", "e0", "tx", "off"])
            .unwrap();
    }
    let pins = PinDir::new();
    let pin_dir = pins.0.clone();
    let kernel = n.proxy.run(move || {
        Kernel::open_with(&KernelConfig {
            table: table(0),
            devices: vec!["p0".into(), "p1".into()],
            mode,
            pin_dir,
        })
        .unwrap()
    });
    for a in kernel.attachments() {
        assert_eq!(a.mode, mode, "{} attached in {:?}", a.device, a.mode);
    }
    let a_to_b = flow_key("10.1.0.1:30000".parse().unwrap());
    let b_to_a = flow_key("10.2.0.1:30002".parse().unwrap());
    kernel
        .install(
            a_to_b,
            target("10.2.0.1:30002", "10.2.0.2:6000")
                .expect_source("10.1.0.2:5000".parse().unwrap(), SourcePolicy::Drop)
                .unwrap()
                .build(),
        )
        .unwrap();
    kernel
        .install(
            b_to_a,
            target("10.1.0.1:30000", "10.1.0.2:5000")
                .expect_source("10.2.0.2:6000".parse().unwrap(), SourcePolicy::Drop)
                .unwrap()
                .build(),
        )
        .unwrap();

    let caller = n.caller.bind_udp("10.1.0.2:5000");
    let callee = n.callee.bind_udp("10.2.0.2:6000");
    let csum_before = (n.caller.udp_in_csum_errors(), n.callee.udp_in_csum_errors());
    let mut buf = [0u8; 2048];
    for i in 0..5u16 {
        let p = rtp_payload(i, 172);
        caller.send_to(&p, "10.1.0.1:30000").unwrap();
        let (len, from) = callee
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("callee got packet {i}? {e}"));
        assert_eq!(from, "10.2.0.1:30002".parse::<SocketAddr>().unwrap());
        assert_eq!(&buf[..len], &p[..]);
    }
    for i in 0..3u16 {
        let p = rtp_payload(100 + i, 33);
        callee.send_to(&p, "10.2.0.1:30002").unwrap();
        let (len, from) = caller.recv_from(&mut buf).unwrap();
        assert_eq!(from, "10.1.0.1:30000".parse::<SocketAddr>().unwrap());
        assert_eq!(&buf[..len], &p[..]);
    }
    assert_eq!(
        (n.caller.udp_in_csum_errors(), n.callee.udp_in_csum_errors()),
        csum_before,
        "receivers saw bad UDP checksums"
    );
    let s = kernel.stats(a_to_b).unwrap();
    assert_eq!((s.packets, s.bytes, s.errors), (5, 5 * 172, 0));
    let s = kernel.stats(b_to_a).unwrap();
    assert_eq!((s.packets, s.bytes), (3, 3 * 33));
    let t = kernel.table_stats().unwrap();
    assert_eq!((t.packets, t.fallback), (8, 0));

    // Strict source: a packet from another port is dropped in the kernel.
    let stray = n.caller.bind_udp("10.1.0.2:5009");
    stray.send_to(b"\x80stray", "10.1.0.1:30000").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(kernel.stats(a_to_b).unwrap().errors, 1);

    kernel.close().unwrap();
    // Without entries and program, packets reach the proxy's stack (no socket:
    // nothing arrives at the callee).
    callee
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    caller.send_to(b"\x80after", "10.1.0.1:30000").unwrap();
    assert!(callee.recv_from(&mut buf).is_err(), "forwarded after close");
    drop(peers);
    drop(pins);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn end_to_end_native_veth() {
    end_to_end(XdpAttachMode::Native);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn end_to_end_generic() {
    end_to_end(XdpAttachMode::Generic);
}

// ---------------------------------------------------------------------------
// Two daemons (tables) sharing the devices' XDP attachment.

/// The id of the XDP program on `dev` in `ns` (`ip -j -d link`), if any.
fn xdp_prog_id(ns: &Netns, dev: &str) -> Option<u64> {
    let out = ns
        .exec(&["ip", "-j", "-d", "link", "show", "dev", dev])
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["xdp"]["prog"]["id"].as_u64()
}

/// Waits (up to 2 s) until `dev` in `ns` has no XDP program: unpinning a link
/// frees it after an RCU grace period, so the detach can trail `close()`.
fn xdp_detached(ns: &Netns, dev: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        if xdp_prog_id(ns, dev).is_none() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pins of XDP links under `pin_dir` (all namespaces).
fn link_pins(pin_dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(pin_dir.join("links")) {
        for ns in rd.flatten() {
            for e in std::fs::read_dir(ns.path()).unwrap().flatten() {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn open_in(ns: &Netns, n: u32, pin_dir: &std::path::Path) -> anyhow::Result<Kernel> {
    let pin_dir = pin_dir.to_path_buf();
    ns.run(move || {
        Kernel::open_with(&KernelConfig {
            table: table(n),
            devices: vec!["p0".into(), "p1".into()],
            mode: XdpAttachMode::Generic,
            pin_dir,
        })
    })
}

/// Installs caller (10.1.0.2:`caller_port`) ↔ callee (10.2.0.2:`callee_port`)
/// through proxy addresses `a`:`port` (p0 side) and `b`:`port + 2` (p1 side).
fn install_call(k: &Kernel, a: &str, b: &str, port: u16, caller_port: u16, callee_port: u16) {
    let sa = |ip: &str, p: u16| format!("{ip}:{p}");
    k.install(
        flow_key(sa(a, port).parse().unwrap()),
        target(&sa(b, port + 2), &sa("10.2.0.2", callee_port)).build(),
    )
    .unwrap();
    k.install(
        flow_key(sa(b, port + 2).parse().unwrap()),
        target(&sa(a, port), &sa("10.1.0.2", caller_port)).build(),
    )
    .unwrap();
}

/// Sends one packet caller → proxy `to`; returns whether the callee socket
/// got it from `from` (i.e. it was forwarded: the proxy has no sockets).
fn forwarded(caller: &UdpSocket, callee: &UdpSocket, to: &str, from: &str, seq: u16) -> bool {
    let p = rtp_payload(seq, 100);
    caller.send_to(&p, to).unwrap();
    let mut buf = [0u8; 2048];
    match callee.recv_from(&mut buf) {
        Ok((len, src)) => {
            assert_eq!(src, from.parse::<SocketAddr>().unwrap());
            assert_eq!(&buf[..len], &p[..]);
            true
        }
        Err(_) => false,
    }
}

fn packets(k: &Kernel, local: &str) -> u64 {
    k.stats(flow_key(local.parse().unwrap())).unwrap().packets
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn two_tables_share_the_devices() {
    require_root();
    let n = three_namespaces();
    for c in [
        "ip addr add 10.1.0.11/24 dev p0",
        "ip addr add 10.2.0.11/24 dev p1",
    ] {
        n.proxy.exec(&c.split(' ').collect::<Vec<_>>()).unwrap();
    }
    let pins = PinDir::new();
    let t0 = open_in(&n.proxy, 0, &pins.0).unwrap();
    assert!(t0.attachments().iter().all(|a| !a.shared));
    assert_eq!(link_pins(&pins.0), ["p0", "p1"]);
    let prog = xdp_prog_id(&n.proxy, "p0").expect("program on p0");

    let t1 = open_in(&n.proxy, 1, &pins.0).expect("second table on the same devices");
    let att = t1.attachments();
    assert_eq!(att.len(), 2);
    for a in &att {
        assert!(a.shared, "{a:?}");
        assert_eq!(a.mode, XdpAttachMode::Generic);
    }
    assert_eq!(
        xdp_prog_id(&n.proxy, "p0"),
        Some(prog),
        "same build: the program was not replaced"
    );

    install_call(&t0, "10.1.0.1", "10.2.0.1", 30000, 5000, 6000);
    install_call(&t1, "10.1.0.11", "10.2.0.11", 40000, 5002, 6002);
    let caller0 = n.caller.bind_udp("10.1.0.2:5000");
    let caller1 = n.caller.bind_udp("10.1.0.2:5002");
    let callee0 = n.callee.bind_udp("10.2.0.2:6000");
    let callee1 = n.callee.bind_udp("10.2.0.2:6002");
    for s in [&callee0, &callee1] {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
    }
    for i in 0..3 {
        assert!(forwarded(
            &caller0,
            &callee0,
            "10.1.0.1:30000",
            "10.2.0.1:30002",
            i
        ));
        assert!(forwarded(
            &caller1,
            &callee1,
            "10.1.0.11:40000",
            "10.2.0.11:40002",
            i
        ));
    }
    assert_eq!(packets(&t0, "10.1.0.1:30000"), 3);
    assert_eq!(packets(&t1, "10.1.0.11:40000"), 3);
    assert_eq!(t1.table_stats().unwrap().packets, 3);

    // Table 0 stops: table 1 keeps forwarding in the kernel, untouched.
    t0.close().unwrap();
    assert_eq!(link_pins(&pins.0), ["p0", "p1"], "links stay pinned");
    assert_eq!(xdp_prog_id(&n.proxy, "p0"), Some(prog));
    assert_eq!(xdp_prog_id(&n.proxy, "p1"), Some(prog));
    assert_eq!(t1.entries().len(), 2, "table 1's entries untouched");
    for i in 3..6 {
        assert!(forwarded(
            &caller1,
            &callee1,
            "10.1.0.11:40000",
            "10.2.0.11:40002",
            i
        ));
    }
    assert_eq!(packets(&t1, "10.1.0.11:40000"), 6);
    assert!(
        !forwarded(&caller0, &callee0, "10.1.0.1:30000", "10.2.0.1:30002", 9),
        "table 0's flow still forwarded after its close"
    );

    // The last table stops: the program is detached.
    t1.close().unwrap();
    assert!(link_pins(&pins.0).is_empty(), "{:?}", link_pins(&pins.0));
    assert_eq!(xdp_prog_id(&n.proxy, "p0"), None, "program left on p0");
    assert_eq!(xdp_prog_id(&n.proxy, "p1"), None, "program left on p1");
    assert!(!forwarded(
        &caller1,
        &callee1,
        "10.1.0.11:40000",
        "10.2.0.11:40002",
        10
    ));
    drop(pins);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn an_idle_table_keeps_the_dataplane_when_the_other_stops() {
    require_root();
    let n = three_namespaces();
    let pins = PinDir::new();
    let t0 = open_in(&n.proxy, 0, &pins.0).unwrap();
    let t1 = open_in(&n.proxy, 1, &pins.0).unwrap();
    let prog = xdp_prog_id(&n.proxy, "p0").unwrap();
    // No entries anywhere: table 0's close unpins, but table 1 still holds
    // the links, so the program stays attached.
    t0.close().unwrap();
    assert!(link_pins(&pins.0).is_empty());
    assert_eq!(xdp_prog_id(&n.proxy, "p0"), Some(prog));
    // A restarted table 0 finds the unpinned link, pins it again and shares it.
    let t0 = open_in(&n.proxy, 0, &pins.0).unwrap();
    assert!(t0.attachments().iter().all(|a| a.shared));
    assert_eq!(link_pins(&pins.0), ["p0", "p1"]);
    install_call(&t0, "10.1.0.1", "10.2.0.1", 30000, 5000, 6000);
    let caller = n.caller.bind_udp("10.1.0.2:5000");
    let callee = n.callee.bind_udp("10.2.0.2:6000");
    assert!(forwarded(
        &caller,
        &callee,
        "10.1.0.1:30000",
        "10.2.0.1:30002",
        1
    ));
    // Table 1 stops while table 0 has entries: nothing changes for table 0.
    t1.close().unwrap();
    assert!(forwarded(
        &caller,
        &callee,
        "10.1.0.1:30000",
        "10.2.0.1:30002",
        2
    ));
    assert_eq!(packets(&t0, "10.1.0.1:30000"), 2);
    t0.close().unwrap();
    assert!(xdp_detached(&n.proxy, "p0"), "XDP program still on p0");
    drop(pins);
}

/// Child side of [`crashed_table_keeps_forwarding_until_restart`]: opens
/// table 0, installs a call and exits without cleanup (no-op unless started
/// by that test).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn crash_child() {
    let (Ok(pin_dir), Ok(ns)) = (
        std::env::var("RTPE_XDP_CRASH_PIN_DIR"),
        std::env::var("RTPE_XDP_CRASH_NETNS"),
    ) else {
        return;
    };
    in_netns(&ns, move || {
        let k = Kernel::open_with(&KernelConfig {
            table: table(0),
            devices: vec!["p0".into(), "p1".into()],
            mode: XdpAttachMode::Generic,
            pin_dir: pin_dir.into(),
        })
        .unwrap();
        install_call(&k, "10.1.0.1", "10.2.0.1", 30000, 5000, 6000);
        // Like a crash or SIGKILL: no destructors, the kernel closes the fds.
        std::process::exit(0);
    });
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn crashed_table_keeps_forwarding_until_restart() {
    require_root();
    let n = three_namespaces();
    let pins = PinDir::new();
    crash_table0(&n, &pins.0);
    assert_eq!(link_pins(&pins.0), ["p0", "p1"], "the crash left the pins");
    let prog = xdp_prog_id(&n.proxy, "p0").expect("still attached after the crash");

    // The kernel keeps forwarding the crashed daemon's calls.
    let caller = n.caller.bind_udp("10.1.0.2:5000");
    let callee = n.callee.bind_udp("10.2.0.2:6000");
    callee
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for i in 0..3 {
        assert!(forwarded(
            &caller,
            &callee,
            "10.1.0.1:30000",
            "10.2.0.1:30002",
            i
        ));
    }
    let dump = rtpengine::kernel::dump_from(&pins.0, Some(table(0))).unwrap();
    assert!(dump.starts_with("kernel table 0: 2 flow(s)"), "{dump}");
    assert!(dump.contains("packets 3"), "{dump}");

    // Restart: shares the pinned links, flushes the leftovers.
    let k = open_in(&n.proxy, 0, &pins.0).unwrap();
    assert!(
        k.attachments().iter().all(|a| a.shared),
        "{:?}",
        k.attachments()
    );
    assert_eq!(xdp_prog_id(&n.proxy, "p0"), Some(prog));
    assert!(k.entries().is_empty(), "leftovers flushed");
    assert!(!forwarded(
        &caller,
        &callee,
        "10.1.0.1:30000",
        "10.2.0.1:30002",
        3
    ));
    install_call(&k, "10.1.0.1", "10.2.0.1", 30000, 5000, 6000);
    assert!(forwarded(
        &caller,
        &callee,
        "10.1.0.1:30000",
        "10.2.0.1:30002",
        4
    ));
    assert_eq!(packets(&k, "10.1.0.1:30000"), 1);
    k.close().unwrap();
    assert!(link_pins(&pins.0).is_empty());
    assert!(xdp_detached(&n.proxy, "p0"), "XDP program still on p0");
    drop(pins);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_foreign_xdp_program_is_refused() {
    require_root();
    let n = three_namespaces();
    // Same object, private (unpinned) maps: not this pin directory's dataplane.
    let foreign = n.proxy.run(|| {
        let mut ebpf = aya::Ebpf::load(EBPF_OBJECT).unwrap();
        let prog: &mut aya::programs::Xdp = ebpf
            .program_mut("rtpengine_xdp")
            .unwrap()
            .try_into()
            .unwrap();
        prog.load().unwrap();
        prog.attach("p1", aya::programs::XdpMode::Skb).unwrap();
        ebpf
    });
    let pins = PinDir::new();
    let err = match open_in(&n.proxy, 0, &pins.0) {
        Ok(_) => panic!("opened over a foreign XDP program"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("p1") && err.contains("foreign"), "{err}");
    // The failed open released p0 again.
    assert!(xdp_detached(&n.proxy, "p0"), "XDP program still on p0");
    assert!(link_pins(&pins.0).is_empty());
    drop(foreign);
    drop(pins);
}

/// Runs [`crash_child`]: table 0 opened on p0/p1 with `pin_dir`, a call
/// installed, then the process exits without cleanup.
fn crash_table0(n: &ThreeNs, pin_dir: &std::path::Path) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--include-ignored", "--nocapture"])
        .env("RTPE_XDP_CRASH_PIN_DIR", pin_dir)
        .env("RTPE_XDP_CRASH_NETNS", &n.proxy.name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_defunct_pinned_link_is_replaced() {
    require_root();
    let n = three_namespaces();
    let pins = PinDir::new();
    crash_table0(&n, &pins.0);
    // The device behind p0's pin disappears (and comes back as a new one).
    n.proxy.exec(&["ip", "link", "del", "p0"]).unwrap();
    sh(&[
        "ip",
        "link",
        "add",
        "c0",
        "netns",
        &n.caller.name,
        "address",
        "02:00:00:00:01:02",
        "type",
        "veth",
        "peer",
        "name",
        "p0",
        "netns",
        &n.proxy.name,
        "address",
        "02:00:00:00:01:01",
    ])
    .unwrap();
    for (ns, c) in [
        (&n.caller, "ip addr add 10.1.0.2/24 dev c0"),
        (&n.caller, "ip link set c0 up"),
        (&n.caller, "ip route add default via 10.1.0.1"),
        (&n.proxy, "ip addr add 10.1.0.1/24 dev p0"),
        (&n.proxy, "ip link set p0 up"),
        (
            &n.proxy,
            "ip neigh replace 10.1.0.2 lladdr 02:00:00:00:01:02 dev p0 nud permanent",
        ),
    ] {
        ns.exec(&c.split(' ').collect::<Vec<_>>()).unwrap();
    }
    assert!(xdp_detached(&n.proxy, "p0"), "XDP program still on p0");
    let k = open_in(&n.proxy, 0, &pins.0).unwrap();
    let shared: Vec<_> = k
        .attachments()
        .iter()
        .map(|a| (a.device.clone(), a.shared))
        .collect();
    assert_eq!(shared, [("p0".into(), false), ("p1".into(), true)]);
    assert!(xdp_prog_id(&n.proxy, "p0").is_some());
    install_call(&k, "10.1.0.1", "10.2.0.1", 30000, 5000, 6000);
    let caller = n.caller.bind_udp("10.1.0.2:5000");
    let callee = n.callee.bind_udp("10.2.0.2:6000");
    assert!(forwarded(
        &caller,
        &callee,
        "10.1.0.1:30000",
        "10.2.0.1:30002",
        1
    ));
    k.close().unwrap();
    assert!(xdp_detached(&n.proxy, "p0"), "XDP program still on p0");
    assert!(xdp_detached(&n.proxy, "p1"), "XDP program still on p1");
    drop(pins);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_pinned_link_running_other_maps_is_switched_to_ours() {
    require_root();
    let n = three_namespaces();
    let old = PinDir::new();
    crash_table0(&n, &old.0);
    let stale = xdp_prog_id(&n.proxy, "p0").unwrap();
    // Move the links (not the maps) into a fresh pin directory: they now run
    // a program whose maps are not this directory's.
    let pins = PinDir::new();
    std::fs::create_dir_all(&pins.0).unwrap();
    std::fs::rename(old.0.join("links"), pins.0.join("links")).unwrap();
    let k = open_in(&n.proxy, 0, &pins.0).unwrap();
    assert!(k.attachments().iter().all(|a| a.shared));
    let now = xdp_prog_id(&n.proxy, "p0").unwrap();
    assert_ne!(now, stale, "program behind the link replaced");
    assert_eq!(xdp_prog_id(&n.proxy, "p1"), Some(now));
    install_call(&k, "10.1.0.1", "10.2.0.1", 30100, 5000, 6000);
    let caller = n.caller.bind_udp("10.1.0.2:5000");
    let callee = n.callee.bind_udp("10.2.0.2:6000");
    assert!(forwarded(
        &caller,
        &callee,
        "10.1.0.1:30100",
        "10.2.0.1:30102",
        1
    ));
    assert_eq!(packets(&k, "10.1.0.1:30100"), 1);
    k.close().unwrap();
    assert!(xdp_detached(&n.proxy, "p0"), "XDP program still on p0");
    drop(pins);
    drop(old);
}
