//! The virtual network: a synthetic geography that gives every pair of nodes a one-way latency,
//! per-message jitter, packet loss, and partitions.
//!
//! # Model
//!
//! Each node gets, from the seed and its index alone, a home continent and a point near that
//! continent's centre on a cylinder whose coordinates are milliseconds of one-way propagation
//! (x wraps around at [`WORLD_CIRCUMFERENCE_MS`], so the Pacific is crossed both ways), plus an
//! access delay for its last mile. The one-way delay of a message from `a` to `b` is
//!
//! ```text
//! one_way(a, b) = BASE_MS + access(a) + access(b) + dist(pos(a), pos(b)) + jitter
//! jitter        ~ Exponential(mean = JITTER_FRACTION * (one_way without jitter))
//! ```
//!
//! where `dist` is the Euclidean distance on the cylinder. The continents, their weights and
//! spreads are in [`CONTINENTS`]; they put one-way delays between about 5 ms (same city) and
//! 250 ms (far side of the world, slow access links), with the median round trip printed by
//! `dht sim` at start (about 130 ms, see docs/simulator.md), close to what measurements of
//! the Internet report. Nothing is stored per pair: a latency is computed from the two
//! positions when a message is sent, so memory grows with the number of nodes only.
//!
//! Loss is independent per message with probability `loss`. A partition cuts a fixed fraction
//! of the nodes (chosen by hashing their index with the seed) off from the rest for an interval:
//! messages crossing the cut are dropped.

use core::time::Duration;

use crate::overlays::overlay::{Delays, NodeIdx};
use crate::rng::{mix3, unit_f64, SimRng};

/// Circumference of the world cylinder, in milliseconds of one-way propagation.
pub const WORLD_CIRCUMFERENCE_MS: f64 = 200.0;

/// Fixed per-message delay (serialisation, first router), in milliseconds.
pub const BASE_MS: f64 = 1.0;

/// Mean of the exponential access (last-mile) delay added on top of [`ACCESS_MIN_MS`].
pub const ACCESS_MEAN_MS: f64 = 6.0;

/// Smallest access delay, in milliseconds.
pub const ACCESS_MIN_MS: f64 = 1.0;

/// Largest access delay, in milliseconds (a slow mobile link); bounds the tail.
pub const ACCESS_MAX_MS: f64 = 60.0;

/// Mean jitter as a fraction of the message's base one-way delay.
pub const JITTER_FRACTION: f64 = 0.05;

/// A continent: centre (x, y) in milliseconds, share of the nodes, and spread (standard
/// deviation of the offset from the centre on each axis, in milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct Continent {
    /// Name, for the printed parameters.
    pub name: &'static str,
    /// Centre, x (wraps around the cylinder).
    pub x_ms: f64,
    /// Centre, y.
    pub y_ms: f64,
    /// Fraction of the nodes living here.
    pub weight: f64,
    /// Standard deviation of a node's offset from the centre on each axis.
    pub spread_ms: f64,
}

/// The synthetic geography. Weights are roughly the share of BitTorrent DHT nodes by region.
pub const CONTINENTS: [Continent; 6] = [
    Continent {
        name: "north-america",
        x_ms: 0.0,
        y_ms: 0.0,
        weight: 0.22,
        spread_ms: 10.0,
    },
    Continent {
        name: "south-america",
        x_ms: 15.0,
        y_ms: -50.0,
        weight: 0.08,
        spread_ms: 8.0,
    },
    Continent {
        name: "europe",
        x_ms: 45.0,
        y_ms: 5.0,
        weight: 0.32,
        spread_ms: 7.0,
    },
    Continent {
        name: "africa",
        x_ms: 55.0,
        y_ms: -45.0,
        weight: 0.04,
        spread_ms: 10.0,
    },
    Continent {
        name: "asia",
        x_ms: 110.0,
        y_ms: 25.0,
        weight: 0.29,
        spread_ms: 12.0,
    },
    Continent {
        name: "oceania",
        x_ms: 125.0,
        y_ms: -35.0,
        weight: 0.05,
        spread_ms: 6.0,
    },
];

/// Stream labels for [`mix3`], so each derived property has its own independent hash.
const STREAM_POSITION: u64 = 1;
const STREAM_PARTITION: u64 = 2;

