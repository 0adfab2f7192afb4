//! Events are one resource served at two API versions, as by the real API
//! server: `events.k8s.io/v1` (what kube-runtime's recorder writes) and core
//! `v1` (what `kubectl describe` and `kubectl get events` read). They are
//! stored in the core form; the `events.k8s.io/v1` form renames fields.

use serde_json::{Map, Value};

use crate::types::{ResKey, ResourceType};

pub const GROUP: &str = "events.k8s.io";

/// (events.k8s.io/v1 name, core v1 name) of the fields that differ.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedCount", "count"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedSource", "source"),
    ("reportingController", "reportingComponent"),
];

/// Whether `rt` is `events.k8s.io` events, stored as core events.
pub fn is_events_v1(rt: &ResourceType) -> bool {
    rt.group == GROUP && rt.plural == "events"
}

/// Where objects of `rt` are stored.
pub fn storage_key(rt: &ResourceType) -> ResKey {
    if is_events_v1(rt) {
        ResKey::new("", "events")
    } else {
        rt.key()
    }
}

/// Renames the top-level fields of `obj` named in `RENAMED`: to the core
/// names when `to_core`, else back.
fn rename(obj: Value, to_core: bool) -> Value {
    let Value::Object(fields) = obj else {
        return obj;
    };
    let fields: Map<String, Value> = fields
        .into_iter()
        .map(|(k, v)| {
            let renamed = RENAMED.iter().find_map(|&(v1, core)| {
                let (from, to) = if to_core { (v1, core) } else { (core, v1) };
                (from == k).then_some(to)
            });
            (renamed.map_or(k, str::to_string), v)
        })
        .collect();
    Value::Object(fields)
}

/// An `events.k8s.io/v1` Event in its stored (core v1) form.
pub fn to_core(obj: Value) -> Value {
    let mut obj = rename(obj, true);
    obj["apiVersion"] = "v1".into();
    obj
}

/// A stored (core v1) Event in its `events.k8s.io/v1` form.
pub fn from_core(obj: Value) -> Value {
    rename(obj, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_forms_of_one_event() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "a.1", "namespace": "ns"},
            "regarding": {"kind": "Cluster", "name": "a", "namespace": "ns", "uid": "u"},
            "note": "rejected by envoy-0", "reason": "Rejected", "type": "Warning",
            "reportingController": "bootes-controller", "reportingInstance": "pod-1",
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:01.000000Z"}});
        let core = to_core(v1.clone());
        assert_eq!(core["involvedObject"]["name"], "a");
        assert_eq!(core["message"], "rejected by envoy-0");
        assert_eq!(core["reportingComponent"], "bootes-controller");
        assert_eq!(core["series"]["count"], 2);
        assert_eq!(core["apiVersion"], "v1");
        assert!(core.get("regarding").is_none() && core.get("note").is_none());
        let mut back = from_core(core);
        back["apiVersion"] = v1["apiVersion"].clone();
        assert_eq!(back, v1);
    }
}
