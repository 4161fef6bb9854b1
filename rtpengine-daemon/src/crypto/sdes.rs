//! The SDES `a=crypto` attribute (RFC 4568 §9.1):
//!
//! ```text
//! a=crypto:<tag> <suite> inline:<base64 key‖salt>[|<lifetime>][|<MKI>:<length>] [<session params>]
//! ```
//!
//! Parsing accepts what peers send (padded or unpadded base64, a lifetime
//! as `2^n` or decimal, an MKI, the session parameters); writing produces
//! what upstream writes: unpadded base64 unless `SDES-pad`, the lifetime
//! `2^31` only with `SDES-lifetime` (a received lifetime is not echoed),
//! and the three session parameters that change the packets.

use std::fmt::Write as _;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use super::Suite;

/// Reads keys with or without `=` padding (both occur in the field).
const DECODE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        // Keys whose length is not a multiple of 3 bytes leave spare bits
        // in the last character; careless encoders set them, upstream's
        // decoder ignores them.
        .with_decode_allow_trailing_bits(true),
);
/// Writes keys as upstream does by default: padding stripped.
const ENCODE_UNPADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_encode_padding(false),
);
/// Writes keys with `SDES-pad`.
const ENCODE_PADDED: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The longest MKI RFC 4568 allows, bytes.
pub const MAX_MKI_LEN: u8 = 128;

/// One parsed `a=crypto` attribute (the part after `a=crypto:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crypto {
    /// The tag the answer must repeat (1 to 9 digits).
    pub tag: u32,
    pub suite: Suite,
    /// Master key followed by master salt, [`Suite::key_salt_len`] bytes.
    pub key_salt: Vec<u8>,
    /// The master key's lifetime as written (`2^31`, `1048576`), if given.
    pub lifetime: Option<String>,
    /// Master key identifier carried in every packet, if any.
    pub mki: Option<Mki>,
    /// `UNENCRYPTED_SRTP`: RTP payloads are sent in the clear.
    pub unencrypted_srtp: bool,
    /// `UNENCRYPTED_SRTCP`: RTCP is sent in the clear (E flag 0).
    pub unencrypted_srtcp: bool,
    /// `UNAUTHENTICATED_SRTP`: RTP packets carry no authentication tag.
    pub unauthenticated_srtp: bool,
}

/// A master key identifier: its value and how many bytes it takes in
/// each packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mki {
    pub value: u64,
    pub len: u8,
}

/// Why an `a=crypto` attribute could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("malformed a=crypto attribute: {0}")]
    Malformed(&'static str),
    #[error("unknown crypto suite {0:?}")]
    UnknownSuite(String),
    #[error("invalid base64 in a=crypto key")]
    Base64,
    #[error("a=crypto key of {suite} is {got} bytes, expected {expected}")]
    KeyLength {
        suite: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("a=crypto with several master keys (MKI) is not supported")]
    SeveralKeys,
}

/// How to write an attribute (the `SDES-pad` and `SDES-lifetime` flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Keep base64's `=` padding.
    pub pad: bool,
    /// Add the lifetime `|2^31`.
    pub lifetime: bool,
}

