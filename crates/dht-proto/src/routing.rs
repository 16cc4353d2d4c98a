//! The routing table: k-buckets over the XOR metric, split where the node's own ID falls
//! (BEP 5), with good / questionable / bad contacts and a small replacement cache per bucket.
//!
//! The table never sends anything. When a new contact would enter a full bucket whose members
//! are all alive as far as the table knows, [`RoutingTable::heard_from`] answers
//! [`Insert::PingFirst`]: the caller pings the questionable contact, and reports the outcome
//! with [`RoutingTable::heard_from`] (it answered) or [`RoutingTable::failed`] (it timed out),
//! after which the waiting replacement takes the dead contact's place.
//!
//! Bucket `i` (for `i` below the last) holds the contacts that share exactly `i` leading bits
//! with our own ID; the last bucket holds every contact that shares at least as many, and is
//! the only one that splits.

use core::time::Duration;
use std::net::SocketAddr;

use arrayvec::ArrayVec;

use crate::id::{is_local_address, Id, ID_BITS};
use crate::message::NodeInfo;
use crate::time::Instant;

/// Contacts per bucket (Mainline's k).
pub const K: usize = 8;

/// Contacts kept in a bucket's replacement cache, to fill places left by dead contacts.
pub const REPLACEMENTS_PER_BUCKET: usize = 2;

/// A contact is good while it was heard from within this time (BEP 5: 15 minutes).
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);

/// A bucket with no change for this long is refreshed by a lookup in its range (BEP 5).
pub const BUCKET_REFRESH_AFTER: Duration = Duration::from_secs(15 * 60);

/// A full bucket asks for a ping of its stalest questionable contact, on behalf of a newcomer
/// that waits, at most once in this time. Without a bound every stranger's query to a full
/// bucket costs a ping, and each ping is a stranger's query at the far end: in a large, quiet
/// network that chain was most of all traffic (`dht sim` at 30,000 nodes: 590 datagrams per
/// node-hour, of which lookups were 38). Newcomers still wait in the replacement cache, a
/// contact that fails a lookup's request makes room for them at once, and a bucket that has
/// just lost a contact is in churn and lifts its bound.
pub const PING_FIRST_EVERY: Duration = Duration::from_secs(300);

/// Unanswered tries in a row (a request and its resend are two) after which a contact is bad.
pub const FAILURES_BAD: u8 = 2;

/// How a contact stands, as BEP 5 defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    /// Answered one of our queries within [`GOOD_FOR`] (or answered once and queried us since).
    Good,
    /// Not heard from within [`GOOD_FOR`], or never answered a query of ours.
    Questionable,
    /// Left [`FAILURES_BAD`] tries in a row unanswered.
    Bad,
}

/// An address packed for the table: 20 bytes instead of `SocketAddr`'s 32, since a table holds
/// a few hundred of them and the simulator a million tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PackedAddr {
    V4([u8; 4], u16),
    V6([u8; 16], u16),
}

impl From<SocketAddr> for PackedAddr {
    fn from(a: SocketAddr) -> Self {
        match a {
            SocketAddr::V4(v4) => PackedAddr::V4(v4.ip().octets(), v4.port()),
            SocketAddr::V6(v6) => PackedAddr::V6(v6.ip().octets(), v6.port()),
        }
    }
}

impl PackedAddr {
    /// Whether both addresses have the same IP, ports aside.
    fn same_ip(&self, other: &PackedAddr) -> bool {
        match (self, other) {
            (PackedAddr::V4(a, _), PackedAddr::V4(b, _)) => a == b,
            (PackedAddr::V6(a, _), PackedAddr::V6(b, _)) => a == b,
            _ => false,
        }
    }
}

impl From<PackedAddr> for SocketAddr {
    fn from(a: PackedAddr) -> Self {
        match a {
            PackedAddr::V4(ip, port) => SocketAddr::from((ip, port)),
            PackedAddr::V6(ip, port) => SocketAddr::from((ip, port)),
        }
    }
}

/// One entry of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contact {
    /// The node's ID.
    pub id: Id,
    addr: PackedAddr,
    /// Whole seconds from the time origin to when we last received a message from it.
    last_seen_s: u32,
    /// Whether it has ever answered one of our queries.
    pub verified: bool,
    /// Queries in a row it failed to answer.
    pub failures: u8,
}

fn seconds(t: Instant) -> u32 {
    (t.as_micros() / 1_000_000).min(u32::MAX as u64) as u32
}

