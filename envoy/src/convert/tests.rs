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

// ---------------------------------------------------------------------------
// Bad inputs: real Envoy resources, each broken in one place.

const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// Inserts `extra`'s members into the object `base` (replacing same keys).
fn with(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let map = base.as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        map.insert(k.clone(), v.clone());
    }
    base
}

fn cluster(extra: serde_json::Value) -> serde_json::Value {
    with(json!({"name": "c", "connect_timeout": "1s"}), extra)
}

fn endpoint_with_address(socket_address: serde_json::Value) -> serde_json::Value {
    json!({"cluster_name": "c", "endpoints": [{"lb_endpoints": [
        {"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}}},
        {"endpoint": {"address": {"socket_address": socket_address}}}
    ]}]})
}

/// A listener whose HttpConnectionManager has `hcm` merged in.
fn listener(hcm: serde_json::Value) -> serde_json::Value {
    let typed = with(
        json!({"@type": HCM, "stat_prefix": "in",
               "rds": {"route_config_name": "r", "config_source": {"ads": {}}},
               "http_filters": [{"name": "router", "typed_config": {"@type": ROUTER}}]}),
        hcm,
    );
    json!({"name": "l", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 80}},
           "filter_chains": [{"filters": [{"name": "hcm", "typed_config": typed}]}]})
}

fn route(vh: serde_json::Value) -> serde_json::Value {
    json!({"name": "r", "virtual_hosts": [with(json!({"name": "v", "domains": ["*"]}), vh)]})
}

fn one_route(r: serde_json::Value) -> serde_json::Value {
    route(
        json!({"routes": [with(json!({"match": {"prefix": "/"}, "route": {"cluster": "c"}}), r)]}),
    )
}

const TC: &str = "spec.config.filter_chains[0].filters[0].typed_config";
const R0: &str = "spec.config.virtual_hosts[0].routes[0]";

struct Bad {
    what: &'static str,
    ty: ResourceType,
    config: serde_json::Value,
    path: String,
    message: &'static str,
}

fn bad(
    what: &'static str,
    ty: ResourceType,
    config: serde_json::Value,
    path: impl Into<String>,
    message: &'static str,
) -> Bad {
    Bad {
        what,
        ty,
        config,
        path: path.into(),
        message,
    }
}

