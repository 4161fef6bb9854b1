//! rtpengine-rs: an rtpengine-compatible media proxy.
//!
//! Requests flow one way: a transport in [`ng`] receives bytes,
//! [`ng::control`] decodes and dispatches them to [`commands`], which run them
//! against the [`call`] model; offers and answers go through [`sdp`] and
//! allocate ports from [`interfaces`]; media flows through [`relay`].

pub mod call;
pub mod clock;
pub mod commands;
pub mod config;
pub mod interfaces;
pub mod kernel;
pub mod net;
pub mod ng;
pub mod relay;
pub mod sdp;
