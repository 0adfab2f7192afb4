//! Response shapes: full objects, `PartialObjectMetadata(List)` (metadata-only clients
//! such as kube-rs `metadata_watcher`), and `Table` (what `kubectl get` asks for), chosen
//! from the `Accept` header.

use serde_json::{json, Value};

use super::error::ApiError;
use super::time::{human_age, parse_rfc3339};
use super::types::ResourceType;

/// What the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Full,
    /// PartialObjectMetadata; the string is the meta.k8s.io version asked for.
    Metadata(&'static str),
    /// Table; the string is the meta.k8s.io version asked for.
    Table(&'static str),
}

fn meta_version(v: Option<&str>) -> Option<&'static str> {
    match v {
        Some("v1") => Some("v1"),
        Some("v1beta1") => Some("v1beta1"),
        _ => None,
    }
}

/// Picks the first media range of an Accept header the stand-in can produce.
pub fn negotiate(accept: Option<&str>) -> Result<Shape, ApiError> {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(Shape::Full);
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        let (mut as_, mut g, mut v) = (None, None, None);
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = Some(val.trim()),
                    "g" => g = Some(val.trim()),
                    "v" => v = Some(val.trim()),
                    _ => {}
                }
            }
        }
        let Some(as_) = as_ else {
            return Ok(Shape::Full);
        };
        if g != Some("meta.k8s.io") {
            continue;
        }
        let Some(version) = meta_version(v) else {
            continue;
        };
        match as_ {
            "Table" => return Ok(Shape::Table(version)),
            "PartialObjectMetadata" | "PartialObjectMetadataList" => {
                return Ok(Shape::Metadata(version))
            }
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/json;as=Table;g=meta.k8s.io;v=v1, application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1 (got {accept:?})"
    )))
}

/// The PartialObjectMetadata of an object.
pub fn partial(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A list response of the requested shape.
pub fn list(
    rt: &ResourceType,
    api_version: &str,
    items: Vec<Value>,
    revision: u64,
    shape: Shape,
    include_object: &str,
    now: i64,
) -> Value {
    let metadata = json!({"resourceVersion": revision.to_string()});
    match shape {
        Shape::Full => json!({
            "kind": rt.list_kind,
            "apiVersion": api_version,
            "metadata": metadata,
            "items": items,
        }),
        Shape::Metadata(v) => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": format!("meta.k8s.io/{v}"),
            "metadata": metadata,
            "items": items.iter().map(|o| partial(o, v)).collect::<Vec<_>>(),
        }),
        Shape::Table(v) => table(
            rt,
            api_version,
            &items,
            Some(revision),
            v,
            include_object,
            now,
        ),
    }
}

/// A single object in the requested shape.
pub fn single(
    rt: &ResourceType,
    api_version: &str,
    obj: Value,
    shape: Shape,
    include_object: &str,
    now: i64,
) -> Value {
    match shape {
        Shape::Full => obj,
        Shape::Metadata(v) => partial(&obj, v),
        Shape::Table(v) => table(
            rt,
            api_version,
            std::slice::from_ref(&obj),
            None,
            v,
            include_object,
            now,
        ),
    }
}

