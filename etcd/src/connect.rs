//! Opening an etcd client: every process and command connects the same way.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use crate::members::Members;
use crate::security::{EtcdTls, EtcdUser, SecurityArgs, SecurityError};

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Endpoints, e.g. `http://127.0.0.1:2379`: the members of one
    /// cluster. Each request goes to one member that answers; one that
    /// refuses, hangs or misses a deadline is set aside at once and the
    /// request sent to the next ([`crate::members`]).
    pub endpoints: Vec<String>,
    /// Deadline of one TCP (and TLS) connection to a member, and how long
    /// [`connect`] waits for a first member to answer.
    pub connect_timeout: Duration,
    /// Deadline of each unary request, every member tried (`None`: none).
    /// Watches and keep-alive streams are not cut by it.
    pub request_timeout: Option<Duration>,
    /// Deadline of one attempt of a unary request on one member, doubled at
    /// each round over the members.
    pub attempt_timeout: Duration,
    /// Deadline of a member health check (before opening a stream, and
    /// while a set-aside member is probed).
    pub probe_timeout: Duration,
    /// HTTP/2 keep-alive: a ping this often, and the connection (with its
    /// streams) is dropped when no answer comes within the second value.
    pub keep_alive: (Duration, Duration),
    /// TLS towards etcd (https:// endpoints).
    pub tls: Option<EtcdTls>,
    /// Password authentication.
    pub user: Option<EtcdUser>,
}

impl EtcdConfig {
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Some(Duration::from_secs(10)),
            attempt_timeout: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            // A hung member is noticed within 0.9 s; a busy one still
            // answers pings (etcd's gRPC layer does, not its Raft loop).
            keep_alive: (Duration::from_millis(300), Duration::from_millis(600)),
            tls: None,
            user: None,
        }
    }

    /// With the TLS and authentication the flags name (files are read now).
    pub fn with_security(mut self, args: &SecurityArgs) -> Result<Self, SecurityError> {
        (self.tls, self.user) = args.load()?;
        Ok(self)
    }

    /// Logs a warning when the connection has no TLS, once at start-up of
    /// a process: etcd then sees no client certificate, and the network
    /// sees snapshots (and unsealed Secrets) in the clear.
    pub fn warn_if_plaintext(&self) {
        if self.tls.is_none() {
            tracing::warn!(
                endpoints = ?self.endpoints,
                "etcd connection without TLS (no --etcd-ca/--etcd-cert): traffic to etcd is in the clear and unauthenticated by certificate; see docs/SECURITY.md"
            );
        }
    }

    pub fn with_request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// Connects to `config`'s endpoints: one channel per member
/// ([`Members`]), a health check of every member at once so that the first
/// request goes to one that answers, then the client (which logs in when a
/// user is configured). Never fails because members are down: requests
/// fail then, and succeed once a member is back.
pub async fn connect(config: &EtcdConfig) -> Result<Client, etcd_client::Error> {
    Ok(connect_members(config).await?.1)
}

/// [`connect`], with the channel's view of the members.
pub async fn connect_members(config: &EtcdConfig) -> Result<(Members, Client), etcd_client::Error> {
    let members =
        Members::new(config).map_err(|e| etcd_client::Error::InvalidArgs(e.to_string()))?;
    if members.endpoints().is_empty() {
        return Err(etcd_client::Error::InvalidArgs("no etcd endpoint".into()));
    }
    if !members.probe_all(config.connect_timeout).await {
        tracing::warn!(endpoints = %members.endpoints().join(","), "no etcd member answers yet");
    }
    let mut options = ConnectOptions::new();
    if let Some(user) = &config.user {
        // Tokens expire (etcd's --auth-token-ttl); the client logs in again.
        options = options
            .with_user(user.name.clone(), user.password.clone())
            .with_auto_token_refresh(true);
    }
    let client = members.client(options).await?;
    Ok((members, client))
}
