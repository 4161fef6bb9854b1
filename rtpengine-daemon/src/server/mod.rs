//! The control server: the ng transports and the dispatcher they share.
//!
//! Each transport ([`udp`], [`tcp`], [`http`] with WebSocket) turns bytes
//! from the wire into whole messages and hands them to [`Control`], which
//! runs them through the protocol ([`crate::ng`]) and the command handlers
//! ([`crate::commands`]); the reply leaves from the address the request hit.

pub mod dispatch;
pub mod http;
pub mod tcp;
pub mod udp;

pub use dispatch::Control;
