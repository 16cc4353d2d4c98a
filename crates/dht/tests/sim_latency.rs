//! `dht sim`'s latency figures (`lookups`, `gets` and `puts` each with `latency_ms` p50, p95
//! and p99) and `--no-proximity`, which turns off proximity neighbour selection.

use std::process::Command;

const DHT: &str = env!("CARGO_BIN_EXE_dht");

fn sim(extra: &[&str]) -> (String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = Command::new(DHT)
        .args([
            "sim",
            "--nodes",
            "3000",
            "--lookups",
            "1000",
            "--puts",
            "40",
            "--gets",
            "400",
            "--duration",
            "400",
            "--warmup",
            "60",
            "--converge",
            "--seed",
            "3",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .expect("dht runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let r = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (stdout, r)
}

fn quantiles(r: &serde_json::Value, section: &str) -> [f64; 3] {
    let l = &r[section]["latency_ms"];
    let q = ["p50", "p95", "p99"].map(|p| {
        l[p].as_f64()
            .unwrap_or_else(|| panic!("{section}.latency_ms.{p}: {l}"))
    });
    assert!(
        q[0] > 0.0 && q[0] <= q[1] && q[1] <= q[2],
        "{section}: {q:?}"
    );
    q
}

#[test]
fn lookups_gets_and_puts_report_latency_and_proximity_shortens_them() {
    let (out, near) = sim(&[]);
    assert!(
        out.contains("get latency (first verified value) p50"),
        "{out}"
    );
    assert!(out.contains("put latency (k acks) p50"), "{out}");
    assert!(!out.contains("--no-proximity"), "{out}");
    let (out, plain) = sim(&["--no-proximity"]);
    assert!(
        out.contains(" --no-proximity"),
        "the replay line keeps the flag: {out}"
    );
    for section in ["lookups", "gets", "puts"] {
        let (a, b) = (quantiles(&near, section), quantiles(&plain, section));
        assert!(
            a[0] < b[0],
            "{section} p50 with proximity {} against {} without",
            a[0],
            b[0]
        );
    }
    for r in [&near, &plain] {
        assert!(
            r["lookups"]["success_rate"].as_f64().unwrap() >= 0.999,
            "{r}"
        );
    }
}
