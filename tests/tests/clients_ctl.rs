//! Debian's `rtpengine-ctl` (rtpengine-utils 10.5) against our CLI, and the
//! same commands over HTTP `GET /cli/<command>`. Every expected reply is
//! what Debian's rtpengine 10.5.3.5 prints for the same state (captured
//! from it with the same commands), byte for byte, except the log levels:
//! this daemon has one level for every subsystem, so `list loglevel` shows
//! it for each (10.5 shows `internals = -1`) and `set loglevel core N` sets
//! it for all.

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
    assert!(levels.starts_with("core = 7\nspandsp = 7\n"), "{levels}");
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
