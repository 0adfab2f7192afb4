//! Envoy's regular expressions are RE2's: a pattern RE2 cannot compile, or
//! whose compiled program is larger than Envoy's limit (100 instructions by
//! default), is rejected with the resource.
//!
//! RE2 is C++; Bootes has no C++ in its build, so the syntax is checked with
//! `regex-syntax` (the Rust `regex` crate's parser, whose syntax is RE2's)
//! where the two agree, and left to Envoy where they do not:
//!
//! * RE2 takes `\Q…\E` and `\C`, `regex-syntax` does not: patterns with them
//!   are not checked;
//! * RE2 takes octal escapes (`\012`) and refuses back references (`\1`,
//!   `\8`): both handled before parsing;
//! * RE2 refuses repetition counts over 1000: checked on the parsed pattern;
//! * `regex-syntax` takes more than RE2 in places (`\<`, `(?x)`, `(?u)`,
//!   more Unicode classes): those are Envoy's rejections Bootes misses, never
//!   a false rejection.
//!
//! The program size is RE2's measure, which only RE2 computes exactly.
//! [`program_size_at_least`] is a lower bound of it (every character or
//! class of the pattern is at least one instruction, a bounded repetition is
//! expanded, alternatives count their largest branch), so a pattern is
//! rejected only when RE2's program is surely too large.

use regex_syntax::hir::{Hir, HirKind, Look};

/// Envoy's default `re2.max_program_size.error_level`.
pub const MAX_PROGRAM_SIZE: u64 = 100;

/// RE2's largest repetition count.
const MAX_REPEAT: u32 = 1000;

/// The parsed pattern, or RE2's objection; `Ok(None)` when the pattern uses
/// what only RE2 parses (left to Envoy).
pub fn parse(pattern: &str) -> Result<Option<Hir>, String> {
    match escapes(pattern) {
        Escapes::Re2Only => return Ok(None),
        Escapes::BackReference(c) => {
            return Err(format!(
                "not a valid RE2 regular expression: invalid escape sequence \\{c} (RE2 has no back references)"
            ))
        }
        Escapes::Fine => {}
    }
    let hir = regex_syntax::ParserBuilder::new()
        .octal(true)
        .nest_limit(1000)
        .build()
        .parse(&literal_braces(pattern))
        .map_err(|e| {
            // The last line of the error names the problem; the rest draws it.
            let text = e.to_string();
            let line = text
                .lines()
                .rev()
                .find(|l| l.starts_with("error: "))
                .unwrap_or(&text)
                .trim_start_matches("error: ")
                .to_string();
            format!("not a valid RE2 regular expression: {line}")
        })?;
    if let Some(n) = largest_repeat(&hir).filter(|n| *n > MAX_REPEAT) {
        return Err(format!(
            "not a valid RE2 regular expression: repetition count {n} is more than RE2's {MAX_REPEAT}"
        ));
    }
    Ok(Some(hir))
}

/// RE2 takes a `{` that starts no repetition (`{n}`, `{n,}`, `{n,m}`) as
/// a literal, `regex-syntax` refuses it: escape those.
fn literal_braces(pattern: &str) -> String {
    let repetition = |rest: &str| {
        let Some(body) = rest.strip_prefix('{').and_then(|r| r.split_once('}')) else {
            return false;
        };
        let (min, max) = body.0.split_once(',').unwrap_or((body.0, "0"));
        !min.is_empty()
            && min.chars().all(|c| c.is_ascii_digit())
            && max.chars().all(|c| c.is_ascii_digit())
    };
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                let Some((_, next)) = chars.next() else { break };
                out.push(next);
                // \p{Greek}, \x{41}: the braces belong to the escape.
                if matches!(next, 'p' | 'P' | 'x') && chars.peek().is_some_and(|(_, c)| *c == '{') {
                    for (_, c) in chars.by_ref() {
                        out.push(c);
                        if c == '}' {
                            break;
                        }
                    }
                }
            }
            '{' if !repetition(&pattern[i..]) => out.push_str("\\{"),
            _ => out.push(c),
        }
    }
    out
}

enum Escapes {
    Fine,
    /// `\Q…\E` or `\C`, which only RE2 knows.
    Re2Only,
    /// `\1` to `\9` (but `\1N`… with an octal digit N is octal to RE2).
    BackReference(char),
}

