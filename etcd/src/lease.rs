//! Keeping an etcd lease alive: the leader key and the xds-server's
//! `status/` records each hang on one, and both must notice at once when it
//! is lost (their keys are gone then).

use std::time::Duration;

use etcd_client::Client;

/// Renews lease `id` every third of `ttl` until it is lost. Returns `Ok(())`
/// when the lease is gone (etcd answers with no TTL left, or ends the
/// keep-alive stream: the keys on it have been deleted) and `Err` when
/// talking to etcd fails (the lease may still be alive).
pub async fn keep_alive(
    mut client: Client,
    id: i64,
    ttl: Duration,
) -> Result<(), etcd_client::Error> {
    let (mut keeper, mut responses) = client.lease_keep_alive(id).await?;
    let period = ttl / 3;
    loop {
        keeper.keep_alive().await?;
        match responses.message().await? {
            Some(r) if r.ttl() > 0 => {}
            _ => return Ok(()),
        }
        tokio::time::sleep(period).await;
    }
}
