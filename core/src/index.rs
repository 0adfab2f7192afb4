//! The pure core of the controller: Bootes objects and pods in, groups,
//! snapshots, node bindings and object statuses out. No I/O, no async.
//!
//! A *group* is the set of pods of one namespace that are selected by exactly
//! the same objects; they share one snapshot, so a change to an object used
//! by 500 pods of one Deployment is one etcd write. The group ID is a hash of
//! the selecting objects' identities (not their content), so editing an object
//! rewrites the snapshot but moves no binding.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use bootes_proto::{store, version, ResourceType};
use prost::Message;

use crate::model::{BootesObject, ObjectKey, Pod, PodKey};
use crate::rollout::{self, Records, Rollout, Tally};
use crate::service_endpoints::{self, EndpointSlice, SliceKey};
use crate::verdict::{ObjectStatus, Verdict};
use crate::xref::{self, BootstrapClusters, Gaps, Reference, Unresolved};
use bootes_envoy::convert::{self, ConfigError, Converted};
use bootes_proto::limits::MAX_VALUE_BYTES;

/// An object as the index keeps it: its latest spec, the last valid version of
/// its resource (which stays in force while a newer spec is invalid), and the
/// problems of the latest spec.
#[derive(Clone, Debug)]
struct Entry {
    object: BootesObject,
    /// What was converted when it is not `object.config` as written: for
    /// an Endpoint naming a Service, the config with the endpoints of its
    /// slices (see [`Entry::input`]).
    filled: Option<serde_json::Value>,
    /// The latest spec got to conversion (it was not rejected before).
    converted: bool,
    accepted: Option<Accepted>,
    errors: Vec<ConfigError>,
    /// The errors are that the resource is too large for etcd on its own.
    too_large: bool,
    /// What of the Service's EndpointSlices could not be used (see
    /// [`service_endpoints::load_assignment`]), for the latest spec.
    slice_warnings: Vec<ConfigError>,
}

#[derive(Clone, Debug)]
struct Accepted {
    resource: Arc<Converted>,
    generation: i64,
    /// lb_endpoints generated from EndpointSlices (0 when written out).
    service_endpoints: usize,
    /// The names the resource refers to (see [`xref`]).
    references: Arc<Vec<Reference>>,
}

/// Objects and pods, indexed.
#[derive(Default)]
pub struct Index {
    /// Shared with the namespace views the webhook judges objects against
    /// (see [`Index::namespace_view`]): a view copies pointers, not specs.
    objects: BTreeMap<ObjectKey, Arc<Entry>>,
    pods: BTreeMap<PodKey, Pod>,
    /// EndpointSlices of Services, for Endpoints that name a Service.
    slices: BTreeMap<SliceKey, EndpointSlice>,
    /// What the xds-servers recorded about each node, on each replica, and
    /// each object's rollout counted from them as they arrive.
    rollouts: Tally,
    /// Group snapshots of the last [`Index::desired`], rebuilt only when
    /// their objects change.
    memo: memo::Memo,
    /// Per namespace, the stamp of its last change (objects, pods, slices).
    changed: BTreeMap<String, u64>,
    /// Counts changes, for `changed`.
    stamp: u64,
    /// Each namespace's part of the last [`Index::desired`].
    namespaces: BTreeMap<String, NamespacePart>,
    /// Clusters the Envoys' bootstrap defines: references to them resolve.
    bootstrap: BootstrapClusters,
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
    /// Groups whose snapshot is not to be written (Envoy rejects it: see
    /// [`crate::envoy_gate`]): their nodes keep what etcd holds.
    pub withheld: BTreeSet<String>,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares the clusters of the Envoys' bootstrap.
    pub fn set_bootstrap_clusters(&mut self, bootstrap: BootstrapClusters) {
        self.bootstrap = bootstrap;
        // Every namespace's references are judged again.
        self.namespaces.clear();
    }

