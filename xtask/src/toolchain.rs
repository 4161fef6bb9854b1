//! Checks and installs the build and test prerequisites (the recipe in
//! shared/reference/toolchain.md): nightly with rust-src, bpf-linker 0.13
//! linked against the nightly's own libLLVM, bpftool and iproute2.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use crate::status;

const BPF_LINKER_VERSION: &str = "0.13.0";

/// Prints one setup step.
pub(crate) fn step(msg: &str) {
    eprintln!("xtask: {msg}");
}

/// The command's stdout if it ran and exited 0 (stderr discarded).
pub(crate) fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes sure everything needed to build (and, with `for_tests`, to run the
/// privileged tests) is present, installing what is missing.
pub fn ensure(for_tests: bool) -> anyhow::Result<()> {
    ensure_nightly()?;
    ensure_bpf_linker()?;
    let mut packages = vec![("bpftool", "bpftool"), ("ip", "iproute2")];
    if for_tests {
        packages.push(("ethtool", "ethtool"));
    }
    ensure_apt(&packages)?;
    // DTLS-SRTP links OpenSSL (the `openssl` crate finds it with pkg-config).
    if !Path::new("/usr/include/openssl/ssl.h").exists() || !on_path("pkg-config") {
        apt_install(&["libssl-dev", "pkg-config"])?;
    }
    if for_tests {
        ensure_test_clients()?;
    }
    Ok(())
}

/// Debian packages of the real clients the tests drive (tests/tests/clients_*.rs).
const CLIENT_PACKAGES: &[(&str, &str)] = &[
    // Kamailio 5.6; rtpengine.so is in the main package.
    ("kamailio", "kamailio"),
    // SIPp, with /usr/share/sip-tester/g711a.pcap.
    ("sipp", "sip-tester"),
    // sipwise's Perl ng client and NGCP::Rtpengine (not rtpengine-daemon).
    ("rtpengine-ng-client", "rtpengine-utils"),
    ("node", "nodejs"),
    ("npm", "npm"),
    // Debian's rtpengine: its stock /etc/rtpengine/rtpengine.conf is a
    // startup test input (tests/tests/startup.rs); never started here.
    ("rtpengine", "rtpengine-daemon"),
    // The systemd unit's lint (systemd-analyze verify) and its capability
    // test (capsh decodes the capability masks).
    ("systemd-analyze", "systemd"),
    ("capsh", "libcap2-bin"),
    // The container image's tests (tests/tests/container.rs): podman with
    // runc, and debootstrap for the base image (no Docker Hub here).
    ("podman", "podman"),
    ("runc", "runc"),
    ("debootstrap", "debootstrap"),
    // Call persistence (tests/tests/restart.rs): the tests start their own
    // server (never the packaged service) and use redis-cli.
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
    // The real browser of tests/tests/webrtc_browser.rs (headless).
    ("chromium", "chromium"),
    // tests/tests/ice.rs blocks one of the daemon's addresses for a phone
    // (ICE must select another).
    ("iptables", "iptables"),
];

/// Perl modules `rtpengine-ng-client` loads that rtpengine-utils does not
/// depend on (NGCP::Rtpengine `use JSON`), with their packages.
const PERL_MODULES: &[(&str, &str)] = &[("JSON", "libjson-perl"), ("Bencode", "libbencode-perl")];

/// Python modules the tests import with Debian's `/usr/bin/python3` (the
/// Prometheus text parser for `/metrics`), with their packages.
const PYTHON_MODULES: &[(&str, &str)] = &[("prometheus_client", "python3-prometheus-client")];

/// Installs the test clients and the npm packages in tests/node.
fn ensure_test_clients() -> anyhow::Result<()> {
    {
        // Installing kamailio must not start its service (it would listen on
        // port 5060 of every address): deny service starts meanwhile.
        let _guard = PolicyRcD::deny_starts()?;
        ensure_apt(CLIENT_PACKAGES)?;
        let loads = |cmd: &str, args: &[String]| {
            Command::new(cmd)
                .args(args)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let missing: Vec<&str> = PERL_MODULES
            .iter()
            .filter(|(module, _)| !loads("perl", &[format!("-M{module}"), "-e1".into()]))
            .chain(PYTHON_MODULES.iter().filter(|(module, _)| {
                !loads(
                    "/usr/bin/python3",
                    &["-c".into(), format!("import {module}")],
                )
            }))
            .map(|(_, pkg)| *pkg)
            .collect();
        if !missing.is_empty() {
            apt_install(&missing)?;
        }
    }
    ensure_npm_packages()?;
    ensure_python_env()
}

/// The virtual environment the SRTP tests run libsrtp in (target/pyenv,
/// from tests/python/requirements.txt, pinned): created, or brought up to
/// date when the requirements changed since.
fn ensure_python_env() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    let req = root.join("tests/python/requirements.txt");
    let env = root.join("target/pyenv");
    let stamp = env.join("requirements.txt");
    let wanted = std::fs::read(&req).context("tests/python/requirements.txt")?;
    if std::fs::read(&stamp).is_ok_and(|have| have == wanted) {
        return Ok(());
    }
    if !env.join("bin/python").exists() {
        let venv_works = Command::new("/usr/bin/python3")
            .args(["-c", "import ensurepip, venv"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !venv_works {
            apt_install(&["python3-venv"])?;
        }
        step(&format!("creating {}", env.display()));
        status(
            Command::new("/usr/bin/python3")
                .arg("-m")
                .arg("venv")
                .arg(&env),
        )?;
    }
    step("installing tests/python/requirements.txt (pylibsrtp, aiortc) with pip");
    status(
        Command::new(env.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&req),
    )?;
    std::fs::write(&stamp, wanted).context("pyenv stamp")
}

/// `npm ci` in tests/node when its node_modules lacks what clients.js needs.
fn ensure_npm_packages() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .join("tests/node");
    let modules = dir.join("node_modules");
    if ["rtpengine-client", "debug"]
        .iter()
        .all(|m| modules.join(m).join("package.json").is_file())
    {
        return Ok(());
    }
    step(&format!(
        "installing npm rtpengine-client and debug into {} (npm ci, from package-lock.json)",
        modules.display()
    ));
    status(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
    )
}

/// While alive, /usr/sbin/policy-rc.d denies service starts (exit 101), unless
/// one exists already; removed on drop if we created it.
struct PolicyRcD(Option<PathBuf>);

impl PolicyRcD {
    fn deny_starts() -> anyhow::Result<PolicyRcD> {
        let path = PathBuf::from("/usr/sbin/policy-rc.d");
        let wanted = CLIENT_PACKAGES.iter().any(|(cmd, _)| !on_path(cmd));
        if !wanted || path.exists() || !is_root() {
            return Ok(PolicyRcD(None));
        }
        step("writing /usr/sbin/policy-rc.d (exit 101) so apt-get starts no services");
        std::fs::write(
            &path,
            "#!/bin/sh\n# written by cargo xtask test; removed after apt-get\nexit 101\n",
        )?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(PolicyRcD(Some(path)))
    }
}

impl Drop for PolicyRcD {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            step("removing /usr/sbin/policy-rc.d");
            let _ = std::fs::remove_file(p);
        }
    }
}

