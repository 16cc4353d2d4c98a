//! The hand-made part of the seed corpus: valid inputs a fuzzer would take long to find, one
//! list per target. `tests/corpus_replay.rs` writes them to `fuzz/corpus/<target>/seed_*` when
//! asked (see `docs/fuzzing.md`) and always runs them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use dht_node::disk::fuzzing::{
    contact_key, encode_contact, encode_format, encode_identity, encode_item, encode_peer,
    item_key, peer_key, ItemRecord,
};
use dht_proto::bep44::{immutable_target, MutableItem};
use dht_proto::message::{
    Body, ErrorBody, Message, Method, MutableArgs, NodeInfo, PutArgs, Query, Response, Want,
};
use dht_proto::store::ItemValue;
use dht_proto::Id;

use crate::node::{contact, info_hash, mutable_items, signing_key, IMMUTABLE_VALUES};

/// A named seed input.
pub type Seed = (String, Vec<u8>);

/// The hand-made seeds of `target` (empty for a target that has none).
pub fn seeds(target: &str) -> Vec<Seed> {
    match target {
        "bencode" => bencode(),
        "krpc" => krpc(),
        "node" => node(),
        "disk_record" => disk_record(),
        _ => Vec::new(),
    }
}

fn named(name: &str, bytes: impl Into<Vec<u8>>) -> Seed {
    (name.to_owned(), bytes.into())
}

fn bencode() -> Vec<Seed> {
    let deep = format!("{}i1e{}", "l".repeat(31), "e".repeat(31));
    vec![
        named("int_min", "i-9223372036854775808e"),
        named("int_max", "i9223372036854775807e"),
        named("empty_string", "0:"),
        named("nested", "d1:ad1:bl1:ci-1eee1:c0:e"),
        named("depth_32", deep),
        named("empty_containers", "ldelee"),
        // Near misses the decoder must refuse: each has a canonical twin it would re-encode to.
        named("reject_length_leading_zero", "01:a"),
        named("reject_int_leading_zero", "i01e"),
        named("reject_negative_zero", "i-0e"),
        named("reject_unsorted_keys", "d1:b0:1:a0:e"),
        named("reject_repeated_key", "d1:a0:1:a0:e"),
        named("reject_trailing", "i1ei2e"),
    ]
}

/// A query envelope from a fixed sender, with transaction ID `TXID`-free bytes.
fn query(tid: &[u8], method: Method) -> Message {
    Message {
        transaction_id: tid.to_vec(),
        version: Some(b"LT\x01\x02".to_vec()),
        requester_ip: None,
        read_only: false,
        body: Body::Query(Query {
            sender_id: Id([0x11; 20]),
            method,
        }),
    }
}

/// A response envelope; with `tid` = `TXID` it answers the node's last query once the `node`
/// target has substituted the placeholder.
fn response(tid: &[u8], r: Response) -> Message {
    Message {
        transaction_id: tid.to_vec(),
        version: Some(b"UT\x00\x01".to_vec()),
        requester_ip: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(9, 8, 7, 6)), 4000)),
        read_only: false,
        body: Body::Response(r),
    }
}

fn mutable_put(m: &MutableItem, token: &[u8], cas: Option<i64>) -> Method {
    Method::Put(PutArgs {
        token: token.to_vec(),
        value: m.value.clone(),
        mutable: Some(MutableArgs {
            public_key: m.public_key,
            signature: m.signature,
            seq: m.seq,
            salt: m.salt.clone(),
            cas,
        }),
        target: Some(m.target()),
    })
}

