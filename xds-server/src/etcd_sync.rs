//! Keeps [`Snapshots`] in step with etcd: list the prefix, then watch it from
//! the listed revision. On any error (etcd unreachable, watch cancelled,
//! compacted revision) the last contents keep being served and the loop
//! relists once etcd answers again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bootes_proto::Keys;
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::metrics::Metrics;
use bootes_xds::snapshots::{Event, Snapshot, Snapshots};

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
    pub fn new(keys: Keys, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            snapshots: RwLock::new(Snapshots::new(keys)),
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
        for key in &applied.rejected {
            tracing::error!(
                key,
                "undecodable value in etcd; the previous one stays in force"
            );
        }
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

/// Runs forever.
pub async fn run(client: Client, keys: Keys, shared: Arc<Shared>) {
    let mut backoff = Backoff::default();
    loop {
        let result = sync_once(client.clone(), &keys, &shared).await;
        shared.metrics.etcd_connected.set(0);
        match result {
            Ok(()) => tracing::warn!("etcd watch ended; relisting"),
            Err(e) => tracing::warn!(error = %e, "etcd unavailable; serving the last snapshots"),
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

/// One list + watch cycle; returns when the watch ends or fails.
async fn sync_once(
    mut client: Client,
    keys: &Keys,
    shared: &Shared,
) -> Result<(), etcd_client::Error> {
    let prefix = keys.prefix().to_string();
    let listing = client
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = listing.header().map(|h| h.revision()).unwrap_or_default();
    let kvs = listing
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                kv.value().to_vec(),
            )
        })
        .collect();
    shared.reset(kvs, revision);
    shared.metrics.etcd_connected.set(1);

    let mut stream = client
        .watch(
            prefix.as_str(),
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        )
        .await?;
    while let Some(response) = stream.message().await? {
        if response.canceled() {
            tracing::warn!(
                compact_revision = response.compact_revision(),
                reason = response.cancel_reason(),
                "etcd watch cancelled"
            );
            return Ok(());
        }
        // One watch response holds whole revisions: apply it as one batch so
        // no stream sees half a transaction.
        let revision = response.header().map(|h| h.revision()).unwrap_or_default();
        let newest = response
            .events()
            .iter()
            .filter_map(|e| e.kv().map(|kv| kv.mod_revision()))
            .max()
            .unwrap_or(revision);
        shared.metrics.etcd_watch_lag.set(revision - newest);
        let events: Vec<Event> = response
            .events()
            .iter()
            .filter_map(|e| {
                let kv = e.kv()?;
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                Some(match e.event_type() {
                    EventType::Put => Event::Put {
                        key,
                        value: kv.value().to_vec(),
                    },
                    EventType::Delete => Event::Delete { key },
                })
            })
            .collect();
        if !events.is_empty() {
            shared.apply(events, revision);
        }
    }
    Ok(())
}

/// Exponential backoff with jitter, 100 ms to 5 s.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub fn next(&mut self) -> Duration {
        let base = 100u64.saturating_mul(1 << self.attempt.min(6)).min(5_000);
        self.attempt += 1;
        Duration::from_millis(base / 2 + crate::jitter::below(base / 2 + 1))
    }
}
