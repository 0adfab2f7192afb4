//! The rules of [`super::semantic`]: Envoy 1.40's checks beyond
//! protoc-gen-validate, found with the Envoy differential test and verified
//! against `envoy --mode validate`. docs/VALIDATION.md lists them.

use bootes_proto::ResourceType;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

use super::filter_order;
use super::rule::{enum_name, is_set, values, Check, Cond, Rule};
use super::semantic_checks::*;
use super::slots::{any_misfit, Slot};

const LISTENER: &str = "envoy.config.listener.v3.Listener";
const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const NO_IMPLEMENTATION: &str =
    "Didn't find a registered implementation for '…' with type URL: '…'";
const PER_ROUTE: &str =
    "The filter … doesn't support virtual host or route specific configurations";
const STATIC_ONLY: &[Cond] = &[Cond::Enum("type", &["STATIC"]), Cond::Unset("cluster_type")];

pub static RULES: &[Rule] = &[
    // --- every message -----------------------------------------------------
    Rule {
        message: "google.protobuf.Duration",
        when: &[],
        check: Check::Message(duration_in_range),
        problem: "",
        envoy: "Invalid duration",
    },
    Rule {
        message: "envoy.config.core.v3.Pipe",
        when: &[],
        check: Check::Each("path", unix_socket_path),
        problem: "not a usable Unix socket path",
        envoy: "exceeds maximum UNIX domain socket path size",
    },
    // --- extensions: Envoy finds the implementation by the type URL ---------
    Rule {
        message: "envoy.config.listener.v3.Filter",
        when: &[Cond::Unset("config_discovery")],
        check: Check::Required("typed_config.type_url"),
        problem: "typed_config with an @type is required (or config_discovery)",
        envoy: "Didn't find a registered implementation for '…' with type URL: ''",
    },
    Rule {
        message: "envoy.config.listener.v3.ListenerFilter",
        when: &[Cond::Unset("config_discovery")],
        check: Check::Required("typed_config.type_url"),
        problem: "typed_config with an @type is required (or config_discovery)",
        envoy: "Didn't find a registered implementation for '…' with type URL: ''",
    },
    Rule {
        message: "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
        when: &[Cond::Unset("config_discovery"), Cond::Unset("is_optional")],
        check: Check::Required("typed_config.type_url"),
        problem: "typed_config with an @type is required (or config_discovery, or is_optional)",
        envoy: "Didn't find a registered implementation for '…' with type URL: ''",
    },
    Rule {
        message: "envoy.config.core.v3.TransportSocket",
        when: &[],
        check: Check::Required("typed_config.type_url"),
        problem: "typed_config with an @type is required",
        envoy: "Didn't find a registered implementation for '…' with type URL: ''",
    },
    Rule {
        message: "envoy.config.accesslog.v3.AccessLog",
        when: &[],
        check: Check::Required("typed_config.type_url"),
        problem: "typed_config with an @type is required",
        envoy: "Didn't find a registered implementation for '…' with type URL: ''",
    },
    Rule {
        message: CLUSTER,
        when: &[],
        check: Check::Each("typed_extension_protocol_options", any_has_type),
        problem: "each protocol option needs an @type",
        envoy: "rejects the cluster",
    },
    // --- extension slots: the type must be one Envoy has for the place --------
    Rule {
        message: "envoy.config.listener.v3.FilterChain",
        when: &[],
        check: Check::Each("filters.typed_config", network_filter),
        problem: "typed_config does not fit a network filter",
        envoy: NO_IMPLEMENTATION,
    },
    Rule {
        message: "envoy.config.listener.v3.FilterChain",
        when: &[],
        check: Check::Each("transport_socket.typed_config", downstream_transport),
        problem: "typed_config does not fit a listener's transport socket",
        envoy: NO_IMPLEMENTATION,
    },
    Rule {
        message: LISTENER,
        when: &[Cond::Enum("address.socket_address.protocol", &["TCP"])],
        check: Check::Each("listener_filters.typed_config", listener_filter),
        problem: "typed_config does not fit a listener filter of a TCP listener",
        envoy: NO_IMPLEMENTATION,
    },
    Rule {
        message: LISTENER,
        when: &[Cond::Enum("address.socket_address.protocol", &["UDP"])],
        check: Check::Each("listener_filters.typed_config", udp_listener_filter),
        problem: "typed_config does not fit a listener filter of a UDP listener",
        envoy: NO_IMPLEMENTATION,
    },
    Rule {
        message: HCM,
        when: &[],
        check: Check::Each("http_filters", http_filter),
        problem: "typed_config does not fit an HTTP filter",
        envoy: NO_IMPLEMENTATION,
    },
    Rule {
        message: HCM,
        when: &[],
        check: Check::Each("tracing.provider.typed_config", tracer),
        problem: "typed_config does not fit a tracer",
        envoy: NO_IMPLEMENTATION,
    },
    Rule {
        message: "envoy.config.accesslog.v3.AccessLog",
        when: &[],
        check: Check::Each("typed_config", access_logger),
        problem: "typed_config does not fit an access logger",
        envoy: NO_IMPLEMENTATION,
    },
    Rule {
        message: CLUSTER,
        when: &[],
        check: Check::Each("transport_socket.typed_config", upstream_transport),
        problem: "typed_config does not fit a cluster's transport socket",
        envoy: NO_IMPLEMENTATION,
    },
    Rule {
        message: CLUSTER,
        when: &[],
        check: Check::Each(
            "transport_socket_matches.transport_socket.typed_config",
            upstream_transport,
        ),
        problem: "typed_config does not fit a cluster's transport socket",
        envoy: NO_IMPLEMENTATION,
    },
    Rule {
        message: CLUSTER,
        when: &[],
        check: Check::Message(protocol_option_names),
        problem: "",
        envoy: "Didn't find a registered network or http filter or protocol options implementation for name: '…'",
    },
    Rule {
        message: "envoy.config.route.v3.RetryPolicy",
        when: &[],
        check: Check::Each("retry_host_predicate.typed_config", retry_host_predicate),
        problem: "typed_config does not fit a retry host predicate",
        envoy: NO_IMPLEMENTATION,
    },
    Rule {
        message: "envoy.config.route.v3.RetryPolicy",
        when: &[],
        check: Check::Each("retry_priority.typed_config", retry_priority),
        problem: "typed_config does not fit a retry priority",
        envoy: NO_IMPLEMENTATION,
    },
    Rule {
        message: "envoy.config.route.v3.VirtualHost",
        when: &[],
        check: Check::Each("typed_per_filter_config", per_route),
        problem: "not a per-route config",
        envoy: PER_ROUTE,
    },
    Rule {
        message: "envoy.config.route.v3.Route",
        when: &[],
        check: Check::Each("typed_per_filter_config", per_route),
        problem: "not a per-route config",
        envoy: PER_ROUTE,
    },
    Rule {
        message: "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        when: &[],
        check: Check::Each("typed_per_filter_config", per_route),
        problem: "not a per-route config",
        envoy: PER_ROUTE,
    },
    Rule {
        message: "envoy.config.route.v3.RouteConfiguration",
        when: &[],
        check: Check::Each("typed_per_filter_config", per_route),
        problem: "not a per-route config",
        envoy: PER_ROUTE,
    },
    Rule {
        message: "envoy.config.route.v3.FilterConfig",
        when: &[Cond::Unset("is_optional")],
        check: Check::Each("config", per_route),
        problem: "not a per-route config",
        envoy: PER_ROUTE,
    },
    // --- Listener ------------------------------------------------------------
    Rule {
        message: LISTENER,
        when: &[Cond::Unset("internal_listener"), Cond::Unset("api_listener")],
        check: Check::Required("address.address"),
        problem: "a listener that is not an internal listener needs an address",
        envoy: "address is necessary",
    },
    Rule {
        message: LISTENER,
        // A UDP listener (UDP proxy) may work with listener filters only.
        when: &[
            Cond::Unset("api_listener"),
            Cond::Enum("address.socket_address.protocol", &["TCP"]),
        ],
        check: Check::AnyOf(&["filter_chains", "default_filter_chain"]),
        problem: "filter_chains is empty and there is no default_filter_chain",
        envoy: "no filter chains specified",
    },
    Rule {
        message: LISTENER,
        when: &[],
        check: Check::Each("address.socket_address", ip_address),
        problem: "a listener address must be an IP address",
        envoy: "malformed IP address",
    },
    Rule {
        message: LISTENER,
        when: &[],
        check: Check::Each("additional_addresses.address.socket_address", ip_address),
        problem: "a listener address must be an IP address",
        envoy: "malformed IP address",
    },
    // --- Cluster ---------------------------------------------------------------
    Rule {
        message: CLUSTER,
        when: &[Cond::Set("eds_cluster_config")],
        check: Check::Holds(Cond::Enum("type", &["EDS"])),
        problem: "eds_cluster_config is only for a cluster of type EDS (type defaults to STATIC)",
        envoy: "eds_cluster_config set in a non-EDS cluster",
    },
    Rule {
        message: CLUSTER,
        when: &[
            Cond::Enum("type", &["EDS"]),
            Cond::Unset("cluster_type"),
            Cond::NoPrefix("name", "xdstp:"),
            Cond::NoPrefix("eds_cluster_config.service_name", "xdstp:"),
        ],
        check: Check::Required("eds_cluster_config.eds_config"),
        problem: "a cluster of type EDS needs eds_cluster_config.eds_config",
        envoy: "cannot create an EDS cluster without an EDS config",
    },
    Rule {
        message: CLUSTER,
        when: STATIC_ONLY,
        check: Check::Each(
            "load_assignment.endpoints.lb_endpoints.endpoint.address.socket_address",
            ip_address,
        ),
        problem: "the endpoints of a STATIC cluster (the default type) must be IP addresses; use STRICT_DNS or LOGICAL_DNS for host names",
        envoy: "malformed IP address",
    },
    Rule {
        message: CLUSTER,
        when: STATIC_ONLY,
        check: Check::Each("load_assignment.endpoints.lb_endpoints", endpoint_address_set),
        problem: "an endpoint needs an address (socket_address, pipe or envoy_internal_address)",
        envoy: "Address must be set",
    },
    Rule {
        message: CLUSTER,
        when: &[Cond::Enum("type", &["LOGICAL_DNS"]), Cond::Unset("cluster_type")],
        check: Check::Count {
            path: "load_assignment.endpoints",
            min: 1,
            max: 1,
        },
        problem: "a LOGICAL_DNS cluster needs exactly one locality with exactly one endpoint",
        envoy: "LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint",
    },
    Rule {
        message: CLUSTER,
        when: &[Cond::Enum("type", &["LOGICAL_DNS"]), Cond::Unset("cluster_type")],
        check: Check::Count {
            path: "load_assignment.endpoints.lb_endpoints",
            min: 1,
            max: 1,
        },
        problem: "a LOGICAL_DNS cluster needs exactly one locality with exactly one endpoint",
        envoy: "LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint",
    },
    Rule {
        message: CLUSTER,
        when: &[
            Cond::Enum("type", &["ORIGINAL_DST"]),
            Cond::Unset("cluster_type"),
            Cond::Unset("load_balancing_policy"),
        ],
        check: Check::Holds(Cond::Enum("lb_policy", &["CLUSTER_PROVIDED"])),
        problem: "a cluster of type ORIGINAL_DST needs lb_policy CLUSTER_PROVIDED",
        envoy: "LB policy … is not valid for Cluster type ORIGINAL_DST",
    },
    Rule {
        message: CLUSTER,
        when: &[
            Cond::Enum("lb_policy", &["CLUSTER_PROVIDED"]),
            Cond::Unset("cluster_type"),
        ],
        check: Check::Holds(Cond::Enum("type", &["ORIGINAL_DST"])),
        problem: "lb_policy CLUSTER_PROVIDED needs a cluster type that provides one (ORIGINAL_DST or a custom cluster_type)",
        envoy: "cluster provided LB specified but cluster … did not provide one",
    },
    Rule {
        message: CLUSTER,
        when: &[],
        check: Check::Message(ring_sizes),
        problem: "",
        envoy: "ring hash: minimum_ring_size … > maximum_ring_size …",
    },
    Rule {
        message: "envoy.config.core.v3.HealthCheck.HttpHealthCheck",
        when: &[],
        check: Check::Each("expected_statuses", status_range),
        problem: "invalid status range",
        envoy: "Invalid http expected status range",
    },
    Rule {
        message: "envoy.config.core.v3.HealthCheck.HttpHealthCheck",
        when: &[],
        check: Check::Each("retriable_statuses", status_range),
        problem: "invalid status range",
        envoy: "Invalid http status range",
    },
    // --- Endpoint (ClusterLoadAssignment) ---------------------------------------
    Rule {
        message: "envoy.config.endpoint.v3.ClusterLoadAssignment",
        when: &[Cond::Resource(ResourceType::Endpoint)],
        check: Check::Each(
            "endpoints.lb_endpoints.endpoint.address.socket_address",
            ip_address,
        ),
        problem: "EDS endpoints must be IP addresses (Envoy does not resolve them)",
        envoy: "malformed IP address",
    },
    Rule {
        message: "envoy.config.endpoint.v3.ClusterLoadAssignment",
        when: &[Cond::Resource(ResourceType::Endpoint)],
        check: Check::Each("endpoints.lb_endpoints", endpoint_address_set),
        problem: "an endpoint needs an address (socket_address, pipe or envoy_internal_address)",
        envoy: "Address must be set",
    },
    // --- Route ---------------------------------------------------------------
    Rule {
        message: "envoy.extensions.filters.network.http_connection_manager.v3.Rds",
        when: &[Cond::Unset("config_source"), Cond::NoPrefix("route_config_name", "xdstp:")],
        check: Check::Required("config_source"),
        problem: "rds needs a config_source (e.g. {ads: {}}) unless route_config_name is an xdstp:// name",
        envoy: "An RDS config must have either a 'config_source' or an xDS-TP based 'route_config_name'",
    },
    Rule {
        message: "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        when: &[],
        check: Check::Required("weight"),
        problem: "each weighted cluster needs a weight",
        envoy: "Field 'weight' is missing",
    },
    Rule {
        message: "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        when: &[],
        check: Check::AnyOf(&["name", "cluster_header"]),
        problem: "each weighted cluster needs a name or a cluster_header",
        envoy: "At least one of name or cluster_header need to be specified",
    },
    Rule {
        message: "envoy.config.route.v3.RouteAction.RequestMirrorPolicy",
        when: &[],
        check: Check::ExactlyOne(&["cluster", "cluster_header"]),
        problem: "a request mirror policy needs exactly one of cluster and cluster_header",
        envoy: "Exactly one of cluster or cluster_header in request mirror policy need to be specified",
    },
    Rule {
        message: "envoy.config.route.v3.RouteConfiguration",
        when: &[],
        check: Check::Message(direct_response_sizes),
        problem: "",
        envoy: "response body size is … bytes; maximum is …",
    },
    Rule {
        message: "envoy.config.route.v3.RetryPolicy.RetryBackOff",
        when: &[],
        check: Check::Message(retry_back_off),
        problem: "",
        envoy: "retry_policy.max_interval must greater than or equal to the base_interval",
    },
    Rule {
        message: "envoy.config.route.v3.VirtualHost",
        when: &[],
        check: Check::Each("typed_per_filter_config", any_has_type),
        problem: "each per-filter config needs an @type",
        envoy: "Didn't find a registered implementation for '…' with type URL: ''",
    },
    Rule {
        message: "envoy.config.route.v3.Route",
        when: &[],
        check: Check::Each("typed_per_filter_config", any_has_type),
        problem: "each per-filter config needs an @type",
        envoy: "Didn't find a registered implementation for '…' with type URL: ''",
    },
    Rule {
        message: "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        when: &[],
        check: Check::Each("typed_per_filter_config", any_has_type),
        problem: "each per-filter config needs an @type",
        envoy: "Didn't find a registered implementation for '…' with type URL: ''",
    },
    Rule {
        message: "envoy.config.route.v3.RouteConfiguration",
        when: &[],
        check: Check::Each("typed_per_filter_config", any_has_type),
        problem: "each per-filter config needs an @type",
        envoy: "Didn't find a registered implementation for '…' with type URL: ''",
    },
    Rule {
        message: "envoy.config.core.v3.CidrRange",
        when: &[],
        check: Check::Each("address_prefix", cidr_address),
        problem: "not an IP prefix",
        envoy: "malformed IP address",
    },
    // --- TLS -------------------------------------------------------------------
    Rule {
        message: "envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
        when: &[Cond::Unset("pkcs12")],
        check: Check::Required("certificate_chain.specifier"),
        problem: "a TLS certificate needs its certificate_chain",
        envoy: "Failed to load incomplete certificate … certificate chain not set",
    },
    Rule {
        message: "envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
        when: &[Cond::Unset("pkcs12"), Cond::Unset("private_key_provider")],
        check: Check::Required("private_key.specifier"),
        problem: "a TLS certificate needs its private_key (or a private_key_provider)",
        envoy: "Failed to load incomplete private key",
    },
    Rule {
        message: "envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
        when: &[],
        check: Check::Each("certificate_chain", pem_certificate),
        problem: "certificate_chain is not a PEM certificate",
        envoy: "Failed to load certificate chain",
    },
    Rule {
        message: "envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
        when: &[],
        check: Check::Each("private_key", pem_private_key),
        problem: "private_key is not a PEM private key",
        envoy: "Failed to load private key",
    },
    Rule {
        message: "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        when: &[],
        check: Check::Each("trusted_ca", pem_certificate),
        problem: "trusted_ca is not a PEM certificate",
        envoy: "Failed to load trusted CA certificates",
    },
    Rule {
        // Only a validation context given in place: one from SDS may be
        // combined with a default context that has the CA.
        message: "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext",
        when: &[
            Cond::Set("validation_context.match_typed_subject_alt_names"),
            Cond::Enum("validation_context.trust_chain_verification", &["VERIFY_TRUST_CHAIN"]),
        ],
        check: Check::AnyOf(&[
            "validation_context.trusted_ca",
            "validation_context.ca_certificate_provider_instance",
            "validation_context.system_root_certs",
        ]),
        problem: "matching subject alt names needs a trusted_ca",
        envoy: "SAN-based verification of peer certificates without trusted CA is insecure and not allowed",
    },
    Rule {
        message: "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        when: &[],
        check: Check::AnyOf(&[
            "common_tls_context.tls_certificates",
            "common_tls_context.tls_certificate_sds_secret_configs",
            "common_tls_context.tls_certificate_provider_instance",
            "common_tls_context.tls_certificate_certificate_provider_instance",
            "common_tls_context.custom_handshaker",
            "common_tls_context.custom_tls_certificate_selector",
        ]),
        problem: "a server TLS context needs a certificate (tls_certificates or tls_certificate_sds_secret_configs)",
        envoy: "No TLS certificates found for server context",
    },
    Rule {
        // With a secret from SDS, Envoy builds the TLS context (and reads
        // the ALPN list) only when the secret arrives, not with the resource.
        message: "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext",
        when: &[
            Cond::Unset("tls_certificate_sds_secret_configs"),
            Cond::Unset("validation_context_sds_secret_config"),
            Cond::Unset("combined_validation_context"),
        ],
        check: Check::Each("alpn_protocols", alpn_length),
        problem: "invalid ALPN protocol",
        envoy: "Invalid ALPN protocol string",
    },
    Rule {
        message: "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        when: &[],
        check: Check::Message(upstream_alpn_not_empty),
        problem: "",
        envoy: "crashes (assert failure: INVALID_ALPN_PROTOCOL_LIST)",
    },
    // --- issue 24: filter order ---------------------------------------------------
    Rule {
        message: "envoy.config.listener.v3.FilterChain",
        when: &[],
        check: Check::Message(filter_order::network_terminal_not_last),
        problem: "",
        envoy: "terminal filter named … must be the last filter in a network filter chain",
    },
    Rule {
        message: "envoy.config.listener.v3.FilterChain",
        when: &[],
        check: Check::Message(filter_order::network_last_not_terminal),
        problem: "",
        envoy: "non-terminal filter named … is the last filter in a network filter chain",
    },
    Rule {
        message: HCM,
        when: &[],
        check: Check::Message(filter_order::http_terminal_not_last),
        problem: "",
        envoy: "terminal filter named … must be the last filter in a http filter chain",
    },
    Rule {
        message: HCM,
        when: &[],
        check: Check::Message(filter_order::http_last_not_terminal),
        problem: "",
        envoy: "non-terminal filter named … is the last filter in a http filter chain",
    },
    // --- issue 24: listeners ------------------------------------------------------
    Rule {
        message: "envoy.config.listener.v3.FilterChainMatch",
        when: &[],
        check: Check::Each("server_names", server_name),
        problem: "partial wildcard",
        envoy: "partial wildcards are not supported in \"server_names\"",
    },
    Rule {
        message: LISTENER,
        when: &[Cond::Unset("filter_chain_matcher")],
        check: Check::Message(duplicate_chain_matches),
        problem: "",
        envoy: "filter chain '…' has the same matching rules defined as '…' / multiple filter chains with overlapping matching rules are defined",
    },
    Rule {
        message: LISTENER,
        when: &[
            Cond::Enum("address.socket_address.protocol", &["UDP"]),
            Cond::Unset("udp_listener_config.quic_options"),
        ],
        check: Check::Count {
            path: "filter_chains",
            min: 0,
            max: 0,
        },
        problem: "a UDP listener that is not a QUIC listener takes no filter_chains (its filters are listener_filters)",
        envoy: "… filter chain(s) specified for connection-less UDP listener",
    },
    Rule {
        message: LISTENER,
        when: &[],
        check: Check::Message(http3_needs_quic),
        problem: "",
        envoy: "HTTP/3 codec configured on non-QUIC listener",
    },
    // --- issue 24: regular expressions --------------------------------------------
    Rule {
        message: "envoy.type.matcher.v3.RegexMatcher",
        when: &[],
        check: Check::Message(regex),
        problem: "",
        envoy: "RE2's error (missing ), invalid repetition size, invalid perl operator, …) or \"RE2 program size of … > max program size of 100\"",
    },
    // --- issue 24: routes and virtual hosts -----------------------------------------
    Rule {
        message: "envoy.config.route.v3.RouteConfiguration",
        when: &[],
        check: Check::Message(unique_domains),
        problem: "",
        envoy: "Only unique values for domains are permitted / Only a single wildcard domain is permitted",
    },
    Rule {
        message: "envoy.config.route.v3.RouteAction",
        when: &[],
        check: Check::Message(one_path_rewrite),
        problem: "",
        envoy: "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy",
    },
    Rule {
        message: "envoy.config.route.v3.WeightedCluster",
        when: &[],
        check: Check::Message(weights_sum),
        problem: "",
        envoy: "Sum of weights in the weighted_cluster must be greater than 0",
    },
    Rule {
        message: "envoy.config.route.v3.RouteConfiguration",
        when: &[],
        check: Check::Message(header_mutations),
        problem: "",
        envoy: ":-prefixed or host headers may not be modified / removed",
    },
    Rule {
        message: "envoy.config.route.v3.VirtualHost",
        when: &[],
        check: Check::Message(header_mutations),
        problem: "",
        envoy: ":-prefixed or host headers may not be modified / removed",
    },
    Rule {
        message: "envoy.config.route.v3.Route",
        when: &[],
        check: Check::Message(header_mutations),
        problem: "",
        envoy: ":-prefixed or host headers may not be modified / removed",
    },
    Rule {
        message: "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        when: &[],
        check: Check::Message(header_mutations),
        problem: "",
        envoy: ":-prefixed or host headers may not be modified / removed",
    },
    Rule {
        message: "envoy.config.route.v3.RouteConfiguration",
        when: &[],
        check: Check::Message(header_value_formats),
        problem: "",
        envoy: FORMAT,
    },
    Rule {
        message: "envoy.config.route.v3.VirtualHost",
        when: &[],
        check: Check::Message(header_value_formats),
        problem: "",
        envoy: FORMAT,
    },
    Rule {
        message: "envoy.config.route.v3.Route",
        when: &[],
        check: Check::Message(header_value_formats),
        problem: "",
        envoy: FORMAT,
    },
    Rule {
        message: "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        when: &[],
        check: Check::Message(header_value_formats),
        problem: "",
        envoy: FORMAT,
    },
    Rule {
        message: "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
        when: &[],
        check: Check::Each("path_template", uri_template),
        problem: "not a valid URI template",
        envoy: "path_match_policy.path_template … is invalid",
    },
    Rule {
        message: "envoy.extensions.path.rewrite.uri_template.v3.UriTemplateRewriteConfig",
        when: &[],
        check: Check::Each("path_template_rewrite", uri_template),
        problem: "not a valid URI template",
        envoy: "path_rewrite_policy.path_template_rewrite … is invalid",
    },
    // --- issue 24: HTTP connection manager and formats ------------------------------
    Rule {
        message: HCM,
        when: &[],
        check: Check::Message(unique_upgrades),
        problem: "",
        envoy: "Error: multiple upgrade configs with the same name: '…'",
    },
    Rule {
        message: "envoy.config.core.v3.SubstitutionFormatString",
        when: &[],
        check: Check::Message(substitution_format),
        problem: "",
        envoy: FORMAT,
    },
    // --- issue 24: clusters ----------------------------------------------------------
    Rule {
        message: CLUSTER,
        when: &[Cond::Enum("type", &["ORIGINAL_DST"]), Cond::Unset("cluster_type")],
        check: Check::Holds(Cond::Unset("load_assignment")),
        problem: "a cluster of type ORIGINAL_DST takes no load_assignment (its hosts are the connections' original destinations)",
        envoy: "ORIGINAL_DST clusters must have no load assignment configured",
    },
    Rule {
        message: "envoy.config.listener.v3.Listener",
        when: &[],
        check: Check::Message(ipv4_compat),
        problem: "",
        envoy: "Only IPv6 address '::' or valid IPv4-mapped IPv6 address can set ipv4_compat",
    },
    Rule {
        message: "envoy.config.core.v3.BindConfig",
        when: &[],
        check: Check::Each("source_address", ip_address),
        problem: "a bind address must be an IP address",
        envoy: "malformed IP address",
    },
    Rule {
        message: "envoy.config.core.v3.HealthCheck.Payload",
        when: &[],
        check: Check::Each("text", hex_payload),
        problem: "not hex",
        envoy: "invalid hex string '…'",
    },
    Rule {
        message: "envoy.config.core.v3.HealthCheck.HttpHealthCheck",
        when: &[Cond::Set("send")],
        check: Check::Holds(Cond::Enum("method", &["POST", "PUT", "PATCH", "OPTIONS"])),
        problem: "an HTTP health check with a send payload needs a method that takes a body (POST, PUT, PATCH, OPTIONS); the default is GET",
        envoy: "HTTP health check cannot specify a request payload with method '…'",
    },
    Rule {
        message: CLUSTER,
        when: &[],
        check: Check::Message(grpc_health_check_needs_http2),
        problem: "",
        envoy: "… cluster must support HTTP/2 for gRPC healthchecking",
    },
    // --- issue 24: TLS ----------------------------------------------------------------
    Rule {
        // Like ALPN: with a secret from SDS, the context is built (and the
        // names read) only when the secret arrives.
        message: "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext",
        when: TLS_IN_PLACE,
        check: Check::Message(cipher_suites),
        problem: "",
        envoy: "Failed to initialize cipher suites …",
    },
    Rule {
        message: "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext",
        when: TLS_IN_PLACE,
        check: Check::Each("tls_params.ecdh_curves", ecdh_curve),
        problem: "unknown curve",
        envoy: "Failed to initialize ECDH curves …",
    },
    Rule {
        message: "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext",
        when: TLS_IN_PLACE,
        check: Check::Each("tls_params.signature_algorithms", signature_algorithm),
        problem: "unknown signature algorithm",
        envoy: "Failed to initialize TLS signature algorithms …",
    },
    Rule {
        message: "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        when: &[],
        check: Check::Each("session_ticket_keys.keys", ticket_key_length),
        problem: "a session ticket key is 80 bytes",
        envoy: "Incorrect TLS session ticket key length. Length …, expected length 80.",
    },
    Rule {
        message: "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        when: &[
            Cond::Enum("ocsp_staple_policy", &["MUST_STAPLE"]),
            Cond::Unset("common_tls_context.tls_certificate_sds_secret_configs"),
        ],
        check: Check::Each("common_tls_context.tls_certificates", has_ocsp_staple),
        problem: "ocsp_staple_policy MUST_STAPLE needs an ocsp_staple with every certificate",
        envoy: "Required OCSP response is missing from TLS context",
    },
];

