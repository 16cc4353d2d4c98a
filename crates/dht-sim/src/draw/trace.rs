//! Runs one lookup on a converged network and records what it did.
//!
//! The network is the overlays' own driver, [`MiniNet`] (fixed 10 ms one-way latency, no loss),
//! converged by the overlay's own shortcut (Pastry's proximity choices take the simulator's
//! network model). The driver's tap records every message with the message whose delivery
//! caused it; the lookup's messages are those that carry its query handle, and the replies
//! caused by them. Following causes back from the answer gives the path.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use dht_proto::lookup::TraceEvent;
use dht_proto::message::{Body, Message as Krpc, Method};
use dht_proto::Id;

use super::layout::{plane_layout, ring_point};
use super::{
    DrawError, DrawNode, Hop, Layout, Message, MsgKind, Trace, DRAW_NODES_MAX, DRAW_NODES_MIN,
};
use crate::overlays::can::{point, Can, CanConfig, CanMsg, SPACE};
use crate::overlays::chord::{Chord, ChordConfig, ChordMsg};
use crate::overlays::driver::{MiniNet, Sent};
use crate::overlays::kademlia::{idx_of, Kademlia, KademliaNode};
use crate::overlays::onehop::{OneHop, OneHopConfig, OneHopMsg};
use crate::overlays::overlay::{NodeIdx, Overlay, OverlayEvent, OverlayNode, QueryId};
use crate::overlays::pastry::{Pastry, PastryConfig, PastryMsg};
#[cfg(test)]
use crate::overlays::registry::OVERLAYS;
use crate::overlays::ring::ring_pos;
use crate::overlays::route::RouteMsg;
use crate::overlays::unstructured::{UnMsg, Unstructured, UnstructuredConfig};
use crate::rng::SimRng;
use crate::world::network::Network;

/// One-way latency of every message: with a fixed latency the order of arrivals is the order
/// of sending, so a flood's first arrivals form its breadth-first tree.
const LATENCY: Duration = Duration::from_millis(10);
/// Virtual time the run waits at most for the lookup's end (CAN's own timeout is 120 s).
const RUN_MAX: Duration = Duration::from_secs(150);
/// Virtual time between checks for the lookup's end.
const RUN_STEP: Duration = Duration::from_millis(100);
/// Messages recorded at most; a search of at most [`DRAW_NODES_MAX`] nodes sends far fewer.
const RECORDS_MAX: usize = 1 << 20;
/// Seed streams of the searcher and of the key, apart from the network's.
const SEARCHER_STREAM: u64 = 0x5345_4152_4348_4552;
const KEY_STREAM: u64 = 0x004b_4559;
/// Share of the nodes that hold the item flooding and random walk search for (Lv et al.'s 1%,
/// the simulator's default `--replicas`).
const REPLICA_FRACTION: f64 = 0.01;

