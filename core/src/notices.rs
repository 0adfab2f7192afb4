//! Transitions of an object's status that an operator should hear about (in
//! Kubernetes mode, Events), and the gate that aggregates and rate-limits
//! them so a flapping fleet cannot flood whoever receives them.
//!
//! [`notices`] compares two statuses of one object; the words come from
//! [`crate::conditions`], so an Event says what the condition says.
//! [`Gate`] lets at most one notice per object and reason through per
//! interval (the latest one, with how many it stands for), and at most a
//! global rate of them; nothing is dropped, only held and counted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bootes_envoy::convert::ConfigError;

use crate::conditions::{self, join_errors};
use crate::model::ObjectKey;
use crate::verdict::{ObjectStatus, Reason, Verdict};

/// Where slice warnings are reported (see `service_endpoints`).
const SERVICE_PATH: &str = "spec.service";

/// One transition worth telling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Warning, else Normal.
    pub warning: bool,
    /// CamelCase: `InvalidConfig`, `TooLarge`, `Conflict`,
    /// `MalformedEndpointSlice`, `Rejected`, `Programmed`.
    pub reason: &'static str,
    /// What Bootes was doing: `Validate` or `Rollout`.
    pub action: &'static str,
    pub message: String,
}

/// What changed from `before` (`None`: the object is new) to `after`:
/// rejected by validation (a new invalid generation or reason), a conflict
/// that begins, EndpointSlice warnings that change, rejected by an Envoy (a
/// generation's rollout that turns Rejected), and programmed after a
/// rollout (a generation that becomes Programmed after being seen not so;
/// a new object's first status is not a rollout seen).
pub fn notices(before: Option<&ObjectStatus>, after: &ObjectStatus) -> Vec<Notice> {
    let mut out = Vec::new();
    let validate = |warning, reason, message| Notice {
        warning,
        reason,
        action: "Validate",
        message,
    };
    let new_generation = before.is_none_or(|b| b.observed_generation != after.observed_generation);
    let reason = after.verdict.reason();
    let reason_changed = before.is_none_or(|b| b.verdict.reason() != reason);
    match reason {
        Reason::InvalidConfig
        | Reason::TooLarge
        | Reason::EnvoyRejected
        | Reason::EnvoyUnavailable
            if reason_changed || new_generation =>
        {
            out.push(validate(
                true,
                reason.as_str(),
                conditions::accepted_message(&after.verdict),
            ));
        }
        Reason::Conflict if reason_changed => out.push(validate(
            true,
            reason.as_str(),
            conditions::accepted_message(&after.verdict),
        )),
        _ => {}
    }
    let slices = slice_warnings(&after.verdict);
    if !slices.is_empty() && before.is_none_or(|b| slice_warnings(&b.verdict) != slices) {
        out.push(validate(
            true,
            "MalformedEndpointSlice",
            join_errors(slices),
        ));
    }
    if let Some(said) = conditions::programmed(after) {
        let generation = after.rollout.as_ref().map(|r| r.generation);
        let was = before.and_then(|b| {
            let said = conditions::programmed(b)?;
            Some((said.reason, b.rollout.as_ref().map(|r| r.generation)))
        });
        let same = |reason: &str| was.is_some_and(|w| w == (reason, generation));
        let rollout = |warning, reason, message| Notice {
            warning,
            reason,
            action: "Rollout",
            message,
        };
        if said.reason == "Rejected" && !same("Rejected") {
            out.push(rollout(true, "Rejected", said.message));
        } else if said.ok && was.is_some() && !same(said.reason) {
            out.push(rollout(false, said.reason, said.message));
        }
    }
    out
}

/// The warnings about EndpointSlices of a valid object.
fn slice_warnings(verdict: &Verdict) -> Vec<&ConfigError> {
    match verdict {
        Verdict::Valid { warnings } => warnings.iter().filter(|w| w.path == SERVICE_PATH).collect(),
        _ => Vec::new(),
    }
}

