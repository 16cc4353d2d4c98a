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

/// A contact is good while it was heard from within this time (BEP 5: 15 minutes): the longest
/// the table's good window gets ([`RoutingTable::good_for`]).
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);

/// The shortest the table's good window gets ([`RoutingTable::good_for`]).
pub const GOOD_FOR_MIN: Duration = Duration::from_secs(60);

/// How the good window adapts: a good contact that answers us lengthens it by 1/64 (a second at
/// least), one that was good but turned bad shortens it by half ([`GOOD_FOR_SHRINK`]). It
/// settles where about one good contact in 33 (1/64 ÷ (1/2 + 1/64)) fails when asked: with
/// sessions of hours it stays at [`GOOD_FOR`], with sessions of minutes it falls towards
/// [`GOOD_FOR_MIN`], so that contacts that are likely gone are questionable, get pinged and make
/// room for live newcomers.
const GOOD_FOR_GROWTH: u32 = 64;

/// The good window is divided by this when a good contact stops answering (see
/// [`GOOD_FOR_GROWTH`]).
const GOOD_FOR_SHRINK: u32 = 2;

/// A contact that answered us is no longer named in our answers once it has been silent for
/// this many good windows ([`RoutingTable::named`]): an hour at BEP 5's window, four minutes
/// when contacts live minutes. With 1.4-minute sessions most of a lookup's requests went to
/// departed nodes that tables still held and named; this keeps the likely dead out of answers
/// and, with them, gets away from long-gone holders' places (docs/benchmarks.md).
const NAMED_FOR_GOOD_WINDOWS: u32 = 4;

/// A contact known only from its own queries (never asked by us, so never pinged: see
/// [`Contact::vouched`]) is passed on in answers while it queried us within this time. A live
/// node queries its table's nodes every quarter hour or so (its bucket refreshes), so it stays
/// listed; one that left is no longer handed out after this, though nobody asked it since. In
/// a grown 10k network after 4 h, lookups p50 970 -> 881 ms and p95 1,877 -> 1,572 ms with it
/// (docs/benchmarks.md); at 15 minutes newcomers went unlisted too early (26 more wrong
/// lookups of 20,000).
pub const QUERIED_ONLY_LISTED_FOR: Duration = Duration::from_secs(60 * 60);

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
    /// Answered one of our queries within the good window (at most [`GOOD_FOR`]; or answered
    /// once and queried us since).
    Good,
    /// Not heard from within the good window, or never answered a query of ours.
    Questionable,
    /// Left [`FAILURES_BAD`] tries in a row unanswered.
    Bad,
}

/// [`Contact::flags`]: it has answered one of our queries.
const VERIFIED: u8 = 1;
/// [`Contact::flags`]: its address is IPv6 (otherwise `ip` holds an IPv4 address in its first
/// four bytes).
const IPV6: u8 = 2;
/// [`Contact::flags`]: known only from its own query: it has not answered us, and no node that
/// answered us named it, so its address is only as good as its word (it may be forged).
const QUERIED_ONLY: u8 = 4;
/// [`Contact::flags`]: the failure count ([`Contact::failures`]) lives in the top four bits.
const FAILURES_SHIFT: u32 = 4;
/// The most failures a contact counts (far above [`FAILURES_BAD`]).
const FAILURES_MAX: u8 = 15;

/// Steps of the round-trip code per doubling ([`Contact::rtt`]): one step is 2^(1/16), 4.4%.
const RTT_STEPS_PER_DOUBLING: f64 = 16.0;
/// The round trip of code 0 of the logarithmic scale, in milliseconds (code 0 itself means
/// none measured).
const RTT_CODE_UNIT_MS: f64 = 0.1;

/// A round trip as one byte: a logarithmic scale from 0.1 ms (loopback) to about 6 s (code
/// 255), in steps of 4.4%; 0 is kept for "none measured".
fn rtt_code(rtt: Duration) -> u8 {
    let ms = rtt.as_secs_f64() * 1000.0;
    let code = (RTT_STEPS_PER_DOUBLING * (ms / RTT_CODE_UNIT_MS).max(1.0).log2()).round();
    code.clamp(1.0, 255.0) as u8
}

/// The round trip a code stands for ([`rtt_code`]); `None` for code 0.
fn rtt_of(code: u8) -> Option<Duration> {
    (code != 0).then(|| {
        let ms = RTT_CODE_UNIT_MS * (f64::from(code) / RTT_STEPS_PER_DOUBLING).exp2();
        Duration::from_secs_f64(ms / 1000.0)
    })
}

/// One entry of the table: 44 bytes. The address is packed with the flags (16 bytes of IP, 2 of
/// port, a family bit) instead of a `SocketAddr`'s 32, since a table holds a few hundred
/// contacts and the simulator a million tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contact {
    /// The node's ID.
    pub id: Id,
    ip: [u8; 16],
    port: u16,
    /// Whole seconds from the time origin to when we last received a message from it.
    last_seen_s: u32,
    /// [`VERIFIED`], [`IPV6`] and [`QUERIED_ONLY`] in the low bits, and the queries in a row
    /// it failed to answer (up to [`FAILURES_MAX`]) in the top four.
    flags: u8,
    /// Smoothed round trip of its answers, [`rtt_code`]d (0: none measured).
    rtt: u8,
}

const _: () = assert!(core::mem::size_of::<Contact>() == 44);

fn seconds(t: Instant) -> u32 {
    (t.as_micros() / 1_000_000).min(u32::MAX as u64) as u32
}

/// An address as the table packs it: (IP bytes, port, family flag).
fn pack(addr: SocketAddr) -> ([u8; 16], u16, u8) {
    match addr {
        SocketAddr::V4(v4) => {
            let mut ip = [0u8; 16];
            ip[..4].copy_from_slice(&v4.ip().octets());
            (ip, v4.port(), 0)
        }
        SocketAddr::V6(v6) => (v6.ip().octets(), v6.port(), IPV6),
    }
}

impl Contact {
    fn new(node: NodeInfo, now: Instant, how: Heard) -> Self {
        let (ip, port, family) = pack(node.addr);
        let flags = match how {
            Heard::Response => VERIFIED,
            Heard::Query => QUERIED_ONLY,
            Heard::About => 0,
        };
        Contact {
            id: node.id,
            ip,
            port,
            last_seen_s: seconds(now),
            flags: family | flags,
            rtt: 0,
        }
    }

    /// The node's UDP address.
    pub fn addr(&self) -> SocketAddr {
        if self.flags & IPV6 != 0 {
            SocketAddr::from((self.ip, self.port))
        } else {
            let v4: [u8; 4] = self.ip[..4].try_into().expect("four bytes");
            SocketAddr::from((v4, self.port))
        }
    }

