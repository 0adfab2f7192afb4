//! The seam between the reconcile loop and where snapshots are stored (etcd
//! in the controller, a fake in the reconcile loop's tests).

use std::future::Future;

use bootes_proto::Fence;

use crate::index::Desired;
use crate::plan::Plan;

/// Statistics of one write, for logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    pub txns: usize,
    pub puts: usize,
    pub deletes: usize,
    pub bytes: usize,
}

/// Why a read or write of the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The fence comparison failed: another replica leads now.
    #[error("not the leader anymore: the write was refused")]
    NotLeader,
    #[error(transparent)]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
}

/// Where the desired state goes. Plans are computed against what the store
/// holds, as last read or written; [`SnapshotStore::changed`] says when
/// someone else changed it, so that it is read again.
pub trait SnapshotStore: Send {
    /// Reads what is stored: the base of the next plan.
    fn load(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The plan to reach `desired` from what is stored.
    fn plan(&self, desired: &Desired) -> Plan;

    /// Runs `plan`'s transactions in order, each fenced on leadership when a
    /// fence is given. On error, what was written so far is remembered and
    /// the rest is left for the next attempt.
    fn write(
        &mut self,
        plan: &Plan,
        fence: Option<&Fence>,
    ) -> impl Future<Output = Result<WriteStats, StoreError>> + Send;

    /// Resolves when the stored contents changed other than by this store's
    /// writes (another writer, a damaged value): time to load again.
    fn changed(&mut self) -> impl Future<Output = ()> + Send;
}
