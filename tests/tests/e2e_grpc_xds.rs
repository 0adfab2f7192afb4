//! A client we did not write: grpcio's proxyless xDS resolver (`xds:///`)
//! resolves a target through Bootes objects served by bootes-xds-server and
//! completes real calls, also after the Endpoint object moves it to another
//! server.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use bootes_tests::harness::{
    eventually, pod, test_dir, ChildProcess, Controller, Etcd, ManifestDir, San, Stack, TestCa,
    XdsServer,
};
use serde_json::{json, Value};

/// The venv Python that has grpcio (`scripts/install-tools.sh`).
fn python() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BOOTES_PYTHON").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let tools = std::env::var_os("BOOTES_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/bootes-tools")
        });
    let p = tools.join("venv/bin/python");
    if p.is_file() {
        Ok(p)
    } else {
        bail!("{} not found: run scripts/install-tools.sh (it installs grpcio there) or set BOOTES_PYTHON", p.display())
    }
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// A gRPC echo server answering "<name>: <request>"; returns it with its port.
async fn echo_server(name: &str, dir: &std::path::Path) -> Result<(ChildProcess, u16)> {
    let mut cmd = Command::new(python()?);
    cmd.arg(script("grpc_echo_server.py"))
        .args(["--name", name]);
    let proc = ChildProcess::spawn(&format!("echo-{name}"), &mut cmd, dir)?;
    let stdout = proc.stdout_path().to_path_buf();
    let port = eventually(&format!("echo server {name} listening"), || async {
        let text = std::fs::read_to_string(&stdout)?;
        let port = text
            .lines()
            .find_map(|l| l.strip_prefix("listening on 127.0.0.1:"))
            .context("no port yet")?;
        Ok(port.trim().parse::<u16>()?)
    })
    .await?;
    Ok((proc, port))
}

