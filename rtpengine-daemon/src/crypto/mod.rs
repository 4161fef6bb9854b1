//! Media encryption: the SRTP crypto suites, the SDES `a=crypto` attribute
//! (RFC 4568) that carries their keys in SDP ([`sdes`]), which lines an
//! offer and an answer carry ([`negotiate`]), and SRTP/SRTCP itself
//! ([`srtp`]). Nothing here knows calls or sockets: offers and answers
//! apply it in `call::offer_answer::sdes`, the relay in `relay::srtp`.
//! DTLS-SRTP's certificate and handshake are in [`dtls`]; the relay runs
//! them in `relay::webrtc`.

pub mod dtls;
pub mod negotiate;
pub mod sdes;
pub mod srtp;
mod suite;

pub use suite::{Suite, SUITES};