impl Contact {
    fn new(node: NodeInfo, now: Instant, verified: bool) -> Self {
        Contact {
            id: node.id,
            addr: node.addr.into(),
            last_seen_s: seconds(now),
            verified,
            failures: 0,
        }
    }

    /// The node's UDP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr.into()
    }

    /// When we last received a message from it (to the second).
    pub fn last_seen(&self) -> Instant {
        Instant::from_micros(self.last_seen_s as u64 * 1_000_000)
    }

    /// The contact's standing at `now`.
    pub fn standing(&self, now: Instant) -> Standing {
        if self.failures >= FAILURES_BAD {
            Standing::Bad
        } else if self.verified
            && seconds(now).saturating_sub(self.last_seen_s) < GOOD_FOR.as_secs() as u32
        {
            Standing::Good
        } else {
            Standing::Questionable
        }
    }

    /// The contact as compact node info.
    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.id,
            addr: self.addr.into(),
        }
    }
}

/// How we heard from a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// It answered a query of ours: it is verified and alive.
    Response,
    /// It sent us a query: alive, but its address is only as good as its word.
    Query,
    /// A third party named it in a reply: added, unverified, only where a bucket has room, and
    /// never moved, refreshed or allowed to displace anyone.
    About,
}

/// What [`RoutingTable::heard_from`] did, and what the caller should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// The contact was added.
    Added,
    /// The contact was already in the table and was refreshed.
    Refreshed,
    /// The bucket is full of live contacts; the newcomer waits in the replacement cache. Ping
    /// this questionable contact: if it fails, the newcomer replaces it.
    PingFirst(NodeInfo),
    /// Not added: full bucket of good contacts, a known ID at another address, our own ID, or
    /// another contact already uses this public IP address.
    Ignored,
}

/// A bucket keeps its k contacts inline, so a table is one allocation: a node touched by a
/// message costs one cache miss for its buckets instead of one more per bucket it reads (the
/// simulator's million tables are far larger than any cache).
#[derive(Debug, Clone, Default)]
struct Bucket {
    contacts: ArrayVec<Contact, K>,
    replacements: Vec<Contact>,
    last_changed: Instant,
    /// Whole seconds from the time origin before which the bucket asks for no ping-first.
    next_ping_first_s: u32,
}

/// Settings of the routing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingConfig {
    /// At most one contact per public IP address (loopback and private addresses exempt).
    pub one_per_ip: bool,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig { one_per_ip: true }
    }
}

