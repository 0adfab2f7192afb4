//! Keeping an etcd lease alive: the leader key and the xds-server's
//! `status/` records each hang on one, and both must notice at once when it
//! is lost (their keys are gone then).

use std::time::Duration;

use etcd_client::Client;
use tokio::time::Instant;

/// How soon a broken keep-alive stream is opened again, doubling up to a
/// third of the TTL. The first retry is at once: the member that broke it
/// is set aside, so the new stream goes to another one.
const RETRY_MIN: Duration = Duration::from_millis(50);

/// Renews lease `id` every third of `ttl` until it is lost. Returns `Ok(())`
/// when the lease is gone (etcd answers with no TTL left: the keys on it
/// have been deleted) and `Err` when no renewal succeeded for a whole TTL
/// and etcd does not answer how much is left (the lease may still be
/// alive).
///
/// A keep-alive stream that breaks (its member died or hangs) is opened
/// again at once, on another member: losing one member costs the lease
/// nothing.
pub async fn keep_alive(client: Client, id: i64, ttl: Duration) -> Result<(), etcd_client::Error> {
    let period = ttl / 3;
    // Granted or checked just before: alive for about a TTL from now.
    let mut expires = Instant::now() + ttl;
    let mut retry = Duration::ZERO;
    loop {
        let error = match renew(client.clone(), id, period, &mut expires).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        tracing::warn!(lease = id, error = %error, "lease keep-alive broke; renewing through another member");
        tokio::time::sleep(retry.min(expires.saturating_duration_since(Instant::now()))).await;
        retry = (retry * 2).clamp(RETRY_MIN, period);
        if Instant::now() >= expires {
            // No renewal answered for a whole TTL. etcd extends every lease
            // when it elects a new leader, so ask it before giving up.
            match remaining(client.clone(), id, period).await {
                Some(0) => return Ok(()),
                Some(ttl) => expires = Instant::now() + Duration::from_secs(ttl),
                None => return Err(error),
            }
        }
    }
}

/// What etcd says is left of lease `id` (`Some(0)`: gone), or `None` when
/// it does not answer within `within`.
async fn remaining(mut client: Client, id: i64, within: Duration) -> Option<u64> {
    match tokio::time::timeout(within, client.lease_time_to_live(id, None)).await {
        Ok(Ok(r)) => Some(r.ttl().max(0) as u64),
        _ => None,
    }
}

/// One keep-alive stream, renewing every `period` (the first at once);
/// moves `expires` on with every renewal. `Ok` when etcd says the lease is
/// gone; `Err` when the stream fails or a renewal goes unanswered for a
/// period.
async fn renew(
    mut client: Client,
    id: i64,
    period: Duration,
    expires: &mut Instant,
) -> Result<(), etcd_client::Error> {
    let (mut keeper, mut responses) = client.lease_keep_alive(id).await?;
    loop {
        let sent = Instant::now();
        keeper.keep_alive().await?;
        // A renewal unanswered for a period gives the stream up: the next
        // one, maybe through another member, still has time before the
        // lease would expire.
        let answer = tokio::time::timeout_at((sent + period).min(*expires), responses.message())
            .await
            .map_err(|_| {
                etcd_client::Error::LeaseKeepAliveError(format!(
                    "no renewal answer within {period:?}"
                ))
            })??;
        match answer {
            Some(r) if r.ttl() > 0 => {
                *expires = sent + Duration::from_secs(r.ttl() as u64);
            }
            Some(_) => return Ok(()),
            None => {
                return Err(etcd_client::Error::LeaseKeepAliveError(
                    "the keep-alive stream ended".into(),
                ))
            }
        }
        tokio::time::sleep(period).await;
    }
}
