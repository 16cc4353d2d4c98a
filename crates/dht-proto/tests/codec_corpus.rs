//! Replays the datagram corpus in `tests/corpus/`: real-looking Mainline traffic that must
//! decode and re-encode byte for byte, and hostile datagrams (`reject_*`) that must be refused.
//!
//! The corpus is also the seed corpus for fuzzing. It is written by [`corpus`] below; after a
//! deliberate change to the wire format, regenerate it with
//! `DHT_REGEN_CORPUS=1 cargo test -p dht-proto --test codec_corpus` and review the diff.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::PathBuf;

use dht_proto::message::{
    error_code, Body, ErrorBody, Message, Method, MutableArgs, NodeInfo, PutArgs, Query, Response,
    Want,
};
use dht_proto::Id;

/// Most files the corpus directory may hold; a bound on the replay loop.
const CORPUS_FILES_MAX: usize = 256;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// A deterministic 20-byte ID: every byte is `seed` plus its index.
fn id(seed: u8) -> Id {
    Id(std::array::from_fn(|i| seed.wrapping_add(i as u8)))
}

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(a, b, c, d), port))
}

fn v6(last: u16, port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last),
        port,
        0,
        0,
    ))
}

/// A libtorrent-like envelope: 2-byte transaction ID, 4-byte version.
fn lt(t: u16, body: Body) -> Message {
    Message {
        transaction_id: t.to_be_bytes().to_vec(),
        version: Some(b"LT\x02\x00".to_vec()),
        requester_ip: None,
        read_only: false,
        body,
    }
}

fn q(method: Method) -> Body {
    Body::Query(Query {
        sender_id: id(1),
        method,
    })
}

fn mutable(salt: &[u8], cas: Option<i64>) -> MutableArgs {
    MutableArgs {
        public_key: std::array::from_fn(|i| i as u8),
        signature: std::array::from_fn(|i| 0x80 | i as u8),
        seq: 7,
        salt: salt.to_vec(),
        cas,
    }
}

fn with_ip(mut m: Message, ip: SocketAddr) -> Message {
    m.requester_ip = Some(ip);
    m
}

/// The valid datagrams of the corpus, by file name.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let eight_nodes: Vec<NodeInfo> = (0..8)
        .map(|i| NodeInfo {
            id: id(10 + i),
            addr: v4(81, 2, 3, 10 + i, 6881 + u16::from(i)),
        })
        .collect();
    let eight_nodes6: Vec<NodeInfo> = (0..8)
        .map(|i| NodeInfo {
            id: id(40 + i),
            addr: v6(u16::from(i) + 1, 6881),
        })
        .collect();
    let fifty_peers: Vec<SocketAddr> = (0..50)
        .map(|i| v4(93, 184, i, 1, 51413 - u16::from(i)))
        .collect();
    let messages = vec![
        ("ping_query", lt(1, q(Method::Ping))),
        (
            "ping_response_bep42_ip",
            with_ip(
                lt(
                    1,
                    Body::Response(Response {
                        sender_id: id(2),
                        ..Response::default()
                    }),
                ),
                v4(203, 0, 113, 7, 40000),
            ),
        ),
        (
            "find_node_query_want_n4_n6",
            lt(
                2,
                q(Method::FindNode {
                    target: id(3),
                    want: Some(Want { v4: true, v6: true }),
                }),
            ),
        ),
        (
            "find_node_response_8_nodes",
            with_ip(
                lt(
                    2,
                    Body::Response(Response {
                        sender_id: id(4),
                        nodes: eight_nodes.clone(),
                        ..Response::default()
                    }),
                ),
                v4(203, 0, 113, 7, 40000),
            ),
        ),
        (
            "find_node_response_8_nodes6",
            with_ip(
                lt(
                    3,
                    Body::Response(Response {
                        sender_id: id(5),
                        nodes6: eight_nodes6.clone(),
                        ..Response::default()
                    }),
                ),
                v6(0xffff, 40000),
            ),
        ),
        (
            "get_peers_query",
            lt(
                4,
                q(Method::GetPeers {
                    info_hash: id(6),
                    want: None,
                }),
            ),
        ),
        (
            "get_peers_response_50_values",
            lt(
                4,
                Body::Response(Response {
                    sender_id: id(7),
                    token: Some(b"\x01\x02\x03\x04".to_vec()),
                    peers: fifty_peers,
                    ..Response::default()
                }),
            ),
        ),
        (
            "get_peers_response_nodes_and_ipv6_values",
            lt(
                5,
                Body::Response(Response {
                    sender_id: id(8),
                    nodes: eight_nodes.clone(),
                    token: Some(b"tok-5678".to_vec()),
                    peers: vec![v6(9, 51413), v4(10, 0, 0, 9, 51413)],
                    ..Response::default()
                }),
            ),
        ),
        (
            "announce_peer_query_implied_port",
            lt(
                6,
                q(Method::AnnouncePeer {
                    info_hash: id(6),
                    port: 51413,
                    implied_port: true,
                    token: b"\x01\x02\x03\x04".to_vec(),
                }),
            ),
        ),
        (
            "get_query_immutable",
            lt(
                7,
                q(Method::Get {
                    target: id(9),
                    seq: None,
                }),
            ),
        ),
        (
            "get_query_mutable_seq",
            lt(
                8,
                q(Method::Get {
                    target: id(9),
                    seq: Some(6),
                }),
            ),
        ),
        (
            "get_response_mutable",
            lt(
                8,
                Body::Response(Response {
                    sender_id: id(11),
                    nodes: eight_nodes,
                    token: Some(b"tok".to_vec()),
                    value: Some(b"d4:name5:alice3:seqli1ei2eee".to_vec()),
                    public_key: Some(mutable(b"", None).public_key),
                    signature: Some(mutable(b"", None).signature),
                    seq: Some(7),
                    ..Response::default()
                }),
            ),
        ),
        (
            "put_query_immutable",
            lt(
                9,
                q(Method::Put(PutArgs {
                    target: None,
                    token: b"tok".to_vec(),
                    value: b"12:Hello World!".to_vec(),
                    mutable: None,
                })),
            ),
        ),
        (
            "put_query_mutable_salt_cas",
            lt(
                10,
                q(Method::Put(PutArgs {
                    target: None,
                    token: b"tok".to_vec(),
                    value: b"l5:hello5:worlde".to_vec(),
                    mutable: Some(mutable(b"foobar", Some(6))),
                })),
            ),
        ),
        (
            "error_203",
            lt(
                11,
                Body::Error(ErrorBody {
                    code: error_code::PROTOCOL,
                    message: "Protocol Error".into(),
                }),
            ),
        ),
        (
            "error_204",
            lt(
                12,
                Body::Error(ErrorBody {
                    code: error_code::METHOD_UNKNOWN,
                    message: "Method Unknown".into(),
                }),
            ),
        ),
        (
            "unknown_method_query",
            lt(
                13,
                q(Method::Unknown {
                    name: b"sample_infohashes".to_vec(),
                }),
            ),
        ),
        (
            "read_only_query",
            Message {
                read_only: true,
                ..lt(
                    14,
                    q(Method::FindNode {
                        target: id(12),
                        want: None,
                    }),
                )
            },
        ),
        (
            "four_byte_transaction_id_no_version",
            Message {
                transaction_id: b"\x00\x00\x12\x34".to_vec(),
                version: None,
                ..lt(0, q(Method::Ping))
            },
        ),
    ];
    let mut out: Vec<(&'static str, Vec<u8>)> = messages
        .into_iter()
        .map(|(name, m)| (name, m.encode()))
        .collect();
    // The BEP 5 examples, as the spec writes them.
    out.push((
        "bep5_announce_peer_query",
        b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe".to_vec(),
    ));
    out.push((
        "bep5_get_peers_response_values",
        b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re".to_vec(),
    ));
    out.push((
        "bep5_error",
        b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee".to_vec(),
    ));
    out
}

