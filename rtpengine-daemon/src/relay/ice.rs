//! ICE-lite (RFC 8445 §2.5) on a media port: answering the peer's
//! connectivity checks. A lite agent sends no checks of its own; the full
//! agent on the other side (a browser, aiortc) checks our host candidate,
//! nominates it, and keeps consent (RFC 7675) with further checks, each
//! answered here. A check that passes the short-term credentials' integrity
//! tells where the peer receives: the nominated one becomes the party's
//! confirmed endpoint.
//!
//! STUN encoding and integrity are `stun-types`'; only the decisions are
//! here.

use std::net::SocketAddr;

use stun_types::attribute::{AttributeType, Username, XorMappedAddress};
use stun_types::message::{
    IntegrityAlgorithm, Message, MessageClass, MessageWrite, MessageWriteExt, MessageWriteVec,
    ShortTermCredentials, BINDING,
};

/// USE-CANDIDATE (RFC 8445 §16.1): the controlling agent nominates the pair.
const USE_CANDIDATE: AttributeType = AttributeType::new(0x0025);

/// Why a STUN message got no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IceError {
    /// Not a STUN message, or malformed (bad length, bad FINGERPRINT).
    #[error("malformed STUN message")]
    Malformed,
    /// A STUN message other than a Binding request (responses,
    /// indications): a lite agent sends no requests, so expects none.
    #[error("not a Binding request")]
    NotRequest,
    /// USERNAME does not start with our ufrag.
    #[error("unknown ICE username")]
    Username,
    /// MESSAGE-INTEGRITY missing or not made with our password.
    #[error("ICE integrity check failed")]
    Integrity,
}

/// Our ICE credentials for one media section (`a=ice-ufrag`, `a=ice-pwd`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Username fragment.
    pub ufrag: String,
    /// Password.
    pub pwd: String,
}

impl Credentials {
    /// Fresh random credentials in upstream's sizes (8 and 26 characters of
    /// `ice-char`, RFC 8839 §5.4).
    pub fn generate() -> Credentials {
        Credentials {
            ufrag: random_chars(8),
            pwd: random_chars(26),
        }
    }
}

/// Random alphanumeric characters (a subset of ICE's `ice-char`).
pub fn random_chars(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// A check that passed.
#[derive(Debug, PartialEq, Eq)]
pub struct Answered {
    /// The success response to send back to the check's source.
    pub response: Vec<u8>,
    /// The check nominated this pair (USE-CANDIDATE).
    pub nominated: bool,
}

/// Whether `pkt` looks like STUN (RFC 7983: first byte 0–3, and the magic
/// cookie).
pub fn is_stun(pkt: &[u8]) -> bool {
    pkt.len() >= 20 && pkt[0] < 4 && pkt[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// Answers a connectivity check from `src` made with our credentials.
pub fn answer(pkt: &[u8], src: SocketAddr, ours: &Credentials) -> Result<Answered, IceError> {
    // Checks FINGERPRINT when present.
    let msg = Message::from_bytes(pkt).map_err(|_| IceError::Malformed)?;
    if !msg.has_class(MessageClass::Request) || !msg.has_method(BINDING) {
        return Err(IceError::NotRequest);
    }
    // USERNAME is "<our ufrag>:<their ufrag>" (RFC 8445 §7.2.2).
    let user = msg
        .attribute::<Username>()
        .map_err(|_| IceError::Username)?;
    let ours_first = user
        .username()
        .split_once(':')
        .is_some_and(|(a, _)| a == ours.ufrag);
    if !ours_first {
        return Err(IceError::Username);
    }
    let creds = ShortTermCredentials::new(ours.pwd.clone()).into();
    msg.validate_integrity(&creds)
        .map_err(|_| IceError::Integrity)?;
    let mut out = Message::builder_success(&msg, MessageWriteVec::new());
    let mapped = XorMappedAddress::new(src, msg.transaction_id());
    let written = out
        .add_attribute(&mapped)
        .and_then(|()| out.add_message_integrity(&creds, IntegrityAlgorithm::Sha1))
        .and_then(|()| out.add_fingerprint());
    // Writing three attributes into a growable buffer does not fail.
    written.map_err(|_| IceError::Malformed)?;
    Ok(Answered {
        response: out.finish(),
        nominated: msg.has_attribute(USE_CANDIDATE),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun_types::message::MessageIntegrityCredentials;

    fn check(user: &str, pwd: &str, nominate: bool) -> Vec<u8> {
        let mut m = Message::builder_request(BINDING, MessageWriteVec::new());
        m.add_attribute(&Username::new(user).unwrap()).unwrap();
        if nominate {
            m.add_attribute(&stun_types::attribute::RawAttribute::new(
                USE_CANDIDATE,
                &[],
            ))
            .unwrap();
        }
        let creds: MessageIntegrityCredentials = ShortTermCredentials::new(pwd.into()).into();
        m.add_message_integrity(&creds, IntegrityAlgorithm::Sha1)
            .unwrap();
        m.add_fingerprint().unwrap();
        m.finish()
    }

    #[test]
    fn a_check_with_our_credentials_is_answered_with_its_source() {
        let ours = Credentials::generate();
        let src: SocketAddr = "198.51.100.1:4000".parse().unwrap();
        let req = check(&format!("{}:peer", ours.ufrag), &ours.pwd, true);
        assert!(is_stun(&req));
        let a = answer(&req, src, &ours).unwrap();
        assert!(a.nominated);
        let resp = Message::from_bytes(&a.response).unwrap();
        assert!(resp.has_class(MessageClass::Success));
        let creds = ShortTermCredentials::new(ours.pwd.clone()).into();
        resp.validate_integrity(&creds).unwrap();
        assert!(
            resp.has_attribute(AttributeType::new(0x8028)),
            "FINGERPRINT"
        );
        let mapped = resp.attribute::<XorMappedAddress>().unwrap();
        assert_eq!(mapped.addr(resp.transaction_id()), src);
        let plain = check(&format!("{}:peer", ours.ufrag), &ours.pwd, false);
        assert!(!answer(&plain, src, &ours).unwrap().nominated);
    }

    #[test]
    fn wrong_credentials_and_junk_get_no_answer() {
        let ours = Credentials::generate();
        let src: SocketAddr = "198.51.100.1:4000".parse().unwrap();
        let wrong_pwd = check(&format!("{}:peer", ours.ufrag), "not the password", true);
        assert_eq!(answer(&wrong_pwd, src, &ours), Err(IceError::Integrity));
        let wrong_user = check("someone:peer", &ours.pwd, true);
        assert_eq!(answer(&wrong_user, src, &ours), Err(IceError::Username));
        let mut bad_fp = check(&format!("{}:peer", ours.ufrag), &ours.pwd, true);
        let last = bad_fp.len() - 1;
        bad_fp[last] ^= 1;
        assert_eq!(answer(&bad_fp, src, &ours), Err(IceError::Malformed));
        assert_eq!(answer(&[0u8; 20], src, &ours), Err(IceError::Malformed));
        assert!(!is_stun(&[0x80; 40]));
    }
}
