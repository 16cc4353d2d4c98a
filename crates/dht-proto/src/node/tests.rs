//! The server side of one node, driven with hand-made datagrams: every BEP 44 rule answers with
//! its error code, and nothing malformed gets more than a 203.

use std::net::SocketAddr;

use ed25519_dalek::SigningKey;

use super::{Config, Node};
use crate::bep44::MutableItem;
use crate::id::Id;
use crate::message::{Body, Message, Method, PutArgs, Query, Response, VALUE_LEN_MAX};
use crate::time::Instant;

const PEER: &str = "127.0.0.9:4000";

fn node(config: Config) -> Node {
    Node::new(config, Id([0x11; 20]), 1, Instant::ZERO)
}

fn query(tid: &[u8], method: Method, read_only: bool) -> Vec<u8> {
    query_from(Id([0x22; 20]), tid, method, read_only)
}

fn query_from(sender_id: Id, tid: &[u8], method: Method, read_only: bool) -> Vec<u8> {
    Message {
        transaction_id: tid.to_vec(),
        version: None,
        requester_ip: None,
        read_only,
        body: Body::Query(Query { sender_id, method }),
    }
    .encode()
}

/// Sends one datagram and returns the single reply, decoded.
fn ask(n: &mut Node, bytes: &[u8]) -> Option<Message> {
    n.handle_datagram(Instant::ZERO, PEER.parse().unwrap(), bytes);
    let t = n.poll_transmit()?;
    assert!(n.poll_transmit().is_none(), "one query, one reply");
    assert_eq!(t.to, PEER.parse::<SocketAddr>().unwrap());
    Some(Message::decode(&t.data).expect("our replies decode"))
}

fn error_code(m: &Message) -> Option<i64> {
    match &m.body {
        Body::Error(e) => Some(e.code),
        _ => None,
    }
}

