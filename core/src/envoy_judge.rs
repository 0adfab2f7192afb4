//! A real Envoy as the judge of group snapshots (`validate --envoy` and
//! `run --envoy-validate`), pure: the bootstraps to run
//! ([`bootes_envoy::oracle`]) and Envoy's answers mapped back to the
//! resources it rejects. Running Envoy is the caller's, behind
//! [`EnvoyOracle`].
//!
//! Every group is judged whole; in a group Envoy rejects, each resource is
//! judged alone, and Envoy's reason goes to the resources it rejects alone.
//! The group without those is judged again: when it still fails (resources
//! that conflict only together), the reason goes to the resources whose name
//! it quotes, else to every resource left.

use std::collections::BTreeSet;
use std::sync::Arc;

use bootes_envoy::oracle;
use bootes_proto::{store, ResourceType};

/// What Envoy said of one bootstrap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    Accepts,
    /// Envoy's reason (a crash on the config is one too).
    Rejects(String),
    /// No verdict: Envoy could not be run, or did not answer in time.
    Failed(String),
}

/// An Envoy binary that judges bootstraps, one [`Judgement`] each, in order.
pub trait EnvoyOracle {
    fn judge(&self, bootstraps: &[Vec<u8>]) -> Vec<Judgement>;
}

/// One group to judge.
#[derive(Clone, Debug)]
pub struct Group {
    /// `<namespace>/<group>`.
    pub name: String,
    pub snapshot: Arc<store::Snapshot>,
    /// The clusters of the Envoys' bootstrap (`--bootstrap-clusters`) in the
    /// group's namespace.
    pub bootstrap_clusters: Vec<String>,
}

/// One resource Envoy rejects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Blame {
    pub ty: ResourceType,
    pub name: String,
    pub reason: String,
    /// It passes alone: Envoy rejects it only with the other resources of
    /// its group.
    pub together: bool,
}

/// Envoy's verdict on a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupVerdict {
    Accepted,
    /// The resources it rejects (empty only when none could be told).
    Rejected(Vec<Blame>),
    /// Envoy gave no verdict on the group (see [`Judgement::Failed`]).
    Unjudged(String),
}

/// A resource of a group snapshot the oracle embeds, by its index in the
/// snapshot's order.
struct Served<'a> {
    ty: ResourceType,
    resource: &'a store::Resource,
}

/// The resources of `snapshot` the oracle embeds, in the snapshot's order.
fn served(snapshot: &store::Snapshot) -> Vec<Served<'_>> {
    let mut out = Vec::new();
    for t in &snapshot.types {
        let Some(ty) = ResourceType::from_type_url(&t.type_url).filter(|t| oracle::embeds(*t))
        else {
            continue;
        };
        out.extend(t.resources.iter().map(|resource| Served { ty, resource }));
    }
    out
}

fn bootstrap(served: &[&Served], clusters: &[String]) -> Result<Vec<u8>, String> {
    let resources: Vec<(ResourceType, &[u8])> = served
        .iter()
        .map(|s| (s.ty, s.resource.value.as_slice()))
        .collect();
    oracle::bootstrap_file(&resources, clusters)
}

