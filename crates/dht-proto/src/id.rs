//! The key space: 160-bit identifiers shared by nodes and keys, the XOR metric, and BEP 42 node
//! IDs tied to the node's external IP address.

use core::fmt;
use std::net::IpAddr;

use rand::RngCore;
use sha1::{Digest, Sha1};

/// Length of an identifier in bytes.
pub const ID_LEN: usize = 20;

/// Number of bits in an identifier, and so the number of possible buckets.
pub const ID_BITS: usize = ID_LEN * 8;

/// A 160-bit identifier: a node ID, an info-hash or a BEP 44 target.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(pub [u8; ID_LEN]);

/// The XOR distance between two identifiers; compares as a big-endian 160-bit number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct Distance(pub [u8; ID_LEN]);

impl Distance {
    /// The distance as (high 64 bits, middle 64 bits, low 32 bits): comparing these tuples
    /// orders distances like the 160-bit numbers, in three integer comparisons instead of a
    /// byte-wise memcmp (distance comparisons are the lookup's and the table's hottest path).
    #[inline]
    fn words(&self) -> (u64, u64, u32) {
        let b = &self.0;
        (
            u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
            u32::from_be_bytes([b[16], b[17], b[18], b[19]]),
        )
    }
}

impl Ord for Distance {
    #[inline]
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.words().cmp(&other.words())
    }
}

impl PartialOrd for Distance {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Id {
    /// The identifier with every bit zero.
    pub const ZERO: Id = Id([0; ID_LEN]);

    /// A uniformly random identifier drawn from `rng`.
    pub fn random(rng: &mut impl RngCore) -> Id {
        let mut b = [0u8; ID_LEN];
        rng.fill_bytes(&mut b);
        Id(b)
    }

    /// SHA-1 of `data`: the key of an immutable BEP 44 item is SHA-1 of its bencoded value.
    pub fn sha1(data: &[u8]) -> Id {
        Id(Sha1::digest(data).into())
    }

    /// SHA-1 over several byte strings in order, as BEP 44 uses for `public key || salt`.
    pub fn sha1_parts(parts: &[&[u8]]) -> Id {
        let mut h = Sha1::new();
        for p in parts {
            h.update(p);
        }
        Id(h.finalize().into())
    }

    /// Parses an identifier from exactly 20 bytes.
    pub fn from_slice(b: &[u8]) -> Option<Id> {
        <[u8; ID_LEN]>::try_from(b).ok().map(Id)
    }

    /// Parses 40 hexadecimal digits (either case).
    pub fn from_hex(s: &str) -> Option<Id> {
        let s = s.as_bytes();
        if s.len() != ID_LEN * 2 {
            return None;
        }
        let mut out = [0u8; ID_LEN];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Id(out))
    }

    /// The XOR distance to `other`.
    pub fn distance(&self, other: &Id) -> Distance {
        let mut d = [0u8; ID_LEN];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// The bytes of the identifier.
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// The bit at `index` (0 is the most significant bit).
    pub fn bit(&self, index: usize) -> bool {
        (self.0[index / 8] >> (7 - index % 8)) & 1 == 1
    }

    /// A random identifier that shares exactly the first `prefix_len` bits with `self` and
    /// differs at bit `prefix_len`: a target that falls in bucket `prefix_len` of a table owned by
    /// `self`. Used to refresh a bucket.
    pub fn random_in_bucket(&self, prefix_len: usize, rng: &mut impl RngCore) -> Id {
        let mut out = Id::random(rng);
        for i in 0..prefix_len.min(ID_BITS) {
            out.set_bit(i, self.bit(i));
        }
        if prefix_len < ID_BITS {
            out.set_bit(prefix_len, !self.bit(prefix_len));
        }
        out
    }

    fn set_bit(&mut self, index: usize, value: bool) {
        let mask = 1u8 << (7 - index % 8);
        if value {
            self.0[index / 8] |= mask;
        } else {
            self.0[index / 8] &= !mask;
        }
    }
}

impl Distance {
    /// The number of leading zero bits: the length of the common prefix of the two identifiers.
    pub fn leading_zeros(&self) -> usize {
        for (i, b) in self.0.iter().enumerate() {
            if *b != 0 {
                return i * 8 + b.leading_zeros() as usize;
            }
        }
        ID_BITS
    }

