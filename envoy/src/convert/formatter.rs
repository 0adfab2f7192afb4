//! Envoy's substitution formats (`%COMMAND%`), as header values and
//! access-log formats use them: the grammar of Envoy's format parser.
//!
//! A `%` starts a command, `%NAME%`, `%NAME(ARGS)%` or `%NAME(ARGS):N%`
//! (NAME of `A-Z`, `0-9`, `_`; ARGS without `)`; N digits), or is `%%`, a
//! literal `%`. Anything else is refused with the position ("Couldn't find
//! valid command at position N"). Whether NAME is a command Envoy knows is
//! not checked (formatter extensions add commands).

/// The index of the closing `%` of the command that starts at `start`, or
/// `None`: the caller reports `start`.
fn command_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    let name_start = i;
    while bytes
        .get(i)
        .is_some_and(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
    {
        i += 1;
    }
    if i == name_start {
        return None;
    }
    if bytes.get(i) == Some(&b'(') {
        i += 1;
        while bytes.get(i).is_some_and(|b| *b != b')') {
            i += 1;
        }
        bytes.get(i)?;
        i += 1;
    }
    if bytes.get(i) == Some(&b':') {
        let digits = i + 1;
        i += 1;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == digits {
            return None;
        }
    }
    (bytes.get(i) == Some(&b'%')).then_some(i)
}

/// The problem with `format`, in Envoy's words (`None`: it parses).
pub fn problem(format: &str) -> Option<String> {
    let bytes = format.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'%') {
            i += 2;
        } else {
            match command_end(bytes, i) {
                Some(end) => i = end + 1,
                None => {
                    return Some(format!(
                        "no valid %COMMAND% at position {i}: a % starts %NAME%, %NAME(ARGS)% or %NAME(ARGS):N% (NAME of A-Z, 0-9 and _), or is %% for a literal %"
                    ))
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoys_grammar() {
        // Each checked with Envoy 1.40 as a header value or access-log format.
        for ok in [
            "%REQ(x)%",
            "%%",
            "%DOWNSTREAM_REMOTE_ADDRESS%",
            "%UPSTREAM_METADATA([\"a\",\"b\"])%",
            "[%START_TIME%] \"%REQ(:METHOD)%\"\n",
            "%START_TIME(%Y)%",
            "%REQ(x):10%",
            "plain",
            "%FOO%",
        ] {
            assert_eq!(problem(ok), None, "{ok}");
        }
        for (bad, at) in [
            ("%START_TIME", 0),
            ("100%", 3),
            ("%REQ(%", 0),
            ("%REQ(x)%%", 8),
            ("%REQ(x):ab%", 0),
        ] {
            let p = problem(bad).unwrap_or_default();
            assert!(p.contains(&format!("position {at}:")), "{bad}: {p}");
        }
    }
}
