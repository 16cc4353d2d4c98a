//! The run's report: JSON with the field names of issue 3 (and more), and a text summary.
//!
//! Every field is a function of the seed and the build, except `wall_seconds`,
//! `peak_rss_bytes` and `bytes_per_node`, which measure the machine (see [`TIMING_FIELDS`]).

use serde::Serialize;

use crate::output::stats::Bucket;

/// Top-level fields that measure the machine rather than the run; everything else in a report
/// is byte-identical for the same seed and build.
pub const TIMING_FIELDS: [&str; 3] = ["wall_seconds", "peak_rss_bytes", "bytes_per_node"];

/// The full report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Overlay name (`kademlia`, `chord`, ...).
    pub overlay: String,
    /// The seed.
    pub seed: u64,
    /// Target number of live nodes.
    pub nodes: u32,
    /// Churn: fraction of live nodes leaving per hour.
    pub churn_per_hour: f64,
    /// Per-message loss probability.
    pub loss: f64,
    /// Length of the measured phase, virtual seconds.
    pub virtual_seconds: u64,
    /// Lookup figures.
    pub lookups: LookupReport,
    /// Get figures.
    pub gets: GetReport,
    /// Put figures.
    pub puts: PutReport,
    /// Traffic figures, over the measured phase.
    pub traffic: TrafficReport,
    /// Wall-clock time of the run, seconds (machine-dependent).
    pub wall_seconds: f64,
    /// Peak resident memory of the process (VmHWM), bytes (machine-dependent).
    pub peak_rss_bytes: u64,
    /// Peak resident memory divided by the number of node slots ever created.
    pub bytes_per_node: u64,
    /// The network model's derived figures.
    pub network: NetworkReport,
    /// Churn figures.
    pub churn: ChurnReport,
    /// Mean of the overlay's own `state_bytes` over live nodes at the end.
    pub state_bytes_per_node: f64,
    /// The engine's own bytes per node slot (meta, places, membership index).
    pub engine_bytes_per_node: f64,
    /// Item checks (a get of every stored item), one per round.
    pub checks: Vec<CheckRound>,
    /// Events processed.
    pub events: u64,
    /// Of those, wake-ups that reached a live node at its pending time.
    pub wakeups: u64,
    /// Of those, wake-ups at which the node had nothing due (a request answered before its
    /// resend time, say): re-armed without a call into the node.
    pub idle_wakeups: u64,
    /// Hop histogram of finished lookups: entry `i` counts lookups of `i` hops.
    pub hop_histogram: Vec<u64>,
    /// Lookup latency CDF: (milliseconds, fraction of finished lookups at or below).
    pub latency_cdf: Vec<(f64, f64)>,
    /// The measured phase in intervals.
    pub time_series: Vec<Bucket>,
    /// The adversaries of the run and what they did (absent when every node is honest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adversary: Option<crate::adversary::AdversaryReport>,
    /// What the checkers concluded.
    pub verdict: Verdict,
    /// The one command that replays this run.
    pub replay: String,
}

/// Lookup figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LookupReport {
    /// Lookups issued.
    pub started: u64,
    /// Lookups whose answer contained the true closest owner.
    pub succeeded: u64,
    /// succeeded / started (lookups abandoned because their node left count as not started).
    pub success_rate: f64,
    /// Lookups whose answer contained the true closest owner as of their end (without the
    /// owner as of their start; see the checker).
    pub succeeded_at_end: u64,
    /// Rounds (Kademlia) or forwarding steps of finished lookups.
    pub hops: HopsReport,
    /// Lookup latency quantiles.
    pub latency_ms: LatencyReport,
    /// Mean messages per finished lookup.
    pub messages_per_lookup: f64,
    /// Mean fraction of the true owners a lookup returned.
    pub recall_at_k: f64,
    /// Lookups the overlay called successful whose answer excluded the true owner.
    pub wrong: u64,
    /// Lookups the overlay itself reported as failed.
    pub failed: u64,
    /// Lookups whose issuing node left before they ended.
    pub abandoned: u64,
    /// Lookups still running at the end.
    pub unfinished: u64,
}

