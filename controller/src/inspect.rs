//! `bootes-controller inspect`: what is in etcd, decoded for operators.
//!
//! A pure core turns the key/values under the prefix into a
//! `serde_json::Value` ([`Store::decode`], then [`nodes`], [`groups`],
//! [`snapshot`], [`diff`]); a thin shell ([`run`]) reads etcd and prints the
//! value as YAML or JSON. Every etcd value and every `google.protobuf.Any`
//! inside a resource is decoded with the Envoy descriptor pool. Values that
//! do not decode are reported per key (in `errors`), never a crash.
//!
//! Secret material is redacted unless asked for: every field Envoy marks
//! `(udpa.annotations.sensitive)` (private keys, passwords, session ticket
//! keys, generic secrets, …), inside `Any` payloads too, shows as
//! `"[redacted]"`, as in Envoy's own `/config_dump`.
//!
//! Output is stable: objects have sorted keys, lists are sorted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use bootes_proto::sealed::SecretKeys;
use bootes_proto::{envoy, store, values, version, Key, Keys, ResourceType};
use prost_reflect::{DynamicMessage, SerializeOptions};
use serde_json::{json, Map, Value};

use crate::cli::{InspectArgs, InspectCommand, InspectOutput};
use bootes_core::model::ObjectKey;
use bootes_core::xref::{self, BootstrapClusters, Gaps};

use bootes_proto::redact::{redact, REDACTED};

/// Named-subscription types with at most this many resources are checked for
/// an ACK of a subset of them (a node subscribed to fewer names than its
/// snapshot has is still in sync).
const MAX_SUBSET_CHECK: usize = 12;

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Show secret material instead of `[redacted]`.
    pub show_secrets: bool,
}

/// An error of the command itself (not of a stored value).
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("node {0:?} has no binding under nodes/ (see `inspect nodes`)")]
    NoSuchNode(String),
    #[error("node {node:?}: its binding {key} cannot be read: {error}")]
    BadBinding {
        node: String,
        key: String,
        error: String,
    },
    #[error("node {node:?} is bound to snapshot {snapshot:?}, which is missing")]
    MissingSnapshot { node: String, snapshot: String },
    #[error("node {node:?}: snapshot {key} cannot be read: {error}")]
    BadSnapshot {
        node: String,
        key: String,
        error: String,
    },
}

/// The decoded contents of the prefix.
#[derive(Debug, Default)]
pub struct Store {
    /// Node ID → binding.
    pub nodes: BTreeMap<String, store::NodeBinding>,
    /// `<namespace>/<group>` → snapshot.
    pub snapshots: BTreeMap<String, store::Snapshot>,
    /// Node ID → replica → status.
    pub statuses: BTreeMap<String, BTreeMap<String, store::NodeStatus>>,
    /// Values that could not be read: key → why.
    pub errors: BTreeMap<String, String>,
    /// Clusters the Envoys' bootstrap defines (`--bootstrap-clusters`):
    /// references to them count as resolved.
    pub bootstrap: BootstrapClusters,
    keys: Keys,
}

