//! A WebRTC endpoint the daemon is checked against: aiortc (ICE, DTLS-SRTP,
//! rtcp-mux, SAVPF) through `tests/python/webrtc_peer.py`, run inside a
//! test namespace, and the plain-RTP side of a bridged call; and a full ICE
//! agent alone (aioice, `tests/python/ice_peer.py`).

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::netns::Netns;
use crate::packets::rtp;
use crate::python::PyPeer;

/// The sample value the peer sends (PCMU byte 0xCE); 0xCE decodes to 988.
pub const PEER_SAMPLE_BYTE: u8 = 0xce;
/// What PCMU 0xCE decodes to: the peer reports it when our packets arrive.
pub const DECODED_CE: i64 = 988;

/// One aiortc peer connection.
pub struct WebrtcPeer(PyPeer);

/// What the peer saw while it ran.
#[derive(Debug)]
pub struct PeerReport {
    /// Audio frames with sound received.
    pub frames: u64,
    /// The distinct sample values in them.
    pub samples: Vec<i64>,
    /// ICE connection state.
    pub ice: String,
    /// Its ICE role: `controlling` or `controlled`.
    pub ice_role: String,
    /// Peer connection state (`connected` once DTLS is up).
    pub state: String,
    /// Frames with sound and their distinct sample values, per section
    /// (by mid).
    pub tracks: BTreeMap<String, (u64, Vec<i64>)>,
}

impl WebrtcPeer {
    /// Starts a peer in `ns` whose only host candidate is `address`.
    pub fn start(ns: &Netns, address: &str) -> WebrtcPeer {
        WebrtcPeer(PyPeer::start(
            Some(&ns.name),
            "webrtc_peer.py",
            &[address],
            "aiortc peer",
        ))
    }

    /// A peer with two audio sections bundled on one transport
    /// (max-bundle): PCMU in the first, PCMA in the second.
    pub fn start_bundled(ns: &Netns, address: &str) -> WebrtcPeer {
        WebrtcPeer(PyPeer::start(
            Some(&ns.name),
            "webrtc_peer.py",
            &[address, "bundle"],
            "aiortc peer",
        ))
    }

    fn send(&mut self, msg: Json) {
        self.0.tell(&msg.to_string());
    }

    fn reply(&mut self) -> Json {
        parse_reply(&self.0.reply(), "aiortc")
    }

    fn sdp(&mut self, msg: Json) -> String {
        self.send(msg);
        self.reply()["sdp"].as_str().expect("sdp").to_owned()
    }

    /// A new offer (with all candidates gathered).
    pub fn offer(&mut self) -> String {
        self.sdp(json!({"offer": true}))
    }

    /// The answer to `offer`.
    pub fn answer_to(&mut self, offer: &str) -> String {
        self.sdp(json!({ "answer_to": offer }))
    }

    /// Applies the answer to our offer.
    pub fn remote_answer(&mut self, answer: &str) {
        self.send(json!({ "remote_answer": answer }));
        self.reply();
    }

    /// Lets the peer send and receive for `secs`; read the result with
    /// [`WebrtcPeer::report`].
    pub fn run(&mut self, secs: f64) {
        self.send(json!({ "run": secs }));
    }

