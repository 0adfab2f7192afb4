//! Reading Bootes manifests: YAML streams of `bootes.io/v1` objects, `v1`
//! Pod documents (which stand for Envoys in directory mode) and
//! `discovery.k8s.io/v1` EndpointSlices (the endpoints of Services named by
//! Endpoints).

use std::collections::BTreeMap;

use bootes_proto::ResourceType;
use serde::Deserialize;

use crate::model::{BootesObject, ObjectKey, Pod};
use crate::service_endpoints::{self, EndpointSlice};
use crate::service_ref::ServiceRef;

/// API group/version of Bootes objects.
pub const API_VERSION: &str = "bootes.io/v1";
/// Namespace of documents that name none (as `kubectl apply` would use).
pub const DEFAULT_NAMESPACE: &str = "default";
/// A pod without `spec.serviceAccountName` runs as this one (as in Kubernetes).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// One document of a manifest stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Document {
    Object(BootesObject),
    Pod(Pod),
    EndpointSlice(EndpointSlice),
    /// Any other kind (Namespace, Deployment, …): not ours, ignored.
    Other {
        api_version: String,
        kind: String,
    },
}

/// A document that could not be read, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: document {index}: {message}")]
pub struct ManifestError {
    /// File name (or `-` for stdin).
    pub source_name: String,
    /// 1-based position of the document in its stream.
    pub index: usize,
    /// `Kind namespace/name` when known.
    pub object: Option<String>,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: RawMetadata,
    #[serde(default)]
    spec: Option<serde_json::Value>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMetadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
    #[serde(default)]
    creation_timestamp: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSpec {
    #[serde(default)]
    workload_selector: Option<RawSelector>,
    config: serde_json::Value,
    #[serde(default)]
    service: Option<ServiceRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelector {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Parses a YAML stream. Every document is returned or reported: a bad
/// document never hides the good ones around it.
pub fn parse_stream(source_name: &str, text: &str) -> Vec<Result<Document, ManifestError>> {
    let mut out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let err = |object: Option<String>, message: String| ManifestError {
            source_name: source_name.to_string(),
            index,
            object,
            message,
        };
        let value = match serde_yaml::Value::deserialize(de) {
            Ok(serde_yaml::Value::Null) => continue, // empty document (`---` at the end)
            Ok(v) => v,
            Err(e) => {
                out.push(Err(err(None, format!("invalid YAML: {e}"))));
                // The YAML parser cannot resynchronise after a syntax error.
                break;
            }
        };
        out.push(
            parse_document(source_name, value).map_err(|(object, message)| err(object, message)),
        );
    }
    out
}

fn parse_document(
    source_name: &str,
    value: serde_yaml::Value,
) -> Result<Document, (Option<String>, String)> {
    let raw: RawDocument = serde_yaml::from_value(value.clone())
        .map_err(|e| (None, format!("not a Kubernetes object: {e}")))?;
    let namespace = raw
        .metadata
        .namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let display = format!("{} {}/{}", raw.kind, namespace, raw.metadata.name);

    if raw.api_version == "v1" && raw.kind == "Pod" {
        if raw.metadata.name.is_empty() {
            return Err((Some(display), "metadata.name: a Pod needs a name".into()));
        }
        let uid = raw
            .metadata
            .uid
            .unwrap_or_else(|| format!("{namespace}/{}", raw.metadata.name));
        let service_account = match raw.spec.as_ref().and_then(|s| s.get("serviceAccountName")) {
            None | Some(serde_json::Value::Null) => DEFAULT_SERVICE_ACCOUNT.to_string(),
            Some(serde_json::Value::String(sa)) if !sa.is_empty() => sa.clone(),
            Some(other) => {
                return Err((
                    Some(display),
                    format!("spec.serviceAccountName: expected a non-empty string, got {other}"),
                ))
            }
        };
        return Ok(Document::Pod(Pod {
            namespace,
            name: raw.metadata.name,
            uid,
            labels: raw.metadata.labels,
            service_account,
        }));
    }
    if raw.api_version == service_endpoints::SLICE_API_VERSION
        && raw.kind == service_endpoints::SLICE_KIND
    {
        let json =
            serde_json::to_value(&value).map_err(|e| (Some(display.clone()), e.to_string()))?;
        return EndpointSlice::from_object(json, DEFAULT_NAMESPACE)
            .map(Document::EndpointSlice)
            .map_err(|e| (Some(display), e));
    }
    if raw.api_version != API_VERSION {
        return Ok(Document::Other {
            api_version: raw.api_version,
            kind: raw.kind,
        });
    }
    let Some(kind) = ResourceType::from_kind(&raw.kind) else {
        let known: Vec<&str> = ResourceType::ALL.iter().map(|t| t.kind()).collect();
        return Err((
            Some(display),
            format!(
                "kind: unknown kind {:?} (expected one of {})",
                raw.kind,
                known.join(", ")
            ),
        ));
    };
    if raw.metadata.name.is_empty() {
        return Err((
            Some(display),
            "metadata.name: an object needs a name".into(),
        ));
    }
    let spec = raw
        .spec
        .ok_or_else(|| (Some(display.clone()), "spec: missing".to_string()))?;
    let spec: RawSpec =
        serde_json::from_value(spec).map_err(|e| (Some(display.clone()), format!("spec: {e}")))?;
    Ok(Document::Object(BootesObject {
        key: ObjectKey {
            kind,
            namespace: namespace.clone(),
            name: raw.metadata.name.clone(),
        },
        source: source_name.to_string(),
        uid: raw
            .metadata
            .uid
            .unwrap_or_else(|| format!("{namespace}/{}", raw.metadata.name)),
        generation: raw.metadata.generation.unwrap_or(1),
        created: raw.metadata.creation_timestamp,
        selector: spec.workload_selector.map(|s| s.labels),
        config: spec.config,
        service: spec.service,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = r#"
apiVersion: bootes.io/v1
kind: Cluster
metadata: {name: c, namespace: foo}
spec:
  workloadSelector: {labels: {app: foo}}
  config: {name: c, connect_timeout: 1s}
---
apiVersion: v1
kind: Pod
metadata: {name: envoy-0, labels: {app: foo}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
---
apiVersion: bootes.io/v1
kind: Clustr
metadata: {name: typo}
spec: {config: {}}
---
apiVersion: bootes.io/v1
kind: Route
metadata: {name: r}
spec: {config: {name: r}, workloadSelectr: {}}
---
"#;

    #[test]
    fn reads_objects_pods_and_reports_bad_documents_without_hiding_good_ones() {
        let docs = parse_stream("m.yaml", STREAM);
        assert_eq!(docs.len(), 5);
        let Ok(Document::Object(c)) = &docs[0] else {
            panic!("{:?}", docs[0])
        };
        assert_eq!(c.key.to_string(), "Cluster foo/c");
        assert_eq!(c.selector.as_ref().unwrap()["app"], "foo");
        assert_eq!(c.config["connect_timeout"], "1s");
        let Ok(Document::Pod(p)) = &docs[1] else {
            panic!("{:?}", docs[1])
        };
        assert_eq!(p.node_id(), "envoy-0.default");
        assert!(matches!(&docs[2], Ok(Document::Other { kind, .. }) if kind == "Deployment"));
        let e = docs[3].as_ref().unwrap_err();
        assert_eq!(e.index, 4);
        assert!(e.message.contains("Clustr"), "{e}");
        let e = docs[4].as_ref().unwrap_err();
        assert!(e.message.contains("workloadSelectr"), "{e}");
        assert_eq!(e.object.as_deref(), Some("Route default/r"));
    }

    #[test]
    fn reads_endpoint_slices_and_endpoints_naming_a_service() {
        let docs = parse_stream(
            "web.yaml",
            r#"
apiVersion: bootes.io/v1
kind: Endpoint
metadata: {name: web, namespace: foo}
spec:
  service: {name: web, port: http}
  config: {cluster_name: web}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: orphan}
addressType: IPv4
---
apiVersion: bootes.io/v1
kind: Endpoint
metadata: {name: typo}
spec:
  service: {name: web, prot: http}
  config: {cluster_name: web}
"#,
        );
        let Ok(Document::Object(e)) = &docs[0] else {
            panic!("{:?}", docs[0])
        };
        let service = e.service.as_ref().unwrap();
        assert_eq!(service.name, "web");
        assert_eq!(
            service.port,
            crate::service_ref::ServicePort::Name("http".into())
        );
        let Ok(Document::EndpointSlice(s)) = &docs[1] else {
            panic!("{:?}", docs[1])
        };
        assert_eq!(s.key.to_string(), "EndpointSlice default/web-abc");
        assert_eq!(s.service, "web");
        assert_eq!(s.endpoints[0].addresses, ["10.0.0.1"]);
        let e = docs[2].as_ref().unwrap_err();
        assert_eq!(e.object.as_deref(), Some("EndpointSlice default/orphan"));
        assert!(e.message.contains("kubernetes.io/service-name"), "{e}");
        let e = docs[3].as_ref().unwrap_err();
        assert!(e.message.contains("prot"), "{e}");
    }

    #[test]
    fn invalid_yaml_is_reported_with_its_source() {
        let docs = parse_stream("bad.yaml", "kind: [unclosed");
        assert_eq!(docs.len(), 1);
        let e = docs[0].as_ref().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("bad.yaml: document 1: invalid YAML"),
            "{e}"
        );
    }
}
