//! Decode and encode cost of the KRPC messages a node handles most: a `find_node` query, a
//! `find_node` response with 8 nodes, a `get_peers` response with 50 peers, and a BEP 44
//! mutable `put`. A node answering 150k queries per second on one core has about 6.7 µs per
//! query for everything; the codec's share should be a small part of that.
//!
//! Run with `cargo bench -p dht-proto --bench codec` (add `-- --quick` for a short run). On a
//! shared machine, set `CODEC_BENCH_MIN_BATCH=1`: each sample is then the fastest of many short
//! batches, scaled up, which leaves out the time the thread spent preempted by other processes
//! (a batch is far shorter than a scheduler time slice, so many run undisturbed).

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Bencher, Criterion, Throughput};
use dht_proto::message::{Body, Message, Method, MutableArgs, NodeInfo, PutArgs, Query, Response};
use dht_proto::Id;

fn id(seed: u8) -> Id {
    Id(std::array::from_fn(|i| seed.wrapping_add(i as u8)))
}

fn envelope(body: Body) -> Message {
    Message {
        transaction_id: b"\x8a\x01".to_vec(),
        version: Some(b"LT\x02\x00".to_vec()),
        requester_ip: None,
        read_only: false,
        body,
    }
}

fn samples() -> Vec<(&'static str, Message)> {
    let nodes = (0..8)
        .map(|i| NodeInfo {
            id: id(10 + i),
            addr: SocketAddr::from((Ipv4Addr::new(81, 2, 3, i), 6881)),
        })
        .collect();
    let peers = (0..50)
        .map(|i| SocketAddr::from((Ipv4Addr::new(93, 184, i, 1), 51413)))
        .collect();
    vec![
        (
            "find_node_query",
            envelope(Body::Query(Query {
                sender_id: id(1),
                method: Method::FindNode {
                    target: id(2),
                    want: None,
                },
            })),
        ),
        (
            "find_node_response_8_nodes",
            Message {
                requester_ip: Some(SocketAddr::from((Ipv4Addr::new(203, 0, 113, 7), 40000))),
                ..envelope(Body::Response(Response {
                    sender_id: id(3),
                    nodes,
                    ..Response::default()
                }))
            },
        ),
        (
            "get_peers_response_50_values",
            envelope(Body::Response(Response {
                sender_id: id(4),
                token: Some(b"\x01\x02\x03\x04".to_vec()),
                peers,
                ..Response::default()
            })),
        ),
        (
            "put_mutable",
            envelope(Body::Query(Query {
                sender_id: id(5),
                method: Method::Put(PutArgs {
                    target: None,
                    token: b"\x01\x02\x03\x04".to_vec(),
                    value: b"d5:itemsli1ei2ei3ee4:name5:alicee".to_vec(),
                    mutable: Some(MutableArgs {
                        public_key: [7; 32],
                        signature: [9; 64],
                        seq: 42,
                        salt: b"foobar".to_vec(),
                        cas: Some(41),
                    }),
                }),
            })),
        ),
    ]
}

/// Iterations per batch in min-of-batches mode: about 10-100 µs of work here, well under a
/// scheduler time slice.
const BATCH_ITERS: u64 = 128;

/// Runs `f` as the measured routine, by wall time or by min-of-batches (see the module doc).
// The crate bans reading the clock to keep protocol logic deterministic; a benchmark's whole
// job is to read it.
#[allow(clippy::disallowed_methods)]
fn measure<O>(b: &mut Bencher<'_>, min_batch: bool, mut f: impl FnMut() -> O) {
    if !min_batch {
        b.iter(f);
        return;
    }
    b.iter_custom(|iters| {
        let batches = iters.div_ceil(BATCH_ITERS);
        let mut fastest = Duration::MAX;
        for _ in 0..batches {
            let start = Instant::now();
            for _ in 0..BATCH_ITERS {
                black_box(f());
            }
            fastest = fastest.min(start.elapsed());
        }
        fastest.mul_f64(iters as f64 / BATCH_ITERS as f64)
    });
}

fn codec(c: &mut Criterion) {
    let min_batch = std::env::var_os("CODEC_BENCH_MIN_BATCH").is_some();
    for (name, message) in samples() {
        let wire = message.encode();
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        group.bench_function("decode", |b| {
            measure(b, min_batch, || Message::decode(black_box(&wire)).unwrap())
        });
        // The generic bencode tree alone, to show what the KRPC layer adds on top.
        group.bench_function("bencode_decode", |b| {
            measure(b, min_batch, || {
                dht_proto::bencode::decode(black_box(&wire)).unwrap()
            })
        });
        group.bench_function("bencode_validate", |b| {
            measure(b, min_batch, || {
                dht_proto::bencode::validate(black_box(&wire)).unwrap()
            })
        });
        let mut out = Vec::with_capacity(wire.len());
        group.bench_function("encode_into", |b| {
            measure(b, min_batch, || {
                out.clear();
                black_box(&message).encode_into(&mut out);
                black_box(out.len())
            })
        });
        group.bench_function("encode", |b| {
            measure(b, min_batch, || black_box(&message).encode())
        });
        group.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
