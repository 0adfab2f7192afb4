//! The words of each object's conditions, in one place: Kubernetes status,
//! the directory-mode log, `validate` and `inspect` all read them here, from
//! the data of [`crate::verdict`] and [`crate::rollout`].

use crate::rollout::{Nodes, Progress, Rollout};
use crate::verdict::{ObjectStatus, Reason, Verdict};
use bootes_envoy::convert::ConfigError;
use bootes_proto::limits::MAX_VALUE_BYTES;

pub const ACCEPTED: &str = "Accepted";
pub const RESOLVED_REFS: &str = "ResolvedRefs";
pub const PROGRAMMED: &str = "Programmed";

/// How many nodes of each kind a `Programmed` message names.
pub const EXAMPLES: usize = 3;

/// One condition as it reads: True or False, a CamelCase reason, a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Said {
    pub type_: &'static str,
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Reason {
    pub const fn as_str(&self) -> &'static str {
        match self {
            Reason::Valid => "Valid",
            Reason::InvalidConfig => "InvalidConfig",
            Reason::TooLarge => "TooLarge",
            Reason::Conflict => "Conflict",
            Reason::EnvoyRejected => "EnvoyRejected",
            Reason::EnvoyUnavailable => "EnvoyUnavailable",
        }
    }
}

impl Progress {
    pub const fn as_str(&self) -> &'static str {
        match self {
            Progress::Programmed => "Programmed",
            Progress::Pending => "Pending",
            Progress::Rejected => "Rejected",
        }
    }
}

/// Every condition of an object, in a fixed order.
pub fn conditions(status: &ObjectStatus) -> Vec<Said> {
    let mut out = vec![accepted(status)];
    out.extend(resolved_refs(status));
    out.extend(programmed(status));
    out
}

/// `Accepted`: valid, or why not.
pub fn accepted(status: &ObjectStatus) -> Said {
    let verdict = &status.verdict;
    Said {
        type_: ACCEPTED,
        ok: verdict.accepted(),
        reason: verdict.reason().as_str(),
        message: accepted_message(verdict),
    }
}

/// Why an object is not accepted; for an accepted one, its warnings
/// (`warnings: …`), if any.
pub fn accepted_message(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Valid { warnings } if warnings.is_empty() => String::new(),
        Verdict::Valid { warnings } => format!("warnings: {}", join_errors(warnings)),
        Verdict::Invalid {
            errors, in_force, ..
        } => {
            let detail = join_errors(errors);
            match in_force {
                Some(g) => format!("{detail} (generation {g} stays in force)"),
                None => detail,
            }
        }
        Verdict::Conflict { resource, winner } => format!(
            "{} {resource:?} is already provided by {winner} (older objects win)",
            winner.kind.short_name(),
        ),
        Verdict::LeftOut {
            nodes,
            example,
            snapshot_bytes,
            resource_bytes,
        } => format!(
            "too large together with the other objects of its group: left out of the snapshot of {nodes} node(s), e.g. {example}, which would be {snapshot_bytes} bytes with it, more than one etcd value may hold ({MAX_VALUE_BYTES} bytes; this resource is {resource_bytes} bytes, and objects older than it are kept first); those nodes do not receive it"
        ),
        Verdict::EnvoyRejected {
            reason,
            judged,
            group,
            together,
            nodes,
        } => {
            let said = if *judged {
                envoy_rejection(ENVOY_VALIDATE, reason, together.then_some(group.as_str()))
            } else {
                format!(
                    "{} (judged again in a while)",
                    envoy_unjudged(ENVOY_VALIDATE, group, reason)
                )
            };
            format!("{said}; not written: {nodes} node(s) of group {group} (and any other it is in) keep their previous snapshot")
        }
    }
}

/// The flag of `run` that puts Envoy in the loop.
const ENVOY_VALIDATE: &str = "--envoy-validate";

