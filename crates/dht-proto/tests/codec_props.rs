//! Property tests of the bencode and KRPC codecs: arbitrary messages round-trip, the decoders
//! never panic on arbitrary or mutated input, everything they accept is canonical, and bombs
//! are stopped at the bound without reading or allocating past it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use dht_proto::bencode::{
    self, BencodeError, Encoder, Indexed, DEPTH_MAX, ELEMENTS_MAX, INPUT_LEN_MAX,
};
use dht_proto::krpc::DecodeErrorKind;
use dht_proto::message::{
    Body, ErrorBody, Message, Method, MutableArgs, NodeInfo, PutArgs, Query, Response, Want,
    TOKEN_LEN_MAX, TRANSACTION_ID_LEN_MAX, VERSION_LEN_MAX,
};
use dht_proto::Id;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

// ---- allocation tracking: the largest single allocation made on the current thread ----

/// The system allocator, recording per thread the largest allocation asked for, so a test can
/// show that a hostile length prefix allocates nothing of its size (threads keep parallel tests
/// from seeing each other's allocations).
struct TrackingAllocator;

thread_local! {
    static LARGEST_ALLOC: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for TrackingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // `try_with` because the thread-local may already be gone while a thread exits.
        let _ = LARGEST_ALLOC.try_with(|l| l.set(l.get().max(layout.size())));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST_ALLOC.try_with(|l| l.set(l.get().max(new_size)));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

fn largest_alloc_during(f: impl FnOnce()) -> usize {
    LARGEST_ALLOC.with(|l| l.set(0));
    f();
    LARGEST_ALLOC.with(Cell::get)
}

// ---- strategies ----

fn id() -> impl Strategy<Value = Id> {
    any::<[u8; 20]>().prop_map(Id)
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

fn addr_v4() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddr::from((Ipv4Addr::from(ip), port)))
}

fn addr_v6() -> impl Strategy<Value = SocketAddr> {
    // Compact form has no flow info or scope ID, so they are zero here.
    (any::<[u8; 16]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0)))
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![addr_v4(), addr_v6()]
}

fn signature() -> impl Strategy<Value = [u8; 64]> {
    vec(any::<u8>(), 64).prop_map(|v| v.try_into().unwrap())
}

fn small_or_any_int() -> impl Strategy<Value = i64> {
    prop_oneof![3 => -1000i64..1000, 1 => any::<i64>()]
}

/// A bencode value as a tree, for generating BEP 44 `v` payloads.
#[derive(Debug, Clone)]
enum Tree {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Tree>),
    Dict(BTreeMap<Vec<u8>, Tree>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        // Mostly short integers: a zero put before a 19-digit one overflows rather than
        // testing the leading-zero rule.
        small_or_any_int().prop_map(Tree::Int),
        bytes(12).prop_map(Tree::Bytes)
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Tree::List),
            btree_map(bytes(4), inner, 0..4).prop_map(Tree::Dict),
        ]
    })
}

fn write_tree(e: &mut Encoder<'_>, t: &Tree) {
    match t {
        Tree::Int(i) => e.int(*i),
        Tree::Bytes(b) => e.bytes(b),
        Tree::List(items) => e.list(|l| items.iter().for_each(|i| write_tree(l, i))),
        Tree::Dict(entries) => e.dict(|d| {
            for (k, v) in entries {
                let mut encoded = Vec::new();
                write_tree(&mut Encoder::new(&mut encoded), v);
                d.raw(k, &encoded);
            }
        }),
    }
}

fn node_count(t: &Tree) -> usize {
    1 + match t {
        Tree::Int(_) | Tree::Bytes(_) => 0,
        Tree::List(items) => items.iter().map(node_count).sum(),
        Tree::Dict(entries) => entries.values().map(node_count).sum(),
    }
}

