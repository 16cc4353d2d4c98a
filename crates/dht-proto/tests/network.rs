//! An in-process network of `dht-proto` nodes on virtual time, with no sockets: every put is
//! found by gets from other nodes, gets still succeed after 30% of the nodes vanish without
//! notice, and a node that joins next to a stored key is handed a copy of its item.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::time::Duration;

use dht_proto::node::{Config, Event, Node, Outcome, QueryId, SELF_LOOKUP_AFTER_JOIN};
use dht_proto::{Id, Instant};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Upper bound on events one `run_until` may process, so a livelock fails instead of hanging.
const EVENTS_MAX: usize = 20_000_000;

struct Net {
    now: Instant,
    nodes: Vec<Option<Node>>,
    queue: BinaryHeap<Reverse<(Instant, u64, usize, Item)>>,
    seq: u64,
    rng: SmallRng,
    events: BTreeMap<(usize, QueryId), Event>,
    timers: Vec<Option<Instant>>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Datagram(SocketAddr, Vec<u8>),
    Timer,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 1, (i >> 8) as u8, i as u8], 6881))
}

fn index(a: &SocketAddr) -> Option<usize> {
    match a {
        SocketAddr::V4(v4) if v4.ip().octets()[1] == 1 => {
            let o = v4.ip().octets();
            Some(((o[2] as usize) << 8) | o[3] as usize)
        }
        _ => None,
    }
}

impl Net {
    fn new(n: usize, seed: u64) -> Net {
        let mut rng = SmallRng::seed_from_u64(seed);
        let now = Instant::ZERO;
        let nodes = (0..n)
            .map(|_| {
                let id = Id::random(&mut rng);
                Some(Node::new(Config::default(), id, rng.gen(), now))
            })
            .collect();
        Net {
            now,
            nodes,
            queue: BinaryHeap::new(),
            seq: 0,
            rng,
            events: BTreeMap::new(),
            timers: vec![None; n],
        }
    }

    fn push(&mut self, at: Instant, to: usize, item: Item) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, to, item)));
    }

    /// Drains a node's outputs after an input.
    fn flush(&mut self, i: usize) {
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        let mut out = Vec::new();
        while let Some(t) = node.poll_transmit() {
            out.push(t);
        }
        while let Some(e) = node.poll_event() {
            self.events.insert((i, e.query), e);
        }
        let wake = node.poll_timeout();
        for t in out {
            if let Some(j) = index(&t.to) {
                let latency = Duration::from_millis(self.rng.gen_range(5..60));
                self.push(self.now + latency, j, Item::Datagram(addr(i), t.data));
            }
        }
        if let Some(w) = wake {
            // A wake-up already due is scheduled now; remember the time it is scheduled at,
            // or the stale-timer check below would drop it.
            let w = w.max(self.now);
            if self.timers[i] != Some(w) {
                self.timers[i] = Some(w);
                self.push(w, i, Item::Timer);
            }
        }
    }

    fn run_until(&mut self, until: Instant) {
        for _ in 0..EVENTS_MAX {
            let Some(Reverse((at, _, _, _))) = self.queue.peek() else {
                self.now = until;
                return;
            };
            if *at > until {
                self.now = until;
                return;
            }
            let Reverse((at, _, to, item)) = self.queue.pop().unwrap();
            self.now = at;
            let Some(node) = self.nodes[to].as_mut() else {
                continue;
            };
            match item {
                Item::Datagram(from, data) => {
                    node.handle_datagram(at, from, &data);
                }
                Item::Timer => {
                    if self.timers[to] != Some(at) {
                        continue;
                    }
                    self.timers[to] = None;
                    node.handle_timeout(at);
                }
            }
            self.flush(to);
        }
        panic!("the network never settled within {EVENTS_MAX} events");
    }

    fn command(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant) -> QueryId) -> QueryId {
        let now = self.now;
        let q = f(self.nodes[i].as_mut().unwrap(), now);
        self.flush(i);
        q
    }

    fn wait(&mut self, i: usize, q: QueryId) -> Event {
        let deadline = self.now + Duration::from_secs(120);
        while self.now < deadline {
            if let Some(e) = self.events.remove(&(i, q)) {
                return e;
            }
            let step = self.now + Duration::from_millis(100);
            self.run_until(step);
        }
        panic!("command {q} of node {i} did not finish in 120 virtual seconds");
    }

    fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect()
    }

    /// A new node with ID `id`, not yet joined; returns its index.
    fn add(&mut self, id: Id) -> usize {
        let seed = self.rng.gen();
        self.nodes
            .push(Some(Node::new(Config::default(), id, seed, self.now)));
        self.timers.push(None);
        self.nodes.len() - 1
    }

    fn bootstrap_all(&mut self) {
        let n = self.nodes.len();
        for i in 1..n {
            self.command(i, |node, now| node.bootstrap(now, &[], &[addr(0)]));
            let t = self.now + Duration::from_millis(20);
            self.run_until(t);
        }
        let t = self.now + Duration::from_secs(30);
        self.run_until(t);
    }
}

