//! Message framing: `<cookie> <dictionary>`, and the error strings upstream
//! answers with when a body cannot be understood.

use super::bencode::{decode_bencode, encode_bencode};
use super::json::{decode_json, encode_json};
use super::value::{Dict, Value};

/// Largest message accepted on any transport. A UDP datagram cannot be larger;
/// stream transports close the connection beyond it.
pub const MAX_MESSAGE: usize = 65_535;

/// Wire encoding of a request body; the reply uses the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `d…e`
    Bencode,
    /// `{…}`
    Json,
}

/// An ng failure that is answered with `result: error` and this exact
/// `error-reason` text (strings are upstream's, byte for byte).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NgError {
    /// Nothing after the cookie.
    #[error("Invalid data (no payload)")]
    NoPayload,
    /// Bencode that does not decode to a dictionary.
    #[error("Could not decode bencode dictionary")]
    BadBencode,
    /// JSON that does not decode to an object.
    #[error("Could not decode JSON dictionary")]
    BadJson,
    /// Body starts with neither `d` nor `{`.
    #[error("Invalid NG data format")]
    BadFormat,
    /// No `command` key.
    #[error("Dictionary contains no key \"command\"")]
    NoCommand,
    /// A `command` we do not know.
    #[error("Unrecognized command")]
    UnknownCommand,
    /// Any other failure with upstream's text.
    #[error("{0}")]
    Other(&'static str),
}

/// Splits a datagram into cookie and body at the first space. `None` means
/// there is no cookie, which upstream answers with silence.
pub fn split_cookie(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    let sp = msg.iter().position(|&b| b == b' ')?;
    if sp == 0 {
        return None;
    }
    Some((&msg[..sp], &msg[sp + 1..]))
}

/// Decodes a body, choosing the encoding by its first byte.
pub fn decode_body(body: &[u8]) -> (Encoding, Result<Dict, NgError>) {
    match body.first() {
        None => (Encoding::Bencode, Err(NgError::NoPayload)),
        Some(b'd') => (
            Encoding::Bencode,
            decode_bencode(body).map_err(|_| NgError::BadBencode),
        ),
        Some(b'{') => (
            Encoding::Json,
            decode_json(body).map_err(|_| NgError::BadJson),
        ),
        Some(_) => (Encoding::Bencode, Err(NgError::BadFormat)),
    }
}

/// The reply dictionary for an error.
pub fn error_reply(err: &NgError) -> Dict {
    let mut d = Dict::new();
    d.insert(b"result".to_vec(), Value::str("error"));
    d.insert(b"error-reason".to_vec(), Value::str(err.to_string()));
    d
}

/// Encodes a reply body.
pub fn encode(enc: Encoding, dict: &Dict) -> Vec<u8> {
    match enc {
        Encoding::Bencode => encode_bencode(dict),
        Encoding::Json => encode_json(dict),
    }
}

/// Prefixes an encoded body with the cookie and one space.
pub fn with_cookie(cookie: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cookie.len() + 1 + body.len());
    out.extend_from_slice(cookie);
    out.push(b' ');
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_split() {
        assert_eq!(
            split_cookie(b"5323_1 d7:command4:pinge"),
            Some((&b"5323_1"[..], &b"d7:command4:pinge"[..]))
        );
        assert_eq!(split_cookie(b"abc "), Some((&b"abc"[..], &b""[..])));
        assert_eq!(split_cookie(b"nocookie"), None);
        assert_eq!(split_cookie(b" d7:command4:pinge"), None);
    }

    #[test]
    fn body_errors() {
        assert_eq!(decode_body(b"").1, Err(NgError::NoPayload));
        assert_eq!(decode_body(b"d3:foo").1, Err(NgError::BadBencode));
        assert_eq!(decode_body(b"{\"a\"").1, Err(NgError::BadJson));
        assert_eq!(decode_body(b"{").0, Encoding::Json);
        assert_eq!(decode_body(b"l4:pinge").1, Err(NgError::BadFormat));
        assert_eq!(decode_body(b"hello").1, Err(NgError::BadFormat));
    }

    #[test]
    fn error_strings_are_upstreams() {
        let d = error_reply(&NgError::NoCommand);
        assert_eq!(
            encode(Encoding::Bencode, &d),
            b"d12:error-reason36:Dictionary contains no key \"command\"6:result5:errore"
        );
        assert_eq!(
            with_cookie(
                b"c1",
                &encode(Encoding::Json, &error_reply(&NgError::UnknownCommand))
            ),
            br#"c1 {"error-reason":"Unrecognized command","result":"error"}"#
        );
    }
}
