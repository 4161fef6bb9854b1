//! Network namespaces, and running code or commands inside them.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::util::require_root;

static NS_SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted on drop.
pub struct Netns {
    /// Its name under /var/run/netns.
    pub name: String,
}

impl Netns {
    /// Creates a uniquely named namespace with `lo` up.
    pub fn new(tag: &str) -> anyhow::Result<Netns> {
        require_root();
        let name = format!(
            "rtpe-{tag}-{}-{}",
            std::process::id(),
            NS_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name])?;
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, cmd: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend(cmd);
        sh(&full)
    }

    /// Runs `f` on a thread that has entered the namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.name, f)
    }

    /// A UDP socket bound to `addr` inside the namespace (2 s read timeout).
    pub fn bind_udp(&self, addr: &str) -> UdpSocket {
        let addr: SocketAddr = addr.parse().expect("socket address");
        let s = self
            .run(move || UdpSocket::bind(addr))
            .expect("bind in netns");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        s
    }

    /// UDP datagrams dropped for a bad checksum inside the namespace, IPv4
    /// and IPv6 (`Udp: InCsumErrors` of `/proc/net/snmp` plus
    /// `Udp6InCsumErrors` of `/proc/net/snmp6`).
    pub fn udp_in_csum_errors(&self) -> u64 {
        let snmp6 = self.exec(&["cat", "/proc/net/snmp6"]).unwrap();
        let v6: u64 = snmp6
            .lines()
            .find_map(|l| l.strip_prefix("Udp6InCsumErrors"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        v6 + self.udp4_in_csum_errors()
    }

    fn udp4_in_csum_errors(&self) -> u64 {
        let snmp = self.exec(&["cat", "/proc/net/snmp"]).unwrap();
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
        let idx = names
            .split_whitespace()
            .position(|n| n == "InCsumErrors")
            .unwrap();
        values.split_whitespace().nth(idx).unwrap().parse().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.name]);
    }
}

/// Runs `f` on a new thread inside namespace `ns` (setns affects only the
/// calling thread).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        use std::os::fd::AsRawFd;
        // SAFETY: valid namespace fd; affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread panicked")
}

/// Runs a command and returns its stdout; fails with its stderr otherwise.
pub fn sh(cmd: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
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
