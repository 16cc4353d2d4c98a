//! Adversaries: nodes that run `dht-proto`'s core like every other Kademlia node (they join,
//! keep tables, churn, answer pings), with a behaviour layer on top that lies.
//!
//! | kind | what the adversaries do |
//! | --- | --- |
//! | `drop` | answer `ping` and `find_node` honestly; drop every `get_peers`, `announce_peer`, `get` and `put` (a black hole for data) |
//! | `eclipse` | collude: asked for nodes near any target (`find_node`, `get_peers`, `get`), answer with the adversaries closest to it and nothing else, never a value; acknowledge `put` and `announce_peer` and keep nothing |
//! | `targeted` | like `eclipse`, with IDs chosen to share their first [`TARGET_PREFIX_BITS`] bits with one target key (an attacker who can choose IDs, BEP 42 aside), and a forged value for every `get` of that key |
//! | `forge` | answer `get` with a forged value (a stored item with its `seq` raised and its value changed under the old signature, or bytes that do not hash to the key) and `get_peers` with false peers; otherwise honest |
//!
//! Which nodes are adversaries follows from the seed and the node's index alone
//! ([`is_adversary`]), like everything else in a run. The engine starts the workload only from
//! honest nodes, and the checkers judge honest nodes' lookups against the true closest honest
//! nodes ([`crate::checks::checker::HonestXorClosest`]).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use dht_proto::bep44::MutableItem;
use dht_proto::message::{Body, Message, Method, NodeInfo, Query, Response};
use dht_proto::node::Node;
use dht_proto::store::ItemValue;
use dht_proto::{Id, Instant};

use crate::overlays::NodeIdx;
use crate::rng::{mix3, unit_f64};
use crate::world::live::LiveIndex;

/// A key (the type of [`AdversaryConfig::target`]), re-exported for the command line.
pub type Key = Id;

/// Bits a `targeted` adversary's ID shares with the target: enough that at any size this
/// simulator runs, the adversaries are the target's closest nodes.
pub const TARGET_PREFIX_BITS: usize = 64;

/// Contacts a lying answer names (Mainline's k).
pub const LIE_CONTACTS: usize = 8;

/// The stream label of the adversary draw ([`crate::rng::mix3`]).
const STREAM_ADVERSARY: u64 = 0xad7e;

/// The value forged answers carry (bencoded).
pub const FORGED_VALUE: &[u8] = b"6:forged";

/// What the adversaries do: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Black holes for data.
    Drop,
    /// Colluders that name only each other.
    Eclipse,
    /// Colluders placed around one key.
    Targeted,
    /// Forgers of values and peers.
    Forge,
}

impl Kind {
    /// Every kind, by its command-line name.
    pub const ALL: [(&'static str, Kind); 4] = [
        ("drop", Kind::Drop),
        ("eclipse", Kind::Eclipse),
        ("targeted", Kind::Targeted),
        ("forge", Kind::Forge),
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(n, _)| n)
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Result<Kind, String> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                format!("unknown adversary {s:?}: one of {}", names.join(", "))
            })
    }
}

/// The adversaries of a run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AdversaryConfig {
    /// What they do.
    pub kind: Kind,
    /// The fraction of the nodes that are adversaries (0.2 = 20%), among the first nodes and
    /// among every node that joins later.
    pub fraction: f64,
    /// The key a `targeted` attack surrounds.
    #[serde(serialize_with = "hex_id")]
    pub target: Option<Id>,
}

fn hex_id<S: serde::Serializer>(id: &Option<Id>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.serialize_some(&id.to_string()),
        None => s.serialize_none(),
    }
}

/// Whether node `idx` of a run with `seed` is an adversary.
pub fn is_adversary(seed: u64, idx: NodeIdx, fraction: f64) -> bool {
    fraction > 0.0 && unit_f64(mix3(seed, STREAM_ADVERSARY, idx as u64)) < fraction
}

/// A `targeted` adversary's ID: the target's first [`TARGET_PREFIX_BITS`] bits, then `random`'s.
pub fn targeted_id(target: &Id, random: &Id) -> Id {
    let mut id = *random;
    let whole = TARGET_PREFIX_BITS / 8;
    id.0[..whole].copy_from_slice(&target.0[..whole]);
    id
}

/// What the colluders know together: every live adversary, by ID.
#[derive(Debug, Default)]
pub struct Colluders {
    live: LiveIndex,
}

