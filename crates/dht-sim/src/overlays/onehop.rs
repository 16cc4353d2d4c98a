//! A one-hop ring in the style of Cassandra: consistent hashing with virtual nodes, membership by
//! gossip with a failure detector, replication factor 3; a lookup goes straight to the owner.
//!
//! Implementation note. Lakshman and Malik, "Cassandra: A Decentralized Structured Storage
//! System", LADIS 2009 / SIGOPS OSR 2010, and DeCandia et al., "Dynamo: Amazon's Highly
//! Available Key-value Store", SOSP 2007. Every node places `tokens` virtual nodes on the ring
//! (token `j` of a node is the top 128 bits of SHA-1 of its identifier and `j`); a key belongs to
//! the node of the first token at or after it, and its replicas to the next `rf - 1` distinct
//! nodes clockwise (Cassandra's SimpleStrategy). Every node knows the whole membership, so a
//! request goes **in one hop** to the owner: the figure both papers predict (Dynamo reports
//! 99.9th-percentile latencies of a single round trip).
//!
//! Membership. A node's view is the converged member set (shared between nodes as one `Arc`,
//! because at 100,000 nodes a full copy per node would be 100,000 x 16 tokens per node) plus a
//! bounded *delta*: members it learned joined or failed since, with a version number. Every
//! gossip period a node sends its recent changes to a random member (rumour mongering: each
//! change is passed on [`GOSSIP_ROUNDS`] times) and the member answers with its own, so news
//! reaches everyone in O(log N) periods. The failure detector is a timeout: a gossip partner or a
//! forward target that does not answer in time is marked down and the verdict is gossiped; a
//! node that hears itself called down refutes it with a higher version (Cassandra's generation /
//! version, without its phi-accrual estimator). Token positions are a pure function of a node's
//! identifier, so all nodes read them from one shared directory; what each node *knows* is only
//! its own view. A joining node copies its bootstrap node's view (one large message, counted at
//! its honest size) and gossips itself. Ranges are not streamed to a joining node, and the delta
//! is capped at [`DELTA_MAX`] entries (oldest news dropped first): both are simplifications.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dht_proto::time::Instant;
use dht_proto::Id;

use super::chord::node_id;
use super::ring::ring_pos;
use super::route::{routed_core_methods, Next, Op, RouteConfig, RouteCore, RouteMsg, RouteTable};
use super::wire::{ADDR_BYTES, HEADER_BYTES, ID_BYTES};
use crate::overlays::overlay::{Delays, NodeIdx, Overlay, OverlayEvent, OverlayNode, QueryId};
use crate::rng::SimRng;

/// Membership changes one node remembers beyond the shared base view at most.
pub const DELTA_MAX: usize = 4096;
/// Delta size at which a node folds its settled news (passed on [`GOSSIP_ROUNDS`] times, never
/// refuted) into a base of its own. A network grown by joins has no converged base: without
/// folding every member would sit in every delta, gossip would scan it all, and past
/// [`DELTA_MAX`] members the oldest would be forgotten, i.e. believed absent.
pub const DELTA_COMPACT: usize = 256;
/// Changes carried by one gossip message at most.
pub const GOSSIP_ENTRIES_MAX: usize = 32;
/// Times a node passes on a change it learned (rumour mongering's counter); about log2 of a
/// million, so a change reaches everyone with high probability.
pub const GOSSIP_ROUNDS: u8 = 20;
/// Tokens a lookup walks past (dead or unknown members) at most before giving up.
pub const WALK_MAX: usize = 65_536;
/// Virtual nodes per member at most.
pub const TOKENS_MAX: u32 = 256;

/// The one-hop ring's knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneHopConfig {
    /// Virtual nodes (tokens) per node (Cassandra's `num_tokens`; 16 in its recent defaults).
    pub tokens: u32,
    /// Replication factor.
    pub rf: usize,
    /// Gossip period (Cassandra: one second).
    pub gossip_period: Duration,
    /// How long a gossip exchange waits for the answer before the partner is marked down.
    pub rpc_timeout: Duration,
    /// Routing knobs.
    pub route: RouteConfig,
}

