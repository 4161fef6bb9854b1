//! What the `block media`, `block DTMF` and `silence media` commands do to
//! the RTP a party sends: drop it, drop its RFC 4733 events, or replace its
//! G.711/G.722 payload with silence. RTCP always passes (as upstream, whose
//! blocking sits in the RTP codec handlers).
//!
//! A socket with an active filter is never offloaded: the kernel program
//! forwards whole flows, so a filtered flow stays in userspace until the
//! filter is lifted (upstream's module likewise takes such flows out of the
//! kernel).

/// Silence payload bytes of the codecs `silence media` supports
/// (upstream's codec definitions: one byte repeated).
const PCMU_SILENCE: u8 = 0xff;
const PCMA_SILENCE: u8 = 0xd5;
const G722_SILENCE: u8 = 0xfa;

/// A set of small numbers below `128 * N` (payload types, header
/// extension IDs), one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitSet<const N: usize>([u128; N]);

impl<const N: usize> Default for BitSet<N> {
    fn default() -> Self {
        BitSet([0; N])
    }
}

impl<const N: usize> BitSet<N> {
    /// Adds `v` (ignored when out of range).
    pub fn insert(&mut self, v: u8) {
        if let Some(w) = self.0.get_mut(usize::from(v >> 7)) {
            *w |= 1 << (v & 0x7f);
        }
    }

    /// Whether `v` is in the set.
    pub fn contains(self, v: u8) -> bool {
        self.0
            .get(usize::from(v >> 7))
            .is_some_and(|w| w & (1 << (v & 0x7f)) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

/// RTP payload types (0–127).
pub type PtSet = BitSet<1>;

/// RTP header extension IDs (1–255).
pub type ExtIds = BitSet<2>;

/// The payload types a party uses, by what the filters need to know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PayloadTypes {
    /// `telephone-event` (RFC 4733).
    pub dtmf: PtSet,
    /// PCMU.
    pub pcmu: PtSet,
    /// PCMA.
    pub pcma: PtSet,
    /// G.722.
    pub g722: PtSet,
}

/// `media echo` on a party's packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Echo {
    /// Relayed to the peer.
    #[default]
    Off,
    /// Sent back to the party itself (RTP with another SSRC).
    Reflect,
    /// Dropped.
    Blackhole,
}

/// XORed into the SSRC of reflected packets, so the party does not see its
/// own SSRC come back (upstream gives echoed RTP a new SSRC).
pub const ECHO_SSRC_XOR: u32 = 0x4563_686f;

/// The filter on packets a party sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// Drop everything (`drop-traffic: start`).
    pub drop_all: bool,
    /// Drop RTP except DTMF events.
    pub block_media: bool,
    /// Drop DTMF events.
    pub block_dtmf: bool,
    /// Replace G.711/G.722 payloads with silence.
    pub silence: bool,
    /// The party's payload types.
    pub pts: PayloadTypes,
    /// `media echo`.
    pub echo: Echo,
    /// The stream is SRTP (passed through): echoed packets keep their SSRC.
    pub encrypted: bool,
    /// Remove RTCP feedback (RTPFB, PSFB) from compound RTCP: the peer was
    /// given RTP/AVP and announced no `a=rtcp-fb` (upstream's AVPF → AVP
    /// filter).
    pub strip_rtcp_fb: bool,
    /// The party announced one of our own addresses: media may loop through
    /// this daemon; runs of duplicate packets are dropped ([`LoopDetect`]).
    pub loop_check: bool,
    /// RTP header extension IDs (the party's numbering) removed before
    /// forwarding: `extmap` strip/mask.
    pub strip_ext: ExtIds,
}

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Forward as is.
    Forward,
    /// Drop it.
    Drop,
    /// Forward with the payload (this range) filled with this byte.
    Silence(usize, usize, u8),
    /// Send it back to the party, its SSRC (at this offset) changed.
    Reflect(Option<usize>),
    /// RTCP with feedback packets: forward [`strip_feedback`]'s result.
    StripFeedback,
    /// RTP with header extensions to remove: forward [`strip_extensions`]'s
    /// result.
    StripExtensions,
}

