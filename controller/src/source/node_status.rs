//! Watches what the xds-servers record under `<prefix>status/` (ACKs and
//! NACKs per node), so NACKs can be reported on the objects concerned.

use std::time::Duration;

use bootes_proto::{store, Key, Keys};
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use prost::Message;
use tokio::sync::mpsc;

use super::SourceEvent;

/// Runs until the receiver is gone; relists after any error.
pub async fn run(client: Client, keys: Keys, tx: mpsc::Sender<SourceEvent>) {
    let mut delay = Duration::from_millis(200);
    loop {
        match watch(client.clone(), &keys, &tx).await {
            Ok(true) => return,
            Ok(false) => delay = Duration::from_millis(200),
            Err(e) => tracing::warn!(error = %e, "watching node status in etcd failed; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// One list + watch; `Ok(true)` when the receiver is gone.
async fn watch(
    mut client: Client,
    keys: &Keys,
    tx: &mpsc::Sender<SourceEvent>,
) -> Result<bool, etcd_client::Error> {
    let prefix = keys.statuses();
    let listing = client
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = listing.header().map(|h| h.revision()).unwrap_or_default();
    let records = listing
        .kvs()
        .iter()
        .filter_map(|kv| decode(keys, kv.key(), kv.value()).and_then(|(_, _, s)| s))
        .collect();
    if tx
        .send(SourceEvent::ResetNodeStatus(records))
        .await
        .is_err()
    {
        return Ok(true);
    }
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
    while let Some(resp) = stream.message().await? {
        if resp.canceled() {
            return Ok(false);
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let value = match event.event_type() {
                EventType::Put => kv.value(),
                EventType::Delete => &[],
            };
            let Some((node, replica, status)) = decode(keys, kv.key(), value) else {
                continue;
            };
            let status = if event.event_type() == EventType::Delete {
                None
            } else {
                status
            };
            let event = SourceEvent::NodeStatus {
                node,
                replica,
                status,
            };
            if tx.send(event).await.is_err() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// (node, replica, decoded record); the record is `None` when the value is
/// not a valid `NodeStatus` (logged: never trusted, never fatal).
fn decode(
    keys: &Keys,
    key: &[u8],
    value: &[u8],
) -> Option<(String, String, Option<store::NodeStatus>)> {
    let key = std::str::from_utf8(key).ok()?;
    let Some(Key::Status { node, replica }) = keys.parse(key) else {
        return None;
    };
    let status = if value.is_empty() {
        None
    } else {
        match store::NodeStatus::decode(value) {
            Ok(mut s) => {
                // The key is authoritative for identity.
                s.node_id = node.to_string();
                s.replica = replica.to_string();
                Some(s)
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "undecodable node status in etcd");
                None
            }
        }
    };
    Some((node.to_string(), replica.to_string(), status))
}
