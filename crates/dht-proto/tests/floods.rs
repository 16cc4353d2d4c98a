//! One node under floods and spoofed sources, on virtual time: what it answers, what it drops
//! and counts, what it sends to an address that never sent anything, and that its memory stays
//! bounded (docs/security.md).

use std::net::{IpAddr, SocketAddr};

use dht_proto::message::{Body, Message, Method, PutArgs, Query, Want};
use dht_proto::node::{Config, Node, REPLY_BYTES_MAX};
use dht_proto::ratelimit::{RateLimit, SOURCES_MAX};
use dht_proto::store::{ItemValue, StoredItem};
use dht_proto::{Id, Instant};

fn query(tid: u32, sender: Id, method: Method) -> Vec<u8> {
    Message {
        transaction_id: tid.to_be_bytes().to_vec(),
        version: None,
        requester_ip: None,
        read_only: false,
        body: Body::Query(Query {
            sender_id: sender,
            method,
        }),
    }
    .encode()
}

/// A public-looking IPv4 address, in a /24 of its own for each `i` below 2^16.
fn public(i: u32) -> SocketAddr {
    SocketAddr::from(([44, (i >> 8) as u8, i as u8, 9], 6881))
}

fn at_ms(ms: u64) -> Instant {
    Instant::from_micros(ms * 1000)
}

/// A node with a full-ish routing table of contacts that answered it (at public addresses
/// that never answer again) and 200 stored items, so that upkeep and hand-offs have work.
fn busy_node(config: Config) -> Node {
    let mut n = Node::new(config, Id([0x11; 20]), 5, Instant::ZERO);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for i in 0..300 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(&rng.to_be_bytes());
        let node = dht_proto::message::NodeInfo {
            id: Id(id),
            addr: public(20_000 + i),
        };
        n.restore_contact(Instant::ZERO, node);
    }
    for i in 0..200u32 {
        let value = format!("{}:{i}", i.to_string().len()).into_bytes();
        n.restore_item(StoredItem {
            target: Id::sha1(&value),
            value: ItemValue::Immutable(value),
            expires: at_ms(2 * 3600 * 1000),
            source: "192.0.2.1".parse().unwrap(),
        });
    }
    n
}

/// Drains the node's datagrams; returns them as (destination, bytes).
fn drain(n: &mut Node) -> Vec<(SocketAddr, Vec<u8>)> {
    std::iter::from_fn(|| n.poll_transmit())
        .map(|t| (t.to, t.data))
        .collect()
}

#[test]
fn a_burst_from_one_public_address_is_answered_within_its_limit_and_the_rest_counted() {
    let limit = RateLimit::default();
    let mut n = busy_node(Config::default());
    let attacker = public(1);
    let mut answered = 0;
    for tid in 0..200 {
        n.handle_datagram(at_ms(0), attacker, &query(tid, Id([7; 20]), Method::Ping));
        answered += drain(&mut n).len();
    }
    assert_eq!(answered, limit.burst as usize, "the burst, then nothing");
    let s = n.stats();
    assert_eq!(s.rate_limited, u64::from(limit.block_after));
    assert_eq!(s.sources_blocked, 1);
    assert_eq!(s.blocked_dropped, 200 - 50 - u64::from(limit.block_after));
    // Blocked: a minute later it is still ignored, though its bucket would have refilled.
    n.handle_datagram(
        at_ms(60_000),
        attacker,
        &query(9, Id([7; 20]), Method::Ping),
    );
    assert!(drain(&mut n).is_empty());
    // After the block it is answered again.
    let after = at_ms(limit.block_for.as_millis() as u64 + 1000);
    n.handle_datagram(after, attacker, &query(10, Id([7; 20]), Method::Ping));
    assert_eq!(drain(&mut n).len(), 1);
}

#[test]
fn a_burst_over_the_limit_from_one_source_does_not_delay_answers_to_another() {
    let mut n = busy_node(Config::default());
    let (attacker, honest) = (public(1), public(2));
    for tid in 0..1000u32 {
        n.handle_datagram(at_ms(0), attacker, &query(tid, Id([7; 20]), Method::Ping));
        if tid % 100 == 99 {
            // The honest source's query, in the middle of the flood, is answered at once.
            n.handle_datagram(at_ms(0), honest, &query(tid, Id([8; 20]), Method::Ping));
            let out = drain(&mut n);
            assert!(
                out.iter().any(|(to, _)| *to == honest),
                "honest query {tid} unanswered"
            );
        }
    }
    assert!(n.stats().rate_limited + n.stats().blocked_dropped >= 900);
}

