//! `dht sim --adversary ... --disjoint-paths D`: the JSON report's `adversary` section, the
//! summary line, and the usage errors of the new flags.

use std::process::Command;

const DHT: &str = env!("CARGO_BIN_EXE_dht");

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(DHT)
        .arg("sim")
        .args(args)
        .output()
        .expect("dht runs")
}

#[test]
fn an_eclipse_run_reports_its_adversaries_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = sim(&[
        "--nodes",
        "600",
        "--lookups",
        "200",
        "--puts",
        "30",
        "--gets",
        "100",
        "--duration",
        "300",
        "--warmup",
        "60",
        "--converge",
        "--seed",
        "4",
        "--adversary",
        "eclipse",
        "--adversary-fraction",
        "0.3",
        "--disjoint-paths",
        "2",
        "--ip-diversity",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("adversaries: eclipse at 30%"),
        "the summary names them: {stdout}"
    );
    assert!(
        stdout.contains(
            "--adversary eclipse --adversary-fraction 0.3 --disjoint-paths 2 --ip-diversity"
        ),
        "{stdout}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let a = &r["adversary"];
    assert_eq!(a["kind"], "eclipse");
    assert_eq!(a["fraction"], 0.3);
    assert_eq!(a["disjoint_paths"], 2);
    assert_eq!(a["forgeries_accepted"], 0);
    assert!(a["created"].as_u64().unwrap() > 100, "{a}");
    assert!(a["mischief"]["lies"].as_u64().unwrap() > 0, "{a}");
    assert!(r["lookups"]["success_rate"].as_f64().unwrap() > 0.9, "{r}");
}

#[test]
fn a_run_without_adversaries_has_no_adversary_section() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = sim(&[
        "--nodes",
        "200",
        "--lookups",
        "50",
        "--duration",
        "240",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(r.get("adversary").is_none(), "{r}");
}

#[test]
fn bad_adversary_flags_are_refused_with_one_clear_line() {
    // A usage error (exit 2): an unknown kind, a fraction without a kind.
    for args in [
        &["--adversary", "sybil"][..],
        &["--adversary-fraction", "0.2"][..],
        &["--disjoint-paths", "x"][..],
    ] {
        let out = sim(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
    }
    let out = sim(&["--adversary", "sybil"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("drop, eclipse, targeted, forge"), "{err}");
    // Out of range or for another overlay: refused before the run, exit 1, one line.
    for args in [
        &["--adversary", "eclipse", "--adversary-fraction", "1.5"][..],
        &["--disjoint-paths", "17"][..],
        &["--overlay", "chord", "--adversary", "drop"][..],
    ] {
        let out = sim(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("dht: bad parameter:"), "{err}");
    }
}
