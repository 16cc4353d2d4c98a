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
mod guard;
mod handoff;
mod maintenance;
mod server;
mod transactions;
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
use crate::message::{Body, Message, NodeInfo, Shape};
use crate::routing::{Heard, Insert, RoutingTable};
use crate::store::{ItemValue, Storage, StoreChange, StoredItem};
use crate::time::Instant;
use crate::token::Tokens;

pub use config::{Config, UPLOAD_BYTES_PER_SECOND};

pub use guard::{REPLY_BYTES_MAX, TRANSMITS_MAX, UPKEEP_IN_FLIGHT_PER_ADDRESS_MAX};
pub use maintenance::SELF_LOOKUP_AFTER_JOIN;
pub use transactions::TRANSACTION_ID_LEN;

use client::Command;
use guard::Guard;
use transactions::{Pending, Purpose, Resend, Transactions};

/// A command's handle.
pub type QueryId = u64;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The encoded KRPC message.
    pub data: Vec<u8>,
    /// What the message is (a query and its method, a response, an error and its code), for
    /// counters that sort traffic without reading `data` again.
    pub shape: Shape,
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
    /// Queries dropped because their source IP was over [`Config::rate_limit`].
    pub rate_limited: u64,
    /// Sources blocked for [`crate::ratelimit::RateLimit::block_for`] after going on over
    /// their limit.
    pub sources_blocked: u64,
    /// Datagrams dropped because their source was blocked.
    pub blocked_dropped: u64,
    /// Answers and upkeep datagrams dropped over [`Config::upload_bytes_per_second`].
    pub upload_dropped: u64,
    /// Datagrams dropped because [`TRANSMITS_MAX`] were waiting to be sent.
    pub queue_dropped: u64,
    /// Queries of our own initiative not sent: the address never answered us, or had
    /// [`UPKEEP_IN_FLIGHT_PER_ADDRESS_MAX`] such queries in flight.
    pub upkeep_refused: u64,
    /// Replies cut to fit in [`REPLY_BYTES_MAX`].
    pub replies_trimmed: u64,
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
    transactions: Transactions,
    commands: BTreeMap<QueryId, Command>,
    next_query: QueryId,
    own_items: BTreeMap<Id, OwnItem>,
    routers: Vec<SocketAddr>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_maintenance: Instant,
    /// When maintenance next looks up our own ID (see [`SELF_LOOKUP_AFTER_JOIN`]); None: not
    /// planned.
    next_self_lookup: Option<Instant>,
    stats: NodeStats,
    external_ip: Option<SocketAddr>,
    /// The rate limits' state, made when first needed.
    guard: Option<Box<Guard>>,
}

impl Node {
    /// A node with ID `id` whose randomness is seeded with `seed`.
    /// `config` is a [`Config`] or an `Arc` of one that many nodes share.
    pub fn new(config: impl Into<Arc<Config>>, id: Id, seed: u64, now: Instant) -> Self {
        let config: Arc<Config> = config.into();
        let mut rng = SmallRng::seed_from_u64(seed);
        let tokens = Tokens::new(now, &mut rng);
        let first_tid = rng.next_u32();
        // Spread maintenance so that nodes started together do not wake together.
        let jitter = rng.next_u64() % config.maintenance_interval.as_micros().max(1) as u64;
        Node {
            table: RoutingTable::new(id, config.routing),
            storage: Storage::new(config.limits, config.journal),
            tokens,
            transactions: Transactions::new(first_tid),
            commands: BTreeMap::new(),
            next_query: 1,
            own_items: BTreeMap::new(),
            routers: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_maintenance: now + Duration::from_micros(jitter),
            next_self_lookup: None,
            stats: NodeStats::default(),
            external_ip: None,
            guard: None,
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
    /// Only with the `sim-hints` feature: it is no part of the protocol.
    #[cfg(feature = "sim-hints")]
    pub fn requests_memory(&self) -> (*const u8, usize) {
        self.transactions.memory()
    }

    /// Approximate bytes of memory the node holds (routing table, store, commands).
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of::<Self>()
            + self.table.memory_bytes()
            + self.storage.memory_bytes()
            + self.transactions.memory_bytes()
            + self.commands.len() * 2048
            + self.own_items.len() * 128
            + self.guard.as_ref().map_or(0, |g| g.memory_bytes())
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

    /// A datagram arrived from `from`. Returns its [`Shape`] when it decoded (`None`: it did
    /// not, and was counted malformed), so a runtime's counters need not read it again.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Option<Shape> {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let (envelope, body) = match Message::decode_parts(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                if e.should_answer() && !self.config.read_only && self.admit(now, from) {
                    let tid = e.transaction_id.unwrap_or_default();
                    let code = crate::message::error_code::PROTOCOL;
                    self.send_error(now, from, &tid, code, "malformed");
                }
                return None;
            }
        };
        let tid = envelope.transaction_id;
        let shape = body.shape();
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
        Some(shape)
    }

    /// Time has come: requests time out, housekeeping runs.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handle_request_timeouts(now);
        if now >= self.next_maintenance {
            self.maintain(now);
        }
    }

    // ---- outputs ----

    /// An emptied map or `VecDeque` keeps its buffer (a `BTreeMap` its root node):
    /// about 5 KB a node that is idle between commands. A million simulated nodes are
    /// idle most of the time, so the empty containers are given back.
    fn release_empty_maps(&mut self) {
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
        let requests = self.transactions.next_wake();
        Some(requests.map_or(self.next_maintenance, |r| r.min(self.next_maintenance)))
    }

    /// The next store change to persist (with [`Config::journal`] on).
    pub fn poll_store_change(&mut self) -> Option<StoreChange> {
        self.storage.poll_change()
    }

    // ---- sending ----

    pub(super) fn encode(
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
}

#[cfg(test)]
mod tests;
