//! The dashboard in a real browser: `dht devnet --nodes 8 --http 127.0.0.1:0` on loopback,
//! and headless Chromium loading its page with `#node=I&lookup=KEY`, which makes the page run
//! a lookup on load. The DOM Chromium dumps after the page's scripts ran must show every
//! devnet node on the ring, the lookup's hops between devnet nodes ending at the key's owner,
//! no API error and no JavaScript error (in the page's `#js-errors` or on the console); a
//! key that is not 40 hex digits must be refused in the page, in words.
//!
//! Without Chromium the test prints `SKIPPED: ...` and passes, unless
//! `DHT_REQUIRE_CHROMIUM=1` (CI) makes it fail.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::http::{get, DevnetProc};
use common::{is_hex, temp_dir, ID_HEX_LEN};

/// Nodes in the devnet.
const DEVNET_NODES: usize = 8;
/// Node whose view the page shows and from which it runs the lookup.
const FROM_NODE: usize = 3;
/// Node whose ID is the lookup's key, so the lookup has a known owner to find.
const KEY_NODE: usize = 6;
/// Puts of the devnet's demonstration, so the page has stored items to list.
const DEVNET_PUTS: usize = 4;
/// Upper bound on one Chromium run (it exits by itself once the virtual time is spent).
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);
/// Virtual time Chromium gives the page's scripts before dumping the DOM: enough for the
/// lookup and its animation (the page's timers run on this clock; network fetches pause it).
const VIRTUAL_TIME_BUDGET_MS: u32 = 15_000;
/// How often bounded waits re-check.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Lines of a log shown when the test fails.
const LOG_TAIL_LINES: usize = 40;

/// True when a missing Chromium must fail the test (CI sets `DHT_REQUIRE_CHROMIUM=1`).
fn chromium_required() -> bool {
    matches!(std::env::var("DHT_REQUIRE_CHROMIUM"), Ok(v) if !v.is_empty() && v != "0")
}

/// The Chromium binary: `DHT_CHROMIUM` if set, else the first of Debian's and other
/// distributions' names found on PATH. Prints a loud SKIPPED line and returns `None` when
/// there is none and it is not required; panics when it is required.
fn chromium() -> Option<PathBuf> {
    let named = std::env::var_os("DHT_CHROMIUM");
    let found = match &named {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.exists()),
        None => {
            let path = std::env::var_os("PATH").unwrap_or_default();
            ["chromium", "chromium-browser", "google-chrome"]
                .iter()
                .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
                .find(|p| p.is_file())
        }
    };
    if found.is_none() {
        let why = match &named {
            Some(p) => format!("DHT_CHROMIUM names no file: {}", p.to_string_lossy()),
            None => "no chromium, chromium-browser or google-chrome on PATH".to_string(),
        };
        if chromium_required() {
            panic!("DHT_REQUIRE_CHROMIUM is set but Chromium is missing: {why}");
        }
        eprintln!(
            "SKIPPED: the dashboard's browser test needs Chromium (apt-get install chromium; \
             set DHT_REQUIRE_CHROMIUM=1 to fail instead): {why}"
        );
    }
    found
}

/// The last lines of a text, for failure messages.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// The devnet's node IDs from `GET /api/v1/nodes`, by index.
fn node_ids(url: &str) -> Vec<String> {
    let json = get(url, "/api/v1/nodes").json();
    let nodes = json["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("/api/v1/nodes has no `nodes` array: {json}"));
    let mut ids = vec![String::new(); nodes.len()];
    for n in nodes {
        let i = n["index"].as_u64().expect("node index") as usize;
        let id = n["node_id"].as_str().expect("node_id").to_string();
        assert!(is_hex(&id, ID_HEX_LEN), "node_id is not 40 hex: {json}");
        assert!(i < ids.len(), "node index {i} out of range: {json}");
        ids[i] = id;
    }
    ids
}

/// What one headless Chromium run of a page left: the DOM after its scripts ran, and
/// Chromium's log (console messages appear in it as `...:CONSOLE...` lines).
struct PageRun {
    dom: String,
    log: String,
}

/// Loads `url` in headless Chromium and dumps its DOM once `VIRTUAL_TIME_BUDGET_MS` of
/// virtual time passed; bounded by `CHROMIUM_TIMEOUT`.
fn load_page(chromium: &Path, url: &str, dir: &Path, name: &str) -> PageRun {
    let dom_path = dir.join(format!("{name}.html"));
    let log_path = dir.join(format!("{name}.chromium.log"));
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,900",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium-profile").display()
        ))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"))
        .arg("--dump-dom")
        .arg(url)
        .env("HOME", dir)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&dom_path).expect("create dom file"))
        .stderr(fs::File::create(&log_path).expect("create chromium log"))
        .spawn()
        .expect("spawn chromium");
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait chromium") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish {url} within {CHROMIUM_TIMEOUT:?}\n{}",
                tail(&fs::read_to_string(&log_path).unwrap_or_default())
            );
        }
        thread::sleep(POLL_INTERVAL);
    };
    let dom = fs::read_to_string(&dom_path).expect("read dom");
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        status.success() && dom.contains("</html>"),
        "chromium failed on {url} ({status}); DOM {} bytes\n{}",
        dom.len(),
        tail(&log)
    );
    PageRun { dom, log }
}

