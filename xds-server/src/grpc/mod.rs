//! The gRPC shell: every xDS service (aggregated and per type; state of the
//! world, delta and fetch), CSDS, health and reflection, on one port.

mod admit;
mod body;
mod codec;
mod convergence;
mod csds;
mod drain_spread;
mod fetch;
mod policy;
mod stream;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bootes_proto::envoy::discovery::DiscoveryRequest;
use bootes_proto::ResourceType;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::server::{StreamingService, UnaryService};
use tonic::{Status, Streaming};

use crate::clients::Clients;
use crate::metrics::Metrics;
use crate::source::SnapshotSource;
use bootes_xds::delta::DeltaStream;
use bootes_xds::response::{Encoded, ResponseCache};
use bootes_xds::sotw::SotwStream;
use codec::RequestDecoder;

pub use admit::Admit;
pub use csds::{CsdsAccess, CsdsService};
pub use drain_spread::DrainSpread;
pub use policy::Policy;

/// Shared by every stream of this server.
#[derive(Debug)]
pub struct Server {
    pub snapshots: Arc<dyn SnapshotSource>,
    pub cache: ResponseCache,
    pub clients: Arc<Clients>,
    pub metrics: Arc<Metrics>,
    /// Becomes true when the server drains (SIGTERM).
    pub draining: watch::Receiver<bool>,
    /// Once draining, streams end at random points within this period, so
    /// Envoys do not all reconnect to the other replicas at the same instant.
    pub drain_period: Duration,
    /// Places those points evenly over the period.
    pub drain_spread: DrainSpread,
    /// Streams older than this are ended (within the next fifth of it) so
    /// clients rebalance across replicas after a scale-up.
    pub max_connection_age: Option<Duration>,
    /// Authorization and per-request bounds.
    pub policy: Policy,
    /// New streams are set up at a bounded rate.
    pub admission: Admit,
}

/// What a gRPC method does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Sotw(Option<ResourceType>),
    Delta(Option<ResourceType>),
    Fetch(ResourceType),
}

/// The per-type discovery services: (gRPC service, type, method suffix, has SotW and fetch).
const PER_TYPE: [(&str, ResourceType, &str, bool); 9] = [
    (
        "envoy.service.cluster.v3.ClusterDiscoveryService",
        ResourceType::Cluster,
        "Clusters",
        true,
    ),
    (
        "envoy.service.endpoint.v3.EndpointDiscoveryService",
        ResourceType::Endpoint,
        "Endpoints",
        true,
    ),
    (
        "envoy.service.listener.v3.ListenerDiscoveryService",
        ResourceType::Listener,
        "Listeners",
        true,
    ),
    (
        "envoy.service.route.v3.RouteDiscoveryService",
        ResourceType::Route,
        "Routes",
        true,
    ),
    (
        "envoy.service.route.v3.ScopedRoutesDiscoveryService",
        ResourceType::ScopedRoute,
        "ScopedRoutes",
        true,
    ),
    (
        "envoy.service.route.v3.VirtualHostDiscoveryService",
        ResourceType::VirtualHost,
        "VirtualHosts",
        false,
    ),
    (
        "envoy.service.secret.v3.SecretDiscoveryService",
        ResourceType::Secret,
        "Secrets",
        true,
    ),
    (
        "envoy.service.runtime.v3.RuntimeDiscoveryService",
        ResourceType::Runtime,
        "Runtime",
        true,
    ),
    (
        "envoy.service.extension.v3.ExtensionConfigDiscoveryService",
        ResourceType::ExtensionConfig,
        "ExtensionConfigs",
        true,
    ),
];

const ADS: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";

/// Every gRPC service name the xDS handler serves.
pub fn service_names() -> Vec<&'static str> {
    std::iter::once(ADS)
        .chain(PER_TYPE.iter().map(|(s, ..)| *s))
        .collect()
}

fn method(path: &str) -> Option<Method> {
    let (service, name) = path.strip_prefix('/')?.split_once('/')?;
    if service == ADS {
        return match name {
            "StreamAggregatedResources" => Some(Method::Sotw(None)),
            "DeltaAggregatedResources" => Some(Method::Delta(None)),
            _ => None,
        };
    }
    let (_, ty, suffix, sotw) = PER_TYPE.iter().find(|(s, ..)| *s == service)?;
    let rest = |prefix: &str| name.strip_prefix(prefix).filter(|r| r == suffix);
    if rest("Delta").is_some() {
        Some(Method::Delta(Some(*ty)))
    } else if *sotw && rest("Stream").is_some() {
        Some(Method::Sotw(Some(*ty)))
    } else if *sotw && rest("Fetch").is_some() {
        Some(Method::Fetch(*ty))
    } else {
        None
    }
}

/// The xDS services as one tower service, routed by path.
#[derive(Clone, Debug)]
pub struct XdsService {
    server: Arc<Server>,
}

impl XdsService {
    pub fn new(server: Arc<Server>) -> Self {
        Self { server }
    }

