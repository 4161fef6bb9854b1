//! A WebRTC endpoint the daemon is checked against: aiortc (ICE, DTLS-SRTP,
//! rtcp-mux, SAVPF) through `tests/python/webrtc_peer.py`, run inside a
//! test namespace, and the plain-RTP side of a bridged call.

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
    /// Peer connection state (`connected` once DTLS is up).
    pub state: String,
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

    fn send(&mut self, msg: Json) {
        self.0.tell(&msg.to_string());
    }

    fn reply(&mut self) -> Json {
        let line = self.0.reply();
        let v: Json =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("peer reply {line:?}: {e}"));
        if let Some(e) = v.get("error") {
            panic!("aiortc: {e}");
        }
        v
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
            state: v["state"].as_str().unwrap_or_default().to_owned(),
        }
    }
}

/// The plain-RTP side: sends PCMU (payload `byte`) to `to` every 20 ms for
/// `secs` and returns the packets it received meanwhile.
pub fn plain_side(sock: &UdpSocket, to: SocketAddr, byte: u8, secs: f64) -> Vec<Vec<u8>> {
    let start = Instant::now();
    let mut next = start;
    let mut got = Vec::new();
    let mut seq = 0u16;
    let mut buf = [0u8; 2048];
    while start.elapsed().as_secs_f64() < secs {
        let now = Instant::now();
        if now >= next {
            let pkt = rtp(0, seq, 160 * u32::from(seq), 0x5157_0001, byte);
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
