//! The client side: commands, their lookups, and their store phase (puts and announces sent to
//! the closest nodes that gave a write token).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::{Event, Node, Outcome, OwnItem, Pending, Purpose, QueryId, Resend};
use crate::bep44::{check_sizes, immutable_target, ItemError, MutableItem};
use crate::id::Id;
use crate::lookup::Lookup;
use crate::message::{ErrorBody, Method, NodeInfo, PutArgs, Response};
use crate::routing::Heard;
use crate::store::ItemValue;
use crate::time::Instant;

/// Peers a get_peers command gathers before it stops adding more.
const PEERS_GATHERED_MAX: usize = 1000;

#[derive(Debug, Clone)]
pub(super) enum Kind {
    Bootstrap,
    FindNode,
    Refresh,
    GetPeers {
        peers: BTreeSet<SocketAddr>,
    },
    Announce {
        port: u16,
        implied: bool,
    },
    GetImmutable {
        value: Option<Vec<u8>>,
    },
    GetMutable {
        public_key: [u8; 32],
        salt: Vec<u8>,
        best: Option<MutableItem>,
    },
    PutImmutable {
        value: Vec<u8>,
    },
    PutMutable {
        item: MutableItem,
        cas: Option<i64>,
    },
}

#[derive(Debug, Clone)]
enum Phase {
    Lookup,
    Storing {
        pending: u32,
        acked: u32,
        errors: Vec<(i64, String)>,
    },
}

/// A running command.
#[derive(Debug, Clone)]
pub(super) struct Command {
    kind: Kind,
    lookup: Lookup,
    phase: Phase,
    internal: bool,
    seeds_pending: u32,
    store_messages: u32,
    /// Whether a get that found nothing has widened its lookup already.
    widened: bool,
    /// When a get's first value verified (for [`crate::lookup::LookupStats::first_value_after`]).
    first_value_at: Option<Instant>,
    /// When a put's k-th acknowledgement came (for [`crate::lookup::LookupStats::stored_k_after`]).
    stored_k_at: Option<Instant>,
    /// Values that failed verification (for [`crate::lookup::LookupStats::forgeries`]).
    forgeries: u32,
}

impl Command {
    fn method(&self) -> Method {
        let target = self.lookup.target();
        match self.kind {
            Kind::Bootstrap | Kind::FindNode | Kind::Refresh => {
                Method::FindNode { target, want: None }
            }
            Kind::GetPeers { .. } | Kind::Announce { .. } => Method::GetPeers {
                info_hash: target,
                want: None,
            },
            Kind::GetImmutable { .. }
            | Kind::GetMutable { .. }
            | Kind::PutImmutable { .. }
            | Kind::PutMutable { .. } => Method::Get { target, seq: None },
        }
    }
}

impl Node {
    // ---- commands ----

    /// Joins the network: a lookup of our own ID seeded with `known` contacts (a saved routing
    /// table) and, through `routers`, addresses whose IDs we do not know. The routers are
    /// remembered to bootstrap again if the table empties.
    pub fn bootstrap(
        &mut self,
        now: Instant,
        known: &[NodeInfo],
        routers: &[SocketAddr],
    ) -> QueryId {
        self.routers = routers.to_vec();
        self.start_bootstrap(now, known, routers, false)
    }

    pub(super) fn start_bootstrap(
        &mut self,
        now: Instant,
        known: &[NodeInfo],
        routers: &[SocketAddr],
        internal: bool,
    ) -> QueryId {
        let target = self.id;
        let q = self.start(now, Kind::Bootstrap, target, known, false, internal);
        if self.commands.contains_key(&q) {
            self.seed_through(now, q, target, routers);
            self.drive(now, q);
        }
        q
    }

    /// Asks `routers`, whose IDs we do not know, for the nodes closest to `target`, to seed
    /// command `q`'s lookup.
    fn seed_through(&mut self, now: Instant, q: QueryId, target: Id, routers: &[SocketAddr]) {
        for &addr in routers {
            if self.send_query(
                now,
                addr,
                None,
                Purpose::Seed(q),
                Method::FindNode { target, want: None },
            ) {
                if let Some(c) = self.commands.get_mut(&q) {
                    c.seeds_pending += 1;
                    c.lookup_messages_add(1);
                }
            }
        }
    }

