//! `dht node`: run one node until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
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
}

/// The platform's user data directory for the node.
fn default_data_dir() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("", "", "dht")
        .map(|p| p.data_dir().to_path_buf())
        .context("no user data directory on this platform: pass --data-dir")
}

/// Runs the node until a signal asks it to stop.
pub async fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let routers: Vec<String> = if args.bootstrap.is_empty() {
        DEFAULT_ROUTERS.iter().map(|s| s.to_string()).collect()
    } else {
        args.bootstrap
    };
    let config = dht_proto::node::Config {
        enforce_bep42: args.enforce_bep42,
        ..Default::default()
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
        out.flush()?;
    }
    tracing::info!(data_dir = %data_dir.display(), "serving; stop with Ctrl-C or SIGTERM");
    wait_for_signal().await?;
    tracing::info!("stopping");
    dht.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
