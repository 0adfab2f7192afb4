//! The real `kube-standin` binary over plain HTTP/1.1: list + watch semantics
//! (replay from a resourceVersion, selector transitions, bookmarks, timeouts,
//! 410 Gone after compaction, initial events, metadata-only), writes and errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kube_standin::client::{json_request, request, StandinProcess, WatchStream};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
const CLUSTERS: &str = "/apis/bootes.io/v1/namespaces/foo/clusters";
const METADATA_LIST: &str =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
const METADATA: &str =
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

fn testdata_json(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A stand-in with the Cluster CRD and namespace `foo`.
async fn standin() -> StandinProcess {
    let s = StandinProcess::start_with(
        env!("CARGO_BIN_EXE_kube-standin"),
        &["--bookmark-interval-ms", "100", "--log", "warn"],
    )
    .unwrap();
    let crd = testdata_json("crd-clusters.yaml");
    let (code, body) = post(
        s.addr,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &crd,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = post(
        s.addr,
        "/api/v1/namespaces",
        &json!({"metadata": {"name": "foo"}}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    s
}

async fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    json_request(addr, "POST", path, "application/json", Some(body))
        .await
        .unwrap()
}

async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    json_request(addr, "GET", path, "application/json", None)
        .await
        .unwrap()
}

async fn patch(addr: SocketAddr, path: &str, content_type: &str, body: &Value) -> (u16, Value) {
    json_request(addr, "PATCH", path, content_type, Some(body))
        .await
        .unwrap()
}

fn cluster(name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "bootes.io/v1", "kind": "Cluster",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"config": {"name": name, "connect_timeout": "1s"}}
    })
}

fn rv(v: &Value) -> String {
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string()
}

fn summary(e: &Value) -> (String, String) {
    (
        e["type"].as_str().unwrap_or("").to_string(),
        e["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}

/// The next event that is not a BOOKMARK.
async fn next_change(w: &mut WatchStream) -> Value {
    w.until(WAIT, |e| e["type"] != "BOOKMARK").await.unwrap().0
}

#[tokio::test]
async fn watch_replays_history_and_follows_selector_transitions() {
    let s = standin().await;
    let (code, list) = get(s.addr, CLUSTERS).await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "ClusterList");
    assert_eq!(list["items"], json!([]));
    let start = rv(&list);

    let (code, a) = post(s.addr, CLUSTERS, &cluster("a", "x")).await;
    assert_eq!(code, 201, "{a}");
    let (_, b) = post(s.addr, CLUSTERS, &cluster("b", "other")).await;
    assert!(rv(&b).parse::<u64>().unwrap() > rv(&a).parse::<u64>().unwrap());

    // Events after `start` are replayed; the selector hides b.
    let mut w = WatchStream::open(
        s.addr,
        &format!("{CLUSTERS}?watch=true&resourceVersion={start}&labelSelector=app%3Dx"),
        None,
    )
    .await
    .unwrap();
    let mut all = WatchStream::open(
        s.addr,
        &format!("{CLUSTERS}?watch=1&resourceVersion={start}"),
        None,
    )
    .await
    .unwrap();
    let e = next_change(&mut w).await;
    assert_eq!(summary(&e), ("ADDED".into(), "a".into()));
    assert_eq!(e["object"]["apiVersion"], "bootes.io/v1");
    assert_eq!(
        summary(&next_change(&mut all).await),
        ("ADDED".into(), "a".into())
    );
    assert_eq!(
        summary(&next_change(&mut all).await),
        ("ADDED".into(), "b".into())
    );

    // Relabel a out of the selector: DELETED for the filtered watcher, MODIFIED for all.
    let item = format!("{CLUSTERS}/a");
    let (code, _) = patch(
        s.addr,
        &item,
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"app": "y"}}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        summary(&next_change(&mut w).await),
        ("DELETED".into(), "a".into())
    );
    assert_eq!(
        summary(&next_change(&mut all).await),
        ("MODIFIED".into(), "a".into())
    );
    // And back in: ADDED.
    let (code, _) = patch(
        s.addr,
        &item,
        "application/json-patch+json",
        &json!([{"op": "replace", "path": "/metadata/labels/app", "value": "x"}]),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        summary(&next_change(&mut w).await),
        ("ADDED".into(), "a".into())
    );

    // A status write is a MODIFIED event carrying the status; generation stays.
    let (code, st) = patch(
        s.addr,
        &format!("{item}/status"),
        "application/merge-patch+json",
        &json!({"status": {"nodes": 2, "conditions": [{"type": "Accepted", "status": "True"}]}}),
    )
    .await;
    assert_eq!(code, 200, "{st}");
    let e = next_change(&mut w).await;
    assert_eq!(summary(&e), ("MODIFIED".into(), "a".into()));
    assert_eq!(e["object"]["status"]["nodes"], 2);
    assert_eq!(e["object"]["metadata"]["generation"], 1);
    assert_eq!(rv(&e["object"]), rv(&st));

    // Delete: DELETED with the deletion's resourceVersion.
    let (code, status) = json_request(s.addr, "DELETE", &item, "application/json", None)
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Success");
    let e = next_change(&mut w).await;
    assert_eq!(summary(&e), ("DELETED".into(), "a".into()));
    let (_, list) = get(s.addr, CLUSTERS).await;
    assert_eq!(rv(&e["object"]), rv(&list));
}

