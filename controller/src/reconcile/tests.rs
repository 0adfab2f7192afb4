//! The reconcile loop against a fake store, in paused (virtual) time:
//! debounce, maximum delay, retry after a failed write, a leadership change
//! in the middle of a write, and a foreign change making it read again.

use std::sync::Mutex;

use bootes_core::model::{BootesObject, Pod};
use bootes_core::plan::{self, Contents, Op, Plan};
use bootes_core::store::WriteStats;
use bootes_proto::{Keys, ResourceType};
use serde_json::json;
use tokio::sync::{watch, Notify};

use super::*;
use bootes_core::status::LogStatus;

/// One write the loop attempted.
#[derive(Debug, Clone)]
struct Attempt {
    at: Instant,
    fence: Option<Fence>,
    ok: bool,
}

type Hook = Box<dyn FnOnce(&mut Fake) + Send>;

/// What the fake store holds and saw.
#[derive(Default)]
struct Fake {
    contents: Contents,
    /// The fence a write must carry (`None`: writes need no fence).
    valid_fence: Option<Fence>,
    /// Writes to fail (as if etcd were unreachable).
    fail: usize,
    loads: usize,
    attempts: Vec<Attempt>,
    /// Runs at the start of the next write.
    on_write: Option<Hook>,
}

struct FakeStore {
    keys: Keys,
    fake: Arc<Mutex<Fake>>,
    foreign: Arc<Notify>,
}

impl SnapshotStore for FakeStore {
    async fn load(&mut self) -> Result<(), StoreError> {
        self.fake.lock().unwrap().loads += 1;
        Ok(())
    }

    fn plan(&self, desired: &bootes_core::index::Desired) -> Plan {
        plan::plan(&self.keys, &self.fake.lock().unwrap().contents, desired)
    }

    async fn write(
        &mut self,
        plan: &Plan,
        fence: Option<&Fence>,
    ) -> Result<WriteStats, StoreError> {
        let mut fake = self.fake.lock().unwrap();
        if let Some(hook) = fake.on_write.take() {
            hook(&mut fake);
        }
        let at = Instant::now();
        let refused = if fake.fail > 0 {
            fake.fail -= 1;
            Some(StoreError::Unavailable("etcd is down".into()))
        } else if fake.valid_fence.is_some() && fake.valid_fence.as_ref() != fence {
            Some(StoreError::NotLeader)
        } else {
            None
        };
        fake.attempts.push(Attempt {
            at,
            fence: fence.cloned(),
            ok: refused.is_none(),
        });
        if let Some(e) = refused {
            return Err(e);
        }
        let mut stats = WriteStats::default();
        for ops in &plan.txns {
            plan::apply(&mut fake.contents, ops);
            stats.txns += 1;
            stats.puts += ops.iter().filter(|o| matches!(o, Op::Put { .. })).count();
        }
        Ok(stats)
    }

    async fn changed(&mut self) {
        self.foreign.notified().await;
    }
}

const FIRST: Duration = Duration::from_millis(20);
const DEBOUNCE: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_millis(500);

struct Harness {
    fake: Arc<Mutex<Fake>>,
    foreign: Arc<Notify>,
    events: mpsc::Sender<SourceEvent>,
    leader: Arc<watch::Sender<Option<Fence>>>,
    start: Instant,
}

