//! The iterative lookup (Kademlia's node lookup, as Mainline runs it): keep the closest
//! candidates seen so far, keep up to α requests in flight to the closest ones not yet asked,
//! and stop when the k closest candidates that are alive have all answered.
//!
//! A [`Lookup`] is a state machine that sends nothing itself. Calling protocol:
//! 1. [`Lookup::new`] with the seeds (the routing table's closest contacts);
//! 2. [`Lookup::next_request`] until `None`, sending each returned request;
//! 3. as replies come, [`Lookup::on_response`] or [`Lookup::on_failure`]; a request that is slow
//!    can be marked with [`Lookup::on_stall`] to free its slot without giving up on it;
//! 4. back to 2 until [`Lookup::is_done`]; then [`Lookup::closest_responded`] gives the result.
//!
//! Rounds (hops) are counted as in the Kademlia paper: the seeds are asked in round 1, a node
//! learned from a round-r reply is asked in round r + 1; the lookup's hop count is the largest
//! round among the k closest nodes that answered.
//!
//! **Disjoint paths** ([`Lookup::with_paths`], S/Kademlia: Baumgart and Mies, "S/Kademlia: A
//! Practicable Approach Towards Secure Key-Based Routing", ICPADS 2007, section 4.4): the seeds
//! are dealt out to d paths, closest first, round robin; a node learned from a reply belongs to
//! the path of the node that named it, unless another path knows it already, so no node is
//! ever asked by two paths and a path that meets a liar is fed only by that path's own
//! answers. Each path keeps its own α in flight, its own [`CANDIDATES_MAX`] candidates (a liar
//! on one path cannot push another path's candidates out) and ends on its own k closest; the
//! lookup ends when every path has. A candidate a path dropped is not taken back by another,
//! and one address is one candidate within a path (a liar naming an honest address under a
//! false ID does not keep the honest node from the other paths). With d = 1 it is the plain
//! lookup above, step for step.

use core::time::Duration;

use crate::id::{Distance, Id};
use crate::message::NodeInfo;
use crate::time::Instant;

/// Candidates a lookup remembers; the farthest are dropped beyond this.
pub const CANDIDATES_MAX: usize = 64;

/// Trace entries a traced lookup records.
pub const TRACE_MAX: usize = 512;

/// Disjoint paths a lookup runs at most ([`Lookup::with_paths`]).
pub const PATHS_MAX: usize = 16;

/// Contacts of one reply a lookup considers (a Mainline reply has at most 8 IPv4 and 8 IPv6
/// ones): a liar's long list cannot crowd out what the lookup knows.
pub const REPLY_CONTACTS_MAX: usize = 16;

/// IDs a lookup on several paths remembers having dropped (see [`Lookup::with_paths`]).
const DROPPED_MAX: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NotAsked,
    InFlight { stalled: bool },
    Responded,
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    distance: Distance,
    node: NodeInfo,
    round: u32,
    state: State,
    token: Option<Vec<u8>>,
    /// The disjoint path this candidate belongs to (always 0 with one path).
    path: u8,
}

/// One step of a traced lookup, for `dht lookup`'s path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEvent {
    /// A request was sent to `node` in `round`.
    Asked {
        /// Round of the request.
        round: u32,
        /// Who was asked.
        node: NodeInfo,
    },
    /// `node` answered, returning `returned` contacts, of which `new` were new to the lookup.
    Answered {
        /// Round of the request answered.
        round: u32,
        /// Who answered.
        node: NodeInfo,
        /// Contacts in the reply.
        returned: u32,
        /// Contacts not seen before in this lookup.
        new: u32,
        /// The IDs of those new contacts (at most the reply's contacts), in reply order.
        introduced: Vec<Id>,
    },
    /// `node` did not answer in time.
    TimedOut {
        /// Round of the request.
        round: u32,
        /// Who timed out.
        node: NodeInfo,
    },
}

/// What a lookup measured, for the researcher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Rounds (hops): see the module documentation.
    pub hops: u32,
    /// Requests sent.
    pub messages: u32,
    /// Replies received.
    pub responses: u32,
    /// Nodes that did not answer in time.
    pub timed_out: Vec<NodeInfo>,
    /// From start to end.
    pub duration: Duration,
    /// A get's time from start to the first value that verified (None: nothing verified, or
    /// not a get). An immutable get ends there; a mutable one goes on for a higher `seq`.
    pub first_value_after: Option<Duration>,
    /// A put's or announce's time from start until k nodes acknowledged it (None: fewer did,
    /// or not a put).
    pub stored_k_after: Option<Duration>,
    /// Values a get was sent that failed verification (an immutable value whose hash is not
    /// the key; a mutable item of another key, or whose signature over salt, seq and value does
    /// not verify): ignored, and the get asked on.
    pub forgeries: u32,
    /// Disjoint paths the lookup ran on ([`Lookup::with_paths`]; 0 in a default value).
    pub paths: u32,
}

