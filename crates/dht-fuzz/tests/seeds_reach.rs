//! The `node` seeds reach the paths they were written for: a seed that silently stopped at a
//! bad token or an unmatched transaction would leave the fuzzer to find those paths alone.

use dht_fuzz::node::{info_hash, run, signing_key, FIXED_SOURCES};
use dht_fuzz::seeds::seeds;
use dht_proto::bep44::{immutable_target, MutableItem};
use dht_proto::store::ItemValue;

fn seed(name: &str) -> Vec<u8> {
    seeds("node")
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no seed {name}"))
        .1
}

#[test]
fn announce_with_the_substituted_token_stores_the_peer() {
    let node = run(&seed("get_peers_then_announce"));
    let peers = node.storage().peers(&info_hash(0), 1000);
    assert!(peers.contains(&FIXED_SOURCES[2]), "{peers:?}");
    assert_eq!(node.stats().errors_sent, 0);
}

#[test]
fn puts_with_the_substituted_token_store_both_items() {
    let node = run(&seed("get_then_put"));
    let newer = MutableItem::sign(&signing_key(), b"", 2, b"5:world".to_vec()).unwrap();
    match node.storage().item(&newer.target()).map(|i| &i.value) {
        Some(ItemValue::Mutable(m)) => assert_eq!(m.seq, 2),
        other => panic!("mutable item not stored: {other:?}"),
    }
    assert!(node
        .storage()
        .item(&immutable_target(b"6:fuzzed"))
        .is_some());
    assert_eq!(node.stats().errors_sent, 0);
}

#[test]
fn replies_to_the_last_query_match_its_transaction() {
    for name in [
        "get_peers_lookup_replies",
        "get_item_lookups",
        "commands_and_replies",
        "maintenance_pings",
    ] {
        let node = run(&seed(name));
        assert_eq!(node.stats().unexpected_responses, 0, "{name}");
        assert!(node.stats().datagrams_out > 0, "{name}");
    }
}
