//! Writing Bootes manifests for tests: a watched directory, and builders for
//! the documents (the shape of the original Bootes project, docs/DESIGN.md §2).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

use super::test_dir;

/// A directory the controller watches. Files are written atomically (written
/// outside it, then renamed in), so the controller never reads half a file.
#[derive(Debug)]
pub struct ManifestDir {
    dir: PathBuf,
    staging: PathBuf,
    _root: tempfile::TempDir,
}

impl ManifestDir {
    pub fn new() -> Result<Self> {
        let root = test_dir("manifests")?;
        let dir = root.path().join("manifests");
        let staging = root.path().join("staging");
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(&staging)?;
        Ok(Self {
            dir,
            staging,
            _root: root,
        })
    }

    /// The directory to give `--manifests`.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Creates or replaces `file` (relative to the directory).
    pub fn write(&self, file: &str, content: &str) -> Result<()> {
        let target = self.dir.join(file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = self.staging.join(file.replace('/', "_"));
        std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &target)
            .with_context(|| format!("renaming into {}", target.display()))
    }

    /// Writes several documents as one YAML stream.
    pub fn write_docs(&self, file: &str, docs: &[Value]) -> Result<()> {
        self.write(file, &yaml_stream(docs))
    }

    /// Deletes `file`.
    pub fn remove(&self, file: &str) -> Result<()> {
        let target = self.dir.join(file);
        std::fs::remove_file(&target).with_context(|| format!("removing {}", target.display()))
    }
}

/// Documents as one YAML stream (`---` between them).
pub fn yaml_stream(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml::to_string(d).expect("JSON values serialize as YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

fn labels(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect::<Map<_, _>>(),
    )
}

fn object(
    kind: &str,
    namespace: &str,
    name: &str,
    selector: &[(&str, &str)],
    config: Value,
) -> Value {
    let mut spec = Map::new();
    if !selector.is_empty() {
        spec.insert(
            "workloadSelector".into(),
            json!({"labels": labels(selector)}),
        );
    }
    spec.insert("config".into(), config);
    json!({
        "apiVersion": "bootes.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": Value::Object(spec),
    })
}

/// A `v1 Pod` standing for an Envoy with node ID `<name>.<namespace>`.
pub fn pod(namespace: &str, name: &str, pod_labels: &[(&str, &str)]) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(pod_labels)},
    })
}

/// A Listener on 127.0.0.1:`port` with an HttpConnectionManager whose routes
/// come from RDS (`route_config_name`) over ADS. An empty `selector` means
/// every pod of the namespace.
pub fn listener_http(
    namespace: &str,
    object_name: &str,
    listener_name: &str,
    port: u16,
    route_config_name: &str,
    selector: &[(&str, &str)],
) -> Value {
    object(
        "Listener",
        namespace,
        object_name,
        selector,
        json!({
            "name": listener_name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": listener_name,
                    "codec_type": "AUTO",
                    "rds": {
                        "route_config_name": route_config_name,
                        "config_source": {"ads": {}, "resource_api_version": "V3"}
                    },
                    "http_filters": [{
                        "name": "envoy.filters.http.router",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                    }]
                }
            }]}]
        }),
    )
}

/// One virtual host of a [`route`]: domains, and (path prefix → cluster) in order.
#[derive(Clone, Debug)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    pub routes: Vec<(String, String)>,
}

impl VirtualHost {
    pub fn new(name: &str, domains: &[&str], routes: &[(&str, &str)]) -> Self {
        Self {
            name: name.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            routes: routes
                .iter()
                .map(|(p, c)| (p.to_string(), c.to_string()))
                .collect(),
        }
    }
}

/// A Route (RouteConfiguration `route_config_name`).
pub fn route(
    namespace: &str,
    object_name: &str,
    route_config_name: &str,
    virtual_hosts: &[VirtualHost],
    selector: &[(&str, &str)],
) -> Value {
    let vhosts: Vec<Value> = virtual_hosts
        .iter()
        .map(|vh| {
            let routes: Vec<Value> = vh
                .routes
                .iter()
                .map(|(prefix, cluster)| {
                    json!({"match": {"prefix": prefix}, "route": {"cluster": cluster}})
                })
                .collect();
            json!({"name": vh.name, "domains": vh.domains, "routes": routes})
        })
        .collect();
    object(
        "Route",
        namespace,
        object_name,
        selector,
        json!({"name": route_config_name, "virtual_hosts": vhosts}),
    )
}

