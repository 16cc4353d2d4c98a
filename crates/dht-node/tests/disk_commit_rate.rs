//! How fast the on-disk store commits, opens and loads on this machine: a measurement that
//! prints its figures, never a timed assertion. Run it with
//! `cargo test -p dht-node --test disk_commit_rate -- --ignored --nocapture`.
//!
//! Each commit waits for fsync (redb's `Durability::Immediate`), so a commit costs about the
//! same whether it holds 1 change or 100: that is why the runtime commits a whole batch of
//! datagrams in one transaction.

use std::time::{Duration, Instant as StdInstant};

use dht_node::clock::Clock;
use dht_node::disk::DataDir;
use dht_proto::store::{ItemValue, StoreChange, StoredItem};
use dht_proto::{Id, Instant};

/// Commits measured per batch size, at most.
const COMMITS_MAX: u32 = 400;

/// Time spent measuring one batch size, at most.
const MEASURE_TIME_MAX: Duration = Duration::from_secs(5);

/// Items in the store whose open and load are timed.
const LOAD_ITEMS: u32 = 20_000;

fn item(n: u32, expires: Instant) -> StoredItem {
    let mut target = [0u8; 20];
    target[..4].copy_from_slice(&n.to_be_bytes());
    StoredItem {
        target: Id(target),
        value: ItemValue::Immutable(format!("200:{n:0>200}").into_bytes()),
        expires,
        source: "192.0.2.1".parse().unwrap(),
    }
}

/// Commits batches of `batch` changes until the count or time bound, and returns
/// (commits, elapsed).
fn measure(d: &DataDir, clock: &Clock, batch: u32, next: &mut u32) -> (u32, Duration) {
    let expires = clock.now() + Duration::from_secs(3600);
    let start = StdInstant::now();
    let mut commits = 0;
    while commits < COMMITS_MAX && start.elapsed() < MEASURE_TIME_MAX {
        let changes: Vec<StoreChange> = (0..batch)
            .map(|i| StoreChange::PutItem(item(*next + i, expires)))
            .collect();
        *next += batch;
        d.commit(&changes, clock).unwrap();
        commits += 1;
    }
    (commits, start.elapsed())
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture to read the figures"]
fn print_commit_open_and_load_rates() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    let d = DataDir::open(tmp.path()).unwrap();
    let mut next = 0;
    println!("store in {}", tmp.path().display());
    for batch in [1u32, 100, 1000] {
        let (commits, elapsed) = measure(&d, &clock, batch, &mut next);
        let per_s = f64::from(commits) / elapsed.as_secs_f64();
        println!(
            "{batch:>5}-change transactions: {commits} commits in {:.2} s = {per_s:.0} commits/s, \
             {:.2} ms/commit, {:.0} changes/s",
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0 / f64::from(commits),
            per_s * f64::from(batch),
        );
    }
    drop(d);

    let tmp = tempfile::tempdir().unwrap();
    {
        let d = DataDir::open(tmp.path()).unwrap();
        let expires = clock.now() + Duration::from_secs(3600);
        let changes: Vec<StoreChange> = (0..LOAD_ITEMS)
            .map(|n| StoreChange::PutItem(item(n, expires)))
            .collect();
        d.commit(&changes, &clock).unwrap();
    }
    let bytes = std::fs::metadata(tmp.path().join(dht_node::disk::STORE_FILE))
        .unwrap()
        .len();
    let start = StdInstant::now();
    let d = DataDir::open(tmp.path()).unwrap();
    let opened = start.elapsed();
    let items = d.load_items(&clock).unwrap();
    let loaded = start.elapsed() - opened;
    assert_eq!(items.len(), LOAD_ITEMS as usize);
    println!(
        "store of {LOAD_ITEMS} items ({:.1} MB): checked open {:.0} ms, load_items {:.0} ms",
        bytes as f64 / 1e6,
        opened.as_secs_f64() * 1000.0,
        loaded.as_secs_f64() * 1000.0,
    );
}
