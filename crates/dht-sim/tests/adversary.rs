//! Adversaries in the simulator, and the defences that beat them: each test runs the attack
//! with the defence on and, where the defence is a setting, off, and checks that the setting
//! is what makes the difference.

use dht_sim::adversary::{AdversaryConfig, Kind};
use dht_sim::overlays::registry::{run_overlay, RunError};
use dht_sim::{Report, SimConfig};

fn config(kind: Kind, fraction: f64, paths: usize) -> SimConfig {
    SimConfig {
        seed: 5,
        nodes: 1000,
        lookups: 600,
        puts: 60,
        gets: 400,
        duration_s: 600,
        warmup_s: Some(120),
        converge: true,
        adversary: Some(AdversaryConfig {
            kind,
            fraction,
            target: None,
        }),
        disjoint_paths: paths,
        ..SimConfig::default()
    }
}

fn run(cfg: SimConfig) -> Report {
    let r = run_overlay("kademlia", cfg, &mut |p| print!("{p}")).expect("the run starts");
    println!("{}", r.summary());
    r
}

#[test]
fn disjoint_paths_beat_an_eclipse_that_beats_one_path() {
    // Measured at this seed: one path finds the closest honest node in 94.8% of the lookups,
    // four disjoint paths in 100%.
    let one = run(config(Kind::Eclipse, 0.3, 1));
    let four = run(config(Kind::Eclipse, 0.3, 4));
    for r in [&one, &four] {
        let a = r.adversary.as_ref().expect("an adversary section");
        assert_eq!(a.kind, Kind::Eclipse);
        assert!(a.tally.mischief.lies > 1000, "the colluders lied: {a:?}");
        assert!(
            (0.25..0.35).contains(&(a.tally.created as f64 / 1000.0)),
            "{a:?}"
        );
    }
    assert!(
        four.lookups.success_rate >= 0.99,
        "{}",
        four.lookups.success_rate
    );
    assert!(
        one.lookups.success_rate + 0.02 < four.lookups.success_rate,
        "one path {} is not worse than four {}",
        one.lookups.success_rate,
        four.lookups.success_rate
    );
    assert!(four.lookups.messages_per_lookup > 2.0 * one.lookups.messages_per_lookup);
}

#[test]
fn forged_values_are_refused_and_never_returned() {
    let r = run(config(Kind::Forge, 0.2, 1));
    let a = r.adversary.as_ref().unwrap();
    assert!(a.tally.mischief.forged > 100, "{a:?}");
    assert!(a.tally.forgeries_refused > 100, "{a:?}");
    assert_eq!(a.forgeries_accepted, 0);
    assert_eq!(r.gets.corrupt, 0);
    assert!(r.gets.success_rate >= 0.99, "{}", r.summary());
}

#[test]
fn data_outlives_adversaries_that_drop_it() {
    let r = run(config(Kind::Drop, 0.2, 1));
    let a = r.adversary.as_ref().unwrap();
    assert!(a.tally.mischief.dropped > 100, "{a:?}");
    assert!(r.gets.success_rate >= 0.99, "{}", r.summary());
}

#[test]
fn targeted_adversaries_surround_their_key_and_one_path_cannot_pass_them() {
    // 50 adversaries around the workload's first item.
    let r = run(config(Kind::Targeted, 0.05, 1));
    let a = r.adversary.as_ref().unwrap();
    let target = a.target.clone().expect("a target");
    assert_eq!(target.len(), 40);
    let lookups = a.target_lookups.expect("lookups of the target are counted");
    let gets = a.target_gets.expect("gets of the target are counted");
    assert!(lookups.done > 200 && gets.done > 100, "{a:?}");
    assert!(a.tally.mischief.forged > 0, "{a:?}");
    assert_eq!(a.forgeries_accepted, 0);
    // The closest honest node sits behind 50 adversaries who name only each other.
    assert!(lookups.success_rate < 0.5, "{lookups:?}");
}

#[test]
fn adversaries_are_refused_where_they_do_not_apply() {
    let bad = |name: &str, cfg: SimConfig| match run_overlay(name, cfg, &mut |_| {}) {
        Err(RunError::BadParameter(m)) => m,
        other => panic!(
            "{name}: expected a bad parameter, got {:?}",
            other.map(|r| r.summary())
        ),
    };
    let m = bad("chord", config(Kind::Eclipse, 0.2, 1));
    assert!(m.contains("kademlia only"), "{m}");
    let m = bad("kademlia", config(Kind::Eclipse, 1.5, 1));
    assert!(m.contains("--adversary-fraction"), "{m}");
    let m = bad("kademlia", config(Kind::Eclipse, 0.2, 17));
    assert!(m.contains("--disjoint-paths"), "{m}");
}

#[test]
fn adversary_runs_are_deterministic() {
    let a = run(config(Kind::Eclipse, 0.2, 2));
    let b = run(config(Kind::Eclipse, 0.2, 2));
    assert_eq!(a.deterministic_json(), b.deterministic_json());
}

#[test]
fn newcomers_join_through_honest_nodes() {
    // Under churn, a newcomer that bootstrapped through a colluder would know only colluders
    // and never be found by an honest node; lookups whose closest honest node it is would
    // fail on every path.
    let mut cfg = config(Kind::Eclipse, 0.3, 4);
    cfg.churn = dht_sim::world::churn::Churn::parse("100%").unwrap();
    cfg.churn_spec = "100%".into();
    cfg.duration_s = 1200;
    cfg.lookups = 1500;
    let r = run(cfg);
    assert!(r.churn.joins > 200, "{:?}", r.churn);
    // Measured at this seed: 99.0%; joining through any live node instead gives 96.1%.
    assert!(r.lookups.success_rate >= 0.98, "{}", r.lookups.success_rate);
}
