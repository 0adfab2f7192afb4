//! The pure core of the controller: Bootes objects and pods in, groups,
//! snapshots, node bindings and object statuses out. No I/O, no async.
//!
//! A *group* is the set of pods of one namespace that are selected by exactly
//! the same objects; they share one snapshot, so a change to an object used
//! by 500 pods of one Deployment is one etcd write. The group ID is a hash of
//! the selecting objects' identities (not their content), so editing an object
//! rewrites the snapshot but moves no binding.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bootes_proto::{store, version, ResourceType};

use crate::model::{BootesObject, ObjectKey, Pod, PodKey};
use crate::service_endpoints::{self, EndpointSlice, SliceKey};
use bootes_envoy::convert::{self, ConfigError, Converted};

/// An object as the index keeps it: its latest spec, the last valid version of
/// its resource (which stays in force while a newer spec is invalid), and the
/// problems of the latest spec.
#[derive(Clone, Debug)]
struct Entry {
    object: BootesObject,
    /// What was converted: `spec.config`, or for an Endpoint naming a
    /// Service, with the endpoints of its slices. `None` when the spec was
    /// rejected before conversion.
    input: Option<serde_json::Value>,
    accepted: Option<Accepted>,
    errors: Vec<ConfigError>,
    /// The errors are that the resource is too large for etcd on its own.
    too_large: bool,
}

#[derive(Clone, Debug)]
struct Accepted {
    resource: Arc<Converted>,
    generation: i64,
    /// lb_endpoints generated from EndpointSlices (0 when written out).
    service_endpoints: usize,
}

/// Objects and pods, indexed.
#[derive(Default)]
pub struct Index {
    objects: BTreeMap<ObjectKey, Entry>,
    pods: BTreeMap<PodKey, Pod>,
    /// EndpointSlices of Services, for Endpoints that name a Service.
    slices: BTreeMap<SliceKey, EndpointSlice>,
    /// What the xds-servers recorded about each node: (node, replica) → status.
    node_status: BTreeMap<(String, String), store::NodeStatus>,
    /// Group snapshots of the last [`Index::desired`], rebuilt only when
    /// their objects change.
    memo: memo::Memo,
}

/// Why an object is or is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Valid,
    InvalidConfig,
    /// Too large for one etcd value even alone (see [`size`]).
    TooLarge,
    Conflict,
    /// Valid for Bootes, but an Envoy NACKed the resource.
    Rejected,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Valid => "Valid",
            Reason::InvalidConfig => "InvalidConfig",
            Reason::TooLarge => "TooLarge",
            Reason::Conflict => "Conflict",
            Reason::Rejected => "Rejected",
        }
    }
}

/// The status the index computes for one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectStatus {
    pub accepted: bool,
    pub reason: Reason,
    pub message: String,
    /// Generation of the spec this status describes.
    pub observed_generation: i64,
    /// How many nodes receive this object's resource.
    pub nodes: usize,
}

/// One group's snapshot and the nodes bound to it.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSnapshot {
    /// Shared with the index's memo: unchanged groups are not rebuilt.
    pub snapshot: Arc<store::Snapshot>,
    /// `snapshot` encoded (before Secrets are sealed), once per change.
    pub encoded: Arc<[u8]>,
    /// Node IDs bound to this snapshot, sorted.
    pub nodes: Vec<String>,
}

impl GroupSnapshot {
    pub fn new(snapshot: store::Snapshot, nodes: Vec<String>) -> Self {
        use prost::Message;
        Self {
            encoded: snapshot.encode_to_vec().into(),
            snapshot: Arc::new(snapshot),
            nodes,
        }
    }
}

