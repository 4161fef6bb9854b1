//! The benchmark topology: three network namespaces joined by veth pairs.
//!
//! ```text
//!   caller ns                proxy ns                 callee ns
//!   c0 10.77.1.1/24 ──────── p0 10.77.1.2/24
//!                            p1 10.77.2.2/24 ──────── e0 10.77.2.1/24
//!   d0 10.77.3.1/24 ───────────────────────────────── d1 10.77.3.2/24   (direct path)
//! ```
//!
//! The daemon under test runs in the proxy namespace with interfaces
//! `caller/10.77.1.2` and `callee/10.77.2.2`; the generator's sockets are bound
//! to the wildcard address in the caller and callee namespaces, so the same
//! socket sends through the proxy (to the daemon's ports) or straight to the
//! other side over d0/d1 (the baseline). All addresses exist only inside the
//! namespaces; deleting the namespaces (on drop) removes everything.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;

use anyhow::{bail, Context as _};

/// Caller's address on c0.
pub const CALLER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
/// Proxy's caller-side address (p0).
pub const PROXY_CALLER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);
/// Proxy's callee-side address (p1).
pub const PROXY_CALLEE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 2);
/// Callee's address on e0.
pub const CALLEE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 1);
/// Caller's address on the direct pair (d0).
pub const DIRECT_CALLER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 3, 1);
/// Callee's address on the direct pair (d1).
pub const DIRECT_CALLEE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 3, 2);

/// Proxy's callee-side IPv6 address (p1), for `--callee-ipv6`.
pub const PROXY_CALLEE_IP6: Ipv6Addr = Ipv6Addr::new(0xfd77, 2, 0, 0, 0, 0, 0, 2);
/// Callee's IPv6 address on e0.
pub const CALLEE_IP6: Ipv6Addr = Ipv6Addr::new(0xfd77, 2, 0, 0, 0, 0, 0, 1);
/// Caller's IPv6 address on the direct pair (d0).
pub const DIRECT_CALLER_IP6: Ipv6Addr = Ipv6Addr::new(0xfd77, 3, 0, 0, 0, 0, 0, 1);
/// Callee's IPv6 address on the direct pair (d1).
pub const DIRECT_CALLEE_IP6: Ipv6Addr = Ipv6Addr::new(0xfd77, 3, 0, 0, 0, 0, 0, 2);

/// Prefix of every namespace this tool creates.
pub const NS_PREFIX: &str = "rtpb-";

