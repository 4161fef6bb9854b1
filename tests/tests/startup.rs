//! Starting the way rtpengine users start rtpengine: from Debian's stock
//! config file, as installed by `rtpengine-daemon` (the file is read where
//! Debian puts it, not copied into this repository), and talking to it with
//! Debian's `rtpengine-ctl`, which reads that file too.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use rtpengine_tests::*;

const STOCK_CONFIG: &str = "/etc/rtpengine/rtpengine.conf";

/// Debian's file says `interface = any`, `table = 0`, ng, HTTP and CLI on
/// localhost, recording options: it starts, media goes on the namespace's
/// non-loopback address, the kernel table opens (in a private pin
/// directory), HTTP answers, and what is not implemented is named in one
/// warning each.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn debian_stock_config_file() {
    require_root();
    assert!(
        std::path::Path::new(STOCK_CONFIG).exists(),
        "{STOCK_CONFIG} missing: cargo xtask test installs rtpengine-daemon"
    );
    let ns = Netns::new("stock").unwrap();
    // One device that is up, not loopback, with an address: what `any` finds.
    ns.exec(&[
        "ip", "link", "add", "s0", "type", "veth", "peer", "name", "s1",
    ])
    .unwrap();
    ns.exec(&["ip", "addr", "add", "198.18.7.1/24", "dev", "s0"])
        .unwrap();
    for dev in ["s0", "s1"] {
        ns.exec(&["ip", "link", "set", dev, "up"]).unwrap();
    }
    let pins = PinDir::new();
    let log = std::env::temp_dir().join(format!("rtpe-stock-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let pin_arg = format!("--bpf-pin-dir={}", pins.0.display());
    let mut daemon = Daemon::start_logged(
        Some(&ns.name),
        sa("127.0.0.1", 2223),
        &[&format!("--config-file={STOCK_CONFIG}"), &pin_arg],
        "info",
        &log,
    )
    .expect("the daemon starts from Debian's stock config");

    let ng = ns.run(|| NgClient::new(sa("127.0.0.1", 2223)).unwrap());
    let r = ng
        .call(&sdp_cmd(
            "offer",
            "stock-1",
            "ft",
            None,
            &crlf(OFFER),
            vec![],
        ))
        .unwrap();
    let sdp = get_str(&r, "sdp");
    assert!(sdp.contains("c=IN IP4 198.18.7.1\r\n"), "{sdp}");

    // listen-http = localhost:2225
    let pong = ns.run(|| {
        let mut s = TcpStream::connect("127.0.0.1:2225").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /ping HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    assert!(pong.ends_with("pong"), "{pong}");

    // listen-cli = localhost:2224: Debian's rtpengine-ctl finds it by
    // reading the same file.
    let out = ns
        .exec(&["rtpengine-ctl", "list", "numsessions"])
        .expect("rtpengine-ctl");
    assert!(out.contains("Current sessions total: 1\n"), "{out}");

    assert!(daemon.terminate().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    for opt in ["recording-dir", "recording-method"] {
        let n = text
            .lines()
            .filter(|l| l.contains(&format!("option '{opt}' is not implemented")))
            .count();
        assert_eq!(n, 1, "one warning for {opt}:\n{text}");
    }
    assert!(text.contains("kernel forwarding table open"), "{text}");
    let _ = std::fs::remove_file(&log);
}

/// A config file with upstream's newer interface syntax and templates:
/// `interfaces-config` sections (own port range, excluded ports, advertised
/// addresses, `name` putting two sections into a round-robin group, an
/// `alias` section), a `templates` section, and keys this daemon does not
/// implement (warned about, not fatal).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn interfaces_config_sections_round_robin_aliases_and_templates() {
    let dir = scratch_dir("rtpe-ifcfg");
    let conf = dir.join("rtpengine.conf");
    std::fs::write(
        &conf,
        "[rtpengine]\n\
         interfaces-config = interface\n\
         templates = templates\n\
         mos = CQ\n\
         software-id = drop-in test\n\
         \n\
         [interface-int]\n\
         address = 203.0.113.1\n\
         port-min = 40000\n\
         port-max = 40099\n\
         exclude-ports = 40000; 40001\n\
         \n\
         [interface-pub1]\n\
         name = pub:1\n\
         address = 203.0.113.2\n\
         advertised = 192.0.2.10\n\
         \n\
         [interface-pub2]\n\
         name = pub:2\n\
         address = 198.51.100.6\n\
         advertised-address = 192.0.2.20\n\
         \n\
         [interface-ext]\n\
         alias = pub:1\n\
         \n\
         [templates]\n\
         towards-pub = direction=[int pub] TOS=184\n",
    )
    .unwrap();
    // (Also on the command line: the rig adds a default `-i` otherwise.)
    let rig = Rig::new(
        "ifcfg",
        &[
            &format!("--config-file={}", conf.display()),
            "--interfaces-config=interface",
        ],
    );
    let offer = |id: &str, extra: Vec<(&str, Value)>| {
        let out = rig.offer(id, "ft", OFFER, extra);
        let c = out
            .split("\r\n")
            .find_map(|l| l.strip_prefix("c=IN IP4 "))
            .unwrap_or_else(|| panic!("{out}"))
            .to_owned();
        (c, media_ports(&out)[0])
    };
    let direction = |to: &str| {
        vec![(
            "direction",
            Value::List(vec![Value::str("int"), Value::str(to)]),
        )]
    };
    // No direction: the first interface, with its own port range (40000 and
    // its RTCP port excluded).
    let (addr, port) = offer("d1", vec![]);
    assert_eq!(addr, "203.0.113.1");
    assert!((40002..=40098).contains(&port), "{port}");
    // `pub` rotates over pub:1 and pub:2.
    let picks: Vec<String> = (0..4)
        .map(|i| offer(&format!("rr{i}"), direction("pub")).0)
        .collect();
    assert_eq!(
        picks.iter().filter(|a| *a == "192.0.2.10").count(),
        2,
        "{picks:?}"
    );
    assert_eq!(
        picks.iter().filter(|a| *a == "192.0.2.20").count(),
        2,
        "{picks:?}"
    );
    assert_ne!(picks[0], picks[1], "{picks:?}");
    // The alias is pub:1.
    assert_eq!(offer("al", direction("ext")).0, "192.0.2.10");
    // A template sets the direction.
    let (addr, _) = offer("tpl", vec![("template", Value::str("towards-pub"))]);
    assert!(addr == "192.0.2.10" || addr == "192.0.2.20", "{addr}");
    let _ = std::fs::remove_dir_all(&dir);
}
