//! Bounded counters the engine fills while it runs: histograms and a time series.

/// Largest hop count kept apart in the hop histogram; more hops land in the last bin.
pub const HOPS_MAX: usize = 64;

/// Largest latency kept apart, in milliseconds (1 ms bins); longer lands in the last bin.
pub const LATENCY_MS_MAX: usize = 120_000;

/// Number of intervals the measured phase is cut into for the time series.
pub const TIME_BUCKETS: usize = 60;

/// A histogram of small integers in fixed bins `0..=max`.
#[derive(Debug, Clone)]
pub struct Histogram {
    bins: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    /// An empty histogram with bins `0..=max`.
    pub fn new(max: usize) -> Self {
        Histogram {
            bins: vec![0; max + 1],
            count: 0,
            sum: 0.0,
        }
    }

    /// Adds one observation (clamped to the last bin).
    pub fn add(&mut self, v: u64) {
        let i = (v as usize).min(self.bins.len() - 1);
        self.bins[i] += 1;
        self.count += 1;
        self.sum += v as f64;
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Mean of the observations (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// The smallest bin at or below which a fraction `q` of the observations lie.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut acc = 0;
        for (i, &b) in self.bins.iter().enumerate() {
            acc += b;
            if acc >= rank {
                return i as u64;
            }
        }
        (self.bins.len() - 1) as u64
    }

    /// The largest non-empty bin.
    pub fn max(&self) -> u64 {
        self.bins.iter().rposition(|&b| b > 0).unwrap_or(0) as u64
    }

    /// The bins, trimmed after the last non-empty one.
    pub fn bins(&self) -> &[u64] {
        let end = self.bins.iter().rposition(|&b| b > 0).map_or(0, |i| i + 1);
        &self.bins[..end]
    }
}

/// What happened in one interval of the measured phase.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Bucket {
    /// Start of the interval, seconds into the measured phase.
    pub t_s: f64,
    /// Lookups that ended in it.
    pub lookups_done: u64,
    /// Of those, successful ones.
    pub lookups_succeeded: u64,
    /// Gets that ended in it.
    pub gets_done: u64,
    /// Of those, correct ones.
    pub gets_correct: u64,
    /// Messages sent in it.
    pub messages: u64,
    /// Bytes sent in it.
    pub bytes: u64,
    /// Messages sent on behalf of workload commands that ended in it.
    pub workload_messages: u64,
    /// Live nodes at its end.
    pub live_nodes: u64,
}

/// The measured phase cut into [`TIME_BUCKETS`] intervals.
#[derive(Debug, Clone)]
pub struct TimeSeries {
    start_us: u64,
    width_us: u64,
    /// The intervals.
    pub buckets: Vec<Bucket>,
}

impl TimeSeries {
    /// A series over `[start_us, start_us + length_us)`.
    pub fn new(start_us: u64, length_us: u64) -> Self {
        let width_us = (length_us / TIME_BUCKETS as u64).max(1);
        let buckets = (0..TIME_BUCKETS)
            .map(|i| Bucket {
                t_s: (i as u64 * width_us) as f64 / 1e6,
                ..Bucket::default()
            })
            .collect();
        TimeSeries {
            start_us,
            width_us,
            buckets,
        }
    }

    /// The interval holding `now_us`, if it falls in the measured phase.
    pub fn at(&mut self, now_us: u64) -> Option<&mut Bucket> {
        let i = now_us.checked_sub(self.start_us)? / self.width_us;
        self.buckets.get_mut(i as usize)
    }

    /// Width of one interval in seconds.
    pub fn width_s(&self) -> f64 {
        self.width_us as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_mean_follow_the_observations() {
        let mut h = Histogram::new(10);
        for v in [1, 2, 2, 3, 50] {
            h.add(v);
        }
        assert_eq!(h.quantile(0.5), 2);
        assert_eq!(h.quantile(1.0), 10, "clamped to the last bin");
        assert_eq!(h.max(), 10);
        assert!((h.mean() - 58.0 / 5.0).abs() < 1e-12);
        assert_eq!(h.bins().len(), 11);
    }
}
