//! Write tokens: what a node hands out in `get_peers` and `get` replies and demands back in
//! `announce_peer` and `put`, so that only a node that really is at an IP address can store
//! under it.
//!
//! A token is the first [`TOKEN_LEN`] bytes of SHA-1(secret || IP || target). The secret is
//! random and rotates every [`SECRET_ROTATE_EVERY`]; tokens from the previous secret are still
//! accepted, so a token lives between 5 and 10 minutes. A keyed cryptographic hash cannot be
//! forged from samples, unlike a CRC.

use core::time::Duration;
use std::net::IpAddr;

use rand::RngCore;
use sha1::{Digest, Sha1};

use crate::id::Id;
use crate::time::Instant;

/// How often the secret changes (BEP 5 suggests 5 minutes).
pub const SECRET_ROTATE_EVERY: Duration = Duration::from_secs(5 * 60);

/// Bytes of a token.
pub const TOKEN_LEN: usize = 8;

/// Issues and checks write tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    rotated_at: Instant,
}

impl Tokens {
    /// Fresh secrets from `rng`.
    pub fn new(now: Instant, rng: &mut impl RngCore) -> Self {
        let mut current = [0u8; 16];
        let mut previous = [0u8; 16];
        rng.fill_bytes(&mut current);
        rng.fill_bytes(&mut previous);
        Tokens {
            current,
            previous,
            rotated_at: now,
        }
    }

    /// Rotates the secret if it is due. Returns when the next rotation is due.
    pub fn maintain(&mut self, now: Instant, rng: &mut impl RngCore) -> Instant {
        if now - self.rotated_at >= SECRET_ROTATE_EVERY {
            self.previous = self.current;
            rng.fill_bytes(&mut self.current);
            self.rotated_at = now;
        }
        self.rotated_at + SECRET_ROTATE_EVERY
    }

    fn compute(secret: &[u8; 16], ip: &IpAddr, target: &Id) -> [u8; TOKEN_LEN] {
        let mut h = Sha1::new();
        h.update(secret);
        match ip {
            IpAddr::V4(v4) => h.update(v4.octets()),
            IpAddr::V6(v6) => h.update(v6.octets()),
        }
        h.update(target.0);
        let digest = h.finalize();
        let mut out = [0u8; TOKEN_LEN];
        out.copy_from_slice(&digest[..TOKEN_LEN]);
        out
    }

    /// The token for a requester at `ip` writing under `target`.
    pub fn issue(&self, ip: &IpAddr, target: &Id) -> [u8; TOKEN_LEN] {
        Self::compute(&self.current, ip, target)
    }

    /// Whether `token` was issued to `ip` for `target` by the current or previous secret.
    pub fn check(&self, token: &[u8], ip: &IpAddr, target: &Id) -> bool {
        token.len() == TOKEN_LEN
            && (token == Self::compute(&self.current, ip, target)
                || token == Self::compute(&self.previous, ip, target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn a_token_is_valid_for_its_ip_and_target_across_one_rotation_only() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut t = Tokens::new(Instant::ZERO, &mut rng);
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        let other: IpAddr = "1.2.3.5".parse().unwrap();
        let target = Id([1; 20]);
        let tok = t.issue(&ip, &target);
        assert!(t.check(&tok, &ip, &target));
        assert!(!t.check(&tok, &other, &target));
        assert!(!t.check(&tok, &ip, &Id([2; 20])));
        assert!(!t.check(&tok[..4], &ip, &target));
        let t1 = Instant::ZERO + SECRET_ROTATE_EVERY;
        t.maintain(t1, &mut rng);
        assert!(
            t.check(&tok, &ip, &target),
            "previous secret still accepted"
        );
        t.maintain(t1 + SECRET_ROTATE_EVERY, &mut rng);
        assert!(
            !t.check(&tok, &ip, &target),
            "two rotations later it is refused"
        );
    }
}
