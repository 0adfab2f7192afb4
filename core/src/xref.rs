//! Cross-references between resources, and the ones nothing provides.
//!
//! Envoy tolerates a route to a cluster it does not have, a listener naming
//! an RDS route configuration or an SDS secret that never arrives, or an EDS
//! cluster without endpoints — requests just fail. docs/DESIGN.md §3 makes
//! these warnings, not errors. This module is pure: [`references`] reads the
//! names a converted resource refers to (with their paths), and [`Gaps`]
//! finds the ones that what the Envoys receiving the referring object get
//! ([`Received`]) does not satisfy.
//!
//! The same mechanism carries the rules Envoy applies across the resources
//! one node receives ([`Need`]): a config source's cluster must be a static
//! cluster of the bootstrap, and no two listeners may have one address.

use std::collections::{BTreeSet, HashMap, HashSet};

use bootes_proto::ResourceType;
use prost_reflect::{DynamicMessage, Value};

use bootes_envoy::any;
use bootes_envoy::convert::{ConfigError, CONFIG_PATH};

const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP_PROXY: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

/// EDS in `envoy.config.cluster.v3.Cluster.DiscoveryType`.
const DISCOVERY_TYPE_EDS: i32 = 3;

const UPSTREAM_TLS: &str = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const DOWNSTREAM_TLS: &str = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";

/// What satisfies a [`Reference`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Need {
    /// A resource of the target type with that name, or for a cluster a
    /// declared bootstrap cluster.
    Resource,
    /// A static cluster of the Envoys' bootstrap: only a declared one
    /// (`--bootstrap-clusters`); a cluster from CDS does not do, as Envoy
    /// says ("… must have a statically defined non-EDS cluster: … was added
    /// via api …").
    StaticCluster,
    /// No other listener the node receives has this address (`name`, as
    /// Envoy prints it, with the socket type and network namespace when not
    /// the defaults).
    OwnAddress,
}

/// A name one resource refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The type of the resource referred to (`Route` is a RouteConfiguration).
    pub target: ResourceType,
    pub name: String,
    /// Where the name is, from `spec.config`.
    pub path: String,
    /// What refers, for messages: "route to cluster", "RDS route configuration", …
    pub what: &'static str,
    /// Envoy rejects the referring resource when the name is missing: a
    /// cluster named by a route configuration that validates its clusters
    /// (`validate_clusters`, true by default for an inline route
    /// configuration, false over RDS), a config source's cluster, an address
    /// another listener has.
    pub envoy_rejects: bool,
    pub need: Need,
}

/// Whether resources of type `ty` can refer to others (the rest need not be
/// decoded to find out).
pub fn may_refer(ty: ResourceType) -> bool {
    matches!(
        ty,
        ResourceType::Route
            | ResourceType::VirtualHost
            | ResourceType::Listener
            | ResourceType::Cluster
            | ResourceType::ScopedRoute
    )
}

/// The references of a converted resource of type `ty`.
pub fn references(ty: ResourceType, message: &DynamicMessage) -> Vec<Reference> {
    let mut out = Vec::new();
    let root = CONFIG_PATH.to_string();
    match ty {
        ResourceType::Route => {
            // Over RDS, Envoy checks clusters only when asked to.
            let strict = validate_clusters(message) == Some(true);
            route_configuration(message, &root, strict, &mut out)
        }
        ResourceType::VirtualHost => virtual_host(message, &root, false, &mut out),
        ResourceType::Listener => listener(message, &root, &mut out),
        ResourceType::Cluster => cluster(message, &root, &mut out),
        ResourceType::ScopedRoute => {
            if let Some(name) = string(message, "route_configuration_name") {
                out.push(Reference {
                    target: ResourceType::Route,
                    name,
                    path: format!("{root}.route_configuration_name"),
                    what: "scoped route configuration",
                    envoy_rejects: false,
                    need: Need::Resource,
                });
            }
        }
        _ => {}
    }
    out
}

fn field<'a>(m: &'a DynamicMessage, name: &str) -> Option<std::borrow::Cow<'a, Value>> {
    if m.has_field_by_name(name) {
        m.get_field_by_name(name)
    } else {
        None
    }
}

fn message(m: &DynamicMessage, name: &str) -> Option<DynamicMessage> {
    field(m, name).and_then(|v| v.as_message().cloned())
}

fn string(m: &DynamicMessage, name: &str) -> Option<String> {
    field(m, name)
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|s| !s.is_empty())
}

fn list(m: &DynamicMessage, name: &str) -> Vec<DynamicMessage> {
    field(m, name)
        .and_then(|v| {
            v.as_list()
                .map(|l| l.iter().filter_map(|i| i.as_message().cloned()).collect())
        })
        .unwrap_or_default()
}

/// The payload of an `Any` when it is of type `full_name`.
fn unpack(any: &DynamicMessage, full_name: &str) -> Option<DynamicMessage> {
    if any::message_name(&any::type_url(any)) != Some(full_name) {
        return None;
    }
    any::unpack(any).ok()
}

/// `validate_clusters` of a RouteConfiguration, when set.
fn validate_clusters(rc: &DynamicMessage) -> Option<bool> {
    message(rc, "validate_clusters")
        .and_then(|w| w.get_field_by_name("value").and_then(|v| v.as_bool()))
}

/// `strict`: Envoy checks that every cluster named exists (`validate_clusters`).
fn route_configuration(m: &DynamicMessage, path: &str, strict: bool, out: &mut Vec<Reference>) {
    mirrors(m, path, strict, out);
    for (i, vh) in list(m, "virtual_hosts").iter().enumerate() {
        virtual_host(vh, &format!("{path}.virtual_hosts[{i}]"), strict, out);
    }
}

fn virtual_host(vh: &DynamicMessage, path: &str, strict: bool, out: &mut Vec<Reference>) {
    mirrors(vh, path, strict, out);
    for (j, route) in list(vh, "routes").iter().enumerate() {
        let Some(action) = message(route, "route") else {
            continue;
        };
        let path = format!("{path}.routes[{j}].route");
        route_action(&action, &path, strict, out);
    }
}

