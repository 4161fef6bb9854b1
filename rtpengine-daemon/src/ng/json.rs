//! JSON, the ng protocol's alternative encoding (a body starting with `{`).

use super::value::{DecodeError, Dict, Value, MAX_DEPTH};

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
