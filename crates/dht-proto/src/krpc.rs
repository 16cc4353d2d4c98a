//! Encoding and decoding of KRPC messages (see [`crate::message`] for the types).
//!
//! The wire format is BEP 5's: one bencoded dictionary per UDP datagram, with BEP 32 (`nodes6`,
//! `want`), BEP 42 (`ip`), BEP 43 (`ro`) and BEP 44 (`get`, `put`) fields.
//!
//! Decoding goes through the strict [`crate::bencode`] decoder, so a message must be canonical
//! bencode to be read at all. On top of that the rules are:
//!
//! - A key this module does not know is ignored (BEP 5 nodes add keys freely).
//! - A required key that is missing, or a known key whose value has the wrong type, length or
//!   range, fails the decode with a [`DecodeError`] carrying what the node needs to answer with
//!   error 203 (the transaction ID, and whether the message was a query).
//! - A few fields are read liberally, as libtorrent reads them: a `nodes`/`nodes6` string whose
//!   length is not a multiple of the entry size loses its trailing partial entry; a `values`
//!   entry that is not a 6- or 18-byte string is skipped; an unknown `want` flag is skipped; a
//!   `v` (version) longer than [`VERSION_LEN_MAX`] or an `ip` of the wrong length is ignored;
//!   `implied_port` is true for any non-zero integer; `ro` is true only for the integer 1.
//! - A BEP 44 `v` of any size and a salt of any length are passed through: answering 205 or 207
//!   is the node's decision, so the codec must not turn them into a 203.
//!
//! Encoding writes canonical bencode with keys in sorted order, leaving out what is empty or
//! absent (an empty `nodes` or `nodes6` unless [`Response::nodes_keys`] asks for it, an empty
//! `values`, a `false` `implied_port` or `ro`, an empty
//! salt). So `encode(decode(x)) == x` for every `x` that this encoder could have written,
//! including every example message of BEP 5 that has no placeholder in it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use thiserror::Error;

use crate::bencode::{self, BencodeError, DictEncoder, Encoder, Indexed, RawDict, RawValue, Value};
use crate::id::{Id, ID_LEN};
use crate::message::{
    Body, ErrorBody, Message, Method, MethodKind, MutableArgs, NodeInfo, PutArgs, Query, Response,
    Shape, Want, TOKEN_LEN_MAX, TRANSACTION_ID_LEN_MAX, VERSION_LEN_MAX,
};

/// Length of a compact IPv4 address and port (BEP 5 "compact peer info").
pub const COMPACT_ADDR_V4_LEN: usize = 6;
/// Length of a compact IPv6 address and port (BEP 32).
pub const COMPACT_ADDR_V6_LEN: usize = 18;
/// Length of one compact IPv4 node info in `nodes`: ID then address.
pub const COMPACT_NODE_V4_LEN: usize = ID_LEN + COMPACT_ADDR_V4_LEN;
/// Length of one compact IPv6 node info in `nodes6`: ID then address.
pub const COMPACT_NODE_V6_LEN: usize = ID_LEN + COMPACT_ADDR_V6_LEN;
/// Length of an ed25519 public key (BEP 44 `k`).
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an ed25519 signature (BEP 44 `sig`).
pub const SIGNATURE_LEN: usize = 64;

/// Why a datagram is not a KRPC message we can act on, with what the node needs to answer it.
///
/// The node answers with KRPC error 203 only when [`DecodeError::should_answer`] is true: the
/// message was (or looked like) a query and its transaction ID could be read. It never answers
/// a malformed response or error, so two nodes can never trade errors forever.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind}")]
pub struct DecodeError {
    /// What was wrong.
    pub kind: DecodeErrorKind,
    /// The transaction ID (`t`), if the message was a dictionary with a valid `t`.
    pub transaction_id: Option<Vec<u8>>,
    /// The message was a query: `y` was `q`, or `y` was missing or invalid and a `q` key was
    /// present.
    pub is_query: bool,
}

impl DecodeError {
    /// Whether the node should answer this datagram with KRPC error 203 (protocol error).
    pub fn should_answer(&self) -> bool {
        self.is_query && self.transaction_id.is_some()
    }
}

