//! Every citation of a document points at a file that exists and, where it
//! names one, a section that exists: `docs/DESIGN.md §4` needs a heading
//! `## 4. …` in docs/DESIGN.md, `docs/VALIDATION.md, *Size*` (or `, "Size`)
//! a heading containing "Size". Checked over every `.rs` and `.md` file of the
//! repository. (Intra-doc links are checked by `cargo doc` with
//! `RUSTDOCFLAGS="-D warnings"` in `.ci/run`.)

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading a directory") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") || name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// A cited document and what follows the citation on its line.
struct Citation<'a> {
    doc: &'a str,
    rest: &'a str,
}

fn citations(line: &str) -> Vec<Citation<'_>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find(".md") {
        let end = from + at + 3;
        from = end;
        if line[end..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            continue; // `.mdx` and the like
        }
        let start = line[..end - 3]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.')))
            .map_or(0, |i| i + 1);
        let doc = &line[start..end];
        // `[NAME.md](path)`: the text of a link; its target is the citation.
        let link_text = line[..start].ends_with('[') && line[end..].starts_with(']');
        if doc.len() > 3 && !doc.contains("://") && !link_text {
            out.push(Citation {
                doc,
                rest: &line[end..],
            });
        }
    }
    out
}

/// The file a citation in `file` names: from the repository root, or
/// relative to the citing file (links inside docs/).
fn resolve(root: &Path, file: &Path, doc: &str) -> Option<PathBuf> {
    let doc = doc.trim_start_matches("./");
    [root.join(doc), file.parent().expect("a parent").join(doc)]
        .into_iter()
        .find(|p| p.is_file())
}

/// The section numbers (`§4, §5`) and the named section (`, *Size*` or
/// `, "Who may read`) that follow a citation.
fn sections(rest: &str) -> (Vec<u32>, Option<String>) {
    let mut numbers = Vec::new();
    let mut s = rest.trim_start();
    while let Some(after) = s.strip_prefix('§') {
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        let Ok(number) = digits.parse() else {
            break; // `§N`, a placeholder
        };
        numbers.push(number);
        s = after[digits.len()..].trim_start_matches([',', ' ']);
    }
    let named = rest.strip_prefix(", ").and_then(|s| {
        let (open, close) = match s.chars().next()? {
            '*' => ('*', '*'),
            '"' => ('"', '"'),
            _ => return None,
        };
        let inner = s.strip_prefix(open)?;
        let text = inner.split(close).next().unwrap_or(inner);
        Some(text.trim().to_string())
    });
    (numbers, named)
}

fn headings(doc: &Path) -> Vec<String> {
    std::fs::read_to_string(doc)
        .expect("reading a cited document")
        .lines()
        .filter_map(|l| {
            if l.starts_with('#') {
                return Some(l.trim_start_matches('#').trim().to_string());
            }
            // A bold label opening a list item is a section too: `* **Sizing.**`.
            let label = l.trim_start_matches(['*', ' ']).len() < l.len()
                && l.trim_start().starts_with("* **");
            label.then(|| l.trim_start().trim_start_matches("* **").to_string())
        })
        .collect()
}

#[test]
fn every_cited_document_and_section_exists() {
    let root = root();
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("reading a source file");
        let shown = file.strip_prefix(&root).unwrap_or(file).display();
        for (n, line) in text.lines().enumerate() {
            for c in citations(line) {
                checked += 1;
                let Some(doc) = resolve(&root, file, c.doc) else {
                    wrong.push(format!("{shown}:{}: {} does not exist", n + 1, c.doc));
                    continue;
                };
                let (numbers, named) = sections(c.rest);
                let heads = headings(&doc);
                for number in numbers {
                    let prefix = format!("{number}. ");
                    if !heads.iter().any(|h| h.starts_with(&prefix)) {
                        wrong.push(format!(
                            "{shown}:{}: {} has no section §{number}",
                            n + 1,
                            c.doc
                        ));
                    }
                }
                if let Some(named) = named {
                    let named = named.to_lowercase();
                    if !heads.iter().any(|h| {
                        let h = h.to_lowercase();
                        h.contains(&named) || named.starts_with(&h)
                    }) {
                        wrong.push(format!(
                            "{shown}:{}: {} has no section {named:?}",
                            n + 1,
                            c.doc
                        ));
                    }
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} citations found: is the walk broken?"
    );
    assert!(wrong.is_empty(), "broken citations:\n{}", wrong.join("\n"));
}

#[test]
fn the_citation_reader_finds_files_numbers_and_names() {
    let c = citations("[DESIGN.md](docs/DESIGN.md)");
    assert_eq!(
        c.iter().map(|c| c.doc).collect::<Vec<_>>(),
        ["docs/DESIGN.md"]
    );
    let c = citations("see (docs/DESIGN.md §4, §5) and README.md's help");
    let docs: Vec<_> = c.iter().map(|c| c.doc).collect();
    assert_eq!(docs, ["docs/DESIGN.md", "README.md"]);
    assert_eq!(sections(c[0].rest), (vec![4, 5], None));
    let c = citations("with `TooLarge` (docs/VALIDATION.md, *Size*). A");
    assert_eq!(sections(c[0].rest), (vec![], Some("Size".to_string())));
    let c = citations(r#"(docs/SECURITY.md, "what one"#);
    assert_eq!(sections(c[0].rest), (vec![], Some("what one".to_string())));
}
