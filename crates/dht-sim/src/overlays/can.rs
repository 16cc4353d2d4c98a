//! CAN: a d-dimensional torus cut into zones, greedy forwarding to the neighbour nearest the key.
//!
//! Implementation note. Ratnasamy, Francis, Handley, Karp and Shenker, "A Scalable
//! Content-Addressable Network", SIGCOMM 2001. The key space is the unit d-torus (here 32-bit
//! fixed point per coordinate); a key maps to a point by hashing (the first `4d` bytes of the
//! key, re-hashed with SHA-1 past five dimensions). Every node owns a zone (a box); two nodes are
//! neighbours when their zones abut along one dimension and overlap along the others. A request
//! goes greedily to the neighbour whose zone is nearest the key's point (Euclidean distance on the
//! torus). With N equal zones the paper predicts (section 2.2) an average path of
//! **(d/4) N^(1/d)** hops, each node keeping 2d neighbours; it measured 198 hops at 2^18 nodes
//! with d = 2 (figure 4's neighbour of the curve).
//!
//! Joins follow section 2.2: the new node picks a point (from its identifier), routes a join to
//! the point's owner, which splits its zone in half along the next dimension in turn and hands
//! over the half holding the point, its items and the candidate neighbours; both tell their
//! neighbours. Each node sends its zone and neighbour list to its neighbours every heartbeat
//! period; a neighbour silent for [`CanConfig::dead_after`] (or that failed to acknowledge a
//! forward) is presumed dead, and its neighbours start a takeover timer that grows with their own
//! zone's volume, so the smallest neighbour fires first, adds the dead zone to its own and tells
//! the dead node's neighbours, which cancel their own timers (section 2.3). A node may then hold
//! more than one zone; the paper's background zone reassignment is not implemented, nor are
//! realities or zone overloading. The items of a dead zone are lost (CAN replicates only with
//! multiple realities).

use std::collections::VecDeque;
use std::time::Duration;

use dht_proto::time::Instant;
use dht_proto::Id;

use super::chord::node_id;
use super::route::{routed_core_methods, Next, Op, RouteConfig, RouteCore, RouteMsg, RouteTable};
use super::wire::{HEADER_BYTES, ID_BYTES};
use crate::overlays::overlay::{Delays, NodeIdx, Overlay, OverlayEvent, OverlayNode, QueryId};

/// Dimensions supported at most.
pub const D_MAX: usize = 8;
/// Side of the torus in fixed-point units: coordinates are in [0, SPACE).
pub const SPACE: u64 = 1 << 32;
/// Neighbours kept at most; updates beyond it are dropped and counted.
pub const NEIGHBOURS_MAX: usize = 256;
/// Zones one node holds at most (its own and those it took over).
pub const ZONES_MAX: usize = 8;
/// Neighbour-of-neighbour entries kept per neighbour at most.
pub const NEIGHBOUR_LIST_MAX: usize = 64;
/// Nodes named by a neighbour that this node introduced itself to recently, remembered at most
/// (so each is probed once, not every heartbeat).
pub const PROBED_MAX: usize = 64;

/// A box of the torus: [lo, hi) along each of the first `d` dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone {
    /// Lower corners.
    pub lo: [u64; D_MAX],
    /// Upper corners (exclusive; at most [`SPACE`]).
    pub hi: [u64; D_MAX],
    /// Times the zone has been split since the whole space: the next split is along dimension
    /// `depth % d`.
    pub depth: u16,
}

impl Zone {
    fn whole() -> Zone {
        Zone {
            lo: [0; D_MAX],
            hi: [SPACE; D_MAX],
            depth: 0,
        }
    }

    fn contains(&self, p: &[u64; D_MAX], d: usize) -> bool {
        (0..d).all(|i| self.lo[i] <= p[i] && p[i] < self.hi[i])
    }

