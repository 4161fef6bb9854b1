//! The kernel-bypass userspace floor: the socket floor's job (fixed
//! destinations, no logic, one thread, 1 ms coalescing) done over AF_XDP
//! instead of UDP sockets, to show what a userspace relay can cost when the
//! kernel's UDP/IP stack is out of the path on the proxy.
//!
//! An XDP program (`rtpengine_xsk_floor`, rtpengine-bench-ebpf/src/main.rs) on the
//! proxy's two veths hands packets for the floor's ports to an AF_XDP socket
//! per device queue (`xsk.rs`); this process rewrites MACs, addresses, ports
//! and checksums in userspace and queues the frame on the other device's
//! socket. Like the socket floor it is a process of its own in the proxy
//! namespace (`rtpengine-bench --serve-xsk-floor CALLS PORT_BASE K C0_MAC
//! E0_MAC`), measured the same way.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use aya::maps::{HashMap as BpfHashMap, XskMap};
use rtpengine::net::Epoll;
use rtpengine_bench_ebpf::{FloorTarget, XSK_BASE_MAP, XSK_FLOOR_PROGRAM, XSK_MAP};
use rtpengine_common::csum;

use super::floorsrtp::FloorSrtp;
use super::floorsrtp::{srtp_arg, SRTP_ARG};
use super::sockfloor::FloorProc;
use super::topo::{fmt_mac, parse_mac, PROXY_CALLEE_IP, PROXY_CALLER_IP};
use super::xdp;
use rtpengine::net::xsk::{rx_queues, Xsk, FRAME};

const BATCH: u32 = 64;
/// UMEM frames per socket for reception and transmission: 2 048-entry
/// rings, deep enough for a flood.
const UMEM_FRAMES: (u32, u32) = (1024, 3072);
const COALESCE: Duration = Duration::from_millis(1);

/// Starts the XSK floor in namespace `ns` (see `sockfloor::start`); `c0`,
/// `e0` are the endpoints' MACs.
pub fn start(
    ns: &str,
    calls: usize,
    port_base: u16,
    k: usize,
    c0: [u8; 6],
    e0: [u8; 6],
    srtp: bool,
) -> anyhow::Result<FloorProc> {
    let mut args = vec![
        calls.to_string(),
        port_base.to_string(),
        k.to_string(),
        fmt_mac(c0),
        fmt_mac(e0),
    ];
    if srtp {
        args.push(SRTP_ARG.into());
    }
    FloorProc::start(ns, "--serve-xsk-floor", &args)
}

fn sysfs(dev: &str, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/{what}"))
        .with_context(|| format!("reading {dev}'s {what}"))
}

/// The floor's rules in the XDP floor's form (network byte order), indexed
/// like [`xdp::floor_rules`]: `2c` from the caller, `2c + 1` from the callee.
struct Rules {
    port_base: u16,
    targets: Vec<FloorTarget>,
}

impl Rules {
    /// Rewrites an Ethernet/IPv4/UDP frame in place; `Some(leg)` is the
    /// rule it matched: `2c` from call `c`'s caller, `2c + 1` from its
    /// callee (it leaves on the other side).
    fn rewrite(&self, f: &mut [u8]) -> Option<usize> {
        if f.len() < 42 || f[12..14] != [0x08, 0x00] || f[14] != 0x45 || f[23] != 17 {
            return None;
        }
        let side = match Ipv4Addr::new(f[30], f[31], f[32], f[33]) {
            PROXY_CALLER_IP => 0,
            PROXY_CALLEE_IP => 1,
            _ => return None,
        };
        let off = u16::from_be_bytes([f[36], f[37]]).checked_sub(self.port_base)?;
        if off % 2 != 0 {
            return None;
        }
        let r = self.targets.get(usize::from(off) + side)?;
        let (src, dst) = (r.src_addr, r.dst_addr);
        let (old_src, old_dst) = ([f[26], f[27], f[28], f[29]], [f[30], f[31], f[32], f[33]]);
        let old_ports = [f[34], f[35], f[36], f[37]];
        let new_ports = [r.src_port[0], r.src_port[1], r.dst_port[0], r.dst_port[1]];
        let addr_d = csum::replace(csum::replace(0, &old_src, &src), &old_dst, &dst);
        let ip_check = csum::update([f[24], f[25]], addr_d);
        let udp_check = csum::update_udp4(
            [f[40], f[41]],
            csum::replace(addr_d, &old_ports, &new_ports),
        );
        f[0..6].copy_from_slice(&r.dmac);
        f[6..12].copy_from_slice(&r.smac);
        f[24..26].copy_from_slice(&ip_check);
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..38].copy_from_slice(&new_ports);
        f[40..42].copy_from_slice(&udp_check);
        Some(usize::from(off) + side)
    }
}

