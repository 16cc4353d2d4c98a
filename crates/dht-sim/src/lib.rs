//! Deterministic discrete-event simulator for DHT overlays.
#![warn(missing_docs)]

pub mod overlay;
pub mod overlays;
