//! CAN on the overlays' own driver: (d/4) N^(1/d) hops with zones built by splits, fewer hops
//! with more dimensions, joins that split zones, takeover after failures.

use std::time::Duration;

use dht_proto::Id;
use dht_sim::overlays::can::{Can, CanConfig, CanNode};
use dht_sim::overlays::driver::{run_lookups, LookupStats, MiniNet};
use dht_sim::overlays::overlay::NodeIdx;
use dht_sim::rng::SimRng;

const LATENCY: Duration = Duration::from_millis(10);

fn zone_oracle(net: &MiniNet<Can>) -> impl Fn(&Id) -> Option<NodeIdx> + '_ {
    move |k: &Id| {
        net.live()
            .into_iter()
            .find(|&i| net.node(i).is_some_and(|n: &CanNode| n.owns_key(k)))
    }
}

fn measure(n: u32, d: usize, seed: u64) -> LookupStats {
    let can = Can::new(CanConfig {
        d,
        ..CanConfig::default()
    });
    let mut net = MiniNet::new(can, n, seed, LATENCY);
    assert!(net.converge(&|_, _| LATENCY));
    let snapshot: Vec<(NodeIdx, Vec<dht_sim::overlays::can::Zone>)> = net
        .live()
        .into_iter()
        .map(|i| (i, net.node(i).unwrap().zones().to_vec()))
        .collect();
    let oracle = move |k: &Id| {
        let p = dht_sim::overlays::can::point(k, d);
        snapshot
            .iter()
            .find(|(_, zs)| {
                zs.iter()
                    .any(|z| (0..d).all(|j| z.lo[j] <= p[j] && p[j] < z.hi[j]))
            })
            .map(|x| x.0)
    };
    run_lookups(
        &mut net,
        1000,
        seed,
        Duration::from_millis(1),
        Duration::from_secs(20),
        &oracle,
    )
}

#[test]
fn two_dimensional_lookups_take_about_half_sqrt_n_hops() {
    for (n, seed) in [(1u32 << 10, 1u64), (1 << 12, 2)] {
        let s = measure(n, 2, seed);
        let predicted = 0.5 * (n as f64).sqrt();
        eprintln!("can d=2 N={n}: {s:?} predicted {predicted}");
        assert_eq!(s.ok, s.issued);
        assert_eq!(s.correct, s.ok);
        assert!((s.mean_hops - predicted).abs() <= 0.25 * predicted, "{s:?}");
    }
}

#[test]
fn more_dimensions_mean_fewer_hops() {
    let h2 = measure(4096, 2, 3).mean_hops;
    let h3 = measure(4096, 3, 3).mean_hops;
    let h4 = measure(4096, 4, 3).mean_hops;
    eprintln!("N=4096: d=2 {h2}, d=3 {h3}, d=4 {h4}");
    assert!(h3 < h2 && h4 < h3);
}

#[test]
fn joins_split_zones_and_become_owners() {
    let mut net = MiniNet::new(Can::default(), 64, 4, LATENCY);
    net.converge(&|_, _| LATENCY);
    for j in 0..64u32 {
        net.join(j);
        net.run_for(Duration::from_millis(200));
    }
    net.run_for(Duration::from_secs(30));
    for j in 64..128 {
        assert_eq!(
            net.node(j).unwrap().zones().len(),
            1,
            "node {j} has no zone"
        );
    }
    {
        let oracle = zone_oracle(&net);
        let owners: Vec<Option<NodeIdx>> = (0..300u64)
            .map(|i| oracle(&Id::random(&mut SimRng::new(i))))
            .collect();
        assert!(
            owners.iter().all(|o| o.is_some()),
            "the zones must tile the torus"
        );
    }
    let s = {
        let snapshot: Vec<(NodeIdx, Vec<dht_sim::overlays::can::Zone>)> = net
            .live()
            .into_iter()
            .map(|i| (i, net.node(i).unwrap().zones().to_vec()))
            .collect();
        let o = move |k: &Id| {
            let p = dht_sim::overlays::can::point(k, 2);
            snapshot
                .iter()
                .find(|(_, zs)| {
                    zs.iter()
                        .any(|z| (0..2).all(|j| z.lo[j] <= p[j] && p[j] < z.hi[j]))
                })
                .map(|x| x.0)
        };
        run_lookups(
            &mut net,
            500,
            9,
            Duration::from_millis(5),
            Duration::from_secs(20),
            &o,
        )
    };
    eprintln!("after joins: {s:?}");
    assert_eq!(s.ok, s.issued);
    assert_eq!(s.correct, s.ok);
}

#[test]
fn neighbours_take_over_the_zones_of_failed_nodes() {
    let mut net = MiniNet::new(Can::default(), 512, 5, LATENCY);
    net.converge(&|_, _| LATENCY);
    let mut rng = SimRng::new(11);
    let mut killed = 0;
    while killed < 512 / 5 {
        let i = rng.below(512) as NodeIdx;
        if net.alive(i) {
            net.kill(i);
            killed += 1;
        }
    }
    net.run_for(Duration::from_secs(180));
    // Every point of the torus has a live owner again.
    let live: Vec<NodeIdx> = net.live();
    let mut orphans = 0;
    for i in 0..500u64 {
        let k = Id::random(&mut SimRng::new(1000 + i));
        if !live.iter().any(|&n| net.node(n).unwrap().owns_key(&k)) {
            orphans += 1;
        }
    }
    assert!(orphans <= 5, "{orphans} of 500 points have no live owner");
    let s = run_lookups(
        &mut net,
        1000,
        12,
        Duration::from_millis(5),
        Duration::from_secs(120),
        &|_| None,
    );
    eprintln!("after failures: {s:?}");
    assert!(s.ok as f64 >= 0.95 * s.issued as f64, "{s:?}");
}
