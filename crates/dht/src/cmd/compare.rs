//! `dht compare`: every overlay on the same network, churn and workload, side by side.
//!
//! For each overlay and each `--nodes N` it runs a static network (built with the overlay's
//! converge shortcut; Kademlia's is grown by joins), CAN also with each extra
//! `--can-d`, then at the smallest N one run per `--churn` profile (grown by joins). With
//! `--search-sweep` it then finds, for flooding and random walk at each N, the smallest TTL and
//! walk length that reach 95% success, for items held by 1% of the nodes and for single-copy
//! items, and sets their messages per successful lookup beside the DHTs'.
//!
//! Output in `--out`: `compare.md` (the tables), `compare.json` (every run's figures), and SVG
//! plots: `hops_vs_n.svg` (log axes, each paper's curve drawn beside the measurement),
//! `messages_vs_n.svg`, `state_vs_n.svg`, `maintenance_vs_n.svg`, `success_vs_churn.svg`,
//! `maintenance_vs_churn.svg`, and with the sweep `search_vs_n.svg`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use dht_sim::config::OverlayKnobs;
use dht_sim::overlays::registry::{min_duration_s, predicted_hops, run_overlay, OVERLAYS, TTL_MAX};
use dht_sim::world::churn::Churn;
use dht_sim::{Report, SimConfig};

use super::compare_plots;

/// Lookups per run, at most (fewer for small networks).
pub const COMPARE_LOOKUPS_MAX: u64 = 2000;

/// Warm-up of a converged static network, virtual seconds: the state is built at once, so
/// the run only needs the timers started before it measures.
pub const CONVERGED_WARMUP_S: u64 = 60;

/// Success rate the search sweep looks for (the setting).
pub const SWEEP_TARGET: f64 = 0.95;

/// Walk lengths the sweep tries at most for one setting (doubling each time).
pub const SWEEP_WALK_STEPS_MAX: u32 = 12;

/// Flags of `dht compare`.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// Network sizes (repeat the flag); default 1024 and 16384.
    #[arg(long = "nodes")]
    pub nodes: Vec<u32>,
    /// Churn profiles for the success-against-churn runs at the smallest size (repeat);
    /// default none, 20%, 50%.
    #[arg(long = "churn")]
    pub churn: Vec<String>,
    /// Overlays to run (repeat); default all.
    #[arg(long = "overlay", value_parser = super::sim::parse_overlay)]
    pub overlay: Vec<String>,
    /// Extra CAN dimensions run beside d = 2 on the static networks (repeat); default 3 and 4.
    #[arg(long = "can-d")]
    pub can_d: Vec<usize>,
    /// Output directory.
    #[arg(long, default_value = "compare-out")]
    pub out: PathBuf,
    /// The seed of every run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Measured phase of each run, virtual seconds (lengthened where a random walk needs it).
    #[arg(long, default_value_t = 600)]
    pub duration: u64,
    /// Lookups per run (default: N, at most 2000).
    #[arg(long)]
    pub lookups: Option<u64>,
    /// Flooding and random walk in the main runs: nodes holding each item (count or N%).
    #[arg(long, default_value = "1%")]
    pub replicas: String,
    /// Flooding TTL in the main runs.
    #[arg(long, default_value_t = 4)]
    pub ttl: u32,
    /// Random-walk walkers (main runs and sweep).
    #[arg(long, default_value_t = 16)]
    pub walkers: u32,
    /// Random-walk length in the main runs, steps.
    #[arg(long, default_value_t = 1024)]
    pub walk_len: u32,
    /// Flooding and random walk: power-law degrees of this exponent in (2, 4] (Lv et al.'s
    /// PLRG, about 2.3) instead of the fixed-degree random graph.
    #[arg(long, value_name = "EXPONENT")]
    pub power_law: Option<f64>,
    /// Also sweep flooding's TTL and random walk's length to 95% success, for 1% and for
    /// single-copy items, at every size.
    #[arg(long)]
    pub search_sweep: bool,
    /// Lookups per sweep run.
    #[arg(long, default_value_t = 200)]
    pub sweep_lookups: u64,
    /// Run nothing: read the `compare.json` files given (repeat; e.g. runs at different sizes
    /// made separately), merge them, and write the tables and plots into `--out`.
    #[arg(long = "replot")]
    pub replot: Vec<PathBuf>,
}

