//! Kademlia in the simulator: `dht-proto`'s own [`Node`], not a model of it.
//!
//! Maymounkov and Mazières, "Kademlia: A Peer-to-peer Information System Based on the XOR
//! Metric" (IPTPS 2002): a lookup takes about log2(N) / b rounds with b bits resolved per round;
//! with k-buckets of k contacts a round resolves about 1 + log2(k) bits in practice, so the
//! prediction drawn beside the measurement is log2(N) / (1 + log2 k) rounds (5 at a million
//! nodes with Mainline's k = 8).
//!
//! Every message is the real KRPC datagram the node encodes; the engine counts its length, so
//! byte counts are real (UDP and IP headers excluded). Node `i` lives at the virtual address
//! `127.a.b.c:port` derived from `i` ([`addr_of`]); nothing touches a real socket.
//!
//! The workload's items map onto BEP 44: an immutable item is put with `put_immutable` (the
//! engine's key is SHA-1 of the bencoded value, which is BEP 44's target); a mutable item is
//! signed by one workload key pair shared by the overlay, with the engine's key as the salt, so
//! every node can tell a mutable key from an immutable one through the shared registry.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;
use std::sync::Arc;

use dht_proto::bep44::MutableItem;
use dht_proto::id::ID_BITS;
use dht_proto::lookup::TraceEvent;
use dht_proto::message::NodeInfo;
use dht_proto::node::{Config, Event, Node, Outcome};
use dht_proto::{Id, Instant};
use ed25519_dalek::SigningKey;

use crate::adversary::{
    behave, is_adversary, targeted_id, AdversaryConfig, Context, Kind as AdversaryKind, Ledger,
    Tally, Verdict,
};
use crate::engine::prefetch::prefetch_lines;
use crate::overlays::overlay::{Delays, NodeIdx, Overlay, OverlayEvent, OverlayNode, QueryId};
use crate::rng::SimRng;

/// The UDP port of every virtual node; indices past 2^24 spill into the next ports.
pub const BASE_PORT: u16 = 6881;

/// Queries whose outcome the adapter still has to translate, per node.
pub const PENDING_QUERIES_MAX: usize = 4096;

/// The virtual address of node `idx`.
pub fn addr_of(idx: NodeIdx) -> SocketAddr {
    let b = idx.to_be_bytes();
    let port = BASE_PORT.wrapping_add(b[0] as u16);
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(127, b[1], b[2], b[3]),
        port,
    ))
}

/// First octet of an honest node's public address ([`public_addr_of`]).
const HONEST_FIRST_OCTET: u8 = 11;

/// Honest node indices that have a public address of their own: first octets 11 to 110,
/// which hold no private, loopback or link-local range (100.64.0.0/10, the carriers' shared
/// space, is among them; it is not local either). Higher honest indices would all share
/// `111.x.y.1`, which [`idx_of`] refuses: an `--ip-diversity` run must create fewer nodes,
/// joins included.
pub const PUBLIC_HONEST_MAX: u32 = 100 << 16;

/// First octet of an adversary's public address ([`public_addr_of`]).
const ADVERSARY_FIRST_OCTET: u8 = 160;

/// The public virtual address of node `idx` (with `dht sim --ip-diversity`). An honest node
/// has a /24 of its own, `(11 + idx / 2^16).b.c.1`, as honest nodes drawn from the whole
/// Internet almost always do; an adversary sits at `(160 + idx / 2^24).a.b.c`, so adversaries
/// whose indices share all but their last 8 bits share a /24, as an attacker's rented hosts
/// do (about 51 per /24 when a fifth of the nodes are adversaries). These addresses are not
/// local, so `dht-proto`'s per-subnet limits of the routing table apply to them.
pub fn public_addr_of(idx: NodeIdx, adversary: bool) -> SocketAddr {
    let b = idx.to_be_bytes();
    let ip = if adversary {
        Ipv4Addr::new(ADVERSARY_FIRST_OCTET.wrapping_add(b[0]), b[1], b[2], b[3])
    } else {
        let hi = (idx >> 16).min(PUBLIC_HONEST_MAX >> 16) as u8;
        Ipv4Addr::new(HONEST_FIRST_OCTET + hi, b[2], b[3], 1)
    };
    SocketAddr::V4(SocketAddrV4::new(ip, BASE_PORT))
}

