//! Watches that survive the loss of a member ([`Watch`]: a broken watch
//! opens again from the revision after the last one it delivered, on another
//! member), and the one list-then-watch loop ([`ListWatch`]): list a prefix
//! (in pages, at one revision), watch it from that revision, and when the
//! watch cannot go on (etcd unreachable, watch cancelled, revision
//! compacted) back off and list again.

use etcd_client::{Client, EventType, WatchClient, WatchOptions, WatchResponse, WatchStream};

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
    /// The list failed, or the watch broke and could not be resumed on any
    /// member (or was cancelled); a relist follows after a backoff.
    Lost(Error),
}

/// A watch client that decodes responses of any size etcd sends.
pub fn watch_client(client: &Client) -> WatchClient {
    client
        .watch_client()
        .max_decoding_message_size(MAX_DECODED_MESSAGE)
}

/// A watch of a key or range from a revision on, resumed where it broke.
///
/// When the stream breaks (its member was killed, hung, or dropped the
/// connection), [`Watch::next`] opens it again at once from the revision
/// after the last event it delivered; the channel sends it to another member
/// ([`crate::members`]), so losing a member costs neither an event nor a
/// relist. Only when it cannot be opened again does `next` return the error
/// (the next call tries again).
pub struct Watch {
    client: Client,
    key: Vec<u8>,
    range_end: Option<Vec<u8>>,
    /// The revision the watch resumes from: after the last event delivered.
    from: i64,
    stream: Option<WatchStream>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("from", &self.from)
            .field("open", &self.stream.is_some())
            .finish()
    }
}

impl Watch {
    /// Watches `key` (up to `range_end`, exclusive, when given) from
    /// revision `from` on. Opened by the first [`Watch::next`].
    pub fn new(
        client: &Client,
        key: impl Into<Vec<u8>>,
        range_end: Option<Vec<u8>>,
        from: i64,
    ) -> Self {
        Self {
            client: client.clone(),
            key: key.into(),
            range_end,
            from,
            stream: None,
        }
    }

    /// Everything under `prefix` from revision `from` on.
    pub fn prefix(client: &Client, prefix: &str, from: i64) -> Self {
        Self::new(client, prefix, Some(prefix_end(prefix.as_bytes())), from)
    }

    /// The next response that holds events (whole revisions). Errors:
    /// [`Error::WatchCancelled`] when etcd cancels the watch (e.g. its
    /// revision was compacted), or the error opening it again.
    pub async fn next(&mut self) -> Result<WatchResponse, Error> {
        // A stream that was open and breaks is opened again once at once;
        // one that cannot be opened is the caller's to retry.
        let mut reopened = false;
        loop {
            let stream = match self.stream.as_mut() {
                Some(stream) => stream,
                None => {
                    let stream = self.open().await?;
                    self.stream.insert(stream)
                }
            };
            let broken = match stream.message().await {
                Ok(Some(response)) if response.canceled() => {
                    self.stream = None;
                    return Err(Error::WatchCancelled {
                        compact_revision: response.compact_revision(),
                        reason: response.cancel_reason().to_string(),
                    });
                }
                Ok(Some(response)) => {
                    if let Some(last) = response
                        .events()
                        .iter()
                        .filter_map(|e| e.kv())
                        .map(|kv| kv.mod_revision())
                        .max()
                    {
                        self.from = last + 1;
                        return Ok(response);
                    }
                    continue;
                }
                Ok(None) => Error::WatchEnded,
                Err(e) => Error::Etcd(e),
            };
            self.stream = None;
            if reopened {
                return Err(broken);
            }
            reopened = true;
            tracing::warn!(key = %String::from_utf8_lossy(&self.key), from = self.from, error = %broken, "etcd watch broke; resuming on another member");
        }
    }

    async fn open(&mut self) -> Result<WatchStream, Error> {
        let mut options = WatchOptions::new().with_start_revision(self.from);
        if let Some(end) = &self.range_end {
            options = options.with_range(end.clone());
        }
        Ok(watch_client(&self.client)
            .watch(self.key.clone(), Some(options))
            .await?)
    }
}

/// The one list-then-watch loop: [`ListWatch::next`] yields a listing,
/// then the watch's events from the listed revision on; after any error it
/// yields [`Update::Lost`], and the next call backs off and lists again.
pub struct ListWatch {
    client: Client,
    prefix: String,
    backoff: Backoff,
    stream: Option<Watch>,
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
            let response = match stream.next().await {
                Ok(response) => response,
                Err(e) => return self.lost(e),
            };
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
        let mut watch = Watch::prefix(&self.client, &self.prefix, listing.revision + 1);
        watch.stream = Some(watch.open().await?);
        self.stream = Some(watch);
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
