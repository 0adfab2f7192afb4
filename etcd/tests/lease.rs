//! Keeping a lease alive against a real etcd: it stays alive past its TTL
//! while kept, and the keeper returns as soon as the lease is gone.

use std::time::Duration;

use bootes_etcd::lease;
use bootes_tests::harness::Etcd;

#[tokio::test]
async fn a_kept_lease_outlives_its_ttl_and_the_keeper_returns_when_it_is_revoked() {
    let etcd = Etcd::start().await.unwrap();
    let mut client = etcd.client().await.unwrap();
    let ttl = Duration::from_secs(2);
    let id = client.lease_grant(2, None).await.unwrap().id();
    client
        .put(
            "/k",
            "v",
            Some(bootes_etcd::etcd_client::PutOptions::new().with_lease(id)),
        )
        .await
        .unwrap();
    let keeper = tokio::spawn(lease::keep_alive(client.clone(), id, ttl));

    // Past its granted TTL (etcd may raise it to its minimum), the lease is
    // alive only because it was renewed.
    let granted = client
        .lease_time_to_live(id, None)
        .await
        .unwrap()
        .granted_ttl();
    let until = tokio::time::Instant::now() + Duration::from_secs(granted as u64 + 1);
    while tokio::time::Instant::now() < until {
        let left = client.lease_time_to_live(id, None).await.unwrap().ttl();
        assert!(left > 0, "the kept lease expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!keeper.is_finished());

    client.lease_revoke(id).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(20), keeper)
        .await
        .expect("the keeper noticed the revoked lease")
        .unwrap();
    assert!(
        ended.is_ok(),
        "a lost lease is not an etcd error: {ended:?}"
    );
    assert!(client.get("/k", None).await.unwrap().kvs().is_empty());
}
