//! SDES negotiation as upstream does it: which `a=crypto` lines an offer
//! carries onwards, which one the answer to the offerer carries, and which
//! keys then protect each direction.
//!
//! Per media and party, two lists: what the party put in its SDP (`in`,
//! its keys: they decrypt what it sends) and what we put in the SDP sent
//! to it (`out`, our keys: they encrypt what we send it). An offer builds
//! the receiver's `out` ([`offer`]); the answer narrows it to the line the
//! answerer chose ([`accept`]) and builds the offerer's `out` ([`answer`]).

use rand::RngCore as _;

use super::sdes::{Crypto, WriteOptions};
use super::{Suite, SUITES};

/// Suites as a set (bit n = `SUITES[n]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SuiteSet(u16);

impl SuiteSet {
    /// Adds `suite`.
    pub fn insert(&mut self, suite: Suite) {
        if let Some(i) = SUITES.iter().position(|&s| s == suite) {
            self.0 |= 1 << i;
        }
    }

    /// Whether `suite` is in the set.
    pub fn contains(self, suite: Suite) -> bool {
        SUITES
            .iter()
            .position(|&s| s == suite)
            .is_some_and(|i| self.0 & 1 << i != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Session parameters to set or clear on the lines we write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParamChange {
    pub unencrypted_srtp: Option<bool>,
    pub unencrypted_srtcp: Option<bool>,
    pub unauthenticated_srtp: Option<bool>,
}

/// The `SDES` options of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SdesOptions {
    /// `SDES-off`: no `a=crypto` at all (offers only, as upstream).
    pub off: bool,
    /// `SDES-no-<suite>`: neither accepted from the offerer nor generated.
    pub no: SuiteSet,
    /// `SDES-only-<suite>`: when not empty, only these (wins over `no`).
    pub only: SuiteSet,
    /// `SDES-nonew`: pass on the offered lines, generate none.
    pub nonew: bool,
    /// `SDES-static`: an answer keeps the negotiated line if still offered.
    pub static_keys: bool,
    /// `SDES-pad`, `SDES-lifetime`: how our lines are written.
    pub write: WriteOptions,
    /// `SDES-unencrypted_srtp` … (set: offers only) and
    /// `SDES-encrypted_srtp` … (clear: offers and answers).
    pub params: ParamChange,
    /// `SDES-order:`: these suites first, in this order, among the lines an
    /// offer carries (tags unchanged; adds nothing).
    pub order: Vec<Suite>,
    /// `SDES-offerer_pref:`: the suites the answer to the offerer picks
    /// from its lines, first found first (decided with the offer).
    pub offerer_pref: Vec<Suite>,
    /// `SDES-prefer`: an offer with both `a=crypto` and DTLS
    /// (`a=fingerprint`) is answered with SDES; by default DTLS wins, as
    /// upstream.
    pub prefer: bool,
}

impl SdesOptions {
    /// Whether `suite` may be used.
    pub fn allows(&self, suite: Suite) -> bool {
        if !self.only.is_empty() {
            return self.only.contains(suite);
        }
        !self.no.contains(suite)
    }

    /// Applies the parameter changes (sets only in offers); whether
    /// anything changed.
    fn apply(&self, c: &mut Crypto, offer: bool) -> bool {
        let before = (
            c.unencrypted_srtp,
            c.unencrypted_srtcp,
            c.unauthenticated_srtp,
        );
        let p = self.params;
        for (change, field) in [
            (p.unencrypted_srtp, &mut c.unencrypted_srtp),
            (p.unencrypted_srtcp, &mut c.unencrypted_srtcp),
            (p.unauthenticated_srtp, &mut c.unauthenticated_srtp),
        ] {
            match change {
                Some(true) if offer => *field = true,
                Some(false) => *field = false,
                _ => {}
            }
        }
        before
            != (
                c.unencrypted_srtp,
                c.unencrypted_srtcp,
                c.unauthenticated_srtp,
            )
    }
}

/// A fresh random master key and salt for `suite` (the thread's CSPRNG,
/// seeded from the operating system).
pub fn fresh_key(suite: Suite) -> Vec<u8> {
    let mut k = vec![0u8; suite.key_salt_len()];
    rand::rng().fill_bytes(&mut k);
    k
}

/// Where our keys come from: [`fresh_key`], or a restored call's keys
/// (a replay must write the keys the peers already have).
pub type KeySource<'a> = &'a mut dyn FnMut(Suite) -> Vec<u8>;

/// A line of ours: `suite` under `tag` with a key from `keys`.
fn generated(tag: u32, suite: Suite, keys: KeySource) -> Crypto {
    Crypto {
        tag,
        suite,
        key_salt: keys(suite),
        lifetime: None,
        mki: None,
        unencrypted_srtp: false,
        unencrypted_srtcp: false,
        unauthenticated_srtp: false,
    }
}

/// The offerer's lines that the options allow; if none, its first line
/// (upstream never narrows an offer to nothing).
fn allowed<'a>(offered: &'a [Crypto], opts: &SdesOptions) -> Vec<&'a Crypto> {
    let ok: Vec<&Crypto> = offered.iter().filter(|c| opts.allows(c.suite)).collect();
    match (ok.is_empty(), offered.first()) {
        (true, Some(first)) => vec![first],
        _ => ok,
    }
}