/// What made a datagram undecodable. Every kind is answered the same way (203 for a query,
/// nothing otherwise); the kind is for logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeErrorKind {
    /// The datagram is not strict bencode, or exceeds the decoder's bounds.
    #[error("invalid bencode: {0}")]
    Bencode(#[from] BencodeError),
    /// The datagram is bencode but not a dictionary.
    #[error("message is not a dictionary")]
    NotADict,
    /// A required key is missing; the name is its path, such as `a.id`.
    #[error("missing key `{0}`")]
    MissingKey(&'static str),
    /// A known key has a value of the wrong type, length or range; the name is its path.
    #[error("invalid value for key `{0}`")]
    InvalidKey(&'static str),
    /// `y` is not `q`, `r` or `e`.
    #[error("unknown message type `y`")]
    UnknownType,
}

type Kind = DecodeErrorKind;

/// The error for a datagram that is not strict bencode. A top-level dictionary whose `y` is
/// `q` (or that has a `q`) and whose `t` can still be read, say one with a non-canonical BEP 44
/// `v`, is a query to answer with 203; anything else is dropped unanswered.
fn not_canonical(bytes: &[u8], e: BencodeError) -> DecodeError {
    let bytes_of = |key: &[u8]| {
        bencode::lenient_top_level_get(bytes, key)
            .and_then(|raw| bencode::decode_raw(raw).ok())
            .and_then(|v| v.as_bytes())
    };
    let is_query = match bytes_of(b"y") {
        Some(y) => y == b"q",
        None => bencode::lenient_top_level_get(bytes, b"q").is_some(),
    };
    let transaction_id = is_query
        .then(|| bytes_of(b"t"))
        .flatten()
        .filter(|t| t.len() <= TRANSACTION_ID_LEN_MAX)
        .map(<[u8]>::to_vec);
    DecodeError {
        kind: Kind::Bencode(e),
        transaction_id,
        is_query,
    }
}

impl Message {
    /// Decodes one datagram.
    ///
    /// Never panics; see the module doc for what is rejected and what is read liberally.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let (envelope, body) = Self::decode_parts(bytes)?;
        Ok(Message {
            transaction_id: envelope.transaction_id.to_vec(),
            version: envelope.version.map(<[u8]>::to_vec),
            requester_ip: envelope.requester_ip,
            read_only: envelope.read_only,
            body,
        })
    }

    /// Decodes one datagram as [`Message::decode`] does, with the envelope borrowed from
    /// `bytes` rather than copied: the node's path, which so allocates nothing for it.
    pub fn decode_parts(bytes: &[u8]) -> Result<(Envelope<'_>, Body), DecodeError> {
        let mut index = Indexed::new(bytes);
        let top = bencode::decode_indexed(&mut index)
            .map_err(|e| not_canonical(bytes, e))?
            .as_dict()
            .ok_or(DecodeError {
                kind: Kind::NotADict,
                transaction_id: None,
                is_query: false,
            })?;
        let [a, e, ip, q, r, ro, t, v, y] = index.fields(
            top,
            [b"a", b"e", b"ip", b"q", b"r", b"ro", b"t", b"v", b"y"],
        );
        let y = y.and_then(|y| y.as_bytes());
        let is_query = match y {
            Some(b"q") => true,
            Some(b"r" | b"e") => false,
            _ => q.is_some(),
        };
        let t = match t.map(|t| t.as_bytes()) {
            Some(Some(t)) if t.len() <= TRANSACTION_ID_LEN_MAX => Ok(t),
            Some(_) => Err(Kind::InvalidKey("t")),
            None => Err(Kind::MissingKey("t")),
        };
        let fail = |kind: Kind| DecodeError {
            kind,
            transaction_id: t.ok().map(<[u8]>::to_vec),
            is_query,
        };
        let t = t.map_err(fail)?;
        let body = match y {
            Some(b"q") => Body::Query(query(&index, q, a).map_err(fail)?),
            Some(b"r") => Body::Response(response(&index, r).map_err(fail)?),
            Some(b"e") => Body::Error(error_body(e).map_err(fail)?),
            Some(_) => return Err(fail(Kind::UnknownType)),
            None => return Err(fail(Kind::MissingKey("y"))),
        };
        let version = v
            .and_then(|v| v.as_bytes())
            .filter(|v| v.len() <= VERSION_LEN_MAX);
        let requester_ip = ip.and_then(|ip| ip.as_bytes()).and_then(addr);
        let read_only = ro.and_then(|ro| ro.as_int()) == Some(1);
        let envelope = Envelope {
            transaction_id: t,
            version,
            requester_ip,
            read_only,
        };
        Ok((envelope, body))
    }

    /// Encodes the message into a new vector.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded message to `out` (reuse one buffer to send many messages).
    ///
    /// Writes canonical bencode; see the module doc for what is left out. A contact in
    /// [`Response::nodes`] must have an IPv4 address and one in [`Response::nodes6`] an IPv6
    /// address: a contact of the other family is skipped (and fails a debug assertion). A BEP 44
    /// value is spliced in as it is and must be valid bencode (checked in debug builds).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        encode_parts(out, &self.envelope(), &self.body);
    }

    /// The message's envelope, borrowed.
    pub fn envelope(&self) -> Envelope<'_> {
        Envelope {
            transaction_id: &self.transaction_id,
            version: self.version.as_deref(),
            requester_ip: self.requester_ip,
            read_only: self.read_only,
        }
    }
}

