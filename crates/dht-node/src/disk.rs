//! The on-disk store (being written).