/// Hostile or malformed datagrams, by file name: each must be refused.
fn rejects() -> Vec<(&'static str, Vec<u8>)> {
    let ping = lt(1, q(Method::Ping)).encode();
    let mut truncated = ping.clone();
    truncated.truncate(ping.len() / 2);
    let mut trailing = ping.clone();
    trailing.extend_from_slice(b"garbage");
    vec![
        ("reject_truncated_ping", truncated),
        ("reject_trailing_bytes", trailing),
        ("reject_depth_bomb", [&b"d1:a"[..]].repeat(2000).concat()),
        (
            "reject_element_bomb",
            [&b"l"[..], &b"0:".repeat(4000)[..], b"e"].concat(),
        ),
        (
            "reject_huge_length",
            b"d1:t1152921504606846976:aa1:y1:qe".to_vec(),
        ),
        (
            "reject_unsorted_keys",
            b"d1:t2:aa1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:qe".to_vec(),
        ),
        (
            "reject_leading_zero_port",
            b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti06881e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe".to_vec(),
        ),
        (
            "reject_missing_id",
            b"d1:ade1:q4:ping1:t2:aa1:y1:qe".to_vec(),
        ),
    ]
}

#[test]
fn corpus_files_match_their_generator() {
    let dir = corpus_dir();
    let all: Vec<_> = corpus().into_iter().chain(rejects()).collect();
    if std::env::var_os("DHT_REGEN_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &all {
            std::fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
        }
    }
    for (name, bytes) in &all {
        let path = dir.join(format!("{name}.bin"));
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (regenerate: see module doc)", path.display()));
        assert_eq!(&on_disk, bytes, "{name}.bin differs from its generator");
    }
}

#[test]
fn corpus_datagrams_replay() {
    let mut entries: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("corpus directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    entries.sort();
    assert!(entries.len() <= CORPUS_FILES_MAX, "corpus too large");
    let (mut accepted, mut rejected) = (0, 0);
    for path in entries.iter().take(CORPUS_FILES_MAX) {
        let name = path.file_name().unwrap().to_string_lossy();
        let bytes = std::fs::read(path).unwrap();
        let decoded = Message::decode(&bytes);
        if name.starts_with("reject_") {
            assert!(decoded.is_err(), "{name} was accepted: {decoded:?}");
            rejected += 1;
        } else {
            let m = decoded.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(m.encode(), bytes, "{name} does not re-encode identically");
            accepted += 1;
        }
    }
    assert_eq!(accepted, corpus().len());
    assert_eq!(rejected, rejects().len());
}