/// A close upper estimate of the encoded length, to size the output buffer once.
fn encoded_len_estimate(envelope: &Envelope<'_>, body: &Body) -> usize {
    /// Envelope, `a`/`r` keys and length prefixes of a message without bulky fields.
    const OVERHEAD_LEN: usize = 160;
    let bulky = match body {
        Body::Query(Query {
            method: Method::Put(p),
            ..
        }) => p.value.len() + p.token.len() + p.mutable.as_ref().map_or(0, |m| m.salt.len()),
        Body::Query(_) => 0,
        Body::Response(r) => {
            r.nodes.len() * COMPACT_NODE_V4_LEN
                + r.nodes6.len() * COMPACT_NODE_V6_LEN
                + r.peers.len() * (COMPACT_ADDR_V6_LEN + 3)
                + r.value.as_ref().map_or(0, Vec::len)
        }
        Body::Error(e) => e.message.len(),
    };
    OVERHEAD_LEN + envelope.transaction_id.len() + bulky
}

/// Encodes a message given as its envelope and body: [`Message::encode_into`] without the
/// owned envelope (the node's path, which so copies nothing into one).
///
/// Writes canonical bencode; see the module doc for what is left out. A contact in
/// [`Response::nodes`] must have an IPv4 address and one in [`Response::nodes6`] an IPv6
/// address: a contact of the other family is skipped (and fails a debug assertion). A BEP 44
/// value is spliced in as it is and must be valid bencode (checked in debug builds).
pub fn encode_parts(out: &mut Vec<u8>, envelope: &Envelope<'_>, body: &Body) {
    out.reserve(encoded_len_estimate(envelope, body));
    Encoder::new(out).dict(|d| {
        // Top-level keys in sorted order: a, e, ip, q, r, ro, t, v, y.
        if let Body::Query(q) = body {
            d.dict(b"a", |a| query_args(a, q));
        }
        if let Body::Error(e) = body {
            d.list(b"e", |l| {
                l.int(e.code);
                l.bytes(e.message.as_bytes());
            });
        }
        if let Some(ip) = &envelope.requester_ip {
            let mut buf = [0u8; COMPACT_ADDR_V6_LEN];
            d.bytes(b"ip", compact_addr(ip, &mut buf));
        }
        if let Body::Query(q) = body {
            d.bytes(b"q", method_name(&q.method));
        }
        if let Body::Response(r) = body {
            d.dict(b"r", |rd| response_fields(rd, r));
        }
        if envelope.read_only {
            d.int(b"ro", 1);
        }
        d.bytes(b"t", envelope.transaction_id);
        if let Some(v) = &envelope.version {
            d.bytes(b"v", v);
        }
        d.bytes(
            b"y",
            match body {
                Body::Query(_) => b"q",
                Body::Response(_) => b"r",
                Body::Error(_) => b"e",
            },
        );
    });
}

