//! A lean ADS client for the benchmark programs: many streams acting as
//! Envoys, decoding only what an ACK needs (type URL, version, nonce; never
//! the resources) so the client costs the shared cores as little as
//! possible; and the fixtures they bind (one group of STATIC clusters).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bootes_proto::envoy::core::Node;
use bootes_proto::{store, version, Keys, ResourceType};
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address, Address, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use prost::Message;
use tokio::sync::mpsc;

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
    #[prost(map = "string, string", tag = "5")]
    initial_resource_versions: HashMap<String, String>,
    #[prost(string, tag = "6")]
    response_nonce: String,
}

/// A delta resource: only its name and version.
#[derive(Clone, PartialEq, Message)]
struct DeltaResource {
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "1")]
    version: String,
}

/// A DeltaDiscoveryResponse with the names and versions of its resources.
#[derive(Clone, PartialEq, Message)]
struct DeltaResponse {
    #[prost(string, tag = "1")]
    system_version_info: String,
    #[prost(message, repeated, tag = "2")]
    resources: Vec<DeltaResource>,
    #[prost(string, tag = "4")]
    type_url: String,
    #[prost(string, tag = "5")]
    nonce: String,
}

const ADS: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_ADS: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// What a client holds of CDS: the SotW version it ACKed, or (delta) each
/// resource's version. Sent again on reconnect, so a server that honours it
/// sends nothing the client already has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    pub version_info: String,
    pub resources: HashMap<String, String>,
}

/// One response a stream received (and ACKed).
#[derive(Clone, Debug)]
pub struct Seen {
    pub stream: usize,
    /// SotW: the response's `version_info`. Delta: the snapshot's set
    /// version as `system_version_info`.
    pub version: String,
    /// Resources in the response (delta only; 0 for SotW, whose responses
    /// always carry the whole set).
    pub resources: usize,
    /// Delta only: the (name, version) of each resource in the response.
    pub updated: Vec<(String, String)>,
    pub at: Instant,
}

pub type SeenTx = mpsc::UnboundedSender<Seen>;

/// The node ID of stream `index`.
pub fn node_id(index: usize) -> String {
    format!("envoy-{index}.bench")
}

fn node(index: usize) -> Option<Node> {
    Some(Node {
        id: node_id(index),
        ..Default::default()
    })
}

/// What differs between the two variants of the protocol for a client that
/// subscribes to CDS, ACKs every response and reports it.
trait Variant {
    type Req: prost::Message + Default + Send + 'static;
    type Resp: prost::Message + Default + Send + 'static;
    const PATH: &'static str;
    /// The first request, telling what the client already holds.
    fn subscribe(index: usize, held: Held) -> Self::Req;
    /// The ACK of `resp`, and what the client saw in it.
    fn ack(index: usize, resp: Self::Resp, at: Instant) -> (Self::Req, Seen);
}

/// State of the world: what is held is told by `version_info`.
struct Sotw;

impl Variant for Sotw {
    type Req = Request;
    type Resp = Response;
    const PATH: &'static str = ADS;
    fn subscribe(index: usize, held: Held) -> Request {
        Request {
            node: node(index),
            type_url: ResourceType::Cluster.type_url().into(),
            version_info: held.version_info,
            ..Default::default()
        }
    }
    fn ack(index: usize, resp: Response, at: Instant) -> (Request, Seen) {
        let seen = Seen {
            stream: index,
            version: resp.version_info.clone(),
            resources: 0,
            updated: Vec::new(),
            at,
        };
        let ack = Request {
            type_url: resp.type_url,
            version_info: resp.version_info,
            response_nonce: resp.nonce,
            ..Default::default()
        };
        (ack, seen)
    }
}

/// Delta: what is held is told by `initial_resource_versions`.
struct Delta;

impl Variant for Delta {
    type Req = DeltaRequest;
    type Resp = DeltaResponse;
    const PATH: &'static str = DELTA_ADS;
    fn subscribe(index: usize, held: Held) -> DeltaRequest {
        DeltaRequest {
            node: node(index),
            type_url: ResourceType::Cluster.type_url().into(),
            initial_resource_versions: held.resources,
            ..Default::default()
        }
    }
    fn ack(index: usize, resp: DeltaResponse, at: Instant) -> (DeltaRequest, Seen) {
        let seen = Seen {
            stream: index,
            version: resp.system_version_info,
            resources: resp.resources.len(),
            updated: resp
                .resources
                .into_iter()
                .map(|r| (r.name, r.version))
                .collect(),
            at,
        };
        let ack = DeltaRequest {
            type_url: resp.type_url,
            response_nonce: resp.nonce,
            ..Default::default()
        };
        (ack, seen)
    }
}