/// The node index behind a virtual address of either plan ([`addr_of`], [`public_addr_of`]),
/// if it is one.
pub fn idx_of(addr: &SocketAddr) -> Option<NodeIdx> {
    let SocketAddr::V4(a) = addr else { return None };
    let o = a.ip().octets();
    let hi = a.port().checked_sub(BASE_PORT)?;
    if hi > u8::MAX as u16 {
        return None;
    }
    match o[0] {
        127 => Some(u32::from_be_bytes([hi as u8, o[1], o[2], o[3]])),
        _ if hi != 0 => None,
        f if (HONEST_FIRST_OCTET..HONEST_FIRST_OCTET + 100).contains(&f) && o[3] == 1 => {
            Some(((f - HONEST_FIRST_OCTET) as u32) << 16 | (o[1] as u32) << 8 | o[2] as u32)
        }
        f if f >= ADVERSARY_FIRST_OCTET => Some(u32::from_be_bytes([
            f - ADVERSARY_FIRST_OCTET,
            o[1],
            o[2],
            o[3],
        ])),
        _ => None,
    }
}

/// How a run maps node indices to addresses.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// [`addr_of`]: loopback, exempt from the per-subnet limits.
    Loopback,
    /// [`public_addr_of`], adversaries picked as [`is_adversary`] picks them.
    Public { seed: u64, fraction: f64 },
}

impl Plan {
    #[inline]
    fn addr(&self, idx: NodeIdx) -> SocketAddr {
        match *self {
            Plan::Loopback => addr_of(idx),
            Plan::Public { seed, fraction } => {
                public_addr_of(idx, is_adversary(seed, idx, fraction))
            }
        }
    }
}

/// State shared by all nodes of one overlay: the workload's signing key and which keys are
/// mutable items.
#[derive(Debug)]
struct Shared {
    key: SigningKey,
    mutable: RefCell<BTreeSet<Id>>,
    /// Steps of the traced lookups that ended ([`KademliaNode::lookup_traced`]), by (node,
    /// query); kept here rather than in the nodes so that untraced runs pay nothing per node.
    traces: RefCell<BTreeMap<(Id, QueryId), Vec<TraceEvent>>>,
    /// The run's adversaries (None: every node is honest).
    adversaries: Option<Adversaries>,
    /// The address plan.
    plan: Plan,
}

/// The adversaries of a run: who they are, what they know together, what they did.
#[derive(Debug)]
struct Adversaries {
    config: AdversaryConfig,
    /// The run's seed, which picks them ([`is_adversary`]).
    seed: u64,
    ledger: RefCell<Ledger>,
}

/// The behaviour layer of an adversary node.
#[derive(Debug)]
struct Liar {
    idx: NodeIdx,
    /// The lying answer to send: at most one, since the engine drains the node after every
    /// datagram it hands it.
    reply: Option<(NodeIdx, Vec<u8>)>,
}

/// The Kademlia overlay: makes [`KademliaNode`]s with one [`Config`].
#[derive(Debug, Clone)]
pub struct Kademlia {
    /// Settings of every node, one copy for all.
    pub config: Arc<Config>,
    shared: Rc<Shared>,
}

impl Kademlia {
    /// Mainline's settings (k = 8, α = 3), with the workload key derived from `seed`.
    pub fn new(seed: u64) -> Self {
        Self::with_config(Config::default(), seed)
    }

    /// Custom settings.
    pub fn with_config(config: Config, seed: u64) -> Self {
        Self::with_adversaries(config, seed, None, false)
    }

    /// Custom settings, with a fraction of the nodes made adversaries ([`crate::adversary`]);
    /// `seed` is the run's, which picks them. With `public_addresses`, nodes live at
    /// [`public_addr_of`]'s addresses, where the routing table's per-subnet limits apply
    /// (`config`'s rate and upload limits apply there too: turn them off for a simulation).
    pub fn with_adversaries(
        config: Config,
        seed: u64,
        adversary: Option<AdversaryConfig>,
        public_addresses: bool,
    ) -> Self {
        let plan = if public_addresses {
            Plan::Public {
                seed,
                fraction: adversary.map_or(0.0, |a| a.fraction),
            }
        } else {
            Plan::Loopback
        };
        let mut rng = SimRng::new(seed ^ 0x4b41_444d);
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rng, &mut secret);
        Kademlia {
            config: Arc::new(config),
            shared: Rc::new(Shared {
                key: SigningKey::from_bytes(&secret),
                mutable: RefCell::new(BTreeSet::new()),
                traces: RefCell::new(BTreeMap::new()),
                adversaries: adversary.map(|config| Adversaries {
                    config,
                    seed,
                    ledger: RefCell::new(Ledger::default()),
                }),
                plan,
            }),
        }
    }

    /// The steps of the traced lookup `query` of the node with ID `node`, once it has ended
    /// (taken: a second call gives `None`).
    pub fn take_trace(&self, node: Id, query: QueryId) -> Option<Vec<TraceEvent>> {
        self.shared.traces.borrow_mut().remove(&(node, query))
    }
}

/// What a node-level query stands for in the overlay trait.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Lookup,
    Put,
    Get,
}

/// One simulated Kademlia node.
#[derive(Debug)]
pub struct KademliaNode {
    node: Node,
    shared: Rc<Shared>,
    /// Node query id -> (engine key, kind); the node's query ids are the overlay's.
    pending: BTreeMap<QueryId, (Id, Kind)>,
    /// Events produced by the adapter itself (refused commands).
    events: VecDeque<OverlayEvent>,
    /// Set for an adversary.
    liar: Option<Box<Liar>>,
}

