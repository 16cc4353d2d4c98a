//! `GET /metrics`: the nodes' counters in Prometheus' text format, through prometheus-client.
//!
//! The counters live in the nodes (`NodeStats` in the protocol core, `RuntimeMetrics` in the
//! runtime), so each scrape reads a snapshot of every node and encodes it with a [`Collector`]
//! instead of keeping a second copy of every counter in a registry. Names are prefixed `dht_`;
//! when a server serves more than one node, every sample carries a `node` label with its index.
//! docs/http.md lists every metric.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use dht_node::metrics::{
    error_slot_label, CommandKind, CommandOutcome, Histogram, Method, TrafficCounts, ERROR_SLOTS,
};
use dht_node::{ContactState, Status};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::error::ApiError;
use super::AppState;

/// The content type of Prometheus' text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `/metrics` route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

/// One node's figures at the time of a scrape.
#[derive(Debug)]
struct NodeSample {
    /// Its index, when the server serves more than one node.
    index: Option<usize>,
    status: Status,
    /// Routing-table contacts by [`ContactState`] (good, questionable, bad, unverified).
    contacts: [u64; 4],
}

/// The samples of every node, encoded on one scrape.
#[derive(Debug)]
struct Snapshot {
    nodes: Vec<NodeSample>,
}

type Labels = Vec<(&'static str, String)>;

/// Samples of one metric family: label sets and values.
type Samples = Vec<(Labels, f64)>;

impl NodeSample {
    fn labels(&self, extra: &[(&'static str, &str)]) -> Labels {
        let mut l: Labels = Vec::with_capacity(extra.len() + 1);
        if let Some(i) = self.index {
            l.push(("node", i.to_string()));
        }
        l.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        l
    }
}

/// Writes one metric family: its descriptor, then one sample per `(labels, value)`.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    samples: &[(Labels, f64)],
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, unit, kind)?;
    for (labels, value) in samples {
        let mut e = m.encode_family(labels)?;
        match kind {
            MetricType::Counter => e.encode_counter::<NoLabelSet, _, u64>(value, None)?,
            _ => e.encode_gauge(value)?,
        }
    }
    Ok(())
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: &[(Labels, Histogram)],
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, unit, MetricType::Histogram)?;
    for (labels, h) in samples {
        m.encode_family(labels)?.encode_histogram::<NoLabelSet>(
            h.sum(),
            h.count(),
            &h.cumulative(),
            None,
        )?;
    }
    Ok(())
}

