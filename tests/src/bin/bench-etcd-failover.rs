//! bench-etcd-failover: what losing one etcd member of three costs.
//!
//! Starts a real 3-member etcd, two real controllers (one leads), a real
//! xds-server and a real Envoy, all given every member. Then, per case —
//! kill -9 or SIGSTOP, of the Raft leader member or of a follower — and per
//! round: loses the member and at the same instant edits the Endpoint's
//! file, then measures from the loss
//!
//! * **serve**: until a surviving member answers a linearizable read (etcd's
//!   own election, when the leader member was lost);
//! * **edit → Envoy**: until Envoy routes to the new upstream;
//! * **status/**: until the xds-server's next `status/` write (the ACK of the
//!   edit), seen by a watch on a surviving member;
//!
//! and whether the leading controller kept leading (same leader key, create
//! revision and lease; its `bootes_controller_leader` never read 0). The
//! member then comes back before the next round. A `none` case (no loss)
//! gives the same figures for an edit alone: the controller's directory poll
//! (200 ms) and the status write interval (1 s) are in every figure.
//!
//! ```text
//! cargo build --release --bins
//! BOOTES_CONTROLLER_BIN=target/release/bootes-controller \
//! BOOTES_XDS_SERVER_BIN=target/release/bootes-xds-server \
//!   target/release/bench-etcd-failover --rounds 5
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bootes_tests::harness::{
    endpoint_a, eventually, expect_routed, free_port, http_get, local, pod, route_all_to_cluster_a,
    Controller, Envoy, EtcdCluster, ManifestDir, Upstream, XdsServer,
};
use clap::Parser;
use etcd_client::{EventType, GetOptions, WatchOptions};
use tokio::time::Instant;

const PREFIX: &str = "/bootes/v1/";

