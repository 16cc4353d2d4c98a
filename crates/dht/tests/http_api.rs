//! The HTTP API end to end: `dht devnet --http 127.0.0.1:0` and `dht node --http 127.0.0.1:0`
//! on loopback, every route of docs/http.md, bad input answered with a JSON 4xx, the client
//! commands' `--node URL`, and a non-loopback `--http` refused without `--http-public`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::http::{addr_of, get, request, DevnetProc};
use common::{immutable_key, is_hex, run_dht, sha1_hex, temp_dir, Client, NodeProc, ID_HEX_LEN};
use serde_json::Value;

/// Nodes of the devnets here: at most k = 8, so every node is among the k closest to any key.
const DEVNET_NODES: usize = 8;

/// How long `dht node --http` may take to print its URL after its startup line.
const URL_LINE_TIMEOUT: Duration = Duration::from_secs(30);

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no integer {key:?} in {v}"))
}

fn array_of<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v.get(key)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no array {key:?} in {v}"))
}

/// Asserts a JSON error answer with this status whose message contains `needle`.
fn assert_error(r: &common::http::Response, status: u16, needle: &str) {
    assert_eq!(
        r.status,
        status,
        "expected {status}, got {}: {}",
        r.status,
        r.text()
    );
    assert!(
        r.content_type.starts_with("application/json"),
        "an error is JSON, got {:?}: {}",
        r.content_type,
        r.text()
    );
    let msg = r.error();
    assert!(
        msg.contains(needle),
        "error {msg:?} should mention {needle:?}"
    );
}

/// A BEP 44 mutable item signed here, as a `PUT /api/v1/mutable` body.
fn signed_put(seed: [u8; 32], salt: &[u8], seq: i64, value: &[u8]) -> (String, Value) {
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let item = dht_node::proto::MutableItem::sign(&key, salt, seq, value.to_vec()).unwrap();
    let pk = hex::encode(item.public_key);
    let body = serde_json::json!({
        "value_hex": hex::encode(&item.value),
        "salt_hex": hex::encode(salt),
        "seq": seq,
        "public_key": pk,
        "signature": hex::encode(item.signature),
    });
    (pk, body)
}