/// Messages that exercise what the dht-proto corpus covers least: BEP 44 puts and replies with
/// real signatures, `want` in both families, errors.
fn messages() -> Vec<(&'static str, Message)> {
    let newer = MutableItem::sign(&signing_key(), b"", 2, b"5:world".to_vec()).expect("valid");
    let nodes: Vec<NodeInfo> = (0..8).step_by(2).map(contact).collect();
    let nodes6: Vec<NodeInfo> = (1..8).step_by(2).map(contact).collect();
    let want = Some(Want { v4: true, v6: true });
    vec![
        ("ping", query(b"aa", Method::Ping)),
        (
            "find_node_want",
            query(
                b"ab",
                Method::FindNode {
                    target: Id([0x5b; 20]),
                    want,
                },
            ),
        ),
        (
            "get_peers",
            query(
                b"ac",
                Method::GetPeers {
                    info_hash: info_hash(0),
                    want: None,
                },
            ),
        ),
        (
            "announce_token",
            query(
                b"ad",
                Method::AnnouncePeer {
                    info_hash: info_hash(0),
                    port: 6881,
                    implied_port: true,
                    token: b"TOKN".to_vec(),
                },
            ),
        ),
        (
            "get_mutable",
            query(
                b"ae",
                Method::Get {
                    target: newer.target(),
                    seq: Some(0),
                },
            ),
        ),
        (
            "put_mutable_token",
            query(b"af", mutable_put(&newer, b"TOKN", Some(1))),
        ),
        (
            "put_immutable_token",
            query(
                b"ag",
                Method::Put(PutArgs {
                    token: b"TOKN".to_vec(),
                    value: b"6:fuzzed".to_vec(),
                    mutable: None,
                    target: Some(immutable_target(b"6:fuzzed")),
                }),
            ),
        ),
        (
            "get_immutable",
            query(
                b"ah",
                Method::Get {
                    target: immutable_target(b"6:fuzzed"),
                    seq: None,
                },
            ),
        ),
        (
            "reply_nodes",
            response(
                b"TXID",
                Response {
                    sender_id: contact(2).id,
                    nodes,
                    nodes6,
                    token: Some(b"tok".to_vec()),
                    peers: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)), 5)],
                    ..Response::default()
                },
            ),
        ),
        (
            "reply_mutable",
            response(
                b"TXID",
                Response {
                    sender_id: contact(4).id,
                    token: Some(b"tok".to_vec()),
                    value: Some(newer.value.clone()),
                    public_key: Some(newer.public_key),
                    signature: Some(newer.signature),
                    seq: Some(newer.seq),
                    ..Response::default()
                },
            ),
        ),
        (
            "reply_immutable",
            response(
                b"TXID",
                Response {
                    sender_id: contact(6).id,
                    value: Some(IMMUTABLE_VALUES[0].to_vec()),
                    ..Response::default()
                },
            ),
        ),
        (
            "error_reply",
            Message {
                transaction_id: b"TXID".to_vec(),
                version: None,
                requester_ip: None,
                read_only: false,
                body: Body::Error(ErrorBody {
                    code: 302,
                    message: "seq too low".to_owned(),
                }),
            },
        ),
        ("read_only_ping", {
            let mut m = query(b"ai", Method::Ping);
            m.read_only = true;
            m
        }),
    ]
}

fn krpc() -> Vec<Seed> {
    messages()
        .into_iter()
        .map(|(name, m)| named(name, m.encode()))
        .collect()
}

