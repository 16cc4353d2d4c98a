//! The workload: items put and republished, gets, lookup targets planted for the searching
//! overlays, and the commands issued to nodes and recorded as pending until they finish.

use super::*;

impl<O: Overlay> Sim<O> {
    /// A random live node to start a workload command from; an honest one in a run with
    /// adversaries (theirs are not judged), or none after [`ORIGIN_DRAWS_MAX`] draws.
    pub(super) fn origin(&mut self) -> Option<NodeIdx> {
        if self.cfg.adversary.is_none() {
            return self.live.random(&mut self.rng);
        }
        for _ in 0..ORIGIN_DRAWS_MAX {
            let i = self.live.random(&mut self.rng)?;
            if self.nodes[i as usize]
                .as_ref()
                .is_some_and(|n| !n.is_adversary())
            {
                return Some(i);
            }
        }
        None
    }

    pub(super) fn new_item(&mut self, n: u64) {
        let mut mutable = self.rng.chance(self.cfg.mutable_fraction);
        if n == 0 && self.target.as_ref().is_some_and(|t| t.is_item) {
            // The target of a `targeted` attack (see `default_target`).
            mutable = false;
        }
        let (key, seq) = if mutable {
            (Id::random(&mut self.rng), 1)
        } else {
            (Id::sha1(&value_for(self.cfg.seed, n, 0)), 0)
        };
        self.reference.add(
            key,
            ItemRecord {
                mutable,
                number: n,
                seq_sent: -1,
                seq_acked: -1,
            },
        );
        self.c.items += 1;
        self.put_version(key, n, seq);
        self.schedule_republish(key);
    }

    pub(super) fn put_version(&mut self, key: Id, number: u64, seq: i64) {
        let Some(from) = self.origin() else {
            return;
        };
        self.reference.sent(&key, seq);
        let value = value_for(self.cfg.seed, number, seq);
        self.issue(from, PendingKind::Put { seq }, key, Some(value));
    }

    pub(super) fn issue_get(&mut self, key: Id, round: Option<u32>) {
        let Some(from) = self.origin() else {
            return;
        };
        let expected_seq = self.reference.get(&key).map_or(0, |r| r.seq_acked);
        self.issue(
            from,
            PendingKind::Get {
                expected_seq,
                round,
            },
            key,
            None,
        );
    }

    /// Plants the target `key` of a coming lookup at the overlay's number of distinct random
    /// live nodes (none for overlays that route to a key's owner); returns the holders.
    pub(super) fn plant(&mut self, key: &Id) -> Vec<NodeIdx> {
        let copies = self.overlay.lookup_copies(self.live.len()) as usize;
        let mut holders: Vec<NodeIdx> = Vec::with_capacity(copies);
        // Distinct picks by rejection; the bound only matters when copies is close to the
        // number of live nodes.
        let mut tries = copies.saturating_mul(8);
        while holders.len() < copies && tries > 0 {
            tries -= 1;
            let Some(h) = self.live.random(&mut self.rng) else {
                break;
            };
            if !holders.contains(&h) {
                holders.push(h);
            }
        }
        holders.sort_unstable();
        for &h in &holders {
            if let Some(node) = self.nodes[h as usize].as_mut() {
                self.overlay.plant(node, key);
            }
        }
        holders
    }

    /// Removes a planted lookup target from the holders that still exist.
    pub(super) fn unplant(&mut self, key: &Id, holders: Vec<NodeIdx>) {
        for h in holders {
            if let Some(node) = self.nodes.get_mut(h as usize).and_then(|n| n.as_mut()) {
                self.overlay.unplant(node, key);
            }
        }
    }

    /// Starts a workload command on node `from` and records it as pending; returns its handle.
    pub(super) fn issue(
        &mut self,
        from: NodeIdx,
        kind: PendingKind,
        key: Id,
        value: Option<Vec<u8>>,
    ) -> Option<QueryId> {
        if self.pending.len() >= PENDING_OPS_MAX {
            self.c.skipped += 1;
            return None;
        }
        let now = self.now.into_instant();
        let node = self.nodes[from as usize].as_mut()?;
        let q = match kind {
            PendingKind::Lookup { .. } => {
                self.c.lookups_started += 1;
                node.lookup(now, key)
            }
            PendingKind::Put { seq } => {
                self.c.puts_started += 1;
                node.put(now, key, value.unwrap_or_default(), seq)
            }
            PendingKind::Get { .. } => {
                self.c.gets_started += 1;
                node.get(now, key)
            }
        };
        self.pending.insert(
            (from, q),
            Pending {
                kind,
                key,
                start_us: self.now,
            },
        );
        self.drain(from);
        Some(q)
    }

    pub(super) fn check_round(&mut self, round: u32) {
        let keys: Vec<Id> = self.reference.acked_keys().to_vec();
        let stride = keys.len().div_ceil(CHECK_ITEMS_MAX).max(1);
        let mut checked = 0;
        for key in keys.into_iter().step_by(stride) {
            self.issue_get(key, Some(round));
            checked += 1;
        }
        if let Some(r) = self.rounds.get_mut(round as usize) {
            r.t_s = (self.now - self.measure_start_us) as f64 / 1e6;
            r.items = checked;
        }
    }
}
