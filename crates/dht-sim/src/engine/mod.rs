//! The discrete-event engine: one thread, virtual time, one event queue.
//!
//! The queue (`engine/queue.rs`) is a timing wheel ordered by (virtual time, sequence number); the
//! sequence number breaks ties in the order events were scheduled, so a run is a pure function of
//! its seed.
//! Nodes live in a vector indexed by [`NodeIdx`]; per node the engine keeps only a 24-byte
//! `Meta` (its one pending wake-up, its next timeout and its incarnation), a 12-byte place in the network
//! model and its entries in the membership index. A node that leaves keeps nothing, unless its
//! state is set aside for a later return (see [`crate::world::churn`]).
//!
//! After every call into a node the engine drains it as the overlay trait says: transmits (each
//! becomes a delivery after the network model's delay, or is dropped), then events (judged by
//! the checkers), then the next timeout (one wake-up per node; a wake-up whose time no longer
//! matches the node's is stale and ignored).
//!
//! | file | what it holds |
//! | --- | --- |
//! | `mod.rs` | [`Sim`]: setup, the event loop, joins and departures, draining nodes, judging events |
//! | `queue.rs` | the timing-wheel event queue |
//! | `workload.rs` | items, puts, gets, planted lookup targets, commands issued and pending |
//! | `finish.rs` | the end of a run: counters turned into the [`Report`] and its verdict |
//! | `progress.rs` | the progress bar or lines on stderr |
//! | [`prefetch`](mod@prefetch) | the cache hint of the hot path |

mod finish;
pub mod prefetch;
mod progress;
mod queue;
mod workload;

use std::collections::BTreeMap;

use dht_proto::Id;

use crate::checks::checker::{
    judge_lookup, value_for, GetVerdict, ItemRecord, OwnerOracle, Reference,
};
use crate::config::{SimConfig, REPUBLISH_S};
use crate::output::report::{
    peak_rss_bytes, CheckRound, ChurnReport, GetReport, HopsReport, LatencyReport, LookupReport,
    NetworkReport, PutReport, Report, TrafficReport, Verdict,
};
use crate::output::stats::{Histogram, TimeSeries, HOPS_MAX, LATENCY_MS_MAX};
use crate::overlays::overlay::{NodeIdx, Overlay, OverlayEvent, OverlayNode, QueryId};
use crate::rng::{mix3, SimRng};
use crate::world::churn::{Churn, REJOIN_FRACTION, SAVED_POOL_FRACTION, SAVE_FRACTION};
use crate::world::live::LiveIndex;
use crate::world::network::{Network, Partition};
use prefetch::{prefetch, prefetch_lines};
use progress::Progress;
use queue::Queue;

/// Messages one call into a node may emit before the engine stops draining it and counts an
/// overflow (an overlay bug: a node must not flood in one step).
pub const TRANSMITS_PER_CALL_MAX: usize = 100_000;

/// Events one call into a node may report before the engine stops draining them.
pub const EVENTS_PER_CALL_MAX: usize = 10_000;

/// Workload commands in flight at once; beyond it new commands are skipped and counted.
pub const PENDING_OPS_MAX: usize = 1 << 22;

/// Items checked per check round; beyond it a deterministic stride sample is checked.
pub const CHECK_ITEMS_MAX: usize = 200_000;

/// Delay after a mass failure before the extra item check, in seconds.
pub const MASS_FAILURE_CHECK_DELAY_S: f64 = 60.0;

/// Pairs sampled to print the median round-trip time.
pub const RTT_SAMPLES: usize = 20_000;

/// Exit code of a run whose checkers saw a correctness failure (a corrupt value).
pub const EXIT_CORRECTNESS: u8 = 3;

/// Exit code of a run that missed a threshold (success rate) without corrupting anything.
pub const EXIT_LIVENESS: u8 = 4;

/// Stream labels for per-node seeds and the engine's own generators.
const STREAM_NODE: u64 = 10;
const STREAM_ENGINE: u64 = 11;
const STREAM_RTT: u64 = 12;

/// "No wake-up scheduled."
const NO_TIMER: u64 = u64::MAX;

/// The engine's per-node bookkeeping.
#[derive(Debug, Clone, Copy)]
struct Meta {
    /// The instant of the node's one valid pending wake-up, or [`NO_TIMER`].
    timer_at: u64,
    /// The node's own next timeout as of the last call into it, or [`NO_TIMER`]: a node changes
    /// only when called, so a wake-up before this instant has nothing to do and is re-armed
    /// without reading the node.
    next_due: u64,
    /// Bumped whenever the node dies, so session ends scheduled for an earlier life are stale.
    incarnation: u32,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            timer_at: NO_TIMER,
            next_due: NO_TIMER,
            incarnation: 0,
        }
    }
}

