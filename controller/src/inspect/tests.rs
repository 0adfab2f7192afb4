//! The rendering core of `inspect`: etcd key/values in, JSON out.

use super::*;
use prost::Message;
use serde_json::json;

const PREFIX: &str = "/bootes/v1/";

/// Encodes proto3 JSON of `ty` with the Envoy pool (as the controller does).
fn encode(ty: ResourceType, config: Value) -> Vec<u8> {
    let desc = envoy::descriptor_pool()
        .get_message_by_name(ty.message_name())
        .unwrap();
    let msg = DynamicMessage::deserialize(desc, config).unwrap();
    msg.encode_to_vec()
}

fn resource(ty: ResourceType, name: &str, ver: &str, config: Value) -> store::Resource {
    store::Resource {
        name: name.into(),
        version: ver.into(),
        value: encode(ty, config),
        source: Some(source(ty.kind(), name)),
        sealed: None,
    }
}

fn source(kind: &str, name: &str) -> store::ObjectRef {
    store::ObjectRef {
        kind: kind.into(),
        namespace: "shop".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        generation: 2,
    }
}

fn type_resources(ty: ResourceType, resources: Vec<store::Resource>) -> store::TypeResources {
    store::TypeResources {
        type_url: ty.type_url().into(),
        version: version::of_set(
            resources
                .iter()
                .map(|r| (r.name.as_str(), r.version.as_str())),
        ),
        resources,
    }
}

fn cluster(name: &str, timeout: &str) -> Value {
    json!({"name": name, "connect_timeout": timeout, "type": "EDS",
           "eds_cluster_config": {"eds_config": {"ads": {}}}})
}

fn endpoint(name: &str, port: u32) -> Value {
    json!({"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
        {"socket_address": {"address": "10.0.0.1", "port_value": port}}}}]}]})
}

fn listener() -> Value {
    json!({
        "name": "http",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "in",
                "rds": {"route_config_name": "r", "config_source": {"ads": {}}},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config":
                    {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }
        }]}]
    })
}

fn snapshot_of(group: &str, types: Vec<store::TypeResources>) -> store::Snapshot {
    store::Snapshot {
        namespace: "shop".into(),
        group: group.into(),
        version: version::of_set(
            types
                .iter()
                .map(|t| (t.type_url.as_str(), t.version.as_str())),
        ),
        objects: types
            .iter()
            .flat_map(|t| t.resources.iter())
            .map(|r| store::ObjectRef {
                generation: 0,
                ..r.source.clone().unwrap()
            })
            .collect(),
        types,
    }
}

fn binding(snapshot: &str, pod: &str) -> store::NodeBinding {
    store::NodeBinding {
        snapshot: snapshot.into(),
        namespace: "shop".into(),
        pod_name: pod.into(),
        pod_uid: format!("pod-uid-{pod}"),
        service_account: "default".into(),
    }
}

/// Two groups: `g1` (clusters a and b, endpoint a, listener http) bound to
/// web-0 and web-1; `g2` (cluster a with another timeout, cluster c) bound to api-0.
fn fixture() -> Vec<(String, Vec<u8>)> {
    let keys = Keys::default();
    let g1 = snapshot_of(
        "g1",
        vec![
            type_resources(
                ResourceType::Cluster,
                vec![
                    resource(ResourceType::Cluster, "a", "va1", cluster("a", "1s")),
                    resource(ResourceType::Cluster, "b", "vb", cluster("b", "1s")),
                ],
            ),
            type_resources(
                ResourceType::Endpoint,
                vec![resource(
                    ResourceType::Endpoint,
                    "a",
                    "vea",
                    endpoint("a", 80),
                )],
            ),
            type_resources(
                ResourceType::Listener,
                vec![resource(ResourceType::Listener, "http", "vl", listener())],
            ),
        ],
    );
    let g2 = snapshot_of(
        "g2",
        vec![type_resources(
            ResourceType::Cluster,
            vec![
                resource(ResourceType::Cluster, "a", "va2", cluster("a", "2s")),
                resource(ResourceType::Cluster, "c", "vc", cluster("c", "1s")),
            ],
        )],
    );
    vec![
        // Deliberately unsorted.
        (keys.snapshot("shop/g2"), g2.encode_to_vec()),
        (
            keys.node("web-1.shop"),
            binding("shop/g1", "web-1").encode_to_vec(),
        ),
        (keys.snapshot("shop/g1"), g1.encode_to_vec()),
        (
            keys.node("web-0.shop"),
            binding("shop/g1", "web-0").encode_to_vec(),
        ),
        (
            keys.node("api-0.shop"),
            binding("shop/g2", "api-0").encode_to_vec(),
        ),
        (keys.leader(), b"controller-1".to_vec()),
    ]
}

