//! SDP parser (RFC 8866 line syntax, lenient where phones are sloppy: LF or
//! CRLF line ends, trailing whitespace, unknown line types kept).

use std::net::IpAddr;

use super::{Attribute, Connection, Media, Origin, Session};

/// Largest SDP accepted.
pub const MAX_SDP: usize = 64 * 1024;
/// Most media sections accepted.
pub const MAX_MEDIA: usize = 64;

/// Why an SDP body was rejected. Every variant is answered with upstream's
/// `Failed to parse SDP`; the detail goes to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not UTF-8 text.
    #[error("SDP is not valid UTF-8")]
    NotUtf8,
    /// Larger than [`MAX_SDP`] or more than [`MAX_MEDIA`] media sections.
    #[error("SDP too large")]
    TooLarge,
    /// Does not start with `v=0`.
    #[error("SDP must start with v=0")]
    NoVersion,
    /// A line that is not `<letter>=<value>`.
    #[error("line {0}: not <type>=<value>")]
    BadLine(usize),
    /// A malformed `o=` line, or none.
    #[error("missing or malformed o= line")]
    BadOrigin,
    /// A malformed `c=` line.
    #[error("line {0}: malformed c= line")]
    BadConnection(usize),
    /// A malformed `m=` line.
    #[error("line {0}: malformed m= line")]
    BadMedia(usize),
    /// No `s=` line.
    #[error("missing s= line")]
    NoName,
}

/// Parses an SDP body.
pub fn parse(body: &[u8]) -> Result<Session, SdpError> {
    if body.len() > MAX_SDP {
        return Err(SdpError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).trim_end())
        .enumerate()
        // A blank line ends the SDP (upstream stops there too): what
        // follows is not part of it.
        .skip_while(|(_, l)| l.is_empty())
        .take_while(|(_, l)| !l.is_empty())
        .map(|(n, l)| (n + 1, l));

    match lines.next() {
        Some((_, l)) if l.trim() == "v=0" => {}
        _ => return Err(SdpError::NoVersion),
    }
    let mut origin = None;
    let mut name = None;
    let mut session = Session {
        origin: Origin {
            username: String::new(),
            session_id: String::new(),
            version: String::new(),
            net_type: String::new(),
            addr_type: String::new(),
            address: String::new(),
        },
        name: String::new(),
        info: Vec::new(),
        connection: None,
        bandwidth: Vec::new(),
        timing: Vec::new(),
        attributes: Vec::new(),
        media: Vec::new(),
    };

    for (n, line) in lines {
        let (ty, value) = split_line(line).ok_or(SdpError::BadLine(n))?;
        if ty == 'm' {
            if session.media.len() >= MAX_MEDIA {
                return Err(SdpError::TooLarge);
            }
            session
                .media
                .push(parse_media_line(value).ok_or(SdpError::BadMedia(n))?);
            continue;
        }
        if let Some(m) = session.media.last_mut() {
            match ty {
                'c' => {
                    m.connection = Some(parse_connection(value).ok_or(SdpError::BadConnection(n))?)
                }
                'b' => m.bandwidth.push(value.to_owned()),
                'i' => m.info = Some(value.to_owned()),
                'a' => m.attributes.push(parse_attribute(value)),
                'k' => m.attributes.push(Attribute {
                    name: "k=".into(),
                    value: Some(value.to_owned()),
                }),
                _ => return Err(SdpError::BadLine(n)),
            }
            continue;
        }
        match ty {
            'o' => origin = Some(parse_origin(value).ok_or(SdpError::BadOrigin)?),
            's' => name = Some(value.to_owned()),
            'i' | 'u' | 'e' | 'p' => session.info.push((ty, value.to_owned())),
            'c' => {
                session.connection =
                    Some(parse_connection(value).ok_or(SdpError::BadConnection(n))?)
            }
            'b' => session.bandwidth.push(value.to_owned()),
            't' | 'r' | 'z' => session.timing.push((ty, value.to_owned())),
            'a' => session.attributes.push(parse_attribute(value)),
            'k' => session.attributes.push(Attribute {
                name: "k=".into(),
                value: Some(value.to_owned()),
            }),
            _ => return Err(SdpError::BadLine(n)),
        }
    }
    session.origin = origin.ok_or(SdpError::BadOrigin)?;
    session.name = name.ok_or(SdpError::NoName)?;
    Ok(session)
}

fn split_line(line: &str) -> Option<(char, &str)> {
    let mut chars = line.chars();
    let ty = chars.next()?;
    if !ty.is_ascii_lowercase() || chars.next() != Some('=') {
        return None;
    }
    Some((ty, &line[2..]))
}

fn parse_origin(v: &str) -> Option<Origin> {
    let f: Vec<&str> = v.split_whitespace().collect();
    let [username, session_id, version, net_type, addr_type, address] = f.as_slice() else {
        return None;
    };
    Some(Origin {
        username: (*username).to_owned(),
        session_id: (*session_id).to_owned(),
        version: (*version).to_owned(),
        net_type: (*net_type).to_owned(),
        addr_type: (*addr_type).to_owned(),
        address: (*address).to_owned(),
    })
}