impl Default for OneHopConfig {
    fn default() -> Self {
        OneHopConfig {
            tokens: 16,
            rf: 3,
            gossip_period: Duration::from_secs(1),
            rpc_timeout: Duration::from_secs(1),
            route: RouteConfig::default(),
        }
    }
}

/// Token positions of every node ever created: a pure function of identifiers, shared so that
/// each node does not recompute and store them. Nodes read it only through their own view.
#[derive(Debug, Default)]
pub struct TokenDirectory {
    tokens: BTreeMap<u128, NodeIdx>,
    by_node: BTreeMap<NodeIdx, Id>,
}

impl TokenDirectory {
    fn token(id: &Id, j: u32) -> u128 {
        ring_pos(&Id::sha1_parts(&[&id.0, &j.to_be_bytes()]))
    }

    fn register(&mut self, idx: NodeIdx, id: Id, tokens: u32) {
        if let Some(old) = self.by_node.insert(idx, id) {
            for j in 0..tokens {
                let t = Self::token(&old, j);
                if self.tokens.get(&t) == Some(&idx) {
                    self.tokens.remove(&t);
                }
            }
        }
        for j in 0..tokens {
            self.tokens.insert(Self::token(&id, j), idx);
        }
    }
}

/// One membership change a node knows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The member's version (bumped by the member to refute a false down verdict).
    pub version: u32,
    /// Up or down.
    pub up: bool,
}

/// The one-hop ring's messages.
#[derive(Debug, Clone, PartialEq)]
pub enum OneHopMsg {
    /// Routing.
    Route(RouteMsg),
    /// Gossip: recent changes (push).
    Gossip {
        /// Request tag.
        nonce: u32,
        /// (member, state).
        entries: Vec<(NodeIdx, Member)>,
    },
    /// Gossip answer: the partner's recent changes (pull).
    GossipAck {
        /// Request tag.
        nonce: u32,
        /// (member, state).
        entries: Vec<(NodeIdx, Member)>,
    },
    /// A joining node asks for the membership view.
    JoinReq,
    /// The view: base members and delta.
    JoinResp {
        /// The shared base member set.
        base: Arc<Vec<u32>>,
        /// The delta.
        delta: Vec<(NodeIdx, Member)>,
    },
}

/// A member's state as one word of a base view: 0 for never heard of, otherwise
/// `version << 2 | 2 | up`.
fn encode(m: Member) -> u32 {
    (m.version << 2) | 2 | m.up as u32
}

/// The member a base word stands for, or `None` for never heard of.
fn decode(w: u32) -> Option<Member> {
    (w & 2 != 0).then_some(Member {
        version: w >> 2,
        up: w & 1 == 1,
    })
}

#[derive(Debug)]
struct View {
    me: NodeIdx,
    rf: usize,
    joined: bool,
    bootstrap: Option<NodeIdx>,
    dir: Arc<RwLock<TokenDirectory>>,
    /// Members as [`encode`]d words, shared: the converged view, or one this node folded.
    base: Arc<Vec<u32>>,
    delta: BTreeMap<NodeIdx, (Member, u8, u64)>,
    /// The delta entries still being passed on, as (stamp, member): newest last.
    hot: BTreeSet<(u64, NodeIdx)>,
    stamp: u64,
}

impl View {
    fn is_up(&self, idx: NodeIdx) -> bool {
        match self.delta.get(&idx) {
            Some((m, _, _)) => m.up,
            None => self.base_member(idx).is_some_and(|m| m.up),
        }
    }

