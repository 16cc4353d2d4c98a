//! The bounded item store one overlay node keeps.

use std::collections::BTreeMap;

use dht_proto::Id;

/// Items one node stores at most; a put beyond it is dropped and counted.
pub const STORE_ITEMS_MAX: usize = 65_536;
/// One node's share of the table: key to (value, sequence number), bounded by
/// [`STORE_ITEMS_MAX`]; a mutable item only replaces one with a lower or equal sequence number.
#[derive(Debug, Default, Clone)]
pub struct ItemStore {
    items: BTreeMap<Id, (Vec<u8>, i64)>,
    /// Puts dropped because the store was full.
    pub dropped: u64,
}

impl ItemStore {
    /// Stores `value`; returns whether it was kept.
    pub fn put(&mut self, key: Id, value: Vec<u8>, seq: i64) -> bool {
        if let Some(old) = self.items.get(&key) {
            if old.1 > seq {
                return false;
            }
        } else if self.items.len() >= STORE_ITEMS_MAX {
            self.dropped += 1;
            return false;
        }
        self.items.insert(key, (value, seq));
        true
    }

    /// The value under `key`.
    pub fn get(&self, key: &Id) -> Option<&(Vec<u8>, i64)> {
        self.items.get(key)
    }

    /// Removes the item under `key`; returns whether there was one.
    pub fn remove(&mut self, key: &Id) -> bool {
        self.items.remove(key).is_some()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Removes and returns the items whose key satisfies `pred` (for hand-over to a new owner).
    pub fn take_where(&mut self, mut pred: impl FnMut(&Id) -> bool) -> Vec<(Id, Vec<u8>, i64)> {
        let keys: Vec<Id> = self.items.keys().filter(|k| pred(k)).copied().collect();
        keys.into_iter()
            .filter_map(|k| self.items.remove(&k).map(|(v, s)| (k, v, s)))
            .collect()
    }

    /// Copies of the items whose key satisfies `pred`.
    pub fn copy_where(&self, mut pred: impl FnMut(&Id) -> bool) -> Vec<(Id, Vec<u8>, i64)> {
        self.items
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(k, (v, s))| (*k, v.clone(), *s))
            .collect()
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        self.items
            .values()
            .map(|(v, _)| v.capacity() + 20 + 8 + 48)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keeps_highest_sequence_number() {
        let mut s = ItemStore::default();
        let k = Id([1; 20]);
        assert!(s.put(k, b"a".to_vec(), 2));
        assert!(!s.put(k, b"b".to_vec(), 1));
        assert_eq!(s.get(&k).unwrap().0, b"a");
    }
}
