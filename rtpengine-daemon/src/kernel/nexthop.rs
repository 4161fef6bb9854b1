//! Next hops resolved by the daemon, so the dataplane never needs the
//! kernel's FIB lookup (which answers only on devices with IP forwarding
//! enabled: a media server would have to be a router).
//!
//! Every entry [`Kernel::install`](super::Kernel::install) writes gets the
//! next hop of its (local source, peer) pair: the egress device, its MAC and
//! MTU, and the neighbour's MAC, as the kernel would use for a packet sent
//! from the local socket (`ip route get PEER from LOCAL`, then the neighbour
//! table). Pairs are cached with the flows using them. A monitor thread
//! follows rtnetlink: a neighbour change (new MAC, entry failed or removed)
//! rewrites the flows behind it at once; a route or link change (or lost
//! events) resolves every pair again. A pair without a usable next hop yet
//! (neighbour not resolved: the first packets, relayed in userspace, make
//! the stack resolve it, and the monitor then completes the flows), or
//! without one at all (local, blackhole or non-Ethernet routes), is written
//! without [`FlowTarget::NEXT_HOP`], and the dataplane falls back to the FIB
//! lookup (which works where forwarding is on) or to userspace.
//!
//! Lock order: the cache, then the maps (both installs and the monitor), so
//! a flow is never written with a next hop the monitor has already
//! replaced.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use rtpengine_common::{FlowKey, FlowTarget};

use super::maps::Maps;
use super::rtnl::{Event, Link, Monitor, Route, Rtnl};

/// How often the monitor looks at its stop flag.
const TICK: Duration = Duration::from_millis(200);

/// A pair: local source address, peer address.
type Pair = (IpAddr, IpAddr);

/// Pairs the AF_XDP relay asked for that no flow uses, kept (and followed
/// by the monitor) so its answers stay current; past this many they are
/// forgotten together (the generation moves, so the relay asks again) and
/// resolved again on use. Bounds the monitor's scan per neighbour event.
const MAX_RELAY_PAIRS: usize = 16_384;

/// What is known about one pair.
#[derive(Debug, Default)]
struct Entry {
    route: Option<(Route, Link)>,
    dmac: Option<[u8; 6]>,
    flows: HashSet<FlowKey>,
    /// The AF_XDP relay sends frames along it (see [`NextHops::lookup`]).
    relay: bool,
}

impl Entry {
    /// Writes this entry's next hop into `t` (or clears it).
    fn apply(&self, t: &mut FlowTarget) {
        match (self.route, self.dmac) {
            (Some((route, link)), Some(dmac)) => {
                t.flags |= FlowTarget::NEXT_HOP;
                t.oif = route.oif;
                t.smac = link.mac;
                t.dmac = dmac;
                t.mtu = route.mtu.map_or(link.mtu, |m| m.min(link.mtu));
            }
            _ => {
                t.flags &= !FlowTarget::NEXT_HOP;
                t.oif = 0;
                t.smac = [0; 6];
                t.dmac = [0; 6];
                t.mtu = 0;
            }
        }
    }
}

/// The cache of resolved pairs and the flows using them.
pub(super) struct NextHops {
    rtnl: Option<Rtnl>,
    /// Devices a redirect may leave through (those carrying the program:
    /// a native redirect to a device without it is dropped); `None` = any
    /// (a handle attached nowhere, as the packet tests use).
    egress: Option<HashSet<u32>>,
    pairs: HashMap<Pair, Entry>,
    by_flow: HashMap<FlowKey, Pair>,
    /// Moves whenever an answer [`NextHops::lookup`] gave may be stale (a
    /// pair's next hop changed, pairs were forgotten): the AF_XDP relay
    /// caches answers until it moves.
    generation: Arc<AtomicU64>,
}

