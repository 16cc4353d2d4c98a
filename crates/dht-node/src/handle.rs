//! The [`Dht`] handle: a cloneable, async front to one running node.

use std::net::SocketAddr;
use std::sync::Arc;

use dht_proto::bep44::MutableItem;
use dht_proto::lookup::LookupStats;
use dht_proto::message::NodeInfo;
use dht_proto::node::{Event, Node, NodeStats, Outcome, QueryId};
use dht_proto::{Id, Instant};
use tokio::sync::{mpsc, oneshot, watch};

use crate::builder::Builder;
use crate::error::CommandError;

/// A command for the driver: a closure that starts it on the node and the channel for its event.
pub(crate) type Start =
    Box<dyn FnOnce(&mut Node, Instant) -> Result<QueryId, dht_proto::bep44::ItemError> + Send>;

pub(crate) enum Request {
    Command {
        start: Start,
        reply: oneshot::Sender<Result<Event, CommandError>>,
    },
    Status(oneshot::Sender<Status>),
    Table(oneshot::Sender<Vec<NodeInfo>>),
    Shutdown(oneshot::Sender<()>),
}

/// A snapshot of a node's state.
#[derive(Debug, Clone)]
pub struct Status {
    /// The node's ID.
    pub id: Id,
    /// The address its socket is bound to.
    pub local_addr: SocketAddr,
    /// Contacts in the routing table.
    pub contacts: usize,
    /// Buckets in the routing table.
    pub buckets: usize,
    /// BEP 44 items held for others.
    pub items: usize,
    /// Info-hashes with peers held for others.
    pub info_hashes: usize,
    /// Counters.
    pub stats: NodeStats,
    /// Commands running.
    pub commands: usize,
    /// Our address as others see it, if any told us.
    pub external_addr: Option<SocketAddr>,
    /// Whether the node is read-only (BEP 43).
    pub read_only: bool,
}

/// The result of a put or an announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// The target written.
    pub target: Id,
    /// Nodes that acknowledged.
    pub stored_at: u32,
    /// KRPC errors from nodes that refused: (code, message).
    pub errors: Vec<(i64, String)>,
    /// The lookup's figures.
    pub stats: LookupStats,
}

/// The result of a get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResult<T> {
    /// What was found.
    pub value: Option<T>,
    /// The lookup's figures.
    pub stats: LookupStats,
}

struct Shared {
    id: Id,
    local_addr: SocketAddr,
    bootstrapped: watch::Receiver<Option<usize>>,
}

/// A cloneable handle to a running node. Dropping every handle stops the node (after saving
/// its state).
#[derive(Clone)]
pub struct Dht {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Dht {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dht")
            .field("id", &self.shared.id)
            .field("local_addr", &self.shared.local_addr)
            .finish()
    }
}