/// A partition: the nodes whose hashed index falls below `fraction` are cut off from the others
/// between `start` and `end` (microseconds of virtual time).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Partition {
    /// Fraction of the nodes on the cut-off side.
    pub fraction: f64,
    /// Start, virtual microseconds.
    pub start_us: u64,
    /// End, virtual microseconds.
    pub end_us: u64,
}

impl Partition {
    /// Parses `FRACTION@START+DURATION` (seconds, counted from the start of the measured phase
    /// once `offset_us` is added), e.g. `0.3@600+300`.
    pub fn parse(spec: &str, offset_us: u64) -> Result<Partition, String> {
        let (fraction, rest) = spec
            .split_once('@')
            .ok_or_else(|| format!("partition {spec:?}: expected FRACTION@START+DURATION"))?;
        let (start, dur) = rest
            .split_once('+')
            .ok_or_else(|| format!("partition {spec:?}: expected FRACTION@START+DURATION"))?;
        let fraction: f64 = fraction
            .parse()
            .map_err(|e| format!("partition fraction: {e}"))?;
        let start: f64 = start.parse().map_err(|e| format!("partition start: {e}"))?;
        let dur: f64 = dur
            .parse()
            .map_err(|e| format!("partition duration: {e}"))?;
        if !(0.0..=1.0).contains(&fraction) || start < 0.0 || dur < 0.0 {
            return Err(format!("partition {spec:?}: out of range"));
        }
        let start_us = offset_us + (start * 1e6) as u64;
        Ok(Partition {
            fraction,
            start_us,
            end_us: start_us + (dur * 1e6) as u64,
        })
    }
}

/// A node's fixed place in the geography: 12 bytes per node.
#[derive(Debug, Clone, Copy, Default)]
struct Place {
    x: f32,
    y: f32,
    access: f32,
}

/// The network model of one run.
#[derive(Debug)]
pub struct Network {
    seed: u64,
    /// Places by node index, appended as nodes are created.
    places: Vec<Place>,
    /// Per-message loss probability.
    pub loss: f64,
    /// The partition, if the run has one.
    pub partition: Option<Partition>,
}

impl Network {
    /// A network for `seed` with loss probability `loss`.
    pub fn new(seed: u64, loss: f64, partition: Option<Partition>) -> Self {
        Network {
            seed,
            places: Vec::new(),
            loss,
            partition,
        }
    }

    /// Makes sure nodes `0..=idx` have places (each derived from the seed and its index only).
    pub fn ensure(&mut self, idx: NodeIdx) {
        while self.places.len() <= idx as usize {
            let i = self.places.len() as u64;
            self.places.push(place_of(self.seed, i));
        }
    }

    /// The one-way delay from `a` to `b` without jitter.
    pub fn base_delay(&self, a: NodeIdx, b: NodeIdx) -> Duration {
        Duration::from_micros((self.base_ms(a, b) * 1000.0) as u64)
    }

    /// A hint to load node `idx`'s place, which the next message it sends or is sent reads.
    pub fn prefetch(&self, idx: NodeIdx) {
        if let Some(p) = self.places.get(idx as usize) {
            crate::engine::prefetch::prefetch(p as *const Place);
        }
    }

    fn base_ms(&self, a: NodeIdx, b: NodeIdx) -> f64 {
        let pa = self.places.get(a as usize).copied().unwrap_or_default();
        let pb = self.places.get(b as usize).copied().unwrap_or_default();
        let mut dx = (pa.x - pb.x).abs() as f64;
        if dx > WORLD_CIRCUMFERENCE_MS / 2.0 {
            dx = WORLD_CIRCUMFERENCE_MS - dx;
        }
        let dy = (pa.y - pb.y) as f64;
        BASE_MS + pa.access as f64 + pb.access as f64 + (dx * dx + dy * dy).sqrt()
    }

    /// The fate of one message sent at `now_us` from `a` to `b`: its delivery delay, or `None`
    /// if the network drops it.
    pub fn transit(
        &self,
        rng: &mut SimRng,
        now_us: u64,
        a: NodeIdx,
        b: NodeIdx,
    ) -> Option<Duration> {
        if rng.chance(self.loss) || self.cut(now_us, a, b) {
            return None;
        }
        let base = self.base_ms(a, b);
        let ms = base + rng.exp(base * JITTER_FRACTION);
        Some(Duration::from_micros((ms * 1000.0) as u64))
    }

