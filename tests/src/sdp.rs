//! SDP fixtures and comparing the SDP a daemon wrote with an expectation.

/// Turns LF-separated SDP text into CRLF SDP.
pub fn crlf(s: &str) -> String {
    s.trim_start()
        .lines()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect()
}

/// Compares an SDP with an expected one where `PORT` matches any port;
/// returns the captured ports in order.
pub fn match_sdp(got: &str, expected: &str) -> Vec<u16> {
    let want = crlf(expected);
    let got_lines: Vec<&str> = got.split("\r\n").collect();
    let want_lines: Vec<&str> = want.split("\r\n").collect();
    assert_eq!(
        got_lines.len(),
        want_lines.len(),
        "line count differs:\n--- got\n{got}\n--- expected\n{want}"
    );
    let mut ports = Vec::new();
    for (g, w) in got_lines.iter().zip(&want_lines) {
        let parts: Vec<&str> = w.split("PORT").collect();
        let mut rest: &str = g;
        let mut ok = true;
        for (i, p) in parts.iter().enumerate() {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => {
                    ok = false;
                    break;
                }
            }
            if i + 1 < parts.len() {
                let n = rest.chars().take_while(|c| c.is_ascii_digit()).count();
                if n == 0 {
                    ok = false;
                    break;
                }
                ports.push(rest[..n].parse().expect("port"));
                rest = &rest[n..];
            }
        }
        assert!(
            ok && rest.is_empty(),
            "line differs: got {g:?}, expected {w:?}\n--- got\n{got}\n--- expected\n{want}"
        );
    }
    ports
}

/// The ports of the `m=` lines of an SDP, in order.
pub fn media_ports(sdp: &str) -> Vec<u16> {
    sdp.split("\r\n")
        .filter_map(|l| l.strip_prefix("m="))
        .map(|l| {
            l.split(' ')
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("bad m= line {l:?}"))
        })
        .collect()
}

/// Upstream's "basic, forward" offer (t/auto-daemon-tests-heuristic.pl): the
/// caller at 198.51.100.1:2010 offers PCMU and PCMA. LF line ends; `crlf()`
/// turns it into wire SDP.
pub const OFFER: &str = "
v=0
o=- 1545997027 1 IN IP4 198.51.100.1
s=tester
t=0 0
m=audio 2010 RTP/AVP 0 8
c=IN IP4 198.51.100.1
a=sendrecv
";

/// The answer to [`OFFER`]: the callee at 198.51.100.3:2012.
pub const ANSWER: &str = "
v=0
o=- 1545997027 1 IN IP4 198.51.100.3
s=tester
t=0 0
m=audio 2012 RTP/AVP 0 8
c=IN IP4 198.51.100.3
a=sendrecv
";