    /// Whether the contact is at exactly `addr`.
    fn is_at(&self, addr: SocketAddr) -> bool {
        let (ip, port, family) = pack(addr);
        self.ip == ip && self.port == port && self.flags & IPV6 == family
    }

    /// Whether both contacts have the same IP, ports aside.
    fn same_ip(&self, other: &Contact) -> bool {
        self.ip == other.ip && self.flags & IPV6 == other.flags & IPV6
    }

    /// Whether both contacts are in the same subnet: an IPv4 /24 or an IPv6 /64.
    fn same_subnet(&self, other: &Contact) -> bool {
        let prefix = if self.flags & IPV6 != 0 { 8 } else { 3 };
        self.flags & IPV6 == other.flags & IPV6 && self.ip[..prefix] == other.ip[..prefix]
    }

    /// Whether it has ever answered one of our queries.
    pub fn verified(&self) -> bool {
        self.flags & VERIFIED != 0
    }

    /// Whether its address is vouched for: it answered one of our queries, or a node that did
    /// named it. Only such contacts get queries of our own initiative (pings, refreshes) and
    /// are passed on in our replies; one known only from its own query may be a forged source.
    pub fn vouched(&self) -> bool {
        self.flags & QUERIED_ONLY == 0
    }

    /// Whether answers may name it: a contact that answered us (or was named by one that did)
    /// always; one known only from its own queries while it queried us within
    /// [`QUERIED_ONLY_LISTED_FOR`], since nobody asks it and a departed one would otherwise be
    /// handed out until a newcomer took its place.
    pub fn listed(&self, now: Instant) -> bool {
        self.vouched() || now.saturating_duration_since(self.last_seen()) < QUERIED_ONLY_LISTED_FOR
    }

    /// Queries in a row it failed to answer (counted up to 15).
    pub fn failures(&self) -> u8 {
        self.flags >> FAILURES_SHIFT
    }

    fn set_failures(&mut self, failures: u8) {
        let low = (1 << FAILURES_SHIFT) - 1;
        self.flags = (self.flags & low) | (failures.min(FAILURES_MAX) << FAILURES_SHIFT);
    }

    /// Its smoothed round trip, if one of its answers was timed (to 4.4%).
    pub fn rtt(&self) -> Option<Duration> {
        rtt_of(self.rtt)
    }

    /// Folds a measured round trip into [`Contact::rtt`]: a quarter of the way from the
    /// estimate to the sample on the logarithmic scale (a geometric mean, which one outlier
    /// moves little), at least one step, so the estimate reaches a steady round trip exactly.
    fn add_rtt_sample(&mut self, rtt: Duration) {
        let sample = i16::from(rtt_code(rtt));
        if self.rtt == 0 {
            self.rtt = sample as u8;
            return;
        }
        let old = i16::from(self.rtt);
        let diff = sample - old;
        let step = if diff.abs() < 4 {
            diff.signum()
        } else {
            diff / 4
        };
        self.rtt = (old + step).clamp(1, 255) as u8;
    }

    /// When we last received a message from it (to the second).
    pub fn last_seen(&self) -> Instant {
        Instant::from_micros(self.last_seen_s as u64 * 1_000_000)
    }

    /// The contact's standing at `now_s`, for a table whose good window is `good_for_s`
    /// ([`RoutingTable::standing`] gives it with the table's own).
    fn standing_s(&self, now_s: u32, good_for_s: u32) -> Standing {
        if self.is_bad() {
            Standing::Bad
        } else if self.verified() && now_s.saturating_sub(self.last_seen_s) < good_for_s {
            Standing::Good
        } else {
            Standing::Questionable
        }
    }

    /// Whether it left [`FAILURES_BAD`] tries in a row unanswered.
    pub fn is_bad(&self) -> bool {
        self.failures() >= FAILURES_BAD
    }

    /// The contact as compact node info.
    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.id,
            addr: self.addr(),
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
///
/// The bucket also keeps, for its contacts that are not bad, when the stalest verified one and
/// the stalest unverified one were last seen ([`Bucket::summarize`] after every change), so the
/// minute-by-minute search for the stalest questionable contact reads one header per bucket
/// instead of every contact: at a million simulated nodes that scan of cold tables was a sixth
/// of all the time.
#[derive(Debug, Clone)]
struct Bucket {
    contacts: ArrayVec<Contact, K>,
    replacements: Vec<Contact>,
    /// Whole seconds from the time origin to the bucket's last change (BEP 5's freshness).
    last_changed_s: u32,
    /// Whole seconds from the time origin before which the bucket asks for no ping-first.
    next_ping_first_s: u32,
    /// `last_seen_s` of the stalest verified contact that is not bad, or [`NONE_S`].
    stalest_verified_s: u32,
    /// `last_seen_s` of the stalest unverified but vouched contact (heard about from a node
    /// that answered us) that is not bad, or [`NONE_S`].
    stalest_hearsay_s: u32,
    /// Contacts that are bad.
    bad: u8,
}

/// "No such contact" in a bucket's summary.
const NONE_S: u32 = u32::MAX;

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            contacts: ArrayVec::new(),
            replacements: Vec::new(),
            last_changed_s: 0,
            next_ping_first_s: 0,
            stalest_verified_s: NONE_S,
            stalest_hearsay_s: NONE_S,
            bad: 0,
        }
    }
}

impl Bucket {
    /// Where the contact `id` at `addr` is among the bucket's contacts.
    fn position(&self, id: &Id, addr: SocketAddr) -> Option<usize> {
        self.contacts
            .iter()
            .position(|c| c.id == *id && c.is_at(addr))
    }

    /// Puts `contact` in place `pos` (whose contact leaves), and out of the replacements.
    fn put_at(&mut self, pos: usize, contact: Contact, now: Instant) {
        self.contacts[pos] = contact;
        self.replacements.retain(|r| r.id != contact.id);
        self.last_changed_s = seconds(now);
        self.summarize();
    }

    /// Recomputes the summary; called after every change to the contacts.
    fn summarize(&mut self) {
        debug_assert!(self.replacements.len() <= REPLACEMENTS_PER_BUCKET);
        debug_assert!(
            self.contacts
                .iter()
                .enumerate()
                .all(|(i, c)| self.contacts[..i].iter().all(|d| d.id != c.id)),
            "an ID appears once in a bucket"
        );
        let (mut verified, mut hearsay, mut bad) = (NONE_S, NONE_S, 0);
        for c in &self.contacts {
            if c.failures() >= FAILURES_BAD {
                bad += 1;
            } else if c.verified() {
                verified = verified.min(c.last_seen_s);
            } else if c.vouched() {
                hearsay = hearsay.min(c.last_seen_s);
            }
        }
        self.stalest_verified_s = verified;
        self.stalest_hearsay_s = hearsay;
        self.bad = bad;
    }

