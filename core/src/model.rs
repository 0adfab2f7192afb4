//! The inputs of the index: Bootes objects and the pods that stand for Envoys,
//! independent of where they came from (Kubernetes or a directory).

use std::collections::BTreeMap;
use std::fmt;

use bootes_proto::ResourceType;

use crate::service_ref::ServiceRef;

/// Identity of a Bootes object: kind, namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: ResourceType,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// The object a snapshot names (a resource's source, or one of its
    /// objects); `None` for a kind Bootes does not know.
    pub fn of_source(source: &bootes_proto::store::ObjectRef) -> Option<Self> {
        Some(Self {
            kind: ResourceType::from_kind(&source.kind)?,
            namespace: source.namespace.clone(),
            name: source.name.clone(),
        })
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind.kind(), self.namespace, self.name)
    }
}

/// A `bootes.io/v1` object: a workload selector and one Envoy resource as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct BootesObject {
    pub key: ObjectKey,
    /// Where it came from, for problem reports: a manifest file, or `kubernetes`.
    pub source: String,
    pub uid: String,
    pub generation: i64,
    /// RFC 3339 creation timestamp; absent for manifests read from a directory.
    pub created: Option<String>,
    /// `spec.workloadSelector.labels`; `None` selects every pod of the namespace.
    pub selector: Option<BTreeMap<String, String>>,
    /// `spec.config`, proto3 JSON of the Envoy message for `key.kind`.
    pub config: serde_json::Value,
    /// `spec.service` of an Endpoint: the Service whose EndpointSlices give
    /// the endpoints (then `config` has none).
    pub service: Option<ServiceRef>,
}

impl BootesObject {
    /// Whether this object targets `pod` (same namespace, every selector label present).
    pub fn selects(&self, pod: &Pod) -> bool {
        pod.namespace == self.key.namespace
            && self
                .selector
                .as_ref()
                .is_none_or(|sel| sel.iter().all(|(k, v)| pod.labels.get(k) == Some(v)))
    }

    /// Conflict precedence: older first (creation timestamp), then namespace/name.
    /// Objects without a timestamp sort after those with one.
    pub fn precedence(&self) -> (bool, Option<&str>, &str, &str) {
        (
            self.created.is_none(),
            self.created.as_deref(),
            &self.key.namespace,
            &self.key.name,
        )
    }
}

/// Identity of a pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

/// The metadata of a pod that Bootes needs: one Envoy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.serviceAccountName` ("default" when unset): with mutual TLS,
    /// the SPIFFE identity that may claim this pod's node ID.
    pub service_account: String,
}

impl Pod {
    pub fn key(&self) -> PodKey {
        PodKey {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// The Envoy node ID of this pod: `<pod-name>.<namespace>`.
    pub fn node_id(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn object(ns: &str, selector: Option<&[(&str, &str)]>) -> BootesObject {
        BootesObject {
            key: ObjectKey {
                kind: ResourceType::Cluster,
                namespace: ns.into(),
                name: "c".into(),
            },
            source: "test".into(),
            uid: String::new(),
            generation: 1,
            created: None,
            selector: selector.map(labels),
            config: serde_json::json!({}),
            service: None,
        }
    }

    fn pod(ns: &str, l: &[(&str, &str)]) -> Pod {
        Pod {
            namespace: ns.into(),
            name: "p".into(),
            uid: "u".into(),
            labels: labels(l),
            service_account: "default".into(),
        }
    }

    #[test]
    fn selector_needs_every_label_and_the_same_namespace() {
        let sel = object("foo", Some(&[("app", "a"), ("tier", "web")]));
        assert!(sel.selects(&pod("foo", &[("app", "a"), ("tier", "web"), ("x", "y")])));
        assert!(!sel.selects(&pod("foo", &[("app", "a")])));
        assert!(!sel.selects(&pod("foo", &[("app", "b"), ("tier", "web")])));
        assert!(!sel.selects(&pod("bar", &[("app", "a"), ("tier", "web")])));
    }

    #[test]
    fn absent_selector_selects_the_whole_namespace_only() {
        let all = object("foo", None);
        assert!(all.selects(&pod("foo", &[])));
        assert!(!all.selects(&pod("bar", &[])));
        // An empty label map is the same as no selector.
        assert!(object("foo", Some(&[])).selects(&pod("foo", &[("a", "b")])));
    }

    #[test]
    fn node_id_is_pod_dot_namespace() {
        assert_eq!(pod("foo", &[]).node_id(), "p.foo");
    }
}
