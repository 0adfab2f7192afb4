//! The etcd shell of the controller: the [`SnapshotStore`] the reconcile loop
//! writes to. It reads what is under the prefix, writes the transactions
//! [`plan`](bootes_core::plan) computes, and watches the prefix so that a
//! change it did not make (another writer, a damaged value) makes the loop
//! read etcd again: plans are diffs against etcd's actual contents, not
//! against a cache that may have drifted.

use std::sync::{Arc, Mutex};

use bootes_core::index::Desired;
use bootes_core::plan::{self, Contents, Op, Plan};
use bootes_core::store::{SnapshotStore, StoreError, WriteStats};
use bootes_etcd::etcd_client::{Client, TxnOp};
use bootes_etcd::{Event, ListWatch, Update};
use bootes_proto::{values, Fence, Key, Keys};
use tokio::sync::Notify;

pub struct EtcdWriter {
    client: Client,
    keys: Keys,
    /// What etcd holds under nodes/ and snapshots/, as last read or written
    /// (shared with the watcher, which compares what it sees with it).
    contents: Arc<Mutex<Contents>>,
    /// Signalled by the watcher when etcd holds something else.
    foreign: Arc<Notify>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for EtcdWriter {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl EtcdWriter {
    pub async fn connect(endpoints: &[String], keys: Keys) -> Result<Self, bootes_etcd::Error> {
        let client = bootes_etcd::connect(&bootes_etcd::EtcdConfig::new(endpoints)).await?;
        let contents = Arc::new(Mutex::new(Contents::new()));
        let foreign = Arc::new(Notify::new());
        let watcher = tokio::spawn(watch_foreign(
            client.clone(),
            keys.clone(),
            contents.clone(),
            foreign.clone(),
        ));
        Ok(Self {
            client,
            keys,
            contents,
            foreign,
            watcher,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn contents(&self) -> std::sync::MutexGuard<'_, Contents> {
        self.contents.lock().expect("contents lock")
    }
}

impl SnapshotStore for EtcdWriter {
    /// Reads the current nodes/ and snapshots/ (in pages, however much there
    /// is), so that only differences are written. Values that are not what
    /// their key says are logged: the next write replaces them.
    async fn load(&mut self) -> Result<(), StoreError> {
        let mut contents = Contents::new();
        for prefix in [self.keys.nodes(), self.keys.snapshots()] {
            let listing = bootes_etcd::list(&self.client, &prefix)
                .await
                .map_err(|e| StoreError::Unavailable(e.into()))?;
            contents.extend(listing.kvs.into_iter().map(|kv| (kv.key, kv.value)));
        }
        for (key, value) in &contents {
            if let Err(e) = values::check(&self.keys, key, value) {
                tracing::warn!(key, error = %e, "damaged or foreign value in etcd; it will be overwritten or deleted");
            }
        }
        tracing::info!(keys = contents.len(), "read current etcd contents");
        *self.contents() = contents;
        Ok(())
    }

    fn plan(&self, desired: &Desired) -> Plan {
        plan::plan(&self.keys, &self.contents(), desired)
    }

    async fn write(
        &mut self,
        plan: &Plan,
        fence: Option<&Fence>,
    ) -> Result<WriteStats, StoreError> {
        let mut kv = bootes_etcd::list::kv_client(&self.client);
        let mut stats = WriteStats::default();
        for ops in &plan.txns {
            let txn_ops: Vec<TxnOp> = ops
                .iter()
                .map(|op| match op {
                    Op::Put { key, value } => TxnOp::put(key.as_str(), value.clone(), None),
                    Op::Delete { key } => TxnOp::delete(key.as_str(), None),
                })
                .collect();
            // Recorded before the transaction, so that the watcher sees its
            // events as ours. Undone if it fails: a transaction that timed
            // out may or may not have landed, and writing it again is
            // harmless, while believing it landed would lose it.
            let undo: Vec<(&str, Option<Vec<u8>>)> = {
                let mut contents = self.contents();
                let undo = ops
                    .iter()
                    .map(|op| (op.key(), contents.get(op.key()).cloned()))
                    .collect();
                plan::apply(&mut contents, ops);
                undo
            };
            if let Err(e) = bootes_etcd::txn::commit(&mut kv, txn_ops, fence).await {
                let mut contents = self.contents();
                for (key, value) in undo {
                    match value {
                        Some(v) => contents.insert(key.to_string(), v),
                        None => contents.remove(key),
                    };
                }
                return Err(match e {
                    bootes_etcd::Error::NotLeader => StoreError::NotLeader,
                    e => StoreError::Unavailable(e.into()),
                });
            }
            stats.txns += 1;
            for op in ops {
                match op {
                    Op::Put { value, .. } => {
                        stats.puts += 1;
                        stats.bytes += value.len();
                    }
                    Op::Delete { .. } => stats.deletes += 1,
                }
            }
        }
        Ok(stats)
    }

    async fn changed(&mut self) {
        self.foreign.notified().await;
    }
}

/// Watches the prefix; signals `foreign` when a node binding or snapshot in
/// etcd differs from `contents` (someone else wrote, or deleted, one of our
/// keys).
async fn watch_foreign(
    client: Client,
    keys: Keys,
    contents: Arc<Mutex<Contents>>,
    foreign: Arc<Notify>,
) {
    let ours = |key: &str| matches!(keys.parse(key), Some(Key::Node(_) | Key::Snapshot(_)));
    let mut updates = ListWatch::new(&client, keys.prefix());
    loop {
        let differs = match updates.next().await {
            Update::Listed(listing) => {
                let contents = contents.lock().expect("contents lock");
                let listed: Contents = listing
                    .kvs
                    .into_iter()
                    .filter(|kv| ours(&kv.key))
                    .map(|kv| (kv.key, kv.value))
                    .collect();
                let differs = listed != *contents;
                if differs {
                    tracing::info!("etcd holds other node bindings or snapshots than written");
                }
                differs
            }
            Update::Events { events, .. } => {
                let contents = contents.lock().expect("contents lock");
                let changed: Vec<&str> = events
                    .iter()
                    .filter(|e| ours(e.key()))
                    .filter(|e| match e {
                        Event::Put(kv) => contents.get(&kv.key) != Some(&kv.value),
                        Event::Delete { key, .. } => contents.contains_key(key),
                    })
                    .map(Event::key)
                    .collect();
                if !changed.is_empty() {
                    tracing::info!(keys = ?changed, "someone else changed the controller's keys in etcd");
                }
                !changed.is_empty()
            }
            Update::Lost(e) => {
                tracing::debug!(error = %e, "watching etcd for foreign changes; retrying");
                false
            }
        };
        if differs {
            foreign.notify_one();
        }
    }
}