    /// Adds or replaces an object. A valid spec replaces the resource in force;
    /// an invalid one is recorded and the previous valid resource stays.
    /// Returns the problems of this spec (empty when valid).
    pub fn apply_object(&mut self, object: BootesObject) -> Vec<ConfigError> {
        self.touch(&object.key.namespace);
        let previous = self.objects.remove(&object.key);
        let entry = self.evaluate(object, previous.as_deref());
        let result = entry.errors.clone();
        self.objects
            .insert(entry.object.key.clone(), Arc::new(entry));
        result
    }

    /// Converts `object` (unless what it converts from is unchanged since
    /// `previous`), keeping the previous valid resource if it is invalid.
    fn evaluate(&self, object: BootesObject, previous: Option<&Entry>) -> Entry {
        let slices = self.slices_of_namespace(&object.key.namespace);
        let filled = match service_endpoints::effective_config(&object, slices) {
            Ok(filled) => filled,
            Err(errors) => {
                return Entry {
                    object,
                    filled: None,
                    converted: false,
                    accepted: previous.and_then(|p| p.accepted.clone()),
                    errors,
                    too_large: false,
                    slice_warnings: Vec::new(),
                }
            }
        };
        let (filled, endpoints, slice_warnings) = match filled {
            Some(la) => (Some(la.config), la.endpoints, la.warnings),
            None => (None, 0, Vec::new()),
        };
        let input = filled.as_ref().unwrap_or(&object.config);
        let unchanged = previous.is_some_and(|p| p.input() == Some(input));
        let (accepted, errors, too_large) = match previous {
            // Same input: keep the conversion (and its problems) as they were;
            // a valid resource is now in force at the new generation.
            Some(p) if unchanged => {
                let accepted = p.accepted.clone().map(|a| Accepted {
                    generation: if p.errors.is_empty() {
                        object.generation
                    } else {
                        a.generation
                    },
                    ..a
                });
                (accepted, p.errors.clone(), p.too_large)
            }
            previous => match convert::convert(object.key.kind, input) {
                Ok(resource) => {
                    let resource = Arc::new(resource);
                    match too_large(&object, &resource) {
                        Some(e) => (previous.and_then(|p| p.accepted.clone()), vec![e], true),
                        None => (
                            Some(Accepted {
                                references: Arc::new(if xref::may_refer(resource.ty) {
                                    xref::references(resource.ty, &resource.message())
                                } else {
                                    Vec::new()
                                }),
                                resource,
                                generation: object.generation,
                                service_endpoints: endpoints,
                            }),
                            Vec::new(),
                            false,
                        ),
                    }
                }
                Err(errors) => (previous.and_then(|p| p.accepted.clone()), errors, false),
            },
        };
        Entry {
            object,
            filled,
            converted: true,
            accepted,
            errors,
            too_large,
            slice_warnings,
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
            self.touch(&key.namespace);
            let entry = self.evaluate(entry.object.clone(), Some(&entry));
            self.objects.insert(key, Arc::new(entry));
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

    /// What the warning rules found in an object's resource in force, then
    /// what of its Service's EndpointSlices could not be used.
    pub fn warnings(&self, key: &ObjectKey) -> Vec<&ConfigError> {
        self.objects
            .get(key)
            .map(|e| e.warnings())
            .unwrap_or_default()
    }

    /// Objects, pods and EndpointSlices of one namespace only, as a new
    /// index (entries and conversions shared, not copied or redone): what the admission webhook
    /// judges a candidate object against. A group never spans namespaces,
    /// so the namespace's statuses come out as in the whole index.
    pub fn namespace_view(&self, namespace: &str) -> Index {
        let mut view = Index {
            bootstrap: self.bootstrap.clone(),
            ..Index::default()
        };
        view.objects = self
            .objects
            .iter()
            .filter(|(k, _)| k.namespace == namespace)
            .map(|(k, e)| (k.clone(), Arc::clone(e)))
            .collect();
        view.pods = self
            .pods
            .iter()
            .filter(|(k, _)| k.namespace == namespace)
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        view.slices = self
            .slices_of_namespace(namespace)
            .map(|s| (s.key.clone(), s.clone()))
            .collect();
        view.touch(namespace);
        view
    }

    /// Per namespace, a number that changes whenever anything in it does.
    pub fn namespace_stamps(&self) -> impl Iterator<Item = (&str, u64)> {
        self.changed.iter().map(|(ns, s)| (ns.as_str(), *s))
    }

    /// Every object's latest spec.
    pub fn objects(&self) -> impl Iterator<Item = &BootesObject> {
        self.objects.values().map(|e| &e.object)
    }

    /// Whether any pod of `namespace` is known.
    pub fn has_pods(&self, namespace: &str) -> bool {
        self.pods.keys().any(|k| k.namespace == namespace)
    }

    /// The problems of an object's latest spec (empty when it is valid).
    pub fn object_errors(&self, key: &ObjectKey) -> &[ConfigError] {
        self.objects
            .get(key)
            .map(|e| e.errors.as_slice())
            .unwrap_or_default()
    }

    /// The latest spec of an object.
    pub fn object(&self, key: &ObjectKey) -> Option<&BootesObject> {
        self.objects.get(key).map(|e| &e.object)
    }

    pub fn delete_object(&mut self, key: &ObjectKey) {
        self.touch(&key.namespace);
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
        let gone: Vec<ObjectKey> = self
            .objects
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.delete_object(&key);
        }
        problems
    }

    pub fn apply_pod(&mut self, pod: Pod) {
        self.touch(&pod.namespace);
        self.pods.insert(pod.key(), pod);
    }

    pub fn delete_pod(&mut self, key: &PodKey) {
        self.touch(&key.namespace);
        self.pods.remove(key);
    }

    pub fn reset_pods(&mut self, pods: impl IntoIterator<Item = Pod>) {
        let pods: BTreeMap<PodKey, Pod> = pods.into_iter().map(|p| (p.key(), p)).collect();
        let previous = std::mem::replace(&mut self.pods, pods);
        let mut touched = BTreeSet::new();
        for (key, pod) in &previous {
            if self.pods.get(key) != Some(pod) {
                touched.insert(key.namespace.clone());
            }
        }
        for (key, pod) in &self.pods {
            if previous.get(key) != Some(pod) {
                touched.insert(key.namespace.clone());
            }
        }
        for namespace in touched {
            self.touch(&namespace);
        }
    }

    /// Replaces every xds-server record (after a relist of `status/`).
    pub fn reset_node_status(&mut self, records: impl IntoIterator<Item = store::NodeStatus>) {
        self.rollouts.reset_records(Records::new(records));
    }

    /// Records what an xds-server replica reported for a node (`None`: the
    /// record is gone).
    pub fn set_node_status(
        &mut self,
        node: &str,
        replica: &str,
        status: Option<store::NodeStatus>,
    ) {
        self.rollouts.set_record(node, replica, status);
    }

    /// Computes groups, snapshots, bindings and statuses. Namespaces in which
    /// nothing changed since the last call are not recomputed (their groups
    /// cannot have changed: a group never spans namespaces); `&mut` for that
    /// memo alone.
    pub fn desired(&mut self) -> Desired {
        let mut parts = std::mem::take(&mut self.namespaces);
        let stale: BTreeSet<String> = self
            .changed
            .iter()
            .filter(|(ns, stamp)| parts.get(*ns).is_none_or(|m| m.stamp != **stamp))
            .map(|(ns, _)| ns.clone())
            .collect();
        let mut round = memo::Round::new(std::mem::take(&mut self.memo));
        {
            // Objects of the namespaces to recompute, in conflict precedence
            // order (oldest first).
            let mut by_namespace: BTreeMap<&str, Vec<&Entry>> =
                stale.iter().map(|ns| (ns.as_str(), Vec::new())).collect();
            for entry in self.objects.values().map(Arc::as_ref) {
                if let Some(entries) = by_namespace.get_mut(entry.object.key.namespace.as_str()) {
                    entries.push(entry);
                }
            }
            for (namespace, mut entries) in by_namespace {
                entries.sort_by(|a, b| a.object.precedence().cmp(&b.object.precedence()));
                let part = self.namespace_part(namespace, &entries, &mut round);
                parts.insert(
                    namespace.to_string(),
                    NamespacePart {
                        stamp: self.changed[namespace],
                        ..part
                    },
                );
            }
        }
        self.memo = round.finish(stale.iter().map(String::as_str));
        self.count_rollouts(&stale, &parts);
        let desired = self.assemble(&parts);
        self.namespaces = parts;
        desired
    }

    /// Gives the rollout tally the groups of the namespaces recomputed; it
    /// counts again only what changed in them.
    fn count_rollouts(
        &mut self,
        stale: &BTreeSet<String>,
        parts: &BTreeMap<String, NamespacePart>,
    ) {
        let gone: Vec<String> = self
            .rollouts
            .groups()
            .filter(|key| {
                let namespace = key.split_once('/').map_or(*key, |(ns, _)| ns);
                stale.contains(namespace)
                    && !parts
                        .get(namespace)
                        .is_some_and(|p| p.groups.iter().any(|(k, _)| k == key))
            })
            .map(str::to_string)
            .collect();
        let now = stale
            .iter()
            .filter_map(|ns| parts.get(ns))
            .flat_map(|part| &part.groups)
            .map(|(key, g)| {
                let group = rollout::Group {
                    snapshot: &g.snapshot,
                    nodes: &g.nodes,
                };
                (key.as_str(), Some(group))
            });
        let gone = gone.iter().map(|key| (key.as_str(), None));
        self.rollouts.set_groups(gone.chain(now));
    }

    /// Cells (node × object) of the rollouts counted so far: what keeping
    /// them up to date has cost.
    pub fn rollout_cells(&self) -> u64 {
        self.rollouts.cells()
    }

    /// The namespaces' parts put together, with each object's verdict.
    fn assemble(&self, parts: &BTreeMap<String, NamespacePart>) -> Desired {
        let mut desired = Desired::default();
        let mut reach: BTreeMap<&ObjectKey, usize> = BTreeMap::new();
        let mut conflicts: BTreeMap<&ObjectKey, &ObjectKey> = BTreeMap::new();
        let mut left_out: BTreeMap<&ObjectKey, &LeftOut> = BTreeMap::new();
        let mut unresolved: BTreeMap<&ObjectKey, &Vec<Unresolved>> = BTreeMap::new();
        for part in parts.values() {
            desired.groups.extend(part.groups.iter().cloned());
            desired.bindings.extend(part.bindings.iter().cloned());
            for (key, nodes) in &part.reach {
                *reach.entry(key).or_default() += nodes;
            }
            for (loser, winner) in &part.conflicts {
                conflicts.entry(loser).or_insert(winner);
            }
            left_out.extend(part.left_out.iter().map(|(k, l)| (k, l)));
            unresolved.extend(part.unresolved.iter().map(|(k, u)| (k, u)));
        }

        for (key, entry) in &self.objects {
            let nodes = reach.get(key).copied().unwrap_or(0);
            let refs = entry.accepted.as_ref().map(|_| {
                unresolved
                    .get(key)
                    .map(|u| (*u).clone())
                    .unwrap_or_default()
            });
            let rollout = entry.accepted.as_ref().map(|a| {
                self.rollouts
                    .rollout(key, crate::conditions::EXAMPLES)
                    .unwrap_or_else(|| Rollout::empty(a.generation))
            });
            let verdict = if !entry.errors.is_empty() {
                Verdict::Invalid {
                    errors: entry.errors.clone(),
                    too_large: entry.too_large,
                    in_force: entry.accepted.as_ref().map(|a| a.generation),
                }
            } else if let Some(winner) = conflicts.get(key) {
                Verdict::Conflict {
                    resource: entry
                        .accepted
                        .as_ref()
                        .map(|a| a.resource.name.clone())
                        .unwrap_or_default(),
                    winner: (*winner).clone(),
                }
            } else if let Some(l) = left_out.get(key) {
                Verdict::LeftOut {
                    nodes: l.nodes,
                    example: l.example.clone(),
                    snapshot_bytes: l.bytes,
                    resource_bytes: entry
                        .accepted
                        .as_ref()
                        .map_or(0, |a| a.resource.value.len()),
                }
            } else {
                Verdict::Valid {
                    warnings: entry.warnings().into_iter().cloned().collect(),
                }
            };
            desired.statuses.insert(
                key.clone(),
                ObjectStatus {
                    verdict,
                    observed_generation: entry.object.generation,
                    nodes,
                    refs,
                    rollout,
                },
            );
        }
        desired
    }
}

/// What one namespace contributes to [`Desired`]: its groups, their
/// bindings, how many nodes each object reaches and its conflicts.
#[derive(Debug, Default)]
struct NamespacePart {
    /// [`Index::changed`] of the namespace when this was computed.
    stamp: u64,
    groups: Vec<(String, GroupSnapshot)>,
    bindings: Vec<(String, store::NodeBinding)>,
    reach: Vec<(ObjectKey, usize)>,
    /// (loser, winner).
    conflicts: Vec<(ObjectKey, ObjectKey)>,
    /// Objects left out of groups whose snapshot they would make too large.
    left_out: Vec<(ObjectKey, LeftOut)>,
    /// Each object's references its nodes miss (only those with some).
    unresolved: Vec<(ObjectKey, Vec<Unresolved>)>,
}

/// An object left out of groups whose snapshot it would make too large.
#[derive(Debug)]
struct LeftOut {
    nodes: usize,
    example: String,
    /// The size of the first such snapshot with every object in it.
    bytes: usize,
}

impl Index {
    /// Records that something in `namespace` changed: its part of
    /// [`Index::desired`] is recomputed next time.
    fn touch(&mut self, namespace: &str) {
        self.stamp += 1;
        match self.changed.get_mut(namespace) {
            Some(stamp) => *stamp = self.stamp,
            None => {
                self.changed.insert(namespace.to_string(), self.stamp);
            }
        }
    }

