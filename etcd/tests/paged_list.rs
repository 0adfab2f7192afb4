//! The paged list and the list-then-watch loop against a real etcd.

use bootes_etcd::etcd_client::{Client, CompactionOptions, PutOptions, Txn, TxnOp};
use bootes_etcd::list::{self, Pager};
use bootes_etcd::watch::{ListWatch, Update};
use bootes_tests::harness::Etcd;

async fn put_many(client: &mut Client, prefix: &str, n: usize, value: &[u8]) {
    for i in 0..n {
        client
            .put(
                format!("{prefix}{i:05}"),
                value.to_vec(),
                None::<PutOptions>,
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_list_of_many_pages_reads_every_key_once_at_one_revision() {
    let etcd = Etcd::start().await.unwrap();
    let mut client = etcd.client().await.unwrap();
    put_many(&mut client, "/p/", 53, b"v").await;
    // Neighbours of the prefix are not listed.
    client.put("/p", "x", None).await.unwrap();
    client.put("/p0", "x", None).await.unwrap();
    let mut kv = list::kv_client(&client);
    let mut pager = Pager::new("/p/", 5);
    let mut pages = 0;
    while !pager.next_page(&mut kv).await.unwrap() {
        pages += 1;
        // Written between pages: after the listed revision, so not listed.
        client.put("/p/zzz", "late", None).await.unwrap();
    }
    assert_eq!(pages + 1, 11, "53 keys in pages of 5");
    let listing = pager.into_listing();
    let keys: Vec<_> = listing.kvs.iter().map(|kv| kv.key.clone()).collect();
    let expected: Vec<_> = (0..53).map(|i| format!("/p/{i:05}")).collect();
    assert_eq!(keys, expected);
    assert!(listing
        .kvs
        .iter()
        .all(|kv| kv.mod_revision <= listing.revision));
    // A new list sees the late key.
    let again = list::list(&client, "/p/").await.unwrap();
    assert_eq!(again.kvs.len(), 54);
    assert!(again.revision > listing.revision);
}

#[tokio::test]
async fn a_compaction_in_the_middle_of_a_list_starts_it_over() {
    let etcd = Etcd::start().await.unwrap();
    let mut client = etcd.client().await.unwrap();
    put_many(&mut client, "/c/", 20, b"v").await;
    let mut kv = list::kv_client(&client);
    let mut pager = Pager::new("/c/", 7);
    assert!(!pager.next_page(&mut kv).await.unwrap());
    assert_eq!(pager.read(), 7);
    // Change a key already read, and compact the revision the list is
    // pinned to.
    let rev = client
        .put("/c/00000", "changed", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    client
        .compact(rev, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    while !pager.next_page(&mut kv).await.unwrap() {}
    assert_eq!(pager.relists(), 1);
    let listing = pager.into_listing();
    assert_eq!(listing.kvs.len(), 20);
    // The list was taken again after the change: one consistent picture.
    assert_eq!(listing.kvs[0].value, b"changed");
    assert!(listing.revision >= rev);
}

#[tokio::test]
async fn more_than_the_default_message_limit_is_listed_and_watched() {
    // Requests of up to 8 MiB, so that one transaction can be bigger than
    // the client's default decoding limit.
    let etcd = Etcd::start_with_args(&["--max-request-bytes", "8388608"])
        .await
        .unwrap();
    let mut client = etcd.client().await.unwrap();
    // 10 MiB under the prefix: 10 values of 1 MiB, above tonic's 4 MiB limit.
    let mib = vec![b'x'; 1 << 20];
    put_many(&mut client, "/big/", 10, &mib).await;
    let listing = list::list(&client, "/big/").await.unwrap();
    assert_eq!(listing.kvs.len(), 10);
    assert!(listing.kvs.iter().all(|kv| kv.value.len() == 1 << 20));

    let mut updates = ListWatch::new(&client, "/big/");
    match updates.next().await {
        Update::Listed(l) => assert_eq!(l.kvs.len(), 10),
        other => panic!("{other:?}"),
    }
    // A watch response of one 5 MiB transaction (5 puts of 1 MiB) decodes too.
    let ops = (0..5)
        .map(|i| TxnOp::put(format!("/big/new{i}"), mib.clone(), None))
        .collect::<Vec<_>>();
    client.txn(Txn::new().and_then(ops)).await.unwrap();
    match updates.next().await {
        Update::Events { events, .. } => {
            assert_eq!(events.len(), 5, "one response, the whole transaction")
        }
        other => panic!("{other:?}"),
    }
}
