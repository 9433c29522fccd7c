//! Opaque tokens through real sockets (behavior.md section 4 and section 2's
//! 503 row; config.md `[issuers.NAME.introspection]`): the RFC 7662 request
//! the gateway sends, what counts as active, the positive and negative
//! caches and their lifetimes, one call for concurrent lookups of a token,
//! the bound on calls in flight, fail-closed answers when the endpoint cannot
//! be consulted, and which issuer an opaque token is sent to.
//!
//! Every case asserts the gateway's answer, the upstream's hit count and the
//! introspection endpoint's call count. The only sleeps let a 1 s cache TTL
//! (or a token's `exp`) pass; every other wait is bounded.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::idp::{form_decode, issuer_table, readyz, wait_ready, IntrospectFailure, TestIdp};
use common::mint::{claims, now, with, Key, AUD};
use common::{empty, request, within, Client, Gateway, Reply, Upstream};
use http::{Method, Request};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokengate::config::Config;
use tokio::task::JoinSet;

/// The gateway's client credentials: every character RFC 6749 section 2.3.1
/// makes it form-encode before base64 (space, `:`, `@`, `/`, `%`).
const CLIENT_ID: &str = "gate way:@/1";
const CLIENT_SECRET: &str = "p@ss:w/rd %";

/// One TTL of the short caches, plus a margin.
const PAST_ONE_SECOND: Duration = Duration::from_millis(1_150);

/// The `issuer` of the introspection-only issuer `name`.
fn iss(name: &str) -> String {
    format!("https://{name}.idp.test/")
}

/// An introspection-only issuer `name` (no key source) whose endpoint is
/// `idp`'s `/introspect`; `issuer` lines go into its issuer table, `extra`
/// lines into its `[introspection]` table.
fn introspection_issuer(name: &str, idp: &TestIdp, issuer: &str, extra: &str) -> String {
    format!(
        "[issuers.{name}]\nissuer = \"{}\"\naudiences = [\"{AUD}\"]\n{issuer}\n\n\
         [issuers.{name}.introspection]\nendpoint = \"{}\"\n\
         client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n{extra}\n",
        iss(name),
        idp.introspection_endpoint()
    )
}

/// An opaque bearer token (b64token syntax, no `.`) with characters that
/// must be escaped in a form body: `+`, `/`, `~`, `=`.
fn opaque(name: &str) -> String {
    format!("op+{name}/x~y==")
}

/// An active answer from issuer `corp` for our audience, valid for five
/// minutes, with `changes` applied (`null` removes a member).
fn active(changes: Value) -> Value {
    with(
        &json!({
            "active": true,
            "sub": "alice",
            "client_id": "app-1",
            "scope": "read write",
            "iss": iss("corp"),
            "aud": AUD,
            "exp": now() + 300,
            "token_type": "Bearer",
        }),
        changes,
    )
}

/// One introspection-only issuer `corp` at a fresh [`TestIdp`], an echo
/// upstream, and the routes `/read/**` (scope `read`), `/admin/**` (scope
/// `admin`), `/optional/**` (`auth = "optional"`) and `/api/**` (any valid
/// token).
struct Setup {
    idp: TestIdp,
    upstream: Upstream,
    gw: Gateway,
}

impl Setup {
    /// `introspection` lines go into `corp`'s `[introspection]` table.
    async fn start(introspection: &str) -> Setup {
        Setup::start_with("", introspection).await
    }

    /// `server` lines go into `[server]` as well.
    async fn start_with(server: &str, introspection: &str) -> Setup {
        Setup::start_full(server, "", introspection).await
    }

    /// `issuer` lines go into `corp`'s `[issuers.corp]` table as well.
    async fn start_with_issuer(issuer: &str, introspection: &str) -> Setup {
        Setup::start_full("", issuer, introspection).await
    }

    async fn start_full(server: &str, issuer: &str, introspection: &str) -> Setup {
        let idp = TestIdp::start().await;
        let upstream = Upstream::echo().await;
        let toml = format!(
            r#"
[server]
{server}

[admin]
listen = "127.0.0.1:0"

{}
[upstreams.echo]
url = "{}"

[[routes]]
path = "/read/**"
upstream = "echo"
scopes = ["read"]

[[routes]]
path = "/admin/**"
upstream = "echo"
scopes = ["admin"]

[[routes]]
path = "/optional/**"
upstream = "echo"
auth = "optional"

[[routes]]
path = "/api/**"
upstream = "echo"
"#,
            introspection_issuer("corp", &idp, issuer, introspection),
            upstream.url()
        );
        let gw = Gateway::start(&toml).await;
        Setup { idp, upstream, gw }
    }