    /// Groups the pods of `namespace` by the exact list of `entries` (its
    /// objects, in precedence order) selecting them, and builds each group.
    fn namespace_part(
        &self,
        namespace: &str,
        entries: &[&Entry],
        round: &mut memo::Round,
    ) -> NamespacePart {
        let mut groups: BTreeMap<Vec<usize>, Vec<&Pod>> = BTreeMap::new();
        let from = PodKey {
            namespace: namespace.to_string(),
            name: String::new(),
        };
        for pod in self
            .pods
            .range(from..)
            .take_while(|(k, _)| k.namespace == namespace)
            .map(|(_, p)| p)
        {
            let selecting: Vec<usize> = (0..entries.len())
                .filter(|i| entries[*i].object.selects(pod))
                .collect();
            if !selecting.is_empty() {
                groups.entry(selecting).or_default().push(pod);
            }
        }
        let mut part = NamespacePart::default();
        let mut reach: BTreeMap<usize, usize> = BTreeMap::new();
        let mut left_out: BTreeMap<usize, LeftOut> = BTreeMap::new();
        let mut gaps: BTreeMap<usize, Gaps> = BTreeMap::new();
        for (selecting, pods) in &groups {
            let members: Vec<&Entry> = selecting.iter().map(|i| entries[*i]).collect();
            let built = round.get(namespace, &members);
            for &i in &built.winners {
                *reach.entry(selecting[i]).or_default() += pods.len();
            }
            for &(loser, winner) in &built.losers {
                part.conflicts.push((
                    members[loser].object.key.clone(),
                    members[winner].object.key.clone(),
                ));
            }
            let snapshot_ref = format!("{namespace}/{}", built.snapshot.group);
            let mut nodes: Vec<String> = pods.iter().map(|p| p.node_id()).collect();
            nodes.sort();
            for &i in &built.left_out {
                let l = left_out.entry(selecting[i]).or_insert_with(|| LeftOut {
                    nodes: 0,
                    example: nodes[0].clone(),
                    bytes: built.full_bytes,
                });
                l.nodes += nodes.len();
            }
            // Cross-references, against what this group's nodes receive.
            let mut received = xref::Received::default();
            for &i in &built.winners {
                if let Some(a) = &members[i].accepted {
                    received.add(a.resource.ty, &a.resource.name, &a.references);
                }
            }
            for &i in &built.winners {
                let Some(accepted) = &members[i].accepted else {
                    continue;
                };
                if accepted.references.is_empty() {
                    continue;
                }
                gaps.entry(selecting[i]).or_default().add_group(
                    &accepted.references,
                    &nodes,
                    |r| {
                        received.resolves(&accepted.resource.name, r, |c| {
                            self.bootstrap.contains(namespace, c)
                        })
                    },
                );
            }
            for pod in pods {
                part.bindings.push((
                    pod.node_id(),
                    store::NodeBinding {
                        snapshot: snapshot_ref.clone(),
                        namespace: pod.namespace.clone(),
                        pod_name: pod.name.clone(),
                        pod_uid: pod.uid.clone(),
                        service_account: pod.service_account.clone(),
                    },
                ));
            }
            part.groups.push((
                snapshot_ref,
                GroupSnapshot {
                    snapshot: built.snapshot.clone(),
                    encoded: built.encoded.clone(),
                    nodes,
                },
            ));
        }
        part.reach = reach
            .into_iter()
            .map(|(i, n)| (entries[i].object.key.clone(), n))
            .collect();
        part.left_out = left_out
            .into_iter()
            .map(|(i, l)| (entries[i].object.key.clone(), l))
            .collect();
        // Every name some object of the namespace gives (valid or not), for
        // telling "nothing provides it" from "not to these nodes".
        let named: HashSet<(ResourceType, &str)> = entries
            .iter()
            .filter_map(|e| {
                let name = match &e.accepted {
                    Some(a) => Some(a.resource.name.as_str()),
                    None => e
                        .object
                        .config
                        .get(e.object.key.kind.name_field())
                        .and_then(|v| v.as_str()),
                };
                name.map(|n| (e.object.key.kind, n))
            })
            .collect();
        part.unresolved = gaps
            .into_iter()
            .map(|(i, g)| {
                let key = &entries[i].object.key;
                let report = g.report(key.kind, namespace, |ty, name| {
                    named.contains(&(ty, name))
                        || (ty == ResourceType::Cluster && self.bootstrap.contains(namespace, name))
                });
                (key.clone(), report)
            })
            .filter(|(_, report)| !report.is_empty())
            .collect();
        part
    }
}

impl Entry {
    /// What was converted: `spec.config`, or for an Endpoint naming a
    /// Service, with the endpoints of its slices. `None` when the spec was
    /// rejected before conversion.
    fn input(&self) -> Option<&serde_json::Value> {
        self.converted
            .then(|| self.filled.as_ref().unwrap_or(&self.object.config))
    }

