use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::conditions;
use crate::rollout::Progress;
use crate::verdict::Reason;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mk_pod(ns: &str, name: &str, l: &[(&str, &str)]) -> Pod {
    Pod {
        namespace: ns.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        labels: labels(l),
        service_account: "default".into(),
    }
}

fn mk_object(
    kind: ResourceType,
    ns: &str,
    name: &str,
    selector: Option<&[(&str, &str)]>,
    config: serde_json::Value,
) -> BootesObject {
    BootesObject {
        key: ObjectKey {
            kind,
            namespace: ns.into(),
            name: name.into(),
        },
        source: "test".into(),
        uid: format!("uid-{name}"),
        generation: 1,
        created: None,
        selector: selector.map(labels),
        config,
        service: None,
    }
}

fn cluster(ns: &str, name: &str, selector: Option<&[(&str, &str)]>, timeout: &str) -> BootesObject {
    mk_object(
        ResourceType::Cluster,
        ns,
        name,
        selector,
        json!({"name": name, "connect_timeout": timeout, "type": "EDS",
               "eds_cluster_config": {"eds_config": {"ads": {}}}}),
    )
}

/// Resource names per type URL that `node` receives.
fn resources_of(desired: &Desired, node: &str) -> BTreeMap<String, Vec<String>> {
    let Some(binding) = desired.bindings.get(node) else {
        return BTreeMap::new();
    };
    let group = &desired.groups[&binding.snapshot];
    group
        .snapshot
        .types
        .iter()
        .map(|t| {
            (
                t.type_url.clone(),
                t.resources.iter().map(|r| r.name.clone()).collect(),
            )
        })
        .collect()
}

fn cluster_names(desired: &Desired, node: &str) -> Vec<String> {
    resources_of(desired, node)
        .remove(ResourceType::Cluster.type_url())
        .unwrap_or_default()
}

#[test]
fn pods_selected_by_the_same_objects_share_one_snapshot() {
    let mut index = Index::new();
    index.apply_object(cluster("foo", "c1", Some(&[("app", "web")]), "1s"));
    for i in 0..3 {
        index.apply_pod(mk_pod("foo", &format!("web-{i}"), &[("app", "web")]));
    }
    index.apply_pod(mk_pod("foo", "db-0", &[("app", "db")]));
    let d = index.desired();

    assert_eq!(d.groups.len(), 1);
    let group = d.groups.values().next().unwrap();
    assert_eq!(group.nodes, ["web-0.foo", "web-1.foo", "web-2.foo"]);
    assert_eq!(cluster_names(&d, "web-1.foo"), ["c1"]);
    // A pod selected by nothing gets no binding: its Envoy waits.
    assert!(!d.bindings.contains_key("db-0.foo"));
    assert_eq!(d.statuses[&index_key("foo", "c1")].nodes, 3);
}

fn index_key(ns: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind: ResourceType::Cluster,
        namespace: ns.into(),
        name: name.into(),
    }
}

#[test]
fn objects_never_reach_pods_of_another_namespace_or_selector() {
    let mut index = Index::new();
    index.apply_object(cluster("foo", "mine", Some(&[("app", "web")]), "1s"));
    index.apply_object(cluster("foo", "others", Some(&[("app", "other")]), "1s"));
    index.apply_object(cluster("bar", "elsewhere", None, "1s"));
    index.apply_pod(mk_pod("foo", "web-0", &[("app", "web")]));
    let d = index.desired();
    assert_eq!(cluster_names(&d, "web-0.foo"), ["mine"]);
    assert_eq!(d.statuses[&index_key("bar", "elsewhere")].nodes, 0);
    assert_eq!(d.statuses[&index_key("foo", "others")].nodes, 0);
}

#[test]
fn selectorless_object_reaches_every_pod_of_its_namespace_in_separate_groups() {
    let mut index = Index::new();
    index.apply_object(cluster("foo", "shared", None, "1s"));
    index.apply_object(cluster("foo", "web-only", Some(&[("app", "web")]), "1s"));
    index.apply_pod(mk_pod("foo", "web-0", &[("app", "web")]));
    index.apply_pod(mk_pod("foo", "db-0", &[("app", "db")]));
    let d = index.desired();
    assert_eq!(cluster_names(&d, "web-0.foo"), ["shared", "web-only"]);
    assert_eq!(cluster_names(&d, "db-0.foo"), ["shared"]);
    assert_ne!(
        d.bindings["web-0.foo"].snapshot,
        d.bindings["db-0.foo"].snapshot
    );
}

