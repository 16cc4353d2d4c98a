//! `dht devnet`: a local network of N nodes on 127.0.0.1 in one process, for a first try.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use dht_node::Dht;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Contacts every node needs before the network counts as settled.
pub const SETTLED_CONTACTS: usize = 8;

/// How often the settle check polls the nodes.
const SETTLE_POLL: Duration = Duration::from_millis(10);

/// `dht devnet`.
#[derive(Args, Debug)]
pub struct DevnetArgs {
    /// Number of nodes.
    #[arg(long, short = 'n', default_value_t = 32, value_parser = clap::value_parser!(u16).range(2..=2000))]
    pub nodes: u16,
    /// First UDP port; node i listens on base-port + i (0: any free ports).
    #[arg(long, default_value_t = 0)]
    pub base_port: u16,
    /// Puts (and twice as many gets) in the demonstration.
    #[arg(long, default_value_t = 20)]
    pub puts: u32,
    /// Seed for node IDs and the demonstration.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Exit after the demonstration instead of serving until Ctrl-C.
    #[arg(long, conflicts_with = "http")]
    pub exit: bool,
    /// Serve the HTTP API, /metrics and the dashboard of every node on this TCP address
    /// (`?node=I` picks one; port 0: any free port; the URL is printed), and run until Ctrl-C.
    /// A non-loopback address needs --http-public. See docs/http.md.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Allow --http on an address other than loopback (the API has no authentication).
    #[arg(long, requires = "http")]
    pub http_public: bool,
    /// A key file from `dht keygen` with which the API signs mutable puts that come without a
    /// signature, whichever node they go through.
    #[arg(long, value_name = "FILE", requires = "http")]
    pub mutable_key: Option<std::path::PathBuf>,
}

/// Starts `n` full nodes on 127.0.0.1, `stagger` apart, each bootstrapping from the first.
pub async fn spawn_cluster(
    n: usize,
    base_port: u16,
    stagger: Duration,
    seed: u64,
) -> anyhow::Result<Vec<Dht>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut nodes: Vec<Dht> = Vec::with_capacity(n);
    for i in 0..n {
        let port = if base_port == 0 {
            0
        } else {
            base_port
                .checked_add(i as u16)
                .context("--base-port + --nodes exceeds 65535")?
        };
        let bind = SocketAddr::from(([127, 0, 0, 1], port));
        let bootstrap: Vec<String> = nodes
            .first()
            .map(|first| vec![first.local_addr().to_string()])
            .unwrap_or_default();
        let dht = Dht::builder()
            .bind(bind)
            .bootstrap(&bootstrap)
            .id(dht_node::proto::Id::random(&mut rng))
            .seed(rng.gen())
            .spawn()
            .await
            .with_context(|| format!("cannot start node {i} on {bind}"))?;
        nodes.push(dht);
        if i + 1 < n {
            tokio::time::sleep(stagger).await;
        }
    }
    Ok(nodes)
}