impl Harness {
    /// A reconcile loop that leads with `fence(1)` (when `leading`).
    fn start(leading: bool) -> Self {
        let fake = Arc::new(Mutex::new(Fake::default()));
        let foreign = Arc::new(Notify::new());
        let store = FakeStore {
            keys: Keys::default(),
            fake: fake.clone(),
            foreign: foreign.clone(),
        };
        let timing = Timing {
            first: FIRST,
            debounce: DEBOUNCE,
            max_delay: MAX_DELAY,
        };
        let initial = leading.then(|| fence(1));
        fake.lock().unwrap().valid_fence = initial.clone();
        let (leader, leadership) = watch::channel(initial);
        let reconciler = Reconciler::new(Config {
            store,
            status: Box::new(LogStatus::default()),
            timing,
            leadership: Some(leadership),
            bootstrap_clusters: Default::default(),
            synced: Default::default(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            views: None,
            envoy: None,
        });
        let (events, rx) = mpsc::channel(16);
        tokio::spawn(reconciler.run(rx));
        Self {
            fake,
            foreign,
            events,
            leader: Arc::new(leader),
            start: Instant::now(),
        }
    }

    async fn send(&self, event: SourceEvent) {
        self.events.send(event).await.unwrap();
    }

    /// Sends an edit of the cluster (a new connect timeout).
    async fn edit(&self, seconds: u32) {
        self.send(SourceEvent::ApplyObject(cluster(seconds))).await;
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.fake.lock().unwrap().attempts.clone()
    }

    /// Times of the attempts, relative to the start.
    fn times(&self) -> Vec<Duration> {
        self.attempts().iter().map(|a| a.at - self.start).collect()
    }

    /// The connect timeout of the cluster in the stored snapshot (found by
    /// converting each candidate edit and comparing the encoded bytes).
    fn stored_timeout(&self) -> Option<u32> {
        let fake = self.fake.lock().unwrap();
        let key = Keys::default().snapshots();
        let (_, value) = fake.contents.range(key.clone()..).next()?;
        let snap =
            <bootes_proto::store::Snapshot as prost::Message>::decode(value.as_slice()).ok()?;
        let bytes = &snap.types.first()?.resources.first()?.value;
        (1..100).find(|s| {
            let c =
                bootes_envoy::convert::convert(ResourceType::Cluster, &cluster(*s).config).unwrap();
            &c.value == bytes
        })
    }
}

fn fence(revision: i64) -> Fence {
    Fence {
        key: "/bootes/v1/leader".into(),
        create_revision: revision,
    }
}

fn cluster(seconds: u32) -> BootesObject {
    BootesObject {
        key: ObjectKey {
            kind: ResourceType::Cluster,
            namespace: "ns".into(),
            name: "c".into(),
        },
        source: "test".into(),
        uid: "uid-c".into(),
        generation: i64::from(seconds),
        created: None,
        selector: None,
        config: json!({"name": "c", "connect_timeout": format!("{seconds}s"), "type": "EDS",
                       "eds_cluster_config": {"eds_config": {"ads": {}}}}),
        service: None,
    }
}

fn pod() -> Pod {
    Pod {
        namespace: "ns".into(),
        name: "p".into(),
        uid: "uid-p".into(),
        labels: BTreeMap::new(),
        service_account: "default".into(),
    }
}

/// Lets virtual time pass (paused time advances when every task waits).
async fn wait(d: Duration) {
    tokio::time::sleep(d).await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_is_written_once_after_it_quiets_down() {
    let h = Harness::start(true);
    h.send(SourceEvent::ApplyPod(pod())).await;
    h.edit(1).await;
    wait(Duration::from_millis(60)).await;
    h.edit(2).await;
    wait(Duration::from_millis(60)).await;
    h.edit(3).await;
    wait(Duration::from_secs(2)).await;
    // One write, a debounce after the last event (at 120 ms).
    assert_eq!(h.times(), [Duration::from_millis(120) + DEBOUNCE]);
    assert_eq!(
        h.stored_timeout(),
        Some(3),
        "the last edit is what is written"
    );
}

#[tokio::test(start_paused = true)]
async fn a_single_edit_on_a_quiet_controller_is_written_at_once() {
    let h = Harness::start(true);
    h.send(SourceEvent::ApplyPod(pod())).await;
    h.edit(1).await;
    wait(Duration::from_secs(2)).await;
    assert_eq!(h.times(), [DEBOUNCE]);
    // Quiet since: the next edit is written after the short first wait,
    // not a whole debounce later.
    let edited = Instant::now() - h.start;
    h.edit(2).await;
    wait(Duration::from_secs(2)).await;
    assert_eq!(h.times(), [DEBOUNCE, edited + FIRST]);
    assert_eq!(h.stored_timeout(), Some(2));
    // Edits that follow one written early are coalesced for the debounce.
    let edited = Instant::now() - h.start;
    for s in 3..=6 {
        h.edit(s).await;
        wait(Duration::from_millis(40)).await;
    }
    wait(Duration::from_secs(2)).await;
    let times = h.times();
    assert_eq!(
        times[2..],
        [
            edited + FIRST,
            edited + Duration::from_millis(120) + DEBOUNCE
        ]
    );
    assert_eq!(h.stored_timeout(), Some(6));
}

#[tokio::test(start_paused = true)]
async fn a_burst_that_never_quiets_down_is_written_at_the_maximum_delay() {
    let h = Harness::start(true);
    h.send(SourceEvent::ApplyPod(pod())).await;
    for s in 1..=40 {
        h.edit(s).await;
        wait(Duration::from_millis(50)).await;
    }
    let times = h.times();
    // Events every 50 ms never leave the debounce quiet: the first write
    // comes at the maximum delay, and the burst keeps being written.
    assert_eq!(times[0], MAX_DELAY);
    assert!(times.len() >= 3, "{times:?}");
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] <= MAX_DELAY + Duration::from_millis(50),
            "{times:?}"
        );
    }
    wait(Duration::from_secs(2)).await;
    assert_eq!(h.stored_timeout(), Some(40));
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_is_retried_after_reading_the_store_again() {
    let h = Harness::start(true);
    h.fake.lock().unwrap().fail = 1;
    h.send(SourceEvent::ApplyPod(pod())).await;
    h.edit(1).await;
    wait(Duration::from_secs(3)).await;
    let attempts = h.attempts();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(!attempts[0].ok && attempts[1].ok);
    // Retried a second after the failure, having read the store again.
    assert_eq!(attempts[1].at - attempts[0].at, Duration::from_secs(1));
    assert_eq!(h.fake.lock().unwrap().loads, 1);
    assert_eq!(h.stored_timeout(), Some(1));
}

