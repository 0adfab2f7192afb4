//! End to end, endpoints from a Service (issue 14): an `Endpoint` naming a
//! Service gets its endpoints from the Service's EndpointSlices, live.
//! Directory mode: the slices are `discovery.k8s.io/v1` documents in the
//! manifest directory (the Kubernetes-mode test is in `e2e_kubernetes.rs`).
//!
//! The pods of the Service are in-process upstreams on 127.0.0.11, .12, …
//! sharing one port, as pods of a Deployment share their container port.
//! Needs `cargo build --bins` first, etcd and Envoy (see the harness).

use std::net::{IpAddr, SocketAddr};

use anyhow::{ensure, Context, Result};
use bootes_tests::harness::{
    cluster_eds, endpoint_for_service, endpoint_slice, eventually, expect_spread, expect_status,
    find_bootes_bin, free_port, listener_http, metric, metric_sum, pod, route, Envoy, ManifestDir,
    SliceEndpoint, Stack, Upstream, VirtualHost,
};
use serde_json::{json, Value};

const NS: &str = "demo";
const PREFIX: &str = "/bootes/v1/";

fn ready(u: &Upstream) -> SliceEndpoint {
    SliceEndpoint::Ready(u.addr().ip())
}

/// The slices file of Service `web`: `slices` as (slice name, endpoints).
fn write_slices(m: &ManifestDir, port: u16, slices: &[(&str, Vec<SliceEndpoint>)]) {
    let docs: Vec<Value> = slices
        .iter()
        .map(|(name, eps)| endpoint_slice(NS, name, "web", "http", port, eps))
        .collect();
    m.write_docs("slices.yaml", &docs).unwrap();
}

/// (address, EDS health status) of every host Envoy has in `cluster`, from
/// its `/clusters` admin page (the config dump shows only coarse health, in
/// which DRAINING reads UNHEALTHY).
async fn envoy_endpoints(envoy: &Envoy, cluster: &str) -> Result<Vec<(SocketAddr, String)>> {
    let r = envoy.admin_get("/clusters?format=json").await?;
    let clusters: Value = serde_json::from_str(r.text())?;
    let status = clusters["cluster_statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == cluster)
        .with_context(|| format!("no cluster {cluster:?}"))?;
    let mut out = Vec::new();
    for host in status["host_statuses"].as_array().into_iter().flatten() {
        let sa = &host["address"]["socket_address"];
        let ip: IpAddr = sa["address"].as_str().context("address")?.parse()?;
        let port = sa["port_value"].as_u64().context("port")? as u16;
        let health = host["health_status"]["eds_health_status"]
            .as_str()
            .unwrap_or("UNKNOWN");
        out.push((SocketAddr::new(ip, port), health.to_string()));
    }
    out.sort();
    Ok(out)
}

/// Waits until Envoy holds exactly `want` for cluster `web`.
async fn expect_endpoints(envoy: &Envoy, want: &[(&Upstream, &str)]) -> Result<()> {
    let mut want: Vec<(SocketAddr, String)> = want
        .iter()
        .map(|(u, h)| (u.addr(), h.to_string()))
        .collect();
    want.sort();
    eventually(
        &format!("Envoy's endpoints of web are {want:?}"),
        || async {
            let have = envoy_endpoints(envoy, "web").await?;
            ensure!(have == want, "have {have:?}");
            Ok(())
        },
    )
    .await
}

/// Requests through Envoy reach exactly `serving`.
async fn expect_traffic(port: u16, serving: &[&Upstream]) -> Result<()> {
    expect_spread(port, "web.example.com", "/", serving).await
}

/// The first JSON object anywhere in `v` whose `field` is `value`.
fn find_object_with<'a>(v: &'a Value, field: &str, value: &str) -> Option<&'a Value> {
    match v {
        Value::Object(map) if map.get(field).and_then(Value::as_str) == Some(value) => Some(v),
        Value::Object(map) => map.values().find_map(|x| find_object_with(x, field, value)),
        Value::Array(items) => items.iter().find_map(|x| find_object_with(x, field, value)),
        _ => None,
    }
}

