//! Interoperability with the `mainline` crate (pubky/mainline, the version pinned in
//! crates/dht/Cargo.toml), a Rust Mainline DHT none of us wrote. Two loopback networks:
//!
//! - a network of `mainline` server nodes, where our client (an in-process, read-only
//!   `dht_node::Dht`, as the `dht` command's clients are) puts and gets immutable and mutable
//!   items and announces and finds peers, and its values cross over to `mainline` clients and
//!   back;
//! - a network of our nodes (in-process `dht_node::Dht`), where `mainline` clients do the same.
//!
//! Every writer and reader is a different node, so a value is found only through the
//! network. Everything binds 127.0.0.1; every wait is bounded by [`STEP_TIMEOUT`]. See
//! docs/interop.md.

mod common;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use dht_node::proto::Id as OurId;
use dht_node::proto::MutableItem as OurItem;
use dht_node::proto::NodeStats;
use dht_node::Dht as OurDht;
use futures_lite::StreamExt;
use mainline::async_dht::AsyncDht;

/// `mainline` server nodes in the network of direction A.
const MAINLINE_NODES: usize = 8;
/// Our nodes in the network of direction B.
const OUR_NODES: usize = 8;
/// The node of a network that clients bootstrap from. Not node 0: a `mainline` node started
/// without bootstrap nodes adds whoever sends it a `find_node` to its routing table, under
/// the ID that `find_node` looks for, even a read-only client that will never answer; the
/// network's lookups would then wait for clients that left.
const CLIENT_BOOTSTRAP: usize = 1;
/// Upper bound on one step: starting or bootstrapping a node, one put, get or announce.
/// Either implementation ends a lookup about 2 s after its last unanswered request.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at binding a `mainline` node to a free port (another process may take the port
/// between our probe and its bind).
const BIND_ATTEMPTS_MAX: usize = 5;
/// How long the transaction-ID probe waits for each answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest datagram the probe reads.
const PROBE_DATAGRAM_MAX: usize = 2048;

/// Appended to the failures of our client's puts: a `mainline` node drops a query it cannot
/// decode without a word, and its trace log names the field it wanted.
const DROPPED_HINT: &str =
    "(RUST_LOG=mainline=trace shows the datagrams mainline could not decode)";

/// Awaits `f`, failing the test if it takes longer than [`STEP_TIMEOUT`].
async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP_TIMEOUT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result within {STEP_TIMEOUT:?}"),
    }
}

// --- values ---------------------------------------------------------------------------

/// `raw` as a bencoded byte string: our API takes and returns bencoded values, while
/// `mainline` stores only byte strings and hands out their contents.
fn bencode_bytes(raw: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", raw.len()).into_bytes();
    out.extend_from_slice(raw);
    out
}

/// The contents of a bencoded byte string; `None` if `bencoded` is anything else.
fn unbencode_bytes(bencoded: &[u8]) -> Option<Vec<u8>> {
    let colon = bencoded.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&bencoded[..colon]).ok()?.parse().ok()?;
    let body = &bencoded[colon + 1..];
    (body.len() == len).then(|| body.to_vec())
}

/// 20 bytes derived from `label`: distinct info-hashes and values per exchange.
fn hash20(label: &str) -> [u8; 20] {
    OurId::sha1(label.as_bytes()).0
}

/// An ed25519 seed derived from `label`; both implementations derive the same key from it.
fn seed32(label: &str) -> [u8; 32] {
    let mut seed = [0u8; 32];
    seed[..20].copy_from_slice(&hash20(label));
    seed[20..].copy_from_slice(&hash20(&format!("{label}/2"))[..12]);
    seed
}

/// The ed25519 public key of `seed`.
fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_bytes()
}

// --- clients --------------------------------------------------------------------------

/// A client of either implementation, with values as raw bytes.
enum Client {
    /// Our read-only node.
    Ours(OurDht),
    /// A `mainline` node in client mode.
    Mainline(AsyncDht),
}

