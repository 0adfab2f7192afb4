//! Secrets encrypted at rest (docs/DESIGN.md §4): with a key file, the controller
//! stores Secret resources as [`store::Sealed`] (AES-256-GCM), and
//! xds-servers and `inspect` open them with the same file.
//!
//! Key file: one key per line, `<key-id> <64 hex digits>`; blank lines and
//! `#` comments are ignored. The first key encrypts; every key decrypts, so a
//! rotation is: put a new key first, keep the old ones until the controller
//! has rewritten every sealed value (it re-seals values under an old key),
//! then drop them.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::store;

/// The keys of one key file.
#[derive(Clone)]
pub struct SecretKeys {
    /// The first one encrypts.
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key IDs only: never the key material.
        f.debug_struct("SecretKeys")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("line {line}: expected \"<key-id> <64 hex digits>\"")]
    Syntax { line: usize },
    #[error("line {line}: key {id:?} is not 32 bytes of hex")]
    BadKey { line: usize, id: String },
    #[error("line {line}: key ID {id:?} appears twice")]
    Duplicate { line: usize, id: String },
    #[error("no key in the file")]
    Empty,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("encrypted with key {0:?}, which is not in the key file")]
    UnknownKey(String),
    #[error("encrypted value does not authenticate (wrong key, or altered or moved in etcd)")]
    Corrupt,
}

/// What a sealed value is bound to: opening it anywhere else fails.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    pub namespace: &'a str,
    pub type_url: &'a str,
    pub name: &'a str,
}

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = b"bootes.store.v1.Sealed\0".to_vec();
        for part in [self.namespace, self.type_url, self.name] {
            aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

impl SecretKeys {
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut parts = content.split_whitespace();
            let (Some(id), Some(hex_key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(KeyFileError::Syntax { line });
            };
            let bytes = hex::decode(hex_key)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| KeyFileError::BadKey {
                    line,
                    id: id.to_string(),
                })?;
            if keys.iter().any(|(k, _)| k == id) {
                return Err(KeyFileError::Duplicate {
                    line,
                    id: id.to_string(),
                });
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).expect("32-byte key");
            keys.push((id.to_string(), cipher));
        }
        if keys.is_empty() {
            return Err(KeyFileError::Empty);
        }
        Ok(Self { keys })
    }

    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// The ID new values are sealed with.
    pub fn active(&self) -> &str {
        &self.keys[0].0
    }

    /// Encrypts `plaintext` under the active key.
    pub fn seal(&self, binding: Binding<'_>, plaintext: &[u8]) -> store::Sealed {
        let (id, cipher) = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = binding.aad();
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer");
        store::Sealed {
            key_id: id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Decrypts and authenticates a sealed value.
    pub fn open(&self, binding: Binding<'_>, sealed: &store::Sealed) -> Result<Vec<u8>, OpenError> {
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.nonce.len() != 12 {
            return Err(OpenError::Corrupt);
        }
        cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &binding.aad(),
                },
            )
            .map_err(|_| OpenError::Corrupt)
    }
}

/// Whether resources of this type are stored sealed: Secrets (private
/// keys, passwords, tokens).
pub fn is_sealed_type(type_url: &str) -> bool {
    type_url == crate::ResourceType::Secret.type_url()
}

/// Seals every Secret resource of `snapshot` in place (`value` moves into
/// `sealed`). Versions stay the hash of the plaintext.
pub fn seal_snapshot(keys: &SecretKeys, snapshot: &mut store::Snapshot) {
    for t in &mut snapshot.types {
        if !is_sealed_type(&t.type_url) {
            continue;
        }
        for r in &mut t.resources {
            if r.sealed.is_some() {
                continue;
            }
            let binding = Binding {
                namespace: &snapshot.namespace,
                type_url: &t.type_url,
                name: &r.name,
            };
            r.sealed = Some(keys.seal(binding, &r.value));
            r.value = Vec::new();
        }
    }
}

