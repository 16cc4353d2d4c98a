//! The one trait every simulated overlay implements.
//!
//! An overlay node is a sans-IO state machine in the same handle/poll style as `dht-proto`'s
//! Kademlia node: the engine feeds it messages and timeouts with the virtual time `now`, and
//! drains what it wants to send, when it next wants to wake, and what it has to report.
//!
//! Calling protocol, per node, after any `handle_*` or command call:
//! 1. drain [`OverlayNode::poll_transmit`] until `None` (the engine delivers each message after the
//!    network model's latency, or drops it);
//! 2. drain [`OverlayNode::poll_event`] until `None`;
//! 3. read [`OverlayNode::poll_timeout`] and schedule one wake-up at that instant (calling
//!    `handle_timeout` early or twice must be harmless).

use core::time::Duration;

use dht_proto::time::Instant;
use dht_proto::Id;

/// Index of a simulated node. It is also the node's address in the virtual network.
pub type NodeIdx = u32;

/// A command's handle, unique per node; results come back in [`OverlayEvent`] with it.
pub type QueryId = u64;

/// The one-way delays between nodes that [`Overlay::converge`] chooses neighbours by. Any
/// `Fn(NodeIdx, NodeIdx) -> Duration` is one (tests pass closures); the engine passes its
/// network model, which can also be asked to load a node's place ahead of the question.
pub trait Delays {
    /// The one-way delay from `a` to `b`, without jitter.
    fn delay(&self, a: NodeIdx, b: NodeIdx) -> Duration;

    /// A hint that a delay to or from `b` is asked for soon: starts loading what it reads of
    /// `b`, so that the misses of many such questions overlap. Does nothing by default.
    fn prefetch(&self, _b: NodeIdx) {}
}

impl<F: Fn(NodeIdx, NodeIdx) -> Duration> Delays for F {
    fn delay(&self, a: NodeIdx, b: NodeIdx) -> Duration {
        self(a, b)
    }
}

/// What a command produced, reported once, when it ends.
#[derive(Debug, Clone, PartialEq)]
pub enum OverlayEvent {
    /// A lookup (route to the node or nodes responsible for `key`) ended.
    LookupDone {
        /// The command's handle.
        query: QueryId,
        /// The key that was looked up.
        key: Id,
        /// Whether the overlay believes it reached the responsible node(s).
        ok: bool,
        /// The nodes the overlay returned as responsible for `key`, closest first (Kademlia:
        /// up to k of them; one-owner overlays: one).
        found: Vec<NodeIdx>,
        /// Overlay hops: forwarding steps for recursive overlays, rounds for Kademlia.
        hops: u32,
        /// Messages sent on behalf of this lookup (requests and replies).
        messages: u32,
    },
    /// A put ended; `acked` is how many replicas acknowledged it.
    PutDone {
        /// The command's handle.
        query: QueryId,
        /// The key that was stored.
        key: Id,
        /// Replicas that acknowledged.
        acked: u32,
        /// When the put was answered, if before this event: Kademlia's time until k nodes
        /// acknowledged. None: at this event.
        answered_after: Option<Duration>,
    },
    /// A get ended; `value` is what was found (for mutable items the one with the highest seq).
    GetDone {
        /// The command's handle.
        query: QueryId,
        /// The key asked for.
        key: Id,
        /// The value found, if any, with its sequence number (0 for immutable items).
        value: Option<(Vec<u8>, i64)>,
        /// Overlay hops used.
        hops: u32,
        /// Messages sent on behalf of this get.
        messages: u32,
        /// When the first value verified, if before this event (Kademlia's mutable gets ask on
        /// for a higher seq). None: at this event.
        answered_after: Option<Duration>,
    },
}

/// A simulated overlay node.
///
/// Implementations are deterministic: their randomness comes from a generator seeded at
/// construction, and their iteration order never depends on a hash seed.
pub trait OverlayNode {
    /// The overlay's message. Kademlia's is the real KRPC datagram.
    type Msg;

    /// The bytes `msg` occupies on the wire (for traffic accounting; for Kademlia the datagram's
    /// length, for the others an honest estimate of an equivalent binary encoding).
    fn wire_size(msg: &Self::Msg) -> usize;

    /// Where the message's encoded bytes live on the heap, for the engine's prefetch hint
    /// (never read through); null, the default, for a message without any.
    fn payload_ptr(_msg: &Self::Msg) -> *const u8 {
        core::ptr::null()
    }

