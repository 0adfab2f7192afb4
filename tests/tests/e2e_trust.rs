//! Who may read what, with real clients (docs/DESIGN.md §5, docs/SECURITY.md):
//! Envoy over mutual TLS with certificates made by the test, clients with
//! the wrong certificate or none refused, Secrets only to authenticated
//! streams, CSDS for operators, and hostile clients (forged and 1 MB NACKs,
//! idle connections) that leave other nodes and etcd unharmed.

use std::net::SocketAddr;

use anyhow::{ensure, Context, Result};
use bootes_proto::envoy::core::Node;
use bootes_proto::envoy::discovery::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use bootes_proto::envoy::discovery::{DiscoveryRequest, DiscoveryResponse};
use bootes_proto::envoy::status::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
use bootes_proto::envoy::status::ClientStatusRequest;
use bootes_proto::envoy::RpcStatus;
use bootes_proto::ResourceType;
use bootes_tests::harness::{
    cluster_eds, endpoint, eventually, expect_routed, free_port, listener_http, pod, route,
    Controller, Envoy, EnvoyOptions, Etcd, Issued, ManifestDir, San, TestCa, Upstream, VirtualHost,
    XdsServer, XdsTls,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

const EDGE_SPIFFE: &str = "spiffe://cluster.local/ns/demo/sa/edge";

/// envoy-0.demo (service account `edge`) and envoy-1.demo (`default`):
/// a listener on `port` → route → `cluster` → `upstream`, and a Secret.
fn objects(port: u16, cluster: &str, upstream: SocketAddr) -> Vec<Value> {
    let mut edge = pod("demo", "envoy-0", &[]);
    edge["spec"] = json!({"serviceAccountName": "edge"});
    vec![
        edge,
        pod("demo", "envoy-1", &[]),
        listener_http("demo", "listener-1", "listener-1", port, "route-1", &[]),
        route(
            "demo",
            "route-1",
            "route-1",
            &[VirtualHost::new("all", &["*"], &[("/", cluster)])],
            &[],
        ),
        cluster_eds("demo", cluster, cluster, &[]),
        endpoint(
            "demo",
            &format!("{cluster}-endpoints"),
            cluster,
            &[upstream],
            &[],
        ),
        json!({"apiVersion": "bootes.io/v1", "kind": "Secret",
               "metadata": {"name": "edge-key", "namespace": "demo"},
               "spec": {"config": {"name": "edge-key", "generic_secret": {
                   "secret": {"inline_string": "the-private-key"}}}}}),
    ]
}

/// The test's PKI: a CA, the server certificate, and the files.
struct Pki {
    ca: TestCa,
    dir: tempfile::TempDir,
    server: bootes_tests::harness::CertFiles,
    ca_file: std::path::PathBuf,
}

impl Pki {
    fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let ca = TestCa::new("bootes e2e CA");
        let server = ca.issue_localhost().write(dir.path(), "server");
        let ca_file = ca.write(dir.path(), "ca.crt");
        Ok(Self {
            ca,
            dir,
            server,
            ca_file,
        })
    }

    fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.server.cert.display().to_string(),
            "--tls-key".into(),
            self.server.key.display().to_string(),
            "--tls-client-ca".into(),
            self.ca_file.display().to_string(),
            "--tls-reload-interval".into(),
            "0.2".into(),
        ]
    }

    /// Envoy's client certificate files.
    fn envoy_tls(&self, name: &str, sans: &[San<'_>]) -> XdsTls {
        let files = self.ca.issue(name, sans).write(self.dir.path(), name);
        XdsTls {
            ca: self.ca_file.clone(),
            cert: files.cert,
            key: files.key,
        }
    }
}

async fn channel(addr: SocketAddr, ca_pem: &str, client: Option<&Issued>) -> Result<Channel> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some(c) = client {
        tls = tls.identity(Identity::from_pem(&c.cert_pem, &c.key_pem));
    }
    Ok(Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await?)
}

