//! The node's share of the table: BEP 44 items and BEP 5 peer lists, with expiry and named
//! limits per node, per info-hash and per source address.
//!
//! The store lives in memory and does no I/O. A runtime that persists it (dht-node) turns on
//! the change journal and drains [`StoreChange`]s after each batch of datagrams, commits them in
//! one transaction, and only then sends the batch's replies: so a put is acknowledged only once
//! it is durable, and the protocol core never blocks on a disk.

use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use crate::bep44::MutableItem;
use crate::id::Id;
use crate::time::Instant;

/// A stored BEP 44 item lives this long after its last put (BEP 44: 2 hours).
pub const ITEM_LIFETIME: Duration = Duration::from_secs(2 * 60 * 60);

/// A stored peer lives this long after its last announce (30 minutes, as libtorrent).
pub const PEER_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Changes the journal holds before the oldest are dropped (a runtime drains it every batch).
pub const JOURNAL_MAX: usize = 65_536;

/// Limits on what a node stores for others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// BEP 44 items held in all.
    pub items_max: usize,
    /// Items one source IP address may have stored here.
    pub items_per_source_max: u32,
    /// Bytes of values one source IP address may have stored here.
    pub bytes_per_source_max: u64,
    /// Info-hashes with peer lists.
    pub info_hashes_max: usize,
    /// Peers kept per info-hash.
    pub peers_per_info_hash_max: usize,
    /// Announces one IP address may have stored here, over all info-hashes.
    pub peers_per_source_max: u32,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            items_max: 100_000,
            items_per_source_max: 1_000,
            bytes_per_source_max: 1_000_000,
            info_hashes_max: 100_000,
            peers_per_info_hash_max: 200,
            peers_per_source_max: 1_000,
        }
    }
}

/// What a stored item holds: an immutable value or a signed mutable one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemValue {
    /// An immutable value (bencoded); its target is its SHA-1.
    Immutable(Vec<u8>),
    /// A signed mutable item.
    Mutable(MutableItem),
}

impl ItemValue {
    /// The bencoded value.
    pub fn value(&self) -> &[u8] {
        match self {
            ItemValue::Immutable(v) => v,
            ItemValue::Mutable(m) => &m.value,
        }
    }
}

/// A stored BEP 44 item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// The item's target.
    pub target: Id,
    /// The value.
    pub value: ItemValue,
    /// When it expires unless put again.
    pub expires: Instant,
    /// The IP address that stored it (for per-source limits).
    pub source: IpAddr,
}

/// One change to the store, for a runtime that persists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChange {
    /// An item was stored or replaced.
    PutItem(StoredItem),
    /// An item expired or was dropped.
    RemoveItem(Id),
    /// A peer was announced (or re-announced) for an info-hash.
    PutPeer {
        /// The torrent.
        info_hash: Id,
        /// The peer.
        peer: SocketAddr,
        /// When it expires.
        expires: Instant,
    },
    /// A peer expired.
    RemovePeer {
        /// The torrent.
        info_hash: Id,
        /// The peer.
        peer: SocketAddr,
    },
}

/// Why a store was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The node holds as many items as it may.
    #[error("store full")]
    Full,
    /// The source address has stored as much here as it may.
    #[error("per-source limit reached")]
    SourceLimit,
}

#[derive(Debug, Clone, Copy, Default)]
struct SourceUsage {
    items: u32,
    bytes: u64,
}

/// The in-memory store.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    limits: StoreLimits,
    items: BTreeMap<Id, StoredItem>,
    peers: BTreeMap<Id, BTreeMap<SocketAddr, Instant>>,
    sources: BTreeMap<IpAddr, SourceUsage>,
    peer_sources: BTreeMap<IpAddr, u32>,
    journal: Option<VecDeque<StoreChange>>,
    journal_dropped: u64,
}

impl Storage {
    /// An empty store with these limits; with `journal`, every change is recorded for
    /// [`Storage::poll_change`].
    pub fn new(limits: StoreLimits, journal: bool) -> Self {
        Storage {
            limits,
            journal: journal.then(VecDeque::new),
            ..Storage::default()
        }
    }

    fn record(&mut self, change: StoreChange) {
        if let Some(j) = self.journal.as_mut() {
            if j.len() >= JOURNAL_MAX {
                j.pop_front();
                self.journal_dropped += 1;
            }
            j.push_back(change);
        }
    }

    /// The next change to persist.
    pub fn poll_change(&mut self) -> Option<StoreChange> {
        self.journal.as_mut()?.pop_front()
    }

    /// Changes lost because the journal was not drained in time.
    pub fn journal_dropped(&self) -> u64 {
        self.journal_dropped
    }