impl Store {
    /// Decodes every key/value under the prefix of `keys` as every reader
    /// does (`bootes_proto::values`): a value refused is in `errors` with the
    /// verdict the xds-servers and the controller give it. With `secrets`,
    /// sealed resources are opened; without, they show as encrypted.
    pub fn decode<K, V>(
        keys: &Keys,
        kvs: impl IntoIterator<Item = (K, V)>,
        secrets: Option<&SecretKeys>,
    ) -> Self
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut out = Store {
            keys: keys.clone(),
            ..Default::default()
        };
        for (key, value) in kvs {
            let key = String::from_utf8_lossy(key.as_ref()).into_owned();
            let value = value.as_ref();
            match keys.parse(&key) {
                Some(Key::Node(node)) => match values::binding(value) {
                    Ok(b) => {
                        out.nodes.insert(node.to_string(), b);
                    }
                    Err(e) => {
                        out.errors.insert(key.clone(), e.to_string());
                    }
                },
                Some(Key::Snapshot(name)) => match values::snapshot(name, value, secrets) {
                    Ok(s) => {
                        out.snapshots.insert(name.to_string(), s);
                    }
                    Err(e) => {
                        out.errors.insert(key.clone(), e.to_string());
                    }
                },
                Some(Key::Status { node, replica }) => match values::status(node, replica, value) {
                    Ok(s) => {
                        out.statuses
                            .entry(node.to_string())
                            .or_default()
                            .insert(replica.to_string(), s);
                    }
                    Err(e) => {
                        out.errors.insert(key.clone(), e.to_string());
                    }
                },
                Some(Key::Leader) => {}
                None => {
                    out.errors.insert(
                        key.clone(),
                        "key outside the Bootes layout (nodes/, snapshots/, status/, leader)"
                            .to_string(),
                    );
                }
            }
        }
        out
    }

    /// The error of the value at `key`, if it could not be read.
    fn error_of(&self, key: &str) -> Option<&String> {
        self.errors.get(key)
    }
}

/// `CDS`, `EDS`, …, or the type URL itself for a type Bootes does not know.
fn type_label(type_url: &str) -> String {
    ResourceType::from_type_url(type_url)
        .map(|t| t.short_name().to_string())
        .unwrap_or_else(|| type_url.to_string())
}

/// Sort key of a type URL: make-before-break order, unknown types last.
fn type_order(type_url: &str) -> (usize, String) {
    let pos = ResourceType::from_type_url(type_url)
        .and_then(|t| ResourceType::ALL.iter().position(|x| *x == t))
        .unwrap_or(usize::MAX);
    (pos, type_url.to_string())
}

fn errors_value(errors: &BTreeMap<String, String>) -> Value {
    Value::Array(
        errors
            .iter()
            .map(|(key, error)| json!({"key": key, "error": error}))
            .collect(),
    )
}

fn object_ref(o: &store::ObjectRef) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!(o.kind));
    m.insert("namespace".into(), json!(o.namespace));
    m.insert("name".into(), json!(o.name));
    if !o.uid.is_empty() {
        m.insert("uid".into(), json!(o.uid));
    }
    if o.generation != 0 {
        m.insert("generation".into(), json!(o.generation));
    }
    Value::Object(m)
}

fn resource_counts(s: &store::Snapshot) -> Value {
    let mut m = Map::new();
    for t in &s.types {
        m.insert(type_label(&t.type_url), json!(t.resources.len()));
    }
    Value::Object(m)
}

// ---------------------------------------------------------------------------
// nodes

/// `inspect nodes`: every node with its binding, resource counts and, per
/// xds-server replica it is connected to, what it ACKed and NACKed.
pub fn nodes(store: &Store) -> Value {
    let ids: BTreeSet<&String> = store.nodes.keys().chain(store.statuses.keys()).collect();
    let mut errors = store.errors.clone();
    let mut list = Vec::new();
    for id in ids {
        let mut m = Map::new();
        m.insert("node".into(), json!(id));
        let binding = store.nodes.get(id);
        let snapshot = binding.and_then(|b| store.snapshots.get(&b.snapshot));
        match binding {
            Some(b) => {
                m.insert("snapshot".into(), json!(b.snapshot));
                m.insert("namespace".into(), json!(b.namespace));
                if !b.pod_name.is_empty() {
                    m.insert("pod".into(), json!(b.pod_name));
                }
                if !b.pod_uid.is_empty() {
                    m.insert("pod_uid".into(), json!(b.pod_uid));
                }
                match snapshot {
                    Some(s) => {
                        m.insert("snapshot_version".into(), json!(s.version));
                        m.insert("resources".into(), resource_counts(s));
                    }
                    None => {
                        let key = store.keys.snapshot(&b.snapshot);
                        if !errors.contains_key(&key) {
                            errors.insert(
                                store.keys.node(id),
                                format!("bound to snapshot {:?}, which is missing", b.snapshot),
                            );
                        }
                    }
                }
            }
            None => {
                // Connected to an xds-server, but no binding (yet): the
                // xds-server keeps its stream waiting.
                m.insert("snapshot".into(), Value::Null);
            }
        }
        let replicas = store.statuses.get(id);
        let xds: Vec<Value> = replicas
            .into_iter()
            .flatten()
            .map(|(replica, status)| replica_state(replica, status, snapshot))
            .collect();
        m.insert("state".into(), json!(node_state(binding.is_some(), &xds)));
        m.insert("xds".into(), Value::Array(xds));
        list.push(Value::Object(m));
    }
    json!({"nodes": list, "errors": errors_value(&errors)})
}

