//! Server TLS from PEM files, reloaded when they change: the xDS port and
//! the controller's admission webhook.
//!
//! The servers terminate TLS themselves (tokio-rustls) rather than through
//! tonic's or a framework's TLS, which is built once from fixed PEM bytes:
//! a rotated certificate or CA bundle would need a restart that drops every
//! stream, and the handshake could not be bounded by our own timeout. Here
//! each new connection takes the [`ServerConfig`] current at accept time; a
//! reload swaps that config and leaves established connections alone.

mod files;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

pub use files::FileError;

/// The PEM files that configure TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With a client CA bundle, clients must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
}

/// The server's TLS configuration, replaced whenever its files change.
#[derive(Debug)]
pub struct ReloadingTls {
    files: TlsFiles,
    /// ALPN protocols offered (`h2` for gRPC, `http/1.1` for the webhook).
    alpn: Vec<Vec<u8>>,
    current: RwLock<(files::Fingerprint, Arc<ServerConfig>)>,
}

impl ReloadingTls {
    /// Loads the files; an error here stops the server from starting.
    pub fn load(files: TlsFiles, alpn: &[&[u8]]) -> Result<Arc<Self>, FileError> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let (fingerprint, config) = build(&files, &alpn)?;
        Ok(Arc::new(Self {
            files,
            alpn,
            current: RwLock::new((fingerprint, config)),
        }))
    }

    /// True when clients must authenticate.
    pub fn requires_client_auth(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The configuration for the next handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.read().expect("tls lock").1.clone()
    }

    /// Re-reads the files; swaps the configuration when their content
    /// changed and still forms a valid configuration. A bad or half-written
    /// set of files (a rotation in progress) keeps the previous one.
    /// Returns whether the configuration changed.
    pub fn reload(&self) -> Result<bool, FileError> {
        let fingerprint = files::fingerprint(&self.files)?;
        if fingerprint == self.current.read().expect("tls lock").0 {
            return Ok(false);
        }
        let (fingerprint, config) = build(&self.files, &self.alpn)?;
        *self.current.write().expect("tls lock") = (fingerprint, config);
        Ok(true)
    }

    /// Polls the files every `period`, forever.
    pub async fn watch(self: Arc<Self>, period: Duration) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match self.reload() {
                Ok(true) => {
                    failing = false;
                    tracing::info!(cert = %self.files.cert.display(), "TLS files changed; new connections use them");
                }
                Ok(false) => failing = false,
                // Once per failure, not once per tick.
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "TLS files unusable; keeping the previous ones");
                }
                Err(_) => {}
            }
        }
    }
}

fn build(
    files: &TlsFiles,
    alpn: &[Vec<u8>],
) -> Result<(files::Fingerprint, Arc<ServerConfig>), FileError> {
    let loaded = files::read(files)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| FileError::invalid(&files.cert, e))?;
    let builder = match (&files.client_ca, loaded.client_ca) {
        (Some(path), Some(cas)) => {
            let mut roots = RootCertStore::empty();
            for ca in cas {
                roots.add(ca).map_err(|e| FileError::invalid(path, e))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| FileError::invalid(path, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    // Also checks that the key belongs to the certificate: a rotation
    // caught between writing the two files is refused, not served.
    let mut config = builder
        .with_single_cert(loaded.chain, loaded.key)
        .map_err(|e| FileError::invalid(&files.key, e))?;
    config.alpn_protocols = alpn.to_vec();
    Ok((loaded.fingerprint, Arc::new(config)))
}
