//! Media encryption (issue 17, in progress): the SRTP crypto suites, the
//! SDES `a=crypto` attribute (RFC 4568) that carries their keys in SDP, and
//! SRTP/SRTCP itself ([`srtp`]).
//!
//! What exists so far: the suite table in upstream's order, the `a=crypto`
//! codec and the packet transforms. Nothing here is wired into
//! offers and answers yet; until it is, `a=crypto` lines pass through
//! untouched, `SDES=off`/`DTLS=off` change nothing, and every other SDES,
//! DTLS and ICE value is answered with an "unsupported" warning (see
//! `ng::support`).

pub mod negotiate;
pub mod sdes;
pub mod srtp;
mod suite;

pub use suite::{Suite, SUITES};
