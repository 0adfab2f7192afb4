//! The etcd flags every Bootes command accepts (the controller's `run` and
//! `inspect`, and the xds-server), in one place, so that the names, variables
//! and meaning never drift between binaries (docs/DESIGN.md §9).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bootes_proto::sealed::{KeyFileError, SecretKeys};

use crate::connect::EtcdConfig;
use crate::security::{SecurityArgs, SecurityError};

/// How to reach etcd and read what Bootes keeps there. `global`, so that a
/// command with subcommands accepts them before or after the subcommand;
/// clap cannot make a global flag required, so [`EtcdArgs::require`] checks
/// the endpoints after parsing.
#[derive(Clone, Debug, clap::Args)]
pub struct EtcdArgs {
    /// etcd endpoints, comma separated (required).
    #[arg(
        long,
        global = true,
        env = "BOOTES_ETCD_ENDPOINTS",
        value_delimiter = ','
    )]
    pub etcd_endpoints: Vec<String>,
    /// Prefix of every Bootes key in etcd.
    #[arg(long, global = true, env = "BOOTES_ETCD_PREFIX", default_value = bootes_proto::DEFAULT_PREFIX)]
    pub etcd_prefix: String,
    #[command(flatten)]
    pub security: SecurityArgs,
    /// Key file for Secret resources at rest (`<key-id> <64 hex digits>` per
    /// line, the first key encrypts; the same file for every process): the
    /// controller stores Secrets encrypted, the xds-server and `inspect`
    /// decrypt them. See docs/SECURITY.md.
    #[arg(long, global = true, env = "BOOTES_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
}

/// A key file that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyFileError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret key file {}: {source}", path.display())]
    Parse { path: PathBuf, source: KeyFileError },
}

impl EtcdArgs {
    /// How to connect: endpoints, TLS and authentication (files read now).
    pub fn config(&self) -> Result<EtcdConfig, SecurityError> {
        EtcdConfig::new(&self.etcd_endpoints).with_security(&self.security)
    }

    /// The keys of Bootes's data under the prefix.
    pub fn keys(&self) -> bootes_proto::Keys {
        bootes_proto::Keys::new(&self.etcd_prefix)
    }

    /// The secret key file, read and parsed, if one is named.
    pub fn secret_keys(&self) -> Result<Option<Arc<SecretKeys>>, SecretKeyFileError> {
        self.secret_key_file
            .as_deref()
            .map(read_secret_keys)
            .transpose()
    }

    /// Fails as clap fails for a missing required flag (reported against
    /// `command`) when no endpoint was given.
    pub fn require(&self, mut command: clap::Command) -> Result<(), clap::Error> {
        if self.etcd_endpoints.iter().any(|e| !e.trim().is_empty()) {
            return Ok(());
        }
        Err(command.error(
            clap::error::ErrorKind::MissingRequiredArgument,
            "the following required argument was not provided: --etcd-endpoints <URL,...> (or BOOTES_ETCD_ENDPOINTS)",
        ))
    }
}

fn read_secret_keys(path: &Path) -> Result<Arc<SecretKeys>, SecretKeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretKeyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let keys = SecretKeys::parse(&text).map_err(|source| SecretKeyFileError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Arc::new(keys))
}
