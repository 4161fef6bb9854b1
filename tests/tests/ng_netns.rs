//! Privileged ng tests in a network namespace.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use rtpengine_tests::*;

/// With a wildcard listen address, each reply leaves from the address the
/// request was sent to; a connected client (Kamailio, OpenSIPS, Perl) drops
/// anything else.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn wildcard_listener_replies_from_request_address() {
    let ns = Netns::new("ngwild").unwrap();
    ns.exec(&["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"])
        .unwrap();
    ns.exec(&["ip", "addr", "add", "192.0.2.20/32", "dev", "lo"])
        .unwrap();
    ns.exec(&[
        "ip",
        "-6",
        "addr",
        "add",
        "2001:db8::20/128",
        "dev",
        "lo",
        "nodad",
    ])
    .unwrap();
    let _d = Daemon::start_with(Some(&ns.name), "0.0.0.0:2223".parse().unwrap(), &[]).unwrap();
    ns.run(|| {
        for (src, dst) in [
            ("192.0.2.10:0", "192.0.2.20:2223"),
            ("192.0.2.20:0", "192.0.2.10:2223"),
        ] {
            let s = UdpSocket::bind(src).unwrap();
            s.connect(dst).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            s.send(b"w d7:command4:pinge").unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = s
                .recv_from(&mut buf)
                .expect("reply from the request's address");
            assert_eq!(from, dst.parse::<SocketAddr>().unwrap());
            assert_eq!(&buf[..n], b"w d6:result4:ponge");
        }
    });
    drop(_d);
    let _d6 = Daemon::start_with(Some(&ns.name), "[::]:2224".parse().unwrap(), &[]).unwrap();
    ns.run(|| {
        let s = UdpSocket::bind("[2001:db8::20]:0").unwrap();
        s.connect("[2001:db8::20]:2224").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.send(b"v6 d7:command4:pinge").unwrap();
        let mut buf = [0u8; 64];
        let n = s.recv(&mut buf).expect("IPv6 reply");
        assert_eq!(&buf[..n], b"v6 d6:result4:ponge");
    });
}
