//! Debian's `rtpengine-ctl` (rtpengine-utils 10.5) against our CLI, and the
//! same commands over HTTP `GET /cli/<command>`. Every expected reply is
//! what Debian's rtpengine 10.5.3.5 prints for the same state (captured
//! from it with the same commands), byte for byte.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use rtpengine_tests::*;

const CTL: &str = "rtpengine-ctl";

struct Setup {
    _daemon: Daemon,
    ng: NgClient,
    cli: SocketAddr,
    http: SocketAddr,
}

fn setup() -> Setup {
    let (cli, http) = (free_tcp_port(), free_tcp_port());
    let cli: SocketAddr = sa("127.0.0.1", cli);
    let http: SocketAddr = sa("127.0.0.1", http);
    let daemon = Daemon::start(&[
        &format!("--listen-cli={cli}"),
        &format!("--listen-http={http}"),
        "--interface=127.0.0.1",
    ])
    .unwrap();
    let ng = NgClient::new(daemon.ng).unwrap();
    Setup {
        _daemon: daemon,
        ng,
        cli,
        http,
    }
}

impl Setup {
    /// `rtpengine-ctl -ip … -port … <words>`: its stdout, which is our
    /// reply verbatim. It must return at once: it waits for the end of the
    /// stream (3 s when the server never closes).
    fn ctl(&self, words: &[&str]) -> String {
        let started = Instant::now();
        let mut cmd = Command::new(CTL);
        cmd.args(["-ip", &self.cli.ip().to_string()])
            .args(["-port", &self.cli.port().to_string()])
            .args(words);
        let ran = run_timeout(&mut cmd, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{CTL} (package rtpengine-utils) did not run: {e:#}"));
        assert_eq!(ran.code, Some(0), "{words:?}:\n{}", ran.transcript());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{words:?}: the reply did not end the stream"
        );
        ran.stdout
    }

    /// `GET /cli/<path>` over HTTP: status line check, body.
    fn http(&self, path: &str) -> String {
        let mut s = TcpStream::connect(self.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET /cli/{path} HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.0 200"), "{out}");
        assert!(out.contains("content-type: text/plain"), "{out}");
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap()
    }

    fn call(&self, id: &str, port: u16) {
        let offer = OFFER.replace("2010", &port.to_string());
        let r = self
            .ng
            .call(&sdp_cmd("offer", id, "ft", None, &crlf(&offer), vec![]))
            .unwrap();
        assert_eq!(get_str(&r, "result"), "ok");
        let answer = ANSWER.replace("2012", &(port + 2).to_string());
        let r = self
            .ng
            .call(&sdp_cmd(
                "answer",
                id,
                "ft",
                Some("tt"),
                &crlf(&answer),
                vec![],
            ))
            .unwrap();
        assert_eq!(get_str(&r, "result"), "ok");
    }
}

fn numsessions(n: usize) -> String {
    format!(
        "Current sessions own: {n}\nCurrent sessions foreign: 0\nCurrent sessions total: {n}\n\
         Current transcoded media: 0\nCurrent sessions ipv4 only media: {n}\n\
         Current sessions ipv6 only media: 0\nCurrent sessions ip mixed  media: 0\n"
    )
}

#[test]
#[ignore = "needs rtpengine-utils: run with cargo xtask test"]
fn getters_setters_and_errors() {
    let s = setup();
    let cases: &[(&[&str], &str)] = &[
        (&["list", "numsessions"], &numsessions(0)),
        (
            &["list", "maxsessions"],
            "Maximum sessions configured on rtpengine: -1\n",
        ),
        (
            &["get", "maxsessions"],
            "Maximum sessions configured on rtpengine: -1\n",
        ),
        (&["list", "timeout"], "TIMEOUT=60\n"),
        (&["list", "silenttimeout"], "SILENT_TIMEOUT=3600\n"),
        (&["list", "offertimeout"], "OFFER_TIMEOUT=3600\n"),
        (&["list", "finaltimeout"], "FINAL_TIMEOUT=0\n"),
        (&["list", "deletedelay"], "30\n"),
        (&["list", "controltos"], "0\n"),
        (
            &["set", "maxsessions", "100"],
            "Success setting maxsessions to 100\n",
        ),
        (
            &["list", "maxsessions"],
            "Maximum sessions configured on rtpengine: 100\n",
        ),
        (
            &["set", "maxsessions", "12abc"],
            "Success setting maxsessions to 12\n",
        ),
        (
            &["set", "maxsessions", "-5"],
            "Fail setting maxsessions to -5; either positive or -1 values allowed\n",
        ),
        (
            &["set", "maxsessions", "abc"],
            "Fail setting maxsessions to abc; no digists found\n",
        ),
        (
            &["set", "maxsessions", "-1"],
            "Success setting maxsessions to -1; disable feature\n",
        ),
        (
            &["set", "timeout", "120"],
            "Success setting timeout to 120\n",
        ),
        (&["list", "timeout"], "TIMEOUT=120\n"),
        (
            &["set", "silenttimeout", "1800"],
            "Success setting timeout to 1800\n",
        ),
        (&["list", "silenttimeout"], "SILENT_TIMEOUT=1800\n"),
        (
            &["set", "finaltimeout", "7200"],
            "Success setting timeout to 7200\n",
        ),
        (
            &["set", "offertimeout", "90"],
            "Success setting timeout to 90\n",
        ),
        (&["list", "offertimeout"], "OFFER_TIMEOUT=90\n"),
        (
            &["set", "timeout", "abc"],
            "Fail setting timeout to abc; no digists found\n",
        ),
        (
            &["set", "timeout", "-1"],
            "Fail setting timeout to -1; errno=0\n",
        ),
        (
            &["set", "deletedelay", "10"],
            "Success setting delete-delay to 10\n",
        ),
        (&["list", "deletedelay"], "10\n"),
        (
            &["set", "deletedelay", "abc"],
            "Invalid delete-delay value\n",
        ),
        // Upstream's defaults: --log-level for all, internals off.
        (&["list", "loglevel", "core"], "6\n"),
        (&["list", "loglevel", "internals"], "-1\n"),
        (&["set", "loglevel", "5"], "Success setting loglevel to 5\n"),
        (&["list", "loglevel", "core"], "5\n"),
        (&["list", "loglevel", "nosuchsys"], ""),
        // An unknown subsystem: success reported, nothing changed (10.5).
        (
            &["set", "loglevel", "nosuchsys", "3"],
            "Success setting loglevel to 3\n",
        ),
        (&["list", "loglevel", "core"], "5\n"),
        (
            &["set", "loglevel", "core", "7"],
            "Success setting loglevel to 7\n",
        ),
        (&["set", "loglevel", "core"], "More parameters required.\n"),
        (&["set", "timeout"], "More parameters required.\n"),
        (&["list"], "More parameters required.\n"),
        (&["terminate"], "More parameters required.\n"),
        (&["bogus"], "Unknown or incomplete command::bogus\n"),
        (&["list", "bogus"], "Unknown or incomplete command::bogus\n"),
    ];
    for (words, want) in cases {
        assert_eq!(&s.ctl(words), want, "{words:?}");
    }
    let levels = s.ctl(&["list", "loglevel"]);
    assert_eq!(levels.lines().count(), 13, "{levels}");
    // `set loglevel core 7` after `set loglevel 5`: only core changed.
    assert!(levels.starts_with("core = 7\nspandsp = 5\n"), "{levels}");
    assert!(levels.contains("\ninternals = 5\n"), "{levels}");
    let names = s.ctl(&["list", "loglevels"]);
    assert!(names.starts_with("core - Everything that isn't part of another subsystem\n"));
    // The set values are the ones the daemon uses: a limit of 0 refuses.
    s.ctl(&["set", "maxsessions", "0"]);
    let r =
        s.ng.call(&sdp_cmd(
            "offer",
            "refused",
            "ft",
            None,
            &crlf(OFFER),
            vec![],
        ))
        .unwrap();
    assert_eq!(error_reason(&r), "Parallel session limit reached");
}

#[test]
#[ignore = "needs rtpengine-utils: run with cargo xtask test"]
fn terminate_sessions_and_http() {
    let s = setup();
    s.call("c1", 4010);
    s.call("c2", 4020);
    assert_eq!(s.ctl(&["list", "numsessions"]), numsessions(2));
    assert_eq!(s.http("list+numsessions"), numsessions(2));
    assert_eq!(s.http("list%20timeout"), "TIMEOUT=60\n");
    assert_eq!(
        s.ctl(&["terminate", "c1"]),
        "\nCall Id (c1) successfully terminated by operator.\n\n"
    );
    assert_eq!(s.ctl(&["terminate", "c1"]), "\nCall Id not found (c1).\n\n");
    assert_eq!(s.ctl(&["list", "numsessions"]), numsessions(1));
    let stats =
        s.ng.call(&dict([("command", "statistics".into())]))
            .unwrap();
    assert_eq!(
        dig_int(
            &stats,
            &["statistics", "totalstatistics", "forcedterminatedsessions"]
        ),
        Some(1)
    );
    assert_eq!(
        s.ctl(&["terminate", "foreign"]),
        "All foreign calls terminated by operator.\n"
    );
    assert_eq!(s.ctl(&["list", "numsessions"]), numsessions(1));
    assert_eq!(
        s.ctl(&["terminate", "all"]),
        "All calls terminated by operator.\n"
    );
    assert_eq!(s.ctl(&["list", "numsessions"]), numsessions(0));
    // Over HTTP too, with upstream's "Unknown" text for a word it lacks.
    assert_eq!(
        s.http("nothing"),
        "Unknown or incomplete command::nothing\n"
    );
}

/// Splits `s` at the last occurrence of `sep`: the stable part of a line
/// whose tail is a time.
fn before_last<'a>(s: &'a str, sep: &str) -> &'a str {
    s.rsplit_once(sep).map_or(s, |(head, _)| head)
}

