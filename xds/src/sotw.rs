//! State-of-the-world ADS, one stream.
//!
//! Rules (Envoy's xDS protocol documentation):
//! * The first request of each type on a stream is answered, unless its
//!   `version_info` is exactly the version of the response it would get: a
//!   response version is a hash of precisely the (name, version) pairs it
//!   carries, so a client reconnecting (to this replica or another) with that
//!   version has all of it, and nothing is resent. A client that is still
//!   warming subscribes to names its last response lacked, so it claims a
//!   different version and is answered.
//! * ACK/NACK by nonce; a request whose nonce is not the last one sent for
//!   its type is stale and ignored. A NACKed version is not sent again; the
//!   next different version is.
//! * A version is never pushed twice on one stream.
//! * A name subscribed to that the node's configuration lacks is reported
//!   in the response's `resource_errors` as NOT_FOUND (xRFC TP3), at once;
//!   such names count in the response's version. Wildcard subscribers get
//!   no errors.
//! * Make-before-break: responses go out in the order of
//!   [`ResourceType::ALL`] (CDS, EDS, …, LDS, RDS), at most one in flight per
//!   type, and a type waits for the ACKs of the types it depends on
//!   ([`super::waits_for`]; the scheduler is `schedule`). While a change is being made, clusters and
//!   listeners that disappear stay in the full-state responses; they are
//!   removed only once every type carries the new state and nothing is in
//!   flight, in reverse order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bootes_proto::envoy::discovery::DiscoveryRequest;
use bootes_proto::ResourceType;

use super::response::{Encoded, NameError, NameErrors, ResourceSet, ResponseCache};
use super::{Effects, Nack, TypeReport};
use crate::schedule::{Memo, Scheduled, TypeStep};
use crate::snapshots::{Resource, Snapshot};

/// What a client subscribed to for one type.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Subscription {
    /// Everything (an empty first request, or `*`), plus any explicit names.
    Wildcard,
    Names(BTreeSet<String>),
}

impl Subscription {
    fn wants(&self, name: &str) -> bool {
        match self {
            Subscription::Wildcard => true,
            Subscription::Names(names) => names.contains(name),
        }
    }
}

#[derive(Debug)]
struct TypeState {
    subscription: Subscription,
    /// The last response sent for this type.
    sent: Option<Arc<Encoded>>,
    /// Sent and neither ACKed nor NACKed yet.
    in_flight: bool,
    /// A first request that has not been answered yet.
    must_answer: bool,
    /// The `version_info` of the first request: what the client says it has.
    claimed: Option<String>,
    /// Whether a response of this type was sent on this stream (until then
    /// the client has no nonce to send back).
    answered: bool,
    /// The last response the client ACKed.
    acked: Option<Arc<Encoded>>,
    nack: Option<Nack>,
    memo: Memo,
}

/// One state-of-the-world ADS stream.
#[derive(Debug, Default)]
pub struct SotwStream {
    scheduled: Scheduled<TypeState>,
}

impl SotwStream {
    /// A new snapshot for this node (or none: the node has no binding, and
    /// the stream waits with what it has).
    pub fn on_snapshot(
        &mut self,
        snapshot: Option<Arc<Snapshot>>,
        cache: &ResponseCache,
    ) -> Effects {
        self.scheduled.on_snapshot(snapshot, cache)
    }

    /// A request from the client (after [`crate::Identity::identify`]).
    pub fn on_request(&mut self, req: &DiscoveryRequest, cache: &ResponseCache) -> Effects {
        let mut effects = Effects::default();
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            effects
                .ignored
                .push(format!("unknown type URL {:?}", req.type_url));
            return effects;
        };
        let names: BTreeSet<String> = req.resource_names.iter().cloned().collect();
        let state = self.scheduled.types.entry(ty).or_insert_with(|| TypeState {
            // An empty first request is a (legacy) wildcard subscription.
            subscription: Subscription::Wildcard,
            sent: None,
            in_flight: false,
            must_answer: true,
            claimed: Some(req.version_info.clone()).filter(|v| !v.is_empty()),
            answered: false,
            acked: None,
            nack: None,
            memo: Memo::default(),
        });

        if let Some(sent) = state.sent.as_ref().filter(|_| state.answered) {
            if req.response_nonce != sent.nonce {
                // A reply to an older response, or a nonce this stream never
                // sent: its subscription is out of date, ignore it.
                effects.ignored.push(format!(
                    "{ty}: stale nonce {:?} (latest {:?})",
                    req.response_nonce, sent.nonce
                ));
                return effects;
            }
            if state.in_flight {
                state.in_flight = false;
                match &req.error_detail {
                    Some(status) => {
                        let nack = Nack {
                            ty,
                            version: sent.version_info.clone(),
                            detail: status.message.clone(),
                            resources: sent.names().map(str::to_owned).collect(),
                            versions: sent.versions().map(str::to_owned).collect(),
                        };
                        state.nack = Some(nack.clone());
                        effects.nacks.push(nack);
                    }
                    None => {
                        state.acked = Some(sent.clone());
                        state.nack = None;
                        effects.acks.push((ty, sent.version_info.clone()));
                    }
                }
            }
        }