fn column(name: &str, ty: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

/// A cell of a date column: the age, as the API server renders it.
fn age_cell(v: Option<&Value>, now: i64) -> Value {
    match v.and_then(Value::as_str).and_then(parse_rfc3339) {
        Some(t) => json!(human_age(now - t)),
        None => v.cloned().unwrap_or(Value::Null),
    }
}

/// Builds a meta.k8s.io Table with the type's printer columns.
pub fn table(
    rt: &ResourceType,
    api_version: &str,
    items: &[Value],
    revision: Option<u64>,
    version: &str,
    include_object: &str,
    now: i64,
) -> Value {
    let served = api_version.rsplit('/').next().unwrap_or(api_version);
    let printer = rt
        .version(served)
        .map(|v| v.printer_columns.clone())
        .unwrap_or_default();
    let name_col = column(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace.",
        0,
    );
    type CellFn = Box<dyn Fn(&Value) -> Value>;
    if rt.plural == "events" && printer.is_empty() {
        return rows_table(event_columns(now), items, revision, version, include_object);
    }
    let mut columns = vec![name_col];
    let mut cells: Vec<CellFn> = vec![Box::new(|o: &Value| o["metadata"]["name"].clone())];
    let age = move |o: &Value| age_cell(o.pointer("/metadata/creationTimestamp"), now);
    if !printer.is_empty() {
        for c in printer {
            let ty = c["type"].as_str().unwrap_or("string").to_string();
            columns.push(column(
                c["name"].as_str().unwrap_or(""),
                &ty,
                c["format"].as_str().unwrap_or(""),
                c["description"].as_str().unwrap_or(""),
                c["priority"].as_i64().unwrap_or(0),
            ));
            let path = c["jsonPath"].as_str().unwrap_or("").to_string();
            cells.push(Box::new(move |o: &Value| {
                let found = jsonpath(o, &path).into_iter().next();
                if ty == "date" {
                    age_cell(found, now)
                } else {
                    found.cloned().unwrap_or(Value::Null)
                }
            }));
        }
    } else {
        match (rt.group.as_str(), rt.plural.as_str()) {
            ("", "namespaces") => {
                columns.push(column(
                    "Status",
                    "string",
                    "",
                    "The phase of the namespace.",
                    0,
                ));
                cells.push(Box::new(|o: &Value| {
                    o.pointer("/status/phase").cloned().unwrap_or(json!(""))
                }));
            }
            ("", "pods") => {
                columns.push(column(
                    "Ready",
                    "string",
                    "",
                    "The number of ready containers.",
                    0,
                ));
                cells.push(Box::new(|o: &Value| {
                    let n = o
                        .pointer("/spec/containers")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    let ready = o
                        .pointer("/status/containerStatuses")
                        .and_then(Value::as_array)
                        .map_or(0, |cs| cs.iter().filter(|c| c["ready"] == true).count());
                    json!(format!("{ready}/{n}"))
                }));
                columns.push(column("Status", "string", "", "The phase of the pod.", 0));
                cells.push(Box::new(|o: &Value| {
                    o.pointer("/status/phase").cloned().unwrap_or(json!(""))
                }));
                columns.push(column("Restarts", "string", "", "Container restarts.", 0));
                cells.push(Box::new(|_: &Value| json!("0")));
            }
            _ => {}
        }
        columns.push(column(
            "Age",
            "string",
            "",
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
            0,
        ));
        cells.push(Box::new(age));
    }
    rows_table(
        columns.into_iter().zip(cells).collect(),
        items,
        revision,
        version,
        include_object,
    )
}

type Column = (Value, Box<dyn Fn(&Value) -> Value>);

/// The columns of Events (both API versions), as the API server prints
/// them: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE (and, wide, the others).
fn event_columns(now: i64) -> Vec<Column> {
    // Core v1 names, else events.k8s.io/v1 names.
    fn field<'a>(o: &'a Value, core: &str, v1: &str) -> &'a Value {
        o.get(core).filter(|v| !v.is_null()).unwrap_or(&o[v1])
    }
    let last_seen = move |o: &Value| {
        let t = [
            o.pointer("/series/lastObservedTime"),
            Some(field(o, "lastTimestamp", "deprecatedLastTimestamp")),
            o.get("eventTime"),
        ]
        .into_iter()
        .flatten()
        .find(|v| v.as_str().is_some_and(|s| !s.is_empty()));
        age_cell(t, now)
    };
    let first_seen = move |o: &Value| {
        let t = [
            Some(field(o, "firstTimestamp", "deprecatedFirstTimestamp")),
            o.get("eventTime"),
        ]
        .into_iter()
        .flatten()
        .find(|v| v.as_str().is_some_and(|s| !s.is_empty()));
        age_cell(t, now)
    };
    let text = |v: &Value| json!(v.as_str().unwrap_or(""));
    vec![
        (
            column("Last Seen", "string", "", "The time at which the most recent occurrence of this event was recorded.", 0),
            Box::new(last_seen),
        ),
        (
            column("Type", "string", "", "Type of this event (Normal, Warning).", 0),
            Box::new(move |o: &Value| text(&o["type"])),
        ),
        (
            column("Reason", "string", "", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.", 0),
            Box::new(move |o: &Value| text(&o["reason"])),
        ),
        (
            column("Object", "string", "", "The object that this event is about.", 0),
            Box::new(|o: &Value| {
                let r = field(o, "involvedObject", "regarding");
                json!(format!(
                    "{}/{}",
                    r["kind"].as_str().unwrap_or("").to_ascii_lowercase(),
                    r["name"].as_str().unwrap_or("")
                ))
            }),
        ),
        (
            column("Subobject", "string", "", "The field of the object that this event is about.", 1),
            Box::new(move |o: &Value| text(&field(o, "involvedObject", "regarding")["fieldPath"])),
        ),
        (
            column("Source", "string", "", "The component reporting this event.", 1),
            Box::new(move |o: &Value| {
                let component = &field(o, "source", "deprecatedSource")["component"];
                match component.as_str() {
                    Some(c) if !c.is_empty() => json!(c),
                    _ => text(field(o, "reportingComponent", "reportingController")),
                }
            }),
        ),
        (
            column("Message", "string", "", "A human-readable description of the status of this operation.", 0),
            Box::new(move |o: &Value| text(field(o, "message", "note"))),
        ),
        (
            column("First Seen", "string", "", "The time at which the event was first recorded.", 1),
            Box::new(first_seen),
        ),
        (
            column("Count", "string", "", "The number of times this event has occurred.", 1),
            Box::new(|o: &Value| {
                let n = o
                    .pointer("/series/count")
                    .or_else(|| Some(field(o, "count", "deprecatedCount")))
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                json!(n.to_string())
            }),
        ),
        (
            column("Name", "string", "name", "Name must be unique within a namespace.", 1),
            Box::new(|o: &Value| o["metadata"]["name"].clone()),
        ),
    ]
}