/// A KRPC message's envelope, borrowed: everything but its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The transaction ID (`t`).
    pub transaction_id: &'a [u8],
    /// The sender's client version (`v`), if any.
    pub version: Option<&'a [u8]>,
    /// BEP 42 `ip`.
    pub requester_ip: Option<SocketAddr>,
    /// BEP 43 `ro`.
    pub read_only: bool,
}

impl Shape {
    /// Reads a datagram's [`Shape`] from its top-level `y`, `q` and `e` alone, in one lenient
    /// walk that skips every other value without looking inside it
    /// ([`crate::bencode::lenient_top_level_fields`]): a reply's `nodes` costs nothing. This
    /// sorts, it does not check (a datagram the strict decoder refuses may still have a
    /// shape); `None` when the top level cannot be walked or `y` is not `q`, `r` or `e`.
    pub fn read(datagram: &[u8]) -> Option<Shape> {
        let [e, q, y] =
            bencode::lenient_top_level_fields(datagram, [&b"e"[..], &b"q"[..], &b"y"[..]])?;
        match lenient_bytes(y)? {
            b"q" => Some(Shape::Query(MethodKind::of_name(
                lenient_bytes(q).unwrap_or(b""),
            ))),
            b"r" => Some(Shape::Response),
            b"e" => Some(Shape::Error(lenient_error_code(e))),
            _ => None,
        }
    }
}

/// The byte string a raw value is, if it is one.
fn lenient_bytes(raw: Option<&[u8]>) -> Option<&[u8]> {
    match bencode::decode(raw?).ok()? {
        Value::Bytes(b) => Some(b),
        _ => None,
    }
}

/// The code of a KRPC error, `[code, message]`: the list's first item if it is an integer.
fn lenient_error_code(raw: Option<&[u8]>) -> Option<i64> {
    match bencode::decode(raw?).ok()? {
        Value::List(l) => match l.items().first()? {
            Value::Int(code) => Some(*code),
            _ => None,
        },
        _ => None,
    }
}

/// The `q` name of a method.
fn method_name(method: &Method) -> &[u8] {
    match method {
        Method::Ping => b"ping",
        Method::FindNode { .. } => b"find_node",
        Method::GetPeers { .. } => b"get_peers",
        Method::AnnouncePeer { .. } => b"announce_peer",
        Method::Get { .. } => b"get",
        Method::Put(_) => b"put",
        Method::Unknown { name } => name,
    }
}

/// Writes the `a` dictionary of a query, keys in sorted order.
fn query_args(a: &mut DictEncoder<'_>, q: &Query) {
    let id = q.sender_id.as_bytes();
    match &q.method {
        Method::Ping | Method::Unknown { .. } => a.bytes(b"id", id),
        Method::FindNode { target, want } => {
            a.bytes(b"id", id);
            a.bytes(b"target", target.as_bytes());
            write_want(a, want);
        }
        Method::GetPeers { info_hash, want } => {
            a.bytes(b"id", id);
            a.bytes(b"info_hash", info_hash.as_bytes());
            write_want(a, want);
        }
        Method::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
        } => {
            a.bytes(b"id", id);
            if *implied_port {
                a.int(b"implied_port", 1);
            }
            a.bytes(b"info_hash", info_hash.as_bytes());
            a.int(b"port", i64::from(*port));
            a.bytes(b"token", token);
        }
        Method::Get { target, seq } => {
            a.bytes(b"id", id);
            if let Some(seq) = seq {
                a.int(b"seq", *seq);
            }
            a.bytes(b"target", target.as_bytes());
        }
        Method::Put(p) => {
            // Sorted: cas, id, k, salt, seq, sig, target, token, v.
            let m = p.mutable.as_ref();
            if let Some(cas) = m.and_then(|m| m.cas) {
                a.int(b"cas", cas);
            }
            a.bytes(b"id", id);
            if let Some(m) = m {
                a.bytes(b"k", &m.public_key);
                if !m.salt.is_empty() {
                    a.bytes(b"salt", &m.salt);
                }
                a.int(b"seq", m.seq);
                a.bytes(b"sig", &m.signature);
            }
            if let Some(target) = &p.target {
                a.bytes(b"target", target.as_bytes());
            }
            a.bytes(b"token", &p.token);
            a.raw(b"v", &p.value);
        }
    }
}

