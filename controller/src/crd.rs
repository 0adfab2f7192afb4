//! The `bootes.io/v1` custom resources as Rust types. The CRDs under
//! `manifests/crds/` are generated from these (`bootes-controller crds`),
//! never edited by hand.
//!
//! Every kind has the shape of the original Bootes project (docs/DESIGN.md §2):
//! an optional `spec.workloadSelector.labels` and a free-form `spec.config`
//! holding one Envoy resource in proto3 JSON. The status is the same for all.

use std::collections::BTreeMap;

use bootes_proto::ResourceType;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::ApiResource;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every Bootes kind.
pub const GROUP: &str = "bootes.io";

/// Which pods of the object's namespace receive it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct WorkloadSelector {
    /// Pods whose labels contain every one of these pairs. Empty or absent
    /// selects every pod of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `spec.service` of an Endpoint: the Kubernetes Service whose
/// EndpointSlices give the endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ServiceReference {
    /// Name of a Service in the Endpoint's namespace.
    pub name: String,
    /// The Service's port: its name, or the port number the pods listen on
    /// (the number EndpointSlices record, i.e. the target port).
    pub port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
}

/// Written by the controller through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootesStatus {
    /// Accepted: whether the config is valid and in force (reasons Valid,
    /// InvalidConfig, TooLarge, Conflict; EnvoyRejected, EnvoyUnavailable
    /// with --envoy-validate).
    /// ResolvedRefs: whether the clusters, route configurations, endpoints
    /// and secrets it names reach every node it reaches, and what those
    /// nodes receive with it fits (reasons ResolvedRefs,
    /// UnresolvedReferences; when Envoy rejects it for that: UnknownCluster,
    /// ConfigSourceCluster, DuplicateAddress).
    /// Programmed: whether every connected node it targets runs its current
    /// generation (reasons Programmed, Pending, Rejected when an Envoy
    /// NACKed it, NotAccepted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// How many Envoys (pods) receive this object's resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<i64>,
    /// Connected nodes that run the generation in force, out of the
    /// connected nodes it targets: `9998/10000` (details: condition
    /// Programmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub programmed: Option<String>,
}

/// A condition in the shape of meta/v1 Condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. Accepted.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// CamelCase reason: Valid, InvalidConfig, TooLarge, Conflict,
    /// EnvoyRejected or EnvoyUnavailable (Accepted); ResolvedRefs, UnresolvedReferences, UnknownCluster,
    /// ConfigSourceCluster or DuplicateAddress (ResolvedRefs); Programmed,
    /// Pending, Rejected or NotAccepted (Programmed).
    pub reason: String,
    /// Human-readable detail: the field and the rule it breaks, the object a
    /// conflict was lost to, or the Envoy's error.
    #[serde(default)]
    pub message: String,
    /// When status last changed (RFC 3339).
    #[schemars(with = "Rfc3339")]
    pub last_transition_time: String,
    /// The metadata.generation this condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Schema of a timestamp field: a string in RFC 3339 `date-time` format.
struct Rfc3339;

impl JsonSchema for Rfc3339 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rfc3339".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

/// Schema of `spec.config`: any JSON object, kept as written.
fn free_form_config(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "The Envoy resource in proto3 JSON (snake_case or lowerCamelCase field names, \"@type\" in Any fields). Validated by the controller, which reports problems in status.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Declares one Bootes kind: its spec type (whose derive generates the root
/// type `$kind`), with the shared selector/config fields, status, printer
/// columns, short name and category.
macro_rules! bootes_kind {
    ($kind:ident, $spec:ident, $kind_str:tt, $short:tt, $envoy:tt, $doc:tt $(, { $($extra:tt)* })?) => {
        #[doc = concat!("Spec of a ", $kind_str, ": config is an ", $envoy, ".")]
        #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
        #[kube(
                            group = "bootes.io",
                            version = "v1",
                            kind = $kind_str,
                            namespaced,
                            status = "BootesStatus",
                            shortname = $short,
                            category = "bootes",
                            derive = "PartialEq",
                            doc = $doc,
                            printcolumn(
                                name = "Accepted",
                                type_ = "string",
                                json_path = r#".status.conditions[?(@.type=="Accepted")].status"#
                            ),
                            printcolumn(
                                name = "Reason",
                                type_ = "string",
                                json_path = r#".status.conditions[?(@.type=="Accepted")].reason"#
                            ),
                            printcolumn(
                                name = "ResolvedRefs",
                                type_ = "string",
                                json_path = r#".status.conditions[?(@.type=="ResolvedRefs")].status"#
                            ),
                            printcolumn(
                                name = "Nodes",
                                type_ = "integer",
                                json_path = ".status.nodes"
                            ),
                            printcolumn(
                                name = "Programmed",
                                type_ = "string",
                                json_path = ".status.programmed"
                            ),
                            printcolumn(
                                name = "Age",
                                type_ = "date",
                                json_path = ".metadata.creationTimestamp"
                            )
                        )]
        #[serde(rename_all = "camelCase")]
        pub struct $spec {
            /// Which pods of the namespace receive this object; absent selects
            /// every pod of the namespace.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub workload_selector: Option<WorkloadSelector>,
            #[schemars(schema_with = "free_form_config")]
            pub config: serde_json::Value,
            $($($extra)*)?
        }
    };
}

