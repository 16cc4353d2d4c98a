//! KRPC messages as typed values (BEP 5, 32, 42, 43, 44), kept apart from the domain types.
//!
//! [`Message::decode`] and [`Message::encode`] live in [`crate::krpc`]; this module only says
//! what a message holds.

use std::net::SocketAddr;

use crate::id::Id;

/// Longest transaction ID we accept and echo, in bytes. BEP 5 sets no length; libtorrent sends
/// 2 bytes, others 4. Anything longer than this is a protocol error (203).
pub const TRANSACTION_ID_LEN_MAX: usize = 32;

/// Longest `v` (client version) string we keep, in bytes; longer ones are ignored.
pub const VERSION_LEN_MAX: usize = 16;

/// Longest write token we accept, in bytes.
pub const TOKEN_LEN_MAX: usize = 64;

/// Longest BEP 44 salt, in bytes (BEP 44: 64; longer gets error 207).
pub const SALT_LEN_MAX: usize = 64;

/// Largest bencoded BEP 44 value, in bytes (BEP 44: 1000; larger gets error 205).
pub const VALUE_LEN_MAX: usize = 1000;

/// A KRPC message: the envelope fields every message has, and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The transaction ID (`t`), any length up to [`TRANSACTION_ID_LEN_MAX`]; a response echoes
    /// the query's bytes exactly.
    pub transaction_id: Vec<u8>,
    /// The sender's client version (`v`), if it sent one.
    pub version: Option<Vec<u8>>,
    /// BEP 42 `ip`: the address the responder saw the requester at (top level of responses).
    pub requester_ip: Option<SocketAddr>,
    /// BEP 43 `ro`: the sender is read-only and must not be added to routing tables.
    pub read_only: bool,
    /// Query, response or error.
    pub body: Body,
}

/// The three kinds of KRPC message (`y` = `q`, `r`, `e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A query (`y` = `q`).
    Query(Query),
    /// A response (`y` = `r`).
    Response(Response),
    /// An error (`y` = `e`).
    Error(ErrorBody),
}

/// A query: the querying node's ID and the method with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The querying node's ID (`a.id`).
    pub sender_id: Id,
    /// The method (`q`) and its arguments (`a`).
    pub method: Method,
}

/// Which address families a requester wants nodes for (BEP 32 `want`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// `n4` was in `want`.
    pub v4: bool,
    /// `n6` was in `want`.
    pub v6: bool,
}

/// A KRPC method with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `ping`.
    Ping,
    /// `find_node` with `target`.
    FindNode {
        /// The ID to find the closest nodes to.
        target: Id,
        /// BEP 32 `want`, if present.
        want: Option<Want>,
    },
    /// `get_peers` with `info_hash`.
    GetPeers {
        /// The torrent's info-hash.
        info_hash: Id,
        /// BEP 32 `want`, if present.
        want: Option<Want>,
    },
    /// `announce_peer`.
    AnnouncePeer {
        /// The torrent's info-hash.
        info_hash: Id,
        /// The port the peer listens on (`port`).
        port: u16,
        /// `implied_port` = 1: use the UDP source port instead of `port`.
        implied_port: bool,
        /// The write token from an earlier `get_peers` response.
        token: Vec<u8>,
    },
    /// BEP 44 `get` with `target` and optional `seq`.
    Get {
        /// SHA-1 of the value (immutable) or of public key and salt (mutable).
        target: Id,
        /// Only send the value if the stored seq is greater than this.
        seq: Option<i64>,
    },
    /// BEP 44 `put`.
    Put(PutArgs),
    /// A method we do not know; answered with error 204.
    Unknown {
        /// The method name as it came.
        name: Vec<u8>,
    },
}

impl Method {
    /// The method without its arguments.
    pub fn kind(&self) -> MethodKind {
        match self {
            Method::Ping => MethodKind::Ping,
            Method::FindNode { .. } => MethodKind::FindNode,
            Method::GetPeers { .. } => MethodKind::GetPeers,
            Method::AnnouncePeer { .. } => MethodKind::AnnouncePeer,
            Method::Get { .. } => MethodKind::Get,
            Method::Put(_) => MethodKind::Put,
            Method::Unknown { .. } => MethodKind::Other,
        }
    }
}

/// A query method without its arguments, as traffic counters sort queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MethodKind {
    /// `ping`.
    Ping,
    /// `find_node`.
    FindNode,
    /// `get_peers`.
    GetPeers,
    /// `announce_peer`.
    AnnouncePeer,
    /// BEP 44 `get`.
    Get,
    /// BEP 44 `put`.
    Put,
    /// Any other method name.
    Other,
}

impl MethodKind {
    /// Every kind, in counter order.
    pub const ALL: [MethodKind; 7] = [
        MethodKind::Ping,
        MethodKind::FindNode,
        MethodKind::GetPeers,
        MethodKind::AnnouncePeer,
        MethodKind::Get,
        MethodKind::Put,
        MethodKind::Other,
    ];

    /// The method's name on the wire (`other` for unknown ones).
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Ping => "ping",
            MethodKind::FindNode => "find_node",
            MethodKind::GetPeers => "get_peers",
            MethodKind::AnnouncePeer => "announce_peer",
            MethodKind::Get => "get",
            MethodKind::Put => "put",
            MethodKind::Other => "other",
        }
    }

    /// The kind of the method named `name` on the wire.
    pub fn of_name(name: &[u8]) -> MethodKind {
        MethodKind::ALL
            .into_iter()
            .find(|k| k.name().as_bytes() == name)
            .unwrap_or(MethodKind::Other)
    }
}