/// What the tap keeps of a message.
#[derive(Debug, Clone)]
enum Class {
    Route {
        origin: NodeIdx,
        query: QueryId,
        final_hop: bool,
    },
    Ack,
    Done {
        query: QueryId,
    },
    Flood {
        origin: NodeIdx,
        query: QueryId,
    },
    Walk {
        origin: NodeIdx,
        query: QueryId,
    },
    Hit {
        query: QueryId,
    },
    Check {
        query: QueryId,
    },
    Go,
    Krpc(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Rec {
    id: u64,
    from: NodeIdx,
    to: NodeIdx,
    cause: Option<u64>,
    class: Class,
}

/// The lookup's own report.
#[derive(Debug, Clone, Default)]
struct Done {
    ok: bool,
    found: Vec<NodeIdx>,
    hops: u32,
    messages: u32,
}

fn route_class(m: &RouteMsg) -> Option<Class> {
    Some(match m {
        RouteMsg::Route(r) => Class::Route {
            origin: r.origin,
            query: r.query,
            final_hop: r.final_hop,
        },
        RouteMsg::Ack { .. } => Class::Ack,
        RouteMsg::Done(d) => Class::Done { query: d.query },
        RouteMsg::Replica { .. } => return None,
    })
}

fn un_class(m: &UnMsg) -> Option<Class> {
    Some(match m {
        UnMsg::Flood { origin, query, .. } => Class::Flood {
            origin: *origin,
            query: *query,
        },
        UnMsg::Walk { origin, query, .. } => Class::Walk {
            origin: *origin,
            query: *query,
        },
        UnMsg::Hit { query, .. } => Class::Hit { query: *query },
        UnMsg::Check { query, .. } => Class::Check { query: *query },
        UnMsg::Go { .. } => Class::Go,
        _ => return None,
    })
}

/// The searcher and the key of `seed`.
fn searcher_and_key(n: u32, seed: u64, key: Option<Id>) -> (NodeIdx, Id) {
    let searcher = SimRng::new(seed ^ SEARCHER_STREAM).below(n as u64) as NodeIdx;
    let key = key.unwrap_or_else(|| Id::random(&mut SimRng::new(seed ^ KEY_STREAM)));
    (searcher, key)
}

/// Builds `n` nodes of `overlay`, converges them, lets `prepare` set up the network, starts the
/// lookup with `start` at `searcher`, and runs until it ends; returns the network, what the
/// tap recorded and the lookup's report.
fn run<O: Overlay>(
    overlay: O,
    n: u32,
    seed: u64,
    searcher: NodeIdx,
    classify: fn(&<O::Node as OverlayNode>::Msg) -> Option<Class>,
    prepare: impl FnOnce(&mut MiniNet<O>),
    start: impl FnOnce(&mut O::Node) -> QueryId,
) -> Result<(MiniNet<O>, Vec<Rec>, QueryId, Done), DrawError>
where
    <O::Node as OverlayNode>::Msg: 'static,
{
    let name = overlay.name();
    let mut net = MiniNet::new(overlay, n, seed, LATENCY);
    let mut model = Network::new(seed, 0.0, None);
    model.ensure(n.saturating_sub(1));
    net.converge(&|a, b| model.base_delay(a, b));
    prepare(&mut net);
    let recs = Rc::new(RefCell::new(Vec::new()));
    let sink = recs.clone();
    net.tap = Some(Box::new(move |s: &Sent<'_, _>| {
        let mut v = sink.borrow_mut();
        if v.len() < RECORDS_MAX {
            if let Some(class) = classify(s.msg) {
                v.push(Rec {
                    id: s.id,
                    from: s.from,
                    to: s.to,
                    cause: s.cause,
                    class,
                });
            }
        }
    }));
    let query = net
        .with(searcher, start)
        .ok_or(DrawError::Unfinished(name, 0))?;
    let mut waited = Duration::ZERO;
    let done = loop {
        let found = net.finished.iter().find_map(|f| match &f.event {
            OverlayEvent::LookupDone {
                query: q,
                ok,
                found,
                hops,
                messages,
                ..
            } if f.node == searcher && *q == query => Some(Done {
                ok: *ok,
                found: found.clone(),
                hops: *hops,
                messages: *messages,
            }),
            _ => None,
        });
        if let Some(d) = found {
            break d;
        }
        if waited >= RUN_MAX {
            return Err(DrawError::Unfinished(name, RUN_MAX.as_secs()));
        }
        net.run_for(RUN_STEP);
        waited += RUN_STEP;
    };
    net.tap = None;
    let recs = recs.borrow().clone();
    Ok((net, recs, query, done))
}

/// Traces one lookup of `overlay` in a converged network of `n` nodes built from `seed`: the
/// searcher and (unless `key` is given) the key come from the seed too, so every overlay of one
/// seed searches the same key from the same node index.
pub fn trace_search(overlay: &str, n: u32, seed: u64, key: Option<Id>) -> Result<Trace, DrawError> {
    if !(DRAW_NODES_MIN..=DRAW_NODES_MAX).contains(&n) {
        return Err(DrawError::Nodes(n));
    }
    let (searcher, key) = searcher_and_key(n, seed, key);
    match overlay {
        "kademlia" => kademlia(n, seed, searcher, key),
        "chord" => {
            let (net, recs, q, done) = run(
                Chord::new(ChordConfig::default()),
                n,
                seed,
                searcher,
                |m| match m {
                    ChordMsg::Route(r) => route_class(r),
                    _ => None,
                },
                |_| {},
                |node| node.lookup(net_now(), key),
            )?;
            let owner = ring_owner(&net, &key, |pos, k| pos.wrapping_sub(k));
            Ok(recursive(
                "chord",
                ring_nodes(&net),
                &recs,
                q,
                searcher,
                key,
                seed,
                vec![owner],
                done,
                "recursive, closest preceding finger; the last forward to the successor is not a hop".into(),
            ))
        }
        "pastry" => {
            let (net, recs, q, done) = run(
                Pastry::new(PastryConfig::default()),
                n,
                seed,
                searcher,
                |m| match m {
                    PastryMsg::Route(r) => route_class(r),
                    _ => None,
                },
                |_| {},
                |node| node.lookup(net_now(), key),
            )?;
            let owner = ring_owner(&net, &key, |pos, k| {
                let d = pos.wrapping_sub(k);
                d.min(d.wrapping_neg())
            });
            Ok(recursive(
                "pastry",
                ring_nodes(&net),
                &recs,
                q,
                searcher,
                key,
                seed,
                vec![owner],
                done,
                "recursive, prefix routing b = 4, leaf set 16".into(),
            ))
        }
        "onehop" => {
            let ov = OneHop::new(OneHopConfig::default());
            let dir = ov.clone();
            let (net, recs, q, done) = run(
                ov,
                n,
                seed,
                searcher,
                |m| match m {
                    OneHopMsg::Route(r) => route_class(r),
                    _ => None,
                },
                |_| {},
                |node| node.lookup(net_now(), key),
            )?;
            let owner = dir.owner_among(&key, |_| true).unwrap_or(searcher);
            let tokens = OneHopConfig::default().tokens;
            let mut t = recursive(
                "onehop",
                ring_nodes(&net),
                &recs,
                q,
                searcher,
                key,
                seed,
                vec![owner],
                done,
                format!(
                    "every node knows every node ({tokens} tokens each): straight to the owner"
                ),
            );
            // The owner's token that covers the key: the first of its tokens at or after the
            // key (the directory's own rule, `TokenDirectory::token`).
            let k = ring_pos(&key);
            let owner_id = net.node(owner).map(|n| n.id()).unwrap_or(key);
            t.owner_token_at = (0..tokens)
                .map(|j| ring_pos(&Id::sha1_parts(&[&owner_id.0, &j.to_be_bytes()])))
                .min_by_key(|&pos| pos.wrapping_sub(k))
                .map(|pos| ring_point(&crate::overlays::ring::id_at(pos)));
            Ok(t)
        }
        "can" => {
            let (net, recs, q, done) = run(
                Can::new(CanConfig::default()),
                n,
                seed,
                searcher,
                |m| match m {
                    CanMsg::Route(r) => route_class(r),
                    _ => None,
                },
                |_| {},
                |node| node.lookup(net_now(), key),
            )?;
            let mut nodes = Vec::new();
            let mut owner = searcher;
            for (i, node) in net.nodes.iter().enumerate() {
                let Some(node) = node else { continue };
                let zones: Vec<[f64; 4]> = node
                    .zones()
                    .iter()
                    .map(|z| {
                        let f = |v: u64| v as f64 / SPACE as f64;
                        [f(z.lo[0]), f(z.lo[1]), f(z.hi[0]), f(z.hi[1])]
                    })
                    .collect();
                let (x, y) = zones
                    .first()
                    .map_or((0.5, 0.5), |z| ((z[0] + z[2]) / 2.0, (z[1] + z[3]) / 2.0));
                if node.owns_key(&key) {
                    owner = i as NodeIdx;
                }
                nodes.push(DrawNode {
                    idx: i as NodeIdx,
                    id: node.id(),
                    x,
                    y,
                    zones,
                });
            }
            let p = point(&key, 2);
            let mut t = recursive(
                "can",
                nodes,
                &recs,
                q,
                searcher,
                key,
                seed,
                vec![owner],
                done,
                "recursive, greedy on the 2-torus (d = 2)".into(),
            );
            t.layout = Layout::Torus;
            t.key_at = Some((p[0] as f64 / SPACE as f64, p[1] as f64 / SPACE as f64));
            Ok(t)
        }
        "flooding" | "randomwalk" => search(overlay, n, seed, searcher, key),
        other => Err(DrawError::UnknownOverlay(other.to_string())),
    }
}

/// Commands start at the driver's time, which is zero until the run starts.
fn net_now() -> dht_proto::Instant {
    dht_proto::Instant::ZERO
}

/// Nodes on the ring, by ID angle.
fn ring_nodes<O: Overlay>(net: &MiniNet<O>) -> Vec<DrawNode> {
    net.nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let id = n.as_ref()?.id();
            let (x, y) = ring_point(&id);
            Some(DrawNode {
                idx: i as NodeIdx,
                id,
                x,
                y,
                zones: Vec::new(),
            })
        })
        .collect()
}

