//! The on-disk store against real files in temporary directories: round trips across close and
//! reopen, expiry, the journal's removals, and refusals that leave foreign, damaged, newer or
//! busy directories exactly as they were.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use dht_node::clock::Clock;
use dht_node::disk::{DataDir, Identity, OpenError, MARKER_FILE, STORE_FILE};
use dht_proto::bep44::MutableItem;
use dht_proto::message::NodeInfo;
use dht_proto::store::{ItemValue, StoreChange, StoredItem};
use dht_proto::{Id, Instant};
use ed25519_dalek::SigningKey;

/// A whole-millisecond instant `ms_from_now` after the clock's present, so that the trip through
/// Unix milliseconds on disk gives back exactly the same instant.
fn at(clock: &Clock, ms_from_now: u64) -> Instant {
    Instant::from_millis(clock.now().as_micros() / 1000 + ms_from_now)
}

fn immutable(value: &[u8], expires: Instant) -> StoredItem {
    StoredItem {
        target: dht_proto::bep44::immutable_target(value),
        value: ItemValue::Immutable(value.to_vec()),
        expires,
        source: "192.0.2.7".parse().unwrap(),
    }
}

fn mutable(salt: &[u8], value: &[u8], expires: Instant) -> StoredItem {
    let key = SigningKey::from_bytes(&[7; 32]);
    let m = MutableItem::sign(&key, salt, 3, value.to_vec()).unwrap();
    StoredItem {
        target: m.target(),
        value: ItemValue::Mutable(m),
        expires,
        source: "2001:db8::9".parse().unwrap(),
    }
}

fn peer(info_hash: u8, addr: &str, expires: Instant) -> StoreChange {
    StoreChange::PutPeer {
        info_hash: Id([info_hash; 20]),
        peer: addr.parse().unwrap(),
        expires,
    }
}

/// Every file under `dir` (one level, which is all a data directory has) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = if e.file_type().unwrap().is_file() {
                std::fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            (name, bytes)
        })
        .collect()
}

/// A data directory holding `n` immutable items whose values contain a findable pattern.
fn filled_store(dir: &Path, clock: &Clock, n: usize) -> Vec<StoredItem> {
    let d = DataDir::open(dir).unwrap();
    let items: Vec<StoredItem> = (0..n)
        .map(|i| {
            let value = format!("300:{:0>300}", format!("FINDME-{i:04}"));
            immutable(value.as_bytes(), at(clock, 3_600_000))
        })
        .collect();
    let changes: Vec<StoreChange> = items.iter().cloned().map(StoreChange::PutItem).collect();
    d.commit(&changes, clock).unwrap();
    items
}

#[test]
fn identity_items_peers_and_contacts_survive_close_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/data");
    let clock = Clock::start();
    let identity = Identity {
        id: Id([0x42; 20]),
        signing_seed: [0x17; 32],
    };
    let items = vec![
        immutable(b"5:hello", at(&clock, 60_000)),
        mutable(b"", b"i1e", at(&clock, 70_000)),
        mutable(b"my salt", b"4:spam", at(&clock, 80_000)),
    ];
    let contacts = vec![
        NodeInfo {
            id: Id([1; 20]),
            addr: "10.1.2.3:6881".parse().unwrap(),
        },
        NodeInfo {
            id: Id([0; 20]),
            addr: "[2001:db8::1]:51413".parse().unwrap(),
        },
    ];
    let peers = [
        peer(9, "198.51.100.1:6881", at(&clock, 90_000)),
        peer(9, "[2001:db8::2]:6882", at(&clock, 91_000)),
        peer(8, "198.51.100.3:1", at(&clock, 92_000)),
    ];
    {
        let d = DataDir::open(&dir).unwrap();
        assert_eq!(d.path(), dir);
        assert_eq!(d.load_identity().unwrap(), None);
        d.save_identity(&identity).unwrap();
        let mut changes: Vec<StoreChange> =
            items.iter().cloned().map(StoreChange::PutItem).collect();
        changes.extend(peers.iter().cloned());
        d.commit(&changes, &clock).unwrap();
        d.save_contacts(&contacts).unwrap();
        assert_eq!(d.counts().unwrap(), (3, 3, 2));
    }
    assert!(dir.join(MARKER_FILE).is_file());
    assert!(dir.join(STORE_FILE).is_file());

    let d = DataDir::open(&dir).unwrap();
    assert_eq!(d.load_identity().unwrap(), Some(identity));
    let mut expected = items.clone();
    expected.sort_by_key(|i| i.target);
    assert_eq!(d.load_items(&clock).unwrap(), expected);
    let mut expected_peers: Vec<(Id, SocketAddr, Instant)> = peers
        .iter()
        .map(|p| match p {
            StoreChange::PutPeer {
                info_hash,
                peer,
                expires,
            } => (*info_hash, *peer, *expires),
            _ => unreachable!(),
        })
        .collect();
    expected_peers.sort_by_key(|(ih, p, _)| (*ih, *p));
    let mut loaded_peers = d.load_peers(&clock).unwrap();
    loaded_peers.sort_by_key(|(ih, p, _)| (*ih, *p));
    assert_eq!(loaded_peers, expected_peers);
    assert_eq!(d.load_contacts().unwrap(), contacts);
}

