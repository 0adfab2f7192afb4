//! bench-fanout: one bootes-xds-server replica carrying many Envoys.
//!
//! The protocol of issue 11, so figures compare with other xDS servers
//! measured the same way: `--streams` ADS streams (state of the world, or
//! delta with `--delta`), one node ID each, `--per-connection` streams per
//! HTTP/2 connection, all bound to one group of `--clusters` STATIC clusters
//! (`cluster-0`…, 1 s connect timeout, one inline endpoint each). Every
//! stream subscribes to CDS and ACKs every response. Then, `--rounds` times,
//! the ports of every cluster change at once.
//!
//! Reported: the full sync (streams opened → every stream has the first
//! version), the update latency (the etcd write returning → each stream
//! receiving the new version; p50/p99/max over every stream and round), and
//! the server's RSS per stream (RSS with the streams minus RSS before, over
//! the streams). The client decodes only what an ACK needs (type URL,
//! version, nonce; never the resources), so it costs the shared cores as
//! little as possible. Starts a real etcd and the real server
//! (`BOOTES_XDS_SERVER_BIN`, e.g. target/release/bootes-xds-server).
//!
//! ```text
//! cargo build --release --bins
//! BOOTES_XDS_SERVER_BIN=target/release/bootes-xds-server \
//!   target/release/bench-fanout --streams 10000 --rounds 5 [--delta]
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bootes_proto::envoy::core::Node;
use bootes_proto::{store, version, Keys, ResourceType};
use bootes_tests::harness::{eventually, http_get, Etcd, XdsServer};
use clap::Parser;
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address, Address, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use prost::Message;
use tokio::sync::mpsc;

#[derive(Debug, Parser)]
struct Args {
    /// ADS streams (Envoys), one node ID each, all bound to one group.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Streams per HTTP/2 connection.
    #[arg(long, default_value_t = 10)]
    per_connection: usize,
    /// STATIC clusters in the group.
    #[arg(long, default_value_t = 100)]
    clusters: usize,
    /// Changes (of every cluster's port) to measure.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Delta xDS instead of state of the world.
    #[arg(long)]
    delta: bool,
}

/// A DiscoveryRequest with only what the client sends.
#[derive(Clone, PartialEq, Message)]
struct Request {
    #[prost(string, tag = "1")]
    version_info: String,
    #[prost(message, optional, tag = "2")]
    node: Option<Node>,
    #[prost(string, tag = "4")]
    type_url: String,
    #[prost(string, tag = "5")]
    response_nonce: String,
}

/// A DiscoveryResponse without its resources (prost skips unknown fields).
#[derive(Clone, PartialEq, Message)]
struct Response {
    #[prost(string, tag = "1")]
    version_info: String,
    #[prost(string, tag = "4")]
    type_url: String,
    #[prost(string, tag = "5")]
    nonce: String,
}

/// A DeltaDiscoveryRequest with only what the client sends.
#[derive(Clone, PartialEq, Message)]
struct DeltaRequest {
    #[prost(message, optional, tag = "1")]
    node: Option<Node>,
    #[prost(string, tag = "2")]
    type_url: String,
    #[prost(string, tag = "6")]
    response_nonce: String,
}

/// A DeltaDiscoveryResponse without its resources.
#[derive(Clone, PartialEq, Message)]
struct DeltaResponse {
    #[prost(string, tag = "1")]
    system_version_info: String,
    #[prost(string, tag = "4")]
    type_url: String,
    #[prost(string, tag = "5")]
    nonce: String,
}

const ADS: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_ADS: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

fn cluster(i: usize, port: u32) -> Cluster {
    let name = format!("cluster-{i}");
    Cluster {
        name: name.clone(),
        connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: 1,
            nanos: 0,
        }),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name,
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(Address {
                            address: Some(address::Address::SocketAddress(SocketAddress {
                                address: "127.0.0.1".into(),
                                port_specifier: Some(socket_address::PortSpecifier::PortValue(
                                    port,
                                )),
                                ..Default::default()
                            })),
                        }),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The group's snapshot; `round` moves every cluster to other ports.
