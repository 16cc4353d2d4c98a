//! The on-disk store: a data directory holding the node's share of the table (BEP 44 items and
//! BEP 5 peer lists), its identity and a snapshot of its routing table, in one redb database.
//!
//! # Calling protocol
//!
//! 1. [`DataDir::open`] once at start. It refuses a directory that is not ours
//!    ([`OpenError::NotOurs`]), a damaged store ([`OpenError::Corrupt`]) and a store another
//!    process has open ([`OpenError::Locked`]), and in all three cases leaves the files as it
//!    found them.
//! 2. [`DataDir::load_identity`], [`DataDir::load_items`], [`DataDir::load_peers`] and
//!    [`DataDir::load_contacts`] to rebuild the node; [`DataDir::save_identity`] when a new
//!    identity was made.
//! 3. After each batch of datagrams, [`DataDir::commit`] with the store changes the batch made,
//!    and only then send the batch's replies: a put is acknowledged once it is durable, and one
//!    transaction (one fsync) covers the whole batch. [`DataDir::save_contacts`] now and then.
//!
//! Every call blocks on the disk; an async runtime calls them from a blocking thread.
//!
//! # Layout
//!
//! The directory holds a marker file ([`MARKER_FILE`], with the format version) and the database
//! ([`STORE_FILE`]; made as [`STORE_TMP_FILE`] and linked into place once complete). The database has five tables: `meta` (the format version), `identity` (one
//! row), `items` (keyed by the 20-byte target), `peers` (keyed by info-hash and compact peer
//! address) and `contacts` (keyed by position). Values use the encoding of the private `codec`
//! module, each with a version byte and a CRC-32C over key and value. Expiry times are stored in
//! Unix milliseconds, since a protocol [`Instant`] means nothing to the next run.

mod codec;
mod staged;

/// The record codec, reachable from outside the crate only so that the fuzz harness
/// (`crates/dht-fuzz`) can feed it hostile bytes. It is not part of the API: no stability
/// promise, and nothing but the harness should call it.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::codec::{
        contact_key, decode_contact, decode_format, decode_identity, decode_item, decode_peer,
        decode_peer_key, encode_contact, encode_format, encode_identity, encode_item, encode_peer,
        item_key, peer_key, ItemRecord, FORMAT_KEY, IDENTITY_KEY, RECORD_VERSION,
    };
}

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use dht_proto::message::NodeInfo;
use dht_proto::store::{StoreChange, StoredItem};
use dht_proto::{Id, Instant};
use redb::{
    backends::FileBackend, Database, ReadableTable, ReadableTableMetadata, StorageBackend,
    TableDefinition, TableError,
};

use crate::clock::Clock;
use codec::ItemRecord;
use staged::StagedFile;

/// Name of the marker file that makes a directory ours.
pub const MARKER_FILE: &str = "DHT-DATA-DIR";

/// Name of the database file inside the data directory.
pub const STORE_FILE: &str = "store.redb";

/// The format of the data directory this build reads and writes, named in the marker file and in
/// the database's `meta` table. Anything else is refused rather than guessed at.
pub const FORMAT_VERSION: u32 = 1;

/// The marker is written here first and renamed into place, so that it appears whole or not at
/// all.
const MARKER_TMP_FILE: &str = "DHT-DATA-DIR.tmp";

/// A new store is made here and linked to [`STORE_FILE`] once its tables are committed.
pub const STORE_TMP_FILE: &str = "store.redb.tmp";

/// Bytes of the marker file read; ours is under 200 bytes, a longer one is not ours.
const MARKER_BYTES_MAX: u64 = 4096;

/// Contacts kept in the routing-table snapshot. A Mainline routing table holds at most 160
/// buckets of 8; this leaves room for replacement caches and the other address family.
pub const CONTACTS_MAX: usize = 4096;

/// Rows any table may hold. The store's limits keep real tables far below this (100 000 items
/// and 100 000 × 200 peers by default); a table past it is refused as damaged, and it bounds
/// every loop over a table.
pub const TABLE_ROWS_MAX: u64 = 1 << 27;

