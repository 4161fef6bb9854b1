//! Codec manipulation without transcoding: which payload types of a media
//! section are written onwards (`codec` strip/except/offer/mask, the answer
//! narrowed to what was offered, `single codec`).
//!
//! Everything here only removes or reorders payload types of the `m=`
//! line; the writer drops the `a=rtpmap`/`a=fmtp`/`a=rtcp-fb` lines of
//! payload types no longer listed. Behaviour follows upstream's codec store
//! (checked against rtpengine 10.5.3.5 side by side):
//! - names match case-insensitively, by encoding (`opus`), by the rtpmap
//!   text (`opus/48000/2`) or by encoding/rate/channels (`PCMU/8000/1`);
//!   payload type numbers are not names;
//! - `strip`/`mask`/`consume` remove; `all`/`full` remove everything not in
//!   `except`; `offer` restores stripped codecs, appended in its own order;
//! - a supplemental codec (`telephone-event`, `CN`) goes when the last
//!   codec of its clock rate went;
//! - a media left without codecs gets its list back, unless `allow no
//!   codec media` asks for it to be rejected.

use super::{static_rtpmap, Media};

/// Most codec names one request may list (all lists together).
pub const MAX_CODEC_NAMES: usize = 128;

/// The `codec` options of an offer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodecOps {
    /// `strip`, `mask` and `consume` (the same without transcoding).
    pub strip: Vec<String>,
    /// `except`: kept through `strip=all`.
    pub except: Vec<String>,
    /// `offer`: restored from the stripped ones, in this order.
    pub offer: Vec<String>,
}

impl CodecOps {
    /// Whether the options change nothing.
    pub fn is_empty(&self) -> bool {
        self.strip.is_empty() && self.offer.is_empty()
    }

    /// How many names the lists hold.
    pub fn len(&self) -> usize {
        self.strip.len() + self.except.len() + self.offer.len()
    }
}

/// One payload type of a media section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// Payload type as written in `m=`.
    pub pt: String,
    /// Encoding name (`opus`), empty when unknown.
    pub encoding: String,
    /// Clock rate, 0 when unknown.
    pub rate: u32,
    /// Channels (1 when not given).
    pub channels: u32,
    /// The rtpmap text (`opus/48000/2`), empty when unknown.
    pub rtpmap: String,
}

impl Codec {
    /// `telephone-event` and comfort noise: they go with the codecs of
    /// their clock rate.
    pub fn supplemental(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("telephone-event")
            || self.encoding.eq_ignore_ascii_case("CN")
    }

    /// Whether `name` names this codec.
    pub fn named(&self, name: &str) -> bool {
        if self.encoding.is_empty() {
            return false;
        }
        let full = format!("{}/{}/{}", self.encoding, self.rate, self.channels);
        [self.encoding.as_str(), self.rtpmap.as_str(), full.as_str()]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }

    /// Same codec as `other` (encoding, rate, channels), whatever its
    /// payload type number.
    pub fn same_as(&self, other: &Codec) -> bool {
        !self.encoding.is_empty()
            && self.encoding.eq_ignore_ascii_case(&other.encoding)
            && self.rate == other.rate
            && self.channels == other.channels
    }
}

/// The payload types of an RTP media section, each once, in `m=` order.
pub fn codecs(m: &Media) -> Vec<Codec> {
    let mut out: Vec<Codec> = Vec::with_capacity(m.formats.len());
    for pt in &m.formats {
        if out.iter().any(|c| c.pt == *pt) {
            continue;
        }
        let rtpmap = m
            .attributes
            .iter()
            .filter(|a| a.name == "rtpmap")
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| {
                let (p, enc) = v.split_once(' ')?;
                (p == pt).then(|| enc.trim().to_owned())
            })
            .or_else(|| static_rtpmap(pt).map(str::to_owned))
            .unwrap_or_default();
        let mut parts = rtpmap.split('/');
        let encoding = parts.next().unwrap_or_default().to_owned();
        let rate = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
        let channels = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
        out.push(Codec {
            pt: pt.clone(),
            encoding,
            rate,
            channels,
            rtpmap,
        });
    }
    out
}

/// What [`apply_offer`] did to a media section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The list changed or stayed; the media goes on.
    Kept,
    /// Nothing was left and `allow no codec media` was set: reject it.
    Empty,
    /// Nothing was left: the original list was put back (upstream calls it
    /// a usage error and does the same).
    Restored,
}

