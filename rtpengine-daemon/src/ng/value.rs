//! The ng dictionary model shared by both wire encodings ([`super::bencode`],
//! [`super::json`]).

use std::collections::BTreeMap;

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

    /// The UTF-8 strings of a list value (a single string counts as a list
    /// of one; other items are skipped).
    pub fn strings(&self) -> Vec<String> {
        match self {
            Value::List(l) => l
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            other => other.as_str().map(str::to_owned).into_iter().collect(),
        }
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