/// Everything the controller should have written, computed from scratch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// By `<namespace>/<group>`.
    pub groups: BTreeMap<String, GroupSnapshot>,
    /// By node ID.
    pub bindings: BTreeMap<String, store::NodeBinding>,
    pub statuses: BTreeMap<ObjectKey, ObjectStatus>,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an object. A valid spec replaces the resource in force;
    /// an invalid one is recorded and the previous valid resource stays.
    /// Returns the problems of this spec (empty when valid).
    pub fn apply_object(&mut self, object: BootesObject) -> Vec<ConfigError> {
        let previous = self.objects.remove(&object.key);
        let entry = self.evaluate(object, previous);
        let result = entry.errors.clone();
        self.objects.insert(entry.object.key.clone(), entry);
        result
    }

    /// Converts `object` (unless what it converts from is unchanged since
    /// `previous`), keeping the previous valid resource if it is invalid.
    fn evaluate(&self, object: BootesObject, previous: Option<Entry>) -> Entry {
        let slices = self.slices_of_namespace(&object.key.namespace);
        let effective = match service_endpoints::effective_config(&object, slices) {
            Ok(effective) => effective,
            Err(errors) => {
                return Entry {
                    object,
                    input: None,
                    accepted: previous.and_then(|p| p.accepted),
                    errors,
                    too_large: false,
                }
            }
        };
        let unchanged = previous
            .as_ref()
            .is_some_and(|p| p.input.as_ref() == Some(&effective.config));
        let (accepted, errors, too_large) = match previous {
            // Same input: keep the conversion (and its problems) as they were;
            // a valid resource is now in force at the new generation.
            Some(p) if unchanged => {
                let accepted = p.accepted.map(|a| Accepted {
                    generation: if p.errors.is_empty() {
                        object.generation
                    } else {
                        a.generation
                    },
                    ..a
                });
                (accepted, p.errors, p.too_large)
            }
            previous => match convert::convert(object.key.kind, &effective.config) {
                Ok(resource) => {
                    let resource = Arc::new(resource);
                    match too_large(&object, &resource) {
                        Some(e) => (previous.and_then(|p| p.accepted), vec![e], true),
                        None => (
                            Some(Accepted {
                                resource,
                                generation: object.generation,
                                service_endpoints: effective.endpoints,
                            }),
                            Vec::new(),
                            false,
                        ),
                    }
                }
                Err(errors) => (previous.and_then(|p| p.accepted), errors, false),
            },
        };
        Entry {
            object,
            input: Some(effective.config),
            accepted,
            errors,
            too_large,
        }
    }

    fn slices_of_namespace<'a>(
        &'a self,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a EndpointSlice> + 'a {
        let from = SliceKey {
            namespace: namespace.to_string(),
            name: String::new(),
        };
        self.slices
            .range(from..)
            .take_while(move |(k, _)| k.namespace == namespace)
            .map(|(_, s)| s)
    }

    /// Adds or replaces an EndpointSlice; the Endpoints naming its Service
    /// follow.
    pub fn apply_slice(&mut self, slice: EndpointSlice) {
        let previous = self.slices.insert(slice.key.clone(), slice.clone());
        if previous.as_ref() == Some(&slice) {
            return;
        }
        let mut services = vec![(slice.key.namespace.clone(), slice.service)];
        services.extend(previous.map(|p| (p.key.namespace, p.service)));
        self.refresh_services(&services);
    }

    pub fn delete_slice(&mut self, key: &SliceKey) {
        if let Some(previous) = self.slices.remove(key) {
            self.refresh_services(&[(previous.key.namespace, previous.service)]);
        }
    }

    /// Replaces every EndpointSlice (a relist, or a directory reload).
    pub fn reset_slices(&mut self, slices: impl IntoIterator<Item = EndpointSlice>) {
        let slices: BTreeMap<SliceKey, EndpointSlice> =
            slices.into_iter().map(|s| (s.key.clone(), s)).collect();
        let previous = std::mem::replace(&mut self.slices, slices);
        let mut services = Vec::new();
        for (key, slice) in &previous {
            if self.slices.get(key) != Some(slice) {
                services.push((slice.key.namespace.clone(), slice.service.clone()));
            }
        }
        for (key, slice) in &self.slices {
            if previous.get(key) != Some(slice) {
                services.push((slice.key.namespace.clone(), slice.service.clone()));
            }
        }
        self.refresh_services(&services);
    }

    /// Re-evaluates the Endpoints naming any of `services` (namespace, name).
    fn refresh_services(&mut self, services: &[(String, String)]) {
        let keys: Vec<ObjectKey> = self
            .objects
            .values()
            .filter(|e| {
                e.object.service.as_ref().is_some_and(|s| {
                    services
                        .iter()
                        .any(|(ns, name)| *ns == e.object.key.namespace && *name == s.name)
                })
            })
            .map(|e| e.object.key.clone())
            .collect();
        for key in keys {
            let Some(entry) = self.objects.remove(&key) else {
                continue;
            };
            let entry = self.evaluate(entry.object.clone(), Some(entry));
            self.objects.insert(key, entry);
        }
    }

    /// EndpointSlices known, and the lb_endpoints generated from them for the
    /// Endpoints in force.
    pub fn service_endpoint_counts(&self) -> (usize, usize) {
        let endpoints = self
            .objects
            .values()
            .filter_map(|e| e.accepted.as_ref())
            .map(|a| a.service_endpoints)
            .sum();
        (self.slices.len(), endpoints)
    }

    /// The latest spec of an object.
    pub fn object(&self, key: &ObjectKey) -> Option<&BootesObject> {
        self.objects.get(key).map(|e| &e.object)
    }

    pub fn delete_object(&mut self, key: &ObjectKey) {
        self.objects.remove(key);
    }

    /// Replaces the whole set of objects (a relist, or a directory reload),
    /// keeping the last valid version of objects that are still present.
    /// Returns the problems of every invalid object.
    pub fn reset_objects(
        &mut self,
        objects: impl IntoIterator<Item = BootesObject>,
    ) -> Vec<(ObjectKey, Vec<ConfigError>)> {
        let mut keep = BTreeSet::new();
        let mut problems = Vec::new();
        for object in objects {
            let key = object.key.clone();
            let errors = self.apply_object(object);
            if !errors.is_empty() {
                problems.push((key.clone(), errors));
            }
            keep.insert(key);
        }
        self.objects.retain(|k, _| keep.contains(k));
        problems
    }

    pub fn apply_pod(&mut self, pod: Pod) {
        self.pods.insert(pod.key(), pod);
    }

    pub fn delete_pod(&mut self, key: &PodKey) {
        self.pods.remove(key);
    }

    pub fn reset_pods(&mut self, pods: impl IntoIterator<Item = Pod>) {
        self.pods = pods.into_iter().map(|p| (p.key(), p)).collect();
    }

    /// Replaces every xds-server record (after a relist of `status/`).
    pub fn reset_node_status(&mut self, records: impl IntoIterator<Item = store::NodeStatus>) {
        self.node_status = records
            .into_iter()
            .map(|s| ((s.node_id.clone(), s.replica.clone()), s))
            .collect();
    }

    /// Records what an xds-server replica reported for a node (`None`: the
    /// record is gone).
    pub fn set_node_status(
        &mut self,
        node: &str,
        replica: &str,
        status: Option<store::NodeStatus>,
    ) {
        let key = (node.to_string(), replica.to_string());
        match status {
            Some(s) => self.node_status.insert(key, s),
            None => self.node_status.remove(&key),
        };
    }

    /// Computes groups, snapshots, bindings and statuses.
    pub fn desired(&self) -> Desired {
        // Objects by namespace, in conflict precedence order (oldest first).
        let mut by_namespace: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for entry in self.objects.values() {
            by_namespace
                .entry(entry.object.key.namespace.as_str())
                .or_default()
                .push(entry);
        }
        for entries in by_namespace.values_mut() {
            entries.sort_by(|a, b| a.object.precedence().cmp(&b.object.precedence()));
        }

        // Pods by the exact list of objects selecting them.
        let mut groups: BTreeMap<(&str, Vec<&ObjectKey>), Vec<&Pod>> = BTreeMap::new();
        for pod in self.pods.values() {
            let Some(entries) = by_namespace.get(pod.namespace.as_str()) else {
                continue;
            };
            let selecting: Vec<&ObjectKey> = entries
                .iter()
                .filter(|e| e.object.selects(pod))
                .map(|e| &e.object.key)
                .collect();
            if !selecting.is_empty() {
                groups
                    .entry((pod.namespace.as_str(), selecting))
                    .or_default()
                    .push(pod);
            }
        }

        let mut desired = Desired::default();
        let mut reach: BTreeMap<&ObjectKey, usize> = BTreeMap::new();
        let mut conflicts: BTreeMap<&ObjectKey, &ObjectKey> = BTreeMap::new();

        let mut round = self.memo.round();
        for ((namespace, keys), pods) in &groups {
            let entries: Vec<&Entry> = keys.iter().map(|k| &self.objects[*k]).collect();
            let built = round.get(namespace, &entries);
            for &i in &built.winners {
                *reach.entry(keys[i]).or_default() += pods.len();
            }
            for &(loser, winner) in &built.losers {
                conflicts.entry(keys[loser]).or_insert(keys[winner]);
            }
            let snapshot_ref = format!("{namespace}/{}", built.snapshot.group);
            let mut nodes: Vec<String> = pods.iter().map(|p| p.node_id()).collect();
            nodes.sort();
            for pod in pods {
                desired.bindings.insert(
                    pod.node_id(),
                    store::NodeBinding {
                        snapshot: snapshot_ref.clone(),
                        namespace: pod.namespace.clone(),
                        pod_name: pod.name.clone(),
                        pod_uid: pod.uid.clone(),
                        service_account: pod.service_account.clone(),
                    },
                );
            }
            desired.groups.insert(
                snapshot_ref,
                GroupSnapshot {
                    snapshot: built.snapshot.clone(),
                    encoded: built.encoded.clone(),
                    nodes,
                },
            );
        }
        round.finish();

        let rejections = self.rejections(&desired);
        for (key, entry) in &self.objects {
            let nodes = reach.get(key).copied().unwrap_or(0);
            let status = if !entry.errors.is_empty() {
                let detail = join_errors(&entry.errors);
                let message = match &entry.accepted {
                    Some(a) => format!("{detail} (generation {} stays in force)", a.generation),
                    None => detail,
                };
                ObjectStatus {
                    accepted: false,
                    reason: if entry.too_large {
                        Reason::TooLarge
                    } else {
                        Reason::InvalidConfig
                    },
                    message,
                    observed_generation: entry.object.generation,
                    nodes,
                }
            } else if let Some(winner) = conflicts.get(key) {
                let resource = entry.accepted.as_ref().map(|a| a.resource.name.as_str());
                ObjectStatus {
                    accepted: false,
                    reason: Reason::Conflict,
                    message: format!(
                        "{} {:?} is already provided by {winner} (older objects win)",
                        key.kind.short_name(),
                        resource.unwrap_or_default(),
                    ),
                    observed_generation: entry.object.generation,
                    nodes,
                }
            } else if let Some((nodes_rejecting, example, detail)) = rejections.get(key) {
                ObjectStatus {
                    accepted: false,
                    reason: Reason::Rejected,
                    message: format!(
                        "rejected by Envoy on {nodes_rejecting} node(s), e.g. {example}: {detail}"
                    ),
                    observed_generation: entry.object.generation,
                    nodes,
                }
            } else {
                ObjectStatus {
                    accepted: true,
                    reason: Reason::Valid,
                    message: String::new(),
                    observed_generation: entry.object.generation,
                    nodes,
                }
            };
            desired.statuses.insert(key.clone(), status);
        }
        desired
    }
}

