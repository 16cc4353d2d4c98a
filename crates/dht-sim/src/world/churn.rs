//! Churn: how long nodes stay, and who takes their place.
//!
//! Session lengths follow a Weibull distribution with shape [`SESSION_SHAPE`] < 1, which is
//! heavy-tailed (most sessions are short, a few last very long), as measurements of Kad and
//! Mainline found (Stutzbach and Rejaie, "Understanding Churn in Peer-to-Peer Networks", IMC
//! 2006, fit Weibull shapes of 0.3-0.6 for Kad; Mainline crawls report half of the sessions
//! under about 200 minutes). A profile is named by its departure rate `r` per hour: in steady
//! state a fraction `r` of the live nodes leaves every hour, so the mean session is `1 / r`
//! hours and the median follows from the shape. The `bamboo` profile is set by its median
//! instead: 1.4 minutes, the stress point of Rhea et al., "Handling Churn in a DHT" (USENIX
//! 2004).
//!
//! Nodes leave without notice (their node state simply stops being called). Every departure is
//! balanced by a join after a short exponential delay, through a random live node: with
//! probability [`REJOIN_FRACTION`] (when any is saved) an old node comes back with the state it
//! had when it left (same ID, same stored items, same routing table, now stale), otherwise a
//! fresh node joins. A leaving node keeps its state for a later return with probability
//! [`SAVE_FRACTION`]; at most [`SAVED_POOL_FRACTION`] of the network size is kept aside.

use crate::rng::SimRng;

/// Weibull shape of session lengths (< 1: heavy-tailed, decreasing hazard).
pub const SESSION_SHAPE: f64 = 0.8;

/// Mean delay between a departure and the join that balances it, in seconds (at most; see
/// [`Churn::join_delay_mean_s`]).
pub const JOIN_DELAY_MEAN_S: f64 = 30.0;

/// The balancing join's mean delay never exceeds this fraction of the mean session, so that
/// under very short sessions (`bamboo`) the network does not shrink while joins wait.
pub const JOIN_DELAY_SESSION_FRACTION: f64 = 0.05;

/// Probability that a leaving node's state is kept aside so it can come back later.
pub const SAVE_FRACTION: f64 = 0.5;

/// Probability that a balancing join revives a saved node rather than creating a new one.
pub const REJOIN_FRACTION: f64 = 0.3;

/// Bound on saved (dead, revivable) nodes, as a fraction of the target network size.
pub const SAVED_POOL_FRACTION: f64 = 0.25;

/// Median session of the `bamboo` profile, in seconds (1.4 minutes).
pub const BAMBOO_MEDIAN_S: f64 = 84.0;

/// A churn profile: its departure rate, or none.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Churn {
    /// Fraction of the live nodes that leaves per hour (0 for no churn).
    pub per_hour: f64,
    /// The profile's name as given (`none`, `20%`, `bamboo`, ...).
    #[serde(skip)]
    pub label: &'static str,
}

impl Churn {
    /// No churn.
    pub const NONE: Churn = Churn {
        per_hour: 0.0,
        label: "none",
    };

    /// Parses a profile: `none`, `bamboo`, `N%` (percent per hour), a number of at least 1
    /// (percent per hour: `10`, `20`, `50`), or a number below 1 (fraction per hour: `0.2`).
    pub fn parse(s: &str) -> Result<Churn, String> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "none" | "0" | "off" => return Ok(Churn::NONE),
            "bamboo" => {
                let mean_s = BAMBOO_MEDIAN_S / median_over_mean();
                return Ok(Churn {
                    per_hour: 3600.0 / mean_s,
                    label: "bamboo",
                });
            }
            _ => {}
        }
        let (num, percent) = match t.strip_suffix('%') {
            Some(n) => (n, true),
            None => (t.as_str(), false),
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("churn {s:?}: expected none, bamboo, N% or a rate per hour"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("churn {s:?}: rate must be a non-negative number"));
        }
        let per_hour = if percent || v >= 1.0 { v / 100.0 } else { v };
        Ok(Churn {
            per_hour,
            label: "rate",
        })
    }

    /// Whether nodes leave at all.
    pub fn is_on(&self) -> bool {
        self.per_hour > 0.0
    }

    /// Mean session length in seconds.
    pub fn mean_session_s(&self) -> f64 {
        if self.is_on() {
            3600.0 / self.per_hour
        } else {
            f64::INFINITY
        }
    }

    /// Mean delay of the join that balances a departure, in seconds.
    pub fn join_delay_mean_s(&self) -> f64 {
        JOIN_DELAY_MEAN_S.min(self.mean_session_s() * JOIN_DELAY_SESSION_FRACTION)
    }

    /// Median session length in seconds.
    pub fn median_session_s(&self) -> f64 {
        self.mean_session_s() * median_over_mean()
    }

    /// The Weibull scale of session lengths, in seconds.
    fn scale_s(&self) -> f64 {
        self.mean_session_s() / gamma_fn(1.0 + 1.0 / SESSION_SHAPE)
    }

    /// A full session length, in seconds, for a node that joins now.
    pub fn session_s(&self, rng: &mut SimRng) -> f64 {
        if !self.is_on() {
            return f64::INFINITY;
        }
        let u = 1.0 - rng.unit();
        self.scale_s() * (-u.ln()).powf(1.0 / SESSION_SHAPE)
    }

    /// The remaining session, in seconds, of a node found alive in a network that has been
    /// churning for a long time (the stationary residual life: length-biased session times a
    /// uniform fraction), so the departure rate is right from the first second.
    pub fn residual_session_s(&self, rng: &mut SimRng) -> f64 {
        if !self.is_on() {
            return f64::INFINITY;
        }
        // A length-biased Weibull(k, l) is l * Y^(1/k) with Y ~ Gamma(1 + 1/k, 1).
        let y = gamma_sample(rng, 1.0 + 1.0 / SESSION_SHAPE);
        let biased = self.scale_s() * y.powf(1.0 / SESSION_SHAPE);
        biased * rng.unit()
    }
}

