//! Runs an overlay by its command-line name: the one place that knows every overlay, their
//! default settings and their owner rules, shared by `dht sim` and `dht compare`.
//!
//! | name | overlay | owner rule of the checker |
//! | --- | --- | --- |
//! | `kademlia` | `dht-proto`'s node | the k closest live IDs by XOR |
//! | `chord` | [`Chord`] | the ring successor of the key |
//! | `pastry` | [`Pastry`] | the numerically closest live ID |
//! | `can` | [`Can`] (`--can-d`) | the live node whose zone holds the key's point |
//! | `onehop` | [`OneHop`] | the node of the first live token at or after the key |
//! | `flooding` | [`Unstructured`] (`--ttl`, `--replicas`) | any live holder of the item |
//! | `randomwalk` | [`Unstructured`] (`--walkers`, `--walk-len`, `--replicas`) | any live holder |

use std::time::Duration;

use crate::checks::checker::{HonestXorClosest, OwnerOracle, RingSuccessor, XorClosest};
use crate::checks::oracles::{AnyHolder, NumericallyClosest, TokenOwner, ZoneOwner};
use crate::config::SimConfig;
use crate::engine::Sim;
use crate::output::report::Report;
use crate::overlays::can::{Can, CanConfig};
use crate::overlays::chord::{Chord, ChordConfig};
use crate::overlays::kademlia::Kademlia;
use crate::overlays::onehop::{OneHop, OneHopConfig};
use crate::overlays::overlay::Overlay;
use crate::overlays::pastry::{Pastry, PastryConfig};
use crate::overlays::unstructured::{Unstructured, UnstructuredConfig};
use dht_proto::node::Config;

/// Overlay names `dht sim --overlay` accepts, in the order `dht compare` runs them.
pub const OVERLAYS: &[&str] = &[
    "kademlia",
    "chord",
    "pastry",
    "can",
    "onehop",
    "flooding",
    "randomwalk",
];

/// CAN dimensions `--can-d` accepts at most (the CAN node's own bound).
pub const CAN_D_MAX: usize = 8;

/// Flooding TTL `--ttl` accepts at most: 16 hops of a degree-8 graph cover any simulated size.
pub const TTL_MAX: u32 = 16;

/// Random-walk walkers `--walkers` accepts at most.
pub const WALKERS_MAX: u32 = 1024;

/// Random-walk length `--walk-len` accepts at most, in steps.
pub const WALK_LEN_MAX: u32 = 1 << 20;

/// Virtual time one random-walk step may take, for the search deadline: a one-way delay
/// (median 75 ms, at most about 250 ms) plus a quarter of a check round trip.
pub const WALK_STEP_BUDGET: Duration = Duration::from_millis(200);

/// Shortest deadline of an unstructured search (the overlay's own default).
pub const SEARCH_TIME_MIN: Duration = Duration::from_secs(30);

/// Extra workload tail beyond the longest search, so that the last search ends before the run.
pub const SEARCH_TAIL_MARGIN_S: f64 = 30.0;

/// An unknown overlay name, or a run that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The name is not one of [`OVERLAYS`]; pick one of those.
    #[error("unknown overlay {0:?}; valid overlays: {list}", list = OVERLAYS.join(", "))]
    UnknownOverlay(String),
    /// A parameter did not parse or is out of range (partition, mass failure, a knob); fix the
    /// flag.
    #[error("bad parameter: {0}")]
    BadParameter(String),
}

fn go<O: Overlay>(
    overlay: O,
    oracle: Box<dyn OwnerOracle<O::Node>>,
    cfg: SimConfig,
    on_parameters: &mut dyn FnMut(&str),
) -> Result<Report, RunError> {
    let sim = Sim::new(overlay, oracle, cfg).map_err(RunError::BadParameter)?;
    on_parameters(&sim.parameters());
    Ok(sim.run())
}

