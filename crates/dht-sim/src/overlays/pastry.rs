//! Pastry: prefix routing in base 2^b with a leaf set, proximity-aware routing tables.
//!
//! Implementation note. Rowstron and Druschel, "Pastry: Scalable, decentralized object location
//! and routing for large-scale peer-to-peer systems", Middleware 2001. Identifiers are read as
//! digits of `b` bits (here the top 128 bits of the `Id`, b = 4: 32 hexadecimal digits). Row `l`
//! of a node's routing table holds, for each digit value `d`, a node that shares the first `l`
//! digits with it and has `d` as digit `l + 1`; among the many candidates for a slot Pastry picks
//! one close in the network (proximity neighbour selection). The leaf set holds the L/2
//! numerically closest nodes on each side. A message goes to the numerically closest leaf when
//! the key falls in the leaf set's range, else to the table entry that shares one more digit with
//! the key, else to any known node that is numerically closer without a shorter prefix. Each hop
//! fixes at least one digit, so the paper predicts (section 2.3, figure 4) fewer than
//! **⌈log_{2^b} N⌉** hops; the mean it measured is slightly below log_{2^b} N.
//!
//! Routing is recursive, as in the paper. A key is owned by the numerically closest node (ring
//! distance). Items are replicated on the `replicas - 1` leaves closest to the key.
//!
//! Joins follow section 2.4: the new node X asks the node it knows (A) and the node closest to
//! its own identifier (Z, found by routing a join lookup through A) for their state, places each
//! contact where it fits relative to itself, then announces itself to every node it knows.
//! Repair follows section 2.5 and MSPastry: each period a node exchanges leaf sets with its two
//! nearest leaves and one more leaf in turn, drops leaves that do not answer, and refills the
//! leaf set from the answers; each table-maintenance period it asks a random entry of a random row
//! for that row. A dead table entry found on a route is dropped at once (the hop timeout of the
//! routing core). At run time empty slots are filled with the first candidate heard of; only
//! [`Pastry::converge`] chooses entries by latency (the simulator gives nodes no RTT estimate).

use std::collections::VecDeque;
use std::time::Duration;

use dht_proto::time::Instant;
use dht_proto::Id;

use super::chord::node_id;
use super::ring::{ring_pos, Contact};
use super::route::{routed_core_methods, Next, Op, RouteConfig, RouteCore, RouteMsg, RouteTable};
use super::wire::{CONTACT_BYTES, HEADER_BYTES};
use crate::overlays::overlay::{Delays, NodeIdx, Overlay, OverlayEvent, OverlayNode, QueryId};
use crate::rng::SimRng;

/// Candidates examined per routing-table slot when converging with proximity; the closest by
/// latency wins (the paper's own join heuristic sees a comparable handful of candidates).
pub const PROXIMITY_CANDIDATES: usize = 8;
/// Maintenance requests awaiting an answer at one node at most.
pub const RPCS_MAX: usize = 64;
/// Leaf-set size at most, whatever the configuration says.
pub const LEAVES_MAX: usize = 64;

const NONE: NodeIdx = NodeIdx::MAX;
const EMPTY: Contact = Contact { pos: 0, idx: NONE };

/// Pastry's knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PastryConfig {
    /// Bits per digit (1, 2 or 4; the paper's default is 4).
    pub b: u32,
    /// Leaf-set size L (L/2 on each side; the paper uses 16 or 32).
    pub leaf_set: usize,
    /// Copies of an item: the owner and its `replicas - 1` closest leaves.
    pub replicas: usize,
    /// Period of the leaf-set exchange.
    pub leaf_period: Duration,
    /// Period of routing-table maintenance (one row request).
    pub table_period: Duration,
    /// How long a maintenance request waits for its answer.
    pub rpc_timeout: Duration,
    /// Routing knobs.
    pub route: RouteConfig,
}

impl Default for PastryConfig {
    fn default() -> Self {
        PastryConfig {
            b: 4,
            leaf_set: 16,
            replicas: 3,
            leaf_period: Duration::from_secs(10),
            table_period: Duration::from_secs(60),
            rpc_timeout: Duration::from_secs(1),
            route: RouteConfig::default(),
        }
    }
}