impl Filter {
    /// Whether the filter changes anything (an active filter keeps the
    /// stream out of the kernel).
    pub fn active(&self) -> bool {
        self.drop_all
            || self.block_media
            || self.block_dtmf
            || self.silence
            || self.echo != Echo::Off
            || self.strip_rtcp_fb
            || self.loop_check
            || !self.strip_ext.is_empty()
    }

    /// The action for `pkt`; `rtcp` says the relay classified it as RTCP.
    pub fn decide(&self, pkt: &[u8], rtcp: bool) -> Action {
        if self.drop_all {
            return Action::Drop;
        }
        match self.echo {
            Echo::Off => {}
            Echo::Blackhole => return Action::Drop,
            // The SSRC: RTP's at 8, an RTCP sender's at 4.
            Echo::Reflect => {
                let at = match rtcp {
                    true => 4,
                    false => 8,
                };
                let rewrite = !self.encrypted && pkt.len() >= at + 4 && pkt[0] >> 6 == 2;
                return Action::Reflect(rewrite.then_some(at));
            }
        }
        if rtcp {
            return match self.strip_rtcp_fb && has_feedback(pkt) {
                true => Action::StripFeedback,
                false => Action::Forward,
            };
        }
        if pkt.len() < 12 || pkt[0] >> 6 != 2 {
            return Action::Forward;
        }
        let pt = pkt[1] & 0x7f;
        if self.pts.dtmf.contains(pt) {
            return match self.block_dtmf {
                true => Action::Drop,
                false => Action::Forward,
            };
        }
        if self.block_media {
            return Action::Drop;
        }
        if !self.strip_ext.is_empty() && pkt[0] & 0x10 != 0 {
            return Action::StripExtensions;
        }
        if !self.silence {
            return Action::Forward;
        }
        let pattern = if self.pts.pcmu.contains(pt) {
            PCMU_SILENCE
        } else if self.pts.pcma.contains(pt) {
            PCMA_SILENCE
        } else if self.pts.g722.contains(pt) {
            G722_SILENCE
        } else {
            return Action::Forward;
        };
        match payload(pkt) {
            Some((start, end)) => Action::Silence(start, end, pattern),
            None => Action::Forward,
        }
    }
}

/// The RFC 8285 elements of an extension block's body: (ID, the whole
/// element, its data); `None` where an element overruns the block.
fn elements(body: &[u8], two_byte: bool) -> impl Iterator<Item = Option<(u8, &[u8], &[u8])>> {
    let mut i = 0;
    std::iter::from_fn(move || loop {
        let first = *body.get(i)?;
        if first == 0 {
            // Padding between elements.
            i += 1;
            continue;
        }
        let (id, len, hdr) = if two_byte {
            match body.get(i + 1) {
                Some(&l) => (first, usize::from(l), 2),
                None => return Some(None),
            }
        } else {
            let id = first >> 4;
            if id == 15 {
                // Reserved: the rest is not to be parsed (RFC 8285 §4.2).
                return None;
            }
            (id, usize::from(first & 0x0f) + 1, 1)
        };
        let Some(element) = body.get(i..i + hdr + len) else {
            return Some(None);
        };
        i += hdr + len;
        return Some(Some((id, element, &element[hdr..])));
    })
}

/// The data of the header extension element `id` of an RTP packet, if it
/// has one (RFC 8285 one-byte and two-byte forms).
pub fn extension(pkt: &[u8], id: u8) -> Option<&[u8]> {
    if pkt.first()? & 0x10 == 0 {
        return None;
    }
    let start = 12 + 4 * usize::from(pkt[0] & 0x0f);
    let head = pkt.get(start..start + 4)?;
    let profile = u16::from_be_bytes([head[0], head[1]]);
    let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let body = pkt.get(start + 4..start + 4 + 4 * words)?;
    let two_byte = profile & 0xfff0 == 0x1000;
    if profile != 0xbede && !two_byte {
        return None;
    }
    elements(body, two_byte)
        .map_while(|e| e)
        .find(|(i, _, _)| *i == id)
        .map(|(_, _, data)| data)
}