/// One stream acting as Envoy on CDS in variant `V`: subscribes with what
/// it holds, ACKs every response and reports it. Returns when the server
/// ends the stream, or with the transport's error.
async fn stream<V: Variant>(
    channel: tonic::transport::Channel,
    index: usize,
    held: Held,
    seen: SeenTx,
) -> Result<()> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let (tx, rx) = mpsc::unbounded_channel::<V::Req>();
    tx.send(V::subscribe(index, held))?;
    let codec = tonic_prost::ProstCodec::<V::Req, V::Resp>::default();
    let mut responses = grpc
        .streaming(
            tonic::Request::new(tokio_stream::wrappers::UnboundedReceiverStream::new(rx)),
            http::uri::PathAndQuery::from_static(V::PATH),
            codec,
        )
        .await?
        .into_inner();
    while let Some(resp) = responses.message().await? {
        let (ack, seen_it) = V::ack(index, resp, Instant::now());
        tx.send(ack)?;
        if seen.send(seen_it).is_err() {
            break;
        }
    }
    Ok(())
}

/// A state-of-the-world stream (see `stream`): its first request carries
/// `held.version_info`.
pub async fn sotw_stream(
    channel: tonic::transport::Channel,
    index: usize,
    held: Held,
    seen: SeenTx,
) -> Result<()> {
    stream::<Sotw>(channel, index, held, seen).await
}

/// A delta stream (see `stream`): its first request carries
/// `held.resources` as `initial_resource_versions`.
pub async fn delta_stream(
    channel: tonic::transport::Channel,
    index: usize,
    held: Held,
    seen: SeenTx,
) -> Result<()> {
    stream::<Delta>(channel, index, held, seen).await
}

/// The replicas a roaming client may connect to; the test adds some as it
/// goes.
pub type Replicas = std::sync::Arc<std::sync::Mutex<Vec<std::net::SocketAddr>>>;

/// What a roaming client ([`roam`]) holds and did, as the test reads it.
#[derive(Debug, Default)]
pub struct Roamer {
    /// What it holds now: SotW by `version_info`, delta by resource.
    pub held: std::sync::Mutex<Held>,
    /// The index (in [`Replicas`]) of the replica its stream is on, if any.
    pub on: std::sync::Mutex<Option<usize>>,
    /// When each of its streams ended, and on which replica.
    pub ended: std::sync::Mutex<Vec<(usize, Instant)>>,
    /// Streams it opened.
    pub streams: std::sync::atomic::AtomicUsize,
    /// Responses that carried only what it held when its stream opened:
    /// what a server honouring `version_info` / `initial_resource_versions`
    /// never sends.
    pub resent: std::sync::atomic::AtomicUsize,
}

/// A client that, like an Envoy behind a Service, opens each stream on a new
/// connection to a replica picked at random, subscribes with what it holds,
/// and opens another when the server ends it. Runs until the task is
/// dropped.
pub async fn roam(index: usize, delta: bool, replicas: Replicas, me: std::sync::Arc<Roamer>) {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        let (on, addr) = {
            let r = replicas.lock().expect("replicas");
            let k = fastrand::usize(..r.len());
            (k, r[k])
        };
        let Ok(channel) = connect(addr).await else {
            // A replica going away: try another (a jittered pause, as
            // Envoy's back-off, not a wait on a condition).
            tokio::time::sleep(Duration::from_millis(20 + fastrand::u64(..80))).await;
            continue;
        };
        let at_open = me.held.lock().expect("held").clone();
        *me.on.lock().expect("on") = Some(on);
        me.streams.fetch_add(1, Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel::<Seen>();
        let held = at_open.clone();
        let run = tokio::spawn(async move {
            if delta {
                delta_stream(channel, index, held, tx).await
            } else {
                sotw_stream(channel, index, held, tx).await
            }
        });
        let mut first = true;
        while let Some(seen) = rx.recv().await {
            let mut held = me.held.lock().expect("held");
            if delta {
                let old = seen
                    .updated
                    .iter()
                    .all(|(n, v)| at_open.resources.get(n) == Some(v));
                if !seen.updated.is_empty() && old {
                    me.resent.fetch_add(1, Relaxed);
                }
                for (n, v) in seen.updated {
                    held.resources.insert(n, v);
                }
            } else {
                if first && !at_open.version_info.is_empty() && seen.version == at_open.version_info
                {
                    me.resent.fetch_add(1, Relaxed);
                }
                held.version_info = seen.version;
            }
            first = false;
        }
        let _ = run.await;
        *me.on.lock().expect("on") = None;
        me.ended.lock().expect("ended").push((on, Instant::now()));
    }
}

/// A plaintext HTTP/2 connection to an xds-server, with a window large
/// enough that a response is one read.
pub async fn connect(addr: std::net::SocketAddr) -> Result<tonic::transport::Channel> {
    Ok(
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .initial_stream_window_size(Some(1 << 20))
            .connect()
            .await?,
    )
}

