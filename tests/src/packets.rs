//! RTP/RTCP packets, and sending and receiving them with socket options.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// An RTP packet: PT, seq, ts, SSRC, 160 payload bytes of `fill`.
pub fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, fill: u8) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend(seq.to_be_bytes());
    p.extend(ts.to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(fill, 160));
    p
}

/// The payload of an RTP packet: after the header, its CSRCs and its
/// header extension (a bundle's MID, say); `None` if it is cut short.
pub fn payload_of(p: &[u8]) -> Option<&[u8]> {
    let mut at = 12 + 4 * usize::from(p.first()? & 0x0f);
    if p[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*p.get(at + 2)?, *p.get(at + 3)?]);
        at += 4 + 4 * usize::from(words);
    }
    p.get(at..)
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