/// Envoy's words for a broken substitution format.
const FORMAT: &str = "Incorrect configuration: …. Couldn't find valid command at position …";

/// A TLS context whose names Envoy reads with the resource (no secret from
/// SDS).
const TLS_IN_PLACE: &[Cond] = &[
    Cond::Unset("tls_certificate_sds_secret_configs"),
    Cond::Unset("validation_context_sds_secret_config"),
    Cond::Unset("combined_validation_context"),
];

/// Warnings: what Envoy may accept, or rejects only depending on what Bootes
/// cannot see. Reported (`validate`'s `warning:` lines, the `Accepted`
/// message in status), never a reason to reject: when in doubt, warn.
pub static WARNINGS: &[Rule] = &[
    Rule {
        message: "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig",
        when: &[],
        check: Check::Required("sds_config"),
        problem: "a secret without sds_config is a static secret of the Envoy's bootstrap, which Bootes does not provide",
        envoy: "Unknown static secret: … unless the bootstrap defines it",
    },
    Rule {
        message: "envoy.extensions.transport_sockets.tls.v3.Secret",
        when: &[Cond::Resource(ResourceType::Secret)],
        check: Check::Required("type"),
        problem: "the secret has none of tls_certificate, session_ticket_keys, validation_context, generic_secret",
        envoy: "Secret type not implemented, in a bootstrap; over SDS it depends on what the subscriber expects",
    },
];

