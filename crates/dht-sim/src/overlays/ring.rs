//! Ring arithmetic of the ring overlays (Chord, Pastry, the one-hop ring): positions on the
//! 2^128 identifier ring, intervals that wrap around zero, and a contact as other nodes know it.

use dht_proto::Id;

use crate::overlays::overlay::NodeIdx;

/// A position on the identifier ring: the top 128 bits of the 160-bit identifier, read as a
/// big-endian integer. 128 bits keep arithmetic native while collisions stay impossible in
/// practice (a million nodes collide with probability about 2^-88).
pub fn ring_pos(id: &Id) -> u128 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&id.0[..16]);
    u128::from_be_bytes(b)
}

/// An identifier whose top 128 bits are `pos` (the low 32 bits zero): the inverse of
/// [`ring_pos`] for targets the overlay computes, like Chord's finger starts.
pub fn id_at(pos: u128) -> Id {
    let mut b = [0u8; 20];
    b[..16].copy_from_slice(&pos.to_be_bytes());
    Id(b)
}

/// Whether `x` lies in the half-open ring interval (a, b]; the whole ring when a == b.
pub fn in_half_open(x: u128, a: u128, b: u128) -> bool {
    if a == b {
        return true;
    }
    x.wrapping_sub(a) != 0 && x.wrapping_sub(a) <= b.wrapping_sub(a)
}

/// Whether `x` lies strictly inside the ring interval (a, b); everything but `a` when a == b.
pub fn in_open(x: u128, a: u128, b: u128) -> bool {
    if a == b {
        return x != a;
    }
    x.wrapping_sub(a) != 0 && x.wrapping_sub(a) < b.wrapping_sub(a)
}

/// A node as other nodes know it: ring position and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contact {
    /// Ring position (top 128 bits of the identifier).
    pub pos: u128,
    /// Address.
    pub idx: NodeIdx,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_intervals_wrap_around_zero() {
        assert!(in_half_open(5, 250, 10));
        assert!(in_half_open(10, 250, 10));
        assert!(!in_half_open(250, 250, 10));
        assert!(!in_half_open(100, 250, 10));
        assert!(in_open(u128::MAX, 250, 10));
        assert!(!in_open(10, 250, 10));
    }

    #[test]
    fn ring_pos_and_id_at_round_trip() {
        let p = 0x0123_4567_89ab_cdef_0011_2233_4455_6677u128;
        assert_eq!(ring_pos(&id_at(p)), p);
    }
}