/// Pastry's messages.
#[derive(Debug, Clone, PartialEq)]
pub enum PastryMsg {
    /// Routing.
    Route(RouteMsg),
    /// Send me your leaf set (maintenance) or your whole state (join).
    StateReq {
        /// Request tag.
        nonce: u32,
        /// The whole state (join) or only the leaf set.
        full: bool,
        /// The sender, so the receiver can learn it.
        me: Contact,
    },
    /// Answer to [`PastryMsg::StateReq`].
    State {
        /// Request tag.
        nonce: u32,
        /// Leaf set and, for a full request, routing-table entries.
        contacts: Vec<Contact>,
    },
    /// Send me row `row` of your routing table.
    RowReq {
        /// Request tag.
        nonce: u32,
        /// The row.
        row: u8,
    },
    /// Answer to [`PastryMsg::RowReq`].
    Row {
        /// Request tag.
        nonce: u32,
        /// The row's entries.
        contacts: Vec<Contact>,
    },
    /// A new node announces itself after joining.
    Announce {
        /// The new node.
        me: Contact,
    },
}

#[derive(Debug, Clone, Copy)]
struct Rpc {
    nonce: u32,
    to: NodeIdx,
    deadline: Instant,
    join_state: bool,
}

#[derive(Debug)]
struct Table {
    me: Contact,
    b: u32,
    half: usize,
    replicas: usize,
    joined: bool,
    bootstrap: Option<NodeIdx>,
    /// Rows of 2^b slots; `EMPTY` marks an empty slot. Only rows up to the last non-empty one.
    rows: Vec<Box<[Contact]>>,
    /// Leaves counter-clockwise (smaller), nearest first.
    left: Vec<Contact>,
    /// Leaves clockwise (larger), nearest first.
    right: Vec<Contact>,
}

fn ring_dist(a: u128, b: u128) -> u128 {
    let d = a.wrapping_sub(b);
    d.min(d.wrapping_neg())
}

impl Table {
    fn digits(&self) -> u32 {
        128 / self.b
    }

    fn digit(&self, pos: u128, i: u32) -> usize {
        ((pos >> (128 - self.b * (i + 1))) & ((1u128 << self.b) - 1)) as usize
    }

    fn shared(&self, a: u128, b: u128) -> u32 {
        ((a ^ b).leading_zeros() / self.b).min(self.digits())
    }

    fn learn(&mut self, c: Contact) {
        if c.idx == self.me.idx || c.idx == NONE {
            return;
        }
        self.learn_leaf(c);
        let l = self.shared(self.me.pos, c.pos);
        if l >= self.digits() {
            return;
        }
        let d = self.digit(c.pos, l);
        let width = 1usize << self.b;
        while self.rows.len() <= l as usize {
            self.rows.push(vec![EMPTY; width].into_boxed_slice());
        }
        let slot = &mut self.rows[l as usize][d];
        if slot.idx == NONE || slot.idx == c.idx {
            *slot = c;
        }
    }

    fn learn_leaf(&mut self, c: Contact) {
        let me = self.me.pos;
        let half = self.half;
        let insert = |side: &mut Vec<Contact>, dist: &dyn Fn(u128) -> u128| {
            if side.iter().any(|x| x.idx == c.idx) {
                return;
            }
            let d = dist(c.pos);
            let i = side.partition_point(|x| dist(x.pos) < d);
            if i < half {
                side.insert(i, c);
                side.truncate(half);
            }
        };
        insert(&mut self.right, &|p: u128| p.wrapping_sub(me));
        insert(&mut self.left, &|p: u128| me.wrapping_sub(p));
    }

    fn leaves(&self) -> impl Iterator<Item = &Contact> {
        self.left.iter().chain(self.right.iter())
    }

    fn covers(&self, k: u128) -> bool {
        if self.left.len() < self.half || self.right.len() < self.half {
            return true; // We know every node: the leaf set wraps the ring.
        }
        let me = self.me.pos;
        let far_r = self.right.last().map_or(0, |c| c.pos.wrapping_sub(me));
        let far_l = self.left.last().map_or(0, |c| me.wrapping_sub(c.pos));
        k.wrapping_sub(me) <= far_r || me.wrapping_sub(k) <= far_l
    }

