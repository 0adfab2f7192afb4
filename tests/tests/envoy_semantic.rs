//! Envoy's semantic checks (issue 24, item 3) against the real Envoy: for
//! each rule, a config Envoy rejects, which `bootes-controller validate`
//! rejects too with an error naming the field path and the rule, and a near
//! miss both accept. The configs go to Envoy the way the differential test
//! embeds them (tests/src/differential/embed.rs).

use anyhow::{ensure, Result};
use bootes_envoy::convert::tls_names::{CIPHERS, CURVES, SIGNATURE_ALGORITHMS};
use bootes_tests::differential::{bootes_verdicts, envoy_verdicts, repo_root, Case};
use bootes_tests::harness::{find_bootes_bin, find_envoy, test_dir};
use serde_json::{json, Value};

/// What both must say of a config.
enum Expect {
    /// Envoy rejects; Bootes rejects with an error at this path (below
    /// `spec.config`) containing these words.
    Rejected(&'static str, &'static str),
    Accepted,
}
use Expect::{Accepted, Rejected};

struct Check {
    what: String,
    kind: &'static str,
    config: Value,
    expect: Expect,
}

const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";
const CORS: &str = "envoy.extensions.filters.http.cors.v3.Cors";
const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

fn filter(name: &str, ty: &str) -> Value {
    json!({"name": name, "typed_config": {"@type": format!("type.googleapis.com/{ty}")}})
}

