//! A redb storage backend that can hold its writes back until the file has been checked.
//!
//! redb writes to a file the moment it opens it (it marks the header "in use", and repairs a file
//! that was not closed cleanly), and again when it is dropped (it saves its allocator state).
//! Opening a damaged store to find out that it is damaged would therefore change it, and could
//! make a later repair throw away what the damage left. So [`DataDir`](super::DataDir) opens an
//! existing store through this backend in staging mode: reads see the file as redb's writes would
//! have left it, but the writes are only logged in memory. When every record has been read back
//! and decoded, the log is put on the file in an order that a crash at any point leaves
//! recoverable (see [`StagingHandle::commit`]), and the backend passes everything through from
//! then on. When the check fails, the log is dropped and the file is exactly as it was found.
//!
//! The backend underneath is a [`FileBackend`] in production; tests put a fault-injecting one
//! there (through `DataDir::open_with_backend`), so that the replay's writes and syncs are crash
//! points like redb's own.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::backends::FileBackend;
use redb::StorageBackend;

/// Bytes of writes staging may hold in memory. Opening a cleanly closed store stages one header
/// write; repairing one stages the rewritten allocator pages and headers. A repair that needs more
/// than this fails the open with an I/O error rather than exhausting memory.
pub(crate) const STAGED_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Operations staging may hold (each write, resize or sync is one).
pub(crate) const STAGED_OPS_MAX: usize = 1_000_000;

/// One operation redb issued while staging.
#[derive(Debug)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
    Sync,
}

/// The writes held back, and the length the file would have.
#[derive(Debug)]
struct Staging {
    /// The file's real length (the file does not change while staging).
    file_len: u64,
    /// The length the file would have if the log were applied.
    len: u64,
    ops: Vec<Op>,
    bytes: usize,
}

#[derive(Debug)]
enum Mode {
    Staging(Staging),
    PassThrough,
}

/// The switch shared between the backend (owned by redb) and the code that opened it.
#[derive(Debug, Clone)]
pub(crate) struct StagingHandle<B: StorageBackend = FileBackend> {
    shared: Arc<Shared<B>>,
}

#[derive(Debug)]
struct Shared<B> {
    file: B,
    mode: Mutex<Mode>,
}

/// The backend given to redb, over the file's own backend `B`.
#[derive(Debug)]
pub(crate) struct StagedFile<B: StorageBackend = FileBackend> {
    shared: Arc<Shared<B>>,
}

fn lock<B>(shared: &Shared<B>) -> MutexGuard<'_, Mode> {
    // A panic while the lock is held (redb panicking on a damaged file, which the opener
    // catches) leaves the mode itself consistent: every update below is a single assignment or
    // push after the checks.
    shared.mode.lock().unwrap_or_else(|p| p.into_inner())
}

impl<B: StorageBackend> StagedFile<B> {
    /// A backend over `file` (already locked by [`FileBackend::new`]) that stages its writes,
    /// and the handle that commits or drops them.
    pub(crate) fn staging(file: B) -> io::Result<(StagedFile<B>, StagingHandle<B>)> {
        let file_len = file.len()?;
        let shared = Arc::new(Shared {
            file,
            mode: Mutex::new(Mode::Staging(Staging {
                file_len,
                len: file_len,
                ops: Vec::new(),
                bytes: 0,
            })),
        });
        Ok((
            StagedFile {
                shared: shared.clone(),
            },
            StagingHandle { shared },
        ))
    }

    /// A backend over `file` that writes through from the start (for a store being created).
    pub(crate) fn pass_through(file: B) -> StagedFile<B> {
        StagedFile {
            shared: Arc::new(Shared {
                file,
                mode: Mutex::new(Mode::PassThrough),
            }),
        }
    }
}