/// What happens at an instant.
enum Ev<M> {
    Deliver { from: NodeIdx, to: NodeIdx, msg: M },
    Timer { node: NodeIdx },
    GrowJoin { n: u32 },
    MeasureStart,
    Leave { node: NodeIdx, incarnation: u32 },
    BalanceJoin,
    Lookup { n: u64 },
    Put { n: u64 },
    Get { n: u64 },
    Republish { key: Id },
    CheckRound { round: u32 },
    MassFailure { fraction: f64 },
    End,
}

/// A workload command in flight.
#[derive(Debug, Clone, Copy)]
enum PendingKind {
    Lookup {
        /// The most responsible owner when it began, if the owner rule is cheap.
        owner_at_start: Option<NodeIdx>,
    },
    Put {
        seq: i64,
    },
    Get {
        expected_seq: i64,
        round: Option<u32>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    kind: PendingKind,
    key: Id,
    start_us: u64,
}

/// Running counts, turned into a [`Report`] at the end.
#[derive(Debug)]
struct Counters {
    lookups_started: u64,
    lookups_done: u64,
    lookups_succeeded: u64,
    lookups_succeeded_at_end: u64,
    lookups_wrong: u64,
    lookups_failed: u64,
    lookups_abandoned: u64,
    recall_sum: f64,
    lookup_messages: u64,
    hops: Histogram,
    latency_ms: Histogram,
    gets_started: u64,
    gets_found: u64,
    gets_correct: u64,
    gets_stale: u64,
    gets_corrupt: u64,
    gets_abandoned: u64,
    /// Found gets: milliseconds to the first verified value.
    get_latency_ms: Histogram,
    /// Acknowledged puts: milliseconds until k replicas acknowledged (or the put ended).
    put_latency_ms: Histogram,
    puts_started: u64,
    puts_acked: u64,
    replicas_sum: u64,
    items: u64,
    messages: u64,
    bytes: u64,
    dropped: u64,
    to_dead: u64,
    warmup_messages: u64,
    warmup_bytes: u64,
    workload_messages: u64,
    leaves: u64,
    joins: u64,
    rejoins: u64,
    mass_failed: u64,
    live_node_us: f64,
    events: u64,
    wakeups: u64,
    idle_wakeups: u64,
    overflows: u64,
    skipped: u64,
}

impl Counters {
    fn new() -> Self {
        Counters {
            lookups_started: 0,
            lookups_done: 0,
            lookups_succeeded: 0,
            lookups_succeeded_at_end: 0,
            lookups_wrong: 0,
            lookups_failed: 0,
            lookups_abandoned: 0,
            recall_sum: 0.0,
            lookup_messages: 0,
            hops: Histogram::new(HOPS_MAX),
            latency_ms: Histogram::new(LATENCY_MS_MAX),
            get_latency_ms: Histogram::new(LATENCY_MS_MAX),
            put_latency_ms: Histogram::new(LATENCY_MS_MAX),
            gets_started: 0,
            gets_found: 0,
            gets_correct: 0,
            gets_stale: 0,
            gets_corrupt: 0,
            gets_abandoned: 0,
            puts_started: 0,
            puts_acked: 0,
            replicas_sum: 0,
            items: 0,
            messages: 0,
            bytes: 0,
            dropped: 0,
            to_dead: 0,
            warmup_messages: 0,
            warmup_bytes: 0,
            workload_messages: 0,
            leaves: 0,
            joins: 0,
            rejoins: 0,
            mass_failed: 0,
            live_node_us: 0.0,
            events: 0,
            wakeups: 0,
            idle_wakeups: 0,
            overflows: 0,
            skipped: 0,
        }
    }
}

/// One simulation run of overlay `O`.
///
/// Calling protocol: [`Sim::new`], print [`Sim::parameters`], then [`Sim::run`], which returns
/// the [`Report`].
pub struct Sim<O: Overlay> {
    overlay: O,
    oracle: Box<dyn OwnerOracle<O::Node>>,
    cfg: SimConfig,
    rng: SimRng,
    net: Network,
    queue: Queue<Ev<<O::Node as OverlayNode>::Msg>>,
    now: u64,
    nodes: Vec<Option<O::Node>>,
    meta: Vec<Meta>,
    live: LiveIndex,
    saved: Vec<NodeIdx>,
    saved_max: usize,
    pending: BTreeMap<(NodeIdx, QueryId), Pending>,
    /// Holders of each pending lookup's planted target (overlays that search for items).
    planted: BTreeMap<(NodeIdx, QueryId), Vec<NodeIdx>>,
    reference: Reference,
    measuring: bool,
    measure_start_us: u64,
    end_us: u64,
    series: TimeSeries,
    rounds: Vec<CheckRound>,
    c: Counters,
    scratch: Vec<OverlayEvent>,
    median_rtt_ms: f64,
    mass_failure: Option<(f64, f64)>,
    /// A `targeted` run's target key and how honest commands for it fared.
    target: Option<Target>,
}

/// The key a `targeted` attack surrounds, and the counts of honest commands for it.
#[derive(Debug, Default)]
struct Target {
    key: Id,
    /// Whether the key is the workload's first item (gets ask for it too).
    is_item: bool,
    lookups_done: u64,
    lookups_succeeded: u64,
    gets_done: u64,
    gets_correct: u64,
}

/// Share of the lookups, and of the gets, that a `targeted` run aims at its target key.
pub const TARGET_SHARE: f64 = 0.5;

/// Draws an origin makes to find an honest live node before it gives up.
const ORIGIN_DRAWS_MAX: usize = 64;

/// The key a `targeted` attack surrounds when none is given: the workload's first item, which
/// such a run makes immutable (an immutable item's key is its place in the DHT).
pub fn default_target(seed: u64) -> Id {
    Id::sha1(&value_for(seed, 0, 0))
}

impl<O: Overlay> Sim<O> {
    /// A run of `overlay` with `cfg`, judged by `oracle`. Fails on a malformed partition or
    /// mass-failure spec.
    pub fn new(
        overlay: O,
        oracle: Box<dyn OwnerOracle<O::Node>>,
        cfg: SimConfig,
    ) -> Result<Self, String> {
        let measure_start_us = (cfg.warmup_total_s() * 1e6) as u64;
        let end_us = measure_start_us + cfg.duration_s * 1_000_000;
        let partition = match &cfg.partition {
            Some(p) => Some(Partition::parse(p, measure_start_us)?),
            None => None,
        };
        let mass_failure = cfg.mass_failure_parsed()?;
        let mut net = Network::new(cfg.seed, cfg.loss, partition);
        let mut rtt_rng = SimRng::new(mix3(cfg.seed, STREAM_RTT, 0));
        let median_rtt_ms = net.median_rtt_ms(cfg.nodes.max(2), RTT_SAMPLES, &mut rtt_rng);
        let saved_max = (cfg.nodes as f64 * SAVED_POOL_FRACTION) as usize;
        Ok(Sim {
            overlay,
            oracle,
            rng: SimRng::new(mix3(cfg.seed, STREAM_ENGINE, 0)),
            net,
            queue: Queue::new(),
            now: 0,
            nodes: Vec::new(),
            meta: Vec::new(),
            live: LiveIndex::new(),
            saved: Vec::new(),
            saved_max,
            pending: BTreeMap::new(),
            planted: BTreeMap::new(),
            reference: Reference::new(),
            measuring: false,
            measure_start_us,
            end_us,
            series: TimeSeries::new(measure_start_us, cfg.duration_s * 1_000_000),
            rounds: Vec::new(),
            c: Counters::new(),
            scratch: Vec::new(),
            median_rtt_ms,
            mass_failure,
            target: cfg
                .adversary
                .filter(|a| a.kind == crate::adversary::Kind::Targeted)
                .and_then(|a| a.target)
                .map(|key| Target {
                    key,
                    is_item: key == default_target(cfg.seed),
                    ..Target::default()
                }),
            cfg,
        })
    }