/// Writes `t` by hand, making node number `target` (in pre-order) non-canonical in the one way
/// its type allows: a leading zero or `-0` for an integer, a zero-padded length for a string,
/// a repeated or out-of-order key for a dictionary. Returns whether a fault was written (a list
/// or an empty dictionary has none).
fn write_faulty(
    out: &mut Vec<u8>,
    t: &Tree,
    target: usize,
    seen: &mut usize,
    neg_zero: bool,
) -> bool {
    let here = *seen == target;
    *seen += 1;
    match t {
        Tree::Int(_) if here && neg_zero => {
            out.extend_from_slice(b"i-0e");
            true
        }
        Tree::Int(i) => {
            let digits = i.unsigned_abs().to_string();
            let sign = if *i < 0 { "-" } else { "" };
            let pad = if here { "0" } else { "" };
            out.extend_from_slice(format!("i{sign}{pad}{digits}e").as_bytes());
            here
        }
        Tree::Bytes(b) => {
            let pad = if here { "0" } else { "" };
            out.extend_from_slice(format!("{pad}{}:", b.len()).as_bytes());
            out.extend_from_slice(b);
            here
        }
        Tree::List(items) => {
            out.push(b'l');
            let mut faulted = false;
            for item in items {
                faulted |= write_faulty(out, item, target, seen, neg_zero);
            }
            out.push(b'e');
            faulted
        }
        Tree::Dict(entries) => {
            let mut order: Vec<(&Vec<u8>, &Tree)> = entries.iter().collect();
            let faulted_here = here && !order.is_empty();
            if faulted_here {
                if order.len() >= 2 && !neg_zero {
                    order.reverse();
                } else {
                    order.push(order[0]);
                }
            }
            out.push(b'd');
            let mut faulted = faulted_here;
            for (k, v) in order {
                out.extend_from_slice(format!("{}:", k.len()).as_bytes());
                out.extend_from_slice(k);
                faulted |= write_faulty(out, v, target, seen, neg_zero);
            }
            out.push(b'e');
            faulted
        }
    }
}

fn encoded_tree() -> impl Strategy<Value = Vec<u8>> {
    tree().prop_map(|t| {
        let mut out = Vec::new();
        write_tree(&mut Encoder::new(&mut out), &t);
        out
    })
}

fn want() -> impl Strategy<Value = Option<Want>> {
    proptest::option::of((any::<bool>(), any::<bool>()).prop_map(|(v4, v6)| Want { v4, v6 }))
}

fn method() -> impl Strategy<Value = Method> {
    let known: [&[u8]; 6] = [
        b"ping",
        b"find_node",
        b"get_peers",
        b"announce_peer",
        b"get",
        b"put",
    ];
    prop_oneof![
        Just(Method::Ping),
        (id(), want()).prop_map(|(target, want)| Method::FindNode { target, want }),
        (id(), want()).prop_map(|(info_hash, want)| Method::GetPeers { info_hash, want }),
        (id(), any::<u16>(), any::<bool>(), bytes(TOKEN_LEN_MAX)).prop_map(
            |(info_hash, port, implied_port, token)| Method::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token
            }
        ),
        (id(), proptest::option::of(any::<i64>()))
            .prop_map(|(target, seq)| Method::Get { target, seq }),
        (
            bytes(TOKEN_LEN_MAX),
            encoded_tree(),
            proptest::option::of(mutable_args())
        )
            .prop_map(|(token, value, mutable)| Method::Put(PutArgs {
                target: None,
                token,
                value,
                mutable
            })),
        bytes(16)
            .prop_filter("a known method name", move |n| !known
                .contains(&n.as_slice()))
            .prop_map(|name| Method::Unknown { name }),
    ]
}

fn mutable_args() -> impl Strategy<Value = MutableArgs> {
    (
        any::<[u8; 32]>(),
        signature(),
        any::<i64>(),
        bytes(80),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(|(public_key, signature, seq, salt, cas)| MutableArgs {
            public_key,
            signature,
            seq,
            salt,
            cas,
        })
}

fn response() -> impl Strategy<Value = Response> {
    (
        id(),
        vec(
            (id(), addr_v4()).prop_map(|(id, addr)| NodeInfo { id, addr }),
            0..=8,
        ),
        vec(
            (id(), addr_v6()).prop_map(|(id, addr)| NodeInfo { id, addr }),
            0..=8,
        ),
        proptest::option::of(bytes(TOKEN_LEN_MAX)),
        vec(addr(), 0..=50),
        proptest::option::of(encoded_tree()),
        proptest::option::of(any::<[u8; 32]>()),
        proptest::option::of(signature()),
        proptest::option::of(any::<i64>()),
        any::<(bool, bool)>(),
    )
        .prop_map(
            |(sender_id, nodes, nodes6, token, peers, value, public_key, signature, seq, keys)| {
                // An empty list may keep its key (BEP 5's empty `nodes`).
                let nodes_keys = Want {
                    v4: keys.0 && nodes.is_empty(),
                    v6: keys.1 && nodes6.is_empty(),
                };
                Response {
                    sender_id,
                    nodes_keys,
                    nodes,
                    nodes6,
                    token,
                    peers,
                    value,
                    public_key,
                    signature,
                    seq,
                }
            },
        )
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (id(), method()).prop_map(|(sender_id, method)| Body::Query(Query { sender_id, method })),
        response().prop_map(Body::Response),
        (any::<i64>(), ".{0,40}")
            .prop_map(|(code, message)| Body::Error(ErrorBody { code, message })),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        bytes(TRANSACTION_ID_LEN_MAX),
        proptest::option::of(bytes(VERSION_LEN_MAX)),
        proptest::option::of(addr()),
        any::<bool>(),
        body(),
    )
        .prop_map(
            |(transaction_id, version, requester_ip, read_only, body)| Message {
                transaction_id,
                version,
                requester_ip,
                read_only,
                body,
            },
        )
}

