//! The stream handling (`stream::serve`) in process: a real tonic server and
//! client over an in-memory duplex connection, against a fake snapshot
//! source.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bootes_proto::envoy::cluster_service::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
use bootes_proto::envoy::core::Node;
use bootes_proto::envoy::discovery::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use bootes_proto::envoy::discovery::{DiscoveryRequest, DiscoveryResponse};
use bootes_xds::session::Limits;
use bootes_xds::snapshots::{Resource, Snapshot};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

use super::*;
use crate::clients::Clients;

/// Snapshots set by the test; every change is published.
#[derive(Debug)]
struct FakeSource {
    by_node: Mutex<HashMap<String, Arc<Snapshot>>>,
    changed: watch::Sender<(i64, Instant)>,
}

impl FakeSource {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            by_node: Mutex::new(HashMap::new()),
            changed: watch::Sender::new((0, Instant::now())),
        })
    }

    fn set(&self, node: &str, snapshot: Arc<Snapshot>) {
        self.by_node.lock().unwrap().insert(node.into(), snapshot);
        self.changed
            .send_modify(|(revision, at)| (*revision, *at) = (*revision + 1, Instant::now()));
    }
}

impl SnapshotSource for FakeSource {
    fn for_node(&self, node_id: &str) -> Option<Arc<Snapshot>> {
        self.by_node.lock().unwrap().get(node_id).cloned()
    }

    fn subscribe(&self) -> watch::Receiver<(i64, Instant)> {
        self.changed.subscribe()
    }

    fn binding(&self, _node_id: &str) -> Option<bootes_xds::snapshots::Binding> {
        // Without client authentication (as here) bindings are not asked.
        None
    }
}

/// A snapshot with clusters at `version` each.
fn clusters(version: &str, names: &[&str]) -> Arc<Snapshot> {
    let resources = names
        .iter()
        .map(|n| {
            let r = Resource {
                name: n.to_string(),
                version: version.into(),
                value: Bytes::from(format!("{n}@{version}")),
                source: String::new(),
            };
            (n.to_string(), Arc::new(r))
        })
        .collect();
    Arc::new(Snapshot::new(
        "ns/g".into(),
        version.into(),
        BTreeMap::from([(ResourceType::Cluster, resources)]),
    ))
}

struct Running {
    source: Arc<FakeSource>,
    metrics: Arc<Metrics>,
    channel: Channel,
    drain: watch::Sender<bool>,
}

/// Serves the xDS services on one in-memory connection.
async fn start() -> Running {
    start_with(Policy::default()).await
}

async fn start_with(policy: Policy) -> Running {
    start_server(policy, Admit::new(0, Duration::ZERO), Duration::ZERO).await
}

async fn start_server(policy: Policy, admission: Admit, drain_period: Duration) -> Running {
    let source = FakeSource::new();
    let metrics = Arc::new(Metrics::new());
    let (drain, draining) = watch::channel(false);
    let server = Arc::new(Server {
        snapshots: source.clone(),
        cache: ResponseCache::new(),
        clients: Arc::new(Clients::default()),
        metrics: metrics.clone(),
        draining,
        drain_period,
        drain_spread: Default::default(),
        max_connection_age: None,
        policy: policy.clone(),
        admission,
    });
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_routes(XdsService::new(server).routes())
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server_io)))
            .await
            .unwrap();
    });
    let mut client_io = Some(client_io);
    let channel = Endpoint::from_static("http://in-process")
        .connect_with_connector(tower::service_fn(move |_| {
            let io = client_io.take();
            async move {
                io.map(TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("one connection only"))
            }
        }))
        .await
        .unwrap();
    Running {
        source,
        metrics,
        channel,
        drain,
    }
}

