//! Bencode, the ng protocol's native encoding.
//!
//! Ingress goes through a small lenient decoder of our own: real clients
//! (Kamailio, OpenSIPS) send dictionaries with unsorted keys and sometimes
//! duplicate keys, and bendy 0.6 rejects both on every decode path. The decoder
//! keeps the first occurrence of a duplicate key, as upstream does, and enforces
//! explicit size and nesting limits. Egress is written with bendy's encoder;
//! its sorted-key output is accepted by every known client.

use bendy::encoding::{Encoder, SingleItemEncoder};

use super::value::{DecodeError, Dict, Value, MAX_DEPTH};

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
}