/// The node whose ring distance `dist(pos, key)` to the key is smallest.
fn ring_owner<O: Overlay>(
    net: &MiniNet<O>,
    key: &Id,
    dist: impl Fn(u128, u128) -> u128,
) -> NodeIdx {
    let k = ring_pos(key);
    net.nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| Some((dist(ring_pos(&n.as_ref()?.id()), k), i as NodeIdx)))
        .min()
        .map_or(0, |(_, i)| i)
}

/// A recursive lookup: the chain of forwards of the searcher's query, their acknowledgements,
/// and the owner's answer.
#[allow(clippy::too_many_arguments)]
fn recursive(
    overlay: &'static str,
    nodes: Vec<DrawNode>,
    recs: &[Rec],
    query: QueryId,
    searcher: NodeIdx,
    key: Id,
    seed: u64,
    responsible: Vec<NodeIdx>,
    done: Done,
    settings: String,
) -> Trace {
    let mut forwards = BTreeSet::new();
    let mut hops = Vec::new();
    let mut messages = Vec::new();
    let mut answer = None;
    let mut step = 0;
    for r in recs {
        match r.class {
            Class::Route {
                origin,
                query: q,
                final_hop,
            } if origin == searcher && q == query => {
                forwards.insert(r.id);
                // Chord leaves the last forward (to the key's successor) out of its hop count.
                let counted = !(final_hop && overlay == "chord");
                if counted {
                    step += 1;
                }
                hops.push(Hop {
                    step: if counted { step } else { 0 },
                    from: r.from,
                    to: r.to,
                });
                messages.push(msg(r, MsgKind::Request, true));
            }
            Class::Ack if r.cause.is_some_and(|c| forwards.contains(&c)) => {
                messages.push(msg(r, MsgKind::Reply, false));
            }
            Class::Done { query: q } if q == query && r.to == searcher => {
                answer = Some((r.from, r.to));
                messages.push(msg(r, MsgKind::Answer, true));
            }
            _ => {}
        }
    }
    Trace {
        overlay,
        layout: Layout::Ring,
        seed,
        key,
        key_at: Some(ring_point(&key)),
        owner_token_at: None,
        nodes,
        edges: Vec::new(),
        searcher,
        responsible,
        found: done.found.first().copied(),
        hops,
        answer,
        messages,
        revisits: Vec::new(),
        reported_hops: done.hops,
        reported_messages: done.messages,
        ok: done.ok,
        settings,
    }
}

