//! Deterministic discrete-event simulator for DHT overlays.
//!
//! One thread, virtual time, one event queue; a synthetic Internet with heavy-tailed churn; a
//! workload of lookups, puts and gets; checkers against a reference model; a JSON report, a text
//! summary and SVG plots. The overlays run behind one trait; Kademlia is `dht-proto`'s own node
//! exchanging real KRPC datagrams. The crate is arranged in rooms, one per role:
//!
//! | room | what it holds |
//! | --- | --- |
//! | [`engine`] | the event engine: the event queue, the workload, the end-of-run report builder |
//! | [`world`] | the world the nodes live in: the network model, churn, the membership index |
//! | [`overlays`] | the overlay trait, the registry of overlays by name, Kademlia and the others, their shared parts, a test network |
//! | [`checks`] | the checkers, the owner rules, and a toy overlay with planted faults |
//! | [`output`] | counters, the report, the plots |
//! | [`adversary`] | nodes that lie: the behaviour layer over Kademlia's core, and its bookkeeping |
//! | [`draw`] | drawings of one lookup's path through an overlay |
//! | [`config`], [`rng`] | the run's settings; the one seeded random-number generator |
#![warn(missing_docs)]

pub mod adversary;
pub mod checks;
pub mod config;
pub mod draw;
pub mod engine;
pub mod output;
pub mod overlays;
pub mod rng;
pub mod world;

pub use checks::checker::{OwnerOracle, RingSuccessor, XorClosest};
pub use config::SimConfig;
pub use engine::{exit_code, Sim, EXIT_CORRECTNESS, EXIT_LIVENESS};
pub use output::report::Report;
