//! The JSON routes under `/api/v1/`. Every route that concerns a node takes `?node=I` (an
//! index into the nodes served, default 0). IDs are 40 lowercase hex digits, addresses
//! `ip:port`; errors are `{"error": "..."}` with a 4xx or 5xx status (see [`ApiError`]).

use std::future::Future;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use dht_node::proto::{Id, MutableItem, NodeInfo, Outcome, TraceEvent};
use dht_node::{CommandError, Dht};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ApiError;
use super::{AppState, COMMAND_TIMEOUT};

/// The largest BEP 44 value, bencoded, in bytes.
pub const VALUE_BYTES_MAX: usize = dht_node::proto::VALUE_LEN_MAX;

/// The JSON routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/nodes", get(nodes))
        .route("/api/v1/status", get(status))
        .route("/api/v1/routing", get(routing))
        .route("/api/v1/lookup/{target}", get(lookup))
        .route("/api/v1/items", put(put_item))
        .route("/api/v1/items/{key}", get(get_item))
        .route("/api/v1/mutable", put(put_mutable))
        .route("/api/v1/mutable/{public_key}", get(get_mutable))
        .route("/api/v1/announce/{info_hash}", post(announce))
        .route("/api/v1/peers/{info_hash}", get(peers))
        .route("/api/v1/stored", get(stored))
}

/// The query parameters the routes take; each route reads the ones it needs.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// Which node (index), default 0.
    pub node: Option<usize>,
    /// A mutable item's salt, as text.
    pub salt: Option<String>,
    /// A mutable item's salt, in hex.
    pub salt_hex: Option<String>,
    /// The port to announce.
    pub port: Option<u16>,
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<Params>::from_request_parts(parts, state).await {
            Ok(Query(p)) => Ok(p),
            Err(e) => Err(ApiError::bad_request(format!(
                "bad query string: {}",
                e.body_text()
            ))),
        }
    }
}

fn id_param(what: &str, s: &str) -> Result<Id, ApiError> {
    Id::from_hex(s).ok_or_else(|| {
        ApiError::bad_request(format!("{what} must be 40 hexadecimal digits, got {s:?}"))
    })
}

fn hex_param(what: &str, s: &str) -> Result<Vec<u8>, ApiError> {
    hex::decode(s).map_err(|_| ApiError::bad_request(format!("{what} is not hexadecimal: {s:?}")))
}

fn public_key_param(s: &str) -> Result<[u8; 32], ApiError> {
    hex::decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "a public key must be 64 hexadecimal digits, got {s:?}"
            ))
        })
}

/// The salt of `?salt=` (text) or `?salt_hex=`, at most 64 bytes.
fn salt_of(text: Option<&str>, hex_text: Option<&str>) -> Result<Vec<u8>, ApiError> {
    let salt = match (text, hex_text) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give salt or salt_hex, not both")),
        (Some(t), None) => t.as_bytes().to_vec(),
        (None, Some(h)) => hex_param("salt_hex", h)?,
        (None, None) => Vec::new(),
    };
    if salt.len() > dht_node::proto::SALT_LEN_MAX {
        return Err(ApiError::bad_request(format!(
            "salt too long: {} bytes, at most {}",
            salt.len(),
            dht_node::proto::SALT_LEN_MAX
        )));
    }
    Ok(salt)
}

/// Runs a command of a node's handle within [`COMMAND_TIMEOUT`].
async fn within<T>(f: impl Future<Output = Result<T, CommandError>>) -> Result<T, ApiError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ApiError::timed_out(COMMAND_TIMEOUT.as_secs())),
    }
}

/// A request body, or the error for one over [`super::BODY_BYTES_MAX`].
fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        let status = e.status();
        if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!("request body over {} bytes", super::BODY_BYTES_MAX))
        } else {
            ApiError {
                status,
                message: format!("cannot read the request body: {}", e.body_text()),
            }
        }
    })
}

/// A bencoded value as JSON: `value` is its text if it is UTF-8 (else null), `value_hex` its
/// bytes in hex.
fn value_json(v: &[u8]) -> (Value, String) {
    let text = std::str::from_utf8(v).map_or(Value::Null, |s| Value::String(s.to_string()));
    (text, hex::encode(v))
}

fn errors_json(errors: &[(i64, String)]) -> Value {
    Value::Array(
        errors
            .iter()
            .map(|(code, message)| json!({"code": code, "message": message}))
            .collect(),
    )
}

/// `GET /api/v1/nodes`.
async fn nodes(State(state): State<AppState>) -> Json<Value> {
    let nodes: Vec<Value> = state
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            json!({"index": i, "node_id": d.id().to_string(), "bind": d.local_addr().to_string()})
        })
        .collect();
    Json(json!({ "nodes": nodes }))
}

