//! Crash consistency of the data directory: no acknowledged put is lost at any crash point.
//!
//! A random workload of BEP 44 puts (immutable and signed mutable, with re-puts and stale
//! sequence numbers) and BEP 5 announces is driven through a journaling [`Node`] the way the
//! runtime's driver does it: a batch of KRPC queries is handed to the node, the batch's store
//! changes are committed with [`DataDir::commit`], and only a batch whose commit returned Ok has
//! its replies count as acknowledgements. Under the data directory sits a fault-injecting
//! backend (`fault/mod.rs`). A fault-free run counts the writes and syncs the whole run issues,
//! from creating the directory on; then the run is repeated, once for each of those points, with
//! the power lost there (the unsynced writes land in one of several ways: none, a prefix with a
//! torn last write, a reordered subset, all), and once for each with that one operation failing
//! instead. After every run the directory is opened again, sometimes through a second power loss
//! during that recovery, and finally opened plainly, and compared with a model built from the
//! node's replies:
//!
//! - the directory opens without error;
//! - its items and peers are exactly those of the acknowledged batches, in order, plus at most
//!   one unacknowledged batch whole (a commit in flight may land): so every acknowledged put is
//!   there with its value, no item is half-written or mixed from two puts, and nothing appears
//!   that was never put.
//!
//! Cases: `DHT_CRASH_CASES` (default [`CASES_DEFAULT`]); each case tries every crash point of
//! its workload, so a case costs about twice its number of points in runs.
//! `DHT_CRASH_CASES=64 cargo test --release -p dht-node --test crash_points` for a longer search.

mod fault;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use dht_node::clock::Clock;
use dht_node::disk::DataDir;
use dht_proto::bep44::{immutable_target, MutableItem};
use dht_proto::message::{Body, Message, Method, PutArgs, Query};
use dht_proto::node::{Config, Node};
use dht_proto::store::{ItemValue, StoreChange, PEER_LIFETIME};
use dht_proto::Id;
use ed25519_dalek::SigningKey;
use fault::{FaultyFile, Landing, Plan, Probe};
use proptest::prelude::*;

/// Proptest cases when `DHT_CRASH_CASES` is unset: about 30 s in a debug build on a busy 2-core
/// machine.
const CASES_DEFAULT: u32 = 6;
/// Writers (source addresses 127.0.0.1 up).
const SOURCES: u8 = 3;
/// Distinct immutable values and mutable payloads.
const VALUES: u8 = 8;
/// Mutable-item signing keys.
const KEYS: u8 = 2;
/// Salts per key (the empty salt and one more).
const SALTS: u8 = 2;
/// Highest sequence number a mutable put uses (low, so that stale and equal ones happen).
const SEQ_MAX: i64 = 4;
/// Info-hashes announced.
const INFO_HASHES: u8 = 3;
/// Batches in a workload, and operations in a batch.
const BATCHES_MAX: usize = 6;
const OPS_PER_BATCH_MAX: usize = 4;
/// Points of a second power loss tried while the directory is being recovered.
const RECOVERY_POINTS_MAX: u64 = 12;

/// One writer's request.
#[derive(Debug, Clone, Copy)]
enum Op {
    Immutable {
        source: u8,
        value: u8,
    },
    Mutable {
        source: u8,
        key: u8,
        salt: u8,
        seq: i64,
        value: u8,
    },
    Announce {
        source: u8,
        info_hash: u8,
        port: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..SOURCES, 0..VALUES).prop_map(|(source, value)| Op::Immutable { source, value }),
        4 => (0..SOURCES, 0..KEYS, 0..SALTS, 1..=SEQ_MAX, 0..VALUES).prop_map(
            |(source, key, salt, seq, value)| Op::Mutable { source, key, salt, seq, value }
        ),
        2 => (0..SOURCES, 0..INFO_HASHES, 1u16..4).prop_map(|(source, info_hash, port)| {
            Op::Announce { source, info_hash, port: 6880 + port }
        }),
    ]
}

fn source_addr(source: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + source)), 7000)
}

/// A bencoded byte string of 10 to about 900 bytes, so that batches span several pages.
fn value_bytes(value: u8, tag: &str) -> Vec<u8> {
    let len = 10 + (usize::from(value) * 131) % 880;
    let body: String = format!("{tag}{value:03}-")
        .chars()
        .chain(std::iter::repeat('x'))
        .take(len)
        .collect();
    format!("{}:{body}", body.len()).into_bytes()
}

