//! The recursive routing core with per-hop acknowledgements that the structured overlays share.
//!
//! Chord, Pastry, CAN and the one-hop ring all route a request *recursively*: each node hands the
//! request to the next hop its own table chooses, and the node that owns the key answers the
//! origin directly. Each hop is acknowledged by the receiver, so a forwarder whose next hop has
//! died notices after [`RouteConfig::hop_timeout`], drops the dead contact from its table (the
//! overlay's [`RouteTable::on_dead`]) and re-routes. This is the hop-by-hop recovery of
//! MSPastry and Bamboo; without it a recursive lookup under churn is lost at the first stale
//! pointer. The acknowledgements are counted as messages, so the message figures are honest.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use dht_proto::time::Instant;
use dht_proto::Id;

use super::store::ItemStore;
use super::wire::{ADDR_BYTES, CONTACT_BYTES, HEADER_BYTES, ID_BYTES};
use crate::overlays::overlay::{NodeIdx, OverlayEvent, QueryId};

/// Lookups in flight that one node originates at most; more fail at once.
pub const QUERIES_MAX: usize = 4_096;
/// Forwarded requests awaiting their hop acknowledgement at one node at most.
pub const PENDING_FORWARDS_MAX: usize = 8_192;
/// Times one node re-routes one request after hop timeouts before dropping it.
pub const REROUTES_MAX: u8 = 4;

/// What a routed request asks of the key's owner.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Find the owner (an application lookup).
    Lookup,
    /// Find the owner for the overlay's own maintenance (Chord's finger repair and join); the
    /// answer goes to the overlay, not to the application.
    Find,
    /// Store a value at the owner (and its replicas).
    Put {
        /// The value.
        value: Vec<u8>,
        /// Its sequence number.
        seq: i64,
    },
    /// Fetch the value under the key.
    Get,
}

impl Op {
    fn payload_bytes(&self) -> usize {
        match self {
            Op::Put { value, .. } => value.len() + 8,
            _ => 0,
        }
    }
}

/// A request travelling hop by hop towards the owner of `key`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The node that started the request and gets the answer.
    pub origin: NodeIdx,
    /// The origin's handle.
    pub query: QueryId,
    /// The key routed to.
    pub key: Id,
    /// Forwarding hops so far.
    pub hops: u32,
    /// Messages spent so far (forwards, acknowledgements, retries).
    pub messages: u32,
    /// The forwarder's tag, echoed in the acknowledgement.
    pub tag: u64,
    /// Set when the forwarder believes the receiver owns the key (Chord's "my successor is the
    /// answer"); the receiver still checks its own view.
    pub final_hop: bool,
    /// What the owner should do.
    pub op: Op,
}

/// The answer of a key's owner to the origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// The origin's handle.
    pub query: QueryId,
    /// The key.
    pub key: Id,
    /// The node that answered as owner.
    pub owner: NodeIdx,
    /// The owner's identifier.
    pub owner_id: Id,
    /// Forwarding hops the request took.
    pub hops: u32,
    /// Messages the request cost, this answer included.
    pub messages: u32,
    /// For a get: the value found.
    pub value: Option<(Vec<u8>, i64)>,
    /// For a put: copies stored (owner and replicas sent).
    pub stored: u32,
}

/// The routing core's messages; each overlay wraps them in its own message enum.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteMsg {
    /// A request on its way to the owner.
    Route(Route),
    /// The receiver of a [`RouteMsg::Route`] took it.
    Ack {
        /// The tag of the acknowledged forward.
        tag: u64,
    },
    /// The owner's answer.
    Done(Done),
    /// A replica of a stored item, sent by the owner to its replica set.
    Replica {
        /// The key.
        key: Id,
        /// The value.
        value: Vec<u8>,
        /// Its sequence number.
        seq: i64,
    },
}

impl RouteMsg {
    /// Bytes on the wire of a compact binary encoding.
    pub fn wire_size(&self) -> usize {
        match self {
            // origin address, query id (8), key, hops (2), tag (4 in the header), flag, op byte.
            RouteMsg::Route(r) => {
                HEADER_BYTES + ADDR_BYTES + 8 + ID_BYTES + 2 + 1 + 1 + r.op.payload_bytes()
            }
            RouteMsg::Ack { .. } => HEADER_BYTES,
            RouteMsg::Done(d) => {
                HEADER_BYTES
                    + 8
                    + ID_BYTES
                    + CONTACT_BYTES
                    + 2
                    + d.value.as_ref().map_or(0, |(v, _)| v.len() + 8)
            }
            RouteMsg::Replica { value, .. } => HEADER_BYTES + ID_BYTES + 8 + value.len(),
        }
    }
}

