//! Fuzz harnesses: what must hold for *any* input to the ng decoders, the SDP
//! parser/writer and the whole control plane. The libFuzzer targets in
//! `tests/fuzz/` (`cargo xtask fuzz`) call these; `tests/fuzz_corpus.rs`
//! replays the checked-in corpus (seeds and every input that once failed)
//! through them on every `cargo xtask test`, with no fuzzing toolchain.
//!
//! A harness panics when its property does not hold; that is the failure
//! libFuzzer records and the corpus test reports.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rtpengine::call::{Calls, Settings};
use rtpengine::commands::Commands;
use rtpengine::interfaces::{InterfaceSpec, Interfaces, PortPool};
use rtpengine::ng::bencode::{bencode_len, decode_bencode, encode_bencode};
use rtpengine::ng::frame;
/// The "proxy" address of fuzz input (per-proxy counters only).
const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2223);

use rtpengine::ng::json::{decode_json, encode_json};
use rtpengine::ng::value::{Dict, Value};
use rtpengine::relay::poller::Poller;
use rtpengine::sdp::{self, MediaOut, RtcpOut, SessionOut};
use rtpengine::server::Control;

/// Separates the ng messages of one [`ng`] input (bytes no message needs).
pub const MESSAGE_SEPARATOR: &[u8] = b"\xff\xfe";

/// Ports per local address in [`ng`]: few, so that exhaustion and the release
/// of half-built calls are reachable.
const PORTS: u16 = 24;

/// Bencode: what decodes re-encodes to something that decodes to the same
/// dictionary; the stream framer agrees with the decoder about where the
/// value ends. JSON: decode, encode, decode is stable.
pub fn codecs(data: &[u8]) {
    if let Ok(d) = decode_bencode(data) {
        let again = decode_bencode(&encode_bencode(&d));
        assert_eq!(again.as_ref(), Ok(&d), "bencode round trip");
        let len = bencode_len(data);
        assert!(
            matches!(len, Ok(Some(n)) if n <= data.len()),
            "bencode_len disagrees with the decoder: {len:?}"
        );
    }
    if let Ok(d) = decode_json(data) {
        let again = decode_json(&encode_json(&d));
        assert_eq!(again.as_ref(), Ok(&d), "JSON round trip");
    }
}

/// SDP: whatever parses, written back (as an offer rewrite would, with fixed
/// ports and addresses), parses again, and writing that gives the same bytes:
/// the writer never produces SDP the parser (or a peer) cannot read.
pub fn sdp(data: &[u8]) {
    let Ok(session) = sdp::parse(data) else {
        return;
    };
    let write = |s: &sdp::Session| {
        let so = SessionOut {
            origin: s.origin.clone(),
            name: s.name.clone(),
        };
        let media: Vec<MediaOut> = s
            .media
            .iter()
            .enumerate()
            .map(|(i, m)| MediaOut {
                port: if m.port == 0 { 0 } else { 30000 + 2 * i as u16 },
                address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                direction: m.direction(s),
                rtcp: RtcpOut::Port(30001 + 2 * i as u16),
                rtcp_mux: m.rtcp_mux(),
                passthrough: false,
            })
            .collect();
        sdp::write(s, &so, &media)
    };
    let first = write(&session);
    let reparsed = match sdp::parse(&first) {
        Ok(s) => s,
        Err(e) => panic!(
            "our own SDP does not parse ({e}):\n{}",
            String::from_utf8_lossy(&first)
        ),
    };
    assert_eq!(reparsed.media.len(), session.media.len(), "media sections");
    let second = write(&reparsed);
    assert!(
        first == second,
        "writer not stable:\n{}\n---\n{}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );
}

struct Runtime {
    rt: tokio::runtime::Runtime,
    media: Arc<Poller>,
}

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
        media: Arc::new(Poller::start(1, Duration::from_millis(1)).expect("relay thread")),
    })
}

fn port_base() -> u16 {
    // Per process, so parallel fuzz jobs and test binaries rarely share
    // ports (a port in use is skipped, so sharing is harmless anyway).
    42000 + (std::process::id() % 400) as u16 * 50
}

