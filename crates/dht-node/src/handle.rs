//! The [`Dht`] handle: a cloneable, async front to one running node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dht_proto::bep44::MutableItem;
use dht_proto::lookup::LookupStats;
use dht_proto::message::NodeInfo;
use dht_proto::node::{Event, Node, NodeStats, Outcome, QueryId};
use dht_proto::{Id, Instant};
use tokio::sync::{mpsc, oneshot, watch};

use crate::builder::Builder;
use crate::error::CommandError;
use crate::metrics::{CommandKind, RuntimeMetrics};

/// A command for the driver: a closure that starts it on the node and the channel for its event.
pub(crate) type Start =
    Box<dyn FnOnce(&mut Node, Instant) -> Result<QueryId, dht_proto::bep44::ItemError> + Send>;

pub(crate) enum Request {
    Command {
        kind: CommandKind,
        start: Start,
        reply: oneshot::Sender<Result<Event, CommandError>>,
    },
    Status(oneshot::Sender<Status>),
    Table(oneshot::Sender<Vec<NodeInfo>>),
    Routing(oneshot::Sender<RoutingSnapshot>),
    Stored(oneshot::Sender<StoredSnapshot>),
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
    /// Peers held for others, over all info-hashes.
    pub peers: usize,
    /// Bytes of the values of the items held for others.
    pub item_bytes: u64,
    /// Time since the node started.
    pub uptime: Duration,
    /// What the runtime counts beyond [`NodeStats`]: traffic by kind, commands, disk commits.
    pub runtime: RuntimeMetrics,
    /// Counters.
    pub stats: NodeStats,
    /// Commands running.
    pub commands: usize,
    /// Our address as others see it, if any told us.
    pub external_addr: Option<SocketAddr>,
    /// Whether the node is read-only (BEP 43).
    pub read_only: bool,
    /// How many nodes the network has, estimated from the distances of the contacts closest
    /// to this node's ID ([`dht_proto::id::estimate_network_size`]); None below 2 contacts.
    pub network_size_estimate: Option<u64>,
}

/// How a routing-table contact stands, as the API shows it: BEP 5's good, questionable and
/// bad, with contacts that never answered a query of ours apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactState {
    /// Answered one of our queries within the last 15 minutes.
    Good,
    /// Answered us once, but not within the last 15 minutes.
    Questionable,
    /// Left two tries in a row unanswered; the next newcomer takes its place.
    Bad,
    /// Never answered a query of ours: known from a reply that named it, or from its own query.
    Unverified,
}

impl ContactState {
    /// The state's name: `good`, `questionable`, `bad` or `unverified`.
    pub fn name(self) -> &'static str {
        match self {
            ContactState::Good => "good",
            ContactState::Questionable => "questionable",
            ContactState::Bad => "bad",
            ContactState::Unverified => "unverified",
        }
    }
}

/// One contact of a [`RoutingSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSnapshot {
    /// Its node ID.
    pub id: Id,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// How it stands.
    pub state: ContactState,
    /// Time since we last heard from it (to the second).
    pub since_seen: Duration,
    /// Queries in a row it left unanswered.
    pub failures: u8,
    /// Its smoothed round trip (to 4.4%), once one of its answers to a request sent once was
    /// timed.
    pub rtt: Option<Duration>,
}

/// One bucket of a [`RoutingSnapshot`]: the key range it covers and its contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSnapshot {
    /// Its index: bucket `i` holds the IDs that share exactly `i` leading bits with ours (the
    /// last bucket: at least `i`).
    pub index: usize,
    /// The lowest ID of its range.
    pub first: Id,
    /// The highest ID of its range.
    pub last: Id,
    /// Its contacts (replacements not included).
    pub contacts: Vec<ContactSnapshot>,
}

/// The routing table, bucket by bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingSnapshot {
    /// The node's own ID.
    pub own_id: Id,
    /// The table's good window (`RoutingTable::good_for`): how long a contact that answered
    /// stays good without being heard from; 15 minutes unless contacts have been dying fast.
    pub good_for: Duration,
    /// Every bucket, from the farthest range (index 0) to the one holding our own ID.
    pub buckets: Vec<BucketSnapshot>,
}

/// The range of IDs that bucket `index` of `count` covers for a table of `own`: the IDs that
/// share exactly `index` leading bits with `own` (the last bucket: at least `index`).
pub(crate) fn bucket_range(own: &Id, index: usize, count: usize) -> (Id, Id) {
    let mut first = Id::ZERO;
    let mut last = Id([0xff; dht_proto::id::ID_LEN]);
    let fixed = if index + 1 < count { index + 1 } else { index };
    for bit in 0..fixed.min(dht_proto::id::ID_BITS) {
        // The shared prefix is ours; in a bucket other than the last the next bit differs.
        let value = if bit == index {
            !own.bit(bit)
        } else {
            own.bit(bit)
        };
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        if value {
            first.0[byte] |= mask;
        } else {
            last.0[byte] &= !mask;
        }
    }
    (first, last)
}