/// Hop figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HopsReport {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// Largest.
    pub max: u64,
}

/// Latency quantiles, milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyReport {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Get figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GetReport {
    /// Gets issued (workload gets and check gets).
    pub started: u64,
    /// Gets that returned a value.
    pub found: u64,
    /// Gets that returned the latest acknowledged version (or newer).
    pub correct: u64,
    /// correct / started.
    pub success_rate: f64,
    /// Gets that returned an older version.
    pub stale: u64,
    /// Gets that returned a value never put: correctness failures.
    pub corrupt: u64,
    /// Gets whose issuing node left before they ended.
    pub abandoned: u64,
    /// Gets still running at the end.
    pub unfinished: u64,
    /// Time to the first verified value of the gets that found one.
    pub latency_ms: LatencyReport,
}

/// Put figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PutReport {
    /// Puts issued (first puts and republishes).
    pub started: u64,
    /// Puts acknowledged by at least one replica.
    pub acknowledged: u64,
    /// Mean replicas acknowledging a put.
    pub replicas_mean: f64,
    /// Distinct items put.
    pub items: u64,
    /// Time until k replicas acknowledged (or, if fewer did, until the put ended), of the puts
    /// at least one acknowledged.
    pub latency_ms: LatencyReport,
}

/// Traffic over the measured phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrafficReport {
    /// Messages sent (including those the network then dropped).
    pub messages: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Traffic not spent on workload commands, per live node per second: total bytes minus
    /// the workload's messages times the mean message size.
    pub maintenance_bytes_per_node_per_s: f64,
    /// All traffic per live node per second.
    pub bytes_per_node_per_s: f64,
    /// Messages dropped by loss or partition.
    pub dropped: u64,
    /// Messages addressed to nodes that were dead on arrival.
    pub to_dead: u64,
    /// Messages and bytes sent during growth and settling, before measurement.
    pub warmup_messages: u64,
    /// Bytes sent during growth and settling.
    pub warmup_bytes: u64,
}

/// Derived network figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NetworkReport {
    /// Median round-trip time between two random nodes, milliseconds.
    pub median_rtt_ms: f64,
    /// The partition, if any, as given.
    pub partition: Option<String>,
}

/// Churn figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChurnReport {
    /// Median session, seconds (0 without churn).
    pub median_session_s: f64,
    /// Departures.
    pub leaves: u64,
    /// Fresh nodes joined during the measured phase.
    pub joins: u64,
    /// Old nodes that came back with their saved state.
    pub rejoins: u64,
    /// Nodes that vanished in the mass failure.
    pub mass_failed: u64,
    /// Live nodes at the end.
    pub live_at_end: u64,
}

/// One round of item checks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckRound {
    /// Seconds into the measured phase.
    pub t_s: f64,
    /// Items checked.
    pub items: u64,
    /// Items whose get returned the latest version.
    pub retrieved: u64,
    /// retrieved / items.
    pub fraction: f64,
}

/// The verdict of the checkers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// No check failed.
    pub passed: bool,
    /// A correctness failure (a corrupt value) was seen.
    pub correctness_failure: bool,
    /// What failed, one line each.
    pub failures: Vec<String>,
}

