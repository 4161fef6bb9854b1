//! Media encryption (issue 17, in progress): the SRTP crypto suites and the
//! SDES `a=crypto` attribute (RFC 4568) that carries their keys in SDP.
//!
//! What exists so far is the signalling half of SDES: the suite table in
//! upstream's order and the `a=crypto` codec. Nothing here is wired into
//! offers and answers yet; until it is, `a=crypto` lines pass through
//! untouched, `SDES=off`/`DTLS=off` change nothing, and every other SDES,
//! DTLS and ICE value is answered with an "unsupported" warning (see
//! `ng::support`).

pub mod sdes;
mod suite;

pub use suite::{Suite, SUITES};
