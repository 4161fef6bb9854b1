//! Local media interfaces (`--interface`) and their port pools.
//!
//! Each local address has its own pool over `--port-min..=--port-max`, filled
//! in random order at start (as upstream), so ports are hard to predict and
//! spread evenly. RTP takes an even port and RTCP the next odd one; a single
//! port (rtcp-mux) still reserves the pair. Ports that fail to bind (in use by
//! another program) are skipped and retried later. Sockets always bind the
//! specific local address, never a wildcard.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, PoisonError};

use rand::seq::SliceRandom;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::InterfaceSpec;

/// A pool of even ports on one local address.
pub struct PortPool {
    addr: IpAddr,
    free: Mutex<VecDeque<u16>>,
    total: usize,
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
    /// RTCP port after the last even port ends one earlier).
    pub fn new(addr: IpAddr, min: u16, max: u16) -> Arc<PortPool> {
        let first = u32::from(min) + u32::from(min % 2);
        let mut ports: Vec<u16> = (first..u32::from(max))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        ports.shuffle(&mut rand::rng());
        Arc::new(PortPool {
            addr,
            total: ports.len(),
            free: Mutex::new(ports.into()),
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

    /// Binds an RTP socket (and an RTCP one unless `single`) on the next free
    /// even port. `None` when every port is taken or fails to bind.
    pub fn allocate(self: &Arc<Self>, single: bool) -> Option<BoundPair> {
        let tries = self.available();
        for _ in 0..tries {
            let port = self.lock().pop_front()?;
            let bound = bind(SocketAddr::new(self.addr, port)).and_then(|rtp| {
                let rtcp = if single {
                    None
                } else {
                    Some(bind(SocketAddr::new(self.addr, port + 1))?)
                };
                Ok((rtp, rtcp))
            });
            match bound {
                Ok((rtp, rtcp)) => {
                    return Some(BoundPair {
                        rtp,
                        rtcp,
                        lease: PortLease {
                            pool: self.clone(),
                            port,
                        },
                    })
                }
                // In use by someone else: retry it later.
                Err(_) => self.lock().push_back(port),
            }
        }
        None
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// One local address of a logical interface.
pub struct LocalAddress {
    /// Address media sockets bind to.
    pub local: IpAddr,
    /// Address written into SDP.
    pub advertised: IpAddr,
    /// Its ports.
    pub pool: Arc<PortPool>,
}

/// A named logical interface with one or more addresses.
pub struct Interface {
    /// Its name (`default` unless configured).
    pub name: String,
    /// Its addresses, in configuration order.
    pub addrs: Vec<LocalAddress>,
}

impl Interface {
    /// The first address of `family` (IPv4 when `v4`), if any.
    pub fn address(&self, v4: bool) -> Option<&LocalAddress> {
        self.addrs.iter().find(|a| a.local.is_ipv4() == v4)
    }
}

/// All configured interfaces.
pub struct Interfaces {
    list: Vec<Interface>,
}

impl Interfaces {
    /// Groups `specs` by name; each address gets a pool over `min..=max`.
    pub fn new(specs: &[InterfaceSpec], min: u16, max: u16) -> anyhow::Result<Interfaces> {
        let mut list: Vec<Interface> = Vec::new();
        for s in specs {
            let addr = LocalAddress {
                local: s.address,
                advertised: s.advertised,
                pool: PortPool::new(s.address, min, max),
            };
            match list.iter_mut().find(|i| i.name == s.name) {
                Some(i) => i.addrs.push(addr),
                None => list.push(Interface {
                    name: s.name.clone(),
                    addrs: vec![addr],
                }),
            }
        }
        if list.is_empty() {
            anyhow::bail!("no media interface configured");
        }
        Ok(Interfaces { list })
    }

    /// The interface called `name`; `None` if there is none.
    pub fn get(&self, name: &str) -> Option<&Interface> {
        self.list.iter().find(|i| i.name == name)
    }

    /// The default interface: the one named `default`, else the first.
    pub fn default_interface(&self) -> &Interface {
        self.get("default").unwrap_or(&self.list[0])
    }

    /// `name` if it exists, else the default (logging like upstream).
    pub fn get_or_default(&self, name: Option<&str>) -> &Interface {
        match name {
            None => self.default_interface(),
            Some(n) => self.get(n).unwrap_or_else(|| {
                tracing::warn!("Interface '{n}' not found, using default");
                self.default_interface()
            }),
        }
    }

    /// All interfaces.
    pub fn iter(&self) -> impl Iterator<Item = &Interface> {
        self.list.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_even_pairs_until_exhausted_and_reuses_released() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41000, 41007);
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
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41100, 41103);
        // Take both ports of one pair from outside the pool.
        let a = UdpSocket::bind("127.0.0.1:41100");
        let b = UdpSocket::bind("127.0.0.1:41102");
        let p = pool.allocate(false);
        match (a.is_ok(), b.is_ok()) {
            (true, true) => assert!(p.is_none(), "every port busy"),
            _ => assert!(p.is_some()),
        }
    }

    #[test]
    fn interfaces_group_by_name() {
        let specs = crate::config::parse_interface("a/127.0.0.1")
            .unwrap()
            .into_iter()
            .chain(crate::config::parse_interface("a/::1").unwrap())
            .chain(crate::config::parse_interface("b/127.0.0.2!203.0.113.5").unwrap())
            .collect::<Vec<_>>();
        let ifs = Interfaces::new(&specs, 30000, 30010).unwrap();
        let a = ifs.get("a").unwrap();
        assert_eq!(a.addrs.len(), 2);
        assert!(a.address(false).unwrap().local.is_ipv6());
        assert_eq!(
            ifs.get("b").unwrap().addrs[0].advertised.to_string(),
            "203.0.113.5"
        );
        assert_eq!(ifs.get_or_default(Some("nope")).name, "a");
    }
}
