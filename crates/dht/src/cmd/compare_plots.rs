//! The SVG plots of `dht compare`.

use std::path::Path;

use dht_sim::output::plots::{line_chart_axes, Series};

use super::compare::{sweep_points, Results, Row};

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// Labels of the static runs, in the order they were run.
fn labels(rows: &[Row]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| r.churn_per_hour == 0.0) {
        if !out.contains(&r.label) {
            out.push(r.label.clone());
        }
    }
    out
}

/// Overlay names of the churn runs, in the order they were run.
fn churned(rows: &[Row]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| r.churn_per_hour > 0.0) {
        if !out.contains(&r.overlay) {
            out.push(r.overlay.clone());
        }
    }
    out
}

/// One series per static run label of `f` against N; with `prediction`, each followed by its
/// paper's curve where the paper has one.
fn by_n(rows: &[Row], f: &dyn Fn(&Row) -> f64, prediction: bool) -> Vec<Series> {
    let mut out = Vec::new();
    for label in labels(rows) {
        let mut rs: Vec<&Row> = rows
            .iter()
            .filter(|r| r.label == label && r.churn_per_hour == 0.0)
            .collect();
        rs.sort_by_key(|r| r.nodes);
        out.push(Series {
            name: label.clone(),
            points: rs.iter().map(|r| (r.nodes as f64, f(r))).collect(),
            predicted: false,
        });
        if prediction && rs.iter().any(|r| r.hops_predicted.is_finite()) {
            out.push(Series {
                name: format!("{label} (paper)"),
                points: rs
                    .iter()
                    .map(|r| (r.nodes as f64, r.hops_predicted))
                    .collect(),
                predicted: true,
            });
        }
    }
    out
}

/// One series per churned overlay of `f` against the churn rate (with the static run at the
/// same size as its 0% point).
fn by_churn(rows: &[Row], f: &dyn Fn(&Row) -> f64) -> (u32, Vec<Series>) {
    let n = rows
        .iter()
        .filter(|r| r.churn_per_hour > 0.0)
        .map(|r| r.nodes)
        .min()
        .unwrap_or(0);
    let series = churned(rows)
        .into_iter()
        .map(|name| {
            let mut pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.overlay == name && r.label == name && r.nodes == n)
                .map(|r| (r.churn_per_hour * 100.0, f(r)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name,
                points: pts,
                predicted: false,
            }
        })
        .collect();
    (n, series)
}

/// Writes every plot of `res` into `out`.
pub fn write(res: &Results, out: &Path) -> PlotResult {
    let rows = &res.rows;
    line_chart_axes(
        &out.join("hops_vs_n.svg"),
        "Mean lookup hops against N (dashed, hollow: the paper's figure)",
        "nodes (log)",
        "mean hops (log)",
        &by_n(rows, &|r| r.hops_mean, true),
        true,
        true,
    )?;
    line_chart_axes(
        &out.join("messages_vs_n.svg"),
        "Messages per lookup against N",
        "nodes (log)",
        "messages per lookup (log)",
        &by_n(rows, &|r| r.messages_per_lookup, false),
        true,
        true,
    )?;
    line_chart_axes(
        &out.join("state_vs_n.svg"),
        "Routing state per node",
        "nodes (log)",
        "bytes per node",
        &by_n(rows, &|r| r.state_bytes_per_node, false),
        true,
        false,
    )?;
    line_chart_axes(
        &out.join("maintenance_vs_n.svg"),
        "Maintenance traffic, static networks",
        "nodes (log)",
        "bytes / s / node (log)",
        &by_n(rows, &|r| r.maintenance_bytes_per_node_per_s, false),
        true,
        true,
    )?;
    let (n, churn) = by_churn(rows, &|r| r.success_rate);
    line_chart_axes(
        &out.join("success_vs_churn.svg"),
        &format!("Lookup success against churn ({n} nodes)"),
        "churn (% of nodes leaving per hour)",
        "success",
        &churn,
        false,
        false,
    )?;
    let (n, maint) = by_churn(rows, &|r| r.maintenance_bytes_per_node_per_s);
    line_chart_axes(
        &out.join("maintenance_vs_churn.svg"),
        &format!("Maintenance traffic against churn ({n} nodes)"),
        "churn (% of nodes leaving per hour)",
        "bytes / s / node (log)",
        &maint,
        false,
        true,
    )?;
    if !res.sweep.is_empty() {
        write_search(res, out)?;
    }
    Ok(())
}

/// Messages per successful lookup against N: flooding and random walk at their 95% points for
/// each replication, and the DHTs on static networks.
fn write_search(res: &Results, out: &Path) -> PlotResult {
    let points = sweep_points(res);
    let mut specs: Vec<String> = points.iter().map(|p| p.1.clone()).collect();
    specs.sort();
    specs.dedup();
    let mut series = Vec::new();
    for spec in &specs {
        let copies = if spec == "1" { "1 copy" } else { spec.as_str() };
        for (i, search) in ["flooding", "random walk"].into_iter().enumerate() {
            series.push(Series {
                name: format!("{search}, {copies}"),
                points: points
                    .iter()
                    .filter(|p| &p.1 == spec)
                    .map(|p| (p.0 as f64, if i == 0 { p.2 } else { p.3 }))
                    .collect(),
                predicted: false,
            });
        }
    }
    let dht_rows: Vec<Row> = res
        .rows
        .iter()
        .filter(|r| r.hops_predicted.is_finite())
        .cloned()
        .collect();
    series.extend(by_n(&dht_rows, &|r| r.messages_per_success, false));
    line_chart_axes(
        &out.join("search_vs_n.svg"),
        "Messages per successful lookup (unstructured at 95% success)",
        "nodes (log)",
        "messages (log)",
        &series,
        true,
        true,
    )
}
