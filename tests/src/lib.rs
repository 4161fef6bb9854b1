//! Harness for the integration tests: start the real `rtpengine` binary, talk
//! ng to it over real sockets, and build network namespaces for tests that
//! need several hosts.
//!
//! Tests that need root (namespaces, eBPF) are `#[ignore]`d so a plain
//! `cargo test` skips them; `cargo xtask test` runs them with
//! `--include-ignored` and they fail loudly (never skip) when not root.

//!
//! One module per concern: [`daemon`] (the process), [`ng`] (the client),
//! [`ebpf`] (pin directories, flow targets, payloads for the eBPF tests),
//! [`netns`] and [`topology`] (namespaces), [`rig`] (a daemon in a namespace
//! with its client), [`sdp`] (fixtures and matching), [`packets`] (RTP/RTCP
//! on sockets), [`srtp`] (a libsrtp endpoint), [`redis`] (a server of the test's own), [`proxy`] (the kernel-forwarding proxy of a [`topology`]),
//! [`util`] (ports, processes, waiting). Everything is
//! re-exported at the root, so tests `use rtpengine_tests::*`.

pub mod container;
pub mod daemon;
pub mod ebpf;
pub mod fuzz;
pub mod metrics;
pub mod netns;
pub mod ng;
pub mod packets;
pub mod proxy;
pub mod python;
pub mod redis;
pub mod rig;
pub mod sdp;
pub mod srtp;
pub mod topology;
pub mod util;
pub mod webrtc;

pub use container::*;
pub use daemon::*;
pub use ebpf::*;
pub use metrics::*;
pub use netns::*;
pub use ng::*;
pub use packets::*;
pub use proxy::*;
pub use redis::*;
pub use rig::*;
pub use rtpengine::ng::bencode::{decode_bencode, encode_bencode};
pub use rtpengine::ng::value::{Dict, Value};
pub use sdp::*;
pub use srtp::*;
pub use topology::*;
pub use util::*;
pub use webrtc::*;