impl Client {
    fn name(&self) -> &'static str {
        match self {
            Client::Ours(_) => "ours",
            Client::Mainline(_) => "mainline",
        }
    }

    /// Puts an immutable item whose value is the byte string `raw`; returns its target.
    async fn put_immutable(&self, raw: &[u8], label: &str) -> [u8; 20] {
        let what = format!("{label}: {} put_immutable", self.name());
        match self {
            Client::Ours(d) => {
                let r = bounded(&what, d.put_immutable(bencode_bytes(raw)))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(
                    r.stored_at > 0,
                    "{what}: stored nowhere: {r:?}\n{DROPPED_HINT}"
                );
                r.target.0
            }
            Client::Mainline(d) => {
                let id = bounded(&what, d.put_immutable(raw))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e:?}"));
                *id.as_bytes()
            }
        }
    }

    /// The byte string stored at `target`, if found.
    async fn get_immutable(&self, target: [u8; 20], label: &str) -> Option<Vec<u8>> {
        let what = format!("{label}: {} get_immutable", self.name());
        match self {
            Client::Ours(d) => {
                let r = bounded(&what, d.get_immutable(OurId(target)))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                r.value.map(|v| {
                    unbencode_bytes(&v).unwrap_or_else(|| panic!("{what}: not a string: {v:?}"))
                })
            }
            Client::Mainline(d) => bounded(&what, d.get_immutable(mainline::Id::from(&target)))
                .await
                .map(|v| v.to_vec()),
        }
    }

    /// Signs and puts a mutable item whose value is the byte string `raw`.
    async fn put_mutable(
        &self,
        seed: &[u8; 32],
        salt: &[u8],
        seq: i64,
        raw: &[u8],
        cas: Option<i64>,
        label: &str,
    ) {
        let what = format!(
            "{label}: {} put_mutable seq {seq} salt {salt:?}",
            self.name()
        );
        match self {
            Client::Ours(d) => {
                let key = ed25519_dalek::SigningKey::from_bytes(seed);
                let item = OurItem::sign(&key, salt, seq, bencode_bytes(raw)).expect("sign item");
                let r = bounded(&what, d.put_mutable(item, cas))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(
                    r.stored_at > 0,
                    "{what}: stored nowhere: {r:?}\n{DROPPED_HINT}"
                );
            }
            Client::Mainline(d) => {
                let key = mainline::SigningKey::from_bytes(seed);
                let salt = (!salt.is_empty()).then_some(salt);
                let item = mainline::MutableItem::new(key, raw, seq, salt);
                let r = bounded(&what, d.put_mutable(item, cas))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e:?}"));
                assert!(r.stored_at > 0, "{what}: stored nowhere: {r:?}");
            }
        }
    }

    /// The most recent mutable item of `public_key` and `salt`: (seq, raw value).
    async fn get_mutable(
        &self,
        public_key: [u8; 32],
        salt: &[u8],
        label: &str,
    ) -> Option<(i64, Vec<u8>)> {
        let what = format!("{label}: {} get_mutable salt {salt:?}", self.name());
        match self {
            Client::Ours(d) => {
                let r = bounded(&what, d.get_mutable(public_key, salt.to_vec()))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                r.value.map(|item| {
                    let raw = unbencode_bytes(&item.value)
                        .unwrap_or_else(|| panic!("{what}: not a string: {item:?}"));
                    (item.seq, raw)
                })
            }
            Client::Mainline(d) => {
                let salt = (!salt.is_empty()).then_some(salt);
                bounded(&what, d.get_mutable_most_recent(&public_key, salt))
                    .await
                    .map(|item| (item.seq(), item.value().to_vec()))
            }
        }
    }

    /// Announces a peer of `info_hash` on `port`.
    async fn announce(&self, info_hash: [u8; 20], port: u16, label: &str) {
        let what = format!("{label}: {} announce port {port}", self.name());
        match self {
            Client::Ours(d) => {
                let r = bounded(&what, d.announce(OurId(info_hash), Some(port)))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(
                    r.stored_at > 0,
                    "{what}: stored nowhere: {r:?}\n{DROPPED_HINT}"
                );
            }
            Client::Mainline(d) => {
                bounded(
                    &what,
                    d.announce_peer(mainline::Id::from(&info_hash), Some(port)),
                )
                .await
                .unwrap_or_else(|e| panic!("{what}: {e:?}"));
            }
        }
    }

    /// Our node's counters; `None` for a `mainline` client.
    async fn our_stats(&self) -> Option<NodeStats> {
        match self {
            Client::Ours(d) => Some(our_stats(d).await),
            Client::Mainline(_) => None,
        }
    }

    /// Every peer of `info_hash` the lookup found.
    async fn get_peers(&self, info_hash: [u8; 20], label: &str) -> Vec<SocketAddr> {
        let what = format!("{label}: {} get_peers", self.name());
        match self {
            Client::Ours(d) => bounded(&what, d.get_peers(OurId(info_hash)))
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"))
                .value
                .unwrap_or_default(),
            Client::Mainline(d) => {
                let mut stream = d.get_peers(mainline::Id::from(&info_hash));
                let mut peers = Vec::new();
                // The stream yields each responder's peers and ends with the lookup.
                bounded(&what, async {
                    while let Some(batch) = stream.next().await {
                        peers.extend(batch.into_iter().map(SocketAddr::V4));
                    }
                })
                .await;
                peers
            }
        }
    }
}