/// A meta.k8s.io Table of `items` with these columns.
fn rows_table(
    columns: Vec<Column>,
    items: &[Value],
    revision: Option<u64>,
    version: &str,
    include_object: &str,
) -> Value {
    let (columns, cells): (Vec<Value>, Vec<_>) = columns.into_iter().unzip();
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells.iter().map(|f| f(o)).collect::<Vec<_>>()});
            match include_object {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => row["object"] = partial(o, version),
            }
            row
        })
        .collect();
    let mut metadata = json!({});
    if let Some(r) = revision {
        metadata["resourceVersion"] = json!(r.to_string());
    }
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `['a']`, `[0]`, `[*]`,
/// and filters `[?(@.type=="Ready")]` (with `==` or `!=`, or an existence test).
pub fn jsonpath<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut current = vec![root];
    let chars: Vec<char> = path.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                    end += 1;
                }
                let field: String = chars[start..end].iter().collect();
                if !field.is_empty() {
                    current = current
                        .into_iter()
                        .filter_map(|v| if field == "*" { None } else { v.get(&field) })
                        .collect();
                }
                i = end;
            }
            '[' => {
                // Find the matching ']' (filters may contain brackets inside quotes).
                let mut depth = 0;
                let mut end = i;
                let mut quote: Option<char> = None;
                while end < chars.len() {
                    let c = chars[end];
                    match quote {
                        Some(q) if c == q => quote = None,
                        Some(_) => {}
                        None if c == '"' || c == '\'' => quote = Some(c),
                        None if c == '[' => depth += 1,
                        None if c == ']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        None => {}
                    }
                    end += 1;
                }
                let inner: String = chars[i + 1..end.min(chars.len())].iter().collect();
                let inner = inner.trim();
                current = current
                    .into_iter()
                    .flat_map(|v| bracket(v, inner))
                    .collect();
                i = end + 1;
            }
            _ => return Vec::new(),
        }
    }
    current
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(s)
}