impl Index {
    /// Objects whose resources a node NACKed: key → (how many nodes, one
    /// node, Envoy's message). A NACK names the resources of the rejected
    /// response; each is traced to its object through the node's snapshot.
    fn rejections(&self, desired: &Desired) -> BTreeMap<ObjectKey, (usize, String, String)> {
        let mut out: BTreeMap<ObjectKey, (BTreeSet<&str>, String, String)> = BTreeMap::new();
        for ((node, _replica), status) in &self.node_status {
            let Some(binding) = desired.bindings.get(node) else {
                continue;
            };
            let Some(group) = desired.groups.get(&binding.snapshot) else {
                continue;
            };
            for t in status
                .types
                .iter()
                .filter(|t| !t.nacked_resources.is_empty())
            {
                let Some(resources) = group
                    .snapshot
                    .types
                    .iter()
                    .find(|r| r.type_url == t.type_url)
                else {
                    continue;
                };
                for name in &t.nacked_resources {
                    let Some(source) = resources
                        .resources
                        .iter()
                        .find(|r| &r.name == name)
                        .and_then(|r| r.source.as_ref())
                    else {
                        continue;
                    };
                    let Some(kind) = ResourceType::from_kind(&source.kind) else {
                        continue;
                    };
                    let key = ObjectKey {
                        kind,
                        namespace: source.namespace.clone(),
                        name: source.name.clone(),
                    };
                    let entry = out
                        .entry(key)
                        .or_insert_with(|| (BTreeSet::new(), node.clone(), t.nack_detail.clone()));
                    entry.0.insert(node.as_str());
                }
            }
        }
        out.into_iter()
            .map(|(k, (nodes, example, detail))| (k, (nodes.len(), example, detail)))
            .collect()
    }
}

