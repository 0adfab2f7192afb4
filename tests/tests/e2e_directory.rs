//! End to end, directory mode (issue 2, item 6): manifests in a directory →
//! `bootes-controller` → real etcd → `bootes-xds-server` replicas → a real
//! Envoy carrying real HTTP requests to in-process upstreams.
//!
//! Needs `cargo build --bins` first (the binaries are found next to this test
//! executable), etcd and Envoy (see `tests/src/harness/mod.rs`). Every test
//! has its own etcd, controller, servers and Envoys on random ports.

use std::net::SocketAddr;

use anyhow::{ensure, Context, Result};
use bootes_tests::harness::{
    cluster_eds, endpoint, eventually, expect_routed, expect_status, free_port, http_get,
    listener_http, local, pod, route, Envoy, ManifestDir, Stack, Upstream, VirtualHost,
};
use serde_json::Value;

const PREFIX: &str = "/bootes/v1/";

fn route_clusters(route_config: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for vh in route_config["virtual_hosts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for r in vh["routes"].as_array().into_iter().flatten() {
            if let Some(c) = r["route"]["cluster"].as_str() {
                out.push(c.to_string());
            }
        }
    }
    out
}

fn names(list: &[&str]) -> std::collections::BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const EDGE: &[(&str, &str)] = &[("app", "edge")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_is_routed_as_the_objects_say() {
    let up_a = Upstream::start("upstream-a").await.unwrap();
    let up_b = Upstream::start("upstream-b").await.unwrap();
    let port = free_port();
    let m = ManifestDir::new().unwrap();
    m.write_docs(
        "pods.yaml",
        &[pod(
            "demo",
            "envoy-0",
            &[("app", "edge"), ("tier", "front")],
        )],
    )
    .unwrap();
    m.write_docs(
        "edge.yaml",
        &[
            listener_http("demo", "listener-1", "listener_1", port, "route-1", EDGE),
            route(
                "demo",
                "route-1",
                "route-1",
                &[
                    VirtualHost::new(
                        "api",
                        &["api.example.com"],
                        &[("/b", "cluster-b"), ("/", "cluster-a")],
                    ),
                    VirtualHost::new("default", &["*"], &[("/", "cluster-b")]),
                ],
                &[],
            ),
            cluster_eds("demo", "cluster-a", "cluster-a", EDGE),
            cluster_eds("demo", "cluster-b", "cluster-b", &[]),
            endpoint("demo", "endpoint-a", "cluster-a", &[up_a.addr()], EDGE),
            endpoint("demo", "endpoint-b", "cluster-b", &[up_b.addr()], &[]),
        ],
    )
    .unwrap();
    let stack = Stack::start(&m, 1).await.unwrap();
    let envoy = Envoy::start("envoy-0.demo", &stack.xds_addrs())
        .await
        .unwrap();

    envoy.wait_for_listener("listener_1").await.unwrap();
    expect_routed(port, "api.example.com", "/", "upstream-a")
        .await
        .unwrap();
    expect_routed(port, "api.example.com", "/users/1", "upstream-a")
        .await
        .unwrap();
    expect_routed(port, "api.example.com", "/b/x", "upstream-b")
        .await
        .unwrap();
    expect_routed(port, "www.example.com", "/", "upstream-b")
        .await
        .unwrap();
    expect_routed(port, "www.example.com", "/b", "upstream-b")
        .await
        .unwrap();
    assert!(
        up_a.hits() >= 12 && up_b.hits() >= 18,
        "a={} b={}",
        up_a.hits(),
        up_b.hits()
    );

    // What Envoy holds is exactly what the objects say.
    assert_eq!(
        envoy.listener_names().await.unwrap(),
        names(&["listener_1"])
    );
    assert_eq!(
        envoy.cluster_names().await.unwrap(),
        names(&["cluster-a", "cluster-b"])
    );
    assert_eq!(
        envoy.route_config_names().await.unwrap(),
        names(&["route-1"])
    );
    assert_eq!(
        envoy.endpoint_addrs("cluster-a").await.unwrap(),
        vec![up_a.addr()]
    );
    assert_eq!(
        envoy.endpoint_addrs("cluster-b").await.unwrap(),
        vec![up_b.addr()]
    );
    let listener = envoy.wait_for_listener("listener_1").await.unwrap();
    assert_eq!(listener["address"]["socket_address"]["port_value"], port);

    // The storage contract: the node is bound, a snapshot exists for its group.
    let keys = stack.etcd.keys(PREFIX).await.unwrap();
    assert!(
        keys.contains(&format!("{PREFIX}nodes/envoy-0.demo")),
        "etcd keys: {keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("{PREFIX}snapshots/demo/"))),
        "etcd keys: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_for_other_pods_or_other_namespaces_never_reach_the_envoy() {
    let up_a = Upstream::start("upstream-a").await.unwrap();
    let up_x = Upstream::start("upstream-x").await.unwrap();
    let up_y = Upstream::start("upstream-y").await.unwrap();
    let up_y2 = Upstream::start("upstream-y2").await.unwrap();
    let (port_edge, port_other, port_elsewhere) = (free_port(), free_port(), free_port());
    let other: &[(&str, &str)] = &[("app", "other")];
    let m = ManifestDir::new().unwrap();
    m.write_docs(
        "pods.yaml",
        &[
            pod("demo", "envoy-0", EDGE),
            pod("demo", "other-0", other),
            // Same pod name and labels, another namespace: a different node.
            pod("elsewhere", "envoy-0", EDGE),
        ],
    )
    .unwrap();
    // demo, for app=edge.
    m.write_docs(
        "demo-edge.yaml",
        &[
            listener_http(
                "demo",
                "listener-edge",
                "listener-edge",
                port_edge,
                "route-1",
                EDGE,
            ),
            route(
                "demo",
                "route-1",
                "route-1",
                &[VirtualHost::new("all", &["*"], &[("/", "cluster-a")])],
                EDGE,
            ),
            cluster_eds("demo", "cluster-a", "cluster-a", EDGE),
            endpoint("demo", "endpoint-a", "cluster-a", &[up_a.addr()], EDGE),
        ],
    )
    .unwrap();
    // demo, for app=other: same xDS route name as the edge one, other cluster.
    m.write_docs(
        "demo-other.yaml",
        &[
            listener_http(
                "demo",
                "listener-other",
                "listener-other",
                port_other,
                "route-1",
                other,
            ),
            route(
                "demo",
                "route-1-other",
                "route-1",
                &[VirtualHost::new("all", &["*"], &[("/", "cluster-x")])],
                other,
            ),
            cluster_eds("demo", "cluster-x", "cluster-x", other),
            endpoint("demo", "endpoint-x", "cluster-x", &[up_x.addr()], other),
        ],
    )
    .unwrap();
    // Namespace elsewhere, no selector (every pod there, including its envoy-0
    // with the very same labels): same names as the demo edge objects.
    let elsewhere_docs = |addr: SocketAddr| {
        vec![
            listener_http(
                "elsewhere",
                "listener-elsewhere",
                "listener-elsewhere",
                port_elsewhere,
                "route-1",
                &[],
            ),
            route(
                "elsewhere",
                "route-1",
                "route-1",
                &[VirtualHost::new("all", &["*"], &[("/", "cluster-a")])],
                &[],
            ),
            cluster_eds("elsewhere", "cluster-a", "cluster-a", &[]),
            endpoint("elsewhere", "endpoint-a", "cluster-a", &[addr], &[]),
        ]
    };
    m.write_docs("elsewhere.yaml", &elsewhere_docs(up_y.addr()))
        .unwrap();

    let stack = Stack::start(&m, 1).await.unwrap();
    let xds = stack.xds_addrs();
    let edge = Envoy::start("envoy-0.demo", &xds).await.unwrap();
    let other_envoy = Envoy::start("other-0.demo", &xds).await.unwrap();
    let elsewhere = Envoy::start("envoy-0.elsewhere", &xds).await.unwrap();

    // Each node gets its own objects (so the others are valid and served)…
    expect_routed(port_edge, "example.com", "/", "upstream-a")
        .await
        .unwrap();
    expect_routed(port_other, "example.com", "/", "upstream-x")
        .await
        .unwrap();
    expect_routed(port_elsewhere, "example.com", "/", "upstream-y")
        .await
        .unwrap();
    assert_eq!(
        elsewhere.listener_names().await.unwrap(),
        names(&["listener-elsewhere"])
    );
    assert_eq!(
        other_envoy.listener_names().await.unwrap(),
        names(&["listener-other"])
    );
    assert_eq!(
        other_envoy.cluster_names().await.unwrap(),
        names(&["cluster-x"])
    );

    // …and nothing else.
    let check_edge = |dump: Value| -> Result<()> {
        let listeners: Vec<_> = bootes_tests::harness::dynamic_listeners(&dump)
            .into_keys()
            .collect();
        ensure!(listeners == ["listener-edge"], "listeners: {listeners:?}");
        let clusters: Vec<_> = bootes_tests::harness::dynamic_clusters(&dump)
            .into_keys()
            .collect();
        ensure!(clusters == ["cluster-a"], "clusters: {clusters:?}");
        let routes = bootes_tests::harness::dynamic_route_configs(&dump);
        ensure!(routes.len() == 1, "routes: {:?}", routes.keys());
        let clusters_routed = route_clusters(&routes["route-1"]);
        ensure!(
            clusters_routed == ["cluster-a"],
            "route-1 routes to {clusters_routed:?}"
        );
        let eps = bootes_tests::harness::dynamic_endpoints(&dump);
        ensure!(eps.len() == 1, "endpoints: {:?}", eps.keys());
        Ok(())
    };
    check_edge(edge.config_dump().await.unwrap()).unwrap();
    assert_eq!(
        edge.endpoint_addrs("cluster-a").await.unwrap(),
        vec![up_a.addr()]
    );

    // A change in the other namespace reaches its node only.
    m.write_docs("elsewhere.yaml", &elsewhere_docs(up_y2.addr()))
        .unwrap();
    expect_routed(port_elsewhere, "example.com", "/", "upstream-y2")
        .await
        .unwrap();
    check_edge(edge.config_dump().await.unwrap()).unwrap();
    assert_eq!(
        edge.endpoint_addrs("cluster-a").await.unwrap(),
        vec![up_a.addr()]
    );
    expect_routed(port_edge, "example.com", "/", "upstream-a")
        .await
        .unwrap();
    let _ = stack;
}

/// The edit test's files: pod, listener, route, the two clusters, endpoints.
fn write_edit_fixture(m: &ManifestDir, port: u16, a: SocketAddr, b: SocketAddr) -> Result<()> {
    m.write_docs("pod.yaml", &[pod("demo", "envoy-0", EDGE)])?;
    m.write_docs(
        "listener.yaml",
        &[listener_http(
            "demo",
            "listener-1",
            "listener_1",
            port,
            "route-1",
            &[],
        )],
    )?;
    m.write_docs(
        "route.yaml",
        &[route(
            "demo",
            "route-1",
            "route-1",
            &[VirtualHost::new("all", &["*"], &[("/", "cluster-a")])],
            &[],
        )],
    )?;
    m.write_docs(
        "clusters.yaml",
        &[
            cluster_eds("demo", "cluster-a", "cluster-a", &[]),
            cluster_eds("demo", "cluster-b", "cluster-b", &[]),
        ],
    )?;
    m.write_docs(
        "endpoint-a.yaml",
        &[endpoint("demo", "endpoint-a", "cluster-a", &[a], &[])],
    )?;
    m.write_docs(
        "endpoint-b.yaml",
        &[endpoint("demo", "endpoint-b", "cluster-b", &[b], &[])],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_endpoint_and_route_files_changes_routing_live() {
    let up_a = Upstream::start("upstream-a").await.unwrap();
    let up_b = Upstream::start("upstream-b").await.unwrap();
    let up_c = Upstream::start("upstream-c").await.unwrap();
    let port = free_port();
    let m = ManifestDir::new().unwrap();
    write_edit_fixture(&m, port, up_a.addr(), up_b.addr()).unwrap();
    let stack = Stack::start(&m, 1).await.unwrap();
    let envoy = Envoy::start("envoy-0.demo", &stack.xds_addrs())
        .await
        .unwrap();
    expect_routed(port, "example.com", "/", "upstream-a")
        .await
        .unwrap();

    // Edit the Endpoint file: cluster-a now points at upstream-c.
    m.write_docs(
        "endpoint-a.yaml",
        &[endpoint(
            "demo",
            "endpoint-a",
            "cluster-a",
            &[up_c.addr()],
            &[],
        )],
    )
    .unwrap();
    expect_routed(port, "example.com", "/", "upstream-c")
        .await
        .unwrap();
    assert_eq!(
        envoy.endpoint_addrs("cluster-a").await.unwrap(),
        vec![up_c.addr()]
    );

    // Edit the Route file: / goes to cluster-b, /a to cluster-a.
    m.write_docs(
        "route.yaml",
        &[route(
            "demo",
            "route-1",
            "route-1",
            &[VirtualHost::new(
                "all",
                &["*"],
                &[("/a", "cluster-a"), ("/", "cluster-b")],
            )],
            &[],
        )],
    )
    .unwrap();
    expect_routed(port, "example.com", "/", "upstream-b")
        .await
        .unwrap();
    expect_routed(port, "example.com", "/a/1", "upstream-c")
        .await
        .unwrap();

    // A new file: cluster-d and its endpoint, and a route to it.
    m.write_docs(
        "cluster-d.yaml",
        &[
            cluster_eds("demo", "cluster-d", "cluster-d", &[]),
            endpoint("demo", "endpoint-d", "cluster-d", &[up_a.addr()], &[]),
        ],
    )
    .unwrap();
    envoy.wait_for_cluster("cluster-d").await.unwrap();
    m.write_docs(
        "route.yaml",
        &[route(
            "demo",
            "route-1",
            "route-1",
            &[VirtualHost::new(
                "all",
                &["*"],
                &[("/a", "cluster-a"), ("/d", "cluster-d"), ("/", "cluster-b")],
            )],
            &[],
        )],
    )
    .unwrap();
    expect_routed(port, "example.com", "/d", "upstream-a")
        .await
        .unwrap();
    expect_routed(port, "example.com", "/", "upstream-b")
        .await
        .unwrap();

    // Deleting the file removes the cluster from Envoy: /d has nowhere to go.
    m.remove("cluster-d.yaml").unwrap();
    eventually("cluster-d is removed from Envoy", || async {
        let clusters = envoy.cluster_names().await?;
        ensure!(!clusters.contains("cluster-d"), "clusters: {clusters:?}");
        Ok(())
    })
    .await
    .unwrap();
    expect_status(port, "example.com", "/d", 503).await.unwrap();
    expect_routed(port, "example.com", "/a", "upstream-c")
        .await
        .unwrap();
    let _ = stack;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_still_arrive_after_the_connected_xds_server_is_killed() {
    let up_a = Upstream::start("upstream-a").await.unwrap();
    let up_b = Upstream::start("upstream-b").await.unwrap();
    let up_c = Upstream::start("upstream-c").await.unwrap();
    let port = free_port();
    let m = ManifestDir::new().unwrap();
    write_edit_fixture(&m, port, up_a.addr(), up_b.addr()).unwrap();
    let mut stack = Stack::start(&m, 2).await.unwrap();
    let envoy = Envoy::start("envoy-0.demo", &stack.xds_addrs())
        .await
        .unwrap();
    expect_routed(port, "example.com", "/", "upstream-a")
        .await
        .unwrap();

    // Kill the replica Envoy is connected to; the next change must arrive
    // through the other one.
    let first = envoy.connected_xds_server().await.unwrap();
    let i = stack.xds.iter().position(|s| s.addr() == first).unwrap();
    stack.xds[i].kill();
    m.write_docs(
        "endpoint-a.yaml",
        &[endpoint(
            "demo",
            "endpoint-a",
            "cluster-a",
            &[up_c.addr()],
            &[],
        )],
    )
    .unwrap();
    expect_routed(port, "example.com", "/", "upstream-c")
        .await
        .unwrap();
    let second = envoy.connected_xds_server().await.unwrap();
    assert_ne!(
        first, second,
        "Envoy is still connected to the killed replica"
    );

    // Bring the first back, kill the second: changes arrive through the first.
    stack.xds[i].restart().await.unwrap();
    let j = stack.xds.iter().position(|s| s.addr() == second).unwrap();
    stack.xds[j].kill();
    m.write_docs(
        "route.yaml",
        &[route(
            "demo",
            "route-1",
            "route-1",
            &[VirtualHost::new("all", &["*"], &[("/", "cluster-b")])],
            &[],
        )],
    )
    .unwrap();
    expect_routed(port, "example.com", "/", "upstream-b")
        .await
        .unwrap();
    let third = envoy.connected_xds_server().await.unwrap();
    assert_eq!(
        third, first,
        "Envoy should be back on the restarted replica"
    );
    stack.xds[j].restart().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_without_a_pod_waits_and_is_served_once_its_pod_appears() {
    let up_a = Upstream::start("upstream-a").await.unwrap();
    let up_b = Upstream::start("upstream-b").await.unwrap();
    let port = free_port();
    let m = ManifestDir::new().unwrap();
    write_edit_fixture(&m, port, up_a.addr(), up_b.addr()).unwrap();
    let stack = Stack::start(&m, 1).await.unwrap();

    // late-0.demo has no Pod document yet: its stream stays open, empty.
    let envoy = Envoy::start("late-0.demo", &stack.xds_addrs())
        .await
        .unwrap();
    eventually("Envoy holds an ADS connection", || async {
        let hosts = envoy.connected_xds_servers().await?;
        ensure!(!hosts.is_empty(), "no xds connection");
        Ok(())
    })
    .await
    .unwrap();
    assert!(envoy.listener_names().await.unwrap().is_empty());
    let connects = envoy
        .admin_get("/stats?filter=^cluster\\.xds\\.upstream_cx_total$")
        .await
        .unwrap()
        .body;

    m.write_docs(
        "late-pod.yaml",
        &[pod("demo", "late-0", &[("app", "late")])],
    )
    .unwrap();
    expect_routed(port, "example.com", "/", "upstream-a")
        .await
        .context("the node should be served once its pod appears")
        .unwrap();
    let connects_after = envoy
        .admin_get("/stats?filter=^cluster\\.xds\\.upstream_cx_total$")
        .await
        .unwrap()
        .body;
    assert_eq!(
        connects, connects_after,
        "served on the stream it had open, without reconnecting"
    );
}

/// Sends requests to 127.0.0.1:`port` one after the other until stopped,
/// recording every answer that is not a 200 from one of `allowed`.
struct RequestLoop {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

impl RequestLoop {
    /// At most this many requests, so the loop always ends by itself.
    const MAX_REQUESTS: u64 = 50_000;

    fn start(port: u16, allowed: &[&str]) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut sent = 0;
            let mut bad = Vec::new();
            while !flag.load(Ordering::Relaxed) && sent < Self::MAX_REQUESTS {
                sent += 1;
                match http_get(local(port), "example.com", "/").await {
                    Ok(r) if r.status == 200 && allowed.iter().any(|a| a == r.text()) => {}
                    Ok(r) => bad.push(format!("request {sent}: {} {:?}", r.status, r.text())),
                    Err(e) => bad.push(format!("request {sent}: {e:#}")),
                }
            }
            (sent, bad)
        });
        Self { stop, task }
    }

    /// Stops the loop; returns how many requests were sent and the bad answers.
    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.expect("request loop")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_routes_between_clusters_never_fails_a_request() {
    // Make-before-break: a Route moved to a brand-new cluster (added in the
    // same burst) must never send a request to a cluster Envoy lacks, and a
    // cluster removed together with the route that used it must be removed
    // only after the route moved away.
    let up_a = Upstream::start("upstream-a").await.unwrap();
    let up_b = Upstream::start("upstream-b").await.unwrap();
    let up_n = Upstream::start("upstream-n").await.unwrap();
    let port = free_port();
    let m = ManifestDir::new().unwrap();
    write_edit_fixture(&m, port, up_a.addr(), up_b.addr()).unwrap();
    let stack = Stack::start(&m, 1).await.unwrap();
    let envoy = Envoy::start("envoy-0.demo", &stack.xds_addrs())
        .await
        .unwrap();
    expect_routed(port, "example.com", "/", "upstream-a")
        .await
        .unwrap();

    let route_to = |cluster: &str| {
        vec![route(
            "demo",
            "route-1",
            "route-1",
            &[VirtualHost::new("all", &["*"], &[("/", cluster)])],
            &[],
        )]
    };

    // Add cluster-n with its endpoint and move the route to it, in one burst.
    let requests = RequestLoop::start(port, &["upstream-a", "upstream-n"]);
    m.write_docs(
        "cluster-n.yaml",
        &[
            cluster_eds("demo", "cluster-n", "cluster-n", &[]),
            endpoint("demo", "endpoint-n", "cluster-n", &[up_n.addr()], &[]),
        ],
    )
    .unwrap();
    m.write_docs("route.yaml", &route_to("cluster-n")).unwrap();
    expect_routed(port, "example.com", "/", "upstream-n")
        .await
        .unwrap();
    let (sent, bad) = requests.finish().await;
    eprintln!("{sent} requests sent during the switch");
    assert!(
        bad.is_empty(),
        "{} of {sent} requests failed while the route moved to a new cluster: {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );

    // cluster-n warmed because its endpoints arrived, not because Envoy gave
    // up waiting for them (initial_fetch_timeout, 15s): the server must not
    // hold EDS back until Envoy ACKs the CDS response, since Envoy pauses
    // that ACK until the new cluster has warmed.
    assert_eq!(
        envoy
            .stat("cluster.cluster-n.init_fetch_timeout")
            .await
            .unwrap(),
        0,
        "cluster-n's endpoints were not sent until Envoy's initial fetch timed out \
         (the server withheld EDS while the CDS response awaited its ACK)"
    );

    // Move the route back and delete cluster-n, in one burst.
    let requests = RequestLoop::start(port, &["upstream-a", "upstream-n"]);
    m.write_docs("route.yaml", &route_to("cluster-a")).unwrap();
    m.remove("cluster-n.yaml").unwrap();
    expect_routed(port, "example.com", "/", "upstream-a")
        .await
        .unwrap();
    eventually("cluster-n is removed from Envoy", || async {
        let clusters = envoy.cluster_names().await?;
        ensure!(!clusters.contains("cluster-n"), "clusters: {clusters:?}");
        Ok(())
    })
    .await
    .unwrap();
    let (sent, bad) = requests.finish().await;
    eprintln!("{sent} requests sent during the switch");
    assert!(
        bad.is_empty(),
        "{} of {sent} requests failed while the route left a removed cluster: {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
    let _ = stack;
}
