//! `list sessions all|own|foreign|<call-id>`: the call table, and one call
//! in detail (its parties, media and ports), in upstream's layout.

use std::fmt::Write as _;

use super::Cli;
use crate::call::{Call, Party};
use crate::clock;
use crate::relay::MediaSocket;

/// Runs `list sessions` with the rest of the line.
pub(super) fn run(cli: &Cli, what: &str) -> String {
    if what.is_empty() {
        return super::MORE.to_owned();
    }
    // Every call here is our own (no foreign calls without Redis).
    let (all, none) = match what {
        "all" => (true, "No sessions on this media relay.\n"),
        "own" => (true, "No own sessions on this media relay.\n"),
        "foreign" => (false, "No foreign sessions on this media relay.\n"),
        id => return detail(cli, id),
    };
    let map = cli.calls.lock();
    let mut calls: Vec<&Call> = if all {
        map.values().collect()
    } else {
        Vec::new()
    };
    if calls.is_empty() {
        return none.to_owned();
    }
    // Newest first, as upstream lists them.
    calls.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
    let mut out = String::new();
    for c in calls {
        let _ = writeln!(
            out,
            "callid: {:>60} | deletionmark:{:>4} | created:{:>12} | proxy:{} | redis_keyspace:0 | foreign:no",
            c.id,
            yes_no(c.destroy_at_ms.is_some()),
            c.created.as_secs(),
            proxy(c),
        );
    }
    out
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn proxy(c: &Call) -> String {
    c.proxy.map(|p| p.to_string()).unwrap_or_default()
}

/// One call: its header and a block per party.
fn detail(cli: &Cli, id: &str) -> String {
    let found = cli.calls.with_call(id, |c| {
        let mut out = String::new();
        let _ = write!(
            out,
            "\ncallid: {}\ndeletionmark: {}\ncreated: {}\nproxy: {}\ntos: {}\n\
             last_signal: {}\nredis_keyspace: 0\nforeign: no\n\n",
            c.id,
            yes_no(c.destroy_at_ms.is_some()),
            c.created.as_secs(),
            proxy(c),
            c.tos.unwrap_or(0),
            clock::unix_secs(c.last_signal_ms),
        );
        for (i, p) in c.parties.iter().enumerate() {
            party(&mut out, c, i, p);
        }
        out.push('\n');
        out
    });
    found.unwrap_or_else(|| format!("\nCall ID not found ({id}).\n\n"))
}

/// A party's block: tag line, its peer, and its media with their ports.
fn party(out: &mut String, c: &Call, i: usize, p: &Party) {
    // The offerer is created first; a party without a tag is the callee
    // before its answer.
    let kind = match (&p.tag, i) {
        (None, _) => "UNKNOWN",
        (Some(_), 0) => "FROM_TAG",
        (Some(_), _) => "TO_TAG",
    };
    let now = clock::unix_now();
    let duration = now.saturating_sub(p.created_at);
    let _ = writeln!(
        out,
        "--- Tag '{}', type: {kind}, label '{}', branch '{}', callduration {}.{:06}",
        p.tag.as_deref().unwrap_or_default(),
        p.label.as_deref().unwrap_or_default(),
        p.via_branch.as_deref().unwrap_or_default(),
        duration.as_secs(),
        duration.subsec_micros(),
    );
    if let Some(peer) = p.peer.and_then(|j| c.parties.get(j)) {
        let tag = peer.tag.as_deref().unwrap_or_default();
        let _ = writeln!(out, "---     subscribed to '{tag}'");
        let _ = writeln!(out, "---     subscription of '{tag}'");
    }
    for (n, m) in p.medias.iter().enumerate() {
        let Some(socks) = &m.sockets else { continue };
        let codec = socks
            .rtp
            .rtp_seen()
            .and_then(|s| static_codec(s.payload_type()))
            .unwrap_or("unknown codec");
        let _ = writeln!(
            out,
            "------ Media #{} ({} over {}) using {codec}",
            n + 1,
            m.kind,
            m.protocol
        );
        for s in socks.shown() {
            port_line(out, c, s);
        }
    }
}

/// `-------- Port <local> <> <remote>, SSRC …, packets, bytes, errors, last`.
fn port_line(out: &mut String, c: &Call, s: &MediaSocket) {
    let info = s.info();
    let (rip, rport) = info
        .endpoint
        .map_or((String::new(), 0), |e| (e.ip().to_string(), e.port()));
    let last = match info.last_packet_ms {
        0 => c.created.as_secs(),
        ms => clock::unix_secs(ms),
    };
    let _ = writeln!(
        out,
        "-------- Port {:>15}:{:<5} <> {:>15}:{:<5}{}, SSRC {:x}, {} p, {} b, {} e, {} ts",
        info.local.ip().to_string(),
        info.local.port(),
        rip,
        rport,
        if s.is_rtcp { " (RTCP)" } else { "" },
        s.rtp_seen().map_or(0, |r| r.ssrc()),
        info.received.packets,
        info.received.bytes,
        info.received.errors,
        last,
    );
}

/// The name of a static RTP payload type (RFC 3551), as upstream prints
/// it; dynamic types need the SDP's rtpmap, which the call does not keep.
fn static_codec(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU/8000",
        3 => "GSM/8000",
        4 => "G723/8000",
        8 => "PCMA/8000",
        9 => "G722/8000",
        13 => "CN/8000",
        18 => "G729/8000",
        _ => return None,
    })
}