    /// Asks the processor to load the state that handling `msg` will read beyond the node's
    /// own lines (for Kademlia, the bucket of the sender). The engine calls it one event ahead,
    /// when the node's lines and the message are already on their way into the cache, so it
    /// should read no more than those. The default does nothing.
    fn prefetch_state(&self, _msg: &Self::Msg) {}

    /// This node's identifier in the shared key space.
    fn id(&self) -> Id;

    /// A message from `from` arrived.
    fn handle_message(&mut self, now: Instant, from: NodeIdx, msg: Self::Msg);

    /// The instant from [`OverlayNode::poll_timeout`] has come (or passed).
    fn handle_timeout(&mut self, now: Instant);

    /// Joins the overlay through a live node `via`.
    fn join(&mut self, now: Instant, via: NodeIdx);

    /// Starts a lookup for `key`.
    fn lookup(&mut self, now: Instant, key: Id) -> QueryId;

    /// Stores `value` under `key` with sequence number `seq` (0 for immutable items).
    fn put(&mut self, now: Instant, key: Id, value: Vec<u8>, seq: i64) -> QueryId;

    /// Fetches the value stored under `key`.
    fn get(&mut self, now: Instant, key: Id) -> QueryId;

    /// Next message to send: (destination, message).
    fn poll_transmit(&mut self) -> Option<(NodeIdx, Self::Msg)>;

    /// When the node next needs [`OverlayNode::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;

    /// Next finished command.
    fn poll_event(&mut self) -> Option<OverlayEvent>;

    /// Approximate heap and inline bytes of this node's state (routing state and stored items),
    /// for the state-per-node figure.
    fn state_bytes(&self) -> usize;

    /// Whether this node is an adversary ([`crate::adversary`]): the workload starts nothing
    /// from it and the checkers judge only honest nodes.
    fn is_adversary(&self) -> bool {
        false
    }
}

/// Makes the nodes of one overlay and, for experiments on a static network, can put every live
/// node directly into the converged state that joins and maintenance would reach.
pub trait Overlay {
    /// The node type.
    type Node: OverlayNode;

    /// The overlay's name as `dht sim --overlay` spells it (`kademlia`, `chord`, ...).
    fn name(&self) -> &'static str;

    /// A fresh node with address `idx` whose randomness is seeded from `seed`.
    fn new_node(&self, idx: NodeIdx, seed: u64) -> Self::Node;

    /// Puts the live nodes into a converged routing state (as if the network had been stable for
    /// a long time), without sending messages. `latency` gives the one-way delay between two
    /// nodes, for overlays that pick close neighbours (Pastry, Kademlia with proximity).
    /// Overlays that have no shortcut return `false` and the engine grows the network by joins
    /// instead.
    fn converge(&self, nodes: &mut [(NodeIdx, &mut Self::Node)], latency: &dyn Delays) -> bool;

    /// The hop count the overlay's paper predicts for a network of `n` nodes, for the plots.
    fn predicted_hops(&self, n: u64) -> f64;

    /// Copies of a lookup's target the workload plants at random live nodes before the lookup,
    /// in a network of `live` nodes. Overlays whose lookups route to the node responsible for a
    /// key return 0 (the default); those whose lookups *search* for an item that some nodes
    /// hold (flooding, random walk) return how many nodes hold it, so that every lookup has
    /// something to find.
    fn lookup_copies(&self, _live: usize) -> u32 {
        0
    }

    /// Puts the target `key` of a coming lookup into `node`'s store (called for
    /// [`Overlay::lookup_copies`] distinct random live nodes).
    fn plant(&self, _node: &mut Self::Node, _key: &Id) {}

    /// Removes a planted target again once its lookup has been judged, so that every lookup
    /// searches for an item with exactly its planted copies and stores do not grow.
    fn unplant(&self, _node: &mut Self::Node, _key: &Id) {}

    /// `node` (index `idx`) left the network; its state may be kept for a rejoin. For
    /// bookkeeping across an overlay's nodes (Kademlia's colluding adversaries).
    fn node_down(&self, _idx: NodeIdx, _node: &Self::Node) {}

    /// `node` (index `idx`) is live again after [`Overlay::node_down`].
    fn node_up(&self, _idx: NodeIdx, _node: &Self::Node) {}

    /// What the overlay's adversaries did, if it has any ([`crate::adversary`]).
    fn adversary_tally(&self) -> Option<crate::adversary::Tally> {
        None
    }
}
