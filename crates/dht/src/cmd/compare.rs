//! `dht compare`: every overlay on the same network, churn and workload, side by side.
//!
//! For each overlay and each `--nodes N` it runs a static network, then at the smallest N one
//! run per `--churn` profile. It writes `compare.md` (a Markdown table), `compare.json` (every
//! run's report figures) and SVG plots into `--out`: hops against N on a log axis with each
//! paper's prediction drawn beside the measurement, messages per lookup against N, success
//! against churn, state per node and maintenance traffic against N.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use dht_sim::churn::Churn;
use dht_sim::plots::{line_chart, Series};
use dht_sim::registry::{predicted_hops, run_overlay, OVERLAYS};
use dht_sim::SimConfig;

/// Lookups per run, at most (fewer for small networks).
pub const COMPARE_LOOKUPS_MAX: u64 = 2000;

/// Flags of `dht compare`.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// Network sizes (repeat the flag); default 1024 and 16384.
    #[arg(long = "nodes")]
    pub nodes: Vec<u32>,
    /// Churn profiles for the success-against-churn runs (repeat); default none, 20%, 50%.
    #[arg(long = "churn")]
    pub churn: Vec<String>,
    /// Overlays to run (repeat); default all.
    #[arg(long = "overlay")]
    pub overlay: Vec<String>,
    /// Output directory.
    #[arg(long, default_value = "compare-out")]
    pub out: PathBuf,
    /// The seed of every run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Measured phase of each run, virtual seconds.
    #[arg(long, default_value_t = 600)]
    pub duration: u64,
}

/// One run's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Overlay.
    pub overlay: String,
    /// Nodes.
    pub nodes: u32,
    /// Churn per hour.
    pub churn_per_hour: f64,
    /// Mean hops.
    pub hops_mean: f64,
    /// The paper's prediction.
    pub hops_predicted: f64,
    /// Median hops.
    pub hops_p50: u64,
    /// Messages per lookup.
    pub messages_per_lookup: f64,
    /// Lookup success rate.
    pub success_rate: f64,
    /// Latency p50, ms.
    pub latency_p50_ms: f64,
    /// Overlay state per node, bytes.
    pub state_bytes_per_node: f64,
    /// Maintenance traffic, bytes per node per second.
    pub maintenance_bytes_per_node_per_s: f64,
    /// Wall time, seconds.
    pub wall_seconds: f64,
    /// Peak RSS so far, bytes.
    pub peak_rss_bytes: u64,
}

/// Runs `dht compare`.
pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let sizes = if args.nodes.is_empty() {
        vec![1024, 16384]
    } else {
        args.nodes.clone()
    };
    let churns = if args.churn.is_empty() {
        vec!["none".to_string(), "20%".to_string(), "50%".to_string()]
    } else {
        args.churn.clone()
    };
    let overlays: Vec<String> = if args.overlay.is_empty() {
        OVERLAYS.iter().map(|s| s.to_string()).collect()
    } else {
        args.overlay.clone()
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let smallest = *sizes.iter().min().unwrap_or(&1024);
    let mut rows = Vec::new();
    for name in &overlays {
        let mut plan: Vec<(u32, String)> = sizes.iter().map(|&n| (n, "none".to_string())).collect();
        plan.extend(
            churns
                .iter()
                .filter(|c| Churn::parse(c).is_ok_and(|c| c.is_on()))
                .map(|c| (smallest, c.clone())),
        );
        for (n, churn) in plan {
            let cfg = SimConfig {
                seed: args.seed,
                nodes: n,
                lookups: (n as u64).min(COMPARE_LOOKUPS_MAX),
                churn: Churn::parse(&churn).map_err(anyhow::Error::msg)?,
                churn_spec: churn.clone(),
                duration_s: args.duration,
                converge: churn == "none",
                progress: false,
                ..SimConfig::default()
            };
            eprintln!("compare: {name} at {n} nodes, churn {churn}");
            let r = run_overlay(name, cfg, &mut |_| {})?;
            rows.push(Row {
                overlay: name.clone(),
                nodes: n,
                churn_per_hour: r.churn_per_hour,
                hops_mean: r.lookups.hops.mean,
                hops_predicted: predicted_hops(name, n as u64).unwrap_or(f64::NAN),
                hops_p50: r.lookups.hops.p50,
                messages_per_lookup: r.lookups.messages_per_lookup,
                success_rate: r.lookups.success_rate,
                latency_p50_ms: r.lookups.latency_ms.p50,
                state_bytes_per_node: r.state_bytes_per_node,
                maintenance_bytes_per_node_per_s: r.traffic.maintenance_bytes_per_node_per_s,
                wall_seconds: r.wall_seconds,
                peak_rss_bytes: r.peak_rss_bytes,
            });
        }
    }
    let md = markdown(&rows, &args);
    std::fs::write(args.out.join("compare.md"), &md)?;
    std::fs::write(
        args.out.join("compare.json"),
        serde_json::to_string_pretty(&rows)? + "\n",
    )?;
    plots(&rows, &overlays, &args.out).map_err(|e| anyhow::anyhow!("plotting: {e}"))?;
    print!("{md}");
    Ok(ExitCode::SUCCESS)
}

