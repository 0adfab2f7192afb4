//! Content-hash versions. A version depends only on content, so every
//! xds-server replica (and every controller run) computes the same one, and a
//! client reconnecting elsewhere is not sent what it already has.

use sha2::{Digest, Sha256};

/// Hex characters kept from the SHA-256 (64 bits: collisions are not a concern
/// at the scale of one node's resources, and short versions keep responses small).
const VERSION_LEN: usize = 16;

fn finish(hasher: Sha256) -> String {
    let digest = hasher.finalize();
    let mut hex = hex::encode(digest);
    hex.truncate(VERSION_LEN);
    hex
}

/// Version of one resource: a hash of its canonical bytes.
pub fn of_bytes(canonical: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(canonical);
    finish(h)
}

/// Version of a set of (name, version) pairs, independent of their order.
/// Used for the version of one type in a snapshot or in a response.
pub fn of_set<'a, I>(pairs: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    pairs.sort_unstable();
    let mut h = Sha256::new();
    for (name, version) in pairs {
        // Separators that cannot occur inside names or hex versions.
        h.update(name.as_bytes());
        h.update([0u8]);
        h.update(version.as_bytes());
        h.update([b'\n']);
    }
    finish(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_version_ignores_order_but_not_content() {
        let a = of_set([("a", "1"), ("b", "2")]);
        assert_eq!(a, of_set([("b", "2"), ("a", "1")]));
        assert_ne!(a, of_set([("a", "1"), ("b", "3")]));
        assert_ne!(a, of_set([("a", "1")]));
        // No ambiguity from concatenation.
        assert_ne!(of_set([("ab", "c")]), of_set([("a", "bc")]));
        assert_eq!(a.len(), VERSION_LEN);
    }

    #[test]
    fn byte_version_is_stable() {
        assert_eq!(of_bytes(b"x"), of_bytes(b"x"));
        assert_ne!(of_bytes(b"x"), of_bytes(b"y"));
    }
}
