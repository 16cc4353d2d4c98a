//! The `node` target: a whole [`Node`] with a filled routing table and store, fed datagrams from
//! many addresses and timeouts at advancing virtual times.
//!
//! # Input format
//!
//! The input is a sequence of steps, each starting with a control byte `c`:
//!
//! - `c >= 0xE0`: time passes, `((c & 0x1f) + 1)²` × 100 ms (100 ms to 102.4 s), then
//!   [`Node::handle_timeout`];
//! - `0xD0 <= c < 0xE0`: the node starts command `c & 0x0f` (the `command` function);
//! - otherwise a datagram arrives from the source `c % 16` (see [`Source`]), then a 2-byte
//!   big-endian length and that many bytes (fewer if the input ends first).
//!
//! Before a datagram is handed over, two placeholders in it are replaced, so that the fuzzer can
//! write a valid reply without guessing secrets: the bencoded string `4:TXID` becomes the
//! transaction ID of the last query the node sent (send it from source [`Source::LastQueried`]
//! to answer that query), and `4:TOKN` becomes the last write token the node handed out.
//!
//! After every step the outputs are drained in the documented order, and the invariants in
//! `drain` are checked. Reply sizes are deliberately not checked here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

use dht_proto::bep44::{immutable_target, MutableItem};
use dht_proto::message::{Body, Message, NodeInfo, Shape};
use dht_proto::node::{Config, Node};
use dht_proto::routing::K;
use dht_proto::store::{ItemValue, StoredItem, ITEM_LIFETIME, PEER_LIFETIME};
use dht_proto::{Id, Instant};
use ed25519_dalek::SigningKey;

/// Steps one input may take; a bound on the loop (an input of a few kilobytes fits far fewer).
const STEPS_MAX: usize = 256;

/// The node's clock when the input starts: fixed, so that a crash replays.
pub const START: Instant = Instant::from_millis(1_000_000_000);

/// The node's ID.
pub const NODE_ID: Id = Id([0x5a; 20]);

/// Seed of the node's randomness: fixed, so that transaction IDs and tokens replay.
const NODE_SEED: u64 = 0x00f0_0d5e_ed00;

/// Contacts offered to the routing table before the input starts.
const CONTACTS: usize = 96;

/// The placeholder replaced by the transaction ID of the node's last query.
pub const TXID_PLACEHOLDER: &[u8] = b"4:TXID";

/// The placeholder replaced by the last write token the node handed out.
pub const TOKEN_PLACEHOLDER: &[u8] = b"4:TOKN";

/// Where a datagram comes from, chosen by the control byte modulo 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// One of [`FIXED_SOURCES`] (indices 0 to 8).
    Fixed(usize),
    /// The address the node sent its last query to (index 9 to 11): how a reply gets through.
    LastQueried,
    /// An IPv4 address and port read from the next 6 input bytes (index 12).
    V4FromInput,
    /// An IPv6 address and port read from the next 18 input bytes (index 13).
    V6FromInput,
    /// The address of a contact in the routing table, picked by the next input byte (14, 15).
    Contact,
}

/// Fixed source addresses: loopback, public-looking, private, mapped and port 0, in both
/// families.
pub const FIXED_SOURCES: [SocketAddr; 9] = [
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6881),
    SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 6881),
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(81, 2, 3, 4)), 51413),
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2a01, 0x4f8, 0, 0, 0, 0, 0, 1)),
        6881,
    ),
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 6881),
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)), 1),
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304)),
        6881,
    ),
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 77)), 0),
];

impl Source {
    /// The source a control byte selects.
    pub fn of(control: u8) -> Source {
        match control % 16 {
            i @ 0..=8 => Source::Fixed(usize::from(i)),
            9..=11 => Source::LastQueried,
            12 => Source::V4FromInput,
            13 => Source::V6FromInput,
            _ => Source::Contact,
        }
    }
}

/// The signing key of the mutable items in the store (and of the seeds that put more).
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// The mutable items the store starts with, signed once per process (signing costs more than
/// the rest of a run).
pub fn mutable_items() -> &'static [MutableItem] {
    static ITEMS: OnceLock<Vec<MutableItem>> = OnceLock::new();
    ITEMS.get_or_init(|| {
        let key = signing_key();
        [(&b""[..], 1, &b"5:hello"[..]), (b"salt", 7, b"li1ei2ee")]
            .into_iter()
            .map(|(salt, seq, v)| MutableItem::sign(&key, salt, seq, v.to_vec()).expect("valid"))
            .collect()
    })
}

/// Immutable values the store starts with.
pub const IMMUTABLE_VALUES: [&[u8]; 3] = [b"5:hello", b"i42e", b"d1:ai1e1:b2:xye"];

/// Info-hashes the store holds peers for; also the targets of the commands the input starts.
pub fn info_hash(i: u8) -> Id {
    Id(std::array::from_fn(|j| {
        0x5a ^ (i.wrapping_mul(31).wrapping_add(j as u8))
    }))
}

