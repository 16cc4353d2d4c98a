//! Chord: a ring of identifiers, a successor list, a finger table, stabilisation.
//!
//! Implementation note. Stoica, Morris, Karger, Kaashoek and Balakrishnan, "Chord: A Scalable
//! Peer-to-peer Lookup Service for Internet Applications", SIGCOMM 2001. Node and key
//! identifiers sit on a ring (here the top 128 bits of the 160-bit `Id`, read big-endian); a key
//! belongs to its successor, the first node clockwise from it. Finger `k` of node `n` is the
//! successor of `n + 2^k`; a lookup goes to the closest finger preceding the key, which halves the
//! remaining distance, so the paper predicts (section 6, figure 10, and Theorem IV.2 of the
//! journal version) a mean path length of **½ log2 N** hops.
//!
//! Routing is recursive (the paper describes both; recursive is what its lookup pseudo-code
//! `find_successor` does when each node forwards): each node forwards to the closest preceding
//! finger; the node whose successor owns the key (the key's predecessor) forwards to that
//! successor as the final hop. `hops` is the paper's path length: the forwards that reach the
//! predecessor, whose `find_successor` answers with its successor. The final forward to the
//! owner (which stores or returns the item) is not a hop in that count, but its message and
//! acknowledgement are in `messages`.
//!
//! Maintenance follows the paper's figure 7: `stabilize` asks the successor for its predecessor
//! and successor list, `notify` tells the successor about us, `fix_fingers` repairs one finger per
//! period by a lookup of its start, `check_predecessor` pings the predecessor. A successor list
//! of `r` entries lets the ring survive `r - 1` consecutive failures; items are replicated on the
//! first `replicas - 1` successors and handed to a new predecessor when it joins.

use std::collections::VecDeque;
use std::time::Duration;

use dht_proto::time::Instant;
use dht_proto::Id;

pub use super::ring::Contact;
use super::ring::{id_at, in_half_open, in_open, ring_pos};
use super::route::{routed_core_methods, Next, Op, RouteConfig, RouteCore, RouteMsg, RouteTable};
use super::wire::{CONTACT_BYTES, HEADER_BYTES, ID_BYTES};
use crate::overlays::overlay::{Delays, NodeIdx, Overlay, OverlayEvent, OverlayNode, QueryId};
use crate::rng::{mix3, SimRng};

/// Finger table entries kept at most (one per bit of the 128-bit ring).
pub const FINGERS_MAX: usize = 128;
/// Successor-list entries at most, whatever the configuration says.
pub const SUCCESSORS_MAX: usize = 64;
/// Maintenance requests awaiting an answer at one node at most.
pub const RPCS_MAX: usize = 64;
/// Items handed to a new predecessor in one message at most; the rest follow at the next notify.
pub const HANDOVER_ITEMS_MAX: usize = 256;
/// One finger-repair period in this many is spent on a ring check instead: a lookup of our own
/// successor started at a random finger (see [`ChordNode`]'s notes on merging rings).
pub const RING_CHECK_EVERY: u64 = 8;

/// Chord's knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChordConfig {
    /// Successor-list length `r` (the paper suggests about 2 log2 N; 16 covers a million nodes
    /// at r = log2 N, enough to survive the failure rates the simulator applies).
    pub successors: usize,
    /// Copies of an item: the owner and its first `replicas - 1` successors.
    pub replicas: usize,
    /// Route through successor-list entries as well as fingers (a common optimisation that the
    /// paper's figure does not include; off by default so hops compare with ½ log2 N).
    pub successor_shortcut: bool,
    /// Period of `stabilize`.
    pub stabilise_period: Duration,
    /// Period of `fix_fingers` (one finger per period).
    pub fix_fingers_period: Duration,
    /// Period of `check_predecessor`.
    pub check_predecessor_period: Duration,
    /// How long a maintenance request waits for its answer.
    pub rpc_timeout: Duration,
    /// Routing knobs.
    pub route: RouteConfig,
}

impl Default for ChordConfig {
    fn default() -> Self {
        ChordConfig {
            successors: 16,
            replicas: 3,
            successor_shortcut: false,
            stabilise_period: Duration::from_secs(10),
            fix_fingers_period: Duration::from_secs(5),
            check_predecessor_period: Duration::from_secs(10),
            rpc_timeout: Duration::from_secs(1),
            route: RouteConfig {
                hops_max: 256,
                count_final_hop: false,
                ..RouteConfig::default()
            },
        }
    }
}

