//! The in-memory object store behind the stand-in: objects by (group, resource,
//! namespace, name), one global revision counter, a bounded event history for watches,
//! CRD registration, and the update rules of the API server (status subresource,
//! generation, resourceVersion preconditions, finalizers, cascading deletes).
//!
//! Everything here is synchronous and free of I/O; the HTTP layer only translates.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, RandomState};

use serde_json::{json, Map, Value};

use super::error::{success_status, ApiError, Subject};
use super::event_versions;
use super::patch::{json_patch, merge_patch};
use super::schema::{prune_and_check, FieldValidation};
use super::selector::Selectors;
use super::time::now_rfc3339;
use super::types::{builtin_types, crd_resource_type, crd_status, ResKey, ResourceType};

/// Namespaces every cluster starts with.
pub const INITIAL_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Watch event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change in the history.
#[derive(Clone, Debug)]
pub struct Event {
    pub revision: u64,
    pub key: ResKey,
    pub kind: EventType,
    /// The object after the change; for a deletion its last state, carrying the
    /// deletion's resourceVersion.
    pub object: Value,
    /// The object before a modification (to tell selector transitions).
    pub previous: Option<Value>,
}

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
}

/// Patch content types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json` (applied as a merge patch)
    Strategic,
    /// `application/json-patch+json`
    Json,
    /// `application/apply-patch+yaml` (server-side apply, applied as a merge patch;
    /// creates the object when absent)
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        Some(match base {
            "application/merge-patch+json" => PatchKind::Merge,
            "application/strategic-merge-patch+json" => PatchKind::Strategic,
            "application/json-patch+json" => PatchKind::Json,
            "application/apply-patch+yaml" | "application/apply-patch+json" => PatchKind::Apply,
            _ => return None,
        })
    }
}

/// A request's resource type, the version it was addressed with, and its namespace
/// (`None`: cluster-scoped type, or all namespaces for list/watch).
#[derive(Clone, Debug)]
pub struct Target {
    pub rt: ResourceType,
    pub version: String,
    pub namespace: Option<String>,
    /// What to do with fields a custom resource's schema does not declare.
    pub field_validation: FieldValidation,
}

impl Target {
    fn subject<'a>(&'a self, name: &'a str) -> Subject<'a> {
        Subject {
            group: &self.rt.group,
            resource: &self.rt.plural,
            name,
        }
    }

    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    /// Where objects of this type are stored.
    pub fn storage(&self) -> ResKey {
        event_versions::storage_key(&self.rt)
    }

    /// A request's object in its stored form.
    fn to_storage(&self, obj: Value) -> Value {
        if event_versions::is_events_v1(&self.rt) {
            event_versions::to_core(obj)
        } else {
            obj
        }
    }

    /// The object as returned for this request: apiVersion of the requested version.
    pub fn present(&self, mut obj: Value) -> Value {
        if event_versions::is_events_v1(&self.rt) {
            obj = event_versions::from_core(obj);
        }
        obj["apiVersion"] = json!(self.rt.api_version(&self.version));
        obj["kind"] = json!(self.rt.kind);
        obj
    }
}

/// What a delete did.
#[derive(Clone, Debug)]
pub enum Deleted {
    /// Removed now: the `Status` to return, and the removed object.
    Gone(Value, Value),
    /// Finalizers pending: the object, now carrying a deletionTimestamp.
    Pending(Value),
}

/// The store.
#[derive(Clone, Debug)]
pub struct Store {
    types: BTreeMap<ResKey, ResourceType>,
    objects: BTreeMap<ResKey, BTreeMap<(String, String), Value>>,
    revision: u64,
    history: VecDeque<Event>,
    history_limit: usize,
    /// Every event with a revision above this is still in the history.
    compacted: u64,
    uid_counter: u64,
    uid_hasher: RandomState,
    /// Warnings of the last write (unknown fields pruned), for `Warning` headers.
    warnings: Vec<String>,
    /// Revision of the latest event per resource; survives compaction.
    last_change: BTreeMap<ResKey, u64>,
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// Lowercase RFC 1123 subdomain (most object names).
fn valid_subdomain(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Lowercase RFC 1123 label (namespace names).
fn valid_label_name(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && valid_subdomain(name)
}

/// Strips strategic-merge-patch directives (`$patch`, `$setElementOrder/…`, …) that
/// a plain merge patch would otherwise store as fields.
fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Parses a request body as JSON, or YAML when it is not JSON.
pub fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8 text"))?;
    serde_yaml::from_str::<Value>(text).map_err(|e| {
        ApiError::bad_request(format!("the request body is neither JSON nor YAML: {e}"))
    })
}

impl Default for Store {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl Store {
    /// A store with the built-in types, the initial namespaces, and a history of at
    /// most `history_limit` events.
    pub fn new(history_limit: usize) -> Self {
        let mut s = Self {
            types: BTreeMap::new(),
            objects: BTreeMap::new(),
            revision: 0,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            uid_counter: 0,
            uid_hasher: RandomState::new(),
            warnings: Vec::new(),
            last_change: BTreeMap::new(),
        };
        for rt in builtin_types() {
            s.types.insert(rt.key(), rt);
        }
        let t = s
            .target("", "v1", "namespaces", None)
            .expect("namespaces are built in");
        for ns in INITIAL_NAMESPACES {
            s.create(&t, json!({"metadata": {"name": ns}}))
                .expect("initial namespaces are valid");
        }
        s
    }

