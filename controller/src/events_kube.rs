//! Kubernetes mode: Events on status transitions (rejected by validation or
//! by an Envoy, programmed after a rollout, conflicts, malformed
//! EndpointSlices), published by the leader with kube-runtime's recorder.
//!
//! The transitions and the rate limit are pure ([`bootes_core::notices`]):
//! at most one Event per object and reason per [`INTERVAL`] (the latest,
//! saying how many it stands for), and at most [`PER_SECOND`] overall, so a
//! flapping fleet cannot flood the API server. The recorder itself turns a
//! repeated Event into a series (`series.count`) instead of a new object.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::watch;
use tokio::time::Instant;

use bootes_core::notices::{notices, Gate, Released};

use crate::crd;
use crate::leader::Leadership;
use crate::status_kube::{ObservedStatuses, Statuses};

/// At most one Event per object and reason per this long.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// At most this many Events per second overall…
pub const PER_SECOND: f64 = 5.0;
/// …in bursts of this many.
const BURST: u32 = 50;
/// Events being published at once.
const CONCURRENCY: usize = 4;
/// The reporting controller named in each Event.
const CONTROLLER: &str = "bootes-controller";

/// Publishes Events for the transitions between the statuses `latest`
/// carries, while this replica leads.
pub async fn run(
    client: kube::Client,
    observed: ObservedStatuses,
    leadership: Leadership,
    mut latest: watch::Receiver<Statuses>,
) {
    let recorder = Recorder::new(client, Reporter::from(CONTROLLER));
    let mut gate = Gate::new(INTERVAL, PER_SECOND, BURST);
    // What the last round saw; `None` until a first round as leader: that
    // one is the baseline (a new leader does not repeat its predecessor's
    // Events).
    let mut previous: Option<Statuses> = None;
    loop {
        let wake = gate.next_release(Instant::now().into_std());
        let release = async {
            match wake {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = latest.changed() => if changed.is_err() { return },
            () = release => {},
        }
        if leadership.borrow().is_none() {
            previous = None;
            gate = Gate::new(INTERVAL, PER_SECOND, BURST);
            continue;
        }
        let statuses = latest.borrow_and_update().clone();
        if let Some(before) = &previous {
            for (key, status) in statuses.iter() {
                for notice in notices(before.get(key), status) {
                    gate.offer(key, notice);
                }
            }
            for key in before.keys().filter(|k| !statuses.contains_key(*k)) {
                gate.forget(key);
            }
        }
        previous = Some(statuses);
        let released = gate.release(Instant::now().into_std());
        futures::stream::iter(released)
            .for_each_concurrent(CONCURRENCY, |r| publish(&recorder, &observed, r))
            .await;
    }
}

async fn publish(recorder: &Recorder, observed: &ObservedStatuses, released: Released) {
    // The uid ties the Event to this incarnation of the object
    // (`kubectl describe` selects on it).
    let Some(uid) = observed.get(&released.object).map(|o| o.uid) else {
        return;
    };
    let key = &released.object;
    let resource = crd::api_resource(key.kind);
    let reference = ObjectReference {
        api_version: Some(resource.api_version),
        kind: Some(resource.kind),
        namespace: Some(key.namespace.clone()),
        name: Some(key.name.clone()),
        uid: Some(uid),
        ..ObjectReference::default()
    };
    let event = Event {
        type_: if released.notice.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: released.notice.reason.to_string(),
        note: Some(truncate(released.message())),
        action: released.notice.action.to_string(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &reference).await {
        tracing::warn!(object = %key, reason = released.notice.reason, error = %e, "publishing an Event failed");
    }
}

/// An Event's note holds at most 1 kB.
fn truncate(mut s: String) -> String {
    const MAX: usize = 1024;
    if s.len() > MAX {
        let mut end = MAX - '…'.len_utf8();
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}
