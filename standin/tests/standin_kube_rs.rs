//! The kube-rs client the controller uses, against the real `kube-standin` binary:
//! kubeconfig loading, a derived CRD, reflectors over `watcher` and
//! `metadata_watcher` (with label selectors), status patches (merge and apply),
//! conflicts, a relist after 410 Gone, and EndpointSlices watched by Service label.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{conditions, wait::await_condition, watcher, WatchStreamExt};
use kube::{Client, Config, CustomResource, CustomResourceExt, ResourceExt};
use kube_standin::client::{json_request, StandinProcess};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "bootes.io",
    version = "v1",
    kind = "Cluster",
    namespaced,
    status = "ClusterStatus",
    shortname = "bc",
    category = "bootes",
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".status.nodes"}"#
)]
struct ClusterSpec {
    #[serde(default)]
    name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
struct ClusterStatus {
    #[serde(default)]
    nodes: u32,
}

/// Polls `cond` until it holds or `WAIT` passes.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn client(s: &StandinProcess) -> Client {
    let kc = Kubeconfig::read_from(&s.kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

async fn setup(extra: &[&str]) -> (StandinProcess, Client) {
    let s = StandinProcess::start_with(env!("CARGO_BIN_EXE_kube-standin"), extra).unwrap();
    let client = client(&s).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Cluster::crd())
        .await
        .unwrap();
    let established = await_condition(crds, "clusters.bootes.io", conditions::is_crd_established());
    tokio::time::timeout(WAIT, established)
        .await
        .unwrap()
        .unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("foo".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    nss.create(&PostParams::default(), &ns).await.unwrap();
    (s, client)
}

fn cluster(name: &str) -> Cluster {
    let mut c = Cluster::new(name, ClusterSpec { name: name.into() });
    c.metadata.namespace = Some("foo".into());
    c
}

fn pod(name: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "foo", "labels": {"app": app}},
        "spec": {"containers": [{"name": "envoy", "image": "envoy"}]}
    }))
    .unwrap()
}

#[tokio::test]
async fn reflectors_status_patches_and_conflicts() {
    let (_s, client) = setup(&["--bookmark-interval-ms", "200", "--log", "warn"]).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "foo");
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(
            Api::<Cluster>::all(client.clone()),
            watcher::Config::default(),
        ),
    );
    tokio::spawn(stream.applied_objects().for_each(|_| async {}));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "foo");
    let (pod_reader, pod_writer) = reflector::store();
    // Metadata only, as the controller watches pods.
    let pod_meta: Api<PartialObjectMeta<Pod>> = Api::namespaced(client.clone(), "foo");
    let meta = watcher(pod_meta, watcher::Config::default().labels("app=foo"));
    tokio::spawn(
        reflector::reflector(pod_writer, meta)
            .applied_objects()
            .for_each(|_| async {}),
    );

    // Server-side apply creates; the reflector sees it.
    let pp = PatchParams::apply("standin-test").force();
    clusters
        .patch("a", &pp, &Patch::Apply(&cluster("a")))
        .await
        .unwrap();
    let a_ref = ObjectRef::<Cluster>::new("a").within("foo");
    eventually("a in the reflector", || reader.get(&a_ref).is_some()).await;
    let a = clusters.get("a").await.unwrap();
    assert_eq!(a.metadata.generation, Some(1));
    assert!(a.uid().is_some() && a.creation_timestamp().is_some());

    // Status through the status subresource: merge patch, then apply.
    let st = clusters
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"nodes": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status, Some(ClusterStatus { nodes: 2 }));
    eventually("status nodes=2 in the reflector", || {
        reader.get(&a_ref).and_then(|c| c.status.clone()) == Some(ClusterStatus { nodes: 2 })
    })
    .await;
    let apply_status =
        json!({"apiVersion": "bootes.io/v1", "kind": "Cluster", "status": {"nodes": 3}});
    let st = clusters
        .patch_status("a", &pp, &Patch::Apply(&apply_status))
        .await
        .unwrap();
    assert_eq!(st.status, Some(ClusterStatus { nodes: 3 }));
    assert_eq!(
        st.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    // Replace with a stale resourceVersion conflicts.
    let mut stale = a.clone();
    stale.spec.name = "changed".into();
    let err = clusters
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("expected a 409, got {other:?}"),
    }
    let mut fresh = clusters.get("a").await.unwrap();
    fresh.spec.name = "changed".into();
    let replaced = clusters
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(
        replaced.status,
        Some(ClusterStatus { nodes: 3 }),
        "replace keeps status"
    );
    let missing = clusters.get("missing").await.unwrap_err();
    assert!(
        matches!(missing, kube::Error::Api(ref s) if s.code == 404),
        "{missing:?}"
    );

    // Pods through the metadata-only watcher with a label selector.
    pods.create(&PostParams::default(), &pod("envoy-1", "foo"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("envoy-2", "bar"))
        .await
        .unwrap();
    let p1 = ObjectRef::new("envoy-1").within("foo");
    let p2 = ObjectRef::new("envoy-2").within("foo");
    eventually("envoy-1 in the pod reflector", || {
        pod_reader.get(&p1).is_some()
    })
    .await;
    let m = pod_reader.get(&p1).unwrap();
    assert_eq!(m.labels().get("app").map(String::as_str), Some("foo"));
    assert!(m.uid().is_some());
    // Relabel: envoy-1 leaves the selection, envoy-2 joins it.
    let relabel = |app: &str| Patch::Merge(json!({"metadata": {"labels": {"app": app}}}));
    pods.patch("envoy-1", &PatchParams::default(), &relabel("other"))
        .await
        .unwrap();
    pods.patch("envoy-2", &PatchParams::default(), &relabel("foo"))
        .await
        .unwrap();
    eventually("relabelled pods in the reflector", || {
        pod_reader.get(&p1).is_none() && pod_reader.get(&p2).is_some()
    })
    .await;
    pods.delete("envoy-2", &DeleteParams::default())
        .await
        .unwrap();
    eventually("deleted pod gone", || pod_reader.get(&p2).is_none()).await;

    // Deleting the object removes it from the reflector.
    clusters
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    eventually("a gone from the reflector", || reader.get(&a_ref).is_none()).await;
}

