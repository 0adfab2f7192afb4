//! A throw-away etcd (Debian's `etcd-server`) on free loopback ports.

use std::net::SocketAddr;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use super::{eventually, find_etcd, free_port, http_get, test_dir, ChildProcess, Issued, TestCa};

/// One etcd member with its data in a temporary directory; killed and
/// removed when dropped.
#[derive(Debug)]
pub struct Etcd {
    process: ChildProcess,
    client_addr: SocketAddr,
    dir: tempfile::TempDir,
    /// How it was started, to start it again ([`Etcd::restart`]).
    command: Vec<std::ffi::OsString>,
    restarts: usize,
    /// With TLS: the CA and the identity [`Etcd::client`] presents.
    tls: Option<ClientTls>,
}

/// The CA a client trusts and the identity it presents to etcd.
#[derive(Clone, Debug)]
pub struct ClientTls {
    pub ca_pem: String,
    pub identity: Issued,
}

impl ClientTls {
    pub fn connect_options(&self) -> etcd_client::ConnectOptions {
        etcd_client::ConnectOptions::new().with_tls(
            etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(&self.ca_pem))
                .identity(etcd_client::Identity::from_pem(
                    &self.identity.cert_pem,
                    &self.identity.key_pem,
                )),
        )
    }
}

impl Etcd {
    /// Starts etcd and waits until `/health` says it is healthy.
    pub async fn start() -> Result<Self> {
        Self::start_inner(None, &[]).await
    }

    /// [`Etcd::start`] with extra command-line flags (e.g. a larger
    /// `--max-request-bytes`).
    pub async fn start_with_args(extra: &[&str]) -> Result<Self> {
        Self::start_inner(None, extra).await
    }

    /// Starts etcd serving TLS only, with a server certificate from `ca`
    /// and client certificates required (`--client-cert-auth`): once auth
    /// is enabled, a certificate's common name is its etcd user.
    /// [`Etcd::client`] presents a certificate for user `root`.
    pub async fn start_tls(ca: &TestCa) -> Result<Self> {
        Self::start_inner(Some(ca), &[]).await
    }