fn write_want(a: &mut DictEncoder<'_>, want: &Option<Want>) {
    if let Some(w) = want {
        a.list(b"want", |l| {
            if w.v4 {
                l.bytes(b"n4");
            }
            if w.v6 {
                l.bytes(b"n6");
            }
        });
    }
}

/// Writes the `r` dictionary of a response, keys in sorted order.
fn response_fields(d: &mut DictEncoder<'_>, r: &Response) {
    // Sorted: id, k, nodes, nodes6, seq, sig, token, v, values.
    d.bytes(b"id", r.sender_id.as_bytes());
    if let Some(k) = &r.public_key {
        d.bytes(b"k", k);
    }
    if !r.nodes.is_empty() || r.nodes_keys.v4 {
        d.bytes_with(b"nodes", compact_nodes_len(&r.nodes, false), |out| {
            write_compact_nodes(out, &r.nodes, false)
        });
    }
    if !r.nodes6.is_empty() || r.nodes_keys.v6 {
        d.bytes_with(b"nodes6", compact_nodes_len(&r.nodes6, true), |out| {
            write_compact_nodes(out, &r.nodes6, true)
        });
    }
    if let Some(seq) = r.seq {
        d.int(b"seq", seq);
    }
    if let Some(sig) = &r.signature {
        d.bytes(b"sig", sig);
    }
    if let Some(token) = &r.token {
        d.bytes(b"token", token);
    }
    if let Some(v) = &r.value {
        d.raw(b"v", v);
    }
    if !r.peers.is_empty() {
        d.list(b"values", |l| {
            let mut buf = [0u8; COMPACT_ADDR_V6_LEN];
            for peer in &r.peers {
                l.bytes(compact_addr(peer, &mut buf));
            }
        });
    }
}

/// Number of bytes the contacts of the wanted family take in compact form.
fn compact_nodes_len(nodes: &[NodeInfo], v6: bool) -> usize {
    let entry_len = if v6 {
        COMPACT_NODE_V6_LEN
    } else {
        COMPACT_NODE_V4_LEN
    };
    nodes.iter().filter(|n| n.addr.is_ipv6() == v6).count() * entry_len
}

fn write_compact_nodes(out: &mut Vec<u8>, nodes: &[NodeInfo], v6: bool) {
    let mut buf = [0u8; COMPACT_ADDR_V6_LEN];
    for n in nodes {
        debug_assert_eq!(
            n.addr.is_ipv6(),
            v6,
            "a contact in `nodes` must be IPv4 and one in `nodes6` IPv6"
        );
        if n.addr.is_ipv6() != v6 {
            continue;
        }
        out.extend_from_slice(n.id.as_bytes());
        out.extend_from_slice(compact_addr(&n.addr, &mut buf));
    }
}

/// Writes `addr` in compact form into `buf` and returns the used part (6 or 18 bytes).
fn compact_addr<'b>(addr: &SocketAddr, buf: &'b mut [u8; COMPACT_ADDR_V6_LEN]) -> &'b [u8] {
    match addr {
        SocketAddr::V4(a) => {
            buf[..4].copy_from_slice(&a.ip().octets());
            buf[4..6].copy_from_slice(&a.port().to_be_bytes());
            &buf[..COMPACT_ADDR_V4_LEN]
        }
        SocketAddr::V6(a) => {
            buf[..16].copy_from_slice(&a.ip().octets());
            buf[16..18].copy_from_slice(&a.port().to_be_bytes());
            &buf[..COMPACT_ADDR_V6_LEN]
        }
    }
}

/// Reads a compact address: 6 bytes for IPv4, 18 for IPv6, anything else is not one.
fn addr(b: &[u8]) -> Option<SocketAddr> {
    match b.len() {
        COMPACT_ADDR_V4_LEN => {
            let ip: [u8; 4] = b[..4].try_into().ok()?;
            let port = u16::from_be_bytes([b[4], b[5]]);
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        COMPACT_ADDR_V6_LEN => {
            let ip: [u8; 16] = b[..16].try_into().ok()?;
            let port = u16::from_be_bytes([b[16], b[17]]);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                0,
                0,
            )))
        }
        _ => None,
    }
}