#[tokio::test]
async fn watcher_relists_after_410_gone() {
    let (s, client) = setup(&["--log", "warn"]).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "foo");
    clusters
        .create(&PostParams::default(), &cluster("a"))
        .await
        .unwrap();
    // Without bookmarks the watcher's resourceVersion only moves with Cluster events.
    let config = watcher::Config::default().disable_bookmarks();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut stream = watcher(clusters.clone(), config).boxed();
    tokio::spawn(async move {
        while let Some(ev) = stream.next().await {
            let summary = match ev {
                Ok(watcher::Event::Init) => "Init".to_string(),
                Ok(watcher::Event::InitApply(o)) => format!("InitApply {}", o.name_any()),
                Ok(watcher::Event::InitDone) => "InitDone".to_string(),
                Ok(watcher::Event::Apply(o)) => format!("Apply {}", o.name_any()),
                Ok(watcher::Event::Delete(o)) => format!("Delete {}", o.name_any()),
                Err(e) => format!("Error {e}"),
            };
            if tx.send(summary).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let mut until = async |want: &str, seen: &mut Vec<String>| {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some(ev)) => {
                    let hit = ev == want;
                    seen.push(ev);
                    if hit {
                        return;
                    }
                }
                _ => panic!("no {want:?} event; saw {seen:?}"),
            }
        }
    };
    until("InitApply a", &mut seen).await;
    until("InitDone", &mut seen).await;
    clusters
        .create(&PostParams::default(), &cluster("b"))
        .await
        .unwrap();
    until("Apply b", &mut seen).await;
    // Move the global revision past the watcher's, then drop the history.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "foo");
    pods.create(&PostParams::default(), &pod("p", "x"))
        .await
        .unwrap();
    let (code, _) = json_request(
        s.addr,
        "POST",
        "/standin/compact",
        "application/json",
        Some(&json!({})),
    )
    .await
    .unwrap();
    assert_eq!(code, 200);
    // End the open watch as a server restart would: the re-watch from the old
    // resourceVersion gets 410 Gone, and the watcher lists again.
    let (code, closed) = json_request(
        s.addr,
        "POST",
        "/standin/close-watches",
        "application/json",
        Some(&json!({})),
    )
    .await
    .unwrap();
    assert_eq!(code, 200);
    assert!(closed["closedWatches"].as_u64().unwrap() >= 1, "{closed}");
    let before = seen.len();
    until("Init", &mut seen).await;
    until("InitDone", &mut seen).await;
    let relist = &seen[before..];
    assert!(
        relist.contains(&"InitApply a".to_string()) && relist.contains(&"InitApply b".to_string()),
        "{seen:?}"
    );
    clusters
        .create(&PostParams::default(), &cluster("c"))
        .await
        .unwrap();
    until("Apply c", &mut seen).await;
}

