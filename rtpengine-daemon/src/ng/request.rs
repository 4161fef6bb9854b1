//! Turns a decoded dictionary into a typed [`Request`].
//!
//! Upstream accepts many spellings of each key (`call-id`, `call id`,
//! `call-ID`; `to-tag`, `to_tag`, …) and of each flag (`trust address`,
//! `trust-address`). All spellings are folded here, in one place, so command
//! handlers only ever see the canonical form: lower case, words joined by `-`.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::frame::NgError;
use super::value::{Dict, Value};
use crate::call::controls::Control;

/// The ng commands (`NG_COMMANDS` upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `ping`
    Ping,
    /// `offer`
    Offer,
    /// `answer`
    Answer,
    /// `delete`
    Delete,
    /// `query`
    Query,
    /// `list`
    List,
    /// `statistics`
    Statistics,
    /// `block media`, `unblock media`, `block DTMF`, `unblock DTMF`,
    /// `silence media`, `unsilence media`: what they switch, and on/off.
    Control(crate::call::controls::Control, bool),
    /// A command upstream knows that this daemon does not implement (recording,
    /// DTMF, media playback, pub/sub, …); answered with an error that says so.
    Unsupported(&'static str),
}

/// Every ng command upstream knows, in upstream's order (`NG_COMMANDS`,
/// current master): the order of the per-command counters in `/metrics`.
pub const COMMAND_NAMES: &[&str] = &[
    "ping",
    "offer",
    "answer",
    "delete",
    "query",
    "list",
    "start recording",
    "stop recording",
    "pause recording",
    "start forwarding",
    "stop forwarding",
    "block DTMF",
    "unblock DTMF",
    "block media",
    "unblock media",
    "play media",
    "stop media",
    "play DTMF",
    "statistics",
    "silence media",
    "unsilence media",
    "publish",
    "subscribe request",
    "subscribe answer",
    "unsubscribe",
    "inject start",
    "inject stop",
    "connect",
    "cli",
    "transform",
    "create",
    "create answer",
    "mesh",
];

impl Command {
    /// Parses a command name as upstream does (case-insensitive).
    pub fn parse(name: &[u8]) -> Option<Command> {
        let name = std::str::from_utf8(name).ok()?;
        let lower = name.to_ascii_lowercase();
        Some(match lower.as_str() {
            "ping" => Command::Ping,
            "offer" => Command::Offer,
            "answer" => Command::Answer,
            "delete" => Command::Delete,
            "query" => Command::Query,
            "list" => Command::List,
            "statistics" => Command::Statistics,
            "block media" => Command::Control(Control::BlockMedia, true),
            "unblock media" => Command::Control(Control::BlockMedia, false),
            "block dtmf" => Command::Control(Control::BlockDtmf, true),
            "unblock dtmf" => Command::Control(Control::BlockDtmf, false),
            "silence media" => Command::Control(Control::SilenceMedia, true),
            "unsilence media" => Command::Control(Control::SilenceMedia, false),
            _ => Command::Unsupported(
                COMMAND_NAMES
                    .iter()
                    .find(|c| c.eq_ignore_ascii_case(&lower))
                    .copied()?,
            ),
        })
    }

    /// The command's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Command::Ping => "ping",
            Command::Offer => "offer",
            Command::Answer => "answer",
            Command::Delete => "delete",
            Command::Query => "query",
            Command::List => "list",
            Command::Statistics => "statistics",
            Command::Control(c, on) => match (c, on) {
                (Control::BlockMedia, true) => "block media",
                (Control::BlockMedia, false) => "unblock media",
                (Control::BlockDtmf, true) => "block DTMF",
                (Control::BlockDtmf, false) => "unblock DTMF",
                (Control::SilenceMedia, true) => "silence media",
                (Control::SilenceMedia, false) => "unsilence media",
            },
            Command::Unsupported(n) => n,
        }
    }

    /// Whether a successful run changes a call (what persistence journals).
    pub fn changes_calls(self) -> bool {
        matches!(
            self,
            Command::Offer | Command::Answer | Command::Delete | Command::Control(..)
        )
    }

    /// The command's position in [`COMMAND_NAMES`] (parsing only yields
    /// names from that list; tested).
    pub fn index(self) -> usize {
        let name = self.name();
        COMMAND_NAMES
            .iter()
            .position(|n| *n == name)
            .unwrap_or_default()
    }
}