    async fn call(&self, path: &str, token: &str) -> Reply {
        call(self.gw.addr(), path, token).await
    }
}

/// `GET path` with the bearer `token` and spoofed identity headers.
async fn call(addr: SocketAddr, path: &str, token: &str) -> Reply {
    let req = Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .header("x-auth-subject", "mallory")
        .header("x-auth-client-id", "evil-app")
        .header("x-auth-scope", "admin read write")
        .body(empty())
        .expect("request");
    Client::h1().fetch(addr, req).await
}

/// 401 `invalid_token` with its challenge.
fn assert_invalid_token(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        401,
        "{what}: {:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.gateway_error(401)["error"], "invalid_token", "{what}");
    let challenge = reply.header("www-authenticate").expect("challenge");
    assert!(
        challenge.starts_with("Bearer realm=\"tokengate\""),
        "{what}: {challenge}"
    );
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
}

/// 503 `temporarily_unavailable` with `Retry-After` and no challenge.
fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        503,
        "{what}: {:?}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.gateway_error(503);
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    assert!(
        reply.header("www-authenticate").is_none(),
        "{what}: no challenge on 503"
    );
    let retry = reply.header("retry-after").expect("Retry-After");
    assert!(retry.parse::<u32>().is_ok_and(|s| s > 0), "{what}: {retry}");
}

fn assert_ok(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        200,
        "{what}: {:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("x-upstream"), Some("echo"), "{what}");
}

/// One form-encoded component, decoded.
fn form_unescape(component: &str) -> String {
    let pairs = form_decode(&format!("v={component}"))
        .unwrap_or_else(|| panic!("not form-encoded: {component:?}"));
    assert_eq!(pairs.len(), 1, "an unescaped `&` in {component:?}");
    pairs.into_iter().next().map(|(_, v)| v).unwrap_or_default()
}

