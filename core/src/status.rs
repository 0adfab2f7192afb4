//! Where the statuses the index computes go: Kubernetes (the controller's
//! status writer) or, in directory mode, the log.

use std::collections::BTreeMap;

use crate::index::ObjectStatus;
use crate::model::ObjectKey;

/// Receives the statuses the index computes (Kubernetes status, or the log).
pub trait StatusSink: Send {
    fn report(&mut self, statuses: &BTreeMap<ObjectKey, ObjectStatus>);
}

/// Directory mode: status changes go to the log.
#[derive(Default)]
pub struct LogStatus {
    last: BTreeMap<ObjectKey, ObjectStatus>,
}

impl StatusSink for LogStatus {
    fn report(&mut self, statuses: &BTreeMap<ObjectKey, ObjectStatus>) {
        for (key, status) in statuses {
            if self.last.get(key) == Some(status) {
                continue;
            }
            if status.accepted {
                tracing::info!(object = %key, nodes = status.nodes, "accepted");
            } else {
                tracing::warn!(
                    object = %key,
                    reason = status.reason.as_str(),
                    nodes = status.nodes,
                    message = status.message,
                    "not accepted"
                );
            }
        }
        for key in self.last.keys() {
            if !statuses.contains_key(key) {
                tracing::info!(object = %key, "removed");
            }
        }
        self.last = statuses.clone();
    }
}