/// Envoy's verdict on each of `groups`, in order. A group whose resources
/// cannot be put in a bootstrap (never one that was converted), or that
/// has none Envoy checks, is accepted. A split that Envoy fails to judge
/// counts as a rejection: a resource is only ever let through on Envoy's
/// word.
pub fn judge_groups(groups: &[Group], oracle: &dyn EnvoyOracle) -> Vec<GroupVerdict> {
    let served: Vec<Vec<Served>> = groups.iter().map(|g| served(&g.snapshot)).collect();
    let mut verdicts = vec![GroupVerdict::Accepted; groups.len()];
    let mut whole: Vec<(usize, Vec<u8>)> = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let all: Vec<&Served> = served[g].iter().collect();
        if all.is_empty() {
            continue;
        }
        if let Ok(b) = bootstrap(&all, &group.bootstrap_clusters) {
            whole.push((g, b));
        }
    }
    let files: Vec<Vec<u8>> = whole.iter().map(|(_, b)| b.clone()).collect();
    // (group, its reason) of every group Envoy rejects.
    let mut failed: Vec<(usize, String)> = Vec::new();
    for ((g, _), judgement) in whole.iter().zip(oracle.judge(&files)) {
        match judgement {
            Judgement::Accepts => {}
            Judgement::Rejects(reason) => failed.push((*g, reason)),
            Judgement::Failed(why) => verdicts[*g] = GroupVerdict::Unjudged(why),
        }
    }
    // Each resource of a rejected group, alone. Alone, a resource still
    // finds the group's clusters (as empty ones): a route to one is no
    // reason to blame it.
    let mut alone: Vec<(usize, usize)> = Vec::new();
    let mut singles = Vec::new();
    for (f, (g, _)) in failed.iter().enumerate() {
        let mut clusters = groups[*g].bootstrap_clusters.clone();
        clusters.extend(
            served[*g]
                .iter()
                .filter(|s| s.ty == ResourceType::Cluster)
                .map(|s| s.resource.name.clone()),
        );
        for (r, s) in served[*g].iter().enumerate() {
            if let Ok(b) = bootstrap(&[s], &clusters) {
                alone.push((f, r));
                singles.push(b);
            }
        }
    }
    let mut blamed: Vec<BTreeSet<Blame>> = vec![BTreeSet::new(); failed.len()];
    let mut alone_failed: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); failed.len()];
    for ((f, r), judgement) in alone.into_iter().zip(oracle.judge(&singles)) {
        let reason = match judgement {
            Judgement::Accepts => continue,
            Judgement::Rejects(reason) | Judgement::Failed(reason) => reason,
        };
        let s = &served[failed[f].0][r];
        alone_failed[f].insert(r);
        blamed[f].insert(Blame {
            ty: s.ty,
            name: s.resource.name.clone(),
            reason,
            together: false,
        });
    }
    // What fails only together: the rest, judged again (the group's own
    // reason stands when no resource failed alone).
    let rest: Vec<Vec<&Served>> = failed
        .iter()
        .enumerate()
        .map(|(f, (g, _))| {
            served[*g]
                .iter()
                .enumerate()
                .filter(|(r, _)| !alone_failed[f].contains(r))
                .map(|(_, s)| s)
                .collect()
        })
        .collect();
    let mut together: Vec<Option<String>> = failed
        .iter()
        .zip(&alone_failed)
        .map(|((_, reason), a)| a.is_empty().then(|| reason.clone()))
        .collect();
    let again: Vec<usize> = (0..failed.len())
        .filter(|f| !alone_failed[*f].is_empty() && !rest[*f].is_empty())
        .collect();
    let again_files: Vec<Vec<u8>> = again
        .iter()
        .map(|f| bootstrap(&rest[*f], &groups[failed[*f].0].bootstrap_clusters).unwrap_or_default())
        .collect();
    for (f, judgement) in again.into_iter().zip(oracle.judge(&again_files)) {
        together[f] = match judgement {
            Judgement::Accepts => None,
            Judgement::Rejects(reason) | Judgement::Failed(reason) => Some(reason),
        };
    }
    for (f, reason) in together.into_iter().enumerate() {
        let Some(reason) = reason else { continue };
        let quoted = |s: &&&Served| {
            let name = &s.resource.name;
            reason.contains(&format!("'{name}'")) || reason.contains(&format!("\"{name}\""))
        };
        let named: Vec<&&Served> = rest[f].iter().filter(quoted).collect();
        let culprits: Vec<&&Served> = if named.is_empty() {
            rest[f].iter().collect()
        } else {
            named
        };
        for s in culprits {
            blamed[f].insert(Blame {
                ty: s.ty,
                name: s.resource.name.clone(),
                reason: reason.clone(),
                together: true,
            });
        }
    }
    for ((g, _), b) in failed.iter().zip(blamed) {
        verdicts[*g] = GroupVerdict::Rejected(b.into_iter().collect());
    }
    verdicts
}

/// The object whose resource `(ty, name)` is in `snapshot`.
pub fn source_of<'a>(
    snapshot: &'a store::Snapshot,
    ty: ResourceType,
    name: &str,
) -> Option<&'a store::ObjectRef> {
    snapshot
        .types
        .iter()
        .filter(|t| t.type_url == ty.type_url())
        .flat_map(|t| &t.resources)
        .find(|r| r.name == name)
        .and_then(|r| r.source.as_ref())
}

#[cfg(test)]
mod tests;
