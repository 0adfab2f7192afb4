//! The xDS protocol against a real Envoy: delta ADS, the per-type services
//! (state of the world and delta), NACKs traced back to objects, CSDS and
//! fetch, and a graceful shutdown that drops no request.

use std::net::SocketAddr;

use anyhow::{ensure, Context, Result};
use bootes_proto::envoy::core::Node;
use bootes_proto::envoy::discovery::DiscoveryRequest;
use bootes_proto::envoy::status::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
use bootes_proto::envoy::status::ClientStatusRequest;
use bootes_proto::ResourceType;
use bootes_tests::harness::{
    cluster_eds, endpoint, eventually, expect_routed, free_port, http_get, listener_http, local,
    pod, route, Envoy, EnvoyOptions, ManifestDir, Stack, Upstream, VirtualHost, XdsApi,
};
use serde_json::{json, Value};

/// Listener on `port` → route-1 → `cluster` (EDS) → `upstream`, for pod envoy-0.demo.
fn routing(port: u16, cluster: &str, upstream: SocketAddr, api: XdsApi) -> Vec<Value> {
    let mut listener = listener_http("demo", "listener-1", "listener-1", port, "route-1", &[]);
    listener["spec"]["config"]["filter_chains"][0]["filters"][0]["typed_config"]["rds"]
        ["config_source"] = api.config_source();
    let mut cluster_obj = cluster_eds("demo", cluster, cluster, &[]);
    cluster_obj["spec"]["config"]["eds_cluster_config"]["eds_config"] = api.config_source();
    vec![
        pod("demo", "envoy-0", &[]),
        listener,
        route(
            "demo",
            "route-1",
            "route-1",
            &[VirtualHost::new("all", &["*"], &[("/", cluster)])],
            &[],
        ),
        cluster_obj,
        endpoint(
            "demo",
            &format!("{cluster}-endpoints"),
            cluster,
            &[upstream],
            &[],
        ),
    ]
}

async fn envoy(stack: &Stack, api: XdsApi) -> Result<Envoy> {
    let mut options = EnvoyOptions::new("envoy-0.demo", &stack.xds_addrs());
    options.xds_api = api;
    Envoy::start_with(options).await
}