    fn contacts(&self) -> impl Iterator<Item = &Contact> {
        self.leaves()
            .chain(self.rows.iter().flat_map(|r| r.iter()))
            .filter(|c| c.idx != NONE)
    }
}

impl RouteTable for Table {
    fn next_hop(&mut self, key: &Id, final_hop: bool) -> Next {
        // A node still joining routes through its bootstrap node only while it knows no one:
        // once others know it, handing their requests back to the bootstrap node bounces them
        // between the two until the hop limit.
        if !self.joined && self.contacts().next().is_none() {
            return match self.bootstrap {
                Some(b) => Next::Forward {
                    to: b,
                    final_hop: false,
                },
                None => Next::Deliver,
            };
        }
        let k = ring_pos(key);
        let my_d = ring_dist(k, self.me.pos);
        // Among `known`, the one numerically closest to the key and closer than we are.
        let closer = |known: &mut dyn Iterator<Item = &Contact>,
                      keep: &dyn Fn(&Contact) -> bool| {
            known
                .filter(|c| ring_dist(k, c.pos) < my_d && keep(c))
                .min_by_key(|c| (ring_dist(k, c.pos), c.idx))
                .copied()
        };
        let forward = |best: Option<Contact>, final_hop: bool| match best {
            Some(c) => Next::Forward {
                to: c.idx,
                final_hop,
            },
            None => Next::Deliver,
        };
        if final_hop {
            // Sent here from a leaf set as the key's owner: only a numerically closer node may
            // take it on. Each such hop strictly shortens the distance to the key, so leaf sets
            // that disagree under churn cannot bounce a request between the leaf-set and
            // prefix rules until the hop limit drops it.
            return forward(closer(&mut self.contacts(), &|_| true), true);
        }
        if self.covers(k) {
            return forward(closer(&mut self.leaves(), &|_| true), true);
        }
        let l = self.shared(k, self.me.pos);
        if let Some(row) = self.rows.get(l as usize) {
            let c = row[self.digit(k, l)];
            if c.idx != NONE {
                return Next::Forward {
                    to: c.idx,
                    final_hop: false,
                };
            }
        }
        // The rare case: any known node at least as long a prefix and numerically closer.
        let at_least_l = |c: &Contact| self.shared(k, c.pos) >= l;
        forward(closer(&mut self.contacts(), &at_least_l), false)
    }

    fn replicas(&self, key: &Id, out: &mut Vec<NodeIdx>) {
        let k = ring_pos(key);
        let mut ls: Vec<Contact> = self.leaves().copied().collect();
        ls.sort_by_key(|c| (ring_dist(k, c.pos), c.idx));
        ls.dedup_by_key(|c| c.idx);
        out.extend(
            ls.iter()
                .take(self.replicas.saturating_sub(1))
                .map(|c| c.idx),
        );
    }

    fn on_dead(&mut self, node: NodeIdx) {
        self.left.retain(|c| c.idx != node);
        self.right.retain(|c| c.idx != node);
        for row in &mut self.rows {
            for c in row.iter_mut() {
                if c.idx == node {
                    *c = EMPTY;
                }
            }
        }
    }
}

/// A Pastry node.
///
/// Calling protocol: that of [`OverlayNode`]; [`Pastry::converge`] or [`OverlayNode::join`]
/// gives it a routing state, after which its timers run leaf-set and table maintenance.
#[derive(Debug)]
pub struct PastryNode {
    config: PastryConfig,
    core: RouteCore,
    t: Table,
    rng: SimRng,
    out: VecDeque<(NodeIdx, PastryMsg)>,
    rpcs: Vec<Rpc>,
    next_nonce: u32,
    join_query: Option<QueryId>,
    join_z: Option<NodeIdx>,
    leaf_turn: usize,
    next_leaf: Instant,
    next_table: Instant,
}