    /// Finds the k nodes closest to `target`.
    pub fn find_node(&mut self, now: Instant, target: Id) -> QueryId {
        self.start_driven(now, Kind::FindNode, target, false)
    }

    /// Like [`Node::find_node`], recording every step in the event's `trace`.
    pub fn find_node_traced(&mut self, now: Instant, target: Id) -> QueryId {
        self.start_driven(now, Kind::FindNode, target, true)
    }

    /// Finds peers of a torrent.
    pub fn get_peers(&mut self, now: Instant, info_hash: Id) -> QueryId {
        let kind = Kind::GetPeers {
            peers: BTreeSet::new(),
        };
        self.start_driven(now, kind, info_hash, false)
    }

    /// Announces that we are a peer of a torrent, on `port` (or, with `None`, on the port our
    /// datagrams come from: BEP 5's implied_port).
    pub fn announce(&mut self, now: Instant, info_hash: Id, port: Option<u16>) -> QueryId {
        let kind = Kind::Announce {
            port: port.unwrap_or(0),
            implied: port.is_none(),
        };
        self.start_driven(now, kind, info_hash, false)
    }

    /// Fetches an immutable item; it ends as soon as a node returns a value whose SHA-1 is the
    /// target.
    pub fn get_immutable(&mut self, now: Instant, target: Id) -> QueryId {
        // We may hold it ourselves: a lookup never asks its own node.
        if let Some(ItemValue::Immutable(v)) = self.storage.item(&target).map(|i| &i.value) {
            let value = Some(v.clone());
            let q = self.start(now, Kind::GetImmutable { value }, target, &[], false, false);
            self.complete(now, q);
            return q;
        }
        self.start_driven(now, Kind::GetImmutable { value: None }, target, false)
    }

    /// Stores an immutable item (`value` is bencoded) at the k closest nodes, and republishes it
    /// while the node runs. Returns its target and the command's handle.
    pub fn put_immutable(
        &mut self,
        now: Instant,
        value: Vec<u8>,
    ) -> Result<(Id, QueryId), ItemError> {
        check_sizes(&value, &[])?;
        let target = immutable_target(&value);
        self.remember_own(now, target, ItemValue::Immutable(value.clone()));
        let q = self.start_driven(now, Kind::PutImmutable { value }, target, false);
        Ok((target, q))
    }

    /// Fetches the mutable item of `public_key` and `salt` with the highest valid seq.
    pub fn get_mutable(&mut self, now: Instant, public_key: [u8; 32], salt: &[u8]) -> QueryId {
        let target = crate::bep44::mutable_target(&public_key, salt);
        // What we hold ourselves counts too: a lookup never asks its own node.
        let best = match self.storage.item(&target).map(|i| &i.value) {
            Some(ItemValue::Mutable(m)) => Some(m.clone()),
            _ => None,
        };
        let kind = Kind::GetMutable {
            public_key,
            salt: salt.to_vec(),
            best,
        };
        self.start_driven(now, kind, target, false)
    }

    /// Stores a signed mutable item at the k closest nodes (with `cas`, only where the stored
    /// seq equals it), and republishes it while the node runs.
    pub fn put_mutable(
        &mut self,
        now: Instant,
        item: MutableItem,
        cas: Option<i64>,
    ) -> Result<QueryId, ItemError> {
        let target = item.target();
        // The very item already stored verified when it was put (or was saved by this node);
        // putting it again need not pay for the signature.
        let stored = self
            .storage
            .item(&target)
            .is_some_and(|s| matches!(&s.value, ItemValue::Mutable(m) if *m == item));
        if !stored {
            item.verify()?;
        }
        self.remember_own(now, target, ItemValue::Mutable(item.clone()));
        Ok(self.start_driven(now, Kind::PutMutable { item, cas }, target, false))
    }