fn bad_inputs() -> Vec<Bad> {
    use ResourceType::*;
    vec![
        bad("unknown field at the top", Cluster, cluster(json!({"conect_timeout": "1s"})),
            "spec.config.conect_timeout", "unknown field \"conect_timeout\" in envoy.config.cluster.v3.Cluster (did you mean \"connect_timeout\"?)"),
        bad("unknown field deep down", Endpoint, endpoint_with_address(json!({"adress": "10.0.0.2", "port_value": 80})),
            "spec.config.endpoints[0].lb_endpoints[1].endpoint.address.socket_address.adress", "unknown field \"adress\""),
        bad("unknown field inside typed_config", Listener, listener(json!({"stat_prefx": "x"})),
            format!("{TC}.stat_prefx"), "unknown field \"stat_prefx\" in envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"),
        bad("unknown field in a typed_config inside a typed_config", Listener,
            listener(json!({"http_filters": [{"name": "router", "typed_config": {"@type": ROUTER, "foo": 1}}]})),
            format!("{TC}.http_filters[0].typed_config.foo"), "unknown field \"foo\" in envoy.extensions.filters.http.router.v3.Router"),
        bad("@type Envoy does not have", Listener,
            listener(json!({"http_filters": [{"name": "x", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.nope.v3.Nope"}}]})),
            format!("{TC}.http_filters[0].typed_config.@type"), "unknown type \"type.googleapis.com/envoy.extensions.filters.http.nope.v3.Nope\""),
        bad("@type that is not a type URL", Listener,
            listener(json!({"http_filters": [{"name": "x", "typed_config": {"@type": "Router"}}]})),
            format!("{TC}.http_filters[0].typed_config.@type"), "is not a type URL"),
        bad("@type missing", Listener, listener(json!({"http_filters": [{"name": "x", "typed_config": {"dynamic_stats": true}}]})),
            format!("{TC}.http_filters[0].typed_config"), "\"@type\" is missing"),
        bad("@type not a string", Listener, listener(json!({"http_filters": [{"name": "x", "typed_config": {"@type": 5}}]})),
            format!("{TC}.http_filters[0].typed_config.@type"), "expected a type URL string, got the number 5"),
        bad("string for an integer", Endpoint, endpoint_with_address(json!({"address": "10.0.0.2", "port_value": "eighty"})),
            "spec.config.endpoints[0].lb_endpoints[1].endpoint.address.socket_address.port_value", "expected an unsigned 32-bit integer, got the string \"eighty\""),
        bad("negative unsigned integer", Endpoint, endpoint_with_address(json!({"address": "10.0.0.2", "port_value": -1})),
            "spec.config.endpoints[0].lb_endpoints[1].endpoint.address.socket_address.port_value", "-1 is out of range for an unsigned 32-bit integer"),
        bad("fractional integer", Endpoint, endpoint_with_address(json!({"address": "10.0.0.2", "port_value": 80.5})),
            "spec.config.endpoints[0].lb_endpoints[1].endpoint.address.socket_address.port_value", "the number 80.5 is not an integer"),
        bad("number for a string", Cluster, cluster(json!({"name": 5})),
            "spec.config.name", "expected a string, got the number 5"),
        bad("object for a list", Listener, json!({"name": "l", "filter_chains": {}}),
            "spec.config.filter_chains", "expected a list, got an object"),
        bad("string for a bool", Cluster, cluster(json!({"respect_dns_ttl": "yes"})),
            "spec.config.respect_dns_ttl", "expected true or false, got the string \"yes\""),
        bad("unknown enum name", Cluster, cluster(json!({"type": "EDSX"})),
            "spec.config.type", "unknown value \"EDSX\" of enum envoy.config.cluster.v3.Cluster.DiscoveryType (expected one of STATIC, STRICT_DNS, LOGICAL_DNS, EDS, ORIGINAL_DST)"),
        bad("bool for an enum", Cluster, cluster(json!({"lb_policy": true})),
            "spec.config.lb_policy", "expected a value name of enum envoy.config.cluster.v3.Cluster.LbPolicy"),
        bad("duration without unit", Cluster, cluster(json!({"connect_timeout": "5"})),
            "spec.config.connect_timeout", "\"5\" is not a duration"),
        bad("duration in milliseconds", Cluster, cluster(json!({"connect_timeout": "250ms"})),
            "spec.config.connect_timeout", "durations are seconds with an \"s\" suffix"),
        bad("duration as a number", Cluster, cluster(json!({"connect_timeout": 5})),
            "spec.config.connect_timeout", "expected a duration string"),
        bad("duration out of range", Cluster, cluster(json!({"connect_timeout": "315576000001s"})),
            "spec.config.connect_timeout", "out of range"),
        bad("missing name", Cluster, json!({"connect_timeout": "1s"}),
            "spec.config.name", "the resource has no name"),
        bad("missing cluster_name", Endpoint, json!({"endpoints": []}),
            "spec.config.cluster_name", "the resource has no name: cluster_name is required"),
        bad("two members of a oneof", Cluster, cluster(json!({"type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}, "path": "/x"}}})),
            "spec.config.eds_cluster_config.eds_config.path", "\"path\" and \"ads\" are both set, but only one of the oneof \"config_source_specifier\""),
        bad("one field under both names", Cluster, cluster(json!({"connectTimeout": "2s"})),
            "spec.config.connect_timeout", "field given twice"),
        bad("null inside a list", Route, route(json!({"domains": [null]})),
            "spec.config.virtual_hosts[0].domains[0]", "null is not allowed as a list item"),
        bad("spec.config that is not an object", Cluster, json!("cluster"),
            "spec.config", "expected an object (envoy.config.cluster.v3.Cluster), got the string \"cluster\""),
        bad("Struct that is not an object", Cluster, cluster(json!({"metadata": {"filter_metadata": {"x": 5}}})),
            "spec.config.metadata.filter_metadata[\"x\"]", "expected an object (google.protobuf.Struct)"),
        // protoc-gen-validate rules of the Envoy API.
        bad("uint32.lte (port)", Endpoint, endpoint_with_address(json!({"address": "10.0.0.2", "port_value": 70000})),
            "spec.config.endpoints[0].lb_endpoints[1].endpoint.address.socket_address.port_value", "must be <= 65535, is 70000 (uint32.lte = 65535)"),
        bad("string.min_len inside typed_config", Listener, listener(json!({"stat_prefix": ""})),
            format!("{TC}.stat_prefix"), "must not be empty (string.min_len = 1)"),
        bad("repeated.min_items", Route, route(json!({"domains": []})),
            "spec.config.virtual_hosts[0].domains", "needs at least 1 item, has 0 (repeated.min_items = 1)"),
        bad("oneof validate.required", Route, one_route(json!({"match": {}})),
            format!("{R0}.match"), "one of prefix, path, safe_regex, connect_matcher, path_separated_prefix, path_match_policy is required (oneof path_specifier validate.required)"),
        bad("message.required", Route, route(json!({"routes": [{"route": {"cluster": "c"}}]})),
            format!("{R0}.match"), "is required (message.required)"),
        bad("oneof validate.required in typed_config", Listener,
            json!({"name": "l", "filter_chains": [{"filters": [{"name": "hcm", "typed_config": {"@type": HCM, "stat_prefix": "s"}}]}]}),
            TC, "one of rds, route_config, scoped_routes is required"),
        bad("enum.defined_only", Cluster, cluster(json!({"lb_policy": 99})),
            "spec.config.lb_policy", "99 is not a value of envoy.config.cluster.v3.Cluster.LbPolicy (enum.defined_only)"),
        bad("duration.gt", Cluster, cluster(json!({"connect_timeout": "0s"})),
            "spec.config.connect_timeout", "must be > 0s, is 0s (duration.gt = 0s)"),
        bad("double.lte on a Percent", Cluster, cluster(json!({"common_lb_config": {"healthy_panic_threshold": {"value": 150}}})),
            "spec.config.common_lb_config.healthy_panic_threshold.value", "must be >= 0 and <= 100, is 150 (double.gte = 0, double.lte = 100)"),
        bad("string.pattern", Route, one_route(json!({"match": {"path_separated_prefix": "/api/"}})),
            format!("{R0}.match.path_separated_prefix"), "\"/api/\" does not match the pattern \"^[^?#]+[^?#/]$\" (string.pattern)"),
        bad("string.max_bytes", Route, one_route(json!({"match": {"prefix": "/", "query_parameters": [{"name": "q".repeat(1025), "present_match": true}]}})),
            format!("{R0}.match.query_parameters[0].name"), "must be at most 1024 bytes long, has 1025 (string.max_bytes = 1024)"),
        bad("uint32 range (HTTP status)", Route, one_route(json!({"route": null, "direct_response": {"status": 700}})),
            format!("{R0}.direct_response.status"), "must be >= 200 and < 600, is 700 (uint32.gte = 200, uint32.lt = 600)"),
        bad("map keys string.min_len", Cluster, cluster(json!({"metadata": {"filter_metadata": {"": {}}}})),
            "spec.config.metadata.filter_metadata[\"\"]", "map key must not be empty (string.min_len = 1)"),
        bad("any.required", ExtensionConfig, json!({"name": "x"}),
            "spec.config.typed_config", "is required (any.required)"),
        bad("uint32.gte on a UInt32Value wrapper", Route, route(json!({"hedge_policy": {"initial_requests": 0}})),
            "spec.config.virtual_hosts[0].hedge_policy.initial_requests", "must be >= 1, is 0 (uint32.gte = 1)"),
        bad("bool.const", Listener,
            json!({"name": "l", "listener_filters": [{"name": "f", "filter_disabled": {"any_match": false},
                   "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}]}),
            "spec.config.listener_filters[0].filter_disabled.any_match", "must be true (bool.const = true)"),
        bad("string.in", Listener, listener(json!({"scheme_header_transformation": {"scheme_to_overwrite": "ftp"}})),
            format!("{TC}.scheme_header_transformation.scheme_to_overwrite"), "\"ftp\" is not one of \"http\", \"https\" (string.in)"),
        bad("well_known_regex HTTP_HEADER_NAME (not strict)", Route, one_route(json!({"route": {"cluster_header": "x\ny"}})),
            format!("{R0}.route.cluster_header"), "is not a valid HTTP header name (string.well_known_regex = HTTP_HEADER_NAME, strict = false)"),
        bad("enum.not_in", Cluster, cluster(json!({"health_checks": [{"timeout": "1s", "interval": "1s",
                "unhealthy_threshold": 1, "healthy_threshold": 1,
                "http_health_check": {"path": "/", "method": "CONNECT"}}]})),
            "spec.config.health_checks[0].http_health_check.method", "CONNECT is not allowed here (enum.not_in)"),
    ]
}

#[test]
fn bad_inputs_are_rejected_with_the_path_of_the_problem() {
    let cases = bad_inputs();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut seen = std::collections::HashSet::new();
    for case in cases {
        assert!(seen.insert(case.what), "duplicate case {:?}", case.what);
        let errors = match convert(case.ty, &case.config) {
            Ok(c) => panic!("{}: accepted: {c:?}", case.what),
            Err(e) => e,
        };
        assert!(
            errors
                .iter()
                .any(|e| e.path == case.path && e.message.contains(case.message)),
            "{}: expected {:?} at {}, got:\n{}",
            case.what,
            case.message,
            case.path,
            errors
                .iter()
                .map(|e| format!("  {e}\n"))
                .collect::<String>()
        );
    }
}

#[test]
fn several_problems_of_one_object_are_reported_together() {
    let e = convert(
        ResourceType::Cluster,
        &json!({"name": "c", "conect_timeout": "1s", "type": "EDSX", "lb_policy": 99,
                "load_assignment": {"cluster_name": "c", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "a", "port_value": 70000}}}}]}]}}),
    )
    .unwrap_err();
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "spec.config.conect_timeout",
            "spec.config.type",
            "spec.config.lb_policy",
            "spec.config.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value",
        ],
        "{e:#?}"
    );
}

#[test]
fn rule_violations_caused_by_a_parse_error_are_not_reported() {
    // The port cannot be parsed: "is required"-style consequences of it
    // missing must not drown the real problem.
    let e = convert(
        ResourceType::Endpoint,
        &endpoint_with_address(json!({"address": "10.0.0.2", "port_value": "x"})),
    )
    .unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    // A route whose match failed to parse does not also get "match is required".
    let e = convert(
        ResourceType::Route,
        &one_route(json!({"match": {"prefx": "/"}})),
    )
    .unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].path, format!("{R0}.match.prefx"));
}

#[test]
fn the_number_of_problems_reported_is_bounded() {
    let many: serde_json::Map<String, serde_json::Value> =
        (0..500).map(|i| (format!("bad{i}"), json!(1))).collect();
    let e = convert(ResourceType::Cluster, &serde_json::Value::Object(many)).unwrap_err();
    assert_eq!(e.len(), json::MAX_ERRORS + 1);
    assert!(
        e.last()
            .unwrap()
            .message
            .contains("more problems not shown"),
        "{:?}",
        e.last()
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let mut v = json!("leaf");
    for _ in 0..200 {
        v = json!({ "k": v });
    }
    let e = convert(
        ResourceType::Cluster,
        &cluster(json!({"metadata": {"filter_metadata": {"x": v}}})),
    )
    .unwrap_err();
    assert!(
        e.iter().any(|e| e.message.contains("messages deep")),
        "{e:?}"
    );
    // Nesting well within the limit is fine.
    let mut v = json!("leaf");
    for _ in 0..20 {
        v = json!({ "k": v });
    }
    convert(
        ResourceType::Cluster,
        &cluster(json!({"metadata": {"filter_metadata": {"x": v}}})),
    )
    .unwrap();
}

// ---------------------------------------------------------------------------
// The proto3 JSON mapping, on real Envoy types.

fn socket_port(port: serde_json::Value) -> Result<u32, Vec<ConfigError>> {
    let c = convert(
        ResourceType::Endpoint,
        &endpoint_with_address(json!({"address": "10.0.0.1", "port_value": port})),
    )?;
    let m = c.message();
    let lb = m.get_field_by_name("endpoints").unwrap().as_list().unwrap()[0]
        .as_message()
        .unwrap()
        .get_field_by_name("lb_endpoints")
        .unwrap()
        .as_list()
        .unwrap()[1]
        .clone();
    let sa = lb
        .as_message()
        .unwrap()
        .get_field_by_name("endpoint")
        .unwrap()
        .as_message()
        .unwrap()
        .get_field_by_name("address")
        .unwrap()
        .as_message()
        .unwrap()
        .get_field_by_name("socket_address")
        .unwrap()
        .as_message()
        .unwrap()
        .clone();
    Ok(sa
        .get_field_by_name("port_value")
        .unwrap()
        .as_u32()
        .unwrap())
}

#[test]
fn integers_may_be_numbers_or_strings() {
    assert_eq!(socket_port(json!(8080)).unwrap(), 8080);
    assert_eq!(socket_port(json!("8080")).unwrap(), 8080);
    assert_eq!(socket_port(json!(8.08e3)).unwrap(), 8080);
    assert_eq!(socket_port(json!("8.08e3")).unwrap(), 8080);
    assert!(socket_port(json!("0x50")).is_err());
    assert!(socket_port(json!(4294967296u64)).is_err());
    assert!(socket_port(json!(true)).is_err());
}

#[test]
fn enums_by_name_or_number_and_lower_camel_case_names() {
    let by_name = convert(
        ResourceType::Cluster,
        &cluster(json!({"type": "STRICT_DNS", "lbPolicy": "RANDOM"})),
    )
    .unwrap();
    let by_number = convert(
        ResourceType::Cluster,
        &cluster(json!({"type": 1, "lb_policy": 3})),
    )
    .unwrap();
    assert_eq!(by_name.version, by_number.version);
}

#[test]
fn null_means_the_default() {
    let a = convert(
        ResourceType::Cluster,
        &cluster(json!({"type": null, "load_assignment": null, "dns_lookup_family": null})),
    )
    .unwrap();
    let b = convert(ResourceType::Cluster, &cluster(json!({}))).unwrap();
    assert_eq!(a.version, b.version);
}

#[test]
fn well_known_types_in_any_use_value() {
    let r = |value: serde_json::Value| {
        convert(
            ResourceType::Route,
            &route(
                json!({"typed_per_filter_config": {"f": with(json!({"@type": "type.googleapis.com/google.protobuf.Duration"}), value)}}),
            ),
        )
    };
    r(json!({"value": "1.5s"})).unwrap();
    let e = r(json!({"value": "soon"})).unwrap_err();
    assert_eq!(
        e[0].path,
        "spec.config.virtual_hosts[0].typed_per_filter_config[\"f\"].value"
    );
    let e = r(json!({"seconds": 1})).unwrap_err();
    assert_eq!(
        e[0].path,
        "spec.config.virtual_hosts[0].typed_per_filter_config[\"f\"].seconds"
    );
    assert!(
        e[0].message.contains("only \"@type\" and \"value\""),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------------
// Every rule kind, on a test schema that uses each one (the Envoy API does not
// use them all).

const TEST_PROTO: &str = r#"
syntax = "proto3";
package bootes.test;
import "validate/validate.proto";
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Color { COLOR_UNSPECIFIED = 0; RED = 1; GREEN = 2; BLUE = 3; }

message Inner { optional string name = 1 [(validate.rules).string.min_len = 1]; }
message Disabled { option (validate.disabled) = true; optional string name = 1 [(validate.rules).string.min_len = 5]; }
message Ignored { option (validate.ignored) = true; optional string name = 1 [(validate.rules).string.min_len = 5]; }

message Required {
  Inner msg = 1 [(validate.rules).message.required = true];
  google.protobuf.Duration dur = 2 [(validate.rules).duration.required = true];
  google.protobuf.Timestamp ts = 3 [(validate.rules).timestamp.required = true];
  google.protobuf.Any any = 4 [(validate.rules).any.required = true];
  oneof choice {
    option (validate.required) = true;
    string a = 5;
    string b = 6 [(validate.rules).string.min_len = 2];
  }
}

message Rules {
  optional string s_const = 1 [(validate.rules).string.const = "abc"];
  optional string s_len = 2 [(validate.rules).string.len = 3];
  optional string s_min_len = 3 [(validate.rules).string.min_len = 2];
  optional string s_max_len = 4 [(validate.rules).string.max_len = 3];
  optional string s_len_bytes = 5 [(validate.rules).string.len_bytes = 4];
  optional string s_min_bytes = 6 [(validate.rules).string.min_bytes = 3];
  optional string s_max_bytes = 7 [(validate.rules).string.max_bytes = 3];
  optional string s_pattern = 8 [(validate.rules).string.pattern = "^[a-z]+$"];
  optional string s_prefix = 9 [(validate.rules).string.prefix = "pre"];
  optional string s_suffix = 10 [(validate.rules).string.suffix = "suf"];
  optional string s_contains = 11 [(validate.rules).string.contains = "mid"];
  optional string s_not_contains = 12 [(validate.rules).string.not_contains = "bad"];
  optional string s_in = 13 [(validate.rules).string = {in: "a" in: "b"}];
  optional string s_not_in = 14 [(validate.rules).string = {not_in: "x"}];
  optional string s_email = 15 [(validate.rules).string.email = true];
  optional string s_hostname = 16 [(validate.rules).string.hostname = true];
  optional string s_ip = 17 [(validate.rules).string.ip = true];
  optional string s_ipv4 = 18 [(validate.rules).string.ipv4 = true];
  optional string s_ipv6 = 19 [(validate.rules).string.ipv6 = true];
  optional string s_uri = 20 [(validate.rules).string.uri = true];
  optional string s_uri_ref = 21 [(validate.rules).string.uri_ref = true];
  optional string s_address = 22 [(validate.rules).string.address = true];
  optional string s_uuid = 23 [(validate.rules).string.uuid = true];
  optional string s_header_name = 24 [(validate.rules).string.well_known_regex = HTTP_HEADER_NAME];
  optional string s_header_value = 25 [(validate.rules).string.well_known_regex = HTTP_HEADER_VALUE];
  optional string s_header_loose = 26 [(validate.rules).string = {well_known_regex: HTTP_HEADER_NAME strict: false}];
  string s_ignore_empty = 27 [(validate.rules).string = {min_len: 3 ignore_empty: true}];

  optional bytes b_const = 30 [(validate.rules).bytes.const = "ab"];
  optional bytes b_len = 31 [(validate.rules).bytes.len = 2];
  optional bytes b_min_len = 32 [(validate.rules).bytes.min_len = 2];
  optional bytes b_max_len = 33 [(validate.rules).bytes.max_len = 2];
  optional bytes b_pattern = 34 [(validate.rules).bytes.pattern = "^a+$"];
  optional bytes b_prefix = 35 [(validate.rules).bytes.prefix = "a"];
  optional bytes b_suffix = 36 [(validate.rules).bytes.suffix = "z"];
  optional bytes b_contains = 37 [(validate.rules).bytes.contains = "m"];
  optional bytes b_in = 38 [(validate.rules).bytes = {in: "a" in: "b"}];
  optional bytes b_not_in = 39 [(validate.rules).bytes = {not_in: "x"}];
  optional bytes b_ip = 40 [(validate.rules).bytes.ip = true];
  optional bytes b_ipv4 = 41 [(validate.rules).bytes.ipv4 = true];
  optional bytes b_ipv6 = 42 [(validate.rules).bytes.ipv6 = true];

  optional int32 i32 = 50 [(validate.rules).int32 = {gt: 0 lt: 10}];
  optional int64 i64 = 51 [(validate.rules).int64 = {gte: -5 lte: 5}];
  optional uint32 u32 = 52 [(validate.rules).uint32 = {in: 1 in: 2 in: 3}];
  optional uint64 u64 = 53 [(validate.rules).uint64 = {not_in: 7}];
  optional sint32 si32 = 54 [(validate.rules).sint32.const = -3];
  optional sint64 si64 = 55 [(validate.rules).sint64.lt = 0];
  optional fixed32 f32 = 56 [(validate.rules).fixed32.gte = 10];
  optional fixed64 f64 = 57 [(validate.rules).fixed64.lte = 10];
  optional sfixed32 sf32 = 58 [(validate.rules).sfixed32 = {gt: 10 lt: 0}];
  optional sfixed64 sf64 = 59 [(validate.rules).sfixed64.gt = -1];
  optional float fl = 60 [(validate.rules).float = {gt: 0 lte: 1}];
  optional double db = 61 [(validate.rules).double = {gte: 0.5 lt: 0.25}];
  uint32 u32_ignore_empty = 62 [(validate.rules).uint32 = {gte: 10 ignore_empty: true}];
  optional bool bo = 63 [(validate.rules).bool.const = true];

  optional Color en_defined = 70 [(validate.rules).enum.defined_only = true];
  optional Color en_const = 71 [(validate.rules).enum.const = 1];
  optional Color en_in = 72 [(validate.rules).enum = {in: 1 in: 2}];
  optional Color en_not_in = 73 [(validate.rules).enum = {not_in: 3}];

  google.protobuf.Duration d_range = 80 [(validate.rules).duration = {gt {} lte {seconds: 10}}];
  google.protobuf.Duration d_const = 81 [(validate.rules).duration.const = {seconds: 1}];
  google.protobuf.Duration d_in = 82 [(validate.rules).duration = {in {seconds: 1} in {nanos: 500000000}}];
  google.protobuf.Duration d_not_in = 83 [(validate.rules).duration = {not_in {seconds: 2}}];
  google.protobuf.Timestamp t_range = 84 [(validate.rules).timestamp = {gte {seconds: 0} lt {seconds: 4102444800}}];
  google.protobuf.Timestamp t_const = 85 [(validate.rules).timestamp.const = {seconds: 86400}];
  google.protobuf.Timestamp t_lt_now = 86 [(validate.rules).timestamp.lt_now = true];
  google.protobuf.Timestamp t_gt_now = 87 [(validate.rules).timestamp.gt_now = true];
  google.protobuf.Timestamp t_within = 88 [(validate.rules).timestamp.within = {seconds: 3600}];
  google.protobuf.Any any_in = 89 [(validate.rules).any = {in: "type.googleapis.com/google.protobuf.Duration"}];
  google.protobuf.Any any_not_in = 90 [(validate.rules).any = {not_in: "type.googleapis.com/google.protobuf.Struct"}];

  repeated string r_min = 100 [(validate.rules).repeated = {min_items: 2 ignore_empty: true}];
  repeated string r_max = 101 [(validate.rules).repeated.max_items = 2];
  repeated string r_unique = 102 [(validate.rules).repeated.unique = true];
  repeated string r_items = 103 [(validate.rules).repeated.items.string.min_len = 2];
  repeated Inner r_msgs = 104;
  repeated Inner r_skip = 105 [(validate.rules).repeated.items.message.skip = true];
  repeated google.protobuf.Duration r_durations = 106 [(validate.rules).repeated.items.duration.gte = {seconds: 1}];

  map<string, string> m_min = 110 [(validate.rules).map = {min_pairs: 2 ignore_empty: true}];
  map<string, string> m_max = 111 [(validate.rules).map.max_pairs = 1];
  map<string, string> m_keys = 112 [(validate.rules).map.keys.string.min_len = 2];
  map<string, string> m_values = 113 [(validate.rules).map.values.string.prefix = "v"];
  map<int32, Inner> m_msgs = 114 [(validate.rules).map.keys.int32.gt = 0];
  map<string, Inner> m_no_sparse = 115 [(validate.rules).map.no_sparse = true];

  Inner inner = 120;
  Inner skipped = 121 [(validate.rules).message.skip = true];
  Disabled disabled = 122;
  Ignored ignored = 123;
  google.protobuf.UInt32Value wrapped = 124 [(validate.rules).uint32.gte = 5];
  google.protobuf.StringValue wrapped_s = 125 [(validate.rules).string.min_len = 2];
  google.protobuf.Any payload = 126;
  oneof pick {
    string pick_a = 127 [(validate.rules).string.min_len = 3];
    Inner pick_b = 128 [(validate.rules).message.required = true];
  }

  // For the JSON mapping.
  int64 big = 130;
  uint64 ubig = 131;
  float f = 132;
  double d = 133;
  bytes raw = 134;
  google.protobuf.Timestamp ts = 135;
  google.protobuf.FieldMask mask = 136;
  google.protobuf.Struct st = 137;
  google.protobuf.Value val = 138;
  google.protobuf.ListValue list = 139;
  google.protobuf.BoolValue wb = 140;
  google.protobuf.Int64Value wi = 141;
  google.protobuf.BytesValue wby = 142;
  map<bool, string> by_bool = 143;
  map<uint64, string> by_u64 = 144;
  repeated Color colors = 145;
}
"#;

fn test_pool() -> &'static prost_reflect::DescriptorPool {
    use std::sync::OnceLock;
    static POOL: OnceLock<prost_reflect::DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        struct Source;
        impl protox::file::FileResolver for Source {
            fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
                if name == "bootes_test.proto" {
                    protox::file::File::from_source(name, TEST_PROTO)
                } else {
                    Err(protox::Error::file_not_found(name))
                }
            }
        }
        let envoy = protox::file::DescriptorSetFileResolver::decode(
            bootes_proto::envoy::descriptor_pool()
                .encode_to_vec()
                .as_slice(),
        )
        .unwrap();
        let mut chain = protox::file::ChainFileResolver::new();
        chain.add(Source);
        chain.add(envoy);
        chain.add(protox::file::GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(chain);
        compiler.include_imports(true);
        compiler
            .open_file("bootes_test.proto")
            .unwrap_or_else(|e| panic!("{e:?}"));
        compiler.descriptor_pool()
    })
}

fn check(message: &str, json: serde_json::Value) -> Vec<ConfigError> {
    let desc = test_pool().get_message_by_name(message).unwrap();
    parse_and_validate(&desc, &json, "x").1
}

fn rules_ok(json: serde_json::Value) {
    let e = check("bootes.test.Rules", json.clone());
    assert!(e.is_empty(), "{json}: {e:#?}");
}

/// Asserts that `json` breaks exactly one rule, at `path`, naming `rule`.
fn rules_bad(json: serde_json::Value, path: &str, rule: &str) {
    let e = check("bootes.test.Rules", json.clone());
    assert!(
        e.len() == 1 && e[0].path == path && e[0].message.contains(rule),
        "{json}: expected one {rule:?} at {path}, got {e:#?}"
    );
}

#[test]
fn every_string_rule() {
    for (field, good, bad, rule) in [
        ("s_const", "abc", "abd", "string.const = \"abc\""),
        ("s_len", "äbc", "ab", "string.len = 3"),
        ("s_min_len", "ab", "a", "string.min_len = 2"),
        ("s_max_len", "äöü", "abcd", "string.max_len = 3"),
        ("s_len_bytes", "äbc", "abc", "string.len_bytes = 4"),
        ("s_min_bytes", "ä1", "ab", "string.min_bytes = 3"),
        ("s_max_bytes", "abc", "äbc", "string.max_bytes = 3"),
        ("s_pattern", "abc", "aBc", "string.pattern"),
        ("s_prefix", "prefix", "fix", "string.prefix"),
        ("s_suffix", "a suf", "sufa", "string.suffix"),
        ("s_contains", "a mid b", "a b", "string.contains"),
        ("s_not_contains", "good", "so bad", "string.not_contains"),
        ("s_in", "b", "c", "string.in"),
        ("s_not_in", "y", "x", "string.not_in"),
        ("s_email", "a@example.com", "a@", "string.email"),
        ("s_hostname", "a.example.com", "a_b.com", "string.hostname"),
        ("s_ip", "::1", "1.2.3", "string.ip"),
        ("s_ipv4", "10.0.0.1", "::1", "string.ipv4"),
        ("s_ipv6", "fe80::1", "10.0.0.1", "string.ipv6"),
        ("s_uri", "https://x.test/a?b#c", "/a/b", "string.uri"),
        ("s_uri_ref", "/a/b?c", "a b", "string.uri_ref"),
        ("s_address", "example.com", "exa mple", "string.address"),
        (
            "s_uuid",
            "123e4567-e89b-12d3-a456-426614174000",
            "123e4567",
            "string.uuid",
        ),
        (
            "s_header_name",
            ":path",
            "x y",
            "string.well_known_regex = HTTP_HEADER_NAME",
        ),
        (
            "s_header_value",
            "a b",
            "a\u{7f}",
            "string.well_known_regex = HTTP_HEADER_VALUE",
        ),
        ("s_header_loose", "x y", "x\r", "strict = false"),
        ("s_ignore_empty", "", "ab", "string.min_len = 3"),
    ] {
        rules_ok(json!({ field: good }));
        rules_bad(json!({ field: bad }), &format!("x.{field}"), rule);
    }
}

#[test]
fn every_bytes_rule() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    for (field, good, bad, rule) in [
        ("b_const", &b"ab"[..], &b"ac"[..], "bytes.const"),
        ("b_len", b"ab", b"abc", "bytes.len = 2"),
        ("b_min_len", b"ab", b"a", "bytes.min_len = 2"),
        ("b_max_len", b"ab", b"abc", "bytes.max_len = 2"),
        ("b_pattern", b"aaa", b"aab", "bytes.pattern"),
        ("b_prefix", b"ab", b"ba", "bytes.prefix"),
        ("b_suffix", b"az", b"za", "bytes.suffix"),
        ("b_contains", b"amb", b"ab", "bytes.contains"),
        ("b_in", b"a", b"c", "bytes.in"),
        ("b_not_in", b"y", b"x", "bytes.not_in"),
        ("b_ip", &[10, 0, 0, 1], &[10, 0, 0], "bytes.ip"),
        ("b_ipv4", &[10, 0, 0, 1], &[0; 16], "bytes.ipv4"),
        ("b_ipv6", &[0; 16], &[10, 0, 0, 1], "bytes.ipv6"),
    ] {
        rules_ok(json!({ field: b64(good) }));
        rules_bad(json!({ field: b64(bad) }), &format!("x.{field}"), rule);
    }
}