fn route_action(action: &DynamicMessage, path: &str, strict: bool, out: &mut Vec<Reference>) {
    clusters_of(
        action,
        path,
        ("route to cluster", "weighted route to cluster"),
        strict,
        out,
    );
    mirrors(action, path, strict, out);
}

/// `request_mirror_policies[].cluster` (of a route configuration, a virtual
/// host or a route action: Envoy checks all three, "unknown shadow cluster").
fn mirrors(m: &DynamicMessage, path: &str, strict: bool, out: &mut Vec<Reference>) {
    for (k, mirror) in list(m, "request_mirror_policies").iter().enumerate() {
        if let Some(name) = string(mirror, "cluster") {
            out.push(Reference {
                target: ResourceType::Cluster,
                name,
                path: format!("{path}.request_mirror_policies[{k}].cluster"),
                what: "request mirror to cluster",
                envoy_rejects: strict,
                need: Need::Resource,
            });
        }
    }
}

/// `cluster` and `weighted_clusters.clusters[].name` of a route action or a
/// TCP proxy, described as `what` (single, weighted).
fn clusters_of(
    m: &DynamicMessage,
    path: &str,
    what: (&'static str, &'static str),
    strict: bool,
    out: &mut Vec<Reference>,
) {
    if let Some(name) = string(m, "cluster") {
        out.push(Reference {
            target: ResourceType::Cluster,
            name,
            path: format!("{path}.cluster"),
            what: what.0,
            envoy_rejects: strict,
            need: Need::Resource,
        });
    }
    if let Some(weighted) = message(m, "weighted_clusters") {
        for (k, c) in list(&weighted, "clusters").iter().enumerate() {
            if let Some(name) = string(c, "name") {
                out.push(Reference {
                    target: ResourceType::Cluster,
                    name,
                    path: format!("{path}.weighted_clusters.clusters[{k}].name"),
                    what: what.1,
                    envoy_rejects: strict,
                    need: Need::Resource,
                });
            }
        }
    }
}

fn listener(m: &DynamicMessage, path: &str, out: &mut Vec<Reference>) {
    addresses(m, path, out);
    let mut chains: Vec<(String, DynamicMessage)> = list(m, "filter_chains")
        .into_iter()
        .enumerate()
        .map(|(i, c)| (format!("{path}.filter_chains[{i}]"), c))
        .collect();
    if let Some(c) = message(m, "default_filter_chain") {
        chains.push((format!("{path}.default_filter_chain"), c));
    }
    for (chain_path, chain) in chains {
        transport_socket(&chain, &chain_path, out);
        for (j, filter) in list(&chain, "filters").iter().enumerate() {
            let Some(any) = message(filter, "typed_config") else {
                continue;
            };
            let path = format!("{chain_path}.filters[{j}].typed_config");
            if let Some(hcm) = unpack(&any, HCM) {
                http_connection_manager(&hcm, &path, out);
            } else if let Some(tcp) = unpack(&any, TCP_PROXY) {
                tcp_proxy(&tcp, &path, out);
            }
        }
    }
}

/// The addresses of a listener, as [`Need::OwnAddress`] references. Envoy
/// refuses a listener with an address another listener has ("error adding
/// listener: '…' has duplicate address '…' as existing listener"): the same
/// IP and port (IPv6 compared as addresses, IPv4 and IPv6 never equal), of
/// the same socket type, in the same network namespace, or the same pipe
/// path — `bind_to_port` or `enable_reuse_port` make no difference (all
/// checked with Envoy 1.40). A listener's own addresses may repeat.
fn addresses(m: &DynamicMessage, path: &str, out: &mut Vec<Reference>) {
    let binds = message(m, "bind_to_port")
        .and_then(|w| w.get_field_by_name("value").and_then(|v| v.as_bool()))
        .unwrap_or(true);
    let mut all = Vec::new();
    if let Some(a) = message(m, "address") {
        all.push((format!("{path}.address"), a));
    }
    for (i, extra) in list(m, "additional_addresses").iter().enumerate() {
        if let Some(a) = message(extra, "address") {
            all.push((format!("{path}.additional_addresses[{i}].address"), a));
        }
    }
    let mut seen = BTreeSet::new();
    for (at, a) in all {
        let Some(name) = address_key(&a, binds) else {
            continue;
        };
        if seen.insert(name.clone()) {
            out.push(Reference {
                target: ResourceType::Listener,
                name,
                path: at,
                what: "listener address",
                envoy_rejects: true,
                need: Need::OwnAddress,
            });
        }
    }
}

/// An `envoy.config.core.v3.Address` as Envoy prints it (`127.0.0.1:80`,
/// `[::]:80`, a pipe's path), with ` (UDP)` and ` (network namespace …)`
/// when not TCP and the Envoy's own namespace. `None` where Envoy does not
/// compare it or Bootes cannot tell: port 0 on a listener that binds (each
/// gets a port of its own; Envoy skips those, though not when only the
/// other listener binds: missed, never refused), a custom resolver, a named
/// port, an internal address.
fn address_key(a: &DynamicMessage, binds: bool) -> Option<String> {
    if let Some(pipe) = message(a, "pipe") {
        return string(&pipe, "path");
    }
    let sa = message(a, "socket_address")?;
    if string(&sa, "resolver_name").is_some() || string(&sa, "named_port").is_some() {
        return None;
    }
    let ip: std::net::IpAddr = string(&sa, "address")?.parse().ok()?;
    let port = field(&sa, "port_value")
        .and_then(|v| v.as_u32())
        .unwrap_or(0);
    if port == 0 && binds {
        return None;
    }
    let mut key = match ip {
        std::net::IpAddr::V4(ip) => format!("{ip}:{port}"),
        std::net::IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    };
    // SocketAddress.Protocol: TCP = 0, UDP = 1.
    if field(&sa, "protocol").and_then(|v| v.as_enum_number()) == Some(1) {
        key.push_str(" (UDP)");
    }
    if let Some(ns) = string(&sa, "network_namespace_filepath") {
        key.push_str(&format!(" (network namespace {ns})"));
    }
    Some(key)
}