#[tokio::test(start_paused = true)]
async fn losing_leadership_during_a_write_stops_writing_until_it_leads_again() {
    let h = Harness::start(true);
    // While the first write is in flight, another replica takes over: the
    // store refuses the old fence, and this replica learns it lost.
    let leader = h.leader.clone();
    h.fake.lock().unwrap().on_write = Some(Box::new(move |fake: &mut Fake| {
        fake.valid_fence = Some(fence(2));
        leader.send_replace(None);
    }));
    h.send(SourceEvent::ApplyPod(pod())).await;
    h.edit(1).await;
    wait(Duration::from_secs(5)).await;
    let attempts = h.attempts();
    assert_eq!(attempts.len(), 1, "a follower does not write: {attempts:?}");
    assert!(!attempts[0].ok);
    assert_eq!(attempts[0].fence, Some(fence(1)));
    assert_eq!(h.stored_timeout(), None);

    // Leading again (a new term, a new fence): it reads the store and
    // writes at once, with the new fence.
    let before = h.fake.lock().unwrap().loads;
    h.fake.lock().unwrap().valid_fence = Some(fence(3));
    h.leader.send_replace(Some(fence(3)));
    wait(Duration::from_millis(10)).await;
    let attempts = h.attempts();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts[1].ok);
    assert_eq!(attempts[1].fence, Some(fence(3)));
    assert!(h.fake.lock().unwrap().loads > before);
    assert_eq!(h.stored_timeout(), Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_foreign_change_makes_the_leader_read_the_store_and_repair_it() {
    let h = Harness::start(true);
    h.send(SourceEvent::ApplyPod(pod())).await;
    h.edit(1).await;
    wait(Duration::from_secs(1)).await;
    assert_eq!(h.stored_timeout(), Some(1));
    // Someone damages the snapshot; the store notices.
    {
        let mut fake = h.fake.lock().unwrap();
        let key = fake
            .contents
            .keys()
            .find(|k| k.starts_with(&Keys::default().snapshots()))
            .unwrap()
            .clone();
        fake.contents.insert(key, Vec::new());
    }
    let loads = h.fake.lock().unwrap().loads;
    h.foreign.notify_one();
    wait(Duration::from_millis(10)).await;
    assert_eq!(h.fake.lock().unwrap().loads, loads + 1);
    assert_eq!(h.stored_timeout(), Some(1), "the desired snapshot is back");
    assert_eq!(h.attempts().len(), 2);
}
