//! The etcd shell of the controller: the [`SnapshotStore`] the reconcile loop
//! writes to. It reads what is under the prefix, writes the transactions
//! [`bootes_core::plan`] computes, and watches the prefix so that a
//! change it did not make (another writer, a damaged value) makes the loop
//! read etcd again: plans are diffs against etcd's actual contents, not
//! against a cache that may have drifted.
//!
//! With a key file, Secret resources are sealed on the way into etcd and
//! opened on the way out ([`Sealer`]): plans and the watcher compare
//! plaintext, so an unchanged Secret is not rewritten with a fresh nonce.

use std::sync::{Arc, Mutex};

use bootes_core::index::Desired;
use bootes_core::plan::{self, Contents, Op, Plan};
use bootes_core::store::{SnapshotStore, StoreError, WriteStats};
use bootes_etcd::etcd_client::{Client, TxnOp};
use bootes_etcd::watch::{Event, ListWatch, Update};
use bootes_proto::sealed::{self, SecretKeys};
use bootes_proto::{store, values, Fence, Key, Keys};
use prost::Message;
use tokio::sync::Notify;

/// Seals Secrets into etcd values and opens them back.
#[derive(Clone, Debug)]
pub(crate) struct Sealer {
    pub(crate) keys: Keys,
    pub(crate) secrets: Option<Arc<SecretKeys>>,
}

impl Sealer {
    fn snapshot<'a>(
        &'a self,
        key: &str,
        value: &[u8],
    ) -> Option<(&'a SecretKeys, store::Snapshot)> {
        let secrets = self.secrets.as_deref()?;
        let Some(Key::Snapshot(_)) = self.keys.parse(key) else {
            return None;
        };
        Some((secrets, store::Snapshot::decode(value).ok()?))
    }

    /// A value as the plan computes it: sealed resources opened. Values
    /// that do not open, or were sealed under a key that is no longer the
    /// first, stay as they are, so the plan rewrites them (that is how a
    /// key rotation re-seals everything).
    fn opened(&self, key: &str, value: Vec<u8>) -> Vec<u8> {
        match self.snapshot(key, &value) {
            Some((secrets, mut snapshot)) => match sealed::open_snapshot(secrets, &mut snapshot) {
                Ok(true) => snapshot.encode_to_vec(),
                Ok(false) | Err(_) => value,
            },
            None => value,
        }
    }

    /// A value read by `load`, as the plan compares it ([`Sealer::opened`]),
    /// and the verdict on it (`bootes_proto::values`).
    pub(crate) fn loaded(
        &self,
        key: &str,
        value: Vec<u8>,
    ) -> (Vec<u8>, Result<(), values::ValueError>) {
        let value = self.opened(key, value);
        let verdict = values::check(&self.keys, key, &value, self.secrets.as_deref());
        (value, verdict)
    }

    /// What is stored for a planned value: Secrets sealed.
    fn stored(&self, key: &str, value: &[u8]) -> Vec<u8> {
        match self.snapshot(key, value) {
            Some((secrets, mut snapshot)) => {
                sealed::seal_snapshot(secrets, &mut snapshot);
                snapshot.encode_to_vec()
            }
            None => value.to_vec(),
        }
    }
}

pub struct EtcdWriter {
    client: Client,
    keys: Keys,
    sealer: Sealer,
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
    pub async fn connect(
        config: &bootes_etcd::connect::EtcdConfig,
        keys: Keys,
        secrets: Option<Arc<SecretKeys>>,
    ) -> Result<Self, bootes_etcd::Error> {
        let client = bootes_etcd::connect::connect(config).await?;
        let contents = Arc::new(Mutex::new(Contents::new()));
        let foreign = Arc::new(Notify::new());
        let sealer = Sealer {
            keys: keys.clone(),
            secrets,
        };
        let watcher = tokio::spawn(watch_foreign(
            client.clone(),
            sealer.clone(),
            contents.clone(),
            foreign.clone(),
        ));
        Ok(Self {
            client,
            keys,
            sealer,
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
            let listing = bootes_etcd::list::list(&self.client, &prefix)
                .await
                .map_err(|e| StoreError::Unavailable(e.into()))?;
            contents.extend(listing.kvs.into_iter().map(|kv| {
                let (value, verdict) = self.sealer.loaded(&kv.key, kv.value);
                if let Err(e) = verdict {
                    tracing::warn!(key = %kv.key, error = %e, "damaged or foreign value in etcd; it will be overwritten or deleted");
                }
                (kv.key, value)
            }));
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
                    Op::Put { key, value } => {
                        TxnOp::put(key.as_str(), self.sealer.stored(key, value), None)
                    }
                    Op::Delete { key } => TxnOp::delete(key.as_str(), None),
                })
                .collect();
            // Recorded before the transaction, so that the watcher sees its
            // events as ours. A failed write is undone here: the loop also
            // reloads etcd, but that read may fail too (the member it needs
            // is the one that just died), and a plan against what we only
            // hoped to have written would never write it.
            let undo = plan::apply_undoable(&mut self.contents(), ops);
            let result = bootes_etcd::txn::commit(&mut kv, txn_ops, fence).await;
            if result.is_err() {
                plan::apply(&mut self.contents(), &undo);
            }
            match result {
                Ok(_) => {}
                Err(bootes_etcd::Error::NotLeader) => return Err(StoreError::NotLeader),
                Err(e) => return Err(StoreError::Unavailable(e.into())),
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
    sealer: Sealer,
    contents: Arc<Mutex<Contents>>,
    foreign: Arc<Notify>,
) {
    let keys = &sealer.keys;
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
                    .map(|kv| {
                        let value = sealer.opened(&kv.key, kv.value);
                        (kv.key, value)
                    })
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
                        Event::Put(kv) => {
                            contents.get(&kv.key) != Some(&sealer.opened(&kv.key, kv.value.clone()))
                        }
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