/// `GET /api/v1/status`.
async fn status(State(state): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    let dht = state.node(p.node)?;
    let s = dht.status().await?;
    let n = s.stats;
    let received = &s.runtime.traffic.received;
    Ok(Json(json!({
        "node_id": s.id.to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "bind": s.local_addr.to_string(),
        "uptime_s": s.uptime.as_secs_f64(),
        "read_only": s.read_only,
        "external_addr": s.external_addr.map(|a| a.to_string()),
        "commands_running": s.commands,
        "routing_table": {"contacts": s.contacts, "buckets": s.buckets},
        "store": {"items": s.items, "peers": s.peers, "info_hashes": s.info_hashes,
                  "bytes": s.item_bytes},
        "network_size_estimate": s.network_size_estimate,
        "traffic": {
            "datagrams_in": n.datagrams_in,
            "datagrams_out": n.datagrams_out,
            "bytes_in": n.bytes_in,
            "bytes_out": n.bytes_out,
            "queries_answered": n.queries_answered,
            "errors_sent": n.errors_sent,
            "errors_received": received.errors.iter().sum::<u64>(),
            "malformed": n.malformed,
            "dropped": n.rate_limited + n.blocked_dropped + n.upload_dropped + n.queue_dropped,
        },
    })))
}

/// `GET /api/v1/routing`.
async fn routing(State(state): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    let dht = state.node(p.node)?;
    let r = dht.routing_snapshot().await?;
    let buckets: Vec<Value> = r
        .buckets
        .iter()
        .map(|b| {
            let contacts: Vec<Value> = b
                .contacts
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id.to_string(),
                        "addr": c.addr.to_string(),
                        "state": c.state.name(),
                        "last_seen_s": c.since_seen.as_secs_f64(),
                        "rtt_ms": c.rtt.map(|d| d.as_secs_f64() * 1000.0),
                        "failures": c.failures,
                    })
                })
                .collect();
            json!({"index": b.index, "first": b.first.to_string(), "last": b.last.to_string(),
                   "contacts": contacts})
        })
        .collect();
    Ok(Json(
        json!({"node_id": r.own_id.to_string(), "good_for_s": r.good_for.as_secs(), "buckets": buckets}),
    ))
}

/// One step of a lookup's trace, as `GET /api/v1/lookup` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupStep {
    /// The round of the request.
    pub round: u32,
    /// `asked`, `answered` or `timed_out`.
    pub kind: String,
    /// The node's ID (hex).
    pub id: String,
    /// Its address.
    pub addr: String,
    /// Leading bits its ID shares with the target.
    pub shared_bits: usize,
    /// Contacts in its reply (`answered` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned: Option<u32>,
    /// Of those, how many were new to the lookup (`answered` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<u32>,
    /// The IDs of the new ones (`answered` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<Vec<String>>,
}

/// One of the closest nodes a lookup found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupNode {
    /// Its ID (hex).
    pub id: String,
    /// Its address.
    pub addr: String,
    /// Leading bits its ID shares with the target.
    pub shared_bits: usize,
}

/// A traced lookup, as `GET /api/v1/lookup` answers it and `dht lookup` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupTrace {
    /// The target (hex).
    pub target: String,
    /// The searching node's ID (hex).
    pub node_id: String,
    /// From start to end, in milliseconds.
    pub duration_ms: u64,
    /// Rounds (hops).
    pub rounds: u32,
    /// Requests sent.
    pub messages: u32,
    /// Replies received.
    pub responses: u32,
    /// Requests that timed out.
    pub timeouts: usize,
    /// Disjoint paths the lookup ran on (1: the plain lookup).
    pub paths: u32,
    /// Every step, in the order they happened.
    pub steps: Vec<LookupStep>,
    /// The closest nodes that answered, closest first.
    pub closest: Vec<LookupNode>,
}

impl LookupTrace {
    /// The trace of a finished `find_node` lookup from `searcher` for `target`.
    pub fn of(searcher: Id, target: Id, e: dht_node::proto::Event) -> LookupTrace {
        let shared = |id: &Id| id.distance(&target).leading_zeros();
        let step = |kind: &str, round: u32, node: &NodeInfo| LookupStep {
            round,
            kind: kind.into(),
            id: node.id.to_string(),
            addr: node.addr.to_string(),
            shared_bits: shared(&node.id),
            returned: None,
            new: None,
            introduced: None,
        };
        let steps = e
            .trace
            .unwrap_or_default()
            .into_iter()
            .map(|t| match t {
                TraceEvent::Asked { round, node } => step("asked", round, &node),
                TraceEvent::Answered {
                    round,
                    node,
                    returned,
                    new,
                    introduced,
                } => LookupStep {
                    returned: Some(returned),
                    new: Some(new),
                    introduced: Some(introduced.iter().map(Id::to_string).collect()),
                    ..step("answered", round, &node)
                },
                TraceEvent::TimedOut { round, node } => step("timed_out", round, &node),
            })
            .collect();
        let closest = match e.outcome {
            Outcome::FindNode { closest } => closest,
            _ => Vec::new(),
        };
        LookupTrace {
            target: target.to_string(),
            node_id: searcher.to_string(),
            duration_ms: e.stats.duration.as_millis() as u64,
            paths: e.stats.paths,
            rounds: e.stats.hops,
            messages: e.stats.messages,
            responses: e.stats.responses,
            timeouts: e.stats.timed_out.len(),
            steps,
            closest: closest
                .iter()
                .map(|n| LookupNode {
                    id: n.id.to_string(),
                    addr: n.addr.to_string(),
                    shared_bits: shared(&n.id),
                })
                .collect(),
        }
    }
}

