//! TLS on the xDS port: rustls, files reloaded when they change.
//!
//! We terminate TLS ourselves (tokio-rustls) and hand tonic the decrypted
//! connections through `serve_with_incoming` rather than using tonic's
//! `tls_config`: tonic's server TLS is built once from fixed PEM bytes, so a
//! rotated certificate or CA bundle would need a restart that drops every
//! stream, and its handshake cannot be bounded by our own timeout. Here each
//! new connection takes the [`ServerConfig`] current at accept time; a reload
//! swaps that config and leaves established connections alone.

mod files;
pub mod peer;

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
    current: RwLock<(files::Fingerprint, Arc<ServerConfig>)>,
}

impl ReloadingTls {
    /// Loads the files; an error here stops the server from starting.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, FileError> {
        let (fingerprint, config) = build(&files)?;
        Ok(Arc::new(Self {
            files,
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
        let (fingerprint, config) = build(&self.files)?;
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

fn build(files: &TlsFiles) -> Result<(files::Fingerprint, Arc<ServerConfig>), FileError> {
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
    // gRPC is HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((loaded.fingerprint, Arc::new(config)))
}