fn tcp_proxy() -> Value {
    json!({"name": "tcp", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": "t", "cluster": "c"}})
}

fn listener(chains: Value) -> Value {
    json!({"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
        "filter_chains": chains})
}

/// A listener with one HTTP connection manager; `edit` changes its config.
fn hcm_listener(edit: impl FnOnce(&mut Value)) -> Value {
    let mut h = json!({
        "@type": format!("type.googleapis.com/{HCM}"),
        "stat_prefix": "h",
        "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "c"}}]}]},
        "http_filters": [filter("r", ROUTER)]});
    edit(&mut h);
    listener(json!([{"filters": [{"name": "h", "typed_config": h}]}]))
}

fn route_config(vhosts: Value) -> Value {
    json!({"name": "rc", "virtual_hosts": vhosts})
}

/// A route configuration with one route; `edit` changes the route.
fn one_route(edit: impl FnOnce(&mut Value)) -> Value {
    let mut r = json!({"match": {"prefix": "/"}, "route": {"cluster": "c"}});
    edit(&mut r);
    route_config(json!([{"name": "v", "domains": ["*"], "routes": [r]}]))
}

fn vhost(name: &str, domains: Value) -> Value {
    json!({"name": name, "domains": domains, "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "c"}}]})
}

fn cluster(extra: Value) -> Value {
    let mut c = json!({"name": "o", "connect_timeout": "1s"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn health_check(kind: Value) -> Value {
    let mut hc = json!({"timeout": "1s", "interval": "1s", "unhealthy_threshold": 1, "healthy_threshold": 1});
    for (k, v) in kind.as_object().unwrap() {
        hc[k] = v.clone();
    }
    hc
}

fn upstream_tls(common: Value) -> Value {
    cluster(json!({"transport_socket": {"name": "tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": common}}}))
}

/// The corpus' self-signed certificate and key (tests/corpus/envoy/secrets.yaml).
fn test_certificate() -> Result<Value> {
    let text = std::fs::read_to_string(repo_root().join("tests/corpus/envoy/secrets.yaml"))?;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let doc: Value = serde::Deserialize::deserialize(doc)?;
        if let Some(c) = doc["spec"]["config"].get("tls_certificate") {
            return Ok(c.clone());
        }
    }
    anyhow::bail!("no tls_certificate in the corpus")
}

fn downstream_tls(certificate: &Value, extra: Value) -> Value {
    let mut ctx = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {"tls_certificates": [certificate]}});
    for (k, v) in extra.as_object().unwrap() {
        ctx[k] = v.clone();
    }
    listener(
        json!([{"filters": [tcp_proxy()], "transport_socket": {"name": "tls", "typed_config": ctx}}]),
    )
}

fn checks() -> Result<Vec<Check>> {
    let mut c = Vec::new();
    let mut add = |what: &str, kind: &'static str, config: Value, expect: Expect| {
        c.push(Check {
            what: what.to_string(),
            kind,
            config,
            expect,
        })
    };

    // Filter order.
    add(
        "router before another HTTP filter",
        "Listener",
        hcm_listener(|h| h["http_filters"] = json!([filter("r", ROUTER), filter("cors", CORS)])),
        Rejected(
            "filter_chains[0].filters[0].typed_config.http_filters[0]",
            "must be the last filter",
        ),
    );
    add(
        "a non-terminal HTTP filter last",
        "Listener",
        hcm_listener(|h| h["http_filters"] = json!([filter("cors", CORS)])),
        Rejected(
            "filter_chains[0].filters[0].typed_config.http_filters[0]",
            "is the last filter in a http filter chain",
        ),
    );
    add(
        "cors then router",
        "Listener",
        hcm_listener(|h| h["http_filters"] = json!([filter("cors", CORS), filter("r", ROUTER)])),
        Accepted,
    );
    add(
        "no HTTP filters (Envoy adds the router)",
        "Listener",
        hcm_listener(|h| h["http_filters"] = json!([])),
        Accepted,
    );
    add(
        "two TCP proxies",
        "Listener",
        listener(json!([{"filters": [tcp_proxy(), tcp_proxy()]}])),
        Rejected(
            "filter_chains[0].filters[0]",
            "must be the last filter in a network filter chain",
        ),
    );
    let sni = "envoy.extensions.filters.network.sni_cluster.v3.SniCluster";
    add(
        "a non-terminal network filter last",
        "Listener",
        listener(json!([{"filters": [filter("s", sni)]}])),
        Rejected(
            "filter_chains[0].filters[0]",
            "is the last filter in a network filter chain",
        ),
    );
    add(
        "sni_cluster then the TCP proxy",
        "Listener",
        listener(json!([{"filters": [filter("s", sni), tcp_proxy()]}])),
        Accepted,
    );

    // Listeners.
    let chain = |m: Value| json!({"filter_chain_match": m, "filters": [tcp_proxy()]});
    add(
        "a partial wildcard server name",
        "Listener",
        listener(json!([chain(json!({"server_names": ["*ab.com"]}))])),
        Rejected(
            "filter_chains[0].filter_chain_match.server_names[0]",
            "partial wildcards are not supported",
        ),
    );
    add(
        "a wildcard server name",
        "Listener",
        listener(json!([chain(json!({"server_names": ["*.ab.com"]}))])),
        Accepted,
    );
    add(
        "two chains without a match",
        "Listener",
        listener(
            json!([{"name": "a", "filters": [tcp_proxy()]}, {"name": "b", "filters": [tcp_proxy()]}]),
        ),
        Rejected("filter_chains[1].filter_chain_match", "same matching rules"),
    );
    add(
        "two chains with one server name in common",
        "Listener",
        listener(json!([
            chain(json!({"server_names": ["a.com", "b.com"]})),
            chain(json!({"server_names": ["b.com"]}))
        ])),
        Rejected(
            "filter_chains[1].filter_chain_match",
            "overlapping matching rules",
        ),
    );
    add(
        "two chains on different ports",
        "Listener",
        listener(json!([
            chain(json!({"destination_port": 80})),
            chain(json!({"destination_port": 81}))
        ])),
        Accepted,
    );
    add(
        "a chain for a port beside a chain for any",
        "Listener",
        listener(json!([
            chain(json!({"destination_port": 80})),
            chain(json!({}))
        ])),
        Accepted,
    );
    add(
        "a chain and a default chain",
        "Listener",
        json!({"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
            "filter_chains": [{"filters": [tcp_proxy()]}], "default_filter_chain": {"filters": [tcp_proxy()]}}),
        Accepted,
    );
    let udp = |extra: Value| {
        let mut l = json!({"name": "u", "address": {"socket_address": {"protocol": "UDP", "address": "127.0.0.1", "port_value": 10001}},
            "listener_filters": [{"name": "udp", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig",
                "stat_prefix": "u",
                "matcher": {"on_no_match": {"action": {"name": "route", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route", "cluster": "c"}}}}}}]});
        for (k, v) in extra.as_object().unwrap() {
            l[k] = v.clone();
        }
        l
    };
    add(
        "a UDP listener with filter chains",
        "Listener",
        udp(json!({"filter_chains": [{"filters": [tcp_proxy()]}]})),
        Rejected("filter_chains", "connection-less UDP listener"),
    );
    add("a UDP proxy listener", "Listener", udp(json!({})), Accepted);
    add(
        "HTTP/3 on a TCP listener",
        "Listener",
        hcm_listener(|h| h["codec_type"] = json!("HTTP3")),
        Rejected(
            "filter_chains[0].filters[0].typed_config.codec_type",
            "HTTP/3 codec configured on non-QUIC listener",
        ),
    );
    add(
        "HTTP/2 on a TCP listener",
        "Listener",
        hcm_listener(|h| h["codec_type"] = json!("HTTP2")),
        Accepted,
    );

    // Regular expressions.
    let regex_route = |re: &str| one_route(|r| r["match"] = json!({"safe_regex": {"regex": re}}));
    for (re, words) in [
        ("((", "missing"),
        ("x{2,1}", "RE2"),
        ("(?<=a)b", "RE2"),
        ("\\8", "back references"),
        ("a{1001}", "more than RE2's 1000"),
        ("a{200}", "program"),
    ] {
        add(
            &format!("regex {re}"),
            "Route",
            regex_route(re),
            Rejected(
                "virtual_hosts[0].routes[0].match.safe_regex.regex",
                if words == "missing" { "RE2" } else { words },
            ),
        );
    }
    let long = "a".repeat(99);
    add(
        "a literal regex of 99 characters",
        "Route",
        regex_route(&long),
        Rejected(
            "virtual_hosts[0].routes[0].match.safe_regex.regex",
            "program",
        ),
    );
    for re in [
        "^/api/v[0-9]+/.*",
        "\\Qa.b\\E",
        "\\012",
        "(?P<n>a)",
        "[[:word:]]",
        "a{,5}",
    ] {
        add(&format!("regex {re}"), "Route", regex_route(re), Accepted);
    }
    add(
        "a literal regex of 90 characters",
        "Route",
        regex_route(&"a".repeat(90)),
        Accepted,
    );
    add(
        "an anchored literal of 200 characters (RE2's required prefix)",
        "Route",
        regex_route(&format!("^{}", "a".repeat(200))),
        Accepted,
    );
    add(
        "a broken regex in a header matcher",
        "Route",
        one_route(|r| {
            r["match"]["headers"] =
                json!([{"name": "x", "string_match": {"safe_regex": {"regex": "(a)\\1"}}}])
        }),
        Rejected(
            "virtual_hosts[0].routes[0].match.headers[0].string_match.safe_regex.regex",
            "back references",
        ),
    );
    add(
        "a broken regex in regex_rewrite",
        "Route",
        one_route(|r| {
            r["route"]["regex_rewrite"] = json!({"pattern": {"regex": "(("}, "substitution": "x"})
        }),
        Rejected(
            "virtual_hosts[0].routes[0].route.regex_rewrite.pattern.regex",
            "RE2",
        ),
    );

    // Routes and virtual hosts.
    add(
        "one domain in two virtual hosts",
        "Route",
        route_config(json!([
            vhost("a", json!(["Foo.com"])),
            vhost("b", json!(["foo.com"]))
        ])),
        Rejected(
            "virtual_hosts[1].domains[0]",
            "Only unique values for domains",
        ),
    );
    add(
        "two wildcard domains",
        "Route",
        route_config(json!([vhost("a", json!(["*"])), vhost("b", json!(["*"]))])),
        Rejected("virtual_hosts[1].domains[0]", "single wildcard domain"),
    );
    add(
        "a domain, its wildcard and *",
        "Route",
        route_config(json!([
            vhost("a", json!(["foo.com"])),
            vhost("b", json!(["*.foo.com"])),
            vhost("c", json!(["*"]))
        ])),
        Accepted,
    );
    add(
        "prefix_rewrite and regex_rewrite",
        "Route",
        one_route(|r| {
            r["route"]["prefix_rewrite"] = json!("/x");
            r["route"]["regex_rewrite"] = json!({"pattern": {"regex": "a"}, "substitution": "b"});
        }),
        Rejected(
            "virtual_hosts[0].routes[0].route.regex_rewrite",
            "Specify only one of prefix_rewrite",
        ),
    );
    add(
        "prefix_rewrite alone",
        "Route",
        one_route(|r| r["route"]["prefix_rewrite"] = json!("/x")),
        Accepted,
    );
    let weighted = |w: [u32; 2]| {
        one_route(|r| {
            r["route"] = json!({"weighted_clusters": {"clusters": [
                {"name": "c", "weight": w[0]}, {"name": "c", "weight": w[1]}]}})
        })
    };
    add(
        "weights adding up to 0",
        "Route",
        weighted([0, 0]),
        Rejected(
            "virtual_hosts[0].routes[0].route.weighted_clusters.clusters",
            "Sum of weights",
        ),
    );
    add("weights 0 and 1", "Route", weighted([0, 1]), Accepted);
    add(
        "adding :path",
        "Route",
        one_route(|r| {
            r["request_headers_to_add"] = json!([{"header": {"key": ":path", "value": "v"}}])
        }),
        Rejected(
            "virtual_hosts[0].routes[0].request_headers_to_add[0].header.key",
            "may not be modified",
        ),
    );
    add(
        "removing Host in a virtual host",
        "Route",
        route_config(
            json!([{"name": "v", "domains": ["*"], "request_headers_to_remove": ["Host"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "c"}}]}]),
        ),
        Rejected(
            "virtual_hosts[0].request_headers_to_remove[0]",
            "may not be removed",
        ),
    );
    add(
        "adding :status to responses",
        "Route",
        json!({"name": "rc", "response_headers_to_add": [{"header": {"key": ":status", "value": "200"}}],
            "virtual_hosts": [vhost("v", json!(["*"]))]}),
        Rejected(
            "response_headers_to_add[0].header.key",
            "may not be modified",
        ),
    );
    add(
        "adding x-ok with formatters",
        "Route",
        one_route(|r| {
            r["request_headers_to_add"] = json!([
                {"header": {"key": "x-ok", "value": "%REQ(x)% 100%% %DOWNSTREAM_REMOTE_ADDRESS%"}}])
        }),
        Accepted,
    );
    for (value, at) in [("100%", "3"), ("%REQ(%", "0"), ("%REQ(x):ab%", "0")] {
        add(
            &format!("header value {value}"),
            "Route",
            one_route(|r| {
                r["request_headers_to_add"] = json!([{"header": {"key": "x-a", "value": value}}])
            }),
            Rejected(
                "virtual_hosts[0].routes[0].request_headers_to_add[0].header.value",
                if at == "3" {
                    "position 3"
                } else {
                    "position 0"
                },
            ),
        );
    }
    let template = |t: &str| {
        one_route(|r| {
            r["match"] = json!({"path_match_policy": {"name": "p", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
                "path_template": t}}})
        })
    };
    for t in ["/foo/{bar", "/{a}/{a}", "/foo/{**}/x", "/foo/bar}"] {
        add(
            &format!("URI template {t}"),
            "Route",
            template(t),
            Rejected(
                "virtual_hosts[0].routes[0].match.path_match_policy.typed_config.path_template",
                "is invalid",
            ),
        );
    }
    for t in ["/foo/{bar}", "/foo/{x=**}/y", "/foo/*/x"] {
        add(&format!("URI template {t}"), "Route", template(t), Accepted);
    }

    // HTTP connection manager.
    add(
        "websocket twice",
        "Listener",
        hcm_listener(|h| {
            h["upgrade_configs"] =
                json!([{"upgrade_type": "websocket"}, {"upgrade_type": "WebSocket"}])
        }),
        Rejected(
            "filter_chains[0].filters[0].typed_config.upgrade_configs[1].upgrade_type",
            "multiple upgrade configs",
        ),
    );
    add(
        "websocket and CONNECT",
        "Listener",
        hcm_listener(|h| {
            h["upgrade_configs"] =
                json!([{"upgrade_type": "websocket"}, {"upgrade_type": "CONNECT"}])
        }),
        Accepted,
    );
    let access_log = |format: &str| {
        let format = format.to_string();
        hcm_listener(move |h| {
            h["access_log"] = json!([{"name": "a", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                "log_format": {"text_format_source": {"inline_string": format}}}}])
        })
    };
    add(
        "a broken access-log format",
        "Listener",
        access_log("[%START_TIME%] %REQ(%"),
        Rejected(
            "filter_chains[0].filters[0].typed_config.access_log[0].typed_config.log_format.text_format_source.inline_string",
            "Couldn't find valid command",
        ),
    );
    add(
        "an access-log format",
        "Listener",
        access_log("[%START_TIME(%Y)%] \"%REQ(:METHOD)%\" %REQ(x):10%\n"),
        Accepted,
    );
    add(
        "a broken JSON access-log format",
        "Listener",
        hcm_listener(|h| {
            h["access_log"] = json!([{"name": "a", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                "log_format": {"json_format": {"a": {"b": "%START_TIME"}}}}}])
        }),
        Rejected(
            "filter_chains[0].filters[0].typed_config.access_log[0].typed_config.log_format.json_format*",
            "Couldn't find valid command",
        ),
    );

    // Clusters.
    let one_endpoint = json!({"cluster_name": "o", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
        "socket_address": {"address": "127.0.0.1", "port_value": 1}}}}]}]});
    add(
        "ORIGINAL_DST with a load assignment",
        "Cluster",
        cluster(
            json!({"type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED", "load_assignment": one_endpoint}),
        ),
        Rejected(
            "spec.config",
            "ORIGINAL_DST clusters must have no load assignment",
        ),
    );
    add(
        "ORIGINAL_DST",
        "Cluster",
        cluster(json!({"type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED"})),
        Accepted,
    );
    add(
        "STATIC without a load assignment",
        "Cluster",
        cluster(json!({"type": "STATIC"})),
        Accepted,
    );
    for (address, expect) in [
        (
            "127.0.0.1",
            Rejected(
                "address.socket_address.ipv4_compat",
                "Only IPv6 address '::' or valid IPv4-mapped IPv6 address can set ipv4_compat",
            ),
        ),
        (
            "::1",
            Rejected("address.socket_address.ipv4_compat", "can set ipv4_compat"),
        ),
        ("::", Accepted),
        ("::ffff:10.0.0.1", Accepted),
    ] {
        add(
            &format!("a listener on {address} with ipv4_compat"),
            "Listener",
            json!({"name": "l", "address": {"socket_address": {"address": address, "port_value": 10000, "ipv4_compat": true}},
                "filter_chains": [{"filters": [tcp_proxy()]}]}),
            expect,
        );
    }
    add(
        "an additional listener address with ipv4_compat",
        "Listener",
        json!({"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
            "additional_addresses": [{"address": {"socket_address": {"address": "127.0.0.1", "port_value": 10001, "ipv4_compat": true}}}],
            "filter_chains": [{"filters": [tcp_proxy()]}]}),
        Rejected(
            "additional_addresses[0].address.socket_address.ipv4_compat",
            "can set ipv4_compat",
        ),
    );
    add(
        "a cluster's endpoint with ipv4_compat",
        "Cluster",
        cluster(
            json!({"type": "STATIC", "load_assignment": {"cluster_name": "c", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 80, "ipv4_compat": true}}}}]}]}}),
        ),
        Accepted,
    );
    add(
        "a bind address that is a name",
        "Cluster",
        cluster(
            json!({"upstream_bind_config": {"source_address": {"address": "foo", "port_value": 0}}}),
        ),
        Rejected(
            "upstream_bind_config.source_address",
            "malformed IP address",
        ),
    );
    add(
        "a bind address",
        "Cluster",
        cluster(
            json!({"upstream_bind_config": {"source_address": {"address": "127.0.0.1", "port_value": 0}}}),
        ),
        Accepted,
    );
    add(
        "a TCP health check payload that is not hex",
        "Cluster",
        cluster(
            json!({"health_checks": [health_check(json!({"tcp_health_check": {"send": {"text": "zz"}}}))]}),
        ),
        Rejected(
            "health_checks[0].tcp_health_check.send.text",
            "invalid hex string",
        ),
    );
    add(
        "a TCP health check payload",
        "Cluster",
        cluster(
            json!({"health_checks": [health_check(json!({"tcp_health_check": {"send": {"text": "0A0b"}, "receive": [{"text": "ff"}]}}))]}),
        ),
        Accepted,
    );
    add(
        "an HTTP health check sending a body with GET",
        "Cluster",
        cluster(
            json!({"health_checks": [health_check(json!({"http_health_check": {"path": "/", "send": {"text": "00"}}}))]}),
        ),
        Rejected(
            "health_checks[0].http_health_check",
            "cannot specify a request payload",
        ),
    );
    add(
        "an HTTP health check sending a body with POST",
        "Cluster",
        cluster(
            json!({"health_checks": [health_check(json!({"http_health_check": {"path": "/", "method": "POST", "send": {"text": "00"}}}))]}),
        ),
        Accepted,
    );
    add(
        "a gRPC health check over HTTP/1",
        "Cluster",
        cluster(json!({"health_checks": [health_check(json!({"grpc_health_check": {}}))]})),
        Rejected(
            "health_checks[0].grpc_health_check",
            "must support HTTP/2 for gRPC healthchecking",
        ),
    );
    add(
        "a gRPC health check over HTTP/2",
        "Cluster",
        cluster(
            json!({"health_checks": [health_check(json!({"grpc_health_check": {}}))],
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}}}),
        ),
        Accepted,
    );

    // TLS.
    let tls_params = |params: Value| upstream_tls(json!({"tls_params": params}));
    for (params, at, words) in [
        (
            json!({"cipher_suites": ["FOO"]}),
            "cipher_suites[0]",
            "Failed to initialize cipher suites",
        ),
        (
            json!({"cipher_suites": ["TLS_AES_128_GCM_SHA256"]}),
            "cipher_suites[0]",
            "Failed to initialize cipher suites",
        ),
        (
            json!({"cipher_suites": ["ECDHE-RSA-AES128-GCM-SHA256", "BAR"]}),
            "cipher_suites[1]",
            "Failed to initialize cipher suites",
        ),
        (
            json!({"ecdh_curves": ["P-256", "secp256r1"]}),
            "ecdh_curves[1]",
            "Failed to initialize ECDH curves",
        ),
        (
            json!({"signature_algorithms": ["foo"]}),
            "signature_algorithms[0]",
            "Failed to initialize TLS signature algorithms",
        ),
    ] {
        add(
            &format!("TLS parameters {params}"),
            "Cluster",
            tls_params(params),
            Rejected(
                Box::leak(
                    format!("transport_socket.typed_config.common_tls_context.tls_params.{at}")
                        .into_boxed_str(),
                ),
                words,
            ),
        );
    }
    for name in CIPHERS {
        add(
            &format!("cipher {name}"),
            "Cluster",
            tls_params(json!({"cipher_suites": [name]})),
            Accepted,
        );
    }
    add(
        "cipher rules with operators",
        "Cluster",
        tls_params(
            json!({"cipher_suites": ["[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]", "TLS_AES_128_GCM_SHA256"]}),
        ),
        Accepted,
    );
    for name in CURVES {
        add(
            &format!("curve {name}"),
            "Cluster",
            tls_params(json!({"ecdh_curves": [name]})),
            Accepted,
        );
    }
    for name in SIGNATURE_ALGORITHMS {
        add(
            &format!("signature algorithm {name}"),
            "Cluster",
            tls_params(json!({"signature_algorithms": [name]})),
            Accepted,
        );
    }
    let cert = test_certificate()?;
    use base64::Engine as _;
    let key = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
    add(
        "a session ticket key of 10 bytes",
        "Listener",
        downstream_tls(
            &cert,
            json!({"session_ticket_keys": {"keys": [{"inline_bytes": key(10)}]}}),
        ),
        Rejected(
            "filter_chains[0].transport_socket.typed_config.session_ticket_keys.keys[0]",
            "Incorrect TLS session ticket key length",
        ),
    );
    add(
        "a session ticket key of 80 bytes",
        "Listener",
        downstream_tls(
            &cert,
            json!({"session_ticket_keys": {"keys": [{"inline_bytes": key(80)}]}}),
        ),
        Accepted,
    );
    add(
        "MUST_STAPLE without a staple",
        "Listener",
        downstream_tls(&cert, json!({"ocsp_staple_policy": "MUST_STAPLE"})),
        Rejected(
            "filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0]",
            "Required OCSP response is missing",
        ),
    );
    add(
        "STRICT_STAPLING without a staple",
        "Listener",
        downstream_tls(&cert, json!({"ocsp_staple_policy": "STRICT_STAPLING"})),
        Accepted,
    );
    let mut broken = cert.clone();
    let chain = broken["certificate_chain"]["inline_string"]
        .as_str()
        .unwrap()
        .to_string();
    broken["certificate_chain"]["inline_string"] = json!(chain.replacen("MIIBnTCC", "MIIBnTCD", 1));
    add(
        "a certificate whose DER is broken",
        "Listener",
        downstream_tls(&broken, json!({})),
        Rejected(
            "filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].certificate_chain",
            "Failed to load certificate chain",
        ),
    );
    add(
        "the test certificate",
        "Listener",
        downstream_tls(&cert, json!({})),
        Accepted,
    );
    Ok(c)
}

