//! What the KRPC decoder rejects, what it reads liberally, and what a [`DecodeError`] tells the
//! node about answering with error 203.

use std::net::{Ipv4Addr, SocketAddr};

use dht_proto::bencode::BencodeError;
use dht_proto::krpc::{DecodeError, DecodeErrorKind};
use dht_proto::message::{Body, Message, Method, Query};

const ID: &str = "20:abcdefghij0123456789";

/// Builds `d1:ad2:id20:...<args>e1:q<method>1:t2:aa1:y1:qe`.
fn query_wire(method: &str, args_after_id: &str) -> Vec<u8> {
    format!(
        "d1:ad2:id{ID}{args_after_id}e1:q{}:{method}1:t2:aa1:y1:qe",
        method.len()
    )
    .into_bytes()
}

fn decode_err(wire: &[u8]) -> DecodeError {
    Message::decode(wire).expect_err("should not decode")
}

fn method_of(wire: &[u8]) -> Method {
    match Message::decode(wire).expect("should decode").body {
        Body::Query(Query { method, .. }) => method,
        other => panic!("not a query: {other:?}"),
    }
}

#[test]
fn query_without_sender_id_is_answerable_protocol_error() {
    let e = decode_err(b"d1:ade1:q4:ping1:t2:aa1:y1:qe");
    assert_eq!(e.kind, DecodeErrorKind::MissingKey("a.id"));
    assert_eq!(e.transaction_id.as_deref(), Some(&b"aa"[..]));
    assert!(e.is_query);
    assert!(e.should_answer());
}