impl PastryNode {
    /// A node with address `idx`, identifier `id` and generator seed `seed`.
    pub fn new(config: PastryConfig, idx: NodeIdx, id: Id, seed: u64) -> Self {
        assert!(
            matches!(config.b, 1 | 2 | 4),
            "Pastry's b must be 1, 2 or 4"
        );
        let mut rng = SimRng::new(seed);
        let next_leaf = Instant::ZERO + rng.jitter(config.leaf_period);
        let next_table = Instant::ZERO + rng.jitter(config.table_period);
        PastryNode {
            core: RouteCore::new(idx, id, config.route),
            t: Table {
                me: Contact {
                    pos: ring_pos(&id),
                    idx,
                },
                b: config.b,
                half: (config.leaf_set / 2).clamp(1, LEAVES_MAX / 2),
                replicas: config.replicas,
                joined: false,
                bootstrap: None,
                rows: Vec::new(),
                left: Vec::new(),
                right: Vec::new(),
            },
            config,
            rng,
            out: VecDeque::new(),
            rpcs: Vec::new(),
            next_nonce: 1,
            join_query: None,
            join_z: None,
            leaf_turn: 0,
            next_leaf,
            next_table,
        }
    }

    /// The leaf set (left side nearest first, then right side nearest first).
    pub fn leaf_set(&self) -> Vec<NodeIdx> {
        self.t.leaves().map(|c| c.idx).collect()
    }

    /// Number of filled routing-table slots.
    pub fn table_entries(&self) -> usize {
        self.t
            .rows
            .iter()
            .flat_map(|r| r.iter())
            .filter(|c| c.idx != NONE)
            .count()
    }

    /// The routing-table entries (row, column, address).
    pub fn table(&self) -> Vec<(usize, usize, NodeIdx)> {
        let mut v = Vec::new();
        for (r, row) in self.t.rows.iter().enumerate() {
            for (c, e) in row.iter().enumerate() {
                if e.idx != NONE {
                    v.push((r, c, e.idx));
                }
            }
        }
        v
    }

    fn rpc(
        &mut self,
        now: Instant,
        to: NodeIdx,
        msg: impl FnOnce(u32) -> PastryMsg,
        join_state: bool,
    ) {
        if self.rpcs.len() >= RPCS_MAX || self.rpcs.iter().any(|r| r.to == to) {
            return;
        }
        let nonce = self.next_nonce;
        self.next_nonce = self.next_nonce.wrapping_add(1);
        self.rpcs.push(Rpc {
            nonce,
            to,
            deadline: now + self.config.rpc_timeout,
            join_state,
        });
        self.out.push_back((to, msg(nonce)));
    }

    fn ask_state(&mut self, now: Instant, to: NodeIdx, full: bool) {
        let me = self.t.me;
        self.rpc(
            now,
            to,
            |nonce| PastryMsg::StateReq { nonce, full, me },
            full,
        );
    }

    fn leaf_maintenance(&mut self, now: Instant) {
        let mut targets: Vec<NodeIdx> = Vec::with_capacity(3);
        targets.extend(self.t.left.first().map(|c| c.idx));
        targets.extend(self.t.right.first().map(|c| c.idx));
        let all: Vec<NodeIdx> = self.t.leaves().map(|c| c.idx).collect();
        if !all.is_empty() {
            self.leaf_turn = (self.leaf_turn + 1) % all.len();
            targets.push(all[self.leaf_turn]);
        }
        targets.sort_unstable();
        targets.dedup();
        for t in targets {
            self.ask_state(now, t, false);
        }
    }

    fn table_maintenance(&mut self, now: Instant) {
        let rows: Vec<usize> = (0..self.t.rows.len())
            .filter(|&r| self.t.rows[r].iter().any(|c| c.idx != NONE))
            .collect();
        if rows.is_empty() {
            return;
        }
        let r = rows[self.rng.below(rows.len() as u64) as usize];
        let filled: Vec<NodeIdx> = self.t.rows[r]
            .iter()
            .filter(|c| c.idx != NONE)
            .map(|c| c.idx)
            .collect();
        let to = filled[self.rng.below(filled.len() as u64) as usize];
        self.rpc(
            now,
            to,
            |nonce| PastryMsg::RowReq {
                nonce,
                row: r as u8,
            },
            false,
        );
    }