fn parse_connection(v: &str) -> Option<Connection> {
    let mut it = v.split_whitespace();
    let (net, ty, addr) = (it.next()?, it.next()?, it.next()?);
    if net != "IN" || it.next().is_some() {
        return None;
    }
    // Multicast TTL / count suffixes are not relayable; reject them.
    let address: IpAddr = addr.parse().ok()?;
    match (ty, address) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(Connection { address }),
        _ => None,
    }
}

fn parse_media_line(v: &str) -> Option<Media> {
    let mut it = v.split_whitespace();
    let kind = it.next()?.to_owned();
    let port_field = it.next()?;
    let (port, port_count) = match port_field.split_once('/') {
        Some((p, c)) => (p.parse().ok()?, Some(c.parse().ok()?)),
        None => (port_field.parse().ok()?, None),
    };
    let protocol = it.next()?.to_owned();
    let formats: Vec<String> = it.map(str::to_owned).collect();
    // A rejected section may come as `m=application 0 *` (no protocol,
    // no formats); anything else needs at least one format.
    if formats.is_empty() && !(port == 0 && protocol == "*") {
        return None;
    }
    Some(Media {
        kind,
        port,
        port_count,
        protocol,
        formats,
        info: None,
        connection: None,
        bandwidth: Vec::new(),
        attributes: Vec::new(),
    })
}

fn parse_attribute(v: &str) -> Attribute {
    match v.split_once(':') {
        Some((n, val)) => Attribute {
            name: n.to_owned(),
            value: Some(val.to_owned()),
        },
        None => Attribute {
            name: v.to_owned(),
            value: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::Direction;

    const OFFER: &str = "v=0\r\no=- 1545997027 1 IN IP4 198.51.100.1\r\ns=tester\r\nt=0 0\r\nm=audio 2010 RTP/AVP 0 8\r\nc=IN IP4 198.51.100.1\r\na=sendrecv\r\n";

    #[test]
    fn parses_basic_offer() {
        let s = parse(OFFER.as_bytes()).unwrap();
        assert_eq!(s.origin.session_id, "1545997027");
        assert_eq!(s.name, "tester");
        assert_eq!(s.timing, vec![('t', "0 0".to_owned())]);
        assert_eq!(s.media.len(), 1);
        let m = &s.media[0];
        assert_eq!(
            (m.kind.as_str(), m.port, m.protocol.as_str()),
            ("audio", 2010, "RTP/AVP")
        );
        assert_eq!(m.formats, vec!["0", "8"]);
        assert_eq!(m.address(&s), Some("198.51.100.1".parse().unwrap()));
        assert_eq!(m.direction(&s), Direction::SendRecv);
    }

    #[test]
    fn lf_only_and_session_level_defaults() {
        let s = parse(b"v=0\no=- 1 1 IN IP6 ::1\ns=-\nc=IN IP6 2001:db8::1\nt=0 0\na=sendonly\nm=audio 4000 RTP/AVP 0\na=rtcp:4005 IN IP6 2001:db8::2\na=rtcp-mux\n").unwrap();
        let m = &s.media[0];
        assert_eq!(m.address(&s), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(m.direction(&s), Direction::SendOnly);
        assert_eq!(
            m.rtcp_attr(),
            Some((4005, Some("2001:db8::2".parse().unwrap())))
        );
        assert!(m.rtcp_mux());
    }

    #[test]
    fn errors() {
        let cases: &[(&[u8], SdpError)] = &[
            (b"", SdpError::NoVersion),
            (b"o=- 1 1 IN IP4 1.2.3.4\r\n", SdpError::NoVersion),
            (b"v=0\r\ns=x\r\n", SdpError::BadOrigin),
            (b"v=0\r\no=- 1 1 IN IP4\r\ns=x\r\n", SdpError::BadOrigin),
            (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n", SdpError::NoName),
            (
                b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\ngarbage\r\n",
                SdpError::BadLine(4),
            ),
            (
                b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nc=IN IP4 999.1.1.1\r\n",
                SdpError::BadConnection(4),
            ),
            (
                b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nc=IN IP6 1.1.1.1\r\n",
                SdpError::BadConnection(4),
            ),
            (
                b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nc=IN IP4 224.1.1.1/127\r\n",
                SdpError::BadConnection(4),
            ),
            (
                b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nm=audio x RTP/AVP 0\r\n",
                SdpError::BadMedia(4),
            ),
            (
                b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nm=audio 70000 RTP/AVP 0\r\n",
                SdpError::BadMedia(4),
            ),
            (
                b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nm=audio 1000 RTP/AVP\r\n",
                SdpError::BadMedia(4),
            ),
            (
                b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nm=audio 1000 RTP/AVP 0\r\nt=0 0\r\n",
                SdpError::BadLine(5),
            ),
            (b"v=0\r\no=\xff\r\n", SdpError::NotUtf8),
        ];
        for (input, err) in cases {
            assert_eq!(
                parse(input).as_ref().err(),
                Some(err),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let huge = vec![b'a'; MAX_SDP + 1];
        assert_eq!(parse(&huge), Err(SdpError::TooLarge));
        let mut many = String::from("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\n");
        for _ in 0..=MAX_MEDIA {
            many.push_str("m=audio 1000 RTP/AVP 0\r\n");
        }
        assert_eq!(parse(many.as_bytes()), Err(SdpError::TooLarge));
    }
}
