//! A minimal discrete-event driver for any [`Overlay`]: a fixed one-way latency, no loss, virtual
//! time. It is the overlays' own test harness and the tool for static measurements that need no
//! network model (hops, messages, success); the simulator's engine is the real thing.

use std::collections::BTreeMap;
use std::time::Duration;

use dht_proto::time::Instant;
use dht_proto::Id;

use crate::overlays::overlay::{NodeIdx, Overlay, OverlayEvent, OverlayNode, QueryId};

/// Stream label of the per-node seeds [`MiniNet`] hands its nodes.
const NODE_SEED_STREAM: u64 = 0x4e4f_4445;

/// Events one [`MiniNet::run_until`] call processes at most, so a node that asks to wake in the
/// past forever cannot hang a test.
pub const STEPS_MAX: u64 = 2_000_000_000;

enum Ev<M> {
    Deliver {
        to: NodeIdx,
        from: NodeIdx,
        msg: M,
        id: u64,
    },
    Wake(NodeIdx),
}

/// A finished command, with the node that issued it and when it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The node that issued the command.
    pub node: NodeIdx,
    /// When its event came out.
    pub at: Instant,
    /// The event.
    pub event: OverlayEvent,
}

/// One message as [`MiniNet::tap`] sees it when it is sent.
#[derive(Debug)]
pub struct Sent<'a, M> {
    /// The message's number: unique and increasing in sending order.
    pub id: u64,
    /// When it was sent (it arrives [`MiniNet::latency`] later).
    pub at: Instant,
    /// The sender.
    pub from: NodeIdx,
    /// The receiver.
    pub to: NodeIdx,
    /// The message whose delivery the sender was handling when it sent this one; `None` when
    /// it was sent from a timeout or a command. Following causes back gives a message's chain.
    pub cause: Option<u64>,
    /// The message.
    pub msg: &'a M,
}

