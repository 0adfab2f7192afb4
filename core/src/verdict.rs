//! Each object's verdict, as data: what [`Index::desired`](crate::index::Index::desired)
//! found, never how it reads. The words are in [`crate::conditions`], the one
//! place that Kubernetes status, the directory-mode log, `validate` and
//! `inspect` read them from.

use bootes_envoy::convert::ConfigError;

use crate::model::ObjectKey;
use crate::rollout::Rollout;
use crate::xref::Unresolved;

/// Why an object is or is not accepted (condition `Accepted`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid, with what the warning rules found in its resource.
    Valid { warnings: Vec<ConfigError> },
    /// The latest spec is invalid (or too large for etcd on its own); the
    /// resource of generation `in_force`, if any, stays.
    Invalid {
        errors: Vec<ConfigError>,
        too_large: bool,
        in_force: Option<i64>,
    },
    /// Another, older object provides the same resource name.
    Conflict {
        /// The resource's name.
        resource: String,
        winner: ObjectKey,
    },
    /// Left out of groups whose snapshot it would push over one etcd value.
    LeftOut {
        nodes: usize,
        /// One node of those groups.
        example: String,
        /// The size of the first such snapshot with every object in it.
        snapshot_bytes: usize,
        resource_bytes: usize,
    },
    /// `run --envoy-validate`: Envoy rejects this object's resource in the
    /// snapshot of groups it is in, or gave no verdict on them. Those
    /// groups' new snapshots are not written; their nodes keep the previous
    /// ones.
    EnvoyRejected {
        /// Envoy's reason, or why it gave none.
        reason: String,
        /// Envoy gave a verdict (else it could not be run or did not
        /// answer in time, and the group is judged again later).
        judged: bool,
        /// The (first) group.
        group: String,
        /// Envoy rejects it only together with the group's other resources.
        together: bool,
        /// Nodes that keep their previous snapshot.
        nodes: usize,
    },
}

/// The reason words of `Accepted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Valid,
    InvalidConfig,
    /// Too large for one etcd value even alone, or left out of a group whose
    /// snapshot it would push over that size.
    TooLarge,
    Conflict,
    /// `run --envoy-validate`: Envoy rejects the resource.
    EnvoyRejected,
    /// `run --envoy-validate`: Envoy gave no verdict (see
    /// [`Verdict::EnvoyRejected`]).
    EnvoyUnavailable,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Valid,
        Reason::InvalidConfig,
        Reason::TooLarge,
        Reason::Conflict,
        Reason::EnvoyRejected,
        Reason::EnvoyUnavailable,
    ];
}

impl Verdict {
    pub fn accepted(&self) -> bool {
        matches!(self, Verdict::Valid { .. })
    }

    pub fn reason(&self) -> Reason {
        match self {
            Verdict::Valid { .. } => Reason::Valid,
            Verdict::Invalid {
                too_large: false, ..
            } => Reason::InvalidConfig,
            Verdict::Invalid {
                too_large: true, ..
            }
            | Verdict::LeftOut { .. } => Reason::TooLarge,
            Verdict::Conflict { .. } => Reason::Conflict,
            Verdict::EnvoyRejected { judged: true, .. } => Reason::EnvoyRejected,
            Verdict::EnvoyRejected { judged: false, .. } => Reason::EnvoyUnavailable,
        }
    }
}

/// Everything the index found about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectStatus {
    pub verdict: Verdict,
    /// Generation of the spec this status describes.
    pub observed_generation: i64,
    /// How many nodes receive this object's resource.
    pub nodes: usize,
    /// References of the resource in force that the nodes it reaches miss
    /// (condition `ResolvedRefs`); `None` when no resource is in force.
    pub refs: Option<Vec<Unresolved>>,
    /// How far the generation in force has reached the nodes it targets
    /// (condition `Programmed`); `None` when no resource is in force.
    pub rollout: Option<Rollout>,
}

impl ObjectStatus {
    pub fn accepted(&self) -> bool {
        self.verdict.accepted()
    }
}
