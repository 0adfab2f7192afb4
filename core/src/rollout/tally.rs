//! The rollouts kept up to date as facts arrive, not recounted per fact.
//!
//! A *cell* is one node's standing with one object: running, pending,
//! rejected or not connected. Each object keeps the counts of its cells. A
//! status record of a node takes that node's cells out (as they stood) and
//! puts them back (as they stand now): the objects of the node's group, and
//! no other. A group whose snapshot or nodes change does the same for the
//! nodes that come or go and for the objects whose resource changed; when
//! that moves an object's newest generation, the object's cells in its other
//! groups are counted again (their older generation is now pending). Every
//! change is taken out and put back with the same facts, so the counts
//! always equal a full recount (a property test checks that).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bootes_proto::store;

use super::{for_each_resource, Example, NodeState, Nodes, Records, Rollout};
use crate::model::ObjectKey;

/// Node IDs are shared between the groups and the counts.
type Node = Arc<str>;

/// One object's resource in one group's snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Resource {
    type_url: String,
    name: String,
    version: String,
    generation: i64,
}

#[derive(Debug, Default)]
struct Group {
    resources: BTreeMap<ObjectKey, Resource>,
    nodes: BTreeSet<Node>,
}

/// One object's cells, counted.
#[derive(Debug, Default)]
struct Counts {
    /// The newest generation among the groups holding the object.
    generation: i64,
    /// The groups holding it, with the generation each holds.
    holders: BTreeMap<String, i64>,
    running: usize,
    pending: BTreeSet<Node>,
    /// With Envoy's message.
    rejected: BTreeMap<Node, String>,
    not_connected: BTreeSet<Node>,
}

/// Every object's rollout, kept up to date by [`Tally::set_groups`] and
/// [`Tally::set_record`].
#[derive(Debug, Default)]
pub struct Tally {
    records: Records,
    groups: HashMap<String, Group>,
    /// The group each node is bound to.
    node_group: HashMap<Node, String>,
    objects: HashMap<ObjectKey, Counts>,
    /// Cells counted in or out so far: what the work costs.
    cells: u64,
}

/// Whether a cell is being counted in or taken out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    In,
    Out,
}

impl Tally {
    /// The rollouts of `groups` (keyed by anything unique) under `records`.
    pub fn new<'a, 'b>(
        groups: impl IntoIterator<Item = (&'b str, super::Group<'a>)>,
        records: Records,
    ) -> Self {
        let mut tally = Self {
            records,
            ..Self::default()
        };
        tally.set_groups(groups.into_iter().map(|(k, g)| (k, Some(g))));
        tally
    }

    /// Cells counted in or out since the start: a record costs twice the
    /// objects of its node's group, whatever the size of the fleet.
    pub fn cells(&self) -> u64 {
        self.cells
    }

    /// Records what a replica reported for a node (`None`: the record is
    /// gone): the node's cells are counted again, no others.
    pub fn set_record(&mut self, node: &str, replica: &str, status: Option<store::NodeStatus>) {
        let Self {
            records,
            groups,
            node_group,
            objects,
            cells,
        } = self;
        let bound = node_group
            .get_key_value(node)
            .and_then(|(node, key)| Some((node.clone(), groups.get(key)?)));
        if let Some((node, group)) = &bound {
            for (object, r) in &group.resources {
                count(records, objects, object, node, r, Step::Out, cells);
            }
        }
        records.set(node, replica, status);
        if let Some((node, group)) = &bound {
            for (object, r) in &group.resources {
                count(records, objects, object, node, r, Step::In, cells);
            }
        }
    }

    /// Replaces every record (a relist of `status/`): everything is counted
    /// again.
    pub fn reset_records(&mut self, records: Records) {
        self.records = records;
        for counts in self.objects.values_mut() {
            counts.running = 0;
            counts.pending.clear();
            counts.rejected.clear();
            counts.not_connected.clear();
        }
        let Self {
            records,
            groups,
            objects,
            cells,
            ..
        } = self;
        for group in groups.values() {
            for node in &group.nodes {
                for (object, r) in &group.resources {
                    count(records, objects, object, node, r, Step::In, cells);
                }
            }
        }
    }