/// The routing table of one node. See the module documentation for the calling protocol.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    own_id: Id,
    config: RoutingConfig,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    /// An empty table for a node with ID `own_id`.
    pub fn new(own_id: Id, config: RoutingConfig) -> Self {
        RoutingTable {
            own_id,
            config,
            buckets: vec![Bucket::default()],
        }
    }

    /// Our own ID.
    pub fn own_id(&self) -> Id {
        self.own_id
    }

    /// Number of contacts in the table (replacements not counted).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.contacts.len()).sum()
    }

    /// Whether the table holds no contact.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|b| b.contacts.is_empty())
    }

    /// Number of buckets.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// The contacts of bucket `index`.
    pub fn bucket(&self, index: usize) -> &[Contact] {
        self.buckets.get(index).map_or(&[], |b| &b.contacts)
    }

    /// Every contact, bucket by bucket.
    pub fn contacts(&self) -> impl Iterator<Item = &Contact> {
        self.buckets.iter().flat_map(|b| b.contacts.iter())
    }

    fn bucket_index(&self, id: &Id) -> usize {
        let prefix = self.own_id.distance(id).leading_zeros();
        prefix.min(self.buckets.len() - 1)
    }

    /// The contact with this ID, if present.
    pub fn get(&self, id: &Id) -> Option<&Contact> {
        let b = &self.buckets[self.bucket_index(id)];
        b.contacts.iter().find(|c| c.id == *id)
    }

    /// Whether the table holds this ID, as a contact or waiting in a replacement cache.
    pub fn knows(&self, id: &Id) -> bool {
        let b = &self.buckets[self.bucket_index(id)];
        b.contacts
            .iter()
            .chain(b.replacements.iter())
            .any(|c| c.id == *id)
    }

    /// Whether the one-contact-per-IP rule keeps `contact` out: another ID already sits in
    /// the table at its public IP. Loopback and private addresses are exempt, so that local
    /// networks work. A scan of the whole table, so it runs only when a contact would enter.
    fn ip_blocked(&self, contact: &Contact) -> bool {
        if !self.config.one_per_ip || is_local_address(&contact.addr().ip()) {
            return false;
        }
        self.buckets
            .iter()
            .flat_map(|b| b.contacts.iter())
            .any(|c| c.addr.same_ip(&contact.addr) && c.id != contact.id)
    }

    /// Records that we heard from `node` directly, and adds it if there is room.
    pub fn heard_from(&mut self, now: Instant, node: NodeInfo, how: Heard) -> Insert {
        if node.id == self.own_id {
            return Insert::Ignored;
        }
        let index = self.bucket_index(&node.id);
        if let Some(c) = self.buckets[index]
            .contacts
            .iter_mut()
            .find(|c| c.id == node.id)
        {
            // A known ID never moves to another address: the newcomer may be an impostor.
            // Nor does a third party's word make a contact look alive.
            if c.addr != PackedAddr::from(node.addr) || how == Heard::About {
                return Insert::Ignored;
            }
            c.last_seen_s = seconds(now);
            if how == Heard::Response {
                c.verified = true;
                c.failures = 0;
                // BEP 5: a bucket is fresh when one of its nodes answered us.
                self.buckets[index].last_changed = now;
            }
            return Insert::Refreshed;
        }
        let contact = Contact::new(node, now, how == Heard::Response);
        self.insert(now, contact, how != Heard::About)
    }

    fn insert(&mut self, now: Instant, contact: Contact, may_displace: bool) -> Insert {
        loop {
            let index = self.bucket_index(&contact.id);
            let count = self.buckets.len();
            if self.buckets[index].contacts.len() < K {
                if self.ip_blocked(&contact) {
                    return Insert::Ignored;
                }
                let bucket = &mut self.buckets[index];
                bucket.contacts.push(contact);
                bucket.last_changed = now;
                bucket.replacements.retain(|r| r.id != contact.id);
                return Insert::Added;
            }
            if index == count - 1 && count < ID_BITS {
                self.split_last();
                continue;
            }
            // A bad contact makes room at once, whoever the newcomer is (BEP 5).
            if let Some(pos) = self.buckets[index]
                .contacts
                .iter()
                .position(|c| c.standing(now) == Standing::Bad)
            {
                if self.ip_blocked(&contact) {
                    return Insert::Ignored;
                }
                let bucket = &mut self.buckets[index];
                bucket.contacts[pos] = contact;
                bucket.last_changed = now;
                return Insert::Added;
            }
            if !may_displace {
                return Insert::Ignored;
            }
            // A replacement is checked against the one-per-IP rule when it is promoted.
            let bucket = &mut self.buckets[index];
            let questionable = bucket
                .contacts
                .iter()
                .filter(|c| c.standing(now) == Standing::Questionable)
                .min_by_key(|c| (c.verified, c.last_seen_s))
                .map(Contact::info);
            // BEP 5: a newcomer heard from directly (it answered us, or queried us and so is
            // alive now) waits while the least recently seen questionable contact is pinged.
            push_replacement(&mut bucket.replacements, contact);
            return match questionable {
                Some(q) if seconds(now) >= bucket.next_ping_first_s => {
                    bucket.next_ping_first_s =
                        seconds(now).saturating_add(PING_FIRST_EVERY.as_secs() as u32);
                    Insert::PingFirst(q)
                }
                _ => Insert::Ignored,
            };
        }
    }

    fn split_last(&mut self) {
        let depth = self.buckets.len() - 1;
        let old = core::mem::take(&mut self.buckets[depth]);
        // One more bucket, not a doubling: buckets are about 400 bytes each, and a million-node
        // table of 20 buckets would otherwise reserve 32.
        self.buckets.reserve_exact(1);
        self.buckets.push(Bucket {
            last_changed: old.last_changed,
            ..Bucket::default()
        });
        self.buckets[depth].last_changed = old.last_changed;
        for c in old.contacts {
            let i = self.bucket_index(&c.id);
            self.buckets[i].contacts.push(c);
        }
        for r in old.replacements {
            let i = self.bucket_index(&r.id);
            push_replacement(&mut self.buckets[i].replacements, r);
        }
    }

    /// Records that a query to `id` at `addr` went unanswered, sent `tries` times (a request
    /// and its resend count two: BEP 5 tries a node once more before it gives up on it). A
    /// contact that becomes bad is replaced by the freshest waiting replacement, if its bucket
    /// has one.
    pub fn failed(&mut self, now: Instant, id: &Id, addr: SocketAddr, tries: u8) {
        let index = self.bucket_index(id);
        let bucket = &mut self.buckets[index];
        let Some(pos) = bucket
            .contacts
            .iter()
            .position(|c| c.id == *id && c.addr == PackedAddr::from(addr))
        else {
            return;
        };
        let c = &mut bucket.contacts[pos];
        c.failures = c.failures.saturating_add(tries);
        if c.standing(now) != Standing::Bad {
            return;
        }
        let verified = c.verified;
        // A bucket that loses contacts is in churn: it may ask for a ping-first again at once,
        // so waiting newcomers find the other dead places quickly.
        bucket.next_ping_first_s = 0;
        // The freshest replacement that the one-per-IP rule lets in takes the place.
        while let Some(r) = self.buckets[index].replacements.pop() {
            if !self.ip_blocked(&r) {
                let bucket = &mut self.buckets[index];
                bucket.contacts[pos] = r;
                bucket.last_changed = now;
                return;
            }
        }
        if !verified {
            // An unverified contact that does not answer is not worth keeping.
            self.buckets[index].contacts.swap_remove(pos);
        }
    }

    /// Removes the contact with this ID, if present.
    pub fn remove(&mut self, id: &Id) {
        let index = self.bucket_index(id);
        self.buckets[index].contacts.retain(|c| c.id != *id);
    }

    /// Up to `count` contacts closest to `target`, closest first, bad contacts left out.
    ///
    /// Walks the buckets in order of distance instead of sorting the whole table. With `p` the
    /// target's bucket: the contacts of bucket `p` share at least `p + 1` bits with the target;
    /// those of every deeper bucket share exactly `p`; those of a shallower bucket `i` share
    /// exactly `i`. So the tiers are bucket `p`, then all deeper buckets together, then buckets
    /// `p - 1` down to 0, and only within a tier is sorting needed.
    pub fn closest(&self, now: Instant, target: &Id, count: usize) -> Vec<NodeInfo> {
        self.closest_where(now, target, count, |_| true)
    }

    /// Like [`RoutingTable::closest`], counting only contacts whose address `keep` accepts
    /// (for example one address family).
    pub fn closest_where(
        &self,
        now: Instant,
        target: &Id,
        count: usize,
        keep: impl Fn(&SocketAddr) -> bool,
    ) -> Vec<NodeInfo> {
        let mut out: Vec<NodeInfo> = Vec::with_capacity(count);
        let mut tier: Vec<(crate::id::Distance, NodeInfo)> = Vec::with_capacity(K * 2);
        let last = self.buckets.len() - 1;
        let p = self.bucket_index(target);
        let take_tier = |tier: &mut Vec<(crate::id::Distance, NodeInfo)>,
                         out: &mut Vec<NodeInfo>| {
            let needed = count - out.len();
            if tier.len() > needed {
                tier.select_nth_unstable_by_key(needed, |a| a.0);
                tier.truncate(needed);
            }
            tier.sort_unstable_by_key(|a| a.0);
            for (_, n) in tier.drain(..) {
                if out.len() == count {
                    break;
                }
                out.push(n);
            }
            out.len() == count
        };
        let add = |tier: &mut Vec<(crate::id::Distance, NodeInfo)>, b: &Bucket| {
            for c in &b.contacts {
                if c.standing(now) != Standing::Bad && keep(&c.addr()) {
                    tier.push((c.id.distance(target), c.info()));
                }
            }
        };
        add(&mut tier, &self.buckets[p]);
        if take_tier(&mut tier, &mut out) {
            return out;
        }
        for b in &self.buckets[(p + 1).min(last + 1)..] {
            add(&mut tier, b);
        }
        if take_tier(&mut tier, &mut out) {
            return out;
        }
        for b in self.buckets[..p].iter().rev() {
            add(&mut tier, b);
            if take_tier(&mut tier, &mut out) {
                return out;
            }
        }
        out
    }

    /// Buckets that saw no change for [`BUCKET_REFRESH_AFTER`]: for each, a random target in
    /// its range and the contact of the bucket heard from longest ago (if any), to ask for it.
    /// Marks them as refreshed now, so each is returned once per period.
    pub fn take_refresh_targets(
        &mut self,
        now: Instant,
        rng: &mut impl rand::RngCore,
    ) -> Vec<(Id, Option<NodeInfo>)> {
        let mut targets = Vec::new();
        let own = self.own_id;
        for (i, b) in self.buckets.iter_mut().enumerate() {
            if now - b.last_changed >= BUCKET_REFRESH_AFTER {
                b.last_changed = now;
                let oldest = b
                    .contacts
                    .iter()
                    .min_by_key(|c| c.last_seen_s)
                    .map(Contact::info);
                targets.push((own.random_in_bucket(i, rng), oldest));
            }
        }
        targets
    }

    /// Questionable contacts to ping, at most `count`, the longest unheard first.
    pub fn questionable(&self, now: Instant, count: usize) -> Vec<NodeInfo> {
        let mut q: Vec<&Contact> = self
            .contacts()
            .filter(|c| c.standing(now) == Standing::Questionable)
            .collect();
        q.sort_by_key(|c| c.last_seen_s);
        q.into_iter().take(count).map(Contact::info).collect()
    }

    /// Approximate bytes of memory the table holds.
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of::<Self>()
            + self
                .buckets
                .iter()
                .map(|b| {
                    core::mem::size_of::<Bucket>()
                        + b.replacements.capacity() * core::mem::size_of::<Contact>()
                })
                .sum::<usize>()
    }
}