/// Bytes of memory redb may use to cache pages. redb's default is 1 GiB, far more than a
/// node's store needs.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Every table maps bytes to bytes; the codec gives them their meaning.
type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;

const META_NAME: &str = "meta";
const IDENTITY_NAME: &str = "identity";
const ITEMS_NAME: &str = "items";
const PEERS_NAME: &str = "peers";
const CONTACTS_NAME: &str = "contacts";

const META: Table = TableDefinition::new(META_NAME);
const IDENTITY: Table = TableDefinition::new(IDENTITY_NAME);
const ITEMS: Table = TableDefinition::new(ITEMS_NAME);
const PEERS: Table = TableDefinition::new(PEERS_NAME);
const CONTACTS: Table = TableDefinition::new(CONTACTS_NAME);

/// Every table, with the decoder that checks its records at open.
type Checker = fn(&[u8], &[u8]) -> Result<(), String>;
const TABLES: [(Table, Checker); 5] = [
    (META, |k, v| codec::decode_format(k, v).map(drop)),
    (IDENTITY, |k, v| codec::decode_identity(k, v).map(drop)),
    (ITEMS, |k, v| codec::decode_item(k, v).map(drop)),
    (PEERS, |k, v| codec::decode_peer(k, v).map(drop)),
    (CONTACTS, |k, v| codec::decode_contact(k, v).map(drop)),
];

/// An open data directory: the redb database and the directory's path. It holds the database's
/// file lock until dropped.
#[derive(Debug)]
pub struct DataDir {
    db: Database,
    path: PathBuf,
}

/// The node's identity: its ID and the seed of its ed25519 signing key (for BEP 44 puts of its
/// own mutable items). The `Debug` output leaves the seed out.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The node ID (BEP 42, derived from the address the node was first seen at).
    pub id: Id,
    /// The 32-byte ed25519 secret key seed.
    pub signing_seed: [u8; 32],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("id", &self.id)
            .field("signing_seed", &"<redacted>")
            .finish()
    }
}

/// Why a data directory could not be opened. In every case the directory's files are left as
/// they were found.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory is not empty and has no marker file: it holds someone else's files. Choose
    /// another directory, or empty this one if it is really meant for the node.
    #[error(
        "{path} is not empty and is not a dht data directory (it has no {MARKER_FILE} file); \
         refusing to use it"
    )]
    NotOurs {
        /// The directory.
        path: PathBuf,
    },
    /// The directory is ours, but its marker or database is damaged, of a format this build does
    /// not read, or lacks tables. The files are kept for inspection; move the directory aside to
    /// start afresh.
    #[error("data directory {path} cannot be used: {detail}")]
    Corrupt {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The operating system refused an operation (permissions, disk full, not a directory...).
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another [`DataDir`] in this one) has the store open. Stop it, or
    /// give this node its own directory.
    #[error("{path} is in use by another process")]
    Locked {
        /// The database file.
        path: PathBuf,
    },
}

/// Why a read or a commit failed after the directory was opened.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// redb failed: usually an I/O error (disk full, device gone). A failed commit left the
    /// store as it was before it; the batch's replies must not be sent as successes.
    #[error("database error in {path}: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// A record failed to decode: the file was damaged after it was opened and checked.
    #[error("damaged record in table {table} of {path}: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The table holding the record.
        table: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, detail: impl Into<String>) -> OpenError {
    OpenError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Sorts a redb error met while opening an existing store into our variants: what the file's
/// bytes caused is corruption, what the operating system refused is I/O.
fn open_err(store: &Path, err: impl Into<redb::Error>) -> OpenError {
    let err: redb::Error = err.into();
    match err {
        redb::Error::DatabaseAlreadyOpen => OpenError::Locked {
            path: store.to_path_buf(),
        },
        redb::Error::Io(e)
            if !matches!(
                e.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ) =>
        {
            OpenError::Io {
                path: store.to_path_buf(),
                source: e,
            }
        }
        redb::Error::Io(e) => corrupt(store, format!("not a readable redb database: {e}")),
        other => corrupt(store, other.to_string()),
    }
}

fn marker_text() -> String {
    format!(
        "This directory holds the data of a dht node (Mainline DHT). Do not edit.\n\
         format {FORMAT_VERSION}\n"
    )
}

/// Reads the marker and checks its format version.
fn check_marker(marker: &Path) -> Result<(), OpenError> {
    let mut text = String::new();
    fs::File::open(marker)
        .map_err(io_err(marker))?
        .take(MARKER_BYTES_MAX)
        .read_to_string(&mut text)
        .map_err(|_| corrupt(marker, "the marker file is not text"))?;
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("format "))
        .ok_or_else(|| corrupt(marker, "the marker file has no format line"))?;
    match version.trim().parse::<u32>() {
        Ok(FORMAT_VERSION) => Ok(()),
        _ => Err(corrupt(
            marker,
            format!(
                "the marker names format {:?}; this build reads format {FORMAT_VERSION} only",
                version.trim()
            ),
        )),
    }
}