#[test]
fn expiry_survives_a_restart_in_unix_time() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Clock::start();
    let item = immutable(b"3:abc", at(&first, 3_600_000));
    {
        let d = DataDir::open(tmp.path()).unwrap();
        d.commit(&[StoreChange::PutItem(item.clone())], &first)
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    // The next run's clock has a later origin: the same Unix expiry is an earlier instant.
    let second = Clock::start();
    let d = DataDir::open(tmp.path()).unwrap();
    let loaded = d.load_items(&second).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(
        second.to_unix_ms(loaded[0].expires),
        first.to_unix_ms(item.expires)
    );
    assert!(loaded[0].expires < item.expires);
}

#[test]
fn expired_items_and_peers_are_skipped_on_load_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    let live = immutable(b"4:live", at(&clock, 60_000));
    let dead = immutable(b"4:dead", Instant::ZERO);
    {
        let d = DataDir::open(tmp.path()).unwrap();
        d.commit(
            &[
                StoreChange::PutItem(live.clone()),
                StoreChange::PutItem(dead),
                peer(1, "192.0.2.1:1", at(&clock, 60_000)),
                peer(1, "192.0.2.2:2", Instant::ZERO),
            ],
            &clock,
        )
        .unwrap();
        assert_eq!(d.counts().unwrap(), (2, 2, 0));
    }
    let d = DataDir::open(tmp.path()).unwrap();
    assert_eq!(d.load_items(&clock).unwrap(), vec![live]);
    let peers = d.load_peers(&clock).unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].1, "192.0.2.1:1".parse::<SocketAddr>().unwrap());
    // No journal will ever remove what the in-memory store never saw, so the load did.
    assert_eq!(d.counts().unwrap(), (1, 1, 0));
}

#[test]
fn remove_item_and_remove_peer_are_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    let a = immutable(b"1:a", at(&clock, 60_000));
    let b = mutable(b"s", b"1:b", at(&clock, 60_000));
    {
        let d = DataDir::open(tmp.path()).unwrap();
        d.commit(
            &[
                StoreChange::PutItem(a.clone()),
                StoreChange::PutItem(b.clone()),
                peer(3, "192.0.2.1:1", at(&clock, 60_000)),
                peer(3, "192.0.2.2:2", at(&clock, 60_000)),
            ],
            &clock,
        )
        .unwrap();
        d.commit(
            &[
                StoreChange::RemoveItem(a.target),
                StoreChange::RemovePeer {
                    info_hash: Id([3; 20]),
                    peer: "192.0.2.1:1".parse().unwrap(),
                },
            ],
            &clock,
        )
        .unwrap();
    }
    let d = DataDir::open(tmp.path()).unwrap();
    assert_eq!(d.load_items(&clock).unwrap(), vec![b]);
    let peers: Vec<SocketAddr> = d
        .load_peers(&clock)
        .unwrap()
        .into_iter()
        .map(|p| p.1)
        .collect();
    assert_eq!(peers, vec!["192.0.2.2:2".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn a_later_change_in_one_batch_wins_over_an_earlier_one() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    let first = mutable(b"k", b"1:x", at(&clock, 60_000));
    let d = DataDir::open(tmp.path()).unwrap();
    d.commit(
        &[
            StoreChange::PutItem(first.clone()),
            StoreChange::RemoveItem(first.target),
            StoreChange::PutItem(first.clone()),
        ],
        &clock,
    )
    .unwrap();
    d.commit(&[StoreChange::RemoveItem(first.target)], &clock)
        .unwrap();
    assert_eq!(d.load_items(&clock).unwrap(), vec![]);
}

#[test]
fn saving_contacts_replaces_the_previous_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let d = DataDir::open(tmp.path()).unwrap();
    let many: Vec<NodeInfo> = (0..50u8)
        .map(|i| NodeInfo {
            id: Id([i; 20]),
            addr: SocketAddr::from(([10, 0, 0, i], 6881)),
        })
        .collect();
    d.save_contacts(&many).unwrap();
    d.save_contacts(&many[..3]).unwrap();
    assert_eq!(d.load_contacts().unwrap(), many[..3].to_vec());
    assert_eq!(d.counts().unwrap().2, 3);
}

