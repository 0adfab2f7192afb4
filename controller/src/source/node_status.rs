//! Watches what the xds-servers record under `<prefix>status/` (ACKs and
//! NACKs per node), so NACKs can be reported on the objects concerned.

use std::sync::Arc;

use bootes_etcd::etcd_client::Client;
use bootes_etcd::{Event, Update};
use bootes_proto::{store, Key, Keys};
use prost::Message;
use tokio::sync::mpsc;

use super::SourceEvent;
use crate::metrics::Metrics;

/// Runs until the receiver is gone; relists after any error (counted in
/// `metrics`).
pub async fn run(client: Client, keys: Keys, tx: mpsc::Sender<SourceEvent>, metrics: Arc<Metrics>) {
    let mut updates = bootes_etcd::ListWatch::new(&client, keys.statuses());
    loop {
        let events = match updates.next().await {
            Update::Listed(listing) => {
                let records = listing
                    .kvs
                    .iter()
                    .filter_map(|kv| decode(&keys, &kv.key, &kv.value).and_then(|(_, _, s)| s))
                    .collect();
                vec![SourceEvent::ResetNodeStatus(records)]
            }
            Update::Events { events, .. } => events
                .iter()
                .filter_map(|event| {
                    let (node, replica, status) = match event {
                        Event::Put(kv) => decode(&keys, &kv.key, &kv.value)?,
                        Event::Delete { key, .. } => {
                            let (node, replica, _) = decode(&keys, key, &[])?;
                            (node, replica, None)
                        }
                    };
                    Some(SourceEvent::NodeStatus {
                        node,
                        replica,
                        status,
                    })
                })
                .collect(),
            Update::Lost(e) => {
                metrics.observe_etcd_error("watch");
                tracing::warn!(error = %e, "watching node status in etcd failed; retrying");
                Vec::new()
            }
        };
        for event in events {
            if tx.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// (node, replica, decoded record); the record is `None` when the value is
/// not a valid `NodeStatus` (logged: never trusted, never fatal).
fn decode(
    keys: &Keys,
    key: &str,
    value: &[u8],
) -> Option<(String, String, Option<store::NodeStatus>)> {
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
                // Written by whoever can write status/: bounded again here
                // before it reaches logs and object status.
                for t in &mut s.types {
                    let max = bootes_proto::limits::DEFAULT_MAX_NACK_DETAIL;
                    if t.nack_detail.len() > max {
                        t.nack_detail = bootes_proto::limits::nack_detail(&t.nack_detail, max);
                    }
                }
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

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn nack_details_read_from_etcd_are_cut() {
        let keys = Keys::default();
        let value = store::NodeStatus {
            types: vec![store::TypeStatus {
                nack_detail: "x".repeat(1 << 20),
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec();
        let key = keys.status("n.ns", "r1");
        let (node, replica, status) = decode(&keys, &key, &value).unwrap();
        assert_eq!((node.as_str(), replica.as_str()), ("n.ns", "r1"));
        let detail = &status.unwrap().types[0].nack_detail;
        assert!(detail.len() <= bootes_proto::limits::DEFAULT_MAX_NACK_DETAIL);
        assert!(detail.ends_with("bytes cut]"));
    }
}
