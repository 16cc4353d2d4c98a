//! Flooding and random walk on the overlays' own driver: both find replicated items, and random
//! walk with checking spends fewer messages than flooding for items held by 1% of the nodes.

use std::time::Duration;

use dht_proto::Id;

use dht_sim::overlays::driver::{LookupStats, MiniNet};
use dht_sim::overlays::flooding::flooding_with;
use dht_sim::overlays::overlay::NodeIdx;
use dht_sim::overlays::randomwalk::random_walk_with;
use dht_sim::overlays::unstructured::{UnNode, Unstructured};
use dht_sim::rng::SimRng;

const LATENCY: Duration = Duration::from_millis(10);

/// Runs `count` searches for one key held by `r` random nodes.
fn search(overlay: Unstructured, n: u32, r: u32, count: u32, seed: u64) -> LookupStats {
    let mut net = MiniNet::new(overlay, n, seed, LATENCY);
    net.converge(&|_, _| LATENCY);
    let key = Id::random(&mut SimRng::new(seed ^ 7));
    {
        let mut refs: Vec<(NodeIdx, &mut UnNode)> = net
            .nodes
            .iter_mut()
            .enumerate()
            .filter_map(|(i, x)| x.as_mut().map(|x| (i as NodeIdx, x)))
            .collect();
        let holders = Unstructured::place(&mut refs, key, b"v", r, seed);
        assert_eq!(holders.len() as u32, r);
    }
    // Every search looks for the same key: run_lookups draws random keys, so issue them here.
    let mut rng = SimRng::new(seed);
    for _ in 0..count {
        let from = rng.below(n as u64) as NodeIdx;
        net.lookup(from, key);
        net.run_for(Duration::from_millis(50));
    }
    net.run_for(Duration::from_secs(60));
    let mut out = LookupStats {
        issued: count,
        ..LookupStats::default()
    };
    let (mut hops, mut msgs) = (0u64, 0u64);
    for f in net.take_finished() {
        if let dht_sim::overlays::overlay::OverlayEvent::LookupDone {
            ok,
            hops: h,
            messages,
            ..
        } = f.event
        {
            msgs += messages as u64;
            if ok {
                out.ok += 1;
                hops += h as u64;
            }
        }
    }
    out.mean_hops = hops as f64 / out.ok.max(1) as f64;
    // Messages per successful search: all messages over successes (Lv et al.'s measure).
    out.mean_messages = msgs as f64 / out.ok.max(1) as f64;
    out
}

#[test]
fn random_walk_costs_fewer_messages_than_flooding_at_one_percent_replication() {
    let n = 4096;
    let r = n / 100;
    let flood = search(flooding_with(4, r), n, r, 200, 1);
    let walk = search(random_walk_with(16, 1024, r), n, r, 200, 1);
    eprintln!("flood {flood:?}\nwalk {walk:?}");
    assert!(flood.ok as f64 >= 0.95 * flood.issued as f64, "{flood:?}");
    assert!(walk.ok as f64 >= 0.95 * walk.issued as f64, "{walk:?}");
    assert!(
        walk.mean_messages * 5.0 < flood.mean_messages,
        "walk {walk:?} flood {flood:?}"
    );
}

#[test]
fn flooding_with_a_short_ttl_misses_a_single_copy() {
    let s = search(flooding_with(1, 1), 4096, 1, 100, 2);
    assert!(s.ok < 10, "{s:?}");
}

#[test]
fn power_law_graph_has_hubs_the_requested_mean_and_no_isolated_node() {
    use dht_sim::overlays::unstructured::{power_law_graph, HUB_DEGREE_MAX};
    let n = 10_000;
    let adj = power_law_graph(n, 8, 2.3);
    let degrees: Vec<usize> = adj.iter().map(Vec::len).collect();
    let mean = degrees.iter().sum::<usize>() as f64 / n as f64;
    let max = *degrees.iter().max().unwrap();
    assert!((5.0..=11.0).contains(&mean), "mean degree {mean}");
    // A fixed-degree graph of mean 8 has no node above a few tens; this one has hubs.
    assert!((100..=HUB_DEGREE_MAX).contains(&max), "max degree {max}");
    assert!(degrees.iter().all(|&d| d >= 1), "every node has a link");
    // Links are symmetric and simple.
    for (a, nbrs) in adj.iter().enumerate() {
        assert!(!nbrs.contains(&a));
        for &b in nbrs {
            assert!(adj[b].contains(&a));
        }
    }
    // A heavy tail: the median degree is well below the mean.
    let mut sorted = degrees.clone();
    sorted.sort_unstable();
    assert!(sorted[n / 2] < 8, "median degree {}", sorted[n / 2]);
}
