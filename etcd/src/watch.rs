//! The one list-then-watch loop: list a prefix (in pages, at one revision),
//! watch it from that revision, and on any error (etcd unreachable, watch
//! cancelled, revision compacted) back off and list again.

use std::ops::ControlFlow;

use etcd_client::{Client, EventType, WatchClient, WatchOptions};

use crate::backoff::Backoff;
use crate::list::{self, prefix_end, Kv, Listing, MAX_DECODED_MESSAGE};
use crate::Error;

/// One change read from a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Put(Kv),
    Delete { key: String, mod_revision: i64 },
}

impl Event {
    pub fn key(&self) -> &str {
        match self {
            Event::Put(kv) => &kv.key,
            Event::Delete { key, .. } => key,
        }
    }

    pub fn mod_revision(&self) -> i64 {
        match self {
            Event::Put(kv) => kv.mod_revision,
            Event::Delete { mod_revision, .. } => *mod_revision,
        }
    }
}

/// What a list-then-watch loop tells its handler.
#[derive(Debug)]
pub enum Update {
    /// Everything under the prefix (the first list, or a relist: whatever
    /// the handler had is replaced).
    Listed(Listing),
    /// The events of one watch response: whole transactions, to be applied
    /// together. `revision` is etcd's revision when it was sent.
    Events { revision: i64, events: Vec<Event> },
    /// The list or the watch failed; a relist follows after a backoff.
    Lost(Error),
}

/// A watch client that decodes responses of any size etcd sends.
pub fn watch_client(client: &Client) -> WatchClient {
    client
        .watch_client()
        .max_decoding_message_size(MAX_DECODED_MESSAGE)
}

/// Lists then watches `prefix` until `handle` breaks, relisting after a
/// backoff whenever the list or the watch fails or ends.
pub async fn list_then_watch(
    client: &Client,
    prefix: &str,
    mut handle: impl AsyncFnMut(Update) -> ControlFlow<()>,
) {
    let mut backoff = Backoff::default();
    loop {
        let error = match once(client, prefix, &mut handle, &mut backoff).await {
            Ok(ControlFlow::Break(())) => return,
            Ok(ControlFlow::Continue(())) => Error::WatchEnded,
            Err(e) => e,
        };
        if handle(Update::Lost(error)).await.is_break() {
            return;
        }
        backoff.wait().await;
    }
}

/// One list and the watch after it; returns when the watch ends or fails.
async fn once(
    client: &Client,
    prefix: &str,
    handle: &mut impl AsyncFnMut(Update) -> ControlFlow<()>,
    backoff: &mut Backoff,
) -> Result<ControlFlow<()>, Error> {
    let listing = list::list(client, prefix).await?;
    let revision = listing.revision;
    if handle(Update::Listed(listing)).await.is_break() {
        return Ok(ControlFlow::Break(()));
    }
    backoff.reset();
    let options = WatchOptions::new()
        .with_range(prefix_end(prefix.as_bytes()))
        .with_start_revision(revision + 1);
    let mut stream = watch_client(client).watch(prefix, Some(options)).await?;
    while let Some(response) = stream.message().await? {
        if response.canceled() {
            return Err(Error::WatchCancelled {
                compact_revision: response.compact_revision(),
                reason: response.cancel_reason().to_string(),
            });
        }
        let revision = response.header().map(|h| h.revision()).unwrap_or_default();
        let events: Vec<Event> = response
            .events()
            .iter()
            .filter_map(|e| {
                let kv = e.kv()?;
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                Some(match e.event_type() {
                    EventType::Put => Event::Put(Kv {
                        key,
                        value: kv.value().to_vec(),
                        mod_revision: kv.mod_revision(),
                    }),
                    EventType::Delete => Event::Delete {
                        key,
                        mod_revision: kv.mod_revision(),
                    },
                })
            })
            .collect();
        if events.is_empty() {
            continue;
        }
        if handle(Update::Events { revision, events }).await.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}
