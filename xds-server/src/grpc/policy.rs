//! Who may read what, and what a client may cost (docs/DESIGN.md §5): the checks
//! every xDS RPC applies to its peer and requests, on top of the pure rule
//! in [`crate::authz`].

use bootes_proto::ResourceType;
use tonic::Status;

use crate::authz::{self, Decision, NodeOwner, PeerIdentity};
use crate::listener::ConnInfo;
use crate::metrics::{Metrics, ReasonLabel};
use crate::source::SnapshotSource;

#[derive(Clone, Debug)]
pub struct Policy {
    /// Clients present certificates (mTLS): streams may only claim node IDs
    /// their certificate authorizes.
    pub client_auth: bool,
    /// With client auth, SPIFFE IDs of other trust domains authorize nothing.
    pub trust_domain: Option<String>,
    /// Serve Secrets (SDS) to streams that did not authenticate.
    pub allow_unauthenticated_secrets: bool,
    /// Resource names (subscribe + unsubscribe + initial versions) one
    /// request may carry.
    pub max_resource_names: usize,
    /// NACK details are cut to this many bytes on receipt.
    pub max_nack_detail: usize,
    pub max_node_id: usize,
    /// Largest request message accepted (bytes).
    pub max_request_bytes: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            client_auth: false,
            trust_domain: None,
            allow_unauthenticated_secrets: true,
            max_resource_names: 10_000,
            max_nack_detail: bootes_proto::limits::DEFAULT_MAX_NACK_DETAIL,
            max_node_id: bootes_proto::limits::DEFAULT_MAX_NODE_ID,
            max_request_bytes: 4 << 20,
        }
    }
}

impl Policy {
    /// The identity authorization looks at: `None` when clients do not
    /// authenticate.
    pub fn peer<'a>(&self, conn: &'a ConnInfo) -> Result<Option<&'a PeerIdentity>, Status> {
        if !self.client_auth {
            return Ok(None);
        }
        conn.peer
            .as_deref()
            .map(Some)
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))
    }

    /// A node ID's length is bounded before it is used anywhere.
    pub fn check_node_id(&self, node: &str) -> Result<(), Status> {
        if node.len() > self.max_node_id {
            return Err(Status::invalid_argument(format!(
                "node.id is {} bytes; at most {} are accepted",
                node.len(),
                self.max_node_id
            )));
        }
        Ok(())
    }

    /// May this peer claim `node`, given the node's binding now?
    pub fn authorize(
        &self,
        peer: Option<&PeerIdentity>,
        node: &str,
        shared: &dyn SnapshotSource,
    ) -> Decision {
        if peer.is_none() {
            return Decision::Allow;
        }
        let binding = shared.binding(node);
        let owner = binding.as_ref().map(|b| NodeOwner {
            namespace: &b.namespace,
            service_account: &b.service_account,
        });
        authz::decide(peer, node, owner, self.trust_domain.as_deref())
    }

    /// Whether Secrets may go to a stream with this peer identity.
    pub fn secrets_allowed(&self, peer: Option<&PeerIdentity>) -> bool {
        peer.is_some() || self.allow_unauthenticated_secrets
    }

    pub fn check_names(&self, count: usize) -> Result<(), Status> {
        if count > self.max_resource_names {
            return Err(Status::resource_exhausted(format!(
                "the request names {count} resources; at most {} are accepted per request",
                self.max_resource_names
            )));
        }
        Ok(())
    }

    /// Cuts a NACK's detail on receipt, so logs, metrics, CSDS and etcd
    /// only ever see the bounded text.
    pub fn bound_detail(&self, detail: &mut String) {
        if detail.len() > self.max_nack_detail
            || detail
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            *detail = bootes_proto::limits::nack_detail(detail, self.max_nack_detail);
        }
    }
}

/// Counts a refusal and returns its status.
pub fn denied(metrics: &Metrics, reason: &'static str, status: Status) -> Status {
    metrics.denied.get_or_create(&ReasonLabel { reason }).inc();
    status
}

pub fn is_secret(type_url: &str) -> bool {
    type_url == ResourceType::Secret.type_url()
}

pub const SECRETS_REFUSED: &str = "Secrets are served only to clients that authenticated with a \
     certificate (start the xds-server with --tls-client-ca, or allow them explicitly with \
     --allow-unauthenticated-secrets)";
