//! `dht compare` at a tiny size writes its table, its JSON and every plot, and `dht sim`
//! refuses an unknown overlay with the list of valid ones.

use std::process::Command;

const DHT: &str = env!("CARGO_BIN_EXE_dht");

#[test]
fn compare_writes_the_table_the_json_and_every_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cmp");
    let status = Command::new(DHT)
        .args([
            "compare",
            "--nodes",
            "64",
            "--nodes",
            "128",
            "--overlay",
            "chord",
            "--overlay",
            "can",
            "--overlay",
            "flooding",
            "--overlay",
            "randomwalk",
            "--can-d",
            "3",
            "--churn",
            "none",
            "--churn",
            "50%",
            "--duration",
            "240",
            "--lookups",
            "40",
            "--search-sweep",
            "--sweep-lookups",
            "40",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    for needle in [
        "| chord | 64 | none |",
        "| chord | 128 | none |",
        "| can d=3 | 128 | none |",
        "| chord | 64 | 50% |",
        "| flooding | 128 | none |",
        "Search sweep",
    ] {
        assert!(md.contains(needle), "{needle:?} missing from\n{md}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    // 4 overlays x 2 sizes + CAN d=3 x 2 sizes + 4 churn runs.
    assert_eq!(json["rows"].as_array().unwrap().len(), 14);
    assert!(!json["sweep"].as_array().unwrap().is_empty());
    for svg in [
        "hops_vs_n.svg",
        "messages_vs_n.svg",
        "state_vs_n.svg",
        "maintenance_vs_n.svg",
        "success_vs_churn.svg",
        "maintenance_vs_churn.svg",
        "search_vs_n.svg",
    ] {
        let text = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(text.starts_with("<svg"), "{svg}");
        assert!(text.contains("chord"), "{svg} has no chord series");
    }
    // The saved figures redraw without running anything.
    let again = dir.path().join("again");
    let status = Command::new(DHT)
        .args(["compare", "--replot"])
        .arg(out.join("compare.json"))
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    assert!(status.status.success());
    let md2 = std::fs::read_to_string(again.join("compare.md")).unwrap();
    assert!(md2.contains("| can d=3 | 128 | none |") && md2.contains("Search sweep"));
    assert!(again.join("search_vs_n.svg").exists());
}

#[test]
fn sim_refuses_an_unknown_overlay_listing_the_valid_ones() {
    let out = Command::new(DHT)
        .args(["sim", "--overlay", "gnutella", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for name in [
        "kademlia",
        "chord",
        "pastry",
        "can",
        "onehop",
        "flooding",
        "randomwalk",
    ] {
        assert!(err.contains(name), "{name} not listed in {err}");
    }
}