fn bracket<'a>(v: &'a Value, inner: &str) -> Vec<&'a Value> {
    if inner == "*" {
        return match v {
            Value::Array(a) => a.iter().collect(),
            Value::Object(m) => m.values().collect(),
            _ => Vec::new(),
        };
    }
    if let Ok(i) = inner.parse::<i64>() {
        let Some(a) = v.as_array() else {
            return Vec::new();
        };
        let idx = if i < 0 { a.len() as i64 + i } else { i };
        return usize::try_from(idx)
            .ok()
            .and_then(|i| a.get(i))
            .into_iter()
            .collect();
    }
    if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        let Some(items) = v.as_array() else {
            return Vec::new();
        };
        let (lhs, op, rhs) = if let Some((l, r)) = filter.split_once("==") {
            (l, Some(true), Some(r))
        } else if let Some((l, r)) = filter.split_once("!=") {
            (l, Some(false), Some(r))
        } else {
            (filter, None, None)
        };
        let lhs = lhs.trim().strip_prefix('@').unwrap_or(lhs.trim());
        return items
            .iter()
            .filter(|item| {
                let found = jsonpath(item, lhs).into_iter().next();
                match (op, rhs) {
                    (Some(eq), Some(rhs)) => {
                        let want = unquote(rhs);
                        let got = match found {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => return !eq,
                        };
                        (got == want) == eq
                    }
                    _ => found.is_some(),
                }
            })
            .collect();
    }
    v.get(unquote(inner)).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::builtin_types;

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(None).unwrap(), Shape::Full);
        assert_eq!(negotiate(Some("application/json")).unwrap(), Shape::Full);
        assert_eq!(negotiate(Some("*/*")).unwrap(), Shape::Full);
        assert_eq!(
            negotiate(Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")).unwrap(),
            Shape::Table("v1")
        );
        assert_eq!(
            negotiate(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
            ))
            .unwrap(),
            Shape::Metadata("v1")
        );
        assert_eq!(
            negotiate(Some(
                "application/vnd.kubernetes.protobuf, application/json"
            ))
            .unwrap(),
            Shape::Full
        );
        assert_eq!(
            negotiate(Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")).unwrap(),
            Shape::Full
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf"))
                .unwrap_err()
                .code,
            406
        );
    }

    #[test]
    fn jsonpath_subset() {
        let o = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "Accepted", "status": "True", "n": 2}
        ], "nodes": 3}, "metadata": {"labels": {"a.b/c": "x"}}});
        let first = |p: &str| jsonpath(&o, p).first().map(|v| (*v).clone());
        assert_eq!(first(".status.nodes"), Some(json!(3)));
        assert_eq!(
            first(".status.conditions[?(@.type==\"Accepted\")].status"),
            Some(json!("True"))
        );
        assert_eq!(
            first(".status.conditions[?(@.type=='Ready')].status"),
            Some(json!("False"))
        );
        assert_eq!(
            first(".status.conditions[?(@.type!=\"Ready\")].n"),
            Some(json!(2))
        );
        assert_eq!(first(".status.conditions[1].type"), Some(json!("Accepted")));
        assert_eq!(
            first(".status.conditions[-1].type"),
            Some(json!("Accepted"))
        );
        assert_eq!(jsonpath(&o, ".status.conditions[*].type").len(), 2);
        assert_eq!(first(".metadata.labels['a.b/c']"), Some(json!("x")));
        assert_eq!(first("{.status.nodes}"), Some(json!(3)));
        assert_eq!(first(".status.missing"), None);
    }

    #[test]
    fn tables_and_metadata() {
        let mut rt = builtin_types()
            .into_iter()
            .find(|t| t.plural == "pods")
            .unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "n", "creationTimestamp": "1970-01-01T00:00:00Z"},
                         "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running"}});
        let t = table(
            &rt,
            "v1",
            std::slice::from_ref(&pod),
            Some(7),
            "v1",
            "Metadata",
            30,
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["p", "0/1", "Running", "0", "30s"])
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        rt.versions[0].printer_columns = vec![
            json!({"name": "Phase", "type": "string", "jsonPath": ".status.phase"}),
            json!({"name": "Missing", "type": "integer", "jsonPath": ".status.nope"}),
            json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
        ];
        let t = table(
            &rt,
            "v1",
            std::slice::from_ref(&pod),
            None,
            "v1",
            "None",
            200,
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["p", "Running", null, "3m20s"])
        );
        assert!(t["rows"][0].get("object").is_none());
        let l = list(&rt, "v1", vec![pod], 9, Shape::Metadata("v1"), "", 0);
        assert_eq!(l["kind"], "PartialObjectMetadataList");
        assert_eq!(l["items"][0]["metadata"]["name"], "p");
        assert!(l["items"][0].get("spec").is_none());
    }
}