#[test]
fn query_with_short_sender_id_is_rejected() {
    let e = decode_err(b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe");
    assert_eq!(e.kind, DecodeErrorKind::InvalidKey("a.id"));
    assert!(e.should_answer());
}

#[test]
fn query_without_arguments_dict_is_rejected() {
    let e = decode_err(b"d1:q4:ping1:t2:aa1:y1:qe");
    assert_eq!(e.kind, DecodeErrorKind::MissingKey("a"));
    assert!(e.should_answer());
}

#[test]
fn missing_required_arguments_are_named() {
    let cases: &[(&str, &str, &str)] = &[
        ("find_node", "", "a.target"),
        ("get_peers", "", "a.info_hash"),
        ("get", "", "a.target"),
        (
            "announce_peer",
            "9:info_hash20:mnopqrstuvwxyz1234565:token1:x",
            "a.port",
        ),
        (
            "announce_peer",
            "9:info_hash20:mnopqrstuvwxyz1234564:porti1e",
            "a.token",
        ),
        ("put", "1:vi1e", "a.token"),
        ("put", "5:token1:x", "a.v"),
    ];
    for (method, args, key) in cases {
        let e = decode_err(&query_wire(method, args));
        assert_eq!(e.kind, DecodeErrorKind::MissingKey(key), "{method} {args}");
        assert!(e.should_answer());
    }
}

#[test]
fn announce_port_outside_u16_is_rejected() {
    let wire = query_wire(
        "announce_peer",
        "9:info_hash20:mnopqrstuvwxyz1234564:porti65536e5:token1:x",
    );
    assert_eq!(
        decode_err(&wire).kind,
        DecodeErrorKind::InvalidKey("a.port")
    );
    let wire = query_wire(
        "announce_peer",
        "9:info_hash20:mnopqrstuvwxyz1234564:porti-1e5:token1:x",
    );
    assert_eq!(
        decode_err(&wire).kind,
        DecodeErrorKind::InvalidKey("a.port")
    );
}

#[test]
fn token_longer_than_limit_is_rejected() {
    let token = "x".repeat(dht_proto::message::TOKEN_LEN_MAX + 1);
    let wire = query_wire(
        "announce_peer",
        &format!(
            "9:info_hash20:mnopqrstuvwxyz1234564:porti1e5:token{}:{token}",
            token.len()
        ),
    );
    assert_eq!(
        decode_err(&wire).kind,
        DecodeErrorKind::InvalidKey("a.token")
    );
}

#[test]
fn mutable_put_without_signature_is_rejected() {
    let k = "k".repeat(32);
    let wire = query_wire("put", &format!("1:k32:{k}3:seqi1e5:token1:x1:vi1e"));
    assert_eq!(decode_err(&wire).kind, DecodeErrorKind::MissingKey("a.sig"));
}

#[test]
fn put_with_public_key_of_wrong_length_is_rejected() {
    let wire = query_wire("put", "1:k3:abc5:token1:x1:vi1e");
    assert_eq!(decode_err(&wire).kind, DecodeErrorKind::InvalidKey("a.k"));
}

#[test]
fn oversized_value_and_salt_pass_through_for_the_node_to_answer_205_207() {
    let big = "x".repeat(2000);
    let wire = query_wire("put", &format!("5:token1:x1:v{}:{big}", big.len()));
    let Method::Put(p) = method_of(&wire) else {
        panic!("not a put")
    };
    assert!(p.value.len() > dht_proto::message::VALUE_LEN_MAX);

    let salt = "s".repeat(dht_proto::message::SALT_LEN_MAX + 1);
    let (k, sig) = ("k".repeat(32), "g".repeat(64));
    let wire = query_wire(
        "put",
        &format!(
            "1:k32:{k}4:salt{}:{salt}3:seqi1e3:sig64:{sig}5:token1:x1:vi1e",
            salt.len()
        ),
    );
    let Method::Put(p) = method_of(&wire) else {
        panic!("not a put")
    };
    assert_eq!(p.mutable.unwrap().salt.len(), salt.len());
}

#[test]
fn unknown_method_decodes_for_a_204_answer() {
    assert_eq!(
        method_of(&query_wire("vote", "")),
        Method::Unknown {
            name: b"vote".to_vec()
        }
    );
}

#[test]
fn unknown_keys_are_ignored() {
    // libtorrent adds `n` and `seed` to announce_peer; we know neither.
    let wire = query_wire(
        "announce_peer",
        "9:info_hash20:mnopqrstuvwxyz1234561:n3:foo4:porti1e4:seedi1e5:token1:x",
    );
    assert!(matches!(
        method_of(&wire),
        Method::AnnouncePeer { port: 1, .. }
    ));
    // An unknown top-level key too.
    assert!(
        Message::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:q1:zi0ee").is_ok()
    );
}

#[test]
fn response_errors_are_never_answered() {
    let e = decode_err(b"d1:rde1:t2:aa1:y1:re");
    assert_eq!(e.kind, DecodeErrorKind::MissingKey("r.id"));
    assert_eq!(e.transaction_id.as_deref(), Some(&b"aa"[..]));
    assert!(!e.is_query);
    assert!(!e.should_answer());
    let e = decode_err(b"d1:ei201e1:t2:aa1:y1:ee");
    assert_eq!(e.kind, DecodeErrorKind::InvalidKey("e"));
    assert!(!e.should_answer());
}

#[test]
fn invalid_bencode_carries_no_transaction_id() {
    let e = decode_err(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:q");
    assert_eq!(
        e.kind,
        DecodeErrorKind::Bencode(BencodeError::UnexpectedEnd)
    );
    assert_eq!(e.transaction_id, None);
    assert!(!e.should_answer());
    let e = decode_err(b"li1ee");
    assert_eq!(e.kind, DecodeErrorKind::NotADict);
    assert!(!e.should_answer());
}

/// BEP 44 rejects a put whose `v` is not canonical bencode; the query is whole and its `t`
/// readable, so it is answered with 203 rather than dropped.
#[test]
fn a_query_with_non_canonical_bencode_inside_is_answerable() {
    let put = |v: &str| {
        format!("d1:ad2:id20:abcdefghij01234567895:token2:tk1:v{v}e1:q3:put1:t2:aa1:y1:qe")
            .into_bytes()
    };
    assert!(
        Message::decode(&put("d1:ai1e1:bi2ee")).is_ok(),
        "the canonical form decodes"
    );
    // Unsorted keys, a leading zero, a negative zero.
    for bad in ["d1:bi1e1:ai2ee", "i01e", "li-0ee"] {
        let e = decode_err(&put(bad));
        assert!(
            matches!(e.kind, DecodeErrorKind::Bencode(_)),
            "{bad}: {e:?}"
        );
        assert_eq!(e.transaction_id.as_deref(), Some(&b"aa"[..]), "{bad}");
        assert!(e.should_answer(), "{bad}");
    }
    // A non-canonical response is still never answered, and neither is a query with bytes
    // after its end or one that is cut short.
    let e = decode_err(b"d1:rd2:id20:abcdefghij01234567891:vi01ee1:t2:aa1:y1:re");
    assert!(!e.should_answer());
    let mut trailing = put("i01e");
    trailing.extend_from_slice(b"xx");
    assert!(!decode_err(&trailing).should_answer());
    let cut = put("i01e");
    assert!(!decode_err(&cut[..cut.len() - 1]).should_answer());
}

#[test]
fn over_long_transaction_id_is_not_echoed() {
    let t = "t".repeat(dht_proto::message::TRANSACTION_ID_LEN_MAX + 1);
    let wire = format!("d1:ad2:id{ID}e1:q4:ping1:t{}:{t}1:y1:qe", t.len());
    let e = decode_err(wire.as_bytes());
    assert_eq!(e.kind, DecodeErrorKind::InvalidKey("t"));
    assert_eq!(e.transaction_id, None);
    assert!(e.is_query);
    assert!(!e.should_answer());
}

#[test]
fn missing_or_unknown_type_is_rejected_and_query_like_is_answerable() {
    let e = decode_err(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aae");
    assert_eq!(e.kind, DecodeErrorKind::MissingKey("y"));
    assert!(e.should_answer(), "has `q`, so it looks like a query");
    let e = decode_err(b"d1:t2:aa1:y1:xe");
    assert_eq!(e.kind, DecodeErrorKind::UnknownType);
    assert!(!e.should_answer());
}

#[test]
fn empty_transaction_id_is_accepted_and_echoed() {
    let wire = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t0:1:y1:qe";
    let m = Message::decode(wire).unwrap();
    assert!(m.transaction_id.is_empty());
    assert_eq!(m.encode(), wire);
}

#[test]
fn partial_trailing_node_entry_is_dropped() {
    let mut wire = b"d1:rd2:id20:abcdefghij01234567895:nodes30:".to_vec();
    wire.extend_from_slice(b"AAAAAAAAAAAAAAAAAAAA\x7f\x00\x00\x01\x1a\xe1ABCD");
    wire.extend_from_slice(b"e1:t2:aa1:y1:re");
    let Body::Response(r) = Message::decode(&wire).unwrap().body else {
        panic!("not a response")
    };
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(
        r.nodes[0].addr,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 6881))
    );
}

#[test]
fn peer_values_of_other_lengths_are_skipped() {
    let wire =
        b"d1:rd2:id20:abcdefghij01234567896:valuesl5:abcde6:axje.ui3e7:abcdefgee1:t2:aa1:y1:re";
    let Body::Response(r) = Message::decode(wire).unwrap().body else {
        panic!("not a response")
    };
    assert_eq!(
        r.peers,
        vec![SocketAddr::from((Ipv4Addr::new(97, 120, 106, 101), 0x2e75))]
    );
}

#[test]
fn error_with_non_utf8_message_is_read_lossily() {
    let m = Message::decode(b"d1:eli203e3:a\xffbe1:t2:aa1:y1:ee").unwrap();
    let Body::Error(e) = m.body else {
        panic!("not an error")
    };
    assert_eq!(e.code, 203);
    assert_eq!(e.message, "a\u{fffd}b");
}

#[test]
fn long_version_and_malformed_ip_are_ignored() {
    let m = Message::decode(
        b"d2:ip5:abcde1:rd2:id20:abcdefghij0123456789e1:t2:aa1:v17:abcdefghijklmnopq1:y1:re",
    )
    .unwrap();
    assert_eq!(m.version, None);
    assert_eq!(m.requester_ip, None);
}

#[test]
fn read_only_flag_requires_integer_one() {
    let m = Message::decode(b"d1:rd2:id20:abcdefghij0123456789e2:roi2e1:t2:aa1:y1:re").unwrap();
    assert!(!m.read_only);
    let m = Message::decode(b"d1:rd2:id20:abcdefghij0123456789e2:roi1e1:t2:aa1:y1:re").unwrap();
    assert!(m.read_only);
}

#[test]
fn non_canonical_datagram_is_rejected() {
    // Keys out of order (`t` before `a`), as a sloppy encoder might write them.
    let e = decode_err(b"d1:t2:aa1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:qe");
    assert_eq!(e.kind, DecodeErrorKind::Bencode(BencodeError::UnsortedKeys));
}
