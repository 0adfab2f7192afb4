//! bench-fanout: how fast one bootes-xds-server pushes a change to many
//! Envoys, and how much work that costs it.
//!
//! Starts a real etcd and the real `bootes-xds-server` (set
//! `BOOTES_XDS_SERVER_BIN`, e.g. to target/release/bootes-xds-server), writes
//! one group snapshot and `--nodes` bindings straight into etcd, opens one
//! state-of-the-world ADS stream per node (acting as Envoy: CDS request,
//! ACK), then changes one cluster `--rounds` times and measures, per round,
//! the time from the etcd write returning to each stream receiving the new
//! version. Prints a Markdown table row for BENCHMARKS.md.
//!
//! ```text
//! cargo build --release --bins
//! BOOTES_XDS_SERVER_BIN=target/release/bootes-xds-server \
//!   target/release/bench-fanout --nodes 1000 --clusters 100 --rounds 10
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bootes_proto::envoy::core::Node;
use bootes_proto::envoy::discovery::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use bootes_proto::envoy::discovery::DiscoveryRequest;
use bootes_proto::{store, version, Keys, ResourceType};
use bootes_tests::harness::{http_get, Etcd, XdsServer};
use clap::Parser;
use prost::Message;
use tokio::sync::mpsc;

#[derive(Debug, Parser)]
struct Args {
    /// Envoys (ADS streams), all bound to one group.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Clusters in the snapshot.
    #[arg(long, default_value_t = 100)]
    clusters: usize,
    /// Bytes of each cluster's body.
    #[arg(long, default_value_t = 512)]
    cluster_bytes: usize,
    /// Changes to measure.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// HTTP/2 connections the streams are spread over.
    #[arg(long, default_value_t = 50)]
    connections: usize,
}