/// The floor process: attaches, binds, says "ready", relays until killed.
pub fn serve(args: &[String]) -> anyhow::Result<()> {
    let (args, srtp) = srtp_arg(args);
    let [calls, port_base, k, c0, e0] = args else {
        bail!("usage: --serve-xsk-floor CALLS PORT_BASE K C0_MAC E0_MAC [srtp]");
    };
    let calls: usize = calls.parse().context("CALLS")?;
    let port_base: u16 = port_base.parse().context("PORT_BASE")?;
    let k: usize = k.parse().context("K")?;
    let devs = ["p0", "p1"];
    let mut dev = [(0u32, [0u8; 6]); 2];
    for (d, name) in dev.iter_mut().zip(devs) {
        d.0 = sysfs(name, "ifindex")?.trim().parse().context("ifindex")?;
        d.1 = parse_mac(&sysfs(name, "address")?)?;
    }
    let floor = xdp::floor_rules(
        calls,
        port_base,
        k,
        dev[0],
        dev[1],
        parse_mac(c0)?,
        parse_mac(e0)?,
    );
    let rules = Rules {
        port_base,
        targets: floor.iter().map(xdp::FloorRule::target).collect(),
    };
    // The program only needs the keys; the rewrite happens here.
    let mut ebpf = xdp::load_floor(XSK_FLOOR_PROGRAM, &devs, &floor)?;
    // Sockets: all queues of p0, then all of p1.
    let mut socks: [Vec<Xsk>; 2] = [Vec::new(), Vec::new()];
    let mut slot = 0u32;
    for (i, name) in devs.iter().enumerate() {
        let ifindex = dev[i].0;
        let mut base: BpfHashMap<_, u32, u32> =
            BpfHashMap::try_from(ebpf.map_mut(XSK_BASE_MAP).context(XSK_BASE_MAP)?)?;
        base.insert(ifindex, slot, 0)?;
        let mut xsks = XskMap::try_from(ebpf.map_mut(XSK_MAP).context(XSK_MAP)?)?;
        for q in 0..rx_queues(name)? {
            let x = Xsk::bind(ifindex, q, UMEM_FRAMES.0, UMEM_FRAMES.1)?;
            xsks.set(slot, x.fd(), 0)
                .with_context(|| format!("XSK_FLOOR[{slot}]"))?;
            socks[i].push(x);
            slot += 1;
        }
    }
    let ep = Epoll::new()?;
    for (i, x) in socks.iter().flatten().enumerate() {
        ep.add(x.fd(), i as u64)?;
    }
    let mut srtp = match srtp {
        true => Some(Srtp::new(calls)?),
        false => None,
    };
    println!("ready");
    std::io::stdout().flush()?;
    let [a, b] = &mut socks;
    relay(&ep, &rules, a, b, srtp.as_mut());
    drop(ebpf);
    Ok(())
}

/// `--srtp`: the floor's SRTP state and its scratch buffers.
struct Srtp {
    state: FloorSrtp,
    pkt: Vec<u8>,
    frame: Vec<u8>,
}

