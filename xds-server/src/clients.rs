//! The streams connected to this replica and what each node holds: the
//! source of CSDS answers, of the `status/` records in etcd and of the
//! connected-streams gauge.
//!
//! Streams are indexed by node, so what happens on one stream costs the same
//! whether 10 or 10,000 streams are connected. A stream's ACK/NACK report is
//! not copied here on every event: the index holds a reference to the
//! stream's protocol state and derives the report only when someone reads it
//! (CSDS, the `status/` writer); an event only marks its node as changed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bootes_proto::ResourceType;
use tokio::sync::Notify;

use bootes_xds::TypeReport;

/// A stream's protocol state, asked for its report only when one is read.
pub trait Reports: Send + Sync {
    fn report(&self) -> BTreeMap<ResourceType, TypeReport>;
}

/// One connected stream, as reported when read.
#[derive(Clone, Debug, Default)]
pub struct StreamState {
    pub node: String,
    pub types: BTreeMap<ResourceType, TypeReport>,
}

/// The streams of one node on this replica, by stream ID.
type NodeStreams = BTreeMap<u64, Arc<dyn Reports>>;

#[derive(Default)]
pub struct Clients {
    next: AtomicU64,
    /// Node → its streams. Only streams that have named their node.
    nodes: Mutex<HashMap<String, NodeStreams>>,
    /// Nodes whose state changed since the last [`Clients::take_changed`].
    changed: Mutex<HashSet<String>>,
    notify: Notify,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("nodes", &self.nodes.lock().map(|n| n.len()).ok())
            .finish_non_exhaustive()
    }
}

/// Registration of one stream; dropping it removes the stream.
pub struct StreamHandle {
    id: u64,
    /// Set once the stream names its node.
    node: Option<String>,
    clients: Arc<Clients>,
}

impl std::fmt::Debug for StreamHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHandle")
            .field("id", &self.id)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Clients {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn register(self: &Arc<Self>) -> StreamHandle {
        StreamHandle {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            node: None,
            clients: self.clone(),
        }
    }

    /// Every connected stream that has named its node, sorted by node, with
    /// its report as of now.
    pub fn streams(&self) -> Vec<StreamState> {
        let streams: Vec<(String, Arc<dyn Reports>)> = {
            let nodes = self.nodes.lock().expect("clients lock");
            nodes
                .iter()
                .flat_map(|(node, streams)| streams.values().map(|s| (node.clone(), s.clone())))
                .collect()
        };
        // Reports are derived outside the index lock: a stream busy with
        // its own state does not hold up every other stream's registration.
        let mut out: Vec<StreamState> = streams
            .into_iter()
            .map(|(node, s)| StreamState {
                node,
                types: s.report(),
            })
            .collect();
        out.sort_by(|a, b| a.node.cmp(&b.node));
        out
    }

    /// The nodes that have a stream here, sorted.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .nodes
            .lock()
            .expect("clients lock")
            .keys()
            .cloned()
            .collect();
        nodes.sort();
        nodes
    }

    /// The merged state of every stream of `node` on this replica (None when
    /// it has none).
    pub fn node(&self, node: &str) -> Option<BTreeMap<ResourceType, TypeReport>> {
        let streams: Vec<Arc<dyn Reports>> = self
            .nodes
            .lock()
            .expect("clients lock")
            .get(node)?
            .values()
            .cloned()
            .collect();
        let mut merged = BTreeMap::new();
        for s in streams {
            merged.extend(s.report());
        }
        Some(merged)
    }

    /// Waits until some node's state changed, and returns those nodes.
    pub async fn take_changed(&self) -> Vec<String> {
        loop {
            let notified = self.notify.notified();
            let nodes = self.take_changed_now();
            if !nodes.is_empty() {
                return nodes;
            }
            notified.await;
        }
    }

    /// The nodes whose state changed so far (possibly none).
    pub fn take_changed_now(&self) -> Vec<String> {
        let changed = std::mem::take(&mut *self.changed.lock().expect("clients lock"));
        let mut nodes: Vec<String> = changed.into_iter().collect();
        nodes.sort();
        nodes
    }

    fn mark(&self, node: &str) {
        let mut changed = self.changed.lock().expect("clients lock");
        if !changed.contains(node) {
            changed.insert(node.to_string());
        }
        drop(changed);
        self.notify.notify_one();
    }
}

impl StreamHandle {
    /// The stream named its node: from now on its state is reported under
    /// that node. Called once; a stream's node never changes.
    pub fn identify(&mut self, node: &str, state: Arc<dyn Reports>) {
        debug_assert!(self.node.is_none(), "a stream names its node once");
        self.clients
            .nodes
            .lock()
            .expect("clients lock")
            .entry(node.to_string())
            .or_default()
            .insert(self.id, state);
        self.node = Some(node.to_string());
        self.clients.mark(node);
    }