/// The SDS secrets a `transport_socket` (of a filter chain, a cluster or a
/// transport socket match) asks for over ADS: its TLS context's
/// certificates, validation context and session ticket keys. A secret that
/// never arrives keeps the listener or cluster warming (until the config
/// source's `initial_fetch_timeout`), then its connections fail: Envoy
/// does not reject it. Secrets from another config source (an SDS server of
/// its own, a SPIRE agent) are not Bootes' to provide.
fn transport_socket(holder: &DynamicMessage, path: &str, out: &mut Vec<Reference>) {
    let Some(any) = message(holder, "transport_socket").and_then(|ts| message(&ts, "typed_config"))
    else {
        return;
    };
    let Some(tls) = unpack(&any, UPSTREAM_TLS).or_else(|| unpack(&any, DOWNSTREAM_TLS)) else {
        return;
    };
    let path = format!("{path}.transport_socket.typed_config");
    if let Some(common) = message(&tls, "common_tls_context") {
        let path = format!("{path}.common_tls_context");
        for (i, s) in list(&common, "tls_certificate_sds_secret_configs")
            .iter()
            .enumerate()
        {
            let at = format!("{path}.tls_certificate_sds_secret_configs[{i}]");
            sds_secret(s, &at, "SDS TLS certificate", out);
        }
        if let Some(s) = message(&common, "validation_context_sds_secret_config") {
            let at = format!("{path}.validation_context_sds_secret_config");
            sds_secret(&s, &at, "SDS validation context", out);
        }
        if let Some(s) = message(&common, "combined_validation_context")
            .and_then(|c| message(&c, "validation_context_sds_secret_config"))
        {
            let at =
                format!("{path}.combined_validation_context.validation_context_sds_secret_config");
            sds_secret(&s, &at, "SDS validation context", out);
        }
    }
    if let Some(s) = message(&tls, "session_ticket_keys_sds_secret_config") {
        let at = format!("{path}.session_ticket_keys_sds_secret_config");
        sds_secret(&s, &at, "SDS session ticket keys", out);
    }
}

fn sds_secret(s: &DynamicMessage, path: &str, what: &'static str, out: &mut Vec<Reference>) {
    let over_ads = message(s, "sds_config").is_some_and(|cs| cs.has_field_by_name("ads"));
    if let (true, Some(name)) = (over_ads, string(s, "name")) {
        out.push(Reference {
            target: ResourceType::Secret,
            name,
            path: format!("{path}.name"),
            what,
            envoy_rejects: false,
            need: Need::Resource,
        });
    }
}

/// The clusters a ConfigSource's `api_config_source` names, which Envoy
/// requires to be static clusters of its bootstrap ("… must have a
/// statically defined non-EDS cluster"): REST `cluster_names` and gRPC
/// `envoy_grpc` clusters. Checked with Envoy 1.40 for RDS and EDS config
/// sources; Envoy's validation took a DELTA_GRPC source and an SDS one
/// naming no cluster, so those are left alone.
fn config_source_clusters(cs: &DynamicMessage, path: &str, out: &mut Vec<Reference>) {
    let Some(api) = message(cs, "api_config_source") else {
        return;
    };
    let path = format!("{path}.api_config_source");
    let mut names = Vec::new();
    // ApiConfigSource.ApiType: REST = 1, GRPC = 2.
    match field(&api, "api_type").and_then(|v| v.as_enum_number()) {
        Some(1) => {
            if let Some(list) =
                field(&api, "cluster_names").and_then(|v| v.as_list().map(<[_]>::to_vec))
            {
                for (i, n) in list.iter().enumerate() {
                    if let Some(n) = n.as_str().filter(|n| !n.is_empty()) {
                        names.push((n.to_string(), format!("{path}.cluster_names[{i}]")));
                    }
                }
            }
        }
        Some(2) => {
            for (i, g) in list(&api, "grpc_services").iter().enumerate() {
                if let Some(n) = message(g, "envoy_grpc").and_then(|e| string(&e, "cluster_name")) {
                    names.push((
                        n,
                        format!("{path}.grpc_services[{i}].envoy_grpc.cluster_name"),
                    ));
                }
            }
        }
        _ => {}
    }
    for (name, path) in names {
        out.push(Reference {
            target: ResourceType::Cluster,
            name,
            path,
            what: "config source cluster",
            envoy_rejects: true,
            need: Need::StaticCluster,
        });
    }
}

fn http_connection_manager(hcm: &DynamicMessage, path: &str, out: &mut Vec<Reference>) {
    if let Some(rds) = message(hcm, "rds") {
        if let Some(cs) = message(&rds, "config_source") {
            config_source_clusters(&cs, &format!("{path}.rds.config_source"), out);
        }
        let served = message(&rds, "config_source").is_none_or(|cs| served_by_bootes(&cs));
        if let (Some(name), true) = (string(&rds, "route_config_name"), served) {
            out.push(Reference {
                target: ResourceType::Route,
                name,
                path: format!("{path}.rds.route_config_name"),
                what: "RDS route configuration",
                envoy_rejects: false,
                need: Need::Resource,
            });
        }
    }
    if let Some(rc) = message(hcm, "route_config") {
        // Inline, Envoy checks clusters unless told not to: a missing one
        // makes it reject the whole listener ("route: unknown cluster").
        let strict = validate_clusters(&rc) != Some(false);
        route_configuration(&rc, &format!("{path}.route_config"), strict, out);
    }
}

fn tcp_proxy(tcp: &DynamicMessage, path: &str, out: &mut Vec<Reference>) {
    clusters_of(
        tcp,
        path,
        ("TCP proxy to cluster", "TCP proxy to cluster"),
        false,
        out,
    );
}

