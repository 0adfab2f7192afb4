//! How far each object has reached the fleet (condition `Programmed`),
//! computed from what etcd holds alone: the group snapshots (each resource
//! names its object and generation), the nodes bound to them, and the
//! `status/` records the xds-servers write (the resource versions each node
//! ACKed and NACKed, per replica). The controller keeps it up to date as
//! records arrive ([`Tally`]: a record counts again only its node's objects);
//! `inspect rollout` counts it once ([`rollouts`]); the same code both ways.
//!
//! A node *runs* an object's generation when, on some replica, it ACKed a
//! response holding that generation's resource version. Versions are content
//! hashes that include the resource's name, so the check is exact under
//! every race: an older generation ACKed late has another version; a later
//! snapshot of the group (another object's edit) still holding this
//! generation's resource has the same one.

use std::collections::{BTreeMap, HashMap, HashSet};

use bootes_proto::store;

use crate::model::ObjectKey;

mod tally;
#[cfg(test)]
mod tests;

pub use tally::Tally;

/// What the xds-servers recorded, indexed for the checks: node → replica →
/// per type URL.
#[derive(Clone, Debug, Default)]
pub struct Records {
    nodes: HashMap<String, BTreeMap<String, NodeRecord>>,
}

type NodeRecord = HashMap<String, TypeRecord>;

#[derive(Clone, Debug, Default)]
struct TypeRecord {
    /// Resource versions the node holds, as ACKed.
    acked: HashSet<String>,
    /// Resource versions of the last NACKed response (until a later ACK).
    nacked: HashSet<String>,
    /// Names of the NACKed response (records without versions).
    nacked_names: HashSet<String>,
    detail: String,
}

impl Records {
    pub fn new(records: impl IntoIterator<Item = store::NodeStatus>) -> Self {
        let mut out = Self::default();
        for r in records {
            let (node, replica) = (r.node_id.clone(), r.replica.clone());
            out.set(&node, &replica, Some(r));
        }
        out
    }

    /// Records what a replica reported for a node (`None`: the record is
    /// gone, e.g. with the replica's lease).
    pub fn set(&mut self, node: &str, replica: &str, status: Option<store::NodeStatus>) {
        match status {
            Some(s) => {
                let record = s
                    .types
                    .into_iter()
                    .map(|t| {
                        let record = TypeRecord {
                            acked: t.acked_resource_versions.into_iter().collect(),
                            nacked: t.nacked_resource_versions.into_iter().collect(),
                            nacked_names: t.nacked_resources.into_iter().collect(),
                            detail: t.nack_detail,
                        };
                        (t.type_url, record)
                    })
                    .collect();
                self.nodes
                    .entry(node.to_string())
                    .or_default()
                    .insert(replica.to_string(), record);
            }
            None => {
                if let Some(replicas) = self.nodes.get_mut(node) {
                    replicas.remove(replica);
                    if replicas.is_empty() {
                        self.nodes.remove(node);
                    }
                }
            }
        }
    }

    /// Where `node` stands with one resource.
    fn state(&self, node: &str, type_url: &str, name: &str, version: &str) -> NodeState<'_> {
        let Some(replicas) = self.nodes.get(node) else {
            return NodeState::NotConnected;
        };
        let mut rejected = None;
        for record in replicas.values() {
            let Some(t) = record.get(type_url) else {
                continue;
            };
            if t.acked.contains(version) {
                return NodeState::Running;
            }
            let nacked = if t.nacked.is_empty() {
                t.nacked_names.contains(name)
            } else {
                t.nacked.contains(version)
            };
            if nacked {
                rejected = Some(t.detail.as_str());
            }
        }
        rejected.map_or(NodeState::Pending, NodeState::Rejected)
    }
}

enum NodeState<'a> {
    Running,
    Pending,
    /// With Envoy's message.
    Rejected(&'a str),
    NotConnected,
}

/// One object's rollout: of the nodes its generation `generation` targets,
/// how many run it, and which do not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    pub generation: i64,
    pub running: usize,
    /// Connected, not (yet) running it.
    pub pending: Nodes,
    /// A replica reported the node NACKed it (examples carry Envoy's message).
    pub rejected: Nodes,
    /// No replica has a record of the node: counted, but it does not hold
    /// the rollout back.
    pub not_connected: Nodes,
}

/// How many nodes, and the first few of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nodes {
    pub count: usize,
    pub examples: Vec<Example>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub node: String,
    /// Envoy's message, for a rejected node.
    pub detail: String,
}

/// Where a rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Every connected node targeted runs it.
    Programmed,
    Pending,
    /// Some node NACKed it.
    Rejected,
}

impl Rollout {
    pub fn empty(generation: i64) -> Self {
        Self {
            generation,
            ..Self::default()
        }
    }

    /// Connected nodes targeted.
    pub fn connected(&self) -> usize {
        self.running + self.pending.count + self.rejected.count
    }

    pub fn progress(&self) -> Progress {
        if self.rejected.count > 0 {
            Progress::Rejected
        } else if self.pending.count > 0 {
            Progress::Pending
        } else {
            Progress::Programmed
        }
    }
}

/// One group as etcd holds it: its snapshot and the nodes bound to it.
#[derive(Clone, Copy)]
pub struct Group<'a> {
    pub snapshot: &'a store::Snapshot,
    pub nodes: &'a [String],
}

/// The rollout of every object with a resource in some group, naming at
/// most `examples` nodes of each kind (the first by name), counted from
/// scratch. An object whose groups hold different generations (between two
/// writes) is judged on the newest; nodes of groups still holding an older
/// one are pending.
pub fn rollouts<'a>(
    groups: impl IntoIterator<Item = Group<'a>>,
    records: Records,
    examples: usize,
) -> BTreeMap<ObjectKey, Rollout> {
    let groups: Vec<(String, Group<'a>)> = groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| (i.to_string(), g))
        .collect();
    Tally::new(groups.iter().map(|(k, g)| (k.as_str(), *g)), records).rollouts(examples)
}

/// Calls `f(object, type URL, resource, generation)` for each resource of a
/// snapshot that names the object it came from.
fn for_each_resource(
    snapshot: &store::Snapshot,
    mut f: impl FnMut(ObjectKey, &str, &store::Resource, i64),
) {
    for t in &snapshot.types {
        for r in &t.resources {
            let Some(source) = &r.source else { continue };
            let Some(key) = ObjectKey::of_source(source) else {
                continue;
            };
            f(key, &t.type_url, r, source.generation);
        }
    }
}