impl<B: StorageBackend> StagingHandle<B> {
    /// Puts the staged changes on the file, syncs it, and passes everything through from now on.
    ///
    /// The log is not replayed op by op: redb's repair of a crashed store commits once with the
    /// header marked clean, syncs, and only then shrinks the file, so a crash in between would
    /// leave a clean header on a file longer than it names, which redb refuses to open (it
    /// asserts). Instead the file is brought to the log's end state in an order that every crash
    /// point leaves recoverable: (1) a growth, synced; (2) every changed byte outside the header
    /// with its final contents, synced: pages the header on the file does not reference, as in
    /// any redb commit; (3) the final header, synced (it is marked "in use", since redb wrote
    /// that last while staging, so the next open repairs whatever follows), in two writes as
    /// redb's own two-phase commit puts it: first its commit slots, synced, then the bytes
    /// before them (the god byte that names the primary slot, and the layout). A write of the
    /// whole header at once could land torn, the god byte already naming a slot whose new
    /// contents had not landed: a primary that fails its checksum, which redb with two-phase
    /// commit refuses to open. The repair writes its one new commit into the slot that is not
    /// primary on the file, so the slot write leaves the primary untouched; (4) a shrink,
    /// synced. On an error the file is in one of those states; the staging is kept (and never
    /// replayed again), so that nothing more reaches the file.
    pub(crate) fn commit(&self) -> io::Result<()> {
        let mut mode = lock(&self.shared);
        let Mode::Staging(staging) = &mut *mode else {
            return Ok(());
        };
        let ops = std::mem::take(&mut staging.ops);
        staging.bytes = 0;
        let file = &self.shared.file;
        let end_len = staging.len;
        if end_len > staging.file_len {
            file.set_len(end_len)?;
            file.sync_data(false)?;
        }
        // The staged reads below still apply the log over what is on the file, so the ranges
        // already written read back the same; `ranges` are disjoint, so no range reads another's
        // new bytes as old.
        let changed = changed_ranges(&ops, end_len);
        let (header, body) = split_ranges(&changed, HEADER_BYTES);
        let (top, slots) = split_ranges(&header, HEADER_SLOTS_START);
        let replay = |ranges: &[Range]| -> io::Result<()> {
            if ranges.is_empty() {
                return Ok(());
            }
            for &(start, end) in ranges {
                let data = Staging::read_with(file, &ops, staging.file_len, end_len, start, end)?;
                file.write(start, &data)?;
            }
            file.sync_data(false)
        };
        replay(&body)?;
        replay(&slots)?;
        replay(&top)?;
        if end_len < staging.file_len {
            file.set_len(end_len)?;
            file.sync_data(false)?;
        }
        *mode = Mode::PassThrough;
        Ok(())
    }

    /// Operations staged and not yet on the file.
    #[cfg(test)]
    pub(crate) fn staged_ops(&self) -> usize {
        match &*lock(&self.shared) {
            Mode::Staging(s) => s.ops.len(),
            Mode::PassThrough => 0,
        }
    }
}

/// Bytes at the start of the file that hold redb's header (its super-header and two commit
/// slots: 320 bytes in redb 2), written last when the log is put on the file.
const HEADER_BYTES: u64 = 512;

/// Where redb's commit slots start in its header (redb 2.6, `tree_store/page_store/header.rs`:
/// the magic number, the god byte and the layout come first, the two 128-byte slots at 64).
const HEADER_SLOTS_START: u64 = 64;

/// A byte range of the file, start inclusive, end exclusive.
type Range = (u64, u64);

/// `ranges` (sorted, disjoint) cut at `at`: the parts before it and the parts from it on.
fn split_ranges(ranges: &[Range], at: u64) -> (Vec<Range>, Vec<Range>) {
    let mut below = Vec::new();
    let mut above = Vec::new();
    for &(start, end) in ranges {
        if start < at {
            below.push((start, end.min(at)));
        }
        if end > at {
            above.push((start.max(at), end));
        }
    }
    (below, above)
}

/// The byte ranges the log's writes cover, clipped to the file's final length `len`, merged;
/// sorted and disjoint. Bounded by the log's length.
fn changed_ranges(ops: &[Op], len: u64) -> Vec<Range> {
    let mut ranges: Vec<Range> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Write { offset, data } => Some((*offset, (offset + data.len() as u64).min(len))),
            _ => None,
        })
        .filter(|(start, end)| start < end)
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<Range> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