/// The `a=crypto` lines an offer carries to the receiver (its new `out`).
///
/// - `offered`: the offerer's lines (empty for a plain offer).
/// - `previous`: the line the receiver accepted before, if it is ours (a
///   key of the offerer's or the answerer's is never kept as ours), so
///   that a re-offer keeps the accepted key and tag.
///
/// The offerer's allowed lines pass on with their tags and keys (the
/// lifetime dropped); then our earlier lines whose suite was not offered;
/// then every other allowed suite with a fresh key, numbered after the
/// highest tag so far, in [`SUITES`] order. `nonew`: the offerer's lines
/// only, all of them (it wins over `no`/`only`, as upstream's). `off`: none,
/// in a first offer only (upstream ignores it once SDES is negotiated).
pub fn offer(
    offered: &[Crypto],
    previous: &[Crypto],
    opts: &SdesOptions,
    keys: KeySource,
) -> Vec<Crypto> {
    if opts.off && previous.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Crypto> = Vec::new();
    let ok: Vec<&Crypto> = offered
        .iter()
        .filter(|c| opts.nonew || opts.allows(c.suite))
        .collect();
    for c in ok {
        let mut line = Crypto {
            lifetime: None,
            ..c.clone()
        };
        // A session parameter changed on the offerer's line makes it a line
        // of ours: its key must not be the offerer's (we would then protect
        // under a key the offerer sends with).
        if opts.apply(&mut line, true) {
            line.key_salt = keys(line.suite);
        }
        out.push(line);
    }
    for c in previous.iter().filter(|_| !opts.nonew) {
        if opts.allows(c.suite) && !out.iter().any(|o| o.suite == c.suite) {
            let mut c = c.clone();
            // After the offerer's lines, as upstream numbers it: its tag
            // unless one of theirs has it or a later one.
            let max = out.iter().map(|o| o.tag).max().unwrap_or(0);
            if c.tag <= max {
                c.tag = max + 1;
            }
            opts.apply(&mut c, true);
            out.push(c);
        }
    }
    if !opts.nonew {
        let mut tag = out.iter().map(|c| c.tag).max().unwrap_or(0);
        for suite in SUITES {
            if opts.allows(suite) && !out.iter().any(|c| c.suite == suite) {
                tag += 1;
                let mut c = generated(tag, suite, keys);
                opts.apply(&mut c, true);
                out.push(c);
            }
        }
    }
    if !opts.order.is_empty() {
        // Stable: the suites not named keep their order, after the named.
        let rank = |c: &Crypto| {
            opts.order
                .iter()
                .position(|&s| s == c.suite)
                .unwrap_or(opts.order.len())
        };
        out.sort_by_key(rank);
    }
    out
}

/// The answerer chose `chosen` (its first line) from `out`, the lines
/// offered to it: our line with the same tag and suite, the key we then
/// send to it with. None if it named a line not offered (the relay then
/// drops what would go to it rather than send it in the clear).
pub fn accepted(out: &[Crypto], chosen: Option<&Crypto>) -> Option<Crypto> {
    let x = chosen?;
    out.iter()
        .find(|c| c.tag == x.tag && c.suite == x.suite)
        .cloned()
}

