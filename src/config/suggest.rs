//! "Did you mean": the known key nearest to a misspelt one, so an unknown-key
//! error can name the fix (`audience` → `audiences`).

/// The candidate nearest to `word` by edit distance (ASCII case ignored), if
/// it is close enough to be a plausible typo: at most a third of the longer
/// word's length, and never fewer than 1 or more than 3 edits. Ties go to the
/// earlier candidate.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (distance(&word, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= (word.len().max(c.len()) / 3).clamp(1, 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over bytes (keys are ASCII).
fn distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER_KEYS: &[&str] = &[
        "issuer",
        "jwks_uri",
        "jwks_file",
        "discovery",
        "audiences",
        "algorithms",
        "leeway_s",
        "scope_claims",
        "introspection",
    ];

    #[test]
    fn nearest_finds_plausible_typos_only() {
        let cases: &[(&str, Option<&str>)] = &[
            ("audience", Some("audiences")),
            ("jwks_url", Some("jwks_uri")),
            ("Discovery", Some("discovery")),
            ("algorithm", Some("algorithms")),
            ("leeway", Some("leeway_s")),
            ("scopes_claims", Some("scope_claims")),
            ("isuer", Some("issuer")),
            ("introspect", Some("introspection")),
            ("audit_log", None),
            ("x", None),
            ("timeout_ms", None),
            ("", None),
        ];
        for (word, want) in cases {
            assert_eq!(nearest(word, ISSUER_KEYS), *want, "{word}");
        }
    }

    #[test]
    fn distance_counts_edits() {
        let cases = [
            ("", "", 0),
            ("abc", "", 3),
            ("listen", "lisen", 1),
            ("kitten", "sitting", 3),
            ("flaw", "lawn", 2),
        ];
        for (a, b, want) in cases {
            assert_eq!(distance(a, b), want, "{a} {b}");
            assert_eq!(distance(b, a), want, "{b} {a}");
        }
    }

    #[test]
    fn nearest_prefers_the_closest_then_the_first() {
        assert_eq!(nearest("abcd", &["abcx", "abxx"]), Some("abcx"));
        assert_eq!(nearest("abcd", &["abcx", "abcy"]), Some("abcx"));
    }
}