    /// The seed and every parameter derived from it, one per line, to print before the run.
    pub fn parameters(&self) -> String {
        let c = &self.cfg;
        let ch: Churn = c.churn;
        let mut s = String::new();
        s += &format!("seed: {}\n", c.seed);
        s += &format!("overlay: {}\n", self.overlay.name());
        s += &format!("nodes: {}\n", c.nodes);
        s += &format!(
            "network: median RTT {:.1} ms (sampled over {} pairs), loss {}, partition {}\n",
            self.median_rtt_ms,
            RTT_SAMPLES,
            c.loss,
            c.partition.as_deref().unwrap_or("none")
        );
        if ch.is_on() {
            s += &format!(
                "churn: {:.4}/h, Weibull shape {}, mean session {:.1} min, median {:.1} min, save {} rejoin {} join delay {} s\n",
                ch.per_hour,
                crate::world::churn::SESSION_SHAPE,
                ch.mean_session_s() / 60.0,
                ch.median_session_s() / 60.0,
                SAVE_FRACTION,
                REJOIN_FRACTION,
                ch.join_delay_mean_s()
            );
        } else {
            s += "churn: none\n";
        }
        s += &format!(
            "phases: grow {:.0} s by {}, settle to {:.0} s, measure {} s\n",
            c.grow_s(),
            if c.converge {
                "converge (if the overlay has it)"
            } else {
                "joins"
            },
            c.warmup_total_s(),
            c.duration_s
        );
        let window = (c.duration_s as f64 - c.workload_tail_s).max(1.0);
        s += &format!(
            "workload: {} lookups ({:.2}/s), {} puts ({:.3}/s, {}% mutable, republish every {} s), {} gets ({:.2}/s)\n",
            c.lookups,
            c.lookups as f64 / window,
            c.puts,
            c.puts as f64 / window,
            c.mutable_fraction * 100.0,
            REPUBLISH_S,
            c.gets,
            c.gets as f64 / window
        );
        s += &format!(
            "checks: owner rule {}, k {}, item checks every {}, mass failure {}\n",
            self.oracle.rule(),
            c.k,
            c.check_interval_s
                .map_or("never".to_string(), |i| format!("{i} s")),
            c.mass_failure.as_deref().unwrap_or("none")
        );
        if let Some(a) = &c.adversary {
            s += &format!(
                "adversaries: {} at {}% of the nodes{}; honest lookups on {} disjoint path(s)\n",
                a.kind.name(),
                a.fraction * 100.0,
                a.target.map_or(String::new(), |t| format!(", around {t}")),
                c.disjoint_paths
            );
        } else if c.disjoint_paths != 1 {
            s += &format!("lookups: {} disjoint paths\n", c.disjoint_paths);
        }
        s += &format!("replay: {}\n", c.replay_command(self.overlay.name()));
        s
    }