fn request(node: &str, ty: ResourceType) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(Node {
            id: node.into(),
            ..Default::default()
        }),
        type_url: ty.type_url().into(),
        ..Default::default()
    }
}

/// An ADS stream claiming `node`: the first response, or the status that
/// ended the stream.
async fn first_response(
    channel: Channel,
    node: &str,
) -> Result<
    (
        mpsc::Sender<DiscoveryRequest>,
        tonic::Streaming<DiscoveryResponse>,
        DiscoveryResponse,
    ),
    tonic::Status,
> {
    let (tx, rx) = mpsc::channel(64);
    tx.send(request(node, ResourceType::Cluster)).await.unwrap();
    let mut responses = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    match responses.message().await? {
        Some(first) => Ok((tx, responses, first)),
        None => Err(tonic::Status::unknown("stream ended without a response")),
    }
}

async fn expect_denied(channel: Channel, node: &str) -> Result<()> {
    match first_response(channel, node).await {
        Ok((_, _, r)) => anyhow::bail!("{node}: served {} resources", r.resources.len()),
        Err(status) => {
            ensure!(
                status.code() == Code::PermissionDenied,
                "{node}: {status:?}"
            );
            Ok(())
        }
    }
}

async fn fetch_secret(channel: Channel, node: &str) -> Result<DiscoveryResponse, tonic::Status> {
    use bootes_proto::envoy::discovery::DiscoveryRequest as R;
    let mut req: R = request(node, ResourceType::Secret);
    req.resource_names = vec!["edge-key".into()];
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(
        "/envoy.service.secret.v3.SecretDiscoveryService/FetchSecrets",
    );
    grpc.unary(
        tonic::Request::new(req),
        path,
        tonic_prost::ProstCodec::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

async fn csds(channel: Channel) -> Result<usize, tonic::Status> {
    let resp = ClientStatusDiscoveryServiceClient::new(channel)
        .fetch_client_status(ClientStatusRequest::default())
        .await?;
    Ok(resp.into_inner().config.len())
}

struct System {
    etcd: Etcd,
    controller: Controller,
    xds: XdsServer,
}

async fn system(m: &ManifestDir, xds_args: &[String]) -> Result<System> {
    system_on(Etcd::start().await?, m, xds_args).await
}

async fn system_on(etcd: Etcd, m: &ManifestDir, xds_args: &[String]) -> Result<System> {
    let controller = Controller::start(&etcd, m.path()).await?;
    let args: Vec<&str> = xds_args.iter().map(String::as_str).collect();
    let xds = XdsServer::start_with_args(&etcd, "trust", &args).await?;
    Ok(System {
        etcd,
        controller,
        xds,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_over_mutual_tls_carries_traffic_and_other_identities_are_refused() -> Result<()> {
    let a = Upstream::start("upstream-a").await?;
    let b = Upstream::start("upstream-b").await?;
    let port = free_port();
    let m = ManifestDir::new()?;
    m.write_docs("objects.yaml", &objects(port, "cluster-a", a.addr()))?;
    let pki = Pki::new()?;
    let mut args = pki.server_args();
    args.extend(["--csds-operator".into(), "operator.example".into()]);
    let sys = system(&m, &args).await?;
    let addr = sys.xds.addr();

    // Envoy, authenticated by SPIFFE ID (namespace demo, service account edge).
    let mut options = EnvoyOptions::new("envoy-0.demo", &[addr]);
    options.xds_tls = Some(pki.envoy_tls("envoy-0", &[San::Uri(EDGE_SPIFFE)]));
    let envoy = Envoy::start_with(options).await?;
    expect_routed(port, "example.com", "/", "upstream-a").await?;

    // The same node ID claimed with other certificates: refused, nothing sent.
    let other_node = pki.ca.issue("envoy-1", &[San::Dns("envoy-1.demo")]);
    expect_denied(
        channel(addr, &pki.ca.pem, Some(&other_node)).await?,
        "envoy-0.demo",
    )
    .await?;
    let other_sa = pki.ca.issue(
        "x",
        &[San::Uri("spiffe://cluster.local/ns/demo/sa/default")],
    );
    expect_denied(
        channel(addr, &pki.ca.pem, Some(&other_sa)).await?,
        "envoy-0.demo",
    )
    .await?;
    let other_ns = pki
        .ca
        .issue("x", &[San::Uri("spiffe://cluster.local/ns/shop/sa/edge")]);
    expect_denied(
        channel(addr, &pki.ca.pem, Some(&other_ns)).await?,
        "envoy-0.demo",
    )
    .await?;
    // ... while that certificate's own node is served.
    let (_, _, own) = first_response(
        channel(addr, &pki.ca.pem, Some(&other_node)).await?,
        "envoy-1.demo",
    )
    .await
    .context("envoy-1.demo with its own certificate")?;
    ensure!(!own.resources.is_empty());
    // A SPIFFE ID authorizes a node only in the namespace and account of its pod.
    let default_sa = pki.ca.issue(
        "x",
        &[San::Uri("spiffe://cluster.local/ns/demo/sa/default")],
    );
    first_response(
        channel(addr, &pki.ca.pem, Some(&default_sa)).await?,
        "envoy-1.demo",
    )
    .await
    .context("envoy-1.demo runs as default")?;

    // No certificate, or one from another CA: no connection at all.
    let no_cert = match channel(addr, &pki.ca.pem, None).await {
        Err(_) => true,
        Ok(ch) => first_response(ch, "envoy-0.demo").await.is_err(),
    };
    ensure!(no_cert, "a client without a certificate was served");
    let stranger = TestCa::new("stranger").issue("x", &[San::Dns("envoy-0.demo")]);
    let foreign = match channel(addr, &pki.ca.pem, Some(&stranger)).await {
        Err(_) => true,
        Ok(ch) => first_response(ch, "envoy-0.demo").await.is_err(),
    };
    ensure!(foreign, "a certificate of another CA was accepted");
    // Plaintext is not spoken at all.
    let plain = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await;
    if let Ok(ch) = plain {
        ensure!(first_response(ch, "envoy-0.demo").await.is_err());
    }

    // Secrets: to the node's own authenticated stream only.
    let edge = pki.ca.issue("edge", &[San::Uri(EDGE_SPIFFE)]);
    let secret = fetch_secret(
        channel(addr, &pki.ca.pem, Some(&edge)).await?,
        "envoy-0.demo",
    )
    .await
    .context("FetchSecrets as envoy-0.demo")?;
    ensure!(secret.resources.len() == 1, "{secret:?}");
    let denied = fetch_secret(
        channel(addr, &pki.ca.pem, Some(&other_node)).await?,
        "envoy-0.demo",
    )
    .await
    .unwrap_err();
    ensure!(denied.code() == Code::PermissionDenied, "{denied:?}");

    // CSDS on the xDS port: operators only.
    let refused = csds(channel(addr, &pki.ca.pem, Some(&edge)).await?)
        .await
        .unwrap_err();
    ensure!(refused.code() == Code::PermissionDenied, "{refused:?}");
    let operator = pki.ca.issue("operator", &[San::Dns("operator.example")]);
    let configs = csds(channel(addr, &pki.ca.pem, Some(&operator)).await?).await?;
    ensure!(configs >= 1, "the operator sees the connected nodes");

    // The server certificate rotates (same CA, new key): new connections get
    // it, Envoy's stream stays up and keeps receiving changes.
    let rotated = pki.ca.issue_localhost();
    rotated.write_to(&pki.server);
    eventually("new connections get the rotated certificate", || async {
        let presented = presented_certificate(addr, &pki.ca.pem, &edge).await?;
        ensure!(
            presented == der(&rotated.cert_pem)?,
            "still the old certificate"
        );
        Ok(())
    })
    .await?;
    m.write_docs("objects.yaml", &objects(port, "cluster-b", b.addr()))?;
    expect_routed(port, "example.com", "/", "upstream-b").await?;
    let connections = envoy.stat("cluster.xds.upstream_cx_total").await?;
    ensure!(
        connections == 1,
        "Envoy reconnected: {connections} connections"
    );
    drop(sys.controller);
    Ok(())
}

/// The server certificate a new TLS connection is shown (DER).
async fn presented_certificate(addr: SocketAddr, ca_pem: &str, client: &Issued) -> Result<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_client_auth_cert(
        CertificateDer::pem_slice_iter(client.cert_pem.as_bytes()).collect::<Result<_, _>>()?,
        PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes())?,
    )?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let der = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .context("no server certificate")?;
    Ok(der.to_vec())
}

fn der(pem: &str) -> Result<Vec<u8>> {
    Ok(CertificateDer::from_pem_slice(pem.as_bytes())?.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_client_authentication_secrets_are_not_served() -> Result<()> {
    let m = ManifestDir::new()?;
    m.write_docs(
        "objects.yaml",
        &objects(free_port(), "cluster-a", "127.0.0.1:9".parse()?),
    )?;
    let sys = system(&m, &[]).await?;
    let ch = Endpoint::from_shared(format!("http://{}", sys.xds.addr()))?
        .connect()
        .await?;
    // Other types are served ...
    let (_, _, clusters) = first_response(ch.clone(), "envoy-0.demo").await?;
    ensure!(!clusters.resources.is_empty());
    // ... Secrets are not.
    let denied = fetch_secret(ch, "envoy-0.demo").await.unwrap_err();
    ensure!(denied.code() == Code::PermissionDenied, "{denied:?}");
    ensure!(denied.message().contains("--allow-unauthenticated-secrets"));
    Ok(())
}

/// `status/` records of `node`, as (key, encoded size, decoded).
async fn status_records(
    etcd: &Etcd,
    node: &str,
) -> Result<Vec<(String, usize, bootes_proto::store::NodeStatus)>> {
    use prost::Message;
    let mut client = etcd.client().await?;
    let prefix = format!("/bootes/v1/status/{node}/");
    let resp = client
        .get(
            prefix.as_str(),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await?;
    resp.kvs()
        .iter()
        .map(|kv| {
            Ok((
                kv.key_str()?.to_string(),
                kv.value().len(),
                bootes_proto::store::NodeStatus::decode(kv.value())?,
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_leave_other_nodes_and_etcd_unharmed() -> Result<()> {
    let a = Upstream::start("upstream-a").await?;
    let b = Upstream::start("upstream-b").await?;
    let port = free_port();
    let m = ManifestDir::new()?;
    m.write_docs("objects.yaml", &objects(port, "cluster-a", a.addr()))?;
    let pki = Pki::new()?;
    let mut args = pki.server_args();
    args.extend(["--handshake-timeout".into(), "1".into()]);
    args.extend(["--status-write-interval".into(), "0.5".into()]);
    // etcd with a 50 MB quota: thirty unbounded 1 MB NACKs would fill it.
    let quota: i64 = 50 * 1024 * 1024;
    let etcd = Etcd::start_with_args(&[&format!("--quota-backend-bytes={quota}")]).await?;
    let sys = system_on(etcd, &m, &args).await?;
    let addr = sys.xds.addr();
    let mut options = EnvoyOptions::new("envoy-0.demo", &[addr]);
    options.xds_tls = Some(pki.envoy_tls("envoy-0", &[San::Uri(EDGE_SPIFFE)]));
    let _envoy = Envoy::start_with(options).await?;
    expect_routed(port, "example.com", "/", "upstream-a").await?;

    // The attacker holds a valid certificate, for envoy-1.demo.
    let attacker = pki.ca.issue("envoy-1", &[San::Dns("envoy-1.demo")]);

    // Forged NACK: claiming envoy-0.demo ends in PERMISSION_DENIED before
    // anything is recorded.
    let (tx, rx) = mpsc::channel(4);
    let mut forged = request("envoy-0.demo", ResourceType::Cluster);
    forged.response_nonce = "1".into();
    forged.error_detail = Some(RpcStatus {
        code: 3,
        message: "forged".into(),
        ..Default::default()
    });
    tx.send(forged).await?;
    let mut stream =
        AggregatedDiscoveryServiceClient::new(channel(addr, &pki.ca.pem, Some(&attacker)).await?)
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await?
            .into_inner();
    let ended = stream.message().await.unwrap_err();
    ensure!(ended.code() == Code::PermissionDenied, "{ended:?}");

    // 1 MB NACKs, sixty-four of them (more than the quota holds), on its
    // own node: each on a stream of its own, NACKing that stream's first
    // response, so each is a real change of the node's state (a NACK
    // repeated on one stream is not). Paced, so that without the bounds on
    // details and on the write rate each would be written on its own.
    let attacker_channel = channel(addr, &pki.ca.pem, Some(&attacker)).await?;
    let mut nacking = Vec::new();
    let mut pace = tokio::time::interval(std::time::Duration::from_millis(25));
    for i in 0..64 {
        pace.tick().await;
        let (tx, responses, first) =
            first_response(attacker_channel.clone(), "envoy-1.demo").await?;
        let mut nack = request("envoy-1.demo", ResourceType::Cluster);
        nack.response_nonce = first.nonce.clone();
        nack.error_detail = Some(RpcStatus {
            code: 3,
            message: format!("{i} {}", "x".repeat(1_000_000)),
            ..Default::default()
        });
        tx.send(nack).await?;
        nacking.push((tx, responses));
    }
    // 200 TCP connections that never speak HTTP/2.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(tokio::net::TcpStream::connect(addr).await?);
    }

    // The NACK is recorded, cut to its bound.
    eventually("envoy-1.demo's NACK is recorded, cut", || async {
        let records = status_records(&sys.etcd, "envoy-1.demo").await?;
        let (key, size, status) = records.first().context("no status record yet")?;
        ensure!(*size <= 64 * 1024, "{key}: {size} bytes");
        let detail = status
            .types
            .iter()
            .map(|t| t.nack_detail.as_str())
            .find(|d| !d.is_empty())
            .context("no NACK recorded yet")?;
        ensure!(detail.len() <= 4096, "detail of {} bytes", detail.len());
        ensure!(
            detail.ends_with("bytes cut]"),
            "{}",
            &detail[detail.len().saturating_sub(40)..]
        );
        Ok(())
    })
    .await?;
    // Nothing recorded against envoy-0.demo's name.
    for (key, _, status) in status_records(&sys.etcd, "envoy-0.demo").await? {
        ensure!(
            status.types.iter().all(|t| t.nack_detail.is_empty()),
            "{key}: {status:?}"
        );
    }
    // The idle connections are closed by the server.
    for mut conn in idle {
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_secs(30), conn.read(&mut buf))
            .await
            .context("an idle connection stayed open")?;
        ensure!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    // Other nodes still get changes, and etcd has no alarm.
    m.write_docs("objects.yaml", &objects(port, "cluster-b", b.addr()))?;
    expect_routed(port, "example.com", "/", "upstream-b").await?;
    let alarms = sys
        .etcd
        .client()
        .await?
        .alarm(
            etcd_client::AlarmAction::Get,
            etcd_client::AlarmType::None,
            None,
        )
        .await?;
    ensure!(
        alarms.alarms().is_empty(),
        "etcd alarms: {:?}",
        alarms
            .alarms()
            .iter()
            .map(|a| a.alarm())
            .collect::<Vec<_>>()
    );
    let db_size = sys.etcd.client().await?.status().await?.db_size();
    eprintln!("etcd database: {db_size} bytes of a {quota} byte quota");
    // (86 KB with the bounds; 14 MB in a run with them turned off.)
    ensure!(
        db_size < quota / 10,
        "etcd holds {db_size} bytes of its {quota} byte quota"
    );
    // The controller logged the NACK against the objects, cut.
    let mut controller = sys.controller;
    let log = std::fs::read_to_string(controller.process().stderr_path())?;
    ensure!(
        log.contains("bytes cut]"),
        "no cut NACK in the controller log"
    );
    ensure!(log.len() < 1 << 20, "controller log of {} bytes", log.len());
    Ok(())
}
