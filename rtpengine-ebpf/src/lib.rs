//! Helpers shared by this project's XDP programs: the dataplane
//! (`src/main.rs`, object `rtpengine-xdp`) and the benchmark's floors
//! (`rtpengine-bench-ebpf`). Also the library target the daemon lists as a
//! build dependency, so cargo rebuilds it when the dataplane changes.
#![no_std]

use aya_ebpf::programs::XdpContext;

/// A pointer to a `T` at packet offset `off`, or `None` if the packet is too
/// short (the verifier needs this check right before every access).
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + off) as *mut T)
}
