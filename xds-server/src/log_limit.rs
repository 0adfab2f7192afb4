//! Logging at a bounded rate: one line per reason per interval, with how
//! many were not logged since, so a storm of refusals is visible in the log
//! without flooding it. (The refusals themselves are always counted, in
//! metrics.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a reason is logged at most.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct LogLimit {
    /// Per reason: when it was last logged, and how many were not since.
    logged: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogLimit {
    /// Whether a line for `reason` may be written now: `Some(n)` with the
    /// `n` occurrences not logged since the last line, or `None` when
    /// `reason` was logged within [`LOG_EVERY`] (this one is then counted
    /// into the next line).
    pub fn may_log(&self, reason: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        match logged.get_mut(reason) {
            Some((last, quiet)) if now.duration_since(*last) < LOG_EVERY => {
                *quiet += 1;
                None
            }
            Some((last, quiet)) => {
                *last = now;
                Some(std::mem::take(quiet))
            }
            None => {
                logged.insert(reason, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason_per_interval_with_the_count_of_the_rest() {
        let limit = LogLimit::default();
        assert_eq!(limit.may_log("a"), Some(0));
        assert_eq!((0..99).filter_map(|_| limit.may_log("a")).count(), 0);
        assert_eq!(
            limit.may_log("b"),
            Some(0),
            "each reason has its own budget"
        );
        // The interval passed: the next line says how many were not logged.
        limit.logged.lock().unwrap().get_mut("a").unwrap().0 -= LOG_EVERY;
        assert_eq!(limit.may_log("a"), Some(99));
    }
}
