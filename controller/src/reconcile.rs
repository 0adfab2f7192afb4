//! The reconcile loop: source events into the index, bursts coalesced, the
//! desired state planned and written to etcd, statuses reported.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::leader::Leadership;
use crate::metrics::Metrics;
use bootes_core::envoy_judge::EnvoyOracle;
use bootes_core::index::Index;
use bootes_core::model::ObjectKey;
use bootes_core::report;
use bootes_core::source::SourceEvent;
use bootes_core::status::StatusSink;
use bootes_core::store::{SnapshotStore, StoreError};
use bootes_core::xref::BootstrapClusters;
use bootes_envoy::convert::ConfigError;
use bootes_proto::Fence;
use debounce::{Debounce, Timing};
use envoy_check::EnvoyCheck;

/// Everything a reconcile loop is built from.
pub struct Config<S> {
    /// Where the desired state is written (etcd, or a fake in tests).
    pub store: S,
    /// Where object statuses go.
    pub status: Box<dyn StatusSink>,
    pub timing: Timing,
    /// Leadership, when several replicas run; `None` writes unconditionally.
    pub leadership: Option<Leadership>,
    /// Clusters the Envoys' bootstrap defines (`--bootstrap-clusters`).
    pub bootstrap_clusters: BootstrapClusters,
    /// Set after the first successful write: the readiness signal.
    pub synced: Arc<AtomicBool>,
    /// Prometheus metrics, observed after every sync.
    pub metrics: Arc<Metrics>,
    /// What the admission webhook judges objects against, renewed after
    /// each sync.
    pub views: Option<crate::webhook::Views>,
    /// `--envoy-validate`: an Envoy that judges changed groups before they
    /// are written.
    pub envoy: Option<Arc<dyn EnvoyOracle + Send + Sync>>,
}

pub struct Reconciler<S> {
    index: Index,
    writer: S,
    status: Box<dyn StatusSink>,
    timing: Timing,
    leadership: Option<Leadership>,
    synced: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    views: Option<crate::webhook::Views>,
    /// Problems last logged per object, with the config they were found
    /// in: each is logged once per change of the object.
    logged: BTreeMap<ObjectKey, (serde_json::Value, Vec<ConfigError>)>,
    envoy: Option<EnvoyCheck>,
}

/// How soon a group Envoy gave no verdict on is judged again.
const ENVOY_RETRY: Duration = Duration::from_secs(5);

impl<S: SnapshotStore> Reconciler<S> {
    pub fn new(config: Config<S>) -> Self {
        let mut index = Index::new();
        let envoy = config
            .envoy
            .map(|oracle| EnvoyCheck::new(oracle, config.bootstrap_clusters.clone()));
        index.set_bootstrap_clusters(config.bootstrap_clusters);
        Self {
            index,
            writer: config.store,
            status: config.status,
            timing: config.timing,
            leadership: config.leadership,
            synced: config.synced,
            metrics: config.metrics,
            logged: BTreeMap::new(),
            views: config.views,
            envoy,
        }
    }