/// An RTP packet with header extension element `id` carrying `data`
/// (replacing one under that ID, keeping the others); one-byte form unless
/// the packet uses the two-byte one. `None`: not RTP, a block that is
/// malformed or of another profile, or `data` that does not fit the form.
pub fn set_extension(pkt: &[u8], id: u8, data: &[u8]) -> Option<Vec<u8>> {
    if pkt.len() < 12 || data.is_empty() {
        return None;
    }
    let start = 12 + 4 * usize::from(pkt[0] & 0x0f);
    let (two_byte, body, payload) = if pkt[0] & 0x10 == 0 {
        (false, &[][..], pkt.get(start..)?)
    } else {
        let head = pkt.get(start..start + 4)?;
        let profile = u16::from_be_bytes([head[0], head[1]]);
        let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let two_byte = profile & 0xfff0 == 0x1000;
        if profile != 0xbede && !two_byte {
            return None;
        }
        let end = start + 4 + 4 * words;
        (two_byte, pkt.get(start + 4..end)?, pkt.get(end..)?)
    };
    let mut elems = Vec::with_capacity(body.len() + data.len() + 2);
    for element in elements(body, two_byte) {
        let (eid, element, _) = element?;
        if eid != id {
            elems.extend_from_slice(element);
        }
    }
    let profile: u16 = match two_byte {
        true => {
            elems.push(id);
            elems.push(u8::try_from(data.len()).ok()?);
            0x1000
        }
        false if (1..=14).contains(&id) && data.len() <= 16 => {
            elems.push(id << 4 | (data.len() - 1) as u8);
            0xbede
        }
        false => return None,
    };
    elems.extend_from_slice(data);
    while elems.len() % 4 != 0 {
        elems.push(0);
    }
    let words = u16::try_from(elems.len() / 4).ok()?;
    let mut out = Vec::with_capacity(start + 4 + elems.len() + payload.len() + 64);
    out.extend_from_slice(pkt.get(..start)?);
    out[0] |= 0x10;
    out.extend_from_slice(&profile.to_be_bytes());
    out.extend_from_slice(&words.to_be_bytes());
    out.extend_from_slice(&elems);
    out.extend_from_slice(payload);
    Some(out)
}

/// An RTP packet without the header extension elements whose IDs are in
/// `ids` (RFC 8285 one-byte and two-byte forms; padding dropped, the block
/// re-padded to 32 bits); without any left, the block goes and the X bit is
/// cleared. `None`: the extension block is malformed (forward unchanged).
pub fn strip_extensions(pkt: &[u8], ids: ExtIds) -> Option<Vec<u8>> {
    let cc = usize::from(pkt[0] & 0x0f);
    let start = 12 + 4 * cc;
    let head = pkt.get(start..start + 4)?;
    let profile = u16::from_be_bytes([head[0], head[1]]);
    let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let body = pkt.get(start + 4..start + 4 + 4 * words)?;
    let payload = &pkt[start + 4 + 4 * words..];
    let two_byte = profile & 0xfff0 == 0x1000;
    if profile != 0xbede && !two_byte {
        return None;
    }
    let mut kept = Vec::with_capacity(body.len());
    for element in elements(body, two_byte) {
        let (id, element, _) = element?;
        if !ids.contains(id) {
            kept.extend_from_slice(element);
        }
    }
    let mut out = Vec::with_capacity(pkt.len());
    out.extend_from_slice(&pkt[..start]);
    if kept.is_empty() {
        out[0] &= !0x10;
    } else {
        while kept.len() % 4 != 0 {
            kept.push(0);
        }
        out.extend_from_slice(&profile.to_be_bytes());
        let words = u16::try_from(kept.len() / 4).ok()?;
        out.extend_from_slice(&words.to_be_bytes());
        out.extend_from_slice(&kept);
    }
    out.extend_from_slice(payload);
    Some(out)
}

/// Bytes of a packet compared to find duplicates (upstream's
/// RTP_LOOP_PROTECT), packets remembered, and the run of duplicates after
/// which they are dropped (RTP_LOOP_MAX_COUNT).
const LOOP_BYTES: usize = 28;
const LOOP_PACKETS: usize = 2;
const LOOP_MAX: u32 = 30;

/// Upstream's loop detection: the same packet coming back again and again
/// within a second means media loops through this daemon.
#[derive(Debug, Clone, Default)]
pub struct LoopDetect {
    seen: [(usize, [u8; LOOP_BYTES], u64); LOOP_PACKETS],
    next: usize,
    count: u32,
}