#[test]
fn every_numeric_kind_and_rule() {
    for (field, good, bad, rule) in [
        ("i32", json!(5), json!(10), "int32.gt = 0, int32.lt = 10"),
        ("i32", json!(1), json!(0), "int32.gt = 0"),
        (
            "i64",
            json!("-5"),
            json!(6),
            "int64.gte = -5, int64.lte = 5",
        ),
        ("u32", json!(2), json!(4), "uint32.in"),
        ("u64", json!("8"), json!(7), "uint64.not_in"),
        ("si32", json!(-3), json!(3), "sint32.const = -3"),
        ("si64", json!(-1), json!(0), "sint64.lt = 0"),
        ("f32", json!(10), json!(9), "fixed32.gte = 10"),
        ("f64", json!(10), json!(11), "fixed64.lte = 10"),
        // gt above lt: an exclusive range, valid outside [lt, gt].
        (
            "sf32",
            json!(-1),
            json!(5),
            "sfixed32.gt = 10, sfixed32.lt = 0",
        ),
        (
            "sf32",
            json!(11),
            json!(10),
            "sfixed32.gt = 10, sfixed32.lt = 0",
        ),
        ("sf64", json!(0), json!(-1), "sfixed64.gt = -1"),
        ("fl", json!(0.5), json!(0), "float.gt = 0, float.lte = 1"),
        ("fl", json!(1), json!(1.5), "float.gt = 0, float.lte = 1"),
        (
            "db",
            json!(0.5),
            json!(0.3),
            "double.gte = 0.5, double.lt = 0.25",
        ),
        (
            "db",
            json!(0.2),
            json!("NaN"),
            "double.gte = 0.5, double.lt = 0.25",
        ),
        ("u32_ignore_empty", json!(0), json!(3), "uint32.gte = 10"),
        ("bo", json!(true), json!(false), "bool.const = true"),
        ("wrapped", json!(5), json!(4), "uint32.gte = 5"),
        ("wrapped_s", json!("ab"), json!("a"), "string.min_len = 2"),
    ] {
        rules_ok(json!({ field: good }));
        rules_bad(json!({ field: bad.clone() }), &format!("x.{field}"), rule);
    }
    let e = check("bootes.test.Rules", json!({"sf32": 5}));
    assert!(e[0].message.contains("must be < 0 or > 10, is 5"), "{e:?}");
}

