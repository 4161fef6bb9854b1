//! `sdp-attr`: add, remove and substitute `a=` lines of the SDP the daemon
//! writes, at session level (`none`/`global`) or per media type.
//!
//! Applied to the finished text, so the lines the daemon writes itself
//! (`a=rtpmap`, `a=fmtp`, the direction, `a=rtcp`, `a=ptime`) are reached
//! the same as the ones passed through. A pattern matches a line by its
//! attribute name (`fmtp`), its name and first token (`fmtp:101`) or the
//! whole value (`fmtp:101 0-15`), case-insensitively as upstream. (Upstream
//! refuses the bare name for lines it generates itself with a tag, e.g.
//! `fmtp`; here the bare name matches every line of that name, generated
//! or not, which is what the rule says for passed-through lines.)
//!
//! The changes are textual: nothing else in the call sees them (upstream's
//! rule too).

use std::fmt;

/// Media types a scope may name (upstream's `codec_get_type` list); `none`
/// and `global` are the session level.
pub const MEDIA_TYPES: &[&str] = &["audio", "video", "text", "application", "image", "message"];

/// Most operations one request may carry, over all scopes: a bound on the
/// work a single request can ask for.
pub const MAX_OPS: usize = 256;

/// The operations for one scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeOps {
    /// Lines to append (without `a=`), in order.
    pub add: Vec<String>,
    /// Patterns whose lines are dropped.
    pub remove: Vec<String>,
    /// (pattern, replacement) pairs; the first match wins.
    pub substitute: Vec<(String, String)>,
}

impl ScopeOps {
    fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && self.substitute.is_empty()
    }

    fn len(&self) -> usize {
        self.add.len() + self.remove.len() + self.substitute.len()
    }
}

/// All `sdp-attr` operations of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrOps {
    /// Session level.
    pub session: ScopeOps,
    /// Per media type (lower case), in the order first named.
    pub media: Vec<(String, ScopeOps)>,
}

/// Why an `sdp-attr` operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttrOpError {
    /// A scope that is neither `none`/`global` nor a media type.
    #[error("unsupported sdp section '{0}'")]
    Scope(String),
    /// A command other than `add`, `remove`, `substitute`.
    #[error("unknown manipulation command '{0}'")]
    Command(String),
    /// A `substitute` that is not a `from>to` pair.
    #[error("invalid substitute '{0}'")]
    Substitute(String),
    /// An empty value, or one with a line break (it would inject lines).
    #[error("invalid attribute value {0:?}")]
    Value(String),
    /// More than [`MAX_OPS`] operations.
    #[error("more than {MAX_OPS} sdp-attr operations")]
    TooMany,
}

/// The three commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrCommand {
    /// `add`
    Add,
    /// `remove`
    Remove,
    /// `substitute`
    Substitute,
}

impl AttrCommand {
    /// Parses a command name (case-insensitive).
    pub fn parse(name: &str) -> Result<AttrCommand, AttrOpError> {
        match name.to_ascii_lowercase().as_str() {
            "add" => Ok(AttrCommand::Add),
            "remove" => Ok(AttrCommand::Remove),
            "substitute" => Ok(AttrCommand::Substitute),
            _ => Err(AttrOpError::Command(name.to_owned())),
        }
    }
}

impl fmt::Display for AttrCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttrCommand::Add => "add",
            AttrCommand::Remove => "remove",
            AttrCommand::Substitute => "substitute",
        })
    }
}

/// Decodes the flag-form escapes: `--` for `=`, `..` for a space.
pub fn unescape(s: &str) -> String {
    s.replace("--", "=").replace("..", " ")
}

