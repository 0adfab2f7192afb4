//! Client Status Discovery Service: what each node connected to this replica
//! has ACKed or NACKed, per resource.

use std::pin::Pin;
use std::sync::Arc;

use bootes_proto::envoy::admin::ClientResourceStatus;
use bootes_proto::envoy::core::Node;
use bootes_proto::envoy::matcher::string_matcher::MatchPattern;
use bootes_proto::envoy::matcher::NodeMatcher;
use bootes_proto::envoy::status::client_config::GenericXdsConfig;
use bootes_proto::envoy::status::client_status_discovery_service_server::{
    ClientStatusDiscoveryService, ClientStatusDiscoveryServiceServer,
};
use bootes_proto::envoy::status::{
    ClientConfig, ClientStatusRequest, ClientStatusResponse, ConfigStatus,
};
use bootes_proto::envoy::{admin::UpdateFailureState, Any};
use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::clients::{Clients, StreamState};
use crate::listener::ConnInfo;
use crate::source::SnapshotSource;

/// Who may ask CSDS (it shows every connected node's config).
#[derive(Clone, Debug)]
pub enum CsdsAccess {
    /// Whoever reaches the listener: the separate CSDS listener, which the
    /// operator places (loopback by default).
    Anyone,
    /// On the xDS port: only clients whose verified certificate carries one
    /// of these names (SPIFFE or other URI SAN, or DNS SAN). Empty: nobody.
    Operators(Arc<Vec<String>>),
}

#[derive(Clone, Debug)]
pub struct CsdsService {
    clients: Arc<Clients>,
    snapshots: Arc<dyn SnapshotSource>,
    access: CsdsAccess,
}

impl CsdsService {
    pub fn new(
        clients: Arc<Clients>,
        snapshots: Arc<dyn SnapshotSource>,
        access: CsdsAccess,
    ) -> ClientStatusDiscoveryServiceServer<Self> {
        ClientStatusDiscoveryServiceServer::new(Self {
            clients,
            snapshots,
            access,
        })
    }

    fn check(&self, extensions: &tonic::Extensions) -> Result<(), Status> {
        let CsdsAccess::Operators(operators) = &self.access else {
            return Ok(());
        };
        let peer = extensions.get::<ConnInfo>().and_then(|c| c.peer.as_deref());
        let allowed = peer.is_some_and(|p| {
            p.spiffe
                .iter()
                .map(ToString::to_string)
                .chain(p.other_uris.iter().cloned())
                .chain(p.dns.iter().cloned())
                .any(|name| operators.contains(&name))
        });
        if allowed {
            Ok(())
        } else {
            Err(Status::permission_denied(
                "CSDS answers operators only: use the CSDS listener (--csds-listen), or a client \
                 certificate named in --csds-operator",
            ))
        }
    }

    fn answer(&self, req: &ClientStatusRequest) -> ClientStatusResponse {
        let config = self
            .clients
            .streams()
            .into_iter()
            .filter(|s| matches(&req.node_matchers, &s.node))
            .map(|s| self.client_config(&s, req.exclude_resource_contents))
            .collect();
        ClientStatusResponse { config }
    }

