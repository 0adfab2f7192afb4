//! Condition `Programmed` under every race: which nodes run which generation,
//! from the versions the xds-servers record.

use super::*;
use crate::rollout::{self as ro, Progress, Records};

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// What an xds-server records once `node` ACKed everything of `snapshot`.
fn acked(node: &str, replica: &str, snapshot: &store::Snapshot) -> store::NodeStatus {
    store::NodeStatus {
        node_id: node.into(),
        replica: replica.into(),
        types: snapshot
            .types
            .iter()
            .map(|t| store::TypeStatus {
                type_url: t.type_url.clone(),
                acked_version: t.version.clone(),
                acked_resource_versions: t.resources.iter().map(|r| r.version.clone()).collect(),
                ..Default::default()
            })
            .collect(),
    }
}

/// ... and then NACKed the clusters of `rejected`, keeping what it had.
fn nacked(
    node: &str,
    replica: &str,
    had: &store::Snapshot,
    rejected: &store::Snapshot,
) -> store::NodeStatus {
    let mut status = acked(node, replica, had);
    let t = rejected
        .types
        .iter()
        .find(|t| t.type_url == CDS)
        .expect("clusters");
    let record = status
        .types
        .iter_mut()
        .find(|t| t.type_url == CDS)
        .expect("clusters");
    record.nacked_version = t.version.clone();
    record.nack_detail = "Envoy says no".into();
    record.nacked_resources = t.resources.iter().map(|r| r.name.clone()).collect();
    record.nacked_resource_versions = t.resources.iter().map(|r| r.version.clone()).collect();
    status
}

/// Connected, nothing ACKed yet.
fn connected(node: &str, replica: &str) -> store::NodeStatus {
    store::NodeStatus {
        node_id: node.into(),
        replica: replica.into(),
        types: Vec::new(),
    }
}

fn snapshot_of(d: &Desired, node: &str) -> store::Snapshot {
    (*d.groups[&d.bindings[node].snapshot].snapshot).clone()
}

fn rollout_of(index: &mut Index, name: &str) -> ro::Rollout {
    index.desired().statuses[&index_key("foo", name)]
        .rollout
        .clone()
        .expect("a resource in force")
}

fn edit(index: &mut Index, name: &str, timeout: &str, generation: i64) {
    let mut c = cluster("foo", name, None, timeout);
    c.generation = generation;
    index.apply_object(c);
}

/// Three pods of namespace foo, all selected by cluster `a` (generation 1).
fn three_nodes() -> Index {
    let mut index = Index::new();
    edit(&mut index, "a", "1s", 1);
    for p in ["p1", "p2", "p3"] {
        index.apply_pod(mk_pod("foo", p, &[]));
    }
    index
}

#[test]
fn programmed_once_every_connected_node_acked_and_not_connected_ones_do_not_hold_it() {
    let mut index = three_nodes();
    let s1 = snapshot_of(&index.desired(), "p1.foo");
    let r = rollout_of(&mut index, "a");
    assert_eq!((r.generation, r.running, r.connected()), (1, 0, 0));
    assert_eq!(r.not_connected.count, 3);
    assert_eq!(r.progress(), Progress::Programmed, "nobody connected");

    index.set_node_status("p1.foo", "r1", Some(acked("p1.foo", "r1", &s1)));
    index.set_node_status("p2.foo", "r1", Some(connected("p2.foo", "r1")));
    let r = rollout_of(&mut index, "a");
    assert_eq!(r.progress(), Progress::Pending);
    assert_eq!(
        crate::conditions::rollout_counts(&r),
        "1/2 nodes run generation 1; 1 pending (p2.foo); 0 rejected; 1 not connected (p3.foo)"
    );

    index.set_node_status("p2.foo", "r1", Some(acked("p2.foo", "r1", &s1)));
    let r = rollout_of(&mut index, "a");
    assert_eq!(r.progress(), Progress::Programmed);
    assert_eq!((r.running, r.not_connected.count), (2, 1));
}

#[test]
fn an_older_generation_acked_after_a_newer_one_was_written_is_not_the_new_one() {
    let mut index = three_nodes();
    let s1 = snapshot_of(&index.desired(), "p1.foo");
    edit(&mut index, "a", "2s", 2);
    let s2 = snapshot_of(&index.desired(), "p1.foo");
    // The ACK of generation 1's response arrives after generation 2 was written.
    index.set_node_status("p1.foo", "r1", Some(acked("p1.foo", "r1", &s1)));
    let r = rollout_of(&mut index, "a");
    assert_eq!((r.generation, r.running, r.pending.count), (2, 0, 1));
    index.set_node_status("p1.foo", "r1", Some(acked("p1.foo", "r1", &s2)));
    let r = rollout_of(&mut index, "a");
    assert_eq!((r.generation, r.running, r.pending.count), (2, 1, 0));
}

