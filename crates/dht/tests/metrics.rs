//! `GET /metrics`: the exposition parses as Prometheus text (a careful line parser below), its
//! families are the documented `dht_` ones, and the counters move when traffic flows (puts and
//! gets through a small `dht devnet --http`, and a put stored by a `dht node --http` with a
//! data directory, whose disk commits are then timed).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::http::{get, request, DevnetProc};
use common::{temp_dir, Client, NodeProc};

/// Puts and gets the traffic test makes.
const PUTS: usize = 5;

/// A sample's labels, sorted by name.
type Labels = BTreeMap<String, String>;

/// One parsed exposition: family name → type, and every sample.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<(String, Labels, f64)>,
}

impl Exposition {
    /// The sum of the samples named `name` whose labels include all of `want`.
    fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// How many samples are named `name`.
    fn count(&self, name: &str) -> usize {
        self.samples.iter().filter(|(n, _, _)| n == name).count()
    }
}

/// Parses Prometheus' (OpenMetrics) text format strictly enough to catch a broken exposition:
/// every line is a `# HELP`, `# TYPE` or `# UNIT` comment, a sample of a family declared
/// before it, or the final `# EOF`; label values are quoted with escapes; values are numbers.
fn parse(text: &str) -> Result<Exposition, String> {
    let mut e = Exposition::default();
    let mut eof = false;
    for (i, line) in text.lines().enumerate() {
        let at = |msg: &str| format!("line {}: {msg}: {line:?}", i + 1);
        if eof {
            return Err(at("text after # EOF"));
        }
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (kw, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            match kw {
                "HELP" | "UNIT" => {}
                "TYPE" => {
                    let t = words.next().ok_or_else(|| at("TYPE without a type"))?;
                    let known = [
                        "counter",
                        "gauge",
                        "histogram",
                        "info",
                        "summary",
                        "unknown",
                    ];
                    if !known.contains(&t) {
                        return Err(at("unknown type"));
                    }
                    e.types.insert(name.to_string(), t.to_string());
                }
                _ => return Err(at("unknown comment")),
            }
            if !valid_name(name) {
                return Err(at("bad metric name"));
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| at("a sample needs a value"))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(at("bad sample name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Labels::new();
        if let Some(r) = rest.strip_prefix('{') {
            let (parsed, after) = parse_labels(r).map_err(|m| at(&m))?;
            labels = parsed;
            rest = after;
        }
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v if v.chars().all(|c| c.is_ascii_digit() || ".e+-".contains(c)) => {
                v.parse().map_err(|_| at("value is not a number"))?
            }
            _ => return Err(at("value is not a number")),
        };
        // The family: the name less a suffix its type adds.
        let family = ["_total", "_bucket", "_count", "_sum", "_info", "_created"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| e.types.contains_key(*f)))
            .unwrap_or(name);
        if !e.types.contains_key(family) {
            return Err(at("sample of an undeclared family"));
        }
        e.samples.push((name.to_string(), labels, value));
    }
    if !eof {
        return Err("no # EOF at the end".into());
    }
    Ok(e)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !n.starts_with(|c: char| c.is_ascii_digit())
}

/// Parses `k="v",k2="v2"}` (after the opening brace); returns the labels and what follows.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    // Each round consumes at least one character, so the loop is bounded by the line.
    for _ in 0..=s.len() {
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without =")?;
        let key = &s[..eq];
        if !valid_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let mut chars = s[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err("label value not quoted".into());
        }
        let mut value = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err("bad escape in a label value".into()),
                },
                '"' => {
                    end = Some(eq + 1 + i + 1);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or("unterminated label value")?;
        labels.insert(key.to_string(), value);
        s = &s[end..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
    Err("unterminated label set".into())
}

fn scrape(url: &str) -> Exposition {
    let r = get(url, "/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.content_type.starts_with("application/openmetrics-text"),
        "content type {:?}",
        r.content_type
    );
    let text = r.text();
    parse(&text).unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"))
}

/// Every histogram's buckets are cumulative, and its `+Inf` bucket equals its count.
fn assert_histograms_consistent(e: &Exposition) {
    for (family, t) in &e.types {
        if t != "histogram" {
            continue;
        }
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for (n, l, v) in &e.samples {
            if *n == format!("{family}_bucket") {
                let mut key = l.clone();
                let le = key.remove("le").expect("a bucket has le");
                let le: f64 = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                series.entry(key).or_default().push((le, *v));
            }
        }
        assert!(!series.is_empty(), "{family} has no buckets");
        for (labels, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family}{labels:?} buckets not cumulative: {buckets:?}"
            );
            let inf = buckets.last().unwrap();
            assert!(inf.0.is_infinite(), "{family}{labels:?} has no +Inf bucket");
            let want: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(
                inf.1,
                e.sum(&format!("{family}_count"), &want),
                "{family}{labels:?}"
            );
        }
    }
}