fn push_replacement(list: &mut Vec<Contact>, contact: Contact) {
    // Exactly the bound, not the allocator's default of four.
    list.reserve_exact(REPLACEMENTS_PER_BUCKET.saturating_sub(list.len()));
    list.retain(|r| r.id != contact.id);
    if list.len() >= REPLACEMENTS_PER_BUCKET {
        list.remove(0);
    }
    list.push(contact);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, RngCore, SeedableRng};

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from(([1, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881))
    }

    fn info(id: Id, i: u32) -> NodeInfo {
        NodeInfo { id, addr: addr(i) }
    }

    #[test]
    fn buckets_split_only_where_the_own_id_falls() {
        let mut rng = SmallRng::seed_from_u64(3);
        let own = Id::random(&mut rng);
        let mut t = RoutingTable::new(own, RoutingConfig::default());
        let now = Instant::ZERO;
        for i in 0..2000 {
            t.heard_from(now, info(Id::random(&mut rng), i), Heard::Response);
        }
        assert!(t.bucket_count() > 5);
        for i in 0..t.bucket_count() {
            assert!(t.bucket(i).len() <= K);
            for c in t.bucket(i) {
                let prefix = own.distance(&c.id).leading_zeros();
                if i + 1 < t.bucket_count() {
                    assert_eq!(prefix, i, "bucket {i} holds a contact of prefix {prefix}");
                } else {
                    assert!(prefix >= i);
                }
            }
        }
        // The far buckets are full: 2000 random IDs put about 1000 in bucket 0.
        assert_eq!(t.bucket(0).len(), K);
    }

    #[test]
    fn a_known_id_never_moves_to_a_new_address() {
        let own = Id([0; 20]);
        let mut t = RoutingTable::new(own, RoutingConfig::default());
        let id = Id([0xff; 20]);
        assert_eq!(
            t.heard_from(Instant::ZERO, info(id, 1), Heard::Response),
            Insert::Added
        );
        assert_eq!(
            t.heard_from(Instant::ZERO, info(id, 2), Heard::Response),
            Insert::Ignored
        );
        assert_eq!(t.get(&id).unwrap().addr(), addr(1));
    }

    #[test]
    fn one_contact_per_public_ip_but_loopback_is_exempt() {
        let own = Id([0; 20]);
        let mut t = RoutingTable::new(own, RoutingConfig::default());
        let a = NodeInfo {
            id: Id([0xf0; 20]),
            addr: "8.8.8.8:1".parse().unwrap(),
        };
        let b = NodeInfo {
            id: Id([0xf1; 20]),
            addr: "8.8.8.8:2".parse().unwrap(),
        };
        assert_eq!(
            t.heard_from(Instant::ZERO, a, Heard::Response),
            Insert::Added
        );
        assert_eq!(
            t.heard_from(Instant::ZERO, b, Heard::Response),
            Insert::Ignored
        );
        for i in 0..4u8 {
            let n = NodeInfo {
                id: Id([0x80 | i; 20]),
                addr: SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
            };
            assert_eq!(
                t.heard_from(Instant::ZERO, n, Heard::Response),
                Insert::Added
            );
        }
    }

    /// An ID in bucket 0 (first bit set) of a table whose own ID is zero, told apart by its
    /// last byte.
    fn far_id(last: u8) -> Id {
        let mut id = Id([0x80; 20]);
        id.0[19] = last;
        id
    }

    /// A table of own ID zero whose bucket 0 holds K contacts heard `how` (at addresses
    /// `addr(0..K)`), split once by a contact near our own ID at `near_addr`, so bucket 0 can no
    /// longer split. Returns the table and the bucket's IDs.
    fn table_with_full_far_bucket(how: Heard, near_addr: SocketAddr) -> (RoutingTable, Vec<Id>) {
        let mut t = RoutingTable::new(Id([0; 20]), RoutingConfig::default());
        let ids: Vec<Id> = (0..K as u8).map(far_id).collect();
        for (i, id) in ids.iter().enumerate() {
            t.heard_from(Instant::ZERO, info(*id, i as u32), how);
        }
        let mut near = Id([0; 20]);
        near.0[19] = 1;
        let near = NodeInfo {
            id: near,
            addr: near_addr,
        };
        assert_eq!(
            t.heard_from(Instant::ZERO, near, Heard::Response),
            Insert::Added
        );
        (t, ids)
    }

    #[test]
    fn a_full_bucket_asks_to_ping_a_questionable_contact_then_replaces_it_when_it_fails() {
        // Bucket 0 full of unverified contacts, split off once so it no longer splits.
        let (mut t, _) = table_with_full_far_bucket(Heard::Query, addr(100));
        assert!(t.bucket_count() >= 2);
        let newcomer = far_id(0xee);
        let later = Instant::ZERO + Duration::from_secs(60);
        let outcome = t.heard_from(later, info(newcomer, 200), Heard::Response);
        let Insert::PingFirst(q) = outcome else {
            panic!("expected PingFirst, got {outcome:?}");
        };
        assert!(t.get(&newcomer).is_none());
        t.failed(later, &q.id, q.addr, FAILURES_BAD);
        assert!(t.get(&q.id).is_none(), "the dead contact is gone");
        assert!(t.get(&newcomer).is_some(), "the replacement took its place");
    }

    #[test]
    fn a_full_bucket_asks_for_one_ping_first_per_period_unless_it_just_lost_a_contact() {
        let (mut t, ids) = table_with_full_far_bucket(Heard::Query, addr(100));
        let at = |s: u64| Instant::ZERO + Duration::from_secs(60 + s);
        let ask = |t: &mut RoutingTable, s: u64, last: u8| {
            t.heard_from(at(s), info(far_id(last), 300 + last as u32), Heard::Query)
        };
        assert!(matches!(ask(&mut t, 0, 0xe0), Insert::PingFirst(_)));
        assert_eq!(ask(&mut t, 1, 0xe1), Insert::Ignored, "bounded");
        // A contact goes bad (a waiting newcomer takes its place): the bound is lifted.
        t.failed(at(2), &ids[0], addr(0), FAILURES_BAD);
        assert!(matches!(ask(&mut t, 3, 0xe2), Insert::PingFirst(_)));
        assert_eq!(ask(&mut t, 4, 0xe3), Insert::Ignored, "bounded again");
        let period = PING_FIRST_EVERY.as_secs();
        assert!(matches!(
            ask(&mut t, 3 + period, 0xe4),
            Insert::PingFirst(_)
        ));
    }

    #[test]
    fn a_querier_waits_on_a_questionable_contact_and_a_bad_one_yields_to_anyone() {
        let (mut t, ids) = table_with_full_far_bucket(Heard::Response, addr(100));
        // 20 minutes on, every contact of the full bucket is questionable.
        let later = Instant::ZERO + Duration::from_secs(20 * 60);
        let querier = far_id(0xd0);
        let outcome = t.heard_from(later, info(querier, 400), Heard::Query);
        assert!(
            matches!(outcome, Insert::PingFirst(_)),
            "a node that queried us is alive: ping the stalest contact for it, got {outcome:?}"
        );
        // A third party's word alone does not start pings...
        let heard = far_id(0xd1);
        assert_eq!(
            t.heard_from(later, info(heard, 401), Heard::About),
            Insert::Ignored
        );
        // ...but takes the place of a contact known to be bad.
        t.failed(later, &ids[3], addr(3), FAILURES_BAD);
        // The waiting querier took the dead contact's place; the next dead one yields to the
        // heard-about node.
        assert!(t.get(&querier).is_some());
        t.failed(later, &ids[4], addr(4), FAILURES_BAD);
        assert_eq!(
            t.heard_from(later, info(heard, 401), Heard::About),
            Insert::Added
        );
    }

    #[test]
    fn a_replacement_sharing_an_ip_with_the_table_is_passed_over_at_promotion() {
        // Bucket 0 full of verified contacts at distinct public IPs; the near contact at 9.9.9.9.
        let (mut t, ids) =
            table_with_full_far_bucket(Heard::Response, "9.9.9.9:1".parse().unwrap());
        // Two newcomers wait as replacements: a clean one, then one at the taken IP.
        let later = Instant::ZERO + Duration::from_secs(20 * 60);
        let clean = far_id(0xe0);
        let twin = far_id(0xe1);
        t.heard_from(later, info(clean, 300), Heard::Response);
        let twin_info = NodeInfo {
            id: twin,
            addr: "9.9.9.9:2".parse().unwrap(),
        };
        t.heard_from(later, twin_info, Heard::Response);
        // The first contact dies: the twin is freshest but shares 9.9.9.9, so the clean one
        // takes the place.
        t.failed(later, &ids[0], addr(0), FAILURES_BAD);
        assert!(t.get(&ids[0]).is_none());
        assert!(t.get(&twin).is_none(), "one contact per public IP");
        assert!(t.get(&clean).is_some());
    }

    #[test]
    fn closest_returns_sorted_nearest_without_bad_contacts() {
        let mut rng = SmallRng::seed_from_u64(9);
        let own = Id::random(&mut rng);
        let mut t = RoutingTable::new(own, RoutingConfig::default());
        let mut all = Vec::new();
        for i in 0..300 {
            let n = info(Id::random(&mut rng), i);
            if t.heard_from(Instant::ZERO, n, Heard::Response) == Insert::Added {
                all.push(n);
            }
        }
        let target = Id::random(&mut rng);
        let got = t.closest(Instant::ZERO, &target, 8);
        all.sort_by_key(|n| n.id.distance(&target));
        assert_eq!(got, all[..8].to_vec());
        t.failed(Instant::ZERO, &got[0].id, got[0].addr, 1);
        t.failed(Instant::ZERO, &got[0].id, got[0].addr, 1);
        let again = t.closest(Instant::ZERO, &target, 8);
        assert!(!again.contains(&got[0]));
    }

    #[test]
    fn closest_matches_a_brute_force_sort_for_many_targets() {
        let mut rng = SmallRng::seed_from_u64(21);
        for round in 0..20 {
            let own = Id::random(&mut rng);
            let mut t = RoutingTable::new(own, RoutingConfig::default());
            for i in 0..(50 + round * 40) {
                // Half the contacts near our own ID, so deep buckets fill too.
                let id = if i % 2 == 0 {
                    own.random_in_bucket(rng.next_u32() as usize % 24, &mut rng)
                } else {
                    Id::random(&mut rng)
                };
                t.heard_from(Instant::ZERO, info(id, i as u32), Heard::Response);
            }
            for _ in 0..20 {
                let target = if rng.next_u32() % 2 == 0 {
                    Id::random(&mut rng)
                } else {
                    own.random_in_bucket(rng.next_u32() as usize % 30, &mut rng)
                };
                for count in [1, 8, 16, 1000] {
                    let mut all: Vec<NodeInfo> = t.contacts().map(Contact::info).collect();
                    all.sort_by_key(|n| n.id.distance(&target));
                    all.truncate(count);
                    assert_eq!(t.closest(Instant::ZERO, &target, count), all);
                }
            }
        }
    }

    #[test]
    fn quiet_buckets_are_refreshed_once_per_period() {
        let mut rng = SmallRng::seed_from_u64(4);
        let own = Id::random(&mut rng);
        let mut t = RoutingTable::new(own, RoutingConfig::default());
        t.heard_from(
            Instant::ZERO,
            info(Id::random(&mut rng), 1),
            Heard::Response,
        );
        let later = Instant::ZERO + BUCKET_REFRESH_AFTER;
        let targets = t.take_refresh_targets(later, &mut rng);
        assert_eq!(targets.len(), t.bucket_count());
        assert!(t.take_refresh_targets(later, &mut rng).is_empty());
    }
}
