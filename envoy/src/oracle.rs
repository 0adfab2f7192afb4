//! Envoy as an oracle (`validate --envoy`): the bootstrap that makes
//! `envoy --mode validate` check a group's resources the way an Envoy checks
//! them when they arrive over xDS. Pure: the caller writes the file and runs
//! Envoy.
//!
//! | resource | in the bootstrap |
//! |---|---|
//! | Listener, Cluster | a static listener, a static cluster |
//! | Route | the `route_config` of an HTTP connection manager in an internal listener of its own (`validate_clusters: false` unless set: over RDS it defaults to false) |
//! | Endpoint | the `load_assignment` of a STATIC cluster of its own (EDS needs IP addresses too) |
//! | Secret | a static secret, used by a cluster of its own when it is a certificate or a validation context, so that it is loaded |
//!
//! The bootstrap has ADS (an `ads: {}` config source is valid, as on an
//! Envoy Bootes serves) and the internal listener extension.
//!
//! **Files.** A config may name files that exist on the Envoys' machines,
//! not the controller's: certificates, CA bundles, Lua sources, access-log
//! paths. They are stood in, so the oracle never rejects a config for a
//! file it cannot see: a `filename` data source becomes inline data (the
//! stand-in certificate and key of `envoy/data/standin.pem` for
//! certificate chains, keys and CAs; empty text elsewhere), a CRL file or a
//! watched directory is left out, and a file access log writes to
//! `/dev/null`. Session ticket keys from files become 80 zero bytes, OCSP
//! staples from files are left out (and with them a policy that requires
//! one), and a Wasm filter whose code is a file is taken out of its chain.

use bootes_proto::envoy::descriptor_pool;
use bootes_proto::ResourceType;
use prost_reflect::{DynamicMessage, SerializeOptions};
use serde_json::{json, Map, Value};

/// The stand-in certificate and its key (self-signed, trusted by nothing).
const STANDIN: &str = include_str!("../data/standin.pem");

/// The ADS cluster of every oracle bootstrap.
pub const XDS_CLUSTER: &str = "bootes-oracle-xds";

fn standin(label: &str) -> String {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = STANDIN.find(&begin).expect("standin.pem has the block");
    let stop = STANDIN[start..].find(&end).expect("the block ends") + start + end.len();
    format!("{}\n", &STANDIN[start..stop])
}

/// One resource as proto3 JSON (proto field names), for the bootstrap.
pub fn to_json(ty: ResourceType, value: &[u8]) -> Result<Value, String> {
    let desc = descriptor_pool()
        .get_message_by_name(ty.message_name())
        .ok_or_else(|| format!("no message {}", ty.message_name()))?;
    let message = DynamicMessage::decode(desc, value).map_err(|e| e.to_string())?;
    message
        .serialize_with_options(
            serde_json::value::Serializer,
            &SerializeOptions::new().use_proto_field_name(true),
        )
        .map_err(|e| e.to_string())
}

/// The bootstrap that checks `resources` (type, encoded message), or the
/// first that cannot be read. `bootstrap_clusters` are clusters of the
/// Envoys' own bootstrap (`--bootstrap-clusters`): empty static clusters,
/// unless a resource is a cluster of that name.
pub fn bootstrap(
    resources: &[(ResourceType, &[u8])],
    bootstrap_clusters: &[String],
) -> Result<Value, String> {
    let mut listeners = Vec::new();
    let mut clusters = vec![xds_cluster(XDS_CLUSTER)];
    let mut secrets = Vec::new();
    for (i, (ty, value)) in resources.iter().enumerate() {
        let mut config = to_json(*ty, value)?;
        stand_in_files(&mut config, None);
        match ty {
            ResourceType::Listener => listeners.push(config),
            ResourceType::Cluster => clusters.push(config),
            ResourceType::Route => {
                if let Some(m) = config.as_object_mut() {
                    m.entry("validate_clusters").or_insert(json!(false));
                }
                listeners.push(route_host(i, config));
            }
            ResourceType::Endpoint => clusters.push(json!({
                "name": format!("bootes-oracle-endpoints-{i}"),
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": config,
            })),
            ResourceType::Secret => {
                let user = format!("bootes-oracle-secret-user-{i}");
                if let Some(user) = secret_user(&user, &config) {
                    clusters.push(user);
                }
                secrets.push(config);
            }
            // Not embedded: checked by Bootes' own rules only.
            _ => {}
        }
    }
    for name in bootstrap_clusters {
        if !clusters.iter().any(|c| c["name"] == json!(name)) {
            clusters.push(json!({"name": name, "type": "STATIC", "connect_timeout": "1s"}));
        }
    }
    Ok(json!({
        "node": {"id": "bootes-oracle", "cluster": "bootes-oracle"},
        "bootstrap_extensions": [{
            "name": "envoy.bootstrap.internal_listener",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener"}
        }],
        "dynamic_resources": {"ads_config": {
            "api_type": "GRPC",
            "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}]
        }},
        "static_resources": {"listeners": listeners, "clusters": clusters, "secrets": secrets}
    }))
}

