//! The `dht` subcommands.

pub mod compare;
pub mod sim;
