//! The runtime around `dht-proto`: a tokio UDP driver, the on-disk store, and the cloneable
//! [`Dht`] handle that applications and the `dht` command use.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dht_node::Dht;
//! let dht = Dht::builder()
//!     .bind("127.0.0.1:0".parse()?)
//!     .bootstrap(["127.0.0.1:6881"])
//!     .spawn()
//!     .await?;
//! dht.bootstrapped().await?;
//! let put = dht.put_immutable(b"5:hello".to_vec()).await?;
//! let got = dht.get_immutable(put.target).await?;
//! assert_eq!(got.value.as_deref(), Some(&b"5:hello"[..]));
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod builder;
pub mod clock;
pub mod disk;
mod driver;
pub mod error;
mod handle;
pub mod metrics;
pub mod udp;

pub use builder::{Builder, DEFAULT_ROUTERS};
pub use error::{CommandError, StartError};
pub use handle::{
    BucketSnapshot, ContactSnapshot, ContactState, Dht, GetResult, PutResult, RoutingSnapshot,
    Status, StoredItemInfo, StoredSnapshot, STORED_LIST_MAX,
};

/// The protocol's types that the [`Dht`] handle's API speaks in (IDs, BEP 44 items, command
/// events and their traces, the node's settings and counters), re-exported from `dht-proto`
/// so that an application, the `dht` command among them, needs only this crate.
pub mod proto {
    pub use dht_proto::bencode;
    pub use dht_proto::bep44::{self, MutableItem};
    pub use dht_proto::lookup::{LookupStats, TraceEvent, PATHS_MAX};
    pub use dht_proto::message::{NodeInfo, SALT_LEN_MAX, VALUE_LEN_MAX};
    pub use dht_proto::node::{Config, Event, NodeStats, Outcome, UPLOAD_BYTES_PER_SECOND};
    pub use dht_proto::ratelimit::RateLimit;
    pub use dht_proto::Id;
}
