//! The example messages of BEP 5 and the test vectors of BEP 44 decode to the right values and
//! re-encode byte for byte; libtorrent-style 2-byte transaction IDs and BEP 32 IPv6 fields
//! round-trip.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use dht_proto::message::{
    Body, ErrorBody, Message, Method, MutableArgs, NodeInfo, PutArgs, Query, Response, Want,
};
use dht_proto::Id;

fn id(s: &[u8; 20]) -> Id {
    Id(*s)
}

fn msg(t: &[u8], body: Body) -> Message {
    Message {
        transaction_id: t.to_vec(),
        version: None,
        requester_ip: None,
        read_only: false,
        body,
    }
}

fn query(sender: &[u8; 20], method: Method) -> Body {
    Body::Query(Query {
        sender_id: id(sender),
        method,
    })
}

/// Decodes `wire`, checks it equals `expected`, and checks it re-encodes to `wire`.
fn check_round_trip(wire: &[u8], expected: &Message) {
    let decoded = Message::decode(wire).expect("BEP example decodes");
    assert_eq!(&decoded, expected);
    assert_eq!(
        decoded.encode(),
        wire,
        "re-encoding differs:\n got {:?}\nwant {:?}",
        String::from_utf8_lossy(&decoded.encode()),
        String::from_utf8_lossy(wire)
    );
}

#[test]
fn bep5_error_example_round_trips() {
    check_round_trip(
        b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
        &msg(
            b"aa",
            Body::Error(ErrorBody {
                code: 201,
                message: "A Generic Error Ocurred".into(),
            }),
        ),
    );
}

#[test]
fn bep5_ping_query_and_response_round_trip() {
    check_round_trip(
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
        &msg(b"aa", query(b"abcdefghij0123456789", Method::Ping)),
    );
    check_round_trip(
        b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
        &msg(
            b"aa",
            Body::Response(Response {
                sender_id: id(b"mnopqrstuvwxyz123456"),
                ..Response::default()
            }),
        ),
    );
}

#[test]
fn bep5_find_node_query_round_trips() {
    check_round_trip(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
        &msg(
            b"aa",
            query(
                b"abcdefghij0123456789",
                Method::FindNode {
                    target: id(b"mnopqrstuvwxyz123456"),
                    want: None,
                },
            ),
        ),
    );
}

/// BEP 5's responses carry `nodes` as the placeholder "def456..." (9 bytes, less than one
/// 26-byte entry). The decoder drops a trailing partial entry, so the placeholder reads as no
/// nodes, with the key kept, and the re-encoding writes `nodes` as an empty string: this is the
/// one documented exception to byte-identical re-encoding.
#[test]
fn bep5_find_node_response_placeholder_nodes_read_as_no_nodes() {
    let wire = b"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re";
    let decoded = Message::decode(wire).unwrap();
    let expected = msg(
        b"aa",
        Body::Response(Response {
            sender_id: id(b"0123456789abcdefghij"),
            nodes_keys: Want {
                v4: true,
                v6: false,
            },
            ..Response::default()
        }),
    );
    assert_eq!(decoded, expected);
    assert_eq!(
        decoded.encode(),
        b"d1:rd2:id20:0123456789abcdefghij5:nodes0:e1:t2:aa1:y1:re"
    );
}

#[test]
fn find_node_response_with_real_nodes_round_trips() {
    // The BEP 5 response with the placeholder replaced by two real 26-byte entries.
    let mut wire = b"d1:rd2:id20:0123456789abcdefghij5:nodes52:".to_vec();
    wire.extend_from_slice(b"AAAAAAAAAAAAAAAAAAAA");
    wire.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1]);
    wire.extend_from_slice(b"BBBBBBBBBBBBBBBBBBBB");
    wire.extend_from_slice(&[192, 168, 1, 2, 0x00, 0x50]);
    wire.extend_from_slice(b"e1:t2:aa1:y1:re");
    check_round_trip(
        &wire,
        &msg(
            b"aa",
            Body::Response(Response {
                sender_id: id(b"0123456789abcdefghij"),
                nodes: vec![
                    NodeInfo {
                        id: id(b"AAAAAAAAAAAAAAAAAAAA"),
                        addr: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 6881)),
                    },
                    NodeInfo {
                        id: id(b"BBBBBBBBBBBBBBBBBBBB"),
                        addr: SocketAddr::from((Ipv4Addr::new(192, 168, 1, 2), 80)),
                    },
                ],
                ..Response::default()
            }),
        ),
    );
}