    /// When the bucket's stalest questionable contact that may be pinged was last seen, if it
    /// has one at `now_s`: a vouched contact that never answered us is always questionable, a
    /// verified one once the good window `good_for_s` passed. One known only from its own query
    /// is never pinged, so it is not counted.
    fn stalest_questionable_s(&self, now_s: u32, good_for_s: u32) -> Option<u32> {
        // With no verified contact `stalest_verified_s` is NONE_S, never a window old.
        let stalest = if now_s.saturating_sub(self.stalest_verified_s) >= good_for_s {
            self.stalest_verified_s.min(self.stalest_hearsay_s)
        } else {
            self.stalest_hearsay_s
        };
        (stalest != NONE_S).then_some(stalest)
    }
}

/// Settings of the routing table. Loopback and private addresses are exempt from the address
/// rules, so that local networks work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingConfig {
    /// At most one contact per public IP address.
    pub one_per_ip: bool,
    /// At most this many contacts per subnet (an IPv4 /24 or an IPv6 /64) in one bucket, as
    /// libtorrent's `restrict_routing_ips` (which allows one).
    pub subnet_per_bucket_max: usize,
    /// At most this many contacts per subnet in the whole table.
    pub subnet_per_table_max: usize,
    /// Proximity neighbour selection: a newcomer waiting among a full bucket's replacements
    /// that answers us at least [`PROXIMITY_FACTOR`] times faster than the bucket's slowest
    /// timed contact takes that contact's place (see [`RoutingTable::measured`]).
    pub proximity: bool,
}

/// How much faster than a bucket's slowest timed contact a waiting newcomer must answer to
/// take its place under [`RoutingConfig::proximity`]: twice, so that jitter never swaps two
/// contacts of about the same distance back and forth.
pub const PROXIMITY_FACTOR: u32 = 2;

/// And by at least this much: on a LAN or loopback, where round trips differ by scheduling
/// noise of a fraction of a millisecond, no swap buys anything.
pub const PROXIMITY_MARGIN: Duration = Duration::from_millis(10);

/// Default of [`RoutingConfig::subnet_per_bucket_max`]: libtorrent's one.
pub const SUBNET_PER_BUCKET_MAX: usize = 1;

/// Default of [`RoutingConfig::subnet_per_table_max`]. A table holds about 8 log2(N) contacts
/// (about 190 on Mainline's ten million nodes), drawn from millions of /24s, so honest nodes
/// almost never share one; an attacker whose hosts sit in one /24 gets at most this many
/// places instead of a bucket's worth in every bucket.
pub const SUBNET_PER_TABLE_MAX: usize = 4;

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            one_per_ip: true,
            subnet_per_bucket_max: SUBNET_PER_BUCKET_MAX,
            subnet_per_table_max: SUBNET_PER_TABLE_MAX,
            proximity: true,
        }
    }
}

/// The routing table of one node. See the module documentation for the calling protocol.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    own_id: Id,
    config: RoutingConfig,
    buckets: Vec<Bucket>,
    /// The good window in whole seconds, within [`GOOD_FOR_MIN`] and [`GOOD_FOR`] (see
    /// [`RoutingTable::good_for`]).
    good_for_s: u32,
}

impl RoutingTable {
    /// An empty table for a node with ID `own_id`.
    pub fn new(own_id: Id, config: RoutingConfig) -> Self {
        RoutingTable {
            own_id,
            config,
            buckets: vec![Bucket::default()],
            good_for_s: GOOD_FOR.as_secs() as u32,
        }
    }

    /// How long a contact that answered us stays good without being heard from again. BEP 5
    /// says 15 minutes ([`GOOD_FOR`]), which assumes sessions of hours; the window adapts to
    /// the contacts' fate (see the constants' documentation): each answer from a good contact
    /// lengthens it a little, each good contact that stops answering shortens it by half,
    /// never below [`GOOD_FOR_MIN`]. With 1.4-minute median sessions (`dht sim --churn bamboo`)
    /// it settles near a minute and lookups succeed more often (docs/benchmarks.md).
    pub fn good_for(&self) -> Duration {
        Duration::from_secs(u64::from(self.good_for_s))
    }

    /// Whether our answers may name `c` at `now`: it is [`Contact::listed`], and if it answered
    /// us it was heard from within [`NAMED_FOR_GOOD_WINDOWS`] good windows.
    pub fn named(&self, c: &Contact, now: Instant) -> bool {
        let silent_s = seconds(now).saturating_sub(c.last_seen_s);
        c.listed(now) && !(c.verified() && silent_s >= self.good_for_s * NAMED_FOR_GOOD_WINDOWS)
    }

    /// The standing of `c` at `now` under the table's good window.
    pub fn standing(&self, c: &Contact, now: Instant) -> Standing {
        c.standing_s(seconds(now), self.good_for_s)
    }

    /// A good contact answered: the window grows a little.
    fn good_answered(&mut self) {
        let step = (self.good_for_s / GOOD_FOR_GROWTH).max(1);
        self.good_for_s = (self.good_for_s + step).min(GOOD_FOR.as_secs() as u32);
    }

