//! Resource types the stand-in serves: the built-in ones and those defined by
//! CustomResourceDefinitions.

use std::cmp::Ordering;

use serde_json::{json, Value};

/// Identifies a resource independent of its version: (group, plural).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResKey {
    pub group: String,
    pub plural: String,
}

impl ResKey {
    pub fn new(group: &str, plural: &str) -> Self {
        Self {
            group: group.to_string(),
            plural: plural.to_string(),
        }
    }

    pub fn namespaces() -> Self {
        Self::new("", "namespaces")
    }

    pub fn crds() -> Self {
        Self::new(CRD_GROUP, "customresourcedefinitions")
    }
}

pub const CRD_GROUP: &str = "apiextensions.k8s.io";

/// One served version of a resource.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionInfo {
    pub name: String,
    pub status_subresource: bool,
    /// CRD `additionalPrinterColumns` of this version.
    pub printer_columns: Vec<Value>,
    /// CRD `schema.openAPIV3Schema` of this version.
    pub schema: Option<Value>,
}

/// A resource type: names, scope and served versions.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Served versions, most preferred first.
    pub versions: Vec<VersionInfo>,
    /// Defined by a CustomResourceDefinition (not built in).
    pub custom: bool,
}

impl ResourceType {
    pub fn key(&self) -> ResKey {
        ResKey::new(&self.group, &self.plural)
    }

    pub fn version(&self, v: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|x| x.name == v)
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// Whether `status` is a subresource for the given version.
    pub fn has_status(&self, version: &str) -> bool {
        self.version(version).is_some_and(|v| v.status_subresource)
    }

    pub fn verbs() -> Value {
        json!(["create", "delete", "get", "list", "patch", "update", "watch"])
    }

    #[allow(clippy::too_many_arguments)]
    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        short_names: &[&str],
        categories: &[&str],
        status: bool,
    ) -> Self {
        Self {
            group: group.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            namespaced,
            short_names: short_names.iter().map(|s| s.to_string()).collect(),
            categories: categories.iter().map(|s| s.to_string()).collect(),
            versions: vec![VersionInfo {
                name: version.into(),
                status_subresource: status,
                printer_columns: Vec::new(),
                schema: None,
            }],
            custom: false,
        }
    }
}

/// The built-in types: part of core/v1 and the kinds a typical install (`kubectl apply
/// -k`) uses. They are stored as given: no controllers run, nothing is defaulted.
pub fn builtin_types() -> Vec<ResourceType> {
    const RBAC: &str = "rbac.authorization.k8s.io";
    // (group, version, plural, kind, namespaced, short names, categories, status)
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        bool,
        &'static [&'static str],
        &'static [&'static str],
        bool,
    );
    #[rustfmt::skip]
    const TABLE: &[Row] = &[
        ("", "v1", "namespaces", "Namespace", false, &["ns"], &[], true),
        ("", "v1", "pods", "Pod", true, &["po"], &["all"], true),
        ("", "v1", "configmaps", "ConfigMap", true, &["cm"], &[], false),
        ("", "v1", "secrets", "Secret", true, &[], &[], false),
        ("", "v1", "services", "Service", true, &["svc"], &["all"], true),
        ("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"], &[], false),
        ("", "v1", "events", "Event", true, &["ev"], &[], false),
        ("", "v1", "endpoints", "Endpoints", true, &["ep"], &[], false),
        ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, &["pvc"], &[], true),
        (CRD_GROUP, "v1", "customresourcedefinitions", "CustomResourceDefinition", false, &["crd", "crds"], &["api-extensions"], true),
        ("apps", "v1", "deployments", "Deployment", true, &["deploy"], &["all"], true),
        ("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"], &["all"], true),
        ("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], &["all"], true),
        ("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"], &["all"], true),
        ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"], &[], true),
        (RBAC, "v1", "roles", "Role", true, &[], &[], false),
        (RBAC, "v1", "rolebindings", "RoleBinding", true, &[], &[], false),
        (RBAC, "v1", "clusterroles", "ClusterRole", false, &[], &[], false),
        (RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[], &[], false),
        ("coordination.k8s.io", "v1", "leases", "Lease", true, &[], &[], false),
        ("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true, &[], &[], false),
        ("events.k8s.io", "v1", "events", "Event", true, &["ev"], &[], false),
        ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, &["netpol"], &[], false),
        ("batch", "v1", "jobs", "Job", true, &[], &["all"], true),
        ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", false, &[], &["api-extensions"], false),
    ];
    TABLE
        .iter()
        .map(
            |&(g, v, plural, kind, namespaced, short, categories, status)| {
                ResourceType::builtin(g, v, plural, kind, namespaced, short, categories, status)
            },
        )
        .collect()
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first,
/// anything else after, alphabetically.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn rank(v: &str) -> (u8, u64, u64, String) {
        let parsed = v.strip_prefix('v').and_then(|rest| {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let major: u64 = rest[..digits].parse().ok()?;
            let tail = &rest[digits..];
            if tail.is_empty() {
                return Some((0, major, 0));
            }
            for (word, level) in [("beta", 1u8), ("alpha", 2u8)] {
                if let Some(n) = tail.strip_prefix(word) {
                    return Some((level, major, n.parse().ok()?));
                }
            }
            None
        });
        match parsed {
            // Higher numbers sort first, so negate via MAX - n.
            Some((level, major, minor)) => {
                (level, u64::MAX - major, u64::MAX - minor, String::new())
            }
            None => (3, 0, 0, v.to_string()),
        }
    }
    rank(a).cmp(&rank(b))
}

