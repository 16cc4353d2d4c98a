//! Owner rules of the overlays other than Kademlia and Chord, for the lookup checker: Pastry's
//! numerically closest node, CAN's zone owner, the one-hop ring's token owner, and for the
//! unstructured searches any live holder of the item.
//!
//! They live here rather than beside each overlay so that the overlays stay free of checker
//! code; each reads only the overlay node's public getters.

use dht_proto::Id;

use crate::checks::checker::OwnerOracle;
use crate::overlays::can::CanNode;
use crate::overlays::onehop::{OneHop, OneHopNode};
use crate::overlays::overlay::NodeIdx;
use crate::overlays::unstructured::UnNode;
use crate::world::live::LiveIndex;

/// Pastry's rule: the live node whose ID is numerically closest to the key on the ring.
#[derive(Debug, Clone, Copy)]
pub struct NumericallyClosest;

fn ring_distance(a: &Id, b: &Id) -> u128 {
    // The top 128 bits decide every realistic comparison (IDs are random).
    let x = u128::from_be_bytes(a.0[..16].try_into().unwrap_or([0; 16]));
    let y = u128::from_be_bytes(b.0[..16].try_into().unwrap_or([0; 16]));
    x.wrapping_sub(y).min(y.wrapping_sub(x))
}

impl<N> OwnerOracle<N> for NumericallyClosest {
    fn rule(&self) -> &'static str {
        "numerically-closest"
    }

    fn owners(&self, key: &Id, live: &LiveIndex, _nodes: &[Option<N>]) -> Vec<NodeIdx> {
        let succ = live.ring_successor(key);
        let pred = live.ring_predecessor(key);
        match (succ, pred) {
            (Some(s), Some(p)) => {
                if ring_distance(&p.0, key) < ring_distance(&s.0, key) {
                    vec![p.1]
                } else {
                    vec![s.1]
                }
            }
            (Some(s), None) => vec![s.1],
            (None, Some(p)) => vec![p.1],
            (None, None) => Vec::new(),
        }
    }

    fn cheap_at_start(&self) -> bool {
        true
    }
}

/// The first live node, in index order, whose state satisfies `pred`.
fn first_live_where<N>(
    live: &LiveIndex,
    nodes: &[Option<N>],
    pred: impl Fn(&N) -> bool,
) -> Vec<NodeIdx> {
    live.iter()
        .filter(|&i| {
            nodes
                .get(i as usize)
                .and_then(|n| n.as_ref())
                .is_some_and(&pred)
        })
        .take(1)
        .collect()
}

/// The overlay's own first answer, if it is live and satisfies `pred`: the one-call check
/// that spares a scan of the live nodes when the answer is right.
fn found_first_where<N>(
    live: &LiveIndex,
    nodes: &[Option<N>],
    found: &[NodeIdx],
    pred: impl Fn(&N) -> bool,
) -> Option<NodeIdx> {
    let &f = found.first()?;
    let ok = live.is_live(f)
        && nodes
            .get(f as usize)
            .and_then(|n| n.as_ref())
            .is_some_and(pred);
    ok.then_some(f)
}

/// CAN's rule: the live node whose zone contains the key's point. It first checks the
/// overlay's own answer (one call) and scans the live nodes only when that answer is wrong, so
/// the cost is proportional to the number of wrong answers.
#[derive(Debug, Clone, Copy)]
pub struct ZoneOwner;

impl OwnerOracle<CanNode> for ZoneOwner {
    fn rule(&self) -> &'static str {
        "zone-owner"
    }

    fn owners(&self, key: &Id, live: &LiveIndex, nodes: &[Option<CanNode>]) -> Vec<NodeIdx> {
        first_live_where(live, nodes, |n| n.owns_key(key))
    }

    fn owners_given(
        &self,
        key: &Id,
        live: &LiveIndex,
        nodes: &[Option<CanNode>],
        found: &[NodeIdx],
    ) -> Vec<NodeIdx> {
        match found_first_where(live, nodes, found, |n| n.owns_key(key)) {
            Some(f) => vec![f],
            None => self.owners(key, live, nodes),
        }
    }
}

/// The one-hop ring's rule: the node of the first token at or after the key among the live
/// nodes (Cassandra's SimpleStrategy primary replica), read from the overlay's shared token
/// directory. A node's own `replicas_of(key)[0]` is the same rule applied to its possibly stale
/// view; the checker uses the truth.
#[derive(Debug, Clone)]
pub struct TokenOwner {
    /// A handle on the overlay (it shares the token directory with every node).
    pub overlay: OneHop,
}

impl OwnerOracle<OneHopNode> for TokenOwner {
    fn rule(&self) -> &'static str {
        "first-live-token"
    }

    fn owners(&self, key: &Id, live: &LiveIndex, _nodes: &[Option<OneHopNode>]) -> Vec<NodeIdx> {
        self.overlay
            .owner_among(key, |i| live.is_live(i))
            .into_iter()
            .collect()
    }

    fn cheap_at_start(&self) -> bool {
        true
    }
}

/// The unstructured searches' rule: a search succeeds when it reached any live node that holds
/// the item ([`UnNode::holds`]). The overlay's answer is checked first (one store look-up);
/// only when it is wrong are the live nodes scanned for a holder, so that the verdict is
/// "wrong" rather than "failed" when holders exist.
#[derive(Debug, Clone, Copy)]
pub struct AnyHolder;

impl OwnerOracle<UnNode> for AnyHolder {
    fn rule(&self) -> &'static str {
        "any-live-holder"
    }

    fn owners(&self, key: &Id, live: &LiveIndex, nodes: &[Option<UnNode>]) -> Vec<NodeIdx> {
        first_live_where(live, nodes, |n| n.holds(key))
    }

    fn owners_given(
        &self,
        key: &Id,
        live: &LiveIndex,
        nodes: &[Option<UnNode>],
        found: &[NodeIdx],
    ) -> Vec<NodeIdx> {
        if let Some(f) = found_first_where(live, nodes, found, |n| n.holds(key)) {
            return vec![f];
        }
        if found.is_empty() {
            // A search that found nothing failed whoever holds the item; skip the scan.
            return Vec::new();
        }
        self.owners(key, live, nodes)
    }
}