impl Colluders {
    /// Enters a live adversary.
    pub fn insert(&mut self, idx: NodeIdx, id: Id) {
        self.live.insert(idx, id);
    }

    /// Removes an adversary that left.
    pub fn remove(&mut self, idx: NodeIdx, id: Id) {
        if self.live.is_live(idx) {
            self.live.remove(idx, id);
        }
    }

    /// Live adversaries.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The `want` live adversaries closest to `target`, but `not`.
    fn closest(&self, target: &Id, want: usize, not: NodeIdx) -> Vec<(Id, NodeIdx)> {
        let mut v = self.live.xor_closest(target, want + 1);
        v.retain(|(_, i)| *i != not);
        v.truncate(want);
        v
    }
}

/// What the behaviour layer makes of a datagram sent to an adversary.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the node's honest core.
    Honest,
    /// Drop it without an answer.
    Silent,
    /// Answer with these bytes instead.
    Reply(Vec<u8>),
}

/// Counts of what the adversaries did, for the report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Mischief {
    /// Queries dropped without an answer.
    pub dropped: u64,
    /// Answers naming only colluders.
    pub lies: u64,
    /// Values and peer lists forged.
    pub forged: u64,
    /// Puts and announces acknowledged and thrown away.
    pub swallowed: u64,
}

/// The context of one adversary's decision.
pub struct Context<'a> {
    /// The adversaries' kind and target.
    pub config: &'a AdversaryConfig,
    /// The adversary's index.
    pub idx: NodeIdx,
    /// The adversary's honest core (its table and store are used to make lies plausible).
    pub node: &'a Node,
    /// All live adversaries.
    pub colluders: &'a Colluders,
    /// The virtual address of a node index.
    pub addr_of: &'a dyn Fn(NodeIdx) -> SocketAddr,
    /// The current time.
    pub now: Instant,
}

/// Decides what the adversary does with `datagram`. Replies to the adversary's own queries and
/// anything that does not decode go to the honest core, which copes with them as any node does.
pub fn behave(cx: &Context<'_>, datagram: &[u8], mischief: &mut Mischief) -> Verdict {
    let Ok(msg) = Message::decode(datagram) else {
        return Verdict::Honest;
    };
    let Body::Query(Query { method, .. }) = &msg.body else {
        return Verdict::Honest;
    };
    let id = cx.node.id();
    match cx.config.kind {
        Kind::Drop => match method {
            Method::GetPeers { .. }
            | Method::AnnouncePeer { .. }
            | Method::Get { .. }
            | Method::Put(_) => {
                mischief.dropped += 1;
                Verdict::Silent
            }
            _ => Verdict::Honest,
        },
        Kind::Eclipse | Kind::Targeted => {
            let target = match method {
                Method::FindNode { target, .. } | Method::Get { target, .. } => *target,
                Method::GetPeers { info_hash, .. } => *info_hash,
                Method::Put(_) | Method::AnnouncePeer { .. } => {
                    mischief.swallowed += 1;
                    return reply(&msg, response(id));
                }
                _ => return Verdict::Honest,
            };
            let mut r = response(id);
            r.nodes = cx
                .colluders
                .closest(&target, LIE_CONTACTS, cx.idx)
                .into_iter()
                .map(|(id, i)| NodeInfo {
                    id,
                    addr: (cx.addr_of)(i),
                })
                .collect();
            r.token = Some(TOKEN.to_vec());
            mischief.lies += 1;
            let targeted_get = cx.config.kind == Kind::Targeted
                && matches!(method, Method::Get { .. })
                && cx.config.target == Some(target);
            if targeted_get {
                forge_value(cx.node, &target, &mut r);
                mischief.forged += 1;
            }
            reply(&msg, r)
        }
        Kind::Forge => match method {
            Method::Get { target, .. } => {
                let mut r = honest_looking(cx, target);
                forge_value(cx.node, target, &mut r);
                mischief.forged += 1;
                reply(&msg, r)
            }
            Method::GetPeers { info_hash, .. } => {
                let mut r = honest_looking(cx, info_hash);
                r.peers = (1..=LIE_CONTACTS as u8)
                    .map(|i| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, i), 6881)))
                    .collect();
                mischief.forged += 1;
                reply(&msg, r)
            }
            _ => Verdict::Honest,
        },
    }
}

/// The token lying adversaries hand out: they accept any put anyway.
const TOKEN: &[u8] = b"lies";

