//! One node answering `find_node` queries, nothing else: `handle_datagram` + `poll_transmit`
//! on a 64-contact table (8 contacts per answer), as the load bench's handling-time phase
//! does. Made for instruction counts, which unlike times repeat on a shared machine:
//!
//! ```text
//! cargo build --release -p dht-proto --example handle_find_node
//! valgrind --tool=callgrind target/release/examples/handle_find_node 20000
//! ```
//!
//! The argument is the number of queries (default 200,000); it prints the time per query.

use std::net::{Ipv4Addr, SocketAddr};

use dht_proto::message::{Body, Message, Method, Query};
use dht_proto::node::{Config, Node};
use dht_proto::Id;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

/// Most queries one run takes.
const QUERIES_MAX: usize = 100_000_000;

fn encode_query(tid: &[u8], sender_id: Id, method: Method) -> Vec<u8> {
    Message {
        transaction_id: tid.to_vec(),
        version: None,
        requester_ip: None,
        read_only: false,
        body: Body::Query(Query { sender_id, method }),
    }
    .encode()
}

// The wall clock times the run; the node itself is handed virtual times.
#[allow(clippy::disallowed_methods)]
fn main() -> Result<(), String> {
    let n: usize = match std::env::args().nth(1) {
        None => 200_000,
        Some(s) => s
            .parse()
            .ok()
            .filter(|n| (1..=QUERIES_MAX).contains(n))
            .ok_or(format!("the number of queries must be 1..={QUERIES_MAX}"))?,
    };
    let mut rng = SmallRng::seed_from_u64(1);
    let own = Id::random(&mut rng);
    let mut now = dht_proto::Instant::from_micros(1_000_000);
    let mut node = Node::new(Config::default(), own, 1, now);
    for i in 0..64usize {
        let id = own.random_in_bucket(i / 8, &mut rng);
        let from = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2 + i as u8), 6881));
        node.handle_datagram(now, from, &encode_query(&[i as u8, 0], id, Method::Ping));
    }
    while node.poll_transmit().is_some() {}
    let sender = own.random_in_bucket(8, &mut rng);
    let from = SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000));
    let find_node = Method::FindNode {
        target: Id::ZERO,
        want: None,
    };
    let mut query = encode_query(&[0, 0], sender, find_node);
    let find = |needle: &[u8]| query.windows(needle.len()).rposition(|w| w == needle);
    let (Some(target_at), Some(tid_at)) = (find(b"6:target20:"), find(b"1:t2:")) else {
        return Err("unexpected find_node encoding".into());
    };
    let (target_at, tid_at) = (target_at + 11, tid_at + 5);
    let start = std::time::Instant::now();
    let mut bytes = 0;
    for i in 0..n {
        rng.fill_bytes(&mut query[target_at..target_at + 20]);
        query[tid_at..tid_at + 2].copy_from_slice(&(i as u16).to_be_bytes());
        now = dht_proto::Instant::from_micros(now.as_micros() + 3);
        node.handle_datagram(now, from, &query);
        bytes += node.poll_transmit().ok_or("no answer")?.data.len();
    }
    let took = start.elapsed();
    println!(
        "{n} find_node queries in {took:?}: {:.3} us each, answers of {} bytes",
        took.as_secs_f64() * 1e6 / n as f64,
        bytes / n
    );
    Ok(())
}
