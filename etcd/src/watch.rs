//! The one list-then-watch loop: list a prefix (in pages, at one revision),
//! watch it from that revision, and on any error (etcd unreachable, watch
//! cancelled, revision compacted) back off and list again.

use etcd_client::{Client, EventType, WatchClient, WatchOptions, WatchStream};

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

/// The one list-then-watch loop: [`ListWatch::next`] yields a listing,
/// then the watch's events from the listed revision on; after any error it
/// yields [`Update::Lost`], and the next call backs off and lists again.
pub struct ListWatch {
    client: Client,
    prefix: String,
    backoff: Backoff,
    stream: Option<WatchStream>,
    /// The last list or watch failed: back off before listing again.
    failed: bool,
}

impl std::fmt::Debug for ListWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListWatch")
            .field("prefix", &self.prefix)
            .field("watching", &self.stream.is_some())
            .finish()
    }
}

impl ListWatch {
    pub fn new(client: &Client, prefix: impl Into<String>) -> Self {
        Self {
            client: client.clone(),
            prefix: prefix.into(),
            backoff: Backoff::default(),
            stream: None,
            failed: false,
        }
    }

    /// The next update; never ends (errors are [`Update::Lost`]).
    pub async fn next(&mut self) -> Update {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                if self.failed {
                    self.backoff.wait().await;
                }
                return match self.list_and_watch().await {
                    Ok(listing) => {
                        self.failed = false;
                        self.backoff.reset();
                        Update::Listed(listing)
                    }
                    Err(e) => self.lost(e),
                };
            };
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return self.lost(Error::WatchEnded),
                Err(e) => return self.lost(e.into()),
            };
            if response.canceled() {
                return self.lost(Error::WatchCancelled {
                    compact_revision: response.compact_revision(),
                    reason: response.cancel_reason().to_string(),
                });
            }
            let revision = response.header().map(|h| h.revision()).unwrap_or_default();
            let events: Vec<Event> = response.events().iter().filter_map(event).collect();
            if !events.is_empty() {
                return Update::Events { revision, events };
            }
        }
    }

    fn lost(&mut self, error: Error) -> Update {
        self.stream = None;
        self.failed = true;
        Update::Lost(error)
    }

    /// Lists, and opens the watch from the listed revision before handing
    /// the listing out, so nothing after it is missed.
    async fn list_and_watch(&mut self) -> Result<Listing, Error> {
        let listing = list::list(&self.client, &self.prefix).await?;
        let options = WatchOptions::new()
            .with_range(prefix_end(self.prefix.as_bytes()))
            .with_start_revision(listing.revision + 1);
        let stream = watch_client(&self.client)
            .watch(self.prefix.as_str(), Some(options))
            .await?;
        self.stream = Some(stream);
        Ok(listing)
    }
}

fn event(e: &etcd_client::Event) -> Option<Event> {
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
}