/// A callback that sees every message sent, for tracing one search.
pub type Tap<M> = Box<dyn FnMut(&Sent<'_, M>)>;

/// A network of overlay nodes on virtual time.
///
/// Calling protocol: build with [`MiniNet::new`], put nodes in with [`MiniNet::converge`] or
/// [`MiniNet::join`], issue commands through [`MiniNet::with`], advance with
/// [`MiniNet::run_until`] or [`MiniNet::run_for`], read [`MiniNet::finished`].
pub struct MiniNet<O: Overlay> {
    /// The overlay factory.
    pub overlay: O,
    /// Nodes by address; `None` for a dead node (messages to it are dropped).
    pub nodes: Vec<Option<O::Node>>,
    /// Virtual time.
    pub now: Instant,
    /// One-way latency of every message.
    pub latency: Duration,
    /// Messages sent so far.
    pub messages: u64,
    /// Bytes sent so far.
    pub bytes: u64,
    /// Finished commands, in order.
    pub finished: Vec<Finished>,
    /// Sees every message sent, when set (the drawing of one search); `None` costs one branch
    /// per message.
    pub tap: Option<Tap<<O::Node as OverlayNode>::Msg>>,
    /// The message being delivered while a node handles it, for [`Sent::cause`].
    cause: Option<u64>,
    queue: BTreeMap<(Instant, u64), Ev<<O::Node as OverlayNode>::Msg>>,
    wake_at: Vec<Option<Instant>>,
    seq: u64,
    seed: u64,
}

impl<O: Overlay> MiniNet<O> {
    /// `n` fresh nodes (addresses 0..n) seeded from `seed`.
    pub fn new(overlay: O, n: u32, seed: u64, latency: Duration) -> Self {
        let nodes = (0..n)
            .map(|i| Some(overlay.new_node(i, crate::rng::mix3(seed, NODE_SEED_STREAM, i as u64))))
            .collect();
        MiniNet {
            overlay,
            nodes,
            now: Instant::ZERO,
            latency,
            messages: 0,
            bytes: 0,
            finished: Vec::new(),
            tap: None,
            cause: None,
            queue: BTreeMap::new(),
            wake_at: vec![None; n as usize],
            seq: 0,
            seed,
        }
    }

    /// Converges every live node with a latency of `latency(a, b)`; returns the overlay's answer.
    pub fn converge(&mut self, latency: &dyn Fn(NodeIdx, NodeIdx) -> Duration) -> bool {
        let mut refs: Vec<(NodeIdx, &mut O::Node)> = self
            .nodes
            .iter_mut()
            .enumerate()
            .filter_map(|(i, n)| n.as_mut().map(|n| (i as NodeIdx, n)))
            .collect();
        let ok = self.overlay.converge(&mut refs, &latency);
        for i in 0..self.nodes.len() {
            self.after(i as NodeIdx);
        }
        ok
    }

    /// Adds a fresh node and has it join through `via`; returns its address.
    pub fn join(&mut self, via: NodeIdx) -> NodeIdx {
        let idx = self.nodes.len() as NodeIdx;
        let seed = crate::rng::mix3(self.seed, NODE_SEED_STREAM, idx as u64);
        self.nodes.push(Some(self.overlay.new_node(idx, seed)));
        self.wake_at.push(None);
        let now = self.now;
        self.with(idx, |n| n.join(now, via));
        idx
    }

    /// Kills node `idx` without notice.
    pub fn kill(&mut self, idx: NodeIdx) {
        self.nodes[idx as usize] = None;
    }

    /// Whether node `idx` is alive.
    pub fn alive(&self, idx: NodeIdx) -> bool {
        self.nodes.get(idx as usize).is_some_and(|n| n.is_some())
    }

    /// Addresses of the live nodes.
    pub fn live(&self) -> Vec<NodeIdx> {
        (0..self.nodes.len() as NodeIdx)
            .filter(|&i| self.alive(i))
            .collect()
    }

    /// The live node at `idx`.
    pub fn node(&self, idx: NodeIdx) -> Option<&O::Node> {
        self.nodes.get(idx as usize).and_then(|n| n.as_ref())
    }

    /// Calls `f` on node `idx` at the current time, then collects what it wants to send.
    pub fn with<R>(&mut self, idx: NodeIdx, f: impl FnOnce(&mut O::Node) -> R) -> Option<R> {
        let r = f(self.nodes.get_mut(idx as usize)?.as_mut()?);
        self.after(idx);
        Some(r)
    }

    /// Starts a lookup for `key` at node `idx`.
    pub fn lookup(&mut self, idx: NodeIdx, key: Id) -> Option<QueryId> {
        let now = self.now;
        self.with(idx, |n| n.lookup(now, key))
    }

    fn after(&mut self, idx: NodeIdx) {
        let Some(Some(node)) = self.nodes.get_mut(idx as usize) else {
            return;
        };
        let at = self.now + self.latency;
        while let Some((to, msg)) = node.poll_transmit() {
            self.messages += 1;
            self.bytes += <O::Node as OverlayNode>::wire_size(&msg) as u64;
            self.seq += 1;
            if let Some(tap) = self.tap.as_mut() {
                tap(&Sent {
                    id: self.seq,
                    at: self.now,
                    from: idx,
                    to,
                    cause: self.cause,
                    msg: &msg,
                });
            }
            let id = self.seq;
            self.queue.insert(
                (at, self.seq),
                Ev::Deliver {
                    to,
                    from: idx,
                    msg,
                    id,
                },
            );
        }
        while let Some(event) = node.poll_event() {
            self.finished.push(Finished {
                node: idx,
                at: self.now,
                event,
            });
        }
        if let Some(t) = node.poll_timeout() {
            let t = t.max(self.now);
            let slot = &mut self.wake_at[idx as usize];
            if !slot.is_some_and(|w| t >= w && w >= self.now) {
                *slot = Some(t);
                self.seq += 1;
                self.queue.insert((t, self.seq), Ev::Wake(idx));
            }
        }
    }

    /// Processes every event up to and including `until`; time ends at `until`.
    pub fn run_until(&mut self, until: Instant) {
        let mut steps = 0u64;
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > until || steps >= STEPS_MAX {
                break;
            }
            steps += 1;
            let ((t, _), ev) = entry.remove_entry();
            self.now = t;
            match ev {
                Ev::Deliver { to, from, msg, id } => {
                    if let Some(Some(n)) = self.nodes.get_mut(to as usize) {
                        n.handle_message(t, from, msg);
                        self.cause = Some(id);
                        self.after(to);
                        self.cause = None;
                    }
                }
                Ev::Wake(i) => {
                    if self.wake_at[i as usize] == Some(t) {
                        self.wake_at[i as usize] = None;
                    }
                    if let Some(Some(n)) = self.nodes.get_mut(i as usize) {
                        n.handle_timeout(t);
                        self.after(i);
                    }
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Takes the finished commands recorded so far.
    pub fn take_finished(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.finished)
    }
}

/// The outcome of a batch of lookups on a [`MiniNet`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LookupStats {
    /// Lookups issued.
    pub issued: u32,
    /// Lookups that reported `ok`.
    pub ok: u32,
    /// Lookups whose answer was the true owner (by the caller's oracle).
    pub correct: u32,
    /// Mean hops of the `ok` lookups.
    pub mean_hops: f64,
    /// Mean messages of the `ok` lookups.
    pub mean_messages: f64,
    /// Fraction of `ok` lookups that took at most one hop.
    pub one_hop_fraction: f64,
    /// Largest hop count seen.
    pub max_hops: u32,
}

/// Issues `count` lookups of random keys from random live nodes, `spacing` apart, runs until
/// they end (at most `settle` after the last), and scores them; `owner(key)` is the oracle.
pub fn run_lookups<O: Overlay>(
    net: &mut MiniNet<O>,
    count: u32,
    seed: u64,
    spacing: Duration,
    settle: Duration,
    owner: &dyn Fn(&Id) -> Option<NodeIdx>,
) -> LookupStats {
    let mut rng = crate::rng::SimRng::new(seed);
    let live = net.live();
    let mut keys = BTreeMap::new();
    for _ in 0..count {
        let from = live[rng.below(live.len() as u64) as usize];
        let key = Id::random(&mut rng);
        if let Some(q) = net.lookup(from, key) {
            keys.insert((from, q), key);
        }
        net.run_for(spacing);
    }
    net.run_for(settle);
    let mut s = LookupStats {
        issued: count,
        ..LookupStats::default()
    };
    let (mut hops, mut msgs, mut one) = (0u64, 0u64, 0u64);
    for f in net.take_finished() {
        if let OverlayEvent::LookupDone {
            query,
            key,
            ok,
            found,
            hops: h,
            messages,
        } = f.event
        {
            if keys.remove(&(f.node, query)).is_none() || !ok {
                continue;
            }
            s.ok += 1;
            hops += h as u64;
            msgs += messages as u64;
            one += (h <= 1) as u64;
            s.max_hops = s.max_hops.max(h);
            if found.first().copied() == owner(&key) {
                s.correct += 1;
            }
        }
    }
    if s.ok > 0 {
        s.mean_hops = hops as f64 / s.ok as f64;
        s.mean_messages = msgs as f64 / s.ok as f64;
        s.one_hop_fraction = one as f64 / s.ok as f64;
    }
    s
}
