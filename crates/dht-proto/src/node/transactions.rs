//! The requests a node has in flight: their transaction IDs, why each was sent, when it stalls
//! and times out, and how it is sent a second time.
//!
//! Transaction IDs are four bytes. BEP 5 leaves their length to the sender, and libtorrent
//! answers any length, but the `mainline` crate (8.x) answers only four-byte IDs: a node that
//! sent two could not use a network of its nodes. Answers echo whatever length the asker sent.

use std::net::SocketAddr;

use super::guard::Cost;
use super::vecmap::VecMap;
use super::{Node, QueryId, Transmit};
use crate::id::Id;
use crate::message::{Body, Method, MethodKind, NodeInfo, Query, Shape};
use crate::time::Instant;

/// Bytes in the transaction IDs of our queries.
pub const TRANSACTION_ID_LEN: usize = 4;

/// Why a request was sent, so its reply goes to the right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// A lookup step of a command.
    Lookup(QueryId),
    /// A bootstrap request to an address whose ID we do not know.
    Seed(QueryId),
    /// A put or announce of a command's store phase.
    Store(QueryId),
    /// A liveness check of a routing-table contact.
    Ping,
    /// A `get` to a newcomer for the write token of a hand-off of this stored item.
    HandoffToken(Id),
    /// The `put` of a hand-off; its answer needs nothing more.
    HandoffPut,
}

impl Purpose {
    /// Whether the request is of the node's own initiative (upkeep and hand-offs) rather than
    /// a step of a command that a user started.
    pub(super) fn is_upkeep(self) -> bool {
        matches!(
            self,
            Purpose::Ping | Purpose::HandoffToken(_) | Purpose::HandoffPut
        )
    }
}

/// One request in flight.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) to: SocketAddr,
    pub(super) id: Option<Id>,
    pub(super) purpose: Purpose,
    pub(super) stall_at: Option<Instant>,
    pub(super) deadline: Instant,
    /// How to send the request once more when the first try stalls: on a lossy path one
    /// resend recovers most lost requests before the lookup gives up on the node.
    pub(super) resend: Resend,
}

/// What a request needs to be sent a second time, byte for byte as the first.
///
/// The common queries carry nothing but an ID and are encoded again from it, so a request in
/// flight keeps no copy of its datagram (docs/simulator.md measures what that saves).
#[derive(Debug, Clone)]
pub(super) enum Resend {
    /// Sent twice already.
    Spent,
    /// Encoded again from its ID.
    Encode(Again),
    /// Any other query (announces, puts, queries with `want` or `seq`) keeps its datagram.
    Datagram(Vec<u8>),
}

/// A query encoded again for its resend: one of those that carry nothing but an ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Again {
    Ping,
    FindNode(Id),
    GetPeers(Id),
    Get(Id),
}

impl Again {
    /// How to resend `method`, if it is one of those encoded again; `None` otherwise.
    fn of(method: &Method) -> Option<Again> {
        match *method {
            Method::Ping => Some(Again::Ping),
            Method::FindNode { target, want: None } => Some(Again::FindNode(target)),
            Method::GetPeers {
                info_hash,
                want: None,
            } => Some(Again::GetPeers(info_hash)),
            Method::Get { target, seq: None } => Some(Again::Get(target)),
            _ => None,
        }
    }

    /// The method to encode again.
    fn method(self) -> Method {
        match self {
            Again::Ping => Method::Ping,
            Again::FindNode(target) => Method::FindNode { target, want: None },
            Again::GetPeers(info_hash) => Method::GetPeers {
                info_hash,
                want: None,
            },
            Again::Get(target) => Method::Get { target, seq: None },
        }
    }
}

/// The requests in flight, by transaction ID.
#[derive(Debug, Clone)]
pub(super) struct Transactions {
    requests: VecMap<u32, Pending>,
    next_tid: u32,
}