/// Our read-only client bootstrapping from `bootstrap`; panics if it found nobody.
async fn our_client(bootstrap: SocketAddr, label: &str) -> Client {
    let d = OurDht::builder()
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .bootstrap([bootstrap.to_string()])
        .read_only(true)
        .spawn()
        .await
        .expect("start our client");
    let contacts = bounded("our client bootstrap", d.bootstrapped())
        .await
        .expect("our client bootstrap");
    assert!(
        contacts > 0,
        "{label}: our client learnt no node from {bootstrap}\n{}",
        probe_transaction_ids(bootstrap)
    );
    eprintln!("{label}: our client {} at {}", d.id(), d.local_addr());
    Client::Ours(d)
}

/// A `mainline` client bootstrapping from `bootstrap`; panics if it found nobody.
async fn mainline_client(bootstrap: SocketAddr, label: &str) -> Client {
    let d = mainline_node(false, &[bootstrap]);
    let ok = bounded("mainline client bootstrap", d.bootstrapped()).await;
    assert!(
        ok,
        "{label}: mainline client learnt no node from {bootstrap}"
    );
    Client::Mainline(d)
}

// --- networks -------------------------------------------------------------------------

/// A `mainline` node on 127.0.0.1 (server mode if `server`), bootstrapping from `bootstrap`
/// (none: the first node of a network). The port is chosen here: left alone, `mainline`
/// first tries the well-known 6881.
fn mainline_node(server: bool, bootstrap: &[SocketAddr]) -> AsyncDht {
    let mut last_error = None;
    for _ in 0..BIND_ATTEMPTS_MAX {
        let mut b = mainline::Dht::builder();
        b.bind_address(Ipv4Addr::LOCALHOST)
            .port(common::free_udp_port());
        if server {
            b.server_mode();
        }
        if bootstrap.is_empty() {
            b.no_bootstrap();
        } else {
            b.bootstrap(bootstrap);
        }
        match b.build() {
            Ok(d) => return d.as_async(),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last_error = Some(e),
            Err(e) => panic!("start a mainline node: {e}"),
        }
    }
    panic!("start a mainline node: {BIND_ATTEMPTS_MAX} ports taken, last: {last_error:?}");
}

/// The UDP address of a `mainline` node.
async fn mainline_addr(d: &AsyncDht) -> SocketAddr {
    SocketAddr::V4(bounded("mainline info", d.info()).await.local_addr())
}