#[test]
fn a_directory_with_foreign_files_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("README.txt"), b"my holiday photos").unwrap();
    std::fs::create_dir(tmp.path().join("photos")).unwrap();
    let before = snapshot(tmp.path());
    match DataDir::open(tmp.path()) {
        Err(OpenError::NotOurs { path }) => assert_eq!(path, tmp.path()),
        other => panic!("expected NotOurs, got {other:?}"),
    }
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_path_that_is_a_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(DataDir::open(&file), Err(OpenError::Io { .. })));
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn a_store_damaged_in_the_middle_is_refused_and_left_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    filled_store(tmp.path(), &clock, 100);
    let store = tmp.path().join(STORE_FILE);
    let mut bytes = std::fs::read(&store).unwrap();
    // Damage the value of one item where it actually lies, so that the damage cannot land in
    // free space and go unseen.
    let pattern = b"FINDME-0042";
    let at = bytes
        .windows(pattern.len())
        .position(|w| w == pattern)
        .expect("the value is stored in clear");
    bytes[at + 7] = b'X';
    std::fs::write(&store, &bytes).unwrap();
    let before = snapshot(tmp.path());

    match DataDir::open(tmp.path()) {
        Err(OpenError::Corrupt { path, detail }) => {
            assert_eq!(path, store);
            assert!(!detail.is_empty());
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_store_with_a_block_of_garbage_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    filled_store(tmp.path(), &clock, 100);
    let store = tmp.path().join(STORE_FILE);
    let mut bytes = std::fs::read(&store).unwrap();
    let len = bytes.len();
    // A stretch of garbage over the middle of the file, where the items' pages lie.
    let pattern = b"FINDME-0050";
    let at = bytes
        .windows(pattern.len())
        .position(|w| w == pattern)
        .unwrap_or(len / 2);
    let start = at.saturating_sub(2048);
    for (i, b) in bytes[start..(start + 8192).min(len)].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    std::fs::write(&store, &bytes).unwrap();
    let before = snapshot(tmp.path());
    match DataDir::open(tmp.path()) {
        Err(OpenError::Corrupt { .. }) => assert_eq!(snapshot(tmp.path()), before),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_truncated_store_is_refused_without_panic_and_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    filled_store(tmp.path(), &clock, 100);
    let store = tmp.path().join(STORE_FILE);
    let bytes = std::fs::read(&store).unwrap();
    std::fs::write(&store, &bytes[..bytes.len() / 2]).unwrap();
    let before = snapshot(tmp.path());
    match DataDir::open(tmp.path()) {
        Err(OpenError::Corrupt { path, .. }) => assert_eq!(path, store),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_store_that_is_not_a_database_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(DataDir::open(tmp.path()).unwrap());
    let store = tmp.path().join(STORE_FILE);
    std::fs::write(&store, b"this is not a redb file at all").unwrap();
    let before = snapshot(tmp.path());
    assert!(matches!(
        DataDir::open(tmp.path()),
        Err(OpenError::Corrupt { .. })
    ));
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_marker_with_an_unknown_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(DataDir::open(tmp.path()).unwrap());
    let marker = tmp.path().join(MARKER_FILE);
    std::fs::write(&marker, "written by a newer dht\nformat 2\n").unwrap();
    let before = snapshot(tmp.path());
    match DataDir::open(tmp.path()) {
        Err(OpenError::Corrupt { path, detail }) => {
            assert_eq!(path, marker);
            assert!(detail.contains("format"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_marker_without_a_format_line_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(MARKER_FILE), "hello\n").unwrap();
    assert!(matches!(
        DataDir::open(tmp.path()),
        Err(OpenError::Corrupt { .. })
    ));
    assert!(!tmp.path().join(STORE_FILE).exists());
}

#[test]
fn opening_a_directory_twice_at_once_reports_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let first = DataDir::open(tmp.path()).unwrap();
    match DataDir::open(tmp.path()) {
        Err(e @ OpenError::Locked { .. }) => {
            assert!(e.to_string().contains("in use"), "{e}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    DataDir::open(tmp.path()).expect("the lock goes with the first handle");
}

#[test]
fn an_empty_existing_directory_becomes_a_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = DataDir::open(tmp.path()).unwrap();
    assert_eq!(d.counts().unwrap(), (0, 0, 0));
    let names: Vec<String> = snapshot(tmp.path()).into_keys().collect();
    assert_eq!(names, vec![MARKER_FILE.to_owned(), STORE_FILE.to_owned()]);
}

#[cfg(unix)]
#[test]
fn the_store_holding_the_signing_key_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new");
    drop(DataDir::open(&dir).unwrap());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir) & 0o077, 0);
    assert_eq!(mode(&dir.join(STORE_FILE)) & 0o077, 0);
}

/// The environment variable that turns [`crash_helper`] on, naming the directory it writes to.
const CRASH_DIR_ENV: &str = "DHT_DISK_TEST_CRASH_DIR";

/// Run only by [`a_store_left_by_a_crash_reopens_with_its_committed_data`] in a child process:
/// commits, then aborts without closing the database.
#[test]
#[ignore = "helper run in a child process by another test"]
fn crash_helper() {
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
        return;
    };
    let clock = Clock::start();
    let d = DataDir::open(Path::new(&dir)).unwrap();
    d.commit(
        &[StoreChange::PutItem(immutable(
            b"7:durable",
            at(&clock, 3_600_000),
        ))],
        &clock,
    )
    .unwrap();
    std::process::abort();
}

#[test]
fn a_store_left_by_a_crash_reopens_with_its_committed_data() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    filled_store(tmp.path(), &clock, 10);
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["crash_helper", "--exact", "--ignored", "--nocapture"])
        .env(CRASH_DIR_ENV, tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the helper must have aborted");
    let d = DataDir::open(tmp.path()).expect("redb recovers from a crash");
    let items = d.load_items(&clock).unwrap();
    assert_eq!(items.len(), 11);
    assert!(items.iter().any(|i| i.value.value() == b"7:durable"));
    drop(d);
    // The recovery reached the file: a second open finds a clean store.
    let d = DataDir::open(tmp.path()).unwrap();
    assert_eq!(d.counts().unwrap().0, 11);
}

/// Writes `value` under `key` in `table` of the store of `dir`, with redb directly, behind the
/// store's back, as a bug or another program might.
fn tamper(dir: &Path, table: &str, key: &[u8], value: Option<&[u8]>) {
    let db = redb::Database::open(dir.join(STORE_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new(table);
        let mut t = txn.open_table(def).unwrap();
        match value {
            Some(v) => {
                t.insert(key, v).unwrap();
            }
            None => {
                t.remove(key).unwrap();
            }
        }
    }
    txn.commit().unwrap();
}

#[test]
fn a_record_that_fails_to_decode_is_refused_naming_its_table() {
    let tmp = tempfile::tempdir().unwrap();
    drop(DataDir::open(tmp.path()).unwrap());
    tamper(tmp.path(), "items", &[1; 20], Some(b"\x01garbage"));
    let before = snapshot(tmp.path());
    match DataDir::open(tmp.path()) {
        Err(OpenError::Corrupt { detail, .. }) => assert!(detail.contains("items"), "{detail}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_store_missing_a_table_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(DataDir::open(tmp.path()).unwrap());
    {
        let db = redb::Database::open(tmp.path().join(STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("peers");
        assert!(txn.delete_table(def).unwrap());
        txn.commit().unwrap();
    }
    match DataDir::open(tmp.path()) {
        Err(OpenError::Corrupt { detail, .. }) => assert!(detail.contains("peers"), "{detail}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_store_without_its_format_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(DataDir::open(tmp.path()).unwrap());
    tamper(tmp.path(), "meta", b"format", None);
    match DataDir::open(tmp.path()) {
        Err(OpenError::Corrupt { detail, .. }) => assert!(detail.contains("format"), "{detail}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_data_dir_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<DataDir>();
    assert_send_sync::<OpenError>();
    assert_send_sync::<dht_node::disk::DiskError>();
}
