//! The runtime around `dht-proto`: a tokio UDP driver, the on-disk store, and the cloneable
//! [`Dht`] handle that applications, the `dht` command and its HTTP API use.
#![warn(missing_docs)]

pub mod clock;
pub mod disk;