/// The counters of one of our nodes.
async fn our_stats(d: &OurDht) -> NodeStats {
    bounded("our node status", d.status())
        .await
        .expect("our node status")
        .stats
}

/// Fails the test if one of our nodes met a datagram it could not decode: an exchange can
/// succeed through the other nodes while one kind of message from the other implementation
/// is dropped.
fn assert_all_decoded(who: &str, stats: &NodeStats) {
    assert_eq!(
        stats.malformed, 0,
        "{who}: datagrams that did not decode: {stats:?}"
    );
}

/// `MAINLINE_NODES` server nodes: the first alone, each other one bootstrapping from the
/// first; then each looks itself up again, so the early ones learn the later ones.
async fn mainline_network() -> Vec<AsyncDht> {
    let first = mainline_node(true, &[]);
    let bootstrap = mainline_addr(&first).await;
    let mut nodes = vec![first];
    for i in 1..MAINLINE_NODES {
        let d = mainline_node(true, &[bootstrap]);
        let ok = bounded("mainline node bootstrap", d.bootstrapped()).await;
        assert!(ok, "mainline node {i} learnt no node from {bootstrap}");
        nodes.push(d);
    }
    for d in &nodes[1..] {
        bounded("mainline node refresh", d.bootstrapped()).await;
    }
    nodes
}

/// `OUR_NODES` of our nodes: the first alone, each other one bootstrapping from the first.
async fn our_network() -> Vec<OurDht> {
    let lo = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let first = OurDht::builder()
        .bind(lo)
        .bootstrap(Vec::<String>::new())
        .spawn()
        .await
        .expect("start our node 0");
    let bootstrap = first.local_addr().to_string();
    let mut nodes = vec![first];
    for i in 1..OUR_NODES {
        let d = OurDht::builder()
            .bind(lo)
            .bootstrap([bootstrap.as_str()])
            .spawn()
            .await
            .unwrap_or_else(|e| panic!("start our node {i}: {e}"));
        let contacts = bounded("our node bootstrap", d.bootstrapped())
            .await
            .expect("our node bootstrap");
        assert!(contacts > 0, "our node {i} learnt no node from {bootstrap}");
        nodes.push(d);
    }
    nodes
}

// --- the exchange ---------------------------------------------------------------------

/// `writer` puts an immutable item, a mutable item without salt (seq 1, then seq 2 with
/// cas 1) and one with salt, and announces a peer; `reader` must find each.
async fn exchange(network: &str, writer: &Client, reader: &Client) {
    let label = format!("{network} network, {} -> {}", writer.name(), reader.name());
    let start = std::time::Instant::now();

    let value = format!("immutable item of {label}").into_bytes();
    let target = writer.put_immutable(&value, &label).await;
    assert_eq!(
        target,
        OurId::sha1(&bencode_bytes(&value)).0,
        "{label}: immutable target"
    );
    let got = reader.get_immutable(target, &label).await;
    assert_eq!(
        got.as_deref(),
        Some(&value[..]),
        "{label}: immutable item {}",
        hex::encode(target)
    );

    for salt in [&b""[..], &b"salt"[..]] {
        let seed = seed32(&format!("{label} salt {salt:?}"));
        let key = public_key(&seed);
        let v1 = format!("mutable seq 1 of {label}").into_bytes();
        writer.put_mutable(&seed, salt, 1, &v1, None, &label).await;
        let got = reader.get_mutable(key, salt, &label).await;
        assert_eq!(got, Some((1, v1)), "{label}: mutable item, salt {salt:?}");

        let v2 = format!("mutable seq 2 of {label}").into_bytes();
        writer
            .put_mutable(&seed, salt, 2, &v2, Some(1), &label)
            .await;
        let got = reader.get_mutable(key, salt, &label).await;
        assert_eq!(
            got,
            Some((2, v2)),
            "{label}: mutable item replaced, salt {salt:?}"
        );
    }

    let info_hash = hash20(&format!("torrent of {label}"));
    // A port number that is stored and handed back, never connected to.
    let port = 20_000 + u16::from_be_bytes([info_hash[0], info_hash[1]]) % 20_000;
    writer.announce(info_hash, port, &label).await;
    let peers = reader.get_peers(info_hash, &label).await;
    let want = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    assert!(
        peers.contains(&want),
        "{label}: get_peers found {peers:?}, not {want}"
    );
    eprintln!("{label}: every item and peer found ({:?})", start.elapsed());
}