fn signing_key(key: u8) -> SigningKey {
    SigningKey::from_bytes(&[key + 1; 32])
}

fn salt_bytes(salt: u8) -> Vec<u8> {
    if salt == 0 {
        Vec::new()
    } else {
        vec![b's', salt]
    }
}

impl Op {
    fn from(&self) -> SocketAddr {
        match *self {
            Op::Immutable { source, .. }
            | Op::Mutable { source, .. }
            | Op::Announce { source, .. } => source_addr(source),
        }
    }

    /// The target (item) or info-hash (announce) the write token is for.
    fn target(&self) -> Id {
        match *self {
            Op::Immutable { value, .. } => immutable_target(&value_bytes(value, "imm")),
            Op::Mutable { key, salt, .. } => dht_proto::bep44::mutable_target(
                &signing_key(key).verifying_key().to_bytes(),
                &salt_bytes(salt),
            ),
            Op::Announce { info_hash, .. } => Id([0xA0 + info_hash; 20]),
        }
    }

    /// The peer an announce adds.
    fn peer(&self) -> Option<SocketAddr> {
        match *self {
            Op::Announce { port, .. } => Some(SocketAddr::new(self.from().ip(), port)),
            _ => None,
        }
    }

    /// The query that fetches the write token.
    fn token_query(&self) -> Method {
        match self {
            Op::Announce { .. } => Method::GetPeers {
                info_hash: self.target(),
                want: None,
            },
            _ => Method::Get {
                target: self.target(),
                seq: None,
            },
        }
    }

    /// The store query itself, and the value a stored item must then hold.
    fn store_query(&self, token: Vec<u8>) -> (Method, Option<ItemValue>) {
        match *self {
            Op::Immutable { value, .. } => {
                let v = value_bytes(value, "imm");
                (
                    Method::Put(PutArgs {
                        token,
                        value: v.clone(),
                        mutable: None,
                        // As BEP 44 writes it; our own client's puts add the target.
                        target: None,
                    }),
                    Some(ItemValue::Immutable(v)),
                )
            }
            Op::Mutable {
                key,
                salt,
                seq,
                value,
                ..
            } => {
                let item = MutableItem::sign(
                    &signing_key(key),
                    &salt_bytes(salt),
                    seq,
                    value_bytes(value, "mut"),
                )
                .expect("a valid item");
                (
                    Method::Put(PutArgs::mutable(&item, token, None)),
                    Some(ItemValue::Mutable(item)),
                )
            }
            Op::Announce {
                info_hash, port, ..
            } => (
                Method::AnnouncePeer {
                    info_hash: Id([0xA0 + info_hash; 20]),
                    port,
                    implied_port: false,
                    token,
                },
                None,
            ),
        }
    }
}

fn query(tid: Vec<u8>, method: Method) -> Vec<u8> {
    Message {
        transaction_id: tid,
        version: None,
        requester_ip: None,
        read_only: false,
        body: Body::Query(Query {
            sender_id: Id([0x11; 20]),
            method,
        }),
    }
    .encode()
}

/// An item as the model and the disk hold it: the value, the writer it is charged to, and its
/// expiry in Unix milliseconds (the unit on disk).
type ItemRecord = (ItemValue, IpAddr, u64);

/// A store's contents: items by target, peers by (info-hash, peer) with expiry in Unix ms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Contents {
    items: BTreeMap<Id, ItemRecord>,
    peers: BTreeMap<(Id, SocketAddr), u64>,
}

/// What an accepted store query did, as the node's replies and its memory say.
#[derive(Debug, Clone)]
enum Effect {
    Item(Id, ItemRecord),
    Peer(Id, SocketAddr, u64),
}

impl Contents {
    fn apply(&mut self, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::Item(target, rec) => {
                    self.items.insert(*target, rec.clone());
                }
                Effect::Peer(ih, peer, exp) => {
                    self.peers.insert((*ih, *peer), *exp);
                }
            }
        }
    }
}

/// One batch as it went: what the node accepted, and whether the commit returned Ok (the
/// replies were sent: the batch is acknowledged).
#[derive(Debug)]
struct BatchOutcome {
    accepted: Vec<Effect>,
    committed: bool,
}

#[derive(Debug)]
struct RunOutcome {
    batches: Vec<BatchOutcome>,
    probe: Probe,
}