impl Transactions {
    /// An empty table whose first transaction ID is `first_tid`.
    pub(super) fn new(first_tid: u32) -> Self {
        Transactions {
            requests: VecMap::default(),
            next_tid: first_tid,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.requests.len()
    }

    /// A transaction ID not in use: the next in sequence, skipping those in flight.
    fn allocate(&mut self) -> u32 {
        let mut tid = self.next_tid;
        while self.requests.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        tid
    }

    /// The request that `tid` from `from` answers, removed. `None` for a transaction ID of
    /// another length than ours, an unknown one, or one we sent to another address (a reply
    /// from elsewhere is spoofed or misrouted).
    pub(super) fn take(&mut self, from: SocketAddr, tid: &[u8]) -> Option<Pending> {
        let tid = u32::from_be_bytes(<[u8; TRANSACTION_ID_LEN]>::try_from(tid).ok()?);
        if self.requests.get(&tid)?.to != from {
            return None;
        }
        self.remove(tid)
    }

    /// The transaction IDs of the requests that expired by `now`, and of those that stalled
    /// by `now` and have not expired, in transaction-ID order.
    fn due(&self, now: Instant) -> (Vec<u32>, Vec<u32>) {
        let mut expired = Vec::new();
        let mut stalled = Vec::new();
        for (&tid, p) in self.requests.iter() {
            if p.deadline <= now {
                expired.push(tid);
            } else if p.stall_at.is_some_and(|s| s <= now) {
                stalled.push(tid);
            }
        }
        (expired, stalled)
    }

    /// Removes the request with transaction ID `tid`, giving the buffer back if it was the last.
    fn remove(&mut self, tid: u32) -> Option<Pending> {
        let p = self.requests.remove(&tid);
        self.requests.release_if_empty();
        p
    }

    /// Whether a ping to `addr` is in flight.
    pub(super) fn pinging(&self, addr: SocketAddr) -> bool {
        self.requests
            .values()
            .any(|p| p.purpose == Purpose::Ping && p.to == addr)
    }

    /// Requests of the node's own initiative in flight to `addr`.
    pub(super) fn upkeep_in_flight(&self, addr: SocketAddr) -> usize {
        self.requests
            .values()
            .filter(|p| p.to == addr && p.purpose.is_upkeep())
            .count()
    }

    /// The earliest stall or deadline of a request in flight.
    pub(super) fn next_wake(&self) -> Option<Instant> {
        self.requests
            .values()
            .map(|p| p.stall_at.map_or(p.deadline, |s| s.min(p.deadline)))
            .min()
    }

    /// Where the requests lie in memory, and their size in bytes (for a cache hint).
    #[cfg(feature = "sim-hints")]
    pub(super) fn memory(&self) -> (*const u8, usize) {
        self.requests.memory()
    }

    /// Approximate bytes of memory held.
    pub(super) fn memory_bytes(&self) -> usize {
        self.requests.len() * (core::mem::size_of::<(u32, Pending)>() + 16)
    }
}

/// How a request's datagram is paid for: upkeep from the upload budget, a command's freely.
fn cost_of(purpose: Purpose) -> Cost {
    if purpose.is_upkeep() {
        Cost::Budgeted
    } else {
        Cost::Free
    }
}

impl Node {
    /// Our query with transaction ID `tid`.
    fn encode_query(&self, tid: u32, method: Method) -> Vec<u8> {
        let body = Body::Query(Query {
            sender_id: self.id,
            method,
        });
        self.encode(&tid.to_be_bytes(), None, self.config.read_only, &body)
    }

    /// Sends a query; returns false if too many requests are in flight.
    pub(super) fn send_query(
        &mut self,
        now: Instant,
        to: SocketAddr,
        id: Option<Id>,
        purpose: Purpose,
        method: Method,
    ) -> bool {
        if self.transactions.len() >= self.config.transactions_max {
            self.stats.transactions_refused += 1;
            return false;
        }
        if purpose.is_upkeep() && !self.upkeep_allowed(to, id) {
            return false;
        }
        let tid = self.transactions.allocate();
        let again = Again::of(&method);
        let shape = Shape::Query(method.kind());
        let data = self.encode_query(tid, method);
        let resend = match again {
            Some(again) => Resend::Encode(again),
            None => Resend::Datagram(data.clone()),
        };
        // Queued before the request is recorded, so a dropped one leaves nothing in flight.
        if !self.push_transmit(now, Transmit { to, data, shape }, cost_of(purpose)) {
            return false;
        }
        self.transactions.requests.insert(
            tid,
            Pending {
                to,
                id,
                purpose,
                stall_at: Some(now + self.config.request_stall / 2),
                deadline: now + self.config.request_timeout,
                resend,
            },
        );
        true
    }

