//! ng over TCP, HTTP and WebSocket against the real daemon: framing, partial
//! and batched messages, and hostile clients.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use rtpengine_tests::*;

struct Streams {
    _d: Daemon,
    tcp: SocketAddr,
    http: SocketAddr,
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free tcp port")
}

fn start() -> Streams {
    start_with(&[])
}

fn start_with(extra: &[&str]) -> Streams {
    let tcp: SocketAddr = ([127, 0, 0, 1], free_tcp_port()).into();
    let http: SocketAddr = ([127, 0, 0, 1], free_tcp_port()).into();
    let (tcp_arg, http_arg) = (
        format!("--listen-tcp-ng={tcp}"),
        format!("--listen-http={http}"),
    );
    let mut args = vec![tcp_arg.as_str(), http_arg.as_str()];
    args.extend(extra);
    let d = Daemon::start(&args).expect("daemon");
    // The TCP/HTTP listeners come up with the UDP one; wait until they accept.
    for _ in 0..100 {
        if TcpStream::connect(http).is_ok() && TcpStream::connect(tcp).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Streams { _d: d, tcp, http }
}

/// The daemon closed the connection without sending anything (a read timeout
/// fails: that would mean the connection stayed open).
fn assert_closed(s: &mut TcpStream) {
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("connection not closed: {other:?}, {} bytes", rest.len()),
    }
}

fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).expect("reply");
    buf
}

const PONG: &[u8] = b"d6:result4:ponge";

/// Out of descriptors, the ng TCP listener keeps going: the connections it
/// cannot accept wait in the backlog, the daemon (and its calls) survive,
/// and once descriptors are free again new connections are served. (Before,
/// one failed accept ended the daemon.)
#[test]
fn tcp_listener_survives_running_out_of_descriptors() {
    let tcp: SocketAddr = ([127, 0, 0, 1], free_tcp_port()).into();
    let mut d = Daemon::start_with_nofile(&[&format!("--listen-tcp-ng={tcp}")], 64).unwrap();
    assert!(wait_until(Duration::from_secs(3), || TcpStream::connect(
        tcp
    )
    .is_ok()));
    // More connections than the daemon has descriptors for.
    let held: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(tcp).ok())
        .collect();
    assert!(held.len() > 64, "only {} connections", held.len());
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.alive(), "the daemon exited when accept failed");
    let ng = NgClient::new(d.ng).unwrap();
    let r = ng.call(&dict([("command", Value::str("ping"))])).unwrap();
    assert_eq!(get_str(&r, "result"), "pong");
    drop(held);
    // Descriptors free again: a new connection is served.
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(mut s) = TcpStream::connect(tcp) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            if s.write_all(b"c1 d7:command4:pinge").is_ok() {
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf) {
                    ok = buf[..n].ends_with(PONG);
                }
            }
        }
        if ok {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "no pong over TCP after descriptors were freed");
    assert!(d.alive());
}

#[test]
fn tcp_batched_split_and_garbage() {
    let st = start();
    let mut s = TcpStream::connect(st.tcp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Two messages in one write: two replies, in order.
    s.write_all(b"a1 d7:command4:pingea2 d7:command4:pinge")
        .unwrap();
    assert_eq!(read_n(&mut s, 3 + PONG.len()), [&b"a1 "[..], PONG].concat());
    assert_eq!(read_n(&mut s, 3 + PONG.len()), [&b"a2 "[..], PONG].concat());
    // One message split across writes.
    s.write_all(b"b1 d7:comm").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"and4:pinge").unwrap();
    assert_eq!(read_n(&mut s, 3 + PONG.len()), [&b"b1 "[..], PONG].concat());
    // Protocol errors are answered, not fatal.
    s.write_all(b"b2 d3:fooi1ee").unwrap();
    let r = read_n(
        &mut s,
        3 + b"d12:error-reason36:Dictionary contains no key \"command\"6:result5:errore".len(),
    );
    assert!(String::from_utf8_lossy(&r).contains("no key \"command\""));

    // Garbage closes the connection; the daemon keeps serving others.
    s.write_all(b"c1 {\"command\":\"ping\"}").unwrap();
    assert_closed(&mut s);

    // A peer that sends endless incomplete data is cut off.
    let mut s2 = TcpStream::connect(st.tcp).unwrap();
    s2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut big = b"x d3:sdp999999:".to_vec();
    big.extend(std::iter::repeat_n(b'v', 70_000));
    let _ = s2.write_all(&big);
    assert_closed(&mut s2);

    // A client that disconnects mid-message does not disturb anyone.
    let mut s3 = TcpStream::connect(st.tcp).unwrap();
    s3.write_all(b"m1 d7:comm").unwrap();
    drop(s3);
    let mut s4 = TcpStream::connect(st.tcp).unwrap();
    s4.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s4.write_all(b"z1 d7:command4:pinge").unwrap();
    assert_eq!(
        read_n(&mut s4, 3 + PONG.len()),
        [&b"z1 "[..], PONG].concat()
    );
}

