//! A real Envoy connected by ADS to one or more xds-server replicas.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::process::Command;

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::{json, Value};

use super::{eventually, find_envoy, http_get, test_dir, ChildProcess, HttpResponse};

const CLUSTERS_DUMP: &str = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump";
const LISTENERS_DUMP: &str = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump";
const ROUTES_DUMP: &str = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump";
const ENDPOINTS_DUMP: &str = "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump";

/// How Envoy talks xDS to the xds-servers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdsApi {
    /// Aggregated, state of the world (`api_type: GRPC` in `ads_config`).
    #[default]
    Ads,
    /// Aggregated, incremental (`api_type: DELTA_GRPC`).
    AdsDelta,
    /// One gRPC service per type (CDS, LDS, … through `api_config_source`),
    /// state of the world. Objects must then use `api_config_source` too.
    PerType,
    /// One gRPC service per type, incremental.
    PerTypeDelta,
}

impl XdsApi {
    /// The config source clusters/listeners should name for EDS/RDS.
    pub fn config_source(self) -> Value {
        match self {
            XdsApi::Ads | XdsApi::AdsDelta => json!({"ads": {}, "resource_api_version": "V3"}),
            XdsApi::PerType => per_type_source("GRPC"),
            XdsApi::PerTypeDelta => per_type_source("DELTA_GRPC"),
        }
    }
}

fn per_type_source(api_type: &str) -> Value {
    json!({
        "api_config_source": {
            "api_type": api_type,
            "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]
        },
        "resource_api_version": "V3"
    })
}

/// How an [`Envoy`] is started.
#[derive(Clone, Debug)]
pub struct EnvoyOptions {
    /// `node.id`: `<pod-name>.<namespace>` for Bootes.
    pub node_id: String,
    /// `node.cluster`.
    pub node_cluster: String,
    /// Every xds-server replica, listed in the static `xds` cluster (Envoy
    /// moves to another one when its stream breaks).
    pub xds_servers: Vec<SocketAddr>,
    /// `--log-level`.
    pub log_level: String,
    pub xds_api: XdsApi,
    /// Top-level bootstrap fields added as they are (e.g. `layered_runtime`).
    pub bootstrap_extra: serde_json::Map<String, Value>,
    /// Connect to the xds-servers over TLS (server name `localhost`),
    /// presenting this client certificate.
    pub xds_tls: Option<XdsTls>,
}

/// PEM files for Envoy's TLS connection to the xds-servers.
#[derive(Clone, Debug)]
pub struct XdsTls {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl EnvoyOptions {
    pub fn new(node_id: &str, xds_servers: &[SocketAddr]) -> Self {
        Self {
            node_id: node_id.to_string(),
            node_cluster: node_id
                .split_once('.')
                .map(|(pod, _)| pod)
                .unwrap_or(node_id)
                .to_string(),
            xds_servers: xds_servers.to_vec(),
            log_level: std::env::var("BOOTES_ENVOY_LOG_LEVEL").unwrap_or_else(|_| "info".into()),
            xds_api: XdsApi::default(),
            bootstrap_extra: serde_json::Map::new(),
            xds_tls: None,
        }
    }
}

/// The bootstrap: node, admin on an ephemeral loopback port, ADS for LDS and
/// CDS through the static HTTP/2 cluster `xds`.
pub fn bootstrap(options: &EnvoyOptions) -> Value {
    let endpoints: Vec<Value> = options
        .xds_servers
        .iter()
        .map(|a| {
            json!({"endpoint": {"address": {"socket_address": {
                "address": a.ip().to_string(), "port_value": a.port()}}}})
        })
        .collect();
    let dynamic_resources = match options.xds_api {
        XdsApi::Ads | XdsApi::AdsDelta => json!({
            "ads_config": {
                "api_type": if options.xds_api == XdsApi::Ads { "GRPC" } else { "DELTA_GRPC" },
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {
                    "cluster_name": "xds",
                    // Reconnect quickly after the stream breaks (default: 0.5s base, 30s max).
                    "retry_policy": {"retry_back_off": {"base_interval": "0.1s", "max_interval": "1s"}}
                }}]
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"}
        }),
        XdsApi::PerType | XdsApi::PerTypeDelta => json!({
            "cds_config": options.xds_api.config_source(),
            "lds_config": options.xds_api.config_source()
        }),
    };
    let mut bootstrap = json!({
        "node": {"id": options.node_id, "cluster": options.node_cluster},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": dynamic_resources,
        "static_resources": {"clusters": [{
            "name": "xds",
            "type": "STATIC",
            "connect_timeout": "0.5s",
            "lb_policy": "ROUND_ROBIN",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}
                }
            },
            "load_assignment": {"cluster_name": "xds", "endpoints": [{"lb_endpoints": endpoints}]}
        }]}
    });
    if let Some(tls) = &options.xds_tls {
        bootstrap["static_resources"]["clusters"][0]["transport_socket"] = json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": "localhost",
                "common_tls_context": {
                    "alpn_protocols": ["h2"],
                    "tls_certificates": [{
                        "certificate_chain": {"filename": tls.cert},
                        "private_key": {"filename": tls.key}
                    }],
                    "validation_context": {
                        "trusted_ca": {"filename": tls.ca},
                        "match_typed_subject_alt_names": [
                            {"san_type": "DNS", "matcher": {"exact": "localhost"}}
                        ]
                    }
                }
            }
        });
    }
    if let Some(map) = bootstrap.as_object_mut() {
        map.extend(options.bootstrap_extra.clone());
    }
    bootstrap
}