    fn on_leaf_dead(&mut self, now: Instant, node: NodeIdx) {
        self.t.on_dead(node);
        // Refill from the farthest live leaf on each side (the paper's leaf-set repair).
        let far: Vec<NodeIdx> = [self.t.left.last(), self.t.right.last()]
            .into_iter()
            .flatten()
            .map(|c| c.idx)
            .collect();
        for f in far {
            self.ask_state(now, f, false);
        }
    }

    fn drain_found(&mut self, now: Instant) {
        while let Some((q, _key, owner)) = self.core.poll_found() {
            if Some(q) != self.join_query {
                continue;
            }
            self.join_query = None;
            match owner {
                Some((z, id)) => {
                    self.t.learn(Contact {
                        pos: ring_pos(&id),
                        idx: z,
                    });
                    self.join_z = Some(z);
                    self.ask_state(now, z, true);
                }
                None => {
                    if let Some(b) = self.t.bootstrap {
                        self.join_query =
                            Some(self.core.start_via(now, self.core.my_id, Op::Find, b));
                    }
                }
            }
        }
    }

    fn on_state(&mut self, from: NodeIdx, contacts: Vec<Contact>, rpc: Rpc) {
        for c in contacts {
            self.t.learn(c);
        }
        if rpc.join_state && !self.t.joined && self.join_z == Some(from) {
            // The state of Z, the node closest to us, completes the join: announce ourselves.
            self.t.joined = true;
            let mut known: Vec<NodeIdx> = self.t.contacts().map(|c| c.idx).collect();
            known.sort_unstable();
            known.dedup();
            for k in known {
                self.out
                    .push_back((k, PastryMsg::Announce { me: self.t.me }));
            }
        }
    }
}

impl OverlayNode for PastryNode {
    type Msg = PastryMsg;

    routed_core_methods!(t, PastryMsg::Route);

    fn wire_size(msg: &PastryMsg) -> usize {
        match msg {
            PastryMsg::Route(r) => r.wire_size(),
            PastryMsg::StateReq { .. } => HEADER_BYTES + 1 + CONTACT_BYTES,
            PastryMsg::State { contacts, .. } | PastryMsg::Row { contacts, .. } => {
                HEADER_BYTES + 2 + CONTACT_BYTES * contacts.len()
            }
            PastryMsg::RowReq { .. } => HEADER_BYTES + 1,
            PastryMsg::Announce { .. } => HEADER_BYTES + CONTACT_BYTES,
        }
    }

    fn handle_message(&mut self, now: Instant, from: NodeIdx, msg: PastryMsg) {
        match msg {
            PastryMsg::Route(m) => self.core.handle(now, from, m, &mut self.t),
            PastryMsg::StateReq { nonce, full, me } => {
                let mut contacts: Vec<Contact> = if full {
                    self.t.contacts().copied().collect()
                } else {
                    self.t.leaves().copied().collect()
                };
                contacts.push(self.t.me);
                self.out
                    .push_back((from, PastryMsg::State { nonce, contacts }));
                // A full request comes from a node still joining: it announces itself once its
                // state is complete, and routing to it before then would bounce.
                if self.t.joined && !full && me.idx == from {
                    self.t.learn(me);
                }
            }
            PastryMsg::State { nonce, contacts } => {
                if let Some(i) = self
                    .rpcs
                    .iter()
                    .position(|r| r.nonce == nonce && r.to == from)
                {
                    let rpc = self.rpcs.swap_remove(i);
                    self.on_state(from, contacts, rpc);
                }
            }
            PastryMsg::RowReq { nonce, row } => {
                let contacts = self
                    .t
                    .rows
                    .get(row as usize)
                    .map(|r| r.iter().filter(|c| c.idx != NONE).copied().collect())
                    .unwrap_or_default();
                self.out
                    .push_back((from, PastryMsg::Row { nonce, contacts }));
            }
            PastryMsg::Row { nonce, contacts } => {
                if let Some(i) = self
                    .rpcs
                    .iter()
                    .position(|r| r.nonce == nonce && r.to == from)
                {
                    self.rpcs.swap_remove(i);
                    for c in contacts {
                        self.t.learn(c);
                    }
                }
            }
            PastryMsg::Announce { me } => {
                if me.idx == from {
                    self.t.learn(me);
                }
            }
        }
        self.drain_found(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now, &mut self.t);
        let mut expired = Vec::new();
        self.rpcs.retain(|r| {
            if r.deadline <= now {
                expired.push(*r);
                false
            } else {
                true
            }
        });
        for r in expired {
            if r.join_state && !self.t.joined {
                // Z or A did not answer: restart the join through the bootstrap node.
                if let Some(b) = self.t.bootstrap {
                    self.join(now, b);
                }
            } else {
                self.on_leaf_dead(now, r.to);
            }
        }
        if now >= self.next_leaf {
            self.next_leaf = now + self.config.leaf_period;
            if self.t.joined {
                self.leaf_maintenance(now);
            }
        }
        if now >= self.next_table {
            self.next_table = now + self.config.table_period;
            if self.t.joined {
                self.table_maintenance(now);
            }
        }
        self.drain_found(now);
    }

