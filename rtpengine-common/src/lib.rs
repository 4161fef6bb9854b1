//! Types shared by the eBPF dataplane (`rtpengine-ebpf`) and the daemon.
//!
//! Everything here is `no_std`, `#[repr(C)]` and free of implicit padding, because
//! the kernel hashes and copies raw bytes: a stray padding byte would make a key
//! written by userspace differ from the one the BPF program builds.
#![no_std]

/// Number of forwarding tables, as rtpengine's kernel module (`--table=0..63`).
pub const MAX_TABLES: u32 = 64;

/// Version of the pinned map layout. Bump it whenever a shared type changes, so a
/// daemon never reuses maps pinned by an incompatible build (aya does not check).
pub const MAP_LAYOUT_VERSION: u32 = 1;