impl LoopDetect {
    /// Whether `pkt` (received at `now_ms`) is to be dropped as looping.
    pub fn looping(&mut self, pkt: &[u8], now_ms: u64) -> bool {
        let n = pkt.len().min(LOOP_BYTES);
        let mut head = [0u8; LOOP_BYTES];
        head[..n].copy_from_slice(&pkt[..n]);
        if let Some(e) = self
            .seen
            .iter_mut()
            .find(|e| e.0 == pkt.len() && e.1 == head)
        {
            // Duplicates more than a second apart are no loop.
            if now_ms.saturating_sub(e.2) > 1000 {
                self.count = 0;
                e.2 = now_ms;
                return false;
            }
            e.2 = now_ms;
            if self.count >= LOOP_MAX {
                return true;
            }
            self.count += 1;
            return false;
        }
        self.count = 0;
        self.seen[self.next] = (pkt.len(), head, now_ms);
        self.next = (self.next + 1) % LOOP_PACKETS;
        false
    }
}

/// RTCP feedback packet types (RFC 4585): transport-layer and
/// payload-specific.
const RTPFB: u8 = 205;
const PSFB: u8 = 206;

/// The packets of a compound RTCP datagram: (type, whole packet); stops at
/// the first malformed length.
pub(crate) fn rtcp_packets(pkt: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = pkt;
    std::iter::from_fn(move || {
        if rest.len() < 4 || rest[0] >> 6 != 2 {
            return None;
        }
        let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
        let (one, tail) = (rest.get(..len)?, &rest[len..]);
        rest = tail;
        Some((one[1], one))
    })
}

fn has_feedback(pkt: &[u8]) -> bool {
    rtcp_packets(pkt).any(|(pt, _)| pt == RTPFB || pt == PSFB)
}

/// A compound RTCP datagram without its feedback packets (`None`: nothing
/// left to send). A malformed tail is dropped with them.
pub fn strip_feedback(pkt: &[u8]) -> Option<Vec<u8>> {
    let out: Vec<u8> = rtcp_packets(pkt)
        .filter(|(pt, _)| *pt != RTPFB && *pt != PSFB)
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    (!out.is_empty()).then_some(out)
}