    /// The warning rules' findings on the resource in force, then the
    /// problems of the EndpointSlices the latest spec was filled from.
    fn warnings(&self) -> Vec<&ConfigError> {
        let rules = self
            .accepted
            .as_ref()
            .map(|a| a.resource.warnings.as_slice())
            .unwrap_or_default();
        rules.iter().chain(&self.slice_warnings).collect()
    }
}

/// A group's snapshot, made to fit in one etcd value.
struct Fitted<'a> {
    pub snapshot: store::Snapshot,
    /// Objects whose resource is in the snapshot.
    pub winners: Vec<&'a ObjectKey>,
    /// (loser, winner) pairs of conflicts.
    pub losers: Vec<(&'a ObjectKey, &'a ObjectKey)>,
    /// Objects left out so that the snapshot fits.
    pub left_out: Vec<&'a ObjectKey>,
    /// The size of the snapshot with every object in it.
    pub full_bytes: usize,
}

/// Bytes a snapshot's types may take besides their resources (type URL,
/// version, framing); the fit is checked on the real encoding anyway.
const TYPE_OVERHEAD: usize = 256;

/// Builds the snapshot of one group (entries in precedence order). When it
/// is too large for one etcd value only because several objects are
/// combined, the objects are taken oldest first (precedence order), each
/// kept if it still fits with those kept before it; the others are left
/// out: the ones that pushed it over.
fn fit_snapshot<'a>(namespace: &str, entries: &[&'a Entry]) -> Fitted<'a> {
    let mut skip = BTreeSet::new();
    let (snapshot, winners, losers) = build_snapshot(namespace, entries, &skip);
    let full_bytes = snapshot.encoded_len();
    if full_bytes <= MAX_VALUE_BYTES {
        return Fitted {
            snapshot,
            winners,
            losers,
            left_out: Vec::new(),
            full_bytes,
        };
    }
    let all: BTreeSet<&ObjectKey> = winners.iter().copied().collect();
    let base = build_snapshot(namespace, entries, &all).0.encoded_len();
    let mut total = base;
    let mut types = BTreeSet::new();
    let mut kept = Vec::new();
    for entry in entries {
        let key = &entry.object.key;
        let Some(accepted) = entry.accepted.as_ref().filter(|_| all.contains(key)) else {
            continue;
        };
        let len = resource_of(entry, accepted).encoded_len();
        let mut add = len + prost::length_delimiter_len(len) + 1;
        if !types.contains(&accepted.resource.ty) {
            add += TYPE_OVERHEAD;
        }
        if total + add <= MAX_VALUE_BYTES {
            total += add;
            types.insert(accepted.resource.ty);
            kept.push(key);
        } else {
            skip.insert(key);
        }
    }
    loop {
        let (snapshot, winners, losers) = build_snapshot(namespace, entries, &skip);
        if snapshot.encoded_len() <= MAX_VALUE_BYTES || kept.is_empty() {
            let left_out = entries
                .iter()
                .map(|e| &e.object.key)
                .filter(|k| skip.contains(k))
                .collect();
            return Fitted {
                snapshot,
                winners,
                losers,
                left_out,
                full_bytes,
            };
        }
        // The estimate was short: leave out the youngest kept one too.
        if let Some(last) = kept.pop() {
            skip.insert(last);
        }
    }
}