// ---------------------------------------------------------------------------
// Tests of values.

fn network_filter(v: &Value) -> Option<String> {
    any_misfit(&[Slot::Network], v)
}

fn downstream_transport(v: &Value) -> Option<String> {
    any_misfit(&[Slot::DownstreamTransport], v)
}

fn upstream_transport(v: &Value) -> Option<String> {
    any_misfit(&[Slot::UpstreamTransport], v)
}

fn listener_filter(v: &Value) -> Option<String> {
    any_misfit(&[Slot::Listener], v)
}

/// A UDP listener takes UDP listener filters, and QUIC listener filters
/// (which the table does not list) when it is a QUIC listener.
fn udp_listener_filter(v: &Value) -> Option<String> {
    any_misfit(&[Slot::UdpListener, Slot::Listener], v)
        .filter(|_| any_misfit(&[Slot::UdpListener], v).is_some())
}

/// An HTTP filter that is not optional (Envoy skips an optional filter it
/// has no implementation for).
fn http_filter(v: &Value) -> Option<String> {
    let filter = v.as_message()?;
    if is_set(filter, "is_optional") {
        return None;
    }
    let (_, any) = values(filter, "typed_config").into_iter().next()?;
    any_misfit(&[Slot::Http], &any)
}

fn tracer(v: &Value) -> Option<String> {
    any_misfit(&[Slot::Tracer], v)
}