/// One line naming every problem of an object's spec.
pub fn join_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Builds the snapshot of one group from its selecting objects (in precedence
/// order). Returns it with the objects whose resource made it in, and the
/// (loser, winner) pairs of conflicts.
fn build_snapshot<'a>(
    namespace: &str,
    entries: &[&'a Entry],
) -> (
    store::Snapshot,
    Vec<&'a ObjectKey>,
    Vec<(&'a ObjectKey, &'a ObjectKey)>,
) {
    let mut by_type: BTreeMap<ResourceType, BTreeMap<&str, (store::Resource, &ObjectKey)>> =
        BTreeMap::new();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for entry in entries {
        let Some(accepted) = &entry.accepted else {
            continue;
        };
        let resource = &accepted.resource;
        let slot = by_type.entry(resource.ty).or_default();
        if let Some((_, winner)) = slot.get(resource.name.as_str()) {
            losers.push((&entry.object.key, *winner));
            continue;
        }
        winners.push(&entry.object.key);
        let object = &entry.object;
        slot.insert(
            &resource.name,
            (
                store::Resource {
                    name: resource.name.clone(),
                    version: resource.version.clone(),
                    value: resource.value.clone(),
                    source: Some(store::ObjectRef {
                        kind: object.key.kind.kind().to_string(),
                        namespace: object.key.namespace.clone(),
                        name: object.key.name.clone(),
                        uid: object.uid.clone(),
                        generation: accepted.generation,
                    }),
                    sealed: None,
                },
                &object.key,
            ),
        );
    }

    let types: Vec<store::TypeResources> = by_type
        .into_iter()
        .map(|(ty, resources)| {
            let resources: Vec<store::Resource> = resources.into_values().map(|(r, _)| r).collect();
            store::TypeResources {
                type_url: ty.type_url().to_string(),
                version: version::of_set(
                    resources
                        .iter()
                        .map(|r| (r.name.as_str(), r.version.as_str())),
                ),
                resources,
            }
        })
        .collect();
    let objects: Vec<store::ObjectRef> = entries
        .iter()
        .map(|e| store::ObjectRef {
            kind: e.object.key.kind.kind().to_string(),
            namespace: e.object.key.namespace.clone(),
            name: e.object.key.name.clone(),
            uid: e.object.uid.clone(),
            // Identity only: an edit that is rejected must not rewrite the snapshot.
            generation: 0,
        })
        .collect();
    let group = version::of_set(objects.iter().map(|o| (o.kind.as_str(), o.name.as_str())));
    let snapshot = store::Snapshot {
        namespace: namespace.to_string(),
        version: version::of_set(
            types
                .iter()
                .map(|t| (t.type_url.as_str(), t.version.as_str())),
        ),
        group,
        types,
        objects,
    };
    (snapshot, winners, losers)
}

mod memo;
mod size;
#[cfg(test)]
mod tests;

pub use size::too_large;
