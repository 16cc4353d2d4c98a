//! `dht draw`: every overlay's picture is well-formed SVG with one element per node, the
//! searcher, the key, as many numbered hops as the search reports, the cycles of the blind
//! searches marked, and the same bytes for the same seed; bad arguments are refused.

use std::path::Path;
use std::process::{Command, Output};

const DHT: &str = env!("CARGO_BIN_EXE_dht");

use dht_sim::overlays::registry::OVERLAYS;

fn draw(args: &[&str]) -> Output {
    Command::new(DHT)
        .arg("draw")
        .args(args)
        .output()
        .expect("run dht draw")
}

fn has_class(n: &roxmltree::Node, class: &str) -> bool {
    n.attribute("class")
        .is_some_and(|c| c.split(' ').any(|c| c == class))
}

fn count(panel: &roxmltree::Node, class: &str) -> usize {
    panel.descendants().filter(|n| has_class(n, class)).count()
}

/// Checks one panel of a picture against what it says it drew; returns (hops, revisits).
fn check_panel(panel: &roxmltree::Node, nodes: usize) -> (usize, usize) {
    let overlay = panel.attribute("data-overlay").unwrap_or("?");
    assert_eq!(
        count(panel, "node"),
        nodes,
        "{overlay}: one element per node"
    );
    assert_eq!(count(panel, "searcher"), 1, "{overlay}: the searcher");
    let searcher = panel
        .descendants()
        .find(|n| has_class(n, "searcher"))
        .and_then(|n| n.attribute("data-idx"));
    assert_eq!(searcher, panel.attribute("data-searcher"), "{overlay}");
    assert!(
        count(panel, "responsible") >= 1,
        "{overlay}: the owner or holders"
    );
    if !matches!(overlay, "flooding" | "randomwalk") {
        assert_eq!(count(panel, "key"), 1, "{overlay}: the key");
    }
    let hops: usize = panel.attribute("data-hops").unwrap().parse().unwrap();
    let mut steps: Vec<usize> = panel
        .descendants()
        .filter(|n| has_class(n, "hop"))
        .map(|n| n.attribute("data-step").unwrap().parse().unwrap())
        .collect();
    steps.sort_unstable();
    assert_eq!(
        steps,
        (1..=hops).collect::<Vec<_>>(),
        "{overlay}: hops numbered 1..={hops}"
    );
    let revisits = count(panel, "revisit");
    assert_eq!(
        revisits.to_string(),
        panel.attribute("data-revisits").unwrap(),
        "{overlay}"
    );
    (hops, revisits)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("the picture was written")
}

