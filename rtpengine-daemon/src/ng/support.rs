//! What of the ng protocol this daemon honours, per command, so that a
//! request is never silently half-served: every key, flag and list value of
//! an `offer`, `answer`, `delete` or `query` that is not in these tables is
//! reported in the reply's `warning` (and logged once per call).
//!
//! Names are compared in canonical form (lower case, words joined by `-`;
//! see [`super::request`]). The tables follow the inventory of upstream's
//! protocol document in `docs/ng-options.tsv`, which a test walks row by
//! row: what it marks implemented is accepted here, what it marks missing
//! is reported.

use std::fmt;

use super::request::{Command, Request};
use super::value::Value;

/// One thing a request asked for that this daemon does not do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unsupported {
    /// A dictionary key.
    Key(String),
    /// A flag.
    Flag(String),
    /// A value of a key (`replace=…`, `ICE=…`, …).
    Value(String, String),
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::Key(k) => write!(f, "key '{k}'"),
            Unsupported::Flag(x) => write!(f, "flag '{x}'"),
            Unsupported::Value(k, v) => write!(f, "{k} '{v}'"),
        }
    }
}

/// Keys every one of the four commands takes.
const COMMON_KEYS: &[&str] = &[
    "command",
    "call-id",
    "from-tag",
    "to-tag",
    "flags",
    "rtpp-flags",
    "template",
    "supports",
];

/// Keys of `offer` and `answer` (some only with the values in
/// [`VALUES`]). `sip-message-type`, `sip-code` and `sip-response-code` are
/// context a proxy sends along; nothing depends on them here.
const OFFER_ANSWER_KEYS: &[&str] = &[
    "sdp",
    "via-branch",
    "from-interface",
    "to-interface",
    "interface",
    "direction",
    "label",
    "from-label",
    "media-address",
    "rtcp-mux",
    "replace",
    "address-family",
    "received-from",
    "ice",
    "ice-lite",
    "tos",
    "endpoint-learning",
    "sip-message-type",
    "sip-code",
    "sip-response-code",
    "transport-protocol",
    "drop-traffic",
    "record-call",
    "alias-key",
    "audio-player",
    "player",
    "generate-rtcp",
    "dtmf-security",
    "dtls",
    "dtls-fingerprint",
    "osrtp",
    "bundle",
    "sdes",
    "codec",
    "codecs",
    "sdp-attr",
    "sdp-media-remove",
    "extmap",
    "ptime",
    "ptime-reverse",
    "reverse-ptime",
    "media-echo",
];

/// Keys of `delete` beyond the common ones.
const DELETE_KEYS: &[&str] = &["delete-delay", "via-branch"];

/// Flags of `offer` and `answer`. Several are no-ops because the behaviour
/// they ask for is this daemon's only one (`trust address`, `no port
/// latching`, `symmetric`, no recording, no jitter buffer, no Redis).
const OFFER_ANSWER_FLAGS: &[&str] = &[
    "asymmetric",
    "symmetric",
    "strict-source",
    "media-handover",
    "sip-source-address",
    "trust-address",
    "no-port-latching",
    "port-latching",
    "full-rtcp-attribute",
    "no-rtcp-attribute",
    "original-sendrecv",
    "provisional",
    "reject-ice",
    "ice-reject",
    "trickle-ice",
    "fragment",
    "generate-mid",
    "webrtc",
    "no-tls-id",
    "reset",
    "exclude-recording",
    "skip-recording-db",
    "skip-recording-database",
    "no-jitter-buffer",
    "no-redis-update",
    "asymmetric-codecs",
    "symmetric-codecs",
    "reorder-codecs",
    "allow-no-codec-media",
    "allow-no-codec-medias",
    "allow-empty-codec-media",
    "allow-empty-codec-medias",
    "single-codec",
    "static-codecs",
    "static-codec",
    "strip-extmap",
    "loop-protect",
    "nat-wait",
    "block-dtmf",
    "reuse-codecs",
    "no-codec-renegotiation",
    "pad-crypto",
    "recrypt",
];

/// Flag families whose members carry a value (`codec-strip-PCMA`,
/// `sdp-attr-add-audio-ptime:20`), honoured whatever the value.
const FLAG_PREFIXES: &[&str] = &[
    "codec-strip-",
    "codec-offer-",
    "codec-except-",
    "codec-mask-",
    "codec-consume-",
    "codec-accept-",
    "codec-set-",
    "sdp-attr-add-",
    "sdp-attr-remove-",
    "sdp-attr-substitute-",
];

