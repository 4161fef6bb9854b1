//! `cargo xtask fuzz`: coverage-guided fuzzing of the ng decoders, the SDP
//! parser/writer and the whole control plane (`tests/fuzz/`, harnesses in
//! `tests/src/fuzz.rs`). Installs cargo-fuzz if missing, then runs each target
//! for a while with libFuzzer and AddressSanitizer (nightly), starting from the
//! checked-in corpus. New inputs go to `target/fuzz-corpus/<target>/`, never
//! into the tree; a failing input is written to `tests/fuzz/artifacts/` and
//! fails the task. Fixed failures are added to `tests/fuzz/corpus/<target>/`,
//! which `cargo xtask test` replays.

use std::path::Path;
use std::process::Command;

use crate::status;
use crate::toolchain::{self, output, step};

/// The fuzz targets, in the order they run.
pub const TARGETS: &[&str] = &["codecs", "sdp", "ng", "transports", "relay", "webrtc"];

const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Runs `targets` (all when empty) for `secs` seconds each.
pub fn fuzz(root: &Path, secs: u64, targets: &[String]) -> anyhow::Result<()> {
    // Nightly for the sanitizer; bpf-linker because the daemon embeds its
    // eBPF object.
    toolchain::ensure(false)?;
    ensure_cargo_fuzz()?;
    let targets: Vec<&str> = if targets.is_empty() {
        TARGETS.to_vec()
    } else {
        targets.iter().map(String::as_str).collect()
    };
    if let Some(t) = targets.iter().find(|t| !TARGETS.contains(t)) {
        anyhow::bail!("unknown fuzz target {t}; there are {}", TARGETS.join(", "));
    }
    let dir = root.join("tests/fuzz");
    for t in targets {
        let scratch = root.join("target/fuzz-corpus").join(t);
        std::fs::create_dir_all(&scratch)?;
        step(&format!("fuzzing {t} for {secs} s"));
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&dir)
            .args(["+nightly", "fuzz", "run", "-O", t])
            .arg(&scratch)
            .arg(dir.join("corpus").join(t))
            .arg("--")
            .arg(format!("-max_total_time={secs}"))
            .arg("-max_len=8192")
            .arg("-print_final_stats=1");
        if matches!(t, "ng" | "transports") {
            cmd.arg(format!("-dict={}", dir.join("ng.dict").display()));
        }
        status(&mut cmd)?;
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    if output(Command::new("cargo").args(["fuzz", "--version"])).is_some() {
        return Ok(());
    }
    step(&format!(
        "installing cargo-fuzz {CARGO_FUZZ_VERSION} (cargo install --locked)"
    ));
    status(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
}
