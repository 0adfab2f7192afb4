//! What the admin listener (`bootes_runtime::admin`) answers for the
//! xds-server.

use std::sync::Arc;

use tokio::sync::watch;

use crate::etcd_sync::Shared;
use crate::metrics::Metrics;

pub struct Admin {
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
    /// True once the server drains (SIGTERM).
    pub draining: watch::Receiver<bool>,
}

impl bootes_runtime::admin::Probe for Admin {
    /// Ready once the first etcd listing is loaded; it stays ready while etcd
    /// is unreachable afterwards, because the last snapshots keep being
    /// served. Not ready from the moment the server drains, before its
    /// streams end, so no new client is sent to it.
    async fn readiness(&self) -> (bool, String) {
        if *self.draining.borrow() {
            (
                false,
                "draining: streams end within the drain period\n".into(),
            )
        } else if self.shared.is_ready() {
            let (nodes, snapshots) = self.shared.counts();
            let revision = self.shared.revision();
            (
                true,
                format!("ok: etcd revision {revision}, {nodes} nodes, {snapshots} snapshots\n"),
            )
        } else {
            (false, "etcd not loaded yet\n".into())
        }
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }
}
