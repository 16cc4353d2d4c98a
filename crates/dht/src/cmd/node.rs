//! `dht node`: run one node until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use dht_node::proto::RateLimit;
use dht_node::proto::UPLOAD_BYTES_PER_SECOND;
use dht_node::{Dht, DEFAULT_ROUTERS};

/// `dht node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// UDP address to listen on.
    #[arg(long, default_value = "0.0.0.0:6881")]
    pub bind: SocketAddr,
    /// Where the node keeps its identity, data and routing table [default: the platform's user
    /// data directory].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Bootstrap node(s), HOST:PORT, repeatable or comma-separated [default: $DHT_BOOTSTRAP,
    /// else the public Mainline routers].
    #[arg(long, short = 'b', env = "DHT_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Vec<String>,
    /// Refuse contacts whose node ID does not match their IP address (BEP 42).
    #[arg(long)]
    pub enforce_bep42: bool,
    /// Queries per second one source IP may send on average (0 turns the limit off). A source
    /// may send ten seconds' worth at once; one that goes on past that is ignored for five
    /// minutes (libtorrent's defaults). Loopback and private addresses are exempt unless
    /// --limit-local is given.
    #[arg(long, value_name = "PER_SECOND", default_value_t = RateLimit::default().per_second)]
    pub rate_limit: u32,
    /// Apply the per-source limit and the upload limit to loopback and private addresses too.
    #[arg(long)]
    pub limit_local: bool,
    /// Run each lookup this node starts for a user (get, put, announce, peers, lookup, and
    /// republishing) on D disjoint paths that never share a node (S/Kademlia); 1 is the
    /// plain lookup.
    #[arg(long, value_name = "D", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=dht_node::proto::PATHS_MAX as i64))]
    pub paths: u8,
    /// Bytes per second that the node's answers and its own upkeep may send (0: no limit).
    /// The requests of commands you run are not counted.
    #[arg(long, value_name = "BYTES_PER_SECOND", default_value_t = UPLOAD_BYTES_PER_SECOND)]
    pub upload_limit: u64,
    /// Serve the HTTP API, /metrics and the dashboard on this TCP address (port 0: any free
    /// port; the URL is printed). Off unless given. See docs/http.md.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Allow --http on an address other than loopback. Whoever reaches it can make the node
    /// look up, store, announce and (with --mutable-key) sign; the API has no authentication.
    #[arg(long, requires = "http")]
    pub http_public: bool,
    /// A key file from `dht keygen` with which the API signs mutable puts that come without a
    /// signature (PUT /api/v1/mutable).
    #[arg(long, value_name = "FILE", requires = "http")]
    pub mutable_key: Option<PathBuf>,
}

/// The per-source limit for `--rate-limit PER_SECOND`: a burst of ten seconds' worth, and a
/// block after as many queries again refused.
fn rate_limit(per_second: u32) -> RateLimit {
    let burst = per_second.saturating_mul(10);
    RateLimit {
        per_second,
        burst,
        block_after: burst,
        ..RateLimit::default()
    }
}

/// The platform's user data directory for the node.
fn default_data_dir() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("", "", "dht")
        .map(|p| p.data_dir().to_path_buf())
        .context("no user data directory on this platform: pass --data-dir")
}

/// Checks `--http ADDR` against `--http-public` (a refused address is a usage error) and reads
/// the `--mutable-key` the API signs with; shared by `dht node` and `dht devnet`.
pub fn http_settings(
    http: Option<SocketAddr>,
    public: bool,
    mutable_key: Option<&PathBuf>,
) -> anyhow::Result<Option<ed25519_dalek::SigningKey>> {
    if let Some(addr) = http {
        crate::http::check_http_addr(addr, public)
            .map_err(|e| anyhow::Error::new(super::client::UsageError(e)))?;
    }
    mutable_key.map(super::client::read_key).transpose()
}

/// Runs the node until a signal asks it to stop.
pub async fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let signing_key = http_settings(args.http, args.http_public, args.mutable_key.as_ref())?;
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let routers: Vec<String> = if args.bootstrap.is_empty() {
        DEFAULT_ROUTERS.iter().map(|s| s.to_string()).collect()
    } else {
        args.bootstrap
    };
    let config = dht_node::proto::Config {
        enforce_bep42: args.enforce_bep42,
        rate_limit: rate_limit(args.rate_limit),
        limit_local: args.limit_local,
        upload_bytes_per_second: args.upload_limit,
        disjoint_paths: args.paths as usize,
        ..Default::default()
    };
    let stop = shutdown_signal()?;
    // Bound before the node starts, so a taken port stops the command before the data
    // directory is opened.
    let listener = match args.http {
        Some(addr) => Some(crate::http::bind(addr).await?),
        None => None,
    };
    let dht = Dht::builder()
        .bind(args.bind)
        .data_dir(&data_dir)
        .bootstrap(&routers)
        .config(config)
        .spawn()
        .await
        .with_context(|| {
            format!(
                "cannot start the node (data directory {})",
                data_dir.display()
            )
        })?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "node {} listening on {}", dht.id(), dht.local_addr())?;
        if let Some(l) = &listener {
            writeln!(out, "http api on {}", crate::http::url(l.local_addr()?))?;
        }
        out.flush()?;
    }
    let server = listener.map(|l| {
        let state = crate::http::AppState::new(vec![dht.clone()], signing_key);
        tokio::spawn(crate::http::serve(l, state, std::future::pending()))
    });
    tracing::info!(data_dir = %data_dir.display(), "serving; stop with Ctrl-C or SIGTERM");
    tokio::select! {
        r = stop => r?,
        _ = report_drops(&dht) => {}
    }
    tracing::info!("stopping");
    // The server holds a handle of the node; it stops first, so the node's last handle goes.
    if let Some(s) = server {
        s.abort();
        let _ = s.await;
    }
    dht.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Logs, once a minute, what the defences dropped in that minute (nothing when nothing was).
async fn report_drops(dht: &Dht) {
    let mut last = dht_node::proto::NodeStats::default();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        let Ok(status) = dht.status().await else {
            return;
        };
        let s = status.stats;
        let rate_limited = s.rate_limited - last.rate_limited;
        let blocked = s.blocked_dropped - last.blocked_dropped;
        let upload = s.upload_dropped - last.upload_dropped;
        let malformed = s.malformed - last.malformed;
        if rate_limited + blocked + upload + malformed > 0 {
            tracing::info!(
                rate_limited,
                blocked,
                sources_blocked = s.sources_blocked,
                upload_dropped = upload,
                malformed,
                "dropped in the last minute"
            );
        }
        last = s;
    }
}

/// Installs the SIGINT and SIGTERM handlers now (so a signal that comes before the returned
/// future is first polled still stops the program cleanly), and returns a future that ends at
/// the first of them.
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            Ok(())
        })
    }
    #[cfg(not(unix))]
    Ok(async { Ok(tokio::signal::ctrl_c().await?) })
}