    /// The current (latest) revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The revision at and below which history was dropped.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Every served resource type.
    pub fn types(&self) -> std::collections::btree_map::Values<'_, ResKey, ResourceType> {
        self.types.values()
    }

    /// Looks up a type by group, version and plural (or, with `by_kind`, never).
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .get(&ResKey::new(group, plural))
            .filter(|rt| rt.version(version).is_some())
    }

    /// A request target, if the type is served at that version.
    pub fn target(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> Option<Target> {
        let rt = self.find(group, version, plural)?.clone();
        Some(Target {
            rt,
            version: version.to_string(),
            namespace: namespace.map(str::to_string),
            field_validation: FieldValidation::default(),
        })
    }

    fn next_uid(&mut self) -> String {
        self.uid_counter += 1;
        let a = self.uid_hasher.hash_one((self.uid_counter, 1u8));
        let b = self.uid_hasher.hash_one((self.uid_counter, 2u8));
        let hex = format!("{a:016x}{b:016x}");
        // Shape it like a version 4 UUID.
        format!(
            "{}-{}-4{}-a{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..32]
        )
    }

    fn record(&mut self, key: &ResKey, kind: EventType, object: Value, previous: Option<Value>) {
        self.last_change.insert(key.clone(), self.revision);
        self.history.push_back(Event {
            revision: self.revision,
            key: key.clone(),
            kind,
            object,
            previous,
        });
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.compacted = e.revision;
            }
        }
    }

    /// Drops the whole event history: watches from any earlier revision get 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.revision;
    }

    fn bump(&mut self, obj: &mut Value) {
        self.revision += 1;
        meta_mut(obj).insert("resourceVersion".into(), json!(self.revision.to_string()));
    }

    fn raw(&self, key: &ResKey, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// GET one object.
    pub fn get(&self, t: &Target, name: &str) -> Result<Value, ApiError> {
        self.raw(&t.storage(), t.ns(), name)
            .map(|o| t.present(o.clone()))
            .ok_or_else(|| ApiError::not_found(t.subject(name)))
    }

    /// LIST: matching objects (sorted by namespace, name) and the current revision.
    pub fn list(&self, t: &Target, sel: &Selectors) -> (Vec<Value>, u64) {
        let items = self
            .objects
            .get(&t.storage())
            .into_iter()
            .flatten()
            .filter(|((ns, _), _)| t.namespace.as_deref().is_none_or(|want| want == ns))
            .filter(|(_, o)| sel.matches(o))
            .map(|(_, o)| t.present(o.clone()))
            .collect();
        (items, self.revision)
    }

    /// Fills in and checks apiVersion, kind, namespace and name of a request body.
    fn prepare_body(
        &self,
        t: &Target,
        mut body: Value,
        url_name: Option<&str>,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON or YAML object",
            ));
        }
        let want_api = t.rt.api_version(&t.version);
        match body.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => body["apiVersion"] = json!(want_api),
            Some(v) if v == want_api => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({want_api})"
                )))
            }
        }
        match body.get("kind").and_then(Value::as_str) {
            None | Some("") => body["kind"] = json!(t.rt.kind),
            Some(k) if k == t.rt.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind of the provided object ({k}) does not match the expected kind ({})",
                    t.rt.kind
                )))
            }
        }
        for field in ["labels", "annotations"] {
            if let Some(m) = body.pointer(&format!("/metadata/{field}")) {
                let ok = m.is_null()
                    || m.as_object()
                        .is_some_and(|m| m.values().all(Value::is_string));
                if !ok {
                    return Err(ApiError::bad_request(format!(
                        "metadata.{field} must be a map of strings to strings"
                    )));
                }
            }
        }
        let body_ns = meta_str(&body, "namespace").to_string();
        if t.rt.namespaced {
            let url_ns = t.ns();
            if body_ns.is_empty() {
                meta_mut(&mut body).insert("namespace".into(), json!(url_ns));
            } else if body_ns != url_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        } else {
            meta_mut(&mut body).remove("namespace");
        }
        if let Some(url_name) = url_name {
            match meta_str(&body, "name") {
                "" => {
                    meta_mut(&mut body).insert("name".into(), json!(url_name));
                }
                n if n == url_name => {}
                _ => {
                    return Err(ApiError::bad_request(
                        "the name of the object does not match the name on the URL",
                    ))
                }
            }
        }
        Ok(body)
    }

    /// Label keys (`[prefix/]name`) and values as the API server validates them.
    fn check_labels(&self, t: &Target, name: &str, obj: &Value) -> Result<(), ApiError> {
        let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) else {
            return Ok(());
        };
        let name_part = |n: &str| {
            !n.is_empty()
                && n.len() <= 63
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && n.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        };
        let mut causes = Vec::new();
        for (k, v) in labels {
            let key_ok = match k.split_once('/') {
                Some((prefix, n)) => valid_subdomain(prefix) && name_part(n),
                None => name_part(k),
            };
            if !key_ok {
                causes.push(format!(
                    "metadata.labels: Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                ));
            }
            let v = v.as_str().unwrap_or("");
            if !(v.is_empty() || name_part(v)) {
                causes.push(format!(
                    "metadata.labels: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                ));
            }
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(
                t.subject(name),
                &t.rt.kind,
                &causes.join("\n"),
            ))
        }
    }

    fn check_name(&self, t: &Target, name: &str) -> Result<(), ApiError> {
        let ok = if t.rt.key() == ResKey::namespaces() {
            valid_label_name(name)
        } else {
            valid_subdomain(name)
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::invalid(
                t.subject(name),
                &t.rt.kind,
                &format!(
                    "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 {} must consist of lower case alphanumeric characters, '-'{}, and must start and end with an alphanumeric character",
                    if t.rt.key() == ResKey::namespaces() { "label" } else { "subdomain" },
                    if t.rt.key() == ResKey::namespaces() { "" } else { " or '.'" },
                ),
            ))
        }
    }

    /// The warnings of the writes since the last call.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Prunes a custom resource to its schema and checks it (see [`super::schema`]).
    fn enforce_schema(&mut self, t: &Target, name: &str, obj: &mut Value) -> Result<(), ApiError> {
        if !t.rt.custom {
            return Ok(());
        }
        let Some(schema) = t.rt.version(&t.version).and_then(|v| v.schema.as_ref()) else {
            return Ok(());
        };
        let found = prune_and_check(obj, schema);
        if !found.unknown.is_empty() {
            let unknown: Vec<String> = found
                .unknown
                .iter()
                .map(|p| format!("unknown field {p:?}"))
                .collect();
            match t.field_validation {
                FieldValidation::Strict => {
                    return Err(ApiError::bad_request(format!(
                        "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
                        t.rt.kind,
                        t.version,
                        t.rt.kind,
                        unknown.join(", ")
                    )))
                }
                FieldValidation::Warn => self.warnings.extend(unknown),
                FieldValidation::Ignore => {}
            }
        }
        if !found.invalid.is_empty() {
            return Err(ApiError::invalid(
                t.subject(name),
                &t.rt.kind,
                &found.invalid.join("\n"),
            ));
        }
        Ok(())
    }

    /// POST: creates an object.
    pub fn create(&mut self, t: &Target, body: Value) -> Result<Value, ApiError> {
        let mut obj = t.to_storage(self.prepare_body(t, body, None)?);
        if t.rt.namespaced && t.namespace.is_none() {
            return Err(ApiError::no_route());
        }
        let mut name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            let prefix = meta_str(&obj, "generateName").to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    t.subject(""),
                    &t.rt.kind,
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
            const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let mut n = self.uid_hasher.hash_one((self.uid_counter, "generateName"));
            self.uid_counter += 1;
            let suffix: String = (0..5)
                .map(|_| {
                    let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
                    n /= ALPHABET.len() as u64;
                    c
                })
                .collect();
            name = format!("{prefix}{suffix}");
            meta_mut(&mut obj).insert("name".into(), json!(name));
        }
        self.check_name(t, &name)?;
        self.check_labels(t, &name, &obj)?;
        let key = t.storage();
        if t.rt.namespaced {
            let ns = t.ns();
            if self.raw(&ResKey::namespaces(), "", ns).is_none() {
                return Err(ApiError::not_found(Subject {
                    group: "",
                    resource: "namespaces",
                    name: ns,
                }));
            }
            if self
                .raw(&ResKey::namespaces(), "", ns)
                .is_some_and(|n| !meta_str(n, "deletionTimestamp").is_empty())
            {
                return Err(ApiError {
                    code: 403,
                    reason: "Forbidden",
                    message: format!(
                        "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        t.rt.plural
                    ),
                    details: None,
                });
            }
        }
        if self.raw(&key, t.ns(), &name).is_some() {
            return Err(ApiError::already_exists(t.subject(&name)));
        }
        let now = now_rfc3339();
        if t.rt.has_status(&t.version) {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        {
            let uid = self.next_uid();
            let m = meta_mut(&mut obj);
            m.insert("uid".into(), json!(uid));
            m.insert("creationTimestamp".into(), json!(now));
            m.insert("generation".into(), json!(1));
            for f in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
            ] {
                m.remove(f);
            }
        }
        self.enforce_schema(t, &name, &mut obj)?;
        let mut new_type = None;
        match (key.group.as_str(), key.plural.as_str()) {
            ("", "namespaces") => obj["status"] = json!({"phase": "Active"}),
            ("", "pods") => obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"}),
            _ if key == ResKey::crds() => {
                let rt = crd_resource_type(&obj)
                    .map_err(|causes| ApiError::invalid(t.subject(&name), &t.rt.kind, &causes))?;
                if self
                    .types
                    .get(&rt.key())
                    .is_some_and(|existing| !existing.custom)
                {
                    return Err(ApiError::invalid(
                        t.subject(&name),
                        &t.rt.kind,
                        "spec.names.plural: Invalid value: the resource is built in",
                    ));
                }
                obj["status"] = crd_status(&rt, &obj, &now);
                new_type = Some(rt);
            }
            _ => {}
        }
        let ns = t.ns().to_string();
        Ok(self.store(t, key, (ns, name), obj, None, new_type))
    }

    /// Stores a created (`old` is `None`) or replaced object at a new
    /// revision, records the event, registers the type a CRD defines, and
    /// returns the object as the client sees it.
    fn store(
        &mut self,
        t: &Target,
        key: ResKey,
        id: (String, String),
        mut obj: Value,
        old: Option<Value>,
        new_type: Option<ResourceType>,
    ) -> Value {
        self.bump(&mut obj);
        self.objects
            .entry(key.clone())
            .or_default()
            .insert(id, obj.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(&key, kind, obj.clone(), old);
        if let Some(rt) = new_type {
            self.types.insert(rt.key(), rt);
        }
        t.present(obj)
    }

    /// PUT on the object or its status subresource.
    pub fn replace(
        &mut self,
        t: &Target,
        name: &str,
        sub: Subresource,
        body: Value,
    ) -> Result<Value, ApiError> {
        let key = t.storage();
        let old = self
            .raw(&key, t.ns(), name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(t.subject(name)))?;
        let body = t.to_storage(self.prepare_body(t, body, Some(name))?);
        let body_rv = meta_str(&body, "resourceVersion");
        if !body_rv.is_empty() && body_rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::stale(t.subject(name)));
        }
        let has_status = t.rt.has_status(&t.version);
        let new = match sub {
            Subresource::Status => {
                if !has_status {
                    return Err(ApiError::no_route());
                }
                let mut n = old.clone();
                match body.get("status") {
                    Some(s) if !s.is_null() => n["status"] = s.clone(),
                    _ => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                n
            }
            Subresource::Main => {
                let mut n = body;
                let old_meta = old["metadata"].clone();
                let m = meta_mut(&mut n);
                for f in [
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                ] {
                    match old_meta.get(f) {
                        Some(v) => m.insert(f.into(), v.clone()),
                        None => m.remove(f),
                    };
                }
                if has_status {
                    match old.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            if let Some(o) = n.as_object_mut() {
                                o.remove("status");
                            }
                        }
                    }
                }
                n
            }
        };
        self.commit_update(t, old, new)
    }

    fn spec_changed(old: &Value, new: &Value, ignore_status: bool) -> bool {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("apiVersion");
                m.remove("kind");
                if ignore_status {
                    m.remove("status");
                }
            }
            v
        };
        strip(old) != strip(new)
    }

    fn commit_update(&mut self, t: &Target, old: Value, mut new: Value) -> Result<Value, ApiError> {
        let key = t.storage();
        let name = meta_str(&old, "name").to_string();
        let ns = t.ns().to_string();
        meta_mut(&mut new).insert(
            "resourceVersion".into(),
            old["metadata"]["resourceVersion"].clone(),
        );
        self.enforce_schema(t, &name, &mut new)?;
        self.check_labels(t, &name, &new)?;
        // Objects are stored at the version they were written with; compare at that one.
        new["apiVersion"] = old["apiVersion"].clone();
        let mut new_type = None;
        if key == ResKey::crds() {
            let rt = crd_resource_type(&new)
                .map_err(|causes| ApiError::invalid(t.subject(&name), &t.rt.kind, &causes))?;
            let old_rt = crd_resource_type(&old).ok();
            if old_rt.as_ref().is_some_and(|o| o.key() != rt.key()) {
                return Err(ApiError::invalid(
                    t.subject(&name),
                    &t.rt.kind,
                    "spec.group, spec.names.plural: Invalid value: field is immutable",
                ));
            }
            new["status"] = crd_status(&rt, &new, &now_rfc3339());
            new_type = Some(rt);
        }
        let new_api = t.rt.api_version(&t.version);
        if new == old {
            return Ok(t.present(old));
        }
        new["apiVersion"] = json!(new_api);
        let ignore_status = t.rt.has_status(&t.version);
        if Self::spec_changed(&old, &new, ignore_status) {
            let gen = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(gen));
        }
        let finalized = !meta_str(&new, "deletionTimestamp").is_empty()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        if finalized {
            self.remove_now(&key, &ns, &name, Some(new.clone()));
            return Ok(t.present(new));
        }
        Ok(self.store(t, key, (ns, name), new, Some(old), new_type))
    }

    /// PATCH on the object or its status subresource.
    pub fn patch(
        &mut self,
        t: &Target,
        name: &str,
        sub: Subresource,
        kind: PatchKind,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        let patch = parse_body(body)?;
        let Some(old) = self.raw(&t.storage(), t.ns(), name).cloned() else {
            if kind == PatchKind::Apply && sub == Subresource::Main {
                let mut obj = patch;
                strip_directives(&mut obj);
                let obj = self.prepare_body(t, obj, Some(name))?;
                return self.create(t, obj);
            }
            return Err(ApiError::not_found(t.subject(name)));
        };
        let current = t.present(old);
        let patched = match kind {
            PatchKind::Json => json_patch(&current, &patch).map_err(|e| {
                ApiError::unprocessable(format!("the JSON patch could not be applied: {e}"))
            })?,
            PatchKind::Merge | PatchKind::Strategic | PatchKind::Apply => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                let mut patch = patch;
                if kind != PatchKind::Merge {
                    strip_directives(&mut patch);
                }
                if kind == PatchKind::Apply {
                    // An apply configuration names the object; it does not carry a version
                    // precondition unless it says so.
                    if let Some(m) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("managedFields");
                    }
                }
                let mut doc = current;
                merge_patch(&mut doc, &patch);
                doc
            }
        };
        if !patched.is_object() {
            return Err(ApiError::unprocessable(
                "the patched object is not a JSON object",
            ));
        }
        self.replace(t, name, sub, patched)
    }

    /// Removes an object now, records DELETED, and cascades (CRD → its objects,
    /// namespace → its contents).
    fn remove_now(
        &mut self,
        key: &ResKey,
        ns: &str,
        name: &str,
        last: Option<Value>,
    ) -> Option<Value> {
        let mut obj = self
            .objects
            .get_mut(key)?
            .remove(&(ns.to_string(), name.to_string()))?;
        if let Some(last) = last {
            obj = last;
        }
        if key == &ResKey::namespaces() {
            let keys: Vec<ResKey> = self.objects.keys().cloned().collect();
            for k in keys {
                if !self.types.get(&k).is_some_and(|rt| rt.namespaced) {
                    continue;
                }
                let names: Vec<String> = self.objects[&k]
                    .keys()
                    .filter(|(n, _)| n == name)
                    .map(|(_, nm)| nm.clone())
                    .collect();
                for nm in names {
                    self.remove_now(&k, name, &nm, None);
                }
            }
        }
        if key == &ResKey::crds() {
            if let Ok(rt) = crd_resource_type(&obj) {
                let k = rt.key();
                let names: Vec<(String, String)> = self
                    .objects
                    .get(&k)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                for (n, nm) in names {
                    self.remove_now(&k, &n, &nm, None);
                }
                self.types.remove(&k);
                self.objects.remove(&k);
            }
        }
        self.bump(&mut obj);
        self.record(key, EventType::Deleted, obj.clone(), None);
        Some(obj)
    }

    /// DELETE with optional DeleteOptions (preconditions are honoured).
    pub fn delete(&mut self, t: &Target, name: &str, options: &Value) -> Result<Deleted, ApiError> {
        let key = t.storage();
        let old = self
            .raw(&key, t.ns(), name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(t.subject(name)))?;
        if let Some(uid) = options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
        {
            if uid != meta_str(&old, "uid") {
                return Err(ApiError::conflict(
                    t.subject(name),
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&old, "uid")
                    ),
                ));
            }
        }
        if let Some(rv) = options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
        {
            if rv != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(
                    t.subject(name),
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        meta_str(&old, "resourceVersion")
                    ),
                ));
            }
        }
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if !meta_str(&old, "deletionTimestamp").is_empty() {
                return Ok(Deleted::Pending(t.present(old)));
            }
            let mut new = old.clone();
            let m = meta_mut(&mut new);
            m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            let obj = self.commit_update(t, old, new)?;
            return Ok(Deleted::Pending(obj));
        }
        let obj = self
            .remove_now(&key, t.ns(), name, None)
            .ok_or_else(|| ApiError::not_found(t.subject(name)))?;
        let status = success_status(t.subject(name), &obj["metadata"]["uid"]);
        Ok(Deleted::Gone(status, t.present(obj)))
    }

    /// Events for one resource after `after`, and the revision they bring a watcher to.
    /// `Err` (410 Expired) when events after `after` were already dropped. A `live`
    /// watch (one already streaming) only expires when it really missed events of its
    /// resource, as an etcd watch that has kept up survives compaction.
    pub fn events_after(
        &self,
        key: &ResKey,
        after: u64,
        live: bool,
    ) -> Result<(Vec<Event>, u64), ApiError> {
        if after < self.compacted {
            let missed = self.last_change.get(key).is_some_and(|&r| r > after);
            if !live || missed {
                return Err(ApiError::expired(after, self.compacted + 1));
            }
        }
        let start = self.history.partition_point(|e| e.revision <= after);
        let events = self
            .history
            .range(start..)
            .filter(|e| &e.key == key)
            .cloned()
            .collect();
        Ok((events, self.revision.max(after)))
    }
}

