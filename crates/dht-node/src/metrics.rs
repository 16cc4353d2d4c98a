//! What the runtime counts beyond the protocol core's [`NodeStats`](dht_proto::node::NodeStats):
//! datagrams and bytes by message kind, query method and error code; commands by kind and
//! outcome, with histograms of their duration and rounds; and the disk's commit latency.
//!
//! The core counts totals only, since a simulator holds a million of its nodes and every
//! counter there costs memory a million times. The driver, which exists once per real node,
//! classifies each datagram it receives and sends by one walk of its top-level bencode
//! dictionary (no copy; byte strings skipped by their length; docs/benchmarks.md, "Single node
//! under load", has what it costs) and times what the core cannot see: commands from start to
//! event, and disk commits. Everything here is a plain integer or a fixed-size histogram,
//! read through [`crate::Dht::status`].

use std::time::Duration;

use dht_proto::message::Shape;
use dht_proto::node::Outcome;

/// The most buckets a [`Histogram`] has (its bounds; the `+Inf` bucket is implied).
pub const HISTOGRAM_BOUNDS_MAX: usize = 16;

/// Bounds of [`RuntimeMetrics::command_duration`], in seconds.
pub const COMMAND_DURATION_BOUNDS_S: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Bounds of [`RuntimeMetrics::command_rounds`].
pub const COMMAND_ROUNDS_BOUNDS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0];

/// Bounds of [`RuntimeMetrics::commit_duration`], in seconds.
pub const COMMIT_DURATION_BOUNDS_S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A histogram with fixed bounds, as Prometheus defines one: each observation counts in the
/// first bucket whose upper bound is at least the value, or in the implied `+Inf` bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last slot used is `+Inf`.
    counts: [u64; HISTOGRAM_BOUNDS_MAX + 1],
    count: u64,
    sum: f64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending, at most
    /// [`HISTOGRAM_BOUNDS_MAX`]).
    pub const fn new(bounds: &'static [f64]) -> Self {
        assert!(
            bounds.len() <= HISTOGRAM_BOUNDS_MAX,
            "too many histogram bounds"
        );
        Histogram {
            bounds,
            counts: [0; HISTOGRAM_BOUNDS_MAX + 1],
            count: 0,
            sum: 0.0,
        }
    }

    /// Records one value.
    pub fn observe(&mut self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.count += 1;
        self.sum += value;
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The sum of the observed values.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Each bucket's upper bound with the observations in it alone (not cumulative), ending
    /// with `f64::INFINITY` and the observations above every bound.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        let mut out: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .zip(self.counts)
            .map(|(b, c)| (*b, c))
            .collect();
        out.push((f64::INFINITY, self.counts[self.bounds.len()]));
        out
    }
}

/// A KRPC query method, as the traffic counters sort queries (dht-proto's kind of method).
pub use dht_proto::message::MethodKind as Method;

/// The KRPC error codes counted one by one (BEP 5 and BEP 44); others count as `other`.
pub const ERROR_CODES: [i64; 9] = [201, 202, 203, 204, 205, 206, 207, 301, 302];

/// Slots of [`TrafficCounts::errors`]: one per code of [`ERROR_CODES`], then `other`.
pub const ERROR_SLOTS: usize = ERROR_CODES.len() + 1;

/// The label of error slot `i`: the code, or `other`.
pub fn error_slot_label(i: usize) -> String {
    ERROR_CODES
        .get(i)
        .map_or_else(|| "other".to_string(), |c| c.to_string())
}

/// Datagrams and bytes of one direction, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    /// Queries by [`Method`] (index: position in [`Method::ALL`]).
    pub queries: [u64; 7],
    /// Bytes of those queries.
    pub query_bytes: [u64; 7],
    /// Responses.
    pub responses: u64,
    /// Bytes of responses.
    pub response_bytes: u64,
    /// Errors by code (index: position in [`ERROR_CODES`], the last slot for other codes).
    pub errors: [u64; ERROR_SLOTS],
    /// Bytes of errors.
    pub error_bytes: u64,
    /// Datagrams that are not a KRPC message (not a bencoded dictionary with a known `y`).
    pub malformed: u64,
    /// Bytes of those.
    pub malformed_bytes: u64,
}

