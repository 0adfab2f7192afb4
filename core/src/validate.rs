//! The checks of `bootes-controller validate`, offline.
//!
//! The documents of every file go into the same [`Index`] `run` uses, and
//! each object's conditions are read from [`Index::desired`]: conversion,
//! protoc-gen-validate, semantic checks, size, conflicts and
//! cross-references are decided by one code path. The [`Outcome`] holds one
//! line per problem (see [`problem_line`]).
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
use crate::envoy_judge::{self, EnvoyOracle, GroupVerdict};
use crate::index::{Desired, Index};
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
/// References to `bootstrap` clusters count as resolved. With an `oracle`,
/// every group's snapshot is also judged by Envoy ([`envoy_findings`]).
pub fn check(
    paths: &[PathBuf],
    bootstrap: &BootstrapClusters,
    oracle: Option<&dyn EnvoyOracle>,
) -> Outcome {
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
        for finding in findings(&index, &desired, key, invalid.contains(key)) {
            match finding {
                // Listed above, from `apply_object`.
                Finding::Invalid(_) => {}
                Finding::Conflict(p) | Finding::Unresolved(p, true) => {
                    outcome.errors.push(problem_line(name, key, &p))
                }
                Finding::Unresolved(p, false) | Finding::Warning(p) => {
                    outcome.warnings.push(problem_line(name, key, &p))
                }
            }
        }
    }
    if let Some(oracle) = oracle {
        let sources: BTreeMap<&ObjectKey, &str> = order
            .iter()
            .map(|(name, key)| (key, name.as_str()))
            .collect();
        for (key, problem) in envoy_findings(&desired, bootstrap, oracle) {
            let name = sources.get(&key).copied().unwrap_or("-");
            outcome.errors.push(problem_line(name, &key, &problem));
        }
    }
    outcome
}

/// What Envoy (the `oracle`) rejects in the groups' snapshots, by object
/// (see [`envoy_judge`]). The clusters of the Envoys' bootstrap
/// (`bootstrap`) are in every bootstrap Envoy judges.
pub fn envoy_findings(
    desired: &Desired,
    bootstrap: &BootstrapClusters,
    oracle: &dyn EnvoyOracle,
) -> Vec<(ObjectKey, ConfigError)> {
    let groups: Vec<envoy_judge::Group> = desired
        .groups
        .iter()
        .map(|(name, g)| envoy_judge::Group {
            name: name.clone(),
            snapshot: g.snapshot.clone(),
            bootstrap_clusters: bootstrap.names_in(&g.snapshot.namespace),
        })
        .collect();
    let verdicts = envoy_judge::judge_groups(&groups, oracle);
    let mut out: BTreeSet<(ObjectKey, String)> = BTreeSet::new();
    for (group, verdict) in groups.iter().zip(verdicts) {
        match verdict {
            GroupVerdict::Accepted => {}
            GroupVerdict::Rejected(blamed) => {
                for b in blamed {
                    let Some(key) = envoy_judge::source_of(&group.snapshot, b.ty, &b.name)
                        .and_then(ObjectKey::of_source)
                    else {
                        continue;
                    };
                    let together = b.together.then_some(group.name.as_str());
                    out.insert((
                        key,
                        conditions::envoy_rejection("--envoy", &b.reason, together),
                    ));
                }
            }
            GroupVerdict::Unjudged(why) => {
                let message = conditions::envoy_unjudged("--envoy", &group.name, &why);
                for source in &group.snapshot.objects {
                    if let Some(key) = ObjectKey::of_source(source) {
                        out.insert((key, message.clone()));
                    }
                }
            }
        }
    }
    out.into_iter()
        .map(|(key, message)| (key, ConfigError::new(CONFIG_PATH, message)))
        .collect()
}

/// One problem of one object, by what it depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The object's own spec: conversion, protoc-gen-validate, the semantic
    /// rules, its size alone. `validate` fails; the webhook denies.
    Invalid(ConfigError),
    /// Against the other objects of its namespace: a conflict, or too large
    /// together with its group. `validate` fails; the webhook warns, since
    /// fixing it may mean changing another object.
    Conflict(ConfigError),
    /// A reference no object provides; `true` when Envoy rejects the
    /// resource for it (`validate` fails then, and warns otherwise; the
    /// webhook warns: the missing object may be applied next).
    Unresolved(ConfigError, bool),
    /// What the warning rules found in the resource.
    Warning(ConfigError),
}

/// What is wrong with the object `key` of `index`, in the order `validate`
/// prints it; `invalid`: its latest spec was rejected (its own problems are
/// then its status, and the resource in force is an older one).
pub fn findings(index: &Index, desired: &Desired, key: &ObjectKey, invalid: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(status) = desired.statuses.get(key) else {
        return out;
    };
    if invalid {
        out.extend(
            index
                .object_errors(key)
                .iter()
                .cloned()
                .map(Finding::Invalid),
        );
    } else {
        // Conversion problems are the object's own; these come from the group.
        let reason = status.verdict.reason();
        if matches!(reason, Reason::Conflict | Reason::TooLarge) {
            let path = match reason {
                Reason::Conflict => format!("{CONFIG_PATH}.{}", key.kind.name_field()),
                _ => CONFIG_PATH.to_string(),
            };
            out.push(Finding::Conflict(ConfigError::new(
                path,
                conditions::accepted_message(&status.verdict),
            )));
        }
        // The warning rules' findings on the resource now in force.
        out.extend(
            index
                .warnings(key)
                .into_iter()
                .cloned()
                .map(Finding::Warning),
        );
    }
    for u in status.refs.iter().flatten() {
        out.push(Finding::Unresolved(u.problem.clone(), u.envoy_rejects));
    }
    out
}

/// Judges `object` as `validate` would, against `view`: the objects, pods
/// and EndpointSlices of its namespace (see [`Index::namespace_view`]),
/// which it joins or replaces. A namespace without pods gets imagined ones,
/// as in [`check`]. `view` keeps the object: the caller chooses when to
/// free it (the webhook, after answering).
pub fn review(view: &mut Index, object: BootesObject) -> Vec<Finding> {
    let key = object.key.clone();
    let invalid = !view.apply_object(object).is_empty();
    if !view.has_pods(&key.namespace) {
        let imagined = imagined_pods(&[], view.objects());
        view.reset_pods(imagined);
    }
    let desired = view.desired();
    findings(view, &desired, &key, invalid)
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
