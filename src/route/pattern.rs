//! Route path patterns. A pattern is exact (`/health`), may hold `*` for
//! exactly one segment (`/users/*/orders`), and may end in `/**`, which
//! matches the prefix itself and anything below it, segment-aware
//! (`/admin/**` matches `/admin` and `/admin/x`, never `/admin-x`).
//!
//! Matching is case-sensitive unless a route sets `case_sensitive = false`:
//! then literals compare ASCII case-insensitively, for upstreams that fold
//! case (as Envoy's route option of the same name). Pure functions.

use std::fmt;

/// A parsed route path pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    pub(super) segments: Vec<Segment>,
    /// Ends in `/**`.
    pub(super) prefix: bool,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Segment {
    Literal(String),
    Any,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({})", self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Pattern {
    /// Parses a pattern as written in the config; the error is the reason.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err("must start with /".into());
        };
        let mut parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let prefix = parts.last() == Some(&"**");
        if prefix {
            parts.pop();
        }
        let mut segments = Vec::with_capacity(parts.len());
        let last = parts.len().saturating_sub(1);
        for (i, part) in parts.iter().enumerate() {
            segments.push(parse_segment(part, i == last && !prefix)?);
        }
        Ok(Pattern {
            segments,
            prefix,
            text: text.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` (already normalised) matches this pattern, compared
    /// case-sensitively.
    pub fn matches(&self, path: &str) -> bool {
        self.matches_case(path, true)
    }

    /// Whether `path` (already normalised) matches this pattern; with
    /// `case_sensitive = false` literal segments compare ASCII
    /// case-insensitively.
    pub fn matches_case(&self, path: &str, case_sensitive: bool) -> bool {
        let segs = path_segments(path);
        let len_ok = if self.prefix {
            segs.len() >= self.segments.len()
        } else {
            segs.len() == self.segments.len()
        };
        len_ok
            && self
                .segments
                .iter()
                .zip(&segs)
                .all(|(p, s)| p.matches(s, case_sensitive))
    }

    /// Whether every path this pattern's `other` matches is matched by `self`
    /// (used to warn about shadowed routes; conservative: `false` when unsure).
    pub fn covers(&self, other: &Pattern) -> bool {
        self.covers_case(true, other, true)
    }

    /// [`Pattern::covers`] for patterns with their `case_sensitive` setting:
    /// a case-insensitive `self` covers every case variant of a literal, and
    /// a case-sensitive `self` covers a case-insensitive literal only when
    /// the literal has no letter to vary.
    pub fn covers_case(
        &self,
        self_sensitive: bool,
        other: &Pattern,
        other_sensitive: bool,
    ) -> bool {
        let literal_covers = |x: &str, y: &str| {
            if !self_sensitive {
                x.eq_ignore_ascii_case(y)
            } else {
                x == y && (other_sensitive || !has_letter(y))
            }
        };
        let seg_covers = |a: &Segment, b: &Segment| match (a, b) {
            (Segment::Any, Segment::Literal(l)) => !l.is_empty(),
            (Segment::Any, Segment::Any) => true,
            (Segment::Literal(x), Segment::Literal(y)) => literal_covers(x, y),
            (Segment::Literal(_), Segment::Any) => false,
        };
        if self.prefix {
            other.segments.len() >= self.segments.len()
                && self
                    .segments
                    .iter()
                    .zip(&other.segments)
                    .all(|(a, b)| seg_covers(a, b))
        } else {
            !other.prefix
                && other.segments.len() == self.segments.len()
                && self
                    .segments
                    .iter()
                    .zip(&other.segments)
                    .all(|(a, b)| seg_covers(a, b))
        }
    }
}

impl Segment {
    fn matches(&self, seg: &str, case_sensitive: bool) -> bool {
        match self {
            Segment::Literal(l) if case_sensitive => l == seg,
            Segment::Literal(l) => l.eq_ignore_ascii_case(seg),
            Segment::Any => !seg.is_empty(),
        }
    }
}

pub(super) fn has_letter(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_alphabetic())
}

fn parse_segment(part: &str, is_last: bool) -> Result<Segment, String> {
    match part {
        "*" => Ok(Segment::Any),
        "**" => Err("\"**\" is only allowed as the last segment".into()),
        "" if is_last => Ok(Segment::Literal(String::new())),
        "" => Err("empty segment (//)".into()),
        "." | ".." => Err("dot segments are not allowed".into()),
        _ if part.contains('*') => Err("\"*\" must be a whole segment".into()),
        _ => match crate::target::normalize_path(&format!("/{part}")) {
            Ok(norm) if norm[1..] == *part => Ok(Segment::Literal(part.to_string())),
            Ok(_) => Err("write percent-encoded unreserved characters decoded".into()),
            Err(e) => Err(format!("segment {part:?}: {}", e.description())),
        },
    }
}

/// Splits a normalised path into segments: `/` is none, `/a/` is `a` and ``.
pub(super) fn path_segments(path: &str) -> Segments<'_> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.is_empty() {
        Segments::new()
    } else {
        rest.split('/').collect()
    }
}

/// A path's segments: on the stack for up to 16 (no allocation per
/// request for the paths APIs use).
pub(super) type Segments<'a> = smallvec::SmallVec<[&'a str; 16]>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::test_keys::key;
    use crate::route::{Match, RouteTable};
    use http::Method;

    #[test]
    fn pattern_table_matches_as_documented() {
        let cases = [
            ("/health", "/health", true),
            ("/health", "/health/", false),
            ("/health", "/healthz", false),
            ("/", "/", true),
            ("/", "/a", false),
            ("/**", "/", true),
            ("/**", "/anything/below", true),
            ("/admin/**", "/admin", true),
            ("/admin/**", "/admin/", true),
            ("/admin/**", "/admin/x/y", true),
            ("/admin/**", "/admin-x", false),
            ("/admin/**", "/administrator", false),
            ("/users/*/orders", "/users/42/orders", true),
            ("/users/*/orders", "/users/orders", false),
            ("/users/*/orders", "/users/42/orders/1", false),
            ("/users/*", "/users/", false),
            ("/Orders", "/orders", false),
            ("/a/", "/a/", true),
            ("/a/", "/a", false),
        ];
        for (pattern, path, want) in cases {
            let p = Pattern::parse(pattern).unwrap();
            assert_eq!(p.matches(path), want, "{pattern} vs {path}");
            let table = RouteTable::new(vec![key(pattern, None, None)]);
            let found = table.find(None, path, &Method::GET) == Match::Found(0);
            assert_eq!(found, want, "table: {pattern} vs {path}");
        }
    }

    #[test]
    fn pattern_parse_bad_patterns_are_refused() {
        for bad in [
            "", "health", "/a//b", "/a/**/b", "/a*", "/a/./b", "/a/../b", "/a\\b", "/a;b", "/%2F",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }
}