#[test]
fn two_hundred_nodes_find_every_put_and_survive_thirty_percent_vanishing() {
    let n = 200;
    let mut net = Net::new(n, 42);
    net.bootstrap_all();
    for i in 0..n {
        let len = net.nodes[i].as_ref().unwrap().routing_table().len();
        assert!(len >= 8, "node {i} has only {len} contacts after bootstrap");
    }

    // 100 puts from random nodes, each fetched by a get from another random node.
    let mut keys = Vec::new();
    for p in 0..100 {
        let from = net.rng.gen_range(0..n);
        let value = format!("{}:value {p:04}", 10).into_bytes();
        let mut target = Id::ZERO;
        let q = net.command(from, |node, now| {
            let (t, q) = node.put_immutable(now, value.clone()).unwrap();
            target = t;
            q
        });
        let e = net.wait(from, q);
        let Outcome::Stored { stored_at, .. } = e.outcome else {
            panic!("unexpected outcome {:?}", e.outcome);
        };
        assert!(stored_at >= 6, "put {p} stored at only {stored_at} nodes");
        keys.push((target, value));
    }
    let mut found = 0;
    for (target, value) in &keys {
        let from = net.rng.gen_range(0..n);
        let q = net.command(from, |node, now| node.get_immutable(now, *target));
        let e = net.wait(from, q);
        if let Outcome::GetImmutable { value: Some(v) } = e.outcome {
            assert_eq!(&v, value);
            found += 1;
        }
    }
    assert_eq!(found, keys.len(), "every put must be found");

    // 30% of the nodes vanish without notice.
    let mut killed = 0;
    while killed < n * 3 / 10 {
        let i = net.rng.gen_range(0..n);
        if net.nodes[i].take().is_some() {
            killed += 1;
        }
    }
    let live = net.live();
    let mut ok = 0;
    let mut total = 0;
    for (target, value) in &keys {
        for _ in 0..2 {
            let from = live[net.rng.gen_range(0..live.len())];
            let q = net.command(from, |node, now| node.get_immutable(now, *target));
            total += 1;
            if let Outcome::GetImmutable { value: Some(v) } = net.wait(from, q).outcome {
                assert_eq!(&v, value);
                ok += 1;
            }
        }
    }
    let rate = ok as f64 / total as f64;
    assert!(
        rate >= 0.99,
        "after 30% vanished, gets succeeded {ok}/{total}"
    );
}

#[test]
fn lookups_find_the_true_closest_nodes() {
    let n = 200;
    let mut net = Net::new(n, 7);
    net.bootstrap_all();
    let ids: Vec<Id> = net.nodes.iter().map(|n| n.as_ref().unwrap().id()).collect();
    let mut exact = 0;
    for _ in 0..20 {
        let target = Id::random(&mut net.rng);
        let from = net.rng.gen_range(0..n);
        let q = net.command(from, |node, now| node.find_node(now, target));
        let e = net.wait(from, q);
        let Outcome::FindNode { closest } = e.outcome else {
            panic!("unexpected outcome");
        };
        let mut truth: Vec<Id> = ids.iter().copied().filter(|i| *i != ids[from]).collect();
        truth.sort_by_key(|i| i.distance(&target));
        let got: Vec<Id> = closest.iter().map(|c| c.id).collect();
        if got == truth[..8] {
            exact += 1;
        }
        assert!(
            e.stats.hops >= 1 && e.stats.hops <= 8,
            "hops {}",
            e.stats.hops
        );
    }
    assert!(
        exact >= 19,
        "only {exact}/20 lookups returned the true 8 closest"
    );
}

#[test]
fn mutable_items_keep_the_highest_seq_and_cas_mismatch_is_refused() {
    use dht_proto::bep44::MutableItem;
    use ed25519_dalek::SigningKey;
    let n = 60;
    let mut net = Net::new(n, 9);
    net.bootstrap_all();
    let key = SigningKey::from_bytes(&[3; 32]);
    for seq in 1..=3 {
        let item = MutableItem::sign(&key, b"salt", seq, format!("2:v{seq}").into_bytes()).unwrap();
        let q = net.command(5, |node, now| node.put_mutable(now, item, None).unwrap());
        let e = net.wait(5, q);
        assert!(matches!(e.outcome, Outcome::Stored { stored_at, .. } if stored_at >= 6));
    }
    let pk = key.verifying_key().to_bytes();
    let q = net.command(30, |node, now| node.get_mutable(now, pk, b"salt"));
    let Outcome::GetMutable { item: Some(item) } = net.wait(30, q).outcome else {
        panic!("mutable item not found");
    };
    assert_eq!(item.seq, 3);
    assert_eq!(item.value, b"2:v3");
    // A put with a stale cas is refused with 301 everywhere.
    let item = MutableItem::sign(&key, b"salt", 4, b"2:v4".to_vec()).unwrap();
    let q = net.command(7, |node, now| node.put_mutable(now, item, Some(1)).unwrap());
    let Outcome::Stored {
        stored_at, errors, ..
    } = net.wait(7, q).outcome
    else {
        panic!("unexpected outcome");
    };
    assert_eq!(stored_at, 0);
    assert!(
        !errors.is_empty() && errors.iter().all(|(c, _)| *c == 301),
        "{errors:?}"
    );
}

