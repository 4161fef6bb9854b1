//! The kernel-forwarding proxy: the daemon in the proxy namespace of a
//! [`Topology`] with its ng client, and what the offload and restart tests
//! do with it (set up a call, exchange media, read statistics).

use std::net::{SocketAddr, UdpSocket};

use crate::daemon::Daemon;
use crate::ng::{dict, dig, dig_int, get_str, NgClient};
use crate::packets::{expect_packet, rtp};
use crate::rig::sdp_cmd;
use crate::sdp::{crlf, media_ports};
use crate::topology::Topology;
use rtpengine::ng::value::Value;

/// The daemon in the proxy namespace of a [`Topology`], kernel table 0,
/// with its ng client.
pub struct Proxy {
    /// The daemon.
    pub daemon: Daemon,
    /// Its ng client (in the proxy namespace).
    pub ng: NgClient,
    /// The pin directory of its maps.
    pub pin_dir: String,
}

/// Starts the daemon in `t`'s proxy namespace: table 0, native XDP on
/// p0/p1, interfaces `int` (10.1.0.1, fd00:1::1) and `ext` (10.2.0.1,
/// fd00:2::1), plus `extra`.
pub fn start_proxy(t: &Topology, extra: &[&str]) -> anyhow::Result<Proxy> {
    start_proxy_logged(t, extra, None)
}

/// [`start_proxy`], with the daemon's log appended to `log` when given.
pub fn start_proxy_logged(
    t: &Topology,
    extra: &[&str],
    log: Option<&std::path::Path>,
) -> anyhow::Result<Proxy> {
    let pin_dir = t.pin_dir();
    let mut args = vec![
        "--table=0",
        "--xdp-mode=native",
        "--xdp-device=p0",
        "--xdp-device=p1",
        "-i",
        "int/10.1.0.1",
        "-i",
        "int/fd00:1::1",
        "-i",
        "ext/10.2.0.1",
        "-i",
        "ext/fd00:2::1",
    ];
    let pin_arg = format!("--bpf-pin-dir={pin_dir}");
    args.push(&pin_arg);
    args.extend(extra);
    let ng = "127.0.0.1:2223".parse()?;
    let daemon = match log {
        Some(log) => Daemon::start_logged(Some(&t.proxy.name), ng, &args, "", log)?,
        None => Daemon::start_with(Some(&t.proxy.name), ng, &args)?,
    };
    let ng = t
        .proxy
        .run(|| NgClient::new("127.0.0.1:2223".parse().unwrap()))?;
    Ok(Proxy {
        daemon,
        ng,
        pin_dir,
    })
}

/// A PCMU/PCMA audio SDP from `addr`:`port` (IPv4 or IPv6).
pub fn phone_sdp(addr: &str, port: u16) -> String {
    let fam = if addr.contains(':') { "IP6" } else { "IP4" };
    crlf(&format!(
        "v=0\no=- 1 1 IN {fam} {addr}\ns=-\nt=0 0\nm=audio {port} RTP/AVP 0 8\nc=IN {fam} {addr}\na=sendrecv\n"
    ))
}

/// Offer from caller, answer from callee; returns (port the caller sends
/// to, port the callee sends to).
pub fn setup_call(
    p: &Proxy,
    id: &str,
    caller: (&str, u16),
    callee: (&str, u16),
    extra: Vec<(&str, Value)>,
) -> (u16, u16) {
    let (to_callee, to_caller) = setup_call_sdps(p, id, caller, callee, extra.clone(), extra);
    (media_ports(&to_caller)[0], media_ports(&to_callee)[0])
}

/// [`setup_call`] with its own keys for the offer and the answer; returns
/// the rewritten SDPs (sent to the callee, sent to the caller).
pub fn setup_call_sdps(
    p: &Proxy,
    id: &str,
    caller: (&str, u16),
    callee: (&str, u16),
    offer_extra: Vec<(&str, Value)>,
    answer_extra: Vec<(&str, Value)>,
) -> (String, String) {
    let to_callee = offer_int_to_ext(p, id, "ft", &phone_sdp(caller.0, caller.1), offer_extra);
    let r =
        p.ng.call(&sdp_cmd(
            "answer",
            id,
            "ft",
            Some("tt"),
            &phone_sdp(callee.0, callee.1),
            answer_extra,
        ))
        .unwrap();
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    (to_callee, get_str(&r, "sdp").to_owned())
}

/// Offers `sdp` from tag `from` on interface `int` to `ext` (the caller's
/// side to the callee's); returns the SDP that goes on to the callee.
pub fn offer_int_to_ext(
    p: &Proxy,
    id: &str,
    from: &str,
    sdp: &str,
    extra: Vec<(&str, Value)>,
) -> String {
    let mut offer = sdp_cmd("offer", id, from, None, sdp, extra);
    offer.insert(
        b"direction".to_vec(),
        Value::List(vec!["int".into(), "ext".into()]),
    );
    let r = p.ng.call(&offer).unwrap();
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    get_str(&r, "sdp").to_owned()
}

/// `statistics` → `totalstatistics` → `key`.
pub fn stat(p: &Proxy, key: &str) -> i64 {
    let d =
        p.ng.call(&dict([("command", Value::str("statistics"))]))
            .unwrap();
    dig_int(&d, &["statistics", "totalstatistics", key])
        .unwrap_or_else(|| panic!("no {key} in {d:?}"))
}

/// `query` → the first stream of party `tag`'s first media → `flags`.
pub fn stream_flags(p: &Proxy, id: &str, tag: &str) -> Vec<String> {
    let q =
        p.ng.call(&dict([
            ("command", Value::str("query")),
            ("call-id", Value::str(id)),
        ]))
        .unwrap();
    let Some(Value::List(medias)) = dig(&q, &["tags", tag, "medias"]) else {
        panic!("{q:?}")
    };
    let Some(Value::List(streams)) = medias[0].get("streams") else {
        panic!("{q:?}")
    };
    match streams[0].get("flags") {
        Some(Value::List(f)) => f
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => panic!("{q:?}"),
    }
}

/// Sends `n` packets each way and asserts every one arrives from the
/// proxy's socket with its payload intact.
pub fn exchange(
    a: &UdpSocket,
    b: &UdpSocket,
    to_b: SocketAddr,
    to_a: SocketAddr,
    n: u16,
    seq0: u16,
) {
    for i in 0..n {
        let p = rtp(8, seq0 + i, 160 * u32::from(i), 0x1111, i as u8);
        a.send_to(&p, to_b).unwrap();
        expect_packet(b, to_a, &p);
        let q = rtp(8, seq0 + i, 160 * u32::from(i), 0x2222, !(i as u8));
        b.send_to(&q, to_a).unwrap();
        expect_packet(a, to_b, &q);
    }
}