/// Chord's messages.
#[derive(Debug, Clone, PartialEq)]
pub enum ChordMsg {
    /// Routing (lookups, puts, gets, finger and join lookups).
    Route(RouteMsg),
    /// `stabilize`: what is your predecessor and your successor list?
    GetPred {
        /// Request tag.
        nonce: u32,
    },
    /// Answer to [`ChordMsg::GetPred`].
    Pred {
        /// Request tag.
        nonce: u32,
        /// The responder's predecessor.
        pred: Option<Contact>,
        /// The responder's successor list.
        succs: Vec<Contact>,
    },
    /// `notify`: I might be your predecessor.
    Notify {
        /// The sender.
        me: Contact,
    },
    /// `check_predecessor` probe.
    Ping {
        /// Request tag.
        nonce: u32,
    },
    /// Answer to [`ChordMsg::Ping`].
    Pong {
        /// Request tag.
        nonce: u32,
    },
    /// Items handed to a new owner.
    Items {
        /// (key, value, sequence number).
        items: Vec<(Id, Vec<u8>, i64)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RpcKind {
    GetPred,
    Ping,
}

#[derive(Debug, Clone, Copy)]
struct Rpc {
    nonce: u32,
    to: NodeIdx,
    kind: RpcKind,
    deadline: Instant,
}

/// The routing state: what `next_hop` reads.
#[derive(Debug)]
struct Table {
    me: Contact,
    joined: bool,
    bootstrap: Option<NodeIdx>,
    pred: Option<Contact>,
    succs: Vec<Contact>,
    /// Distinct fingers, sorted by clockwise distance from `me`.
    fingers: Vec<Contact>,
    replicas: usize,
    successor_shortcut: bool,
}

impl Table {
    fn dist(&self, pos: u128) -> u128 {
        pos.wrapping_sub(self.me.pos)
    }

    fn insert_finger(&mut self, c: Contact) {
        if c.idx == self.me.idx {
            return;
        }
        let d = self.dist(c.pos);
        match self
            .fingers
            .binary_search_by_key(&d, |f| f.pos.wrapping_sub(self.me.pos))
        {
            Ok(i) => self.fingers[i] = c,
            Err(i) => {
                if self.fingers.len() < FINGERS_MAX {
                    self.fingers.insert(i, c);
                }
            }
        }
    }
}

impl RouteTable for Table {
    fn next_hop(&mut self, key: &Id, final_hop: bool) -> Next {
        if !self.joined {
            return match self.bootstrap {
                Some(b) => Next::Forward {
                    to: b,
                    final_hop: false,
                },
                None => Next::Nowhere,
            };
        }
        let k = ring_pos(key);
        let Some(&succ) = self.succs.first() else {
            return Next::Deliver; // Alone on the ring: everything is ours.
        };
        match self.pred {
            Some(p) if in_half_open(k, p.pos, self.me.pos) => return Next::Deliver,
            Some(p) if final_hop => {
                // We were told we own the key, but a newer predecessor sits between: it owns it.
                return Next::Forward {
                    to: p.idx,
                    final_hop: true,
                };
            }
            None if final_hop => return Next::Deliver,
            _ => {}
        }
        if in_half_open(k, self.me.pos, succ.pos) {
            return Next::Forward {
                to: succ.idx,
                final_hop: true,
            };
        }
        if self.successor_shortcut {
            // A successor-list entry that owns the key is one hop away.
            for w in self.succs.windows(2) {
                if in_half_open(k, w[0].pos, w[1].pos) {
                    return Next::Forward {
                        to: w[1].idx,
                        final_hop: true,
                    };
                }
            }
        }
        // The closest preceding finger (the paper's `closest_preceding_finger`; the successor
        // list joins the candidates only with the shortcut on).
        let kd = self.dist(k);
        let mut best: Option<Contact> = None;
        let mut best_d = 0u128;
        let extra = if self.successor_shortcut {
            &self.succs[..]
        } else {
            &self.succs[..1]
        };
        for c in self.fingers.iter().chain(extra.iter()) {
            let d = self.dist(c.pos);
            if d != 0 && d < kd && d > best_d {
                best = Some(*c);
                best_d = d;
            }
        }
        match best {
            Some(c) => Next::Forward {
                to: c.idx,
                final_hop: false,
            },
            None => Next::Forward {
                to: succ.idx,
                final_hop: false,
            },
        }
    }

    fn replicas(&self, _key: &Id, out: &mut Vec<NodeIdx>) {
        let n = self.replicas.saturating_sub(1);
        out.extend(self.succs.iter().take(n).map(|c| c.idx));
    }

    fn on_dead(&mut self, node: NodeIdx) {
        self.succs.retain(|c| c.idx != node);
        self.fingers.retain(|c| c.idx != node);
        if self.pred.is_some_and(|p| p.idx == node) {
            self.pred = None;
        }
        if self.succs.is_empty() {
            // Fall back on the nearest finger so the ring can heal through stabilisation.
            if let Some(&f) = self.fingers.first() {
                self.succs.push(f);
            }
        }
    }
}

/// A Chord node.
///
/// Calling protocol: that of [`OverlayNode`]; [`Chord::converge`] or [`OverlayNode::join`] puts
/// it on the ring, after which its timers run stabilisation and finger repair.
#[derive(Debug)]
pub struct ChordNode {
    config: ChordConfig,
    core: RouteCore,
    t: Table,
    rng: SimRng,
    out: VecDeque<(NodeIdx, ChordMsg)>,
    rpcs: Vec<Rpc>,
    next_nonce: u32,
    join_query: Option<QueryId>,
    next_stabilise: Instant,
    next_fix: Instant,
    next_check: Instant,
}

impl ChordNode {
    /// A node with address `idx`, identifier `id` and generator seed `seed`.
    pub fn new(config: ChordConfig, idx: NodeIdx, id: Id, seed: u64) -> Self {
        let mut rng = SimRng::new(seed);
        let me = Contact {
            pos: ring_pos(&id),
            idx,
        };
        // Spread first ticks over a period so the nodes of a converged network do not tick in
        // lock-step.
        let next_stabilise = Instant::ZERO + rng.jitter(config.stabilise_period);
        let next_fix = Instant::ZERO + rng.jitter(config.fix_fingers_period);
        let next_check = Instant::ZERO + rng.jitter(config.check_predecessor_period);
        ChordNode {
            core: RouteCore::new(idx, id, config.route),
            t: Table {
                me,
                joined: false,
                bootstrap: None,
                pred: None,
                succs: Vec::new(),
                fingers: Vec::new(),
                replicas: config.replicas,
                successor_shortcut: config.successor_shortcut,
            },
            config,
            rng,
            out: VecDeque::new(),
            rpcs: Vec::new(),
            next_nonce: 1,
            join_query: None,
            next_stabilise,
            next_fix,
            next_check,
        }
    }

    /// The successor list, nearest first.
    pub fn successors(&self) -> Vec<NodeIdx> {
        self.t.succs.iter().map(|c| c.idx).collect()
    }

    /// The predecessor, if known.
    pub fn predecessor(&self) -> Option<NodeIdx> {
        self.t.pred.map(|c| c.idx)
    }

    /// Number of distinct fingers.
    pub fn finger_count(&self) -> usize {
        self.t.fingers.len()
    }

    /// Number of items stored here.
    pub fn items(&self) -> usize {
        self.core.store.len()
    }

    fn rpc(&mut self, now: Instant, to: NodeIdx, kind: RpcKind) {
        if self.rpcs.len() >= RPCS_MAX || self.rpcs.iter().any(|r| r.to == to && r.kind == kind) {
            return;
        }
        let nonce = self.next_nonce;
        self.next_nonce = self.next_nonce.wrapping_add(1);
        self.rpcs.push(Rpc {
            nonce,
            to,
            kind,
            deadline: now + self.config.rpc_timeout,
        });
        let msg = match kind {
            RpcKind::GetPred => ChordMsg::GetPred { nonce },
            RpcKind::Ping => ChordMsg::Ping { nonce },
        };
        self.out.push_back((to, msg));
    }

    fn take_rpc(&mut self, from: NodeIdx, nonce: u32) -> Option<Rpc> {
        let i = self
            .rpcs
            .iter()
            .position(|r| r.nonce == nonce && r.to == from)?;
        Some(self.rpcs.swap_remove(i))
    }

    fn stabilise(&mut self, now: Instant) {
        if let Some(s) = self.t.succs.first().copied() {
            self.rpc(now, s.idx, RpcKind::GetPred);
        }
    }

    fn fix_finger(&mut self, now: Instant) {
        let Some(s) = self.t.succs.first() else {
            return;
        };
        if self.rng.below(RING_CHECK_EVERY) == 0 {
            // Ring check. Concurrent joins can leave two interleaved rings, each consistent, which
            // stabilisation alone never merges (Zave, "Reasoning about identifier spaces", 2012
            // shows such states for the paper's protocol). A lookup of our own successor started
            // at a random finger is resolved by whichever ring that finger is in; an answer
            // between us and our successor is adopted (`drain_found`), which merges the rings.
            if let Some(f) = self
                .t
                .fingers
                .get(self.rng.below(self.t.fingers.len() as u64) as usize)
            {
                let via = f.idx;
                let target = id_at(self.t.me.pos.wrapping_add(1));
                self.core.start_via(now, target, Op::Find, via);
                return;
            }
        }
        // Fingers whose start falls before the successor are the successor itself: start at the
        // first bit that can reach past it.
        let gap = s.pos.wrapping_sub(self.t.me.pos);
        let k0 = 127 - gap.max(1).leading_zeros() as u64;
        let k = k0 + self.rng.below(128 - k0);
        let target = self.t.me.pos.wrapping_add(1u128 << k);
        self.core.start(now, id_at(target), Op::Find, &mut self.t);
    }

    fn drain_found(&mut self, now: Instant) {
        while let Some((q, key, owner)) = self.core.poll_found() {
            if Some(q) == self.join_query {
                self.join_query = None;
                if let Some((idx, id)) = owner {
                    self.t.joined = true;
                    let c = Contact {
                        pos: ring_pos(&id),
                        idx,
                    };
                    if idx != self.t.me.idx {
                        self.t.succs = vec![c];
                        self.t.insert_finger(c);
                        self.out
                            .push_back((idx, ChordMsg::Notify { me: self.t.me }));
                        self.stabilise(now);
                    }
                } else if let Some(b) = self.t.bootstrap {
                    // The join lookup was lost: try again through the same node.
                    self.join_query = Some(self.core.start_via(now, self.core.my_id, Op::Find, b));
                }
                continue;
            }
            let Some((idx, id)) = owner else { continue };
            let target = ring_pos(&key);
            let c = Contact {
                pos: ring_pos(&id),
                idx,
            };
            if let Some(s) = self.t.succs.first().copied() {
                if c.idx != self.t.me.idx && in_open(c.pos, self.t.me.pos, s.pos) {
                    // A live node between us and our successor: it is our successor.
                    self.t.succs.insert(0, c);
                    self.t
                        .succs
                        .truncate(self.config.successors.min(SUCCESSORS_MAX));
                    self.out
                        .push_back((c.idx, ChordMsg::Notify { me: self.t.me }));
                    self.stabilise(now);
                }
            }
            // Any finger between the start and the answer is stale: the lookup did not find it.
            let me = self.t.me.pos;
            let (td, cd) = (target.wrapping_sub(me), c.pos.wrapping_sub(me));
            self.t.fingers.retain(|f| {
                let d = f.pos.wrapping_sub(me);
                !(d >= td && d < cd)
            });
            self.t.insert_finger(c);
        }
    }

    fn on_pred(&mut self, now: Instant, from: NodeIdx, pred: Option<Contact>, succs: Vec<Contact>) {
        let Some(s) = self.t.succs.first().copied() else {
            return;
        };
        if s.idx != from {
            return;
        }
        let mut list = Vec::with_capacity(self.config.successors);
        if let Some(x) = pred {
            if x.idx != self.t.me.idx && in_open(x.pos, self.t.me.pos, s.pos) {
                list.push(x);
            }
        }
        list.push(s);
        for c in succs {
            if list.len() >= self.config.successors.min(SUCCESSORS_MAX) {
                break;
            }
            if c.idx == self.t.me.idx || list.iter().any(|l| l.idx == c.idx) {
                break; // Wrapped around a small ring.
            }
            list.push(c);
        }
        self.t.succs = list;
        let first = self.t.succs[0];
        self.t.insert_finger(first);
        self.out
            .push_back((first.idx, ChordMsg::Notify { me: self.t.me }));
        if first.idx != s.idx {
            // A closer successor: ask it at once rather than a period later. A join answered
            // during a burst of concurrent joins can land far from its true successor, and
            // walking back one node per stabilisation period would leave the ring broken for
            // minutes; each step moves strictly closer, so this ends.
            self.stabilise(now);
        }
    }

    fn on_notify(&mut self, c: Contact) {
        if c.idx == self.t.me.idx {
            return;
        }
        let adopt = match self.t.pred {
            None => true,
            Some(p) => p.idx == c.idx || in_open(c.pos, p.pos, self.t.me.pos),
        };
        if !adopt {
            return;
        }
        if self.t.pred.map(|p| p.idx) != Some(c.idx) {
            // Hand the new predecessor the items it now owns: those not in (c, me].
            let me = self.t.me.pos;
            let mut items = self
                .core
                .store
                .copy_where(|k| !in_half_open(ring_pos(k), c.pos, me));
            items.truncate(HANDOVER_ITEMS_MAX);
            if !items.is_empty() {
                self.out.push_back((c.idx, ChordMsg::Items { items }));
            }
        }
        self.t.pred = Some(c);
        if self.t.succs.is_empty() {
            self.t.succs.push(c);
            self.t.joined = true;
        }
    }
}

impl OverlayNode for ChordNode {
    type Msg = ChordMsg;

    routed_core_methods!(t, ChordMsg::Route);

    fn wire_size(msg: &ChordMsg) -> usize {
        match msg {
            ChordMsg::Route(r) => r.wire_size(),
            ChordMsg::GetPred { .. } | ChordMsg::Ping { .. } | ChordMsg::Pong { .. } => {
                HEADER_BYTES
            }
            ChordMsg::Pred { pred, succs, .. } => {
                HEADER_BYTES + 1 + CONTACT_BYTES * (pred.is_some() as usize + succs.len())
            }
            ChordMsg::Notify { .. } => HEADER_BYTES + CONTACT_BYTES,
            ChordMsg::Items { items } => {
                HEADER_BYTES
                    + items
                        .iter()
                        .map(|(_, v, _)| ID_BYTES + 8 + 2 + v.len())
                        .sum::<usize>()
            }
        }
    }

    fn handle_message(&mut self, now: Instant, from: NodeIdx, msg: ChordMsg) {
        match msg {
            ChordMsg::Route(m) => self.core.handle(now, from, m, &mut self.t),
            ChordMsg::GetPred { nonce } => {
                let reply = ChordMsg::Pred {
                    nonce,
                    pred: self.t.pred,
                    succs: self.t.succs.clone(),
                };
                self.out.push_back((from, reply));
            }
            ChordMsg::Pred { nonce, pred, succs } => {
                if self.take_rpc(from, nonce).is_some() {
                    self.on_pred(now, from, pred, succs);
                }
            }
            ChordMsg::Notify { me } => self.on_notify(me),
            ChordMsg::Ping { nonce } => self.out.push_back((from, ChordMsg::Pong { nonce })),
            ChordMsg::Pong { nonce } => {
                self.take_rpc(from, nonce);
            }
            ChordMsg::Items { items } => {
                for (k, v, s) in items {
                    self.core.store.put(k, v, s);
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
            match r.kind {
                RpcKind::GetPred => {
                    // The successor is gone: drop it and ask the next one at once.
                    self.t.on_dead(r.to);
                    self.stabilise(now);
                }
                RpcKind::Ping => {
                    if self.t.pred.is_some_and(|p| p.idx == r.to) {
                        self.t.pred = None;
                    }
                }
            }
        }
        if now >= self.next_stabilise {
            self.next_stabilise = now + self.config.stabilise_period;
            if self.t.joined {
                self.stabilise(now);
            }
        }
        if now >= self.next_fix {
            self.next_fix = now + self.config.fix_fingers_period;
            if self.t.joined {
                self.fix_finger(now);
            }
        }
        if now >= self.next_check {
            self.next_check = now + self.config.check_predecessor_period;
            if let Some(p) = self.t.pred {
                self.rpc(now, p.idx, RpcKind::Ping);
            }
        }
        self.drain_found(now);
    }

    fn join(&mut self, now: Instant, via: NodeIdx) {
        self.t.bootstrap = Some(via);
        self.t.joined = false;
        self.join_query = Some(self.core.start_via(now, self.core.my_id, Op::Find, via));
    }

    fn lookup(&mut self, now: Instant, key: Id) -> QueryId {
        let q = self.core.start(now, key, Op::Lookup, &mut self.t);
        self.drain_found(now);
        q
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_stabilise.min(self.next_fix).min(self.next_check);
        if let Some(c) = self.core.poll_timeout() {
            t = t.min(c);
        }
        if let Some(r) = self.rpcs.iter().map(|r| r.deadline).min() {
            t = t.min(r);
        }
        Some(t)
    }

    fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.core.bytes()
            + (self.t.succs.capacity() + self.t.fingers.capacity()) * std::mem::size_of::<Contact>()
            + self.rpcs.capacity() * std::mem::size_of::<Rpc>()
            + self.out.capacity() * std::mem::size_of::<(NodeIdx, ChordMsg)>()
    }
}

/// The Chord overlay: a factory of [`ChordNode`]s and the converged ring.
#[derive(Debug, Clone, Default)]
pub struct Chord {
    /// Knobs shared by every node.
    pub config: ChordConfig,
}

impl Chord {
    /// A Chord overlay with `config`.
    pub fn new(config: ChordConfig) -> Self {
        Chord { config }
    }
}

/// Stream label of [`node_id`]'s draw.
const NODE_ID_STREAM: u64 = 0x004e_4944;

/// The identifier a simulated node with address `idx` and seed `seed` takes (uniform on the
/// ring; the simulator does not model BEP 42 for the non-Kademlia overlays).
pub fn node_id(idx: NodeIdx, seed: u64) -> Id {
    Id::random(&mut SimRng::new(mix3(seed, NODE_ID_STREAM, idx as u64)))
}

impl Overlay for Chord {
    type Node = ChordNode;

    fn name(&self) -> &'static str {
        "chord"
    }

    fn new_node(&self, idx: NodeIdx, seed: u64) -> ChordNode {
        ChordNode::new(self.config, idx, node_id(idx, seed), seed)
    }

    fn converge(&self, nodes: &mut [(NodeIdx, &mut ChordNode)], _latency: &dyn Delays) -> bool {
        let mut ring: Vec<Contact> = nodes
            .iter()
            .map(|(i, n)| Contact {
                pos: n.t.me.pos,
                idx: *i,
            })
            .collect();
        ring.sort_by_key(|c| c.pos);
        let n = ring.len();
        if n == 0 {
            return true;
        }
        let succ_of = |p: u128| -> Contact {
            let i = ring.partition_point(|c| c.pos < p);
            ring[i % n]
        };
        let r = self.config.successors.min(SUCCESSORS_MAX).min(n - 1);
        for (_, node) in nodes.iter_mut() {
            let me = node.t.me;
            let i = ring.partition_point(|c| c.pos < me.pos);
            node.t.joined = true;
            node.t.pred = (n > 1).then(|| ring[(i + n - 1) % n]);
            node.t.succs = (1..=r).map(|j| ring[(i + j) % n]).collect();
            node.t.fingers.clear();
            if let Some(s) = node.t.succs.first().copied() {
                let gap = s.pos.wrapping_sub(me.pos);
                let k0 = 127 - gap.max(1).leading_zeros();
                let mut last = u32::MAX;
                for k in k0..128 {
                    let f = succ_of(me.pos.wrapping_add(1u128 << k));
                    if f.idx != last && f.idx != me.idx {
                        node.t.insert_finger(f);
                        last = f.idx;
                    }
                }
            }
            node.t.fingers.shrink_to_fit();
        }
        true
    }

    fn predicted_hops(&self, n: u64) -> f64 {
        0.5 * (n.max(1) as f64).log2()
    }
}