/// One iterative lookup for a target. See the module documentation for the calling protocol.
#[derive(Debug, Clone)]
pub struct Lookup {
    target: Id,
    k: usize,
    alpha: usize,
    started: Instant,
    candidates: Vec<Candidate>,
    messages: u32,
    responses: u32,
    timed_out: Vec<NodeInfo>,
    trace: Option<Vec<TraceEvent>>,
    /// Bit p is set once a reply on path p brought nothing closer than the closest the path
    /// had already seen: from then on the path asks all of its k closest it has not asked yet at
    /// once, as the Kademlia paper's lookup does, instead of α at a time.
    converging: u16,
    /// Disjoint paths (1 to [`PATHS_MAX`]).
    paths: u8,
    /// The path whose turn it is to send next, so that paths take turns.
    next_path: u8,
    /// The path the next contact from [`Lookup::add_nodes`] is dealt to.
    next_deal: u8,
    /// IDs dropped from a lookup on several paths, never taken back (at most [`DROPPED_MAX`]).
    dropped: Vec<Id>,
    /// Whether the lookup may widen to k requests in flight once converging.
    widen: bool,
}

impl Lookup {
    /// A lookup for `target` returning `k` nodes with `alpha` requests in flight, seeded with
    /// `seeds` (asked in round 1). With `traced`, every step is recorded for [`Lookup::trace`].
    pub fn new(
        now: Instant,
        target: Id,
        k: usize,
        alpha: usize,
        seeds: &[NodeInfo],
        traced: bool,
    ) -> Self {
        let mut l = Lookup {
            target,
            k: k.max(1),
            alpha: alpha.max(1),
            started: now,
            candidates: Vec::with_capacity(seeds.len().max(k)),
            messages: 0,
            responses: 0,
            timed_out: Vec::new(),
            trace: traced.then(Vec::new),
            converging: 0,
            paths: 1,
            next_path: 0,
            next_deal: 0,
            dropped: Vec::new(),
            widen: true,
        };
        for s in seeds {
            l.add_candidate(*s, 1, 0);
        }
        l
    }

    /// Runs the lookup on `d` disjoint paths (clamped to 1..=[`PATHS_MAX`]; see the module
    /// documentation). Call it right after [`Lookup::new`]: the seeds are dealt out to the
    /// paths, closest first, round robin.
    pub fn with_paths(mut self, d: usize) -> Self {
        let d = d.clamp(1, PATHS_MAX);
        self.paths = d as u8;
        for (i, c) in self.candidates.iter_mut().enumerate() {
            c.path = (i % d) as u8;
        }
        self.next_deal = (self.candidates.len() % d) as u8;
        self
    }

    /// How many disjoint paths the lookup runs.
    pub fn paths(&self) -> usize {
        self.paths as usize
    }

    /// Keeps the lookup at α requests in flight to the end. A get that stops at the first
    /// value it finds is better served by α: asking all of the k closest at once costs
    /// datagrams that the first answer makes useless.
    pub fn without_widening(mut self) -> Self {
        self.widen = false;
        self
    }

    /// Widens a lookup that has ended to its `k` closest live candidates (a larger k than it
    /// started with): the candidates it already knows beyond the old k are asked next, and
    /// [`Lookup::is_done`] waits for them. A get that found nothing among the k closest asks
    /// the next ones, where an item's older holders sit when newcomers have taken their
    /// places. With several paths each path widens (so about d·k more requests).
    pub fn widen_to(&mut self, k: usize) {
        self.k = self.k.max(k);
    }

    /// When the lookup started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The target.
    pub fn target(&self) -> Id {
        self.target
    }

