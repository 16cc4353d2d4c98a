//! k random walkers with checking over a random graph of fixed degree (Lv, Cao, Cohen, Li and
//! Shenker, ICS 2002, section 4). The node and its implementation note live in
//! [`super::unstructured`]; this module names the random-walk configuration.

use super::unstructured::{Unstructured, UnstructuredConfig};

/// The random-walk overlay with its defaults (degree 8, 16 walkers, walks up to 1024 steps,
/// checking with the origin every 4 steps).
pub fn random_walk() -> Unstructured {
    Unstructured::new(UnstructuredConfig::random_walk())
}

/// The random-walk overlay with `walkers` walkers of at most `walk_len` steps and `replicas`
/// copies of each item.
pub fn random_walk_with(walkers: u32, walk_len: u32, replicas: u32) -> Unstructured {
    Unstructured::new(UnstructuredConfig {
        walkers,
        walk_len,
        replicas,
        ..UnstructuredConfig::random_walk()
    })
}