#[test]
fn editing_an_object_changes_the_snapshot_but_no_binding() {
    let mut index = Index::new();
    index.apply_object(cluster("foo", "c1", None, "1s"));
    index.apply_pod(mk_pod("foo", "p", &[]));
    let before = index.desired();
    index.apply_object(cluster("foo", "c1", None, "2s"));
    let after = index.desired();

    assert_eq!(before.bindings, after.bindings);
    let key = &before.bindings["p.foo"].snapshot;
    let (b, a) = (&before.groups[key].snapshot, &after.groups[key].snapshot);
    assert_ne!(b.version, a.version);
    assert_ne!(b.types[0].version, a.types[0].version);
    assert_ne!(
        b.types[0].resources[0].version,
        a.types[0].resources[0].version
    );
}

#[test]
fn versions_depend_on_content_only() {
    let build = || {
        let mut index = Index::new();
        index.apply_object(cluster("foo", "c1", None, "1s"));
        index.apply_object(cluster("foo", "c2", None, "1s"));
        index.apply_pod(mk_pod("foo", "p", &[]));
        index.desired()
    };
    assert_eq!(build(), build());
}

#[test]
fn an_invalid_edit_keeps_the_previous_valid_version_in_force() {
    let mut index = Index::new();
    index.apply_object(cluster("foo", "c1", None, "1s"));
    index.apply_pod(mk_pod("foo", "p", &[]));
    let before = index.desired();

    let mut bad = cluster("foo", "c1", None, "1s");
    bad.generation = 2;
    bad.config["conect_timeout"] = json!("5s");
    let problems = index.apply_object(bad);
    assert!(!problems.is_empty());
    let after = index.desired();

    assert_eq!(
        before.groups, after.groups,
        "the valid generation stays in force"
    );
    let status = &after.statuses[&index_key("foo", "c1")];
    assert!(!status.accepted());
    assert_eq!(status.verdict.reason(), Reason::InvalidConfig);
    assert_eq!(status.observed_generation, 2);
    assert!(
        conditions::accepted(status)
            .message
            .contains("conect_timeout"),
        "{}",
        conditions::accepted(status).message
    );
    assert!(
        conditions::accepted(status)
            .message
            .contains("generation 1 stays in force"),
        "{}",
        conditions::accepted(status).message
    );
}

#[test]
fn an_invalid_new_object_reaches_nobody_and_blocks_nothing() {
    let mut index = Index::new();
    index.apply_object(cluster("foo", "good", None, "1s"));
    let mut bad = cluster("foo", "bad", None, "1s");
    bad.config["connect_timeout"] = json!("soon");
    index.apply_object(bad);
    index.apply_pod(mk_pod("foo", "p", &[]));
    let d = index.desired();
    assert_eq!(cluster_names(&d, "p.foo"), ["good"]);
    assert_eq!(
        d.statuses[&index_key("foo", "bad")].verdict.reason(),
        Reason::InvalidConfig
    );
    assert_eq!(d.statuses[&index_key("foo", "bad")].nodes, 0);
    assert!(d.statuses[&index_key("foo", "good")].accepted());
}

#[test]
fn conflicts_go_to_the_older_object() {
    let mut index = Index::new();
    // Both provide cluster "same"; "zz" is older by timestamp, so it wins over "aa".
    let mut older = cluster("foo", "zz", None, "1s");
    older.config["name"] = json!("same");
    older.created = Some("2024-01-01T00:00:00Z".into());
    let mut newer = cluster("foo", "aa", None, "2s");
    newer.config["name"] = json!("same");
    newer.created = Some("2025-01-01T00:00:00Z".into());
    index.apply_object(newer);
    index.apply_object(older);
    index.apply_pod(mk_pod("foo", "p", &[]));
    let d = index.desired();

    let snap = &d.groups[&d.bindings["p.foo"].snapshot].snapshot;
    let source = snap.types[0].resources[0].source.as_ref().unwrap();
    assert_eq!(source.name, "zz");
    let loser = &d.statuses[&index_key("foo", "aa")];
    assert_eq!(loser.verdict.reason(), Reason::Conflict);
    assert!(
        conditions::accepted(loser)
            .message
            .contains("Cluster foo/zz"),
        "{}",
        conditions::accepted(loser).message
    );
    assert_eq!(loser.nodes, 0);
    assert!(d.statuses[&index_key("foo", "zz")].accepted());
}

#[test]
fn conflicts_without_timestamps_go_by_name() {
    let mut index = Index::new();
    for name in ["b", "a"] {
        let mut c = cluster("foo", name, None, "1s");
        c.config["name"] = json!("same");
        index.apply_object(c);
    }
    index.apply_pod(mk_pod("foo", "p", &[]));
    let d = index.desired();
    assert_eq!(
        d.statuses[&index_key("foo", "a")].verdict.reason(),
        Reason::Valid
    );
    assert_eq!(
        d.statuses[&index_key("foo", "b")].verdict.reason(),
        Reason::Conflict
    );
}

