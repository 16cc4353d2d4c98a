//! The engine and its checkers, driven with the toy overlay (one hop through a global
//! directory) so the figures are known in advance.

use dht_sim::checks::toy::{Faults, ToyOverlay};
use dht_sim::world::churn::Churn;
use dht_sim::{exit_code, Report, Sim, SimConfig, XorClosest, EXIT_CORRECTNESS, EXIT_LIVENESS};

fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        nodes: 500,
        lookups: 400,
        puts: 40,
        gets: 200,
        duration_s: 1800,
        warmup_s: Some(60),
        check_interval_s: Some(600),
        ..SimConfig::default()
    }
}

fn run(cfg: SimConfig, faults: Faults) -> Report {
    let k = cfg.k;
    let sim = Sim::new(ToyOverlay::new(8, faults), Box::new(XorClosest { k }), cfg).unwrap();
    sim.run()
}

#[test]
fn same_seed_gives_byte_identical_report_and_another_seed_does_not() {
    let mut cfg = config(7);
    cfg.churn = Churn::parse("50%").unwrap();
    cfg.churn_spec = "50%".into();
    cfg.loss = 0.02;
    cfg.partition = Some("0.2@300+120".into());
    let a = run(cfg.clone(), Faults::default());
    let b = run(cfg.clone(), Faults::default());
    assert_eq!(a.deterministic_json(), b.deterministic_json());
    assert!(
        a.churn.leaves > 0,
        "churn must have happened for the test to mean something"
    );
    assert!(a.traffic.dropped > 0);
    cfg.seed = 8;
    let c = run(cfg, Faults::default());
    assert_ne!(a.deterministic_json(), c.deterministic_json());
}

#[test]
fn correct_overlay_on_a_static_network_passes_every_check() {
    let mut cfg = config(3);
    cfg.min_lookup_success = Some(1.0);
    cfg.min_get_success = Some(1.0);
    let r = run(cfg, Faults::default());
    assert_eq!(r.lookups.started, 400);
    assert_eq!(r.lookups.succeeded, 400, "{}", r.summary());
    assert_eq!(r.lookups.recall_at_k, 1.0);
    assert_eq!(r.lookups.hops.p50, 1);
    assert_eq!(r.gets.correct, r.gets.started);
    assert_eq!(r.puts.items, 40);
    assert!(
        r.checks.iter().all(|c| c.items > 0 && c.fraction == 1.0),
        "{:?}",
        r.checks
    );
    assert!(r.verdict.passed, "{}", r.summary());
    assert_eq!(exit_code(&r), 0);
    // Latency of a one-hop lookup is one round trip: it must sit near the median RTT.
    let rtt = r.network.median_rtt_ms;
    assert!(r.lookups.latency_ms.p50 > 0.5 * rtt && r.lookups.latency_ms.p50 < 2.0 * rtt);
}

#[test]
fn planted_wrong_lookup_answers_are_caught() {
    let mut cfg = config(3);
    cfg.min_lookup_success = Some(0.99);
    let r = run(
        cfg,
        Faults {
            wrong_lookups: true,
            ..Faults::default()
        },
    );
    assert_eq!(r.lookups.wrong, r.lookups.started, "{}", r.summary());
    assert_eq!(r.lookups.succeeded, 0);
    assert!(r.lookups.recall_at_k < 0.01);
    assert!(!r.verdict.passed);
    assert_eq!(exit_code(&r), EXIT_LIVENESS);
    assert!(r
        .summary()
        .contains("replay: dht sim --overlay toy --nodes 500 --seed 3"));
}

#[test]
fn dropped_values_are_caught_by_gets_and_item_checks() {
    let mut cfg = config(4);
    cfg.min_get_success = Some(0.99);
    let r = run(
        cfg,
        Faults {
            drop_values: true,
            ..Faults::default()
        },
    );
    assert!(r.gets.started > 0);
    assert_eq!(r.gets.found, 0);
    assert_eq!(r.gets.correct, 0);
    assert!(
        r.checks.iter().any(|c| c.items > 0 && c.fraction == 0.0),
        "{:?}",
        r.checks
    );
    assert_eq!(exit_code(&r), EXIT_LIVENESS);
}

#[test]
fn forged_values_are_a_correctness_failure() {
    let r = run(
        config(5),
        Faults {
            forge_values: true,
            ..Faults::default()
        },
    );
    assert!(r.gets.corrupt > 0);
    assert!(r.verdict.correctness_failure);
    assert_eq!(exit_code(&r), EXIT_CORRECTNESS);
}

#[test]
fn churn_balances_leaves_with_joins_and_rejoins() {
    let mut cfg = config(6);
    cfg.churn = Churn::parse("bamboo").unwrap();
    cfg.churn_spec = "bamboo".into();
    let r = run(cfg, Faults::default());
    let c = &r.churn;
    assert!(c.leaves > 500, "1.4-minute sessions over 30 minutes: {c:?}");
    assert!(c.rejoins > 0 && c.joins > 0);
    let balanced = (c.joins + c.rejoins) as i64 - c.leaves as i64;
    assert!(balanced.abs() < 100, "{c:?}");
    assert!((400..=600).contains(&c.live_at_end), "{c:?}");
    // The toy's directory never forgets dead nodes, so churn must cost it lookups.
    assert!(
        r.lookups.success_rate < 0.99 && r.lookups.success_rate > 0.2,
        "{}",
        r.summary()
    );
}

#[test]
fn mass_failure_removes_the_fraction_and_triggers_an_item_check() {
    let mut cfg = config(9);
    cfg.mass_failure = Some("0.25@900".into());
    cfg.check_interval_s = None;
    let r = run(cfg, Faults::default());
    assert_eq!(r.churn.mass_failed, 125);
    assert_eq!(r.churn.live_at_end, 375);
    assert_eq!(r.checks.len(), 1);
    assert!(r.checks[0].t_s >= 960.0 && r.checks[0].items > 0);
}