/// Applies `ops` to the payload types of `m`.
pub fn apply_offer(m: &mut Media, ops: &CodecOps, allow_empty: bool) -> Outcome {
    if ops.is_empty() || !m.is_rtp() {
        return Outcome::Kept;
    }
    let orig = codecs(m);
    let all = ops
        .strip
        .iter()
        .any(|s| s.eq_ignore_ascii_case("all") || s.eq_ignore_ascii_case("full"));
    let mut kept: Vec<&Codec> = orig
        .iter()
        .filter(|c| {
            let stripped = if all {
                !ops.except.iter().any(|e| c.named(e))
            } else {
                ops.strip.iter().any(|s| c.named(s))
            };
            !stripped
        })
        .collect();
    for name in &ops.offer {
        for c in orig.iter().filter(|c| c.named(name)) {
            if !kept.iter().any(|k| k.pt == c.pt) {
                kept.push(c);
            }
        }
    }
    if kept.len() != orig.len() {
        kept = drop_orphan_supplementals(&orig, kept);
    }
    let changed = kept.len() != orig.len() || kept.iter().zip(&orig).any(|(k, o)| k.pt != o.pt);
    if !changed {
        return Outcome::Kept;
    }
    if kept.is_empty() {
        if allow_empty {
            m.port = 0;
            m.formats = vec!["0".to_owned()];
            m.attributes
                .retain(|a| !matches!(a.name.as_str(), "rtpmap" | "fmtp" | "rtcp-fb"));
            return Outcome::Empty;
        }
        return Outcome::Restored;
    }
    m.formats = kept.iter().map(|c| c.pt.clone()).collect();
    Outcome::Kept
}

/// Supplemental codecs whose clock rate had a real codec before and has
/// none left.
fn drop_orphan_supplementals<'a>(orig: &[Codec], kept: Vec<&'a Codec>) -> Vec<&'a Codec> {
    let real_at =
        |list: &[&Codec], rate: u32| list.iter().any(|c| !c.supplemental() && c.rate == rate);
    let before: Vec<&Codec> = orig.iter().collect();
    let now = kept.clone();
    kept.into_iter()
        .filter(|c| !c.supplemental() || !real_at(&before, c.rate) || real_at(&now, c.rate))
        .collect()
}

/// Narrows an answer to the codecs that were offered to its sender
/// (`offered`), as upstream does: an answerer cannot pick a codec it was
/// not offered. Unknown encodings (no rtpmap) are matched by payload type.
/// With `single`, only the first real codec stays, with the supplemental
/// codecs. Returns whether anything changed.
pub fn narrow_answer(m: &mut Media, offered: &[Codec], single: bool) -> bool {
    if !m.is_rtp() {
        return false;
    }
    let answer = codecs(m);
    let mut kept: Vec<&Codec> = answer
        .iter()
        .filter(|c| {
            offered.is_empty()
                || offered.iter().any(|o| {
                    if c.encoding.is_empty() || o.encoding.is_empty() {
                        o.pt == c.pt
                    } else {
                        o.same_as(c)
                    }
                })
        })
        .collect();
    if single {
        let mut seen_real = false;
        kept.retain(|c| {
            if c.supplemental() {
                return true;
            }
            let first = !seen_real;
            seen_real = true;
            first
        });
    }
    // An answer with nothing we offered is left alone: rejecting it here
    // would cut the call for a mismatch the endpoints may well handle.
    if kept.is_empty() || kept.len() == answer.len() {
        return false;
    }
    m.formats = kept.iter().map(|c| c.pt.clone()).collect();
    true
}

/// Moves the codec that is `preferred` (same encoding, rate, channels) to
/// the front of `m`'s payload types, if it is there (`reuse codecs`).
pub fn prefer(m: &mut Media, preferred: &Codec) {
    let Some(c) = codecs(m).into_iter().find(|c| c.same_as(preferred)) else {
        return;
    };
    if let Some(i) = m.formats.iter().position(|f| *f == c.pt) {
        let pt = m.formats.remove(i);
        m.formats.insert(0, pt);
    }
}

