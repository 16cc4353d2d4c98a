//! The node: one Kademlia participant as a sans-IO state machine.
//!
//! # Calling protocol
//!
//! Getters: [`Node::id`], [`Node::routing_table`], [`Node::storage`], [`Node::stats`].
//!
//! Inputs:
//! - [`Node::handle_datagram`] for every UDP datagram that arrives;
//! - [`Node::handle_timeout`] when the instant from [`Node::poll_timeout`] has come (calling it
//!   early or twice is harmless).
//!
//! Commands (each returns a [`QueryId`] at once; the result comes later as an [`Event`]):
//! [`Node::bootstrap`], [`Node::find_node`], [`Node::get_peers`], [`Node::announce`],
//! [`Node::get_immutable`], [`Node::put_immutable`], [`Node::get_mutable`],
//! [`Node::put_mutable`].
//!
//! Outputs, to drain after every input or command, in this order:
//! 1. [`Node::poll_transmit`] until `None`: datagrams to send;
//! 2. [`Node::poll_event`] until `None`: finished commands;
//! 3. [`Node::poll_timeout`]: when to call [`Node::handle_timeout`] next.
//!
//! A runtime that persists the store also drains [`Node::poll_store_change`] (with
//! [`Config::journal`] on) and should send a batch's datagrams only after it has made the
//! batch's changes durable.

mod client;
mod config;
mod handoff;
mod server;
mod vecmap;

use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

use crate::bep44::MutableItem;
use crate::id::Id;
use crate::krpc::Envelope;
use crate::lookup::{LookupStats, TraceEvent};
use crate::message::{Body, Message, NodeInfo};
use crate::routing::{Heard, Insert, RoutingTable};
use crate::store::{ItemValue, Storage, StoreChange, StoredItem};
use crate::time::Instant;
use crate::token::Tokens;

pub use config::Config;

use client::Command;
use vecmap::VecMap;

/// A command's handle.
pub type QueryId = u64;

/// Questionable contacts pinged per maintenance round.
const PINGS_PER_MAINTENANCE: usize = 1;

/// Lookups for empty buckets started per maintenance round.
const REFRESHES_PER_MAINTENANCE: usize = 4;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The encoded KRPC message.
    pub data: Vec<u8>,
}

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Bootstrap ended with this many contacts in the routing table.
    Bootstrap {
        /// Contacts in the routing table.
        contacts: usize,
    },
    /// The k closest nodes that answered, closest first.
    FindNode {
        /// The nodes.
        closest: Vec<NodeInfo>,
    },
    /// Peers found for an info-hash.
    GetPeers {
        /// The peers, deduplicated.
        peers: Vec<SocketAddr>,
    },
    /// An announce or put ended; `stored_at` nodes acknowledged it.
    Stored {
        /// The target written.
        target: Id,
        /// Nodes that acknowledged.
        stored_at: u32,
        /// KRPC errors received from nodes that refused (code, message).
        errors: Vec<(i64, String)>,
    },
    /// An immutable get ended; the value (bencoded) if found and verified.
    GetImmutable {
        /// The value.
        value: Option<Vec<u8>>,
    },
    /// A mutable get ended; the valid item with the highest seq, if any.
    GetMutable {
        /// The item.
        item: Option<MutableItem>,
    },
    /// The node runs as many commands as it may; try again later.
    Overloaded,
}

/// A finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The command's handle.
    pub query: QueryId,
    /// Its result.
    pub outcome: Outcome,
    /// What its lookup measured.
    pub stats: LookupStats,
    /// Every step of the lookup, when the command was started traced.
    pub trace: Option<Vec<TraceEvent>>,
}

/// Counters of what the node saw and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Datagrams handed to [`Node::handle_datagram`].
    pub datagrams_in: u64,
    /// Datagrams returned by [`Node::poll_transmit`].
    pub datagrams_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Datagrams that did not decode.
    pub malformed: u64,
    /// Queries answered (with a response or an error).
    pub queries_answered: u64,
    /// KRPC errors sent.
    pub errors_sent: u64,
    /// Responses that matched no transaction of ours (late, spoofed or duplicate).
    pub unexpected_responses: u64,
    /// Requests not sent because [`Config::transactions_max`] were in flight.
    pub transactions_refused: u64,
    /// Contacts refused under BEP 42.
    pub bep42_refused: u64,
    /// Requests sent a second time because the first try got no answer in
    /// [`Config::request_stall`].
    pub resends: u64,
    /// Stored items put to a newcomer that became one of the k closest to their key.
    pub handoffs: u64,
}