/// A datagram step of the `node` target from source `control % 16`.
fn datagram(control: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![control];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

fn node() -> Vec<Seed> {
    let m: std::collections::BTreeMap<&str, Vec<u8>> = messages()
        .into_iter()
        .map(|(n, m)| (n, m.encode()))
        .collect();
    // Control bytes: 0x02 a public IPv4 source, 0x03 a public IPv6 one, 0x09 the address of the
    // node's last query, 0xD1 start get_peers, 0xD5 start get_mutable, 0xE9 ten seconds, 0xFF
    // about 102 seconds (past the maintenance interval).
    let mut seeds = Vec::new();
    for (name, bytes) in &m {
        seeds.push(named(&format!("one_{name}"), datagram(0x02, bytes)));
    }
    let mut announce = datagram(0x02, &m["get_peers"]);
    announce.extend(datagram(0x02, &m["announce_token"]));
    seeds.push(named("get_peers_then_announce", announce));
    let mut put = datagram(0x03, &m["get_mutable"]);
    put.extend(datagram(0x03, &m["put_mutable_token"]));
    put.extend(datagram(0x02, &m["get_immutable"]));
    put.extend(datagram(0x02, &m["put_immutable_token"]));
    seeds.push(named("get_then_put", put));
    // Each reply follows a command that sends a fresh query: a reply may end a lookup without a
    // new query, and a second answer to one query is (rightly) unexpected.
    let mut lookup = vec![0xD1];
    lookup.extend(datagram(0x09, &m["reply_nodes"]));
    lookup.push(0xD0);
    lookup.extend(datagram(0x09, &m["error_reply"]));
    lookup.extend([0xE9, 0xD9]);
    lookup.extend(datagram(0x09, &m["reply_nodes"]));
    lookup.push(0xE9);
    seeds.push(named("get_peers_lookup_replies", lookup));
    let mut mutable = vec![0xD5];
    mutable.extend(datagram(0x09, &m["reply_mutable"]));
    // get_immutable (0xD3) of a value the node holds ends without a query: a find_node
    // (0xD8) sends the fresh query that the value reply answers.
    mutable.extend([0xD3, 0xD8]);
    mutable.extend(datagram(0x09, &m["reply_immutable"]));
    mutable.push(0xFF);
    seeds.push(named("get_item_lookups", mutable));
    let mut commands = vec![0xD0];
    commands.extend(datagram(0x09, &m["reply_nodes"]));
    commands.extend([0xD6, 0xD4, 0xD2, 0xD7, 0xF0, 0xFF]);
    commands.extend(datagram(0x09, &m["reply_nodes"]));
    seeds.push(named("commands_and_replies", commands));
    // A reply that brings new contacts, then twenty minutes of maintenance rounds: the contacts
    // turn questionable and are pinged, and the pings time out.
    let mut pings = vec![0xD0];
    pings.extend(datagram(0x09, &m["reply_nodes"]));
    pings.extend([0xFF; 12]);
    seeds.push(named("maintenance_pings", pings));
    // Past the items' two hours: everything expires.
    seeds.push(named("expire_all", vec![0xFF; 80]));
    seeds
}

fn disk_record() -> Vec<Seed> {
    // Selector: record kind in the low 3 bits; bit 3 set would re-seal, so these carry their
    // real checksum and leave the bit clear.
    let mut seeds = Vec::new();
    let keyed = |kind: u8, key: &[u8], value: &[u8]| {
        let mut out = vec![kind, key.len() as u8];
        out.extend_from_slice(key);
        out.extend_from_slice(value);
        out
    };
    let source: IpAddr = "2001:db8::1".parse().expect("address");
    let items = [
        ItemValue::Immutable(IMMUTABLE_VALUES[2].to_vec()),
        ItemValue::Mutable(mutable_items()[1].clone()),
    ];
    for (i, value) in items.into_iter().enumerate() {
        let target = match &value {
            ItemValue::Immutable(v) => immutable_target(v),
            ItemValue::Mutable(m) => m.target(),
        };
        let record = ItemRecord {
            target,
            value,
            expires_unix_ms: 1_700_000_000_123,
            source,
        };
        let encoded = encode_item(&record).expect("within limits");
        seeds.push(named(
            &format!("item_{i}"),
            keyed(0, &item_key(&target), &encoded),
        ));
    }
    for (i, addr) in ["1.2.3.4:6881", "[2001:db8::7]:1"].into_iter().enumerate() {
        let peer: SocketAddr = addr.parse().expect("address");
        let key = peer_key(&info_hash(1), &peer);
        seeds.push(named(
            &format!("peer_{i}"),
            keyed(1, &key, &encode_peer(&key, 77)),
        ));
        seeds.push(named(&format!("peer_key_{i}"), keyed(2, &key, &[])));
        let key = contact_key(i as u32);
        let value = encode_contact(
            &key,
            &NodeInfo {
                id: Id([5; 20]),
                addr: peer,
            },
        );
        seeds.push(named(&format!("contact_{i}"), keyed(3, &key, &value)));
    }
    let mut identity = vec![4];
    identity.extend(encode_identity(&Id([6; 20]), &[9; 32]));
    seeds.push(named("identity", identity));
    let mut format = vec![5];
    format.extend(encode_format(1));
    seeds.push(named("format", format));
    seeds
}
