//! Condition `Programmed` against real Envoys: in directory mode, through
//! `bootes-controller inspect rollout --wait` (from etcd alone) and the log;
//! in Kubernetes mode, through the real `kubectl wait` and `kubectl get`
//! against kube-standin. Programmed only once each Envoy's /config_dump
//! shows the change, rejected when an Envoy NACKs it, a stopped Envoy
//! counted as not connected.

use std::process::Output;

use anyhow::{ensure, Result};
use bootes_tests::harness::{
    apply_bootes_crds, dynamic_clusters, eventually, find_bootes_bin, free_port, kubectl,
    kubectl_apply, kubectl_run, listener_http, pod, route, Controller, Envoy, Etcd, ManifestDir,
    Stack, VirtualHost, XdsServer,
};
use kube_standin::client::StandinProcess;
use serde_json::{json, Value};

const OBJECT: &str = "Cluster/demo/static-a";

/// A STATIC cluster at `generation`, with `connect_timeout`; with a client
/// certificate file that does not exist when `bad_cert`: Bootes accepts it
/// (it cannot see the Envoys' files), Envoy rejects it.
fn cluster(generation: i64, timeout: &str, bad_cert: bool) -> Value {
    let mut config = json!({"name": "static-a", "type": "STATIC", "connect_timeout": timeout,
        "load_assignment": {"cluster_name": "static-a", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9}}}}]}]}});
    if bad_cert {
        config["transport_socket"] = json!({"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {"tls_certificates": [{
                "certificate_chain": {"filename": "/nonexistent/bootes-test/cert.pem"},
                "private_key": {"filename": "/nonexistent/bootes-test/key.pem"}}]}}});
    }
    json!({"apiVersion": "bootes.io/v1", "kind": "Cluster",
           "metadata": {"name": "static-a", "namespace": "demo", "generation": generation},
           "spec": {"config": config}})
}

/// `inspect rollout --wait` for `generation`: its exit code and JSON output.
fn wait_for(stack: &Stack, generation: i64, timeout: &str) -> Result<(i32, Value, String)> {
    let Output {
        status,
        stdout,
        stderr,
    } = std::process::Command::new(find_bootes_bin(
        "bootes-controller",
        "BOOTES_CONTROLLER_BIN",
    )?)
    .args(["inspect", "rollout", OBJECT, "--wait", "-o", "json"])
    .args([
        "--generation",
        &generation.to_string(),
        "--timeout",
        timeout,
    ])
    .args(["--etcd-endpoints", &stack.etcd.endpoint()])
    .output()?;
    let stdout = String::from_utf8_lossy(&stdout);
    let value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    Ok((
        status.code().unwrap_or(-1),
        value,
        String::from_utf8_lossy(&stderr).into_owned(),
    ))
}

