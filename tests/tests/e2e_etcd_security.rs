//! The whole path through an etcd that serves TLS only, requires client
//! certificates and has authentication on, with the least-privilege roles
//! the README and manifests/etcd/ show: the controller reads and writes the
//! prefix, the xds-server reads it and writes only status/, an operator
//! reads it with a username and password (inspect). Secrets are stored
//! encrypted with a key file and still reach Envoy.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use bootes_tests::harness;
use bootes_tests::harness::{
    endpoint_a, eventually, expect_routed, find_bootes_bin, free_port, pod, route_all_to_cluster_a,
    CertFiles, Controller, Envoy, Etcd, ManifestDir, TestCa, Upstream, XdsServer,
};
use etcd_client::PutOptions;
use prost::Message;
use serde_json::{json, Value};

const PREFIX: &str = "/bootes/v1/";
const KEY_FILE: &str = "k1 5f0c6a1e2d3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5\n";

/// Runs manifests/etcd/roles.sh with etcdctl, as an operator would, as
/// etcd's root user (a client certificate with CN=root).
fn run_roles_script(etcd: &Etcd, ca_file: &Path, root: &CertFiles) -> Result<()> {
    harness::run_roles_script(&[
        ("ETCDCTL_API", "3".as_ref()),
        ("ETCDCTL_ENDPOINTS", etcd.endpoint().as_ref()),
        ("ETCDCTL_CACERT", ca_file.as_os_str()),
        ("ETCDCTL_CERT", root.cert.as_os_str()),
        ("ETCDCTL_KEY", root.key.as_os_str()),
        ("BOOTES_ETCD_ROOT_PASSWORD", "root-password".as_ref()),
        (
            "BOOTES_ETCD_OPERATOR_PASSWORD",
            "operator-password".as_ref(),
        ),
    ])
}

/// An etcd client presenting `cert` (its CN is the etcd user).
async fn client_as(etcd: &Etcd, ca: &TestCa, cert: &CertFiles) -> Result<etcd_client::Client> {
    Ok(etcd_client::Client::connect(
        [etcd.endpoint()],
        Some(
            etcd_client::ConnectOptions::new().with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(&ca.pem))
                    .identity(etcd_client::Identity::from_pem(
                        std::fs::read(&cert.cert)?,
                        std::fs::read(&cert.key)?,
                    )),
            ),
        ),
    )
    .await?)
}

async fn expect_write_denied(client: &mut etcd_client::Client, key: &str) -> Result<()> {
    match client.put(key, "x", None::<PutOptions>).await {
        Ok(_) => anyhow::bail!("writing {key} was allowed"),
        Err(e) => {
            ensure!(e.to_string().contains("permission denied"), "{key}: {e}");
            Ok(())
        }
    }
}

fn objects(port: u16, upstream: std::net::SocketAddr) -> Vec<Value> {
    let mut docs = vec![pod("demo", "envoy-0", &[])];
    docs.extend(route_all_to_cluster_a("demo", port));
    docs.push(endpoint_a("demo", &[upstream]));
    docs.push(json!({"apiVersion": "bootes.io/v1", "kind": "Secret",
               "metadata": {"name": "api-token", "namespace": "demo"},
               "spec": {"config": {"name": "api-token", "generic_secret": {
                   "secret": {"inline_string": "TOPSECRET-TOKEN"}}}}}));
    docs
}