#[derive(Debug, Parser)]
struct Args {
    /// Rounds per case.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Only the cases whose name contains this.
    #[arg(long)]
    only: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loss {
    None,
    Kill,
    Pause,
}

#[derive(Debug)]
struct Round {
    serve: Duration,
    envoy: Duration,
    status: Duration,
    kept: bool,
}

struct Bench {
    cluster: EtcdCluster,
    manifests: ManifestDir,
    ups: Vec<Upstream>,
    port: u16,
    controller: Controller,
    current: usize,
}

fn point_at(m: &ManifestDir, to: SocketAddr) -> Result<()> {
    m.write_docs("endpoint.yaml", &[endpoint_a("demo", &[to])])
}

impl Bench {
    async fn round(&mut self, loss: Loss, raft_leader: bool) -> Result<Round> {
        let leader = self.cluster.leader().await?;
        let victim = if raft_leader {
            leader
        } else {
            (leader + 1) % self.cluster.len()
        };
        let survivor = (0..self.cluster.len())
            .find(|&i| i != victim && i != leader)
            .context("no survivor")?;
        let leader_before = leader_key(&self.cluster, survivor).await?;
        // Watch status/ on a survivor from now on.
        let mut watcher = self.cluster.member_client(survivor).await?;
        let mut status = watcher
            .watch(
                format!("{PREFIX}status/"),
                Some(WatchOptions::new().with_prefix()),
            )
            .await?;
        let serving = self.cluster.member_client(survivor).await?;
        let metrics = self.controller.metrics_addr();
        self.current = 3 - self.current; // 1 <-> 2
        let want = self.ups[self.current].name().to_string();

        let t0 = Instant::now();
        match loss {
            Loss::None => {}
            Loss::Kill => self.cluster.kill(victim),
            Loss::Pause => self.cluster.pause(victim)?,
        }
        point_at(&self.manifests, self.ups[self.current].addr())?;

        let serve = tokio::spawn(async move {
            let mut c = serving;
            loop {
                let read = c.get("serving", Some(GetOptions::new()));
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), read).await {
                    return t0.elapsed();
                }
            }
        });
        let status_written = tokio::spawn(async move {
            while let Some(r) = status.message().await? {
                if r.events().iter().any(|e| e.event_type() == EventType::Put) {
                    return Ok(t0.elapsed());
                }
            }
            bail!("the status watch ended")
        });
        let leader_zero = tokio::spawn(async move {
            // Reads the leader gauge until aborted; true once it read 0.
            loop {
                if let Ok(m) = http_get(metrics, "127.0.0.1", "/metrics").await {
                    if m.body.lines().any(|l| l == "bootes_controller_leader 0") {
                        return true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let addr = local(self.port);
        let envoy = loop {
            if let Ok(r) = http_get(addr, "example.com", "/").await {
                if r.status == 200 && r.text() == want {
                    break t0.elapsed();
                }
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("the edit did not reach Envoy within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let status = tokio::time::timeout(Duration::from_secs(60), status_written)
            .await
            .context("no status/ write within 60 s")???;
        let serve = serve.await?;
        let dropped = leader_zero.is_finished();
        leader_zero.abort();
        let after = (0..self.cluster.len())
            .find(|&i| self.cluster.serves(i))
            .context("no member serves")?;
        let leader_after = leader_key(&self.cluster, after).await?;
        let kept = !dropped && leader_after == leader_before;
        if !kept {
            // Why, from the leading controller's own log.
            let log = std::fs::read_to_string(self.controller.process().stderr_path())?;
            eprintln!(
                "{loss:?} of member {victim}: leadership not kept (gauge read 0: {dropped}; key {leader_before:?} -> {leader_after:?}); controller log:"
            );
            for line in log
                .lines()
                .filter(|l| l.contains("lead") || l.contains("lease") || l.contains("etcd"))
                .rev()
                .take(15)
            {
                eprintln!("  {line}");
            }
        }

        match loss {
            Loss::None => {}
            Loss::Kill => self.cluster.restart(victim).await?,
            Loss::Pause => self.cluster.resume(victim).await?,
        }
        Ok(Round {
            serve,
            envoy,
            status,
            kept,
        })
    }
}

async fn leader_key(cluster: &EtcdCluster, via: usize) -> Result<(Vec<u8>, i64, i64)> {
    let mut c = cluster.member_client(via).await?;
    let resp = c.get(format!("{PREFIX}leader"), None).await?;
    let kv = resp.kvs().first().context("no leader key")?;
    Ok((kv.value().to_vec(), kv.create_revision(), kv.lease()))
}

fn ms(d: Duration) -> String {
    format!("{}", d.as_millis())
}

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let p50 = v[v.len() / 2];
    let max = *v.last().expect("rounds");
    format!("{} / {}", ms(p50), ms(max))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let ups = vec![
        Upstream::start("upstream-a").await?,
        Upstream::start("upstream-b").await?,
        Upstream::start("upstream-c").await?,
    ];
    let port = free_port();
    let manifests = ManifestDir::new()?;
    manifests.write_docs("pod.yaml", &[pod("demo", "envoy-0", &[("app", "edge")])])?;
    manifests.write_docs("objects.yaml", &route_all_to_cluster_a("demo", port))?;
    point_at(&manifests, ups[0].addr())?;

    let cluster = EtcdCluster::start(3).await?;
    let endpoints = cluster.endpoints();
    let controller = Controller::start_on(&endpoints, manifests.path(), &[]).await?;
    eventually("the first controller leads", || async {
        let m = http_get(controller.metrics_addr(), "127.0.0.1", "/metrics").await?;
        anyhow::ensure!(m.body.lines().any(|l| l == "bootes_controller_leader 1"));
        Ok(())
    })
    .await?;
    let _standby = Controller::start_on(&endpoints, manifests.path(), &[]).await?;
    let xds = XdsServer::start_on(&endpoints, "a", &[]).await?;
    let _envoy = Envoy::start("envoy-0.demo", &[xds.addr()]).await?;
    expect_routed(port, "example.com", "/", "upstream-a").await?;

    let mut bench = Bench {
        cluster,
        manifests,
        ups,
        port,
        controller,
        current: 2,
    };
    println!(
        "| case | rounds | serve p50 / max (ms) | edit → Envoy p50 / max | status/ write p50 / max | edit → Envoy after serve, max | leader kept | load (1 min) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let cases = [
        ("no loss", Loss::None, false),
        ("kill -9, Raft leader", Loss::Kill, true),
        ("kill -9, follower", Loss::Kill, false),
        ("SIGSTOP, Raft leader", Loss::Pause, true),
        ("SIGSTOP, follower", Loss::Pause, false),
    ];
    for (name, loss, raft_leader) in cases {
        if args
            .only
            .as_ref()
            .is_some_and(|o| !name.contains(o.as_str()))
        {
            continue;
        }
        let mut rounds = Vec::new();
        for _ in 0..args.rounds {
            rounds.push(bench.round(loss, raft_leader).await?);
        }
        let load = std::fs::read_to_string("/proc/loadavg")?;
        let after_serve = rounds
            .iter()
            .map(|r| r.envoy.saturating_sub(r.serve))
            .max()
            .expect("rounds");
        println!(
            "| {name} | {} | {} | {} | {} | {} | {}/{} | {} |",
            rounds.len(),
            stats(rounds.iter().map(|r| r.serve).collect()),
            stats(rounds.iter().map(|r| r.envoy).collect()),
            stats(rounds.iter().map(|r| r.status).collect()),
            ms(after_serve),
            rounds.iter().filter(|r| r.kept).count(),
            rounds.len(),
            load.split_whitespace().next().unwrap_or("?"),
        );
    }
    Ok(())
}