    fn client_config(&self, stream: &StreamState, exclude_contents: bool) -> ClientConfig {
        let target = self.snapshots.for_node(&stream.node);
        let mut configs = Vec::new();
        for (ty, report) in &stream.types {
            let current = target.as_ref().and_then(|t| t.resources(*ty));
            for (name, version) in &report.acked {
                let now = current.and_then(|c| c.get(name));
                let synced = now.is_some_and(|r| &r.version == version);
                configs.push(GenericXdsConfig {
                    type_url: ty.type_url().to_string(),
                    name: name.clone(),
                    version_info: version.clone(),
                    xds_config: now
                        .filter(|_| synced && !exclude_contents)
                        .and_then(|r| redacted(ty.type_url(), &r.value)),
                    config_status: if synced {
                        ConfigStatus::Synced
                    } else {
                        ConfigStatus::Stale
                    } as i32,
                    client_status: ClientResourceStatus::Acked as i32,
                    ..Default::default()
                });
            }
            if let Some(nack) = &report.nack {
                for name in &nack.resources {
                    configs.push(GenericXdsConfig {
                        type_url: ty.type_url().to_string(),
                        name: name.clone(),
                        version_info: nack.version.clone(),
                        config_status: ConfigStatus::Error as i32,
                        client_status: ClientResourceStatus::Nacked as i32,
                        error_state: Some(UpdateFailureState {
                            details: nack.detail.clone(),
                            version_info: nack.version.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                }
            }
        }
        ClientConfig {
            node: Some(Node {
                id: stream.node.clone(),
                ..Default::default()
            }),
            generic_xds_configs: configs,
            ..Default::default()
        }
    }
}

/// The resource with secret material replaced (as `inspect` shows it);
/// nothing when it cannot be redacted.
fn redacted(type_url: &str, value: &[u8]) -> Option<Any> {
    match bootes_proto::redact::redact_encoded(type_url, value) {
        Ok(value) => Some(Any {
            type_url: type_url.to_string(),
            value,
        }),
        Err(e) => {
            tracing::warn!(type_url, error = %e, "resource left out of a CSDS answer: cannot redact it");
            None
        }
    }
}

/// OR of the matchers (none: every node). Only node ID matchers are
/// supported; a matcher on node metadata matches nothing.
fn matches(matchers: &[NodeMatcher], node: &str) -> bool {
    if matchers.is_empty() {
        return true;
    }
    matchers.iter().any(|m| {
        let Some(id) = &m.node_id else {
            return false;
        };
        if !m.node_metadatas.is_empty() {
            return false;
        }
        let (node, fold) = if id.ignore_case {
            (node.to_lowercase(), true)
        } else {
            (node.to_string(), false)
        };
        let norm = |s: &str| {
            if fold {
                s.to_lowercase()
            } else {
                s.to_string()
            }
        };
        match &id.match_pattern {
            Some(MatchPattern::Exact(s)) => node == norm(s),
            Some(MatchPattern::Prefix(s)) => node.starts_with(&norm(s)),
            Some(MatchPattern::Suffix(s)) => node.ends_with(&norm(s)),
            Some(MatchPattern::Contains(s)) => node.contains(&norm(s)),
            _ => false,
        }
    })
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<ClientStatusResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ClientStatusDiscoveryService for CsdsService {
    type StreamClientStatusStream = ResponseStream;

    async fn stream_client_status(
        &self,
        request: Request<Streaming<ClientStatusRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        self.check(request.extensions())?;
        let this = self.clone();
        let mut requests = request.into_inner();
        let out = async_stream_from(move |tx| async move {
            while let Some(req) = requests.message().await? {
                if tx.send(Ok(this.answer(&req))).await.is_err() {
                    break;
                }
            }
            Ok::<(), Status>(())
        });
        Ok(Response::new(out))
    }

    async fn fetch_client_status(
        &self,
        request: Request<ClientStatusRequest>,
    ) -> Result<Response<ClientStatusResponse>, Status> {
        self.check(request.extensions())?;
        Ok(Response::new(self.answer(request.get_ref())))
    }
}

/// A response stream fed by a task.
fn async_stream_from<F, Fut>(f: F) -> ResponseStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<ClientStatusResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = Result<(), Status>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let task = f(tx.clone());
    tokio::spawn(async move {
        if let Err(status) = task.await {
            let _ = tx.send(Err(status)).await;
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use bootes_proto::envoy::matcher::StringMatcher;

    use super::*;

    fn id_matcher(p: MatchPattern) -> NodeMatcher {
        NodeMatcher {
            node_id: Some(StringMatcher {
                match_pattern: Some(p),
                ignore_case: false,
            }),
            node_metadatas: vec![],
        }
    }

    #[test]
    fn node_matchers() {
        assert!(matches(&[], "a.ns"));
        assert!(matches(
            &[id_matcher(MatchPattern::Exact("a.ns".into()))],
            "a.ns"
        ));
        assert!(!matches(
            &[id_matcher(MatchPattern::Exact("a".into()))],
            "a.ns"
        ));
        assert!(matches(
            &[id_matcher(MatchPattern::Suffix(".ns".into()))],
            "a.ns"
        ));
        assert!(matches(
            &[
                id_matcher(MatchPattern::Prefix("x".into())),
                id_matcher(MatchPattern::Prefix("a".into()))
            ],
            "a.ns"
        ));
    }
}
