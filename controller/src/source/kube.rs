//! Kubernetes source: a watcher per Bootes kind (all namespaces), a
//! metadata-only watcher for pods and a watcher for the EndpointSlices of
//! Services (label `kubernetes.io/service-name`, all namespaces), feeding the
//! index through [`SourceEvent`]s.
//!
//! * Nothing is sent before every watcher has listed once; then the whole
//!   picture goes out as one [`SourceEvent::ResetObjects`] +
//!   [`SourceEvent::ResetPods`], so a restarting controller never writes a
//!   half-listed state (say, pods before their clusters) to etcd.
//! * After that, changes go out one by one; a relist of one kind (after a
//!   watch error or `410 Gone`) becomes the applies and deletes that turn the
//!   previous list of that kind into the new one, leaving other kinds alone.
//! * Objects are read as [`DynamicObject`]s and converted here, so an object
//!   whose `spec` is missing or malformed is reported and skipped (the last
//!   good version of it stays in force) and never breaks the watch.
//! * A kind whose CRD is not installed counts as empty (and is retried with
//!   backoff), so a cluster with only the original four CRDs works. So do
//!   EndpointSlices when listing them is forbidden (an older ClusterRole):
//!   Endpoints naming a Service then have no endpoints, and a warning says why.

use std::collections::BTreeMap;

use bootes_proto::ResourceType;
use futures::stream::{BoxStream, SelectAll};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod as KubePod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::crd;
use crate::status_kube::{parse_status, rfc3339, Observed, ObservedStatuses};
use bootes_core::model::{BootesObject, ObjectKey, Pod, PodKey};
use bootes_core::service_endpoints::{self, EndpointSlice, SliceKey};
use bootes_core::service_ref::ServiceRef;
use bootes_core::source::SourceEvent;

/// Watches every Bootes kind and pods until `tx` closes.
pub async fn run(client: kube::Client, tx: mpsc::Sender<SourceEvent>, observed: ObservedStatuses) {
    let mut streams: SelectAll<BoxStream<'static, Input>> = SelectAll::new();
    for kind in crd::KINDS {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &crd::api_resource(kind));
        streams.push(
            watcher::watcher(api, watcher::Config::default())
                .default_backoff()
                .map(move |e| Input::Object(kind, e))
                .boxed(),
        );
    }
    // Whole pods, not metadata only: the binding needs
    // spec.serviceAccountName (mutual TLS authorizes nodes by it).
    let pods: Api<KubePod> = Api::all(client.clone());
    streams.push(
        watcher::watcher(pods, watcher::Config::default())
            .default_backoff()
            .map(Input::Pod)
            .boxed(),
    );
    // Read as dynamic objects, so one malformed slice is reported, not fatal
    // to the watch.
    let slices: Api<DynamicObject> = Api::all_with(client, &slice_resource());
    streams.push(
        watcher::watcher(
            slices,
            watcher::Config::default().labels(service_endpoints::SERVICE_NAME_LABEL),
        )
        .default_backoff()
        .map(Input::Slice)
        .boxed(),
    );

    let mut state = KubeState::new(observed);
    while let Some(input) = streams.next().await {
        let events = match input {
            Input::Object(kind, Ok(event)) => state.object_event(kind, event),
            Input::Object(kind, Err(e)) => state.object_error(kind, &e),
            Input::Pod(Ok(event)) => state.pod_event(event),
            Input::Pod(Err(e)) => {
                tracing::warn!(error = %e, "watching pods failed; retrying");
                Vec::new()
            }
            Input::Slice(Ok(event)) => state.slice_event(event),
            Input::Slice(Err(e)) => state.slice_error(&e),
        };
        for event in events {
            if tx.send(event).await.is_err() {
                return;
            }
        }
    }
}

// One value at a time passes through the merged stream: its size does not
// matter, boxing would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Input {
    Object(ResourceType, watcher::Result<Event<DynamicObject>>),
    Pod(watcher::Result<Event<KubePod>>),
    Slice(watcher::Result<Event<DynamicObject>>),
}

