//! A redb storage backend that loses power on cue.
//!
//! [`FaultyFile`] sits between redb and the data directory's real file (through
//! `DataDir::open_with_backend`). It keeps the file as the page cache would see it in memory and
//! treats the real file as the disk: a write or resize reaches the real file only when a later
//! sync covers it. Writes and syncs are numbered from 0 as they come (resizes are not numbered:
//! redb issues them only next to writes). At the numbered point the [`Plan`] names, the backend
//! either fails that one operation with an I/O error and carries on, or stops: the power goes,
//! the writes not yet synced reach the disk as the [`Landing`] says (none, a prefix whose last
//! write may be torn, or any subset in order, as a disk's write cache may reorder them), and
//! every later operation fails, as if the process had died. The syncs themselves never call
//! fsync: what survives a simulated power loss is decided here, not by the machine.
//!
//! This follows redb's own assumptions about media (its design.md, "Assumptions about
//! underlying media"): a byte is written whole or not at all, a synced write is durable, and a
//! write changes no byte outside its range.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::backends::FileBackend;
use redb::StorageBackend;

/// What the backend does at its numbered points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Nothing: count the points.
    Count,
    /// Fail the operation at this point with an I/O error; the others go through.
    Fail {
        /// The point (0 = the first write or sync).
        at: u64,
    },
    /// Lose power at this point.
    Stop {
        /// The point (0 = the first write or sync). A write at this point is in flight: it
        /// may land like the unsynced ones. A sync at this point does not complete.
        at: u64,
        /// Which unsynced writes reach the disk.
        landing: Landing,
    },
}

/// Which of the writes not yet synced reach the disk when the power goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// None of them.
    Nothing,
    /// The first `per_mille`‰ of them (rounded down), in order; if `torn_bytes` is set, the
    /// next one after them lands cut to that many bytes (less if it is shorter).
    Prefix {
        /// The share of the unsynced operations that land, in thousandths.
        per_mille: u16,
        /// Bytes of the next write that land with them.
        torn_bytes: Option<u16>,
    },
    /// Each of them lands or not as the bits of a generator seeded with `seed` say, in order.
    Subset {
        /// The generator's seed.
        seed: u64,
    },
}

/// An operation issued since the last sync, not yet on the disk.
#[derive(Debug, Clone)]
enum Unsynced {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug)]
struct State {
    /// The file as reads see it: the disk with every unsynced operation applied.
    image: Vec<u8>,
    /// Operations since the last sync, in the order redb issued them.
    unsynced: Vec<Unsynced>,
    /// Points passed (writes and syncs issued).
    points: u64,
    plan: Plan,
    /// The plan's point was reached (failed or stopped there).
    fired: bool,
    /// The power went: every operation fails from now on.
    dead: bool,
}

/// What the test sees of a [`FaultyFile`] after redb took it.
#[derive(Debug, Clone)]
pub struct Probe {
    state: Arc<Mutex<State>>,
}

impl Probe {
    /// Writes and syncs issued so far.
    pub fn points(&self) -> u64 {
        lock(&self.state).points
    }

    /// The plan's point was reached.
    pub fn fired(&self) -> bool {
        lock(&self.state).fired
    }

    /// The power went.
    pub fn dead(&self) -> bool {
        lock(&self.state).dead
    }
}

/// The fault-injecting backend: see the module doc.
#[derive(Debug)]
pub struct FaultyFile {
    disk: FileBackend,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // redb may panic on a damaged file while it holds our lock; the state stays consistent
    // because every update is completed before the next operation.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn dead() -> io::Error {
    io::Error::other("simulated power loss: the process is gone")
}

/// A small deterministic generator (SplitMix64) for [`Landing::Subset`].
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The outcome of reaching a numbered point.
enum Step {
    Go,
    Fail,
    Stop(Landing),
}

impl State {
    fn step(&mut self) -> Step {
        let at = self.points;
        self.points += 1;
        match self.plan {
            Plan::Fail { at: p } if p == at => {
                self.fired = true;
                Step::Fail
            }
            Plan::Stop { at: p, landing } if p == at => {
                self.fired = true;
                Step::Stop(landing)
            }
            _ => Step::Go,
        }
    }

    fn apply_to_image(&mut self, op: &Unsynced) {
        match op {
            Unsynced::Write { offset, data } => {
                let start = *offset as usize;
                let end = start + data.len();
                if end > self.image.len() {
                    self.image.resize(end, 0);
                }
                self.image[start..end].copy_from_slice(data);
            }
            Unsynced::SetLen(len) => self.image.resize(*len as usize, 0),
        }
    }
}