    fn replicas_of(&self, key: &Id, want: usize) -> Vec<NodeIdx> {
        let k = ring_pos(key);
        let mut out = Vec::with_capacity(want);
        let Ok(dir) = self.dir.read() else { return out };
        let walk = dir.tokens.range(k..).chain(dir.tokens.range(..k));
        for (_, &idx) in walk.take(WALK_MAX) {
            if (idx == self.me || self.is_up(idx)) && !out.contains(&idx) {
                out.push(idx);
                if out.len() >= want {
                    break;
                }
            }
        }
        out
    }

    fn base_member(&self, idx: NodeIdx) -> Option<Member> {
        self.base.get(idx as usize).copied().and_then(decode)
    }

    /// Records `m` for `idx` if it is news; returns whether it was.
    fn merge(&mut self, idx: NodeIdx, m: Member) -> bool {
        // A higher version wins; at equal versions "down" wins. A member never heard of is news
        // when it is up or versioned.
        let old = self
            .delta
            .get(&idx)
            .map(|v| v.0)
            .or_else(|| self.base_member(idx));
        let news = match old {
            Some(old) => m.version > old.version || (m.version == old.version && old.up && !m.up),
            None => m.up || m.version > 0,
        };
        if news {
            self.stamp += 1;
            if let Some(old) = self.delta.insert(idx, (m, GOSSIP_ROUNDS, self.stamp)) {
                self.unindex(idx, old);
            }
            self.hot.insert((self.stamp, idx));
            if self.delta.len() > DELTA_COMPACT {
                self.compact();
            }
            if self.delta.len() > DELTA_MAX {
                // Forget the oldest news: the bound costs a few stale entries, not memory.
                if let Some((&old, _)) = self.delta.iter().min_by_key(|(_, v)| v.2) {
                    if let Some(entry) = self.delta.remove(&old) {
                        self.unindex(old, entry);
                    }
                }
            }
        }
        news
    }

    /// Takes `idx`'s replaced or removed delta `entry` out of the hot index, where it sits
    /// while it is still being passed on.
    fn unindex(&mut self, idx: NodeIdx, entry: (Member, u8, u64)) {
        let (_, rounds, stamp) = entry;
        if rounds > 0 {
            self.hot.remove(&(stamp, idx));
        }
    }

    /// Folds the settled entries (no longer passed on) into a base of this node's own, with
    /// their versions. The base is copied once per fold (a word per member); joiners share it.
    fn compact(&mut self) {
        let settled: Vec<(NodeIdx, Member)> = self
            .delta
            .iter()
            .filter(|(_, v)| v.1 == 0)
            .map(|(k, v)| (*k, v.0))
            .collect();
        // Fold only when it halves the delta at least, so the copy is paid rarely.
        if settled.len() < DELTA_COMPACT / 2 {
            return;
        }
        let mut base: Vec<u32> = self.base.as_ref().clone();
        for &(idx, m) in &settled {
            if base.len() <= idx as usize {
                base.resize(idx as usize + 1, 0);
            }
            base[idx as usize] = encode(m);
            self.delta.remove(&idx);
        }
        self.base = Arc::new(base);
    }

    fn hot(&mut self) -> Vec<(NodeIdx, Member)> {
        let picked: Vec<(u64, NodeIdx)> = self
            .hot
            .iter()
            .rev()
            .take(GOSSIP_ENTRIES_MAX)
            .copied()
            .collect();
        picked
            .into_iter()
            .filter_map(|(stamp, k)| {
                let v = self.delta.get_mut(&k)?;
                v.1 = v.1.saturating_sub(1);
                if v.1 == 0 {
                    self.hot.remove(&(stamp, k));
                }
                Some((k, v.0))
            })
            .collect()
    }
}

impl RouteTable for View {
    fn next_hop(&mut self, key: &Id, _final_hop: bool) -> Next {
        if !self.joined {
            return match self.bootstrap {
                Some(b) => Next::Forward {
                    to: b,
                    final_hop: false,
                },
                None => Next::Nowhere,
            };
        }
        match self.replicas_of(key, 1).first() {
            Some(&o) if o == self.me => Next::Deliver,
            Some(&o) => Next::Forward {
                to: o,
                final_hop: true,
            },
            None => Next::Deliver,
        }
    }