/// Runs a traced lookup on `dht`.
pub async fn traced_lookup(dht: &Dht, target: Id) -> Result<LookupTrace, CommandError> {
    let e = dht.lookup_traced(target).await?;
    Ok(LookupTrace::of(dht.id(), target, e))
}

/// `GET /api/v1/lookup/TARGET`.
async fn lookup(
    State(state): State<AppState>,
    Path(target): Path<String>,
    p: Params,
) -> Result<Json<LookupTrace>, ApiError> {
    let target = id_param("the target", &target)?;
    let dht = state.node(p.node)?;
    Ok(Json(within(traced_lookup(dht, target)).await?))
}

/// `GET /api/v1/items/KEY`: an immutable item, looked up in the network (the node's own store
/// included).
async fn get_item(
    State(state): State<AppState>,
    Path(key): Path<String>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let key = id_param("the key", &key)?;
    let dht = state.node(p.node)?;
    let r = within(dht.get_immutable(key)).await?;
    let Some(v) = r.value else {
        return Err(ApiError::not_found(format!("no item {key} found")));
    };
    let (value, value_hex) = value_json(&v);
    Ok(Json(
        json!({"key": key.to_string(), "value": value, "value_hex": value_hex,
                   "seq": Value::Null, "rounds": r.stats.hops}),
    ))
}

/// Checks a value for a BEP 44 put: 1 to [`VALUE_BYTES_MAX`] bytes of valid bencode.
fn check_value(v: &[u8]) -> Result<(), ApiError> {
    if v.is_empty() {
        return Err(ApiError::bad_request(
            "no value: the body (or value) must be a bencoded value, e.g. 5:hello",
        ));
    }
    if v.len() > VALUE_BYTES_MAX {
        return Err(ApiError::too_large(format!(
            "value too large: {} bytes, BEP 44 allows at most {VALUE_BYTES_MAX}",
            v.len()
        )));
    }
    dht_node::proto::bencode::validate(v).map_err(|e| {
        ApiError::bad_request(format!(
            "the value is not bencoded ({e}); a string is stored as LEN:TEXT, e.g. 5:hello"
        ))
    })
}

/// `PUT /api/v1/items`: the body is the bencoded value; answers its key and how many nodes
/// stored it.
async fn put_item(
    State(state): State<AppState>,
    p: Params,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let dht = state.node(p.node)?;
    let body = body_of(body)?;
    check_value(&body)?;
    let r = within(dht.put_immutable(body.to_vec())).await?;
    Ok(Json(
        json!({"key": r.target.to_string(), "stored_at": r.stored_at,
                   "errors": errors_json(&r.errors)}),
    ))
}

/// The body of `PUT /api/v1/mutable`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MutablePut {
    /// The bencoded value as text...
    value: Option<String>,
    /// ...or in hex.
    value_hex: Option<String>,
    salt: Option<String>,
    salt_hex: Option<String>,
    /// Required with a client's signature; otherwise one more than the newest found.
    seq: Option<i64>,
    /// Only replace an item whose seq is this.
    cas: Option<i64>,
    /// With `signature`: the client signed the item itself.
    public_key: Option<String>,
    signature: Option<String>,
}