/// Keys of the media control commands (`block media`, `silence media`, …)
/// beyond the common ones. DTMF blocking modes other than dropping
/// (`DTMF-security`), triggers and delay buffers are reported.
const CONTROL_KEYS: &[&str] = &["label", "to-label", "address", "all", "set-label"];

/// Flags of the media control commands.
const CONTROL_FLAGS: &[&str] = &["directional", "all"];

/// Flags of `delete`.
const DELETE_FLAGS: &[&str] = &["fatal", "fast", "to-tag", "discard-recording"];

/// Keys whose values are checked, with the values honoured.
const VALUES: &[(&str, &[&str])] = &[
    (
        "replace",
        &[
            "origin",
            "origin-full",
            "session-name",
            "username",
            "sdp-version",
            "force-increment-sdp-ver",
            "zero-address",
            "session-connection",
        ],
    ),
    (
        "rtcp-mux",
        &["offer", "require", "demux", "accept", "reject"],
    ),
    // See `call::offer_answer::webrtc`: a full agent, or a lite one with
    // the `lite` forms (as `ICE-lite`).
    (
        "ice",
        &[
            "remove",
            "default",
            "force",
            "optional",
            "force-relay",
            "lite",
            "no-lite",
            "lite-no",
            "lite-off",
            "lite-none",
            "lite-fw",
            "lite-fwd",
            "lite-forward",
            "lite-offer",
            "lite-backward",
            "lite-backwards",
            "lite-reverse",
            "lite-answer",
            "lite-back",
            "lite-bkw",
            "lite-bk",
            "lite-both",
            "trickle",
            "ice2",
        ],
    ),
    (
        "ice-lite",
        &[
            "off",
            "none",
            "no",
            "forward",
            "offer",
            "fwd",
            "fw",
            "backward",
            "backwards",
            "reverse",
            "answer",
            "back",
            "bkw",
            "bk",
            "both",
        ],
    ),
    (
        "endpoint-learning",
        &["off", "immediate", "delayed", "heuristic"],
    ),
    ("address-family", &["ip4", "ip6"]),
    // Plain RTP, SDES-keyed and DTLS-keyed SRTP.
    (
        "transport-protocol",
        &[
            "accept",
            "rtp/avp",
            "rtp/avpf",
            "rtp/savp",
            "rtp/savpf",
            "udp/tls/rtp/savp",
            "udp/tls/rtp/savpf",
        ],
    ),
    (
        "dtls-fingerprint",
        &["sha-1", "sha-224", "sha-256", "sha-384", "sha-512"],
    ),
    // Dictionaries: their keys are checked. Without transcoding, `mask`
    // and `consume` strip; `accept` and `set` only ever act on a
    // transcoded codec, so they change nothing here (as upstream when it
    // does not transcode).
    (
        "codec",
        &[
            "strip", "offer", "except", "mask", "consume", "accept", "set",
        ],
    ),
    (
        "codecs",
        &[
            "strip", "offer", "except", "mask", "consume", "accept", "set",
        ],
    ),
    ("extmap", &["strip", "mask"]),
    ("record-call", &["no", "off"]),
    ("drop-traffic", &["start", "stop"]),
    (
        "alias-key",
        &["none", "no", "off", "sdp", "address", "endpoint"],
    ),
    (
        "audio-player",
        &["default", "off", "no", "disable", "disabled"],
    ),
    ("player", &["default", "off", "no", "disable", "disabled"]),
    ("generate-rtcp", &["off"]),
    ("dtmf-security", &["off"]),
    (
        "dtls",
        &["off", "no", "disable", "disabled", "passive", "active"],
    ),
    // RFC 8643 OSRTP and the legacy twinned sections.
    (
        "osrtp",
        &[
            "offer",
            "offer-rfc",
            "accept-rfc",
            "accept",
            "offer-legacy",
            "accept-legacy",
        ],
    ),
    // RFC 9143: bundled offers served bundled, bundles broken up.
    (
        "bundle",
        &["accept", "reject", "offer", "require", "strict"],
    ),
    // Also `no-<suite>` and `only-<suite>` (see `honoured`).
    (
        "sdes",
        &[
            "off",
            "no",
            "disable",
            "disabled",
            "nonew",
            "prefer",
            "priority",
            "pad",
            "lifetime",
            "static",
            "unencrypted-srtp",
            "unencrypted-srtcp",
            "unauthenticated-srtp",
            "encrypted-srtp",
            "encrypted-srtcp",
            "authenticated-srtp",
        ],
    ),
    ("supports", &["load-limit"]),
    (
        "media-echo",
        &[
            "blackhole",
            "sinkhole",
            "forward",
            "fwd",
            "fw",
            "backward",
            "backwards",
            "reverse",
            "back",
            "bkw",
            "bk",
            "both",
        ],
    ),
    (
        "all",
        &[
            "all",
            "none",
            "offer-answer",
            "except-offer-answer",
            "flows",
        ],
    ),
];