#[tokio::test]
async fn bookmarks_timeouts_and_gone_after_compaction() {
    let s = standin().await;
    let (_, a) = post(s.addr, CLUSTERS, &cluster("a", "x")).await;
    let old = rv(&a);
    let (_, b) = post(s.addr, CLUSTERS, &cluster("b", "x")).await;

    // Bookmarks carry the current resourceVersion.
    let mut w = WatchStream::open(
        s.addr,
        &format!(
            "{CLUSTERS}?watch=true&allowWatchBookmarks=true&resourceVersion={}",
            rv(&b)
        ),
        None,
    )
    .await
    .unwrap();
    let bm = w.until(WAIT, |e| e["type"] == "BOOKMARK").await.unwrap().0;
    assert_eq!(bm["object"]["kind"], "Cluster");
    assert_eq!(bm["object"]["apiVersion"], "bootes.io/v1");
    assert_eq!(rv(&bm["object"]), rv(&b));
    let (_, c) = post(s.addr, CLUSTERS, &cluster("c", "x")).await;
    assert_eq!(
        summary(&next_change(&mut w).await),
        ("ADDED".into(), "c".into())
    );
    let bm = w.until(WAIT, |e| e["type"] == "BOOKMARK").await.unwrap().0;
    assert_eq!(rv(&bm["object"]), rv(&c));

    // timeoutSeconds ends the stream.
    let mut short = WatchStream::open(
        s.addr,
        &format!(
            "{CLUSTERS}?watch=true&timeoutSeconds=1&resourceVersion={}",
            rv(&c)
        ),
        None,
    )
    .await
    .unwrap();
    assert!(
        short.next(WAIT).await.unwrap().is_none(),
        "the watch should end after 1 s"
    );

    // Watching from an old revision still works before compaction...
    let mut replay = WatchStream::open(
        s.addr,
        &format!("{CLUSTERS}?watch=true&resourceVersion={old}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        summary(&next_change(&mut replay).await),
        ("ADDED".into(), "b".into())
    );
    // ...and is Gone after it: an ERROR event with a 410 Expired Status, then the end.
    let (code, compacted) = post(s.addr, "/standin/compact", &json!({})).await;
    assert_eq!(code, 200, "{compacted}");
    let mut gone = WatchStream::open(
        s.addr,
        &format!("{CLUSTERS}?watch=true&resourceVersion={old}"),
        None,
    )
    .await
    .unwrap();
    let e = gone.next(WAIT).await.unwrap().unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["kind"], "Status");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(gone.next(WAIT).await.unwrap().is_none());
    // Watches that were already current keep going; a relist gives a usable revision.
    let (_, d) = post(s.addr, CLUSTERS, &cluster("d", "x")).await;
    assert_eq!(
        summary(&next_change(&mut w).await),
        ("ADDED".into(), "d".into())
    );
    let (_, list) = get(s.addr, CLUSTERS).await;
    assert_eq!(rv(&list), rv(&d));
    let mut fresh = WatchStream::open(
        s.addr,
        &format!("{CLUSTERS}?watch=true&resourceVersion={}", rv(&list)),
        None,
    )
    .await
    .unwrap();
    let (_, e) = post(s.addr, CLUSTERS, &cluster("e", "x")).await;
    let ev = next_change(&mut fresh).await;
    assert_eq!(summary(&ev), ("ADDED".into(), "e".into()));
    assert_eq!(rv(&ev["object"]), rv(&e));

    // close-watches ends every open stream.
    let (code, closed) = post(s.addr, "/standin/close-watches", &json!({})).await;
    assert_eq!(code, 200);
    assert!(closed["closedWatches"].as_u64().unwrap() >= 2, "{closed}");
    for stream in [&mut fresh, &mut w] {
        // Whatever was still buffered, then the end of the stream (not a timeout).
        while let Some(e) = stream.next(WAIT).await.unwrap() {
            assert_ne!(e["type"], "ERROR", "{e}");
        }
    }
}

