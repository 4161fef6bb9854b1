//! rtpengine-rs: an rtpengine-compatible media proxy.
//!
//! Requests flow one way, down the layers: a transport in [`server`]
//! receives bytes, [`server::Control`] decodes them with the protocol in
//! [`ng`] and dispatches to [`commands`], which run them against the
//! [`call`] model; offers and answers go through [`sdp`] and allocate ports
//! from [`interfaces`]; media flows through [`relay`], and through
//! [`kernel`] once offloaded. [`config`] is the edge where options become the
//! plain settings of those modules; `main.rs` runs the process.
//!
//! ```text
//! server ─► commands ─► call ─► relay ─► net
//!   │          │         │  └─► interfaces, sdp
//!   └──────────┴─► ng    └─► (relay::offload) ◄── kernel
//! ```

pub mod call;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod daemonize;
pub mod heap;
pub mod interfaces;
pub mod kernel;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod ng;
pub mod persist;
pub mod relay;
pub mod rtpproxy;
pub mod sdp;
pub mod server;
pub mod supervise;
