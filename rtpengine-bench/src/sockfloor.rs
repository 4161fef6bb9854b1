//! The userspace floor: the cheapest relay on kernel UDP sockets this bench
//! knows, to show how much of a userspace relay's cost is the kernel's.
//!
//! It uses our relay's strategy and syscalls (an edge-triggered epoll set,
//! one `recvmmsg` per ready socket, `sendto` from the paired socket, 1 ms
//! coalescing; `rtpengine::net`) on one thread, the cheapest way to serve the
//! bench's rates, and nothing else: destinations are fixed, so there is no
//! learning, no lock, no counter, no signalling.
//! Like a daemon it is a process of its own in the proxy namespace
//! (`rtpengine-bench --serve-socket-floor CALLS PORT_BASE K`), measured the
//! same way.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rtpengine::net::{send_to, Epoll, RecvBatch};

use super::floorsrtp::{srtp_arg, FloorSrtp, SRTP_ARG};
use super::topo::caller_port;
use super::topo::{CALLEE_IP, CALLER_IP, PROXY_CALLEE_IP, PROXY_CALLER_IP};

const BATCH: usize = 32;
const COALESCE: Duration = Duration::from_millis(1);

/// One receiving socket and where its packets go.
pub struct Leg {
    /// The socket packets arrive on.
    pub rx: RawFd,
    /// The paired socket they leave from.
    pub tx: RawFd,
    /// Their destination.
    pub dst: SocketAddrV4,
}

/// A running floor process (socket, io_uring or AF_XDP floor); killed on drop.
pub struct FloorProc {
    child: Child,
    /// Its pid (for /proc).
    pub pid: u32,
}

impl FloorProc {
    /// Runs `rtpengine-bench SERVE_FLAG ARGS…` in namespace `ns` and returns
    /// once it says "ready".
    pub fn start(ns: &str, serve_flag: &str, args: &[String]) -> anyhow::Result<FloorProc> {
        let exe = std::env::current_exe().context("locating rtpengine-bench")?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(exe)
            .arg(serve_flag)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {serve_flag}"))?;
        let pid = child.id();
        let mut floor = FloorProc { child, pid };
        let out = floor.child.stdout.take().context("floor stdout")?;
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!("{serve_flag} did not start (said {line:?})");
        }
        Ok(floor)
    }
}

impl Drop for FloorProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the socket floor in namespace `ns` for `calls` calls on ports
/// `port_base + 2c` of both proxy addresses, relaying to the ports the
/// generator uses with `k` sockets per side; returns once it is bound.
/// With `srtp` it also protects and unprotects every packet
/// ([`FloorSrtp`]).
pub fn start(
    ns: &str,
    calls: usize,
    port_base: u16,
    k: usize,
    srtp: bool,
) -> anyhow::Result<FloorProc> {
    let mut args = vec![calls.to_string(), port_base.to_string(), k.to_string()];
    if srtp {
        args.push(SRTP_ARG.into());
    }
    FloorProc::start(ns, "--serve-socket-floor", &args)
}

/// Parses `CALLS PORT_BASE K`, binds both proxy-side sockets of every call
/// and pairs them: the sockets (kept open by the caller) and one leg per
/// receiving socket.
pub fn bind_legs(args: &[String]) -> anyhow::Result<(Vec<UdpSocket>, Vec<Leg>)> {
    let [calls, port_base, k] = args else {
        bail!("usage: CALLS PORT_BASE K");
    };
    let calls: usize = calls.parse().context("CALLS")?;
    let port_base: u16 = port_base.parse().context("PORT_BASE")?;
    let k: usize = k.parse().context("K")?;
    let mut socks = Vec::with_capacity(2 * calls);
    for c in 0..calls {
        let p = port_base + 2 * c as u16;
        for ip in [PROXY_CALLER_IP, PROXY_CALLEE_IP] {
            let s = UdpSocket::bind(SocketAddrV4::new(ip, p))
                .with_context(|| format!("floor: bind {ip}:{p}"))?;
            s.set_nonblocking(true)?;
            socks.push(s);
        }
    }
    let mut legs = Vec::with_capacity(socks.len());
    for c in 0..calls {
        let (a, b) = (&socks[2 * c], &socks[2 * c + 1]);
        let d = caller_port(c, k);
        legs.push(Leg {
            rx: a.as_raw_fd(),
            tx: b.as_raw_fd(),
            dst: SocketAddrV4::new(CALLEE_IP, d),
        });
        legs.push(Leg {
            rx: b.as_raw_fd(),
            tx: a.as_raw_fd(),
            dst: SocketAddrV4::new(CALLER_IP, d),
        });
    }
    Ok((socks, legs))
}

/// The floor process: binds, says "ready", relays until killed.
pub fn serve(args: &[String]) -> anyhow::Result<()> {
    let (args, srtp) = srtp_arg(args);
    let (_socks, legs) = bind_legs(args)?;
    let mut srtp = match srtp {
        true => Some(FloorSrtp::new(legs.len() / 2)?),
        false => None,
    };
    let ep = Epoll::new()?;
    for (i, leg) in legs.iter().enumerate() {
        ep.add(leg.rx, i as u64)?;
    }
    println!("ready");
    std::io::stdout().flush()?;
    relay(&ep, &legs, srtp.as_mut());
    Ok(())
}

fn relay(ep: &Epoll, legs: &[Leg], mut srtp: Option<&mut FloorSrtp>) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut batch = RecvBatch::new(BATCH, 2048);
    let mut pkt = Vec::with_capacity(2048);
    let (mut again, mut ready): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
    loop {
        let timeout = if again.is_empty() { -1 } else { 0 };
        let Ok(n) = ep.wait(&mut events, timeout) else {
            return;
        };
        let start = Instant::now();
        ready.clear();
        ready.append(&mut again);
        ready.extend(events[..n].iter().map(|e| e.u64));
        for &token in &ready {
            let Some(leg) = legs.get(token as usize) else {
                continue;
            };
            let got = batch.recv(leg.rx).unwrap_or(0);
            for i in 0..got {
                let mut out = batch.get(i).0;
                if let Some(srtp) = srtp.as_deref_mut() {
                    pkt.clear();
                    pkt.extend_from_slice(out);
                    if !srtp.transform(token as usize, &mut pkt) {
                        continue;
                    }
                    out = &pkt;
                }
                let _ = send_to(leg.tx, out, SocketAddr::V4(leg.dst));
            }
            if got == BATCH {
                again.push(token);
            }
        }
        if again.is_empty() && n < events.len() {
            if let Some(rest) = COALESCE.checked_sub(start.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }
}