/// A byte string made mostly of bencode's own symbols, so mutations reach deep decoder paths.
fn bencode_ish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"d".to_vec()),
        Just(b"l".to_vec()),
        Just(b"e".to_vec()),
        Just(b"i".to_vec()),
        Just(b"-".to_vec()),
        Just(b"0".to_vec()),
        Just(b"1:".to_vec()),
        Just(b"2:".to_vec()),
        Just(b"i42e".to_vec()),
        Just(b"i0".to_vec()),
        Just(b"i-".to_vec()),
        Just(b"01:".to_vec()),
        Just(b"1:a".to_vec()),
        Just(b"1:b".to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    vec(token, 0..64).prop_map(|parts| parts.concat())
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    /// Insert one of bencode's own symbols, which is far likelier than a random byte to leave
    /// the input decodable but non-canonical (a leading zero, a `-0`).
    InsertSymbol(usize, usize),
    Remove(usize),
}

/// The symbols [`Mutation::InsertSymbol`] draws from.
const SYMBOLS: &[u8] = b"0-ei:ld1";

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 0..SYMBOLS.len()).prop_map(|(i, s)| Mutation::InsertSymbol(i, s)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::FlipBit(i, bit) if len > 0 => bytes[i % len] ^= 1 << bit,
            Mutation::Truncate(i) => bytes.truncate(i % (len + 1)),
            Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Mutation::InsertSymbol(i, s) => bytes.insert(i % (len + 1), SYMBOLS[s]),
            Mutation::Remove(i) if len > 0 => {
                bytes.remove(i % len);
            }
            _ => {}
        }
    }
    bytes
}

/// What must hold for any input: no panic; whatever bencode accepts re-encodes to itself;
/// whatever KRPC accepts re-decodes to the same message.
fn check_decoders_on(input: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(v) = bencode::decode(input) {
        prop_assert_eq!(bencode::encode(&v), input, "accepted non-canonical bencode");
    }
    check_index_on(input)?;
    if let Ok(m) = Message::decode(input) {
        let again = Message::decode(&m.encode());
        prop_assert_eq!(again.as_ref(), Ok(&m));
    }
    Ok(())
}