/// Listener (an API listener: what a proxyless client resolves), its routes,
/// an EDS cluster and its endpoints, for the target `echo`.
fn objects(port: u16) -> Vec<Value> {
    let hcm = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
    let meta = |name: &str| json!({"name": name, "namespace": "demo"});
    vec![
        json!({"apiVersion": "bootes.io/v1", "kind": "Listener", "metadata": meta("echo"),
        "spec": {"workloadSelector": {"labels": {"app": "grpc-client"}}, "config": {
            "name": "echo",
            "api_listener": {"api_listener": {
                "@type": hcm,
                "stat_prefix": "echo",
                "rds": {"route_config_name": "echo-routes",
                        "config_source": {"ads": {}, "resource_api_version": "V3"}},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }}}}}),
        json!({"apiVersion": "bootes.io/v1", "kind": "Route", "metadata": meta("echo-routes"),
               "spec": {"config": {"name": "echo-routes", "virtual_hosts": [{
                   "name": "echo", "domains": ["*"],
                   "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "echo-cluster"}}]}]}}}),
        json!({"apiVersion": "bootes.io/v1", "kind": "Cluster", "metadata": meta("echo-cluster"),
               "spec": {"config": {"name": "echo-cluster", "type": "EDS", "lb_policy": "ROUND_ROBIN",
                   "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}}}}),
        json!({"apiVersion": "bootes.io/v1", "kind": "Endpoint", "metadata": meta("echo-endpoints"),
               "spec": {"config": {"cluster_name": "echo-cluster", "endpoints": [{
                   // gRPC ignores localities without a weight.
                   "locality": {"zone": "local"}, "load_balancing_weight": 1,
                   "lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                       "address": "127.0.0.1", "port_value": port}}}}]}]}}}),
        pod("demo", "grpc-client", &[("app", "grpc-client")]),
    ]
}

/// Runs the proxyless client until it is answered by `expect`.
fn call(bootstrap: &std::path::Path, expect: &str) -> Result<String> {
    let out = Command::new(python()?)
        .arg(script("grpc_xds_client.py"))
        .args([
            "--target",
            "xds:///echo",
            "--expect",
            expect,
            "--deadline",
            "60",
        ])
        .env("GRPC_XDS_BOOTSTRAP", bootstrap)
        .output()
        .context("running the gRPC client")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "client failed: {}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxyless_grpc_client_resolves_and_calls_through_bootes_objects() -> Result<()> {
    let dir = test_dir("grpc-xds")?;
    let (_a, port_a) = echo_server("echo-a", dir.path()).await?;
    let (_b, port_b) = echo_server("echo-b", dir.path()).await?;

    let manifests = ManifestDir::new()?;
    manifests.write_docs("echo.yaml", &objects(port_a))?;
    let stack = Stack::start(&manifests, 1).await?;

    let bootstrap = dir.path().join("grpc-bootstrap.json");
    std::fs::write(
        &bootstrap,
        serde_json::to_vec_pretty(&json!({
            "xds_servers": [{
                "server_uri": stack.xds[0].addr().to_string(),
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"]
            }],
            "node": {"id": "grpc-client.demo", "cluster": "demo", "locality": {"zone": "local"}}
        }))?,
    )?;

    let bootstrap_a = bootstrap.clone();
    let answer = tokio::task::spawn_blocking(move || call(&bootstrap_a, "echo-a")).await??;
    assert_eq!(answer, "echo-a: ping");

    // Moving the endpoint moves the calls.
    manifests.write_docs("echo.yaml", &objects(port_b))?;
    let answer = tokio::task::spawn_blocking(move || call(&bootstrap, "echo-b")).await??;
    assert_eq!(answer, "echo-b: ping");
    Ok(())
}

/// grpcio's xDS client over mutual TLS (the bootstrap's `tls` channel
/// credentials, gRFC A65): its certificate's DNS name is its node ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxyless_grpc_client_works_over_mutual_tls() -> Result<()> {
    let dir = test_dir("grpc-xds-tls")?;
    let (_a, port_a) = echo_server("echo-a", dir.path()).await?;
    let manifests = ManifestDir::new()?;
    manifests.write_docs("echo.yaml", &objects(port_a))?;

    let ca = TestCa::new("grpc test CA");
    let ca_file = ca.write(dir.path(), "ca.crt");
    let server = ca.issue_localhost().write(dir.path(), "server");
    let client = ca
        .issue("grpc-client", &[San::Dns("grpc-client.demo")])
        .write(dir.path(), "client");
    let etcd = Etcd::start().await?;
    let _controller = Controller::start(&etcd, manifests.path()).await?;
    let xds = XdsServer::start_with_args(
        &etcd,
        "tls",
        &[
            "--tls-cert",
            &server.cert.display().to_string(),
            "--tls-key",
            &server.key.display().to_string(),
            "--tls-client-ca",
            &ca_file.display().to_string(),
        ],
    )
    .await?;

    let bootstrap = dir.path().join("grpc-bootstrap.json");
    std::fs::write(
        &bootstrap,
        serde_json::to_vec_pretty(&json!({
            "xds_servers": [{
                // The name the server certificate carries.
                "server_uri": format!("localhost:{}", xds.addr().port()),
                "channel_creds": [{"type": "tls", "config": {
                    "ca_certificate_file": ca_file,
                    "certificate_file": client.cert,
                    "private_key_file": client.key
                }}],
                "server_features": ["xds_v3"]
            }],
            "node": {"id": "grpc-client.demo", "cluster": "demo", "locality": {"zone": "local"}}
        }))?,
    )?;
    let answer = tokio::task::spawn_blocking(move || call(&bootstrap, "echo-a")).await??;
    assert_eq!(answer, "echo-a: ping");
    Ok(())
}

/// A proxyless client asking for a target the node's configuration lacks
/// is told so by the server (xRFC TP3 NOT_FOUND) and fails its RPC with
/// that reason, instead of waiting out its does-not-exist timer (15 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxyless_grpc_client_fails_fast_on_a_name_that_does_not_exist() -> Result<()> {
    let dir = test_dir("grpc-xds-missing")?;
    let (_a, port_a) = echo_server("echo-a", dir.path()).await?;
    let manifests = ManifestDir::new()?;
    manifests.write_docs("echo.yaml", &objects(port_a))?;
    let stack = Stack::start(&manifests, 1).await?;
    let bootstrap = dir.path().join("grpc-bootstrap.json");
    std::fs::write(
        &bootstrap,
        serde_json::to_vec_pretty(&json!({
            "xds_servers": [{
                "server_uri": stack.xds[0].addr().to_string(),
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"]
            }],
            "node": {"id": "grpc-client.demo", "cluster": "demo", "locality": {"zone": "local"}}
        }))?,
    )?;
    // The node is served (its own target resolves) before the test asks
    // for one it does not have.
    let ok = bootstrap.clone();
    tokio::task::spawn_blocking(move || call(&ok, "echo-a")).await??;
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python()?)
            .arg(script("grpc_xds_client.py"))
            .args([
                "--target",
                "xds:///nowhere",
                "--expect-failure",
                "in the node's configuration",
                "--deadline",
                "60",
            ])
            .env("GRPC_XDS_BOOTSTRAP", &bootstrap)
            // grpcio reads xRFC TP3 errors behind this switch (gRFC A88).
            .env("GRPC_EXPERIMENTAL_XDS_DATA_ERROR_HANDLING", "true")
            .output()
            .context("running the gRPC client")
    })
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the RPC should fail with the server's reason: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