fn apply_to_disk(disk: &FileBackend, op: &Unsynced) -> io::Result<()> {
    match op {
        Unsynced::Write { offset, data } => disk.write(*offset, data),
        Unsynced::SetLen(len) => disk.set_len(*len),
    }
}

impl FaultyFile {
    /// A backend over `disk` (the real file, whose contents are the disk's) following `plan`,
    /// and the probe that reports on it.
    pub fn new(disk: FileBackend, plan: Plan) -> io::Result<(FaultyFile, Probe)> {
        let len = disk.len()?;
        let image = disk.read(0, len as usize)?;
        let state = Arc::new(Mutex::new(State {
            image,
            unsynced: Vec::new(),
            points: 0,
            plan,
            fired: false,
            dead: false,
        }));
        let probe = Probe {
            state: state.clone(),
        };
        Ok((FaultyFile { disk, state }, probe))
    }

    /// Puts the unsynced operations the landing picks on the disk, and dies.
    fn lose_power(&self, s: &mut State, landing: Landing) -> io::Result<()> {
        let ops = std::mem::take(&mut s.unsynced);
        s.dead = true;
        match landing {
            Landing::Nothing => {}
            Landing::Prefix {
                per_mille,
                torn_bytes,
            } => {
                let whole = ops.len() * usize::from(per_mille.min(1000)) / 1000;
                for op in &ops[..whole] {
                    apply_to_disk(&self.disk, op)?;
                }
                if let (Some(cut), Some(Unsynced::Write { offset, data })) =
                    (torn_bytes, ops.get(whole))
                {
                    let cut = usize::from(cut).min(data.len());
                    self.disk.write(*offset, &data[..cut])?;
                }
            }
            Landing::Subset { seed } => {
                let mut rng = seed;
                for op in &ops {
                    if splitmix(&mut rng) & 1 == 1 {
                        apply_to_disk(&self.disk, op)?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl StorageBackend for FaultyFile {
    fn len(&self) -> Result<u64, io::Error> {
        let s = lock(&self.state);
        if s.dead {
            return Err(dead());
        }
        Ok(s.image.len() as u64)
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, io::Error> {
        let s = lock(&self.state);
        if s.dead {
            return Err(dead());
        }
        let start = offset as usize;
        match start.checked_add(len) {
            Some(end) if end <= s.image.len() => Ok(s.image[start..end].to_vec()),
            _ => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
        }
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut s = lock(&self.state);
        if s.dead {
            return Err(dead());
        }
        let op = Unsynced::SetLen(len);
        s.apply_to_image(&op);
        s.unsynced.push(op);
        Ok(())
    }

    fn sync_data(&self, _eventual: bool) -> Result<(), io::Error> {
        let mut s = lock(&self.state);
        if s.dead {
            return Err(dead());
        }
        match s.step() {
            Step::Go => {
                for op in std::mem::take(&mut s.unsynced) {
                    apply_to_disk(&self.disk, &op)?;
                }
                Ok(())
            }
            // A failed sync leaves the writes where they were: in the page cache, unsynced.
            Step::Fail => Err(io::Error::other("injected sync failure")),
            Step::Stop(landing) => {
                self.lose_power(&mut s, landing)?;
                Err(dead())
            }
        }
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut s = lock(&self.state);
        if s.dead {
            return Err(dead());
        }
        offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let op = Unsynced::Write {
            offset,
            data: data.to_vec(),
        };
        match s.step() {
            Step::Go => {
                s.apply_to_image(&op);
                s.unsynced.push(op);
                Ok(())
            }
            Step::Fail => Err(io::Error::other("injected write failure")),
            Step::Stop(landing) => {
                // The write was under way when the power went: it may land with the others.
                s.unsynced.push(op);
                self.lose_power(&mut s, landing)?;
                Err(dead())
            }
        }
    }
}

impl Drop for FaultyFile {
    fn drop(&mut self) {
        // A process that ends without a crash leaves its writes in the page cache, which the
        // kernel writes out: they reach the disk.
        let mut s = lock(&self.state);
        if !s.dead {
            for op in std::mem::take(&mut s.unsynced) {
                let _ = apply_to_disk(&self.disk, &op);
            }
        }
    }
}
