//! Parsing `--interface` values.

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

/// Parses one `--interface` value: `[NAME/]IP[!ADVERTISED]`, where IP is an
/// address, the name of a system network device (all its addresses), or
/// `any` (every address of every device that is up and not loopback).
pub fn parse_interface(s: &str) -> Result<Vec<InterfaceSpec>, SpecError> {
    let (name, rest) = match s.split_once('/') {
        // An IPv6 address never contains '/', so a slash always ends a name.
        Some((n, r)) if !n.is_empty() => (n.to_owned(), r),
        Some(_) => return Err(SpecError::EmptyName(s.to_owned())),
        None => ("default".to_owned(), s),
    };
    let (addr, adv) = match rest.split_once('!') {
        Some((a, adv)) => {
            let parsed = adv
                .parse::<IpAddr>()
                .map_err(|_| SpecError::BadAdvertised {
                    spec: s.to_owned(),
                    adv: adv.to_owned(),
                })?;
            (a, Some(parsed))
        }
        None => (rest, None),
    };
    let addrs = match addr.parse::<IpAddr>() {
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
            name: name.clone(),
            address,
            advertised: adv.unwrap_or(address),
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