/// Folds a key or flag spelling to its canonical form: ASCII lower case, with
/// spaces and underscores turned into hyphens.
pub fn canonical(word: &[u8]) -> String {
    String::from_utf8_lossy(word)
        .chars()
        .map(|c| match c {
            ' ' | '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// A parameter that should be an integer is something else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an integer")]
pub struct NotAnInteger(pub String);

/// A request with canonical keys and flags.
#[derive(Debug, Clone)]
pub struct Request {
    /// What to do.
    pub command: Command,
    /// All keys, canonicalised; `flags` and `rtpp-flags` are folded into
    /// [`Request::flags`] and the keys they set.
    pub params: Dict,
    /// Flags from `flags` and `rtpp-flags`, canonicalised.
    pub flags: BTreeSet<String>,
    /// The same flags as given, in order: the prefixed families carry
    /// values (`codec-strip-PCMA`, `sdp-attr-add-audio-X-Foo:1`) whose
    /// case matters.
    pub raw_flags: Vec<String>,
    /// The control client that sent it (set by the transport; upstream
    /// shows it as the call's "proxy").
    pub peer: Option<SocketAddr>,
}

impl Request {
    /// Builds a request from a decoded dictionary.
    pub fn from_dict(dict: Dict) -> Result<Request, NgError> {
        let mut params = Dict::new();
        for (k, v) in dict {
            // After folding, the first spelling (in sorted order) wins.
            params.entry(canonical(&k).into_bytes()).or_insert(v);
        }
        let command = match params.get(&b"command"[..]) {
            None => return Err(NgError::NoCommand),
            Some(v) => v
                .as_bytes()
                .and_then(Command::parse)
                .ok_or(NgError::UnknownCommand)?,
        };
        let mut flags = Flags::default();
        match params.get(&b"flags"[..]) {
            Some(Value::List(list)) => {
                for f in list.iter().filter_map(Value::as_str) {
                    flags.add(f);
                }
            }
            // Upstream also takes one comma-separated string.
            Some(v) => {
                for f in v.as_str().unwrap_or_default().split(',') {
                    let f = f.trim();
                    if !f.is_empty() {
                        flags.add(f);
                    }
                }
            }
            None => {}
        }
        if let Some(rtpp) = params.get(&b"rtpp-flags"[..]).and_then(Value::as_str) {
            let rtpp = rtpp.to_owned();
            parse_rtpp_flags(&rtpp, &mut params, &mut flags);
        }
        Ok(Request {
            command,
            params,
            flags: flags.canonical,
            raw_flags: flags.raw,
            peer: None,
        })
    }

    /// A string parameter (integers are read as absent, like upstream reads
    /// them as empty strings).
    pub fn str(&self, key: &str) -> Option<&str> {
        self.params.get(key.as_bytes()).and_then(Value::as_str)
    }

    /// A non-empty string parameter.
    pub fn nonempty(&self, key: &str) -> Option<&str> {
        self.str(key).filter(|s| !s.is_empty())
    }

    /// A raw value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.params.get(key.as_bytes())
    }

    /// An integer parameter, accepted as bencode integer or decimal string.
    pub fn int(&self, key: &str) -> Result<Option<i64>, NotAnInteger> {
        let bad = || NotAnInteger(key.to_owned());
        match self.get(key) {
            None => Ok(None),
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(Value::Bytes(b)) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .map(Some)
                .ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }

    /// A list parameter as canonical words (a single string counts as a
    /// one-element list).
    pub fn words(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Value::List(l)) => l
                .iter()
                .filter_map(Value::as_bytes)
                .map(canonical)
                .collect(),
            Some(Value::Bytes(b)) => vec![canonical(b)],
            _ => Vec::new(),
        }
    }

    /// A list parameter's strings as given (a single string counts as a
    /// one-element list), for values that are names, not keywords.
    pub fn strings(&self, key: &str) -> Vec<String> {
        self.get(key).map(Value::strings).unwrap_or_default()
    }

    /// Whether a flag was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.contains(name)
    }

    /// The values of the flags of a prefixed family (`prefix` canonical,
    /// e.g. `codec-strip-`), as given.
    pub fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.raw_flags.iter().filter_map(move |f| {
            let head = f.get(..prefix.len())?;
            (canonical(head.as_bytes()) == prefix).then(|| &f[prefix.len()..])
        })
    }
}

