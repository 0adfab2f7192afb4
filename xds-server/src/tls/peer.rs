//! The names in a verified client certificate.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::authz::PeerIdentity;

/// The URI and DNS SANs of a DER certificate (already verified by rustls
/// against the client CA). A certificate we cannot parse names nothing, so
/// it authorizes no node.
pub fn identity(der: &[u8]) -> PeerIdentity {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return PeerIdentity::default();
    };
    let mut uris = Vec::new();
    let mut dns = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(u) => uris.push(u.to_string()),
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                _ => {}
            }
        }
    }
    PeerIdentity::from_sans(uris, dns)
}
