//! ICE's STUN messages (RFC 8445 §7) on a media port: verifying and
//! answering the peer's connectivity checks, and, for the full agent
//! ([`super::ice_agent`]), making our own checks and reading their
//! responses. A check that passes the short-term credentials' integrity
//! tells where the peer receives: the nominated pair becomes the party's
//! confirmed endpoint.
//!
//! STUN encoding and integrity are `stun-types`'; only the decisions are
//! here and in the agent.

use std::net::SocketAddr;

use stun_types::attribute::{AttributeType, ErrorCode, RawAttribute, Username, XorMappedAddress};
use stun_types::message::{
    IntegrityAlgorithm, Message, MessageClass, MessageType, MessageWrite, MessageWriteExt,
    MessageWriteVec, ShortTermCredentials, TransactionId, BINDING,
};

/// PRIORITY (RFC 8445 §16.1).
const PRIORITY: AttributeType = AttributeType::new(0x0024);
/// USE-CANDIDATE (RFC 8445 §16.1): the controlling agent nominates the pair.
const USE_CANDIDATE: AttributeType = AttributeType::new(0x0025);
/// ICE-CONTROLLED and ICE-CONTROLLING (RFC 8445 §16.1): the sender's role
/// and tie-breaker.
const ICE_CONTROLLED: AttributeType = AttributeType::new(0x8029);
const ICE_CONTROLLING: AttributeType = AttributeType::new(0x802A);

/// Why a STUN message got no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IceError {
    /// Not a STUN message, or malformed (bad length, bad FINGERPRINT).
    #[error("malformed STUN message")]
    Malformed,
    /// Not the Binding message expected (a request where a response was
    /// expected, or the other way round; indications).
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

/// A connectivity check that passed our credentials.
#[derive(Debug, PartialEq, Eq)]
pub struct Check {
    /// USE-CANDIDATE: the controlling agent nominates the pair.
    pub nominated: bool,
    /// The sender's role claim and tie-breaker: `(controlling, tie)`.
    pub role: Option<(bool, u64)>,
    /// PRIORITY: what the pair's remote candidate is worth if it is new
    /// (peer reflexive, RFC 8445 §7.3.1.3).
    pub priority: Option<u32>,
}

/// Whether `pkt` looks like STUN (RFC 7983: first byte 0–3, and the magic
/// cookie).
pub fn is_stun(pkt: &[u8]) -> bool {
    pkt.len() >= 20 && pkt[0] < 4 && pkt[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// Whether `pkt` is a STUN response (success or error), which only a full
/// agent's own checks get.
pub fn is_response(pkt: &[u8]) -> bool {
    // The class bits of the message type (RFC 8489 §5): 0b10 success,
    // 0b11 error.
    is_stun(pkt) && pkt[0] & 0x01 != 0
}

/// Verifies a connectivity check made with our credentials.
pub fn verify(pkt: &[u8], ours: &Credentials) -> Result<Check, IceError> {
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
    let tie = |t| {
        msg.raw_attribute(t)
            .and_then(|a| <[u8; 8]>::try_from(&a.value[..]).ok())
            .map(u64::from_be_bytes)
    };
    let role = match (tie(ICE_CONTROLLING), tie(ICE_CONTROLLED)) {
        (Some(t), _) => Some((true, t)),
        (None, Some(t)) => Some((false, t)),
        (None, None) => None,
    };
    let priority = msg
        .raw_attribute(PRIORITY)
        .and_then(|a| <[u8; 4]>::try_from(&a.value[..]).ok())
        .map(u32::from_be_bytes);
    Ok(Check {
        nominated: msg.has_attribute(USE_CANDIDATE),
        role,
        priority,
    })
}

/// The success response to a verified check from `src` (its source goes
/// back in XOR-MAPPED-ADDRESS), or the 487 Role Conflict error.
pub fn respond(pkt: &[u8], src: SocketAddr, ours: &Credentials, conflict: bool) -> Vec<u8> {
    let Ok(msg) = Message::from_bytes(pkt) else {
        return Vec::new();
    };
    let creds = ShortTermCredentials::new(ours.pwd.clone()).into();
    let mut out = match conflict {
        false => Message::builder_success(&msg, MessageWriteVec::new()),
        true => Message::builder_error(&msg, MessageWriteVec::new()),
    };
    let written = match conflict {
        false => out.add_attribute(&XorMappedAddress::new(src, msg.transaction_id())),
        true => ErrorCode::builder(ErrorCode::ROLE_CONFLICT)
            .build()
            .and_then(|e| out.add_attribute(&e)),
    }
    .and_then(|()| out.add_message_integrity(&creds, IntegrityAlgorithm::Sha1))
    .and_then(|()| out.add_fingerprint());
    // Writing three attributes into a growable buffer does not fail.
    match written {
        Ok(()) => out.finish(),
        Err(_) => Vec::new(),
    }
}

/// What a full agent's own check says about itself.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Our credentials (the USERNAME's second half).
    pub ours: &'a Credentials,
    /// The peer's ufrag and password.
    pub theirs: (&'a str, &'a str),
    /// Our role and tie-breaker.
    pub controlling: bool,
    /// The tie-breaker (RFC 8445 §7.1.1).
    pub tie: u64,
    /// USE-CANDIDATE.
    pub nominate: bool,
    /// The ICE component checked (1 RTP, 2 RTCP): in PRIORITY.
    pub component: u8,
}

/// Our Binding request for a pair (RFC 8445 §7.2.2), under transaction `tid`.
pub fn request(r: &Request<'_>, tid: TransactionId) -> Vec<u8> {
    let mtype = MessageType::from_class_method(MessageClass::Request, BINDING);
    let mut m = Message::builder(mtype, tid, MessageWriteVec::new());
    let creds = ShortTermCredentials::new(r.theirs.1.to_owned()).into();
    let role = match r.controlling {
        true => ICE_CONTROLLING,
        false => ICE_CONTROLLED,
    };
    let tie = r.tie.to_be_bytes();
    let prio = peer_reflexive(r.component).to_be_bytes();
    let written = Username::new(&format!("{}:{}", r.theirs.0, r.ours.ufrag))
        .map_err(|_| ())
        .and_then(|u| m.add_attribute(&u).map_err(|_| ()))
        .and_then(|()| {
            m.add_attribute(&RawAttribute::new(PRIORITY, &prio))
                .map_err(|_| ())
        })
        .and_then(|()| {
            m.add_attribute(&RawAttribute::new(role, &tie))
                .map_err(|_| ())
        })
        .and_then(|()| match r.nominate {
            true => m
                .add_attribute(&RawAttribute::new(USE_CANDIDATE, &[]))
                .map_err(|_| ()),
            false => Ok(()),
        })
        .and_then(|()| {
            m.add_message_integrity(&creds, IntegrityAlgorithm::Sha1)
                .map_err(|_| ())
        })
        .and_then(|()| m.add_fingerprint().map_err(|_| ()));
    // Only a ufrag too long for USERNAME (513 bytes) fails: signalling
    // keeps ufrags far shorter.
    match written {
        Ok(()) => m.finish(),
        Err(()) => Vec::new(),
    }
}

/// A response to one of our checks.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// Its transaction.
    pub tid: TransactionId,
    /// Success, or the error code.
    pub outcome: Result<(), u16>,
}