/// Sends a raw HTTP/1.1 request and returns (status, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    http_with(addr, method, path, ctype, &[], body)
}

/// [`http`] with extra request headers.
fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = ctype {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

#[test]
fn http_ng_and_ng_plain() {
    let st = start();
    let ng = "application/x-rtpengine-ng";
    let (code, body) = http(st.http, "POST", "/ng", Some(ng), b"h1 d7:command4:pinge");
    assert_eq!((code, body.as_slice()), (200, &b"h1 d6:result4:ponge"[..]));
    let (code, body) = http(
        st.http,
        "POST",
        "/ng-plain",
        Some("application/json"),
        br#"{"command":"ping"}"#,
    );
    assert_eq!((code, body.as_slice()), (200, &br#"{"result":"pong"}"#[..]));
    let (code, body) = http(
        st.http,
        "POST",
        "/ng-plain",
        Some("application/x-rtpengine-ng"),
        b"d7:command4:pinge",
    );
    assert_eq!((code, body.as_slice()), (200, PONG));
    // The ng endpoints insist on their media types (as upstream): a plain
    // HTML form (text/plain, form types) or no type at all cannot post.
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        assert_eq!(
            http(st.http, "POST", "/ng-plain", ct, br#"{"command":"ping"}"#).0,
            415,
            "{ct:?}"
        );
    }
    let (code, body) = http(st.http, "GET", "/ping", None, b"");
    assert_eq!((code, body.as_slice()), (200, &b"pong"[..]));

    assert_eq!(
        http(
            st.http,
            "POST",
            "/ng",
            Some("text/plain"),
            b"h2 d7:command4:pinge"
        )
        .0,
        415
    );
    assert_eq!(http(st.http, "POST", "/ng", Some(ng), b"").0, 400);
    assert_eq!(
        http(st.http, "POST", "/ng", Some(ng), b"d7:command4:pinge").0,
        400,
        "no cookie"
    );
    assert_eq!(
        http(st.http, "POST", "/ng-plain", Some("application/json"), b"").0,
        400
    );
    assert_eq!(http(st.http, "GET", "/nothing", None, b"").0, 404);
    let big = vec![b'x'; 200_000];
    assert_eq!(http(st.http, "POST", "/ng", Some(ng), &big).0, 413);
    // Still serving.
    assert_eq!(
        http(st.http, "POST", "/ng", Some(ng), b"h3 d7:command4:pinge").1,
        b"h3 d6:result4:ponge"
    );
}

/// A web page cannot drive the daemon through a browser: requests with an
/// `Origin` (POSTs, fetches, WebSocket upgrades) or cross-site fetch
/// metadata (an image pointing at `/cli/…`) are refused unless the origin
/// is allowed with `--http-allow-origin`.
#[test]
fn browser_requests_need_an_allowed_origin() {
    use tungstenite::client::IntoClientRequest;
    let st = start_with(&["--http-allow-origin=https://ops.example"]);
    let json = Some("application/json");
    let ping = br#"{"command":"ping"}"#;
    let evil = [("Origin", "http://evil.example")];
    assert_eq!(
        http_with(st.http, "POST", "/ng-plain", json, &evil, ping).0,
        403
    );
    assert_eq!(
        http_with(
            st.http,
            "POST",
            "/ng",
            Some("application/x-rtpengine-ng"),
            &evil,
            b"o1 d7:command4:pinge"
        )
        .0,
        403
    );
    let img = [("Sec-Fetch-Site", "cross-site")];
    assert_eq!(
        http_with(st.http, "GET", "/cli/list+totals", None, &img, b"").0,
        403
    );
    assert_eq!(
        http(st.http, "GET", "/cli/list+totals", None, b"").0,
        200,
        "a script, no browser headers"
    );
    let ops = [("Origin", "https://ops.example")];
    let (code, body) = http_with(st.http, "POST", "/ng-plain", json, &ops, ping);
    assert_eq!((code, body.as_slice()), (200, &br#"{"result":"pong"}"#[..]));
    // WebSocket upgrades from a foreign page are refused too.
    let mut req = format!("ws://{}/", st.http).into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "ng.rtpengine.com".parse().unwrap(),
    );
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    match tungstenite::connect(req) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("foreign WebSocket accepted: {:?}", other.map(|_| ())),
    }
}

#[test]
fn websocket_subprotocols_and_frames() {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::Message;
    let st = start();
    let connect = |proto: &str| {
        let mut req = format!("ws://{}/", st.http).into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", proto.parse().unwrap());
        let (ws, resp) = tungstenite::connect(req).expect("ws connect");
        assert_eq!(resp.headers().get("Sec-WebSocket-Protocol").unwrap(), proto);
        ws
    };
    let mut ws = connect("ng.rtpengine.com");
    ws.send(Message::Binary(b"w1 d7:command4:pinge".to_vec().into()))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        Message::Binary(b"w1 d6:result4:ponge".to_vec().into())
    );
    ws.send(Message::Text("w2 d7:command4:pinge".into()))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        Message::Text("w2 d6:result4:ponge".into())
    );

    let mut plain = connect("ng-plain.rtpengine.com");
    plain
        .send(Message::Text(r#"{"command":"ping"}"#.into()))
        .unwrap();
    assert_eq!(
        plain.read().unwrap(),
        Message::Text(r#"{"result":"pong"}"#.into())
    );

    // A 10 MB frame closes that connection only.
    let mut hostile = connect("ng.rtpengine.com");
    let _ = hostile.send(Message::Binary(vec![b'x'; 10 << 20].into()));
    let closed = loop {
        match hostile.read() {
            Ok(Message::Close(_)) | Err(_) => break true,
            Ok(_) => continue,
        }
    };
    assert!(closed);
    ws.send(Message::Binary(b"w3 d7:command4:pinge".to_vec().into()))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        Message::Binary(b"w3 d6:result4:ponge".to_vec().into())
    );
}

/// `--ng-allow-from`: only the listed sources are served; others get no
/// UDP reply, their TCP connections are closed and HTTP answers 403, and
/// every refusal is counted in `/metrics` (scraped from an allowed source).
#[test]
fn control_sources_outside_the_allow_list_are_refused() {
    let st = start_with(&["--ng-allow-from=127.0.0.1/32,::1"]);
    let ng = st._d.ng;
    // From 127.0.0.2 (loopback, but not in the list).
    let udp = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    udp.send_to(b"s1 d7:command4:pinge", ng).unwrap();
    let mut buf = [0u8; 256];
    assert!(
        udp.recv_from(&mut buf).is_err(),
        "a refused source got a reply"
    );
    let tcp = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    tcp.bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    tcp.connect(&st.tcp.into()).unwrap();
    let mut tcp: TcpStream = tcp.into();
    tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = tcp.write_all(b"s2 d7:command4:pinge");
    assert_closed(&mut tcp);
    let http = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    http.bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    http.connect(&st.http.into()).unwrap();
    let mut http: TcpStream = http.into();
    http.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    http.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    let _ = http.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    // The allowed source is served, and sees the refusals counted.
    let ok = NgClient::new(ng).unwrap();
    assert_eq!(
        get_str(
            &ok.call(&dict([("command", Value::str("ping"))])).unwrap(),
            "result"
        ),
        "pong"
    );
    let m = scrape(None, st.http).unwrap();
    assert_eq!(m.value("rtpengine_control_refused_total", &[]), 3.0);
}

/// Connection bounds: at most N connections from one source per TCP
/// listener (the next is closed at once, counted), and an ng TCP connection
/// that stays silent is closed after the idle timeout, making room again;
/// so are an HTTP keep-alive connection and a WebSocket.
#[test]
fn connection_bounds_and_idle_timeout() {
    let st = start_with(&[
        "--control-max-connections-per-source=3",
        "--control-idle-timeout=1",
    ]);
    // Let the start-up probes' connections go.
    std::thread::sleep(Duration::from_millis(300));
    for addr in [st.tcp, st.http] {
        let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(100));
        let mut extra = TcpStream::connect(addr).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let _ = extra.write_all(b"x1 d7:command4:pinge");
        assert_closed(&mut extra);
        drop(held);
    }
    // A silent ng TCP connection is closed after the idle second.
    std::thread::sleep(Duration::from_millis(200));
    let mut quiet = TcpStream::connect(st.tcp).unwrap();
    quiet
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let t0 = std::time::Instant::now();
    assert_closed(&mut quiet);
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "closed after {:?}",
        t0.elapsed()
    );
    // An HTTP keep-alive connection after its request, and a WebSocket
    // after its upgrade: closed after the idle second too.
    for (req, status) in [
        (
            &b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            "HTTP/1.1 200",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 101",
        ),
    ] {
        let mut c = TcpStream::connect(st.http).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        c.write_all(req).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            c.read_exact(&mut byte).expect("response head");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        assert!(head.starts_with(status), "{head}");
        let t0 = std::time::Instant::now();
        let mut rest = Vec::new();
        match c.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("not closed: {e} ({head})"),
        }
        assert!(
            t0.elapsed() >= Duration::from_millis(800)
                && t0.elapsed() < Duration::from_millis(2900),
            "closed after {:?} ({head})",
            t0.elapsed()
        );
    }
    // Room again: served.
    let mut s = TcpStream::connect(st.tcp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"y1 d7:command4:pinge").unwrap();
    assert_eq!(read_n(&mut s, 3 + PONG.len()), [&b"y1 "[..], PONG].concat());
    let m = scrape(None, st.http).unwrap();
    assert!(m.value("rtpengine_connections_refused_total", &[]) >= 2.0);
}
