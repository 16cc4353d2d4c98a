//! A deliberately simple overlay for testing the engine and the checkers.
//!
//! Every node reads a directory shared by the whole overlay (every node ever created), so a
//! lookup goes straight to the `replicas` XOR-closest nodes it knows: one hop, two messages per
//! replica. The directory never learns about departures, so under churn commands sent to dead
//! nodes time out, which gives the checkers real failures to count. [`Faults`] plant wrong
//! answers and lost values, to prove that the checkers catch them. It is test equipment, not a
//! DHT: the directory is global knowledge no real overlay has.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use core::time::Duration;
use dht_proto::{Id, Instant};

use crate::overlays::overlay::{Delays, NodeIdx, Overlay, OverlayEvent, OverlayNode, QueryId};
use crate::rng::SimRng;

/// How long a toy command waits for answers.
pub const TOY_TIMEOUT: Duration = Duration::from_secs(2);

/// Faults to plant in the toy overlay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Lookups claim success but return the farthest known nodes instead of the closest.
    pub wrong_lookups: bool,
    /// Stores are acknowledged but the value is thrown away.
    pub drop_values: bool,
    /// Gets return a value that was never put.
    pub forge_values: bool,
}

type Directory = Rc<RefCell<BTreeSet<(Id, NodeIdx)>>>;

/// The toy overlay's factory.
#[derive(Debug, Clone, Default)]
pub struct ToyOverlay {
    directory: Directory,
    /// The planted faults.
    pub faults: Faults,
    /// Replicas per key.
    pub replicas: usize,
}

impl ToyOverlay {
    /// A toy overlay with `replicas` replicas per key and the given faults.
    pub fn new(replicas: usize, faults: Faults) -> Self {
        ToyOverlay {
            directory: Rc::default(),
            faults,
            replicas: replicas.max(1),
        }
    }
}

/// A toy message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToyMsg {
    /// "Are you there?" for a lookup.
    Ping(QueryId),
    /// Answer to a ping.
    Pong(QueryId),
    /// Store a value.
    Store(QueryId, Id, Vec<u8>, i64),
    /// Answer to a store.
    Stored(QueryId),
    /// Fetch a value.
    Fetch(QueryId, Id),
    /// Answer to a fetch.
    Fetched(QueryId, Option<(Vec<u8>, i64)>),
}

#[derive(Debug)]
enum Op {
    Lookup {
        key: Id,
        found: Vec<NodeIdx>,
    },
    Put {
        key: Id,
        waiting: usize,
        acked: u32,
    },
    Get {
        key: Id,
        waiting: usize,
        best: Option<(Vec<u8>, i64)>,
        messages: u32,
    },
}

/// A toy node.
#[derive(Debug)]
pub struct ToyNode {
    idx: NodeIdx,
    id: Id,
    directory: Directory,
    faults: Faults,
    replicas: usize,
    store: BTreeMap<Id, (Vec<u8>, i64)>,
    out: VecDeque<(NodeIdx, ToyMsg)>,
    events: VecDeque<OverlayEvent>,
    ops: BTreeMap<QueryId, (Instant, Op)>,
    next_query: QueryId,
}

impl ToyNode {
    fn closest(&self, key: &Id) -> Vec<NodeIdx> {
        let dir = self.directory.borrow();
        let mut all: Vec<(Id, NodeIdx)> = dir.iter().copied().collect();
        all.sort_by_key(|(id, i)| (id.distance(key), *i));
        if self.faults.wrong_lookups {
            all.reverse();
        }
        all.into_iter()
            .take(self.replicas)
            .map(|(_, i)| i)
            .collect()
    }

    fn start(&mut self, now: Instant, op: Op) -> QueryId {
        self.next_query += 1;
        let q = self.next_query;
        self.ops.insert(q, (now + TOY_TIMEOUT, op));
        q
    }

    fn finish(&mut self, q: QueryId, timed_out: bool) {
        let Some((_, op)) = self.ops.remove(&q) else {
            return;
        };
        let ev = match op {
            Op::Lookup { key, found } => OverlayEvent::LookupDone {
                query: q,
                key,
                ok: !timed_out,
                messages: if timed_out { 1 } else { 2 },
                found,
                hops: 1,
            },
            Op::Put { key, acked, .. } => OverlayEvent::PutDone {
                query: q,
                key,
                acked,
                answered_after: None,
            },
            Op::Get {
                key,
                best,
                messages,
                ..
            } => OverlayEvent::GetDone {
                query: q,
                key,
                value: best,
                hops: 1,
                messages,
                answered_after: None,
            },
        };
        self.events.push_back(ev);
    }
}

impl OverlayNode for ToyNode {
    type Msg = ToyMsg;