#[test]
fn every_enum_rule() {
    for (field, good, bad, rule) in [
        ("en_defined", json!("RED"), json!(9), "enum.defined_only"),
        ("en_const", json!("RED"), json!("GREEN"), "enum.const = 1"),
        ("en_in", json!("GREEN"), json!("BLUE"), "enum.in"),
        ("en_not_in", json!(2), json!("BLUE"), "enum.not_in"),
    ] {
        rules_ok(json!({ field: good }));
        rules_bad(json!({ field: bad }), &format!("x.{field}"), rule);
    }
}

#[test]
fn every_duration_timestamp_and_any_rule() {
    // Half an hour from now.
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1800;
    let soon = pgv::format_timestamp(soon as i128 * 1_000_000_000);
    for (field, good, bad, rule) in [
        (
            "d_range",
            json!("10s"),
            json!("0s"),
            "duration.gt = 0s, duration.lte = 10s",
        ),
        (
            "d_range",
            json!("0.001s"),
            json!("10.5s"),
            "duration.gt = 0s, duration.lte = 10s",
        ),
        ("d_const", json!("1s"), json!("1.5s"), "duration.const = 1s"),
        ("d_in", json!("0.5s"), json!("2s"), "duration.in"),
        ("d_not_in", json!("1s"), json!("2s"), "duration.not_in"),
        (
            "t_range",
            json!("2024-02-29T12:00:00Z"),
            json!("2100-01-01T00:00:00Z"),
            "timestamp.gte = 1970-01-01T00:00:00Z, timestamp.lt = 2100-01-01T00:00:00Z",
        ),
        (
            "t_const",
            json!("1970-01-02T00:00:00Z"),
            json!("1970-01-02T00:00:00.5Z"),
            "timestamp.const = 1970-01-02T00:00:00Z",
        ),
        (
            "t_lt_now",
            json!("2000-01-01T00:00:00Z"),
            json!("2999-01-01T00:00:00Z"),
            "timestamp.lt_now",
        ),
        (
            "t_gt_now",
            json!("2999-01-01T00:00:00Z"),
            json!("2000-01-01T00:00:00Z"),
            "timestamp.gt_now",
        ),
        (
            "t_within",
            json!(soon),
            json!("2000-01-01T00:00:00Z"),
            "timestamp.within = 3600s",
        ),
        (
            "any_in",
            json!({"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1s"}),
            json!({"@type": "type.googleapis.com/google.protobuf.Struct", "value": {}}),
            "any.in",
        ),
        (
            "any_not_in",
            json!({"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1s"}),
            json!({"@type": "type.googleapis.com/google.protobuf.Struct", "value": {}}),
            "any.not_in",
        ),
    ] {
        rules_ok(json!({ field: good }));
        rules_bad(json!({ field: bad }), &format!("x.{field}"), rule);
    }
}

