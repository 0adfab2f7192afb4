//! Keeps [`Snapshots`] in step with etcd through
//! [`bootes_etcd::watch::ListWatch`]. On any error (etcd unreachable, watch
//! cancelled, compacted revision) the last contents keep being served and the
//! loop relists once etcd answers again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use bootes_etcd::etcd_client::Client;
use bootes_etcd::watch::Update;
use bootes_proto::sealed::SecretKeys;
use bootes_proto::Keys;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::metrics::Metrics;
use bootes_xds::snapshots::{Binding, Event, Snapshot, Snapshots};

/// The snapshots every stream reads, and a signal when they change.
#[derive(Debug)]
pub struct Shared {
    snapshots: RwLock<Snapshots>,
    /// Carries the etcd revision after each applied batch, and when it was applied.
    changed: watch::Sender<(i64, Instant)>,
    /// Set once the first full listing is loaded.
    ready: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Shared {
    pub fn new(keys: Keys, secrets: Option<Arc<SecretKeys>>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            snapshots: RwLock::new(Snapshots::new(keys, secrets)),
            changed: watch::Sender::new((0, Instant::now())),
            ready: AtomicBool::new(false),
            metrics,
        })
    }

    pub fn for_node(&self, node_id: &str) -> Option<Arc<Snapshot>> {
        self.snapshots
            .read()
            .expect("snapshots lock")
            .for_node(node_id)
    }

    /// The node's binding, if it has one.
    pub fn binding(&self, node_id: &str) -> Option<Binding> {
        self.snapshots
            .read()
            .expect("snapshots lock")
            .binding(node_id)
            .cloned()
    }

    pub fn subscribe(&self) -> watch::Receiver<(i64, Instant)> {
        self.changed.subscribe()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn revision(&self) -> i64 {
        self.snapshots.read().expect("snapshots lock").revision()
    }

    pub fn counts(&self) -> (usize, usize) {
        let s = self.snapshots.read().expect("snapshots lock");
        (s.node_count(), s.snapshot_count())
    }

    fn reset(&self, kvs: Vec<(String, Vec<u8>)>, revision: i64) {
        let applied = self
            .snapshots
            .write()
            .expect("snapshots lock")
            .reset(kvs, revision);
        let (nodes, snapshots) = self.counts();
        tracing::info!(
            revision,
            nodes,
            snapshots,
            rejected = applied.rejected.len(),
            "loaded etcd"
        );
        self.metrics
            .etcd_rejected
            .inc_by(applied.rejected.len() as u64);
        self.ready.store(true, Ordering::Release);
        self.publish(revision);
    }

    fn apply(&self, events: Vec<Event>, revision: i64) {
        let applied = self
            .snapshots
            .write()
            .expect("snapshots lock")
            .apply(events, revision);
        tracing::debug!(revision, changed = applied.changed, "applied etcd events");
        self.metrics
            .etcd_rejected
            .inc_by(applied.rejected.len() as u64);
        self.publish(revision);
    }

    fn publish(&self, revision: i64) {
        let (nodes, snapshots) = self.counts();
        self.metrics.nodes.set(nodes as i64);
        self.metrics.snapshots.set(snapshots as i64);
        self.metrics.etcd_revision.set(revision);
        self.changed.send_replace((revision, Instant::now()));
    }
}

/// Runs forever: lists the prefix (in pages, at one revision), then watches
/// it from there; relists after any error, serving the last contents
/// meanwhile.
pub async fn run(client: Client, keys: Keys, shared: Arc<Shared>) {
    let mut updates = bootes_etcd::watch::ListWatch::new(&client, keys.prefix());
    loop {
        match updates.next().await {
            Update::Listed(listing) => {
                let kvs = listing
                    .kvs
                    .into_iter()
                    .map(|kv| (kv.key, kv.value))
                    .collect();
                shared.reset(kvs, listing.revision);
                shared.metrics.etcd_connected.set(1);
            }
            Update::Events { revision, events } => {
                // One watch response holds whole revisions: apply it as one
                // batch so no stream sees half a transaction.
                let newest = events
                    .iter()
                    .map(bootes_etcd::watch::Event::mod_revision)
                    .max()
                    .unwrap_or(revision);
                shared.metrics.etcd_watch_lag.set(revision - newest);
                let events = events
                    .into_iter()
                    .map(|e| match e {
                        bootes_etcd::watch::Event::Put(kv) => Event::Put {
                            key: kv.key,
                            value: kv.value,
                        },
                        bootes_etcd::watch::Event::Delete { key, .. } => Event::Delete { key },
                    })
                    .collect();
                shared.apply(events, revision);
            }
            Update::Lost(e) => {
                shared.metrics.etcd_connected.set(0);
                shared.metrics.etcd_error(crate::metrics::ETCD_WATCH);
                tracing::warn!(error = %e, "etcd unavailable; serving the last snapshots");
            }
        }
    }
}
