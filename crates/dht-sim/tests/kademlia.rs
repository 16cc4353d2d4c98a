//! The real Kademlia node in the simulator: a few seeds at a few thousand nodes with the
//! checkers on.

use dht_sim::overlays::kademlia::Kademlia;
use dht_sim::world::churn::Churn;
use dht_sim::{exit_code, Report, Sim, SimConfig, XorClosest};

fn run(cfg: SimConfig) -> Report {
    let sim = Sim::new(
        Kademlia::new(cfg.seed),
        Box::new(XorClosest { k: cfg.k }),
        cfg,
    )
    .unwrap();
    println!("{}", sim.parameters());
    let r = sim.run();
    println!("{}", r.summary());
    r
}

fn config(seed: u64, nodes: u32) -> SimConfig {
    SimConfig {
        seed,
        nodes,
        lookups: 500,
        puts: 50,
        gets: 200,
        duration_s: 900,
        warmup_s: Some(240),
        ..SimConfig::default()
    }
}

#[test]
fn static_network_of_two_thousand_nodes_finds_the_closest_and_returns_what_was_put() {
    for seed in [1, 2] {
        let mut cfg = config(seed, 2000);
        cfg.min_lookup_success = Some(0.99);
        cfg.min_get_success = Some(0.99);
        let r = run(cfg);
        assert!(r.verdict.passed, "seed {seed}: {}", r.summary());
        assert_eq!(exit_code(&r), 0);
        assert!(r.lookups.recall_at_k > 0.9, "{}", r.lookups.recall_at_k);
        assert!(r.lookups.hops.p50 >= 2 && r.lookups.hops.p50 <= 6);
        assert!(r.traffic.bytes > 0 && r.puts.acknowledged > 0);
        // Gets and puts report latency: a found value takes at least one round trip (the
        // network's median is 150 ms), and a put stores only after its lookup, so it takes
        // longer than a get.
        let (g, p) = (&r.gets.latency_ms, &r.puts.latency_ms);
        assert!(g.p50 >= 20.0 && g.p50 <= g.p95 && g.p95 <= g.p99, "{g:?}");
        assert!(p.p50 > g.p50 && p.p50 <= p.p95 && p.p95 <= p.p99, "{p:?}");
        assert!(
            r.lookups.latency_ms.p50 < p.p50,
            "a put is a lookup and then a store"
        );
        // Requests answered before their resend time leave idle wake-ups, which are counted
        // apart from the wake-ups that call into a node.
        assert!(r.wakeups > 0 && r.idle_wakeups > 0, "{}", r.summary());
        assert!(r.idle_wakeups < r.wakeups && r.wakeups < r.events);
    }
}

#[test]
fn churn_at_fifty_percent_per_hour_keeps_lookups_and_data() {
    let mut cfg = config(3, 2000);
    cfg.churn = Churn::parse("50%").unwrap();
    cfg.churn_spec = "50%".into();
    cfg.loss = 0.01;
    cfg.min_lookup_success = Some(0.95);
    cfg.min_get_success = Some(0.95);
    let r = run(cfg);
    assert!(r.churn.leaves > 50, "{:?}", r.churn);
    assert!(r.verdict.passed, "{}", r.summary());
}

#[test]
fn kademlia_runs_are_deterministic() {
    let mut cfg = config(4, 500);
    cfg.churn = Churn::parse("20%").unwrap();
    cfg.churn_spec = "20%".into();
    cfg.duration_s = 600;
    let a = run(cfg.clone());
    let b = run(cfg);
    assert_eq!(a.deterministic_json(), b.deterministic_json());
}

/// Sessions of 1.4 minutes (the Bamboo paper's stress point): routing tables must shed dead
/// contacts and take in newcomers, or lookups decay as the run goes on (before the fix this
/// run ended at 79% and falling; it reads about 98% now).
#[test]
fn tables_keep_up_with_one_point_four_minute_sessions() {
    let mut cfg = config(3, 1000);
    cfg.lookups = 1500;
    cfg.puts = 0;
    cfg.gets = 0;
    cfg.warmup_s = None;
    cfg.churn = Churn::parse("bamboo").unwrap();
    cfg.churn_spec = "bamboo".into();
    cfg.min_lookup_success = Some(0.93);
    let r = run(cfg);
    assert!(r.churn.leaves > 1000, "{:?}", r.churn);
    assert!(r.verdict.passed, "{}", r.summary());
    // Nodes join closer to some keys while their lookups run: the owner at the start counts
    // for those, so the start-or-end count is above the end-only one.
    assert!(
        r.lookups.succeeded > r.lookups.succeeded_at_end,
        "{}",
        r.summary()
    );
    // The stricter count (the owner at each lookup's end) stays close behind.
    let strict = r.lookups.succeeded_at_end as f64 / r.lookups.started as f64;
    assert!(strict > 0.9, "end-only success {strict}: {}", r.summary());
}

/// Proximity neighbour selection (on by default, as in the node): a converged table holds the
/// nearest of four times as many nodes per bucket, so a lookup's first hops are short and its
/// latency drops, with the same lookups right; `--no-proximity` is the plain random table.
#[test]
fn proximity_neighbour_selection_shortens_lookups_without_losing_any() {
    let run = |proximity: bool| {
        let cfg = SimConfig {
            seed: 6,
            nodes: 5000,
            lookups: 2000,
            gets: 500,
            puts: 50,
            duration_s: 600,
            warmup_s: Some(120),
            converge: true,
            proximity,
            ..SimConfig::default()
        };
        let r = dht_sim::overlays::registry::run_overlay("kademlia", cfg, &mut |_| {}).unwrap();
        println!("proximity {proximity}: {}", r.summary());
        r
    };
    let (near, plain) = (run(true), run(false));
    assert!(near.lookups.success_rate >= 0.999, "{}", near.summary());
    assert!(plain.lookups.success_rate >= 0.999, "{}", plain.summary());
    let (a, b) = (&near.lookups.latency_ms, &plain.lookups.latency_ms);
    assert!(
        a.p50 < 0.9 * b.p50,
        "lookup p50 {} against {}",
        a.p50,
        b.p50
    );
    let (a, b) = (&near.gets.latency_ms, &plain.gets.latency_ms);
    assert!(a.p50 < 0.8 * b.p50, "get p50 {} against {}", a.p50, b.p50);
}