/// Overall state of a node: `unbound`, `disconnected` (no xds-server has a
/// record of it), or the worst of its replicas' states.
fn node_state(bound: bool, xds: &[Value]) -> &'static str {
    if !bound {
        return "unbound";
    }
    let states: Vec<&str> = xds.iter().filter_map(|r| r["state"].as_str()).collect();
    if states.is_empty() {
        "disconnected"
    } else if states.contains(&"nacked") {
        "nacked"
    } else if states.contains(&"stale") {
        "stale"
    } else {
        "synced"
    }
}

/// What one node ACKed and NACKed on one replica, type by type, against its
/// snapshot.
fn replica_state(
    replica: &str,
    status: &store::NodeStatus,
    snapshot: Option<&store::Snapshot>,
) -> Value {
    let mut types: BTreeMap<(usize, String), Value> = BTreeMap::new();
    for ts in &status.types {
        let current = snapshot.and_then(|s| s.types.iter().find(|t| t.type_url == ts.type_url));
        let state = if acked_current(&ts.type_url, &ts.acked_version, current) {
            "synced"
        } else if !ts.nacked_version.is_empty() {
            "nacked"
        } else {
            "stale"
        };
        let mut m = Map::new();
        m.insert("type".into(), json!(type_label(&ts.type_url)));
        m.insert(
            "snapshot_version".into(),
            current.map_or(Value::Null, |t| json!(t.version)),
        );
        m.insert("acked_version".into(), json!(ts.acked_version));
        m.insert("state".into(), json!(state));
        if !ts.nacked_version.is_empty() || !ts.nack_detail.is_empty() {
            let mut resources = ts.nacked_resources.clone();
            resources.sort();
            m.insert(
                "nack".into(),
                json!({
                    "version": ts.nacked_version,
                    "detail": ts.nack_detail,
                    "resources": resources,
                }),
            );
        }
        types.insert(type_order(&ts.type_url), Value::Object(m));
    }
    let states: Vec<&str> = types.values().filter_map(|t| t["state"].as_str()).collect();
    let state = if states.contains(&"nacked") {
        "nacked"
    } else if states.contains(&"stale") {
        "stale"
    } else {
        "synced"
    };
    json!({
        "replica": replica,
        "state": state,
        "types": types.into_values().collect::<Vec<_>>(),
    })
}

/// Whether `acked` (the xds-server's hash over the (name, version) pairs the
/// node ACKed) is the snapshot's current content of that type: all of it, or,
/// for types clients subscribe to by name (RDS, EDS, …), the part it asked for.
fn acked_current(type_url: &str, acked: &str, current: Option<&store::TypeResources>) -> bool {
    let Some(current) = current else {
        return acked == version::of_set([]);
    };
    if acked == current.version {
        return true;
    }
    let named = ResourceType::from_type_url(type_url).is_some_and(|t| !t.sotw_full_state());
    let n = current.resources.len();
    if !named || n > MAX_SUBSET_CHECK {
        return false;
    }
    (0u32..(1 << n)).any(|mask| {
        let subset = current
            .resources
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, r)| (r.name.as_str(), r.version.as_str()));
        version::of_set(subset) == acked
    })
}

// ---------------------------------------------------------------------------
// groups

