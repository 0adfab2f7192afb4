//! The one make-before-break scheduler, shared by the state-of-the-world and
//! delta state machines; each says, per type, what "make" and "break" send.
//!
//! * Make: types in the order of [`ResourceType::ALL`] (CDS, EDS, …, LDS,
//!   RDS), at most one response in flight per type, and a type waits while a
//!   type it depends on ([`crate::waits_for`]) is unsettled (in flight, or
//!   being sent now).
//! * Break: once every type carries the new state and nothing is in flight,
//!   what disappeared is removed, most dependent type first, one response at
//!   a time.
//!
//! A type remembers ([`Memo`]) the target for which its make and break
//! steps found nothing (more) to send: both are functions of the target, the
//! subscription and what the client holds, so until one of those changes
//! other than through the step itself, an ACK costs no scan of the type's
//! resources. A state machine forgets the memo when the subscription or the
//! client's holdings change otherwise (a NACK, say).

use std::collections::BTreeMap;
use std::sync::Arc;

use bootes_proto::ResourceType;

use crate::response::{Encoded, ResponseCache};
use crate::snapshots::Snapshot;
use crate::Effects;

/// The target generation (see [`schedule`]) at which a type's steps were
/// last run: once run, a step has nothing more to send for that target.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    made: Option<u64>,
    taken_apart: Option<u64>,
}

impl Memo {
    /// The steps must run again (the subscription or what the client holds
    /// changed).
    pub(crate) fn forget(&mut self) {
        *self = Self::default();
    }
}

/// One type's state, as the scheduler sees it.
pub(crate) trait TypeStep {
    fn memo(&mut self) -> &mut Memo;
    /// A response of this type is waiting for its ACK or NACK.
    fn in_flight(&self) -> bool;
    /// The response bringing this type to `target` (keeping what other
    /// types may still refer to), if one is due; marks it sent.
    fn make(
        &mut self,
        ty: ResourceType,
        target: &Arc<Snapshot>,
        cache: &ResponseCache,
    ) -> Option<Arc<Encoded>>;
    /// The response removing what `target` no longer has, if any; marks it
    /// sent.
    fn take_apart(
        &mut self,
        ty: ResourceType,
        target: &Arc<Snapshot>,
        cache: &ResponseCache,
    ) -> Option<Arc<Encoded>>;
}

/// A stream's per-type states and the snapshot they are brought to: what the
/// state-of-the-world and delta machines share.
#[derive(Debug)]
pub(crate) struct Scheduled<S> {
    pub(crate) types: BTreeMap<ResourceType, S>,
    target: Option<Arc<Snapshot>>,
    /// Counts target changes (what [`Memo`]s refer to).
    generation: u64,
}

impl<S> Default for Scheduled<S> {
    fn default() -> Self {
        Self {
            types: BTreeMap::new(),
            target: None,
            generation: 0,
        }
    }
}

impl<S: TypeStep> Scheduled<S> {
    /// A new snapshot for the node (or none: it has no binding, and the
    /// stream waits with what it has): what to send for it.
    pub(crate) fn on_snapshot(
        &mut self,
        snapshot: Option<Arc<Snapshot>>,
        cache: &ResponseCache,
    ) -> Effects {
        let same = match (&self.target, &snapshot) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        self.target = snapshot;
        if same {
            // Nothing to reconsider.
            return Effects::default();
        }
        self.generation += 1;
        Effects {
            responses: self.next(cache),
            ..Default::default()
        }
    }

    /// What to send next, in make-before-break order.
    pub(crate) fn next(&mut self, cache: &ResponseCache) -> Vec<Arc<Encoded>> {
        let Some(target) = self.target.clone() else {
            return Vec::new();
        };
        schedule(&mut self.types, &target, self.generation, cache)
    }
}

/// What to send next, in make-before-break order. `generation` identifies
/// `target`: the stream counts its target changes.
fn schedule<S: TypeStep>(
    types: &mut BTreeMap<ResourceType, S>,
    target: &Arc<Snapshot>,
    generation: u64,
    cache: &ResponseCache,
) -> Vec<Arc<Encoded>> {
    let mut unsettled: Vec<ResourceType> = types
        .iter()
        .filter(|(_, s)| s.in_flight())
        .map(|(t, _)| *t)
        .collect();
    let mut out = Vec::new();
    for (ty, state) in types.iter_mut() {
        if state.in_flight()
            || state.memo().made == Some(generation)
            || crate::waits_for(*ty).iter().any(|d| unsettled.contains(d))
        {
            continue;
        }
        // Whether it sends or not, running it again for this target would
        // find nothing more.
        state.memo().made = Some(generation);
        if let Some(response) = state.make(*ty, target, cache) {
            // What the client holds changed: the break step runs again.
            state.memo().taken_apart = None;
            out.push(response);
            unsettled.push(*ty);
        }
    }
    if !unsettled.is_empty() {
        return out;
    }
    for (ty, state) in types.iter_mut().rev() {
        if state.memo().taken_apart == Some(generation) {
            continue;
        }
        state.memo().taken_apart = Some(generation);
        if let Some(response) = state.take_apart(*ty, target, cache) {
            return vec![response];
        }
    }
    Vec::new()
}