impl KademliaNode {
    /// The wrapped node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    fn track(&mut self, q: QueryId, key: Id, kind: Kind) {
        if self.pending.len() < PENDING_QUERIES_MAX {
            self.pending.insert(q, (key, kind));
        }
    }

    /// Starts a lookup like [`OverlayNode::lookup`] that records every step; the steps are
    /// kept for [`Kademlia::take_trace`] when it ends.
    pub fn lookup_traced(&mut self, now: Instant, key: Id) -> QueryId {
        let q = self.node.find_node_traced(now, key);
        self.track(q, key, Kind::Lookup);
        q
    }

    /// The engine starts the workload only at honest nodes (`Sim::origin`): the checkers
    /// judge honest nodes' commands, and an adversary's own would be judged as if honest.
    fn assert_honest_origin(&self) {
        debug_assert!(self.liar.is_none(), "a workload command at an adversary");
    }

    /// Lets the behaviour layer of an adversary decide on `msg`; true if it took it.
    fn lie(&mut self, now: Instant, from: NodeIdx, msg: &[u8]) -> bool {
        let (Some(liar), Some(a)) = (self.liar.as_mut(), self.shared.adversaries.as_ref()) else {
            return false;
        };
        let mut ledger = a.ledger.borrow_mut();
        let Ledger { colluders, tally } = &mut *ledger;
        let plan = self.shared.plan;
        let addr = move |i: NodeIdx| plan.addr(i);
        let cx = Context {
            config: &a.config,
            idx: liar.idx,
            node: &self.node,
            colluders,
            addr_of: &addr,
            now,
        };
        match behave(&cx, msg, &mut tally.mischief) {
            Verdict::Honest => false,
            Verdict::Silent => true,
            Verdict::Reply(bytes) => {
                liar.reply = Some((from, bytes));
                true
            }
        }
    }

    fn translate(&mut self, mut ev: Event) -> Option<OverlayEvent> {
        let (key, kind) = self.pending.remove(&ev.query)?;
        if let Some(a) = &self.shared.adversaries {
            a.ledger.borrow_mut().tally.forgeries_refused += ev.stats.forgeries as u64;
        }
        if let Some(trace) = ev.trace.take() {
            // Only lookups started by `lookup_traced` carry a trace.
            self.shared
                .traces
                .borrow_mut()
                .insert((self.node.id(), ev.query), trace);
        }
        let hops = ev.stats.hops;
        let messages = ev.stats.messages + ev.stats.responses;
        Some(match (kind, ev.outcome) {
            (Kind::Lookup, Outcome::FindNode { closest }) => OverlayEvent::LookupDone {
                query: ev.query,
                key,
                ok: !closest.is_empty(),
                found: closest.iter().filter_map(|n| idx_of(&n.addr)).collect(),
                hops,
                messages,
            },
            (Kind::Lookup, _) => OverlayEvent::LookupDone {
                query: ev.query,
                key,
                ok: false,
                found: Vec::new(),
                hops,
                messages,
            },
            (Kind::Put, Outcome::Stored { stored_at, .. }) => OverlayEvent::PutDone {
                query: ev.query,
                key,
                acked: stored_at,
                answered_after: ev.stats.stored_k_after,
            },
            (Kind::Put, _) => OverlayEvent::PutDone {
                query: ev.query,
                key,
                acked: 0,
                answered_after: None,
            },
            (Kind::Get, Outcome::GetImmutable { value }) => OverlayEvent::GetDone {
                query: ev.query,
                key,
                value: value.map(|v| (v, 0)),
                hops,
                messages,
                answered_after: ev.stats.first_value_after,
            },
            (Kind::Get, Outcome::GetMutable { item }) => OverlayEvent::GetDone {
                query: ev.query,
                key,
                value: item.map(|i| (i.value, i.seq)),
                hops,
                messages,
                answered_after: ev.stats.first_value_after,
            },
            (Kind::Get, _) => OverlayEvent::GetDone {
                query: ev.query,
                key,
                value: None,
                hops,
                messages,
                answered_after: None,
            },
        })
    }

    /// A query id for a command the node refused before starting, reported at once.
    fn refused(&mut self, key: Id, kind: Kind) -> QueryId {
        // Node query ids count up from 1; refused ones count down from the top so they never
        // collide.
        let q = QueryId::MAX - self.events.len() as u64 - self.pending.len() as u64;
        self.events.push_back(match kind {
            Kind::Lookup => OverlayEvent::LookupDone {
                query: q,
                key,
                ok: false,
                found: Vec::new(),
                hops: 0,
                messages: 0,
            },
            Kind::Put => OverlayEvent::PutDone {
                query: q,
                key,
                acked: 0,
                answered_after: None,
            },
            Kind::Get => OverlayEvent::GetDone {
                query: q,
                key,
                value: None,
                hops: 0,
                messages: 0,
                answered_after: None,
            },
        });
        q
    }
}