fn decode(kvs: &[(String, Vec<u8>)]) -> Store {
    Store::decode(&Keys::new(PREFIX), kvs.iter().map(|(k, v)| (k, v)), None)
}

fn g1_type_version(store: &Store, ty: ResourceType) -> String {
    store.snapshots["shop/g1"]
        .types
        .iter()
        .find(|t| t.type_url == ty.type_url())
        .unwrap()
        .version
        .clone()
}

fn status(node: &str, replica: &str, types: Vec<store::TypeStatus>) -> (String, Vec<u8>) {
    (
        Keys::default().status(node, replica),
        store::NodeStatus {
            node_id: node.into(),
            replica: replica.into(),
            types,
        }
        .encode_to_vec(),
    )
}

fn acked(ty: ResourceType, version: &str) -> store::TypeStatus {
    store::TypeStatus {
        type_url: ty.type_url().into(),
        acked_version: version.into(),
        ..Default::default()
    }
}

#[test]
fn nodes_list_groups_counts_and_is_sorted() {
    let v = nodes(&decode(&fixture()));
    let ids: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["api-0.shop", "web-0.shop", "web-1.shop"]);
    let web0 = &v["nodes"][1];
    assert_eq!(web0["snapshot"], "shop/g1");
    assert_eq!(web0["namespace"], "shop");
    assert_eq!(web0["pod"], "web-0");
    assert_eq!(web0["resources"], json!({"CDS": 2, "EDS": 1, "LDS": 1}));
    assert_eq!(web0["state"], "disconnected");
    assert_eq!(web0["xds"], json!([]));
    assert_eq!(v["errors"], json!([]));
}

#[test]
fn nodes_show_ack_and_nack_state_per_replica() {
    let mut kvs = fixture();
    let store = decode(&kvs);
    let cds = g1_type_version(&store, ResourceType::Cluster);
    let eds = g1_type_version(&store, ResourceType::Endpoint);
    kvs.push(status(
        "web-0.shop",
        "xds-b",
        vec![
            acked(ResourceType::Listener, "old"),
            acked(ResourceType::Cluster, &cds),
            acked(ResourceType::Endpoint, &eds),
        ],
    ));
    kvs.push(status(
        "web-1.shop",
        "xds-a",
        vec![store::TypeStatus {
            type_url: ResourceType::Cluster.type_url().into(),
            acked_version: "old".into(),
            nacked_version: cds.clone(),
            nack_detail: "cluster b: bad timeout".into(),
            nacked_resources: vec!["b".into(), "a".into()],
            ..Default::default()
        }],
    ));
    // A node an xds-server has a stream for, without a binding (yet).
    kvs.push(status("new-0.shop", "xds-a", vec![]));
    let v = nodes(&decode(&kvs));
    let by_id = |id: &str| {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == id)
            .unwrap()
            .clone()
    };

    let web0 = by_id("web-0.shop");
    assert_eq!(web0["state"], "stale");
    let replica = &web0["xds"][0];
    assert_eq!(replica["replica"], "xds-b");
    assert_eq!(replica["state"], "stale");
    // Types in make-before-break order, each against the snapshot's version.
    let types: Vec<(&str, &str)> = replica["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["type"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        types,
        [("CDS", "synced"), ("EDS", "synced"), ("LDS", "stale")]
    );
    assert_eq!(replica["types"][0]["snapshot_version"], json!(cds));
    assert_eq!(replica["types"][2]["acked_version"], "old");

    let web1 = by_id("web-1.shop");
    assert_eq!(web1["state"], "nacked");
    let cds_status = &web1["xds"][0]["types"][0];
    assert_eq!(cds_status["state"], "nacked");
    assert_eq!(
        cds_status["nack"],
        json!({"version": cds, "detail": "cluster b: bad timeout", "resources": ["a", "b"]})
    );

    let new = by_id("new-0.shop");
    assert_eq!(new["snapshot"], Value::Null);
    assert_eq!(new["state"], "unbound");
}

