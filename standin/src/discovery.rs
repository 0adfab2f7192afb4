//! Discovery documents (`/version`, `/api`, `/apis`, resource lists) and the OpenAPI v3
//! documents kubectl reads before it applies anything.
//!
//! The stand-in serves the legacy (unaggregated) discovery format only; clients that
//! ask for aggregated discovery get the legacy type with a plain `application/json`
//! content type, and fall back as they do with older servers.
//!
//! The OpenAPI v3 documents describe, for every served type, a PATCH operation that
//! accepts the `fieldValidation` query parameter and no strategic merge patch. That
//! makes kubectl leave validation to the server (which accepts it) and use merge
//! patches for custom resources, as it does against a real cluster.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::types::{compare_versions, ResourceType};

/// Version reported at `/version`.
pub const SERVER_VERSION: (&str, &str) = ("1", "32");

pub fn version() -> Value {
    json!({
        "major": SERVER_VERSION.0,
        "minor": SERVER_VERSION.1,
        "gitVersion": format!("v{}.{}.0-bootes-kube-standin", SERVER_VERSION.0, SERVER_VERSION.1),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Served versions per group (most preferred first), core group excluded.
fn groups<'a>(types: impl Iterator<Item = &'a ResourceType>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rt in types.filter(|rt| !rt.group.is_empty()) {
        let vs = out.entry(rt.group.clone()).or_default();
        for v in &rt.versions {
            if !vs.contains(&v.name) {
                vs.push(v.name.clone());
            }
        }
    }
    for vs in out.values_mut() {
        vs.sort_by(|a, b| compare_versions(a, b));
    }
    out
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`
pub fn group_list<'a>(types: impl Iterator<Item = &'a ResourceType>) -> Value {
    let groups: Vec<Value> = groups(types)
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`
pub fn api_group<'a>(types: impl Iterator<Item = &'a ResourceType>, group: &str) -> Option<Value> {
    let all = groups(types);
    let vs = all.get(group)?;
    let mut g = group_entry(group, vs);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `/api/v1` or `/apis/<group>/<version>`
pub fn resource_list<'a>(
    types: impl Iterator<Item = &'a ResourceType>,
    group: &str,
    version: &str,
) -> Option<Value> {
    let mut resources = Vec::new();
    for rt in types.filter(|rt| rt.group == group) {
        let Some(v) = rt.version(version) else {
            continue;
        };
        let mut r = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": ResourceType::verbs(),
        });
        if !rt.short_names.is_empty() {
            r["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            r["categories"] = json!(rt.categories);
        }
        resources.push(r);
        if v.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// The OpenAPI v3 path key of a group version: `api/v1`, `apis/<group>/<version>`.
pub fn openapi_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// FNV-1a, hex: a content hash for the `?hash=` of OpenAPI document URLs.
fn content_hash(v: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// All (group, version) pairs that have types.
fn group_versions<'a>(types: impl Iterator<Item = &'a ResourceType>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for rt in types {
        for v in &rt.versions {
            let gv = (rt.group.clone(), v.name.clone());
            if !out.contains(&gv) {
                out.push(gv);
            }
        }
    }
    out.sort();
    out
}

/// `/openapi/v3`: the index of per group-version documents.
pub fn openapi_index<'a>(types: impl Iterator<Item = &'a ResourceType> + Clone) -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v) in group_versions(types.clone()) {
        let Some(doc) = openapi_doc(types.clone(), &g, &v) else {
            continue;
        };
        let p = openapi_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", content_hash(&doc))}),
        );
    }
    json!({"paths": paths})
}

