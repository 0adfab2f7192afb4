//! Fenced transactions: every write of the controller's leader carries the
//! proof that it still leads, checked by etcd in the same transaction.

use etcd_client::{Compare, CompareOp, KvClient, Txn, TxnOp, TxnResponse};

use crate::Error;

/// Proof of leadership that every write carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub key: String,
    /// Create revision of the leader key when this replica won it.
    pub create_revision: i64,
}

impl Fence {
    /// The comparison a write transaction must pass.
    pub fn compare(&self) -> Compare {
        Compare::create_revision(self.key.as_str(), CompareOp::Equal, self.create_revision)
    }
}

/// Runs `ops` in one transaction, conditional on `fence` when one is given.
/// At most [`bootes_proto::limits::MAX_TXN_OPS`] operations (etcd's limit).
pub async fn commit(
    kv: &mut KvClient,
    ops: Vec<TxnOp>,
    fence: Option<&Fence>,
) -> Result<TxnResponse, Error> {
    debug_assert!(ops.len() <= bootes_proto::limits::MAX_TXN_OPS);
    let mut txn = Txn::new();
    if let Some(fence) = fence {
        txn = txn.when(vec![fence.compare()]);
    }
    let resp = kv.txn(txn.and_then(ops)).await?;
    if !resp.succeeded() {
        return Err(Error::NotLeader);
    }
    Ok(resp)
}
