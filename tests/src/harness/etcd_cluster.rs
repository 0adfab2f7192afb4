//! A throw-away etcd cluster of several members (Debian's `etcd-server`) on
//! free loopback ports, whose members can be killed and restarted.

use std::net::SocketAddr;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::etcd::ClientTls;
use super::{find_etcd, free_port, test_dir, ChildProcess};

/// How the members serve, beyond what the cluster decides itself (names,
/// addresses, data directories).
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// `https` to serve clients with TLS (`args` then names the files).
    pub client_https: bool,
    /// `https` between peers.
    pub peer_https: bool,
    /// Further flags of every member (e.g. `--cert-file=...`,
    /// `--client-cert-auth`).
    pub args: Vec<String>,
    /// What the cluster's own clients ([`EtcdCluster::member_client`])
    /// present.
    pub client_tls: Option<ClientTls>,
}

fn scheme(https: bool) -> &'static str {
    if https {
        "https"
    } else {
        "http"
    }
}

#[derive(Debug)]
struct Member {
    name: String,
    client_addr: SocketAddr,
    /// Plain HTTP `/health` and `/metrics`, whatever the client port speaks.
    metrics_addr: SocketAddr,
    peer_url: String,
    process: Option<ChildProcess>,
    restarts: u32,
    /// Stopped with SIGSTOP: hung, its connections open.
    paused: bool,
}

impl Member {
    fn serves(&self) -> bool {
        self.process.is_some() && !self.paused
    }
}

/// `n` etcd members forming one cluster; data in one temporary directory.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    initial_cluster: String,
    options: ClusterOptions,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `n` members and waits until each is healthy.
    pub async fn start(n: usize) -> Result<Self> {
        Self::start_with(n, ClusterOptions::default()).await
    }

    /// [`EtcdCluster::start`] with TLS or other flags.
    pub async fn start_with(n: usize, options: ClusterOptions) -> Result<Self> {
        let dir = test_dir("etcd-cluster")?;
        let peer_scheme = scheme(options.peer_https);
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
                metrics_addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
                peer_url: format!("{peer_scheme}://127.0.0.1:{}", free_port()),
                process: None,
                restarts: 0,
                paused: false,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self {
            members,
            initial_cluster,
            options,
            dir,
        };
        // All at once: a member waits for a quorum of its peers.
        for i in 0..n {
            cluster.spawn(i)?;
        }
        for i in 0..n {
            cluster.wait_healthy(i).await?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let bin = find_etcd()?;
        let m = &mut self.members[i];
        let client_url = format!("{}://{}", scheme(self.options.client_https), m.client_addr);
        let mut cmd = Command::new(bin);
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.dir.path().join(&m.name))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&m.peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&m.peer_url)
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg("bootes-test-cluster")
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .arg("--listen-metrics-urls")
            .arg(format!("http://{}", m.metrics_addr))
            .args(&self.options.args);
        let log = if m.restarts == 0 {
            format!("etcd-{}", m.name)
        } else {
            format!("etcd-{}-restart{}", m.name, m.restarts)
        };
        m.process = Some(ChildProcess::spawn(&log, &mut cmd, self.dir.path())?);
        Ok(())
    }

    async fn wait_healthy(&mut self, i: usize) -> Result<()> {
        let m = &mut self.members[i];
        let process = m.process.as_mut().context("member not running")?;
        super::etcd::wait_for_health(&format!("etcd member {}", m.name), m.metrics_addr, process)
            .await
    }

    /// Every member's client URL, comma separated (for `--etcd-endpoints`).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}://{}", scheme(self.options.client_https), m.client_addr))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> String {
        format!(
            "{}://{}",
            scheme(self.options.client_https),
            self.members[i].client_addr
        )
    }

    /// Member `i`'s client address.
    pub fn client_addr(&self, i: usize) -> SocketAddr {
        self.members[i].client_addr
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// A client of member `i` alone.
    pub async fn member_client(&self, i: usize) -> Result<etcd_client::Client> {
        let options = self
            .options
            .client_tls
            .as_ref()
            .map(ClientTls::connect_options);
        etcd_client::Client::connect([self.endpoint(i)], options)
            .await
            .with_context(|| format!("connecting to etcd member {i}"))
    }

    /// The index of the member that is the Raft leader, as a running member sees it.
    pub async fn leader(&self) -> Result<usize> {
        for (i, m) in self.members.iter().enumerate() {
            if !m.serves() {
                continue;
            }
            let Ok(mut c) = self.member_client(i).await else {
                continue;
            };
            let Ok(status) = c.status().await else {
                continue;
            };
            let leader_id = status.leader();
            for j in 0..self.members.len() {
                if !self.members[j].serves() {
                    continue;
                }
                let mut cj = self.member_client(j).await?;
                let sj = cj.status().await?;
                if sj.header().map(|h| h.member_id()) == Some(leader_id) {
                    return Ok(j);
                }
            }
        }
        bail!("no running member knows a leader")
    }

    /// Kills member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.members[i].paused = false;
        if let Some(mut p) = self.members[i].process.take() {
            p.kill();
        }
    }

    /// Stops member `i` (SIGSTOP): it hangs with its connections open, the
    /// worst way for a member to fail.
    pub fn pause(&mut self, i: usize) -> Result<()> {
        let m = &mut self.members[i];
        m.process
            .as_ref()
            .context("member not running")?
            .signal("STOP")?;
        m.paused = true;
        Ok(())
    }

    /// Lets a paused member `i` go on (SIGCONT) and waits until it is healthy.
    pub async fn resume(&mut self, i: usize) -> Result<()> {
        let m = &mut self.members[i];
        m.process
            .as_ref()
            .context("member not running")?
            .signal("CONT")?;
        m.paused = false;
        self.wait_healthy(i).await
    }

    /// Whether member `i` runs and is not paused.
    pub fn serves(&self, i: usize) -> bool {
        self.members[i].serves()
    }

    /// Starts member `i` again, with its data, on the same ports, and waits
    /// until it is healthy (it has rejoined the cluster).
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.members[i].restarts += 1;
        self.spawn(i)?;
        self.wait_healthy(i).await
    }

    /// Every key and value under `prefix` in member `i`'s own copy
    /// (a serializable read, answered locally), sorted by key.
    pub async fn local_contents(&self, i: usize, prefix: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut c = self.member_client(i).await?;
        let resp = c
            .get(
                prefix,
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_serializable(),
                ),
            )
            .await
            .with_context(|| format!("reading {prefix} from member {i}"))?;
        let mut kvs: Vec<_> = resp
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
            .collect();
        kvs.sort();
        Ok(kvs)
    }
}