/// The line the answer to the offerer carries (its new `out`).
///
/// - `offered`: the offerer's lines.
/// - `answered`: the answerer's lines (empty when it is plain RTP).
/// - `previous`: our line in the last answer to the offerer, if it is ours
///   (not a line passed through from the answerer).
///
/// When the answerer took a suite the offerer offered (its first line's
/// suite is among the offerer's allowed lines, which went to it under the
/// offerer's tags and keys), that line goes back verbatim: the keys are
/// then the same end to end. Otherwise the offerer's first allowed line
/// with our own key (kept from `previous` when the suite and tag are the
/// same), the offerer's session parameters, no lifetime, no MKI. With
/// `static`, our previous line stays as long as the offerer still offers
/// its tag and suite.
pub fn answer(
    offered: &[Crypto],
    answered: &[Crypto],
    previous: Option<&Crypto>,
    opts: &SdesOptions,
    keys: KeySource,
) -> Option<Crypto> {
    let mut ok = allowed(offered, opts);
    // `SDES-offerer_pref`: the offerer's lines of those suites only, in
    // the preference's order (all of them if it names none offered).
    if !opts.offerer_pref.is_empty() {
        let preferred: Vec<&Crypto> = opts
            .offerer_pref
            .iter()
            .filter_map(|&s| ok.iter().copied().find(|o| o.suite == s))
            .collect();
        if !preferred.is_empty() {
            ok = preferred;
        }
    }
    let head = *ok.first()?;
    // `static`: the line negotiated before stays while it is still offered.
    if let Some(p) = previous.filter(|_| opts.static_keys) {
        if offered.iter().any(|o| o.tag == p.tag && o.suite == p.suite) {
            return Some(p.clone());
        }
    }
    if let Some(x) = answered.first() {
        if ok.iter().any(|o| o.suite == x.suite) {
            let mut x = Crypto {
                lifetime: None,
                ..x.clone()
            };
            // Changed parameters: no longer the answerer's line, our key.
            if opts.apply(&mut x, false) {
                x.key_salt = keys(x.suite);
            }
            return Some(x);
        }
    }
    let key_salt = match previous {
        Some(p) if p.suite == head.suite && p.tag == head.tag => p.key_salt.clone(),
        _ => keys(head.suite),
    };
    let mut line = Crypto {
        tag: head.tag,
        suite: head.suite,
        key_salt,
        lifetime: None,
        mki: None,
        unencrypted_srtp: head.unencrypted_srtp,
        unencrypted_srtcp: head.unencrypted_srtcp,
        unauthenticated_srtp: head.unauthenticated_srtp,
    };
    opts.apply(&mut line, false);
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(tag: u32, suite: Suite, key: u8) -> Crypto {
        Crypto {
            tag,
            suite,
            key_salt: vec![key; suite.key_salt_len()],
            lifetime: Some("2^31".into()),
            mki: None,
            unencrypted_srtp: false,
            unencrypted_srtcp: false,
            unauthenticated_srtp: false,
        }
    }

    fn tags(v: &[Crypto]) -> Vec<(u32, &'static str)> {
        v.iter().map(|c| (c.tag, c.suite.name())).collect()
    }

    #[test]
    fn a_plain_offer_gets_every_suite_numbered_in_upstream_order() {
        let out = offer(&[], &[], &SdesOptions::default(), &mut fresh_key);
        let want: Vec<(u32, &str)> = SUITES
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32 + 1, s.name()))
            .collect();
        assert_eq!(tags(&out), want);
        assert!(out.iter().all(|c| c.lifetime.is_none() && c.mki.is_none()));
        // Fresh keys: all different.
        assert_ne!(out[6].key_salt, out[7].key_salt);
    }

    #[test]
    fn excluded_suites_are_left_out_and_tags_stay_contiguous() {
        let mut opts = SdesOptions::default();
        opts.no.insert(Suite::AeadAes256Gcm);
        opts.no.insert(Suite::NullHmacSha1_32);
        let out = offer(&[], &[], &opts, &mut fresh_key);
        assert_eq!(out.len(), 10);
        assert_eq!(tags(&out)[0], (1, "AEAD_AES_128_GCM"));
        assert_eq!(tags(&out)[9], (10, "NULL_HMAC_SHA1_80"));
        let mut only = SdesOptions::default();
        only.only.insert(Suite::AesCm128HmacSha1_80);
        only.no.insert(Suite::AesCm128HmacSha1_80);
        assert_eq!(
            tags(&offer(&[], &[], &only, &mut fresh_key)),
            [(1, "AES_CM_128_HMAC_SHA1_80")]
        );
        let off = SdesOptions {
            off: true,
            ..SdesOptions::default()
        };
        assert!(offer(&[], &[], &off, &mut fresh_key).is_empty());
        // Once negotiated, `off` changes nothing (upstream's rule).
        let accepted = [line(7, Suite::AesCm128HmacSha1_80, 1)];
        assert_eq!(offer(&[], &accepted, &off, &mut fresh_key).len(), 12);
    }

    #[test]
    fn an_srtp_offer_passes_its_lines_on_and_ours_follow() {
        let offered = [
            line(1, Suite::AesCm128HmacSha1_80, 1),
            line(2, Suite::AesCm128HmacSha1_32, 2),
            line(3, Suite::Aes256CmHmacSha1_80, 3),
        ];
        let out = offer(&offered, &[], &SdesOptions::default(), &mut fresh_key);
        assert_eq!(out.len(), 12);
        assert_eq!(out[0].key_salt, offered[0].key_salt, "same key");
        assert_eq!(out[0].lifetime, None, "lifetime dropped");
        assert_eq!(
            tags(&out)[3..6],
            [
                (4, "AEAD_AES_256_GCM"),
                (5, "AEAD_AES_128_GCM"),
                (6, "AES_256_CM_HMAC_SHA1_32")
            ]
        );
        let mut nonew = SdesOptions {
            nonew: true,
            ..SdesOptions::default()
        };
        nonew.no.insert(Suite::AesCm128HmacSha1_80);
        assert_eq!(
            tags(&offer(&offered, &[], &nonew, &mut fresh_key)),
            tags(&offered),
            "nonew wins over no-"
        );
    }

    #[test]
    fn a_re_offer_keeps_the_accepted_line_and_renews_the_rest() {
        let out = offer(&[], &[], &SdesOptions::default(), &mut fresh_key);
        let chosen = line(7, Suite::AesCm128HmacSha1_80, 9);
        let out: Vec<Crypto> = accepted(&out, Some(&chosen)).into_iter().collect();
        assert_eq!(tags(&out), [(7, "AES_CM_128_HMAC_SHA1_80")]);
        let kept = out[0].key_salt.clone();
        let again = offer(&[], &out, &SdesOptions::default(), &mut fresh_key);
        assert_eq!(again[0].tag, 7);
        assert_eq!(again[0].key_salt, kept);
        assert_eq!(tags(&again)[1], (8, "AEAD_AES_256_GCM"));
        assert_eq!(again.len(), 12);
        assert_eq!(again.last().map(|c| c.tag), Some(18));
    }

    #[test]
    fn a_kept_line_follows_the_offerers_lines_in_tag_order() {
        // The SRTP party re-offers its line under tag 2; our kept line
        // (tag 1) is numbered after it, as upstream does.
        let kept = line(1, Suite::AesCm128HmacSha1_80, 9);
        let theirs = line(2, Suite::AeadAes256Gcm, 3);
        let out = offer(
            std::slice::from_ref(&theirs),
            std::slice::from_ref(&kept),
            &SdesOptions::default(),
            &mut fresh_key,
        );
        assert_eq!(
            tags(&out)[..2],
            [(2, "AEAD_AES_256_GCM"), (3, "AES_CM_128_HMAC_SHA1_80")]
        );
        assert_eq!(out[1].key_salt, kept.key_salt);
        assert_eq!(out.last().map(|c| c.tag), Some(13));
    }

    #[test]
    fn an_answer_with_another_tag_leaves_no_key() {
        let out = offer(&[], &[], &SdesOptions::default(), &mut fresh_key);
        assert!(accepted(&out, Some(&line(1, Suite::AesCm128HmacSha1_80, 9))).is_none());
    }

    /// `SDES-order:` reorders what an offer carries (tags kept, nothing
    /// added); `SDES-offerer_pref:` picks the answer's suite among the
    /// offerer's lines, also over the answerer's passthrough choice.
    #[test]
    fn order_and_offerer_preference() {
        let order = SdesOptions {
            order: vec![Suite::AesCm128HmacSha1_32, Suite::AeadAes128Gcm],
            only: {
                let mut only = SuiteSet::default();
                for s in [
                    Suite::AeadAes128Gcm,
                    Suite::AesCm128HmacSha1_80,
                    Suite::AesCm128HmacSha1_32,
                ] {
                    only.insert(s);
                }
                only
            },
            ..SdesOptions::default()
        };
        let out = offer(&[], &[], &order, &mut fresh_key);
        assert_eq!(
            tags(&out),
            [
                (3, "AES_CM_128_HMAC_SHA1_32"),
                (1, "AEAD_AES_128_GCM"),
                (2, "AES_CM_128_HMAC_SHA1_80")
            ]
        );
        let offered = [
            line(1, Suite::AesCm128HmacSha1_80, 1),
            line(2, Suite::AeadAes256Gcm, 2),
            line(3, Suite::AesCm128HmacSha1_32, 3),
        ];
        let pref = SdesOptions {
            offerer_pref: vec![Suite::AeadAes128Gcm, Suite::AesCm128HmacSha1_32],
            ..SdesOptions::default()
        };
        let a = answer(&offered, &[], None, &pref, &mut fresh_key).unwrap();
        assert_eq!((a.tag, a.suite), (3, Suite::AesCm128HmacSha1_32));
        // The answerer's own choice of a suite not preferred is not passed
        // through: the preferred one goes back, under our key.
        let x = line(1, Suite::AesCm128HmacSha1_80, 9);
        let b = answer(
            &offered,
            std::slice::from_ref(&x),
            None,
            &pref,
            &mut fresh_key,
        )
        .unwrap();
        assert_eq!(b.suite, Suite::AesCm128HmacSha1_32);
        assert_ne!(b.key_salt, x.key_salt);
        // A preference naming nothing offered changes nothing.
        let none = SdesOptions {
            offerer_pref: vec![Suite::F8_128HmacSha1_80],
            ..SdesOptions::default()
        };
        let c = answer(&offered, &[], None, &none, &mut fresh_key).unwrap();
        assert_eq!(c.tag, 1);
    }

    #[test]
    fn the_answer_to_the_offerer() {
        let offered = [
            line(1, Suite::AesCm128HmacSha1_80, 1),
            Crypto {
                unencrypted_srtcp: true,
                ..line(2, Suite::Aes256CmHmacSha1_80, 2)
            },
        ];
        let opts = SdesOptions::default();
        // Plain answerer: the first suite, its tag, our fresh key.
        let a = answer(&offered, &[], None, &opts, &mut fresh_key).unwrap();
        assert_eq!((a.tag, a.suite), (1, Suite::AesCm128HmacSha1_80));
        assert_ne!(a.key_salt, offered[0].key_salt);
        assert_eq!((a.lifetime.as_deref(), a.mki), (None, None));
        // Re-answer: our key kept.
        let b = answer(&offered, &[], Some(&a), &opts, &mut fresh_key).unwrap();
        assert_eq!(b.key_salt, a.key_salt);
        // Excluded first suite: the next, with its parameters.
        let mut no = SdesOptions::default();
        no.no.insert(Suite::AesCm128HmacSha1_80);
        let c = answer(&offered, &[], None, &no, &mut fresh_key).unwrap();
        assert_eq!((c.tag, c.unencrypted_srtcp), (2, true));
        no.params.unencrypted_srtcp = Some(false);
        assert!(
            !answer(&offered, &[], None, &no, &mut fresh_key)
                .unwrap()
                .unencrypted_srtcp
        );
        // A changed parameter on a line passed on makes it ours: new key.
        let mut enc = SdesOptions::default();
        enc.params.unencrypted_srtcp = Some(false);
        let o = offer(&offered, &[], &enc, &mut fresh_key);
        assert_eq!(o[0].key_salt, offered[0].key_salt, "unchanged: passed on");
        assert!(!o[1].unencrypted_srtcp);
        assert_ne!(o[1].key_salt, offered[1].key_salt, "changed: our key");
        // The answerer took the offerer's suite: its line, verbatim.
        let x = line(1, Suite::AesCm128HmacSha1_80, 7);
        let d = answer(
            &offered,
            std::slice::from_ref(&x),
            None,
            &opts,
            &mut fresh_key,
        )
        .unwrap();
        assert_eq!(d.key_salt, x.key_salt);
        // The answerer took the offerer's second suite: passed through too.
        let z = line(2, Suite::Aes256CmHmacSha1_80, 2);
        let f = answer(
            &offered,
            std::slice::from_ref(&z),
            None,
            &opts,
            &mut fresh_key,
        )
        .unwrap();
        assert_eq!((f.tag, f.key_salt), (2, z.key_salt.clone()));
        // The answerer took one of ours: the offerer's first, our key.
        let y = line(4, Suite::AeadAes256Gcm, 7);
        let e = answer(&offered, &[y], None, &opts, &mut fresh_key).unwrap();
        assert_eq!((e.tag, e.suite), (1, Suite::AesCm128HmacSha1_80));
        assert_ne!(e.key_salt, offered[0].key_salt);
        assert!(answer(&[], &[], None, &opts, &mut fresh_key).is_none());
        // `static`: the previous line stays, even where another would pass through.
        let st = SdesOptions {
            static_keys: true,
            ..SdesOptions::default()
        };
        let g = answer(
            &offered,
            std::slice::from_ref(&z),
            Some(&a),
            &st,
            &mut fresh_key,
        )
        .unwrap();
        assert_eq!(g, a);
        // … but not once the offerer no longer offers it.
        let h = answer(&offered[1..], &[], Some(&a), &st, &mut fresh_key).unwrap();
        assert_eq!(h.tag, 2);
    }
}
