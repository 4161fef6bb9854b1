//! Per-address port pools.
//!
//! Each local address has its own pool over its range (an `interfaces-config`
//! section's `port-min..=port-max`, else `--port-min..=--port-max`), filled
//! in random order at start (as upstream), so ports are hard to predict and
//! spread evenly. RTP takes an even port and RTCP the next odd one; a single
//! port (rtcp-mux) still reserves the pair. Ports that fail to bind (in use by
//! another program) are skipped and retried later. Sockets always bind the
//! specific local address, never a wildcard.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use rand::seq::SliceRandom;
use socket2::{Domain, Protocol, Socket, Type};

/// A pool of even ports on one local address.
pub struct PortPool {
    addr: IpAddr,
    free: Mutex<VecDeque<u16>>,
    /// Ports held for the calls a restore is replaying: only
    /// [`PortPool::allocate_at`] takes them.
    reserved: Mutex<std::collections::HashSet<u16>>,
    total: usize,
    /// The range's bounds.
    min: u16,
    max: u16,
    /// The last port handed out, 0 before the first (for the CLI).
    last: AtomicU16,
}

/// An allocated even port; returned to its pool on drop (after the sockets
/// bound to it, which must be dropped first).
pub struct PortLease {
    pool: Arc<PortPool>,
    port: u16,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.pool.lock().push_back(self.port);
    }
}

impl PortLease {
    /// The even (RTP) port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Sockets bound for one stream: RTP, and RTCP on RTP + 1 unless muxed.
pub struct BoundPair {
    /// RTP socket (even port).
    pub rtp: UdpSocket,
    /// RTCP socket (odd port), when not muxed.
    pub rtcp: Option<UdpSocket>,
    /// The reservation; drop it after the sockets.
    pub lease: PortLease,
}

impl PortPool {
    /// A pool over the even ports in `min..=max` (a range with no room for an
    /// RTCP port after the last even port ends one earlier), without the
    /// pairs that touch an `exclude`d port.
    pub fn new(addr: IpAddr, min: u16, max: u16, exclude: &[u16]) -> Arc<PortPool> {
        let first = u32::from(min) + u32::from(min % 2);
        let mut ports: Vec<u16> = (first..u32::from(max))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .filter(|p| !exclude.contains(p) && !exclude.contains(&(p + 1)))
            .collect();
        ports.shuffle(&mut rand::rng());
        Arc::new(PortPool {
            addr,
            total: ports.len(),
            min,
            max,
            last: AtomicU16::new(0),
            free: Mutex::new(ports.into()),
            reserved: Mutex::new(std::collections::HashSet::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<u16>> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Free even ports.
    pub fn available(&self) -> usize {
        self.lock().len()
    }

    /// All even ports of the pool.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Every port of the range (`max - min + 1`, excluded ones included),
    /// as upstream reports it.
    pub fn range(&self) -> usize {
        usize::from(self.max.saturating_sub(self.min)) + 1
    }

    /// The range's bounds.
    pub fn bounds(&self) -> (u16, u16) {
        (self.min, self.max)
    }

    /// The last port allocated, 0 before the first.
    pub fn last_used(&self) -> u16 {
        self.last.load(Relaxed)
    }

    /// Ports in use: each allocated even port with its RTCP neighbour (which
    /// is reserved even when RTCP is muxed).
    pub fn used(&self) -> usize {
        (self.total - self.available()) * 2
    }

    /// Binds an RTP socket (and an RTCP one unless `single`) on the next free
    /// even port. `None` when every port is taken or fails to bind.
    pub fn allocate(self: &Arc<Self>, single: bool) -> Option<BoundPair> {
        let tries = self.available();
        for _ in 0..tries {
            let port = self.lock().pop_front()?;
            if let Some(pair) = self.bind_pair(port, single) {
                self.last.store(port, Relaxed);
                return Some(pair);
            }
        }
        None
    }
}

impl PortPool {
    /// Binds the pair on `port` (even) if it is free: a restored call gets
    /// its ports back. `None` if it is taken or out of the range.
    pub fn allocate_at(self: &Arc<Self>, port: u16, single: bool) -> Option<BoundPair> {
        let was_reserved = self
            .reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&port);
        if !was_reserved && !self.take_free(port) {
            return None;
        }
        self.bind_pair(port, single)
    }

    /// Takes `port` off the free list; `false` if it is not on it.
    fn take_free(&self, port: u16) -> bool {
        let mut free = self.lock();
        match free.iter().position(|&p| p == port) {
            Some(at) => {
                free.remove(at);
                true
            }
            None => false,
        }
    }

    /// Holds `port` for [`PortPool::allocate_at`] only (a restore plans
    /// every stored call's ports before replaying any, so no call's random
    /// allocation takes another's). `false` if it is not free.
    pub fn reserve(&self, port: u16) -> bool {
        if !self.take_free(port) {
            return false;
        }
        self.reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port);
        true
    }

    /// Returns the reserved ports nobody took to the free list.
    pub fn release_reserved(&self) {
        let left: Vec<u16> = self
            .reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        self.lock().extend(left);
    }

    /// Binds `port` (and `port + 1` unless `single`), taken from the free
    /// list by the caller; on failure (in use by someone else) the port goes
    /// back to the end of the list, to be retried later.
    fn bind_pair(self: &Arc<Self>, port: u16, single: bool) -> Option<BoundPair> {
        let bound = bind(SocketAddr::new(self.addr, port)).and_then(|rtp| {
            let rtcp = if single {
                None
            } else {
                Some(bind(SocketAddr::new(self.addr, port + 1))?)
            };
            Ok((rtp, rtcp))
        });
        match bound {
            Ok((rtp, rtcp)) => Some(BoundPair {
                rtp,
                rtcp,
                lease: PortLease {
                    pool: self.clone(),
                    port,
                },
            }),
            Err(_) => {
                self.lock().push_back(port);
                None
            }
        }
    }
}

/// Whether media sockets bind with `IP_FREEBIND` (a standby: its media
/// address arrives with a failover). Set once at start.
static FREEBIND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every media socket bound from now on use `IP_FREEBIND`, so ports
/// on an address this host does not have yet can be taken (a standby's
/// copies of another daemon's calls).
pub fn set_freebind(on: bool) {
    FREEBIND.store(on, Relaxed);
}

fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if FREEBIND.load(Relaxed) {
        if addr.is_ipv6() {
            s.set_freebind_v6(true)?;
        } else {
            s.set_freebind_v4(true)?;
        }
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_even_pairs_until_exhausted_and_reuses_released() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41000, 41007, &[]);
        assert_eq!(pool.total(), 4);
        let mut held = Vec::new();
        while let Some(p) = pool.allocate(false) {
            assert_eq!(p.lease.port() % 2, 0);
            let rtcp = p.rtcp.as_ref().unwrap().local_addr().unwrap().port();
            assert_eq!(rtcp, p.lease.port() + 1);
            held.push(p);
        }
        assert!(held.len() >= 3, "at most one port may be busy on the host");
        assert_eq!(pool.available(), 4 - held.len());
        held.clear();
        assert_eq!(pool.available(), 4);
    }

