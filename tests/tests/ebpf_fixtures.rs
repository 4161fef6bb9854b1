//! The XDP dataplane, packet in → exact packet out: each fixture builds a
//! packet by hand, runs the real program on it with BPF_PROG_TEST_RUN and
//! checks the verdict and every byte of what comes out (addresses, ports,
//! MACs, TOS/TTL, checksums recomputed independently), plus the counters.
//! Attaching, sharing and the table lifecycle are in `ebpf_lifecycle.rs`.
//!
//! Everything here needs root (eBPF, namespaces); run with `cargo xtask test`.

use std::net::{Ipv4Addr, Ipv6Addr};

use aya::programs::TestRunOptions;
use rtpengine::kernel::{
    flow_key, FlowStats, FlowTarget, Kernel, KernelConfig, NextHopMode, SourcePolicy, XdpAttachMode,
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

struct V4 {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    tos: u8,
    ttl: u8,
    id: [u8; 2],
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
            id: [0x12, 0x34],
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
        ip.extend(self.id);
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

/// Builds the namespace and runs `f` inside it with a loaded program whose
/// table never expires and whose next hops the daemon resolves.
fn with_rig(f: impl FnOnce(&Rig) + Send + 'static) {
    with_rig_opts(None, NextHopMode::Resolve, f);
}

/// [`with_rig`] with the table's lease and next-hop mode.
fn with_rig_opts(
    lease: Option<std::time::Duration>,
    next_hop: NextHopMode,
    f: impl FnOnce(&Rig) + Send + 'static,
) {
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
            lease,
            next_hop,
            keep_flows: false,
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
    with_rig(ipv4_rewrite);
}

/// The same with the per-packet FIB lookup (`--xdp-next-hop=fib`).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv4_rewrite_and_redirect_with_the_fib() {
    with_rig_opts(None, NextHopMode::Fib, |rig| {
        ipv4_rewrite(rig);
        let t = rig
            .kernel
            .target(flow_key("10.10.0.1:30000".parse().unwrap()))
            .unwrap();
        assert_eq!(t.flags & FlowTarget::NEXT_HOP, 0, "{t:?}");
    });
}

fn ipv4_rewrite(rig: &Rig) {
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
    with_rig(ipv6_rewrite);
}

/// The same with the per-packet FIB lookup (`--xdp-next-hop=fib`).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv6_rewrite_and_redirect_with_the_fib() {
    with_rig_opts(None, NextHopMode::Fib, ipv6_rewrite);
}

fn ipv6_rewrite(rig: &Rig) {
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

/// `PUNT_RTCP`: on an RTP port whose party does not mux, RTCP goes to
/// userspace untouched (it belongs at the peer's RTCP port) while RTP is
/// forwarded; without the flag RTCP is forwarded like RTP (a muxed port).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn rtcp_on_an_rtp_port_goes_to_userspace_when_asked() {
    with_rig(|rig| {
        rig.install(
            "10.10.0.1:30000",
            target("10.20.0.1:30002", "10.20.0.2:6000")
                .punt_rtcp()
                .build(),
        );
        rig.install(
            "10.10.0.1:30010",
            target("10.20.0.1:30012", "10.20.0.2:6010").build(),
        );
        let sr = [
            0x80u8, 200, 0, 6, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0,
        ];
        let to_punting = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30000));
        let pkt = to_punting.build(&sr);
        let (action, out) = rig.run(&pkt);
        assert_eq!((action, &out), (XDP_PASS, &pkt));
        let (action, _) = rig.run(&to_punting.build(&rtp_payload(1, 172)));
        assert_eq!(action, XDP_REDIRECT, "RTP is still forwarded");
        let (action, _) = rig.run(&V4::new(("10.10.0.2", 5010), ("10.10.0.1", 30010)).build(&sr));
        assert_eq!(action, XDP_REDIRECT, "RTCP on a muxed port is forwarded");
        assert_eq!(rig.stats("10.10.0.1:30000").packets, 1);
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

        // Forwarding disabled on every device: a flow whose next hop the
        // daemon resolved (route, device MAC and MTU, neighbour MAC) is
        // still forwarded without the FIB, to exactly that hop...
        rig.install(
            "10.10.0.1:30004",
            target("10.20.0.1:30006", "10.20.0.2:6000").build(),
        );
        let t = rig
            .kernel
            .target(flow_key("10.10.0.1:30004".parse().unwrap()))
            .unwrap();
        assert_ne!(t.flags & FlowTarget::NEXT_HOP, 0, "{t:?}");
        assert_eq!(
            (t.oif, t.smac, t.dmac, t.mtu),
            (rig.b0, MAC_B0, MAC_B_PEER, 1500)
        );
        for sysctl in [
            "net.ipv4.conf.all.forwarding=0",
            "net.ipv4.conf.a0.forwarding=0",
            "net.ipv4.conf.b0.forwarding=0",
        ] {
            sh(&["sysctl", "-qw", sysctl]).unwrap();
        }
        let pkt = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30004)).build(&rtp);
        let (action, out) = rig.run(&pkt);
        assert_eq!(action, XDP_REDIRECT);
        let mut exp = V4::new(("10.20.0.1", 30006), ("10.20.0.2", 6000));
        exp.eth_dst = MAC_B_PEER;
        exp.eth_src = MAC_B0;
        exp.ttl = 64;
        assert_eq!(out, exp.build(&rtp));
        // ...while one without a resolved neighbour asks the FIB, which
        // answers FWD_DISABLED: the packet goes up untouched.
        let (action, out) =
            rig.run(&V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30000)).build(&rtp));
        assert_eq!(action, XDP_PASS);
        assert_eq!(
            out,
            V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30000)).build(&rtp)
        );
        // A packet longer than the egress MTU goes to the stack too.
        sh(&["ip", "link", "set", "b0", "mtu", "1280"]).unwrap();
        assert!(wait_until(std::time::Duration::from_secs(2), || {
            rig.kernel
                .target(flow_key("10.10.0.1:30004".parse().unwrap()))
                .is_some_and(|t| t.mtu == 1280)
        }));
        let big = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30004)).build(&rtp_payload(2, 1300));
        assert_eq!(rig.run(&big).0, XDP_PASS);
        assert_eq!(rig.run(&pkt).0, XDP_REDIRECT);
    });
}