/// Sends a `ping` with a 2-byte and with a 4-byte transaction ID to `addr` and reports,
/// with hex dumps, which was answered: the failure message when our client cannot join a
/// `mainline` network.
fn probe_transaction_ids(addr: SocketAddr) -> String {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind probe socket");
    socket
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .expect("probe read timeout");
    let mut report = format!("probe of {addr}:\n");
    for tid in [&b"pq"[..], &b"pqrs"[..]] {
        let mut ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t".to_vec();
        ping.extend_from_slice(&bencode_bytes(tid));
        ping.extend_from_slice(b"1:y1:qe");
        socket.send_to(&ping, addr).expect("send probe");
        let mut buf = [0u8; PROBE_DATAGRAM_MAX];
        let answer = match socket.recv_from(&mut buf) {
            Ok((n, _)) => format!("answered {}", dump(&buf[..n])),
            Err(e) => format!("no answer in {PROBE_TIMEOUT:?} ({e})"),
        };
        report += &format!(
            "  ping with a {}-byte transaction ID {}\n    {answer}\n",
            tid.len(),
            dump(&ping)
        );
    }
    report
}

/// A datagram in hex and as escaped ASCII.
fn dump(datagram: &[u8]) -> String {
    format!("{} ({})", hex::encode(datagram), datagram.escape_ascii())
}

/// Sends both implementations' logs to the test's output, filtered by `RUST_LOG` (e.g.
/// `RUST_LOG=mainline=trace` shows every datagram `mainline` could not decode).
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

// --- tests ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainline_clients_exchange_on_a_mainline_network() {
    init_logs();
    // Checks the harness itself, without our code: if this fails, the other tests' failures
    // say nothing about our node.
    let network = mainline_network().await;
    let bootstrap = mainline_addr(&network[CLIENT_BOOTSTRAP]).await;
    let writer = mainline_client(bootstrap, "harness").await;
    let reader = mainline_client(bootstrap, "harness").await;
    exchange("mainline", &writer, &reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_exchanges_on_a_mainline_network() {
    init_logs();
    let network = mainline_network().await;
    let bootstrap = mainline_addr(&network[CLIENT_BOOTSTRAP]).await;
    let ours = our_client(bootstrap, "direction A").await;
    let other_ours = our_client(bootstrap, "direction A").await;
    let theirs = mainline_client(bootstrap, "direction A").await;
    exchange("mainline", &ours, &other_ours).await;
    exchange("mainline", &ours, &theirs).await;
    exchange("mainline", &theirs, &ours).await;
    for (who, c) in [("our client", &ours), ("our other client", &other_ours)] {
        assert_all_decoded(who, &c.our_stats().await.expect("ours"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainline_clients_exchange_on_our_network() {
    init_logs();
    let network = our_network().await;
    let bootstrap = network[CLIENT_BOOTSTRAP].local_addr();
    let theirs = mainline_client(bootstrap, "direction B").await;
    let other_theirs = mainline_client(bootstrap, "direction B").await;
    let ours = our_client(bootstrap, "direction B").await;
    exchange("our", &theirs, &other_theirs).await;
    exchange("our", &theirs, &ours).await;
    exchange("our", &ours, &theirs).await;
    assert_all_decoded("our client", &ours.our_stats().await.expect("ours"));
    for (i, d) in network.iter().enumerate() {
        let stats = our_stats(d).await;
        assert_all_decoded(&format!("our node {i}"), &stats);
        eprintln!("our node {i}: {stats:?}");
    }
}