/// Flag families `PREFIX-VALUE` that stand for a key's value.
const FLAG_FAMILIES: &[(&str, &str)] = &[
    ("replace-", "replace"),
    ("rtcp-mux-", "rtcp-mux"),
    ("sdes-", "sdes"),
    ("osrtp-", "osrtp"),
    ("bundle-", "bundle"),
];

fn canonical(s: &str) -> String {
    s.to_ascii_lowercase().replace([' ', '_'], "-")
}

/// The honoured values of `key`, if its values are checked.
fn values_of(key: &str) -> Option<&'static [&'static str]> {
    VALUES.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Whether `value` of `key` is honoured: listed, or an SDES suite switch
/// naming a suite this daemon has.
fn honoured(key: &str, value: &str) -> bool {
    if values_of(key).is_some_and(|a| a.contains(&value)) {
        return true;
    }
    if key != "sdes" {
        return false;
    }
    if let Some(l) = value
        .strip_prefix("order:")
        .or_else(|| value.strip_prefix("offerer-pref:"))
    {
        // Every suite named must be known.
        let suites: Vec<_> = crate::crypto::Suite::list(l).collect();
        return !suites.is_empty() && suites.iter().all(Option::is_some);
    }
    value
        .strip_prefix("no-")
        .or_else(|| value.strip_prefix("only-"))
        .and_then(crate::crypto::Suite::from_flag)
        .is_some()
}

/// What `req` asks for that this daemon does not do (for `offer`,
/// `answer`, `delete`, `query` and the media control commands), sorted,
/// each once.
pub fn unsupported(req: &Request) -> Vec<Unsupported> {
    let (keys, flags): (&[&[&str]], &[&str]) = match req.command {
        Command::Offer | Command::Answer => (&[COMMON_KEYS, OFFER_ANSWER_KEYS], OFFER_ANSWER_FLAGS),
        Command::Delete => (&[COMMON_KEYS, DELETE_KEYS], DELETE_FLAGS),
        Command::Query => (&[COMMON_KEYS], &[]),
        Command::Control(..) => (&[COMMON_KEYS, CONTROL_KEYS], CONTROL_FLAGS),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for (k, v) in &req.params {
        let key = String::from_utf8_lossy(k).into_owned();
        if !keys.iter().any(|set| set.contains(&key.as_str())) {
            out.push(Unsupported::Key(key));
            continue;
        }
        if values_of(&key).is_none() {
            continue;
        }
        let given: Vec<String> = match v {
            Value::List(l) => l.iter().filter_map(Value::as_str).map(canonical).collect(),
            Value::Dict(d) => d
                .keys()
                .map(|k| canonical(&String::from_utf8_lossy(k)))
                .collect(),
            other => other.as_str().map(canonical).into_iter().collect(),
        };
        for g in given {
            if !honoured(&key, &g) {
                out.push(Unsupported::Value(key.clone(), g));
            }
        }
    }
    for f in &req.flags {
        if flags.contains(&f.as_str())
            || (flags == OFFER_ANSWER_FLAGS && FLAG_PREFIXES.iter().any(|p| f.starts_with(p)))
        {
            continue;
        }
        let family = FLAG_FAMILIES
            .iter()
            .find_map(|(prefix, key)| f.strip_prefix(prefix).map(|v| (*key, v)));
        match family {
            Some((key, v)) if flags == OFFER_ANSWER_FLAGS => {
                if !honoured(key, v) {
                    out.push(Unsupported::Value(key.to_owned(), v.to_owned()));
                }
            }
            _ => out.push(Unsupported::Flag(f.clone())),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The `warning` text for `items` (bounded: a request can name many).
pub fn warning(items: &[Unsupported]) -> String {
    const SHOWN: usize = 20;
    let mut s = String::from("Unsupported, ignored: ");
    let names: Vec<String> = items.iter().take(SHOWN).map(ToString::to_string).collect();
    s.push_str(&names.join(", "));
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ng::value::Dict;

    fn request(command: &str, key: Option<(&str, Value)>, flag: Option<&str>) -> Request {
        let mut d = Dict::new();
        d.insert(b"command".to_vec(), Value::str(command));
        if let Some((k, v)) = key {
            d.insert(k.as_bytes().to_vec(), v);
        }
        if let Some(f) = flag {
            d.insert(b"flags".to_vec(), Value::List(vec![Value::str(f)]));
        }
        Request::from_dict(d).unwrap()
    }

    /// The inventory of upstream's document, row by row: implemented →
    /// never reported; missing → reported (as the key, flag or value).
    /// Partial rows depend on the value or the SDP and are covered by the
    /// value rows and the integration tests.
    #[test]
    fn every_documented_option_is_honoured_or_reported() {
        let tsv = include_str!("../../../docs/ng-options.tsv");
        let mut checked = 0;
        for line in tsv.lines().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            let [kind, name, canon, commands, state, ..] = cols[..] else {
                panic!("bad row {line:?}")
            };
            // `command` selects the command itself.
            if state == "partial" || canon == "command" {
                continue;
            }
            // A family `prefix-*` is tried with one member: an honoured one
            // for the families of checked keys, any other otherwise.
            let member = FLAG_FAMILIES
                .iter()
                .find(|(p, _)| canon.starts_with(p))
                .and_then(|(_, k)| values_of(k))
                .and_then(|v| v.first())
                .unwrap_or(&"x");
            let canon = canon.replace('*', member);
            let commands: Vec<&str> = match commands {
                "-" => vec!["offer"],
                c => c.split(',').collect(),
            };
            for cmd in commands {
                let req = match kind {
                    "key" => request(cmd, Some((&canon, Value::str("1"))), None),
                    "flag" => request(cmd, None, Some(&canon)),
                    // An `rtpp-flags` token, as given (tokens are case-sensitive).
                    "token" => request(cmd, Some(("rtpp-flags", Value::str(name))), None),
                    "value" => {
                        let (k, v) = canon.split_once('=').unwrap();
                        request(cmd, Some((k, Value::List(vec![Value::str(v)]))), None)
                    }
                    other => panic!("kind {other}"),
                };
                let got = unsupported(&req);
                let named = got.iter().any(|u| match (kind, u) {
                    ("key", Unsupported::Key(k)) => *k == canon,
                    ("flag", Unsupported::Flag(f)) => *f == canon,
                    ("flag", Unsupported::Value(k, v)) => canon == format!("{k}-{v}"),
                    ("value", Unsupported::Value(k, v)) => canon == format!("{k}={v}"),
                    // A value of a key that is missing altogether.
                    ("value", Unsupported::Key(k)) => canon.starts_with(&format!("{k}=")),
                    // A token stands for something else (a transport protocol).
                    ("token", _) => true,
                    _ => false,
                });
                match state {
                    "implemented" => assert!(!named, "{name} ({cmd}): reported as {got:?}"),
                    "missing" => assert!(named, "{name} ({cmd}): not reported ({got:?})"),
                    other => panic!("state {other}"),
                }
                checked += 1;
            }
        }
        assert!(checked > 400, "only {checked} checks");
    }

    #[test]
    fn the_issues_examples_are_reported() {
        let mut d = Dict::new();
        d.insert(b"command".to_vec(), Value::str("offer"));
        let mut codec = Dict::new();
        codec.insert(b"strip".to_vec(), Value::List(vec![Value::str("PCMA")]));
        codec.insert(b"transcode".to_vec(), Value::List(vec![Value::str("G722")]));
        d.insert(b"codec".to_vec(), Value::Dict(codec));
        d.insert(b"transport-protocol".to_vec(), Value::str("UDPTL"));
        d.insert(
            b"flags".to_vec(),
            Value::List(vec![Value::str("detect DTMF"), Value::str("trust address")]),
        );
        let got = unsupported(&Request::from_dict(d).unwrap());
        assert_eq!(
            warning(&got),
            "Unsupported, ignored: flag 'detect-dtmf', codec 'transcode', transport-protocol 'udptl'"
        );
    }

    #[test]
    fn ping_and_friends_are_not_checked() {
        assert!(
            unsupported(&request("ping", Some(("whatever", Value::str("1"))), None)).is_empty()
        );
    }
}
