//! The xDS resource types Bootes serves.

/// Prefix of every type URL.
pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// An xDS resource type, in make-before-break order: a type that others
/// reference (or that clients subscribe to because another type names it)
/// comes before them. Removals go in the reverse order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Runtime,
    Cluster,
    Endpoint,
    Secret,
    ExtensionConfig,
    Listener,
    ScopedRoute,
    Route,
    VirtualHost,
}

impl ResourceType {
    /// Every type, in make-before-break order.
    pub const ALL: [ResourceType; 9] = [
        ResourceType::Runtime,
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Secret,
        ResourceType::ExtensionConfig,
        ResourceType::Listener,
        ResourceType::ScopedRoute,
        ResourceType::Route,
        ResourceType::VirtualHost,
    ];

    /// Fully qualified name of the Envoy message.
    pub const fn message_name(self) -> &'static str {
        match self {
            ResourceType::Runtime => "envoy.service.runtime.v3.Runtime",
            ResourceType::Cluster => "envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => "envoy.config.endpoint.v3.ClusterLoadAssignment",
            ResourceType::Secret => "envoy.extensions.transport_sockets.tls.v3.Secret",
            ResourceType::ExtensionConfig => "envoy.config.core.v3.TypedExtensionConfig",
            ResourceType::Listener => "envoy.config.listener.v3.Listener",
            ResourceType::ScopedRoute => "envoy.config.route.v3.ScopedRouteConfiguration",
            ResourceType::Route => "envoy.config.route.v3.RouteConfiguration",
            ResourceType::VirtualHost => "envoy.config.route.v3.VirtualHost",
        }
    }

    pub const fn type_url(self) -> &'static str {
        match self {
            ResourceType::Runtime => "type.googleapis.com/envoy.service.runtime.v3.Runtime",
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Secret => {
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            }
            ResourceType::ExtensionConfig => {
                "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::ScopedRoute => {
                "type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration"
            }
            ResourceType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            ResourceType::VirtualHost => "type.googleapis.com/envoy.config.route.v3.VirtualHost",
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// The Bootes kind (`bootes.io/v1`) whose `spec.config` is this type.
    pub const fn kind(self) -> &'static str {
        match self {
            ResourceType::Runtime => "Runtime",
            ResourceType::Cluster => "Cluster",
            ResourceType::Endpoint => "Endpoint",
            ResourceType::Secret => "Secret",
            ResourceType::ExtensionConfig => "ExtensionConfig",
            ResourceType::Listener => "Listener",
            ResourceType::ScopedRoute => "ScopedRoute",
            ResourceType::Route => "Route",
            ResourceType::VirtualHost => "VirtualHost",
        }
    }

    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.kind() == kind)
    }

    /// The field of the message that holds the xDS resource name.
    pub const fn name_field(self) -> &'static str {
        match self {
            ResourceType::Endpoint => "cluster_name",
            _ => "name",
        }
    }

    /// Short name used in logs and metrics ("CDS", "LDS", …).
    pub const fn short_name(self) -> &'static str {
        match self {
            ResourceType::Runtime => "RTDS",
            ResourceType::Cluster => "CDS",
            ResourceType::Endpoint => "EDS",
            ResourceType::Secret => "SDS",
            ResourceType::ExtensionConfig => "ECDS",
            ResourceType::Listener => "LDS",
            ResourceType::ScopedRoute => "SRDS",
            ResourceType::Route => "RDS",
            ResourceType::VirtualHost => "VHDS",
        }
    }

    /// In state-of-the-world, a response of these types carries the complete
    /// set, and a resource missing from it is deleted by the client. For the
    /// other types a client only drops a resource by unsubscribing.
    pub const fn sotw_full_state(self) -> bool {
        matches!(
            self,
            ResourceType::Listener | ResourceType::Cluster | ResourceType::ScopedRoute
        )
    }
}

impl std::fmt::Display for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_urls_name_their_messages_and_round_trip() {
        for t in ResourceType::ALL {
            assert_eq!(
                t.type_url(),
                format!("{TYPE_URL_PREFIX}{}", t.message_name())
            );
            assert_eq!(ResourceType::from_type_url(t.type_url()), Some(t));
        }
        assert_eq!(ResourceType::from_type_url("type.googleapis.com/x"), None);
    }

    #[test]
    fn every_message_exists_in_the_envoy_api() {
        let pool = crate::envoy::descriptor_pool();
        for t in ResourceType::ALL {
            let msg = pool
                .get_message_by_name(t.message_name())
                .unwrap_or_else(|| panic!("{} missing", t.message_name()));
            assert!(msg.get_field_by_name(t.name_field()).is_some(), "{t}");
        }
    }

    #[test]
    fn order_puts_clusters_before_endpoints_before_listeners_before_routes() {
        use ResourceType::*;
        let pos = |t| ResourceType::ALL.iter().position(|x| *x == t).unwrap();
        assert!(pos(Cluster) < pos(Endpoint));
        assert!(pos(Endpoint) < pos(Listener));
        assert!(pos(Listener) < pos(Route));
        assert!(pos(Route) < pos(VirtualHost));
        let mut sorted = ResourceType::ALL;
        sorted.sort();
        assert_eq!(
            sorted,
            ResourceType::ALL,
            "Ord follows make-before-break order"
        );
    }
}
