//! The ng dictionary model and its two wire encodings, bencode and JSON.
//!
//! Ingress bencode goes through a small lenient decoder of our own: real clients
//! (Kamailio, OpenSIPS) send dictionaries with unsorted keys and sometimes
//! duplicate keys, and bendy 0.6 rejects both on every decode path. The decoder
//! keeps the first occurrence of a duplicate key, as upstream does, and enforces
//! explicit size and nesting limits. Egress bencode is written with bendy's
//! encoder; its sorted-key output is accepted by every known client.

use std::collections::BTreeMap;

use bendy::encoding::{Encoder, SingleItemEncoder};

/// Deepest nesting accepted in a request (real requests nest 3 levels at most:
/// `codec` → `transcode` → list).
pub const MAX_DEPTH: usize = 32;

/// One ng value: bencode has integers, byte strings, lists and dictionaries.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// A signed integer (`i42e`).
    Int(i64),
    /// A byte string; not necessarily UTF-8.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A dictionary. Keys are kept sorted, which is also the egress order.
    Dict(Dict),
}

/// A dictionary keyed by byte strings.
pub type Dict = BTreeMap<Vec<u8>, Value>;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Input ended inside a value.
    #[error("truncated input at byte {0}")]
    Truncated(usize),
    /// A byte that cannot start or continue a value.
    #[error("unexpected byte {byte:#04x} at {pos}")]
    Unexpected {
        /// The offending byte.
        byte: u8,
        /// Its offset.
        pos: usize,
    },
    /// An integer that is malformed or does not fit in 64 bits.
    #[error("invalid integer at byte {0}")]
    BadInt(usize),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A dictionary key that is not a byte string.
    #[error("dictionary key is not a string at byte {0}")]
    BadKey(usize),
    /// The top-level value is not a dictionary.
    #[error("top-level value is not a dictionary")]
    NotDict,
    /// JSON that serde_json rejects, or a JSON value with no ng equivalent.
    #[error("invalid JSON: {0}")]
    Json(String),
}

impl std::fmt::Debug for Value {
    /// Byte strings print as (lossy) text: replies are mostly text and a list
    /// of byte values helps nobody reading a log or a failed test.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bytes(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Dict(d) => f
                .debug_map()
                .entries(d.iter().map(|(k, v)| (String::from_utf8_lossy(k), v)))
                .finish(),
        }
    }
}

impl Value {
    /// The value as a string, if it is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The value as UTF-8 text, if it is a byte string holding UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Convenience constructor for a string value.
    pub fn str(s: impl AsRef<str>) -> Value {
        Value::Bytes(s.as_ref().as_bytes().to_vec())
    }

    /// Looks up `key` in a dictionary value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::str(s)
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Bytes(s.into_bytes())
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<u64> for Value {
    fn from(i: u64) -> Self {
        Value::Int(i64::try_from(i).unwrap_or(i64::MAX))
    }
}
impl From<Dict> for Value {
    fn from(d: Dict) -> Self {
        Value::Dict(d)
    }
}
impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Self {
        Value::List(l)
    }
}

/// Decodes one bencode dictionary from the start of `input`. Bytes after it are
/// ignored, as upstream does.
pub fn decode_bencode(input: &[u8]) -> Result<Dict, DecodeError> {
    let mut p = Parser { buf: input, pos: 0 };
    match p.value(0)? {
        Value::Dict(d) => Ok(d),
        _ => Err(DecodeError::NotDict),
    }
}