/// Why a request was sent, so its reply goes to the right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A lookup step of a command.
    Lookup(QueryId),
    /// A bootstrap request to an address whose ID we do not know.
    Seed(QueryId),
    /// A put or announce of a command's store phase.
    Store(QueryId),
    /// A liveness check of a routing-table contact.
    Ping,
    /// A `get` to a newcomer for the write token of a hand-off of this stored item.
    HandoffToken(Id),
    /// The `put` of a hand-off; its answer needs nothing more.
    HandoffPut,
}

#[derive(Debug, Clone)]
struct Pending {
    to: SocketAddr,
    id: Option<Id>,
    purpose: Purpose,
    stall_at: Option<Instant>,
    deadline: Instant,
    /// How to send the request once more when the first try stalls: on a lossy path one
    /// resend recovers most lost requests before the lookup gives up on the node.
    resend: Resend,
}

/// What a request needs to be sent a second time, byte for byte as the first.
///
/// The common queries carry nothing but an ID and are encoded again from it, so a request in
/// flight keeps no copy of its datagram: at a million simulated nodes that copy's allocation,
/// and its free when the answer came, long after, were a cache miss per request.
#[derive(Debug, Clone)]
enum Resend {
    /// Sent twice already.
    Spent,
    /// Encoded again from its ID.
    Encode(Again),
    /// Any other query (announces, puts, queries with `want` or `seq`) keeps its datagram.
    Datagram(Vec<u8>),
}

/// A query encoded again for its resend: one of those that carry nothing but an ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    Ping,
    FindNode(Id),
    GetPeers(Id),
    Get(Id),
}

impl Again {
    /// How to resend `method`, if it is one of those encoded again; `None` otherwise.
    fn of(method: &crate::message::Method) -> Option<Again> {
        use crate::message::Method;
        match *method {
            Method::Ping => Some(Again::Ping),
            Method::FindNode { target, want: None } => Some(Again::FindNode(target)),
            Method::GetPeers {
                info_hash,
                want: None,
            } => Some(Again::GetPeers(info_hash)),
            Method::Get { target, seq: None } => Some(Again::Get(target)),
            _ => None,
        }
    }

    /// The method to encode again.
    fn method(self) -> crate::message::Method {
        use crate::message::Method;
        match self {
            Again::Ping => Method::Ping,
            Again::FindNode(target) => Method::FindNode { target, want: None },
            Again::GetPeers(info_hash) => Method::GetPeers {
                info_hash,
                want: None,
            },
            Again::Get(target) => Method::Get { target, seq: None },
        }
    }
}

/// An item this node put itself, republished while it runs.
#[derive(Debug, Clone)]
struct OwnItem {
    value: ItemValue,
    next_republish: Instant,
}

/// One Kademlia node. See the module documentation for the calling protocol.
#[derive(Debug)]
pub struct Node {
    /// Shared, since it never changes: a simulator runs a million nodes with one.
    config: Arc<Config>,
    id: Id,
    rng: SmallRng,
    table: RoutingTable,
    storage: Storage,
    tokens: Tokens,
    transactions: VecMap<u16, Pending>,
    next_tid: u16,
    commands: BTreeMap<QueryId, Command>,
    next_query: QueryId,
    own_items: BTreeMap<Id, OwnItem>,
    routers: Vec<SocketAddr>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_maintenance: Instant,
    stats: NodeStats,
    external_ip: Option<SocketAddr>,
}

