//! Local media interfaces (`--interface`, `interfaces-config` sections):
//! their parsing ([`spec`]), and the logical interfaces built from it, each
//! local address with its port pool ([`ports`]).
//!
//! Names as upstream: several entries with one name make one logical
//! interface; `ALIAS=NAME` adds a second name; names of the form
//! `BASE:SUFFIX` form a round-robin group that a request naming `BASE`
//! (or the default interface, when it is such a member) rotates through,
//! skipping members without free ports; `round-robin-calls` rotates
//! through all interfaces.

mod ports;
pub use ports::set_freebind;
pub mod spec;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

pub use ports::{BoundPair, PortLease, PortPool};
pub use spec::{
    parse_entry, parse_interface, parse_section, Alias, Entry, InterfaceConfig, InterfaceSpec,
    SpecError,
};

/// The round-robin group of every interface.
const ALL: &str = "round-robin-calls";

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

    /// Whether every address has a free port pair.
    fn has_free_ports(&self) -> bool {
        self.addrs.iter().all(|a| a.pool.available() > 0)
    }
}

/// Why the interfaces could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NoInterface {
    /// No interface at all.
    #[error("no media interface configured")]
    None,
    /// An address whose port range holds no RTP/RTCP pair.
    #[error("interface '{name}' address {address}: no usable port pair in {min}-{max} (after exclude-ports)")]
    NoPorts {
        /// The interface.
        name: String,
        /// The address.
        address: IpAddr,
        /// Its lowest port.
        min: u16,
        /// Its highest port.
        max: u16,
    },
}

/// A round-robin group: members (indexes into the list) and where the
/// rotation stands.
struct Group {
    base: String,
    members: Vec<usize>,
    next: AtomicUsize,
}

/// All configured interfaces.
pub struct Interfaces {
    list: Vec<Interface>,
    /// Alias → index of the interface it names.
    aliases: Vec<(String, usize)>,
    groups: Vec<Group>,
}

impl Interfaces {
    /// Groups `specs` by name; each address gets a pool over its own range
    /// or `min..=max`.
    pub fn new(specs: &[InterfaceSpec], min: u16, max: u16) -> Result<Interfaces, NoInterface> {
        Self::build(
            &InterfaceConfig {
                specs: specs.to_vec(),
                aliases: Vec::new(),
            },
            min,
            max,
        )
    }