fn snapshot(clusters: usize, bytes: usize, round: usize) -> store::Snapshot {
    let resources: Vec<store::Resource> = (0..clusters)
        .map(|i| {
            // Cluster 0 changes every round; the rest never do.
            let tag = if i == 0 { round } else { 0 };
            let mut value = format!("cluster-{i}-{tag}").into_bytes();
            value.resize(bytes, b'x');
            store::Resource {
                name: format!("cluster-{i:04}"),
                version: version::of_bytes(&value),
                value,
                source: None,
            }
        })
        .collect();
    let types = vec![store::TypeResources {
        type_url: ResourceType::Cluster.type_url().into(),
        version: version::of_set(
            resources
                .iter()
                .map(|r| (r.name.as_str(), r.version.as_str())),
        ),
        resources,
    }];
    store::Snapshot {
        namespace: "bench".into(),
        group: "g".into(),
        version: version::of_set(
            types
                .iter()
                .map(|t| (t.type_url.as_str(), t.version.as_str())),
        ),
        types,
        objects: vec![],
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

async fn metric(xds: &XdsServer, name: &str) -> Result<f64> {
    let response = http_get(xds.admin_addr(), "127.0.0.1", "/metrics").await?;
    let text = response.text();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .with_context(|| format!("metric {name} not found"))
}

/// One stream acting as Envoy: requests CDS, ACKs every response, and reports
/// (stream, version) for each response received.
async fn envoy_stream(
    mut client: AggregatedDiscoveryServiceClient<tonic::transport::Channel>,
    node: String,
    seen: mpsc::UnboundedSender<(usize, String, Instant)>,
    index: usize,
) -> Result<()> {
    let (tx, rx) = mpsc::unbounded_channel::<DiscoveryRequest>();
    tx.send(DiscoveryRequest {
        node: Some(Node {
            id: node,
            ..Default::default()
        }),
        type_url: ResourceType::Cluster.type_url().into(),
        ..Default::default()
    })?;
    let mut responses = client
        .stream_aggregated_resources(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    while let Some(resp) = responses.message().await? {
        let at = Instant::now();
        tx.send(DiscoveryRequest {
            type_url: resp.type_url.clone(),
            version_info: resp.version_info.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        })?;
        if seen.send((index, resp.version_info, at)).is_err() {
            break;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let keys = Keys::default();
    let etcd = Etcd::start().await?;
    let mut xds = XdsServer::start(&etcd, "bench").await?;
    let mut kv = etcd_client::Client::connect([etcd.endpoint()], None).await?;

    let snap_key = keys.snapshot("bench/g");
    let first = snapshot(args.clusters, args.cluster_bytes, 0);
    kv.put(snap_key.as_str(), first.encode_to_vec(), None)
        .await?;
    for chunk in (0..args.nodes).collect::<Vec<_>>().chunks(100) {
        let ops = chunk
            .iter()
            .map(|i| {
                let binding = store::NodeBinding {
                    snapshot: "bench/g".into(),
                    namespace: "bench".into(),
                    pod_name: format!("envoy-{i}"),
                    pod_uid: String::new(),
                };
                etcd_client::TxnOp::put(
                    keys.node(&format!("envoy-{i}.bench")),
                    binding.encode_to_vec(),
                    None,
                )
            })
            .collect::<Vec<_>>();
        kv.txn(etcd_client::Txn::new().and_then(ops)).await?;
    }

    let channels: Vec<tonic::transport::Channel> = {
        let mut v = Vec::new();
        for _ in 0..args.connections.max(1) {
            v.push(
                tonic::transport::Endpoint::from_shared(format!("http://{}", xds.addr()))?
                    .connect()
                    .await?,
            );
        }
        v
    };
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    for i in 0..args.nodes {
        let client = AggregatedDiscoveryServiceClient::new(channels[i % channels.len()].clone());
        let seen_tx = seen_tx.clone();
        tokio::spawn(async move {
            if let Err(e) = envoy_stream(client, format!("envoy-{i}.bench"), seen_tx, i).await {
                eprintln!("stream {i}: {e:#}");
            }
        });
    }
    drop(seen_tx);

    // Every stream has the first version.
    let want = first.types[0].version.clone();
    let mut have = vec![false; args.nodes];
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count < args.nodes {
        let (i, v, _) = tokio::time::timeout_at(deadline.into(), seen.recv())
            .await
            .context("streams did not all connect")?
            .context("streams ended")?;
        if v == want && !have[i] {
            have[i] = true;
            count += 1;
        }
    }
    let encodes_before = metric(&xds, "bootes_xds_response_encodings_total").await?;

    let mut all = Vec::new();
    let mut round_max = Vec::new();
    for round in 1..=args.rounds {
        let next = snapshot(args.clusters, args.cluster_bytes, round);
        let want = next.types[0].version.clone();
        let bytes = next.encode_to_vec();
        let t0 = Instant::now();
        kv.put(snap_key.as_str(), bytes, None).await?;
        let mut have = vec![false; args.nodes];
        let mut count = 0;
        let mut latencies = Vec::with_capacity(args.nodes);
        while count < args.nodes {
            let (i, v, at) = tokio::time::timeout(Duration::from_secs(60), seen.recv())
                .await
                .context("a push did not arrive")?
                .context("streams ended")?;
            if v == want && !have[i] {
                have[i] = true;
                count += 1;
                latencies.push(at.saturating_duration_since(t0));
            }
        }
        latencies.sort();
        round_max.push(*latencies.last().expect("nodes > 0"));
        all.extend(latencies);
    }
    all.sort();
    let encodes = metric(&xds, "bootes_xds_response_encodings_total").await? - encodes_before;
    let pushes = metric(&xds, "bootes_xds_pushes_total{type=\"CDS\"}").await?;
    let pid = xds.process().context("xds-server process")?.pid();
    let rss = rss_kib(pid).unwrap_or_default();
    if all.is_empty() {
        bail!("no rounds");
    }
    println!("| nodes | clusters | rounds | p50 | p99 | max | encodes/round | CDS pushes | xds-server RSS |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} | {} | {} MiB |",
        args.nodes,
        args.clusters,
        args.rounds,
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().expect("non-empty").as_secs_f64() * 1e3,
        encodes / args.rounds as f64,
        pushes,
        rss / 1024,
    );
    Ok(())
}