/// Reads compact node infos of one family, dropping a trailing partial entry.
fn compact_nodes(b: &[u8], entry_len: usize) -> Vec<NodeInfo> {
    b.chunks_exact(entry_len)
        .filter_map(|c| {
            let (id, a) = c.split_at(ID_LEN);
            Some(NodeInfo {
                id: Id::from_slice(id)?,
                addr: addr(a)?,
            })
        })
        .collect()
}

// ---- field readers: a known key of the wrong type is an error, an absent one is `None` ----

/// A field's value as looked up by [`RawDict::fields`].
type Field<'a> = Option<RawValue<'a>>;

fn opt_bytes<'a>(f: Field<'a>, path: &'static str) -> Result<Option<&'a [u8]>, Kind> {
    f.map(|v| v.as_bytes().ok_or(Kind::InvalidKey(path)))
        .transpose()
}

fn req_bytes<'a>(f: Field<'a>, path: &'static str) -> Result<&'a [u8], Kind> {
    opt_bytes(f, path)?.ok_or(Kind::MissingKey(path))
}

fn opt_int(f: Field<'_>, path: &'static str) -> Result<Option<i64>, Kind> {
    f.map(|v| v.as_int().ok_or(Kind::InvalidKey(path)))
        .transpose()
}

fn req_int(f: Field<'_>, path: &'static str) -> Result<i64, Kind> {
    opt_int(f, path)?.ok_or(Kind::MissingKey(path))
}

fn req_id(f: Field<'_>, path: &'static str) -> Result<Id, Kind> {
    Id::from_slice(req_bytes(f, path)?).ok_or(Kind::InvalidKey(path))
}

fn opt_array<const N: usize>(f: Field<'_>, path: &'static str) -> Result<Option<[u8; N]>, Kind> {
    opt_bytes(f, path)?
        .map(|b| b.try_into().map_err(|_| Kind::InvalidKey(path)))
        .transpose()
}

fn req_token(f: Field<'_>, path: &'static str) -> Result<Vec<u8>, Kind> {
    let token = req_bytes(f, path)?;
    if token.len() > TOKEN_LEN_MAX {
        return Err(Kind::InvalidKey(path));
    }
    Ok(token.to_vec())
}

fn req_dict<'a>(f: Field<'a>, path: &'static str) -> Result<RawDict<'a>, Kind> {
    f.ok_or(Kind::MissingKey(path))?
        .as_dict()
        .ok_or(Kind::InvalidKey(path))
}

fn want(f: Field<'_>) -> Result<Option<Want>, Kind> {
    let Some(v) = f else {
        return Ok(None);
    };
    let list = v.as_list().ok_or(Kind::InvalidKey("a.want"))?;
    let mut w = Want::default();
    for item in list.items() {
        match item.as_bytes() {
            Some(b"n4") => w.v4 = true,
            Some(b"n6") => w.v6 = true,
            // BEP 32 leaves room for more flags; ones we do not know are skipped.
            _ => {}
        }
    }
    Ok(Some(w))
}