fn cds(node: Option<&str>, version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: node.map(|id| Node {
            id: id.into(),
            ..Default::default()
        }),
        type_url: ResourceType::Cluster.type_url().into(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

type Requests = mpsc::Sender<DiscoveryRequest>;

async fn ads(channel: &Channel) -> (Requests, Streaming<DiscoveryResponse>) {
    let (tx, rx) = mpsc::channel(8);
    let responses = AggregatedDiscoveryServiceClient::new(channel.clone())
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, responses)
}

/// The next response, or `None` when none comes while everything is idle
/// (paused time jumps ahead when every task waits).
async fn next(responses: &mut Streaming<DiscoveryResponse>) -> Option<DiscoveryResponse> {
    tokio::time::timeout(Duration::from_secs(5), responses.message())
        .await
        .ok()
        .map(|r| r.unwrap().expect("stream open"))
}

fn names(r: &DiscoveryResponse) -> Vec<String> {
    r.resources
        .iter()
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_stream_gets_its_snapshot_then_each_change_and_nothing_after_an_ack() {
    let s = start().await;
    s.source.set("n1", clusters("v1", &["a"]));
    let (requests, mut responses) = ads(&s.channel).await;
    requests.send(cds(Some("n1"), "", "")).await.unwrap();
    let first = next(&mut responses).await.expect("the snapshot's clusters");
    assert_eq!(names(&first), ["a@v1"]);
    // ACK: nothing more to send.
    requests
        .send(cds(None, &first.version_info, &first.nonce))
        .await
        .unwrap();
    assert!(next(&mut responses).await.is_none(), "nothing after an ACK");
    // A change of the node's snapshot is pushed.
    s.source.set("n1", clusters("v2", &["a", "b"]));
    let second = next(&mut responses).await.expect("the change");
    assert_eq!(names(&second), ["a@v2", "b@v2"]);
    assert_ne!(second.version_info, first.version_info);
    // Another node's change is not.
    requests
        .send(cds(None, &second.version_info, &second.nonce))
        .await
        .unwrap();
    s.source.set("n2", clusters("v3", &["c"]));
    assert!(next(&mut responses).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_node_without_a_snapshot_waits_for_one() {
    let s = start().await;
    let (requests, mut responses) = ads(&s.channel).await;
    requests.send(cds(Some("late"), "", "")).await.unwrap();
    assert!(next(&mut responses).await.is_none(), "no binding yet: wait");
    s.source.set("late", clusters("v1", &["a"]));
    let r = next(&mut responses).await.expect("served once bound");
    assert_eq!(names(&r), ["a@v1"]);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_version_is_not_sent_again() {
    let s = start().await;
    s.source.set("n1", clusters("v1", &["a"]));
    let (requests, mut responses) = ads(&s.channel).await;
    requests.send(cds(Some("n1"), "", "")).await.unwrap();
    let first = next(&mut responses).await.unwrap();
    // NACK: the version stays the previous one (none), with an error.
    let mut nack = cds(None, "", &first.nonce);
    nack.error_detail = Some(bootes_proto::envoy::RpcStatus {
        code: 3,
        message: "bad cluster".into(),
        details: vec![],
    });
    requests.send(nack).await.unwrap();
    assert!(next(&mut responses).await.is_none(), "not resent");
    s.source.set("n1", clusters("v2", &["a"]));
    assert_eq!(names(&next(&mut responses).await.unwrap()), ["a@v2"]);
}

#[tokio::test(start_paused = true)]
async fn bad_first_requests_end_the_stream_with_invalid_argument() {
    let s = start().await;
    // No node in the first request.
    let (requests, mut responses) = ads(&s.channel).await;
    requests.send(cds(None, "", "")).await.unwrap();
    let status = responses.message().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");

    // A per-type service asked for another type.
    let (tx, rx) = mpsc::channel(8);
    let mut responses = ClusterDiscoveryServiceClient::new(s.channel.clone())
        .stream_clusters(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut req = cds(Some("n1"), "", "");
    req.type_url = ResourceType::Listener.type_url().into();
    tx.send(req).await.unwrap();
    let status = responses.message().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
    assert!(status.message().contains("serves"), "{status}");
}

#[tokio::test(start_paused = true)]
async fn draining_ends_streams_with_unavailable() {
    let s = start().await;
    s.source.set("n1", clusters("v1", &["a"]));
    let (requests, mut responses) = ads(&s.channel).await;
    requests.send(cds(Some("n1"), "", "")).await.unwrap();
    next(&mut responses).await.unwrap();
    s.drain.send_replace(true);
    let status = responses.message().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
}

#[tokio::test(start_paused = true)]
async fn a_drain_ends_the_streams_evenly_over_its_period() {
    // 10 streams, a 10 s drain: one stream ends in each second of it.
    let s = start_server(
        Policy::default(),
        Admit::new(0, Duration::ZERO),
        Duration::from_secs(10),
    )
    .await;
    s.source.set("n1", clusters("v1", &["a"]));
    let mut open = Vec::new();
    for _ in 0..10 {
        let (requests, mut responses) = ads(&s.channel).await;
        requests.send(cds(Some("n1"), "", "")).await.unwrap();
        next(&mut responses).await.expect("served");
        open.push((requests, responses));
    }
    let t0 = Instant::now();
    s.drain.send_replace(true);
    let ends = futures::future::join_all(open.iter_mut().map(|(_, responses)| async move {
        let status = responses.message().await.expect_err("ended by the drain");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
        t0.elapsed()
    }))
    .await;
    let mut seconds: Vec<u64> = ends.iter().map(|d| d.as_secs()).collect();
    seconds.sort();
    assert_eq!(seconds, (0..10).collect::<Vec<_>>(), "ended after {ends:?}");
}

/// The status that ended the stream (the next message is an error).
async fn ended(responses: &mut Streaming<DiscoveryResponse>) -> tonic::Status {
    tokio::time::timeout(Duration::from_secs(5), responses.message())
        .await
        .expect("the stream ends")
        .expect_err("an error status")
}

#[tokio::test(start_paused = true)]
async fn a_request_naming_too_many_resources_ends_the_stream() {
    let s = start_with(Policy {
        limits: Limits {
            max_resource_names: 2,
            ..Limits::default()
        },
        ..Policy::default()
    })
    .await;
    s.source.set("n1", clusters("v1", &["a"]));
    let (requests, mut responses) = ads(&s.channel).await;
    let mut req = cds(Some("n1"), "", "");
    req.resource_names = vec!["a".into(), "b".into(), "c".into()];
    requests.send(req).await.unwrap();
    let status = ended(&mut responses).await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
}

#[tokio::test(start_paused = true)]
async fn an_overlong_node_id_ends_the_stream() {
    let s = start_with(Policy {
        limits: Limits {
            max_node_id: 8,
            ..Limits::default()
        },
        ..Policy::default()
    })
    .await;
    let (requests, mut responses) = ads(&s.channel).await;
    requests
        .send(cds(Some("a-very-long-node.id"), "", ""))
        .await
        .unwrap();
    assert_eq!(
        ended(&mut responses).await.code(),
        tonic::Code::InvalidArgument
    );
}

#[tokio::test(start_paused = true)]
async fn without_authentication_sds_requests_go_unanswered_and_the_rest_flows() {
    let s = start_with(Policy {
        allow_unauthenticated_secrets: false,
        ..Policy::default()
    })
    .await;
    let base = clusters("v1", &["a"]);
    let mut types = base.types.clone();
    let secret = Resource {
        name: "key".into(),
        version: "s1".into(),
        value: Bytes::from_static(b"private"),
        source: String::new(),
    };
    types.insert(
        ResourceType::Secret,
        BTreeMap::from([("key".to_string(), Arc::new(secret))]),
    );
    let snapshot = Snapshot::new(base.key.clone(), base.version.clone(), types);
    s.source.set("n1", Arc::new(snapshot));
    let (requests, mut responses) = ads(&s.channel).await;
    let mut sds = cds(Some("n1"), "", "");
    sds.type_url = ResourceType::Secret.type_url().into();
    sds.resource_names = vec!["key".into()];
    requests.send(sds).await.unwrap();
    let refused = next(&mut responses).await.expect("refused by name");
    assert!(refused.resources.is_empty(), "no Secret sent");
    let error = &refused.resource_errors[0];
    assert_eq!(error.resource_name.as_ref().unwrap().name, "key");
    assert_eq!(
        error.error_detail.as_ref().unwrap().code,
        7,
        "PERMISSION_DENIED"
    );
    requests.send(cds(None, "", "")).await.unwrap();
    let r = next(&mut responses).await.expect("clusters still served");
    assert_eq!(names(&r), ["a@v1"]);
}

#[tokio::test(start_paused = true)]
async fn new_streams_beyond_the_rate_wait_their_turn_then_are_refused_unavailable() {
    // 2 a second, waiting at most 0.5 s: of 4 streams opened at once, 2 are
    // served at once, the third after 0.5 s, the fourth (1 s away) refused.
    let admission = Admit::new(2, Duration::from_millis(500));
    let s = start_server(Policy::default(), admission, Duration::ZERO).await;
    s.source.set("n1", clusters("v1", &["a"]));
    let t0 = Instant::now();
    let open = |channel: Channel| async move {
        let (tx, rx) = mpsc::channel(8);
        tx.send(cds(Some("n1"), "", "")).await.unwrap();
        let opened = AggregatedDiscoveryServiceClient::new(channel)
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await;
        let mut responses = opened?.into_inner();
        let first = next(&mut responses).await.expect("served");
        assert_eq!(names(&first), ["a@v1"]);
        let served_after = t0.elapsed();
        tx.send(cds(None, &first.version_info, &first.nonce))
            .await
            .unwrap();
        Ok::<_, tonic::Status>((tx, responses, served_after))
    };
    let outcomes = futures::future::join_all((0..4).map(|_| open(s.channel.clone()))).await;
    let mut served = Vec::new();
    let mut refused = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(stream) => served.push(stream),
            Err(status) => refused.push(status),
        }
    }
    let mut waited: Vec<Duration> = served.iter().map(|(_, _, after)| *after).collect();
    waited.sort();
    assert_eq!(
        waited,
        [Duration::ZERO, Duration::ZERO, Duration::from_millis(500)],
        "one second's worth at once, the next at its turn"
    );
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].code(), tonic::Code::Unavailable);
    assert!(
        refused[0].message().contains("new streams per second"),
        "{:?}",
        refused[0]
    );
    let counted = s.metrics.encode();
    assert!(
        counted.contains(r#"bootes_xds_denied_total{reason="new_stream_rate"} 1"#),
        "{counted}"
    );
    // The streams admitted keep flowing.
    s.source.set("n1", clusters("v2", &["a"]));
    for (_, responses, _) in &mut served {
        assert_eq!(names(&next(responses).await.expect("the change")), ["a@v2"]);
    }
}
