//! End to end, Kubernetes mode (issue 4, item 7): a real `kubectl` applies
//! the generated CRDs, Bootes objects and pods to `kube-standin` (the
//! Kubernetes API stand-in); `bootes-controller run` (no `--manifests`,
//! `KUBECONFIG` pointing at the stand-in) reconciles into a real etcd; a real
//! Envoy (node ID `envoy-0.envoy`) gets its configuration from a
//! `bootes-xds-server` replica and routes real HTTP requests; and an
//! Endpoint naming a Service follows the EndpointSlices kubectl applies.
//!
//! Needs `cargo build --workspace --bins` first (the Bootes binaries are found
//! next to this test executable), etcd, Envoy and kubectl.

use anyhow::{bail, ensure, Context, Result};
use bootes_tests::harness::{
    apply_bootes_crds, cluster_eds, endpoint, endpoint_for_service, endpoint_slice, eventually,
    expect_routed, expect_spread, expect_status, find_bootes_bin, free_port, kubectl,
    kubectl_apply, listener_http, route, Controller, Envoy, Etcd, SliceEndpoint, Upstream,
    VirtualHost, XdsServer,
};
use kube_standin::client::StandinProcess;
use serde_json::{json, Value};

const PREFIX: &str = "/bootes/v1/";
const NS: &str = "envoy";
const EDGE: &[(&str, &str)] = &[("app", "edge")];
const CANARY: &[(&str, &str)] = &[("track", "canary")];
/// A short lease, so that a killed leader is replaced quickly.
const KUBE_ARGS: &[&str] = &["--leader-lease-ttl", "2s"];

async fn apply(standin: &StandinProcess, docs: &[Value]) -> Result<String> {
    kubectl_apply(standin, docs).await
}

/// `kubectl get RESOURCE NAME -n NS -o json`.
async fn get_json(standin: &StandinProcess, resource: &str, name: &str) -> Result<Value> {
    let out = kubectl(
        standin,
        &["get", resource, name, "-n", NS, "-o", "json"],
        None,
    )
    .await?;
    serde_json::from_str(&out).context("kubectl -o json")
}

/// A Pod standing for an Envoy (real API servers need a container).
fn envoy_pod(namespace: &str, name: &str, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "envoy", "image": "envoyproxy/envoy:v1.40.0"}]},
    })
}

/// The `Accepted` condition and node count of an object, once its status
/// describes its current generation.
struct Accepted {
    status: String,
    reason: String,
    message: String,
    nodes: i64,
}

