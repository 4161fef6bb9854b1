//! Harness for the integration tests: start the real `rtpengine` binary, talk
//! ng to it over real sockets, and build network namespaces for tests that
//! need several hosts.
//!
//! Tests that need root (namespaces, eBPF) are `#[ignore]`d so a plain
//! `cargo test` skips them; `cargo xtask test` runs them with
//! `--include-ignored` and they fail loudly (never skip) when not root.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
pub use rtpengine::ng::bencode::{decode_bencode, encode_bencode};
pub use rtpengine::ng::value::{Dict, Value};

pub mod fuzz;

/// Path of the daemon binary (`RTPENGINE_BIN`, else next to the test binary).
pub fn daemon_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RTPENGINE_BIN") {
        return PathBuf::from(p);
    }
    // target/debug/deps/<test> → target/debug/rtpengine
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("rtpengine"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --bins), or use cargo xtask test",
        bin.display()
    );
    bin
}

/// Panics unless running as root; for privileged tests, which must never skip.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "this privileged test needs root: run `cargo xtask test` as root"
    );
}

/// A free UDP port on 127.0.0.1 (racy by nature, fine for tests).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running daemon; killed on drop.
pub struct Daemon {
    child: Child,
    /// Its ng UDP address.
    pub ng: SocketAddr,
}

impl Daemon {
    /// Starts the daemon on loopback with a free ng port plus `args`.
    pub fn start(args: &[&str]) -> anyhow::Result<Daemon> {
        let port = free_udp_port();
        let ng: SocketAddr = ([127, 0, 0, 1], port).into();
        Self::start_with(None, ng, args)
    }

    /// Starts the daemon (inside network namespace `ns` when given) with ng on
    /// `ng` plus `args`, and waits until it answers ping.
    pub fn start_with(ns: Option<&str>, ng: SocketAddr, args: &[&str]) -> anyhow::Result<Daemon> {
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(daemon_bin());
                c
            }
            None => Command::new(daemon_bin()),
        };
        cmd.args(["--config-file=none", "--foreground", "--log-stderr"])
            .arg(format!("--listen-ng={ng}"))
            .args(args)
            .stdin(Stdio::null());
        if std::env::var_os("RTPENGINE_TEST_LOG").is_none() {
            cmd.stderr(Stdio::null());
        }
        let child = cmd.spawn().context("spawning rtpengine")?;
        let mut d = Daemon { child, ng };
        let probe = ng;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = d.child.try_wait()? {
                bail!("rtpengine exited during startup: {st}");
            }
            let ok = match ns {
                Some(ns) => in_netns(ns, move || ping_once(probe)),
                None => ping_once(probe),
            };
            if ok {
                return Ok(d);
            }
            if Instant::now() > deadline {
                bail!("rtpengine did not answer ping on {ng}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ping_once(ng: SocketAddr) -> bool {
    let Ok(c) = NgClient::new(ng) else {
        return false;
    };
    let _ = c.sock.set_read_timeout(Some(Duration::from_millis(200)));
    c.raw(b"probe d7:command4:pinge")
        .is_ok_and(|r| r == b"probe d6:result4:ponge")
}

/// A connected UDP ng client (like Kamailio's).
pub struct NgClient {
    /// The socket, connected to the daemon.
    pub sock: UdpSocket,
    seq: AtomicU32,
}

impl NgClient {
    /// Connects to `ng`.
    pub fn new(ng: SocketAddr) -> anyhow::Result<NgClient> {
        let bind: SocketAddr = if ng.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse()?;
        let sock = UdpSocket::bind(bind)?;
        sock.connect(ng)?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(NgClient {
            sock,
            seq: AtomicU32::new(0),
        })
    }

    /// Sends raw bytes and returns the raw reply.
    pub fn raw(&self, msg: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.sock.send(msg)?;
        self.recv()
    }

    /// Receives one datagram.
    pub fn recv(&self) -> anyhow::Result<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        let n = self.sock.recv(&mut buf).context("no ng reply")?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Sends a dictionary with a fresh cookie and decodes the reply.
    pub fn call(&self, dict: &Dict) -> anyhow::Result<Dict> {
        // Unique across every client of the process: the daemon caches
        // replies by cookie alone, as upstream does.
        static COOKIES: AtomicU32 = AtomicU32::new(0);
        let cookie = format!(
            "{}_{}_{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed),
            COOKIES.fetch_add(1, Ordering::Relaxed)
        );
        let mut msg = cookie.clone().into_bytes();
        msg.push(b' ');
        msg.extend(encode_bencode(dict));
        let reply = self.raw(&msg)?;
        let body = reply
            .strip_prefix(format!("{cookie} ").as_bytes())
            .context("reply does not echo the cookie")?;
        decode_bencode(body).map_err(|e| anyhow::anyhow!("bad reply bencode: {e}"))
    }
}

/// Builds a dictionary from `(key, value)` pairs.
pub fn dict<const N: usize>(pairs: [(&str, Value); N]) -> Dict {
    pairs
        .into_iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v))
        .collect()
}

