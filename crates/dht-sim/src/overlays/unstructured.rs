//! The unstructured baselines: a random graph of fixed degree searched by TTL-bounded flooding or
//! by k random walkers. [`super::flooding`] and [`super::randomwalk`] are this node with one
//! search mode each.
//!
//! Implementation note. Lv, Cao, Cohen, Li and Shenker, "Search and Replication in Unstructured
//! Peer-to-Peer Networks", ICS 2002. An item is held by the node that put it and by `r - 1`
//! replicas placed at random nodes (each by a random walk long enough to mix). Flooding sends a
//! query to every neighbour, which forwards it once to all of its neighbours until the TTL runs
//! out; random walk sends k walkers that each step to a random neighbour, and every
//! `check_every` steps ask the origin whether to go on ("checking"), up to a walk length bound.
//! The paper predicts no hop bound; it reports that k-walker random walks with checking cost
//! about **two orders of magnitude fewer messages than flooding** for the same success (section
//! 5, with replication around 1%). [`Unstructured::predicted_hops`] returns NaN.
//!
//! Measurement side channel. A real origin cannot know how many messages its flood caused; the
//! simulator can. Every node adds the messages it sends for a search to a tally shared by the
//! overlay (keyed by origin and query), and the origin reads it only when it reports the
//! search's figures. No routing decision ever reads the tally.
//!
//! In the engine a lookup searches for an item planted at `replicas` random live nodes just
//! before it starts ([`Overlay::plant`]) and removed once it has been judged; it succeeds when
//! the search reaches any live node holding it.
//!
//! Maintenance: a joining node sends `degree / 2` link walks through its bootstrap node; each
//! ends at a random node, which links back. Neighbours are pinged every keepalive period; one
//! that does not answer is dropped and replaced by a new link walk.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dht_proto::time::Instant;
use dht_proto::Id;

use super::chord::node_id;
use super::store::ItemStore;
use super::wire::{HEADER_BYTES, ID_BYTES};
use crate::overlays::overlay::{Delays, NodeIdx, Overlay, OverlayEvent, OverlayNode, QueryId};
use crate::rng::SimRng;

/// Neighbours one node keeps at most (links beyond it are refused).
pub const DEGREE_MAX: usize = 64;
/// Links a hub of the power-law graph may have (built at convergence only; maintenance keeps
/// to [`DEGREE_MAX`]).
pub const HUB_DEGREE_MAX: usize = 1024;
/// Searches one node remembers having seen (flood duplicate suppression) at most.
pub const SEEN_MAX: usize = 65_536;
/// Searches one node originates concurrently at most.
pub const SEARCHES_MAX: usize = 4_096;
/// Walkers parked waiting for their origin's check answer at one node at most.
pub const PARKED_MAX: usize = 4_096;
/// Steps of a walk that places a replica or looks for a node to link to.
pub const PLACE_WALK_LEN: u32 = 16;
/// How long a node remembers a search it has seen. A flood's duplicates arrive within TTL x
/// the longest one-way delay (a few seconds); forgetting older searches keeps the seen set, and
/// so the memory of a flooded network, proportional to the search rate rather than to the run.
pub const SEEN_KEEP: Duration = Duration::from_secs(10);
/// How long an origin keeps counting a search's messages after its first hit before it reports:
/// the flood runs out its TTL and every walker reaches its next check within it, so the report
/// counts every message the search caused.
pub const SEARCH_GRACE: Duration = Duration::from_secs(5);

/// How a search spreads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Flooding with a TTL.
    Flooding,
    /// k random walkers.
    RandomWalk,
}

