//! Deterministic discrete-event simulator for DHT overlays.
//!
//! One thread, virtual time, one event queue ([`engine`]); a synthetic Internet ([`network`]);
//! heavy-tailed churn ([`churn`]); a workload of lookups, puts and gets; checkers against a
//! reference model ([`checker`]); a JSON report, a text summary and SVG plots ([`report`],
//! [`plots`]). The overlays run behind one trait ([`overlay`]); Kademlia is `dht-proto`'s own
//! node exchanging real KRPC datagrams.
#![warn(missing_docs)]

pub mod checker;
pub mod churn;
pub mod config;
pub mod draw;
pub mod engine;
/// Kademlia: `dht-proto`'s node as an overlay. The file lives with the other overlays; it is
/// declared here so that `overlays/mod.rs` (another engineer's file) need not change.
#[path = "overlays/kademlia.rs"]
pub mod kademlia;
pub mod live;
pub mod network;
pub mod oracles;
pub mod overlay;
pub mod overlays;
pub mod plots;
pub mod prefetch;
mod queue;
pub mod registry;
pub mod report;
pub mod rng;
pub mod stats;
pub mod toy;

pub use checker::{OwnerOracle, RingSuccessor, XorClosest};
pub use config::SimConfig;
pub use engine::{exit_code, Sim, EXIT_CORRECTNESS, EXIT_LIVENESS};
pub use report::Report;
