//! Leader election through etcd: one controller replica writes, every
//! replica keeps its index warm.
//!
//! The leader holds `<prefix>leader`, attached to a lease it keeps alive.
//! Every write of the leader is a transaction that compares the key's
//! create revision with the one it won (see [`Fence`]), so a deposed leader
//! (lease expired, key taken over by another replica) cannot write anymore,
//! even if it has not noticed yet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::watch;

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

    /// A flag that follows leadership, for code that only needs to know.
    pub fn is_leader_flag(&self) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(self.leadership.borrow().is_some()));
        let mut rx = self.leadership.clone();
        let out = flag.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                out.store(rx.borrow().is_some(), Ordering::Release);
            }
        });
        flag
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
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = campaign_with_lease(
            &mut client,
            &key,
            &identity,
            ttl_secs,
            &leader_tx,
            &lease_tx,
        )
        .await;
        leader_tx.send_replace(None);
        lease_tx.send_replace(None);
        match result {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => {
                tracing::warn!(error = %e, "leader election interrupted; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Campaigns with one lease until the lease is lost (then the caller starts
/// over with a new one).
async fn campaign_with_lease(
    client: &mut Client,
    key: &str,
    identity: &str,
    ttl_secs: i64,
    leader_tx: &watch::Sender<Option<Fence>>,
    lease_tx: &watch::Sender<Option<i64>>,
) -> Result<(), etcd_client::Error> {
    let lease = client.lease_grant(ttl_secs, None).await?.id();
    lease_tx.send_replace(Some(lease));
    let (mut keeper, mut responses) = client.lease_keep_alive(lease).await?;
    let period = Duration::from_millis((ttl_secs as u64 * 1000) / 3);
    let keep_alive = async move {
        loop {
            tokio::time::sleep(period).await;
            keeper.keep_alive().await?;
            match responses.message().await? {
                Some(r) if r.ttl() > 0 => {}
                _ => return Ok::<(), etcd_client::Error>(()),
            }
        }
    };
    tokio::pin!(keep_alive);

    loop {
        let txn = Txn::new()
            .when(vec![Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::put(
                key,
                identity,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else(vec![TxnOp::get(key, None)]);
        let resp = tokio::select! {
            r = client.txn(txn) => r?,
            r = &mut keep_alive => { r?; tracing::warn!("leader lease lost"); return Ok(()); }
        };
        let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
        if resp.succeeded() {
            tracing::info!(identity, "became leader");
            leader_tx.send_replace(Some(Fence {
                key: key.to_string(),
                create_revision: revision,
            }));
            match until_deleted(client, key, revision, keep_alive.as_mut()).await? {
                Watched::Deleted => tracing::warn!("leader key gone; stepping down"),
                Watched::LeaseLost => tracing::warn!("leader lease lost; stepping down"),
            }
            return Ok(());
        }

        let holder = resp
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Get(get) => get
                    .kvs()
                    .first()
                    .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
                _ => None,
            })
            .unwrap_or_default();
        tracing::info!(leader = holder, "following");
        // Campaign again once the key is gone (resigned, or its lease expired).
        if until_deleted(client, key, revision, keep_alive.as_mut()).await? == Watched::LeaseLost {
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
/// lease is lost (`keep_alive` returns).
async fn until_deleted<F>(
    client: &mut Client,
    key: &str,
    revision: i64,
    mut keep_alive: std::pin::Pin<&mut F>,
) -> Result<Watched, etcd_client::Error>
where
    F: std::future::Future<Output = Result<(), etcd_client::Error>>,
{
    let options = WatchOptions::new().with_start_revision(revision + 1);
    let mut watch = client.watch(key, Some(options)).await?;
    loop {
        tokio::select! {
            r = &mut keep_alive => {
                r?;
                return Ok(Watched::LeaseLost);
            }
            msg = watch.message() => {
                let Some(msg) = msg? else { return Ok(Watched::Deleted) };
                let deleted = msg.canceled()
                    || msg.events().iter().any(|e| e.event_type() == EventType::Delete);
                if deleted {
                    return Ok(Watched::Deleted);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