/// Validates a CustomResourceDefinition and derives its resource type.
/// `Err` holds the field causes of a 422 Invalid.
pub fn crd_resource_type(crd: &Value) -> Result<ResourceType, String> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let spec = crd.get("spec").ok_or("spec: Required value")?;
    let s = |p: &str| {
        spec.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let group = s("/group");
    let plural = s("/names/plural");
    let kind = s("/names/kind");
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push("spec.group: Required value".to_string());
    } else if !group.contains('.') {
        causes.push(format!(
            "spec.group: Invalid value: {group:?}: should be a domain with at least one dot"
        ));
    }
    if plural.is_empty() {
        causes.push("spec.names.plural: Required value".to_string());
    } else if plural != plural.to_ascii_lowercase() {
        causes.push(format!(
            "spec.names.plural: Invalid value: {plural:?}: must be lowercase"
        ));
    }
    if kind.is_empty() {
        causes.push("spec.names.kind: Required value".to_string());
    }
    if name != format!("{plural}.{group}") {
        causes.push(format!(
            "metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
        ));
    }
    let scope = s("/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(format!(
            "spec.scope: Unsupported value: {scope:?}: supported values: \"Cluster\", \"Namespaced\""
        ));
    }
    let strings = |p: &str| -> Vec<String> {
        spec.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let raw_versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if raw_versions.is_empty() {
        causes.push(
            "spec.versions: Invalid value: must have exactly one version marked as storage version"
                .into(),
        );
    }
    let storage = raw_versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !raw_versions.is_empty() && storage != 1 {
        causes.push(format!(
            "spec.versions: Invalid value: must have exactly one version marked as storage version, found {storage}"
        ));
    }
    let mut versions = Vec::new();
    for (i, v) in raw_versions.iter().enumerate() {
        let Some(vname) = v
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        else {
            causes.push(format!("spec.versions[{i}].name: Required value"));
            continue;
        };
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        versions.push(VersionInfo {
            name: vname.to_string(),
            status_subresource: v.pointer("/subresources/status").is_some(),
            printer_columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
        });
    }
    if !causes.is_empty() {
        return Err(causes.join("\n"));
    }
    versions.sort_by(|a, b| compare_versions(&a.name, &b.name));
    let singular = match s("/names/singular") {
        x if x.is_empty() => kind.to_ascii_lowercase(),
        x => x,
    };
    let list_kind = match s("/names/listKind") {
        x if x.is_empty() => format!("{kind}List"),
        x => x,
    };
    Ok(ResourceType {
        group,
        plural,
        singular,
        kind,
        list_kind,
        namespaced: scope == "Namespaced",
        short_names: strings("/names/shortNames"),
        categories: strings("/names/categories"),
        versions,
        custom: true,
    })
}

/// The `status` a CRD gets once its names are accepted and it is established.
pub fn crd_status(rt: &ResourceType, crd: &Value, now: &str) -> Value {
    let mut accepted = json!({
        "plural": rt.plural,
        "singular": rt.singular,
        "kind": rt.kind,
        "listKind": rt.list_kind,
    });
    if !rt.short_names.is_empty() {
        accepted["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        accepted["categories"] = json!(rt.categories);
    }
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    let since = |t: &str| {
        crd.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now))
    };
    json!({
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": since("NamesAccepted"),
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": since("Established"),
            }
        ],
        "acceptedNames": accepted,
        "storedVersions": storage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "clusters.bootes.io"},
            "spec": {
                "group": "bootes.io",
                "scope": "Namespaced",
                "names": {"plural": "clusters", "kind": "Cluster", "shortNames": ["bc"], "categories": ["bootes"]},
                "versions": [
                    {"name": "v1alpha1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}},
                     "additionalPrinterColumns": [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v0", "served": false, "storage": false}
                ]
            }
        })
    }

    #[test]
    fn derives_a_type_from_a_crd() {
        let rt = crd_resource_type(&crd()).unwrap();
        assert_eq!(rt.key(), ResKey::new("bootes.io", "clusters"));
        assert_eq!(rt.singular, "cluster");
        assert_eq!(rt.list_kind, "ClusterList");
        assert!(rt.namespaced && rt.custom);
        assert_eq!(rt.short_names, vec!["bc"]);
        let names: Vec<_> = rt.versions.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, vec!["v1", "v1alpha1"]);
        assert!(rt.has_status("v1") && !rt.has_status("v1alpha1"));
        assert_eq!(rt.api_version("v1"), "bootes.io/v1");
        let st = crd_status(&rt, &crd(), "2024-01-01T00:00:00Z");
        assert_eq!(st["conditions"][1]["type"], "Established");
        assert_eq!(st["storedVersions"], json!(["v1"]));
        assert_eq!(st["acceptedNames"]["categories"], json!(["bootes"]));
    }

    #[test]
    fn rejects_inconsistent_crds() {
        let mut bad = crd();
        bad["metadata"]["name"] = json!("clusters.example.com");
        assert!(crd_resource_type(&bad)
            .unwrap_err()
            .contains("metadata.name"));
        let mut bad = crd();
        bad["spec"]["versions"][0]["storage"] = json!(true);
        assert!(crd_resource_type(&bad).unwrap_err().contains("storage"));
        let mut bad = crd();
        bad["spec"]["scope"] = json!("Global");
        assert!(crd_resource_type(&bad).unwrap_err().contains("spec.scope"));
    }

    #[test]
    fn version_priority() {
        let mut v = vec![
            "v1beta1",
            "foo",
            "v2",
            "v1alpha1",
            "v1",
            "v10beta3",
            "v11alpha2",
        ];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            vec![
                "v2",
                "v1",
                "v10beta3",
                "v1beta1",
                "v11alpha2",
                "v1alpha1",
                "foo"
            ]
        );
    }
}
