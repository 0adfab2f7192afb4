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

/// Lists `prefix` in pages of [`DEFAULT_PAGE_SIZE`] keys at one revision.
pub async fn list(client: &Client, prefix: &str) -> Result<Listing, Error> {
    list_with(client, prefix, DEFAULT_PAGE_SIZE, async |_| {}).await
}

/// [`list`] with a page size, and `between_pages` called after each page
/// but the last one with the number of keys read so far (tests compact etcd
/// there).
pub async fn list_with(
    client: &Client,
    prefix: &str,
    page_size: i64,
    mut between_pages: impl AsyncFnMut(usize),
) -> Result<Listing, Error> {
    let mut kv = kv_client(client);
    let end = prefix_end(prefix.as_bytes());
    let mut relists = 0;
    'relist: loop {
        let mut listing = Listing::default();
        let mut from = prefix.as_bytes().to_vec();
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(page_size);
            if listing.revision > 0 {
                options = options.with_revision(listing.revision);
            }
            let page = match kv.get(from.clone(), Some(options)).await {
                Ok(page) => page,
                Err(e) if crate::is_compacted(&e) && relists < MAX_RELISTS => {
                    relists += 1;
                    tracing::info!(
                        prefix,
                        revision = listing.revision,
                        "revision compacted during a paged list; listing again"
                    );
                    continue 'relist;
                }
                Err(e) => return Err(Error::Etcd(e)),
            };
            if listing.revision == 0 {
                listing.revision = page.header().map(|h| h.revision()).unwrap_or_default();
            }
            for kv in page.kvs() {
                listing.kvs.push(Kv {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    value: kv.value().to_vec(),
                    mod_revision: kv.mod_revision(),
                });
            }
            let Some(last) = page.kvs().last() else {
                return Ok(listing);
            };
            if !page.more() {
                return Ok(listing);
            }
            // The next page starts right after the last key read.
            from = last.key().to_vec();
            from.push(0);
            between_pages(listing.kvs.len()).await;
        }
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