/// The overlay's answer to "where does a request for this key go from here?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// This node owns the key.
    Deliver,
    /// Forward to `to`; `final_hop` when this node believes `to` owns the key.
    Forward {
        /// The next hop.
        to: NodeIdx,
        /// Whether `to` is believed to be the owner.
        final_hop: bool,
    },
    /// No usable next hop (an empty table); the request is dropped.
    Nowhere,
}

/// The view of the overlay's routing state the core needs.
pub trait RouteTable {
    /// Where a request for `key` goes next; `final_hop` is the flag the previous hop set.
    fn next_hop(&mut self, key: &Id, final_hop: bool) -> Next;
    /// The nodes that keep replicas of an item this node owns (not this node itself).
    fn replicas(&self, key: &Id, out: &mut Vec<NodeIdx>);
    /// `node` did not acknowledge a forward in time: forget it.
    fn on_dead(&mut self, node: NodeIdx);
}

/// Knobs of the routing core.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteConfig {
    /// How long a forwarder waits for the next hop's acknowledgement before re-routing.
    pub hop_timeout: Duration,
    /// How long an origin waits for the owner's answer before reporting failure.
    pub query_timeout: Duration,
    /// Forwarding hops after which a request is dropped (a loop guard).
    pub hops_max: u32,
    /// Whether a forward flagged as final (to the node the forwarder believes is the owner)
    /// counts as a hop. Chord's paper counts the path to the key's predecessor, which answers
    /// with its successor; Chord turns this off to report the paper's path length.
    pub count_final_hop: bool,
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            // Four times a long intercontinental round trip of the network model (~250 ms).
            hop_timeout: Duration::from_millis(1000),
            query_timeout: Duration::from_secs(30),
            hops_max: 64,
            count_final_hop: true,
        }
    }
}

#[derive(Debug, Clone)]
struct PendingForward {
    tag: u64,
    to: NodeIdx,
    deadline: Instant,
    route: Route,
    reroutes: u8,
}

#[derive(Debug, Clone)]
struct Query {
    deadline: Instant,
    key: Id,
    kind: QueryKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryKind {
    Lookup,
    Find,
    Put,
    Get,
}

/// The answer to an [`Op::Find`]: (query, key, owner and its identifier, or `None` when the
/// lookup failed).
pub type Found = (QueryId, Id, Option<(NodeIdx, Id)>);

/// Counters of the routing core, for the report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RouteStats {
    /// Forwards that timed out waiting for an acknowledgement.
    pub hop_timeouts: u64,
    /// Requests dropped (no next hop, re-route limit, hop limit, or table full).
    pub dropped: u64,
}

/// The recursive routing core one overlay node embeds.
///
/// Calling protocol: the overlay passes [`RouteMsg`]s to [`RouteCore::handle`], its timer to
/// [`RouteCore::handle_timeout`], and drains [`RouteCore::poll_transmit`],
/// [`RouteCore::poll_event`] and [`RouteCore::poll_found`] (answers to [`Op::Find`]).
#[derive(Debug)]
pub struct RouteCore {
    /// This node's address.
    pub me: NodeIdx,
    /// This node's identifier.
    pub my_id: Id,
    /// The knobs.
    pub config: RouteConfig,
    /// The items this node stores.
    pub store: ItemStore,
    /// Counters.
    pub stats: RouteStats,
    next_query: QueryId,
    next_tag: u64,
    queries: BTreeMap<QueryId, Query>,
    pending: Vec<PendingForward>,
    out: VecDeque<(NodeIdx, RouteMsg)>,
    events: VecDeque<OverlayEvent>,
    found: VecDeque<Found>,
}

impl RouteCore {
    /// A core for node `me` with identifier `my_id`.
    pub fn new(me: NodeIdx, my_id: Id, config: RouteConfig) -> Self {
        RouteCore {
            me,
            my_id,
            config,
            store: ItemStore::default(),
            stats: RouteStats::default(),
            next_query: 1,
            next_tag: 1,
            queries: BTreeMap::new(),
            pending: Vec::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            found: VecDeque::new(),
        }
    }

    /// Starts routing `op` for `key` from this node.
    pub fn start(&mut self, now: Instant, key: Id, op: Op, table: &mut impl RouteTable) -> QueryId {
        let query = self.next_query;
        self.next_query += 1;
        let kind = match op {
            Op::Lookup => QueryKind::Lookup,
            Op::Find => QueryKind::Find,
            Op::Put { .. } => QueryKind::Put,
            Op::Get => QueryKind::Get,
        };
        if self.queries.len() >= QUERIES_MAX {
            self.stats.dropped += 1;
            self.finish_failed(query, key, kind);
            return query;
        }
        self.queries.insert(
            query,
            Query {
                deadline: now + self.config.query_timeout,
                key,
                kind,
            },
        );
        let route = Route {
            origin: self.me,
            query,
            key,
            hops: 0,
            messages: 0,
            tag: 0,
            final_hop: false,
            op,
        };
        self.route(now, route, table, 0);
        query
    }

