//! The driver: one task per socket that moves datagrams between the socket and the node, fires
//! its timers, commits its store changes, and answers the handles.
//!
//! Each turn: receive a batch of datagrams (the first awaited, the rest taken while the socket
//! has them, up to [`RECV_BATCH_MAX`]) and hand each to the node; commit the batch's store
//! changes in one transaction; only then send the batch's datagrams. So a put is acknowledged
//! only once durable, and one disk sync covers a whole batch (group commit).

use std::collections::BTreeMap;
use std::time::Duration;

use dht_proto::node::{Event, Node, QueryId};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::disk::DataDir;
use crate::error::CommandError;
use crate::handle::{Request, Status};

/// Datagrams handled per turn before the driver commits and sends.
pub const RECV_BATCH_MAX: usize = 256;

/// Largest datagram read; longer ones are truncated by the OS and then fail to decode.
const DATAGRAM_LEN_MAX: usize = 64 * 1024;

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
    waiting: BTreeMap<QueryId, oneshot::Sender<Result<Event, CommandError>>>,
    bootstrap_query: QueryId,
    bootstrapped: watch::Sender<Option<usize>>,
    next_snapshot: std::time::Instant,
    changes: Vec<dht_proto::store::StoreChange>,
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
        }
    }

    pub(crate) async fn run(mut self) {
        let mut buf = vec![0u8; DATAGRAM_LEN_MAX];
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            let wake = self
                .node
                .poll_timeout()
                .map(|t| self.clock.to_std(t))
                .unwrap_or_else(|| std::time::Instant::now() + IDLE_WAKE);
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    match r {
                        Ok((n, from)) => {
                            self.node.handle_datagram(self.clock.now(), from, &buf[..n]);
                            self.drain_socket(&mut buf);
                        }
                        Err(e) => tracing::debug!(error = %e, "recv failed"),
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
        tracing::info!(id = %self.node.id(), "node stopped");
        if let Some(tx) = shutdown {
            let _ = tx.send(());
        }
    }

    /// Takes what else the socket holds, without waiting, up to the batch bound.
    fn drain_socket(&mut self, buf: &mut [u8]) {
        for _ in 1..RECV_BATCH_MAX {
            match self.socket.try_recv_from(buf) {
                Ok((n, from)) => self.node.handle_datagram(self.clock.now(), from, &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "recv failed");
                    break;
                }
            }
        }
    }

    fn handle_request(&mut self, r: Request) {
        match r {
            Request::Command { start, reply } => match start(&mut self.node, self.clock.now()) {
                Ok(q) => {
                    self.waiting.insert(q, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(CommandError::Item(e)));
                }
            },
            Request::Status(tx) => {
                let table = self.node.routing_table();
                let _ = tx.send(Status {
                    id: self.node.id(),
                    local_addr: self.socket.local_addr().unwrap_or(([0, 0, 0, 0], 0).into()),
                    contacts: table.len(),
                    buckets: table.bucket_count(),
                    items: self.node.storage().item_count(),
                    info_hashes: self.node.storage().info_hash_count(),
                    stats: self.node.stats(),
                    commands: self.node.commands_running(),
                    external_addr: self.node.external_addr(),
                    read_only: self.node.config().read_only,
                });
            }
            Request::Table(tx) => {
                let table = self.node.routing_table();
                let _ = tx.send(table.contacts().map(|c| c.info()).collect());
            }
            Request::Shutdown(_) => {}
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
                if let Err(e) = disk.commit(&self.changes, &self.clock) {
                    // Acknowledging what is not on disk would be a lie: drop this turn's
                    // datagrams, so the writers time out and store elsewhere.
                    tracing::error!(error = %e, "store commit failed; dropping this batch's replies");
                    durable = false;
                }
            }
        }
        while let Some(t) = self.node.poll_transmit() {
            if !durable {
                continue;
            }
            if let Err(e) = self.socket.send_to(&t.data, t.to).await {
                tracing::debug!(to = %t.to, error = %e, "send failed");
            }
        }
        while let Some(e) = self.node.poll_event() {
            if e.query == self.bootstrap_query {
                if let dht_proto::node::Outcome::Bootstrap { contacts } = e.outcome {
                    tracing::info!(contacts, "bootstrap finished");
                    let _ = self.bootstrapped.send(Some(contacts));
                }
                continue;
            }
            if let Some(tx) = self.waiting.remove(&e.query) {
                let _ = tx.send(Ok(e));
            }
        }
    }

    fn save_snapshot(&self) {
        let Some(disk) = &self.disk else { return };
        let now = self.clock.now();
        let contacts: Vec<_> = self
            .node
            .routing_table()
            .contacts()
            .filter(|c| c.standing(now) != dht_proto::routing::Standing::Bad && c.verified)
            .map(|c| c.info())
            .collect();
        if let Err(e) = disk.save_contacts(&contacts) {
            tracing::warn!(error = %e, "saving the routing table failed");
        }
    }
}
