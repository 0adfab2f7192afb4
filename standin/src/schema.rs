//! Structural-schema handling of custom resources, as the API server does it:
//! fields not declared in the CRD's `openAPIV3Schema` are pruned (or rejected under
//! `fieldValidation=Strict`), `x-kubernetes-preserve-unknown-fields` keeps them, and
//! values are checked against `type`, `enum` and `required`.

use serde_json::Value;

/// The `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Prune unknown fields silently.
    Ignore,
    /// Prune unknown fields and warn (the server default).
    #[default]
    Warn,
    /// Reject unknown fields.
    Strict,
}

impl FieldValidation {
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(format!(
                "fieldValidation: invalid value {other:?}: must be one of Ignore, Warn, Strict"
            )),
        }
    }
}

/// What checking an object found.
#[derive(Debug, Default, PartialEq)]
pub struct Findings {
    /// Paths of fields not declared in the schema (pruned from the object).
    pub unknown: Vec<String>,
    /// `field: message` lines for values that break the schema.
    pub invalid: Vec<String>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(v: &mut Value, s: &Value, path: &str, root: bool, f: &mut Findings) {
    let preserve = s
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    let int_or_string = s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    if v.is_null() && s.get("nullable").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(want) = s.get("type").and_then(Value::as_str) {
        let got = type_name(v);
        let ok = got == want
            || (want == "number" && got == "integer")
            || (int_or_string && matches!(got, "integer" | "string"));
        if !ok {
            let shown = match v {
                Value::String(x) => format!("{x:?}"),
                Value::Object(_) => "\"object\"".to_string(),
                Value::Array(_) => "\"array\"".to_string(),
                other => other.to_string(),
            };
            f.invalid.push(format!(
                "{path}: Invalid value: {shown}: {path} in body must be of type {want}: \"{got}\""
            ));
            return;
        }
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            let list: Vec<String> = options.iter().map(Value::to_string).collect();
            f.invalid.push(format!(
                "{path}: Unsupported value: {v}: supported values: {}",
                list.join(", ")
            ));
        }
    }
    match v {
        Value::Object(map) => {
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties");
            let mut remove = Vec::new();
            for (key, child) in map.iter_mut() {
                if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child_path = join(path, key);
                if let Some(cs) = props.and_then(|p| p.get(key)) {
                    if child.is_null() && cs.get("nullable").and_then(Value::as_bool) != Some(true)
                    {
                        remove.push(key.clone());
                        continue;
                    }
                    walk(child, cs, &child_path, false, f);
                } else if let Some(a) = additional.filter(|a| a.is_object()) {
                    walk(child, a, &child_path, false, f);
                } else if preserve || additional.and_then(Value::as_bool) == Some(true) {
                    continue;
                } else {
                    f.unknown.push(child_path);
                    remove.push(key.clone());
                }
            }
            for k in remove {
                map.remove(&k);
            }
            if let Some(req) = s.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        f.invalid.push(format!("{}: Required value", join(path, r)));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item, is, &format!("{path}[{i}]"), false, f);
                }
            }
        }
        _ => {}
    }
}

/// Prunes `obj` to what `schema` declares and checks it. Unknown field paths and
/// invalid values are reported; the object keeps only declared (or preserved) fields.
pub fn prune_and_check(obj: &mut Value, schema: &Value) -> Findings {
    let mut f = Findings::default();
    walk(obj, schema, "", true, &mut f);
    f.unknown.sort();
    f.invalid.sort();
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "workloadSelector": {"type": "object", "properties": {
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                        "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "weights": {"type": "array", "items": {"type": "integer"}},
                        "ratio": {"type": "number"},
                        "note": {"type": "string", "nullable": true}
                    }
                },
                "status": {"type": "object", "properties": {"nodes": {"type": "integer"}}}
            }
        })
    }

    #[test]
    fn prunes_unknown_fields_but_keeps_preserved_ones() {
        let mut o = json!({
            "apiVersion": "bootes.io/v1", "kind": "Cluster", "metadata": {"name": "a", "whatever": 1},
            "spec": {"workloadSelectr": {"labels": {}}, "config": {"anything": {"goes": [1]}},
                     "workloadSelector": {"labels": {"app": "x"}}, "port": 80, "ratio": 1,
                     "note": null, "mode": null},
            "extra": true
        });
        let f = prune_and_check(&mut o, &schema());
        assert_eq!(f.unknown, vec!["extra", "spec.workloadSelectr"]);
        assert!(f.invalid.is_empty(), "{:?}", f.invalid);
        assert_eq!(keys(&o), vec!["apiVersion", "kind", "metadata", "spec"]);
        assert_eq!(o["spec"]["config"]["anything"]["goes"], json!([1]));
        assert!(o["spec"].get("workloadSelectr").is_none());
        assert!(o["spec"]["note"].is_null() && o["spec"].get("note").is_some());
        assert!(
            o["spec"].get("mode").is_none(),
            "nulls of non-nullable fields are pruned"
        );
        assert_eq!(o["metadata"]["whatever"], 1);
    }

    #[test]
    fn reports_type_enum_and_required_errors() {
        let mut o = json!({"spec": {"mode": "c", "weights": [1, "x"], "workloadSelector": {"labels": {"a": 1}}},
                           "status": {"nodes": "3"}});
        let f = prune_and_check(&mut o, &schema());
        assert_eq!(
            f.invalid,
            vec![
                "spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\"",
                "spec.weights[1]: Invalid value: \"x\": spec.weights[1] in body must be of type integer: \"string\"",
                "spec.workloadSelector.labels.a: Invalid value: 1: spec.workloadSelector.labels.a in body must be of type string: \"integer\"",
                "status.nodes: Invalid value: \"3\": status.nodes in body must be of type integer: \"string\"",
            ]
        );
        let mut o = json!({"metadata": {"name": "a"}});
        assert_eq!(
            prune_and_check(&mut o, &schema()).invalid,
            vec!["spec: Required value"]
        );
        assert_eq!(FieldValidation::parse(None).unwrap(), FieldValidation::Warn);
        assert_eq!(
            FieldValidation::parse(Some("Strict")).unwrap(),
            FieldValidation::Strict
        );
        assert!(FieldValidation::parse(Some("strict")).is_err());
    }
}