        let subscription = if names.contains("*") {
            Subscription::Wildcard
        } else if names.is_empty() && state.subscription == Subscription::Wildcard {
            // Legacy wildcard clients keep sending empty names.
            Subscription::Wildcard
        } else {
            Subscription::Names(names)
        };
        // Clients repeat their subscription with every ACK: only a
        // different one makes the steps run again.
        if subscription != state.subscription {
            state.subscription = subscription;
            state.memo.forget();
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
                let report = TypeReport {
                    acked: s
                        .acked
                        .iter()
                        .flat_map(|e| e.resources.iter())
                        .map(|r| (r.name.clone(), r.version.clone()))
                        .collect(),
                    // A response's version is the set version of what it carries.
                    acked_version: s.acked.as_ref().map_or_else(
                        || bootes_proto::version::of_set(std::iter::empty()),
                        |e| e.version_info.clone(),
                    ),
                    pending: s
                        .sent
                        .as_ref()
                        .filter(|_| s.in_flight)
                        .map(|e| e.version_info.clone()),
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
        self.in_flight
    }

    /// Brings the type to the new state, keeping what disappears.
    fn make(
        &mut self,
        ty: ResourceType,
        target: &Arc<Snapshot>,
        cache: &ResponseCache,
    ) -> Option<Arc<Encoded>> {
        let (version, set) = plan(ty, self, target);
        let changed = self.sent.as_ref().is_none_or(|s| s.version_info != version);
        if !(self.must_answer || changed) {
            return None;
        }
        let response = cache.state_of_the_world_with(ty, version, || {
            set.map_or_else(
                || {
                    let resources = make_set(ty, self, target);
                    let errors = not_found(self, &resources);
                    (resources, errors)
                },
                |s| (s.resources, s.errors),
            )
        });
        if !self.answered && self.claimed.as_ref() == Some(&response.version_info) {
            // The client has exactly this already (it reconnected).
            self.must_answer = false;
            self.acked = Some(response.clone());
            self.sent = Some(response);
            return None;
        }
        Some(send(self, response))
    }

    /// Drops what was kept.
    fn take_apart(
        &mut self,
        ty: ResourceType,
        target: &Arc<Snapshot>,
        cache: &ResponseCache,
    ) -> Option<Arc<Encoded>> {
        let sent = self.sent.as_ref()?;
        if self.subscription == Subscription::Wildcard
            && sent.version_info == target.set_version(ty)
        {
            // It holds exactly the target's set: nothing kept.
            return None;
        }
        let resources = exact_set(ty, self, target);
        let errors = not_found(self, &resources);
        let set = ResourceSet::with_errors(resources, errors);
        self.sent
            .as_ref()
            .is_some_and(|s| s.version_info != set.version)
            .then(|| send(self, cache.state_of_the_world(ty, set)))
    }
}

fn send(state: &mut TypeState, response: Arc<Encoded>) -> Arc<Encoded> {
    state.in_flight = true;
    state.must_answer = false;
    state.answered = true;
    state.sent = Some(response.clone());
    response
}

/// The version of what the make step would send for a type, and the set
/// when it had to be built to know it. A stream subscribed to the whole
/// type that keeps nothing takes the snapshot's set version, hashed once for
/// every stream; the set is built only if the response must be encoded.
fn plan(ty: ResourceType, state: &TypeState, target: &Snapshot) -> (String, Option<ResourceSet>) {
    if state.subscription == Subscription::Wildcard && !keeps(ty, state, target) {
        return (target.set_version(ty).to_string(), None);
    }
    let resources = make_set(ty, state, target);
    let errors = not_found(state, &resources);
    let set = ResourceSet::with_errors(resources, errors);
    (set.version.clone(), Some(set))
}

/// The names a subscription asks for that `set` (sorted by name) lacks:
/// reported NOT_FOUND at once (xRFC TP3), so a client fails fast instead of
/// waiting out its timer. A wildcard subscriber named nothing and is told
/// nothing.
fn not_found(state: &TypeState, set: &[Arc<Resource>]) -> NameErrors {
    let Subscription::Names(names) = &state.subscription else {
        return Vec::new();
    };
    names
        .iter()
        .filter(|n| {
            set.binary_search_by(|r| r.name.as_str().cmp(n.as_str()))
                .is_err()
        })
        .map(|n| (n.clone(), NameError::NotFound))
        .collect()
}

/// Whether [`make_set`] keeps resources of the last response that `target`
/// no longer has. Both are sorted by name: one merge walk, no lookups.
fn keeps(ty: ResourceType, state: &TypeState, target: &Snapshot) -> bool {
    let Some(sent) = state.sent.as_ref().filter(|_| ty.sotw_full_state()) else {
        return false;
    };
    if sent.version_info == target.set_version(ty) {
        return false;
    }
    let mut present = target.resources(ty).into_iter().flat_map(|m| m.keys());
    let mut next = present.next();
    sent.names()
        .filter(|name| state.subscription.wants(name))
        .any(|name| {
            while next.is_some_and(|p| p.as_str() < name) {
                next = present.next();
            }
            next.is_none_or(|p| p != name)
        })
}

/// The resources of `ty` in `target` that the subscription asks for.
fn exact_set(ty: ResourceType, state: &TypeState, target: &Snapshot) -> Vec<Arc<Resource>> {
    target
        .resources(ty)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|r| state.subscription.wants(&r.name))
        .cloned()
        .collect()
}

/// [`exact_set`], plus, for full-state types, the resources of the last
/// response that the target no longer has: removing them now could break a
/// reference from a type not yet updated.
fn make_set(ty: ResourceType, state: &TypeState, target: &Snapshot) -> Vec<Arc<Resource>> {
    let mut set = exact_set(ty, state, target);
    if ty.sotw_full_state() {
        if let Some(sent) = &state.sent {
            let present = target.resources(ty);
            let kept = sent
                .resources
                .iter()
                .filter(|r| present.is_none_or(|p| !p.contains_key(&r.name)))
                .filter(|r| state.subscription.wants(&r.name));
            set.extend(kept.cloned());
            set.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }
    set
}

#[cfg(test)]
mod tests;