    /// Runs to the end and returns the report.
    pub fn run(mut self) -> Report {
        let wall = std::time::Instant::now();
        let mut progress = Progress::new(self.cfg.progress, self.end_us);
        self.build();
        self.queue.push(self.measure_start_us, Ev::MeasureStart);
        self.queue.push(self.end_us, Ev::End);
        let mut last_us = 0u64;
        // How many of (this event, the next) the previous turn's first stage covered: it
        // fetched its next two, so both when it saw two ahead, this one alone when one.
        let mut fetched_ahead = 0u8;
        while let Some((at, ev)) = self.queue.pop() {
            self.now = at;
            if self.measuring {
                self.c.live_node_us += self.live.len() as f64 * (at - last_us) as f64;
                let live = self.live.len() as u64;
                if let Some(b) = self.series.at(at) {
                    b.live_nodes = live;
                }
            }
            last_us = at;
            self.c.events += 1;
            if matches!(ev, Ev::End) {
                break;
            }
            // The memory of the events to come is fetched while this one runs, in two
            // stages: two events ahead, the node's own lines and the datagram (addresses known
            // without reading anything); one event ahead, what those lines point to (the
            // sender's bucket). An event not known that far ahead (near the start of a
            // millisecond slot) gets its first stage late.
            let ahead = self.queue.peek(1).is_some() as u8 + self.queue.peek(0).is_some() as u8;
            if fetched_ahead == 0 {
                self.prefetch_event(&ev);
            }
            if fetched_ahead < 2 {
                if let Some(next) = self.queue.peek(0) {
                    self.prefetch_event(next);
                }
            }
            if let Some(next) = self.queue.peek(1) {
                self.prefetch_event(next);
            }
            if let Some(Ev::Deliver { to, msg, .. }) = self.queue.peek(0) {
                if let Some(node) = self.nodes.get(*to as usize).and_then(|n| n.as_ref()) {
                    node.prefetch_state(msg);
                }
            }
            fetched_ahead = ahead;
            self.dispatch(ev);
            progress.tick(self.now, self.live.len());
        }
        progress.finish();
        self.report(wall.elapsed().as_secs_f64())
    }

    /// Creates the network: all at once through `converge`, or the first growth join.
    fn build(&mut self) {
        if self.cfg.nodes == 0 {
            return;
        }
        if self.cfg.converge {
            for _ in 0..self.cfg.nodes {
                let idx = self.spawn();
                let id = self.node_id(idx);
                self.live.insert(idx, id);
            }
            let net = &self.net;
            let mut refs: Vec<(NodeIdx, &mut O::Node)> = self
                .nodes
                .iter_mut()
                .enumerate()
                .filter_map(|(i, n)| n.as_mut().map(|n| (i as NodeIdx, n)))
                .collect();
            if self.overlay.converge(&mut refs, net) {
                drop(refs);
                for idx in 0..self.cfg.nodes {
                    self.drain(idx);
                }
                return;
            }
            drop(refs);
            // No shortcut: start over and grow by joins.
            self.nodes.clear();
            self.meta.clear();
            self.live = LiveIndex::new();
        }
        self.queue.push(0, Ev::GrowJoin { n: 0 });
    }

    /// Asks the processor to load what event `ev` will read first: its node's liveness,
    /// bookkeeping and first lines, a datagram's bytes and the two ends' places. The engine
    /// calls it for the next event while the current one runs, so that the misses of the
    /// next, which at a million nodes are most of an event's cost, overlap with this one's work.
    fn prefetch_event(&self, ev: &Ev<<O::Node as OverlayNode>::Msg>) {
        match ev {
            Ev::Deliver { from, to, msg } => {
                self.prefetch_node(*to);
                self.net.prefetch(*to);
                self.net.prefetch(*from);
                let payload = <O::Node as OverlayNode>::payload_ptr(msg);
                if !payload.is_null() {
                    let len = <O::Node as OverlayNode>::wire_size(msg).clamp(1, 512);
                    prefetch_lines(payload, len);
                }
            }
            Ev::Timer { node } => self.prefetch_node(*node),
            _ => {}
        }
    }

