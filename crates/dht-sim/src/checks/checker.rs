//! Checkers: every result the overlays report is compared with a reference model.
//!
//! - A lookup's returned nodes are compared with the true owners of its key among the nodes
//!   alive when it ended, as given by the overlay's [`OwnerOracle`] (Kademlia: the k closest by
//!   XOR; ring overlays: the successor). It succeeds when the overlay says it reached the key
//!   *and* it returned the true closest owner as of its end, or as of its start where the rule
//!   is cheap enough to evaluate then ([`OwnerOracle::cheap_at_start`]): the owner at some
//!   instant while it ran, since a node that joins mid-lookup cannot be asked for. The count of
//!   lookups right by the end alone is reported too. Recall at k is the fraction of the end's
//!   true owners it returned.
//! - A get is compared with what was put: its value must be the value of the highest sequence
//!   number acknowledged before the get began (or a newer one that was put since). A value that
//!   was never put under that key is corruption, a hard correctness failure; an older version
//!   is stale; nothing is missing.
//!
//! Checkers count rather than stop the run, and the run's verdict compares the counts with
//! the run's thresholds. They must be able to fail: the tests plant wrong answers and dropped
//! values and check that the counts move.

use std::collections::BTreeMap;

use dht_proto::Id;

use crate::overlays::overlay::{NodeIdx, OverlayNode};
use crate::world::live::LiveIndex;

/// Who truly owns a key, by an overlay's own rule. The engine asks it when a lookup ends.
///
/// Overlays whose owner is not the XOR-closest node (the ring overlays, CAN) provide their own;
/// `nodes` gives the oracle read access to every node's state (dead slots are `None` or not
/// live) for rules that depend on it, such as CAN's zones.
pub trait OwnerOracle<N> {
    /// The rule's name, for the printed parameters.
    fn rule(&self) -> &'static str;

    /// The true owners of `key` among the live nodes, most responsible first.
    fn owners(&self, key: &Id, live: &LiveIndex, nodes: &[Option<N>]) -> Vec<NodeIdx>;

    /// The same, given the overlay's answer `found`: a rule that is costly to evaluate from
    /// scratch (CAN's zones) may first verify the answer and search only when it is wrong.
    fn owners_given(
        &self,
        key: &Id,
        live: &LiveIndex,
        nodes: &[Option<N>],
        _found: &[NodeIdx],
    ) -> Vec<NodeIdx> {
        self.owners(key, live, nodes)
    }

    /// Whether [`owners`](Self::owners) is cheap enough to evaluate when every lookup starts,
    /// so that a lookup may also be judged by the owner at its start (default: no, lookups
    /// are judged by their end alone).
    fn cheap_at_start(&self) -> bool {
        false
    }
}

/// Kademlia's rule: the `k` live nodes closest to the key by XOR.
#[derive(Debug, Clone, Copy)]
pub struct XorClosest {
    /// How many owners (Mainline: 8).
    pub k: usize,
}

impl<N> OwnerOracle<N> for XorClosest {
    fn rule(&self) -> &'static str {
        "xor-closest"
    }

    fn owners(&self, key: &Id, live: &LiveIndex, _nodes: &[Option<N>]) -> Vec<NodeIdx> {
        live.xor_closest(key, self.k)
            .into_iter()
            .map(|(_, i)| i)
            .collect()
    }

    fn cheap_at_start(&self) -> bool {
        true
    }
}

/// Kademlia's rule with adversaries among the nodes ([`crate::adversary`]): the honest nodes
/// among the `k` live nodes closest to the key by XOR, closest first; if all `k` are
/// adversaries, the closest honest node beyond them. A lookup succeeds when it returns the
/// closest honest node; its recall counts the honest owners it returned, so adversaries that
/// truly are among the closest do not count against it.
#[derive(Debug, Clone, Copy)]
pub struct HonestXorClosest {
    /// How many nodes to look at (Mainline: 8).
    pub k: usize,
}

impl<N: OverlayNode> OwnerOracle<N> for HonestXorClosest {
    fn rule(&self) -> &'static str {
        "honest-xor-closest"
    }

    fn owners(&self, key: &Id, live: &LiveIndex, nodes: &[Option<N>]) -> Vec<NodeIdx> {
        let honest = |i: &NodeIdx| {
            nodes
                .get(*i as usize)
                .and_then(Option::as_ref)
                .is_some_and(|n| !n.is_adversary())
        };
        let mut owners: Vec<NodeIdx> = live
            .xor_closest(key, self.k)
            .into_iter()
            .map(|(_, i)| i)
            .filter(honest)
            .collect();
        let mut want = self.k.max(1);
        // Bounded by the live nodes: `want` grows fourfold each time.
        while owners.is_empty() && want < live.len() {
            want *= 4;
            owners = live
                .xor_closest(key, want)
                .into_iter()
                .map(|(_, i)| i)
                .filter(honest)
                .take(1)
                .collect();
        }
        owners
    }

    fn cheap_at_start(&self) -> bool {
        true
    }
}