    fn add_candidate(&mut self, node: NodeInfo, round: u32, path: u8) -> bool {
        let distance = node.id.distance(&self.target);
        match self
            .candidates
            .binary_search_by(|c| c.distance.cmp(&distance))
        {
            Ok(_) => false,
            Err(pos) => {
                let several = self.paths > 1;
                let closer = if several {
                    self.candidates[..pos]
                        .iter()
                        .filter(|c| c.path == path)
                        .count()
                } else {
                    pos
                };
                if closer >= CANDIDATES_MAX || (several && self.dropped.contains(&node.id)) {
                    return false;
                }
                // One address, one candidate (within a path): a node that lies about many IDs
                // at one address gets one request, not many.
                if self
                    .candidates
                    .iter()
                    .any(|c| c.path == path && c.node.addr == node.addr)
                {
                    return false;
                }
                debug_assert!(
                    self.candidates
                        .windows(2)
                        .all(|w| w[0].distance < w[1].distance),
                    "candidates sorted by distance, each distance once"
                );
                self.candidates.insert(
                    pos,
                    Candidate {
                        distance,
                        node,
                        round,
                        state: State::NotAsked,
                        token: None,
                        path,
                    },
                );
                let full = if several {
                    self.candidates.iter().filter(|c| c.path == path).count() > CANDIDATES_MAX
                } else {
                    self.candidates.len() > CANDIDATES_MAX
                };
                if full {
                    // The path's farthest, but never a request in flight: its reply must still
                    // find its candidate.
                    if let Some(p) = self
                        .candidates
                        .iter()
                        .rposition(|c| c.path == path && !matches!(c.state, State::InFlight { .. }))
                    {
                        let gone = self.candidates.remove(p);
                        if several && self.dropped.len() < DROPPED_MAX {
                            self.dropped.push(gone.node.id);
                        }
                    }
                }
                true
            }
        }
    }

    /// Adds contacts learned outside the lookup's own requests (from a bootstrap router whose
    /// ID we did not know) as candidates of `round`, dealt out to the paths like seeds.
    pub fn add_nodes(&mut self, nodes: &[NodeInfo], round: u32) {
        for n in nodes {
            let path = self.next_deal;
            if self.add_candidate(*n, round, path) {
                self.next_deal = (path + 1) % self.paths;
            }
        }
    }

    fn in_flight(&self, path: u8) -> usize {
        self.candidates
            .iter()
            .filter(|c| c.path == path && c.state == State::InFlight { stalled: false })
            .count()
    }

    /// The next node to ask, if a slot is free and a useful candidate is left. Paths take
    /// turns.
    pub fn next_request(&mut self) -> Option<NodeInfo> {
        // A path that is done has no not-asked candidate among its k closest alive ones, so
        // `next_request_on` finds nothing there: no separate check of `is_done` is needed.
        for step in 0..self.paths {
            let p = (self.next_path + step) % self.paths;
            if let Some(n) = self.next_request_on(p) {
                self.next_path = (p + 1) % self.paths;
                return Some(n);
            }
        }
        None
    }

    /// The next node path `path` asks, if it has a free slot and a useful candidate.
    fn next_request_on(&mut self, path: u8) -> Option<NodeInfo> {
        let limit = if self.converging & (1 << path) != 0 {
            self.k
        } else {
            self.alpha
        };
        if self.in_flight(path) >= limit {
            return None;
        }
        // Only candidates among the path's k closest not-failed ones are worth asking.
        let mut alive_seen = 0;
        let mut pick = None;
        for (i, c) in self.candidates.iter().enumerate() {
            if c.path != path
                || matches!(c.state, State::Failed | State::InFlight { stalled: true })
            {
                continue;
            }
            if alive_seen >= self.k {
                break;
            }
            alive_seen += 1;
            if c.state == State::NotAsked {
                pick = Some(i);
                break;
            }
        }
        let i = pick?;
        debug_assert!(
            self.in_flight(path) < limit,
            "no more than the limit in flight"
        );
        let c = &mut self.candidates[i];
        c.state = State::InFlight { stalled: false };
        self.messages += 1;
        let (round, node) = (c.round, c.node);
        if let Some(t) = self.trace.as_mut().filter(|t| t.len() < TRACE_MAX) {
            t.push(TraceEvent::Asked { round, node });
        }
        Some(node)
    }

    fn find(&self, node: &NodeInfo) -> Option<usize> {
        let d = node.id.distance(&self.target);
        self.candidates
            .binary_search_by(|c| c.distance.cmp(&d))
            .ok()
            .filter(|&i| self.candidates[i].node.addr == node.addr)
    }