#[test]
fn a_later_snapshot_still_holding_this_generation_counts_even_from_another_objects_edit() {
    let mut index = three_nodes();
    edit(&mut index, "b", "1s", 1);
    let s1 = snapshot_of(&index.desired(), "p1.foo");
    // b is edited: a new snapshot of the group, with a unchanged in it.
    edit(&mut index, "b", "3s", 2);
    let s2 = snapshot_of(&index.desired(), "p1.foo");
    assert_ne!(s1.version, s2.version);
    index.set_node_status("p1.foo", "r1", Some(acked("p1.foo", "r1", &s2)));
    index.set_node_status("p2.foo", "r1", Some(acked("p2.foo", "r1", &s1)));
    let (a, b) = (rollout_of(&mut index, "a"), rollout_of(&mut index, "b"));
    assert_eq!(
        (a.running, a.pending.count),
        (2, 0),
        "both hold a's generation 1"
    );
    assert_eq!((b.generation, b.running, b.pending.count), (2, 1, 1));
    assert_eq!(b.pending.examples[0].node, "p2.foo");
}

#[test]
fn an_edit_mid_rollout_restarts_the_count_for_the_new_generation_only() {
    let mut index = three_nodes();
    edit(&mut index, "b", "1s", 1);
    let s1 = snapshot_of(&index.desired(), "p1.foo");
    for p in ["p1.foo", "p2.foo"] {
        index.set_node_status(p, "r1", Some(acked(p, "r1", &s1)));
    }
    index.set_node_status("p3.foo", "r1", Some(connected("p3.foo", "r1")));
    assert_eq!(rollout_of(&mut index, "a").running, 2);
    edit(&mut index, "a", "5s", 2);
    let a = rollout_of(&mut index, "a");
    assert_eq!((a.generation, a.running, a.pending.count), (2, 0, 3));
    let b = rollout_of(&mut index, "b");
    assert_eq!(
        (b.generation, b.running, b.pending.count),
        (1, 2, 1),
        "b unaffected"
    );
}

#[test]
fn a_node_moving_between_groups_or_replicas_is_judged_where_it_is_now() {
    let mut index = three_nodes();
    // b selects only canary pods: p1 moves into its group.
    let mut b = cluster("foo", "b", Some(&[("track", "canary")]), "1s");
    b.generation = 1;
    index.apply_object(b);
    let before = snapshot_of(&index.desired(), "p1.foo");
    index.set_node_status("p1.foo", "r1", Some(acked("p1.foo", "r1", &before)));
    assert_eq!(rollout_of(&mut index, "b").connected(), 0);
    index.apply_pod(mk_pod("foo", "p1", &[("track", "canary")]));
    let b = rollout_of(&mut index, "b");
    assert_eq!(
        (b.running, b.pending.count),
        (0, 1),
        "targeted, not yet running"
    );
    assert_eq!(
        rollout_of(&mut index, "a").running,
        1,
        "a is in both groups"
    );
    let after = snapshot_of(&index.desired(), "p1.foo");
    // It reconnects to replica r2 and ACKs there; r1's record lingers
    // until r1 writes again: running on some replica is running.
    index.set_node_status("p1.foo", "r2", Some(acked("p1.foo", "r2", &after)));
    assert_eq!(rollout_of(&mut index, "b").running, 1);
    index.set_node_status("p1.foo", "r1", None);
    assert_eq!(rollout_of(&mut index, "b").running, 1);
}

#[test]
fn a_nack_rejects_only_the_generation_it_carried() {
    let mut index = three_nodes();
    let s1 = snapshot_of(&index.desired(), "p1.foo");
    edit(&mut index, "a", "2s", 2);
    let s2 = snapshot_of(&index.desired(), "p1.foo");
    index.set_node_status("p1.foo", "r1", Some(nacked("p1.foo", "r1", &s1, &s2)));
    let r = rollout_of(&mut index, "a");
    assert_eq!(r.progress(), Progress::Rejected);
    assert_eq!(r.rejected.examples[0].detail, "Envoy says no");
    // A fix (generation 3): the NACK of generation 2 does not hold it back.
    edit(&mut index, "a", "3s", 3);
    let r = rollout_of(&mut index, "a");
    assert_eq!((r.progress(), r.pending.count), (Progress::Pending, 1));
    // Another replica has it running: running wins over a NACK elsewhere.
    let s3 = snapshot_of(&index.desired(), "p1.foo");
    index.set_node_status("p1.foo", "r1", Some(nacked("p1.foo", "r1", &s1, &s3)));
    assert_eq!(rollout_of(&mut index, "a").progress(), Progress::Rejected);
    index.set_node_status("p1.foo", "r2", Some(acked("p1.foo", "r2", &s3)));
    assert_eq!(rollout_of(&mut index, "a").progress(), Progress::Programmed);
}