/// Parses a codec list value: names as given, `--` read as `=` (the
/// flag-form escape upstream accepts everywhere).
pub fn names(list: impl IntoIterator<Item = String>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.replace("--", "="))
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::parse;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 2000 RTP/AVP 96 0 8 101 102 13\r\nc=IN IP4 192.0.2.1\r\na=rtpmap:96 opus/48000/2\r\n\
        a=fmtp:96 useinbandfec=1\r\na=rtpmap:101 telephone-event/48000\r\na=rtpmap:102 telephone-event/8000\r\n\
        a=fmtp:102 0-15\r\n";

    fn media() -> Media {
        parse(OFFER.as_bytes()).unwrap().media.remove(0)
    }

    fn ops(strip: &[&str], except: &[&str], offer: &[&str]) -> CodecOps {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        CodecOps {
            strip: v(strip),
            except: v(except),
            offer: v(offer),
        }
    }

    fn run(o: CodecOps) -> (Outcome, Vec<String>) {
        let mut m = media();
        let r = apply_offer(&mut m, &o, false);
        (r, m.formats)
    }

    // Expectations from rtpengine 10.5.3.5 on the same offer.
    #[test]
    fn strip_by_name_takes_the_orphaned_telephone_event() {
        assert_eq!(run(ops(&["opus"], &[], &[])).1, ["0", "8", "102", "13"]);
        assert_eq!(
            run(ops(&["pcmu"], &[], &[])).1,
            ["96", "8", "101", "102", "13"]
        );
        assert_eq!(
            run(ops(&["opus/48000/2"], &[], &[])).1,
            ["0", "8", "102", "13"]
        );
        // Parameters must all match; payload type numbers are not names.
        assert_eq!(run(ops(&["opus/48000/1"], &[], &[])).0, Outcome::Kept);
        assert_eq!(run(ops(&["8", "101"], &[], &[])).1, media().formats);
    }

    #[test]
    fn all_except_offer() {
        assert_eq!(
            run(ops(&["all"], &["PCMA", "telephone-event"], &[])).1,
            ["8", "102"]
        );
        assert_eq!(run(ops(&["all"], &[], &["PCMA", "PCMU"])).1, ["8", "0"]);
        assert_eq!(run(ops(&["full"], &["PCMU"], &["PCMA"])).1, ["0", "8"]);
        // `offer`/`except` alone restore nothing and reorder nothing.
        assert_eq!(run(ops(&[], &[], &["PCMA"])).0, Outcome::Kept);
        assert_eq!(run(ops(&[], &[], &["PCMA"])).1, media().formats);
    }

    #[test]
    fn nothing_left_restores_or_rejects() {
        assert_eq!(
            run(ops(&["all"], &[], &[])),
            (Outcome::Restored, media().formats)
        );
        let mut m = media();
        assert_eq!(
            apply_offer(&mut m, &ops(&["all"], &[], &[]), true),
            Outcome::Empty
        );
        assert_eq!((m.port, m.formats.as_slice()), (0, &["0".to_owned()][..]));
        assert!(!m.has_attr("rtpmap") && !m.has_attr("fmtp"));
        // A lone real codec stripped takes its telephone-event with it.
        let mut m = parse(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 2 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n").unwrap().media.remove(0);
        assert_eq!(
            apply_offer(&mut m, &ops(&["PCMU"], &[], &[]), false),
            Outcome::Restored
        );
    }

    #[test]
    fn a_supplemental_without_codecs_before_stays() {
        let mut m = parse(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 2 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/48000\r\n").unwrap().media.remove(0);
        apply_offer(&mut m, &ops(&["PCMA"], &[], &[]), false);
        assert_eq!(m.formats, ["0", "101"]);
    }

    #[test]
    fn the_preferred_codec_moves_first() {
        let mut m = media();
        let pcma = codecs(&m)
            .into_iter()
            .find(|c| c.encoding == "PCMA")
            .unwrap();
        prefer(&mut m, &pcma);
        assert_eq!(m.formats, ["8", "96", "0", "101", "102", "13"]);
        let g722 = Codec {
            encoding: "G722".into(),
            rate: 8000,
            channels: 1,
            ..pcma
        };
        prefer(&mut m, &g722);
        assert_eq!(m.formats[0], "8", "absent: unchanged");
    }

    #[test]
    fn answer_narrowed_to_the_offer() {
        let offered = codecs(&media());
        let ans = |fmts: &str, extra: &str, single: bool| {
            let sdp = format!("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 2 RTP/AVP {fmts}\r\n{extra}");
            let mut m = parse(sdp.as_bytes()).unwrap().media.remove(0);
            narrow_answer(&mut m, &offered, single);
            m.formats
        };
        let mut stripped = media();
        apply_offer(&mut stripped, &ops(&["PCMA"], &[], &[]), false);
        let offered_no_pcma = codecs(&stripped);
        let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 2 RTP/AVP 8 0 102\r\na=rtpmap:102 telephone-event/8000\r\n";
        let mut m = parse(sdp.as_bytes()).unwrap().media.remove(0);
        assert!(narrow_answer(&mut m, &offered_no_pcma, false));
        assert_eq!(m.formats, ["0", "102"]);
        // Order is the answer's; a telephone-event rate that was offered stays.
        assert_eq!(ans("8 0", "", false), ["8", "0"]);
        assert_eq!(
            ans("0 101", "a=rtpmap:101 telephone-event/48000\r\n", false),
            ["0", "101"]
        );
        assert_eq!(
            ans("102 0 8", "a=rtpmap:102 telephone-event/8000\r\n", true),
            ["102", "0"]
        );
        // Nothing offered at all: left alone.
        assert_eq!(ans("9", "", false), ["9"]);
    }
}
