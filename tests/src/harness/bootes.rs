//! The two Bootes binaries, started as real processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::{eventually, find_bootes_bin, free_port, http_get, test_dir, ChildProcess, Etcd};

fn base_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    cmd
}

/// Polls `GET /readyz` on `admin` until it answers 200, failing early (with
/// the log tails) if the process exits.
async fn wait_ready(process: &mut ChildProcess, admin: SocketAddr) -> Result<()> {
    let name = process.name().to_string();
    eventually(
        &format!("{name} answers 200 on http://{admin}/readyz"),
        || {
            let running = process.check_running();
            async move {
                running?;
                let r = http_get(admin, "127.0.0.1", "/readyz").await?;
                if r.status != 200 {
                    bail!("/readyz: {} {}", r.status, r.text());
                }
                Ok(())
            }
        },
    )
    .await
}

/// `bootes-controller run --manifests DIR` against an etcd.
#[derive(Debug)]
pub struct Controller {
    process: ChildProcess,
    metrics_addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Controller {
    /// Starts the controller on `manifests` with the default etcd prefix and
    /// waits for `/readyz`.
    pub async fn start(etcd: &Etcd, manifests: &Path) -> Result<Self> {
        Self::start_with_args(etcd, manifests, &[]).await
    }

    /// Like [`Controller::start`], with extra command-line arguments.
    pub async fn start_with_args(etcd: &Etcd, manifests: &Path, extra: &[&str]) -> Result<Self> {
        Self::start_on(&etcd.endpoint(), manifests, extra).await
    }

    /// Like [`Controller::start_with_args`], on `--etcd-endpoints endpoints`
    /// (e.g. every member of an [`super::EtcdCluster`]).
    pub async fn start_on(endpoints: &str, manifests: &Path, extra: &[&str]) -> Result<Self> {
        let bin = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN")?;
        let dir = test_dir("controller")?;
        let metrics_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut cmd = base_command(&bin);
        cmd.arg("run")
            .arg("--manifests")
            .arg(manifests)
            .arg("--etcd-endpoints")
            .arg(endpoints)
            .arg("--metrics-addr")
            .arg(metrics_addr.to_string())
            .args(extra);
        let mut process = ChildProcess::spawn("bootes-controller", &mut cmd, dir.path())?;
        wait_ready(&mut process, metrics_addr)
            .await
            .context("bootes-controller did not become ready")?;
        Ok(Self {
            process,
            metrics_addr,
            _dir: dir,
        })
    }

    /// `bootes-controller run` in Kubernetes mode (no `--manifests`):
    /// `KUBECONFIG` is `kubeconfig` (e.g. kube-standin's), with extra
    /// arguments; waits for `/readyz`. `name` names the process in logs.
    pub async fn start_kube(
        name: &str,
        etcd: &Etcd,
        kubeconfig: &Path,
        extra: &[&str],
    ) -> Result<Self> {
        let bin = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN")?;
        let dir = test_dir(name)?;
        let metrics_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut cmd = base_command(&bin);
        cmd.arg("run")
            .arg("--etcd-endpoints")
            .arg(etcd.endpoint())
            .arg("--metrics-addr")
            .arg(metrics_addr.to_string())
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", dir.path());
        let mut process = ChildProcess::spawn(name, &mut cmd, dir.path())?;
        wait_ready(&mut process, metrics_addr)
            .await
            .with_context(|| format!("{name} did not become ready"))?;
        Ok(Self {
            process,
            metrics_addr,
            _dir: dir,
        })
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    pub fn process(&mut self) -> &mut ChildProcess {
        &mut self.process
    }
}

/// One `bootes-xds-server` replica.
#[derive(Debug)]
pub struct XdsServer {
    name: String,
    process: Option<ChildProcess>,
    listen: SocketAddr,
    admin: SocketAddr,
    csds: SocketAddr,
    etcd_endpoint: String,
    extra: Vec<String>,
    /// Extra environment variables of the process.
    env: Vec<(String, String)>,
    bin: PathBuf,
    restarts: u32,
    dir: tempfile::TempDir,
}

impl XdsServer {
    /// Starts a replica called `name` (used in log file names) and waits for
    /// `/readyz`.
    pub async fn start(etcd: &Etcd, name: &str) -> Result<Self> {
        Self::start_with_args(etcd, name, &[]).await
    }

    /// Like [`XdsServer::start`], with extra command-line arguments.
    pub async fn start_with_args(etcd: &Etcd, name: &str, extra: &[&str]) -> Result<Self> {
        Self::start_on(&etcd.endpoint(), name, extra).await
    }

    /// Like [`XdsServer::start_with_args`], on `--etcd-endpoints endpoints`.
    pub async fn start_on(endpoints: &str, name: &str, extra: &[&str]) -> Result<Self> {
        Self::start_with_env(endpoints, name, extra, &[]).await
    }

    /// Like [`XdsServer::start_on`], with extra environment variables.
    pub async fn start_with_env(
        endpoints: &str,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let mut server = Self::unstarted(endpoints, name, extra, env)?;
        server.spawn().await?;
        Ok(server)
    }

    /// A replica whose ports are chosen but that is not started yet: a
    /// client can be pointed at it before it listens. Start it with
    /// [`XdsServer::start_reserved`].
    pub fn reserve(etcd: &Etcd, name: &str, extra: &[&str]) -> Result<Self> {
        Self::unstarted(&etcd.endpoint(), name, extra, &[])
    }

    /// Starts a replica made by [`XdsServer::reserve`] and waits for `/readyz`.
    pub async fn start_reserved(&mut self) -> Result<()> {
        self.spawn().await
    }

    fn unstarted(
        endpoints: &str,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        Ok(Self {
            name: name.to_string(),
            process: None,
            listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
            admin: SocketAddr::from(([127, 0, 0, 1], free_port())),
            csds: SocketAddr::from(([127, 0, 0, 1], free_port())),
            etcd_endpoint: endpoints.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            bin: find_bootes_bin("bootes-xds-server", "BOOTES_XDS_SERVER_BIN")?,
            restarts: 0,
            dir: test_dir(&format!("xds-{name}"))?,
        })
    }

    async fn spawn(&mut self) -> Result<()> {
        let mut cmd = base_command(&self.bin);
        cmd.arg("--etcd-endpoints")
            .arg(&self.etcd_endpoint)
            .arg("--listen")
            .arg(self.listen.to_string())
            .arg("--admin-listen")
            .arg(self.admin.to_string());
        if !self.extra.iter().any(|a| a.starts_with("--csds-listen")) {
            cmd.arg("--csds-listen").arg(self.csds.to_string());
        }
        cmd.args(&self.extra);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let log_name = if self.restarts == 0 {
            format!("xds-server-{}", self.name)
        } else {
            format!("xds-server-{}-restart{}", self.name, self.restarts)
        };
        let mut process = ChildProcess::spawn(&log_name, &mut cmd, self.dir.path())?;
        wait_ready(&mut process, self.admin)
            .await
            .with_context(|| format!("xds-server {} did not become ready", self.name))?;
        self.process = Some(process);
        Ok(())
    }

    /// The gRPC (ADS) address.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// The CSDS listener's address.
    pub fn csds_addr(&self) -> SocketAddr {
        self.csds
    }

    /// The admin address (`/readyz`, `/livez`, `/metrics`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Kills the replica (SIGKILL: no goodbye to its streams).
    pub fn kill(&mut self) {
        if let Some(p) = self.process.as_mut() {
            p.kill();
        }
    }

    /// Asks the replica to drain and stop (SIGTERM), without waiting.
    pub fn terminate(&mut self) -> Result<()> {
        match self.process.as_mut() {
            Some(p) => p.terminate(),
            None => Ok(()),
        }
    }

    /// Starts the replica again on the same ports after [`XdsServer::kill`].
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.restarts += 1;
        self.spawn().await
    }

    pub fn process(&mut self) -> Option<&mut ChildProcess> {
        self.process.as_mut()
    }
}