    /// log2 of the distance rounded down, as an approximate scalar (160 for identical IDs is
    /// reported as 0 bits). Useful for printing how close a contact is to a target.
    pub fn log2(&self) -> u32 {
        (ID_BITS - self.leading_zeros()) as u32
    }

    /// The distance as a fraction of the key space, in [0, 1) (from its top 64 bits, plenty for
    /// any network smaller than 2^50 nodes).
    pub fn fraction(&self) -> f64 {
        let mut top = [0u8; 8];
        top.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(top) as f64 / 18_446_744_073_709_551_616.0
    }
}

/// An estimate of how many nodes share the key space, from the distances between one point and
/// the nodes closest to it (at least 2 wanted; the more, the steadier).
///
/// With N node IDs spread uniformly, the i-th closest to any point lies about i/N of the key
/// space away; the least-squares line through the origin of i against the i-th distance has the
/// slope Σ i·dᵢ / Σ dᵢ², which estimates N (the point's own node, if it is one, not counted).
/// With the 8 closest contacts the estimate's spread is about a third of N. None without
/// distances or when all are 0.
pub fn estimate_network_size(distances: &[Distance]) -> Option<u64> {
    let mut fractions: Vec<f64> = distances.iter().map(Distance::fraction).collect();
    fractions.sort_by(f64::total_cmp);
    let (mut num, mut den) = (0.0, 0.0);
    for (i, d) in fractions.iter().enumerate() {
        num += (i + 1) as f64 * d;
        den += d * d;
    }
    (den > 0.0).then(|| (num / den).round() as u64)
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({self})")
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Whether an address is exempt from BEP 42 checks and from the one-entry-per-IP rule: loopback,
/// private, link-local and unspecified addresses, as BEP 42 says.
pub fn is_local_address(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg0 & 0xfe00) == 0xfc00 // unique local
                || (seg0 & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_local_address(&IpAddr::V4(v4)))
        }
    }
}

/// The BEP 42 CRC32C of `ip` with random number `r` (0..=7).
fn bep42_crc(ip: &IpAddr, r: u8) -> u32 {
    match ip {
        IpAddr::V4(v4) => {
            const MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];
            let mut b = v4.octets();
            for (x, m) in b.iter_mut().zip(MASK) {
                *x &= m;
            }
            b[0] |= (r & 7) << 5;
            crc32c::crc32c(&b)
        }
        IpAddr::V6(v6) => {
            const MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];
            let o = v6.octets();
            let mut b = [0u8; 8];
            for i in 0..8 {
                b[i] = o[i] & MASK[i];
            }
            b[0] |= (r & 7) << 5;
            crc32c::crc32c(&b)
        }
    }
}

/// A node ID that is valid for `ip` under BEP 42; the rest of the ID is drawn from `rng`.
pub fn bep42_id(ip: &IpAddr, rng: &mut impl RngCore) -> Id {
    let mut id = Id::random(rng);
    let rand = id.0[19];
    let crc = bep42_crc(ip, rand & 7);
    id.0[0] = (crc >> 24) as u8;
    id.0[1] = (crc >> 16) as u8;
    id.0[2] = ((crc >> 8) as u8 & 0xf8) | (id.0[2] & 0x07);
    id
}

