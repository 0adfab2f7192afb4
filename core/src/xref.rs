//! Cross-references between resources, and the ones nothing provides.
//!
//! Envoy tolerates a route to a cluster it does not have, a listener naming
//! an RDS route configuration that never arrives, or an EDS cluster without
//! endpoints — requests just fail. DESIGN.md §3 makes these warnings, not
//! errors. This module is pure: [`references`] reads the names a converted
//! resource refers to (with their paths), and [`unresolved`] finds the ones
//! that no object of the same namespace provides to the Envoys that receive
//! the referring object.

use std::collections::{BTreeMap, HashMap};

use bootes_proto::ResourceType;
use prost_reflect::{DynamicMessage, Value};

use crate::model::{ObjectKey, Pod};
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
}

/// The references of a converted resource of type `ty`.
pub fn references(ty: ResourceType, message: &DynamicMessage) -> Vec<Reference> {
    let mut out = Vec::new();
    let root = CONFIG_PATH.to_string();
    match ty {
        ResourceType::Route => route_configuration(message, &root, &mut out),
        ResourceType::VirtualHost => virtual_host(message, &root, &mut out),
        ResourceType::Listener => listener(message, &root, &mut out),
        ResourceType::Cluster => cluster(message, &root, &mut out),
        ResourceType::ScopedRoute => {
            if let Some(name) = string(message, "route_configuration_name") {
                out.push(Reference {
                    target: ResourceType::Route,
                    name,
                    path: format!("{root}.route_configuration_name"),
                    what: "scoped route configuration",
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

fn route_configuration(m: &DynamicMessage, path: &str, out: &mut Vec<Reference>) {
    for (i, vh) in list(m, "virtual_hosts").iter().enumerate() {
        virtual_host(vh, &format!("{path}.virtual_hosts[{i}]"), out);
    }
}

fn virtual_host(vh: &DynamicMessage, path: &str, out: &mut Vec<Reference>) {
    for (j, route) in list(vh, "routes").iter().enumerate() {
        let Some(action) = message(route, "route") else {
            continue;
        };
        let path = format!("{path}.routes[{j}].route");
        route_action(&action, &path, out);
    }
}

fn route_action(action: &DynamicMessage, path: &str, out: &mut Vec<Reference>) {
    clusters_of(
        action,
        path,
        ("route to cluster", "weighted route to cluster"),
        out,
    );
    for (k, mirror) in list(action, "request_mirror_policies").iter().enumerate() {
        if let Some(name) = string(mirror, "cluster") {
            out.push(Reference {
                target: ResourceType::Cluster,
                name,
                path: format!("{path}.request_mirror_policies[{k}].cluster"),
                what: "request mirror to cluster",
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
    out: &mut Vec<Reference>,
) {
    if let Some(name) = string(m, "cluster") {
        out.push(Reference {
            target: ResourceType::Cluster,
            name,
            path: format!("{path}.cluster"),
            what: what.0,
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
            });
        }
    }
    if let Some(rc) = message(hcm, "route_config") {
        route_configuration(&rc, &format!("{path}.route_config"), out);
    }
}

fn tcp_proxy(tcp: &DynamicMessage, path: &str, out: &mut Vec<Reference>) {
    clusters_of(
        tcp,
        path,
        ("TCP proxy to cluster", "TCP proxy to cluster"),
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
    });
}

/// Whether a ConfigSource is answered by the control plane (ADS or an API
/// config source) rather than by files on the Envoy's disk.
fn served_by_bootes(cs: &DynamicMessage) -> bool {
    !(cs.has_field_by_name("path") || cs.has_field_by_name("path_config_source"))
}

// ---------------------------------------------------------------------------

/// One object as the cross-reference check sees it.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub key: &'a ObjectKey,
    pub selector: Option<&'a BTreeMap<String, String>>,
    /// The xDS name this object provides (also for an invalid object whose
    /// name could be read, so that one error does not cause more warnings).
    pub provides: Option<&'a str>,
    pub references: &'a [Reference],
}

/// A reference nothing provides, reported on the referring object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    pub key: ObjectKey,
    pub problem: ConfigError,
}

fn selects(selector: Option<&BTreeMap<String, String>>, labels: &BTreeMap<String, String>) -> bool {
    selector.is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// References of `subjects` that no object provides, per namespace and
/// selector.
///
/// Where `pods` has pods in the referring object's namespace, a reference is
/// unresolved for each of those pods that the object selects and that no
/// object providing the name selects. Where it has none (offline
/// validation of manifests without pods), the pods the object selects are
/// represented by its own selector: a provider covers them when its selector
/// asks for no label the referring object's selector does not also require.
pub fn unresolved(subjects: &[Subject<'_>], pods: &[Pod]) -> Vec<Unresolved> {
    let mut providers: HashMap<(&str, ResourceType, &str), Vec<&Subject<'_>>> = HashMap::new();
    for s in subjects {
        if let Some(name) = s.provides {
            providers
                .entry((s.key.namespace.as_str(), s.key.kind, name))
                .or_default()
                .push(s);
        }
    }
    let mut pods_by_ns: HashMap<&str, Vec<&Pod>> = HashMap::new();
    for p in pods {
        pods_by_ns.entry(p.namespace.as_str()).or_default().push(p);
    }
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    for s in subjects {
        if s.references.is_empty() {
            continue;
        }
        let ns = s.key.namespace.as_str();
        let ns_pods = pods_by_ns.get(ns).map(Vec::as_slice).unwrap_or_default();
        let nodes: Vec<&Pod> = ns_pods
            .iter()
            .copied()
            .filter(|p| selects(s.selector, &p.labels))
            .collect();
        if !ns_pods.is_empty() && nodes.is_empty() {
            continue; // reaches no Envoy: nothing can be missing
        }
        // A name referred to in several places gets one warning, at the
        // first place.
        let mut groups: Vec<(&Reference, usize)> = Vec::new();
        for r in s.references {
            match groups
                .iter_mut()
                .find(|(g, _)| g.target == r.target && g.name == r.name)
            {
                Some((_, n)) => *n += 1,
                None => groups.push((r, 1)),
            }
        }
        for (r, count) in groups {
            let candidates = providers
                .get(&(ns, r.target, r.name.as_str()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let kind = r.target.kind();
            let message = if candidates.is_empty() {
                Some(format!(
                    "{} {:?}: no {kind} object in namespace {ns} provides it",
                    r.what, r.name
                ))
            } else if ns_pods.is_empty() {
                let own = s.selector.unwrap_or(&empty);
                let covered = candidates.iter().any(|c| selects(c.selector, own));
                (!covered).then(|| {
                    format!(
                        "{} {:?}: the {kind} objects that provide it ({}) do not select every pod this object selects ({})",
                        r.what,
                        r.name,
                        candidates
                            .iter()
                            .map(|c| c.key.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        describe_selector(s.selector)
                    )
                })
            } else {
                let missing: Vec<String> = nodes
                    .iter()
                    .filter(|p| !candidates.iter().any(|c| selects(c.selector, &p.labels)))
                    .map(|p| p.node_id())
                    .collect();
                (!missing.is_empty()).then(|| {
                    format!(
                        "{} {:?}: no {kind} object provides it to {}",
                        r.what,
                        r.name,
                        list_nodes(&missing, nodes.len())
                    )
                })
            };
            if let Some(mut message) = message {
                if count > 1 {
                    let more = count - 1;
                    let places = if more == 1 { "place" } else { "places" };
                    message.push_str(&format!(" (referred to in {more} more {places})"));
                }
                out.push(Unresolved {
                    key: s.key.clone(),
                    problem: ConfigError::new(r.path.clone(), message),
                });
            }
        }
    }
    out
}

fn describe_selector(selector: Option<&BTreeMap<String, String>>) -> String {
    match selector {
        Some(sel) if !sel.is_empty() => {
            let pairs: Vec<String> = sel.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("workloadSelector {}", pairs.join(","))
        }
        _ => "every pod of the namespace".to_string(),
    }
}

fn list_nodes(missing: &[String], of: usize) -> String {
    const SHOWN: usize = 5;
    let mut text = format!(
        "{} of the {of} nodes this object reaches: {}",
        missing.len(),
        missing
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    if missing.len() > SHOWN {
        text.push_str(&format!(", … ({} more)", missing.len() - SHOWN));
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

    fn key(kind: ResourceType, ns: &str, name: &str) -> ObjectKey {
        ObjectKey {
            kind,
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn route_to(cluster: &str) -> Vec<Reference> {
        vec![Reference {
            target: ResourceType::Cluster,
            name: cluster.into(),
            path: "spec.config.x".into(),
            what: "route to cluster",
        }]
    }

    #[test]
    fn a_name_referred_to_in_several_places_is_reported_once() {
        let rk = key(ResourceType::Route, "a", "r");
        let mut refs = route_to("c");
        refs.extend(route_to("d"));
        refs.push(Reference {
            path: "spec.config.y".into(),
            ..route_to("c").remove(0)
        });
        refs.push(Reference {
            path: "spec.config.z".into(),
            ..route_to("c").remove(0)
        });
        let subjects = [Subject {
            key: &rk,
            selector: None,
            provides: Some("r"),
            references: &refs,
        }];
        let u = unresolved(&subjects, &[]);
        assert_eq!(u.len(), 2, "{u:?}");
        assert_eq!(u[0].problem.path, "spec.config.x");
        assert!(u[0].problem.message.contains("\"c\""), "{u:?}");
        assert!(
            u[0].problem
                .message
                .ends_with("(referred to in 2 more places)"),
            "{u:?}"
        );
        assert!(u[1].problem.message.contains("\"d\""), "{u:?}");
        assert!(!u[1].problem.message.contains("referred to in"), "{u:?}");
    }

    #[test]
    fn providers_count_only_in_the_same_namespace() {
        let rk = key(ResourceType::Route, "a", "r");
        let ck = key(ResourceType::Cluster, "b", "c");
        let refs = route_to("c");
        let subjects = [
            Subject {
                key: &rk,
                selector: None,
                provides: Some("r"),
                references: &refs,
            },
            Subject {
                key: &ck,
                selector: None,
                provides: Some("c"),
                references: &[],
            },
        ];
        let u = unresolved(&subjects, &[]);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].key, rk);
        assert_eq!(u[0].problem.path, "spec.config.x");
        assert!(
            u[0].problem
                .message
                .contains("no Cluster object in namespace a"),
            "{u:?}"
        );

        let ck = key(ResourceType::Cluster, "a", "c");
        let subjects = [
            Subject {
                key: &rk,
                selector: None,
                provides: Some("r"),
                references: &refs,
            },
            Subject {
                key: &ck,
                selector: None,
                provides: Some("c"),
                references: &[],
            },
        ];
        assert!(unresolved(&subjects, &[]).is_empty());
    }

    #[test]
    fn without_pods_a_provider_must_select_at_least_what_the_referrer_selects() {
        let rk = key(ResourceType::Route, "a", "r");
        let ck = key(ResourceType::Cluster, "a", "c");
        let refs = route_to("c");
        let narrow = labels(&[("app", "x"), ("track", "canary")]);
        let app = labels(&[("app", "x")]);
        let other = labels(&[("app", "y")]);
        let check = |route_sel: Option<&BTreeMap<String, String>>,
                     cluster_sel: Option<&BTreeMap<String, String>>| {
            let subjects = [
                Subject {
                    key: &rk,
                    selector: route_sel,
                    provides: Some("r"),
                    references: &refs,
                },
                Subject {
                    key: &ck,
                    selector: cluster_sel,
                    provides: Some("c"),
                    references: &[],
                },
            ];
            unresolved(&subjects, &[])
        };
        assert!(check(Some(&narrow), Some(&app)).is_empty());
        assert!(check(Some(&narrow), None).is_empty());
        assert!(check(Some(&app), Some(&app)).is_empty());
        let u = check(Some(&app), Some(&narrow));
        assert_eq!(u.len(), 1);
        assert!(
            u[0].problem.message.contains("do not select every pod"),
            "{u:?}"
        );
        assert!(
            u[0].problem.message.contains("workloadSelector app=x"),
            "{u:?}"
        );
        assert_eq!(check(None, Some(&app)).len(), 1);
        assert_eq!(check(Some(&app), Some(&other)).len(), 1);
    }

    #[test]
    fn with_pods_each_reached_node_needs_a_provider() {
        let rk = key(ResourceType::Route, "a", "r");
        let ck = key(ResourceType::Cluster, "a", "c");
        let refs = route_to("c");
        let pod = |name: &str, l: &[(&str, &str)]| Pod {
            namespace: "a".into(),
            name: name.into(),
            uid: name.into(),
            labels: labels(l),
            service_account: "default".into(),
        };
        let pods = [
            pod("p1", &[("app", "x"), ("track", "canary")]),
            pod("p2", &[("app", "x")]),
            pod("p3", &[("app", "y")]),
        ];
        let app = labels(&[("app", "x")]);
        let canary = labels(&[("track", "canary")]);
        let subjects = [
            Subject {
                key: &rk,
                selector: Some(&app),
                provides: Some("r"),
                references: &refs,
            },
            Subject {
                key: &ck,
                selector: Some(&canary),
                provides: Some("c"),
                references: &[],
            },
        ];
        let u = unresolved(&subjects, &pods);
        assert_eq!(u.len(), 1, "{u:?}");
        assert!(u[0].problem.message.contains("1 of the 2 nodes"), "{u:?}");
        assert!(u[0].problem.message.contains("p2.a"), "{u:?}");
        assert!(!u[0].problem.message.contains("p1.a"), "{u:?}");

        // An object that reaches no pod of a namespace with pods warns of nothing.
        let none = labels(&[("app", "z")]);
        let subjects = [Subject {
            key: &rk,
            selector: Some(&none),
            provides: Some("r"),
            references: &refs,
        }];
        assert!(unresolved(&subjects, &pods).is_empty());
    }
}
