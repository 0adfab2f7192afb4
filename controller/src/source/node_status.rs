//! Watches what the xds-servers record under `<prefix>status/` (ACKs and
//! NACKs per node), so NACKs can be reported on the objects concerned.

use std::sync::Arc;

use bootes_etcd::etcd_client::Client;
use bootes_etcd::watch::{Event, Update};
use bootes_proto::values::{self, ValueError};
use bootes_proto::{store, Key, Keys};
use tokio::sync::mpsc;

use bootes_core::source::SourceEvent;

use crate::metrics::Metrics;

/// Runs until the receiver is gone; relists after any error (counted in
/// `metrics`).
pub async fn run(client: Client, keys: Keys, tx: mpsc::Sender<SourceEvent>, metrics: Arc<Metrics>) {
    let mut updates = bootes_etcd::watch::ListWatch::new(&client, keys.statuses());
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
                        Event::Delete { key, .. } => match keys.parse(key)? {
                            Key::Status { node, replica } => {
                                (node.to_string(), replica.to_string(), None)
                            }
                            _ => return None,
                        },
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

/// (node, replica, decoded record) of a key under `status/`; the record is
/// `None` when the value is refused (logged: never trusted, never fatal).
fn decode(
    keys: &Keys,
    key: &str,
    value: &[u8],
) -> Option<(String, String, Option<store::NodeStatus>)> {
    let Some(Key::Status { node, replica }) = keys.parse(key) else {
        return None;
    };
    let status = match read(node, replica, value) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(key, error = %e, "node status in etcd refused");
            None
        }
    };
    Some((node.to_string(), replica.to_string(), status))
}

/// The record of `status/<node>/<replica>` (`bootes_proto::values`), its
/// NACK details bounded again: whoever can write `status/` wrote them,
/// and they reach logs and object status.
pub(crate) fn read(
    node: &str,
    replica: &str,
    value: &[u8],
) -> Result<store::NodeStatus, ValueError> {
    let mut s = values::status(node, replica, value)?;
    for t in &mut s.types {
        let max = bootes_proto::limits::DEFAULT_MAX_NACK_DETAIL;
        if t.nack_detail.len() > max {
            t.nack_detail = bootes_proto::limits::nack_detail(&t.nack_detail, max);
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn nack_details_read_from_etcd_are_cut() {
        let keys = Keys::default();
        let value = store::NodeStatus {
            node_id: "n.ns".into(),
            replica: "r1".into(),
            types: vec![store::TypeStatus {
                nack_detail: "x".repeat(1 << 20),
                ..Default::default()
            }],
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