fn cluster(m: &DynamicMessage, path: &str, out: &mut Vec<Reference>) {
    transport_socket(m, path, out);
    for (i, matched) in list(m, "transport_socket_matches").iter().enumerate() {
        transport_socket(
            matched,
            &format!("{path}.transport_socket_matches[{i}]"),
            out,
        );
    }
    let is_eds = field(m, "type").and_then(|v| v.as_enum_number()) == Some(DISCOVERY_TYPE_EDS);
    if !is_eds {
        return;
    }
    let eds = message(m, "eds_cluster_config");
    if let Some(cs) = eds.as_ref().and_then(|e| message(e, "eds_config")) {
        let at = format!("{path}.eds_cluster_config.eds_config");
        config_source_clusters(&cs, &at, out);
    }
    let served = eds
        .as_ref()
        .and_then(|e| message(e, "eds_config"))
        .is_none_or(|cs| served_by_bootes(&cs));
    if !served {
        return;
    }
    let (name, at) = match eds.as_ref().and_then(|e| string(e, "service_name")) {
        Some(service) => (service, format!("{path}.eds_cluster_config.service_name")),
        None => match string(m, "name") {
            Some(name) => (name, format!("{path}.name")),
            None => return,
        },
    };
    out.push(Reference {
        target: ResourceType::Endpoint,
        name,
        path: at,
        what: "EDS cluster needs endpoints for",
        envoy_rejects: false,
        need: Need::Resource,
    });
}

/// Whether a ConfigSource is answered by the control plane (ADS or an API
/// config source) rather than by files on the Envoy's disk.
fn served_by_bootes(cs: &DynamicMessage) -> bool {
    !(cs.has_field_by_name("path") || cs.has_field_by_name("path_config_source"))
}

// ---------------------------------------------------------------------------

/// Clusters an Envoy's bootstrap defines, which no Bootes object provides:
/// `NAME` for every namespace, `NAMESPACE/NAME` for one
/// (`--bootstrap-clusters`). References to them are resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootstrapClusters {
    everywhere: BTreeSet<String>,
    in_namespace: BTreeSet<(String, String)>,
}

impl BootstrapClusters {
    /// Parses `NAME` and `NAMESPACE/NAME` entries (empty ones are skipped).
    pub fn parse<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Result<Self, String> {
        let mut out = Self::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            match entry.split_once('/') {
                None => {
                    out.everywhere.insert(entry.to_string());
                }
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                    out.in_namespace.insert((ns.to_string(), name.to_string()));
                }
                Some(_) => {
                    return Err(format!(
                        "bootstrap cluster {entry:?}: expected NAME or NAMESPACE/NAME"
                    ))
                }
            }
        }
        Ok(out)
    }

    /// The clusters declared for `namespace`, sorted.
    pub fn names_in(&self, namespace: &str) -> Vec<String> {
        let mut names: BTreeSet<&String> = self.everywhere.iter().collect();
        names.extend(
            self.in_namespace
                .iter()
                .filter(|(ns, _)| ns == namespace)
                .map(|(_, n)| n),
        );
        names.into_iter().cloned().collect()
    }

    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.everywhere.contains(name)
            || self
                .in_namespace
                .contains(&(namespace.to_string(), name.to_string()))
    }
}

/// What the nodes of one group receive, for resolving references: the
/// names of their resources and the addresses of their listeners.
#[derive(Debug, Default)]
pub struct Received<'a> {
    names: HashSet<(ResourceType, &'a str)>,
    /// Listener address → the listeners (by name) that have it.
    addresses: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> Received<'a> {
    /// Records a resource of type `ty` named `name`, with its references.
    pub fn add(&mut self, ty: ResourceType, name: &'a str, references: &'a [Reference]) {
        self.names.insert((ty, name));
        for r in references.iter().filter(|r| r.need == Need::OwnAddress) {
            let listeners = self.addresses.entry(r.name.as_str()).or_default();
            if !listeners.contains(&name) {
                listeners.push(name);
            }
        }
    }

    /// Whether `r`, a reference of the resource named `own`, is satisfied;
    /// `declared(cluster)`: a cluster of the Envoys' bootstrap. `Err` says
    /// what is in the way (the other listeners, for an address).
    pub fn resolves(
        &self,
        own: &str,
        r: &Reference,
        declared: impl Fn(&str) -> bool,
    ) -> Result<(), String> {
        let ok = match r.need {
            Need::Resource => {
                self.names.contains(&(r.target, r.name.as_str()))
                    || (r.target == ResourceType::Cluster && declared(&r.name))
            }
            Need::StaticCluster => declared(&r.name),
            Need::OwnAddress => {
                let others: Vec<String> = self
                    .addresses
                    .get(r.name.as_str())
                    .into_iter()
                    .flatten()
                    .filter(|n| **n != own)
                    .map(|n| format!("{n:?}"))
                    .collect();
                if !others.is_empty() {
                    return Err(others.join(", "));
                }
                true
            }
        };
        if ok {
            Ok(())
        } else {
            Err(String::new())
        }
    }
}

/// A reference nothing provides to some of the nodes an object reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// At the first place the name is referred to; the message names the
    /// nodes that miss it.
    pub problem: ConfigError,
    /// Envoy rejects the referring resource on those nodes.
    pub envoy_rejects: bool,
    /// The `ResolvedRefs` reason it gives: `UnresolvedReferences`, or when
    /// Envoy rejects, `UnknownCluster`, `ConfigSourceCluster` or
    /// `DuplicateAddress`.
    pub reason: &'static str,
}

/// One object's references that the groups it reaches do not satisfy,
/// gathered group by group (what each node actually receives).
#[derive(Clone, Debug, Default)]
pub struct Gaps {
    gaps: Vec<Gap>,
    /// Nodes the object's resource reaches.
    reached: usize,
}

#[derive(Clone, Debug)]
struct Gap {
    /// Where the name first occurs among the references: reports follow it.
    position: usize,
    reference: Reference,
    places: usize,
    /// How many nodes miss it, and the first of them by name (at most
    /// [`SHOWN`]): a group of 10,000 pods is not copied into every report.
    missing: usize,
    nodes: Vec<String>,
    /// What is in the way, from the first group (see [`Received::resolves`]).
    detail: String,
}

/// Nodes named in a report; the rest are counted.
const SHOWN: usize = 5;