impl AttrOps {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.session.is_empty() && self.media.iter().all(|(_, o)| o.is_empty())
    }

    fn len(&self) -> usize {
        self.session.len() + self.media.iter().map(|(_, o)| o.len()).sum::<usize>()
    }

    fn scope_mut(&mut self, scope: &str) -> Result<&mut ScopeOps, AttrOpError> {
        let lower = scope.to_ascii_lowercase();
        if lower == "none" || lower == "global" {
            return Ok(&mut self.session);
        }
        if !MEDIA_TYPES.contains(&lower.as_str()) {
            return Err(AttrOpError::Scope(scope.to_owned()));
        }
        let i = match self.media.iter().position(|(t, _)| *t == lower) {
            Some(i) => i,
            None => {
                self.media.push((lower, ScopeOps::default()));
                self.media.len() - 1
            }
        };
        Ok(&mut self.media[i].1)
    }

    /// Adds one operation. `value` is the attribute (without `a=`); for
    /// `substitute`, `to` is the replacement.
    pub fn push(
        &mut self,
        scope: &str,
        cmd: AttrCommand,
        value: &str,
        to: Option<&str>,
    ) -> Result<(), AttrOpError> {
        if self.len() >= MAX_OPS {
            return Err(AttrOpError::TooMany);
        }
        let valid = |v: &str| !v.is_empty() && !v.contains(['\r', '\n']);
        if !valid(value) || to.is_some_and(|t| !valid(t)) {
            return Err(AttrOpError::Value(format!(
                "{value}{}",
                to.unwrap_or_default()
            )));
        }
        let value = value.strip_prefix("a=").unwrap_or(value).to_owned();
        let ops = self.scope_mut(scope)?;
        match cmd {
            AttrCommand::Add => {
                if !ops.add.contains(&value) {
                    ops.add.push(value);
                }
            }
            AttrCommand::Remove => ops.remove.push(value),
            AttrCommand::Substitute => {
                let to = to.ok_or_else(|| AttrOpError::Substitute(value.clone()))?;
                let to = to.strip_prefix("a=").unwrap_or(to).to_owned();
                ops.substitute.push((value, to));
            }
        }
        Ok(())
    }

    /// Parses the flag form `<scope>-<value>` (the part after
    /// `sdp-attr-<command>-`), with `--`/`..` escapes and `from>to` for
    /// `substitute`.
    pub fn push_flag(&mut self, cmd: AttrCommand, rest: &str) -> Result<(), AttrOpError> {
        let (scope, value) = rest
            .split_once('-')
            .ok_or_else(|| AttrOpError::Scope(rest.to_owned()))?;
        let value = unescape(value);
        match cmd {
            AttrCommand::Substitute => {
                let (from, to) = value
                    .split_once('>')
                    .filter(|(f, t)| !f.is_empty() && !t.is_empty())
                    .ok_or_else(|| AttrOpError::Substitute(value.clone()))?;
                self.push(scope, cmd, from, Some(to))
            }
            _ => self.push(scope, cmd, &value, None),
        }
    }
}

/// Whether `pattern` names the attribute line `attr` (`name[:value]`):
/// its name, its name and first token, or all of it.
fn matches(pattern: &str, attr: &str) -> bool {
    let name_end = attr.find(':').unwrap_or(attr.len());
    let tag_end = attr[name_end..]
        .find(' ')
        .map_or(attr.len(), |i| name_end + i);
    [name_end, tag_end, attr.len()]
        .iter()
        .any(|&end| attr[..end].eq_ignore_ascii_case(pattern))
}

/// What to do with one attribute line.
fn rewrite<'a>(ops: &'a ScopeOps, attr: &str) -> Option<Option<&'a str>> {
    if ops.remove.iter().any(|p| matches(p, attr)) {
        return Some(None);
    }
    ops.substitute
        .iter()
        .find(|(p, _)| matches(p, attr))
        .map(|(_, to)| Some(to.as_str()))
}