/// The control plane, in process, with its real media sockets on loopback:
/// `data` is a sequence of ng messages separated by [`MESSAGE_SEPARATOR`],
/// each a body (bencode or JSON) or, if it starts otherwise, a cookie-framed
/// datagram. Every body gets a dictionary reply with a `result`; a framed
/// message gets its cookie back (a repeated cookie the very same reply) or,
/// without a cookie, no reply; every SDP in a reply parses; and once the
/// calls left are deleted, every port is free again.
pub fn ng(data: &[u8]) {
    let rt = runtime();
    let base = port_base();
    let spec = |name: &str, address: IpAddr| InterfaceSpec {
        name: name.into(),
        address,
        advertised: address,
        port_min: None,
        port_max: None,
        exclude_ports: Vec::new(),
    };
    let specs = [
        spec("default", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        spec("default", IpAddr::V6(Ipv6Addr::LOCALHOST)),
        spec("other", IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
    ];
    let interfaces =
        Interfaces::new(&specs, base, base + PORTS - 1).expect("interfaces from fixed specs");
    let pools: Vec<(IpAddr, Arc<PortPool>)> = interfaces
        .iter()
        .flat_map(|i| i.addrs.iter().map(|a| (a.local, Arc::clone(&a.pool))))
        .collect();
    let settings = Settings {
        delete_delay: 0,
        max_sessions: 8,
        ..Settings::default()
    };
    let calls = Arc::new(Calls::new(
        interfaces,
        settings,
        None,
        Arc::clone(&rt.media),
    ));
    let control = Control::new(Commands::new(calls));
    // Framed replies by cookie: a retransmission must get the same bytes.
    let mut by_cookie: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for msg in split(data, MESSAGE_SEPARATOR) {
        if msg.is_empty() || matches!(msg[0], b'd' | b'{') {
            let reply = rt.rt.block_on(control.handle_body(msg, LOCAL));
            check_reply(msg, &reply);
            continue;
        }
        // `cookie SP body`, as the UDP and TCP transports hand it over.
        let reply = rt.rt.block_on(control.handle_framed(msg, LOCAL));
        match (frame::split_cookie(msg), reply) {
            // No cookie: no answer, as upstream.
            (None, None) => {}
            (Some((cookie, body)), Some(reply)) => {
                // A repeated cookie is a retransmission whatever its body
                // says: it gets the first reply, byte for byte.
                if let Some(first) = by_cookie.get(cookie) {
                    assert!(
                        *first == reply,
                        "retransmission of {:?} answered differently",
                        String::from_utf8_lossy(cookie)
                    );
                    continue;
                }
                match frame::split_cookie(&reply) {
                    Some((c, reply_body)) if c == cookie => check_reply(body, reply_body),
                    _ => panic!(
                        "reply {:?} does not carry cookie {:?}",
                        String::from_utf8_lossy(&reply),
                        String::from_utf8_lossy(cookie)
                    ),
                }
                by_cookie.insert(cookie.to_vec(), reply);
            }
            (cookie, reply) => panic!(
                "cookie {:?} but reply {:?}",
                cookie.map(|c| String::from_utf8_lossy(c.0).into_owned()),
                reply.map(|r| String::from_utf8_lossy(&r).into_owned())
            ),
        }
    }
    // Delete whatever calls are left: every port must be free at once.
    let listed = rt
        .rt
        .block_on(control.handle_body(b"d7:command4:list5:limiti100000ee", LOCAL));
    let ids: Vec<Vec<u8>> = decode_bencode(&listed)
        .ok()
        .and_then(|d| match d.get(b"calls".as_slice()) {
            Some(Value::List(l)) => Some(
                l.iter()
                    .filter_map(|v| v.as_bytes())
                    .map(<[u8]>::to_vec)
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default();
    for id in ids {
        let mut del = Dict::new();
        del.insert(b"command".to_vec(), Value::str("delete"));
        del.insert(b"call-id".to_vec(), Value::Bytes(id));
        del.insert(b"delete-delay".to_vec(), Value::Int(0));
        rt.rt
            .block_on(control.handle_body(&encode_bencode(&del), LOCAL));
    }
    for (addr, p) in &pools {
        assert_eq!(
            p.available(),
            p.total(),
            "ports leaked on {addr} after {:?}",
            String::from_utf8_lossy(data)
        );
    }
}

fn check_reply(body: &[u8], reply: &[u8]) {
    let decoded: Result<Dict, _> = if body.first() == Some(&b'{') {
        decode_json(reply)
    } else {
        decode_bencode(reply)
    };
    let dict = match decoded {
        Ok(d) => d,
        Err(e) => panic!(
            "undecodable reply ({e}) to {:?}: {:?}",
            String::from_utf8_lossy(body),
            String::from_utf8_lossy(reply)
        ),
    };
    let result = dict.get(b"result".as_slice()).and_then(|v| v.as_str());
    assert!(result.is_some(), "reply without result: {dict:?}");
    if let Some(sdp_out) = dict.get(b"sdp".as_slice()).and_then(|v| v.as_bytes()) {
        if let Err(e) = sdp::parse(sdp_out) {
            panic!(
                "reply SDP does not parse ({e}):\n{}",
                String::from_utf8_lossy(sdp_out)
            );
        }
    }
}

fn split<'a>(data: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                rest = Some(&r[i + sep.len()..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn split_keeps_empty_and_trailing_parts() {
        let parts: Vec<&[u8]> = split(b"a\xff\xfe\xff\xfeb", b"\xff\xfe").collect();
        assert_eq!(parts, [&b"a"[..], b"", b"b"]);
        assert_eq!(split(b"", b"\xff\xfe").count(), 1);
    }
}