#[test]
fn every_repeated_and_map_rule() {
    for (json_good, json_bad, path, rule) in [
        (
            json!({"r_min": []}),
            json!({"r_min": ["a"]}),
            "x.r_min",
            "repeated.min_items = 2",
        ),
        (
            json!({"r_min": ["a", "b"]}),
            json!({"r_min": ["a"]}),
            "x.r_min",
            "needs at least 2 items, has 1",
        ),
        (
            json!({"r_max": ["a", "b"]}),
            json!({"r_max": ["a", "b", "c"]}),
            "x.r_max",
            "repeated.max_items = 2",
        ),
        (
            json!({"r_unique": ["a", "b"]}),
            json!({"r_unique": ["a", "b", "a"]}),
            "x.r_unique[2]",
            "repeated.unique",
        ),
        (
            json!({"r_items": ["ab"]}),
            json!({"r_items": ["ab", "a"]}),
            "x.r_items[1]",
            "string.min_len = 2",
        ),
        (
            json!({"r_msgs": [{"name": "a"}]}),
            json!({"r_msgs": [{"name": "a"}, {"name": ""}]}),
            "x.r_msgs[1].name",
            "string.min_len = 1",
        ),
        (
            json!({"r_durations": ["1s"]}),
            json!({"r_durations": ["1s", "0.5s"]}),
            "x.r_durations[1]",
            "duration.gte = 1s",
        ),
        (
            json!({"m_min": {}}),
            json!({"m_min": {"a": "b"}}),
            "x.m_min",
            "map.min_pairs = 2",
        ),
        (
            json!({"m_max": {"a": "b"}}),
            json!({"m_max": {"a": "b", "c": "d"}}),
            "x.m_max",
            "map.max_pairs = 1",
        ),
        (
            json!({"m_keys": {"ab": "x"}}),
            json!({"m_keys": {"ab": "x", "a": "y"}}),
            "x.m_keys[\"a\"]",
            "map key must be at least 2 characters long, has 1 (string.min_len = 2)",
        ),
        (
            json!({"m_values": {"a": "v1"}}),
            json!({"m_values": {"a": "v1", "b": "w"}}),
            "x.m_values[\"b\"]",
            "string.prefix",
        ),
        (
            json!({"m_msgs": {"1": {"name": "a"}}}),
            json!({"m_msgs": {"1": {"name": ""}}}),
            "x.m_msgs[\"1\"].name",
            "string.min_len = 1",
        ),
        (
            json!({"m_msgs": {"1": {}}}),
            json!({"m_msgs": {"-1": {}}}),
            "x.m_msgs[\"-1\"]",
            "map key must be > 0, is -1 (int32.gt = 0)",
        ),
    ] {
        rules_ok(json_good);
        rules_bad(json_bad, path, rule);
    }
    // no_sparse: a map parsed from JSON never has an unset message value.
    rules_ok(json!({"m_no_sparse": {"a": {}}}));
    let e = check("bootes.test.Rules", json!({"m_no_sparse": {"a": null}}));
    assert_eq!(e[0].path, "x.m_no_sparse[\"a\"]");
    assert!(
        e[0].message.contains("null is not allowed as a map value"),
        "{e:?}"
    );
}

