//! Incremental (delta) ADS, one stream.
//!
//! Versions are per resource (the content hashes), so a client that
//! reconnects, to this replica or another, and lists what it has in
//! `initial_resource_versions` is sent only what differs.
//!
//! * Subscriptions are deltas: `resource_names_subscribe` /
//!   `_unsubscribe` apply whatever the nonce (they are never repeated).
//! * ACK/NACK by nonce. After a NACK the client keeps what it had; the
//!   rejected version of a resource is not sent again, the next one is.
//! * The first request of each type is answered, possibly with nothing.
//! * A name subscribed to that the node's configuration lacks is sent once
//!   in `removed_resources` (the delta protocol's "does not exist") and in
//!   `resource_errors` as NOT_FOUND (xRFC TP3), at once, so a client
//!   fails fast instead of waiting out its timer; again only after it has
//!   existed and gone. Wildcard subscribers are told nothing of names they
//!   did not name.
//! * Make-before-break as in state of the world: [`ResourceType::ALL`]
//!   order, one response in flight per type, dependencies ACKed first
//!   ([`super::waits_for`]); removals are sent only once every type carries
//!   the new state and nothing is in flight, most dependent type first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bootes_proto::envoy::discovery::DeltaDiscoveryRequest;
use bootes_proto::ResourceType;

use super::response::{Encoded, NameError, ResponseCache, Step};
use super::{Effects, Nack, TypeReport};
use crate::held::Held;
use crate::schedule::{Memo, Scheduled, TypeStep};
use crate::snapshots::{Resource, Snapshot};

/// What is held once `response` is applied.
fn after(held: &Held, response: &Encoded) -> Arc<Held> {
    let mut versions = held.versions.clone();
    for r in &response.resources {
        versions.insert(r.name.clone(), r.version.clone());
    }
    for name in &response.removed {
        versions.remove(name);
    }
    Held::new(versions)
}

#[derive(Debug)]
struct InFlight {
    response: Arc<Encoded>,
    /// What the client held before this response.
    previous: Arc<Held>,
}

#[derive(Debug)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    /// What the client has.
    client: Arc<Held>,
    in_flight: Option<InFlight>,
    must_answer: bool,
    /// Versions the client rejected, not to be sent again.
    rejected: BTreeMap<String, String>,
    /// Names subscribed to that the client was told do not exist.
    told_missing: BTreeSet<String>,
    nack: Option<Nack>,
    memo: Memo,
}

impl Default for TypeState {
    fn default() -> Self {
        Self {
            wildcard: false,
            names: BTreeSet::new(),
            client: Held::nothing(),
            in_flight: None,
            must_answer: false,
            rejected: BTreeMap::new(),
            told_missing: BTreeSet::new(),
            nack: None,
            memo: Memo::default(),
        }
    }
}

impl TypeState {
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// One delta ADS stream.
#[derive(Debug, Default)]
pub struct DeltaStream {
    scheduled: Scheduled<TypeState>,
}

impl DeltaStream {
    pub fn on_snapshot(
        &mut self,
        snapshot: Option<Arc<Snapshot>>,
        cache: &ResponseCache,
    ) -> Effects {
        self.scheduled.on_snapshot(snapshot, cache)
    }

    pub fn on_request(&mut self, req: &DeltaDiscoveryRequest, cache: &ResponseCache) -> Effects {
        let mut effects = Effects::default();
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            effects
                .ignored
                .push(format!("unknown type URL {:?}", req.type_url));
            return effects;
        };
        let first = !self.scheduled.types.contains_key(&ty);
        let state = self.scheduled.types.entry(ty).or_default();
        if first {
            state.must_answer = true;
            // A first request that names nothing is a (legacy) wildcard,
            // except for VHDS: Envoy subscribes there to the namespace of
            // its route configuration without naming it, and asks for each
            // virtual host as a request needs it (`<route config>/<host>`);
            // sending every one would defeat VHDS.
            state.wildcard =
                req.resource_names_subscribe.is_empty() && ty != ResourceType::VirtualHost;
            if !req.initial_resource_versions.is_empty() {
                state.client = Held::new(
                    req.initial_resource_versions
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                );
            }
        }

        if !req.response_nonce.is_empty() {
            let matches = state
                .in_flight
                .as_ref()
                .is_some_and(|f| f.response.nonce == req.response_nonce);
            if matches {
                let flight = state.in_flight.take().expect("checked");
                match &req.error_detail {
                    Some(status) => {
                        // The client kept what it had.
                        state.memo.forget();
                        state.client = flight.previous;
                        for r in &flight.response.resources {
                            state.rejected.insert(r.name.clone(), r.version.clone());
                        }
                        let nack = Nack {
                            ty,
                            version: flight.response.version_info.clone(),
                            detail: status.message.clone(),
                            resources: flight.response.names().map(str::to_owned).collect(),
                            versions: flight.response.versions().map(str::to_owned).collect(),
                        };
                        state.nack = Some(nack.clone());
                        effects.nacks.push(nack);
                    }
                    None => {
                        state.nack = None;
                        effects
                            .acks
                            .push((ty, flight.response.version_info.clone()));
                    }
                }
            } else {
                effects.ignored.push(format!(
                    "{ty}: stale nonce {:?} (its subscription changes still apply)",
                    req.response_nonce
                ));
            }
        }