/// A string value from a dictionary (panics with context otherwise).
pub fn get_str<'a>(d: &'a Dict, key: &str) -> &'a str {
    d.get(key.as_bytes())
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string '{key}' in {d:?}"))
}

static NS_SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted on drop.
pub struct Netns {
    /// Its name under /var/run/netns.
    pub name: String,
}

impl Netns {
    /// Creates a uniquely named namespace with `lo` up.
    pub fn new(tag: &str) -> anyhow::Result<Netns> {
        require_root();
        let name = format!(
            "rtpe-{tag}-{}-{}",
            std::process::id(),
            NS_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name])?;
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, cmd: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend(cmd);
        sh(&full)
    }

    /// Runs `f` on a thread that has entered the namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.name, f)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.name]);
    }
}

/// Runs `f` on a new thread inside namespace `ns` (setns affects only the
/// calling thread).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        use std::os::fd::AsRawFd;
        // SAFETY: valid namespace fd; affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread panicked")
}

/// Runs a command and returns its stdout; fails with its stderr otherwise.
pub fn sh(cmd: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A daemon in its own network namespace with test addresses on `lo`, as
/// upstream's tests use (203.0.113.x for the daemon, 198.51.100.x for phones).
pub struct Rig {
    /// ng client (its socket lives in the namespace).
    pub ng: NgClient,
    /// The daemon.
    pub daemon: Daemon,
    /// The namespace (dropped last).
    pub ns: Netns,
}

/// Addresses every rig has on `lo`.
pub const RIG_ADDRS: &[&str] = &[
    "203.0.113.1/32",
    "203.0.113.2/32",
    "198.51.100.1/32",
    "198.51.100.3/32",
    "198.51.100.6/32",
    "2001:db8:4321::1/128",
    "2001:db8:4321::2/128",
    "2001:db8::10/128",
];

impl Rig {
    /// Starts a daemon with `args` (default: `-i 203.0.113.1`) in a new namespace.
    pub fn new(tag: &str, args: &[&str]) -> Rig {
        let ns = Netns::new(tag).expect("netns");
        for a in RIG_ADDRS {
            let cmd: &[&str] = if a.contains(':') {
                &["ip", "-6", "addr", "add", a, "dev", "lo", "nodad"]
            } else {
                &["ip", "-4", "addr", "add", a, "dev", "lo"]
            };
            ns.exec(cmd).expect("addr add");
        }
        let mut full: Vec<&str> = Vec::new();
        if !args
            .iter()
            .any(|a| a.starts_with("-i") || a.starts_with("--interface"))
        {
            full.extend(["-i", "203.0.113.1"]);
        }
        full.extend(args);
        let daemon = Daemon::start_with(Some(&ns.name), "127.0.0.1:2223".parse().unwrap(), &full)
            .expect("daemon");
        let ng = ns
            .run(|| NgClient::new("127.0.0.1:2223".parse().unwrap()))
            .expect("ng client");
        Rig { ng, daemon, ns }
    }

    /// A UDP socket bound inside the namespace.
    pub fn socket(&self, addr: &str) -> UdpSocket {
        self.ns.bind_udp(addr)
    }

    /// Sends a command dictionary and returns the reply.
    pub fn cmd(&self, d: Dict) -> Dict {
        self.ng.call(&d).expect("ng reply")
    }
}

/// An offer/answer request.
pub fn sdp_cmd(
    command: &str,
    call_id: &str,
    from: &str,
    to: Option<&str>,
    sdp: &str,
    extra: Vec<(&str, Value)>,
) -> Dict {
    let mut d = dict([
        ("command", Value::str(command)),
        ("call-id", Value::str(call_id)),
        ("from-tag", Value::str(from)),
        ("sdp", Value::str(sdp)),
    ]);
    if let Some(t) = to {
        d.insert(b"to-tag".to_vec(), Value::str(t));
    }
    for (k, v) in extra {
        d.insert(k.as_bytes().to_vec(), v);
    }
    d
}

/// Turns LF-separated SDP text into CRLF SDP.
pub fn crlf(s: &str) -> String {
    s.trim_start()
        .lines()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect()
}

/// Compares an SDP with an expected one where `PORT` matches any port;
/// returns the captured ports in order.
pub fn match_sdp(got: &str, expected: &str) -> Vec<u16> {
    let want = crlf(expected);
    let got_lines: Vec<&str> = got.split("\r\n").collect();
    let want_lines: Vec<&str> = want.split("\r\n").collect();
    assert_eq!(
        got_lines.len(),
        want_lines.len(),
        "line count differs:\n--- got\n{got}\n--- expected\n{want}"
    );
    let mut ports = Vec::new();
    for (g, w) in got_lines.iter().zip(&want_lines) {
        let parts: Vec<&str> = w.split("PORT").collect();
        let mut rest: &str = g;
        let mut ok = true;
        for (i, p) in parts.iter().enumerate() {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => {
                    ok = false;
                    break;
                }
            }
            if i + 1 < parts.len() {
                let n = rest.chars().take_while(|c| c.is_ascii_digit()).count();
                if n == 0 {
                    ok = false;
                    break;
                }
                ports.push(rest[..n].parse().expect("port"));
                rest = &rest[n..];
            }
        }
        assert!(
            ok && rest.is_empty(),
            "line differs: got {g:?}, expected {w:?}\n--- got\n{got}\n--- expected\n{want}"
        );
    }
    ports
}