    /// `from` answered, with `nodes` closer contacts and an optional write `token`.
    pub fn on_response(&mut self, from: &NodeInfo, nodes: &[NodeInfo], token: Option<Vec<u8>>) {
        let Some(i) = self.find(from) else {
            return;
        };
        if !matches!(self.candidates[i].state, State::InFlight { .. }) {
            return;
        }
        self.responses += 1;
        let round = self.candidates[i].round;
        let path = self.candidates[i].path;
        self.candidates[i].state = State::Responded;
        self.candidates[i].token = token;
        let best_before = self.closest_alive_distance(path);
        let mut new = 0;
        // Filled only for a traced lookup: `Vec::new` does not allocate, so an untraced one
        // pays nothing for it.
        let traced = self.trace.is_some();
        let mut introduced = Vec::new();
        for n in nodes.iter().take(REPLY_CONTACTS_MAX) {
            if n.id != from.id && self.add_candidate(*n, round + 1, path) {
                new += 1;
                if traced {
                    introduced.push(n.id);
                }
            }
        }
        if self.widen && self.closest_alive_distance(path) == best_before {
            self.converging |= 1 << path;
        }
        if let Some(t) = self.trace.as_mut().filter(|t| t.len() < TRACE_MAX) {
            t.push(TraceEvent::Answered {
                round,
                node: *from,
                returned: nodes.len() as u32,
                new,
                introduced,
            });
        }
    }

    fn closest_alive_distance(&self, path: u8) -> Option<Distance> {
        self.candidates
            .iter()
            .find(|c| c.path == path && c.state != State::Failed)
            .map(|c| c.distance)
    }

    /// The request to `node` failed (timed out or answered with an error).
    pub fn on_failure(&mut self, node: &NodeInfo) {
        let Some(i) = self.find(node) else {
            return;
        };
        if !matches!(self.candidates[i].state, State::InFlight { .. }) {
            return;
        }
        self.candidates[i].state = State::Failed;
        self.timed_out.push(*node);
        let round = self.candidates[i].round;
        if let Some(t) = self.trace.as_mut().filter(|t| t.len() < TRACE_MAX) {
            t.push(TraceEvent::TimedOut { round, node: *node });
        }
    }

    /// The request to `node` is slow: free its slot for another request, but keep waiting for
    /// its reply.
    pub fn on_stall(&mut self, node: &NodeInfo) {
        if let Some(i) = self.find(node) {
            if self.candidates[i].state == (State::InFlight { stalled: false }) {
                self.candidates[i].state = State::InFlight { stalled: true };
            }
        }
    }

    /// Whether the lookup has ended: on every path, the k closest candidates that neither
    /// failed nor stalled have all answered, or no candidate is left to ask and nothing is in
    /// flight un-stalled.
    pub fn is_done(&self) -> bool {
        let mut alive_seen = [0usize; PATHS_MAX];
        let mut paths_done = 0;
        for c in &self.candidates {
            let seen = &mut alive_seen[c.path as usize];
            if *seen >= self.k {
                continue;
            }
            match c.state {
                // A stalled request counts as failed here: the lookup does not wait for it
                // (its reply is still used if it comes before the lookup ends).
                State::Failed | State::InFlight { stalled: true } => continue,
                State::Responded => {}
                State::NotAsked | State::InFlight { stalled: false } => return false,
            }
            *seen += 1;
            if *seen == self.k {
                paths_done += 1;
                if paths_done == self.paths as usize {
                    return true;
                }
            }
        }
        true
    }

