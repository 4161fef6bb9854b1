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