/// Writes the marker whole or not at all: to a temporary name, synced, renamed, and the rename
/// synced through the directory.
fn write_marker(dir: &Path) -> Result<(), OpenError> {
    let tmp = dir.join(MARKER_TMP_FILE);
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(marker_text().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp))?;
    let marker = dir.join(MARKER_FILE);
    fs::rename(&tmp, &marker).map_err(io_err(&marker))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), OpenError> {
    // Directories cannot be opened as files on every platform; where they can, syncing makes
    // the entries created in them durable.
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), OpenError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    // The store holds the node's signing key: keep it to its owner.
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_err(dir))
}

/// True when `dir` holds nothing but, possibly, a marker left half-written by a crash.
fn is_empty_but_for_our_temp(dir: &Path) -> Result<bool, OpenError> {
    // The loop ends at the first entry other than the temporary marker, so it runs at most twice.
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if entry.file_name() != MARKER_TMP_FILE {
            return Ok(false);
        }
    }
    Ok(true)
}

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(CACHE_BYTES);
    b
}

/// Creates the tables of a new store and records its format.
fn init_tables(db: &Database, store: &Path) -> Result<(), OpenError> {
    let err = |e: redb::Error| open_err(store, e);
    let txn = db.begin_write().map_err(|e| err(e.into()))?;
    for (table, _) in TABLES {
        txn.open_table(table).map_err(|e| err(e.into()))?;
    }
    txn.open_table(META)
        .map_err(|e| err(e.into()))?
        .insert(
            codec::FORMAT_KEY,
            codec::encode_format(FORMAT_VERSION).as_slice(),
        )
        .map_err(|e| err(e.into()))?;
    txn.commit().map_err(|e| err(e.into()))
}

/// Checks an existing store: redb's page checksums, the tables, the format, and every record.
fn verify(db: &mut Database, store: &Path) -> Result<(), OpenError> {
    if !db.check_integrity().map_err(|e| open_err(store, e))? {
        // redb found a damaged last commit and rolled back to the one before it; what is left is
        // consistent, and the records are checked below.
        tracing::warn!(path = %store.display(), "redb repaired the store on open");
    }
    let tables: Vec<String> = {
        let txn = db.begin_read().map_err(|e| open_err(store, e))?;
        let list = txn.list_tables().map_err(|e| open_err(store, e))?;
        list.map(|t| redb::TableHandle::name(&t).to_owned())
            .collect()
    };
    if tables.is_empty() {
        // A crash between redb's creation of the file and our first commit leaves no tables and
        // no data: finish what was started.
        return init_tables(db, store);
    }
    let txn = db.begin_read().map_err(|e| open_err(store, e))?;
    for (def, check) in TABLES {
        let name = redb::TableHandle::name(&def);
        let table = match txn.open_table(def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => {
                return Err(corrupt(store, format!("table {name} is missing")))
            }
            Err(e) => return Err(open_err(store, e)),
        };
        let rows = table.len().map_err(|e| open_err(store, e))?;
        if rows > TABLE_ROWS_MAX {
            return Err(corrupt(
                store,
                format!("table {name} has {rows} rows, more than {TABLE_ROWS_MAX}"),
            ));
        }
        for row in table.iter().map_err(|e| open_err(store, e))? {
            let (k, v) = row.map_err(|e| open_err(store, e))?;
            check(k.value(), v.value())
                .map_err(|d| corrupt(store, format!("table {name}: {d}")))?;
        }
    }
    let meta = txn.open_table(META).map_err(|e| open_err(store, e))?;
    let format = match meta
        .get(codec::FORMAT_KEY)
        .map_err(|e| open_err(store, e))?
    {
        Some(v) => codec::decode_format(codec::FORMAT_KEY, v.value())
            .map_err(|d| corrupt(store, format!("table meta: {d}")))?,
        None => return Err(corrupt(store, "table meta has no format version")),
    };
    if format != FORMAT_VERSION {
        return Err(corrupt(
            store,
            format!("the store has format {format}; this build reads format {FORMAT_VERSION} only"),
        ));
    }
    Ok(())
}