fn access_logger(v: &Value) -> Option<String> {
    any_misfit(&[Slot::AccessLogger], v)
}

fn retry_host_predicate(v: &Value) -> Option<String> {
    any_misfit(&[Slot::RetryHostPredicate], v)
}

fn retry_priority(v: &Value) -> Option<String> {
    any_misfit(&[Slot::RetryPriority], v)
}

fn per_route(v: &Value) -> Option<String> {
    any_misfit(&[Slot::PerRoute], v)
}

/// The keys of `typed_extension_protocol_options` name the factory Envoy
/// looks up: one of the upstream protocol options, or a filter (whose
/// support Envoy judges).
fn protocol_option_names(cluster: &DynamicMessage) -> Option<(String, String)> {
    values(cluster, "typed_extension_protocol_options")
        .into_iter()
        .find_map(|(at, _)| {
            let key: String = serde_json::from_str(at.rsplit_once('[')?.1.strip_suffix(']')?).ok()?;
            let known = matches!(
                key.as_str(),
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
                    | "envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions"
            ) || key.starts_with("envoy.upstreams.")
                || key.starts_with("envoy.filters.");
            (!known).then(|| {
                (
                    at,
                    format!("no protocol options are named {}: use envoy.extensions.upstreams.http.v3.HttpProtocolOptions, envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions or a filter's name", super::json::quote(&key)),
                )
            })
        })
}