    fn remember_own(&mut self, now: Instant, target: Id, value: ItemValue) {
        if self.own_items.len() < self.config.own_items_max || self.own_items.contains_key(&target)
        {
            self.own_items.insert(
                target,
                OwnItem {
                    value,
                    next_republish: now + self.config.republish_interval,
                },
            );
        }
    }

    pub(super) fn start_refresh(&mut self, now: Instant, target: Id) {
        let q = self.start(now, Kind::Refresh, target, &[], false, true);
        self.drive(now, q);
    }

    /// After joining, looks up a random ID in every bucket but the last (whose range the
    /// bootstrap lookup of our own ID covered), so each bucket learns its part of the network,
    /// as the Kademlia paper's join does.
    fn refresh_all_buckets(&mut self, now: Instant) {
        // A read-only node is a short-lived client: it keeps no table worth filling.
        if self.config.read_only {
            return;
        }
        let count = self.table.bucket_count();
        for i in 0..count.saturating_sub(1) {
            let target = self.id.random_in_bucket(i, &mut self.rng);
            // A bucket that has a contact asks it once (its reply fills the bucket's range);
            // only an empty bucket costs a whole lookup.
            let bucket = self.table.bucket(i);
            let contact = bucket.iter().find(|c| c.vouched()).map(|c| c.info());
            match contact {
                Some(c) => {
                    let method = Method::FindNode { target, want: None };
                    self.send_query(now, c.addr, Some(c.id), Purpose::Ping, method);
                }
                None if bucket.is_empty() => self.start_refresh(now, target),
                // Contacts known only from their own queries get no query of ours.
                None => {}
            }
        }
    }

    pub(super) fn start_republish(&mut self, now: Instant, value: ItemValue) {
        let (kind, target) = match value {
            ItemValue::Immutable(v) => (
                Kind::PutImmutable { value: v.clone() },
                immutable_target(&v),
            ),
            ItemValue::Mutable(m) => {
                let t = m.target();
                (Kind::PutMutable { item: m, cas: None }, t)
            }
        };
        let q = self.start(now, kind, target, &[], false, true);
        self.drive(now, q);
    }

    fn start_driven(&mut self, now: Instant, kind: Kind, target: Id, traced: bool) -> QueryId {
        let q = self.start(now, kind, target, &[], traced, false);
        // A node whose table is still empty (its bootstrap has not been answered yet, or every
        // contact went bad) asks its routers instead of failing at once.
        // A lookup that has just started is done only if it has no candidate at all.
        let unseeded = self.commands.get(&q).is_some_and(|c| c.lookup.is_done());
        if unseeded && !self.routers.is_empty() {
            let routers = self.routers.clone();
            self.seed_through(now, q, target, &routers);
        }
        self.drive(now, q);
        q
    }

    fn start(
        &mut self,
        now: Instant,
        kind: Kind,
        target: Id,
        extra_seeds: &[NodeInfo],
        traced: bool,
        internal: bool,
    ) -> QueryId {
        let q = self.next_query;
        self.next_query += 1;
        if self.commands.len() >= self.config.commands_max {
            if !internal {
                self.events.push_back(Event {
                    query: q,
                    outcome: Outcome::Overloaded,
                    stats: Default::default(),
                    trace: None,
                });
            }
            return q;
        }
        // A lookup of the node's own initiative (a refresh, a republish) starts only from
        // contacts that have answered us: a stranger's query alone must not make us query its
        // address. A user's command may start from any contact.
        let mut seeds = if internal {
            self.table
                .closest_where(&target, self.config.k * 2, |c| c.vouched())
        } else {
            self.table.closest(&target, self.config.k * 2)
        };
        seeds.extend_from_slice(extra_seeds);
        let mut lookup = Lookup::new(
            now,
            target,
            self.config.k,
            self.config.alpha,
            &seeds,
            traced,
        );
        if matches!(kind, Kind::GetImmutable { .. }) {
            lookup = lookup.without_widening();
        }
        if !matches!(kind, Kind::Bootstrap | Kind::Refresh) {
            lookup = lookup.with_paths(self.config.disjoint_paths);
        }
        self.commands.insert(
            q,
            Command {
                kind,
                lookup,
                phase: Phase::Lookup,
                internal,
                seeds_pending: 0,
                store_messages: 0,
                widened: false,
                first_value_at: None,
                stored_k_at: None,
                forgeries: 0,
            },
        );
        q
    }

