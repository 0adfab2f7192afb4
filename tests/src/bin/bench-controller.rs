//! bench-controller: how fast bootes-controller turns many objects and pods
//! into etcd snapshots, and how much one edit costs.
//!
//! Writes a manifest directory with `--namespaces` namespaces, each holding
//! `--deployments` label sets of `--pods-per-deployment` pods and, per label
//! set, a Cluster and an Endpoint (plus one Listener and one Route for the
//! whole namespace); starts a real etcd and the real controller (set
//! `BOOTES_CONTROLLER_BIN`, e.g. to target/release/bootes-controller) and
//! measures: the time until every node binding is in etcd, and then, for
//! `--rounds` edits of one Endpoint, the time from the file being written to
//! the new snapshot being in etcd, with the etcd work the controller reports.
//!
//! ```text
//! cargo build --release --bins
//! BOOTES_CONTROLLER_BIN=target/release/bootes-controller \
//!   target/release/bench-controller --namespaces 10 --deployments 10 --pods-per-deployment 10
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bootes_proto::Keys;
use bootes_tests::harness::{
    cluster_eds, endpoint, listener_http, pod, route, Controller, Etcd, ManifestDir, VirtualHost,
};
use clap::Parser;
use etcd_client::GetOptions;
use prost::Message as _;
use serde_json::Value;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// Label sets (as of Deployments) per namespace.
    #[arg(long, default_value_t = 10)]
    deployments: usize,
    #[arg(long, default_value_t = 10)]
    pods_per_deployment: usize,
    #[arg(long, default_value_t = 10)]
    rounds: usize,
}

fn namespace_docs(ns: &str, deployments: usize, pods: usize, round: usize) -> Vec<Value> {
    let mut docs = Vec::new();
    let routes: Vec<(String, String)> = (0..deployments)
        .map(|d| (format!("/d{d}"), format!("cluster-{d}")))
        .collect();
    let routes: Vec<(&str, &str)> = routes
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    docs.push(listener_http(
        ns,
        "listener",
        "listener",
        10000,
        "routes",
        &[],
    ));
    docs.push(route(
        ns,
        "routes",
        "routes",
        &[VirtualHost::new("all", &["*"], &routes)],
        &[],
    ));
    for d in 0..deployments {
        let app = format!("app-{d}");
        let labels = [("app", app.as_str())];
        let cluster = format!("cluster-{d}");
        // Endpoint 0 of namespace 0 changes every round.
        let port = if d == 0 { 20000 + round as u16 } else { 20000 };
        let addr = format!("127.0.0.1:{port}").parse().expect("address");
        docs.push(cluster_eds(ns, &cluster, &cluster, &labels));
        docs.push(endpoint(
            ns,
            &format!("endpoint-{d}"),
            &cluster,
            &[addr],
            &labels,
        ));
        for p in 0..pods {
            docs.push(pod(ns, &format!("{app}-{p}"), &labels));
        }
    }
    docs
}

async fn count(client: &mut etcd_client::Client, prefix: &str) -> Result<usize> {
    let resp = client
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await?;
    Ok(resp.count() as usize)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let nodes = args.namespaces * args.deployments * args.pods_per_deployment;
    let objects = args.namespaces * (2 + 2 * args.deployments);
    let m = ManifestDir::new()?;
    for n in 0..args.namespaces {
        let ns = format!("ns-{n}");
        m.write_docs(
            &format!("{ns}.yaml"),
            &namespace_docs(&ns, args.deployments, args.pods_per_deployment, 0),
        )?;
    }
    let etcd = Etcd::start().await?;
    let keys = Keys::default();
    let mut kv = etcd_client::Client::connect([etcd.endpoint()], None).await?;

    let t0 = Instant::now();
    let mut controller = Controller::start(&etcd, m.path()).await?;
    loop {
        if count(&mut kv, &keys.nodes()).await? == nodes {
            break;
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(120),
            "bindings never complete"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let initial = t0.elapsed();
    let groups = count(&mut kv, &keys.snapshots()).await?;

    // Edits: one Endpoint in ns-0 changes; the snapshot of its group follows.
    let group_of = async |kv: &mut etcd_client::Client| -> Result<Vec<u8>> {
        let binding = kv.get(keys.node("app-0-0.ns-0"), None).await?;
        let binding = bootes_proto::store::NodeBinding::decode(
            binding.kvs().first().context("binding")?.value(),
        )?;
        let snap = kv.get(keys.snapshot(&binding.snapshot), None).await?;
        Ok(snap.kvs().first().context("snapshot")?.value().to_vec())
    };
    let mut latencies = Vec::new();
    for round in 1..=args.rounds {
        let before = group_of(&mut kv).await?;
        let t = Instant::now();
        m.write_docs(
            "ns-0.yaml",
            &namespace_docs("ns-0", args.deployments, args.pods_per_deployment, round),
        )?;
        loop {
            if group_of(&mut kv).await? != before {
                break;
            }
            anyhow::ensure!(t.elapsed() < Duration::from_secs(30), "edit never written");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let rss_mib = controller.process().rss_kib().unwrap_or_default() as f64 / 1024.0;
    let log = std::fs::read_to_string(controller.process().stderr_path())?;
    let writes: Vec<&str> = log.lines().filter(|l| l.contains("wrote etcd")).collect();
    let first = writes.first().copied().unwrap_or_default();
    let last = writes.last().copied().unwrap_or_default();
    let field = |line: &str, name: &str| -> String {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or("?")
            .to_string()
    };
    // Reconcile plus write of each edit, as the controller measures it.
    let mut syncs: Vec<u64> = writes
        .iter()
        .skip(1)
        .filter_map(|l| field(l, "elapsed_ms").parse().ok())
        .collect();
    syncs.sort();
    let sync = match (syncs.get(syncs.len() / 2), syncs.last()) {
        (Some(p50), Some(max)) => format!("{p50} ms (max {max})"),
        _ => "?".to_string(),
    };
    println!("| pods | objects | groups | first full write | its txns / puts / bytes | edit → etcd p50 | max | per edit: puts / bytes | reconcile + write p50 | controller RSS |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {nodes} | {objects} | {groups} | {:.0} ms | {} / {} / {} | {:.0} ms | {:.0} ms | {} / {} | {sync} | {rss_mib:.0} MiB |",
        initial.as_secs_f64() * 1e3,
        field(first, "txns"),
        field(first, "puts"),
        field(first, "bytes"),
        latencies[latencies.len() / 2].as_secs_f64() * 1e3,
        latencies.last().expect("rounds > 0").as_secs_f64() * 1e3,
        field(last, "puts"),
        field(last, "bytes"),
    );
    Ok(())
}
