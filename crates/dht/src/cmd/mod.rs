//! The `dht` subcommands.

pub mod compare;
pub mod compare_plots;
pub mod malloc_tunables;
pub mod sim;
