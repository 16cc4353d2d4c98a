//! Interoperability with libtorrent (libtorrent-rasterbar 2.0, Debian's
//! python3-libtorrent): a libtorrent session joins a loopback network of `dht node`
//! processes, and items and peers put by either side are found by the other.
//!
//! libtorrent runs in `tests/interop/lt_node.py`, which documents each session setting a
//! loopback network needs (see also docs/interop.md). Without libtorrent these tests print
//! `SKIPPED: ...` and pass, unless `DHT_REQUIRE_LIBTORRENT=1` (CI) makes them fail.

mod common;

use std::fs;
use std::thread;
use std::time::Duration;

use common::{
    immutable_key, is_hex, libtorrent_available, mutable_target, run_dht, Client, Cluster, LtNode,
    ID_HEX_LEN, KEY_HEX_LEN,
};
use serde_json::json;

/// Our nodes in each test network; libtorrent joins them as one more.
const OUR_NODES: usize = 3;
/// How many of our nodes libtorrent must hold in its routing table before a test acts:
/// all of them, the one it was given and the others learnt from that node's replies.
const LT_TABLE_MIN: usize = OUR_NODES;
/// Attempts of a `dht peers` right after libtorrent announced: its announce_peer messages
/// were sent when the announce command returns, but may still be in flight.
const PEERS_ATTEMPTS_MAX: usize = 5;
/// Pause between those attempts.
const PEERS_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// A network of our nodes with a libtorrent session that was given node 0 and holds at
/// least `LT_TABLE_MIN` of them in its routing table; `None` when libtorrent is
/// unavailable (skip).
fn network() -> Option<(Cluster, LtNode)> {
    if !libtorrent_available() {
        return None;
    }
    let c = Cluster::start(OUR_NODES);
    let mut lt = LtNode::start(c.dir.path(), "libtorrent", &[c.addr(0)]);
    let reply = lt.cmd(json!({"cmd": "wait_nodes", "min": LT_TABLE_MIN}));
    let nodes = reply["nodes"].as_u64().unwrap_or(0) as usize;
    assert!(
        nodes >= LT_TABLE_MIN,
        "libtorrent knows {nodes} of our {OUR_NODES} nodes after bootstrapping from one; \
         it learns the others from our find_node replies\n{}",
        c.logs()
    );
    Some((c, lt))
}

/// A 32-byte ed25519 seed in hex, distinct per test.
fn seed_hex(byte: u8) -> String {
    hex::encode([byte; 32])
}

#[test]
fn libtorrent_sessions_find_each_others_items_on_loopback() {
    // Checks the harness itself, without our binary: if this fails, the other tests'
    // failures say nothing about our node.
    if !libtorrent_available() {
        return;
    }
    let dir = common::temp_dir("lt-selftest-");
    let mut a = LtNode::start(dir.path(), "lt-a", &[]);
    let mut b = LtNode::start(dir.path(), "lt-b", &[a.addr()]);
    let mut c = LtNode::start(dir.path(), "lt-c", &[a.addr()]);
    a.cmd(json!({"cmd": "add_node", "addr": b.addr().to_string()}));
    // A put goes only to nodes in the session's routing table; under load the first
    // exchanges can take a while, so wait (bounded) until every table holds someone.
    for (name, lt) in [("a", &mut a), ("b", &mut b), ("c", &mut c)] {
        let n = lt.cmd(json!({"cmd": "wait_nodes", "min": 1}))["nodes"].as_u64();
        assert!(
            n >= Some(1),
            "libtorrent session {name} found no node on loopback"
        );
    }
    let put = a.cmd(json!({"cmd": "put_immutable", "value": "between libtorrents"}));
    assert_eq!(put["target"], immutable_key(b"between libtorrents"));
    assert!(
        put["num_success"].as_u64().unwrap_or(0) >= 1,
        "nobody stored the item: {put}"
    );
    let got = b.cmd(json!({"cmd": "get_immutable", "target": put["target"]}));
    assert_eq!(got["value"], "between libtorrents");

    let seed = seed_hex(0x21);
    let put = c.cmd(json!({"cmd": "put_mutable", "seed": seed, "value": "m", "salt": "s"}));
    let got = b.cmd(json!({"cmd": "get_mutable", "public_key": put["public_key"], "salt": "s"}));
    assert_eq!(got["value"], "m");
    assert_eq!(got["seq"], 1);
}

