//! Chord on the overlays' own driver: the paper's hop count on a converged ring, and repair of
//! joins and failures.

use std::time::Duration;

use dht_proto::Id;
use dht_sim::overlays::chord::{Chord, ChordNode};
use dht_sim::overlays::driver::{run_lookups, MiniNet};
use dht_sim::overlays::overlay::{NodeIdx, OverlayNode};
use dht_sim::overlays::ring::ring_pos;

const LATENCY: Duration = Duration::from_millis(10);

fn successor_oracle(net: &MiniNet<Chord>) -> impl Fn(&Id) -> Option<NodeIdx> {
    let mut ring: Vec<(u128, NodeIdx)> = net
        .live()
        .into_iter()
        .map(|i| (ring_pos(&net.node(i).unwrap().id()), i))
        .collect();
    ring.sort();
    move |k: &Id| {
        let p = ring_pos(k);
        let i = ring.partition_point(|(q, _)| *q < p);
        ring.get(i % ring.len()).map(|x| x.1)
    }
}

fn converged(n: u32, seed: u64) -> MiniNet<Chord> {
    let mut net = MiniNet::new(Chord::default(), n, seed, LATENCY);
    assert!(net.converge(&|_, _| LATENCY));
    net
}

#[test]
fn converged_ring_lookups_take_half_log2_n_hops() {
    for (bits, seed) in [(10u32, 1u64), (12, 2)] {
        let mut net = converged(1 << bits, seed);
        let oracle = successor_oracle(&net);
        let s = run_lookups(
            &mut net,
            2000,
            seed,
            Duration::from_millis(1),
            Duration::from_secs(5),
            &oracle,
        );
        let predicted = 0.5 * bits as f64;
        eprintln!("chord N=2^{bits}: {s:?} predicted {predicted}");
        assert_eq!(s.ok, s.issued);
        assert_eq!(s.correct, s.ok);
        assert!((s.mean_hops - predicted).abs() <= 0.1 * predicted, "{s:?}");
    }
}

#[test]
fn joined_nodes_become_reachable_owners() {
    let mut net = converged(64, 3);
    for _ in 0..32 {
        let via = net.live()[0];
        net.join(via);
        net.run_for(Duration::from_secs(1));
    }
    net.run_for(Duration::from_secs(120));
    let joined: Vec<NodeIdx> = (64..96).collect();
    for &j in &joined {
        let node: &ChordNode = net.node(j).unwrap();
        assert!(!node.successors().is_empty(), "node {j} has no successor");
        assert!(node.predecessor().is_some(), "node {j} has no predecessor");
    }
    let oracle = successor_oracle(&net);
    let s = run_lookups(
        &mut net,
        500,
        9,
        Duration::from_millis(5),
        Duration::from_secs(10),
        &oracle,
    );
    assert_eq!(s.ok, s.issued);
    assert_eq!(s.correct, s.ok, "{s:?}");
}

#[test]
fn ring_repairs_after_a_fifth_of_nodes_fail() {
    let mut net = converged(512, 4);
    let mut rng = dht_sim::rng::SimRng::new(11);
    let mut killed = 0;
    while killed < 512 / 5 {
        let i = rng.below(512) as NodeIdx;
        if net.alive(i) {
            net.kill(i);
            killed += 1;
        }
    }
    net.run_for(Duration::from_secs(120));
    let oracle = successor_oracle(&net);
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

/// A network grown from one node by a burst of concurrent joins (one every 10 ms, 40 ms
/// latency) ends, after five minutes of maintenance, as one ring with every successor and
/// predecessor right. Before the ring check, such bursts left two interleaved rings.
#[test]
fn burst_of_concurrent_joins_converges_to_one_ring() {
    let lat = Duration::from_millis(40);
    let mut net = MiniNet::new(Chord::default(), 1, 1, lat);
    assert!(net.converge(&|_, _| lat));
    let mut x = 7u64;
    for _ in 0..999 {
        let live = net.live();
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let via = live[(x >> 33) as usize % live.len()];
        net.join(via);
        net.run_for(Duration::from_millis(10));
    }
    net.run_for(Duration::from_secs(300));
    let mut ring: Vec<(u128, NodeIdx)> = net
        .live()
        .into_iter()
        .map(|i| (ring_pos(&net.node(i).unwrap().id()), i))
        .collect();
    ring.sort();
    let n = ring.len();
    assert_eq!(n, 1000);
    let (mut bad_succ, mut bad_pred) = (0, 0);
    for (j, &(_, i)) in ring.iter().enumerate() {
        let node: &ChordNode = net.node(i).unwrap();
        bad_succ += (node.successors().first() != Some(&ring[(j + 1) % n].1)) as u32;
        bad_pred += (node.predecessor() != Some(ring[(j + n - 1) % n].1)) as u32;
    }
    assert_eq!((bad_succ, bad_pred), (0, 0));
}