/// The snapshot entry of an object's resource in force.
fn resource_of(entry: &Entry, accepted: &Accepted) -> store::Resource {
    let object = &entry.object;
    let resource = &accepted.resource;
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
    }
}

/// Builds the snapshot of one group from its selecting objects (in precedence
/// order), without the resources of the objects in `skip` (which still hold
/// their names against younger objects). Returns it with the objects whose
/// resource made it in, and the (loser, winner) pairs of conflicts.
fn build_snapshot<'a>(
    namespace: &str,
    entries: &[&'a Entry],
    skip: &BTreeSet<&ObjectKey>,
) -> (
    store::Snapshot,
    Vec<&'a ObjectKey>,
    Vec<(&'a ObjectKey, &'a ObjectKey)>,
) {
    type Slot<'k> = (Option<store::Resource>, &'k ObjectKey);
    let mut by_type: BTreeMap<ResourceType, BTreeMap<&str, Slot<'a>>> = BTreeMap::new();
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
        let key = &entry.object.key;
        let value = if skip.contains(key) {
            None
        } else {
            winners.push(key);
            Some(resource_of(entry, accepted))
        };
        slot.insert(&resource.name, (value, key));
    }

    let types: Vec<store::TypeResources> = by_type
        .into_iter()
        .filter_map(|(ty, resources)| {
            let resources: Vec<store::Resource> =
                resources.into_values().filter_map(|(r, _)| r).collect();
            if resources.is_empty() {
                return None;
            }
            Some(store::TypeResources {
                type_url: ty.type_url().to_string(),
                version: version::of_set(
                    resources
                        .iter()
                        .map(|r| (r.name.as_str(), r.version.as_str())),
                ),
                resources,
            })
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

use size::too_large;