/// The next hop follows the neighbour table: a new MAC for the peer is in
/// the flow at once; a removed neighbour takes the next hop out (the FIB
/// or userspace take over) until it is known again.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn the_next_hop_follows_neighbour_changes() {
    with_rig(|rig| {
        let key = flow_key("10.10.0.1:30000".parse().unwrap());
        rig.install(
            "10.10.0.1:30000",
            target("10.20.0.1:30002", "10.20.0.2:6000").build(),
        );
        assert_eq!(rig.kernel.target(key).unwrap().dmac, MAC_B_PEER);
        let moved = [0x02, 0, 0, 0, 0x0b, 0x99];
        sh(&[
            "ip",
            "neigh",
            "replace",
            "10.20.0.2",
            "lladdr",
            &mac(&moved),
            "dev",
            "b0",
            "nud",
            "permanent",
        ])
        .unwrap();
        assert!(
            wait_until(std::time::Duration::from_secs(2), || rig
                .kernel
                .target(key)
                .is_some_and(|t| t.dmac == moved)),
            "{:?}",
            rig.kernel.target(key)
        );
        let rtp = rtp_payload(1, 172);
        let pkt = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30000)).build(&rtp);
        let (action, out) = rig.run(&pkt);
        assert_eq!(action, XDP_REDIRECT);
        assert_eq!(out[..6], moved);
        sh(&["ip", "neigh", "del", "10.20.0.2", "dev", "b0"]).unwrap();
        assert!(wait_until(std::time::Duration::from_secs(2), || rig
            .kernel
            .target(key)
            .is_some_and(|t| t.flags & FlowTarget::NEXT_HOP == 0)));
        // Removing the flow forgets it: nothing resurrects it.
        rig.kernel.remove(key).unwrap();
        sh(&[
            "ip",
            "neigh",
            "replace",
            "10.20.0.2",
            "lladdr",
            &mac(&MAC_B_PEER),
            "dev",
            "b0",
            "nud",
            "permanent",
        ])
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(rig.kernel.target(key).is_none());
    });
}

