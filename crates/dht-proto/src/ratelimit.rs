//! Rate limits against floods: a token bucket per source IP for incoming queries, with a block
//! list for sources that keep at it, and a byte budget for the node's own upload.
//!
//! The defaults follow libtorrent's DoS blocker (`dht_block_ratelimit` 5 per second,
//! `dht_block_timeout` 5 minutes) and its `dht_upload_rate_limit` (8,000 bytes per second).
//! libtorrent blocks a source that sends more than ten seconds' worth of its rate within ten
//! seconds; here the same allowance is the bucket's burst, and a source is blocked after it has
//! been refused that many queries again since it last had a token. libtorrent tracks 20
//! sources; this table tracks [`SOURCES_MAX`], so a flood from many addresses does not push the
//! block of one heavy sender out at once.
//!
//! Nothing here reads a clock: every call takes `now`.

use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use crate::time::Instant;

/// Sources whose buckets are kept at once; the oldest is forgotten when a new one comes.
pub const SOURCES_MAX: usize = 4096;

/// Settings of the per-source limit on incoming queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Queries per second one source IP may send on average; 0 turns the limit off.
    pub per_second: u32,
    /// Queries one source may send at once after a quiet spell (the bucket's size).
    pub burst: u32,
    /// Queries refused in a row (no token came in between) after which the source is blocked.
    pub block_after: u32,
    /// How long a blocked source is ignored.
    pub block_for: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 5,
            burst: 50,
            block_after: 50,
            block_for: Duration::from_secs(5 * 60),
        }
    }
}

/// What [`SourceLimiter::admit`] decided about one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Answer it.
    Yes,
    /// Over the source's limit: drop it.
    Limited,
    /// Over the limit once too often: the source is blocked from now on; drop it.
    Blocked,
    /// The source is blocked: drop it.
    WhileBlocked,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    /// Tokens, in millionths of a query.
    tokens_micro: u64,
    /// When the tokens were last brought up to date.
    refilled: Instant,
    /// Queries refused since the source last had a token.
    refused: u32,
    /// Until when the source is blocked, if it is.
    blocked_until: Option<Instant>,
}

/// Token buckets per source IP, at most [`SOURCES_MAX`] of them.
#[derive(Debug, Clone, Default)]
pub struct SourceLimiter {
    sources: BTreeMap<IpAddr, Source>,
    /// The sources in the order they were added, to forget the oldest.
    order: VecDeque<IpAddr>,
}

impl SourceLimiter {
    /// Decides whether to answer a query from `ip` at `now` under `limit`, and counts it.
    pub fn admit(&mut self, now: Instant, ip: IpAddr, limit: &RateLimit) -> Admit {
        if limit.per_second == 0 {
            return Admit::Yes;
        }
        let burst_micro = u64::from(limit.burst.max(1)) * 1_000_000;
        let source = match self.sources.get_mut(&ip) {
            Some(s) => s,
            None => {
                if self.sources.len() >= SOURCES_MAX {
                    if let Some(old) = self.order.pop_front() {
                        self.sources.remove(&old);
                    }
                }
                self.order.push_back(ip);
                self.sources.entry(ip).or_insert(Source {
                    tokens_micro: burst_micro,
                    refilled: now,
                    refused: 0,
                    blocked_until: None,
                })
            }
        };
        if let Some(until) = source.blocked_until {
            if now < until {
                return Admit::WhileBlocked;
            }
            source.blocked_until = None;
            source.refused = 0;
            source.tokens_micro = burst_micro;
            source.refilled = now;
        }
        let elapsed_us = now.saturating_duration_since(source.refilled).as_micros() as u64;
        source.tokens_micro = source
            .tokens_micro
            .saturating_add(elapsed_us.saturating_mul(u64::from(limit.per_second)))
            .min(burst_micro);
        source.refilled = now;
        if source.tokens_micro >= 1_000_000 {
            source.tokens_micro -= 1_000_000;
            source.refused = 0;
            return Admit::Yes;
        }
        source.refused += 1;
        if source.refused >= limit.block_after.max(1) {
            source.blocked_until = Some(now + limit.block_for);
            return Admit::Blocked;
        }
        Admit::Limited
    }