impl NextHops {
    /// A cache with its query socket (`resolve` false, or no socket, e.g.
    /// no permission: every flow uses the FIB lookup; logged once), moving
    /// `generation` (see the field).
    pub(super) fn new(resolve: bool, generation: Arc<AtomicU64>) -> NextHops {
        let rtnl = if resolve {
            Rtnl::new()
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "No rtnetlink socket: the kernel dataplane uses the FIB lookup, which needs IP forwarding on the media devices");
                })
                .ok()
        } else {
            None
        };
        NextHops {
            rtnl,
            egress: None,
            pairs: HashMap::new(),
            by_flow: HashMap::new(),
            generation,
        }
    }

    /// Cached answers may be stale.
    fn changed(&self) {
        self.generation.fetch_add(1, Relaxed);
    }

    /// Only next hops through these devices are used; the others are left
    /// to the FIB lookup or userspace.
    pub(super) fn set_egress(&mut self, ifindexes: HashSet<u32>) {
        self.egress = Some(ifindexes);
    }

    /// No daemon-resolved next hops any more (nothing would keep them
    /// current): the FIB lookup or userspace for every flow.
    pub(super) fn disable(&mut self) {
        self.rtnl = None;
        self.pairs.clear();
        self.by_flow.clear();
        self.changed();
    }

    /// Fills `t`'s next hop for flow `key`, resolving its pair on a miss,
    /// and remembers that `key` uses it.
    pub(super) fn fill(&mut self, key: FlowKey, t: &mut FlowTarget) {
        let Some(pair) = pair_of(t) else {
            Entry::default().apply(t);
            return;
        };
        self.forget(&key);
        if !self.pairs.contains_key(&pair) {
            let entry = match &mut self.rtnl {
                // A failed query leaves the flow to the FIB lookup until
                // the pair is resolved again (a route or link change).
                Some(rtnl) => resolve(rtnl, pair, self.egress.as_ref()).unwrap_or_default(),
                None => Entry::default(),
            };
            self.pairs.insert(pair, entry);
        }
        if let Some(e) = self.pairs.get_mut(&pair) {
            e.apply(t);
            e.flows.insert(key);
        }
        self.by_flow.insert(key, pair);
    }

    /// `key` no longer exists (removed, flushed, or failed to install).
    pub(super) fn forget(&mut self, key: &FlowKey) {
        let Some(pair) = self.by_flow.remove(key) else {
            return;
        };
        if let Some(e) = self.pairs.get_mut(&pair) {
            e.flows.remove(key);
            if e.flows.is_empty() && !e.relay {
                self.pairs.remove(&pair);
            }
        }
    }

    fn pair_list(&self) -> Vec<Pair> {
        self.pairs.keys().copied().collect()
    }

    /// Forgets every flow (the table was flushed).
    pub(super) fn clear(&mut self) {
        self.pairs.clear();
        self.by_flow.clear();
        self.changed();
    }

    /// Applies a neighbour change; returns the pairs whose next hop changed.
    fn neighbour(&mut self, ifindex: u32, ip: IpAddr, mac: Option<[u8; 6]>) -> Vec<Pair> {
        let mut changed = Vec::new();
        for (pair, e) in &mut self.pairs {
            let Some((route, _)) = e.route else { continue };
            if route.oif == ifindex && route.via == ip && e.dmac != mac {
                e.dmac = mac;
                changed.push(*pair);
            }
        }
        changed
    }
}

/// The route, link and neighbour of `pair`, as far as known (nothing for
/// a route through a device not in `egress`); an error if a query failed.
fn resolve(
    rtnl: &mut Rtnl,
    (src, dst): Pair,
    egress: Option<&HashSet<u32>>,
) -> std::io::Result<Entry> {
    let looked_up = (|| -> std::io::Result<Entry> {
        let Some(route) = rtnl.route(src, dst)? else {
            return Ok(Entry::default());
        };
        if egress.is_some_and(|e| !e.contains(&route.oif)) {
            return Ok(Entry::default());
        }
        let Some(link) = rtnl.link(route.oif)? else {
            return Ok(Entry::default());
        };
        let dmac = rtnl.neighbour(route.oif, route.via)?;
        Ok(Entry {
            route: Some((route, link)),
            dmac,
            flows: HashSet::new(),
            relay: false,
        })
    })();
    looked_up.inspect_err(|e| {
        tracing::debug!(%src, %dst, error = %e, "Resolving the next hop failed; the dataplane uses the FIB lookup");
    })
}

/// A resolved next hop: egress device, its MAC and MTU, the neighbour's MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hop {
    pub(super) ifindex: u32,
    pub(super) smac: [u8; 6],
    pub(super) dmac: [u8; 6],
    pub(super) mtu: u16,
}

impl NextHops {
    /// The next hop of a packet from `src` to `dst`: `Ok(None)` without
    /// one (unresolved neighbour, local or non-Ethernet route, a device
    /// without the program, no rtnetlink), an error if a query failed (not
    /// cached: ask again). The pair stays cached and followed by the
    /// monitor, which moves the generation when it changes: the AF_XDP
    /// relay caches answers until then.
    pub(super) fn lookup(&mut self, src: IpAddr, dst: IpAddr) -> std::io::Result<Option<Hop>> {
        let Some(rtnl) = self.rtnl.as_mut() else {
            return Ok(None);
        };
        let pair = (src, dst);
        if !self.pairs.contains_key(&pair) {
            let entry = resolve(rtnl, pair, self.egress.as_ref())?;
            let relay_only = self.pairs.values().filter(|e| e.flows.is_empty()).count();
            if relay_only >= MAX_RELAY_PAIRS {
                self.pairs.retain(|_, e| !e.flows.is_empty());
                self.changed();
            }
            self.pairs.insert(pair, entry);
        }
        let Some(e) = self.pairs.get_mut(&pair) else {
            return Ok(None);
        };
        e.relay = true;
        let mut t = FlowTarget::default();
        e.apply(&mut t);
        Ok((t.flags & FlowTarget::NEXT_HOP != 0).then_some(Hop {
            ifindex: t.oif,
            smac: t.smac,
            dmac: t.dmac,
            mtu: t.mtu,
        }))
    }
}