/// An RTP packet: PT, seq, ts, SSRC, 160 payload bytes of `fill`.
pub fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, fill: u8) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend(seq.to_be_bytes());
    p.extend(ts.to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(fill, 160));
    p
}

/// Receives one datagram and asserts its source and content.
pub fn expect_packet(s: &UdpSocket, from: SocketAddr, payload: &[u8]) {
    let mut buf = [0u8; 2048];
    let (n, src) = s.recv_from(&mut buf).unwrap_or_else(|e| {
        panic!(
            "{}: expected a packet from {from}: {e}",
            s.local_addr().map(|a| a.to_string()).unwrap_or_default()
        )
    });
    assert_eq!(src, from, "packet source");
    assert_eq!(&buf[..n], payload, "packet content");
}

/// Asserts nothing arrives on `s` within 200 ms.
pub fn expect_silence(s: &UdpSocket) {
    let old = s.read_timeout().ok().flatten();
    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let mut buf = [0u8; 2048];
    let r = s.recv_from(&mut buf);
    s.set_read_timeout(old).ok();
    if let Ok((n, src)) = r {
        panic!("unexpected {n}-byte packet from {src}");
    }
}

// ---------------------------------------------------------------------------
// Helpers for the call tests (calls_*.rs).

/// `ip` and `port` as a socket address (`ip` may be IPv4 or IPv6).
pub fn sa(ip: &str, port: u16) -> SocketAddr {
    let ip: std::net::IpAddr = ip.parse().expect("IP address");
    SocketAddr::new(ip, port)
}

