//! The pure functions on every request's path: route matching (against
//! a linear scan), path normalisation and bearer parsing.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Method};
use std::hint::black_box;
use std::time::Duration;

use tokengate::auth::bearer::{self, Credential};
use tokengate::route::{Match, Pattern, RouteKey, RouteTable};
use tokengate::target::normalize_path;

use crate::BoxError;

/// Short runs: these are nanosecond functions, so 1 s + 3 s is plenty.
pub(crate) fn short(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

/// `n` routes of one realistic shape; the request matches only the last one.
pub(crate) fn route_keys(n: usize) -> Result<Vec<RouteKey>, String> {
    (0..n)
        .map(|i| {
            Ok(RouteKey {
                host: None,
                pattern: Pattern::parse(&format!("/svc{i}/v1/*/items/**"))?,
                methods: Some(vec![Method::GET, Method::HEAD]),
                case_sensitive: true,
            })
        })
        .collect()
}

/// The baseline the trie replaces: every pattern in file order.
pub(crate) fn linear_find(keys: &[RouteKey], path: &str, method: &Method) -> Option<usize> {
    keys.iter().position(|k| {
        k.methods.as_ref().is_none_or(|m| m.contains(method)) && k.pattern.matches(path)
    })
}

pub(crate) fn route_matching(c: &mut Criterion) -> Result<(), BoxError> {
    let mut group = c.benchmark_group("route_matching");
    short(&mut group);
    for n in [10, 1_000] {
        let keys = route_keys(n)?;
        let table = RouteTable::new(keys.clone());
        let path = format!("/svc{}/v1/42/items/7", n - 1);
        if table.find(None, &path, &Method::GET) != Match::Found(n - 1)
            || linear_find(&keys, &path, &Method::GET) != Some(n - 1)
        {
            return Err(
                format!("route_matching fixture: {path} must match route {}", n - 1).into(),
            );
        }
        group.bench_with_input(BenchmarkId::new("trie", n), path.as_str(), |b, path| {
            b.iter(|| table.find(black_box(None), black_box(path), &Method::GET))
        });
        group.bench_with_input(
            BenchmarkId::new("linear_scan", n),
            path.as_str(),
            |b, path| b.iter(|| linear_find(&keys, black_box(path), &Method::GET)),
        );
    }
    group.finish();
    Ok(())
}

pub(crate) fn normalize(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize_path");
    short(&mut group);
    let cases = [
        // Already normal: borrowed, no allocation.
        ("typical", "/api/v1/orders/12345/items"),
        // Unreserved escapes decoded, others upper-cased: allocates.
        ("escaped", "/api/v1/caf%c3%a9/%7Euser/a%20b%2Dc"),
    ];
    for (name, path) in cases {
        assert!(
            normalize_path(path).is_ok(),
            "normalize_path fixture {path}"
        );
        group.bench_with_input(BenchmarkId::from_parameter(name), path, |b, path| {
            b.iter(|| normalize_path(black_box(path)).map(|p| p.len()))
        });
    }
    group.finish();
}

/// A JWT-shaped token (header.payload.signature, about 900 bytes).
pub(crate) fn jwt_like() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let part = |len: usize, seed: usize| -> String {
        (0..len)
            .map(|i| ALPHABET[(i * 7 + seed) % ALPHABET.len()] as char)
            .collect()
    };
    format!(
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.{}.{}",
        part(520, 3),
        part(342, 11)
    )
}

pub(crate) fn bearer_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("bearer_parse");
    short(&mut group);
    let token = jwt_like();
    let mut headers = HeaderMap::new();
    match HeaderValue::from_str(&format!("Bearer {token}")) {
        Ok(v) => headers.insert(AUTHORIZATION, v),
        Err(e) => panic!("bearer_parse fixture: {e}"),
    };
    let cases = [
        ("header", None),
        // The query is scanned for a competing `access_token`.
        ("header_and_query", Some("page=2&limit=50&sort=created")),
    ];
    for (name, query) in cases {
        assert_eq!(
            bearer::extract(&headers, query, 8_192),
            Ok(Credential::Bearer(token.as_str())),
            "bearer_parse fixture {name}"
        );
        group.bench_with_input(BenchmarkId::from_parameter(name), &query, |b, query| {
            b.iter(|| bearer::extract(black_box(&headers), black_box(*query), 8_192).is_ok())
        });
    }
    group.finish();
}
