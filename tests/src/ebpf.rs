//! Helpers of the eBPF tests: private pin directories, table ids, flow
//! targets and RTP payloads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use rtpengine::kernel::{FlowTargetBuilder, TableId};

/// Kernel table `n`.
pub fn table(n: u32) -> TableId {
    TableId::new(n).expect("a table id below 64")
}

static PIN_SEQ: AtomicU32 = AtomicU32::new(0);

/// A private pin directory (so tests never touch a running daemon's maps),
/// removed on drop.
pub struct PinDir(pub PathBuf);

impl PinDir {
    /// A new, unique directory under /sys/fs/bpf (created by the opener).
    pub fn new() -> PinDir {
        PinDir(PathBuf::from(format!(
            "/sys/fs/bpf/rtpengine-test-{}-{}",
            std::process::id(),
            PIN_SEQ.fetch_add(1, Ordering::Relaxed)
        )))
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        // Maps and, under links/, pinned XDP links.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Default for PinDir {
    fn default() -> Self {
        Self::new()
    }
}

/// A forward from local `src` to peer `dst`.
pub fn target(src: &str, dst: &str) -> FlowTargetBuilder {
    FlowTargetBuilder::new(src.parse().unwrap(), dst.parse().unwrap()).unwrap()
}

/// An RTP payload (PCMA, sequence `seq`) of `len` bytes with a recognisable
/// fill.
pub fn rtp_payload(seq: u16, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x80;
    p[1] = 0x08;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(12) {
        *b = (i as u8).wrapping_mul(7);
    }
    p
}