/// Knobs of the unstructured overlays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnstructuredConfig {
    /// Search mode.
    pub mode: Mode,
    /// Target degree of the random graph (Lv et al. use random graphs of average degree 4 to 10).
    pub degree: usize,
    /// Build the static graph with power-law degrees of this exponent instead (Lv et al.'s PLRG,
    /// whose Gnutella-like exponent is about 2.3), mean degree still about `degree`; hubs may
    /// have up to [`HUB_DEGREE_MAX`] links. `None`: the fixed-degree random graph.
    pub power_law: Option<f64>,
    /// Copies of each item: the putter plus `replicas - 1` random nodes (Lv et al.: 1% of N).
    pub replicas: u32,
    /// Flooding: hops a query travels at most.
    pub ttl: u32,
    /// Random walk: walkers per search (Lv et al.: 16 to 64).
    pub walkers: u32,
    /// Random walk: steps a walker takes at most.
    pub walk_len: u32,
    /// Random walk: steps between checks with the origin (Lv et al.: 4); 0 disables checking.
    pub check_every: u32,
    /// How long an origin waits for a first hit before it reports the search as failed (after a
    /// hit it reports [`SEARCH_GRACE`] later).
    pub search_time: Duration,
    /// Period of neighbour pings.
    pub keepalive_period: Duration,
    /// How long a ping or check waits for its answer.
    pub rpc_timeout: Duration,
}

impl UnstructuredConfig {
    /// Flooding defaults: degree 8, TTL 4.
    pub fn flooding() -> Self {
        UnstructuredConfig {
            mode: Mode::Flooding,
            degree: 8,
            power_law: None,
            replicas: 1,
            ttl: 4,
            walkers: 16,
            walk_len: 1024,
            check_every: 4,
            search_time: Duration::from_secs(30),
            keepalive_period: Duration::from_secs(30),
            rpc_timeout: Duration::from_secs(1),
        }
    }

    /// Random-walk defaults: degree 8, 16 walkers, walks up to 1024 steps, checking every 4.
    pub fn random_walk() -> Self {
        UnstructuredConfig {
            mode: Mode::RandomWalk,
            ..Self::flooding()
        }
    }
}

/// Messages of the unstructured overlays.
#[derive(Debug, Clone, PartialEq)]
pub enum UnMsg {
    /// A flooded query.
    Flood {
        /// Origin.
        origin: NodeIdx,
        /// Origin's handle.
        query: QueryId,
        /// Key.
        key: Id,
        /// Hops so far.
        hops: u32,
        /// Hops left.
        ttl: u32,
    },
    /// A random walker.
    Walk {
        /// Origin.
        origin: NodeIdx,
        /// Origin's handle.
        query: QueryId,
        /// Key.
        key: Id,
        /// Steps so far.
        hops: u32,
    },
    /// A holder answers the origin.
    Hit {
        /// Origin's handle.
        query: QueryId,
        /// Hops of the search when it found the item.
        hops: u32,
        /// The value.
        value: Option<(Vec<u8>, i64)>,
    },
    /// A walker asks its origin whether to go on.
    Check {
        /// Origin's handle.
        query: QueryId,
        /// The walker's tag at the asking node.
        tag: u64,
    },
    /// The origin's answer to a check.
    Go {
        /// The walker's tag.
        tag: u64,
        /// Whether to continue.
        go: bool,
    },
    /// A replica placement or link walk.
    Place {
        /// Steps left.
        ttl: u32,
        /// For a link walk: the node to link to; for a placement: `None`.
        link: Option<NodeIdx>,
        /// For a placement: the item.
        item: Option<(Id, Vec<u8>, i64)>,
    },
    /// Link with me.
    Link,
    /// Keepalive.
    Ping,
    /// Keepalive answer.
    Pong,
}

/// Shared measurement tally: messages per (origin, query).
pub type Tally = Arc<Mutex<BTreeMap<(NodeIdx, QueryId), u32>>>;

/// The first hit of a search: holder, hops, value.
type HitInfo = (NodeIdx, u32, Option<(Vec<u8>, i64)>);

#[derive(Debug)]
struct Search {
    key: Id,
    deadline: Instant,
    get: bool,
    hit: Option<HitInfo>,
}