/// `discovery.k8s.io/v1` EndpointSlice, for dynamic API calls.
fn slice_resource() -> kube::core::ApiResource {
    kube::core::ApiResource::erase::<k8s_openapi::api::discovery::v1::EndpointSlice>(&())
}

/// What the watchers have seen, and the events that keep the index in step
/// with it. Pure: no I/O, unit-tested with hand-made watch events.
#[derive(Debug)]
pub struct KubeState {
    kinds: BTreeMap<ResourceType, KindState>,
    pods: BTreeMap<PodKey, Pod>,
    /// Pods being relisted (between `Init` and `InitDone`).
    pods_pending: Option<BTreeMap<PodKey, Pod>>,
    pods_listed: bool,
    slices: BTreeMap<SliceKey, EndpointSlice>,
    /// Slices being relisted (between `Init` and `InitDone`).
    slices_pending: Option<BTreeMap<SliceKey, EndpointSlice>>,
    slices_listed: bool,
    /// Listing slices failed for want of permission or of the API.
    slices_unavailable: bool,
    /// Whether the first complete picture went out.
    started: bool,
    observed: ObservedStatuses,
}

#[derive(Debug, Default)]
struct KindState {
    /// The last good version of every object of this kind.
    objects: BTreeMap<ObjectKey, BootesObject>,
    /// Objects being relisted (between `Init` and `InitDone`).
    pending: Option<BTreeMap<ObjectKey, BootesObject>>,
    listed: bool,
    /// The CRD is not installed (the last list answered 404).
    missing: bool,
}

impl KubeState {
    pub fn new(observed: ObservedStatuses) -> Self {
        Self {
            kinds: crd::KINDS
                .into_iter()
                .map(|k| (k, KindState::default()))
                .collect(),
            pods: BTreeMap::new(),
            pods_pending: None,
            pods_listed: false,
            slices: BTreeMap::new(),
            slices_pending: None,
            slices_listed: false,
            slices_unavailable: false,
            started: false,
            observed,
        }
    }

    pub fn object_event(
        &mut self,
        kind: ResourceType,
        event: Event<DynamicObject>,
    ) -> Vec<SourceEvent> {
        let mut out = Vec::new();
        match event {
            Event::Init => self.kind_mut(kind).pending = Some(BTreeMap::new()),
            Event::InitApply(object) => {
                let Some(converted) = self.read_object(kind, &object, &mut out) else {
                    return out;
                };
                let state = self.kind_mut(kind);
                let pending = state.pending.get_or_insert_with(BTreeMap::new);
                pending.insert(converted.key.clone(), converted);
            }
            Event::InitDone => {
                let state = self.kind_mut(kind);
                state.missing = false;
                let listed = state.pending.take().unwrap_or_default();
                self.replace_kind(kind, listed, &mut out);
            }
            Event::Apply(object) => {
                let Some(converted) = self.read_object(kind, &object, &mut out) else {
                    return out;
                };
                let key = converted.key.clone();
                let previous = self.kind_mut(kind).objects.insert(key, converted.clone());
                if self.started && previous.as_ref() != Some(&converted) {
                    out.push(SourceEvent::ApplyObject(converted));
                }
            }
            Event::Delete(object) => {
                let Some(key) = object_key(kind, &object) else {
                    return out;
                };
                self.observed.forget(&key);
                let removed = self.kind_mut(kind).objects.remove(&key);
                if self.started && removed.is_some() {
                    out.push(SourceEvent::DeleteObject(key));
                }
            }
        }
        out
    }

