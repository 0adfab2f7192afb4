//! The harness itself against real etcd and a real Envoy (no Bootes binary
//! involved): if these fail, the e2e tests cannot mean anything.

use std::net::SocketAddr;

use bootes_tests::harness::{eventually, free_port, http_get, Envoy, Etcd, Upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_starts_and_answers() {
    let etcd = Etcd::start().await.expect("etcd starts");
    let mut client = etcd.client().await.expect("client");
    client.put("/harness/a", "1", None).await.expect("put");
    client.put("/harness/b", "2", None).await.expect("put");
    client.put("/other", "3", None).await.expect("put");
    assert_eq!(
        etcd.keys("/harness/").await.expect("keys"),
        vec!["/harness/a".to_string(), "/harness/b".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_answers_with_its_name() {
    let up = Upstream::start("upstream-x").await.expect("upstream");
    let r = http_get(up.addr(), "example.com", "/any/path?q=1")
        .await
        .expect("GET");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "upstream-x");
    assert_eq!(r.headers["x-upstream"], "upstream-x");
    assert_eq!(up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_starts_without_a_control_plane_and_keeps_trying() {
    // Nothing listens on these ports: Envoy must start anyway (admin up, no
    // dynamic config) and keep trying both "replicas".
    let dead_a = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dead_b = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let envoy = Envoy::start("harness-0.test", &[dead_a, dead_b])
        .await
        .expect("envoy starts");
    let dump = envoy.config_dump().await.expect("config_dump");
    assert!(dump["configs"].is_array(), "config dump: {dump}");
    assert!(envoy.listener_names().await.expect("listeners").is_empty());
    let info = envoy.admin_get("/server_info").await.expect("server_info");
    assert_eq!(
        envoy
            .stat("cluster_manager.cds.update_success")
            .await
            .expect("stat"),
        0
    );
    assert!(envoy.stat("no.such.stat").await.is_err());
    assert!(info.body.contains("harness-0.test"), "{}", info.body);
    // Envoy keeps trying the xds cluster: connection failures get counted.
    eventually("Envoy tries to reach the xds servers", || async {
        let stats = envoy
            .admin_get("/stats?filter=cluster.xds.upstream_cx_connect_fail")
            .await?;
        let failures: u64 = stats
            .text()
            .rsplit(": ")
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        anyhow::ensure!(failures >= 2, "stats: {}", stats.text());
        Ok(())
    })
    .await
    .expect("Envoy retries the control plane");
}
