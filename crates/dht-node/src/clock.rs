//! The bridge between the operating system's clocks and `dht-proto`'s [`Instant`].
//!
//! The protocol core counts microseconds from an origin. The runtime takes the origin when it
//! starts, and converts to Unix time only to write expiry times to disk, so that an item saved
//! by one run expires at the right moment in the next.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dht_proto::Instant;

/// The runtime's clock: a monotonic origin and the Unix time it corresponds to.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: std::time::Instant,
    origin_unix_ms: u64,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn start() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Clock {
            origin: std::time::Instant::now(),
            origin_unix_ms: unix.as_millis() as u64,
        }
    }

    /// The protocol's `now`.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as u64)
    }

    /// The OS instant of a protocol instant, for timers.
    pub fn to_std(&self, at: Instant) -> std::time::Instant {
        self.origin + Duration::from_micros(at.as_micros())
    }

    /// Unix milliseconds of a protocol instant.
    pub fn to_unix_ms(&self, at: Instant) -> u64 {
        self.origin_unix_ms + at.as_micros() / 1000
    }

    /// The protocol instant of a Unix time in milliseconds; times before the origin map to the
    /// origin (already due).
    pub fn from_unix_ms(&self, unix_ms: u64) -> Instant {
        Instant::from_millis(unix_ms.saturating_sub(self.origin_unix_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_conversion_round_trips_and_clamps_the_past() {
        let c = Clock::start();
        let t = Instant::from_millis(123_456);
        assert_eq!(c.from_unix_ms(c.to_unix_ms(t)), t);
        assert_eq!(c.from_unix_ms(0), Instant::ZERO);
    }
}
