//! Reading the TLS PEM files.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use super::TlsFiles;

/// A TLS file that cannot be used, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

impl FileError {
    pub fn invalid(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// A hash of the files' contents: a reload only rebuilds on a change.
pub type Fingerprint = [u8; 32];

pub struct Loaded {
    pub fingerprint: Fingerprint,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub client_ca: Option<Vec<CertificateDer<'static>>>,
}

fn read_file(path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn contents(files: &TlsFiles) -> Result<[Vec<u8>; 3], FileError> {
    Ok([
        read_file(&files.cert)?,
        read_file(&files.key)?,
        match &files.client_ca {
            Some(p) => read_file(p)?,
            None => Vec::new(),
        },
    ])
}

fn hash(contents: &[Vec<u8>; 3]) -> Fingerprint {
    let mut h = Sha256::new();
    for c in contents {
        h.update((c.len() as u64).to_be_bytes());
        h.update(c);
    }
    h.finalize().into()
}

pub fn fingerprint(files: &TlsFiles) -> Result<Fingerprint, FileError> {
    Ok(hash(&contents(files)?))
}

fn certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileError::invalid(path, e))?;
    if certs.is_empty() {
        return Err(FileError::invalid(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

pub fn read(files: &TlsFiles) -> Result<Loaded, FileError> {
    let [cert, key, ca] = contents(files)?;
    let fingerprint = hash(&[cert.clone(), key.clone(), ca.clone()]);
    let chain = certs(&files.cert, &cert)?;
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| FileError::invalid(&files.key, e))?;
    let client_ca = match &files.client_ca {
        Some(path) => Some(certs(path, &ca)?),
        None => None,
    };
    Ok(Loaded {
        fingerprint,
        chain,
        key,
        client_ca,
    })
}