/// A node of an unstructured overlay.
///
/// Calling protocol: that of [`OverlayNode`].
#[derive(Debug)]
pub struct UnNode {
    config: UnstructuredConfig,
    me: NodeIdx,
    id: Id,
    rng: SimRng,
    nbrs: Vec<NodeIdx>,
    store: ItemStore,
    seen: BTreeSet<(NodeIdx, QueryId)>,
    seen_order: VecDeque<(Instant, NodeIdx, QueryId)>,
    searches: BTreeMap<QueryId, Search>,
    parked: BTreeMap<u64, (UnMsg, Instant)>,
    pings: BTreeMap<NodeIdx, Instant>,
    out: VecDeque<(NodeIdx, UnMsg)>,
    events: VecDeque<OverlayEvent>,
    tally: Tally,
    next_query: QueryId,
    next_tag: u64,
    next_keepalive: Instant,
    bootstrap: Option<NodeIdx>,
}

impl UnNode {
    /// The neighbours.
    pub fn neighbours(&self) -> &[NodeIdx] {
        &self.nbrs
    }

    /// Whether this node holds `key`.
    pub fn holds(&self, key: &Id) -> bool {
        self.store.get(key).is_some()
    }

    fn count(&self, origin: NodeIdx, query: QueryId, n: u32) {
        if let Ok(mut t) = self.tally.lock() {
            *t.entry((origin, query)).or_insert(0) += n;
        }
    }

    fn random_nbr(&mut self, except: Option<NodeIdx>) -> Option<NodeIdx> {
        let c: Vec<NodeIdx> = self
            .nbrs
            .iter()
            .copied()
            .filter(|&n| Some(n) != except)
            .collect();
        let pool = if c.is_empty() { &self.nbrs } else { &c };
        pool.get(self.rng.below(pool.len() as u64) as usize)
            .copied()
    }

    fn send(&mut self, to: NodeIdx, msg: UnMsg) {
        self.out.push_back((to, msg));
    }

    fn first_sight(&mut self, now: Instant, origin: NodeIdx, query: QueryId) -> bool {
        self.forget_seen(now);
        if !self.seen.insert((origin, query)) {
            return false;
        }
        self.seen_order.push_back((now, origin, query));
        if self.seen_order.len() > SEEN_MAX {
            if let Some((_, o, q)) = self.seen_order.pop_front() {
                self.seen.remove(&(o, q));
            }
        }
        true
    }

    /// Forgets searches seen more than [`SEEN_KEEP`] ago.
    fn forget_seen(&mut self, now: Instant) {
        while let Some(&(t, o, q)) = self.seen_order.front() {
            if t + SEEN_KEEP > now {
                break;
            }
            self.seen_order.pop_front();
            self.seen.remove(&(o, q));
        }
    }

    fn hit(&mut self, now: Instant, origin: NodeIdx, query: QueryId, key: &Id, hops: u32) -> bool {
        let Some(v) = self.store.get(key).cloned() else {
            return false;
        };
        self.count(origin, query, 1);
        let msg = UnMsg::Hit {
            query,
            hops,
            value: Some(v),
        };
        if origin == self.me {
            self.on_hit(now, origin, msg);
        } else {
            self.send(origin, msg);
        }
        true
    }

    fn on_hit(&mut self, now: Instant, from: NodeIdx, msg: UnMsg) {
        if let UnMsg::Hit { query, hops, value } = msg {
            if let Some(s) = self.searches.get_mut(&query) {
                if s.hit.is_none() {
                    s.hit = Some((from, hops, value));
                    // Found: report once the search's last messages have been counted.
                    s.deadline = s.deadline.min(now + SEARCH_GRACE);
                }
            }
        }
    }

    fn flood(
        &mut self,
        origin: NodeIdx,
        query: QueryId,
        key: Id,
        hops: u32,
        ttl: u32,
        from: Option<NodeIdx>,
    ) {
        if ttl == 0 {
            return;
        }
        let targets: Vec<NodeIdx> = self
            .nbrs
            .iter()
            .copied()
            .filter(|&n| Some(n) != from)
            .collect();
        self.count(origin, query, targets.len() as u32);
        for n in targets {
            self.send(
                n,
                UnMsg::Flood {
                    origin,
                    query,
                    key,
                    hops: hops + 1,
                    ttl: ttl - 1,
                },
            );
        }
    }