    /// Stalled requests are sent again or stop holding their lookup's slot; expired ones fail.
    pub(super) fn handle_request_timeouts(&mut self, now: Instant) {
        let (expired, stalled) = self.transactions.due(now);
        for tid in stalled {
            let Some(p) = self.transactions.requests.get_mut(&tid) else {
                continue;
            };
            // Halfway through the stall time the request is sent once more (on a lossy path
            // one datagram in a few is lost, and the second copy's answer usually comes before
            // the stall); at the stall the lookup stops waiting for it, so a dead node holds
            // one of the α slots no longer than that. A late answer to either copy still
            // counts until the deadline.
            let to = p.to;
            let cost = cost_of(p.purpose);
            p.stall_at = Some(now + self.config.request_stall / 2);
            let (data, shape) = match core::mem::replace(&mut p.resend, Resend::Spent) {
                Resend::Encode(again) => {
                    let method = again.method();
                    let shape = Shape::Query(method.kind());
                    (self.encode_query(tid, method), shape)
                }
                Resend::Datagram(data) => {
                    // Our own query: it reads back as one (rare: resends only).
                    let shape = Shape::read(&data).unwrap_or(Shape::Query(MethodKind::Other));
                    (data, shape)
                }
                Resend::Spent => {
                    p.stall_at = None;
                    if let (Purpose::Lookup(q), Some(id)) = (p.purpose, p.id) {
                        self.command_stalled(now, q, NodeInfo { id, addr: to });
                    }
                    continue;
                }
            };
            self.stats.resends += 1;
            self.push_transmit(now, Transmit { to, data, shape }, cost);
        }
        for tid in expired {
            let Some(p) = self.transactions.remove(tid) else {
                continue;
            };
            self.release_empty_maps();
            if let Some(id) = p.id {
                // The resend was spent unless the request timed out before its stall.
                let tries = if matches!(p.resend, Resend::Spent) {
                    2
                } else {
                    1
                };
                self.table.failed(now, &id, p.to, tries);
            }
            self.request_failed(now, p, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queries_resent_from_their_id_are_exactly_those_without_more_arguments() {
        use crate::message::Want;
        let t = Id([0x31; 20]);
        let rebuilt = [
            Method::Ping,
            Method::FindNode {
                target: t,
                want: None,
            },
            Method::GetPeers {
                info_hash: t,
                want: None,
            },
            Method::Get {
                target: t,
                seq: None,
            },
        ];
        for m in rebuilt {
            let again = Again::of(&m).expect("encoded again");
            assert_eq!(again.method(), m);
        }
        let kept = [
            Method::FindNode {
                target: t,
                want: Some(Want { v4: true, v6: true }),
            },
            Method::Get {
                target: t,
                seq: Some(3),
            },
            Method::AnnouncePeer {
                info_hash: t,
                port: 1234,
                implied_port: false,
                token: b"tok".to_vec(),
            },
        ];
        for m in kept {
            assert!(Again::of(&m).is_none(), "{m:?} keeps its datagram");
        }
    }

    /// Our queries carry four-byte transaction IDs (what the `mainline` crate answers), and
    /// an answer is matched only by the whole ID from the address asked.
    #[test]
    fn queries_carry_four_byte_ids_and_only_the_whole_id_from_the_asked_address_matches() {
        use crate::message::{Message, Response};
        let mut n = Node::new(
            super::super::Config::default(),
            Id([1; 20]),
            7,
            Instant::ZERO,
        );
        let router: SocketAddr = "127.0.0.7:6881".parse().unwrap();
        n.bootstrap(Instant::ZERO, &[], &[router]);
        let t = n.poll_transmit().expect("a query to the router");
        let asked = Message::decode(&t.data).unwrap();
        assert_eq!(asked.transaction_id.len(), TRANSACTION_ID_LEN);
        let answer = |tid: &[u8]| {
            Message {
                transaction_id: tid.to_vec(),
                version: None,
                requester_ip: None,
                read_only: false,
                body: Body::Response(Response {
                    sender_id: Id([2; 20]),
                    ..Response::default()
                }),
            }
            .encode()
        };
        let tid = asked.transaction_id.clone();
        let elsewhere: SocketAddr = "127.0.0.8:6881".parse().unwrap();
        n.handle_datagram(Instant::ZERO, router, &answer(&tid[..2]));
        n.handle_datagram(Instant::ZERO, elsewhere, &answer(&tid));
        assert_eq!(n.stats().unexpected_responses, 2);
        n.handle_datagram(Instant::ZERO, router, &answer(&tid));
        assert_eq!(n.stats().unexpected_responses, 2, "the true answer matches");
        assert!(n.routing_table().get(&Id([2; 20])).is_some());
    }
}
