//! Conversion and validation: good inputs, a table of bad ones, properties.

use super::*;
use serde_json::json;

#[test]
fn converts_a_cluster_and_names_it() {
    let c = convert(
        ResourceType::Cluster,
        &json!({"name": "c1", "connect_timeout": "1s", "type": "EDS",
                "eds_cluster_config": {"eds_config": {"ads": {}}}}),
    )
    .unwrap();
    assert_eq!(c.name, "c1");
    assert!(!c.value.is_empty());
}

#[test]
fn endpoint_is_named_by_cluster_name() {
    let c = convert(ResourceType::Endpoint, &json!({"cluster_name": "c1"})).unwrap();
    assert_eq!(c.name, "c1");
}

#[test]
fn camel_and_snake_case_give_the_same_version() {
    let a = convert(
        ResourceType::Cluster,
        &json!({"name": "c", "connect_timeout": "1s"}),
    );
    let b = convert(
        ResourceType::Cluster,
        &json!({"name": "c", "connectTimeout": "1s"}),
    );
    assert_eq!(a.unwrap().version, b.unwrap().version);
}

#[test]
fn version_is_independent_of_map_order() {
    // `typed_per_filter_config` is a map field: its encoding order is not
    // stable, the version must be.
    let vh = |a: &str, b: &str| {
        json!({"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"],
        "typed_per_filter_config": {
            a: {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"k": a}},
            b: {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"k": b}}
        }}]})
    };
    let v1 = convert(ResourceType::Route, &vh("x", "y")).unwrap().version;
    let v2 = convert(ResourceType::Route, &vh("y", "x")).unwrap().version;
    assert_eq!(v1, v2);
}

#[test]
fn rejects_unknown_fields_and_missing_names() {
    let e = convert(
        ResourceType::Cluster,
        &json!({"name": "c", "conect_timeout": "1s"}),
    )
    .unwrap_err();
    assert!(e[0].message.contains("conect_timeout"), "{e:?}");
    let e = convert(ResourceType::Cluster, &json!({"connect_timeout": "1s"})).unwrap_err();
    assert_eq!(e[0].path, "spec.config.name");
}
