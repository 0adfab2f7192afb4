//! Cheap randomness for jitter (no cryptographic quality needed).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// A pseudo-random number below `n` (0 when `n` is 0).
pub fn below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() % n
}

/// A duration uniformly spread over `[0, max)`.
pub fn up_to(max: Duration) -> Duration {
    Duration::from_millis(below(max.as_millis() as u64))
}
