//! Route matching: path patterns and the route table.
//!
//! A pattern is exact (`/health`), may hold `*` for exactly one segment
//! (`/users/*/orders`), and may end in `/**`, which matches the prefix itself
//! and anything below it, segment-aware (`/admin/**` matches `/admin` and
//! `/admin/x`, never `/admin-x`).
//!
//! Matching is case-sensitive (the contract). A route with
//! `case_sensitive = false` compares its pattern ASCII case-insensitively, for
//! upstreams that fold case (as Envoy's route option of the same name): only
//! matching is folded, the forwarded path stays as the client wrote it.
//!
//! The table keeps first-match semantics without scanning every route: the
//! patterns are stored in a segment trie, a lookup walks only the branches the
//! path can follow and collects the indices of the routes whose pattern
//! matches, and the lowest index that also matches host and method wins. The
//! cost grows with the path's depth and the number of overlapping patterns,
//! not with the size of the table. Case-insensitive routes live in a second
//! trie keyed by lower-cased literals and are looked up with the lower-cased
//! path; the candidates of both tries are merged by index, so first match in
//! file order still holds, and a table without such routes never folds a path.
//! Pure functions; no I/O.

use http::Method;
use std::borrow::Cow;
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

fn has_letter(s: &str) -> bool {
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
    /// `false`: the pattern compares ASCII case-insensitively.
    pub case_sensitive: bool,
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

impl Node {
    /// Adds route `index` under `pattern`, literals lower-cased when `fold`.
    fn insert(&mut self, index: usize, pattern: &Pattern, fold: bool) {
        let mut node = self;
        for seg in &pattern.segments {
            node = match seg {
                Segment::Literal(l) if fold => node
                    .literal
                    .entry(l.to_ascii_lowercase().into())
                    .or_default(),
                Segment::Literal(l) => node.literal.entry(l.as_str().into()).or_default(),
                Segment::Any => node.any.get_or_insert_with(Default::default),
            };
        }
        if pattern.prefix {
            node.prefix.push(index);
        } else {
            node.exact.push(index);
        }
    }
}

/// A protected route whose requests a later public route catches when they
/// miss it by case or by method (see [`RouteTable::fall_through`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallThrough {
    /// The later route without required auth.
    pub public: usize,
    /// The earlier route with required auth.
    pub protected: usize,
    /// A case variant of the protected path misses it and reaches `public`.
    pub by_case: bool,
    /// A method the protected route does not list reaches `public`.
    pub by_method: bool,
}

/// The route table, built once per configuration.
#[derive(Debug)]
pub struct RouteTable {
    /// Case-sensitive routes.
    root: Node,
    /// Case-insensitive routes, literals lower-cased; `None` when there are
    /// none, so the common table never folds a path.
    folded: Option<Node>,
    keys: Vec<RouteKey>,
}

