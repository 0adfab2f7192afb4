//! Cross-references between resources, and the ones nothing provides.
//!
//! Envoy tolerates a route to a cluster it does not have, a listener naming
//! an RDS route configuration that never arrives, or an EDS cluster without
//! endpoints — requests just fail. docs/DESIGN.md §3 makes these warnings, not
//! errors. This module is pure: [`references`] reads the names a converted
//! resource refers to (with their paths), and [`Gaps`] finds the ones
//! that no object of the same namespace provides to the Envoys that receive
//! the referring object.

use std::collections::{BTreeSet, HashMap};

use bootes_proto::ResourceType;
use prost_reflect::{DynamicMessage, Value};

use bootes_envoy::any;
use bootes_envoy::convert::{ConfigError, CONFIG_PATH};

const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP_PROXY: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

/// EDS in `envoy.config.cluster.v3.Cluster.DiscoveryType`.
const DISCOVERY_TYPE_EDS: i32 = 3;

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
    /// configuration, false over RDS).
    pub envoy_rejects: bool,
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
                });
            }
        }
    }
}

fn listener(m: &DynamicMessage, path: &str, out: &mut Vec<Reference>) {
    let mut chains: Vec<(String, DynamicMessage)> = list(m, "filter_chains")
        .into_iter()
        .enumerate()
        .map(|(i, c)| (format!("{path}.filter_chains[{i}]"), c))
        .collect();
    if let Some(c) = message(m, "default_filter_chain") {
        chains.push((format!("{path}.default_filter_chain"), c));
    }
    for (chain_path, chain) in chains {
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

fn http_connection_manager(hcm: &DynamicMessage, path: &str, out: &mut Vec<Reference>) {
    if let Some(rds) = message(hcm, "rds") {
        let served = message(&rds, "config_source").is_none_or(|cs| served_by_bootes(&cs));
        if let (Some(name), true) = (string(&rds, "route_config_name"), served) {
            out.push(Reference {
                target: ResourceType::Route,
                name,
                path: format!("{path}.rds.route_config_name"),
                what: "RDS route configuration",
                envoy_rejects: false,
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
    let is_eds = field(m, "type").and_then(|v| v.as_enum_number()) == Some(DISCOVERY_TYPE_EDS);
    if !is_eds {
        return;
    }
    let eds = message(m, "eds_cluster_config");
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

/// A reference nothing provides to some of the nodes an object reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// At the first place the name is referred to; the message names the
    /// nodes that miss it.
    pub problem: ConfigError,
    /// Envoy rejects the referring resource on those nodes.
    pub envoy_rejects: bool,
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
}

/// Nodes named in a report; the rest are counted.
const SHOWN: usize = 5;

impl Gaps {
    /// Records one group the object's resource reaches: its `nodes` (sorted),
    /// and whether the group provides each name (`provided(type, name)`).
    pub fn add_group(
        &mut self,
        references: &[Reference],
        nodes: &[String],
        provided: impl Fn(ResourceType, &str) -> bool,
    ) {
        self.reached += nodes.len();
        // A name referred to in several places gets one report, at the first
        // place (or the first place where Envoy rejects it).
        let mut first: Vec<(&Reference, usize)> = Vec::new();
        let mut at: HashMap<(ResourceType, &str), usize> = HashMap::new();
        for r in references {
            match at.get(&(r.target, r.name.as_str())) {
                Some(&i) => {
                    let (g, n) = &mut first[i];
                    *n += 1;
                    if r.envoy_rejects && !g.envoy_rejects {
                        *g = r;
                    }
                }
                None => {
                    at.insert((r.target, r.name.as_str()), first.len());
                    first.push((r, 1));
                }
            }
        }
        for (position, (r, places)) in first.into_iter().enumerate() {
            if provided(r.target, &r.name) {
                continue;
            }
            let gap = match self
                .gaps
                .iter_mut()
                .find(|g| g.reference.target == r.target && g.reference.name == r.name)
            {
                Some(g) => g,
                None => {
                    self.gaps.push(Gap {
                        position,
                        reference: r.clone(),
                        places,
                        missing: 0,
                        nodes: Vec::new(),
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
        gaps.into_iter()
            .map(|g| {
                let r = &g.reference;
                let kind = r.target.kind();
                let mut message = if exists(r.target, &r.name) {
                    format!(
                        "{} {:?}: no {kind} object provides it to {}",
                        r.what,
                        r.name,
                        list_nodes(&g.nodes, g.missing, reached)
                    )
                } else {
                    format!(
                        "{} {:?}: no {kind} object in namespace {namespace} provides it",
                        r.what, r.name
                    )
                };
                if g.places > 1 {
                    let more = g.places - 1;
                    let places = if more == 1 { "place" } else { "places" };
                    message.push_str(&format!(" (referred to in {more} more {places})"));
                }
                if r.envoy_rejects {
                    let what = match referrer {
                        ResourceType::Listener => "listener",
                        _ => "route configuration",
                    };
                    message.push_str(&format!(
                        "; Envoy rejects the {what} there (\"route: unknown cluster\": the route configuration validates its clusters); a cluster of the Envoys' bootstrap is declared with --bootstrap-clusters"
                    ));
                }
                Unresolved {
                    problem: ConfigError::new(r.path.clone(), message),
                    envoy_rejects: r.envoy_rejects,
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

    fn names(r: &[Reference]) -> Vec<(ResourceType, &str, &str)> {
        r.iter()
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
        assert!(r.is_empty(), "{r:?}");
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
        gaps.add_group(&refs, &nodes(&["p1.a", "p2.a"]), |_, n| n == "c");
        gaps.add_group(&refs, &nodes(&["p3.a"]), |_, _| false);
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
        gaps.add_group(&refs, &nodes(&["p1.a"]), |_, _| true);
        assert!(gaps
            .report(ResourceType::Route, "a", |_, _| true)
            .is_empty());
    }

    #[test]
    fn long_node_lists_are_cut() {
        let many: Vec<String> = (0..8).map(|i| format!("p{i}.a")).collect();
        let mut gaps = Gaps::default();
        gaps.add_group(&[route_to("c", false)], &many, |_, _| false);
        let u = gaps.report(ResourceType::Route, "a", |_, _| true);
        assert!(
            u[0].problem.message.ends_with(
                "8 of the 8 nodes this object reaches: p0.a, p1.a, p2.a, p3.a, p4.a, … (3 more)"
            ),
            "{u:?}"
        );
    }
}