    /// Sources tracked.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Approximate bytes of memory held.
    pub fn memory_bytes(&self) -> usize {
        // A B-tree entry with its share of the node, and the order queue's slot.
        self.sources.len() * (core::mem::size_of::<(IpAddr, Source)>() + 16)
            + self.order.capacity() * core::mem::size_of::<IpAddr>()
    }
}

/// A byte budget: `per_second` bytes a second, at most one second's worth saved up.
#[derive(Debug, Clone, Copy)]
pub struct ByteBudget {
    /// Bytes available, in millionths of a byte.
    bytes_micro: u64,
    refilled: Instant,
}

impl ByteBudget {
    /// A full budget at `now`.
    pub fn new(now: Instant, per_second: u64) -> Self {
        ByteBudget {
            bytes_micro: per_second.saturating_mul(1_000_000),
            refilled: now,
        }
    }

    /// Takes `len` bytes from the budget if it has them; `false` (and nothing taken) if not.
    /// A `per_second` of 0 means no limit.
    pub fn take(&mut self, now: Instant, per_second: u64, len: usize) -> bool {
        if per_second == 0 {
            return true;
        }
        let cap = per_second.saturating_mul(1_000_000);
        let elapsed_us = now.saturating_duration_since(self.refilled).as_micros() as u64;
        self.bytes_micro = self
            .bytes_micro
            .saturating_add(elapsed_us.saturating_mul(per_second))
            .min(cap);
        self.refilled = now;
        let need = (len as u64).saturating_mul(1_000_000);
        if self.bytes_micro < need {
            return false;
        }
        self.bytes_micro -= need;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_ms(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate_then_a_block() {
        let limit = RateLimit::default();
        let mut l = SourceLimiter::default();
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        let answered = (0..200)
            .filter(|_| l.admit(at_ms(0), ip, &limit) == Admit::Yes)
            .count();
        assert_eq!(answered, limit.burst as usize);
        // 50 refused made it blocked; the rest were dropped while blocked.
        assert_eq!(l.admit(at_ms(1000), ip, &limit), Admit::WhileBlocked);
        // After the block, a fresh bucket.
        let later = at_ms(limit.block_for.as_millis() as u64 + 1);
        assert_eq!(l.admit(later, ip, &limit), Admit::Yes);
        // Another source was never affected.
        let other: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(l.admit(at_ms(0), other, &limit), Admit::Yes);
    }

    #[test]
    fn a_source_within_its_rate_is_never_refused() {
        let limit = RateLimit::default();
        let mut l = SourceLimiter::default();
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        // Five a second for ten minutes, after spending the burst.
        for _ in 0..limit.burst {
            assert_eq!(l.admit(at_ms(0), ip, &limit), Admit::Yes);
        }
        for i in 1..=3000 {
            assert_eq!(l.admit(at_ms(i * 200), ip, &limit), Admit::Yes, "query {i}");
        }
    }

    #[test]
    fn the_table_keeps_at_most_sources_max_and_forgets_the_oldest() {
        let limit = RateLimit::default();
        let mut l = SourceLimiter::default();
        for i in 0..(SOURCES_MAX as u32 + 100) {
            let ip = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            l.admit(at_ms(0), ip, &limit);
        }
        assert_eq!(l.len(), SOURCES_MAX);
        assert!(!l
            .sources
            .contains_key(&IpAddr::from(0x0a00_0000u32.to_be_bytes())));
    }

    #[test]
    fn a_byte_budget_refills_at_its_rate_up_to_one_second() {
        let mut b = ByteBudget::new(at_ms(0), 1000);
        assert!(b.take(at_ms(0), 1000, 600));
        assert!(!b.take(at_ms(0), 1000, 600), "only 400 left");
        assert!(b.take(at_ms(200), 1000, 600), "200 more after 0.2 s");
        assert!(
            !b.take(at_ms(10_000), 1000, 1001),
            "never more than a second's worth"
        );
        assert!(b.take(at_ms(10_000), 0, usize::MAX), "0 is no limit");
    }
}
