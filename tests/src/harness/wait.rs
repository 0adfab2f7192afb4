//! Waiting on conditions with a deadline (never a fixed sleep).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

/// How long the helpers wait for something that should happen "soon"
/// (a process becoming ready, a change reaching Envoy). Generous, because CI
/// machines are small and tests run in parallel; a condition that holds
/// returns as soon as it is seen.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(45);

const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `check` until it returns `Ok`, or fails once [`DEFAULT_TIMEOUT`] has
/// passed, with `what` and the last error in the message.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    eventually_with(what, DEFAULT_TIMEOUT, check).await
}

/// [`eventually`] with an explicit timeout.
pub async fn eventually_with<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let err = match check().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(anyhow!(
                "timed out after {timeout:?} ({attempts} attempts) waiting for: {what}; last error: {err:#}"
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
