//! What a stranger who can send to the daemon's media ports achieves, per
//! endpoint-learning mode and flag: the README's threat table ("Reliability
//! and security"), one test per row.
//!
//! Parties: A (caller) announces and sends from 198.51.100.1:2010, B (callee)
//! from 198.51.100.3:2012; the attacker M sends from 198.51.100.6:2032 to the
//! port where A sends (it knows the port: ports are in the SDP, and a range
//! can be scanned). Two moments:
//! - **race**: M's packet arrives after the answer, before A's first packet
//!   (RTP bleed: the classic attack on learning);
//! - **confirmed**: A and B have both sent; then M sends.
//!
//! Measured: *inject* (M's packet reaches B), *bleed* (B's next packet goes to
//! M instead of A), and in the race whether the bleed *persists* after A has
//! sent.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use rtpengine_tests::*;

/// One row of the threat table.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Race: M's packet is forwarded to B.
    inject_race: bool,
    /// Race: B's next packet goes to M.
    bleed_race: bool,
    /// Race: after A has sent, B's packets still go to M.
    bleed_persists: bool,
    /// Confirmed: M's packet is forwarded to B.
    inject_confirmed: bool,
    /// Confirmed: B's next packet goes to M.
    bleed_confirmed: bool,
}

/// Whether `payload` arrives on `s` within 300 ms (other packets are drained).
fn arrives(s: &UdpSocket, payload: &[u8]) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(300))).ok();
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = s.recv_from(&mut buf) {
        if &buf[..n] == payload {
            return true;
        }
    }
    false
}

/// Runs both moments against a daemon with `--endpoint-learning=mode` and
/// the call flags `flags`.
fn probe(tag: &str, mode: &str, flags: &[&str]) -> Outcome {
    require_root();
    let rig = Rig::new(tag, &[&format!("--endpoint-learning={mode}")]);
    let a = rig.socket("198.51.100.1:2010");
    let b = rig.socket("198.51.100.3:2012");
    let m = rig.socket("198.51.100.6:2032");
    let extra = || {
        if flags.is_empty() {
            Vec::new()
        } else {
            vec![("flags", strs(flags))]
        }
    };

    // Whether `p`, sent from `from` to the daemon's port `to`, reaches `at`.
    let reaches = |from: &UdpSocket, to: SocketAddr, p: &[u8], at: &UdpSocket| {
        from.send_to(p, to).unwrap();
        arrives(at, p)
    };

    // Race: M first.
    let (pa, pb) = rig.answered_call("race", extra);
    let inject_race = reaches(&m, pb, &rtp(0, 7000, 9000, 0xbad, 0xee), &b);
    let from_b = rtp(0, 2000, 4000, 0x5678, 1);
    let bleed_race = reaches(&b, pa, &from_b, &m);
    arrives(&a, &from_b);
    reaches(&a, pb, &rtp(0, 1000, 3000, 0x1234, 2), &b);
    let from_b = rtp(0, 2001, 4160, 0x5678, 3);
    let bleed_persists = reaches(&b, pa, &from_b, &m);
    arrives(&a, &from_b);

    // Confirmed: A and B first (after the learning window, so that
    // `delayed` confirms too).
    let (pa, pb) = rig.answered_call("confirmed", extra);
    std::thread::sleep(Duration::from_millis(3300));
    assert!(
        reaches(&a, pb, &rtp(0, 1100, 3000, 0x1234, 4), &b),
        "A's packet did not reach B"
    );
    assert!(
        reaches(&b, pa, &rtp(0, 2100, 4000, 0x5678, 5), &a),
        "B's packet did not reach A"
    );
    let inject_confirmed = reaches(&m, pb, &rtp(0, 7100, 9000, 0xbad, 0xef), &b);
    let bleed_confirmed = reaches(&b, pa, &rtp(0, 2101, 4160, 0x5678, 6), &m);
    Outcome {
        inject_race,
        bleed_race,
        bleed_persists,
        inject_confirmed,
        bleed_confirmed,
    }
}

/// One test per row: `row!(name, mode, [flags], inject_race, bleed_race,
/// bleed_persists, inject_confirmed, bleed_confirmed)`.
macro_rules! row {
    ($name:ident, $mode:literal, [$($flag:literal),*], $ir:expr, $br:expr, $bp:expr, $ic:expr, $bc:expr) => {
        #[test]
        #[ignore = "privileged: run with cargo xtask test"]
        fn $name() {
            let got = probe(stringify!($name), $mode, &[$($flag),*]);
            let want = Outcome {
                inject_race: $ir,
                bleed_race: $br,
                bleed_persists: $bp,
                inject_confirmed: $ic,
                bleed_confirmed: $bc,
            };
            assert_eq!(got, want, "{} with {:?}", $mode, &[$($flag),*] as &[&str]);
        }
    };
}

// The default: ranked candidates for 3 s; an exact SDP match confirms at once.
row!(heuristic, "heuristic", [], true, true, false, true, false);
row!(
    heuristic_strict,
    "heuristic",
    ["strict source"],
    true,
    true,
    false,
    false,
    false
);
row!(
    heuristic_handover,
    "heuristic",
    ["media handover"],
    true,
    true,
    false,
    true,
    true
);
// The first packet after the answer confirms: a stranger who wins the race
// keeps B's media, even with strict source (A is still accepted: its source
// is the announced address).
row!(immediate, "immediate", [], true, true, true, true, false);
row!(
    immediate_strict,
    "immediate",
    ["strict source"],
    true,
    true,
    true,
    false,
    false
);
// Follows the latest source for 3 s, then confirms the next one.
row!(delayed, "delayed", [], true, true, false, true, false);
row!(
    delayed_strict,
    "delayed",
    ["strict source"],
    true,
    true,
    false,
    false,
    false
);
// Never learns: media goes to the SDP address only.
row!(off, "off", [], true, false, false, true, false);
row!(
    off_strict,
    "off",
    ["strict source"],
    false,
    false,
    false,
    false,
    false
);
// Asymmetric: learns (for strict source) but always sends to the SDP address.
row!(
    asymmetric,
    "heuristic",
    ["asymmetric"],
    true,
    false,
    false,
    true,
    false
);
row!(
    asymmetric_strict,
    "heuristic",
    ["asymmetric", "strict source"],
    true,
    false,
    false,
    false,
    false
);