    /// Routes for tonic's server: every xDS service name to this handler.
    pub fn routes(self) -> tonic::service::Routes {
        let mut router = axum::Router::new();
        for name in service_names() {
            router = router.route_service(&format!("/{name}/{{*method}}"), self.clone());
        }
        tonic::service::Routes::from(router)
    }
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

impl<B> tower_service::Service<http::Request<B>> for XdsService
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
        let Some(method) = method(req.uri().path()) else {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        };
        let limit = server.policy.max_request_bytes;
        Box::pin(async move {
            Ok(match method {
                Method::Sotw(only) => streaming::<SotwStream, B>(server, only, req).await,
                Method::Delta(only) => streaming::<DeltaStream, B>(server, only, req).await,
                Method::Fetch(ty) => unary(fetch::Fetch { server, ty }, limit, req).await,
            })
        })
    }
}

/// A streaming RPC: requests decoded by tonic, responses sent as the shared
/// bytes of each response ([`body`]), not re-encoded per stream.
async fn streaming<M, B>(
    server: Arc<Server>,
    only: Option<ResourceType>,
    req: http::Request<B>,
) -> http::Response<Body>
where
    M: bootes_xds::session::Protocol,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    if let Err(status) = uncompressed(req.headers()) {
        return status.into_http();
    }
    // Before anything is read or set up for the stream: during a reconnect
    // storm the streams already served keep their share of the replica.
    if let Err(status) = server.admission.turn(&server.metrics).await {
        return status.into_http();
    }
    let requests = req.map(|body| {
        Streaming::new_request(
            RequestDecoder::<M::Request>::default(),
            body,
            None,
            Some(server.policy.max_request_bytes),
        )
    });
    let mut svc = stream::Streams::<M>::new(server, only);
    match svc.call(tonic::Request::from_http(requests)).await {
        Ok(responses) => body::response(body::SharedBody::new(responses.into_inner().into_inner())),
        Err(status) => status.into_http(),
    }
}

/// A unary RPC (`Fetch*`), answered like the streams with shared bytes.
async fn unary<S, B>(mut svc: S, limit: usize, req: http::Request<B>) -> http::Response<Body>
where
    S: UnaryService<DiscoveryRequest, Response = Arc<Encoded>>,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    if let Err(status) = uncompressed(req.headers()) {
        return status.into_http();
    }
    let (parts, body) = req.into_parts();
    let mut requests = Streaming::new_request(
        RequestDecoder::<DiscoveryRequest>::default(),
        body,
        None,
        Some(limit),
    );
    let message = match requests.message().await {
        Ok(Some(message)) => message,
        Ok(None) => return Status::internal("Missing request message.").into_http(),
        Err(status) => return status.into_http(),
    };
    let request = tonic::Request::from_http(http::Request::from_parts(parts, message));
    match svc.call(request).await {
        Ok(response) => {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let _ = tx.try_send(Ok(response.into_inner()));
            body::response(body::SharedBody::new(rx))
        }
        Err(status) => status.into_http(),
    }
}

/// Requests must be uncompressed (this server enables no compression), as
/// tonic would check.
fn uncompressed(headers: &http::HeaderMap) -> Result<(), Status> {
    match headers.get("grpc-encoding") {
        None => Ok(()),
        Some(v) if v == "identity" => Ok(()),
        Some(v) => Err(Status::unimplemented(format!(
            "Content is compressed with `{}` which isn't supported",
            String::from_utf8_lossy(v.as_bytes())
        ))),
    }
}

#[cfg(test)]
mod stream_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_maps_to_its_method() {
        assert_eq!(
            method(
                "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
            ),
            Some(Method::Sotw(None))
        );
        assert_eq!(
            method(
                "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
            ),
            Some(Method::Delta(None))
        );
        assert_eq!(
            method("/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters"),
            Some(Method::Sotw(Some(ResourceType::Cluster)))
        );
        assert_eq!(
            method("/envoy.service.runtime.v3.RuntimeDiscoveryService/FetchRuntime"),
            Some(Method::Fetch(ResourceType::Runtime))
        );
        assert_eq!(
            method("/envoy.service.route.v3.VirtualHostDiscoveryService/DeltaVirtualHosts"),
            Some(Method::Delta(Some(ResourceType::VirtualHost)))
        );
        assert_eq!(
            method("/envoy.service.route.v3.VirtualHostDiscoveryService/StreamVirtualHosts"),
            None
        );
        assert_eq!(
            method("/envoy.service.cluster.v3.ClusterDiscoveryService/StreamRoutes"),
            None
        );
        assert_eq!(method("/nope/x"), None);
    }

    #[test]
    fn every_service_exists_in_the_envoy_api() {
        let pool = bootes_proto::envoy::descriptor_pool();
        for name in service_names() {
            let svc = pool
                .get_service_by_name(name)
                .unwrap_or_else(|| panic!("{name} missing"));
            for m in svc.methods() {
                let path = format!("/{name}/{}", m.name());
                assert!(method(&path).is_some(), "{path} not served");
            }
        }
    }
}