fn sorted(mut form: Vec<(String, String)>) -> Vec<(String, String)> {
    form.sort();
    form
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    sorted(
        items
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
}

/// Sleeps until the wall clock is past `exp` (seconds since the epoch).
async fn sleep_past(exp: i64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    let target = Duration::from_secs(exp as u64) + Duration::from_millis(50);
    tokio::time::sleep(target.saturating_sub(now)).await;
}

#[tokio::test]
async fn request_shape_client_secret_basic_form_encodes_credentials_and_keeps_the_token_out_of_the_url(
) {
    let s = Setup::start("auth_method = \"client_secret_basic\"").await;
    let token = opaque("basic");
    s.idp.set_introspection(&token, active(json!({})));

    let reply = s.call("/api/x", &token).await;
    assert_ok(&reply, "active token");
    assert_eq!(s.upstream.hits(), 1);
    assert_eq!(s.idp.introspect_hits(), 1);

    let call = s.idp.last_introspect_call();
    assert_eq!(call.method, Method::POST);
    assert_eq!(call.uri.path(), "/introspect");
    assert_eq!(call.uri.query(), None, "nothing in the URL query");
    assert_eq!(
        call.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(call.header("accept"), Some("application/json"));
    assert_eq!(
        sorted(call.form()),
        pairs(&[("token", &token), ("token_type_hint", "access_token")]),
        "exactly the token and the hint; client credentials are not in the body"
    );
    let raw = String::from_utf8(call.body.to_vec()).expect("UTF-8 body");
    assert!(
        !raw.contains(&token),
        "`+` and `/` of the token are escaped: {raw:?}"
    );

    // RFC 6749 section 2.3.1: base64(form(id) ":" form(secret)).
    let basic = call
        .header("authorization")
        .expect("Authorization")
        .strip_prefix("Basic ")
        .expect("Basic scheme");
    let decoded = STANDARD.decode(basic).expect("base64 credentials");
    let decoded = String::from_utf8(decoded).expect("UTF-8 credentials");
    assert_eq!(
        decoded.matches(':').count(),
        1,
        "the `:` inside id and secret are escaped: {decoded:?}"
    );
    let (id, secret) = decoded.split_once(':').expect("id:secret");
    for part in [id, secret] {
        assert!(
            !part.contains([' ', '@', '/']),
            "not form-encoded: {part:?}"
        );
    }
    assert_eq!(form_unescape(id), CLIENT_ID);
    assert_eq!(form_unescape(secret), CLIENT_SECRET);
}

#[tokio::test]
async fn request_shape_client_secret_post_puts_credentials_in_the_body_only() {
    let s = Setup::start("auth_method = \"client_secret_post\"").await;
    let token = opaque("post");
    s.idp.set_introspection(&token, active(json!({})));

    let reply = s.call("/api/x", &token).await;
    assert_ok(&reply, "active token");
    assert_eq!(s.upstream.hits(), 1);
    assert_eq!(s.idp.introspect_hits(), 1);

    let call = s.idp.last_introspect_call();
    assert_eq!(call.method, Method::POST);
    assert_eq!(call.uri.query(), None);
    assert_eq!(
        call.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(call.header("accept"), Some("application/json"));
    assert!(
        call.header("authorization").is_none(),
        "client_secret_post sends no Authorization header"
    );
    assert_eq!(
        sorted(call.form()),
        pairs(&[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("token", &token),
            ("token_type_hint", "access_token"),
        ])
    );
}

#[tokio::test]
async fn active_answer_forwards_with_identity_headers_from_the_answer() {
    let s = Setup::start("").await;
    let full = opaque("full");
    s.idp.set_introspection(
        &full,
        active(json!({"sub": "bob", "client_id": "app-7", "scope": "read audit"})),
    );
    let reply = s.call("/read/x", &full).await;
    assert_ok(&reply, "full answer");
    let seen = s.upstream.last();
    assert_eq!(seen.header("x-auth-subject"), Some("bob"));
    assert_eq!(seen.header("x-auth-client-id"), Some("app-7"));
    assert_eq!(seen.header("x-auth-scope"), Some("read audit"));

    // RFC 7662 requires only `active`; absent claims are not forwarded, and
    // the spoofed values never are.
    let minimal = opaque("minimal");
    s.idp
        .set_introspection(&minimal, json!({"active": true, "scope": "read"}));
    let reply = s.call("/read/x", &minimal).await;
    assert_ok(&reply, "minimal answer");
    let seen = s.upstream.last();
    assert!(!seen.has("x-auth-subject"), "no sub, no header");
    assert!(!seen.has("x-auth-client-id"), "no client_id, no header");
    assert_eq!(seen.header("x-auth-scope"), Some("read"));

    assert_eq!(s.upstream.hits(), 2);
    assert_eq!(s.idp.introspect_hits(), 2);
}

#[tokio::test]
async fn only_the_boolean_true_is_active() {
    let s = Setup::start("").await;
    let cases = [
        ("false", active(json!({"active": false}))),
        ("string \"true\"", active(json!({"active": "true"}))),
        ("number 1", active(json!({"active": 1}))),
        ("object", active(json!({"active": {"value": true}}))),
        ("missing", active(json!({"active": null}))),
    ];
    for (n, (what, answer)) in cases.iter().enumerate() {
        let token = opaque(&format!("inactive{n}"));
        s.idp.set_introspection(&token, answer.clone());
        let reply = s.call("/read/x", &token).await;
        assert_invalid_token(&reply, what);
        assert_eq!(s.idp.introspect_hits(), n + 1, "{what}");
    }
    // A token the endpoint does not know: its default `{"active": false}`.
    let reply = s.call("/read/x", &opaque("unknown")).await;
    assert_invalid_token(&reply, "unknown token");
    assert_eq!(s.idp.introspect_hits(), cases.len() + 1);
    assert_eq!(s.upstream.hits(), 0, "no inactive token was forwarded");
}

#[tokio::test]
async fn active_answers_with_refused_members_are_invalid_token() {
    let s = Setup::start("").await;
    let refused = [
        ("exp in the past", json!({"exp": now() - 10})),
        ("foreign iss", json!({"iss": "https://evil.test/"})),
        (
            "aud string without ours",
            json!({"aud": "https://other.test"}),
        ),
        (
            "aud array without ours",
            json!({"aud": ["https://other.test", "https://api.test/"]}),
        ),
        ("token_type DPoP", json!({"token_type": "DPoP"})),
        (
            "cnf",
            json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
        ),
    ];
    for (n, (what, changes)) in refused.iter().enumerate() {
        let token = opaque(&format!("refused{n}"));
        s.idp.set_introspection(&token, active(changes.clone()));
        let reply = s.call("/read/x", &token).await;
        assert_invalid_token(&reply, what);
        assert_eq!(s.idp.introspect_hits(), n + 1, "{what}");
    }
    assert_eq!(s.upstream.hits(), 0, "no refused token was forwarded");

    // The same members with acceptable values pass.
    let accepted = [
        (
            "aud array with ours",
            json!({"aud": ["https://other.test", AUD]}),
        ),
        (
            "no iss, aud, exp or token_type",
            json!({"iss": null, "aud": null, "exp": null, "token_type": null}),
        ),
    ];
    for (n, (what, changes)) in accepted.iter().enumerate() {
        let token = opaque(&format!("accepted{n}"));
        s.idp.set_introspection(&token, active(changes.clone()));
        assert_ok(&s.call("/read/x", &token).await, what);
    }
    assert_eq!(s.upstream.hits(), accepted.len());
    assert_eq!(s.idp.introspect_hits(), refused.len() + accepted.len());
}

/// RFC 7662 section 2.2: `nbf` in an active answer is honoured with the
/// issuer's `leeway_s` (here 5 s), as a JWT's `nbf` is.
#[tokio::test]
async fn active_answer_not_yet_valid_beyond_leeway_is_invalid_token() {
    let s = Setup::start_with_issuer("leeway_s = 5", "").await;
    let cases = [
        ("nbf an hour ahead", now() + 3_600, false),
        ("nbf a minute ahead", now() + 60, false),
        ("nbf within leeway", now() + 2, true),
        ("nbf now", now(), true),
        ("nbf in the past", now() - 60, true),
    ];
    for (n, (what, nbf, valid)) in cases.iter().enumerate() {
        let token = opaque(&format!("nbf{n}"));
        s.idp
            .set_introspection(&token, active(json!({ "nbf": nbf })));
        let reply = s.call("/read/x", &token).await;
        if *valid {
            assert_ok(&reply, what);
        } else {
            assert_invalid_token(&reply, what);
            let challenge = reply.header("www-authenticate").unwrap_or_default();
            assert!(challenge.contains("not yet valid"), "{what}: {challenge}");
        }
    }
    let forwarded = cases.iter().filter(|c| c.2).count();
    assert_eq!(s.upstream.hits(), forwarded, "no early token was forwarded");
    assert_eq!(s.idp.introspect_hits(), cases.len());
}

#[tokio::test]
async fn active_answers_are_cached_for_cache_ttl_then_asked_again() {
    let s = Setup::start("cache_ttl_s = 1").await;
    let token = opaque("revoked");
    s.idp.set_introspection(&token, active(json!({})));
    assert_ok(&s.call("/read/x", &token).await, "first use");
    assert_eq!(s.idp.introspect_hits(), 1);

    // Revoked at the IdP: within the TTL the cached answer still holds.
    s.idp.set_introspection(&token, json!({"active": false}));
    for n in 0..5 {
        assert_ok(&s.call("/read/x", &token).await, &format!("cached use {n}"));
    }
    assert_eq!(
        s.idp.introspect_hits(),
        1,
        "repeats within the TTL: no call"
    );
    assert_eq!(s.upstream.hits(), 6);

    tokio::time::sleep(PAST_ONE_SECOND).await;
    let reply = s.call("/read/x", &token).await;
    assert_invalid_token(&reply, "after the TTL the revocation is seen");
    assert_eq!(s.idp.introspect_hits(), 2);
    assert_eq!(s.upstream.hits(), 6);
}

#[tokio::test]
async fn active_answers_are_cached_no_longer_than_their_exp() {
    let s = Setup::start("cache_ttl_s = 60\nnegative_cache_ttl_s = 60").await;
    let token = opaque("short");
    let exp = now() + 2;
    s.idp.set_introspection(&token, active(json!({"exp": exp})));
    assert_ok(&s.call("/read/x", &token).await, "first use");
    assert_ok(&s.call("/read/x", &token).await, "cached use");
    assert_eq!(s.idp.introspect_hits(), 1);
    assert_eq!(s.upstream.hits(), 2);

    // The entry lived min(cache_ttl_s, exp - now): past exp the gateway asks
    // again, and the (unchanged) answer is now expired.
    sleep_past(exp).await;
    let reply = s.call("/read/x", &token).await;
    assert_invalid_token(&reply, "past exp");
    assert_eq!(s.idp.introspect_hits(), 2, "the cached entry ended at exp");
    let reply = s.call("/read/x", &token).await;
    assert_invalid_token(&reply, "past exp, again");
    assert_eq!(
        s.idp.introspect_hits(),
        2,
        "the refusal is remembered like an inactive answer"
    );
    assert_eq!(s.upstream.hits(), 2);
}

#[tokio::test]
async fn inactive_answers_are_cached_for_negative_cache_ttl() {
    let s = Setup::start("negative_cache_ttl_s = 1").await;
    let token = opaque("late");
    assert_invalid_token(&s.call("/read/x", &token).await, "inactive");
    assert_eq!(s.idp.introspect_hits(), 1);

    // Activated at the IdP: within the negative TTL the refusal holds.
    s.idp.set_introspection(&token, active(json!({})));
    for n in 0..3 {
        let reply = s.call("/read/x", &token).await;
        assert_invalid_token(&reply, &format!("remembered refusal {n}"));
    }
    assert_eq!(
        s.idp.introspect_hits(),
        1,
        "no call within the negative TTL"
    );
    assert_eq!(s.upstream.hits(), 0);

    tokio::time::sleep(PAST_ONE_SECOND).await;
    assert_ok(&s.call("/read/x", &token).await, "after the negative TTL");
    assert_eq!(s.idp.introspect_hits(), 2);
    assert_eq!(s.upstream.hits(), 1);
}

#[tokio::test]
async fn concurrent_lookups_of_one_token_make_one_call_also_when_it_fails() {
    let s = Setup::start("").await;
    let token = opaque("popular");
    s.idp.set_introspection(&token, active(json!({})));
    s.idp.set_introspect_delay(Duration::from_millis(300));

    let mut requests = JoinSet::new();
    for _ in 0..100 {
        let (addr, token) = (s.gw.addr(), token.clone());
        requests.spawn(async move { call(addr, "/read/x", &token).await });
    }
    let replies = within("100 concurrent requests", requests.join_all()).await;
    for reply in &replies {
        assert_ok(reply, "coalesced lookup");
    }
    assert_eq!(s.idp.introspect_hits(), 1, "one introspection call for 100");
    assert_eq!(s.idp.introspect_max_in_flight(), 1);
    assert_eq!(s.upstream.hits(), 100);

    // A failing endpoint is not hammered either: one call, every waiter
    // gets the 503, and the failure is not remembered afterwards.
    let token = opaque("popular-failing");
    s.idp.set_introspection(&token, active(json!({})));
    s.idp.set_introspect_failure(IntrospectFailure::Status500);
    let mut requests = JoinSet::new();
    for _ in 0..50 {
        let (addr, token) = (s.gw.addr(), token.clone());
        requests.spawn(async move { call(addr, "/read/x", &token).await });
    }
    let replies = within("50 concurrent requests", requests.join_all()).await;
    for reply in &replies {
        assert_unavailable(reply, "coalesced failure");
    }
    assert_eq!(
        s.idp.introspect_hits(),
        2,
        "one call for 50 failing lookups"
    );
    s.idp.set_introspect_failure(IntrospectFailure::None);
    assert_ok(&s.call("/read/x", &token).await, "after the failure");
    assert_eq!(s.idp.introspect_hits(), 3);
    assert_eq!(s.upstream.hits(), 101);
}

#[tokio::test]
async fn max_concurrent_bounds_calls_in_flight_and_sheds_the_rest_fast() {
    let s = Setup::start("max_concurrent = 2\ntimeout_ms = 10000").await;
    let tokens: Vec<String> = (0..10).map(|n| opaque(&format!("flood{n}"))).collect();
    for token in &tokens {
        s.idp.set_introspection(token, active(json!({})));
    }

    // The endpoint holds every answer: two calls take the permits and keep
    // them, so the other eight must be refused without waiting for it.
    s.idp.hold_introspection();
    let mut requests = JoinSet::new();
    for token in tokens.clone() {
        let addr = s.gw.addr();
        requests.spawn(async move { call(addr, "/read/x", &token).await });
    }
    for n in 0..8 {
        let reply = within("a shed request", requests.join_next())
            .await
            .expect("a request")
            .expect("request task");
        assert_unavailable(&reply, &format!("shed request {n}"));
    }
    s.idp.wait_introspect_hits(2).await;
    assert_eq!(s.idp.introspect_hits(), 2, "only two calls were made");
    assert_eq!(s.idp.introspect_in_flight(), 2, "both still held");
    assert_eq!(s.upstream.hits(), 0);

    s.idp.release_introspection();
    let held = within("the held requests", requests.join_all()).await;
    assert_eq!(held.len(), 2);
    for reply in &held {
        assert_ok(reply, "held request");
    }
    assert_eq!(s.idp.introspect_max_in_flight(), 2, "never more than two");
    assert_eq!(s.idp.introspect_hits(), 2);
    assert_eq!(s.upstream.hits(), 2);

    // Shedding is not remembered: each shed token now gets its own call
    // (the two answered ones are cached).
    for token in &tokens {
        assert_ok(&s.call("/read/x", token).await, "after the flood");
    }
    assert_eq!(s.idp.introspect_hits(), 10);
    assert_eq!(s.upstream.hits(), 12);
}

#[tokio::test]
async fn endpoint_failures_are_503_never_cached_and_keep_the_gateway_ready() {
    let s = Setup::start("timeout_ms = 200").await;
    let token = opaque("flaky");
    s.idp.set_introspection(&token, active(json!({})));

    // An issuer with introspection and no key source needs nothing to be ready.
    assert_eq!(readyz(&s.gw).await.status, 200, "ready without any call");
    assert_eq!(s.idp.total_hits(), 0);

    let failures = [
        IntrospectFailure::Hang,
        IntrospectFailure::Status500,
        IntrospectFailure::Html,
        IntrospectFailure::Unauthorized,
        IntrospectFailure::Forbidden,
        IntrospectFailure::NotAnObject,
    ];
    let mut calls = 0;
    for failure in failures {
        s.idp.set_introspect_failure(failure);
        for attempt in 0..2 {
            let what = format!("{failure:?}, attempt {attempt}");
            let reply = s.call("/read/x", &token).await;
            assert_unavailable(&reply, &what);
            calls += 1;
            assert_eq!(s.idp.introspect_hits(), calls, "{what}: not cached");
        }
        let ready = readyz(&s.gw).await;
        assert_eq!(ready.status, 200, "{failure:?}: /readyz stays 200");
    }
    assert_eq!(s.upstream.hits(), 0, "nothing unchecked was forwarded");

    s.idp.set_introspect_failure(IntrospectFailure::None);
    assert_ok(&s.call("/read/x", &token).await, "endpoint recovered");
    assert_eq!(s.idp.introspect_hits(), calls + 1);
    assert_eq!(s.upstream.hits(), 1);
}

#[tokio::test]
async fn optional_route_never_downgrades_an_opaque_token_it_cannot_accept() {
    let s = Setup::start("timeout_ms = 200").await;
    let anonymous =
        s.gw.send(&Client::h1(), request("GET", "/optional/x"))
            .await;
    assert_ok(&anonymous, "no token");
    assert_eq!(s.upstream.hits(), 1);

    let inactive = opaque("optional-inactive");
    let reply = s.call("/optional/x", &inactive).await;
    assert_invalid_token(&reply, "inactive token on an optional route");
    assert_eq!(s.idp.introspect_hits(), 1);

    let unchecked = opaque("optional-unchecked");
    s.idp.set_introspection(&unchecked, active(json!({})));
    s.idp.set_introspect_failure(IntrospectFailure::Status500);
    let reply = s.call("/optional/x", &unchecked).await;
    assert_unavailable(&reply, "endpoint failing on an optional route");
    assert_eq!(s.idp.introspect_hits(), 2);
    assert_eq!(s.upstream.hits(), 1, "neither was forwarded anonymously");
}

#[tokio::test]
async fn introspection_calls_are_counted_per_issuer_and_result() {
    let idp = TestIdp::start().await;
    let upstream = Upstream::echo().await;
    let toml = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n{}\n[upstreams.echo]\nurl = \"{}\"\n\n\
         [[routes]]\npath = \"/api/**\"\nupstream = \"echo\"\n",
        introspection_issuer("metered", &idp, "", ""),
        upstream.url()
    );
    let gw = Gateway::start(&toml).await;
    let good = opaque("metered-good");
    idp.set_introspection(&good, json!({"active": true}));
    assert_ok(&call(gw.addr(), "/api/x", &good).await, "active");
    assert_ok(&call(gw.addr(), "/api/x", &good).await, "cached");
    assert_invalid_token(
        &call(gw.addr(), "/api/x", &opaque("metered-bad")).await,
        "inactive",
    );
    idp.set_introspect_failure(IntrospectFailure::Status500);
    assert_unavailable(
        &call(gw.addr(), "/api/x", &opaque("metered-x")).await,
        "500",
    );
    assert_eq!(idp.introspect_hits(), 3);
    assert_eq!(upstream.hits(), 2);

    let page = Client::h1()
        .fetch(gw.admin_addr(), request("GET", "/metrics"))
        .await;
    assert_eq!(page.status, 200);
    let page = String::from_utf8(page.body.to_vec()).expect("UTF-8 metrics");
    let series: Vec<(&str, f64)> = page
        .lines()
        .filter(|l| l.starts_with("tokengate_introspection_requests_total{"))
        .filter(|l| l.contains("issuer=\"metered\""))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name, value.parse().ok()?))
        })
        .collect();
    let total: f64 = series.iter().map(|(_, v)| v).sum();
    assert_eq!(
        total, 3.0,
        "one count per call, none per cache hit: {series:?}"
    );
    assert!(
        series.len() >= 3,
        "active, inactive and the failure are distinct results: {series:?}"
    );
}