/// `inspect groups`: every snapshot with its objects and bound nodes.
pub fn groups(store: &Store) -> Value {
    let mut bound: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut errors = store.errors.clone();
    for (node, b) in &store.nodes {
        bound.entry(b.snapshot.as_str()).or_default().push(node);
        let key = store.keys.snapshot(&b.snapshot);
        if !store.snapshots.contains_key(&b.snapshot) && !errors.contains_key(&key) {
            errors.insert(
                store.keys.node(node),
                format!("bound to snapshot {:?}, which is missing", b.snapshot),
            );
        }
    }
    let list: Vec<Value> = store
        .snapshots
        .iter()
        .map(|(name, s)| {
            let mut objects: Vec<&store::ObjectRef> = s.objects.iter().collect();
            objects.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
            let mut types: Vec<&store::TypeResources> = s.types.iter().collect();
            types.sort_by_key(|t| type_order(&t.type_url));
            json!({
                "snapshot": name,
                "namespace": s.namespace,
                "group": s.group,
                "version": s.version,
                "objects": objects.into_iter().map(object_ref).collect::<Vec<_>>(),
                "types": types.into_iter().map(|t| json!({
                    "type": type_label(&t.type_url),
                    "version": t.version,
                    "resources": t.resources.len(),
                })).collect::<Vec<_>>(),
                "nodes": bound.get(name.as_str()).cloned().unwrap_or_default(),
                "unresolved": unresolved(s, bound.get(name.as_str()).map(Vec::as_slice).unwrap_or_default(), &store.bootstrap),
            })
        })
        .collect();
    json!({"groups": list, "errors": errors_value(&errors)})
}

// ---------------------------------------------------------------------------
// snapshot

/// The binding and snapshot of `node`, or why there is none.
fn lookup<'a>(
    store: &'a Store,
    node: &str,
) -> Result<(&'a store::NodeBinding, &'a store::Snapshot), InspectError> {
    let key = store.keys.node(node);
    let Some(binding) = store.nodes.get(node) else {
        return Err(match store.error_of(&key) {
            Some(e) => InspectError::BadBinding {
                node: node.into(),
                key,
                error: e.clone(),
            },
            None => InspectError::NoSuchNode(node.into()),
        });
    };
    let snap_key = store.keys.snapshot(&binding.snapshot);
    match store.snapshots.get(&binding.snapshot) {
        Some(s) => Ok((binding, s)),
        None => Err(match store.error_of(&snap_key) {
            Some(e) => InspectError::BadSnapshot {
                node: node.into(),
                key: snap_key,
                error: e.clone(),
            },
            None => InspectError::MissingSnapshot {
                node: node.into(),
                snapshot: binding.snapshot.clone(),
            },
        }),
    }
}

/// `inspect snapshot NODE_ID`: everything `node` receives, decoded.
pub fn snapshot(store: &Store, node: &str, options: Options) -> Result<Value, InspectError> {
    let (binding, s) = lookup(store, node)?;
    let mut errors = BTreeMap::new();
    let snap_key = store.keys.snapshot(&binding.snapshot);
    let mut types: Vec<&store::TypeResources> = s.types.iter().collect();
    types.sort_by_key(|t| type_order(&t.type_url));
    let types: Vec<Value> = types
        .into_iter()
        .map(|t| {
            let mut resources: Vec<&store::Resource> = t.resources.iter().collect();
            resources.sort_by(|a, b| a.name.cmp(&b.name));
            let resources: Vec<Value> = resources
                .into_iter()
                .map(|r| {
                    let mut m = Map::new();
                    m.insert("type".into(), json!(type_label(&t.type_url)));
                    m.insert("name".into(), json!(r.name));
                    m.insert("version".into(), json!(r.version));
                    m.insert(
                        "source".into(),
                        r.source.as_ref().map_or(Value::Null, object_ref),
                    );
                    if let Some(sealed) = &r.sealed {
                        // Without the key file: that it is encrypted, and
                        // under which key, nothing more.
                        m.insert("config".into(), Value::Null);
                        m.insert(
                            "encrypted".into(),
                            json!({"cipher": "AES-256-GCM", "key_id": sealed.key_id}),
                        );
                        return Value::Object(m);
                    }
                    match decode_resource(&t.type_url, &r.value, options) {
                        Ok(v) => {
                            m.insert("config".into(), v);
                        }
                        Err(e) => {
                            errors.insert(
                                format!("{snap_key} ({} {})", type_label(&t.type_url), r.name),
                                e.clone(),
                            );
                            m.insert("config".into(), Value::Null);
                            m.insert("error".into(), json!(e));
                        }
                    }
                    Value::Object(m)
                })
                .collect();
            json!({
                "type": type_label(&t.type_url),
                "type_url": t.type_url,
                "version": t.version,
                "resources": resources,
            })
        })
        .collect();
    let mut objects: Vec<&store::ObjectRef> = s.objects.iter().collect();
    objects.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    Ok(json!({
        "node": node,
        "snapshot": binding.snapshot,
        "namespace": s.namespace,
        "group": s.group,
        "version": s.version,
        "objects": objects.into_iter().map(object_ref).collect::<Vec<_>>(),
        "unresolved": unresolved(s, &[node], &store.bootstrap),
        "types": types,
        "errors": errors_value(&errors),
    }))
}