/// The unstructured overlay `name` configured from `cfg`'s knobs, or `None` for other names.
pub fn unstructured_config(name: &str, cfg: &SimConfig) -> Option<UnstructuredConfig> {
    let k = &cfg.knobs;
    let replicas = k.replicas_for(cfg.nodes);
    match name {
        "flooding" => Some(UnstructuredConfig {
            ttl: k.ttl,
            replicas,
            power_law: k.power_law,
            ..UnstructuredConfig::flooding()
        }),
        "randomwalk" => Some(UnstructuredConfig {
            walkers: k.walkers,
            walk_len: k.walk_len,
            replicas,
            power_law: k.power_law,
            // A walker that runs its full length must be able to finish before the origin
            // gives up, or a late hit would be lost.
            search_time: SEARCH_TIME_MIN.max(WALK_STEP_BUDGET * k.walk_len),
            ..UnstructuredConfig::random_walk()
        }),
        _ => None,
    }
}

/// The shortest measured phase, in virtual seconds, that lets overlay `name` finish every
/// search it starts: the workload stops `workload_tail_s` (raised for long random walks) before
/// the end and issues commands over at least half of the phase.
pub fn min_duration_s(name: &str, cfg: &SimConfig) -> u64 {
    let tail = match unstructured_config(name, cfg) {
        Some(u) => cfg
            .workload_tail_s
            .max(u.search_time.as_secs_f64() + SEARCH_TAIL_MARGIN_S),
        None => cfg.workload_tail_s,
    };
    (2.0 * tail).ceil() as u64
}

/// Kademlia's node settings for a run: Mainline's, with the run's disjoint paths and
/// proximity neighbour selection; with
/// `--ip-diversity` the nodes have public addresses, where the per-source rate limit and the
/// upload budget would apply too: they are turned off, so that only the routing table's
/// per-subnet limits differ from a loopback run.
fn kademlia_config(cfg: &SimConfig) -> Config {
    let mut c = Config {
        disjoint_paths: cfg.disjoint_paths,
        ..Config::default()
    };
    c.routing.proximity = cfg.proximity;
    if cfg.ip_diversity {
        c.rate_limit.per_second = 0;
        c.upload_bytes_per_second = 0;
    }
    c
}

/// The most nodes an `--ip-diversity` run may start with: churn adds indices, and honest ones
/// must stay below [`crate::overlays::kademlia::PUBLIC_HONEST_MAX`].
pub const IP_DIVERSITY_NODES_MAX: u32 = 2_000_000;

/// Checks the knobs against their bounds.
fn check_knobs(name: &str, cfg: &SimConfig) -> Result<(), RunError> {
    let k = &cfg.knobs;
    let bad = |m: String| Err(RunError::BadParameter(m));
    if !(1..=CAN_D_MAX).contains(&k.can_d) {
        return bad(format!("--can-d {} outside 1..={CAN_D_MAX}", k.can_d));
    }
    if !(1..=TTL_MAX).contains(&k.ttl) {
        return bad(format!("--ttl {} outside 1..={TTL_MAX}", k.ttl));
    }
    let unstructured = matches!(name, "flooding" | "randomwalk");
    if unstructured && k.power_law.is_some() && !cfg.converge {
        return bad(
            "--power-law shapes the graph built at once by --converge; add --converge (joins and churn use link walks)"
                .to_string(),
        );
    }
    if let Some(a) = k.power_law {
        if !(a > 2.0 && a <= 4.0) {
            return bad(format!(
                "--power-law {a} outside (2, 4] (the exponent of the degree distribution; at 2 or less the mean degree diverges)"
            ));
        }
    }
    if (cfg.adversary.is_some() || cfg.disjoint_paths != 1) && name != "kademlia" {
        return bad(format!(
            "--adversary and --disjoint-paths apply to kademlia only (not {name})"
        ));
    }
    if cfg.ip_diversity && name != "kademlia" {
        return bad(format!(
            "--ip-diversity applies to kademlia only (not {name})"
        ));
    }
    if cfg.ip_diversity && cfg.nodes > IP_DIVERSITY_NODES_MAX {
        return bad(format!(
            "--ip-diversity gives each honest node a /24 of its own, for up to {IP_DIVERSITY_NODES_MAX} nodes"
        ));
    }
    if !(1..=dht_proto::lookup::PATHS_MAX).contains(&cfg.disjoint_paths) {
        return bad(format!(
            "--disjoint-paths {} outside 1..={}",
            cfg.disjoint_paths,
            dht_proto::lookup::PATHS_MAX
        ));
    }
    if let Some(a) = &cfg.adversary {
        if a.target.is_some() && a.kind != crate::adversary::Kind::Targeted {
            return bad(format!(
                "--adversary-target applies to --adversary targeted only (not {})",
                a.kind.name()
            ));
        }
        if !(a.fraction > 0.0 && a.fraction < 1.0) {
            return bad(format!(
                "--adversary-fraction {} outside (0, 1) (0.2 = 20% of the nodes)",
                a.fraction
            ));
        }
    }
    if !(1..=WALKERS_MAX).contains(&k.walkers) {
        return bad(format!("--walkers {} outside 1..={WALKERS_MAX}", k.walkers));
    }
    if !(1..=WALK_LEN_MAX).contains(&k.walk_len) {
        return bad(format!(
            "--walk-len {} outside 1..={WALK_LEN_MAX}",
            k.walk_len
        ));
    }
    Ok(())
}