impl OverlayNode for KademliaNode {
    type Msg = Vec<u8>;

    fn wire_size(msg: &Vec<u8>) -> usize {
        msg.len()
    }

    fn payload_ptr(msg: &Vec<u8>) -> *const u8 {
        msg.as_ptr()
    }

    fn prefetch_state(&self, msg: &Vec<u8>) {
        let Some((id, response)) = sender_id(msg) else {
            return;
        };
        let (p, len) = self.node.routing_table().bucket_memory(&id);
        prefetch_lines(p, len);
        if response {
            let (p, len) = self.node.requests_memory();
            prefetch_lines(p, len.min(REQUEST_LINES_AHEAD * 64));
        }
    }

    fn id(&self) -> Id {
        self.node.id()
    }

    fn handle_message(&mut self, now: Instant, from: NodeIdx, msg: Vec<u8>) {
        if self.liar.is_some() && self.lie(now, from, &msg) {
            return;
        }
        self.node
            .handle_datagram(now, self.shared.plan.addr(from), &msg);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.node.handle_timeout(now);
    }

    fn join(&mut self, now: Instant, via: NodeIdx) {
        // The bootstrap's own event is not tracked, so it is never reported as a lookup.
        self.node.bootstrap(now, &[], &[self.shared.plan.addr(via)]);
    }

    fn lookup(&mut self, now: Instant, key: Id) -> QueryId {
        self.assert_honest_origin();
        let q = self.node.find_node(now, key);
        self.track(q, key, Kind::Lookup);
        q
    }

    fn put(&mut self, now: Instant, key: Id, value: Vec<u8>, seq: i64) -> QueryId {
        self.assert_honest_origin();
        if seq == 0 {
            return match self.node.put_immutable(now, value) {
                Ok((_, q)) => {
                    self.track(q, key, Kind::Put);
                    q
                }
                Err(_) => self.refused(key, Kind::Put),
            };
        }
        self.shared.mutable.borrow_mut().insert(key);
        let item = match MutableItem::sign(&self.shared.key, key.as_bytes(), seq, value) {
            Ok(i) => i,
            Err(_) => return self.refused(key, Kind::Put),
        };
        match self.node.put_mutable(now, item, None) {
            Ok(q) => {
                self.track(q, key, Kind::Put);
                q
            }
            Err(_) => self.refused(key, Kind::Put),
        }
    }

    fn get(&mut self, now: Instant, key: Id) -> QueryId {
        self.assert_honest_origin();
        let mutable = self.shared.mutable.borrow().contains(&key);
        let q = if mutable {
            let pk = self.shared.key.verifying_key().to_bytes();
            self.node.get_mutable(now, pk, key.as_bytes())
        } else {
            self.node.get_immutable(now, key)
        };
        self.track(q, key, Kind::Get);
        q
    }

    fn poll_transmit(&mut self) -> Option<(NodeIdx, Vec<u8>)> {
        // A transmit to an address outside the virtual network (none should exist) is skipped;
        // the loop is bounded by the node's own queue.
        if let Some(r) = self.liar.as_mut().and_then(|l| l.reply.take()) {
            return Some(r);
        }
        loop {
            let t = self.node.poll_transmit()?;
            if let Some(to) = idx_of(&t.to) {
                return Some((to, t.data));
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout()
    }

    fn poll_event(&mut self) -> Option<OverlayEvent> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        // Events of commands the node started itself (bootstrap) are skipped; bounded by the
        // node's event queue.
        loop {
            let ev = self.node.poll_event()?;
            if let Some(e) = self.translate(ev) {
                return Some(e);
            }
        }
    }

    fn state_bytes(&self) -> usize {
        self.node.memory_bytes()
            + self.pending.len() * 64
            + core::mem::size_of::<Self>().saturating_sub(core::mem::size_of::<Node>())
            + self
                .liar
                .as_ref()
                .map_or(0, |_| core::mem::size_of::<Liar>())
    }

    fn is_adversary(&self) -> bool {
        self.liar.is_some()
    }
}

/// The sender's ID of a datagram this node's encoder wrote, and whether it is a response: the
/// `id` of the first inner dictionary (`a` of a query, `r` of a response). It is looked for only
/// where the encoder puts it: after `d1:ad` or `d1:rd`, or after a 6- or 18-byte `ip` and
/// `1:rd` (a scan of the first bytes for it cost more than the rest of the prefetch hint).
/// `None` elsewhere.
fn sender_id(msg: &[u8]) -> Option<(Id, bool)> {
    const KEY: &[u8] = b"2:id20:";
    const AT: [usize; 3] = [5, 17, 30];
    let at = AT
        .into_iter()
        .find(|&at| msg.get(at..at + KEY.len()) == Some(KEY))?;
    let id = msg.get(at + KEY.len()..at + KEY.len() + 20)?;
    // The dictionary's key, `a` or `r`, is two bytes before it opens.
    let response = msg.get(at - 2) == Some(&b'r');
    Some((Id(<[u8; 20]>::try_from(id).ok()?), response))
}

/// Lines of a node's in-flight requests asked for before a response to it is handled: the
/// binary search that matches the response reads a few of a busy node's entries.
const REQUEST_LINES_AHEAD: usize = 8;

impl Overlay for Kademlia {
    type Node = KademliaNode;