/// Whether `id` is a valid BEP 42 node ID for `ip`. Local addresses are always accepted.
pub fn bep42_valid(id: &Id, ip: &IpAddr) -> bool {
    if is_local_address(ip) {
        return true;
    }
    let crc = bep42_crc(ip, id.0[19] & 7);
    id.0[0] == (crc >> 24) as u8
        && id.0[1] == (crc >> 16) as u8
        && (id.0[2] & 0xf8) == ((crc >> 8) as u8 & 0xf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    /// The test vectors of BEP 42: IP, the random byte, and the bytes the IP fixes.
    const VECTORS: [(&str, u8, [u8; 3]); 5] = [
        ("124.31.75.21", 1, [0x5f, 0xbf, 0xbf]),
        ("21.75.31.124", 86, [0x5a, 0x3c, 0xe9]),
        ("65.23.51.170", 22, [0xa5, 0xd4, 0x32]),
        ("84.124.73.14", 65, [0x1b, 0x03, 0x21]),
        ("43.213.53.83", 90, [0xe5, 0x6f, 0x6c]),
    ];

    #[test]
    fn bep42_test_vectors_match_the_spec() {
        for (ip, rand, prefix) in VECTORS {
            let ip: IpAddr = ip.parse().unwrap();
            let crc = bep42_crc(&ip, rand & 7);
            assert_eq!((crc >> 24) as u8, prefix[0], "{ip}");
            assert_eq!((crc >> 16) as u8, prefix[1], "{ip}");
            assert_eq!((crc >> 8) as u8 & 0xf8, prefix[2] & 0xf8, "{ip}");
            let mut id = Id([0x55; 20]);
            id.0[..3].copy_from_slice(&prefix);
            id.0[19] = rand;
            assert!(bep42_valid(&id, &ip), "{ip}");
            id.0[0] ^= 0x80;
            assert!(
                !bep42_valid(&id, &ip),
                "{ip} with a flipped bit must be invalid"
            );
        }
    }

    #[test]
    fn generated_ids_are_valid_for_their_address_only() {
        let mut rng = SmallRng::seed_from_u64(1);
        let ip: IpAddr = "124.31.75.21".parse().unwrap();
        let other: IpAddr = "21.75.31.124".parse().unwrap();
        for _ in 0..100 {
            let id = bep42_id(&ip, &mut rng);
            assert!(bep42_valid(&id, &ip));
            assert!(!bep42_valid(&id, &other));
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let id = bep42_id(&v6, &mut rng);
        assert!(bep42_valid(&id, &v6));
    }

    #[test]
    fn local_addresses_are_exempt_from_bep42() {
        let id = Id([0xab; 20]);
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.5",
            "172.16.4.4",
            "::1",
            "fd00::1",
        ] {
            assert!(bep42_valid(&id, &ip.parse().unwrap()), "{ip}");
        }
        assert!(!bep42_valid(&id, &"8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn distance_orders_by_xor_and_counts_prefix_bits() {
        let a = Id([0; 20]);
        let mut b = Id([0; 20]);
        b.0[2] = 0x10;
        assert_eq!(a.distance(&b).leading_zeros(), 19);
        assert_eq!(a.distance(&a).leading_zeros(), 160);
        let mut c = b;
        c.0[19] = 1;
        assert!(a.distance(&b) < a.distance(&c));
    }

    #[test]
    fn distance_order_is_the_order_of_the_bytes() {
        let mut rng = SmallRng::seed_from_u64(5);
        for _ in 0..10_000 {
            let mut a = Id::random(&mut rng).distance(&Id::ZERO);
            let mut b = Id::random(&mut rng).distance(&Id::ZERO);
            // Share a random-length prefix so later words get compared too.
            let shared = (rng.next_u32() % 21) as usize;
            b.0[..shared].copy_from_slice(&a.0[..shared]);
            if rng.next_u32() % 7 == 0 {
                a = b;
            }
            assert_eq!(a.cmp(&b), a.0.cmp(&b.0));
        }
    }

    #[test]
    fn random_in_bucket_shares_exactly_the_prefix() {
        let mut rng = SmallRng::seed_from_u64(2);
        let me = Id::random(&mut rng);
        for p in [0, 1, 7, 8, 63, 159] {
            let t = me.random_in_bucket(p, &mut rng);
            assert_eq!(me.distance(&t).leading_zeros(), p);
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let id = Id::sha1(b"hello");
        assert_eq!(Id::from_hex(&id.to_string()), Some(id));
        assert_eq!(Id::from_hex("zz"), None);
        assert_eq!(Id::from_hex(&"g".repeat(40)), None);
    }

    #[test]
    fn the_network_size_is_estimated_from_the_closest_distances_within_a_third_in_the_median() {
        let mut rng = SmallRng::seed_from_u64(7);
        for n in [1_000usize, 100_000] {
            let mut estimates: Vec<u64> = (0..41)
                .map(|_| {
                    let ids: Vec<Id> = (0..n).map(|_| Id::random(&mut rng)).collect();
                    let own = ids[0];
                    let mut d: Vec<Distance> = ids[1..].iter().map(|i| own.distance(i)).collect();
                    d.sort();
                    estimate_network_size(&d[..8]).unwrap()
                })
                .collect();
            estimates.sort();
            let median = estimates[estimates.len() / 2] as f64;
            assert!(
                (median / n as f64 - 1.0).abs() < 0.34,
                "n {n}: median estimate {median}, all {estimates:?}"
            );
        }
        assert_eq!(estimate_network_size(&[]), None);
        assert_eq!(estimate_network_size(&[Distance([0; ID_LEN])]), None);
    }
}
