//! `bootes-controller validate`: the controller's checks, offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ValidateArgs;
use crate::convert;
use crate::manifest::{self, Document};

/// Reads every file (directories recursively, `-` for stdin), prints one line
/// per problem, and fails when any object is invalid.
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut errors = 0usize;
    let mut objects = 0usize;
    for (name, text) in read_sources(&args.files)? {
        for doc in manifest::parse_stream(&name, &text) {
            match doc {
                Err(e) => {
                    errors += 1;
                    println!("error: {e}");
                }
                Ok(Document::Object(object)) => {
                    objects += 1;
                    if let Err(problems) = convert::convert(object.key.kind, &object.config) {
                        for p in problems {
                            errors += 1;
                            println!("error: {name}: {}: {p}", object.key);
                        }
                    }
                }
                Ok(_) => {}
            }
        }
    }
    println!("{objects} objects checked, {errors} errors");
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// (display name, contents) of every manifest named by `paths`.
pub fn read_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let text = std::io::read_to_string(std::io::stdin()).context("reading stdin")?;
            out.push(("-".to_string(), text));
        } else if path.is_dir() {
            for file in manifest_files(path)? {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                out.push((file.display().to_string(), text));
            }
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            out.push((path.display().to_string(), text));
        }
    }
    Ok(out)
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