#[test]
fn loopback_is_exempt_unless_limit_local_is_set() {
    let burst = RateLimit::default().burst as usize;
    let local: SocketAddr = "127.0.0.9:4000".parse().unwrap();
    for (limit_local, expected) in [(false, 200), (true, burst)] {
        let mut n = busy_node(Config {
            limit_local,
            ..Config::default()
        });
        let mut answered = 0;
        for tid in 0..200 {
            n.handle_datagram(at_ms(0), local, &query(tid, Id([7; 20]), Method::Ping));
            answered += drain(&mut n).len();
        }
        assert_eq!(answered, expected, "limit_local {limit_local}");
    }
}

#[test]
fn a_rate_limit_of_zero_turns_the_limit_off() {
    let config = Config {
        rate_limit: RateLimit {
            per_second: 0,
            ..RateLimit::default()
        },
        upload_bytes_per_second: 0,
        ..Config::default()
    };
    let mut n = busy_node(config);
    for tid in 0..500 {
        n.handle_datagram(at_ms(0), public(1), &query(tid, Id([7; 20]), Method::Ping));
    }
    assert_eq!(drain(&mut n).len(), 500);
}

#[test]
fn a_spoofed_flood_from_ten_thousand_addresses_keeps_memory_bounded_and_the_upload_capped() {
    let config = Config::default();
    let per_second = config.upload_bytes_per_second;
    let mut n = busy_node(config);
    let before = n.memory_bytes();
    let mut sent_bytes = 0u64;
    // Ten seconds: 10,000 sources, each sending a find_node, a get_peers and a get.
    let seconds = 10u64;
    let mut tid = 0;
    for i in 0..10_000u32 {
        let now = at_ms(u64::from(i) * seconds * 1000 / 10_000);
        let from = public(i);
        let mut sender = [0u8; 20];
        sender[..4].copy_from_slice(&i.to_be_bytes());
        let sender = Id(sender);
        let target = Id::sha1(&i.to_be_bytes());
        for method in [
            Method::FindNode { target, want: None },
            Method::GetPeers {
                info_hash: target,
                want: None,
            },
            Method::Get { target, seq: None },
        ] {
            tid += 1;
            n.handle_datagram(now, from, &query(tid, sender, method));
        }
        if let Some(t) = n.poll_timeout() {
            if t <= now {
                n.handle_timeout(now);
            }
        }
        sent_bytes += drain(&mut n)
            .iter()
            .map(|(_, d)| d.len() as u64)
            .sum::<u64>();
    }
    let s = n.stats();
    // The upload cap holds: at most the saved-up second plus the rate for the time that passed
    // (the node's own first maintenance round is budgeted too).
    assert!(
        sent_bytes <= per_second * (seconds + 1),
        "{sent_bytes} bytes sent in {seconds} s"
    );
    assert!(s.upload_dropped > 20_000, "{s:?}");
    // Memory: the source table is bounded and the routing table keeps its size. The source
    // table is counted in `memory_bytes` and is full by now.
    let after = n.memory_bytes();
    assert!(
        after > before + SOURCES_MAX * 40,
        "the source table is counted"
    );
    assert!(
        after < before + SOURCES_MAX * 128 + 64 * 1024,
        "memory grew from {before} to {after} bytes"
    );
    assert!(n.routing_table().len() <= 160 * 8);
}

