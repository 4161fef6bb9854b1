//! Replays the fuzz corpus (`tests/fuzz/corpus/<target>/`: seeds, and every
//! input a fuzzing run found failing once it is fixed) through the harnesses
//! in `rtpengine_tests::fuzz`, so each `cargo xtask test` checks them without
//! a fuzzing toolchain. `cargo xtask fuzz` searches for new ones.

use std::path::PathBuf;

use rtpengine_tests::fuzz;

fn replay(target: &str, harness: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for f in files {
        let data = std::fs::read(&f).expect("corpus file");
        // Name the input that failed; the harness's panic says how.
        eprintln!("{target}: {}", f.display());
        harness(&data);
    }
}

#[test]
fn codecs_corpus() {
    replay("codecs", fuzz::codecs);
}

#[test]
fn sdp_corpus() {
    replay("sdp", fuzz::sdp);
}

#[test]
fn ng_corpus() {
    replay("ng", fuzz::ng);
}

#[test]
fn transports_corpus() {
    replay("transports", fuzz::transports);
}

#[test]
fn relay_corpus() {
    replay("relay", fuzz::relay);
}

#[test]
fn webrtc_corpus() {
    replay("webrtc", fuzz::webrtc);
}

/// The bundle seed's packets get through: both of A's sections (told apart
/// by payload type, SSRC, MID) reach B from a port of their own, and B's
/// reach A through the bundle (a harness that dropped them all would let
/// the fuzzer find nothing).
#[test]
fn relay_bundle_seed_is_relayed() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/relay");
    let data = std::fs::read(dir.join("bundle")).expect("bundle seed");
    let received = fuzz::relay_received(&data);
    assert!(received >= 5, "{received} of 6 packets relayed");
}
