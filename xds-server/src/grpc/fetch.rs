//! Unary `Fetch*` RPCs: the current resources of one type for one node.

use std::sync::Arc;

use bootes_proto::envoy::discovery::DiscoveryRequest;
use bootes_proto::ResourceType;
use tonic::server::UnaryService;
use tonic::Status;

use super::policy::status;
use super::{BoxFuture, Server};
use crate::listener::ConnInfo;
use crate::metrics::ReasonLabel;
use bootes_xds::response::{Encoded, ResourceSet};
use bootes_xds::session::{Access, SECRETS_REFUSED};
use bootes_xds::{Identity, ProtocolError};

pub struct Fetch {
    pub server: Arc<Server>,
    pub ty: ResourceType,
}

impl UnaryService<DiscoveryRequest> for Fetch {
    type Response = Arc<Encoded>;
    type Future = BoxFuture<tonic::Response<Arc<Encoded>>, Status>;

    fn call(&mut self, request: tonic::Request<DiscoveryRequest>) -> Self::Future {
        let server = self.server.clone();
        let ty = self.ty;
        Box::pin(async move {
            let policy = &server.policy;
            let conn = request
                .extensions()
                .get::<ConnInfo>()
                .cloned()
                .unwrap_or_default();
            let peer = policy.peer(&conn)?;
            let req = request.into_inner();
            if !req.type_url.is_empty() && req.type_url != ty.type_url() {
                return Err(Status::invalid_argument(format!(
                    "this service serves {} only",
                    ty.type_url()
                )));
            }
            let mut identity = Identity::default();
            identity
                .identify(req.node.as_ref())
                .map_err(|e: ProtocolError| Status::invalid_argument(e.to_string()))?;
            let node = identity.get().unwrap_or_default();
            let refused = |r| status(&server.metrics, r);
            policy.limits.check_node_id(node).map_err(refused)?;
            policy
                .limits
                .check_names(req.resource_names.len())
                .map_err(refused)?;
            let denied = |reason| {
                server
                    .metrics
                    .denied
                    .get_or_create(&ReasonLabel { reason })
                    .inc();
            };
            match policy.authorize(peer, node, server.snapshots.as_ref()) {
                Access::Allow => {}
                Access::Deny(why) => {
                    denied("node_not_authorized");
                    return Err(Status::permission_denied(why));
                }
                Access::Wait => {
                    return Err(Status::unavailable(format!(
                        "no configuration for node {node:?} yet"
                    )))
                }
            }
            if ty == ResourceType::Secret && !policy.secrets_allowed(peer) {
                denied("unauthenticated_secrets");
                return Err(Status::permission_denied(SECRETS_REFUSED));
            }
            let snapshot = server.snapshots.for_node(node).ok_or_else(|| {
                Status::unavailable(format!("no configuration for node {node:?} yet"))
            })?;
            let resources = snapshot
                .resources(ty)
                .into_iter()
                .flat_map(|m| m.values())
                .filter(|r| req.resource_names.is_empty() || req.resource_names.contains(&r.name))
                .cloned()
                .collect();
            Ok(tonic::Response::new(
                server
                    .cache
                    .state_of_the_world(ty, ResourceSet::new(resources)),
            ))
        })
    }
}
