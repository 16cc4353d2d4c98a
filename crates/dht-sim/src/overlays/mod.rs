//! The overlays of the DHT literature, side by side with Kademlia, behind the one
//! [`Overlay`](crate::overlay::Overlay) trait.
//!
//! | overlay | module | paper | hops the paper predicts |
//! | --- | --- | --- | --- |
//! | Chord | [`chord`] | Stoica et al. 2001 | ½ log2 N |
//! | CAN | [`can`] | Ratnasamy et al. 2001 | (d/4) N^(1/d) |
//! | one-hop ring | [`onehop`] | Lakshman & Malik 2010, DeCandia et al. 2007 | 1 |
//! | flooding, random walk | [`flooding`], [`randomwalk`] ([`unstructured`]) | Lv et al. 2002 | none (NaN); measured |
//! | Pastry | [`pastry`] | Rowstron & Druschel 2001 | log_16 N (b = 4), below ⌈log_16 N⌉ |
//!
//! The structured overlays share a recursive routing core with per-hop acknowledgements
//! ([`common`]); [`driver`] is a minimal fixed-latency network that runs any overlay for tests
//! and static measurements.
//!
//! Kademlia's adapter (`overlays/kademlia.rs`, the engine author's file) is declared in `lib.rs`
//! with a `#[path]` attribute, so it is deliberately not declared here.

pub mod can;
pub mod chord;
pub mod common;
pub mod driver;
pub mod flooding;
pub mod onehop;
pub mod pastry;
pub mod randomwalk;
pub mod unstructured;
