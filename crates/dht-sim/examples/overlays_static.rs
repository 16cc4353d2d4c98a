//! Static-network measurement of the structured overlays on the overlays' own fixed-latency
//! driver: mean hops, messages per lookup and state per node against each paper's figure.
//!
//! `cargo run --release -p dht-sim --example overlays_static -- BITS [LOOKUPS]`

use std::time::{Duration, Instant as Wall};

use dht_sim::overlays::can::{Can, CanConfig};
use dht_sim::overlays::chord::Chord;
use dht_sim::overlays::driver::{run_lookups, MiniNet};
use dht_sim::overlays::onehop::OneHop;
use dht_sim::overlays::overlay::{Overlay, OverlayNode};
use dht_sim::overlays::pastry::Pastry;

const LATENCY: Duration = Duration::from_millis(10);

fn run<O: Overlay>(label: &str, overlay: O, n: u32, lookups: u32) {
    let wall = Wall::now();
    let predicted = overlay.predicted_hops(n as u64);
    let mut net = MiniNet::new(overlay, n, 42, LATENCY);
    net.converge(&|a, b| Duration::from_micros(1000 + (a ^ b) as u64 % 100_000));
    let state: usize = net
        .live()
        .iter()
        .map(|&i| net.node(i).unwrap().state_bytes())
        .sum();
    let s = run_lookups(
        &mut net,
        lookups,
        7,
        Duration::from_millis(1),
        Duration::from_secs(150),
        &|_| None,
    );
    println!(
        "| {label} | {n} | {:.3} | {predicted:.3} | {:+.1}% | {:.2} | {:.4} | {}/{} | {:.0} | {:.1} |",
        s.mean_hops,
        (s.mean_hops / predicted - 1.0) * 100.0,
        s.mean_messages,
        s.one_hop_fraction,
        s.ok,
        s.issued,
        state as f64 / n as f64,
        wall.elapsed().as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bits: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(14);
    let lookups: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let only = args.get(3).cloned().unwrap_or_default();
    let n = 1u32 << bits;
    println!("| overlay | N | mean hops | paper | diff | msgs/lookup | <=1 hop | ok | state B/node | wall s |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let want = |s: &str| only.is_empty() || only.split(',').any(|o| o == s);
    if want("chord") {
        run("chord", Chord::default(), n, lookups);
    }
    if want("pastry") {
        run("pastry", Pastry::default(), n, lookups);
    }
    for d in [2usize, 3, 4] {
        if want(&format!("can{d}")) {
            run(
                &format!("can d={d}"),
                Can::new(CanConfig {
                    d,
                    ..CanConfig::default()
                }),
                n,
                lookups,
            );
        }
    }
    if want("onehop") {
        run("onehop", OneHop::default(), n, lookups);
    }
}