#[test]
fn bep5_get_peers_query_round_trips() {
    check_round_trip(
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
        &msg(
            b"aa",
            query(
                b"abcdefghij0123456789",
                Method::GetPeers {
                    info_hash: id(b"mnopqrstuvwxyz123456"),
                    want: None,
                },
            ),
        ),
    );
}

#[test]
fn bep5_get_peers_response_with_values_round_trips() {
    // "axje.u" is 97.120.106.101 port 0x2e75, "idhtnm" is 105.100.104.116 port 0x6e6d.
    check_round_trip(
        b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
        &msg(
            b"aa",
            Body::Response(Response {
                sender_id: id(b"abcdefghij0123456789"),
                token: Some(b"aoeusnth".to_vec()),
                peers: vec![
                    SocketAddr::from((Ipv4Addr::new(97, 120, 106, 101), 0x2e75)),
                    SocketAddr::from((Ipv4Addr::new(105, 100, 104, 116), 0x6e6d)),
                ],
                ..Response::default()
            }),
        ),
    );
}

#[test]
fn bep5_get_peers_response_with_placeholder_nodes_keeps_the_token() {
    let wire =
        b"d1:rd2:id20:abcdefghij01234567895:nodes9:def456...5:token8:aoeusnthe1:t2:aa1:y1:re";
    let decoded = Message::decode(wire).unwrap();
    let Body::Response(r) = &decoded.body else {
        panic!("not a response: {decoded:?}");
    };
    assert_eq!(r.token.as_deref(), Some(&b"aoeusnth"[..]));
    assert!(r.nodes.is_empty());
    assert_eq!(
        decoded.encode(),
        b"d1:rd2:id20:abcdefghij01234567895:nodes0:5:token8:aoeusnthe1:t2:aa1:y1:re"
    );
}

#[test]
fn bep5_announce_peer_query_and_response_round_trip() {
    check_round_trip(
        b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
        &msg(
            b"aa",
            query(
                b"abcdefghij0123456789",
                Method::AnnouncePeer {
                    info_hash: id(b"mnopqrstuvwxyz123456"),
                    port: 6881,
                    implied_port: true,
                    token: b"aoeusnth".to_vec(),
                },
            ),
        ),
    );
    check_round_trip(
        b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
        &msg(
            b"aa",
            Body::Response(Response {
                sender_id: id(b"mnopqrstuvwxyz123456"),
                ..Response::default()
            }),
        ),
    );
}

#[test]
fn libtorrent_two_byte_binary_transaction_id_round_trips() {
    // libtorrent sends a 2-byte binary `t` and a 4-byte `v` such as "LT\x01\x02".
    let wire = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:\x8a\x001:v4:LT\x01\x021:y1:qe";
    let mut expected = msg(b"\x8a\x00", query(b"abcdefghij0123456789", Method::Ping));
    expected.version = Some(b"LT\x01\x02".to_vec());
    check_round_trip(wire, &expected);
}

