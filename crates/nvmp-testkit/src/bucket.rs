//! A token bucket: the proxy's rate limit, one per direction (this
//! kernel has no tc/netem, so benchmarks give paths different speeds here).
//!
//! Sans-IO: [`TokenBucket::reserve`] takes the bytes about to pass and
//! "now", and says how long to wait before sending them. Reservations are
//! queued as debt (tokens go negative), so concurrent connections sharing a
//! bucket are served in the order they asked, at the rate in total.

use std::time::Duration;

use tokio::time::Instant;

/// A rate limit: a sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub bytes_per_s: u64,
    /// Bytes that may pass at once after an idle time.
    pub burst_bytes: u64,
}

impl RateLimit {
    /// `bytes_per_s` with a burst of 10 ms of it (at least 64 KiB, one read of the proxy).
    pub fn new(bytes_per_s: u64) -> Self {
        Self {
            bytes_per_s: bytes_per_s.max(1),
            burst_bytes: (bytes_per_s / 100).max(64 * 1024),
        }
    }
}

/// Token bucket state.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    /// Tokens (bytes) available; negative: debt of reservations not yet due.
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: limit.burst_bytes as f64,
            last: now,
        }
    }
    pub fn limit(&self) -> RateLimit {
        self.limit
    }
    /// Change the limit, keeping the debt (capped to the new burst).
    pub fn set_limit(&mut self, limit: RateLimit, now: Instant) {
        self.refill(now);
        self.limit = limit;
        self.tokens = self.tokens.min(limit.burst_bytes as f64);
    }
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens =
            (self.tokens + dt * self.limit.bytes_per_s as f64).min(self.limit.burst_bytes as f64);
    }
    /// Reserve `bytes` at `now`: how long to wait before sending them.
    pub fn reserve(&mut self, bytes: usize, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.limit.bytes_per_s as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn burst_then_the_rate() {
        let t0 = Instant::now();
        let l = RateLimit {
            bytes_per_s: 1_000_000,
            burst_bytes: 10_000,
        };
        let mut b = TokenBucket::new(l, t0);
        // The burst passes at once.
        assert_eq!(b.reserve(10_000, t0), Duration::ZERO);
        // Then 1 MB/s: 5 000 bytes wait 5 ms.
        assert_eq!(b.reserve(5_000, t0), 5 * MS);
        // Queued behind it: 10 000 more wait 15 ms in all.
        assert_eq!(b.reserve(10_000, t0), 15 * MS);
        // 15 ms later the debt is paid; idle time refills at most the burst.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.reserve(10_000, t1), Duration::ZERO);
        assert_eq!(b.reserve(1_000, t1), MS);
    }

    #[test]
    fn bytes_over_time_match_the_rate() {
        // 1 MiB in 4 KiB pieces at 256 KiB/s with a 16 KiB burst: the last
        // piece may leave at (1 MiB - 16 KiB) / 256 KiB/s = 3.9375 s.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            RateLimit {
                bytes_per_s: 256 * 1024,
                burst_bytes: 16 * 1024,
            },
            t0,
        );
        let mut now = t0;
        for _ in 0..256 {
            now += b.reserve(4096, now);
        }
        let secs = (now - t0).as_secs_f64();
        assert!((secs - 3.9375).abs() < 1e-6, "{secs}");
    }

    #[test]
    fn a_new_limit_applies_to_what_follows() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(RateLimit::new(1_000_000), t0);
        assert_eq!(b.limit().burst_bytes, 64 * 1024);
        assert_eq!(b.reserve(64 * 1024, t0), Duration::ZERO);
        b.set_limit(
            RateLimit {
                bytes_per_s: 2_000_000,
                burst_bytes: 1000,
            },
            t0,
        );
        assert_eq!(b.reserve(2_000, t0), MS);
    }
}
