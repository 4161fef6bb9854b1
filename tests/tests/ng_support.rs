//! Never silent: what a request asks for and this daemon does not do is
//! named in the reply's `warning` (the call still goes ahead, as upstream
//! would serve it), and a request that asks only for what is implemented
//! gets no warning. The whole documented list is walked in the daemon's
//! unit tests (`ng::support`, against `docs/ng-options.tsv`).

use rtpengine_tests::*;

fn warning(d: &Dict) -> Option<&str> {
    d.get(&b"warning"[..]).and_then(Value::as_str)
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn unsupported_keys_and_flags_are_named_in_the_reply() {
    let rig = Rig::new("nsup", &[]);
    // The examples (a codec manipulation and a transport change),
    // with what is still not done: transcoding and T.38.
    let mut codec = Dict::new();
    codec.insert(b"strip".to_vec(), Value::List(vec![Value::str("PCMA")]));
    codec.insert(b"transcode".to_vec(), Value::List(vec![Value::str("G722")]));
    let r = rig.cmd(sdp_cmd(
        "offer",
        "w1",
        "ft",
        None,
        &crlf(OFFER),
        vec![
            ("codec", Value::Dict(codec)),
            ("transport-protocol", Value::str("UDPTL")),
            (
                "flags",
                Value::List(vec![Value::str("detect DTMF"), Value::str("trust address")]),
            ),
        ],
    ));
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    assert_eq!(
        warning(&r),
        Some(
            "Unsupported, ignored: flag 'detect-dtmf', codec 'transcode', transport-protocol 'udptl'"
        ),
        "{r:?}"
    );
    // The same through rtpp-flags.
    let r = rig.cmd(sdp_cmd(
        "offer",
        "w2",
        "ft",
        None,
        &crlf(OFFER),
        vec![(
            "rtpp-flags",
            Value::str("replace-origin ICE=ice2 OSRTP-offer-legacy T.38-decode debug"),
        )],
    ));
    assert_eq!(
        warning(&r),
        Some("Unsupported, ignored: flag 'debug', flag 't.38-decode'"),
        "{r:?}"
    );
    // Only implemented options: no warning.
    let r = rig.cmd(sdp_cmd(
        "offer",
        "w3",
        "ft",
        None,
        &crlf(OFFER),
        vec![
            (
                "replace",
                Value::List(vec![Value::str("origin"), Value::str("session-name")]),
            ),
            ("ICE", Value::str("remove")),
            ("flags", Value::List(vec![Value::str("strict source")])),
        ],
    ));
    assert_eq!(warning(&r), None, "{r:?}");
    // delete's own warning comes first.
    let r = rig.ng_cmd(
        "delete",
        vec![
            ("call-id", Value::str("nope")),
            (
                "flags",
                Value::List(vec![Value::str("discard recording"), Value::str("debug")]),
            ),
        ],
    );
    assert_eq!(
        warning(&r),
        Some("Call-ID not found or tags didn't match; Unsupported, ignored: flag 'debug'"),
        "{r:?}"
    );
}
