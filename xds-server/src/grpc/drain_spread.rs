//! The shell of [`bootes_xds::spread`] for draining: each stream, as it
//! sees the drain, takes the next slot of the drain period, out of as many
//! slots as the replica had streams then, so the streams end (and reach
//! the other replicas) at an even rate rather than in random bunches.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

#[derive(Debug, Default)]
pub struct DrainSpread {
    next: AtomicUsize,
    streams: OnceLock<usize>,
}

impl DrainSpread {
    /// This stream's place in the drain period, in [0, 1); `streams` counts
    /// the replica's streams (asked once, by the first stream to drain).
    pub fn place(&self, streams: impl FnOnce() -> usize) -> f64 {
        let n = *self.streams.get_or_init(streams);
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        bootes_xds::spread::stratified(k, n, fastrand::f64())
    }
}