/// The ratio median / mean of a Weibull with shape [`SESSION_SHAPE`].
fn median_over_mean() -> f64 {
    core::f64::consts::LN_2.powf(1.0 / SESSION_SHAPE) / gamma_fn(1.0 + 1.0 / SESSION_SHAPE)
}

/// The gamma function (Lanczos approximation, g = 7, n = 9; relative error below 1e-13).
pub fn gamma_fn(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        core::f64::consts::PI / ((core::f64::consts::PI * x).sin() * gamma_fn(1.0 - x))
    } else {
        let x = x - 1.0;
        let mut a = C[0];
        let t = x + G + 0.5;
        for (i, c) in C.iter().enumerate().skip(1) {
            a += c / (x + i as f64);
        }
        (2.0 * core::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * a
    }
}

/// A Gamma(shape, 1) sample for shape >= 1 (Marsaglia and Tsang, 2000). The rejection loop
/// accepts with probability above 0.95 per try; it is bounded so a pathological stream cannot
/// spin forever.
fn gamma_sample(rng: &mut SimRng, shape: f64) -> f64 {
    const TRIES_MAX: usize = 1000;
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    for _ in 0..TRIES_MAX {
        let x = rng.normal();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.unit();
        if u.max(f64::MIN_POSITIVE).ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_to_rates_per_hour() {
        assert_eq!(Churn::parse("none").unwrap().per_hour, 0.0);
        assert!((Churn::parse("20%").unwrap().per_hour - 0.2).abs() < 1e-12);
        assert!((Churn::parse("20").unwrap().per_hour - 0.2).abs() < 1e-12);
        assert!((Churn::parse("0.5").unwrap().per_hour - 0.5).abs() < 1e-12);
        let b = Churn::parse("bamboo").unwrap();
        assert!((b.median_session_s() - BAMBOO_MEDIAN_S).abs() < 1e-6);
        assert!(Churn::parse("fast").is_err());
        assert!(Churn::parse("-3").is_err());
    }

    #[test]
    fn twenty_percent_per_hour_has_median_session_under_200_minutes() {
        let c = Churn::parse("20%").unwrap();
        let m = c.median_session_s() / 60.0;
        assert!(m < 200.0 && m > 100.0, "median {m} min");
        let mut rng = SimRng::new(5);
        let mut s: Vec<f64> = (0..20_001).map(|_| c.session_s(&mut rng)).collect();
        s.sort_by(f64::total_cmp);
        let sampled = s[10_000] / 60.0;
        assert!(
            (sampled - m).abs() / m < 0.05,
            "sampled median {sampled} vs {m}"
        );
        let mean = s.iter().sum::<f64>() / s.len() as f64;
        assert!((mean - 18_000.0).abs() / 18_000.0 < 0.05, "mean {mean}");
    }

    #[test]
    fn residual_sessions_give_the_stationary_departure_rate() {
        // In steady state the fraction leaving in the first hour should be about the rate.
        let c = Churn::parse("50%").unwrap();
        let mut rng = SimRng::new(9);
        let n = 40_000;
        let left = (0..n)
            .filter(|_| c.residual_session_s(&mut rng) < 3600.0)
            .count();
        let frac = left as f64 / n as f64;
        // Over one hour the hazard decreases, so allow a band around 0.5 * (a bit less).
        assert!((0.3..0.55).contains(&frac), "left in first hour: {frac}");
    }

    #[test]
    fn gamma_function_matches_known_values() {
        assert!((gamma_fn(5.0) - 24.0).abs() < 1e-9);
        assert!((gamma_fn(0.5) - core::f64::consts::PI.sqrt()).abs() < 1e-9);
    }
}
