//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`, every file) and the hand-made
//! seeds through the fuzz targets, so that `cargo test` checks, without a fuzzer, every input
//! the fuzzer kept and every crash that was turned into a corpus file.
//!
//! `DHT_FUZZ_WRITE_SEEDS=1 cargo test -p dht-fuzz --test corpus_replay` (re)writes the seeds as
//! `fuzz/corpus/<target>/seed_<name>` files; review the diff before committing it.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use dht_fuzz::seeds::seeds;
use dht_fuzz::TARGETS;

/// Most files one target's corpus may hold: a bound on the replay loop, well above what
/// `cargo fuzz cmin` leaves.
const CORPUS_FILES_MAX: usize = 20_000;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Runs `target` on every input, and fails naming each input that panicked.
fn replay(name: &str, target: fn(&[u8]), inputs: Vec<(String, Vec<u8>)>) {
    let failed: Vec<String> = inputs
        .iter()
        .filter(|(_, bytes)| catch_unwind(AssertUnwindSafe(|| target(bytes))).is_err())
        .map(|(file, _)| file.clone())
        .collect();
    assert!(failed.is_empty(), "target {name} panicked on {failed:?}");
}

#[test]
fn every_corpus_file_passes_its_target() {
    for (name, target) in TARGETS {
        let dir = corpus_dir(name);
        let mut inputs = Vec::new();
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            let bytes = fs::read(&path).expect("corpus file");
            inputs.push((path.display().to_string(), bytes));
            assert!(
                inputs.len() <= CORPUS_FILES_MAX,
                "corpus of {name} too large"
            );
        }
        assert!(!inputs.is_empty(), "corpus of {name} is empty");
        replay(name, target, inputs);
    }
}

#[test]
fn every_seed_passes_its_target() {
    let write = std::env::var_os("DHT_FUZZ_WRITE_SEEDS").is_some();
    for (name, target) in TARGETS {
        let seeds = seeds(name);
        if write {
            for (seed, bytes) in &seeds {
                fs::write(corpus_dir(name).join(format!("seed_{seed}")), bytes).expect("write");
            }
        }
        replay(name, target, seeds);
    }
}