#[test]
fn a_replica_whose_lease_died_is_not_counted() {
    let mut index = three_nodes();
    let s1 = snapshot_of(&index.desired(), "p1.foo");
    index.reset_node_status([
        acked("p1.foo", "r1", &s1),
        acked("p2.foo", "r1", &s1),
        connected("p3.foo", "r2"),
    ]);
    let r = rollout_of(&mut index, "a");
    assert_eq!((r.running, r.pending.count), (2, 1));
    // r1's lease expires: etcd deletes its records.
    index.set_node_status("p1.foo", "r1", None);
    index.set_node_status("p2.foo", "r1", None);
    let r = rollout_of(&mut index, "a");
    assert_eq!(
        (r.running, r.pending.count, r.not_connected.count),
        (0, 1, 2)
    );
}

#[test]
fn a_restart_recomputes_the_same_from_etcd_alone() {
    let mut index = three_nodes();
    edit(&mut index, "b", "1s", 1);
    let s1 = snapshot_of(&index.desired(), "p1.foo");
    edit(&mut index, "a", "2s", 2);
    let d = index.desired();
    let s2 = snapshot_of(&d, "p1.foo");
    let records = vec![
        acked("p1.foo", "r1", &s2),
        nacked("p2.foo", "r1", &s1, &s2),
        acked("p3.foo", "r2", &s1),
    ];
    index.reset_node_status(records.clone());
    let before = index.desired().statuses;
    // What etcd holds: the snapshots, the bindings and status/.
    let from_etcd = ro::rollouts(
        d.groups.values().map(|g| ro::Group {
            snapshot: &g.snapshot,
            nodes: &g.nodes,
        }),
        Records::new(records),
        crate::conditions::EXAMPLES,
    );
    for (key, status) in &before {
        assert_eq!(status.rollout.as_ref(), from_etcd.get(key), "{key}");
    }
    let a = &from_etcd[&index_key("foo", "a")];
    assert_eq!(
        (a.running, a.pending.count, a.rejected.count),
        (1, 1, 1),
        "{a:?}"
    );
}

/// A namespace of `pods` pods all selected by `objects` clusters.
fn fleet(index: &mut Index, ns: &str, pods: usize, objects: usize) {
    for o in 0..objects {
        let mut c = cluster(ns, &format!("c{o}"), None, "1s");
        c.generation = 1;
        index.apply_object(c);
    }
    for p in 0..pods {
        index.apply_pod(mk_pod(ns, &format!("p{p}"), &[]));
    }
}

#[test]
fn a_record_or_an_edit_counts_again_only_what_it_touches() {
    let mut index = Index::new();
    fleet(&mut index, "foo", 3, 2);
    fleet(&mut index, "big", 400, 20);
    let d = index.desired();
    let s = snapshot_of(&d, "p0.foo");
    let full = index.rollout_cells();
    assert!(full >= 400 * 20, "the first count is a full one: {full}");

    // One node's record: its group's 2 objects out and back in, whatever
    // the 8,000 cells of namespace big.
    let before = index.rollout_cells();
    index.set_node_status("p0.foo", "r1", Some(acked("p0.foo", "r1", &s)));
    let r = rollout_of(&mut index, "c0");
    assert_eq!((r.running, r.not_connected.count), (1, 2));
    assert_eq!(index.rollout_cells() - before, 2 * 2);

    // A sync with nothing new counts nothing.
    let before = index.rollout_cells();
    index.desired();
    assert_eq!(index.rollout_cells() - before, 0);

    // An edit of one object of big: its 400 nodes, not the other 19 objects'.
    let before = index.rollout_cells();
    let mut c = cluster("big", "c7", None, "9s");
    c.generation = 2;
    index.apply_object(c);
    let d = index.desired();
    assert_eq!(
        d.statuses[&index_key("big", "c7")]
            .rollout
            .as_ref()
            .map(|r| r.generation),
        Some(2)
    );
    assert_eq!(index.rollout_cells() - before, 2 * 400);
}