    /// Whether the partition separates `a` from `b` at `now_us`.
    pub fn cut(&self, now_us: u64, a: NodeIdx, b: NodeIdx) -> bool {
        match self.partition {
            Some(p) if now_us >= p.start_us && now_us < p.end_us => {
                self.in_cut_side(a, p.fraction) != self.in_cut_side(b, p.fraction)
            }
            _ => false,
        }
    }

    fn in_cut_side(&self, idx: NodeIdx, fraction: f64) -> bool {
        unit_f64(mix3(self.seed, STREAM_PARTITION, idx as u64)) < fraction
    }

    /// Median round-trip time over `samples` random pairs drawn from the first `n` places, in
    /// milliseconds (a derived parameter printed at start).
    pub fn median_rtt_ms(&mut self, n: u32, samples: usize, rng: &mut SimRng) -> f64 {
        if n < 2 {
            return 0.0;
        }
        self.ensure(n - 1);
        let mut rtts: Vec<f64> = (0..samples)
            .map(|_| {
                let a = rng.below(n as u64) as NodeIdx;
                let b = rng.below(n as u64) as NodeIdx;
                2.0 * self.base_ms(a, b)
            })
            .collect();
        rtts.sort_by(f64::total_cmp);
        rtts.get(rtts.len() / 2).copied().unwrap_or(0.0)
    }

    /// Heap bytes the model holds.
    pub fn heap_bytes(&self) -> usize {
        self.places.capacity() * core::mem::size_of::<Place>()
    }
}

/// The place of node `i`, a pure function of the seed and the index.
fn place_of(seed: u64, i: u64) -> Place {
    let mut r = SimRng::new(mix3(seed, STREAM_POSITION, i));
    let pick = r.unit();
    let mut acc = 0.0;
    let mut c = CONTINENTS[CONTINENTS.len() - 1];
    for cont in CONTINENTS {
        acc += cont.weight;
        if pick < acc {
            c = cont;
            break;
        }
    }
    let x = (c.x_ms + c.spread_ms * r.normal()).rem_euclid(WORLD_CIRCUMFERENCE_MS);
    let y = c.y_ms + c.spread_ms * r.normal();
    let access = (ACCESS_MIN_MS + r.exp(ACCESS_MEAN_MS)).min(ACCESS_MAX_MS);
    Place {
        x: x as f32,
        y: y as f32,
        access: access as f32,
    }
}

/// The converged start's delays are the model's, without jitter; a place is loaded ahead.
impl Delays for Network {
    fn delay(&self, a: NodeIdx, b: NodeIdx) -> Duration {
        self.base_delay(a, b)
    }

    fn prefetch(&self, b: NodeIdx) {
        Network::prefetch(self, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_rtt_is_internet_like() {
        let mut net = Network::new(7, 0.0, None);
        let mut rng = SimRng::new(1);
        let m = net.median_rtt_ms(10_000, 20_000, &mut rng);
        assert!((90.0..=180.0).contains(&m), "median RTT {m} ms");
    }

    #[test]
    fn one_way_delays_span_a_few_ms_to_a_few_hundred() {
        let mut net = Network::new(3, 0.0, None);
        net.ensure(4999);
        let mut min = f64::MAX;
        let mut max = 0.0f64;
        for a in 0..200 {
            for b in 200..400 {
                let d = net.base_delay(a, b).as_secs_f64() * 1000.0;
                min = min.min(d);
                max = max.max(d);
            }
        }
        assert!(min < 10.0, "min one-way {min} ms");
        assert!(max > 150.0 && max < 400.0, "max one-way {max} ms");
    }

    #[test]
    fn loss_one_drops_everything_and_partition_cuts_across_only() {
        let mut net = Network::new(1, 1.0, None);
        net.ensure(10);
        let mut rng = SimRng::new(2);
        assert!(net.transit(&mut rng, 0, 0, 1).is_none());
        let p = Partition::parse("0.5@0+10", 0).unwrap();
        let mut net = Network::new(1, 0.0, Some(p));
        net.ensure(199);
        let crossing = (1..200).filter(|&b| net.cut(1, 0, b)).count();
        assert!(crossing > 50 && crossing < 150, "{crossing}");
        assert!(
            (1..200).all(|b| !net.cut(20_000_000, 0, b)),
            "partition must heal"
        );
    }
}
