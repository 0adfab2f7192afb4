//! End to end: an Envoy that moves to another xds-server replica is not sent
//! again what it already has (docs/DESIGN.md §1, §4: versions are content hashes,
//! so every replica computes the same ones and honours the `version_info`
//! Envoy reconnects with).
//!
//! Needs `cargo build --bins` first, etcd and Envoy (see
//! `tests/src/harness/mod.rs`).

use std::net::SocketAddr;

use anyhow::{ensure, Result};
use bootes_tests::harness::{
    endpoint_a, eventually, expect_routed, free_port, pod, route_all_to_cluster_a, Envoy,
    ManifestDir, Stack, Upstream,
};

/// Pod envoy-0.demo; listener_1 → route-1 → cluster-a (EDS) → `a`.
fn write_fixture(m: &ManifestDir, port: u16, a: SocketAddr) -> Result<()> {
    m.write_docs("pod.yaml", &[pod("demo", "envoy-0", &[("app", "edge")])])?;
    m.write_docs("objects.yaml", &route_all_to_cluster_a("demo", port))?;
    m.write_docs("endpoint-a.yaml", &[endpoint_a("demo", &[a])])
}

/// Envoy's counters of accepted xDS updates, per type.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct UpdateCounts {
    cds: u64,
    lds: u64,
    rds: u64,
    eds_cluster_a: u64,
}

async fn update_counts(envoy: &Envoy) -> Result<UpdateCounts> {
    Ok(UpdateCounts {
        cds: envoy.stat("cluster_manager.cds.update_success").await?,
        lds: envoy.stat("listener_manager.lds.update_success").await?,
        rds: envoy
            .stat("http.listener_1.rds.route-1.update_success")
            .await?,
        eds_cluster_a: envoy.stat("cluster.cluster-a.update_success").await?,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_moving_to_another_replica_is_not_sent_what_it_already_has() {
    // Versions are content hashes, so the replica Envoy reconnects to knows
    // from `version_info` that Envoy is up to date, and sends only the next
    // change. Responses on one stream arrive in order, so once that change is
    // seen, any redundant push before it would have been counted.
    let up_a = Upstream::start("upstream-a").await.unwrap();
    let up_c = Upstream::start("upstream-c").await.unwrap();
    let port = free_port();
    let m = ManifestDir::new().unwrap();
    write_fixture(&m, port, up_a.addr()).unwrap();
    let mut stack = Stack::start(&m, 2).await.unwrap();
    let envoy = Envoy::start("envoy-0.demo", &stack.xds_addrs())
        .await
        .unwrap();
    expect_routed(port, "example.com", "/", "upstream-a")
        .await
        .unwrap();
    let before = update_counts(&envoy).await.unwrap();

    let first = envoy.connected_xds_server().await.unwrap();
    stack.replica(first).unwrap().kill();
    let second = eventually("Envoy reconnects to the other replica", || async {
        let now = envoy.connected_xds_servers().await?;
        ensure!(now.len() == 1 && now[0] != first, "connected to {now:?}");
        Ok(now[0])
    })
    .await
    .unwrap();
    assert_ne!(first, second);

    // One change, to the Endpoint only.
    m.write_docs("endpoint-a.yaml", &[endpoint_a("demo", &[up_c.addr()])])
        .unwrap();
    expect_routed(port, "example.com", "/", "upstream-c")
        .await
        .unwrap();
    let after = update_counts(&envoy).await.unwrap();
    assert_eq!(
        after,
        UpdateCounts {
            eds_cluster_a: before.eds_cluster_a + 1,
            ..before
        },
        "after reconnecting, Envoy should get the Endpoint change only (before: {before:?})"
    );
}
