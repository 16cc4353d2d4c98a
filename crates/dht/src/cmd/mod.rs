//! The `dht` subcommands, one file each: `node`, the short-lived clients, `devnet` and `bench`
//! run real nodes; `sim` and `compare` run the simulator.

pub mod bench;
pub mod client;
pub mod compare;
pub mod compare_plots;
pub mod devnet;
pub mod draw;
pub mod malloc_tunables;
pub mod node;
pub mod sim;

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
///
/// Once the command is done the runtime is shut down without waiting for blocking work it no
/// longer needs: a bootstrap host name whose lookup timed out leaves `getaddrinfo` running on a
/// blocking thread, and dropping the runtime would wait for it (on a machine without DNS, for
/// longer than a signal-stopped node may take to exit).
pub fn run_async(f: impl Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let out = rt.block_on(f);
    rt.shutdown_background();
    out
}
