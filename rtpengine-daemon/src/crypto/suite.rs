//! The SRTP crypto suites an SDES offer can name, with the sizes their keys
//! and authentication tags have (RFC 4568 §6.2, RFC 6188 for AES-192/256,
//! RFC 7714 for AES-GCM).

/// One SRTP crypto suite, as named in `a=crypto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    AeadAes256Gcm,
    AeadAes128Gcm,
    Aes256CmHmacSha1_80,
    Aes256CmHmacSha1_32,
    Aes192CmHmacSha1_80,
    Aes192CmHmacSha1_32,
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
    F8_128HmacSha1_80,
    F8_128HmacSha1_32,
    NullHmacSha1_80,
    NullHmacSha1_32,
}

/// Every suite, in the order upstream offers them when it adds SDES to a
/// plain offer (strongest first); tags are numbered in this order.
pub const SUITES: [Suite; 12] = [
    Suite::AeadAes256Gcm,
    Suite::AeadAes128Gcm,
    Suite::Aes256CmHmacSha1_80,
    Suite::Aes256CmHmacSha1_32,
    Suite::Aes192CmHmacSha1_80,
    Suite::Aes192CmHmacSha1_32,
    Suite::AesCm128HmacSha1_80,
    Suite::AesCm128HmacSha1_32,
    Suite::F8_128HmacSha1_80,
    Suite::F8_128HmacSha1_32,
    Suite::NullHmacSha1_80,
    Suite::NullHmacSha1_32,
];

impl Suite {
    /// The name in `a=crypto` (and in the `SDES-no-…`/`SDES-only-…` flags).
    pub fn name(self) -> &'static str {
        match self {
            Suite::AeadAes256Gcm => "AEAD_AES_256_GCM",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Suite::Aes256CmHmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            Suite::Aes256CmHmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            Suite::Aes192CmHmacSha1_80 => "AES_192_CM_HMAC_SHA1_80",
            Suite::Aes192CmHmacSha1_32 => "AES_192_CM_HMAC_SHA1_32",
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::F8_128HmacSha1_80 => "F8_128_HMAC_SHA1_80",
            Suite::F8_128HmacSha1_32 => "F8_128_HMAC_SHA1_32",
            Suite::NullHmacSha1_80 => "NULL_HMAC_SHA1_80",
            Suite::NullHmacSha1_32 => "NULL_HMAC_SHA1_32",
        }
    }

    /// The suite called `name`, in any case (the names are ABNF literals,
    /// which are case-insensitive; upstream compares them so too).
    pub fn from_name(name: &str) -> Option<Suite> {
        SUITES
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// The suite whose name, with `_` written `-`, is `name` in any case
    /// (the form ng flags take once canonical: `aes-cm-128-hmac-sha1-80`).
    pub fn from_flag(name: &str) -> Option<Suite> {
        SUITES
            .into_iter()
            .find(|s| s.name().replace('_', "-").eq_ignore_ascii_case(name))
    }

    /// The suites of a list in flag form (`SDES-order:`,
    /// `SDES-offerer_pref:`; `;` or `,` between them), `None` for a name
    /// that is no suite.
    pub fn list(list: &str) -> impl Iterator<Item = Option<Suite>> + '_ {
        list.split([';', ','])
            .filter(|n| !n.is_empty())
            .map(Suite::from_flag)
    }

    /// Master key length, bytes. The NULL suites still derive their
    /// authentication key with the AES-128 counter-mode PRF.
    pub fn key_len(self) -> usize {
        match self {
            Suite::AeadAes256Gcm | Suite::Aes256CmHmacSha1_80 | Suite::Aes256CmHmacSha1_32 => 32,
            Suite::Aes192CmHmacSha1_80 | Suite::Aes192CmHmacSha1_32 => 24,
            _ => 16,
        }
    }

    /// Master salt length, bytes: 12 for AES-GCM (RFC 7714 §12), 14 otherwise.
    pub fn salt_len(self) -> usize {
        if self.is_aead() {
            12
        } else {
            14
        }
    }

    /// Length of the `inline:` key material (key ‖ salt), bytes.
    pub fn key_salt_len(self) -> usize {
        self.key_len() + self.salt_len()
    }

    /// Authentication tag of SRTP packets, bytes.
    pub fn srtp_tag_len(self) -> usize {
        match self {
            Suite::AeadAes256Gcm | Suite::AeadAes128Gcm => 16,
            Suite::Aes256CmHmacSha1_32
            | Suite::Aes192CmHmacSha1_32
            | Suite::AesCm128HmacSha1_32
            | Suite::F8_128HmacSha1_32
            | Suite::NullHmacSha1_32 => 4,
            _ => 10,
        }
    }

    /// Authentication tag of SRTCP packets, bytes: the `_32` suites shorten
    /// only SRTP's tag, SRTCP keeps 80 bits (RFC 4568 §6.2).
    pub fn srtcp_tag_len(self) -> usize {
        if self.is_aead() {
            16
        } else {
            10
        }
    }

    /// Whether the suite is an AEAD (AES-GCM) suite.
    pub fn is_aead(self) -> bool {
        matches!(self, Suite::AeadAes256Gcm | Suite::AeadAes128Gcm)
    }

    /// Whether the payload is encrypted at all (the NULL suites only
    /// authenticate).
    pub fn encrypts(self) -> bool {
        !matches!(self, Suite::NullHmacSha1_80 | Suite::NullHmacSha1_32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for s in SUITES {
            assert_eq!(Suite::from_name(s.name()), Some(s));
        }
        let mut names: Vec<_> = SUITES.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SUITES.len());
        assert_eq!(
            Suite::from_name("aes_cm_128_hmac_sha1_80"),
            Some(Suite::AesCm128HmacSha1_80)
        );
        assert_eq!(Suite::from_name("AES_CM_128_HMAC_SHA1"), None);
    }

    #[test]
    fn sizes_follow_the_rfcs() {
        // RFC 4568 §6.2: AES_CM_128_HMAC_SHA1_80 has a 128-bit key, a
        // 112-bit salt, an 80-bit tag; _32 a 32-bit SRTP tag and still an
        // 80-bit SRTCP tag.
        let s = Suite::AesCm128HmacSha1_32;
        assert_eq!((s.key_len(), s.salt_len()), (16, 14));
        assert_eq!((s.srtp_tag_len(), s.srtcp_tag_len()), (4, 10));
        // RFC 6188: AES-192 and AES-256 keep the 112-bit salt.
        assert_eq!(Suite::Aes192CmHmacSha1_80.key_salt_len(), 38);
        assert_eq!(Suite::Aes256CmHmacSha1_80.key_salt_len(), 46);
        // RFC 7714: a 96-bit salt and a 16-byte tag for both protocols.
        assert_eq!(Suite::AeadAes128Gcm.key_salt_len(), 28);
        assert_eq!(Suite::AeadAes256Gcm.key_salt_len(), 44);
        assert_eq!(Suite::AeadAes256Gcm.srtcp_tag_len(), 16);
        assert!(!Suite::NullHmacSha1_80.encrypts());
    }
}
