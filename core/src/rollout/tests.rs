//! The tally kept up to date equals a full recount after any sequence of
//! facts (a recount written the plain way, here).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

const TYPES: [&str; 2] = [
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.listener.v3.Listener",
];
const KINDS: [&str; 2] = ["Cluster", "Listener"];
const NODES: usize = 6;
const GROUPS: usize = 3;
const OBJECTS: usize = 4;

/// One fact arriving.
#[derive(Clone, Debug)]
enum Fact {
    /// Object `o`'s resource in group `g` (`None`: not in it) as `(version,
    /// generation)`.
    Resource(usize, usize, Option<(u8, i64)>),
    /// Node `n` is bound to group `g` (`None`: to none).
    Bind(usize, Option<usize>),
    /// Replica `r` recorded node `n` (`None`: the record is gone).
    Record(usize, usize, Option<Status>),
    /// Every record replaced.
    Reset(Vec<(usize, usize, Status)>),
}

/// What a replica recorded of a node: acked and nacked versions (of all the
/// objects' resources) per type, or connected only.
#[derive(Clone, Debug)]
struct Status {
    acked: Vec<(usize, u8)>,
    nacked: Vec<(usize, u8)>,
    /// NACKed by name alone (a record without versions).
    nacked_names: Vec<usize>,
}

fn version(object: usize, v: u8) -> String {
    format!("o{object}-v{v}")
}

fn object_type(object: usize) -> usize {
    object % TYPES.len()
}

fn status(node: usize, replica: usize, s: &Status) -> store::NodeStatus {
    let types = (0..TYPES.len())
        .map(|t| {
            let of = |list: &[(usize, u8)]| -> Vec<String> {
                list.iter()
                    .filter(|(o, _)| object_type(*o) == t)
                    .map(|(o, v)| version(*o, *v))
                    .collect()
            };
            let nacked = of(&s.nacked);
            let names: Vec<String> = s
                .nacked_names
                .iter()
                .filter(|o| object_type(**o) == t)
                .map(|o| format!("o{o}"))
                .collect();
            store::TypeStatus {
                type_url: TYPES[t].into(),
                acked_resource_versions: of(&s.acked),
                nack_detail: if nacked.is_empty() && names.is_empty() {
                    String::new()
                } else {
                    format!("replica {replica} says no")
                },
                nacked_resource_versions: nacked,
                nacked_resources: names,
                ..Default::default()
            }
        })
        .collect();
    store::NodeStatus {
        node_id: format!("n{node}"),
        replica: format!("r{replica}"),
        types,
    }
}

/// The facts as they stand.
#[derive(Default)]
struct World {
    resources: BTreeMap<(usize, usize), (u8, i64)>,
    bound: BTreeMap<usize, usize>,
    records: BTreeMap<(usize, usize), Status>,
}