#[tokio::test]
async fn initial_events_and_metadata_only_requests() {
    let s = standin().await;
    post(s.addr, CLUSTERS, &cluster("a", "x")).await;
    post(s.addr, CLUSTERS, &cluster("b", "y")).await;

    // resourceVersion=0: synthetic ADDED events for the current state first.
    let mut w = WatchStream::open(
        s.addr,
        &format!("{CLUSTERS}?watch=true&resourceVersion=0"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        summary(&next_change(&mut w).await),
        ("ADDED".into(), "a".into())
    );
    assert_eq!(
        summary(&next_change(&mut w).await),
        ("ADDED".into(), "b".into())
    );

    // Streaming lists: initial events, then a bookmark marking their end.
    let all = "/apis/bootes.io/v1/clusters";
    let mut w = WatchStream::open(
        s.addr,
        &format!("{all}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&labelSelector=app%20in%20(x)"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        summary(&w.next(WAIT).await.unwrap().unwrap()),
        ("ADDED".into(), "a".into())
    );
    let bm = w.next(WAIT).await.unwrap().unwrap();
    assert_eq!(bm["type"], "BOOKMARK");
    assert_eq!(
        bm["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let err = WatchStream::open(
        s.addr,
        &format!("{all}?watch=true&sendInitialEvents=true"),
        None,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("422"), "{err}");

    // Metadata-only list and watch (what kube-rs metadata_watcher asks for).
    let r = request(s.addr, "GET", CLUSTERS, &[("Accept", METADATA_LIST)], None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let list = r.json().unwrap();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(list["items"][0]["metadata"]["labels"]["app"], "x");
    assert!(list["items"][0].get("spec").is_none());
    let mut w = WatchStream::open(
        s.addr,
        &format!(
            "{CLUSTERS}?watch=true&allowWatchBookmarks=true&resourceVersion={}",
            rv(&list)
        ),
        Some(METADATA),
    )
    .await
    .unwrap();
    post(s.addr, CLUSTERS, &cluster("c", "x")).await;
    let e = next_change(&mut w).await;
    assert_eq!(summary(&e), ("ADDED".into(), "c".into()));
    assert_eq!(e["object"]["kind"], "PartialObjectMetadata");
    assert!(e["object"].get("spec").is_none());
    let bm = w.until(WAIT, |e| e["type"] == "BOOKMARK").await.unwrap().0;
    assert_eq!(bm["object"]["kind"], "PartialObjectMetadata");
    let r = request(
        s.addr,
        "GET",
        &format!("{CLUSTERS}/a"),
        &[("Accept", METADATA)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.json().unwrap()["kind"], "PartialObjectMetadata");

    // Pods: the same through the core group.
    let (code, p) = post(
        s.addr,
        "/api/v1/namespaces/foo/pods",
        &json!({"metadata": {"name": "envoy-1", "labels": {"app": "x"}}, "spec": {"containers": [{"name": "envoy", "image": "envoy"}]}}),
    )
    .await;
    assert_eq!(code, 201, "{p}");
    let r = request(
        s.addr,
        "GET",
        "/api/v1/pods?labelSelector=app%3Dx",
        &[("Accept", METADATA_LIST)],
        None,
    )
    .await
    .unwrap();
    let pods = r.json().unwrap();
    assert_eq!(pods["items"].as_array().unwrap().len(), 1);
    assert_eq!(pods["items"][0]["metadata"]["uid"], p["metadata"]["uid"]);
}

#[tokio::test]
async fn writes_conflicts_discovery_and_errors() {
    let s = standin().await;
    let (_, a) = post(s.addr, CLUSTERS, &cluster("a", "x")).await;
    let item = format!("{CLUSTERS}/a");

    // Create twice: 409 AlreadyExists.
    let (code, st) = post(s.addr, CLUSTERS, &cluster("a", "x")).await;
    assert_eq!((code, st["reason"].as_str()), (409, Some("AlreadyExists")));

    // PUT with the current resourceVersion works, then the old one conflicts.
    let mut changed = a.clone();
    changed["spec"]["config"]["connect_timeout"] = json!("5s");
    let (code, updated) = json_request(s.addr, "PUT", &item, "application/json", Some(&changed))
        .await
        .unwrap();
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["metadata"]["generation"], 2);
    let (code, st) = json_request(s.addr, "PUT", &item, "application/json", Some(&changed))
        .await
        .unwrap();
    assert_eq!(
        (code, st["kind"].as_str(), st["reason"].as_str()),
        (409, Some("Status"), Some("Conflict"))
    );

    // PUT on /status changes only status.
    let mut with_status = updated.clone();
    with_status["status"] = json!({"nodes": 4});
    with_status["spec"] = json!({});
    let (code, s2) = json_request(
        s.addr,
        "PUT",
        &format!("{item}/status"),
        "application/json",
        Some(&with_status),
    )
    .await
    .unwrap();
    assert_eq!(code, 200, "{s2}");
    assert_eq!(s2["status"]["nodes"], 4);
    assert_eq!(s2["spec"]["config"]["connect_timeout"], "5s");
    assert_eq!(s2["metadata"]["generation"], 2);

    // Server-side apply creates (201), then updates (200); apply on /status.
    let apply = "application/apply-patch+yaml";
    let path = format!("{CLUSTERS}/ssa?fieldManager=test&force=true");
    let (code, o) = patch(s.addr, &path, apply, &cluster("ssa", "x")).await;
    assert_eq!(code, 201, "{o}");
    let mut again = cluster("ssa", "x");
    again["spec"]["config"]["type"] = json!("EDS");
    let (code, o) = patch(s.addr, &path, apply, &again).await;
    assert_eq!(code, 200, "{o}");
    assert_eq!(o["spec"]["config"]["type"], "EDS");
    assert_eq!(o["metadata"]["generation"], 2);
    let status = json!({"apiVersion": "bootes.io/v1", "kind": "Cluster", "metadata": {"name": "ssa"}, "status": {"nodes": 1}});
    let (code, o) = patch(
        s.addr,
        &format!("{CLUSTERS}/ssa/status?fieldManager=test&force=true"),
        apply,
        &status,
    )
    .await;
    assert_eq!((code, o["status"]["nodes"].as_i64()), (200, Some(1)));
    let (code, _) = patch(s.addr, &item, "text/plain", &json!({})).await;
    assert_eq!(code, 415);

    // Selectors on lists.
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, l) = get(
        s.addr,
        &format!("{CLUSTERS}?labelSelector=app%20notin%20(y),app"),
    )
    .await;
    assert_eq!(names(&l), vec!["a", "ssa"]);
    let (_, l) = get(
        s.addr,
        &format!("{CLUSTERS}?fieldSelector=metadata.name%3Dssa"),
    )
    .await;
    assert_eq!(names(&l), vec!["ssa"]);
    let (_, l) = get(
        s.addr,
        "/apis/bootes.io/v1/clusters?fieldSelector=metadata.namespace%3Dfoo&limit=1",
    )
    .await;
    assert_eq!(names(&l), vec!["a", "ssa"]);
    let (code, st) = get(s.addr, &format!("{CLUSTERS}?labelSelector=app%20in%20(x")).await;
    assert_eq!((code, st["reason"].as_str()), (400, Some("BadRequest")));

    // 404s carry a Status.
    let (code, st) = get(s.addr, &format!("{CLUSTERS}/missing")).await;
    assert_eq!(code, 404);
    assert_eq!(st["kind"], "Status");
    assert_eq!(st["reason"], "NotFound");
    assert_eq!(
        st["details"],
        json!({"name": "missing", "group": "bootes.io", "kind": "clusters"})
    );
    let (code, st) = get(s.addr, "/apis/bootes.io/v1/namespaces/foo/routes").await;
    assert_eq!((code, st["reason"].as_str()), (404, Some("NotFound")));

    // Discovery: aggregated requests get the legacy documents with a plain type.
    let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let r = request(s.addr, "GET", "/apis", &[("Accept", aggregated)], None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let groups = r.json().unwrap();
    assert_eq!(groups["kind"], "APIGroupList");
    assert!(groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "bootes.io"));
    let (_, rl) = get(s.addr, "/apis/bootes.io/v1").await;
    assert_eq!(rl["resources"][0]["name"], "clusters");
    assert_eq!(rl["resources"][1]["name"], "clusters/status");
    let (_, core) = get(s.addr, "/api").await;
    assert_eq!(core["versions"], json!(["v1"]));
    let (_, v) = get(s.addr, "/version").await;
    assert_eq!(v["major"], "1");

    // dryRun=All validates without storing.
    let (code, o) = post(
        s.addr,
        &format!("{CLUSTERS}?dryRun=All"),
        &cluster("dry", "x"),
    )
    .await;
    assert_eq!(code, 201, "{o}");
    assert_eq!(get(s.addr, &format!("{CLUSTERS}/dry")).await.0, 404);
    // Delete a collection by label.
    post(s.addr, CLUSTERS, &cluster("z1", "gone")).await;
    post(s.addr, CLUSTERS, &cluster("z2", "gone")).await;
    let (code, deleted) = json_request(
        s.addr,
        "DELETE",
        &format!("{CLUSTERS}?labelSelector=app%3Dgone"),
        "application/json",
        None,
    )
    .await
    .unwrap();
    assert_eq!(code, 200, "{deleted}");
    assert_eq!(names(&deleted), vec!["z1", "z2"]);
    let (_, l) = get(s.addr, CLUSTERS).await;
    assert_eq!(names(&l), vec!["a", "ssa"]);

    // Deleting the CRD removes its objects and its discovery.
    let (code, _) = json_request(
        s.addr,
        "DELETE",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clusters.bootes.io",
        "application/json",
        None,
    )
    .await
    .unwrap();
    assert_eq!(code, 200);
    let (code, _) = get(s.addr, "/apis/bootes.io/v1").await;
    assert_eq!(code, 404);
}
