//! The driver: one task per socket that moves datagrams between the socket and the node, fires
//! its timers, commits its store changes, and answers the handles.
//!
//! Each turn: receive a batch of datagrams (the first awaited, the rest taken while the socket
//! has them, up to [`RECV_BATCH_MAX`]) and hand each to the node; commit the batch's store
//! changes in one transaction; only then send the batch's datagrams; then deliver the events.
//! So a put is acknowledged only once durable, and one disk sync covers a whole batch (group
//! commit).
//!
//! The socket I/O is batched ([`crate::udp`]): on Linux a turn of [`RECV_BATCH_MAX`] datagrams
//! costs `RECV_BATCH_MAX / RECV_SLOTS` `recvmmsg` calls and one `sendmmsg` call per
//! [`udp::SEND_CHUNK_MAX`] replies, instead of one system call per datagram each way.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use dht_proto::message::Shape;
use dht_proto::node::{Event, Node, QueryId, Transmit};
use dht_proto::routing::Standing;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::disk::DataDir;
use crate::error::CommandError;
use crate::handle::{
    bucket_range, BucketSnapshot, ContactSnapshot, ContactState, Request, RoutingSnapshot, Status,
    StoredItemInfo, StoredSnapshot, STORED_LIST_MAX,
};
use crate::metrics::{CommandKind, CommandOutcome, RuntimeMetrics};
use crate::udp::{self, RecvBatch, RECV_SLOTS};

/// Datagrams handled per turn before the driver commits and sends.
pub const RECV_BATCH_MAX: usize = udp::TURN_DATAGRAMS_MAX;

/// Receive calls per turn: enough slots for [`RECV_BATCH_MAX`] datagrams.
const RECV_CALLS_PER_TURN: usize = RECV_BATCH_MAX.div_ceil(RECV_SLOTS);

thread_local! {
    /// The receive slots, one set per runtime thread rather than per node: a driver uses them
    /// only between a receive call and the last `handle_datagram` of its batch, never across
    /// an `.await`, so the drivers on one thread can share them. A process of many nodes (the
    /// loopback cluster, `dht bench`) then keeps 64 KiB per thread instead of per node.
    static RECV: RefCell<RecvBatch> = RefCell::new(RecvBatch::new());
}

/// Transmits taken from the node and handed to the socket at once; a turn with more sends
/// them in several rounds.
const TRANSMITS_PER_SEND: usize = RECV_BATCH_MAX;

/// How often the routing table is saved (and once more at shutdown).
const SNAPSHOT_EVERY: Duration = Duration::from_secs(5 * 60);

/// How long the driver sleeps when the node asks for no wake-up.
const IDLE_WAKE: Duration = Duration::from_secs(60);

pub(crate) struct Driver {
    node: Node,
    socket: UdpSocket,
    clock: Clock,
    disk: Option<DataDir>,
    rx: mpsc::Receiver<Request>,
    waiting: BTreeMap<QueryId, Waiting>,
    bootstrap_query: QueryId,
    bootstrapped: watch::Sender<Option<usize>>,
    next_snapshot: std::time::Instant,
    changes: Vec<dht_proto::store::StoreChange>,
    /// The datagrams of the turn being sent, at most [`TRANSMITS_PER_SEND`].
    outgoing: Vec<Transmit>,
    /// What the node's own counters cannot see: traffic by kind, commands, commits, socket
    /// failures. Logged in part when the node stops.
    metrics: RuntimeMetrics,
}

/// A handle's command in progress.
struct Waiting {
    kind: CommandKind,
    reply: oneshot::Sender<Result<Event, CommandError>>,
}

impl Driver {
    pub(crate) fn new(
        node: Node,
        socket: UdpSocket,
        clock: Clock,
        disk: Option<DataDir>,
        rx: mpsc::Receiver<Request>,
        bootstrap_query: QueryId,
        bootstrapped: watch::Sender<Option<usize>>,
    ) -> Self {
        Driver {
            node,
            socket,
            clock,
            disk,
            rx,
            waiting: BTreeMap::new(),
            bootstrap_query,
            bootstrapped,
            next_snapshot: std::time::Instant::now() + SNAPSHOT_EVERY,
            changes: Vec::new(),
            outgoing: Vec::with_capacity(TRANSMITS_PER_SEND),
            metrics: RuntimeMetrics::default(),
        }
    }

