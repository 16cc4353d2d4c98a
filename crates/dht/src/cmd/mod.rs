//! The `dht` subcommands.

pub mod compare;
pub mod compare_plots;
pub mod huge_pages;
pub mod sim;
