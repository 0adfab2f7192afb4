//! The gRPC shell around the protocol state machines: Envoy's Aggregated
//! Discovery Service. One task per stream moves requests and snapshot changes
//! into [`SotwStream`] and its responses out.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bootes_proto::envoy::discovery::DiscoveryRequest;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, StreamingService};
use tonic::{Status, Streaming};
use tracing::Instrument;

use crate::codec::SharedCodec;
use crate::etcd_sync::Shared;
use crate::protocol::response::{Encoded, ResponseCache};
use crate::protocol::sotw::SotwStream;
use crate::protocol::Effects;

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

/// Shared by every stream of this server.
#[derive(Debug)]
pub struct Server {
    pub snapshots: Arc<Shared>,
    pub cache: ResponseCache,
    /// Becomes true when the server drains (SIGTERM).
    pub draining: watch::Receiver<bool>,
    /// Streams end at a random point within this period once draining, so
    /// Envoys do not all reconnect to the other replicas at the same instant.
    pub drain_period: Duration,
}

/// The `AggregatedDiscoveryService` as a tower service.
#[derive(Clone, Debug)]
pub struct AdsService {
    server: Arc<Server>,
}

impl AdsService {
    pub fn new(server: Arc<Server>) -> Self {
        Self { server }
    }
}

impl NamedService for AdsService {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

impl<B> tower_service::Service<http::Request<B>> for AdsService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let server = self.server.clone();
        match req.uri().path() {
            SOTW_PATH => Box::pin(async move {
                let mut grpc = Grpc::new(SharedCodec::<DiscoveryRequest>::default());
                Ok(grpc.streaming(SotwMethod(server), req).await)
            }),
            _ => Box::pin(async move { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

struct SotwMethod(Arc<Server>);

type ResponseStream = ReceiverStream<Result<Arc<Encoded>, Status>>;

impl StreamingService<DiscoveryRequest> for SotwMethod {
    type Response = Arc<Encoded>;
    type ResponseStream = ResponseStream;
    type Future = BoxFuture<tonic::Response<ResponseStream>, Status>;

    fn call(&mut self, request: tonic::Request<Streaming<DiscoveryRequest>>) -> Self::Future {
        let server = self.0.clone();
        Box::pin(async move {
            let peer = request.remote_addr();
            let (tx, rx) = mpsc::channel(16);
            let span = tracing::info_span!("ads", peer = ?peer, node = tracing::field::Empty);
            tokio::spawn(serve_sotw(server, request.into_inner(), tx).instrument(span));
            Ok(tonic::Response::new(ReceiverStream::new(rx)))
        })
    }
}

/// Why a stream task ended.
enum End {
    ClientClosed,
    Error(Status),
}

async fn serve_sotw(
    server: Arc<Server>,
    mut requests: Streaming<DiscoveryRequest>,
    tx: mpsc::Sender<Result<Arc<Encoded>, Status>>,
) {
    let mut stream = SotwStream::new();
    let mut changes = server.snapshots.subscribe();
    let mut draining = server.draining.clone();
    let mut drain_at: Option<Pin<Box<tokio::time::Sleep>>> = None;

    let end = loop {
        tokio::select! {
            message = requests.message() => {
                let req = match message {
                    Ok(Some(req)) => req,
                    Ok(None) => break End::ClientClosed,
                    Err(status) => break End::Error(status),
                };
                let first = match stream.identify(&req) {
                    Ok(first) => first,
                    Err(e) => break End::Error(Status::invalid_argument(e.to_string())),
                };
                if first {
                    let node = stream.node().unwrap_or_default().to_string();
                    tracing::Span::current().record("node", node.as_str());
                    tracing::info!("stream opened");
                    let snapshot = server.snapshots.for_node(&node);
                    if snapshot.is_none() {
                        tracing::info!("node has no binding yet; waiting");
                    }
                    let effects = stream.on_snapshot(snapshot, &server.cache);
                    if !send(&tx, effects).await {
                        break End::ClientClosed;
                    }
                }
                let effects = stream.on_request(&req, &server.cache);
                if !send(&tx, effects).await {
                    break End::ClientClosed;
                }
            }
            changed = changes.changed(), if stream.node().is_some() => {
                if changed.is_err() {
                    break End::Error(Status::unavailable("server stopping"));
                }
                let snapshot = server.snapshots.for_node(stream.node().unwrap_or_default());
                let effects = stream.on_snapshot(snapshot, &server.cache);
                if !send(&tx, effects).await {
                    break End::ClientClosed;
                }
            }
            _ = draining.changed(), if drain_at.is_none() => {
                if *draining.borrow() {
                    let wait = crate::jitter::up_to(server.drain_period);
                    drain_at = Some(Box::pin(tokio::time::sleep(wait)));
                }
            }
            () = async { drain_at.as_mut().expect("guarded").await }, if drain_at.is_some() => {
                break End::Error(Status::unavailable("xds-server is shutting down; reconnect to another replica"));
            }
        }
    };
    match end {
        End::ClientClosed => tracing::info!("stream closed by the client"),
        End::Error(status) => {
            tracing::info!(code = ?status.code(), message = status.message(), "stream ended");
            let _ = tx.send(Err(status)).await;
        }
    }
}

/// Logs what the state machine observed and writes its responses. False when
/// the client is gone.
async fn send(tx: &mpsc::Sender<Result<Arc<Encoded>, Status>>, effects: Effects) -> bool {
    for (ty, version) in &effects.acks {
        tracing::debug!(r#type = %ty, version, "ACK");
    }
    for nack in &effects.nacks {
        tracing::warn!(
            r#type = %nack.ty,
            version = nack.version,
            resources = ?nack.resources,
            detail = nack.detail,
            "NACK"
        );
    }
    for reason in &effects.ignored {
        tracing::debug!(reason, "request ignored");
    }
    for response in effects.responses {
        tracing::info!(
            r#type = %response.ty,
            version = response.version_info,
            resources = response.resources.len(),
            "sending"
        );
        if tx.send(Ok(response)).await.is_err() {
            return false;
        }
    }
    true
}
