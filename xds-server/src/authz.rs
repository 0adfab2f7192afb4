//! Who may claim which node ID (docs/DESIGN.md §5, "Who may read what").
//!
//! With mutual TLS, the client certificate names the workload. A stream may
//! claim a node ID when the certificate carries either
//!
//! * a SPIFFE URI SAN `spiffe://<trust-domain>/ns/<namespace>/sa/<account>`
//!   whose namespace is the node's namespace and whose service account is the
//!   one its pod runs as — both from the node's binding in etcd, written by
//!   the controller from the pod — and, when a trust domain is configured,
//!   whose trust domain is that one; or
//! * a DNS SAN equal to the node ID (ASCII case-insensitive, as DNS names are).
//!
//! Pure: the TLS shell extracts the SANs ([`PeerIdentity`]), the stream asks
//! [`decide`] whenever the node's binding may have changed.

use std::fmt;

use bootes_xds::session::Access;

/// The names a verified client certificate carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    pub spiffe: Vec<SpiffeId>,
    pub dns: Vec<String>,
    /// URI SANs that are not Kubernetes-shaped SPIFFE IDs (shown in denials).
    pub other_uris: Vec<String>,
}

/// `spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl SpiffeId {
    /// Parses a Kubernetes-shaped SPIFFE ID; anything else is `None`.
    pub fn parse(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix("spiffe://")?;
        let (trust_domain, path) = rest.split_once('/')?;
        let mut parts = path.split('/');
        let (Some("ns"), Some(namespace), Some("sa"), Some(service_account), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        };
        (valid(trust_domain) && valid(namespace) && valid(service_account)).then(|| Self {
            trust_domain: trust_domain.to_ascii_lowercase(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
        })
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl PeerIdentity {
    /// Sorts URI SANs into SPIFFE IDs and others.
    pub fn from_sans(uris: impl IntoIterator<Item = String>, dns: Vec<String>) -> Self {
        let mut id = Self {
            dns,
            ..Self::default()
        };
        for uri in uris {
            match SpiffeId::parse(&uri) {
                Some(s) => id.spiffe.push(s),
                None => id.other_uris.push(uri),
            }
        }
        id
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .spiffe
            .iter()
            .map(ToString::to_string)
            .chain(self.other_uris.iter().cloned())
            .chain(self.dns.iter().map(|d| format!("DNS:{d}")))
            .collect();
        if names.is_empty() {
            f.write_str("a certificate without URI or DNS names")
        } else {
            write!(f, "{}", names.join(", "))
        }
    }
}

/// What the node's binding says about the pod behind a node ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeOwner<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
}

/// May a client that authenticated as `peer` claim `node_id`?
///
/// `peer` is `None` when the server does not authenticate clients: then any
/// claim is allowed. `owner` is `None` while the node has no binding.
pub fn decide(
    peer: Option<&PeerIdentity>,
    node_id: &str,
    owner: Option<NodeOwner<'_>>,
    trust_domain: Option<&str>,
) -> Access {
    let Some(peer) = peer else {
        return Access::Allow;
    };
    if peer.dns.iter().any(|d| d.eq_ignore_ascii_case(node_id)) {
        return Access::Allow;
    }
    let spiffe: Vec<&SpiffeId> = peer
        .spiffe
        .iter()
        .filter(|s| trust_domain.is_none_or(|td| s.trust_domain.eq_ignore_ascii_case(td)))
        .collect();
    if spiffe.is_empty() {
        return Access::Deny(format!(
            "the client certificate ({peer}) does not authorize node {node_id:?}"
        ));
    }
    let Some(owner) = owner else {
        return Access::Wait;
    };
    // A binding without a service account (written before the controller
    // recorded them) authorizes no SPIFFE identity.
    let authorized = !owner.service_account.is_empty()
        && spiffe
            .iter()
            .any(|s| s.namespace == owner.namespace && s.service_account == owner.service_account);
    if authorized {
        Access::Allow
    } else {
        Access::Deny(format!(
            "the client certificate ({peer}) does not authorize node {node_id:?}, which runs as \
             service account {:?} in namespace {:?}",
            owner.service_account, owner.namespace
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spiffe(uri: &str) -> PeerIdentity {
        PeerIdentity::from_sans([uri.to_string()], vec![])
    }

    fn dns(name: &str) -> PeerIdentity {
        PeerIdentity::from_sans([], vec![name.to_string()])
    }

    const SHOP_EDGE: NodeOwner<'static> = NodeOwner {
        namespace: "shop",
        service_account: "edge",
    };

    #[test]
    fn spiffe_ids_parse_only_in_kubernetes_shape() {
        let id = SpiffeId::parse("spiffe://Cluster.Local/ns/shop/sa/edge").unwrap();
        assert_eq!(id.trust_domain, "cluster.local");
        assert_eq!(
            (id.namespace.as_str(), id.service_account.as_str()),
            ("shop", "edge")
        );
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/edge");
        for bad in [
            "https://cluster.local/ns/shop/sa/edge",
            "spiffe://cluster.local/ns/shop",
            "spiffe://cluster.local/ns/shop/sa/edge/extra",
            "spiffe://cluster.local/sa/edge/ns/shop",
            "spiffe:///ns/shop/sa/edge",
            "spiffe://cluster.local/ns//sa/edge",
            "spiffe://cluster.local/ns/sh%2Fop/sa/edge",
        ] {
            assert_eq!(SpiffeId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn without_client_authentication_every_claim_is_allowed() {
        assert_eq!(decide(None, "edge-0.shop", None, None), Access::Allow);
    }

    #[test]
    fn spiffe_identity_must_match_namespace_and_service_account() {
        let peer = spiffe("spiffe://cluster.local/ns/shop/sa/edge");
        assert_eq!(
            decide(Some(&peer), "edge-0.shop", Some(SHOP_EDGE), None),
            Access::Allow
        );
        let other_sa = NodeOwner {
            namespace: "shop",
            service_account: "payments",
        };
        assert!(matches!(
            decide(Some(&peer), "pay-0.shop", Some(other_sa), None),
            Access::Deny(m) if m.contains("payments") && m.contains("spiffe://cluster.local/ns/shop/sa/edge")
        ));
        let other_ns = NodeOwner {
            namespace: "bank",
            service_account: "edge",
        };
        assert!(matches!(
            decide(Some(&peer), "edge-0.bank", Some(other_ns), None),
            Access::Deny(_)
        ));
    }

    #[test]
    fn spiffe_identity_waits_for_the_binding() {
        let peer = spiffe("spiffe://cluster.local/ns/shop/sa/edge");
        assert_eq!(decide(Some(&peer), "edge-0.shop", None, None), Access::Wait);
    }

    #[test]
    fn a_binding_without_service_account_authorizes_no_spiffe_identity() {
        let peer = spiffe("spiffe://cluster.local/ns/shop/sa/default");
        let owner = NodeOwner {
            namespace: "shop",
            service_account: "",
        };
        assert!(matches!(
            decide(Some(&peer), "edge-0.shop", Some(owner), None),
            Access::Deny(_)
        ));
    }

    #[test]
    fn a_configured_trust_domain_must_match() {
        let peer = spiffe("spiffe://other.example/ns/shop/sa/edge");
        assert!(matches!(
            decide(
                Some(&peer),
                "edge-0.shop",
                Some(SHOP_EDGE),
                Some("cluster.local")
            ),
            Access::Deny(_)
        ));
        let ours = spiffe("spiffe://cluster.local/ns/shop/sa/edge");
        assert_eq!(
            decide(
                Some(&ours),
                "edge-0.shop",
                Some(SHOP_EDGE),
                Some("Cluster.Local")
            ),
            Access::Allow
        );
    }

    #[test]
    fn a_dns_name_equal_to_the_node_id_authorizes_it_alone() {
        let peer = dns("Edge-0.shop");
        assert_eq!(
            decide(Some(&peer), "edge-0.shop", None, None),
            Access::Allow
        );
        assert_eq!(
            decide(Some(&peer), "edge-0.shop", Some(SHOP_EDGE), None),
            Access::Allow
        );
        assert!(matches!(
            decide(Some(&peer), "edge-1.shop", Some(SHOP_EDGE), None),
            Access::Deny(m) if m.contains("DNS:Edge-0.shop")
        ));
        let wildcard = dns("*.shop");
        assert!(matches!(
            decide(Some(&wildcard), "edge-1.shop", None, None),
            Access::Deny(_)
        ));
    }

    #[test]
    fn a_certificate_without_names_authorizes_nothing() {
        let peer = PeerIdentity::from_sans(["https://example.com/x".to_string()], vec![]);
        assert!(matches!(
            decide(Some(&peer), "edge-0.shop", Some(SHOP_EDGE), None),
            Access::Deny(m) if m.contains("https://example.com/x")
        ));
        assert!(matches!(
            decide(Some(&PeerIdentity::default()), "edge-0.shop", Some(SHOP_EDGE), None),
            Access::Deny(m) if m.contains("without URI or DNS")
        ));
    }
}
