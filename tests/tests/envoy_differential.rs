//! Envoy as the oracle of `bootes-controller validate` (docs/VALIDATION.md,
//! "Differential test against Envoy").
//!
//! Seeded random mutations of a corpus of valid configs are checked by
//! `envoy --mode validate` and by `bootes-controller validate`. Bootes must
//! reject nothing Envoy accepts; the share of Envoy's rejections Bootes also
//! makes is reported, and must not fall below [`MIN_CAUGHT`].
//!
//! `BOOTES_DIFF_MUTANTS` (default 300) sets the number of mutants and
//! `BOOTES_DIFF_SEED` (default 13) the seed. A second test makes
//! `BOOTES_DIFF_SEMANTIC_MUTANTS` (default 150) mutants with the semantic
//! operators of issue 24 (`mutate::SEMANTIC_OPS`), with the same seed, and
//! reports caught and false rejects per class. With `BOOTES_DIFF_CORPUS=DIR`
//! it mutates the listeners and clusters of the Envoy bootstraps under
//! `DIR` instead (`differential::bootstrap_corpus`; those both validators
//! accept as they are): a corpus the rules were not written from.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, ensure, Result};
use bootes_tests::differential::{
    bootes_verdicts, bootstrap_corpus, cluster_targets, corpus, envoy_verdicts,
    mutate::{mutate, mutate_semantic, Op, Rng},
    Case, Verdict,
};
use bootes_tests::harness::{find_bootes_bin, find_envoy, test_dir};

/// The share of Envoy's rejections Bootes must catch in any run (issue 13).
const MIN_CAUGHT: f64 = 0.97;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// Whether Bootes' only objections are to a JSON shape that protobuf's C++
/// JSON parser (which Envoy uses for its bootstrap file) tolerates and the
/// proto3 JSON mapping does not: a single value where a list belongs, a list
/// as a list item. Over xDS there is no JSON: such a mutant says nothing
/// about what Envoy accepts as a resource.
fn json_notation(bootes_errors: &str) -> bool {
    bootes_errors
        .lines()
        .all(|l| l.contains(": expected a list, got ") || l.ends_with(", got a list"))
}

/// Whether Bootes' only objections are enum names in another case
/// (`codec_type: auto`): Envoy's file loader parses enums ignoring case, the
/// proto3 JSON mapping does not, and over xDS an enum is a number.
fn enum_case(bootes_errors: &str) -> bool {
    bootes_errors.lines().all(|l| {
        let Some((_, rest)) = l.split_once(": unknown value \"") else {
            return false;
        };
        let Some((value, rest)) = rest.split_once('"') else {
            return false;
        };
        rest.split_once("(expected one of ")
            .is_some_and(|(_, names)| {
                names
                    .trim_end_matches(')')
                    .split(", ")
                    .any(|n| n.eq_ignore_ascii_case(value))
            })
    })
}

/// Whether every Bootes error is about the Bootes object around the
/// resource (`spec`, `spec.service`, …), not about the resource in
/// `spec.config` (e.g. an Endpoint must list its endpoints or name a
/// Service): Envoy never sees that part.
fn outside_the_resource(bootes_errors: &str) -> bool {
    bootes_errors.lines().all(|l| {
        l.split(": ").nth(2).is_some_and(|path| {
            path != "spec.config"
                && !path.starts_with("spec.config.")
                && !path.starts_with("spec.config[")
        })
    })
}

