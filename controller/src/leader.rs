//! Leader election through etcd: one controller replica writes, every
//! replica keeps its index warm.
//!
//! The leader holds `<prefix>leader`, attached to a lease it keeps alive.
//! Every write of the leader is a transaction that compares the key's
//! create revision with the one it won (see [`Fence`]), so a deposed leader
//! (lease expired, key taken over by another replica) cannot write anymore,
//! even if it has not noticed yet.

use std::sync::Arc;
use std::time::Duration;

use bootes_etcd::backoff::Backoff;
use bootes_etcd::etcd_client::{
    Client, Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use bootes_proto::Fence;
use tokio::sync::watch;

/// `Some` while this replica leads.
pub type Leadership = watch::Receiver<Option<Fence>>;

/// Handle of the election task; [`Election::resign`] hands leadership over at once.
pub struct Election {
    leadership: Leadership,
    leader_tx: Arc<watch::Sender<Option<Fence>>>,
    lease: watch::Receiver<Option<i64>>,
    client: Client,
    task: tokio::task::JoinHandle<()>,
}

impl Election {
    /// Starts campaigning for `key` in the background.
    pub fn start(client: Client, key: String, identity: String, ttl: Duration) -> Self {
        let (leader_tx, leadership) = watch::channel(None);
        let leader_tx = Arc::new(leader_tx);
        let (lease_tx, lease) = watch::channel(None);
        let task = tokio::spawn(campaign(
            client.clone(),
            key,
            identity,
            ttl,
            leader_tx.clone(),
            lease_tx,
        ));
        Self {
            leadership,
            leader_tx,
            lease,
            client,
            task,
        }
    }

    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// Stops campaigning, steps down and revokes the lease: the leader key
    /// disappears and another replica takes over (this one does not campaign
    /// again).
    pub async fn resign(&mut self) {
        self.task.abort();
        self.leader_tx.send_replace(None);
        let lease = *self.lease.borrow();
        if let Some(id) = lease {
            match self.client.lease_revoke(id).await {
                Ok(_) => tracing::info!("resigned leadership"),
                Err(e) => tracing::warn!(error = %e, "revoking the leader lease failed"),
            }
        }
    }
}

async fn campaign(
    mut client: Client,
    key: String,
    identity: String,
    ttl: Duration,
    leader_tx: Arc<watch::Sender<Option<Fence>>>,
    lease_tx: watch::Sender<Option<i64>>,
) {
    let ttl_secs = ttl.as_secs().max(2) as i64;
    let mut backoff = Backoff::default();
    // The lease of the last attempt, while it may still be alive: after an
    // interruption (etcd restarted, a connection dropped) this replica
    // recognises the leader key it holds instead of waiting for it to expire.
    let mut lease: Option<i64> = None;
    loop {
        let result = campaign_with_lease(
            &mut client,
            &key,
            &identity,
            ttl_secs,
            &leader_tx,
            &lease_tx,
            &mut lease,
        )
        .await;
        leader_tx.send_replace(None);
        lease_tx.send_replace(lease);
        match result {
            Ok(()) => backoff.reset(),
            Err(e) => {
                tracing::warn!(error = %e, "leader election interrupted; retrying");
                backoff.wait().await;
            }
        }
    }
}

/// Campaigns with one lease until the lease is lost (then `lease` is `None`
/// and the caller starts over with a new one) or etcd fails (then `lease` is
/// kept for the next attempt).
async fn campaign_with_lease(
    client: &mut Client,
    key: &str,
    identity: &str,
    ttl_secs: i64,
    leader_tx: &watch::Sender<Option<Fence>>,
    lease_tx: &watch::Sender<Option<i64>>,
    lease: &mut Option<i64>,
) -> Result<(), bootes_etcd::etcd_client::Error> {
    let id = match *lease {
        Some(id) if client.lease_time_to_live(id, None).await?.ttl() > 0 => id,
        _ => {
            let id = client.lease_grant(ttl_secs, None).await?.id();
            *lease = Some(id);
            id
        }
    };
    lease_tx.send_replace(Some(id));
    let keep_alive =
        bootes_etcd::lease::keep_alive(client.clone(), id, Duration::from_secs(ttl_secs as u64));
    tokio::pin!(keep_alive);

    loop {
        let txn = Txn::new()
            .when(vec![Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::put(
                key,
                identity,
                Some(PutOptions::new().with_lease(id)),
            )])
            .or_else(vec![TxnOp::get(key, None)]);
        let resp = tokio::select! {
            r = client.txn(txn) => r?,
            r = &mut keep_alive => {
                r?;
                tracing::warn!("leader lease lost");
                *lease = None;
                return Ok(());
            }
        };
        let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
        let holder = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().cloned(),
            _ => None,
        });
        let won = match &holder {
            None => Some(revision),
            // The key is on our own lease: we already lead (since before an
            // interruption), with the fence we had.
            Some(kv) if kv.lease() == id => Some(kv.create_revision()),
            Some(_) => None,
        };
        if let Some(create_revision) = won {
            if holder.is_some() {
                tracing::info!(identity, "still the leader (recognised our own lease)");
            } else {
                tracing::info!(identity, "became leader");
            }
            leader_tx.send_replace(Some(Fence {
                key: key.to_string(),
                create_revision,
            }));
            match until_deleted(client, key, revision, keep_alive.as_mut()).await? {
                Watched::Deleted => tracing::warn!("leader key gone; stepping down"),
                Watched::LeaseLost => {
                    tracing::warn!("leader lease lost; stepping down");
                    *lease = None;
                }
            }
            return Ok(());
        }

        let holder = holder
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
            .unwrap_or_default();
        tracing::info!(leader = holder, "following");
        // Campaign again once the key is gone (resigned, or its lease expired).
        if until_deleted(client, key, revision, keep_alive.as_mut()).await? == Watched::LeaseLost {
            *lease = None;
            return Ok(());
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Watched {
    Deleted,
    LeaseLost,
}

/// Watches `key` after `revision` until it is deleted, or until our own
/// lease is lost (`keep_alive` returns). A watch that breaks resumes on
/// another member (leadership is kept meanwhile: the lease, kept alive
/// through the other members, decides), and is retried while no member
/// lets it open.
async fn until_deleted<F>(
    client: &mut Client,
    key: &str,
    revision: i64,
    mut keep_alive: std::pin::Pin<&mut F>,
) -> Result<Watched, bootes_etcd::etcd_client::Error>
where
    F: std::future::Future<Output = Result<(), bootes_etcd::etcd_client::Error>>,
{
    let mut watch = bootes_etcd::watch::Watch::new(client, key, None, revision + 1);
    let mut backoff = Backoff::default();
    loop {
        tokio::select! {
            r = &mut keep_alive => {
                r?;
                return Ok(Watched::LeaseLost);
            }
            msg = watch.next() => match msg {
                Ok(msg) => {
                    backoff.reset();
                    if msg.events().iter().any(|e| e.event_type() == EventType::Delete) {
                        return Ok(Watched::Deleted);
                    }
                }
                // Compacted past our revision: whether the key is still ours
                // is for the next campaign round to find out.
                Err(bootes_etcd::Error::WatchCancelled { .. }) => return Ok(Watched::Deleted),
                Err(e) => {
                    tracing::warn!(error = %e, "watching the leader key failed; retrying");
                    tokio::select! {
                        _ = backoff.wait() => {}
                        r = &mut keep_alive => {
                            r?;
                            return Ok(Watched::LeaseLost);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