#[test]
fn message_rules_skip_disabled_ignored_and_oneofs() {
    rules_bad(
        json!({"inner": {"name": ""}}),
        "x.inner.name",
        "string.min_len = 1",
    );
    rules_ok(json!({"skipped": {"name": ""}}));
    rules_ok(json!({"r_skip": [{"name": ""}]}));
    rules_ok(json!({"disabled": {"name": "a"}}));
    rules_ok(json!({"ignored": {"name": "a"}}));
    // Rules of oneof members apply only to the member that is set.
    rules_ok(json!({"pick_b": {"name": "n"}}));
    rules_bad(json!({"pick_a": "ab"}), "x.pick_a", "string.min_len = 3");
    rules_bad(
        json!({"pick_b": {"name": ""}}),
        "x.pick_b.name",
        "string.min_len = 1",
    );
    // Inside Any too.
    rules_bad(
        json!({"payload": {"@type": "type.googleapis.com/bootes.test.Inner", "name": ""}}),
        "x.payload.name",
        "string.min_len = 1",
    );
    let e = check("bootes.test.Required", json!({}));
    let found: Vec<(&str, &str)> = e
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "x",
                "one of a, b is required (oneof choice validate.required)"
            ),
            ("x.msg", "is required (message.required)"),
            ("x.dur", "is required (duration.required)"),
            ("x.ts", "is required (timestamp.required)"),
            ("x.any", "is required (any.required)"),
        ]
    );
    let good = json!({"msg": {}, "dur": "0s", "ts": "2020-01-01T00:00:00Z",
                      "any": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1s"}, "a": ""});
    assert_eq!(check("bootes.test.Required", good.clone()), vec![]);
    let e = check(
        "bootes.test.Required",
        with(good, json!({"a": null, "b": "x"})),
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].path, "x.b");
}

