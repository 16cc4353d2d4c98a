//! `dht bench`: the loopback cluster benchmark of docs/benchmarks.md.
//!
//! N nodes on 127.0.0.1 in this process, started `--stagger-ms` apart from one seed; then puts
//! of `--value-bytes` values from random nodes, each fetched `--gets-per-put` times from other
//! random nodes. Reports settle time (every node has at least 8 contacts, measured from the
//! last node's start), put and get latency p50/p95, success rate, CPU seconds for the whole
//! run, memory per node above the process baseline, and datagrams per put and per get.
//!
//! One node under `find_node` load is dht-node's own benchmark (`cargo bench -p dht-node
//! --bench load`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use dht_node::Dht;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::devnet::{quantile_ms, spawn_cluster, wait_settled};

/// `dht bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Nodes in the cluster.
    #[arg(long, short = 'n', default_value_t = 300, value_parser = clap::value_parser!(u16).range(2..=5000))]
    pub nodes: u16,
    /// Delay between node starts, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub stagger_ms: u64,
    /// Puts.
    #[arg(long, default_value_t = 200)]
    pub puts: u32,
    /// Gets of each put, each from another random node.
    #[arg(long, default_value_t = 2)]
    pub gets_per_put: u32,
    /// Bytes of each value.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=990))]
    pub value_bytes: u16,
    /// Seed for IDs, values and the choice of nodes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

async fn datagrams_out(nodes: &[Dht]) -> anyhow::Result<u64> {
    let mut total = 0;
    for d in nodes {
        total += d.status().await?.stats.datagrams_out;
    }
    Ok(total)
}

/// Runs the cluster benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let n = args.nodes as usize;
    let cpu0 = cpu_seconds();
    let rss0 = rss_bytes();
    let nodes = spawn_cluster(n, 0, Duration::from_millis(args.stagger_ms), args.seed).await?;
    let settle = wait_settled(&nodes, Duration::from_secs(120)).await?;
    let rss1 = rss_bytes();
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0xbe7c);
    let mut put_lat = Vec::new();
    let mut get_lat = Vec::new();
    let (mut puts_ok, mut gets_ok) = (0u32, 0u32);
    // Requests the operations' own lookups sent (each answered one is two datagrams); the rest
    // of the datagrams counted below is what the operations set off (pings of contacts they
    // introduced, the puts' stores) and the cluster's maintenance meanwhile.
    let (mut put_requests, mut get_requests) = (0u64, 0u64);
    // Datagrams are counted once around all puts and once around all gets (the operations
    // run one at a time, so the difference is theirs plus the little maintenance meanwhile),
    // not around each one: asking 300 nodes for counters 1,200 times would cost more CPU than
    // the operations measured.
    let before_puts = datagrams_out(&nodes).await?;
    let mut keys = Vec::new();
    for _ in 0..args.puts {
        let mut raw = vec![0u8; args.value_bytes as usize];
        rng.fill(&mut raw[..]);
        let mut encoded = format!("{}:", raw.len()).into_bytes();
        encoded.extend_from_slice(&raw);
        let from = rng.gen_range(0..n);
        let t = Instant::now();
        let r = nodes[from].put_immutable(encoded.clone()).await?;
        put_lat.push(t.elapsed());
        put_requests += u64::from(r.stats.messages);
        if r.stored_at > 0 {
            puts_ok += 1;
        }
        keys.push((r.target, encoded, from));
    }
    let put_datagrams = datagrams_out(&nodes).await? - before_puts;
    let before_gets = datagrams_out(&nodes).await?;
    for (target, encoded, from) in &keys {
        for _ in 0..args.gets_per_put {
            let mut at = rng.gen_range(0..n);
            if at == *from {
                at = (at + 1) % n;
            }
            let t = Instant::now();
            let g = nodes[at].get_immutable(*target).await?;
            get_lat.push(t.elapsed());
            get_requests += u64::from(g.stats.messages);
            if g.value.as_deref() == Some(&encoded[..]) {
                gets_ok += 1;
            }
        }
    }
    let get_datagrams = datagrams_out(&nodes).await? - before_gets;
    let cpu = cpu_seconds() - cpu0;
    for d in &nodes {
        d.shutdown().await;
    }
    put_lat.sort();
    get_lat.sort();
    let gets = (args.puts * args.gets_per_put).max(1);
    let report = serde_json::json!({
        "nodes": n,
        "stagger_ms": args.stagger_ms,
        "seed": args.seed,
        "settle_ms_after_last_start": settle.as_secs_f64() * 1000.0,
        "puts": args.puts,
        "puts_stored": puts_ok,
        "gets": gets,
        "gets_found": gets_ok,
        "success_rate": gets_ok as f64 / gets as f64,
        "put_ms": { "p50": quantile_ms(&put_lat, 0.5), "p95": quantile_ms(&put_lat, 0.95) },
        "get_ms": { "p50": quantile_ms(&get_lat, 0.5), "p95": quantile_ms(&get_lat, 0.95) },
        "cpu_seconds": cpu,
        "memory_per_node_mib": (rss1.saturating_sub(rss0)) as f64 / n as f64 / (1024.0 * 1024.0),
        "datagrams_per_put": put_datagrams as f64 / args.puts.max(1) as f64,
        "datagrams_per_get": get_datagrams as f64 / gets as f64,
        "lookup_requests_per_put": put_requests as f64 / args.puts.max(1) as f64,
        "lookup_requests_per_get": get_requests as f64 / gets as f64,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "cluster bench: {n} nodes, started {} ms apart, seed {}",
            args.stagger_ms, args.seed
        );
        println!(
            "  settled (every node >= 8 contacts) {:.1} ms after the last start",
            settle.as_secs_f64() * 1000.0
        );
        println!(
            "  puts stored {puts_ok}/{}; gets found {gets_ok}/{gets} ({:.2}%)",
            args.puts,
            100.0 * gets_ok as f64 / gets as f64
        );
        println!(
            "  put p50 {:.3} ms p95 {:.3} ms; get p50 {:.3} ms p95 {:.3} ms",
            quantile_ms(&put_lat, 0.5),
            quantile_ms(&put_lat, 0.95),
            quantile_ms(&get_lat, 0.5),
            quantile_ms(&get_lat, 0.95)
        );
        println!(
            "  CPU {cpu:.2} s for the whole run; memory {:.4} MiB per node above baseline",
            report["memory_per_node_mib"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "  datagrams per put {:.1}, per get {:.1} (lookup requests per put {:.1}, per get {:.1})",
            report["datagrams_per_put"].as_f64().unwrap_or(f64::NAN),
            report["datagrams_per_get"].as_f64().unwrap_or(f64::NAN),
            report["lookup_requests_per_put"].as_f64().unwrap_or(f64::NAN),
            report["lookup_requests_per_get"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(if gets_ok == gets && puts_ok == args.puts {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
