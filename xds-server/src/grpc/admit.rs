//! The shell of [`bootes_xds::admission`]: every new xDS stream takes its
//! turn before anything is read or set up for it. A stream refused here
//! ends with UNAVAILABLE, is counted (`bootes_xds_denied_total{reason=
//! "new_stream_rate"}`) and logged at a bounded rate; the client retries
//! with its back-off (Envoy: jittered, 0.5 s base), possibly on another
//! replica.

use std::sync::Mutex;
use std::time::Duration;

use bootes_xds::admission::{Admission, Turn};
use tonic::Status;

use crate::log_limit::LogLimit;
use crate::metrics::{Metrics, ReasonLabel};

/// The reason refused streams are counted under.
pub const NEW_STREAM_RATE: &str = "new_stream_rate";

#[derive(Debug)]
pub struct Admit {
    bucket: Mutex<Admission>,
    per_second: u32,
    log: LogLimit,
}

impl Admit {
    /// At most `per_second` new streams a second (0: unbounded), each
    /// waiting at most `max_wait` for its turn.
    pub fn new(per_second: u32, max_wait: Duration) -> Self {
        Self {
            bucket: Mutex::new(Admission::new(
                per_second,
                max_wait,
                tokio::time::Instant::now().into_std(),
            )),
            per_second,
            log: LogLimit::default(),
        }
    }

    /// Waits for this stream's turn, or refuses it.
    pub async fn turn(&self, metrics: &Metrics) -> Result<(), Status> {
        let now = tokio::time::Instant::now().into_std();
        let turn = self
            .bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .turn(now);
        match turn {
            Turn::After(wait) if wait.is_zero() => Ok(()),
            Turn::After(wait) => {
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Turn::Refused => {
                metrics
                    .denied
                    .get_or_create(&ReasonLabel {
                        reason: NEW_STREAM_RATE,
                    })
                    .inc();
                if let Some(not_logged) = self.log.may_log(NEW_STREAM_RATE) {
                    tracing::warn!(
                        per_second = self.per_second,
                        not_logged_since_last = not_logged,
                        "new stream refused: more arrive than --max-new-streams-per-second admits"
                    );
                }
                Err(Status::unavailable(format!(
                    "this replica admits at most {} new streams per second; retry with back-off",
                    self.per_second
                )))
            }
        }
    }
}
