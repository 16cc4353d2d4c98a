//! Property tests of the routing table and the lookup: invariants that must hold whatever the
//! sequence of contacts, answers and failures.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use dht_proto::lookup::Lookup;
use dht_proto::message::NodeInfo;
use dht_proto::routing::{Heard, RoutingConfig, RoutingTable, K};
use dht_proto::{Id, Instant};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Heard { id: [u8; 20], port: u16, how: u8 },
    Failed { pick: usize },
    Advance { secs: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<[u8; 20]>(), 1u16..2000, 0u8..3).prop_map(|(id, port, how)| Op::Heard { id, port, how }),
        2 => any::<usize>().prop_map(|pick| Op::Failed { pick }),
        1 => (0u16..2000).prop_map(|secs| Op::Advance { secs }),
    ]
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, (port >> 8) as u8, port as u8], port))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn table_invariants_hold_under_any_sequence(own in any::<[u8; 20]>(), ops in prop::collection::vec(op(), 1..400)) {
        let own = Id(own);
        let mut t = RoutingTable::new(own, RoutingConfig::default());
        let mut now = Instant::ZERO;
        for op in ops {
            match op {
                Op::Heard { id, port, how } => {
                    let how = [Heard::Response, Heard::Query, Heard::About][how as usize];
                    t.heard_from(now, NodeInfo { id: Id(id), addr: addr(port) }, how);
                }
                Op::Failed { pick } => {
                    let all: Vec<_> = t.contacts().map(|c| c.info()).collect();
                    if !all.is_empty() {
                        let n = all[pick % all.len()];
                        t.failed(now, &n.id, n.addr, 1);
                    }
                }
                Op::Advance { secs } => now = now + Duration::from_secs(secs as u64),
            }
            // Invariants: at most k per bucket, every contact in the bucket its prefix names,
            // no duplicate IDs, never our own ID.
            let mut seen = BTreeSet::new();
            let last = t.bucket_count() - 1;
            for i in 0..t.bucket_count() {
                prop_assert!(t.bucket(i).len() <= K);
                for c in t.bucket(i) {
                    let prefix = own.distance(&c.id).leading_zeros();
                    if i < last { prop_assert_eq!(prefix, i); } else { prop_assert!(prefix >= i); }
                    prop_assert!(seen.insert(c.id), "duplicate id");
                    prop_assert_ne!(c.id, own);
                }
            }
            // closest() is sorted and agrees with a brute force over the non-bad contacts.
            let target = Id(own.0.map(|b| b.rotate_left(3)));
            let got = t.closest(&target, 8);
            let mut brute: Vec<NodeInfo> = t
                .contacts()
                .filter(|c| !c.is_bad())
                .map(|c| c.info())
                .collect();
            brute.sort_by_key(|n| n.id.distance(&target));
            brute.truncate(8);
            prop_assert_eq!(got, brute);
        }
    }

    #[test]
    fn a_lookup_always_terminates_and_respects_alpha_first(
        ids in prop::collection::vec(any::<[u8; 20]>(), 1..200),
        target in any::<[u8; 20]>(),
        fate in prop::collection::vec(0u8..4, 200),
        alpha in 1usize..6,
    ) {
        let nodes: Vec<NodeInfo> = ids.iter().enumerate()
            .map(|(i, id)| NodeInfo { id: Id(*id), addr: addr(i as u16 + 1) })
            .collect();
        let target = Id(target);
        let seeds: Vec<NodeInfo> = nodes.iter().take(8).copied().collect();
        let mut l = Lookup::new(Instant::ZERO, target, 8, alpha, &seeds, false);
        let mut first = true;
        // Every request is answered, fails, or stalls; a lookup must end within a bounded number
        // of steps (each candidate is asked at most once).
        for step in 0..10_000 {
            let mut batch = Vec::new();
            while let Some(n) = l.next_request() { batch.push(n); }
            if first { prop_assert!(batch.len() <= alpha); first = false; }
            if batch.is_empty() { break; }
            for n in batch {
                let i = nodes.iter().position(|m| *m == n).unwrap();
                match fate[i % fate.len()] {
                    0 => l.on_failure(&n),
                    1 => l.on_stall(&n),
                    _ => {
                        let reply: Vec<NodeInfo> = nodes.iter().skip((i * 7) % nodes.len()).take(8).copied().collect();
                        l.on_response(&n, &reply, None);
                    }
                }
            }
            prop_assert!(step < 9_999, "lookup did not terminate");
        }
        prop_assert!(l.is_done());
        let got = l.closest_responded();
        prop_assert!(got.len() <= 8);
        for w in got.windows(2) {
            prop_assert!(w[0].0.id.distance(&target) < w[1].0.id.distance(&target));
        }
    }
}
