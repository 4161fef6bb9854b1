//! An edge-triggered `epoll` set, for the relay's poller.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// An `epoll` set whose members are watched for input, edge-triggered: Linux
/// reports every datagram that arrives, and a drained socket is not polled
/// again.
pub struct Epoll(OwnedFd);

impl Epoll {
    /// A new, empty set.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; the fd is owned right after.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: valid epoll fd; `ev` outlives the call.
        cvt(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    /// Watches `fd`; its events carry `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token)
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0)
    }

    /// Waits up to `timeout_ms` (-1 = no limit) for events and returns how
    /// many of `events` were filled (0 also when a signal interrupted the
    /// wait); each event's token is its `u64`.
    pub fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: the buffer holds at least `max` entries.
        let n =
            unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        match cvt(n) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn epoll_reports_each_arrival_with_its_token() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let ep = Epoll::new().unwrap();
        ep.add(rx.as_raw_fd(), 7).unwrap();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
        assert_eq!(ep.wait(&mut events, 0).unwrap(), 0, "nothing yet");
        tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        assert_eq!(ep.wait(&mut events, 1000).unwrap(), 1);
        assert_eq!({ events[0].u64 }, 7);
        // Edge-triggered: reported once, although the datagram is still queued.
        assert_eq!(ep.wait(&mut events, 0).unwrap(), 0);
        ep.delete(rx.as_raw_fd()).unwrap();
        tx.send_to(b"y", rx.local_addr().unwrap()).unwrap();
        assert_eq!(ep.wait(&mut events, 0).unwrap(), 0, "no longer watched");
        assert!(ep.add(-1, 1).is_err(), "a bad descriptor is an error");
    }
}