/// Runs `workload` on a data directory at `dir` through a [`FaultyFile`] following `plan`, as
/// the driver does; stops when the backend has lost power (the process is gone).
fn run(dir: &Path, clock: &Clock, plan: Plan, workload: &[Vec<Op>]) -> RunOutcome {
    let mut probe = None;
    let opened = DataDir::open_with_backend(dir, |file| {
        let (backend, p) = FaultyFile::new(file, plan).expect("read the store");
        probe = Some(p);
        backend
    });
    let probe = probe.expect("the backend was made");
    let mut out = RunOutcome {
        batches: Vec::new(),
        probe,
    };
    let disk = match opened {
        Ok(d) => d,
        Err(e) => {
            assert!(
                out.probe.fired(),
                "opening a new directory failed without a fault: {e}"
            );
            return out;
        }
    };
    let config = Config {
        journal: true,
        ..Config::default()
    };
    let mut node = Node::new(config, Id([0x42; 20]), 7, clock.now());
    let mut changes: Vec<StoreChange> = Vec::new();
    for (b, batch) in workload.iter().enumerate() {
        let now = clock.now();
        // The write tokens: answers to get and get_peers, which change nothing in the store.
        for (i, op) in batch.iter().enumerate() {
            node.handle_datagram(
                now,
                op.from(),
                &query(vec![b'g', i as u8], op.token_query()),
            );
        }
        assert!(
            node.poll_store_change().is_none(),
            "a get changed the store"
        );
        let mut tokens = BTreeMap::new();
        while let Some(t) = node.poll_transmit() {
            let m = Message::decode(&t.data).expect("the node's reply decodes");
            if let (Body::Response(r), [b'g', i]) = (m.body, m.transaction_id.as_slice()) {
                tokens.insert(*i as usize, r.token.expect("a get answer has a token"));
            }
        }
        // The batch's stores, one by one, noting what the node then holds.
        let mut held = Vec::new();
        for (i, op) in batch.iter().enumerate() {
            let token = tokens.get(&i).cloned().expect("a token for every op");
            let (method, value) = op.store_query(token);
            node.handle_datagram(now, op.from(), &query(vec![b'p', i as u8], method));
            let effect = match value {
                Some(value) => node.storage().item(&op.target()).and_then(|it| {
                    (it.value == value).then(|| {
                        Effect::Item(
                            it.target,
                            (it.value.clone(), it.source, clock.to_unix_ms(it.expires)),
                        )
                    })
                }),
                None => op.peer().map(|peer| {
                    Effect::Peer(op.target(), peer, clock.to_unix_ms(now + PEER_LIFETIME))
                }),
            };
            held.push(effect);
        }
        changes.clear();
        while let Some(c) = node.poll_store_change() {
            changes.push(c);
        }
        let committed = disk.commit(&changes, clock).is_ok();
        // The replies are taken either way; only a committed batch's are sent.
        let mut accepted = Vec::new();
        while let Some(t) = node.poll_transmit() {
            let m = Message::decode(&t.data).expect("the node's reply decodes");
            let [b'p', i] = m.transaction_id.as_slice() else {
                continue;
            };
            if let Body::Response(_) = m.body {
                let effect = held[*i as usize].clone().unwrap_or_else(|| {
                    panic!("batch {b} op {i}: the node acknowledged a store it does not hold")
                });
                accepted.push((*i, effect));
            }
        }
        accepted.sort_by_key(|(i, _)| *i);
        out.batches.push(BatchOutcome {
            accepted: accepted.into_iter().map(|(_, e)| e).collect(),
            committed,
        });
        if out.probe.dead() {
            break;
        }
    }
    drop(node);
    drop(disk);
    out
}

/// The contents a directory may hold after `outcome`: the acknowledged batches applied in
/// order, alone or with one unacknowledged batch in its place among them.
fn allowed(outcome: &RunOutcome) -> Vec<Contents> {
    let build = |extra: Option<usize>| {
        let mut c = Contents::default();
        for (i, b) in outcome.batches.iter().enumerate() {
            if b.committed || Some(i) == extra {
                c.apply(&b.accepted);
            }
        }
        c
    };
    let mut all = vec![build(None)];
    for (i, b) in outcome.batches.iter().enumerate() {
        if !b.committed {
            all.push(build(Some(i)));
        }
    }
    all
}