bootes_kind!(
    Listener,
    ListenerSpec,
    "Listener",
    "blis",
    "envoy.config.listener.v3.Listener",
    "A Bootes Listener: spec.config is one envoy.config.listener.v3.Listener (proto3 JSON) for the Envoys whose pods match spec.workloadSelector."
);
bootes_kind!(
    Route,
    RouteSpec,
    "Route",
    "brt",
    "envoy.config.route.v3.RouteConfiguration",
    "A Bootes Route: spec.config is one envoy.config.route.v3.RouteConfiguration (proto3 JSON) for the Envoys whose pods match spec.workloadSelector."
);
bootes_kind!(
    Cluster,
    ClusterSpec,
    "Cluster",
    "bcl",
    "envoy.config.cluster.v3.Cluster",
    "A Bootes Cluster: spec.config is one envoy.config.cluster.v3.Cluster (proto3 JSON) for the Envoys whose pods match spec.workloadSelector."
);
bootes_kind!(
    Endpoint,
    EndpointSpec,
    "Endpoint",
    "bep",
    "envoy.config.endpoint.v3.ClusterLoadAssignment",
    "A Bootes Endpoint: spec.config is one envoy.config.endpoint.v3.ClusterLoadAssignment (proto3 JSON) for the Envoys whose pods match spec.workloadSelector. Its endpoints are listed in spec.config.endpoints, or come from the EndpointSlices of the Service named by spec.service (exactly one of the two).",
    {
        /// A Service of this namespace whose EndpointSlices give the
        /// endpoints (ready: HEALTHY, terminating but serving: DRAINING,
        /// zone: locality), instead of spec.config.endpoints.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub service: Option<ServiceReference>,
    }
);
bootes_kind!(
    VirtualHost,
    VirtualHostSpec,
    "VirtualHost",
    "bvh",
    "envoy.config.route.v3.VirtualHost",
    "A Bootes VirtualHost: spec.config is one envoy.config.route.v3.VirtualHost (proto3 JSON) for the Envoys whose pods match spec.workloadSelector."
);
bootes_kind!(
    Secret,
    SecretSpec,
    "Secret",
    "bsec",
    "envoy.extensions.transport_sockets.tls.v3.Secret",
    "A Bootes Secret: spec.config is one envoy.extensions.transport_sockets.tls.v3.Secret (proto3 JSON) for the Envoys whose pods match spec.workloadSelector."
);
bootes_kind!(
    Runtime,
    RuntimeSpec,
    "Runtime",
    "brtd",
    "envoy.service.runtime.v3.Runtime",
    "A Bootes Runtime: spec.config is one envoy.service.runtime.v3.Runtime (proto3 JSON) for the Envoys whose pods match spec.workloadSelector."
);
bootes_kind!(
    ScopedRoute,
    ScopedRouteSpec,
    "ScopedRoute",
    "bsrt",
    "envoy.config.route.v3.ScopedRouteConfiguration",
    "A Bootes ScopedRoute: spec.config is one envoy.config.route.v3.ScopedRouteConfiguration (proto3 JSON) for the Envoys whose pods match spec.workloadSelector."
);
bootes_kind!(
    ExtensionConfig,
    ExtensionConfigSpec,
    "ExtensionConfig",
    "bext",
    "envoy.config.core.v3.TypedExtensionConfig",
    "A Bootes ExtensionConfig: spec.config is one envoy.config.core.v3.TypedExtensionConfig (proto3 JSON) for the Envoys whose pods match spec.workloadSelector."
);

