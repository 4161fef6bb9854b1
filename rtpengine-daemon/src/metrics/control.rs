//! Per-proxy control counters: how many ng requests of each command every
//! SIP proxy (source address, without port, as upstream) sent, how long
//! they took, and how many were answered with an error.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::ng::request::{Command, COMMAND_NAMES};

/// One proxy's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyCounters {
    /// Requests per command, indexed like [`COMMAND_NAMES`].
    pub requests: Vec<u64>,
    /// Time spent per command, indexed like [`COMMAND_NAMES`].
    pub time: Vec<Duration>,
    /// Requests answered with an error (including undecodable ones).
    pub errors: u64,
}

impl Default for ProxyCounters {
    fn default() -> Self {
        ProxyCounters {
            requests: vec![0; COMMAND_NAMES.len()],
            time: vec![Duration::ZERO; COMMAND_NAMES.len()],
            errors: 0,
        }
    }
}

/// The counters of every proxy that has sent a request.
///
/// A mutex, not atomics: one short critical section per ng request is
/// nothing next to the request itself, and the map must grow.
#[derive(Debug, Default)]
pub struct ControlStats {
    proxies: Mutex<BTreeMap<IpAddr, ProxyCounters>>,
}

/// Upper bound on distinct proxies tracked; requests from further addresses
/// are still served but not counted per proxy (a scan from many sources
/// must not grow the map, nor the exposition, without limit).
pub const MAX_PROXIES: usize = 256;

impl ControlStats {
    /// Counts one request from `proxy`: `command` if it was understood,
    /// how long it took, and whether it failed.
    pub fn record(&self, proxy: IpAddr, command: Option<Command>, took: Duration, failed: bool) {
        // An IPv4 client on a dual-stack socket is the same proxy.
        let proxy = proxy.to_canonical();
        let mut map = self.proxies.lock().unwrap_or_else(PoisonError::into_inner);
        // Only a request that decoded to a command makes a sender a proxy:
        // junk from any (spoofable) address must not take the slots.
        if !map.contains_key(&proxy) && (command.is_none() || map.len() >= MAX_PROXIES) {
            return;
        }
        let c = map.entry(proxy).or_default();
        if let Some(cmd) = command {
            let i = cmd.index();
            c.requests[i] += 1;
            c.time[i] += took;
        }
        if failed {
            c.errors += 1;
        }
    }

    /// A copy of every proxy's counters, ordered by address.
    pub fn snapshot(&self) -> Vec<(IpAddr, ProxyCounters)> {
        let map = self.proxies.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter().map(|(k, v)| (*k, v.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_proxy_and_command() {
        let s = ControlStats::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        s.record(a, Some(Command::Offer), Duration::from_millis(2), false);
        s.record(a, Some(Command::Offer), Duration::from_millis(3), true);
        s.record(b, None, Duration::ZERO, true);
        assert_eq!(
            s.snapshot().len(),
            1,
            "junk from a new address is not a proxy"
        );
        s.record(b, Some(Command::Ping), Duration::ZERO, false);
        s.record(b, None, Duration::ZERO, true);
        let snap = s.snapshot();
        assert_eq!(snap.len(), 2);
        let (ip, c) = &snap[0];
        assert_eq!(*ip, a);
        assert_eq!(c.requests[1], 2, "offer is index 1");
        assert_eq!(c.time[1], Duration::from_millis(5));
        assert_eq!(c.errors, 1);
        assert_eq!(snap[1].1.requests.iter().sum::<u64>(), 1);
        assert_eq!(snap[1].1.errors, 1);
    }

    #[test]
    fn proxy_count_is_bounded() {
        let s = ControlStats::default();
        for i in 0..(MAX_PROXIES as u32 + 10) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            s.record(ip, Some(Command::Ping), Duration::ZERO, false);
        }
        assert_eq!(s.snapshot().len(), MAX_PROXIES);
    }
}