fn panic_detail(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// How the store file is opened: read and write, private to its owner.
fn store_options(create: bool) -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(create)
        .truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Creates the store whole or not at all: under [`STORE_TMP_FILE`], with its tables committed
/// durably, then linked to [`STORE_FILE`] (a link never replaces a store another process made
/// meanwhile) and the link synced through the directory. A crash on the way leaves no
/// [`STORE_FILE`], or one that is complete; redb's first writes to a new file are not a
/// database until its first commit, and would otherwise be refused as damaged at every later
/// start.
fn create_store<B: StorageBackend>(
    dir: &Path,
    wrap: impl FnOnce(FileBackend) -> B,
) -> Result<Database, OpenError> {
    let store = dir.join(STORE_FILE);
    let tmp = dir.join(STORE_TMP_FILE);
    let file = store_options(true).open(&tmp).map_err(io_err(&tmp))?;
    // Locked before it is emptied: another process creating the store at the same moment
    // holds this lock, and its half-made file is not ours to cut.
    let backend = FileBackend::new(file).map_err(|e| match open_err(&tmp, e) {
        OpenError::Locked { .. } => OpenError::Locked {
            path: store.clone(),
        },
        other => other,
    })?;
    // What an earlier crash left here was never linked into place: it holds no data.
    backend.set_len(0).map_err(io_err(&tmp))?;
    let db = builder()
        .create_with_backend(StagedFile::pass_through(wrap(backend)))
        .map_err(|e| open_err(&tmp, e))?;
    init_tables(&db, &tmp)?;
    match fs::hard_link(&tmp, &store) {
        Ok(()) => {
            sync_dir(dir)?;
            fs::remove_file(&tmp).map_err(io_err(&tmp))?;
        }
        // Another process made a store meanwhile and has it open (or a crashed one left it,
        // and the next start opens it).
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(OpenError::Locked { path: store });
        }
        // A file system without hard links: a rename is as atomic, only not exclusive.
        Err(_) => {
            fs::rename(&tmp, &store).map_err(io_err(&store))?;
            sync_dir(dir)?;
        }
    }
    Ok(db)
}

impl DataDir {
    /// Opens or creates the data directory `dir` (creates it and its parents if missing; a new
    /// or empty directory gets the marker file [`MARKER_FILE`] and the database [`STORE_FILE`]).
    ///
    /// An existing store is checked before anything is written to it: redb's page checksums,
    /// the tables, the format version and every record are read back while redb's own writes are
    /// held in memory, and the file is left untouched if any check fails. redb repairs a store
    /// that was not closed cleanly (a crash), as it is built to. A marked directory without
    /// [`STORE_FILE`], or with an empty one, gets a new store (there is no data to lose), made
    /// under [`STORE_TMP_FILE`] and linked into place once complete, so that a crash while
    /// making it never leaves a store that cannot be opened.
    ///
    /// Opening reads the whole store once, so it takes time in proportion to its size.
    pub fn open(dir: &Path) -> Result<DataDir, OpenError> {
        DataDir::open_with_backend(dir, |file| file)
    }

