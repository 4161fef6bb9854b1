//! Parsing `--interface` values and `interfaces-config` sections.

use std::net::IpAddr;

use crate::net::ifaddrs::{any_addresses, device_addresses};

/// A parsed `--interface` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceSpec {
    /// Logical interface name (`default` when not given).
    pub name: String,
    /// Local address media sockets bind to.
    pub address: IpAddr,
    /// Address written into SDP (the local one unless `!ADV` was given).
    pub advertised: IpAddr,
    /// Its own lowest port (`port-min` of an `interfaces-config` section);
    /// `--port-min` when `None`.
    pub port_min: Option<u16>,
    /// Its own highest port (`port-max`); `--port-max` when `None`.
    pub port_max: Option<u16>,
    /// Ports never used (`exclude-ports` of a section).
    pub exclude_ports: Vec<u16>,
}

/// `ALIAS=NAME`: another name for an existing logical interface (for
/// `direction` and `interface` in requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// The extra name.
    pub alias: String,
    /// The interface it names.
    pub target: String,
}

/// One `--interface` value: addresses, or an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `[NAME/]ADDR[!ADV]`.
    Addresses(Vec<InterfaceSpec>),
    /// `ALIAS=NAME`.
    Alias(Alias),
}

/// Every interface of the configuration: `--interface` entries first, then
/// `interfaces-config` sections, as upstream orders them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// Addresses.
    pub specs: Vec<InterfaceSpec>,
    /// Aliases.
    pub aliases: Vec<Alias>,
}

impl InterfaceConfig {
    /// Adds one `--interface` value.
    pub fn add(&mut self, value: &str) -> Result<(), SpecError> {
        match parse_entry(value)? {
            Entry::Addresses(a) => self.specs.extend(a),
            Entry::Alias(a) => self.aliases.push(a),
        }
        Ok(())
    }
}

/// Why an `--interface` value was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// `/IP`: a slash with nothing before it.
    #[error("interface '{0}': empty name before '/'")]
    EmptyName(String),
    /// `IP!ADV` where ADV is not an address.
    #[error("interface '{spec}': bad advertised address '{adv}'")]
    BadAdvertised {
        /// The whole value.
        spec: String,
        /// The part after `!`.
        adv: String,
    },
    /// `0.0.0.0` or `::`.
    #[error("interface '{0}': a wildcard address cannot be an interface")]
    Unspecified(String),
    /// `ALIAS=` or `=NAME`.
    #[error("interface '{0}': an alias needs a name on both sides of '='")]
    BadAlias(String),
    /// A section key with a bad value.
    #[error("interface section '{section}': {what}")]
    Section {
        /// The section's interface name.
        section: String,
        /// What is wrong.
        what: String,
    },
    /// Neither an address nor a device with addresses.
    #[error("interface '{spec}': '{addr}' is neither an address nor a network device ({source})")]
    NoSuchDevice {
        /// The whole value.
        spec: String,
        /// The address part.
        addr: String,
        /// What looking up the device said.
        source: std::io::Error,
    },
}

/// Parses one `--interface` value: `ALIAS=NAME`, or
/// `[NAME/]IP[!ADVERTISED]` where IP is an address, the name of a system
/// network device (all its addresses), or `any` (every address of every
/// device that is up and not loopback). As upstream, the first `/` or `=`
/// decides which.
pub fn parse_entry(s: &str) -> Result<Entry, SpecError> {
    let s = s.trim_start();
    if let Some(i) = s.find(['/', '=']) {
        if s.as_bytes()[i] == b'=' {
            let (alias, target) = (&s[..i], &s[i + 1..]);
            if alias.is_empty() || target.is_empty() {
                return Err(SpecError::BadAlias(s.to_owned()));
            }
            return Ok(Entry::Alias(Alias {
                alias: alias.to_owned(),
                target: target.to_owned(),
            }));
        }
    }
    parse_interface(s).map(Entry::Addresses)
}

/// Parses one `[NAME/]IP[!ADVERTISED]` value (see [`parse_entry`]).
pub fn parse_interface(s: &str) -> Result<Vec<InterfaceSpec>, SpecError> {
    let (name, rest) = match s.split_once('/') {
        // An IPv6 address never contains '/', so a slash always ends a name.
        Some((n, r)) if !n.is_empty() => (n.to_owned(), r),
        Some(_) => return Err(SpecError::EmptyName(s.to_owned())),
        None => ("default".to_owned(), s),
    };
    let (addr, adv) = match rest.split_once('!') {
        Some((a, adv)) => (a, Some(adv)),
        None => (rest, None),
    };
    addresses(s, &name, addr, adv)
}

