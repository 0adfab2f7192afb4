//! `bootes-controller validate`: the controller's checks, offline.
//!
//! Every object of every file is converted and validated as `run` would; one
//! line per problem goes to stdout (`error: …` — see [`report::problem_line`]),
//! then cross-reference warnings (`warning: …`, see [`xref`]), then a summary.
//! The exit code is 0 when there is no error (warnings do not fail the run),
//! 1 otherwise.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ValidateArgs;
use crate::convert;
use crate::manifest::{self, Document};
use crate::model::{ObjectKey, Pod};
use crate::report::problem_line;
use crate::xref::{self, Reference, Subject};

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

/// Reads every file (directories recursively, `-` for stdin), prints one line
/// per problem, and fails when any object is invalid.
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let outcome = check(&args.files);
    let mut out = std::io::stdout().lock();
    for line in &outcome.errors {
        writeln!(out, "error: {line}")?;
    }
    for line in &outcome.warnings {
        writeln!(out, "warning: {line}")?;
    }
    writeln!(
        out,
        "{} objects checked, {} errors, {} warnings",
        outcome.objects,
        outcome.errors.len(),
        outcome.warnings.len()
    )?;
    Ok(if outcome.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Validates the manifests named by `paths`; unreadable files are errors too.
pub fn check(paths: &[PathBuf]) -> Outcome {
    let mut outcome = Outcome::default();
    let mut checked: Vec<Checked> = Vec::new();
    let mut pods: Vec<Pod> = Vec::new();
    for source in read_all(paths) {
        let (name, text) = match source {
            Ok(s) => s,
            Err(e) => {
                outcome.errors.push(format!("{e:#}"));
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
                Ok(Document::Object(object)) => {
                    outcome.objects += 1;
                    let ty = object.key.kind;
                    let (provides, references) = match convert::convert(ty, &object.config) {
                        Ok(c) => {
                            let refs = xref::references(ty, &c.message());
                            (Some(c.name), refs)
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
                        source: name.clone(),
                        key: object.key,
                        selector: object.selector,
                        provides,
                        references,
                    });
                }
                Ok(Document::Pod(pod)) => pods.push(pod),
                Ok(Document::Other { .. }) => {}
            }
        }
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

/// (display name, contents) of every manifest named by `paths`, or why one
/// could not be read.
fn read_all(paths: &[PathBuf]) -> Vec<anyhow::Result<(String, String)>> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            out.push(
                std::io::read_to_string(std::io::stdin())
                    .map(|text| ("-".to_string(), text))
                    .context("reading stdin"),
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

fn read_file(path: &Path) -> anyhow::Result<(String, String)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((path.display().to_string(), text))
}

/// Manifest files below `dir` (recursively, sorted, hidden entries skipped).
pub fn manifest_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
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