#[tokio::test]
async fn jwt_shaped_tokens_are_never_introspected() {
    let s = Setup::start("").await;
    let key = Key::es256("k1");
    let tokens = [
        ("signed JWT", key.token(&claims(&iss("corp"), AUD))),
        ("three segments", "a.b.c".to_string()),
        ("two segments", "abc.def".to_string()),
        ("one dot", "opaque.looking-token".to_string()),
    ];
    for (what, token) in &tokens {
        // Were any of them introspected, the endpoint would vouch for it.
        s.idp.set_introspection(token, active(json!({})));
        let reply = s.call("/read/x", token).await;
        assert_invalid_token(&reply, what);
    }
    assert_eq!(s.idp.introspect_hits(), 0);
    assert_eq!(s.upstream.hits(), 0);
}

#[tokio::test]
async fn oversized_opaque_token_is_refused_without_a_call() {
    let s = Setup::start_with("max_token_bytes = 64", "").await;
    let fits = "a".repeat(64);
    let long = "a".repeat(65);
    for token in [&fits, &long] {
        s.idp.set_introspection(token, active(json!({})));
    }
    assert_invalid_token(&s.call("/read/x", &long).await, "65 bytes");
    assert_eq!(s.idp.introspect_hits(), 0);
    assert_ok(&s.call("/read/x", &fits).await, "64 bytes");
    assert_eq!(s.idp.introspect_hits(), 1);
    assert_eq!(s.upstream.hits(), 1);
}