    fn name(&self) -> &'static str {
        "kademlia"
    }

    fn new_node(&self, idx: NodeIdx, seed: u64) -> KademliaNode {
        let mut rng = SimRng::new(seed);
        let mut id = Id::random(&mut rng);
        let adversary = self
            .shared
            .adversaries
            .as_ref()
            .filter(|a| is_adversary(a.seed, idx, a.config.fraction));
        let liar = adversary.map(|a| {
            if let (AdversaryKind::Targeted, Some(t)) = (a.config.kind, a.config.target) {
                id = targeted_id(&t, &id);
            }
            let mut ledger = a.ledger.borrow_mut();
            ledger.colluders.insert(idx, id);
            ledger.tally.created += 1;
            Box::new(Liar { idx, reply: None })
        });
        // Nodes are created with the origin as `now`: the node only uses it to spread its first
        // maintenance, which then runs at its first wake-up.
        let node = Node::new(self.config.clone(), id, rng.next_word(), Instant::ZERO);
        KademliaNode {
            node,
            shared: self.shared.clone(),
            pending: BTreeMap::new(),
            events: VecDeque::new(),
            liar,
        }
    }

    fn converge(&self, nodes: &mut [(NodeIdx, &mut KademliaNode)], latency: &dyn Delays) -> bool {
        // Each node's table is what a long-stable network gives it: in every bucket up to k
        // contacts drawn at random from all the live nodes of that bucket's range (with
        // proximity neighbour selection, the k nearest of PROXIMITY_CANDIDATES times k so
        // drawn), entered as if they had just answered (`Node::restore_contact`). See
        // `fill_tables`.
        // The live IDs sorted, each with its node's table: neighbours share most of their
        // binary searches.
        let mut pairs: Vec<((Id, NodeIdx), &mut Node)> = nodes
            .iter_mut()
            .map(|(i, n)| ((n.id(), *i), &mut n.node))
            .collect();
        pairs.sort_unstable_by_key(|(key, _)| *key);
        let (sorted, mut tables): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        let plan = self.shared.plan;
        let draw = if self.config.routing.proximity {
            PROXIMITY_CANDIDATES
        } else {
            1
        };
        fill_tables(
            &sorted,
            &mut tables,
            self.config.k.max(1),
            draw,
            &|i| plan.addr(i),
            latency,
        );
        true
    }

    fn predicted_hops(&self, n: u64) -> f64 {
        (n.max(2) as f64).log2() / (1.0 + (self.config.k.max(1) as f64).log2())
    }

    fn node_down(&self, idx: NodeIdx, node: &KademliaNode) {
        if let (Some(_), Some(a)) = (&node.liar, &self.shared.adversaries) {
            a.ledger.borrow_mut().colluders.remove(idx, node.id());
        }
    }

    fn node_up(&self, idx: NodeIdx, node: &KademliaNode) {
        if let (Some(_), Some(a)) = (&node.liar, &self.shared.adversaries) {
            a.ledger.borrow_mut().colluders.insert(idx, node.id());
        }
    }

    fn adversary_tally(&self) -> Option<Tally> {
        let a = self.shared.adversaries.as_ref()?;
        let ledger = a.ledger.borrow();
        Some(ledger.tally)
    }
}

/// How many nodes per place a converged table chooses from under proximity neighbour
/// selection (`RoutingConfig::proximity`): each bucket holds the `k` nodes of least latency
/// among `4 k` drawn at random from its range. It models a node that has run long enough to
/// have timed four times as many nodes of each bucket as the bucket holds and kept the fastest
/// (the node's own rule swaps a contact for one twice as fast). A far bucket covers a large
/// share of the network, so this is a modest assumption there; a near bucket's range often
/// holds fewer nodes, and then all of them are candidates.
pub const PROXIMITY_CANDIDATES: usize = 4;

