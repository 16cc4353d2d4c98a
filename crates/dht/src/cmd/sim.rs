//! `dht sim`: one deterministic simulation run of an overlay.
//!
//! Prints the seed and every derived parameter first, runs with a progress bar on stderr,
//! then prints a short summary; `--json FILE` writes the report, `--plots DIR` the SVG plots.
//! Exit codes: 0 when every check passed, 3 on a correctness failure (a value that was never
//! put came back), 4 when a threshold was missed; a crash exits 1 (error) or 101 (panic). A
//! failing run prints the one command that replays it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use dht_sim::adversary::AdversaryConfig;
use dht_sim::config::{OverlayKnobs, WORKLOAD_TAIL_S};
use dht_sim::overlays::registry::{run_overlay, OVERLAYS};
use dht_sim::world::churn::Churn;
use dht_sim::{exit_code, Report, SimConfig};

/// Flags of `dht sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Overlay to run: kademlia, chord, pastry, can, onehop, flooding or randomwalk.
    #[arg(long, default_value = "kademlia", value_parser = parse_overlay)]
    pub overlay: String,
    /// CAN: dimensions of the torus.
    #[arg(long, default_value_t = 2)]
    pub can_d: usize,
    /// Flooding: hops a query travels at most.
    #[arg(long, default_value_t = 4)]
    pub ttl: u32,
    /// Random walk: walkers per search.
    #[arg(long, default_value_t = 16)]
    pub walkers: u32,
    /// Random walk: steps a walker takes at most.
    #[arg(long, default_value_t = 1024)]
    pub walk_len: u32,
    /// Flooding and random walk: give the static graph (with --converge) power-law degrees of
    /// this exponent in (2, 4], as Lv et al.'s PLRG (about 2.3), instead of a fixed degree.
    #[arg(long, value_name = "EXPONENT")]
    pub power_law: Option<f64>,
    /// Flooding and random walk: nodes holding each searched item, a count (1) or a percentage
    /// of the nodes (1%).
    #[arg(long, default_value = "1%")]
    pub replicas: String,
    /// Seconds before the end after which no workload command is issued (default 120; raised
    /// for random walks to outlast the longest walk).
    #[arg(long)]
    pub workload_tail: Option<f64>,
    /// Number of live nodes.
    #[arg(long, default_value_t = 1000)]
    pub nodes: u32,
    /// Lookups of random keys over the measured phase.
    #[arg(long, default_value_t = 1000)]
    pub lookups: u64,
    /// The seed that fixes everything.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Churn: none, 10%, 20%, 50%, bamboo (1.4-minute median sessions), or a rate per hour
    /// (a number below 1 is a fraction, e.g. 0.2; 1 or more is a percentage).
    #[arg(long, default_value = "none")]
    pub churn: String,
    /// Probability that a message is lost.
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Length of the measured phase, virtual seconds.
    #[arg(long, default_value_t = 600)]
    pub duration: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write SVG plots into this directory.
    #[arg(long)]
    pub plots: Option<PathBuf>,
    /// Items to put (each then republished hourly; half mutable, whose republishes bump seq).
    #[arg(long, default_value_t = 0)]
    pub puts: u64,
    /// Gets of random stored items.
    #[arg(long, default_value_t = 0)]
    pub gets: u64,
    /// Growth and settling before measurement, virtual seconds (default: from --nodes).
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Build the network in its converged state at once instead of growing it by joins (every
    /// overlay has the shortcut; Kademlia builds each routing table from the live IDs). Churn
    /// joins still join. Pair it with --warmup (for example 300) at large --nodes.
    #[arg(long)]
    pub converge: bool,
    /// A partition, FRACTION@START+DURATION (seconds into the measured phase).
    #[arg(long)]
    pub partition: Option<String>,
    /// A mass failure, FRACTION@SECONDS: that fraction of the nodes vanishes at once.
    #[arg(long)]
    pub mass_failure: Option<String>,
    /// Get every stored item every this many seconds and report what is retrievable.
    #[arg(long)]
    pub check_interval: Option<u64>,
    /// Fail (exit 4) if the lookup success rate is below this.
    #[arg(long)]
    pub min_lookup_success: Option<f64>,
    /// Fail (exit 4) if the get success rate is below this.
    #[arg(long)]
    pub min_get_success: Option<f64>,
    /// No progress on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Kademlia: make a fraction of the nodes adversaries (see docs/adversaries.md): drop
    /// (answer find_node and ping, drop every get, put and announce), eclipse (collude: answer
    /// every request for nodes with the adversaries closest to its target, never a value),
    /// targeted (eclipse with IDs placed around one key, and forged values for it), forge
    /// (answer gets with forged values and get_peers with false peers). Lookups and gets
    /// are then started only by honest nodes and judged against the closest honest nodes.
    #[arg(long, value_name = "KIND", value_parser = dht_sim::adversary::Kind::parse)]
    pub adversary: Option<dht_sim::adversary::Kind>,
    /// The fraction of the nodes that are adversaries, in (0, 1): 0.2 is 20%.
    #[arg(long, value_name = "F", default_value_t = 0.2, requires = "adversary")]
    pub adversary_fraction: f64,
    /// With --adversary targeted: the key the attack surrounds, 40 hex digits (default: the key of the workload's
    /// first item, which is then immutable; half the gets ask for it, and half the lookups
    /// look it up).
    #[arg(long, value_name = "KEY", value_parser = crate::cmd::client::id_arg, requires = "adversary")]
    pub adversary_target: Option<dht_sim::adversary::Key>,
    /// Kademlia: run every lookup on D disjoint paths that never share a node (S/Kademlia's
    /// d; 1 is the plain lookup, at most 16).
    #[arg(long, value_name = "D", default_value_t = 1)]
    pub disjoint_paths: usize,
    /// Kademlia: give the nodes public addresses, each honest node a /24 of its own and the
    /// adversaries packed about 256 indices to a /24 (as an attacker's rented hosts are), so
    /// that the routing table's limits of one contact per /24 per bucket and four per table
    /// apply (loopback addresses are exempt from them).
    #[arg(long)]
    pub ip_diversity: bool,
    /// Kademlia: turn off proximity neighbour selection (a newcomer that answers twice as fast
    /// as a full bucket's slowest timed contact takes its place; a converged table holds the
    /// fastest of four times as many nodes as it has places), which the node does by default.
    #[arg(long)]
    pub no_proximity: bool,
}