    /// The interfaces of a configuration; `min..=max` is the port range of
    /// addresses without their own.
    pub fn build(cfg: &InterfaceConfig, min: u16, max: u16) -> Result<Interfaces, NoInterface> {
        let mut list: Vec<Interface> = Vec::new();
        for s in &cfg.specs {
            let (lo, hi) = (s.port_min.unwrap_or(min), s.port_max.unwrap_or(max));
            let pool = PortPool::new(s.address, lo, hi, &s.exclude_ports);
            // A section's own bound can cross the global other one, and
            // exclusions can take every pair: refuse to start rather than
            // fail every call on this address.
            if pool.total() == 0 {
                return Err(NoInterface::NoPorts {
                    name: s.name.clone(),
                    address: s.address,
                    min: lo,
                    max: hi,
                });
            }
            let addr = LocalAddress {
                local: s.address,
                advertised: s.advertised,
                pool,
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
            return Err(NoInterface::None);
        }
        // As upstream: an alias of a missing interface, or one that shadows
        // a real name, is ignored (with a warning here).
        let mut aliases = Vec::new();
        for a in &cfg.aliases {
            match list.iter().position(|i| i.name == a.target) {
                _ if list.iter().any(|i| i.name == a.alias) => {
                    tracing::warn!(alias = %a.alias, "Interface alias names a real interface, ignored");
                }
                Some(i) => aliases.push((a.alias.clone(), i)),
                None => {
                    tracing::warn!(alias = %a.alias, target = %a.target, "Interface alias of an unknown interface, ignored");
                }
            }
        }
        let mut groups: Vec<Group> = Vec::new();
        for (i, iface) in list.iter().enumerate() {
            let base = iface
                .name
                .split_once(':')
                .map_or(iface.name.as_str(), |(b, _)| b);
            for key in [base, ALL] {
                match groups.iter_mut().find(|g| g.base == key) {
                    Some(g) => g.members.push(i),
                    None => groups.push(Group {
                        base: key.to_owned(),
                        members: vec![i],
                        next: AtomicUsize::new(0),
                    }),
                }
            }
        }
        Ok(Interfaces {
            list,
            aliases,
            groups,
        })
    }

    /// The interface called `name` (or aliased so); `None` if there is none.
    pub fn get(&self, name: &str) -> Option<&Interface> {
        self.list.iter().find(|i| i.name == name).or_else(|| {
            self.aliases
                .iter()
                .find(|(a, _)| a == name)
                .and_then(|(_, i)| self.list.get(*i))
        })
    }

    /// The default interface: the one named `default`, else the first.
    pub fn default_interface(&self) -> &Interface {
        self.get("default").unwrap_or(&self.list[0])
    }

    /// The next member of round-robin group `base` with free ports (a group
    /// of one is that member, full or not, as upstream); `None` when there
    /// is no such group, or all members are full.
    fn round_robin(&self, base: &str) -> Option<&Interface> {
        let g = self.groups.iter().find(|g| g.base == base)?;
        if let [only] = g.members[..] {
            return self.list.get(only);
        }
        let start = g.next.fetch_add(1, Relaxed);
        let found = (0..g.members.len())
            .map(|k| &self.list[g.members[(start + k) % g.members.len()]])
            .find(|i| i.has_free_ports());
        if found.is_none() {
            tracing::warn!(
                group = base,
                "No logical interface with free ports found; fallback to default behaviour"
            );
        }
        found
    }

    /// The interface a request names (round robin over a group, an alias,
    /// or the exact name), else the default (logging like upstream).
    pub fn get_or_default(&self, name: Option<&str>) -> &Interface {
        match name {
            None => {
                let d = self.default_interface();
                match d.name.split_once(':') {
                    Some((base, _)) => self.round_robin(base).unwrap_or(d),
                    None => d,
                }
            }
            Some(n) => self
                .round_robin(n)
                .or_else(|| self.get(n))
                .unwrap_or_else(|| {
                    tracing::warn!("Interface '{n}' not found, using default");
                    self.default_interface()
                }),
        }
    }

    /// The interface a party already uses (by its stored name): the exact
    /// name or alias, never a new round-robin pick; the default if it is
    /// gone.
    pub fn resolve(&self, name: Option<&str>) -> &Interface {
        name.and_then(|n| self.get(n))
            .unwrap_or_else(|| self.default_interface())
    }

    /// Whether `ep` is one of our media endpoints (a local or advertised
    /// address with a port of its range): a party announcing it points at
    /// this daemon itself (upstream's `is_local_endpoint`). A PBX on the same
    /// host, on ports outside the range, is not.
    pub fn is_ours(&self, ep: std::net::SocketAddr) -> bool {
        self.iter().flat_map(|i| i.addrs.iter()).any(|a| {
            let (min, max) = a.pool.bounds();
            (a.local == ep.ip() || a.advertised == ep.ip()) && (min..=max).contains(&ep.port())
        })
    }

    /// The port pool of local address `ip`, if it is one of ours.
    pub fn pool_of(&self, ip: IpAddr) -> Option<&Arc<PortPool>> {
        self.iter()
            .flat_map(|i| i.addrs.iter())
            .find(|a| a.local == ip)
            .map(|a| &a.pool)
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

    fn config(entries: &[&str]) -> InterfaceConfig {
        let mut c = InterfaceConfig::default();
        for e in entries {
            c.add(e).unwrap();
        }
        c
    }

    #[test]
    fn aliases_name_interfaces() {
        let ifs = Interfaces::build(
            &config(&[
                "pub/127.0.0.1",
                "priv/127.0.0.2",
                "ext=pub",
                "priv=pub",
                "x=nope",
            ]),
            30000,
            30010,
        )
        .unwrap();
        assert_eq!(ifs.get("ext").unwrap().name, "pub");
        // An alias never shadows a real name; one of nothing is ignored.
        assert_eq!(ifs.get("priv").unwrap().name, "priv");
        assert!(ifs.get("x").is_none());
        assert_eq!(ifs.iter().count(), 2);
    }

    #[test]
    fn round_robin_rotates_and_skips_full_members() {
        let ifs = Interfaces::build(
            &config(&[
                "pub:1/127.0.0.1",
                "pub:2/127.0.0.2",
                "pub:3/127.0.0.3",
                "other/127.0.0.4",
            ]),
            31200,
            31203,
        )
        .unwrap();
        let picks: Vec<&str> = (0..4)
            .map(|_| ifs.get_or_default(Some("pub")).name.as_str())
            .collect();
        assert_eq!(picks, ["pub:1", "pub:2", "pub:3", "pub:1"]);
        // The default (first, a member) rotates too.
        assert!(ifs.get_or_default(None).name.starts_with("pub:"));
        // An exact member name is that member.
        assert_eq!(ifs.get_or_default(Some("pub:3")).name, "pub:3");
        // Full members are skipped: take pub:2's only pair.
        let pool = &ifs.get("pub:2").unwrap().addrs[0].pool;
        let _held: Vec<_> = std::iter::from_fn(|| pool.allocate(false)).collect();
        for _ in 0..6 {
            assert_ne!(ifs.get_or_default(Some("pub")).name, "pub:2");
        }
        // round-robin-calls covers every interface.
        let all: std::collections::BTreeSet<&str> = (0..8)
            .map(|_| ifs.get_or_default(Some("round-robin-calls")).name.as_str())
            .collect();
        assert!(all.contains("other"), "{all:?}");
    }

    /// Two interfaces on one address with overlapping ranges (upstream
    /// allows it): each allocates from its own range, a port the other
    /// took is skipped, and no port is handed out twice.
    #[test]
    fn overlapping_ranges_on_one_address() {
        let mut c = InterfaceConfig::default();
        for (name, lo, hi) in [("a", 31300, 31309), ("b", 31304, 31313)] {
            let keys = [
                ("address", "127.0.0.1".to_string()),
                ("port-min", lo.to_string()),
                ("port-max", hi.to_string()),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.clone()]))
            .collect();
            let Entry::Addresses(s) = parse_section(name, &keys).unwrap() else {
                panic!()
            };
            c.specs.extend(s);
        }
        let ifs = Interfaces::build(&c, 30000, 30010).unwrap();
        let mut held = Vec::new();
        for name in ["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"] {
            if let Some(p) = ifs.get(name).unwrap().addrs[0].pool.allocate(false) {
                held.push(p);
            }
        }
        let mut ports: Vec<u16> = held.iter().map(|p| p.lease.port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), held.len(), "a port handed out twice");
        // The union 31300..=31313 has 7 even ports with room for RTCP.
        assert_eq!(held.len(), 7, "{ports:?}");
    }

    #[test]
    fn a_group_of_one_and_stored_names() {
        let ifs =
            Interfaces::build(&config(&["pub:1/127.0.0.1", "b/127.0.0.2"]), 31220, 31223).unwrap();
        assert_eq!(ifs.get_or_default(Some("pub")).name, "pub:1");
        assert_eq!(ifs.resolve(Some("pub:1")).name, "pub:1");
        assert_eq!(ifs.resolve(Some("b")).name, "b");
    }

    #[test]
    fn empty_port_ranges_are_refused() {
        let mut c = config(&["127.0.0.1"]);
        c.specs[0].port_min = Some(45000);
        assert!(matches!(
            Interfaces::build(&c, 30000, 40000),
            Err(NoInterface::NoPorts { .. })
        ));
        let mut c = config(&["127.0.0.1"]);
        c.specs[0].exclude_ports = vec![31240, 31242];
        assert!(Interfaces::build(&c, 31240, 31243).is_err());
    }

    #[test]
    fn section_port_ranges_and_exclusions() {
        let mut c = config(&["127.0.0.1"]);
        let keys = [
            ("address", "127.0.0.2"),
            ("port-min", "40000"),
            ("port-max", "40009"),
            ("exclude-ports", "40002;40005"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect();
        let Entry::Addresses(s) = parse_section("sec", &keys).unwrap() else {
            panic!()
        };
        c.specs.extend(s);
        let ifs = Interfaces::build(&c, 30000, 30010).unwrap();
        let pool = &ifs.get("sec").unwrap().addrs[0].pool;
        assert_eq!(pool.bounds(), (40000, 40009));
        // 40000, 40006, 40008: 40002 is excluded, and 40004 because its RTCP
        // port 40005 is.
        assert_eq!(pool.total(), 3);
        assert_eq!(
            ifs.get("default").unwrap().addrs[0].pool.bounds(),
            (30000, 30010)
        );
    }
}