fn msg(r: &Rec, kind: MsgKind, useful: bool) -> Message {
    Message {
        from: r.from,
        to: r.to,
        kind,
        useful,
    }
}

/// Kademlia: `dht-proto`'s own traced lookup gives each request's round; the responses the tap
/// saw say who named whom. The numbered path follows the referrals to the node that set the
/// hop count (the one of the k closest answers asked in the latest round).
fn kademlia(n: u32, seed: u64, searcher: NodeIdx, key: Id) -> Result<Trace, DrawError> {
    let ov = Kademlia::new(seed);
    let traces = ov.clone();
    let classify: fn(&Vec<u8>) -> Option<Class> = |m| Some(Class::Krpc(m.clone()));
    let (net, recs, query, done) = run(
        ov,
        n,
        seed,
        searcher,
        classify,
        |_| {},
        |node: &mut KademliaNode| node.lookup_traced(net_now(), key),
    )?;
    let searcher_id = net.node(searcher).map_or(key, |n| n.id());
    let steps = traces.take_trace(searcher_id, query).unwrap_or_default();
    let mut round: BTreeMap<NodeIdx, u32> = BTreeMap::new();
    for s in &steps {
        if let TraceEvent::Asked { round: r, node } = s {
            if let Some(i) = idx_of(&node.addr) {
                round.entry(i).or_insert(*r);
            }
        }
    }
    // The searcher's find_node requests for the key, and the responses they caused.
    let mut asked_at: BTreeMap<NodeIdx, u64> = BTreeMap::new();
    let mut requests = BTreeSet::new();
    let mut named: Vec<(u64, NodeIdx, Vec<NodeIdx>)> = Vec::new();
    let mut messages = Vec::new();
    let mut kinds = Vec::new();
    for r in &recs {
        let Class::Krpc(bytes) = &r.class else {
            continue;
        };
        let Ok(m) = Krpc::decode(bytes) else { continue };
        match m.body {
            Body::Query(q) if r.from == searcher => {
                if matches!(q.method, Method::FindNode { target, .. } if target == key) {
                    requests.insert(r.id);
                    asked_at.entry(r.to).or_insert(r.id);
                    kinds.push((r.clone(), MsgKind::Request));
                }
            }
            Body::Response(resp)
                if r.to == searcher && r.cause.is_some_and(|c| requests.contains(&c)) =>
            {
                let ids: Vec<NodeIdx> = resp.nodes.iter().filter_map(|n| idx_of(&n.addr)).collect();
                named.push((r.id, r.from, ids));
                kinds.push((r.clone(), MsgKind::Reply));
            }
            _ => {}
        }
    }
    // Who named each asked node first, among the nodes of the round before.
    let introducer = |y: NodeIdx| -> Option<NodeIdx> {
        let r = *round.get(&y)?;
        if r <= 1 {
            return None;
        }
        let before = *asked_at.get(&y)?;
        named
            .iter()
            .filter(|(id, from, ids)| {
                *id < before && round.get(from) == Some(&(r - 1)) && ids.contains(&y)
            })
            .map(|(_, from, _)| *from)
            .next()
    };
    // The end of the path: of the nodes the lookup returned, the one asked latest (its round
    // is the hop count), the closest to the key among equals.
    let end = done
        .found
        .iter()
        .copied()
        .filter(|i| round.contains_key(i))
        .max_by_key(|i| round[i]);
    let mut chain = Vec::new();
    let mut at = end;
    while let Some(y) = at {
        if chain.len() > steps.len() + 1 || chain.contains(&y) {
            break;
        }
        chain.push(y);
        at = introducer(y);
    }
    chain.reverse();
    let on_path: BTreeSet<NodeIdx> = chain.iter().copied().collect();
    let mut hops = Vec::new();
    let mut prev = searcher;
    for (i, &y) in chain.iter().enumerate() {
        hops.push(Hop {
            step: i as u32 + 1,
            from: prev,
            to: y,
        });
        prev = y;
    }
    for (r, kind) in kinds {
        let other = if kind == MsgKind::Request {
            r.to
        } else {
            r.from
        };
        messages.push(msg(&r, kind, on_path.contains(&other)));
    }
    let mut ids: Vec<(Id, NodeIdx)> = net
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| Some((n.as_ref()?.id(), i as NodeIdx)))
        .collect();
    ids.sort_by_key(|(id, _)| id.distance(&key));
    let k = traces.config.k;
    let responsible = ids.iter().take(k).map(|(_, i)| *i).collect();
    let mut nodes = ring_nodes(&net);
    nodes.sort_by_key(|d| d.idx);
    Ok(Trace {
        overlay: "kademlia",
        layout: Layout::Ring,
        seed,
        key,
        key_at: Some(ring_point(&key)),
        owner_token_at: None,
        nodes,
        edges: Vec::new(),
        searcher,
        responsible,
        found: done.found.first().copied(),
        hops,
        answer: None,
        messages,
        revisits: Vec::new(),
        reported_hops: done.hops,
        reported_messages: done.messages,
        ok: done.ok,
        settings: format!(
            "iterative, XOR metric, k = {k}, \u{3b1} = {}: the searcher sends every request itself",
            traces.config.alpha
        ),
    })
}