    fn dispatch(&mut self, ev: Ev<<O::Node as OverlayNode>::Msg>) {
        match ev {
            Ev::Deliver { from, to, msg } => {
                if !self.live.is_live(to) {
                    self.c.to_dead += 1;
                    return;
                }
                if let Some(node) = self.nodes[to as usize].as_mut() {
                    node.handle_message(self.now.into_instant(), from, msg);
                }
                self.drain(to);
            }
            Ev::Timer { node } => {
                let m = &mut self.meta[node as usize];
                if m.timer_at != self.now || !self.live.is_live(node) {
                    return;
                }
                self.c.wakeups += 1;
                // A node whose next timeout moved later (its request was answered before the
                // resend time) has nothing due: it is only re-armed, and not even read.
                if m.next_due > self.now {
                    self.c.idle_wakeups += 1;
                    m.timer_at = m.next_due;
                    if m.next_due != NO_TIMER {
                        self.queue.push(m.next_due, Ev::Timer { node });
                    }
                    return;
                }
                m.timer_at = NO_TIMER;
                if let Some(n) = self.nodes[node as usize].as_mut() {
                    n.handle_timeout(self.now.into_instant());
                }
                self.drain(node);
            }
            Ev::GrowJoin { n } => {
                let idx = self.spawn();
                self.bring_up(idx);
                if n + 1 < self.cfg.nodes {
                    let step = self.cfg.grow_s() * 1e6 / self.cfg.nodes as f64;
                    self.queue
                        .push(((n + 1) as f64 * step) as u64, Ev::GrowJoin { n: n + 1 });
                }
            }
            Ev::MeasureStart => self.measure_start(),
            Ev::Leave { node, incarnation } => {
                if self.live.is_live(node) && self.meta[node as usize].incarnation == incarnation {
                    let save = self.rng.chance(SAVE_FRACTION);
                    self.kill(node, save);
                    self.c.leaves += 1;
                    let d = self.rng.exp(self.cfg.churn.join_delay_mean_s());
                    self.queue
                        .push(self.now + (d * 1e6) as u64, Ev::BalanceJoin);
                }
            }
            Ev::BalanceJoin => {
                let idx = if !self.saved.is_empty() && self.rng.chance(REJOIN_FRACTION) {
                    let i = self.rng.below(self.saved.len() as u64) as usize;
                    self.c.rejoins += 1;
                    self.saved.swap_remove(i)
                } else {
                    self.c.joins += 1;
                    self.spawn()
                };
                self.bring_up(idx);
            }
            Ev::Lookup { n } => {
                if let Some(from) = self.origin() {
                    let key = match &self.target {
                        Some(t) if self.rng.chance(TARGET_SHARE) => t.key,
                        _ => Id::random(&mut self.rng),
                    };
                    let holders = self.plant(&key);
                    // A lookup that ended inside `issue` has been judged already.
                    let owner_at_start = if self.oracle.cheap_at_start() {
                        let owners = self.oracle.owners(&key, &self.live, &self.nodes);
                        owners.first().copied()
                    } else {
                        None
                    };
                    let kind = PendingKind::Lookup { owner_at_start };
                    match self.issue(from, kind, key, None) {
                        Some(q) if !holders.is_empty() && self.pending.contains_key(&(from, q)) => {
                            self.planted.insert((from, q), holders);
                        }
                        _ => self.unplant(&key, holders),
                    }
                }
                self.chain(n + 1, self.cfg.lookups, |n| Ev::Lookup { n });
            }
            Ev::Put { n } => {
                self.new_item(n);
                self.chain(n + 1, self.cfg.puts, |n| Ev::Put { n });
            }
            Ev::Get { n } => {
                let keys = self.reference.acked_keys();
                if !keys.is_empty() {
                    let mut key = keys[self.rng.below(keys.len() as u64) as usize];
                    if let Some(t) = self.target.as_mut().filter(|t| t.is_item) {
                        if self.reference.get(&t.key).is_some_and(|r| r.seq_acked >= 0)
                            && self.rng.chance(TARGET_SHARE)
                        {
                            key = t.key;
                        }
                    }
                    self.issue_get(key, None);
                }
                self.chain(n + 1, self.cfg.gets, |n| Ev::Get { n });
            }
            Ev::Republish { key } => {
                if let Some(rec) = self.reference.get(&key).copied() {
                    let seq = if rec.mutable { rec.seq_sent + 1 } else { 0 };
                    self.put_version(key, rec.number, seq);
                    self.schedule_republish(key);
                }
            }
            Ev::CheckRound { round } => self.check_round(round),
            Ev::MassFailure { fraction } => {
                let n = (self.live.len() as f64 * fraction).round() as usize;
                for _ in 0..n {
                    if let Some(idx) = self.live.random(&mut self.rng) {
                        self.kill(idx, false);
                        self.c.mass_failed += 1;
                    }
                }
                if self.cfg.puts > 0 {
                    let at = self.now + (MASS_FAILURE_CHECK_DELAY_S * 1e6) as u64;
                    let round = self.rounds.len() as u32;
                    self.rounds.push(CheckRound::default());
                    self.queue.push(at, Ev::CheckRound { round });
                }
            }
            Ev::End => {}
        }
    }

