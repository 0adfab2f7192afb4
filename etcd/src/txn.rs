//! Fenced transactions: every write of the controller's leader carries the
//! proof that it still leads, checked by etcd in the same transaction.

use etcd_client::{Compare, CompareOp, KvClient, Txn, TxnOp, TxnResponse};

use crate::Error;

use bootes_proto::Fence;

/// The comparison a write transaction fenced on `fence` must pass.
pub fn compare(fence: &Fence) -> Compare {
    Compare::create_revision(fence.key.as_str(), CompareOp::Equal, fence.create_revision)
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
        txn = txn.when(vec![compare(fence)]);
    }
    let resp = kv.txn(txn.and_then(ops)).await?;
    if !resp.succeeded() {
        return Err(Error::NotLeader);
    }
    Ok(resp)
}
