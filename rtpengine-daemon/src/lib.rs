//! rtpengine-rs: an rtpengine-compatible media proxy.
//!
//! Requests flow one way: a transport in [`ng`] receives bytes, [`ng::control`]
//! decodes and dispatches them to [`commands`].

pub mod commands;
pub mod config;
pub mod net;
pub mod sdp;
pub mod ng;
