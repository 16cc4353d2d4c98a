//! Fuzz targets as plain functions, one per decoder that reads the network or the disk.
//!
//! Each target takes the fuzzer's bytes, runs them through the code under test, and panics if
//! an invariant fails; a return is a pass. The same functions serve two callers:
//!
//! - the cargo-fuzz package in `fuzz/` at the repository root, whose targets are one line each
//!   (`dht_fuzz::bencode(data)`), so libFuzzer never appears in this workspace's build;
//! - `tests/corpus_replay.rs`, which replays every file of the committed seed corpus
//!   (`fuzz/corpus/<target>/`) through them, so `cargo test` checks the corpus, and every crash
//!   that was turned into a corpus file, without a fuzzer.
//!
//! [`seeds`] builds the hand-made part of the seed corpus. `docs/fuzzing.md` has the commands.
#![warn(missing_docs)]

mod bencode;
mod disk_record;
mod krpc;
pub mod node;
pub mod seeds;

pub use bencode::bencode;
pub use disk_record::disk_record;
pub use krpc::krpc;
pub use node::node;

/// A fuzz target: runs one input, panics if an invariant fails.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` call
/// them.
pub const TARGETS: [(&str, Target); 4] = [
    ("bencode", bencode),
    ("krpc", krpc),
    ("node", node),
    ("disk_record", disk_record),
];