    /// Schedules command number `n` of a stream of `total` spread evenly over the workload
    /// window, each at a random instant within its slot.
    fn chain(&mut self, n: u64, total: u64, ev: impl Fn(u64) -> Ev<<O::Node as OverlayNode>::Msg>) {
        if n >= total {
            return;
        }
        let window = self.workload_window_us() as f64;
        let at =
            self.measure_start_us + (window * (n as f64 + self.rng.unit()) / total as f64) as u64;
        self.queue.push(at.max(self.now), ev(n));
    }

    fn workload_window_us(&self) -> u64 {
        let d = self.cfg.duration_s as f64;
        ((d - self.cfg.workload_tail_s).max(d * 0.5) * 1e6) as u64
    }

    fn measure_start(&mut self) {
        self.measuring = true;
        self.c.warmup_messages = self.c.messages;
        self.c.warmup_bytes = self.c.bytes;
        self.c.messages = 0;
        self.c.bytes = 0;
        self.c.dropped = 0;
        self.c.to_dead = 0;
        if self.cfg.churn.is_on() {
            let live: Vec<NodeIdx> = self.live.iter().collect();
            for idx in live {
                let s = self.cfg.churn.residual_session_s(&mut self.rng);
                self.schedule_leave(idx, s);
            }
        }
        self.chain(0, self.cfg.lookups, |n| Ev::Lookup { n });
        self.chain(0, self.cfg.puts, |n| Ev::Put { n });
        self.chain(0, self.cfg.gets, |n| Ev::Get { n });
        if let Some(interval) = self.cfg.check_interval_s.filter(|&i| i > 0) {
            let mut t = self.measure_start_us + interval * 1_000_000;
            while t + (self.cfg.workload_tail_s * 1e6) as u64 <= self.end_us {
                let round = self.rounds.len() as u32;
                self.rounds.push(CheckRound::default());
                self.queue.push(t, Ev::CheckRound { round });
                t += interval * 1_000_000;
            }
        }
        if let Some((fraction, at_s)) = self.mass_failure {
            self.queue.push(
                self.measure_start_us + (at_s * 1e6) as u64,
                Ev::MassFailure { fraction },
            );
        }
    }

    fn schedule_leave(&mut self, idx: NodeIdx, session_s: f64) {
        if !session_s.is_finite() {
            return;
        }
        let at = self.now.saturating_add((session_s * 1e6) as u64);
        if at < self.end_us {
            let incarnation = self.meta[idx as usize].incarnation;
            self.queue.push(
                at,
                Ev::Leave {
                    node: idx,
                    incarnation,
                },
            );
        }
    }

    fn schedule_republish(&mut self, key: Id) {
        let at = self.now + (REPUBLISH_S * 1e6) as u64;
        if at + (self.cfg.workload_tail_s * 1e6) as u64 <= self.end_us {
            self.queue.push(at, Ev::Republish { key });
        }
    }

    /// Creates node slot number `nodes.len()`, dead until [`Sim::bring_up`].
    fn spawn(&mut self) -> NodeIdx {
        let idx = self.nodes.len() as NodeIdx;
        let node = self
            .overlay
            .new_node(idx, mix3(self.cfg.seed, STREAM_NODE, idx as u64));
        self.nodes.push(Some(node));
        self.meta.push(Meta::default());
        self.net.ensure(idx);
        idx
    }

    fn node_id(&self, idx: NodeIdx) -> Id {
        self.nodes[idx as usize]
            .as_ref()
            .map_or(Id::ZERO, |n| n.id())
    }