/// The references of a snapshot's resources that the snapshot itself (or
/// the bootstrap) does not provide to `nodes`: what the controller reports
/// as `ResolvedRefs=False`, read back from etcd with the same
/// [`xref`] code. One entry per object and name.
fn unresolved(s: &store::Snapshot, nodes: &[&str], bootstrap: &BootstrapClusters) -> Vec<Value> {
    let pool = envoy::descriptor_pool();
    let nodes: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    // Every resource's references first: what the group receives includes
    // its listeners' addresses.
    let mut decoded = Vec::new();
    for t in &s.types {
        let Some(ty) = ResourceType::from_type_url(&t.type_url) else {
            continue;
        };
        let desc = pool
            .get_message_by_name(ty.message_name())
            .filter(|_| xref::may_refer(ty));
        for r in &t.resources {
            let references = match (&desc, &r.sealed) {
                (Some(desc), None) => {
                    match DynamicMessage::decode(desc.clone(), r.value.as_slice()) {
                        Ok(message) => xref::references(ty, &message),
                        Err(_) => Vec::new(), // reported as a decoding error elsewhere
                    }
                }
                _ => Vec::new(),
            };
            decoded.push((ty, r, references));
        }
    }
    let mut received = xref::Received::default();
    for (ty, r, references) in &decoded {
        received.add(*ty, &r.name, references);
    }
    let mut out = Vec::new();
    for (ty, r, references) in &decoded {
        if references.is_empty() {
            continue;
        }
        let mut gaps = Gaps::default();
        gaps.add_group(references, &nodes, |reference| {
            received.resolves(&r.name, reference, |c| bootstrap.contains(&s.namespace, c))
        });
        // Inspect sees snapshots, not objects: "no object provides it to
        // these nodes" is what it can say.
        for u in gaps.report(*ty, &s.namespace, |_, _| true) {
            out.push(json!({
                "object": r.source.as_ref().map_or(Value::Null, object_ref),
                "path": u.problem.path,
                "problem": u.problem.message,
                "envoy_rejects": u.envoy_rejects,
            }));
        }
    }
    out
}