/// The `i`-th contact offered to the routing table: IDs spread over the buckets near and far
/// from [`NODE_ID`], addresses alternating IPv4 and IPv6, all public and distinct (the table
/// keeps one contact per public IP).
pub fn contact(i: usize) -> NodeInfo {
    let mut id = NODE_ID;
    // Flip bit `i % 24` so the contact lands in bucket `i % 24`, and vary the tail.
    let bit = i % 24;
    id.0[bit / 8] ^= 0x80 >> (bit % 8);
    id.0[19] = i as u8;
    id.0[18] = (i >> 8) as u8;
    let n = i as u16;
    // Even contacts get IPv4 addresses, odd ones IPv6.
    let addr = if i & 1 == 0 {
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(82, 10, (n >> 8) as u8, n as u8)),
            6881 + n,
        )
    } else {
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2a02, 0x10, 0, 0, 0, 0, 0, n)),
            6881 + n,
        )
    };
    NodeInfo { id, addr }
}

/// A node as the target starts it: default settings with the store journal on (as dht-node runs
/// it, so that store changes are drained and checked too), contacts in the table, items and
/// peers in the store.
pub fn fresh_node() -> Node {
    let config = Config {
        journal: true,
        ..Config::default()
    };
    let mut node = Node::new(config, NODE_ID, NODE_SEED, START);
    for i in 0..CONTACTS {
        node.restore_contact(START, contact(i));
    }
    let source = IpAddr::V4(Ipv4Addr::new(81, 2, 3, 4));
    let expires = START + ITEM_LIFETIME;
    for v in IMMUTABLE_VALUES {
        node.restore_item(StoredItem {
            target: immutable_target(v),
            value: ItemValue::Immutable(v.to_vec()),
            expires,
            source,
        });
    }
    for m in mutable_items() {
        node.restore_item(StoredItem {
            target: m.target(),
            value: ItemValue::Mutable(m.clone()),
            expires,
            source,
        });
    }
    for i in 0..4u8 {
        for p in 0..3u16 {
            let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(83, 1, i, p as u8)), 6881 + p);
            node.restore_peer(info_hash(i), peer, START + PEER_LIFETIME);
        }
    }
    node
}

/// What the run remembers from the node's datagrams, for the placeholders and sources.
#[derive(Debug, Default)]
struct Seen {
    last_query: Option<(SocketAddr, Vec<u8>)>,
    last_token: Option<Vec<u8>>,
}

/// Runs one input; see the module documentation for its format.
pub fn node(data: &[u8]) {
    run(data);
}

/// Runs one input and returns the node as it ended, for tests that check what a seed reached.
pub fn run(data: &[u8]) -> Node {
    let mut node = fresh_node();
    let mut now = START;
    let mut seen = Seen::default();
    let mut rest = data;
    for _ in 0..STEPS_MAX {
        let Some((&control, tail)) = rest.split_first() else {
            break;
        };
        rest = tail;
        let mut after_timeout = None;
        match control {
            0xE0..=0xFF => {
                let steps = u64::from(control & 0x1f) + 1;
                now = now + core::time::Duration::from_millis(steps * steps * 100);
                node.handle_timeout(now);
                after_timeout = Some(now);
            }
            0xD0..=0xDF => command(&mut node, now, control & 0x0f),
            _ => {
                let from = match Source::of(control) {
                    Source::Fixed(i) => FIXED_SOURCES[i],
                    Source::LastQueried => match &seen.last_query {
                        Some((to, _)) => *to,
                        None => FIXED_SOURCES[0],
                    },
                    Source::V4FromInput => {
                        let b = take(&mut rest, 6);
                        let mut a = [0u8; 6];
                        a[..b.len()].copy_from_slice(b);
                        let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                        SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([a[4], a[5]]))
                    }
                    Source::V6FromInput => {
                        let b = take(&mut rest, 18);
                        let mut a = [0u8; 18];
                        a[..b.len()].copy_from_slice(b);
                        let mut ip = [0u8; 16];
                        ip.copy_from_slice(&a[..16]);
                        let port = u16::from_be_bytes([a[16], a[17]]);
                        SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)
                    }
                    Source::Contact => {
                        let pick = take(&mut rest, 1).first().copied().unwrap_or(0);
                        contact(usize::from(pick) % CONTACTS).addr
                    }
                };
                let len = take(&mut rest, 2);
                let len = match len {
                    [a, b] => usize::from(u16::from_be_bytes([*a, *b])),
                    _ => 0,
                };
                let datagram = take(&mut rest, len);
                let datagram = substitute(datagram, &seen);
                if let Some(shape) = node.handle_datagram(now, from, &datagram) {
                    assert_eq!(
                        Some(shape),
                        Shape::read(&datagram),
                        "the shape the node decoded is not the one the bytes read as"
                    );
                }
            }
        }
        drain(&mut node, after_timeout, &mut seen);
    }
    node
}