    /// [`DataDir::open`], with redb's file I/O going through `wrap(file)` instead of the file's
    /// own backend: the seam for the crash tests' fault-injecting backend
    /// (`crates/dht-node/tests/crash_points.rs`). Every check of [`DataDir::open`] still runs;
    /// only the bytes' way to the file changes. Not part of the supported API.
    #[doc(hidden)]
    pub fn open_with_backend<B: StorageBackend>(
        dir: &Path,
        wrap: impl FnOnce(FileBackend) -> B,
    ) -> Result<DataDir, OpenError> {
        match fs::metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_dir(dir)?,
            Err(e) => return Err(io_err(dir)(e)),
            Ok(m) if !m.is_dir() => {
                return Err(io_err(dir)(io::Error::other(
                    "exists and is not a directory",
                )))
            }
            Ok(_) => {}
        }
        let marker = dir.join(MARKER_FILE);
        match fs::symlink_metadata(&marker) {
            Ok(_) => check_marker(&marker)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !is_empty_but_for_our_temp(dir)? {
                    return Err(OpenError::NotOurs {
                        path: dir.to_path_buf(),
                    });
                }
                write_marker(dir)?;
            }
            Err(e) => return Err(io_err(&marker)(e)),
        }

        let store = dir.join(STORE_FILE);
        let file = match store_options(false).open(&store) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&store)(e)),
        };
        let existing = match file {
            Some(file) => {
                let len = file.metadata().map_err(io_err(&store))?.len();
                // FileBackend takes redb's exclusive lock on the file, so a second opener stops
                // here.
                let backend = FileBackend::new(file).map_err(|e| open_err(&store, e))?;
                if len == 0 {
                    // An empty store holds no data (a crash while an older build created it in
                    // place): make a new one as for a missing file.
                    drop(backend);
                    fs::remove_file(&store).map_err(io_err(&store))?;
                    None
                } else {
                    Some(backend)
                }
            }
            None => None,
        };
        let db = match existing {
            None => create_store(dir, wrap)?,
            Some(backend) => {
                let (backend, staging) =
                    StagedFile::staging(wrap(backend)).map_err(io_err(&store))?;
                // redb asserts on some kinds of damage (a truncated file, for one) instead of
                // returning an error. A damaged file is an operating error, not a bug of ours,
                // so the panic is caught and reported as corruption. The database is dropped
                // inside the closure, so redb's own drop never runs on a poisoned instance
                // outside it.
                let checked = catch_unwind(AssertUnwindSafe(|| {
                    let mut db = builder()
                        .create_with_backend(backend)
                        .map_err(|e| open_err(&store, e))?;
                    verify(&mut db, &store)?;
                    Ok(db)
                }));
                let db = match checked {
                    Ok(Ok(db)) => db,
                    Ok(Err(e)) => return Err(e),
                    Err(payload) => {
                        return Err(corrupt(
                            &store,
                            format!("redb failed reading it: {}", panic_detail(&*payload)),
                        ))
                    }
                };
                staging.commit().map_err(io_err(&store))?;
                // A crash between linking a new store into place and removing its temporary
                // name leaves that name behind.
                match fs::remove_file(dir.join(STORE_TMP_FILE)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        tracing::warn!(error = %e, "removing a leftover {STORE_TMP_FILE} failed");
                    }
                    _ => {}
                }
                db
            }
        };
        Ok(DataDir {
            db,
            path: dir.to_path_buf(),
        })
    }

    /// The data directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn store_path(&self) -> PathBuf {
        self.path.join(STORE_FILE)
    }

    fn db_err(&self, e: impl Into<redb::Error>) -> DiskError {
        DiskError::Database {
            path: self.store_path(),
            source: Box::new(e.into()),
        }
    }

    fn corrupt(&self, table: &'static str, detail: String) -> DiskError {
        DiskError::Corrupt {
            path: self.store_path(),
            table,
            detail,
        }
    }

    /// The saved identity, if one was saved.
    pub fn load_identity(&self) -> Result<Option<Identity>, DiskError> {
        let txn = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let table = txn.open_table(IDENTITY).map_err(|e| self.db_err(e))?;
        let Some(v) = table.get(codec::IDENTITY_KEY).map_err(|e| self.db_err(e))? else {
            return Ok(None);
        };
        let (id, signing_seed) = codec::decode_identity(codec::IDENTITY_KEY, v.value())
            .map_err(|d| self.corrupt(IDENTITY_NAME, d))?;
        Ok(Some(Identity { id, signing_seed }))
    }

    /// Saves `identity`, replacing the one saved before; durable when it returns Ok.
    pub fn save_identity(&self, identity: &Identity) -> Result<(), DiskError> {
        let txn = self.db.begin_write().map_err(|e| self.db_err(e))?;
        txn.open_table(IDENTITY)
            .map_err(|e| self.db_err(e))?
            .insert(
                codec::IDENTITY_KEY,
                codec::encode_identity(&identity.id, &identity.signing_seed).as_slice(),
            )
            .map_err(|e| self.db_err(e))?;
        txn.commit().map_err(|e| self.db_err(e))
    }

    /// The stored items that have not expired, in target order, with their expiry converted to
    /// `clock`'s instants. Items already expired are deleted from disk: the in-memory store
    /// never sees them, so no journal would ever remove them.
    pub fn load_items(&self, clock: &Clock) -> Result<Vec<StoredItem>, DiskError> {
        let now_ms = clock.to_unix_ms(clock.now());
        let txn = self.db.begin_write().map_err(|e| self.db_err(e))?;
        let mut live = Vec::new();
        {
            let mut table = txn.open_table(ITEMS).map_err(|e| self.db_err(e))?;
            let mut expired: Vec<Vec<u8>> = Vec::new();
            // Bounded by TABLE_ROWS_MAX, which open checked.
            for row in table.iter().map_err(|e| self.db_err(e))? {
                let (k, v) = row.map_err(|e| self.db_err(e))?;
                let r = codec::decode_item(k.value(), v.value())
                    .map_err(|d| self.corrupt(ITEMS_NAME, d))?;
                if r.expires_unix_ms <= now_ms {
                    expired.push(k.value().to_vec());
                } else {
                    live.push(StoredItem {
                        target: r.target,
                        value: r.value,
                        expires: clock.from_unix_ms(r.expires_unix_ms),
                        source: r.source,
                    });
                }
            }
            for k in &expired {
                table.remove(k.as_slice()).map_err(|e| self.db_err(e))?;
            }
        }
        txn.commit().map_err(|e| self.db_err(e))?;
        Ok(live)
    }

    /// The stored peers that have not expired, as (info-hash, peer, expiry), in key order, with
    /// their expiry converted to `clock`'s instants. Peers already expired are deleted from
    /// disk, as in [`DataDir::load_items`].
    pub fn load_peers(&self, clock: &Clock) -> Result<Vec<(Id, SocketAddr, Instant)>, DiskError> {
        let now_ms = clock.to_unix_ms(clock.now());
        let txn = self.db.begin_write().map_err(|e| self.db_err(e))?;
        let mut live = Vec::new();
        {
            let mut table = txn.open_table(PEERS).map_err(|e| self.db_err(e))?;
            let mut expired: Vec<Vec<u8>> = Vec::new();
            // Bounded by TABLE_ROWS_MAX, which open checked.
            for row in table.iter().map_err(|e| self.db_err(e))? {
                let (k, v) = row.map_err(|e| self.db_err(e))?;
                let (info_hash, peer, expires_ms) = codec::decode_peer(k.value(), v.value())
                    .map_err(|d| self.corrupt(PEERS_NAME, d))?;
                if expires_ms <= now_ms {
                    expired.push(k.value().to_vec());
                } else {
                    live.push((info_hash, peer, clock.from_unix_ms(expires_ms)));
                }
            }
            for k in &expired {
                table.remove(k.as_slice()).map_err(|e| self.db_err(e))?;
            }
        }
        txn.commit().map_err(|e| self.db_err(e))?;
        Ok(live)
    }

    /// The saved routing-table snapshot, in the order it was saved (at most [`CONTACTS_MAX`]).
    pub fn load_contacts(&self) -> Result<Vec<NodeInfo>, DiskError> {
        let txn = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let table = txn.open_table(CONTACTS).map_err(|e| self.db_err(e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.db_err(e))?.take(CONTACTS_MAX) {
            let (k, v) = row.map_err(|e| self.db_err(e))?;
            out.push(
                codec::decode_contact(k.value(), v.value())
                    .map_err(|d| self.corrupt(CONTACTS_NAME, d))?,
            );
        }
        Ok(out)
    }

    /// Replaces the saved routing-table snapshot with the first [`CONTACTS_MAX`] of `contacts`
    /// (put the best first); durable when it returns Ok.
    pub fn save_contacts(&self, contacts: &[NodeInfo]) -> Result<(), DiskError> {
        let txn = self.db.begin_write().map_err(|e| self.db_err(e))?;
        txn.delete_table(CONTACTS).map_err(|e| self.db_err(e))?;
        {
            let mut table = txn.open_table(CONTACTS).map_err(|e| self.db_err(e))?;
            for (i, c) in contacts.iter().take(CONTACTS_MAX).enumerate() {
                // CONTACTS_MAX fits in u32.
                let key = codec::contact_key(i as u32);
                table
                    .insert(key.as_slice(), codec::encode_contact(&key, c).as_slice())
                    .map_err(|e| self.db_err(e))?;
            }
        }
        txn.commit().map_err(|e| self.db_err(e))
    }

    /// Applies the changes in one write transaction; durable when it returns Ok (redb's
    /// `Durability::Immediate`: the commit waits for fsync). Later changes to the same key win,
    /// as they did in memory. An empty slice writes nothing and costs no fsync. On an error
    /// nothing of the batch is stored.
    pub fn commit(&self, changes: &[StoreChange], clock: &Clock) -> Result<(), DiskError> {
        if changes.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut items = txn.open_table(ITEMS).map_err(|e| self.db_err(e))?;
            let mut peers = txn.open_table(PEERS).map_err(|e| self.db_err(e))?;
            // Bounded by the caller's batch (the store's journal holds at most JOURNAL_MAX).
            for change in changes {
                match change {
                    StoreChange::PutItem(item) => {
                        let record = ItemRecord::new(item, clock.to_unix_ms(item.expires));
                        let Some(bytes) = codec::encode_item(&record) else {
                            // The store checks BEP 44's sizes before it stores anything, so this
                            // is a bug upstream; keeping it out keeps the file loadable.
                            tracing::error!(target = ?item.target, "item over BEP 44 limits not persisted");
                            continue;
                        };
                        items
                            .insert(codec::item_key(&item.target).as_slice(), bytes.as_slice())
                            .map_err(|e| self.db_err(e))?;
                    }
                    StoreChange::RemoveItem(target) => {
                        items
                            .remove(codec::item_key(target).as_slice())
                            .map_err(|e| self.db_err(e))?;
                    }
                    StoreChange::PutPeer {
                        info_hash,
                        peer,
                        expires,
                    } => {
                        let key = codec::peer_key(info_hash, peer);
                        let value = codec::encode_peer(&key, clock.to_unix_ms(*expires));
                        peers
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(|e| self.db_err(e))?;
                    }
                    StoreChange::RemovePeer { info_hash, peer } => {
                        peers
                            .remove(codec::peer_key(info_hash, peer).as_slice())
                            .map_err(|e| self.db_err(e))?;
                    }
                }
            }
        }
        txn.commit().map_err(|e| self.db_err(e))
    }

    /// Counts for status output: (items, peers, contacts) on disk, expired ones included until
    /// the next load removes them.
    pub fn counts(&self) -> Result<(u64, u64, u64), DiskError> {
        let txn = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let len = |def: Table| -> Result<u64, DiskError> {
            let table = txn.open_table(def).map_err(|e| self.db_err(e))?;
            table.len().map_err(|e| self.db_err(e))
        };
        Ok((len(ITEMS)?, len(PEERS)?, len(CONTACTS)?))
    }
}