#[test]
fn libtorrent_immutable_puts_are_found_by_dht_get() {
    let Some((c, mut lt)) = network() else { return };
    let put = lt.cmd(json!({"cmd": "put_immutable", "value": "put by libtorrent"}));
    let target = put["target"].as_str().expect("target").to_string();
    assert_eq!(target, immutable_key(b"put by libtorrent"));
    assert!(
        put["num_success"].as_u64().unwrap_or(0) >= 1,
        "none of our nodes accepted libtorrent's put: {put}\n{}",
        c.logs()
    );
    let get = c.client(2).run(&["get", &target]);
    assert_eq!(get.code, Some(0), "{get}\n{}", c.logs());
    assert_eq!(get.stdout, b"put by libtorrent");

    // A value that is not a byte string: `dht get` prints its bencoding.
    let bencoded = b"d1:ai1ee";
    let put = lt.cmd(json!({"cmd": "put_immutable", "bencoded_hex": hex::encode(bencoded)}));
    let target = put["target"].as_str().expect("target").to_string();
    assert_eq!(target, common::sha1_hex(bencoded));
    let get = c.client(1).run(&["get", &target]);
    assert_eq!(get.code, Some(0), "{get}\n{}", c.logs());
    assert_eq!(
        get.stdout, bencoded,
        "a non-string value is printed as its bencoding"
    );
}

#[test]
fn libtorrent_mutable_puts_are_found_by_dht_get() {
    let Some((c, mut lt)) = network() else { return };
    let seed = seed_hex(0x42);
    let put = lt.cmd(json!({"cmd": "put_mutable", "seed": seed, "value": "lt v1", "salt": ""}));
    let pubkey = put["public_key"].as_str().expect("public key").to_string();
    assert_eq!(put["target"], mutable_target(&pubkey, b""));
    assert_eq!(put["seq"], 1);
    let get = c.client(2).run(&["get", "--mutable", &pubkey]);
    assert_eq!(get.code, Some(0), "{get}\n{}", c.logs());
    assert_eq!(get.stdout_text(), "lt v1");

    // libtorrent's next put reads seq 1 back from our nodes and signs seq 2.
    let put = lt.cmd(json!({"cmd": "put_mutable", "seed": seed, "value": "lt v2", "salt": ""}));
    assert_eq!(
        put["seq"], 2,
        "libtorrent did not see seq 1 on our nodes: {put}"
    );
    let get = c.client(1).run(&["get", "--mutable", &pubkey]);
    assert_eq!(get.code, Some(0), "{get}\n{}", c.logs());
    assert_eq!(get.stdout_text(), "lt v2");

    let put = lt.cmd(json!({"cmd": "put_mutable", "seed": seed, "value": "salted", "salt": "x"}));
    assert_eq!(put["target"], mutable_target(&pubkey, b"x"));
    let get = c
        .client(2)
        .run(&["get", "--mutable", &pubkey, "--salt", "x"]);
    assert_eq!(get.code, Some(0), "{get}\n{}", c.logs());
    assert_eq!(get.stdout_text(), "salted");
}

#[test]
fn dht_immutable_put_is_found_by_libtorrent() {
    let Some((c, mut lt)) = network() else { return };
    let put = c.client(1).run(&["put", "put by our dht"]);
    put.assert_success();
    let key = put.stdout_text().trim().to_ascii_lowercase();
    assert!(is_hex(&key, ID_HEX_LEN), "{put}");
    let got = lt.cmd(json!({"cmd": "get_immutable", "target": key}));
    assert_eq!(
        got["found"],
        true,
        "libtorrent did not find our item: {got}\n{}",
        c.logs()
    );
    assert_eq!(got["value"], "put by our dht");
}