fn snapshot(clusters: usize, round: usize) -> store::Snapshot {
    let resources: Vec<store::Resource> = (0..clusters)
        .map(|i| {
            let value = cluster(i, 20_000 + (round * clusters + i) as u32 % 40_000).encode_to_vec();
            store::Resource {
                name: format!("cluster-{i}"),
                version: version::of_bytes(&value),
                value,
                ..Default::default()
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

type Seen = mpsc::UnboundedSender<(usize, String, Instant)>;

fn node(index: usize) -> Option<Node> {
    Some(Node {
        id: format!("envoy-{index}.bench"),
        ..Default::default()
    })
}

/// One state-of-the-world stream acting as Envoy: CDS, ACK every response.
async fn sotw_stream(channel: tonic::transport::Channel, index: usize, seen: Seen) -> Result<()> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let (tx, rx) = mpsc::unbounded_channel::<Request>();
    tx.send(Request {
        node: node(index),
        type_url: ResourceType::Cluster.type_url().into(),
        ..Default::default()
    })?;
    let codec = tonic_prost::ProstCodec::<Request, Response>::default();
    let mut responses = grpc
        .streaming(
            tonic::Request::new(tokio_stream::wrappers::UnboundedReceiverStream::new(rx)),
            http::uri::PathAndQuery::from_static(ADS),
            codec,
        )
        .await?
        .into_inner();
    while let Some(resp) = responses.message().await? {
        let at = Instant::now();
        tx.send(Request {
            type_url: resp.type_url,
            version_info: resp.version_info.clone(),
            response_nonce: resp.nonce,
            ..Default::default()
        })?;
        if seen.send((index, resp.version_info, at)).is_err() {
            break;
        }
    }
    Ok(())
}

/// One delta stream acting as Envoy: CDS, ACK every response.
async fn delta_stream(channel: tonic::transport::Channel, index: usize, seen: Seen) -> Result<()> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let (tx, rx) = mpsc::unbounded_channel::<DeltaRequest>();
    tx.send(DeltaRequest {
        node: node(index),
        type_url: ResourceType::Cluster.type_url().into(),
        ..Default::default()
    })?;
    let codec = tonic_prost::ProstCodec::<DeltaRequest, DeltaResponse>::default();
    let mut responses = grpc
        .streaming(
            tonic::Request::new(tokio_stream::wrappers::UnboundedReceiverStream::new(rx)),
            http::uri::PathAndQuery::from_static(DELTA_ADS),
            codec,
        )
        .await?
        .into_inner();
    while let Some(resp) = responses.message().await? {
        let at = Instant::now();
        tx.send(DeltaRequest {
            type_url: resp.type_url,
            response_nonce: resp.nonce,
            ..Default::default()
        })?;
        if seen.send((index, resp.system_version_info, at)).is_err() {
            break;
        }
    }
    Ok(())
}

/// Waits until every stream has reported `want`; returns each stream's
/// arrival time.
async fn wait_all(
    seen: &mut mpsc::UnboundedReceiver<(usize, String, Instant)>,
    streams: usize,
    want: &str,
    timeout: Duration,
) -> Result<Vec<Instant>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut have: Vec<Option<Instant>> = vec![None; streams];
    let mut count = 0;
    while count < streams {
        let (i, v, at) = tokio::time::timeout_at(deadline, seen.recv())
            .await
            .with_context(|| format!("only {count} of {streams} streams got {want} in time"))?
            .context("streams ended")?;
        if v == want && have[i].is_none() {
            have[i] = Some(at);
            count += 1;
        }
    }
    Ok(have.into_iter().flatten().collect())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let keys = Keys::default();
    let etcd = Etcd::start().await?;
    let mut xds = XdsServer::start(&etcd, "bench").await?;
    let mut kv = etcd_client::Client::connect([etcd.endpoint()], None).await?;

    let snap_key = keys.snapshot("bench/g");
    let first = snapshot(args.clusters, 0);
    kv.put(snap_key.as_str(), first.encode_to_vec(), None)
        .await?;
    for chunk in (0..args.streams).collect::<Vec<_>>().chunks(100) {
        let ops = chunk
            .iter()
            .map(|i| {
                let binding = store::NodeBinding {
                    snapshot: "bench/g".into(),
                    namespace: "bench".into(),
                    pod_name: format!("envoy-{i}"),
                    ..Default::default()
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
    let pid = xds.process().context("xds-server process")?.pid();
    // The baseline is the server with every binding loaded, no stream yet.
    let admin = xds.admin_addr();
    let nodes = format!("bootes_xds_nodes {}", args.streams);
    eventually("the xds-server loaded every binding", || async {
        let r = http_get(admin, "127.0.0.1", "/metrics").await?;
        anyhow::ensure!(r.text().lines().any(|l| l == nodes), "not yet");
        Ok(())
    })
    .await?;
    let rss_before = bootes_tests::harness::rss_kib(pid).unwrap_or_default();

    let connections = args.streams.div_ceil(args.per_connection.max(1));
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(
            tonic::transport::Endpoint::from_shared(format!("http://{}", xds.addr()))?
                .initial_stream_window_size(Some(1 << 20))
                .connect()
                .await?,
        );
    }
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let t_open = Instant::now();
    for i in 0..args.streams {
        let channel = channels[i / args.per_connection.max(1)].clone();
        let seen_tx = seen_tx.clone();
        let seen_closed = seen_tx.clone();
        let delta = args.delta;
        tokio::spawn(async move {
            let r = if delta {
                delta_stream(channel, i, seen_tx).await
            } else {
                sotw_stream(channel, i, seen_tx).await
            };
            // Once measured, the server is stopped: quiet about that.
            if let Err(e) = r {
                if !seen_closed.is_closed() {
                    eprintln!("stream {i}: {e:#}");
                }
            }
        });
    }
    drop(seen_tx);
    let want = &first.types[0].version;
    let arrivals = wait_all(&mut seen, args.streams, want, Duration::from_secs(300)).await?;
    let full_sync = arrivals
        .iter()
        .map(|at| at.saturating_duration_since(t_open))
        .max()
        .unwrap_or_default();
    let rss_with = bootes_tests::harness::rss_kib(pid).unwrap_or_default();

    let mut all = Vec::new();
    for round in 1..=args.rounds {
        let next = snapshot(args.clusters, round);
        let bytes = next.encode_to_vec();
        let t0 = Instant::now();
        kv.put(snap_key.as_str(), bytes, None).await?;
        let arrivals = wait_all(
            &mut seen,
            args.streams,
            &next.types[0].version,
            Duration::from_secs(120),
        )
        .await?;
        all.extend(arrivals.iter().map(|at| at.saturating_duration_since(t0)));
    }
    if all.is_empty() {
        bail!("no rounds");
    }
    all.sort();
    drop(seen);
    let rss_after = bootes_tests::harness::rss_kib(pid).unwrap_or_default();
    let per_stream = |rss: u64| rss.saturating_sub(rss_before) as f64 / args.streams as f64;
    println!("| variant | streams | per conn | clusters | rounds | full sync | update p50 | p99 | max | RSS/stream after sync | after updates |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {:.2} s | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} KiB | {:.1} KiB |",
        if args.delta { "delta" } else { "SotW" },
        args.streams,
        args.per_connection,
        args.clusters,
        args.rounds,
        full_sync.as_secs_f64(),
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().expect("non-empty").as_secs_f64() * 1e3,
        per_stream(rss_with),
        per_stream(rss_after),
    );
    Ok(())
}
