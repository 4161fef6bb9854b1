//! Per-SSRC counters of the RTP one socket receives: what `query` and
//! `delete` report as a media's ingress (and the peer's egress) SSRCs and
//! as the call's `SSRC` table, as upstream does.
//!
//! Updated under the socket's state lock the relay already holds for each
//! packet. The kernel program does not parse RTP headers, so packets it
//! forwards are added to the SSRC userspace saw last (their sequence number
//! and timestamp are not known); a stream offloaded for good reports its
//! first packets' SSRC with all its packets.

/// SSRCs tracked per socket (upstream's kernel module tracks as many); a
/// fifth replaces the one seen longest ago.
pub const MAX_SSRCS: usize = 4;

/// Counters of one SSRC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SsrcStats {
    /// The SSRC.
    pub ssrc: u32,
    /// Packets.
    pub packets: u64,
    /// Bytes (UDP payload).
    pub bytes: u64,
    /// RTP timestamp of the latest packet.
    pub last_ts: u32,
    /// Extended sequence number (roll-overs in the high bits) of the latest packet.
    pub last_seq: u32,
    /// [`crate::clock::now_ms`] of the latest packet.
    last_ms: u64,
}

/// The SSRCs of one socket, in the order first seen.
#[derive(Debug, Clone, Default)]
pub struct SsrcTable {
    entries: [Option<SsrcStats>; MAX_SSRCS],
    /// Index of the entry seen last (the kernel's packets go there).
    current: usize,
}

impl SsrcTable {
    /// Counts an RTP packet (version 2, not RTCP; anything else is ignored).
    pub fn record(&mut self, pkt: &[u8], now_ms: u64) {
        if pkt.len() < 12 || pkt[0] >> 6 != 2 {
            return;
        }
        let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        let ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        let i = match self
            .entries
            .iter()
            .position(|e| e.is_some_and(|e| e.ssrc == ssrc))
        {
            Some(i) => i,
            None => {
                let slot = self
                    .entries
                    .iter()
                    .position(Option::is_none)
                    .unwrap_or_else(|| self.oldest());
                self.entries[slot] = Some(SsrcStats {
                    ssrc,
                    last_seq: u32::from(seq),
                    ..SsrcStats::default()
                });
                slot
            }
        };
        self.current = i;
        if let Some(e) = self.entries[i].as_mut() {
            e.packets += 1;
            e.bytes += pkt.len() as u64;
            e.last_ts = ts;
            e.last_seq = extend_seq(e.last_seq, seq);
            e.last_ms = now_ms;
        }
    }

    /// Adds what the kernel forwarded to the SSRC seen last.
    pub fn add_kernel(&mut self, packets: u64, bytes: u64) {
        if let Some(e) = self.entries[self.current].as_mut() {
            e.packets += packets;
            e.bytes += bytes;
        }
    }

    /// The entries, in the order first seen.
    pub fn entries(&self) -> Vec<SsrcStats> {
        self.entries.iter().flatten().copied().collect()
    }

    fn oldest(&self) -> usize {
        (0..MAX_SSRCS)
            .min_by_key(|&i| self.entries[i].map_or(0, |e| e.last_ms))
            .unwrap_or(0)
    }
}

/// The extended sequence number after `last` when `seq` arrives: a jump
/// back by more than half the space is a roll-over (RFC 3550 A.1).
fn extend_seq(last: u32, seq: u16) -> u32 {
    let cycles = last & 0xffff_0000;
    let low = (last & 0xffff) as u16;
    let rolled = seq < low && low - seq > 0x8000;
    let back = seq > low && seq - low > 0x8000 && cycles > 0;
    match (rolled, back) {
        (true, _) => cycles.wrapping_add(0x1_0000) | u32::from(seq),
        // A late packet from before the last roll-over: keep the newer one.
        (_, true) => last,
        _ if seq < low => last,
        _ => cycles | u32::from(seq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend(seq.to_be_bytes());
        p.extend(ts.to_be_bytes());
        p.extend(ssrc.to_be_bytes());
        p.extend([0u8; 20]);
        p
    }

    #[test]
    fn counts_per_ssrc_in_order_first_seen() {
        let mut t = SsrcTable::default();
        t.record(&rtp(7, 1, 160), 1);
        t.record(&rtp(7, 2, 320), 2);
        t.record(&rtp(9, 100, 8000), 3);
        t.record(&[0x80, 200, 0, 1], 4);
        let e = t.entries();
        assert_eq!(
            e.iter()
                .map(|e| (e.ssrc, e.packets, e.bytes))
                .collect::<Vec<_>>(),
            [(7, 2, 64), (9, 1, 32)]
        );
        assert_eq!((e[0].last_seq, e[0].last_ts), (2, 320));
        // The kernel's packets go to the SSRC seen last.
        t.add_kernel(10, 1000);
        assert_eq!(t.entries()[1].packets, 11);
    }

    #[test]
    fn a_fifth_ssrc_replaces_the_oldest() {
        let mut t = SsrcTable::default();
        for (i, s) in [1u32, 2, 3, 4].iter().enumerate() {
            t.record(&rtp(*s, 1, 0), 10 + i as u64);
        }
        t.record(&rtp(1, 2, 0), 20);
        t.record(&rtp(5, 1, 0), 21);
        let ssrcs: Vec<u32> = t.entries().iter().map(|e| e.ssrc).collect();
        assert_eq!(ssrcs, [1, 5, 3, 4]);
    }

    #[test]
    fn sequence_numbers_extend_over_roll_overs() {
        assert_eq!(extend_seq(65534, 65535), 65535);
        assert_eq!(extend_seq(65535, 2), 0x1_0002);
        assert_eq!(extend_seq(0x1_0002, 65533), 0x1_0002, "late packet");
        assert_eq!(extend_seq(10, 9), 10, "reordered");
        assert_eq!(extend_seq(10, 11), 11);
    }
}