#[test]
fn relabelled_and_deleted_pods_move_and_lose_bindings() {
    let mut index = Index::new();
    index.apply_object(cluster("foo", "web", Some(&[("app", "web")]), "1s"));
    index.apply_object(cluster("foo", "api", Some(&[("app", "api")]), "1s"));
    index.apply_pod(mk_pod("foo", "p", &[("app", "web")]));
    assert_eq!(cluster_names(&index.desired(), "p.foo"), ["web"]);

    index.apply_pod(mk_pod("foo", "p", &[("app", "api")]));
    assert_eq!(cluster_names(&index.desired(), "p.foo"), ["api"]);

    index.delete_pod(&PodKey {
        namespace: "foo".into(),
        name: "p".into(),
    });
    let d = index.desired();
    assert!(d.bindings.is_empty());
    assert!(d.groups.is_empty(), "a group without pods has no snapshot");
}

#[test]
fn reset_removes_missing_objects_and_keeps_valid_versions_of_present_ones() {
    let mut index = Index::new();
    index.apply_object(cluster("foo", "c1", None, "1s"));
    index.apply_object(cluster("foo", "c2", None, "1s"));
    index.apply_pod(mk_pod("foo", "p", &[]));

    let mut broken = cluster("foo", "c1", None, "1s");
    broken.config["type"] = json!("NOT_A_TYPE");
    let problems = index.reset_objects([broken]);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].0, index_key("foo", "c1"));
    assert_eq!(cluster_names(&index.desired(), "p.foo"), ["c1"]);
}

#[test]
fn snapshot_lists_every_selecting_object_and_sorts_types_in_push_order() {
    let mut index = Index::new();
    index.apply_object(mk_object(
        ResourceType::Listener,
        "foo",
        "l",
        None,
        json!({"name": "l", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 80}},
            "filter_chains": [{"filters": [{"name": "tcp", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "t", "cluster": "c"}}]}]}),
    ));
    index.apply_object(cluster("foo", "c", None, "1s"));
    index.apply_pod(mk_pod("foo", "p", &[]));
    let d = index.desired();
    let snap = &d.groups[&d.bindings["p.foo"].snapshot].snapshot;
    let urls: Vec<&str> = snap.types.iter().map(|t| t.type_url.as_str()).collect();
    assert_eq!(
        urls,
        [
            ResourceType::Cluster.type_url(),
            ResourceType::Listener.type_url()
        ]
    );
    assert_eq!(snap.objects.len(), 2);
}

fn nack_record(node: &str, replica: &str, type_url: &str, names: &[&str]) -> store::NodeStatus {
    store::NodeStatus {
        node_id: node.into(),
        replica: replica.into(),
        types: vec![store::TypeStatus {
            type_url: type_url.into(),
            acked_version: "a".into(),
            nacked_version: "b".into(),
            nack_detail: "Envoy says no".into(),
            nacked_resources: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }],
    }
}

#[test]
fn a_nack_is_reported_on_the_object_that_produced_the_resource() {
    let mut index = Index::new();
    let mut c = cluster("foo", "obj-a", None, "1s");
    c.config["name"] = json!("cluster-a");
    index.apply_object(c);
    index.apply_object(cluster("foo", "obj-b", None, "1s"));
    index.apply_pod(mk_pod("foo", "p1", &[]));
    index.apply_pod(mk_pod("foo", "p2", &[]));

    let cds = ResourceType::Cluster.type_url();
    index.set_node_status(
        "p1.foo",
        "r1",
        Some(nack_record("p1.foo", "r1", cds, &["cluster-a"])),
    );
    index.set_node_status(
        "p2.foo",
        "r2",
        Some(nack_record("p2.foo", "r2", cds, &["cluster-a"])),
    );
    let d = index.desired();
    let status = &d.statuses[&index_key("foo", "obj-a")];
    assert!(
        status.accepted(),
        "valid for Bootes: Programmed says the rest"
    );
    let rollout = status.rollout.as_ref().unwrap();
    assert_eq!(rollout.progress(), Progress::Rejected);
    let programmed = conditions::programmed(status).unwrap();
    assert_eq!((programmed.ok, programmed.reason), (false, "Rejected"));
    assert!(
        programmed
            .message
            .contains("2 rejected (p1.foo: Envoy says no, p2.foo: Envoy says no)"),
        "{}",
        programmed.message
    );
    assert_eq!(status.nodes, 2, "it still reaches them");
    let b = &d.statuses[&index_key("foo", "obj-b")];
    assert_eq!(b.rollout.as_ref().unwrap().progress(), Progress::Pending);

    // The record disappears (a later version was ACKed, or the replica left).
    index.set_node_status("p1.foo", "r1", None);
    index.reset_node_status([]);
    let d = index.desired();
    let rollout = d.statuses[&index_key("foo", "obj-a")]
        .rollout
        .clone()
        .unwrap();
    assert_eq!(rollout.progress(), Progress::Programmed);
    assert_eq!(rollout.not_connected.count, 2);
}