/// One start tag of the dumped DOM: its name and attributes.
#[derive(Debug)]
struct Tag {
    name: String,
    attrs: BTreeMap<String, String>,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    /// True when the class attribute holds every one of `classes`.
    fn has_classes(&self, classes: &[&str]) -> bool {
        let have: Vec<&str> = self
            .attr("class")
            .unwrap_or("")
            .split_whitespace()
            .collect();
        classes.iter().all(|c| have.contains(c))
    }
}

/// The start tags of serialized HTML, attributes unescaped enough for IDs and numbers
/// (Chromium writes every attribute value in double quotes).
fn parse_tags(dom: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let b = dom.as_bytes();
    let mut i = 0;
    while let Some(off) = dom[i..].find('<') {
        i += off + 1;
        let name_len = b[i..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'-')
            .count();
        if name_len == 0 || !b[i].is_ascii_alphabetic() {
            continue;
        }
        let name = dom[i..i + name_len].to_ascii_lowercase();
        i += name_len;
        let mut attrs = BTreeMap::new();
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            if i >= b.len() || b[i] == b'>' {
                break;
            }
            let start = i;
            while i < b.len() && !b"= \t\n\r/>".contains(&b[i]) {
                i += 1;
            }
            let key = dom[start..i].to_ascii_lowercase();
            let mut value = String::new();
            if i < b.len() && b[i] == b'=' && i + 1 < b.len() && b[i + 1] == b'"' {
                let end = dom[i + 2..].find('"').map_or(b.len(), |e| i + 2 + e);
                value = dom[i + 2..end]
                    .replace("&quot;", "\"")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&");
                i = (end + 1).min(b.len());
            }
            attrs.insert(key, value);
        }
        out.push(Tag { name, attrs });
    }
    out
}

/// The text between the start tag with `id="ID"` and the next `</`.
fn text_of(dom: &str, id: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let open_end = at + dom[at..].find('>')? + 1;
    let close = open_end + dom[open_end..].find("</")?;
    Some(dom[open_end..close].to_string())
}

/// Console messages in Chromium's log: the page writes none, so any is a failure (an
/// uncaught exception, a failed request, a CSP violation).
fn console_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect()
}

/// Asserts the page recorded no JavaScript error, in the page or on the console.
fn assert_no_js_errors(run: &PageRun, tags: &[Tag]) {
    let body = tags.iter().find(|t| t.name == "body").expect("a body");
    assert_eq!(
        body.attr("data-ready"),
        Some("1"),
        "app.js did not finish starting\n{}",
        tail(&run.log)
    );
    let js_errors = text_of(&run.dom, "js-errors").expect("the page has #js-errors");
    assert!(
        js_errors.trim().is_empty(),
        "the page recorded JavaScript errors:\n{js_errors}"
    );
    let console = console_lines(&run.log);
    assert!(
        console.is_empty(),
        "console messages while loading the page:\n{}",
        console.join("\n")
    );
}

