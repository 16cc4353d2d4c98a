//! Node tests: see tests in crates/dht-proto/tests for whole-network checks.