/// A list of string values, e.g. for `flags` or `replace`.
pub fn strs(items: &[&str]) -> Value {
    Value::List(items.iter().map(Value::str).collect())
}

/// The `error-reason` of an error reply (asserts `result: error`).
pub fn error_reason(d: &Dict) -> &str {
    assert_eq!(get_str(d, "result"), "error", "expected an error: {d:?}");
    get_str(d, "error-reason")
}

/// The ports of the `m=` lines of an SDP, in order.
pub fn media_ports(sdp: &str) -> Vec<u16> {
    sdp.split("\r\n")
        .filter_map(|l| l.strip_prefix("m="))
        .map(|l| {
            l.split(' ')
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("bad m= line {l:?}"))
        })
        .collect()
}

/// An integer at `path` inside a dictionary (panics with context otherwise).
pub fn get_int(d: &Dict, path: &[&str]) -> i64 {
    let mut v = d
        .get(path[0].as_bytes())
        .unwrap_or_else(|| panic!("no '{}' in {d:?}", path[0]));
    for k in &path[1..] {
        v = v
            .get(k)
            .unwrap_or_else(|| panic!("no '{k}' (path {path:?}) in {d:?}"));
    }
    match v {
        Value::Int(i) => *i,
        other => panic!("{path:?} is not an integer: {other:?}"),
    }
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes; returns
/// whether it became true.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An RTCP sender report with SSRC `ssrc` (28 bytes).
pub fn rtcp_sr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend(ssrc.to_be_bytes());
    p.extend(1u8..=20);
    p
}

/// Sets an integer socket option; panics (naming it `what`) on failure.
pub fn set_int_opt(
    s: &UdpSocket,
    level: libc::c_int,
    opt: libc::c_int,
    value: libc::c_int,
    what: &str,
) {
    use std::os::fd::AsRawFd;
    // SAFETY: valid socket fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "{what}: {}", std::io::Error::last_os_error());
}

/// Enables `IP_RECVTOS` on an IPv4 socket.
pub fn enable_recvtos(s: &UdpSocket) {
    set_int_opt(s, libc::IPPROTO_IP, libc::IP_RECVTOS, 1, "IP_RECVTOS");
}

/// Receives one datagram on an IPv4 socket with `IP_RECVTOS` enabled
/// (see [`enable_recvtos`]); returns payload, source and the TOS byte.
/// Honours the socket's read timeout.
pub fn recv_with_tos(s: &UdpSocket) -> std::io::Result<(Vec<u8>, SocketAddr, u8)> {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 2048];
    let mut cbuf = [0u64; 16];
    // SAFETY: zeroed sockaddr_in / msghdr are valid initial values.
    let mut from: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: msg points at live buffers of the stated sizes.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut tos = None;
    // SAFETY: iterating the control buffer the kernel filled, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_TOS {
                tos = Some(*libc::CMSG_DATA(c));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let src = SocketAddr::from((
        std::net::Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr)),
        u16::from_be(from.sin_port),
    ));
    let tos = tos.expect("no IP_TOS control message (IP_RECVTOS not enabled?)");
    Ok((buf[..n as usize].to_vec(), src, tos))
}

/// Number of open file descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/<pid>/fd")
        .count()
}

impl Rig {
    /// Sends a command with `extra` keys, e.g. `rig.ng_cmd("list", vec![])`.
    pub fn ng_cmd(&self, command: &str, extra: Vec<(&str, Value)>) -> Dict {
        let mut d = dict([("command", Value::str(command))]);
        for (k, v) in extra {
            d.insert(k.as_bytes().to_vec(), v);
        }
        self.cmd(d)
    }

    /// Offer (asserting `result: ok`); returns the rewritten SDP.
    pub fn offer(&self, call_id: &str, from: &str, sdp: &str, extra: Vec<(&str, Value)>) -> String {
        let r = self.cmd(sdp_cmd("offer", call_id, from, None, &crlf(sdp), extra));
        assert_eq!(get_str(&r, "result"), "ok", "offer failed: {r:?}");
        get_str(&r, "sdp").to_string()
    }

