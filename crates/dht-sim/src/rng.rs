//! Seeded randomness for the simulator.
//!
//! Every random choice of a run flows from the one `--seed`: the engine owns one [`SimRng`] for
//! its own draws (workload, loss, jitter, churn), and derives each node's seed and each node's
//! fixed properties (position, access delay) with [`mix`], so that a node's properties do not
//! depend on the order in which other draws happened. The overlays other than Kademlia (whose
//! node is `dht-proto`'s) draw from a [`SimRng`] of their own per node, seeded from that node's
//! seed; it is the one generator of the crate. The generator is written out here rather
//! than taken from `rand` because `rand` does not promise the same stream across versions, and
//! a report must replay byte for byte from its seed.

use std::time::Duration;

use rand::RngCore;

/// SplitMix64's finaliser: a fast, well-mixed hash of one 64-bit word.
pub const fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a seed with a stream label and an index, for per-node derived values.
pub const fn mix3(seed: u64, stream: u64, index: u64) -> u64 {
    mix(mix(seed ^ mix(stream)) ^ index)
}

/// A uniform float in [0, 1) from the top 53 bits of `bits`.
pub fn unit_f64(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// xoshiro256++: small, fast and with a stream fixed by its published definition.
#[derive(Debug, Clone)]
pub struct SimRng {
    s: [u64; 4],
}

impl SimRng {
    /// A generator whose whole stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut s = [0u64; 4];
        for w in &mut s {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *w = mix(x);
        }
        if s == [0; 4] {
            // The all-zero state is the one fixed point of xoshiro; mix() never yields it for
            // four consecutive inputs, but guard anyway.
            s[0] = 1;
        }
        SimRng { s }
    }

    /// The next 64 random bits.
    pub fn next_word(&mut self) -> u64 {
        let result = (self.s[0].wrapping_add(self.s[3]))
            .rotate_left(23)
            .wrapping_add(self.s[0]);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        unit_f64(self.next_word())
    }

    /// A uniform integer in [0, n); 0 when `n` is 0, drawing nothing (so a pick from an empty
    /// list is `list.get(0)`, which is `None`, not a panic).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the tiny bias (< n / 2^64) does not matter for a simulation.
        ((self.next_word() as u128 * n as u128) >> 64) as u64
    }

    /// A uniform duration in [0, d), in whole microseconds (0 when `d` is under 1 µs).
    pub fn jitter(&mut self, d: Duration) -> Duration {
        Duration::from_micros(self.below(d.as_micros().max(1) as u64))
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// An exponentially distributed value with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// A standard normal value (Box-Muller; one of the pair is discarded for simplicity).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

impl RngCore for SimRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_word() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.next_word()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_word().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_stream_and_different_seeds_differ() {
        let mut a = SimRng::new(7);
        let mut b = SimRng::new(7);
        let mut c = SimRng::new(8);
        let xa: Vec<u64> = (0..4).map(|_| a.next_word()).collect();
        let xb: Vec<u64> = (0..4).map(|_| b.next_word()).collect();
        let xc: Vec<u64> = (0..4).map(|_| c.next_word()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn below_zero_is_zero_and_draws_nothing() {
        let mut a = SimRng::new(3);
        let mut b = SimRng::new(3);
        assert_eq!(a.below(0), 0);
        assert_eq!(a.next_word(), b.next_word());
    }

    #[test]
    fn below_stays_in_range_and_unit_in_unit_interval() {
        let mut r = SimRng::new(1);
        for _ in 0..10_000 {
            assert!(r.below(10) < 10);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
