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

use axum::extract::ConnectInfo;
use rtpengine::cli::Cli;
use rtpengine::logging::{Destination, Logging, Options as LogOptions};
use rtpengine::metrics::Metrics;
use rtpengine::ng::json::{decode_json, encode_json};
use rtpengine::ng::value::{Dict, Value};
use rtpengine::relay::poller::Poller;
use rtpengine::sdp::{self, MediaOut, RtcpOut, SessionOut};
use rtpengine::server::{http, tcp, Control};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

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
    // The same bytes as a trickle ICE fragment: parsed or refused, never a
    // panic; what it holds becomes candidates within the limit.
    if let Ok(sections) = sdp::parse_fragment(data) {
        let mut peer = rtpengine::relay::ice_agent::Peer::default();
        for s in &sections {
            peer.trickle(s.candidates.iter().map(String::as_str));
        }
        assert!(peer.candidates.len() <= rtpengine::relay::ice_agent::MAX_CANDIDATES);
        assert!(peer.rtcp_candidates.len() <= rtpengine::relay::ice_agent::MAX_CANDIDATES);
    }
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
                ice: None,
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

/// The port pools of a [`control_plane`], to check that every port is free
/// again at the end of an input.
type Pools = Vec<(IpAddr, Arc<PortPool>)>;

/// A fresh control plane (calls, commands) with media ports on loopback:
/// `default` on 127.0.0.1 and ::1, `other` on 127.0.0.2, [`PORTS`] each.
///
/// The harnesses share this process's port range, so only one of them runs
/// at a time (the corpus test runs them on parallel threads): hold the
/// returned guard for the whole input.
fn control_plane() -> (
    std::sync::MutexGuard<'static, ()>,
    Arc<Control>,
    Arc<Calls>,
    Pools,
) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
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
    let pools: Pools = interfaces
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
        Arc::new(
            rtpengine::crypto::dtls::Identity::new(
                rtpengine::crypto::dtls::KeyType::Ec,
                rtpengine::crypto::dtls::DEFAULT_MTU,
                rtpengine::crypto::dtls::DEFAULT_CIPHERS,
            )
            .expect("DTLS identity"),
        ),
    ));
    let control = Control::new(Commands::new(Arc::clone(&calls)));
    (guard, control, calls, pools)
}

/// Deletes every call `control` holds; then every port must be free.
fn delete_all(control: &Control, pools: &Pools, data: &[u8]) {
    let rt = runtime();
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
    for (addr, p) in pools {
        assert_eq!(
            p.available(),
            p.total(),
            "ports leaked on {addr} after {:?}",
            String::from_utf8_lossy(data)
        );
    }
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
    let (_one, control, _, pools) = control_plane();
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
    delete_all(&control, &pools, data);
}

/// The transports' framers, in memory: `data[0]` picks ng over TCP (even)
/// or HTTP/WebSocket (odd); the rest, split at [`MESSAGE_SEPARATOR`], is
/// written as separate reads, then the client half-closes. The server
/// (the daemon's own connection loop, or its HTTP router under hyper with
/// upgrades) must end the connection within 10 s; every TCP reply is a
/// `cookie SP dictionary` whose cookie the input contains; HTTP output is
/// HTTP; every port is free afterwards.
pub fn transports(data: &[u8]) {
    transports_output(data);
}

