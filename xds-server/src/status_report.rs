//! Records what each node connected to this replica ACKed and NACKed in etcd
//! (`<prefix>status/<node>/<replica>`, DESIGN.md §4), attached to a lease so
//! the records vanish with the replica. The controller maps NACKs back to the
//! objects that produced the rejected resources.

use std::sync::Arc;
use std::time::Duration;

use bootes_proto::limits::MAX_TXN_OPS;
use bootes_proto::{store, Keys};
use etcd_client::{Client, PutOptions, Txn, TxnOp};
use prost::Message;

use crate::clients::Clients;

/// Changes are batched for this long before they are written.
const BATCH: Duration = Duration::from_millis(200);

/// The etcd value for one node, or `None` when it has no stream here.
pub fn node_status(clients: &Clients, node: &str, replica: &str) -> Option<store::NodeStatus> {
    let types = clients.node(node)?;
    Some(store::NodeStatus {
        node_id: node.to_string(),
        replica: replica.to_string(),
        types: types
            .into_iter()
            .map(|(ty, report)| store::TypeStatus {
                type_url: ty.type_url().to_string(),
                acked_version: report.acked_version,
                nacked_version: report
                    .nack
                    .as_ref()
                    .map(|n| n.version.clone())
                    .unwrap_or_default(),
                nack_detail: report
                    .nack
                    .as_ref()
                    .map(|n| n.detail.clone())
                    .unwrap_or_default(),
                nacked_resources: report.nack.map(|n| n.resources).unwrap_or_default(),
            })
            .collect(),
    })
}

/// Runs forever.
pub async fn run(
    client: Client,
    keys: Keys,
    replica: String,
    clients: Arc<Clients>,
    ttl: Duration,
) {
    let mut backoff = bootes_etcd::Backoff::default();
    loop {
        match report(client.clone(), &keys, &replica, &clients, ttl).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "recording node status in etcd failed; retrying");
                backoff.wait().await;
            }
        }
    }
}

async fn report(
    mut client: Client,
    keys: &Keys,
    replica: &str,
    clients: &Clients,
    ttl: Duration,
) -> Result<(), etcd_client::Error> {
    let lease = client
        .lease_grant(ttl.as_secs().max(2) as i64, None)
        .await?
        .id();
    let (mut keeper, mut acks) = client.lease_keep_alive(lease).await?;
    let period = ttl / 3;
    let keep_alive = async move {
        loop {
            tokio::time::sleep(period).await;
            keeper.keep_alive().await?;
            if acks.message().await?.is_none_or(|r| r.ttl() <= 0) {
                return Err(etcd_client::Error::LeaseKeepAliveError(
                    "lease expired".into(),
                ));
            }
        }
    };
    tokio::pin!(keep_alive);

    // A new lease: (re)write every node we serve.
    let mut nodes = clients.nodes();
    loop {
        let mut ops = Vec::new();
        for node in &nodes {
            let key = keys.status(node, replica);
            ops.push(match node_status(clients, node, replica) {
                Some(status) => TxnOp::put(
                    key,
                    status.encode_to_vec(),
                    Some(PutOptions::new().with_lease(lease)),
                ),
                None => TxnOp::delete(key, None),
            });
        }
        for chunk in ops.chunks(MAX_TXN_OPS) {
            tokio::select! {
                r = client.txn(Txn::new().and_then(chunk.to_vec())) => { r?; }
                r = &mut keep_alive => return r,
            }
        }
        tokio::select! {
            changed = clients.take_changed() => {
                tokio::time::sleep(BATCH).await;
                nodes = changed;
            }
            r = &mut keep_alive => return r,
        }
    }
}