        if !req.resource_names_subscribe.is_empty() || !req.resource_names_unsubscribe.is_empty() {
            state.memo.forget();
        }
        for name in &req.resource_names_subscribe {
            if name == "*" {
                state.wildcard = true;
            } else {
                state.names.insert(name.clone());
            }
        }
        for name in &req.resource_names_unsubscribe {
            if name == "*" {
                state.wildcard = false;
            } else {
                state.names.remove(name);
                state.told_missing.remove(name);
            }
        }
        // The client forgets what it no longer wants.
        let TypeState {
            client,
            wildcard,
            names,
            ..
        } = state;
        if !*wildcard && client.versions.keys().any(|name| !names.contains(name)) {
            *client = Held::new(
                client
                    .versions
                    .iter()
                    .filter(|(name, _)| names.contains(*name))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect(),
            );
        }

        effects.responses = self.scheduled.next(cache);
        effects
    }

    /// Per-type state of this stream.
    pub fn report(&self) -> BTreeMap<ResourceType, TypeReport> {
        self.scheduled
            .types
            .iter()
            .map(|(ty, s)| {
                // `client` already counts the response in flight; report
                // what the client had before it.
                let acked = s
                    .in_flight
                    .as_ref()
                    .map_or(&s.client, |f| &f.previous)
                    .versions
                    .clone();
                let report = TypeReport {
                    acked_version: bootes_proto::version::of_set(
                        acked.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                    ),
                    acked,
                    pending: s
                        .in_flight
                        .as_ref()
                        .map(|f| f.response.version_info.clone()),
                    nack: s.nack.clone(),
                };
                (*ty, report)
            })
            .collect()
    }
}

impl TypeStep for TypeState {
    fn memo(&mut self) -> &mut Memo {
        &mut self.memo
    }

    fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// New and changed resources.
    fn make(
        &mut self,
        ty: ResourceType,
        target: &Arc<Snapshot>,
        cache: &ResponseCache,
    ) -> Option<Arc<Encoded>> {
        // A wildcard subscriber that rejected nothing needs exactly what any
        // other such stream holding the same needs: computed once for all.
        let (response, held) = if self.wildcard && self.rejected.is_empty() {
            cache.delta_transition(ty, Step::Make, &self.client, target, || {
                updates(ty, self, target, cache)
            })
        } else {
            updates(ty, self, target, cache)
        };
        let response = response.or_else(|| {
            self.must_answer
                .then(|| cache.delta(ty, Vec::new(), Vec::new(), Vec::new()))
        })?;
        for r in &response.resources {
            self.told_missing.remove(&r.name);
        }
        for (name, _) in &response.errors {
            self.told_missing.insert(name.clone());
        }
        Some(send(self, response, held))
    }

    /// What the client has that is gone.
    fn take_apart(
        &mut self,
        ty: ResourceType,
        target: &Arc<Snapshot>,
        cache: &ResponseCache,
    ) -> Option<Arc<Encoded>> {
        // Depends only on what the client holds: shared by every stream
        // holding the same.
        let (response, held) =
            cache.delta_transition(ty, Step::TakeApart, &self.client, target, || {
                let present = target.resources(ty);
                let removed: Vec<String> = self
                    .client
                    .versions
                    .keys()
                    .filter(|name| present.is_none_or(|p| !p.contains_key(*name)))
                    .cloned()
                    .collect();
                if removed.is_empty() {
                    return (None, self.client.clone());
                }
                let response = cache.delta(ty, Vec::new(), removed, Vec::new());
                let held = after(&self.client, &response);
                (Some(response), held)
            });
        let response = response?;
        for name in &response.removed {
            self.rejected.remove(name);
            // Gone: that is what a subscriber of the name was told.
            if self.names.contains(name) {
                self.told_missing.insert(name.clone());
            }
        }
        Some(send(self, response, held))
    }
}

/// The update a type's client needs, and what it holds after it.
fn updates(
    ty: ResourceType,
    state: &TypeState,
    target: &Snapshot,
    cache: &ResponseCache,
) -> (Option<Arc<Encoded>>, Arc<Held>) {
    let updates: Vec<Arc<Resource>> = target
        .resources(ty)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|r| state.wants(&r.name))
        .filter(|r| state.client.versions.get(&r.name) != Some(&r.version))
        .filter(|r| state.rejected.get(&r.name) != Some(&r.version))
        .cloned()
        .collect();
    let present = target.resources(ty);
    let missing: Vec<String> = if state.wildcard {
        Vec::new()
    } else {
        state
            .names
            .iter()
            .filter(|n| present.is_none_or(|p| !p.contains_key(*n)))
            // One the client holds is removed by the break step, in order.
            .filter(|n| !state.client.versions.contains_key(*n))
            .filter(|n| !state.told_missing.contains(*n))
            .cloned()
            .collect()
    };
    if updates.is_empty() && missing.is_empty() {
        return (None, state.client.clone());
    }
    let errors = missing
        .iter()
        .map(|n| (n.clone(), NameError::NotFound))
        .collect();
    let response = cache.delta(ty, updates, missing, errors);
    let held = after(&state.client, &response);
    (Some(response), held)
}

fn send(state: &mut TypeState, response: Arc<Encoded>, held: Arc<Held>) -> Arc<Encoded> {
    let previous = std::mem::replace(&mut state.client, held);
    state.must_answer = false;
    state.in_flight = Some(InFlight {
        response: response.clone(),
        previous,
    });
    response
}

#[cfg(test)]
mod tests;
