//! The ng control protocol: framing, encodings, the retransmission cache, the
//! typed request, command dispatch and the transports.
//!
//! Data flows one way: a transport hands raw bytes to [`control::Control`],
//! which checks the [`cookie_cache`], decodes the body ([`frame`], [`value`]),
//! folds it into a [`request::Request`] and dispatches it.

pub mod control;
pub mod cookie_cache;
pub mod frame;
pub mod http;
pub mod request;
pub mod tcp;
pub mod udp;
pub mod value;