/// Waits until each of `streams` has reported `want`; returns each one's
/// arrival time, indexed by stream.
pub async fn wait_all(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    streams: &[usize],
    want: &str,
    timeout: Duration,
) -> Result<HashMap<usize, Instant>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut have = HashMap::with_capacity(streams.len());
    let wanted: std::collections::HashSet<usize> = streams.iter().copied().collect();
    while have.len() < wanted.len() {
        let s = tokio::time::timeout_at(deadline, seen.recv())
            .await
            .with_context(|| {
                format!(
                    "only {} of {} streams got {want} in time",
                    have.len(),
                    wanted.len()
                )
            })?
            .context("streams ended")?;
        if s.version == want && wanted.contains(&s.stream) {
            have.entry(s.stream).or_insert(s.at);
        }
    }
    Ok(have)
}

/// The `p` quantile of sorted durations (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

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

/// The bench group's snapshot (`bench/g`) of `clusters` STATIC clusters;
/// each `round` moves every cluster to other ports.
pub fn snapshot(clusters: usize, round: usize) -> store::Snapshot {
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

/// What a client holds after ACKing `snapshot`.
pub fn held(snapshot: &store::Snapshot) -> Held {
    let cds = &snapshot.types[0];
    Held {
        version_info: cds.version.clone(),
        resources: cds
            .resources
            .iter()
            .map(|r| (r.name.clone(), r.version.clone()))
            .collect(),
    }
}

/// Key of the bench group's snapshot.
pub fn snapshot_key(keys: &Keys) -> String {
    keys.snapshot("bench/g")
}

/// Binds nodes `0..nodes` to the bench group, 100 per transaction.
pub async fn bind_nodes(kv: &mut etcd_client::Client, keys: &Keys, nodes: usize) -> Result<()> {
    for chunk in (0..nodes).collect::<Vec<_>>().chunks(100) {
        let ops = chunk
            .iter()
            .map(|i| {
                let binding = store::NodeBinding {
                    snapshot: "bench/g".into(),
                    namespace: "bench".into(),
                    pod_name: format!("envoy-{i}"),
                    ..Default::default()
                };
                etcd_client::TxnOp::put(keys.node(&node_id(*i)), binding.encode_to_vec(), None)
            })
            .collect::<Vec<_>>();
        kv.txn(etcd_client::Txn::new().and_then(ops)).await?;
    }
    Ok(())
}

/// What the first response to a named subscription said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// Names of the resources it carried.
    pub resources: Vec<String>,
    /// Delta: names in `removed_resources`.
    pub removed: Vec<String>,
    /// xRFC TP3 `resource_errors`: (name, google.rpc code).
    pub errors: Vec<(String, i32)>,
}

/// Opens a stream (delta or state of the world) as node `index`, subscribes
/// to `names` of `ty` (none: a wildcard subscription) and returns the first
/// response, decoded in full.
pub async fn subscribe(
    channel: tonic::transport::Channel,
    index: usize,
    delta: bool,
    ty: ResourceType,
    names: &[&str],
) -> Result<Answer> {
    use bootes_proto::envoy::discovery::{
        DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
        ResourceError,
    };
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let errors = |errors: Vec<ResourceError>| {
        errors
            .into_iter()
            .map(|e| {
                (
                    e.resource_name.map(|n| n.name).unwrap_or_default(),
                    e.error_detail.map(|s| s.code).unwrap_or_default(),
                )
            })
            .collect()
    };
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    if delta {
        let req = DeltaDiscoveryRequest {
            node: node(index),
            type_url: ty.type_url().into(),
            resource_names_subscribe: names,
            ..Default::default()
        };
        let codec =
            tonic_prost::ProstCodec::<DeltaDiscoveryRequest, DeltaDiscoveryResponse>::default();
        let mut responses = grpc
            .streaming(
                tonic::Request::new(tokio_stream::iter([req])),
                http::uri::PathAndQuery::from_static(DELTA_ADS),
                codec,
            )
            .await?
            .into_inner();
        let r = responses.message().await?.context("stream ended")?;
        Ok(Answer {
            resources: r.resources.into_iter().map(|r| r.name).collect(),
            removed: r.removed_resources,
            errors: errors(r.resource_errors),
        })
    } else {
        let req = DiscoveryRequest {
            node: node(index),
            type_url: ty.type_url().into(),
            resource_names: names,
            ..Default::default()
        };
        let codec = tonic_prost::ProstCodec::<DiscoveryRequest, DiscoveryResponse>::default();
        let mut responses = grpc
            .streaming(
                tonic::Request::new(tokio_stream::iter([req])),
                http::uri::PathAndQuery::from_static(ADS),
                codec,
            )
            .await?
            .into_inner();
        let r = responses.message().await?.context("stream ended")?;
        let resources = r
            .resources
            .iter()
            .map(|any| {
                // Every type Bootes serves names its resource in field 1.
                #[derive(Clone, PartialEq, Message)]
                struct Named {
                    #[prost(string, tag = "1")]
                    name: String,
                }
                Named::decode(any.value.as_slice()).map(|n| n.name)
            })
            .collect::<Result<_, _>>()?;
        Ok(Answer {
            resources,
            removed: Vec::new(),
            errors: errors(r.resource_errors),
        })
    }
}