/// `decode_indexed` accepts and refuses exactly what `decode_raw` does, with the same error,
/// and its lookups find in every dictionary (recorded or not, to depth 4) what a walk of the
/// bytes finds, for each of its keys, keys it lacks, and a run of three.
fn check_index_on(input: &[u8]) -> Result<(), TestCaseError> {
    let mut index = Indexed::new(input);
    let indexed = bencode::decode_indexed(&mut index);
    prop_assert_eq!(&indexed, &bencode::decode_raw(input));
    let Ok(top) = indexed else {
        return Ok(());
    };
    let mut dicts = Vec::new();
    let mut todo = vec![(top, 1)];
    // Bounded: each value is visited once, and only to depth 4.
    while let Some((v, depth)) = todo.pop() {
        if depth > 4 {
            continue;
        }
        if let Some(d) = v.as_dict() {
            dicts.push(d);
            todo.extend(d.entries().map(|(_, v)| (v, depth + 1)));
        } else if let Some(l) = v.as_list() {
            todo.extend(l.items().map(|v| (v, depth + 1)));
        }
    }
    for d in dicts {
        let mut keys: Vec<&[u8]> = d.entries().map(|(k, _)| k).collect();
        keys.extend([&b""[..], b"a", b"id", b"zz", b"\xff"]);
        keys.sort();
        keys.dedup();
        for k in &keys {
            prop_assert_eq!(index.fields(d, [*k]), d.fields([*k]));
        }
        for w in keys.windows(3) {
            let three = [w[0], w[1], w[2]];
            prop_assert_eq!(index.fields(d, three), d.fields(three));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_message_round_trips(m in message()) {
        let wire = m.encode();
        check_index_on(&wire)?;
        let decoded = Message::decode(&wire);
        prop_assert_eq!(decoded.as_ref(), Ok(&m));
        prop_assert_eq!(decoded.unwrap().encode(), wire);
    }

    #[test]
    fn encode_into_appends_what_encode_returns(m in message(), prefix in bytes(8)) {
        let mut out = prefix.clone();
        m.encode_into(&mut out);
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&out[prefix.len()..], &m.encode()[..]);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(input in bytes(600)) {
        check_decoders_on(&input)?;
    }

    #[test]
    fn decoders_never_panic_on_bencode_like_bytes(input in bencode_ish()) {
        check_decoders_on(&input)?;
    }

    #[test]
    fn decoders_never_panic_on_mutated_datagrams(
        m in message(),
        mutations in vec(mutation(), 1..4),
    ) {
        check_decoders_on(&mutate(m.encode(), &mutations))?;
    }

    #[test]
    fn mutated_bencode_is_accepted_only_if_canonical(
        encoded in encoded_tree(),
        mutations in vec(mutation(), 1..3),
    ) {
        check_decoders_on(&mutate(encoded, &mutations))?;
    }

    #[test]
    fn non_canonical_encodings_are_rejected(
        t in tree(),
        target in any::<usize>(),
        neg_zero in any::<bool>(),
    ) {
        let mut faulty = Vec::new();
        let faulted = write_faulty(&mut faulty, &t, target % node_count(&t), &mut 0, neg_zero);
        // Lists (and empty dictionaries) have no non-canonical form to write.
        prop_assume!(faulted);
        prop_assert!(
            bencode::decode(&faulty).is_err(),
            "accepted {:?}",
            String::from_utf8_lossy(&faulty)
        );
    }

    #[test]
    fn encoded_bencode_trees_decode_and_re_encode_identically(encoded in encoded_tree()) {
        check_index_on(&encoded)?;
        let v = bencode::decode(&encoded).expect("encoder output decodes");
        prop_assert_eq!(bencode::encode(&v), encoded);
    }

    #[test]
    fn nesting_past_the_limit_is_rejected_at_the_limit(
        depth in (DEPTH_MAX + 1)..=INPUT_LEN_MAX / 4,
        dict in any::<bool>(),
    ) {
        let open: &[u8] = if dict { b"d1:a" } else { b"l" };
        let mut bomb = open.repeat(depth);
        // Garbage right after the limit: had the decoder read on, it would report that instead.
        let stop = open.len() * (DEPTH_MAX + 1);
        bomb[stop..].fill(0xff);
        prop_assert_eq!(bencode::decode(&bomb), Err(BencodeError::TooDeep));
    }

    #[test]
    fn element_count_past_the_limit_is_rejected_at_the_limit(
        count in ELEMENTS_MAX..=INPUT_LEN_MAX / 4,
        item in prop_oneof![Just(&b"0:"[..]), Just(&b"i0e"[..]), Just(&b"le"[..])],
    ) {
        // A list (one element) of `count` items: item number ELEMENTS_MAX is one too many.
        let mut bomb = b"l".to_vec();
        bomb.extend(item.repeat(count));
        bomb.truncate(INPUT_LEN_MAX);
        let stop = 1 + item.len() * ELEMENTS_MAX;
        bomb[stop..].fill(0xff);
        prop_assert_eq!(bencode::decode(&bomb), Err(BencodeError::TooManyElements));
    }
}

#[test]
fn huge_length_prefix_is_rejected_without_allocating() {
    // 2^60, as a bencode string and as a KRPC transaction ID.
    let prefix = format!("{}:", 1u64 << 60);
    let mut alone = prefix.clone().into_bytes();
    alone.extend_from_slice(b"abc");
    let krpc = format!("d1:t{prefix}abce").into_bytes();
    let largest = largest_alloc_during(|| {
        assert_eq!(
            bencode::decode(&alone),
            Err(BencodeError::NonCanonicalLength)
        );
        let e = Message::decode(&krpc).unwrap_err();
        assert_eq!(
            e.kind,
            DecodeErrorKind::Bencode(BencodeError::NonCanonicalLength)
        );
    });
    assert!(largest < 1024, "largest allocation was {largest} bytes");
}

#[test]
fn length_prefix_past_the_input_is_rejected_without_allocating() {
    let input = b"d1:t65535:abcde";
    let largest = largest_alloc_during(|| {
        assert_eq!(
            bencode::decode(input),
            Err(BencodeError::LengthExceedsInput)
        );
    });
    assert!(largest < 1024, "largest allocation was {largest} bytes");
}

#[test]
fn largest_datagram_allocates_within_the_element_bound() {
    // A full-size list of ELEMENTS_MAX - 1 strings: the worst case the bounds allow.
    let filler = "x".repeat(100);
    let mut input = b"l".to_vec();
    for _ in 0..ELEMENTS_MAX - 1 {
        input.extend_from_slice(format!("100:{filler}").as_bytes());
    }
    input.push(b'e');
    let largest = largest_alloc_during(|| {
        assert!(bencode::decode(&input).is_ok());
    });
    // The item vector grows by doubling to at most ELEMENTS_MAX values of 48 bytes each.
    assert!(
        largest <= ELEMENTS_MAX * 64,
        "largest allocation was {largest} bytes"
    );
}