async fn accepted(standin: &StandinProcess, resource: &str, name: &str) -> Result<Accepted> {
    let object = get_json(standin, resource, name).await?;
    let status = &object["status"];
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
    ensure!(
        status["observedGeneration"].as_i64() == Some(generation),
        "{resource} {name}: status is not for generation {generation} yet: {status}"
    );
    let Some(condition) = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Accepted")
    else {
        bail!("{resource} {name}: no Accepted condition yet: {status}");
    };
    ensure!(condition["observedGeneration"].as_i64() == Some(generation));
    ensure!(
        condition["lastTransitionTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{condition}"
    );
    Ok(Accepted {
        status: condition["status"].as_str().unwrap_or_default().into(),
        reason: condition["reason"].as_str().unwrap_or_default().into(),
        message: condition["message"].as_str().unwrap_or_default().into(),
        nodes: status["nodes"].as_i64().unwrap_or(-1),
    })
}

/// Waits until `resource name` is `Accepted=want` with `reason` and `nodes`.
async fn expect_accepted(
    standin: &StandinProcess,
    resource: &str,
    name: &str,
    want: bool,
    reason: &str,
    nodes: i64,
) -> Result<Accepted> {
    let want = if want { "True" } else { "False" };
    eventually(
        &format!("{resource} {name}: Accepted={want} ({reason}), nodes {nodes}"),
        || async {
            let a = accepted(standin, resource, name).await?;
            ensure!(
                a.status == want && a.reason == reason && a.nodes == nodes,
                "Accepted={} ({}) nodes {}: {}",
                a.status,
                a.reason,
                a.nodes,
                a.message
            );
            Ok(a)
        },
    )
    .await
}

async fn expect_keys(etcd: &Etcd, present: &[String], absent: &[String]) -> Result<()> {
    eventually(
        &format!("etcd has {present:?} and not {absent:?}"),
        || async {
            let keys = etcd.keys(PREFIX).await?;
            for k in present {
                ensure!(keys.contains(k), "{k} missing: {keys:?}");
            }
            for k in absent {
                ensure!(!keys.contains(k), "{k} still there: {keys:?}");
            }
            Ok(())
        },
    )
    .await
}

fn node_key(node: &str) -> String {
    format!("{PREFIX}nodes/{node}")
}

/// The process ID at the end of the identity in the leader key.
async fn leader_pid(etcd: &Etcd) -> Result<u32> {
    let mut client = etcd_client::Client::connect([etcd.endpoint()], None).await?;
    let resp = client.get(format!("{PREFIX}leader"), None).await?;
    let kv = resp.kvs().first().context("no leader key")?;
    let identity = String::from_utf8_lossy(kv.value()).into_owned();
    identity
        .rsplit('-')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("leader identity {identity:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_managed_objects_reach_envoy_with_status_and_pod_tracking() {
    let up_a = Upstream::start("upstream-a").await.unwrap();
    let up_b = Upstream::start("upstream-b").await.unwrap();
    let standin =
        StandinProcess::start(find_bootes_bin("kube-standin", "KUBE_STANDIN_BIN").unwrap())
            .unwrap();

    // The CRDs exactly as `bootes-controller crds` generates them.
    let out = apply_bootes_crds(&standin).await.unwrap();
    assert_eq!(out.matches(" created").count(), 9, "{out}");

    // The seed-like set: listener → RDS route → EDS cluster → endpoint on
    // upstream A, for `app: edge`; and a canary listener/route/cluster on
    // upstream B for `track: canary`, which no pod has yet.
    let port = free_port();
    let canary_port = free_port();
    kubectl(&standin, &["create", "namespace", NS], None)
        .await
        .unwrap();
    kubectl(&standin, &["create", "namespace", "other"], None)
        .await
        .unwrap();
    apply(
        &standin,
        &[
            listener_http(NS, "listener-1", "listener_1", port, "route-1", EDGE),
            route(
                NS,
                "route-1",
                "route-1",
                &[VirtualHost::new("service", &["*"], &[("/", "cluster-1")])],
                EDGE,
            ),
            cluster_eds(NS, "cluster-1", "cluster-1", EDGE),
            endpoint(NS, "endpoint-1", "cluster-1", &[up_a.addr()], EDGE),
            listener_http(
                NS,
                "canary-listener",
                "canary_listener",
                canary_port,
                "canary-route",
                CANARY,
            ),
            route(
                NS,
                "canary-route",
                "canary-route",
                &[VirtualHost::new("canary", &["*"], &[("/", "canary")])],
                CANARY,
            ),
            cluster_eds(NS, "canary", "canary", CANARY),
            endpoint(NS, "canary-endpoint", "canary", &[up_b.addr()], CANARY),
            envoy_pod(NS, "envoy-0", EDGE),
            // Same labels, other namespace, no objects there: never bound.
            envoy_pod("other", "envoy-x", EDGE),
        ],
    )
    .await
    .unwrap();

    let etcd = Etcd::start().await.unwrap();
    // Two replicas: one leads (writes etcd and status), one keeps its index warm.
    let mut controllers = [
        Controller::start_kube("controller-1", &etcd, &standin.kubeconfig, KUBE_ARGS)
            .await
            .unwrap(),
        Controller::start_kube("controller-2", &etcd, &standin.kubeconfig, KUBE_ARGS)
            .await
            .unwrap(),
    ];
    let xds = XdsServer::start(&etcd, "a").await.unwrap();
    let envoy = Envoy::start(&format!("envoy-0.{NS}"), &[xds.addr()])
        .await
        .unwrap();

    envoy.wait_for_listener("listener_1").await.unwrap();
    expect_routed(port, "example.com", "/", "upstream-a")
        .await
        .unwrap();
    for name in ["listener-1", "route-1", "cluster-1", "endpoint-1"] {
        let kind = match name {
            "listener-1" => "listeners.bootes.io",
            "route-1" => "routes.bootes.io",
            "cluster-1" => "clusters.bootes.io",
            _ => "endpoints.bootes.io",
        };
        expect_accepted(&standin, kind, name, true, "Valid", 1)
            .await
            .unwrap();
    }
    // Objects that select no pod are accepted and reach no node.
    expect_accepted(&standin, "blis", "canary-listener", true, "Valid", 0)
        .await
        .unwrap();
    assert!(!envoy
        .listener_names()
        .await
        .unwrap()
        .contains("canary_listener"));
    expect_keys(
        &etcd,
        &[node_key("envoy-0.envoy")],
        &[node_key("envoy-x.other")],
    )
    .await
    .unwrap();

    // `kubectl get bootes` lists every kind through the category, with the
    // printer columns.
    eventually("kubectl get bootes lists 8 accepted objects", || async {
        let table = kubectl(&standin, &["get", "bootes", "-n", NS], None).await?;
        ensure!(
            table.contains("ACCEPTED") && table.contains("RESOLVEDREFS") && table.contains("NODES"),
            "{table}"
        );
        // Columns: NAME ACCEPTED REASON RESOLVEDREFS NODES AGE.
        let accepted = table
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("True"))
            .count();
        ensure!(accepted == 8, "{table}");
        Ok(())
    })
    .await
    .unwrap();

    // A bad object: an unknown field in spec.config. Rejected with the field
    // named; Envoy keeps everything else and never sees it.
    apply(
        &standin,
        &[json!({
            "apiVersion": "bootes.io/v1",
            "kind": "Cluster",
            "metadata": {"name": "bad", "namespace": NS},
            "spec": {
                "workloadSelector": {"labels": {"app": "edge"}},
                "config": {"name": "bad", "conect_timeout": "1s", "type": "STATIC"},
            },
        })],
    )
    .await
    .unwrap();
    let bad = expect_accepted(
        &standin,
        "clusters.bootes.io",
        "bad",
        false,
        "InvalidConfig",
        0,
    )
    .await
    .unwrap();
    assert!(bad.message.contains("conect_timeout"), "{}", bad.message);
    let table = kubectl(&standin, &["get", "bcl", "-n", NS, "bad"], None)
        .await
        .unwrap();
    assert!(
        table.contains("False") && table.contains("InvalidConfig"),
        "{table}"
    );
    expect_routed(port, "example.com", "/", "upstream-a")
        .await
        .unwrap();
    let clusters = envoy.cluster_names().await.unwrap();
    assert!(
        clusters.contains("cluster-1") && !clusters.contains("bad"),
        "{clusters:?}"
    );

    // Fixed: accepted (the condition flips) and delivered.
    apply(
        &standin,
        &[json!({
            "apiVersion": "bootes.io/v1",
            "kind": "Cluster",
            "metadata": {"name": "bad", "namespace": NS},
            "spec": {
                "workloadSelector": {"labels": {"app": "edge"}},
                "config": {"name": "bad", "connect_timeout": "1s", "type": "STATIC"},
            },
        })],
    )
    .await
    .unwrap();
    expect_accepted(&standin, "clusters.bootes.io", "bad", true, "Valid", 1)
        .await
        .unwrap();
    envoy.wait_for_cluster("bad").await.unwrap();

    // A route to a cluster no object provides: accepted, ResolvedRefs=False
    // naming the node that misses it, shown by `kubectl get`.
    apply(
        &standin,
        &[json!({
            "apiVersion": "bootes.io/v1",
            "kind": "Route",
            "metadata": {"name": "dangling", "namespace": NS},
            "spec": {
                "workloadSelector": {"labels": {"app": "edge"}},
                "config": {"name": "dangling", "virtual_hosts": [{"name": "v", "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "nowhere"}}]}]},
            },
        })],
    )
    .await
    .unwrap();
    expect_accepted(&standin, "routes.bootes.io", "dangling", true, "Valid", 1)
        .await
        .unwrap();
    eventually(
        "Route dangling: ResolvedRefs=False naming envoy-0",
        || async {
            let object = get_json(&standin, "routes.bootes.io", "dangling").await?;
            let condition = object["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "ResolvedRefs")
                .cloned()
                .unwrap_or_default();
            ensure!(
                condition["status"] == "False"
                    && condition["reason"] == "UnresolvedReferences"
                    && condition["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("route to cluster \"nowhere\"")),
                "{condition}"
            );
            let table = kubectl(&standin, &["get", "brt", "-n", NS, "dangling"], None).await?;
            let row: Vec<&str> = table
                .lines()
                .nth(1)
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            ensure!(
                row.get(1..4) == Some(&["True", "Valid", "False"][..]),
                "{table}"
            );
            Ok(())
        },
    )
    .await
    .unwrap();

    // Relabelled: the pod gains the canary objects, and keeps the others.
    kubectl(
        &standin,
        &[
            "label",
            "pod",
            "envoy-0",
            "-n",
            NS,
            "track=canary",
            "--overwrite",
        ],
        None,
    )
    .await
    .unwrap();
    envoy.wait_for_listener("canary_listener").await.unwrap();
    expect_routed(canary_port, "example.com", "/", "upstream-b")
        .await
        .unwrap();
    expect_routed(port, "example.com", "/", "upstream-a")
        .await
        .unwrap();
    expect_accepted(&standin, "blis", "canary-listener", true, "Valid", 1)
        .await
        .unwrap();

    // A second pod is bound (node count 2), and deleting it removes its
    // binding (node count back to 1); the first Envoy is untouched.
    apply(&standin, &[envoy_pod(NS, "envoy-1", EDGE)])
        .await
        .unwrap();
    expect_keys(&etcd, &[node_key("envoy-1.envoy")], &[])
        .await
        .unwrap();
    expect_accepted(&standin, "blis", "listener-1", true, "Valid", 2)
        .await
        .unwrap();
    kubectl(&standin, &["delete", "pod", "envoy-1", "-n", NS], None)
        .await
        .unwrap();
    expect_keys(
        &etcd,
        &[node_key("envoy-0.envoy")],
        &[node_key("envoy-1.envoy"), node_key("envoy-x.other")],
    )
    .await
    .unwrap();
    expect_accepted(&standin, "blis", "listener-1", true, "Valid", 1)
        .await
        .unwrap();
    expect_routed(port, "example.com", "/", "upstream-a")
        .await
        .unwrap();

    // Leader failover: SIGKILL the leader (no resignation: its lease must
    // expire); the other replica takes over etcd and status writes.
    let leader = leader_pid(&etcd).await.unwrap();
    let pids = controllers.each_mut().map(|c| c.process().pid());
    assert!(pids.contains(&leader), "leader {leader} is one of {pids:?}");
    let survivor = usize::from(pids[0] == leader);
    controllers[1 - survivor].process().kill();
    apply(
        &standin,
        &[endpoint(
            NS,
            "endpoint-1",
            "cluster-1",
            &[up_b.addr()],
            EDGE,
        )],
    )
    .await
    .unwrap();
    expect_routed(port, "example.com", "/", "upstream-b")
        .await
        .unwrap();
    assert_eq!(leader_pid(&etcd).await.unwrap(), pids[survivor]);
    // Status is written by the new leader too.
    apply(
        &standin,
        &[json!({
            "apiVersion": "bootes.io/v1",
            "kind": "Cluster",
            "metadata": {"name": "bad-after-failover", "namespace": NS},
            "spec": {"config": {"name": "x", "type": "NOT_A_TYPE"}},
        })],
    )
    .await
    .unwrap();
    expect_accepted(
        &standin,
        "clusters.bootes.io",
        "bad-after-failover",
        false,
        "InvalidConfig",
        0,
    )
    .await
    .unwrap();
    controllers[survivor].process().check_running().unwrap();
}

/// Issue 14 in Kubernetes mode: an Endpoint naming a Service (by port number)
/// follows the Service's EndpointSlices as `kubectl apply` changes them,
/// through the controller's EndpointSlice watcher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_a_services_slices_applied_with_kubectl() {
    let pods = Upstream::start_pods(21, 2).await.unwrap();
    let pod_port = pods[0].addr().port();
    let standin =
        StandinProcess::start(find_bootes_bin("kube-standin", "KUBE_STANDIN_BIN").unwrap())
            .unwrap();
    apply_bootes_crds(&standin).await.unwrap();
    kubectl(&standin, &["create", "namespace", NS], None)
        .await
        .unwrap();
    let port = free_port();
    let slice = |endpoints: &[SliceEndpoint]| {
        endpoint_slice(NS, "web-x1", "web", "http", pod_port, endpoints)
    };
    apply(
        &standin,
        &[
            listener_http(NS, "listener-1", "listener_1", port, "route-1", EDGE),
            route(
                NS,
                "route-1",
                "route-1",
                &[VirtualHost::new("web", &["*"], &[("/", "web")])],
                EDGE,
            ),
            cluster_eds(NS, "web", "web", EDGE),
            endpoint_for_service(NS, "web", "web", "web", json!(pod_port), EDGE),
            envoy_pod(NS, "envoy-0", EDGE),
            slice(&[SliceEndpoint::Ready(pods[0].addr().ip())]),
        ],
    )
    .await
    .unwrap();

    let etcd = Etcd::start().await.unwrap();
    let _controller = Controller::start_kube("controller", &etcd, &standin.kubeconfig, &[])
        .await
        .unwrap();
    let xds = XdsServer::start(&etcd, "a").await.unwrap();
    let envoy = Envoy::start(&format!("envoy-0.{NS}"), &[xds.addr()])
        .await
        .unwrap();
    envoy.wait_for_listener("listener_1").await.unwrap();
    expect_spread(port, "example.com", "/", &[&pods[0]])
        .await
        .unwrap();
    expect_accepted(&standin, "endpoints.bootes.io", "web", true, "Valid", 1)
        .await
        .unwrap();

    // Scale up, applied as the EndpointSlice controller would write it.
    let out = apply(
        &standin,
        &[slice(&[
            SliceEndpoint::Ready(pods[0].addr().ip()),
            SliceEndpoint::Ready(pods[1].addr().ip()),
        ])],
    )
    .await
    .unwrap();
    assert!(out.contains("configured"), "{out}");
    expect_spread(port, "example.com", "/", &[&pods[0], &pods[1]])
        .await
        .unwrap();

    // The first pod fails its readiness probe.
    apply(
        &standin,
        &[slice(&[
            SliceEndpoint::NotReady(pods[0].addr().ip()),
            SliceEndpoint::Ready(pods[1].addr().ip()),
        ])],
    )
    .await
    .unwrap();
    expect_spread(port, "example.com", "/", &[&pods[1]])
        .await
        .unwrap();

    // A malformed endpoint (which a slice writer other than Kubernetes'
    // could produce) is left out and named on the Endpoint, not skipped
    // silently; the others keep serving.
    let mut malformed = slice(&[
        SliceEndpoint::NotReady(pods[0].addr().ip()),
        SliceEndpoint::Ready(pods[1].addr().ip()),
    ]);
    malformed["endpoints"]
        .as_array_mut()
        .unwrap()
        .push(json!({"addresses": ["10.0.0.x"], "conditions": {"ready": true}}));
    apply(&standin, &[malformed]).await.unwrap();
    eventually("the Endpoint names the malformed slice field", || async {
        let a = accepted(&standin, "endpoints.bootes.io", "web").await?;
        ensure!(
            a.status == "True"
                && a.message.contains(&format!(
                    r#"spec.service: EndpointSlice {NS}/web-x1: endpoints[2].addresses[0]: "10.0.0.x" is not an IPv4 address"#
                )),
            "Accepted={} {:?}",
            a.status,
            a.message
        );
        Ok(())
    })
    .await
    .unwrap();
    // And a Warning Event on the Endpoint names them too.
    eventually(
        "kubectl describe shows the slice's Warning Event",
        || async {
            let out = kubectl(
                &standin,
                &["describe", "endpoints.bootes.io", "web", "-n", NS],
                None,
            )
            .await?;
            let events = out.split("Events:").nth(1).unwrap_or_default();
            ensure!(
                events.lines().any(|l| l.contains("Warning")
                    && l.contains("MalformedEndpointSlice")
                    && l.contains(&format!(
                        "EndpointSlice {NS}/web-x1: endpoints[2].addresses[0]"
                    ))),
                "{out}"
            );
            Ok(())
        },
    )
    .await
    .unwrap();
    expect_spread(port, "example.com", "/", &[&pods[1]])
        .await
        .unwrap();

    // The Service's slices are deleted: no endpoints, the cluster stays.
    kubectl(
        &standin,
        &["delete", "endpointslice", "-n", NS, "web-x1"],
        None,
    )
    .await
    .unwrap();
    eventually("Envoy has no endpoints for web", || async {
        let addrs = envoy.endpoint_addrs("web").await?;
        ensure!(addrs.is_empty(), "{addrs:?}");
        Ok(())
    })
    .await
    .unwrap();
    assert!(envoy.cluster_names().await.unwrap().contains("web"));
    expect_status(port, "example.com", "/", 503).await.unwrap();
}