impl Srtp {
    fn new(calls: usize) -> anyhow::Result<Srtp> {
        Ok(Srtp {
            state: FloorSrtp::new(calls)?,
            pkt: Vec::with_capacity(FRAME),
            frame: Vec::with_capacity(FRAME),
        })
    }

    /// Rewritten frame `f` of `leg` with its RTP payload protected or
    /// unprotected (lengths and checksums recomputed: the payload
    /// changed); `None` if SRTP refused it.
    fn reframe(&mut self, leg: usize, f: &[u8]) -> Option<&[u8]> {
        let udp_len = usize::from(u16::from_be_bytes([f[38], f[39]]));
        let payload = f.get(42..34 + udp_len.max(8))?;
        let (pkt, frame) = (&mut self.pkt, &mut self.frame);
        pkt.clear();
        pkt.extend_from_slice(payload);
        if !self.state.transform(leg, pkt) {
            return None;
        }
        frame.clear();
        frame.extend_from_slice(&f[..42]);
        frame.extend_from_slice(pkt);
        let (ip_len, udp_len) = (28 + pkt.len() as u16, 8 + pkt.len() as u16);
        frame[16..18].copy_from_slice(&ip_len.to_be_bytes());
        frame[24..26].copy_from_slice(&[0, 0]);
        let ip = csum::ipv4_header_checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&ip);
        frame[38..40].copy_from_slice(&udp_len.to_be_bytes());
        frame[40..42].copy_from_slice(&[0, 0]);
        let (src, dst) = (
            [frame[26], frame[27], frame[28], frame[29]],
            [frame[30], frame[31], frame[32], frame[33]],
        );
        let udp = csum::udp4_checksum(src, dst, &frame[34..]);
        frame[40..42].copy_from_slice(&udp);
        Some(frame)
    }
}

