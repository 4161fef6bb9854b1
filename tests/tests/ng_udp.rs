//! The ng protocol over UDP against the real daemon: framing, encodings,
//! retransmissions and every protocol error string.

use std::time::Duration;

use rtpengine_tests::*;

fn daemon() -> (Daemon, NgClient) {
    let d = Daemon::start(&[]).expect("daemon");
    let c = NgClient::new(d.ng).expect("client");
    (d, c)
}

#[test]
fn ping_bencode_and_json() {
    let (_d, c) = daemon();
    assert_eq!(
        c.raw(b"5323_1 d7:command4:pinge").unwrap(),
        b"5323_1 d6:result4:ponge"
    );
    assert_eq!(
        c.raw(br#"x {"command":"ping"}"#).unwrap(),
        br#"x {"result":"pong"}"#
    );
    // rtpengine-client uses 36-character UUID cookies.
    let cookie = "0f2e4a8e-0000-4000-8000-123456789abc";
    let r = c
        .raw(format!("{cookie} d7:command4:pinge").as_bytes())
        .unwrap();
    assert_eq!(&r[..37], format!("{cookie} ").as_bytes());
}

#[test]
fn error_strings() {
    let (_d, c) = daemon();
    let cases: &[(&[u8], &str)] = &[
        (b"c1 ", "Invalid data (no payload)"),
        (b"c2 d7:command4:pin", "Could not decode bencode dictionary"),
        (b"c3 hello", "Invalid NG data format"),
        (b"c4 l4:pinge", "Invalid NG data format"),
        (b"c5 d3:foo3:bare", "Dictionary contains no key \"command\""),
        (b"c6 d7:command7:explodee", "Unrecognized command"),
        (b"c7 d7:command2:\xff\xfee", "Unrecognized command"),
        (
            b"c8 d3:fooi99999999999999999999999ee",
            "Could not decode bencode dictionary",
        ),
    ];
    for (req, reason) in cases {
        let cookie = req.split(|&b| b == b' ').next().unwrap();
        let reply = c.raw(req).unwrap();
        let body = &reply[cookie.len() + 1..];
        let d = decode_bencode(body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&reply)));
        assert_eq!(d.len(), 2, "only result and error-reason: {d:?}");
        assert_eq!(get_str(&d, "result"), "error");
        assert_eq!(
            get_str(&d, "error-reason"),
            *reason,
            "for {:?}",
            String::from_utf8_lossy(req)
        );
    }
    let reply = c.raw(b"j1 {\"command\":").unwrap();
    assert_eq!(
        reply,
        br#"j1 {"error-reason":"Could not decode JSON dictionary","result":"error"}"#
    );
}

#[test]
fn no_cookie_gets_no_reply() {
    let (mut d, c) = daemon();
    c.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    c.sock.send(b"d7:command4:pinge").unwrap();
    assert!(
        c.recv().is_err(),
        "upstream answers nothing without a cookie"
    );
    assert!(d.alive());
    c.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(
        c.raw(b"a d7:command4:pinge").unwrap(),
        b"a d6:result4:ponge"
    );
}

#[test]
fn retransmission_replays_cached_reply() {
    let (_d, c) = daemon();
    let first = c.raw(b"k1 d7:command4:pinge").unwrap();
    // Same cookie, different body: the cached reply comes back and the new
    // body is never executed.
    let again = c.raw(b"k1 d7:command6:bogus!e").unwrap();
    assert_eq!(first, again);
    let other = c.raw(b"k2 d7:command6:bogus!e").unwrap();
    assert!(String::from_utf8_lossy(&other).contains("Unrecognized command"));
}

#[test]
fn hostile_input_keeps_daemon_serving() {
    let (mut d, c) = daemon();
    let mut deep = b"deep d1:a".to_vec();
    deep.extend(std::iter::repeat_n(b'l', 60_000));
    let r = c.raw(&deep).unwrap();
    assert!(String::from_utf8_lossy(&r).contains("Could not decode bencode dictionary"));

    let mut big = b"big d3:sdp65000:".to_vec();
    big.extend(std::iter::repeat_n(b'x', 65_000));
    big.extend(b"7:command4:pinge");
    assert_eq!(c.raw(&big).unwrap(), b"big d6:result4:ponge");

    let mut json_deep = b"jd {\"a\":".to_vec();
    json_deep.extend(std::iter::repeat_n(b'[', 60_000));
    let r = c.raw(&json_deep).unwrap();
    assert!(String::from_utf8_lossy(&r).contains("Could not decode JSON dictionary"));

    assert!(d.alive());
    assert_eq!(
        c.raw(b"z d7:command4:pinge").unwrap(),
        b"z d6:result4:ponge"
    );
}

#[test]
fn unknown_and_duplicate_keys() {
    let (_d, c) = daemon();
    // Duplicate key: the first occurrence wins (ping, not offer).
    assert_eq!(
        c.raw(b"d1 d7:command4:ping7:command5:offere").unwrap(),
        b"d1 d6:result4:ponge"
    );
    // Unsorted and unknown keys are fine.
    assert_eq!(
        c.raw(b"d2 d3:zzz1:a7:command4:ping3:aaai1ee").unwrap(),
        b"d2 d6:result4:ponge"
    );
}
