//! Property tests: arbitrary JSON and arbitrary YAML through the whole
//! conversion path (manifest parsing, JSON walker, rules, encoding, version,
//! reference extraction) must never panic, and must either accept with a name
//! or reject with problems located under `spec.config`.
//!
//! The case count follows `PROPTEST_CASES` (256 by default).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use bootes_proto::envoy::descriptor_pool;
use bootes_proto::ResourceType;
use proptest::prelude::*;
use prost_reflect::{Kind, MessageDescriptor};
use serde_json::{json, Value as Json};

use crate::manifest::{parse_stream, Document};
use crate::xref;
use bootes_envoy::convert::{convert, json::MAX_ERRORS, CONFIG_PATH};

/// Words that mean something to the converter: field names (snake_case and
/// JSON names) of the messages reachable from the resource types, enum value
/// names, type URLs of the API, and values of well-known types.
fn vocabulary() -> &'static Vec<String> {
    static WORDS: OnceLock<Vec<String>> = OnceLock::new();
    WORDS.get_or_init(|| {
        let pool = descriptor_pool();
        let mut words = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(MessageDescriptor, usize)> = ResourceType::ALL
            .iter()
            .filter_map(|t| pool.get_message_by_name(t.message_name()))
            .map(|m| (m, 0))
            .collect();
        stack.push((
            pool.get_message_by_name(
                "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            )
            .unwrap(),
            0,
        ));
        while let Some((m, depth)) = stack.pop() {
            if !seen.insert(m.full_name().to_string()) || depth > 6 {
                continue;
            }
            for f in m.fields() {
                words.insert(f.name().to_string());
                words.insert(f.json_name().to_string());
                match f.kind() {
                    Kind::Message(child) => stack.push((child, depth + 1)),
                    Kind::Enum(e) => words.extend(e.values().map(|v| v.name().to_string())),
                    _ => {}
                }
            }
        }
        for url in [
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "envoy.extensions.filters.http.router.v3.Router",
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "google.protobuf.Duration",
            "google.protobuf.Struct",
            "google.protobuf.Value",
            "google.protobuf.Any",
            "google.protobuf.UInt32Value",
            "envoy.config.cluster.v3.Cluster",
            "no.such.Message",
        ] {
            words.insert(format!("type.googleapis.com/{url}"));
        }
        for w in [
            "@type",
            "value",
            "1s",
            "0.5s",
            "-1s",
            "1.000000001s",
            "100ms",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e3",
            "-0",
            "18446744073709551616",
            "2020-01-01T00:00:00Z",
            "AAEC",
            "",
            "*",
            "/",
            "0.0.0.0",
            "::1",
            "true",
        ] {
            words.insert(w.to_string());
        }
        words.into_iter().collect()
    })
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vocabulary().clone()),
        1 => ".{0,12}",
    ]
}

fn scalar() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        any::<f64>().prop_map(Json::from), // NaN and infinities become null
        (0u32..70000).prop_map(Json::from),
        word().prop_map(Json::from),
    ]
}

/// Arbitrary JSON whose object keys are mostly real field names.
fn arb_json() -> impl Strategy<Value = Json> {
    scalar().prop_recursive(8, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
            prop::collection::vec((word(), inner), 0..6)
                .prop_map(|kv| Json::Object(kv.into_iter().collect())),
        ]
    })
}

fn kind() -> impl Strategy<Value = ResourceType> {
    prop::sample::select(ResourceType::ALL.to_vec())
}

/// Converts and checks the outcome's invariants; panics propagate.
fn check(ty: ResourceType, config: &Json) -> Result<(), TestCaseError> {
    match convert(ty, config) {
        Ok(c) => {
            prop_assert!(!c.name.is_empty());
            // What was accepted decodes, hashes the same again, and its
            // references can be read.
            let again = convert(ty, config).unwrap();
            prop_assert_eq!(&again.version, &c.version);
            let message = c.message();
            let _ = xref::references(ty, &message);
        }
        Err(errors) => {
            prop_assert!(!errors.is_empty());
            prop_assert!(errors.len() <= MAX_ERRORS + 1);
            for e in errors {
                prop_assert!(e.path.starts_with(CONFIG_PATH), "{e}");
                prop_assert!(!e.message.is_empty());
            }
        }
    }
    Ok(())
}

