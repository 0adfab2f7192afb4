//! The one backoff policy of every retry loop: exponential with jitter, so
//! that replicas that lost etcd together do not come back in lockstep.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Delays of a retry loop: 200 ms doubling up to 2.5 s, each plus a random
/// jitter of up to as much again (so at most 5 s), and never exhausted (a
/// loop retries until it succeeds or is stopped).
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    current: backon::ExponentialBackoff,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_millis(2500))
    }
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let builder = ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Self {
            current: builder.build(),
            builder,
            max,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        // Never exhausted (`without_max_times`); the maximum is a safe answer anyway.
        self.current.next().unwrap_or(self.max)
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.current = self.builder.build();
    }

    /// Sleeps for the next delay.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_maximum_with_jitter_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = b.next_delay();
        // Jitter adds up to one more delay on top.
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
        let later: Vec<_> = (0..20).map(|_| b.next_delay()).collect();
        assert!(
            later.iter().all(|d| *d <= Duration::from_secs(2)),
            "{later:?}"
        );
        assert!(
            later.iter().any(|d| *d >= Duration::from_secs(1)),
            "{later:?}"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(200));
    }
}