/// Opens the directory plainly and reads everything it holds.
fn read_back(dir: &Path, clock: &Clock) -> Result<Contents, String> {
    let d = DataDir::open(dir).map_err(|e| format!("the directory does not open: {e}"))?;
    let mut c = Contents::default();
    for it in d.load_items(clock).map_err(|e| e.to_string())? {
        c.items.insert(
            it.target,
            (it.value, it.source, clock.to_unix_ms(it.expires)),
        );
    }
    for (ih, peer, exp) in d.load_peers(clock).map_err(|e| e.to_string())? {
        c.peers.insert((ih, peer), clock.to_unix_ms(exp));
    }
    Ok(c)
}

/// Reopens the directory once through a backend that loses power at `at` (a crash during
/// recovery), loading items and peers as a starting node does.
fn crash_during_recovery(dir: &Path, clock: &Clock, at: u64, landing: Landing) {
    let opened = DataDir::open_with_backend(dir, |file| {
        FaultyFile::new(file, Plan::Stop { at, landing })
            .expect("read the store")
            .0
    });
    if let Ok(d) = opened {
        let _ = d.load_items(clock).and_then(|_| d.load_peers(clock));
    }
}

/// Which unsynced writes land at crash point `at` of a case: every kind in turn, varied by the
/// case's seed.
fn landing_for(seed: u64, at: u64) -> Landing {
    let mix = seed ^ at.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    match (seed.wrapping_add(at)) % 4 {
        0 => Landing::Nothing,
        1 => Landing::Prefix {
            per_mille: (mix % 1001) as u16,
            torn_bytes: Some((mix >> 16) as u16 % 4096),
        },
        2 => Landing::Subset { seed: mix },
        _ => Landing::Prefix {
            per_mille: 1000,
            torn_bytes: None,
        },
    }
}

fn describe(c: &Contents, model: &Contents) -> String {
    let mut lines = Vec::new();
    for (t, rec) in &model.items {
        match c.items.get(t) {
            None => lines.push(format!("  item {t:?} missing")),
            Some(got) if got != rec => lines.push(format!(
                "  item {t:?} differs: seq/value {:?} expected {:?}",
                summary(got),
                summary(rec)
            )),
            _ => {}
        }
    }
    for t in c.items.keys().filter(|t| !model.items.contains_key(t)) {
        lines.push(format!("  item {t:?} was never acknowledged"));
    }
    for (k, exp) in &model.peers {
        if c.peers.get(k) != Some(exp) {
            lines.push(format!("  peer {k:?} missing or stale"));
        }
    }
    for k in c.peers.keys().filter(|k| !model.peers.contains_key(k)) {
        lines.push(format!("  peer {k:?} was never acknowledged"));
    }
    lines.join("\n")
}

fn summary(rec: &ItemRecord) -> (Option<i64>, usize, u64) {
    match &rec.0 {
        ItemValue::Immutable(v) => (None, v.len(), rec.2),
        ItemValue::Mutable(m) => (Some(m.seq), m.value.len(), rec.2),
    }
}

/// Checks the directory against the outcome of the run that left it.
fn check(dir: &Path, clock: &Clock, outcome: &RunOutcome, what: &str) -> Result<(), TestCaseError> {
    let got = read_back(dir, clock).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
    let allowed = allowed(outcome);
    if !allowed.contains(&got) {
        return Err(TestCaseError::fail(format!(
            "{what}: the directory holds neither the acknowledged batches nor those plus one \
             batch in flight; against the acknowledged ones:\n{}",
            describe(&got, &allowed[0])
        )));
    }
    Ok(())
}

/// Where the runs' directories go: in memory where the machine has a tmpfs at /dev/shm, since
/// every run makes and reopens a directory and the real fsyncs of that (the marker, the store's
/// link, redb's commits on reopen) would be most of the test's time; the fault backend decides
/// what survives a crash, not the device.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let mut b = tempfile::Builder::new();
    b.prefix("dht-crash-points-");
    match shm.is_dir() {
        true => b.tempdir_in(shm).or_else(|_| b.tempdir()),
        false => b.tempdir(),
    }
    .expect("make a temporary directory")
}

