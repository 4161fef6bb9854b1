//! An ng client over UDP, and helpers to build requests and read replies.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context as _;

use rtpengine::ng::bencode::{decode_bencode, encode_bencode};
use rtpengine::ng::value::{Dict, Value};

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

/// A list of string values, e.g. for `flags` or `replace`.
pub fn strs(items: &[&str]) -> Value {
    Value::List(items.iter().map(Value::str).collect())
}

/// The `error-reason` of an error reply (asserts `result: error`).
pub fn error_reason(d: &Dict) -> &str {
    assert_eq!(get_str(d, "result"), "error", "expected an error: {d:?}");
    get_str(d, "error-reason")
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
