//! Who is alive: the membership structure the engine, the workload and the checkers share.
//!
//! It answers three questions fast at a million nodes: is node `i` alive (a flag per node), pick
//! a random live node (a dense vector with swap-removal), and which live nodes are closest to a
//! key (an ordered set of `(Id, NodeIdx)`, searched by prefix blocks so the k XOR-closest come
//! out in O(160 log N) without a scan).

use std::collections::BTreeSet;

use dht_proto::Id;

use crate::engine::prefetch::prefetch;
use crate::overlays::overlay::NodeIdx;
use crate::rng::SimRng;

/// Marks a node that is not in the dense live vector.
const NOT_LIVE: u32 = u32::MAX;

/// The set of live nodes, by index and by ID.
#[derive(Debug, Default)]
pub struct LiveIndex {
    /// Live nodes ordered by ID (ties by index, so two nodes with one ID both fit).
    by_id: BTreeSet<(Id, NodeIdx)>,
    /// Live node indices, in no meaningful but deterministic order.
    dense: Vec<NodeIdx>,
    /// Position of each node in `dense`, or [`NOT_LIVE`].
    pos: Vec<u32>,
}

impl LiveIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of live nodes.
    pub fn len(&self) -> usize {
        self.dense.len()
    }

    /// Whether no node is alive.
    pub fn is_empty(&self) -> bool {
        self.dense.is_empty()
    }

    /// Whether node `idx` is alive.
    pub fn is_live(&self, idx: NodeIdx) -> bool {
        self.pos.get(idx as usize).is_some_and(|&p| p != NOT_LIVE)
    }

    /// Marks `idx` (with ID `id`) alive. Adding a live node again does nothing.
    pub fn insert(&mut self, idx: NodeIdx, id: Id) {
        if self.is_live(idx) {
            return;
        }
        if self.pos.len() <= idx as usize {
            self.pos.resize(idx as usize + 1, NOT_LIVE);
        }
        self.pos[idx as usize] = self.dense.len() as u32;
        self.dense.push(idx);
        self.by_id.insert((id, idx));
    }

    /// Marks `idx` (with ID `id`) dead. Removing a dead node does nothing.
    pub fn remove(&mut self, idx: NodeIdx, id: Id) {
        if !self.is_live(idx) {
            return;
        }
        let p = self.pos[idx as usize] as usize;
        self.dense.swap_remove(p);
        if let Some(&moved) = self.dense.get(p) {
            self.pos[moved as usize] = p as u32;
        }
        self.pos[idx as usize] = NOT_LIVE;
        self.by_id.remove(&(id, idx));
    }

    /// A hint to load what [`LiveIndex::is_live`] reads for `idx`.
    pub fn prefetch(&self, idx: NodeIdx) {
        if let Some(p) = self.pos.get(idx as usize) {
            prefetch(p as *const u32);
        }
    }

    /// A uniformly random live node, if any.
    pub fn random(&self, rng: &mut SimRng) -> Option<NodeIdx> {
        if self.dense.is_empty() {
            None
        } else {
            Some(self.dense[rng.below(self.dense.len() as u64) as usize])
        }
    }

    /// The live node indices (in the dense vector's order).
    pub fn iter(&self) -> impl Iterator<Item = NodeIdx> + '_ {
        self.dense.iter().copied()
    }

    /// Up to `want` live nodes closest to `key` by XOR, closest first.
    ///
    /// Walks the binary trie of the key space through range queries on the ordered set: at
    /// depth `p`, the half of the current block that agrees with `key` on bit `p` is closer than
    /// the other half. If that half holds fewer than the number still wanted, all of it is
    /// taken and the search goes on in the other half; if it holds a few more, all of it is in
    /// hand and the answer is its closest; only if it holds many does the search descend into
    /// it. So a search costs about log2(N / want) range queries, not one per bit of the ID.
    pub fn xor_closest(&self, key: &Id, want: usize) -> Vec<(Id, NodeIdx)> {
        let mut out: Vec<(Id, NodeIdx)> = Vec::with_capacity(want);
        // A half this small is read whole and finished in memory.
        let small = want.saturating_mul(4).max(16);
        let mut half: Vec<(Id, NodeIdx)> = Vec::with_capacity(small + 1);
        let mut target = *key;
        let mut depth = 0usize;
        while out.len() < want && depth < dht_proto::id::ID_BITS {
            let need = want - out.len();
            // The half of the current block that agrees with `target` on bit `depth`.
            let (lo, hi) = block(&target, depth + 1);
            half.clear();
            half.extend(
                self.by_id
                    .range((lo, 0)..=(hi, NodeIdx::MAX))
                    .take(small + 1)
                    .copied(),
            );
            if half.len() < need {
                out.append(&mut half);
                flip_bit(&mut target, depth);
            } else if half.len() <= small {
                // Within one block the order by distance to `key` is the order by distance
                // to `target`: the two differ only in bits the block's members all share.
                half.sort_unstable_by_key(|(id, idx)| (id.distance(key), *idx));
                out.extend(half.drain(..).take(need));
                break;
            }
            depth += 1;
        }
        if out.len() < want && depth == dht_proto::id::ID_BITS {
            // The search ended on a single ID; every node holding exactly it is equally close.
            let need = want - out.len();
            out.extend(
                self.by_id
                    .range((target, 0)..=(target, NodeIdx::MAX))
                    .take(need)
                    .copied(),
            );
        }
        out.sort_unstable_by_key(|(id, idx)| (id.distance(key), *idx));
        out
    }

    /// The first live node at or after `key` on the ring of IDs (wrapping), Chord's successor.
    pub fn ring_successor(&self, key: &Id) -> Option<(Id, NodeIdx)> {
        self.by_id
            .range((*key, 0)..)
            .next()
            .or_else(|| self.by_id.iter().next())
            .copied()
    }

    /// The last live node before `key` on the ring of IDs (wrapping).
    pub fn ring_predecessor(&self, key: &Id) -> Option<(Id, NodeIdx)> {
        self.by_id
            .range(..(*key, 0))
            .next_back()
            .or_else(|| self.by_id.iter().next_back())
            .copied()
    }

    /// Approximate heap bytes held (B-tree nodes are counted at about 1.5x their payload).
    pub fn heap_bytes(&self) -> usize {
        let entry = core::mem::size_of::<(Id, NodeIdx)>();
        self.by_id.len() * entry * 3 / 2 + self.dense.capacity() * 4 + self.pos.capacity() * 4
    }
}

