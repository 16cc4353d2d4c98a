//! The end of a run: the engine's counters turned into a [`Report`], with the verdict.

use super::*;
use crate::adversary::{AdversaryReport, TargetCommands};

impl<O: Overlay> Sim<O> {
    /// The report of the run that just ended, `wall_seconds` after it started.
    pub(super) fn report(mut self, wall_seconds: f64) -> Report {
        let c = &self.c;
        let done = c.lookups_done.max(1) as f64;
        let live_start = c.lookups_started - c.lookups_abandoned;
        let unfinished_lookups = self
            .pending
            .values()
            .filter(|p| matches!(p.kind, PendingKind::Lookup { .. }))
            .count() as u64;
        let unfinished_gets = self
            .pending
            .values()
            .filter(|p| matches!(p.kind, PendingKind::Get { .. }))
            .count() as u64;
        let lat = |q: f64| c.latency_ms.quantile(q) as f64;
        let node_s = c.live_node_us / 1e6;
        let mean_msg = if c.messages > 0 {
            c.bytes as f64 / c.messages as f64
        } else {
            0.0
        };
        let maintenance_bytes = (c.bytes as f64 - c.workload_messages as f64 * mean_msg).max(0.0);
        let per_node_s = |b: f64| if node_s > 0.0 { b / node_s } else { 0.0 };
        let gets_live = c.gets_started - c.gets_abandoned;
        for r in &mut self.rounds {
            r.fraction = if r.items > 0 {
                r.retrieved as f64 / r.items as f64
            } else {
                1.0
            };
        }
        let live_nodes: Vec<NodeIdx> = self.live.iter().collect();
        let state_total: usize = live_nodes
            .iter()
            .filter_map(|&i| self.nodes[i as usize].as_ref().map(|n| n.state_bytes()))
            .sum();
        let slots = self.nodes.len().max(1);
        // The node slots themselves are the overlay's state (counted in `state_bytes`); the
        // engine's own share is its bookkeeping around them.
        let engine_bytes = self.meta.capacity() * core::mem::size_of::<Meta>()
            + self.net.heap_bytes()
            + self.live.heap_bytes();
        let cdf = latency_cdf(&c.latency_ms);
        let lookups = LookupReport {
            started: c.lookups_started,
            succeeded: c.lookups_succeeded,
            success_rate: ratio(c.lookups_succeeded, live_start),
            succeeded_at_end: c.lookups_succeeded_at_end,
            hops: HopsReport {
                mean: c.hops.mean(),
                p50: c.hops.quantile(0.5),
                p95: c.hops.quantile(0.95),
                max: c.hops.max(),
            },
            latency_ms: LatencyReport {
                p50: lat(0.5),
                p95: lat(0.95),
                p99: lat(0.99),
            },
            messages_per_lookup: c.lookup_messages as f64 / done,
            recall_at_k: if c.lookups_done > 0 {
                c.recall_sum / done
            } else {
                0.0
            },
            wrong: c.lookups_wrong,
            failed: c.lookups_failed,
            abandoned: c.lookups_abandoned,
            unfinished: unfinished_lookups,
        };
        let gets = GetReport {
            started: c.gets_started,
            found: c.gets_found,
            correct: c.gets_correct,
            success_rate: ratio(c.gets_correct, gets_live),
            stale: c.gets_stale,
            corrupt: c.gets_corrupt,
            abandoned: c.gets_abandoned,
            unfinished: unfinished_gets,
            latency_ms: quantiles(&c.get_latency_ms),
        };
        let mut failures = Vec::new();
        if c.gets_corrupt > 0 {
            failures.push(format!(
                "{} gets returned a value that was never put",
                c.gets_corrupt
            ));
        }
        if c.overflows > 0 {
            failures.push(format!(
                "{} overlay contract violations (flood or mixed-up query ids)",
                c.overflows
            ));
        }
        if let Some(min) = self.cfg.min_lookup_success {
            if lookups.success_rate < min {
                failures.push(format!(
                    "lookup success {:.5} below {min} ({} wrong, {} failed)",
                    lookups.success_rate, c.lookups_wrong, c.lookups_failed
                ));
            }
        }
        if let Some(min) = self.cfg.min_get_success {
            if gets.success_rate < min {
                failures.push(format!(
                    "get success {:.5} below {min} ({} missing, {} stale)",
                    gets.success_rate,
                    gets_live.saturating_sub(c.gets_found),
                    c.gets_stale
                ));
            }
        }
        let peak = peak_rss_bytes();
        Report {
            overlay: self.overlay.name().to_string(),
            seed: self.cfg.seed,
            nodes: self.cfg.nodes,
            churn_per_hour: self.cfg.churn.per_hour,
            loss: self.cfg.loss,
            virtual_seconds: self.cfg.duration_s,
            lookups,
            gets,
            puts: PutReport {
                started: c.puts_started,
                acknowledged: c.puts_acked,
                replicas_mean: c.replicas_sum as f64 / c.puts_started.max(1) as f64,
                items: c.items,
                latency_ms: quantiles(&c.put_latency_ms),
            },
            traffic: TrafficReport {
                messages: c.messages,
                bytes: c.bytes,
                maintenance_bytes_per_node_per_s: per_node_s(maintenance_bytes),
                bytes_per_node_per_s: per_node_s(c.bytes as f64),
                dropped: c.dropped,
                to_dead: c.to_dead,
                warmup_messages: c.warmup_messages,
                warmup_bytes: c.warmup_bytes,
            },
            wall_seconds,
            peak_rss_bytes: peak,
            bytes_per_node: peak / slots as u64,
            network: NetworkReport {
                median_rtt_ms: self.median_rtt_ms,
                partition: self.cfg.partition.clone(),
            },
            churn: ChurnReport {
                median_session_s: if self.cfg.churn.is_on() {
                    self.cfg.churn.median_session_s()
                } else {
                    0.0
                },
                leaves: c.leaves,
                joins: c.joins,
                rejoins: c.rejoins,
                mass_failed: c.mass_failed,
                live_at_end: self.live.len() as u64,
            },
            state_bytes_per_node: state_total as f64 / live_nodes.len().max(1) as f64,
            engine_bytes_per_node: engine_bytes as f64 / slots as f64,
            checks: self.rounds.clone(),
            events: c.events,
            wakeups: c.wakeups,
            idle_wakeups: c.idle_wakeups,
            hop_histogram: c.hops.bins().to_vec(),
            latency_cdf: cdf,
            time_series: self.series.buckets.clone(),
            adversary: self.adversary_report(),
            verdict: Verdict {
                passed: failures.is_empty(),
                correctness_failure: c.gets_corrupt > 0 || c.overflows > 0,
                failures,
            },
            replay: self.cfg.replay_command(self.overlay.name()),
        }
    }
}