/// `PUT /api/v1/mutable`: a signed mutable item. Either the client signed it (`public_key`,
/// `signature` and `seq` given) or the node signs it with the key it was started with
/// (`dht node --mutable-key FILE`).
async fn put_mutable(
    State(state): State<AppState>,
    p: Params,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let dht = state.node(p.node)?;
    let body = body_of(body)?;
    let req: MutablePut = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))?;
    let value = match (&req.value, &req.value_hex) {
        (Some(t), None) => t.as_bytes().to_vec(),
        (None, Some(h)) => hex_param("value_hex", h)?,
        _ => {
            return Err(ApiError::bad_request(
                "give value or value_hex (exactly one)",
            ))
        }
    };
    check_value(&value)?;
    let salt = salt_of(req.salt.as_deref(), req.salt_hex.as_deref())?;
    let item = match (&req.public_key, &req.signature) {
        (Some(pk), Some(sig)) => {
            let public_key = public_key_param(pk)?;
            let signature: [u8; 64] = hex::decode(sig)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| ApiError::bad_request("signature must be 128 hexadecimal digits"))?;
            let seq = req
                .seq
                .ok_or_else(|| ApiError::bad_request("a signed item needs its seq"))?;
            let item = MutableItem {
                public_key,
                salt,
                seq,
                value,
                signature,
            };
            item.verify()
                .map_err(|e| ApiError::bad_request(format!("item refused: {e}")))?;
            item
        }
        (None, None) => {
            let key = state.signing_key().ok_or_else(|| {
                ApiError::bad_request(
                    "this node has no key to sign with (start it with --mutable-key FILE), \
                     so send public_key, signature and seq",
                )
            })?;
            let seq = match req.seq {
                Some(s) => s,
                None => {
                    let pk = key.verifying_key().to_bytes();
                    let found = within(dht.get_mutable(pk, salt.clone())).await?;
                    found.value.map_or(1, |i| i.seq + 1)
                }
            };
            MutableItem::sign(key, &salt, seq, value)
                .map_err(|e| ApiError::bad_request(format!("item refused: {e}")))?
        }
        _ => {
            return Err(ApiError::bad_request(
                "give public_key and signature together, or neither",
            ))
        }
    };
    let (public_key, seq) = (hex::encode(item.public_key), item.seq);
    let r = within(dht.put_mutable(item, req.cas)).await?;
    Ok(Json(
        json!({"key": r.target.to_string(), "public_key": public_key, "seq": seq,
                   "stored_at": r.stored_at, "errors": errors_json(&r.errors)}),
    ))
}

/// `GET /api/v1/mutable/PUBLIC_KEY[?salt=TEXT|salt_hex=HEX]`: the mutable item with the highest
/// valid seq.
async fn get_mutable(
    State(state): State<AppState>,
    Path(public_key): Path<String>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let pk = public_key_param(&public_key)?;
    let salt = salt_of(p.salt.as_deref(), p.salt_hex.as_deref())?;
    let dht = state.node(p.node)?;
    let key = dht_node::proto::bep44::mutable_target(&pk, &salt);
    let r = within(dht.get_mutable(pk, salt.clone())).await?;
    let Some(item) = r.value else {
        return Err(ApiError::not_found(format!(
            "no mutable item found for {public_key} with salt {:?}",
            String::from_utf8_lossy(&salt)
        )));
    };
    let (value, value_hex) = value_json(&item.value);
    Ok(Json(
        json!({"key": key.to_string(), "public_key": hex::encode(item.public_key),
                   "salt_hex": hex::encode(&item.salt), "seq": item.seq, "value": value,
                   "value_hex": value_hex, "signature": hex::encode(item.signature)}),
    ))
}

/// `POST /api/v1/announce/INFO_HASH[?port=P]`: announces the node (or port P at its address)
/// as a peer of the torrent.
async fn announce(
    State(state): State<AppState>,
    Path(info_hash): Path<String>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let ih = id_param("the info-hash", &info_hash)?;
    if p.port == Some(0) {
        return Err(ApiError::bad_request("port must be 1 to 65535"));
    }
    let dht = state.node(p.node)?;
    let r = within(dht.announce(ih, p.port)).await?;
    Ok(Json(
        json!({"info_hash": ih.to_string(), "stored_at": r.stored_at,
                   "errors": errors_json(&r.errors)}),
    ))
}

/// `GET /api/v1/peers/INFO_HASH`: the peers of a torrent found in the network.
async fn peers(
    State(state): State<AppState>,
    Path(info_hash): Path<String>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let ih = id_param("the info-hash", &info_hash)?;
    let dht = state.node(p.node)?;
    let r = within(dht.get_peers(ih)).await?;
    let peers: Vec<String> = r
        .value
        .unwrap_or_default()
        .iter()
        .map(|a| a.to_string())
        .collect();
    Ok(Json(json!({"info_hash": ih.to_string(), "peers": peers})))
}

/// `GET /api/v1/stored`: what the node holds for others.
async fn stored(State(state): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    let dht = state.node(p.node)?;
    let s = dht.stored_snapshot().await?;
    let items: Vec<Value> = s
        .items
        .iter()
        .map(|i| {
            json!({"key": i.key.to_string(),
                   "kind": if i.mutable { "mutable" } else { "immutable" },
                   "bytes": i.bytes, "seq": i.seq})
        })
        .collect();
    let peers: Vec<Value> = s
        .peers
        .iter()
        .map(|(ih, n)| json!({"info_hash": ih.to_string(), "peers": n}))
        .collect();
    Ok(Json(
        json!({"items": items, "peers": peers, "items_total": s.items_total,
                   "info_hashes_total": s.info_hashes_total}),
    ))
}
