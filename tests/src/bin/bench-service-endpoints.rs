//! bench-service-endpoints: what a rolling update of a Deployment costs when
//! an Endpoint takes its endpoints from the Deployment's Service (issue 14).
//!
//! Writes a manifest directory (namespace `bench`) with `--groups` ×
//! `--envoys-per-group` Envoy pods (one group per label set, made distinct by
//! one Cluster each), an EDS Cluster `web` and an Endpoint naming Service
//! `web` received by every Envoy, and the Service's EndpointSlices
//! (`--pods` pods, at most `--slice-size` per slice, one file per slice).
//! Starts a real etcd, the real controller in directory mode and one real
//! xds-server, and opens one ADS stream per Envoy (acting as Envoy: an EDS
//! request for `web`, ACK every response).
//!
//! Then it replaces the pods one by one as a rolling update does, each
//! replacement being four pod changes, each one slice edit: the new pod
//! appears not ready; it becomes ready; the old pod terminates (still
//! serving); the old pod is gone. After each edit it waits for the
//! controller's reconcile and, if something was written, for every stream to
//! receive the new endpoints. It prints the etcd transactions, puts and bytes
//! (the controller's metrics) and the EDS pushes (the xds-server's metrics)
//! per pod change.
//!
//! ```text
//! cargo build --release --bins
//! BOOTES_CONTROLLER_BIN=target/release/bootes-controller \
//! BOOTES_XDS_SERVER_BIN=target/release/bootes-xds-server \
//!   target/release/bench-service-endpoints --groups 10 --envoys-per-group 100 --pods 100
//! ```

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bootes_proto::envoy::core::Node;
use bootes_proto::envoy::discovery::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use bootes_proto::envoy::discovery::DiscoveryRequest;
use bootes_proto::ResourceType;
use bootes_tests::harness::{
    cluster_eds, endpoint_for_service, endpoint_slice, metric, metric_sum, pod, Controller, Etcd,
    ManifestDir, SliceEndpoint, XdsServer,
};
use clap::Parser;
use serde_json::{json, Value};
use tokio::sync::mpsc;

const NS: &str = "bench";
const PORT: u16 = 8080;

#[derive(Debug, Parser)]
struct Args {
    /// Groups of Envoys (label sets selected by different objects).
    #[arg(long, default_value_t = 10)]
    groups: usize,
    #[arg(long, default_value_t = 100)]
    envoys_per_group: usize,
    /// Pods of the Deployment behind Service `web`.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Endpoints per EndpointSlice (Kubernetes' default maximum is 100).
    #[arg(long, default_value_t = 100)]
    slice_size: usize,
    /// HTTP/2 connections the streams are spread over.
    #[arg(long, default_value_t = 50)]
    connections: usize,
}

/// A pod address: a loopback address nobody connects to (no Envoy runs).
fn pod_ip(generation: u8, i: usize) -> std::net::IpAddr {
    Ipv4Addr::new(127, generation, (i / 250) as u8, (i % 250) as u8 + 1).into()
}

/// The EndpointSlices of Service `web`, as their endpoints change.
struct Slices {
    slices: Vec<Vec<SliceEndpoint>>,
    size: usize,
}

impl Slices {
    fn new(pods: usize, size: usize) -> Self {
        let all: Vec<SliceEndpoint> = (0..pods)
            .map(|i| SliceEndpoint::Ready(pod_ip(1, i)))
            .collect();
        Self {
            slices: all.chunks(size).map(<[_]>::to_vec).collect(),
            size,
        }
    }

    fn doc(&self, n: usize) -> Value {
        endpoint_slice(
            NS,
            &format!("web-{n}"),
            "web",
            "http",
            PORT,
            &self.slices[n],
        )
    }

    fn write(&self, m: &ManifestDir, n: usize) -> Result<()> {
        m.write_docs(&format!("slice-{n}.yaml"), &[self.doc(n)])
    }