/// Where the snapshot of `node`'s group is, and its etcd mod revision.
async fn snapshot_revision(stack: &Stack, node: &str) -> Result<i64> {
    let mut client = stack.etcd.client().await?;
    let binding = client.get(format!("{PREFIX}nodes/{node}"), None).await?;
    let binding: bootes_proto::store::NodeBinding =
        prost::Message::decode(binding.kvs().first().context("no binding")?.value())?;
    let snapshot = client
        .get(format!("{PREFIX}snapshots/{}", binding.snapshot), None)
        .await?;
    Ok(snapshot
        .kvs()
        .first()
        .context("no snapshot")?
        .mod_revision())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_endpoints_follow_its_slices_live() {
    let pods = Upstream::start_pods(11, 3).await.unwrap();
    let pod_port = pods[0].addr().port();
    let listen = free_port();
    let edge = &[("app", "edge")];
    let m = ManifestDir::new().unwrap();
    m.write_docs("pods.yaml", &[pod(NS, "envoy-0", edge)])
        .unwrap();
    m.write_docs(
        "edge.yaml",
        &[
            listener_http(NS, "listener", "listener", listen, "routes", edge),
            route(
                NS,
                "routes",
                "routes",
                &[VirtualHost::new("web", &["*"], &[("/", "web")])],
                edge,
            ),
            cluster_eds(NS, "web", "web", edge),
            endpoint_for_service(NS, "web", "web", "web", json!("http"), edge),
        ],
    )
    .unwrap();
    // Two pods of the Deployment behind Service web.
    write_slices(
        &m,
        pod_port,
        &[("web-1", vec![ready(&pods[0]), ready(&pods[1])])],
    );
    let stack = Stack::start(&m, 1).await.unwrap();
    let envoy = Envoy::start("envoy-0.demo", &stack.xds_addrs())
        .await
        .unwrap();
    envoy.wait_for_listener("listener").await.unwrap();

    // The Service's endpoints receive requests.
    expect_endpoints(&envoy, &[(&pods[0], "HEALTHY"), (&pods[1], "HEALTHY")])
        .await
        .unwrap();
    expect_traffic(listen, &[&pods[0], &pods[1]]).await.unwrap();

    // A change that leaves the endpoints as they are (a label, another
    // order) is reconciled but writes nothing and pushes nothing.
    let revision = snapshot_revision(&stack, "envoy-0.demo").await.unwrap();
    let xds_admin = stack.xds[0].admin_addr();
    let eds_pushes = "bootes_xds_pushes_total{type=\"EDS\"}";
    let pushes = metric(xds_admin, eds_pushes).await.unwrap();
    let reconciles_total = "bootes_controller_reconciles_total";
    let controller = stack.controller.metrics_addr();
    let reconciles = metric_sum(controller, reconciles_total).await.unwrap();
    let mut relabelled = endpoint_slice(
        NS,
        "web-1",
        "web",
        "http",
        pod_port,
        &[ready(&pods[1]), ready(&pods[0])],
    );
    relabelled["metadata"]["labels"]["team"] = json!("web");
    m.write_docs("slices.yaml", &[relabelled]).unwrap();
    eventually("the controller reconciles the relabelled slice", || async {
        let now = metric_sum(controller, reconciles_total).await?;
        ensure!(now > reconciles, "reconciles {now}");
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(
        snapshot_revision(&stack, "envoy-0.demo").await.unwrap(),
        revision,
        "the snapshot was rewritten"
    );
    assert_eq!(metric(xds_admin, eds_pushes).await.unwrap(), pushes);

    // Scale up: a third pod, in a second slice.
    write_slices(
        &m,
        pod_port,
        &[
            ("web-1", vec![ready(&pods[0]), ready(&pods[1])]),
            ("web-2", vec![ready(&pods[2])]),
        ],
    );
    expect_endpoints(
        &envoy,
        &[
            (&pods[0], "HEALTHY"),
            (&pods[1], "HEALTHY"),
            (&pods[2], "HEALTHY"),
        ],
    )
    .await
    .unwrap();
    expect_traffic(listen, &[&pods[0], &pods[1], &pods[2]])
        .await
        .unwrap();
    // The controller counts the slices it reads and the endpoints it made.
    assert_eq!(
        metric(controller, "bootes_controller_endpoint_slices")
            .await
            .unwrap(),
        2.0
    );
    assert_eq!(
        metric(controller, "bootes_controller_service_endpoints")
            .await
            .unwrap(),
        3.0
    );

    // Scale down: the first pod is gone.
    write_slices(
        &m,
        pod_port,
        &[
            ("web-1", vec![ready(&pods[1])]),
            ("web-2", vec![ready(&pods[2])]),
        ],
    );
    expect_endpoints(&envoy, &[(&pods[1], "HEALTHY"), (&pods[2], "HEALTHY")])
        .await
        .unwrap();
    expect_traffic(listen, &[&pods[1], &pods[2]]).await.unwrap();

    // A pod turning not-ready stops receiving traffic.
    write_slices(
        &m,
        pod_port,
        &[
            ("web-1", vec![SliceEndpoint::NotReady(pods[1].addr().ip())]),
            ("web-2", vec![ready(&pods[2])]),
        ],
    );
    expect_endpoints(&envoy, &[(&pods[2], "HEALTHY")])
        .await
        .unwrap();
    expect_traffic(listen, &[&pods[2]]).await.unwrap();

    // A terminating pod that still serves is DRAINING: no new requests.
    write_slices(
        &m,
        pod_port,
        &[
            ("web-1", vec![ready(&pods[0]), ready(&pods[1])]),
            (
                "web-2",
                vec![SliceEndpoint::Terminating(pods[2].addr().ip())],
            ),
        ],
    );
    expect_endpoints(
        &envoy,
        &[
            (&pods[0], "HEALTHY"),
            (&pods[1], "HEALTHY"),
            (&pods[2], "DRAINING"),
        ],
    )
    .await
    .unwrap();
    expect_traffic(listen, &[&pods[0], &pods[1]]).await.unwrap();
    // `inspect` shows what was generated, from the snapshot in etcd.
    let inspect = std::process::Command::new(
        find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN").unwrap(),
    )
    .args(["inspect", "snapshot", "envoy-0.demo", "-o", "json"])
    .args(["--etcd-endpoints", &stack.etcd.endpoint()])
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{text}");
    let snapshot: Value = serde_json::from_str(&text).unwrap();
    let cla = find_object_with(&snapshot, "cluster_name", "web")
        .or_else(|| find_object_with(&snapshot, "clusterName", "web"))
        .unwrap_or_else(|| panic!("no assignment for web in {text}"));
    let shown = cla.to_string();
    assert!(
        shown.contains("DRAINING") && shown.contains(&pods[2].addr().ip().to_string()),
        "{shown}"
    );

    // Deleting the slices empties the endpoints; the cluster stays.
    m.remove("slices.yaml").unwrap();
    expect_endpoints(&envoy, &[]).await.unwrap();
    assert!(envoy.cluster_names().await.unwrap().contains("web"));
    expect_status(listen, "web.example.com", "/", 503)
        .await
        .unwrap();
}

/// Issue 18: an EndpointSlice with a malformed address or port is named,
/// with its field, by `validate` and in the directory-mode log, and what is
/// well-formed keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_slice_is_named_by_validate_and_in_the_log() {
    let pods = Upstream::start_pods(31, 1).await.unwrap();
    let pod_port = pods[0].addr().port();
    let m = ManifestDir::new().unwrap();
    let edge = &[("app", "edge")];
    m.write_docs(
        "edge.yaml",
        &[
            pod(NS, "envoy-0", edge),
            cluster_eds(NS, "web", "web", edge),
            endpoint_for_service(NS, "web", "web", "web", json!("http"), edge),
        ],
    )
    .unwrap();
    let mut good = endpoint_slice(NS, "web-1", "web", "http", pod_port, &[ready(&pods[0])]);
    good["endpoints"]
        .as_array_mut()
        .unwrap()
        .push(json!({"addresses": ["10.0.0.x"], "conditions": {"ready": true}}));
    let mut bad_port = endpoint_slice(NS, "web-2", "web", "http", pod_port, &[ready(&pods[0])]);
    bad_port["ports"][0]["port"] = json!(70000);
    m.write_docs("slices.yaml", &[good, bad_port]).unwrap();
    let address = format!(
        r#"EndpointSlice {NS}/web-1: endpoints[1].addresses[0]: "10.0.0.x" is not an IPv4 address; this endpoint is left out"#
    );
    let port = format!(
        "EndpointSlice {NS}/web-2: ports[0].port: 70000 is not a port number (1-65535); the slice's endpoints are left out"
    );

    // validate: warnings on the Endpoint, naming the slices and fields.
    let out = std::process::Command::new(
        find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN").unwrap(),
    )
    .args(["validate", "-f"])
    .arg(m.path())
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let warnings: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .collect();
    for want in [&address, &port] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(&format!("Endpoint {NS}/web: spec.service: {want}"))),
            "no warning {want:?} in\n{stdout}"
        );
    }

    // run, directory mode: the same words in the log; the good endpoint serves.
    let mut stack = Stack::start(&m, 1).await.unwrap();
    let envoy = Envoy::start("envoy-0.demo", &stack.xds_addrs())
        .await
        .unwrap();
    expect_endpoints(&envoy, &[(&pods[0], "HEALTHY")])
        .await
        .unwrap();
    let log_path = stack.controller.process().stderr_path().to_path_buf();
    eventually(
        "the controller log names both slices and fields",
        || async {
            let log = std::fs::read_to_string(&log_path)?;
            let line = log
                .lines()
                .find(|l| l.contains("with warnings") && l.contains(&format!("Endpoint {NS}/web")))
                .unwrap_or_default();
            ensure!(
                line.contains(&address) && line.contains(&port),
                "not yet: {line:?}"
            );
            Ok(())
        },
    )
    .await
    .unwrap();
}