    /// The stream's state may have changed: its node's report is due.
    pub fn changed(&self) {
        if let Some(node) = &self.node {
            self.clients.mark(node);
        }
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        let Some(node) = self.node.take() else {
            return;
        };
        if let Ok(mut nodes) = self.clients.nodes.lock() {
            if let Some(streams) = nodes.get_mut(&node) {
                streams.remove(&self.id);
                if streams.is_empty() {
                    nodes.remove(&node);
                }
            }
        }
        self.clients.mark(&node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream state whose report the test sets.
    #[derive(Default)]
    struct Fake(Mutex<BTreeMap<ResourceType, TypeReport>>);

    impl Fake {
        fn with(ty: ResourceType, acked: &str) -> Arc<Self> {
            let fake = Arc::new(Self::default());
            fake.set(ty, acked);
            fake
        }

        fn set(&self, ty: ResourceType, acked: &str) {
            let report = TypeReport {
                acked: [("x".to_string(), acked.to_string())].into(),
                ..Default::default()
            };
            self.0.lock().unwrap().insert(ty, report);
        }
    }

    impl Reports for Fake {
        fn report(&self) -> BTreeMap<ResourceType, TypeReport> {
            self.0.lock().unwrap().clone()
        }
    }

    fn acked(clients: &Clients, node: &str, ty: ResourceType) -> Option<String> {
        Some(clients.node(node)?.get(&ty)?.acked["x"].clone())
    }

    #[test]
    fn streams_register_update_merge_and_leave() {
        let clients = Clients::new();
        let mut a = clients.register();
        let mut b = clients.register();
        let a_state = Fake::with(ResourceType::Cluster, "1");
        a.identify("n.ns", a_state.clone());
        b.identify("n.ns", Fake::with(ResourceType::Endpoint, "2"));
        let merged = clients.node("n.ns").unwrap();
        assert_eq!(merged.len(), 2);
        assert_eq!(clients.streams().len(), 2);
        // Reports are read from the stream's state, not copied at events.
        a_state.set(ResourceType::Cluster, "3");
        assert_eq!(
            acked(&clients, "n.ns", ResourceType::Cluster).as_deref(),
            Some("3")
        );
        drop(a);
        assert_eq!(clients.node("n.ns").unwrap().len(), 1);
        drop(b);
        assert!(clients.node("n.ns").is_none());
        assert!(clients.streams().is_empty());
        assert!(clients.nodes().is_empty());
    }

    #[test]
    fn a_node_is_found_among_many_by_its_own_streams_only() {
        let clients = Clients::new();
        let mut handles = Vec::new();
        for i in 0..1000 {
            let mut h = clients.register();
            h.identify(
                &format!("n{i}.ns"),
                Fake::with(ResourceType::Cluster, &i.to_string()),
            );
            handles.push(h);
        }
        // A stream not yet identified is in no node.
        let _anonymous = clients.register();
        assert_eq!(
            acked(&clients, "n500.ns", ResourceType::Cluster).as_deref(),
            Some("500")
        );
        assert!(clients.node("n1000.ns").is_none());
        assert_eq!(clients.nodes().len(), 1000);
        assert_eq!(clients.streams().len(), 1000);

        // Removing one stream leaves every other node as it was.
        handles.remove(500);
        assert!(clients.node("n500.ns").is_none());
        assert_eq!(
            acked(&clients, "n501.ns", ResourceType::Cluster).as_deref(),
            Some("501")
        );
        assert_eq!(clients.nodes().len(), 999);
    }

    #[test]
    fn two_streams_of_one_node_stay_until_both_leave() {
        let clients = Clients::new();
        let mut a = clients.register();
        let mut b = clients.register();
        a.identify("n.ns", Fake::with(ResourceType::Cluster, "1"));
        b.identify("n.ns", Fake::with(ResourceType::Cluster, "1"));
        assert_eq!(clients.nodes(), ["n.ns"]);
        drop(b);
        assert_eq!(clients.nodes(), ["n.ns"]);
        assert!(clients.node("n.ns").is_some());
        drop(a);
        assert!(clients.nodes().is_empty());
    }

    #[tokio::test]
    async fn changes_are_reported_once_per_node() {
        let clients = Clients::new();
        let mut a = clients.register();
        a.changed(); // not identified yet: nothing to report
        a.identify("n.ns", Fake::with(ResourceType::Cluster, "1"));
        a.changed();
        a.changed();
        assert_eq!(clients.take_changed().await, ["n.ns"]);
        drop(a);
        assert_eq!(
            clients.take_changed().await,
            ["n.ns"],
            "leaving is a change"
        );
    }
}