/// Decodes one resource value (an encoded Envoy message of `type_url`) to
/// proto3 JSON with proto field names, secret material redacted.
pub fn decode_resource(type_url: &str, value: &[u8], options: Options) -> Result<Value, String> {
    let pool = envoy::descriptor_pool();
    let name = type_url.rsplit_once('/').map_or(type_url, |(_, n)| n);
    let desc = pool
        .get_message_by_name(name)
        .ok_or_else(|| format!("type {type_url:?} is not in the Envoy API"))?;
    let mut message = DynamicMessage::decode(desc.clone(), value)
        .map_err(|e| format!("not a valid {name}: {e}"))?;
    if let Some(f) = message.unknown_fields().next() {
        return Err(format!(
            "not a valid {name}: field number {} is not in the Envoy API",
            f.number()
        ));
    }
    if !options.show_secrets {
        redact(&mut message).map_err(|e| format!("{name}: {e}"))?;
    }
    let json = message
        .serialize_with_options(
            serde_json::value::Serializer,
            &SerializeOptions::new().use_proto_field_name(true),
        )
        .map_err(|e| format!("{name} cannot be shown as JSON: {e}"))?;
    Ok(if options.show_secrets {
        json
    } else {
        unmark_redacted_bytes(json)
    })
}

/// Redacted `bytes` fields come out of JSON as base64 of `[redacted]`: show
/// them as `[redacted]`.
fn unmark_redacted_bytes(value: Value) -> Value {
    let marker = base64::engine::general_purpose::STANDARD.encode(REDACTED);
    fn walk(v: Value, marker: &str) -> Value {
        match v {
            Value::String(s) if s == marker => Value::String(REDACTED.into()),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| walk(v, marker)).collect())
            }
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, walk(v, marker))).collect())
            }
            other => other,
        }
    }
    walk(value, &marker)
}

// ---------------------------------------------------------------------------
// diff

/// `inspect diff A B`: per type, the resources only A has, only B has, and
/// those both have in different versions.
pub fn diff(store: &Store, a: &str, b: &str) -> Result<Value, InspectError> {
    let (ba, sa) = lookup(store, a)?;
    let (bb, sb) = lookup(store, b)?;
    type Resources<'a> = BTreeMap<&'a str, &'a store::Resource>;
    fn index(s: &store::Snapshot) -> BTreeMap<&str, Resources<'_>> {
        s.types
            .iter()
            .map(|t| {
                (
                    t.type_url.as_str(),
                    t.resources.iter().map(|r| (r.name.as_str(), r)).collect(),
                )
            })
            .collect()
    }
    let (ia, ib) = (index(sa), index(sb));
    let mut urls: Vec<&str> = ia.keys().chain(ib.keys()).copied().collect();
    urls.sort_by_key(|u| type_order(u));
    urls.dedup();
    let empty = Resources::new();
    let mut types = Vec::new();
    for url in urls {
        let (ra, rb) = (ia.get(url).unwrap_or(&empty), ib.get(url).unwrap_or(&empty));
        let entry = |r: &store::Resource| {
            json!({
                "name": r.name,
                "version": r.version,
                "source": r.source.as_ref().map_or(Value::Null, object_ref),
            })
        };
        let only_a: Vec<Value> = ra
            .iter()
            .filter(|(n, _)| !rb.contains_key(*n))
            .map(|(_, r)| entry(r))
            .collect();
        let only_b: Vec<Value> = rb
            .iter()
            .filter(|(n, _)| !ra.contains_key(*n))
            .map(|(_, r)| entry(r))
            .collect();
        let changed: Vec<Value> = ra
            .iter()
            .filter_map(|(n, x)| {
                let y = rb.get(n)?;
                (x.version != y.version).then(|| {
                    json!({
                        "name": n,
                        "a": {"version": x.version, "source": x.source.as_ref().map_or(Value::Null, object_ref)},
                        "b": {"version": y.version, "source": y.source.as_ref().map_or(Value::Null, object_ref)},
                    })
                })
            })
            .collect();
        if only_a.is_empty() && only_b.is_empty() && changed.is_empty() {
            continue;
        }
        types.push(json!({
            "type": type_label(url),
            "only_in_a": only_a,
            "only_in_b": only_b,
            "different": changed,
        }));
    }
    Ok(json!({
        "a": {"node": a, "snapshot": ba.snapshot, "version": sa.version},
        "b": {"node": b, "snapshot": bb.snapshot, "version": sb.version},
        "identical": types.is_empty(),
        "types": types,
    }))
}

// ---------------------------------------------------------------------------
// output and the etcd shell