/// Fills the tables of `sorted`'s nodes (`tables[i]` is the node of `sorted[i]`): in every
/// bucket up to `k` contacts drawn at random from all of `sorted`'s nodes in that bucket's
/// range; with `draw` above 1, the `k` of least `latency` from `draw × k` so drawn.
///
/// In the sorted array of the IDs the nodes that share our first `depth` bits are one run,
/// which bit `depth` cuts into our side and the bucket's range; so a table costs one binary
/// search per bucket, on a single bit. Neighbours in `sorted` share their first runs: where
/// two IDs agree on their first `d` bits, their cuts at depths up to `d` are the same, so
/// they are kept from the previous node and only the deeper ones are searched again.
fn fill_tables(
    sorted: &[(Id, NodeIdx)],
    tables: &mut [&mut Node],
    k: usize,
    draw: usize,
    addr_of: &dyn Fn(NodeIdx) -> SocketAddr,
    latency: &dyn Delays,
) {
    let mut picks: Vec<usize> = Vec::with_capacity(draw * k);
    let mut keyed: Vec<u128> = Vec::with_capacity(draw * k);
    // `cuts[d]`: the run at depth `d` and where bit `d` cuts it, for the previous node.
    let mut cuts: Vec<(usize, usize, usize)> = Vec::with_capacity(ID_BITS);
    let mut prev: Option<Id> = None;
    for (i, node) in tables.iter_mut().enumerate() {
        let own = sorted[i].0;
        let shared = prev.map_or(0, |p| common_prefix_bits(&p, &own) + 1);
        cuts.truncate(shared);
        prev = Some(own);
        let mut rng = SimRng::new(u64::from_be_bytes(
            own.0[..8].try_into().expect("an ID has 20 bytes"),
        ));
        let (mut lo, mut hi) = (0, sorted.len());
        for depth in 0..ID_BITS {
            let mid = match cuts.get(depth) {
                Some(&(_, _, mid)) => mid,
                None => {
                    let mid = lo + sorted[lo..hi].partition_point(|(id, _)| !bit(id, depth));
                    cuts.push((lo, hi, mid));
                    mid
                }
            };
            debug_assert_eq!((cuts[depth].0, cuts[depth].1), (lo, hi));
            let (range, ours) = if bit(&own, depth) {
                ((lo, mid), (mid, hi))
            } else {
                ((mid, hi), (lo, mid))
            };
            sample_distinct(&mut rng, range.0, range.1, draw * k, &mut picks);
            if picks.len() > k {
                let me = sorted[i].1;
                // One latency per candidate: each reads two nodes' places, a cache miss at a
                // million nodes, so the choice must not compute them again; the keys live in
                // one buffer for the whole build.
                keyed.clear();
                // The candidates' entries first, then their places, each all at once, so that
                // the misses overlap instead of each latency waiting for its own.
                for &p in &picks {
                    crate::engine::prefetch::prefetch(&sorted[p]);
                }
                for &p in &picks {
                    latency.prefetch(sorted[p].1);
                }
                // (latency, position) in one integer: the same order as the pair, and
                // cheaper to compare. Positions are distinct, so the k least are one set
                // whatever the method, taken out before only they are sorted.
                keyed.extend(
                    picks
                        .iter()
                        .map(|&p| latency.delay(me, sorted[p].1).as_nanos() << 64 | p as u128),
                );
                keyed.select_nth_unstable(k - 1);
                keyed[..k].sort_unstable();
                picks.clear();
                picks.extend(keyed[..k].iter().map(|&key| key as u64 as usize));
            }
            for &p in &picks {
                let (id, idx) = sorted[p];
                let info = NodeInfo {
                    id,
                    addr: addr_of(idx),
                };
                node.restore_contact(Instant::ZERO, info);
            }
            (lo, hi) = ours;
            // Done once no other node shares more than `depth` bits with us.
            if hi - lo <= 1 {
                break;
            }
        }
    }
}

/// How many leading bits `a` and `b` share (`ID_BITS` if they are equal).
fn common_prefix_bits(a: &Id, b: &Id) -> usize {
    a.0.iter()
        .zip(&b.0)
        .position(|(x, y)| x != y)
        .map_or(ID_BITS, |i| {
            i * 8 + (a.0[i] ^ b.0[i]).leading_zeros() as usize
        })
}

/// Bit `depth` of `id`, counted from the most significant.
fn bit(id: &Id, depth: usize) -> bool {
    id.0[depth / 8] & (0x80 >> (depth % 8)) != 0
}

