//! The Kubernetes install as `kubectl kustomize manifests/` renders it, run
//! for real on loopback: a 3-member etcd with the StatefulSet's TLS flags,
//! the roles Job's script and environment, the controller and two
//! xds-servers with their Deployments' flags, and an Envoy with
//! manifests/examples/envoy-bootstrap.yaml. Every flag, file name and
//! certificate (common name, DNS names, the Secret's tls.crt / tls.key /
//! ca.crt) is taken from the rendering, so the test and the manifests
//! cannot drift. What the test changes, and only that: addresses (loopback
//! and free ports instead of Services and 0.0.0.0), the directory each
//! Secret is mounted at (a temporary one with the same file names), an IP
//! SAN 127.0.0.1 on the two serving certificates (the test reaches them by
//! address), and `--manifests` (directory mode: no Kubernetes API here).
//!
//! Then: traffic flows; no identity but the controller's can write a
//! snapshot; plaintext and certificate-less clients are refused by etcd and
//! by the xDS port. And the insecure-dev overlay's processes warn at
//! start-up that they run without TLS, which the secure ones do not.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use bootes_tests::harness::{
    endpoint_a, expect_routed, free_port, pod, render, repo_dir, route_all_to_cluster_a,
    run_roles_script, yaml_docs, ClientTls, ClusterOptions, Container, Controller, Envoy,
    EnvoyOptions, Etcd, EtcdCluster, Issued, ManifestDir, San, TestCa, Upstream, XdsServer,
};
use etcd_client::PutOptions;
use serde_yaml::Value;

const PREFIX: &str = "/bootes/v1/";
const KEY_LINE: &str = "k1 5f0c6a1e2d3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5\n";
const ETCD_WARNING: &str = "etcd connection without TLS";
const XDS_WARNING: &str = "serving xDS without TLS";

/// The Secrets of the rendering, made by a test CA as cert-manager would
/// (tls.crt, tls.key, ca.crt in a directory per Secret), and the mapping
/// from a container's paths to them.
struct Secrets {
    ca: TestCa,
    root: PathBuf,
    /// Certificate secretName → (the Certificate, what was issued).
    issued: BTreeMap<String, (Value, Issued)>,
    _dir: tempfile::TempDir,
}

impl Secrets {
    fn make(docs: &[Value]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("secrets");
        let ca = TestCa::new("bootes-ca");
        let mut issued = BTreeMap::new();
        for cert in docs.iter().filter(|d| d["kind"] == "Certificate") {
            if cert["spec"]["isCA"] == true {
                continue;
            }
            let secret = cert["spec"]["secretName"].as_str().context("secretName")?;
            let cn = cert["spec"]["commonName"].as_str().context("commonName")?;
            let dns: Vec<&str> = cert["spec"]["dnsNames"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut sans: Vec<San<'_>> = dns.iter().map(|d| San::Dns(d)).collect();
            if !dns.is_empty() {
                // Servers: reached by address here, by name in a cluster.
                sans.push(San::Ip([127, 0, 0, 1].into()));
            }
            let leaf = ca.issue(cn, &sans);
            let d = root.join(secret);
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join("tls.crt"), &leaf.cert_pem)?;
            std::fs::write(d.join("tls.key"), &leaf.key_pem)?;
            ca.write(&d, "ca.crt");
            issued.insert(secret.to_string(), (cert.clone(), leaf));
        }
        ensure!(issued.len() >= 5, "{} certificates", issued.len());
        // The one Secret the operator makes (manifests/README.md).
        let keys = root.join("bootes-secret-keys");
        std::fs::create_dir_all(&keys)?;
        std::fs::write(keys.join("secrets.keys"), KEY_LINE)?;
        Ok(Self {
            ca,
            root,
            issued,
            _dir: dir,
        })
    }

