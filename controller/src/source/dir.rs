//! Directory source: YAML manifests (Bootes objects, `v1` Pods standing
//! for Envoys, EndpointSlices of Services), rescanned on an interval. Polling instead of inotify works the
//! same on every filesystem, including Kubernetes ConfigMap volumes whose
//! files are swapped through symlinks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use bootes_core::manifest::{self, Document, ManifestError};
use bootes_core::model::{BootesObject, ObjectKey, Pod, PodKey};
use bootes_core::service_endpoints::{EndpointSlice, SliceKey};
use bootes_core::source::SourceEvent;
use bootes_core::validate::manifest_files;

/// Files modified less than this long ago are compared by content.
const RECENT: Duration = Duration::from_secs(3);

/// What was read from one file.
#[derive(Debug, Clone, Default)]
struct FileState {
    stamp: Option<(SystemTime, u64)>,
    /// Contents last read; `None` before the first read.
    text: Option<String>,
    objects: Vec<BootesObject>,
    pods: Vec<Pod>,
    slices: Vec<EndpointSlice>,
}

/// The documents of a directory, re-read when files change.
#[derive(Debug, Default)]
pub struct DirIndex {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
}

/// The outcome of one scan.
#[derive(Debug, Default)]
pub struct Scan {
    pub changed: bool,
    pub problems: Vec<String>,
}