    #[test]
    fn busy_ports_are_skipped() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41100, 41103, &[]);
        // Take both ports of one pair from outside the pool.
        let a = UdpSocket::bind("127.0.0.1:41100");
        let b = UdpSocket::bind("127.0.0.1:41102");
        let p = pool.allocate(false);
        match (a.is_ok(), b.is_ok()) {
            (true, true) => assert!(p.is_none(), "every port busy"),
            _ => assert!(p.is_some()),
        }
    }

    /// Reserved ports are only handed out by `allocate_at`, and go back to
    /// the pool when released.
    #[test]
    fn reserved_ports_wait_for_their_call() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41300, 41303, &[]);
        assert!(pool.reserve(41300));
        assert!(!pool.reserve(41300), "already reserved");
        let other = pool.allocate(false).expect("the other pair");
        assert_eq!(other.lease.port(), 41302);
        assert!(
            pool.allocate(false).is_none(),
            "the reserved pair is not handed out"
        );
        let mine = pool.allocate_at(41300, false).expect("the reserved pair");
        drop(mine);
        assert!(pool.reserve(41300));
        pool.release_reserved();
        assert_eq!(pool.available(), 1);
    }

    /// A restored call gets its ports back: the planned pair if it is free,
    /// `None` when it is taken (by the pool or from outside) or not in the
    /// range; releasing it returns it to the pool.
    #[test]
    fn allocates_a_planned_pair() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41200, 41207, &[]);
        let p = pool.allocate_at(41204, false).expect("free");
        assert_eq!(p.lease.port(), 41204);
        assert_eq!(p.rtcp.as_ref().unwrap().local_addr().unwrap().port(), 41205);
        assert_eq!(pool.available(), 3);
        assert!(
            pool.allocate_at(41204, false).is_none(),
            "taken by the pool"
        );
        assert!(pool.allocate_at(41300, false).is_none(), "out of range");
        let outside = UdpSocket::bind("127.0.0.1:41206");
        if outside.is_ok() {
            assert!(pool.allocate_at(41206, true).is_none(), "bound elsewhere");
            assert_eq!(pool.available(), 3, "a failed bind gives the port back");
        }
        drop(p);
        assert_eq!(pool.available(), 4);
    }
}
