//! What to write to etcd to get from what is there to what is desired: pure.
//!
//! Order matters to the xds-servers, which apply one transaction at a time:
//! a snapshot is written before (or with) the bindings that point to it, and
//! stale snapshots are deleted only after the bindings that pointed to them
//! moved or went away. One transaction per group keeps a change to a group
//! and its bindings atomic; etcd's limit on operations per transaction splits
//! very large groups.

use std::collections::BTreeMap;

use bootes_proto::Keys;
use prost::Message;

use crate::index::Desired;

use bootes_proto::limits::{MAX_TXN_OPS, MAX_VALUE_BYTES};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// The etcd contents under `nodes/` and `snapshots/`, by key.
pub type Contents = BTreeMap<String, Vec<u8>>;

/// A snapshot too large for etcd: it is not written; the group keeps its
/// previous snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Oversized {
    pub snapshot: String,
    pub bytes: usize,
    /// `Kind namespace/name` of the objects of the group.
    pub objects: Vec<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Transactions, to run in order.
    pub txns: Vec<Vec<Op>>,
    pub oversized: Vec<Oversized>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }
}

/// The etcd contents `desired` stands for: what the tests compare etcd
/// with after applying a plan (the plan itself never needs it whole).
#[cfg(test)]
pub(crate) fn contents(keys: &Keys, desired: &Desired) -> Contents {
    let mut out = Contents::new();
    for (snapshot_ref, group) in &desired.groups {
        out.insert(keys.snapshot(snapshot_ref), group.encoded.to_vec());
    }
    for (node, binding) in &desired.bindings {
        out.insert(keys.node(node), binding.encode_to_vec());
    }
    out
}

pub fn plan(keys: &Keys, current: &Contents, desired: &Desired) -> Plan {
    let mut plan = Plan::default();
    let mut skipped_nodes = std::collections::BTreeSet::new();

    for (snapshot_ref, group) in &desired.groups {
        let key = keys.snapshot(snapshot_ref);
        let value = &group.encoded;
        if value.len() > MAX_VALUE_BYTES {
            plan.oversized.push(Oversized {
                snapshot: snapshot_ref.clone(),
                bytes: value.len(),
                objects: group
                    .snapshot
                    .objects
                    .iter()
                    .map(|o| format!("{} {}/{}", o.kind, o.namespace, o.name))
                    .collect(),
            });
            // Without its snapshot, moving nodes to this group would leave
            // them dangling: they keep their previous binding.
            skipped_nodes.extend(group.nodes.iter().cloned());
            continue;
        }
        if desired.withheld.contains(snapshot_ref) {
            // Likewise: the snapshot etcd holds stays, and so do bindings.
            skipped_nodes.extend(group.nodes.iter().cloned());
            continue;
        }
        let mut ops = Vec::new();
        if current.get(&key).map(Vec::as_slice) != Some(&value[..]) {
            ops.push(Op::Put {
                key,
                value: value.to_vec(),
            });
        }
        for node in &group.nodes {
            let key = keys.node(node);
            let value = desired.bindings[node].encode_to_vec();
            if current.get(&key) != Some(&value) {
                ops.push(Op::Put { key, value });
            }
        }
        push_chunked(&mut plan.txns, ops);
    }

    // Deletions last: bindings first, then the snapshots they pointed to.
    let stale = |prefix: String| -> Vec<Op> {
        current
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| match keys.parse(k) {
                // A node waiting for an oversized snapshot keeps its binding.
                Some(bootes_proto::Key::Node(n)) => {
                    !desired.bindings.contains_key(n) && !skipped_nodes.contains(n)
                }
                Some(bootes_proto::Key::Snapshot(s)) => !desired.groups.contains_key(s),
                // Not a key Bootes writes there: nothing desires it.
                _ => true,
            })
            .map(|(k, _)| Op::Delete { key: k.clone() })
            .collect()
    };
    let mut deletes = stale(keys.nodes());
    // Snapshots still referenced by a kept binding stay.
    let referenced: std::collections::BTreeSet<String> = skipped_nodes
        .iter()
        .filter_map(|n| current.get(&keys.node(n)))
        .filter_map(|v| bootes_proto::store::NodeBinding::decode(v.as_slice()).ok())
        .map(|b| keys.snapshot(&b.snapshot))
        .collect();
    deletes.extend(
        stale(keys.snapshots())
            .into_iter()
            .filter(|op| !referenced.contains(op.key())),
    );
    push_chunked(&mut plan.txns, deletes);
    plan
}

