//! A small synchronous rtnetlink client: where the kernel would send a
//! packet from a local address to a peer (route, egress device, neighbour),
//! and a monitor of the changes to those. The dataplane then forwards with
//! that next hop instead of `bpf_fib_lookup`, which only answers on devices
//! with IP forwarding enabled.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd as _;
use std::time::Duration;

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_route::link::{LinkAttribute, LinkLayerType, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteMetric, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// How long a query may take before it is given up (the kernel answers in
/// microseconds; this only bounds a wedged socket).
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// The route a packet takes: egress device and the address whose MAC it is
/// sent to (the gateway, or the destination itself on a direct route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Route {
    pub oif: u32,
    pub via: IpAddr,
    /// The route's MTU (a configured `mtu`, or a learned path MTU), if any.
    pub mtu: Option<u16>,
}

/// An Ethernet device's MAC and MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Link {
    pub mac: [u8; 6],
    pub mtu: u16,
    /// Receive queues the device has (`IFLA_NUM_RX_QUEUES`: allocated, some
    /// may not be in use).
    pub rx_queues: u32,
}

/// A query socket.
pub(super) struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    pub(super) fn new() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        set_rcvtimeo(&sock, QUERY_TIMEOUT)?;
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// The unicast route from `src` to `dst` (`None`: local, blackhole,
    /// unreachable, … — nothing the dataplane can send to).
    pub(super) fn route(&mut self, src: IpAddr, dst: IpAddr) -> io::Result<Option<Route>> {
        let mut m = RouteMessage::default();
        m.header.address_family = family(dst);
        m.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
        m.header.source_prefix_length = if src.is_ipv4() { 32 } else { 128 };
        m.attributes.push(RouteAttribute::Destination(dst.into()));
        m.attributes.push(RouteAttribute::Source(src.into()));
        let reply = match self.query(RouteNetlinkMessage::GetRoute(m)) {
            Ok(r) => r,
            // No route at all: not an error of ours.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENETUNREACH | libc::EHOSTUNREACH)
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let RouteNetlinkMessage::NewRoute(r) = reply else {
            return Err(io::Error::other("unexpected reply to RTM_GETROUTE"));
        };
        if r.header.kind != RouteType::Unicast {
            return Ok(None);
        }
        let mut oif = None;
        let mut via = dst;
        let mut mtu = None;
        for a in &r.attributes {
            match a {
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Metrics(m) => {
                    mtu = m.iter().find_map(|m| match m {
                        RouteMetric::Mtu(v) if *v > 0 => {
                            Some(u16::try_from(*v).unwrap_or(u16::MAX))
                        }
                        _ => None,
                    });
                }
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => via = IpAddr::V4(*g),
                RouteAttribute::Gateway(RouteAddress::Inet6(g)) => via = IpAddr::V6(*g),
                _ => {}
            }
        }
        Ok(oif.map(|oif| Route { oif, via, mtu }))
    }

    /// Device `index`'s MAC and MTU (`None`: not Ethernet).
    pub(super) fn link(&mut self, index: u32) -> io::Result<Option<Link>> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        let RouteNetlinkMessage::NewLink(l) = self.query(RouteNetlinkMessage::GetLink(m))? else {
            return Err(io::Error::other("unexpected reply to RTM_GETLINK"));
        };
        if l.header.link_layer_type != LinkLayerType::Ether {
            return Ok(None);
        }
        let mut mac = None;
        let mut mtu = None;
        let mut rx_queues = 1;
        for a in &l.attributes {
            match a {
                LinkAttribute::Address(a) => mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                LinkAttribute::Mtu(m) => mtu = Some(u16::try_from(*m).unwrap_or(u16::MAX)),
                LinkAttribute::NumRxQueues(n) => rx_queues = *n,
                _ => {}
            }
        }
        Ok(mac.zip(mtu).map(|(mac, mtu)| Link {
            mac,
            mtu,
            rx_queues,
        }))
    }

    /// The MAC of neighbour `ip` on device `oif`, if the kernel has a usable
    /// one (`None`: unknown yet, incomplete or failed).
    pub(super) fn neighbour(&mut self, oif: u32, ip: IpAddr) -> io::Result<Option<[u8; 6]>> {
        let mut m = NeighbourMessage::default();
        m.header.family = family(ip);
        m.header.ifindex = oif;
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
        match self.query(RouteNetlinkMessage::GetNeighbour(m)) {
            Ok(RouteNetlinkMessage::NewNeighbour(n)) => Ok(usable_mac(&n)),
            Ok(_) => Err(io::Error::other("unexpected reply to RTM_GETNEIGH")),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends one request and returns its reply (replies to earlier, timed
    /// out requests are skipped by sequence number).
    fn query(&mut self, msg: RouteNetlinkMessage) -> io::Result<RouteNetlinkMessage> {
        self.seq = self.seq.wrapping_add(1);
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST;
        hdr.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        req.finalize();
        let mut out = vec![0; req.header.length as usize];
        req.serialize(&mut out);
        self.sock.send(&out, 0)?;
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let mut off = 0;
            while off < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
                    .map_err(|e| io::Error::other(format!("parsing rtnetlink reply: {e}")))?;
                let len = m.header.length as usize;
                if m.header.sequence_number == self.seq {
                    match m.payload {
                        NetlinkPayload::InnerMessage(r) => return Ok(r),
                        NetlinkPayload::Error(e) => {
                            return Err(io::Error::from_raw_os_error(-e.raw_code()))
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }
}

/// A change the monitor saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Event {
    /// Neighbour `ip` on `ifindex` now has this usable MAC, or none.
    Neighbour {
        ifindex: u32,
        ip: IpAddr,
        mac: Option<[u8; 6]>,
    },
    /// Routes or links changed (or events were lost): resolve everything
    /// again.
    Topology,
}

/// A socket subscribed to neighbour, route and link changes.
pub(super) struct Monitor {
    sock: Socket,
    buf: Vec<u8>,
}

impl Monitor {
    /// Subscribes; [`Monitor::recv`] returns after at most `tick`.
    pub(super) fn new(tick: Duration) -> io::Result<Monitor> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        for group in [
            libc::RTNLGRP_NEIGH,
            libc::RTNLGRP_IPV4_ROUTE,
            libc::RTNLGRP_IPV6_ROUTE,
            libc::RTNLGRP_LINK,
        ] {
            sock.add_membership(group)?;
        }
        set_rcvtimeo(&sock, tick)?;
        Ok(Monitor {
            sock,
            buf: vec![0; 256 * 1024],
        })
    }

    /// The events of one datagram; empty after the tick without any.
    /// Lost events (`ENOBUFS`) become [`Event::Topology`].
    pub(super) fn recv(&mut self) -> io::Result<Vec<Event>> {
        let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Vec::new())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Ok(vec![Event::Topology]),
            Err(e) => return Err(e),
        };
        let mut events = Vec::new();
        let mut off = 0;
        while off < n {
            let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
            else {
                // Unparsable: be safe and resolve everything again.
                events.push(Event::Topology);
                break;
            };
            let len = m.header.length as usize;
            if let NetlinkPayload::InnerMessage(msg) = m.payload {
                match msg {
                    RouteNetlinkMessage::NewNeighbour(nb) => {
                        if let Some(ip) = neighbour_ip(&nb) {
                            events.push(Event::Neighbour {
                                ifindex: nb.header.ifindex,
                                ip,
                                mac: usable_mac(&nb),
                            });
                        }
                    }
                    RouteNetlinkMessage::DelNeighbour(nb) => {
                        if let Some(ip) = neighbour_ip(&nb) {
                            events.push(Event::Neighbour {
                                ifindex: nb.header.ifindex,
                                ip,
                                mac: None,
                            });
                        }
                    }
                    RouteNetlinkMessage::NewRoute(_)
                    | RouteNetlinkMessage::DelRoute(_)
                    | RouteNetlinkMessage::NewLink(_)
                    | RouteNetlinkMessage::DelLink(_) => events.push(Event::Topology),
                    _ => {}
                }
            }
            if len == 0 {
                break;
            }
            off += len;
        }
        Ok(events)
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn neighbour_ip(n: &NeighbourMessage) -> Option<IpAddr> {
    n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    })
}

/// The entry's MAC if the kernel would send to it now: reachable, or stale
/// / being re-probed (still the last known address, as the stack uses it),
/// or configured.
fn usable_mac(n: &NeighbourMessage) -> Option<[u8; 6]> {
    let usable = matches!(
        n.header.state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
    );
    if !usable {
        return None;
    }
    n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(m) => <[u8; 6]>::try_from(m.as_slice()).ok(),
        _ => None,
    })
}

fn set_rcvtimeo(sock: &Socket, d: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(d.subsec_micros() as i32),
    };
    // SAFETY: a valid socket descriptor and a timeval of the right size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