    /// A contact that was good stopped answering: the window shrinks by half.
    fn good_failed(&mut self) {
        let step = self.good_for_s / GOOD_FOR_SHRINK;
        self.good_for_s = (self.good_for_s - step).max(GOOD_FOR_MIN.as_secs() as u32);
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

    /// Where the bucket that `id` falls in lies in memory, and its size: for a simulator's
    /// cache hint, which asks for the bucket a datagram's sender will be looked up in while the
    /// event before it runs. Nothing is read through the pointer. Only with the `sim-hints`
    /// feature: it is no part of the protocol.
    #[cfg(feature = "sim-hints")]
    pub fn bucket_memory(&self, id: &Id) -> (*const u8, usize) {
        let b = &self.buckets[self.bucket_index(id)];
        (
            (b as *const Bucket).cast::<u8>(),
            core::mem::size_of::<Bucket>(),
        )
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

    /// Whether the address rules keep `contact` out of bucket `index`: another ID already sits
    /// in the table at its public IP, or its subnet has its share of the bucket or the table
    /// (see [`RoutingConfig`]). Loopback and private addresses are exempt, so that local
    /// networks work. A scan of the whole table, so it runs only when a contact would enter.
    fn ip_blocked(&self, contact: &Contact, index: usize) -> bool {
        if is_local_address(&contact.addr().ip()) {
            return false;
        }
        let (mut in_bucket, mut in_table) = (0, 0);
        for (i, b) in self.buckets.iter().enumerate() {
            for c in b.contacts.iter().filter(|c| c.id != contact.id) {
                if self.config.one_per_ip && c.same_ip(contact) {
                    return true;
                }
                if c.same_subnet(contact) {
                    in_table += 1;
                    in_bucket += usize::from(i == index);
                }
            }
        }
        in_bucket >= self.config.subnet_per_bucket_max
            || in_table >= self.config.subnet_per_table_max
    }

    /// Whether `id` is in the table at `addr`, as a contact or a replacement, and has answered
    /// one of our queries there.
    pub fn verified_at(&self, id: &Id, addr: SocketAddr) -> bool {
        self.known_at(id, addr).is_some_and(|c| c.verified())
    }

    /// Whether `id` is in the table at `addr` and its address is vouched for
    /// ([`Contact::vouched`]): an address we may send queries of our own initiative to.
    pub fn vouched_at(&self, id: &Id, addr: SocketAddr) -> bool {
        self.known_at(id, addr).is_some_and(|c| c.vouched())
    }

    fn known_at(&self, id: &Id, addr: SocketAddr) -> Option<&Contact> {
        let b = &self.buckets[self.bucket_index(id)];
        b.contacts
            .iter()
            .chain(b.replacements.iter())
            .find(|c| c.id == *id && c.is_at(addr))
    }

    /// Records that we heard from `node` directly, and adds it if there is room.
    pub fn heard_from(&mut self, now: Instant, node: NodeInfo, how: Heard) -> Insert {
        if node.id == self.own_id {
            return Insert::Ignored;
        }
        let index = self.bucket_index(&node.id);
        let splits = index == self.buckets.len() - 1 && self.buckets.len() < ID_BITS;
        let bucket = &mut self.buckets[index];
        // Hearsay only fills room, and a full bucket without bad contacts that will not split
        // has none: most of the contacts in a large network's replies end here, unread.
        if how == Heard::About && bucket.contacts.len() == K && bucket.bad == 0 && !splits {
            return Insert::Ignored;
        }
        if let Some(c) = bucket.contacts.iter_mut().find(|c| c.id == node.id) {
            // A known ID never moves to another address: the newcomer may be an impostor.
            // Nor does a third party's word make a contact look alive, though it vouches for
            // the address of one known only from its own query.
            if !c.is_at(node.addr) {
                return Insert::Ignored;
            }
            if how == Heard::About {
                if !c.vouched() {
                    c.flags &= !QUERIED_ONLY;
                    bucket.summarize();
                }
                return Insert::Ignored;
            }
            let was_good = c.standing_s(seconds(now), self.good_for_s) == Standing::Good;
            c.last_seen_s = seconds(now);
            if how == Heard::Response {
                c.flags = (c.flags | VERIFIED) & !QUERIED_ONLY;
                c.set_failures(0);
                // BEP 5: a bucket is fresh when one of its nodes answered us.
                bucket.last_changed_s = seconds(now);
            }
            bucket.summarize();
            if was_good && how == Heard::Response {
                self.good_answered();
            }
            return Insert::Refreshed;
        }
        let contact = Contact::new(node, now, how);
        self.insert(now, contact, how != Heard::About)
    }

    fn insert(&mut self, now: Instant, contact: Contact, may_displace: bool) -> Insert {
        loop {
            let index = self.bucket_index(&contact.id);
            let count = self.buckets.len();
            if self.buckets[index].contacts.len() < K {
                if self.ip_blocked(&contact, index) {
                    return Insert::Ignored;
                }
                debug_assert_eq!(index, self.bucket_index(&contact.id));
                let bucket = &mut self.buckets[index];
                bucket.contacts.push(contact);
                bucket.last_changed_s = seconds(now);
                bucket.replacements.retain(|r| r.id != contact.id);
                bucket.summarize();
                return Insert::Added;
            }
            if index == count - 1 && count < ID_BITS {
                self.split_last();
                continue;
            }
            // A bad contact makes room at once, whoever the newcomer is (BEP 5).
            // The bucket's count of bad contacts spares reading them when there are none.
            let bucket = &self.buckets[index];
            let bad = match bucket.bad {
                0 => None,
                _ => bucket.contacts.iter().position(Contact::is_bad),
            };
            if let Some(pos) = bad {
                if self.ip_blocked(&contact, index) {
                    return Insert::Ignored;
                }
                self.buckets[index].put_at(pos, contact, now);
                return Insert::Added;
            }
            if !may_displace {
                return Insert::Ignored;
            }
            // A newcomer that answered us takes the place of the stalest contact that never
            // did: we may not ping that one to find out (it may be a spoofed address that
            // queried us once), and a proven contact is worth more.
            let unproven = contact
                .verified()
                .then(|| {
                    bucket
                        .contacts
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !c.verified())
                        .min_by_key(|(_, c)| c.last_seen_s)
                        .map(|(pos, _)| pos)
                })
                .flatten();
            if let Some(pos) = unproven {
                if self.ip_blocked(&contact, index) {
                    return Insert::Ignored;
                }
                self.buckets[index].put_at(pos, contact, now);
                return Insert::Added;
            }
            // A replacement is checked against the address rules when it is promoted.
            let bucket = &mut self.buckets[index];
            // BEP 5: a newcomer heard from directly (it answered us, or queried us and so is
            // alive now) waits while the least recently seen questionable contact is pinged.
            // Only a contact that has answered us before is pinged: a query of our own
            // initiative never goes to an address that has not proved itself.
            push_replacement(&mut bucket.replacements, contact);
            let now_s = seconds(now);
            let good_for_s = self.good_for_s;
            let questionable = (now_s >= bucket.next_ping_first_s)
                .then(|| {
                    bucket
                        .contacts
                        .iter()
                        .filter(|c| {
                            c.vouched() && c.standing_s(now_s, good_for_s) == Standing::Questionable
                        })
                        .min_by_key(|c| (c.verified(), c.last_seen_s))
                        .map(Contact::info)
                })
                .flatten();
            return match questionable {
                Some(q) => {
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
            last_changed_s: old.last_changed_s,
            ..Bucket::default()
        });
        self.buckets[depth].last_changed_s = old.last_changed_s;
        for c in old.contacts {
            let i = self.bucket_index(&c.id);
            self.buckets[i].contacts.push(c);
        }
        for r in old.replacements {
            let i = self.bucket_index(&r.id);
            push_replacement(&mut self.buckets[i].replacements, r);
        }
        self.buckets[depth].summarize();
        self.buckets[depth + 1].summarize();
        debug_assert!(
            (depth..=depth + 1).all(|i| self.buckets[i]
                .contacts
                .iter()
                .all(|c| self.bucket_index(&c.id) == i)),
            "a split leaves every contact in the bucket of its prefix"
        );
    }

    /// At `now`, the contact `id` at `addr` answered a request sent once in `rtt`: folded into its
    /// [`Contact::rtt`], whether it is in a bucket or waits among its replacements. Nothing
    /// happens for a node not in the table (one met only in a lookup).
    ///
    /// With [`RoutingConfig::proximity`], a replacement that answers [`PROXIMITY_FACTOR`] times
    /// faster than the slowest timed contact of its full bucket, and [`PROXIMITY_MARGIN`]
    /// faster at least, takes that contact's place,
    /// and the slow one waits among the replacements (it comes back if the fast one fails).
    /// This is proximity neighbour selection (Gummadi et al., "The Impact of DHT Routing
    /// Geometry on Resilience and Proximity", SIGCOMM 2003; Kademlia's buckets leave the
    /// choice free): a bucket far from our ID covers a large share of the network and can be
    /// filled with nearby nodes, so the first hops of a lookup cost less than a median round
    /// trip. Contacts never timed (restored, or only heard about) are not compared.
    pub fn measured(&mut self, now: Instant, id: &Id, addr: SocketAddr, rtt: Duration) {
        let index = self.bucket_index(id);
        let bucket = &mut self.buckets[index];
        if let Some(pos) = bucket.position(id, addr) {
            bucket.contacts[pos].add_rtt_sample(rtt);
            return;
        }
        let Some(r) = bucket
            .replacements
            .iter()
            .position(|c| c.id == *id && c.is_at(addr))
        else {
            return;
        };
        bucket.replacements[r].add_rtt_sample(rtt);
        if !self.config.proximity || bucket.contacts.len() < K {
            return;
        }
        // The codes order as the round trips do (0, never timed, is left out).
        let newcomer = bucket.replacements[r];
        let slowest = bucket
            .contacts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.rtt != 0)
            .max_by_key(|(_, c)| c.rtt)
            .map(|(pos, c)| (pos, *c));
        let Some((pos, slow)) = slowest else {
            return;
        };
        let (fast, slow_rtt) = (rtt_of(newcomer.rtt), rtt_of(slow.rtt));
        let Some((fast, slow_rtt)) = fast.zip(slow_rtt) else {
            return;
        };
        if slow_rtt < fast * PROXIMITY_FACTOR
            || slow_rtt < fast + PROXIMITY_MARGIN
            || self.ip_blocked(&newcomer, index)
        {
            return;
        }
        // `put_at` takes the newcomer out of the replacements; the slow contact waits there.
        let bucket = &mut self.buckets[index];
        bucket.put_at(pos, newcomer, now);
        push_replacement(&mut bucket.replacements, slow);
    }

    /// Records that a query to `id` at `addr` went unanswered, sent `tries` times (a request
    /// and its resend count two: BEP 5 tries a node once more before it gives up on it). A
    /// contact that becomes bad is replaced by the freshest waiting replacement, if its bucket
    /// has one.
    pub fn failed(&mut self, now: Instant, id: &Id, addr: SocketAddr, tries: u8) {
        let index = self.bucket_index(id);
        let bucket = &mut self.buckets[index];
        let Some(pos) = bucket.position(id, addr) else {
            return;
        };
        let c = &mut bucket.contacts[pos];
        let was_good = c.standing_s(seconds(now), self.good_for_s) == Standing::Good;
        c.set_failures(c.failures().saturating_add(tries));
        let bad = c.is_bad();
        let verified = c.verified();
        bucket.summarize();
        if !bad {
            return;
        }
        // A bucket that loses contacts is in churn: it may ask for a ping-first again at once,
        // so waiting newcomers find the other dead places quickly.
        bucket.next_ping_first_s = 0;
        if was_good {
            self.good_failed();
        }
        // The freshest replacement that the one-per-IP rule lets in takes the place.
        while let Some(r) = self.buckets[index].replacements.pop() {
            // A replacement that entered the bucket by another way since it waited is spent.
            let present = self.buckets[index].contacts.iter().any(|c| c.id == r.id);
            if !present && !self.ip_blocked(&r, index) {
                self.buckets[index].put_at(pos, r, now);
                return;
            }
        }
        if !verified {
            // An unverified contact that does not answer is not worth keeping.
            let bucket = &mut self.buckets[index];
            bucket.contacts.swap_remove(pos);
            bucket.summarize();
        }
    }

    /// Removes the contact with this ID, if present.
    pub fn remove(&mut self, id: &Id) {
        let index = self.bucket_index(id);
        let bucket = &mut self.buckets[index];
        bucket.contacts.retain(|c| c.id != *id);
        bucket.summarize();
    }

    /// Up to `count` contacts closest to `target`, closest first, bad contacts left out.
    ///
    /// Walks the buckets in order of distance instead of sorting the whole table. With `p` the
    /// target's bucket: the contacts of bucket `p` share at least `p + 1` bits with the target;
    /// those of every deeper bucket share exactly `p`; those of a shallower bucket `i` share
    /// exactly `i`. So the tiers are bucket `p`, then all deeper buckets together, then buckets
    /// `p - 1` down to 0, and only within a tier is sorting needed.
    pub fn closest(&self, target: &Id, count: usize) -> Vec<NodeInfo> {
        self.closest_where(target, count, |_| true)
    }

    /// Like [`RoutingTable::closest`], counting only contacts that `keep` accepts (for
    /// example one address family, or only those that have answered us).
    pub fn closest_where<'t>(
        &'t self,
        target: &Id,
        count: usize,
        keep: impl Fn(&Contact) -> bool,
    ) -> Vec<NodeInfo> {
        let mut out: Vec<NodeInfo> = Vec::with_capacity(count);
        // Candidates by reference: a sort moves 28 bytes each instead of 72, and only the
        // contacts handed out unpack their address.
        let mut tier: Vec<(crate::id::Distance, &Contact)> = Vec::with_capacity(K * 2);
        let last = self.buckets.len() - 1;
        let p = self.bucket_index(target);
        let take_tier = |tier: &mut Vec<(crate::id::Distance, &Contact)>,
                         out: &mut Vec<NodeInfo>| {
            let needed = count - out.len();
            if tier.len() > needed {
                tier.select_nth_unstable_by_key(needed, |a| a.0);
                tier.truncate(needed);
            }
            tier.sort_unstable_by_key(|a| a.0);
            for (_, c) in tier.drain(..) {
                if out.len() == count {
                    break;
                }
                out.push(c.info());
            }
            out.len() == count
        };
        let add = |tier: &mut Vec<(crate::id::Distance, &'t Contact)>, b: &'t Bucket| {
            for c in &b.contacts {
                if !c.is_bad() && keep(c) {
                    tier.push((c.id.distance(target), c));
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
    /// its range and the vouched contact of the bucket heard from longest ago (if any), to ask
    /// for it; `None` for an empty bucket.
    /// Marks them as refreshed now, so each is returned once per period.
    pub fn take_refresh_targets(
        &mut self,
        now: Instant,
        rng: &mut impl rand::RngCore,
    ) -> Vec<(Id, Option<NodeInfo>)> {
        let mut targets = Vec::new();
        let own = self.own_id;
        for (i, b) in self.buckets.iter_mut().enumerate() {
            let now_s = seconds(now);
            if now_s.saturating_sub(b.last_changed_s) >= BUCKET_REFRESH_AFTER.as_secs() as u32 {
                b.last_changed_s = now_s;
                let oldest = b
                    .contacts
                    .iter()
                    .filter(|c| c.vouched())
                    .min_by_key(|c| c.last_seen_s)
                    .map(Contact::info);
                // A bucket of contacts known only from their own queries gets no query of ours
                // (and no lookup either: it is not empty).
                if oldest.is_none() && !b.contacts.is_empty() {
                    continue;
                }
                targets.push((own.random_in_bucket(i, rng), oldest));
            }
        }
        targets
    }

    /// Questionable contacts to ping, at most `count`, the longest unheard first: only vouched
    /// ones ([`Contact::vouched`]; a query of our own initiative never goes to an address known
    /// only from its own query).
    ///
    /// Buckets are read in the order of their stalest questionable contact, and only until no
    /// unread bucket can hold one of the `count` stalest; ties go to the earlier bucket, then
    /// the earlier place in it.
    pub fn questionable(&self, now: Instant, count: usize) -> Vec<NodeInfo> {
        let now_s = seconds(now);
        let mut order: ArrayVec<(u32, usize), ID_BITS> = self
            .buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                b.stalest_questionable_s(now_s, self.good_for_s)
                    .map(|s| (s, i))
            })
            .collect();
        order.sort_unstable();
        // (last seen, bucket, place) of the stalest found so far.
        let mut found: Vec<(u32, usize, usize)> = Vec::new();
        for (stalest, i) in order {
            // A bucket after the count-th found one in (last seen, bucket) order holds nothing
            // that comes before it.
            if count == 0
                || found
                    .get(count - 1)
                    .is_some_and(|f| (stalest, i) > (f.0, f.1))
            {
                break;
            }
            for (pos, c) in self.buckets[i].contacts.iter().enumerate() {
                if c.vouched() && c.standing_s(now_s, self.good_for_s) == Standing::Questionable {
                    found.push((c.last_seen_s, i, pos));
                }
            }
            found.sort_unstable();
        }
        found
            .into_iter()
            .take(count)
            .map(|(_, i, pos)| self.buckets[i].contacts[pos].info())
            .collect()
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

    /// A public address in a /24 of its own for each `i` (below 2^24).
    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from(([(i >> 16) as u8 + 1, (i >> 8) as u8, i as u8, 7], 6881))
    }

    /// The stalest questionable contacts by the definition: every contact, in table order,
    /// stably sorted by when it was last seen.
    fn questionable_by_scan(t: &RoutingTable, now: Instant, count: usize) -> Vec<NodeInfo> {
        let mut q: Vec<&Contact> = t
            .contacts()
            .filter(|c| c.vouched() && t.standing(c, now) == Standing::Questionable)
            .collect();
        q.sort_by_key(|c| c.last_seen_s);
        q.into_iter().take(count).map(Contact::info).collect()
    }

    #[test]
    fn a_contact_times_its_answers_to_within_a_step_and_keeps_its_failures_beside_its_flags() {
        let own = Id([0; 20]);
        let mut t = RoutingTable::new(own, RoutingConfig::default());
        let mut id = Id([0; 20]);
        id.0[0] = 0x80;
        let node = NodeInfo { id, addr: addr(1) };
        let now = Instant::from_millis(1_000);
        t.heard_from(now, node, Heard::Response);
        let rtt = |t: &RoutingTable| t.contacts().next().unwrap().rtt();
        assert_eq!(rtt(&t), None, "not timed yet");
        // A stranger's round trip, or one from another address, changes nothing.
        t.measured(now, &Id([7; 20]), addr(1), Duration::from_millis(5));
        t.measured(now, &id, addr(2), Duration::from_millis(5));
        assert_eq!(rtt(&t), None);
        // The first sample is taken as it is, to the scale's 4.4%.
        t.measured(now, &id, addr(1), Duration::from_millis(150));
        let first = rtt(&t).unwrap().as_secs_f64() * 1000.0;
        assert!((first / 150.0 - 1.0).abs() < 0.023, "{first}");
        // A 16-times outlier moves it a quarter of the way in log scale (a doubling), then a
        // steady 40 ms wins.
        t.measured(now, &id, addr(1), Duration::from_millis(2_400));
        let after_outlier = rtt(&t).unwrap().as_secs_f64() * 1000.0;
        assert!(
            (after_outlier / 300.0 - 1.0).abs() < 0.023,
            "{after_outlier}"
        );
        for _ in 0..40 {
            t.measured(now, &id, addr(1), Duration::from_millis(40));
        }
        let steady = rtt(&t).unwrap().as_secs_f64() * 1000.0;
        assert!((steady / 40.0 - 1.0).abs() < 0.023, "{steady}");
        // Loopback's tenth of a millisecond and a 10 s answer stay on the scale.
        assert_eq!(rtt_of(rtt_code(Duration::from_micros(20))), rtt_of(1));
        assert!(rtt_of(rtt_code(Duration::from_secs(10))).unwrap() > Duration::from_secs(5));
        // Failures share the flags' byte without touching them.
        t.failed(now, &id, addr(1), 1);
        let c = *t.contacts().next().unwrap();
        assert_eq!((c.failures(), c.verified(), c.addr()), (1, true, addr(1)));
        t.heard_from(now, node, Heard::Response);
        assert_eq!(t.contacts().next().unwrap().failures(), 0);
        let mut c = c;
        c.set_failures(200);
        assert_eq!((c.failures(), c.verified(), c.vouched()), (15, true, true));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn bucket_summaries_stay_exact_and_find_the_stalest_questionable_contacts(seed in 0u64..u64::MAX) {
            // Random answers, queries, hearsay, failures, removals and the passing of time on
            // a table whose IDs repeat, checked after every step against a scan of all.
            let mut rng = SmallRng::seed_from_u64(seed);
            let own = Id::random(&mut rng);
            let mut t = RoutingTable::new(
                own,
                RoutingConfig {
                    one_per_ip: false,
                    subnet_per_bucket_max: usize::MAX,
                    subnet_per_table_max: usize::MAX,
                    proximity: true,
                },
            );
            let pool: Vec<Id> = (0..300).map(|_| Id::random(&mut rng)).collect();
            let mut now_s = 0u64;
            for step in 0..400 {
                let i = (rng.next_u32() % 300) as usize;
                let node = info(pool[i], i as u32);
                match rng.next_u32() % 9 {
                    0..=1 => drop(t.heard_from(Instant::from_micros(now_s * 1_000_000), node, Heard::Response)),
                    2 => {
                        // An answer, timed: proximity may swap a replacement into the bucket.
                        let at = Instant::from_micros(now_s * 1_000_000);
                        let _ = t.heard_from(at, node, Heard::Response);
                        let ms = u64::from(1 + rng.next_u32() % 500);
                        t.measured(at, &node.id, node.addr, Duration::from_millis(ms));
                    }
                    8 => {
                        let ms = u64::from(1 + rng.next_u32() % 500);
                        t.measured(Instant::from_micros(now_s * 1_000_000), &node.id, node.addr, Duration::from_millis(ms));
                    }
                    3 => drop(t.heard_from(Instant::from_micros(now_s * 1_000_000), node, Heard::Query)),
                    4 => drop(t.heard_from(Instant::from_micros(now_s * 1_000_000), node, Heard::About)),
                    5 => t.failed(Instant::from_micros(now_s * 1_000_000), &node.id, node.addr, 1 + (rng.next_u32() % 2) as u8),
                    6 => t.remove(&node.id),
                    _ => now_s += u64::from(rng.next_u32() % 400),
                }
                let now = Instant::from_micros(now_s * 1_000_000);
                for (b, bucket) in t.buckets.iter().enumerate() {
                    let mut fresh = bucket.clone();
                    fresh.summarize();
                    proptest::prop_assert_eq!(
                        (bucket.stalest_verified_s, bucket.stalest_hearsay_s, bucket.bad),
                        (fresh.stalest_verified_s, fresh.stalest_hearsay_s, fresh.bad),
                        "step {} bucket {}", step, b
                    );
                }
                for count in [1, 3, 1000] {
                    proptest::prop_assert_eq!(
                        t.questionable(now, count),
                        questionable_by_scan(&t, now, count),
                        "step {} count {}", step, count
                    );
                }
            }
        }
    }

    #[test]
    fn packed_addresses_keep_their_family_and_port() {
        let now = Instant::ZERO;
        let v4: SocketAddr = "1.2.3.4:6881".parse().unwrap();
        // The same 16 bytes as the IPv4 contact holds, but IPv6.
        let v6: SocketAddr = "[102:304::]:6881".parse().unwrap();
        let full: SocketAddr = "[2001:db8::1:2]:65535".parse().unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let a = Contact::new(
            NodeInfo {
                id: Id::random(&mut rng),
                addr: v4,
            },
            now,
            Heard::Response,
        );
        let b = Contact::new(
            NodeInfo {
                id: Id::random(&mut rng),
                addr: v6,
            },
            now,
            Heard::Query,
        );
        let c = Contact::new(
            NodeInfo {
                id: Id::random(&mut rng),
                addr: full,
            },
            now,
            Heard::About,
        );
        assert_eq!((a.addr(), b.addr(), c.addr()), (v4, v6, full));
        assert!(a.is_at(v4) && !a.is_at(v6) && !b.is_at(v4));
        assert!(!a.is_at("1.2.3.4:6882".parse().unwrap()));
        assert!(!a.same_ip(&b) && a.same_ip(&a));
        assert!(a.verified() && !b.verified());
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
    fn one_subnet_gets_one_place_per_bucket_and_four_in_the_table_but_local_ones_are_exempt() {
        // Own ID zero: an ID whose first set bit is bit `b` falls in bucket `b`.
        let in_bucket = |b: usize, last: u8| {
            let mut id = Id([0; 20]);
            id.0[b / 8] = 0x80 >> (b % 8);
            id.0[19] |= last;
            id
        };
        for (net, exempt) in [([203, 0, 113], false), ([10, 1, 2], true)] {
            let mut t = RoutingTable::new(Id([0; 20]), RoutingConfig::default());
            // One contact at each depth, each in a /24 of its own, splits the table into
            // buckets with room.
            for b in 0..24usize {
                let node = info(in_bucket(b, 0x40), 1000 + b as u32);
                assert_eq!(
                    t.heard_from(Instant::ZERO, node, Heard::Response),
                    Insert::Added
                );
            }
            assert!(t.bucket_count() >= 16);
            // Hosts of one /24 (ports and last octets differ) try every bucket, twice each.
            let mut added = 0;
            let mut per_bucket = [0usize; 16];
            for b in 0..16usize {
                for k in 0..2u8 {
                    let addr = SocketAddr::from(([net[0], net[1], net[2], 2 * b as u8 + k], 6881));
                    let node = NodeInfo {
                        id: in_bucket(b, k + 1),
                        addr,
                    };
                    if t.heard_from(Instant::ZERO, node, Heard::Response) == Insert::Added {
                        added += 1;
                        per_bucket[t.bucket_index(&node.id)] += 1;
                    }
                }
            }
            if exempt {
                assert_eq!(added, 32, "private addresses are exempt");
            } else {
                assert_eq!(added, SUBNET_PER_TABLE_MAX, "{net:?}");
                assert!(per_bucket.iter().all(|&c| c <= SUBNET_PER_BUCKET_MAX));
            }
        }
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

    #[test]
    fn a_waiting_newcomer_twice_as_fast_takes_the_place_of_the_slowest_timed_contact() {
        let now = Instant::from_millis(10_000);
        let run = |proximity: bool| {
            let (mut t, ids) = table_with_full_far_bucket(Heard::Response, addr(1000));
            t.config.proximity = proximity;
            // Contacts 0..K-1 answer in 100 ms, contact 3 in 400 ms; contact 0 is never timed.
            for (i, id) in ids.iter().enumerate().skip(1) {
                let ms = if i == 3 { 400 } else { 100 };
                t.measured(now, id, addr(i as u32), Duration::from_millis(ms));
            }
            // A newcomer answers: the bucket is full of good contacts, so it waits.
            let fast = info(far_id(0x40), 500);
            assert!(!matches!(
                t.heard_from(now, fast, Heard::Response),
                Insert::Added
            ));
            // 250 ms is not twice as fast as 400: nothing moves; 150 ms is.
            t.measured(now, &fast.id, fast.addr, Duration::from_millis(250));
            assert!(t.get(&fast.id).is_none(), "not twice as fast");
            for _ in 0..8 {
                t.measured(now, &fast.id, fast.addr, Duration::from_millis(150));
            }
            (t, ids, fast)
        };
        let (t, ids, fast) = run(true);
        assert!(
            t.get(&fast.id).is_some(),
            "the fast newcomer is in the bucket"
        );
        assert!(
            t.get(&ids[3]).is_none(),
            "the slowest timed contact left the bucket"
        );
        assert!(
            t.known_at(&ids[3], addr(3)).is_some(),
            "and waits among the replacements"
        );
        assert!(
            t.get(&ids[0]).is_some(),
            "an untimed contact is never compared"
        );
        assert_eq!(t.bucket(0).len(), K);
        // On loopback, 0.1 ms against 0.4 ms is four times as fast but buys nothing.
        let (mut t, ids) = table_with_full_far_bucket(Heard::Response, addr(1000));
        for (i, id) in ids.iter().enumerate() {
            t.measured(now, id, addr(i as u32), Duration::from_micros(400));
        }
        let quick = info(far_id(0x41), 501);
        let _ = t.heard_from(now, quick, Heard::Response);
        t.measured(now, &quick.id, quick.addr, Duration::from_micros(100));
        assert!(t.get(&quick.id).is_none(), "within the margin");
        // Without proximity the newcomer only waits.
        let (t, ids, fast) = run(false);
        assert!(t.get(&fast.id).is_none());
        assert!(t.get(&ids[3]).is_some());
        assert!(
            t.known_at(&fast.id, fast.addr).unwrap().rtt().is_some(),
            "but it is timed"
        );
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
        // Bucket 0 full of contacts that answered us, 20 minutes ago: all questionable now.
        let (mut t, _) = table_with_full_far_bucket(Heard::Response, addr(100));
        assert!(t.bucket_count() >= 2);
        let newcomer = far_id(0xee);
        let later = Instant::ZERO + Duration::from_secs(20 * 60);
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
    fn a_contact_that_only_queried_us_is_never_pinged_and_yields_to_one_that_answered() {
        // Bucket 0 full of contacts that only queried us: their addresses are unproven.
        let (mut t, ids) = table_with_full_far_bucket(Heard::Query, addr(100));
        let later = Instant::ZERO + Duration::from_secs(20 * 60);
        let to_ping = t.questionable(later, 100);
        assert!(
            to_ping.iter().all(|q| !ids.contains(&q.id)),
            "none of them is pinged: {to_ping:?}"
        );
        let querier = far_id(0xd0);
        assert_eq!(
            t.heard_from(later, info(querier, 400), Heard::Query),
            Insert::Ignored,
            "another querier waits, and no one is pinged for it"
        );
        assert!(!t.verified_at(&ids[0], addr(0)));
        // One that answered us takes the stalest unproven place at once.
        let newcomer = far_id(0xd1);
        assert_eq!(
            t.heard_from(later, info(newcomer, 401), Heard::Response),
            Insert::Added
        );
        assert!(t.verified_at(&newcomer, addr(401)));
        assert_eq!(ids.iter().filter(|id| t.get(id).is_some()).count(), K - 1);
    }

    #[test]
    fn a_full_bucket_asks_for_one_ping_first_per_period_unless_it_just_lost_a_contact() {
        let (mut t, ids) = table_with_full_far_bucket(Heard::Response, addr(100));
        let at = |s: u64| Instant::ZERO + Duration::from_secs(20 * 60 + s);
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
    fn the_good_window_shrinks_as_good_contacts_die_and_grows_back_as_they_answer() {
        let (mut t, ids) = table_with_full_far_bucket(Heard::Response, addr(100));
        let at = |s: u64| Instant::ZERO + Duration::from_secs(s);
        assert_eq!(t.good_for(), GOOD_FOR);
        // Two minutes after they answered, BEP 5's window finds nothing to ping.
        assert!(t.questionable(at(120), K).is_empty());
        // A contact that was questionable anyway (20 minutes silent) teaches nothing.
        let mut stale = RoutingTable::new(Id([0; 20]), RoutingConfig::default());
        stale.heard_from(at(0), info(ids[0], 0), Heard::Response);
        stale.failed(at(20 * 60), &ids[0], addr(0), FAILURES_BAD);
        assert_eq!(stale.good_for(), GOOD_FOR);
        // Four good contacts stop answering within a minute (sessions of minutes): 900 s
        // halves to 450, 225, 112, then stops at the floor.
        for (i, id) in ids.iter().enumerate().take(4) {
            t.failed(at(60), id, addr(i as u32), FAILURES_BAD);
        }
        assert_eq!(t.good_for(), GOOD_FOR_MIN);
        // The survivors (and the near contact), silent for two minutes, are now questionable:
        // pinged, and a live newcomer may take their place.
        let pinged: Vec<Id> = t.questionable(at(120), K).iter().map(|n| n.id).collect();
        assert_eq!(pinged.len(), 5);
        assert!(ids[4..].iter().all(|id| pinged.contains(id)));
        let survivor = t.get(&ids[4]).copied().expect("in the table");
        assert_eq!(t.standing(&survivor, at(120)), Standing::Questionable);
        // Good contacts that keep answering lengthen it again, up to BEP 5's window.
        let mut previous = t.good_for();
        for s in 0..2_000 {
            t.heard_from(at(121 + s), info(ids[4], 4), Heard::Response);
            assert!(t.good_for() >= previous && t.good_for() <= GOOD_FOR);
            previous = t.good_for();
        }
        assert_eq!(t.good_for(), GOOD_FOR);
    }

    #[test]
    fn answers_stop_naming_a_contact_silent_for_four_good_windows() {
        let (mut t, ids) = table_with_full_far_bucket(Heard::Response, addr(100));
        let at = |s: u64| Instant::ZERO + Duration::from_secs(s);
        let named = |t: &RoutingTable, i: usize, s: u64| {
            t.named(t.get(&ids[i]).expect("in the table"), at(s))
        };
        // At BEP 5's window: named for an hour of silence.
        assert!(named(&t, 5, 59 * 60));
        assert!(!named(&t, 5, 60 * 60));
        // Good contacts die fast: the window falls to a minute, and four minutes of silence
        // is enough.
        for (i, id) in ids.iter().enumerate().take(4) {
            t.failed(at(30), id, addr(i as u32), FAILURES_BAD);
        }
        assert_eq!(t.good_for(), GOOD_FOR_MIN);
        assert!(named(&t, 5, 3 * 60));
        assert!(!named(&t, 5, 4 * 60));
        // Heard from again, it is named again.
        t.heard_from(at(5 * 60), info(ids[5], 5), Heard::Response);
        assert!(named(&t, 5, 5 * 60 + 1));
        // One known only from its own queries keeps its own rule (an hour since it queried).
        let querier = far_id(0x10);
        let mut q = RoutingTable::new(Id([0; 20]), RoutingConfig::default());
        q.heard_from(at(0), info(querier, 50), Heard::Query);
        let c = *q.get(&querier).expect("in the table");
        assert!(q.named(&c, at(59 * 60)) && !q.named(&c, at(60 * 60)));
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
        let got = t.closest(&target, 8);
        all.sort_by_key(|n| n.id.distance(&target));
        assert_eq!(got, all[..8].to_vec());
        t.failed(Instant::ZERO, &got[0].id, got[0].addr, 1);
        t.failed(Instant::ZERO, &got[0].id, got[0].addr, 1);
        let again = t.closest(&target, 8);
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
                    assert_eq!(t.closest(&target, count), all);
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