impl Dht {
    /// A builder for a node: `Dht::builder().bind(addr).bootstrap(["host:port"]).spawn().await`.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn new(
        tx: mpsc::Sender<Request>,
        id: Id,
        local_addr: SocketAddr,
        bootstrapped: watch::Receiver<Option<usize>>,
    ) -> Dht {
        Dht {
            tx,
            shared: Arc::new(Shared {
                id,
                local_addr,
                bootstrapped,
            }),
        }
    }

    /// The node's ID.
    pub fn id(&self) -> Id {
        self.shared.id
    }

    /// The address the node's socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Waits until the first bootstrap ended; returns the contacts in the routing table then.
    pub async fn bootstrapped(&self) -> Result<usize, CommandError> {
        let mut rx = self.shared.bootstrapped.clone();
        loop {
            if let Some(n) = *rx.borrow_and_update() {
                return Ok(n);
            }
            rx.changed().await.map_err(|_| CommandError::Stopped)?;
        }
    }

    async fn command(&self, start: Start) -> Result<Event, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Command { start, reply })
            .await
            .map_err(|_| CommandError::Stopped)?;
        let event = rx.await.map_err(|_| CommandError::Stopped)??;
        if event.outcome == Outcome::Overloaded {
            return Err(CommandError::Overloaded);
        }
        Ok(event)
    }

    fn stored(event: Event) -> PutResult {
        match event.outcome {
            Outcome::Stored {
                target,
                stored_at,
                errors,
            } => PutResult {
                target,
                stored_at,
                errors,
                stats: event.stats,
            },
            _ => PutResult {
                target: Id::ZERO,
                stored_at: 0,
                errors: Vec::new(),
                stats: event.stats,
            },
        }
    }

    /// The k nodes closest to `target` that answered.
    pub async fn find_node(&self, target: Id) -> Result<GetResult<Vec<NodeInfo>>, CommandError> {
        let e = self
            .command(Box::new(move |n, now| Ok(n.find_node(now, target))))
            .await?;
        let value = match e.outcome {
            Outcome::FindNode { closest } => Some(closest),
            _ => None,
        };
        Ok(GetResult {
            value,
            stats: e.stats,
        })
    }

    /// A lookup of `target` with every step recorded (`Event::trace`).
    pub async fn lookup_traced(&self, target: Id) -> Result<Event, CommandError> {
        self.command(Box::new(move |n, now| Ok(n.find_node_traced(now, target))))
            .await
    }

    /// Stores an immutable value (bencoded) at the k closest nodes.
    pub async fn put_immutable(&self, value: Vec<u8>) -> Result<PutResult, CommandError> {
        let e = self
            .command(Box::new(move |n, now| {
                n.put_immutable(now, value).map(|(_, q)| q)
            }))
            .await?;
        Ok(Self::stored(e))
    }

    /// Fetches an immutable value (bencoded) by its target.
    pub async fn get_immutable(&self, target: Id) -> Result<GetResult<Vec<u8>>, CommandError> {
        let e = self
            .command(Box::new(move |n, now| Ok(n.get_immutable(now, target))))
            .await?;
        let value = match e.outcome {
            Outcome::GetImmutable { value } => value,
            _ => None,
        };
        Ok(GetResult {
            value,
            stats: e.stats,
        })
    }

    /// Stores a signed mutable item; with `cas`, only where the stored seq equals it.
    pub async fn put_mutable(
        &self,
        item: MutableItem,
        cas: Option<i64>,
    ) -> Result<PutResult, CommandError> {
        item.verify()?;
        let e = self
            .command(Box::new(move |n, now| n.put_mutable(now, item, cas)))
            .await?;
        Ok(Self::stored(e))
    }

    /// Fetches the mutable item with the highest valid seq.
    pub async fn get_mutable(
        &self,
        public_key: [u8; 32],
        salt: Vec<u8>,
    ) -> Result<GetResult<MutableItem>, CommandError> {
        let e = self
            .command(Box::new(move |n, now| {
                Ok(n.get_mutable(now, public_key, &salt))
            }))
            .await?;
        let value = match e.outcome {
            Outcome::GetMutable { item } => item,
            _ => None,
        };
        Ok(GetResult {
            value,
            stats: e.stats,
        })
    }

    /// Announces that we are a peer of `info_hash` on `port` (`None`: the port our datagrams
    /// come from).
    pub async fn announce(
        &self,
        info_hash: Id,
        port: Option<u16>,
    ) -> Result<PutResult, CommandError> {
        let e = self
            .command(Box::new(move |n, now| Ok(n.announce(now, info_hash, port))))
            .await?;
        Ok(Self::stored(e))
    }

    /// Peers of a torrent.
    pub async fn get_peers(
        &self,
        info_hash: Id,
    ) -> Result<GetResult<Vec<SocketAddr>>, CommandError> {
        let e = self
            .command(Box::new(move |n, now| Ok(n.get_peers(now, info_hash))))
            .await?;
        let value = match e.outcome {
            Outcome::GetPeers { peers } => Some(peers),
            _ => None,
        };
        Ok(GetResult {
            value,
            stats: e.stats,
        })
    }

    /// A snapshot of the node's state.
    pub async fn status(&self) -> Result<Status, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Status(tx))
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// The routing table's contacts.
    pub async fn routing_table(&self) -> Result<Vec<NodeInfo>, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Table(tx))
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// Stops the node after saving its state; returns when it has stopped.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Request::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}
