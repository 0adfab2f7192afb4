//! Condition `Programmed` against real Envoys, in directory mode, through
//! `bootes-controller inspect rollout --wait` (from etcd alone) and the log:
//! programmed only once each Envoy's /config_dump shows the change, rejected
//! when an Envoy NACKs it, a stopped Envoy counted as not connected.

use std::process::Output;

use anyhow::{ensure, Result};
use bootes_tests::harness::{
    dynamic_clusters, eventually, find_bootes_bin, pod, Envoy, ManifestDir, Stack,
};
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