/// An EDS Cluster (`eds_config: {ads: {}}`), as in the original's README.
pub fn cluster_eds(
    namespace: &str,
    object_name: &str,
    cluster_name: &str,
    selector: &[(&str, &str)],
) -> Value {
    object(
        "Cluster",
        namespace,
        object_name,
        selector,
        json!({
            "name": cluster_name,
            "connect_timeout": "1s",
            "type": "EDS",
            "lb_policy": "ROUND_ROBIN",
            "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}
        }),
    )
}

/// The routing most end-to-end tests start from, for every pod of
/// `namespace`: Listener `listener-1` (xDS name `listener_1`) on
/// 127.0.0.1:`port` sends every path through Route `route-1` to the EDS
/// Cluster `cluster-a`, whose endpoints are [`endpoint_a`] (kept apart, so
/// that a test can move them).
pub fn route_all_to_cluster_a(namespace: &str, port: u16) -> Vec<Value> {
    vec![
        listener_http(namespace, "listener-1", "listener_1", port, "route-1", &[]),
        route(
            namespace,
            "route-1",
            "route-1",
            &[VirtualHost::new("all", &["*"], &[("/", "cluster-a")])],
            &[],
        ),
        cluster_eds(namespace, "cluster-a", "cluster-a", &[]),
    ]
}

/// The endpoints of [`route_all_to_cluster_a`]'s `cluster-a`: Endpoint
/// `endpoint-a` listing `addrs`.
pub fn endpoint_a(namespace: &str, addrs: &[SocketAddr]) -> Value {
    endpoint(namespace, "endpoint-a", "cluster-a", addrs, &[])
}

/// An Endpoint (ClusterLoadAssignment for `cluster_name`) listing `addrs`.
pub fn endpoint(
    namespace: &str,
    object_name: &str,
    cluster_name: &str,
    addrs: &[SocketAddr],
    selector: &[(&str, &str)],
) -> Value {
    let lb_endpoints: Vec<Value> = addrs
        .iter()
        .map(|a| {
            json!({"endpoint": {"address": {"socket_address": {
                "address": a.ip().to_string(), "port_value": a.port()}}}})
        })
        .collect();
    object(
        "Endpoint",
        namespace,
        object_name,
        selector,
        json!({"cluster_name": cluster_name, "endpoints": [{"lb_endpoints": lb_endpoints}]}),
    )
}

/// An Endpoint for `cluster_name` whose endpoints come from the Service
/// `service` (its EndpointSlices), on its port `port` (a name or a number).
pub fn endpoint_for_service(
    namespace: &str,
    object_name: &str,
    cluster_name: &str,
    service: &str,
    port: Value,
    selector: &[(&str, &str)],
) -> Value {
    let mut doc = object(
        "Endpoint",
        namespace,
        object_name,
        selector,
        json!({"cluster_name": cluster_name}),
    );
    doc["spec"]["service"] = json!({"name": service, "port": port});
    doc
}

/// One endpoint (pod) of an EndpointSlice and its conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceEndpoint {
    Ready(std::net::IpAddr),
    /// Starting, or failing its readiness probe.
    NotReady(std::net::IpAddr),
    /// Shutting down but still serving.
    Terminating(std::net::IpAddr),
}

/// A `discovery.k8s.io/v1` EndpointSlice of Service `service`, with one
/// port `port_name`/`port` (as the EndpointSlice controller writes them).
/// The address type follows the first endpoint (IPv4 when there is none).
pub fn endpoint_slice(
    namespace: &str,
    name: &str,
    service: &str,
    port_name: &str,
    port: u16,
    endpoints: &[SliceEndpoint],
) -> Value {
    let endpoints: Vec<(std::net::IpAddr, Value)> = endpoints
        .iter()
        .map(|e| match *e {
            SliceEndpoint::Ready(ip) => (
                ip,
                json!({"ready": true, "serving": true, "terminating": false}),
            ),
            SliceEndpoint::NotReady(ip) => (
                ip,
                json!({"ready": false, "serving": false, "terminating": false}),
            ),
            SliceEndpoint::Terminating(ip) => (
                ip,
                json!({"ready": false, "serving": true, "terminating": true}),
            ),
        })
        .collect();
    let address_type = match endpoints.first() {
        Some((std::net::IpAddr::V6(_), _)) => "IPv6",
        _ => "IPv4",
    };
    let endpoints: Vec<Value> = endpoints
        .into_iter()
        .map(|(ip, conditions)| json!({"addresses": [ip.to_string()], "conditions": conditions}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "bootes-tests",
            },
        },
        "addressType": address_type,
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}
