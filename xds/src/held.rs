//! What a delta client holds of one type. Between the delta state machine,
//! which moves it, and the response cache, which shares transitions between
//! streams by it: a module of its own, so neither needs the other.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// What a client holds of one type: name → version. Never changed in
/// place: a change makes a new one, so streams that went through the same
/// changes share one (see `ResponseCache::delta_transition`), and a
/// response in flight keeps what was held before it for a NACK.
#[derive(Debug)]
pub(crate) struct Held {
    /// Unique in this process: what shared transitions are keyed by.
    id: u64,
    pub(crate) versions: BTreeMap<String, String>,
}

impl Held {
    pub(crate) fn new(versions: BTreeMap<String, String>) -> Arc<Self> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Arc::new(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            versions,
        })
    }

    /// Nothing, shared by every stream that starts with nothing.
    pub(crate) fn nothing() -> Arc<Self> {
        static NOTHING: OnceLock<Arc<Held>> = OnceLock::new();
        NOTHING.get_or_init(|| Held::new(BTreeMap::new())).clone()
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}