    /// Sends what a command's lookup wants sent, and moves it on when the lookup is done.
    fn drive(&mut self, now: Instant, q: QueryId) {
        loop {
            let Some(c) = self.commands.get_mut(&q) else {
                return;
            };
            if !matches!(c.phase, Phase::Lookup) {
                return;
            }
            let Some(node) = c.lookup.next_request() else {
                break;
            };
            let method = c.method();
            if !self.send_query(now, node.addr, Some(node.id), Purpose::Lookup(q), method) {
                if let Some(c) = self.commands.get_mut(&q) {
                    c.lookup.on_failure(&node);
                }
            }
        }
        let Some(c) = self.commands.get(&q) else {
            return;
        };
        if c.seeds_pending == 0 && c.lookup.is_done() {
            self.finish_lookup(now, q);
        }
    }

    fn finish_lookup(&mut self, now: Instant, q: QueryId) {
        let Some(c) = self.commands.get_mut(&q) else {
            return;
        };
        let target = c.lookup.target();
        let found_nothing = matches!(
            c.kind,
            Kind::GetImmutable { value: None } | Kind::GetMutable { best: None, .. }
        );
        if found_nothing && !c.widened {
            // Under churn, newcomers can take the k closest places of a key before anyone
            // hands them the item: its holders are then just beyond. Ask the next k once.
            c.widened = true;
            c.lookup.widen_to(2 * self.config.k);
            return self.drive(now, q);
        }
        if !matches!(
            c.kind,
            Kind::Announce { .. } | Kind::PutImmutable { .. } | Kind::PutMutable { .. }
        ) {
            return self.complete(now, q);
        }
        let kind = c.kind.clone();
        let targets = c.lookup.closest_responded();
        c.phase = Phase::Storing {
            pending: 0,
            acked: 0,
            errors: Vec::new(),
        };
        let mut sent = 0;
        for (node, token) in targets {
            let Some(token) = token else { continue };
            let method = store_method(&kind, target, token);
            if self.send_query(now, node.addr, Some(node.id), Purpose::Store(q), method) {
                sent += 1;
            }
        }
        if let Some(c) = self.commands.get_mut(&q) {
            c.store_messages = sent;
            if let Phase::Storing { pending, .. } = &mut c.phase {
                *pending = sent;
            }
        }
        if sent == 0 {
            self.complete(now, q);
        }
    }

    fn complete(&mut self, now: Instant, q: QueryId) {
        let Some(c) = self.commands.remove(&q) else {
            return;
        };
        self.release_empty_maps();
        if matches!(c.kind, Kind::Bootstrap) {
            self.joined(now);
        }
        if c.internal {
            if matches!(c.kind, Kind::Bootstrap) {
                self.refresh_all_buckets(now);
            }
            return;
        }
        let mut stats = c.lookup.stats(now);
        stats.messages += c.store_messages;
        let started = c.lookup.started();
        stats.first_value_after = c.first_value_at.map(|t| t - started);
        stats.stored_k_after = c.stored_k_at.map(|t| t - started);
        stats.forgeries = c.forgeries;
        let trace = c.lookup.trace().map(<[_]>::to_vec);
        let target = c.lookup.target();
        let outcome = match (c.kind, c.phase) {
            (_, Phase::Storing { acked, errors, .. }) => Outcome::Stored {
                target,
                stored_at: acked,
                errors,
            },
            (Kind::Bootstrap, _) => {
                self.refresh_all_buckets(now);
                Outcome::Bootstrap {
                    contacts: self.table.len(),
                }
            }
            (Kind::GetPeers { peers }, _) => Outcome::GetPeers {
                peers: peers.into_iter().collect(),
            },
            (Kind::GetImmutable { value }, _) => Outcome::GetImmutable { value },
            (Kind::GetMutable { best, .. }, _) => Outcome::GetMutable { item: best },
            (Kind::Announce { .. } | Kind::PutImmutable { .. } | Kind::PutMutable { .. }, _) => {
                Outcome::Stored {
                    target,
                    stored_at: 0,
                    errors: Vec::new(),
                }
            }
            (Kind::FindNode | Kind::Refresh, _) => Outcome::FindNode {
                closest: c
                    .lookup
                    .closest_responded()
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect(),
            },
        };
        self.events.push_back(Event {
            query: q,
            outcome,
            stats,
            trace,
        });
    }

