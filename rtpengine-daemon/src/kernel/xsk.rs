//! The dataplane's side of the relay's AF_XDP path ([`XskBackend`]): which
//! AF_XDP sockets serve this table on each device (`XSKS`, `XSK_SLOTS`),
//! steering a stream's packets to them (a [`FlowTarget::TO_XSK`] flow), and
//! the next hops of the frames the relay sends.
//!
//! Table `t` owns `XSKS` slots `t * XSK_SLOTS_PER_TABLE ..`: daemons sharing
//! the maps never hand out each other's slots. A socket leaves `XSKS` when
//! it closes (the kernel removes it), so a daemon gone leaves empty slots,
//! which the program treats as "to the stack"; the `XSK_SLOTS` entries are
//! removed at close and at the next open of the table.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;

use anyhow::{anyhow, Context as _};
use rtpengine_common::{FlowTarget, XskSlotKey, XskSlots, XSK_SLOTS_PER_TABLE};

use super::maps::{ignore_missing, BPF_ANY};
use super::rtnl::Rtnl;
use super::{flow_key, xdp_link, Kernel};
use crate::relay::offload::{NextHop, OffloadError, XskBackend, XskDevice};

impl Kernel {
    /// Removes this table's `XSK_SLOTS` entries (their sockets are gone or
    /// about to be).
    pub(super) fn clear_xsk_slots(&self) {
        let Ok(mut maps) = self.maps() else { return };
        let mine: Vec<XskSlotKey> = maps
            .xsk_slots
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.table == self.table.get())
            .collect();
        for k in mine {
            let _ = ignore_missing(maps.xsk_slots.remove(&k));
        }
        maps.xsk_used = 0;
    }

    /// Removes this table's steering flows (left by a previous instance
    /// that kept its flows for a restart: their sockets are gone, and the
    /// restored ones steer again with their first packet).
    pub(super) fn remove_steering_flows(&self) -> usize {
        let Ok(mut maps) = self.maps() else { return 0 };
        let keys: Vec<_> = maps
            .flows
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, t)| t.table == self.table.get() && t.flags & FlowTarget::TO_XSK != 0)
            .map(|(k, _)| k)
            .collect();
        for k in &keys {
            let _ = ignore_missing(maps.flows.remove(k));
            let _ = ignore_missing(maps.stats.remove(k));
        }
        keys.len()
    }
}

impl XskBackend for Kernel {
    fn xsk_devices(&self) -> anyhow::Result<Vec<XskDevice>> {
        // Over rtnetlink: sysfs shows the devices of the namespace it was
        // mounted in, which need not be ours.
        let mut rtnl = Rtnl::new().context("rtnetlink socket")?;
        let mut out = Vec::new();
        for a in self.attachments() {
            let ifindex = xdp_link::ifindex(&a.device)
                .with_context(|| format!("no network device {}", a.device))?;
            let Some(link) = rtnl
                .link(ifindex)
                .with_context(|| format!("reading {}", a.device))?
            else {
                tracing::info!(device = %a.device, "No AF_XDP relay on a device that is not Ethernet");
                continue;
            };
            out.push(XskDevice {
                name: a.device,
                ifindex,
                rx_queues: link.rx_queues,
            });
        }
        Ok(out)
    }

    fn bind_xsk(&self, ifindex: u32, fds: &[RawFd]) -> anyhow::Result<usize> {
        let mut maps = self.maps()?;
        let free = XSK_SLOTS_PER_TABLE - maps.xsk_used;
        // Queues past the table's slots stay with the stack.
        let fds = &fds[..fds.len().min(free as usize)];
        let n = fds.len() as u32;
        if n == 0 {
            return Ok(0);
        }
        let base = self.table.get() * XSK_SLOTS_PER_TABLE + maps.xsk_used;
        for (i, fd) in (0u32..).zip(fds) {
            maps.xsks
                .set(base + i, *fd, 0)
                .with_context(|| format!("putting an AF_XDP socket into XSKS[{}]", base + i))?;
        }
        let key = XskSlotKey {
            table: self.table.get(),
            ifindex,
        };
        maps.xsk_slots
            .insert(key, XskSlots { base, queues: n }, BPF_ANY)
            .map_err(|e| anyhow!("XSK_SLOTS for ifindex {ifindex}: {e}"))?;
        maps.xsk_used += n;
        Ok(fds.len())
    }

    fn steer_flow(&self, local: SocketAddr) -> Result<(), OffloadError> {
        let key = flow_key(local);
        let target = FlowTarget {
            flags: FlowTarget::TO_XSK,
            family: key.family,
            ..FlowTarget::default()
        };
        // No next hop to track: the relay resolves its own.
        self.nexthops().forget(&key);
        self.write(key, target).map_err(OffloadError::Rejected)
    }

    fn next_hop(&self, src: IpAddr, dst: IpAddr) -> std::io::Result<Option<NextHop>> {
        let hop = self.nexthops().lookup(src, dst)?;
        Ok(hop.map(|hop| NextHop {
            ifindex: hop.ifindex,
            smac: hop.smac,
            dmac: hop.dmac,
            mtu: hop.mtu,
        }))
    }

    fn xsk_slots_free(&self) -> u32 {
        self.maps()
            .map_or(0, |m| XSK_SLOTS_PER_TABLE.saturating_sub(m.xsk_used))
    }

    fn hop_generation(&self) -> u64 {
        self.hop_generation
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}
