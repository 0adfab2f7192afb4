//! TLS on the xDS port: the configuration, reloaded from its files, is
//! `bootes_tls`'s; here, what a verified client certificate names.

pub mod peer;

/// gRPC is HTTP/2 only.
pub const ALPN: &[&[u8]] = &[b"h2"];