/// Waits until every node has at least `min(SETTLED_CONTACTS, n - 1)` contacts; returns how
/// long that took, or an error after `timeout`.
pub async fn wait_settled(nodes: &[Dht], timeout: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let need = SETTLED_CONTACTS.min(nodes.len().saturating_sub(1));
    let mut settled = vec![false; nodes.len()];
    while start.elapsed() < timeout {
        for (i, d) in nodes.iter().enumerate() {
            if !settled[i] && d.status().await?.contacts >= need {
                settled[i] = true;
            }
        }
        if settled.iter().all(|s| *s) {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
    let missing = settled.iter().filter(|s| !**s).count();
    bail!("{missing} nodes still had fewer than {need} contacts after {timeout:?}")
}

/// The value at quantile `q` (0..=1) of sorted durations, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Runs the devnet.
pub async fn run(args: DevnetArgs) -> anyhow::Result<ExitCode> {
    let n = args.nodes as usize;
    let signing_key =
        super::node::http_settings(args.http, args.http_public, args.mutable_key.as_ref())?;
    // With --http the devnet runs until a signal: its handlers go in before anything is
    // printed, so a signal right after the URL stops it cleanly.
    let early_stop = if args.http.is_some() {
        Some(super::node::shutdown_signal()?)
    } else {
        None
    };
    let listener = match args.http {
        Some(addr) => Some(crate::http::bind(addr).await?),
        None => None,
    };
    eprintln!("starting {n} nodes on 127.0.0.1 ...");
    let nodes = spawn_cluster(n, args.base_port, Duration::from_millis(5), args.seed).await?;
    let settle = wait_settled(&nodes, Duration::from_secs(60)).await?;
    println!(
        "devnet: {n} nodes settled in {} ms; bootstrap address {}",
        settle.as_millis(),
        nodes[0].local_addr()
    );
    println!("try: DHT_BOOTSTRAP={} dht put hello", nodes[0].local_addr());
    let server = match listener {
        Some(l) => {
            println!(
                "http api on {} (all {n} nodes; ?node=0..{} picks one)",
                crate::http::url(l.local_addr()?),
                n - 1
            );
            let state = crate::http::AppState::new(nodes.clone(), signing_key);
            Some(tokio::spawn(crate::http::serve(
                l,
                state,
                std::future::pending(),
            )))
        }
        None => None,
    };
    {
        use std::io::Write;
        std::io::stdout().flush()?;
    }
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x5eed);
    let (mut put_lat, mut get_lat) = (Vec::new(), Vec::new());
    let (mut puts_ok, mut gets_ok, mut gets) = (0u32, 0u32, 0u32);
    for p in 0..args.puts {
        let value = format!("devnet value {p}");
        let encoded = format!("{}:{}", value.len(), value).into_bytes();
        let from = rng.gen_range(0..n);
        let t = Instant::now();
        let r = nodes[from].put_immutable(encoded.clone()).await?;
        put_lat.push(t.elapsed());
        if r.stored_at > 0 {
            puts_ok += 1;
        }
        for _ in 0..2 {
            let mut at = rng.gen_range(0..n);
            if at == from {
                at = (at + 1) % n;
            }
            let t = Instant::now();
            let g = nodes[at].get_immutable(r.target).await?;
            get_lat.push(t.elapsed());
            gets += 1;
            if g.value.as_deref() == Some(&encoded[..]) {
                gets_ok += 1;
            }
        }
        if p < 3 {
            println!(
                "put {:?} from node {from}: key {} stored at {} nodes",
                value, r.target, r.stored_at
            );
        }
    }
    put_lat.sort();
    get_lat.sort();
    println!(
        "puts: {puts_ok}/{} stored, p50 {:.2} ms, p95 {:.2} ms",
        args.puts,
        quantile_ms(&put_lat, 0.5),
        quantile_ms(&put_lat, 0.95)
    );
    println!(
        "gets: {gets_ok}/{gets} found from other nodes ({:.1}%), p50 {:.2} ms, p95 {:.2} ms",
        100.0 * gets_ok as f64 / gets.max(1) as f64,
        quantile_ms(&get_lat, 0.5),
        quantile_ms(&get_lat, 0.95)
    );
    let ok = gets_ok == gets && puts_ok == args.puts;
    // Without --http the handlers go in only now, as they always did: a signal during the
    // demonstration ends the process at once.
    let stop = match early_stop {
        Some(stop) => Some(stop),
        None if !args.exit => Some(super::node::shutdown_signal()?),
        None => None,
    };
    if let Some(stop) = stop {
        println!("serving until Ctrl-C");
        {
            use std::io::Write;
            std::io::stdout().flush()?;
        }
        stop.await?;
    }
    if let Some(s) = server {
        s.abort();
        let _ = s.await;
    }
    for d in &nodes {
        d.shutdown().await;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