impl DirIndex {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            files: BTreeMap::new(),
        }
    }

    pub fn objects(&self) -> Vec<BootesObject> {
        self.files
            .values()
            .flat_map(|f| f.objects.iter().cloned())
            .collect()
    }

    pub fn pods(&self) -> Vec<Pod> {
        self.files
            .values()
            .flat_map(|f| f.pods.iter().cloned())
            .collect()
    }

    pub fn slices(&self) -> Vec<EndpointSlice> {
        self.files
            .values()
            .flat_map(|f| f.slices.iter().cloned())
            .collect()
    }

    /// Re-reads files whose modification time or size changed, forgets
    /// deleted ones.
    pub fn scan(&mut self) -> Scan {
        let mut scan = Scan::default();
        let paths = match manifest_files(&self.root) {
            Ok(p) => p,
            Err(e) => {
                // Keep everything we had: a missing or unreadable directory
                // (e.g. during a ConfigMap swap) is not "delete everything".
                scan.problems.push(format!("{e:#}"));
                return scan;
            }
        };
        let before = self.files.len();
        self.files.retain(|p, _| paths.contains(p));
        scan.changed |= self.files.len() != before;

        for path in paths {
            let stamp = stamp(&path);
            let state = self.files.entry(path.clone()).or_default();
            // Modification times can be coarse: a file modified recently is
            // re-read and compared even when its stamp looks unchanged.
            let recent =
                stamp.is_some_and(|(mtime, _)| mtime.elapsed().map_or(true, |age| age < RECENT));
            if stamp.is_some() && state.stamp == stamp && !recent {
                continue;
            }
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    scan.problems.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            state.stamp = stamp;
            if state.text.as_ref() == Some(&text) {
                continue;
            }
            state.text = Some(text.clone());
            let problems = read_file(&path, &text, state);
            scan.problems
                .extend(problems.into_iter().map(|e| e.to_string()));
            scan.changed = true;
        }
        scan
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Replaces `state` with the documents of `text`. A document that cannot be
/// read keeps the previous version of the same object, and a file that is not
/// valid YAML keeps all of its previous documents: an edit in progress or a
/// typo never deletes configuration.
fn read_file(path: &Path, text: &str, state: &mut FileState) -> Vec<ManifestError> {
    let name = path.display().to_string();
    let docs = manifest::parse_stream(&name, text);
    let mut problems = Vec::new();
    let mut objects = Vec::new();
    let mut pods = Vec::new();
    let mut slices = Vec::new();
    let mut yaml_broken = false;
    for doc in docs {
        match doc {
            Ok(Document::Object(o)) => objects.push(o),
            Ok(Document::Pod(p)) => pods.push(p),
            Ok(Document::EndpointSlice(s)) => slices.push(s),
            Ok(Document::Other { .. }) => {}
            Err(e) => {
                if e.message.starts_with("invalid YAML") {
                    yaml_broken = true;
                }
                if let Some(display) = &e.object {
                    objects.extend(
                        state
                            .objects
                            .iter()
                            .filter(|o| &o.key.to_string() == display)
                            .cloned(),
                    );
                    slices.extend(
                        state
                            .slices
                            .iter()
                            .filter(|s| &s.key.to_string() == display)
                            .cloned(),
                    );
                }
                problems.push(e);
            }
        }
    }
    if !yaml_broken {
        state.objects = objects;
        state.pods = pods;
        state.slices = slices;
    }
    problems
}

/// What the index was last told, so that a reload sends only what changed:
/// an edit of one object among thousands costs the reconcile one object,
/// not a re-evaluation of all of them.
#[derive(Debug, Default)]
struct Delivered {
    objects: BTreeMap<ObjectKey, BootesObject>,
    pods: BTreeMap<PodKey, Pod>,
    slices: BTreeMap<SliceKey, EndpointSlice>,
}

impl Delivered {
    /// The complete sets, for the first scan (which also clears out what an
    /// earlier run left in etcd).
    fn reset(&mut self, dir: &DirIndex) -> Vec<SourceEvent> {
        let (objects, pods, slices) = (dir.objects(), dir.pods(), dir.slices());
        self.objects = objects.iter().map(|o| (o.key.clone(), o.clone())).collect();
        self.pods = pods.iter().map(|p| (p.key(), p.clone())).collect();
        self.slices = slices.iter().map(|s| (s.key.clone(), s.clone())).collect();
        // Slices first: the objects naming their Services are then
        // converted once, with their endpoints.
        vec![
            SourceEvent::ResetSlices(slices),
            SourceEvent::ResetObjects(objects),
            SourceEvent::ResetPods(pods),
        ]
    }

    /// What changed since the last call, as single-item events (slices
    /// first, as in [`Delivered::reset`]). When a key is in several files,
    /// the last file (in path order) wins, as in a reset.
    fn changes(&mut self, dir: &DirIndex) -> Vec<SourceEvent> {
        let files = || dir.files.values();
        let mut events = Vec::new();
        let slices = files().flat_map(|f| f.slices.iter().map(|s| (s.key.clone(), s)));
        for change in diff(&mut self.slices, slices.collect()) {
            events.push(match change {
                Change::Apply(s) => SourceEvent::ApplySlice(s),
                Change::Delete(k) => SourceEvent::DeleteSlice(k),
            });
        }
        let objects = files().flat_map(|f| f.objects.iter().map(|o| (o.key.clone(), o)));
        for change in diff(&mut self.objects, objects.collect()) {
            events.push(match change {
                Change::Apply(o) => SourceEvent::ApplyObject(o),
                Change::Delete(k) => SourceEvent::DeleteObject(k),
            });
        }
        let pods = files().flat_map(|f| f.pods.iter().map(|p| (p.key(), p)));
        for change in diff(&mut self.pods, pods.collect()) {
            events.push(match change {
                Change::Apply(p) => SourceEvent::ApplyPod(p),
                Change::Delete(k) => SourceEvent::DeletePod(k),
            });
        }
        events
    }
}

enum Change<K, V> {
    Apply(V),
    Delete(K),
}

/// Brings `delivered` to `current`, returning the changes.
fn diff<K: Ord + Clone, V: PartialEq + Clone>(
    delivered: &mut BTreeMap<K, V>,
    current: BTreeMap<K, &V>,
) -> Vec<Change<K, V>> {
    let mut changes = Vec::new();
    delivered.retain(|k, _| {
        let keep = current.contains_key(k);
        if !keep {
            changes.push(Change::Delete(k.clone()));
        }
        keep
    });
    for (k, v) in current {
        if delivered.get(&k) != Some(v) {
            delivered.insert(k, v.clone());
            changes.push(Change::Apply(v.clone()));
        }
    }
    changes
}

/// Scans `root` every `interval`: the complete sets first, then what changed.
pub async fn run(root: PathBuf, interval: Duration, tx: mpsc::Sender<SourceEvent>) {
    let mut dir = DirIndex::new(root);
    let mut delivered = Delivered::default();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_problems = Vec::new();
    let mut first = true;
    loop {
        ticker.tick().await;
        let scan = dir.scan();
        if scan.problems != last_problems {
            for p in &scan.problems {
                if tx.send(SourceEvent::Problem(p.clone())).await.is_err() {
                    return;
                }
            }
            last_problems = scan.problems;
        }
        // The first scan is always reported, even of an empty directory, so
        // that stale keys from an earlier run are cleaned up.
        let events = if std::mem::take(&mut first) {
            delivered.reset(&dir)
        } else if scan.changed {
            delivered.changes(&dir)
        } else {
            continue;
        };
        for e in events {
            if tx.send(e).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "apiVersion: bootes.io/v1\nkind: Cluster\nmetadata: {name: c, namespace: ns}\nspec: {config: {name: c}}\n";
    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ns}\n";

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn reads_nested_files_and_notices_edits_additions_and_deletions() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        write(tmp.path(), "c.yaml", CLUSTER);
        write(&tmp.path().join("sub"), "pod.yml", POD);
        write(tmp.path(), "notes.txt", "ignored");
        let mut dir = DirIndex::new(tmp.path());
        assert!(dir.scan().changed);
        assert_eq!(dir.objects().len(), 1);
        assert_eq!(dir.pods().len(), 1);
        assert!(!dir.scan().changed, "nothing changed");

        // Same size, same second: still noticed.
        write(
            tmp.path(),
            "c.yaml",
            &CLUSTER.replace("{name: c}", "{name: x}"),
        );
        assert!(dir.scan().changed);
        assert_eq!(dir.objects()[0].config["name"], "x");

        std::fs::remove_file(tmp.path().join("sub/pod.yml")).unwrap();
        assert!(dir.scan().changed);
        assert!(dir.pods().is_empty());
    }

    #[test]
    fn broken_yaml_keeps_the_previous_documents_of_that_file() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "c.yaml", CLUSTER);
        let mut dir = DirIndex::new(tmp.path());
        dir.scan();
        write(tmp.path(), "c.yaml", "kind: [half written");
        let scan = dir.scan();
        assert_eq!(scan.problems.len(), 1, "{:?}", scan.problems);
        assert_eq!(dir.objects().len(), 1, "previous documents kept");
    }

    #[test]
    fn a_broken_document_keeps_its_previous_object_and_the_others_update() {
        let tmp = tempfile::tempdir().unwrap();
        let two = format!("{CLUSTER}---\n{}", CLUSTER.replace("name: c,", "name: d,"));
        write(tmp.path(), "c.yaml", &two);
        let mut dir = DirIndex::new(tmp.path());
        dir.scan();
        assert_eq!(dir.objects().len(), 2);
        // The first loses its spec; the second is edited.
        let edited = format!(
            "apiVersion: bootes.io/v1\nkind: Cluster\nmetadata: {{name: c, namespace: ns}}\n---\n{}",
            CLUSTER.replace("name: c,", "name: d,").replace("{name: c}", "{name: d2}")
        );
        write(tmp.path(), "c.yaml", &edited);
        let scan = dir.scan();
        assert_eq!(scan.problems.len(), 1);
        assert!(scan.problems[0].contains("spec"), "{:?}", scan.problems);
        let mut objects = dir.objects();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].key.name, "c", "kept from before");
        assert_eq!(objects[1].key.name, "d");
        assert_eq!(objects[1].config["name"], "d2");
    }

    #[test]
    fn a_missing_directory_keeps_everything() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "c.yaml", CLUSTER);
        let mut dir = DirIndex::new(tmp.path());
        dir.scan();
        let gone = DirIndex::new(tmp.path().join("missing")).scan();
        assert_eq!(gone.problems.len(), 1);
        std::fs::remove_dir_all(tmp.path()).unwrap();
        let scan = dir.scan();
        assert!(!scan.changed);
        assert_eq!(dir.objects().len(), 1);
    }

    /// Kind and name of each event, to compare.
    fn names(events: &[SourceEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                SourceEvent::ResetObjects(o) => format!("reset objects {}", o.len()),
                SourceEvent::ResetPods(p) => format!("reset pods {}", p.len()),
                SourceEvent::ResetSlices(s) => format!("reset slices {}", s.len()),
                SourceEvent::ApplyObject(o) => format!("apply {} {}", o.key, o.config),
                SourceEvent::DeleteObject(k) => format!("delete {k}"),
                SourceEvent::ApplyPod(p) => format!("apply pod {}", p.name),
                SourceEvent::DeletePod(k) => format!("delete pod {}", k.name),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn after_the_first_scan_only_what_changed_is_sent() {
        let tmp = tempfile::tempdir().unwrap();
        let many: String = (0..50)
            .map(|i| CLUSTER.replace("name: c,", &format!("name: c{i},")))
            .collect::<Vec<_>>()
            .join("---\n");
        write(tmp.path(), "many.yaml", &many);
        write(tmp.path(), "pod.yaml", POD);
        let mut dir = DirIndex::new(tmp.path());
        let mut delivered = Delivered::default();
        dir.scan();
        assert_eq!(
            names(&delivered.reset(&dir)),
            ["reset slices 0", "reset objects 50", "reset pods 1"]
        );

        // One object edited in a file of fifty: one event.
        write(
            tmp.path(),
            "many.yaml",
            &many.replacen("{name: c}", "{name: edited}", 1),
        );
        assert!(dir.scan().changed);
        assert_eq!(
            names(&delivered.changes(&dir)),
            [r#"apply Cluster ns/c0 {"name":"edited"}"#]
        );

        // The same object also in a later file: that one wins, as in a reset.
        write(
            tmp.path(),
            "z.yaml",
            &CLUSTER.replace("name: c,", "name: c0,"),
        );
        dir.scan();
        assert_eq!(
            names(&delivered.changes(&dir)),
            [r#"apply Cluster ns/c0 {"name":"c"}"#]
        );
        assert_eq!(names(&delivered.changes(&dir)), Vec::<String>::new());

        // Files removed: their objects and pods are deleted, the duplicate
        // goes back to the other file's version.
        std::fs::remove_file(tmp.path().join("z.yaml")).unwrap();
        std::fs::remove_file(tmp.path().join("pod.yaml")).unwrap();
        dir.scan();
        assert_eq!(
            names(&delivered.changes(&dir)),
            [r#"apply Cluster ns/c0 {"name":"edited"}"#, "delete pod p"]
        );
        write(tmp.path(), "many.yaml", "");
        dir.scan();
        let deleted = delivered.changes(&dir);
        assert_eq!(deleted.len(), 50);
        assert!(deleted
            .iter()
            .all(|e| matches!(e, SourceEvent::DeleteObject(_))));
        // What was delivered is what a reset would send now.
        assert_eq!(delivered.objects.len(), dir.objects().len());
    }
}
