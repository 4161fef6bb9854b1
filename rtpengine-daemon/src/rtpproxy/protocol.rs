//! The rtpproxy control protocol's wire format (`--listen-udp`), as the
//! `rtpproxy` modules of Kamailio and OpenSIPS speak it and upstream
//! rtpengine answers it: one datagram `<cookie> <command>`, one reply
//! `<cookie> <payload>\n`.
//!
//! Commands (letters case-insensitive):
//! - `V` → `20040107`; `VF <date>` → `1` for the capability dates upstream
//!   supports, else `0`.
//! - `U<flags> <call-id>[;<branch>] <addr> <port> <tag1>;<n> [<tag2>;<n> …]`
//!   (offer: the SDP's sender is tag1) and `L…` (answer: tag2 sends, tag1 is
//!   the offerer) → `<port> <address> <4|6>`.
//! - `D <call-id>[;<branch>] <tag1> [<tag2>]` → `0`.
//! - `Q <call-id>[;<branch>] <tag1> [<tag2>]` → `<ttl> <rtp packets> <rtcp packets> 0 0`.
//!
//! A U/L line that does not parse, but has a call-id, address and port,
//! gets those back (`<port> <addr>`: "do not proxy"), as upstream; anything
//! else is `E8`.

use std::net::IpAddr;

/// Capability dates upstream answers `1` for (`VF`).
const CAPABILITIES: &[&str] = &["20040107", "20050322", "20060704"];

/// The protocol version (`V`).
pub const VERSION: &str = "20040107";

/// A parsed datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The cookie, echoed in the reply.
    pub cookie: &'a str,
    /// What it asks.
    pub command: Command<'a>,
}

/// A command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `V` or `VF <date>`.
    Version {
        /// The date of a capability query (`VF`); `None` for plain `V`.
        capability: Option<&'a str>,
    },
    /// `U` (offer) or `L` (answer).
    Update(Update<'a>),
    /// `D`.
    Delete(Dialogue<'a>),
    /// `Q`.
    Query(Dialogue<'a>),
    /// A U/L line that did not parse: echo its port and address.
    Echo {
        /// The port as given.
        port: &'a str,
        /// The address as given.
        addr: &'a str,
    },
    /// Anything else: `E8`.
    Invalid,
}

/// `U` or `L`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update<'a> {
    /// `U` (offer) rather than `L` (answer).
    pub offer: bool,
    /// The flag letters after the command.
    pub flags: &'a str,
    /// Call-ID.
    pub call_id: &'a str,
    /// Via-branch after `;`, if any.
    pub branch: Option<&'a str>,
    /// Media address of the SDP's sender.
    pub addr: IpAddr,
    /// Its RTP port (0: the media is rejected).
    pub port: u16,
    /// The offerer's tag.
    pub tag1: &'a str,
    /// Media number, from 1.
    pub index: u32,
    /// The answerer's tag, once known.
    pub tag2: Option<&'a str>,
}

/// The call (and parties) a `D` or `Q` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialogue<'a> {
    /// Call-ID.
    pub call_id: &'a str,
    /// Via-branch after `;`, if any.
    pub branch: Option<&'a str>,
    /// First tag (without its `;n`).
    pub tag1: &'a str,
    /// Second tag (without its `;n`).
    pub tag2: Option<&'a str>,
}

impl Update<'_> {
    /// The interfaces the `I`/`E` letters choose, as upstream reads them:
    /// the first two such letters anywhere in the flags, the first for the
    /// SDP's sender, the second for its recipient; `I` is the interface
    /// named `internal`, `E` the one named `external`.
    pub fn directions(&self) -> [Option<Direction>; 2] {
        let mut out = [None, None];
        let letters = self.flags.chars().filter_map(|c| match c {
            'i' | 'I' => Some(Direction::Internal),
            'e' | 'E' => Some(Direction::External),
            _ => None,
        });
        for (slot, d) in out.iter_mut().zip(letters) {
            *slot = Some(d);
        }
        out
    }
}

/// An `I`/`E` letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `I`: interface `internal` (IPv4 when there is none).
    Internal,
    /// `E`: interface `external` (IPv6 when there is none).
    External,
}

impl Direction {
    /// The interface name the letter stands for.
    pub fn interface(self) -> &'static str {
        match self {
            Direction::Internal => "internal",
            Direction::External => "external",
        }
    }
}

