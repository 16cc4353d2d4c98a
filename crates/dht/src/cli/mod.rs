//! The subcommands that run real nodes: `node`, the short-lived clients, `devnet`, `bench`.

pub mod bench;
pub mod client;
pub mod devnet;
pub mod load;
pub mod node;

use std::future::Future;
use std::process::ExitCode;

/// Logs go to stderr through `tracing`, filtered by RUST_LOG; the default is `warn` for
/// commands whose stdout is their result, `info` for long-running ones.
pub fn init_logging(quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Runs a command's future on a multi-threaded tokio runtime.
pub fn run_async(f: impl Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}