    fn replicas(&self, key: &Id, out: &mut Vec<NodeIdx>) {
        out.extend(
            self.replicas_of(key, self.rf)
                .into_iter()
                .filter(|&i| i != self.me),
        );
    }

    fn on_dead(&mut self, node: NodeIdx) {
        let version = self.delta.get(&node).map_or(0, |v| v.0.version);
        self.merge(node, Member { version, up: false });
    }
}

/// A node of the one-hop ring.
///
/// Calling protocol: that of [`OverlayNode`]; [`OneHop::converge`] or [`OverlayNode::join`] gives
/// it a membership view, after which its timer gossips.
#[derive(Debug)]
pub struct OneHopNode {
    config: OneHopConfig,
    core: RouteCore,
    v: View,
    rng: SimRng,
    out: VecDeque<(NodeIdx, OneHopMsg)>,
    version: u32,
    gossip_rpc: Option<(u32, NodeIdx, Instant)>,
    join_deadline: Option<Instant>,
    next_nonce: u32,
    next_gossip: Instant,
}

impl OneHopNode {
    /// The replicas of `key` in this node's view, owner first.
    pub fn replicas_of(&self, key: &Id) -> Vec<NodeIdx> {
        self.v.replicas_of(key, self.config.rf)
    }

    /// Entries in this node's membership delta.
    pub fn delta_len(&self) -> usize {
        self.v.delta.len()
    }

    /// Whether this node's view has `idx` up.
    pub fn believes_up(&self, idx: NodeIdx) -> bool {
        self.v.is_up(idx)
    }

    fn gossip(&mut self, now: Instant) {
        if let Some((_, peer, t)) = self.gossip_rpc {
            if t > now {
                return;
            }
            // The partner did not answer: the failure detector convicts it.
            self.gossip_rpc = None;
            self.v.on_dead(peer);
        }
        // A random member in this node's view: a random token's owner, if up.
        let peer = {
            let Ok(dir) = self.v.dir.read() else { return };
            let mut pick = None;
            for _ in 0..8 {
                let k = ring_pos(&Id::random(&mut self.rng));
                let idx = dir
                    .tokens
                    .range(k..)
                    .next()
                    .or_else(|| dir.tokens.iter().next())
                    .map(|(_, i)| *i);
                if let Some(i) = idx {
                    if i != self.v.me && self.v.is_up(i) {
                        pick = Some(i);
                        break;
                    }
                }
            }
            pick
        };
        let Some(peer) = peer else { return };
        let nonce = self.next_nonce;
        self.next_nonce = self.next_nonce.wrapping_add(1);
        let mut entries = self.v.hot();
        entries.push((
            self.v.me,
            Member {
                version: self.version,
                up: true,
            },
        ));
        self.gossip_rpc = Some((nonce, peer, now + self.config.rpc_timeout));
        self.out
            .push_back((peer, OneHopMsg::Gossip { nonce, entries }));
    }

    fn absorb(&mut self, from: NodeIdx, entries: Vec<(NodeIdx, Member)>) {
        for (idx, m) in entries.into_iter().take(GOSSIP_ENTRIES_MAX + 1) {
            if idx == self.v.me {
                if !m.up && m.version >= self.version {
                    // Someone thinks we are down: refute with a newer version.
                    self.version = m.version + 1;
                    let me = Member {
                        version: self.version,
                        up: true,
                    };
                    self.v.merge(idx, me);
                }
                continue;
            }
            self.v.merge(idx, m);
        }
        if !self.v.is_up(from) {
            // Hearing from a node is proof of life at its current version.
            let version = self.v.delta.get(&from).map_or(0, |v| v.0.version) + 1;
            self.v.merge(from, Member { version, up: true });
        }
    }
}