#[tokio::test]
async fn opaque_tokens_go_to_the_first_route_issuer_with_introspection() {
    let a = TestIdp::start().await;
    let b = TestIdp::start().await;
    let key = Key::es256("c-1");
    let c = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let toml = format!(
        r#"
[admin]
listen = "127.0.0.1:0"

{}
{}
{}
[upstreams.echo]
url = "{}"

[[routes]]
path = "/ba/**"
upstream = "echo"
issuers = ["b", "a"]

[[routes]]
path = "/ab/**"
upstream = "echo"
issuers = ["a", "b"]

[[routes]]
path = "/ca/**"
upstream = "echo"
issuers = ["c", "a"]

[[routes]]
path = "/c/**"
upstream = "echo"
issuers = ["c"]
"#,
        introspection_issuer("a", &a, "", ""),
        introspection_issuer("b", &b, "", ""),
        issuer_table("c", &c, ""),
        upstream.url()
    );
    let gw = Gateway::start(&toml).await;
    wait_ready(&gw).await;
    let jwks_hits = c.jwks_hits();

    // Both endpoints vouch for the token, each with its own subject.
    let token = opaque("shared");
    a.set_introspection(&token, json!({"active": true, "sub": "from-a"}));
    b.set_introspection(&token, json!({"active": true, "sub": "from-b"}));
    let subject = |u: &Upstream| u.last().header("x-auth-subject").map(String::from);

    assert_ok(&call(gw.addr(), "/ba/x", &token).await, "issuers b, a");
    assert_eq!((a.introspect_hits(), b.introspect_hits()), (0, 1));
    assert_eq!(subject(&upstream).as_deref(), Some("from-b"));

    assert_ok(&call(gw.addr(), "/ab/x", &token).await, "issuers a, b");
    assert_eq!((a.introspect_hits(), b.introspect_hits()), (1, 1));
    assert_eq!(subject(&upstream).as_deref(), Some("from-a"));

    let other = opaque("other");
    a.set_introspection(&other, json!({"active": true, "sub": "from-a"}));
    assert_ok(&call(gw.addr(), "/ca/x", &other).await, "issuers c, a");
    assert_eq!((a.introspect_hits(), b.introspect_hits()), (2, 1));
    assert_eq!(subject(&upstream).as_deref(), Some("from-a"));
    assert_eq!(upstream.hits(), 3);

    // No route issuer can introspect: refused without asking anybody.
    let reply = call(gw.addr(), "/c/x", &token).await;
    assert_invalid_token(&reply, "route without introspection");
    assert_eq!((a.introspect_hits(), b.introspect_hits()), (2, 1));
    assert_eq!(c.jwks_hits(), jwks_hits, "no key-set fetch either");
    assert_eq!(c.introspect_hits(), 0);
    assert_eq!(upstream.hits(), 3);
}