#[test]
fn announces_are_found_by_get_peers() {
    let n = 60;
    let mut net = Net::new(n, 11);
    net.bootstrap_all();
    let ih = Id::sha1(b"torrent");
    let q = net.command(3, |node, now| node.announce(now, ih, Some(5555)));
    assert!(matches!(net.wait(3, q).outcome, Outcome::Stored { stored_at, .. } if stored_at >= 6));
    let q = net.command(40, |node, now| node.get_peers(now, ih));
    let Outcome::GetPeers { peers } = net.wait(40, q).outcome else {
        panic!("unexpected outcome");
    };
    assert_eq!(peers, vec![SocketAddr::from(([127, 1, 0, 3], 5555))]);
}

#[test]
fn a_newcomer_closest_to_stored_keys_is_handed_their_items() {
    use dht_proto::bep44::MutableItem;
    use ed25519_dalek::SigningKey;
    let n = 80;
    let mut net = Net::new(n, 13);
    net.bootstrap_all();
    // Past every node's second look-up of its own ID, a minute after its join, so that only
    // the newcomers' own steps below bring them to the holders' notice.
    let t = net.now + SELF_LOOKUP_AFTER_JOIN + Duration::from_secs(70);
    net.run_until(t);
    // One immutable and one mutable item, put before the newcomers exist.
    let value = b"11:handed over".to_vec();
    let q = net.command(4, |node, now| {
        node.put_immutable(now, value.clone()).unwrap().1
    });
    assert!(matches!(net.wait(4, q).outcome, Outcome::Stored { stored_at, .. } if stored_at >= 6));
    let key = SigningKey::from_bytes(&[5; 32]);
    let item = MutableItem::sign(&key, b"s", 7, b"2:m7".to_vec()).unwrap();
    let mutable_target = item.target();
    let q = net.command(9, |node, now| node.put_mutable(now, item, None).unwrap());
    assert!(matches!(net.wait(9, q).outcome, Outcome::Stored { stored_at, .. } if stored_at >= 6));

    // Each newcomer's ID differs from a key only in its last bit: it is the closest node to
    // that key, and the only way it can hold the item is a copy from a holder.
    let immutable_target = Id::sha1(&value);
    let mut newcomers = Vec::new();
    for target in [immutable_target, mutable_target] {
        let mut id = target;
        id.0[19] ^= 1;
        let i = net.add(id);
        net.command(i, |node, now| node.bootstrap(now, &[], &[addr(0)]));
        newcomers.push((i, target));
    }
    let t = net.now + Duration::from_secs(30);
    net.run_until(t);
    // A newcomer that only queried the holders has not proved its address, so nothing is
    // handed to it yet (a hand-off is a query of our own initiative).
    for &(i, target) in &newcomers {
        let node = net.nodes[i].as_ref().unwrap();
        assert!(
            node.storage().item(&target).is_none(),
            "newcomer {i} got {target:?} early"
        );
    }
    // Once a holder's lookup of the key reaches the newcomer and it answers, it is handed the
    // item.
    for &(_, target) in &newcomers {
        let holder = (0..n)
            .filter(|&h| {
                net.nodes[h]
                    .as_ref()
                    .unwrap()
                    .storage()
                    .item(&target)
                    .is_some()
            })
            .min_by_key(|&h| net.nodes[h].as_ref().unwrap().id().distance(&target))
            .expect("a holder");
        let q = net.command(holder, |node, now| node.find_node(now, target));
        net.wait(holder, q);
    }
    let t = net.now + Duration::from_secs(30);
    net.run_until(t);
    for (i, target) in newcomers {
        let node = net.nodes[i].as_ref().unwrap();
        let stored = node.storage().item(&target);
        assert!(stored.is_some(), "newcomer {i} was not handed {target:?}");
    }
    let node = net.nodes[n + 1].as_ref().unwrap();
    let stored = node.storage().item(&mutable_target).unwrap();
    assert_eq!(
        stored.value.value(),
        b"2:m7",
        "the signed value travels intact"
    );
    // About four holders hand each item off, not all eight.
    let handoffs: u64 = net
        .nodes
        .iter()
        .flatten()
        .map(|node| node.stats().handoffs)
        .sum();
    assert!(
        (2..=10).contains(&handoffs),
        "{handoffs} hand-offs for 2 items and 2 newcomers"
    );
}