#[test]
fn every_overlay_draws_its_search_with_every_node_and_numbered_hops() {
    let dir = tempfile::tempdir().unwrap();
    for &o in OVERLAYS {
        let out = dir.path().join(format!("{o}.svg"));
        let r = draw(&[
            "--overlay",
            o,
            "--nodes",
            "40",
            "--seed",
            "3",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            r.status.success(),
            "{o}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let text = read(&out);
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let panels: Vec<_> = doc
            .descendants()
            .filter(|n| has_class(n, "panel"))
            .collect();
        assert_eq!(panels.len(), 1, "{o}");
        assert_eq!(panels[0].attribute("data-overlay"), Some(o));
        let (hops, _) = check_panel(&panels[0], 40);
        // The command's own line says the same hop count.
        let stdout = String::from_utf8_lossy(&r.stdout);
        assert!(
            stdout.contains(&format!(
                ": {hops} hop{}, ",
                if hops == 1 { "" } else { "s" }
            )),
            "{o}: stdout {stdout:?} against {hops} hops drawn"
        );
    }
}

#[test]
fn crowded_rings_still_draw_every_hop() {
    // At a few hundred nodes the last hops join neighbours too close to carry their number on
    // the line; each is still drawn and numbered.
    let dir = tempfile::tempdir().unwrap();
    for (o, seed) in [
        ("chord", "3"),
        ("kademlia", "2"),
        ("pastry", "7"),
        ("can", "10"),
    ] {
        let out = dir.path().join(format!("{o}.svg"));
        let r = draw(&[
            "--overlay",
            o,
            "--nodes",
            "256",
            "--seed",
            seed,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            r.status.success(),
            "{o}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let text = read(&out);
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        let panel = doc.descendants().find(|n| has_class(n, "panel")).unwrap();
        let (hops, _) = check_panel(&panel, 256);
        let labels = panel
            .descendants()
            .filter(|n| has_class(n, "hop-label"))
            .count();
        assert_eq!(labels, hops, "{o}: every hop numbered");
    }
}

#[test]
fn compare_draws_every_overlay_side_by_side_and_the_blind_searches_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("compare.svg");
    let r = draw(&["--compare", "--nodes", "64", "--out", out.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let text = read(&out);
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let panels: Vec<_> = doc
        .descendants()
        .filter(|n| has_class(n, "panel"))
        .collect();
    let names: Vec<_> = panels
        .iter()
        .filter_map(|p| p.attribute("data-overlay"))
        .collect();
    assert_eq!(names, OVERLAYS);
    let mut searchers = Vec::new();
    for p in &panels {
        let (_, revisits) = check_panel(p, 64);
        if matches!(p.attribute("data-overlay"), Some("flooding" | "randomwalk")) {
            assert!(
                revisits >= 1,
                "{:?}: a node reached twice",
                p.attribute("data-overlay")
            );
        }
        searchers.push(p.attribute("data-searcher"));
    }
    searchers.dedup();
    assert_eq!(searchers.len(), 1, "one searcher index in every panel");
    // Element ids stay unique across panels.
    let mut ids: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.attribute("id"))
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "duplicate element ids");
}

#[test]
fn the_same_seed_writes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.svg");
    let b = dir.path().join("b.svg");
    let c = dir.path().join("c.svg");
    for (path, seed) in [(&a, "5"), (&b, "5"), (&c, "6")] {
        let r = draw(&[
            "--compare",
            "--nodes",
            "30",
            "--seed",
            seed,
            "--out",
            path.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    assert_eq!(read(&a), read(&b), "same seed, same bytes");
    assert_ne!(read(&a), read(&c), "another seed, another picture");
}

#[test]
fn a_given_key_is_the_one_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k.svg");
    let key = "00112233445566778899aabbccddeeff00112233";
    let r = draw(&[
        "--overlay",
        "chord",
        "--nodes",
        "20",
        "--key",
        key,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(read(&out).contains(&format!("key {key}")));
}

#[test]
fn bad_arguments_are_refused_with_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.svg");
    let out = out.to_str().unwrap();
    for args in [
        vec!["--overlay", "gnutella", "--nodes", "10", "--out", out],
        vec!["--overlay", "chord", "--nodes", "1", "--out", out],
        vec!["--overlay", "chord", "--nodes", "2001", "--out", out],
        vec!["--overlay", "chord", "--nodes", "ten", "--out", out],
        vec![
            "--overlay",
            "chord",
            "--nodes",
            "10",
            "--key",
            "xyz",
            "--out",
            out,
        ],
        vec!["--nodes", "10", "--out", out],
        vec![
            "--overlay",
            "chord",
            "--compare",
            "--nodes",
            "10",
            "--out",
            out,
        ],
    ] {
        let r = draw(&args);
        assert_eq!(r.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.starts_with("dht: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let r = draw(&["--overlay", "gnutella", "--nodes", "10", "--out", out]);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("kademlia"),
        "lists the overlays"
    );
    assert!(!Path::new(out).exists(), "nothing written on a usage error");
}

#[test]
fn an_unwritable_output_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("no-such-dir").join("x.svg");
    let r = draw(&[
        "--overlay",
        "onehop",
        "--nodes",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("writing") && err.contains("x.svg"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