    fn step_walk(&mut self, now: Instant, msg: UnMsg, from: Option<NodeIdx>) {
        let UnMsg::Walk {
            origin,
            query,
            key,
            hops,
        } = msg
        else {
            return;
        };
        if hops >= self.config.walk_len {
            return;
        }
        let c = self.config.check_every;
        if c > 0 && hops > 0 && hops % c == 0 && origin != self.me {
            if self.parked.len() >= PARKED_MAX {
                return;
            }
            let tag = self.next_tag;
            self.next_tag += 1;
            self.parked.insert(
                tag,
                (
                    UnMsg::Walk {
                        origin,
                        query,
                        key,
                        hops: hops + 1_000_000, // marks "checked at this step"
                    },
                    now + self.config.rpc_timeout,
                ),
            );
            self.count(origin, query, 2);
            self.send(origin, UnMsg::Check { query, tag });
            return;
        }
        let Some(next) = self.random_nbr(from) else {
            return;
        };
        self.count(origin, query, 1);
        self.send(
            next,
            UnMsg::Walk {
                origin,
                query,
                key,
                hops: hops + 1,
            },
        );
    }

    fn start(&mut self, now: Instant, key: Id, get: bool) -> QueryId {
        let query = self.next_query;
        self.next_query += 1;
        if self.searches.len() >= SEARCHES_MAX {
            self.events.push_back(OverlayEvent::LookupDone {
                query,
                key,
                ok: false,
                found: Vec::new(),
                hops: 0,
                messages: 0,
            });
            return query;
        }
        self.searches.insert(
            query,
            Search {
                key,
                deadline: now + self.config.search_time,
                get,
                hit: None,
            },
        );
        self.first_sight(now, self.me, query);
        if self.hit(now, self.me, query, &key, 0) {
            return query;
        }
        match self.config.mode {
            Mode::Flooding => self.flood(self.me, query, key, 0, self.config.ttl, None),
            Mode::RandomWalk => {
                for _ in 0..self.config.walkers {
                    let w = UnMsg::Walk {
                        origin: self.me,
                        query,
                        key,
                        hops: 0,
                    };
                    self.step_walk(now, w, None);
                }
            }
        }
        query
    }

    fn finish(&mut self, query: QueryId) {
        let Some(s) = self.searches.remove(&query) else {
            return;
        };
        let messages = self
            .tally
            .lock()
            .ok()
            .and_then(|mut t| t.remove(&(self.me, query)))
            .unwrap_or(0);
        let ev = match (s.get, s.hit) {
            (false, hit) => OverlayEvent::LookupDone {
                query,
                key: s.key,
                ok: hit.is_some(),
                found: hit.as_ref().map(|h| vec![h.0]).unwrap_or_default(),
                hops: hit.as_ref().map_or(0, |h| h.1),
                messages,
            },
            (true, hit) => OverlayEvent::GetDone {
                query,
                key: s.key,
                hops: hit.as_ref().map_or(0, |h| h.1),
                value: hit.and_then(|h| h.2),
                messages,
                answered_after: None,
            },
        };
        self.events.push_back(ev);
    }

    fn link_walks(&mut self, via: NodeIdx, n: usize) {
        for _ in 0..n {
            self.send(
                via,
                UnMsg::Place {
                    ttl: PLACE_WALK_LEN,
                    link: Some(self.me),
                    item: None,
                },
            );
        }
    }
}

impl OverlayNode for UnNode {
    type Msg = UnMsg;

    fn wire_size(msg: &UnMsg) -> usize {
        match msg {
            UnMsg::Flood { .. } | UnMsg::Walk { .. } => HEADER_BYTES + 6 + 8 + ID_BYTES + 2 + 2,
            UnMsg::Hit { value, .. } => {
                HEADER_BYTES + 8 + 2 + value.as_ref().map_or(0, |v| v.0.len() + 8)
            }
            UnMsg::Check { .. } | UnMsg::Go { .. } => HEADER_BYTES + 8 + 8,
            UnMsg::Place { item, .. } => {
                HEADER_BYTES + 2 + 6 + item.as_ref().map_or(0, |i| ID_BYTES + 8 + i.1.len())
            }
            UnMsg::Link | UnMsg::Ping | UnMsg::Pong => HEADER_BYTES,
        }
    }