impl TrafficCounts {
    /// Counts one datagram, reading its shape from the bytes ([`Shape::read`]).
    pub fn count(&mut self, datagram: &[u8]) {
        self.count_shaped(datagram.len(), Shape::read(datagram));
    }

    /// Counts one datagram of `len` bytes whose shape is known (`None`: not a KRPC message).
    pub fn count_shaped(&mut self, len: usize, shape: Option<Shape>) {
        let len = len as u64;
        match shape {
            Some(Shape::Query(m)) => {
                self.queries[m as usize] += 1;
                self.query_bytes[m as usize] += len;
            }
            Some(Shape::Response) => {
                self.responses += 1;
                self.response_bytes += len;
            }
            Some(Shape::Error(code)) => {
                let slot = ERROR_CODES
                    .iter()
                    .position(|c| Some(*c) == code)
                    .unwrap_or(ERROR_CODES.len());
                self.errors[slot] += 1;
                self.error_bytes += len;
            }
            None => {
                self.malformed += 1;
                self.malformed_bytes += len;
            }
        }
    }
}

/// Traffic in both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// What arrived on the socket (before any defence dropped it).
    pub received: TrafficCounts,
    /// What was handed to the socket to send.
    pub sent: TrafficCounts,
}

/// A command a handle runs, as the command counters sort them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CommandKind {
    /// The node's own join (and nothing else: maintenance lookups are not counted).
    Bootstrap,
    /// [`crate::Dht::find_node`] and [`crate::Dht::lookup_traced`].
    FindNode,
    /// [`crate::Dht::get_peers`].
    GetPeers,
    /// [`crate::Dht::announce`].
    Announce,
    /// [`crate::Dht::get_immutable`].
    GetImmutable,
    /// [`crate::Dht::put_immutable`].
    PutImmutable,
    /// [`crate::Dht::get_mutable`].
    GetMutable,
    /// [`crate::Dht::put_mutable`].
    PutMutable,
}

impl CommandKind {
    /// Every kind, in counter order.
    pub const ALL: [CommandKind; 8] = [
        CommandKind::Bootstrap,
        CommandKind::FindNode,
        CommandKind::GetPeers,
        CommandKind::Announce,
        CommandKind::GetImmutable,
        CommandKind::PutImmutable,
        CommandKind::GetMutable,
        CommandKind::PutMutable,
    ];

    /// A short name for labels.
    pub fn name(self) -> &'static str {
        match self {
            CommandKind::Bootstrap => "bootstrap",
            CommandKind::FindNode => "find_node",
            CommandKind::GetPeers => "get_peers",
            CommandKind::Announce => "announce",
            CommandKind::GetImmutable => "get_immutable",
            CommandKind::PutImmutable => "put_immutable",
            CommandKind::GetMutable => "get_mutable",
            CommandKind::PutMutable => "put_mutable",
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CommandOutcome {
    /// It found what it looked for, or stored at one node at least.
    Found,
    /// It ended without a result: nothing found, or no node stored it.
    Empty,
    /// It was refused before anything was sent (a bad item).
    Refused,
    /// The node ran as many commands as it may.
    Overloaded,
}

impl CommandOutcome {
    /// Every outcome, in counter order.
    pub const ALL: [CommandOutcome; 4] = [
        CommandOutcome::Found,
        CommandOutcome::Empty,
        CommandOutcome::Refused,
        CommandOutcome::Overloaded,
    ];

    /// A short name for labels.
    pub fn name(self) -> &'static str {
        match self {
            CommandOutcome::Found => "found",
            CommandOutcome::Empty => "empty",
            CommandOutcome::Refused => "refused",
            CommandOutcome::Overloaded => "overloaded",
        }
    }

    /// How a command that produced `outcome` ended.
    pub fn of(outcome: &Outcome) -> CommandOutcome {
        let found = match outcome {
            Outcome::Bootstrap { contacts } => *contacts > 0,
            Outcome::FindNode { closest } => !closest.is_empty(),
            Outcome::GetPeers { peers } => !peers.is_empty(),
            Outcome::Stored { stored_at, .. } => *stored_at > 0,
            Outcome::GetImmutable { value } => value.is_some(),
            Outcome::GetMutable { item } => item.is_some(),
            Outcome::Overloaded => return CommandOutcome::Overloaded,
        };
        if found {
            CommandOutcome::Found
        } else {
            CommandOutcome::Empty
        }
    }
}

/// Everything the runtime counts; a copy comes with each [`crate::Status`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuntimeMetrics {
    /// Datagrams and bytes by kind, method and error code.
    pub traffic: Traffic,
    /// Commands ended, by [`CommandKind`] (row) and [`CommandOutcome`] (column), in the order
    /// of their `ALL` arrays.
    pub commands: [[u64; 4]; 8],
    /// How long commands took from start to result, in seconds (refused and overloaded ones
    /// not counted).
    pub command_duration: Histogram,
    /// The rounds (hops) of commands' lookups.
    pub command_rounds: Histogram,
    /// How long each store commit (one per turn with changes) took, in seconds.
    pub commit_duration: Histogram,
    /// Commits that failed (that turn's replies were not sent).
    pub commit_failures: u64,
    /// Receive calls that failed with a real error.
    pub recv_errors: u64,
    /// Datagrams longer than [`crate::udp::SLOT_LEN`] received (each cut to that length).
    pub recv_truncated: u64,
    /// Datagrams the OS refused to send, or left unsent after a stall.
    pub send_failed: u64,
    /// Datagrams not sent because the turn's store commit failed.
    pub send_withheld: u64,
}