/// [`transports`], returning what the server wrote.
pub fn transports_output(data: &[u8]) -> Vec<u8> {
    let Some((&pick, rest)) = data.split_first() else {
        return Vec::new();
    };
    let rt = runtime();
    let (_one, control, calls, pools) = control_plane();
    let chunks: Vec<Vec<u8>> = split(rest, MESSAGE_SEPARATOR).map(<[u8]>::to_vec).collect();
    let (client, server) = tokio::io::duplex(64 * 1024);
    let out = rt.rt.block_on(async {
        let server_task = if pick % 2 == 0 {
            let control = Arc::clone(&control);
            tokio::spawn(async move {
                let idle = Some(Duration::from_secs(5));
                let _ = tcp::connection(server, &control, LOCAL, idle).await;
            })
        } else {
            let cli = Arc::new(Cli {
                calls: Arc::clone(&calls),
                logging: logging(),
                control: control.stats(),
            });
            let metrics = Arc::new(Metrics {
                calls: Arc::clone(&calls),
                control: control.stats(),
                kernel: None,
                media: Arc::clone(&runtime().media),
                af_xdp: None,
            });
            let router = http::router(Arc::clone(&control), cli, metrics, Arc::from(Vec::new()))
                .layer(axum::Extension(ConnectInfo(LOCAL)));
            let svc = hyper_util::service::TowerToHyperService::new(router);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .half_close(true)
                    .serve_connection(hyper_util::rt::TokioIo::new(server), svc)
                    .with_upgrades()
                    .await;
            })
        };
        let (mut rd, mut wr) = tokio::io::split(client);
        let writer = async move {
            for c in &chunks {
                if wr.write_all(c).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let _ = wr.shutdown().await;
        };
        let reader = async move {
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await;
            out
        };
        let both = async { tokio::join!(writer, reader).1 };
        let out = tokio::time::timeout(Duration::from_secs(10), both)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "connection did not end within 10 s: {:?}",
                    String::from_utf8_lossy(data)
                )
            });
        let _ = server_task.await;
        out
    });
    if pick % 2 == 0 {
        // The stream as the server saw it (the separators are not sent).
        let stream: Vec<u8> = split(rest, MESSAGE_SEPARATOR).flatten().copied().collect();
        check_tcp_replies(&stream, &out);
    } else {
        assert!(
            out.is_empty() || out.starts_with(b"HTTP/1."),
            "not HTTP: {:?}",
            String::from_utf8_lossy(&out)
        );
    }
    delete_all(&control, &pools, data);
    out
}

/// `out` is a sequence of `cookie SP bencode-dictionary` with a `result`,
/// each cookie found in the `input` stream.
fn check_tcp_replies(input: &[u8], mut out: &[u8]) {
    while !out.is_empty() {
        let (cookie, body) = frame::split_cookie(out).unwrap_or_else(|| {
            panic!(
                "TCP reply without cookie: {:?}",
                String::from_utf8_lossy(out)
            )
        });
        assert!(
            input.windows(cookie.len()).any(|w| w == cookie),
            "reply cookie {:?} not in the input",
            String::from_utf8_lossy(cookie)
        );
        let n = match bencode_len(body) {
            Ok(Some(n)) => n,
            other => panic!(
                "TCP reply not a complete dictionary ({other:?}): {:?}",
                String::from_utf8_lossy(body)
            ),
        };
        check_reply(b"d", &body[..n]);
        out = &body[n..];
    }
}

fn logging() -> Arc<Logging> {
    static LOG: OnceLock<Arc<Logging>> = OnceLock::new();
    Arc::clone(LOG.get_or_init(|| {
        Arc::new(Logging::init(&LogOptions {
            level: -1,
            subsystems: Vec::new(),
            destination: Destination::Stderr,
            timestamps: false,
            facility: rtpengine::logging::facility("daemon").expect("the daemon facility"),
            ident: "fuzz".into(),
        }))
    }))
}

/// The relay's packet path with synthetic sources, on real loopback
/// sockets: one call between A and B (both on 127.0.0.1), set up with the
/// learning mode and flags `data[0]` picks; then every part of the rest
/// (split at [`MESSAGE_SEPARATOR`]) is `[from, to, payload…]`: sent from A,
/// B or one of three strangers (A's address on another port, another
/// address with A's port, another address and port) to one of the
/// daemon's four ports. Whatever the payload (RTP, RTCP, STUN, DTLS, junk):
/// A and B only ever receive from the daemon's ports; with
/// `strict source` and learning `off`, nothing a stranger sends reaches
/// them, and with `strict source` after A's first RTP from its announced
/// address (heuristic: confirmed), nothing a stranger sends to A's RTP
/// port reaches B; every port is free after the delete.
pub fn relay(data: &[u8]) {
    relay_received(data);
}

