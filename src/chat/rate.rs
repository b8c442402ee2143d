//! Token buckets: how often a user may do something, with room for short bursts.

use std::time::{Duration, Instant};

/// Allows `rate` actions per `per` on average, and up to `burst` at once.
///
/// Invariant: `tokens` is between 0 and `burst`; it refills continuously with time.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    tokens: f64,
    burst: f64,
    /// Tokens added per second.
    refill: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate` actions per `per`, bursts up to `burst`.
    pub fn new(rate: u32, per: Duration, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            tokens: burst,
            burst,
            refill: f64::from(rate) / per.as_secs_f64().max(f64::EPSILON),
            updated: now,
        }
    }

    /// Takes one token if there is one; false means "too fast, try later".
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.refill).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token will be there, taking none: zero when one is there now.
    pub fn wait_for_token(&self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        let tokens = (self.tokens + elapsed * self.refill).min(self.burst);
        if tokens >= 1.0 || self.refill <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - tokens) / self.refill)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst is allowed at once, then the rate: 10 per second with a burst of 20 lets 20 go
    /// immediately, refuses the 21st, and allows 5 more after half a second.
    #[test]
    fn bursts_then_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, Duration::from_secs(1), 20, start);
        assert_eq!((0..25).filter(|_| bucket.try_take(start)).count(), 20);
        let later = start + Duration::from_millis(500);
        assert_eq!((0..25).filter(|_| bucket.try_take(later)).count(), 5);
        // Idle time refills up to the burst, never beyond.
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..50).filter(|_| bucket.try_take(much_later)).count(), 20);
    }

    /// An empty bucket says how long until its next token: at 10 per second, 100 ms; then
    /// a token is there, and a full bucket needs no wait.
    #[test]
    fn an_empty_bucket_says_when_to_come_back() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, Duration::from_secs(1), 1, start);
        assert_eq!(bucket.wait_for_token(start), Duration::ZERO);
        assert!(bucket.try_take(start));
        let wait = bucket.wait_for_token(start);
        assert!(wait > Duration::from_millis(99) && wait <= Duration::from_millis(100));
        assert!(bucket.try_take(start + wait));
    }
}