    pub(crate) async fn run(mut self) {
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            let wake = self
                .node
                .poll_timeout()
                .map(|t| self.clock.to_std(t))
                .unwrap_or_else(|| std::time::Instant::now() + IDLE_WAKE);
            tokio::select! {
                r = self.socket.readable() => {
                    match r {
                        Ok(()) => RECV.with_borrow_mut(|batch| self.receive(batch)),
                        Err(e) => {
                            self.metrics.recv_errors += 1;
                            tracing::debug!(error = %e, "waiting for the socket failed");
                        }
                    }
                }
                req = self.rx.recv() => match req {
                    None => break,
                    Some(Request::Shutdown(tx)) => {
                        shutdown = Some(tx);
                        break;
                    }
                    Some(r) => self.handle_request(r),
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    self.node.handle_timeout(self.clock.now());
                }
            }
            self.flush().await;
            if std::time::Instant::now() >= self.next_snapshot {
                self.next_snapshot = std::time::Instant::now() + SNAPSHOT_EVERY;
                self.save_snapshot();
            }
        }
        self.flush().await;
        self.save_snapshot();
        let c = self.metrics;
        tracing::info!(
            id = %self.node.id(),
            recv_errors = c.recv_errors,
            send_failed = c.send_failed,
            send_withheld = c.send_withheld,
            truncated = c.recv_truncated,
            "node stopped"
        );
        if let Some(tx) = shutdown {
            let _ = tx.send(());
        }
    }

    /// Takes what the socket holds, without waiting, up to [`RECV_BATCH_MAX`] datagrams, and
    /// hands each to the node.
    fn receive(&mut self, batch: &mut RecvBatch) {
        for _ in 0..RECV_CALLS_PER_TURN {
            match udp::try_recv_batch(&self.socket, batch) {
                Ok(n) => {
                    self.metrics.recv_truncated += batch.truncated();
                    // One clock read per batch: its datagrams arrived together.
                    let now = self.clock.now();
                    for (from, bytes) in batch.iter() {
                        // The node says what it decoded; what it could not decode is read
                        // leniently, so the counters still sort it as it arrived.
                        let shape = self
                            .node
                            .handle_datagram(now, from, bytes)
                            .or_else(|| Shape::read(bytes));
                        self.metrics
                            .traffic
                            .received
                            .count_shaped(bytes.len(), shape);
                    }
                    if n < RECV_SLOTS {
                        // The socket is drained; a further call would only say so.
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.metrics.recv_errors += 1;
                    tracing::debug!(error = %e, "recv failed");
                    break;
                }
            }
        }
    }

    fn handle_request(&mut self, r: Request) {
        match r {
            Request::Command { kind, start, reply } => {
                match start(&mut self.node, self.clock.now()) {
                    Ok(q) => {
                        self.waiting.insert(q, Waiting { kind, reply });
                    }
                    Err(e) => {
                        self.metrics.command_ended(
                            kind,
                            CommandOutcome::Refused,
                            Duration::ZERO,
                            0,
                        );
                        let _ = reply.send(Err(CommandError::Item(e)));
                    }
                }
            }
            Request::Status(tx) => {
                let table = self.node.routing_table();
                let storage = self.node.storage();
                let _ = tx.send(Status {
                    id: self.node.id(),
                    local_addr: self.socket.local_addr().unwrap_or(([0, 0, 0, 0], 0).into()),
                    contacts: table.len(),
                    buckets: table.bucket_count(),
                    items: storage.item_count(),
                    info_hashes: storage.info_hash_count(),
                    peers: storage.peer_lists().map(|(_, n)| n).sum(),
                    item_bytes: storage.items().map(|i| i.value.value().len() as u64).sum(),
                    uptime: Duration::from_micros(self.clock.now().as_micros()),
                    runtime: self.metrics,
                    stats: self.node.stats(),
                    commands: self.node.commands_running(),
                    external_addr: self.node.external_addr(),
                    read_only: self.node.config().read_only,
                    network_size_estimate: self.network_size_estimate(),
                });
            }
            Request::Table(tx) => {
                let table = self.node.routing_table();
                let _ = tx.send(table.contacts().map(|c| c.info()).collect());
            }
            Request::Routing(tx) => {
                let _ = tx.send(self.routing_snapshot());
            }
            Request::Stored(tx) => {
                let storage = self.node.storage();
                let items = storage
                    .items()
                    .take(STORED_LIST_MAX)
                    .map(|i| StoredItemInfo {
                        key: i.target,
                        mutable: matches!(i.value, dht_proto::store::ItemValue::Mutable(_)),
                        bytes: i.value.value().len(),
                        seq: match &i.value {
                            dht_proto::store::ItemValue::Mutable(m) => Some(m.seq),
                            dht_proto::store::ItemValue::Immutable(_) => None,
                        },
                    })
                    .collect();
                let _ = tx.send(StoredSnapshot {
                    items,
                    items_total: storage.item_count(),
                    peers: storage.peer_lists().take(STORED_LIST_MAX).collect(),
                    info_hashes_total: storage.info_hash_count(),
                });
            }
            Request::Shutdown(_) => {}
        }
    }

    /// The network's size estimated from the 8 contacts closest to our own ID.
    fn network_size_estimate(&self) -> Option<u64> {
        let own = self.node.id();
        let closest = self
            .node
            .routing_table()
            .closest(&own, dht_proto::routing::K);
        if closest.len() < 2 {
            return None;
        }
        let distances: Vec<_> = closest.iter().map(|c| own.distance(&c.id)).collect();
        // Our own node is one of the network too.
        dht_proto::id::estimate_network_size(&distances).map(|n| n + 1)
    }

    fn routing_snapshot(&self) -> RoutingSnapshot {
        let now = self.clock.now();
        let table = self.node.routing_table();
        let count = table.bucket_count();
        let own_id = self.node.id();
        let buckets = (0..count)
            .map(|index| {
                let (first, last) = bucket_range(&own_id, index, count);
                let contacts = table
                    .bucket(index)
                    .iter()
                    .map(|c| ContactSnapshot {
                        id: c.id,
                        addr: c.addr(),
                        state: match table.standing(c, now) {
                            Standing::Bad => ContactState::Bad,
                            _ if !c.verified() => ContactState::Unverified,
                            Standing::Good => ContactState::Good,
                            Standing::Questionable => ContactState::Questionable,
                        },
                        since_seen: Duration::from_micros(
                            now.as_micros().saturating_sub(c.last_seen().as_micros()),
                        ),
                        failures: c.failures(),
                        rtt: c.rtt(),
                    })
                    .collect();
                BucketSnapshot {
                    index,
                    first,
                    last,
                    contacts,
                }
            })
            .collect();
        RoutingSnapshot {
            own_id,
            good_for: table.good_for(),
            buckets,
        }
    }

    /// Commits the turn's store changes, then sends its datagrams and delivers its events.
    async fn flush(&mut self) {
        let mut durable = true;
        if let Some(disk) = &self.disk {
            self.changes.clear();
            while let Some(c) = self.node.poll_store_change() {
                self.changes.push(c);
            }
            if !self.changes.is_empty() {
                let started = std::time::Instant::now();
                let result = disk.commit(&self.changes, &self.clock);
                self.metrics
                    .commit_duration
                    .observe(started.elapsed().as_secs_f64());
                if let Err(e) = result {
                    self.metrics.commit_failures += 1;
                    // Acknowledging what is not on disk would be a lie: drop this turn's
                    // datagrams, so the writers time out and store elsewhere.
                    tracing::error!(error = %e, "store commit failed; dropping this batch's replies");
                    durable = false;
                }
            }
        }
        // The node's queue is finite; each round takes at most TRANSMITS_PER_SEND of it.
        loop {
            self.outgoing.clear();
            while self.outgoing.len() < TRANSMITS_PER_SEND {
                match self.node.poll_transmit() {
                    Some(t) => self.outgoing.push(t),
                    None => break,
                }
            }
            if self.outgoing.is_empty() {
                break;
            }
            if !durable {
                self.metrics.send_withheld += self.outgoing.len() as u64;
                continue;
            }
            for t in &self.outgoing {
                self.metrics
                    .traffic
                    .sent
                    .count_shaped(t.data.len(), Some(t.shape));
            }
            let report = udp::send_batch(&self.socket, &self.outgoing).await;
            self.metrics.send_failed += report.failed as u64;
        }
        self.outgoing.clear();
        while let Some(e) = self.node.poll_event() {
            if e.query == self.bootstrap_query {
                self.metrics.command_ended(
                    CommandKind::Bootstrap,
                    CommandOutcome::of(&e.outcome),
                    e.stats.duration,
                    e.stats.hops,
                );
                if let dht_proto::node::Outcome::Bootstrap { contacts } = e.outcome {
                    tracing::info!(contacts, "bootstrap finished");
                    let _ = self.bootstrapped.send(Some(contacts));
                }
                continue;
            }
            if let Some(w) = self.waiting.remove(&e.query) {
                self.metrics.command_ended(
                    w.kind,
                    CommandOutcome::of(&e.outcome),
                    e.stats.duration,
                    e.stats.hops,
                );
                let _ = w.reply.send(Ok(e));
            }
        }
    }

    fn save_snapshot(&self) {
        let Some(disk) = &self.disk else { return };
        let contacts: Vec<_> = self
            .node
            .routing_table()
            .contacts()
            .filter(|c| !c.is_bad() && c.verified())
            .map(|c| c.info())
            .collect();
        if let Err(e) = disk.save_contacts(&contacts) {
            tracing::warn!(error = %e, "saving the routing table failed");
        }
    }
}