/// What a KRPC datagram is at its top level: a query of some method, a response, or an error
/// with its code. The node gives it for every datagram it decodes
/// ([`crate::node::Node::handle_datagram`]) and sends ([`crate::node::Transmit::shape`]), so
/// a runtime's traffic counters need not walk the bytes again; [`Shape::read`] reads it from
/// bytes the node did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A query (`y` = `q`).
    Query(MethodKind),
    /// A response (`y` = `r`).
    Response,
    /// An error (`y` = `e`) and its code, if the `e` list starts with an integer.
    Error(Option<i64>),
}

impl Body {
    /// What the message is at its top level.
    pub fn shape(&self) -> Shape {
        match self {
            Body::Query(q) => Shape::Query(q.method.kind()),
            Body::Response(_) => Shape::Response,
            Body::Error(e) => Shape::Error(Some(e.code)),
        }
    }
}

/// Arguments of a BEP 44 `put`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutArgs {
    /// The write token from an earlier `get` response.
    pub token: Vec<u8>,
    /// The value (`v`), as its bencoded bytes, exactly as they came.
    pub value: Vec<u8>,
    /// Present for a mutable put.
    pub mutable: Option<MutableArgs>,
    /// The item's target (`target`). BEP 44 has none in `put`, but the `mainline` crate drops a
    /// `put` without it; our puts carry it, and one that came with it keeps it.
    pub target: Option<Id>,
}

impl PutArgs {
    /// The arguments that store the signed mutable `item` with `token`, only over `cas` if given.
    pub fn mutable(item: &crate::bep44::MutableItem, token: Vec<u8>, cas: Option<i64>) -> Self {
        PutArgs {
            token,
            target: Some(item.target()),
            value: item.value.clone(),
            mutable: Some(MutableArgs {
                public_key: item.public_key,
                signature: item.signature,
                seq: item.seq,
                salt: item.salt.clone(),
                cas,
            }),
        }
    }
}

/// The mutable-item fields of a BEP 44 `put`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableArgs {
    /// ed25519 public key (`k`).
    pub public_key: [u8; 32],
    /// ed25519 signature (`sig`).
    pub signature: [u8; 64],
    /// Sequence number (`seq`).
    pub seq: i64,
    /// Salt (`salt`), empty when absent.
    pub salt: Vec<u8>,
    /// Compare-and-swap (`cas`): only store if the current seq equals this.
    pub cas: Option<i64>,
}

/// A contact as it travels in compact node info: ID and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeInfo {
    /// The node's ID.
    pub id: Id,
    /// The node's UDP address.
    pub addr: SocketAddr,
}

/// A response. KRPC responses do not name the method they answer, so every field a response may
/// carry is here and is optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// The responder's ID (`r.id`).
    pub sender_id: Id,
    /// Compact IPv4 node infos (`nodes`).
    pub nodes: Vec<NodeInfo>,
    /// Compact IPv6 node infos (`nodes6`, BEP 32).
    pub nodes6: Vec<NodeInfo>,
    /// Which of `nodes` (`v4`) and `nodes6` (`v6`) the message carries even when empty (a list
    /// with contacts is always written; decoding sets a flag only for a key present and
    /// empty). BEP 5 expects `nodes` in every `find_node` reply and in a `get_peers` reply
    /// without peers, so a node with an empty table answers with an empty string.
    pub nodes_keys: Want,
    /// Write token (`token`).
    pub token: Option<Vec<u8>>,
    /// Peers for an info-hash (`values`), IPv4 and IPv6 compact forms.
    pub peers: Vec<SocketAddr>,
    /// BEP 44 value (`v`), as its bencoded bytes.
    pub value: Option<Vec<u8>>,
    /// BEP 44 public key (`k`).
    pub public_key: Option<[u8; 32]>,
    /// BEP 44 signature (`sig`).
    pub signature: Option<[u8; 64]>,
    /// BEP 44 sequence number (`seq`).
    pub seq: Option<i64>,
}

/// A KRPC error (`e` = `[code, message]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// The error code.
    pub code: i64,
    /// The human-readable message.
    pub message: String,
}

/// KRPC error codes (BEP 5 and BEP 44).
pub mod error_code {
    /// Generic error.
    pub const GENERIC: i64 = 201;
    /// Server error.
    pub const SERVER: i64 = 202;
    /// Protocol error: malformed packet, invalid arguments or bad token.
    pub const PROTOCOL: i64 = 203;
    /// Method unknown.
    pub const METHOD_UNKNOWN: i64 = 204;
    /// BEP 44: message (`v` field) too big.
    pub const MESSAGE_TOO_BIG: i64 = 205;
    /// BEP 44: invalid signature.
    pub const INVALID_SIGNATURE: i64 = 206;
    /// BEP 44: salt (`salt` field) too big.
    pub const SALT_TOO_BIG: i64 = 207;
    /// BEP 44: the CAS hash mismatched, re-read value and try again.
    pub const CAS_MISMATCH: i64 = 301;
    /// BEP 44: sequence number less than current.
    pub const SEQ_TOO_LOW: i64 = 302;
}