/// Flags being collected: canonical for lookup, raw for values.
#[derive(Default)]
struct Flags {
    canonical: BTreeSet<String>,
    raw: Vec<String>,
}

impl Flags {
    fn add(&mut self, f: &str) {
        self.canonical.insert(canonical(f.as_bytes()));
        self.raw.push(f.to_owned());
    }
}

impl Request {
    /// Puts `templates` (rtpp-flags strings, later ones winning) under the
    /// request: its own keys win over all of them, their flags are added.
    pub fn apply_templates(&mut self, templates: &[&str]) {
        if templates.is_empty() {
            return;
        }
        let mut params = Dict::new();
        let mut flags = Flags::default();
        for t in templates {
            let mut p = Dict::new();
            parse_rtpp_flags(t, &mut p, &mut flags);
            params.extend(p);
        }
        params.extend(std::mem::take(&mut self.params));
        self.params = params;
        self.flags.extend(flags.canonical);
        self.raw_flags.extend(flags.raw);
    }
}

/// `codec-…=` keys of `rtpp-flags` that stand for a codec list entry,
/// folded into the flag family `codec-…-<value>` (upstream accepts both
/// `codec-strip=PCMA` and `codec-strip-PCMA`).
const RTPP_CODEC_KEYS: &[&str] = &[
    "codec-strip",
    "codec-offer",
    "codec-mask",
    "codec-set",
    "codec-accept",
    "codec-except",
    "codec-consume",
    "codec-ignore",
    "codec-transcode",
    "transcode",
];

/// Parses the `rtpp-flags` string (newer Kamailio sends the whole flag string for
/// the daemon to parse) as upstream's parser does: bare words are flags,
/// `key=value` sets a key and `key=[a b]` a list; `direction=` (or a bare
/// `internal`/`external`) given twice makes the interface pair; the
/// transport tokens (`RTP/AVPF`, or `RTP`, `AVP`, `AVPF`, `SRTP`, `DTLS`
/// combined) set `transport-protocol`; `to-tag=` also sets the `to-tag`
/// flag. Keys already present in the dictionary win.
fn parse_rtpp_flags(s: &str, params: &mut Dict, flags: &mut Flags) {
    // Keys the dictionary itself has: they win over the string's.
    let explicit: BTreeSet<Vec<u8>> = params.keys().cloned().collect();
    let mut transport = Transport::default();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (token, tail) = split_token(rest);
        rest = tail.trim_start();
        match token.split_once('=') {
            Some((k, v)) => {
                let key = canonical(k.as_bytes());
                if RTPP_CODEC_KEYS.contains(&key.as_str()) {
                    let family = match key.as_str() {
                        "transcode" => "codec-transcode",
                        k => k,
                    };
                    flags.add(&format!("{family}-{v}"));
                    continue;
                }
                if key == "to-tag" {
                    flags.add("to-tag");
                }
                let value = rtpp_value(v, 0);
                // `direction=a direction=b` is how Kamailio passes the pair:
                // repeats append (a key given as a dictionary key still wins).
                if key == "direction" {
                    push_direction(params, &explicit, value);
                    continue;
                }
                // Prefixed list options (`replace-origin`, `rtcp-mux-demux`) are
                // folded by the handlers; plain keys go into params.
                params.entry(key.into_bytes()).or_insert(value);
            }
            None if token == "internal" || token == "external" => {
                push_direction(params, &explicit, Value::str(token));
            }
            None if transport.token(token) => {}
            None => flags.add(token),
        }
    }
    if let Some(t) = transport.protocol() {
        params
            .entry(b"transport-protocol".to_vec())
            .or_insert(Value::str(t));
    }
}

