//! Who may read what, and what a client may cost (docs/DESIGN.md §5): the checks
//! every xDS RPC applies to its peer and requests, on top of the pure rules
//! in [`crate::authz`] and [`bootes_xds::session::Limits`].

use bootes_xds::session::{Access, Code, Limits, Refusal};
use tonic::Status;

use crate::authz::{self, NodeOwner, PeerIdentity};
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
    /// Per-request bounds.
    pub limits: Limits,
    /// Largest request message accepted (bytes).
    pub max_request_bytes: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            client_auth: false,
            trust_domain: None,
            allow_unauthenticated_secrets: true,
            limits: Limits::default(),
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

    /// May this peer claim `node`, given the node's binding now?
    pub fn authorize(
        &self,
        peer: Option<&PeerIdentity>,
        node: &str,
        shared: &dyn SnapshotSource,
    ) -> Access {
        if peer.is_none() {
            return Access::Allow;
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
}

/// The gRPC status of a refusal, counted under its reason if it has one.
pub fn status(metrics: &Metrics, refusal: Refusal) -> Status {
    if let Some(reason) = refusal.counted {
        metrics.denied.get_or_create(&ReasonLabel { reason }).inc();
    }
    let code = match refusal.code {
        Code::InvalidArgument => tonic::Code::InvalidArgument,
        Code::PermissionDenied => tonic::Code::PermissionDenied,
        Code::ResourceExhausted => tonic::Code::ResourceExhausted,
        Code::Unavailable => tonic::Code::Unavailable,
    };
    Status::new(code, refusal.message)
}