#[test]
fn nacks_of_nodes_without_binding_or_unknown_resources_change_nothing() {
    let mut index = Index::new();
    index.apply_object(cluster("foo", "c1", None, "1s"));
    index.apply_pod(mk_pod("foo", "p", &[]));
    let cds = ResourceType::Cluster.type_url();
    index.reset_node_status([
        nack_record("gone.foo", "r", cds, &["c1"]),
        nack_record("p.foo", "r", cds, &["not-ours"]),
        nack_record("p.foo", "r2", ResourceType::Listener.type_url(), &["c1"]),
    ]);
    let d = index.desired();
    let rollout = d.statuses[&index_key("foo", "c1")].rollout.clone().unwrap();
    assert_eq!(rollout.rejected.count, 0);
}

mod service_endpoints {
    use bootes_proto::Keys;

    use super::*;
    use crate::plan;
    use crate::service_endpoints::{EndpointSlice, SliceKey};
    use crate::service_ref::{ServicePort, ServiceRef};

    /// An Endpoint for cluster `web` naming Service `web`, port `http`.
    fn web_endpoint(ns: &str, selector: Option<&[(&str, &str)]>) -> BootesObject {
        let mut o = mk_object(
            ResourceType::Endpoint,
            ns,
            "web",
            selector,
            json!({"cluster_name": "web", "policy": {"overprovisioning_factor": 140}}),
        );
        o.service = Some(ServiceRef {
            name: "web".into(),
            port: ServicePort::Name("http".into()),
        });
        o
    }

    fn mk_slice(
        ns: &str,
        name: &str,
        service: &str,
        endpoints: serde_json::Value,
    ) -> EndpointSlice {
        EndpointSlice::from_object(
            json!({"metadata": {"name": name, "namespace": ns,
                                "labels": {"kubernetes.io/service-name": service}},
                   "addressType": "IPv4",
                   "ports": [{"name": "http", "port": 8080}],
                   "endpoints": endpoints}),
            "default",
        )
        .unwrap()
    }

    fn ready(ips: &[&str]) -> serde_json::Value {
        ips.iter()
            .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
            .collect()
    }

    /// The ClusterLoadAssignment `node` receives for cluster `web`, as JSON.
    fn assignment(d: &Desired, node: &str) -> Option<serde_json::Value> {
        let group = &d.groups[&d.bindings[node].snapshot];
        let t = group
            .snapshot
            .types
            .iter()
            .find(|t| t.type_url == ResourceType::Endpoint.type_url())?;
        let r = t.resources.iter().find(|r| r.name == "web")?;
        let desc = bootes_proto::envoy::descriptor_pool()
            .get_message_by_name(ResourceType::Endpoint.message_name())
            .unwrap();
        let message = prost_reflect::DynamicMessage::decode(desc, r.value.as_slice()).unwrap();
        Some(serde_json::to_value(&message).unwrap())
    }