/// Appends an interface name to `direction` (unless the dictionary set it).
fn push_direction(params: &mut Dict, explicit: &BTreeSet<Vec<u8>>, value: Value) {
    if explicit.contains(&b"direction"[..]) {
        return;
    }
    let entry = params
        .entry(b"direction".to_vec())
        .or_insert_with(|| Value::List(Vec::new()));
    if let Value::List(l) = entry {
        match value {
            Value::List(items) => l.extend(items),
            one => l.push(one),
        }
    }
}

/// The transport tokens of `rtpp-flags`, combined as upstream combines them:
/// a whole protocol sets the bits, `SRTP` (1), `AVPF` (2) and `DTLS` (4) add
/// one, `RTP` and `AVP` take away SRTP and AVPF.
#[derive(Default)]
struct Transport(Option<usize>);

impl Transport {
    /// Indexed by the bits; DTLS with SRTP names no protocol (upstream too).
    const BY_BITS: [Option<&'static str>; 8] = [
        Some("RTP/AVP"),
        Some("RTP/SAVP"),
        Some("RTP/AVPF"),
        Some("RTP/SAVPF"),
        Some("UDP/TLS/RTP/SAVP"),
        None,
        Some("UDP/TLS/RTP/SAVPF"),
        None,
    ];

    fn token(&mut self, t: &str) -> bool {
        let bits = self.0.unwrap_or(0);
        self.0 = Some(match t {
            "RTP" => bits & !1,
            "AVP" => bits & !2,
            "SRTP" => bits | 1,
            "AVPF" => bits | 2,
            "DTLS" => bits | 4,
            _ => match Self::BY_BITS.iter().position(|p| *p == Some(t)) {
                Some(b) => b,
                None => return false,
            },
        });
        true
    }

    fn protocol(&self) -> Option<&'static str> {
        Self::BY_BITS[self.0? & 7]
    }
}

/// Deepest `[...]` nesting read from `rtpp-flags` (upstream's values nest
/// three levels at most: `sdp-attr=[audio=[add=[x]]]`).
const MAX_RTPP_DEPTH: usize = 4;

/// A value of `rtpp-flags`: `[a b]` is a list, `[k=v k2=[x y]]` a
/// dictionary (nested as deep as [`MAX_RTPP_DEPTH`]), anything else a
/// string.
fn rtpp_value(v: &str, depth: usize) -> Value {
    let Some(inner) = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')) else {
        return Value::str(v);
    };
    if depth >= MAX_RTPP_DEPTH {
        return Value::str(v);
    }
    let mut tokens = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (t, tail) = split_token(rest);
        tokens.push(t);
        rest = tail.trim_start();
    }
    // A key is a token with `=` before any `[`.
    fn key_of(t: &str) -> Option<(&str, &str)> {
        let eq = t.find('=')?;
        (t.find('[').is_none_or(|b| eq < b)).then(|| (&t[..eq], &t[eq + 1..]))
    }
    if !tokens.is_empty() && tokens.iter().all(|t| key_of(t).is_some()) {
        let mut d = Dict::new();
        for (k, v) in tokens.iter().filter_map(|t| key_of(t)) {
            d.entry(k.as_bytes().to_vec())
                .or_insert_with(|| rtpp_value(v, depth + 1));
        }
        return Value::Dict(d);
    }
    Value::List(tokens.iter().map(|t| rtpp_value(t, depth + 1)).collect())
}