async fn connect_timeout(envoy: &Envoy) -> Result<Option<String>> {
    let dump = envoy.config_dump().await?;
    Ok(dynamic_clusters(&dump)
        .get("static-a")
        .and_then(|c| c["connect_timeout"].as_str().map(str::to_string)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programmed_follows_what_each_envoy_runs() -> Result<()> {
    let m = ManifestDir::new()?;
    m.write_docs(
        "pods.yaml",
        &[pod("demo", "envoy-0", &[]), pod("demo", "envoy-1", &[])],
    )?;
    m.write_docs("cluster.yaml", &[cluster(1, "1s", false)])?;
    let mut stack = Stack::start(&m, 1).await?;
    let e0 = Envoy::start("envoy-0.demo", &stack.xds_addrs()).await?;
    let mut e1 = Envoy::start("envoy-1.demo", &stack.xds_addrs()).await?;

    // Programmed: by then both Envoys run it.
    let (code, out, progress) = wait_for(&stack, 1, "60s")?;
    ensure!(code == 0, "exit {code}: {out:#} {progress}");
    for e in [&e0, &e1] {
        ensure!(connect_timeout(e).await?.as_deref() == Some("1s"));
    }
    ensure!(out["objects"][0]["running"] == 2, "{out:#}");

    // A change: programmed only once both /config_dump show it.
    m.write_docs("cluster.yaml", &[cluster(2, "7s", false)])?;
    let (code, out, progress) = wait_for(&stack, 2, "60s")?;
    ensure!(code == 0, "exit {code}: {out:#} {progress}");
    for e in [&e0, &e1] {
        ensure!(connect_timeout(e).await?.as_deref() == Some("7s"));
    }
    ensure!(
        progress.contains("Cluster demo/static-a: Programmed: 2/2 nodes run generation 2"),
        "{progress}"
    );

    // Envoy rejects a certificate file it does not have: Rejected, exit 1,
    // naming both nodes with Envoy's message; they keep generation 2.
    m.write_docs("cluster.yaml", &[cluster(3, "3s", true)])?;
    let (code, out, progress) = wait_for(&stack, 3, "60s")?;
    ensure!(code == 1, "exit {code}: {out:#} {progress}");
    let o = &out["objects"][0];
    ensure!(o["reason"] == "Rejected" && o["generation"] == 3, "{o:#}");
    let rejected = o["rejected"].as_array().cloned().unwrap_or_default();
    ensure!(rejected.len() == 2, "{o:#}");
    ensure!(
        rejected.iter().all(|r| r["error"]
            .as_str()
            .is_some_and(|e| e.contains("/nonexistent/bootes-test"))),
        "{o:#}"
    );
    ensure!(connect_timeout(&e0).await?.as_deref() == Some("7s"));
    // The directory-mode log says it too.
    let stderr = stack.controller.process().stderr_path().to_path_buf();
    eventually("the log reports the object Rejected", || async {
        let log = std::fs::read_to_string(&stderr)?;
        ensure!(log.lines().any(|l| l.contains("Cluster demo/static-a")
            && l.contains("programmed")
            && l.contains("Rejected")));
        Ok(())
    })
    .await?;

    // A stopped Envoy is not connected and does not hold the fix back.
    e1.process().kill();
    m.write_docs("cluster.yaml", &[cluster(4, "4s", false)])?;
    let (code, out, progress) = wait_for(&stack, 4, "60s")?;
    ensure!(code == 0, "exit {code}: {out:#} {progress}");
    let o = &out["objects"][0];
    ensure!(o["notConnected"] == json!(["envoy-1.demo"]), "{o:#}");
    ensure!(o["running"] == 1 && o["targeted"] == 2, "{o:#}");
    ensure!(connect_timeout(&e0).await?.as_deref() == Some("4s"));

    // Waiting for a generation that never comes: exit 2.
    let (code, _, progress) = wait_for(&stack, 99, "1s")?;
    ensure!(code == 2, "exit {code}: {progress}");
    ensure!(
        progress.contains("generation 99 not in etcd yet"),
        "{progress}"
    );
    Ok(())
}

/// `cluster` as a Kubernetes object: the API server sets the generation.
fn kube_cluster(timeout: &str, bad_cert: bool) -> Value {
    let mut c = cluster(0, timeout, bad_cert);
    c["metadata"]
        .as_object_mut()
        .map(|m| m.remove("generation"));
    c
}

/// `kubectl wait --for=condition=Programmed RESOURCE -n demo` (the real
/// kubectl, which also waits for the condition's observedGeneration to
/// reach the object's generation): whether it succeeded, and what it said.
async fn kubectl_wait(
    standin: &StandinProcess,
    resource: &str,
    timeout: &str,
) -> Result<(bool, String)> {
    let out = kubectl_run(
        standin,
        &[
            "wait",
            "--for=condition=Programmed",
            resource,
            "-n",
            "demo",
            &format!("--timeout={timeout}"),
        ],
        None,
    )
    .await?;
    Ok((out.ok, out.stdout + &out.stderr))
}

/// The `Programmed` condition of `resource` as `kubectl get -o json` shows it.
async fn programmed_condition(standin: &StandinProcess, resource: &str) -> Result<Value> {
    let out = kubectl(
        standin,
        &["get", resource, "-n", "demo", "-o", "json"],
        None,
    )
    .await?;
    let object: Value = serde_json::from_str(&out)?;
    Ok(object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Programmed")
        .cloned()
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_wait_for_programmed_follows_what_envoy_runs() -> Result<()> {
    let standin = StandinProcess::start(find_bootes_bin("kube-standin", "KUBE_STANDIN_BIN")?)?;
    apply_bootes_crds(&standin).await?;
    kubectl(&standin, &["create", "namespace", "demo"], None).await?;
    let port = free_port();
    kubectl_apply(
        &standin,
        &[
            kube_cluster("1s", false),
            listener_http("demo", "edge", "edge", port, "edge", &[]),
            route(
                "demo",
                "edge",
                "edge",
                &[VirtualHost::new("all", &["*"], &[("/", "static-a")])],
                &[],
            ),
            pod("demo", "envoy-0", &[]),
        ],
    )
    .await?;
    let etcd = Etcd::start().await?;
    let _controller = Controller::start_kube("controller", &etcd, &standin.kubeconfig, &[]).await?;
    let xds = XdsServer::start(&etcd, "a").await?;
    let envoy = Envoy::start("envoy-0.demo", &[xds.addr()]).await?;

    // Until the Envoy connects, its node does not hold Programmed back (it
    // is counted as not connected); once it runs the objects, 1/1 of the
    // connected nodes do, and `kubectl get` shows it in the PROGRAMMED column.
    envoy.wait_for_listener("edge").await?;
    eventually("kubectl get shows PROGRAMMED 1/1", || async {
        let table = kubectl(&standin, &["get", "clusters.bootes.io", "-n", "demo"], None).await?;
        let header: Vec<&str> = table
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let row: Vec<&str> = table
            .lines()
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let column = header.iter().position(|h| *h == "PROGRAMMED");
        ensure!(
            column.is_some() && column.and_then(|c| row.get(c)) == Some(&"1/1"),
            "{table}"
        );
        Ok(())
    })
    .await?;
    ensure!(connect_timeout(&envoy).await?.as_deref() == Some("1s"));
    // The real `kubectl wait`, on two kinds.
    for resource in ["clusters.bootes.io/static-a", "listeners.bootes.io/edge"] {
        let (ok, said) = kubectl_wait(&standin, resource, "60s").await?;
        ensure!(ok && said.contains("condition met"), "{resource}: {said}");
    }

    // A change (generation 2): `kubectl wait` waits for the condition of
    // generation 2, which comes only once Envoy's /config_dump shows it.
    kubectl_apply(&standin, &[kube_cluster("7s", false)]).await?;
    let (ok, said) = kubectl_wait(&standin, "clusters.bootes.io/static-a", "60s").await?;
    ensure!(ok, "{said}");
    ensure!(connect_timeout(&envoy).await?.as_deref() == Some("7s"));
    let condition = programmed_condition(&standin, "clusters.bootes.io/static-a").await?;
    ensure!(
        condition["observedGeneration"] == 2
            && condition["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("1/1 nodes run generation 2")),
        "{condition}"
    );

    // Envoy rejects generation 3: `kubectl wait` times out; the condition
    // says Rejected with Envoy's message, and Envoy keeps generation 2.
    kubectl_apply(&standin, &[kube_cluster("3s", true)]).await?;
    eventually("Programmed=False Rejected for generation 3", || async {
        let c = programmed_condition(&standin, "clusters.bootes.io/static-a").await?;
        ensure!(
            c["observedGeneration"] == 3
                && c["status"] == "False"
                && c["reason"] == "Rejected"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("/nonexistent/bootes-test")),
            "{c}"
        );
        Ok(())
    })
    .await?;
    let (ok, said) = kubectl_wait(&standin, "clusters.bootes.io/static-a", "2s").await?;
    ensure!(!ok && said.contains("timed out"), "{said}");
    ensure!(connect_timeout(&envoy).await?.as_deref() == Some("7s"));

    // Events, read with the real kubectl: programmed after a rollout, then
    // rejected by Envoy (with its message), on the object.
    let events = |object: &'static str, want: &'static [&'static str]| {
        let standin = &standin;
        async move {
            eventually(
                &format!("kubectl describe {object} shows {want:?}"),
                || async {
                    let out = kubectl(standin, &["describe", object, "-n", "demo"], None).await?;
                    let events = out.split("Events:").nth(1).unwrap_or_default();
                    for line in want {
                        ensure!(
                            events.lines().any(|l| {
                                let words: Vec<&str> = line.split(' ').collect();
                                words.iter().all(|w| l.contains(w))
                            }),
                            "no event line with {line:?} in {out}"
                        );
                    }
                    Ok(())
                },
            )
            .await
        }
    };
    events(
        "clusters.bootes.io/static-a",
        &[
            "Normal Programmed bootes-controller 1/1 nodes run generation",
            "Warning Rejected bootes-controller envoy-0.demo: /nonexistent/bootes-test/",
        ],
    )
    .await?;

    // Rejected by validation, and a conflict: Warning Events naming the
    // field and the winner.
    let mut bad = kube_cluster("1s", false);
    bad["metadata"]["name"] = json!("bad");
    bad["spec"]["config"]["conect_timeout"] = json!("1s");
    let mut copy = kube_cluster("1s", false);
    copy["metadata"]["name"] = json!("copy");
    kubectl_apply(&standin, &[bad, copy]).await?;
    events(
        "clusters.bootes.io/bad",
        &["Warning InvalidConfig bootes-controller spec.config.conect_timeout"],
    )
    .await?;
    events(
        "clusters.bootes.io/copy",
        &["Warning Conflict bootes-controller Cluster demo/static-a"],
    )
    .await?;
    // `kubectl get events` lists them as the API server does.
    let table = kubectl(&standin, &["get", "events", "-n", "demo"], None).await?;
    ensure!(
        table.starts_with("LAST SEEN")
            && table.lines().any(|l| l.contains("Warning")
                && l.contains("Rejected")
                && l.contains("cluster/static-a")),
        "{table}"
    );
    Ok(())
}