    // Indexing by dimension reads like the geometry it computes.
    #[allow(clippy::needless_range_loop)]
    /// Squared Euclidean distance on the torus from `p` to the nearest point of the zone, in
    /// units of SPACE (floating point; exact enough to order neighbours).
    fn dist2(&self, p: &[u64; D_MAX], d: usize) -> f64 {
        let mut s = 0.0;
        for i in 0..d {
            if self.lo[i] <= p[i] && p[i] < self.hi[i] {
                continue;
            }
            let ring = |a: u64, b: u64| {
                let x = a.abs_diff(b);
                x.min(SPACE - x)
            };
            let g = ring(p[i], self.lo[i]).min(ring(p[i], self.hi[i] - 1)) as f64 / SPACE as f64;
            s += g * g;
        }
        s
    }

    /// log2 of the volume in fixed-point units (every zone is a product of powers of two).
    fn log_volume(&self, d: usize) -> u32 {
        (0..d)
            .map(|i| 63 - (self.hi[i] - self.lo[i]).leading_zeros())
            .sum()
    }

    fn abuts(&self, o: &Zone, d: usize) -> bool {
        let mut overlap = 0;
        let mut touch = 0;
        for i in 0..d {
            if self.lo[i] < o.hi[i] && o.lo[i] < self.hi[i] {
                overlap += 1;
            } else if self.hi[i] % SPACE == o.lo[i] || o.hi[i] % SPACE == self.lo[i] {
                touch += 1;
            }
        }
        overlap + 1 == d && touch == 1
    }

    fn split(&self, d: usize) -> (Zone, Zone) {
        let i = self.depth as usize % d;
        let mid = self.lo[i] + (self.hi[i] - self.lo[i]) / 2;
        let mut a = *self;
        let mut b = *self;
        a.hi[i] = mid;
        b.lo[i] = mid;
        a.depth += 1;
        b.depth += 1;
        (a, b)
    }
}

/// The point of the torus a key maps to.
pub fn point(key: &Id, d: usize) -> [u64; D_MAX] {
    let mut p = [0u64; D_MAX];
    for (i, c) in p.iter_mut().enumerate().take(d) {
        let bytes: [u8; 4] = if i < 5 {
            key.0[4 * i..4 * i + 4].try_into().unwrap_or([0; 4])
        } else {
            let h = Id::sha1_parts(&[&key.0, &[i as u8]]);
            [h.0[0], h.0[1], h.0[2], h.0[3]]
        };
        *c = u32::from_be_bytes(bytes) as u64;
    }
    p
}

/// CAN's knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CanConfig {
    /// Dimensions d (1..=8; the paper's default is 2).
    pub d: usize,
    /// Period of the zone heartbeat to every neighbour.
    pub heartbeat_period: Duration,
    /// Silence after which a neighbour is presumed dead.
    pub dead_after: Duration,
    /// Takeover delay per factor of two of the taker's zone volume (smaller zones fire first).
    pub takeover_unit: Duration,
    /// How long a split request waits for its answer.
    pub rpc_timeout: Duration,
    /// Routing knobs.
    pub route: RouteConfig,
}

impl Default for CanConfig {
    fn default() -> Self {
        CanConfig {
            d: 2,
            heartbeat_period: Duration::from_secs(10),
            dead_after: Duration::from_secs(35),
            takeover_unit: Duration::from_millis(250),
            rpc_timeout: Duration::from_secs(2),
            route: RouteConfig {
                // (d/4) N^(1/d) is about 500 at 10^6 nodes with d = 2; leave room for detours.
                hops_max: 4096,
                query_timeout: Duration::from_secs(120),
                ..RouteConfig::default()
            },
        }
    }
}

/// CAN's messages.
#[derive(Debug, Clone, PartialEq)]
pub enum CanMsg {
    /// Routing.
    Route(RouteMsg),
    /// A joining node asks the owner of its point to split.
    SplitReq {
        /// The joiner's point key (its identifier).
        key: Id,
    },
    /// The owner's answer: the joiner's zone, candidate neighbours and items.
    SplitResp {
        /// The zone handed over (`None`: the point is no longer the responder's).
        zone: Option<Zone>,
        /// Candidate neighbours with their zones.
        candidates: Vec<(NodeIdx, Vec<Zone>)>,
        /// Items in the handed-over zone.
        items: Vec<(Id, Vec<u8>, i64)>,
    },
    /// Heartbeat and change notice: the sender's zones and neighbours.
    Update {
        /// The sender's zones.
        zones: Vec<Zone>,
        /// The sender's neighbours.
        nbrs: Vec<NodeIdx>,
        /// A receiver that does not count the sender as a neighbour answers with its own
        /// zones, so that a stale view on either side is corrected (answers set it false, so
        /// two strangers never bounce updates).
        want_reply: bool,
    },
}