/// One run's figures.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Overlay name and setting, as the tables and legends show it (`can d=3`).
    pub label: String,
    /// Overlay name.
    pub overlay: String,
    /// Nodes.
    pub nodes: u32,
    /// Churn profile as given.
    pub churn: String,
    /// Churn per hour.
    pub churn_per_hour: f64,
    /// Mean hops.
    #[serde(deserialize_with = "null_as_nan")]
    pub hops_mean: f64,
    /// The paper's prediction (NaN where the paper has none; `null` in the JSON).
    #[serde(deserialize_with = "null_as_nan")]
    pub hops_predicted: f64,
    /// Median hops.
    pub hops_p50: u64,
    /// Fraction of lookups answered in at most one hop.
    pub one_hop_fraction: f64,
    /// Messages per lookup.
    pub messages_per_lookup: f64,
    /// Messages per successful lookup (all lookup messages / successes).
    pub messages_per_success: f64,
    /// Lookup success rate.
    pub success_rate: f64,
    /// Lookups that claimed success at the wrong node.
    pub wrong: u64,
    /// Latency p50, ms.
    pub latency_p50_ms: f64,
    /// Overlay state per node, bytes.
    pub state_bytes_per_node: f64,
    /// Maintenance traffic, bytes per node per second.
    pub maintenance_bytes_per_node_per_s: f64,
    /// Wall time, seconds.
    pub wall_seconds: f64,
    /// Peak RSS of the process so far, bytes.
    pub peak_rss_bytes: u64,
}

/// Reads a number that JSON wrote as `null` because it was NaN (serde_json writes NaN so).
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v: Option<f64> = serde::Deserialize::deserialize(d)?;
    Ok(v.unwrap_or(f64::NAN))
}

/// One step of the search sweep.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SweepRow {
    /// `flooding` or `randomwalk`.
    pub search: String,
    /// Nodes.
    pub nodes: u32,
    /// Copies setting as given (`1%`, `1`).
    pub replicas: String,
    /// Nodes holding each item.
    pub copies: u32,
    /// TTL (flooding) or walk length (random walk).
    pub setting: u32,
    /// Random walk: walkers.
    pub walkers: u32,
    /// Lookup success rate.
    pub success_rate: f64,
    /// Messages per successful lookup.
    pub messages_per_success: f64,
    /// Mean hops to the first hit.
    pub hops_mean: f64,
    /// Wall time, seconds.
    pub wall_seconds: f64,
}

/// Everything one `dht compare` measured.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Results {
    /// Static and churn runs.
    pub rows: Vec<Row>,
    /// Search sweep steps.
    pub sweep: Vec<SweepRow>,
}

fn config(
    args: &CompareArgs,
    nodes: u32,
    churn: &str,
    knobs: OverlayKnobs,
) -> anyhow::Result<SimConfig> {
    let churn_model = Churn::parse(churn).map_err(anyhow::Error::msg)?;
    let on = churn_model.is_on();
    Ok(SimConfig {
        seed: args.seed,
        nodes,
        lookups: args
            .lookups
            .unwrap_or((nodes as u64).min(COMPARE_LOOKUPS_MAX)),
        churn: churn_model,
        churn_spec: churn.to_string(),
        duration_s: args.duration,
        converge: !on,
        progress: false,
        knobs,
        ..SimConfig::default()
    })
}

/// Runs `name` with `cfg`, after giving a converged static network a short warm-up and a
/// random walk a phase long enough for its longest search.
fn run_one(name: &str, mut cfg: SimConfig) -> anyhow::Result<Report> {
    if cfg.converge && name == "kademlia" {
        // Kademlia's static network is grown by real joins here, the stricter path (its
        // converged start serves `dht sim` at sizes where growth would take hours); the
        // comparison tables in docs/overlays.md were measured this way.
        cfg.converge = false;
    } else if cfg.converge {
        cfg.warmup_s = Some(CONVERGED_WARMUP_S);
    }
    cfg.duration_s = cfg.duration_s.max(min_duration_s(name, &cfg));
    eprintln!(
        "compare: {name} at {} nodes, churn {}: {}",
        cfg.nodes,
        cfg.churn_spec,
        cfg.replay_command(name)
    );
    Ok(run_overlay(name, cfg, &mut |_| {})?)
}

fn row(label: String, name: &str, churn: &str, can_d: usize, r: &Report) -> Row {
    let total: u64 = r.hop_histogram.iter().sum();
    let le1: u64 = r.hop_histogram.iter().take(2).sum();
    let ok = r.lookups.succeeded.max(1) as f64;
    Row {
        label,
        overlay: name.to_string(),
        nodes: r.nodes,
        churn: churn.to_string(),
        churn_per_hour: r.churn_per_hour,
        hops_mean: r.lookups.hops.mean,
        hops_predicted: predicted_hops(name, r.nodes as u64, can_d).unwrap_or(f64::NAN),
        hops_p50: r.lookups.hops.p50,
        one_hop_fraction: le1 as f64 / total.max(1) as f64,
        messages_per_lookup: r.lookups.messages_per_lookup,
        messages_per_success: r.lookups.messages_per_lookup
            * (r.lookups.started - r.lookups.abandoned) as f64
            / ok,
        success_rate: r.lookups.success_rate,
        wrong: r.lookups.wrong,
        latency_p50_ms: r.lookups.latency_ms.p50,
        state_bytes_per_node: r.state_bytes_per_node,
        maintenance_bytes_per_node_per_s: r.traffic.maintenance_bytes_per_node_per_s,
        wall_seconds: r.wall_seconds,
        peak_rss_bytes: r.peak_rss_bytes,
    }
}

