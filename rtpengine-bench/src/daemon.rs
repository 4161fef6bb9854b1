//! Starting and stopping the daemon under test in the proxy namespace.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::ng::Ng;
use super::topo::{in_ns, Topology, PROXY_CALLEE_IP, PROXY_CALLEE_IP6, PROXY_CALLER_IP};

/// Which daemon a scenario measures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// This project, userspace relaying (`--table=-1`).
    Ours,
    /// This project with in-kernel (XDP) forwarding (`--table=N`).
    OursKernel,
    /// The same with the per-packet FIB lookup for next hops
    /// (`--xdp-next-hop=fib`) instead of the ones the daemon resolves.
    OursKernelFib,
    /// Debian's upstream rtpengine, userspace relaying.
    Upstream,
    /// A daemon started by someone else (ng address and pid given).
    External,
    /// No daemon: the minimal XDP forwarder, with rules installed by the bench.
    Floor,
    /// No daemon: the minimal relay on kernel UDP sockets ([`super::sockfloor`]).
    SocketFloor,
    /// No daemon: the same relay over AF_XDP sockets ([`super::xskfloor`]).
    XskFloor,
    /// No daemon: the same relay with io_uring ([`super::uringfloor`]).
    UringFloor,
}

impl Kind {
    /// Parses a `--daemons` list entry.
    pub fn parse(s: &str) -> anyhow::Result<Kind> {
        Ok(match s {
            "ours" => Kind::Ours,
            "ours-kernel" | "kernel" => Kind::OursKernel,
            "ours-kernel-fib" => Kind::OursKernelFib,
            "upstream" => Kind::Upstream,
            "external" => Kind::External,
            "floor" => Kind::Floor,
            "socket-floor" => Kind::SocketFloor,
            "xsk-floor" => Kind::XskFloor,
            "uring-floor" => Kind::UringFloor,
            _ => bail!(
                "unknown daemon {s:?} (ours, ours-kernel, ours-kernel-fib, upstream, external, floor, socket-floor, xsk-floor, uring-floor)"
            ),
        })
    }

    /// Name used in tables and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::OursKernel => "ours-kernel",
            Kind::OursKernelFib => "ours-kernel-fib",
            Kind::Upstream => "upstream",
            Kind::External => "external",
            Kind::Floor => "floor",
            Kind::SocketFloor => "socket-floor",
            Kind::XskFloor => "xsk-floor",
            Kind::UringFloor => "uring-floor",
        }
    }
}

/// Settings for starting daemons.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Our daemon binary.
    pub ours_bin: PathBuf,
    /// Upstream's binary.
    pub upstream_bin: PathBuf,
    /// Kernel table for `ours-kernel`.
    pub table: u32,
    /// `--xdp-mode` for `ours-kernel` (empty: do not pass).
    pub xdp_mode: String,
    /// Extra arguments for every daemon we start.
    pub extra: Vec<String>,
    /// Directory for daemon logs.
    pub log_dir: PathBuf,
    /// Port range.
    pub port_min: u16,
    /// Port range.
    pub port_max: u16,
    /// `--timeout` (and `--offer-timeout` for ours), s.
    pub timeout: u64,
}

/// The ng address daemons we start listen on, inside the proxy namespace.
pub const NG_ADDR: &str = "127.0.0.1:2223";

/// A daemon process we started; SIGTERM then SIGKILL on drop.
pub struct DaemonProc {
    child: Option<Child>,
    /// Its pid (for /proc).
    pub pid: u32,
    /// ng address (inside the proxy namespace).
    pub ng: SocketAddr,
    /// Log file.
    pub log: PathBuf,
}

impl DaemonProc {
    /// Starts daemon `kind` in the proxy namespace and waits for ping.
    pub fn start(kind: &Kind, topo: &Topology, l: &Launch) -> anyhow::Result<DaemonProc> {
        let ng: SocketAddr = NG_ADDR.parse()?;
        let mut args: Vec<String> = vec![
            "--config-file=none".into(),
            "--foreground".into(),
            "--log-stderr".into(),
            format!("--interface=caller/{PROXY_CALLER_IP}"),
            format!("--interface=callee/{PROXY_CALLEE_IP}"),
            // IPv6 too, for `--callee-ipv6` (offers then ask for it).
            format!("--interface=callee/{PROXY_CALLEE_IP6}"),
            format!("--listen-ng={ng}"),
            format!("--port-min={}", l.port_min),
            format!("--port-max={}", l.port_max),
            // Direct-path intervals leave the calls without media for a
            // while: 600 s by default; the soak uses a short one.
            format!("--timeout={}", l.timeout),
            "--log-level=4".into(),
        ];
        let bin = match kind {
            Kind::Ours => {
                args.push("--table=-1".into());
                args.push(format!("--offer-timeout={}", l.timeout));
                &l.ours_bin
            }
            Kind::OursKernel | Kind::OursKernelFib => {
                args.push(format!("--table={}", l.table));
                args.push(format!("--offer-timeout={}", l.timeout));
                if !l.xdp_mode.is_empty() {
                    args.push(format!("--xdp-mode={}", l.xdp_mode));
                }
                if *kind == Kind::OursKernelFib {
                    args.push("--xdp-next-hop=fib".into());
                }
                &l.ours_bin
            }
            Kind::Upstream => {
                args.push("--table=-1".into());
                args.push(format!("--offer-timeout={}", l.timeout));
                &l.upstream_bin
            }
            Kind::External
            | Kind::Floor
            | Kind::SocketFloor
            | Kind::XskFloor
            | Kind::UringFloor => {
                bail!("{} is not started by the bench", kind.name())
            }
        };
        if !bin.exists() {
            bail!("{} is missing", bin.display());
        }
        args.extend(l.extra.iter().cloned());
        std::fs::create_dir_all(&l.log_dir)?;
        let log = l.log_dir.join(format!("{}.log", kind.name()));
        let logf =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &topo.proxy])
            .arg(bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf);
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl and setrlimit are async-signal-safe; the daemon dies
            // with us even on SIGKILL (`ip netns exec` execs the daemon in the
            // same process). Every daemon gets the same, high file limit: 10 000
            // calls need 40 000 sockets.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    let lim = libc::rlimit {
                        rlim_cur: 1 << 20,
                        rlim_max: 1 << 20,
                    };
                    libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let mut d = DaemonProc {
            child: Some(child),
            pid,
            ng,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(c) = d.child.as_mut() {
                if let Some(st) = c.try_wait()? {
                    bail!(
                        "{} exited during startup ({st}); log: {}",
                        kind.name(),
                        d.tail_log()
                    );
                }
            }
            let proxy = topo.proxy.clone();
            let up = in_ns(&proxy, move || {
                let ng = Ng::connect(ng)?;
                Ok(ng.ping(Duration::from_millis(200)))
            })?;
            if up {
                return Ok(d);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer ping on {ng}; log: {}",
                    kind.name(),
                    d.tail_log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last lines of the log.
    pub fn tail_log(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// Whether the log mentions `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|s| s.contains(needle))
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after 3 s).
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(c.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        self.stop();
    }
}
