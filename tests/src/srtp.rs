//! An SRTP endpoint the daemon is checked against: libsrtp 2 (the reference
//! implementation) through `tests/python/srtp_peer.py`, in the virtual
//! environment `cargo xtask test` installs (`target/pyenv`).

use crate::python::PyPeer;

/// One `a=crypto` line of an SDP: tag, suite, base64 key‖salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoLine {
    pub tag: u32,
    pub suite: String,
    pub key: String,
}

impl CryptoLine {
    /// `a=crypto:<tag> <suite> inline:<key>`.
    pub fn attr(&self) -> String {
        format!("a=crypto:{} {} inline:{}", self.tag, self.suite, self.key)
    }
}

/// The `a=crypto` lines of `sdp`, in order.
pub fn crypto_lines(sdp: &str) -> Vec<CryptoLine> {
    sdp.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=crypto:"))
        .map(|v| {
            let mut f = v.split_whitespace();
            let tag = f.next().and_then(|t| t.parse().ok()).expect("tag");
            let suite = f.next().expect("suite").to_string();
            let key = f
                .next()
                .and_then(|k| k.strip_prefix("inline:"))
                .expect("inline key")
                .split('|')
                .next()
                .unwrap_or_default()
                .to_string();
            CryptoLine { tag, suite, key }
        })
        .collect()
}

/// A one-section IPv4 audio SDP (PCMU) from `addr`:`port` with `protocol`
/// and these `a=crypto` lines.
pub fn sdes_sdp(addr: &str, port: u16, protocol: &str, crypto: &[CryptoLine]) -> String {
    let mut s = format!(
        "v=0\no=- 1 1 IN IP4 {addr}\ns=-\nt=0 0\nm=audio {port} {protocol} 0\nc=IN IP4 {addr}\na=sendrecv\n"
    );
    for c in crypto {
        s.push_str(&c.attr());
        s.push('\n');
    }
    s
}

/// A libsrtp endpoint: sessions per key and direction persist across calls.
pub struct SrtpPeer(PyPeer);

impl SrtpPeer {
    /// Starts the peer.
    pub fn start() -> SrtpPeer {
        SrtpPeer(PyPeer::start(None, "srtp_peer.py", &[], "libsrtp peer"))
    }

    fn run(
        &mut self,
        op: &str,
        rtcp: bool,
        key: &CryptoLine,
        pkt: &[u8],
    ) -> Result<Vec<u8>, String> {
        let hex: String = pkt.iter().map(|b| format!("{b:02x}")).collect();
        let kind = if rtcp { "rtcp" } else { "rtp" };
        let line = self
            .0
            .ask(&format!("{op} {kind} {} {} {hex}", key.suite, key.key));
        let line = line.trim();
        if let Some(e) = line.strip_prefix("error") {
            return Err(e.trim().to_string());
        }
        (0..line.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&line[i..i + 2], 16).map_err(|e| e.to_string()))
            .collect()
    }

    /// Protects `pkt` (SRTCP if `rtcp`) with `key`, as its sender would.
    pub fn protect(&mut self, rtcp: bool, key: &CryptoLine, pkt: &[u8]) -> Vec<u8> {
        self.run("protect", rtcp, key, pkt)
            .unwrap_or_else(|e| panic!("libsrtp protect with {key:?}: {e}"))
    }

    /// Unprotects `pkt` (SRTCP if `rtcp`) with `key`, as its receiver would.
    pub fn unprotect(
        &mut self,
        rtcp: bool,
        key: &CryptoLine,
        pkt: &[u8],
    ) -> Result<Vec<u8>, String> {
        self.run("unprotect", rtcp, key, pkt)
    }
}
