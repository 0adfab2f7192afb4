//! The streams connected to this replica and what each node holds: the
//! source of CSDS answers, of the `status/` records in etcd and of the
//! connected-streams gauge.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bootes_proto::ResourceType;
use tokio::sync::Notify;

use bootes_xds::TypeReport;

/// One connected stream.
#[derive(Clone, Debug, Default)]
pub struct StreamState {
    pub node: String,
    pub types: BTreeMap<ResourceType, TypeReport>,
}

#[derive(Debug, Default)]
pub struct Clients {
    next: AtomicU64,
    streams: Mutex<HashMap<u64, StreamState>>,
    /// Nodes whose state changed since the last [`Clients::take_changed`].
    changed: Mutex<BTreeMap<String, ()>>,
    notify: Notify,
}

/// Registration of one stream; dropping it removes the stream.
#[derive(Debug)]
pub struct StreamHandle {
    id: u64,
    clients: Arc<Clients>,
}

impl Clients {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn register(self: &Arc<Self>) -> StreamHandle {
        StreamHandle {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            clients: self.clone(),
        }
    }

    /// Every connected stream that has named its node.
    pub fn streams(&self) -> Vec<StreamState> {
        let streams = self.streams.lock().expect("clients lock");
        let mut out: Vec<StreamState> = streams.values().cloned().collect();
        out.sort_by(|a, b| a.node.cmp(&b.node));
        out
    }

    /// The merged state of every stream of `node` on this replica (None when
    /// it has none).
    pub fn node(&self, node: &str) -> Option<BTreeMap<ResourceType, TypeReport>> {
        let streams = self.streams.lock().expect("clients lock");
        let mut found = false;
        let mut merged = BTreeMap::new();
        for s in streams.values().filter(|s| s.node == node) {
            found = true;
            merged.extend(s.types.iter().map(|(t, r)| (*t, r.clone())));
        }
        found.then_some(merged)
    }

    /// Waits until some node's state changed, and returns those nodes.
    pub async fn take_changed(&self) -> Vec<String> {
        loop {
            let notified = self.notify.notified();
            let nodes: Vec<String> =
                std::mem::take(&mut *self.changed.lock().expect("clients lock"))
                    .into_keys()
                    .collect();
            if !nodes.is_empty() {
                return nodes;
            }
            notified.await;
        }
    }

    fn mark(&self, node: &str) {
        self.changed
            .lock()
            .expect("clients lock")
            .insert(node.to_string(), ());
        self.notify.notify_one();
    }
}

impl StreamHandle {
    /// Records the state of this stream; a no-op when nothing changed.
    pub fn update(&self, node: &str, types: BTreeMap<ResourceType, TypeReport>) {
        let mut streams = self.clients.streams.lock().expect("clients lock");
        let entry = streams.entry(self.id).or_default();
        if entry.node == node && entry.types == types {
            return;
        }
        *entry = StreamState {
            node: node.to_string(),
            types,
        };
        drop(streams);
        self.clients.mark(node);
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        let removed = self
            .clients
            .streams
            .lock()
            .map(|mut s| s.remove(&self.id))
            .ok()
            .flatten();
        if let Some(state) = removed {
            self.clients.mark(&state.node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_register_update_merge_and_leave() {
        let clients = Clients::new();
        let a = clients.register();
        let b = clients.register();
        let report = |v: &str| TypeReport {
            acked: [("x".to_string(), v.to_string())].into(),
            ..Default::default()
        };
        a.update("n.ns", [(ResourceType::Cluster, report("1"))].into());
        b.update("n.ns", [(ResourceType::Endpoint, report("2"))].into());
        let merged = clients.node("n.ns").unwrap();
        assert_eq!(merged.len(), 2);
        assert_eq!(clients.streams().len(), 2);
        drop(a);
        assert_eq!(clients.node("n.ns").unwrap().len(), 1);
        drop(b);
        assert!(clients.node("n.ns").is_none());
        assert!(clients.streams().is_empty());
    }

    #[tokio::test]
    async fn changes_are_reported_once_per_node() {
        let clients = Clients::new();
        let a = clients.register();
        a.update("n.ns", BTreeMap::new());
        a.update("n.ns", BTreeMap::new());
        assert_eq!(clients.take_changed().await, ["n.ns"]);
        drop(a);
        assert_eq!(
            clients.take_changed().await,
            ["n.ns"],
            "leaving is a change"
        );
    }
}
