//! Replication to new close nodes: when a node joins near the keys of items we store,
//! it gets a copy of each item it is now responsible for.
//!
//! Maymounkov and Mazières (Kademlia, section 2.5): "when a node u learns of a new node w
//! which is closer to some of u's key-value pairs, u replicates these pairs to w without
//! erasing them from its own database." BEP 44 leaves storage to the hourly republish of the
//! publisher, so without this an item sits on its original holders while newcomers take their
//! places among the k closest to its key, and for part of an hour a get that converges on the
//! new k closest can miss it. The copy travels as plain BEP 44 messages: a `get` to the newcomer
//! for its write token, then a `put` of the stored item (a mutable item keeps its signature).
//!
//! A newcomer is a node that queried or answered us and that our table knew neither as a
//! contact nor as a replacement, whether it now enters the table or waits among the
//! replacements of a full bucket. To avoid k copies
//! of every hand-off, only the holders that know at most [`HANDOFF_HOLDERS_AHEAD_MAX`] nodes
//! closer to the key than themselves (the newcomer aside) send it: about four per newcomer and
//! item, so dead holders, or nodes ahead that missed their own copy, do not stop it.

use super::{Node, Purpose};
use crate::id::Id;
use crate::message::{Method, NodeInfo, PutArgs, Response};
use crate::store::ItemValue;
use crate::time::Instant;

/// Stored items examined for one newcomer, in key order around its ID (the items it can be
/// responsible for share a long prefix with it, so they sit next to it in key order).
pub const HANDOFF_SCAN_ITEMS_MAX: usize = 64;

/// Items handed to one newcomer at a time. A newcomer heard from through its query has not
/// proved its address, and each hand-off starts with a `get` to it: without this bound a
/// spoofed query could make us send one datagram per stored item to a victim. The items beyond
/// it reach the newcomer by the publisher's republish, within the hour.
pub const HANDOFF_ITEMS_PER_NEWCOMER_MAX: usize = 8;

/// A holder hands an item off only if it knows at most this many other nodes closer to the
/// item's key than itself. Not 0: the nodes ahead of a holder may be newcomers that missed
/// their copy, or dead.
pub const HANDOFF_HOLDERS_AHEAD_MAX: usize = 3;

impl Node {
    /// `newcomer` is new to our table (see the module documentation): send it the items it
    /// is now among the k closest to.
    pub(super) fn hand_off(&mut self, now: Instant, newcomer: NodeInfo) {
        let mut targets = self
            .storage
            .item_targets_around(&newcomer.id, HANDOFF_SCAN_ITEMS_MAX / 2);
        // The items closest to the newcomer first, where the bound cuts.
        targets.sort_by_key(|t| t.distance(&newcomer.id));
        let mut sent = 0;
        for target in targets {
            if sent >= HANDOFF_ITEMS_PER_NEWCOMER_MAX {
                break;
            }
            if self.should_hand_off(&target, &newcomer) {
                sent += 1;
                self.send_query(
                    now,
                    newcomer.addr,
                    Some(newcomer.id),
                    Purpose::HandoffToken(target),
                    Method::Get { target, seq: None },
                );
            }
        }
    }

    /// Whether `newcomer` is among the k closest nodes we know to `target`, and we are among
    /// the first holders in line to tell it.
    fn should_hand_off(&self, target: &Id, newcomer: &NodeInfo) -> bool {
        let k = self.config.k;
        let ours = self.id.distance(target);
        let theirs = newcomer.id.distance(target);
        let known = self.table.closest(target, k + 1);
        let mut ahead_of_newcomer = 0;
        let mut ahead_of_us = 0;
        for n in known.iter().filter(|n| n.id != newcomer.id) {
            let d = n.id.distance(target);
            ahead_of_newcomer += usize::from(d < theirs);
            ahead_of_us += usize::from(d < ours);
        }
        // We count among the nodes ahead of the newcomer too.
        ahead_of_newcomer += usize::from(ours < theirs);
        ahead_of_newcomer < k && ahead_of_us <= HANDOFF_HOLDERS_AHEAD_MAX
    }

    /// The newcomer answered the `get` with its token: put our copy there.
    pub(super) fn handoff_token(&mut self, now: Instant, from: NodeInfo, target: Id, r: &Response) {
        let Some(token) = r.token.clone() else {
            return;
        };
        let Some(item) = self.storage.item(&target) else {
            return;
        };
        let args = match &item.value {
            ItemValue::Immutable(v) => PutArgs {
                token,
                value: v.clone(),
                mutable: None,
                target: Some(target),
            },
            ItemValue::Mutable(m) => {
                // The newcomer already holds this version or a newer one.
                if r.seq.is_some_and(|s| s >= m.seq) {
                    return;
                }
                PutArgs::mutable(m, token, None)
            }
        };
        self.stats.handoffs += 1;
        self.send_query(
            now,
            from.addr,
            Some(from.id),
            Purpose::HandoffPut,
            Method::Put(args),
        );
    }
}
