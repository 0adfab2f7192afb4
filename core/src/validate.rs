//! The checks of `bootes-controller validate`, offline.
//!
//! The documents of every file go into the same [`Index`] `run` uses, and
//! each object's conditions are read from [`Index::desired`]: conversion,
//! protoc-gen-validate, semantic checks, size, conflicts and
//! cross-references are decided by one code path. The [`Outcome`] holds one
//! line per problem (see [`report::problem_line`]).
//!
//! `run` sees real pods; `validate` sees the `v1 Pod` documents given. In a
//! namespace without any, it imagines one pod per distinct
//! `workloadSelector` of the namespace's objects, labelled exactly with it
//! (named `[app=web]`, `[*]` for no selector): a pod that every object
//! whose selector it satisfies reaches, so that conflicts and missing
//! references between objects are found without a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::conditions;
use crate::index::Index;
use crate::manifest::{self, Document};
use crate::model::{BootesObject, ObjectKey, Pod};
use crate::report::problem_line;
use crate::service_endpoints::EndpointSlice;
use crate::verdict::Reason;
use crate::xref::BootstrapClusters;
use bootes_envoy::convert::{ConfigError, CONFIG_PATH};

/// What a validation run found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub objects: usize,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Validates the manifests named by `paths`; unreadable files are errors too.
/// References to `bootstrap` clusters count as resolved.
pub fn check(paths: &[PathBuf], bootstrap: &BootstrapClusters) -> Outcome {
    let mut outcome = Outcome::default();
    let mut pods: Vec<Pod> = Vec::new();
    let mut objects: Vec<(String, BootesObject)> = Vec::new();
    let mut slices: Vec<EndpointSlice> = Vec::new();
    for source in read_all(paths) {
        let (name, text) = match source {
            Ok(s) => s,
            Err(e) => {
                outcome.errors.push(e.to_string());
                continue;
            }
        };
        for doc in manifest::parse_stream(&name, &text) {
            match doc {
                Err(e) => outcome.errors.push(match &e.object {
                    Some(object) => format!(
                        "{}: document {}: {object}: {}",
                        e.source_name, e.index, e.message
                    ),
                    None => e.to_string(),
                }),
                Ok(Document::Object(object)) => objects.push((name.clone(), object)),
                Ok(Document::Pod(pod)) => pods.push(pod),
                Ok(Document::EndpointSlice(slice)) => slices.push(slice),
                Ok(Document::Other { .. }) => {}
            }
        }
    }
    let mut index = Index::new();
    index.set_bootstrap_clusters(bootstrap.clone());
    // Slices first: an Endpoint naming a Service takes its endpoints from
    // the EndpointSlices given anywhere, as `run` would.
    index.reset_slices(slices);
    let imagined = imagined_pods(&pods, objects.iter().map(|(_, o)| o));
    index.reset_pods(pods.into_iter().chain(imagined));
    let mut order: Vec<(String, ObjectKey)> = Vec::new();
    let mut invalid = BTreeSet::new();
    for (name, object) in objects {
        outcome.objects += 1;
        let key = object.key.clone();
        let problems = index.apply_object(object);
        for p in &problems {
            outcome.errors.push(problem_line(&name, &key, p));
        }
        if !problems.is_empty() {
            invalid.insert(key.clone());
        }
        order.push((name, key));
    }
    let desired = index.desired();
    let mut seen = BTreeSet::new();
    for (name, key) in &order {
        if !seen.insert(key) {
            continue;
        }
        let Some(status) = desired.statuses.get(key) else {
            continue;
        };
        // Conversion problems are listed above; these come from the group.
        let reason = status.verdict.reason();
        if !invalid.contains(key) && matches!(reason, Reason::Conflict | Reason::TooLarge) {
            let path = match reason {
                Reason::Conflict => format!("{CONFIG_PATH}.{}", key.kind.name_field()),
                _ => CONFIG_PATH.to_string(),
            };
            let problem = ConfigError::new(path, conditions::accepted_message(&status.verdict));
            outcome.errors.push(problem_line(name, key, &problem));
        }
        if !invalid.contains(key) {
            // The warning rules' findings on the resource now in force.
            for w in index.warnings(key) {
                outcome.warnings.push(problem_line(name, key, w));
            }
        }
        for u in status.refs.iter().flatten() {
            let line = problem_line(name, key, &u.problem);
            if u.envoy_rejects {
                outcome.errors.push(line);
            } else {
                outcome.warnings.push(line);
            }
        }
    }
    outcome
}

/// One pod per distinct selector of the objects of each namespace that has
/// no pod in `pods`, labelled exactly with it.
fn imagined_pods<'a>(pods: &[Pod], objects: impl Iterator<Item = &'a BootesObject>) -> Vec<Pod> {
    let with_pods: BTreeSet<&str> = pods.iter().map(|p| p.namespace.as_str()).collect();
    let mut selectors: BTreeSet<(String, BTreeMap<String, String>)> = BTreeSet::new();
    for o in objects {
        if !with_pods.contains(o.key.namespace.as_str()) {
            let labels = o.selector.clone().unwrap_or_default();
            selectors.insert((o.key.namespace.clone(), labels));
        }
    }
    selectors
        .into_iter()
        .map(|(namespace, labels)| {
            let name = if labels.is_empty() {
                "[*]".to_string()
            } else {
                let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", pairs.join(","))
            };
            Pod {
                namespace,
                uid: name.clone(),
                name,
                labels,
                service_account: "default".to_string(),
            }
        })
        .collect()
}

/// A file or directory that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading {what}: {source}")]
pub struct ReadError {
    /// The path, or `stdin`.
    pub what: String,
    #[source]
    pub source: std::io::Error,
}

impl ReadError {
    fn new(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.to_string();
        move |source| Self { what, source }
    }
}

/// (display name, contents) of every manifest named by `paths`, or why one
/// could not be read.
fn read_all(paths: &[PathBuf]) -> Vec<Result<(String, String), ReadError>> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            out.push(
                std::io::read_to_string(std::io::stdin())
                    .map(|text| ("-".to_string(), text))
                    .map_err(ReadError::new("stdin")),
            );
        } else if path.is_dir() {
            match manifest_files(path) {
                Ok(files) => {
                    for file in files {
                        out.push(read_file(&file));
                    }
                }
                Err(e) => out.push(Err(e)),
            }
        } else {
            out.push(read_file(path));
        }
    }
    out
}

fn read_file(path: &Path) -> Result<(String, String), ReadError> {
    let text = std::fs::read_to_string(path).map_err(ReadError::new(path.display()))?;
    Ok((path.display().to_string(), text))
}

/// Manifest files below `dir` (recursively, sorted, hidden entries skipped).
pub fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(ReadError::new(d.display()))? {
            let path = entry.map_err(ReadError::new(d.display()))?.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if is_manifest(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}
