//! The checks of `bootes-controller validate`, offline.
//!
//! Every object of every file is converted and validated as `run` would; the
//! [`Outcome`] holds one line per problem (see [`report::problem_line`]) and
//! the cross-reference warnings (see [`xref`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::manifest::{self, Document};
use crate::model::{BootesObject, ObjectKey, Pod};
use crate::report::problem_line;
use crate::service_endpoints::{self, EndpointSlice};
use crate::xref::{self, Reference, Subject};
use bootes_envoy::convert;

/// One object read, with what the cross-reference check needs.
struct Checked {
    source: String,
    key: ObjectKey,
    selector: Option<BTreeMap<String, String>>,
    provides: Option<String>,
    references: Vec<Reference>,
}

/// What a validation run found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub objects: usize,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Validates the manifests named by `paths`; unreadable files are errors too.
pub fn check(paths: &[PathBuf]) -> Outcome {
    let mut outcome = Outcome::default();
    let mut checked: Vec<Checked> = Vec::new();
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
    // After every file is read: an Endpoint naming a Service takes its
    // endpoints from the EndpointSlices given anywhere, as `run` would.
    for (name, object) in objects {
        outcome.objects += 1;
        let ty = object.key.kind;
        let converted = service_endpoints::effective_config(&object, &slices)
            .and_then(|effective| convert::convert(ty, &effective.config))
            .and_then(|c| {
                let c = std::sync::Arc::new(c);
                match crate::index::too_large(&object, &c) {
                    Some(e) => Err(vec![e]),
                    None => Ok(c),
                }
            });
        let (provides, references) = match converted {
            Ok(c) => {
                let refs = xref::references(ty, &c.message());
                (Some(c.name.clone()), refs)
            }
            Err(problems) => {
                for p in &problems {
                    outcome.errors.push(problem_line(&name, &object.key, p));
                }
                // Still a provider by name: one error is enough.
                let name = object
                    .config
                    .get(ty.name_field())
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
                (name, Vec::new())
            }
        };
        checked.push(Checked {
            source: name,
            key: object.key,
            selector: object.selector,
            provides,
            references,
        });
    }
    let subjects: Vec<Subject<'_>> = checked
        .iter()
        .map(|c| Subject {
            key: &c.key,
            selector: c.selector.as_ref(),
            provides: c.provides.as_deref(),
            references: &c.references,
        })
        .collect();
    let source_of: BTreeMap<&ObjectKey, &str> = checked
        .iter()
        .map(|c| (&c.key, c.source.as_str()))
        .collect();
    for u in xref::unresolved(&subjects, &pods) {
        let source = source_of.get(&u.key).copied().unwrap_or("-");
        outcome
            .warnings
            .push(problem_line(source, &u.key, &u.problem));
    }
    outcome
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
