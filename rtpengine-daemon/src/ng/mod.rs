//! The ng control protocol itself, with no knowledge of commands, calls or
//! transports: message framing and upstream's protocol error strings
//! ([`frame`]), the dictionary model ([`value`]) and its encodings
//! ([`bencode`], [`json`]), the retransmission cache ([`cookie_cache`]) and
//! the typed request ([`request`]: key and flag aliases folded, commands
//! named).
//!
//! The transports and the dispatcher that use it are in [`crate::server`];
//! what each command does is in [`crate::commands`].

pub mod bencode;
pub mod cookie_cache;
pub mod frame;
pub mod json;
pub mod request;
pub mod support;
pub mod templates;
pub mod value;
