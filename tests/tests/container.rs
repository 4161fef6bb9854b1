//! The container image, built from the repository's Dockerfile with podman
//! and run the two ways the README documents:
//!
//! - on a bridge network, addressed directly from the host: the entrypoint
//!   finds the container's address and listens for ng on it, port 22222;
//!   offer/answer and RTP flow through the container; the environment and
//!   extra arguments shape the daemon; the healthcheck passes; a stop is
//!   clean.
//! - with the host's network and `--privileged`, `--table=0`: media is
//!   forwarded in the kernel (the eBPF table's counters grow). Media devices
//!   are a veth pair, so no real interface is touched.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use rtpengine_tests::*;

fn sdp(ip: &str, port: u16) -> String {
    crlf(&format!(
        "v=0\no=- 1 1 IN IP4 {ip}\ns=-\nt=0 0\nm=audio {port} RTP/AVP 8\nc=IN IP4 {ip}\na=sendrecv\n"
    ))
}

/// Offer from `a`, answer from `b` (both UDP sockets on the client side),
/// then `n` RTP packets each way through the daemon at `proxy`. Returns the
/// offer's rewritten SDP.
fn call_with_media(
    ng: &NgClient,
    id: &str,
    proxy: &str,
    a: &UdpSocket,
    b: &UdpSocket,
    n: u16,
) -> String {
    let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let r = ng
        .call(&sdp_cmd(
            "offer",
            id,
            "ft",
            None,
            &sdp(&aa.ip().to_string(), aa.port()),
            vec![],
        ))
        .unwrap();
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    let offer_sdp = get_str(&r, "sdp").to_owned();
    let b_sends_to = sa(proxy, media_ports(&offer_sdp)[0]);
    let r = ng
        .call(&sdp_cmd(
            "answer",
            id,
            "ft",
            Some("tt"),
            &sdp(&ba.ip().to_string(), ba.port()),
            vec![],
        ))
        .unwrap();
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    let a_sends_to = sa(proxy, media_ports(get_str(&r, "sdp"))[0]);
    for i in 0..n {
        let p = rtp(8, i, 160 * u32::from(i), 0xa, 1);
        a.send_to(&p, a_sends_to).unwrap();
        expect_packet(b, b_sends_to, &p);
        let q = rtp(8, i, 160 * u32::from(i), 0xb, 2);
        b.send_to(&q, b_sends_to).unwrap();
        expect_packet(a, a_sends_to, &q);
    }
    offer_sdp
}