fn response(id: Id) -> Response {
    Response {
        sender_id: id,
        ..Response::default()
    }
}

/// A reply as an honest node would give it, nodes and a token, with no value yet.
fn honest_looking(cx: &Context<'_>, target: &Id) -> Response {
    let mut r = response(cx.node.id());
    r.nodes = cx.node.routing_table().closest(target, LIE_CONTACTS);
    r.token = Some(TOKEN.to_vec());
    r
}

/// Puts a forged value for `target` into `r`: a stored mutable item with a higher `seq` and
/// another value under its old signature, or bytes that do not hash to the target.
fn forge_value(node: &Node, target: &Id, r: &mut Response) {
    match node.storage().item(target).map(|i| &i.value) {
        Some(ItemValue::Mutable(m)) => {
            let forged = MutableItem {
                seq: m.seq.saturating_add(1),
                value: FORGED_VALUE.to_vec(),
                ..m.clone()
            };
            r.value = Some(forged.value);
            r.public_key = Some(forged.public_key);
            r.signature = Some(forged.signature);
            r.seq = Some(forged.seq);
        }
        _ => r.value = Some(FORGED_VALUE.to_vec()),
    }
}

fn reply(query: &Message, body: Response) -> Verdict {
    Verdict::Reply(
        Message {
            transaction_id: query.transaction_id.clone(),
            version: Some(b"AD\x00\x01".to_vec()),
            requester_ip: None,
            read_only: false,
            body: Body::Response(body),
        }
        .encode(),
    )
}

/// What the overlay knows of its adversaries at the end of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Adversaries created (at the start and among the nodes that joined later).
    pub created: u64,
    /// What they did.
    pub mischief: Mischief,
    /// Values honest gets were sent that failed verification, and refused
    /// ([`dht_proto::lookup::LookupStats::forgeries`]).
    pub forgeries_refused: u64,
}

/// Honest nodes' lookups or gets of a `targeted` run's target key.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TargetCommands {
    /// Ended (and judged).
    pub done: u64,
    /// Judged correct: a lookup that returned the closest honest node, a get that returned
    /// the newest honest value.
    pub correct: u64,
    /// `correct` / `done`.
    pub success_rate: f64,
}

/// The report's `adversary` section.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AdversaryReport {
    /// What the adversaries did (`drop`, `eclipse`, `targeted`, `forge`).
    pub kind: Kind,
    /// Their fraction of the nodes.
    pub fraction: f64,
    /// The key a `targeted` attack surrounds (40 hex digits).
    pub target: Option<String>,
    /// Disjoint paths of the honest nodes' lookups (1 = the plain lookup).
    pub disjoint_paths: usize,
    /// Adversaries live at the end.
    pub live_at_end: u64,
    /// The overlay's count.
    #[serde(flatten)]
    pub tally: Tally,
    /// Values not put by an honest node that honest gets nevertheless returned (the report's
    /// `gets.corrupt`): a count, to be 0.
    pub forgeries_accepted: u64,
    /// A `targeted` run's lookups of the target key (half of its lookups).
    pub target_lookups: Option<TargetCommands>,
    /// A `targeted` run's gets of the target key, when it is the workload's first item (half
    /// of its gets once that item is stored).
    pub target_gets: Option<TargetCommands>,
}

/// Per-run adversary bookkeeping kept by the overlay.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The live adversaries.
    pub colluders: Colluders,
    /// The counts.
    pub tally: Tally,
}

#[cfg(test)]
mod tests {
    use super::*;
    use dht_proto::message::Want;
    use std::net::{IpAddr, Ipv4Addr};