    /// Makes `idx` live and has it join through a random live node (the first node joins no
    /// one: it is the network). With adversaries, through an honest one: a real node's first
    /// contact is a well-known bootstrap router, not a stranger (what that router answers may
    /// still name adversaries).
    fn bring_up(&mut self, idx: NodeIdx) {
        // Any live node when no honest one was drawn: only the very first node joins no one.
        let via = self.origin().or_else(|| self.live.random(&mut self.rng));
        let id = self.node_id(idx);
        self.live.insert(idx, id);
        if let Some(node) = self.nodes[idx as usize].as_mut() {
            self.overlay.node_up(idx, node);
            match via {
                Some(via) => node.join(self.now.into_instant(), via),
                None => {
                    // The first node is the whole network: a ring of one, the whole torus, a
                    // membership of one. The overlay's converged state for one node is exactly
                    // that (overlays without the shortcut start alone anyway).
                    self.overlay.converge(&mut [(idx, node)], &self.net);
                }
            }
        }
        self.drain(idx);
        if self.measuring && self.cfg.churn.is_on() {
            let s = self.cfg.churn.session_s(&mut self.rng);
            self.schedule_leave(idx, s);
        }
    }

    /// `idx` leaves without notice. Its commands in flight are abandoned (item checks are
    /// re-issued from another node); its state is kept aside if `save`, otherwise dropped.
    fn kill(&mut self, idx: NodeIdx, save: bool) {
        let id = self.node_id(idx);
        self.live.remove(idx, id);
        if let Some(node) = self.nodes[idx as usize].as_ref() {
            self.overlay.node_down(idx, node);
        }
        let m = &mut self.meta[idx as usize];
        m.incarnation = m.incarnation.wrapping_add(1);
        m.timer_at = NO_TIMER;
        let orphans: Vec<(NodeIdx, QueryId)> = self
            .pending
            .range((idx, 0)..=(idx, QueryId::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in orphans {
            let Some(p) = self.pending.remove(&k) else {
                continue;
            };
            match p.kind {
                PendingKind::Lookup { .. } => {
                    self.c.lookups_abandoned += 1;
                    if let Some(h) = self.planted.remove(&k) {
                        self.unplant(&p.key, h);
                    }
                }
                PendingKind::Put { .. } => {}
                PendingKind::Get { round: Some(r), .. } => {
                    self.c.gets_started -= 1;
                    self.issue_get(p.key, Some(r));
                }
                PendingKind::Get { round: None, .. } => self.c.gets_abandoned += 1,
            }
        }
        if save && self.saved_max > 0 {
            if self.saved.len() >= self.saved_max {
                let i = self.rng.below(self.saved.len() as u64) as usize;
                let evicted = self.saved.swap_remove(i);
                self.nodes[evicted as usize] = None;
            }
            self.saved.push(idx);
        } else {
            self.nodes[idx as usize] = None;
        }
    }

    /// Asks the processor to load what an event at node `idx` reads first (its liveness, its
    /// bookkeeping and its state) in parallel: at a million nodes each is a cache miss, and in
    /// sequence they were a large part of an event's cost.
    fn prefetch_node(&self, idx: NodeIdx) {
        let i = idx as usize;
        self.live.prefetch(idx);
        if let Some(m) = self.meta.get(i) {
            prefetch(m as *const Meta);
        }
        if let Some(n) = self.nodes.get(i) {
            let p = n as *const Option<O::Node> as *const u8;
            // The node's whole lines from its start (up to twelve: its maps' and table's
            // headers are among them).
            let lines = core::mem::size_of::<Option<O::Node>>().min(768) / 64;
            prefetch_lines(p, lines * 64);
        }
    }

    /// Drains node `idx` after a call: transmits, then events, then its next wake-up.
    fn drain(&mut self, idx: NodeIdx) {
        let Some(node) = self.nodes.get_mut(idx as usize).and_then(|n| n.as_mut()) else {
            return;
        };
        let mut sent = 0usize;
        while let Some((to, msg)) = node.poll_transmit() {
            let size = <O::Node as OverlayNode>::wire_size(&msg) as u64;
            self.c.messages += 1;
            self.c.bytes += size;
            if self.measuring {
                if let Some(b) = self.series.at(self.now) {
                    b.messages += 1;
                    b.bytes += size;
                }
            }
            match self.net.transit(&mut self.rng, self.now, idx, to) {
                Some(d) => {
                    let at = self.now + d.as_micros() as u64;
                    self.queue.push(at, Ev::Deliver { from: idx, to, msg });
                }
                None => self.c.dropped += 1,
            }
            sent += 1;
            if sent >= TRANSMITS_PER_CALL_MAX {
                self.c.overflows += 1;
                break;
            }
        }
        let mut events = std::mem::take(&mut self.scratch);
        while let Some(e) = node.poll_event() {
            events.push(e);
            if events.len() >= EVENTS_PER_CALL_MAX {
                self.c.overflows += 1;
                break;
            }
        }
        let m = &mut self.meta[idx as usize];
        m.next_due = NO_TIMER;
        if let Some(t) = node.poll_timeout() {
            let t = t.as_micros().max(self.now);
            m.next_due = t;
            if t < m.timer_at {
                m.timer_at = t;
                self.queue.push(t, Ev::Timer { node: idx });
            }
        }
        for e in events.drain(..) {
            self.on_event(idx, e);
        }
        self.scratch = events;
    }

    /// Judges a finished command against the reference model.
    fn on_event(&mut self, idx: NodeIdx, e: OverlayEvent) {
        let query = match &e {
            OverlayEvent::LookupDone { query, .. }
            | OverlayEvent::PutDone { query, .. }
            | OverlayEvent::GetDone { query, .. } => *query,
        };
        // Events of commands the overlay started itself (a join's lookup) are not judged.
        let Some(p) = self.pending.remove(&(idx, query)) else {
            return;
        };
        let latency_ms = (self.now - p.start_us) / 1000;
        match (e, p.kind) {
            (
                OverlayEvent::LookupDone {
                    ok,
                    found,
                    hops,
                    messages,
                    ..
                },
                PendingKind::Lookup { owner_at_start },
            ) => {
                let owners = self
                    .oracle
                    .owners_given(&p.key, &self.live, &self.nodes, &found);
                let owners = &owners[..owners.len().min(self.cfg.k.max(1))];
                let v = judge_lookup(ok, &found, owners, owner_at_start);
                if let Some(h) = self.planted.remove(&(idx, query)) {
                    self.unplant(&p.key, h);
                }
                if let Some(t) = self.target.as_mut().filter(|t| t.key == p.key) {
                    t.lookups_done += 1;
                    t.lookups_succeeded += v.success as u64;
                }
                self.c.lookups_done += 1;
                self.c.lookups_succeeded += v.success as u64;
                self.c.lookups_succeeded_at_end += v.success_at_end as u64;
                self.c.lookups_wrong += v.wrong as u64;
                self.c.lookups_failed += (!ok) as u64;
                self.c.recall_sum += v.recall;
                self.c.lookup_messages += messages as u64;
                self.c.workload_messages += messages as u64;
                self.c.hops.add(hops as u64);
                self.c.latency_ms.add(latency_ms);
                if let Some(b) = self.series.at(self.now) {
                    b.lookups_done += 1;
                    b.lookups_succeeded += v.success as u64;
                    b.workload_messages += messages as u64;
                }
            }
            (
                OverlayEvent::PutDone {
                    acked,
                    answered_after,
                    ..
                },
                PendingKind::Put { seq },
            ) => {
                self.reference.acknowledged(&p.key, seq, acked);
                if acked > 0 {
                    let ms = answered_after.map_or(latency_ms, |d| d.as_millis() as u64);
                    self.c.put_latency_ms.add(ms);
                }
                self.c.puts_acked += (acked > 0) as u64;
                self.c.replicas_sum += acked as u64;
            }
            (
                OverlayEvent::GetDone {
                    value,
                    messages,
                    answered_after,
                    ..
                },
                PendingKind::Get {
                    expected_seq,
                    round,
                },
            ) => {
                let v =
                    self.reference
                        .judge_get(self.cfg.seed, &p.key, expected_seq, value.as_ref());
                if value.is_some() {
                    let ms = answered_after.map_or(latency_ms, |d| d.as_millis() as u64);
                    self.c.get_latency_ms.add(ms);
                }
                if let Some(t) = self.target.as_mut().filter(|t| t.key == p.key) {
                    t.gets_done += 1;
                    t.gets_correct += (v == GetVerdict::Correct) as u64;
                }
                self.c.gets_found += value.is_some() as u64;
                self.c.gets_correct += (v == GetVerdict::Correct) as u64;
                self.c.gets_stale += (v == GetVerdict::Stale) as u64;
                self.c.gets_corrupt += (v == GetVerdict::Corrupt) as u64;
                self.c.workload_messages += messages as u64;
                if let Some(b) = self.series.at(self.now) {
                    b.gets_done += 1;
                    b.gets_correct += (v == GetVerdict::Correct) as u64;
                    b.workload_messages += messages as u64;
                }
                if let Some(r) = round.and_then(|r| self.rounds.get_mut(r as usize)) {
                    r.retrieved += (v == GetVerdict::Correct) as u64;
                }
            }
            // An event of the wrong kind for its query id: the overlay mixed up its handles.
            _ => self.c.overflows += 1,
        }
    }
}

/// The report's exit code: 0 on a pass, [`EXIT_CORRECTNESS`] on a correctness failure,
/// [`EXIT_LIVENESS`] on a missed threshold.
pub fn exit_code(r: &Report) -> u8 {
    if r.verdict.correctness_failure {
        EXIT_CORRECTNESS
    } else if !r.verdict.passed {
        EXIT_LIVENESS
    } else {
        0
    }
}

trait IntoInstant {
    fn into_instant(self) -> dht_proto::Instant;
}

impl IntoInstant for u64 {
    fn into_instant(self) -> dht_proto::Instant {
        dht_proto::Instant::from_micros(self)
    }
}