#[derive(Debug, Clone)]
struct Nbr {
    idx: NodeIdx,
    zones: Vec<Zone>,
    nbrs: Vec<NodeIdx>,
    last_heard: Instant,
    /// Presumed dead; `Some(t)` once the takeover timer is set.
    dead: bool,
    takeover_at: Option<Instant>,
}

#[derive(Debug)]
struct Table {
    me: NodeIdx,
    d: usize,
    joined: bool,
    bootstrap: Option<NodeIdx>,
    zones: Vec<Zone>,
    nbrs: Vec<Nbr>,
}

impl Table {
    fn owns(&self, p: &[u64; D_MAX]) -> bool {
        self.zones.iter().any(|z| z.contains(p, self.d))
    }

    fn adjacent(&self, zones: &[Zone]) -> bool {
        self.zones
            .iter()
            .any(|a| zones.iter().any(|b| a.abuts(b, self.d)))
    }

    fn upsert(&mut self, now: Instant, idx: NodeIdx, zones: Vec<Zone>, mut nbrs: Vec<NodeIdx>) {
        if idx == self.me {
            return;
        }
        nbrs.truncate(NEIGHBOUR_LIST_MAX);
        let adj = self.adjacent(&zones);
        match self.nbrs.iter().position(|n| n.idx == idx) {
            Some(i) if adj => {
                let n = &mut self.nbrs[i];
                n.zones = zones;
                n.nbrs = nbrs;
                n.last_heard = now;
                n.dead = false;
                n.takeover_at = None;
            }
            Some(i) => {
                self.nbrs.swap_remove(i);
            }
            None if adj && self.nbrs.len() < NEIGHBOURS_MAX => self.nbrs.push(Nbr {
                idx,
                zones,
                nbrs,
                last_heard: now,
                dead: false,
                takeover_at: None,
            }),
            None => {}
        }
    }
}

