//! `bootes-controller validate --envoy PATH` (issue 24, item 4) with the real
//! Envoy: what Envoy rejects and Bootes' rules do not predict becomes an
//! error of the object whose resource Envoy rejects; files a config names
//! on the Envoys' machines are stood in; without the flag nothing changes.
//! (What Envoy rejects only together, split out by `envoy_judge`, is tested
//! there: the example this test had, two listeners on one address, is now
//! Bootes' own rule.)

use anyhow::{ensure, Result};
use bootes_tests::harness::{find_bootes_bin, find_envoy, test_dir};
use serde_json::{json, Value};

fn object(kind: &str, name: &str, config: Value) -> Value {
    json!({"apiVersion": "bootes.io/v1", "kind": kind,
        "metadata": {"name": name, "namespace": "shop"}, "spec": {"config": config}})
}

fn manifests() -> Vec<Value> {
    vec![
        // Envoy knows no %FOO% command; Bootes checks the format's structure only.
        object(
            "Route",
            "r",
            json!({"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [{
                "match": {"prefix": "/"}, "route": {"cluster": "web"},
                "request_headers_to_add": [{"header": {"key": "x-a", "value": "%FOO%"}}]}]}]}),
        ),
        // Files on the Envoys' machines: certificates, a CA, a Lua source,
        // a Wasm module, an access log.
        object(
            "Cluster",
            "web",
            json!({"name": "web", "connect_timeout": "1s", "transport_socket": {"name": "tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "common_tls_context": {
                    "tls_certificates": [{"certificate_chain": {"filename": "/etc/bootes-test/tls.crt"},
                        "private_key": {"filename": "/etc/bootes-test/tls.key"}}],
                    "validation_context": {"trusted_ca": {"filename": "/etc/bootes-test/ca.crt"}}}}}}),
        ),
        object(
            "Listener",
            "http",
            json!({"name": "http",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8081}},
                "filter_chains": [{"filters": [{"name": "h", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "h",
                    "rds": {"route_config_name": "r", "config_source": {"ads": {}}},
                    "access_log": [{"name": "f", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                        "path": "/var/log/bootes-test/missing/access.log"}}],
                    "http_filters": [
                        {"name": "wasm", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                            "config": {"name": "w", "vm_config": {"runtime": "envoy.wasm.runtime.v8",
                                "code": {"local": {"filename": "/etc/bootes-test/filter.wasm"}}}}}},
                        {"name": "lua", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                            "default_source_code": {"filename": "/etc/bootes-test/filter.lua"}}},
                        {"name": "r", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}),
        ),
        // Session ticket keys and an OCSP staple (required) from files.
        object(
            "Listener",
            "tls",
            json!({"name": "tls",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8443}},
                "filter_chains": [{
                    "transport_socket": {"name": "tls", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                        "session_ticket_keys": {"keys": [{"filename": "/etc/bootes-test/ticket.key"}]},
                        "ocsp_staple_policy": "MUST_STAPLE",
                        "common_tls_context": {"tls_certificates": [{
                            "certificate_chain": {"filename": "/etc/bootes-test/tls.crt"},
                            "private_key": {"filename": "/etc/bootes-test/tls.key"},
                            "ocsp_staple": {"filename": "/etc/bootes-test/ocsp.der"}}]}}},
                    "filters": [{"name": "tcp", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                        "stat_prefix": "t", "cluster": "web"}}]}]}),
        ),
    ]
}

#[test]
fn envoy_judges_what_would_be_served_and_its_reason_goes_to_the_object() -> Result<()> {
    let envoy = find_envoy()?;
    let bin = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN")?;
    let dir = test_dir("validate-envoy")?;
    let file = dir.path().join("shop.yaml");
    let mut text = String::new();
    for doc in manifests() {
        text.push_str("---\n");
        text.push_str(&serde_json::to_string(&doc)?);
        text.push('\n');
    }
    std::fs::write(&file, text)?;

    // Without the flag: Bootes' rules alone take all of it.
    let out = std::process::Command::new(&bin)
        .args(["validate", "-f"])
        .arg(&file)
        .output()?;
    let plain = String::from_utf8(out.stdout)?;
    ensure!(out.status.success(), "{plain}");
    ensure!(!plain.contains("Envoy (--envoy)"), "{plain}");

    let out = std::process::Command::new(&bin)
        .args(["validate", "--envoy"])
        .arg(&envoy)
        .arg("-f")
        .arg(&file)
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    ensure!(!out.status.success(), "{stdout}");
    let errors: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .collect();
    let route = format!(
        "{}: Route shop/r: spec.config: Envoy (--envoy) rejects it: Not supported field in StreamInfo: FOO",
        file.display()
    );
    ensure!(errors.contains(&route.as_str()), "{stdout}");
    ensure!(errors.len() == 1, "only the route: {stdout}");
    ensure!(
        stdout.ends_with("4 objects checked, 1 errors, 0 warnings\n"),
        "{stdout}"
    );
    Ok(())
}
