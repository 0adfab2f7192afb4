//! The seam between the gRPC layer and where snapshots come from: etcd in
//! production ([`crate::etcd_sync::Shared`]), a fake in the stream tests.

use std::sync::Arc;

use bootes_xds::snapshots::{Binding, Snapshot};
use tokio::sync::watch;
use tokio::time::Instant;

/// The snapshots the streams serve, and a signal when they change.
pub trait SnapshotSource: Send + Sync + std::fmt::Debug + 'static {
    /// The snapshot `node_id` gets: its binding's, if both exist.
    fn for_node(&self, node_id: &str) -> Option<Arc<Snapshot>>;

    /// Changes with every applied batch: the etcd revision, and when the
    /// batch was applied (for the push latency metric).
    fn subscribe(&self) -> watch::Receiver<(i64, Instant)>;

    /// The node's binding (namespace and service account authorize SPIFFE
    /// identities), if it has one.
    fn binding(&self, node_id: &str) -> Option<Binding>;
}

impl SnapshotSource for crate::etcd_sync::Shared {
    fn for_node(&self, node_id: &str) -> Option<Arc<Snapshot>> {
        crate::etcd_sync::Shared::for_node(self, node_id)
    }

    fn subscribe(&self) -> watch::Receiver<(i64, Instant)> {
        crate::etcd_sync::Shared::subscribe(self)
    }

    fn binding(&self, node_id: &str) -> Option<Binding> {
        crate::etcd_sync::Shared::binding(self, node_id)
    }
}
