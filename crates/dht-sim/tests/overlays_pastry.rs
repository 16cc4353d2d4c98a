//! Pastry on the overlays' own driver: hops below ⌈log16 N⌉ on a converged network, the
//! numerically closest node as owner, proximity-aware tables, joins and repair.

use std::time::Duration;

use dht_proto::Id;
use dht_sim::overlays::driver::{run_lookups, MiniNet};
use dht_sim::overlays::overlay::{NodeIdx, OverlayNode};
use dht_sim::overlays::pastry::Pastry;
use dht_sim::overlays::ring::ring_pos;
use dht_sim::rng::SimRng;

const LATENCY: Duration = Duration::from_millis(10);

fn closest_oracle(net: &MiniNet<Pastry>) -> impl Fn(&Id) -> Option<NodeIdx> {
    let nodes: Vec<(u128, NodeIdx)> = net
        .live()
        .into_iter()
        .map(|i| (ring_pos(&net.node(i).unwrap().id()), i))
        .collect();
    move |k: &Id| {
        let p = ring_pos(k);
        nodes
            .iter()
            .min_by_key(|(q, i)| {
                let d = p.wrapping_sub(*q);
                (d.min(d.wrapping_neg()), *i)
            })
            .map(|x| x.1)
    }
}

/// A synthetic latency: nodes on a line, delay proportional to distance.
fn line_latency(a: NodeIdx, b: NodeIdx) -> Duration {
    let (x, y) = (
        (a.wrapping_mul(2_654_435_761) % 1000) as i64,
        (b.wrapping_mul(2_654_435_761) % 1000) as i64,
    );
    Duration::from_micros(((x - y).unsigned_abs() * 100) + 1000)
}

#[test]
fn converged_lookups_stay_below_ceil_log16_n_and_reach_the_closest_node() {
    for (bits, seed) in [(10u32, 1u64), (12, 2)] {
        let mut net = MiniNet::new(Pastry::default(), 1 << bits, seed, LATENCY);
        assert!(net.converge(&line_latency));
        let oracle = closest_oracle(&net);
        let s = run_lookups(
            &mut net,
            1000,
            seed,
            Duration::from_millis(1),
            Duration::from_secs(5),
            &oracle,
        );
        let bound = (bits as f64 / 4.0).ceil();
        eprintln!("pastry N=2^{bits}: {s:?} bound {bound}");
        assert_eq!(s.ok, s.issued);
        assert_eq!(s.correct, s.ok);
        assert!(s.mean_hops < bound, "{s:?}");
    }
}

#[test]
fn converged_tables_prefer_close_nodes() {
    let mut near = MiniNet::new(Pastry::default(), 1024, 5, LATENCY);
    near.converge(&line_latency);
    let mut blind = MiniNet::new(Pastry::default(), 1024, 5, LATENCY);
    blind.converge(&|_, _| LATENCY);
    let mean = |net: &MiniNet<Pastry>| {
        let (mut sum, mut n) = (0u128, 0u128);
        for i in net.live() {
            for (row, _, e) in net.node(i).unwrap().table() {
                if row == 0 {
                    sum += line_latency(i, e).as_micros();
                    n += 1;
                }
            }
        }
        sum / n.max(1)
    };
    let (a, b) = (mean(&near), mean(&blind));
    eprintln!("row-0 latency with proximity {a} us, without {b} us");
    assert!(a * 2 < b, "proximity {a} vs blind {b}");
}

#[test]
fn joined_nodes_are_found_as_owners() {
    let mut net = MiniNet::new(Pastry::default(), 128, 3, LATENCY);
    net.converge(&|_, _| LATENCY);
    for j in 0..64u32 {
        net.join(j % 128);
        net.run_for(Duration::from_millis(500));
    }
    net.run_for(Duration::from_secs(120));
    for j in 128..192 {
        assert_eq!(net.node(j).unwrap().leaf_set().len(), 16, "node {j}");
    }
    let oracle = closest_oracle(&net);
    let s = run_lookups(
        &mut net,
        500,
        9,
        Duration::from_millis(5),
        Duration::from_secs(10),
        &oracle,
    );
    for i in net.live() {
        assert!(
            net.node(i).unwrap().joined(),
            "node {i} never finished joining"
        );
    }
    assert_eq!(s.ok, s.issued);
    assert_eq!(s.correct, s.ok, "{s:?}");
}

#[test]
fn leaf_sets_repair_after_a_fifth_of_nodes_fail() {
    let mut net = MiniNet::new(Pastry::default(), 1024, 4, LATENCY);
    net.converge(&|_, _| LATENCY);
    let mut rng = SimRng::new(11);
    let mut killed = 0;
    while killed < 1024 / 5 {
        let i = rng.below(1024) as NodeIdx;
        if net.alive(i) {
            net.kill(i);
            killed += 1;
        }
    }
    net.run_for(Duration::from_secs(300));
    let oracle = closest_oracle(&net);
    let s = run_lookups(
        &mut net,
        1000,
        12,
        Duration::from_millis(5),
        Duration::from_secs(40),
        &oracle,
    );
    eprintln!("after failures: {s:?}");
    assert!(s.ok as f64 >= 0.99 * s.issued as f64, "{s:?}");
    assert!(s.correct as f64 >= 0.99 * s.ok as f64, "{s:?}");
}
