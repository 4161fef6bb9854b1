//! Project tasks: `cargo xtask build-ebpf | run | test | bench | fuzz`.
//!
//! Every task first checks the toolchain (nightly + rust-src, bpf-linker built
//! against the nightly's LLVM, bpftool, iproute2) and installs what is missing,
//! printing each step, so a fresh Debian 12 machine needs nothing by hand.

mod bench;
mod fuzz;
mod toolchain;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the eBPF object (target/bpfel-unknown-none/release/rtpengine-xdp).
    BuildEbpf,
    /// Build everything and start the daemon; arguments after `--` go to it.
    /// Without arguments: ng on 127.0.0.1:2223, interface 127.0.0.1, userspace relaying.
    Run {
        /// Build in release mode.
        #[arg(long)]
        release: bool,
        /// Arguments for the daemon.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run every test: unit, integration and privileged (root) tests.
    Test {
        /// Skip the tests that need root (network namespaces, eBPF) and say how many.
        #[arg(long)]
        unprivileged: bool,
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build in release mode and run the benchmark (as root): this daemon in
    /// userspace and in-kernel, upstream rtpengine (Debian's rtpengine-daemon,
    /// installed if missing) and the XDP floor. See BENCHMARKS.md.
    Bench {
        /// CI smoke test: small, short, under 2 minutes, no thresholds.
        #[arg(long)]
        quick: bool,
        /// Arguments for rtpengine-bench (`-- --help` lists them).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Fuzz the ng decoders, the SDP parser/writer and the control plane
    /// (libFuzzer, nightly; installs cargo-fuzz if missing).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        secs: u64,
        /// Targets to run (codecs, sdp, ng); all when none are given.
        targets: Vec<String>,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match cli.task {
        Task::BuildEbpf => {
            toolchain::ensure(false)?;
            build_ebpf(&root)
        }
        Task::Run { release, args } => {
            toolchain::ensure(false)?;
            let mut build = cargo();
            build.args([
                "build",
                "--package",
                "rtpengine-daemon",
                "--bin",
                "rtpengine",
            ]);
            if release {
                build.arg("--release");
            }
            status(&mut build)?;
            let bin = root
                .join("target")
                .join(if release { "release" } else { "debug" })
                .join("rtpengine");
            let args = if args.is_empty() {
                // The embedded default: loopback only, userspace relaying.
                [
                    "--config-file=none",
                    "--foreground",
                    "--log-stderr",
                    "--table=-1",
                ]
                .map(String::from)
                .to_vec()
            } else {
                args
            };
            eprintln!("xtask: starting {} {}", bin.display(), args.join(" "));
            let err = exec(Command::new(&bin).args(&args));
            Err(err).with_context(|| format!("executing {}", bin.display()))
        }
        Task::Test { unprivileged, args } => test(unprivileged, &args),
        Task::Bench { quick, args } => bench::bench(&root, quick, &args),
        Task::Fuzz { secs, targets } => fuzz::fuzz(&root, secs, &targets),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs a command, failing unless it exits 0.
pub(crate) fn status(cmd: &mut Command) -> anyhow::Result<()> {
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

fn exec(cmd: &mut Command) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    cmd.exec()
}

fn build_ebpf(root: &Path) -> anyhow::Result<()> {
    // The same command aya-build runs from the daemon's build.rs, into the
    // workspace target dir so the object is easy to inspect.
    let arch = std::env::consts::ARCH;
    let mut cmd = Command::new("rustup");
    cmd.args([
        "run",
        "nightly",
        "cargo",
        "build",
        "--package",
        "rtpengine-ebpf",
        "--bins",
        "--release",
    ])
    .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
    .env(
        "CARGO_ENCODED_RUSTFLAGS",
        format!("--cfg=bpf_target_arch=\"{arch}\"\x1f-Cdebuginfo=2\x1f-Clink-arg=--btf"),
    )
    .env_remove("RUSTC")
    .env_remove("RUSTC_WORKSPACE_WRAPPER")
    .env_remove("CARGO");
    status(&mut cmd)?;
    let obj = root.join("target/bpfel-unknown-none/release/rtpengine-xdp");
    if !obj.exists() {
        bail!("build succeeded but {} is missing", obj.display());
    }
    println!("{}", obj.display());
    Ok(())
}

fn test(unprivileged: bool, extra: &[String]) -> anyhow::Result<()> {
    if !unprivileged && !toolchain::is_root() {
        bail!(
            "the full test suite needs root (network namespaces, eBPF); run it as root, \
             or pass --unprivileged to skip those tests"
        );
    }
    toolchain::ensure(!unprivileged)?;
    if !unprivileged {
        toolchain::mount_bpffs()?;
    }
    // Integration tests start the real daemon binary: build it first.
    status(cargo().args(["build", "--bins"]))?;
    let mut cmd = cargo();
    // Default members: the eBPF crate only builds for the BPF target.
    cmd.args(["test", "--no-fail-fast"]);
    cmd.arg("--");
    if !unprivileged {
        // Privileged tests are #[ignore]d so a plain `cargo test` skips them.
        cmd.arg("--include-ignored");
    }
    cmd.args(extra);
    let out = run_tee(&mut cmd)?;
    let ignored: u64 = out
        .lines()
        .filter_map(|l| l.strip_prefix("test result: "))
        .filter_map(|l| {
            l.split(';')
                .find_map(|p| p.trim().strip_suffix(" ignored"))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .sum();
    if unprivileged {
        println!(
            "xtask: skipped {ignored} test(s) that need root or the installed clients (--unprivileged)"
        );
    } else if extra.is_empty() {
        // The leak check: two minutes of churn, media and floods per mode
        // (userspace, kernel), then descriptors, sockets, kernel map entries
        // and memory back at the baseline (BENCHMARKS.md, "Soak").
        let root = workspace_root();
        let soak: Vec<String> = ["--soak", "120", "--daemons", "ours,ours-kernel"]
            .map(String::from)
            .to_vec();
        bench::bench(&root, true, &soak)?;
    }
    Ok(())
}

/// Runs a command, streaming its stdout while keeping a copy; fails on non-zero exit.
fn run_tee(cmd: &mut Command) -> anyhow::Result<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let mut all = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            std::io::stdout().flush().ok();
            all.push_str(&line);
            all.push('\n');
        }
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("tests failed: {st}");
    }
    Ok(all)
}
