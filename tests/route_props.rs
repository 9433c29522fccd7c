//! Property tests of the route table: on random tables and requests, the
//! segment trie agrees with the obvious first-match scan in file order
//! (pattern, host, method, `case_sensitive`, and the `Allow` list of a 405),
//! and a route reported as shadowed never matches.
//!
//! Patterns and paths are drawn from a few segments that differ only in case
//! or overlap as prefixes, so that matches, near misses and ties are common.

use http::Method;
use proptest::prelude::*;
use tokengate::route::{Match, Pattern, RouteKey, RouteTable};

/// Requests checked against each generated table.
const REQUESTS: usize = 24;

const SEGMENTS: &[&str] = &["a", "A", "b", "api", "Api", "API", "v1", "V1", "1"];
const HOSTS: &[&str] = &["a.example", "b.example"];
const METHODS: &[Method] = &[Method::GET, Method::POST, Method::DELETE, Method::PUT];

#[derive(Debug, Clone)]
struct Request {
    host: Option<String>,
    path: String,
    method: Method,
}

fn segment() -> impl Strategy<Value = String> {
    prop::sample::select(SEGMENTS).prop_map(String::from)
}

/// A valid pattern: literal or `*` segments, then nothing, `/**` or a
/// trailing `/`.
fn pattern() -> impl Strategy<Value = Pattern> {
    let seg = prop_oneof![3 => segment(), 1 => Just("*".to_string())];
    (prop::collection::vec(seg, 0..4), 0..3u8).prop_map(|(segs, end)| {
        let mut text = format!("/{}", segs.join("/"));
        match end {
            1 if segs.is_empty() => text.push_str("**"),
            1 => text.push_str("/**"),
            2 if !segs.is_empty() => text.push('/'),
            _ => {}
        }
        Pattern::parse(&text).unwrap_or_else(|e| panic!("generated {text:?}: {e}"))
    })
}

fn host() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        1 => prop::sample::select(HOSTS).prop_map(|h| Some(h.to_string())),
    ]
}

fn methods() -> impl Strategy<Value = Option<Vec<Method>>> {
    prop_oneof![
        1 => Just(None),
        1 => prop::sample::subsequence(METHODS[..3].to_vec(), 1..=3).prop_map(Some),
    ]
}

fn route_key() -> impl Strategy<Value = RouteKey> {
    (host(), pattern(), methods(), prop::bool::weighted(0.6)).prop_map(
        |(host, pattern, methods, case_sensitive)| RouteKey {
            host,
            pattern,
            methods,
            case_sensitive,
        },
    )
}

/// A path of up to five segments, sometimes with a trailing `/`, rarely
/// with an empty segment (never produced by normalisation, but both sides
/// must still agree).
fn path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![12 => segment(), 1 => Just(String::new())];
    (prop::collection::vec(seg, 0..5), prop::bool::weighted(0.2)).prop_map(|(segs, slash)| {
        let mut p = format!("/{}", segs.join("/"));
        if slash && !segs.is_empty() {
            p.push('/');
        }
        p
    })
}

fn request() -> impl Strategy<Value = Request> {
    (host(), path(), prop::sample::select(METHODS)).prop_map(|(host, path, method)| Request {
        host,
        path,
        method,
    })
}

/// The reference: every route in file order, no trie.
fn naive(keys: &[RouteKey], req: &Request) -> Match {
    let matching: Vec<(usize, &RouteKey)> = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.host.is_none() || k.host == req.host)
        .filter(|(_, k)| k.pattern.matches_case(&req.path, k.case_sensitive))
        .collect();
    if matching.is_empty() {
        return Match::NotFound;
    }
    if let Some((i, _)) = matching
        .iter()
        .find(|(_, k)| k.methods.as_ref().is_none_or(|m| m.contains(&req.method)))
    {
        return Match::Found(*i);
    }
    let mut allow: Vec<Method> = Vec::new();
    for m in matching
        .iter()
        .flat_map(|(_, k)| k.methods.iter().flatten())
    {
        if !allow.contains(m) {
            allow.push(m.clone());
        }
    }
    Match::MethodNotAllowed(allow)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn trie_agrees_with_first_match_scan(
        keys in prop::collection::vec(route_key(), 1..10),
        requests in prop::collection::vec(request(), REQUESTS),
    ) {
        let table = RouteTable::new(keys.clone());
        for req in &requests {
            let want = naive(&keys, req);
            let got = table.find(req.host.as_deref(), &req.path, &req.method);
            prop_assert_eq!(got, want, "{:?}", req);
        }
    }

    #[test]
    fn shadowed_route_never_matches(
        keys in prop::collection::vec(route_key(), 2..10),
        requests in prop::collection::vec(request(), REQUESTS),
    ) {
        let table = RouteTable::new(keys.clone());
        let shadowed = table.shadowed();
        for req in &requests {
            let found = table.find(req.host.as_deref(), &req.path, &req.method);
            for (j, by) in &shadowed {
                prop_assert_ne!(
                    &found,
                    &Match::Found(*j),
                    "routes[{}] reported shadowed by routes[{}] matched {:?}",
                    j,
                    by,
                    req
                );
            }
        }
    }
}