/// The lowest and highest IDs that share the first `prefix_len` bits with `id`.
fn block(id: &Id, prefix_len: usize) -> (Id, Id) {
    let mut lo = *id;
    let mut hi = *id;
    for bit in prefix_len..dht_proto::id::ID_BITS {
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        lo.0[byte] &= !mask;
        hi.0[byte] |= mask;
    }
    (lo, hi)
}

fn flip_bit(id: &mut Id, bit: usize) {
    id.0[bit / 8] ^= 0x80u8 >> (bit % 8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(ids: &[(Id, NodeIdx)], key: &Id, k: usize) -> Vec<(Id, NodeIdx)> {
        let mut v = ids.to_vec();
        v.sort_by_key(|(id, idx)| (id.distance(key), *idx));
        v.truncate(k);
        v
    }

    #[test]
    fn xor_closest_matches_brute_force() {
        let mut rng = SimRng::new(11);
        let mut live = LiveIndex::new();
        let mut ids = Vec::new();
        for i in 0..3000u32 {
            let id = Id::random(&mut rng);
            live.insert(i, id);
            ids.push((id, i));
        }
        // Remove some so the index has holes.
        for i in (0..3000u32).step_by(7) {
            live.remove(i, ids[i as usize].0);
        }
        ids.retain(|(_, i)| i % 7 != 0);
        for _ in 0..300 {
            let key = Id::random(&mut rng);
            for k in [1, 8, 20] {
                assert_eq!(live.xor_closest(&key, k), brute(&ids, &key, k));
            }
        }
        // IDs in tight clusters and duplicated IDs take the deep paths of the walk.
        let mut clustered = LiveIndex::new();
        let mut cids = Vec::new();
        for i in 0..400u32 {
            let mut id = ids[(i % 5) as usize].0;
            id.0[19] = (i / 5) as u8 & 0x07;
            id.0[18] ^= ((i / 80) as u8) << 4;
            clustered.insert(i, id);
            cids.push((id, i));
        }
        for probe in 0..60u32 {
            let mut key = cids[(probe * 7 % 400) as usize].0;
            key.0[19] ^= probe as u8;
            for k in [1, 8, 20, 100] {
                assert_eq!(
                    clustered.xor_closest(&key, k),
                    brute(&cids, &key, k),
                    "{probe} {k}"
                );
            }
        }
        // A key equal to a live ID finds that node first.
        let (id, idx) = ids[5];
        assert_eq!(live.xor_closest(&id, 1), vec![(id, idx)]);
    }

    #[test]
    fn random_and_membership_follow_inserts_and_removes() {
        let mut rng = SimRng::new(3);
        let mut live = LiveIndex::new();
        let a = Id::random(&mut rng);
        let b = Id::random(&mut rng);
        live.insert(4, a);
        live.insert(9, b);
        live.remove(4, a);
        assert!(!live.is_live(4));
        assert!(live.is_live(9));
        assert_eq!(live.len(), 1);
        for _ in 0..10 {
            assert_eq!(live.random(&mut rng), Some(9));
        }
        assert_eq!(live.xor_closest(&a, 8), vec![(b, 9)]);
    }

    #[test]
    fn ring_successor_wraps_around() {
        let mut live = LiveIndex::new();
        let mut lo = Id::ZERO;
        lo.0[0] = 0x10;
        let mut hi = Id::ZERO;
        hi.0[0] = 0x80;
        live.insert(1, lo);
        live.insert(2, hi);
        let mut k = Id::ZERO;
        k.0[0] = 0x20;
        assert_eq!(live.ring_successor(&k), Some((hi, 2)));
        k.0[0] = 0x90;
        assert_eq!(live.ring_successor(&k), Some((lo, 1)));
    }
}
