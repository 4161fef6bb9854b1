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
/// with RTX and simulcast layers; the oldest learned goes first beyond
/// that. Also the most `a=ssrc` values taken per section.
pub const MAX_SSRCS: usize = 32;

/// One media section of a bundle, as the party announced it.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// Its `a=mid`.
    pub mid: Option<String>,
    /// The payload types it lists (at most 128: they are 7 bits).
    pub payload_types: Vec<u8>,
    /// The SSRCs of its `a=ssrc` lines (at most [`MAX_SSRCS`]).
    pub ssrcs: Vec<u32>,
}

/// One section of a bundle and the socket standing for it on our side.
#[derive(Debug)]
pub struct Member {
    /// What the party announced for it.
    pub section: Section,
    /// Its RTP socket.
    pub socket: Weak<MediaSocket>,
    /// That socket's [`MediaSocket::key`] (what learning remembers).
    pub key: u64,
}

impl Member {
    /// The section `section` of socket `socket`.
    pub fn new(section: Section, socket: &std::sync::Arc<MediaSocket>) -> Member {
        Member {
            section,
            socket: std::sync::Arc::downgrade(socket),
            key: socket.key(),
        }
    }
}

/// The sections of one bundle and the sockets standing for them, the
/// head's first, set on the head's sockets.
#[derive(Debug, Default)]
pub struct Routes {
    /// The ID the party's packets carry the MID extension under.
    pub mid_ext: Option<u8>,
    /// The sections; the head's own first (its packets stay where they
    /// arrive).
    pub members: Vec<Member>,
}

/// What a bundle's head learned about SSRCs: which section (by its
/// socket's key, unique for the process's life, so neither a change of the
/// bundle's membership nor a socket made anew can shift them) each one the
/// party sends, and each one sent to it, belongs to.
#[derive(Debug, Default)]
pub struct Learned {
    from_party: Vec<(u32, u64)>,
    to_party: Vec<(u32, u64)>,
}

fn remember(list: &mut Vec<(u32, u64)>, ssrc: u32, key: u64) {
    if let Some(e) = list.iter_mut().find(|(s, _)| *s == ssrc) {
        e.1 = key;
        return;
    }
    if list.len() >= MAX_SSRCS {
        list.remove(0);
    }
    list.push((ssrc, key));
}

fn lookup(list: &[(u32, u64)], ssrc: u32) -> Option<u64> {
    list.iter().find(|(s, _)| *s == ssrc).map(|&(_, k)| k)
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

impl Learned {
    /// Notes an SSRC of media sent to the party through the section of
    /// socket `key`.
    pub fn sent(&mut self, ssrc: u32, key: u64) {
        remember(&mut self.to_party, ssrc, key);
    }

    /// Notes an SSRC the party sends in the section of socket `key` (once
    /// that section accepted its packet).
    pub fn received(&mut self, ssrc: u32, key: u64) {
        remember(&mut self.from_party, ssrc, key);
    }
}

/// Where a packet from the party goes: the section (index into
/// [`Routes::members`]) and an SSRC to remember for it once the section
/// accepted the packet (told by MID or payload type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demux {
    /// The section.
    pub member: usize,
    /// The SSRC it taught.
    pub learn: Option<u32>,
}

impl Routes {
    fn by_key(&self, key: u64) -> Option<usize> {
        self.members.iter().position(|m| m.key == key)
    }

    fn by_ssrc(&self, learned: &[(u32, u64)], ssrc: u32) -> Option<usize> {
        lookup(learned, ssrc)
            .and_then(|k| self.by_key(k))
            .or_else(|| {
                self.members
                    .iter()
                    .position(|m| m.section.ssrcs.contains(&ssrc))
            })
    }

