//! The `dht` command: run a Mainline DHT node, put and get values, look up the network's
//! structure, run a local devnet, benchmark, and simulate.

mod cmd;
mod http;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A Kademlia DHT node that speaks BitTorrent's Mainline DHT protocol, with a simulator.
#[derive(Parser)]
#[command(name = "dht", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node until SIGINT or SIGTERM.
    Node(cmd::node::NodeArgs),
    /// Store a value (immutable, or signed mutable with --mutable) and print its key.
    Put(cmd::client::PutArgs),
    /// Fetch a value by its key and write it to stdout.
    Get(cmd::client::GetArgs),
    /// Make an ed25519 key for mutable items and print its public key.
    Keygen(cmd::client::KeygenArgs),
    /// Announce that a peer of a torrent listens on a port.
    Announce(cmd::client::AnnounceArgs),
    /// Print the peers of a torrent, one ip:port a line.
    Peers(cmd::client::PeersArgs),
    /// Look up a target and print the lookup's path round by round.
    Lookup(cmd::client::LookupArgs),
    /// Run N nodes on 127.0.0.1 in one process and demonstrate puts and gets.
    Devnet(cmd::devnet::DevnetArgs),
    /// Benchmark a loopback cluster: puts, gets, datagrams, memory.
    Bench(cmd::bench::BenchArgs),
    /// Simulate an overlay on virtual time (churn, loss, latency) and report.
    Sim(cmd::sim::SimArgs),
    /// Run every overlay side by side and write a comparison table and plots.
    Compare(cmd::compare::CompareArgs),
    /// Draw one search in one overlay as SVG (or every overlay side by side with --compare).
    Draw(cmd::draw::DrawArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version print to stdout and succeed.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // A usage error: one plain line on stderr, exit 2.
            let rendered = e.render().to_string();
            let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut text = lines.next().unwrap_or("invalid arguments").to_string();
            // "the following required arguments were not provided:" names them on the next line.
            if text.ends_with(':') {
                if let Some(next) = lines.next() {
                    text = format!("{text} {next}");
                }
            }
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            eprintln!("dht: {text} (see dht --help)");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, Command::Sim(_) | Command::Compare(_)) {
        cmd::malloc_tunables::reexec_with_malloc_tunables();
    }
    let quiet_default = !matches!(cli.command, Command::Node(_));
    cmd::init_logging(quiet_default);
    let result = match cli.command {
        Command::Node(a) => cmd::run_async(cmd::node::run(a)),
        Command::Put(a) => cmd::run_async(cmd::client::put(a)),
        Command::Get(a) => cmd::run_async(cmd::client::get(a)),
        Command::Keygen(a) => cmd::client::keygen(a),
        Command::Announce(a) => cmd::run_async(cmd::client::announce(a)),
        Command::Peers(a) => cmd::run_async(cmd::client::peers(a)),
        Command::Lookup(a) => cmd::run_async(cmd::client::lookup(a)),
        Command::Devnet(a) => cmd::run_async(cmd::devnet::run(a)),
        Command::Bench(a) => cmd::run_async(cmd::bench::run(a)),
        Command::Sim(a) => cmd::sim::run(a),
        Command::Compare(a) => cmd::compare::run(a),
        Command::Draw(a) => cmd::draw::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dht: {e:#}");
            if e.downcast_ref::<cmd::client::UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
