//! README.md's command-line sections are the binaries' real `--help`, and
//! its relative links lead somewhere.
//!
//! A section is
//!
//! ````text
//! <!-- help: bootes-controller run --help -->
//! ```text
//! ...the output...
//! ```
//! <!-- end help -->
//! ````
//!
//! Regenerate every section with
//! `UPDATE_README=1 cargo test -p bootes-controller --test readme`.

use std::path::{Path, PathBuf};
use std::process::Command;

const BEGIN: &str = "<!-- help: ";
const END: &str = "<!-- end help -->";

/// Every command whose help the README must carry.
const REQUIRED: &[&str] = &[
    "bootes-controller --help",
    "bootes-controller run --help",
    "bootes-controller validate --help",
    "bootes-controller inspect --help",
    "bootes-controller inspect snapshot --help",
    "bootes-xds-server --help",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn binary(name: &str) -> PathBuf {
    match name {
        "bootes-controller" => PathBuf::from(env!("CARGO_BIN_EXE_bootes-controller")),
        "bootes-xds-server" => {
            bootes_tests::harness::find_bootes_bin("bootes-xds-server", "BOOTES_XDS_SERVER_BIN")
                .unwrap()
        }
        other => panic!("README names an unknown binary {other:?}"),
    }
}

/// The output of `command` (e.g. `bootes-controller run --help`), with no
/// `BOOTES_*` variable set (their values would show in the help).
fn help(command: &str) -> String {
    let mut words = command.split_whitespace();
    let bin = binary(words.next().unwrap());
    let mut cmd = Command::new(bin);
    cmd.args(words);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("BOOTES_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{command} failed");
    normalize(&String::from_utf8(out.stdout).unwrap())
}

fn normalize(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim_matches('\n').to_string()
}

/// One help section of the README: its command, and where its body is.
struct Section {
    command: String,
    /// Byte range of everything between the BEGIN line and the END marker.
    body: std::ops::Range<usize>,
}

fn sections(readme: &str) -> Vec<Section> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = readme[from..].find(BEGIN).map(|i| i + from) {
        let line_end = readme[start..].find('\n').map(|i| i + start).unwrap();
        let command = readme[start + BEGIN.len()..line_end]
            .trim()
            .trim_end_matches("-->")
            .trim()
            .to_string();
        let end = readme[line_end..]
            .find(END)
            .map(|i| i + line_end)
            .unwrap_or_else(|| panic!("no {END} after {BEGIN}{command}"));
        out.push(Section {
            command,
            body: line_end + 1..end,
        });
        from = end;
    }
    out
}

/// The text inside the section's ```text fence.
fn fenced(body: &str) -> Option<String> {
    let inner = body.trim().strip_prefix("```text\n")?.strip_suffix("```")?;
    Some(normalize(inner))
}

#[test]
fn readme_flag_sections_are_the_binaries_help() {
    let path = repo().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let found = sections(&readme);
    let commands: Vec<&str> = found.iter().map(|s| s.command.as_str()).collect();
    for required in REQUIRED {
        assert!(
            commands.contains(required),
            "README.md has no section {BEGIN}{required} -->"
        );
    }

    if std::env::var_os("UPDATE_README").is_some_and(|v| !v.is_empty()) {
        let mut updated = String::new();
        let mut copied = 0;
        for s in &found {
            updated.push_str(&readme[copied..s.body.start]);
            updated.push_str(&format!("```text\n{}\n```\n", help(&s.command)));
            copied = s.body.end;
        }
        updated.push_str(&readme[copied..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }

    let mut stale = Vec::new();
    for s in &found {
        let want = help(&s.command);
        if fenced(&readme[s.body.clone()]).as_deref() != Some(want.as_str()) {
            stale.push(format!("{}\n--- expected ---\n{want}", s.command));
        }
    }
    assert!(
        stale.is_empty(),
        "README.md's help sections differ from the binaries (regenerate: \
         UPDATE_README=1 cargo test -p bootes-controller --test readme):\n\n{}",
        stale.join("\n\n")
    );
}

#[test]
fn readme_relative_links_exist() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut checked = 0;
    for (i, _) in readme.match_indices("](") {
        let rest = &readme[i + 2..];
        let target = &rest[..rest.find(')').unwrap()];
        if target.starts_with("http") || target.starts_with('#') {
            continue;
        }
        let file = target.split('#').next().unwrap();
        assert!(
            repo().join(file).exists(),
            "README.md links to {target}, which does not exist"
        );
        checked += 1;
    }
    assert!(checked >= 3);
}

#[test]
fn readme_mentions_every_file_it_names_in_code() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for path in [
        "scripts/quickstart.sh",
        "scripts/test.sh",
        "docker-compose.yml",
        "Dockerfile",
        "deploy/compose/envoy.yaml",
        "docs/VALIDATION.md",
        "manifests/examples",
        "tests/tests/e2e_grpc_xds.rs",
        "tests/tests/compose.rs",
        "proto/bootes/v1/store.proto",
        "standin/src",
    ] {
        assert!(readme.contains(path), "README.md does not mention {path}");
        assert!(
            repo().join(path).exists(),
            "README.md names {path}, which does not exist"
        );
    }
}