/// Routing, a live change, and the removal of a cluster, over `api`.
async fn serve_over(api: XdsApi) -> Result<()> {
    let a = Upstream::start("upstream-a").await?;
    let b = Upstream::start("upstream-b").await?;
    let port = free_port();
    let m = ManifestDir::new()?;
    m.write_docs("routing.yaml", &routing(port, "cluster-a", a.addr(), api))?;
    let stack = Stack::start(&m, 1).await?;
    let envoy = envoy(&stack, api).await?;
    expect_routed(port, "example.com", "/", "upstream-a").await?;

    // Route moved to a new cluster, the old one deleted, in one change.
    m.write_docs("routing.yaml", &routing(port, "cluster-b", b.addr(), api))?;
    expect_routed(port, "example.com", "/", "upstream-b").await?;
    eventually("cluster-a is removed from Envoy", || async {
        let clusters = envoy.cluster_names().await?;
        ensure!(!clusters.contains("cluster-a"), "clusters: {clusters:?}");
        ensure!(clusters.contains("cluster-b"), "clusters: {clusters:?}");
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_ads_carries_traffic_changes_and_removals() -> Result<()> {
    serve_over(XdsApi::AdsDelta).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_type_services_serve_envoy_in_state_of_the_world() -> Result<()> {
    serve_over(XdsApi::PerType).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_type_services_serve_envoy_incrementally() -> Result<()> {
    serve_over(XdsApi::PerTypeDelta).await
}

async fn csds(addr: SocketAddr) -> Result<Value> {
    let mut client = ClientStatusDiscoveryServiceClient::connect(format!("http://{addr}")).await?;
    let resp = client
        .fetch_client_status(ClientStatusRequest::default())
        .await?
        .into_inner();
    // Flatten to (node, type, name, client_status, error) for assertions.
    let mut out = Vec::new();
    for config in resp.config {
        let node = config.node.map(|n| n.id).unwrap_or_default();
        for c in config.generic_xds_configs {
            out.push(json!({
                "node": node,
                "type_url": c.type_url,
                "name": c.name,
                "client_status": c.client_status,
                "error": c.error_state.map(|e| e.details).unwrap_or_default(),
            }));
        }
    }
    Ok(Value::Array(out))
}

const ACKED: i64 = 3;
const NACKED: i64 = 4;

/// A cluster whose TLS context names a secret of the Envoy's bootstrap
/// (an SDS config without a config source) that the bootstrap does not
/// have: valid for Bootes, which cannot know the bootstrap, rejected by
/// Envoy ("Unknown static secret").
fn bad_static_cluster() -> Value {
    json!({"apiVersion": "bootes.io/v1", "kind": "Cluster",
           "metadata": {"name": "static-bad", "namespace": "demo"},
           "spec": {"config": {"name": "static-bad", "type": "STATIC", "connect_timeout": "1s",
               "load_assignment": {"cluster_name": "static-bad", "endpoints": [{"lb_endpoints": [
                   {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 80}}}}]}]},
               "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                   "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                   "common_tls_context": {"tls_certificate_sds_secret_configs": [{"name": "no-such-secret"}]}}}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_reaches_the_object_csds_and_metrics_and_the_next_version_is_sent() -> Result<()> {
    let a = Upstream::start("upstream-a").await?;
    let port = free_port();
    let m = ManifestDir::new()?;
    m.write_docs(
        "routing.yaml",
        &routing(port, "cluster-a", a.addr(), XdsApi::Ads),
    )?;
    let stack = Stack::start(&m, 1).await?;
    let envoy = envoy(&stack, XdsApi::Ads).await?;
    expect_routed(port, "example.com", "/", "upstream-a").await?;

    m.write_docs("bad.yaml", &[bad_static_cluster()])?;
    // CSDS is for operators: its own (loopback) listener answers, the xDS
    // port does not (no operator certificate).
    let refused = csds(stack.xds[0].addr()).await.unwrap_err();
    let refused = refused.downcast_ref::<tonic::Status>().map(|s| s.code());
    ensure!(
        refused == Some(tonic::Code::PermissionDenied),
        "{refused:?}"
    );
    let xds = stack.xds[0].csds_addr();
    // CSDS names the rejected resource with Envoy's message.
    eventually("CSDS reports the NACK", || async {
        let status = csds(xds).await?;
        let nacked: Vec<&Value> = status
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["client_status"] == NACKED)
            .collect();
        ensure!(!nacked.is_empty(), "{status:#}");
        ensure!(
            nacked.iter().any(|c| c["name"] == "static-bad"),
            "{nacked:?}"
        );
        ensure!(nacked[0]["node"] == "envoy-0.demo");
        ensure!(
            nacked[0]["type_url"] == ResourceType::Cluster.type_url(),
            "{nacked:?}"
        );
        ensure!(!nacked[0]["error"].as_str().unwrap_or("").is_empty());
        Ok(())
    })
    .await?;
    // The controller traces it to the object (directory mode: the log).
    let mut stack = stack;
    let stderr = stack.controller.process().stderr_path().to_path_buf();
    eventually("the controller reports the object as Rejected", || async {
        let log = std::fs::read_to_string(&stderr)?;
        ensure!(
            log.lines()
                .any(|l| l.contains("Cluster demo/static-bad") && l.contains("Rejected")),
            "no Rejected line yet"
        );
        Ok(())
    })
    .await?;
    // Counted on the xds-server.
    let metrics = http_get(stack.xds[0].admin_addr(), "127.0.0.1", "/metrics").await?;
    ensure!(
        metrics
            .text()
            .contains("bootes_xds_nacks_total{type=\"CDS\"} 1"),
        "{}",
        metrics.text()
    );
    // Traffic is unaffected: Envoy kept its previous clusters.
    expect_routed(port, "example.com", "/", "upstream-a").await?;

    // The next, different version is sent and ACKed; the NACK clears.
    let mut fixed = bad_static_cluster();
    fixed["spec"]["config"]
        .as_object_mut()
        .unwrap()
        .remove("transport_socket");
    m.write_docs("bad.yaml", &[fixed])?;
    envoy.wait_for_cluster("static-bad").await?;
    eventually("CSDS shows the cluster ACKed and no NACK", || async {
        let status = csds(xds).await?;
        let all = status.as_array().unwrap();
        ensure!(
            !all.iter().any(|c| c["client_status"] == NACKED),
            "{status:#}"
        );
        ensure!(
            all.iter()
                .any(|c| c["name"] == "static-bad" && c["client_status"] == ACKED),
            "{status:#}"
        );
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_returns_the_current_resources_of_a_node() -> Result<()> {
    use bootes_proto::envoy::cluster_service::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
    let a = Upstream::start("upstream-a").await?;
    let m = ManifestDir::new()?;
    m.write_docs(
        "routing.yaml",
        &routing(free_port(), "cluster-a", a.addr(), XdsApi::Ads),
    )?;
    let stack = Stack::start(&m, 1).await?;
    let mut client =
        ClusterDiscoveryServiceClient::connect(format!("http://{}", stack.xds[0].addr())).await?;
    let request = || DiscoveryRequest {
        node: Some(Node {
            id: "envoy-0.demo".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let resp = eventually("FetchClusters answers", || {
        let mut client = client.clone();
        async move { Ok(client.fetch_clusters(request()).await?.into_inner()) }
    })
    .await?;
    assert_eq!(resp.type_url, ResourceType::Cluster.type_url());
    assert_eq!(resp.resources.len(), 1);
    assert!(!resp.version_info.is_empty());
    // An unknown node is told so, not given someone else's configuration.
    let mut unknown = request();
    unknown.node.as_mut().unwrap().id = "nobody.demo".into();
    let err = client.fetch_clusters(unknown).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_breaks_the_protocol_ends_with_its_grpc_status_after_its_responses(
) -> Result<()> {
    use bootes_proto::envoy::cluster_service::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
    let a = Upstream::start("upstream-a").await?;
    let m = ManifestDir::new()?;
    m.write_docs(
        "routing.yaml",
        &routing(free_port(), "cluster-a", a.addr(), XdsApi::Ads),
    )?;
    let stack = Stack::start(&m, 1).await?;
    let client =
        ClusterDiscoveryServiceClient::connect(format!("http://{}", stack.xds[0].addr())).await?;
    let request = |node: &str, type_url: &str| DiscoveryRequest {
        node: Some(Node {
            id: node.into(),
            ..Default::default()
        }),
        type_url: type_url.into(),
        ..Default::default()
    };

    // A stream is answered, then changes its node ID: the responses sent so
    // far arrive whole, and the stream ends with INVALID_ARGUMENT.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(request("envoy-0.demo", "")).await?;
    let mut responses = client
        .clone()
        .stream_clusters(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), responses.message())
        .await
        .context("no CDS response")??
        .context("stream ended")?;
    assert_eq!(first.type_url, ResourceType::Cluster.type_url());
    assert_eq!(first.resources.len(), 1);
    tx.send(request("someone-else.demo", "")).await?;
    let err = responses.message().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(err.message().contains("node.id changed"), "{err}");

    // A per-type service asked for another type says so.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(request("envoy-0.demo", ResourceType::Listener.type_url()))
        .await?;
    let mut responses = client
        .clone()
        .stream_clusters(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let err = responses.message().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(err.message().contains("serves"), "{err}");
    drop(tx);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_streams_to_the_other_replica_without_failing_requests() -> Result<()> {
    let a = Upstream::start("upstream-a").await?;
    let b = Upstream::start("upstream-b").await?;
    let port = free_port();
    let m = ManifestDir::new()?;
    m.write_docs(
        "routing.yaml",
        &routing(port, "cluster-a", a.addr(), XdsApi::Ads),
    )?;
    let mut stack = Stack::start(&m, 2).await?;
    let envoy = envoy(&stack, XdsApi::Ads).await?;
    expect_routed(port, "example.com", "/", "upstream-a").await?;
    let connected = envoy.connected_xds_server().await?;

    // Requests flow the whole time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let load = tokio::spawn(async move {
        let (mut sent, mut failed) = (0u64, Vec::new());
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            match http_get(local(port), "example.com", "/").await {
                Ok(r) if r.status == 200 => {}
                Ok(r) => failed.push(format!("{} {}", r.status, r.text())),
                Err(e) => failed.push(e.to_string()),
            }
            sent += 1;
        }
        (sent, failed)
    });

    let replica = stack.replica(connected).context("connected replica")?;
    replica.terminate()?;
    eventually("Envoy moves to the other replica", || async {
        let now = envoy.connected_xds_servers().await?;
        ensure!(
            now.len() == 1 && now[0] != connected,
            "connected to {now:?}"
        );
        Ok(())
    })
    .await?;
    // And keeps receiving changes through it.
    m.write_docs(
        "routing.yaml",
        &routing(port, "cluster-b", b.addr(), XdsApi::Ads),
    )?;
    expect_routed(port, "example.com", "/", "upstream-b").await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, failed) = load.await?;
    ensure!(sent > 0);
    // Requests during the route switch answer from a or b; none fails.
    assert!(
        failed.is_empty(),
        "{} of {sent} requests failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served_on_the_xds_port() -> Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let m = ManifestDir::new()?;
    m.write_docs("pod.yaml", &[pod("demo", "envoy-0", &[])])?;
    let stack = Stack::start(&m, 1).await?;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", stack.xds[0].addr()))?
            .connect()
            .await?;

    // Ready (etcd loaded): SERVING, for the server and the xDS services.
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "envoy.service.discovery.v3.AggregatedDiscoveryService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await?
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = responses
        .message()
        .await?
        .context("a reflection answer")?
        .message_response
    else {
        anyhow::bail!("not a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "envoy.service.discovery.v3.AggregatedDiscoveryService",
        "envoy.service.cluster.v3.ClusterDiscoveryService",
        "envoy.service.status.v3.ClientStatusDiscoveryService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    // Only what is served: not every service of the Envoy API.
    assert!(
        !names
            .iter()
            .any(|n| n.contains("ext_authz") || n.contains("RateLimit")),
        "{names:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connection_age_ends_streams_and_envoy_reconnects_without_losing_config() -> Result<()>
{
    let a = Upstream::start("upstream-a").await?;
    let b = Upstream::start("upstream-b").await?;
    let port = free_port();
    let m = ManifestDir::new()?;
    m.write_docs(
        "routing.yaml",
        &routing(port, "cluster-a", a.addr(), XdsApi::Ads),
    )?;
    let etcd = bootes_tests::harness::Etcd::start().await?;
    let _controller = bootes_tests::harness::Controller::start(&etcd, m.path()).await?;
    let xds = bootes_tests::harness::XdsServer::start_with_args(
        &etcd,
        "aged",
        &["--max-connection-age", "1"],
    )
    .await?;
    let envoy = Envoy::start("envoy-0.demo", &[xds.addr()]).await?;
    expect_routed(port, "example.com", "/", "upstream-a").await?;
    // Streams end after about a second; Envoy opens new ones.
    eventually("Envoy opened several ADS streams", || async {
        let streams = envoy.stat("cluster.xds.upstream_rq_total").await?;
        ensure!(streams >= 3, "{streams} streams so far");
        Ok(())
    })
    .await?;
    // Nothing was lost in between, and changes still arrive.
    expect_routed(port, "example.com", "/", "upstream-a").await?;
    m.write_docs(
        "routing.yaml",
        &routing(port, "cluster-b", b.addr(), XdsApi::Ads),
    )?;
    expect_routed(port, "example.com", "/", "upstream-b").await?;
    Ok(())
}

/// xRFC TP3: a subscription naming what the node cannot have is told so at
/// once, by name, in both protocol variants; a wildcard subscriber is told
/// nothing. Checked with the shared independent client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_subscriptions_to_missing_or_forbidden_resources_get_resource_errors() -> Result<()> {
    use bootes_tests::ads_client::{self, Answer};
    use prost::Message;
    const NOT_FOUND: i32 = 5;
    const PERMISSION_DENIED: i32 = 7;
    let keys = bootes_proto::Keys::default();
    let etcd = bootes_tests::harness::Etcd::start().await?;
    // Without client authentication or --allow-unauthenticated-secrets:
    // no stream may have Secrets.
    let xds = bootes_tests::harness::XdsServer::start(&etcd, "tp3").await?;
    let mut kv = etcd.client().await?;
    kv.put(
        ads_client::snapshot_key(&keys),
        ads_client::snapshot(2, 0).encode_to_vec(),
        None,
    )
    .await?;
    ads_client::bind_nodes(&mut kv, &keys, 1).await?;
    let channel = ads_client::connect(xds.addr()).await?;
    let cds = ResourceType::Cluster;
    for delta in [false, true] {
        let variant = if delta { "delta" } else { "sotw" };
        let answer = eventually(&format!("{variant}: the node is served"), || {
            let channel = channel.clone();
            async move {
                let a =
                    ads_client::subscribe(channel, 0, delta, cds, &["cluster-1", "nope"]).await?;
                ensure!(!a.resources.is_empty(), "{a:?}");
                Ok(a)
            }
        })
        .await?;
        assert_eq!(
            answer,
            Answer {
                resources: vec!["cluster-1".into()],
                // Delta's own "does not exist".
                removed: if delta { vec!["nope".into()] } else { vec![] },
                errors: vec![("nope".into(), NOT_FOUND)],
            },
            "{variant}"
        );
        let wildcard = ads_client::subscribe(channel.clone(), 0, delta, cds, &[]).await?;
        assert_eq!(wildcard.resources, ["cluster-0", "cluster-1"], "{variant}");
        assert_eq!(wildcard.errors, [], "{variant}: a wildcard named nothing");
        let secret =
            ads_client::subscribe(channel.clone(), 0, delta, ResourceType::Secret, &["key"])
                .await?;
        assert_eq!(
            secret.errors,
            [("key".to_string(), PERMISSION_DENIED)],
            "{variant}"
        );
        assert_eq!(secret.resources, Vec::<String>::new());
    }
    Ok(())
}

/// A replica at its `--max-connections` refuses an Envoy's connection; the
/// Envoy backs off and reaches another replica instead of spinning on the
/// full one (docs/ARCHITECTURE.md, "Sizing `--max-connections`").
///
/// The other replica starts only once the full one has refused the Envoy
/// twice, so the Envoy is known to have been refused, and retried, before
/// it was served; the full replica's count of refusals while nothing served
/// the Envoy tells whether it backed off (a client retrying at once makes
/// thousands of attempts a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_refused_by_a_full_replica_reaches_another_without_spinning() -> Result<()> {
    use bootes_tests::harness::{metric_sum, Controller, Etcd, XdsServer};
    let a_up = Upstream::start("upstream-a").await?;
    let b_up = Upstream::start("upstream-b").await?;
    let port = free_port();
    let m = ManifestDir::new()?;
    m.write_docs(
        "routing.yaml",
        &routing(port, "cluster-a", a_up.addr(), XdsApi::Ads),
    )?;
    let etcd = Etcd::start().await?;
    let _controller = Controller::start(&etcd, m.path()).await?;
    // Full: it holds no connection at all.
    let full = XdsServer::start_with_args(&etcd, "full", &["--max-connections", "0"]).await?;
    let mut other = XdsServer::reserve(&etcd, "other", &[])?;
    let refused = || metric_sum(full.admin_addr(), "bootes_xds_refused_connections_total");
    let t0 = std::time::Instant::now();
    // The harness's Envoys retry after 0.1 s, doubling up to 1 s, jittered.
    let envoy = Envoy::start("envoy-0.demo", &[full.addr(), other.addr()]).await?;
    eventually("the full replica refuses the Envoy twice", || async {
        let n = refused().await?;
        ensure!(n >= 2.0, "refused {n} connections");
        Ok(())
    })
    .await?;
    other.start_reserved().await?;
    expect_routed(port, "example.com", "/", "upstream-a").await?;
    let connected = envoy.connected_xds_servers().await?;
    assert_eq!(connected, [other.addr()], "served by the replica with room");
    let until_served = t0.elapsed().as_secs_f64();
    let at_served = refused().await?;
    println!(
        "the full replica refused {at_served} connections in the {until_served:.1} s before the Envoy was served"
    );
    // Backing off (at most 1 s between tries here, alternating between two
    // replicas) is a few attempts a second; 10 a second is a generous bound.
    assert!(
        at_served <= 2.0 + 10.0 * until_served,
        "the full replica refused {at_served} connections in {until_served:.1} s: the Envoy spins"
    );
    // Served by the other replica, it does not come back to the full one:
    // a change reaches it and the full replica saw no further attempt.
    m.write_docs(
        "routing.yaml",
        &routing(port, "cluster-b", b_up.addr(), XdsApi::Ads),
    )?;
    expect_routed(port, "example.com", "/", "upstream-b").await?;
    let later = refused().await?;
    assert_eq!(
        later, at_served,
        "the full replica refused {at_served} then {later} connections: the Envoy came back"
    );
    Ok(())
}