/// Runs `dht compare`.
pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    if !args.replot.is_empty() {
        let mut res = Results::default();
        for path in &args.replot {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let r: Results = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            res.rows.extend(r.rows);
            res.sweep.extend(r.sweep);
        }
        return write_all(&res, &args);
    }
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
    let extra_d = if args.can_d.is_empty() {
        vec![3, 4]
    } else {
        args.can_d.clone()
    };
    let (replicas, replicas_fraction) =
        OverlayKnobs::parse_replicas(&args.replicas).map_err(anyhow::Error::msg)?;
    let knobs = OverlayKnobs {
        ttl: args.ttl,
        walkers: args.walkers,
        walk_len: args.walk_len,
        replicas,
        replicas_fraction,
        power_law: args.power_law,
        ..OverlayKnobs::default()
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let smallest = *sizes.iter().min().unwrap_or(&1024);
    let mut res = Results::default();
    for name in &overlays {
        let mut variants = vec![(name.clone(), knobs)];
        if name == "can" {
            for &d in extra_d.iter().filter(|&&d| d != 2) {
                variants.push((format!("can d={d}"), OverlayKnobs { can_d: d, ..knobs }));
            }
        }
        for (label, k) in &variants {
            for &n in &sizes {
                let r = run_one(name, config(&args, n, "none", *k)?)?;
                res.rows.push(row(label.clone(), name, "none", k.can_d, &r));
            }
        }
        for c in churns
            .iter()
            .filter(|c| Churn::parse(c).is_ok_and(|c| c.is_on()))
        {
            let r = run_one(name, config(&args, smallest, c, knobs)?)?;
            res.rows.push(row(name.clone(), name, c, 2, &r));
        }
    }
    if args.search_sweep {
        for &n in &sizes {
            for spec in ["1%", "1"] {
                sweep(&args, n, spec, &mut res.sweep)?;
            }
        }
    }
    write_all(&res, &args)
}

/// Writes the tables, the JSON and the plots of `res` into `--out` and prints the tables.
fn write_all(res: &Results, args: &CompareArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let md = markdown(res, args);
    std::fs::write(args.out.join("compare.md"), &md)?;
    std::fs::write(
        args.out.join("compare.json"),
        serde_json::to_string_pretty(res)? + "\n",
    )?;
    compare_plots::write(res, &args.out).map_err(|e| anyhow::anyhow!("plotting: {e}"))?;
    print!("{md}");
    Ok(ExitCode::SUCCESS)
}

/// Flooding by TTL and random walk by length, each until [`SWEEP_TARGET`] success, at `n`
/// nodes with items held by `spec` copies.
fn sweep(args: &CompareArgs, n: u32, spec: &str, out: &mut Vec<SweepRow>) -> anyhow::Result<()> {
    let (replicas, replicas_fraction) =
        OverlayKnobs::parse_replicas(spec).map_err(anyhow::Error::msg)?;
    let base = OverlayKnobs {
        walkers: args.walkers,
        replicas,
        replicas_fraction,
        power_law: args.power_law,
        ..OverlayKnobs::default()
    };
    let copies = base.replicas_for(n);
    let mut push = |search: &str, setting: u32, r: &Report| -> f64 {
        let ok = r.lookups.succeeded.max(1) as f64;
        let judged = (r.lookups.started - r.lookups.abandoned) as f64;
        out.push(SweepRow {
            search: search.to_string(),
            nodes: n,
            replicas: spec.to_string(),
            copies,
            setting,
            walkers: if search == "randomwalk" {
                args.walkers
            } else {
                0
            },
            success_rate: r.lookups.success_rate,
            messages_per_success: r.lookups.messages_per_lookup * judged / ok,
            hops_mean: r.lookups.hops.mean,
            wall_seconds: r.wall_seconds,
        });
        r.lookups.success_rate
    };
    for ttl in 1..=TTL_MAX {
        let mut cfg = config(args, n, "none", OverlayKnobs { ttl, ..base })?;
        cfg.lookups = args.sweep_lookups;
        let r = run_one("flooding", cfg)?;
        if push("flooding", ttl, &r) >= SWEEP_TARGET {
            break;
        }
    }
    // Start where the walkers together take about half the steps a single holder needs on
    // average (N / copies), then double.
    let need = (n as u64 / copies.max(1) as u64 / 2 / args.walkers.max(1) as u64).max(4);
    let mut walk_len = need.next_power_of_two() as u32;
    for _ in 0..SWEEP_WALK_STEPS_MAX {
        let mut cfg = config(args, n, "none", OverlayKnobs { walk_len, ..base })?;
        cfg.lookups = args.sweep_lookups;
        let r = run_one("randomwalk", cfg)?;
        if push("randomwalk", walk_len, &r) >= SWEEP_TARGET {
            break;
        }
        walk_len = walk_len.saturating_mul(2);
    }
    Ok(())
}