fn response(m: Message) -> Response {
    match m.body {
        Body::Response(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn token_for(n: &mut Node, target: Id) -> Vec<u8> {
    let r = response(ask(n, &query(b"tk", Method::Get { target, seq: None }, false)).unwrap());
    r.token.expect("get returns a token")
}

/// An encoded response from `sender_id` to transaction `tid`, with no contacts or values.
fn empty_answer(tid: Vec<u8>, sender_id: Id) -> Vec<u8> {
    Message {
        transaction_id: tid,
        version: None,
        requester_ip: None,
        read_only: false,
        body: Body::Response(Response {
            sender_id,
            ..Response::default()
        }),
    }
    .encode()
}

fn mutable_put(item: &MutableItem, token: Vec<u8>, cas: Option<i64>) -> Method {
    Method::Put(PutArgs::mutable(item, token, cas))
}

#[test]
fn a_ping_is_answered_with_the_same_transaction_id_and_the_requester_ip() {
    let mut n = node(Config::default());
    for tid in [&b"ab"[..], b"", b"0123456789abcdef"] {
        let m = ask(&mut n, &query(tid, Method::Ping, false)).unwrap();
        assert_eq!(m.transaction_id, tid);
        assert_eq!(m.requester_ip, Some(PEER.parse().unwrap()));
        assert_eq!(response(m).sender_id, Id([0x11; 20]));
    }
    assert_eq!(n.routing_table().len(), 1, "the querier enters the table");
}

#[test]
fn a_read_only_sender_is_answered_but_not_added_and_a_read_only_node_answers_nothing() {
    let mut n = node(Config::default());
    assert!(ask(&mut n, &query(b"aa", Method::Ping, true)).is_some());
    assert_eq!(n.routing_table().len(), 0);
    let mut ro = node(Config {
        read_only: true,
        ..Config::default()
    });
    assert!(ask(&mut ro, &query(b"aa", Method::Ping, false)).is_none());
}

#[test]
fn malformed_queries_get_203_unknown_methods_204_and_garbage_nothing() {
    let mut n = node(Config::default());
    let m = ask(&mut n, b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe").unwrap();
    assert_eq!(error_code(&m), Some(203));
    assert_eq!(m.transaction_id, b"xy");
    let m = ask(
        &mut n,
        &query(
            b"zz",
            Method::Unknown {
                name: b"frobnicate".to_vec(),
            },
            false,
        ),
    )
    .unwrap();
    assert_eq!(error_code(&m), Some(204));
    assert!(ask(&mut n, b"not bencode at all").is_none());
    assert!(
        ask(&mut n, b"d1:y1:re").is_none(),
        "a malformed response is never answered"
    );
    assert_eq!(n.stats().malformed, 3);
}

/// BEP 44: a put whose `v` is not canonical bencode (unsorted keys, a leading zero) is rejected
/// with 203, not ignored.
#[test]
fn a_put_whose_value_is_not_canonical_bencode_is_answered_203() {
    let mut n = node(Config::default());
    for v in ["d1:bi1e1:ai2ee", "i012e"] {
        let put =
            format!("d1:ad2:id20:abcdefghij01234567895:token4:abcd1:v{v}e1:q3:put1:t2:nc1:y1:qe");
        let m = ask(&mut n, put.as_bytes()).expect("an answer");
        assert_eq!(error_code(&m), Some(203), "{v}");
        assert_eq!(m.transaction_id, b"nc");
    }
}

/// BEP 5: a find_node or get_peers reply carries `nodes` even when the table is empty.
#[test]
fn a_node_with_an_empty_table_answers_with_an_empty_nodes_key() {
    let mut n = node(Config::default());
    let target = Id([0x44; 20]);
    for method in [
        Method::FindNode { target, want: None },
        Method::GetPeers {
            info_hash: target,
            want: None,
        },
    ] {
        let m = ask(&mut n, &query(b"en", method, false)).unwrap();
        let bytes = m.encode();
        let r = response(m);
        assert!(r.nodes.is_empty());
        assert!(r.nodes_keys.v4, "the key is there");
        assert!(
            bytes.windows(8).any(|w| w == b"5:nodes0"),
            "nodes is an empty string on the wire: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn immutable_puts_need_a_token_and_at_most_1000_bytes() {
    let mut n = node(Config::default());
    let value = b"5:hello".to_vec();
    let target = Id::sha1(&value);
    let put = |token: Vec<u8>, value: Vec<u8>| {
        Method::Put(PutArgs {
            target: None,
            token,
            value,
            mutable: None,
        })
    };
    let m = ask(
        &mut n,
        &query(b"p1", put(b"forged!!".to_vec(), value.clone()), false),
    )
    .unwrap();
    assert_eq!(error_code(&m), Some(203));
    let token = token_for(&mut n, target);
    let m = ask(&mut n, &query(b"p2", put(token, value.clone()), false)).unwrap();
    assert_eq!(error_code(&m), None);
    assert_eq!(n.storage().item_count(), 1);
    let r = response(
        ask(
            &mut n,
            &query(b"g", Method::Get { target, seq: None }, false),
        )
        .unwrap(),
    );
    assert_eq!(r.value, Some(value.clone()));
    // The optional `target` of the mainline crate's puts: accepted when it names the item,
    // refused with 203 when it does not.
    for (claimed, code) in [(target, None), (Id([9; 20]), Some(203))] {
        let token = token_for(&mut n, target);
        let method = Method::Put(PutArgs {
            target: Some(claimed),
            token,
            value: value.clone(),
            mutable: None,
        });
        let m = ask(&mut n, &query(b"p3", method, false)).unwrap();
        assert_eq!(error_code(&m), code, "claimed {claimed:?}");
    }

    let mut big = format!("{}:", VALUE_LEN_MAX).into_bytes();
    big.extend(std::iter::repeat_n(b'x', VALUE_LEN_MAX));
    let token = token_for(&mut n, Id::sha1(&big));
    let m = ask(&mut n, &query(b"p3", put(token, big), false)).unwrap();
    assert_eq!(error_code(&m), Some(205));
}

#[test]
fn mutable_puts_follow_every_bep44_rule_with_its_code() {
    let mut n = node(Config::default());
    let key = SigningKey::from_bytes(&[9; 32]);
    let v1 = MutableItem::sign(&key, b"salt", 5, b"2:v5".to_vec()).unwrap();
    let target = v1.target();
    let token = token_for(&mut n, target);
    let put = |n: &mut Node, item: &MutableItem, cas: Option<i64>| {
        let m = ask(
            n,
            &query(b"mp", mutable_put(item, token.clone(), cas), false),
        )
        .unwrap();
        error_code(&m)
    };
    assert_eq!(put(&mut n, &v1, None), None, "first put stored");

    let mut forged = v1.clone();
    forged.value = b"2:vX".to_vec();
    assert_eq!(put(&mut n, &forged, None), Some(206), "bad signature");

    let older = MutableItem::sign(&key, b"salt", 4, b"2:v4".to_vec()).unwrap();
    assert_eq!(put(&mut n, &older, None), Some(302), "lower seq");

    let same_seq_other = MutableItem::sign(&key, b"salt", 5, b"2:vY".to_vec()).unwrap();
    assert_eq!(
        put(&mut n, &same_seq_other, None),
        Some(302),
        "same seq, other value"
    );
    assert_eq!(
        put(&mut n, &v1, None),
        None,
        "same seq, same value refreshes"
    );
    // A re-put of the stored item skips the signature check, so that shortcut must compare the
    // signature too: the same seq and value under a broken signature is still refused, by the
    // server and by our own put.
    let mut bad_signature = v1.clone();
    bad_signature.signature[0] ^= 1;
    assert_eq!(
        put(&mut n, &bad_signature, None),
        Some(206),
        "same item, bad signature"
    );
    assert!(n.put_mutable(Instant::ZERO, bad_signature, None).is_err());
    // Nor does it skip the rules: the very item stored, with a cas that does not match or a
    // target that is not its own, is refused as before.
    assert_eq!(
        put(&mut n, &v1, Some(4)),
        Some(301),
        "same item, cas mismatch"
    );
    let wrong_target = ask(
        &mut n,
        &query(
            b"mt",
            Method::Put(PutArgs {
                target: Some(Id([0x77; 20])),
                ..PutArgs::mutable(&v1, token.clone(), None)
            }),
            false,
        ),
    )
    .unwrap();
    assert_eq!(
        error_code(&wrong_target),
        Some(203),
        "same item, another target"
    );
    assert!(n.put_mutable(Instant::ZERO, v1.clone(), None).is_ok());
    while n.poll_transmit().is_some() {}

    let v6 = MutableItem::sign(&key, b"salt", 6, b"2:v6".to_vec()).unwrap();
    assert_eq!(put(&mut n, &v6, Some(4)), Some(301), "cas mismatch");
    assert_eq!(put(&mut n, &v6, Some(5)), None, "cas match");

    let long_salt = vec![b's'; 65];
    let item = MutableItem {
        salt: long_salt,
        ..v6.clone()
    };
    let m = ask(
        &mut n,
        &query(b"ls", mutable_put(&item, token.clone(), None), false),
    )
    .unwrap();
    assert_eq!(error_code(&m), Some(207), "salt too big");

    // A get with seq at or above the stored one gets the seq but not the value.
    let r = response(
        ask(
            &mut n,
            &query(
                b"g",
                Method::Get {
                    target,
                    seq: Some(6),
                },
                false,
            ),
        )
        .unwrap(),
    );
    assert_eq!((r.seq, r.value), (Some(6), None));
    let r = response(
        ask(
            &mut n,
            &query(
                b"g",
                Method::Get {
                    target,
                    seq: Some(5),
                },
                false,
            ),
        )
        .unwrap(),
    );
    assert_eq!(r.value, Some(b"2:v6".to_vec()));
}

#[test]
fn announces_need_a_token_and_honour_implied_port() {
    let mut n = node(Config::default());
    let ih = Id([0x33; 20]);
    let r = response(
        ask(
            &mut n,
            &query(
                b"gp",
                Method::GetPeers {
                    info_hash: ih,
                    want: None,
                },
                false,
            ),
        )
        .unwrap(),
    );
    let token = r.token.unwrap();
    let announce = |token: Vec<u8>, implied: bool| Method::AnnouncePeer {
        info_hash: ih,
        port: 1234,
        implied_port: implied,
        token,
    };
    let m = ask(
        &mut n,
        &query(b"a1", announce(b"nope".to_vec(), false), false),
    )
    .unwrap();
    assert_eq!(error_code(&m), Some(203));
    assert!(n.storage().peers(&ih, 10).is_empty());
    ask(&mut n, &query(b"a2", announce(token.clone(), true), false)).unwrap();
    assert_eq!(n.storage().peers(&ih, 10), vec![PEER.parse().unwrap()]);
}

#[test]
fn a_node_that_misses_a_request_and_its_resend_is_dropped_at_once() {
    let mut n = node(Config::default());
    // The peer queries us, so it enters the table (unverified).
    ask(&mut n, &query(b"q1", Method::Ping, false)).unwrap();
    let peer = Id([0x22; 20]);
    assert!(n.routing_table().get(&peer).is_some());
    n.find_node(Instant::ZERO, Id([0x23; 20]));
    let sent: Vec<_> = std::iter::from_fn(|| n.poll_transmit()).collect();
    assert_eq!(sent.len(), 1, "the lookup asks the one contact");
    // By the stall time the request has been sent once more, the very same bytes (encoded
    // again from the target, not kept)...
    let stall = Instant::ZERO + Config::default().request_stall;
    n.handle_timeout(stall);
    let resent: Vec<_> = std::iter::from_fn(|| n.poll_transmit()).collect();
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].to, PEER.parse::<SocketAddr>().unwrap());
    assert_eq!(resent[0].data, sent[0].data);
    assert!(n.routing_table().get(&peer).is_some());
    // ...and when both went unanswered, the contact counts as bad and leaves the table.
    n.handle_timeout(Instant::ZERO + Config::default().request_timeout);
    assert!(
        n.routing_table().get(&peer).is_none(),
        "two unanswered tries make a contact bad (BEP 5: try once more, then discard)"
    );
}

/// Counts the datagrams waiting, by kind: (`get` queries, responses, anything else).
fn drain_kinds(n: &mut Node) -> (usize, usize, usize) {
    let (mut gets, mut replies, mut other) = (0, 0, 0);
    while let Some(t) = n.poll_transmit() {
        assert_eq!(t.to, PEER.parse::<SocketAddr>().unwrap());
        match Message::decode(&t.data).unwrap().body {
            Body::Query(Query {
                method: Method::Get { .. },
                ..
            }) => gets += 1,
            Body::Response(_) => replies += 1,
            _ => other += 1,
        }
    }
    (gets, replies, other)
}

#[test]
fn a_newcomer_next_to_many_stored_keys_is_sent_at_most_eight_hand_offs_and_a_stranger_none() {
    use crate::store::{ItemValue, StoredItem};
    let mut n = node(Config::default());
    // 30 stored items whose keys sit right next to the peer's ID 0x22...22.
    for i in 0..30u8 {
        let mut target = Id([0x22; 20]);
        target.0[19] = i;
        n.restore_item(StoredItem {
            target,
            value: ItemValue::Immutable(b"1:x".to_vec()),
            expires: Instant::from_micros(7_200_000_000),
            source: "127.0.0.5".parse().unwrap(),
        });
    }
    // A stranger's query proves nothing about its address: only the reply goes back.
    n.handle_datagram(
        Instant::ZERO,
        PEER.parse().unwrap(),
        &query(b"pq", Method::Ping, false),
    );
    assert_eq!(
        drain_kinds(&mut n),
        (0, 1, 0),
        "the ping is answered, nothing more"
    );
    // Once it answers a query of ours it is a newcomer with a proven address.
    n.bootstrap(Instant::ZERO, &[], &[PEER.parse().unwrap()]);
    let asked = Message::decode(&n.poll_transmit().unwrap().data).unwrap();
    let answer = empty_answer(asked.transaction_id, Id([0x22; 20]));
    n.handle_datagram(Instant::ZERO, PEER.parse().unwrap(), &answer);
    let (gets, _, _) = drain_kinds(&mut n);
    assert_eq!(gets, super::handoff::HANDOFF_ITEMS_PER_NEWCOMER_MAX);
    // The same node again is no newcomer: nothing more is handed off.
    n.handle_datagram(
        Instant::ZERO,
        PEER.parse().unwrap(),
        &query(b"pr", Method::Ping, false),
    );
    assert_eq!(
        drain_kinds(&mut n),
        (0, 1, 0),
        "only the second ping's reply"
    );
}

#[test]
fn a_get_on_a_node_whose_bootstrap_is_unanswered_asks_the_routers_instead_of_failing() {
    let mut n = node(Config::default());
    let router: SocketAddr = "127.0.0.7:6881".parse().unwrap();
    n.bootstrap(Instant::ZERO, &[], &[router]);
    while n.poll_transmit().is_some() {}
    let target = Id([5; 20]);
    n.get_immutable(Instant::ZERO, target);
    assert!(n.poll_event().is_none(), "the get must not end at once");
    let t = n.poll_transmit().expect("a request to the router");
    assert_eq!(t.to, router);
    match Message::decode(&t.data).unwrap().body {
        Body::Query(Query {
            method: Method::FindNode { target: t, .. },
            ..
        }) => assert_eq!(t, target),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_get_that_finds_nothing_among_the_k_closest_asks_the_next_k_before_it_ends() {
    use crate::message::NodeInfo;
    let mut n = node(Config::default());
    // 16 contacts at distinct addresses, every one answering without the value: 8 in
    // bucket 1 (0x40..), the target's closest, and 8 in bucket 0 (0x80..), the next.
    let id_of = |i: u8| {
        let mut id = Id([0x40; 20]);
        id.0[0] = if i < 8 { 0x40 + i } else { 0x80 + i };
        id
    };
    for i in 0..16u8 {
        let id = id_of(i);
        let addr: SocketAddr = format!("127.0.1.{}:7000", i + 1).parse().unwrap();
        assert!(n.restore_contact(Instant::ZERO, NodeInfo { id, addr }));
    }
    let target = Id([0x40; 20]);
    let q = n.get_immutable(Instant::ZERO, target);
    let mut asked = std::collections::BTreeSet::new();
    // Bounded: each round answers every request sent; 16 contacts need at most 16 rounds.
    for _ in 0..16 {
        let out: Vec<_> = std::iter::from_fn(|| n.poll_transmit()).collect();
        if out.is_empty() {
            break;
        }
        for t in out {
            let m = Message::decode(&t.data).unwrap();
            let Body::Query(Query {
                method: Method::Get { .. },
                ..
            }) = m.body
            else {
                panic!("a get sends gets");
            };
            let i = match t.to {
                SocketAddr::V4(a) => a.ip().octets()[3] - 1,
                SocketAddr::V6(_) => unreachable!(),
            };
            asked.insert(i);
            let id = id_of(i);
            let reply = Message {
                transaction_id: m.transaction_id,
                version: None,
                requester_ip: None,
                read_only: false,
                body: Body::Response(Response {
                    sender_id: id,
                    token: Some(b"tk".to_vec()),
                    ..Response::default()
                }),
            };
            n.handle_datagram(Instant::ZERO, t.to, &reply.encode());
        }
    }
    let e = n.poll_event().expect("the get ended");
    assert_eq!(e.query, q);
    assert!(matches!(
        e.outcome,
        super::Outcome::GetImmutable { value: None }
    ));
    assert_eq!(asked.len(), 16, "the 8 closest, then the next 8: {asked:?}");
}

/// Eight contacts in bucket 1 (IDs 0x40..), at 127.0.2.1-8, for the timing tests below.
fn eight_contacts(n: &mut Node) -> Vec<crate::message::NodeInfo> {
    (0..8u8)
        .map(|i| {
            let mut id = Id([0x40; 20]);
            id.0[0] = 0x40 + i;
            let addr: SocketAddr = format!("127.0.2.{}:7000", i + 1).parse().unwrap();
            let c = crate::message::NodeInfo { id, addr };
            assert!(n.restore_contact(Instant::ZERO, c));
            c
        })
        .collect()
}

/// Answers every datagram the node sends, one round every 100 ms, with `reply(round, query,
/// sender)` (None: leave it unanswered), until no command runs (at most 100 rounds, 10 s).
fn answer_rounds(
    n: &mut Node,
    contacts: &[crate::message::NodeInfo],
    mut reply: impl FnMut(u32, &Query, Id) -> Option<Response>,
) {
    for round in 1..=100u32 {
        let now = Instant::from_millis(100 * u64::from(round));
        let out: Vec<_> = std::iter::from_fn(|| n.poll_transmit()).collect();
        if out.is_empty() {
            n.handle_timeout(now);
            if n.commands_running() == 0 {
                return;
            }
            continue;
        }
        for t in out {
            let m = Message::decode(&t.data).unwrap();
            let Body::Query(q) = m.body else { continue };
            let id = contacts
                .iter()
                .find(|c| c.addr == t.to)
                .expect("a contact")
                .id;
            if let Some(r) = reply(round, &q, id) {
                let msg = Message {
                    transaction_id: m.transaction_id,
                    version: None,
                    requester_ip: None,
                    read_only: false,
                    body: Body::Response(Response { sender_id: id, ..r }),
                };
                n.handle_datagram(now, t.to, &msg.encode());
            }
        }
        if n.commands_running() == 0 {
            return;
        }
    }
}

#[test]
fn a_mutable_get_reports_when_its_first_value_verified_not_only_when_it_ended() {
    let mut n = node(Config::default());
    let contacts = eight_contacts(&mut n);
    let key = SigningKey::from_bytes(&[3; 32]);
    let item = MutableItem::sign(&key, b"", 1, b"2:hi".to_vec()).unwrap();
    let q = n.get_mutable(Instant::ZERO, item.public_key, b"");
    let mut served = false;
    answer_rounds(&mut n, &contacts, |_, _, _| {
        let mut r = Response {
            token: Some(b"tk".to_vec()),
            ..Response::default()
        };
        // Only the first answer of all carries the item.
        if !served {
            served = true;
            r.value = Some(item.value.clone());
            r.public_key = Some(item.public_key);
            r.signature = Some(item.signature);
            r.seq = Some(item.seq);
        }
        Some(r)
    });
    let e = n.poll_event().expect("the get ended");
    assert_eq!(e.query, q);
    assert!(matches!(
        e.outcome,
        super::Outcome::GetMutable { item: Some(_) }
    ));
    assert_eq!(
        e.stats.first_value_after,
        Some(core::time::Duration::from_millis(100))
    );
    assert!(
        e.stats.duration > core::time::Duration::from_millis(100),
        "a mutable get asks on for a higher seq: {:?}",
        e.stats.duration
    );
    assert_eq!(e.stats.stored_k_after, None);
}

#[test]
fn a_put_reports_when_k_nodes_acknowledged_and_none_when_fewer_did() {
    for refusals in [0u8, 1] {
        let mut n = node(Config::default());
        let contacts = eight_contacts(&mut n);
        n.put_immutable(Instant::ZERO, b"5:hello".to_vec()).unwrap();
        // With a refusal, the first node asked to store never answers (its resend neither).
        let mut silent: Option<Id> = None;
        let mut store_round = 0;
        answer_rounds(&mut n, &contacts, |round, q, id| match q.method {
            Method::Put(_) => {
                if refusals == 1 && *silent.get_or_insert(id) == id {
                    return None;
                }
                store_round = round;
                Some(Response::default())
            }
            _ => Some(Response {
                token: Some(b"tk".to_vec()),
                ..Response::default()
            }),
        });
        let e = n.poll_event().expect("the put ended");
        match e.outcome {
            super::Outcome::Stored { stored_at, .. } => {
                assert_eq!(stored_at, 8 - u32::from(refusals))
            }
            other => panic!("unexpected {other:?}"),
        }
        let want = (refusals == 0)
            .then(|| core::time::Duration::from_millis(100 * u64::from(store_round)));
        assert_eq!(e.stats.stored_k_after, want, "refusals {refusals}");
        assert!(e.stats.duration >= want.unwrap_or_default());
        assert_eq!(e.stats.first_value_after, None);
    }
}

#[test]
fn a_get_asks_past_values_that_fail_verification_and_counts_them() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let item = MutableItem::sign(&key, b"", 2, b"2:ok".to_vec()).unwrap();
    let other =
        MutableItem::sign(&SigningKey::from_bytes(&[4; 32]), b"", 9, b"2:no".to_vec()).unwrap();
    let mut bad_signature = item.clone();
    bad_signature.value = b"3:bad".to_vec();
    bad_signature.seq = 5;
    // Forged answers first, one for each way a value can fail; the last contact has the truth.
    let mutable_answers = [bad_signature, other, item.clone()];
    let mut n = node(Config::default());
    let contacts = eight_contacts(&mut n);
    n.get_mutable(Instant::ZERO, item.public_key, b"");
    let mut sent = 0;
    answer_rounds(&mut n, &contacts, |_, _, _| {
        let mut r = Response {
            token: Some(b"tk".to_vec()),
            ..Response::default()
        };
        match sent {
            0..=2 => {
                let m = &mutable_answers[sent];
                r.value = Some(m.value.clone());
                r.public_key = Some(m.public_key);
                r.signature = Some(m.signature);
                r.seq = Some(m.seq);
            }
            // A value with no signature at all.
            3 => r.value = Some(b"4:bare".to_vec()),
            _ => {}
        }
        sent += 1;
        Some(r)
    });
    let e = n.poll_event().expect("the get ended");
    match e.outcome {
        super::Outcome::GetMutable { item: Some(got) } => assert_eq!(got, item),
        other => panic!("the forgeries won: {other:?}"),
    }
    assert_eq!(e.stats.forgeries, 3);

    // An immutable get: a value whose hash is not the key is skipped; the next one is taken.
    let value = b"5:hello".to_vec();
    let mut n = node(Config::default());
    let contacts = eight_contacts(&mut n);
    n.get_immutable(Instant::ZERO, crate::bep44::immutable_target(&value));
    let mut sent = 0;
    answer_rounds(&mut n, &contacts, |_, _, _| {
        let v = if sent == 0 {
            b"5:hallo".to_vec()
        } else {
            value.clone()
        };
        sent += 1;
        Some(Response {
            value: Some(v),
            ..Response::default()
        })
    });
    let e = n.poll_event().expect("the get ended");
    assert_eq!(
        e.outcome,
        super::Outcome::GetImmutable { value: Some(value) }
    );
    assert_eq!(e.stats.forgeries, 1);
}

#[test]
fn a_contact_known_only_from_its_queries_is_passed_on_while_it_keeps_querying() {
    use crate::message::NodeInfo;
    use crate::routing::QUERIED_ONLY_LISTED_FOR;
    let mut n = node(Config::default());
    // Known only from its query (so never pinged by us), and one that answered us.
    let stranger: SocketAddr = PEER.parse().unwrap();
    n.handle_datagram(Instant::ZERO, stranger, &query(b"p1", Method::Ping, false));
    while n.poll_transmit().is_some() {}
    let answered = NodeInfo {
        id: Id([0x23; 20]),
        addr: "127.0.0.10:4000".parse().unwrap(),
    };
    assert!(n.restore_contact(Instant::ZERO, answered));
    // A third node asks for the closest to the stranger's ID, at `at`.
    let asker: SocketAddr = "127.0.0.11:4000".parse().unwrap();
    let mut listed = |at: Instant| -> Vec<SocketAddr> {
        let target = Id([0x22; 20]);
        let method = Method::FindNode { target, want: None };
        n.handle_datagram(at, asker, &query_from(Id([0x33; 20]), b"fn", method, false));
        let t = n.poll_transmit().expect("an answer");
        while n.poll_transmit().is_some() {}
        response(Message::decode(&t.data).unwrap())
            .nodes
            .iter()
            .map(|c| c.addr)
            .collect()
    };
    let soon = Instant::ZERO + QUERIED_ONLY_LISTED_FOR / 2;
    let at_soon = listed(soon);
    assert!(at_soon.contains(&stranger), "a recent querier is passed on");
    assert!(
        at_soon.contains(&answered.addr),
        "so is a contact that answered us, silent for less than four good windows"
    );
    let late = Instant::ZERO + QUERIED_ONLY_LISTED_FOR + core::time::Duration::from_secs(1);
    let at_late = listed(late);
    assert!(
        !at_late.contains(&stranger),
        "a querier silent for longer is not: it may have left, and nobody asks it"
    );
    // Four windows of BEP 5's 15 minutes are the same hour.
    assert!(
        !at_late.contains(&answered.addr),
        "nor is a contact that answered us, silent for four good windows"
    );
}

/// Runs the node second by second from `from` to `until`, answering every query to one of
/// `answering` with an empty response, and returns the seconds at which a lookup of the node's
/// own ID sent a request.
fn self_lookups(
    n: &mut Node,
    answering: &[crate::message::NodeInfo],
    from: u64,
    until: u64,
) -> Vec<u64> {
    let own = n.id();
    let mut seen = Vec::new();
    for s in from..until {
        let now = Instant::from_millis(1000 * s);
        n.handle_timeout(now);
        let mut asked_self = false;
        while let Some(t) = n.poll_transmit() {
            let m = Message::decode(&t.data).unwrap();
            let Body::Query(q) = m.body else { continue };
            if matches!(q.method, Method::FindNode { target, .. } if target == own) {
                asked_self = true;
            }
            if let Some(c) = answering.iter().find(|c| c.addr == t.to) {
                n.handle_datagram(now, t.to, &empty_answer(m.transaction_id, c.id));
            }
        }
        if asked_self {
            seen.push(s);
        }
    }
    seen
}

#[test]
fn a_node_looks_up_its_own_id_a_minute_after_joining_and_again_each_window_while_contacts_die() {
    use crate::node::SELF_LOOKUP_AFTER_JOIN;
    use crate::routing::{GOOD_FOR, GOOD_FOR_MIN};
    let mut n = node(Config::default());
    let contacts = eight_contacts(&mut n);
    // The join itself looks up our ID; answered at once, it ends within its first second.
    n.bootstrap(Instant::ZERO, &contacts, &[]);
    let join = self_lookups(&mut n, &contacts, 0, 1);
    assert_eq!(join, vec![0], "the join's own lookup");
    assert_eq!(n.commands_running(), 0, "the join and its refreshes ended");
    // Contacts that keep answering: one more lookup of our ID, at the first maintenance a
    // minute after the join (maintenance runs every minute), and none after it while the good
    // window stays BEP 5's.
    let after = SELF_LOOKUP_AFTER_JOIN.as_secs();
    let calm = self_lookups(&mut n, &contacts, 1, 1800);
    assert_eq!(
        calm.len(),
        1,
        "one lookup of our ID after the join: {calm:?}"
    );
    assert!(
        (after..=after + 61).contains(&calm[0]),
        "a minute after the join, at a maintenance round: {calm:?}"
    );
    assert_eq!(n.routing_table().good_for(), GOOD_FOR);
    // Half the contacts leave, and a lookup finds them gone while they were still good: the
    // window shrinks, and the node looks up its ID once per window to find the nodes around
    // it anew.
    n.find_node(Instant::from_millis(1_800_000), Id([0x77; 20]));
    let dying = self_lookups(&mut n, &contacts[..4], 1800, 3600);
    let window = n.routing_table().good_for();
    assert!(window < GOOD_FOR, "dead good contacts shrink the window");
    assert!(
        dying.len() >= 5,
        "a lookup of our ID each window while contacts die: {dying:?} (window {window:?})"
    );
    for pair in dying.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (GOOD_FOR_MIN.as_secs()..GOOD_FOR.as_secs()).contains(&gap),
            "once per window, never more often than the smallest: {dying:?}"
        );
    }
}

#[test]
fn upkeep_goes_only_to_proven_addresses_and_at_most_eight_at_a_time_to_one() {
    use super::{Purpose, UPKEEP_IN_FLIGHT_PER_ADDRESS_MAX};
    use crate::message::NodeInfo;
    // The callers choose proven contacts already; this is the guard under them, the last line
    // before a datagram of our own initiative leaves.
    let mut n = node(Config::default());
    let now = Instant::ZERO;
    let stranger_id = Id([0x33; 20]);
    let stranger: SocketAddr = "127.0.0.33:4000".parse().unwrap();
    // The stranger queried us: it may be in the table, but its address proved nothing.
    n.handle_datagram(
        now,
        stranger,
        &query_from(stranger_id, b"sq", Method::Ping, false),
    );
    assert_eq!(n.poll_transmit().map(|t| t.to), Some(stranger), "its reply");
    let proven = NodeInfo {
        id: Id([0x22; 20]),
        addr: PEER.parse().unwrap(),
    };
    assert!(n.restore_contact(now, proven), "as if it had answered us");

    // Upkeep to the stranger, under its ID or none: refused, nothing sent, counted.
    for id in [Some(stranger_id), None] {
        assert!(!n.send_query(now, stranger, id, Purpose::Ping, Method::Ping));
        let target = Id([0x44; 20]);
        let get = Method::Get { target, seq: None };
        assert!(!n.send_query(now, stranger, id, Purpose::HandoffToken(target), get));
    }
    assert!(n.poll_transmit().is_none());
    assert_eq!(n.stats().upkeep_refused, 4);
    // Under the proven contact's ID at another address: refused too.
    let elsewhere: SocketAddr = "127.0.0.34:4000".parse().unwrap();
    assert!(!n.send_query(now, elsewhere, Some(proven.id), Purpose::Ping, Method::Ping));
    assert_eq!(n.stats().upkeep_refused, 5);

    // The proven contact: up to the per-address bound in flight, then refused.
    for i in 0..UPKEEP_IN_FLIGHT_PER_ADDRESS_MAX {
        assert!(
            n.send_query(
                now,
                proven.addr,
                Some(proven.id),
                Purpose::Ping,
                Method::Ping
            ),
            "upkeep query {i}"
        );
    }
    assert!(!n.send_query(
        now,
        proven.addr,
        Some(proven.id),
        Purpose::Ping,
        Method::Ping
    ));
    assert_eq!(n.stats().upkeep_refused, 6);
    let sent = std::iter::from_fn(|| n.poll_transmit()).count();
    assert_eq!(sent, UPKEEP_IN_FLIGHT_PER_ADDRESS_MAX);

    // A command's own request is not upkeep: a user's lookup may ask anyone it was told of.
    let query_id = n.find_node(now, Id([0x55; 20]));
    assert!(n.send_query(
        now,
        stranger,
        Some(stranger_id),
        Purpose::Lookup(query_id),
        Method::Ping
    ));
    assert_eq!(n.stats().upkeep_refused, 6);
}

#[test]
fn a_holder_with_more_than_three_known_nodes_nearer_the_key_leaves_the_hand_off_to_them() {
    use super::handoff::HANDOFF_HOLDERS_AHEAD_MAX;
    use crate::message::NodeInfo;
    use crate::store::{ItemValue, StoredItem};
    let key = Id([0x22; 20]);
    let gets_to_newcomer = |ahead: usize| {
        let mut n = node(Config::default());
        n.restore_item(StoredItem {
            target: key,
            value: ItemValue::Immutable(b"1:x".to_vec()),
            expires: Instant::from_micros(7_200_000_000),
            source: "127.0.0.5".parse().unwrap(),
        });
        // Ask the newcomer first, while the table is empty, so the first datagram is to it.
        n.bootstrap(Instant::ZERO, &[], &[PEER.parse().unwrap()]);
        let asked = Message::decode(&n.poll_transmit().unwrap().data).unwrap();
        // `ahead` contacts nearer the key than we are (0x11...11), farther than the newcomer.
        for i in 0..ahead {
            let mut id = key;
            id.0[10] ^= 0x80 >> i;
            let addr = SocketAddr::from(([127, 0, 1, i as u8], 5000));
            assert!(n.restore_contact(Instant::ZERO, NodeInfo { id, addr }));
        }
        while n.poll_transmit().is_some() {}
        let mut newcomer = key;
        newcomer.0[19] = 1;
        let answer = empty_answer(asked.transaction_id, newcomer);
        n.handle_datagram(Instant::ZERO, PEER.parse().unwrap(), &answer);
        std::iter::from_fn(|| n.poll_transmit())
            .filter(|t| t.to == PEER.parse::<SocketAddr>().unwrap())
            .filter(|t| {
                matches!(
                    Message::decode(&t.data).unwrap().body,
                    Body::Query(Query {
                        method: Method::Get { .. },
                        ..
                    })
                )
            })
            .count()
    };
    // Among the first holders in line it hands the item off; behind more than that, the ones
    // ahead send it, not us, and the last of the k holders never does.
    for ahead in 0..8 {
        let expected = usize::from(ahead <= HANDOFF_HOLDERS_AHEAD_MAX);
        assert_eq!(gets_to_newcomer(ahead), expected, "{ahead} holders ahead");
    }
    // About four holders per newcomer and item (the module documentation): not only the
    // first, who may be dead, and never the eighth.
    assert_eq!(gets_to_newcomer(3), 1, "the fourth holder in line");
    assert_eq!(gets_to_newcomer(7), 0, "the eighth holder in line");
}