fn schema_name(rt: &ResourceType, version: &str) -> String {
    if rt.group.is_empty() {
        return format!("io.k8s.api.core.{version}.{}", rt.kind);
    }
    let reversed: Vec<&str> = rt.group.split('.').rev().collect();
    format!("{}.{version}.{}", reversed.join("."), rt.kind)
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// The OpenAPI v3 document of one group version.
pub fn openapi_doc<'a>(
    types: impl Iterator<Item = &'a ResourceType>,
    group: &str,
    version: &str,
) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for rt in types.filter(|rt| rt.group == group) {
        let Some(v) = rt.version(version) else {
            continue;
        };
        let gvk = json!({"group": rt.group, "version": version, "kind": rt.kind});
        let schema_ref = format!("#/components/schemas/{}", schema_name(rt, version));
        let mut schema = v.schema.clone().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(schema_name(rt, version), schema);
        let response = json!({"200": {"description": "OK", "content": {
            "application/json": {"schema": {"$ref": schema_ref}}}}});
        let body = |types: &[&str]| {
            let content: serde_json::Map<String, Value> = types
                .iter()
                .map(|t| (t.to_string(), json!({"schema": {"type": "object"}})))
                .collect();
            json!({"content": content, "required": true})
        };
        let op = |action: &str, params: &[&str]| {
            json!({
                "operationId": format!("{action}{}", rt.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params.iter().map(|p| query_param(p)).collect::<Vec<_>>(),
                "responses": response,
            })
        };
        let mut patch = op(
            "patch",
            &["dryRun", "fieldManager", "fieldValidation", "force"],
        );
        patch["requestBody"] = body(&[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]);
        let mut put = op("put", &["dryRun", "fieldManager", "fieldValidation"]);
        put["requestBody"] = body(&["application/json"]);
        let mut post = op("post", &["dryRun", "fieldManager", "fieldValidation"]);
        post["requestBody"] = body(&["application/json"]);
        let list = op(
            "list",
            &["labelSelector", "fieldSelector", "resourceVersion", "watch"],
        );
        let (collection, item) = if rt.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", rt.plural),
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", rt.plural),
            )
        } else {
            (
                format!("{prefix}/{}", rt.plural),
                format!("{prefix}/{}/{{name}}", rt.plural),
            )
        };
        paths.insert(collection, json!({"get": list, "post": post}));
        let mut item_ops = json!({
            "get": op("get", &[]),
            "put": put,
            "patch": patch,
            "delete": op("delete", &["dryRun"]),
        });
        if v.status_subresource {
            paths.insert(format!("{item}/status"), item_ops.clone());
        }
        if rt.namespaced {
            paths.insert(
                format!("{prefix}/{}", rt.plural),
                json!({"get": op("list", &[])}),
            );
        }
        item_ops["parameters"] = json!([
            {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}
        ]);
        paths.insert(item, item_ops);
    }
    if schemas.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", SERVER_VERSION.0, SERVER_VERSION.1)},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{builtin_types, crd_resource_type};

    fn types() -> Vec<ResourceType> {
        let mut t = builtin_types();
        t.push(
            crd_resource_type(&json!({
                "metadata": {"name": "clusters.bootes.io"},
                "spec": {"group": "bootes.io", "scope": "Namespaced",
                    "names": {"plural": "clusters", "kind": "Cluster", "shortNames": ["bc"], "categories": ["bootes"]},
                    "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}
            }))
            .unwrap(),
        );
        t
    }

    #[test]
    fn discovery_lists_groups_and_resources() {
        let t = types();
        let apis = group_list(t.iter());
        let names: Vec<_> = apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].clone())
            .collect();
        assert!(names.contains(&json!("bootes.io")));
        assert!(names.contains(&json!("apiextensions.k8s.io")));
        assert!(!names.contains(&json!("")));
        let rl = resource_list(t.iter(), "bootes.io", "v1").unwrap();
        assert_eq!(rl["groupVersion"], "bootes.io/v1");
        assert_eq!(rl["resources"][0]["categories"], json!(["bootes"]));
        assert_eq!(rl["resources"][0]["shortNames"], json!(["bc"]));
        assert_eq!(rl["resources"][1]["name"], "clusters/status");
        let core = resource_list(t.iter(), "", "v1").unwrap();
        assert_eq!(core["groupVersion"], "v1");
        assert!(resource_list(t.iter(), "bootes.io", "v2").is_none());
        assert_eq!(
            api_group(t.iter(), "bootes.io").unwrap()["preferredVersion"]["version"],
            "v1"
        );
    }

    #[test]
    fn openapi_patch_operations_support_field_validation_and_no_smp() {
        let t = types();
        let index = openapi_index(t.iter());
        let url = index["paths"]["apis/bootes.io/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/bootes.io/v1?hash="));
        assert!(index["paths"]["api/v1"].is_object());
        let doc = openapi_doc(t.iter(), "", "v1").unwrap();
        let patch = &doc["paths"]["/api/v1/namespaces/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Namespace"
        );
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        assert!(
            patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_null()
        );
        let doc = openapi_doc(t.iter(), "bootes.io", "v1").unwrap();
        assert!(
            doc["paths"]["/apis/bootes.io/v1/namespaces/{namespace}/clusters/{name}/status"]
                .is_object()
        );
        assert_eq!(
            doc["components"]["schemas"]["io.bootes.v1.Cluster"]["x-kubernetes-group-version-kind"]
                [0]["kind"],
            "Cluster"
        );
    }
}