/// Whether the oracle embeds resources of this type.
pub fn embeds(ty: ResourceType) -> bool {
    matches!(
        ty,
        ResourceType::Listener
            | ResourceType::Cluster
            | ResourceType::Route
            | ResourceType::Endpoint
            | ResourceType::Secret
    )
}

/// A STATIC cluster `name` speaking HTTP/2 (the ADS cluster of a bootstrap).
pub fn xds_cluster(name: &str) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}
            }
        },
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}}}}]}]}
    })
}

fn route_host(i: usize, route_config: Value) -> Value {
    json!({
        "name": format!("bootes-oracle-route-{i}"),
        "internal_listener": {},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "oracle",
                "route_config": route_config,
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }
        }]}]
    })
}

/// A cluster `cluster` whose TLS context loads the secret (proto3 JSON) as
/// what it is, a certificate or a validation context, as an Envoy that
/// subscribed to it over SDS would (`None`: another kind of secret).
pub fn secret_user(cluster: &str, secret: &Value) -> Option<Value> {
    let name = secret.get("name")?.as_str()?;
    let sds = json!({"name": name});
    let common = if secret.get("tls_certificate").is_some() {
        json!({"tls_certificate_sds_secret_configs": [sds]})
    } else if secret.get("validation_context").is_some() {
        json!({"validation_context_sds_secret_config": sds})
    } else {
        return None;
    };
    Some(json!({
        "name": cluster,
        "type": "STATIC",
        "connect_timeout": "1s",
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": common}}
    }))
}

/// Replaces what names files on the Envoys' machines (see the module doc).
/// `key` is the field `value` is under.
pub fn stand_in_files(value: &mut Value, key: Option<&str>) {
    match value {
        Value::Object(m) => {
            if m.contains_key("filename") && m.len() == 1 {
                *m = match key {
                    Some("certificate_chain" | "trusted_ca") => inline(standin("CERTIFICATE")),
                    Some("private_key") => inline(standin("PRIVATE KEY")),
                    // A session ticket key is 80 bytes.
                    Some("keys") => {
                        Map::from_iter([("inline_bytes".to_string(), json!(base64_zeros(80)))])
                    }
                    _ => inline(String::new()),
                };
                return;
            }
            // A staple left out may not be required.
            let staples = m
                .get("common_tls_context")
                .and_then(|c| c.get("tls_certificates"))
                .is_some_and(staple_from_file);
            if staples {
                m.remove("ocsp_staple_policy");
            }
            for field in ["crl", "ocsp_staple"] {
                if m.get(field).and_then(|c| c.get("filename")).is_some() {
                    m.remove(field);
                }
            }
            m.remove("watched_directory");
            let file_log = m.get("@type").and_then(Value::as_str).is_some_and(|t| {
                t.ends_with("envoy.extensions.access_loggers.file.v3.FileAccessLog")
            });
            if file_log {
                m.insert("path".into(), json!("/dev/null"));
            }
            for (k, v) in m.iter_mut() {
                stand_in_files(v, Some(k));
            }
        }
        Value::Array(items) => {
            // A Wasm filter whose code is a file: taken out (its code cannot
            // be run here; the other filters are still judged).
            items.retain(|v| !wasm_from_file(v));
            for v in items {
                stand_in_files(v, key);
            }
        }
        _ => {}
    }
}

fn inline(text: String) -> Map<String, Value> {
    Map::from_iter([("inline_string".to_string(), json!(text))])
}