impl Default for RuntimeMetrics {
    fn default() -> Self {
        RuntimeMetrics {
            traffic: Traffic::default(),
            commands: [[0; 4]; 8],
            command_duration: Histogram::new(COMMAND_DURATION_BOUNDS_S),
            command_rounds: Histogram::new(COMMAND_ROUNDS_BOUNDS),
            commit_duration: Histogram::new(COMMIT_DURATION_BOUNDS_S),
            commit_failures: 0,
            recv_errors: 0,
            recv_truncated: 0,
            send_failed: 0,
            send_withheld: 0,
        }
    }
}

impl RuntimeMetrics {
    /// Counts a command that ended after `duration` with its lookup's `rounds`.
    pub(crate) fn command_ended(
        &mut self,
        kind: CommandKind,
        outcome: CommandOutcome,
        duration: Duration,
        rounds: u32,
    ) {
        self.commands[kind as usize][outcome as usize] += 1;
        if matches!(outcome, CommandOutcome::Found | CommandOutcome::Empty) {
            self.command_duration.observe(duration.as_secs_f64());
            self.command_rounds.observe(rounds as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_each_value_in_the_first_bucket_that_holds_it() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0, 9.0] {
            h.observe(v);
        }
        assert_eq!(h.buckets(), vec![(1.0, 2), (2.0, 1), (f64::INFINITY, 2)]);
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum(), 15.0);
    }

    #[test]
    fn datagrams_are_sorted_by_kind_method_and_code() {
        let mut c = TrafficCounts::default();
        c.count(b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe");
        c.count(b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q3:foo1:t2:aa1:y1:qe");
        c.count(b"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaae1:t2:aa1:y1:re");
        c.count(b"d1:eli302e4:oldee1:t2:aa1:y1:ee");
        c.count(b"d1:eli999e1:xe1:t2:aa1:y1:ee");
        c.count(b"not bencode");
        c.count(b"d1:y1:q1:q4:pinge"); // keys out of order: counted by what they say
        c.count(b"d1:t2:aa1:y1:r"); // truncated
        c.count(b"d1:t99:aa1:y1:re"); // a length past the end
        assert_eq!(c.queries[Method::Ping as usize], 2);
        assert_eq!(c.queries[Method::Other as usize], 1);
        assert_eq!(c.responses, 1);
        assert_eq!(c.errors[8], 1, "302 is the ninth code");
        assert_eq!(c.errors[ERROR_SLOTS - 1], 1, "unknown codes count as other");
        assert_eq!(c.malformed, 3);
        assert_eq!(c.malformed_bytes, 11 + 14 + 16);
    }
}
