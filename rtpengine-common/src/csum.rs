//! Internet checksum arithmetic (RFC 1071) and incremental updates (RFC 1624).
//!
//! All words are read in **memory order** (`u16::from_ne_bytes` of two
//! consecutive packet bytes) and results are returned as the two bytes to store
//! in the packet. One's-complement sums are byte-order independent, so this is
//! correct on any host without a single byte swap.
//!
//! Incremental update, RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`. Build the
//! `~m + m'` part with [`replace`] for every changed field, then apply it with
//! [`update`] (IPv4 header), [`update_udp`] (UDP over IPv6, or over IPv4 when the
//! received checksum is non-zero) or [`update_udp4`] (UDP over IPv4: a received
//! 0 means "no checksum" and stays 0).
//!
//! The fixed-size helpers are `#[inline(always)]` and loop only over constant
//! bounds, so the BPF verifier sees straight-line code. The slice helpers
//! ([`add_slice`], [`ipv4_header_checksum`], [`udp4_checksum`], [`udp6_checksum`])
//! compute full checksums for tests and userspace.

/// Adds the 16-bit words of `bytes` (memory order) to `acc`. An odd trailing
/// byte is padded with a zero byte, as RFC 1071 prescribes.
///
/// Sums 32-bit words where it can (`2^16 ≡ 1 mod 0xFFFF`, so a 32-bit word adds
/// the same as its two halves once folded): fewer, wider operations keep the
/// BPF code small.
#[inline(always)]
pub fn add<const N: usize>(mut acc: u64, bytes: &[u8; N]) -> u64 {
    let mut i = 0;
    while i + 3 < N {
        acc += u64::from(u32::from_ne_bytes([
            bytes[i],
            bytes[i + 1],
            bytes[i + 2],
            bytes[i + 3],
        ]));
        i += 4;
    }
    if i + 1 < N {
        acc += u64::from(u16::from_ne_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    if i < N {
        acc += u64::from(u16::from_ne_bytes([bytes[i], 0]));
    }
    acc
}

/// Adds the RFC 1624 difference `~m + m'` for a field changing from `old` to
/// `new` (field boundaries must be 16-bit aligned in the checksummed data; an
/// odd trailing byte is treated as the high-address byte of a word). The two
/// may differ in length: an IPv4 address in a pseudo-header replaced by an
/// IPv6 one.
///
/// Uses `Σ~m = k·0xFFFF − Σm` for the `k` 16-bit words of the field, which
/// never underflows.
#[inline(always)]
pub fn replace<const N: usize, const M: usize>(acc: u64, old: &[u8; N], new: &[u8; M]) -> u64 {
    let words = N.div_ceil(2) as u64;
    // Fold the (at most 32-bit-word) sum of `old` to 16 bits first so that
    // `k·0xFFFF − Σm` stays non-negative.
    let old_sum = u64::from(fold(add(0, old)));
    // A folded value of 0xFFFF is "zero" too; both give the same final result.
    add(acc, new) + words * 0xffff - old_sum
}

/// Folds a 64-bit one's-complement accumulator to 16 bits (end-around carry).
/// Four fixed steps suffice for any `u64`.
#[inline(always)]
pub fn fold(sum: u64) -> u16 {
    let s = (sum & 0xffff_ffff) + (sum >> 32); // < 2^33
    let s = (s & 0xffff) + (s >> 16); // <= 0x2fffe
    let s = (s & 0xffff) + (s >> 16); // <= 0x10001
    let s = (s & 0xffff) + (s >> 16); // <= 0xffff
    s as u16
}

/// Applies an accumulated difference (from [`replace`]) to the stored checksum
/// `check`: `HC' = ~(~HC + delta)`.
#[inline(always)]
pub fn update(check: [u8; 2], delta: u64) -> [u8; 2] {
    let hc = u16::from_ne_bytes(check);
    (!fold(u64::from(!hc) + delta)).to_ne_bytes()
}

/// Like [`update`] for a UDP checksum: a result of 0 is written as `0xFFFF`
/// (0 on the wire means "no checksum"; both are zero in one's complement).
#[inline(always)]
pub fn update_udp(check: [u8; 2], delta: u64) -> [u8; 2] {
    let c = update(check, delta);
    if c == [0, 0] {
        [0xff, 0xff]
    } else {
        c
    }
}

/// Like [`update_udp`] for UDP over IPv4, where a received checksum of 0 means
/// "none computed" and must stay 0.
#[inline(always)]
pub fn update_udp4(check: [u8; 2], delta: u64) -> [u8; 2] {
    if check == [0, 0] {
        check
    } else {
        update_udp(check, delta)
    }
}

/// Adds the 16-bit words of a byte slice (memory order) to `acc`.
pub fn add_slice(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_ne_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    acc
}

/// Full IPv4 header checksum of `hdr` (the header only; its checksum field at
/// bytes 10..12 is treated as zero).
pub fn ipv4_header_checksum(hdr: &[u8]) -> [u8; 2] {
    let mut acc = 0;
    if hdr.len() >= 12 {
        acc = add_slice(acc, &hdr[..10]);
        acc = add_slice(acc, &hdr[12..]);
    } else {
        acc = add_slice(acc, hdr);
    }
    (!fold(acc)).to_ne_bytes()
}

/// Sums a UDP datagram (header + payload) with its checksum field (bytes 6..8)
/// treated as zero.
fn add_udp(acc: u64, udp: &[u8]) -> u64 {
    if udp.len() >= 8 {
        add_slice(add_slice(acc, &udp[..6]), &udp[8..])
    } else {
        add_slice(acc, udp)
    }
}

/// Full UDP checksum over IPv4 (pseudo-header + `udp`, whose checksum field is
/// treated as zero); a computed 0 is returned as `0xFFFF`.
pub fn udp4_checksum(src: [u8; 4], dst: [u8; 4], udp: &[u8]) -> [u8; 2] {
    let len = (udp.len() as u16).to_be_bytes();
    let mut acc = add(add(0, &src), &dst);
    acc = add(acc, &[0, 17]);
    acc = add(acc, &len);
    finish_udp(add_udp(acc, udp))
}

/// Full UDP checksum over IPv6 (pseudo-header + `udp`, whose checksum field is
/// treated as zero); a computed 0 is returned as `0xFFFF`.
pub fn udp6_checksum(src: [u8; 16], dst: [u8; 16], udp: &[u8]) -> [u8; 2] {
    let len = (udp.len() as u32).to_be_bytes();
    let mut acc = add(add(0, &src), &dst);
    acc = add(acc, &len);
    acc = add(acc, &[0, 0, 0, 17]);
    finish_udp(add_udp(acc, udp))
}

fn finish_udp(acc: u64) -> [u8; 2] {
    let c = !fold(acc);
    if c == 0 {
        [0xff, 0xff]
    } else {
        c.to_ne_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny deterministic xorshift64* generator (no dependencies).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn bytes<const N: usize>(&mut self) -> [u8; N] {
            let mut b = [0u8; N];
            for x in &mut b {
                *x = self.next() as u8;
            }
            b
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Translating a datagram between IPv4 and IPv6 only swaps the
    /// pseudo-header's addresses (protocol and length sum the same): the
    /// incremental update equals a full recomputation, both ways.
    #[test]
    fn replacing_addresses_across_families() {
        let mut rng = Rng(0x5eed_cafe);
        for _ in 0..500 {
            let (s4, d4) = (rng.bytes::<4>(), rng.bytes::<4>());
            let (s6, d6) = (rng.bytes::<16>(), rng.bytes::<16>());
            let len = 8 + rng.below(200) as usize;
            let mut udp: std::vec::Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            udp[4..6].copy_from_slice(&(len as u16).to_be_bytes());
            let c4 = udp4_checksum(s4, d4, &udp);
            let c6 = udp6_checksum(s6, d6, &udp);
            let to6 = update_udp(c4, replace(replace(0, &s4, &s6), &d4, &d6));
            assert_eq!(to6, c6);
            let to4 = update_udp(c6, replace(replace(0, &s6, &s4), &d6, &d4));
            assert_eq!(to4, c4);
        }
    }

    #[test]
    fn fold_handles_carries() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xffff), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(0x1_fffe), 0xffff);
        assert_eq!(fold(u64::MAX), 0xffff);
        assert_eq!(fold(0xffff_ffff), 0xffff);
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2
        // (before complement), in network order.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        let s = fold(add_slice(0, &data));
        assert_eq!(s.to_ne_bytes(), [0xdd, 0xf2]);
    }

    #[test]
    fn known_ipv4_header() {
        // Classic example header (Wikipedia "IPv4 header checksum"): b861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header_checksum(&hdr), [0xb8, 0x61]);
    }

    #[test]
    fn udp_zero_rules() {
        // A received IPv4 checksum of 0 ("none") stays 0 whatever changes.
        assert_eq!(update_udp4([0, 0], replace(0, &[1, 2], &[3, 4])), [0, 0]);
        // A computed 0 becomes 0xFFFF: choose HC so that ~(~HC + ~m + m') == 0.
        // With m == m' the delta is 0xFFFF (== 0), so HC == 0 result 0 → FFFF.
        let d = replace(0, &[0x12, 0x34], &[0x12, 0x34]);
        assert_eq!(update(0u16.to_ne_bytes(), d), [0, 0]);
        assert_eq!(update_udp(0u16.to_ne_bytes(), d), [0xff, 0xff]);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(add(0, &[0xab]), u64::from(u16::from_ne_bytes([0xab, 0])));
        assert_eq!(add_slice(0, &[1, 2, 3]), add(0, &[1, 2, 3]));
    }

    fn build_v4(rng: &mut Rng, payload_len: usize, with_csum: bool) -> std::vec::Vec<u8> {
        let mut p = std::vec![0u8; 20 + 8 + payload_len];
        let tot = (p.len() as u16).to_be_bytes();
        p[0] = 0x45;
        p[1] = rng.next() as u8;
        p[2..4].copy_from_slice(&tot);
        p[4..6].copy_from_slice(&rng.bytes::<2>());
        p[6] = 0x40;
        p[8] = rng.next() as u8;
        p[9] = 17;
        p[12..16].copy_from_slice(&rng.bytes::<4>());
        p[16..20].copy_from_slice(&rng.bytes::<4>());
        let c = ipv4_header_checksum(&p[..20]);
        p[10..12].copy_from_slice(&c);
        p[20..22].copy_from_slice(&rng.bytes::<2>());
        p[22..24].copy_from_slice(&rng.bytes::<2>());
        p[24..26].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
        for b in &mut p[28..] {
            *b = rng.next() as u8;
        }
        if with_csum {
            let (s, d) = (arr::<4>(&p[12..16]), arr::<4>(&p[16..20]));
            let c = udp4_checksum(s, d, &p[20..]);
            p[26..28].copy_from_slice(&c);
        }
        p
    }

    fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        a
    }

    /// Rewrites addresses, ports, TOS and TTL incrementally (as the XDP program
    /// does) and compares with a full recomputation.
    #[test]
    fn incremental_matches_full_ipv4() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let with_csum = round % 10 != 0;
            let len = rng.below(200) as usize;
            let mut p = build_v4(&mut rng, len, with_csum);
            let old_src = arr::<4>(&p[12..16]);
            let old_dst = arr::<4>(&p[16..20]);
            let old_ports = arr::<4>(&p[20..24]);
            let old_tos_w = arr::<2>(&p[0..2]);
            let old_ttl_w = arr::<2>(&p[8..10]);
            let new_src: [u8; 4] = rng.bytes();
            let new_dst: [u8; 4] = rng.bytes();
            let new_ports: [u8; 4] = rng.bytes();
            let new_tos_w = [0x45, rng.next() as u8];
            let new_ttl_w = [rng.next() as u8, 17];

            let addr_d = replace(replace(0, &old_src, &new_src), &old_dst, &new_dst);
            let ip_d = replace(
                replace(addr_d, &old_tos_w, &new_tos_w),
                &old_ttl_w,
                &new_ttl_w,
            );
            let udp_d = replace(addr_d, &old_ports, &new_ports);
            let ipc = update(arr(&p[10..12]), ip_d);
            let udpc = update_udp4(arr(&p[26..28]), udp_d);

            p[0..2].copy_from_slice(&new_tos_w);
            p[8..10].copy_from_slice(&new_ttl_w);
            p[12..16].copy_from_slice(&new_src);
            p[16..20].copy_from_slice(&new_dst);
            p[20..24].copy_from_slice(&new_ports);

            assert_eq!(ipc, ipv4_header_checksum(&p[..20]), "round {round}");
            if with_csum {
                assert_eq!(
                    udpc,
                    udp4_checksum(new_src, new_dst, &p[20..]),
                    "round {round}"
                );
            } else {
                assert_eq!(udpc, [0, 0]);
            }
        }
    }

    #[test]
    fn incremental_matches_full_ipv6() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        for round in 0..20_000 {
            let len = rng.below(300) as usize;
            let mut udp = std::vec![0u8; 8 + len];
            for b in udp.iter_mut() {
                *b = rng.next() as u8;
            }
            udp[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
            let (src, dst): ([u8; 16], [u8; 16]) = (rng.bytes(), rng.bytes());
            let c = udp6_checksum(src, dst, &udp);
            udp[6..8].copy_from_slice(&c);

            let (nsrc, ndst): ([u8; 16], [u8; 16]) = (rng.bytes(), rng.bytes());
            let nports: [u8; 4] = rng.bytes();
            let d = replace(replace(0, &src, &nsrc), &dst, &ndst);
            let d = replace(d, &arr::<4>(&udp[0..4]), &nports);
            let inc = update_udp(arr(&udp[6..8]), d);
            udp[0..4].copy_from_slice(&nports);
            assert_eq!(inc, udp6_checksum(nsrc, ndst, &udp), "round {round}");
            // A receiver verifies by summing everything including the checksum.
            let mut acc = add(add(0, &nsrc), &ndst);
            acc = add(acc, &((udp.len() as u32).to_be_bytes()));
            acc = add(acc, &[0, 0, 0, 17]);
            udp[6..8].copy_from_slice(&inc);
            assert_eq!(fold(add_slice(acc, &udp)), 0xffff, "round {round}");
        }
    }
}
