//! Two controller replicas: one leads and writes, the other keeps its index
//! warm; killing the leader hands over, and later changes still reach Envoy.

use anyhow::{ensure, Context, Result};
use bootes_tests::harness::{
    endpoint_a, eventually, expect_routed, free_port, pod, route_all_to_cluster_a, Controller,
    Envoy, Etcd, ManifestDir, Upstream, XdsServer,
};
use serde_json::Value;

fn routing(port: u16, upstream: std::net::SocketAddr) -> Vec<Value> {
    let mut docs = vec![pod("demo", "envoy-0", &[])];
    docs.extend(route_all_to_cluster_a("demo", port));
    docs.push(endpoint_a("demo", &[upstream]));
    docs
}

/// The identity stored in the leader key, and the process ID it ends with.
async fn leader_pid(etcd_endpoint: &str) -> Result<u32> {
    let mut client = etcd_client::Client::connect([etcd_endpoint], None).await?;
    let resp = client.get("/bootes/v1/leader", None).await?;
    let kv = resp.kvs().first().context("no leader key")?;
    let identity = String::from_utf8_lossy(kv.value()).into_owned();
    let pid = identity
        .rsplit('-')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("leader identity {identity:?}"))?;
    Ok(pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_hands_over_and_changes_still_arrive() -> Result<()> {
    let a = Upstream::start("upstream-a").await?;
    let b = Upstream::start("upstream-b").await?;
    let c = Upstream::start("upstream-c").await?;
    let port = free_port();
    let m = ManifestDir::new()?;
    m.write_docs("routing.yaml", &routing(port, a.addr()))?;
    let etcd = Etcd::start().await?;
    // A short lease, so that a SIGKILLed leader is replaced quickly.
    let ttl = ["--leader-lease-ttl", "2s"];
    let mut replicas = [
        Controller::start_with_args(&etcd, m.path(), &ttl).await?,
        Controller::start_with_args(&etcd, m.path(), &ttl).await?,
    ];
    let xds = XdsServer::start(&etcd, "a").await?;
    let _envoy = Envoy::start("envoy-0.demo", &[xds.addr()]).await?;
    expect_routed(port, "example.com", "/", "upstream-a").await?;

    let pids = [replicas[0].process().pid(), replicas[1].process().pid()];
    let endpoint_url = etcd.endpoint();
    let leader = eventually("one of the replicas leads", || {
        let endpoint_url = endpoint_url.clone();
        async move {
            let pid = leader_pid(&endpoint_url).await?;
            ensure!(pids.contains(&pid), "leader pid {pid}, replicas {pids:?}");
            Ok(pid)
        }
    })
    .await?;
    let (dead, survivor) = if pids[0] == leader { (0, 1) } else { (1, 0) };

    // A change while both run is applied (by the leader).
    m.write_docs("routing.yaml", &routing(port, b.addr()))?;
    expect_routed(port, "example.com", "/", "upstream-b").await?;

    // The follower says so, and has not written (its log has no write).
    let follower_log = replicas[survivor].process().stderr_path().to_path_buf();
    let log = std::fs::read_to_string(&follower_log)?;
    ensure!(log.contains("following"), "follower log:\n{log}");
    ensure!(
        !log.contains("wrote etcd"),
        "the follower wrote to etcd:\n{log}"
    );

    // SIGKILL the leader: no resignation, its lease must expire first.
    replicas[dead].process().kill();
    m.write_docs("routing.yaml", &routing(port, c.addr()))?;
    expect_routed(port, "example.com", "/", "upstream-c").await?;
    assert_eq!(
        leader_pid(&endpoint_url).await?,
        pids[survivor],
        "the survivor leads"
    );
    replicas[survivor].process().check_running()?;
    let log = std::fs::read_to_string(&follower_log)?;
    ensure!(log.contains("became leader"), "survivor log:\n{log}");
    Ok(())
}
