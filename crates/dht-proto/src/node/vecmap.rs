//! A map kept as one vector sorted by key: the in-flight requests of a node.
//!
//! A node has a handful of requests in flight at a time, and a simulated one has none most of
//! the time. A `BTreeMap` allocates an 11-slot leaf on the first insert (for a request record,
//! over a kilobyte: too large for the allocator's per-thread cache, so every request of an idle
//! node took the allocator's slow path twice). This vector grows with what is in flight, and
//! its small first allocations come from that cache.
//!
//! Keys are transaction IDs, taken in increasing order, so an insert lands at the end but where
//! the counter wraps; lookups are binary searches; a removal shifts the entries after it,
//! which at the cap of a few thousand in flight is a few hundred kilobytes moved, and for the
//! tens of a busy node nothing worth measuring. Iteration is in key order, like the `BTreeMap`
//! it replaces, so the node's choices do not change.

/// A map from `K` to `V` in one sorted vector.
#[derive(Debug, Clone)]
pub(crate) struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord + Copy, V> VecMap<K, V> {
    fn find(&self, key: &K) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.cmp(key))
    }

    /// Where the entries lie in memory, and their size in bytes (for a cache hint).
    #[cfg(feature = "sim-hints")]
    pub(crate) fn memory(&self) -> (*const u8, usize) {
        (
            self.entries.as_ptr().cast::<u8>(),
            core::mem::size_of_val(self.entries.as_slice()),
        )
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.find(key).is_ok()
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self.find(key) {
            Ok(i) => Some(&mut self.entries[i].1),
            Err(_) => None,
        }
    }

    /// Inserts or replaces; returns the value replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        // The common case, a key above all others, needs no search.
        let above_all = match self.entries.last() {
            Some((last, _)) => *last < key,
            None => true,
        };
        if above_all {
            self.entries.push((key, value));
            return None;
        }
        match self.find(&key) {
            Ok(i) => Some(core::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.find(key).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// Entries in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Gives the buffer back when nothing is left in it: a million idle simulated nodes would
    /// otherwise each keep the largest burst they ever had.
    pub(crate) fn release_if_empty(&mut self) {
        if self.entries.is_empty() && self.entries.capacity() > 0 {
            self.entries = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::VecMap;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Any sequence of inserts and removals leaves the same entries, in the same order,
        /// as a `BTreeMap` given the same sequence, and the same answers on the way.
        #[test]
        fn behaves_like_a_btreemap(ops in proptest::collection::vec((any::<bool>(), 0u16..64, any::<u32>()), 0..300)) {
            let mut ours = VecMap::default();
            let mut model = BTreeMap::new();
            for (insert, key, value) in ops {
                if insert {
                    prop_assert_eq!(ours.insert(key, value), model.insert(key, value));
                } else {
                    prop_assert_eq!(ours.remove(&key), model.remove(&key));
                    ours.release_if_empty();
                }
                prop_assert_eq!(ours.len(), model.len());
                prop_assert_eq!(ours.get(&key), model.get(&key));
                prop_assert_eq!(ours.contains_key(&key.wrapping_add(1)), model.contains_key(&key.wrapping_add(1)));
                let a: Vec<_> = ours.iter().collect();
                let b: Vec<_> = model.iter().collect();
                prop_assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn an_emptied_map_gives_its_buffer_back() {
        let mut m = VecMap::default();
        for k in 0..10u16 {
            m.insert(k, ());
        }
        for k in 0..10u16 {
            m.remove(&k);
        }
        m.release_if_empty();
        assert_eq!(m.entries.capacity(), 0);
    }
}
