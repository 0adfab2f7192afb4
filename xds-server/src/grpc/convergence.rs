//! Per stream: how long from a snapshot change arriving at this replica
//! (its etcd revision applied) to the stream's ACK of what it changed, by
//! type (`bootes_xds_ack_convergence_seconds`).
//!
//! A response sent because of a change starts the clock for its type; a
//! response sent later for the same change (make-before-break releasing
//! listeners and routes on the CDS ACK, or a newer change before the ACK)
//! keeps the earliest start, so the figure is the whole convergence the
//! client saw. A response with no change in flight (the first ones of a
//! stream, or a new subscription) starts no clock. A NACK stops it unmeasured.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bootes_proto::ResourceType;

#[derive(Debug, Default)]
pub struct Convergence {
    /// Per type: the version awaiting an ACK, and when its change arrived.
    waiting: HashMap<ResourceType, (String, Instant)>,
}

impl Convergence {
    /// A response of `ty` with `version` was sent; `change` is when the
    /// change that caused it arrived, if a change caused it.
    pub fn sent(&mut self, ty: ResourceType, version: &str, change: Option<Instant>) {
        let start = change.or_else(|| self.waiting.values().map(|(_, at)| *at).min());
        let Some(start) = start else { return };
        let entry = self
            .waiting
            .entry(ty)
            .or_insert_with(|| (String::new(), start));
        entry.0 = version.to_string();
        entry.1 = entry.1.min(start);
    }

    /// The client ACKed `version` of `ty`: how long since its change arrived.
    pub fn acked(&mut self, ty: ResourceType, version: &str, now: Instant) -> Option<Duration> {
        match self.waiting.get(&ty) {
            Some((v, at)) if v == version => {
                let took = now.saturating_duration_since(*at);
                self.waiting.remove(&ty);
                Some(took)
            }
            _ => None,
        }
    }

    /// The client NACKed `version` of `ty`: that change did not converge.
    pub fn nacked(&mut self, ty: ResourceType, version: &str) {
        if self.waiting.get(&ty).is_some_and(|(v, _)| v == version) {
            self.waiting.remove(&ty);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_the_change_to_the_ack_of_each_type() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = Convergence::default();
        // A stream's first responses are no change: nothing measured.
        c.sent(ResourceType::Cluster, "v0", None);
        assert_eq!(c.acked(ResourceType::Cluster, "v0", t0), None);
        // A change at t0: CDS now, LDS once CDS is ACKed (make-before-break).
        c.sent(ResourceType::Cluster, "c1", Some(t0));
        assert_eq!(c.acked(ResourceType::Cluster, "old", t0 + ms(5)), None);
        assert_eq!(
            c.acked(ResourceType::Cluster, "c1", t0 + ms(10)),
            Some(ms(10))
        );
        // Nothing of that change waits any more: a response now is not one.
        c.sent(ResourceType::Listener, "l1", None);
        assert_eq!(c.acked(ResourceType::Listener, "l1", t0 + ms(30)), None);
        // Another change: CDS and EDS, then LDS released by the CDS ACK.
        let t1 = t0 + ms(100);
        c.sent(ResourceType::Cluster, "c2", Some(t1));
        c.sent(ResourceType::Endpoint, "e2", Some(t1));
        assert_eq!(
            c.acked(ResourceType::Cluster, "c2", t1 + ms(20)),
            Some(ms(20))
        );
        c.sent(ResourceType::Listener, "l2", None);
        assert_eq!(
            c.acked(ResourceType::Listener, "l2", t1 + ms(40)),
            Some(ms(40))
        );
        // A newer change before the ACK keeps the earlier start.
        let t2 = t1 + ms(200);
        c.sent(ResourceType::Cluster, "c3", Some(t2));
        c.sent(ResourceType::Cluster, "c4", Some(t2 + ms(50)));
        assert_eq!(c.acked(ResourceType::Cluster, "c3", t2 + ms(60)), None);
        assert_eq!(
            c.acked(ResourceType::Cluster, "c4", t2 + ms(70)),
            Some(ms(70))
        );
        // A NACK stops the clock unmeasured.
        c.sent(ResourceType::Cluster, "c5", Some(t2 + ms(100)));
        c.nacked(ResourceType::Cluster, "c5");
        assert_eq!(c.acked(ResourceType::Cluster, "c5", t2 + ms(110)), None);
    }
}
