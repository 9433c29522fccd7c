//! Route matching: path patterns and the route table.
//!
//! A pattern is exact (`/health`), may hold `*` for exactly one segment
//! (`/users/*/orders`), and may end in `/**`, which matches the prefix itself
//! and anything below it, segment-aware (`/admin/**` matches `/admin` and
//! `/admin/x`, never `/admin-x`).
//!
//! The table keeps first-match semantics without scanning every route: the
//! patterns are stored in a segment trie, a lookup walks only the branches the
//! path can follow and collects the indices of the routes whose pattern
//! matches, and the lowest index that also matches host and method wins. The
//! cost grows with the path's depth and the number of overlapping patterns,
//! not with the size of the table. Pure functions; no I/O.

use http::Method;
use std::collections::HashMap;
use std::fmt;

/// A parsed route path pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    segments: Vec<Segment>,
    /// Ends in `/**`.
    prefix: bool,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
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

    /// Whether `path` (already normalised) matches this pattern.
    pub fn matches(&self, path: &str) -> bool {
        let segs = path_segments(path);
        if self.prefix {
            segs.len() >= self.segments.len()
                && self.segments.iter().zip(&segs).all(|(p, s)| p.matches(s))
        } else {
            segs.len() == self.segments.len()
                && self.segments.iter().zip(&segs).all(|(p, s)| p.matches(s))
        }
    }

    /// Whether every path this pattern's `other` matches is matched by `self`
    /// (used to warn about shadowed routes; conservative: `false` when unsure).
    pub fn covers(&self, other: &Pattern) -> bool {
        let seg_covers = |a: &Segment, b: &Segment| match (a, b) {
            (Segment::Any, Segment::Literal(l)) => !l.is_empty(),
            (Segment::Any, Segment::Any) => true,
            (Segment::Literal(x), Segment::Literal(y)) => x == y,
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
    fn matches(&self, seg: &str) -> bool {
        match self {
            Segment::Literal(l) => l == seg,
            Segment::Any => !seg.is_empty(),
        }
    }
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
fn path_segments(path: &str) -> Vec<&str> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    }
}

/// What the table needs of a route to match it.
#[derive(Debug, Clone)]
pub struct RouteKey {
    pub host: Option<String>,
    pub pattern: Pattern,
    pub methods: Option<Vec<Method>>,
}

/// The outcome of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Index of the first matching route.
    Found(usize),
    /// The path matched, the method did not: the methods that would have.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

#[derive(Default, Debug)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    any: Option<Box<Node>>,
    /// Routes whose pattern ends exactly here.
    exact: Vec<usize>,
    /// Routes whose pattern ends here with `/**`.
    prefix: Vec<usize>,
}

/// The route table, built once per configuration.
#[derive(Debug)]
pub struct RouteTable {
    root: Node,
    keys: Vec<RouteKey>,
}

impl RouteTable {
    pub fn new(keys: Vec<RouteKey>) -> RouteTable {
        let mut root = Node::default();
        for (index, key) in keys.iter().enumerate() {
            let mut node = &mut root;
            for seg in &key.pattern.segments {
                node = match seg {
                    Segment::Literal(l) => node.literal.entry(l.as_str().into()).or_default(),
                    Segment::Any => node.any.get_or_insert_with(Default::default),
                };
            }
            if key.pattern.prefix {
                node.prefix.push(index);
            } else {
                node.exact.push(index);
            }
        }
        RouteTable { root, keys }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Finds the first route (in file order) matching host, path and method.
    /// `host` is lower-case without port; `path` is normalised.
    pub fn find(&self, host: Option<&str>, path: &str, method: &Method) -> Match {
        let segs = path_segments(path);
        let mut candidates = Vec::new();
        collect(&self.root, &segs, &mut candidates);
        candidates.sort_unstable();
        let mut path_matched = false;
        for &i in &candidates {
            let key = &self.keys[i];
            if key.host.as_deref().is_some_and(|h| Some(h) != host) {
                continue;
            }
            path_matched = true;
            if key.methods.as_ref().is_none_or(|m| m.contains(method)) {
                return Match::Found(i);
            }
        }
        if !path_matched {
            return Match::NotFound;
        }
        let mut allow: Vec<Method> = Vec::new();
        for &i in &candidates {
            let key = &self.keys[i];
            if key.host.as_deref().is_some_and(|h| Some(h) != host) {
                continue;
            }
            for m in key.methods.iter().flatten() {
                if !allow.contains(m) {
                    allow.push(m.clone());
                }
            }
        }
        Match::MethodNotAllowed(allow)
    }

    /// `(shadowed, by)` pairs: route `shadowed` can never match because the
    /// earlier route `by` matches every request it would.
    pub fn shadowed(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (j, later) in self.keys.iter().enumerate() {
            let by = self.keys[..j].iter().position(|earlier| {
                (earlier.host.is_none() || earlier.host == later.host)
                    && earlier.pattern.covers(&later.pattern)
                    && match (&earlier.methods, &later.methods) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(e), Some(l)) => l.iter().all(|m| e.contains(m)),
                    }
            });
            if let Some(i) = by {
                out.push((j, i));
            }
        }
        out
    }
}