impl OverlayNode for OneHopNode {
    type Msg = OneHopMsg;

    routed_core_methods!(v, OneHopMsg::Route);

    fn wire_size(msg: &OneHopMsg) -> usize {
        const ENTRY: usize = ADDR_BYTES + ID_BYTES + 4 + 1;
        match msg {
            OneHopMsg::Route(r) => r.wire_size(),
            OneHopMsg::Gossip { entries, .. } | OneHopMsg::GossipAck { entries, .. } => {
                HEADER_BYTES + entries.len() * ENTRY
            }
            OneHopMsg::JoinReq => HEADER_BYTES + ID_BYTES,
            // A full view: every member with its identifier (tokens derive from it).
            OneHopMsg::JoinResp { base, delta } => {
                HEADER_BYTES + (base.iter().filter(|&&w| w & 1 == 1).count() + delta.len()) * ENTRY
            }
        }
    }

    fn handle_message(&mut self, now: Instant, from: NodeIdx, msg: OneHopMsg) {
        match msg {
            OneHopMsg::Route(m) => self.core.handle(now, from, m, &mut self.v),
            OneHopMsg::Gossip { nonce, entries } => {
                let mut reply = self.v.hot();
                reply.push((
                    self.v.me,
                    Member {
                        version: self.version,
                        up: true,
                    },
                ));
                self.absorb(from, entries);
                self.out.push_back((
                    from,
                    OneHopMsg::GossipAck {
                        nonce,
                        entries: reply,
                    },
                ));
            }
            OneHopMsg::GossipAck { nonce, entries } => {
                if self
                    .gossip_rpc
                    .is_some_and(|(n, p, _)| n == nonce && p == from)
                {
                    self.gossip_rpc = None;
                }
                self.absorb(from, entries);
            }
            OneHopMsg::JoinReq => {
                if self.v.joined {
                    let delta = self.v.delta.iter().map(|(k, v)| (*k, v.0)).collect();
                    let resp = OneHopMsg::JoinResp {
                        base: self.v.base.clone(),
                        delta,
                    };
                    self.out.push_back((from, resp));
                }
            }
            OneHopMsg::JoinResp { base, delta } => {
                if self.v.joined || self.v.bootstrap != Some(from) {
                    return;
                }
                self.v.base = base;
                for (idx, m) in delta.into_iter().take(DELTA_MAX) {
                    self.v.merge(idx, m);
                }
                self.version += 1;
                let me = Member {
                    version: self.version,
                    up: true,
                };
                self.v.merge(self.v.me, me);
                self.v.joined = true;
                self.join_deadline = None;
                self.gossip(now);
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now, &mut self.v);
        if let Some(t) = self.join_deadline {
            if t <= now {
                if let Some(b) = self.v.bootstrap {
                    self.join(now, b);
                }
            }
        }
        if self.gossip_rpc.is_some_and(|(_, _, t)| t <= now) || now >= self.next_gossip {
            if now >= self.next_gossip {
                self.next_gossip = now + self.config.gossip_period;
            }
            if self.v.joined {
                self.gossip(now);
            } else {
                // A node back from the dead rejoins before it gossips; an exchange it started
                // in its previous life is void (left pending, its past deadline would wake the
                // node at the same instant forever).
                self.gossip_rpc = None;
            }
        }
    }

    fn join(&mut self, now: Instant, via: NodeIdx) {
        self.v.bootstrap = Some(via);
        self.v.joined = false;
        self.join_deadline = Some(now + self.config.rpc_timeout * 5);
        self.out.push_back((via, OneHopMsg::JoinReq));
    }

    fn lookup(&mut self, now: Instant, key: Id) -> QueryId {
        self.core.start(now, key, Op::Lookup, &mut self.v)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_gossip;
        for x in [
            self.core.poll_timeout(),
            self.gossip_rpc.map(|g| g.2),
            self.join_deadline,
        ]
        .into_iter()
        .flatten()
        {
            t = t.min(x);
        }
        Some(t)
    }

    fn state_bytes(&self) -> usize {
        // The token directory is counted once per run, not per node; a base view is shared by
        // the nodes holding it (the converged one by all), so each is charged its share. A
        // node's own part is its delta (about 48 bytes an entry in a B-tree, 24 more if hot).
        std::mem::size_of::<Self>()
            + self.core.bytes()
            + self.v.base.len() / Arc::strong_count(&self.v.base).max(1)
            + self.v.delta.len() * 48
            + self.v.hot.len() * 24
    }
}

/// The one-hop ring overlay.
#[derive(Debug, Clone, Default)]
pub struct OneHop {
    /// Knobs shared by every node.
    pub config: OneHopConfig,
    dir: Arc<RwLock<TokenDirectory>>,
}

impl OneHop {
    /// A one-hop ring with `config`.
    pub fn new(config: OneHopConfig) -> Self {
        OneHop {
            config,
            dir: Arc::default(),
        }
    }