fn cases() -> u32 {
    std::env::var("DHT_CRASH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES_DEFAULT)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // Each case is hundreds of runs; shrinking a failure still takes a few minutes.
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_acknowledged_put_is_lost_at_any_crash_point(
        workload in prop::collection::vec(
            prop::collection::vec(op(), 1..=OPS_PER_BATCH_MAX),
            1..=BATCHES_MAX,
        ),
        seed in any::<u64>(),
        recovery_crash in prop::option::of(0..RECOVERY_POINTS_MAX),
    ) {
        crash_search(&workload, seed, recovery_crash)?;
    }
}

/// The smallest workload: one immutable put. A power loss or an I/O error while the first
/// start creates the store left a file that was not yet a database, refused at every later
/// start (fixed by creating the store under a temporary name).
#[test]
fn creating_the_store_survives_a_crash_at_every_point() {
    crash_search(
        &[vec![Op::Immutable {
            source: 0,
            value: 0,
        }]],
        0,
        None,
    )
    .unwrap();
}

/// A power loss during a commit that grew the file could leave the new header on the old,
/// shorter file (fixed by syncing a resize at once); and a second power loss while the next
/// start repaired the store could leave a header marked clean on a file longer than it names
/// (fixed by the order in which a staged repair reaches the file), or a header torn between a
/// new god byte and old commit slots (fixed by writing the slots first). Seeds from the search that
/// found them.
#[test]
fn a_crash_during_growth_or_during_recovery_leaves_a_store_that_opens() {
    let one = [vec![Op::Immutable {
        source: 0,
        value: 0,
    }]];
    crash_search(&one, 6_692_630_521_249_267_712, Some(7)).unwrap();
    crash_search(&one, 5_226_145_892_586_749_952, Some(7)).unwrap();
    // The repair's header torn at its 40th byte: the god byte naming the new primary slot,
    // whose contents had not landed (fixed by writing the slots first, the god byte after).
    crash_search(&one, 11_581_209_852_486_684_288, Some(4)).unwrap();
    let three = [
        vec![Op::Immutable {
            source: 0,
            value: 0,
        }],
        vec![
            Op::Mutable {
                source: 2,
                key: 0,
                salt: 0,
                seq: 3,
                value: 4,
            },
            Op::Immutable {
                source: 2,
                value: 2,
            },
            Op::Immutable {
                source: 1,
                value: 7,
            },
            Op::Immutable {
                source: 2,
                value: 5,
            },
        ],
        vec![
            Op::Immutable {
                source: 2,
                value: 5,
            },
            Op::Mutable {
                source: 1,
                key: 0,
                salt: 1,
                seq: 2,
                value: 3,
            },
        ],
    ];
    crash_search(&three, 8_115_823_021_326_868_596, Some(6)).unwrap();
}

/// Crashes `workload` at every point in turn (see the module doc).
fn crash_search(
    workload: &[Vec<Op>],
    seed: u64,
    recovery_crash: Option<u64>,
) -> Result<(), TestCaseError> {
    let clock = Clock::start();
    let tmp = scratch_dir();

    // The fault-free run: every batch acknowledged, and the count of points.
    let dir = tmp.path().join("count");
    let clean = run(&dir, &clock, Plan::Count, workload);
    prop_assert!(
        clean.batches.iter().all(|b| b.committed),
        "a commit failed without a fault"
    );
    check(&dir, &clock, &clean, "after the fault-free run")?;
    let points = clean.probe.points();
    prop_assert!(points > 0);

    // redb's order of page writes varies from run to run, so a run may issue a point or two
    // fewer than the count; most must be reached for the search to mean anything.
    let mut fired = 0;
    for at in 0..points {
        let landing = landing_for(seed, at);
        let dir = tmp.path().join(format!("stop-{at}"));
        let outcome = run(&dir, &clock, Plan::Stop { at, landing }, workload);
        fired += u64::from(outcome.probe.fired());
        if let Some(r) = recovery_crash {
            crash_during_recovery(&dir, &clock, r, landing_for(seed.rotate_left(17), r));
        }
        check(
            &dir,
            &clock,
            &outcome,
            &format!(
                "power lost at point {at} of {points} ({landing:?}), \
                      then a crash in recovery at {recovery_crash:?}"
            ),
        )?;
        std::fs::remove_dir_all(&dir).unwrap();

        let dir = tmp.path().join(format!("fail-{at}"));
        let outcome = run(&dir, &clock, Plan::Fail { at }, workload);
        check(
            &dir,
            &clock,
            &outcome,
            &format!("I/O error at point {at} of {points}"),
        )?;
        std::fs::remove_dir_all(&dir).unwrap();
    }
    prop_assert!(
        fired * 10 >= points * 9,
        "only {fired} of {points} crash points were reached"
    );
    Ok(())
}