/// [`relay`], returning how many of the sent packets A and B received.
pub fn relay_received(data: &[u8]) -> usize {
    use std::net::UdpSocket;
    let Some((&conf, rest)) = data.split_first() else {
        return 0;
    };
    let rt = runtime();
    let (_one, control, _, pools) = control_plane();
    let mode = ["heuristic", "immediate", "delayed", "off"][usize::from(conf & 3)];
    let strict = conf & 4 != 0;
    let mut flags = Vec::new();
    if strict {
        flags.push(Value::str("strict source"));
    }
    if conf & 8 != 0 {
        flags.push(Value::str("media handover"));
    }
    if conf & 16 != 0 {
        flags.push(Value::str("asymmetric"));
    }
    // A bundle (RFC 9143) of two sections on A's side: what A sends is
    // told apart by MID extension, SSRC or payload type.
    let bundle = conf & 32 != 0;
    if bundle {
        flags.push(Value::str("BUNDLE-accept"));
    }
    let bind = |ip: [u8; 4], port: u16| UdpSocket::bind(SocketAddr::from((ip, port))).ok();
    let (Some(a), Some(b)) = (bind([127, 0, 0, 1], 0), bind([127, 0, 0, 1], 0)) else {
        return 0;
    };
    let (Ok(a_addr), Ok(b_addr)) = (a.local_addr(), b.local_addr()) else {
        return 0;
    };
    let strangers: Vec<UdpSocket> = [
        bind([127, 0, 0, 1], 0),
        bind([127, 0, 1, 1], a_addr.port()).or_else(|| bind([127, 0, 1, 1], 0)),
        bind([127, 0, 1, 2], 0),
    ]
    .into_iter()
    .flatten()
    .collect();
    let sdp_of = |addr: SocketAddr| {
        let mut sdp = format!(
            // RTCP to the party's own socket too: port+1 might be a
            // stranger's.
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n{g}m=audio {p} RTP/AVP 0\r\nc=IN IP4 127.0.0.1\r\na=rtcp:{p}\r\na=sendrecv\r\n",
            p = addr.port(),
            g = if bundle { "a=group:BUNDLE a b\r\n" } else { "" },
        );
        if bundle {
            sdp.push_str(
                "a=mid:a\r\na=rtcp-mux\r\na=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n",
            );
            sdp.push_str(&format!(
                "m=audio {p} RTP/AVP 8\r\nc=IN IP4 127.0.0.1\r\na=rtcp:{p}\r\na=sendrecv\r\na=mid:b\r\na=rtcp-mux\r\na=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n",
                p = addr.port()
            ));
        }
        sdp
    };
    let request = |command: &str, sdp: String| {
        let mut d = Dict::new();
        d.insert(b"command".to_vec(), Value::str(command));
        d.insert(b"call-id".to_vec(), Value::str("relay"));
        d.insert(b"from-tag".to_vec(), Value::str("a"));
        if command == "answer" {
            d.insert(b"to-tag".to_vec(), Value::str("b"));
        }
        d.insert(b"sdp".to_vec(), Value::str(&sdp));
        d.insert(b"endpoint-learning".to_vec(), Value::str(mode));
        d.insert(b"flags".to_vec(), Value::List(flags.clone()));
        let reply = rt
            .rt
            .block_on(control.handle_body(&encode_bencode(&d), LOCAL));
        decode_bencode(&reply)
            .ok()
            .and_then(|r| {
                r.get(b"sdp".as_slice())
                    .and_then(|v| v.as_bytes())
                    .map(<[u8]>::to_vec)
            })
            .and_then(|s| sdp::parse(&s).ok())
            .map(|s| s.media.iter().map(|m| m.port).collect::<Vec<u16>>())
            .filter(|ports| !ports.is_empty())
            .unwrap_or_else(|| panic!("{command} failed with {mode} {flags:?}"))
    };
    // The offer's rewritten SDP goes to B: the port B sends to; the
    // answer's to A.
    let b_ports = request("offer", sdp_of(a_addr));
    let a_ports = request("answer", sdp_of(b_addr));
    let (a_sends_to, b_sends_to) = (a_ports[0], b_ports[0]);
    if bundle {
        // One transport towards A, a port per section towards B.
        assert!(a_ports.iter().all(|&p| p == a_sends_to), "{a_ports:?}");
        assert!(
            b_ports.len() == 2 && b_ports[0] != b_ports[1],
            "{b_ports:?}"
        );
    }
    let lo = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    // The daemon's RTP and RTCP ports facing A, then those facing B; each
    // party hears from the pair it sends to (with a bundle, B also from
    // the second section's ports, which are not sent to).
    let mut daemon = vec![
        lo(a_sends_to),
        lo(a_sends_to + 1),
        lo(b_sends_to),
        lo(b_sends_to + 1),
    ];
    if let Some(&second) = b_ports.get(1).filter(|_| bundle) {
        daemon.extend([lo(second), lo(second + 1)]);
    }
    let mut sent: Vec<(usize, usize, bool)> = Vec::new(); // (from, to, after A confirmed)
    let mut a_confirmed = false;
    for part in split(rest, MESSAGE_SEPARATOR).take(64) {
        let [from, to, payload @ ..] = part else {
            continue;
        };
        let (from, to) = (
            usize::from(*from) % (2 + strangers.len()),
            usize::from(*to) % 4, // the first four: the pairs sent to
        );
        let idx = sent.len() as u16;
        let mut pkt = payload[..payload.len().min(1400)].to_vec();
        pkt.extend_from_slice(&[0xa5, 0x5a]);
        pkt.extend_from_slice(&idx.to_be_bytes());
        let sock = match from {
            0 => &a,
            1 => &b,
            n => &strangers[n - 2],
        };
        let _ = sock.send_to(&pkt, daemon[to]);
        sent.push((from, to, a_confirmed));
        if from == 0 && to == 0 && !rtpengine_common::classify::is_rtcp_packet(&pkt) {
            a_confirmed = true;
        }
    }
    std::thread::sleep(Duration::from_millis(30));
    let mut received = 0;
    for (who, sock) in [("A", &a), ("B", &b)] {
        let _ = sock.set_nonblocking(true);
        let mut buf = [0u8; 2048];
        while let Ok((n, src)) = sock.recv_from(&mut buf) {
            // Not necessarily the pair facing it: both parties are on
            // 127.0.0.1, so A sending to B's side may be learned there
            // (the threat table's bleed).
            assert!(
                daemon.contains(&src),
                "{who} received from {src}, not from the daemon's ports {daemon:?} ({mode}, {flags:?})"
            );
            let Some(tail) = buf[..n].get(n.saturating_sub(4)..) else {
                continue;
            };
            if n < 4 || tail[..2] != [0xa5, 0x5a] {
                continue; // something the daemon generated or rewrote
            }
            let idx = usize::from(u16::from_be_bytes([tail[2], tail[3]]));
            let Some(&(from, to, after)) = sent.get(idx) else {
                continue;
            };
            received += 1;
            if strict && from >= 2 {
                assert!(
                    mode != "off",
                    "strict source, learning off: {who} got stranger {from}'s packet {idx}"
                );
                assert!(
                    !(mode == "heuristic" && after && to == 0 && who == "B" && conf & 8 == 0),
                    "strict source: B got stranger {from}'s packet {idx} after A was confirmed"
                );
            }
        }
    }
    delete_all(&control, &pools, data);
    received
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

/// One certificate for every WebRTC input (generating keys costs more
/// than the run).
fn dtls_identity() -> Arc<rtpengine::crypto::dtls::Identity> {
    use rtpengine::crypto::dtls::{Identity, KeyType, DEFAULT_CIPHERS, DEFAULT_MTU};
    static ID: OnceLock<Arc<Identity>> = OnceLock::new();
    Arc::clone(ID.get_or_init(|| {
        Arc::new(Identity::new(KeyType::Ec, DEFAULT_MTU, DEFAULT_CIPHERS).expect("DTLS identity"))
    }))
}

/// What reaches a WebRTC leg's STUN and DTLS parsers from a media port:
/// `data[0]` picks our DTLS role, which ICE agent runs (lite, or full and
/// controlling or controlled), whether the source is known and the ICE
/// component; the rest,
/// split at
/// [`MESSAGE_SEPARATOR`], are datagrams from the peer, handed to the ICE
/// responder or the DTLS session by their first byte as the relay does
/// (RFC 7983). Whatever they hold: no panic; a STUN answer is a success
/// response that carries our integrity; no reply is larger than the DTLS
/// MTU or more than a flight; and no SRTP key is ever installed (no input
/// can complete a handshake with a certificate matching the fingerprint
/// the leg expects, which is our own).
pub fn webrtc(data: &[u8]) {
    use rtpengine::crypto::dtls::{Hash, Role, DEFAULT_MTU};
    use rtpengine::relay::ice::{self, Credentials};
    use rtpengine::relay::ice_agent::Peer;
    use rtpengine::relay::webrtc::{is_dtls, DtlsPlan, IcePlan, Leg};
    let Some((&conf, rest)) = data.split_first() else {
        return;
    };
    let id = dtls_identity();
    let leg = Leg::new(Arc::clone(&id));
    let creds = Credentials {
        ufrag: "fuzzUfrg".into(),
        pwd: "fuzzpasswordfuzzpassword12".into(),
    };
    let role = if conf & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let src: SocketAddr = "192.0.2.1:5000".parse().expect("address");
    let agent = match conf & 12 {
        0 => IcePlan::Lite,
        n => IcePlan::Full(
            Peer {
                ufrag: "peerUfrg".into(),
                pwd: "peerpasswordpeerpassword12".into(),
                candidates: vec![(src, 1)],
                rtcp_candidates: vec![(src, 1)],
                lite: false,
            },
            n == 4,
        ),
    };
    leg.configure(
        Some(creds.clone()),
        agent,
        Some(DtlsPlan {
            role,
            remote: Some(id.fingerprint(Hash::Sha256)),
            tls_id: None,
        }),
    );
    // Two of our addresses (a multi-address interface): each datagram
    // arrives on one of them, chosen by its first byte's low bit.
    let locals: [SocketAddr; 2] = [
        "192.0.2.2:30000".parse().expect("address"),
        "192.0.2.3:30002".parse().expect("address"),
    ];
    for pkt in split(rest, MESSAGE_SEPARATOR) {
        let local = locals[usize::from(pkt.first().is_some_and(|b| b & 1 == 1))];
        let reply = if ice::is_stun(pkt) {
            if ice::verify(pkt, &creds).is_ok() {
                let response = ice::respond(pkt, src, &creds, false);
                let msg = stun_types::message::Message::from_bytes(&response)
                    .expect("our response parses");
                let key = stun_types::message::ShortTermCredentials::new(creds.pwd.clone());
                msg.validate_integrity(&key.into())
                    .expect("our response carries our integrity");
            }
            leg.stun(pkt, (local, src), 1 + (conf >> 4 & 1))
        } else if is_dtls(pkt) {
            leg.dtls(pkt, (local, src), 1 + (conf >> 5 & 1), conf & 2 == 0)
        } else {
            continue;
        };
        assert!(reply.out.len() <= 64, "{} datagrams", reply.out.len());
        for d in &reply.out {
            // DTLS records fit the MTU (plus the UDP/IP headers OpenSSL
            // leaves out); STUN answers are a few dozen bytes.
            assert!(d.len() <= DEFAULT_MTU as usize, "a {}-byte reply", d.len());
        }
    }
    for component in [1, 2] {
        for local in locals {
            let _ = leg.tick(Some(src), local, component);
        }
    }
    assert!(
        [&leg.rx, &leg.rtcp_rx]
            .iter()
            .all(|s| s.lock().map(|k| k.is_none()).unwrap_or(true)),
        "keys without a verified handshake"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(target: &str, name: &str) -> Vec<u8> {
        let p = crate::util::tests_dir()
            .join("fuzz/corpus")
            .join(target)
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// The harnesses do reach the code they fuzz: the seeds get real replies.
    #[test]
    fn transports_harness_serves_tcp_http_and_websocket() {
        let out = transports_output(&seed("transports", "tcp_split_pings"));
        assert_eq!(
            String::from_utf8_lossy(&out)
                .matches("d6:result4:ponge")
                .count(),
            3,
            "{out:?}"
        );
        let out = String::from_utf8_lossy(&transports_output(&seed("transports", "http_ng_ping")))
            .into_owned();
        assert!(
            out.starts_with("HTTP/1.1 200") && out.ends_with("c1 d6:result4:ponge"),
            "{out}"
        );
        let out = String::from_utf8_lossy(&transports_output(&seed(
            "transports",
            "http_origin_refused",
        )))
        .into_owned();
        assert!(out.starts_with("HTTP/1.1 403"), "{out}");
        let out = transports_output(&seed("transports", "ws_ng_binary_text_close"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 101"), "{text}");
        assert!(text.contains("c1 d6:result4:ponge"), "{text}");
    }

    #[test]
    fn relay_harness_relays() {
        // The seeds send 12 packets, 6 from A and B, 6 from strangers.
        // Learning off with strict source: exactly A's and B's arrive.
        assert_eq!(relay_received(&seed("relay", "off_strict")), 6);
        // Heuristic, no flags: strangers' packets are relayed too.
        let n = relay_received(&seed("relay", "heuristic"));
        assert!(n > 6, "{n}");
    }

    #[test]
    fn split_keeps_empty_and_trailing_parts() {
        let parts: Vec<&[u8]> = split(b"a\xff\xfe\xff\xfeb", b"\xff\xfe").collect();
        assert_eq!(parts, [&b"a"[..], b"", b"b"]);
        assert_eq!(split(b"", b"\xff\xfe").count(), 1);
    }
}