/// Valid resources to mutate: a listener with nested typed configs, a
/// route, an EDS cluster and endpoints.
fn seeds() -> Vec<(ResourceType, Json)> {
    vec![
        (
            ResourceType::Listener,
            json!({"name": "l", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 80}},
                "filter_chains": [{"filters": [{"name": "hcm", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "s", "codec_type": "AUTO",
                    "rds": {"route_config_name": "r", "config_source": {"ads": {}, "resource_api_version": "V3"}},
                    "http_filters": [{"name": "router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}),
        ),
        (
            ResourceType::Route,
            json!({"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
                {"match": {"prefix": "/"}, "route": {"cluster": "c", "timeout": "2s"}},
                {"match": {"path": "/w"}, "route": {"weighted_clusters": {"clusters": [{"name": "a", "weight": 1}]}}}]}]}),
        ),
        (
            ResourceType::Cluster,
            json!({"name": "c", "connect_timeout": "1s", "type": "EDS", "lb_policy": "ROUND_ROBIN",
                "eds_cluster_config": {"eds_config": {"ads": {}}},
                "metadata": {"filter_metadata": {"x": {"k": [1, "a", null]}}}}),
        ),
        (
            ResourceType::Endpoint,
            json!({"cluster_name": "c", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}}}]}]}),
        ),
    ]
}

/// Replaces the value at a pseudo-random place of `target` (chosen by
/// `choice`) with `replacement`, or adds it under `key`.
fn mutate(target: &mut Json, mut choice: usize, key: &str, replacement: Json) {
    let mut node = target;
    loop {
        let n = match &*node {
            Json::Object(m) => m.len(),
            Json::Array(a) => a.len(),
            _ => 0,
        };
        if n == 0 || choice.is_multiple_of(4) {
            match node {
                Json::Object(m) if choice.is_multiple_of(8) => {
                    m.insert(key.to_string(), replacement);
                }
                other => *other = replacement,
            }
            return;
        }
        let i = (choice / 4) % n;
        choice = choice / 4 / n.max(1) + choice % 3;
        node = match node {
            Json::Object(m) => m.values_mut().nth(i).unwrap(),
            Json::Array(a) => &mut a[i],
            _ => unreachable!(),
        };
    }
}

proptest! {
    #[test]
    fn proptest_arbitrary_json_never_panics(ty in kind(), config in arb_json()) {
        check(ty, &config)?;
    }

    #[test]
    fn proptest_mutated_valid_resources_never_panic(
        seed in 0usize..4,
        choice in any::<usize>(),
        key in word(),
        replacement in arb_json(),
    ) {
        let (ty, mut config) = seeds().swap_remove(seed);
        mutate(&mut config, choice, &key, replacement);
        check(ty, &config)?;
    }

    #[test]
    fn proptest_arbitrary_yaml_never_panics(text in "(?s).{0,300}") {
        for doc in parse_stream("p.yaml", &text) {
            if let Ok(Document::Object(o)) = doc {
                check(o.key.kind, &o.config)?;
            }
        }
    }

    #[test]
    fn proptest_yaml_shaped_manifests_never_panic(
        ty in kind(),
        body in prop::collection::vec(
            (prop::sample::select(vec!["  ", "    ", "      ", "- ", "  - "]), word(),
             prop::sample::select(vec![": ", ":\n", ": [", ": {", ": '", ": \"", ": &a ", ": *a", ": !!str ", ": |\n"]),
             word()),
            0..20,
        ),
    ) {
        let mut text = format!(
            "apiVersion: bootes.io/v1\nkind: {}\nmetadata: {{name: x, namespace: y}}\nspec:\n  config:\n",
            ty.kind()
        );
        for (indent, k, sep, v) in body {
            text.push_str(&format!("    {indent}{k}{sep}{v}\n"));
        }
        for doc in parse_stream("p.yaml", &text) {
            if let Ok(Document::Object(o)) = doc {
                check(o.key.kind, &o.config)?;
            }
        }
    }
}