/// Up to `k` distinct positions in `start..end`, drawn at random (all of them if there are no
/// more than `k`), into `out`.
fn sample_distinct(rng: &mut SimRng, start: usize, end: usize, k: usize, out: &mut Vec<usize>) {
    out.clear();
    let n = end.saturating_sub(start);
    if n <= k {
        out.extend(start..end);
        return;
    }
    // Rejection: the range has more than k members, so this ends quickly; the bound keeps it
    // finite whatever the generator does.
    let mut tries = 64 * k;
    while out.len() < k && tries > 0 {
        tries -= 1;
        let p = start + rng.below(n as u64) as usize;
        if !out.contains(&p) {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dht_proto::routing::Standing;

    #[test]
    fn the_sender_id_and_kind_are_found_where_the_encoder_puts_them() {
        use dht_proto::message::{Body, Message, Method, Query, Response};
        let sender = Id([0x5a; 20]);
        let envelope = |requester_ip: Option<SocketAddr>, body| Message {
            transaction_id: b"aa".to_vec(),
            version: Some(b"RD\x00\x01".to_vec()),
            requester_ip,
            read_only: false,
            body,
        };
        let query = Body::Query(Query {
            sender_id: sender,
            method: Method::Ping,
        });
        let response = || {
            Body::Response(Response {
                sender_id: sender,
                ..Response::default()
            })
        };
        let v4: SocketAddr = "10.1.2.3:6881".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:6881".parse().unwrap();
        for (msg, is_response) in [
            (envelope(None, query), false),
            (envelope(None, response()), true),
            (envelope(Some(v4), response()), true),
            (envelope(Some(v6), response()), true),
        ] {
            let found = sender_id(&msg.encode());
            assert_eq!(found, Some((sender, is_response)), "{msg:?}");
        }
        assert_eq!(sender_id(b"d1:ei201e1:t2:aa1:y1:ee"), None);
    }

    #[test]
    fn common_prefixes_are_counted_in_bits() {
        let a = Id([0u8; 20]);
        let mut b = a;
        assert_eq!(common_prefix_bits(&a, &b), ID_BITS);
        b.0[19] = 1;
        assert_eq!(common_prefix_bits(&a, &b), ID_BITS - 1);
        b.0[2] = 0x20;
        assert_eq!(common_prefix_bits(&a, &b), 18);
        b.0[0] = 0x80;
        assert_eq!(common_prefix_bits(&a, &b), 0);
    }

    /// `count` nodes of `overlay` after its converged start (latency zero everywhere).
    fn converged(overlay: &Kademlia, count: u32) -> Vec<KademliaNode> {
        let mut nodes: Vec<KademliaNode> = (0..count)
            .map(|i| overlay.new_node(i, crate::rng::mix3(3, 1, i as u64)))
            .collect();
        let mut refs: Vec<(NodeIdx, &mut KademliaNode)> = nodes
            .iter_mut()
            .enumerate()
            .map(|(i, n)| (i as NodeIdx, n))
            .collect();
        assert!(overlay.converge(&mut refs, &|_: NodeIdx, _: NodeIdx| {
            core::time::Duration::ZERO
        }));
        nodes
    }

    /// The most contacts from one /24 in any honest node's table, and in any one bucket of
    /// it, after a converged start of 2,000 nodes of which half are adversaries.
    fn crowding(public: bool) -> (usize, usize) {
        let adversary = AdversaryConfig {
            kind: AdversaryKind::Eclipse,
            fraction: 0.5,
            target: None,
        };
        let mut config = Config::default();
        config.rate_limit.per_second = 0;
        let overlay = Kademlia::with_adversaries(config, 3, Some(adversary), public);
        let nodes = converged(&overlay, 2000);
        let subnet = |a: SocketAddr| match a {
            SocketAddr::V4(v) => u32::from_be_bytes(v.ip().octets()) >> 8,
            SocketAddr::V6(_) => 0,
        };
        let most = |addrs: &mut dyn Iterator<Item = SocketAddr>| {
            let mut count: BTreeMap<u32, usize> = BTreeMap::new();
            for a in addrs {
                *count.entry(subnet(a)).or_default() += 1;
            }
            count.into_values().max().unwrap_or(0)
        };
        let (mut table_max, mut bucket_max) = (0, 0);
        for n in nodes.iter().filter(|n| !n.is_adversary()) {
            let t = n.node().routing_table();
            table_max = table_max.max(most(&mut t.contacts().map(|c| c.addr())));
            for b in 0..t.bucket_count() {
                bucket_max = bucket_max.max(most(&mut t.bucket(b).iter().map(|c| c.addr())));
            }
        }
        (table_max, bucket_max)
    }

    #[test]
    fn with_public_addresses_the_tables_limit_each_adversary_subnet() {
        use dht_proto::routing::{SUBNET_PER_BUCKET_MAX, SUBNET_PER_TABLE_MAX};
        let (table, bucket) = crowding(true);
        assert!(
            table <= SUBNET_PER_TABLE_MAX,
            "{table} from one /24 in a table"
        );
        assert!(
            bucket <= SUBNET_PER_BUCKET_MAX,
            "{bucket} from one /24 in a bucket"
        );
        // On loopback the limits do not apply, and a table takes many from one /24.
        let (table, bucket) = crowding(false);
        assert!(
            table > SUBNET_PER_TABLE_MAX && bucket > SUBNET_PER_BUCKET_MAX,
            "{table} {bucket}"
        );
    }

    #[test]
    fn with_proximity_a_converged_bucket_keeps_the_fastest_of_its_candidates() {
        use dht_proto::routing::K;
        // A delay that grows with the far end's index: the fastest are the lowest indices.
        let overlay = Kademlia::new(3);
        let count = 400u32;
        let mut nodes: Vec<KademliaNode> = (0..count)
            .map(|i| overlay.new_node(i, crate::rng::mix3(3, 1, i as u64)))
            .collect();
        let ids: Vec<Id> = nodes.iter().map(|n| n.id()).collect();
        let mut refs: Vec<(NodeIdx, &mut KademliaNode)> = nodes
            .iter_mut()
            .enumerate()
            .map(|(i, n)| (i as NodeIdx, n))
            .collect();
        let delay =
            |a: NodeIdx, b: NodeIdx| core::time::Duration::from_micros(1_000 * b as u64 + a as u64);
        assert!(overlay.converge(&mut refs, &delay));
        drop(refs);
        let mut checked = 0;
        for (i, n) in nodes.iter().enumerate() {
            let table = n.node().routing_table();
            let last = table.bucket_count() - 1;
            for b in 0..last {
                let mut in_range: Vec<usize> = (0..ids.len())
                    .filter(|&j| j != i)
                    .filter(|&j| ids[j].distance(&ids[i]).leading_zeros() == b)
                    .collect();
                // Only a range small enough for all of it to be drawn has one right answer.
                if in_range.len() <= K || in_range.len() > PROXIMITY_CANDIDATES * K {
                    continue;
                }
                in_range.truncate(K);
                let mut kept: Vec<usize> = table
                    .bucket(b)
                    .iter()
                    .filter_map(|c| idx_of(&c.info().addr))
                    .map(|j| j as usize)
                    .collect();
                kept.sort_unstable();
                assert_eq!(kept, in_range, "node {i} bucket {b}");
                checked += 1;
            }
        }
        assert!(
            checked > 100,
            "only {checked} buckets had a single right answer"
        );
    }

    #[test]
    fn converged_tables_fill_every_bucket_from_its_whole_range() {
        let overlay = Kademlia::new(3);
        let nodes = converged(&overlay, 2000);
        let ids: Vec<Id> = nodes.iter().map(|n| n.id()).collect();
        let now = Instant::ZERO;
        // Tables are filled in ID order, reusing the neighbour's cuts: check many of them.
        for (i, n) in nodes.iter().enumerate().step_by(13) {
            let table = n.node().routing_table();
            let own = ids[i];
            // Bucket b holds min(k, live nodes sharing exactly b bits with us), and the last
            // bucket every node sharing more.
            let last = table.bucket_count() - 1;
            for b in 0..=last {
                let in_range = ids
                    .iter()
                    .filter(|x| **x != own)
                    .map(|x| x.distance(&own).leading_zeros().min(last))
                    .filter(|&d| d == b)
                    .count();
                assert_eq!(
                    table.bucket(b).len(),
                    in_range.min(8),
                    "node {i} bucket {b}"
                );
            }
            for c in table.contacts() {
                assert_eq!(table.standing(c, now), Standing::Good, "node {i}");
                assert_eq!(idx_of(&c.addr()).map(|j| ids[j as usize]), Some(c.id));
            }
        }
    }

    #[test]
    fn virtual_addresses_round_trip_for_every_index_range() {
        for idx in [
            0u32,
            1,
            255,
            256,
            65_535,
            1 << 20,
            (1 << 24) - 1,
            1 << 24,
            3 << 24,
        ] {
            assert_eq!(idx_of(&addr_of(idx)), Some(idx), "{idx}");
            assert_eq!(idx_of(&public_addr_of(idx, true)), Some(idx), "{idx}");
            if idx < PUBLIC_HONEST_MAX {
                assert_eq!(idx_of(&public_addr_of(idx, false)), Some(idx), "{idx}");
            }
        }
        // Public addresses are not local, honest ones a /24 each, adversaries' shared.
        for idx in [0u32, 1, 255, 70_000, 1 << 22] {
            let ip = public_addr_of(idx, false).ip();
            assert!(!dht_proto::id::is_local_address(&ip), "{ip}");
            assert!(!dht_proto::id::is_local_address(
                &public_addr_of(idx, true).ip()
            ));
        }
        let subnet = |a: SocketAddr| match a {
            SocketAddr::V4(v) => v.ip().octets()[..3].to_vec(),
            _ => unreachable!(),
        };
        assert_ne!(
            subnet(public_addr_of(256, false)),
            subnet(public_addr_of(257, false))
        );
        assert_eq!(
            subnet(public_addr_of(256, true)),
            subnet(public_addr_of(257, true))
        );
        assert_eq!(idx_of(&"10.0.0.1:6881".parse().unwrap()), None);
        assert_eq!(idx_of(&"127.0.0.1:80".parse().unwrap()), None);
    }
}
