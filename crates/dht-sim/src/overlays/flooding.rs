//! Flooding with a TTL over a random graph of fixed degree: the baseline every DHT paper
//! compares with (Lv, Cao, Cohen, Li and Shenker, ICS 2002). The node and its implementation
//! note live in [`super::unstructured`]; this module names the flooding configuration.

use super::unstructured::{Unstructured, UnstructuredConfig};

/// The flooding overlay with its defaults (degree 8, TTL 4, one copy of each item).
pub fn flooding() -> Unstructured {
    Unstructured::new(UnstructuredConfig::flooding())
}

/// The flooding overlay with TTL `ttl` and `replicas` copies of each item.
pub fn flooding_with(ttl: u32, replicas: u32) -> Unstructured {
    Unstructured::new(UnstructuredConfig {
        ttl,
        replicas,
        ..UnstructuredConfig::flooding()
    })
}