/// Items listed in a [`StoredSnapshot`] at most; the counts cover them all.
pub const STORED_LIST_MAX: usize = 1000;

/// One item of a [`StoredSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItemInfo {
    /// Its target.
    pub key: Id,
    /// Whether it is a signed mutable item.
    pub mutable: bool,
    /// Bytes of its (bencoded) value.
    pub bytes: usize,
    /// Its seq, for a mutable item.
    pub seq: Option<i64>,
}

/// What a node holds for others: items and peer lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// Up to [`STORED_LIST_MAX`] items, in key order.
    pub items: Vec<StoredItemInfo>,
    /// Items held, all of them.
    pub items_total: usize,
    /// Up to [`STORED_LIST_MAX`] info-hashes with the number of peers held for each.
    pub peers: Vec<(Id, usize)>,
    /// Info-hashes held, all of them.
    pub info_hashes_total: usize,
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

    async fn command(&self, kind: CommandKind, start: Start) -> Result<Event, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Command { kind, start, reply })
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
            .command(
                CommandKind::FindNode,
                Box::new(move |n, now| Ok(n.find_node(now, target))),
            )
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
        self.command(
            CommandKind::FindNode,
            Box::new(move |n, now| Ok(n.find_node_traced(now, target))),
        )
        .await
    }

    /// Stores an immutable value (bencoded) at the k closest nodes.
    pub async fn put_immutable(&self, value: Vec<u8>) -> Result<PutResult, CommandError> {
        let e = self
            .command(
                CommandKind::PutImmutable,
                Box::new(move |n, now| n.put_immutable(now, value).map(|(_, q)| q)),
            )
            .await?;
        Ok(Self::stored(e))
    }

    /// Fetches an immutable value (bencoded) by its target.
    pub async fn get_immutable(&self, target: Id) -> Result<GetResult<Vec<u8>>, CommandError> {
        let e = self
            .command(
                CommandKind::GetImmutable,
                Box::new(move |n, now| Ok(n.get_immutable(now, target))),
            )
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
            .command(
                CommandKind::PutMutable,
                Box::new(move |n, now| n.put_mutable(now, item, cas)),
            )
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
            .command(
                CommandKind::GetMutable,
                Box::new(move |n, now| Ok(n.get_mutable(now, public_key, &salt))),
            )
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
            .command(
                CommandKind::Announce,
                Box::new(move |n, now| Ok(n.announce(now, info_hash, port))),
            )
            .await?;
        Ok(Self::stored(e))
    }

    /// Peers of a torrent.
    pub async fn get_peers(
        &self,
        info_hash: Id,
    ) -> Result<GetResult<Vec<SocketAddr>>, CommandError> {
        let e = self
            .command(
                CommandKind::GetPeers,
                Box::new(move |n, now| Ok(n.get_peers(now, info_hash))),
            )
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

    /// The routing table bucket by bucket, with each bucket's key range and each contact's
    /// state.
    pub async fn routing_snapshot(&self) -> Result<RoutingSnapshot, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Routing(tx))
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// What the node holds for others: its items and peer lists (up to [`STORED_LIST_MAX`]
    /// of each).
    pub async fn stored_snapshot(&self) -> Result<StoredSnapshot, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Stored(tx))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id_with(first: u8, rest: u8) -> Id {
        let mut id = Id([rest; dht_proto::id::ID_LEN]);
        id.0[0] = first;
        id
    }

    #[test]
    fn bucket_ranges_tile_the_key_space() {
        let own = Id::from_hex("a0000000000000000000000000000000000000ff").unwrap();
        let count = 3;
        let ranges: Vec<(Id, Id)> = (0..count).map(|i| bucket_range(&own, i, count)).collect();
        // Bucket 0: the half without our first bit (1); bucket 1: our first bit, then not
        // our second (0); bucket 2, the last: the quarter holding our ID.
        assert_eq!(ranges[0], (Id::ZERO, id_with(0x7f, 0xff)));
        assert_eq!(ranges[1], (id_with(0xc0, 0), id_with(0xff, 0xff)));
        assert_eq!(ranges[2], (id_with(0x80, 0), id_with(0xbf, 0xff)));
        assert!(ranges[2].0 <= own && own <= ranges[2].1);
    }
}