impl Staging {
    fn push(&mut self, op: Op) -> io::Result<()> {
        let bytes = match &op {
            Op::Write { data, .. } => data.len(),
            _ => 0,
        };
        if self.ops.len() >= STAGED_OPS_MAX || self.bytes + bytes > STAGED_BYTES_MAX {
            return Err(io::Error::other(format!(
                "opening the store needs more than {STAGED_OPS_MAX} operations or \
                 {STAGED_BYTES_MAX} bytes of staged writes"
            )));
        }
        self.bytes += bytes;
        self.ops.push(op);
        Ok(())
    }

    /// The file's bytes at `offset..offset + len` as the log would leave them.
    fn read(&self, file: &impl StorageBackend, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let end = offset
            .checked_add(len as u64)
            .filter(|&end| end <= self.len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        Staging::read_with(file, &self.ops, self.file_len, self.len, offset, end)
    }

    /// The bytes at `offset..end` of a file whose real length is `file_len`, as `ops` leave
    /// them (the file's length then is `len`, at least `end`).
    fn read_with(
        file: &impl StorageBackend,
        ops: &[Op],
        file_len: u64,
        len: u64,
        offset: u64,
        end: u64,
    ) -> io::Result<Vec<u8>> {
        debug_assert!(offset <= end && end <= len);
        let len = (end - offset) as usize;
        let mut buf = if end <= file_len {
            file.read(offset, len)?
        } else {
            // Past the real end of file the log's resizes extended it with zeros.
            let mut buf = vec![0u8; len];
            if offset < file_len {
                let on_file = (file_len - offset) as usize;
                buf[..on_file].copy_from_slice(&file.read(offset, on_file)?);
            }
            buf
        };
        // Apply the log in order: later writes win, and a shrink zeroes what it cut off (a later
        // extension then reads zeros there, as a real file would).
        for op in ops {
            match op {
                Op::Write { offset: at, data } => {
                    let w_end = at + data.len() as u64;
                    let lo = (*at).max(offset);
                    let hi = w_end.min(end);
                    if lo < hi {
                        let dst = (lo - offset) as usize..(hi - offset) as usize;
                        let src = (lo - at) as usize..(hi - at) as usize;
                        buf[dst].copy_from_slice(&data[src]);
                    }
                }
                Op::SetLen(cut) => {
                    if *cut < end {
                        let from = cut.saturating_sub(offset) as usize;
                        buf[from..].fill(0);
                    }
                }
                Op::Sync => {}
            }
        }
        Ok(buf)
    }
}

impl<B: StorageBackend> StorageBackend for StagedFile<B> {
    fn len(&self) -> Result<u64, io::Error> {
        match &*lock(&self.shared) {
            Mode::Staging(s) => Ok(s.len),
            Mode::PassThrough => self.shared.file.len(),
        }
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, io::Error> {
        match &*lock(&self.shared) {
            Mode::Staging(s) => s.read(&self.shared.file, offset, len),
            Mode::PassThrough => self.shared.file.read(offset, len),
        }
    }

    /// Resizes the file and syncs the new length before anything else is written. redb grows
    /// the file before it writes a commit's pages and then the header that records the larger
    /// size, and syncs once at the end; nothing orders a file's length against an overwrite
    /// of its first page, so a power loss during that sync could leave the new header on a
    /// file too short for it, which redb refuses to open (it asserts on it). Growth comes in
    /// large steps, so this costs an fsync only now and then.
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        match &mut *lock(&self.shared) {
            Mode::Staging(s) => {
                s.push(Op::SetLen(len))?;
                s.len = len;
                Ok(())
            }
            Mode::PassThrough => {
                self.shared.file.set_len(len)?;
                self.shared.file.sync_data(false)
            }
        }
    }

