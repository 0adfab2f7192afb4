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
        // Both maps are sorted: walk them together, and touch `last` only
        // where something changed (thousands of objects, a few changes).
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        let mut last = self.last.iter().peekable();
        for (key, status) in statuses {
            while let Some((gone, _)) = last.next_if(|(k, _)| *k < key) {
                removed.push(gone.clone());
            }
            let previous = last.next_if(|(k, _)| *k == key).map(|(_, s)| s);
            if previous != Some(status) {
                log_change(key, status, previous);
                changed.push((key.clone(), status.clone()));
            }
        }
        removed.extend(last.map(|(k, _)| k.clone()));
        for key in removed {
            tracing::info!(object = %key, "removed");
            self.last.remove(&key);
        }
        self.last.extend(changed);
    }
}

fn log_change(key: &ObjectKey, status: &ObjectStatus, previous: Option<&ObjectStatus>) {
    if !status.accepted {
        tracing::warn!(
            object = %key,
            reason = status.reason.as_str(),
            nodes = status.nodes,
            message = status.message,
            "not accepted"
        );
    } else if status.nodes == 0 && !status.message.is_empty() {
        // Never "accepted" for what reaches no Envoy; its warnings still show.
        tracing::warn!(object = %key, nodes = 0, detail = %status.message, "valid, with warnings; reaches no node (no pod matches its workloadSelector)");
    } else if status.nodes == 0 {
        tracing::info!(object = %key, nodes = 0, "valid, reaches no node (no pod matches its workloadSelector)");
    } else if !status.message.is_empty() {
        tracing::warn!(object = %key, nodes = status.nodes, detail = %status.message, "accepted, with warnings");
    } else {
        tracing::info!(object = %key, nodes = status.nodes, "accepted");
    }
    let refs = status.resolved_refs();
    let last_refs = previous.and_then(|l| l.resolved_refs());
    match refs {
        Some((false, reason, message)) if refs != last_refs => {
            tracing::warn!(object = %key, reason, detail = %message, "unresolved references");
        }
        Some((true, ..)) if last_refs.is_some_and(|(ok, ..)| !ok) => {
            tracing::info!(object = %key, "references resolved");
        }
        _ => {}
    }
}