    fn id(&self) -> Id {
        self.id
    }

    fn handle_message(&mut self, now: Instant, from: NodeIdx, msg: UnMsg) {
        match msg {
            UnMsg::Flood {
                origin,
                query,
                key,
                hops,
                ttl,
            } => {
                if self.first_sight(now, origin, query) && !self.hit(now, origin, query, &key, hops)
                {
                    self.flood(origin, query, key, hops, ttl, Some(from));
                }
            }
            UnMsg::Walk {
                origin,
                query,
                key,
                hops,
            } => {
                if !self.hit(now, origin, query, &key, hops) {
                    self.step_walk(
                        now,
                        UnMsg::Walk {
                            origin,
                            query,
                            key,
                            hops,
                        },
                        Some(from),
                    );
                }
            }
            hit @ UnMsg::Hit { .. } => self.on_hit(now, from, hit),
            UnMsg::Check { query, tag } => {
                let go = self.searches.get(&query).is_some_and(|s| s.hit.is_none());
                self.send(from, UnMsg::Go { tag, go });
            }
            UnMsg::Go { tag, go } => {
                if let Some((
                    UnMsg::Walk {
                        origin,
                        query,
                        key,
                        hops,
                    },
                    _,
                )) = self.parked.remove(&tag)
                {
                    if go {
                        let w = UnMsg::Walk {
                            origin,
                            query,
                            key,
                            hops: hops - 1_000_000,
                        };
                        // Step on without checking again at this step.
                        if let Some(next) = self.random_nbr(None) {
                            self.count(origin, query, 1);
                            if let UnMsg::Walk {
                                origin,
                                query,
                                key,
                                hops,
                            } = w
                            {
                                self.send(
                                    next,
                                    UnMsg::Walk {
                                        origin,
                                        query,
                                        key,
                                        hops: hops + 1,
                                    },
                                );
                            }
                        }
                    }
                }
            }
            UnMsg::Place { ttl, link, item } => {
                if ttl == 0 || self.nbrs.is_empty() {
                    if let Some(j) = link {
                        if j != self.me && !self.nbrs.contains(&j) && self.nbrs.len() < DEGREE_MAX {
                            self.nbrs.push(j);
                            self.send(j, UnMsg::Link);
                        }
                    }
                    if let Some((k, v, s)) = item {
                        self.store.put(k, v, s);
                    }
                } else if let Some(next) = self.random_nbr(Some(from)) {
                    self.send(
                        next,
                        UnMsg::Place {
                            ttl: ttl - 1,
                            link,
                            item,
                        },
                    );
                }
            }
            UnMsg::Link => {
                if !self.nbrs.contains(&from) && self.nbrs.len() < DEGREE_MAX {
                    self.nbrs.push(from);
                }
            }
            UnMsg::Ping => self.send(from, UnMsg::Pong),
            UnMsg::Pong => {
                self.pings.remove(&from);
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.forget_seen(now);
        let done: Vec<QueryId> = self
            .searches
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(q, _)| *q)
            .collect();
        for q in done {
            self.finish(q);
        }
        self.parked.retain(|_, (_, t)| *t > now);
        let dead: Vec<NodeIdx> = self
            .pings
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(n, _)| *n)
            .collect();
        for d in &dead {
            self.pings.remove(d);
            self.nbrs.retain(|n| n != d);
        }
        if !dead.is_empty() && self.nbrs.len() < self.config.degree / 2 {
            if let Some(via) = self.random_nbr(None).or(self.bootstrap) {
                let want = self.config.degree / 2 - self.nbrs.len();
                self.link_walks(via, want);
            }
        }
        if now >= self.next_keepalive {
            self.next_keepalive = now + self.config.keepalive_period;
            for n in self.nbrs.clone() {
                self.pings.insert(n, now + self.config.rpc_timeout);
                self.send(n, UnMsg::Ping);
            }
        }
    }

