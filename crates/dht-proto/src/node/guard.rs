//! The node's defences at its edges: which queries it answers (a token bucket per source IP,
//! [`crate::ratelimit`]), what it may send of its own accord and to whom, and how many bytes a
//! second its answers and upkeep may take. docs/security.md gives the threat model.
//!
//! - A datagram from an address that has never answered us earns at most one datagram back:
//!   its reply, or one error. Queries of the node's own initiative (pings, bucket refreshes,
//!   hand-offs) go only to contacts that have answered one of our queries at that address, at
//!   most [`UPKEEP_IN_FLIGHT_PER_ADDRESS_MAX`] at a time to one address.
//! - Answers and upkeep to addresses that are not local share the upload budget
//!   ([`super::Config::upload_bytes_per_second`]); the queue of datagrams to send holds at most
//!   [`TRANSMITS_MAX`]. What does not fit is dropped and counted. A command's own requests are
//!   not budgeted (the user asked for them) but are queued under the same bound.
//! - No reply is larger than [`REPLY_BYTES_MAX`].

use std::net::SocketAddr;

use super::{Node, Transmit};
use crate::id::{is_local_address, Id};
use crate::message::Response;
use crate::ratelimit::{Admit, ByteBudget, SourceLimiter};
use crate::time::Instant;

/// Datagrams the send queue holds at most between two drains of [`Node::poll_transmit`].
pub const TRANSMITS_MAX: usize = 4096;

/// Largest reply the node sends, in bytes: one unfragmented datagram on an Ethernet path.
pub const REPLY_BYTES_MAX: usize = 1500;

/// Queries of the node's own initiative in flight to one address at once. A hand-off sends one
/// `get` per item, up to eight items per newcomer.
pub const UPKEEP_IN_FLIGHT_PER_ADDRESS_MAX: usize = 8;

/// The state of the defences, made on first use: a node that only ever meets local addresses
/// (a devnet, a simulated network) never pays for it.
#[derive(Debug, Clone)]
pub(super) struct Guard {
    sources: SourceLimiter,
    upload: ByteBudget,
}

/// Whether a datagram's queue slot is also paid from the upload budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cost {
    /// An answer, or a query of the node's own initiative.
    Budgeted,
    /// A request of a command a user started.
    Free,
}

impl Guard {
    /// Approximate bytes of memory held: the source table is most of it.
    pub(super) fn memory_bytes(&self) -> usize {
        core::mem::size_of::<Self>() + self.sources.memory_bytes()
    }
}

impl Node {
    fn guard(&mut self, now: Instant) -> &mut Guard {
        let per_second = self.config.upload_bytes_per_second;
        self.guard.get_or_insert_with(|| {
            Box::new(Guard {
                sources: SourceLimiter::default(),
                upload: ByteBudget::new(now, per_second),
            })
        })
    }

    /// Whether the limits let `ip` reach the node at all: loopback and private addresses are
    /// exempt unless [`super::Config::limit_local`] says otherwise.
    fn limited(&self, addr: SocketAddr) -> bool {
        self.config.limit_local || !is_local_address(&addr.ip())
    }

    /// Whether to answer a query (or a malformed one) from `from`; counts what it drops.
    pub(super) fn admit(&mut self, now: Instant, from: SocketAddr) -> bool {
        let limit = self.config.rate_limit;
        if limit.per_second == 0 || !self.limited(from) {
            return true;
        }
        match self.guard(now).sources.admit(now, from.ip(), &limit) {
            Admit::Yes => return true,
            Admit::Limited => self.stats.rate_limited += 1,
            Admit::Blocked => {
                self.stats.rate_limited += 1;
                self.stats.sources_blocked += 1;
            }
            Admit::WhileBlocked => self.stats.blocked_dropped += 1,
        }
        false
    }

    /// Queues a datagram if the queue has room and, for a budgeted one to an address that is
    /// limited, the upload budget has its bytes; otherwise drops and counts it.
    pub(super) fn push_transmit(&mut self, now: Instant, t: Transmit, cost: Cost) -> bool {
        if self.transmits.len() >= TRANSMITS_MAX {
            self.stats.queue_dropped += 1;
            return false;
        }
        let per_second = self.config.upload_bytes_per_second;
        if cost == Cost::Budgeted && per_second > 0 && self.limited(t.to) {
            let len = t.data.len();
            if !self.guard(now).upload.take(now, per_second, len) {
                self.stats.upload_dropped += 1;
                return false;
            }
        }
        self.transmits.push_back(t);
        true
    }

    /// Whether a query of our own initiative may go to `id` at `to`: it has answered us there,
    /// and has fewer than [`UPKEEP_IN_FLIGHT_PER_ADDRESS_MAX`] such queries in flight.
    pub(super) fn upkeep_allowed(&mut self, to: SocketAddr, id: Option<Id>) -> bool {
        let proven = id.is_some_and(|id| self.table.vouched_at(&id, to));
        let allowed =
            proven && self.transactions.upkeep_in_flight(to) < UPKEEP_IN_FLIGHT_PER_ADDRESS_MAX;
        if !allowed {
            self.stats.upkeep_refused += 1;
        }
        allowed
    }
}

/// Trims a reply until its encoding fits in [`REPLY_BYTES_MAX`]: peers first (a requester
/// that gets some asks others for more), then IPv6 contacts, then IPv4 ones. `encoded_len`
/// gives the size of a candidate. Returns whether anything was cut.
pub(super) fn trim_reply(r: &mut Response, encoded_len: impl Fn(&Response) -> usize) -> bool {
    let mut trimmed = false;
    // Bounded: every round removes one element, and a reply holds at most a few hundred.
    while encoded_len(r) > REPLY_BYTES_MAX {
        if r.peers.pop().is_none() && r.nodes6.pop().is_none() && r.nodes.pop().is_none() {
            break;
        }
        trimmed = true;
    }
    trimmed
}