#[tokio::test]
async fn cached_active_token_is_checked_against_each_routes_scopes() {
    let s = Setup::start("").await;
    let token = opaque("reader");
    s.idp
        .set_introspection(&token, active(json!({"scope": "read"})));
    assert_ok(&s.call("/read/x", &token).await, "read route");
    assert_eq!(s.idp.introspect_hits(), 1);

    let reply = s.call("/admin/x", &token).await;
    let body = reply.gateway_error(403);
    assert_eq!(body["error"], "insufficient_scope", "{body}");
    let challenge = reply.header("www-authenticate").expect("challenge");
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.ends_with("scope=\"admin\""),
        "{challenge}"
    );
    assert_eq!(s.idp.introspect_hits(), 1, "the cached answer was used");
    assert_eq!(s.upstream.hits(), 1);

    assert_ok(&s.call("/read/x", &token).await, "read route again");
    assert_eq!(s.idp.introspect_hits(), 1);
    assert_eq!(s.upstream.hits(), 2);
}

#[test]
fn introspection_endpoint_must_be_https_except_on_loopback() {
    let config = |endpoint: &str| {
        let text = format!(
            "[upstreams.echo]\nurl = \"http://127.0.0.1:1\"\n\n\
             [issuers.corp]\nissuer = \"https://corp.idp.test/\"\naudiences = [\"{AUD}\"]\n\n\
             [issuers.corp.introspection]\nendpoint = \"{endpoint}\"\n\
             client_id = \"tokengate\"\nclient_secret = \"s\"\n"
        );
        Config::from_toml(&text, Path::new("."), Vec::new())
    };
    for allowed in [
        "http://127.0.0.1:9/introspect",
        "http://127.1.2.3:9/introspect",
        "http://localhost:9/introspect",
        "http://[::1]:9/introspect",
        "https://idp.example.com/introspect",
    ] {
        if let Err(e) = config(allowed) {
            panic!("{allowed} is allowed, got:\n{e}");
        }
    }
    for refused in [
        "http://example.com/introspect",
        "http://10.0.0.1/introspect",
        "ftp://127.0.0.1/introspect",
    ] {
        let Err(errors) = config(refused) else {
            panic!("{refused} must be refused");
        };
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.key == "issuers.corp.introspection.endpoint"),
            "{refused}: {errors}"
        );
    }
}