/// Starts command `which` (0 to 15) on a target from [`info_hash`].
fn command(node: &mut Node, now: Instant, which: u8) {
    let target = info_hash(which / 8);
    match which % 8 {
        0 => {
            node.find_node(now, target);
        }
        1 => {
            node.get_peers(now, target);
        }
        2 => {
            node.announce(now, target, Some(6881));
        }
        3 => {
            node.get_immutable(now, immutable_target(IMMUTABLE_VALUES[0]));
        }
        4 => {
            let _ = node.put_immutable(now, b"7:fuzzing".to_vec());
        }
        5 => {
            let m = &mutable_items()[usize::from(which / 8)];
            node.get_mutable(now, m.public_key, &m.salt);
        }
        6 => {
            let m = mutable_items()[usize::from(which / 8)].clone();
            let _ = node.put_mutable(now, m, None);
        }
        _ => {
            let known = [contact(0), contact(1)];
            node.bootstrap(now, &known, &[FIXED_SOURCES[2]]);
        }
    }
}

/// The first `n` bytes of `rest` (fewer if it is shorter), advancing it.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = rest.split_at(n.min(rest.len()));
    *rest = tail;
    head
}

/// `datagram` with the first [`TXID_PLACEHOLDER`] and the first [`TOKEN_PLACEHOLDER`] replaced
/// (see the module documentation).
fn substitute(datagram: &[u8], seen: &Seen) -> Vec<u8> {
    let mut out = datagram.to_vec();
    if let Some((_, tid)) = &seen.last_query {
        replace(&mut out, TXID_PLACEHOLDER, tid);
    }
    if let Some(token) = &seen.last_token {
        replace(&mut out, TOKEN_PLACEHOLDER, token);
    }
    out
}

/// Replaces the first `placeholder` in `out` with `value` as a bencoded string.
fn replace(out: &mut Vec<u8>, placeholder: &[u8], value: &[u8]) {
    let Some(at) = out
        .windows(placeholder.len())
        .position(|w| w == placeholder)
    else {
        return;
    };
    let mut encoded = format!("{}:", value.len()).into_bytes();
    encoded.extend_from_slice(value);
    out.splice(at..at + placeholder.len(), encoded);
}

/// Drains every output after a step and checks the invariants that hold whatever came in:
///
/// - every datagram the node sends is a KRPC message that decodes, of the [`Shape`] its
///   transmit says (and a datagram the node decoded has the shape it returned);
/// - no queue outgrows what the settings bound: a step sends at most one reply plus one datagram
///   per request slot (a resend included), finishes at most the commands that may run, and the
///   routing table, store, commands and requests stay within their limits;
/// - after [`Node::handle_timeout`]`(now)` the next timeout lies after `now` (a runtime that
///   obeys it would otherwise spin).
fn drain(node: &mut Node, after_timeout: Option<Instant>, seen: &mut Seen) {
    let config = node.config().clone();
    let transmits_max = 2 * config.transactions_max + 1;
    let mut transmits = 0;
    while let Some(t) = node.poll_transmit() {
        transmits += 1;
        assert!(
            transmits <= transmits_max,
            "more than {transmits_max} datagrams from one step"
        );
        let message = match Message::decode(&t.data) {
            Ok(m) => m,
            Err(e) => panic!(
                "the node sent a datagram that does not decode ({e}): {:02x?}",
                t.data
            ),
        };
        assert_eq!(
            Some(t.shape),
            Shape::read(&t.data),
            "a transmit's shape is not what its bytes read as"
        );
        match &message.body {
            Body::Query(_) => seen.last_query = Some((t.to, message.transaction_id.clone())),
            Body::Response(r) => {
                if let Some(token) = &r.token {
                    seen.last_token = Some(token.clone());
                }
            }
            Body::Error(_) => {}
        }
    }
    let mut events = 0;
    while node.poll_event().is_some() {
        events += 1;
        assert!(
            events <= config.commands_max,
            "more events than commands may run"
        );
    }
    let mut changes = 0;
    while node.poll_store_change().is_some() {
        changes += 1;
        assert!(
            changes <= dht_proto::store::JOURNAL_MAX,
            "store journal past its bound"
        );
    }
    let timeout = node.poll_timeout();
    assert!(
        timeout.is_some(),
        "a running node always has a next timeout"
    );
    if let (Some(at), Some(t)) = (after_timeout, timeout) {
        assert!(
            t > at,
            "after handle_timeout({at:?}) the next timeout is {t:?}, not later"
        );
    }
    assert!(node.commands_running() <= config.commands_max);
    let table = node.routing_table();
    assert!(
        table.len() <= table.bucket_count() * K,
        "a bucket holds more than k contacts"
    );
    assert!(table.bucket_count() <= 161, "more buckets than ID bits");
    assert!(node.storage().item_count() <= config.limits.items_max);
    assert!(node.storage().info_hash_count() <= config.limits.info_hashes_max);
}