fn push_chunked(txns: &mut Vec<Vec<Op>>, ops: Vec<Op>) {
    for chunk in ops.chunks(MAX_TXN_OPS) {
        txns.push(chunk.to_vec());
    }
}

/// Applies a transaction to a local copy of the contents.
/// Applies `ops` like [`apply`] and returns the ops that undo them (in the
/// order to apply them), for a write that may fail after being recorded.
pub fn apply_undoable(contents: &mut Contents, ops: &[Op]) -> Vec<Op> {
    let mut undo: Vec<Op> = ops
        .iter()
        .map(|op| match contents.get(op.key()) {
            Some(value) => Op::Put {
                key: op.key().to_string(),
                value: value.clone(),
            },
            None => Op::Delete {
                key: op.key().to_string(),
            },
        })
        .collect();
    apply(contents, ops);
    undo.reverse();
    undo
}

pub fn apply(contents: &mut Contents, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Put { key, value } => {
                contents.insert(key.clone(), value.clone());
            }
            Op::Delete { key } => {
                contents.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bootes_proto::{store, ResourceType};

    use super::*;
    use crate::index::GroupSnapshot;

    fn group(ns: &str, id: &str, nodes: &[&str], payload: usize) -> (String, GroupSnapshot) {
        let snapshot = store::Snapshot {
            namespace: ns.into(),
            group: id.into(),
            version: format!("v-{payload}"),
            types: vec![store::TypeResources {
                type_url: ResourceType::Cluster.type_url().into(),
                version: "t".into(),
                resources: vec![store::Resource {
                    name: "c".into(),
                    version: "r".into(),
                    value: vec![7; payload],
                    ..Default::default()
                }],
            }],
            objects: vec![store::ObjectRef {
                kind: "Cluster".into(),
                namespace: ns.into(),
                name: "c".into(),
                ..Default::default()
            }],
        };
        (
            format!("{ns}/{id}"),
            GroupSnapshot::new(snapshot, nodes.iter().map(|s| s.to_string()).collect()),
        )
    }

    fn desired(groups: Vec<(String, GroupSnapshot)>) -> Desired {
        let mut d = Desired::default();
        for (r, g) in groups {
            for n in &g.nodes {
                d.bindings.insert(
                    n.clone(),
                    store::NodeBinding {
                        snapshot: r.clone(),
                        namespace: g.snapshot.namespace.clone(),
                        pod_name: n.clone(),
                        ..Default::default()
                    },
                );
            }
            d.groups.insert(r, g);
        }
        d
    }

    fn keys_of(ops: &[Op]) -> Vec<&str> {
        ops.iter().map(Op::key).collect()
    }

    #[test]
    fn first_write_puts_each_snapshot_with_its_bindings() {
        let keys = Keys::default();
        let d = desired(vec![group("ns", "g1", &["a.ns", "b.ns"], 1)]);
        let plan = plan(&keys, &Contents::new(), &d);
        assert_eq!(plan.txns.len(), 1);
        assert_eq!(
            keys_of(&plan.txns[0]),
            [
                "/bootes/v1/snapshots/ns/g1",
                "/bootes/v1/nodes/a.ns",
                "/bootes/v1/nodes/b.ns"
            ]
        );
    }

    #[test]
    fn only_what_changed_is_written() {
        let keys = Keys::default();
        let before = desired(vec![group("ns", "g1", &["a.ns", "b.ns"], 1)]);
        let mut current = contents(&keys, &before);
        assert!(plan(&keys, &current, &before).is_empty(), "nothing to do");

        let after = desired(vec![group("ns", "g1", &["a.ns", "b.ns"], 2)]);
        let p = plan(&keys, &current, &after);
        assert_eq!(p.txns.len(), 1);
        assert_eq!(
            keys_of(&p.txns[0]),
            ["/bootes/v1/snapshots/ns/g1"],
            "one write, bindings untouched"
        );
        apply(&mut current, &p.txns[0]);
        assert_eq!(current, contents(&keys, &after));
    }

    #[test]
    fn moving_nodes_writes_the_new_group_then_deletes_the_old_one() {
        let keys = Keys::default();
        let before = desired(vec![group("ns", "g1", &["a.ns", "b.ns"], 1)]);
        let mut current = contents(&keys, &before);
        let after = desired(vec![group("ns", "g2", &["a.ns"], 1)]);
        let p = plan(&keys, &current, &after);
        assert_eq!(
            p.txns,
            [
                vec![
                    Op::Put {
                        key: "/bootes/v1/snapshots/ns/g2".into(),
                        value: after.groups["ns/g2"].snapshot.encode_to_vec()
                    },
                    Op::Put {
                        key: "/bootes/v1/nodes/a.ns".into(),
                        value: after.bindings["a.ns"].encode_to_vec()
                    },
                ],
                vec![
                    Op::Delete {
                        key: "/bootes/v1/nodes/b.ns".into()
                    },
                    Op::Delete {
                        key: "/bootes/v1/snapshots/ns/g1".into()
                    },
                ],
            ]
        );
        for t in &p.txns {
            apply(&mut current, t);
        }
        assert_eq!(current, contents(&keys, &after));
    }

    #[test]
    fn large_groups_are_split_under_the_etcd_operation_limit() {
        let keys = Keys::default();
        let nodes: Vec<String> = (0..300).map(|i| format!("p{i:03}.ns")).collect();
        let refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let d = desired(vec![group("ns", "g", &refs, 1)]);
        let p = plan(&keys, &Contents::new(), &d);
        assert!(p.txns.iter().all(|t| t.len() <= MAX_TXN_OPS));
        assert_eq!(p.txns.iter().map(Vec::len).sum::<usize>(), 301);
        assert_eq!(
            p.txns[0][0].key(),
            "/bootes/v1/snapshots/ns/g",
            "snapshot before bindings"
        );
    }

    #[test]
    fn an_oversized_snapshot_is_not_written_and_its_nodes_keep_what_they_had() {
        let keys = Keys::default();
        let before = desired(vec![group("ns", "g1", &["a.ns"], 1)]);
        let current = contents(&keys, &before);
        let after = desired(vec![
            group("ns", "g2", &["a.ns"], MAX_VALUE_BYTES + 1),
            group("ns", "g3", &["b.ns"], 1),
        ]);
        let p = plan(&keys, &current, &after);
        assert_eq!(p.oversized.len(), 1);
        assert_eq!(p.oversized[0].snapshot, "ns/g2");
        assert_eq!(p.oversized[0].objects, ["Cluster ns/c"]);
        let touched: Vec<&str> = p.txns.iter().flat_map(|t| keys_of(t)).collect();
        assert_eq!(
            touched,
            ["/bootes/v1/snapshots/ns/g3", "/bootes/v1/nodes/b.ns"],
            "a.ns keeps its binding and g1 stays: {touched:?}"
        );
    }

    #[test]
    fn a_withheld_snapshot_is_not_written_and_its_nodes_keep_what_they_had() {
        let keys = Keys::default();
        let before = desired(vec![group("ns", "g1", &["a.ns"], 1)]);
        let current = contents(&keys, &before);
        // g1 changed, g2 is new (a.ns moves to it): both withheld.
        let mut after = desired(vec![
            group("ns", "g1", &["b.ns"], 2),
            group("ns", "g2", &["a.ns"], 3),
        ]);
        after.withheld = ["ns/g1".to_string(), "ns/g2".to_string()].into();
        let p = plan(&keys, &current, &after);
        assert!(p.is_empty(), "{:?}", p.txns);
        after.withheld.remove("ns/g1");
        let p = plan(&keys, &current, &after);
        let touched: Vec<&str> = p.txns.iter().flat_map(|t| keys_of(t)).collect();
        assert_eq!(
            touched,
            ["/bootes/v1/snapshots/ns/g1", "/bootes/v1/nodes/b.ns"],
            "a.ns keeps its binding to g1: {touched:?}"
        );
    }

    #[test]
    fn a_recorded_write_that_fails_can_be_undone() {
        let mut contents: Contents = [
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ]
        .into();
        let before = contents.clone();
        let ops = vec![
            Op::Put {
                key: "a".into(),
                value: b"9".to_vec(),
            },
            Op::Delete { key: "b".into() },
            Op::Put {
                key: "c".into(),
                value: b"3".to_vec(),
            },
            Op::Put {
                key: "a".into(),
                value: b"10".to_vec(),
            },
        ];
        let undo = apply_undoable(&mut contents, &ops);
        assert_eq!(contents.get("a").map(Vec::as_slice), Some(&b"10"[..]));
        assert!(!contents.contains_key("b"));
        apply(&mut contents, &undo);
        assert_eq!(contents, before);
    }
}