#[test]
fn a_named_subscription_to_part_of_a_type_is_in_sync() {
    let store = decode(&fixture());
    let g2 = &store.snapshots["shop/g2"];
    // Pretend clusters were a named type: use the EDS type URL over g2's clusters.
    let tr = store::TypeResources {
        type_url: ResourceType::Endpoint.type_url().into(),
        ..g2.types[0].clone()
    };
    let only_c = version::of_set([("c", "vc")]);
    assert!(acked_current(tr.type_url.as_str(), &only_c, Some(&tr)));
    assert!(acked_current(tr.type_url.as_str(), &tr.version, Some(&tr)));
    assert!(!acked_current(
        tr.type_url.as_str(),
        &version::of_set([("c", "old")]),
        Some(&tr)
    ));
    // Wildcard types must have all of it.
    assert!(!acked_current(
        ResourceType::Cluster.type_url(),
        &only_c,
        Some(&g2.types[0])
    ));
    // A type the snapshot lacks is in sync when nothing is ACKed.
    assert!(acked_current(
        ResourceType::Route.type_url(),
        &version::of_set([]),
        None
    ));
}

#[test]
fn groups_list_objects_versions_and_bound_nodes() {
    let v = groups(&decode(&fixture()));
    let g = v["groups"].as_array().unwrap();
    assert_eq!(g.len(), 2);
    assert_eq!(g[0]["snapshot"], "shop/g1");
    assert_eq!(g[0]["namespace"], "shop");
    assert_eq!(g[0]["group"], "g1");
    assert_eq!(g[0]["nodes"], json!(["web-0.shop", "web-1.shop"]));
    assert_eq!(g[1]["nodes"], json!(["api-0.shop"]));
    let objects: Vec<String> = g[0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        objects,
        ["Cluster a", "Cluster b", "Endpoint a", "Listener http"]
    );
    assert_eq!(
        g[0]["types"],
        json!([
            {"type": "CDS", "resources": 2, "version": g[0]["types"][0]["version"]},
            {"type": "EDS", "resources": 1, "version": g[0]["types"][1]["version"]},
            {"type": "LDS", "resources": 1, "version": g[0]["types"][2]["version"]},
        ])
    );
    // What the group's resources name and the group does not have.
    let unresolved: Vec<(&str, &str)> = g[0]["unresolved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["object"]["name"].as_str().unwrap(),
                u["problem"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        unresolved,
        [
            ("b", "EDS cluster needs endpoints for \"b\": no Endpoint object provides it to 2 of the 2 nodes this object reaches: web-0.shop, web-1.shop"),
            ("http", "RDS route configuration \"r\": no Route object provides it to 2 of the 2 nodes this object reaches: web-0.shop, web-1.shop"),
        ]
    );
    assert_eq!(g[0]["unresolved"][0]["envoy_rejects"], false);
    assert_eq!(g[1]["unresolved"].as_array().unwrap().len(), 2);
    // `inspect snapshot` lists those of the node's group.
    let v = snapshot(&decode(&fixture()), "api-0.shop", Options::default()).unwrap();
    assert_eq!(v["unresolved"].as_array().unwrap().len(), 2, "{v:#}");
}

#[test]
fn snapshot_decodes_every_resource_and_every_any() {
    let v = snapshot(&decode(&fixture()), "web-0.shop", Options::default()).unwrap();
    assert_eq!(v["node"], "web-0.shop");
    assert_eq!(v["snapshot"], "shop/g1");
    let types: Vec<&str> = v["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["CDS", "EDS", "LDS"]);
    let a = &v["types"][0]["resources"][0];
    assert_eq!(a["type"], "CDS");
    assert_eq!(a["name"], "a");
    assert_eq!(a["version"], "va1");
    assert_eq!(
        a["source"],
        json!({"kind": "Cluster", "namespace": "shop", "name": "a", "uid": "uid-a", "generation": 2})
    );
    assert_eq!(a["config"]["connect_timeout"], "1s");
    assert_eq!(
        a["config"]["eds_cluster_config"]["eds_config"]["ads"],
        json!({})
    );
    assert_eq!(v["types"][0]["type_url"], ResourceType::Cluster.type_url());
    // Proto field names, and the HttpConnectionManager inside the Any decoded.
    let hcm =
        &v["types"][2]["resources"][0]["config"]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(
        hcm["@type"],
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
    assert_eq!(hcm["rds"]["route_config_name"], "r");
    assert_eq!(
        hcm["http_filters"][0]["typed_config"]["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
    );
    assert_eq!(v["errors"], json!([]));
}

#[test]
fn unknown_nodes_and_missing_snapshots_are_errors_naming_them() {
    let mut kvs = fixture();
    let store = decode(&kvs);
    let e = snapshot(&store, "nobody.shop", Options::default()).unwrap_err();
    assert!(matches!(e, InspectError::NoSuchNode(_)), "{e}");
    kvs.push((
        Keys::default().node("lost-0.shop"),
        binding("shop/gone", "lost-0").encode_to_vec(),
    ));
    let store = decode(&kvs);
    let e = snapshot(&store, "lost-0.shop", Options::default()).unwrap_err();
    assert!(e.to_string().contains("shop/gone"), "{e}");
    let v = nodes(&store);
    assert_eq!(
        v["errors"],
        json!([{"key": "/bootes/v1/nodes/lost-0.shop",
                "error": "bound to snapshot \"shop/gone\", which is missing"}])
    );
}

#[test]
fn garbage_values_are_reported_per_key() {
    let keys = Keys::default();
    let mut kvs = fixture();
    kvs.push((keys.node("junk-0.shop"), vec![0xff, 0xff, 0xff]));
    kvs.push((
        keys.snapshot("shop/junk"),
        b"not protobuf at all \xff".to_vec(),
    ));
    // Decodes as a message of another key: caught by the identity check.
    kvs.push((keys.snapshot("shop/other"), fixture()[0].1.clone()));
    kvs.push((keys.status("web-0.shop", "r"), vec![0x0a, 0x05, b'x']));
    kvs.push(("/bootes/v1/unknown/thing".into(), b"x".to_vec()));
    // A snapshot whose resource is garbage: the rest still shows.
    let mut g3 = snapshot_of(
        "g3",
        vec![type_resources(
            ResourceType::Cluster,
            vec![resource(
                ResourceType::Cluster,
                "ok",
                "v",
                cluster("ok", "1s"),
            )],
        )],
    );
    g3.types[0].resources.push(store::Resource {
        name: "bad".into(),
        version: "v".into(),
        value: vec![0xff, 0x01, 0x02],
        ..Default::default()
    });
    g3.types.push(store::TypeResources {
        type_url: "type.googleapis.com/no.such.Type".into(),
        version: "v".into(),
        resources: vec![store::Resource {
            name: "x".into(),
            ..Default::default()
        }],
    });
    kvs.push((keys.snapshot("shop/g3"), g3.encode_to_vec()));
    kvs.push((
        keys.node("g3-0.shop"),
        binding("shop/g3", "g3-0").encode_to_vec(),
    ));

    let store = decode(&kvs);
    let errors: Vec<&str> = store.errors.keys().map(String::as_str).collect();
    assert_eq!(
        errors,
        [
            "/bootes/v1/nodes/junk-0.shop",
            "/bootes/v1/snapshots/shop/junk",
            "/bootes/v1/snapshots/shop/other",
            "/bootes/v1/status/web-0.shop/r",
            "/bootes/v1/unknown/thing",
        ]
    );
    // Every command still answers, and lists the errors.
    for v in [nodes(&store), groups(&store)] {
        assert_eq!(v["errors"].as_array().unwrap().len(), 5, "{v}");
    }
    let e = snapshot(&store, "junk-0.shop", Options::default()).unwrap_err();
    assert!(
        e.to_string().contains("/bootes/v1/nodes/junk-0.shop"),
        "{e}"
    );

    let v = snapshot(&store, "g3-0.shop", Options::default()).unwrap();
    assert_eq!(v["types"][0]["resources"][1]["config"]["name"], "ok");
    let bad = &v["types"][0]["resources"][0];
    assert_eq!(bad["name"], "bad");
    assert_eq!(bad["config"], Value::Null);
    assert!(bad["error"].as_str().unwrap().contains("Cluster"), "{bad}");
    let unknown = &v["types"][1]["resources"][0];
    assert!(
        unknown["error"].as_str().unwrap().contains("no.such.Type"),
        "{unknown}"
    );
    assert_eq!(v["errors"].as_array().unwrap().len(), 2, "{v}");
}

#[test]
fn diff_shows_only_in_a_only_in_b_and_different_versions() {
    let store = decode(&fixture());
    let v = diff(&store, "web-0.shop", "api-0.shop").unwrap();
    assert_eq!(v["identical"], false);
    assert_eq!(v["a"]["snapshot"], "shop/g1");
    assert_eq!(v["b"]["snapshot"], "shop/g2");
    let types = v["types"].as_array().unwrap();
    let cds = &types[0];
    assert_eq!(cds["type"], "CDS");
    assert_eq!(cds["only_in_a"][0]["name"], "b");
    assert_eq!(cds["only_in_b"][0]["name"], "c");
    assert_eq!(cds["different"][0]["name"], "a");
    assert_eq!(cds["different"][0]["a"]["version"], "va1");
    assert_eq!(cds["different"][0]["b"]["version"], "va2");
    assert_eq!(types[1]["type"], "EDS");
    assert_eq!(types[1]["only_in_a"][0]["name"], "a");
    assert_eq!(types[1]["only_in_b"], json!([]));
    assert_eq!(types[2]["type"], "LDS");

    let same = diff(&store, "web-0.shop", "web-1.shop").unwrap();
    assert_eq!(same["identical"], true);
    assert_eq!(same["types"], json!([]));
}

fn secret() -> Value {
    json!({
        "name": "server-cert",
        "tls_certificate": {
            "certificate_chain": {"inline_string": "-----BEGIN CERTIFICATE-----PUBLIC"},
            "private_key": {"inline_string": "-----BEGIN PRIVATE KEY-----TOPSECRET"},
            "password": {"inline_bytes": "c2VjcmV0LXBhc3N3b3Jk"}
        }
    })
}

fn tls_cluster() -> Value {
    json!({
        "name": "tls", "connect_timeout": "1s", "type": "STATIC",
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {"tls_certificates": [{
                "certificate_chain": {"filename": "/certs/chain.pem"},
                "private_key": {"inline_string": "INLINE-KEY-TOPSECRET"}
            }]}
        }}
    })
}

#[test]
fn secret_material_is_redacted_unless_asked_for() {
    let keys = Keys::default();
    let snap = snapshot_of(
        "s",
        vec![
            type_resources(
                ResourceType::Cluster,
                vec![resource(ResourceType::Cluster, "tls", "v", tls_cluster())],
            ),
            type_resources(
                ResourceType::Secret,
                vec![resource(ResourceType::Secret, "server-cert", "v", secret())],
            ),
        ],
    );
    let kvs = vec![
        (keys.snapshot("shop/s"), snap.encode_to_vec()),
        (keys.node("n.shop"), binding("shop/s", "n").encode_to_vec()),
    ];
    let store = decode(&kvs);
    let v = snapshot(&store, "n.shop", Options::default()).unwrap();
    for output in [InspectOutput::Json, InspectOutput::Yaml] {
        let text = render(&v, output);
        assert!(!text.contains("TOPSECRET"), "{text}");
        assert!(!text.contains("c2VjcmV0LXBhc3N3b3Jk"), "{text}");
    }
    let sds = v["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "SDS")
        .unwrap();
    let tls = &sds["resources"][0]["config"]["tls_certificate"];
    assert_eq!(tls["private_key"]["inline_string"], REDACTED);
    assert_eq!(tls["password"]["inline_bytes"], REDACTED);
    // Public parts stay readable.
    assert_eq!(
        tls["certificate_chain"]["inline_string"],
        "-----BEGIN CERTIFICATE-----PUBLIC"
    );
    assert_eq!(sds["resources"][0]["name"], "server-cert");
    // Inside an Any (the cluster's transport socket) too.
    let cert = &v["types"][0]["resources"][0]["config"]["transport_socket"]["typed_config"]
        ["common_tls_context"]["tls_certificates"][0];
    assert_eq!(cert["private_key"]["inline_string"], REDACTED);
    assert_eq!(cert["certificate_chain"]["filename"], "/certs/chain.pem");

    let shown = snapshot(&store, "n.shop", Options { show_secrets: true }).unwrap();
    let text = render(&shown, InspectOutput::Json);
    assert!(
        text.contains("-----BEGIN PRIVATE KEY-----TOPSECRET"),
        "{text}"
    );
    assert!(text.contains("INLINE-KEY-TOPSECRET"), "{text}");
    assert!(text.contains("c2VjcmV0LXBhc3N3b3Jk"), "{text}");
}

#[test]
fn sealed_secrets_show_as_encrypted_without_the_key_and_decoded_with_it() {
    let keys = Keys::default();
    let secrets = bootes_proto::sealed::SecretKeys::parse(
        "k1 0101010101010101010101010101010101010101010101010101010101010101",
    )
    .unwrap();
    let mut snap = snapshot_of(
        "s",
        vec![type_resources(
            ResourceType::Secret,
            vec![resource(ResourceType::Secret, "server-cert", "v", secret())],
        )],
    );
    bootes_proto::sealed::seal_snapshot(&secrets, &mut snap);
    let kvs = vec![
        (keys.snapshot("shop/s"), snap.encode_to_vec()),
        (keys.node("n.shop"), binding("shop/s", "n").encode_to_vec()),
    ];
    let store = decode(&kvs);
    let v = snapshot(&store, "n.shop", Options { show_secrets: true }).unwrap();
    let r = &v["types"][0]["resources"][0];
    assert_eq!(
        r["encrypted"],
        json!({"cipher": "AES-256-GCM", "key_id": "k1"})
    );
    assert_eq!(r["config"], Value::Null);
    assert!(
        !render(&v, InspectOutput::Json).contains("PUBLIC"),
        "nothing more"
    );

    let store = Store::decode(
        &Keys::new(PREFIX),
        kvs.iter().map(|(k, v)| (k, v)),
        Some(&secrets),
    );
    let v = snapshot(&store, "n.shop", Options::default()).unwrap();
    let tls = &v["types"][0]["resources"][0]["config"]["tls_certificate"];
    assert_eq!(tls["private_key"]["inline_string"], REDACTED);
    assert_eq!(
        tls["certificate_chain"]["inline_string"],
        "-----BEGIN CERTIFICATE-----PUBLIC"
    );

    let wrong = bootes_proto::sealed::SecretKeys::parse(
        "k2 0202020202020202020202020202020202020202020202020202020202020202",
    )
    .unwrap();
    let store = Store::decode(
        &Keys::new(PREFIX),
        kvs.iter().map(|(k, v)| (k, v)),
        Some(&wrong),
    );
    assert!(
        store.errors.values().any(|e| e.contains("\"k1\"")),
        "{:?}",
        store.errors
    );
}

#[test]
fn the_pool_knows_which_fields_are_sensitive() {
    assert!(bootes_proto::redact::annotation_known());
}

#[test]
fn output_is_valid_json_or_yaml_and_stable() {
    let mut kvs = fixture();
    let a = render(&groups(&decode(&kvs)), InspectOutput::Json);
    kvs.reverse();
    let b = render(&groups(&decode(&kvs)), InspectOutput::Json);
    assert_eq!(a, b, "independent of etcd's order");
    let parsed: Value = serde_json::from_str(&a).unwrap();
    assert_eq!(parsed, groups(&decode(&kvs)));
    let yaml = render(&groups(&decode(&kvs)), InspectOutput::Yaml);
    let from_yaml: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(from_yaml, parsed);
}

#[test]
fn another_prefix_is_honoured() {
    let keys = Keys::new("/other");
    let kvs = [
        (keys.node("n.shop"), binding("shop/g", "n").encode_to_vec()),
        (
            Keys::default().node("m.shop"),
            binding("shop/g", "m").encode_to_vec(),
        ),
    ];
    let store = Store::decode(&keys, kvs.iter().map(|(k, v)| (k, v)), None);
    assert_eq!(store.nodes.keys().collect::<Vec<_>>(), ["n.shop"]);
    assert_eq!(
        store.errors.keys().collect::<Vec<_>>(),
        ["/bootes/v1/nodes/m.shop"]
    );
}