#[test]
fn ipv6_nodes6_values_and_requester_ip_round_trip() {
    let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let node6 = NodeInfo {
        id: id(b"CCCCCCCCCCCCCCCCCCCC"),
        addr: SocketAddr::V6(SocketAddrV6::new(v6, 6881, 0, 0)),
    };
    let peer6 = SocketAddr::V6(SocketAddrV6::new(v6, 51413, 0, 0));
    let peer4 = SocketAddr::from((Ipv4Addr::new(1, 2, 3, 4), 5));
    let mut expected = msg(
        b"ab",
        Body::Response(Response {
            sender_id: id(b"abcdefghij0123456789"),
            nodes6: vec![node6],
            token: Some(b"tok".to_vec()),
            peers: vec![peer6, peer4],
            ..Response::default()
        }),
    );
    expected.requester_ip = Some(SocketAddr::V6(SocketAddrV6::new(v6, 1234, 0, 0)));

    let mut wire = b"d2:ip18:".to_vec();
    wire.extend_from_slice(&v6.octets());
    wire.extend_from_slice(&1234u16.to_be_bytes());
    wire.extend_from_slice(b"1:rd2:id20:abcdefghij01234567896:nodes638:CCCCCCCCCCCCCCCCCCCC");
    wire.extend_from_slice(&v6.octets());
    wire.extend_from_slice(&6881u16.to_be_bytes());
    wire.extend_from_slice(b"5:token3:tok6:valuesl18:");
    wire.extend_from_slice(&v6.octets());
    wire.extend_from_slice(&51413u16.to_be_bytes());
    wire.extend_from_slice(b"6:\x01\x02\x03\x04\x00\x05ee1:t2:ab1:y1:re");
    check_round_trip(&wire, &expected);
}

#[test]
fn bep32_want_and_bep43_read_only_round_trip() {
    let mut expected = msg(
        b"aa",
        query(
            b"abcdefghij0123456789",
            Method::FindNode {
                target: id(b"mnopqrstuvwxyz123456"),
                want: Some(Want { v4: true, v6: true }),
            },
        ),
    );
    expected.read_only = true;
    check_round_trip(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n42:n6ee1:q9:find_node2:roi1e1:t2:aa1:y1:qe",
        &expected,
    );
}

/// BEP 44's test vector 1 (mutable, no salt) and 2 (with salt): the public key and signature
/// from the spec, carried in a `put` and a `get` response.
mod bep44 {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    const PUBLIC_KEY: &str = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548";
    const SIG_NO_SALT: &str = "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff\
                               1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01";
    const SIG_SALT: &str = "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d\
                            df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08";

    fn bytes<const N: usize>(h: &str) -> [u8; N] {
        hex::decode(h).unwrap().try_into().unwrap()
    }

    /// The buffer BEP 44 signs, built from the decoded fields.
    fn signed_buffer(m: &MutableArgs, value: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        if !m.salt.is_empty() {
            b.extend_from_slice(format!("4:salt{}:", m.salt.len()).as_bytes());
            b.extend_from_slice(&m.salt);
        }
        b.extend_from_slice(format!("3:seqi{}e1:v", m.seq).as_bytes());
        b.extend_from_slice(value);
        b
    }

    fn put_wire(salt: &[u8], sig: &[u8; 64]) -> Vec<u8> {
        let mut w = b"d1:ad2:id20:abcdefghij01234567891:k32:".to_vec();
        w.extend_from_slice(&bytes::<32>(PUBLIC_KEY));
        if !salt.is_empty() {
            w.extend_from_slice(format!("4:salt{}:", salt.len()).as_bytes());
            w.extend_from_slice(salt);
        }
        w.extend_from_slice(b"3:seqi1e3:sig64:");
        w.extend_from_slice(sig);
        w.extend_from_slice(b"5:token4:tok11:v12:Hello World!e1:q3:put1:t2:aa1:y1:qe");
        w
    }

    fn check_put(salt: &[u8], sig_hex: &str, target_hex: &str) {
        let sig = bytes::<64>(sig_hex);
        let wire = put_wire(salt, &sig);
        let expected = msg(
            b"aa",
            query(
                b"abcdefghij0123456789",
                Method::Put(PutArgs {
                    target: None,
                    token: b"tok1".to_vec(),
                    value: b"12:Hello World!".to_vec(),
                    mutable: Some(MutableArgs {
                        public_key: bytes(PUBLIC_KEY),
                        signature: sig,
                        seq: 1,
                        salt: salt.to_vec(),
                        cas: None,
                    }),
                }),
            ),
        );
        check_round_trip(&wire, &expected);

        // The decoded fields are exactly what BEP 44 signs and hashes.
        let Body::Query(Query {
            method: Method::Put(p),
            ..
        }) = Message::decode(&wire).unwrap().body
        else {
            unreachable!()
        };
        let m = p.mutable.unwrap();
        let key = VerifyingKey::from_bytes(&m.public_key).unwrap();
        key.verify(
            &signed_buffer(&m, &p.value),
            &Signature::from_bytes(&m.signature),
        )
        .expect("BEP 44 test vector signature verifies over the decoded fields");
        assert_eq!(
            Id::sha1_parts(&[&m.public_key, &m.salt]),
            Id::from_hex(target_hex).unwrap()
        );
    }