#[test]
fn a_victim_that_never_sends_anything_gets_at_most_one_datagram_per_forged_one() {
    let mut n = busy_node(Config::default());
    let victim = public(3);
    let mut forged = 0u64;
    let mut to_victim = 0u64;
    let mut now_ms = 0;
    // An hour of virtual time with a few forged queries a minute in the victim's name, of
    // every kind, with IDs next to the stored items (so the victim looks like a newcomer that
    // should be handed items) and next to our own ID (so it looks worth a table place).
    for minute in 0..60u32 {
        for k in 0..3u32 {
            let mut sender =
                Id::sha1(format!("{}:{}", minute.to_string().len(), minute).as_bytes());
            sender.0[19] ^= k as u8 + 1;
            let target = sender;
            let method = match k {
                0 => Method::Ping,
                1 => Method::FindNode {
                    target,
                    want: Some(Want { v4: true, v6: true }),
                },
                _ => Method::Put(PutArgs {
                    target: None,
                    token: b"forged".to_vec(),
                    value: b"3:bad".to_vec(),
                    mutable: None,
                }),
            };
            forged += 1;
            n.handle_datagram(at_ms(now_ms), victim, &query(forged as u32, sender, method));
        }
        // The rest of the minute: the node's timers, all of them.
        let end = now_ms + 60_000;
        for _ in 0..10_000 {
            to_victim += drain(&mut n).iter().filter(|(to, _)| *to == victim).count() as u64;
            match n.poll_timeout() {
                Some(t) if t <= at_ms(end) => {
                    now_ms = now_ms.max(t.as_micros() / 1000);
                    n.handle_timeout(t);
                }
                _ => break,
            }
        }
        now_ms = end;
    }
    to_victim += drain(&mut n).iter().filter(|(to, _)| *to == victim).count() as u64;
    // Exactly one each: its reply (or error), never a ping, a refresh or a hand-off.
    assert_eq!(
        to_victim, forged,
        "{to_victim} datagrams to the victim for {forged} forged"
    );
}

#[test]
fn no_reply_is_larger_than_1500_bytes() {
    // No upload cap: this test is about the size of one reply.
    let config = Config {
        upload_bytes_per_second: 0,
        ..Config::default()
    };
    let mut n = Node::new(config, Id([0x11; 20]), 5, Instant::ZERO);
    let info_hash = Id([0x55; 20]);
    // Contacts of both families, in subnets of their own.
    for i in 0..80u16 {
        let addr = match i % 2 {
            0 => SocketAddr::from((IpAddr::from([0x2001, 0xdb8, i, 0, 0, 0, 0, 1]), 6881)),
            _ => public(u32::from(i)),
        };
        let id = Id::sha1(&i.to_be_bytes());
        n.restore_contact(at_ms(0), dht_proto::message::NodeInfo { id, addr });
    }
    // 50 IPv6 peers announce (each with the token its own address earned).
    for i in 0..50u16 {
        let from = SocketAddr::from((IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 1, i]), 6881));
        let now = at_ms(u64::from(i) * 100);
        n.handle_datagram(
            now,
            from,
            &query(
                1,
                Id([9; 20]),
                Method::GetPeers {
                    info_hash,
                    want: None,
                },
            ),
        );
        let out = drain(&mut n);
        assert!(!out.is_empty(), "peer {i}: {:?}", n.stats());
        let reply = Message::decode(&out[out.len() - 1].1).unwrap();
        let Body::Response(r) = reply.body else {
            panic!("not a response")
        };
        n.handle_datagram(
            now,
            from,
            &query(
                2,
                Id([9; 20]),
                Method::AnnouncePeer {
                    info_hash,
                    port: 6881,
                    implied_port: false,
                    token: r.token.unwrap(),
                },
            ),
        );
        drain(&mut n);
    }
    // An IPv6 asker that wants both families: 50 peers and 16 contacts do not fit.
    let asker = SocketAddr::from((IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 2, 1]), 6881));
    n.handle_datagram(
        at_ms(6000),
        asker,
        &query(
            3,
            Id([9; 20]),
            Method::GetPeers {
                info_hash,
                want: Some(Want { v4: true, v6: true }),
            },
        ),
    );
    let (_, data) = drain(&mut n).pop().unwrap();
    assert!(data.len() <= REPLY_BYTES_MAX, "{} bytes", data.len());
    assert_eq!(n.stats().replies_trimmed, 1);
    let Body::Response(r) = Message::decode(&data).unwrap().body else {
        panic!("not a response")
    };
    assert!(
        !r.peers.is_empty() && r.peers.len() < 50,
        "{} peers",
        r.peers.len()
    );
}