    fn addresses(cla: &serde_json::Value) -> Vec<String> {
        let mut out = Vec::new();
        for group in cla["endpoints"].as_array().into_iter().flatten() {
            for lb in group["lbEndpoints"].as_array().into_iter().flatten() {
                out.push(
                    lb["endpoint"]["address"]["socketAddress"]["address"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
        }
        out
    }

    fn endpoint_key(ns: &str) -> ObjectKey {
        ObjectKey {
            kind: ResourceType::Endpoint,
            namespace: ns.into(),
            name: "web".into(),
        }
    }

    #[test]
    fn an_endpoint_naming_a_service_gets_the_endpoints_of_its_slices() {
        let mut index = Index::new();
        index.apply_pod(mk_pod("foo", "p", &[]));
        // Slices before and after the object: the same result.
        index.apply_slice(mk_slice("foo", "web-1", "web", ready(&["10.0.0.1"])));
        index.apply_object(web_endpoint("foo", None));
        index.apply_slice(mk_slice("foo", "web-2", "web", ready(&["10.0.0.2"])));
        // Other Services, other namespaces: not this Endpoint's.
        index.apply_slice(mk_slice("foo", "api-1", "api", ready(&["10.0.1.1"])));
        index.apply_slice(mk_slice("bar", "web-1", "web", ready(&["10.0.2.1"])));
        let d = index.desired();
        let cla = assignment(&d, "p.foo").unwrap();
        assert_eq!(addresses(&cla), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(cla["policy"]["overprovisioningFactor"], 140);
        assert!(d.statuses[&endpoint_key("foo")].accepted());
        assert_eq!(index.service_endpoint_counts(), (4, 2));

        // Deleting the slices empties the endpoints; the resource stays.
        index.delete_slice(&SliceKey {
            namespace: "foo".into(),
            name: "web-1".into(),
        });
        index.reset_slices(Vec::new());
        let cla = assignment(&index.desired(), "p.foo").unwrap();
        assert_eq!(cla["clusterName"], "web");
        assert!(addresses(&cla).is_empty());
        assert_eq!(index.service_endpoint_counts(), (0, 0));
    }

    #[test]
    fn a_malformed_slice_is_a_warning_on_the_endpoint_until_it_is_fixed() {
        let mut index = Index::new();
        index.apply_pod(mk_pod("foo", "p", &[]));
        index.apply_object(web_endpoint("foo", None));
        index.apply_slice(mk_slice("foo", "web-1", "web", ready(&["10.0.0.1"])));
        let clean = index.desired();
        assert_eq!(
            conditions::accepted(&clean.statuses[&endpoint_key("foo")]).message,
            ""
        );

        // A bad address: the endpoints, hence the resource, do not change,
        // but the object says what was left out and where.
        let bad = json!([{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.x"]}]);
        index.apply_slice(mk_slice("foo", "web-1", "web", bad));
        let d = index.desired();
        let status = &d.statuses[&endpoint_key("foo")];
        assert!(status.accepted());
        assert_eq!(
            conditions::accepted(status).message,
            r#"warnings: spec.service: EndpointSlice foo/web-1: endpoints[1].addresses[0]: "10.0.0.x" is not an IPv4 address; this endpoint is left out"#
        );
        assert_eq!(index.warnings(&endpoint_key("foo")).len(), 1);
        assert_eq!(d.groups, clean.groups);

        index.apply_slice(mk_slice("foo", "web-1", "web", ready(&["10.0.0.1"])));
        assert_eq!(
            conditions::accepted(&index.desired().statuses[&endpoint_key("foo")]).message,
            ""
        );
        assert!(index.warnings(&endpoint_key("foo")).is_empty());
    }

    #[test]
    fn an_endpoint_with_both_or_neither_sources_is_rejected() {
        let mut index = Index::new();
        index.apply_pod(mk_pod("foo", "p", &[]));
        index.apply_object(web_endpoint("foo", None));
        let before = index.desired();

        let mut both = web_endpoint("foo", None);
        both.generation = 2;
        both.config["endpoints"] = json!([]);
        let problems = index.apply_object(both);
        assert_eq!(problems[0].path, "spec.service");
        let d = index.desired();
        let status = &d.statuses[&endpoint_key("foo")];
        assert_eq!(status.verdict.reason(), Reason::InvalidConfig);
        assert!(
            conditions::accepted(status).message.contains("not both"),
            "{}",
            conditions::accepted(status).message
        );
        assert!(
            conditions::accepted(status)
                .message
                .contains("generation 1 stays in force"),
            "{}",
            conditions::accepted(status).message
        );
        assert_eq!(before.groups, d.groups);

        let mut neither = web_endpoint("foo", None);
        neither.service = None;
        let problems = index.apply_object(neither);
        assert!(
            problems[0].message.contains("spec.service"),
            "{}",
            problems[0]
        );
        // A Cluster cannot name a Service.
        let mut c = cluster("foo", "c", None, "1s");
        c.service = web_endpoint("foo", None).service;
        assert_eq!(index.apply_object(c)[0].path, "spec.service");
    }

    #[test]
    fn a_slice_change_rewrites_only_the_groups_receiving_the_service() {
        let keys = Keys::default();
        let mut index = Index::new();
        // Group "web" receives the Endpoint; group "db" does not.
        index.apply_object(web_endpoint("foo", Some(&[("app", "web")])));
        index.apply_object(cluster("foo", "db", Some(&[("app", "db")]), "1s"));
        index.apply_pod(mk_pod("foo", "web-0", &[("app", "web")]));
        index.apply_pod(mk_pod("foo", "web-1", &[("app", "web")]));
        index.apply_pod(mk_pod("foo", "db-0", &[("app", "db")]));
        index.apply_slice(mk_slice(
            "foo",
            "web-1",
            "web",
            ready(&["10.0.0.1", "10.0.0.2"]),
        ));
        let mut etcd = plan::contents(&keys, &index.desired());

        // A pod more: one put, the snapshot of the web group; no binding moves.
        index.apply_slice(mk_slice(
            "foo",
            "web-1",
            "web",
            ready(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
        ));
        let d = index.desired();
        let p = plan::plan(&keys, &etcd, &d);
        assert_eq!(p.txns.len(), 1);
        assert_eq!(
            p.txns[0].iter().map(plan::Op::key).collect::<Vec<_>>(),
            [keys.snapshot(&d.bindings["web-0.foo"].snapshot)]
        );
        for ops in &p.txns {
            plan::apply(&mut etcd, ops);
        }

        // Reordered endpoints, a new label, the same endpoints split over two
        // slices, a not-ready pod appearing: nothing to write.
        let mut relabelled = mk_slice(
            "foo",
            "web-1",
            "web",
            ready(&["10.0.0.3", "10.0.0.1", "10.0.0.2"]),
        );
        relabelled.ports.push(crate::service_endpoints::SlicePort {
            name: Some("metrics".into()),
            port: Some(9090),
        });
        index.apply_slice(relabelled);
        assert!(plan::plan(&keys, &etcd, &index.desired()).is_empty());
        index.reset_slices(vec![
            mk_slice("foo", "web-1", "web", ready(&["10.0.0.1"])),
            mk_slice(
                "foo",
                "web-2",
                "web",
                json!([{"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.2"]},
                       {"addresses": ["10.0.0.4"], "conditions": {"ready": false}}]),
            ),
        ]);
        assert!(plan::plan(&keys, &etcd, &index.desired()).is_empty());
        // Another Service's slices change nothing either.
        index.apply_slice(mk_slice("foo", "api-1", "api", ready(&["10.0.1.1"])));
        assert!(plan::plan(&keys, &etcd, &index.desired()).is_empty());
    }
}

#[test]
fn an_object_too_large_for_etcd_alone_is_rejected_and_its_previous_version_stays() {
    let mut index = Index::new();
    index.apply_object(cluster("foo", "c1", None, "1s"));
    index.apply_object(cluster("foo", "c2", None, "1s"));
    index.apply_pod(mk_pod("foo", "p", &[]));
    let before = index.desired();

    // Just under the limit is fine; well over it is TooLarge.
    let with_blob = |bytes: usize| {
        let mut c = cluster("foo", "c1", None, "1s");
        c.generation = 2;
        c.config["metadata"] = json!({"filter_metadata": {"blob": {"b": "x".repeat(bytes)}}});
        c
    };
    assert!(index.apply_object(with_blob(1_000_000)).is_empty());
    index.apply_object(cluster("foo", "c1", None, "1s"));
    let problems = index.apply_object(with_blob(1_500_000));
    assert_eq!(problems.len(), 1, "{problems:?}");
    let after = index.desired();
    assert_eq!(before.groups, after.groups, "generation 1 stays in force");
    let status = &after.statuses[&index_key("foo", "c1")];
    assert_eq!(status.verdict.reason(), Reason::TooLarge);
    assert!(!status.accepted());
    assert!(
        conditions::accepted(status).message.contains(&format!(
            "({} bytes)",
            bootes_proto::limits::MAX_VALUE_BYTES
        )) && conditions::accepted(status).message.contains("1500"),
        "names the size and the limit: {}",
        conditions::accepted(status).message
    );
    assert_eq!(
        after.statuses[&index_key("foo", "c2")].verdict.reason(),
        Reason::Valid
    );
}

/// Builds the same objects and pods into a fresh index: what `desired` must
/// equal however the index got there.
fn fresh(objects: &[BootesObject], pods: &[Pod]) -> Desired {
    let mut index = Index::new();
    index.reset_objects(objects.iter().cloned());
    index.reset_pods(pods.iter().cloned());
    index.desired()
}

#[test]
fn an_edit_rebuilds_only_the_groups_of_the_edited_object() {
    let mut objects = vec![
        cluster("ns", "a", Some(&[("app", "a")]), "1s"),
        cluster("ns", "b", Some(&[("app", "b")]), "1s"),
        // In both groups.
        cluster("ns", "shared", None, "1s"),
    ];
    let pods = vec![
        mk_pod("ns", "pa", &[("app", "a")]),
        mk_pod("ns", "pb", &[("app", "b")]),
    ];
    let mut index = Index::new();
    index.reset_objects(objects.clone());
    index.reset_pods(pods.clone());
    let before = index.desired();
    let group_of = |d: &Desired, node: &str| d.groups[&d.bindings[node].snapshot].clone();

    // Nothing changed: every group is the one built before.
    let again = index.desired();
    for node in ["pa.ns", "pb.ns"] {
        assert!(Arc::ptr_eq(
            &group_of(&before, node).snapshot,
            &group_of(&again, node).snapshot
        ));
    }

    // Editing `a` rebuilds pa's group only; the result is what a fresh index computes.
    objects[0] = cluster("ns", "a", Some(&[("app", "a")]), "2s");
    index.apply_object(objects[0].clone());
    let after = index.desired();
    assert!(!Arc::ptr_eq(
        &group_of(&before, "pa.ns").snapshot,
        &group_of(&after, "pa.ns").snapshot
    ));
    assert!(Arc::ptr_eq(
        &group_of(&before, "pb.ns").snapshot,
        &group_of(&after, "pb.ns").snapshot
    ));
    assert_eq!(after, fresh(&objects, &pods));

    // Editing the shared object rebuilds both; an invalid edit rebuilds none.
    objects[2] = cluster("ns", "shared", None, "3s");
    index.apply_object(objects[2].clone());
    let shared = index.desired();
    for node in ["pa.ns", "pb.ns"] {
        assert!(!Arc::ptr_eq(
            &group_of(&after, node).snapshot,
            &group_of(&shared, node).snapshot
        ));
    }
    assert_eq!(shared, fresh(&objects, &pods));
    index.apply_object(cluster("ns", "shared", None, "not a duration"));
    let invalid = index.desired();
    assert_eq!(invalid.groups, shared.groups);
    for node in ["pa.ns", "pb.ns"] {
        assert!(Arc::ptr_eq(
            &group_of(&shared, node).snapshot,
            &group_of(&invalid, node).snapshot
        ));
    }
}

enum Change {
    Object(BootesObject),
    DeleteObject(ObjectKey),
    Pod(Pod),
    DeletePod(PodKey),
}

fn apply(index: &mut Index, change: &Change) {
    match change {
        Change::Object(o) => {
            index.apply_object(o.clone());
        }
        Change::DeleteObject(k) => index.delete_object(k),
        Change::Pod(p) => index.apply_pod(p.clone()),
        Change::DeletePod(k) => index.delete_pod(k),
    }
}

#[test]
fn incremental_desired_equals_a_fresh_computation_after_any_sequence_of_changes() {
    // A deterministic pseudo-random walk over objects (some invalid) and
    // pods of three namespaces. After every step, the index (which
    // recomputes only the namespaces that changed, and only the groups whose
    // objects changed) must agree with a new index given the same history
    // and computing everything once.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let namespaces = ["a", "b", "c"];
    let apps = ["x", "y"];
    let mut history = Vec::new();
    let mut index = Index::new();
    for step in 0..300 {
        let ns = namespaces[next(3) as usize];
        let app = apps[next(2) as usize];
        let change = match next(6) {
            0 | 1 => {
                let name = format!("c{}", next(4));
                let selector: &[(&str, &str)] = &[("app", app)];
                let timeout = ["1s", "2s", "bad"][next(3) as usize];
                Change::Object(cluster(
                    ns,
                    &name,
                    (next(3) > 0).then_some(selector),
                    timeout,
                ))
            }
            2 => Change::DeleteObject(index_key(ns, &format!("c{}", next(4)))),
            3 | 4 => Change::Pod(mk_pod(ns, &format!("p{}", next(5)), &[("app", app)])),
            _ => Change::DeletePod(PodKey {
                namespace: ns.into(),
                name: format!("p{}", next(5)),
            }),
        };
        apply(&mut index, &change);
        history.push(change);
        let mut fresh = Index::new();
        for change in &history {
            apply(&mut fresh, change);
        }
        assert_eq!(index.desired(), fresh.desired(), "step {step}");
    }
}

#[test]
fn a_group_too_large_only_combined_leaves_out_the_youngest_objects_and_sends_the_rest() {
    let mut index = Index::new();
    let big = |name: &str, created: &str, bytes: usize| {
        let mut c = cluster("foo", name, None, "1s");
        c.created = Some(created.into());
        c.config["metadata"] = json!({"filter_metadata": {"blob": {"b": "x".repeat(bytes)}}});
        c
    };
    index.apply_object(big("old", "2024-01-01T00:00:00Z", 600_000));
    index.apply_object(big("mid", "2024-01-02T00:00:00Z", 600_000));
    index.apply_object(big("new", "2024-01-03T00:00:00Z", 600_000));
    index.apply_object(cluster("foo", "small", None, "1s"));
    index.apply_pod(mk_pod("foo", "p1", &[]));
    index.apply_pod(mk_pod("foo", "p2", &[]));
    let desired = index.desired();
    // "new" pushed the group over; "small" (no timestamp: last in
    // precedence) still fits after it is left out.
    assert_eq!(cluster_names(&desired, "p1.foo"), ["mid", "old", "small"]);
    let group = desired.groups.values().next().unwrap();
    assert!(group.snapshot.encoded_len() <= bootes_proto::limits::MAX_VALUE_BYTES);
    let status = &desired.statuses[&index_key("foo", "new")];
    assert_eq!(
        (status.accepted(), &status.verdict.reason()),
        (false, &Reason::TooLarge)
    );
    assert_eq!(status.nodes, 0);
    assert!(
        conditions::accepted(status)
            .message
            .contains("2 node(s), e.g. p1.foo"),
        "{}",
        conditions::accepted(status).message
    );
    for name in ["old", "mid", "small"] {
        let s = &desired.statuses[&index_key("foo", name)];
        assert_eq!((s.accepted(), s.nodes), (true, 2), "{name}: {s:?}");
    }
    // The plan writes it: nothing is oversized any more.
    let plan = crate::plan::plan(
        &bootes_proto::Keys::new(bootes_proto::DEFAULT_PREFIX),
        &Default::default(),
        &desired,
    );
    assert!(plan.oversized.is_empty());
    assert!(!plan.txns.is_empty());
}

fn listener_routing_to(ns: &str, cluster: &str, validate_clusters: Option<bool>) -> BootesObject {
    let mut rc = json!({"name": "inline", "virtual_hosts": [{"name": "v", "domains": ["*"],
        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]});
    if let Some(v) = validate_clusters {
        rc["validate_clusters"] = json!(v);
    }
    mk_object(
        ResourceType::Listener,
        ns,
        "edge",
        None,
        json!({"name": "edge", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 80}},
               "filter_chains": [{"filters": [{"name": "hcm", "typed_config": {
                   "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                   "stat_prefix": "s", "route_config": rc,
                   "http_filters": [{"name": "router", "typed_config": {
                       "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}),
    )
}

#[test]
fn resolved_refs_is_computed_from_what_each_group_receives() {
    let mut index = Index::new();
    index.apply_object(listener_routing_to("foo", "web", None));
    index.apply_object(cluster("foo", "web", Some(&[("track", "canary")]), "1s"));
    index.apply_pod(mk_pod("foo", "p1", &[("track", "canary")]));
    index.apply_pod(mk_pod("foo", "p2", &[]));
    let key = ObjectKey {
        kind: ResourceType::Listener,
        namespace: "foo".into(),
        name: "edge".into(),
    };
    let desired = index.desired();
    let status = &desired.statuses[&key];
    // Still delivered (Envoy keeps its previous listener and NACKs), but
    // reported with the node that misses the cluster.
    assert!(status.accepted(), "{status:?}");
    let conditions::Said {
        ok,
        reason,
        message,
        ..
    } = conditions::resolved_refs(status).unwrap();
    assert_eq!((ok, reason), (false, "UnknownCluster"));
    assert!(
        message.contains("1 of the 2 nodes this object reaches: p2.foo")
            && message.contains("Envoy rejects the listener there"),
        "{message}"
    );
    // The EDS cluster misses its endpoints: a warning only.
    let c = &desired.statuses[&index_key("foo", "web")];
    assert_eq!(
        conditions::resolved_refs(c).unwrap().reason,
        "UnresolvedReferences"
    );

    // validate_clusters: false: a warning only.
    index.apply_object(listener_routing_to("foo", "web", Some(false)));
    let status = index.desired().statuses[&key].clone();
    assert_eq!(
        conditions::resolved_refs(&status).unwrap().reason,
        "UnresolvedReferences"
    );

    // Declared in the bootstrap (for this namespace): resolved.
    index.apply_object(listener_routing_to("foo", "web", None));
    index.set_bootstrap_clusters(BootstrapClusters::parse(["foo/web"]).unwrap());
    let status = index.desired().statuses[&key].clone();
    assert_eq!(
        conditions::resolved_refs(&status).map(|s| (s.ok, s.reason, s.message)),
        Some((true, "ResolvedRefs", String::new()))
    );
    // A pod that the cluster selects too: resolved without the declaration.
    index.set_bootstrap_clusters(BootstrapClusters::default());
    index.apply_pod(mk_pod("foo", "p2", &[("track", "canary")]));
    let status = index.desired().statuses[&key].clone();
    assert!(conditions::resolved_refs(&status).unwrap().ok, "{status:?}");
    // An invalid object has no resource in force: no ResolvedRefs at all.
    let mut bad = listener_routing_to("foo", "bad", None);
    bad.key.name = "bad".into();
    bad.config["name"] = json!("bad");
    bad.config["address"] = json!("nowhere");
    index.apply_object(bad.clone());
    assert_eq!(index.desired().statuses[&bad.key].refs, None);
}

fn tcp_listener(
    ns: &str,
    name: &str,
    port: u32,
    selector: Option<&[(&str, &str)]>,
) -> BootesObject {
    mk_object(
        ResourceType::Listener,
        ns,
        name,
        selector,
        json!({"name": name, "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
               "filter_chains": [{"filters": [{"name": "tcp", "typed_config": {
                   "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                   "stat_prefix": "t", "cluster": "db"}}]}]}),
    )
}

#[test]
fn two_listeners_on_one_address_are_reported_where_one_node_receives_both() {
    let mut index = Index::new();
    index.set_bootstrap_clusters(BootstrapClusters::parse(["db"]).unwrap());
    index.apply_object(tcp_listener("foo", "a", 80, None));
    index.apply_object(tcp_listener("foo", "b", 80, Some(&[("track", "canary")])));
    index.apply_object(tcp_listener("foo", "c", 81, None));
    index.apply_pod(mk_pod("foo", "p1", &[("track", "canary")]));
    index.apply_pod(mk_pod("foo", "p2", &[]));
    let desired = index.desired();
    let said = |name: &str| {
        conditions::resolved_refs(
            &desired.statuses[&ObjectKey {
                kind: ResourceType::Listener,
                namespace: "foo".into(),
                name: name.into(),
            }],
        )
        .unwrap()
    };
    let a = said("a");
    assert_eq!((a.ok, a.reason), (false, "DuplicateAddress"), "{a:?}");
    assert!(
        a.message.starts_with("spec.config.address: listener address 0.0.0.0:80: also the address of listener \"b\" on 1 of the 2 nodes this object reaches: p1.foo"),
        "{}",
        a.message
    );
    assert_eq!(said("b").reason, "DuplicateAddress");
    assert!(said("c").ok, "another port");
}

mod rollout;