impl Node {
    /// A node with ID `id` whose randomness is seeded with `seed`.
    /// `config` is a [`Config`] or an `Arc` of one that many nodes share.
    pub fn new(config: impl Into<Arc<Config>>, id: Id, seed: u64, now: Instant) -> Self {
        let config: Arc<Config> = config.into();
        let mut rng = SmallRng::seed_from_u64(seed);
        let tokens = Tokens::new(now, &mut rng);
        let next_tid = rng.next_u32() as u16;
        // Spread maintenance so that nodes started together do not wake together.
        let jitter = rng.next_u64() % config.maintenance_interval.as_micros().max(1) as u64;
        Node {
            table: RoutingTable::new(id, config.routing),
            storage: Storage::new(config.limits, config.journal),
            tokens,
            transactions: VecMap::default(),
            next_tid,
            commands: BTreeMap::new(),
            next_query: 1,
            own_items: BTreeMap::new(),
            routers: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_maintenance: now + Duration::from_micros(jitter),
            stats: NodeStats::default(),
            external_ip: None,
            id,
            rng,
            config,
        }
    }

    // ---- getters ----

    /// Our node ID.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The routing table.
    pub fn routing_table(&self) -> &RoutingTable {
        &self.table
    }

    /// The store (items and peers held for others).
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Counters.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// Our address as other nodes report it (BEP 42 `ip`), if any did.
    pub fn external_addr(&self) -> Option<SocketAddr> {
        self.external_ip
    }

    /// Commands running.
    pub fn commands_running(&self) -> usize {
        self.commands.len()
    }

    /// Where the node's in-flight requests lie in memory, and their size in bytes: for a
    /// simulator's cache hint, which asks for them while the event before a response runs
    /// (the response is matched against them first). Nothing is read through the pointer.
    pub fn requests_memory(&self) -> (*const u8, usize) {
        self.transactions.memory()
    }

