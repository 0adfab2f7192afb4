//! etcd key layout (docs/DESIGN.md §4). Every key lives under one prefix:
//!
//! ```text
//! <prefix>nodes/<node-id>                → store::NodeBinding
//! <prefix>snapshots/<namespace>/<group>  → store::Snapshot
//! <prefix>status/<node-id>/<replica>     → store::NodeStatus
//! <prefix>leader                         → controller election key
//! ```

/// Default prefix for all Bootes keys.
pub const DEFAULT_PREFIX: &str = "/bootes/v1/";

/// Whether `s` is `<namespace>/<group>`, as a snapshot key and a binding
/// name it.
pub fn is_snapshot_ref(s: &str) -> bool {
    s.split_once('/')
        .is_some_and(|(ns, group)| !ns.is_empty() && !group.is_empty() && !group.contains('/'))
}

/// Builds and parses keys under one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// A key under the prefix, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key<'a> {
    Node(&'a str),
    /// `<namespace>/<group>`
    Snapshot(&'a str),
    Status {
        node: &'a str,
        replica: &'a str,
    },
    Leader,
}

impl Keys {
    /// `prefix` gets a trailing `/` if it lacks one.
    pub fn new(prefix: &str) -> Self {
        let mut prefix = prefix.to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn nodes(&self) -> String {
        format!("{}nodes/", self.prefix)
    }

    pub fn node(&self, node_id: &str) -> String {
        format!("{}nodes/{node_id}", self.prefix)
    }

    pub fn snapshots(&self) -> String {
        format!("{}snapshots/", self.prefix)
    }

    /// `snapshot` is `<namespace>/<group>`, as stored in `NodeBinding.snapshot`.
    pub fn snapshot(&self, snapshot: &str) -> String {
        format!("{}snapshots/{snapshot}", self.prefix)
    }

    pub fn statuses(&self) -> String {
        format!("{}status/", self.prefix)
    }

    pub fn status(&self, node_id: &str, replica: &str) -> String {
        format!("{}status/{node_id}/{replica}", self.prefix)
    }

    pub fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }

    /// Parses a key read from etcd; `None` for keys outside the layout.
    pub fn parse<'a>(&self, key: &'a str) -> Option<Key<'a>> {
        let rest = key.strip_prefix(self.prefix.as_str())?;
        if rest == "leader" {
            return Some(Key::Leader);
        }
        if let Some(node) = rest.strip_prefix("nodes/") {
            return (!node.is_empty() && !node.contains('/')).then_some(Key::Node(node));
        }
        if let Some(snap) = rest.strip_prefix("snapshots/") {
            return is_snapshot_ref(snap).then_some(Key::Snapshot(snap));
        }
        if let Some(status) = rest.strip_prefix("status/") {
            let (node, replica) = status.split_once('/')?;
            return (!node.is_empty() && !replica.is_empty() && !replica.contains('/'))
                .then_some(Key::Status { node, replica });
        }
        None
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_every_kind_of_key() {
        let keys = Keys::new("/x");
        assert_eq!(keys.prefix(), "/x/");
        assert_eq!(keys.node("web-0.foo"), "/x/nodes/web-0.foo");
        assert_eq!(
            keys.parse("/x/nodes/web-0.foo"),
            Some(Key::Node("web-0.foo"))
        );
        assert_eq!(keys.snapshot("foo/abc"), "/x/snapshots/foo/abc");
        assert_eq!(
            keys.parse("/x/snapshots/foo/abc"),
            Some(Key::Snapshot("foo/abc"))
        );
        assert_eq!(
            keys.parse(&keys.status("n.ns", "r1")),
            Some(Key::Status {
                node: "n.ns",
                replica: "r1"
            })
        );
        assert_eq!(keys.parse("/x/leader"), Some(Key::Leader));
    }

    #[test]
    fn rejects_keys_outside_the_layout() {
        let keys = Keys::default();
        for bad in [
            "/other/nodes/a",
            "/bootes/v1/nodes/",
            "/bootes/v1/nodes/a/b",
            "/bootes/v1/snapshots/onlyns",
            "/bootes/v1/snapshots/ns/",
            "/bootes/v1/snapshots/ns/g/x",
            "/bootes/v1/status/node",
            "/bootes/v1/unknown",
        ] {
            assert_eq!(keys.parse(bad), None, "{bad}");
        }
    }
}