/// Parses an overlay name; the error lists the valid names (clap prints it on the usage line,
/// exit 2).
pub fn parse_overlay(name: &str) -> Result<String, String> {
    if OVERLAYS.contains(&name) {
        Ok(name.to_string())
    } else {
        Err(format!("valid overlays: {}", OVERLAYS.join(", ")))
    }
}

impl SimArgs {
    /// The run's configuration.
    pub fn config(&self) -> anyhow::Result<SimConfig> {
        let churn = Churn::parse(&self.churn).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.loss),
            "--loss must be within 0..=1"
        );
        let (replicas, replicas_fraction) =
            OverlayKnobs::parse_replicas(&self.replicas).map_err(anyhow::Error::msg)?;
        let knobs = OverlayKnobs {
            can_d: self.can_d,
            ttl: self.ttl,
            walkers: self.walkers,
            walk_len: self.walk_len,
            replicas,
            replicas_fraction,
            power_law: self.power_law,
        };
        Ok(SimConfig {
            seed: self.seed,
            nodes: self.nodes,
            lookups: self.lookups,
            puts: self.puts,
            gets: self.gets,
            churn,
            churn_spec: self.churn.clone(),
            loss: self.loss,
            duration_s: self.duration,
            warmup_s: self.warmup,
            converge: self.converge,
            partition: self.partition.clone(),
            mass_failure: self.mass_failure.clone(),
            check_interval_s: self.check_interval,
            min_lookup_success: self.min_lookup_success,
            min_get_success: self.min_get_success,
            progress: !self.quiet,
            knobs,
            workload_tail_s: self.workload_tail.unwrap_or(WORKLOAD_TAIL_S),
            adversary: self.adversary.map(|kind| AdversaryConfig {
                kind,
                fraction: self.adversary_fraction,
                target: self.adversary_target,
            }),
            disjoint_paths: self.disjoint_paths,
            ip_diversity: self.ip_diversity,
            proximity: !self.no_proximity,
            ..SimConfig::default()
        })
    }
}

/// Runs `dht sim`.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    if !OVERLAYS.contains(&args.overlay.as_str()) {
        anyhow::bail!(
            "unknown overlay {:?}; valid overlays: {}",
            args.overlay,
            OVERLAYS.join(", ")
        );
    }
    let cfg = args.config()?;
    let report = run_overlay(&args.overlay, cfg, &mut |p| print!("{p}"))?;
    print!("{}", report.summary());
    write_outputs(&report, args.json.as_ref(), args.plots.as_ref())?;
    Ok(ExitCode::from(exit_code(&report)))
}

/// Writes the JSON report and the plots where asked.
pub fn write_outputs(
    report: &Report,
    json: Option<&PathBuf>,
    plots: Option<&PathBuf>,
) -> anyhow::Result<()> {
    if let Some(path) = json {
        std::fs::write(path, report.to_json() + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = plots {
        let files = dht_sim::output::plots::write_report_plots(report, dir)
            .map_err(|e| anyhow::anyhow!("plotting into {}: {e}", dir.display()))?;
        for f in files {
            println!("plot: {}", f.display());
        }
    }
    Ok(())
}