    /// A failed list or watch of `kind`. A 404 on the list means the CRD is
    /// not installed: the kind counts as listed and empty. Everything else is
    /// logged; the watcher retries with backoff.
    pub fn object_error(&mut self, kind: ResourceType, error: &watcher::Error) -> Vec<SourceEvent> {
        let not_found = matches!(
            error,
            watcher::Error::InitialListFailed(kube::Error::Api(s)) if s.code == 404
        );
        let mut out = Vec::new();
        if !not_found {
            tracing::warn!(kind = kind.kind(), error = %error, "watching failed; retrying");
            return out;
        }
        if !self.kind_mut(kind).missing {
            tracing::warn!(
                kind = kind.kind(),
                "the CRD {}.{} is not installed: no {} objects until it is (`bootes-controller crds | kubectl apply -f -`)",
                crd::api_resource(kind).plural,
                crd::GROUP,
                kind.kind(),
            );
        }
        let state = self.kind_mut(kind);
        state.missing = true;
        state.pending = None;
        self.replace_kind(kind, BTreeMap::new(), &mut out);
        out
    }

    pub fn pod_event(&mut self, event: Event<KubePod>) -> Vec<SourceEvent> {
        let mut out = Vec::new();
        match event {
            Event::Init => self.pods_pending = Some(BTreeMap::new()),
            Event::InitApply(meta) => match pod_from_kube(&meta) {
                Ok(pod) => {
                    let pending = self.pods_pending.get_or_insert_with(BTreeMap::new);
                    pending.insert(pod.key(), pod);
                }
                Err(e) => out.push(SourceEvent::Problem(e)),
            },
            Event::InitDone => {
                let listed = self.pods_pending.take().unwrap_or_default();
                let changed = listed != self.pods;
                self.pods = listed;
                self.pods_listed = true;
                if self.started {
                    if changed {
                        out.push(SourceEvent::ResetPods(
                            self.pods.values().cloned().collect(),
                        ));
                    }
                } else {
                    self.start(&mut out);
                }
            }
            Event::Apply(meta) => match pod_from_kube(&meta) {
                Ok(pod) => {
                    let previous = self.pods.insert(pod.key(), pod.clone());
                    if self.started && previous.as_ref() != Some(&pod) {
                        out.push(SourceEvent::ApplyPod(pod));
                    }
                }
                Err(e) => out.push(SourceEvent::Problem(e)),
            },
            Event::Delete(meta) => {
                let (Some(namespace), Some(name)) =
                    (meta.metadata.namespace.clone(), meta.metadata.name.clone())
                else {
                    return out;
                };
                let key = PodKey { namespace, name };
                if self.pods.remove(&key).is_some() && self.started {
                    out.push(SourceEvent::DeletePod(key));
                }
            }
        }
        out
    }

    pub fn slice_event(&mut self, event: Event<DynamicObject>) -> Vec<SourceEvent> {
        let mut out = Vec::new();
        match event {
            Event::Init => self.slices_pending = Some(BTreeMap::new()),
            Event::InitApply(object) => {
                if let Some(slice) = self.read_slice(&object, &mut out) {
                    let pending = self.slices_pending.get_or_insert_with(BTreeMap::new);
                    pending.insert(slice.key.clone(), slice);
                }
            }
            Event::InitDone => {
                let listed = self.slices_pending.take().unwrap_or_default();
                self.slices_unavailable = false;
                self.replace_slices(listed, &mut out);
            }
            Event::Apply(object) => {
                if let Some(slice) = self.read_slice(&object, &mut out) {
                    let previous = self.slices.insert(slice.key.clone(), slice.clone());
                    if self.started && previous.as_ref() != Some(&slice) {
                        out.push(SourceEvent::ApplySlice(slice));
                    }
                }
            }
            Event::Delete(object) => {
                let (Some(namespace), Some(name)) = (
                    object.metadata.namespace.clone(),
                    object.metadata.name.clone(),
                ) else {
                    return out;
                };
                let key = SliceKey { namespace, name };
                if self.slices.remove(&key).is_some() && self.started {
                    out.push(SourceEvent::DeleteSlice(key));
                }
            }
        }
        out
    }