/// Calls the generic function `$f::<RustType>()` for the Rust type of `kind`.
macro_rules! with_kind_type {
    ($kind:expr, $f:ident) => {
        match $kind {
            ResourceType::Listener => $f::<Listener>(),
            ResourceType::Route => $f::<Route>(),
            ResourceType::Cluster => $f::<Cluster>(),
            ResourceType::Endpoint => $f::<Endpoint>(),
            ResourceType::VirtualHost => $f::<VirtualHost>(),
            ResourceType::Secret => $f::<Secret>(),
            ResourceType::Runtime => $f::<Runtime>(),
            ResourceType::ScopedRoute => $f::<ScopedRoute>(),
            ResourceType::ExtensionConfig => $f::<ExtensionConfig>(),
        }
    };
}

/// The kinds in the order their CRDs are printed: the original project's four
/// first, then the later ones.
pub const KINDS: [ResourceType; 9] = [
    ResourceType::Listener,
    ResourceType::Route,
    ResourceType::Cluster,
    ResourceType::Endpoint,
    ResourceType::VirtualHost,
    ResourceType::Secret,
    ResourceType::Runtime,
    ResourceType::ScopedRoute,
    ResourceType::ExtensionConfig,
];

/// The CRD of `kind`.
pub fn crd(kind: ResourceType) -> CustomResourceDefinition {
    fn of<K: CustomResourceExt>() -> CustomResourceDefinition {
        K::crd()
    }
    with_kind_type!(kind, of)
}

/// Group, version, kind and plural of `kind`, for dynamic API calls.
pub fn api_resource(kind: ResourceType) -> ApiResource {
    fn of<K: CustomResourceExt>() -> ApiResource {
        K::api_resource()
    }
    with_kind_type!(kind, of)
}

/// Every CRD as one multi-document YAML stream: the output of
/// `bootes-controller crds` and the content of `manifests/crds/`.
pub fn crds_yaml() -> String {
    let mut out = String::from(
        "# Generated by `bootes-controller crds` from controller/src/crd.rs; do not edit.\n",
    );
    for (i, kind) in KINDS.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(&crd(kind)).expect("a CRD serializes as YAML"));
    }
    out
}