/// An interface section of `interfaces-config` (`[PREFIX-IDENT]`): keys
/// `address` (required), `advertised`, `name` (default IDENT), `alias`
/// (the section is then only an alias of that interface), `port-min`,
/// `port-max`, `exclude-ports` (`;`-separated).
pub fn parse_section(
    ident: &str,
    keys: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<Entry, SpecError> {
    let get = |k: &str| keys.get(k).and_then(|v| v.last()).map(String::as_str);
    let bad = |what: String| SpecError::Section {
        section: ident.to_owned(),
        what,
    };
    if let Some(target) = get("alias") {
        return Ok(Entry::Alias(Alias {
            alias: ident.to_owned(),
            target: target.to_owned(),
        }));
    }
    let name = get("name").unwrap_or(ident);
    let addr = get("address").ok_or_else(|| bad("no 'address' given".into()))?;
    let adv = [
        "advertised",
        "advertised address",
        "advertised-address",
        "advertised_address",
    ]
    .into_iter()
    .find_map(get);
    let port = |k: &str| -> Result<Option<u16>, SpecError> {
        match get(k) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<u16>() {
                Ok(p) if p > 0 => Ok(Some(p)),
                _ => Err(bad(format!("'{k}' must be a port 1..65535, not '{v}'"))),
            },
        }
    };
    let (min, max) = (port("port-min")?, port("port-max")?);
    if let (Some(a), Some(b)) = (min, max) {
        if a >= b {
            return Err(bad(format!("port-min {a} is not below port-max {b}")));
        }
    }
    let mut exclude = Vec::new();
    for p in get("exclude-ports")
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
    {
        if p.is_empty() {
            continue;
        }
        match p.parse::<u32>() {
            Ok(0) | Err(_) => return Err(bad(format!("bad port '{p}' in exclude-ports"))),
            Ok(n) => match u16::try_from(n) {
                Ok(n) => exclude.push(n),
                Err(_) => tracing::warn!(
                    section = ident,
                    port = n,
                    "Excluded port above 65535 ignored"
                ),
            },
        }
    }
    let mut specs = addresses(ident, name, addr, adv)?;
    for s in &mut specs {
        s.exclude_ports = exclude.clone();
        s.port_min = min;
        s.port_max = max;
    }
    Ok(Entry::Addresses(specs))
}

/// The specs of `name` on `addr` (an address, `[v6]`, device or `any`),
/// advertised as `adv`; `whole` is the original text for errors.
fn addresses(
    whole: &str,
    name: &str,
    addr: &str,
    adv: Option<&str>,
) -> Result<Vec<InterfaceSpec>, SpecError> {
    let s = whole;
    let adv = match adv {
        Some(adv) => Some(
            adv.trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .map_err(|_| SpecError::BadAdvertised {
                    spec: s.to_owned(),
                    adv: adv.to_owned(),
                })?,
        ),
        None => None,
    };
    let addr = addr.trim_matches(['[', ']']);
    let addrs = match addr.parse::<IpAddr>() {
        // As upstream: a wildcard is not an interface address.
        Ok(a) if a.is_unspecified() => return Err(SpecError::Unspecified(s.to_owned())),
        Ok(a) => vec![a],
        Err(_) => match addr {
            "any" => any_addresses(),
            dev => device_addresses(dev),
        }
        .map_err(|source| SpecError::NoSuchDevice {
            spec: s.to_owned(),
            addr: addr.to_owned(),
            source,
        })?,
    };
    Ok(addrs
        .into_iter()
        .map(|address| InterfaceSpec {
            name: name.to_owned(),
            address,
            advertised: adv.unwrap_or(address),
            port_min: None,
            port_max: None,
            exclude_ports: Vec::new(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let v = parse_interface("pub/10.0.0.1!203.0.113.9").unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, "pub");
        assert_eq!(v[0].address, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(v[0].advertised, "203.0.113.9".parse::<IpAddr>().unwrap());
        let v = parse_interface("::1").unwrap();
        assert_eq!(
            (v[0].name.as_str(), v[0].advertised),
            ("default", v[0].address)
        );
        let lo = parse_interface("lo").unwrap();
        assert!(lo.iter().any(|s| s.address.is_loopback()), "{lo:?}");
    }

    #[test]
    fn aliases_and_sections() {
        assert_eq!(
            parse_entry("pub=pub:1").unwrap(),
            Entry::Alias(Alias {
                alias: "pub".into(),
                target: "pub:1".into()
            })
        );
        // The first '/' or '=' decides.
        assert!(matches!(
            parse_entry("a/127.0.0.1").unwrap(),
            Entry::Addresses(_)
        ));
        assert!(matches!(parse_entry("=x"), Err(SpecError::BadAlias(_))));
        let keys = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let Entry::Addresses(s) = parse_section(
            "rr:0",
            &keys(&[
                ("address", "127.0.0.1"),
                ("advertised-address", "203.0.113.7"),
                ("port-min", "40000"),
                ("port-max", "40100"),
                ("exclude-ports", "40002; 40004"),
            ]),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(s[0].name, "rr:0");
        assert_eq!(s[0].advertised.to_string(), "203.0.113.7");
        assert_eq!((s[0].port_min, s[0].port_max), (Some(40000), Some(40100)));
        assert_eq!(s[0].exclude_ports, vec![40002, 40004]);
        let Entry::Addresses(s) =
            parse_section("x", &keys(&[("address", "[::1]"), ("name", "pub")])).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (s[0].name.as_str(), s[0].address.to_string().as_str()),
            ("pub", "::1")
        );
        assert!(matches!(
            parse_section("a", &keys(&[("alias", "pub")])).unwrap(),
            Entry::Alias(_)
        ));
        for bad in [
            &[("name", "x")][..],
            &[("address", "127.0.0.1"), ("port-min", "0")],
            &[
                ("address", "127.0.0.1"),
                ("port-min", "5000"),
                ("port-max", "4000"),
            ],
            &[("address", "127.0.0.1"), ("exclude-ports", "x")],
            &[("address", "0.0.0.0")],
        ] {
            assert!(parse_section("s", &keys(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse_interface("/1.2.3.4"),
            Err(SpecError::EmptyName(_))
        ));
        assert!(matches!(
            parse_interface("1.2.3.4!bad"),
            Err(SpecError::BadAdvertised { .. })
        ));
        assert!(matches!(
            parse_interface("nosuchdev0"),
            Err(SpecError::NoSuchDevice { .. })
        ));
    }
}
