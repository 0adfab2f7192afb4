//! When the reconcile loop writes: an adaptive debounce.
//!
//! A change on a quiet controller (nothing changed for `max_delay`) is
//! written after a short `first` wait, so that a single `kubectl patch`
//! reaches Envoy at once, unless another change follows within it.
//! Everything else is a burst: written once it has been quiet for
//! `debounce`, and at the latest `max_delay` after it began, exactly as a
//! plain trailing debounce would. A burst therefore costs the writes it did
//! with the trailing debounce, except one more when its first two changes
//! are further apart than `first` but closer than `debounce` (its first
//! change is written on its own). Quiet is `max_delay`, not `debounce`, so
//! that changes about a debounce apart (a script running `kubectl` after
//! `kubectl`) do not each start over as a change on a quiet controller.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long a change on a quiet controller waits for a second one
    /// before it is written alone. Equal to `debounce`, the debounce is a
    /// plain trailing one.
    pub first: Duration,
    /// A burst ends after this much quiet.
    pub debounce: Duration,
    /// ... or at the latest this long after it started. Also how long the
    /// controller must have had no change to count as quiet.
    pub max_delay: Duration,
}

/// Changes not yet written.
#[derive(Clone, Copy, Debug)]
struct Pending {
    first: Instant,
    last: Instant,
    /// One change so far, which came on a quiet controller.
    alone: bool,
}

#[derive(Debug)]
pub struct Debounce {
    timing: Timing,
    pending: Option<Pending>,
    /// The latest change; `None` until the first, so that the initial
    /// lists of the sources are one burst, not a change after quiet.
    last_change: Option<Instant>,
}

impl Debounce {
    pub fn new(timing: Timing) -> Self {
        Self {
            timing,
            pending: None,
            last_change: None,
        }
    }

    /// A change arrived at `now`.
    pub fn change(&mut self, now: Instant) {
        let quiet = self
            .last_change
            .is_some_and(|last| now.saturating_duration_since(last) >= self.timing.max_delay);
        self.last_change = Some(now);
        match &mut self.pending {
            Some(p) => {
                p.last = now;
                p.alone = false;
            }
            None => {
                self.pending = Some(Pending {
                    first: now,
                    last: now,
                    alone: quiet,
                })
            }
        }
    }

    /// When the pending changes are due to be written; `None` when nothing
    /// is pending.
    pub fn deadline(&self) -> Option<Instant> {
        let p = self.pending?;
        let wait = if p.alone {
            self.timing.first
        } else {
            self.timing.debounce
        };
        Some((p.last + wait).min(p.first + self.timing.max_delay))
    }

    /// The pending changes were taken into a write.
    pub fn written(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn timing() -> Timing {
        Timing {
            first: 20 * MS,
            debounce: 100 * MS,
            max_delay: 1000 * MS,
        }
    }

    /// The plain trailing debounce this replaced.
    fn trailing() -> Timing {
        Timing {
            first: 100 * MS,
            ..timing()
        }
    }

    /// The write times for changes at `changes` (ms after a start that
    /// follows an earlier, long-written change).
    fn writes(timing: Timing, changes: &[u64]) -> Vec<u64> {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut d = Debounce::new(timing);
        // An earlier change, long written: the controller is quiet.
        d.change(start);
        d.written();
        let offset = 10_000;
        let mut writes = Vec::new();
        let mut changes = changes.iter().map(|c| c + offset).peekable();
        loop {
            match (changes.peek().copied(), d.deadline()) {
                (Some(c), Some(due)) if at(c) < due => {
                    d.change(at(c));
                    changes.next();
                }
                (_, Some(due)) => {
                    writes.push((due - start).as_millis() as u64 - offset);
                    d.written();
                }
                (Some(c), None) => {
                    d.change(at(c));
                    changes.next();
                }
                (None, None) => return writes,
            }
        }
    }

    #[test]
    fn a_single_change_after_quiet_is_written_after_the_short_wait() {
        assert_eq!(writes(timing(), &[0]), [20]);
        assert_eq!(writes(trailing(), &[0]), [100]);
        // Two single changes far apart: each on its own, each at once.
        assert_eq!(writes(timing(), &[0, 1500]), [20, 1520]);
        // Closer: the controller is not quiet for the second one.
        assert_eq!(writes(timing(), &[0, 500]), [20, 600]);
    }

    #[test]
    fn a_burst_of_close_changes_is_written_once_as_before() {
        // 30 changes 5 ms apart (one `kubectl apply` of 30 objects).
        let burst: Vec<u64> = (0..30).map(|i| i * 5).collect();
        assert_eq!(writes(timing(), &burst), [145 + 100]);
        assert_eq!(writes(timing(), &burst), writes(trailing(), &burst));
    }

    #[test]
    fn a_burst_that_never_quiets_is_written_at_the_maximum_delay_as_before() {
        // 60 changes 30 ms apart after two close ones.
        let burst: Vec<u64> = [0, 5].into_iter().chain((1..60).map(|i| i * 30)).collect();
        let adaptive = writes(timing(), &burst);
        assert_eq!(adaptive, writes(trailing(), &burst));
        assert_eq!(adaptive[0], 1000);
        assert_eq!(*adaptive.last().unwrap(), 59 * 30 + 100);
    }

    #[test]
    fn changes_after_an_early_write_are_coalesced_for_the_debounce() {
        // The first change is written alone; the ones that follow within
        // the debounce are one burst, written once.
        let changes: Vec<u64> = (0..10).map(|i| i * 50).collect();
        assert_eq!(writes(timing(), &changes), [20, 450 + 100]);
        assert_eq!(writes(trailing(), &changes), [450 + 100]);
    }

    #[test]
    fn changes_further_apart_than_the_debounce_are_written_one_by_one_as_before() {
        let changes: Vec<u64> = (0..30).map(|i| i * 120).collect();
        // (`kubectl patch` after `kubectl patch`): only the first is
        // written early, the others as before.
        let adaptive = writes(timing(), &changes);
        assert_eq!(adaptive.len(), 30);
        assert_eq!(adaptive[0], 20);
        assert_eq!(adaptive[1..], writes(trailing(), &changes)[1..]);
    }

    #[test]
    fn the_first_changes_after_start_are_one_burst() {
        let start = Instant::now();
        let mut d = Debounce::new(timing());
        d.change(start);
        assert_eq!(d.deadline(), Some(start + 100 * MS));
    }
}
