//! A daemon with its ng client in a namespace with several local addresses:
//! the rig most call tests use.

use std::net::{SocketAddr, UdpSocket};

use rtpengine::ng::value::{Dict, Value};

use crate::daemon::Daemon;
use crate::netns::Netns;
use crate::ng::{dict, get_str, NgClient};
use crate::sdp::{crlf, media_ports, ANSWER, OFFER};
use crate::util::sa;

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

    /// Offers [`OFFER`] from tag `ft` and answers it with [`ANSWER`] from
    /// `tt`, with the keys of `extra` in both requests. Returns where phone
    /// B and phone A must send: the daemon's port in the rewritten offer
    /// (relayed to A) and in the rewritten answer (relayed to B), on the
    /// default interface.
    pub fn answered_call(
        &self,
        call_id: &str,
        extra: impl Fn() -> Vec<(&'static str, Value)>,
    ) -> (SocketAddr, SocketAddr) {
        let pa = media_ports(&self.offer(call_id, "ft", OFFER, extra()))[0];
        let pb = media_ports(&self.answer(call_id, "ft", "tt", ANSWER, extra()))[0];
        (sa("203.0.113.1", pa), sa("203.0.113.1", pb))
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

// ---------------------------------------------------------------------------
// Helpers for the real-client tests (tests/tests/clients_*.rs).
