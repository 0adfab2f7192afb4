//! Reading everything under a prefix, in pages, at one revision.
//!
//! One range request for the whole prefix would have to fit in one gRPC
//! message, and a reply of more than the client's decoding limit (4 MiB by
//! default) fails. So a list asks for `page_size` keys at a time, continuing
//! after the last key it got, every page pinned to the revision of the first
//! one: together the pages are one consistent picture. If etcd compacts that
//! revision while the pages are being read, the list starts over at the
//! current revision.

use etcd_client::{Client, GetOptions, KvClient};

use crate::Error;

/// Keys per range request. Values are at most about 1.5 MiB (etcd's request
/// size limit), so a page stays far below what the client decodes.
pub const DEFAULT_PAGE_SIZE: i64 = 500;

/// How often a list starts over because its revision was compacted before
/// giving up (the caller retries later).
const MAX_RELISTS: usize = 5;

/// The largest message the client decodes: what etcd may send (its gRPC
/// server sends up to `i32::MAX` bytes), so that a watch response holding a
/// large transaction is never refused by the client.
pub const MAX_DECODED_MESSAGE: usize = i32::MAX as usize;

/// A key and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the last change of this key.
    pub mod_revision: i64,
}

/// Everything under a prefix at one revision, sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub revision: i64,
    pub kvs: Vec<Kv>,
}

/// A KV client that decodes replies of any size etcd sends.
pub fn kv_client(client: &Client) -> KvClient {
    client
        .kv_client()
        .max_decoding_message_size(MAX_DECODED_MESSAGE)
}

/// The environment variable of the end-to-end tests' hook: a file path.
/// While that file exists, [`list`] stops after each page but the last and
/// writes the revision it lists at into it; it goes on once the test removes
/// the file. A test compacts etcd in that pause, deterministically in the
/// middle of a list of a real process.
pub const HOLD_FILE_ENV: &str = "BOOTES_TEST_HOLD_LIST_FILE";

/// Lists `prefix` in pages of [`DEFAULT_PAGE_SIZE`] keys at one revision.
pub async fn list(client: &Client, prefix: &str) -> Result<Listing, Error> {
    let mut kv = kv_client(client);
    let mut pager = Pager::new(prefix, DEFAULT_PAGE_SIZE);
    let hold = std::env::var_os(HOLD_FILE_ENV).map(std::path::PathBuf::from);
    while !pager.next_page(&mut kv).await? {
        if let Some(hold) = hold.as_deref().filter(|h| h.exists()) {
            hold_while_present(hold, pager.listing.revision).await;
        }
    }
    Ok(pager.into_listing())
}

/// [`HOLD_FILE_ENV`]'s pause.
async fn hold_while_present(file: &std::path::Path, revision: i64) {
    tracing::warn!(file = %file.display(), revision, "paged list held by the test hook {HOLD_FILE_ENV}");
    if let Err(e) = std::fs::write(file, revision.to_string()) {
        tracing::warn!(error = %e, "test hook: cannot write the hold file");
        return;
    }
    while file.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A list in progress, one page per [`Pager::next_page`].
#[derive(Debug)]
pub struct Pager {
    prefix: String,
    end: Vec<u8>,
    page_size: i64,
    listing: Listing,
    /// Where the next page starts.
    from: Vec<u8>,
    relists: usize,
}

impl Pager {
    pub fn new(prefix: &str, page_size: i64) -> Self {
        Self {
            prefix: prefix.to_string(),
            end: prefix_end(prefix.as_bytes()),
            page_size,
            listing: Listing::default(),
            from: prefix.as_bytes().to_vec(),
            relists: 0,
        }
    }

    /// Reads the next page; `true` once the listing is complete. When the
    /// revision of the listing has been compacted, the listing starts over
    /// (at most a few times; then the error is returned).
    pub async fn next_page(&mut self, kv: &mut KvClient) -> Result<bool, Error> {
        let mut options = GetOptions::new()
            .with_range(self.end.clone())
            .with_limit(self.page_size);
        if self.listing.revision > 0 {
            options = options.with_revision(self.listing.revision);
        }
        let page = match kv.get(self.from.clone(), Some(options)).await {
            Ok(page) => page,
            Err(e) if crate::is_compacted(&e) && self.relists < MAX_RELISTS => {
                tracing::info!(
                    prefix = self.prefix,
                    revision = self.listing.revision,
                    "revision compacted during a paged list; listing again"
                );
                self.relists += 1;
                self.listing = Listing::default();
                self.from = self.prefix.as_bytes().to_vec();
                return Ok(false);
            }
            Err(e) => return Err(Error::Etcd(e)),
        };
        if self.listing.revision == 0 {
            self.listing.revision = page.header().map(|h| h.revision()).unwrap_or_default();
        }
        for kv in page.kvs() {
            self.listing.kvs.push(Kv {
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                value: kv.value().to_vec(),
                mod_revision: kv.mod_revision(),
            });
        }
        match page.kvs().last() {
            Some(last) if page.more() => {
                // The next page starts right after the last key read.
                self.from = last.key().to_vec();
                self.from.push(0);
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    /// Keys read so far.
    pub fn read(&self) -> usize {
        self.listing.kvs.len()
    }

    /// How often the listing started over.
    pub fn relists(&self) -> usize {
        self.relists
    }

    /// The listing (complete once [`Pager::next_page`] returned `true`).
    pub fn into_listing(self) -> Listing {
        self.listing
    }
}

/// The end of the range of keys starting with `prefix` (etcd's convention:
/// the prefix with its last byte below 0xff incremented; `\0` means "to the
/// end of the keyspace").
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"/bootes/v1/"), b"/bootes/v10".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