    #[test]
    fn test_vector_1_mutable_put_round_trips_and_verifies() {
        check_put(b"", SIG_NO_SALT, "4a533d47ec9c7d95b1ad75f576cffc641853b750");
    }

    #[test]
    fn test_vector_2_salted_put_round_trips_and_verifies() {
        check_put(
            b"foobar",
            SIG_SALT,
            "411eba73b6f087ca51a3795d9c8c938d365e32c1",
        );
    }

    #[test]
    fn test_vector_3_immutable_put_round_trips_with_raw_value() {
        check_round_trip(
            b"d1:ad2:id20:abcdefghij01234567895:token4:tok11:v12:Hello World!e1:q3:put1:t2:aa1:y1:qe",
            &msg(
                b"aa",
                query(
                    b"abcdefghij0123456789",
                    Method::Put(PutArgs {
                        target: None,
                        token: b"tok1".to_vec(),
                        value: b"12:Hello World!".to_vec(),
                        mutable: None,
                    }),
                ),
            ),
        );
        // BEP 44 test 3: the immutable target is SHA-1 of the bencoded value.
        assert_eq!(
            Id::sha1(b"12:Hello World!"),
            Id::from_hex("e5f96f6f38320f0f33959cb4d3d656452117aadb").unwrap()
        );
    }

    #[test]
    fn mutable_get_response_round_trips() {
        let sig = bytes::<64>(SIG_NO_SALT);
        let mut wire = b"d1:rd2:id20:abcdefghij01234567891:k32:".to_vec();
        wire.extend_from_slice(&bytes::<32>(PUBLIC_KEY));
        wire.extend_from_slice(b"3:seqi1e3:sig64:");
        wire.extend_from_slice(&sig);
        wire.extend_from_slice(b"5:token4:tok11:v12:Hello World!e1:t2:aa1:y1:re");
        check_round_trip(
            &wire,
            &msg(
                b"aa",
                Body::Response(Response {
                    sender_id: id(b"abcdefghij0123456789"),
                    token: Some(b"tok1".to_vec()),
                    value: Some(b"12:Hello World!".to_vec()),
                    public_key: Some(bytes(PUBLIC_KEY)),
                    signature: Some(sig),
                    seq: Some(1),
                    ..Response::default()
                }),
            ),
        );
    }

    #[test]
    fn get_query_with_seq_and_cas_put_round_trip() {
        check_round_trip(
            b"d1:ad2:id20:abcdefghij01234567893:seqi4e6:target20:mnopqrstuvwxyz123456e1:q3:get1:t2:aa1:y1:qe",
            &msg(
                b"aa",
                query(
                    b"abcdefghij0123456789",
                    Method::Get {
                        target: id(b"mnopqrstuvwxyz123456"),
                        seq: Some(4),
                    },
                ),
            ),
        );
        let sig = bytes::<64>(SIG_NO_SALT);
        let mut wire = b"d1:ad3:casi0e2:id20:abcdefghij01234567891:k32:".to_vec();
        wire.extend_from_slice(&bytes::<32>(PUBLIC_KEY));
        wire.extend_from_slice(b"3:seqi1e3:sig64:");
        wire.extend_from_slice(&sig);
        wire.extend_from_slice(b"5:token4:tok11:vd1:ai1eee1:q3:put1:t2:aa1:y1:qe");
        let decoded = Message::decode(&wire).unwrap();
        assert_eq!(decoded.encode(), wire);
        let Body::Query(Query {
            method: Method::Put(p),
            ..
        }) = decoded.body
        else {
            panic!("not a put")
        };
        assert_eq!(p.value, b"d1:ai1ee");
        assert_eq!(p.mutable.unwrap().cas, Some(0));
    }
}
