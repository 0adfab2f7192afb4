//! The etcd shell of the controller: reads what is under the prefix, then
//! writes the transactions [`plan`](bootes_core::plan) computes.

use bootes_proto::Keys;
use etcd_client::{Client, Txn, TxnOp};

use crate::leader::Fence;
use bootes_core::index::Desired;
use bootes_core::plan::{self, Contents, Op, Plan};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Etcd(#[from] etcd_client::Error),
    /// The fence comparison failed: another replica leads now.
    #[error("not the leader anymore: the write was refused")]
    NotLeader,
}

/// Statistics of one write, for logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    pub txns: usize,
    pub puts: usize,
    pub deletes: usize,
    pub bytes: usize,
}

pub struct EtcdWriter {
    client: Client,
    keys: Keys,
    /// What this writer believes is in etcd (nodes/ and snapshots/).
    written: Contents,
}

impl EtcdWriter {
    pub async fn connect(endpoints: &[String], keys: Keys) -> Result<Self, etcd_client::Error> {
        let client = bootes_etcd::connect(&bootes_etcd::EtcdConfig::new(endpoints)).await?;
        Ok(Self {
            client,
            keys,
            written: Contents::new(),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Reads the current nodes/ and snapshots/ (in pages, however much there
    /// is), so that only differences are written.
    pub async fn load(&mut self) -> Result<(), bootes_etcd::Error> {
        let mut contents = Contents::new();
        for prefix in [self.keys.nodes(), self.keys.snapshots()] {
            let listing = bootes_etcd::list(&self.client, &prefix).await?;
            contents.extend(listing.kvs.into_iter().map(|kv| (kv.key, kv.value)));
        }
        tracing::info!(keys = contents.len(), "read current etcd contents");
        self.written = contents;
        Ok(())
    }

    /// The plan to reach `desired` from what was last read or written.
    pub fn plan(&self, desired: &Desired) -> Plan {
        plan::plan(&self.keys, &self.written, desired)
    }

    /// Runs `plan`'s transactions in order, each fenced on leadership when a
    /// fence is given. On error, what was written so far is remembered and
    /// the rest is left for the next attempt.
    pub async fn write(
        &mut self,
        plan: &Plan,
        fence: Option<&Fence>,
    ) -> Result<WriteStats, WriteError> {
        let mut stats = WriteStats::default();
        for ops in &plan.txns {
            let txn_ops: Vec<TxnOp> = ops
                .iter()
                .map(|op| match op {
                    Op::Put { key, value } => TxnOp::put(key.as_str(), value.clone(), None),
                    Op::Delete { key } => TxnOp::delete(key.as_str(), None),
                })
                .collect();
            let mut txn = Txn::new();
            if let Some(fence) = fence {
                txn = txn.when(vec![fence.compare()]);
            }
            let resp = self.client.txn(txn.and_then(txn_ops)).await?;
            if !resp.succeeded() {
                return Err(WriteError::NotLeader);
            }
            plan::apply(&mut self.written, ops);
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
}