impl RouteTable {
    pub fn new(keys: Vec<RouteKey>) -> RouteTable {
        let mut root = Node::default();
        let mut folded: Option<Node> = None;
        for (index, key) in keys.iter().enumerate() {
            if key.case_sensitive {
                root.insert(index, &key.pattern, false);
            } else {
                folded
                    .get_or_insert_with(Node::default)
                    .insert(index, &key.pattern, true);
            }
        }
        RouteTable { root, folded, keys }
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
        let mut candidates = Vec::new();
        collect(&self.root, &path_segments(path), &mut candidates);
        if let Some(folded) = &self.folded {
            let lower = fold(path);
            collect(folded, &path_segments(&lower), &mut candidates);
        }
        candidates.sort_unstable();
        let host_ok = |key: &RouteKey| key.host.as_deref().is_none_or(|h| Some(h) == host);
        let mut path_matched = false;
        for &i in &candidates {
            let key = &self.keys[i];
            if !host_ok(key) {
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
            if !host_ok(key) {
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
                    && earlier.pattern.covers_case(
                        earlier.case_sensitive,
                        &later.pattern,
                        later.case_sensitive,
                    )
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

    /// The "fall-through to public" lint. `protected[i]` says whether route
    /// `i` requires a token. Reports each later unprotected route whose
    /// pattern covers an earlier protected route's pattern (for the same or
    /// every host) and so catches the requests that miss the protected one:
    /// a case variant of its path when it is case-sensitive (`/Api/admin`
    /// against `/api/admin/**`, harmful when the upstream folds case), or a
    /// method it does not list.
    pub fn fall_through(&self, protected: &[bool]) -> Vec<FallThrough> {
        let is_protected = |i: usize| protected.get(i).copied().unwrap_or(false);
        let mut out = Vec::new();
        for (j, public) in self.keys.iter().enumerate() {
            if is_protected(j) {
                continue;
            }
            for (i, guarded) in self.keys[..j].iter().enumerate() {
                if !is_protected(i)
                    || !(public.host.is_none() || public.host == guarded.host)
                    // The protected paths as written: those that miss it
                    // by method; case variants are looked at below.
                    || !public
                        .pattern
                        .covers_case(public.case_sensitive, &guarded.pattern, true)
                {
                    continue;
                }
                let by_case = guarded.case_sensitive && catches_case_variant(public, guarded);
                let by_method = match (&guarded.methods, &public.methods) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(g), Some(p)) => p.iter().any(|m| !g.contains(m)),
                };
                if by_case || by_method {
                    out.push(FallThrough {
                        public: j,
                        protected: i,
                        by_case,
                        by_method,
                    });
                }
            }
        }
        out
    }
}

/// Whether `public`, which covers the case-sensitive `guarded`, also matches
/// some case variant of a path `guarded` matches: some literal of `guarded`
/// with a letter sits where `public` is case-insensitive, has `*`, or has
/// already ended in `/**`.
fn catches_case_variant(public: &RouteKey, guarded: &RouteKey) -> bool {
    guarded
        .pattern
        .segments
        .iter()
        .enumerate()
        .any(|(k, seg)| match seg {
            Segment::Literal(l) if has_letter(l) => {
                !public.case_sensitive
                    || !matches!(public.pattern.segments.get(k), Some(Segment::Literal(_)))
            }
            _ => false,
        })
}

/// The path with ASCII letters lower-cased, borrowed when there are none.
fn fold(path: &str) -> Cow<'_, str> {
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(path.to_ascii_lowercase())
    } else {
        Cow::Borrowed(path)
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
            case_sensitive: true,
        }
    }

    /// A route with `case_sensitive = false`.
    fn folded(path: &str, methods: Option<&[&str]>) -> RouteKey {
        RouteKey {
            case_sensitive: false,
            ..key(path, methods, None)
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

    #[test]
    fn pattern_case_insensitive_table() {
        let cases = [
            ("/api/admin/**", "/Api/admin/x", false, true),
            ("/api/admin/**", "/API/ADMIN", false, true),
            ("/api/admin/**", "/Api/admin/x", true, false),
            ("/api/admin/**", "/api/admin/x", true, true),
            ("/Orders", "/orders", false, true),
            ("/Orders", "/ORDERS", false, true),
            ("/Orders", "/orders", true, false),
            ("/a%3A", "/A%3a", false, true),
            ("/users/*/orders", "/USERS/Me/Orders", false, true),
            ("/users/*/orders", "/users//orders", false, false),
            ("/admin/**", "/ADMIN-x", false, false),
        ];
        for (pattern, path, sensitive, want) in cases {
            let p = Pattern::parse(pattern).unwrap();
            assert_eq!(
                p.matches_case(path, sensitive),
                want,
                "{pattern} vs {path} case_sensitive={sensitive}"
            );
            let k = RouteKey {
                case_sensitive: sensitive,
                ..key(pattern, None, None)
            };
            let found = RouteTable::new(vec![k]).find(None, path, &Method::GET) == Match::Found(0);
            assert_eq!(
                found, want,
                "table: {pattern} vs {path} case_sensitive={sensitive}"
            );
        }
    }

    #[test]
    fn find_mixed_case_tables_keep_file_order() {
        let table = RouteTable::new(vec![
            key("/api/public", None, None),
            folded("/api/admin/**", None),
            key("/api/**", Some(&["GET"]), None),
            folded("/API/**", Some(&["POST"])),
            key("/**", None, None),
        ]);
        let cases = [
            ("/api/public", "GET", Match::Found(0)),
            ("/Api/public", "GET", Match::Found(4)),
            ("/Api/Public", "POST", Match::Found(3)),
            ("/api/admin/x", "GET", Match::Found(1)),
            ("/Api/admin/x", "GET", Match::Found(1)),
            ("/API/ADMIN", "DELETE", Match::Found(1)),
            ("/api/other", "GET", Match::Found(2)),
            ("/api/other", "POST", Match::Found(3)),
            ("/aPi/other", "PUT", Match::Found(4)),
            ("/else", "GET", Match::Found(4)),
        ];
        for (path, method, want) in cases {
            let got = table.find(None, path, &method.parse().unwrap());
            assert_eq!(got, want, "{method} {path}");
        }
    }

    #[test]
    fn find_case_insensitive_method_not_allowed_merges_both_tries() {
        let table = RouteTable::new(vec![
            folded("/orders/**", Some(&["GET"])),
            key("/orders/**", Some(&["POST"]), None),
        ]);
        assert_eq!(
            table.find(None, "/orders/1", &Method::DELETE),
            Match::MethodNotAllowed(vec![Method::GET, Method::POST])
        );
        assert_eq!(
            table.find(None, "/ORDERS/1", &Method::DELETE),
            Match::MethodNotAllowed(vec![Method::GET])
        );
    }

    #[test]
    fn shadowed_respects_case_sensitivity() {
        let table = RouteTable::new(vec![
            folded("/a/**", None),
            key("/A/b", None, None),
            key("/x/**", None, None),
            folded("/x/y", None),
            key("/*/**", None, None),
            folded("/Q/1", None),
        ]);
        // /X/y reaches routes[3] and not routes[2]; /q/1 has no letter left
        // for routes[4] to miss.
        assert_eq!(table.shadowed(), vec![(1, 0), (5, 4)]);
    }

    #[test]
    fn fall_through_table() {
        // (routes as (pattern, methods, case_sensitive, protected), expected
        // (public, protected, by_case, by_method)).
        type Route = (&'static str, Option<&'static [&'static str]>, bool, bool);
        type Found = (usize, usize, bool, bool);
        let cases: Vec<(Vec<Route>, Vec<Found>)> = vec![
            // The defect: a public catch-all after a case-sensitive prefix.
            (
                vec![
                    ("/api/admin/**", None, true, true),
                    ("/**", None, true, false),
                ],
                vec![(1, 0, true, false)],
            ),
            // Folded protected route: nothing falls through by case.
            (
                vec![
                    ("/api/admin/**", None, false, true),
                    ("/**", None, true, false),
                ],
                vec![],
            ),
            // Method fall-through.
            (
                vec![
                    ("/api/admin/**", Some(&["GET"]), false, true),
                    ("/api/**", None, true, false),
                ],
                vec![(1, 0, false, true)],
            ),
            (
                vec![
                    ("/api/admin/**", Some(&["GET"]), true, true),
                    ("/api/**", Some(&["GET", "POST"]), true, false),
                ],
                vec![(1, 0, true, true)],
            ),
            // The public route pins the letters: /Api/... misses both.
            (
                vec![
                    ("/api/**", None, true, true),
                    ("/api/**", Some(&["GET"]), true, false),
                ],
                vec![],
            ),
            // A case-insensitive public prefix catches /API/...
            (
                vec![
                    ("/api/**", None, true, true),
                    ("/api/**", None, false, false),
                ],
                vec![(1, 0, true, false)],
            ),
            // No letters to vary; the public route does not cover the protected one.
            (
                vec![
                    ("/v1/**", None, true, true),
                    ("/1/**", None, true, true),
                    ("/1/**", None, true, false),
                    ("/other/**", None, true, false),
                ],
                vec![],
            ),
            // Public before protected is shadowing, not fall-through.
            (
                vec![("/**", None, true, false), ("/api/**", None, true, true)],
                vec![],
            ),
            // Two protected routes, one catch-all: both reported.
            (
                vec![
                    ("/admin/**", None, true, true),
                    ("/ops/*", Some(&["GET"]), false, true),
                    ("/**", None, true, false),
                ],
                vec![(2, 0, true, false), (2, 1, false, true)],
            ),
        ];
        for (routes, want) in cases {
            let keys: Vec<RouteKey> = routes
                .iter()
                .map(|(p, m, cs, _)| RouteKey {
                    case_sensitive: *cs,
                    ..key(p, *m, None)
                })
                .collect();
            let protected: Vec<bool> = routes.iter().map(|r| r.3).collect();
            let got: Vec<Found> = RouteTable::new(keys)
                .fall_through(&protected)
                .into_iter()
                .map(|f| (f.public, f.protected, f.by_case, f.by_method))
                .collect();
            assert_eq!(got, want, "{routes:?}");
        }
    }

    #[test]
    fn fall_through_needs_a_matching_host() {
        let keys = vec![
            key("/admin/**", None, Some("a.example")),
            key("/**", None, Some("b.example")),
            key("/**", None, Some("a.example")),
            key("/**", None, None),
        ];
        let got: Vec<usize> = RouteTable::new(keys)
            .fall_through(&[true, false, false, false])
            .into_iter()
            .map(|f| f.public)
            .collect();
        assert_eq!(got, vec![2, 3]);
    }
}