/// Opens every sealed resource of `snapshot` in place. Returns whether all
/// of them were sealed under the active key (false: a rotation should
/// re-seal them).
pub fn open_snapshot(
    keys: &SecretKeys,
    snapshot: &mut store::Snapshot,
) -> Result<bool, (String, OpenError)> {
    let mut all_active = true;
    for t in &mut snapshot.types {
        for r in &mut t.resources {
            let Some(sealed) = r.sealed.take() else {
                continue;
            };
            let binding = Binding {
                namespace: &snapshot.namespace,
                type_url: &t.type_url,
                name: &r.name,
            };
            r.value = keys
                .open(binding, &sealed)
                .map_err(|e| (r.name.clone(), e))?;
            all_active &= sealed.key_id == keys.active();
        }
    }
    Ok(all_active)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn binding(name: &str) -> Binding<'_> {
        Binding {
            namespace: "shop",
            type_url: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            name,
        }
    }

    #[test]
    fn sealed_values_open_with_the_same_file_and_hide_the_plaintext() {
        let keys = SecretKeys::parse(&format!("# rotation: newest first\nk1 {K1}\n")).unwrap();
        let sealed = keys.seal(binding("edge-cert"), b"-----BEGIN PRIVATE KEY-----");
        assert_eq!(sealed.key_id, "k1");
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"PRIVATE"));
        assert_eq!(
            keys.open(binding("edge-cert"), &sealed).unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        let again = keys.seal(binding("edge-cert"), b"-----BEGIN PRIVATE KEY-----");
        assert_ne!(again.nonce, sealed.nonce, "a fresh nonce per encryption");
    }

    #[test]
    fn rotation_seals_with_the_first_key_and_opens_with_any() {
        let old = SecretKeys::parse(&format!("k1 {K1}")).unwrap();
        let rotated = SecretKeys::parse(&format!("k2 {K2}\nk1 {K1}\n")).unwrap();
        let before = old.seal(binding("s"), b"secret");
        assert_eq!(rotated.open(binding("s"), &before).unwrap(), b"secret");
        let after = rotated.seal(binding("s"), b"secret");
        assert_eq!(after.key_id, "k2");
        assert_eq!(rotated.active(), "k2");
        assert_eq!(
            old.open(binding("s"), &after),
            Err(OpenError::UnknownKey("k2".into()))
        );
    }

    #[test]
    fn a_value_moved_altered_or_under_another_key_does_not_open() {
        let keys = SecretKeys::parse(&format!("k1 {K1}")).unwrap();
        let sealed = keys.seal(binding("a"), b"secret");
        assert_eq!(keys.open(binding("b"), &sealed), Err(OpenError::Corrupt));
        let other_ns = Binding {
            namespace: "bank",
            ..binding("a")
        };
        assert_eq!(keys.open(other_ns, &sealed), Err(OpenError::Corrupt));
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert_eq!(keys.open(binding("a"), &flipped), Err(OpenError::Corrupt));
        let same_id_other_key = SecretKeys::parse(&format!("k1 {K2}")).unwrap();
        assert_eq!(
            same_id_other_key.open(binding("a"), &sealed),
            Err(OpenError::Corrupt)
        );
        let mut short_nonce = sealed;
        short_nonce.nonce.pop();
        assert_eq!(
            keys.open(binding("a"), &short_nonce),
            Err(OpenError::Corrupt)
        );
    }

    #[test]
    fn bad_key_files_name_the_line() {
        assert_eq!(
            SecretKeys::parse("# nothing\n\n").unwrap_err(),
            KeyFileError::Empty
        );
        assert_eq!(
            SecretKeys::parse(&format!("k1 {K1}\nk2\n")).unwrap_err(),
            KeyFileError::Syntax { line: 2 }
        );
        assert_eq!(
            SecretKeys::parse("k1 abcd").unwrap_err(),
            KeyFileError::BadKey {
                line: 1,
                id: "k1".into()
            }
        );
        assert_eq!(
            SecretKeys::parse(&format!("k1 {K1}\nk1 {K2}")).unwrap_err(),
            KeyFileError::Duplicate {
                line: 2,
                id: "k1".into()
            }
        );
    }

    fn snapshot() -> store::Snapshot {
        let resource = |name: &str, value: &[u8]| store::Resource {
            name: name.into(),
            version: "v".into(),
            value: value.to_vec(),
            ..Default::default()
        };
        store::Snapshot {
            namespace: "shop".into(),
            types: vec![
                store::TypeResources {
                    type_url: crate::ResourceType::Cluster.type_url().into(),
                    resources: vec![resource("c", b"cluster")],
                    ..Default::default()
                },
                store::TypeResources {
                    type_url: crate::ResourceType::Secret.type_url().into(),
                    resources: vec![resource("s", b"secret")],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn snapshots_seal_secrets_only_and_open_back_to_the_same_bytes() {
        use prost::Message;
        let keys = SecretKeys::parse(&format!("k1 {K1}")).unwrap();
        let plain = snapshot();
        let mut sealed = plain.clone();
        seal_snapshot(&keys, &mut sealed);
        assert_eq!(sealed.types[0], plain.types[0], "clusters stay as they are");
        let s = &sealed.types[1].resources[0];
        assert!(s.value.is_empty() && s.sealed.is_some());
        assert_eq!(s.version, "v");
        let mut opened = sealed.clone();
        assert_eq!(open_snapshot(&keys, &mut opened), Ok(true));
        assert_eq!(opened.encode_to_vec(), plain.encode_to_vec());

        let rotated = SecretKeys::parse(&format!("k2 {K2}\nk1 {K1}")).unwrap();
        let mut old = sealed.clone();
        assert_eq!(
            open_snapshot(&rotated, &mut old),
            Ok(false),
            "sealed under a retired key"
        );
        let other = SecretKeys::parse(&format!("k2 {K2}")).unwrap();
        let mut unknown = sealed;
        assert_eq!(
            open_snapshot(&other, &mut unknown),
            Err(("s".into(), OpenError::UnknownKey("k1".into())))
        );
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let keys = SecretKeys::parse(&format!("k1 {K1}")).unwrap();
        let shown = format!("{keys:?}");
        assert!(shown.contains("k1") && !shown.contains("1111"), "{shown}");
    }
}
