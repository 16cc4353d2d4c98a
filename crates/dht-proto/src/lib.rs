//! Sans-IO core of a Kademlia node that speaks BitTorrent's Mainline DHT protocol.
//!
//! No sockets, no clock, no OS randomness, no async runtime: time comes in as an argument,
//! randomness from a generator the node owns and the caller seeds, datagrams in through
//! `handle_datagram` and out through `poll_transmit`. The same code runs as a real node (in
//! `dht-node`) and a million times in one process (in `dht-sim`).
//!
//! The four components of a DHT, and where each lives here:
//! - the mapping function (key space): [`id`];
//! - the node's share of the table: [`store`];
//! - the routing table: [`routing`];
//! - the routing algorithm: [`lookup`], driven by [`node`].
#![warn(missing_docs)]

pub mod bencode;
pub mod bep44;
pub mod id;
pub mod krpc;
pub mod lookup;
pub mod message;
pub mod node;
pub mod ratelimit;
pub mod routing;
pub mod store;
pub mod time;
pub mod token;

pub use id::{Distance, Id};
pub use time::Instant;