    /// Where the file `path` of container `c` is here.
    fn local(&self, c: &Container<'_>, path: &str) -> Result<String> {
        let (secret, key) = c.secret_file(path)?;
        let local = self.root.join(&secret).join(&key);
        ensure!(
            local.is_file(),
            "{}: {path} is {secret}/{key}, which no one made",
            c.id()
        );
        Ok(local.display().to_string())
    }

    /// The identity issued for Secret `secret`.
    fn identity(&self, secret: &str) -> Result<ClientTls> {
        let (_, leaf) = self
            .issued
            .get(secret)
            .with_context(|| format!("no Secret {secret}"))?;
        Ok(ClientTls {
            ca_pem: self.ca.pem.clone(),
            identity: leaf.clone(),
        })
    }
}

/// The container's args with `skip` flags (and their values) left out and
/// every file path mapped to the test's Secrets.
fn adapt(
    c: &Container<'_>,
    args: &[String],
    skip: &[&str],
    secrets: &Secrets,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let value = match inline {
            Some(v) => Some(v),
            None if args.get(i + 1).is_some_and(|n| !n.starts_with("--")) => {
                i += 1;
                Some(args[i].clone())
            }
            None => None,
        };
        i += 1;
        if skip.contains(&flag.as_str()) {
            continue;
        }
        match value {
            Some(v) if v.starts_with("/etc/") => {
                out.push(format!("{flag}={}", secrets.local(c, &v)?))
            }
            Some(v) => out.push(format!("{flag}={v}")),
            None => out.push(flag),
        }
    }
    Ok(out)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs the roles Job's command with its environment (etcd's endpoints and
/// the files mapped), twice: it must be idempotent.
fn run_roles_job(job: &Container<'_>, secrets: &Secrets, endpoints: &str) -> Result<()> {
    let argv = job.argv();
    ensure!(argv[0] == "bash", "{argv:?}");
    // The image has roles.sh where the Dockerfile copies it from here.
    ensure!(argv[1].ends_with("/roles.sh"), "{argv:?}");
    let mut env = Vec::new();
    for e in job.container["env"]
        .as_sequence()
        .context("the Job's env")?
    {
        let name = e["name"].as_str().context("env name")?;
        let value = e["value"].as_str().context("env value")?;
        let value = match name {
            "ETCDCTL_ENDPOINTS" => endpoints.to_string(),
            _ if value.starts_with("/etc/") => secrets.local(job, value)?,
            _ => value.to_string(),
        };
        env.push((name.to_string(), value));
    }
    run_roles_script(&env).context("the roles Job")
}

/// The Envoy of manifests/examples/envoy-bootstrap.yaml, as pod
/// envoy-0.demo, its xDS cluster pointed at `xds` and its certificate
/// files in `dir`.
fn envoy_options(xds: &[SocketAddr], dir: &Path) -> Result<EnvoyOptions> {
    let text = std::fs::read_to_string(repo_dir().join("manifests/examples/envoy-bootstrap.yaml"))?;
    let [bootstrap]: [Value; 1] = yaml_docs(&text)?.try_into().ok().context("one document")?;
    let mut json: serde_json::Value = serde_json::to_value(&bootstrap)?;
    let cluster = json["static_resources"]["clusters"]
        .as_array_mut()
        .and_then(|c| c.iter_mut().find(|c| c["name"] == "bootes-xds"))
        .context("the bootes-xds cluster")?;
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = xds
        .iter()
        .map(|a| {
            serde_json::json!({"endpoint": {"address": {"socket_address": {
                "address": a.ip().to_string(), "port_value": a.port()}}}})
        })
        .collect();
    let tls = &mut cluster["transport_socket"]["typed_config"]["common_tls_context"];
    for pointer in [
        "/tls_certificates/0/certificate_chain/filename",
        "/tls_certificates/0/private_key/filename",
        "/validation_context/trusted_ca/filename",
    ] {
        let file = tls.pointer_mut(pointer).context(pointer)?;
        let path = file.as_str().context("a file name")?;
        let name = path
            .strip_prefix("/etc/envoy/tls/")
            .context("files in /etc/envoy/tls")?;
        *file = dir.join(name).display().to_string().into();
    }
    let mut options = EnvoyOptions::new("envoy-0.demo", xds);
    // Everything but the admin address (the harness's) and the node ID
    // (`--service-node` in a pod).
    for key in ["dynamic_resources", "static_resources"] {
        options.bootstrap_extra.insert(key.into(), json[key].take());
    }
    options.node_cluster = json["node"]["cluster"]
        .as_str()
        .context("node.cluster")?
        .into();
    Ok(options)
}