#[test]
#[ignore = "needs rtpengine-utils: run with cargo xtask test"]
fn sessions_totals_interfaces_with_media() {
    let s = setup();
    // Both parties on 127.0.0.1, so media flows through the daemon here.
    let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    }
    let (pa, pb) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    let offer = OFFER
        .replace("198.51.100.1", "127.0.0.1")
        .replace("2010", &pa.to_string());
    let answer = ANSWER
        .replace("198.51.100.3", "127.0.0.1")
        .replace("2012", &pb.to_string());
    // The offer's via-branch names the callee's leg (upstream: its monologue).
    let mut off = sdp_cmd(
        "offer",
        "c1",
        "ft",
        None,
        &crlf(&offer),
        vec![("label", Value::str("caller-label"))],
    );
    off.insert(b"via-branch".to_vec(), Value::str("branch-1"));
    let r = s.ng.call(&off).unwrap();
    // The offer's SDP goes to B: B sends to its port.
    let b_sends_to = media_ports(get_str(&r, "sdp"))[0];
    let ans = sdp_cmd("answer", "c1", "ft", Some("tt"), &crlf(&answer), vec![]);
    let r = s.ng.call(&ans).unwrap();
    let a_sends_to = media_ports(get_str(&r, "sdp"))[0];
    for i in 0..5u16 {
        let p = rtp(0, i, 160 * u32::from(i), 0x1111_1111, 1);
        a.send_to(&p, sa("127.0.0.1", a_sends_to)).unwrap();
        expect_packet(&b, sa("127.0.0.1", b_sends_to), &p);
    }
    for i in 0..3u16 {
        let p = rtp(8, i, 160 * u32::from(i), 0x2222_2222, 2);
        b.send_to(&p, sa("127.0.0.1", b_sends_to)).unwrap();
        expect_packet(&a, sa("127.0.0.1", a_sends_to), &p);
    }
    let ng_port = s.ng.sock.local_addr().unwrap().port();

    // The table: one line per call, upstream's widths.
    let all = s.ctl(&["list", "sessions", "all"]);
    let want_prefix = format!("callid: {:>60} | deletionmark:  no | created:", "c1");
    assert!(all.starts_with(&want_prefix), "{all}");
    assert!(
        all.ends_with(&format!(
            " | proxy:127.0.0.1:{ng_port} | redis_keyspace:0 | foreign:no\n"
        )),
        "{all}"
    );
    assert_eq!(s.ctl(&["list", "sessions", "own"]), all);
    assert_eq!(
        s.ctl(&["list", "sessions", "foreign"]),
        "No foreign sessions on this media relay.\n"
    );
    assert_eq!(
        s.ctl(&["list", "sessions", "nosuch"]),
        "\nCall ID not found (nosuch).\n\n"
    );

    // One call in detail: header, then a block per party with its ports
    // (local <> learned remote, SSRC, packets/bytes/errors received).
    let detail = s.ctl(&["list", "sessions", "c1"]);
    let lines: Vec<&str> = detail.lines().collect();
    assert_eq!(
        lines[..3],
        ["", "callid: c1", "deletionmark: no"],
        "{detail}"
    );
    assert_eq!(lines[4], format!("proxy: 127.0.0.1:{ng_port}"), "{detail}");
    assert_eq!(lines[5], "tos: 0");
    assert_eq!(
        lines[7..10],
        ["redis_keyspace: 0", "foreign: no", ""],
        "{detail}"
    );
    let stable: Vec<&str> = lines[10..lines.len() - 1]
        .iter()
        .map(|l| before_last(before_last(l, ", callduration "), " ts"))
        .map(|l| {
            if l.starts_with("-------- Port") {
                before_last(l, ", ")
            } else {
                l
            }
        })
        .collect();
    let port = |local: u16, remote: u16, rtcp: &str, rest: &str| {
        format!(
            "-------- Port {:>15}:{:<5} <> {:>15}:{:<5}{rtcp}, {rest}",
            "127.0.0.1", local, "127.0.0.1", remote
        )
    };
    let want = [
        "--- Tag 'ft', type: FROM_TAG, label 'caller-label', branch ''".to_owned(),
        "---     subscribed to 'tt'".to_owned(),
        "---     subscription of 'tt'".to_owned(),
        "------ Media #1 (audio over RTP/AVP) using PCMU/8000".to_owned(),
        port(a_sends_to, pa, "", "SSRC 11111111, 5 p, 860 b, 0 e"),
        port(a_sends_to + 1, pa + 1, " (RTCP)", "SSRC 0, 0 p, 0 b, 0 e"),
        "--- Tag 'tt', type: TO_TAG, label '', branch 'branch-1'".to_owned(),
        "---     subscribed to 'ft'".to_owned(),
        "---     subscription of 'ft'".to_owned(),
        "------ Media #1 (audio over RTP/AVP) using PCMA/8000".to_owned(),
        port(b_sends_to, pb, "", "SSRC 22222222, 3 p, 516 b, 0 e"),
        port(b_sends_to + 1, pb + 1, " (RTCP)", "SSRC 0, 0 p, 0 b, 0 e"),
    ];
    assert_eq!(stable, want, "{detail}");
    assert!(detail.ends_with(" ts\n\n"), "{detail:?}");

    // Interfaces: 2 parties x RTP+RTCP in use.
    let ifs = s.ctl(&["list", "interfaces"]);
    assert_eq!(
        before_last(&ifs, "Last port used:"),
        "Interface 'default' address '127.0.0.1' (IPv4)\n Port range: 30000 - 40000\n \
         Ports used:     4 / 10001 (  0.0%)\n "
    );

    // Totals: upstream's layout and the traffic above (8 packets relayed).
    let totals = s.ctl(&["list", "totals"]);
    assert!(
        totals.starts_with(
            "\nStatistics over currently running sessions:\n\n Owned sessions                                  :1\n"
        ),
        "{totals}"
    );
    for want in [
        " Total relayed packets (userspace)               :8\n",
        " Total relayed bytes                             :1376\n",
        " Total managed sessions                          :0\n",
        "\nTotal statistics (does not include current running sessions):\n\n Uptime of rtpengine",
        "\n\nControl statistics:\n\n                Proxy |       Ping |      Offer |     Answer |     Delete |      Query |       List |   StartRec |    StopRec |   StartFwd |    StopFwd |    BlkDTMF |  UnblkDTMF |   BlkMedia | UnblkMedia |  PlayMedia |  StopMedia |   PlayDTMF |      Stats |   SlnMedia | UnslnMedia |        Pub |     SubReq |     SubAns |      Unsub \n",
    ] {
        assert!(totals.contains(want), "no {want:?} in\n{totals}");
    }
    let row = totals
        .lines()
        .find(|l| l.starts_with("            127.0.0.1 |"))
        .unwrap_or_else(|| panic!("{totals}"));
    let cols: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(cols[2..4], ["1", "1"], "offer, answer: {row}");
    let counters = s.ctl(&["list", "counters"]);
    assert!(
        counters.starts_with(
            "\nCurrent per-second counters:\n\n Packets per second (userspace)                  :"
        ),
        "{counters}"
    );
    assert_eq!(counters.lines().count(), 12, "{counters}");

    let json: serde_json::Value = serde_json::from_str(&s.ctl(&["list", "jsonstats"])).unwrap();
    assert_eq!(json["totalstatistics"]["relayedpackets"], 8);
    assert_eq!(json["currentstatistics"]["sessionsown"], 1);
    assert_eq!(json["controlstatistics"]["proxies"][0]["offercount"], 1);
    assert_eq!(json["interfaces"][0]["ports"]["used"], 4);
}

