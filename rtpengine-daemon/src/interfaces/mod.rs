//! Local media interfaces (`--interface`): their parsing ([`spec`]), and the
//! logical interfaces built from it, each local address with its port pool
//! ([`ports`]).

mod ports;
pub mod spec;

use std::net::IpAddr;
use std::sync::Arc;

pub use ports::{BoundPair, PortLease, PortPool};
pub use spec::{parse_interface, InterfaceSpec};

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

/// [`Interfaces::new`] was given no interface.
#[derive(Debug, thiserror::Error)]
#[error("no media interface configured")]
pub struct NoInterface;

/// All configured interfaces.
pub struct Interfaces {
    list: Vec<Interface>,
}

impl Interfaces {
    /// Groups `specs` by name; each address gets a pool over `min..=max`.
    pub fn new(specs: &[InterfaceSpec], min: u16, max: u16) -> Result<Interfaces, NoInterface> {
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
            return Err(NoInterface);
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
    fn interfaces_group_by_name() {
        let specs = parse_interface("a/127.0.0.1")
            .unwrap()
            .into_iter()
            .chain(parse_interface("a/::1").unwrap())
            .chain(parse_interface("b/127.0.0.2!203.0.113.5").unwrap())
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