fn base64_zeros(n: usize) -> String {
    let padding = (3 - n % 3) % 3;
    "A".repeat(n.div_ceil(3) * 4 - padding) + &"=".repeat(padding)
}

/// Whether some certificate of `certificates` has its OCSP staple in a file.
fn staple_from_file(certificates: &Value) -> bool {
    certificates.as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            c.get("ocsp_staple")
                .and_then(|o| o.get("filename"))
                .is_some()
        })
    })
}

/// Whether `filter` is an HTTP or network Wasm filter whose code is a file.
fn wasm_from_file(filter: &Value) -> bool {
    let Some(config) = filter.get("typed_config") else {
        return false;
    };
    let wasm = config
        .get("@type")
        .and_then(Value::as_str)
        .is_some_and(|t| {
            t.ends_with("extensions.filters.http.wasm.v3.Wasm")
                || t.ends_with("extensions.filters.network.wasm.v3.Wasm")
        });
    wasm && config
        .pointer("/config/vm_config/code/local/filename")
        .is_some()
}

/// [`bootstrap`], as bytes to write to a `.json` file.
pub fn bootstrap_file(
    resources: &[(ResourceType, &[u8])],
    bootstrap_clusters: &[String],
) -> Result<Vec<u8>, String> {
    serde_json::to_vec(&bootstrap(resources, bootstrap_clusters)?).map_err(|e| e.to_string())
}

/// What Envoy's `--mode validate` output says, in one line: the text after
/// "error initializing configuration '…': ", else the output's last line.
pub fn envoy_reason(output: &str) -> String {
    let line = output
        .lines()
        .find_map(|l| {
            l.split_once("error initializing configuration")
                .map(|(_, m)| m)
        })
        .map(|m| m.split_once("': ").map_or(m, |(_, m)| m).to_string())
        .or_else(|| {
            output
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    line.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_stood_in() {
        let mut v = json!({"tls_certificates": [{
            "certificate_chain": {"filename": "/etc/certs/c.pem"},
            "private_key": {"filename": "/etc/certs/k.pem"}}],
            "validation_context": {"trusted_ca": {"filename": "/etc/ca.pem"},
                "crl": {"filename": "/etc/crl.pem"}, "watched_directory": {"path": "/etc"}},
            "access_log": [{"typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": "/var/log/a.log"}}],
            "source_codes": {"a": {"filename": "/etc/a.lua"}}});
        stand_in_files(&mut v, None);
        let cert = &v["tls_certificates"][0];
        assert!(cert["certificate_chain"]["inline_string"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert["private_key"]["inline_string"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(v["validation_context"].get("crl").is_none());
        assert!(v["validation_context"].get("watched_directory").is_none());
        assert_eq!(v["access_log"][0]["typed_config"]["path"], "/dev/null");
        assert_eq!(v["source_codes"]["a"], json!({"inline_string": ""}));
    }

    #[test]
    fn tls_session_keys_staples_and_wasm_files_are_stood_in() {
        let mut v = json!({"session_ticket_keys": {"keys": [{"filename": "/k"}]},
            "ocsp_staple_policy": "MUST_STAPLE",
            "common_tls_context": {"tls_certificates": [{"ocsp_staple": {"filename": "/o"}}]},
            "http_filters": [
                {"name": "w", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                    "config": {"vm_config": {"code": {"local": {"filename": "/f.wasm"}}}}}},
                {"name": "r", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]});
        stand_in_files(&mut v, None);
        let key = v["session_ticket_keys"]["keys"][0]["inline_bytes"]
            .as_str()
            .unwrap();
        assert_eq!(key.len(), 108);
        assert!(key.ends_with("A="));
        assert!(v.get("ocsp_staple_policy").is_none());
        assert!(v["common_tls_context"]["tls_certificates"][0]
            .get("ocsp_staple")
            .is_none());
        assert_eq!(v["http_filters"].as_array().unwrap().len(), 1);
        assert_eq!(v["http_filters"][0]["name"], "r");
    }

    #[test]
    fn envoys_reason_is_found() {
        let out = "[2026][critical][main] error initializing configuration '/tmp/b.json': Only unique values for domains are permitted.\nother";
        assert_eq!(
            envoy_reason(out),
            "Only unique values for domains are permitted."
        );
    }
}
