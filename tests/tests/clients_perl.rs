//! sipwise's Perl client `rtpengine-ng-client` (Debian rtpengine-utils,
//! module NGCP::Rtpengine) against the real daemon. That client speaks ng over
//! a connected UDP socket only (bencode, or JSON with `--json`), with a
//! `rand()` cookie such as `0.8123…`; it has no HTTP transport in 10.5.3.5.
//! It waits forever for a reply, so every run has a timeout.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use rtpengine_tests::*;

const CLIENT: &str = "rtpengine-ng-client";

fn sdp(port: u16, sess: u32) -> String {
    format!(
        "v=0\r\no=- {sess} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

/// Runs `rtpengine-ng-client [--json] <args>` against `ng`.
fn perl(ng: SocketAddr, json: bool, args: &[&str]) -> Ran {
    let mut cmd = Command::new(CLIENT);
    cmd.arg(format!("--proxy-address={}", ng.ip()))
        .arg(format!("--proxy-port={}", ng.port()));
    if json {
        cmd.arg("--json");
    }
    cmd.args(args);
    let ran = run_timeout(&mut cmd, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{CLIENT} (package rtpengine-utils) did not run: {e:#}"));
    assert!(
        !ran.timed_out,
        "{CLIENT} {args:?} got no reply:\n{}",
        ran.transcript()
    );
    ran
}

fn ok(ng: SocketAddr, json: bool, args: &[&str]) -> String {
    let ran = perl(ng, json, args);
    assert_eq!(
        ran.code,
        Some(0),
        "{CLIENT} {args:?}:\n{}",
        ran.transcript()
    );
    ran.stdout
}

/// The SDP between "New SDP:" and the closing marker.
fn new_sdp(out: &str) -> &str {
    let start = out
        .find("New SDP:\n-----8<-----8<-----8<-----8<-----8<-----\n")
        .unwrap_or_else(|| panic!("no new SDP in:\n{out}"));
    let rest = &out[start + "New SDP:\n-----8<-----8<-----8<-----8<-----8<-----\n".len()..];
    let end = rest
        .find("----->8-----")
        .unwrap_or_else(|| panic!("unterminated SDP in:\n{out}"));
    &rest[..end]
}

fn media_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio port in {sdp:?}"))
}

fn check_sdp(what: &str, out: &str, phone_port: u16) -> u16 {
    let sdp = new_sdp(out);
    assert!(
        sdp.contains("c=IN IP4 127.0.0.1\r\n"),
        "{what}: no c= with the daemon's address:\n{out}"
    );
    assert!(
        sdp.contains(" RTP/AVP 8 101\r\n"),
        "{what}: payload types changed:\n{out}"
    );
    let port = media_port(sdp);
    assert_ne!(port, phone_port, "{what}: phone port not replaced:\n{out}");
    port
}

fn call(json: bool) {
    let d = Daemon::start(&["--delete-delay=0"]).expect("daemon");
    let ng = d.ng;
    let call_id = format!(
        "perl-{}-{}",
        if json { "json" } else { "bencode" },
        std::process::id()
    );
    let base = ["--call-id", call_id.as_str(), "--from-tag", "perl-ft"];

    let offer_sdp = sdp(43000, 11);
    let out = ok(
        ng,
        json,
        &[
            "offer",
            base[0],
            base[1],
            base[2],
            base[3],
            "--trust-address",
            "--replace-origin",
            "--sdp",
            &offer_sdp,
        ],
    );
    let offer_port = check_sdp("offer", &out, 43000);

    let answer_sdp = sdp(43002, 22);
    let out = ok(
        ng,
        json,
        &[
            "answer",
            base[0],
            base[1],
            base[2],
            base[3],
            "--to-tag",
            "perl-tt",
            "--trust-address",
            "--sdp",
            &answer_sdp,
        ],
    );
    let answer_port = check_sdp("answer", &out, 43002);
    assert_ne!(offer_port, answer_port);

    // Data::Dumper output, sorted keys, one key per line.
    let out = ok(ng, json, &["query", "--call-id", &call_id]);
    for want in [
        "'perl-ft' => {",
        "'perl-tt' => {",
        "tag => 'perl-ft'",
        "tag => 'perl-tt'",
        "totals => {",
        "'advertised endpoint' => {",
    ] {
        assert!(out.contains(want), "query output lacks {want:?}:\n{out}");
    }
    // Bencode numbers arrive as Perl strings ('43000'), JSON ones as numbers.
    for (key, n) in [
        ("port", 43000),
        ("port", 43002),
        ("'local port'", offer_port),
        ("'local port'", answer_port),
    ] {
        let plain = format!("{key} => {n}");
        let quoted = format!("{key} => '{n}'");
        assert!(
            out.lines()
                .map(|l| l.trim().trim_end_matches(','))
                .any(|l| l == plain || l == quoted),
            "query output lacks {plain}:\n{out}"
        );
    }
    assert!(
        !out.contains("result =>"),
        "result ok is stripped by the client:\n{out}"
    );

    let out = ok(ng, json, &["list"]);
    assert!(
        out.contains(&format!("calls => [\n    '{call_id}'\n  ]")),
        "list output lacks the call:\n{out}"
    );

    let out = ok(
        ng,
        json,
        &[
            "delete",
            "--call-id",
            &call_id,
            "--from-tag",
            "perl-ft",
            "--delete-delay",
            "0",
        ],
    );
    assert!(
        out.contains("totals => {"),
        "delete reply has no stats:\n{out}"
    );
    assert!(!out.contains("warning"), "delete warned:\n{out}");

    let out = ok(ng, json, &["list"]);
    assert!(
        out.contains("calls => []"),
        "call still listed after delete:\n{out}"
    );

    // Errors make the client die with the reason.
    let ran = perl(ng, json, &["query", "--call-id", &call_id]);
    assert_ne!(ran.code, Some(0), "{}", ran.transcript());
    assert!(
        ran.stderr.contains("Error reason: \"Unknown call-id\""),
        "{}",
        ran.transcript()
    );

    let out = ok(ng, json, &["ping"]);
    assert!(out.contains("result => 'pong'"), "ping:\n{out}");
}

/// offer, answer, query, list, delete over UDP with bencode.
#[test]
#[ignore = "needs rtpengine-utils: run with cargo xtask test"]
fn perl_ng_client_bencode() {
    call(false);
}

/// The same with `--json` (JSON in, JSON out).
#[test]
#[ignore = "needs rtpengine-utils: run with cargo xtask test"]
fn perl_ng_client_json() {
    call(true);
}