/// Envoy's rejection of a resource, under `flag` (`--envoy`,
/// `--envoy-validate`); `together`: the group it fails only with.
pub fn envoy_rejection(flag: &str, reason: &str, together: Option<&str>) -> String {
    let together = together
        .map(|g| format!(" together with the other resources of group {g} (alone it passes)"))
        .unwrap_or_default();
    format!("Envoy ({flag}) rejects it{together}: {reason}")
}

/// Envoy gave no verdict on `group`, and why.
pub fn envoy_unjudged(flag: &str, group: &str, why: &str) -> String {
    format!("Envoy ({flag}) gave no verdict on group {group}: {why}")
}

/// `ResolvedRefs`, or `None` when the object has no resource in force.
pub fn resolved_refs(status: &ObjectStatus) -> Option<Said> {
    let refs = status.refs.as_ref()?;
    let said = |ok, reason, message| Said {
        type_: RESOLVED_REFS,
        ok,
        reason,
        message,
    };
    if refs.is_empty() {
        return Some(said(true, "ResolvedRefs", String::new()));
    }
    // The first problem Envoy rejects the resource for, else a warning.
    let reason = refs
        .iter()
        .find(|u| u.envoy_rejects)
        .map_or("UnresolvedReferences", |u| u.reason);
    let message = refs
        .iter()
        .map(|u| u.problem.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    Some(said(false, reason, message))
}

/// `Programmed`, or `None` when the object has no resource in force. True
/// when every connected node it targets runs its current generation; False
/// `Pending`, `Rejected` (a node NACKed it), or `NotAccepted` (the current
/// generation is not the one in force: see `Accepted`).
pub fn programmed(status: &ObjectStatus) -> Option<Said> {
    let rollout = status.rollout.as_ref()?;
    if status.accepted() {
        return Some(rollout_said(rollout));
    }
    Some(Said {
        type_: PROGRAMMED,
        ok: false,
        reason: "NotAccepted",
        message: format!(
            "generation {} is not accepted; {}",
            status.observed_generation,
            rollout_counts(rollout)
        ),
    })
}

/// `Programmed` of a rollout alone (what etcd tells: `inspect rollout`).
pub fn rollout_said(rollout: &Rollout) -> Said {
    let progress = rollout.progress();
    Said {
        type_: PROGRAMMED,
        ok: progress == Progress::Programmed,
        reason: progress.as_str(),
        message: rollout_counts(rollout),
    }
}

/// `9998/10000 nodes run generation 7; 2 pending (a, b); 0 rejected; 3 not
/// connected (x, y, z)`: connected nodes that run it out of the connected
/// nodes targeted, then the others, naming a few.
pub fn rollout_counts(r: &Rollout) -> String {
    format!(
        "{}/{} nodes run generation {}; {} pending{}; {} rejected{}; {} not connected{}",
        r.running,
        r.connected(),
        r.generation,
        r.pending.count,
        examples(&r.pending),
        r.rejected.count,
        examples(&r.rejected),
        r.not_connected.count,
        examples(&r.not_connected),
    )
}

/// The `PROGRAMMED` column: `9998/10000`.
pub fn rollout_column(r: &Rollout) -> String {
    format!("{}/{}", r.running, r.connected())
}

fn examples(nodes: &Nodes) -> String {
    if nodes.examples.is_empty() {
        return String::new();
    }
    let named: Vec<String> = nodes
        .examples
        .iter()
        .map(|e| {
            if e.detail.is_empty() {
                e.node.clone()
            } else {
                format!("{}: {}", e.node, e.detail)
            }
        })
        .collect();
    let more = if nodes.count > nodes.examples.len() {
        ", …"
    } else {
        ""
    };
    format!(" ({}{more})", named.join(", "))
}

/// One line naming every problem of an object's spec.
pub fn join_errors<'a>(errors: impl IntoIterator<Item = &'a ConfigError>) -> String {
    errors
        .into_iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
