//! End-to-end tests of the `dht` command on loopback: several `dht node` processes on real
//! UDP sockets, and one-shot client commands (`put`, `get`, `keygen`, `announce`,
//! `peers`) that join through one of them as read-only nodes, act and leave.
//!
//! Each test starts its own small network (at most k = 8 nodes, so every node is among
//! the k closest to any key and stores every item) and tears it down on drop.

mod common;

use std::fs;

use common::{
    free_udp_port, immutable_key, is_hex, mutable_target, run_dht, Client, Cluster, ID_HEX_LEN,
    KEY_HEX_LEN,
};

/// Nodes in the network of the tests that need churn.
const CLUSTER_NODES: usize = 6;
/// Nodes in the network of the tests that only need a few hops.
const SMALL_CLUSTER_NODES: usize = 4;

/// Parses a `dht put` stdout: exactly one line holding a 40-hex key.
fn printed_key(out: &common::Output) -> String {
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "put must print one line, the key: {out}");
    assert!(
        is_hex(lines[0], ID_HEX_LEN),
        "put printed no 40-hex key: {out}"
    );
    lines[0].to_ascii_lowercase()
}

/// Parses a `dht put --mutable` stdout: one line `<40-hex target> <seq>`.
fn printed_target_and_seq(out: &common::Output) -> (String, i64) {
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "mutable put must print one line: {out}");
    let words: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(words.len(), 2, "expected `<target> <seq>`: {out}");
    assert!(is_hex(words[0], ID_HEX_LEN), "target is not 40 hex: {out}");
    let seq = words[1]
        .parse()
        .unwrap_or_else(|_| panic!("seq is not a number: {out}"));
    (words[0].to_ascii_lowercase(), seq)
}

/// Asserts a failed command's contract: the exit code, nothing on stdout, and one plain
/// line on stderr (the client runs with RUST_LOG=off, so logs cannot add lines).
fn assert_fails_with_one_line(out: &common::Output, code: i32) {
    assert_eq!(out.code, Some(code), "wrong exit code: {out}");
    assert!(
        out.stdout.is_empty(),
        "a failure must print nothing on stdout: {out}"
    );
    assert_eq!(
        out.stderr_lines().len(),
        1,
        "the error must be one line on stderr: {out}"
    );
}

#[test]
fn immutable_put_through_one_node_is_found_through_another() {
    let c = Cluster::start(CLUSTER_NODES);
    let value = "hello from node 1";
    let put = c.client(1).run(&["put", value]);
    put.assert_success();
    let key = printed_key(&put);
    assert_eq!(
        key,
        immutable_key(value.as_bytes()),
        "key must be SHA-1 of the bencoded value"
    );

    let get = c.client(4).run(&["get", &key]);
    get.assert_success();
    assert_eq!(
        get.stdout,
        value.as_bytes(),
        "get must print the value's bytes exactly"
    );

    // The lookup's path toward the key: its format is free, but it must exist.
    let lookup = c.client(3).run(&["lookup", &key]);
    lookup.assert_success();
    assert!(
        !lookup.stdout.is_empty(),
        "lookup must print its path: {lookup}"
    );
}