fn etcd_args(etcd_ca: &Path, client: &CertFiles) -> Vec<String> {
    vec![
        "--etcd-ca".into(),
        etcd_ca.display().to_string(),
        "--etcd-cert".into(),
        client.cert.display().to_string(),
        "--etcd-key".into(),
        client.key.display().to_string(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_path_works_through_etcd_with_tls_auth_and_least_privilege() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("etcd CA");
    let ca_file = ca.write(dir.path(), "etcd-ca.crt");
    let etcd = Etcd::start_tls(&ca).await?;
    let root = ca.issue("root", &[]).write(dir.path(), "root");
    run_roles_script(&etcd, &ca_file, &root)?;

    let key_file = dir.path().join("secrets.keys");
    std::fs::write(&key_file, KEY_FILE)?;
    let key_arg = key_file.display().to_string();

    let upstream = Upstream::start("upstream-a").await?;
    let port = free_port();
    let m = ManifestDir::new()?;
    m.write_docs("objects.yaml", &objects(port, upstream.addr()))?;

    let controller_cert = ca
        .issue("bootes-controller", &[])
        .write(dir.path(), "controller");
    let mut args = etcd_args(&ca_file, &controller_cert);
    args.extend(["--secret-key-file".into(), key_arg.clone()]);
    let _controller = Controller::start_with_args(&etcd, m.path(), &strs(&args)).await?;

    let xds_cert = ca.issue("bootes-xds-server", &[]).write(dir.path(), "xds");
    let mut args = etcd_args(&ca_file, &xds_cert);
    args.extend(["--secret-key-file".into(), key_arg.clone()]);
    args.push("--allow-unauthenticated-secrets".into());
    let xds = XdsServer::start_with_args(&etcd, "secure", &strs(&args)).await?;

    // Config flows end to end, and the xds-server writes its status record.
    let envoy = Envoy::start("envoy-0.demo", &[xds.addr()]).await?;
    expect_routed(port, "example.com", "/", "upstream-a").await?;
    eventually("the xds-server recorded envoy-0.demo's status", || async {
        let keys = etcd.keys(&format!("{PREFIX}status/envoy-0.demo/")).await?;
        ensure!(!keys.is_empty(), "no status record yet");
        Ok(())
    })
    .await?;
    drop(envoy);

    // At rest, the Secret is sealed: its text is nowhere in etcd.
    let mut root = etcd.client().await?;
    let snapshots = root
        .get(
            format!("{PREFIX}snapshots/"),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await?;
    let mut sealed = 0;
    for kv in snapshots.kvs() {
        ensure!(
            !kv.value().windows(15).any(|w| w == b"TOPSECRET-TOKEN"),
            "plaintext secret in {}",
            kv.key_str()?
        );
        let s = bootes_proto::store::Snapshot::decode(kv.value())?;
        sealed += s
            .types
            .iter()
            .flat_map(|t| &t.resources)
            .filter(|r| r.sealed.as_ref().is_some_and(|s| s.key_id == "k1"))
            .count();
    }
    ensure!(sealed == 1, "{sealed} sealed resources");

    // Least privilege, as the roles give it: the xds-server's identity
    // reads the prefix and writes status/ only ...
    let mut as_xds = client_as(&etcd, &ca, &xds_cert).await?;
    let binding = as_xds
        .get(format!("{PREFIX}nodes/envoy-0.demo"), None)
        .await?;
    ensure!(
        binding.kvs().len() == 1,
        "the xds-server cannot read bindings"
    );
    let probe = format!("{PREFIX}status/envoy-0.demo/probe");
    as_xds.put(probe.as_str(), "x", None::<PutOptions>).await?;
    as_xds.delete(probe.as_str(), None).await?;
    for key in [
        format!("{PREFIX}snapshots/demo/forged"),
        format!("{PREFIX}nodes/envoy-0.demo"),
        format!("{PREFIX}leader"),
        "/elsewhere".to_string(),
    ] {
        expect_write_denied(&mut as_xds, &key).await?;
    }
    // ... the controller's reads and writes the prefix (it just did) and
    // nothing outside it ...
    let mut as_controller = client_as(&etcd, &ca, &controller_cert).await?;
    as_controller.get(format!("{PREFIX}status/"), None).await?;
    expect_write_denied(&mut as_controller, "/elsewhere").await?;
    // ... and the operator only reads (a password on top of a certificate
    // of no user of its own).
    let stranger = ca.issue("nobody", &[]).write(dir.path(), "stranger");
    let mut as_operator = etcd_client::Client::connect(
        [etcd.endpoint()],
        Some(
            etcd_client::ConnectOptions::new()
                .with_user("operator", "operator-password")
                .with_tls(
                    etcd_client::TlsOptions::new()
                        .ca_certificate(etcd_client::Certificate::from_pem(&ca.pem))
                        .identity(etcd_client::Identity::from_pem(
                            std::fs::read(&stranger.cert)?,
                            std::fs::read(&stranger.key)?,
                        )),
                ),
        ),
    )
    .await?;
    as_operator
        .get(format!("{PREFIX}nodes/envoy-0.demo"), None)
        .await?;
    expect_write_denied(&mut as_operator, &format!("{PREFIX}status/x")).await?;

    // inspect, as the operator (password), with and without the key file.
    let nobody = ca.issue("nobody", &[]).write(dir.path(), "nobody");
    let password = dir.path().join("operator.password");
    std::fs::write(&password, "operator-password\n")?;
    let mut base = etcd_args(&ca_file, &nobody);
    base.extend([
        "--etcd-username".into(),
        "operator".into(),
        "--etcd-password-file".into(),
        password.display().to_string(),
    ]);
    let secret_of = |out: &Value| -> Option<Value> {
        out["types"]
            .as_array()?
            .iter()
            .find(|t| t["type"] == "SDS")
            .map(|t| t["resources"][0].clone())
    };
    let without_key = inspect(&etcd, &base)?;
    let secret = secret_of(&without_key).context("no SDS resource")?;
    ensure!(secret["encrypted"]["key_id"] == "k1", "{secret}");
    ensure!(secret["config"].is_null(), "{secret}");
    let mut with_key = base.clone();
    with_key.extend(["--secret-key-file".into(), key_arg, "--show-secrets".into()]);
    let out = inspect(&etcd, &with_key)?;
    let secret = secret_of(&out).context("no SDS resource")?;
    ensure!(
        secret["config"]["generic_secret"]["secret"]["inline_string"] == "TOPSECRET-TOKEN",
        "{secret}"
    );
    Ok(())
}

fn inspect(etcd: &Etcd, args: &[String]) -> Result<Value> {
    let out = Command::new(find_bootes_bin(
        "bootes-controller",
        "BOOTES_CONTROLLER_BIN",
    )?)
    .args([
        "inspect",
        "snapshot",
        "envoy-0.demo",
        "-o",
        "json",
        "--etcd-endpoints",
    ])
    .arg(etcd.endpoint())
    .args(args)
    .output()?;
    ensure!(
        out.status.success(),
        "inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

const K1: &str = "k1 5f0c6a1e2d3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";
const K2: &str = "k2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The key IDs of every sealed resource in etcd, and whether the plaintext
/// of the Secret shows anywhere.
async fn sealed_key_ids(etcd: &Etcd) -> Result<Vec<String>> {
    let resp = etcd
        .client()
        .await?
        .get(
            format!("{PREFIX}snapshots/"),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await?;
    let mut ids = Vec::new();
    for kv in resp.kvs() {
        ensure!(
            !kv.value().windows(6).any(|w| w == b"TOKEN-"),
            "plaintext secret in {}",
            kv.key_str()?
        );
        let s = bootes_proto::store::Snapshot::decode(kv.value())?;
        ids.extend(
            s.types
                .iter()
                .flat_map(|t| &t.resources)
                .filter_map(|r| r.sealed.as_ref().map(|s| s.key_id.clone())),
        );
    }
    Ok(ids)
}

/// The Secret `api-token` as the xds-server serves it to envoy-0.demo
/// (`FetchSecrets`), as text.
async fn served_secret(addr: std::net::SocketAddr) -> Result<String> {
    use bootes_proto::envoy::core::Node;
    use bootes_proto::envoy::discovery::{DiscoveryRequest, DiscoveryResponse};
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let request = DiscoveryRequest {
        node: Some(Node {
            id: "envoy-0.demo".into(),
            ..Default::default()
        }),
        type_url: bootes_proto::ResourceType::Secret.type_url().into(),
        resource_names: vec!["api-token".into()],
        ..Default::default()
    };
    let response: DiscoveryResponse = grpc
        .unary(
            tonic::Request::new(request),
            http::uri::PathAndQuery::from_static(
                "/envoy.service.secret.v3.SecretDiscoveryService/FetchSecrets",
            ),
            tonic_prost::ProstCodec::default(),
        )
        .await?
        .into_inner();
    let [secret] = response.resources.as_slice() else {
        anyhow::bail!("{} resources served", response.resources.len());
    };
    Ok(String::from_utf8_lossy(&secret.value).into_owned())
}

fn with_token(port: u16, upstream: std::net::SocketAddr, token: &str) -> Vec<Value> {
    let mut docs = objects(port, upstream);
    let last = docs.len() - 1;
    docs[last]["spec"]["config"]["generic_secret"]["secret"]["inline_string"] = json!(token);
    docs
}

/// Key rotation as docs/SECURITY.md describes it: a new key first in the
/// file, rolled out to the xds-server, then the controller, which re-seals
/// every value under it; then the old key removed. Clients get the Secret
/// throughout, and a Secret changed afterwards is sealed under the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_secret_key_reseals_every_value_and_clients_keep_the_secret() -> Result<()> {
    let etcd = Etcd::start().await?;
    let dir = tempfile::tempdir()?;
    let key_file = dir.path().join("secrets.keys");
    std::fs::write(&key_file, format!("{K1}\n"))?;
    let key_arg = key_file.display().to_string();
    let m = ManifestDir::new()?;
    let port = free_port();
    let upstream: std::net::SocketAddr = "127.0.0.1:9".parse()?;
    m.write_docs("objects.yaml", &with_token(port, upstream, "TOKEN-ONE"))?;

    let controller_args = ["--secret-key-file", key_arg.as_str()];
    let mut controller = Controller::start_with_args(&etcd, m.path(), &controller_args).await?;
    let mut xds = XdsServer::start_with_args(
        &etcd,
        "rotation",
        &[
            "--secret-key-file",
            &key_arg,
            "--allow-unauthenticated-secrets",
        ],
    )
    .await?;
    let sealed_under = |key: &'static str| {
        let etcd = &etcd;
        move || async move {
            let ids = sealed_key_ids(etcd).await?;
            ensure!(
                !ids.is_empty() && ids.iter().all(|id| id == key),
                "sealed under {ids:?}, expected {key} only"
            );
            Ok(())
        }
    };
    // The same address across restarts.
    let addr = xds.addr();
    let serves = |token: &'static str| {
        move || async move {
            let secret = served_secret(addr).await?;
            ensure!(
                secret.contains(token),
                "served {secret:?}, expected {token}"
            );
            Ok(())
        }
    };
    eventually("sealed under k1", sealed_under("k1")).await?;
    eventually("the Secret is served", serves("TOKEN-ONE")).await?;

    // 1. k2 first, k1 kept: the xds-server first, then the controller.
    std::fs::write(&key_file, format!("{K2}\n{K1}\n"))?;
    xds.restart().await?;
    eventually("served by the xds-server knowing k2", serves("TOKEN-ONE")).await?;
    controller.process().kill();
    drop(controller);
    controller = Controller::start_with_args(&etcd, m.path(), &controller_args).await?;
    // 2. The controller re-seals every value under k2.
    eventually("re-sealed under k2", sealed_under("k2")).await?;
    eventually("served after re-sealing", serves("TOKEN-ONE")).await?;

    // 3. k1 removed everywhere: everything still opens.
    std::fs::write(&key_file, format!("{K2}\n"))?;
    xds.restart().await?;
    eventually("served without k1", serves("TOKEN-ONE")).await?;
    controller.process().kill();
    drop(controller);
    let _controller = Controller::start_with_args(&etcd, m.path(), &controller_args).await?;
    m.write_docs("objects.yaml", &with_token(port, upstream, "TOKEN-TWO"))?;
    eventually("the changed Secret is served", serves("TOKEN-TWO")).await?;
    eventually("still sealed under k2", sealed_under("k2")).await?;
    Ok(())
}
