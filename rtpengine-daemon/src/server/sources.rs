//! Who may send control requests (`--ng-allow-from`, ours: upstream has no
//! such list). With the list set, ng over UDP, TCP, HTTP and WebSocket and
//! the rtpproxy protocol serve only sources inside one of its prefixes;
//! requests from others are dropped (UDP), their connections closed (TCP) or
//! refused with 403 (HTTP), and counted (`rtpengine_control_refused_total`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

/// An address prefix, `ADDR/LEN` (a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl std::str::FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Prefix, String> {
        let bad = || format!("'{s}' is not an address prefix (ADDR[/LEN])");
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim_matches(['[', ']']).parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = len.unwrap_or(max);
        if len > max {
            return Err(bad());
        }
        Ok(Prefix { addr, len })
    }
}

impl Prefix {
    /// Whether `ip` (IPv4-mapped IPv6 counts as IPv4) is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(p) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(p) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

static ALLOWED: OnceLock<Vec<Prefix>> = OnceLock::new();

/// Requests refused since the start.
pub static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Sets the list once at start (empty: everyone may send, as upstream).
pub fn allow_only(prefixes: Vec<Prefix>) {
    let _ = ALLOWED.set(prefixes);
}

/// Whether `ip` may send control requests; a refusal is counted and logged
/// at debug level (a scan would flood the log).
pub fn allows(ip: IpAddr) -> bool {
    let Some(list) = ALLOWED.get().filter(|l| !l.is_empty()) else {
        return true;
    };
    if list.iter().any(|p| p.contains(ip)) {
        return true;
    }
    REFUSED.fetch_add(1, Relaxed);
    tracing::debug!(source = %ip, "Control request from a source not in --ng-allow-from, dropped");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_as_written() {
        let p: Prefix = "10.0.0.0/8".parse().unwrap();
        assert!(p.contains("10.200.1.1".parse().unwrap()));
        assert!(
            p.contains("::ffff:10.1.2.3".parse().unwrap()),
            "mapped IPv4"
        );
        assert!(!p.contains("11.0.0.1".parse().unwrap()));
        assert!(!p.contains("fd00::1".parse().unwrap()));
        let h: Prefix = "192.0.2.7".parse().unwrap();
        assert!(h.contains("192.0.2.7".parse().unwrap()));
        assert!(!h.contains("192.0.2.8".parse().unwrap()));
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let v6: Prefix = "[2001:db8::]/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/a", "::/129", ""] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad}");
        }
    }
}