fn f(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "-".to_string()
    }
}

fn markdown(res: &Results, args: &CompareArgs) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Overlays compared (seed {}, at least {} virtual s per run)\n",
        args.seed, args.duration
    );
    let _ = writeln!(
        s,
        "| overlay | nodes | churn | hops mean | predicted | diff | hops p50 | <=1 hop | msgs/lookup | msgs/success | success | wrong | latency p50 ms | state B/node | maint. B/s/node | wall s |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &res.rows {
        let diff = (r.hops_mean / r.hops_predicted - 1.0) * 100.0;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            r.nodes,
            r.churn,
            f(r.hops_mean, 3),
            f(r.hops_predicted, 3),
            if diff.is_finite() {
                format!("{diff:+.1}%")
            } else {
                "-".into()
            },
            r.hops_p50,
            f(r.one_hop_fraction, 4),
            f(r.messages_per_lookup, 1),
            f(r.messages_per_success, 1),
            f(r.success_rate, 4),
            r.wrong,
            f(r.latency_p50_ms, 0),
            f(r.state_bytes_per_node, 0),
            f(r.maintenance_bytes_per_node_per_s, 1),
            f(r.wall_seconds, 1)
        );
    }
    if res.sweep.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "\n## Search sweep: smallest TTL / walk length reaching {:.0}% success\n",
        SWEEP_TARGET * 100.0
    );
    let _ = writeln!(
        s,
        "| search | nodes | copies | TTL or walk length | walkers | success | msgs/success | hops mean | wall s |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for w in &res.sweep {
        let _ = writeln!(
            s,
            "| {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} |",
            w.search,
            w.nodes,
            w.copies,
            w.replicas,
            w.setting,
            if w.walkers > 0 {
                w.walkers.to_string()
            } else {
                "-".into()
            },
            f(w.success_rate, 3),
            f(w.messages_per_success, 1),
            f(w.hops_mean, 2),
            f(w.wall_seconds, 1)
        );
    }
    let _ = writeln!(
        s,
        "\n| nodes | copies | flooding msgs/success | random walk msgs/success | flooding / random walk | DHT msgs/success (static) | random walk / DHT |"
    );
    let _ = writeln!(s, "|---:|---|---:|---:|---:|---|---|");
    for (n, spec, fl, rw) in sweep_points(res) {
        let dhts: Vec<&Row> = res
            .rows
            .iter()
            .filter(|r| r.nodes == n && r.churn == "none" && r.hops_predicted.is_finite())
            .collect();
        let list = |g: &dyn Fn(&Row) -> f64| -> String {
            dhts.iter()
                .map(|r| format!("{} {}", r.label, f(g(r), 1)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "| {n} | {spec} | {} | {} | {} | {} | {} |",
            f(fl, 1),
            f(rw, 1),
            f(fl / rw, 2),
            list(&|r| r.messages_per_success),
            list(&|r| rw / r.messages_per_success)
        );
    }
    s
}

/// For each (nodes, copies) of the sweep: messages per successful lookup of flooding and of
/// random walk at their first setting reaching the target (NaN if none did).
pub fn sweep_points(res: &Results) -> Vec<(u32, String, f64, f64)> {
    let mut keys: Vec<(u32, String)> = res
        .sweep
        .iter()
        .map(|w| (w.nodes, w.replicas.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|(n, spec)| {
            let at = |search: &str| {
                res.sweep
                    .iter()
                    .find(|w| {
                        w.nodes == n
                            && w.replicas == spec
                            && w.search == search
                            && w.success_rate >= SWEEP_TARGET
                    })
                    .map_or(f64::NAN, |w| w.messages_per_success)
            };
            (n, spec.clone(), at("flooding"), at("randomwalk"))
        })
        .collect()
}