async fn expect_put_denied(tls: Option<ClientTls>, endpoints: &[String], key: &str) -> Result<()> {
    let mut c =
        etcd_client::Client::connect(endpoints, tls.as_ref().map(ClientTls::connect_options))
            .await?;
    match c.put(key, "forged", None::<PutOptions>).await {
        Ok(_) => bail!("writing {key} was allowed"),
        Err(e) => {
            ensure!(e.to_string().contains("permission denied"), "{key}: {e}");
            Ok(())
        }
    }
}

/// A gRPC call to the xDS port (health check), over `channel`.
async fn xds_call(channel: tonic::transport::Channel) -> Result<()> {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_install_runs_encrypted_and_authenticated_end_to_end() -> Result<()> {
    let docs = render("manifests")?;
    let secrets = Secrets::make(&docs)?;

    // etcd: 3 members with the StatefulSet's flags.
    let etcd = Container::named(&docs, "StatefulSet", "etcd", "etcd")?;
    let harness_flags = [
        "--name",
        "--data-dir",
        "--listen-client-urls",
        "--advertise-client-urls",
        "--listen-peer-urls",
        "--initial-advertise-peer-urls",
        "--initial-cluster",
        "--initial-cluster-state",
        "--initial-cluster-token",
        "--listen-metrics-urls",
    ];
    let argv = etcd.argv();
    ensure!(argv[0] == "etcd");
    let https = |flag: &str| etcd.flag(flag).is_some_and(|u| u.starts_with("https://"));
    let root_secret = Container::named(&docs, "Job", "bootes-etcd-roles", "roles")?
        .secret_file("/etc/bootes/etcd/tls.crt")?
        .0;
    let cluster = EtcdCluster::start_with(
        3,
        ClusterOptions {
            client_https: https("--listen-client-urls"),
            peer_https: https("--listen-peer-urls"),
            args: adapt(&etcd, &argv[1..], &harness_flags, &secrets)?,
            client_tls: Some(secrets.identity(&root_secret)?),
        },
    )
    .await?;
    ensure!(cluster.endpoints().starts_with("https://"));
    let endpoints: Vec<String> = cluster.endpoints().split(',').map(String::from).collect();

    // The roles Job, then authentication is on.
    let job = Container::named(&docs, "Job", "bootes-etcd-roles", "roles")?;
    run_roles_job(&job, &secrets, &cluster.endpoints())?;

    // The controller, with the Deployment's flags, on the objects.
    let upstream = Upstream::start("upstream-a").await?;
    let port = free_port();
    let m = ManifestDir::new()?;
    let mut objects = vec![pod("demo", "envoy-0", &[])];
    objects.extend(route_all_to_cluster_a("demo", port));
    objects.push(endpoint_a("demo", &[upstream.addr()]));
    m.write_docs("objects.yaml", &objects)?;
    let controller = Container::named(&docs, "Deployment", "bootes-controller", "controller")?;
    let argv = controller.argv();
    ensure!(argv[0] == "run");
    let args = adapt(
        &controller,
        &argv[1..],
        &["--etcd-endpoints", "--metrics-addr"],
        &secrets,
    )?;
    let mut controller_process =
        Controller::start_on(&cluster.endpoints(), m.path(), &strs(&args)).await?;

    // Two xds-servers with the Deployment's flags.
    let xds = Container::named(&docs, "Deployment", "bootes-xds-server", "xds-server")?;
    let args = adapt(
        &xds,
        &xds.argv(),
        &["--etcd-endpoints", "--listen", "--admin-listen"],
        &secrets,
    )?;
    ensure!(args.iter().any(|a| a.starts_with("--csds-listen=0.0.0.0:")));
    // CSDS on loopback here (the NetworkPolicy guards it in a cluster).
    let args: Vec<String> = args
        .into_iter()
        .map(|a| {
            if a.starts_with("--csds-listen=") {
                format!("--csds-listen=127.0.0.1:{}", free_port())
            } else {
                a
            }
        })
        .collect();
    let mut replicas = Vec::new();
    for name in ["a", "b"] {
        let mut args = args.clone();
        if name == "b" {
            let csds = args
                .iter_mut()
                .find(|a| a.starts_with("--csds-listen="))
                .unwrap();
            *csds = format!("--csds-listen=127.0.0.1:{}", free_port());
        }
        replicas.push(
            XdsServer::start_with_env(
                &cluster.endpoints(),
                name,
                &strs(&args),
                &[("BOOTES_REPLICA_ID", &format!("xds-{name}"))],
            )
            .await?,
        );
    }
    let xds_addrs: Vec<SocketAddr> = replicas.iter().map(XdsServer::addr).collect();

    // An Envoy with the example bootstrap and a certificate for its node.
    let envoy_dir = tempfile::tempdir()?;
    let envoy_cert = secrets
        .ca
        .issue("envoy-0.demo", &[San::Dns("envoy-0.demo")]);
    std::fs::write(envoy_dir.path().join("tls.crt"), &envoy_cert.cert_pem)?;
    std::fs::write(envoy_dir.path().join("tls.key"), &envoy_cert.key_pem)?;
    secrets.ca.write(envoy_dir.path(), "ca.crt");
    let _envoy = Envoy::start_with(envoy_options(&xds_addrs, envoy_dir.path())?).await?;

    // 1. Traffic flows.
    expect_routed(port, "example.com", "/", "upstream-a").await?;

    // 2. No identity but the controller's writes a snapshot.
    let forged = format!("{PREFIX}snapshots/demo/forged");
    let xds_secret = xds.secret_file("/etc/bootes/etcd/tls.crt")?.0;
    let stranger = ClientTls {
        ca_pem: secrets.ca.pem.clone(),
        identity: secrets.ca.issue("nobody", &[]),
    };
    let envoy_identity = ClientTls {
        ca_pem: secrets.ca.pem.clone(),
        identity: envoy_cert.clone(),
    };
    for (who, tls) in [
        ("the xds-server", secrets.identity(&xds_secret)?),
        ("the operator", secrets.identity("etcd-operator")?),
        ("an Envoy", envoy_identity),
        ("a stranger of the CA", stranger),
    ] {
        expect_put_denied(Some(tls), &endpoints, &forged)
            .await
            .with_context(|| who.to_string())?;
    }
    // A certificate of another CA gets no connection at all.
    let other = TestCa::new("another CA");
    let outsider = ClientTls {
        ca_pem: secrets.ca.pem.clone(),
        identity: other.issue("bootes-controller", &[]),
    };
    let refused =
        match etcd_client::Client::connect(&endpoints, Some(outsider.connect_options())).await {
            Err(_) => true,
            Ok(mut c) => c
                .put(forged.as_str(), "x", None::<PutOptions>)
                .await
                .is_err(),
        };
    ensure!(refused, "a certificate of another CA wrote to etcd");
    // The controller's identity may (it is the one writing snapshots).
    let controller_secret = controller.secret_file("/etc/bootes/etcd/tls.crt")?.0;
    let mut as_controller = etcd_client::Client::connect(
        &endpoints,
        Some(secrets.identity(&controller_secret)?.connect_options()),
    )
    .await?;
    let snapshots = as_controller
        .get(
            format!("{PREFIX}snapshots/"),
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_keys_only(),
            ),
        )
        .await?;
    ensure!(snapshots.count() > 0, "the controller wrote no snapshot");

    // 3. Plaintext clients are refused: etcd ...
    let plain: Vec<String> = (0..3)
        .map(|i| format!("http://{}", cluster.client_addr(i)))
        .collect();
    let plain_ok = match etcd_client::Client::connect(&plain, None).await {
        Err(_) => false,
        Ok(mut c) => c.get("/", None).await.is_ok(),
    };
    ensure!(!plain_ok, "etcd answered a plaintext client");
    // ... and TLS without a client certificate.
    let anonymous = etcd_client::ConnectOptions::new().with_tls(
        etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(&secrets.ca.pem)),
    );
    let anonymous_ok = match etcd_client::Client::connect(&endpoints, Some(anonymous)).await {
        Err(_) => false,
        Ok(mut c) => c.get("/", None).await.is_ok(),
    };
    ensure!(
        !anonymous_ok,
        "etcd answered a client without a certificate"
    );
    // The xDS port: plaintext gRPC, and TLS without a client certificate.
    for addr in &xds_addrs {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy();
        ensure!(
            xds_call(channel).await.is_err(),
            "{addr} answered plaintext gRPC"
        );
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&secrets.ca.pem))
            .domain_name("bootes-xds-server.bootes-system.svc");
        let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))?
            .tls_config(tls.clone())?
            .connect_lazy();
        ensure!(
            xds_call(channel).await.is_err(),
            "{addr} answered a client without a certificate"
        );
        // With a certificate it answers: the refusals above are about them.
        let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))?
            .tls_config(tls.identity(tonic::transport::Identity::from_pem(
                &envoy_cert.cert_pem,
                &envoy_cert.key_pem,
            )))?
            .connect_lazy();
        xds_call(channel)
            .await
            .with_context(|| format!("{addr} with a client certificate"))?;
    }

    // Nothing warns of missing TLS.
    let mut logs = log_of(controller_process.process())?;
    for r in &mut replicas {
        logs.push_str(&log_of(r.process().context("running")?)?);
    }
    for warning in [ETCD_WARNING, XDS_WARNING] {
        ensure!(
            !logs.contains(warning),
            "the secure install logged {warning:?}"
        );
    }
    Ok(())
}