    /// Replaces the endpoint of `ip` in pod `i`'s slice (or adds it, or
    /// removes it with `None`); returns the slice edited.
    fn set(&mut self, i: usize, ip: std::net::IpAddr, to: Option<SliceEndpoint>) -> usize {
        let n = i / self.size;
        let slice = &mut self.slices[n];
        let at = slice.iter().position(|e| {
            matches!(*e, SliceEndpoint::Ready(a) | SliceEndpoint::NotReady(a) | SliceEndpoint::Terminating(a) if a == ip)
        });
        match (at, to) {
            (Some(at), Some(e)) => slice[at] = e,
            (None, Some(e)) => slice.push(e),
            (Some(at), None) => {
                slice.remove(at);
            }
            (None, None) => {}
        }
        n
    }
}

/// One stream acting as Envoy: requests EDS for `web`, ACKs every response,
/// and reports (stream, version) for each response.
async fn envoy_stream(
    mut client: AggregatedDiscoveryServiceClient<tonic::transport::Channel>,
    node: String,
    seen: mpsc::UnboundedSender<(usize, String)>,
    index: usize,
) -> Result<()> {
    let (tx, rx) = mpsc::unbounded_channel::<DiscoveryRequest>();
    tx.send(DiscoveryRequest {
        node: Some(Node {
            id: node,
            ..Default::default()
        }),
        type_url: ResourceType::Endpoint.type_url().into(),
        resource_names: vec!["web".into()],
        ..Default::default()
    })?;
    let mut responses = client
        .stream_aggregated_resources(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    while let Some(resp) = responses.message().await? {
        tx.send(DiscoveryRequest {
            type_url: resp.type_url.clone(),
            version_info: resp.version_info.clone(),
            response_nonce: resp.nonce.clone(),
            resource_names: vec!["web".into()],
            ..Default::default()
        })?;
        if seen.send((index, resp.version_info)).is_err() {
            break;
        }
    }
    Ok(())
}

/// The last EDS version each stream received.
struct Fleet {
    rx: mpsc::UnboundedReceiver<(usize, String)>,
    last: Vec<Option<String>>,
}

impl Fleet {
    /// Waits until every stream holds the same version, other than `previous`.
    async fn converged(&mut self, previous: Option<&str>) -> Result<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(Some(first)) = self.last.first() {
                if Some(first.as_str()) != previous
                    && self.last.iter().all(|v| v.as_ref() == Some(first))
                {
                    return Ok(first.clone());
                }
            }
            let (i, version) = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .context("the streams did not all receive the change")?
                .context("the streams ended")?;
            self.last[i] = Some(version);
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    reconciles: f64,
    written: f64,
    txns: f64,
    puts: f64,
    bytes: f64,
    eds_pushes: f64,
    pushes: f64,
}

async fn counters(controller: &Controller, xds: &XdsServer) -> Result<Counters> {
    let c = controller.metrics_addr();
    let x = xds.admin_addr();
    Ok(Counters {
        reconciles: metric_sum(c, "bootes_controller_reconciles_total").await?,
        written: metric(c, "bootes_controller_reconciles_total{result=\"written\"}").await?,
        txns: metric(c, "bootes_controller_etcd_write_txns_total").await?,
        puts: metric(c, "bootes_controller_etcd_write_ops_total{op=\"put\"}").await?,
        bytes: metric(c, "bootes_controller_etcd_write_bytes_total").await?,
        eds_pushes: metric(x, "bootes_xds_pushes_total{type=\"EDS\"}").await?,
        pushes: metric_sum(x, "bootes_xds_pushes_total").await?,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let nodes = args.groups * args.envoys_per_group;
    let m = ManifestDir::new()?;
    let mut objects = vec![
        cluster_eds(NS, "web", "web", &[]),
        endpoint_for_service(NS, "web", "web", "web", json!("http"), &[]),
    ];
    let mut envoys = Vec::new();
    for g in 0..args.groups {
        let group = format!("g{g}");
        let labels = [("group", group.as_str())];
        objects.push(cluster_eds(
            NS,
            &format!("cluster-{group}"),
            &format!("cluster-{group}"),
            &labels,
        ));
        for e in 0..args.envoys_per_group {
            envoys.push(pod(NS, &format!("envoy-{group}-{e}"), &labels));
        }
    }
    m.write_docs("objects.yaml", &objects)?;
    m.write_docs("envoys.yaml", &envoys)?;
    let mut slices = Slices::new(args.pods, args.slice_size.max(1));
    for n in 0..slices.slices.len() {
        slices.write(&m, n)?;
    }

    let etcd = Etcd::start().await?;
    // Poll and debounce quickly: the wait per edit is not what is measured.
    let controller = Controller::start_with_args(
        &etcd,
        m.path(),
        &["--poll-interval", "20ms", "--debounce", "10ms"],
    )
    .await?;
    let xds = XdsServer::start(&etcd, "bench").await?;

    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(
            tonic::transport::Endpoint::from_shared(format!("http://{}", xds.addr()))?
                .connect()
                .await?,
        );
    }
    let (seen_tx, rx) = mpsc::unbounded_channel();
    for i in 0..nodes {
        let client = AggregatedDiscoveryServiceClient::new(channels[i % channels.len()].clone());
        let seen_tx = seen_tx.clone();
        let node = format!(
            "envoy-g{}-{}.{NS}",
            i / args.envoys_per_group,
            i % args.envoys_per_group
        );
        tokio::spawn(async move {
            if let Err(e) = envoy_stream(client, node, seen_tx, i).await {
                eprintln!("stream {i}: {e:#}");
            }
        });
    }
    drop(seen_tx);
    let mut fleet = Fleet {
        rx,
        last: vec![None; nodes],
    };
    let mut version = fleet.converged(None).await?;
    let groups = metric(controller.metrics_addr(), "bootes_controller_groups").await?;

    let start = counters(&controller, &xds).await?;
    let t0 = Instant::now();
    let mut changes = 0usize;
    let mut quiet = 0usize;
    for i in 0..args.pods {
        let (old, new) = (pod_ip(1, i), pod_ip(2, i));
        let steps = [
            (new, Some(SliceEndpoint::NotReady(new))),
            (new, Some(SliceEndpoint::Ready(new))),
            (old, Some(SliceEndpoint::Terminating(old))),
            (old, None),
        ];
        for (ip, to) in steps {
            let before = counters(&controller, &xds).await?;
            let n = slices.set(i, ip, to);
            slices.write(&m, n)?;
            changes += 1;
            let deadline = Instant::now() + Duration::from_secs(60);
            let after = loop {
                let now = counters(&controller, &xds).await?;
                if now.reconciles > before.reconciles {
                    break now;
                }
                if Instant::now() > deadline {
                    bail!("the controller did not reconcile pod change {changes}");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            if after.written > before.written {
                version = fleet.converged(Some(&version)).await?;
            } else {
                quiet += 1;
            }
        }
    }
    let elapsed = t0.elapsed();
    let end = counters(&controller, &xds).await?;
    let per = |f: fn(&Counters) -> f64| (f(&end) - f(&start)) / changes as f64;
    println!("| Envoys | groups | pods | pod changes | without a write | per pod change: txns / puts / bytes | EDS pushes | other pushes | wall time |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {nodes} | {groups} | {} | {changes} | {quiet} | {:.2} / {:.2} / {:.0} | {:.1} | {:.1} | {:.1} s |",
        args.pods,
        per(|c| c.txns),
        per(|c| c.puts),
        per(|c| c.bytes),
        per(|c| c.eds_pushes),
        per(|c| c.pushes - c.eds_pushes),
        elapsed.as_secs_f64(),
    );
    Ok(())
}