    /// The section an RTP packet from the party belongs to, if it can be
    /// told; RTCP by its sender's SSRC (clear in SRTCP too).
    pub fn member_of(&self, learned: &Learned, pkt: &[u8]) -> Option<Demux> {
        let sender = be32(pkt.get(if is_rtcp(pkt) { 4 } else { 8 }..)?)?;
        if is_rtcp(pkt) {
            let member = self.by_ssrc(&learned.from_party, sender)?;
            return Some(Demux {
                member,
                learn: None,
            });
        }
        let learn = Some(sender);
        if let Some(member) = self.by_mid(pkt) {
            return Some(Demux { member, learn });
        }
        if let Some(member) = self.by_ssrc(&learned.from_party, sender) {
            return Some(Demux {
                member,
                learn: None,
            });
        }
        let pt = pkt[1] & 0x7f;
        let mut listing = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.section.payload_types.contains(&pt))
            .map(|(i, _)| i);
        let member = listing.next().filter(|_| listing.next().is_none())?;
        Some(Demux { member, learn })
    }

    fn by_mid(&self, pkt: &[u8]) -> Option<usize> {
        let mid = extension(pkt, self.mid_ext?)?;
        self.members.iter().position(|m| {
            m.section
                .mid
                .as_deref()
                .is_some_and(|v| v.as_bytes() == mid)
        })
    }

    /// A plain compound RTCP packet whose sender is unknown: by the first
    /// SSRC it reports on that went to the party through a section (its
    /// report blocks and feedback are encrypted in SRTCP: pass the
    /// unprotected packet).
    pub fn rtcp_by_reportee(&self, learned: &Learned, plain: &[u8]) -> Option<usize> {
        rtcp_packets(plain).find_map(|(pt, one)| {
            let reportee = match pt {
                // SR: report blocks after the sender info.
                200 if one[0] & 0x1f > 0 => be32(one.get(28..)?)?,
                // RR: report blocks after the sender's SSRC.
                201 if one[0] & 0x1f > 0 => be32(one.get(8..)?)?,
                // Feedback: the media source.
                205 | 206 => be32(one.get(8..)?)?,
                _ => return None,
            };
            self.by_key(lookup(&learned.to_party, reportee)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A real socket (from a pool of its own), whose address is a key.
    fn socket() -> Arc<MediaSocket> {
        use crate::relay::learning::{Endpoint, EndpointLearning, Policy};
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        let base = 47000 + (std::process::id() % 40) as u16 * 50;
        let port = base + 2 * NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pool = crate::interfaces::PortPool::new([127, 0, 0, 1].into(), port, port + 1, &[]);
        let pair = pool.allocate(true).expect("a free port");
        let policy = Policy {
            mode: EndpointLearning::Heuristic,
            strict: false,
            handover: false,
            asymmetric: false,
            nat_wait: false,
        };
        let state = super::super::SocketState::new(
            Endpoint::new(None, std::time::Instant::now()),
            policy,
            None,
        );
        MediaSocket::new(pair.rtp, false, Arc::new(pair.lease), state, None).expect("socket")
    }

    /// Two sections with real sockets (kept alive by the caller).
    fn routes(mid_ext: Option<u8>) -> (Routes, [Arc<MediaSocket>; 2]) {
        let section = |mid: &str, pts: &[u8], ssrcs: &[u32]| Section {
            mid: Some(mid.to_owned()),
            payload_types: pts.to_vec(),
            ssrcs: ssrcs.to_vec(),
        };
        let socks = [socket(), socket()];
        let r = Routes {
            mid_ext,
            members: vec![
                Member::new(section("0", &[111, 0, 101], &[]), &socks[0]),
                Member::new(section("1", &[96, 97, 101], &[0x2222]), &socks[1]),
            ],
        };
        (r, socks)
    }

    fn key(s: &Arc<MediaSocket>) -> u64 {
        s.key()
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

    fn member(d: Option<Demux>) -> Option<usize> {
        d.map(|d| d.member)
    }

    #[test]
    fn mid_extension_wins_and_teaches_the_ssrc_once_accepted() {
        let (r, _socks) = routes(Some(3));
        let l = Learned::default();
        // PT 111 is audio's, but the MID says video: the MID decides and
        // the SSRC is to be learned.
        let d = r.member_of(&l, &rtp(111, 0x77, Some((3, b"1"))));
        assert_eq!(
            d,
            Some(Demux {
                member: 1,
                learn: Some(0x77)
            })
        );
        // An unknown MID falls back to the payload type.
        assert_eq!(
            member(r.member_of(&l, &rtp(0, 0x88, Some((3, b"9"))))),
            Some(0)
        );
    }

    #[test]
    fn learning_is_keyed_by_socket() {
        let (r, socks) = routes(None);
        let mut l = Learned::default();
        l.received(0x77, key(&socks[1]));
        assert_eq!(member(r.member_of(&l, &rtp(0, 0x77, None))), Some(1));
        l.received(0x77, key(&socks[0]));
        assert_eq!(member(r.member_of(&l, &rtp(96, 0x77, None))), Some(0));
        // A section whose socket is gone from the routes: no route by what
        // was learned for it (a payload type may still tell).
        let (other, _keep) = routes(None);
        assert_eq!(other.by_ssrc(&l.from_party, 0x77), None);
    }

    #[test]
    fn announced_ssrcs_then_unique_payload_types() {
        let (r, _socks) = routes(None);
        let l = Learned::default();
        let d = r.member_of(&l, &rtp(101, 0x2222, None));
        assert_eq!(
            d,
            Some(Demux {
                member: 1,
                learn: None
            })
        );
        assert_eq!(member(r.member_of(&l, &rtp(96, 0x1, None))), Some(1));
        assert_eq!(member(r.member_of(&l, &rtp(0, 0x3, None))), Some(0));
        // PT 101 is listed by both: cannot tell.
        assert_eq!(r.member_of(&l, &rtp(101, 0x4, None)), None);
        // A short packet neither.
        assert_eq!(r.member_of(&l, &[0x80, 96, 0, 1]), None);
    }

    #[test]
    fn rtcp_by_sender_then_by_reported_source() {
        let (r, socks) = routes(None);
        let mut l = Learned::default();
        l.sent(0x5555, key(&socks[1]));
        // RR from an unknown sender reporting on an SSRC sent via video:
        // not by its sender, by what it reports on.
        let mut rr = vec![0x81, 201, 0, 7];
        rr.extend_from_slice(&0x9999u32.to_be_bytes());
        rr.extend_from_slice(&0x5555u32.to_be_bytes());
        rr.extend_from_slice(&[0; 20]);
        assert_eq!(r.member_of(&l, &rr), None);
        assert_eq!(r.rtcp_by_reportee(&l, &rr), Some(1));
        // PLI (PSFB) about it.
        let mut pli = vec![0x81, 206, 0, 2];
        pli.extend_from_slice(&0x9999u32.to_be_bytes());
        pli.extend_from_slice(&0x5555u32.to_be_bytes());
        assert_eq!(r.rtcp_by_reportee(&l, &pli), Some(1));
        // SR from an announced sender.
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend_from_slice(&0x2222u32.to_be_bytes());
        sr.extend_from_slice(&[0; 20]);
        assert_eq!(member(r.member_of(&l, &sr)), Some(1));
        // Nothing known: no section.
        let mut bye = vec![0x81, 203, 0, 1];
        bye.extend_from_slice(&0x1234u32.to_be_bytes());
        assert_eq!(r.member_of(&l, &bye), None);
        assert_eq!(r.rtcp_by_reportee(&l, &bye), None);
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
