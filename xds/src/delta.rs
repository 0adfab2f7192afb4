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
//! * Make-before-break as in state of the world: [`ResourceType::ALL`]
//!   order, one response in flight per type, dependencies ACKed first
//!   ([`super::waits_for`]); removals are sent only once every type carries
//!   the new state and nothing is in flight, most dependent type first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bootes_proto::envoy::discovery::DeltaDiscoveryRequest;
use bootes_proto::{version, ResourceType};

use super::response::{Encoded, ResponseCache};
use super::{Effects, Nack, TypeReport};
use crate::snapshots::{Resource, Snapshot};

#[derive(Debug)]
struct InFlight {
    response: Arc<Encoded>,
    /// What the client had, before this response, of every name it touches.
    previous: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    /// What the client has: name → version.
    client: BTreeMap<String, String>,
    in_flight: Option<InFlight>,
    must_answer: bool,
    /// Versions the client rejected, not to be sent again.
    rejected: BTreeMap<String, String>,
    nack: Option<Nack>,
    /// The target (by [`DeltaStream::generation`]) for which the client is
    /// known to need no update, and to hold nothing to remove: an ACK then
    /// costs no scan of the resources. Forgotten when the client's state or
    /// subscription changes other than by an ACK.
    needs_nothing: Option<u64>,
    removes_nothing: Option<u64>,
}

impl TypeState {
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// One delta ADS stream.
#[derive(Debug, Default)]
pub struct DeltaStream {
    types: BTreeMap<ResourceType, TypeState>,
    target: Option<Arc<Snapshot>>,
    /// Counts target changes: what the per-type memos refer to.
    generation: u64,
}

impl DeltaStream {
    pub fn on_snapshot(
        &mut self,
        snapshot: Option<Arc<Snapshot>>,
        cache: &ResponseCache,
    ) -> Effects {
        if !super::replace_target(&mut self.target, snapshot) {
            return Effects::default();
        }
        self.generation += 1;
        Effects {
            responses: self.schedule(cache),
            ..Default::default()
        }
    }

    pub fn on_request(&mut self, req: &DeltaDiscoveryRequest, cache: &ResponseCache) -> Effects {
        let mut effects = Effects::default();
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            effects
                .ignored
                .push(format!("unknown type URL {:?}", req.type_url));
            return effects;
        };
        let first = !self.types.contains_key(&ty);
        let state = self.types.entry(ty).or_default();
        if first {
            state.must_answer = true;
            // A first request that names nothing is a (legacy) wildcard.
            state.wildcard = req.resource_names_subscribe.is_empty();
            state.client = req
                .initial_resource_versions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
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
                        state.needs_nothing = None;
                        state.removes_nothing = None;
                        for (name, previous) in flight.previous {
                            match previous {
                                Some(v) => state.client.insert(name, v),
                                None => state.client.remove(&name),
                            };
                        }
                        for r in &flight.response.resources {
                            state.rejected.insert(r.name.clone(), r.version.clone());
                        }
                        let nack = Nack {
                            ty,
                            version: flight.response.version_info.clone(),
                            detail: status.message.clone(),
                            resources: flight.response.names().map(str::to_owned).collect(),
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
            state.needs_nothing = None;
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
            }
        }
        // The client forgets what it no longer wants.
        let TypeState {
            client,
            wildcard,
            names,
            ..
        } = state;
        if !*wildcard {
            client.retain(|name, _| names.contains(name));
        }

        effects.responses = self.schedule(cache);
        effects
    }

    /// Per-type state of this stream.
    pub fn report(&self) -> BTreeMap<ResourceType, TypeReport> {
        self.types
            .iter()
            .map(|(ty, s)| {
                // `client` already counts the response in flight; report
                // what the client had before it.
                let mut acked = s.client.clone();
                if let Some(flight) = &s.in_flight {
                    for (name, previous) in &flight.previous {
                        match previous {
                            Some(v) => acked.insert(name.clone(), v.clone()),
                            None => acked.remove(name),
                        };
                    }
                }
                let report = TypeReport {
                    acked_version: version::of_set(
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

    fn schedule(&mut self, cache: &ResponseCache) -> Vec<Arc<Encoded>> {
        let Some(target) = self.target.clone() else {
            return Vec::new();
        };
        // Make: new and changed resources, in dependency order.
        let mut unsettled: Vec<ResourceType> = self
            .types
            .iter()
            .filter(|(_, s)| s.in_flight.is_some())
            .map(|(t, _)| *t)
            .collect();
        let mut out = Vec::new();
        let generation = self.generation;
        for (ty, state) in self.types.iter_mut() {
            if state.in_flight.is_some()
                || super::waits_for(*ty).iter().any(|d| unsettled.contains(d))
            {
                continue;
            }
            if state.needs_nothing == Some(generation) && !state.must_answer {
                continue;
            }
            let updates: Vec<Arc<Resource>> = target
                .resources(*ty)
                .into_iter()
                .flat_map(|m| m.values())
                .filter(|r| state.wants(&r.name))
                .filter(|r| state.client.get(&r.name) != Some(&r.version))
                .filter(|r| state.rejected.get(&r.name) != Some(&r.version))
                .cloned()
                .collect();
            // Once sent, the client has (or rejected) every update: until
            // its state changes otherwise, the next scan would find none.
            state.needs_nothing = Some(generation);
            if state.must_answer || !updates.is_empty() {
                out.push(send(state, cache.delta(*ty, updates, Vec::new())));
                unsettled.push(*ty);
            }
        }
        if !unsettled.is_empty() {
            return out;
        }
        // Break: what the client has that is gone, most dependent type first.
        for (ty, state) in self.types.iter_mut().rev() {
            if state.removes_nothing == Some(generation) {
                continue;
            }
            let present = target.resources(*ty);
            let removed: Vec<String> = state
                .client
                .keys()
                .filter(|name| present.is_none_or(|p| !p.contains_key(*name)))
                .cloned()
                .collect();
            // After this removal the client holds nothing the target lacks.
            state.removes_nothing = Some(generation);
            if !removed.is_empty() {
                return vec![send(state, cache.delta(*ty, Vec::new(), removed))];
            }
        }
        Vec::new()
    }
}

fn send(state: &mut TypeState, response: Arc<Encoded>) -> Arc<Encoded> {
    let mut previous = BTreeMap::new();
    for r in &response.resources {
        previous.insert(
            r.name.clone(),
            state.client.insert(r.name.clone(), r.version.clone()),
        );
    }
    for name in &response.removed {
        previous.insert(name.clone(), state.client.remove(name));
        state.rejected.remove(name);
    }
    state.must_answer = false;
    state.in_flight = Some(InFlight {
        response: response.clone(),
        previous,
    });
    response
}

#[cfg(test)]
mod tests;