fn log_of(p: &mut bootes_tests::harness::ChildProcess) -> Result<String> {
    Ok(std::fs::read_to_string(p.stderr_path())? + &std::fs::read_to_string(p.stdout_path())?)
}

/// The insecure-dev overlay's processes say at start-up what they lack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_insecure_overlay_warns_at_start_up() -> Result<()> {
    let docs = render("manifests/overlays/insecure-dev")?;
    let none = Secrets::make(&render("manifests")?)?;
    let etcd = Etcd::start().await?;
    let m = ManifestDir::new()?;
    m.write_docs("objects.yaml", &[pod("demo", "envoy-0", &[])])?;
    let controller = Container::named(&docs, "Deployment", "bootes-controller", "controller")?;
    let argv = controller.argv();
    let args = adapt(
        &controller,
        &argv[1..],
        &["--etcd-endpoints", "--metrics-addr"],
        &none,
    )?;
    let mut controller = Controller::start_with_args(&etcd, m.path(), &strs(&args)).await?;
    let xds = Container::named(&docs, "Deployment", "bootes-xds-server", "xds-server")?;
    let args = adapt(
        &xds,
        &xds.argv(),
        &[
            "--etcd-endpoints",
            "--listen",
            "--admin-listen",
            "--csds-listen",
        ],
        &none,
    )?;
    let mut xds = XdsServer::start_with_args(&etcd, "dev", &strs(&args)).await?;
    let controller_log = log_of(controller.process())?;
    ensure!(
        controller_log.contains(ETCD_WARNING),
        "controller:\n{controller_log}"
    );
    let xds_log = log_of(xds.process().context("running")?)?;
    for warning in [ETCD_WARNING, XDS_WARNING] {
        ensure!(
            xds_log.contains(warning),
            "xds-server lacks {warning:?}:\n{xds_log}"
        );
    }
    Ok(())
}