    fn wire_size(msg: &ToyMsg) -> usize {
        match msg {
            ToyMsg::Store(_, _, v, _) => 40 + v.len(),
            ToyMsg::Fetched(_, Some((v, _))) => 20 + v.len(),
            _ => 20,
        }
    }

    fn id(&self) -> Id {
        self.id
    }

    fn handle_message(&mut self, _now: Instant, from: NodeIdx, msg: ToyMsg) {
        match msg {
            ToyMsg::Ping(q) => self.out.push_back((from, ToyMsg::Pong(q))),
            ToyMsg::Pong(q) => self.finish(q, false),
            ToyMsg::Store(q, key, v, seq) => {
                if !self.faults.drop_values {
                    let keep = self.store.get(&key).is_none_or(|(_, s)| *s <= seq);
                    if keep {
                        self.store.insert(key, (v, seq));
                    }
                }
                self.out.push_back((from, ToyMsg::Stored(q)));
            }
            ToyMsg::Stored(q) => {
                if let Some((_, Op::Put { waiting, acked, .. })) = self.ops.get_mut(&q) {
                    *acked += 1;
                    *waiting = waiting.saturating_sub(1);
                    if *waiting == 0 {
                        self.finish(q, false);
                    }
                }
            }
            ToyMsg::Fetch(q, key) => {
                let mut v = self.store.get(&key).cloned();
                if self.faults.forge_values {
                    v = Some((b"6:forged".to_vec(), 0));
                }
                self.out.push_back((from, ToyMsg::Fetched(q, v)));
            }
            ToyMsg::Fetched(q, v) => {
                if let Some((
                    _,
                    Op::Get {
                        waiting,
                        best,
                        messages,
                        ..
                    },
                )) = self.ops.get_mut(&q)
                {
                    *messages += 1;
                    if let Some((val, seq)) = v {
                        if best.as_ref().is_none_or(|(_, s)| *s < seq) {
                            *best = Some((val, seq));
                        }
                    }
                    *waiting = waiting.saturating_sub(1);
                    if *waiting == 0 {
                        self.finish(q, false);
                    }
                }
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<QueryId> = self
            .ops
            .iter()
            .filter(|(_, (d, _))| *d <= now)
            .map(|(q, _)| *q)
            .collect();
        for q in due {
            self.finish(q, true);
        }
    }

    fn join(&mut self, _now: Instant, _via: NodeIdx) {}

    fn lookup(&mut self, now: Instant, key: Id) -> QueryId {
        let found = self.closest(&key);
        let first = found.first().copied();
        let q = self.start(now, Op::Lookup { key, found });
        match first {
            Some(to) => self.out.push_back((to, ToyMsg::Ping(q))),
            None => self.finish(q, true),
        }
        q
    }

    fn put(&mut self, now: Instant, key: Id, value: Vec<u8>, seq: i64) -> QueryId {
        let targets = self.closest(&key);
        let q = self.start(
            now,
            Op::Put {
                key,
                waiting: targets.len(),
                acked: 0,
            },
        );
        for t in targets {
            self.out
                .push_back((t, ToyMsg::Store(q, key, value.clone(), seq)));
        }
        q
    }

    fn get(&mut self, now: Instant, key: Id) -> QueryId {
        let targets = self.closest(&key);
        let q = self.start(
            now,
            Op::Get {
                key,
                waiting: targets.len(),
                best: None,
                messages: 0,
            },
        );
        for t in targets {
            self.out.push_back((t, ToyMsg::Fetch(q, key)));
        }
        q
    }

    fn poll_transmit(&mut self) -> Option<(NodeIdx, ToyMsg)> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.ops.values().map(|(d, _)| *d).min()
    }

    fn poll_event(&mut self) -> Option<OverlayEvent> {
        self.events.pop_front()
    }

    fn state_bytes(&self) -> usize {
        core::mem::size_of::<Self>()
            + self
                .store
                .values()
                .map(|(v, _)| v.len() + 60)
                .sum::<usize>()
    }
}

impl Overlay for ToyOverlay {
    type Node = ToyNode;

    fn name(&self) -> &'static str {
        "toy"
    }

    fn new_node(&self, idx: NodeIdx, seed: u64) -> ToyNode {
        let id = Id::random(&mut SimRng::new(seed));
        self.directory.borrow_mut().insert((id, idx));
        ToyNode {
            idx,
            id,
            directory: self.directory.clone(),
            faults: self.faults,
            replicas: self.replicas,
            store: BTreeMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            ops: BTreeMap::new(),
            next_query: 0,
        }
    }

    fn converge(&self, _nodes: &mut [(NodeIdx, &mut ToyNode)], _latency: &dyn Delays) -> bool {
        true
    }

    fn predicted_hops(&self, _n: u64) -> f64 {
        1.0
    }
}

impl ToyNode {
    /// This node's index (for tests).
    pub fn idx(&self) -> NodeIdx {
        self.idx
    }
}
