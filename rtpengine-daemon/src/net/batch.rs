//! Receiving many datagrams with one call (`recvmmsg`), for the relay.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::RawFd;

use super::from_sockaddr;

/// Buffers to receive a batch of datagrams with one `recvmmsg`.
pub struct RecvBatch {
    // The headers point into these heap buffers, which never move.
    bufs: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    size: usize,
}

// SAFETY: the raw pointers only point into the struct's own heap buffers.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Room for `n` datagrams of up to `size` bytes each.
    pub fn new(n: usize, size: usize) -> RecvBatch {
        let mut b = RecvBatch {
            bufs: vec![0; n * size],
            // SAFETY: all-zero is a valid sockaddr_storage / mmsghdr.
            names: vec![unsafe { zeroed() }; n],
            iovs: Vec::with_capacity(n),
            hdrs: Vec::with_capacity(n),
            size,
        };
        for i in 0..n {
            b.iovs.push(libc::iovec {
                // SAFETY: i * size < n * size, inside `bufs`.
                iov_base: unsafe { b.bufs.as_mut_ptr().add(i * size) }.cast(),
                iov_len: size,
            });
        }
        for i in 0..n {
            // SAFETY: all-zero is a valid mmsghdr.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = (&mut b.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_iov = &mut b.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            b.hdrs.push(h);
        }
        b
    }

    /// Receives what is queued on `fd` without blocking, up to the batch
    /// size; returns how many datagrams arrived (0 when none was queued).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for h in &mut self.hdrs {
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: every header points into buffers owned by self, with
        // matching lengths.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        Ok(rc as usize)
    }

    /// Datagram `i` of the last [`RecvBatch::recv`]: payload (truncated to
    /// the buffer size) and source.
    pub fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let len = (self.hdrs[i].msg_len as usize).min(self.size);
        let start = i * self.size;
        (
            &self.bufs[start..start + len],
            from_sockaddr(&self.names[i]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn recv_batch_takes_what_is_queued_and_truncates() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let mut batch = RecvBatch::new(4, 16);
        assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 0, "nothing queued");
        for p in [&b"one"[..], b"two", &[7u8; 40]] {
            tx.send_to(p, to).unwrap();
        }
        // Loopback delivers inside send_to: all three are queued now.
        let n = batch.recv(rx.as_raw_fd()).unwrap();
        assert_eq!(n, 3);
        let from = Some(tx.local_addr().unwrap());
        assert_eq!(batch.get(0), (&b"one"[..], from));
        assert_eq!(batch.get(1), (&b"two"[..], from));
        assert_eq!(
            batch.get(2),
            (&[7u8; 16][..], from),
            "cut to the buffer size"
        );
        assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 0, "drained");
        assert!(batch.recv(-1).is_err(), "a bad descriptor is an error");
    }
}