/// A Kubernetes API stand-in served in this process, with the CRD of `kind`
/// installed and `namespace` created: for tests of the Kubernetes shells.
#[cfg(test)]
pub async fn standin_client(kind: ResourceType, namespace: &str) -> kube::Client {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(kube_standin::server::serve(
        listener,
        kube_standin::server::Options::default(),
    ));
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let pp = PostParams::default();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&pp, &crd(kind))
        .await
        .unwrap();
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&pp, &ns)
        .await
        .unwrap();
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_type_has_a_crd_named_after_its_kind() {
        let mut seen: Vec<ResourceType> = KINDS.to_vec();
        seen.sort();
        let mut all = ResourceType::ALL.to_vec();
        all.sort();
        assert_eq!(seen, all);
        for kind in KINDS {
            let crd = crd(kind);
            let spec = &crd.spec;
            assert_eq!(spec.group, GROUP);
            assert_eq!(spec.names.kind, kind.kind());
            assert_eq!(spec.scope, "Namespaced");
            assert_eq!(spec.versions.len(), 1);
            assert_eq!(spec.versions[0].name, "v1");
            assert_eq!(
                spec.names.categories.as_deref(),
                Some(&["bootes".to_string()][..])
            );
            let ar = api_resource(kind);
            assert_eq!(ar.kind, kind.kind());
            assert_eq!(ar.group, GROUP);
            assert_eq!(
                crd.metadata.name.as_deref(),
                Some(format!("{}.{GROUP}", ar.plural).as_str())
            );
        }
    }

    #[test]
    fn short_names_are_unique_and_not_builtin() {
        // Short names of built-in kinds a user is likely to have.
        const BUILTIN: &[&str] = &[
            "cm", "cs", "csr", "crd", "crds", "ds", "deploy", "ep", "ev", "hpa", "ing", "limits",
            "netpol", "no", "ns", "pc", "pdb", "po", "psp", "pv", "pvc", "quota", "rc", "rs", "sa",
            "sc", "sts", "svc",
        ];
        let mut names = Vec::new();
        for kind in KINDS {
            let short = crd(kind).spec.names.short_names.unwrap_or_default();
            assert_eq!(short.len(), 1, "{kind}");
            assert!(!BUILTIN.contains(&short[0].as_str()), "{}", short[0]);
            names.extend(short);
        }
        let before = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), before, "{names:?}");
    }

    #[test]
    fn schema_keeps_config_free_form_and_has_status_and_columns() {
        let crd = crd(ResourceType::Cluster);
        let version = &crd.spec.versions[0];
        let schema = serde_json::to_value(&version.schema).unwrap();
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        let config = &spec["properties"]["config"];
        assert_eq!(config["type"], "object");
        assert_eq!(config["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(
            spec["properties"]["workloadSelector"]["properties"]["labels"]["additionalProperties"]
                ["type"],
            "string"
        );
        assert_eq!(spec["required"], serde_json::json!(["config"]));
        let status = &schema["openAPIV3Schema"]["properties"]["status"]["properties"];
        assert_eq!(status["nodes"]["type"], "integer");
        assert_eq!(status["conditions"]["x-kubernetes-list-type"], "map");
        assert_eq!(
            status["conditions"]["items"]["properties"]["lastTransitionTime"]["format"],
            "date-time"
        );
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<&str> = version
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            columns,
            [
                "Accepted",
                "Reason",
                "ResolvedRefs",
                "Nodes",
                "Programmed",
                "Age"
            ]
        );
    }

    #[test]
    fn only_the_endpoint_schema_has_a_service_with_a_named_or_numbered_port() {
        let spec_of = |kind| {
            let crd = crd(kind);
            let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
            schema["openAPIV3Schema"]["properties"]["spec"].clone()
        };
        let endpoint = spec_of(ResourceType::Endpoint);
        let service = &endpoint["properties"]["service"];
        assert_eq!(service["required"], serde_json::json!(["name", "port"]));
        assert_eq!(service["properties"]["name"]["type"], "string");
        assert_eq!(
            service["properties"]["port"]["x-kubernetes-int-or-string"],
            true
        );
        assert_eq!(endpoint["required"], serde_json::json!(["config"]));
        assert!(spec_of(ResourceType::Cluster)["properties"]
            .get("service")
            .is_none());
        let e: Endpoint = serde_yaml::from_str(
            "apiVersion: bootes.io/v1\nkind: Endpoint\nmetadata: {name: web}\nspec: {service: {name: web, port: 8080}, config: {cluster_name: web}}\n",
        )
        .unwrap();
        assert_eq!(e.spec.service.unwrap().name, "web");
    }

    #[test]
    fn original_manifests_deserialize_into_the_types() {
        let text = r#"
apiVersion: bootes.io/v1
kind: Cluster
metadata: {name: example-cluster, namespace: foo}
spec:
  workloadSelector: {labels: {app: foo}}
  config:
    name: example-cluster
    connect_timeout: 1s
    type: EDS
    eds_cluster_config: {eds_config: {ads: {}}}
"#;
        let c: Cluster = serde_yaml::from_str(text).unwrap();
        assert_eq!(c.spec.config["connect_timeout"], "1s");
        let labels = c.spec.workload_selector.unwrap().labels.unwrap();
        assert_eq!(labels["app"], "foo");
        assert!(c.status.is_none());
    }

    #[test]
    fn yaml_stream_has_every_crd() {
        let yaml = crds_yaml();
        let docs: Vec<CustomResourceDefinition> = serde_yaml::Deserializer::from_str(&yaml)
            .map(|d| CustomResourceDefinition::deserialize(d).unwrap())
            .collect();
        let kinds: Vec<&str> = docs.iter().map(|d| d.spec.names.kind.as_str()).collect();
        assert_eq!(kinds, KINDS.map(|k| k.kind()));
    }
}
