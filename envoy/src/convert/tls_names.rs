//! The names Envoy's TLS library (BoringSSL) takes in `tls_params`:
//! cipher suites, ECDH curves, signature algorithms. Envoy refuses a
//! context with a name BoringSSL does not know ("Failed to initialize
//! cipher suites …", "Failed to initialize ECDH curves …", "Failed to
//! initialize TLS signature algorithms …").
//!
//! Source: BoringSSL's cipher, group and signature-algorithm tables, as
//! the Envoy 1.40 binary takes them (tests/tests/envoy_semantic.rs checks
//! every name below against it). Where a list may be written in a way
//! these lists do not cover (cipher rules with operators, standard
//! `TLS_…` cipher names, `KEY+HASH` signature algorithms) it is left to
//! Envoy.

/// Cipher suite names and aliases of BoringSSL (TLS 1.2 and below: the
/// TLS 1.3 suites are not configurable, and Envoy refuses their names).
pub const CIPHERS: &[&str] = &[
    "DES-CBC3-SHA",
    "AES128-SHA",
    "AES256-SHA",
    "PSK-AES128-CBC-SHA",
    "PSK-AES256-CBC-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-RSA-AES256-SHA",
    "ECDHE-PSK-AES128-CBC-SHA",
    "ECDHE-PSK-AES256-CBC-SHA",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-PSK-CHACHA20-POLY1305",
    // Aliases.
    "ALL",
    "kRSA",
    "kECDHE",
    "kEECDH",
    "ECDHE",
    "EECDH",
    "kPSK",
    "aRSA",
    "aECDSA",
    "ECDSA",
    "aPSK",
    "PSK",
    "3DES",
    "AES128",
    "AES256",
    "AES",
    "AESGCM",
    "CHACHA20",
    "SHA1",
    "SHA",
    "SSLv3",
    "TLSv1",
    "TLSv1.2",
    "HIGH",
    "FIPS",
];

/// The TLS 1.3 suites, which BoringSSL does not let a config choose.
pub const TLS13_CIPHERS: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

pub const CURVES: &[&str] = &[
    "P-256",
    "prime256v1",
    "P-384",
    "secp384r1",
    "P-521",
    "secp521r1",
    "X25519",
    "x25519",
    "X25519MLKEM768",
];

pub const SIGNATURE_ALGORITHMS: &[&str] = &[
    "rsa_pkcs1_sha1",
    "rsa_pkcs1_sha256",
    "rsa_pkcs1_sha384",
    "rsa_pkcs1_sha512",
    "ecdsa_sha1",
    "ecdsa_secp256r1_sha256",
    "ecdsa_secp384r1_sha384",
    "ecdsa_secp521r1_sha512",
    "rsa_pss_rsae_sha256",
    "rsa_pss_rsae_sha384",
    "rsa_pss_rsae_sha512",
    "ed25519",
];

/// What Envoy refuses in a `cipher_suites` list (`None`: nothing Bootes
/// can see): a name BoringSSL does not know, or a list of TLS 1.3 suites
/// only (BoringSSL skips those, which leaves no cipher).
pub fn cipher_list_problem(entries: &[&str]) -> Option<(usize, String)> {
    let mut usable = false;
    for (i, entry) in entries.iter().enumerate() {
        for part in entry.split(':') {
            if TLS13_CIPHERS.contains(&part) {
                continue;
            }
            usable = true;
            let plain = !part.is_empty()
                && !part.starts_with("TLS_")
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
            if plain && !CIPHERS.contains(&part) {
                return Some((i, format!("{part} is not a cipher suite BoringSSL knows")));
            }
        }
    }
    (!usable && !entries.is_empty()).then(|| {
        (
            0,
            "only TLS 1.3 suites, which BoringSSL does not let a config choose (it always offers them): no TLS 1.2 cipher is left".to_string(),
        )
    })
}

pub fn curve_problem(entry: &str) -> Option<String> {
    entry
        .split(':')
        .find(|c| !CURVES.contains(c))
        .map(|c| format!("{c} is not a curve BoringSSL knows (e.g. X25519, P-256, P-384)"))
}

pub fn signature_algorithm_problem(entry: &str) -> Option<String> {
    entry
        .split(':')
        .find(|a| !a.contains('+') && !SIGNATURE_ALGORITHMS.contains(a))
        .map(|a| {
            format!("{a} is not a signature algorithm BoringSSL knows (e.g. ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256)")
        })
}
