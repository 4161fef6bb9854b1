//! Trickle ICE SDP fragments (RFC 8840, `application/trickle-ice-sdpfrag`,
//! which Kamailio passes in an `offer` with the `fragment` flag): ICE
//! credentials and candidates per media section, no `v=`/`o=`/`s=`/`t=`.
//! Only what trickling needs is read; everything else is ignored.

/// One media section of a fragment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FragmentSection {
    /// `a=mid` (the section is matched by it, else by its position).
    pub mid: Option<String>,
    /// `a=ice-ufrag` (the section's, else the fragment's session-level).
    pub ufrag: Option<String>,
    /// `a=candidate` values.
    pub candidates: Vec<String>,
    /// `a=end-of-candidates`.
    pub end: bool,
}

/// Why a fragment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// Not text.
    #[error("SDP fragment is not UTF-8")]
    NotText,
    /// Neither a section nor a candidate.
    #[error("SDP fragment without media section or candidate")]
    Empty,
}

/// Parses a fragment. Session-level lines before the first `m=` (a
/// ufrag, candidates of a fragment without sections) apply to the first
/// section.
pub fn parse_fragment(body: &[u8]) -> Result<Vec<FragmentSection>, FragmentError> {
    let text = std::str::from_utf8(body).map_err(|_| FragmentError::NotText)?;
    let mut session = FragmentSection::default();
    let mut sections: Vec<FragmentSection> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("m=") {
            sections.push(FragmentSection::default());
            continue;
        }
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
        let s = sections.last_mut().unwrap_or(&mut session);
        match name {
            "mid" => s.mid = Some(value.to_owned()),
            "ice-ufrag" => s.ufrag = Some(value.to_owned()),
            "candidate" => s.candidates.push(value.to_owned()),
            "end-of-candidates" => s.end = true,
            _ => {}
        }
    }
    if sections.is_empty() {
        if session.candidates.is_empty() && !session.end {
            return Err(FragmentError::Empty);
        }
        return Ok(vec![session]);
    }
    for s in &mut sections {
        if s.ufrag.is_none() {
            s.ufrag.clone_from(&session.ufrag);
        }
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_candidates_and_credentials() {
        // RFC 8840 §9's example, shortened.
        let body = b"a=ice-pwd:asd88fgpdd777uzjYhagZg\r\na=ice-ufrag:8hhY\r\n\
            m=audio 9 RTP/AVP 0\r\na=mid:1\r\n\
            a=candidate:1 1 UDP 2130706431 198.51.100.1 5000 typ host\r\n\
            a=candidate:2 1 UDP 1694498815 192.0.2.3 5000 typ srflx raddr 10.0.1.1 rport 8998\r\n\
            a=end-of-candidates\r\n\
            m=video 9 RTP/AVP 96\r\na=mid:2\r\na=ice-ufrag:Other\r\n";
        let s = parse_fragment(body).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].mid.as_deref(), Some("1"));
        assert_eq!(s[0].ufrag.as_deref(), Some("8hhY"));
        assert_eq!(s[0].candidates.len(), 2);
        assert!(s[0].end);
        assert_eq!(s[1].ufrag.as_deref(), Some("Other"));
        assert!(s[1].candidates.is_empty() && !s[1].end);
    }

    #[test]
    fn bare_candidates_and_junk() {
        let s = parse_fragment(b"a=candidate:1 1 UDP 1 198.51.100.1 5000 typ host\n").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].mid, None);
        assert_eq!(parse_fragment(b"v=0\n"), Err(FragmentError::Empty));
        assert_eq!(parse_fragment(&[0xff, 0xfe]), Err(FragmentError::NotText));
    }
}