    /// Sets groups' snapshots and nodes (`None`: the group is gone), all
    /// at once (a node may move from one to another). Counts again the cells
    /// of nodes that come or go, and of objects whose resource changed; when
    /// that moves an object's newest generation, all of its cells.
    pub fn set_groups<'a, 'k>(
        &mut self,
        changes: impl IntoIterator<Item = (&'k str, Option<super::Group<'a>>)>,
    ) {
        // (key, before, after, objects whose resource changed)
        let mut batch: Vec<(String, Group, Group, BTreeSet<ObjectKey>)> = Vec::new();
        for (key, group) in changes {
            let old = self.groups.remove(key).unwrap_or_default();
            let new = group.map_or_else(Group::default, |g| self.group(g, &old));
            let changed: BTreeSet<ObjectKey> = old
                .resources
                .keys()
                .chain(new.resources.keys())
                .filter(|k| old.resources.get(*k) != new.resources.get(*k))
                .cloned()
                .collect();
            if changed.is_empty() && old.nodes == new.nodes {
                if !old.resources.is_empty() || !old.nodes.is_empty() {
                    self.groups.insert(key.to_string(), old);
                }
                continue;
            }
            batch.push((key.to_string(), old, new, changed));
        }
        let Self {
            records,
            groups,
            node_group,
            objects,
            cells,
        } = self;
        let before = |key: &str| {
            groups
                .get(key)
                .or_else(|| batch.iter().find(|b| b.0 == key).map(|b| &b.1))
        };

        // Objects whose newest generation moves: all their cells out, as
        // counted against the old one.
        let mut holders: BTreeMap<ObjectKey, BTreeMap<String, i64>> = BTreeMap::new();
        for (key, _, new, changed) in &batch {
            for object in changed {
                let h = holders.entry(object.clone()).or_insert_with(|| {
                    objects
                        .get(object)
                        .map(|c| c.holders.clone())
                        .unwrap_or_default()
                });
                match new.resources.get(object) {
                    Some(r) => h.insert(key.clone(), r.generation),
                    None => h.remove(key),
                };
            }
        }
        let mut moved: BTreeMap<ObjectKey, i64> = BTreeMap::new();
        for (object, h) in &holders {
            let newest = h.values().copied().max().unwrap_or_default();
            let Some(counts) = objects.get(object) else {
                moved.insert(object.clone(), newest);
                continue;
            };
            if newest == counts.generation {
                continue;
            }
            moved.insert(object.clone(), newest);
            let was: Vec<&Group> = counts.holders.keys().filter_map(|g| before(g)).collect();
            for group in was {
                let r = &group.resources[object];
                for node in &group.nodes {
                    count(records, objects, object, node, r, Step::Out, cells);
                }
            }
        }
        // The other changed cells out: every one of the nodes that leave,
        // the changed objects' of those that stay.
        for (key, old, new, changed) in &batch {
            for node in &old.nodes {
                let leaving = !new.nodes.contains(node);
                for (object, r) in &old.resources {
                    if (leaving || changed.contains(object)) && !moved.contains_key(object) {
                        count(records, objects, object, node, r, Step::Out, cells);
                    }
                }
                if leaving && node_group.get(node).is_some_and(|g| g == key) {
                    node_group.remove(node);
                }
            }
        }
        // The new facts.
        for (object, h) in holders {
            let counts = objects.entry(object.clone()).or_default();
            counts.holders = h;
            if let Some(newest) = moved.get(&object) {
                counts.generation = *newest;
            }
        }
        for (key, old, new, _) in &batch {
            for node in new.nodes.difference(&old.nodes) {
                node_group.insert(node.clone(), key.clone());
            }
        }
        let mut done = Vec::new();
        for (key, old, new, changed) in batch {
            done.push((key.clone(), old, changed));
            if !new.resources.is_empty() || !new.nodes.is_empty() {
                groups.insert(key, new);
            }
        }
        // Their cells in, as counted against the new facts.
        for object in moved.keys() {
            let now: Vec<&Group> = objects[object]
                .holders
                .keys()
                .filter_map(|g| groups.get(g))
                .collect();
            for group in now {
                let r = &group.resources[object];
                for node in &group.nodes {
                    count(records, objects, object, node, r, Step::In, cells);
                }
            }
        }
        for (key, old, changed) in &done {
            let Some(new) = groups.get(key) else { continue };
            for node in &new.nodes {
                let arriving = !old.nodes.contains(node);
                for (object, r) in &new.resources {
                    if (arriving || changed.contains(object)) && !moved.contains_key(object) {
                        count(records, objects, object, node, r, Step::In, cells);
                    }
                }
            }
        }
        for (_, _, changed) in &done {
            for object in changed {
                if objects.get(object).is_some_and(|c| c.holders.is_empty()) {
                    objects.remove(object);
                }
            }
        }
    }

