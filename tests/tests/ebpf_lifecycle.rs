//! The XDP dataplane attached for real: an end-to-end forward through three
//! network namespaces (native and generic mode), tables sharing devices,
//! crash and restart, foreign and defunct attachments, and table isolation
//! and flushing in the shared maps. Per-packet behaviour is in
//! `ebpf_fixtures.rs`.
//!
//! Everything here needs root (eBPF, namespaces); run with `cargo xtask test`.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use rtpengine::kernel::{
    flow_key, Kernel, KernelConfig, SourcePolicy, TableId, XdpAttachMode, EBPF_OBJECT,
};
use rtpengine::relay::offload::XskBackend;
use rtpengine_tests::*;

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
        lease: None,
        next_hop: Default::default(),
        keep_flows: false,
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

/// A daemon keeping its flows for a restart (`--redis`) keeps its rules,
/// but not its AF_XDP steering: its sockets are gone, and the restored
/// ones steer again (to the new process's sockets) with their first packet.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_restart_keeping_flows_drops_the_old_steering() {
    require_root();
    let pins = PinDir::new();
    let cfg = KernelConfig {
        table: table(3),
        devices: vec![],
        mode: XdpAttachMode::Auto,
        pin_dir: pins.0.clone(),
        lease: None,
        next_hop: Default::default(),
        keep_flows: true,
    };
    let k = Kernel::open_with(&cfg).unwrap();
    let rule = flow_key("192.0.2.1:30000".parse().unwrap());
    k.install(rule, target("192.0.2.1:30002", "192.0.2.9:6000").build())
        .unwrap();
    k.steer_flow("192.0.2.1:30004".parse().unwrap()).unwrap();
    let d = k.dump();
    assert!(d.contains("local 192.0.2.1:30004 -> AF_XDP"), "{d}");
    assert_eq!(k.entries().len(), 2);
    drop(k);
    let kept = rtpengine::kernel::dump_from(&pins.0, Some(table(3))).unwrap();
    assert!(kept.starts_with("kernel table 3: 2 flow(s)"), "{kept}");
    let k = Kernel::open_with(&cfg).unwrap();
    let d = k.dump();
    assert!(d.starts_with("kernel table 3: 1 flow(s)"), "{d}");
    assert!(d.contains("local 192.0.2.1:30000 -> 192.0.2.9:6000"), "{d}");
    k.close().unwrap();
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
            lease: None,
            next_hop: Default::default(),
            keep_flows: false,
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
            lease: None,
            next_hop: Default::default(),
            keep_flows: false,
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
            lease: None,
            next_hop: Default::default(),
            keep_flows: false,
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
