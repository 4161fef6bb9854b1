//! Real clients against the real daemon: jambonz's npm `rtpengine-client`
//! 0.4.12 over UDP, TCP and WebSocket (tests/node/clients.js), and Kamailio's
//! way of retransmitting ng requests (same cookie, same bytes, 1 s apart).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use rtpengine_tests::*;

/// tests/node/clients.js with its `node_modules` (installed by `cargo xtask
/// test`, or `npm ci` in tests/node).
fn node_script() -> std::path::PathBuf {
    let dir = tests_dir().join("node");
    assert!(
        dir.join("node_modules/rtpengine-client/package.json")
            .exists()
            && dir.join("node_modules/debug/package.json").exists(),
        "{}/node_modules lacks rtpengine-client or debug: run `cargo xtask test` \
         (or `npm ci` in that directory)",
        dir.display()
    );
    dir.join("clients.js")
}

/// `Client` (UDP), `TcpClient` and `WsClient` each do ping, offer, answer,
/// query, list and delete; the script checks every reply and exits non-zero
/// on the first failure (1.5 s timeout per request).
#[test]
#[ignore = "needs node and tests/node/node_modules: run with cargo xtask test"]
fn npm_rtpengine_client_udp_tcp_ws() {
    let script = node_script();
    let tcp: SocketAddr = ([127, 0, 0, 1], free_tcp_port()).into();
    let http: SocketAddr = ([127, 0, 0, 1], free_tcp_port()).into();
    let d = Daemon::start(&[
        &format!("--listen-tcp-ng={tcp}"),
        &format!("--listen-http={http}"),
        "--delete-delay=0",
    ])
    .expect("daemon");
    wait_tcp(tcp).expect("tcp ng listener");
    wait_tcp(http).expect("http listener");
    let ran = run_timeout(
        Command::new("node")
            .arg(&script)
            .args(["--udp", &d.ng.to_string()])
            .args(["--tcp", &tcp.to_string()])
            .args(["--ws", &format!("ws://{http}/")])
            .args(["--media", "127.0.0.1"])
            .current_dir(script.parent().unwrap()),
        Duration::from_secs(60),
    )
    .expect("running node");
    println!("{}", ran.transcript());
    assert_eq!(
        ran.code,
        Some(0),
        "node tests/node/clients.js failed:\n{}",
        ran.transcript()
    );
    assert!(
        ran.stdout.contains("ok: 3 transport(s) passed"),
        "{}",
        ran.transcript()
    );
}

/// The script itself fails (instead of hanging) when nobody answers, so a
/// dead daemon cannot pass the test above.
#[test]
#[ignore = "needs node and tests/node/node_modules: run with cargo xtask test"]
fn npm_client_script_fails_without_daemon() {
    let script = node_script();
    let port = free_udp_port();
    let ran = run_timeout(
        Command::new("node")
            .arg(&script)
            .args(["--udp", &format!("127.0.0.1:{port}")]),
        Duration::from_secs(20),
    )
    .expect("running node");
    assert!(!ran.timed_out, "{}", ran.transcript());
    assert_ne!(ran.code, Some(0), "{}", ran.transcript());
    assert!(
        ran.stderr.contains("rtpengine timeout"),
        "{}",
        ran.transcript()
    );
}

const OFFER: &str = "v=0\r\n\
o=- 4711 1 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 41000 RTP/AVP 8 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=sendrecv\r\n";

/// A bencoded string.
fn bstr(s: &str) -> String {
    format!("{}:{s}", s.len())
}

/// A Kamailio-style offer: unsorted keys, in the order Kamailio writes them.
fn kamailio_offer(call_id: &str, sdp: &str) -> Vec<u8> {
    let mut b = String::from("d");
    b += &format!("{}l{}e", bstr("supports"), bstr("load limit"));
    b += &(bstr("sdp") + &bstr(sdp));
    b += &(bstr("ICE") + &bstr("remove"));
    b += &format!("{}l{}e", bstr("flags"), bstr("trust-address"));
    b += &format!("{}l{}e", bstr("replace"), bstr("origin"));
    b += &format!(
        "{}l{}{}e",
        bstr("received-from"),
        bstr("IP4"),
        bstr("127.0.0.1")
    );
    b += &(bstr("call-id") + &bstr(call_id));
    b += &(bstr("from-tag") + &bstr("kam-ft"));
    b += &(bstr("command") + &bstr("offer"));
    b += &(bstr("sip-message-type") + &bstr("request"));
    b += "e";
    b.into_bytes()
}

fn media_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio port in {sdp:?}"))
}

