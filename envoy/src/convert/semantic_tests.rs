//! Tests of the semantic rules: each rule rejects what Envoy 1.40 rejects
//! (checked with `envoy --mode validate` when the rule was written) and
//! accepts the neighbouring configs Envoy accepts.

use bootes_proto::envoy::descriptor_pool;
use bootes_proto::ResourceType;
use prost_reflect::{Kind, MessageDescriptor};
use serde_json::{json, Value};

use super::rule::{Check, Cond};
use super::semantic_rules::{RULES, WARNINGS};
use super::{convert, ConfigError};

fn problems(ty: ResourceType, config: Value) -> Vec<ConfigError> {
    match convert(ty, &config) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

#[track_caller]
fn rejected(ty: ResourceType, config: Value, path: &str, words: &str) {
    let e = problems(ty, config);
    assert!(
        e.iter()
            .any(|e| e.path == path && e.message.contains(words)),
        "expected {path}: …{words}…, got {e:#?}"
    );
}

#[track_caller]
fn accepted(ty: ResourceType, config: Value) {
    let e = problems(ty, config);
    assert!(e.is_empty(), "{e:#?}");
}

/// Every path a rule names exists in the descriptors (a typo would make the
/// rule silently never fire).
#[test]
fn every_rule_names_fields_the_envoy_api_has() {
    fn check_path(desc: &MessageDescriptor, path: &str) {
        let names: Vec<&str> = path.split('.').collect();
        let mut d = desc.clone();
        for (i, name) in names.iter().enumerate() {
            let last = i == names.len() - 1;
            match d.get_field_by_name(name) {
                Some(f) => {
                    if let Kind::Message(m) = f.kind() {
                        d = if f.is_map() {
                            match m.map_entry_value_field().kind() {
                                Kind::Message(v) => v,
                                _ => m,
                            }
                        } else {
                            m
                        };
                    } else {
                        assert!(
                            last,
                            "{}: {path}: {name} is not a message",
                            desc.full_name()
                        );
                    }
                }
                None => assert!(
                    last && d.oneofs().any(|o| o.name() == *name),
                    "{}: {path}: no field or oneof {name}",
                    desc.full_name()
                ),
            }
        }
    }
    let pool = descriptor_pool();
    for rule in RULES.iter().chain(WARNINGS) {
        let desc = pool
            .get_message_by_name(rule.message)
            .unwrap_or_else(|| panic!("no message {}", rule.message));
        let mut paths = Vec::new();
        for c in rule.when.iter().chain(match &rule.check {
            Check::Holds(c) => std::slice::from_ref(c),
            _ => &[],
        }) {
            match c {
                Cond::Set(p) | Cond::Unset(p) | Cond::Enum(p, _) | Cond::NoPrefix(p, _) => {
                    paths.push(*p)
                }
                Cond::Resource(_) => {}
            }
        }
        match &rule.check {
            Check::Required(p) | Check::Each(p, _) | Check::Count { path: p, .. } => paths.push(p),
            Check::AnyOf(ps) | Check::ExactlyOne(ps) => paths.extend(ps.iter().copied()),
            Check::Holds(_) | Check::Message(_) => {}
        }
        for p in paths {
            check_path(&desc, p);
        }
    }
}

fn tcp_proxy_chain() -> Value {
    json!({"filters": [{"name": "tcp", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": "t", "cluster": "c"}}]})
}

fn listener(extra: Value) -> Value {
    let mut l = json!({
        "name": "l",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 80}},
        "filter_chains": [tcp_proxy_chain()]
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            l.as_object_mut().unwrap().remove(k);
        } else {
            l[k] = v.clone();
        }
    }
    l
}

#[test]
fn listener_rules() {
    use ResourceType::Listener as L;
    accepted(L, listener(json!({})));
    rejected(
        L,
        listener(json!({"address": null})),
        "spec.config.address",
        "address is necessary",
    );
    accepted(
        L,
        listener(json!({"address": null, "internal_listener": {}})),
    );
    rejected(
        L,
        listener(json!({"filter_chains": []})),
        "spec.config",
        "no filter chains specified",
    );
    accepted(
        L,
        listener(json!({"filter_chains": [], "default_filter_chain": tcp_proxy_chain()})),
    );
    // A UDP listener may have listener filters only.
    accepted(
        L,
        listener(json!({"filter_chains": [], "address": {"socket_address": {
            "protocol": "UDP", "address": "127.0.0.1", "port_value": 53}}})),
    );
    let source = |prefix: &str| {
        let mut chain = tcp_proxy_chain();
        chain["filter_chain_match"] =
            json!({"source_prefix_ranges": [{"address_prefix": prefix, "prefix_len": 8}]});
        listener(json!({"filter_chains": [chain]}))
    };
    accepted(L, source("10.0.0.0"));
    rejected(
        L,
        source("ten"),
        "spec.config.filter_chains[0].filter_chain_match.source_prefix_ranges[0].address_prefix",
        "malformed IP address",
    );
    rejected(
        L,
        listener(
            json!({"address": {"socket_address": {"address": "example.com", "port_value": 80}}}),
        ),
        "spec.config.address.socket_address",
        "is not an IP address",
    );
    // Filters need a typed_config: Envoy finds them by type, not name.
    rejected(
        L,
        listener(
            json!({"filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy"}]}]}),
        ),
        "spec.config.filter_chains[0].filters[0].typed_config",
        "Didn't find a registered implementation",
    );
}

