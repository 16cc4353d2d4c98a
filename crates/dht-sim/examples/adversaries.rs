//! The figures of docs/adversaries.md: Kademlia under each kind of adversary, with lookups on
//! one and on several disjoint paths, at one size.
//!
//! `cargo run --release -p dht-sim --example adversaries -- [--nodes N] [--jobs J] [--only
//! KIND] OUT_DIR` runs every row (sequentially, or J at a time), printing each as it ends, and
//! writes `OUT_DIR/adversaries.json` (every row), `OUT_DIR/adversaries.md` (the table) and
//! `OUT_DIR/adversaries-success.svg` (lookup success against the adversaries' fraction, one
//! line per number of paths). Each row is also one `dht sim` command, printed with it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use dht_sim::adversary::{AdversaryConfig, Kind};
use dht_sim::output::plots::{line_chart_axes, Series};
use dht_sim::overlays::registry::run_overlay;
use dht_sim::world::churn::Churn;
use dht_sim::{Report, SimConfig};

/// One row of the table.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    kind: String,
    fraction: f64,
    paths: usize,
    ip_diversity: bool,
    lookup_success: f64,
    recall_at_k: f64,
    get_success: f64,
    gets_corrupt: u64,
    forgeries_refused: u64,
    messages_per_lookup: f64,
    lookup_p50_ms: f64,
    lookup_p95_ms: f64,
    get_p50_ms: f64,
    get_p95_ms: f64,
    target_lookup_success: Option<f64>,
    target_get_success: Option<f64>,
    wall_s: f64,
    command: String,
}

/// One run: the adversaries (kind and fraction), the disjoint paths, IP diversity.
type Planned = (Option<(Kind, f64)>, usize, bool);

fn config(nodes: u32, adversary: Option<(Kind, f64)>, paths: usize, ip: bool) -> SimConfig {
    SimConfig {
        seed: 1,
        nodes,
        lookups: 5000,
        puts: 500,
        gets: 5000,
        churn: Churn::parse("20%").expect("a churn spec"),
        churn_spec: "20%".into(),
        duration_s: 3600,
        warmup_s: Some(300),
        converge: true,
        adversary: adversary.map(|(kind, fraction)| AdversaryConfig {
            kind,
            fraction,
            target: None,
        }),
        disjoint_paths: paths,
        ip_diversity: ip,
        ..SimConfig::default()
    }
}