impl Crypto {
    /// Parses the value of an `a=crypto` attribute.
    pub fn parse(value: &str) -> Result<Crypto, CryptoError> {
        let mut fields = value.split_ascii_whitespace();
        let tag = fields.next().ok_or(CryptoError::Malformed("no tag"))?;
        if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CryptoError::Malformed("the tag is not 1 to 9 digits"));
        }
        let tag = tag
            .parse()
            .map_err(|_| CryptoError::Malformed("the tag is not 1 to 9 digits"))?;
        let suite_name = fields.next().ok_or(CryptoError::Malformed("no suite"))?;
        let suite = Suite::from_name(suite_name)
            .ok_or_else(|| CryptoError::UnknownSuite(suite_name.to_string()))?;
        let key_params = fields.next().ok_or(CryptoError::Malformed("no key"))?;
        if key_params.contains(';') {
            return Err(CryptoError::SeveralKeys);
        }
        let inline = key_params
            .get(..7)
            .filter(|m| m.eq_ignore_ascii_case("inline:"))
            .and_then(|_| key_params.get(7..))
            .ok_or(CryptoError::Malformed("the key method is not inline"))?;
        let mut parts = inline.split('|');
        let key = parts.next().unwrap_or_default();
        let key_salt = DECODE.decode(key).map_err(|_| CryptoError::Base64)?;
        if key_salt.len() != suite.key_salt_len() {
            return Err(CryptoError::KeyLength {
                suite: suite.name(),
                expected: suite.key_salt_len(),
                got: key_salt.len(),
            });
        }
        let mut lifetime = None;
        let mut mki = None;
        for part in parts {
            if let Some((value, len)) = part.split_once(':') {
                if mki.is_some() {
                    return Err(CryptoError::Malformed("two MKIs"));
                }
                mki = Some(parse_mki(value, len)?);
            } else if lifetime.is_none() && mki.is_none() && is_lifetime(part)? {
                lifetime = Some(part.to_string());
            } else {
                return Err(CryptoError::Malformed("bad lifetime or MKI"));
            }
        }
        let mut c = Crypto {
            tag,
            suite,
            key_salt,
            lifetime,
            mki,
            unencrypted_srtp: false,
            unencrypted_srtcp: false,
            unauthenticated_srtp: false,
        };
        // Other session parameters (KDR, WSH, FEC_ORDER, FEC_KEY) are
        // ignored and not repeated, as upstream does.
        for param in fields {
            match param {
                "UNENCRYPTED_SRTP" => c.unencrypted_srtp = true,
                "UNENCRYPTED_SRTCP" => c.unencrypted_srtcp = true,
                "UNAUTHENTICATED_SRTP" => c.unauthenticated_srtp = true,
                _ => {}
            }
        }
        Ok(c)
    }

    /// The attribute's value, to follow `a=crypto:`.
    pub fn write(&self, opts: WriteOptions) -> String {
        let engine = if opts.pad {
            &ENCODE_PADDED
        } else {
            &ENCODE_UNPADDED
        };
        let mut s = format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            engine.encode(&self.key_salt)
        );
        if opts.lifetime {
            s.push_str("|2^31");
        }
        if let Some(m) = self.mki {
            let _ = write!(s, "|{}:{}", m.value, m.len);
        }
        for (set, name) in [
            (self.unencrypted_srtp, "UNENCRYPTED_SRTP"),
            (self.unencrypted_srtcp, "UNENCRYPTED_SRTCP"),
            (self.unauthenticated_srtp, "UNAUTHENTICATED_SRTP"),
        ] {
            if set {
                s.push(' ');
                s.push_str(name);
            }
        }
        s
    }
}

/// The longest lifetime a master key may have, packets (SRTP's 2^48).
pub const MAX_LIFETIME: u64 = 1 << 48;

/// Whether `s` is a lifetime (`2^n` or a decimal count of packets); an
/// error when it is one but out of range (0, or beyond [`MAX_LIFETIME`]).
fn is_lifetime(s: &str) -> Result<bool, CryptoError> {
    let (power, digits) = match s.strip_prefix("2^") {
        Some(d) => (true, d),
        None => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(false);
    }
    let bad = CryptoError::Malformed("lifetime out of range");
    let n: u64 = digits.parse().map_err(|_| bad.clone())?;
    let packets = match (power, n) {
        (true, 0..=63) => 1u64 << n,
        (true, _) => return Err(bad),
        (false, _) => n,
    };
    if packets == 0 || packets > MAX_LIFETIME {
        return Err(bad);
    }
    Ok(true)
}