    /// Approximate bytes of memory the node holds (routing table, store, commands).
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of::<Self>()
            + self.table.memory_bytes()
            + self.storage.memory_bytes()
            + self.transactions.len() * (core::mem::size_of::<Pending>() + 16)
            + self.commands.len() * 2048
            + self.own_items.len() * 128
    }

    // ---- restoring saved state ----

    /// Puts a saved item back into the store (a restarted node's data).
    pub fn restore_item(&mut self, item: StoredItem) {
        // A restored item may exceed a since-lowered limit; it is then dropped, which is what
        // the limit asks for.
        let _ = self.storage.put_item(item);
        // Restoring is not a change to persist again.
        while self.storage.poll_change().is_some() {}
    }

    /// Puts a saved peer back into the store.
    pub fn restore_peer(&mut self, info_hash: Id, peer: SocketAddr, expires: Instant) {
        self.storage.add_peer(info_hash, peer, expires);
        while self.storage.poll_change().is_some() {}
    }

    /// Puts `node` into the routing table as if it had just answered a query of ours, without
    /// a message. This is for state known to be live by other means: the simulator's converged
    /// start (`dht sim --converge`) builds every table this way instead of growing the network
    /// by a million joins. A full bucket keeps its members and the contact waits among the
    /// replacements, as it would after a real answer. Returns whether it entered the table.
    pub fn restore_contact(&mut self, now: Instant, node: NodeInfo) -> bool {
        if !self.acceptable(&node) {
            return false;
        }
        matches!(
            self.table.heard_from(now, node, Heard::Response),
            Insert::Added | Insert::Refreshed
        )
    }

    // ---- inputs ----

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let (envelope, body) = match Message::decode_parts(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                if e.should_answer() && !self.config.read_only {
                    let tid = e.transaction_id.unwrap_or_default();
                    let code = crate::message::error_code::PROTOCOL;
                    self.send_error(from, &tid, code, "malformed");
                }
                return;
            }
        };
        let tid = envelope.transaction_id;
        match body {
            Body::Query(q) => self.handle_query(now, from, tid, envelope.read_only, q),
            Body::Response(r) => {
                if let Some(ip) = envelope.requester_ip {
                    self.external_ip = Some(ip);
                }
                self.handle_response(now, from, tid, r);
            }
            Body::Error(e) => self.handle_error(now, from, tid, e),
        }
    }

    /// Time has come: requests time out, housekeeping runs.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Stalled and timed-out requests.
        let mut expired = Vec::new();
        let mut stalled = Vec::new();
        for (&tid, p) in self.transactions.iter() {
            if p.deadline <= now {
                expired.push(tid);
            } else if p.stall_at.is_some_and(|s| s <= now) {
                stalled.push(tid);
            }
        }
        for tid in stalled {
            let Some(p) = self.transactions.get_mut(&tid) else {
                continue;
            };
            // Halfway through the stall time the request is sent once more (on a lossy path
            // one datagram in a few is lost, and the second copy's answer usually comes before
            // the stall); at the stall the lookup stops waiting for it, so a dead node holds
            // one of the α slots no longer than that. A late answer to either copy still
            // counts until the deadline.
            let to = p.to;
            p.stall_at = Some(now + self.config.request_stall / 2);
            let data = match core::mem::replace(&mut p.resend, Resend::Spent) {
                Resend::Encode(again) => self.encode_query(tid, again.method()),
                Resend::Datagram(data) => data,
                Resend::Spent => {
                    p.stall_at = None;
                    if let (Purpose::Lookup(q), Some(id)) = (p.purpose, p.id) {
                        self.command_stalled(now, q, NodeInfo { id, addr: to });
                    }
                    continue;
                }
            };
            self.stats.resends += 1;
            self.transmits.push_back(Transmit { to, data });
        }
        for tid in expired {
            let removed = self.transactions.remove(&tid);
            self.release_empty_maps();
            if let Some(p) = removed {
                if let Some(id) = p.id {
                    // The resend was spent unless the request timed out before its stall.
                    let tries = if matches!(p.resend, Resend::Spent) {
                        2
                    } else {
                        1
                    };
                    self.table.failed(now, &id, p.to, tries);
                }
                self.request_failed(now, p, None);
            }
        }
        if now >= self.next_maintenance {
            self.maintain(now);
        }
    }

    // ---- outputs ----

    /// An emptied map or `VecDeque` keeps its buffer (a `BTreeMap` its root node):
    /// about 5 KB a node that is idle between commands. A million simulated nodes are
    /// idle most of the time, so the empty containers are given back.
    fn release_empty_maps(&mut self) {
        self.transactions.release_if_empty();
        if self.commands.is_empty() {
            self.commands = BTreeMap::new();
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let Some(t) = self.transmits.pop_front() else {
            if self.transmits.capacity() > 0 {
                self.transmits = VecDeque::new();
            }
            return None;
        };
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += t.data.len() as u64;
        Some(t)
    }

    /// The next finished command.
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front();
        if e.is_none() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
        e
    }

    /// When [`Node::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.next_maintenance;
        for p in self.transactions.values() {
            next = next.min(p.deadline);
            if let Some(s) = p.stall_at {
                next = next.min(s);
            }
        }
        Some(next)
    }

    /// The next store change to persist (with [`Config::journal`] on).
    pub fn poll_store_change(&mut self) -> Option<StoreChange> {
        self.storage.poll_change()
    }

    // ---- sending ----

    /// Queues a datagram of ours: our version beside the given envelope fields.
    fn send(
        &mut self,
        to: SocketAddr,
        tid: &[u8],
        requester_ip: Option<SocketAddr>,
        read_only: bool,
        body: &Body,
    ) {
        let data = self.encode(tid, requester_ip, read_only, body);
        self.transmits.push_back(Transmit { to, data });
    }

    fn encode(
        &self,
        tid: &[u8],
        requester_ip: Option<SocketAddr>,
        read_only: bool,
        body: &Body,
    ) -> Vec<u8> {
        let envelope = Envelope {
            transaction_id: tid,
            version: self.config.version.as_ref().map(|v| &v[..]),
            requester_ip,
            read_only,
        };
        let mut data = Vec::new();
        crate::krpc::encode_parts(&mut data, &envelope, body);
        data
    }

    /// Our query with transaction ID `tid`.
    fn encode_query(&self, tid: u16, method: crate::message::Method) -> Vec<u8> {
        let body = Body::Query(crate::message::Query {
            sender_id: self.id,
            method,
        });
        self.encode(&tid.to_be_bytes(), None, self.config.read_only, &body)
    }

    fn send_error(&mut self, to: SocketAddr, tid: &[u8], code: i64, message: &str) {
        self.stats.errors_sent += 1;
        let body = Body::Error(crate::message::ErrorBody {
            code,
            message: message.to_string(),
        });
        self.send(to, tid, None, false, &body);
    }

    /// Sends a query; returns false if too many requests are in flight.
    fn send_query(
        &mut self,
        now: Instant,
        to: SocketAddr,
        id: Option<Id>,
        purpose: Purpose,
        method: crate::message::Method,
    ) -> bool {
        if self.transactions.len() >= self.config.transactions_max {
            self.stats.transactions_refused += 1;
            return false;
        }
        let mut tid = self.next_tid;
        while self.transactions.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        let stall_at = Some(now + self.config.request_stall / 2);
        let again = Again::of(&method);
        let data = self.encode_query(tid, method);
        let resend = match again {
            Some(again) => Resend::Encode(again),
            None => Resend::Datagram(data.clone()),
        };
        self.transactions.insert(
            tid,
            Pending {
                to,
                id,
                purpose,
                stall_at,
                deadline: now + self.config.request_timeout,
                resend,
            },
        );
        self.transmits.push_back(Transmit { to, data });
        true
    }

    // ---- routing-table upkeep ----

    /// Whether a contact may enter the routing table under the BEP 42 setting.
    fn acceptable(&mut self, node: &NodeInfo) -> bool {
        if node.addr.port() == 0 {
            return false;
        }
        if self.config.enforce_bep42 && !crate::id::bep42_valid(&node.id, &node.addr.ip()) {
            self.stats.bep42_refused += 1;
            return false;
        }
        true
    }

    fn heard_from(&mut self, now: Instant, node: NodeInfo, how: Heard) {
        if !self.acceptable(&node) {
            return;
        }
        // A node heard from directly that the table did not know is a newcomer to us, whether
        // it now enters the table or waits among the replacements of a full bucket. (Not every
        // stranger: two holders outside each other's full buckets would hand items back and
        // forth for ever.)
        let newcomer = how != Heard::About
            && !self.config.read_only
            && self.storage.item_count() > 0
            && !self.table.knows(&node.id);
        if let Insert::PingFirst(q) = self.table.heard_from(now, node, how) {
            self.ping(now, q);
        }
        if newcomer {
            self.hand_off(now, node);
        }
    }

    fn ping(&mut self, now: Instant, node: NodeInfo) {
        let already = self
            .transactions
            .values()
            .any(|p| p.purpose == Purpose::Ping && p.to == node.addr);
        if !already {
            self.send_query(
                now,
                node.addr,
                Some(node.id),
                Purpose::Ping,
                crate::message::Method::Ping,
            );
        }
    }

    fn maintain(&mut self, now: Instant) {
        self.next_maintenance = now + self.config.maintenance_interval;
        self.tokens.maintain(now, &mut self.rng);
        self.storage.expire(now);
        if self.config.read_only {
            // A read-only node keeps no table worth refreshing beyond its own commands.
        }
        for q in self.table.questionable(now, PINGS_PER_MAINTENANCE) {
            self.ping(now, q);
        }
        // A quiet bucket is refreshed with one find_node to its stalest contact (the reply
        // proves it alive and offers up to k contacts of that range); only an empty bucket
        // costs a whole lookup. Full lookups for every quiet bucket every 15 minutes would be
        // most of a large, lightly loaded network's traffic.
        let targets = self.table.take_refresh_targets(now, &mut self.rng);
        let mut lookups = 0;
        for (target, contact) in targets {
            match contact {
                Some(c) => {
                    let method = crate::message::Method::FindNode { target, want: None };
                    self.send_query(now, c.addr, Some(c.id), Purpose::Ping, method);
                }
                None if lookups < REFRESHES_PER_MAINTENANCE => {
                    lookups += 1;
                    self.start_refresh(now, target);
                }
                None => {}
            }
        }
        if self.table.len() < self.config.k && !self.routers.is_empty() {
            let routers = self.routers.clone();
            self.start_bootstrap(now, &[], &routers, true);
        }
        let due: Vec<Id> = self
            .own_items
            .iter()
            .filter(|(_, o)| o.next_republish <= now)
            .map(|(t, _)| *t)
            .collect();
        for target in due {
            if let Some(o) = self.own_items.get_mut(&target) {
                o.next_republish = now + self.config.republish_interval;
                let value = o.value.clone();
                self.start_republish(now, value);
            }
        }
    }
}

#[cfg(test)]
mod tests;