    /// What the peer saw during its last [`WebrtcPeer::run`].
    pub fn report(&mut self) -> PeerReport {
        let v = self.reply();
        PeerReport {
            frames: v["frames"].as_u64().unwrap_or(0),
            samples: v["samples"]
                .as_array()
                .map(|a| a.iter().filter_map(Json::as_i64).collect())
                .unwrap_or_default(),
            ice: v["ice"].as_str().unwrap_or_default().to_owned(),
            ice_role: v["ice_role"].as_str().unwrap_or_default().to_owned(),
            state: v["state"].as_str().unwrap_or_default().to_owned(),
            tracks: v["tracks"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(mid, t)| {
                            let samples = t["samples"]
                                .as_array()
                                .map(|a| a.iter().filter_map(Json::as_i64).collect())
                                .unwrap_or_default();
                            (mid.clone(), (t["frames"].as_u64().unwrap_or(0), samples))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A Python peer's reply line (`tests/python/line_peer.py`); panics with
/// the error it reports.
fn parse_reply(line: &str, who: &str) -> Json {
    let v: Json = serde_json::from_str(line).unwrap_or_else(|e| panic!("peer reply {line:?}: {e}"));
    if let Some(e) = v.get("error") {
        panic!("{who}: {e}");
    }
    v
}

/// The plain-RTP side: sends PCMU (payload `byte`) to `to` every 20 ms for
/// `secs` and returns the packets it received meanwhile. Each call is a new
/// RTP source (its own SSRC, sequence numbers from 0): a source never
/// restarts its sequence (RFC 3550), and SRTP made of it by the daemon
/// would be replays under keys that are still in force.
pub fn plain_side(sock: &UdpSocket, to: SocketAddr, byte: u8, secs: f64) -> Vec<Vec<u8>> {
    static SOURCES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let ssrc = 0x5157_0000 + SOURCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let start = Instant::now();
    let mut next = start;
    let mut got = Vec::new();
    let mut seq = 0u16;
    let mut buf = [0u8; 2048];
    while start.elapsed().as_secs_f64() < secs {
        let now = Instant::now();
        if now >= next {
            let pkt = rtp(0, seq, 160 * u32::from(seq), ssrc, byte);
            let _ = sock.send_to(&pkt, to);
            seq = seq.wrapping_add(1);
            next += Duration::from_millis(20);
            continue;
        }
        let wait = (next - now).max(Duration::from_millis(1));
        sock.set_read_timeout(Some(wait)).expect("timeout");
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            got.push(buf[..n].to_vec());
        }
    }
    got
}

/// A full ICE agent as a SIP phone would run it (aioice in
/// `tests/python/ice_peer.py`), in a network namespace: its own checks,
/// nomination or being nominated, one or two components (RTP, RTCP), and
/// data on the selected pairs.
pub struct IcePeer(PyPeer);

/// One side's ICE: credentials and `a=candidate` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceLines {
    /// `a=ice-ufrag`.
    pub ufrag: String,
    /// `a=ice-pwd`.
    pub pwd: String,
    /// The `a=candidate:` values.
    pub candidates: Vec<String>,
}

impl IceLines {
    /// The ICE lines of the first media section of `sdp`.
    pub fn from_sdp(sdp: &str) -> IceLines {
        let value = |p: &str| {
            sdp.lines()
                .map(str::trim_end)
                .filter_map(|l| l.strip_prefix(p))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        IceLines {
            ufrag: value("a=ice-ufrag:").pop().expect("a=ice-ufrag"),
            pwd: value("a=ice-pwd:").pop().expect("a=ice-pwd"),
            candidates: value("a=candidate:"),
        }
    }

    /// As SDP attribute lines (`\n`-terminated).
    pub fn sdp_lines(&self) -> String {
        let mut s = format!("a=ice-ufrag:{}\na=ice-pwd:{}\n", self.ufrag, self.pwd);
        for c in &self.candidates {
            s.push_str(&format!("a=candidate:{c}\n"));
        }
        s
    }

    /// The port of the candidate of `component`.
    pub fn port(&self, component: u8) -> u16 {
        self.candidates
            .iter()
            .map(|c| c.split_whitespace().collect::<Vec<_>>())
            .find(|f| f[1] == component.to_string())
            .and_then(|f| f[5].parse().ok())
            .expect("candidate of the component")
    }
}

/// What [`IcePeer::connect`] ended with.
#[derive(Debug)]
pub struct IceOutcome {
    /// The peer's role at the end.
    pub controlling: bool,
    /// The selected pair's remote address per component.
    pub selected: BTreeMap<u8, SocketAddr>,
    /// Checks the other agent sent, per component.
    pub checks: BTreeMap<u8, u64>,
}

impl IcePeer {
    /// Starts a peer in `ns` whose only host address is `address`.
    pub fn start(ns: &Netns, address: &str) -> IcePeer {
        IcePeer(PyPeer::start(
            Some(&ns.name),
            "ice_peer.py",
            &[address],
            "aioice peer",
        ))
    }

    fn ask(&mut self, msg: Json) -> Json {
        parse_reply(&self.0.ask(&msg.to_string()), "aioice")
    }

    /// A new agent (a second one is an ICE restart: new credentials and
    /// ports) with `components`; returns its ICE lines.
    pub fn agent(&mut self, components: u8, controlling: bool) -> IceLines {
        let v = self.ask(json!({"start": {"components": components, "controlling": controlling}}));
        IceLines {
            ufrag: v["ufrag"].as_str().expect("ufrag").to_owned(),
            pwd: v["pwd"].as_str().expect("pwd").to_owned(),
            candidates: v["candidates"]
                .as_array()
                .expect("candidates")
                .iter()
                .filter_map(Json::as_str)
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Runs the checks against `remote` until every component has a
    /// nominated pair (panics after 10 s).
    pub fn connect(&mut self, remote: &IceLines) -> IceOutcome {
        let v = self.ask(json!({"connect": {
            "ufrag": remote.ufrag, "pwd": remote.pwd, "candidates": remote.candidates,
        }}));
        IceOutcome {
            controlling: v["controlling"].as_bool().expect("controlling"),
            selected: v["selected"]
                .as_object()
                .expect("selected")
                .iter()
                .map(|(k, a)| {
                    let addr = format!("{}:{}", a[0].as_str().expect("host"), a[1]);
                    (k.parse().expect("component"), addr.parse().expect("addr"))
                })
                .collect(),
            checks: v["checks"]
                .as_object()
                .expect("checks")
                .iter()
                .map(|(k, n)| (k.parse().expect("component"), n.as_u64().unwrap_or(0)))
                .collect(),
        }
    }

    /// Sends `count` copies of each payload on its component (20 ms
    /// apart) while receiving, for `secs` more; returns what arrived per
    /// component.
    pub fn exchange(
        &mut self,
        send: &[(u8, &[u8], usize)],
        secs: f64,
    ) -> BTreeMap<u8, Vec<Vec<u8>>> {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let send: serde_json::Map<String, Json> = send
            .iter()
            .map(|(c, p, n)| (c.to_string(), json!([hex(p), n])))
            .collect();
        let v = self.ask(json!({"exchange": {"send": send, "secs": secs}}));
        v["got"]
            .as_object()
            .expect("got")
            .iter()
            .map(|(k, l)| {
                let pkts = l
                    .as_array()
                    .expect("list")
                    .iter()
                    .filter_map(Json::as_str)
                    .map(|h| {
                        (0..h.len() / 2)
                            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
                            .collect()
                    })
                    .collect();
                (k.parse().expect("component"), pkts)
            })
            .collect()
    }
}