impl Report {
    /// The JSON text of the report, pretty-printed.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The JSON text without the machine-dependent fields, for determinism checks.
    pub fn deterministic_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            for f in TIMING_FIELDS {
                o.remove(f);
            }
        }
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// A short text summary.
    pub fn summary(&self) -> String {
        let l = &self.lookups;
        let mut s = String::new();
        s += &format!(
            "{} | {} nodes | seed {} | churn {:.3}/h | loss {} | {} virtual s\n",
            self.overlay,
            self.nodes,
            self.seed,
            self.churn_per_hour,
            self.loss,
            self.virtual_seconds
        );
        s += &format!(
            "lookups: {} started, {} succeeded ({:.4}%; {} by the owner at their end alone), {} wrong, {} failed, recall@k {:.4}\n",
            l.started,
            l.succeeded,
            100.0 * l.success_rate,
            l.succeeded_at_end,
            l.wrong,
            l.failed,
            l.recall_at_k
        );
        s += &format!(
            "  hops mean {:.2} p50 {} p95 {} max {} | latency p50 {:.0} ms p95 {:.0} ms p99 {:.0} ms (median RTT {:.0} ms) | {:.1} msgs/lookup\n",
            l.hops.mean, l.hops.p50, l.hops.p95, l.hops.max, l.latency_ms.p50, l.latency_ms.p95,
            l.latency_ms.p99, self.network.median_rtt_ms, l.messages_per_lookup
        );
        s += &format!(
            "puts: {} started, {} acknowledged | gets: {} started, {} found, {} correct ({:.4}%), {} stale, {} corrupt\n",
            self.puts.started, self.puts.acknowledged, self.gets.started, self.gets.found,
            self.gets.correct, 100.0 * self.gets.success_rate, self.gets.stale, self.gets.corrupt
        );
        let (p, g) = (&self.puts.latency_ms, &self.gets.latency_ms);
        s += &format!(
            "  put latency (k acks) p50 {:.0} ms p95 {:.0} ms p99 {:.0} ms | get latency (first verified value) p50 {:.0} ms p95 {:.0} ms p99 {:.0} ms\n",
            p.p50, p.p95, p.p99, g.p50, g.p95, g.p99
        );
        for c in &self.checks {
            s += &format!(
                "  check at {:.0} s: {}/{} items retrievable ({:.4}%)\n",
                c.t_s,
                c.retrieved,
                c.items,
                100.0 * c.fraction
            );
        }
        s += &format!(
            "traffic: {} messages, {} bytes, maintenance {:.1} B/s/node, total {:.1} B/s/node\n",
            self.traffic.messages,
            self.traffic.bytes,
            self.traffic.maintenance_bytes_per_node_per_s,
            self.traffic.bytes_per_node_per_s
        );
        s += &format!(
            "churn: {} leaves, {} joins, {} rejoins, {} live at end\n",
            self.churn.leaves, self.churn.joins, self.churn.rejoins, self.churn.live_at_end
        );
        if let Some(a) = &self.adversary {
            let m = &a.tally.mischief;
            s += &format!(
                "adversaries: {} at {}% ({} created, {} live at end), honest lookups on {} path(s) | {} lies, {} dropped, {} forged, {} swallowed | forged values refused {}, accepted {}\n",
                a.kind.name(),
                a.fraction * 100.0,
                a.tally.created,
                a.live_at_end,
                a.disjoint_paths,
                m.lies,
                m.dropped,
                m.forged,
                m.swallowed,
                a.tally.forgeries_refused,
                a.forgeries_accepted
            );
            for (what, t) in [("lookups", &a.target_lookups), ("gets", &a.target_gets)] {
                if let Some(t) = t {
                    s += &format!(
                        "  {what} of the target {}: {}/{} correct ({:.2}%)\n",
                        a.target.as_deref().unwrap_or("?"),
                        t.correct,
                        t.done,
                        100.0 * t.success_rate
                    );
                }
            }
        }
        s += &format!(
            "cost: {:.1} s wall, {} events ({} wake-ups, {} idle), peak RSS {:.1} MiB ({} B/node; overlay state {:.0} B/node, engine {:.0} B/node)\n",
            self.wall_seconds,
            self.events,
            self.wakeups,
            self.idle_wakeups,
            self.peak_rss_bytes as f64 / (1 << 20) as f64,
            self.bytes_per_node,
            self.state_bytes_per_node,
            self.engine_bytes_per_node
        );
        if self.verdict.passed {
            s += "verdict: PASS\n";
        } else {
            s += "verdict: FAIL\n";
            for f in &self.verdict.failures {
                s += &format!("  {f}\n");
            }
            s += &format!("replay: {}\n", self.replay);
        }
        s
    }
}

/// Peak resident set size of this process, from `/proc/self/status` (VmHWM); 0 where that
/// file does not exist.
pub fn peak_rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