/// Samples of one direction's traffic: datagrams and bytes by kind (and method for queries).
fn traffic(n: &NodeSample, t: &TrafficCounts) -> (Samples, Samples) {
    let (mut datagrams, mut bytes) = (Vec::new(), Vec::new());
    for (i, m) in Method::ALL.iter().enumerate() {
        let l = n.labels(&[("kind", "query"), ("method", m.name())]);
        datagrams.push((l.clone(), t.queries[i] as f64));
        bytes.push((l, t.query_bytes[i] as f64));
    }
    let errors: u64 = t.errors.iter().sum();
    for (kind, count, size) in [
        ("response", t.responses, t.response_bytes),
        ("error", errors, t.error_bytes),
        ("malformed", t.malformed, t.malformed_bytes),
    ] {
        let l = n.labels(&[("kind", kind)]);
        datagrams.push((l.clone(), count as f64));
        bytes.push((l, size as f64));
    }
    (datagrams, bytes)
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let each = |f: &dyn Fn(&NodeSample) -> f64| -> Vec<(Labels, f64)> {
            self.nodes.iter().map(|n| (n.labels(&[]), f(n))).collect()
        };

        let mut info = e.encode_descriptor(
            "dht_node",
            "The node's ID and version.",
            None,
            MetricType::Info,
        )?;
        for n in &self.nodes {
            let mut l = n.labels(&[("node_id", &n.status.id.to_string())]);
            l.push(("version", env!("CARGO_PKG_VERSION").to_string()));
            l.push(("bind", n.status.local_addr.to_string()));
            info.encode_info(&l)?;
        }
        family(
            &mut e,
            "dht_uptime",
            "Time since the node started.",
            Some(&Unit::Seconds),
            Gauge,
            &each(&|n| n.status.uptime.as_secs_f64()),
        )?;

        // Traffic by kind and method.
        let (mut din, mut bin, mut dout, mut bout) = (vec![], vec![], vec![], vec![]);
        for n in &self.nodes {
            let (d, b) = traffic(n, &n.status.runtime.traffic.received);
            din.extend(d);
            bin.extend(b);
            let (d, b) = traffic(n, &n.status.runtime.traffic.sent);
            dout.extend(d);
            bout.extend(b);
        }
        family(
            &mut e,
            "dht_datagrams_received",
            "Datagrams received, by kind (query, response, error, malformed) and query method.",
            None,
            Counter,
            &din,
        )?;
        family(
            &mut e,
            "dht_received",
            "Bytes received, by kind and query method.",
            Some(&Unit::Bytes),
            Counter,
            &bin,
        )?;
        family(
            &mut e,
            "dht_datagrams_sent",
            "Datagrams handed to the socket, by kind and query method.",
            None,
            Counter,
            &dout,
        )?;
        family(
            &mut e,
            "dht_sent",
            "Bytes handed to the socket, by kind and query method.",
            Some(&Unit::Bytes),
            Counter,
            &bout,
        )?;

        // Errors by code.
        let codes = |sent: bool| -> Vec<(Labels, f64)> {
            let mut v = Vec::new();
            for n in &self.nodes {
                let t = &n.status.runtime.traffic;
                let c = if sent { &t.sent } else { &t.received };
                for slot in 0..ERROR_SLOTS {
                    v.push((
                        n.labels(&[("code", &error_slot_label(slot))]),
                        c.errors[slot] as f64,
                    ));
                }
            }
            v
        };
        family(
            &mut e,
            "dht_errors_sent",
            "KRPC errors sent, by code.",
            None,
            Counter,
            &codes(true),
        )?;
        family(
            &mut e,
            "dht_errors_received",
            "KRPC errors received, by code.",
            None,
            Counter,
            &codes(false),
        )?;

        // Drops by reason.
        let mut drops = Vec::new();
        for n in &self.nodes {
            let s = &n.status.stats;
            let r = &n.status.runtime;
            for (reason, v) in [
                ("malformed", s.malformed),
                ("rate_limited", s.rate_limited),
                ("source_blocked", s.blocked_dropped),
                ("upload_budget", s.upload_dropped),
                ("send_queue_full", s.queue_dropped),
                ("unexpected_response", s.unexpected_responses),
                ("requests_full", s.transactions_refused),
                ("upkeep_refused", s.upkeep_refused),
                ("send_failed", r.send_failed),
                ("commit_failed", r.send_withheld),
            ] {
                drops.push((n.labels(&[("reason", reason)]), v as f64));
            }
        }
        family(&mut e, "dht_dropped", "Datagrams dropped (or not sent), by reason: malformed input, a source over its rate limit or blocked, the upload budget, a full send queue, a response nobody waited for, requests not sent (too many in flight, or upkeep to an unproven address), the OS refusing a send, replies withheld after a failed disk commit.", None, Counter, &drops)?;
        family(
            &mut e,
            "dht_queries_answered",
            "Queries answered (with a response or an error).",
            None,
            Counter,
            &each(&|n| n.status.stats.queries_answered as f64),
        )?;
        family(
            &mut e,
            "dht_resends",
            "Requests sent a second time after no answer.",
            None,
            Counter,
            &each(&|n| n.status.stats.resends as f64),
        )?;
        family(
            &mut e,
            "dht_handoffs",
            "Stored items handed to a new close node.",
            None,
            Counter,
            &each(&|n| n.status.stats.handoffs as f64),
        )?;
        family(
            &mut e,
            "dht_replies_trimmed",
            "Replies cut to fit one datagram.",
            None,
            Counter,
            &each(&|n| n.status.stats.replies_trimmed as f64),
        )?;
        family(
            &mut e,
            "dht_sources_blocked",
            "Sources blocked for going on past their rate limit.",
            None,
            Counter,
            &each(&|n| n.status.stats.sources_blocked as f64),
        )?;
        family(
            &mut e,
            "dht_bep42_refused",
            "Contacts refused under BEP 42.",
            None,
            Counter,
            &each(&|n| n.status.stats.bep42_refused as f64),
        )?;
        family(
            &mut e,
            "dht_recv_errors",
            "Socket receive calls that failed.",
            None,
            Counter,
            &each(&|n| n.status.runtime.recv_errors as f64),
        )?;

        // Lookups.
        let mut lookups = Vec::new();
        for n in &self.nodes {
            for (k, kind) in CommandKind::ALL.iter().enumerate() {
                for (o, outcome) in CommandOutcome::ALL.iter().enumerate() {
                    lookups.push((
                        n.labels(&[("kind", kind.name()), ("outcome", outcome.name())]),
                        n.status.runtime.commands[k][o] as f64,
                    ));
                }
            }
        }
        family(&mut e, "dht_lookups", "Commands (each a lookup, then a store phase for puts and announces) ended, by kind and outcome: found (or stored at one node at least), empty, refused (a bad item), overloaded.", None, Counter, &lookups)?;
        let hist = |f: &dyn Fn(&NodeSample) -> Histogram| -> Vec<(Labels, Histogram)> {
            self.nodes.iter().map(|n| (n.labels(&[]), f(n))).collect()
        };
        histogram(
            &mut e,
            "dht_lookup_duration",
            "How long commands took from start to result.",
            Some(&Unit::Seconds),
            &hist(&|n| n.status.runtime.command_duration),
        )?;
        histogram(
            &mut e,
            "dht_lookup_rounds",
            "Rounds (hops) of commands' lookups.",
            None,
            &hist(&|n| n.status.runtime.command_rounds),
        )?;
        family(
            &mut e,
            "dht_commands_running",
            "Commands in progress.",
            None,
            Gauge,
            &each(&|n| n.status.commands as f64),
        )?;

        // Routing table.
        let mut contacts = Vec::new();
        for n in &self.nodes {
            for (i, state) in [
                ContactState::Good,
                ContactState::Questionable,
                ContactState::Bad,
                ContactState::Unverified,
            ]
            .iter()
            .enumerate()
            {
                contacts.push((n.labels(&[("state", state.name())]), n.contacts[i] as f64));
            }
        }
        family(
            &mut e,
            "dht_routing_contacts",
            "Routing-table contacts, by state.",
            None,
            Gauge,
            &contacts,
        )?;
        family(
            &mut e,
            "dht_routing_buckets",
            "Routing-table buckets.",
            None,
            Gauge,
            &each(&|n| n.status.buckets as f64),
        )?;

        // Store.
        family(
            &mut e,
            "dht_stored_items",
            "BEP 44 items held for others.",
            None,
            Gauge,
            &each(&|n| n.status.items as f64),
        )?;
        family(
            &mut e,
            "dht_stored",
            "Bytes of the values of the items held for others.",
            Some(&Unit::Bytes),
            Gauge,
            &each(&|n| n.status.item_bytes as f64),
        )?;
        family(
            &mut e,
            "dht_stored_peers",
            "Peers held for others, over all info-hashes.",
            None,
            Gauge,
            &each(&|n| n.status.peers as f64),
        )?;
        family(
            &mut e,
            "dht_stored_info_hashes",
            "Info-hashes with peers held for others.",
            None,
            Gauge,
            &each(&|n| n.status.info_hashes as f64),
        )?;

        // Disk.
        histogram(&mut e, "dht_disk_commit_duration", "How long each store commit took (one per turn with changes; none without a data directory).", Some(&Unit::Seconds), &hist(&|n| n.status.runtime.commit_duration))?;
        family(
            &mut e,
            "dht_disk_commit_failures",
            "Store commits that failed.",
            None,
            Counter,
            &each(&|n| n.status.runtime.commit_failures as f64),
        )?;
        Ok(())
    }
}

/// Reads every node's figures and encodes them.
async fn render(state: &AppState) -> Result<String, ApiError> {
    let many = state.nodes().len() > 1;
    let mut nodes = Vec::with_capacity(state.nodes().len());
    for (i, dht) in state.nodes().iter().enumerate() {
        let status = dht.status().await?;
        let routing = dht.routing_snapshot().await?;
        let mut contacts = [0u64; 4];
        for c in routing.buckets.iter().flat_map(|b| &b.contacts) {
            contacts[c.state as usize] += 1;
        }
        nodes.push(NodeSample {
            index: many.then_some(i),
            status,
            contacts,
        });
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot { nodes }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).map_err(|_| ApiError {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        message: "encoding the metrics failed".into(),
    })?;
    Ok(out)
}

/// `GET /metrics`.
async fn scrape(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let body = render(&state).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body))
}