#[test]
fn devnet_serves_every_route_of_the_contract() {
    let home = temp_dir("http-routes");
    let devnet = DevnetProc::start(home.path(), DEVNET_NODES, 2);
    let url = devnet.url.clone();

    // Nodes.
    let r = get(&url, "/api/v1/nodes");
    assert_eq!(r.status, 200, "{}", r.text());
    let nodes = r.json();
    let nodes = array_of(&nodes, "nodes");
    assert_eq!(nodes.len(), DEVNET_NODES);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(u64_of(n, "index"), i as u64);
        assert!(is_hex(str_of(n, "node_id"), ID_HEX_LEN), "{n}");
        let bind: std::net::SocketAddr = str_of(n, "bind").parse().expect("bind is ip:port");
        assert!(bind.ip().is_loopback());
    }

    // Status of one node.
    let s = get(&url, "/api/v1/status?node=3").json();
    assert_eq!(str_of(&s, "node_id"), str_of(&nodes[3], "node_id"));
    assert_eq!(str_of(&s, "bind"), str_of(&nodes[3], "bind"));
    assert_eq!(str_of(&s, "version"), env!("CARGO_PKG_VERSION"));
    assert!(s["uptime_s"].as_f64().unwrap() > 0.0, "{s}");
    assert!(
        u64_of(&s["routing_table"], "contacts") >= (DEVNET_NODES - 1) as u64,
        "{s}"
    );
    assert!(u64_of(&s["routing_table"], "buckets") >= 1);
    assert!(u64_of(&s["traffic"], "datagrams_in") > 0, "{s}");
    // Estimated from the 7 other nodes' distances: the right order of magnitude, no more.
    let size = s["network_size_estimate"]
        .as_u64()
        .expect("an estimate with 7 contacts");
    assert!(
        (2..=10 * DEVNET_NODES as u64).contains(&size),
        "{size} for {DEVNET_NODES} nodes"
    );
    assert!(s["store"].get("items").is_some() && s["store"].get("peers").is_some());

    // Routing table: every contact lies in its bucket's range, and the ranges tile the key
    // space in order.
    let rt = get(&url, "/api/v1/routing?node=2").json();
    assert_eq!(str_of(&rt, "node_id"), str_of(&nodes[2], "node_id"));
    // A quiet loopback network loses no good contact: BEP 5's 15 minutes.
    assert_eq!(rt["good_for_s"], 900, "{rt}");
    let buckets = array_of(&rt, "buckets");
    assert!(!buckets.is_empty());
    let states: BTreeSet<&str> = ["good", "questionable", "bad", "unverified"].into();
    let (mut contacts, mut timed, mut good) = (0, 0, 0);
    let mut ranges = Vec::new();
    for b in buckets {
        let (first, last) = (str_of(b, "first"), str_of(b, "last"));
        assert!(is_hex(first, ID_HEX_LEN) && is_hex(last, ID_HEX_LEN));
        assert!(first <= last, "{b}");
        ranges.push((first.to_string(), last.to_string()));
        for c in array_of(b, "contacts") {
            let id = str_of(c, "id");
            assert!(
                first <= id && id <= last,
                "contact {id} outside [{first}, {last}]"
            );
            assert!(states.contains(str_of(c, "state")), "{c}");
            assert!(c["last_seen_s"].as_f64().unwrap() >= 0.0);
            // A contact that answered us has its round trip timed (loopback: well under a
            // second); one that never did has none.
            match c["rtt_ms"].as_f64() {
                Some(ms) => {
                    assert!(ms > 0.0 && ms < 1000.0, "{c}");
                    timed += 1;
                }
                None => assert!(c["rtt_ms"].is_null(), "{c}"),
            }
            if str_of(c, "state") == "good" {
                good += 1;
            }
            contacts += 1;
        }
    }
    assert!(contacts >= DEVNET_NODES - 1, "{rt}");
    // Answers to resends are not timed, so allow a few good contacts without a round trip.
    assert!(
        good >= 1 && 2 * timed >= good,
        "{timed} timed of {good} good: {rt}"
    );
    // Bucket ranges do not overlap: sorted by their first ID, each ends before the next starts.
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(w[0].1 < w[1].0, "overlapping buckets {w:?}");
    }

    // A traced lookup from node 1.
    let target = "00000000000000000000000000000000000000ff";
    let l = get(&url, &format!("/api/v1/lookup/{target}?node=1")).json();
    assert_eq!(str_of(&l, "target"), target);
    assert_eq!(str_of(&l, "node_id"), str_of(&nodes[1], "node_id"));
    assert!(u64_of(&l, "rounds") >= 1, "{l}");
    assert!(u64_of(&l, "messages") >= u64_of(&l, "responses"));
    let steps = array_of(&l, "steps");
    let asked: BTreeSet<&str> = steps
        .iter()
        .filter(|s| str_of(s, "kind") == "asked")
        .map(|s| str_of(s, "id"))
        .collect();
    assert!(!asked.is_empty(), "{l}");
    for s in steps {
        let kind = str_of(s, "kind");
        assert!(["asked", "answered", "timed_out"].contains(&kind), "{s}");
        assert!(u64_of(s, "round") >= 1);
        assert!(u64_of(s, "shared_bits") <= 160);
        if kind == "answered" {
            let introduced = array_of(s, "introduced");
            assert_eq!(introduced.len() as u64, u64_of(s, "new"), "{s}");
            assert!(u64_of(s, "new") <= u64_of(s, "returned"), "{s}");
            for id in introduced {
                assert!(is_hex(id.as_str().unwrap(), ID_HEX_LEN));
            }
        }
    }
    let closest = array_of(&l, "closest");
    assert!(!closest.is_empty(), "{l}");
    let bits: Vec<u64> = closest.iter().map(|c| u64_of(c, "shared_bits")).collect();
    assert!(
        bits.windows(2).all(|w| w[0] >= w[1]),
        "closest first: {bits:?}"
    );

    // An immutable put through node 0 and a get through node 5.
    let value = b"13:hello, devnet";
    let r = request(&url, "PUT", "/api/v1/items", Some(value));
    assert_eq!(r.status, 200, "{}", r.text());
    let put = r.json();
    let key = str_of(&put, "key").to_string();
    assert_eq!(key, sha1_hex(value));
    assert!(u64_of(&put, "stored_at") >= 1, "{put}");
    let g = get(&url, &format!("/api/v1/items/{key}?node=5"));
    assert_eq!(g.status, 200, "{}", g.text());
    let g = g.json();
    assert_eq!(str_of(&g, "key"), key);
    assert_eq!(str_of(&g, "value"), "13:hello, devnet");
    assert_eq!(str_of(&g, "value_hex"), hex::encode(value));
    assert!(g["seq"].is_null());
    // A key nobody stored: 404.
    let missing = get(
        &url,
        "/api/v1/items/0123456789012345678901234567890123456789",
    );
    assert_error(&missing, 404, "no item");

    // Some node lists the item among what it holds.
    let holders = (0..DEVNET_NODES)
        .filter(|i| {
            let st = get(&url, &format!("/api/v1/stored?node={i}")).json();
            array_of(&st, "items").iter().any(|it| {
                str_of(it, "key") == key
                    && str_of(it, "kind") == "immutable"
                    && u64_of(it, "bytes") == value.len() as u64
            })
        })
        .count();
    assert!(holders >= 1, "no node lists {key} in /api/v1/stored");

    // A mutable item signed by the client, then fetched by public key and salt.
    let (pk, body) = signed_put([7; 32], b"salty", 3, b"4:mut1");
    let r = request(
        &url,
        "PUT",
        "/api/v1/mutable?node=4",
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!(u64_of(&m, "seq"), 3);
    assert!(u64_of(&m, "stored_at") >= 1, "{m}");
    assert_eq!(str_of(&m, "public_key"), pk);
    let g = get(&url, &format!("/api/v1/mutable/{pk}?salt=salty&node=6")).json();
    assert_eq!(u64_of(&g, "seq"), 3);
    assert_eq!(str_of(&g, "value"), "4:mut1");
    assert_eq!(str_of(&g, "key"), str_of(&m, "key"));
    // Unsigned, on a server without a key: refused, saying how to sign.
    let r = request(&url, "PUT", "/api/v1/mutable", Some(br#"{"value": "1:x"}"#));
    assert_error(&r, 400, "--mutable-key");

    // Announce a port through node 2, find it through node 7.
    let ih = "abcdef0123456789abcdef0123456789abcdef01";
    let r = request(
        &url,
        "POST",
        &format!("/api/v1/announce/{ih}?node=2&port=6999"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(u64_of(&r.json(), "stored_at") >= 1, "{}", r.text());
    let p = get(&url, &format!("/api/v1/peers/{ih}?node=7")).json();
    assert_eq!(str_of(&p, "info_hash"), ih);
    let peers: Vec<&str> = array_of(&p, "peers")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(peers.contains(&"127.0.0.1:6999"), "{p}");
    // The announce is held somewhere.
    let held = (0..DEVNET_NODES).any(|i| {
        let st = get(&url, &format!("/api/v1/stored?node={i}")).json();
        array_of(&st, "peers")
            .iter()
            .any(|e| str_of(e, "info_hash") == ih && u64_of(e, "peers") >= 1)
    });
    assert!(held, "no node lists {ih} among its peer lists");

    // Metrics answer in Prometheus text (tests/metrics.rs checks them in depth).
    let m = get(&url, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m.text().contains("dht_node_info{"), "{}", m.text());

    let status = devnet.interrupt();
    assert!(
        status.code().is_some(),
        "the devnet exits by itself on SIGINT: {status}"
    );
}

#[test]
fn bad_input_gets_a_json_4xx_and_the_server_goes_on() {
    let home = temp_dir("http-bad");
    let devnet = DevnetProc::start(home.path(), 4, 1);
    let url = devnet.url.clone();

    for path in [
        "/api/v1/items/xyz",
        "/api/v1/lookup/123",
        "/api/v1/peers/zz00000000000000000000000000000000000000",
        "/api/v1/mutable/abcd",
    ] {
        assert_error(&get(&url, path), 400, "hexadecimal");
    }
    let r = request(&url, "POST", "/api/v1/announce/nothex", None);
    assert_error(&r, 400, "hexadecimal");

    // A value over BEP 44's 1,000 bytes (valid bencode, 1,001 bytes).
    let mut big = b"997:".to_vec();
    big.extend_from_slice(&[b'a'; 997]);
    assert_eq!(big.len(), 1001);
    assert_error(
        &request(&url, "PUT", "/api/v1/items", Some(&big)),
        413,
        "1000",
    );
    // A body over the 64 KiB limit.
    let huge = vec![b'7'; 64 * 1024 + 1];
    assert_error(
        &request(&url, "PUT", "/api/v1/items", Some(&huge)),
        413,
        "65536",
    );
    // Not bencoded, and empty.
    assert_error(
        &request(&url, "PUT", "/api/v1/items", Some(b"hello")),
        400,
        "bencoded",
    );
    assert_error(
        &request(&url, "PUT", "/api/v1/items", Some(b"")),
        400,
        "bencoded",
    );
    // Mutable puts: bad JSON, unknown field, a signature that does not verify.
    assert_error(
        &request(&url, "PUT", "/api/v1/mutable", Some(b"{")),
        400,
        "JSON",
    );
    assert_error(
        &request(
            &url,
            "PUT",
            "/api/v1/mutable",
            Some(br#"{"value":"1:x","colour":1}"#),
        ),
        400,
        "colour",
    );
    let (_, mut body) = signed_put([9; 32], b"", 1, b"1:a");
    body["seq"] = 2.into();
    let r = request(
        &url,
        "PUT",
        "/api/v1/mutable",
        Some(body.to_string().as_bytes()),
    );
    assert_error(&r, 400, "refused");
    // Unknown route, wrong method, node index out of range or not a number.
    assert_error(&get(&url, "/api/v2/nothing"), 404, "no such route");
    assert_error(
        &request(&url, "DELETE", "/api/v1/status", None),
        405,
        "method",
    );
    assert_error(&get(&url, "/api/v1/status?node=4"), 404, "no node 4");
    assert_error(&get(&url, "/api/v1/routing?node=-1"), 400, "query");
    assert_error(&get(&url, "/api/v1/stored?node=abc"), 400, "query");
    assert_error(
        &request(
            &url,
            "POST",
            &format!("/api/v1/announce/{}?port=0", "a".repeat(40)),
            None,
        ),
        400,
        "port",
    );

    // Still serving.
    let s = get(&url, "/api/v1/status");
    assert_eq!(s.status, 200, "{}", s.text());
    let status = devnet.interrupt();
    assert!(status.code().is_some(), "{status}");
}

#[test]
fn node_http_serves_its_node_and_signs_with_its_mutable_key() {
    let home = temp_dir("http-node");
    // A loopback port where nothing listens: node a stays alone and never reaches out to the
    // public routers it would use without --bootstrap.
    let nowhere: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let a = NodeProc::start(
        home.path(),
        &home.path().join("a"),
        "127.0.0.1:0",
        &[nowhere],
    );
    let key_file = home.path().join("key");
    let kg = run_dht(
        home.path(),
        &[
            "keygen".into(),
            "--out".into(),
            key_file.display().to_string(),
        ],
        None,
        None,
    );
    kg.assert_success();
    let pk = kg.stdout_text().trim().to_string();
    let b = NodeProc::start_with(
        home.path(),
        &home.path().join("b"),
        "127.0.0.1:0",
        &[a.addr],
        &[
            "--http",
            "127.0.0.1:0",
            "--mutable-key",
            &key_file.display().to_string(),
        ],
    );
    let line = b
        .next_line(URL_LINE_TIMEOUT)
        .expect("dht node --http prints its URL");
    let url = line
        .strip_prefix("http api on ")
        .unwrap_or_else(|| panic!("expected `http api on URL`, got {line:?}"))
        .to_string();

    let nodes = get(&url, "/api/v1/nodes").json();
    assert_eq!(array_of(&nodes, "nodes").len(), 1, "{nodes}");
    let s = get(&url, "/api/v1/status").json();
    assert_eq!(str_of(&s, "node_id"), b.id);
    assert_eq!(str_of(&s, "bind"), b.addr.to_string());
    assert_error(&get(&url, "/api/v1/status?node=1"), 404, "no node 1");

    // Unsigned mutable puts are signed with the node's key, seq counting up from 1.
    for (seq, value) in [(1, "5:first"), (2, "6:second")] {
        let body = serde_json::json!({"value": value, "salt": "s"}).to_string();
        let r = request(&url, "PUT", "/api/v1/mutable", Some(body.as_bytes()));
        assert_eq!(r.status, 200, "{}", r.text());
        let m = r.json();
        assert_eq!(str_of(&m, "public_key"), pk);
        assert_eq!(u64_of(&m, "seq"), seq, "{m}");
        assert!(u64_of(&m, "stored_at") >= 1, "{m}");
    }
    let g = get(&url, &format!("/api/v1/mutable/{pk}?salt=s")).json();
    assert_eq!(str_of(&g, "value"), "6:second");
    assert_eq!(u64_of(&g, "seq"), 2);

    let (status, _) = b.terminate();
    assert!(
        status.success(),
        "dht node --http exits 0 on SIGTERM: {status}"
    );
    drop(a);
}

#[test]
fn client_commands_act_through_a_node_with_node_url() {
    let home = temp_dir("http-client");
    let devnet = DevnetProc::start(home.path(), 4, 1);
    let url = devnet.url.clone();
    let c = Client::new(home.path());

    let put = c.run(&["put", "--node", &url, "through the api"]);
    put.assert_success();
    let key = put.stdout_text().trim().to_string();
    assert_eq!(key, immutable_key(b"through the api"));
    let got = c.run(&["get", "--node", &url, &key]);
    got.assert_success();
    assert_eq!(got.stdout_text(), "through the api");
    let missing = c.run(&[
        "get",
        "--node",
        &url,
        "0123456789012345678901234567890123456789",
    ]);
    assert_eq!(missing.code, Some(1), "{missing}");

    // Mutable: signed by the command with its key file, seq counting up.
    let key_file = home.path().join("key");
    let kg = c.run(&["keygen", "--out", &key_file.display().to_string()]);
    kg.assert_success();
    let pk = kg.stdout_text().trim().to_string();
    let k = key_file.display().to_string();
    for (seq, v) in [(1, "one"), (2, "two")] {
        let p = c.run(&[
            "put",
            "--node",
            &url,
            "--mutable",
            "-k",
            &k,
            "--salt",
            "n",
            v,
        ]);
        p.assert_success();
        let words: Vec<String> = p
            .stdout_text()
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(words.len(), 2, "{p}");
        assert_eq!(words[1], seq.to_string(), "{p}");
    }
    let g = c.run(&["get", "--node", &url, "--mutable", "--salt", "n", &pk]);
    g.assert_success();
    assert_eq!(g.stdout_text(), "two");

    let ih = "1111111111111111111111111111111111111111";
    c.run(&["announce", "--node", &url, "-p", "7001", ih])
        .assert_success();
    let peers = c.run(&["peers", "--node", &url, ih]);
    peers.assert_success();
    assert!(
        peers.stdout_text().lines().any(|l| l == "127.0.0.1:7001"),
        "{peers}"
    );

    let l = c.run(&["lookup", "--node", &url, &key]);
    l.assert_success();
    let text = l.stdout_text();
    assert!(text.starts_with(&format!("lookup {key}\n")), "{text}");
    assert!(
        text.contains("round 1:") && text.contains("closest "),
        "{text}"
    );

    // A URL where nothing listens: a clear error, exit 1.
    let dead = c.run(&["get", "--node", "http://127.0.0.1:1", &key]);
    assert_eq!(dead.code, Some(1), "{dead}");
    assert!(dead.stderr.contains("cannot reach the node"), "{dead}");
    let bad = c.run(&["get", "--node", "ftp://x", &key]);
    assert_ne!(bad.code, Some(0), "{bad}");
    drop(devnet);
}

#[test]
fn non_loopback_http_is_refused_without_http_public() {
    let home = temp_dir("http-public");
    let data = home.path().join("d");
    let args: Vec<String> = [
        "node",
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        &data.display().to_string(),
        "--bootstrap",
        "127.0.0.1:9",
        "--http",
        "0.0.0.0:0",
    ]
    .map(String::from)
    .to_vec();
    let out = run_dht(home.path(), &args, None, None);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("--http-public"), "{out}");
    assert!(out.stdout.is_empty(), "nothing starts: {out}");

    let devnet: Vec<String> = ["devnet", "--nodes", "2", "--http", "0.0.0.0:0"]
        .map(String::from)
        .to_vec();
    let out = run_dht(home.path(), &devnet, None, None);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("--http-public"), "{out}");

    // --http-public means nothing without --http.
    let out = run_dht(
        home.path(),
        &["devnet".into(), "--http-public".into()],
        None,
        None,
    );
    assert_eq!(out.code, Some(2), "{out}");
}

/// The server holds at most `CONNECTIONS_MAX` (64) connections: one past them is closed at once,
/// and connections that send nothing are closed after the 10 s header timeout, which frees the
/// places for real requests again.
#[test]
fn idle_connections_are_capped_and_timed_out() {
    use std::io::Read;
    use std::net::TcpStream;
    use std::time::Instant;
    const CONNECTIONS_MAX: usize = 64;
    let home = temp_dir("http-idle");
    let devnet = DevnetProc::start(home.path(), 2, 1);
    let url = devnet.url.clone();
    let addr = addr_of(&url);
    assert_eq!(get(&url, "/api/v1/nodes").status, 200);

    let idle: Vec<TcpStream> = (0..CONNECTIONS_MAX)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    // Let the server accept them all before the one too many.
    std::thread::sleep(Duration::from_millis(500));
    let mut extra = TcpStream::connect(addr).expect("the kernel accepts it");
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    // Closed by the server at once: EOF (or a reset), not a read timeout.
    match extra.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the connection past the cap was not closed: {other:?}"),
    }

    // Each idle connection is closed by the header timeout (10 s), well within 40 s.
    let started = Instant::now();
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
        let r = s.read(&mut buf);
        assert!(
            r.is_ok() || matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "an idle connection stayed open: {r:?}"
        );
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5),
        "closed too soon: {waited:?}"
    );
    // The places are free again.
    assert_eq!(get(&url, "/api/v1/nodes").status, 200);
}