    /// Runs until every source is gone.
    pub async fn run(mut self, mut events: mpsc::Receiver<SourceEvent>) {
        let mut debounce = Debounce::new(self.timing);
        let mut retry_at: Option<Instant> = None;
        let mut leadership = self.leadership.clone();
        loop {
            let deadline = debounce.deadline().or(retry_at);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let leader_changed = async {
                match leadership.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { return };
                    self.apply(event);
                    debounce.change(Instant::now());
                }
                () = sleep => {
                    debounce.written();
                    retry_at = match self.sync().await {
                        Ok(false) => None,
                        Ok(true) => Some(Instant::now() + ENVOY_RETRY),
                        Err(e) => {
                            tracing::error!(error = %e, "writing to etcd failed; retrying");
                            Some(Instant::now() + Duration::from_secs(1))
                        }
                    };
                }
                () = self.writer.changed() => {
                    // Someone else changed what we wrote (or damaged it):
                    // read etcd again and write what differs.
                    if let Err(e) = self.writer.load().await {
                        self.observe_store_error("read", &e);
                        tracing::warn!(error = %e, "reading etcd failed");
                    }
                    if self.may_write() {
                        retry_at = Some(Instant::now());
                    }
                }
                alive = leader_changed => {
                    if !alive {
                        leadership = None;
                        continue;
                    }
                    self.metrics.observe_leadership(self.fence().is_some());
                    if self.fence().is_some() {
                        // A new leader first reads what the previous one wrote.
                        tracing::info!("leading: reading etcd and writing the current state");
                        if let Err(e) = self.writer.load().await {
                            self.observe_store_error("read", &e);
                            tracing::warn!(error = %e, "reading etcd failed");
                        }
                        retry_at = Some(Instant::now());
                    }
                }
            }
        }
    }

    /// Counts a failed etcd request; a write refused because another
    /// replica leads is no etcd error.
    fn observe_store_error(&self, op: &'static str, e: &StoreError) {
        if matches!(e, StoreError::Unavailable(_)) {
            self.metrics.observe_etcd_error(op);
        }
    }

    /// The fence to write with; `None` when this replica may not write.
    fn fence(&self) -> Option<Fence> {
        self.leadership.as_ref().and_then(|rx| rx.borrow().clone())
    }

    fn may_write(&self) -> bool {
        self.leadership.is_none() || self.fence().is_some()
    }

    fn apply(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::ResetObjects(objects) => {
                let problems: BTreeMap<_, _> =
                    self.index.reset_objects(objects).into_iter().collect();
                self.log_problems(problems);
            }
            SourceEvent::ApplyObject(object) => {
                let key = object.key.clone();
                let errors = self.index.apply_object(object);
                let mut problems: BTreeMap<_, _> = self
                    .logged
                    .iter()
                    .map(|(k, (_, e))| (k.clone(), e.clone()))
                    .collect();
                problems.remove(&key);
                if !errors.is_empty() {
                    problems.insert(key, errors);
                }
                self.log_problems(problems);
            }
            SourceEvent::DeleteObject(key) => {
                self.index.delete_object(&key);
                self.logged.remove(&key);
            }
            SourceEvent::ResetPods(pods) => self.index.reset_pods(pods),
            SourceEvent::ApplyPod(pod) => self.index.apply_pod(pod),
            SourceEvent::DeletePod(key) => self.index.delete_pod(&key),
            SourceEvent::ResetSlices(slices) => self.index.reset_slices(slices),
            SourceEvent::ApplySlice(slice) => self.index.apply_slice(slice),
            SourceEvent::DeleteSlice(key) => self.index.delete_slice(&key),
            SourceEvent::ResetNodeStatus(records) => self.index.reset_node_status(records),
            SourceEvent::NodeStatus {
                node,
                replica,
                status,
            } => self.index.set_node_status(&node, &replica, status),
            SourceEvent::Problem(p) => tracing::error!(problem = p, "source"),
        }
    }

    /// Logs every problem of objects whose problems changed, one line each.
    fn log_problems(&mut self, problems: BTreeMap<ObjectKey, Vec<ConfigError>>) {
        let mut logged = BTreeMap::new();
        for (key, errors) in problems {
            let Some(object) = self.index.object(&key) else {
                continue;
            };
            let already = self
                .logged
                .get(&key)
                .is_some_and(|(config, e)| *config == object.config && *e == errors);
            if !already {
                for e in &errors {
                    let line = report::problem_line(&object.source, &key, e);
                    tracing::warn!("rejected: {line}");
                }
            }
            logged.insert(key, (object.config.clone(), errors));
        }
        self.logged = logged;
    }

    /// Computes the desired state and writes what changed.
    #[tracing::instrument(
        name = "reconcile",
        skip_all,
        fields(
            leader = self.may_write(),
            objects = tracing::field::Empty,
            nodes = tracing::field::Empty,
            groups = tracing::field::Empty,
        )
    )]
    /// `Ok(true)`: done, but Envoy gave no verdict on a group: sync again
    /// in a while.
    async fn sync(&mut self) -> Result<bool, StoreError> {
        if let Some(views) = &self.views {
            views.publish(&self.index);
        }
        if !self.may_write() {
            // Followers keep their index warm (and are ready once it is);
            // the leader writes.
            let desired = self.index.desired();
            self.observe(&desired, 0);
            self.metrics.observe_follower();
            self.synced.store(true, Ordering::Release);
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let mut desired = self.index.desired();
        let judge_again = match self.envoy.as_mut() {
            Some(envoy) => envoy.check(&mut desired, &self.metrics).await,
            None => false,
        };
        let plan = self.writer.plan(&desired);
        self.observe(&desired, plan.oversized.len());
        for o in &plan.oversized {
            tracing::error!(
                snapshot = o.snapshot,
                bytes = o.bytes,
                objects = ?o.objects,
                "snapshot exceeds etcd's request size limit; not written, its nodes keep their previous configuration"
            );
        }
        let fence = self.fence();
        let result = if plan.is_empty() {
            Ok(Default::default())
        } else {
            let writing = std::time::Instant::now();
            let result = self.writer.write(&plan, fence.as_ref()).await;
            self.metrics.observe_etcd_write(writing.elapsed());
            result
        };
        // Report statuses even if etcd failed: validation results stand.
        self.status.report(&desired.statuses);
        let stats = match result {
            Ok(stats) => stats,
            Err(e) => {
                self.metrics.observe_write_error(&e, started.elapsed());
                self.observe_store_error("write", &e);
                // Re-read etcd before retrying: our picture of it may be off.
                if let Err(load) = self.writer.load().await {
                    self.observe_store_error("read", &load);
                    tracing::debug!(error = %load, "reloading etcd contents failed");
                }
                return Err(e);
            }
        };
        self.metrics.observe_write(&stats, started.elapsed());
        self.synced.store(true, Ordering::Release);
        if stats.txns > 0 {
            tracing::info!(
                groups = desired.groups.len(),
                nodes = desired.bindings.len(),
                txns = stats.txns,
                puts = stats.puts,
                deletes = stats.deletes,
                bytes = stats.bytes,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "wrote etcd"
            );
        }
        Ok(judge_again)
    }

    /// Records the desired state in the metrics and the reconcile span.
    fn observe(&self, desired: &bootes_core::index::Desired, oversized: usize) {
        let span = tracing::Span::current();
        span.record("objects", desired.statuses.len());
        span.record("nodes", desired.bindings.len());
        span.record("groups", desired.groups.len());
        self.metrics.observe_objects(&desired.statuses);
        self.metrics
            .observe_desired(desired.bindings.len(), desired.groups.len(), oversized);
        let (slices, endpoints) = self.index.service_endpoint_counts();
        self.metrics.observe_service_endpoints(slices, endpoints);
    }
}

pub mod debounce;
mod envoy_check;
#[cfg(test)]
mod tests;
