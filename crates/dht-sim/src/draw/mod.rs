//! One search, drawn: the picture of scattered nodes, a search taking hops, and the cycles that
//! flooding and random walks fall into.
//!
//! [`trace_search`] builds a network of N nodes of one overlay on the overlays' own driver
//! ([`MiniNet`](crate::overlays::driver::MiniNet)), puts it in its converged state, runs one
//! lookup from a searcher chosen by the seed, and records every message the lookup caused
//! through the driver's tap. [`render`] and [`render_compare`] turn traces into SVG written by
//! hand: every node is a `<circle class="node" data-idx=..>`, every numbered hop a
//! `<line class="hop" data-step=..>`, so tests and screen readers can find them.
//!
//! Layouts: Kademlia, Chord, Pastry and the one-hop ring on the ring of the key space (a node at
//! the angle of its ID); CAN (d = 2) on its torus, the unit square, zones as rectangles;
//! flooding and random walk on their neighbour graph, laid out by a force-directed relaxation
//! from positions drawn from the seed.

mod layout;
mod svg;
mod trace;

pub use svg::{render, render_compare};
pub use trace::trace_search;

use dht_proto::Id;

use crate::overlays::overlay::NodeIdx;
use crate::overlays::registry::OVERLAYS;

/// The key named by 40 hex digits, as `dht draw --key` takes it.
pub fn key_from_hex(s: &str) -> Option<Id> {
    Id::from_hex(s)
}

/// Nodes a drawing holds at most: beyond it the dots and hops stop being legible.
pub const DRAW_NODES_MAX: u32 = 2_000;

/// Nodes a drawing needs at least (a searcher and someone to find).
pub const DRAW_NODES_MIN: u32 = 2;

/// Why a search could not be traced.
#[derive(Debug, thiserror::Error)]
pub enum DrawError {
    /// The overlay name is not one of [`OVERLAYS`] (`dht draw --compare` lays its panels out
    /// in that order); pick one of those.
    #[error("unknown overlay {0:?}; valid overlays: {list}", list = OVERLAYS.join(", "))]
    UnknownOverlay(String),
    /// N is outside [`DRAW_NODES_MIN`]..=[`DRAW_NODES_MAX`]; choose a size in range.
    #[error(
        "--nodes {0} outside {DRAW_NODES_MIN}..={DRAW_NODES_MAX} (larger drawings are not legible)"
    )]
    Nodes(u32),
    /// The lookup did not end within the run's bound of virtual time (a bug in an overlay).
    #[error("the {0} lookup did not end within {1} s of virtual time")]
    Unfinished(&'static str, u64),
}

/// How the nodes of a trace are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// On the ring of the key space, by ID angle.
    Ring,
    /// On CAN's 2-torus (the unit square), at the centre of each node's zone.
    Torus,
    /// Scattered in the plane, with the neighbour graph drawn.
    Plane,
}

/// A node as drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawNode {
    /// Address in the simulated network.
    pub idx: NodeIdx,
    /// Identifier.
    pub id: Id,
    /// Position in the unit square (ring: on the circle of radius 0.5 around the centre).
    pub x: f64,
    /// Position in the unit square, downwards.
    pub y: f64,
    /// CAN: the node's zones as (x0, y0, x1, y1) in the unit square; empty elsewhere.
    pub zones: Vec<[f64; 4]>,
}

/// What a message did for the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgKind {
    /// Carried the search on: a forward, a flooded query, a walker's step, a Kademlia request.
    Request,
    /// Came back: an acknowledgement, a Kademlia response, a check's answer.
    Reply,
    /// The answer that ended the search at the searcher (the owner's answer, a holder's hit).
    Answer,
    /// A random walker asking its origin whether to go on.
    Check,
}

/// One message of the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// Sender.
    pub from: NodeIdx,
    /// Receiver.
    pub to: NodeIdx,
    /// Its role.
    pub kind: MsgKind,
    /// Whether it lies on the path that found the key (or is its answer); the others led
    /// nowhere and are drawn faint.
    pub useful: bool,
}

/// One numbered hop of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// 1, 2, ...; 0 for Chord's last forward to the owner, which the paper's hop count (and the
    /// simulator's) leaves out.
    pub step: u32,
    /// From.
    pub from: NodeIdx,
    /// To.
    pub to: NodeIdx,
}

/// One search, recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Overlay name as `dht sim --overlay` spells it.
    pub overlay: &'static str,
    /// How to place the nodes.
    pub layout: Layout,
    /// Seed of the network and of the searcher and key.
    pub seed: u64,
    /// The key looked for.
    pub key: Id,
    /// Where the key lies in the layout (ring and torus), in the unit square.
    pub key_at: Option<(f64, f64)>,
    /// One-hop ring: where the owner's token that covers the key lies on the ring (a node
    /// owns the arcs before its 16 tokens, not the arc before its ID).
    pub owner_token_at: Option<(f64, f64)>,
    /// Every node.
    pub nodes: Vec<DrawNode>,
    /// Plane layout: the neighbour graph's edges (each once, smaller index first).
    pub edges: Vec<(NodeIdx, NodeIdx)>,
    /// The node that searched.
    pub searcher: NodeIdx,
    /// The nodes responsible for the key by the checker's rule (Kademlia: the k closest by XOR,
    /// closest first; one-owner overlays: the owner; searches: the holders of the item).
    pub responsible: Vec<NodeIdx>,
    /// The node the search reached: the owner that answered, Kademlia's closest answer, the
    /// holder whose hit came first.
    pub found: Option<NodeIdx>,
    /// The numbered path, in order.
    pub hops: Vec<Hop>,
    /// The answer back to the searcher, if it went over the network.
    pub answer: Option<(NodeIdx, NodeIdx)>,
    /// Every message the search caused, in sending order.
    pub messages: Vec<Message>,
    /// Nodes the search reached more than once, with how many times (searcher included: its
    /// own start counts as one visit).
    pub revisits: Vec<(NodeIdx, u32)>,
    /// Hops as the simulator reports them for this lookup.
    pub reported_hops: u32,
    /// Messages as the simulator reports them for this lookup.
    pub reported_messages: u32,
    /// Whether the overlay reported success.
    pub ok: bool,
    /// The overlay's settings that shape the picture, for the caption.
    pub settings: String,
}

impl Trace {
    /// Numbered hops (Chord's uncounted final forward left out): what the simulator calls hops.
    pub fn numbered_hops(&self) -> u32 {
        self.hops.iter().filter(|h| h.step > 0).count() as u32
    }

    /// Messages that reached a node the search had already reached: the cost of the cycles.
    pub fn wasted_visits(&self) -> u32 {
        self.revisits.iter().map(|&(_, v)| v - 1).sum()
    }
}