#[test]
fn the_dashboard_shows_every_devnet_node_draws_a_lookup_hop_by_hop_and_reports_bad_input() {
    let Some(chromium) = chromium() else { return };
    let dir = temp_dir("dht-dashboard-");
    let devnet = DevnetProc::start(dir.path(), DEVNET_NODES, DEVNET_PUTS);
    let ids = node_ids(&devnet.url);
    assert_eq!(ids.len(), DEVNET_NODES, "/api/v1/nodes lists every node");
    let all: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let key = &ids[KEY_NODE];
    let page = get(&devnet.url, "/");
    assert_eq!(
        page.status,
        200,
        "GET / serves the dashboard: {}",
        page.text()
    );

    let url = format!("{}#node={FROM_NODE}&lookup={key}", devnet.url);
    let run = load_page(&chromium, &url, dir.path(), "lookup");
    let tags = parse_tags(&run.dom);
    assert_no_js_errors(&run, &tags);
    let api_errors = text_of(&run.dom, "api-errors").expect("the page has #api-errors");
    assert!(
        api_errors.trim().is_empty(),
        "the page shows API errors: {api_errors}"
    );

    // Every devnet node on the ring, once, the selected one marked.
    let members: Vec<&Tag> = tags
        .iter()
        .filter(|t| t.has_classes(&["node", "member"]))
        .collect();
    let indices: BTreeSet<&str> = members
        .iter()
        .filter_map(|t| t.attr("data-index"))
        .collect();
    let member_ids: BTreeSet<&str> = members.iter().filter_map(|t| t.attr("data-id")).collect();
    assert_eq!(members.len(), DEVNET_NODES, "one node element per node");
    assert_eq!(
        indices.len(),
        DEVNET_NODES,
        "node elements by index: {indices:?}"
    );
    assert_eq!(member_ids, all, "the ring shows the devnet's node IDs");
    let selected: Vec<&&Tag> = members
        .iter()
        .filter(|t| t.has_classes(&["selected"]))
        .collect();
    assert_eq!(selected.len(), 1, "one selected node");
    assert_eq!(selected[0].attr("data-id"), Some(ids[FROM_NODE].as_str()));

    // The selected node's contacts, all of them devnet nodes.
    let contacts: Vec<&str> = tags
        .iter()
        .filter(|t| t.has_classes(&["contact"]))
        .filter_map(|t| t.attr("data-id"))
        .collect();
    assert!(
        !contacts.is_empty(),
        "the ring shows node {FROM_NODE}'s contacts"
    );
    for c in &contacts {
        assert!(all.contains(c), "contact {c} is no devnet node");
    }

    // The lookup, started by the URL fragment, finished and drew its hops between devnet
    // nodes, the first round's from the searcher.
    let summary = tags
        .iter()
        .find(|t| t.attr("id") == Some("lookup-summary"))
        .expect("#lookup-summary");
    let summary_text = text_of(&run.dom, "lookup-summary").unwrap_or_default();
    assert_eq!(
        summary.attr("data-status"),
        Some("done"),
        "the lookup did not finish drawing: {summary_text}"
    );
    let hops: Vec<&Tag> = tags.iter().filter(|t| t.has_classes(&["hop"])).collect();
    assert!(!hops.is_empty(), "the lookup drew no hop: {summary_text}");
    assert_eq!(
        summary.attr("data-hops"),
        Some(hops.len().to_string().as_str()),
        "every hop of the trace is drawn"
    );
    for h in &hops {
        let (from, to) = (
            h.attr("data-from").unwrap_or(""),
            h.attr("data-to").unwrap_or(""),
        );
        assert!(
            all.contains(from) && all.contains(to),
            "hop {from} -> {to} leaves the devnet"
        );
        let round: u32 = h
            .attr("data-round")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        assert!(round >= 1, "hop without a round: {h:?}");
    }
    assert!(
        hops.iter()
            .any(|h| h.attr("data-round") == Some("1")
                && h.attr("data-from") == Some(&ids[FROM_NODE])),
        "no first-round hop starts at the searcher"
    );
    let closest: BTreeSet<&str> = tags
        .iter()
        .filter(|t| t.has_classes(&["closest"]))
        .filter_map(|t| t.attr("data-id"))
        .collect();
    assert!(!closest.is_empty(), "the k closest are not drawn");
    // The key's owner is among the k closest, unless it did not answer in time (a loaded
    // machine), in which case the page must have drawn it as timed out.
    let owner_timed_out = hops.iter().any(|h| {
        h.attr("data-to") == Some(key.as_str()) && h.attr("data-outcome") == Some("timed_out")
    });
    assert!(
        closest.contains(key.as_str()) || owner_timed_out,
        "the k closest drawn ({closest:?}) miss the key's owner, node {KEY_NODE} {key}"
    );
    eprintln!(
        "dashboard: {} nodes, {} contacts of node {FROM_NODE}, a lookup of {} hops in {} rounds, \
         {} closest drawn",
        members.len(),
        contacts.len(),
        hops.len(),
        summary.attr("data-rounds").unwrap_or("?"),
        closest.len()
    );
    let target = tags
        .iter()
        .find(|t| t.has_classes(&["target"]))
        .expect("the key is marked on the ring");
    assert_eq!(target.attr("data-id"), Some(key.as_str()));

    // A key that is not 40 hex digits is refused in the page, before any request.
    let url = format!("{}#node=1&lookup=not-a-key", devnet.url);
    let run = load_page(&chromium, &url, dir.path(), "bad-key");
    let tags = parse_tags(&run.dom);
    assert_no_js_errors(&run, &tags);
    let errors = text_of(&run.dom, "api-errors").unwrap_or_default();
    assert!(
        errors.contains("40 hex digits"),
        "the page does not say what a key is: {errors:?}"
    );
    let summary = tags
        .iter()
        .find(|t| t.attr("id") == Some("lookup-summary"))
        .expect("#lookup-summary");
    assert_eq!(summary.attr("data-status"), Some("idle"), "no lookup ran");
    drop(devnet);
}
