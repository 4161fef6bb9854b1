//! `cargo xtask bench`: installs what the benchmark compares against (Debian's
//! upstream `rtpengine-daemon`, without letting its service start) and the plot
//! dependency, builds the daemon and `rtpengine-bench` in release mode, and runs
//! the benchmark. It mounts nothing: the bench loads its XDP programs with
//! private maps, and the daemon under test mounts bpffs itself if it needs it.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use crate::toolchain::{self, step};
use crate::{cargo, status};

const UPSTREAM_BIN: &str = "/usr/bin/rtpengine";
const POLICY_RC: &str = "/usr/sbin/policy-rc.d";

/// Runs the benchmark; `args` go to `rtpengine-bench`.
pub fn bench(root: &Path, quick: bool, args: &[String]) -> anyhow::Result<()> {
    if !toolchain::is_root() {
        bail!("the benchmark needs root (network namespaces, XDP): run `sudo cargo xtask bench`");
    }
    toolchain::ensure(true)?;
    if needs_upstream(args) {
        ensure_upstream()?;
    }
    // Only the plot needs matplotlib (a run without `--plot` must not
    // depend on installing it).
    if args.iter().any(|a| a.starts_with("--plot")) {
        ensure_matplotlib()?;
    }
    status(cargo().args([
        "build",
        "--release",
        "--package",
        "rtpengine-daemon",
        "--bin",
        "rtpengine",
        "--package",
        "rtpengine-bench",
        "--bin",
        "rtpengine-bench",
    ]))?;
    let bin = root.join("target/release/rtpengine-bench");
    let mut cmd = Command::new(&bin);
    if quick {
        cmd.arg("--quick");
    }
    cmd.args(args);
    step(&format!("running {} {}", bin.display(), args.join(" ")));
    status(&mut cmd)
}

/// Whether the run measures upstream: named in `--daemons`, or in the
/// default list (the soak's default is ours-kernel alone).
fn needs_upstream(args: &[String]) -> bool {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let list = match a.strip_prefix("--daemons") {
            Some("") => it.next().map(String::as_str),
            Some(rest) => rest.strip_prefix('='),
            None => continue,
        };
        return list.is_some_and(|l| l.split(',').any(|d| d == "upstream"));
    }
    !args
        .iter()
        .any(|a| a == "--soak" || a.starts_with("--soak="))
}

fn apt_get(args: &[&str]) -> anyhow::Result<()> {
    status(
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Installs `rtpengine-daemon` if its binary is missing, with a policy-rc.d
/// that forbids starting services, and makes sure no packaged instance runs.
fn ensure_upstream() -> anyhow::Result<()> {
    if !Path::new(UPSTREAM_BIN).exists() {
        step("installing Debian's rtpengine-daemon (the upstream daemon the benchmark compares with)");
        // Keep the package's own service from starting (the bench starts the
        // binary itself, in the foreground, in its namespace).
        let own_policy = !Path::new(POLICY_RC).exists();
        if own_policy {
            std::fs::write(
                POLICY_RC,
                "#!/bin/sh\n# temporary, from cargo xtask bench\nexit 101\n",
            )?;
            set_mode(POLICY_RC, 0o755)?;
        }
        let res = apt_get(&["update"]).and_then(|_| {
            apt_get(&[
                "install",
                "-y",
                "--no-install-recommends",
                "rtpengine-daemon",
            ])
        });
        if own_policy {
            let _ = std::fs::remove_file(POLICY_RC);
        }
        res.context("installing rtpengine-daemon")?;
        // Should the init system have started it anyway, stop it and keep it off.
        if on_path("systemctl") && Path::new("/run/systemd/system").exists() {
            let _ = Command::new("systemctl")
                .args(["disable", "--now", "rtpengine-daemon.service"])
                .stderr(Stdio::null())
                .status();
        } else if on_path("update-rc.d") {
            let _ = Command::new("update-rc.d")
                .args(["rtpengine-daemon", "disable"])
                .stderr(Stdio::null())
                .status();
        }
    }
    for pid in packaged_instances() {
        step(&format!(
            "stopping a packaged rtpengine instance (pid {pid}) started by the package"
        ));
        kill(pid);
    }
    Ok(())
}

/// Upstream daemons running daemonized (parent pid 1): the package's service.
fn packaged_instances() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            let ppid_is_init = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.split_whitespace().nth(1) == Some("1"))
                })
                .unwrap_or(false);
            exe.as_deref() == Some(Path::new(UPSTREAM_BIN)) && ppid_is_init
        })
        .collect()
}

/// SIGTERM to one pid (no libc dependency in xtask).
fn kill(pid: i32) {
    let _ = Command::new("kill").arg(pid.to_string()).status();
}

fn ensure_matplotlib() -> anyhow::Result<()> {
    // Debian's interpreter, where the package installs (not a pyenv shim).
    let py = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let ok = Command::new(py)
        .args(["-c", "import matplotlib"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Ok(());
    }
    step("installing python3-matplotlib (for the CPU-per-packet plot)");
    apt_get(&[
        "install",
        "-y",
        "--no-install-recommends",
        "python3-matplotlib",
    ])
    .or_else(|_| {
        apt_get(&["update"])?;
        apt_get(&[
            "install",
            "-y",
            "--no-install-recommends",
            "python3-matplotlib",
        ])
    })
    .context("installing python3-matplotlib")
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

fn set_mode(path: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::needs_upstream;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn upstream_is_installed_only_when_measured() {
        assert!(needs_upstream(&args(&[])));
        assert!(needs_upstream(&args(&["--calls", "100"])));
        assert!(!needs_upstream(&args(&["--soak", "60"])));
        assert!(!needs_upstream(&args(&[
            "--soak",
            "60",
            "--daemons",
            "ours,ours-kernel"
        ])));
        assert!(needs_upstream(&args(&[
            "--soak=60",
            "--daemons=ours,upstream"
        ])));
        assert!(!needs_upstream(&args(&["--daemons", "ours-kernel"])));
    }
}