#[test]
fn each_rule_rejects_what_envoy_rejects_and_accepts_its_near_miss() -> Result<()> {
    let envoy = find_envoy()?;
    let bootes = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN")?;
    let dir = test_dir("semantic")?;
    let checks = checks()?;
    let cases: Vec<Case> = checks
        .iter()
        .map(|c| Case {
            kind: c.kind.to_string(),
            original: c.config.clone(),
            config: c.config.clone(),
            twin: None,
        })
        .collect();
    let targets = vec!["c".to_string()];
    let envoy_says = envoy_verdicts(&envoy, dir.path(), &cases, &targets, 2)?;
    let bootes_says = bootes_verdicts(&bootes, dir.path(), &cases, &targets)?;
    let mut wrong = Vec::new();
    let (mut rejected, mut accepted) = (0, 0);
    for (c, (e, b)) in checks.iter().zip(envoy_says.iter().zip(&bootes_says)) {
        match c.expect {
            Rejected(path, words) => {
                rejected += 1;
                // A path ending in `*` names where the error's path starts.
                let (path, prefix) = match path.strip_suffix('*') {
                    Some(p) => (p, true),
                    None => (path, false),
                };
                let path = if path.starts_with("spec.config") {
                    path.to_string()
                } else {
                    format!("spec.config.{path}")
                };
                let named = b.message.lines().any(|l| {
                    let at = l
                        .find(&format!(": {path}"))
                        .map(|i| &l[i + path.len() + 2..]);
                    at.is_some_and(|rest| prefix || rest.starts_with(": ")) && l.contains(words)
                });
                if e.accepted {
                    wrong.push(format!("{}: Envoy accepts it", c.what));
                }
                if !named {
                    wrong.push(format!(
                        "{}: Bootes was to reject it at {path} with {words:?}, says {:?}",
                        c.what, b.message
                    ));
                }
            }
            Accepted => {
                accepted += 1;
                if !e.accepted {
                    wrong.push(format!(
                        "{}: Envoy rejects the near miss: {}",
                        c.what,
                        e.message.trim()
                    ));
                }
                if !b.accepted {
                    wrong.push(format!(
                        "{}: Bootes rejects the near miss: {}",
                        c.what, b.message
                    ));
                }
            }
        }
    }
    eprintln!(
        "{rejected} configs both must reject, {accepted} both must accept; {} disagreements",
        wrong.len()
    );
    ensure!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    Ok(())
}