fn query<'a>(index: &Indexed<'a>, q: Field<'a>, a: Field<'a>) -> Result<Query, Kind> {
    let name = req_bytes(q, "q")?;
    let args = req_dict(a, "a")?;
    // Every argument any method takes, sorted, gathered in one pass.
    let [cas, id, implied_port, info_hash, k, port, salt, seq, sig, target, token, v, want_] =
        index.fields(
            args,
            [
                b"cas",
                b"id",
                b"implied_port",
                b"info_hash",
                b"k",
                b"port",
                b"salt",
                b"seq",
                b"sig",
                b"target",
                b"token",
                b"v",
                b"want",
            ],
        );
    let sender_id = req_id(id, "a.id")?;
    let method = match name {
        b"ping" => Method::Ping,
        b"find_node" => Method::FindNode {
            target: req_id(target, "a.target")?,
            want: want(want_)?,
        },
        b"get_peers" => Method::GetPeers {
            info_hash: req_id(info_hash, "a.info_hash")?,
            want: want(want_)?,
        },
        b"announce_peer" => Method::AnnouncePeer {
            info_hash: req_id(info_hash, "a.info_hash")?,
            port: u16::try_from(req_int(port, "a.port")?)
                .map_err(|_| Kind::InvalidKey("a.port"))?,
            implied_port: opt_int(implied_port, "a.implied_port")?.is_some_and(|i| i != 0),
            token: req_token(token, "a.token")?,
        },
        b"get" => Method::Get {
            target: req_id(target, "a.target")?,
            seq: opt_int(seq, "a.seq")?,
        },
        b"put" => {
            let token = req_token(token, "a.token")?;
            let value = v.ok_or(Kind::MissingKey("a.v"))?.raw().to_vec();
            let public_key = opt_array::<PUBLIC_KEY_LEN>(k, "a.k")?;
            let signature = opt_array::<SIGNATURE_LEN>(sig, "a.sig")?;
            // A put is mutable when it carries a key or a signature; then it needs k, sig, seq.
            let mutable = if public_key.is_some() || signature.is_some() {
                Some(MutableArgs {
                    public_key: public_key.ok_or(Kind::MissingKey("a.k"))?,
                    signature: signature.ok_or(Kind::MissingKey("a.sig"))?,
                    seq: req_int(seq, "a.seq")?,
                    salt: opt_bytes(salt, "a.salt")?.unwrap_or_default().to_vec(),
                    cas: opt_int(cas, "a.cas")?,
                })
            } else {
                None
            };
            Method::Put(PutArgs {
                token,
                value,
                mutable,
                target: opt_array::<ID_LEN>(target, "a.target")?.map(Id),
            })
        }
        _ => Method::Unknown {
            name: name.to_vec(),
        },
    };
    Ok(Query { sender_id, method })
}

fn response<'a>(index: &Indexed<'a>, r: Field<'a>) -> Result<Response, Kind> {
    let r = req_dict(r, "r")?;
    let [id, k, nodes, nodes6, seq, sig, token, v, values] = index.fields(
        r,
        [
            b"id", b"k", b"nodes", b"nodes6", b"seq", b"sig", b"token", b"v", b"values",
        ],
    );
    let token = match opt_bytes(token, "r.token")? {
        Some(t) if t.len() > TOKEN_LEN_MAX => return Err(Kind::InvalidKey("r.token")),
        t => t.map(<[u8]>::to_vec),
    };
    let peers = match values {
        None => Vec::new(),
        // Entries of another length or type are skipped, not fatal: the rest are still peers.
        Some(values) => values
            .as_list()
            .ok_or(Kind::InvalidKey("r.values"))?
            .items()
            .filter_map(|v| v.as_bytes().and_then(addr))
            .collect(),
    };
    let nodes = opt_bytes(nodes, "r.nodes")?.map(|b| compact_nodes(b, COMPACT_NODE_V4_LEN));
    let nodes6 = opt_bytes(nodes6, "r.nodes6")?.map(|b| compact_nodes(b, COMPACT_NODE_V6_LEN));
    Ok(Response {
        sender_id: req_id(id, "r.id")?,
        nodes_keys: Want {
            v4: nodes.as_ref().is_some_and(Vec::is_empty),
            v6: nodes6.as_ref().is_some_and(Vec::is_empty),
        },
        nodes: nodes.unwrap_or_default(),
        nodes6: nodes6.unwrap_or_default(),
        token,
        peers,
        value: v.map(|v| v.raw().to_vec()),
        public_key: opt_array::<PUBLIC_KEY_LEN>(k, "r.k")?,
        signature: opt_array::<SIGNATURE_LEN>(sig, "r.sig")?,
        seq: opt_int(seq, "r.seq")?,
    })
}

fn error_body(e: Field<'_>) -> Result<ErrorBody, Kind> {
    let mut items = e
        .ok_or(Kind::MissingKey("e"))?
        .as_list()
        .ok_or(Kind::InvalidKey("e"))?
        .items();
    let code = items
        .next()
        .and_then(|c| c.as_int())
        .ok_or(Kind::InvalidKey("e"))?;
    // The message is for humans; a missing or non-UTF-8 one must not lose the code.
    let message = items
        .next()
        .and_then(|m| m.as_bytes())
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default();
    Ok(ErrorBody { code, message })
}