    /// Answer (asserting `result: ok`); returns the rewritten SDP.
    pub fn answer(
        &self,
        call_id: &str,
        from: &str,
        to: &str,
        sdp: &str,
        extra: Vec<(&str, Value)>,
    ) -> String {
        let r = self.cmd(sdp_cmd(
            "answer",
            call_id,
            from,
            Some(to),
            &crlf(sdp),
            extra,
        ));
        assert_eq!(get_str(&r, "result"), "ok", "answer failed: {r:?}");
        get_str(&r, "sdp").to_string()
    }

    /// `query` for a call.
    pub fn query(&self, call_id: &str) -> Dict {
        self.ng_cmd("query", vec![("call-id", Value::str(call_id))])
    }

    /// `delete` of a whole call with `delete-delay: 0`; asserts `result: ok`
    /// without a warning.
    pub fn delete_now(&self, call_id: &str) {
        let r = self.ng_cmd(
            "delete",
            vec![
                ("call-id", Value::str(call_id)),
                ("delete-delay", Value::Int(0)),
            ],
        );
        assert_eq!(get_str(&r, "result"), "ok", "delete failed: {r:?}");
        assert!(!r.contains_key(&b"warning"[..]), "delete warned: {r:?}");
    }

    /// The call-ids `list` returns (limit 100000).
    pub fn list_calls(&self) -> Vec<String> {
        let r = self.ng_cmd("list", vec![("limit", Value::Int(100_000))]);
        assert_eq!(get_str(&r, "result"), "ok", "list failed: {r:?}");
        match r.get(&b"calls"[..]) {
            Some(Value::List(l)) => l
                .iter()
                .map(|v| v.as_str().expect("call-id string").to_string())
                .collect(),
            other => panic!("no calls list: {other:?}"),
        }
    }

    /// `statistics` → the `statistics` dictionary.
    pub fn statistics(&self) -> Dict {
        let r = self.ng_cmd("statistics", vec![]);
        match r.get(&b"statistics"[..]) {
            Some(Value::Dict(d)) => d.clone(),
            other => panic!("no statistics dict: {other:?} in {r:?}"),
        }
    }

    /// Binds a UDP socket inside the namespace, returning the error instead
    /// of panicking (to check whether the daemon still holds a port).
    pub fn try_bind(&self, addr: SocketAddr) -> std::io::Result<UdpSocket> {
        self.ns.run(move || UdpSocket::bind(addr))
    }
}

// ---------------------------------------------------------------------------
// Helpers for the real-client tests (tests/tests/clients_*.rs).

/// A free TCP port on 127.0.0.1 (racy by nature, fine for tests).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free tcp port")
}

