//! Where the statuses the index computes go: Kubernetes (the controller's
//! status writer) or, in directory mode, the log.

use std::collections::BTreeMap;

use crate::conditions::{self, Said};
use crate::model::ObjectKey;
use crate::verdict::{ObjectStatus, Verdict};
use crate::xref::Unresolved;

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
    let accepted = conditions::accepted(status);
    // The rollout's counts change with every ACK: they are logged below,
    // per reason.
    fn besides_rollout(s: &ObjectStatus) -> (&Verdict, usize, i64, &Option<Vec<Unresolved>>) {
        (&s.verdict, s.nodes, s.observed_generation, &s.refs)
    }
    if previous.is_none_or(|p| besides_rollout(p) != besides_rollout(status)) {
        if !accepted.ok {
            tracing::warn!(
                object = %key,
                reason = accepted.reason,
                nodes = status.nodes,
                message = accepted.message,
                "not accepted"
            );
        } else if status.nodes == 0 && !accepted.message.is_empty() {
            // Never "accepted" for what reaches no Envoy; its warnings still show.
            tracing::warn!(object = %key, nodes = 0, detail = %accepted.message, "valid, with warnings; reaches no node (no pod matches its workloadSelector)");
        } else if status.nodes == 0 {
            tracing::info!(object = %key, nodes = 0, "valid, reaches no node (no pod matches its workloadSelector)");
        } else if !accepted.message.is_empty() {
            tracing::warn!(object = %key, nodes = status.nodes, detail = %accepted.message, "accepted, with warnings");
        } else {
            tracing::info!(object = %key, nodes = status.nodes, "accepted");
        }
    }
    let refs = conditions::resolved_refs(status);
    let last_refs = previous.and_then(conditions::resolved_refs);
    match &refs {
        Some(Said {
            ok: false,
            reason,
            message,
            ..
        }) if refs != last_refs => {
            tracing::warn!(object = %key, reason, detail = %message, "unresolved references");
        }
        Some(Said { ok: true, .. }) if last_refs.is_some_and(|s| !s.ok) => {
            tracing::info!(object = %key, "references resolved");
        }
        _ => {}
    }
    // Programmed: logged when its reason changes, not on every count.
    let programmed = conditions::programmed(status);
    let last = previous.and_then(conditions::programmed);
    if let Some(p) = programmed {
        let generation = status.rollout.as_ref().map_or(0, |r| r.generation);
        let last_generation = previous
            .and_then(|p| p.rollout.as_ref())
            .map_or(0, |r| r.generation);
        if last.is_none_or(|l| l.reason != p.reason) || generation != last_generation {
            if p.reason == "Rejected" {
                tracing::warn!(object = %key, programmed = false, reason = p.reason, detail = %p.message, "programmed");
            } else {
                tracing::info!(object = %key, programmed = p.ok, reason = p.reason, detail = %p.message, "programmed");
            }
        }
    }
}