fn row(r: &Report, cfg: &SimConfig) -> Row {
    let a = r.adversary.as_ref();
    Row {
        kind: a.map_or("none".into(), |a| a.kind.name().into()),
        fraction: a.map_or(0.0, |a| a.fraction),
        paths: cfg.disjoint_paths,
        ip_diversity: cfg.ip_diversity,
        lookup_success: r.lookups.success_rate,
        recall_at_k: r.lookups.recall_at_k,
        get_success: r.gets.success_rate,
        gets_corrupt: r.gets.corrupt,
        forgeries_refused: a.map_or(0, |a| a.tally.forgeries_refused),
        messages_per_lookup: r.lookups.messages_per_lookup,
        lookup_p50_ms: r.lookups.latency_ms.p50,
        lookup_p95_ms: r.lookups.latency_ms.p95,
        get_p50_ms: r.gets.latency_ms.p50,
        get_p95_ms: r.gets.latency_ms.p95,
        target_lookup_success: a.and_then(|a| a.target_lookups).map(|t| t.success_rate),
        target_get_success: a.and_then(|a| a.target_gets).map(|t| t.success_rate),
        wall_s: r.wall_seconds,
        command: r.replay.clone(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut nodes, mut jobs, mut only, mut out) = (10_000u32, 1usize, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--nodes" => nodes = args.next().ok_or("--nodes N")?.parse()?,
            "--jobs" => jobs = args.next().ok_or("--jobs J")?.parse::<usize>()?.max(1),
            "--only" => only = Some(Kind::parse(&args.next().ok_or("--only KIND")?)?),
            _ => out = Some(PathBuf::from(a)),
        }
    }
    let out = out.ok_or("usage: adversaries [--nodes N] [--jobs J] [--only KIND] OUT_DIR")?;
    std::fs::create_dir_all(&out)?;

    let mut plan: Vec<Planned> = vec![(None, 1, false), (None, 4, false)];
    for f in [0.1, 0.2, 0.3, 0.5] {
        for d in [1, 2, 4, 8] {
            plan.push((Some((Kind::Eclipse, f)), d, false));
        }
    }
    for d in [3, 5, 6, 7] {
        plan.push((Some((Kind::Eclipse, 0.2)), d, false));
    }
    for kind in [Kind::Drop, Kind::Forge] {
        for d in [1, 4] {
            plan.push((Some((kind, 0.2)), d, false));
        }
    }
    // 50 and 200 adversaries around one key.
    for count in [50.0, 200.0] {
        for d in [1, 4, 8] {
            plan.push((Some((Kind::Targeted, count / nodes as f64)), d, false));
        }
    }
    // The routing table's per-subnet limits, with adversaries sharing /24s.
    for d in [1, 4] {
        plan.push((Some((Kind::Eclipse, 0.2)), d, true));
    }
    plan.retain(|(a, _, _)| only.is_none() || a.map(|(k, _)| k) == only);

    let next = AtomicUsize::new(0);
    let rows: Mutex<Vec<(usize, Row)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(plan.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&(adversary, paths, ip)) = plan.get(i) else {
                    return;
                };
                let cfg = config(nodes, adversary, paths, ip);
                match run_overlay("kademlia", cfg.clone(), &mut |_| {}) {
                    Ok(r) => {
                        let row = row(&r, &cfg);
                        println!(
                            "[{}/{}] {} {} d={}: lookups {:.4} gets {:.4} ({:.1} s)\n  {}",
                            i + 1,
                            plan.len(),
                            row.kind,
                            row.fraction,
                            row.paths,
                            row.lookup_success,
                            row.get_success,
                            row.wall_s,
                            row.command
                        );
                        rows.lock().expect("no panics").push((i, row));
                    }
                    Err(e) => eprintln!("[{}] {e}", i + 1),
                }
            });
        }
    });
    let mut rows = rows.into_inner()?;
    rows.sort_by_key(|(i, _)| *i);
    let rows: Vec<Row> = rows.into_iter().map(|(_, r)| r).collect();
    std::fs::write(
        out.join("adversaries.json"),
        serde_json::to_string_pretty(&rows)? + "\n",
    )?;

    let pct = |x: f64| format!("{:.2}%", 100.0 * x);
    let mut md = String::from(
        "| adversary | F | d | lookups correct | recall@8 | gets correct | forged values refused / accepted | msgs/lookup | lookup p50 / p95 ms | get p50 / p95 ms | target lookups / gets correct |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in &rows {
        md += &format!(
            "| {}{} | {} | {} | {} | {:.4} | {} | {} / {} | {:.1} | {:.0} / {:.0} | {:.0} / {:.0} | {} |\n",
            r.kind,
            if r.ip_diversity { ", IP diversity" } else { "" },
            r.fraction,
            r.paths,
            pct(r.lookup_success),
            r.recall_at_k,
            pct(r.get_success),
            r.forgeries_refused,
            r.gets_corrupt,
            r.messages_per_lookup,
            r.lookup_p50_ms,
            r.lookup_p95_ms,
            r.get_p50_ms,
            r.get_p95_ms,
            match (r.target_lookup_success, r.target_get_success) {
                (Some(l), Some(g)) => format!("{} / {}", pct(l), pct(g)),
                (Some(l), None) => pct(l),
                _ => "".into(),
            }
        );
    }
    std::fs::write(out.join("adversaries.md"), &md)?;

    let series: Vec<Series> = [1usize, 2, 4, 8]
        .iter()
        .map(|&d| Series {
            name: format!("d = {d}"),
            points: rows
                .iter()
                .filter(|r| r.kind == "eclipse" && r.paths == d && !r.ip_diversity)
                .map(|r| (100.0 * r.fraction, 100.0 * r.lookup_success))
                .collect(),
            predicted: false,
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if !series.is_empty() {
        line_chart_axes(
            &out.join("adversaries-success.svg"),
            &format!("Kademlia under an eclipse, {nodes} nodes, 20%/h churn"),
            "adversaries, % of the nodes",
            "honest lookups that found the closest honest node, %",
            &series,
            false,
            false,
        )?;
    }
    print!("{md}");
    Ok(())
}