/// Flooding and random walk: the item is planted at 1% of the nodes (at least one, never the
/// searcher); the path is the chain of messages that brought the first hit.
fn search(
    overlay: &str,
    n: u32,
    seed: u64,
    searcher: NodeIdx,
    key: Id,
) -> Result<Trace, DrawError> {
    let flooding = overlay == "flooding";
    let config = if flooding {
        UnstructuredConfig::flooding()
    } else {
        UnstructuredConfig::random_walk()
    };
    let copies = ((n as f64 * REPLICA_FRACTION).round() as u32).clamp(1, n - 1);
    let ov = Unstructured::new(UnstructuredConfig {
        replicas: copies,
        ..config
    });
    let mut holders = Vec::new();
    let mut rng = SimRng::new(seed ^ KEY_STREAM ^ 1);
    while (holders.len() as u32) < copies {
        let i = rng.below(n as u64) as NodeIdx;
        if i != searcher && !holders.contains(&i) {
            holders.push(i);
        }
    }
    let plant = holders.clone();
    let (net, recs, query, done) = run(
        ov,
        n,
        seed,
        searcher,
        un_class,
        |net| {
            for &h in &plant {
                let ov = net.overlay.clone();
                net.with(h, |node| ov.plant(node, &key));
            }
        },
        |node| node.lookup(net_now(), key),
    )?;
    // The search's own messages: its floods or walks, hits and checks by query, and the
    // answers to its checks by cause.
    let mut ours = BTreeMap::new();
    for r in &recs {
        let mine = match r.class {
            Class::Flood { origin, query: q } | Class::Walk { origin, query: q } => {
                origin == searcher && q == query
            }
            Class::Hit { query: q } | Class::Check { query: q } => r.to == searcher && q == query,
            Class::Go => r.cause.is_some_and(|c| ours.contains_key(&c)),
            _ => false,
        };
        if mine {
            ours.insert(r.id, r.clone());
        }
    }
    // The first hit, then its chain of causes back to the searcher: through a walker's check
    // (walk -> check -> go -> walk) only the walks are hops.
    let first_hit = ours
        .values()
        .find(|r| matches!(r.class, Class::Hit { .. }))
        .cloned();
    let mut path = Vec::new();
    let mut at = first_hit.as_ref().and_then(|h| h.cause);
    while let Some(id) = at {
        let Some(r) = ours.get(&id) else { break };
        if path.len() > ours.len() {
            break;
        }
        if matches!(r.class, Class::Flood { .. } | Class::Walk { .. }) {
            path.push(r.id);
        }
        at = r.cause;
    }
    path.reverse();
    let on_path: BTreeSet<u64> = path.iter().copied().collect();
    let hops = path
        .iter()
        .enumerate()
        .map(|(i, id)| Hop {
            step: i as u32 + 1,
            from: ours[id].from,
            to: ours[id].to,
        })
        .collect();
    let mut visits: BTreeMap<NodeIdx, u32> = BTreeMap::new();
    visits.insert(searcher, 1);
    let mut messages = Vec::new();
    for r in ours.values() {
        let (kind, useful) = match r.class {
            Class::Flood { .. } | Class::Walk { .. } => {
                *visits.entry(r.to).or_insert(0) += 1;
                (MsgKind::Request, on_path.contains(&r.id))
            }
            Class::Hit { .. } => (
                MsgKind::Answer,
                first_hit.as_ref().is_some_and(|h| h.id == r.id),
            ),
            Class::Check { .. } => (MsgKind::Check, false),
            _ => (MsgKind::Reply, false),
        };
        messages.push(msg(r, kind, useful));
    }
    let revisits = visits.into_iter().filter(|&(_, v)| v > 1).collect();
    let mut edges = BTreeSet::new();
    let mut adjacency = Vec::new();
    for (i, node) in net.nodes.iter().enumerate() {
        let nbrs: Vec<NodeIdx> = node
            .as_ref()
            .map(|n| n.neighbours().to_vec())
            .unwrap_or_default();
        for &j in &nbrs {
            edges.insert((i.min(j as usize) as NodeIdx, i.max(j as usize) as NodeIdx));
        }
        adjacency.push(nbrs);
    }
    let edges: Vec<(NodeIdx, NodeIdx)> = edges.into_iter().collect();
    let places = plane_layout(n as usize, &edges, seed);
    let nodes = net
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, node)| {
            Some(DrawNode {
                idx: i as NodeIdx,
                id: node.as_ref()?.id(),
                x: places[i].0,
                y: places[i].1,
                zones: Vec::new(),
            })
        })
        .collect();
    let settings = if flooding {
        format!(
            "TTL {}, random graph of degree {}, item at {copies} node(s)",
            config.ttl, config.degree
        )
    } else {
        format!(
            "{} walkers checking every {} steps, degree {}, item at {copies} node(s)",
            config.walkers, config.check_every, config.degree
        )
    };
    Ok(Trace {
        overlay: if flooding { "flooding" } else { "randomwalk" },
        layout: Layout::Plane,
        seed,
        key,
        key_at: None,
        owner_token_at: None,
        nodes,
        edges,
        searcher,
        responsible: holders,
        found: done.found.first().copied(),
        hops,
        answer: first_hit.map(|h| (h.from, h.to)),
        messages,
        revisits,
        reported_hops: done.hops,
        reported_messages: done.messages,
        ok: done.ok,
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_overlay_draws_as_many_hops_as_it_reports() {
        for &o in OVERLAYS {
            for seed in [1, 2, 3] {
                let t = trace_search(o, 64, seed, None).unwrap();
                assert!(t.ok, "{o} seed {seed}: lookup failed");
                assert_eq!(
                    t.numbered_hops(),
                    t.reported_hops,
                    "{o} seed {seed}: hops drawn {:?}",
                    t.hops
                );
                assert_eq!(
                    t.messages.len() as u32,
                    t.reported_messages,
                    "{o} seed {seed}: messages recorded"
                );
                assert_eq!(t.nodes.len(), 64);
                if let Some(last) = t.hops.last() {
                    assert_eq!(
                        t.hops[0].from, t.searcher,
                        "{o}: the path starts at the searcher"
                    );
                    if o != "kademlia" {
                        assert_eq!(
                            Some(last.to),
                            t.found,
                            "{o}: the path ends where the search did"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn kademlia_traced_lookup_reports_what_an_untraced_one_does() {
        // Tracing records steps and must not change the lookup: the same network, searcher and
        // key give the same hops, messages and answer with `find_node` as with
        // `find_node_traced`.
        for seed in [1, 2, 3] {
            let (searcher, key) = searcher_and_key(64, seed, None);
            let (_, recs, _, plain) = run(
                Kademlia::new(seed),
                64,
                seed,
                searcher,
                |_| None,
                |_| {},
                |n: &mut KademliaNode| n.lookup(net_now(), key),
            )
            .unwrap();
            assert!(recs.is_empty(), "a classifier of None records nothing");
            let t = trace_search("kademlia", 64, seed, None).unwrap();
            assert_eq!(
                (t.reported_hops, t.reported_messages, t.found),
                (plain.hops, plain.messages, plain.found.first().copied()),
                "seed {seed}"
            );
            assert!(t.reported_hops >= 1 && !t.hops.is_empty());
        }
    }

    #[test]
    fn recursive_overlays_reach_the_owner_of_the_key() {
        for o in ["chord", "pastry", "can", "onehop"] {
            let t = trace_search(o, 100, 5, None).unwrap();
            assert_eq!(t.found, t.responsible.first().copied(), "{o}");
        }
    }

    #[test]
    fn the_same_seed_traces_the_same_search() {
        for &o in OVERLAYS {
            assert_eq!(
                trace_search(o, 50, 9, None).unwrap(),
                trace_search(o, 50, 9, None).unwrap(),
                "{o}"
            );
        }
    }

    #[test]
    fn unstructured_searches_revisit_nodes() {
        for o in ["flooding", "randomwalk"] {
            let t = trace_search(o, 64, 1, None).unwrap();
            assert!(!t.revisits.is_empty(), "{o}: no node reached twice");
            assert!(t.wasted_visits() > 0);
        }
    }

    #[test]
    fn bad_sizes_and_names_are_refused() {
        assert!(matches!(
            trace_search("chord", 1, 1, None),
            Err(DrawError::Nodes(1))
        ));
        assert!(matches!(
            trace_search("chord", DRAW_NODES_MAX + 1, 1, None),
            Err(DrawError::Nodes(_))
        ));
        assert!(matches!(
            trace_search("gnutella", 10, 1, None),
            Err(DrawError::UnknownOverlay(_))
        ));
    }
}
