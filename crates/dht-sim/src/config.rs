//! A run's parameters: what the command line sets, and what is derived from it.

use crate::world::churn::Churn;

/// Joins per virtual second while the network grows, unless `warmup` is given.
pub const GROW_JOINS_PER_S: f64 = 1000.0;

/// Shortest growth phase, in virtual seconds.
pub const GROW_MIN_S: f64 = 60.0;

/// Time the grown network runs without workload before measurement starts, in seconds.
pub const SETTLE_S: f64 = 300.0;

/// Interval at which the publisher of an item re-puts it (BEP 44: items may expire after two
/// hours and should be re-announced once an hour), in seconds.
pub const REPUBLISH_S: f64 = 3600.0;

/// The workload stops issuing commands this long before the end, so every command issued
/// has time to finish and be judged, in seconds (the default of
/// [`SimConfig::workload_tail_s`]; searches that may run longer need more).
pub const WORKLOAD_TAIL_S: f64 = 120.0;

/// Per-overlay knobs that `dht sim` exposes; each overlay reads the ones that concern it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct OverlayKnobs {
    /// CAN: dimensions d of the torus (the paper's default 2).
    pub can_d: usize,
    /// Flooding: hops a query travels at most.
    pub ttl: u32,
    /// Random walk: walkers per search.
    pub walkers: u32,
    /// Random walk: steps a walker takes at most.
    pub walk_len: u32,
    /// Flooding and random walk: copies of each searched item, as a number of nodes (`None`:
    /// [`OverlayKnobs::replicas_fraction`] decides).
    pub replicas: Option<u32>,
    /// Flooding and random walk: copies as a fraction of the nodes (Lv et al.: 1%), used when
    /// `replicas` is `None`; at least one copy.
    pub replicas_fraction: f64,
    /// Flooding and random walk: build the static graph with power-law degrees of this
    /// exponent (Lv et al.'s PLRG) instead of the fixed-degree random graph (`None`).
    pub power_law: Option<f64>,
}

impl Default for OverlayKnobs {
    fn default() -> Self {
        OverlayKnobs {
            can_d: 2,
            ttl: 4,
            walkers: 16,
            walk_len: 1024,
            replicas: None,
            replicas_fraction: 0.01,
            power_law: None,
        }
    }
}

impl OverlayKnobs {
    /// Copies of each searched item in a network of `nodes` nodes.
    pub fn replicas_for(&self, nodes: u32) -> u32 {
        match self.replicas {
            Some(r) => r.max(1),
            None => ((nodes as f64 * self.replicas_fraction).round() as u32).max(1),
        }
    }

    /// Parses a `--replicas` value: a count (`1`, `41`) or a percentage of the nodes (`1%`).
    pub fn parse_replicas(spec: &str) -> Result<(Option<u32>, f64), String> {
        if let Some(p) = spec.strip_suffix('%') {
            let f: f64 = p
                .trim()
                .parse()
                .map_err(|e| format!("--replicas {spec:?}: {e}"))?;
            if !(0.0..=100.0).contains(&f) {
                return Err(format!("--replicas {spec:?}: a percentage within 0..=100"));
            }
            Ok((None, f / 100.0))
        } else {
            let r: u32 = spec
                .trim()
                .parse()
                .map_err(|e| format!("--replicas {spec:?}: expected a count or N%: {e}"))?;
            Ok((Some(r.max(1)), 0.0))
        }
    }

    /// The `--replicas` flag that gives these copies.
    pub fn replicas_spec(&self) -> String {
        match self.replicas {
            Some(r) => r.to_string(),
            None => format!("{}%", self.replicas_fraction * 100.0),
        }
    }
}

/// Parameters of one simulation run. Every field, with the seed, fixes the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimConfig {
    /// The seed from which everything random is derived.
    pub seed: u64,
    /// Target number of live nodes.
    pub nodes: u32,
    /// Lookups of random keys to issue during the measured phase.
    pub lookups: u64,
    /// Items to put during the measured phase (each then republished hourly).
    pub puts: u64,
    /// Gets of random stored items to issue during the measured phase.
    pub gets: u64,
    /// Fraction of the items that are mutable (their republishes bump `seq`).
    pub mutable_fraction: f64,
    /// The churn profile.
    pub churn: Churn,
    /// The churn profile as given on the command line, for the replay command.
    pub churn_spec: String,
    /// Per-message loss probability.
    pub loss: f64,
    /// Length of the measured phase, in virtual seconds.
    pub duration_s: u64,
    /// Length of the growth and settling phase before it, in virtual seconds (`None`: derived
    /// from the number of nodes).
    pub warmup_s: Option<u64>,
    /// Build the network with the overlay's `converge` shortcut when it has one, instead of
    /// joins.
    pub converge: bool,
    /// A partition, as `FRACTION@START+DURATION` seconds into the measured phase.
    pub partition: Option<String>,
    /// A mass failure, as `FRACTION@TIME` seconds into the measured phase: that fraction of the
    /// live nodes vanishes at once and never comes back.
    pub mass_failure: Option<String>,
    /// Interval of the item checks (a get of every stored item), in seconds; `None`: none.
    pub check_interval_s: Option<u64>,
    /// Owners per key for recall at k (Mainline's k = 8).
    pub k: usize,
    /// Fail the run if the lookup success rate is below this.
    pub min_lookup_success: Option<f64>,
    /// Fail the run if the get success rate (correct / started) is below this.
    pub min_get_success: Option<f64>,
    /// The workload stops issuing commands this many seconds before the end.
    pub workload_tail_s: f64,
    /// Per-overlay knobs.
    pub knobs: OverlayKnobs,
    /// Adversaries among the nodes (Kademlia only; see [`crate::adversary`]).
    pub adversary: Option<crate::adversary::AdversaryConfig>,
    /// Disjoint paths of Kademlia's lookups (S/Kademlia's d; 1 = the plain lookup).
    pub disjoint_paths: usize,
    /// Kademlia nodes at public addresses, adversaries sharing /24s, so that the routing
    /// table's per-subnet limits apply (see `overlays::kademlia::public_addr_of`).
    pub ip_diversity: bool,
    /// Kademlia: proximity neighbour selection in the routing tables
    /// (`dht_proto::routing::RoutingConfig::proximity`, on by default as in the node), and in
    /// the converged start's tables (see `overlays::kademlia::PROXIMITY_CANDIDATES`).
    pub proximity: bool,
    /// Show progress on stderr.
    #[serde(skip)]
    pub progress: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            nodes: 1000,
            lookups: 1000,
            puts: 0,
            gets: 0,
            mutable_fraction: 0.5,
            churn: Churn::NONE,
            churn_spec: "none".into(),
            loss: 0.0,
            duration_s: 600,
            warmup_s: None,
            converge: false,
            partition: None,
            mass_failure: None,
            check_interval_s: None,
            k: 8,
            min_lookup_success: None,
            min_get_success: None,
            workload_tail_s: WORKLOAD_TAIL_S,
            knobs: OverlayKnobs::default(),
            adversary: None,
            disjoint_paths: 1,
            ip_diversity: false,
            proximity: true,
            progress: false,
        }
    }
}