fn relay(ep: &Epoll, rules: &Rules, p0: &mut [Xsk], p1: &mut [Xsk], mut srtp: Option<&mut Srtp>) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 16];
    let mut again = false;
    loop {
        let timeout = if again { 0 } else { -1 };
        if ep.wait(&mut events, timeout).is_err() {
            return;
        }
        let start = Instant::now();
        again = pass(rules, p0, p1, srtp.as_deref_mut()) | pass(rules, p1, p0, srtp.as_deref_mut());
        for x in p0.iter_mut().chain(p1.iter_mut()) {
            x.flush();
        }
        if !again {
            if let Some(rest) = COALESCE.checked_sub(start.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }
}

/// Relays what the sockets of one device received out of the other's first
/// socket; true if a socket had a full batch (more may be waiting).
fn pass(rules: &Rules, from: &mut [Xsk], to: &mut [Xsk], mut srtp: Option<&mut Srtp>) -> bool {
    let Some(out) = to.first_mut() else {
        return false;
    };
    let mut full = false;
    for x in from.iter_mut() {
        let n = x.receive(BATCH, |f| {
            let Some(leg) = rules.rewrite(f) else {
                return;
            };
            match srtp.as_deref_mut() {
                None => {
                    out.queue(f);
                }
                Some(s) => {
                    if let Some(frame) = s.reframe(leg, f) {
                        out.queue(frame);
                    }
                }
            }
        });
        full |= n == BATCH;
    }
    full
}

#[cfg(test)]
mod tests {
    use super::super::topo::{CALLEE_IP, CALLER_IP};
    use super::*;

    fn frame(dst: Ipv4Addr, port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 42 + 4];
        let len = f.len() as u16;
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&(len - 14).to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&CALLER_IP.octets());
        f[30..34].copy_from_slice(&dst.octets());
        f[34..36].copy_from_slice(&30000u16.to_be_bytes());
        f[36..38].copy_from_slice(&port.to_be_bytes());
        f[38..40].copy_from_slice(&(len - 34).to_be_bytes());
        f[42..].copy_from_slice(b"rtp!");
        let ip = csum::ipv4_header_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&ip);
        let udp = csum::udp4_checksum(
            f[26..30].try_into().unwrap(),
            f[30..34].try_into().unwrap(),
            &f[34..],
        );
        f[40..42].copy_from_slice(&udp);
        f
    }

    #[test]
    fn rewrite_keeps_checksums_valid_and_rejects_strangers() {
        let r = FloorTarget {
            src_addr: PROXY_CALLEE_IP.octets(),
            dst_addr: CALLEE_IP.octets(),
            src_port: 40000u16.to_be_bytes(),
            dst_port: 30002u16.to_be_bytes(),
            ifindex: 0,
            smac: [2; 6],
            dmac: [3; 6],
        };
        let rules = Rules {
            port_base: 40000,
            targets: vec![r, FloorTarget::default()],
        };
        let mut f = frame(PROXY_CALLER_IP, 40000);
        assert_eq!(rules.rewrite(&mut f), Some(0));
        assert_eq!(f[0..12], [[3u8; 6], [2u8; 6]].concat());
        assert_eq!(
            f[26..34],
            [PROXY_CALLEE_IP.octets(), CALLEE_IP.octets()].concat()
        );
        assert_eq!(f[34..38], [0x9c, 0x40, 0x75, 0x32]);
        // Valid checksums sum to zero (all ones before the fold's complement).
        let mut hdr = f[14..34].to_vec();
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(csum::ipv4_header_checksum(&hdr), [f[24], f[25]]);
        let mut udp = f[34..].to_vec();
        udp[6..8].copy_from_slice(&[0, 0]);
        let want = csum::udp4_checksum(
            f[26..30].try_into().unwrap(),
            f[30..34].try_into().unwrap(),
            &udp,
        );
        assert_eq!(want, [f[40], f[41]]);
        // --srtp: the payload grows by the tag, lengths and checksums
        // follow (a valid header or datagram sums to all ones, checksum
        // included), and the key the floor protects towards the callee
        // with opens it.
        let mut srtp = Srtp::new(1).unwrap();
        let mut rtp = vec![0x80, 0, 0, 1, 0, 0, 0, 0, 0x50, 0, 0, 1];
        rtp.extend_from_slice(&[9; 160]);
        let mut f = frame(PROXY_CALLER_IP, 40000);
        f.truncate(42);
        f.extend_from_slice(&rtp);
        f[16..18].copy_from_slice(&(28 + rtp.len() as u16).to_be_bytes());
        f[38..40].copy_from_slice(&(8 + rtp.len() as u16).to_be_bytes());
        assert_eq!(rules.rewrite(&mut f), Some(0));
        let out = srtp.reframe(0, &f).unwrap().to_vec();
        assert_eq!(out.len(), f.len() + 10);
        assert_eq!(out[16..18], (28 + rtp.len() as u16 + 10).to_be_bytes());
        assert_eq!(out[38..40], (8 + rtp.len() as u16 + 10).to_be_bytes());
        assert_eq!(csum::fold(csum::add_slice(0, &out[14..34])), 0xffff);
        let udp_len = (out.len() - 34) as u16;
        let pseudo = [&out[26..34], &[0, 17], &udp_len.to_be_bytes()[..]].concat();
        let sum = csum::add_slice(csum::add_slice(0, &pseudo), &out[34..]);
        assert_eq!(csum::fold(sum), 0xffff);
        let mut back = out[42..].to_vec();
        let ours = crate::floorsrtp::keys(0).unwrap().0;
        crate::floorsrtp::context(&ours)
            .unwrap()
            .unprotect_rtp(&mut back)
            .unwrap();
        assert_eq!(back, rtp);
        // A packet the callee's key did not protect is dropped.
        assert!(srtp.reframe(1, &f).is_none());
        // Odd port, port past the last call, other address, short frame.
        for mut f in [
            frame(PROXY_CALLER_IP, 40001),
            frame(PROXY_CALLER_IP, 40002),
            frame(CALLER_IP, 40000),
            frame(PROXY_CALLER_IP, 40000)[..41].to_vec(),
        ] {
            assert_eq!(rules.rewrite(&mut f), None);
        }
    }
}