    /// The item stored under `target`.
    pub fn item(&self, target: &Id) -> Option<&StoredItem> {
        self.items.get(target)
    }

    /// Every stored item.
    pub fn items(&self) -> impl Iterator<Item = &StoredItem> {
        self.items.values()
    }

    /// The targets of the stored items next to `id` in key order: up to `half` from `id`
    /// upwards and up to `half` below it.
    pub fn item_targets_around(&self, id: &Id, half: usize) -> Vec<Id> {
        let above = self.items.range(*id..).take(half);
        let below = self.items.range(..*id).rev().take(half);
        above.chain(below).map(|(t, _)| *t).collect()
    }

    /// Number of stored items.
    pub fn item_count(&self) -> usize {
        self.items.len()
    }

    /// Stores `item`, replacing what was there. The caller has checked the BEP 44 rules
    /// (signature, seq, cas).
    pub fn put_item(&mut self, item: StoredItem) -> Result<(), StoreError> {
        let bytes = item.value.value().len() as u64;
        let old = self.items.get(&item.target);
        let same_source = old.is_some_and(|o| o.source == item.source);
        if old.is_none() && self.items.len() >= self.limits.items_max {
            return Err(StoreError::Full);
        }
        let usage = self.sources.get(&item.source).copied().unwrap_or_default();
        let (add_items, add_bytes) = if same_source {
            (
                0,
                bytes.saturating_sub(old.map_or(0, |o| o.value.value().len() as u64)),
            )
        } else {
            (1, bytes)
        };
        if usage.items + add_items > self.limits.items_per_source_max
            || usage.bytes + add_bytes > self.limits.bytes_per_source_max
        {
            return Err(StoreError::SourceLimit);
        }
        if let Some(old) = self.items.remove(&item.target) {
            self.release(&old);
        }
        let u = self.sources.entry(item.source).or_default();
        u.items += 1;
        u.bytes += bytes;
        self.record(StoreChange::PutItem(item.clone()));
        self.items.insert(item.target, item);
        Ok(())
    }

    /// Extends the life of the item under `target` (an identical put).
    pub fn touch_item(&mut self, target: &Id, expires: Instant) {
        if let Some(i) = self.items.get_mut(target) {
            i.expires = expires;
            let copy = i.clone();
            self.record(StoreChange::PutItem(copy));
        }
    }

    fn release(&mut self, old: &StoredItem) {
        if let Some(u) = self.sources.get_mut(&old.source) {
            u.items = u.items.saturating_sub(1);
            u.bytes = u.bytes.saturating_sub(old.value.value().len() as u64);
            if u.items == 0 {
                self.sources.remove(&old.source);
            }
        }
    }

    /// Adds or refreshes `peer` for `info_hash`. Returns false if a limit refused it.
    pub fn add_peer(&mut self, info_hash: Id, peer: SocketAddr, expires: Instant) -> bool {
        let known = self
            .peers
            .get(&info_hash)
            .is_some_and(|l| l.contains_key(&peer));
        if !known {
            if !self.peers.contains_key(&info_hash)
                && self.peers.len() >= self.limits.info_hashes_max
            {
                return false;
            }
            let used = self.peer_sources.get(&peer.ip()).copied().unwrap_or(0);
            if used >= self.limits.peers_per_source_max {
                return false;
            }
            let list = self.peers.entry(info_hash).or_default();
            if list.len() >= self.limits.peers_per_info_hash_max {
                // Make room by dropping the peer closest to expiry.
                if let Some((&oldest, _)) = list.iter().min_by_key(|(_, e)| **e) {
                    list.remove(&oldest);
                    self.release_peer(&oldest);
                    self.record(StoreChange::RemovePeer {
                        info_hash,
                        peer: oldest,
                    });
                }
            }
            *self.peer_sources.entry(peer.ip()).or_default() += 1;
        }
        self.peers
            .entry(info_hash)
            .or_default()
            .insert(peer, expires);
        self.record(StoreChange::PutPeer {
            info_hash,
            peer,
            expires,
        });
        true
    }