/// Chord's rule: the first live node at or after the key on the identifier ring.
#[derive(Debug, Clone, Copy)]
pub struct RingSuccessor;

impl<N> OwnerOracle<N> for RingSuccessor {
    fn rule(&self) -> &'static str {
        "ring-successor"
    }

    fn owners(&self, key: &Id, live: &LiveIndex, _nodes: &[Option<N>]) -> Vec<NodeIdx> {
        live.ring_successor(key)
            .map(|(_, i)| i)
            .into_iter()
            .collect()
    }

    fn cheap_at_start(&self) -> bool {
        true
    }
}

/// What a finished lookup's answer was worth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LookupVerdict {
    /// The overlay said it reached the key and returned the most responsible true owner as of
    /// its end or its start.
    pub success: bool,
    /// The same, as of its end alone.
    pub success_at_end: bool,
    /// The overlay said it reached the key but the answer excludes the true owner.
    pub wrong: bool,
    /// Fraction of the true owners that the answer contains.
    pub recall: f64,
}

/// Judges one lookup answer against the true owners at its end (`owners`) and the most
/// responsible owner at its start (`owner_at_start`, if the rule gave one).
pub fn judge_lookup(
    ok: bool,
    found: &[NodeIdx],
    owners: &[NodeIdx],
    owner_at_start: Option<NodeIdx>,
) -> LookupVerdict {
    if owners.is_empty() {
        // Nobody alive owns anything; only an empty answer is right.
        let success = ok && found.is_empty();
        return LookupVerdict {
            success,
            success_at_end: success,
            wrong: false,
            recall: 1.0,
        };
    }
    let hit = owners.iter().filter(|o| found.contains(o)).count();
    let at_end = found.contains(&owners[0]);
    let right = at_end || owner_at_start.is_some_and(|o| found.contains(&o));
    LookupVerdict {
        success: ok && right,
        success_at_end: ok && at_end,
        wrong: ok && !right,
        recall: hit as f64 / owners.len() as f64,
    }
}

/// What a get returned, judged against the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetVerdict {
    /// The latest acknowledged version (or a newer one).
    Correct,
    /// A genuine but older version.
    Stale,
    /// Nothing was found.
    Missing,
    /// A value never put under this key: a correctness failure.
    Corrupt,
}

/// One stored item in the reference model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemRecord {
    /// Whether the item is mutable (BEP 44 mutable items carry a sequence number).
    pub mutable: bool,
    /// Number of the item, from which its values are derived.
    pub number: u64,
    /// Highest sequence number sent in a put.
    pub seq_sent: i64,
    /// Highest sequence number acknowledged by at least one replica, or -1.
    pub seq_acked: i64,
}

/// The reference model of what was put: for each key, its item record.
#[derive(Debug, Default)]
pub struct Reference {
    items: BTreeMap<Id, ItemRecord>,
    /// Keys with at least one acknowledged put, for picking a key to get.
    acked_keys: Vec<Id>,
}

/// Bytes of payload in each generated value (before its bencode prefix).
pub const VALUE_PAYLOAD_LEN: usize = 64;

/// The value stored for version `seq` of item `number` of run `seed`: a bencoded byte string
/// of [`VALUE_PAYLOAD_LEN`] bytes, so every overlay (and BEP 44, which stores bencoded values)
/// can carry it as is and the checker can recompute it.
pub fn value_for(seed: u64, number: u64, seq: i64) -> Vec<u8> {
    let mut payload = format!("item {number} seq {seq} run {seed} ");
    while payload.len() < VALUE_PAYLOAD_LEN {
        payload.push('.');
    }
    payload.truncate(VALUE_PAYLOAD_LEN);
    format!("{}:{}", payload.len(), payload).into_bytes()
}

impl Reference {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a new item under `key`.
    pub fn add(&mut self, key: Id, record: ItemRecord) {
        self.items.insert(key, record);
    }

    /// The item under `key`.
    pub fn get(&self, key: &Id) -> Option<&ItemRecord> {
        self.items.get(key)
    }

