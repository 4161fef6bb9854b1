//! Payload classification: which packets of an offloaded flow still belong to
//! userspace (STUN for ICE consent checks, DTLS handshakes, RTCP arriving on
//! an RTP port that is not muxed), and RTP/RTCP demultiplexing.
//!
//! The dataplane reads only fixed-size prefixes, so the helpers take the payload
//! length and the first bytes separately; [`is_stun_packet`] and
//! [`looks_dtls_packet`] are slice conveniences for userspace.

/// STUN magic cookie (RFC 5389), found at payload offset 4.
pub const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// Size of a STUN header; shorter payloads are never STUN.
pub const STUN_HEADER_LEN: usize = 20;

/// Whether a UDP payload of `payload_len` bytes starting with `head` looks like
/// STUN: at least a STUN header long, with the magic cookie at offset 4.
/// (Deliberately looser than rtpengine's check: anything that might be STUN goes
/// to userspace.)
#[inline(always)]
pub fn is_stun(payload_len: usize, head: &[u8; 8]) -> bool {
    payload_len >= STUN_HEADER_LEN
        && head[4] == STUN_MAGIC_COOKIE[0]
        && head[5] == STUN_MAGIC_COOKIE[1]
        && head[6] == STUN_MAGIC_COOKIE[2]
        && head[7] == STUN_MAGIC_COOKIE[3]
}

/// Whether a payload whose first byte is `first` looks like DTLS (RFC 7983
/// demultiplexing: content types 20..=63; RTP/RTCP start at 128).
#[inline(always)]
pub fn looks_dtls(first: u8) -> bool {
    (20..=63).contains(&first)
}

/// Whether a payload starting with `head` looks like RTCP (RFC 5761
/// demultiplexing: version 2, packet type 192..=223, which RTP payload
/// types never use).
#[inline(always)]
pub fn is_rtcp(head: &[u8; 2]) -> bool {
    head[0] >> 6 == 2 && head[1] >= 192 && head[1] <= 223
}

/// [`is_rtcp`] on a whole payload (an RTCP packet has at least 8 bytes).
pub fn is_rtcp_packet(payload: &[u8]) -> bool {
    payload.len() >= 8 && is_rtcp(&[payload[0], payload[1]])
}

/// [`is_stun`] on a whole payload.
pub fn is_stun_packet(payload: &[u8]) -> bool {
    match payload.get(..8) {
        Some(h) => {
            let mut head = [0u8; 8];
            head.copy_from_slice(h);
            is_stun(payload.len(), &head)
        }
        None => false,
    }
}

/// [`looks_dtls`] on a whole payload (false when empty).
pub fn looks_dtls_packet(payload: &[u8]) -> bool {
    payload.first().is_some_and(|&b| looks_dtls(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtcp() {
        assert!(is_rtcp_packet(&[0x80, 200, 0, 6, 0, 0, 0, 1]));
        assert!(is_rtcp_packet(&[0x81, 223, 0, 1, 0, 0, 0, 1]));
        assert!(!is_rtcp_packet(&[0x80, 0, 0, 1, 0, 0, 0, 1]), "RTP PT 0");
        assert!(
            !is_rtcp_packet(&[0x80, 96 | 0x80, 0, 1, 0, 0, 0, 1]),
            "RTP PT 96 with marker"
        );
        assert!(!is_rtcp_packet(&[0x40, 200, 0, 1, 0, 0, 0, 1]), "version 1");
        assert!(!is_rtcp_packet(&[0x80, 200, 0, 1]), "too short");
        assert!(!is_rtcp_packet(&[0x00, 200, 0, 6, 0, 0, 0, 1]), "version 0");
    }

    #[test]
    fn stun() {
        let mut binding = [0u8; 20];
        binding[0..2].copy_from_slice(&[0x00, 0x01]);
        binding[4..8].copy_from_slice(&STUN_MAGIC_COOKIE);
        assert!(is_stun_packet(&binding));
        assert!(!is_stun_packet(&binding[..19]));
        let mut rtp = [0u8; 172];
        rtp[0] = 0x80;
        assert!(!is_stun_packet(&rtp));
        assert!(!is_stun_packet(&[]));
    }

    #[test]
    fn dtls() {
        assert!(looks_dtls_packet(&[22, 0xfe, 0xfd]));
        assert!(looks_dtls(20) && looks_dtls(63));
        assert!(!looks_dtls(19) && !looks_dtls(64) && !looks_dtls(0x80));
        assert!(!looks_dtls_packet(&[]));
    }
}
