//! Opening an etcd client: every process and command connects the same way.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use crate::security::{EtcdTls, EtcdUser, SecurityArgs, SecurityError};

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Endpoints, e.g. `http://127.0.0.1:2379`; the client fails over
    /// between them.
    pub endpoints: Vec<String>,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Deadline of each unary request (`None`: no deadline). Watches and
    /// keep-alive streams are not cut by it.
    pub request_timeout: Option<Duration>,
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

/// Connects to `config`'s endpoints. HTTP/2 keep-alive pings (every 10 s,
/// 5 s to answer) notice a dead connection even when nothing is sent.
pub async fn connect(config: &EtcdConfig) -> Result<Client, etcd_client::Error> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(config.connect_timeout)
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
    if let Some(timeout) = config.request_timeout {
        options = options.with_timeout(timeout);
    }
    if let Some(tls) = &config.tls {
        let mut t = etcd_client::TlsOptions::new();
        if let Some(ca) = &tls.ca_pem {
            t = t.ca_certificate(etcd_client::Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &tls.identity {
            t = t.identity(etcd_client::Identity::from_pem(cert, key));
        }
        options = options.with_tls(t);
    }
    if let Some(user) = &config.user {
        // Tokens expire (etcd's --auth-token-ttl); the client logs in again.
        options = options
            .with_user(user.name.clone(), user.password.clone())
            .with_auto_token_refresh(true);
    }
    Client::connect(&config.endpoints, Some(options)).await
}
