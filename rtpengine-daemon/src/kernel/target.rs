//! Building map entries from `std::net` addresses.

use std::net::SocketAddr;

use anyhow::bail;
use rtpengine_common::{family_of, Endpoint, FlowKey, FlowTarget};

/// IPv4-mapped IPv6 addresses (from dual-stack sockets) become plain IPv4, which
/// is how they appear in packets.
fn canonical(sa: SocketAddr) -> SocketAddr {
    SocketAddr::new(sa.ip().to_canonical(), sa.port())
}

/// The key for packets arriving at local socket `local`.
pub fn flow_key(local: SocketAddr) -> FlowKey {
    FlowKey::from_socket_addr(canonical(local))
}

/// Builds a [`FlowTarget`]: "packets arriving at the key's socket leave from
/// `src` to `dst`", plus source policy, TOS and TTL.
///
/// For a stream relayed A → B: key = `flow_key(local socket A sends to)`,
/// `src` = the local socket B knows (the one B sends to), `dst` = B's address
/// (learned/confirmed), expected source = A's confirmed address.
#[derive(Clone, Copy, Debug)]
pub struct FlowTargetBuilder {
    t: FlowTarget,
}

/// What the dataplane does with packets from an unexpected source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourcePolicy {
    /// Forward them anyway (no check).
    Ignore,
    /// Drop them and count an error (`strict source`).
    Drop,
    /// Hand them to userspace (media handover, endpoint learning, ICE).
    Userspace,
}

impl FlowTargetBuilder {
    /// Forward from local `src` to peer `dst` (both the same family, which
    /// may differ from the key's: the dataplane then translates).
    pub fn new(src: SocketAddr, dst: SocketAddr) -> anyhow::Result<FlowTargetBuilder> {
        let (src, dst) = (canonical(src), canonical(dst));
        if src.is_ipv4() != dst.is_ipv4() {
            bail!("cannot offload {src} -> {dst}: a packet leaves with one address family");
        }
        Ok(FlowTargetBuilder {
            t: FlowTarget {
                family: family_of(&src),
                // Re-originated packets: the default TTL a local socket would use.
                ttl: 64,
                src: Endpoint::from_socket_addr(src),
                dst: Endpoint::from_socket_addr(dst),
                ..FlowTarget::default()
            },
        })
    }

    /// Checks the packets' source against `expected` with `policy` (of the
    /// key's family: packets arrive with it).
    pub fn expect_source(
        mut self,
        expected: SocketAddr,
        policy: SourcePolicy,
    ) -> anyhow::Result<FlowTargetBuilder> {
        let expected = canonical(expected);
        self.t.expected_src = Endpoint::from_socket_addr(expected);
        self.t.flags &= !(FlowTarget::STRICT_SOURCE | FlowTarget::PASS_ON_MISMATCH);
        self.t.flags |= match policy {
            SourcePolicy::Ignore => 0,
            SourcePolicy::Drop => FlowTarget::STRICT_SOURCE,
            SourcePolicy::Userspace => FlowTarget::PASS_ON_MISMATCH,
        };
        Ok(self)
    }

    /// Sets the TOS / traffic class of forwarded packets (`--tos`).
    pub fn tos(mut self, tos: u8) -> FlowTargetBuilder {
        self.t.tos = tos;
        self.t.flags |= FlowTarget::SET_TOS;
        self
    }

    /// Hands RTCP arriving at the key's (RTP) port to userspace.
    pub fn punt_rtcp(mut self) -> FlowTargetBuilder {
        self.t.flags |= FlowTarget::PUNT_RTCP;
        self
    }

    /// Sets the TTL / hop limit of forwarded packets (default 64; 0 keeps the
    /// received value).
    pub fn ttl(mut self, ttl: u8) -> FlowTargetBuilder {
        self.t.ttl = ttl;
        self
    }

    /// The target (its `table` is filled in by [`super::Kernel::install`]).
    pub fn build(self) -> FlowTarget {
        self.t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_targets() {
        let t = FlowTargetBuilder::new(
            "192.0.2.1:30002".parse().unwrap(),
            "198.51.100.7:6000".parse().unwrap(),
        )
        .unwrap()
        .expect_source("198.51.100.5:5000".parse().unwrap(), SourcePolicy::Drop)
        .unwrap()
        .tos(0xb8)
        .build();
        assert_eq!(t.family, 4);
        assert_eq!(t.flags, FlowTarget::STRICT_SOURCE | FlowTarget::SET_TOS);
        assert_eq!(
            t.src.socket_addr(4),
            Some("192.0.2.1:30002".parse().unwrap())
        );
        assert_eq!(t.dst.port, 6000u16.to_be_bytes());
        assert_eq!(t.ttl, 64);
        assert!(FlowTargetBuilder::new(
            "192.0.2.1:1".parse().unwrap(),
            "[2001:db8::1]:2".parse().unwrap()
        )
        .is_err());
        // An IPv4 local socket bridged to an IPv6 peer: the target has the
        // egress family, the expected source the ingress one.
        let x = FlowTargetBuilder::new(
            "[2001:db8::a]:30002".parse().unwrap(),
            "[2001:db8::7]:6000".parse().unwrap(),
        )
        .unwrap()
        .expect_source("198.51.100.5:5000".parse().unwrap(), SourcePolicy::Drop)
        .unwrap()
        .build();
        assert_eq!(x.family, 6);
        assert_eq!(
            x.expected_src.socket_addr(4),
            Some("198.51.100.5:5000".parse().unwrap())
        );
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        let k = flow_key("[::ffff:192.0.2.1]:30000".parse().unwrap());
        assert_eq!(
            k,
            FlowKey::from_socket_addr("192.0.2.1:30000".parse().unwrap())
        );
    }
}
