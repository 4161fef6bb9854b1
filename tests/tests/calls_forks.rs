//! Forked calls through the real daemon, as upstream models them (checked
//! side by side with rtpengine 10.5.3.5): each `via-branch` of an offer gets
//! a callee with its own ports, an answer picks its branch, and `delete`
//! with a to-tag or via-branch ends only that callee (and its ports) while
//! the caller keeps talking to the other one; the call ends with its last
//! dialogue, at once or after `delete-delay`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtpengine_tests::*;

const CALLER: &str = "
v=0
o=- 1 1 IN IP4 198.51.100.1
s=-
t=0 0
m=audio 2000 RTP/AVP 0
c=IN IP4 198.51.100.1
a=sendrecv
";

fn callee(addr: &str, port: u16) -> String {
    format!("v=0\no=- 2 1 IN IP4 {addr}\ns=-\nt=0 0\nm=audio {port} RTP/AVP 0\nc=IN IP4 {addr}\na=sendrecv")
}

fn port(sdp: &str) -> u16 {
    media_ports(sdp)[0]
}

fn at(p: u16) -> SocketAddr {
    SocketAddr::from(([203, 0, 113, 1], p))
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn forks_keep_their_own_ports_and_die_alone() {
    let rig = Rig::new("forks", &[]);
    let branch = |v: &str| vec![("via-branch", Value::str(v))];
    let to_b1 = port(&rig.offer("fk", "a", CALLER, branch("v1")));
    let to_b2 = port(&rig.offer("fk", "a", CALLER, branch("v2")));
    assert_ne!(to_b1, to_b2, "each branch has its own ports");
    // The same branch again is a retransmission: same ports.
    assert_eq!(port(&rig.offer("fk", "a", CALLER, branch("v1"))), to_b1);
    rig.answer("fk", "a", "b1", &callee("198.51.100.3", 3000), branch("v1"));
    let to_a = port(&rig.answer("fk", "a", "b2", &callee("198.51.100.6", 3002), branch("v2")));

    // The later answer has the caller: media flows a <-> b2.
    let a = rig.socket("198.51.100.1:2000");
    let b2 = rig.socket("198.51.100.6:3002");
    let p = rtp(0, 1, 160, 0x11, 0xaa);
    a.send_to(&p, at(to_a)).unwrap();
    expect_packet(&b2, at(to_b2), &p);

    // b1 goes (to-tag, no flag needed, as 10.5): its ports are free, the
    // call and a <-> b2 stay.
    let r = rig.ng_cmd(
        "delete",
        vec![
            ("call-id", Value::str("fk")),
            ("from-tag", Value::str("a")),
            ("to-tag", Value::str("b1")),
            ("delete-delay", Value::Int(0)),
        ],
    );
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    assert!(!r.contains_key(&b"warning"[..]), "{r:?}");
    rig.try_bind(at(to_b1)).expect("b1's port is free");
    assert!(rig.try_bind(at(to_b2)).is_err(), "b2's port is still held");
    assert_eq!(rig.list_calls(), ["fk"]);
    let p = rtp(0, 2, 320, 0x22, 0xbb);
    b2.send_to(&p, at(to_b2)).unwrap();
    expect_packet(&a, at(to_a), &p);

    // The last branch by via-branch, after a delay: the call ends then.
    let r = rig.ng_cmd(
        "delete",
        vec![
            ("call-id", Value::str("fk")),
            ("from-tag", Value::str("a")),
            ("via-branch", Value::str("v2")),
            ("delete-delay", Value::Int(1)),
        ],
    );
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    assert!(!r.contains_key(&b"warning"[..]), "{r:?}");
    assert_eq!(rig.list_calls(), ["fk"], "still there during the delay");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !rig.list_calls().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the call did not end after its delay"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    rig.try_bind(at(to_b2)).expect("b2's port is free");
    rig.try_bind(at(to_a)).expect("the caller's port is free");
    // Both packets count in the totals, whichever branch relayed them.
    let stats = rig.statistics();
    let total = match stats.get(&b"totalstatistics"[..]) {
        Some(Value::Dict(t)) => t.get(&b"relayedpackets"[..]).cloned(),
        _ => None,
    };
    assert_eq!(total, Some(Value::Int(2)), "{stats:?}");
}

/// A plain two-party call ends whichever of its tags a delete names.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_two_party_call_ends_by_either_tag() {
    let rig = Rig::new("forks2", &[]);
    for (i, tag) in ["a", "b"].iter().enumerate() {
        let id = format!("two{i}");
        rig.offer(&id, "a", CALLER, vec![]);
        rig.answer(&id, "a", "b", &callee("198.51.100.3", 3000), vec![]);
        let r = rig.ng_cmd(
            "delete",
            vec![
                ("call-id", Value::str(&id)),
                ("from-tag", Value::str(tag)),
                ("delete-delay", Value::Int(0)),
            ],
        );
        assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
        assert!(rig.list_calls().is_empty(), "{tag}");
    }
}

/// `alias key` (master; 10.5 lacks it): an offer from an unknown from-tag
/// with the same SDP (`SDP`) or first endpoint (`address`) as an earlier
/// offer is the same party under a new tag, with the same ports; the old tag
/// still names it and shows up as a tag alias.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn alias_keys_make_a_new_from_tag_the_same_party() {
    let rig = Rig::new("aliaskey", &[]);
    let other = CALLER.replace("o=- 1 1", "o=- 1 2");
    for (i, (key, second, same)) in [
        ("SDP", CALLER.to_owned(), true),
        ("SDP", other.clone(), false),
        ("address", other, true),
        ("off", CALLER.to_owned(), false),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("ak{i}");
        let opt = || vec![("alias key", Value::str(key))];
        let first = port(&rig.offer(&id, "a", CALLER, opt()));
        let again = port(&rig.offer(&id, "a2", &second, opt()));
        assert_eq!(first == again, same, "{key}: ports {first} {again}");
        let q = rig.query(&id);
        let aliases = dig(&q, &["tags", "a2", "tag-aliases"]);
        if same {
            assert_eq!(aliases, Some(&Value::List(vec![Value::str("a")])), "{q:?}");
            // The old tag still names the party: an answer to it works.
            rig.answer(&id, "a", "b", &callee("198.51.100.3", 3000), vec![]);
        } else {
            assert_eq!(aliases, None, "{q:?}");
        }
    }
}