fn collect(node: &Node, segs: &[&str], out: &mut Vec<usize>) {
    out.extend_from_slice(&node.prefix);
    let Some((first, rest)) = segs.split_first() else {
        out.extend_from_slice(&node.exact);
        return;
    };
    if let Some(child) = node.literal.get(*first) {
        collect(child, rest, out);
    }
    if let Some(any) = &node.any {
        if !first.is_empty() {
            collect(any, rest, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str, methods: Option<&[&str]>, host: Option<&str>) -> RouteKey {
        RouteKey {
            host: host.map(String::from),
            pattern: Pattern::parse(path).unwrap(),
            methods: methods.map(|ms| ms.iter().map(|m| m.parse().unwrap()).collect()),
        }
    }

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

    #[test]
    fn find_first_match_wins_in_file_order() {
        let table = RouteTable::new(vec![
            key("/orders/**", Some(&["GET"]), None),
            key("/orders/*", None, None),
            key("/orders/special", None, None),
        ]);
        assert_eq!(
            table.find(None, "/orders/special", &Method::GET),
            Match::Found(0)
        );
        assert_eq!(
            table.find(None, "/orders/special", &Method::POST),
            Match::Found(1)
        );
        assert_eq!(
            table.find(None, "/orders/a/b", &Method::GET),
            Match::Found(0)
        );
    }

    #[test]
    fn find_method_not_allowed_lists_allowed_methods() {
        let table = RouteTable::new(vec![
            key("/orders/**", Some(&["GET", "HEAD"]), None),
            key("/orders/**", Some(&["POST", "GET"]), None),
        ]);
        assert_eq!(
            table.find(None, "/orders/1", &Method::DELETE),
            Match::MethodNotAllowed(vec![Method::GET, Method::HEAD, Method::POST])
        );
        assert_eq!(table.find(None, "/other", &Method::DELETE), Match::NotFound);
    }

    #[test]
    fn find_host_restricts_routes() {
        let table = RouteTable::new(vec![
            key("/x", None, Some("api.example.com")),
            key("/y", Some(&["GET"]), None),
        ]);
        assert_eq!(
            table.find(Some("api.example.com"), "/x", &Method::GET),
            Match::Found(0)
        );
        assert_eq!(
            table.find(Some("other.example.com"), "/x", &Method::GET),
            Match::NotFound
        );
        assert_eq!(table.find(None, "/x", &Method::GET), Match::NotFound);
    }

    #[test]
    fn find_large_table_keeps_first_match() {
        let mut keys: Vec<RouteKey> = (0..1000)
            .map(|i| key(&format!("/svc{i}/**"), None, None))
            .collect();
        keys.push(key("/svc999/special", None, None));
        keys.insert(0, key("/svc500/*", Some(&["PUT"]), None));
        let table = RouteTable::new(keys);
        assert_eq!(
            table.find(None, "/svc999/special", &Method::GET),
            Match::Found(1000)
        );
        assert_eq!(table.find(None, "/svc500/a", &Method::PUT), Match::Found(0));
        assert_eq!(
            table.find(None, "/svc500/a", &Method::GET),
            Match::Found(501)
        );
    }

    #[test]
    fn shadowed_reports_unreachable_routes() {
        let table = RouteTable::new(vec![
            key("/orders/**", None, None),
            key("/orders/*", Some(&["GET"]), None),
            key("/other", Some(&["GET"]), None),
            key("/other", Some(&["GET", "POST"]), None),
        ]);
        assert_eq!(table.shadowed(), vec![(1, 0)]);
    }
}