    fn join(&mut self, now: Instant, via: NodeIdx) {
        self.t.bootstrap = Some(via);
        self.t.joined = false;
        self.ask_state(now, via, true);
        self.join_query = Some(self.core.start_via(now, self.core.my_id, Op::Find, via));
    }

    fn lookup(&mut self, now: Instant, key: Id) -> QueryId {
        self.core.start(now, key, Op::Lookup, &mut self.t)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_leaf.min(self.next_table);
        if let Some(c) = self.core.poll_timeout() {
            t = t.min(c);
        }
        if let Some(r) = self.rpcs.iter().map(|r| r.deadline).min() {
            t = t.min(r);
        }
        Some(t)
    }

    fn state_bytes(&self) -> usize {
        let slot = std::mem::size_of::<Contact>();
        std::mem::size_of::<Self>()
            + self.core.bytes()
            + self
                .t
                .rows
                .iter()
                .map(|r| r.len() * slot + 16)
                .sum::<usize>()
            + (self.t.left.capacity() + self.t.right.capacity()) * slot
            + self.rpcs.capacity() * std::mem::size_of::<Rpc>()
    }
}

/// The Pastry overlay.
#[derive(Debug, Clone, Default)]
pub struct Pastry {
    /// Knobs shared by every node.
    pub config: PastryConfig,
}

impl Pastry {
    /// A Pastry overlay with `config`.
    pub fn new(config: PastryConfig) -> Self {
        Pastry { config }
    }
}

impl Overlay for Pastry {
    type Node = PastryNode;