#[test]
fn gets_and_lookups_on_disjoint_paths_find_what_one_path_finds() {
    let c = Cluster::start(CLUSTER_NODES);
    let value = "found on four paths";
    let put = c.client(2).run(&["put", value]);
    put.assert_success();
    let key = printed_key(&put);
    let get = c.client(5).run(&["get", "--paths", "4", &key]);
    get.assert_success();
    assert_eq!(get.stdout, value.as_bytes());
    let lookup = c.client(3).run(&["lookup", "--paths", "4", &key]);
    lookup.assert_success();
    let plain = c.client(3).run(&["lookup", &key]);
    plain.assert_success();
    // The flag reaches the lookup: it says on how many paths it ran.
    let says =
        |out: &common::Output, what: &str| String::from_utf8_lossy(&out.stdout).contains(what);
    assert!(says(&lookup, " ms, 4 paths):"), "{lookup}");
    assert!(says(&plain, " ms, 1 path):"), "{plain}");
    // Both end on the same closest nodes: the last lines list them.
    let closest = |out: &common::Output| {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let at = text.find("closest ").expect("a closest-nodes section");
        text[at..]
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(closest(&lookup), closest(&plain), "{lookup}\n{plain}");
}

#[test]
fn clients_bootstrap_from_the_dht_bootstrap_variable() {
    let c = Cluster::start(SMALL_CLUSTER_NODES);
    let value = "found via DHT_BOOTSTRAP";
    let put = c.client(1).run(&["put", value]);
    put.assert_success();
    let key = printed_key(&put);
    // Comma-separated; the first address has nobody listening, so the client must go on
    // to the next one.
    let dead = free_udp_port();
    let list = format!("127.0.0.1:{dead},{}", c.addr(2));
    let get = Client::new(c.home())
        .env("DHT_BOOTSTRAP", &list)
        .run(&["get", &key]);
    assert_eq!(get.code, Some(0), "{get}\n{}", c.logs());
    assert_eq!(get.stdout, value.as_bytes());
}

#[test]
fn node_exits_0_on_sigint() {
    let mut c = Cluster::start(1);
    let (status, extra_stdout) = c.take(0).stop("INT");
    assert!(
        status.success(),
        "SIGINT must end the node cleanly (exit 0), got {status}"
    );
    assert!(
        extra_stdout.is_empty(),
        "unexpected stdout after the startup line: {extra_stdout:?}"
    );
}

#[test]
fn put_reads_arbitrary_bytes_from_stdin_and_from_a_file() {
    let c = Cluster::start(SMALL_CLUSTER_NODES);
    // Not UTF-8, with a NUL and newlines: the value is a byte string, not text.
    let bytes: Vec<u8> = vec![0xff, 0x00, b'\n', 0xc3, 0x28, b'x', b'\n'];
    let put = c.client(1).run_with_stdin(&["put", "-"], Some(&bytes));
    put.assert_success();
    let key = printed_key(&put);
    assert_eq!(key, immutable_key(&bytes));
    let get = c.client(3).run(&["get", &key]);
    get.assert_success();
    assert_eq!(
        get.stdout, bytes,
        "bytes from stdin must come back unchanged"
    );

    let file = c.dir.path().join("value.bin");
    let file_bytes = b"from a file\n".to_vec();
    fs::write(&file, &file_bytes).expect("write value file");
    let put = c
        .client(2)
        .run(&["put", "--file", file.to_str().expect("utf-8 path")]);
    put.assert_success();
    let key = printed_key(&put);
    assert_eq!(key, immutable_key(&file_bytes));
    let get = c.client(0).run(&["get", &key]);
    get.assert_success();
    assert_eq!(get.stdout, file_bytes);
}

#[test]
fn value_is_still_found_after_two_nodes_are_killed() {
    let mut c = Cluster::start(CLUSTER_NODES);
    let value = "survives churn";
    let put = c.client(2).run(&["put", value]);
    put.assert_success();
    let key = printed_key(&put);

    // SIGKILL: no goodbye, the others' routing tables still list them.
    c.take(2).kill();
    c.take(3).kill();

    let get = c.client(5).run(&["get", &key]);
    assert_eq!(
        get.code,
        Some(0),
        "value lost after two nodes died: {get}\n{}",
        c.logs()
    );
    assert_eq!(get.stdout, value.as_bytes());
}

#[test]
fn restarted_node_keeps_its_id_and_serves_its_items_from_disk() {
    let mut c = Cluster::start(SMALL_CLUSTER_NODES);
    let value = "kept across a restart";
    let put = c.client(0).run(&["put", value]);
    put.assert_success();
    let key = printed_key(&put);

    let old = c.take(1);
    let (old_id, old_addr) = (old.id.clone(), old.addr);
    let (status, extra_stdout) = old.terminate();
    assert!(
        status.success(),
        "SIGTERM must end the node cleanly (exit 0), got {status}"
    );
    assert!(
        extra_stdout.is_empty(),
        "a node prints exactly one line on stdout, then logs to stderr; also got {extra_stdout:?}"
    );

    // Same data directory and same address; no bootstrap: a restarted node rejoins from
    // the routing table it saved.
    c.restart(1, &old_addr.to_string(), &[]);
    assert_eq!(c.node(1).id, old_id, "the node ID must survive a restart");
    assert_eq!(c.addr(1), old_addr);

    // With every other node gone, only the restarted node's own store can answer.
    for i in [0, 2, 3] {
        c.take(i).kill();
    }
    let get = c.client(1).run(&["get", &key]);
    assert_eq!(
        get.code,
        Some(0),
        "restarted node lost its item: {get}\n{}",
        c.logs()
    );
    assert_eq!(get.stdout, value.as_bytes());
}

#[test]
fn mutable_put_get_follows_seq_and_rejects_cas_mismatch() {
    let c = Cluster::start(SMALL_CLUSTER_NODES);
    let key_file = c.dir.path().join("id.key");
    let key_path = key_file.to_str().expect("utf-8 path");

    let keygen = run_dht(
        c.home(),
        &["keygen".into(), "--out".into(), key_path.into()],
        None,
        None,
    );
    keygen.assert_success();
    let pubkey = keygen.stdout_text().trim().to_ascii_lowercase();
    assert!(
        is_hex(&pubkey, KEY_HEX_LEN),
        "keygen must print a 64-hex public key: {keygen}"
    );
    let seed_text = fs::read_to_string(&key_file).expect("key file written");
    assert!(
        seed_text.ends_with('\n') && is_hex(seed_text.trim_end_matches('\n'), KEY_HEX_LEN),
        "key file must hold 64 hex digits and a newline, got {seed_text:?}"
    );
    // The file holds the ed25519 seed of the printed public key.
    let seed: [u8; 32] = hex::decode(seed_text.trim())
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let derived = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    assert_eq!(
        hex::encode(derived.as_bytes()),
        pubkey,
        "key file seed must match the public key"
    );

    let put = |args: &[&str]| {
        let mut all = vec!["put", "--mutable", "--key", key_path];
        all.extend_from_slice(args);
        c.client(1).log_filter("off").run(&all)
    };
    let get = |args: &[&str]| {
        let mut all = vec!["get", "--mutable", pubkey.as_str()];
        all.extend_from_slice(args);
        c.client(3).run(&all)
    };

    let out = put(&["--seq", "1", "first"]);
    out.assert_success();
    assert_eq!(
        printed_target_and_seq(&out),
        (mutable_target(&pubkey, b""), 1)
    );
    let out = get(&[]);
    out.assert_success();
    assert_eq!(out.stdout_text(), "first");

    let out = put(&["--seq", "2", "second"]);
    out.assert_success();
    assert_eq!(printed_target_and_seq(&out).1, 2);
    let out = get(&[]);
    out.assert_success();
    assert_eq!(
        out.stdout_text(),
        "second",
        "get must return the highest seq"
    );

    // CAS names seq 1 but the stored item has seq 2: BEP 44 error 301, exit 1.
    let out = put(&["--seq", "3", "--cas", "1", "third"]);
    assert_fails_with_one_line(&out, 1);
    // A lower seq than the stored one: BEP 44 error 302, exit 1.
    let out = put(&["--seq", "1", "stale"]);
    assert_fails_with_one_line(&out, 1);
    let out = get(&[]);
    out.assert_success();
    assert_eq!(
        out.stdout_text(),
        "second",
        "a rejected put must not change the value"
    );

    // A matching CAS succeeds.
    let out = put(&["--seq", "3", "--cas", "2", "third"]);
    out.assert_success();
    assert_eq!(printed_target_and_seq(&out).1, 3);

    // Without --seq, the put must go above what the network holds.
    let out = put(&["fourth"]);
    out.assert_success();
    let (_, seq) = printed_target_and_seq(&out);
    assert!(
        seq > 3,
        "a put without --seq must pick a seq above 3, got {seq}"
    );
    let out = get(&[]);
    out.assert_success();
    assert_eq!(out.stdout_text(), "fourth");

    // A salt names a different item under the same key.
    let out = put(&["--salt", "s1", "--seq", "1", "salted"]);
    out.assert_success();
    assert_eq!(
        printed_target_and_seq(&out),
        (mutable_target(&pubkey, b"s1"), 1)
    );
    let out = get(&["--salt", "s1"]);
    out.assert_success();
    assert_eq!(out.stdout_text(), "salted");
    let out = get(&[]);
    out.assert_success();
    assert_eq!(
        out.stdout_text(),
        "fourth",
        "the salted item must not replace the unsalted one"
    );
}

#[test]
fn announced_peer_is_returned_by_peers() {
    let c = Cluster::start(SMALL_CLUSTER_NODES);
    let info_hash = "0123456789abcdef0123456789abcdef01234567";
    let out = c.client(1).run(&["announce", info_hash, "--port", "6881"]);
    out.assert_success();

    let out = c.client(3).run(&["peers", info_hash]);
    out.assert_success();
    let text = out.stdout_text();
    let peers: Vec<&str> = text.lines().collect();
    assert!(
        peers.contains(&"127.0.0.1:6881"),
        "announced peer missing: {out}"
    );
    for p in &peers {
        assert!(
            p.parse::<std::net::SocketAddr>().is_ok(),
            "not an ip:port line: {p:?}"
        );
    }

    let unknown = "76543210fedcba9876543210fedcba9876543210";
    let out = c.client(2).log_filter("off").run(&["peers", unknown]);
    assert_fails_with_one_line(&out, 1);
}

#[test]
fn get_of_a_key_nobody_stored_exits_1_with_one_line() {
    let c = Cluster::start(SMALL_CLUSTER_NODES);
    let out = c
        .client(2)
        .log_filter("off")
        .run(&["get", "0000000000000000000000000000000000000001"]);
    assert_fails_with_one_line(&out, 1);

    // A valid public key that never signed anything.
    let nobody = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let nobody = hex::encode(nobody.as_bytes());
    let out = c
        .client(1)
        .log_filter("off")
        .run(&["get", "--mutable", &nobody]);
    assert_fails_with_one_line(&out, 1);
}

#[test]
fn bad_arguments_exit_2_with_one_line_error() {
    let dir = common::temp_dir("dht-usage-");
    let cases: &[&[&str]] = &[
        &["frobnicate"],
        &["get"],
        &[
            "get",
            "--paths",
            "0",
            "0000000000000000000000000000000000000001",
        ],
        &[
            "lookup",
            "--paths",
            "17",
            "0000000000000000000000000000000000000001",
        ],
        &[
            "get",
            "--paths",
            "2",
            "--node",
            "http://127.0.0.1:9",
            "0000000000000000000000000000000000000001",
        ],
        &["put", "--no-such-flag", "v"],
        &[
            "put",
            "--mutable",
            "--key",
            "k",
            "--seq",
            "not-a-number",
            "v",
        ],
    ];
    // Every case is run and every violation listed, so one failure shows them all.
    let mut violations = Vec::new();
    for args in cases {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = run_dht(dir.path(), &args, None, Some("off"));
        if out.code != Some(2) || !out.stdout.is_empty() || out.stderr_lines().len() != 1 {
            violations.push(out.to_string());
        }
    }
    assert!(
        violations.is_empty(),
        "usage errors must exit 2 with one line on stderr and nothing on stdout:\n{}",
        violations.join("\n")
    );
}

#[test]
fn devnet_runs_its_demonstration_and_exits_0() {
    let dir = common::temp_dir("dht-devnet-");
    // The devnet takes consecutive ports from --base-port; start from one the OS just
    // handed out, well below the top of the range.
    let base = free_udp_port().min(60_000).to_string();
    let args: Vec<String> = ["devnet", "--nodes", "5", "--base-port", &base, "--exit"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let out = run_dht(dir.path(), &args, None, None);
    out.assert_success();
    assert!(
        !out.stdout.is_empty(),
        "devnet must show its demonstration: {out}"
    );
}
