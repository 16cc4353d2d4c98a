//! Runs an overlay by its command-line name: the one place that knows every overlay, their
//! default settings and their owner rules, shared by `dht sim` and `dht compare`.

use crate::checker::{OwnerOracle, RingSuccessor, XorClosest};
use crate::config::SimConfig;
use crate::engine::Sim;
use crate::kademlia::Kademlia;
use crate::oracles::{NumericallyClosest, ZoneOwner};
use crate::overlay::Overlay;
use crate::overlays::can::{Can, CanConfig};
use crate::overlays::chord::{Chord, ChordConfig};
use crate::overlays::pastry::{Pastry, PastryConfig};
use crate::report::Report;

/// Overlay names `dht sim --overlay` accepts, in the order `dht compare` runs them.
pub const OVERLAYS: &[&str] = &["kademlia", "chord", "pastry", "can"];

/// An unknown overlay name, or a run that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The name is not one of [`OVERLAYS`]; pick one of those.
    #[error("unknown overlay {0:?}; valid overlays: {list}", list = OVERLAYS.join(", "))]
    UnknownOverlay(String),
    /// A parameter did not parse (partition or mass-failure spec); fix the flag.
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

/// Runs overlay `name` with `cfg`; `on_parameters` receives the seed and the derived
/// parameters before the run starts.
pub fn run_overlay(
    name: &str,
    cfg: SimConfig,
    on_parameters: &mut dyn FnMut(&str),
) -> Result<Report, RunError> {
    match name {
        "kademlia" => {
            let k = cfg.k;
            go(
                Kademlia::new(cfg.seed),
                Box::new(XorClosest { k }),
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
            Can::new(CanConfig::default()),
            Box::new(ZoneOwner),
            cfg,
            on_parameters,
        ),
        other => Err(RunError::UnknownOverlay(other.to_string())),
    }
}

/// The hop count overlay `name`'s paper predicts at `n` nodes.
pub fn predicted_hops(name: &str, n: u64) -> Option<f64> {
    Some(match name {
        "kademlia" => Kademlia::new(0).predicted_hops(n),
        "chord" => Chord::new(ChordConfig::default()).predicted_hops(n),
        "pastry" => Pastry::new(PastryConfig::default()).predicted_hops(n),
        "can" => Can::new(CanConfig::default()).predicted_hops(n),
        _ => return None,
    })
}
