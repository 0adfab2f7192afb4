//! Bounded-rate admission of new streams (issue 23): when thousands of
//! Envoys reconnect at once, a replica sets their streams up at most
//! `rate` per second, so the streams it already serves keep getting their
//! updates instead of waiting behind the storm.
//!
//! A token bucket holding at most one second's worth (`rate`): a storm of
//! that size is admitted at once. Beyond it a new stream is given a turn:
//! it waits until its token would have been refilled, as long as that is
//! within `max_wait`; a stream whose turn is further away is refused (the
//! shell answers UNAVAILABLE, and the client retries with its back-off,
//! possibly on another replica). Waiting costs a replica almost nothing (no
//! snapshot is read, nothing is encoded), refusing costs the client a retry,
//! so both bound the work per second the same way.

use std::time::{Duration, Instant};

/// The bucket: pure, given the instants.
#[derive(Clone, Debug)]
pub struct Admission {
    /// Tokens per second (and the bucket's size); `None`: unbounded.
    rate: Option<f64>,
    max_wait: Duration,
    /// Tokens now; negative while turns are handed out ahead of the refill.
    tokens: f64,
    at: Instant,
}

/// A new stream's turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Set it up after this wait (zero: now).
    After(Duration),
    /// Its turn is further than the longest wait away: refuse it.
    Refused,
}

impl Admission {
    /// At most `per_second` new streams a second (0: unbounded); a stream
    /// waits at most `max_wait` for its turn.
    pub fn new(per_second: u32, max_wait: Duration, now: Instant) -> Self {
        let rate = (per_second > 0).then_some(f64::from(per_second));
        Self {
            rate,
            max_wait,
            tokens: rate.unwrap_or(0.0),
            at: now,
        }
    }

    /// The turn of a stream arriving `now`; a stream given a turn takes its
    /// token, a refused one takes nothing.
    pub fn turn(&mut self, now: Instant) -> Turn {
        let Some(rate) = self.rate else {
            return Turn::After(Duration::ZERO);
        };
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Turn::After(Duration::ZERO);
        }
        let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
        if wait > self.max_wait {
            return Turn::Refused;
        }
        self.tokens -= 1.0;
        Turn::After(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn one_seconds_worth_at_once_then_turns_at_the_rate_then_refusals() {
        let t0 = Instant::now();
        let mut a = Admission::new(10, ms(500), t0);
        for _ in 0..10 {
            assert_eq!(a.turn(t0), Turn::After(Duration::ZERO));
        }
        // The next ones are spaced by 1/rate...
        let waits: Vec<Turn> = (0..5).map(|_| a.turn(t0)).collect();
        assert_eq!(waits, [100, 200, 300, 400, 500].map(|w| Turn::After(ms(w))));
        // ...until the turn is further than the longest wait.
        assert_eq!(a.turn(t0), Turn::Refused);
        assert_eq!(a.turn(t0), Turn::Refused, "a refusal takes no token");
        // Time refills the bucket: after 1 s, the 5 turns handed out are
        // paid back and 5 tokens are free.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..5 {
            assert_eq!(a.turn(t1), Turn::After(Duration::ZERO));
        }
        assert_eq!(a.turn(t1), Turn::After(ms(100)));
    }

    #[test]
    fn the_bucket_holds_at_most_one_seconds_worth() {
        let t0 = Instant::now();
        let mut a = Admission::new(4, Duration::ZERO, t0);
        let later = t0 + Duration::from_secs(60);
        let admitted = (0..10)
            .filter(|_| a.turn(later) == Turn::After(Duration::ZERO))
            .count();
        assert_eq!(admitted, 4);
    }

    #[test]
    fn zero_is_unbounded() {
        let t0 = Instant::now();
        let mut a = Admission::new(0, Duration::ZERO, t0);
        for _ in 0..100_000 {
            assert_eq!(a.turn(t0), Turn::After(Duration::ZERO));
        }
    }

    #[test]
    fn an_instant_before_the_last_one_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let mut a = Admission::new(1, Duration::ZERO, t0);
        assert_eq!(a.turn(t0), Turn::After(Duration::ZERO));
        assert_eq!(a.turn(t0 - Duration::from_secs(1)), Turn::Refused);
    }
}