    /// Starts routing `op` for `key` by handing it to `via` first (a node that has not joined
    /// yet knows no one else).
    pub fn start_via(&mut self, now: Instant, key: Id, op: Op, via: NodeIdx) -> QueryId {
        let query = self.next_query;
        self.next_query += 1;
        self.queries.insert(
            query,
            Query {
                deadline: now + self.config.query_timeout,
                key,
                kind: QueryKind::Find,
            },
        );
        let route = Route {
            origin: self.me,
            query,
            key,
            hops: 0,
            messages: 0,
            tag: 0,
            final_hop: false,
            op,
        };
        self.forward(now, route, via, false, 0);
        query
    }

    /// A routing message arrived from `from`.
    pub fn handle(
        &mut self,
        now: Instant,
        from: NodeIdx,
        msg: RouteMsg,
        table: &mut impl RouteTable,
    ) {
        match msg {
            RouteMsg::Route(mut r) => {
                self.out.push_back((from, RouteMsg::Ack { tag: r.tag }));
                r.messages = r.messages.saturating_add(1);
                if !r.final_hop || self.config.count_final_hop {
                    r.hops = r.hops.saturating_add(1);
                }
                self.route(now, r, table, 0);
            }
            RouteMsg::Ack { tag } => self.pending.retain(|p| !(p.tag == tag && p.to == from)),
            RouteMsg::Done(d) => self.answer(d),
            RouteMsg::Replica { key, value, seq } => {
                self.store.put(key, value, seq);
            }
        }
    }

    fn route(&mut self, now: Instant, r: Route, table: &mut impl RouteTable, reroutes: u8) {
        if r.hops > self.config.hops_max {
            self.stats.dropped += 1;
            return;
        }
        match table.next_hop(&r.key, r.final_hop) {
            Next::Deliver => self.deliver(r, table),
            Next::Forward { to, final_hop } if to != self.me => {
                self.forward(now, r, to, final_hop, reroutes)
            }
            Next::Forward { .. } => self.deliver(r, table),
            Next::Nowhere => self.stats.dropped += 1,
        }
    }