#[test]
fn metrics_parse_and_counters_move_when_traffic_flows() {
    let home = temp_dir("metrics-devnet");
    let devnet = DevnetProc::start(home.path(), 4, 1);
    let url = devnet.url.clone();
    let before = scrape(&url);

    // The documented families are there, one series per node.
    for family in [
        "dht_node",
        "dht_uptime_seconds",
        "dht_datagrams_received",
        "dht_received_bytes",
        "dht_datagrams_sent",
        "dht_sent_bytes",
        "dht_errors_sent",
        "dht_errors_received",
        "dht_dropped",
        "dht_lookups",
        "dht_lookup_duration_seconds",
        "dht_lookup_rounds",
        "dht_routing_contacts",
        "dht_routing_buckets",
        "dht_stored_items",
        "dht_stored_peers",
        "dht_stored_bytes",
        "dht_disk_commit_duration_seconds",
    ] {
        assert!(before.types.contains_key(family), "no family {family}");
    }
    assert_eq!(before.count("dht_node_info"), 4);
    for i in 0..4 {
        let node = i.to_string();
        assert!(before.sum("dht_uptime_seconds", &[("node", &node)]) > 0.0);
        // Every node knows the three others.
        assert!(before.sum("dht_routing_contacts", &[("node", &node)]) >= 3.0);
    }
    assert!(before.samples.iter().all(|(n, _, _)| n.starts_with("dht_")));
    assert_histograms_consistent(&before);

    // Traffic: puts through node 0, gets of each through node 1.
    let mut keys = Vec::new();
    for p in 0..PUTS {
        let value = format!("12:metrics {p:04}");
        let r = request(&url, "PUT", "/api/v1/items", Some(value.as_bytes()));
        assert_eq!(r.status, 200, "{}", r.text());
        keys.push(r.json()["key"].as_str().unwrap().to_string());
    }
    for k in &keys {
        let r = get(&url, &format!("/api/v1/items/{k}?node=1"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let after = scrape(&url);
    assert_histograms_consistent(&after);

    let grew = |name: &str, want: &[(&str, &str)]| after.sum(name, want) - before.sum(name, want);
    let puts = PUTS as f64;
    assert!(
        grew(
            "dht_lookups_total",
            &[
                ("node", "0"),
                ("kind", "put_immutable"),
                ("outcome", "found")
            ]
        ) >= puts,
        "node 0's put_immutable count"
    );
    assert!(
        grew(
            "dht_lookups_total",
            &[
                ("node", "1"),
                ("kind", "get_immutable"),
                ("outcome", "found")
            ]
        ) >= puts,
        "node 1's get_immutable count"
    );
    assert!(grew("dht_lookup_duration_seconds_count", &[("node", "0")]) >= puts);
    assert!(grew("dht_lookup_rounds_count", &[("node", "1")]) >= puts);
    // Each put is a `put` query sent by node 0 and received by the others.
    assert!(
        grew(
            "dht_datagrams_sent_total",
            &[("node", "0"), ("kind", "query"), ("method", "put")]
        ) >= puts
    );
    assert!(
        grew(
            "dht_datagrams_received_total",
            &[("kind", "query"), ("method", "put")]
        ) >= puts
    );
    assert!(
        grew(
            "dht_received_bytes_total",
            &[("kind", "query"), ("method", "put")]
        ) > 0.0
    );
    // A put first gets write tokens: node 0 receives responses.
    assert!(
        grew(
            "dht_datagrams_received_total",
            &[("node", "0"), ("kind", "response")]
        ) >= puts
    );
    assert!(after.sum("dht_stored_items", &[]) >= before.sum("dht_stored_items", &[]) + puts);
    assert!(after.sum("dht_stored_bytes", &[]) > before.sum("dht_stored_bytes", &[]));

    // No counter went down.
    for (n, l, v) in &after.samples {
        if n.ends_with("_total") {
            let want: Vec<(&str, &str)> = l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert!(*v >= before.sum(n, &want), "{n}{l:?} went down");
        }
    }
    let status = devnet.interrupt();
    assert!(status.code().is_some(), "{status}");
}

#[test]
fn one_node_has_no_node_label_and_times_its_disk_commits() {
    let home = temp_dir("metrics-node");
    let b = NodeProc::start_with(
        home.path(),
        &home.path().join("b"),
        "127.0.0.1:0",
        // A loopback port where nothing listens: the node stays alone and never reaches out
        // to the public routers it would use without --bootstrap.
        &["127.0.0.1:9".parse().unwrap()],
        &["--http", "127.0.0.1:0"],
    );
    let line = b
        .next_line(Duration::from_secs(30))
        .expect("dht node --http prints its URL");
    let url = line
        .strip_prefix("http api on ")
        .expect("the URL line")
        .to_string();
    let before = scrape(&url);
    assert_eq!(before.count("dht_node_info"), 1);
    assert!(
        before
            .samples
            .iter()
            .all(|(_, l, _)| !l.contains_key("node")),
        "one node: no node label"
    );

    // A client joins through the node and stores a value there: the node commits it to disk.
    let put = Client::new(home.path())
        .bootstrap(b.addr)
        .run(&["put", "on disk"]);
    put.assert_success();
    let after = scrape(&url);
    assert!(after.sum("dht_disk_commit_duration_seconds_count", &[]) >= 1.0);
    assert!(
        after.sum("dht_disk_commit_duration_seconds_count", &[])
            > before.sum("dht_disk_commit_duration_seconds_count", &[])
    );
    assert!(after.sum("dht_stored_items", &[]) >= 1.0);
    assert!(
        after.sum(
            "dht_datagrams_received_total",
            &[("kind", "query"), ("method", "put")]
        ) >= 1.0
    );
    assert!(
        after.sum("dht_queries_answered_total", &[]) >= 2.0,
        "a get and a put at least"
    );
    let (status, _) = b.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn the_parser_rejects_broken_expositions() {
    assert!(parse("# TYPE a counter\na_total 1\n# EOF\n").is_ok());
    assert!(parse("# TYPE a counter\na_total 1\n").is_err(), "no EOF");
    assert!(parse("b_total 1\n# EOF\n").is_err(), "undeclared family");
    assert!(
        parse("# TYPE a counter\na_total x\n# EOF\n").is_err(),
        "not a number"
    );
    assert!(
        parse("# TYPE a counter\na_total{k=\"v} 1\n# EOF\n").is_err(),
        "unterminated"
    );
    let e = parse("# TYPE a gauge\na{k=\"v\\\"w\",j=\"x\"} 2.5\n# EOF\n").unwrap();
    assert_eq!(e.sum("a", &[("k", "v\"w"), ("j", "x")]), 2.5);
}