    /// A group as the tally keeps it (sharing `old`'s nodes if the same).
    fn group(&self, g: super::Group<'_>, old: &Group) -> Group {
        let mut resources = BTreeMap::new();
        for_each_resource(g.snapshot, |object, type_url, r, generation| {
            let resource = Resource {
                type_url: type_url.to_string(),
                name: r.name.clone(),
                version: r.version.clone(),
                generation,
            };
            resources.insert(object, resource);
        });
        let same = old.nodes.len() == g.nodes.len()
            && old.nodes.iter().zip(g.nodes).all(|(a, b)| **a == **b);
        let nodes = if same {
            old.nodes.clone()
        } else {
            g.nodes.iter().map(|n| self.intern(n)).collect()
        };
        Group { resources, nodes }
    }

    /// The keys of the groups set.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// The shared copy of a node ID, if the node is known.
    fn intern(&self, node: &str) -> Node {
        match self.node_group.get_key_value(node) {
            Some((node, _)) => node.clone(),
            None => Node::from(node),
        }
    }

    /// One object's rollout, naming at most `examples` nodes of each kind
    /// (the first by name); `None` when no group holds it.
    pub fn rollout(&self, object: &ObjectKey, examples: usize) -> Option<Rollout> {
        let c = self.objects.get(object)?;
        let nodes = |set: &BTreeSet<Node>| Nodes {
            count: set.len(),
            examples: set
                .iter()
                .take(examples)
                .map(|n| Example {
                    node: n.to_string(),
                    detail: String::new(),
                })
                .collect(),
        };
        Some(Rollout {
            generation: c.generation,
            running: c.running,
            pending: nodes(&c.pending),
            rejected: Nodes {
                count: c.rejected.len(),
                examples: c
                    .rejected
                    .iter()
                    .take(examples)
                    .map(|(n, detail)| Example {
                        node: n.to_string(),
                        detail: detail.clone(),
                    })
                    .collect(),
            },
            not_connected: nodes(&c.not_connected),
        })
    }

    /// Every object's rollout (see [`Tally::rollout`]).
    pub fn rollouts(&self, examples: usize) -> BTreeMap<ObjectKey, Rollout> {
        self.objects
            .keys()
            .filter_map(|k| Some((k.clone(), self.rollout(k, examples)?)))
            .collect()
    }
}

/// Counts one cell (node × object) in or out, as the records have it now.
fn count(
    records: &Records,
    objects: &mut HashMap<ObjectKey, Counts>,
    object: &ObjectKey,
    node: &Node,
    r: &Resource,
    step: Step,
    cells: &mut u64,
) {
    *cells += 1;
    let counts = objects.entry(object.clone()).or_default();
    let state = records.state(node, &r.type_url, &r.name, &r.version);
    let present = match state {
        NodeState::NotConnected => toggle(&mut counts.not_connected, node, step),
        // An older generation than another group holds: not there yet.
        _ if r.generation < counts.generation => toggle(&mut counts.pending, node, step),
        NodeState::Running => {
            match step {
                Step::In => counts.running += 1,
                Step::Out => counts.running -= 1,
            }
            true
        }
        NodeState::Pending => toggle(&mut counts.pending, node, step),
        NodeState::Rejected(detail) => match step {
            Step::In => counts
                .rejected
                .insert(node.clone(), detail.to_string())
                .is_none(),
            Step::Out => counts.rejected.remove(node).is_some(),
        },
    };
    debug_assert!(
        present,
        "{object}: {node} counted twice, or out but never in"
    );
}

/// Adds or removes `node`; whether that changed the set.
fn toggle(set: &mut BTreeSet<Node>, node: &Node, step: Step) -> bool {
    match step {
        Step::In => set.insert(node.clone()),
        Step::Out => set.remove(node),
    }
}