#[test]
fn cluster_rules() {
    use ResourceType::Cluster as C;
    let cla = |address: &str| {
        json!({"cluster_name": "c", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": address, "port_value": 80}}}}]}]})
    };
    // No type: STATIC, and host names are then an error.
    rejected(
        C,
        json!({"name": "c", "load_assignment": cla("db.example.com")}),
        "spec.config.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address",
        "malformed IP address",
    );
    accepted(C, json!({"name": "c", "load_assignment": cla("10.0.0.1")}));
    accepted(C, json!({"name": "c", "load_assignment": cla("fd00::1")}));
    accepted(
        C,
        json!({"name": "c", "load_assignment": cla("fe80::1%eth0")}),
    );
    rejected(
        C,
        json!({"name": "c", "load_assignment": cla("%%garbage")}),
        "spec.config.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address",
        "malformed IP address",
    );
    accepted(
        C,
        json!({"name": "c", "type": "STRICT_DNS", "load_assignment": cla("db.example.com")}),
    );
    rejected(
        C,
        json!({"name": "c", "eds_cluster_config": {"eds_config": {"ads": {}}}}),
        "spec.config",
        "eds_cluster_config set in a non-EDS cluster",
    );
    rejected(
        C,
        json!({"name": "c", "type": "EDS"}),
        "spec.config.eds_cluster_config",
        "cannot create an EDS cluster without an EDS config",
    );
    accepted(
        C,
        json!({"name": "c", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}}}),
    );
    rejected(
        C,
        json!({"name": "c", "type": "LOGICAL_DNS"}),
        "spec.config.load_assignment",
        "LOGICAL_DNS clusters must have a single",
    );
    rejected(
        C,
        json!({"name": "c", "type": "ORIGINAL_DST"}),
        "spec.config",
        "ORIGINAL_DST",
    );
    accepted(
        C,
        json!({"name": "c", "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED"}),
    );
    // Envoy reads ring_hash_lb_config only with lb_policy RING_HASH and no
    // load_balancing_policy; a RingHash policy is read when it is the first.
    let rh = json!({"lb_policy": "RING_HASH"});
    let with = |extra: Value| {
        let mut c = json!({"name": "c"});
        for (k, v) in rh
            .as_object()
            .unwrap()
            .iter()
            .chain(extra.as_object().unwrap())
        {
            c[k] = v.clone();
        }
        c
    };
    rejected(
        C,
        with(json!({"ring_hash_lb_config": {"maximum_ring_size": 0}})),
        "spec.config.ring_hash_lb_config",
        "ring hash",
    );
    accepted(
        C,
        with(json!({"ring_hash_lb_config": {"maximum_ring_size": 1024}})),
    );
    let inverted = json!({"minimum_ring_size": 2048, "maximum_ring_size": 1024});
    rejected(
        C,
        with(json!({"ring_hash_lb_config": inverted})),
        "spec.config.ring_hash_lb_config",
        "ring hash",
    );
    accepted(C, json!({"name": "c", "ring_hash_lb_config": inverted}));
    accepted(
        C,
        json!({"name": "c", "lb_policy": "MAGLEV", "ring_hash_lb_config": inverted}),
    );
    let policy = |ty: &str, i: usize| {
        let mut policies = vec![
            json!({"typed_extension_config": {"name": "p", "typed_config": {
            "@type": format!("type.googleapis.com/envoy.extensions.load_balancing_policies.{ty}"),
            "minimum_ring_size": 2048, "maximum_ring_size": 1024}}}),
        ];
        if i == 1 {
            policies.insert(0, json!({"typed_extension_config": {"name": "rr", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin"}}}));
        }
        json!({"policies": policies})
    };
    rejected(
        C,
        json!({"name": "c", "load_balancing_policy": policy("ring_hash.v3.RingHash", 0)}),
        "spec.config.load_balancing_policy.policies[0].typed_extension_config.typed_config",
        "ring hash",
    );
    accepted(
        C,
        json!({"name": "c", "load_balancing_policy": policy("ring_hash.v3.RingHash", 1)}),
    );
    accepted(
        C,
        with(json!({"ring_hash_lb_config": inverted,
            "load_balancing_policy": policy("ring_hash.v3.RingHash", 1)})),
    );
    rejected(
        C,
        json!({"name": "c", "health_checks": [{"timeout": "1s", "interval": "1s",
            "unhealthy_threshold": 1, "healthy_threshold": 1,
            "http_health_check": {"path": "/", "expected_statuses": [{"start": 300, "end": 200}]}}]}),
        "spec.config.health_checks[0].http_health_check.expected_statuses[0]",
        "Invalid http expected status range",
    );
}

#[test]
fn endpoint_rules() {
    use ResourceType::Endpoint as E;
    let with =
        |endpoint: Value| json!({"cluster_name": "c", "endpoints": [{"lb_endpoints": [endpoint]}]});
    rejected(
        E,
        with(
            json!({"endpoint": {"address": {"socket_address": {"address": "web", "port_value": 80}}}}),
        ),
        "spec.config.endpoints[0].lb_endpoints[0].endpoint.address.socket_address",
        "malformed IP address",
    );
    accepted(
        E,
        with(json!({"endpoint": {"address": {"socket_address": {
            "address": "web", "port_value": 80, "resolver_name": "custom"}}}})),
    );
    rejected(
        E,
        with(json!({"endpoint": {}})),
        "spec.config.endpoints[0].lb_endpoints[0]",
        "Address must be set",
    );
    // A DNS cluster's endpoint without an address is only a failed lookup.
    accepted(
        ResourceType::Cluster,
        json!({"name": "c", "type": "STRICT_DNS", "load_assignment": with(json!({"endpoint": {}}))}),
    );
    rejected(
        E,
        with(json!({"endpoint": {"address": {"pipe": {"path": format!("/{}", "x".repeat(107))}}}})),
        "spec.config.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path",
        "UNIX domain socket path",
    );
    accepted(
        E,
        with(json!({"endpoint": {"address": {"pipe": {"path": format!("/{}", "x".repeat(106))}}}})),
    );
}

#[test]
fn route_rules() {
    use ResourceType::Route as R;
    let with_route = |route: Value| json!({"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [route]}]});
    // Every duration, wherever it is: Envoy keeps them as int64 nanoseconds.
    let timeout = |t: &str| {
        with_route(json!({"match": {"prefix": "/"}, "route": {"cluster": "a", "timeout": t}}))
    };
    let at = "spec.config.virtual_hosts[0].routes[0].route.timeout";
    rejected(R, timeout("-1s"), at, "Invalid duration");
    rejected(R, timeout("-0.001s"), at, "Invalid duration");
    rejected(R, timeout("9223372036s"), at, "Invalid duration");
    accepted(R, timeout("9223372035.999999999s"));
    accepted(R, timeout("0s"));
    rejected(
        R,
        with_route(
            json!({"match": {"prefix": "/"}, "route": {"weighted_clusters": {"clusters": [{"name": "a"}]}}}),
        ),
        "spec.config.virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0].weight",
        "Field 'weight' is missing",
    );
    rejected(
        R,
        with_route(
            json!({"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "x".repeat(4097)}}}),
        ),
        "spec.config.virtual_hosts[0].routes[0].direct_response.body.inline_string",
        "maximum is",
    );
    let mut bigger = with_route(
        json!({"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "x".repeat(4097)}}}),
    );
    bigger["max_direct_response_body_size_bytes"] = json!(5000);
    accepted(R, bigger);
    let back_off = |b: Value| {
        with_route(
            json!({"match": {"prefix": "/"}, "route": {"cluster": "a", "retry_policy": {"retry_back_off": b}}}),
        )
    };
    rejected(
        R,
        back_off(json!({"base_interval": "2s", "max_interval": "1s"})),
        "spec.config.virtual_hosts[0].routes[0].route.retry_policy.retry_back_off.max_interval",
        "max_interval must greater than or equal",
    );
    accepted(R, back_off(json!({"base_interval": "2s"})));
    accepted(
        R,
        back_off(json!({"base_interval": "1s", "max_interval": "1s"})),
    );
    rejected(
        R,
        with_route(json!({"match": {"prefix": "/"}, "route": {"cluster": "a"},
            "typed_per_filter_config": {"envoy.filters.http.cors": {}}})),
        "spec.config.virtual_hosts[0].routes[0].typed_per_filter_config[\"envoy.filters.http.cors\"]",
        "with type URL: ''",
    );
    rejected(
        R,
        with_route(
            json!({"match": {"prefix": "/"}, "route": {"cluster": "a", "request_mirror_policies": [{}]}}),
        ),
        "spec.config.virtual_hosts[0].routes[0].route.request_mirror_policies[0]",
        "Exactly one of cluster or cluster_header",
    );
}

/// The self-signed test pair of tests/corpus/envoy/secrets.yaml (nothing
/// trusts it).
const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBnTCCAUOgAwIBAgIUIJVu8TkfrPr4iND+hloLzn7U65EwCgYIKoZIzj0EAwIw\nIzEhMB8GA1UEAwwYZGlmZmVyZW50aWFsLnRlc3QuYm9vdGVzMCAXDTI2MTEyNzEw\nMDgxNFoYDzIxMjYxMTAzMTAwODE0WjAjMSEwHwYDVQQDDBhkaWZmZXJlbnRpYWwu\ndGVzdC5ib290ZXMwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT5hzuzSy/DAy23\n8jBOQjp5S4UMUhVETlcW6c+H+4BWPaeIyWHJ/6VpC/o6OMKjgcic4rq/JB40paOI\n3C1q0l4to1MwUTAdBgNVHQ4EFgQUYl9lRDP9h+w4eFzQnGvpew/uWIcwHwYDVR0j\nBBgwFoAUYl9lRDP9h+w4eFzQnGvpew/uWIcwDwYDVR0TAQH/BAUwAwEB/zAKBggq\nhkjOPQQDAgNIADBFAiB6AqiCP9RHt4qahMQ8Z5e5KNBFRTCTobwEB49UOkXlBQIh\nAP/5bhl3BRGTLjJhtEfzkLMRcpgnKKD6bKY8SWKyfy6O\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgijIsHoI4T4kjI5Pv\ntZd7fkTNJOiCQc/j7RvMO8mGLb6hRANCAAT5hzuzSy/DAy238jBOQjp5S4UMUhVE\nTlcW6c+H+4BWPaeIyWHJ/6VpC/o6OMKjgcic4rq/JB40paOI3C1q0l4t\n-----END PRIVATE KEY-----\n";

#[test]
fn secret_and_tls_rules() {
    use ResourceType::Secret as S;
    let cert = |c: Value| json!({"name": "s", "tls_certificate": c});
    accepted(
        S,
        cert(
            json!({"certificate_chain": {"inline_string": CERT}, "private_key": {"inline_string": KEY}}),
        ),
    );
    rejected(
        S,
        cert(json!({"certificate_chain": {"inline_string": CERT}})),
        "spec.config.tls_certificate.private_key",
        "incomplete private key",
    );
    accepted(
        S,
        cert(
            json!({"certificate_chain": {"filename": "/etc/c.pem"}, "private_key_provider": {
            "provider_name": "p", "typed_config": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {}}}}),
        ),
    );
    rejected(
        S,
        cert(
            json!({"certificate_chain": {"inline_string": "garbage"}, "private_key": {"inline_string": KEY}}),
        ),
        "spec.config.tls_certificate.certificate_chain",
        "Failed to load certificate chain",
    );
    // Problems in a private key never echo it.
    let e = problems(
        S,
        cert(
            json!({"certificate_chain": {"inline_string": CERT}, "private_key": {"inline_string": "hunter2"}}),
        ),
    );
    assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
    // A validation context from SDS may get its CA from a default context:
    // not judged on its own.
    accepted(
        S,
        json!({"name": "v", "validation_context": {"match_typed_subject_alt_names": [
            {"san_type": "DNS", "matcher": {"exact": "a"}}]}}),
    );

    use ResourceType::Cluster as C;
    let upstream = |common: Value| {
        json!({"name": "c", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}},
            "transport_socket": {"name": "tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "common_tls_context": common}}})
    };
    rejected(
        C,
        upstream(json!({"alpn_protocols": ["h2", ""]})),
        "spec.config.transport_socket.typed_config.common_tls_context.alpn_protocols[1]",
        "INVALID_ALPN_PROTOCOL_LIST",
    );
    accepted(C, upstream(json!({"alpn_protocols": [""]})));
    rejected(
        C,
        upstream(json!({"alpn_protocols": ["x".repeat(256)]})),
        "spec.config.transport_socket.typed_config.common_tls_context.alpn_protocols[0]",
        "Invalid ALPN protocol string",
    );
    rejected(
        C,
        upstream(
            json!({"validation_context": {"match_typed_subject_alt_names": [
            {"san_type": "DNS", "matcher": {"exact": "a"}}]}}),
        ),
        "spec.config.transport_socket.typed_config.common_tls_context",
        "SAN-based verification",
    );
    accepted(
        C,
        upstream(json!({"combined_validation_context": {
            "default_validation_context": {"match_typed_subject_alt_names": [
                {"san_type": "DNS", "matcher": {"exact": "a"}}]},
            "validation_context_sds_secret_config": {"name": "ca", "sds_config": {"ads": {}}}}})),
    );
}

#[test]
fn warnings_report_what_depends_on_the_bootstrap_without_rejecting() {
    let warnings = |ty: ResourceType, config: Value| -> Vec<ConfigError> {
        convert(ty, &config)
            .unwrap_or_else(|e| panic!("warnings never reject: {e:#?}"))
            .warnings
    };
    // A static secret of the bootstrap (Envoy: "Unknown static secret"
    // unless the bootstrap has it).
    let w = warnings(
        ResourceType::Cluster,
        json!({"name": "c", "type": "STRICT_DNS", "transport_socket": {"name": "tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {"tls_certificate_sds_secret_configs": [{"name": "client-cert"}]}}}}),
    );
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(
        w[0].path,
        "spec.config.transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config"
    );
    assert!(w[0].message.contains("Unknown static secret"), "{w:#?}");
    // From ADS: nothing to say.
    let w = warnings(
        ResourceType::Cluster,
        json!({"name": "c", "type": "STRICT_DNS", "transport_socket": {"name": "tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {"tls_certificate_sds_secret_configs": [{"name": "client-cert", "sds_config": {"ads": {}}}]}}}}),
    );
    assert!(w.is_empty(), "{w:#?}");
    // A Secret of no type.
    let w = warnings(ResourceType::Secret, json!({"name": "s"}));
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].message.contains("Secret type not implemented"),
        "{w:#?}"
    );
    assert!(warnings(
        ResourceType::Secret,
        json!({"name": "s", "generic_secret": {"secret": {"inline_string": "x"}}})
    )
    .is_empty());
}

fn typed(name: &str) -> Value {
    json!({"@type": format!("type.googleapis.com/{name}")})
}

const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";
const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

fn hcm_listener(http_filters: Value, vh_extra: Value) -> Value {
    let mut vh = json!({"name": "v", "domains": ["*"]});
    for (k, v) in vh_extra.as_object().unwrap() {
        vh[k] = v.clone();
    }
    listener(
        json!({"filter_chains": [{"filters": [{"name": "h", "typed_config": {
        "@type": format!("type.googleapis.com/{HCM}"), "stat_prefix": "s",
        "route_config": {"virtual_hosts": [vh]}, "http_filters": http_filters}}]}]}),
    )
}

#[test]
fn typed_configs_fit_their_slots() {
    use ResourceType::{Cluster as C, Listener as L};
    let router = json!([{"name": "r", "typed_config": typed(ROUTER)}]);
    // The HCM network filter given the router's config.
    rejected(
        L,
        listener(
            json!({"filter_chains": [{"filters": [{"name": "h", "typed_config": typed(ROUTER)}]}]}),
        ),
        "spec.config.filter_chains[0].filters[0].typed_config",
        "is an HTTP filter, not a network filter",
    );
    accepted(L, hcm_listener(router.clone(), json!({})));
    // An access logger as an HTTP filter; an optional one is skipped by Envoy.
    let stdout = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
    rejected(
        L,
        hcm_listener(
            json!([{"name": "x", "typed_config": typed(stdout)}, router[0]]),
            json!({}),
        ),
        "spec.config.filter_chains[0].filters[0].typed_config.http_filters[0]",
        "is an access logger, not an HTTP filter",
    );
    accepted(
        L,
        hcm_listener(
            json!([{"name": "x", "is_optional": true, "typed_config": typed(stdout)}, router[0]]),
            json!({}),
        ),
    );
    // A per-route config for a filter that has none; one that has.
    rejected(
        L,
        hcm_listener(router.clone(), json!({"typed_per_filter_config": {"r": typed(ROUTER)}})),
        "spec.config.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].typed_per_filter_config[\"r\"]",
        "doesn't support virtual host or route specific configurations",
    );
    let per_route = "envoy.extensions.filters.http.lua.v3.LuaPerRoute";
    accepted(
        L,
        hcm_listener(
            router.clone(),
            json!({"typed_per_filter_config": {"l": {
            "@type": format!("type.googleapis.com/{per_route}"), "disabled": true}}}),
        ),
    );
    // A server TLS context on a cluster.
    let downstream = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
    rejected(
        C,
        json!({"name": "c", "transport_socket": {"name": "tls", "typed_config": typed(downstream)}}),
        "spec.config.transport_socket.typed_config",
        "not an upstream (cluster) transport socket",
    );
    accepted(
        C,
        json!({"name": "c", "transport_socket": {"name": "tls", "typed_config":
            typed("envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext")}}),
    );
    // Protocol options under a name Envoy has no factory for.
    let http = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    let options = |key: &str| {
        json!({"name": "c", "typed_extension_protocol_options": {key: {
            "@type": format!("type.googleapis.com/{http}"),
            "explicit_http_config": {"http2_protocol_options": {}}}}})
    };
    accepted(C, options(http));
    rejected(
        C,
        options("HttpProtocolOptions"),
        "spec.config.typed_extension_protocol_options[\"HttpProtocolOptions\"]",
        "no protocol options are named",
    );
    // A listener filter in its place.
    accepted(
        L,
        listener(json!({"listener_filters": [{"name": "t", "typed_config":
            typed("envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector")}]})),
    );
}