// ---------------------------------------------------------------------------
// The proto3 JSON mapping, on the test schema.

fn parsed(json: serde_json::Value) -> DynamicMessage {
    let desc = test_pool()
        .get_message_by_name("bootes.test.Rules")
        .unwrap();
    let (m, e) = parse_and_validate(&desc, &json, "x");
    assert!(e.is_empty(), "{json}: {e:#?}");
    m
}

fn parse_error(json: serde_json::Value) -> ConfigError {
    let e = check("bootes.test.Rules", json.clone());
    assert_eq!(e.len(), 1, "{json}: {e:#?}");
    e.into_iter().next().unwrap()
}

fn field(m: &DynamicMessage, name: &str) -> prost_reflect::Value {
    m.get_field_by_name(name).unwrap().into_owned()
}

#[test]
fn sixty_four_bit_integers_as_numbers_or_strings() {
    use prost_reflect::Value as V;
    assert_eq!(
        field(&parsed(json!({"big": "-9223372036854775808"})), "big"),
        V::I64(i64::MIN)
    );
    assert_eq!(
        field(&parsed(json!({"big": 9223372036854775807i64})), "big"),
        V::I64(i64::MAX)
    );
    assert_eq!(
        field(&parsed(json!({"ubig": "18446744073709551615"})), "ubig"),
        V::U64(u64::MAX)
    );
    assert_eq!(field(&parsed(json!({"ubig": 1e3})), "ubig"), V::U64(1000));
    let e = parse_error(json!({"big": "9223372036854775808"}));
    assert_eq!(e.path, "x.big");
    assert!(e.message.contains("out of range"), "{e}");
    let e = parse_error(json!({"ubig": "-1"}));
    assert!(e.message.contains("out of range"), "{e}");
    let e = parse_error(json!({"big": "1.5"}));
    assert!(e.message.contains("not an integer"), "{e}");
    let e = parse_error(json!({"big": " 1"}));
    assert!(e.message.contains("expected a 64-bit integer"), "{e}");
}

#[test]
fn floats_and_their_special_values() {
    use prost_reflect::Value as V;
    assert_eq!(
        field(&parsed(json!({"d": "Infinity"})), "d"),
        V::F64(f64::INFINITY)
    );
    assert_eq!(
        field(&parsed(json!({"d": "-Infinity"})), "d"),
        V::F64(f64::NEG_INFINITY)
    );
    assert!(field(&parsed(json!({"d": "NaN"})), "d")
        .as_f64()
        .unwrap()
        .is_nan());
    assert_eq!(field(&parsed(json!({"d": "1.5e3"})), "d"), V::F64(1500.0));
    assert_eq!(field(&parsed(json!({"f": 0.25})), "f"), V::F32(0.25));
    assert!(parse_error(json!({"d": "inf"}))
        .message
        .contains("expected a number"));
    assert!(parse_error(json!({"d": "1e999"}))
        .message
        .contains("out of range"));
    assert!(parse_error(json!({"f": 1e39}))
        .message
        .contains("out of range for a 32-bit float"));
    assert!(parse_error(json!({"d": true}))
        .message
        .contains("expected a number"));
}

#[test]
fn bytes_are_base64_standard_or_url_safe_with_or_without_padding() {
    for text in ["aGk/Pz4+", "aGk_Pz4-", "aGk/Pz4+", "YWI=", "YWI"] {
        let m = parsed(json!({ "raw": text }));
        assert!(!field(&m, "raw").as_bytes().unwrap().is_empty(), "{text}");
    }
    assert_eq!(
        field(&parsed(json!({"raw": "YWI"})), "raw")
            .as_bytes()
            .unwrap()
            .as_ref(),
        b"ab"
    );
    let e = parse_error(json!({"raw": "not base64!"}));
    assert_eq!(e.path, "x.raw");
    assert!(e.message.contains("not valid base64"), "{e}");
}