    /// Records that a put of version `seq` under `key` was sent.
    pub fn sent(&mut self, key: &Id, seq: i64) {
        if let Some(r) = self.items.get_mut(key) {
            r.seq_sent = r.seq_sent.max(seq);
        }
    }

    /// Records that a put of version `seq` under `key` was acknowledged by `acked` replicas.
    pub fn acknowledged(&mut self, key: &Id, seq: i64, acked: u32) {
        if acked == 0 {
            return;
        }
        if let Some(r) = self.items.get_mut(key) {
            if r.seq_acked < 0 {
                self.acked_keys.push(*key);
            }
            r.seq_acked = r.seq_acked.max(seq);
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item was put.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Keys with at least one acknowledged put, in the order they were first acknowledged.
    pub fn acked_keys(&self) -> &[Id] {
        &self.acked_keys
    }

    /// All items, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Id, &ItemRecord)> {
        self.items.iter()
    }

    /// Judges a get of `key` that began when `expected_seq` was the highest acknowledged
    /// version, and returned `value`.
    pub fn judge_get(
        &self,
        seed: u64,
        key: &Id,
        expected_seq: i64,
        value: Option<&(Vec<u8>, i64)>,
    ) -> GetVerdict {
        let Some(rec) = self.items.get(key) else {
            return if value.is_some() {
                GetVerdict::Corrupt
            } else {
                GetVerdict::Missing
            };
        };
        let Some((bytes, seq)) = value else {
            return GetVerdict::Missing;
        };
        let seq = if rec.mutable { *seq } else { 0 };
        if seq < 0 || seq > rec.seq_sent || *bytes != value_for(seed, rec.number, seq) {
            return GetVerdict::Corrupt;
        }
        if seq >= expected_seq {
            GetVerdict::Correct
        } else {
            GetVerdict::Stale
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_without_the_true_owner_is_wrong_even_when_the_overlay_says_ok() {
        let v = judge_lookup(true, &[5, 6], &[1, 5, 6], None);
        assert!(!v.success && v.wrong);
        assert!((v.recall - 2.0 / 3.0).abs() < 1e-12);
        let v = judge_lookup(true, &[1, 9], &[1, 5], None);
        assert!(v.success && !v.wrong);
        let v = judge_lookup(false, &[1], &[1], None);
        assert!(!v.success && !v.wrong);
    }

    #[test]
    fn lookup_is_right_with_the_owner_at_its_start_or_its_end_but_not_another() {
        // Node 7 owned the key when the lookup began; node 1 joined closer meanwhile.
        let v = judge_lookup(true, &[7, 5], &[1, 7, 5], Some(7));
        assert!(v.success && !v.wrong && !v.success_at_end);
        // Neither the owner at the start nor the one at the end: wrong.
        let v = judge_lookup(true, &[5, 6], &[1, 5, 6], Some(7));
        assert!(!v.success && v.wrong && !v.success_at_end);
        let v = judge_lookup(true, &[1, 6], &[1, 5, 6], Some(7));
        assert!(v.success && v.success_at_end);
    }

    #[test]
    fn get_verdicts_distinguish_correct_stale_missing_and_corrupt() {
        let seed = 4;
        let mut r = Reference::new();
        let key = Id::sha1(b"k");
        r.add(
            key,
            ItemRecord {
                mutable: true,
                number: 3,
                seq_sent: 0,
                seq_acked: -1,
            },
        );
        r.sent(&key, 1);
        r.acknowledged(&key, 1, 2);
        r.sent(&key, 2);
        r.acknowledged(&key, 2, 1);
        let v2 = (value_for(seed, 3, 2), 2);
        let v1 = (value_for(seed, 3, 1), 1);
        assert_eq!(r.judge_get(seed, &key, 2, Some(&v2)), GetVerdict::Correct);
        assert_eq!(r.judge_get(seed, &key, 2, Some(&v1)), GetVerdict::Stale);
        assert_eq!(r.judge_get(seed, &key, 2, None), GetVerdict::Missing);
        let forged = (value_for(seed, 4, 2), 2);
        assert_eq!(
            r.judge_get(seed, &key, 2, Some(&forged)),
            GetVerdict::Corrupt
        );
        let future = (value_for(seed, 3, 9), 9);
        assert_eq!(
            r.judge_get(seed, &key, 2, Some(&future)),
            GetVerdict::Corrupt
        );
        assert_eq!(r.acked_keys(), &[key]);
    }
}
