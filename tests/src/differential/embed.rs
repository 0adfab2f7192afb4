//! Puts one resource into an Envoy bootstrap so that `envoy --mode validate`
//! checks it the way an Envoy checks it when it arrives over xDS.
//!
//! | kind | embedding |
//! |---|---|
//! | Listener | `static_resources.listeners` (a static listener goes through the listener manager as an LDS one does) |
//! | Cluster | `static_resources.clusters` |
//! | Route | `route_config` of an HttpConnectionManager in a static listener, with `validate_clusters: false` unless the route config sets it: an inline route config defaults to `true`, one received over RDS to `false` |
//! | Endpoint | `load_assignment` of a `STATIC` cluster (EDS delivers it to the cluster the same way; both need IP addresses) |
//! | Secret | `static_resources.secrets`, used by a cluster's `UpstreamTlsContext` when it is a TLS certificate or a validation context (so the certificate and key are loaded as an SDS update would) |
//!
//! Every bootstrap has ADS (so `ads: {}` config sources are valid, as on an
//! Envoy served by Bootes), the internal listener extension, and `STATIC`
//! clusters named like the clusters the corpus routes to (`targets`), as an
//! Envoy would have them from CDS.

use bootes_envoy::oracle::{secret_user, xds_cluster};
use serde_json::{json, Value};

/// The ADS cluster of every bootstrap (no corpus config uses this name).
pub const XDS_CLUSTER: &str = "bootes-differential-xds";
const EDS_HOST_CLUSTER: &str = "bootes-differential-endpoints";
const SECRET_USER_CLUSTER: &str = "bootes-differential-secret-user";
const ROUTE_HOST_LISTENER: &str = "bootes-differential-route-host";

/// The bootstrap that validates `config`, a resource of `kind` made from
/// `original`; `targets` are the cluster names routes may refer to.
pub fn bootstrap(kind: &str, original: &Value, config: &Value, targets: &[String]) -> Value {
    let mut clusters = vec![xds_cluster(XDS_CLUSTER)];
    let mut listeners = Vec::new();
    let mut secrets = Vec::new();
    match kind {
        "Listener" => {
            listeners.push(config.clone());
            clusters.extend(targets.iter().map(|t| empty_cluster(t)));
        }
        "Cluster" => clusters.push(config.clone()),
        "Route" => {
            let mut route_config = config.clone();
            if let Some(m) = route_config.as_object_mut() {
                m.entry("validate_clusters").or_insert(json!(false));
            }
            listeners.push(route_host(route_config));
            clusters.extend(targets.iter().map(|t| empty_cluster(t)));
        }
        "Endpoint" => clusters.push(json!({
            "name": EDS_HOST_CLUSTER,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": config,
        })),
        "Secret" => {
            secrets.push(config.clone());
            if let Some(user) = secret_user(SECRET_USER_CLUSTER, original) {
                clusters.push(user);
            }
        }
        other => panic!("no embedding for kind {other}"),
    }
    json!({
        "node": {"id": "differential.test", "cluster": "differential"},
        "bootstrap_extensions": [{
            "name": "envoy.bootstrap.internal_listener",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener"}
        }],
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}]
            }
        },
        "static_resources": {
            "listeners": listeners,
            "clusters": clusters,
            "secrets": secrets,
        }
    })
}

fn empty_cluster(name: &str) -> Value {
    json!({"name": name, "type": "STATIC", "connect_timeout": "1s"})
}

fn route_host(route_config: Value) -> Value {
    json!({
        "name": ROUTE_HOST_LISTENER,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "differential",
                "route_config": route_config,
                "http_filters": [
                    {"name": "envoy.filters.http.cors", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
                    {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
                ]
            }
        }]}]
    })
}