fn escapes(pattern: &str) -> Escapes {
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            continue;
        }
        let Some(next) = chars.next() else { break };
        match next {
            'Q' | 'C' => return Escapes::Re2Only,
            '8' | '9' => return Escapes::BackReference(next),
            '1'..='7' if !chars.peek().is_some_and(|d| ('0'..='7').contains(d)) => {
                return Escapes::BackReference(next)
            }
            _ => {}
        }
    }
    Escapes::Fine
}

fn largest_repeat(hir: &Hir) -> Option<u32> {
    match hir.kind() {
        HirKind::Repetition(r) => {
            let own = r.max.unwrap_or(r.min).max(r.min);
            Some(largest_repeat(&r.sub).map_or(own, |n| n.max(own)))
        }
        HirKind::Capture(c) => largest_repeat(&c.sub),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => {
            subs.iter().filter_map(largest_repeat).max()
        }
        _ => None,
    }
}

/// A lower bound of the size of the program RE2 compiles `hir` to, as
/// Envoy measures it (`RE2::ProgramSize`).
pub fn program_size_at_least(hir: &Hir) -> u64 {
    // RE2 compiles a literal after `^` at the start apart (its "required
    // prefix"), outside the program.
    let body = match hir.kind() {
        HirKind::Concat(subs)
            if matches!(
                subs.first().map(Hir::kind),
                Some(HirKind::Look(Look::Start))
            ) =>
        {
            let rest = match subs.get(1).map(Hir::kind) {
                Some(HirKind::Literal(_)) => &subs[2..],
                _ => &subs[1..],
            };
            rest.iter().map(size).sum()
        }
        _ => size(hir),
    };
    // The instruction that fails and the one that matches.
    body + 2
}

fn size(hir: &Hir) -> u64 {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 0,
        HirKind::Literal(l) => String::from_utf8_lossy(&l.0).chars().count() as u64,
        HirKind::Class(_) => 1,
        HirKind::Repetition(r) => {
            let copies = r.max.unwrap_or(r.min).max(1);
            u64::from(copies).saturating_mul(size(&r.sub))
        }
        HirKind::Capture(c) => size(&c.sub),
        HirKind::Concat(subs) => subs.iter().map(size).sum(),
        HirKind::Alternation(subs) => subs.iter().map(size).max().unwrap_or(0),
    }
}

/// What is wrong with `pattern` for Envoy (`None`: nothing Bootes can see).
/// `max_program_size` is the limit in force (Envoy's default,
/// [`MAX_PROGRAM_SIZE`], unless the matcher sets its own).
pub fn problem(pattern: &str, max_program_size: u64) -> Option<String> {
    let hir = match parse(pattern) {
        Ok(Some(hir)) => hir,
        Ok(None) => return None,
        Err(e) => return Some(e),
    };
    let size = program_size_at_least(&hir);
    (size > max_program_size).then(|| {
        format!("RE2's program for it has at least {size} instructions, more than Envoy's limit of {max_program_size} (runtime key re2.max_program_size.error_level)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re2_syntax() {
        for ok in [
            "^/api/v[0-9]+/.*",
            "\\Qa.b\\E",
            "\\012",
            "\\0",
            "\\z",
            "(?P<n>a)",
            "(?<n>a)",
            "\\pN",
            "[[:word:]]",
            "\\C",
            "(?i)abc",
            "\\/x",
            "a{1000}b?",
            "a{,5}",
            "{}",
            "\\p{Greek}{2}",
            "[{]",
        ] {
            assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok).err());
        }
        for bad in ["((", "x{2,1}", "(?<=a)b", "(a)\\1", "a{1001}", "\\8", "\\Z"] {
            assert!(parse(bad).is_err(), "{bad} is refused");
        }
    }

    #[test]
    fn program_size_bound() {
        // Measured with Envoy 1.40: `a` × n and `a{n}` are n + 4.
        let bound = |p: &str| program_size_at_least(&parse(p).unwrap().unwrap());
        assert!(bound(&"a".repeat(98)) <= 102);
        assert!(bound("a{98}") <= 102);
        assert!(bound(&"a".repeat(99)) > MAX_PROGRAM_SIZE);
        // The literal after ^ is RE2's required prefix, outside the program.
        assert!(bound(&format!("^{}", "a".repeat(200))) <= MAX_PROGRAM_SIZE);
        assert_eq!(problem(&"a".repeat(98), MAX_PROGRAM_SIZE), None);
        assert!(problem("a{200}", MAX_PROGRAM_SIZE).is_some());
        assert_eq!(problem("a{200}", 1000), None);
    }
}