    /// The closest nodes that answered (up to k), closest first, with the write token each
    /// gave; with several paths, the closest of all paths together.
    pub fn closest_responded(&self) -> Vec<(NodeInfo, Option<Vec<u8>>)> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .take(self.k)
            .map(|c| (c.node, c.token.clone()))
            .collect()
    }

    /// The figures of the lookup so far.
    pub fn stats(&self, now: Instant) -> LookupStats {
        let hops = self
            .candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .take(self.k)
            .map(|c| c.round)
            .max()
            .unwrap_or(0);
        LookupStats {
            hops,
            messages: self.messages,
            responses: self.responses,
            timed_out: self.timed_out.clone(),
            duration: now - self.started,
            first_value_after: None,
            stored_k_after: None,
            forgeries: 0,
            paths: self.paths as u32,
        }
    }

    /// The recorded steps, if the lookup was traced.
    pub fn trace(&self) -> Option<&[TraceEvent]> {
        self.trace.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, Rng, SeedableRng};
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    fn node(id: Id, i: u32) -> NodeInfo {
        NodeInfo {
            id,
            addr: SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 1)),
        }
    }

    /// A toy network: every node knows `know` random others plus its true neighbours.
    fn network(n: usize, seed: u64) -> Vec<NodeInfo> {
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..n)
            .map(|i| node(Id::random(&mut rng), i as u32))
            .collect()
    }

    fn closest_of(all: &[NodeInfo], target: &Id, k: usize) -> Vec<NodeInfo> {
        let mut v = all.to_vec();
        v.sort_by_key(|n| n.id.distance(target));
        v.truncate(k);
        v
    }

    #[test]
    fn lookup_finds_the_true_k_closest_and_never_exceeds_alpha_in_flight() {
        let all = network(500, 1);
        let mut rng = SmallRng::seed_from_u64(2);
        let dead: BTreeMap<u32, ()> = (0..50).map(|_| (rng.gen_range(0..500), ())).collect();
        let target = Id::random(&mut rng);
        let seeds: Vec<NodeInfo> = (0..8).map(|i| all[i * 7]).collect();
        let mut l = Lookup::new(Instant::ZERO, target, 8, 3, &seeds, false);
        let index_of = |n: &NodeInfo| all.iter().position(|m| m == n).unwrap() as u32;
        for step in 0..10_000 {
            let mut batch = Vec::new();
            while let Some(n) = l.next_request() {
                batch.push(n);
            }
            if step == 0 {
                assert_eq!(batch.len(), 3, "a lookup starts with alpha requests");
            }
            // Once converging, the paper's lookup asks all of the k closest at once.
            assert!(batch.len() <= 8, "more than k requests at once");
            if batch.is_empty() {
                break;
            }
            for n in batch {
                if dead.contains_key(&index_of(&n)) {
                    l.on_failure(&n);
                } else {
                    // Each node answers with the 8 closest it "knows": the true closest.
                    let reply = closest_of(&all, &target, 8 + (index_of(&n) as usize % 5));
                    l.on_response(&n, &reply, Some(vec![1]));
                }
            }
        }
        assert!(l.is_done());
        let alive: Vec<NodeInfo> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| !dead.contains_key(&(*i as u32)))
            .map(|(_, n)| *n)
            .collect();
        let got: Vec<NodeInfo> = l.closest_responded().into_iter().map(|(n, _)| n).collect();
        assert_eq!(got, closest_of(&alive, &target, 8));
        assert!(l.stats(Instant::ZERO).hops >= 1);
    }

    #[test]
    fn a_traced_answer_names_the_contacts_it_introduced() {
        let all = network(30, 9);
        let target = Id([5; 20]);
        let mut l = Lookup::new(Instant::ZERO, target, 8, 1, &all[..2], true);
        let first = l.next_request().unwrap();
        // The reply names a seed (known already), itself (never a candidate) and two new nodes.
        let reply = [all[0], all[1], first, all[10], all[11]];
        l.on_response(&first, &reply, None);
        let answered = l
            .trace()
            .unwrap()
            .iter()
            .find_map(|t| match t {
                TraceEvent::Answered {
                    new, introduced, ..
                } => Some((*new, introduced.clone())),
                _ => None,
            })
            .expect("the answer is traced");
        assert_eq!(answered, (2, vec![all[10].id, all[11].id]));
    }

    #[test]
    fn a_lookup_with_no_answers_ends_and_reports_the_timeouts() {
        let all = network(20, 5);
        let target = Id([7; 20]);
        let mut l = Lookup::new(Instant::ZERO, target, 8, 3, &all[..10], false);
        for _ in 0..100 {
            let Some(n) = l.next_request() else { break };
            l.on_failure(&n);
        }
        assert!(l.is_done());
        assert!(l.closest_responded().is_empty());
        assert_eq!(l.stats(Instant::ZERO).timed_out.len(), 10);
    }

    #[test]
    fn a_stalled_request_frees_its_slot_but_its_late_reply_still_counts() {
        let all = network(20, 6);
        let target = Id([9; 20]);
        let mut l = Lookup::new(Instant::ZERO, target, 8, 1, &all[..4], false);
        let first = l.next_request().unwrap();
        assert!(l.next_request().is_none(), "alpha = 1");
        l.on_stall(&first);
        let second = l.next_request().unwrap();
        assert_ne!(first, second);
        l.on_response(&first, &[], None);
        assert_eq!(l.stats(Instant::ZERO).responses, 1);
    }

    #[test]
    fn a_widened_lookup_asks_the_next_candidates_before_it_ends_again() {
        let all = network(40, 8);
        let target = Id([3; 20]);
        // Seeded with the 16 closest; every node answers with nothing new.
        let seeds = closest_of(&all, &target, 16);
        let mut l = Lookup::new(Instant::ZERO, target, 8, 3, &seeds, false);
        let run_to_end = |l: &mut Lookup, asked: &mut Vec<NodeInfo>| {
            while !l.is_done() {
                let n = l
                    .next_request()
                    .expect("an undone lookup has a request to send");
                l.on_response(&n, &[], None);
                asked.push(n);
            }
        };
        let mut asked = Vec::new();
        run_to_end(&mut l, &mut asked);
        assert_eq!(asked.len(), 8, "k = 8 asks the 8 closest");
        l.widen_to(16);
        assert!(!l.is_done(), "the next 8 are not asked yet");
        run_to_end(&mut l, &mut asked);
        asked.sort_by_key(|n| n.id.distance(&target));
        assert_eq!(
            asked, seeds,
            "the widened lookup asked exactly the 16 closest"
        );
    }

    /// Kademlia-like tables: for each node, up to 8 random nodes in each bucket's range.
    fn tables(all: &[NodeInfo], seed: u64) -> Vec<Vec<NodeInfo>> {
        let mut rng = SmallRng::seed_from_u64(seed);
        all.iter()
            .map(|me| {
                let mut buckets: BTreeMap<usize, Vec<NodeInfo>> = BTreeMap::new();
                for n in all {
                    if n != me {
                        let b = n.id.distance(&me.id).leading_zeros();
                        buckets.entry(b).or_default().push(*n);
                    }
                }
                let mut table = Vec::new();
                for (_, mut b) in buckets {
                    while b.len() > 8 {
                        b.swap_remove(rng.gen_range(0..b.len()));
                    }
                    table.extend(b);
                }
                table
            })
            .collect()
    }

    /// Runs `l` to its end against `reply` (None: the node does not answer).
    fn run(l: &mut Lookup, mut reply: impl FnMut(&NodeInfo) -> Option<Vec<NodeInfo>>) {
        for _ in 0..10_000 {
            let mut batch = Vec::new();
            while let Some(n) = l.next_request() {
                batch.push(n);
            }
            if batch.is_empty() {
                break;
            }
            for n in batch {
                match reply(&n) {
                    Some(nodes) => l.on_response(&n, &nodes, None),
                    None => l.on_failure(&n),
                }
            }
        }
        assert!(l.is_done());
    }

    /// Marks `who` asked (in flight), as a request to it would, so that its reply counts.
    fn asked(l: &mut Lookup, who: &NodeInfo) {
        l.candidates
            .iter_mut()
            .filter(|c| c.node == *who)
            .for_each(|c| c.state = State::InFlight { stalled: false });
    }

    #[test]
    fn disjoint_paths_never_ask_a_node_twice_and_follow_only_their_own_answers() {
        let all = network(400, 11);
        let tables = tables(&all, 12);
        let index_of = |n: &NodeInfo| all.iter().position(|m| m == n).unwrap();
        let mut rng = SmallRng::seed_from_u64(13);
        for _ in 0..20 {
            let target = Id::random(&mut rng);
            let seeds = closest_of(&tables[0], &target, 16);
            let mut l = Lookup::new(Instant::ZERO, target, 8, 3, &seeds, false).with_paths(4);
            // Seeds are dealt out closest first, round robin.
            let paths: Vec<u8> = l.candidates.iter().map(|c| c.path).collect();
            assert_eq!(paths[..8], [0, 1, 2, 3, 0, 1, 2, 3]);
            let mut asked = BTreeMap::new();
            let mut path_of: BTreeMap<usize, u8> = l
                .candidates
                .iter()
                .map(|c| (index_of(&c.node), c.path))
                .collect();
            let mut l2 = l.clone();
            run(&mut l2, |n| {
                let i = index_of(n);
                *asked.entry(i).or_insert(0) += 1;
                let reply = closest_of(&tables[i], &target, 8);
                let p = path_of[&i];
                for r in &reply {
                    // A node named first by a path's answer joins that path, and no other.
                    path_of.entry(index_of(r)).or_insert(p);
                }
                Some(reply)
            });
            l = l2;
            assert!(asked.values().all(|&times| times == 1), "asked twice");
            for c in &l.candidates {
                assert_eq!(c.path, path_of[&index_of(&c.node)], "path of a candidate");
            }
            for p in 0..4 {
                assert!(
                    l.candidates
                        .iter()
                        .any(|c| c.path == p && c.state == State::Responded),
                    "every path ran"
                );
            }
        }
    }

    /// An eclipse: a `fraction` of the nodes answer every lookup with the adversaries closest
    /// to its target. Counted over 300 lookups: how often the closest honest node was found.
    fn eclipse_successes(paths: usize, fraction: f64) -> usize {
        let all = network(1000, 21);
        let tables = tables(&all, 22);
        let mut rng = SmallRng::seed_from_u64(23);
        let bad: Vec<bool> = (0..all.len()).map(|_| rng.gen_bool(fraction)).collect();
        let index_of = |n: &NodeInfo| all.iter().position(|m| m == n).unwrap();
        let adversaries: Vec<NodeInfo> =
            (0..all.len()).filter(|&i| bad[i]).map(|i| all[i]).collect();
        let honest: Vec<NodeInfo> = (0..all.len())
            .filter(|&i| !bad[i])
            .map(|i| all[i])
            .collect();
        let mut found = 0;
        for t in 0..300 {
            let target = Id::random(&mut rng);
            let origin = (0..all.len())
                .find(|&i| !bad[(i + t * 7) % all.len()])
                .unwrap();
            let origin = (origin + t * 7) % all.len();
            let seeds = closest_of(&tables[origin], &target, 16);
            let mut l = Lookup::new(Instant::ZERO, target, 8, 3, &seeds, false).with_paths(paths);
            run(&mut l, |n| {
                let i = index_of(n);
                Some(if bad[i] {
                    closest_of(&adversaries, &target, 8)
                } else {
                    closest_of(&tables[i], &target, 8)
                })
            });
            let best = closest_of(&honest, &target, 1)[0];
            if l.closest_responded().iter().any(|(n, _)| *n == best)
                || l.candidates
                    .iter()
                    .any(|c| c.node == best && c.state == State::Responded)
            {
                found += 1;
            }
        }
        found
    }

    #[test]
    fn disjoint_paths_find_the_closest_honest_node_through_an_eclipse() {
        // Measured at this seed: d = 1 finds it 297, 275, 252 and 220 times in 300 at 20, 30,
        // 40 and 50% adversaries; d = 2, 4 and 8 all 300 times at each.
        let one = eclipse_successes(1, 0.4);
        let four = eclipse_successes(4, 0.4);
        eprintln!("closest honest node found: d = 1: {one}/300, d = 4: {four}/300");
        assert!(four >= 285, "d = 4 found it in only {four} of 300");
        assert!(
            four >= one + 30,
            "d = 4 ({four}) is not clearly better than d = 1 ({one})"
        );
    }

    #[test]
    fn one_path_is_the_plain_lookup() {
        let all = network(300, 31);
        let tables = tables(&all, 32);
        let index_of = |n: &NodeInfo| all.iter().position(|m| m == n).unwrap();
        let target = Id([0x42; 20]);
        let seeds = closest_of(&tables[5], &target, 16);
        let mut plain = Lookup::new(Instant::ZERO, target, 8, 3, &seeds, false);
        let mut one = plain.clone().with_paths(1);
        let mut order = [Vec::new(), Vec::new()];
        for (l, order) in [&mut plain, &mut one].into_iter().zip(order.iter_mut()) {
            run(l, |n| {
                order.push(*n);
                Some(closest_of(&tables[index_of(n)], &target, 8))
            });
        }
        assert_eq!(order[0], order[1]);
        assert_eq!(plain.closest_responded(), one.closest_responded());
    }

    #[test]
    fn a_liar_flooding_one_path_cannot_push_out_the_other_paths_candidates() {
        let all = network(300, 41);
        let target = Id([0x42; 20]);
        let seeds = closest_of(&all[..200], &target, 16);
        let mut l = Lookup::new(Instant::ZERO, target, 8, 3, &seeds, false).with_paths(2);
        let liar = l.candidates.iter().find(|c| c.path == 1).unwrap().node;
        let path0_before: Vec<NodeInfo> = l
            .candidates
            .iter()
            .filter(|c| c.path == 0)
            .map(|c| c.node)
            .collect();
        let lies_on_path_1 = |l: &Lookup| {
            l.candidates
                .iter()
                .filter(|c| {
                    c.path == 1
                        && matches!(c.node.addr, SocketAddr::V4(a) if a.ip().octets()[1] > 0)
                })
                .count()
        };
        // Six long replies of invented IDs, all closer than anything known, at fresh
        // addresses: more than a path holds.
        let mut fake = 0u32;
        for round in 0..6 {
            let lies: Vec<NodeInfo> = (0..75)
                .map(|_| {
                    fake += 1;
                    let mut id = target;
                    id.0[19] ^= fake as u8;
                    id.0[18] ^= (fake >> 8) as u8 | 1;
                    node(id, 100_000 + fake)
                })
                .collect();
            // Mark the liar asked, then let it answer.
            asked(&mut l, &liar);
            l.on_response(&liar, &lies, None);
            if round == 0 {
                // A reply counts at most REPLY_CONTACTS_MAX contacts.
                let taken = lies_on_path_1(&l);
                assert!(taken <= REPLY_CONTACTS_MAX, "{taken}");
            }
        }
        let path0_after: Vec<NodeInfo> = l
            .candidates
            .iter()
            .filter(|c| c.path == 0)
            .map(|c| c.node)
            .collect();
        assert_eq!(path0_before, path0_after, "path 0 kept every candidate");
        let path1 = l.candidates.iter().filter(|c| c.path == 1).count();
        assert!(path1 <= CANDIDATES_MAX, "{path1}");
        assert!(
            lies_on_path_1(&l) > 3 * REPLY_CONTACTS_MAX,
            "the flood reached the cap"
        );
    }

    #[test]
    fn a_false_id_at_an_honest_address_on_one_path_does_not_hide_it_from_another() {
        let all = network(50, 43);
        let target = Id([0x11; 20]);
        let seeds = closest_of(&all, &target, 4);
        let mut l = Lookup::new(Instant::ZERO, target, 8, 3, &seeds, false).with_paths(2);
        let honest = all[40];
        let liar = l.candidates.iter().find(|c| c.path == 1).unwrap().node;
        let teller = l.candidates.iter().find(|c| c.path == 0).unwrap().node;
        let mut forged = honest;
        forged.id = Id([0x11; 20]);
        forged.id.0[19] ^= 1;
        for (who, named) in [(liar, forged), (teller, honest)] {
            asked(&mut l, &who);
            l.on_response(&who, &[named], None);
        }
        assert!(
            l.candidates.iter().any(|c| c.node == honest && c.path == 0),
            "the honest node joined path 0"
        );
    }

    #[test]
    fn a_candidate_one_path_dropped_is_not_taken_back_by_another() {
        let all = network(300, 47);
        let target = Id([0x24; 20]);
        let seeds = closest_of(&all[..100], &target, 16);
        let mut l = Lookup::new(Instant::ZERO, target, 8, 3, &seeds, false).with_paths(2);
        let on = |l: &Lookup, p: u8| -> Vec<NodeInfo> {
            l.candidates
                .iter()
                .filter(|c| c.path == p)
                .map(|c| c.node)
                .collect()
        };
        let path1_seeds = on(&l, 1);
        let liar = path1_seeds[0];
        // The liar fills path 1 with closer contacts (in replies of 16), pushing its other
        // seeds out.
        for batch in 0..(CANDIDATES_MAX / REPLY_CONTACTS_MAX + 1) {
            let closer: Vec<NodeInfo> = (0..REPLY_CONTACTS_MAX)
                .map(|j| {
                    let n = (batch * REPLY_CONTACTS_MAX + j) as u32 + 1;
                    let mut id = target;
                    id.0[18] ^= (n >> 8) as u8 | 0x01;
                    id.0[19] ^= n as u8;
                    node(id, 200_000 + n)
                })
                .collect();
            asked(&mut l, &liar);
            l.on_response(&liar, &closer, None);
        }
        let dropped: Vec<NodeInfo> = path1_seeds
            .iter()
            .filter(|n| !on(&l, 1).contains(n))
            .copied()
            .collect();
        assert!(!dropped.is_empty(), "path 1 dropped some of its seeds");
        // Path 0 is then told of them: they stay out.
        let teller = on(&l, 0)[0];
        asked(&mut l, &teller);
        l.on_response(&teller, &dropped, None);
        for n in &dropped {
            assert!(!on(&l, 0).contains(n), "{n:?} came back on path 0");
        }
    }
}
