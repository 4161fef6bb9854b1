//! XDP dataplane of rtpengine-rs.
//!
//! Packets that the dataplane does not own always go to the normal stack
//! (`XDP_PASS`): a proxy must never drop traffic of other applications.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

/// Entry point attached to the interfaces that carry media addresses.
#[xdp]
pub fn rtpengine_xdp(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