/// The value as YAML or JSON text (ending with a newline).
pub fn render(value: &Value, output: InspectOutput) -> String {
    match output {
        InspectOutput::Json => {
            let mut s = serde_json::to_string_pretty(value).expect("a JSON value serializes");
            s.push('\n');
            s
        }
        InspectOutput::Yaml => serde_yaml::to_string(value).expect("a JSON value is valid YAML"),
    }
}

/// Runs `inspect`: reads the prefix once and prints the answer on stdout.
/// Garbage values are reported in the output (`errors`) and on stderr.
pub async fn run(args: InspectArgs) -> anyhow::Result<std::process::ExitCode> {
    let common = &args.common;
    let client = bootes_etcd::connect::connect(
        &common
            .etcd
            .config()?
            .with_connect_timeout(Duration::from_secs(5))
            .with_request_timeout(Some(Duration::from_secs(30))),
    )
    .await
    .with_context(|| {
        format!(
            "connecting to etcd at {}",
            common.etcd.etcd_endpoints.join(",")
        )
    })?;
    let options = Options {
        show_secrets: common.show_secrets,
    };
    let mut store = read(&args, &client).await?;
    let value = match &args.command {
        InspectCommand::Nodes => nodes(&store),
        InspectCommand::Groups => groups(&store),
        InspectCommand::Snapshot { node } => snapshot(&store, node, options)?,
        InspectCommand::Diff { a, b } => diff(&store, a, b)?,
        InspectCommand::Rollout {
            objects,
            wait,
            timeout,
            generation,
        } => {
            let deadline = tokio::time::Instant::now() + *timeout;
            let mut last_lines: BTreeMap<ObjectKey, String> = BTreeMap::new();
            loop {
                let standings = rollout::standings(&store, objects, *generation);
                let code = rollout::verdict(&standings);
                if !*wait {
                    break rollout::value(&standings, errors_value(&store.errors));
                }
                // Progress: a line per object whenever it changes.
                for (key, standing) in &standings {
                    let line = standing.line(key, *generation);
                    if last_lines.get(key) != Some(&line) {
                        eprintln!("{line}");
                        last_lines.insert(key.clone(), line);
                    }
                }
                let code = match code {
                    Some(code) => Some(code),
                    None if tokio::time::Instant::now() >= deadline => {
                        eprintln!("timed out after {timeout:?}");
                        Some(rollout::EXIT_TIMEOUT)
                    }
                    None => None,
                };
                if let Some(code) = code {
                    let value = rollout::value(&standings, errors_value(&store.errors));
                    print!("{}", render(&value, common.output));
                    return Ok(std::process::ExitCode::from(code));
                }
                tokio::time::sleep(rollout::POLL).await;
                store = read(&args, &client).await?;
            }
        }
    };
    if let Some(errors) = value["errors"].as_array() {
        for e in errors {
            eprintln!(
                "warning: {}: {}",
                e["key"].as_str().unwrap_or_default(),
                e["error"].as_str().unwrap_or_default()
            );
        }
    }
    print!("{}", render(&value, common.output));
    Ok(std::process::ExitCode::SUCCESS)
}

/// Reads and decodes everything under the prefix.
async fn read(
    args: &InspectArgs,
    client: &bootes_etcd::etcd_client::Client,
) -> anyhow::Result<Store> {
    let common = &args.common;
    let keys = common.etcd.keys();
    let listing = bootes_etcd::list::list(client, keys.prefix())
        .await
        .with_context(|| format!("reading {} from etcd", keys.prefix()))?;
    let secrets = common.etcd.secret_keys()?;
    let mut store = Store::decode(
        &keys,
        listing
            .kvs
            .iter()
            .map(|kv| (kv.key.as_bytes(), kv.value.as_slice())),
        secrets.as_deref(),
    );
    store.bootstrap = crate::cli::bootstrap_clusters(&common.bootstrap_clusters);
    Ok(store)
}

pub mod rollout;
#[cfg(test)]
mod tests;