/// The value inside the wrapper message (`UInt64Value`, …) at `path`, when
/// the wrapper is set (its value may be the default, 0).
fn wrapped(m: &DynamicMessage, path: &str) -> Option<Value> {
    let (_, wrapper) = values(m, path).into_iter().next()?;
    wrapper
        .as_message()?
        .get_field_by_name("value")
        .map(|v| v.into_owned())
}

/// Durations as nanoseconds.
fn nanos(d: &DynamicMessage) -> i128 {
    i128::from(int(d, "seconds")) * 1_000_000_000 + i128::from(int(d, "nanos"))
}

fn retry_back_off(b: &DynamicMessage) -> Option<(String, String)> {
    let interval = |name: &str| {
        values(b, name)
            .first()
            .and_then(|(_, v)| v.as_message().map(nanos))
    };
    let (base, max) = (interval("base_interval")?, interval("max_interval")?);
    (max < base).then(|| {
        (
            ".max_interval".into(),
            "max_interval must be at least base_interval".into(),
        )
    })
}

fn cidr_address(v: &Value) -> Option<String> {
    let a = v.as_str()?;
    a.parse::<std::net::IpAddr>()
        .is_err()
        .then(|| format!("{} is not an IP address", super::json::quote(a)))
}

fn int(m: &DynamicMessage, field: &str) -> i64 {
    m.get_field_by_name(field)
        .and_then(|v| v.as_i64().or_else(|| v.as_i32().map(i64::from)))
        .unwrap_or(0)
}