    fn join(&mut self, _now: Instant, via: NodeIdx) {
        self.bootstrap = Some(via);
        self.link_walks(via, (self.config.degree / 2).max(1));
    }

    fn lookup(&mut self, now: Instant, key: Id) -> QueryId {
        self.start(now, key, false)
    }

    fn put(&mut self, _now: Instant, key: Id, value: Vec<u8>, seq: i64) -> QueryId {
        let query = self.next_query;
        self.next_query += 1;
        let kept = self.store.put(key, value.clone(), seq) as u32;
        let extra = self.config.replicas.saturating_sub(1);
        for _ in 0..extra {
            if let Some(n) = self.random_nbr(None) {
                let item = Some((key, value.clone(), seq));
                self.send(
                    n,
                    UnMsg::Place {
                        ttl: PLACE_WALK_LEN,
                        link: None,
                        item,
                    },
                );
            }
        }
        self.events.push_back(OverlayEvent::PutDone {
            query,
            key,
            acked: kept + extra,
            answered_after: None,
        });
        query
    }

    fn get(&mut self, now: Instant, key: Id) -> QueryId {
        self.start(now, key, true)
    }

    fn poll_transmit(&mut self) -> Option<(NodeIdx, UnMsg)> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_keepalive;
        for x in self
            .searches
            .values()
            .map(|s| s.deadline)
            .chain(self.parked.values().map(|p| p.1))
            .chain(self.pings.values().copied())
        {
            t = t.min(x);
        }
        Some(t)
    }

    fn poll_event(&mut self) -> Option<OverlayEvent> {
        self.events.pop_front()
    }

    fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.nbrs.capacity() * 4
            + self.store.bytes()
            + self.seen.len() * 40
            + self.seen_order.capacity() * 12
    }
}

/// An unstructured overlay (flooding or random walk).
#[derive(Debug, Clone)]
pub struct Unstructured {
    /// Knobs shared by every node.
    pub config: UnstructuredConfig,
    tally: Tally,
}

impl Unstructured {
    /// An overlay with `config`.
    pub fn new(config: UnstructuredConfig) -> Self {
        Unstructured {
            config,
            tally: Tally::default(),
        }
    }

    /// Places `r` copies of an item at nodes chosen uniformly (for experiments that set up
    /// replication directly, as Lv et al. do), returning the holders.
    pub fn place(
        nodes: &mut [(NodeIdx, &mut UnNode)],
        key: Id,
        value: &[u8],
        r: u32,
        seed: u64,
    ) -> Vec<NodeIdx> {
        let mut rng = SimRng::new(seed);
        let mut holders = Vec::new();
        for _ in 0..r.min(nodes.len() as u32) * 4 {
            if holders.len() as u32 >= r {
                break;
            }
            let i = rng.below(nodes.len() as u64) as usize;
            if nodes[i].1.store.put(key, value.to_vec(), 0) && !holders.contains(&nodes[i].0) {
                holders.push(nodes[i].0);
            }
        }
        holders
    }
}

impl Overlay for Unstructured {
    type Node = UnNode;