    fn addr(i: NodeIdx) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8)), 6881)
    }

    fn query(method: Method) -> Vec<u8> {
        Message {
            transaction_id: b"tt".to_vec(),
            version: None,
            requester_ip: None,
            read_only: false,
            body: Body::Query(Query {
                sender_id: Id([1; 20]),
                method,
            }),
        }
        .encode()
    }

    fn answer(v: Verdict) -> Response {
        let Verdict::Reply(bytes) = v else {
            panic!("expected a reply, got {v:?}");
        };
        let m = Message::decode(&bytes).expect("the reply decodes");
        assert_eq!(m.transaction_id, b"tt");
        match m.body {
            Body::Response(r) => r,
            other => panic!("not a response: {other:?}"),
        }
    }

    /// The context of adversary 3.
    fn context<'a>(
        node: &'a Node,
        colluders: &'a Colluders,
        config: &'a AdversaryConfig,
    ) -> Context<'a> {
        Context {
            config,
            idx: 3,
            node,
            colluders,
            addr_of: &addr,
            now: Instant::ZERO,
        }
    }

    fn setup(kind: Kind) -> (Node, Colluders, AdversaryConfig) {
        let node = Node::new(
            dht_proto::node::Config::default(),
            Id([0x80; 20]),
            1,
            Instant::ZERO,
        );
        let mut colluders = Colluders::default();
        for i in 0..20u32 {
            colluders.insert(i, Id([i as u8 * 12; 20]));
        }
        let config = AdversaryConfig {
            kind,
            fraction: 0.2,
            target: Some(Id([0x33; 20])),
        };
        (node, colluders, config)
    }

    #[test]
    fn kinds_parse_by_name_and_unknown_ones_are_listed() {
        for (name, kind) in Kind::ALL {
            assert_eq!(Kind::parse(name), Ok(kind));
            assert_eq!(kind.name(), name);
        }
        let e = Kind::parse("sybil").unwrap_err();
        assert!(e.contains("drop, eclipse, targeted, forge"), "{e}");
    }

    #[test]
    fn the_fraction_of_adversaries_follows_the_setting() {
        let n = (0..10_000).filter(|&i| is_adversary(7, i, 0.2)).count();
        assert!((1_800..2_200).contains(&n), "{n}");
        assert_eq!((0..1000).filter(|&i| is_adversary(7, i, 0.0)).count(), 0);
        let target = Id([0xab; 20]);
        let id = targeted_id(&target, &Id([0x01; 20]));
        assert!(id.distance(&target).leading_zeros() >= TARGET_PREFIX_BITS);
    }

    #[test]
    fn drop_answers_pings_and_find_node_but_drops_data_requests() {
        let (node, colluders, config) = setup(Kind::Drop);
        let cx = context(&node, &colluders, &config);
        let mut m = Mischief::default();
        assert_eq!(behave(&cx, &query(Method::Ping), &mut m), Verdict::Honest);
        let find = Method::FindNode {
            target: Id([2; 20]),
            want: None,
        };
        assert_eq!(behave(&cx, &query(find), &mut m), Verdict::Honest);
        let get = Method::Get {
            target: Id([2; 20]),
            seq: None,
        };
        assert_eq!(behave(&cx, &query(get), &mut m), Verdict::Silent);
        assert_eq!(m.dropped, 1);
    }

    #[test]
    fn eclipse_names_only_the_colluders_closest_to_the_target_and_never_itself() {
        let (node, colluders, config) = setup(Kind::Eclipse);
        let cx = context(&node, &colluders, &config);
        let mut m = Mischief::default();
        let target = Id([37; 20]);
        let r = answer(behave(
            &cx,
            &query(Method::FindNode {
                target,
                want: Some(Want::default()),
            }),
            &mut m,
        ));
        let mut expected: Vec<Id> = (0..20u32)
            .filter(|&i| i != 3)
            .map(|i| Id([i as u8 * 12; 20]))
            .collect();
        expected.sort_by_key(|id| id.distance(&target));
        expected.truncate(LIE_CONTACTS);
        let named: Vec<Id> = r.nodes.iter().map(|n| n.id).collect();
        assert_eq!(named, expected);
        assert!(r.value.is_none() && r.token.is_some());
        // A put is acknowledged and kept nowhere.
        let put = Method::Put(dht_proto::message::PutArgs {
            token: b"lies".to_vec(),
            value: b"1:x".to_vec(),
            mutable: None,
            target: None,
        });
        let r = answer(behave(&cx, &query(put), &mut m));
        assert_eq!(r.sender_id, node.id());
        assert_eq!(node.storage().item_count(), 0);
        assert_eq!((m.lies, m.swallowed), (1, 1));
    }

    #[test]
    fn forged_values_fail_verification() {
        let (node, colluders, config) = setup(Kind::Forge);
        let cx = context(&node, &colluders, &config);
        let mut m = Mischief::default();
        let target = Id([9; 20]);
        let r = answer(behave(
            &cx,
            &query(Method::Get { target, seq: None }),
            &mut m,
        ));
        let v = r.value.expect("a forged value");
        assert_ne!(dht_proto::bep44::immutable_target(&v), target);
        assert_eq!(m.forged, 1);
    }
}
