//! SRTP for the userspace floors (`--srtp` with `socket-floor` or
//! `xsk-floor`): the per-packet work of the `--srtp` scenario, with nothing
//! else of a daemon, so the floors show what SRTP relaying costs over each
//! kernel interface.
//!
//! The floors have no signalling, so both sides derive every call's keys
//! from its index ([`keys`]): the floor protects what the caller sends with
//! "its" key, as a daemon does under `transport-protocol: RTP/SAVP`, and
//! unprotects what the callee sends under the callee's key. The generator
//! checks both ways, as it does for the daemons.

use anyhow::Context as _;
use rtpengine::crypto::sdes::Crypto;
use rtpengine::crypto::srtp::Context;
use rtpengine::crypto::Suite;

/// The suite of the `--srtp` scenario (every daemon offers it).
pub const SUITE: &str = "AES_CM_128_HMAC_SHA1_80";

/// The argument that turns on a floor's SRTP (`--serve-…-floor … srtp`).
pub const SRTP_ARG: &str = "srtp";

/// Splits a trailing [`SRTP_ARG`] off a floor's arguments; true if it
/// was there.
pub fn srtp_arg(args: &[String]) -> (&[String], bool) {
    match args.split_last() {
        Some((last, rest)) if last == SRTP_ARG => (rest, true),
        _ => (args, false),
    }
}

/// `len` reproducible bytes from `seed` (xorshift; secrecy is not the point).
fn key_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// An `a=crypto` line of `suite` with `key_salt`.
fn line(suite: Suite, tag: u32, key_salt: Vec<u8>) -> Crypto {
    Crypto {
        tag,
        suite,
        key_salt,
        lifetime: None,
        mki: None,
        unencrypted_srtp: false,
        unencrypted_srtcp: false,
        unauthenticated_srtp: false,
    }
}

/// The key call `c`'s callee sends with (the generator's, for floors and
/// daemons alike), under `tag`.
pub fn callee_line(c: usize, suite: Suite, tag: u32) -> Crypto {
    line(suite, tag, key_bytes(c as u64 + 1, suite.key_salt_len()))
}

/// Call `c`'s keys on a floor: the floor's towards the callee, and the
/// callee's own (the pair a daemon's answer would give).
pub fn keys(c: usize) -> anyhow::Result<(Crypto, Crypto)> {
    let suite = Suite::from_name(SUITE).context("SRTP suite")?;
    let ours = line(
        suite,
        1,
        key_bytes(0x5eed_0000_0000 + c as u64, suite.key_salt_len()),
    );
    Ok((ours, callee_line(c, suite, 1)))
}

/// An SRTP context for `line`.
pub fn context(line: &Crypto) -> anyhow::Result<Box<Context>> {
    let ctx = Context::new(line.suite, &line.key_salt, Default::default(), line.mki)
        .map_err(|e| anyhow::anyhow!("SRTP key: {e}"))?;
    Ok(Box::new(ctx))
}

/// The floor's SRTP state, indexed like its legs: `2c` is what arrives
/// from call `c`'s caller (protected on the way out), `2c + 1` what arrives
/// from its callee (unprotected).
pub struct FloorSrtp {
    ctxs: Vec<Context>,
}

impl FloorSrtp {
    /// Contexts for `calls` calls.
    pub fn new(calls: usize) -> anyhow::Result<FloorSrtp> {
        let mut ctxs = Vec::with_capacity(2 * calls);
        for c in 0..calls {
            let (ours, callee) = keys(c)?;
            ctxs.push(*context(&ours)?);
            ctxs.push(*context(&callee)?);
        }
        Ok(FloorSrtp { ctxs })
    }

    /// Protects (even `leg`) or unprotects (odd) the RTP packet in `pkt`;
    /// false if it failed (the packet is then dropped).
    pub fn transform(&mut self, leg: usize, pkt: &mut Vec<u8>) -> bool {
        let Some(ctx) = self.ctxs.get_mut(leg) else {
            return false;
        };
        match leg % 2 {
            0 => ctx.protect_rtp(pkt).is_ok(),
            _ => ctx.unprotect_rtp(pkt).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_and_the_generator_agree_on_keys() {
        // What the floor protects for the caller, the callee's generator
        // unprotects with the same call's "ours" key; what the callee
        // protects, the floor unprotects.
        let mut floor = FloorSrtp::new(2).unwrap();
        let (ours, callee) = keys(1).unwrap();
        let rtp: Vec<u8> = [0x80, 0, 0, 1, 0, 0, 0, 0, 0x50, 0, 0, 1]
            .into_iter()
            .chain([7u8; 160])
            .collect();
        let mut p = rtp.clone();
        assert!(floor.transform(2, &mut p));
        assert_eq!(p.len(), rtp.len() + 10);
        context(&ours).unwrap().unprotect_rtp(&mut p).unwrap();
        assert_eq!(p, rtp);
        let mut p = rtp.clone();
        context(&callee).unwrap().protect_rtp(&mut p).unwrap();
        assert!(floor.transform(3, &mut p));
        assert_eq!(p, rtp);
        // Call 0's key does not open call 1's packets.
        let mut p = rtp;
        context(&callee).unwrap().protect_rtp(&mut p).unwrap();
        assert!(!floor.transform(1, &mut p));
        assert!(!floor.transform(99, &mut p));
    }
}