fn endpoint_slice(name: &str, service: Option<&str>, ips: &[&str]) -> EndpointSlice {
    let mut labels = json!({"endpointslice.kubernetes.io/managed-by": "test"});
    if let Some(service) = service {
        labels["kubernetes.io/service-name"] = json!(service);
    }
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}, "zone": "z1"}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "foo", "labels": labels},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .unwrap()
}

#[tokio::test]
async fn endpoint_slices_are_served_and_watched_by_service_label() {
    let (_s, client) = setup(&["--log", "warn"]).await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "foo");
    // Before any slice exists, and one that belongs to no Service.
    slices
        .create(
            &PostParams::default(),
            &endpoint_slice("orphan", None, &["10.0.0.9"]),
        )
        .await
        .unwrap();
    slices
        .create(
            &PostParams::default(),
            &endpoint_slice("web-1", Some("web"), &["10.0.0.1"]),
        )
        .await
        .unwrap();

    // As the controller watches them: every namespace, only slices of a Service.
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().labels("kubernetes.io/service-name");
    tokio::spawn(
        reflector::reflector(
            writer,
            watcher(Api::<EndpointSlice>::all(client.clone()), config),
        )
        .applied_objects()
        .for_each(|_| async {}),
    );
    let (web_reader, web_writer) = reflector::store();
    let web = watcher::Config::default().labels("kubernetes.io/service-name=web");
    tokio::spawn(
        reflector::reflector(web_writer, watcher(slices.clone(), web))
            .applied_objects()
            .for_each(|_| async {}),
    );
    let web1 = ObjectRef::<EndpointSlice>::new("web-1").within("foo");
    eventually("web-1 listed", || {
        reader.get(&web1).is_some() && web_reader.get(&web1).is_some()
    })
    .await;
    assert!(reader
        .get(&ObjectRef::new("orphan").within("foo"))
        .is_none());
    let listed = reader.get(&web1).unwrap();
    assert_eq!(listed.address_type, "IPv4");
    assert_eq!(
        listed.endpoints.as_ref().unwrap()[0].zone.as_deref(),
        Some("z1")
    );
    assert_eq!(listed.ports.as_ref().unwrap()[0].port, Some(8080));

    // Another Service's slice: the existence selector sees it, the other not.
    slices
        .create(
            &PostParams::default(),
            &endpoint_slice("api-1", Some("api"), &["10.0.1.1"]),
        )
        .await
        .unwrap();
    let api1 = ObjectRef::<EndpointSlice>::new("api-1").within("foo");
    eventually("api-1 watched", || reader.get(&api1).is_some()).await;
    assert!(web_reader.get(&api1).is_none());

    // A scale-up replaces the endpoints; the watchers see the new list.
    let mut scaled = slices.get("web-1").await.unwrap();
    scaled.endpoints = endpoint_slice("web-1", Some("web"), &["10.0.0.1", "10.0.0.2"]).endpoints;
    slices
        .replace("web-1", &PostParams::default(), &scaled)
        .await
        .unwrap();
    eventually("web-1 scaled up in both watchers", || {
        [&reader, &web_reader].iter().all(|r| {
            r.get(&web1)
                .is_some_and(|s| s.endpoints.as_ref().is_some_and(|e| e.len() == 2))
        })
    })
    .await;

    // Losing the label takes a slice out of the selection; deleting removes it.
    slices
        .patch(
            "api-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"kubernetes.io/service-name": null}}})),
        )
        .await
        .unwrap();
    eventually("api-1 unlabelled", || reader.get(&api1).is_none()).await;
    slices
        .delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("web-1 deleted", || {
        reader.get(&web1).is_none() && web_reader.get(&web1).is_none()
    })
    .await;
}