    /// A failed list or watch of EndpointSlices. When the list is forbidden
    /// (a ClusterRole without endpointslices) or the API is missing, there
    /// are no slices (with a warning), so that everything else still works.
    pub fn slice_error(&mut self, error: &watcher::Error) -> Vec<SourceEvent> {
        let unavailable = matches!(
            error,
            watcher::Error::InitialListFailed(kube::Error::Api(s)) if s.code == 403 || s.code == 404
        );
        let mut out = Vec::new();
        if !unavailable {
            tracing::warn!(error = %error, "watching EndpointSlices failed; retrying");
            return out;
        }
        if !self.slices_unavailable {
            tracing::warn!(
                error = %error,
                "cannot list discovery.k8s.io/v1 EndpointSlices (the controller's ClusterRole needs get/list/watch on endpointslices): Endpoints naming a Service have no endpoints until it can"
            );
        }
        self.slices_unavailable = true;
        self.slices_pending = None;
        self.replace_slices(BTreeMap::new(), &mut out);
        out
    }

    fn read_slice(
        &mut self,
        object: &DynamicObject,
        out: &mut Vec<SourceEvent>,
    ) -> Option<EndpointSlice> {
        let display = format!(
            "EndpointSlice {}/{}",
            object.metadata.namespace.as_deref().unwrap_or_default(),
            object.metadata.name.as_deref().unwrap_or_default()
        );
        let result = serde_json::to_value(object)
            .map_err(|e| e.to_string())
            .and_then(|json| EndpointSlice::from_object(json, ""));
        match result {
            Ok(slice) if !slice.key.namespace.is_empty() => Some(slice),
            Ok(_) => None,
            Err(e) => {
                out.push(SourceEvent::Problem(format!("{display}: {e}")));
                None
            }
        }
    }

    /// Replaces every slice with `listed` (after a list).
    fn replace_slices(
        &mut self,
        listed: BTreeMap<SliceKey, EndpointSlice>,
        out: &mut Vec<SourceEvent>,
    ) {
        let changed = listed != self.slices;
        self.slices = listed;
        self.slices_listed = true;
        if !self.started {
            self.start(out);
        } else if changed {
            out.push(SourceEvent::ResetSlices(
                self.slices.values().cloned().collect(),
            ));
        }
    }

    fn kind_mut(&mut self, kind: ResourceType) -> &mut KindState {
        self.kinds.entry(kind).or_default()
    }

    /// Converts an object and records the status it has. A malformed object
    /// is reported; the result is then its last good version, if any.
    fn read_object(
        &mut self,
        kind: ResourceType,
        object: &DynamicObject,
        out: &mut Vec<SourceEvent>,
    ) -> Option<BootesObject> {
        let key = object_key(kind, object)?;
        self.observed.record(
            key.clone(),
            Observed {
                uid: object.metadata.uid.clone().unwrap_or_default(),
                status: parse_status(object.data.get("status")),
            },
        );
        match object_from_dynamic(kind, object) {
            Ok(converted) => Some(converted),
            Err(e) => {
                out.push(SourceEvent::Problem(e));
                self.kinds.get(&kind)?.objects.get(&key).cloned()
            }
        }
    }

    /// Replaces every object of `kind` with `listed` (after a list).
    fn replace_kind(
        &mut self,
        kind: ResourceType,
        listed: BTreeMap<ObjectKey, BootesObject>,
        out: &mut Vec<SourceEvent>,
    ) {
        let started = self.started;
        let state = self.kind_mut(kind);
        let previous = std::mem::replace(&mut state.objects, listed);
        state.listed = true;
        if !started {
            self.start(out);
            return;
        }
        let state = &self.kinds[&kind];
        for (key, object) in &state.objects {
            if previous.get(key) != Some(object) {
                out.push(SourceEvent::ApplyObject(object.clone()));
            }
        }
        for key in previous.keys() {
            if !state.objects.contains_key(key) {
                self.observed.forget(key);
                out.push(SourceEvent::DeleteObject(key.clone()));
            }
        }
    }

