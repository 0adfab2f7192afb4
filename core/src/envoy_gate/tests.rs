use bootes_proto::{store, ResourceType};

use super::*;
use crate::envoy_judge::Blame;
use crate::index::GroupSnapshot;
use crate::verdict::{ObjectStatus, Reason};

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: ResourceType::Cluster,
        namespace: "ns".into(),
        name: name.into(),
    }
}

/// Group `ns/<id>` at `version`: one cluster per object (cluster `c-<o>`
/// from object `<o>`), on `nodes` nodes.
fn group(id: &str, version: &str, objects: &[&str], nodes: usize) -> (String, GroupSnapshot) {
    let resources = objects
        .iter()
        .map(|o| store::Resource {
            name: format!("c-{o}"),
            source: Some(store::ObjectRef {
                kind: "Cluster".into(),
                namespace: "ns".into(),
                name: o.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let snapshot = store::Snapshot {
        namespace: "ns".into(),
        group: id.into(),
        version: version.into(),
        types: vec![store::TypeResources {
            type_url: ResourceType::Cluster.type_url().into(),
            resources,
            ..Default::default()
        }],
        ..Default::default()
    };
    let nodes = (0..nodes).map(|i| format!("p{i}.ns")).collect();
    (format!("ns/{id}"), GroupSnapshot::new(snapshot, nodes))
}

fn desired(groups: Vec<(String, GroupSnapshot)>) -> Desired {
    let mut d = Desired::default();
    for (_, g) in &groups {
        for r in &g.snapshot.types[0].resources {
            let status = d
                .statuses
                .entry(ObjectKey::of_source(r.source.as_ref().unwrap()).unwrap())
                .or_insert(ObjectStatus {
                    verdict: Verdict::Valid {
                        warnings: Vec::new(),
                    },
                    observed_generation: 1,
                    nodes: 0,
                    refs: None,
                    rollout: None,
                });
            status.nodes += g.nodes.len();
        }
    }
    d.groups = groups.into_iter().collect();
    d
}

fn names(groups: &[Group]) -> Vec<&str> {
    groups.iter().map(|g| g.name.as_str()).collect()
}

fn rejects(object: &str, together: bool) -> GroupVerdict {
    GroupVerdict::Rejected(vec![Blame {
        ty: ResourceType::Cluster,
        name: format!("c-{object}"),
        reason: "no".into(),
        together,
    }])
}

#[test]
fn only_groups_whose_snapshot_changed_are_judged() {
    let mut gate = EnvoyGate::new();
    let none = BootstrapClusters::default();
    let mut d = desired(vec![group("a", "1", &["x"], 1), group("b", "1", &["y"], 1)]);
    let judge = gate.to_judge(&d, &none);
    assert_eq!(names(&judge), ["ns/a", "ns/b"]);
    gate.record(&judge, vec![GroupVerdict::Accepted; 2]);
    assert_eq!(gate.apply(&mut d), Withheld::default());
    assert!(d.withheld.is_empty());
    assert!(gate.to_judge(&d, &none).is_empty(), "nothing changed");
    let d = desired(vec![group("a", "1", &["x"], 1), group("b", "2", &["y"], 1)]);
    assert_eq!(names(&gate.to_judge(&d, &none)), ["ns/b"]);
}

#[test]
fn a_rejected_group_is_withheld_and_only_the_blamed_object_says_why() {
    let mut gate = EnvoyGate::new();
    let mut d = desired(vec![
        group("a", "1", &["x", "y"], 3),
        group("b", "1", &["y"], 2),
    ]);
    let judge = gate.to_judge(&d, &BootstrapClusters::default());
    gate.record(&judge, vec![rejects("y", false), GroupVerdict::Accepted]);
    let withheld = gate.apply(&mut d);
    assert_eq!(
        withheld,
        Withheld {
            rejected: 1,
            unjudged: 0
        }
    );
    assert_eq!(d.withheld, BTreeSet::from(["ns/a".to_string()]));
    assert!(
        d.statuses[&key("x")].accepted(),
        "the others stay as they were"
    );
    let y = &d.statuses[&key("y")];
    assert_eq!(y.verdict.reason(), Reason::EnvoyRejected);
    assert_eq!(y.nodes, 2, "only group b's nodes receive it");
    let message = crate::conditions::accepted_message(&y.verdict);
    assert!(
        message.starts_with(
            "Envoy (--envoy-validate) rejects it: no; not written: 3 node(s) of group ns/a"
        ),
        "{message}"
    );
    // The verdict stands while the group is unchanged: no new run.
    let mut again = desired(vec![
        group("a", "1", &["x", "y"], 3),
        group("b", "1", &["y"], 2),
    ]);
    assert!(gate
        .to_judge(&again, &BootstrapClusters::default())
        .is_empty());
    gate.apply(&mut again);
    assert_eq!(again, d);
}

#[test]
fn a_group_envoy_gave_no_verdict_on_is_withheld_and_judged_again() {
    let mut gate = EnvoyGate::new();
    let mut d = desired(vec![group("a", "1", &["x", "y"], 1)]);
    let judge = gate.to_judge(&d, &BootstrapClusters::default());
    gate.record(
        &judge,
        vec![GroupVerdict::Unjudged("took more than 1s".into())],
    );
    assert_eq!(gate.apply(&mut d).unjudged, 1);
    assert_eq!(d.withheld.len(), 1);
    for o in ["x", "y"] {
        let s = &d.statuses[&key(o)];
        assert_eq!(s.verdict.reason(), Reason::EnvoyUnavailable);
        let message = crate::conditions::accepted_message(&s.verdict);
        assert!(
            message.contains("gave no verdict on group ns/a: took more than 1s"),
            "{message}"
        );
    }
    let d = desired(vec![group("a", "1", &["x", "y"], 1)]);
    assert_eq!(
        names(&gate.to_judge(&d, &BootstrapClusters::default())),
        ["ns/a"]
    );
}

#[test]
fn a_group_that_is_gone_is_forgotten() {
    let mut gate = EnvoyGate::new();
    let mut d = desired(vec![group("a", "1", &["x"], 1)]);
    let judge = gate.to_judge(&d, &BootstrapClusters::default());
    gate.record(&judge, vec![rejects("x", true)]);
    gate.apply(&mut d);
    let mut empty = Desired::default();
    assert_eq!(gate.apply(&mut empty), Withheld::default());
    assert!(gate.verdicts.is_empty());
}