/// Envoy takes every duration as nanoseconds in an int64, and rejects
/// negative ones.
fn duration_in_range(d: &DynamicMessage) -> Option<(String, String)> {
    const MAX_SECONDS: i64 = 9_223_372_035;
    let (seconds, nanos) = (int(d, "seconds"), int(d, "nanos"));
    if seconds < 0 || nanos < 0 {
        Some((String::new(), "must not be negative".into()))
    } else if seconds > MAX_SECONDS {
        Some((
            String::new(),
            format!("must be at most {MAX_SECONDS}.999999999s (Envoy keeps durations as int64 nanoseconds)"),
        ))
    } else {
        None
    }
}

/// An `LbEndpoint` Envoy turns into a host at once (EDS, STATIC): its
/// endpoint needs an address, unless it is a named endpoint.
fn endpoint_address_set(v: &Value) -> Option<String> {
    let lb = v.as_message()?;
    if lb.has_field_by_name("endpoint_name") {
        return None;
    }
    let set = is_set(lb, "endpoint.address.address");
    (!set).then(|| "endpoint.address is not set".to_string())
}

/// `sockaddr_un.sun_path` holds 108 bytes, the terminating NUL included.
fn unix_socket_path(v: &Value) -> Option<String> {
    let path = v.as_str()?;
    (path.len() > 107).then(|| format!("{} bytes, more than 107", path.len()))
}