/// The (local source, peer) pair of a target.
fn pair_of(t: &FlowTarget) -> Option<Pair> {
    let src = t.src.socket_addr(t.family)?.ip();
    let dst = t.dst.socket_addr(t.family)?.ip();
    Some((src, dst))
}

/// Rewrites the next hop of every flow of `pairs` in `FLOWS` (entries that
/// vanished or were replaced for another peer are left alone).
fn rewrite(hops: &NextHops, maps: &Mutex<Maps>, table: u32, pairs: &[Pair]) {
    let mut maps = maps.lock().unwrap_or_else(PoisonError::into_inner);
    for pair in pairs {
        let Some(e) = hops.pairs.get(pair) else {
            continue;
        };
        for key in &e.flows {
            let Ok(mut t) = maps.flows.get(key, 0) else {
                continue;
            };
            if t.table != table || pair_of(&t) != Some(*pair) {
                continue;
            }
            e.apply(&mut t);
            // BPF_EXIST: never re-create an entry removed meanwhile.
            if let Err(err) = maps.flows.insert(key, t, 2) {
                tracing::debug!(key = %super::maps::fmt_key(key), error = %err, "Updating a flow's next hop failed");
            }
        }
    }
}

/// Follows rtnetlink changes for the cache until `stop` is set or the cache
/// is gone.
pub(super) fn spawn_monitor(
    hops: Weak<Mutex<NextHops>>,
    maps: Weak<Mutex<Maps>>,
    table: u32,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    // The generation moves only when a cached pair's next hop changed: a
    // neighbour merely going stale must not make the AF_XDP relay resolve
    // everything again.
    let mut monitor = Monitor::new(TICK)?;
    let mut rtnl = Rtnl::new()?;
    std::thread::Builder::new()
        .name("rtpe-nexthop".into())
        .spawn(move || {
            let mut failing = false;
            while !stop.load(Relaxed) {
                let events = match monitor.recv() {
                    Ok(ev) => {
                        failing = false;
                        ev
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "Reading rtnetlink changes failed");
                            failing = true;
                        }
                        std::thread::sleep(TICK);
                        vec![Event::Topology]
                    }
                };
                if events.is_empty() {
                    continue;
                }
                let (Some(hops), Some(maps)) = (hops.upgrade(), maps.upgrade()) else {
                    return;
                };
                let mut topology = false;
                for ev in events {
                    match ev {
                        Event::Neighbour { ifindex, ip, mac } => {
                            let mut h = hops.lock().unwrap_or_else(PoisonError::into_inner);
                            let changed = h.neighbour(ifindex, ip, mac);
                            if !changed.is_empty() {
                                tracing::debug!(%ip, ifindex, ?mac, pairs = changed.len(), "Neighbour changed: updating kernel flows");
                                rewrite(&h, &maps, table, &changed);
                                h.changed();
                            }
                        }
                        Event::Topology => topology = true,
                    }
                }
                if topology {
                    resync(&hops, &maps, table, &mut rtnl);
                }
            }
        })?;
    Ok(())
}

/// Resolves every cached pair again (routes or links changed) and rewrites
/// the flows of those that changed (a pair whose queries failed keeps what
/// it had). Queries run without the cache locked.
fn resync(hops: &Mutex<NextHops>, maps: &Mutex<Maps>, table: u32, rtnl: &mut Rtnl) {
    // The snapshot releases the lock before the queries.
    let (pairs, egress) = {
        let h = hops.lock().unwrap_or_else(PoisonError::into_inner);
        (h.pair_list(), h.egress.clone())
    };
    let resolved: Vec<(Pair, Entry)> = pairs
        .into_iter()
        .filter_map(|p| Some((p, resolve(rtnl, p, egress.as_ref()).ok()?)))
        .collect();
    let mut h = hops.lock().unwrap_or_else(PoisonError::into_inner);
    let mut changed = Vec::new();
    for (pair, fresh) in resolved {
        let Some(e) = h.pairs.get_mut(&pair) else {
            continue;
        };
        if e.route != fresh.route || e.dmac != fresh.dmac {
            e.route = fresh.route;
            e.dmac = fresh.dmac;
            changed.push(pair);
        }
    }
    if changed.is_empty() {
        return;
    }
    tracing::debug!(
        pairs = changed.len(),
        "Routes changed: updating kernel flows"
    );
    rewrite(&h, maps, table, &changed);
    h.changed();
}