/// Our `rtpengine-ctl` (Rust, no Perl) takes the Perl client's arguments
/// and prints the same replies.
#[test]
#[ignore = "needs rtpengine-utils: run with cargo xtask test"]
fn rust_ctl_matches_debian_ctl() {
    let s = setup();
    s.call("c1", 4010);
    let ours = daemon_bin().with_file_name("rtpengine-ctl");
    let run_ours = |args: &[&str]| {
        let ran = run_timeout(Command::new(&ours).args(args), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{}: {e:#}", ours.display()));
        (ran.code, ran.stdout)
    };
    let (ip, port) = (s.cli.ip().to_string(), s.cli.port().to_string());
    let joined = s.cli.to_string();
    for words in [
        &["list", "numsessions"][..],
        &["list", "sessions", "all"],
        &["list", "sessions", "c1"],
        &["list", "interfaces"],
        &["get", "maxsessions"],
        &["list", "timeout"],
        &["help"],
        &["list", "help"],
        &["list", "bogus"],
    ] {
        let want = s.ctl(words);
        // `sessions c1` prints call durations that move between the runs.
        let stable = |t: &str| {
            t.lines()
                .map(|l| before_last(l, ", callduration ").to_owned())
                .collect::<Vec<_>>()
        };
        let mut args = vec!["-ip", &ip, "-port", &port];
        args.extend(words);
        let (code, out) = run_ours(&args);
        assert_eq!(code, Some(0), "{words:?}");
        assert_eq!(stable(&out), stable(&want), "{words:?}");
        // `-ip address:port` instead of `-port`.
        let mut args = vec!["--ip", &joined];
        args.extend(words);
        assert_eq!(stable(&run_ours(&args).1), stable(&want), "{words:?}");
    }
    // Without words: usage, exit 1; with -h: usage, exit 0.
    let (code, out) = run_ours(&["-ip", &joined]);
    assert_eq!(code, Some(1));
    assert!(out.starts_with("usage: rtpengine-ctl"), "{out}");
    assert_eq!(run_ours(&["-h"]).0, Some(0));
    // Nothing listening: an error, exit 1.
    let closed = sa("127.0.0.1", free_tcp_port()).to_string();
    assert_eq!(
        run_ours(&["-ip", &closed, "list", "numsessions"]).0,
        Some(1)
    );
    let (code, out) = run_ours(&["-ip", &joined, "terminate", "c1"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "\nCall Id (c1) successfully terminated by operator.\n\n"
    );
    assert_eq!(s.ctl(&["list", "numsessions"]), numsessions(0));
}