/// Splits off one whitespace-separated token, keeping `[...]` groups whole.
fn split_token(s: &str) -> (&str, &str) {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            c if c.is_whitespace() && depth == 0 => return (&s[..i], &s[i..]),
            _ => {}
        }
    }
    (s, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ng::bencode::decode_bencode;

    #[test]
    fn every_command_name_parses_and_indexes_to_itself() {
        for (i, name) in COMMAND_NAMES.iter().enumerate() {
            let c = Command::parse(name.as_bytes()).unwrap();
            assert_eq!(c.name(), *name);
            assert_eq!(c.index(), i, "{name}");
            let upper = name.to_ascii_uppercase();
            assert_eq!(Command::parse(upper.as_bytes()), Some(c));
        }
    }

    fn req(b: &[u8]) -> Result<Request, NgError> {
        Request::from_dict(decode_bencode(b).unwrap())
    }

    fn req_of(pairs: &[(&str, Value)]) -> Request {
        let d = pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
            .collect();
        Request::from_dict(d).unwrap()
    }

    #[test]
    fn key_aliases_fold() {
        let r = req_of(&[
            ("call id", "a".into()),
            ("command", "offer".into()),
            ("from tag", "b".into()),
            ("to_tag", "c".into()),
            (
                "flags",
                Value::List(vec!["trust address".into(), "SIP-source-address".into()]),
            ),
        ]);
        assert_eq!(r.command, Command::Offer);
        assert_eq!(r.str("call-id"), Some("a"));
        assert_eq!(r.str("from-tag"), Some("b"));
        assert_eq!(r.str("to-tag"), Some("c"));
        assert!(r.flag("trust-address"));
        assert!(r.flag("sip-source-address"));
        let r = req(b"d7:call-ID1:x7:command4:pinge").unwrap();
        assert_eq!(r.str("call-id"), Some("x"));
    }

    #[test]
    fn command_errors() {
        assert_eq!(req(b"d3:foo3:bare").unwrap_err(), NgError::NoCommand);
        assert_eq!(
            req(b"d7:command3:fooe").unwrap_err(),
            NgError::UnknownCommand
        );
        assert_eq!(req(b"d7:commandi1ee").unwrap_err(), NgError::UnknownCommand);
        assert_eq!(req(b"d7:command4:PINGe").unwrap().command, Command::Ping);
        assert_eq!(
            req(b"d7:command15:start recordinge").unwrap().command,
            Command::Unsupported("start recording")
        );
    }

    #[test]
    fn integers_accept_both_forms() {
        let r = req(b"d7:command4:list5:limit2:10e").unwrap();
        assert_eq!(r.int("limit"), Ok(Some(10)));
        let r = req(b"d7:command4:list5:limiti-1ee").unwrap();
        assert_eq!(r.int("limit"), Ok(Some(-1)));
        let r = req(b"d7:command4:list5:limit2:xxe").unwrap();
        assert_eq!(r.int("limit"), Err(NotAnInteger("limit".into())));
    }

    #[test]
    fn integer_where_string_expected_reads_as_absent() {
        let r = req(b"d7:command5:offer3:ICEi1ee").unwrap();
        assert_eq!(r.str("ice"), None);
    }

    #[test]
    fn rtpp_flags_string() {
        let r = req_of(&[
            ("command", "offer".into()),
            (
                "rtpp-flags",
                "replace-origin strict-source transport-protocol=RTP/AVP codec=[strip PCMA] trust-address"
                    .into(),
            ),
        ]);
        assert!(r.flag("replace-origin"));
        assert!(r.flag("strict-source"));
        assert!(r.flag("trust-address"));
        assert_eq!(r.str("transport-protocol"), Some("RTP/AVP"));
        assert_eq!(r.words("codec"), vec!["strip", "pcma"]);
    }

    #[test]
    fn repeated_direction_in_rtpp_flags_makes_the_pair() {
        let r = req_of(&[
            ("command", "offer".into()),
            (
                "rtpp-flags",
                "replace-origin direction=Int direction=ext".into(),
            ),
        ]);
        assert_eq!(r.strings("direction"), vec!["Int", "ext"]);
        // A `direction` key of the message itself wins.
        let r = req_of(&[
            ("command", "offer".into()),
            ("direction", Value::List(vec!["a".into(), "b".into()])),
            ("rtpp-flags", "direction=x direction=y".into()),
        ]);
        assert_eq!(r.strings("direction"), vec!["a", "b"]);
    }

    #[test]
    fn rtpp_flags_nested_values_and_comma_flags() {
        let r = req_of(&[
            ("command", "offer".into()),
            (
                "rtpp-flags",
                "codec=[strip=[PCMA PCMU] except=[G722]] sdp-attr=[audio=[add=[ptime:20 x]]] replace=[origin]".into(),
            ),
        ]);
        let Some(Value::Dict(codec)) = r.get("codec") else {
            panic!("{:?}", r.get("codec"))
        };
        assert_eq!(
            codec.get(&b"strip"[..]),
            Some(&Value::List(vec!["PCMA".into(), "PCMU".into()]))
        );
        assert_eq!(
            codec.get(&b"except"[..]),
            Some(&Value::List(vec!["G722".into()]))
        );
        let Some(Value::Dict(attr)) = r.get("sdp-attr") else {
            panic!()
        };
        let Some(Value::Dict(audio)) = attr.get(&b"audio"[..]) else {
            panic!()
        };
        assert_eq!(
            audio.get(&b"add"[..]),
            Some(&Value::List(vec!["ptime:20".into(), "x".into()]))
        );
        assert_eq!(r.words("replace"), ["origin"]);
        // Too deep stays text.
        assert_eq!(rtpp_value("[a=[b=[c=[d=[e]]]]]", 0).as_str(), None);
        let r = req_of(&[
            ("command", "offer".into()),
            ("flags", "trust address, SIP-source-address".into()),
        ]);
        assert!(r.flag("trust-address") && r.flag("sip-source-address"));
    }

    #[test]
    fn rtpp_flags_grammar() {
        let r = |s: &str| req_of(&[("command", "offer".into()), ("rtpp-flags", s.into())]);
        // Transport tokens combine as upstream's bits do.
        for (s, want) in [
            ("RTP/AVPF", Some("RTP/AVPF")),
            ("RTP/AVPF AVP", Some("RTP/AVP")),
            ("RTP AVPF", Some("RTP/AVPF")),
            ("SRTP AVPF", Some("RTP/SAVPF")),
            ("DTLS AVPF", Some("UDP/TLS/RTP/SAVPF")),
            ("DTLS SRTP", None),
            ("rtp/avp", None),
        ] {
            assert_eq!(r(s).str("transport-protocol"), want, "{s}");
        }
        // A dictionary key wins over the string.
        let q = req_of(&[
            ("command", "offer".into()),
            ("transport-protocol", "RTP/AVP".into()),
            ("rtpp-flags", "RTP/AVPF".into()),
        ]);
        assert_eq!(q.str("transport-protocol"), Some("RTP/AVP"));
        // Bare internal/external are the direction pair.
        assert_eq!(
            r("internal external").strings("direction"),
            ["internal", "external"]
        );
        // codec-x=Y is the flag codec-x-Y, case kept; to-tag= also sets the flag.
        let q = r("codec-strip=PCMA transcode=G722 to-tag=abc");
        assert_eq!(q.prefixed("codec-strip-").collect::<Vec<_>>(), ["PCMA"]);
        assert_eq!(q.prefixed("codec-transcode-").collect::<Vec<_>>(), ["G722"]);
        assert_eq!(q.str("to-tag"), Some("abc"));
        assert!(q.flag("to-tag"));
        // Prefixed families keep their value's case from `flags` too.
        let q = req_of(&[
            ("command", "offer".into()),
            (
                "flags",
                Value::List(vec!["SDP-attr-add-audio-X-Foo:1".into()]),
            ),
        ]);
        assert_eq!(
            q.prefixed("sdp-attr-add-").collect::<Vec<_>>(),
            ["audio-X-Foo:1"]
        );
    }
}