    async fn start_inner(ca: Option<&TestCa>, extra: &[&str]) -> Result<Self> {
        let bin = find_etcd()?;
        let dir = test_dir("etcd")?;
        let client_port = free_port();
        let peer_port = free_port();
        let scheme = if ca.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = Command::new(&bin);
        cmd.arg("--name")
            .arg("bootes-test")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("bootes-test={peer_url}"))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .args(extra);
        let tls = match ca {
            None => None,
            Some(ca) => {
                let server = ca.issue_localhost().write(dir.path(), "etcd-server");
                cmd.arg("--cert-file")
                    .arg(&server.cert)
                    .arg("--key-file")
                    .arg(&server.key)
                    .arg("--client-cert-auth")
                    .arg("--trusted-ca-file")
                    .arg(ca.write(dir.path(), "etcd-ca.crt"));
                Some(ClientTls {
                    ca_pem: ca.pem.clone(),
                    identity: ca.issue("root", &[]),
                })
            }
        };
        let process = ChildProcess::spawn("etcd", &mut cmd, dir.path())?;
        let command = std::iter::once(cmd.get_program().to_owned())
            .chain(cmd.get_args().map(ToOwned::to_owned))
            .collect();
        let mut etcd = Self {
            process,
            client_addr: SocketAddr::from(([127, 0, 0, 1], client_port)),
            dir,
            command,
            restarts: 0,
            tls,
        };
        etcd.wait_healthy().await?;
        Ok(etcd)
    }

    /// Kills etcd (SIGKILL) and starts it again on the same ports and data,
    /// as a crash and restart would; waits until it is healthy.
    pub async fn restart(&mut self) -> Result<()> {
        self.process.kill();
        self.restarts += 1;
        let mut cmd = Command::new(&self.command[0]);
        cmd.args(&self.command[1..]);
        self.process = ChildProcess::spawn(
            &format!("etcd-restart{}", self.restarts),
            &mut cmd,
            self.dir.path(),
        )?;
        self.wait_healthy().await
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        if self.tls.is_some() {
            let this = &*self;
            return eventually("etcd answers over TLS", || async move {
                this.client().await?.status().await?;
                Ok(())
            })
            .await
            .context("etcd did not become healthy");
        }
        wait_for_health("etcd", self.client_addr, &mut self.process)
            .await
            .context("etcd did not become healthy")
    }

    /// The client URL, e.g. `http://127.0.0.1:23790`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.client_addr)
    }

    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn process(&mut self) -> &mut ChildProcess {
        &mut self.process
    }

    /// A client for inspecting or changing keys directly.
    pub async fn client(&self) -> Result<etcd_client::Client> {
        let options = self.tls.as_ref().map(ClientTls::connect_options);
        etcd_client::Client::connect([self.endpoint()], options)
            .await
            .context("connecting to etcd")
    }

    /// The `status/` records of `node` (default prefix), one per replica
    /// it is connected to: (version of the key, decoded value).
    pub async fn node_status(
        &self,
        node: &str,
    ) -> Result<Vec<(i64, bootes_proto::store::NodeStatus)>> {
        use prost::Message;
        let prefix = format!("{}status/{node}/", bootes_proto::DEFAULT_PREFIX);
        let resp = self
            .client()
            .await?
            .get(
                prefix.as_str(),
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await?;
        resp.kvs()
            .iter()
            .map(|kv| {
                let status = bootes_proto::store::NodeStatus::decode(kv.value())
                    .with_context(|| format!("decoding {}", String::from_utf8_lossy(kv.key())))?;
                Ok((kv.version(), status))
            })
            .collect()
    }

    /// The snapshot `node` is bound to (default prefix), if any.
    pub async fn node_snapshot(&self, node: &str) -> Result<Option<bootes_proto::store::Snapshot>> {
        use prost::Message;
        let keys = bootes_proto::Keys::default();
        let mut client = self.client().await?;
        let resp = client.get(keys.node(node), None).await?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(None);
        };
        let binding = bootes_proto::store::NodeBinding::decode(kv.value())?;
        let resp = client.get(keys.snapshot(&binding.snapshot), None).await?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(None);
        };
        Ok(Some(bootes_proto::store::Snapshot::decode(kv.value())?))
    }

    /// Every key under `prefix`, sorted.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        let mut client = self.client().await?;
        let resp = client
            .get(
                prefix,
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_keys_only(),
                ),
            )
            .await
            .context("listing etcd keys")?;
        let mut keys: Vec<String> = resp
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect();
        keys.sort();
        Ok(keys)
    }
}

/// Waits until the etcd at `addr` answers `/health` with `true`, failing
/// early if its process ends (one etcd, or a member of a cluster).
pub(crate) async fn wait_for_health(
    name: &str,
    addr: SocketAddr,
    process: &mut ChildProcess,
) -> Result<()> {
    eventually(&format!("{name} answers /health"), || {
        let running = process.check_running();
        async move {
            running?;
            let r = http_get(addr, "127.0.0.1", "/health").await?;
            if r.status != 200 || !r.body.contains("true") {
                bail!("/health: {} {}", r.status, r.body);
            }
            Ok(())
        }
    })
    .await
}

/// Runs manifests/etcd/roles.sh (what the install's roles Job runs) with
/// `env` and etcdctl (installed beside etcd) on the PATH, twice: running it
/// again must be harmless.
pub fn run_roles_script<K, V>(env: &[(K, V)]) -> Result<()>
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    let script = super::repo_dir().join("manifests/etcd/roles.sh");
    let etcd_dir = find_etcd()?
        .parent()
        .context("etcd's directory")?
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(etcd_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    for run in 1..=2 {
        let out = Command::new("bash")
            .arg(&script)
            .env("PATH", &path)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .output()?;
        ensure!(
            out.status.success(),
            "roles.sh (run {run}) failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
