//! URI templates (`/foo/{bar}/{rest=**}`) of the `uri_template` path
//! matcher and rewriter: the part of Envoy's grammar Bootes checks, which
//! Envoy refuses with "path_template … is invalid".
//!
//! Checked: `{` and `}` pair up without nesting; a variable is named
//! `[A-Za-z][A-Za-z0-9_]*` (before an optional `=pattern`); no name is used
//! twice. The rest of the grammar (which characters a literal takes, where
//! `**` may go, how many variables) is left to Envoy.

/// The problem with `template` (`None`: nothing Bootes checks is wrong).
pub fn problem(template: &str) -> Option<String> {
    let mut names: Vec<&str> = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Some("a } closes no {".into());
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find(['{', '}']) else {
            return Some("a { is never closed".into());
        };
        if after[close..].starts_with('{') {
            return Some("a variable contains a {".into());
        }
        let variable = &after[..close];
        let name = variable.split_once('=').map_or(variable, |(n, _)| n);
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Some(format!(
                "invalid variable name {}: a name is a letter followed by letters, digits and _",
                super::json::quote(name)
            ));
        }
        if names.contains(&name) {
            return Some(format!(
                "variable {} is named twice",
                super::json::quote(name)
            ));
        }
        names.push(name);
        rest = &after[close + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        // Each checked with Envoy 1.40 as a path_template.
        for ok in ["/foo/{bar}", "/foo/*/x", "/foo/**", "/foo/{x=**}/y"] {
            assert_eq!(problem(ok), None, "{ok}");
        }
        for bad in ["/foo/{bar", "/foo/{**}/x", "/{a}/{a}", "/foo/bar}"] {
            assert!(problem(bad).is_some(), "{bad}");
        }
    }
}