    fn forward(&mut self, now: Instant, mut r: Route, to: NodeIdx, final_hop: bool, reroutes: u8) {
        if self.pending.len() >= PENDING_FORWARDS_MAX {
            self.stats.dropped += 1;
            return;
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        r.tag = tag;
        r.final_hop = final_hop;
        r.messages = r.messages.saturating_add(1);
        self.pending.push(PendingForward {
            tag,
            to,
            deadline: now + self.config.hop_timeout,
            route: r.clone(),
            reroutes,
        });
        self.out.push_back((to, RouteMsg::Route(r)));
    }

    fn deliver(&mut self, r: Route, table: &mut impl RouteTable) {
        let mut messages = r.messages;
        let mut stored = 0;
        let mut value = None;
        match r.op {
            Op::Put { value: v, seq } => {
                let mut reps = Vec::new();
                table.replicas(&r.key, &mut reps);
                for &n in &reps {
                    if n != self.me {
                        self.out.push_back((
                            n,
                            RouteMsg::Replica {
                                key: r.key,
                                value: v.clone(),
                                seq,
                            },
                        ));
                        messages = messages.saturating_add(1);
                        stored += 1;
                    }
                }
                if self.store.put(r.key, v, seq) {
                    stored += 1;
                }
            }
            Op::Get => value = self.store.get(&r.key).cloned(),
            Op::Lookup | Op::Find => {}
        }
        let done = Done {
            query: r.query,
            key: r.key,
            owner: self.me,
            owner_id: self.my_id,
            hops: r.hops,
            messages: if r.origin == self.me {
                messages
            } else {
                messages.saturating_add(1)
            },
            value,
            stored,
        };
        if r.origin == self.me {
            self.answer(done);
        } else {
            self.out.push_back((r.origin, RouteMsg::Done(done)));
        }
    }

    fn answer(&mut self, d: Done) {
        let Some(q) = self.queries.remove(&d.query) else {
            return; // A late or duplicate answer: the query already ended.
        };
        let ev = match q.kind {
            QueryKind::Lookup => OverlayEvent::LookupDone {
                query: d.query,
                key: d.key,
                ok: true,
                found: vec![d.owner],
                hops: d.hops,
                messages: d.messages,
            },
            QueryKind::Put => OverlayEvent::PutDone {
                query: d.query,
                key: d.key,
                acked: d.stored,
                answered_after: None,
            },
            QueryKind::Get => OverlayEvent::GetDone {
                query: d.query,
                key: d.key,
                value: d.value,
                hops: d.hops,
                messages: d.messages,
                answered_after: None,
            },
            QueryKind::Find => {
                self.found
                    .push_back((d.query, d.key, Some((d.owner, d.owner_id))));
                return;
            }
        };
        self.events.push_back(ev);
    }

    fn finish_failed(&mut self, query: QueryId, key: Id, kind: QueryKind) {
        let ev = match kind {
            QueryKind::Lookup => OverlayEvent::LookupDone {
                query,
                key,
                ok: false,
                found: Vec::new(),
                hops: 0,
                messages: 0,
            },
            QueryKind::Put => OverlayEvent::PutDone {
                query,
                key,
                acked: 0,
                answered_after: None,
            },
            QueryKind::Get => OverlayEvent::GetDone {
                query,
                key,
                value: None,
                hops: 0,
                messages: 0,
                answered_after: None,
            },
            QueryKind::Find => {
                self.found.push_back((query, key, None));
                return;
            }
        };
        self.events.push_back(ev);
    }

    /// Fires hop and query timeouts that are due.
    pub fn handle_timeout(&mut self, now: Instant, table: &mut impl RouteTable) {
        let mut due = Vec::new();
        self.pending.retain(|p| {
            if p.deadline <= now {
                due.push(p.clone());
                false
            } else {
                true
            }
        });
        for p in due {
            self.stats.hop_timeouts += 1;
            table.on_dead(p.to);
            if p.reroutes >= REROUTES_MAX {
                self.stats.dropped += 1;
                continue;
            }
            let r = p.route;
            // Re-routing from here: the hop that timed out does not count as progress.
            self.route(now, r, table, p.reroutes + 1);
        }
        let expired: Vec<QueryId> = self
            .queries
            .iter()
            .filter(|(_, q)| q.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(q) = self.queries.remove(&id) {
                self.finish_failed(id, q.key, q.kind);
            }
        }
    }

    /// The earliest hop or query deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let p = self.pending.iter().map(|p| p.deadline).min();
        let q = self.queries.values().map(|q| q.deadline).min();
        match (p, q) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Next routing message to send.
    pub fn poll_transmit(&mut self) -> Option<(NodeIdx, RouteMsg)> {
        self.out.pop_front()
    }

    /// Next finished application command.
    pub fn poll_event(&mut self) -> Option<OverlayEvent> {
        self.events.pop_front()
    }

    /// Next answer to an [`Op::Find`]: (query, key, owner and its identifier, or `None` when it
    /// failed).
    pub fn poll_found(&mut self) -> Option<Found> {
        self.found.pop_front()
    }

    /// Approximate bytes of the core's state.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.store.bytes()
            + self.pending.capacity() * std::mem::size_of::<PendingForward>()
            + self.queries.len() * (std::mem::size_of::<Query>() + 16)
            + self.out.capacity() * std::mem::size_of::<(NodeIdx, RouteMsg)>()
    }
}

/// The [`OverlayNode`](crate::overlays::overlay::OverlayNode) methods that every routed overlay (Chord,
/// Pastry, CAN, the one-hop ring) hands straight to its [`Core`]: the node's ID, starting
/// commands against its table `$table`, and draining the core's outputs after the overlay's
/// own maintenance messages (queued in `out`), the core's routed messages wrapped in `$route`.
/// Written once here; each overlay invokes it inside its `impl OverlayNode` block.
macro_rules! routed_core_methods {
    ($table:ident, $route:path) => {
        fn id(&self) -> Id {
            self.core.my_id
        }

        fn put(&mut self, now: Instant, key: Id, value: Vec<u8>, seq: i64) -> QueryId {
            self.core
                .start(now, key, Op::Put { value, seq }, &mut self.$table)
        }

        fn get(&mut self, now: Instant, key: Id) -> QueryId {
            self.core.start(now, key, Op::Get, &mut self.$table)
        }

        fn poll_transmit(&mut self) -> Option<(NodeIdx, Self::Msg)> {
            if let Some(m) = self.out.pop_front() {
                return Some(m);
            }
            self.core.poll_transmit().map(|(to, m)| (to, $route(m)))
        }

        fn poll_event(&mut self) -> Option<OverlayEvent> {
            self.core.poll_event()
        }
    };
}
pub(crate) use routed_core_methods;