fn markdown(rows: &[Row], args: &CompareArgs) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Overlays compared (seed {}, {} virtual s per run)\n",
        args.seed, args.duration
    );
    let _ = writeln!(
        s,
        "| overlay | nodes | churn/h | hops mean | predicted | hops p50 | msgs/lookup | success | latency p50 ms | state B/node | maint. B/s/node | wall s |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.1} | {:.4} | {:.0} | {:.0} | {:.1} | {:.1} |",
            r.overlay,
            r.nodes,
            r.churn_per_hour,
            r.hops_mean,
            r.hops_predicted,
            r.hops_p50,
            r.messages_per_lookup,
            r.success_rate,
            r.latency_p50_ms,
            r.state_bytes_per_node,
            r.maintenance_bytes_per_node_per_s,
            r.wall_seconds
        );
    }
    s
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

fn plots(rows: &[Row], overlays: &[String], out: &std::path::Path) -> PlotResult {
    let static_rows = |name: &str| -> Vec<&Row> {
        let mut v: Vec<&Row> = rows
            .iter()
            .filter(|r| r.overlay == name && r.churn_per_hour == 0.0)
            .collect();
        v.sort_by_key(|r| r.nodes);
        v
    };
    let by_n = |f: &dyn Fn(&Row) -> f64, with_prediction: bool| -> Vec<Series> {
        let mut out = Vec::new();
        for name in overlays {
            let rs = static_rows(name);
            out.push(Series {
                name: name.clone(),
                points: rs.iter().map(|r| (r.nodes as f64, f(r))).collect(),
                predicted: false,
            });
            if with_prediction {
                out.push(Series {
                    name: format!("{name} (paper)"),
                    points: rs
                        .iter()
                        .map(|r| (r.nodes as f64, r.hops_predicted))
                        .collect(),
                    predicted: true,
                });
            }
        }
        out
    };
    line_chart(
        &out.join("hops_vs_n.svg"),
        "Lookup hops against network size",
        "nodes (log)",
        "mean hops",
        &by_n(&|r| r.hops_mean, true),
        true,
    )?;
    line_chart(
        &out.join("messages_vs_n.svg"),
        "Messages per lookup",
        "nodes (log)",
        "messages",
        &by_n(&|r| r.messages_per_lookup, false),
        true,
    )?;
    line_chart(
        &out.join("state_vs_n.svg"),
        "State per node",
        "nodes (log)",
        "bytes",
        &by_n(&|r| r.state_bytes_per_node, false),
        true,
    )?;
    line_chart(
        &out.join("maintenance_vs_n.svg"),
        "Maintenance traffic",
        "nodes (log)",
        "bytes / s / node",
        &by_n(&|r| r.maintenance_bytes_per_node_per_s, false),
        true,
    )?;
    let smallest = rows.iter().map(|r| r.nodes).min().unwrap_or(0);
    let churn: Vec<Series> = overlays
        .iter()
        .map(|name| {
            let mut pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| &r.overlay == name && r.nodes == smallest)
                .map(|r| (r.churn_per_hour * 100.0, r.success_rate))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name: name.clone(),
                points: pts,
                predicted: false,
            }
        })
        .collect();
    line_chart(
        &out.join("success_vs_churn.svg"),
        &format!("Lookup success against churn ({smallest} nodes)"),
        "churn (% of nodes per hour)",
        "success",
        &churn,
        false,
    )?;
    Ok(())
}