/// Runs a command; returns stdout, or an error with its stderr.
pub fn sh(cmd: &[&str]) -> anyhow::Result<String> {
    let (prog, args) = cmd.split_first().context("empty command")?;
    let out = Command::new(prog)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `f` on a new thread that has entered namespace `ns`.
pub fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let path = format!("/var/run/netns/{ns}");
    let h = std::thread::spawn(move || -> anyhow::Result<T> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
        // SAFETY: valid namespace fd; setns affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("setns {path}"));
        }
        f()
    });
    match h.join() {
        Ok(r) => r,
        Err(_) => bail!("thread in namespace {ns} panicked"),
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` (as in `/sys/class/net/DEV/address`).
pub fn parse_mac(s: &str) -> anyhow::Result<[u8; 6]> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() != 6 {
        bail!("bad MAC address {s:?}");
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).with_context(|| format!("bad MAC address {s:?}"))?;
    }
    Ok(mac)
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The three namespaces and their veth pairs; deleted on drop unless kept.
pub struct Topology {
    /// Caller namespace name.
    pub caller: String,
    /// Proxy namespace name (the daemon runs here).
    pub proxy: String,
    /// Callee namespace name.
    pub callee: String,
    /// Whether this run created the namespaces (and so deletes them).
    owned: bool,
}

impl Topology {
    /// Namespace names for `tag` (the process id, or a fixed name for
    /// `--setup-only` / `--reuse`).
    pub fn names(tag: &str) -> [String; 3] {
        ["c", "p", "e"].map(|r| format!("{NS_PREFIX}{tag}-{r}"))
    }

    /// Whether all three namespaces of `tag` exist.
    pub fn exists(tag: &str) -> bool {
        Self::names(tag)
            .iter()
            .all(|n| std::path::Path::new("/var/run/netns").join(n).exists())
    }

    /// Uses existing namespaces (created by `--setup-only`); never deletes them.
    pub fn reuse(tag: &str) -> anyhow::Result<Topology> {
        if !Self::exists(tag) {
            bail!(
                "namespaces {:?} do not exist (create them with --setup-only)",
                Self::names(tag)
            );
        }
        let [caller, proxy, callee] = Self::names(tag);
        Ok(Topology {
            caller,
            proxy,
            callee,
            owned: false,
        })
    }

    /// Creates the namespaces, links, addresses and routes.
    pub fn create(tag: &str, keep: bool) -> anyhow::Result<Topology> {
        let [caller, proxy, callee] = Self::names(tag);
        for n in [&caller, &proxy, &callee] {
            sh(&["ip", "netns", "add", n])?;
        }
        // From here on, drop removes whatever exists.
        let t = Topology {
            caller,
            proxy,
            callee,
            owned: !keep,
        };
        t.build().context("building the topology")?;
        Ok(t)
    }

    fn build(&self) -> anyhow::Result<()> {
        let (c, p, e) = (
            self.caller.as_str(),
            self.proxy.as_str(),
            self.callee.as_str(),
        );
        sh(&[
            "ip", "-n", c, "link", "add", "c0", "type", "veth", "peer", "name", "p0", "netns", p,
        ])?;
        sh(&[
            "ip", "-n", e, "link", "add", "e0", "type", "veth", "peer", "name", "p1", "netns", p,
        ])?;
        sh(&[
            "ip", "-n", c, "link", "add", "d0", "type", "veth", "peer", "name", "d1", "netns", e,
        ])?;
        let addrs = [
            (c, "c0", format!("{CALLER_IP}/24")),
            (c, "d0", format!("{DIRECT_CALLER_IP}/24")),
            (p, "p0", format!("{PROXY_CALLER_IP}/24")),
            (p, "p1", format!("{PROXY_CALLEE_IP}/24")),
            (e, "e0", format!("{CALLEE_IP}/24")),
            (e, "d1", format!("{DIRECT_CALLEE_IP}/24")),
        ];
        for (ns, dev, a) in &addrs {
            sh(&["ip", "-n", ns, "addr", "add", a, "dev", dev])?;
            sh(&["ip", "-n", ns, "link", "set", dev, "up"])?;
        }
        // IPv6 on the callee side and the direct pair (`--callee-ipv6`).
        for (ns, dev, a) in [
            (p, "p1", format!("{PROXY_CALLEE_IP6}/64")),
            (e, "e0", format!("{CALLEE_IP6}/64")),
            (c, "d0", format!("{DIRECT_CALLER_IP6}/64")),
            (e, "d1", format!("{DIRECT_CALLEE_IP6}/64")),
        ] {
            sh(&["ip", "-n", ns, "-6", "addr", "add", &a, "dev", dev, "nodad"])?;
        }
        for ns in [c, p, e] {
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        sh(&[
            "ip",
            "-n",
            c,
            "route",
            "add",
            "10.77.2.0/24",
            "via",
            &PROXY_CALLER_IP.to_string(),
        ])?;
        sh(&[
            "ip",
            "-n",
            e,
            "route",
            "add",
            "10.77.1.0/24",
            "via",
            &PROXY_CALLEE_IP.to_string(),
        ])?;
        // The in-kernel dataplane's FIB mode (`ours-kernel-fib`) needs
        // forwarding enabled on the proxy's devices (the default mode only
        // falls back to the FIB while a neighbour is unknown); set for every
        // configuration so all share one setup.
        sh(&[
            "ip",
            "netns",
            "exec",
            p,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])?;
        // XDP never completes CHECKSUM_PARTIAL packets: compute UDP checksums in
        // software on every sending veth, for every path and configuration alike.
        for (ns, dev) in [(c, "c0"), (c, "d0"), (e, "e0"), (e, "d1")] {
            if let Err(err) = sh(&["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"]) {
                eprintln!("bench: warning: tx checksum offload stays on for {dev}: {err:#}");
            }
        }
        Ok(())
    }

    /// The MAC address of `dev` in namespace `ns`.
    pub fn mac(ns: &str, dev: &str) -> anyhow::Result<[u8; 6]> {
        let s = sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "cat",
            &format!("/sys/class/net/{dev}/address"),
        ])?;
        parse_mac(&s).with_context(|| format!("{dev}'s address"))
    }

    /// The ifindex of `dev` in namespace `ns`.
    pub fn ifindex(ns: &str, dev: &str) -> anyhow::Result<u32> {
        let s = sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "cat",
            &format!("/sys/class/net/{dev}/ifindex"),
        ])?;
        s.trim()
            .parse()
            .with_context(|| format!("bad ifindex {s:?}"))
    }

    /// XDP attachment of `dev` in the proxy namespace: "native", "generic",
    /// "offload" or "none".
    pub fn xdp_state(&self, dev: &str) -> String {
        let Ok(out) = sh(&["ip", "-n", &self.proxy, "-d", "link", "show", "dev", dev]) else {
            return "unknown".into();
        };
        if out.contains("xdpgeneric") {
            "generic".into()
        } else if out.contains("xdpoffload") {
            "offload".into()
        } else if out.contains("xdp") {
            "native".into()
        } else {
            "none".into()
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        for n in [&self.caller, &self.proxy, &self.callee] {
            let _ = sh(&["ip", "netns", "del", n]);
        }
    }
}

/// Deletes namespaces left behind by runs whose process is gone (SIGKILL,
/// power loss), so CI machines do not accumulate them.
pub fn remove_stale() {
    let Ok(list) = sh(&["ip", "netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue; // fixed-name (--setup-only) namespaces are the user's
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("bench: removing stale namespace {name}");
            let _ = sh(&["ip", "netns", "del", name]);
        }
    }
}

/// Removes the fixed-name topology `tag` (for `--teardown`).
pub fn teardown(tag: &str) {
    for n in Topology::names(tag) {
        let _ = sh(&["ip", "netns", "del", &n]);
    }
}

/// First port of the generator's sockets on both sides (even ports).
pub const CALLER_PORT_BASE: u16 = 16000;

/// The port call `c`'s caller (and callee) sends from, with `k` sockets per side.
pub fn caller_port(c: usize, k: usize) -> u16 {
    CALLER_PORT_BASE + 2 * (c % k) as u16
}
