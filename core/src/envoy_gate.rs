//! `run --envoy-validate`: which groups a real Envoy judges before their
//! snapshot is written, and what its verdicts do to the desired state.
//! Pure: the reconcile loop runs Envoy ([`crate::envoy_judge::judge_groups`])
//! between [`EnvoyGate::to_judge`] and [`EnvoyGate::apply`].
//!
//! A verdict is kept per group and snapshot version (a content hash), so a
//! group is judged again only when what its nodes would receive changes. A
//! group Envoy rejects is withheld ([`Desired::withheld`]): etcd keeps its
//! previous snapshot and bindings. The objects whose resource Envoy rejects
//! get [`Verdict::EnvoyRejected`]; the group's other objects keep their
//! status. A group Envoy gave no verdict on is withheld too, every valid
//! object of it says why, and it is judged again at the next sync.

use std::collections::{BTreeMap, BTreeSet};

use crate::envoy_judge::{source_of, Group, GroupVerdict};
use crate::index::Desired;
use crate::model::ObjectKey;
use crate::verdict::Verdict;
use crate::xref::BootstrapClusters;

#[derive(Debug, Default)]
pub struct EnvoyGate {
    /// Per group: the snapshot version judged, and Envoy's verdict.
    verdicts: BTreeMap<String, (String, GroupVerdict)>,
}

/// What [`EnvoyGate::apply`] withheld.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Withheld {
    /// Groups Envoy rejects.
    pub rejected: usize,
    /// Groups Envoy gave no verdict on (to judge again).
    pub unjudged: usize,
}

impl EnvoyGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// The groups of `desired` without a verdict on their current snapshot.
    pub fn to_judge(&self, desired: &Desired, bootstrap: &BootstrapClusters) -> Vec<Group> {
        desired
            .groups
            .iter()
            .filter(|(name, g)| {
                self.verdicts
                    .get(*name)
                    .is_none_or(|(version, _)| *version != g.snapshot.version)
            })
            .map(|(name, g)| Group {
                name: name.clone(),
                snapshot: g.snapshot.clone(),
                bootstrap_clusters: bootstrap.names_in(&g.snapshot.namespace),
            })
            .collect()
    }

    /// Records Envoy's verdicts on `groups` (in order).
    pub fn record(&mut self, groups: &[Group], verdicts: Vec<GroupVerdict>) {
        for (g, v) in groups.iter().zip(verdicts) {
            self.verdicts
                .insert(g.name.clone(), (g.snapshot.version.clone(), v));
        }
    }

    /// Withholds the groups of `desired` whose current snapshot Envoy did
    /// not accept, and says so in the statuses of the objects concerned.
    /// Forgets groups that are gone and verdicts that were no verdict.
    pub fn apply(&mut self, desired: &mut Desired) -> Withheld {
        self.verdicts
            .retain(|name, _| desired.groups.contains_key(name));
        let mut out = Withheld::default();
        for (name, (version, verdict)) in &self.verdicts {
            let group = &desired.groups[name];
            if *version != group.snapshot.version {
                // Not judged: the caller did not run Envoy on it.
                continue;
            }
            let snapshot = &group.snapshot;
            let nodes = group.nodes.len();
            // (object, reason, judged, together)
            let blamed: Vec<(ObjectKey, &str, bool, bool)> = match verdict {
                GroupVerdict::Accepted => continue,
                GroupVerdict::Rejected(blamed) => {
                    out.rejected += 1;
                    blamed
                        .iter()
                        .filter_map(|b| {
                            let key = ObjectKey::of_source(source_of(snapshot, b.ty, &b.name)?)?;
                            Some((key, b.reason.as_str(), true, b.together))
                        })
                        .collect()
                }
                GroupVerdict::Unjudged(why) => {
                    out.unjudged += 1;
                    snapshot
                        .types
                        .iter()
                        .flat_map(|t| &t.resources)
                        .filter_map(|r| ObjectKey::of_source(r.source.as_ref()?))
                        .map(|key| (key, why.as_str(), false, false))
                        .collect()
                }
            };
            desired.withheld.insert(name.clone());
            let mut seen = BTreeSet::new();
            for (key, reason, judged, together) in blamed {
                if !seen.insert(key.clone()) {
                    continue;
                }
                let Some(status) = desired.statuses.get_mut(&key) else {
                    continue;
                };
                status.nodes = status.nodes.saturating_sub(nodes);
                match &mut status.verdict {
                    Verdict::Valid { .. } => {
                        status.verdict = Verdict::EnvoyRejected {
                            reason: reason.to_string(),
                            judged,
                            group: name.clone(),
                            together,
                            nodes,
                        }
                    }
                    // In several withheld groups: the first one's reason.
                    Verdict::EnvoyRejected { nodes: n, .. } => *n += nodes,
                    // Its own problem is what its status says.
                    _ => {}
                }
            }
        }
        self.verdicts
            .retain(|_, (_, v)| !matches!(v, GroupVerdict::Unjudged(_)));
        out
    }
}

#[cfg(test)]
mod tests;