#[test]
fn timestamps_are_rfc3339() {
    let seconds = |json: serde_json::Value| {
        let m = parsed(json!({ "ts": json }));
        let ts = field(&m, "ts");
        let ts = ts.as_message().unwrap();
        (
            ts.get_field_by_name("seconds").unwrap().as_i64().unwrap(),
            ts.get_field_by_name("nanos").unwrap().as_i32().unwrap(),
        )
    };
    assert_eq!(seconds(json!("1970-01-01T00:00:00Z")), (0, 0));
    assert_eq!(
        seconds(json!("1972-01-01T10:00:20.021Z")),
        (63108020, 21_000_000)
    );
    assert_eq!(seconds(json!("1970-01-01T01:00:00+01:00")), (0, 0));
    assert_eq!(seconds(json!("2000-02-29T00:00:00Z")), (951782400, 0));
    assert_eq!(
        seconds(json!("0001-01-01T00:00:00Z")),
        (json::MIN_TIMESTAMP, 0)
    );
    for bad in [
        "2001-02-29T00:00:00Z",
        "2020-01-01 00:00:00Z",
        "2020-01-01T00:00:00",
        "2020-13-01T00:00:00Z",
        "2020-01-01T24:00:00Z",
        "2020-01-01T00:00:00.Z",
        "2020-01-01T00:00:00+1:00",
        "yesterday",
    ] {
        let e = parse_error(json!({ "ts": bad }));
        assert_eq!(e.path, "x.ts");
        assert!(
            e.message.contains("is not an RFC 3339 timestamp"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn field_masks_structs_values_lists_and_wrappers() {
    let m = parsed(json!({
        "mask": "a.fooBar,baz",
        "st": {"a": [1, "two", null, {"b": true}]},
        "val": null,
        "list": [1, {"x": []}],
        "wb": false,
        "wi": "-5",
        "wby": "YWI=",
        "by_bool": {"true": "t", "false": "f"},
        "by_u64": {"18446744073709551615": "max"},
        "colors": ["RED", 2]
    }));
    let mask = field(&m, "mask");
    let paths: Vec<String> = mask
        .as_message()
        .unwrap()
        .get_field_by_name("paths")
        .unwrap()
        .as_list()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, vec!["a.foo_bar", "baz"]);
    // `"val": null` sets a Value holding null (it is not "unset").
    assert!(m.has_field_by_name("val"));
    assert!(m.has_field_by_name("wb"), "a false BoolValue is still set");
    let json_back = m
        .serialize_with_options(
            serde_json::value::Serializer,
            &prost_reflect::SerializeOptions::new(),
        )
        .unwrap();
    assert_eq!(
        json_back["st"],
        json!({"a": [1.0, "two", null, {"b": true}]})
    );
    assert_eq!(json_back["list"], json!([1.0, {"x": []}]));
    assert_eq!(json_back["wi"], json!("-5"));

    for (bad, path, message) in [
        (json!({"mask": "a_b"}), "x.mask", "lowerCamelCase"),
        (json!({"mask": 1}), "x.mask", "expected a field mask string"),
        (
            json!({"st": [1]}),
            "x.st",
            "expected an object (google.protobuf.Struct)",
        ),
        (
            json!({"list": {}}),
            "x.list",
            "expected a list (google.protobuf.ListValue)",
        ),
        (json!({"wb": "true"}), "x.wb", "expected true or false"),
        (
            json!({"by_bool": {"yes": "t"}}),
            "x.by_bool[\"yes\"]",
            "map key \"yes\" is not true or false",
        ),
        (
            json!({"by_u64": {"-1": "t"}}),
            "x.by_u64[\"-1\"]",
            "not an unsigned 64-bit integer",
        ),
        (
            json!({"colors": ["RED", "PINK"]}),
            "x.colors[1]",
            "unknown value \"PINK\" of enum bootes.test.Color",
        ),
        (
            json!({"inner": [1]}),
            "x.inner",
            "expected an object (bootes.test.Inner), got a list",
        ),
        (
            json!({"payload": {"@type": "type.googleapis.com/bootes.test.Inner", "nam": "x"}}),
            "x.payload.nam",
            "unknown field \"nam\" in bootes.test.Inner (did you mean \"name\"?)",
        ),
        (
            json!({"payload": "x"}),
            "x.payload",
            "expected an object with \"@type\"",
        ),
        (
            json!({"pick_a": "abc", "pickB": {}}),
            "x.pick_a",
            "\"pick_a\" and \"pickB\" are both set",
        ),
    ] {
        let e = parse_error(bad.clone());
        assert!(
            e.path == path && e.message.contains(message),
            "{bad}: expected {message:?} at {path}, got {e}"
        );
    }
    // An empty Any is the default Any.
    rules_ok(json!({"payload": {}}));
}

/// Two leniencies of protobuf's own JSON parser, which Envoy's bootstrap
/// loader uses (found by the Envoy differential test).
#[test]
fn enum_numbers_in_strings_and_base64_with_unused_bits_set_are_accepted() {
    let health = |status: serde_json::Value| {
        convert(
            ResourceType::Endpoint,
            &json!({"cluster_name": "c", "endpoints": [{"lb_endpoints": [{
                "endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}},
                "health_status": status}]}]}),
        )
    };
    assert_eq!(
        health(json!("2")).unwrap(),
        health(json!("UNHEALTHY")).unwrap()
    );
    assert!(health(json!("UNHEALTHYX")).is_err());
    let key = |b64: &str| {
        convert(
            ResourceType::Secret,
            &json!({"name": "k", "session_ticket_keys": {"keys": [{"inline_bytes": b64}]}}),
        )
    };
    // "99" has bits set beyond its one byte; "9" is no base64 at all.
    assert_eq!(key("99").unwrap(), key("9w").unwrap());
    assert!(key("9").is_err());
}

/// A listener whose one network filter's typed_config is `typed_config`.
fn listener_with_filter(typed_config: serde_json::Value) -> serde_json::Value {
    json!({"name": "l", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 80}},
           "filter_chains": [{"filters": [{"name": "f", "typed_config": typed_config}]}]})
}

#[test]
fn typed_structs_are_converted_to_the_message_they_name() {
    let tcp_proxy = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
    for package in ["xds.type.v3", "udpa.type.v1"] {
        let ts = |value: serde_json::Value| {
            listener_with_filter(json!({
                "@type": format!("type.googleapis.com/{package}.TypedStruct"),
                "type_url": tcp_proxy, "value": value}))
        };
        let plain =
            listener_with_filter(json!({"@type": tcp_proxy, "stat_prefix": "s", "cluster": "c"}));
        let via = convert(
            ResourceType::Listener,
            &ts(json!({"stat_prefix": "s", "cluster": "c"})),
        )
        .unwrap();
        // The same resource as the message written out: what Envoy makes of it.
        assert_eq!(via, convert(ResourceType::Listener, &plain).unwrap());

        // `value` is checked as the message: fields, then its rules.
        let e = convert(
            ResourceType::Listener,
            &ts(json!({"stat_prefix": "s", "clustr": "c"})),
        )
        .unwrap_err();
        assert_eq!(
            e[0].path,
            "spec.config.filter_chains[0].filters[0].typed_config.value.clustr"
        );
        let e = convert(ResourceType::Listener, &ts(json!({"cluster": "c"}))).unwrap_err();
        assert!(
            e.iter()
                .any(|e| e.path.ends_with("typed_config.stat_prefix")),
            "{e:#?}"
        );
    }
    let e = convert(
        ResourceType::Listener,
        &listener_with_filter(
            json!({"@type": "type.googleapis.com/xds.type.v3.TypedStruct",
            "type_url": "type.googleapis.com/no.such.Thing", "value": {}}),
        ),
    )
    .unwrap_err();
    assert!(
        e[0].path.ends_with("typed_config.type_url") && e[0].message.contains("unknown type"),
        "{e:#?}"
    );
    let e = convert(
        ResourceType::Listener,
        &listener_with_filter(
            json!({"@type": "type.googleapis.com/xds.type.v3.TypedStruct",
            "value": {}}),
        ),
    )
    .unwrap_err();
    assert!(e[0].message.contains("needs type_url"), "{e:#?}");
}