/// Parses and verifies (with the peer's password) a response to our check.
pub fn response(pkt: &[u8], their_pwd: &str) -> Result<Response, IceError> {
    let msg = Message::from_bytes(pkt).map_err(|_| IceError::Malformed)?;
    if !msg.is_response() || !msg.has_method(BINDING) {
        return Err(IceError::NotRequest);
    }
    let creds = ShortTermCredentials::new(their_pwd.to_owned()).into();
    msg.validate_integrity(&creds)
        .map_err(|_| IceError::Integrity)?;
    let outcome = match msg.has_class(MessageClass::Success) {
        true => Ok(()),
        false => Err(msg.attribute::<ErrorCode>().map_or(0, |e| e.code())),
    };
    Ok(Response {
        tid: msg.transaction_id(),
        outcome,
    })
}

/// The PRIORITY we claim in our checks of `component`: a peer-reflexive
/// candidate's (RFC 8445 §7.1.1: type preference 110, local preference
/// 65535).
pub fn peer_reflexive(component: u8) -> u32 {
    (110 << 24) | (65535 << 8) | (256 - u32::from(component))
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
        let a = verify(&req, &ours).unwrap();
        assert!(a.nominated);
        assert_eq!(a.role, None);
        let response = respond(&req, src, &ours, false);
        let resp = Message::from_bytes(&response).unwrap();
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
        assert!(!verify(&plain, &ours).unwrap().nominated);
    }

    #[test]
    fn wrong_credentials_and_junk_get_no_answer() {
        let ours = Credentials::generate();
        let wrong_pwd = check(&format!("{}:peer", ours.ufrag), "not the password", true);
        assert_eq!(verify(&wrong_pwd, &ours), Err(IceError::Integrity));
        let wrong_user = check("someone:peer", &ours.pwd, true);
        assert_eq!(verify(&wrong_user, &ours), Err(IceError::Username));
        let mut bad_fp = check(&format!("{}:peer", ours.ufrag), &ours.pwd, true);
        let last = bad_fp.len() - 1;
        bad_fp[last] ^= 1;
        assert_eq!(verify(&bad_fp, &ours), Err(IceError::Malformed));
        assert_eq!(verify(&[0u8; 20], &ours), Err(IceError::Malformed));
        assert!(!is_stun(&[0x80; 40]));
    }

    /// A full agent's check, as the other agent sees it, and the
    /// responses back: success with our source, and Role Conflict.
    #[test]
    fn our_checks_verify_at_the_peer_and_responses_verify_here() {
        let (ours, theirs) = (Credentials::generate(), Credentials::generate());
        let src: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        let r = Request {
            ours: &ours,
            theirs: (&theirs.ufrag, &theirs.pwd),
            controlling: true,
            tie: 0x0102_0304_0506_0708,
            nominate: true,
            component: 1,
        };
        let tid = TransactionId::generate();
        let req = request(&r, tid);
        assert!(is_stun(&req) && !is_response(&req));
        let seen = verify(&req, &theirs).unwrap();
        assert_eq!(
            seen,
            Check {
                nominated: true,
                role: Some((true, 0x0102_0304_0506_0708)),
                priority: Some(peer_reflexive(1)),
            }
        );
        let ok = respond(&req, src, &theirs, false);
        assert!(is_response(&ok));
        assert_eq!(
            response(&ok, &theirs.pwd),
            Ok(Response {
                tid,
                outcome: Ok(())
            })
        );
        assert_eq!(response(&ok, &ours.pwd), Err(IceError::Integrity));
        let conflict = respond(&req, src, &theirs, true);
        assert_eq!(
            response(&conflict, &theirs.pwd).unwrap().outcome,
            Err(ErrorCode::ROLE_CONFLICT)
        );
        let controlled = request(
            &Request {
                controlling: false,
                nominate: false,
                ..r
            },
            tid,
        );
        let seen = verify(&controlled, &theirs).unwrap();
        assert_eq!(seen.role, Some((false, 0x0102_0304_0506_0708)));
        assert!(!seen.nominated);
        assert_eq!(response(&req, &theirs.pwd), Err(IceError::NotRequest));
    }
}