impl Gaps {
    /// Records one group the object's resource reaches: its `nodes` (sorted),
    /// and whether the group satisfies each reference (`resolves`, see
    /// [`Received::resolves`]).
    pub fn add_group(
        &mut self,
        references: &[Reference],
        nodes: &[String],
        resolves: impl Fn(&Reference) -> Result<(), String>,
    ) {
        self.reached += nodes.len();
        // A name referred to in several places gets one report, at the first
        // place (or the first place where Envoy rejects it).
        let mut first: Vec<(&Reference, usize)> = Vec::new();
        let mut at: HashMap<(ResourceType, Need, &str), usize> = HashMap::new();
        for r in references {
            match at.get(&(r.target, r.need, r.name.as_str())) {
                Some(&i) => {
                    let (g, n) = &mut first[i];
                    *n += 1;
                    if r.envoy_rejects && !g.envoy_rejects {
                        *g = r;
                    }
                }
                None => {
                    at.insert((r.target, r.need, r.name.as_str()), first.len());
                    first.push((r, 1));
                }
            }
        }
        for (position, (r, places)) in first.into_iter().enumerate() {
            let Err(detail) = resolves(r) else {
                continue;
            };
            let gap = match self.gaps.iter_mut().find(|g| {
                g.reference.target == r.target
                    && g.reference.need == r.need
                    && g.reference.name == r.name
            }) {
                Some(g) => g,
                None => {
                    self.gaps.push(Gap {
                        position,
                        reference: r.clone(),
                        places,
                        missing: 0,
                        nodes: Vec::new(),
                        detail,
                    });
                    self.gaps.last_mut().expect("just pushed")
                }
            };
            gap.missing += nodes.len();
            gap.nodes.extend(nodes.iter().take(SHOWN).cloned());
            gap.nodes.sort();
            gap.nodes.truncate(SHOWN);
        }
    }

    /// The reports, for an object of kind `referrer` in `namespace`;
    /// `exists(type, name)`: whether any object of the namespace has that name.
    pub fn report(
        self,
        referrer: ResourceType,
        namespace: &str,
        exists: impl Fn(ResourceType, &str) -> bool,
    ) -> Vec<Unresolved> {
        let reached = self.reached;
        let mut gaps = self.gaps;
        gaps.sort_by_key(|g| g.position);
        let referrer = match referrer {
            ResourceType::Listener => "listener",
            ResourceType::Cluster => "cluster",
            _ => "route configuration",
        };
        gaps.into_iter()
            .map(|g| {
                let r = &g.reference;
                let kind = r.target.kind();
                let nodes = list_nodes(&g.nodes, g.missing, reached);
                let mut message = match r.need {
                    Need::Resource if exists(r.target, &r.name) => {
                        format!("{} {:?}: no {kind} object provides it to {nodes}", r.what, r.name)
                    }
                    Need::Resource => format!(
                        "{} {:?}: no {kind} object in namespace {namespace} provides it",
                        r.what, r.name
                    ),
                    Need::StaticCluster => format!(
                        "{} {:?}: not a cluster of the Envoys' bootstrap declared with --bootstrap-clusters{}",
                        r.what,
                        r.name,
                        if exists(ResourceType::Cluster, &r.name) {
                            " (a Cluster object provides it over CDS, which does not count)"
                        } else {
                            ""
                        }
                    ),
                    Need::OwnAddress => format!(
                        "{} {}: also the address of listener {} on {nodes}",
                        r.what, r.name, g.detail
                    ),
                };
                if r.target == ResourceType::Secret {
                    message.push_str(&format!(
                        " (Envoy keeps the {referrer} warming until the secret arrives, at most the config source's initial_fetch_timeout, then its TLS connections fail)"
                    ));
                }
                if g.places > 1 {
                    let more = g.places - 1;
                    let places = if more == 1 { "place" } else { "places" };
                    message.push_str(&format!(" (referred to in {more} more {places})"));
                }
                let reason = match (r.need, r.envoy_rejects) {
                    (_, false) => "UnresolvedReferences",
                    (Need::Resource, true) => {
                        message.push_str(&format!(
                            "; Envoy rejects the {referrer} there (\"route: unknown cluster\": the route configuration validates its clusters); a cluster of the Envoys' bootstrap is declared with --bootstrap-clusters"
                        ));
                        "UnknownCluster"
                    }
                    (Need::StaticCluster, true) => {
                        message.push_str(&format!(
                            "; Envoy rejects the {referrer} unless its bootstrap defines it as a static cluster (\"envoy.config.core.v3.ApiConfigSource must have a statically defined non-EDS cluster: '{}' does not exist, was added via api, or is an EDS cluster\")",
                            r.name
                        ));
                        "ConfigSourceCluster"
                    }
                    (Need::OwnAddress, true) => {
                        let shown = r.name.split(" (").next().unwrap_or(&r.name);
                        message.push_str(&format!(
                            "; Envoy rejects whichever of these listeners it receives second (\"error adding listener: '…' has duplicate address '{shown}' as existing listener\")"
                        ));
                        "DuplicateAddress"
                    }
                };
                Unresolved {
                    problem: ConfigError::new(r.path.clone(), message),
                    envoy_rejects: r.envoy_rejects,
                    reason,
                }
            })
            .collect()
    }
}

