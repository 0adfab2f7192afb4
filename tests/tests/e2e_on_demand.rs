//! End to end, on demand (issue 23, item 5): a real Envoy 1.40 on delta
//! ADS gets, when a request needs it and not before,
//!
//! * a cluster through on-demand CDS (`envoy.filters.http.on_demand` with
//!   `odcds`: a named CDS subscription, no wildcard CDS at all), and never
//!   the clusters it did not ask for;
//! * a virtual host through VHDS: the route configuration names a `vhds`
//!   source, and a request for an unknown `Host` makes Envoy subscribe to
//!   `<route configuration>/<host>`, the name Envoy's VHDS convention gives
//!   a virtual host (Bootes serves the VirtualHost object of that name).
//!
//! Real HTTP goes through Envoy to a test upstream in both.
//!
//! Needs `cargo build --workspace --bins` first, etcd and Envoy.

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};
use bootes_proto::ResourceType;
use bootes_tests::harness::{
    cluster_eds, dynamic_route_configs, endpoint, eventually, expect_routed, free_port,
    listener_http, pod, route, Envoy, EnvoyOptions, ManifestDir, Stack, Upstream, VirtualHost,
    XdsApi,
};
use serde_json::{json, Value};

const NS: &str = "demo";

/// A Bootes object of `kind` for every pod of the namespace.
fn object(kind: &str, name: &str, config: Value) -> Value {
    json!({
        "apiVersion": "bootes.io/v1", "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": {"config": config},
    })
}

/// A listener whose HTTP filters are `on_demand` (with `config`) and the
/// router, routes from RDS `routes`.
fn on_demand_listener(port: u16, config: Value) -> Value {
    let mut listener = listener_http(NS, "listener", "listener", port, "routes", &[]);
    listener["spec"]["config"]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"] = json!([
        {"name": "envoy.filters.http.on_demand", "typed_config": config},
        {"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    ]);
    listener
}

fn names(configs: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    configs.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_arrives_on_demand_and_no_other() -> Result<()> {
    let upstream = Upstream::start("upstream-a").await?;
    let port = free_port();
    let m = ManifestDir::new()?;
    m.write_docs(
        "all.yaml",
        &[
            pod(NS, "envoy-0", &[]),
            on_demand_listener(
                port,
                json!({
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.on_demand.v3.OnDemand",
                    "odcds": {"source": {"ads": {}, "resource_api_version": "V3"}, "timeout": "10s"}
                }),
            ),
            route(
                NS,
                "routes",
                "routes",
                &[VirtualHost::new("all", &["*"], &[("/", "cluster-a")])],
                &[],
            ),
            cluster_eds(NS, "cluster-a", "cluster-a", &[]),
            endpoint(NS, "endpoint-a", "cluster-a", &[upstream.addr()], &[]),
            // Given to the node, never needed by a request.
            cluster_eds(NS, "cluster-b", "cluster-b", &[]),
        ],
    )?;
    let stack = Stack::start(&m, 1).await?;
    let mut options = EnvoyOptions::new(&format!("envoy-0.{NS}"), &stack.xds_addrs());
    options.xds_api = XdsApi::AdsDelta;
    // Listeners over delta ADS and no CDS subscription: every cluster
    // comes on demand.
    let mut dynamic = bootes_tests::harness::envoy_bootstrap(&options)["dynamic_resources"].clone();
    dynamic
        .as_object_mut()
        .context("dynamic_resources")?
        .remove("cds_config");
    options
        .bootstrap_extra
        .insert("dynamic_resources".into(), dynamic);
    let envoy = Envoy::start_with(options).await?;
    envoy.wait_for_route("routes").await?;
    ensure!(
        !envoy.cluster_names().await?.contains("cluster-a"),
        "cluster-a before any request needed it"
    );

    expect_routed(port, "example.com", "/", "upstream-a").await?;
    let clusters = envoy.cluster_names().await?;
    ensure!(clusters.contains("cluster-a"), "clusters: {clusters:?}");
    ensure!(
        !clusters.contains("cluster-b"),
        "cluster-b reached Envoy without being asked for: {clusters:?}"
    );
    // Envoy drops clusters it did not ask for, so ask the server what it
    // sent: the xds-server's record of what the node ACKed holds one
    // cluster (cluster-a, which Envoy has), not both.
    let node = format!("envoy-0.{NS}");
    let acked = eventually("the xds-server records the node's clusters", || async {
        let records = stack.etcd.node_status(&node).await?;
        let acked: Vec<String> = records
            .iter()
            .flat_map(|(_, s)| &s.types)
            .filter(|t| t.type_url == ResourceType::Cluster.type_url())
            .flat_map(|t| t.acked_resource_versions.clone())
            .collect();
        ensure!(!acked.is_empty(), "no CDS record yet: {records:?}");
        Ok(acked)
    })
    .await?;
    ensure!(
        acked.len() == 1,
        "the node holds {} clusters ({acked:?}); only cluster-a was asked for",
        acked.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_host_arrives_on_demand_over_vhds_and_no_other() -> Result<()> {
    let a = Upstream::start("upstream-a").await?;
    let b = Upstream::start("upstream-b").await?;
    let port = free_port();
    let m = ManifestDir::new()?;
    let vhost = |host: &str, cluster: &str| {
        object(
            "VirtualHost",
            &host.replace('.', "-"),
            json!({"name": format!("routes/{host}"), "domains": [host],
                   "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}),
        )
    };
    m.write_docs(
        "all.yaml",
        &[
            pod(NS, "envoy-0", &[]),
            on_demand_listener(
                port,
                json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.on_demand.v3.OnDemand"}),
            ),
            // No virtual host of its own: they come from VHDS.
            object(
                "Route",
                "routes",
                json!({"name": "routes", "vhds": {"config_source": {
                    "api_config_source": {
                        "api_type": "DELTA_GRPC", "transport_api_version": "V3",
                        "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]
                    },
                    "resource_api_version": "V3"
                }}}),
            ),
            vhost("a.example", "cluster-a"),
            vhost("b.example", "cluster-b"),
            cluster_eds(NS, "cluster-a", "cluster-a", &[]),
            endpoint(NS, "endpoint-a", "cluster-a", &[a.addr()], &[]),
            cluster_eds(NS, "cluster-b", "cluster-b", &[]),
            endpoint(NS, "endpoint-b", "cluster-b", &[b.addr()], &[]),
        ],
    )?;
    let stack = Stack::start(&m, 1).await?;
    let mut options = EnvoyOptions::new(&format!("envoy-0.{NS}"), &stack.xds_addrs());
    options.xds_api = XdsApi::AdsDelta;
    let envoy = Envoy::start_with(options).await?;
    envoy.wait_for_route("routes").await?;
    envoy.wait_for_cluster("cluster-a").await?;

    let domains = || async {
        let dump = envoy.config_dump().await?;
        let routes = dynamic_route_configs(&dump);
        let config = routes.get("routes").context("no route config `routes`")?;
        Ok::<_, anyhow::Error>(names(
            config["virtual_hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|vh| vh["domains"].as_array().cloned().unwrap_or_default())
                .filter_map(|d| d.as_str().map(str::to_owned)),
        ))
    };
    let before = domains().await?;
    ensure!(
        before.is_empty(),
        "virtual hosts before any request: {before:?}"
    );

    expect_routed(port, "a.example", "/", "upstream-a").await?;
    let after = domains().await?;
    ensure!(
        after == names(["a.example".to_string()]),
        "virtual hosts after a request for a.example: {after:?}"
    );
    Ok(())
}