    /// The true owner of `key`: the node of the first token at or after the key whose node
    /// `is_live` (the checker's rule, from the shared directory rather than any node's view).
    pub fn owner_among(&self, key: &Id, is_live: impl Fn(NodeIdx) -> bool) -> Option<NodeIdx> {
        let k = ring_pos(key);
        let dir = self.dir.read().ok()?;
        let walk = dir.tokens.range(k..).chain(dir.tokens.range(..k));
        walk.take(WALK_MAX)
            .map(|(_, &idx)| idx)
            .find(|&idx| is_live(idx))
    }

    /// Bytes of the shared token directory (about 64 bytes a token in a B-tree).
    pub fn shared_bytes(&self) -> usize {
        self.dir
            .read()
            .map_or(0, |d| d.tokens.len() * 64 + d.by_node.len() * 48)
    }
}

impl Overlay for OneHop {
    type Node = OneHopNode;

    fn name(&self) -> &'static str {
        "onehop"
    }

    fn new_node(&self, idx: NodeIdx, seed: u64) -> OneHopNode {
        let id = node_id(idx, seed);
        let tokens = self.config.tokens.clamp(1, TOKENS_MAX);
        if let Ok(mut d) = self.dir.write() {
            d.register(idx, id, tokens);
        }
        let mut rng = SimRng::new(seed);
        let next_gossip = Instant::ZERO + rng.jitter(self.config.gossip_period);
        OneHopNode {
            core: RouteCore::new(idx, id, self.config.route),
            v: View {
                me: idx,
                rf: self.config.rf,
                joined: false,
                bootstrap: None,
                dir: self.dir.clone(),
                base: Arc::default(),
                delta: BTreeMap::new(),
                hot: BTreeSet::new(),
                stamp: 0,
            },
            config: self.config,
            rng,
            out: VecDeque::new(),
            version: 0,
            gossip_rpc: None,
            join_deadline: None,
            next_nonce: 1,
            next_gossip,
        }
    }

    fn converge(&self, nodes: &mut [(NodeIdx, &mut OneHopNode)], _latency: &dyn Delays) -> bool {
        let max = nodes
            .iter()
            .map(|(i, _)| *i as usize + 1)
            .max()
            .unwrap_or(0);
        let mut base = vec![0u32; max];
        for (i, _) in nodes.iter() {
            base[*i as usize] = encode(Member {
                version: 0,
                up: true,
            });
        }
        let base = Arc::new(base);
        for (_, n) in nodes.iter_mut() {
            n.v.base = base.clone();
            n.v.delta.clear();
            n.v.hot.clear();
            n.v.joined = true;
        }
        true
    }

    fn predicted_hops(&self, _n: u64) -> f64 {
        1.0
    }
}