#[test]
fn dht_mutable_put_is_found_by_libtorrent() {
    let Some((c, mut lt)) = network() else { return };
    // A key from `dht keygen`.
    let key_file = c.dir.path().join("gen.key");
    let key_path = key_file.to_str().expect("utf-8 path").to_string();
    let keygen = run_dht(
        c.home(),
        &["keygen".into(), "--out".into(), key_path.clone()],
        None,
        None,
    );
    keygen.assert_success();
    let pubkey = keygen.stdout_text().trim().to_ascii_lowercase();
    assert!(is_hex(&pubkey, KEY_HEX_LEN), "{keygen}");
    let put = c
        .client(1)
        .run(&["put", "--mutable", "--key", &key_path, "--seq", "5", "ours"]);
    put.assert_success();
    let got = lt.cmd(json!({"cmd": "get_mutable", "public_key": pubkey, "salt": ""}));
    assert_eq!(
        got["found"],
        true,
        "libtorrent did not find our item: {got}\n{}",
        c.logs()
    );
    assert_eq!(got["value"], "ours");
    assert_eq!(got["seq"], 5);

    // A key file written by hand from a seed: libtorrent derives the same public key
    // from the same seed, so the file format is the plain ed25519 seed.
    let seed = seed_hex(0x5e);
    let seed_file = c.dir.path().join("seed.key");
    fs::write(&seed_file, format!("{seed}\n")).expect("write key file");
    let seed_path = seed_file.to_str().expect("utf-8 path");
    let put = c.client(2).run(&[
        "put",
        "--mutable",
        "--key",
        seed_path,
        "--salt",
        "s",
        "salted",
    ]);
    put.assert_success();
    let pubkey = lt.cmd(json!({"cmd": "pubkey", "seed": seed}))["public_key"]
        .as_str()
        .expect("public key")
        .to_string();
    let words: Vec<String> = put
        .stdout_text()
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(words.first(), Some(&mutable_target(&pubkey, b"s")), "{put}");
    let got = lt.cmd(json!({"cmd": "get_mutable", "public_key": pubkey, "salt": "s"}));
    assert_eq!(
        got["found"],
        true,
        "libtorrent did not find our salted item: {got}\n{}",
        c.logs()
    );
    assert_eq!(got["value"], "salted");
}

#[test]
fn dht_announce_is_found_by_libtorrent_get_peers() {
    let Some((c, mut lt)) = network() else { return };
    let info_hash = "aa55aa55aa55aa55aa55aa55aa55aa55aa55aa55";
    let out = c.client(1).run(&["announce", info_hash, "--port", "5555"]);
    out.assert_success();
    let got = lt.cmd(json!({"cmd": "get_peers", "info_hash": info_hash}));
    let peers: Vec<&str> = got["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(
        peers.contains(&"127.0.0.1:5555"),
        "libtorrent's get_peers did not return our announce: {got}\n{}",
        c.logs()
    );
}

#[test]
fn libtorrent_announce_is_found_by_dht_peers() {
    let Some((c, mut lt)) = network() else { return };
    let info_hash = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
    let port = lt.cmd(json!({"cmd": "announce", "info_hash": info_hash}))["port"]
        .as_u64()
        .expect("port");
    let want = format!("127.0.0.1:{port}");
    let client = Client::new(c.home()).bootstrap(c.addr(2));
    let mut last = None;
    for _ in 0..PEERS_ATTEMPTS_MAX {
        let out = client.run(&["peers", info_hash]);
        if out.code == Some(0) && out.stdout_text().lines().any(|l| l == want) {
            return;
        }
        last = Some(out);
        thread::sleep(PEERS_RETRY_PAUSE);
    }
    panic!(
        "`dht peers` never returned libtorrent's {want}: {}\n{}",
        last.expect("at least one attempt"),
        c.logs()
    );
}