    fn sync_data(&self, eventual: bool) -> Result<(), io::Error> {
        match &mut *lock(&self.shared) {
            Mode::Staging(s) => s.push(Op::Sync),
            Mode::PassThrough => self.shared.file.sync_data(eventual),
        }
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        match &mut *lock(&self.shared) {
            Mode::Staging(s) => {
                let end = offset
                    .checked_add(data.len() as u64)
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
                if end > s.len {
                    // A real file grows on a write past its end; redb resizes first, but be exact.
                    s.push(Op::SetLen(end))?;
                    s.len = end;
                }
                s.push(Op::Write {
                    offset,
                    data: data.to_vec(),
                })
            }
            Mode::PassThrough => self.shared.file.write(offset, data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(
        contents: &[u8],
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        StagedFile,
        StagingHandle,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, contents).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let (b, h) = StagedFile::staging(FileBackend::new(file).unwrap()).unwrap();
        (dir, path, b, h)
    }

    #[test]
    fn staged_writes_are_visible_to_reads_but_not_on_the_file() {
        let (_dir, path, b, h) = backend(b"0123456789");
        b.write(2, b"ab").unwrap();
        b.write(8, b"xyz").unwrap();
        assert_eq!(b.len().unwrap(), 11);
        assert_eq!(b.read(0, 11).unwrap(), b"01ab4567xyz");
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");
        assert_eq!(h.staged_ops(), 3);
        drop(b);
        drop(h);
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");
    }

    #[test]
    fn a_shrink_then_grow_reads_zeros_where_it_cut() {
        let (_dir, path, b, _h) = backend(b"0123456789");
        b.set_len(4).unwrap();
        b.set_len(8).unwrap();
        assert_eq!(b.read(0, 8).unwrap(), b"0123\0\0\0\0");
        assert!(b.read(6, 4).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");
    }

    #[test]
    fn commit_replays_the_log_and_then_writes_through() {
        let (_dir, path, b, h) = backend(b"0123456789");
        b.write(2, b"ab").unwrap();
        b.set_len(6).unwrap();
        h.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"01ab45");
        b.write(0, b"Z").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"Z1ab45");
        assert_eq!(h.staged_ops(), 0);
    }

    /// A file in memory that records the order of what reaches it (shared with the test).
    #[derive(Debug, Default, Clone)]
    struct Recorder {
        bytes: Arc<Mutex<Vec<u8>>>,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl StorageBackend for Recorder {
        fn len(&self) -> io::Result<u64> {
            Ok(self.bytes.lock().unwrap().len() as u64)
        }
        fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            let b = self.bytes.lock().unwrap();
            Ok(b[offset as usize..offset as usize + len].to_vec())
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.log.lock().unwrap().push(format!("len {len}"));
            self.bytes.lock().unwrap().resize(len as usize, 0);
            Ok(())
        }
        fn sync_data(&self, _: bool) -> io::Result<()> {
            self.log.lock().unwrap().push("sync".into());
            Ok(())
        }
        fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            self.log
                .lock()
                .unwrap()
                .push(format!("write {offset}+{}", data.len()));
            let mut b = self.bytes.lock().unwrap();
            b[offset as usize..offset as usize + data.len()].copy_from_slice(data);
            Ok(())
        }
    }

    #[test]
    fn commit_writes_the_body_then_the_header_slots_then_the_god_byte_then_shrinks() {
        let file = Recorder::default();
        file.bytes.lock().unwrap().resize(8192, b'.');
        let (b, h) = StagedFile::staging(file.clone()).unwrap();
        // As redb's repair does it: a header marked clean, a sync, the shrink; then more pages
        // and the header marked in use.
        b.write(0, b"clean").unwrap();
        b.write(1000, b"page").unwrap();
        b.sync_data(false).unwrap();
        b.set_len(6000).unwrap();
        b.write(2000, b"more").unwrap();
        // A header write that changes a commit slot and the god byte at once: on the file the
        // slot goes first, the god byte after it.
        b.write(0, b"inuse").unwrap();
        b.write(100, b"slot").unwrap();
        b.sync_data(false).unwrap();
        h.commit().unwrap();
        assert_eq!(
            *file.log.lock().unwrap(),
            [
                "write 1000+4",
                "write 2000+4",
                "sync",
                "write 100+4",
                "sync",
                "write 0+5",
                "sync",
                "len 6000",
                "sync"
            ]
        );
        let bytes = file.bytes.lock().unwrap();
        assert_eq!(bytes.len(), 6000);
        assert_eq!(&bytes[0..5], b"inuse");
        assert_eq!(&bytes[1000..1004], b"page");
    }
}