/// Runs overlay `name` with `cfg`; `on_parameters` receives the seed and the derived
/// parameters before the run starts. For the unstructured searches the workload tail is raised
/// to outlast the longest search.
pub fn run_overlay(
    name: &str,
    mut cfg: SimConfig,
    on_parameters: &mut dyn FnMut(&str),
) -> Result<Report, RunError> {
    check_knobs(name, &cfg)?;
    if let Some(a) = cfg.adversary.as_mut() {
        if a.kind == crate::adversary::Kind::Targeted && a.target.is_none() {
            a.target = Some(crate::engine::default_target(cfg.seed));
        }
    }
    if let Some(u) = unstructured_config(name, &cfg) {
        let need = u.search_time.as_secs_f64() + SEARCH_TAIL_MARGIN_S;
        cfg.workload_tail_s = cfg.workload_tail_s.max(need);
    }
    match name {
        "kademlia" => {
            let k = cfg.k;
            go(
                Kademlia::with_adversaries(
                    kademlia_config(&cfg),
                    cfg.seed,
                    cfg.adversary,
                    cfg.ip_diversity,
                ),
                if cfg.adversary.is_some() {
                    Box::new(HonestXorClosest { k })
                } else {
                    Box::new(XorClosest { k })
                },
                cfg,
                on_parameters,
            )
        }
        "chord" => go(
            Chord::new(ChordConfig::default()),
            Box::new(RingSuccessor),
            cfg,
            on_parameters,
        ),
        "pastry" => go(
            Pastry::new(PastryConfig::default()),
            Box::new(NumericallyClosest),
            cfg,
            on_parameters,
        ),
        "can" => go(
            Can::new(CanConfig {
                d: cfg.knobs.can_d,
                ..CanConfig::default()
            }),
            Box::new(ZoneOwner),
            cfg,
            on_parameters,
        ),
        "onehop" => {
            let overlay = OneHop::new(OneHopConfig::default());
            let oracle = TokenOwner {
                overlay: overlay.clone(),
            };
            go(overlay, Box::new(oracle), cfg, on_parameters)
        }
        "flooding" | "randomwalk" => {
            let u = unstructured_config(name, &cfg)
                .ok_or_else(|| RunError::UnknownOverlay(name.to_string()))?;
            go(
                Unstructured::new(u),
                Box::new(AnyHolder),
                cfg,
                on_parameters,
            )
        }
        other => Err(RunError::UnknownOverlay(other.to_string())),
    }
}

/// The hop count overlay `name`'s paper predicts at `n` nodes (`can_d` dimensions for CAN);
/// `None` for an unknown name or an overlay whose paper predicts no bound (flooding, random
/// walk).
pub fn predicted_hops(name: &str, n: u64, can_d: usize) -> Option<f64> {
    let h = match name {
        "kademlia" => Kademlia::new(0).predicted_hops(n),
        "chord" => Chord::new(ChordConfig::default()).predicted_hops(n),
        "pastry" => Pastry::new(PastryConfig::default()).predicted_hops(n),
        "can" => Can::new(CanConfig {
            d: can_d,
            ..CanConfig::default()
        })
        .predicted_hops(n),
        "onehop" => OneHop::new(OneHopConfig::default()).predicted_hops(n),
        _ => return None,
    };
    h.is_finite().then_some(h)
}