/// `shown` are the first of the `missing` nodes, of `of` reached.
fn list_nodes(shown: &[String], missing: usize, of: usize) -> String {
    let mut text = format!(
        "{missing} of the {of} nodes this object reaches: {}",
        shown.join(", ")
    );
    if missing > shown.len() {
        text.push_str(&format!(", … ({} more)", missing - shown.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootes_envoy::convert::convert;
    use serde_json::json;

    fn refs(ty: ResourceType, config: serde_json::Value) -> Vec<Reference> {
        let c = convert(ty, &config).unwrap_or_else(|e| panic!("{e:?}"));
        references(ty, &c.message())
    }

    /// The names referred to, without a listener's own addresses.
    fn names(r: &[Reference]) -> Vec<(ResourceType, &str, &str)> {
        r.iter()
            .filter(|r| r.need != Need::OwnAddress)
            .map(|r| (r.target, r.name.as_str(), r.path.as_str()))
            .collect()
    }

    #[test]
    fn routes_refer_to_clusters_including_weighted_and_mirrors() {
        let r = refs(
            ResourceType::Route,
            json!({"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
                {"match": {"prefix": "/a"}, "route": {"cluster": "a"}},
                {"match": {"prefix": "/b"}, "route": {"weighted_clusters": {"clusters": [
                    {"name": "b1", "weight": 1}, {"name": "b2", "weight": 2}]},
                    "request_mirror_policies": [{"cluster": "m"}]}},
                {"match": {"prefix": "/c"}, "direct_response": {"status": 200}}
            ]}]}),
        );
        use ResourceType::Cluster;
        assert_eq!(
            names(&r),
            vec![
                (Cluster, "a", "spec.config.virtual_hosts[0].routes[0].route.cluster"),
                (Cluster, "b1", "spec.config.virtual_hosts[0].routes[1].route.weighted_clusters.clusters[0].name"),
                (Cluster, "b2", "spec.config.virtual_hosts[0].routes[1].route.weighted_clusters.clusters[1].name"),
                (Cluster, "m", "spec.config.virtual_hosts[0].routes[1].route.request_mirror_policies[0].cluster"),
            ]
        );
    }

    fn listener_with(hcm: serde_json::Value) -> serde_json::Value {
        let mut typed = json!({
            "@type": format!("type.googleapis.com/{HCM}"),
            "stat_prefix": "s",
            "http_filters": [{"name": "router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
        });
        typed
            .as_object_mut()
            .unwrap()
            .extend(hcm.as_object().unwrap().clone());
        json!({"name": "l", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 80}},
               "filter_chains": [{"filters": [{"name": "hcm", "typed_config": typed}]}]})
    }

    #[test]
    fn listeners_refer_to_rds_configs_inside_typed_config_and_inline_routes_to_clusters() {
        let r = refs(
            ResourceType::Listener,
            listener_with(
                json!({"rds": {"route_config_name": "r1", "config_source": {"ads": {}}}}),
            ),
        );
        assert_eq!(
            names(&r),
            vec![(
                ResourceType::Route,
                "r1",
                "spec.config.filter_chains[0].filters[0].typed_config.rds.route_config_name"
            )]
        );
        // A file-based RDS source is not ours to provide.
        let r = refs(
            ResourceType::Listener,
            listener_with(
                json!({"rds": {"route_config_name": "r1", "config_source": {"path_config_source": {"path": "/r.yaml"}}}}),
            ),
        );
        assert!(names(&r).is_empty(), "{r:?}");
        let r = refs(
            ResourceType::Listener,
            listener_with(json!({"route_config": {"name": "inline", "virtual_hosts": [
                {"name": "v", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "c"}}]}]}})),
        );
        assert_eq!(
            names(&r),
            vec![(
                ResourceType::Cluster,
                "c",
                "spec.config.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster"
            )]
        );
    }

    #[test]
    fn tcp_proxy_refers_to_its_cluster() {
        let r = refs(
            ResourceType::Listener,
            json!({"name": "l", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 80}},
                   "filter_chains": [{"filters": [{"name": "tcp", "typed_config": {
                       "@type": format!("type.googleapis.com/{TCP_PROXY}"), "stat_prefix": "t", "cluster": "db"}}]}]}),
        );
        assert_eq!(names(&r)[0].1, "db");
    }

    #[test]
    fn eds_clusters_need_endpoints_by_service_name_or_name() {
        let r = refs(
            ResourceType::Cluster,
            json!({"name": "c", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}}}),
        );
        assert_eq!(
            names(&r),
            vec![(ResourceType::Endpoint, "c", "spec.config.name")]
        );
        let r = refs(
            ResourceType::Cluster,
            json!({"name": "c", "type": "EDS", "eds_cluster_config": {"service_name": "svc", "eds_config": {"ads": {}}}}),
        );
        assert_eq!(
            names(&r),
            vec![(
                ResourceType::Endpoint,
                "svc",
                "spec.config.eds_cluster_config.service_name"
            )]
        );
        let r = refs(
            ResourceType::Cluster,
            json!({"name": "c", "type": "STRICT_DNS"}),
        );
        assert!(r.is_empty());
    }

    fn route_to(cluster: &str, envoy_rejects: bool) -> Reference {
        Reference {
            target: ResourceType::Cluster,
            name: cluster.into(),
            path: "spec.config.x".into(),
            what: "route to cluster",
            envoy_rejects,
            need: Need::Resource,
        }
    }

    fn nodes(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn inline_route_configs_validate_their_clusters_unless_told_not_to_and_rds_ones_only_when_told()
    {
        let inline = |extra: serde_json::Value| {
            let mut rc = json!({"name": "inline", "virtual_hosts": [{"name": "v", "domains": ["*"],
                "request_mirror_policies": [{"cluster": "vm"}],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "c"}}]}]});
            rc.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            refs(
                ResourceType::Listener,
                listener_with(json!({"route_config": rc})),
            )
        };
        let strict = |r: &[Reference]| {
            r.iter()
                .filter(|r| r.need != Need::OwnAddress)
                .map(|r| (r.name.clone(), r.envoy_rejects))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            strict(&inline(json!({}))),
            [("vm".into(), true), ("c".into(), true)]
        );
        assert_eq!(
            strict(&inline(json!({"validate_clusters": true}))),
            [("vm".into(), true), ("c".into(), true)]
        );
        assert_eq!(
            strict(&inline(json!({"validate_clusters": false}))),
            [("vm".into(), false), ("c".into(), false)]
        );
        let rds = |extra: serde_json::Value| {
            let mut rc = json!({"name": "r", "request_mirror_policies": [{"cluster": "m"}],
                "virtual_hosts": [{"name": "v", "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "c"}}]}]});
            rc.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            refs(ResourceType::Route, rc)
        };
        assert_eq!(
            strict(&rds(json!({}))),
            [("m".into(), false), ("c".into(), false)]
        );
        assert_eq!(
            strict(&rds(json!({"validate_clusters": true}))),
            [("m".into(), true), ("c".into(), true)]
        );
    }

    #[test]
    fn bootstrap_clusters_are_global_or_per_namespace() {
        let b = BootstrapClusters::parse(["stats", "shop/auth", " "]).unwrap();
        assert!(b.contains("shop", "stats") && b.contains("other", "stats"));
        assert!(b.contains("shop", "auth") && !b.contains("other", "auth"));
        for bad in ["/x", "ns/", "a/b/c"] {
            assert!(BootstrapClusters::parse([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn gaps_name_the_nodes_that_miss_a_name_once_per_name() {
        let refs = vec![
            route_to("c", false),
            route_to("d", false),
            Reference {
                path: "spec.config.y".into(),
                ..route_to("c", true)
            },
        ];
        let mut gaps = Gaps::default();
        // Group 1 has "c" but not "d"; group 2 has neither.
        gaps.add_group(&refs, &nodes(&["p1.a", "p2.a"]), |r| {
            if r.name == "c" {
                Ok(())
            } else {
                Err(String::new())
            }
        });
        gaps.add_group(&refs, &nodes(&["p3.a"]), |_| Err(String::new()));
        let u = gaps.report(ResourceType::Listener, "a", |_, n| n == "c");
        assert_eq!(u.len(), 2, "{u:?}");
        assert_eq!(
            u[0].problem.path, "spec.config.y",
            "the strict place is reported"
        );
        assert!(u[0].envoy_rejects);
        assert!(
            u[0].problem.message.starts_with(
                "route to cluster \"c\": no Cluster object provides it to 1 of the 3 nodes this object reaches: p3.a (referred to in 1 more place); Envoy rejects the listener there"
            ),
            "{u:?}"
        );
        assert!(!u[1].envoy_rejects);
        assert_eq!(
            u[1].problem.message,
            "route to cluster \"d\": no Cluster object in namespace a provides it"
        );
        // Everything provided: nothing to report.
        let mut gaps = Gaps::default();
        gaps.add_group(&refs, &nodes(&["p1.a"]), |_| Ok(()));
        assert!(gaps
            .report(ResourceType::Route, "a", |_, _| true)
            .is_empty());
    }

    #[test]
    fn long_node_lists_are_cut() {
        let many: Vec<String> = (0..8).map(|i| format!("p{i}.a")).collect();
        let mut gaps = Gaps::default();
        gaps.add_group(&[route_to("c", false)], &many, |_| Err(String::new()));
        let u = gaps.report(ResourceType::Route, "a", |_, _| true);
        assert!(
            u[0].problem.message.ends_with(
                "8 of the 8 nodes this object reaches: p0.a, p1.a, p2.a, p3.a, p4.a, … (3 more)"
            ),
            "{u:?}"
        );
    }

    fn tcp_listener(
        name: &str,
        address: serde_json::Value,
        extra: serde_json::Value,
    ) -> Vec<Reference> {
        let mut l = json!({"name": name, "address": address,
            "filter_chains": [{"filters": [{"name": "tcp", "typed_config": {
                "@type": format!("type.googleapis.com/{TCP_PROXY}"), "stat_prefix": "t", "cluster": "db"}}]}]});
        l.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        refs(ResourceType::Listener, l)
    }

    fn addresses_of(r: &[Reference]) -> Vec<(&str, &str)> {
        r.iter()
            .filter(|r| r.need == Need::OwnAddress)
            .map(|r| (r.name.as_str(), r.path.as_str()))
            .collect()
    }

    fn sa(address: &str, port: u32) -> serde_json::Value {
        json!({"socket_address": {"address": address, "port_value": port}})
    }

    #[test]
    fn listener_addresses_are_compared_as_envoy_compares_them() {
        let r = tcp_listener(
            "l",
            sa("0:0::0", 80),
            json!({"additional_addresses": [{"address": sa("127.0.0.1", 81)}, {"address": sa("::", 80)}]}),
        );
        assert_eq!(
            addresses_of(&r),
            vec![
                ("[::]:80", "spec.config.address"),
                (
                    "127.0.0.1:81",
                    "spec.config.additional_addresses[0].address"
                ),
            ],
            "IPv6 in Envoy's form, a listener's own repeats once"
        );
        let udp = refs(
            ResourceType::Listener,
            json!({"name": "u", "udp_listener_config": {}, "address": {"socket_address": {
                "address": "127.0.0.1", "port_value": 80, "protocol": "UDP"}}}),
        );
        assert_eq!(addresses_of(&udp)[0].0, "127.0.0.1:80 (UDP)");
        let ns = json!({"socket_address": {"address": "127.0.0.1", "port_value": 80, "network_namespace_filepath": "/run/netns/x"}});
        assert_eq!(
            addresses_of(&tcp_listener("l", ns, json!({})))[0].0,
            "127.0.0.1:80 (network namespace /run/netns/x)"
        );
        assert_eq!(
            addresses_of(&tcp_listener(
                "l",
                json!({"pipe": {"path": "/tmp/s"}}),
                json!({})
            ))[0]
                .0,
            "/tmp/s"
        );
        // Port 0 gets a port of its own when the listener binds.
        assert!(addresses_of(&tcp_listener("l", sa("127.0.0.1", 0), json!({}))).is_empty());
        assert_eq!(
            addresses_of(&tcp_listener(
                "l",
                sa("127.0.0.1", 0),
                json!({"bind_to_port": false})
            ))
            .len(),
            1
        );
        assert!(r
            .iter()
            .filter(|r| r.need == Need::OwnAddress)
            .all(|r| r.envoy_rejects));
    }

    #[test]
    fn two_listeners_on_one_address_are_reported_on_both_naming_the_other() {
        let a = tcp_listener("a", sa("127.0.0.1", 80), json!({}));
        let b = tcp_listener(
            "b",
            sa("127.0.0.1", 81),
            json!({"additional_addresses": [{"address": sa("127.0.0.1", 80)}]}),
        );
        let c = tcp_listener("c", sa("127.0.0.2", 80), json!({}));
        let mut received = Received::default();
        received.add(ResourceType::Listener, "a", &a);
        received.add(ResourceType::Listener, "b", &b);
        received.add(ResourceType::Listener, "c", &c);
        let report = |own: &str, refs: &[Reference]| {
            let mut gaps = Gaps::default();
            gaps.add_group(refs, &nodes(&["p1.a"]), |r| {
                received.resolves(own, r, |_| true)
            });
            gaps.report(ResourceType::Listener, "a", |_, _| true)
        };
        let on_a = report("a", &a);
        assert_eq!(on_a.len(), 1, "{on_a:?}");
        assert_eq!(on_a[0].reason, "DuplicateAddress");
        assert!(on_a[0].envoy_rejects);
        assert_eq!(on_a[0].problem.path, "spec.config.address");
        assert_eq!(
            on_a[0].problem.message,
            "listener address 127.0.0.1:80: also the address of listener \"b\" on 1 of the 1 nodes this object reaches: p1.a; Envoy rejects whichever of these listeners it receives second (\"error adding listener: '…' has duplicate address '127.0.0.1:80' as existing listener\")"
        );
        let on_b = report("b", &b);
        assert_eq!(
            on_b[0].problem.path,
            "spec.config.additional_addresses[0].address"
        );
        assert!(report("c", &c).is_empty(), "another IP, same port");
    }

    fn tls_cluster(sds_config: serde_json::Value) -> Vec<Reference> {
        refs(
            ResourceType::Cluster,
            json!({"name": "c", "type": "STRICT_DNS", "transport_socket": {"name": "tls", "typed_config": {
                "@type": format!("type.googleapis.com/{UPSTREAM_TLS}"),
                "common_tls_context": {
                    "tls_certificate_sds_secret_configs": [{"name": "cert", "sds_config": sds_config}],
                    "combined_validation_context": {"default_validation_context": {},
                        "validation_context_sds_secret_config": {"name": "ca", "sds_config": sds_config}}}}},
                "transport_socket_matches": [{"name": "m", "transport_socket": {"name": "tls", "typed_config": {
                    "@type": format!("type.googleapis.com/{UPSTREAM_TLS}"),
                    "common_tls_context": {"validation_context_sds_secret_config": {"name": "ca2", "sds_config": sds_config}}}}}]}),
        )
    }

    #[test]
    fn sds_secrets_over_ads_are_references_to_secrets() {
        let r = tls_cluster(json!({"ads": {}}));
        assert_eq!(
            names(&r),
            vec![
                (ResourceType::Secret, "cert", "spec.config.transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name"),
                (ResourceType::Secret, "ca", "spec.config.transport_socket.typed_config.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name"),
                (ResourceType::Secret, "ca2", "spec.config.transport_socket_matches[0].transport_socket.typed_config.common_tls_context.validation_context_sds_secret_config.name"),
            ]
        );
        assert!(r
            .iter()
            .all(|r| !r.envoy_rejects && r.need == Need::Resource));
        // Another SDS server's secrets are not Bootes' to provide.
        let other = json!({"api_config_source": {"api_type": "GRPC", "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "spire"}}]}});
        assert!(tls_cluster(other).is_empty());
        let mut gaps = Gaps::default();
        gaps.add_group(&r[..1], &nodes(&["p1.a"]), |_| Err(String::new()));
        let u = gaps.report(ResourceType::Cluster, "a", |_, _| true);
        assert_eq!(u[0].reason, "UnresolvedReferences");
        assert!(
            u[0].problem.message.starts_with(
                "SDS TLS certificate \"cert\": no Secret object provides it to 1 of the 1 nodes"
            ),
            "{u:?}"
        );
        assert!(
            u[0].problem
                .message
                .contains("Envoy keeps the cluster warming"),
            "{u:?}"
        );
    }

    #[test]
    fn config_source_clusters_must_be_declared_bootstrap_clusters() {
        let grpc = |api_type: &str| {
            json!({"route_config_name": "r", "config_source": {"api_config_source": {
            "api_type": api_type, "transport_api_version": "V3", "cluster_names": ["rest"],
            "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]}}})
        };
        let static_ones = |r: &[Reference]| {
            r.iter()
                .filter(|r| r.need == Need::StaticCluster)
                .map(|r| (r.name.clone(), r.path.clone()))
                .collect::<Vec<_>>()
        };
        let path = "spec.config.filter_chains[0].filters[0].typed_config.rds.config_source.api_config_source";
        let r = refs(
            ResourceType::Listener,
            listener_with(json!({"rds": grpc("GRPC")})),
        );
        assert_eq!(
            static_ones(&r),
            [(
                "xds".to_string(),
                format!("{path}.grpc_services[0].envoy_grpc.cluster_name")
            )]
        );
        let r = refs(
            ResourceType::Listener,
            listener_with(json!({"rds": grpc("REST")})),
        );
        assert_eq!(
            static_ones(&r),
            [("rest".to_string(), format!("{path}.cluster_names[0]"))]
        );
        // Envoy's validation takes a delta gRPC source naming no cluster.
        let r = refs(
            ResourceType::Listener,
            listener_with(json!({"rds": grpc("DELTA_GRPC")})),
        );
        assert!(static_ones(&r).is_empty());
        let r = refs(
            ResourceType::Cluster,
            json!({"name": "c", "type": "EDS", "eds_cluster_config": {"eds_config": {"api_config_source": {
                "api_type": "GRPC", "transport_api_version": "V3", "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]}}}}),
        );
        assert_eq!(static_ones(&r)[0].0, "xds");
        // Only a declaration resolves it, not a Cluster object.
        let mut received = Received::default();
        received.add(ResourceType::Cluster, "xds", &[]);
        let it = r.iter().find(|r| r.need == Need::StaticCluster).unwrap();
        assert!(received.resolves("c", it, |_| false).is_err());
        assert!(received.resolves("c", it, |n| n == "xds").is_ok());
        let mut gaps = Gaps::default();
        gaps.add_group(std::slice::from_ref(it), &nodes(&["p1.a"]), |r| {
            received.resolves("c", r, |_| false)
        });
        let u = gaps.report(ResourceType::Cluster, "a", |_, _| true);
        assert_eq!(u[0].reason, "ConfigSourceCluster");
        assert_eq!(
            u[0].problem.message,
            "config source cluster \"xds\": not a cluster of the Envoys' bootstrap declared with --bootstrap-clusters (a Cluster object provides it over CDS, which does not count); Envoy rejects the cluster unless its bootstrap defines it as a static cluster (\"envoy.config.core.v3.ApiConfigSource must have a statically defined non-EDS cluster: 'xds' does not exist, was added via api, or is an EDS cluster\")"
        );
    }
}
