//! Upkeep of the routing table and the store: who may enter the table, pings of questionable
//! contacts, bucket refreshes, look-ups of our own ID after a join and under churn, token
//! rotation, expiry and the republish of our own items.

use core::time::Duration;

use super::{Node, Purpose};
use crate::id::Id;
use crate::message::{Method, NodeInfo};
use crate::routing::{Heard, Insert, GOOD_FOR};
use crate::time::Instant;

/// Questionable contacts pinged per maintenance round.
const PINGS_PER_MAINTENANCE: usize = 1;

/// Lookups for empty buckets started per maintenance round.
const REFRESHES_PER_MAINTENANCE: usize = 4;

/// How long after a join ends the node looks up its own ID once more, at the next maintenance
/// round. A join's lookup can end among nodes that have left, or before the nodes around our
/// ID have heard of us; then neither side knows the other, no lookup of a key we own ever
/// reaches us, and a bucket refresh (one request to a contact we already have) does not mend
/// it. Under 1.4-minute sessions this was most of the lookups that missed their key's owner
/// (docs/benchmarks.md, *Lookup latency*). Afterwards the lookup is repeated once per good
/// window ([`crate::routing::RoutingTable::good_for`]) while that window is below BEP 5's 15
/// minutes, that is while the table sees good contacts die; a node whose contacts live long
/// never repeats it.
pub const SELF_LOOKUP_AFTER_JOIN: Duration = Duration::from_secs(60);

impl Node {
    /// Whether a contact may enter the routing table under the BEP 42 setting.
    pub(super) fn acceptable(&mut self, node: &NodeInfo) -> bool {
        if node.addr.port() == 0 {
            return false;
        }
        if self.config.enforce_bep42 && !crate::id::bep42_valid(&node.id, &node.addr.ip()) {
            self.stats.bep42_refused += 1;
            return false;
        }
        true
    }

    pub(super) fn heard_from(&mut self, now: Instant, node: NodeInfo, how: Heard) {
        if !self.acceptable(&node) {
            return;
        }
        // A node heard from directly that the table did not know is a newcomer to us, whether
        // it now enters the table or waits among the replacements of a full bucket. (Not every
        // stranger: two holders outside each other's full buckets would hand items back and
        // forth for ever.)
        // Only one that answered us: a hand-off is a query of our own initiative, and the
        // address of a node that only queried us is as good as its word.
        let newcomer = how == Heard::Response
            && !self.config.read_only
            && self.storage.item_count() > 0
            && !self.table.verified_at(&node.id, node.addr);
        if let Insert::PingFirst(q) = self.table.heard_from(now, node, how) {
            self.ping(now, q);
        }
        if newcomer {
            self.hand_off(now, node);
        }
    }

    pub(super) fn ping(&mut self, now: Instant, node: NodeInfo) {
        if !self.transactions.pinging(node.addr) {
            self.send_query(now, node.addr, Some(node.id), Purpose::Ping, Method::Ping);
        }
    }

    pub(super) fn maintain(&mut self, now: Instant) {
        self.next_maintenance = now + self.config.maintenance_interval;
        self.tokens.maintain(now, &mut self.rng);
        self.storage.expire(now);
        if self.config.read_only {
            // A read-only node keeps no table worth refreshing beyond its own commands.
        }
        for q in self.table.questionable(now, PINGS_PER_MAINTENANCE) {
            self.ping(now, q);
        }
        // A quiet bucket is refreshed with one find_node to its stalest contact (the reply
        // proves it alive and offers up to k contacts of that range); only an empty bucket
        // costs a whole lookup. Full lookups for every quiet bucket every 15 minutes would be
        // most of a large, lightly loaded network's traffic.
        let targets = self.table.take_refresh_targets(now, &mut self.rng);
        let mut lookups = 0;
        for (target, contact) in targets {
            match contact {
                Some(c) => {
                    let method = Method::FindNode { target, want: None };
                    self.send_query(now, c.addr, Some(c.id), Purpose::Ping, method);
                }
                None if lookups < REFRESHES_PER_MAINTENANCE => {
                    lookups += 1;
                    self.start_refresh(now, target);
                }
                None => {}
            }
        }
        self.look_up_self_when_due(now);
        if self.table.len() < self.config.k && !self.routers.is_empty() {
            let routers = self.routers.clone();
            self.start_bootstrap(now, &[], &routers, true);
        }
        let due: Vec<Id> = self
            .own_items
            .iter()
            .filter(|(_, o)| o.next_republish <= now)
            .map(|(t, _)| *t)
            .collect();
        for target in due {
            if let Some(o) = self.own_items.get_mut(&target) {
                o.next_republish = now + self.config.republish_interval;
                let value = o.value.clone();
                self.start_republish(now, value);
            }
        }
    }

    /// A join has ended: plan the look-up of our own ID of [`SELF_LOOKUP_AFTER_JOIN`].
    pub(super) fn joined(&mut self, now: Instant) {
        if self.next_self_lookup.is_none() && !self.config.read_only {
            self.next_self_lookup = Some(now + SELF_LOOKUP_AFTER_JOIN);
        }
    }

    /// Looks up our own ID if it is due (see [`SELF_LOOKUP_AFTER_JOIN`]), and plans the next
    /// while the good window is below BEP 5's.
    fn look_up_self_when_due(&mut self, now: Instant) {
        let window = self.table.good_for();
        let churn = window < GOOD_FOR && !self.config.read_only;
        if self.next_self_lookup.is_none() && churn {
            self.next_self_lookup = Some(now + window);
        }
        let Some(at) = self.next_self_lookup else {
            return;
        };
        if now < at || self.table.is_empty() {
            return;
        }
        self.next_self_lookup = churn.then(|| now + window);
        let id = self.id;
        self.start_refresh(now, id);
    }
}