    // ---- replies ----

    fn take_pending(&mut self, from: SocketAddr, tid: &[u8]) -> Option<Pending> {
        let p = self.transactions.take(from, tid);
        self.release_empty_maps();
        p
    }

    /// The contacts of a reply worth following: not us, and acceptable under BEP 42. Each is
    /// also offered to the routing table as heard-about, where a bucket has room.
    fn usable_nodes(&mut self, now: Instant, r: &Response) -> Vec<NodeInfo> {
        let mut out = Vec::with_capacity(r.nodes.len() + r.nodes6.len());
        for n in r.nodes.iter().chain(r.nodes6.iter()) {
            if n.id != self.id && self.acceptable(n) {
                if !self.config.read_only {
                    self.table.heard_from(now, *n, Heard::About);
                }
                out.push(*n);
            }
        }
        out
    }

    pub(super) fn handle_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        r: Response,
    ) {
        let Some(p) = self.take_pending(from, tid) else {
            self.stats.unexpected_responses += 1;
            return;
        };
        let responder = NodeInfo {
            id: r.sender_id,
            addr: from,
        };
        if p.id.is_some_and(|id| id != r.sender_id) {
            // It answered with another ID than the one we were told: not the node we meant.
            return self.request_failed(now, p, None);
        }
        self.heard_from(now, responder, Heard::Response);
        // Only an answer to a request sent once times the round trip (Karn's rule: an answer
        // after the resend may be to either copy).
        if !matches!(p.resend, Resend::Spent) {
            let sent = p.deadline - self.config.request_timeout;
            let rtt = now.saturating_duration_since(sent);
            self.table.measured(now, &responder.id, from, rtt);
        }
        match p.purpose {
            Purpose::Ping => {
                // A refresh's find_node reply: its contacts fill the bucket's gaps.
                let _ = self.usable_nodes(now, &r);
            }
            Purpose::Seed(q) => {
                let mut nodes = self.usable_nodes(now, &r);
                nodes.push(responder);
                if let Some(c) = self.commands.get_mut(&q) {
                    c.seeds_pending = c.seeds_pending.saturating_sub(1);
                    c.lookup.add_nodes(&nodes, 1);
                }
                self.drive(now, q);
            }
            Purpose::Lookup(q) => {
                let nodes = self.usable_nodes(now, &r);
                let Some(c) = self.commands.get_mut(&q) else {
                    return;
                };
                let target = c.lookup.target();
                let mut found = false;
                match &mut c.kind {
                    Kind::GetPeers { peers } => {
                        for p in &r.peers {
                            if peers.len() < PEERS_GATHERED_MAX {
                                peers.insert(*p);
                            }
                        }
                    }
                    Kind::GetImmutable { value } => {
                        if let Some(v) = &r.value {
                            if immutable_target(v) == target {
                                *value = Some(v.clone());
                                found = true;
                                c.first_value_at.get_or_insert(now);
                            } else {
                                c.forgeries += 1;
                            }
                        }
                    }
                    Kind::GetMutable {
                        public_key,
                        salt,
                        best,
                    } => {
                        if let (Some(v), Some(k), Some(sig), Some(seq)) =
                            (&r.value, r.public_key, r.signature, r.seq)
                        {
                            let item = MutableItem {
                                public_key: k,
                                salt: salt.clone(),
                                seq,
                                value: v.clone(),
                                signature: sig,
                            };
                            if best.as_ref() == Some(&item) {
                                // The value already verified, from another replica: same bytes,
                                // same signature, nothing to learn or to check again.
                            } else if k != *public_key || item.verify().is_err() {
                                c.forgeries += 1;
                            } else if best.as_ref().is_none_or(|b| seq > b.seq) {
                                *best = Some(item);
                                c.first_value_at.get_or_insert(now);
                            }
                        } else if r.value.is_some() {
                            // A value without the key, signature or seq that would prove it.
                            c.forgeries += 1;
                        }
                    }
                    _ => {}
                }
                c.lookup.on_response(&responder, &nodes, r.token.clone());
                if found {
                    return self.complete(now, q);
                }
                self.drive(now, q);
            }
            Purpose::Store(q) => self.store_answered(now, q, None),
            Purpose::HandoffToken(target) => self.handoff_token(now, responder, target, &r),
            Purpose::HandoffPut => {}
        }
    }

    pub(super) fn handle_error(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        e: ErrorBody,
    ) {
        let Some(p) = self.take_pending(from, tid) else {
            self.stats.unexpected_responses += 1;
            return;
        };
        self.request_failed(now, p, Some(e));
    }

    /// A request ended without a usable reply: timed out (`error` is `None`) or refused.
    pub(super) fn request_failed(&mut self, now: Instant, p: Pending, error: Option<ErrorBody>) {
        match p.purpose {
            Purpose::Ping | Purpose::HandoffToken(_) | Purpose::HandoffPut => {}
            Purpose::Seed(q) => {
                if let Some(c) = self.commands.get_mut(&q) {
                    c.seeds_pending = c.seeds_pending.saturating_sub(1);
                }
                self.drive(now, q);
            }
            Purpose::Lookup(q) => {
                if let (Some(c), Some(id)) = (self.commands.get_mut(&q), p.id) {
                    c.lookup.on_failure(&NodeInfo { id, addr: p.to });
                }
                self.drive(now, q);
            }
            Purpose::Store(q) => {
                let error =
                    Some(error.map_or((0, "timed out".to_string()), |e| (e.code, e.message)));
                self.store_answered(now, q, error);
            }
        }
    }

    fn store_answered(&mut self, now: Instant, q: QueryId, error: Option<(i64, String)>) {
        let Some(c) = self.commands.get_mut(&q) else {
            return;
        };
        if let Phase::Storing {
            pending,
            acked,
            errors,
        } = &mut c.phase
        {
            *pending = pending.saturating_sub(1);
            match error {
                None => {
                    *acked += 1;
                    if *acked as usize == self.config.k {
                        c.stored_k_at.get_or_insert(now);
                    }
                }
                Some(e) => errors.push(e),
            }
            if *pending == 0 {
                self.complete(now, q);
            }
        }
    }

    pub(super) fn command_stalled(&mut self, now: Instant, q: QueryId, node: NodeInfo) {
        if let Some(c) = self.commands.get_mut(&q) {
            c.lookup.on_stall(&node);
        }
        self.drive(now, q);
    }
}

/// The put or announce a store-phase command sends with a node's `token`.
fn store_method(kind: &Kind, target: Id, token: Vec<u8>) -> Method {
    match kind {
        Kind::Announce { port, implied } => Method::AnnouncePeer {
            info_hash: target,
            port: *port,
            implied_port: *implied,
            token,
        },
        Kind::PutImmutable { value } => Method::Put(PutArgs {
            token,
            value: value.clone(),
            mutable: None,
            target: Some(target),
        }),
        Kind::PutMutable { item, cas } => Method::Put(PutArgs::mutable(item, token, *cas)),
        _ => Method::Ping,
    }
}

impl Command {
    fn lookup_messages_add(&mut self, n: u32) {
        self.store_messages += n;
    }
}