    fn name(&self) -> &'static str {
        "pastry"
    }

    fn new_node(&self, idx: NodeIdx, seed: u64) -> PastryNode {
        PastryNode::new(self.config, idx, node_id(idx, seed), seed)
    }

    fn converge(&self, nodes: &mut [(NodeIdx, &mut PastryNode)], latency: &dyn Delays) -> bool {
        let mut ring: Vec<Contact> = nodes.iter().map(|(_, n)| n.t.me).collect();
        ring.sort_by_key(|c| c.pos);
        let n = ring.len();
        if n == 0 {
            return true;
        }
        let b = self.config.b;
        let width = 1u128 << b;
        for (_, node) in nodes.iter_mut() {
            let t = &mut node.t;
            let me = t.me;
            t.joined = true;
            t.left.clear();
            t.right.clear();
            t.rows.clear();
            let i = ring.partition_point(|c| c.pos < me.pos);
            let half = t.half.min(n - 1);
            t.right = (1..=half).map(|j| ring[(i + j) % n]).collect();
            t.left = (1..=half).map(|j| ring[(i + n - j) % n]).collect();
            // Seed the generator per node so the choice of candidates replays.
            let mut rng = SimRng::new(me.pos as u64 ^ 0x5bd1_e995);
            for l in 0..t.digits() {
                let shift = 128 - b * (l + 1);
                let prefix_mask: u128 = if l == 0 { 0 } else { !0u128 << (128 - b * l) };
                let base = me.pos & prefix_mask;
                // Nodes sharing l digits with me: if I am alone in that range, rows end here.
                let lo = ring.partition_point(|c| c.pos < base);
                let hi_excl = base.checked_add(if l == 0 { 0 } else { 1u128 << (128 - b * l) });
                let hi = match hi_excl {
                    Some(h) if l > 0 => ring.partition_point(|c| c.pos < h),
                    _ => n,
                };
                if hi - lo <= 1 {
                    break;
                }
                let mut row = vec![EMPTY; width as usize].into_boxed_slice();
                let my_digit = t.digit(me.pos, l);
                for (d, slot) in row.iter_mut().enumerate() {
                    if d == my_digit {
                        continue;
                    }
                    let start = base | ((d as u128) << shift);
                    let a = ring.partition_point(|c| c.pos < start);
                    let z = match start.checked_add(1u128 << shift) {
                        Some(end) => ring.partition_point(|c| c.pos < end),
                        None => n,
                    };
                    if a >= z {
                        continue;
                    }
                    let pick = |j: usize| ring[j];
                    let best = if z - a <= PROXIMITY_CANDIDATES {
                        (a..z)
                            .map(pick)
                            .min_by_key(|c| (latency.delay(me.idx, c.idx), c.idx))
                    } else {
                        (0..PROXIMITY_CANDIDATES)
                            .map(|_| pick(a + rng.below((z - a) as u64) as usize))
                            .min_by_key(|c| (latency.delay(me.idx, c.idx), c.idx))
                    };
                    if let Some(c) = best {
                        *slot = c;
                    }
                }
                t.rows.push(row);
            }
        }
        true
    }

    fn predicted_hops(&self, n: u64) -> f64 {
        (n.max(1) as f64).log2() / self.config.b as f64
    }
}
impl PastryNode {
    /// The routing core's counters.
    pub fn route_stats(&self) -> super::route::RouteStats {
        self.core.stats
    }
    /// Whether the node has a routing state (converged, or its join completed).
    pub fn joined(&self) -> bool {
        self.t.joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pos: u128, joined: bool) -> Table {
        Table {
            me: Contact { pos, idx: 0 },
            b: 4,
            half: 8,
            replicas: 3,
            joined,
            bootstrap: Some(99),
            rows: Vec::new(),
            left: Vec::new(),
            right: Vec::new(),
        }
    }

    fn key_at(pos: u128) -> Id {
        let mut id = Id([0; 20]);
        id.0[..16].copy_from_slice(&pos.to_be_bytes());
        id
    }

    #[test]
    fn a_joining_node_that_knows_others_routes_itself_instead_of_bouncing_to_its_bootstrap() {
        let mut t = table(0x1000 << 100, false);
        assert!(matches!(
            t.next_hop(&key_at(0x5000 << 100), false),
            Next::Forward { to: 99, .. }
        ));
        t.learn(Contact {
            pos: 0x5000 << 100,
            idx: 7,
        });
        assert!(matches!(
            t.next_hop(&key_at(0x5001 << 100), false),
            Next::Forward { to: 7, .. }
        ));
    }

    #[test]
    fn a_request_sent_as_to_the_owner_only_moves_numerically_closer() {
        // Leaf sets of one a side, so a key just below the left leaf is outside them.
        let me = 0x8000u128 << 112;
        let mut t = table(me, true);
        t.half = 1;
        // Row 0, digit 7: a longer prefix with the key below, but numerically farther than us.
        let row = Contact {
            pos: 0x7000u128 << 112,
            idx: 3,
        };
        let left = Contact {
            pos: me - 1,
            idx: 5,
        };
        let right = Contact {
            pos: me + 1,
            idx: 6,
        };
        for c in [row, left, right] {
            t.learn(c);
        }
        let key = key_at(0x7fffu128 << 112);
        // Routed normally, the prefix rule sends it to the row entry...
        assert!(matches!(
            t.next_hop(&key, false),
            Next::Forward {
                to: 3,
                final_hop: false
            }
        ));
        // ...but sent as to the owner, it only moves to a node closer than us: the left leaf.
        assert!(matches!(
            t.next_hop(&key, true),
            Next::Forward {
                to: 5,
                final_hop: true
            }
        ));
        // Nobody closer than us: we answer, whatever the prefix rows would say.
        assert!(matches!(t.next_hop(&key_at(me), true), Next::Deliver));
    }
}
