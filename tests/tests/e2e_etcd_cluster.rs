//! End to end on a 3-member etcd cluster (DESIGN.md §1: etcd is the one
//! shared state, and it scales out too). Both processes get every member in
//! `--etcd-endpoints a,b,c`. Losing a member — killed (kill -9) or hung
//! (SIGSTOP: its connections stay open), the Raft leader or a follower —
//! loses nothing: edits reach Envoy, status records keep being written, and
//! the controller that leads keeps leading (its lease is kept alive through
//! the other members; the follower controller never takes over). After each
//! loss the member comes back, and every member ends with the same contents.

use std::net::SocketAddr;

use anyhow::{ensure, Context, Result};
use bootes_tests::harness::{
    endpoint_a, eventually, expect_routed, find_bootes_bin, free_port, http_get, pod,
    route_all_to_cluster_a, Controller, Envoy, EtcdCluster, ManifestDir, Upstream, XdsServer,
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

/// The leader key's value and create revision: a controller that lost
/// leadership, even for a moment, writes it anew.
async fn leader_key(cluster: &EtcdCluster, via: usize) -> Result<(Vec<u8>, i64)> {
    let mut c = cluster.member_client(via).await?;
    let resp = c.get(format!("{PREFIX}leader"), None).await?;
    let kv = resp.kvs().first().context("no leader key")?;
    Ok((kv.value().to_vec(), kv.create_revision()))
}

/// Lines of `controller`'s log saying it stopped leading, or that its
/// election was interrupted.
fn leadership_losses(controller: &mut Controller) -> Result<Vec<String>> {
    let log = std::fs::read_to_string(controller.process().stderr_path())?;
    Ok(log
        .lines()
        .filter(|l| l.contains("stepping down") || l.contains("leader election interrupted"))
        .map(str::to_string)
        .collect())
}

/// `bootes-controller inspect nodes` on every member: it answers from the
/// members that do.
fn inspect_nodes(endpoints: &str) -> Result<String> {
    let bin = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN")?;
    let out = std::process::Command::new(&bin)
        .args([
            "inspect",
            "nodes",
            "-o",
            "json",
            "--etcd-endpoints",
            endpoints,
        ])
        .env_remove("BOOTES_ETCD_PREFIX")
        .output()?;
    ensure!(
        out.status.success(),
        "inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[derive(Clone, Copy, Debug)]
enum Loss {
    Kill,
    Pause,
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
    // Every process starts with a member that never answers (hung: its
    // port accepts connections), and works from the other two.
    let hung_at_start = (cluster.leader().await.unwrap() + 1) % cluster.len();
    cluster.pause(hung_at_start).unwrap();
    let mut controller = Controller::start_on(&endpoints, m.path(), &[])
        .await
        .unwrap();
    controller_leads(&controller).await.unwrap();
    // A second replica, ready to take over should the first lose its lease.
    let _standby = Controller::start_on(&endpoints, m.path(), &[])
        .await
        .unwrap();
    let xds = XdsServer::start_on(&endpoints, "a", &[]).await.unwrap();
    let envoy = Envoy::start("envoy-0.demo", &[xds.addr()]).await.unwrap();
    expect_routed(port, "example.com", "/", "upstream-a")
        .await
        .unwrap();
    cluster.resume(hung_at_start).await.unwrap();

    let cases = [
        (Loss::Kill, true),
        (Loss::Kill, false),
        (Loss::Pause, true),
        (Loss::Pause, false),
    ];
    for (round, (loss, raft_leader)) in cases.into_iter().enumerate() {
        let leader = cluster.leader().await.unwrap();
        let victim = if raft_leader {
            leader
        } else {
            (leader + 1) % cluster.len()
        };
        let case = format!("{loss:?} of member {victim} (Raft leader: {raft_leader})");
        let survivor = (0..cluster.len())
            .find(|&i| i != victim && i != leader)
            .unwrap();
        let statuses_before =
            eventually("the xds-server records envoy-0.demo's status", || async {
                let now = status_records(&cluster, survivor).await?;
                ensure!(!now.is_empty(), "no status record");
                Ok(now)
            })
            .await
            .unwrap();
        let leading_before = leader_key(&cluster, survivor).await.unwrap();

        match loss {
            Loss::Kill => cluster.kill(victim),
            Loss::Pause => cluster.pause(victim).unwrap(),
        }
        // A change made while the member is down reaches Envoy: the
        // controller writes it, the xds-server's watch sees it.
        let target = &ups[round % 2 + 1];
        point_at(&m, target.addr()).unwrap();
        expect_routed(port, "example.com", "/", target.name())
            .await
            .unwrap_or_else(|e| panic!("{case}: {e:#}"));
        controller_leads(&controller)
            .await
            .unwrap_or_else(|e| panic!("{case}: {e:#}"));
        // The xds-server records the new ACK through the other members.
        eventually("the status record follows the new ACK", || async {
            let now = status_records(&cluster, survivor).await?;
            ensure!(!now.is_empty() && now != statuses_before, "unchanged");
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("{case}: {e:#}"));
        // inspect answers from the other members.
        let nodes = inspect_nodes(&endpoints).unwrap_or_else(|e| panic!("{case}: {e:#}"));
        assert!(nodes.contains("envoy-0.demo"), "{case}: {nodes}");
        // The same controller led throughout, on the same key and lease.
        let survivor_now = (0..cluster.len()).find(|&i| cluster.serves(i)).unwrap();
        assert_eq!(
            leader_key(&cluster, survivor_now).await.unwrap(),
            leading_before,
            "{case}: leadership changed"
        );
        assert_eq!(
            leadership_losses(&mut controller).unwrap(),
            Vec::<String>::new(),
            "{case}"
        );

        match loss {
            Loss::Kill => cluster.restart(victim).await.unwrap(),
            Loss::Pause => cluster.resume(victim).await.unwrap(),
        }
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