/// How one history event looks to a watcher with a namespace and selectors: objects
/// that start matching appear as ADDED, those that stop matching as DELETED.
pub fn watch_view<'a>(
    ev: &'a Event,
    namespace: Option<&str>,
    sel: &Selectors,
) -> Option<(EventType, &'a Value)> {
    if let Some(ns) = namespace {
        if meta_str(&ev.object, "namespace") != ns {
            return None;
        }
    }
    let now = sel.matches(&ev.object);
    match ev.kind {
        EventType::Added | EventType::Deleted => now.then_some((ev.kind, &ev.object)),
        EventType::Modified => {
            let before = ev.previous.as_ref().is_some_and(|p| sel.matches(p));
            match (before, now) {
                (true, true) => Some((EventType::Modified, &ev.object)),
                (false, true) => Some((EventType::Added, &ev.object)),
                (true, false) => Some((EventType::Deleted, &ev.object)),
                (false, false) => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRD: &str = r#"{
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusters.bootes.io"},
        "spec": {
            "group": "bootes.io",
            "scope": "Namespaced",
            "names": {"plural": "clusters", "singular": "cluster", "kind": "Cluster",
                      "shortNames": ["bc"], "categories": ["bootes"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "subresources": {"status": {}},
                          "schema": {"openAPIV3Schema": {"type": "object",
                              "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }"#;

    fn store_with_crd() -> (Store, Target) {
        let mut s = Store::new(100);
        let crds = s
            .target(
                crate::types::CRD_GROUP,
                "v1",
                "customresourcedefinitions",
                None,
            )
            .unwrap();
        s.create(&crds, serde_json::from_str(CRD).unwrap()).unwrap();
        let ns = s.target("", "v1", "namespaces", None).unwrap();
        s.create(&ns, json!({"metadata": {"name": "foo"}})).unwrap();
        let t = s
            .target("bootes.io", "v1", "clusters", Some("foo"))
            .unwrap();
        (s, t)
    }

    fn cluster(name: &str, labels: Value) -> Value {
        json!({"apiVersion": "bootes.io/v1", "kind": "Cluster",
               "metadata": {"name": name, "labels": labels},
               "spec": {"config": {"name": name}}})
    }

    #[test]
    fn crd_registration_serves_the_type_and_reports_established() {
        let (s, t) = store_with_crd();
        assert!(t.rt.custom && t.rt.has_status("v1"));
        let crds = s
            .target(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                None,
            )
            .unwrap();
        let crd = s.get(&crds, "clusters.bootes.io").unwrap();
        assert_eq!(crd["status"]["conditions"][1]["type"], "Established");
        assert_eq!(crd["status"]["conditions"][1]["status"], "True");
        assert!(s.find("bootes.io", "v2", "clusters").is_none());
    }

    #[test]
    fn create_sets_metadata_and_rejects_duplicates_and_missing_namespaces() {
        let (mut s, t) = store_with_crd();
        let rev = s.revision();
        let mut body = cluster("a", json!({"app": "x"}));
        body["status"] = json!({"ignored": true});
        let o = s.create(&t, body).unwrap();
        assert_eq!(o["metadata"]["namespace"], "foo");
        assert_eq!(o["metadata"]["generation"], 1);
        assert_eq!(o["metadata"]["resourceVersion"], (rev + 1).to_string());
        assert_eq!(o["metadata"]["uid"].as_str().unwrap().len(), 36);
        assert!(o["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z'));
        assert!(o.get("status").is_none(), "status is ignored on create");
        let e = s.create(&t, cluster("a", json!({}))).unwrap_err();
        assert_eq!((e.code, e.reason), (409, "AlreadyExists"));
        let nowhere = s
            .target("bootes.io", "v1", "clusters", Some("nope"))
            .unwrap();
        let e = s.create(&nowhere, cluster("b", json!({}))).unwrap_err();
        assert_eq!(e.code, 404);
        assert_eq!(e.message, "namespaces \"nope\" not found");
        let e = s.create(&t, cluster("Bad_Name", json!({}))).unwrap_err();
        assert_eq!(e.code, 422);
        for bad in [
            json!({"a": "b c"}),
            json!({"-a": "b"}),
            json!({"Bad_Prefix/a": "b"}),
            json!({"a": "x".repeat(64)}),
        ] {
            let e = s.create(&t, cluster("labels", bad.clone())).unwrap_err();
            assert_eq!(e.code, 422, "{bad}");
        }
        s.create(
            &t,
            cluster("labels", json!({"example.com/a": "", "b": "A_b.9"})),
        )
        .unwrap();
        let e = s
            .patch(
                &t,
                "labels",
                Subresource::Main,
                PatchKind::Merge,
                br#"{"metadata":{"labels":{"c":"no way"}}}"#,
            )
            .unwrap_err();
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        let mut wrong = cluster("c", json!({}));
        wrong["kind"] = json!("Route");
        assert_eq!(s.create(&t, wrong).unwrap_err().code, 400);
        let g = s
            .create(
                &t,
                json!({"metadata": {"generateName": "gen-"}, "spec": {}}),
            )
            .unwrap();
        assert!(g["metadata"]["name"].as_str().unwrap().starts_with("gen-"));
    }

    #[test]
    fn update_rules_generation_status_and_conflicts() {
        let (mut s, t) = store_with_crd();
        let o = s.create(&t, cluster("a", json!({}))).unwrap();
        // A label change does not bump generation; a status change on the main
        // resource is ignored.
        let mut b = o.clone();
        b["metadata"]["labels"] = json!({"x": "1"});
        b["status"] = json!({"nodes": 3});
        let o2 = s.replace(&t, "a", Subresource::Main, b).unwrap();
        assert_eq!(o2["metadata"]["generation"], 1);
        assert!(o2.get("status").is_none());
        assert_ne!(
            o2["metadata"]["resourceVersion"],
            o["metadata"]["resourceVersion"]
        );
        // Stale resourceVersion → 409.
        let e = s
            .replace(&t, "a", Subresource::Main, o.clone())
            .unwrap_err();
        assert_eq!((e.code, e.reason), (409, "Conflict"));
        // Spec change bumps generation.
        let o3 = s
            .patch(
                &t,
                "a",
                Subresource::Main,
                PatchKind::Merge,
                br#"{"spec":{"config":{"x":1}}}"#,
            )
            .unwrap();
        assert_eq!(o3["metadata"]["generation"], 2);
        // Status subresource changes only status.
        let o4 = s
            .patch(
                &t,
                "a",
                Subresource::Status,
                PatchKind::Merge,
                br#"{"status":{"nodes":2},"spec":{"config":null},"metadata":{"labels":{"y":"2"}}}"#,
            )
            .unwrap();
        assert_eq!(o4["status"]["nodes"], 2);
        assert_eq!(o4["spec"], o3["spec"]);
        assert_eq!(o4["metadata"]["labels"], json!({"x": "1"}));
        assert_eq!(o4["metadata"]["generation"], 2);
        // A no-op write changes nothing, not even the revision.
        let rev = s.revision();
        let same = s.replace(&t, "a", Subresource::Main, o4.clone()).unwrap();
        assert_eq!(
            same["metadata"]["resourceVersion"],
            o4["metadata"]["resourceVersion"]
        );
        assert_eq!(s.revision(), rev);
        // JSON patch, strategic merge (directives dropped), apply.
        let o5 = s
            .patch(
                &t,
                "a",
                Subresource::Main,
                PatchKind::Json,
                br#"[{"op":"add","path":"/metadata/labels/z","value":"3"}]"#,
            )
            .unwrap();
        assert_eq!(o5["metadata"]["labels"]["z"], "3");
        let o6 = s
            .patch(
                &t,
                "a",
                Subresource::Main,
                PatchKind::Strategic,
                br#"{"metadata":{"labels":{"x":null}},"$setElementOrder/x":[]}"#,
            )
            .unwrap();
        assert_eq!(o6["metadata"]["labels"], json!({"z": "3"}));
        assert!(o6.get("$setElementOrder/x").is_none());
        let o7 = s
            .patch(
                &t,
                "b",
                Subresource::Main,
                PatchKind::Apply,
                b"apiVersion: bootes.io/v1\nkind: Cluster\nmetadata:\n  name: b\nspec:\n  config: {}\n",
            )
            .unwrap();
        assert_eq!(o7["metadata"]["generation"], 1);
        let o8 = s
            .patch(
                &t,
                "b",
                Subresource::Status,
                PatchKind::Apply,
                br#"{"apiVersion":"bootes.io/v1","kind":"Cluster","status":{"ok":true}}"#,
            )
            .unwrap();
        assert_eq!(o8["status"]["ok"], true);
        let e = s
            .patch(&t, "zz", Subresource::Status, PatchKind::Apply, b"{}")
            .unwrap_err();
        assert_eq!(e.code, 404);
        let e = s
            .patch(
                &t,
                "a",
                Subresource::Main,
                PatchKind::Json,
                br#"[{"op":"remove","path":"/nope"}]"#,
            )
            .unwrap_err();
        assert_eq!(e.code, 422);
    }

    #[test]
    fn custom_resources_are_pruned_to_their_schema() {
        let (mut s, mut t) = store_with_crd();
        let crds = s
            .target(
                crate::types::CRD_GROUP,
                "v1",
                "customresourcedefinitions",
                None,
            )
            .unwrap();
        let mut crd: Value = serde_json::from_str(CRD).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                "status": {"type": "object", "properties": {"nodes": {"type": "integer"}}}
            }
        });
        let current = s.get(&crds, "clusters.bootes.io").unwrap();
        crd["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        s.replace(&crds, "clusters.bootes.io", Subresource::Main, crd)
            .unwrap();
        t = s
            .target("bootes.io", "v1", "clusters", Some("foo"))
            .map(|n| Target {
                field_validation: t.field_validation,
                ..n
            })
            .unwrap();
        let mut body = cluster("a", json!({}));
        body["spec"]["typo"] = json!(1);
        let o = s.create(&t, body.clone()).unwrap();
        assert!(o["spec"].get("typo").is_none());
        assert_eq!(o["spec"]["config"]["name"], "a");
        assert_eq!(
            s.take_warnings(),
            vec!["unknown field \"spec.typo\"".to_string()]
        );
        let strict = Target {
            field_validation: FieldValidation::Strict,
            ..t.clone()
        };
        body["metadata"]["name"] = json!("b");
        let e = s.create(&strict, body.clone()).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message
                .contains("strict decoding error: unknown field \"spec.typo\""),
            "{}",
            e.message
        );
        let e = s
            .patch(
                &t,
                "a",
                Subresource::Status,
                PatchKind::Merge,
                br#"{"status":{"nodes":"many"}}"#,
            )
            .unwrap_err();
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        assert!(e.message.contains("status.nodes"), "{}", e.message);
    }

    #[test]
    fn deletes_finalizers_and_cascades() {
        let (mut s, t) = store_with_crd();
        s.create(&t, cluster("a", json!({}))).unwrap();
        let mut fin = cluster("f", json!({}));
        fin["metadata"]["finalizers"] = json!(["bootes.io/cleanup"]);
        s.create(&t, fin).unwrap();
        match s.delete(&t, "a", &Value::Null).unwrap() {
            Deleted::Gone(st, _) => assert_eq!(st["status"], "Success"),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.get(&t, "a").unwrap_err().code, 404);
        let pending = match s.delete(&t, "f", &Value::Null).unwrap() {
            Deleted::Pending(o) => o,
            other => panic!("{other:?}"),
        };
        assert!(pending["metadata"]["deletionTimestamp"].is_string());
        s.patch(
            &t,
            "f",
            Subresource::Main,
            PatchKind::Merge,
            br#"{"metadata":{"finalizers":null}}"#,
        )
        .unwrap();
        assert_eq!(s.get(&t, "f").unwrap_err().code, 404);
        // Namespace deletion removes its contents; CRD deletion removes the type.
        s.create(&t, cluster("c", json!({}))).unwrap();
        let ns = s.target("", "v1", "namespaces", None).unwrap();
        s.delete(&ns, "foo", &Value::Null).unwrap();
        let all = s.target("bootes.io", "v1", "clusters", None).unwrap();
        assert!(s.list(&all, &Selectors::default()).0.is_empty());
        let crds = s
            .target(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                None,
            )
            .unwrap();
        s.delete(&crds, "clusters.bootes.io", &json!({})).unwrap();
        assert!(s.find("bootes.io", "v1", "clusters").is_none());
        // Preconditions.
        let e = s
            .delete(&ns, "default", &json!({"preconditions": {"uid": "x"}}))
            .unwrap_err();
        assert_eq!(e.code, 409);
    }

    #[test]
    fn list_filters_by_namespace_and_selectors() {
        let (mut s, t) = store_with_crd();
        let ns = s.target("", "v1", "namespaces", None).unwrap();
        s.create(&ns, json!({"metadata": {"name": "bar"}})).unwrap();
        let bar = s
            .target("bootes.io", "v1", "clusters", Some("bar"))
            .unwrap();
        s.create(&t, cluster("a", json!({"app": "x"}))).unwrap();
        s.create(&t, cluster("b", json!({"app": "y"}))).unwrap();
        s.create(&bar, cluster("c", json!({"app": "x"}))).unwrap();
        let all = s.target("bootes.io", "v1", "clusters", None).unwrap();
        let names = |items: Vec<Value>| -> Vec<String> {
            items
                .iter()
                .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
                .collect()
        };
        let (items, rev) = s.list(&all, &Selectors::default());
        assert_eq!(names(items), vec!["c", "a", "b"]);
        assert_eq!(rev, s.revision());
        assert_eq!(names(s.list(&t, &Selectors::default()).0), vec!["a", "b"]);
        let sel = Selectors::parse(Some("app=x"), None).unwrap();
        assert_eq!(names(s.list(&all, &sel).0), vec!["c", "a"]);
        let sel = Selectors::parse(None, Some("metadata.namespace=foo,metadata.name!=a")).unwrap();
        assert_eq!(names(s.list(&all, &sel).0), vec!["b"]);
    }

    #[test]
    fn history_replays_and_expires() {
        let (mut s, t) = store_with_crd();
        let start = s.revision();
        s.create(&t, cluster("a", json!({"app": "x"}))).unwrap();
        s.patch(
            &t,
            "a",
            Subresource::Main,
            PatchKind::Merge,
            br#"{"metadata":{"labels":{"app":"y"}}}"#,
        )
        .unwrap();
        s.patch(
            &t,
            "a",
            Subresource::Main,
            PatchKind::Merge,
            br#"{"metadata":{"labels":{"app":"x"}}}"#,
        )
        .unwrap();
        s.delete(&t, "a", &Value::Null).unwrap();
        let (events, upto) = s.events_after(&t.rt.key(), start, false).unwrap();
        assert_eq!(upto, s.revision());
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        use EventType::*;
        assert_eq!(kinds, vec![Added, Modified, Modified, Deleted]);
        // The deletion carries its own revision.
        assert_eq!(
            events[3].object["metadata"]["resourceVersion"],
            s.revision().to_string()
        );
        // Through a selector the relabel looks like delete + add.
        let sel = Selectors::parse(Some("app=x"), None).unwrap();
        let seen: Vec<_> = events
            .iter()
            .filter_map(|e| watch_view(e, Some("foo"), &sel).map(|(k, _)| k))
            .collect();
        assert_eq!(seen, vec![Added, Deleted, Added, Deleted]);
        assert!(events
            .iter()
            .all(|e| watch_view(e, Some("bar"), &Selectors::default()).is_none()));
        // Compaction makes older revisions expire; the current one is still fine.
        let quiet = s.revision();
        let ns = s.target("", "v1", "namespaces", None).unwrap();
        s.create(&ns, json!({"metadata": {"name": "other"}}))
            .unwrap();
        s.compact();
        // A live watch that has seen every cluster event survives; a new one does not.
        assert!(s
            .events_after(&t.rt.key(), quiet, true)
            .unwrap()
            .0
            .is_empty());
        assert_eq!(
            s.events_after(&t.rt.key(), quiet, false).unwrap_err().code,
            410
        );
        assert_eq!(
            s.events_after(&t.rt.key(), start, true).unwrap_err().code,
            410
        );
        let e = s.events_after(&t.rt.key(), start, false).unwrap_err();
        assert_eq!((e.code, e.reason), (410, "Expired"));
        assert!(s
            .events_after(&t.rt.key(), s.revision(), false)
            .unwrap()
            .0
            .is_empty());
    }

    #[test]
    fn bounded_history_drops_the_oldest() {
        let (mut s, t) = store_with_crd();
        let start = s.revision();
        for i in 0..150 {
            s.create(&t, cluster(&format!("c{i}"), json!({}))).unwrap();
        }
        assert_eq!(
            s.events_after(&t.rt.key(), start, false).unwrap_err().code,
            410
        );
        let recent = s.revision() - 50;
        assert_eq!(
            s.events_after(&t.rt.key(), recent, false).unwrap().0.len(),
            50
        );
        assert_eq!(s.compacted(), s.revision() - 100);
    }
}