/// `<value>:<length>`, both decimal digits only (the length 1 to 3 of them).
fn parse_mki(value: &str, len: &str) -> Result<Mki, CryptoError> {
    let bad = CryptoError::Malformed("bad MKI");
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(value, 20) || !digits(len, 3) {
        return Err(bad);
    }
    let len: u8 = len.parse().map_err(|_| bad.clone())?;
    if len == 0 || len > MAX_MKI_LEN {
        return Err(bad);
    }
    let value: u64 = value.parse().map_err(|_| bad.clone())?;
    // The value must fit the bytes the packets give it.
    if len < 8 && value >> (8 * u32::from(len)) != 0 {
        return Err(bad);
    }
    Ok(Mki { value, len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SUITES;

    /// RFC 4568 §4's example.
    const RFC_EXAMPLE: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4";

    #[test]
    fn parses_the_rfc_example() {
        let c = Crypto::parse(RFC_EXAMPLE).unwrap();
        assert_eq!(c.tag, 1);
        assert_eq!(c.suite, Suite::AesCm128HmacSha1_80);
        assert_eq!(c.key_salt.len(), 30);
        assert_eq!(&c.key_salt[..4], b"=-n@");
        assert_eq!(c.lifetime.as_deref(), Some("2^20"));
        assert_eq!(c.mki, Some(Mki { value: 1, len: 4 }));
        assert!(!c.unencrypted_srtp && !c.unencrypted_srtcp && !c.unauthenticated_srtp);
    }

    #[test]
    fn writes_as_upstream_and_does_not_echo_the_lifetime() {
        let c = Crypto::parse(RFC_EXAMPLE).unwrap();
        assert_eq!(
            c.write(WriteOptions::default()),
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1:4"
        );
        let mut c = c;
        c.mki = None;
        c.unencrypted_srtcp = true;
        let opts = WriteOptions {
            pad: true,
            lifetime: true,
        };
        assert_eq!(
            c.write(opts),
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31 UNENCRYPTED_SRTCP"
        );
        assert_eq!(Crypto::parse(&c.write(opts)).unwrap().key_salt, c.key_salt);
    }

    #[test]
    fn key_lengths_of_every_suite_with_and_without_padding() {
        // Unpadded base64 lengths upstream writes, and padded ones.
        let expect = |s: Suite| match s.key_salt_len() {
            30 => (40, 40),
            38 => (51, 52),
            46 => (62, 64),
            28 => (38, 40),
            44 => (59, 60),
            n => panic!("unexpected key length {n}"),
        };
        for (i, suite) in SUITES.into_iter().enumerate() {
            let c = Crypto {
                tag: i as u32 + 1,
                suite,
                key_salt: (0..suite.key_salt_len() as u8).collect(),
                lifetime: None,
                mki: None,
                unencrypted_srtp: false,
                unencrypted_srtcp: false,
                unauthenticated_srtp: false,
            };
            let key_chars = |opts| {
                let line = c.write(opts);
                let key = line.rsplit("inline:").next().unwrap().to_string();
                assert_eq!(Crypto::parse(&line).unwrap(), c, "{line}");
                key.len()
            };
            let unpadded = key_chars(WriteOptions::default());
            let padded = key_chars(WriteOptions {
                pad: true,
                lifetime: false,
            });
            assert_eq!((unpadded, padded), expect(suite), "{}", suite.name());
        }
    }

    #[test]
    fn accepts_what_peers_write() {
        // Case-insensitive names and method, a decimal lifetime at the
        // limit, spare bits set in the key's last character (46 bytes).
        let c = Crypto::parse(
            "2 aes_256_cm_hmac_sha1_80 INLINE:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLR|281474976710656",
        )
        .unwrap();
        assert_eq!(c.suite, Suite::Aes256CmHmacSha1_80);
        assert_eq!(c.key_salt, (0..46).collect::<Vec<u8>>());
        assert_eq!(c.lifetime.as_deref(), Some("281474976710656"));
        assert!(Crypto::parse(
            "2 AES_256_CM_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLQ|2^48"
        )
        .is_ok());
    }

    #[test]
    fn session_parameters() {
        let c = Crypto::parse(
            "7 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR KDR=23 UNENCRYPTED_SRTP UNAUTHENTICATED_SRTP",
        )
        .unwrap();
        assert_eq!(c.tag, 7);
        assert!(c.unencrypted_srtp && c.unauthenticated_srtp && !c.unencrypted_srtcp);
        assert!(c
            .write(WriteOptions::default())
            .ends_with(" UNENCRYPTED_SRTP UNAUTHENTICATED_SRTP"));
    }

    #[test]
    fn rejects_what_cannot_be_used() {
        let key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        let err = |v: &str| Crypto::parse(v).unwrap_err();
        assert_eq!(
            err(&format!("1 AES_CM_128_HMAC_SHA1_99 inline:{key}")),
            CryptoError::UnknownSuite("AES_CM_128_HMAC_SHA1_99".into())
        );
        assert_eq!(
            err(&format!("1 AES_256_CM_HMAC_SHA1_80 inline:{key}")),
            CryptoError::KeyLength {
                suite: "AES_256_CM_HMAC_SHA1_80",
                expected: 46,
                got: 30
            }
        );
        assert_eq!(
            err("1 AES_CM_128_HMAC_SHA1_80 inline:PS1u!!"),
            CryptoError::Base64
        );
        assert_eq!(
            err(&format!(
                "1 AES_CM_128_HMAC_SHA1_80 inline:{key}|1:4;inline:{key}|2:4"
            )),
            CryptoError::SeveralKeys
        );
        for bad in [
            String::new(),
            "1".into(),
            "1 AES_CM_128_HMAC_SHA1_80".into(),
            format!("x AES_CM_128_HMAC_SHA1_80 inline:{key}"),
            format!("1234567890 AES_CM_128_HMAC_SHA1_80 inline:{key}"),
            format!("1 AES_CM_128_HMAC_SHA1_80 uri:{key}"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^x"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|1:0"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|1:129"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|256:1"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|1:4|2^20"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|+1:4"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|1:0004"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|0"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^49"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^99"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|281474976710657"),
        ] {
            assert!(
                matches!(Crypto::parse(&bad), Err(CryptoError::Malformed(_))),
                "{bad:?} -> {:?}",
                Crypto::parse(&bad)
            );
        }
    }
}
