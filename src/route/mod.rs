//! Route matching: the first-match route table over [`Pattern`]s.
//!
//! | module | owns |
//! |---|---|
//! | [`pattern`] | path patterns: parsing, matching, covering |
//! | [`lint`] | what `tokengate check` reports: shadowed routes, protected routes a later public one catches |
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
//! Only matching is folded: the forwarded path stays as the client wrote it.
//! Pure functions; no I/O.

pub mod lint;
pub mod pattern;

use http::Method;
use std::borrow::Cow;
use std::collections::HashMap;

pub use lint::FallThrough;
pub use pattern::Pattern;
use pattern::{path_segments, Segment};

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
        // On the stack: a request matches a handful of routes at most.
        let mut candidates = smallvec::SmallVec::<[usize; 8]>::new();
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
}

/// The path with ASCII letters lower-cased, borrowed when there are none.
fn fold(path: &str) -> Cow<'_, str> {
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(path.to_ascii_lowercase())
    } else {
        Cow::Borrowed(path)
    }
}

fn collect(node: &Node, segs: &[&str], out: &mut smallvec::SmallVec<[usize; 8]>) {
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
pub(crate) mod test_keys {
    //! Route keys for the table and lint tests.
    use super::*;

    pub fn key(path: &str, methods: Option<&[&str]>, host: Option<&str>) -> RouteKey {
        RouteKey {
            host: host.map(String::from),
            pattern: Pattern::parse(path).unwrap(),
            methods: methods.map(|ms| ms.iter().map(|m| m.parse().unwrap()).collect()),
            case_sensitive: true,
        }
    }

    /// A route with `case_sensitive = false`.
    pub fn folded(path: &str, methods: Option<&[&str]>) -> RouteKey {
        RouteKey {
            case_sensitive: false,
            ..key(path, methods, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::{folded, key};
    use super::*;

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
}