/// A notice let through, with how many notices of its object and reason it
/// stands for (itself and those held back since the last one let through).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    pub object: ObjectKey,
    pub notice: Notice,
    pub count: u32,
}

impl Released {
    /// The message, saying how many times it happened when more than once.
    pub fn message(&self) -> String {
        if self.count > 1 {
            format!(
                "{} ({} times since the last event)",
                self.notice.message, self.count
            )
        } else {
            self.notice.message.clone()
        }
    }
}

/// Aggregates and rate-limits notices (pure: the caller passes the time).
#[derive(Debug)]
pub struct Gate {
    /// At most one notice per object and reason per this long.
    interval: Duration,
    /// And at most this many per second overall, in bursts of `burst`.
    per_second: f64,
    burst: f64,
    tokens: f64,
    refilled: Option<Instant>,
    slots: HashMap<(ObjectKey, &'static str), Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    released_at: Option<Instant>,
    /// The latest notice not let through yet, and how many it stands for.
    held: Option<(Notice, u32)>,
}

impl Gate {
    pub fn new(interval: Duration, per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            interval,
            per_second,
            burst,
            tokens: burst,
            refilled: None,
            slots: HashMap::new(),
        }
    }

    /// Holds `notice` about `object` until [`Gate::release`] lets it
    /// through; a later notice of the same reason replaces it and is
    /// counted.
    pub fn offer(&mut self, object: &ObjectKey, notice: Notice) {
        let slot = self
            .slots
            .entry((object.clone(), notice.reason))
            .or_default();
        let count = slot.held.as_ref().map_or(0, |(_, n)| *n);
        slot.held = Some((notice, count + 1));
    }

    /// Forgets an object (deleted).
    pub fn forget(&mut self, object: &ObjectKey) {
        self.slots.retain(|(o, _), _| o != object);
    }

    /// The held notices that may go out at `now`, oldest release first.
    pub fn release(&mut self, now: Instant) -> Vec<Released> {
        if let Some(at) = self.refilled {
            let earned = now.saturating_duration_since(at).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + earned).min(self.burst);
        }
        self.refilled = Some(now);
        let interval = self.interval;
        let mut ready: Vec<(&(ObjectKey, &'static str), &mut Slot)> = self
            .slots
            .iter_mut()
            .filter(|(_, s)| s.held.is_some() && s.released_at.is_none_or(|t| t + interval <= now))
            .collect();
        // Only as many as there are tokens for: the longest waiting.
        let allowed = self.tokens.floor() as usize;
        if ready.len() > allowed {
            if allowed == 0 {
                ready.clear();
            } else {
                ready.select_nth_unstable_by_key(allowed - 1, |(k, s)| {
                    (s.released_at, (*k).clone())
                });
                ready.truncate(allowed);
            }
        }
        ready.sort_by_key(|(k, s)| (s.released_at, (*k).clone()));
        let mut out = Vec::new();
        for ((object, _), slot) in ready {
            self.tokens -= 1.0;
            let Some((notice, count)) = slot.held.take() else {
                continue;
            };
            slot.released_at = Some(now);
            out.push(Released {
                object: object.clone(),
                notice,
                count,
            });
        }
        self.slots
            .retain(|_, s| s.held.is_some() || s.released_at.is_some_and(|t| t + interval > now));
        out
    }

    /// When [`Gate::release`] may next let something through (`None`:
    /// nothing is held).
    pub fn next_release(&self, now: Instant) -> Option<Instant> {
        let slot_due = self
            .slots
            .values()
            .filter(|s| s.held.is_some())
            .map(|s| s.released_at.map_or(now, |t| t + self.interval))
            .min()?;
        let token_due = if self.tokens >= 1.0 || self.per_second <= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
        };
        Some(slot_due.max(token_due))
    }
}

#[cfg(test)]
mod tests;