fn any_has_type(v: &Value) -> Option<String> {
    let any = v.as_message()?;
    let url = any.get_field_by_name("type_url")?;
    url.as_str()
        .is_some_and(str::is_empty)
        .then(|| "the @type is missing".to_string())
}

/// A listener's addresses with `ipv4_compat`: `::` or an IPv4-mapped IPv6
/// address (`::ffff:10.0.0.1`). Envoy checks it on listeners only (a
/// cluster's endpoints and bind addresses with it pass: checked with 1.40).
fn ipv4_compat(listener: &DynamicMessage) -> Option<(String, String)> {
    let message = |m: &DynamicMessage, name: &str| {
        m.has_field_by_name(name)
            .then(|| m.get_field_by_name(name))
            .flatten()
            .and_then(|v| v.as_message().cloned())
    };
    let mut addresses = vec![(".address".to_string(), message(listener, "address"))];
    if let Some(extra) = listener.get_field_by_name("additional_addresses") {
        for (i, a) in extra.as_list().unwrap_or_default().iter().enumerate() {
            let address = a.as_message().and_then(|a| message(a, "address"));
            addresses.push((format!(".additional_addresses[{i}].address"), address));
        }
    }
    addresses.into_iter().find_map(|(at, address)| {
        let sa = message(&address?, "socket_address")?;
        let compat = sa.get_field_by_name("ipv4_compat")?.as_bool()?;
        let text = sa.get_field_by_name("address")?.as_str()?.to_string();
        let fits = match text.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(ip)) => ip.is_unspecified() || ip.to_ipv4_mapped().is_some(),
            Ok(std::net::IpAddr::V4(_)) => false,
            // Not an IP: another rule says so.
            Err(_) => true,
        };
        (compat && !fits).then(|| {
            (
                format!("{at}.socket_address.ipv4_compat"),
                format!(
                    "ipv4_compat is only for the IPv6 address :: or an IPv4-mapped IPv6 address, not {}",
                    super::json::quote(&text)
                ),
            )
        })
    })
}

/// A `SocketAddress` Envoy must parse as an IP address (no `resolver_name`).
fn ip_address(v: &Value) -> Option<String> {
    let sa = v.as_message()?;
    let resolver = sa
        .get_field_by_name("resolver_name")
        .is_some_and(|r| r.as_str().is_some_and(|s| !s.is_empty()));
    if resolver {
        return None;
    }
    let address = sa.get_field_by_name("address")?;
    let address = address.as_str()?;
    // A scoped IPv6 address (fe80::1%eth0): the scope is left to Envoy.
    let ip = address.split_once('%').map_or(address, |(ip, _)| ip);
    let scoped = ip.len() < address.len();
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(_)) => return None,
        Ok(std::net::IpAddr::V4(_)) if !scoped => return None,
        _ => {}
    }
    Some(format!(
        "{} is not an IP address",
        super::json::quote(address)
    ))
}

/// An `Int64Range` of HTTP statuses: 100 <= start < end <= 600.
fn status_range(v: &Value) -> Option<String> {
    let r = v.as_message()?;
    let (start, end) = (int(r, "start"), int(r, "end"));
    if start < 100 {
        Some(format!("start must be >= 100, is {start}"))
    } else if end > 600 {
        Some(format!("end must be <= 600, is {end}"))
    } else if start >= end {
        Some(format!("start must be < end (start {start}, end {end})"))
    } else {
        None
    }
}

