//! The paged list and the list-then-watch loop against a real etcd.

use std::ops::ControlFlow;

use bootes_etcd::etcd_client::{Client, CompactionOptions, PutOptions};
use bootes_etcd::{list, list_then_watch, Update};
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
    let mut seen_pages = 0;
    let mut writer = client.clone();
    let listing = list::list_with(&client, "/p/", 5, async |_| {
        seen_pages += 1;
        // Written between pages: after the listed revision, so not listed.
        writer.put("/p/zzz", "late", None).await.unwrap();
    })
    .await
    .unwrap();
    assert_eq!(seen_pages, 10, "53 keys in pages of 5: 11 pages");
    let keys: Vec<_> = listing.kvs.iter().map(|kv| kv.key.clone()).collect();
    let expected: Vec<_> = (0..53).map(|i| format!("/p/{i:05}")).collect();
    assert_eq!(keys, expected);
    assert!(listing
        .kvs
        .iter()
        .all(|kv| kv.mod_revision <= listing.revision));
    // The default page size lists the late key too.
    let again = list::list(&client, "/p/").await.unwrap();
    assert_eq!(again.kvs.len(), 54);
    assert!(again.revision > listing.revision);
}

#[tokio::test]
async fn a_compaction_in_the_middle_of_a_list_starts_it_over() {
    let etcd = Etcd::start().await.unwrap();
    let mut client = etcd.client().await.unwrap();
    put_many(&mut client, "/c/", 20, b"v").await;
    let mut writer = client.clone();
    let mut compactions = 0;
    let listing = list::list_with(&client, "/c/", 7, async |read| {
        // Once, after the first page: change a key that was already read
        // and compact the revision the list is pinned to.
        if compactions == 0 && read == 7 {
            compactions += 1;
            let rev = writer
                .put("/c/00000", "changed", None)
                .await
                .unwrap()
                .header()
                .unwrap()
                .revision();
            writer
                .compact(rev, Some(CompactionOptions::new().with_physical()))
                .await
                .unwrap();
        }
    })
    .await
    .unwrap();
    assert_eq!(compactions, 1);
    assert_eq!(listing.kvs.len(), 20);
    // The list was taken again after the change: one consistent picture.
    assert_eq!(listing.kvs[0].value, b"changed");
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

    // A watch response of one 5 MiB transaction (5 puts of 1 MiB) decodes too.
    let mut steps = 0;
    let mut writer = client.clone();
    let mib2 = mib.clone();
    list_then_watch(&client, "/big/", async |update| {
        steps += 1;
        match update {
            Update::Listed(l) => {
                assert_eq!(l.kvs.len(), 10);
                let ops = (0..5)
                    .map(|i| {
                        bootes_etcd::etcd_client::TxnOp::put(
                            format!("/big/new{i}"),
                            mib2.clone(),
                            None,
                        )
                    })
                    .collect::<Vec<_>>();
                writer
                    .txn(bootes_etcd::etcd_client::Txn::new().and_then(ops))
                    .await
                    .unwrap();
                ControlFlow::Continue(())
            }
            Update::Events { events, .. } => {
                assert_eq!(events.len(), 5, "one response, the whole transaction");
                ControlFlow::Break(())
            }
            Update::Lost(e) => panic!("{e}"),
        }
    })
    .await;
    assert_eq!(steps, 2);
}
