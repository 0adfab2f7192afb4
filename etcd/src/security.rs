//! TLS and authentication towards etcd: the flags both processes and
//! `inspect` accept, read into an [`EtcdConfig`](crate::connect::EtcdConfig).
//!
//! etcd's own model: with `--client-cert-auth` and auth enabled, a client
//! certificate's common name is the etcd user; a username and password
//! (here read from a file, never from the command line) take precedence.

use std::path::{Path, PathBuf};

/// Command-line flags for etcd TLS and authentication (each also read
/// from a `BOOTES_ETCD_*` variable). `global`, so the controller's
/// subcommands accept them before or after the subcommand.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SecurityArgs {
    /// CA bundle (PEM) that signed etcd's server certificate. Endpoints
    /// must then be https:// URLs.
    #[arg(long, global = true, env = "BOOTES_ETCD_CA")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) for etcd; with etcd's --client-cert-auth its
    /// common name is the etcd user.
    #[arg(long, global = true, env = "BOOTES_ETCD_CERT", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// Private key (PEM) of --etcd-cert.
    #[arg(long, global = true, env = "BOOTES_ETCD_KEY", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// etcd user name (password authentication).
    #[arg(
        long,
        global = true,
        env = "BOOTES_ETCD_USERNAME",
        requires = "etcd_password_file"
    )]
    pub etcd_username: Option<String>,
    /// File holding the etcd user's password (trailing newline ignored).
    #[arg(
        long,
        global = true,
        env = "BOOTES_ETCD_PASSWORD_FILE",
        requires = "etcd_username"
    )]
    pub etcd_password_file: Option<PathBuf>,
}

/// PEM material for the etcd connection.
#[derive(Clone, Default)]
pub struct EtcdTls {
    pub ca_pem: Option<Vec<u8>>,
    /// (certificate chain, private key).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

/// A user name and password.
#[derive(Clone)]
pub struct EtcdUser {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for EtcdUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("EtcdUser")
            .field("name", &self.name)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("reading {}: {source}", path.display())]
pub struct SecurityError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn read(path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError {
        path: path.to_path_buf(),
        source,
    })
}

impl SecurityArgs {
    /// Reads the files the flags name.
    pub fn load(&self) -> Result<(Option<EtcdTls>, Option<EtcdUser>), SecurityError> {
        let tls = if self.etcd_ca.is_some() || self.etcd_cert.is_some() {
            Some(EtcdTls {
                ca_pem: self.etcd_ca.as_deref().map(read).transpose()?,
                identity: match (&self.etcd_cert, &self.etcd_key) {
                    (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
                    _ => None,
                },
            })
        } else {
            None
        };
        let user = match (&self.etcd_username, &self.etcd_password_file) {
            (Some(name), Some(file)) => {
                let password = String::from_utf8_lossy(&read(file)?)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                Some(EtcdUser {
                    name: name.clone(),
                    password,
                })
            }
            _ => None,
        };
        Ok((tls, user))
    }
}