impl<O: Overlay> Sim<O> {
    /// The report's `adversary` section, for a run with adversaries.
    fn adversary_report(&self) -> Option<AdversaryReport> {
        let a = self.cfg.adversary?;
        let tally = self.overlay.adversary_tally().unwrap_or_default();
        let live_at_end = self
            .live
            .iter()
            .filter(|&i| {
                self.nodes[i as usize]
                    .as_ref()
                    .is_some_and(|n| n.is_adversary())
            })
            .count() as u64;
        Some(AdversaryReport {
            kind: a.kind,
            fraction: a.fraction,
            target: a.target.map(|t| t.to_string()),
            disjoint_paths: self.cfg.disjoint_paths,
            live_at_end,
            tally,
            forgeries_accepted: self.c.gets_corrupt,
            target_lookups: self.target.as_ref().map(|t| TargetCommands {
                done: t.lookups_done,
                correct: t.lookups_succeeded,
                success_rate: ratio(t.lookups_succeeded, t.lookups_done),
            }),
            target_gets: self
                .target
                .as_ref()
                .filter(|t| t.is_item)
                .map(|t| TargetCommands {
                    done: t.gets_done,
                    correct: t.gets_correct,
                    success_rate: ratio(t.gets_correct, t.gets_done),
                }),
        })
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Points of the latency CDF, at most one per millisecond bin that holds observations and
/// thinned to at most [`CDF_POINTS_MAX`].
fn latency_cdf(h: &Histogram) -> Vec<(f64, f64)> {
    const CDF_POINTS_MAX: usize = 400;
    let total = h.count();
    if total == 0 {
        return Vec::new();
    }
    let bins = h.bins();
    let mut acc = 0u64;
    let mut pts = Vec::new();
    for (ms, &b) in bins.iter().enumerate() {
        acc += b;
        if b > 0 {
            pts.push((ms as f64, acc as f64 / total as f64));
        }
    }
    let step = pts.len().div_ceil(CDF_POINTS_MAX).max(1);
    let last = *pts.last().unwrap_or(&(0.0, 1.0));
    let mut out: Vec<(f64, f64)> = pts.into_iter().step_by(step).collect();
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// p50, p95 and p99 of a millisecond histogram.
fn quantiles(h: &Histogram) -> LatencyReport {
    LatencyReport {
        p50: h.quantile(0.5) as f64,
        p95: h.quantile(0.95) as f64,
        p99: h.quantile(0.99) as f64,
    }
}
