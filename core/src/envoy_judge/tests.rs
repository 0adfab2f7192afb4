use std::cell::RefCell;

use serde_json::{json, Value};

use super::*;

/// Judges bootstraps by their static clusters and listeners: a cluster
/// `bad-*` is rejected alone, listeners `x` and `y` only together (with a
/// reason naming `y` when `quote`), a cluster `hang` is never answered. The
/// group's clusters in a bootstrap that judges another resource alone are
/// empty ones, without `per_connection_buffer_limit_bytes`.
struct Fake {
    quote: bool,
    runs: RefCell<usize>,
}

fn names(b: &Value, what: &str) -> Vec<String> {
    b["static_resources"][what]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| what == "listeners" || r.get("per_connection_buffer_limit_bytes").is_some())
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

impl EnvoyOracle for Fake {
    fn judge(&self, bootstraps: &[Vec<u8>]) -> Vec<Judgement> {
        *self.runs.borrow_mut() += bootstraps.len();
        bootstraps
            .iter()
            .map(|b| {
                let b: Value = serde_json::from_slice(b).unwrap();
                let clusters = names(&b, "clusters");
                let listeners = names(&b, "listeners");
                if clusters.iter().any(|c| c == "hang") {
                    return Judgement::Failed("took more than 1s".into());
                }
                if let Some(bad) = clusters.iter().find(|c| c.starts_with("bad-")) {
                    return Judgement::Rejects(format!("cluster '{bad}': no"));
                }
                if listeners.contains(&"x".into()) && listeners.contains(&"y".into()) {
                    return Judgement::Rejects(if self.quote {
                        "listener 'y' has duplicate address".into()
                    } else {
                        "duplicate address".into()
                    });
                }
                Judgement::Accepts
            })
            .collect()
    }
}

fn resource(ty: ResourceType, config: Value, object: &str) -> store::Resource {
    let c = bootes_envoy::convert::convert(ty, &config).expect("valid");
    store::Resource {
        name: c.name,
        version: c.version,
        value: c.value,
        source: Some(store::ObjectRef {
            kind: ty.kind().into(),
            namespace: "ns".into(),
            name: object.into(),
            ..Default::default()
        }),
        sealed: None,
    }
}

fn cluster(name: &str) -> store::Resource {
    resource(
        ResourceType::Cluster,
        json!({"name": name, "type": "STATIC", "connect_timeout": "1s",
            "per_connection_buffer_limit_bytes": 1}),
        &format!("obj-{name}"),
    )
}

fn listener(name: &str, port: u32) -> store::Resource {
    resource(
        ResourceType::Listener,
        json!({"name": name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "tcp", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "t", "cluster": "c"}}]}]}),
        &format!("obj-{name}"),
    )
}

fn group(name: &str, resources: Vec<store::Resource>) -> Group {
    let mut types: Vec<store::TypeResources> = Vec::new();
    for r in resources {
        let ty = if r.source.as_ref().unwrap().kind == "Cluster" {
            ResourceType::Cluster
        } else {
            ResourceType::Listener
        };
        match types.iter_mut().find(|t| t.type_url == ty.type_url()) {
            Some(t) => t.resources.push(r),
            None => types.push(store::TypeResources {
                type_url: ty.type_url().into(),
                version: String::new(),
                resources: vec![r],
            }),
        }
    }
    Group {
        name: name.into(),
        snapshot: Arc::new(store::Snapshot {
            namespace: "ns".into(),
            types,
            ..Default::default()
        }),
        bootstrap_clusters: Vec::new(),
    }
}

fn fake(quote: bool) -> Fake {
    Fake {
        quote,
        runs: RefCell::new(0),
    }
}

#[test]
fn a_group_envoy_accepts_costs_one_run() {
    let oracle = fake(true);
    let verdicts = judge_groups(&[group("ns/a", vec![cluster("c"), cluster("d")])], &oracle);
    assert_eq!(verdicts, [GroupVerdict::Accepted]);
    assert_eq!(*oracle.runs.borrow(), 1);
}

#[test]
fn what_fails_alone_is_blamed_alone_and_the_rest_is_judged_again() {
    let oracle = fake(true);
    let g = group("ns/a", vec![cluster("c"), cluster("bad-1"), cluster("d")]);
    let verdicts = judge_groups(std::slice::from_ref(&g), &oracle);
    assert_eq!(
        verdicts,
        [GroupVerdict::Rejected(vec![Blame {
            ty: ResourceType::Cluster,
            name: "bad-1".into(),
            reason: "cluster 'bad-1': no".into(),
            together: false,
        }])]
    );
    // The group, each of its 3 resources, the 2 left.
    assert_eq!(*oracle.runs.borrow(), 5);
    let source = source_of(&g.snapshot, ResourceType::Cluster, "bad-1").unwrap();
    assert_eq!(source.name, "obj-bad-1");
}

#[test]
fn what_fails_only_together_goes_to_the_resource_envoy_names() {
    let g = group(
        "ns/a",
        vec![listener("x", 1), listener("y", 2), cluster("c")],
    );
    let verdicts = judge_groups(std::slice::from_ref(&g), &fake(true));
    let GroupVerdict::Rejected(blamed) = &verdicts[0] else {
        panic!("{verdicts:?}")
    };
    let names: Vec<&str> = blamed.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["y"]);
    assert!(blamed[0].together);
    // Named by none: every resource of the group.
    let verdicts = judge_groups(&[g], &fake(false));
    let GroupVerdict::Rejected(blamed) = &verdicts[0] else {
        panic!("{verdicts:?}")
    };
    assert_eq!(blamed.len(), 3, "{blamed:?}");
}

#[test]
fn a_group_envoy_gives_no_verdict_on_is_unjudged_and_not_split() {
    let oracle = fake(true);
    let verdicts = judge_groups(
        &[
            group("ns/a", vec![cluster("hang"), cluster("c")]),
            group("ns/b", vec![cluster("d")]),
        ],
        &oracle,
    );
    assert_eq!(
        verdicts,
        [
            GroupVerdict::Unjudged("took more than 1s".into()),
            GroupVerdict::Accepted
        ]
    );
    assert_eq!(*oracle.runs.borrow(), 2);
}
