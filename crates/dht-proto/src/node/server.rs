//! The server side: answering every query, with BEP 44's rules and their error codes.

use std::net::SocketAddr;

use super::guard::{Cost, REPLY_BYTES_MAX};
use super::{Node, Transmit};
use crate::bep44::{check_sizes, immutable_target, mutable_target, MutableItem};
use crate::id::Id;
use crate::message::{error_code, Body, Method, NodeInfo, PutArgs, Query, Response, Want};
use crate::routing::Heard;
use crate::store::{ItemValue, StoreError, StoredItem, ITEM_LIFETIME, PEER_LIFETIME};
use crate::time::Instant;

/// Peers sent in one `get_peers` reply, so the reply stays within one unfragmented datagram.
const PEERS_PER_REPLY_MAX: usize = 50;

impl Node {
    pub(super) fn handle_query(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        sender_read_only: bool,
        q: Query,
    ) {
        // BEP 43: a read-only node answers no query.
        if self.config.read_only {
            return;
        }
        // Before anything else is done for it, the table included.
        if !self.admit(now, from) {
            return;
        }
        // BEP 43: a read-only sender is not added to our table.
        if !sender_read_only {
            self.heard_from(
                now,
                NodeInfo {
                    id: q.sender_id,
                    addr: from,
                },
                Heard::Query,
            );
        }
        self.stats.queries_answered += 1;
        let mut r = Response {
            sender_id: self.id,
            ..Response::default()
        };
        match q.method {
            Method::Ping => {}
            Method::FindNode { target, want } => self.add_nodes(now, &mut r, &target, from, want),
            Method::GetPeers { info_hash, want } => {
                r.token = Some(self.tokens.issue(&from.ip(), &info_hash).to_vec());
                r.peers = self.storage.peers(&info_hash, PEERS_PER_REPLY_MAX);
                self.add_nodes(now, &mut r, &info_hash, from, want);
            }
            Method::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
            } => {
                if !self.tokens.check(&token, &from.ip(), &info_hash) {
                    return self.send_error(now, from, tid, error_code::PROTOCOL, "bad token");
                }
                let port = if implied_port { from.port() } else { port };
                if port == 0 {
                    return self.send_error(now, from, tid, error_code::PROTOCOL, "bad port");
                }
                let peer = SocketAddr::new(from.ip(), port);
                if !self.storage.add_peer(info_hash, peer, now + PEER_LIFETIME) {
                    return self.send_error(now, from, tid, error_code::SERVER, "peer store full");
                }
            }
            Method::Get { target, seq } => {
                r.token = Some(self.tokens.issue(&from.ip(), &target).to_vec());
                if let Some(item) = self.storage.item(&target) {
                    match &item.value {
                        ItemValue::Immutable(v) => r.value = Some(v.clone()),
                        ItemValue::Mutable(m) => {
                            r.seq = Some(m.seq);
                            if seq.is_none_or(|s| m.seq > s) {
                                r.value = Some(m.value.clone());
                                r.public_key = Some(m.public_key);
                                r.signature = Some(m.signature);
                            }
                        }
                    }
                }
                self.add_nodes(now, &mut r, &target, from, None);
            }
            Method::Put(args) => {
                if let Err((code, text)) = self.handle_put(now, from, args) {
                    return self.send_error(now, from, tid, code, text);
                }
            }
            Method::Unknown { .. } => {
                return self.send_error(
                    now,
                    from,
                    tid,
                    error_code::METHOD_UNKNOWN,
                    "method unknown",
                );
            }
        }
        self.answer(now, from, tid, Body::Response(r));
    }

    /// Answers a query from `to`: a response (with BEP 42's `ip`, cut to fit in
    /// [`REPLY_BYTES_MAX`]) or an error, paid from the upload budget.
    fn answer(&mut self, now: Instant, to: SocketAddr, tid: &[u8], body: Body) {
        let requester_ip = matches!(body, Body::Response(_)).then_some(to);
        let shape = body.shape();
        let mut data = self.encode(tid, requester_ip, false, &body);
        if data.len() > REPLY_BYTES_MAX {
            if let Body::Response(mut r) = body {
                let len = |r: &crate::message::Response| {
                    let body = Body::Response(r.clone());
                    self.encode(tid, requester_ip, false, &body).len()
                };
                if super::guard::trim_reply(&mut r, len) {
                    self.stats.replies_trimmed += 1;
                }
                data = self.encode(tid, requester_ip, false, &Body::Response(r));
            }
        }
        // Our largest reply, a mutable item of BEP 44's 1,000 bytes with its key, signature and
        // token and no contacts, is far below the cap whatever `t` the asker sent.
        debug_assert!(
            data.len() <= REPLY_BYTES_MAX,
            "reply of {} bytes",
            data.len()
        );
        self.push_transmit(now, Transmit { to, data, shape }, Cost::Budgeted);
    }

    pub(super) fn send_error(
        &mut self,
        now: Instant,
        to: SocketAddr,
        tid: &[u8],
        code: i64,
        message: &str,
    ) {
        self.stats.errors_sent += 1;
        let body = Body::Error(crate::message::ErrorBody {
            code,
            message: message.to_string(),
        });
        self.answer(now, to, tid, body);
    }

    /// Fills `nodes` / `nodes6` with our closest contacts to `target`: the requester's family
    /// unless BEP 32 `want` asks otherwise.
    fn add_nodes(
        &self,
        now: Instant,
        r: &mut Response,
        target: &Id,
        from: SocketAddr,
        want: Option<Want>,
    ) {
        let want = want.unwrap_or(Want {
            v4: from.is_ipv4(),
            v6: from.is_ipv6(),
        });
        let k = self.config.k;
        r.nodes_keys = want;
        // The requester is never told about itself. A contact known only from its own query
        // is passed on while it keeps querying (`Contact::listed`): that is how a newcomer
        // becomes known (the askers who query it prove its address for themselves). One that
        // answered us is passed on until it has been silent for a few good windows
        // (`RoutingTable::named`).
        if want.v4 {
            r.nodes = self.table.closest_where(target, k, |c| {
                let a = c.addr();
                a.is_ipv4() && a != from && self.table.named(c, now)
            });
        }
        if want.v6 {
            r.nodes6 = self.table.closest_where(target, k, |c| {
                let a = c.addr();
                a.is_ipv6() && a != from && self.table.named(c, now)
            });
        }
    }

    /// A BEP 44 put, checked rule by rule; an error is (KRPC code, message).
    fn handle_put(
        &mut self,
        now: Instant,
        from: SocketAddr,
        args: PutArgs,
    ) -> Result<(), (i64, &'static str)> {
        let salt: &[u8] = args.mutable.as_ref().map_or(&[], |m| &m.salt);
        check_sizes(&args.value, salt).map_err(|e| (e.code(), "item refused"))?;
        let expires = now + ITEM_LIFETIME;
        let target = match &args.mutable {
            None => immutable_target(&args.value),
            Some(m) => mutable_target(&m.public_key, &m.salt),
        };
        // The optional `target` (which the `mainline` crate sends) must name the item.
        if args.target.is_some_and(|t| t != target) {
            return Err((error_code::PROTOCOL, "target does not match the item"));
        }
        let value = match args.mutable {
            None => ItemValue::Immutable(args.value),
            Some(m) => {
                let cas = m.cas;
                let item = MutableItem {
                    public_key: m.public_key,
                    salt: m.salt,
                    seq: m.seq,
                    value: args.value,
                    signature: m.signature,
                };
                // The token is checked before the (costlier) signature.
                if !self.tokens.check(&args.token, &from.ip(), &target) {
                    return Err((error_code::PROTOCOL, "bad token"));
                }
                // The stored item's seq, whether it holds the same value, and whether it is
                // this very item (a republish, a replay): that one verified when it was
                // stored, so only its signature check is skipped, not the rules below.
                let old = match self.storage.item(&target).map(|s| &s.value) {
                    Some(ItemValue::Mutable(old)) => {
                        Some((old.seq, old.value == item.value, *old == item))
                    }
                    _ => None,
                };
                if !old.is_some_and(|(_, _, same_item)| same_item) {
                    item.verify().map_err(|e| (e.code(), "invalid item"))?;
                }
                if let Some((old_seq, same_value, _)) = old {
                    if cas.is_some_and(|c| c != old_seq) {
                        return Err((error_code::CAS_MISMATCH, "cas mismatch"));
                    }
                    if item.seq < old_seq {
                        return Err((error_code::SEQ_TOO_LOW, "sequence number too low"));
                    }
                    if item.seq == old_seq {
                        if same_value {
                            self.storage.touch_item(&target, expires);
                            return Ok(());
                        }
                        return Err((error_code::SEQ_TOO_LOW, "sequence number not newer"));
                    }
                }
                ItemValue::Mutable(item)
            }
        };
        if matches!(value, ItemValue::Immutable(_)) {
            if !self.tokens.check(&args.token, &from.ip(), &target) {
                return Err((error_code::PROTOCOL, "bad token"));
            }
            if self.storage.item(&target).is_some() {
                self.storage.touch_item(&target, expires);
                return Ok(());
            }
        }
        self.storage
            .put_item(StoredItem {
                target,
                value,
                expires,
                source: from.ip(),
            })
            .map_err(|e| match e {
                StoreError::Full => (error_code::SERVER, "store full"),
                StoreError::SourceLimit => (error_code::GENERIC, "per-source limit reached"),
            })
    }
}
