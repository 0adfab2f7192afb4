//! End to end on a 3-member etcd cluster (docs/DESIGN.md §1: etcd is the one
//! shared state, and it scales out too). Both processes get every member in
//! `--etcd-endpoints a,b,c`. Killing a member — the Raft leader, then a
//! follower — and later restarting it loses nothing: writes, watches,
//! status records and the controller's leader election go on through the
//! other members, and every member ends with the same contents.

use std::net::SocketAddr;

use anyhow::{ensure, Result};
use bootes_tests::harness::{
    endpoint_a, eventually, expect_routed, free_port, http_get, pod, route_all_to_cluster_a,
    Controller, Envoy, EtcdCluster, ManifestDir, Upstream, XdsServer,
};

const PREFIX: &str = "/bootes/v1/";

fn write_fixture(m: &ManifestDir, port: u16, to: SocketAddr) -> Result<()> {
    m.write_docs("pod.yaml", &[pod("demo", "envoy-0", &[("app", "edge")])])?;
    m.write_docs("objects.yaml", &route_all_to_cluster_a("demo", port))?;
    point_at(m, to)
}

fn point_at(m: &ManifestDir, to: SocketAddr) -> Result<()> {
    m.write_docs("endpoint.yaml", &[endpoint_a("demo", &[to])])
}

/// The status records the xds-server keeps for envoy-0.demo, read through a
/// running member.
async fn status_records(cluster: &EtcdCluster, via: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    cluster
        .local_contents(via, &format!("{PREFIX}status/envoy-0.demo/"))
        .await
}

async fn controller_leads(controller: &Controller) -> Result<()> {
    let addr = controller.metrics_addr();
    eventually("the controller is the leader and ready", || async {
        let m = http_get(addr, "127.0.0.1", "/metrics").await?;
        ensure!(
            m.body.lines().any(|l| l == "bootes_controller_leader 1"),
            "not leader"
        );
        let r = http_get(addr, "127.0.0.1", "/readyz").await?;
        ensure!(r.status == 200, "/readyz {} {}", r.status, r.body);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_any_member_of_a_three_member_etcd_loses_nothing() {
    let ups = [
        Upstream::start("upstream-a").await.unwrap(),
        Upstream::start("upstream-b").await.unwrap(),
        Upstream::start("upstream-c").await.unwrap(),
    ];
    let port = free_port();
    let m = ManifestDir::new().unwrap();
    write_fixture(&m, port, ups[0].addr()).unwrap();

    let mut cluster = EtcdCluster::start(3).await.unwrap();
    let endpoints = cluster.endpoints();
    let controller = Controller::start_on(&endpoints, m.path(), &[])
        .await
        .unwrap();
    let xds = XdsServer::start_on(&endpoints, "a", &[]).await.unwrap();
    let envoy = Envoy::start("envoy-0.demo", &[xds.addr()]).await.unwrap();
    expect_routed(port, "example.com", "/", "upstream-a")
        .await
        .unwrap();

    // First the Raft leader, then a follower.
    let leader = cluster.leader().await.unwrap();
    let follower = (leader + 1) % cluster.len();
    for (round, victim) in [leader, follower].into_iter().enumerate() {
        let survivor = (victim + 2) % cluster.len();
        let statuses_before =
            eventually("the xds-server records envoy-0.demo's status", || async {
                let now = status_records(&cluster, survivor).await?;
                ensure!(!now.is_empty(), "no status record");
                Ok(now)
            })
            .await
            .unwrap();

        cluster.kill(victim);
        // A change made while the member is down reaches Envoy: the
        // controller writes it, the xds-server's watch sees it.
        let target = &ups[round + 1];
        point_at(&m, target.addr()).unwrap();
        expect_routed(port, "example.com", "/", target.name())
            .await
            .unwrap_or_else(|e| panic!("with member {victim} down: {e:#}"));
        controller_leads(&controller)
            .await
            .unwrap_or_else(|e| panic!("with member {victim} down: {e:#}"));
        // The xds-server records the new ACK through the other members.
        eventually("the status record follows the new ACK", || async {
            let now = status_records(&cluster, survivor).await?;
            ensure!(!now.is_empty() && now != statuses_before, "unchanged");
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("with member {victim} down: {e:#}"));

        cluster.restart(victim).await.unwrap();
    }

    // One more change with every member back, then every member holds the
    // same contents: nothing was lost on any of them.
    point_at(&m, ups[0].addr()).unwrap();
    expect_routed(port, "example.com", "/", "upstream-a")
        .await
        .unwrap();
    eventually("every member holds the same contents", || async {
        let first = cluster.local_contents(0, PREFIX).await?;
        ensure!(
            first
                .iter()
                .any(|(k, _)| k.starts_with(b"/bootes/v1/nodes/")),
            "no bindings"
        );
        for i in 1..cluster.len() {
            ensure!(
                cluster.local_contents(i, PREFIX).await? == first,
                "member {i} differs from member 0"
            );
        }
        Ok(())
    })
    .await
    .unwrap();
    assert!(
        envoy
            .stat("cluster.cluster-a.update_rejected")
            .await
            .unwrap()
            == 0
    );
}