impl World {
    fn snapshot(&self, group: usize) -> store::Snapshot {
        let types = (0..TYPES.len())
            .map(|t| store::TypeResources {
                type_url: TYPES[t].into(),
                resources: self
                    .resources
                    .iter()
                    .filter(|((g, o), _)| *g == group && object_type(*o) == t)
                    .map(|((_, o), (v, generation))| store::Resource {
                        name: format!("o{o}"),
                        version: version(*o, *v),
                        source: Some(store::ObjectRef {
                            kind: KINDS[t].into(),
                            namespace: "ns".into(),
                            name: format!("o{o}"),
                            generation: *generation,
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        store::Snapshot {
            types,
            ..Default::default()
        }
    }

    fn nodes(&self, group: usize) -> Vec<String> {
        let mut nodes: Vec<String> = (0..NODES)
            .filter(|n| self.bound.get(n) == Some(&group))
            .map(|n| format!("n{n}"))
            .collect();
        nodes.sort();
        nodes
    }

    fn records(&self) -> Records {
        Records::new(self.records.iter().map(|((n, r), s)| status(*n, *r, s)))
    }

    /// Counted the plain way: every group, every resource, every node.
    fn recount(&self, examples: usize) -> BTreeMap<ObjectKey, Rollout> {
        let records = self.records();
        let snapshots: Vec<(store::Snapshot, Vec<String>)> = (0..GROUPS)
            .map(|g| (self.snapshot(g), self.nodes(g)))
            .collect();
        let mut newest: BTreeMap<ObjectKey, i64> = BTreeMap::new();
        for (s, _) in &snapshots {
            for_each_resource(s, |key, _, _, generation| {
                let n = newest.entry(key).or_insert(generation);
                *n = (*n).max(generation);
            });
        }
        type Sets = (
            usize,
            BTreeSet<String>,
            BTreeMap<String, String>,
            BTreeSet<String>,
        );
        let mut sets: BTreeMap<ObjectKey, Sets> = BTreeMap::new();
        for (s, nodes) in &snapshots {
            for_each_resource(s, |key, type_url, r, generation| {
                let newest = newest[&key];
                let (running, pending, rejected, not_connected) = sets.entry(key).or_default();
                for node in nodes {
                    match records.state(node, type_url, &r.name, &r.version) {
                        NodeState::NotConnected => {
                            not_connected.insert(node.clone());
                        }
                        _ if generation < newest => {
                            pending.insert(node.clone());
                        }
                        NodeState::Running => *running += 1,
                        NodeState::Pending => {
                            pending.insert(node.clone());
                        }
                        NodeState::Rejected(d) => {
                            rejected.insert(node.clone(), d.to_string());
                        }
                    }
                }
            });
        }
        let nodes = |set: Vec<(String, String)>| Nodes {
            count: set.len(),
            examples: set
                .into_iter()
                .take(examples)
                .map(|(node, detail)| Example { node, detail })
                .collect(),
        };
        let plain = |set: BTreeSet<String>| set.into_iter().map(|n| (n, String::new())).collect();
        sets.into_iter()
            .map(|(key, (running, pending, rejected, not_connected))| {
                let rollout = Rollout {
                    generation: newest[&key],
                    running,
                    pending: nodes(plain(pending)),
                    rejected: nodes(rejected.into_iter().collect()),
                    not_connected: nodes(plain(not_connected)),
                };
                (key, rollout)
            })
            .collect()
    }
}

/// Tells the tally what a fact changed, as the index does.
fn apply(world: &mut World, tally: &mut Tally, fact: Fact) {
    let set_groups = |world: &World, tally: &mut Tally, groups: &[usize]| {
        let set: Vec<(String, store::Snapshot, Vec<String>)> = groups
            .iter()
            .map(|g| (format!("g{g}"), world.snapshot(*g), world.nodes(*g)))
            .collect();
        tally.set_groups(
            set.iter()
                .map(|(key, snapshot, nodes)| (key.as_str(), Some(Group { snapshot, nodes }))),
        );
    };
    match fact {
        Fact::Resource(g, o, r) => {
            match r {
                Some(r) => world.resources.insert((g, o), r),
                None => world.resources.remove(&(g, o)),
            };
            set_groups(world, tally, &[g]);
        }
        Fact::Bind(n, g) => {
            let before = match g {
                Some(g) => world.bound.insert(n, g),
                None => world.bound.remove(&n),
            };
            // The new group first, sometimes: what the batch is for.
            let groups: Vec<usize> = g.into_iter().chain(before).collect();
            set_groups(world, tally, &groups);
        }
        Fact::Record(n, r, s) => {
            let record = s.as_ref().map(|s| status(n, r, s));
            match s {
                Some(s) => world.records.insert((n, r), s),
                None => world.records.remove(&(n, r)),
            };
            tally.set_record(&format!("n{n}"), &format!("r{r}"), record);
        }
        Fact::Reset(records) => {
            world.records = records.into_iter().map(|(n, r, s)| ((n, r), s)).collect();
            tally.reset_records(world.records());
        }
    }
}

fn versions() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((0..OBJECTS, 0u8..3), 0..4)
}

fn status_strategy() -> impl Strategy<Value = Status> {
    (
        versions(),
        versions(),
        prop::collection::vec(0..OBJECTS, 0..2),
    )
        .prop_map(|(acked, nacked, nacked_names)| Status {
            acked,
            nacked,
            nacked_names,
        })
}

fn fact() -> impl Strategy<Value = Fact> {
    prop_oneof![
        (
            0..GROUPS,
            0..OBJECTS,
            prop::option::weighted(0.8, (0u8..3, 1i64..4))
        )
            .prop_map(|(g, o, r)| Fact::Resource(g, o, r)),
        (0..NODES, prop::option::weighted(0.8, 0..GROUPS)).prop_map(|(n, g)| Fact::Bind(n, g)),
        (
            0..NODES,
            0..2usize,
            prop::option::weighted(0.8, status_strategy())
        )
            .prop_map(|(n, r, s)| Fact::Record(n, r, s)),
        prop::collection::vec((0..NODES, 0..2usize, status_strategy()), 0..6).prop_map(Fact::Reset),
    ]
}

proptest! {
    #[test]
    fn proptest_the_tally_equals_a_full_recount_after_any_facts(
        facts in prop::collection::vec(fact(), 1..40),
    ) {
        let mut world = World::default();
        let mut tally = Tally::default();
        for fact in facts {
            apply(&mut world, &mut tally, fact);
            prop_assert_eq!(tally.rollouts(2), world.recount(2));
        }
    }
}