/// The `tests/` directory of the workspace (node scripts, Kamailio config,
/// SIPp scenarios live below it).
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Waits until a TCP listener accepts on `addr` (at most 5 s).
pub fn wait_tcp(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing accepts on {addr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// What [`run_timeout`] saw.
#[derive(Debug)]
pub struct Ran {
    /// Exit code (`None`: killed by a signal, or by the timeout).
    pub code: Option<i32>,
    /// Whether the timeout killed it.
    pub timed_out: bool,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Ran {
    /// Both streams, for assertion messages.
    pub fn transcript(&self) -> String {
        format!(
            "exit {:?}{}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            if self.timed_out { " (timed out)" } else { "" },
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `cmd` to completion with stdout and stderr captured, killing it after
/// `timeout` (clients like the Perl one wait forever for a reply).
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> anyhow::Result<Ran> {
    use std::io::Read as _;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {cmd:?}"))?;
    let mut out = child.stdout.take().context("stdout")?;
    let mut err = child.stderr.take().context("stderr")?;
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    Ok(Ran {
        code: status.code(),
        timed_out,
        stdout,
        stderr,
    })
}

/// Follows `path` through nested dictionaries (list elements by index).
pub fn dig<'a>(d: &'a Dict, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = d.get(first.as_bytes())?;
    for k in rest {
        v = match v {
            Value::Dict(d) => d.get(k.as_bytes())?,
            Value::List(l) => l.get(k.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// An integer at `path` (see [`dig`]).
pub fn dig_int(d: &Dict, path: &[&str]) -> Option<i64> {
    match dig(d, path)? {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

impl Daemon {
    /// Like [`Daemon::start_with`], but with `RTPENGINE_LOG=<filter>` and
    /// stderr appended to `log` (to assert on what the daemon logged).
    pub fn start_logged(
        ns: Option<&str>,
        ng: SocketAddr,
        args: &[&str],
        filter: &str,
        log: &std::path::Path,
    ) -> anyhow::Result<Daemon> {
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(daemon_bin());
                c
            }
            None => Command::new(daemon_bin()),
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        cmd.args(["--config-file=none", "--foreground", "--log-stderr"])
            .arg(format!("--listen-ng={ng}"))
            .args(args)
            .env("RTPENGINE_LOG", filter)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        let child = cmd.spawn().context("spawning rtpengine")?;
        let mut d = Daemon { child, ng };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = d.child.try_wait()? {
                bail!("rtpengine exited during startup: {st}");
            }
            let ok = match ns {
                Some(ns) => in_netns(ns, move || ping_once(ng)),
                None => ping_once(ng),
            };
            if ok {
                return Ok(d);
            }
            if Instant::now() > deadline {
                bail!("rtpengine did not answer ping on {ng}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

// ---------------------------------------------------------------------------
// Three namespaces for in-kernel forwarding (offload.rs, clients_kamailio.rs).

/// caller (c0) ↔ (p0) proxy (p1) ↔ (e0) callee, IPv4 and IPv6, joined by
/// veth pairs with static neighbours; a private bpffs for the daemon's pins.
///
/// Set up for native XDP on the proxy's p0/p1 (kernel-offload.md B7): tx
/// checksum offload is off on the senders c0/e0 and an XDP_PASS program sits
/// on each receiving peer. The proxy forwards (sysctl), so it is also a plain
/// router between caller and callee. Everything goes away on drop.
pub struct Topology {
    /// The caller's namespace (c0).
    pub caller: Netns,
    /// The proxy's namespace (p0, p1): where the daemon runs.
    pub proxy: Netns,
    /// The callee's namespace (e0).
    pub callee: Netns,
    _peers: Vec<aya::Ebpf>,
    /// Mount point of the private bpffs.
    pub pins: PathBuf,
}

impl Topology {
    /// Caller's IPv4 address (c0).
    pub const CALLER_V4: &'static str = "10.1.0.2";
    /// Proxy's caller-side IPv4 address (p0, interface `int`).
    pub const PROXY_INT_V4: &'static str = "10.1.0.1";
    /// Proxy's callee-side IPv4 address (p1, interface `ext`).
    pub const PROXY_EXT_V4: &'static str = "10.2.0.1";
    /// Callee's IPv4 address (e0).
    pub const CALLEE_V4: &'static str = "10.2.0.2";
    /// Caller's IPv6 address (c0).
    pub const CALLER_V6: &'static str = "fd00:1::2";
    /// Proxy's caller-side IPv6 address (p0).
    pub const PROXY_INT_V6: &'static str = "fd00:1::1";
    /// Proxy's callee-side IPv6 address (p1).
    pub const PROXY_EXT_V6: &'static str = "fd00:2::1";
    /// Callee's IPv6 address (e0).
    pub const CALLEE_V6: &'static str = "fd00:2::2";

    /// Builds the topology; `tag` makes the namespace names unique.
    pub fn new(tag: &str) -> Topology {
        require_root();
        let caller = Netns::new(&format!("{tag}c")).unwrap();
        let proxy = Netns::new(&format!("{tag}p")).unwrap();
        let callee = Netns::new(&format!("{tag}e")).unwrap();
        for (a, ans, amac, b, bmac) in [
            (
                "c0",
                &caller,
                "02:00:00:00:01:02",
                "p0",
                "02:00:00:00:01:01",
            ),
            (
                "e0",
                &callee,
                "02:00:00:00:02:02",
                "p1",
                "02:00:00:00:02:01",
            ),
        ] {
            sh(&[
                "ip",
                "link",
                "add",
                a,
                "netns",
                &ans.name,
                "address",
                amac,
                "type",
                "veth",
                "peer",
                "name",
                b,
                "netns",
                &proxy.name,
                "address",
                bmac,
            ])
            .unwrap();
        }
        run_all(
            &caller,
            &[
                "ip addr add 10.1.0.2/24 dev c0",
                "ip -6 addr add fd00:1::2/64 dev c0 nodad",
                "ip link set c0 up",
                "ip route add default via 10.1.0.1",
                "ip -6 route add default via fd00:1::1",
                // Locally generated packets are CHECKSUM_PARTIAL; XDP never
                // completes them (kernel-offload.md B7).
                "ethtool -K c0 tx off",
                // Static neighbours: the first packets must not wait for ARP/ND.
                "ip neigh replace 10.1.0.1 lladdr 02:00:00:00:01:01 dev c0 nud permanent",
                "ip -6 neigh replace fd00:1::1 lladdr 02:00:00:00:01:01 dev c0 nud permanent",
            ],
        );
        run_all(
            &callee,
            &[
                "ip addr add 10.2.0.2/24 dev e0",
                "ip -6 addr add fd00:2::2/64 dev e0 nodad",
                "ip link set e0 up",
                "ip route add default via 10.2.0.1",
                "ip -6 route add default via fd00:2::1",
                "ethtool -K e0 tx off",
                "ip neigh replace 10.2.0.1 lladdr 02:00:00:00:02:01 dev e0 nud permanent",
                "ip -6 neigh replace fd00:2::1 lladdr 02:00:00:00:02:01 dev e0 nud permanent",
            ],
        );
        run_all(
            &proxy,
            &[
                "ip addr add 10.1.0.1/24 dev p0",
                "ip addr add 10.2.0.1/24 dev p1",
                "ip -6 addr add fd00:1::1/64 dev p0 nodad",
                "ip -6 addr add fd00:2::1/64 dev p1 nodad",
                "ip link set p0 up",
                "ip link set p1 up",
                "sysctl -qw net.ipv4.conf.all.forwarding=1",
                "sysctl -qw net.ipv6.conf.all.forwarding=1",
                "ip neigh replace 10.1.0.2 lladdr 02:00:00:00:01:02 dev p0 nud permanent",
                "ip -6 neigh replace fd00:1::2 lladdr 02:00:00:00:01:02 dev p0 nud permanent",
                "ip neigh replace 10.2.0.2 lladdr 02:00:00:00:02:02 dev p1 nud permanent",
                "ip -6 neigh replace fd00:2::2 lladdr 02:00:00:00:02:02 dev p1 nud permanent",
            ],
        );
        let peers = vec![
            xdp_pass_program(&caller, "c0"),
            xdp_pass_program(&callee, "e0"),
        ];
        // A private bpffs outside /sys: `ip netns exec` gives the daemon its own
        // /sys, and the test (and `--dump-table`) must see the daemon's pins.
        let pins = std::env::temp_dir().join(format!("rtpe-bpffs-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&pins).unwrap();
        sh(&["mount", "-t", "bpf", "bpf", pins.to_str().unwrap()]).unwrap();
        Topology {
            caller,
            proxy,
            callee,
            _peers: peers,
            pins,
        }
    }

    /// The directory to give the daemon as `--bpf-pin-dir`.
    pub fn pin_dir(&self) -> String {
        self.pins.join("v1").to_string_lossy().into_owned()
    }

    /// `rtpengine --dump-table=<table>` against the daemon's pins in
    /// [`Topology::pin_dir`].
    pub fn dump_table(&self, table: u32) -> String {
        dump_table(&self.pin_dir(), table)
    }
}

/// `rtpengine --dump-table=<table> --bpf-pin-dir=<pin_dir>` (the daemon's
/// pins are read from bpffs; no namespace needed).
pub fn dump_table(pin_dir: &str, table: u32) -> String {
    sh(&[
        daemon_bin().to_str().unwrap(),
        "--config-file=none",
        &format!("--dump-table={table}"),
        &format!("--bpf-pin-dir={pin_dir}"),
    ])
    .unwrap()
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = sh(&["umount", self.pins.to_str().unwrap_or_default()]);
        let _ = std::fs::remove_dir_all(&self.pins);
    }
}

/// The `N` of `kernel table T: N flow(s)` in a `--dump-table` output.
pub fn dumped_flows(dump: &str) -> Option<usize> {
    dump.lines()
        .find_map(|l| l.strip_prefix("kernel table ")?.split_once(": "))
        .and_then(|(_, rest)| rest.strip_suffix(" flow(s)")?.parse().ok())
}

/// Runs space-separated commands inside `ns`, panicking on the first failure.
fn run_all(ns: &Netns, cmds: &[&str]) {
    for c in cmds {
        ns.exec(&c.split(' ').collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("{c}: {e}"));
    }
}

/// An XDP_PASS program (the daemon's, with empty maps) in native mode on a
/// receiving veth peer: veth's native XDP redirect only delivers to a peer
/// that has one (kernel-offload.md B7).
pub fn xdp_pass_program(ns: &Netns, dev: &'static str) -> aya::Ebpf {
    ns.run(move || {
        let mut ebpf = aya::Ebpf::load(rtpengine::kernel::EBPF_OBJECT).expect("load");
        let prog: &mut aya::programs::Xdp = ebpf
            .program_mut("rtpengine_xdp")
            .expect("program")
            .try_into()
            .expect("xdp");
        prog.load().expect("verifier");
        prog.attach(dev, aya::programs::XdpMode::Driver)
            .expect("attach");
        ebpf
    })
}

impl Netns {
    /// A UDP socket bound to `addr` inside the namespace (2 s read timeout).
    pub fn bind_udp(&self, addr: &str) -> UdpSocket {
        let addr: SocketAddr = addr.parse().expect("socket address");
        let s = self
            .run(move || UdpSocket::bind(addr))
            .expect("bind in netns");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        s
    }

    /// `Udp: InCsumErrors` of `/proc/net/snmp` inside the namespace.
    pub fn udp_in_csum_errors(&self) -> u64 {
        let snmp = self.exec(&["cat", "/proc/net/snmp"]).unwrap();
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
        let idx = names
            .split_whitespace()
            .position(|n| n == "InCsumErrors")
            .unwrap();
        values.split_whitespace().nth(idx).unwrap().parse().unwrap()
    }
}

impl Daemon {
    /// Stops the daemon cleanly (SIGTERM, as an init system would) and waits
    /// for it; `Drop` kills it instead, like a crash.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: plain kill(2) on our own child.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            bail!("kill: {}", std::io::Error::last_os_error());
        }
        Ok(self.child.wait()?)
    }
}

/// Upstream's "basic, forward" offer (t/auto-daemon-tests-heuristic.pl): the
/// caller at 198.51.100.1:2010 offers PCMU and PCMA. LF line ends; `crlf()`
/// turns it into wire SDP.
pub const OFFER: &str = "
v=0
o=- 1545997027 1 IN IP4 198.51.100.1
s=tester
t=0 0
m=audio 2010 RTP/AVP 0 8
c=IN IP4 198.51.100.1
a=sendrecv
";

/// The answer to [`OFFER`]: the callee at 198.51.100.3:2012.
pub const ANSWER: &str = "
v=0
o=- 1545997027 1 IN IP4 198.51.100.3
s=tester
t=0 0
m=audio 2012 RTP/AVP 0 8
c=IN IP4 198.51.100.3
a=sendrecv
";