fn alpn_length(v: &Value) -> Option<String> {
    let p = v.as_str()?;
    (p.len() > 255).then(|| format!("{} bytes, more than 255", p.len()))
}

/// BoringSSL refuses an empty protocol in a list of several, and Envoy then
/// aborts instead of rejecting the config.
fn upstream_alpn_not_empty(ctx: &DynamicMessage) -> Option<(String, String)> {
    let protocols = values(ctx, "common_tls_context.alpn_protocols");
    if protocols.len() < 2 {
        return None;
    }
    protocols
        .iter()
        .find(|(_, p)| p.as_str().is_some_and(str::is_empty))
        .map(|(at, _)| {
            (
                at.clone(),
                "an empty ALPN protocol in a list of several would crash the Envoy".into(),
            )
        })
}

/// The ring hash sizes, where Envoy reads them: the first policy of
/// `load_balancing_policy` when that is set (Envoy takes the first it
/// knows; all of Envoy's are known), otherwise `ring_hash_lb_config`, and
/// that only with `lb_policy: RING_HASH` (Envoy ignores it otherwise).
fn ring_sizes(cluster: &DynamicMessage) -> Option<(String, String)> {
    let (at, config) = if is_set(cluster, "load_balancing_policy") {
        let (at, any) = values(
            cluster,
            "load_balancing_policy.policies.typed_extension_config.typed_config",
        )
        .into_iter()
        .next()?;
        let ring_hash = "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash";
        let payload = crate::any::unpack(any.as_message()?).ok()?;
        (payload.descriptor().full_name() == ring_hash).then_some(())?;
        (at, payload)
    } else if enum_name(cluster, "lb_policy").as_deref() == Some("RING_HASH") {
        let config = match values(cluster, "ring_hash_lb_config").into_iter().next() {
            Some((_, Value::Message(m))) => m,
            _ => return None,
        };
        (".ring_hash_lb_config".to_string(), config)
    } else {
        return None;
    };
    let size = |name: &str, default: u64| {
        wrapped(&config, name).map_or(default, |v| v.as_u64().unwrap_or(default))
    };
    let (min, max) = (
        size("minimum_ring_size", 1024),
        size("maximum_ring_size", 8_388_608),
    );
    (min > max).then(|| {
        (
            at,
            format!("minimum_ring_size ({min}) is more than maximum_ring_size ({max})"),
        )
    })
}

/// Inline direct response bodies fit `max_direct_response_body_size_bytes`.
fn direct_response_sizes(rc: &DynamicMessage) -> Option<(String, String)> {
    let max = wrapped(rc, "max_direct_response_body_size_bytes")
        .and_then(|v| v.as_u32())
        .map_or(4096, u64::from);
    let body = "virtual_hosts.routes.direct_response.body.specifier";
    values(rc, body).into_iter().find_map(|(at, v)| {
        let len = match &v {
            Value::String(s) => s.len(),
            Value::Bytes(b) => b.len(),
            _ => return None,
        } as u64;
        (len > max).then(|| {
            (
                at,
                format!(
                    "the body is {len} bytes, more than max_direct_response_body_size_bytes ({max})"
                ),
            )
        })
    })
}

fn pem_certificate(v: &Value) -> Option<String> {
    pem(v, "CERTIFICATE")
}

fn pem_private_key(v: &Value) -> Option<String> {
    pem(v, "PRIVATE KEY")
}

/// An inline `DataSource` (files are the Envoy's) must hold a PEM block
/// whose label contains `label`, with a base64 body.
fn pem(v: &Value, label: &str) -> Option<String> {
    let ds = v.as_message()?;
    let text: String = if let Some(s) = ds
        .get_field_by_name("inline_string")
        .filter(|_| ds.has_field_by_name("inline_string"))
    {
        s.as_str()?.to_string()
    } else if ds.has_field_by_name("inline_bytes") {
        String::from_utf8_lossy(ds.get_field_by_name("inline_bytes")?.as_bytes()?).into_owned()
    } else {
        return None;
    };
    let blocks: Vec<_> = pem_blocks(&text)
        .filter(|(l, body, _)| l.contains(label) && !body.is_empty())
        .collect();
    if blocks.is_empty() {
        return Some(format!(
            "no PEM block \"-----BEGIN …{label}-----\" with a base64 body"
        ));
    }
    // The contents are DER, unless encrypted (a block with headers, or an
    // ENCRYPTED label), which only the password opens.
    blocks
        .iter()
        .position(|(l, body, headers)| {
            !headers && !l.contains("ENCRYPTED") && !well_formed_der(body)
        })
        .map(|i| format!("PEM block {i} (\"{label}\") does not hold well-formed DER: its contents are broken"))
}

/// (label, decoded body, whether it had headers) of every well-formed PEM
/// block in `text`.
fn pem_blocks(text: &str) -> impl Iterator<Item = (&str, Vec<u8>, bool)> {
    use base64::Engine as _;
    let mut rest = text;
    std::iter::from_fn(move || loop {
        let start = rest.find("-----BEGIN ")?;
        let after = &rest[start + 11..];
        let label_end = after.find("-----")?;
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_start.find(&end_marker) else {
            rest = body_start;
            continue;
        };
        let headers = body_start[..end].lines().any(|l| l.contains(':'));
        let body: String = body_start[..end]
            .lines()
            .filter(|l| !l.contains(':'))
            .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
            .collect();
        rest = &body_start[end + end_marker.len()..];
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(body) {
            return Some((label, decoded, headers));
        }
    })
}