impl SimConfig {
    /// Virtual seconds spent growing the network by joins.
    pub fn grow_s(&self) -> f64 {
        match self.warmup_s {
            Some(w) => w as f64 * 0.5,
            None => (self.nodes as f64 / GROW_JOINS_PER_S).max(GROW_MIN_S),
        }
    }

    /// Virtual seconds from the start to the measured phase.
    pub fn warmup_total_s(&self) -> f64 {
        match self.warmup_s {
            Some(w) => w as f64,
            None => self.grow_s() + SETTLE_S,
        }
    }

    /// Parses the mass-failure spec `FRACTION@TIME`.
    pub fn mass_failure_parsed(&self) -> Result<Option<(f64, f64)>, String> {
        let Some(spec) = &self.mass_failure else {
            return Ok(None);
        };
        let (f, t) = spec
            .split_once('@')
            .ok_or_else(|| format!("mass failure {spec:?}: expected FRACTION@SECONDS"))?;
        let f: f64 = f
            .parse()
            .map_err(|e| format!("mass failure fraction: {e}"))?;
        let t: f64 = t.parse().map_err(|e| format!("mass failure time: {e}"))?;
        if !(0.0..=1.0).contains(&f) || t < 0.0 {
            return Err(format!("mass failure {spec:?}: out of range"));
        }
        Ok(Some((f, t)))
    }

    /// The one command that replays this run.
    pub fn replay_command(&self, overlay: &str) -> String {
        let mut c = format!(
            "dht sim --overlay {overlay} --nodes {} --seed {} --lookups {} --churn {} --loss {} --duration {}",
            self.nodes, self.seed, self.lookups, self.churn_spec, self.loss, self.duration_s
        );
        if self.puts > 0 {
            c += &format!(" --puts {}", self.puts);
        }
        if self.gets > 0 {
            c += &format!(" --gets {}", self.gets);
        }
        if let Some(w) = self.warmup_s {
            c += &format!(" --warmup {w}");
        }
        if self.converge {
            c += " --converge";
        }
        if let Some(p) = &self.partition {
            c += &format!(" --partition {p}");
        }
        if let Some(m) = &self.mass_failure {
            c += &format!(" --mass-failure {m}");
        }
        if let Some(i) = self.check_interval_s {
            c += &format!(" --check-interval {i}");
        }
        if let Some(s) = self.min_lookup_success {
            c += &format!(" --min-lookup-success {s}");
        }
        if let Some(s) = self.min_get_success {
            c += &format!(" --min-get-success {s}");
        }
        let (k, d) = (&self.knobs, OverlayKnobs::default());
        match overlay {
            "can" if k.can_d != d.can_d => c += &format!(" --can-d {}", k.can_d),
            "flooding" => c += &format!(" --ttl {} --replicas {}", k.ttl, k.replicas_spec()),
            "randomwalk" => {
                c += &format!(
                    " --walkers {} --walk-len {} --replicas {}",
                    k.walkers,
                    k.walk_len,
                    k.replicas_spec()
                )
            }
            _ => {}
        }
        if let (Some(a), "flooding" | "randomwalk") = (k.power_law, overlay) {
            c += &format!(" --power-law {a}");
        }
        if self.workload_tail_s != WORKLOAD_TAIL_S {
            c += &format!(" --workload-tail {}", self.workload_tail_s);
        }
        if let Some(a) = &self.adversary {
            c += &format!(
                " --adversary {} --adversary-fraction {}",
                a.kind.name(),
                a.fraction
            );
            if let Some(t) = a.target {
                c += &format!(" --adversary-target {t}");
            }
        }
        if self.disjoint_paths != 1 {
            c += &format!(" --disjoint-paths {}", self.disjoint_paths);
        }
        if self.ip_diversity {
            c += " --ip-diversity";
        }
        if !self.proximity {
            c += " --no-proximity";
        }
        c
    }
}