impl RouteTable for Table {
    fn next_hop(&mut self, key: &Id, _final_hop: bool) -> Next {
        if !self.joined {
            return match self.bootstrap {
                Some(b) => Next::Forward {
                    to: b,
                    final_hop: false,
                },
                None => Next::Deliver,
            };
        }
        let p = point(key, self.d);
        if self.owns(&p) {
            return Next::Deliver;
        }
        let best = self
            .nbrs
            .iter()
            .filter(|n| !n.dead)
            .map(|n| {
                let dist = n
                    .zones
                    .iter()
                    .map(|z| z.dist2(&p, self.d))
                    .fold(f64::MAX, f64::min);
                (dist, n.idx)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        match best {
            Some((_, idx)) => Next::Forward {
                to: idx,
                final_hop: false,
            },
            None => Next::Nowhere,
        }
    }

    fn replicas(&self, _key: &Id, _out: &mut Vec<NodeIdx>) {}

    fn on_dead(&mut self, node: NodeIdx) {
        if let Some(n) = self.nbrs.iter_mut().find(|n| n.idx == node) {
            n.dead = true;
        }
    }
}

/// A CAN node.
///
/// Calling protocol: that of [`OverlayNode`]; [`Can::converge`] or [`OverlayNode::join`] gives it
/// a zone, after which its timer sends heartbeats and runs takeovers.
#[derive(Debug)]
pub struct CanNode {
    config: CanConfig,
    core: RouteCore,
    t: Table,
    out: VecDeque<(NodeIdx, CanMsg)>,
    join_query: Option<QueryId>,
    split_pending: Option<(NodeIdx, Instant)>,
    next_heartbeat: Instant,
    /// Recently probed neighbours of neighbours, oldest first.
    probed: VecDeque<NodeIdx>,
}

impl CanNode {
    /// A node with address `idx`, identifier `id` (its join point) and seed `seed`.
    pub fn new(config: CanConfig, idx: NodeIdx, id: Id, seed: u64) -> Self {
        assert!((1..=D_MAX).contains(&config.d), "CAN's d must be 1..=8");
        let mut rng = crate::rng::SimRng::new(seed);
        CanNode {
            core: RouteCore::new(idx, id, config.route),
            t: Table {
                me: idx,
                d: config.d,
                joined: false,
                bootstrap: None,
                zones: Vec::new(),
                nbrs: Vec::new(),
            },
            out: VecDeque::new(),
            join_query: None,
            split_pending: None,
            next_heartbeat: Instant::ZERO + rng.jitter(config.heartbeat_period),
            probed: VecDeque::new(),
            config,
        }
    }

    /// The zones this node owns.
    pub fn zones(&self) -> &[Zone] {
        &self.t.zones
    }

    /// The live neighbours' addresses.
    pub fn neighbours(&self) -> Vec<NodeIdx> {
        self.t
            .nbrs
            .iter()
            .filter(|n| !n.dead)
            .map(|n| n.idx)
            .collect()
    }

    /// Whether the node owns the point of `key`.
    pub fn owns_key(&self, key: &Id) -> bool {
        self.t.owns(&point(key, self.t.d))
    }

    fn my_nbrs(&self) -> Vec<NodeIdx> {
        self.t
            .nbrs
            .iter()
            .filter(|n| !n.dead)
            .map(|n| n.idx)
            .collect()
    }

    fn announce(&mut self, to: &[NodeIdx]) {
        self.send_update(to, true);
    }

    fn send_update(&mut self, to: &[NodeIdx], want_reply: bool) {
        let zones = self.t.zones.clone();
        let nbrs = self.my_nbrs();
        for &n in to {
            if n != self.t.me {
                self.out.push_back((
                    n,
                    CanMsg::Update {
                        zones: zones.clone(),
                        nbrs: nbrs.clone(),
                        want_reply,
                    },
                ));
            }
        }
    }

    fn on_split_req(&mut self, now: Instant, from: NodeIdx, key: Id) {
        let d = self.t.d;
        let p = point(&key, d);
        let Some(zi) = self.t.zones.iter().position(|z| z.contains(&p, d)) else {
            let resp = CanMsg::SplitResp {
                zone: None,
                candidates: Vec::new(),
                items: Vec::new(),
            };
            self.out.push_back((from, resp));
            return;
        };
        let (a, b) = self.t.zones[zi].split(d);
        let (mine, theirs) = if b.contains(&p, d) { (a, b) } else { (b, a) };
        self.t.zones[zi] = mine;
        let items = self
            .core
            .store
            .take_where(|k| theirs.contains(&point(k, d), d));
        let mut candidates: Vec<(NodeIdx, Vec<Zone>)> = self
            .t
            .nbrs
            .iter()
            .filter(|n| !n.dead)
            .map(|n| (n.idx, n.zones.clone()))
            .collect();
        candidates.push((self.t.me, self.t.zones.clone()));
        let old: Vec<NodeIdx> = self.my_nbrs();
        // Keep only neighbours still adjacent to what is left, then add the joiner.
        let zones = self.t.zones.clone();
        self.t
            .nbrs
            .retain(|n| zones.iter().any(|a| n.zones.iter().any(|b| a.abuts(b, d))));
        self.out.push_back((
            from,
            CanMsg::SplitResp {
                zone: Some(theirs),
                candidates,
                items,
            },
        ));
        self.t.upsert(now, from, vec![theirs], Vec::new());
        self.announce(&old);
    }

    fn on_split_resp(
        &mut self,
        now: Instant,
        zone: Option<Zone>,
        candidates: Vec<(NodeIdx, Vec<Zone>)>,
        items: Vec<(Id, Vec<u8>, i64)>,
    ) {
        self.split_pending = None;
        let Some(z) = zone else {
            // The owner moved on: route the join again.
            if let Some(b) = self.t.bootstrap {
                self.join(now, b);
            }
            return;
        };
        self.t.zones = vec![z];
        self.t.joined = true;
        for (k, v, s) in items {
            self.core.store.put(k, v, s);
        }
        for (idx, zones) in candidates {
            self.t.upsert(now, idx, zones, Vec::new());
        }
        let to = self.my_nbrs();
        self.announce(&to);
    }

    fn drain_found(&mut self, now: Instant) {
        while let Some((q, _key, owner)) = self.core.poll_found() {
            if Some(q) != self.join_query {
                continue;
            }
            self.join_query = None;
            match owner {
                Some((z, _)) => {
                    self.split_pending = Some((z, now + self.config.rpc_timeout));
                    self.out.push_back((
                        z,
                        CanMsg::SplitReq {
                            key: self.core.my_id,
                        },
                    ));
                }
                None => {
                    if let Some(b) = self.t.bootstrap {
                        self.join(now, b);
                    }
                }
            }
        }
    }

    fn takeover(&mut self, now: Instant) {
        let due: Vec<usize> = (0..self.t.nbrs.len())
            .filter(|&i| self.t.nbrs[i].takeover_at.is_some_and(|t| t <= now))
            .collect();
        let mut tell: Vec<NodeIdx> = Vec::new();
        for &i in due.iter().rev() {
            let dead = self.t.nbrs.swap_remove(i);
            for z in dead.zones {
                if self.t.zones.len() < ZONES_MAX {
                    self.t.zones.push(z);
                }
            }
            tell.extend(dead.nbrs);
        }
        if due.is_empty() {
            return;
        }
        tell.extend(self.my_nbrs());
        tell.sort_unstable();
        tell.dedup();
        tell.retain(|&n| n != self.t.me);
        // The dead node's neighbours become ours as they answer with their zones.
        self.announce(&tell);
    }
}

impl OverlayNode for CanNode {
    type Msg = CanMsg;

    routed_core_methods!(t, CanMsg::Route);

    fn wire_size(msg: &CanMsg) -> usize {
        // A zone on the wire: 2 x d coordinates of 4 bytes (d <= 8: at most 64 bytes) and depth.
        const ZONE_BYTES: usize = 2 * 4 * 2 + 2;
        match msg {
            CanMsg::Route(r) => r.wire_size(),
            CanMsg::SplitReq { .. } => HEADER_BYTES + ID_BYTES,
            CanMsg::SplitResp {
                candidates, items, ..
            } => {
                HEADER_BYTES
                    + ZONE_BYTES
                    + candidates
                        .iter()
                        .map(|(_, z)| 6 + z.len() * ZONE_BYTES)
                        .sum::<usize>()
                    + items
                        .iter()
                        .map(|(_, v, _)| ID_BYTES + 10 + v.len())
                        .sum::<usize>()
            }
            CanMsg::Update { zones, nbrs, .. } => {
                1 + HEADER_BYTES + zones.len() * ZONE_BYTES + nbrs.len() * 6
            }
        }
    }

    fn handle_message(&mut self, now: Instant, from: NodeIdx, msg: CanMsg) {
        match msg {
            CanMsg::Route(m) => self.core.handle(now, from, m, &mut self.t),
            CanMsg::SplitReq { key } => {
                if self.t.joined {
                    self.on_split_req(now, from, key);
                }
            }
            CanMsg::SplitResp {
                zone,
                candidates,
                items,
            } => {
                if self.split_pending.is_some_and(|(z, _)| z == from) {
                    self.on_split_resp(now, zone, candidates, items);
                }
            }
            CanMsg::Update {
                zones,
                nbrs,
                want_reply,
            } => {
                // A node that now holds a zone we were about to take over has done it first.
                for n in self.t.nbrs.iter_mut().filter(|n| n.dead) {
                    if n.zones.iter().all(|dz| zones.contains(dz)) {
                        n.takeover_at = None;
                        n.zones.clear();
                    }
                }
                self.t.nbrs.retain(|n| !(n.dead && n.zones.is_empty()));
                let known = self.t.nbrs.iter().any(|n| n.idx == from);
                // Neighbour discovery. Zone lists handed over at a split can be stale when
                // neighbours split concurrently, leaving two adjacent nodes unaware of each
                // other and greedy forwarding stuck. A node named by a known neighbour that we
                // do not know gets our zones once; if it is adjacent it adds us and, since we are
                // new to it, answers with its own zones. Only lists from known neighbours are
                // read: reading a stranger's would let probes beget probes across the network.
                let unknown: Vec<NodeIdx> = if known {
                    nbrs.iter()
                        .copied()
                        .filter(|&y| {
                            y != self.t.me
                                && !self.probed.contains(&y)
                                && !self.t.nbrs.iter().any(|n| n.idx == y)
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                self.t.upsert(now, from, zones, nbrs);
                if self.t.joined {
                    if !known && want_reply {
                        // New to us (we add it if adjacent), or a node whose view of us is
                        // stale: either way it needs our zones. Without this a node that
                        // still lists us after we split away would presume us dead and take
                        // over a zone we hold.
                        self.send_update(&[from], false);
                    }
                    for y in unknown {
                        self.probed.push_back(y);
                        if self.probed.len() > PROBED_MAX {
                            self.probed.pop_front();
                        }
                        self.announce(&[y]);
                    }
                }
            }
        }
        self.drain_found(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now, &mut self.t);
        if let Some((_, t)) = self.split_pending {
            if t <= now {
                self.split_pending = None;
                if let Some(b) = self.t.bootstrap {
                    self.join(now, b);
                }
            }
        }
        // Presume silent neighbours dead and arm takeover timers: smaller zones fire first.
        let d = self.t.d;
        let my_vol = self
            .t
            .zones
            .iter()
            .map(|z| z.log_volume(d))
            .min()
            .unwrap_or(32 * d as u32);
        let dead_after = self.config.dead_after;
        let unit = self.config.takeover_unit;
        let me = self.t.me;
        for n in &mut self.t.nbrs {
            if now.saturating_duration_since(n.last_heard) > dead_after {
                n.dead = true;
            }
            if n.dead && n.takeover_at.is_none() {
                // A few milliseconds by address break ties between equal volumes.
                let delay = unit * my_vol + Duration::from_millis((me % 64) as u64);
                n.takeover_at = Some(now + delay);
            }
        }
        self.takeover(now);
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.config.heartbeat_period;
            if self.t.joined {
                let to = self.my_nbrs();
                self.announce(&to);
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
        self.core.start(now, key, Op::Lookup, &mut self.t)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_heartbeat;
        if let Some(c) = self.core.poll_timeout() {
            t = t.min(c);
        }
        if let Some((_, s)) = self.split_pending {
            t = t.min(s);
        }
        for n in &self.t.nbrs {
            if let Some(x) = n.takeover_at {
                t = t.min(x);
            }
            if !n.dead {
                t = t.min(n.last_heard + self.config.dead_after + Duration::from_millis(1));
            }
        }
        Some(t)
    }

    fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.core.bytes()
            + self.t.zones.capacity() * std::mem::size_of::<Zone>()
            + self
                .t
                .nbrs
                .iter()
                .map(|n| {
                    std::mem::size_of::<Nbr>()
                        + n.zones.capacity() * std::mem::size_of::<Zone>()
                        + n.nbrs.capacity() * 4
                })
                .sum::<usize>()
    }
}

/// The CAN overlay.
#[derive(Debug, Clone, Default)]
pub struct Can {
    /// Knobs shared by every node.
    pub config: CanConfig,
}

impl Can {
    /// A CAN overlay with `config`.
    pub fn new(config: CanConfig) -> Self {
        Can { config }
    }
}

/// A k-d tree of the zones built by successive splits, for the converged state.
enum KdNode {
    Leaf(usize),
    Split {
        dim: usize,
        mid: u64,
        lo: usize,
        hi: usize,
    },
}

struct KdTree {
    nodes: Vec<KdNode>,
    zones: Vec<Zone>,
}

impl KdTree {
    fn find(&self, p: &[u64; D_MAX]) -> usize {
        let mut at = 0;
        loop {
            match self.nodes[at] {
                KdNode::Leaf(_) => return at,
                KdNode::Split { dim, mid, lo, hi } => at = if p[dim] < mid { lo } else { hi },
            }
        }
    }

    /// Leaves containing coordinate `c` along `dim` and overlapping `z` along the others.
    fn face(&self, z: &Zone, dim: usize, c: u64, out: &mut Vec<usize>) {
        let mut stack = vec![0usize];
        while let Some(at) = stack.pop() {
            match self.nodes[at] {
                KdNode::Leaf(owner) => out.push(owner),
                KdNode::Split {
                    dim: s,
                    mid,
                    lo,
                    hi,
                } => {
                    if s == dim {
                        stack.push(if c < mid { lo } else { hi });
                    } else {
                        if z.lo[s] < mid {
                            stack.push(lo);
                        }
                        if z.hi[s] > mid {
                            stack.push(hi);
                        }
                    }
                }
            }
        }
    }
}

impl Overlay for Can {
    type Node = CanNode;

    fn name(&self) -> &'static str {
        "can"
    }

    fn new_node(&self, idx: NodeIdx, seed: u64) -> CanNode {
        CanNode::new(self.config, idx, node_id(idx, seed), seed)
    }

    #[allow(clippy::needless_range_loop)] // `k` is both a node's position and its zone's.
    fn converge(&self, nodes: &mut [(NodeIdx, &mut CanNode)], _latency: &dyn Delays) -> bool {
        let d = self.config.d;
        if nodes.is_empty() {
            return true;
        }
        // Successive joins: each node splits the zone holding its point, as a real join would.
        let mut tree = KdTree {
            nodes: vec![KdNode::Leaf(0)],
            zones: vec![Zone::whole()],
        };
        for k in 1..nodes.len() {
            let p = point(&nodes[k].1.core.my_id, d);
            let leaf = tree.find(&p);
            let KdNode::Leaf(owner) = tree.nodes[leaf] else {
                unreachable!()
            };
            let z = tree.zones[owner];
            let dim = z.depth as usize % d;
            let (a, b) = z.split(d);
            let (mine, theirs) = if b.contains(&p, d) { (a, b) } else { (b, a) };
            tree.zones[owner] = mine;
            tree.zones.push(theirs);
            let (lo_owner, hi_owner) = if mine.lo[dim] < theirs.lo[dim] {
                (owner, k)
            } else {
                (k, owner)
            };
            let lo = tree.nodes.len();
            tree.nodes.push(KdNode::Leaf(lo_owner));
            tree.nodes.push(KdNode::Leaf(hi_owner));
            tree.nodes[leaf] = KdNode::Split {
                dim,
                mid: a.hi[dim],
                lo,
                hi: lo + 1,
            };
        }
        let mut nbr_lists: Vec<Vec<usize>> = Vec::with_capacity(nodes.len());
        let mut buf = Vec::new();
        for z in &tree.zones {
            buf.clear();
            for dim in 0..d {
                if z.hi[dim] - z.lo[dim] == SPACE {
                    continue; // Spans the torus along this dimension: no face.
                }
                tree.face(z, dim, z.hi[dim] % SPACE, &mut buf);
                tree.face(z, dim, (z.lo[dim] + SPACE - 1) % SPACE, &mut buf);
            }
            buf.sort_unstable();
            buf.dedup();
            let me = nbr_lists.len();
            let list: Vec<usize> = buf
                .iter()
                .copied()
                .filter(|&o| o != me && z.abuts(&tree.zones[o], d))
                .collect();
            nbr_lists.push(list);
        }
        let idxs: Vec<NodeIdx> = nodes.iter().map(|(i, _)| *i).collect();
        for (k, (_, node)) in nodes.iter_mut().enumerate() {
            node.t.joined = true;
            node.t.zones = vec![tree.zones[k]];
            node.t.nbrs = nbr_lists[k]
                .iter()
                .map(|&o| Nbr {
                    idx: idxs[o],
                    zones: vec![tree.zones[o]],
                    nbrs: nbr_lists[o]
                        .iter()
                        .take(NEIGHBOUR_LIST_MAX)
                        .map(|&x| idxs[x])
                        .collect(),
                    last_heard: Instant::ZERO,
                    dead: false,
                    takeover_at: None,
                })
                .collect();
        }
        true
    }

    fn predicted_hops(&self, n: u64) -> f64 {
        let d = self.config.d as f64;
        d / 4.0 * (n.max(1) as f64).powf(1.0 / d)
    }
}
