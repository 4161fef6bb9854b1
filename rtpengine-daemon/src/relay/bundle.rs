//! BUNDLE (RFC 9143) on the relay path: one transport of a party carries
//! several of its media sections. Packets from the party all arrive on the
//! socket of the bundle's first section (its head) and are handed to the
//! socket of the section they belong to, which relays them as if they had
//! arrived there; media to the party leaves through the head's socket.
//!
//! Which section a packet belongs to, in upstream's order: the MID header
//! extension (RFC 9143 §9.2), an SSRC seen before or announced in the
//! party's `a=ssrc` lines, a payload type only one section lists; RTCP by
//! its sender's SSRC, else by the SSRC it reports on (media we sent the
//! party through a section). Anything else stays with the head.

use std::sync::Weak;

use super::filter::{extension, rtcp_packets};
use super::{is_rtcp, MediaSocket};

/// SSRCs remembered per bundle (each direction): enough for audio, video
/// with RTX and simulcast layers; the oldest goes first beyond that.
pub const MAX_SSRCS: usize = 32;

/// One media section of a bundle, as the party announced it.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// Its `a=mid`.
    pub mid: Option<String>,
    /// The payload types it lists.
    pub payload_types: Vec<u8>,
    /// The SSRCs of its `a=ssrc` lines.
    pub ssrcs: Vec<u32>,
}

/// The sections of one bundle and the sockets standing for them (the
/// head's own first), set on the head's sockets.
#[derive(Debug, Default)]
pub struct Routes {
    /// The ID the party's packets carry the MID extension under.
    pub mid_ext: Option<u8>,
    /// The sections and each one's RTP socket on our side of the bundle.
    pub members: Vec<(Section, Weak<MediaSocket>)>,
}

/// What a bundle's head learned about SSRCs: which section each one the
/// party sends, and each one sent to it, belongs to.
#[derive(Debug, Default)]
pub struct Learned {
    from_party: Vec<(u32, usize)>,
    to_party: Vec<(u32, usize)>,
}

fn remember(list: &mut Vec<(u32, usize)>, ssrc: u32, member: usize) {
    if let Some(e) = list.iter_mut().find(|(s, _)| *s == ssrc) {
        e.1 = member;
        return;
    }
    if list.len() >= MAX_SSRCS {
        list.remove(0);
    }
    list.push((ssrc, member));
}