/// The payload range of an RTP packet: after the CSRCs and the header
/// extension, before the padding. `None` for a malformed packet.
fn payload(pkt: &[u8]) -> Option<(usize, usize)> {
    let cc = usize::from(pkt[0] & 0x0f);
    let mut start = 12 + 4 * cc;
    if pkt[0] & 0x10 != 0 {
        let words = pkt.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    let mut end = pkt.len();
    if pkt[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*pkt.last()?))?;
    }
    (start <= end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8, first: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![first, pt, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        p.extend_from_slice(payload);
        p
    }

    fn filter(block_media: bool, block_dtmf: bool, silence: bool) -> Filter {
        let mut pts = PayloadTypes::default();
        pts.dtmf.insert(101);
        pts.pcmu.insert(0);
        pts.pcma.insert(8);
        pts.g722.insert(9);
        Filter {
            drop_all: false,
            block_media,
            block_dtmf,
            silence,
            pts,
            echo: Echo::Off,
            encrypted: false,
            strip_rtcp_fb: false,
            loop_check: false,
            strip_ext: ExtIds::default(),
        }
    }

    #[test]
    fn blocking() {
        let audio = rtp(0, 0x80, &[1; 160]);
        let dtmf = rtp(101, 0x80, &[1, 2, 3, 4]);
        let f = filter(true, false, false);
        assert_eq!(f.decide(&audio, false), Action::Drop);
        assert_eq!(
            f.decide(&dtmf, false),
            Action::Forward,
            "DTMF passes media blocking"
        );
        assert_eq!(f.decide(&audio, true), Action::Forward, "RTCP passes");
        let f = filter(false, true, false);
        assert_eq!(f.decide(&audio, false), Action::Forward);
        assert_eq!(f.decide(&dtmf, false), Action::Drop);
        assert!(!Filter::default().active());
        // Not RTP version 2, or too short: forwarded untouched.
        assert_eq!(
            filter(true, true, true).decide(&[0x40; 20], false),
            Action::Forward
        );
        assert_eq!(
            filter(true, true, true).decide(&[0x80; 8], false),
            Action::Forward
        );
    }

    #[test]
    fn echo() {
        let audio = rtp(0, 0x80, &[1; 160]);
        let sr = [0x80, 200, 0, 6, 0, 0, 0, 9];
        let f = Filter {
            echo: Echo::Reflect,
            ..Filter::default()
        };
        assert!(f.active());
        assert_eq!(f.decide(&audio, false), Action::Reflect(Some(8)));
        assert_eq!(f.decide(&sr, true), Action::Reflect(Some(4)));
        assert_eq!(f.decide(&[0x40; 20], false), Action::Reflect(None));
        // SRTP keeps its SSRC (it is authenticated).
        let f = Filter {
            encrypted: true,
            ..f
        };
        assert_eq!(f.decide(&audio, false), Action::Reflect(None));
        let f = Filter {
            echo: Echo::Blackhole,
            ..Filter::default()
        };
        assert_eq!(f.decide(&sr, true), Action::Drop);
        let f = Filter {
            drop_all: true,
            echo: Echo::Reflect,
            ..Filter::default()
        };
        assert!(f.active());
        assert_eq!(f.decide(&sr, true), Action::Drop, "drop-traffic wins");
    }

    #[test]
    fn feedback_is_stripped_from_compound_rtcp() {
        let rr = [
            0x81u8, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0,
        ];
        let pli = [0x81u8, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        let nack = [0x81u8, 205, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 5, 0, 0];
        let f = Filter {
            strip_rtcp_fb: true,
            ..Filter::default()
        };
        let compound = [&rr[..], &pli, &nack].concat();
        assert_eq!(f.decide(&compound, true), Action::StripFeedback);
        assert_eq!(strip_feedback(&compound), Some(rr.to_vec()));
        assert_eq!(f.decide(&rr, true), Action::Forward, "nothing to strip");
        assert_eq!(
            strip_feedback(&[&pli[..], &nack].concat()),
            None,
            "nothing left"
        );
        // A length running past the end ends the compound there.
        let mut broken = rr.to_vec();
        broken.extend_from_slice(&[0x81, 206, 0, 9, 0, 0]);
        assert_eq!(strip_feedback(&broken), Some(rr.to_vec()));
        // RTP is untouched by this filter.
        assert_eq!(f.decide(&rtp(0, 0x80, &[1; 160]), false), Action::Forward);
    }

    #[test]
    fn loops_are_runs_of_duplicates_within_a_second() {
        let mut l = LoopDetect::default();
        let p = rtp(0, 0x80, &[3; 160]);
        assert!(!l.looping(&p, 0));
        for i in 0..LOOP_MAX {
            assert!(!l.looping(&p, 10 + u64::from(i)), "duplicate {i}");
        }
        assert!(l.looping(&p, 100), "the run is too long");
        // A different packet resets the run; a duplicate after a second is fine.
        assert!(!l.looping(&rtp(0, 0x80, &[4; 160]), 101));
        let mut l = LoopDetect::default();
        for t in 0..50u64 {
            assert!(!l.looping(&p, t * 1100));
        }
    }

    #[test]
    fn an_extension_is_set_added_or_replaced() {
        // No block yet: one is added (X bit set, padded).
        let p = rtp(0, 0x80, &[1; 4]);
        let out = set_extension(&p, 3, b"1").unwrap();
        assert_eq!(out[0], 0x90);
        assert_eq!(&out[12..20], &[0xbe, 0xde, 0, 1, 0x30, b'1', 0, 0]);
        assert_eq!(&out[20..], &[1; 4]);
        assert_eq!(extension(&out, 3), Some(&b"1"[..]));
        // Replaced, others kept.
        let again = set_extension(&out, 3, b"v2").unwrap();
        assert_eq!(extension(&again, 3), Some(&b"v2"[..]));
        let two = set_extension(&again, 5, b"x").unwrap();
        assert_eq!(extension(&two, 3), Some(&b"v2"[..]));
        assert_eq!(extension(&two, 5), Some(&b"x"[..]));
        assert_eq!(&two[two.len() - 4..], &[1; 4]);
        // Two-byte form stays two-byte; an ID beyond 14 needs it.
        let mut tb = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
        tb.extend_from_slice(&[0x10, 0x00, 0, 1, 7, 1, 0xcc, 0]);
        tb.extend_from_slice(&[5; 3]);
        let out = set_extension(&tb, 20, b"ab").unwrap();
        assert_eq!(extension(&out, 20), Some(&b"ab"[..]));
        assert_eq!(extension(&out, 7), Some(&[0xcc][..]));
        assert_eq!(set_extension(&p, 20, b"ab"), None);
        // Too long for one byte's length, or not RTP at all.
        assert_eq!(set_extension(&p, 3, &[0; 17]), None);
        assert_eq!(set_extension(&[0x80, 0], 3, b"1"), None);
    }

    #[test]
    fn header_extensions_are_removed_by_id() {
        let mut ids = ExtIds::default();
        ids.insert(2);
        let f = Filter {
            strip_ext: ids,
            ..Filter::default()
        };
        // One-byte form: id 1 (2 bytes), padding, id 2 (1 byte), padded.
        let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
        p.extend_from_slice(&[0xbe, 0xde, 0, 2, 0x11, 0xaa, 0xbb, 0x00, 0x20, 0xcc, 0, 0]);
        p.extend_from_slice(&[7; 10]);
        assert_eq!(f.decide(&p, false), Action::StripExtensions);
        let out = strip_extensions(&p, ids).unwrap();
        let mut want = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
        want.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x11, 0xaa, 0xbb, 0x00]);
        want.extend_from_slice(&[7; 10]);
        assert_eq!(out, want);
        // Nothing left: no block, no X bit.
        let mut only2 = vec![
            0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0xbe, 0xde, 0, 1, 0x20, 0xcc, 0, 0,
        ];
        only2.extend_from_slice(&[7; 4]);
        let out = strip_extensions(&only2, ids).unwrap();
        assert_eq!(out[0], 0x80);
        assert_eq!(&out[12..], &[7; 4]);
        // Two-byte form with a CSRC.
        let mut two = vec![0x91, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 1, 2, 3, 4];
        two.extend_from_slice(&[0x10, 0x00, 0, 2, 2, 1, 0xcc, 3, 2, 0xdd, 0xee, 0]);
        two.extend_from_slice(&[5; 3]);
        let out = strip_extensions(&two, ids).unwrap();
        let mut want = vec![0x91, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 1, 2, 3, 4];
        want.extend_from_slice(&[0x10, 0x00, 0, 1, 3, 2, 0xdd, 0xee]);
        want.extend_from_slice(&[5; 3]);
        assert_eq!(out, want);
        // Malformed (length past the end) or unknown profile: untouched.
        let bad = vec![
            0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0xbe, 0xde, 0, 9, 0x20,
        ];
        assert_eq!(strip_extensions(&bad, ids), None);
        let other = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0x12, 0x34, 0, 0];
        assert_eq!(strip_extensions(&other, ids), None);
        // No X bit: nothing to do.
        assert_eq!(f.decide(&rtp(0, 0x80, &[1; 10]), false), Action::Forward);
    }

    #[test]
    fn silence_ranges() {
        let f = filter(false, false, true);
        assert_eq!(
            f.decide(&rtp(0, 0x80, &[1; 160]), false),
            Action::Silence(12, 172, 0xff)
        );
        assert_eq!(
            f.decide(&rtp(8, 0x80, &[1; 160]), false),
            Action::Silence(12, 172, 0xd5)
        );
        assert_eq!(
            f.decide(&rtp(9, 0x80, &[1; 160]), false),
            Action::Silence(12, 172, 0xfa)
        );
        // Other codecs and DTMF are left alone.
        assert_eq!(f.decide(&rtp(96, 0x80, &[1; 10]), false), Action::Forward);
        assert_eq!(f.decide(&rtp(101, 0x80, &[1; 4]), false), Action::Forward);
        // Two CSRCs, a one-word extension and 3 bytes of padding.
        let mut p = rtp(0, 0x80 | 0x20 | 0x10 | 2, &[0; 8]);
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]);
        p.extend_from_slice(&[7; 20]);
        p.extend_from_slice(&[0, 0, 3]);
        assert_eq!(f.decide(&p, false), Action::Silence(28, p.len() - 3, 0xff));
        // A truncated extension or padding longer than the packet: untouched.
        let short = rtp(0, 0x80 | 0x10, &[0, 0]);
        assert_eq!(f.decide(&short, false), Action::Forward);
        let mut pad = rtp(0, 0x80 | 0x20, &[0; 3]);
        pad.push(200);
        assert_eq!(f.decide(&pad, false), Action::Forward);
    }
}