fn udp(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// An ng client once the container answers ping (it is starting).
fn wait_ng(ng: SocketAddr) -> NgClient {
    assert!(wait_pong(ng, Duration::from_secs(15)), "no pong from {ng}");
    NgClient::new(ng).unwrap()
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn image_on_a_bridge_network() {
    require_root();
    let podman = Podman::with_image();
    let net = Network::create(podman, "rtpengine-test", "198.18.22.0/24").unwrap();

    // As documented: `docker run --net rtpengine --ip … IMAGE rtpengine`.
    let c1 = Container::start(
        podman,
        "rtpe-bridge",
        &[
            "--net",
            &net.name,
            "--ip",
            "198.18.22.22",
            IMAGE,
            "rtpengine",
        ],
    )
    .unwrap();
    let ng = wait_ng(sa("198.18.22.22", 22222));
    // The host is the bridge's gateway, 198.18.22.1.
    let (a, b) = (udp("198.18.22.1:0"), udp("198.18.22.1:0"));
    let offer = call_with_media(&ng, "bridge-1", "198.18.22.22", &a, &b, 5);
    assert!(offer.contains("c=IN IP4 198.18.22.22\r\n"), "{offer}");
    assert_eq!(
        http_get(sa("198.18.22.22", 8080), "/ping").unwrap().trim(),
        "pong"
    );
    podman.run(&["healthcheck", "run", &c1.name]).unwrap();
    assert_eq!(c1.inspect("{{.State.Health.Status}}").unwrap(), "healthy");
    // The CLI listens inside the container; our rtpengine-ctl is in the image.
    let sessions = podman
        .run(&["exec", &c1.name, "rtpengine-ctl", "list", "numsessions"])
        .unwrap();
    assert!(
        sessions.starts_with("Current sessions own: 1\n"),
        "{sessions}"
    );

    // Environment and extra arguments: advertised address, ng port, no HTTP
    // (the healthcheck falls back to an ng ping), port range, and a second
    // ng listener appended after `rtpengine`.
    let c2 = Container::start(
        podman,
        "rtpe-bridge-env",
        &[
            "--net",
            &net.name,
            "--ip",
            "198.18.22.23",
            "-e",
            "PUBLIC_IP=203.0.113.10",
            "-e",
            "NG_PORT=2223",
            "-e",
            "HTTP_PORT=off",
            "-e",
            "CLI_PORT=off",
            "-e",
            "PORT_MIN=40000",
            "-e",
            "PORT_MAX=40100",
            IMAGE,
            "rtpengine",
            "--listen-ng=198.18.22.23:2224",
        ],
    )
    .unwrap();
    let ng2 = wait_ng(sa("198.18.22.23", 2223));
    wait_ng(sa("198.18.22.23", 2224));
    let r = ng2
        .call(&sdp_cmd(
            "offer",
            "env-1",
            "ft",
            None,
            &sdp("198.18.22.1", 4000),
            vec![],
        ))
        .unwrap();
    let out = get_str(&r, "sdp");
    assert!(out.contains("c=IN IP4 203.0.113.10\r\n"), "{out}");
    let port = media_ports(out)[0];
    assert!((40000..=40100).contains(&port), "{out}");
    podman.run(&["healthcheck", "run", &c2.name]).unwrap();
    let logs = c2.logs();
    assert!(
        logs.contains("--interface=198.18.22.23!203.0.113.10"),
        "{logs}"
    );

    // Any other command runs as given.
    let out = podman
        .run(&[
            "run",
            "--rm",
            "--net",
            "none",
            IMAGE,
            "sh",
            "-c",
            "echo exec-ok; rtpengine --version",
        ])
        .unwrap();
    assert!(out.starts_with("exec-ok\nVersion: "), "{out}");

    // A stop is clean.
    assert_eq!(c1.stop(10).unwrap(), 0, "{}", c1.logs());
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn image_with_host_network_forwards_in_the_kernel() {
    require_root();
    let podman = Podman::with_image();
    // The "host" side of the media: veth rtpe-h0 (198.18.24.1) in this
    // namespace, its peer in a namespace for the phones (198.18.24.2).
    let phones = Netns::new("ctrph").unwrap();
    let _ = sh(&["ip", "link", "del", "rtpe-h0"]);
    sh(&[
        "ip",
        "link",
        "add",
        "rtpe-h0",
        "type",
        "veth",
        "peer",
        "name",
        "rtpe-h1",
        "netns",
        &phones.name,
    ])
    .unwrap();
    let _link = Defer(|| {
        let _ = sh(&["ip", "link", "del", "rtpe-h0"]);
    });
    sh(&["ip", "addr", "add", "198.18.24.1/24", "dev", "rtpe-h0"]).unwrap();
    sh(&["ip", "link", "set", "rtpe-h0", "up"]).unwrap();
    // The XDP program looks routes up in the FIB: forwarding on the device.
    sh(&["sysctl", "-qw", "net.ipv4.conf.rtpe-h0.forwarding=1"]).unwrap();
    phones
        .exec(&["ip", "addr", "add", "198.18.24.2/24", "dev", "rtpe-h1"])
        .unwrap();
    phones
        .exec(&["ip", "link", "set", "rtpe-h1", "up"])
        .unwrap();
    phones.exec(&["ip", "link", "set", "lo", "up"]).unwrap();

    let pin = format!("/sys/fs/bpf/rtpengine-ctr-test-{}", std::process::id());
    let pin_arg = format!("--bpf-pin-dir={pin}");
    let _pins = Defer(|| {
        let _ = std::fs::remove_dir_all(&pin);
    });
    // As documented: host network, privileged, the host's bpffs, --table=0.
    let c = Container::start(
        podman,
        "rtpe-host-net",
        &[
            "--network",
            "host",
            "--privileged",
            "-v",
            "/sys/fs/bpf:/sys/fs/bpf",
            "-e",
            "LOCAL_IP=198.18.24.1",
            "-e",
            "CLI_PORT=off",
            "-e",
            "HTTP_PORT=28080",
            IMAGE,
            "rtpengine",
            "--table=0",
            "--xdp-mode=generic",
            &pin_arg,
        ],
    )
    .unwrap();
    c.wait_log("Startup complete", Duration::from_secs(20))
        .unwrap();
    let logs = c.logs();
    assert!(
        logs.contains("kernel forwarding table open table=0"),
        "{logs}"
    );
    assert!(
        logs.contains("XDP dataplane attached device=rtpe-h0"),
        "{logs}"
    );

    let ng = phones.run(|| wait_ng(sa("198.18.24.1", 22222)));
    let (a, b) = phones.run(|| (udp("198.18.24.2:0"), udp("198.18.24.2:0")));
    call_with_media(&ng, "host-1", "198.18.24.1", &a, &b, 10);
    // The first packet each way confirms the endpoints in userspace; the
    // rest is forwarded by the eBPF program.
    let m = scrape(None, sa("198.18.24.1", 28080)).unwrap();
    let kernel = m.value("rtpengine_kernel_packets_total", &[("table", "0")]);
    assert!(
        kernel >= 10.0,
        "only {kernel} of 20 packets in the kernel\n{}",
        c.logs()
    );
    assert_eq!(c.stop(10).unwrap(), 0, "{}", c.logs());
    let after = c.logs();
    assert!(
        after.contains("XDP dataplane released on rtpe-h0"),
        "{after}"
    );
}

/// Runs a closure on drop (cleanup of what a test made outside podman).
struct Defer<F: FnMut()>(F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}