    fn name(&self) -> &'static str {
        match self.config.mode {
            Mode::Flooding => "flooding",
            Mode::RandomWalk => "randomwalk",
        }
    }

    fn new_node(&self, idx: NodeIdx, seed: u64) -> UnNode {
        let mut rng = SimRng::new(seed);
        let next_keepalive = Instant::ZERO + rng.jitter(self.config.keepalive_period);
        UnNode {
            config: self.config,
            me: idx,
            id: node_id(idx, seed),
            rng,
            nbrs: Vec::new(),
            store: ItemStore::default(),
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            searches: BTreeMap::new(),
            parked: BTreeMap::new(),
            pings: BTreeMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            tally: self.tally.clone(),
            next_query: 1,
            next_tag: 1,
            next_keepalive,
            bootstrap: None,
        }
    }

    fn converge(&self, nodes: &mut [(NodeIdx, &mut UnNode)], _latency: &dyn Delays) -> bool {
        let n = nodes.len();
        if n < 2 {
            return true;
        }
        let adj = match self.config.power_law {
            Some(alpha) => power_law_graph(n, self.config.degree, alpha),
            None => fixed_degree_graph(n, self.config.degree),
        };
        let idxs: Vec<NodeIdx> = nodes.iter().map(|(i, _)| *i).collect();
        for (k, (_, node)) in nodes.iter_mut().enumerate() {
            node.nbrs = adj[k].iter().map(|&b| idxs[b]).collect();
        }
        true
    }

    fn predicted_hops(&self, _n: u64) -> f64 {
        f64::NAN
    }

    fn lookup_copies(&self, live: usize) -> u32 {
        self.config.replicas.clamp(1, live.max(1) as u32)
    }

    fn plant(&self, node: &mut UnNode, key: &Id) {
        // The value is the key itself: a hit proves the holder had it.
        node.store.put(*key, key.0.to_vec(), 0);
    }

    fn unplant(&self, node: &mut UnNode, key: &Id) {
        node.store.remove(key);
    }
}

/// The random graph of about `degree` links a node: each of `n` nodes draws `degree / 2`
/// random partners; links are symmetric, so the mean degree is `degree` (none above
/// [`DEGREE_MAX`]). Seeded by `n` alone.
pub fn fixed_degree_graph(n: usize, degree: usize) -> Vec<Vec<usize>> {
    let mut rng = SimRng::new(0x51ed_2701 ^ n as u64);
    let half = (degree / 2).max(1);
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    for a in 0..n {
        let mut tries = 0;
        let mut added = 0;
        while added < half && tries < half * 8 {
            tries += 1;
            let b = rng.below(n as u64) as usize;
            if b == a
                || adj[a].contains(&b)
                || adj[a].len() >= DEGREE_MAX
                || adj[b].len() >= DEGREE_MAX
            {
                continue;
            }
            adj[a].push(b);
            adj[b].push(a);
            added += 1;
        }
    }
    adj
}

/// Lv et al.'s power-law random graph (PLRG): each of `n` nodes draws a degree from a Pareto
/// law of exponent `alpha` (density ∝ d^-alpha, scaled so the mean is about `mean_degree`,
/// capped at [`HUB_DEGREE_MAX`]), then the stubs are paired at random (the configuration model),
/// dropping self-loops and repeated links. A node left with no link is tied to a random node, so
/// every node can search. Seeded by `n` alone, like the fixed-degree graph.
pub fn power_law_graph(n: usize, mean_degree: usize, alpha: f64) -> Vec<Vec<usize>> {
    let mut rng = SimRng::new(0x9a2e_71c3 ^ n as u64);
    let cap = HUB_DEGREE_MAX.min(n.saturating_sub(1)).max(1);
    // Pareto with minimum m has mean m (alpha - 1) / (alpha - 2).
    let m = (mean_degree as f64 * (alpha - 2.0) / (alpha - 1.0)).max(1.0);
    let mut stubs: Vec<usize> = Vec::new();
    for v in 0..n {
        // u in (0, 1]: never zero, so the power stays finite.
        let u = (rng.below(1 << 53) + 1) as f64 / (1u64 << 53) as f64;
        let d = (m * u.powf(-1.0 / (alpha - 1.0))).round() as usize;
        stubs.extend(std::iter::repeat_n(v, d.clamp(1, cap)));
    }
    for i in (1..stubs.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        stubs.swap(i, j);
    }
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    for pair in stubs.chunks_exact(2) {
        let (a, b) = (pair[0], pair[1]);
        if a != b && !adj[a].contains(&b) {
            adj[a].push(b);
            adj[b].push(a);
        }
    }
    for a in 0..n {
        if adj[a].is_empty() && n > 1 {
            let mut b = rng.below(n as u64) as usize;
            if b == a {
                b = (a + 1) % n;
            }
            adj[a].push(b);
            adj[b].push(a);
        }
    }
    adj
}