/// Parses one datagram; `None` when it holds no cookie (no reply, as
/// upstream).
pub fn parse(msg: &str) -> Option<Datagram<'_>> {
    let msg = msg.strip_suffix('\n').unwrap_or(msg);
    let msg = msg.strip_suffix('\r').unwrap_or(msg);
    let mut words = msg.split_ascii_whitespace();
    let cookie = words.next()?;
    let words: Vec<&str> = words.collect();
    let command = match words.first() {
        None => Command::Invalid,
        Some(cmd) => parse_command(cmd, &words[1..]),
    };
    Some(Datagram { cookie, command })
}

fn parse_command<'a>(cmd: &'a str, args: &[&'a str]) -> Command<'a> {
    let mut chars = cmd.chars();
    let letter = chars.next().map(|c| c.to_ascii_uppercase());
    let flags = chars.as_str();
    match letter {
        Some('V') => Command::Version {
            capability: flags
                .starts_with(['F', 'f'])
                .then(|| args.first().copied().unwrap_or_default()),
        },
        Some(c @ ('U' | 'L')) => parse_update(c == 'U', flags, args).unwrap_or_else(|| {
            match args {
                // An address or port of the right shape that does not parse
                // (`300.1.2.3`, port 99999) is an error…
                [_, addr, _, ..] if looks_like_address(addr) && addr.parse::<IpAddr>().is_err() => {
                    Command::Invalid
                }
                [_, _, port, ..]
                    if !port.is_empty()
                        && port.bytes().all(|b| b.is_ascii_digit())
                        && port.parse::<u16>().is_err() =>
                {
                    Command::Invalid
                }
                // …anything else gets its port and address back, as upstream.
                [_, addr, port, ..] => Command::Echo { port, addr },
                _ => Command::Invalid,
            }
        }),
        Some(c @ ('D' | 'Q')) => match parse_dialogue(args) {
            Some(d) if c == 'D' => Command::Delete(d),
            Some(d) => Command::Query(d),
            None => Command::Invalid,
        },
        _ => Command::Invalid,
    }
}

/// Upstream's address pattern: digits and dots, or hex digits and colons.
fn looks_like_address(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || s.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
}

fn split_branch(s: &str) -> (&str, Option<&str>) {
    match s.split_once(';') {
        Some((id, b)) => (id, Some(b)),
        None => (s, None),
    }
}

/// `tag;n`.
fn tag_index(s: &str) -> Option<(&str, u32)> {
    let (tag, n) = s.split_once(';')?;
    (!tag.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| (tag, n.parse().ok()))
        .and_then(|(t, n)| Some((t, n?)))
}

fn parse_update<'a>(offer: bool, flags: &'a str, args: &[&'a str]) -> Option<Command<'a>> {
    let [id, addr, port, tag1, rest @ ..] = args else {
        return None;
    };
    let (call_id, branch) = split_branch(id);
    if call_id.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let addr: IpAddr = addr.parse().ok()?;
    let port: u16 = port.parse().ok()?;
    let (tag1, index) = tag_index(tag1)?;
    let tag2 = match rest.first() {
        None => None,
        Some(t) => Some(tag_index(t)?.0),
    };
    Some(Command::Update(Update {
        offer,
        flags,
        call_id,
        branch,
        addr,
        port,
        tag1,
        index: index.max(1),
        tag2,
    }))
}

fn parse_dialogue<'a>(args: &[&'a str]) -> Option<Dialogue<'a>> {
    let [id, tag1, rest @ ..] = args else {
        return None;
    };
    let (call_id, branch) = split_branch(id);
    let strip = |t: &'a str| t.split_once(';').map_or(t, |(t, _)| t);
    if call_id.is_empty() || rest.len() > 1 {
        return None;
    }
    Some(Dialogue {
        call_id,
        branch,
        tag1: strip(tag1),
        tag2: rest.first().map(|t| strip(t)),
    })
}

/// The capability answer for a `VF` date.
pub fn capability(date: &str) -> &'static str {
    if CAPABILITIES.contains(&date) {
        "1"
    } else {
        "0"
    }
}

