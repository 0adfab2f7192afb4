//! `bootes-controller webhook-cert`: a self-signed certificate for the
//! webhook's Service, and the patch that puts it in the
//! ValidatingWebhookConfiguration's `caBundle`, for clusters without
//! cert-manager (manifests/README.md).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType,
};

use crate::cli::WebhookCertArgs;

/// The files written, in `--out-dir`.
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";
pub const PATCH_FILE: &str = "cabundle-patch.json";

/// Writes the key pair and the patch; prints what to run next.
pub fn run(args: &WebhookCertArgs) -> anyhow::Result<()> {
    let written = write(args)?;
    println!(
        "wrote {}, {} and {}\n\nthen:\n  kubectl -n {ns} create secret tls {secret} --cert={} --key={}\n  kubectl patch validatingwebhookconfiguration {config} --type=json --patch-file={}",
        written.cert.display(),
        written.key.display(),
        written.patch.display(),
        written.cert.display(),
        written.key.display(),
        written.patch.display(),
        ns = args.namespace,
        secret = args.secret,
        config = args.configuration,
    );
    Ok(())
}

/// Where [`write()`] put the files.
#[derive(Debug)]
pub struct Written {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub patch: PathBuf,
}

pub fn write(args: &WebhookCertArgs) -> anyhow::Result<Written> {
    let (cert_pem, key_pem) = self_signed(args)?;
    let dir = &args.out_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let written = Written {
        cert: dir.join(CERT_FILE),
        key: dir.join(KEY_FILE),
        patch: dir.join(PATCH_FILE),
    };
    write_file(&written.cert, cert_pem.as_bytes(), false)?;
    write_file(&written.key, key_pem.as_bytes(), true)?;
    write_file(&written.patch, ca_bundle_patch(&cert_pem).as_bytes(), false)?;
    Ok(written)
}

/// The DNS names the API server reaches the Service by, and any extra.
pub fn names(args: &WebhookCertArgs) -> Vec<String> {
    let base = format!("{}.{}.svc", args.service, args.namespace);
    let mut names = vec![base.clone(), format!("{base}.cluster.local")];
    names.extend(args.dns.iter().cloned());
    names
}

fn self_signed(args: &WebhookCertArgs) -> anyhow::Result<(String, String)> {
    let names = names(args);
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].clone());
    let mut sans: Vec<SanType> = Vec::new();
    for name in &names {
        sans.push(SanType::DnsName(
            name.as_str()
                .try_into()
                .with_context(|| format!("--dns {name:?}: not a DNS name"))?,
        ));
    }
    sans.extend(args.ip.iter().map(|ip: &IpAddr| SanType::IpAddress(*ip)));
    params.subject_alt_names = sans;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    // An hour back: clocks of the API server and this host may differ.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(args.days));
    let key = KeyPair::generate().context("generating the key")?;
    let cert = params
        .self_signed(&key)
        .context("signing the certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A JSON patch setting the first webhook's `caBundle` to `cert_pem`.
pub fn ca_bundle_patch(cert_pem: &str) -> String {
    let bundle = base64::engine::general_purpose::STANDARD.encode(cert_pem);
    let patch = serde_json::json!([{
        "op": "add",
        "path": "/webhooks/0/clientConfig/caBundle",
        "value": bundle,
    }]);
    format!("{patch}\n")
}

fn write_file(path: &Path, contents: &[u8], private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))
}