/// IPv4 in, IPv6 out: the head grows by 20 bytes, a fresh IPv6 header
/// (traffic class from the TOS, hop limit 64), the UDP checksum updated for
/// the new pseudo-header; the receiver's from-scratch checksum must match.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv4_to_ipv6_translation() {
    with_rig(|rig| {
        rig.install(
            "10.10.0.1:30000",
            target("[2001:db8:20::1]:30002", "[2001:db8:20::2]:6000")
                .expect_source("10.10.0.2:5000".parse().unwrap(), SourcePolicy::Drop)
                .unwrap()
                .build(),
        );
        let payload = rtp_payload(7, 160);
        let mut inp = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30000));
        inp.tos = 0xb8;
        let (action, out) = rig.run(&inp.build(&payload));
        assert_eq!(action, XDP_REDIRECT);
        let mut exp = V6::new(("2001:db8:20::1", 30002), ("2001:db8:20::2", 6000));
        exp.eth_dst = MAC_B_PEER;
        exp.eth_src = MAC_B0;
        exp.tclass = 0xb8;
        exp.flow = 0;
        exp.hop = 64;
        assert_eq!(out, exp.build(&payload));
        let s = rig.stats("10.10.0.1:30000");
        assert_eq!((s.packets, s.bytes), (1, 160));
        // A wrong source is still dropped before translating.
        let stray = V4::new(("10.10.0.9", 5000), ("10.10.0.1", 30000)).build(&payload);
        assert_eq!(rig.run(&stray).0, XDP_DROP);
        // No UDP checksum over IPv4: IPv6 needs one, userspace computes it.
        let mut bare = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30000));
        bare.udp_csum = false;
        let pkt = bare.build(&payload);
        assert_eq!(rig.run(&pkt), (XDP_PASS, pkt));
    });
}

/// IPv6 in, IPv4 out: the head shrinks by 20 bytes, a fresh IPv4 header
/// (DF, ID 0, TOS from the target, TTL 64) with its checksum, the UDP
/// checksum updated; both must match the receiver's own computation.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn ipv6_to_ipv4_translation() {
    with_rig(|rig| {
        rig.install(
            "[2001:db8:10::1]:30010",
            target("10.20.0.1:30012", "10.20.0.2:6010")
                .expect_source("[2001:db8:10::2]:5010".parse().unwrap(), SourcePolicy::Drop)
                .unwrap()
                .tos(0x2e)
                .build(),
        );
        let payload = rtp_payload(9, 172);
        let inp = V6::new(("2001:db8:10::2", 5010), ("2001:db8:10::1", 30010));
        let (action, out) = rig.run(&inp.build(&payload));
        assert_eq!(action, XDP_REDIRECT);
        let mut exp = V4::new(("10.20.0.1", 30012), ("10.20.0.2", 6010));
        exp.eth_dst = MAC_B_PEER;
        exp.eth_src = MAC_B0;
        exp.tos = 0x2e;
        exp.ttl = 64;
        exp.id = [0, 0];
        assert_eq!(out, exp.build(&payload));
        assert_v4_checksums_valid(&out);
        assert_eq!(rig.stats("[2001:db8:10::1]:30010").packets, 1);
        // Without a resolved next hop (no neighbour), no translation: the
        // packet goes to userspace untouched.
        rig.install(
            "[2001:db8:10::1]:30020",
            target("10.20.0.1:30022", "10.20.0.3:6020").build(),
        );
        let pkt = V6::new(("2001:db8:10::2", 5020), ("2001:db8:10::1", 30020)).build(&payload);
        assert_eq!(rig.run(&pkt), (XDP_PASS, pkt));
    });
}

/// A table whose daemon stopped renewing its lease is not forwarded: its
/// packets go to the stack untouched (counted), and forwarding resumes as
/// soon as the lease is renewed (a restart within the lease).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn an_expired_lease_hands_the_flows_to_the_stack() {
    let lease = std::time::Duration::from_millis(200);
    with_rig_opts(Some(lease), NextHopMode::Resolve, move |rig| {
        rig.install(
            "10.10.0.1:30000",
            target("10.20.0.1:30002", "10.20.0.2:6000").build(),
        );
        let pkt = V4::new(("10.10.0.2", 5000), ("10.10.0.1", 30000)).build(&rtp_payload(1, 172));
        rig.kernel.renew_lease().unwrap();
        assert_eq!(rig.run(&pkt).0, XDP_REDIRECT, "within the lease");
        std::thread::sleep(lease + std::time::Duration::from_millis(50));
        let (action, out) = rig.run(&pkt);
        assert_eq!(action, XDP_PASS, "after the lease");
        assert_eq!(out, pkt, "an expired table's packet goes up untouched");
        let t = rig.kernel.table_stats().unwrap();
        assert_eq!((t.packets, t.expired), (1, 1));
        assert_eq!(rig.stats("10.10.0.1:30000").packets, 1);
        rig.kernel.renew_lease().unwrap();
        assert_eq!(rig.run(&pkt).0, XDP_REDIRECT, "renewed");
        assert_eq!(rig.kernel.table_stats().unwrap().packets, 2);
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