/// A reply datagram.
pub fn reply(cookie: &str, payload: &str) -> Vec<u8> {
    format!("{cookie} {payload}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> Command<'_> {
        parse(s).unwrap().command
    }

    #[test]
    fn versions() {
        assert_eq!(cmd("c1 V"), Command::Version { capability: None });
        assert_eq!(cmd("c1 v"), Command::Version { capability: None });
        assert_eq!(
            cmd("c VF 20050322\r\n"),
            Command::Version {
                capability: Some("20050322")
            }
        );
        // Upstream 10.5 crashes on a bare VF; here it is an unknown date.
        assert_eq!(
            cmd("c VF"),
            Command::Version {
                capability: Some("")
            }
        );
        assert_eq!(capability("20050322"), "1");
        assert_eq!(capability("20071116"), "0");
        assert_eq!(capability(""), "0");
    }

    #[test]
    fn updates_as_kamailio_sends_them() {
        let Command::Update(u) =
            cmd("29593_4 UIE 1-30012@127.0.0.1 127.0.0.1 16000 30012SIPpTag001;1")
        else {
            panic!()
        };
        assert!(u.offer);
        assert_eq!(u.call_id, "1-30012@127.0.0.1");
        assert_eq!(
            (u.addr.to_string().as_str(), u.port, u.tag1, u.index),
            ("127.0.0.1", 16000, "30012SIPpTag001", 1)
        );
        assert_eq!(u.tag2, None);
        assert_eq!(
            u.directions(),
            [Some(Direction::Internal), Some(Direction::External)]
        );
        let Command::Update(l) = cmd("x LEI cid;z9hG4bK1 ::1 17000 ft;1 tt;1 extra") else {
            panic!()
        };
        assert!(!l.offer);
        assert_eq!((l.branch, l.tag2), (Some("z9hG4bK1"), Some("tt")));
        assert_eq!(
            l.directions(),
            [Some(Direction::External), Some(Direction::Internal)]
        );
        let Command::Update(z) = cmd("x Uc0,8,101xqE cid 10.0.0.1 0 ft;2") else {
            panic!()
        };
        assert_eq!((z.port, z.index), (0, 2));
        assert_eq!(z.directions(), [Some(Direction::External), None]);
    }

    #[test]
    fn unparseable_updates_echo_or_fail() {
        assert_eq!(
            cmd("m1 U call 1.2.3.4 4000 ftag"),
            Command::Echo {
                port: "4000",
                addr: "1.2.3.4"
            }
        );
        assert_eq!(
            cmd("m U call host.example 4000 ftag;1"),
            Command::Echo {
                port: "4000",
                addr: "host.example"
            }
        );
        assert_eq!(
            cmd("m U call 1.2.3.4 -1 ftag;1"),
            Command::Echo {
                port: "-1",
                addr: "1.2.3.4"
            }
        );
        // Upstream 10.5 allocates for port 99999 and fails 300.2.3.4: both
        // are errors here.
        assert_eq!(cmd("m U call 1.2.3.4 99999 ftag;1"), Command::Invalid);
        assert_eq!(cmd("m U call 300.2.3.4 4000 ftag;1"), Command::Invalid);
        assert_eq!(
            cmd("m U call fe80::1%lo 4000 ftag;1"),
            Command::Echo {
                port: "4000",
                addr: "fe80::1%lo"
            }
        );
        assert_eq!(cmd("m5 U"), Command::Invalid);
        assert_eq!(cmd("m3 X foo bar"), Command::Invalid);
        assert_eq!(cmd("m4"), Command::Invalid);
        assert_eq!(parse("   "), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn deletes_and_queries() {
        assert_eq!(
            cmd("d D cid ft tt"),
            Command::Delete(Dialogue {
                call_id: "cid",
                branch: None,
                tag1: "ft",
                tag2: Some("tt")
            })
        );
        assert_eq!(
            cmd("q Q cid;br ft;1 tt"),
            Command::Query(Dialogue {
                call_id: "cid",
                branch: Some("br"),
                tag1: "ft",
                tag2: Some("tt")
            })
        );
        assert_eq!(cmd("d D cid"), Command::Invalid);
        assert_eq!(cmd("q Q"), Command::Invalid);
    }

    #[test]
    fn replies() {
        assert_eq!(reply("c1", "20040107"), b"c1 20040107\n");
    }
}
