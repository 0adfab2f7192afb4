//! Records what each node connected to this replica ACKed and NACKed in etcd
//! (`<prefix>status/<node>/<replica>`, docs/DESIGN.md §4), attached to a lease so
//! the records vanish with the replica. The controller maps NACKs back to the
//! objects that produced the rejected resources.

use std::sync::Arc;
use std::time::Duration;

use bootes_proto::limits::MAX_TXN_OPS;
use bootes_proto::{store, Keys};
use etcd_client::{Client, PutOptions, Txn, TxnOp};
use futures::StreamExt;
use prost::Message;

use prometheus_client::metrics::gauge::Gauge;

use crate::clients::Clients;
use crate::metrics::{Metrics, ETCD_STATUS};

/// Status transactions stay well under etcd's request limit.
const MAX_TXN_BYTES: usize = bootes_proto::limits::ETCD_REQUEST_LIMIT / 2;
/// Status transactions in flight at once.
const TXNS_IN_FLIGHT: usize = 4;

/// Bounds on what this replica writes under `status/` (docs/DESIGN.md §4).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// TTL of the lease the records are attached to: they vanish this long
    /// after the replica.
    pub lease_ttl: Duration,
    /// At most one round of writes per interval; changes in between are
    /// coalesced (a node NACKing in a loop costs one write per interval).
    pub interval: Duration,
    /// Largest encoded record.
    pub max_record: usize,
    pub max_detail: usize,
}

/// The etcd value for one node, or `None` when it has no stream here.
pub fn node_status(
    clients: &Clients,
    node: &str,
    replica: &str,
    limits: &Limits,
) -> Option<store::NodeStatus> {
    let types = clients.node(node)?;
    let mut status = store::NodeStatus {
        node_id: node.to_string(),
        replica: replica.to_string(),
        types: types
            .into_iter()
            .map(|(ty, report)| store::TypeStatus {
                type_url: ty.type_url().to_string(),
                acked_resource_versions: report.acked.values().cloned().collect(),
                nacked_resource_versions: report
                    .nack
                    .as_ref()
                    .map(|n| n.versions.clone())
                    .unwrap_or_default(),
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
    };
    bootes_proto::limits::bound_status(&mut status, limits.max_record, limits.max_detail);
    Some(status)
}

/// Runs forever. Only nodes for which `bound` is true (they have a binding)
/// get a record: a client cannot create records for made-up node IDs.
/// Failures and the nodes waiting to be written are counted in `metrics`.
pub async fn run(
    client: Client,
    keys: Keys,
    replica: String,
    clients: Arc<Clients>,
    limits: Limits,
    bound: impl Fn(&str) -> bool,
    metrics: Arc<Metrics>,
) {
    let mut backoff = bootes_etcd::backoff::Backoff::default();
    loop {
        match report(
            client.clone(),
            &keys,
            &replica,
            &clients,
            &limits,
            &bound,
            &metrics.status_backlog,
        )
        .await
        {
            Ok(()) => return,
            Err(e) => {
                metrics.etcd_error(ETCD_STATUS);
                // The next lease rewrites every node served here.
                metrics.status_backlog.set(clients.nodes().len() as i64);
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
    limits: &Limits,
    bound: &impl Fn(&str) -> bool,
    backlog: &Gauge,
) -> Result<(), etcd_client::Error> {
    let lease = client
        .lease_grant(limits.lease_ttl.as_secs().max(2) as i64, None)
        .await?
        .id();
    // Whether the lease is lost or etcd fails, start over with a new lease
    // (the records on a lost one are gone).
    let keeper = bootes_etcd::lease::keep_alive(client.clone(), lease, limits.lease_ttl);
    let keep_alive = async {
        keeper.await?;
        Err::<(), _>(etcd_client::Error::LeaseKeepAliveError(
            "lease expired".into(),
        ))
    };
    tokio::pin!(keep_alive);

    // A new lease: (re)write every node we serve.
    let mut nodes = clients.nodes();
    loop {
        // Rounds start at most one an interval apart, counted from the
        // start of the last (its writes included), not from its end.
        let round_started = tokio::time::Instant::now();
        backlog.set(nodes.len() as i64);
        let mut ops = Vec::new();
        let mut sizes = Vec::new();
        for node in &nodes {
            let key = keys.status(node, replica);
            let status = node_status(clients, node, replica, limits).filter(|_| bound(node));
            sizes.push(key.len() + status.as_ref().map_or(0, |s| s.encoded_len()));
            ops.push(match status {
                Some(status) => TxnOp::put(
                    key,
                    status.encode_to_vec(),
                    Some(PutOptions::new().with_lease(lease)),
                ),
                None => TxnOp::delete(key, None),
            });
        }
        let wrote = !ops.is_empty();
        let mut ops = ops.into_iter();
        let chunks: Vec<Vec<TxnOp>> =
            bootes_proto::limits::batches(sizes, MAX_TXN_OPS, MAX_TXN_BYTES)
                .into_iter()
                .map(|n| ops.by_ref().take(n).collect())
                .collect();
        // A round of a whole fleet is ~80 transactions: a few in flight at
        // once, not one round trip and fsync after another (each node's
        // record is in one of them only, so their order does not matter).
        let mut writes = futures::stream::iter(chunks)
            .map(|chunk| {
                let mut client = client.clone();
                async move { client.txn(Txn::new().and_then(chunk)).await }
            })
            .buffer_unordered(TXNS_IN_FLIGHT);
        loop {
            tokio::select! {
                r = writes.next() => match r {
                    Some(r) => { r?; }
                    None => break,
                },
                r = &mut keep_alive => return r,
            }
        }
        drop(writes);
        backlog.set(0);
        // A round that wrote nothing (the first one, when no node is
        // connected yet) does not count against the rate: the first change
        // after it is written at once, not an interval later.
        let next_round = round_started
            + if wrote {
                limits.interval
            } else {
                Duration::ZERO
            };
        tokio::select! {
            changed = async {
                let mut changed = clients.take_changed().await;
                backlog.set(changed.len() as i64);
                // Coalesce: whatever else changes until the next round is
                // written with it.
                tokio::time::sleep_until(next_round).await;
                changed.extend(clients.take_changed_now());
                changed.sort();
                changed.dedup();
                changed
            } => nodes = changed,
            r = &mut keep_alive => return r,
        }
    }
}
