//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902) on `serde_json::Value`.
//!
//! Strategic merge patches and server-side apply are treated as merge patches by the
//! stand-in: lists are replaced, not merged by key.

use serde_json::{Map, Value};

/// Applies an RFC 7386 merge patch in place.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Splits a JSON pointer into unescaped reference tokens.
fn pointer_tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("JSON pointer {pointer:?} must start with '/'"));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn array_index(token: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return Err(format!("invalid array index {token:?}"));
    }
    let i: usize = token
        .parse()
        .map_err(|_| format!("invalid array index {token:?}"))?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > max || (!allow_end && len == 0) {
        return Err(format!("array index {i} out of bounds (length {len})"));
    }
    Ok(i)
}

/// The parent container of the location and the last token.
fn parent_mut<'a>(
    doc: &'a mut Value,
    tokens: &[String],
) -> Result<(&'a mut Value, String), String> {
    let (last, parents) = tokens
        .split_last()
        .ok_or_else(|| "the root cannot be the target of this operation".to_string())?;
    let mut cur = doc;
    for t in parents {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(t)
                .ok_or_else(|| format!("path segment {t:?} does not exist"))?,
            Value::Array(a) => {
                let i = array_index(t, a.len(), false)?;
                &mut a[i]
            }
            _ => {
                return Err(format!(
                    "path segment {t:?} is not inside an object or array"
                ))
            }
        };
    }
    Ok((cur, last.clone()))
}

fn get<'a>(doc: &'a Value, tokens: &[String]) -> Result<&'a Value, String> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m
                .get(t)
                .ok_or_else(|| format!("path {t:?} does not exist"))?,
            Value::Array(a) => &a[array_index(t, a.len(), false)?],
            _ => {
                return Err(format!(
                    "path segment {t:?} is not inside an object or array"
                ))
            }
        };
    }
    Ok(cur)
}

fn add(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    if tokens.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_mut(doc, tokens)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            let i = array_index(&last, a.len(), true)?;
            a.insert(i, value);
        }
        _ => return Err(format!("cannot add {last:?} to a scalar")),
    }
    Ok(())
}

fn remove(doc: &mut Value, tokens: &[String]) -> Result<Value, String> {
    let (parent, last) = parent_mut(doc, tokens)?;
    match parent {
        Value::Object(m) => m
            .remove(&last)
            .ok_or_else(|| format!("path {last:?} does not exist")),
        Value::Array(a) => {
            let i = array_index(&last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err(format!("cannot remove {last:?} from a scalar")),
    }
}

/// Applies an RFC 6902 JSON patch (an array of operations) and returns the result.
/// The input is untouched when any operation fails.
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, String> {
    let ops = ops
        .as_array()
        .ok_or_else(|| "a JSON patch must be an array of operations".to_string())?;
    let mut doc = target.clone();
    for (n, op) in ops.iter().enumerate() {
        let field = |name: &str| -> Result<&Value, String> {
            op.get(name)
                .ok_or_else(|| format!("operation {n}: missing {name:?}"))
        };
        let str_field = |name: &str| -> Result<&str, String> {
            field(name)?
                .as_str()
                .ok_or_else(|| format!("operation {n}: {name:?} must be a string"))
        };
        let path = pointer_tokens(str_field("path")?).map_err(|e| format!("operation {n}: {e}"))?;
        let at = |e: String| format!("operation {n} ({}): {e}", op["op"]);
        match str_field("op")? {
            "add" => add(&mut doc, &path, field("value")?.clone()).map_err(at)?,
            "remove" => {
                remove(&mut doc, &path).map_err(at)?;
            }
            "replace" => {
                get(&doc, &path).map_err(at)?;
                if path.is_empty() {
                    doc = field("value")?.clone();
                } else {
                    remove(&mut doc, &path).map_err(at)?;
                    add(&mut doc, &path, field("value")?.clone()).map_err(at)?;
                }
            }
            "move" => {
                let from = pointer_tokens(str_field("from")?).map_err(at)?;
                if path.len() > from.len() && path[..from.len()] == from[..] {
                    return Err(at("cannot move a value into one of its children".into()));
                }
                let v = remove(&mut doc, &from).map_err(at)?;
                add(&mut doc, &path, v).map_err(at)?;
            }
            "copy" => {
                let from = pointer_tokens(str_field("from")?).map_err(at)?;
                let v = get(&doc, &from).map_err(at)?.clone();
                add(&mut doc, &path, v).map_err(at)?;
            }
            "test" => {
                let actual = get(&doc, &path).map_err(at)?;
                if actual != field("value")? {
                    return Err(at(format!("test failed: value is {actual}")));
                }
            }
            other => return Err(format!("operation {n}: unknown op {other:?}")),
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }

    #[test]
    fn json_patch_operations() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"list": [1, 2, 3]}});
        let out = json_patch(
            &doc,
            &json!([
                {"op": "add", "path": "/metadata/labels/b", "value": "2"},
                {"op": "replace", "path": "/metadata/labels/a", "value": "x"},
                {"op": "remove", "path": "/spec/list/0"},
                {"op": "add", "path": "/spec/list/-", "value": 4},
                {"op": "add", "path": "/spec/list/0", "value": 0},
                {"op": "copy", "from": "/metadata/labels", "path": "/spec/copied"},
                {"op": "move", "from": "/spec/copied/b", "path": "/spec/moved"},
                {"op": "test", "path": "/spec/moved", "value": "2"},
                {"op": "add", "path": "/metadata/annotations", "value": {"x~y/z": "1"}},
                {"op": "replace", "path": "/metadata/annotations/x~0y~1z", "value": "2"}
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "metadata": {"labels": {"a": "x", "b": "2"}, "annotations": {"x~y/z": "2"}},
                "spec": {"list": [0, 2, 3, 4], "copied": {"a": "x"}, "moved": "2"}
            })
        );
    }

    #[test]
    fn json_patch_errors_leave_input_alone() {
        let doc = json!({"a": {"b": 1}, "l": []});
        for bad in [
            json!([{"op": "replace", "path": "/missing", "value": 1}]),
            json!([{"op": "remove", "path": "/a/c"}]),
            json!([{"op": "test", "path": "/a/b", "value": 2}]),
            json!([{"op": "add", "path": "/l/1", "value": 2}]),
            json!([{"op": "add", "path": "/x/y", "value": 2}]),
            json!([{"op": "move", "from": "/a", "path": "/a/b/c"}]),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "path": "a", "value": 1}]),
            json!({"op": "add"}),
        ] {
            assert!(json_patch(&doc, &bad).is_err(), "{bad} should fail");
        }
    }
}
