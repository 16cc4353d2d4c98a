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