/// Length of the first complete bencode value in `input`, `Ok(None)` if the
/// input ends before it does. Used by stream transports to find message ends.
pub fn bencode_len(input: &[u8]) -> Result<Option<usize>, DecodeError> {
    let mut p = Parser { buf: input, pos: 0 };
    match p.value(0) {
        Ok(_) => Ok(Some(p.pos)),
        Err(DecodeError::Truncated(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Truncated(self.pos))
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let n = self.digits(b'e', true)?;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.string()?.to_vec())),
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.pos += 1;
                let mut dict = Dict::new();
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(DecodeError::BadKey(self.pos));
                    }
                    let key = self.string()?.to_vec();
                    let val = self.value(depth + 1)?;
                    // First occurrence wins, as upstream.
                    dict.entry(key).or_insert(val);
                }
                self.pos += 1;
                Ok(Value::Dict(dict))
            }
            byte => Err(DecodeError::Unexpected {
                byte,
                pos: self.pos,
            }),
        }
    }

    /// Parses a decimal number terminated by `end`.
    fn digits(&mut self, end: u8, signed: bool) -> Result<i64, DecodeError> {
        let start = self.pos;
        let neg = signed && self.peek()? == b'-';
        if neg {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let mut n: i64 = 0;
        loop {
            let b = self.peek()?;
            if b == end {
                break;
            }
            if !b.is_ascii_digit() {
                return Err(DecodeError::BadInt(start));
            }
            let d = i64::from(b - b'0');
            n = n
                .checked_mul(10)
                .and_then(|n| {
                    if neg {
                        n.checked_sub(d)
                    } else {
                        n.checked_add(d)
                    }
                })
                .ok_or(DecodeError::BadInt(start))?;
            self.pos += 1;
        }
        if self.pos == digits_start {
            return Err(DecodeError::BadInt(start));
        }
        self.pos += 1;
        Ok(n)
    }

    fn string(&mut self) -> Result<&[u8], DecodeError> {
        let start = self.pos;
        let len = self.digits(b':', false)?;
        let len = usize::try_from(len).map_err(|_| DecodeError::BadInt(start))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated(self.buf.len()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}

/// Encodes a dictionary as bencode (keys sorted).
pub fn encode_bencode(dict: &Dict) -> Vec<u8> {
    let mut enc = Encoder::new().with_max_depth(MAX_DEPTH + 2);
    let written = enc.emit_with(|e| emit_dict(e, dict));
    match written.and_then(|()| enc.get_output()) {
        Ok(out) => out,
        // Only reachable if a reply nests deeper than MAX_DEPTH, which no handler
        // builds; answer with a well-formed error rather than a truncated reply.
        Err(_) => b"d12:error-reason19:Error encoding reply6:result5:errore".to_vec(),
    }
}

fn emit_value(e: SingleItemEncoder, v: &Value) -> Result<(), bendy::encoding::Error> {
    match v {
        Value::Int(i) => e.emit_int(*i),
        Value::Bytes(b) => e.emit_bytes(b),
        Value::List(l) => e.emit_list(|le| {
            for item in l {
                le.emit_with(|e| emit_value(e, item))?;
            }
            Ok(())
        }),
        Value::Dict(d) => emit_dict(e, d),
    }
}

fn emit_dict(e: SingleItemEncoder, d: &Dict) -> Result<(), bendy::encoding::Error> {
    e.emit_dict(|mut de| {
        for (k, v) in d {
            de.emit_pair_with(k, |e| emit_value(e, v))?;
        }
        Ok(())
    })
}

/// Decodes a JSON object. JSON `true`/`false` become 1/0 and fractional numbers
/// are truncated, matching what node's bencode library sends for the same input;
/// `null` members are dropped.
pub fn decode_json(input: &[u8]) -> Result<Dict, DecodeError> {
    // serde_json recurses; bound the depth before handing it the input.
    json_depth_ok(input)?;
    let v: serde_json::Value = serde_json::Deserializer::from_slice(input)
        .into_iter::<serde_json::Value>()
        .next()
        .ok_or_else(|| DecodeError::Json("empty".into()))?
        .map_err(|e| DecodeError::Json(e.to_string()))?;
    match from_json(v)? {
        Some(Value::Dict(d)) => Ok(d),
        _ => Err(DecodeError::NotDict),
    }
}

fn json_depth_ok(input: &[u8]) -> Result<(), DecodeError> {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    for &b in input {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH + 1 {
                    return Err(DecodeError::TooDeep);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn from_json(v: serde_json::Value) -> Result<Option<Value>, DecodeError> {
    use serde_json::Value as J;
    Ok(Some(match v {
        J::Null => return Ok(None),
        J::Bool(b) => Value::Int(i64::from(b)),
        J::Number(n) => Value::Int(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i,
            // Saturating float-to-int cast: truncation is the documented intent.
            (None, Some(f)) => f as i64,
            _ => return Err(DecodeError::Json(format!("number out of range: {n}"))),
        }),
        J::String(s) => Value::Bytes(s.into_bytes()),
        J::Array(a) => Value::List(
            a.into_iter()
                .filter_map(|v| from_json(v).transpose())
                .collect::<Result<_, _>>()?,
        ),
        J::Object(o) => {
            let mut d = Dict::new();
            for (k, v) in o {
                if let Some(v) = from_json(v)? {
                    d.entry(k.into_bytes()).or_insert(v);
                }
            }
            Value::Dict(d)
        }
    }))
}

/// Encodes a dictionary as JSON. Byte strings that are not UTF-8 are converted
/// lossily (JSON cannot carry them).
pub fn encode_json(dict: &Dict) -> Vec<u8> {
    fn to_json(v: &Value) -> serde_json::Value {
        match v {
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Bytes(b) => serde_json::Value::from(String::from_utf8_lossy(b).into_owned()),
            Value::List(l) => serde_json::Value::Array(l.iter().map(to_json).collect()),
            Value::Dict(d) => dict_to_json(d),
        }
    }
    fn dict_to_json(d: &Dict) -> serde_json::Value {
        serde_json::Value::Object(
            d.iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), to_json(v)))
                .collect(),
        )
    }
    dict_to_json(dict).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &Value) -> &str {
        v.as_str().unwrap()
    }

    #[test]
    fn kamailio_unsorted_keys_decode() {
        // Insertion order as Kamailio's rtpengine module sends an offer.
        let msg = b"d8:supportsl10:load limite3:sdp3:v=03:ICE6:remove7:replacel6:origine13:received-froml3:IP49:127.0.0.1e7:call-id3:abc8:from-tag2:ft7:command5:offer16:sip-message-type11:sip request3:TOSi184e5:flagsl13:trust-addressee";
        let d = decode_bencode(msg).unwrap();
        assert_eq!(d.len(), 11);
        assert_eq!(s(&d[&b"command"[..]]), "offer");
        assert_eq!(d[&b"TOS"[..]], Value::Int(184));
        assert_eq!(
            d[&b"received-from"[..]],
            Value::List(vec!["IP4".into(), "127.0.0.1".into()])
        );
    }

    #[test]
    fn duplicate_keys_first_wins() {
        let d = decode_bencode(b"d7:command4:ping7:command5:offere").unwrap();
        assert_eq!(s(&d[&b"command"[..]]), "ping");
    }

    #[test]
    fn trailing_bytes_ignored() {
        let d = decode_bencode(b"d7:command4:pingegarbage").unwrap();
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn malformed_inputs_are_errors() {
        for bad in [
            &b"d7:command4:ping"[..],
            b"d7:command4:pin",
            b"d7:command99999999999999999999999:x",
            b"di1ei2ee",
            b"d3:fooi99999999999999999999ee",
            b"d3:fooi-e",
            b"d3:fooie",
            b"d3:fooi1x2ee",
            b"d3:foox",
            b"l4:pinge",
            b"",
            b"d3:foo-1:xe",
        ] {
            assert!(
                decode_bencode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn extreme_integers() {
        let d = decode_bencode(b"d1:ai-9223372036854775808e1:bi9223372036854775807ee").unwrap();
        assert_eq!(d[&b"a"[..]], Value::Int(i64::MIN));
        assert_eq!(d[&b"b"[..]], Value::Int(i64::MAX));
        assert!(decode_bencode(b"d1:ai9223372036854775808ee").is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = b"d1:a".to_vec();
        deep.extend(std::iter::repeat_n(b'l', 10_000));
        deep.extend(std::iter::repeat_n(b'e', 10_001));
        assert_eq!(decode_bencode(&deep), Err(DecodeError::TooDeep));
        let mut ok = b"d1:a".to_vec();
        ok.extend(std::iter::repeat_n(b'l', MAX_DEPTH - 1));
        ok.extend(std::iter::repeat_n(b'e', MAX_DEPTH));
        assert!(decode_bencode(&ok).is_ok());
    }

    #[test]
    fn non_utf8_strings_survive() {
        let d = decode_bencode(b"d3:sdp2:\xff\xfee").unwrap();
        assert_eq!(d[&b"sdp"[..]].as_bytes(), Some(&b"\xff\xfe"[..]));
        assert_eq!(d[&b"sdp"[..]].as_str(), None);
    }

    #[test]
    fn bencode_roundtrip_sorted() {
        let mut d = Dict::new();
        d.insert(b"result".to_vec(), "ok".into());
        d.insert(b"calls".to_vec(), Value::List(vec!["a".into()]));
        d.insert(b"n".to_vec(), Value::Int(-3));
        let out = encode_bencode(&d);
        assert_eq!(out, b"d5:callsl1:ae1:ni-3e6:result2:oke");
        assert_eq!(decode_bencode(&out).unwrap(), d);
    }

    #[test]
    fn bencode_len_finds_message_end() {
        assert_eq!(bencode_len(b"d1:ai1eed"), Ok(Some(8)));
        assert_eq!(bencode_len(b"d1:ai1e"), Ok(None));
        assert!(bencode_len(b"x").is_err());
    }

    #[test]
    fn json_decode_and_types() {
        let d = decode_json(br#"{"command":"ping","a":true,"b":2.9,"c":null,"l":[1,"x",null]}"#)
            .unwrap();
        assert_eq!(s(&d[&b"command"[..]]), "ping");
        assert_eq!(d[&b"a"[..]], Value::Int(1));
        assert_eq!(d[&b"b"[..]], Value::Int(2));
        assert!(!d.contains_key(&b"c"[..]));
        assert_eq!(d[&b"l"[..]], Value::List(vec![Value::Int(1), "x".into()]));
        assert!(decode_json(b"[1]").is_err());
        assert!(decode_json(b"{\"a\":").is_err());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(decode_json(deep.as_bytes()), Err(DecodeError::TooDeep));
    }

    #[test]
    fn json_encode() {
        let mut d = Dict::new();
        d.insert(b"result".to_vec(), "pong".into());
        assert_eq!(encode_json(&d), br#"{"result":"pong"}"#);
    }
}