/// At most 100 characters of `s`, for reports.
fn short(s: &str) -> String {
    match s.char_indices().nth(100) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[test]
fn bootes_rejects_nothing_envoy_accepts_and_catches_what_envoy_rejects() -> Result<()> {
    let wanted = env_number("BOOTES_DIFF_MUTANTS", 300) as usize;
    let seed = env_number("BOOTES_DIFF_SEED", 13);
    let envoy = find_envoy()?;
    let bootes = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN")?;
    let dir = test_dir("differential")?;

    let originals = corpus()?;
    let kinds: BTreeSet<&str> = originals.iter().map(|o| o.kind.as_str()).collect();
    ensure!(kinds.len() == 5, "the corpus has every kind: {kinds:?}");
    let targets: Vec<String> = {
        let mut all: Vec<String> = originals
            .iter()
            .flat_map(|o| cluster_targets(&o.config))
            .collect();
        all.sort();
        all.dedup();
        all
    };

    // The corpus itself is valid for both.
    let baseline: Vec<Case> = originals.iter().map(Case::as_is).collect();
    let envoy_says = envoy_verdicts(&envoy, dir.path(), &baseline, &targets, 2)?;
    let bootes_says = bootes_verdicts(&bootes, dir.path(), &baseline, &targets)?;
    for (o, (e, b)) in originals.iter().zip(envoy_says.iter().zip(&bootes_says)) {
        ensure!(
            e.accepted,
            "Envoy rejects corpus config {}: {}",
            o.source,
            e.message
        );
        ensure!(
            b.accepted,
            "Bootes rejects corpus config {}: {}",
            o.source,
            b.message
        );
    }

    // Mutants, round robin over the corpus, without duplicates.
    let mut rng = Rng::new(seed);
    let mut seen = BTreeSet::new();
    let mut cases = Vec::new();
    let mut meta = Vec::new();
    let mut attempts = 0;
    while cases.len() < wanted && attempts < wanted * 20 {
        let o = &originals[attempts % originals.len()];
        attempts += 1;
        let Some(m) = mutate(&o.config, &mut rng) else {
            continue;
        };
        if !seen.insert((o.kind.clone(), m.config.to_string())) {
            continue;
        }
        meta.push((o.source.clone(), m.op, m.path.clone(), m.value.clone()));
        cases.push(Case {
            kind: o.kind.clone(),
            original: o.config.clone(),
            config: m.config,
            twin: None,
        });
    }
    ensure!(
        cases.len() == wanted,
        "only {} distinct mutants",
        cases.len()
    );

    let envoy_says = envoy_verdicts(&envoy, dir.path(), &cases, &targets, 2)?;
    let bootes_says = bootes_verdicts(&bootes, dir.path(), &cases, &targets)?;

    let mut false_rejects = Vec::new();
    let mut notation = 0;
    let mut object_rules = Vec::new();
    let mut missed = Vec::new();
    // (Envoy rejects, Bootes catches) by kind and by operator.
    let mut by_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut by_op: BTreeMap<Op, (usize, usize)> = BTreeMap::new();
    for (i, (e, b)) in envoy_says.iter().zip(&bootes_says).enumerate() {
        let (source, op, path, value) = &meta[i];
        let what = format!(
            "mutant {i} of {source}: {} {path}{}",
            op.name(),
            value
                .as_ref()
                .map(|v| format!(" = {}", short(&v.to_string())))
                .unwrap_or_default()
        );
        match (e, b) {
            (
                Verdict { accepted: true, .. },
                Verdict {
                    accepted: false,
                    message,
                },
            ) if json_notation(message) => {
                notation += 1;
            }
            (
                Verdict { accepted: true, .. },
                Verdict {
                    accepted: false,
                    message,
                },
            ) if outside_the_resource(message) => {
                object_rules.push(format!("{what}\n    Bootes: {message}"));
            }
            (
                Verdict { accepted: true, .. },
                Verdict {
                    accepted: false,
                    message,
                },
            ) => {
                false_rejects.push(format!("{what}\n    Bootes: {message}"));
            }
            (
                Verdict {
                    accepted: false,
                    message,
                },
                b,
            ) => {
                let counts = by_kind.entry(cases[i].kind.as_str()).or_default();
                counts.0 += 1;
                let op_counts = by_op.entry(*op).or_default();
                op_counts.0 += 1;
                if b.accepted {
                    missed.push(format!("{what}\n    Envoy: {}", short(message.trim())));
                } else {
                    counts.1 += 1;
                    op_counts.1 += 1;
                }
            }
            _ => {}
        }
    }
    let rejected: usize = by_kind.values().map(|c| c.0).sum();
    let caught: usize = by_kind.values().map(|c| c.1).sum();
    let share = if rejected == 0 {
        1.0
    } else {
        caught as f64 / rejected as f64
    };
    eprintln!(
        "{} mutants (seed {seed}) of {} corpus configs: Envoy rejects {rejected}, Bootes catches {caught} ({:.1}%), {} false rejects",
        cases.len(),
        originals.len(),
        share * 100.0,
        false_rejects.len()
    );
    eprintln!(
        "  ({notation} mutants give a single value for a list, or a list for a list item: Envoy's file loader accepts that JSON, the proto3 JSON mapping and Bootes do not)"
    );
    eprintln!(
        "  ({} mutants break a rule of the Bootes object outside spec.config, which Envoy never sees)",
        object_rules.len()
    );
    for m in &object_rules {
        eprintln!("object rule: {m}");
    }
    for (kind, (r, c)) in &by_kind {
        eprintln!("  {kind}: {c} of {r}");
    }
    for (op, (r, c)) in &by_op {
        eprintln!("  {}: {c} of {r}", op.name());
    }
    for m in &missed {
        eprintln!("missed: {m}");
    }
    ensure!(
        false_rejects.is_empty(),
        "Bootes rejects {} mutants Envoy accepts:\n{}",
        false_rejects.len(),
        false_rejects.join("\n")
    );
    ensure!(
        share >= MIN_CAUGHT,
        "Bootes catches {:.1}% of Envoy's rejections, less than {:.1}%",
        share * 100.0,
        MIN_CAUGHT * 100.0
    );
    Ok(())
}

#[test]
fn semantic_mutants_bootes_rejects_nothing_envoy_accepts() -> Result<()> {
    let wanted = env_number("BOOTES_DIFF_SEMANTIC_MUTANTS", 150) as usize;
    let seed = env_number("BOOTES_DIFF_SEED", 13);
    let envoy = find_envoy()?;
    let bootes = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN")?;
    let dir = test_dir("differential-semantic")?;
    let mut originals = corpus()?;
    let outside = std::env::var("BOOTES_DIFF_CORPUS")
        .ok()
        .filter(|d| !d.is_empty());
    if let Some(outside) = &outside {
        originals = bootstrap_corpus(std::path::Path::new(outside))?;
    }
    let mut targets: Vec<String> = originals
        .iter()
        .flat_map(|o| cluster_targets(&o.config))
        .collect();
    targets.sort();
    targets.dedup();
    if outside.is_some() {
        // Only what both take as it is: some name files on their Envoy's
        // machine or need resources of their own bootstrap.
        let baseline: Vec<Case> = originals.iter().map(Case::as_is).collect();
        let envoy_says = envoy_verdicts(&envoy, dir.path(), &baseline, &targets, 2)?;
        let bootes_says = bootes_verdicts(&bootes, dir.path(), &baseline, &targets)?;
        let all = originals.len();
        let mut kept = Vec::new();
        let mut notation = 0;
        for (o, (e, b)) in originals
            .into_iter()
            .zip(envoy_says.iter().zip(&bootes_says))
        {
            if e.accepted && b.accepted {
                kept.push(o);
            } else if e.accepted && (json_notation(&b.message) || enum_case(&b.message)) {
                notation += 1;
            } else if e.accepted {
                // Bootes refusing a config Envoy takes is a false reject too.
                bail!(
                    "Bootes rejects {} that Envoy accepts: {}",
                    o.source,
                    b.message
                );
            }
        }
        eprintln!(
            "corpus {}: {} of {all} listeners and clusters taken by both as they are ({notation} left out for JSON notation only Envoy's file loader takes: enum names in lower case, single values for lists)",
            outside.as_deref().unwrap_or_default(),
            kept.len()
        );
        originals = kept;
    }
    let mut rng = Rng::new(seed);
    let mut seen = BTreeSet::new();
    let (mut cases, mut meta) = (Vec::new(), Vec::new());
    let mut attempts = 0;
    while cases.len() < wanted && attempts < wanted * 50 {
        let o = &originals[attempts % originals.len()];
        attempts += 1;
        let Some(m) = mutate_semantic(&o.config, &mut rng) else {
            continue;
        };
        let twin = m.twin.as_ref().map(|t| t.to_string()).unwrap_or_default();
        if !seen.insert((o.kind.clone(), m.config.to_string(), twin)) {
            continue;
        }
        let value = m
            .value
            .as_ref()
            .map(|v| format!(" = {}", short(&v.to_string())))
            .unwrap_or_default();
        meta.push((o.source.clone(), m.op, format!("{}{value}", m.path)));
        cases.push(Case {
            kind: o.kind.clone(),
            original: o.config.clone(),
            config: m.config,
            twin: m.twin,
        });
    }
    let envoy_says = envoy_verdicts(&envoy, dir.path(), &cases, &targets, 2)?;
    let bootes_says = bootes_verdicts(&bootes, dir.path(), &cases, &targets)?;
    // Per class: (mutants, Envoy rejects, Bootes catches, false rejects).
    let mut by_op: BTreeMap<Op, [usize; 4]> = BTreeMap::new();
    let mut false_rejects = Vec::new();
    let mut missed = Vec::new();
    for (i, (e, b)) in envoy_says.iter().zip(&bootes_says).enumerate() {
        let (source, op, path) = &meta[i];
        let counts = by_op.entry(*op).or_default();
        counts[0] += 1;
        let what = format!("mutant {i} of {source}: {} {path}", op.name());
        match (e.accepted, b.accepted) {
            (true, false) => {
                counts[3] += 1;
                false_rejects.push(format!("{what}\n    Bootes: {}", b.message));
            }
            (false, caught) => {
                counts[1] += 1;
                if caught {
                    missed.push(format!("{what}\n    Envoy: {}", short(e.message.trim())));
                } else {
                    counts[2] += 1;
                }
            }
            (true, true) => {}
        }
    }
    let rejected: usize = by_op.values().map(|c| c[1]).sum();
    let caught: usize = by_op.values().map(|c| c[2]).sum();
    eprintln!(
        "{} semantic mutants (seed {seed}): Envoy rejects {rejected}, Bootes catches {caught} ({:.1}%), {} false rejects",
        cases.len(),
        if rejected == 0 { 100.0 } else { caught as f64 * 100.0 / rejected as f64 },
        false_rejects.len()
    );
    for (op, [n, r, c, f]) in &by_op {
        eprintln!(
            "  {}: {n} mutants, Envoy rejects {r}, Bootes catches {c}, {f} false rejects",
            op.name()
        );
    }
    for m in &missed {
        eprintln!("missed: {m}");
    }
    ensure!(
        false_rejects.is_empty(),
        "Bootes rejects {} semantic mutants Envoy accepts:\n{}",
        false_rejects.len(),
        false_rejects.join("\n")
    );
    Ok(())
}