    fn release_peer(&mut self, peer: &SocketAddr) {
        if let Some(n) = self.peer_sources.get_mut(&peer.ip()) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.peer_sources.remove(&peer.ip());
            }
        }
    }

    /// Up to `count` peers for `info_hash`, in a stable order.
    pub fn peers(&self, info_hash: &Id, count: usize) -> Vec<SocketAddr> {
        self.peers
            .get(info_hash)
            .map(|l| l.keys().take(count).copied().collect())
            .unwrap_or_default()
    }

    /// Every info-hash with peers and the number of peers held for it, in key order.
    pub fn peer_lists(&self) -> impl Iterator<Item = (Id, usize)> + '_ {
        self.peers.iter().map(|(ih, l)| (*ih, l.len()))
    }

    /// Number of info-hashes with peers.
    pub fn info_hash_count(&self) -> usize {
        self.peers.len()
    }

    /// Drops everything that expired by `now`.
    pub fn expire(&mut self, now: Instant) {
        let dead: Vec<Id> = self
            .items
            .values()
            .filter(|i| i.expires <= now)
            .map(|i| i.target)
            .collect();
        for t in dead {
            if let Some(old) = self.items.remove(&t) {
                self.release(&old);
                self.record(StoreChange::RemoveItem(t));
            }
        }
        let mut removed = Vec::new();
        for (ih, list) in self.peers.iter_mut() {
            list.retain(|p, e| {
                let keep = *e > now;
                if !keep {
                    removed.push((*ih, *p));
                }
                keep
            });
        }
        self.peers.retain(|_, l| !l.is_empty());
        for (info_hash, peer) in removed {
            self.release_peer(&peer);
            self.record(StoreChange::RemovePeer { info_hash, peer });
        }
    }

    /// Approximate bytes of memory held.
    pub fn memory_bytes(&self) -> usize {
        let items: usize = self
            .items
            .values()
            .map(|i| core::mem::size_of::<StoredItem>() + 48 + i.value.value().len())
            .sum();
        let peers: usize = self.peers.values().map(|l| 64 + l.len() * 56).sum();
        items + peers + self.sources.len() * 48
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(target: u8, source: &str, len: usize) -> StoredItem {
        StoredItem {
            target: Id([target; 20]),
            value: ItemValue::Immutable(vec![b'x'; len]),
            expires: Instant::ZERO + ITEM_LIFETIME,
            source: source.parse().unwrap(),
        }
    }

    #[test]
    fn per_source_limits_refuse_the_item_past_the_limit() {
        let limits = StoreLimits {
            items_per_source_max: 2,
            ..StoreLimits::default()
        };
        let mut s = Storage::new(limits, false);
        s.put_item(item(1, "1.1.1.1", 10)).unwrap();
        s.put_item(item(2, "1.1.1.1", 10)).unwrap();
        assert_eq!(
            s.put_item(item(3, "1.1.1.1", 10)),
            Err(StoreError::SourceLimit)
        );
        s.put_item(item(3, "2.2.2.2", 10)).unwrap();
        // Replacing one's own item does not count twice.
        s.put_item(item(2, "1.1.1.1", 12)).unwrap();
    }

    #[test]
    fn expiry_removes_items_and_peers_and_journals_it() {
        let mut s = Storage::new(StoreLimits::default(), true);
        s.put_item(item(1, "1.1.1.1", 10)).unwrap();
        s.add_peer(
            Id([5; 20]),
            "3.3.3.3:1".parse().unwrap(),
            Instant::ZERO + PEER_LIFETIME,
        );
        s.expire(Instant::ZERO + ITEM_LIFETIME);
        assert_eq!(s.item_count(), 0);
        assert!(s.peers(&Id([5; 20]), 10).is_empty());
        let changes: Vec<_> = std::iter::from_fn(|| s.poll_change()).collect();
        assert_eq!(changes.len(), 4);
        assert!(matches!(changes[2], StoreChange::RemoveItem(_)));
    }

    #[test]
    fn one_source_may_announce_only_so_many_peers() {
        let limits = StoreLimits {
            peers_per_source_max: 2,
            ..StoreLimits::default()
        };
        let mut s = Storage::new(limits, false);
        let peer: SocketAddr = "4.4.4.4:1".parse().unwrap();
        let exp = Instant::ZERO + PEER_LIFETIME;
        assert!(s.add_peer(Id([1; 20]), peer, exp));
        assert!(s.add_peer(Id([2; 20]), peer, exp));
        assert!(!s.add_peer(Id([3; 20]), peer, exp));
        assert!(
            s.add_peer(Id([2; 20]), peer, exp),
            "a refresh is not a new announce"
        );
        s.expire(exp);
        assert!(
            s.add_peer(Id([3; 20]), peer, exp + PEER_LIFETIME),
            "expiry frees the quota"
        );
    }

    #[test]
    fn peer_lists_are_bounded() {
        let limits = StoreLimits {
            peers_per_info_hash_max: 3,
            ..StoreLimits::default()
        };
        let mut s = Storage::new(limits, false);
        for p in 0..10u16 {
            s.add_peer(
                Id([1; 20]),
                SocketAddr::from(([1, 1, 1, 1], p)),
                Instant::from_millis(p as u64),
            );
        }
        assert_eq!(s.peers(&Id([1; 20]), 100).len(), 3);
    }
}
