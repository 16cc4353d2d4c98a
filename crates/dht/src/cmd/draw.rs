//! `dht draw`: one search in one overlay drawn as SVG, or every overlay's search side by side.
//!
//! The simulator traces the search (`dht_sim::draw`): a converged network of N nodes of the
//! overlay, one lookup of a key from a searcher, both chosen by the seed, every message it
//! caused recorded. The picture is a pure function of the overlay, N, seed and key: the same
//! arguments write the same bytes.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use dht_sim::draw::{
    key_from_hex, render, render_compare, trace_search, DRAW_NODES_MAX, DRAW_NODES_MIN,
};
use dht_sim::overlays::registry::OVERLAYS;

use super::sim::parse_overlay;

/// Flags of `dht draw`.
#[derive(clap::Args, Debug, Clone)]
pub struct DrawArgs {
    /// The overlay whose search to draw (kademlia, chord, pastry, can, onehop, flooding,
    /// randomwalk).
    #[arg(long, value_parser = parse_overlay, required_unless_present = "compare", conflicts_with = "compare")]
    pub overlay: Option<String>,
    /// Draw every overlay side by side, the same N, key and searcher in each.
    #[arg(long)]
    pub compare: bool,
    /// Nodes in the network (2 to 2,000).
    #[arg(long, value_parser = parse_nodes)]
    pub nodes: u32,
    /// Seed of the network, the searcher and the key.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The key to look for, 40 hex digits (default: drawn from the seed).
    #[arg(long, value_parser = parse_key)]
    pub key: Option<String>,
    /// The SVG file to write.
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_nodes(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a node count"))?;
    if (DRAW_NODES_MIN..=DRAW_NODES_MAX).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{n} outside {DRAW_NODES_MIN}..={DRAW_NODES_MAX} (larger drawings are not legible)"
        ))
    }
}

fn parse_key(s: &str) -> Result<String, String> {
    match key_from_hex(s) {
        Some(_) => Ok(s.to_string()),
        None => Err(format!("{s:?} is not 40 hex digits")),
    }
}

/// Traces, draws, writes the file, and prints one line per search on stdout.
pub fn run(a: DrawArgs) -> anyhow::Result<ExitCode> {
    let names: Vec<&str> = match &a.overlay {
        Some(o) if !a.compare => vec![o.as_str()],
        _ => OVERLAYS.to_vec(),
    };
    let key = a.key.as_deref().and_then(key_from_hex);
    // A closed stdout (a pipe into `head`) must not stop the drawing: lines are best effort.
    let mut stdout = std::io::stdout().lock();
    let mut traces = Vec::with_capacity(names.len());
    for name in names {
        let t = trace_search(name, a.nodes, a.seed, key)?;
        let _ = writeln!(
            stdout,
            "{:<10} N = {} seed {}: {} hop{}, {} messages{}{}",
            t.overlay,
            t.nodes.len(),
            t.seed,
            t.reported_hops,
            if t.reported_hops == 1 { "" } else { "s" },
            t.reported_messages,
            if t.revisits.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} nodes reached more than once ({} repeat arrivals)",
                    t.revisits.len(),
                    t.wasted_visits()
                )
            },
            if t.ok { "" } else { ", not found" }
        );
        traces.push(t);
    }
    let svg = if a.compare {
        render_compare(&traces)
    } else {
        render(&traces[0])
    };
    std::fs::write(&a.out, svg).with_context(|| format!("writing {}", a.out.display()))?;
    let _ = writeln!(stdout, "wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}
