//! The overlays: Kademlia and the overlays of the DHT literature side by side, behind the one
//! [`Overlay`] trait ([`overlay`]), run by their command-line names ([`registry`]).
//!
//! | overlay | module | paper | hops the paper predicts |
//! | --- | --- | --- | --- |
//! | Kademlia | [`kademlia`] (`dht-proto`'s node) | Maymounkov & Mazières 2002 | log2 N / b |
//! | Chord | [`chord`] | Stoica et al. 2001 | ½ log2 N |
//! | CAN | [`can`] | Ratnasamy et al. 2001 | (d/4) N^(1/d) |
//! | one-hop ring | [`onehop`] | Lakshman & Malik 2010, DeCandia et al. 2007 | 1 |
//! | flooding, random walk | [`flooding`], [`randomwalk`] ([`unstructured`]) | Lv et al. 2002 | none (NaN); measured |
//! | Pastry | [`pastry`] | Rowstron & Druschel 2001 | log_16 N (b = 4), below ⌈log_16 N⌉ |
//!
//! Their shared parts: the ring arithmetic of the ring overlays ([`ring`]), the bounded item
//! store ([`store`]), the recursive routing core with per-hop acknowledgements of the structured
//! overlays ([`route`]) and the wire sizes of their messages ([`wire`]). [`driver`] is a minimal
//! fixed-latency network that runs any overlay for tests and static measurements.

pub mod can;
pub mod chord;
pub mod driver;
pub mod flooding;
pub mod kademlia;
pub mod onehop;
pub mod overlay;
pub mod pastry;
pub mod randomwalk;
pub mod registry;
pub mod ring;
pub mod route;
pub mod store;
pub mod unstructured;
pub mod wire;

pub use overlay::{Delays, NodeIdx, Overlay, OverlayEvent, OverlayNode, QueryId};