/// A random `--base-id`, so parallel Envoys never share one.
fn random_base_id() -> u32 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    (h.finish() % 1_000_000_000) as u32 + 1
}

/// A running Envoy; killed when dropped.
#[derive(Debug)]
pub struct Envoy {
    process: ChildProcess,
    admin: SocketAddr,
    node_id: String,
    dir: tempfile::TempDir,
}

impl Envoy {
    /// Starts Envoy with node ID `node_id` and the given xds-server replicas,
    /// and waits until its admin interface answers (not until it has any
    /// configuration: use the `wait_for_*` helpers for that).
    pub async fn start(node_id: &str, xds_servers: &[SocketAddr]) -> Result<Self> {
        Self::start_with(EnvoyOptions::new(node_id, xds_servers)).await
    }

    pub async fn start_with(options: EnvoyOptions) -> Result<Self> {
        let bin = find_envoy()?;
        let dir = test_dir(&format!("envoy-{}", options.node_id))?;
        let bootstrap_path = dir.path().join("bootstrap.json");
        let admin_path = dir.path().join("admin-address");
        std::fs::write(
            &bootstrap_path,
            serde_json::to_vec_pretty(&bootstrap(&options))?,
        )
        .context("writing the Envoy bootstrap")?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--config-path")
            .arg(&bootstrap_path)
            .arg("--admin-address-path")
            .arg(&admin_path)
            .arg("--disable-hot-restart")
            .arg("--concurrency")
            .arg("1")
            .arg("--base-id")
            .arg(random_base_id().to_string())
            .arg("--log-level")
            .arg(&options.log_level)
            .arg("--drain-time-s")
            .arg("1");
        let mut process =
            ChildProcess::spawn(&format!("envoy-{}", options.node_id), &mut cmd, dir.path())?;
        let admin = eventually(
            &format!(
                "Envoy {} writes its admin address and answers on it",
                options.node_id
            ),
            || {
                let running = process.check_running();
                let admin_path = admin_path.clone();
                async move {
                    running?;
                    let text = std::fs::read_to_string(&admin_path)
                        .context("admin address file not written yet")?;
                    let admin: SocketAddr = text
                        .trim()
                        .parse()
                        .with_context(|| format!("admin address {text:?}"))?;
                    let r = http_get(admin, "127.0.0.1", "/server_info").await?;
                    if r.status != 200 {
                        bail!("/server_info: {}", r.status);
                    }
                    Ok(admin)
                }
            },
        )
        .await
        .with_context(|| format!("Envoy {} did not start", options.node_id))?;
        Ok(Self {
            process,
            admin,
            node_id: options.node_id,
            dir,
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn process(&mut self) -> &mut ChildProcess {
        &mut self.process
    }

    /// `GET path` on the admin interface.
    pub async fn admin_get(&self, path: &str) -> Result<HttpResponse> {
        let r = http_get(self.admin, "127.0.0.1", path).await?;
        if r.status != 200 {
            bail!("Envoy admin {path}: {} {}", r.status, r.text());
        }
        Ok(r)
    }

    /// `/config_dump?include_eds` as JSON.
    pub async fn config_dump(&self) -> Result<Value> {
        let r = self.admin_get("/config_dump?include_eds").await?;
        serde_json::from_str(&r.body).context("config_dump is not JSON")
    }

    /// Names of the active dynamic listeners.
    pub async fn listener_names(&self) -> Result<BTreeSet<String>> {
        Ok(dynamic_listeners(&self.config_dump().await?)
            .into_keys()
            .collect())
    }

    /// Names of the active dynamic clusters.
    pub async fn cluster_names(&self) -> Result<BTreeSet<String>> {
        Ok(dynamic_clusters(&self.config_dump().await?)
            .into_keys()
            .collect())
    }

    /// Names of the dynamic route configurations.
    pub async fn route_config_names(&self) -> Result<BTreeSet<String>> {
        Ok(dynamic_route_configs(&self.config_dump().await?)
            .into_keys()
            .collect())
    }

    /// Waits until the listener `name` is active; returns its config.
    pub async fn wait_for_listener(&self, name: &str) -> Result<Value> {
        eventually(
            &format!("Envoy {} has listener {name:?}", self.node_id),
            || async {
                let dump = self.config_dump().await?;
                dynamic_listeners(&dump).remove(name).ok_or_else(|| {
                    anyhow!("active listeners: {:?}", dynamic_listeners(&dump).keys())
                })
            },
        )
        .await
    }

    /// Waits until the cluster `name` is active; returns its config.
    pub async fn wait_for_cluster(&self, name: &str) -> Result<Value> {
        eventually(
            &format!("Envoy {} has cluster {name:?}", self.node_id),
            || async {
                let dump = self.config_dump().await?;
                dynamic_clusters(&dump)
                    .remove(name)
                    .ok_or_else(|| anyhow!("active clusters: {:?}", dynamic_clusters(&dump).keys()))
            },
        )
        .await
    }

    /// Waits until the route configuration `name` is present; returns it.
    pub async fn wait_for_route(&self, name: &str) -> Result<Value> {
        eventually(
            &format!("Envoy {} has route config {name:?}", self.node_id),
            || async {
                let dump = self.config_dump().await?;
                dynamic_route_configs(&dump).remove(name).ok_or_else(|| {
                    anyhow!("route configs: {:?}", dynamic_route_configs(&dump).keys())
                })
            },
        )
        .await
    }

    /// The endpoint addresses Envoy has for the EDS cluster `cluster`.
    pub async fn endpoint_addrs(&self, cluster: &str) -> Result<Vec<SocketAddr>> {
        let dump = self.config_dump().await?;
        let cla = dynamic_endpoints(&dump)
            .remove(cluster)
            .ok_or_else(|| anyhow!("no endpoints for cluster {cluster:?}"))?;
        let mut out = Vec::new();
        for locality in cla
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for lb in locality
                .get("lb_endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let sa = &lb["endpoint"]["address"]["socket_address"];
                if let (Some(ip), Some(port)) = (sa["address"].as_str(), sa["port_value"].as_u64())
                {
                    out.push(format!("{ip}:{port}").parse()?);
                }
            }
        }
        Ok(out)
    }

    /// The value of the counter or gauge `name` (exact name, from `/stats`).
    pub async fn stat(&self, name: &str) -> Result<u64> {
        // An anchored regex for exactly `name`, percent-encoded for the query.
        let regex = format!("^{}$", name.replace('.', "\\."));
        let filter: String = regex
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let r = self.admin_get(&format!("/stats?filter={filter}")).await?;
        parse_stat(&r.body, name).ok_or_else(|| anyhow!("no stat {name:?} in: {}", r.text()))
    }

    /// Waits until Envoy holds exactly one connection to the `xds` cluster
    /// and returns that replica's address.
    pub async fn connected_xds_server(&self) -> Result<SocketAddr> {
        eventually(
            &format!(
                "Envoy {} has exactly one xds-server connection",
                self.node_id
            ),
            || async {
                let hosts = self.connected_xds_servers().await?;
                ensure!(hosts.len() == 1, "connected to {hosts:?}");
                Ok(hosts[0])
            },
        )
        .await
    }

    /// Addresses of the `xds` cluster's hosts that Envoy has an open
    /// connection to (from `/clusters`): the replica serving its ADS stream.
    pub async fn connected_xds_servers(&self) -> Result<Vec<SocketAddr>> {
        let r = self.admin_get("/clusters").await?;
        Ok(connected_hosts(&r.body, "xds"))
    }
}

/// Lines of `/clusters` look like `xds::127.0.0.1:1234::cx_active::1`.
fn connected_hosts(clusters: &str, cluster: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in clusters.lines() {
        let mut parts = line.split("::");
        let (Some(c), Some(host), Some(stat), Some(value)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if c == cluster && stat == "cx_active" && value.trim().parse::<u64>().is_ok_and(|n| n > 0) {
            if let Ok(addr) = host.parse() {
                out.push(addr);
            }
        }
    }
    out
}

/// `name: value` lines of `/stats`.
fn parse_stat(stats: &str, name: &str) -> Option<u64> {
    stats.lines().find_map(|line| {
        let (n, v) = line.split_once(": ")?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

fn dump_section<'a>(dump: &'a Value, type_url: &str) -> Option<&'a Value> {
    dump.get("configs")?
        .as_array()?
        .iter()
        .find(|c| c.get("@type").and_then(Value::as_str) == Some(type_url))
}

fn array<'a>(v: Option<&'a Value>, field: &str) -> impl Iterator<Item = &'a Value> {
    v.and_then(|v| v.get(field))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Active dynamic listeners by name (from a config dump).
pub fn dynamic_listeners(dump: &Value) -> BTreeMap<String, Value> {
    array(dump_section(dump, LISTENERS_DUMP), "dynamic_listeners")
        .filter_map(|l| {
            let listener = l.get("active_state")?.get("listener")?;
            Some((l.get("name")?.as_str()?.to_string(), listener.clone()))
        })
        .collect()
}

/// Active dynamic clusters by name.
pub fn dynamic_clusters(dump: &Value) -> BTreeMap<String, Value> {
    array(dump_section(dump, CLUSTERS_DUMP), "dynamic_active_clusters")
        .filter_map(|c| {
            let cluster = c.get("cluster")?;
            Some((cluster.get("name")?.as_str()?.to_string(), cluster.clone()))
        })
        .collect()
}

/// Dynamic route configurations by name.
pub fn dynamic_route_configs(dump: &Value) -> BTreeMap<String, Value> {
    array(dump_section(dump, ROUTES_DUMP), "dynamic_route_configs")
        .filter_map(|r| {
            let rc = r.get("route_config")?;
            Some((rc.get("name")?.as_str()?.to_string(), rc.clone()))
        })
        .collect()
}

/// Dynamic cluster load assignments by cluster name.
pub fn dynamic_endpoints(dump: &Value) -> BTreeMap<String, Value> {
    array(
        dump_section(dump, ENDPOINTS_DUMP),
        "dynamic_endpoint_configs",
    )
    .filter_map(|e| {
        let cla = e.get("endpoint_config")?;
        Some((cla.get("cluster_name")?.as_str()?.to_string(), cla.clone()))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connected_hosts() {
        let text = "xds::observability_name::xds\n\
                    xds::127.0.0.1:1000::cx_active::0\n\
                    xds::127.0.0.1:2000::cx_active::1\n\
                    other::127.0.0.1:3000::cx_active::4\n";
        assert_eq!(
            connected_hosts(text, "xds"),
            vec!["127.0.0.1:2000".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn parses_stats() {
        let text =
            "cluster_manager.cds.update_success: 3\ncluster_manager.cds.update_success_x: 9\n";
        assert_eq!(
            parse_stat(text, "cluster_manager.cds.update_success"),
            Some(3)
        );
        assert_eq!(parse_stat(text, "missing"), None);
    }

    #[test]
    fn bootstrap_lists_every_replica() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let v = bootstrap(&EnvoyOptions::new("envoy-0.demo", &[a, b]));
        assert_eq!(v["node"]["id"], "envoy-0.demo");
        assert_eq!(v["node"]["cluster"], "envoy-0");
        let eps = &v["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
            ["lb_endpoints"];
        assert_eq!(eps.as_array().unwrap().len(), 2);
    }
}