/// Applies `ops` to a written SDP (CRLF lines).
pub fn apply(sdp: &[u8], ops: &AttrOps) -> Vec<u8> {
    if ops.is_empty() {
        return sdp.to_vec();
    }
    let text = String::from_utf8_lossy(sdp);
    let mut out = String::with_capacity(text.len() + 64);
    let none = ScopeOps::default();
    let scope_for = |kind: Option<&str>| -> &ScopeOps {
        match kind {
            None => &ops.session,
            Some(k) => ops
                .media
                .iter()
                .find(|(t, _)| t.eq_ignore_ascii_case(k))
                .map_or(&none, |(_, o)| o),
        }
    };
    let mut current = scope_for(None);
    let mut section: Vec<&str> = Vec::new();
    let flush = |out: &mut String, section: &mut Vec<&str>, scope: &ScopeOps| {
        for line in section.drain(..) {
            match line.strip_prefix("a=") {
                Some(attr) => match rewrite(scope, attr) {
                    None => push_line(out, line),
                    Some(None) => {}
                    Some(Some(to)) => {
                        out.push_str("a=");
                        push_line(out, to);
                    }
                },
                None => push_line(out, line),
            }
        }
        for a in &scope.add {
            out.push_str("a=");
            push_line(out, a);
        }
    };
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if let Some(m) = line.strip_prefix("m=") {
            flush(&mut out, &mut section, current);
            current = scope_for(Some(m.split(' ').next().unwrap_or_default()));
        }
        section.push(line);
    }
    flush(&mut out, &mut section, current);
    out.into_bytes()
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
        m=audio 4000 RTP/AVP 0 101\r\nc=IN IP4 192.0.2.1\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\na=sendrecv\r\na=rtcp:4001\r\na=ptime:20\r\n\
        m=video 4002 RTP/AVP 96\r\nc=IN IP4 192.0.2.1\r\na=rtpmap:96 VP8/90000\r\na=sendrecv\r\na=rtcp:4003\r\n";

    fn run(ops: &AttrOps) -> String {
        String::from_utf8(apply(SDP.as_bytes(), ops)).unwrap()
    }

    #[test]
    fn nothing_to_do_is_identity() {
        assert_eq!(run(&AttrOps::default()), SDP);
    }

    #[test]
    fn add_goes_to_the_end_of_its_scope_once() {
        let mut o = AttrOps::default();
        o.push("global", AttrCommand::Add, "foo:1", None).unwrap();
        o.push("AUDIO", AttrCommand::Add, "a=x-new", None).unwrap();
        o.push("audio", AttrCommand::Add, "x-new", None).unwrap();
        let got = run(&o);
        assert!(
            got.contains("a=group:BUNDLE 0 1\r\na=foo:1\r\nm=audio"),
            "{got}"
        );
        assert!(got.contains("a=ptime:20\r\na=x-new\r\nm=video"), "{got}");
        assert_eq!(got.matches("x-new").count(), 1);
        assert!(got.ends_with("a=rtcp:4003\r\n"));
    }

    #[test]
    fn remove_by_name_tag_or_whole_value() {
        let mut o = AttrOps::default();
        for p in ["ptime", "rtpmap:101", "FMTP:101 0-15", "rtcp:9"] {
            o.push("audio", AttrCommand::Remove, p, None).unwrap();
        }
        o.push("none", AttrCommand::Remove, "group", None).unwrap();
        let got = run(&o);
        assert!(
            !got.contains("ptime") && !got.contains("telephone-event") && !got.contains("fmtp")
        );
        assert!(!got.contains("group"));
        // A partial value is not a match; video is untouched.
        assert!(got.contains("a=rtcp:4001\r\n") && got.contains("a=rtpmap:96 VP8/90000"));
        assert!(got.contains("a=rtpmap:0 PCMU/8000"));
    }

    #[test]
    fn substitute_and_flag_form() {
        let mut o = AttrOps::default();
        o.push_flag(AttrCommand::Substitute, "audio-sendrecv>sendonly")
            .unwrap();
        o.push_flag(AttrCommand::Add, "video-foo--bar..baz")
            .unwrap();
        o.push_flag(AttrCommand::Remove, "video-rtcp").unwrap();
        let got = run(&o);
        assert!(
            got.contains("a=fmtp:101 0-15\r\na=sendonly\r\na=rtcp:4001"),
            "{got}"
        );
        assert!(got.ends_with("a=sendrecv\r\na=foo=bar baz\r\n"), "{got}");
    }

    #[test]
    fn errors() {
        let mut o = AttrOps::default();
        assert_eq!(
            o.push("other", AttrCommand::Add, "x", None),
            Err(AttrOpError::Scope("other".into()))
        );
        assert_eq!(
            o.push_flag(AttrCommand::Substitute, "audio-nothing"),
            Err(AttrOpError::Substitute("nothing".into()))
        );
        assert!(AttrCommand::parse("frobnicate").is_err());
        assert!(matches!(
            o.push("audio", AttrCommand::Add, "x\r\nm=audio 1 RTP/AVP 0", None),
            Err(AttrOpError::Value(_))
        ));
        assert!(matches!(
            o.push("audio", AttrCommand::Substitute, "x", Some("")),
            Err(AttrOpError::Value(_))
        ));
        for i in 0..MAX_OPS {
            o.push("audio", AttrCommand::Remove, &i.to_string(), None)
                .unwrap();
        }
        assert_eq!(
            o.push("audio", AttrCommand::Remove, "x", None),
            Err(AttrOpError::TooMany)
        );
    }
}