fn ensure_nightly() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]));
    match installed {
        None => {
            step("installing the nightly toolchain (eBPF builds need it)");
            status(Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))
        }
        Some(list) if !list.lines().any(|l| l.starts_with("rust-src")) => {
            step("adding rust-src to the nightly toolchain (-Z build-std=core needs it)");
            status(Command::new("rustup").args([
                "component",
                "add",
                "rust-src",
                "--toolchain",
                "nightly",
            ]))
        }
        Some(_) => Ok(()),
    }
}

/// The nightly's LLVM major version and its libLLVM file.
fn nightly_llvm() -> anyhow::Result<(String, PathBuf)> {
    let vv = output(Command::new("rustc").args(["+nightly", "-vV"]))
        .context("rustc +nightly -vV failed")?;
    let major = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("no LLVM version in rustc +nightly -vV")?
        .to_owned();
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("rustc +nightly --print sysroot failed")?;
    let lib = PathBuf::from(sysroot.trim()).join("lib");
    let so = std::fs::read_dir(&lib)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("libLLVM.so.{major}")))
        })
        .with_context(|| format!("no libLLVM.so.{major}* in {}", lib.display()))?;
    Ok((major, so))
}

fn ensure_bpf_linker() -> anyhow::Result<()> {
    if let Some(v) = output(Command::new("bpf-linker").arg("--version")) {
        if v.contains(BPF_LINKER_VERSION) {
            return Ok(());
        }
        step(&format!(
            "bpf-linker is '{}', want {BPF_LINKER_VERSION}; reinstalling",
            v.trim()
        ));
    }
    let (major, so) = nightly_llvm()?;
    // bpf-linker links against the nightly's own libLLVM (no LLVM from apt): a
    // prefix whose lib/ has the library under its link name and its soname.
    // bpf-linker's RUNPATH points here, so the prefix must stay.
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let soname = so.file_name().context("libLLVM path")?.to_owned();
    let prefix = home.join("rtpengine-rs-llvm").join(&soname);
    let libdir = prefix.join("lib");
    std::fs::create_dir_all(&libdir)?;
    for name in [std::ffi::OsStr::new("libLLVM.so"), soname.as_os_str()] {
        let link = libdir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&so, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    step(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM {major} ({}); this takes a few minutes",
        so.display()
    ));
    status(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
                "--no-default-features",
            ])
            .args(["--features", &format!("llvm-{major}")])
            .env("LLVM_PREFIX", &prefix),
    )
}

/// Whether we run as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs Debian packages whose command is missing.
pub fn ensure_apt(packages: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(cmd, _)| !on_path(cmd))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || !on_path("apt-get") {
        bail!(
            "missing commands; install them with: apt-get install {}",
            missing.join(" ")
        );
    }
    apt_install(&missing)
}

/// `apt-get update` and `apt-get install` of `packages` (root only).
fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    if !is_root() || !on_path("apt-get") {
        bail!(
            "missing packages; install them with: apt-get install {}",
            packages.join(" ")
        );
    }
    step(&format!("installing {} with apt-get", packages.join(" ")));
    status(Command::new("apt-get").args(["update", "-qq"]))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| PathBuf::from(d).join(cmd).is_file())
}

/// Mounts bpffs on /sys/fs/bpf unless something is mounted there already.
pub fn mount_bpffs() -> anyhow::Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf"))
    {
        return Ok(());
    }
    step("mounting bpffs on /sys/fs/bpf");
    status(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
}