    /// Sends the first complete picture once every watcher has listed.
    fn start(&mut self, out: &mut Vec<SourceEvent>) {
        if self.started
            || !self.pods_listed
            || !self.slices_listed
            || !self.kinds.values().all(|k| k.listed)
        {
            return;
        }
        self.started = true;
        let objects: Vec<BootesObject> = self
            .kinds
            .values()
            .flat_map(|k| k.objects.values().cloned())
            .collect();
        tracing::info!(
            objects = objects.len(),
            pods = self.pods.len(),
            endpoint_slices = self.slices.len(),
            "listed every Bootes kind, the pods and the EndpointSlices"
        );
        // Slices first: the objects naming their Services are then converted
        // once, with their endpoints.
        out.push(SourceEvent::ResetSlices(
            self.slices.values().cloned().collect(),
        ));
        out.push(SourceEvent::ResetObjects(objects));
        out.push(SourceEvent::ResetPods(
            self.pods.values().cloned().collect(),
        ));
    }
}

fn object_key(kind: ResourceType, object: &DynamicObject) -> Option<ObjectKey> {
    Some(ObjectKey {
        kind,
        namespace: object.metadata.namespace.clone()?,
        name: object.metadata.name.clone()?,
    })
}

/// A Bootes object's `spec`, as written.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSpec {
    #[serde(default)]
    workload_selector: Option<RawSelector>,
    config: Option<serde_json::Value>,
    #[serde(default)]
    service: Option<ServiceRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelector {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Converts a Bootes object read from the API, by the same rules as a
/// manifest read from a directory.
pub fn object_from_dynamic(
    kind: ResourceType,
    object: &DynamicObject,
) -> Result<BootesObject, String> {
    let spec = match object.data.get("spec") {
        None | Some(serde_json::Value::Null) => None,
        // Read from the borrowed value: one copy of `config`, not two.
        Some(spec) => Some(RawSpec::deserialize(spec).map_err(|e| e.to_string())),
    };
    object_from_parts(kind, &object.metadata, spec)
}

/// [`object_from_dynamic`] from an object's metadata and its spec (`None`:
/// none or null; `Err`: why it is not a [`RawSpec`]).
pub fn object_from_parts(
    kind: ResourceType,
    meta: &ObjectMeta,
    spec: Option<Result<RawSpec, String>>,
) -> Result<BootesObject, String> {
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_default();
    let display = format!("{} {namespace}/{name}", kind.kind());
    if name.is_empty() || namespace.is_empty() {
        return Err(format!(
            "{display}: metadata: a name and a namespace are required"
        ));
    }
    let spec = match spec {
        None => return Err(format!("{display}: spec: missing")),
        Some(spec) => spec.map_err(|e| format!("{display}: spec: {e}"))?,
    };
    let config = match spec.config {
        None | Some(serde_json::Value::Null) => {
            return Err(format!("{display}: spec.config: missing"))
        }
        Some(config) => config,
    };
    Ok(BootesObject {
        key: ObjectKey {
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
        },
        source: "kubernetes".into(),
        uid: meta
            .uid
            .clone()
            .unwrap_or_else(|| format!("{namespace}/{name}")),
        generation: meta.generation.unwrap_or(1),
        created: meta.creation_timestamp.as_ref().map(|t| rfc3339(t.0)),
        selector: spec.workload_selector.map(|s| s.labels.unwrap_or_default()),
        config,
        service: spec.service,
    })
}

/// The pod an Envoy runs in. Pods that are not scheduled yet are bound all
/// the same: their node ID is known.
pub fn pod_from_kube(pod: &KubePod) -> Result<Pod, String> {
    let m = &pod.metadata;
    let (Some(namespace), Some(name)) = (m.namespace.clone(), m.name.clone()) else {
        return Err("a pod without a name or namespace was ignored".to_string());
    };
    Ok(Pod {
        uid: m
            .uid
            .clone()
            .unwrap_or_else(|| format!("{namespace}/{name}")),
        labels: m.labels.clone().unwrap_or_default(),
        service_account: pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|sa| !sa.is_empty())
            .unwrap_or_else(|| bootes_core::manifest::DEFAULT_SERVICE_ACCOUNT.to_string()),
        namespace,
        name,
    })
}

#[cfg(test)]
mod tests;
