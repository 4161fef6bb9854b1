//! Error paths of offer/answer/query/delete/list with upstream's exact
//! strings, and that failed requests leave no call and no port behind.

use rtpengine_tests::*;

fn without(mut d: Dict, key: &str) -> Dict {
    assert!(d.remove(key.as_bytes()).is_some(), "{key} not in request");
    d
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn offer_answer_missing_keys() {
    require_root();
    let rig = Rig::new("errkeys", &[]);
    let offer = || sdp_cmd("offer", "err-1", "ft", None, &crlf(OFFER), vec![]);
    let r = rig.cmd(without(offer(), "sdp"));
    assert_eq!(error_reason(&r), "No SDP body in message");
    let r = rig.cmd(without(offer(), "call-id"));
    assert_eq!(error_reason(&r), "No call-id in message");
    let r = rig.cmd(without(offer(), "from-tag"));
    assert_eq!(error_reason(&r), "No from-tag in message");
    assert!(rig.list_calls().is_empty(), "a failed offer created a call");

    // Answer without a to-tag, for a call that exists.
    rig.offer("err-1", "ft", OFFER, vec![]);
    let r = rig.cmd(sdp_cmd(
        "answer",
        "err-1",
        "ft",
        None,
        &crlf(ANSWER),
        vec![],
    ));
    assert_eq!(error_reason(&r), "No to-tag in message");
    let answer = || sdp_cmd("answer", "err-1", "ft", Some("tt"), &crlf(ANSWER), vec![]);
    let r = rig.cmd(without(answer(), "sdp"));
    assert_eq!(error_reason(&r), "No SDP body in message");
    let r = rig.cmd(without(answer(), "call-id"));
    assert_eq!(error_reason(&r), "No call-id in message");
    let r = rig.cmd(without(answer(), "from-tag"));
    assert_eq!(error_reason(&r), "No from-tag in message");

    // Answer for a call nobody offered.
    let r = rig.cmd(sdp_cmd(
        "answer",
        "err-unknown",
        "ft",
        Some("tt"),
        &crlf(ANSWER),
        vec![],
    ));
    assert_eq!(error_reason(&r), "Unknown call-id");
    assert_eq!(rig.list_calls(), vec!["err-1".to_string()]);
}

/// Malformed SDP of several kinds: `Failed to parse SDP`, no call is left
/// behind and no port leaks (the range holds exactly one call: two pairs).
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn malformed_sdp_rejected_without_leaks() {
    require_root();
    let rig = Rig::new("errsdp", &["--port-min", "30000", "--port-max", "30003"]);
    let bad = [
        // not SDP at all
        "hello world\r\n".to_string(),
        // a line without '='
        "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=x\r\nt=0 0\r\ngarbage\r\nm=audio 2010 RTP/AVP 0\r\nc=IN IP4 198.51.100.1\r\n".to_string(),
        // m= line with a non-numeric port
        crlf(&OFFER.replace("m=audio 2010", "m=audio xyz")),
        // m= line without protocol and formats
        crlf(&OFFER.replace("m=audio 2010 RTP/AVP 0 8", "m=audio 2010")),
        // c= line with an unparsable address
        crlf(&OFFER.replace("c=IN IP4 198.51.100.1", "c=IN IP4 999.1.2.3")),
    ];
    for (i, sdp) in bad.iter().enumerate() {
        let r = rig.cmd(sdp_cmd(
            "offer",
            &format!("bad-{i}"),
            "ft",
            None,
            sdp,
            vec![],
        ));
        assert_eq!(error_reason(&r), "Failed to parse SDP", "case {i}: {sdp:?}");
    }
    // A malformed answer for an existing call fails the same way.
    rig.offer("good", "ft", OFFER, vec![]);
    let r = rig.cmd(sdp_cmd("answer", "good", "ft", Some("tt"), &bad[1], vec![]));
    assert_eq!(error_reason(&r), "Failed to parse SDP");
    assert_eq!(rig.list_calls(), vec!["good".to_string()]);
    // The whole range is still usable: the good call completes...
    let sdp = rig.answer("good", "ft", "tt", ANSWER, vec![]);
    assert_eq!(media_ports(&sdp).len(), 1);
    rig.delete_now("good");
    assert!(rig.list_calls().is_empty());
    // ...and after deleting it, another one fits again.
    rig.offer("good-2", "ft", OFFER, vec![]);
    rig.answer("good-2", "ft", "tt", ANSWER, vec![]);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn query_delete_list_errors() {
    require_root();
    let rig = Rig::new("errmisc", &[]);
    let r = rig.query("nope");
    assert_eq!(error_reason(&r), "Unknown call-id");

    let r = rig.ng_cmd("delete", vec![("call-id", Value::str("nope"))]);
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    assert_eq!(
        get_str(&r, "warning"),
        "Call-ID not found or tags didn't match"
    );
    let r = rig.ng_cmd(
        "delete",
        vec![("call-id", Value::str("nope")), ("flags", strs(&["fatal"]))],
    );
    assert_eq!(error_reason(&r), "Call-ID not found or tags didn't match");

    // Known call, unknown from-tag.
    rig.offer("known", "ft", OFFER, vec![]);
    let r = rig.ng_cmd(
        "delete",
        vec![
            ("call-id", Value::str("known")),
            ("from-tag", Value::str("other")),
            ("flags", strs(&["fatal"])),
        ],
    );
    assert_eq!(error_reason(&r), "Call-ID not found or tags didn't match");
    assert_eq!(rig.list_calls(), vec!["known".to_string()]);

    let r = rig.ng_cmd("list", vec![("limit", Value::Int(-1))]);
    assert_eq!(error_reason(&r), "invalid limit, must be >= 0");
    let r = rig.ng_cmd("list", vec![("limit", Value::str("-1"))]);
    assert_eq!(error_reason(&r), "invalid limit, must be >= 0");

    rig.offer("known-2", "ft", OFFER, vec![]);
    let r = rig.ng_cmd("list", vec![("limit", Value::str("1"))]);
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    let Some(Value::List(calls)) = r.get(&b"calls"[..]) else {
        panic!("no calls in {r:?}")
    };
    assert_eq!(calls.len(), 1, "{r:?}");
    let r = rig.ng_cmd("list", vec![("limit", Value::Int(0))]);
    assert_eq!(r.get(&b"calls"[..]), Some(&Value::List(vec![])), "{r:?}");
    let mut all = rig.list_calls();
    all.sort();
    assert_eq!(all, vec!["known".to_string(), "known-2".to_string()]);
}

/// A party cannot be its own peer: equal from-tag and to-tag are refused.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn same_from_and_to_tag_is_refused() {
    require_root();
    let rig = Rig::new("sametag", &[]);
    let sdp = crlf("v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nt=0 0\nm=audio 2000 RTP/AVP 0\nc=IN IP4 198.51.100.1\n");
    let r = rig.cmd(sdp_cmd("offer", "st", "x", Some("x"), &sdp, vec![]));
    assert_eq!(error_reason(&r), "Invalid dialogue association");
    let r = rig.cmd(sdp_cmd("offer", "st", "x", None, &sdp, vec![]));
    assert_eq!(get_str(&r, "result"), "ok");
    let r = rig.cmd(sdp_cmd("answer", "st", "x", Some("x"), &sdp, vec![]));
    assert_eq!(error_reason(&r), "Invalid dialogue association");
}
