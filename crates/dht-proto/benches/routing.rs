//! Cost of the routing table's two hot calls, on tables filled the way a real network fills
//! them: `closest(target, 8)`, which answers every `find_node` / `get_peers` / `get`, and
//! `heard_from`, which every incoming message calls.
//!
//! A table is filled by offering it every node of a simulated network (random IDs, distinct
//! public addresses, all answering): bucket `i` has `N / 2^(i+1)` candidates, so a node of a
//! 10,000-node network ends with about 11 buckets (all full but the deepest), one of a
//! 1,000,000-node network with about 18. The deepest buckets are partly filled, as in life.
//!
//! Run with `cargo bench -p dht-proto --bench routing` (add `-- --quick` for a short run). The
//! default times are already short (2 s per benchmark), as the machine is shared.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dht_proto::message::NodeInfo;
use dht_proto::routing::{Heard, RoutingConfig, RoutingTable, K};
use dht_proto::{Id, Instant};
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// Network sizes whose tables are measured.
const NETWORKS: [usize; 2] = [10_000, 1_000_000];

/// Distinct random targets cycled through, so the branch predictor and caches do not learn one.
const TARGETS: usize = 1024;

/// The time the benchmark runs at: every contact was heard from at `FILLED_AT` and is good.
const NOW: Instant = Instant::from_micros(120_000_000);
const FILLED_AT: Instant = Instant::from_micros(60_000_000);

fn addr(i: usize) -> SocketAddr {
    // 11.0.0.0/8 and up: public addresses, distinct per node, so the one-per-IP rule passes.
    SocketAddr::from((Ipv4Addr::from(0x0b00_0000u32 + i as u32), 6881))
}

/// The table of a node of an `n`-node network.
fn filled(n: usize, rng: &mut SmallRng) -> RoutingTable {
    let own = Id::random(rng);
    let mut table = RoutingTable::new(own, RoutingConfig::default());
    for i in 0..n {
        let node = NodeInfo {
            id: Id::random(rng),
            addr: addr(i),
        };
        table.heard_from(FILLED_AT, node, Heard::Response);
    }
    table
}

fn targets(rng: &mut SmallRng) -> Vec<Id> {
    (0..TARGETS).map(|_| Id::random(rng)).collect()
}

fn routing(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(42);
    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for n in NETWORKS {
        let mut table = filled(n, &mut rng);
        let label = format!(
            "{n}_nodes_{}_buckets_{}_contacts",
            table.bucket_count(),
            table.len()
        );
        eprintln!("routing bench: table of a node in a {n}-node network: {label}");
        assert!(table.len() >= K, "the table must answer with k contacts");

        // A random target: almost always in one of the shallow buckets.
        let random = targets(&mut rng);
        let mut i = 0;
        group.bench_function(BenchmarkId::new("closest_8_random_target", &label), |b| {
            b.iter(|| {
                i = (i + 1) % TARGETS;
                black_box(table.closest(black_box(&random[i]), K))
            })
        });

        // A target next to our own ID (a lookup of our own neighbourhood, as bootstrap and
        // the deepest buckets' refresh do): the answer gathers from several deep buckets.
        let own = table.own_id();
        let near: Vec<Id> = (0..TARGETS)
            .map(|j| own.random_in_bucket(table.bucket_count() - 1 + j % 2, &mut rng))
            .collect();
        let mut i = 0;
        group.bench_function(
            BenchmarkId::new("closest_8_own_neighbourhood", &label),
            |b| {
                b.iter(|| {
                    i = (i + 1) % TARGETS;
                    black_box(table.closest(black_box(&near[i]), K))
                })
            },
        );

        // A message from a contact we hold: found in its bucket and refreshed.
        let known: Vec<NodeInfo> = table.contacts().map(|c| c.info()).collect();
        let mut i = 0;
        group.bench_function(BenchmarkId::new("heard_from_known_contact", &label), |b| {
            b.iter(|| {
                i = (i + 1) % known.len();
                black_box(table.heard_from(NOW, known[i], Heard::Query))
            })
        });

        // A query from a node we do not hold: its bucket is full of good contacts, so it is
        // turned away (the common case for a node of a large network).
        let strangers: Vec<NodeInfo> = (0..TARGETS)
            .map(|j| NodeInfo {
                id: Id::random(&mut rng),
                addr: addr(n + j),
            })
            .collect();
        let mut i = 0;
        group.bench_function(
            BenchmarkId::new("heard_from_stranger_full_bucket", &label),
            |b| {
                b.iter(|| {
                    i = (i + 1) % TARGETS;
                    black_box(table.heard_from(NOW, strangers[i], Heard::Query))
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