/// Kamailio resends an unanswered request with the same cookie (5 × 1 s): the
/// repeat gets the first reply byte for byte and the call is not set up twice;
/// even a repeat whose body differs (another SDP port) only replays the cached
/// reply, because the cache is keyed by cookie alone. A new cookie with the
/// same offer (a SIP-level retransmission) keeps the same local ports.
#[test]
fn kamailio_cookie_retransmission() {
    let d = Daemon::start(&[]).expect("daemon");
    let ng = NgClient::new(d.ng).expect("ng client");
    let call_id = format!("kam-retr-{}", std::process::id());
    let cookie = format!("1_{}_7", std::process::id());

    let body = kamailio_offer(&call_id, OFFER);
    let msg = [format!("{cookie} ").as_bytes(), &body].concat();
    let first = ng.raw(&msg).expect("first reply");
    let reply = decode_bencode(
        first
            .strip_prefix(format!("{cookie} ").as_bytes())
            .expect("cookie echoed"),
    )
    .expect("reply bencode");
    assert_eq!(get_str(&reply, "result"), "ok", "{reply:?}");
    let port = media_port(get_str(&reply, "sdp"));

    std::thread::sleep(Duration::from_millis(1000));
    let again = ng.raw(&msg).expect("retransmission reply");
    assert_eq!(
        String::from_utf8_lossy(&again),
        String::from_utf8_lossy(&first),
        "a retransmitted request must get identical reply bytes"
    );

    // Same cookie, different body (another phone port): still the cached reply.
    let other = kamailio_offer(&call_id, &OFFER.replace("41000", "41100"));
    let msg2 = [format!("{cookie} ").as_bytes(), &other].concat();
    let third = ng.raw(&msg2).expect("reply to changed body");
    assert_eq!(
        String::from_utf8_lossy(&third),
        String::from_utf8_lossy(&first),
        "a repeated cookie must replay the cached reply even if the body changed"
    );

    // The call exists once, with one party and the first offer's ports.
    let list = ng
        .call(&dict([
            ("command", Value::str("list")),
            ("limit", Value::Int(1000)),
        ]))
        .expect("list");
    let calls: Vec<&str> = match list.get(&b"calls"[..]) {
        Some(Value::List(l)) => l.iter().filter_map(Value::as_str).collect(),
        other => panic!("list has no calls: {other:?}"),
    };
    assert_eq!(
        calls.iter().filter(|c| **c == call_id).count(),
        1,
        "{calls:?}"
    );
    let q = ng
        .call(&dict([
            ("command", Value::str("query")),
            ("call-id", Value::str(&call_id)),
        ]))
        .expect("query");
    assert_eq!(get_str(&q, "result"), "ok", "{q:?}");
    let tags = match dig(&q, &["tags"]) {
        Some(Value::Dict(t)) => t,
        other => panic!("query has no tags: {other:?}"),
    };
    let named: Vec<String> = tags
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .filter(|k| !k.starts_with("<untagged"))
        .collect();
    assert_eq!(named, ["kam-ft"], "one tagged party: {q:?}");
    let advertised = dig_int(
        &q,
        &[
            "tags",
            "kam-ft",
            "medias",
            "0",
            "streams",
            "0",
            "advertised endpoint",
            "port",
        ],
    );
    assert_eq!(
        advertised,
        Some(41000),
        "the changed body was not applied: {q:?}"
    );

    // A SIP-level retransmission (new cookie, same offer) keeps the ports.
    let cookie2 = format!("1_{}_8", std::process::id());
    let msg3 = [format!("{cookie2} ").as_bytes(), &body].concat();
    let fourth = ng.raw(&msg3).expect("reply to new cookie");
    let r4 = decode_bencode(
        fourth
            .strip_prefix(format!("{cookie2} ").as_bytes())
            .expect("cookie echoed"),
    )
    .expect("reply bencode");
    assert_eq!(get_str(&r4, "result"), "ok", "{r4:?}");
    assert_eq!(media_port(get_str(&r4, "sdp")), port, "{r4:?}");

    let del = ng
        .call(&dict([
            ("command", Value::str("delete")),
            ("call-id", Value::str(&call_id)),
            ("delete-delay", Value::Int(0)),
        ]))
        .expect("delete");
    assert_eq!(get_str(&del, "result"), "ok", "{del:?}");
}

/// A retransmission that arrives while the first request is still in flight
/// gets the same reply, once each, and no second call setup.
#[test]
fn kamailio_cookie_retransmission_back_to_back() {
    let d = Daemon::start(&[]).expect("daemon");
    let ng = NgClient::new(d.ng).expect("ng client");
    let call_id = format!("kam-retr2-{}", std::process::id());
    let cookie = format!("2_{}_1", std::process::id());
    let msg = [
        format!("{cookie} ").as_bytes(),
        &kamailio_offer(&call_id, OFFER),
    ]
    .concat();
    ng.sock.send(&msg).unwrap();
    ng.sock.send(&msg).unwrap();
    let a = ng.recv().expect("first reply");
    let b = ng.recv().expect("second reply");
    assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
    let r = decode_bencode(
        a.strip_prefix(format!("{cookie} ").as_bytes())
            .expect("cookie echoed"),
    )
    .expect("reply bencode");
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    ng.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(ng.recv().is_err(), "exactly one reply per request");
}