fn lookup(list: &[(u32, usize)], ssrc: u32) -> Option<usize> {
    list.iter().find(|(s, _)| *s == ssrc).map(|&(_, m)| m)
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

impl Learned {
    /// Notes an SSRC of media sent to the party through section `member`.
    pub fn sent(&mut self, ssrc: u32, member: usize) {
        remember(&mut self.to_party, ssrc, member);
    }
}

impl Routes {
    /// The section (index into `members`) a packet from the party belongs
    /// to, if it can be told.
    pub fn member_of(&self, learned: &mut Learned, pkt: &[u8]) -> Option<usize> {
        if pkt.len() < 8 {
            return None;
        }
        if is_rtcp(pkt) {
            return self.rtcp_member(learned, pkt);
        }
        let ssrc = be32(pkt.get(8..)?)?;
        if let Some(m) = self.by_mid(pkt) {
            remember(&mut learned.from_party, ssrc, m);
            return Some(m);
        }
        if let Some(m) = lookup(&learned.from_party, ssrc).or_else(|| self.by_ssrc(ssrc)) {
            return Some(m);
        }
        let pt = pkt[1] & 0x7f;
        let mut listing = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| s.payload_types.contains(&pt))
            .map(|(i, _)| i);
        let m = listing.next().filter(|_| listing.next().is_none())?;
        remember(&mut learned.from_party, ssrc, m);
        Some(m)
    }

    fn by_mid(&self, pkt: &[u8]) -> Option<usize> {
        let mid = extension(pkt, self.mid_ext?)?;
        self.members
            .iter()
            .position(|(s, _)| s.mid.as_deref().is_some_and(|m| m.as_bytes() == mid))
    }

    fn by_ssrc(&self, ssrc: u32) -> Option<usize> {
        self.members
            .iter()
            .position(|(s, _)| s.ssrcs.contains(&ssrc))
    }

    /// A compound RTCP packet: by the sender's SSRC, else by the first
    /// SSRC it reports on that went to the party through a section.
    fn rtcp_member(&self, learned: &Learned, pkt: &[u8]) -> Option<usize> {
        let sender = be32(pkt.get(4..)?)?;
        if let Some(m) = lookup(&learned.from_party, sender).or_else(|| self.by_ssrc(sender)) {
            return Some(m);
        }
        rtcp_packets(pkt).find_map(|(pt, one)| {
            let reportee = match pt {
                // SR: report blocks after the sender info.
                200 if one[0] & 0x1f > 0 => be32(one.get(28..)?)?,
                // RR: report blocks after the sender's SSRC.
                201 if one[0] & 0x1f > 0 => be32(one.get(8..)?)?,
                // Feedback: the media source.
                205 | 206 => be32(one.get(8..)?)?,
                _ => return None,
            };
            lookup(&learned.to_party, reportee)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(mid_ext: Option<u8>) -> Routes {
        let section = |mid: &str, pts: &[u8], ssrcs: &[u32]| {
            (
                Section {
                    mid: Some(mid.to_owned()),
                    payload_types: pts.to_vec(),
                    ssrcs: ssrcs.to_vec(),
                },
                Weak::new(),
            )
        };
        Routes {
            mid_ext,
            members: vec![
                section("0", &[111, 0, 101], &[]),
                section("1", &[96, 97, 101], &[0x2222]),
            ],
        }
    }

    fn rtp(pt: u8, ssrc: u32, ext: Option<(u8, &[u8])>) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(&ssrc.to_be_bytes());
        if let Some((id, data)) = ext {
            p[0] |= 0x10;
            let mut body = vec![id << 4 | (data.len() as u8 - 1)];
            body.extend_from_slice(data);
            while body.len() % 4 != 0 {
                body.push(0);
            }
            p.extend_from_slice(&[0xbe, 0xde]);
            p.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
            p.extend_from_slice(&body);
        }
        p.extend_from_slice(&[0xaa; 20]);
        p
    }

    #[test]
    fn mid_extension_wins_and_teaches_the_ssrc() {
        let r = routes(Some(3));
        let mut l = Learned::default();
        // PT 111 is audio's, but the MID says video: the MID decides.
        assert_eq!(
            r.member_of(&mut l, &rtp(111, 0x77, Some((3, b"1")))),
            Some(1)
        );
        // Later packets of that SSRC need no MID.
        assert_eq!(r.member_of(&mut l, &rtp(111, 0x77, None)), Some(1));
        // An unknown MID teaches nothing.
        assert_eq!(r.member_of(&mut l, &rtp(0, 0x88, Some((3, b"9")))), Some(0));
    }

    #[test]
    fn announced_ssrcs_then_unique_payload_types() {
        let r = routes(None);
        let mut l = Learned::default();
        assert_eq!(r.member_of(&mut l, &rtp(101, 0x2222, None)), Some(1));
        assert_eq!(r.member_of(&mut l, &rtp(96, 0x1, None)), Some(1));
        assert_eq!(r.member_of(&mut l, &rtp(0, 0x3, None)), Some(0));
        // PT 101 is listed by both: cannot tell.
        assert_eq!(r.member_of(&mut l, &rtp(101, 0x4, None)), None);
        // A short packet neither.
        assert_eq!(r.member_of(&mut l, &[0x80, 96, 0, 1]), None);
    }

    #[test]
    fn rtcp_by_sender_then_by_reported_source() {
        let r = routes(None);
        let mut l = Learned::default();
        l.sent(0x5555, 1);
        // RR from an unknown sender reporting on an SSRC sent via video.
        let mut rr = vec![0x81, 201, 0, 7];
        rr.extend_from_slice(&0x9999u32.to_be_bytes());
        rr.extend_from_slice(&0x5555u32.to_be_bytes());
        rr.extend_from_slice(&[0; 20]);
        assert_eq!(r.member_of(&mut l, &rr), Some(1));
        // PLI (PSFB) about it.
        let mut pli = vec![0x81, 206, 0, 2];
        pli.extend_from_slice(&0x9999u32.to_be_bytes());
        pli.extend_from_slice(&0x5555u32.to_be_bytes());
        assert_eq!(r.member_of(&mut l, &pli), Some(1));
        // SR from an announced sender.
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend_from_slice(&0x2222u32.to_be_bytes());
        sr.extend_from_slice(&[0; 20]);
        assert_eq!(r.member_of(&mut l, &sr), Some(1));
        // Nothing known: stays with the head.
        let mut bye = vec![0x81, 203, 0, 1];
        bye.extend_from_slice(&0x1234u32.to_be_bytes());
        assert_eq!(r.member_of(&mut l, &bye), None);
    }

    #[test]
    fn learned_ssrcs_are_bounded() {
        let mut l = Learned::default();
        for s in 0..(MAX_SSRCS as u32 + 5) {
            l.sent(s, 1);
        }
        assert_eq!(l.to_party.len(), MAX_SSRCS);
        assert_eq!(lookup(&l.to_party, 0), None);
        assert_eq!(lookup(&l.to_party, MAX_SSRCS as u32 + 4), Some(1));
    }
}
