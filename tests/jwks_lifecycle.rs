//! Key sets over time (behavior.md section 3, "Key sets"), through real
//! sockets: readiness while the identity provider is down, rotation and
//! removal of keys, the unknown-kid refetch budget, refreshes that fail in
//! every way an identity provider can fail, the stale limit, discovery,
//! `Cache-Control: max-age` bounds, and a key file that needs no network.
//!
//! Fetch counts come from the test identity provider's counters; every
//! wait polls a counter or `/readyz` under a deadline.

mod common;

use common::idp::{eventually, issuer_table, readyz, wait_not_ready, wait_ready, Failure, TestIdp};
use common::mint::{b64, claims, with, Key, AUD};
use common::ops::FileGateway;
use common::{empty, request, Client, Gateway, Reply, Upstream};
use futures_util::StreamExt;
use http::Request;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// A gateway with one issuer `corp` (the idp's key set, `issuer_extra`
/// lines appended) and one protected route `/api/**`.
async fn gateway(idp: &TestIdp, upstream: &Upstream, issuer_extra: &str) -> Gateway {
    let toml = format!(
        r#"
[admin]
listen = "127.0.0.1:0"

{}
[upstreams.echo]
url = "{}"

[[routes]]
path = "/api/**"
upstream = "echo"
"#,
        issuer_table("corp", idp, issuer_extra),
        upstream.url()
    );
    Gateway::start(&toml).await
}

async fn call(gw: &Gateway, token: &str) -> Reply {
    gw.send(&Client::h1(), bearer(token)).await
}

/// `GET /api/x` with `token`.
fn bearer(token: &str) -> Request<common::Body> {
    Request::get("/api/x")
        .header("authorization", format!("Bearer {token}"))
        .body(empty())
        .expect("request")
}

fn token(key: &Key, idp: &TestIdp) -> String {
    key.token(&claims(&idp.issuer(), AUD))
}

/// 503 `temporarily_unavailable` with `Retry-After` and no challenge.
fn assert_unavailable(reply: &Reply) {
    let body = reply.gateway_error(503);
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(
        reply.header("www-authenticate").is_none(),
        "no challenge on 503"
    );
    let retry = reply.header("retry-after").expect("Retry-After");
    assert!(retry.parse::<u32>().is_ok_and(|s| s > 0), "{retry}");
}

/// 401 `invalid_token`.
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
        challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
}

/// `/readyz` answers 503 and names `issuer`.
fn assert_names_issuer(reply: &Reply, issuer: &str) {
    assert_eq!(reply.status, 503);
    let body = reply.json();
    assert!(body["issuers"][issuer].is_string(), "{body}");
}

#[tokio::test]
async fn idp_down_at_start_means_not_ready_and_503_until_it_comes_up() {
    let key = Key::es256("k1");
    let idp = TestIdp::with_keys(&[&key]).await;
    idp.set_failure(Failure::Down);
    let upstream = Upstream::echo().await;
    let gw = gateway(&idp, &upstream, "jwks_refresh_s = 1\njwks_timeout_ms = 500").await;
    let t = token(&key, &idp);

    eventually("a first key-set fetch attempt", || idp.total_hits() >= 1).await;
    assert_names_issuer(&readyz(&gw).await, "corp");
    for _ in 0..3 {
        assert_unavailable(&call(&gw, &t).await);
    }
    assert_eq!(
        upstream.hits(),
        0,
        "a token that cannot be checked is never forwarded"
    );
    assert_eq!(idp.jwks_hits(), 0);

    idp.set_failure(Failure::None);
    wait_ready(&gw).await;
    assert_eq!(call(&gw, &t).await.status, 200);
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn new_kid_costs_exactly_one_fetch_then_is_served_from_memory() {
    let k1 = Key::rs256("k1");
    let idp = TestIdp::with_keys(&[&k1]).await;
    let upstream = Upstream::echo().await;
    let gw = gateway(
        &idp,
        &upstream,
        "jwks_refresh_s = 300\njwks_miss_cooldown_s = 60",
    )
    .await;
    wait_ready(&gw).await;
    let base = idp.jwks_hits();
    assert_eq!(base, 1, "one fetch at start");
    for _ in 0..3 {
        assert_eq!(call(&gw, &token(&k1, &idp)).await.status, 200);
    }
    assert_eq!(idp.jwks_hits(), base, "known kids need no fetch");

    let k2 = Key::ps256("k2");
    idp.add_key(&k2);
    assert_eq!(
        call(&gw, &token(&k2, &idp)).await.status,
        200,
        "the rotated-in key is fetched"
    );
    assert_eq!(idp.jwks_hits(), base + 1, "exactly one extra fetch");
    for _ in 0..3 {
        assert_eq!(call(&gw, &token(&k2, &idp)).await.status, 200);
    }
    assert_eq!(idp.jwks_hits(), base + 1, "the new kid is now in memory");
    assert_eq!(
        call(&gw, &token(&k1, &idp)).await.status,
        200,
        "the old key still works"
    );

    // Another new kid within the cooldown: no fetch, so it stays unknown.
    let k3 = Key::es256("k3");
    idp.add_key(&k3);
    assert_invalid_token(
        &call(&gw, &token(&k3, &idp)).await,
        "kid published within the cooldown",
    );
    assert_eq!(
        idp.jwks_hits(),
        base + 1,
        "no refetch within jwks_miss_cooldown_s"
    );
    assert_eq!(upstream.hits(), 8);
}

#[tokio::test]
async fn removed_key_stops_verifying_even_for_cached_identities() {
    let old = Key::es256("old");
    let new = Key::eddsa("new");
    let idp = TestIdp::with_keys(&[&old, &new]).await;
    let upstream = Upstream::echo().await;
    let gw = gateway(&idp, &upstream, "jwks_refresh_s = 1").await;
    wait_ready(&gw).await;
    let cached = token(&old, &idp);
    let other = token(&new, &idp);
    assert_eq!(call(&gw, &cached).await.status, 200);
    assert_eq!(call(&gw, &cached).await.status, 200);
    assert_eq!(call(&gw, &other).await.status, 200);

    idp.remove_kid("old");
    // The refresh loop is sequential: fetch n+2 starts only after fetch n+1,
    // which began after the removal, was installed.
    let h = idp.jwks_hits();
    idp.wait_jwks_hits(h + 2).await;

    assert_invalid_token(
        &call(&gw, &cached).await,
        "cached identity of a withdrawn key",
    );
    assert_invalid_token(
        &call(&gw, &token(&old, &idp)).await,
        "fresh token of a withdrawn key",
    );
    assert_eq!(
        upstream.hits(),
        3,
        "withdrawn keys' tokens are not forwarded"
    );
    assert_eq!(
        call(&gw, &other).await.status,
        200,
        "the remaining key still verifies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_unknown_kids_cost_at_most_one_fetch_per_cooldown() {
    let known = Key::eddsa("known");
    let idp = TestIdp::with_keys(&[&known]).await;
    let upstream = Upstream::echo().await;
    let gw = gateway(
        &idp,
        &upstream,
        "jwks_refresh_s = 300\njwks_miss_cooldown_s = 60",
    )
    .await;
    wait_ready(&gw).await;
    let base = idp.jwks_hits();

    let signer = Key::eddsa("unused");
    let c = claims(&idp.issuer(), AUD);
    let tokens: Vec<String> = (0..1000)
        .map(|i| signer.with_kid(&format!("unknown-{i}")).token(&c))
        .collect();
    let statuses: Vec<u16> = futures_util::stream::iter(tokens.iter())
        .map(|t| {
            let gw = &gw;
            async move { call(gw, t).await.status.as_u16() }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    assert_eq!(statuses.len(), 1000);
    assert!(
        statuses.iter().all(|&s| s == 401),
        "every unknown kid is refused"
    );
    let extra = idp.jwks_hits() - base;
    assert!(
        extra <= 1,
        "{extra} fetches for 1000 unknown kids within one cooldown"
    );
    assert_eq!(upstream.hits(), 0);
    assert_eq!(call(&gw, &token(&known, &idp)).await.status, 200);
}

/// While refreshes fail with `failure`, the last good key set keeps
/// verifying (fresh and cached tokens) and the gateway stays ready; a key
/// published meanwhile is not picked up (nothing the failing answer said is
/// believed, a redirect is not followed); when the idp recovers it is.
async fn last_good_keys_survive(failure: Failure) {
    let k1 = Key::es256("k1");
    let idp = TestIdp::with_keys(&[&k1]).await;
    let upstream = Upstream::echo().await;
    let gw = gateway(&idp, &upstream, "jwks_refresh_s = 1\njwks_timeout_ms = 300").await;
    wait_ready(&gw).await;
    let cached = token(&k1, &idp);
    assert_eq!(call(&gw, &cached).await.status, 200);

    idp.set_failure(failure);
    let k2 = Key::eddsa("k2");
    idp.add_key(&k2);
    // Two more attempts (a down server counts dropped connections): at least
    // one failed refresh has completed.
    let h = idp.total_hits();
    eventually("two failing refreshes", || idp.total_hits() >= h + 2).await;

    assert_eq!(
        readyz(&gw).await.status,
        200,
        "{failure:?}: still ready on the last good set"
    );
    assert_eq!(
        call(&gw, &cached).await.status,
        200,
        "{failure:?}: cached token"
    );
    assert_eq!(
        call(&gw, &token(&k1, &idp)).await.status,
        200,
        "{failure:?}: fresh token"
    );
    assert_invalid_token(
        &call(&gw, &token(&k2, &idp)).await,
        &format!("{failure:?}: key only in a bad answer"),
    );
    assert_eq!(
        idp.moved_hits(),
        0,
        "{failure:?}: a redirect is never followed"
    );
    assert_eq!(upstream.hits(), 3);

    idp.set_failure(Failure::None);
    let h = idp.jwks_hits();
    idp.wait_jwks_hits(h + 2).await;
    assert_eq!(
        call(&gw, &token(&k2, &idp)).await.status,
        200,
        "{failure:?}: recovered"
    );
    assert_eq!(idp.moved_hits(), 0);
}

#[tokio::test]
async fn failing_refresh_500_keeps_last_good_keys() {
    last_good_keys_survive(Failure::Status500).await;
}

#[tokio::test]
async fn failing_refresh_garbage_keeps_last_good_keys() {
    last_good_keys_survive(Failure::Garbage).await;
}

#[tokio::test]
async fn failing_refresh_not_a_key_set_keeps_last_good_keys() {
    last_good_keys_survive(Failure::NotAKeySet).await;
}

#[tokio::test]
async fn failing_refresh_oversized_keeps_last_good_keys() {
    last_good_keys_survive(Failure::Oversized).await;
}

#[tokio::test]
async fn failing_refresh_redirect_is_not_followed_and_keeps_last_good_keys() {
    last_good_keys_survive(Failure::Redirect).await;
}

#[tokio::test]
async fn failing_refresh_hang_beyond_timeout_keeps_last_good_keys() {
    last_good_keys_survive(Failure::Hang).await;
}

#[tokio::test]
async fn failing_refresh_down_keeps_last_good_keys() {
    last_good_keys_survive(Failure::Down).await;
}

#[tokio::test]
async fn key_set_older_than_max_stale_makes_the_issuer_unavailable() {
    let key = Key::rs256("k1");
    let idp = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let gw = gateway(
        &idp,
        &upstream,
        "jwks_refresh_s = 1\njwks_max_stale_s = 1\njwks_timeout_ms = 300",
    )
    .await;
    wait_ready(&gw).await;
    let cached = token(&key, &idp);
    assert_eq!(call(&gw, &cached).await.status, 200);

    idp.set_failure(Failure::Status500);
    let reply = wait_not_ready(&gw).await;
    assert_names_issuer(&reply, "corp");
    assert_unavailable(&call(&gw, &cached).await);
    assert_unavailable(&call(&gw, &token(&key, &idp)).await);
    assert_eq!(
        upstream.hits(),
        1,
        "nothing is forwarded on a stale key set"
    );

    idp.set_failure(Failure::None);
    wait_ready(&gw).await;
    assert_eq!(call(&gw, &cached).await.status, 200);
}

#[tokio::test]
async fn discovery_finds_the_key_set_with_and_without_trailing_slash() {
    for slash in [true, false] {
        let key = Key::eddsa("k1");
        let idp = TestIdp::with_keys(&[&key]).await;
        if !slash {
            idp.set_issuer(&idp.base_url());
        }
        let upstream = Upstream::echo().await;
        let toml = format!(
            r#"
[admin]
listen = "127.0.0.1:0"
[issuers.corp]
issuer = "{}"
discovery = true
audiences = ["{AUD}"]
[upstreams.echo]
url = "{}"
[[routes]]
path = "/api/**"
upstream = "echo"
"#,
            idp.issuer(),
            upstream.url()
        );
        let gw = Gateway::start(&toml).await;
        wait_ready(&gw).await;
        assert_eq!(
            call(&gw, &token(&key, &idp)).await.status,
            200,
            "trailing slash {slash}"
        );
        assert!(idp.discovery_hits() >= 1 && idp.jwks_hits() >= 1);
    }
}

#[tokio::test]
async fn discovery_document_naming_another_issuer_is_refused() {
    let key = Key::eddsa("k1");
    let idp = TestIdp::with_keys(&[&key]).await;
    let ours = idp.issuer();
    // A near miss: the document drops the trailing slash.
    idp.set_issuer(ours.trim_end_matches('/'));
    let upstream = Upstream::echo().await;
    let toml = format!(
        r#"
[admin]
listen = "127.0.0.1:0"
[issuers.corp]
issuer = "{ours}"
discovery = true
audiences = ["{AUD}"]
jwks_refresh_s = 1
[upstreams.echo]
url = "{}"
[[routes]]
path = "/api/**"
upstream = "echo"
"#,
        upstream.url()
    );
    let gw = Gateway::start(&toml).await;
    idp.wait_discovery_hits(2).await;
    assert_names_issuer(&readyz(&gw).await, "corp");
    let t = key.token(&claims(&ours, AUD));
    assert_unavailable(&call(&gw, &t).await);
    assert_eq!(
        idp.jwks_hits(),
        0,
        "the key set of a mismatched document is never fetched"
    );
    assert_eq!(upstream.hits(), 0);

    idp.set_issuer(&ours);
    wait_ready(&gw).await;
    assert_eq!(call(&gw, &t).await.status, 200);
}

#[tokio::test]
async fn cache_control_max_age_is_honoured_only_between_60_s_and_24_h() {
    let key = Key::eddsa("k1");
    // (max-age, jwks_refresh_s, expect refetches within the window)
    let cases = [(1u64, 300u64, false), (60, 1, false), (100_000, 1, true)];
    let mut setups = Vec::new();
    for (max_age, refresh, _) in cases {
        let idp = TestIdp::with_keys(&[&key]).await;
        idp.set_max_age(Some(max_age));
        let upstream = Upstream::echo().await;
        let gw = gateway(&idp, &upstream, &format!("jwks_refresh_s = {refresh}")).await;
        setups.push((idp, upstream, gw));
    }
    let mut bases = Vec::new();
    for (idp, _, gw) in &setups {
        wait_ready(gw).await;
        bases.push(idp.jwks_hits());
    }
    let start = Instant::now();
    // Poll until the out-of-range max-age case has refetched twice on its
    // 1 s refresh, and at least 2.5 s have passed; the others must not move.
    loop {
        for (((idp, _, _), &(max_age, refresh, moves)), &base) in
            setups.iter().zip(&cases).zip(&bases)
        {
            if !moves {
                assert_eq!(
                    idp.jwks_hits(),
                    base,
                    "max-age={max_age} with jwks_refresh_s={refresh} refetched"
                );
            }
        }
        let moved = setups[2].0.jwks_hits() >= bases[2] + 2;
        if moved && start.elapsed() >= Duration::from_millis(2500) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "max-age=100000 should be ignored (refresh 1 s)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (idp, _, gw) in &setups {
        assert_eq!(call(gw, &token(&key, idp)).await.status, 200);
    }
}

#[tokio::test]
async fn jwks_file_issuer_works_without_any_network() {
    let key = Key::ps256("file-key");
    let dir = tempfile::tempdir().expect("tempdir");
    let set = json!({ "keys": [key.jwk()] });
    std::fs::write(dir.path().join("jwks.json"), set.to_string()).expect("write key set");
    let upstream = Upstream::echo().await;
    let iss = "https://idp.invalid/";
    let gw = Gateway::start_in(&file_config(&upstream), dir.path()).await;
    assert_eq!(
        readyz(&gw).await.status,
        200,
        "a key file is loaded before serving"
    );
    let c = claims(iss, AUD);
    assert_eq!(call(&gw, &key.token(&c)).await.status, 200);
    assert_eq!(
        call(&gw, &key.token(&with(&c, json!({"sub": "bob"}))))
            .await
            .status,
        200
    );
    assert_invalid_token(
        &call(&gw, &key.with_kid("other").token(&c)).await,
        "kid not in the file",
    );
    assert_eq!(upstream.hits(), 2);
}

// ---------------------------------------------------------------------------
// Key sets without a usable key

/// A JWK of an RSA key larger than the verifier supports (8200 bits; the
/// modulus is not a real key, only its size matters).
fn oversized_rsa(kid: &str) -> serde_json::Value {
    let mut modulus = vec![0xffu8; 8200 / 8];
    modulus[0] = 0xc1;
    json!({"kty": "RSA", "kid": kid, "alg": "RS256", "n": b64(modulus), "e": "AQAB"})
}

/// JWKs that are all skipped at load: an RSA key above 8192 bits, an
/// `oct` key and an encryption key.
fn unusable_jwks(usable: &Key) -> Vec<serde_json::Value> {
    vec![
        oversized_rsa("huge"),
        json!({"kty": "oct", "kid": "oct", "k": b64(b"shared secret")}),
        with(&usable.with_kid("enc").jwk(), json!({"use": "enc"})),
    ]
}

/// `/readyz` answers 503 naming `issuer` for having no usable key.
fn assert_no_usable_key(reply: &Reply, issuer: &str) {
    assert_names_issuer(reply, issuer);
    let body = reply.json();
    let reason = body["issuers"][issuer].as_str().unwrap_or_default();
    assert!(reason.contains("no usable key"), "{body}");
}

#[tokio::test]
async fn remote_key_set_without_a_usable_key_is_not_ready_and_503_until_one_is_published() {
    let key = Key::es256("k1");
    let idp = TestIdp::start().await;
    idp.set_jwks(unusable_jwks(&key));
    let upstream = Upstream::echo().await;
    let gw = gateway(&idp, &upstream, "jwks_refresh_s = 300").await;
    idp.wait_jwks_hits(1).await;

    assert_no_usable_key(&wait_not_ready(&gw).await, "corp");
    let t = token(&key, &idp);
    assert_unavailable(&call(&gw, &t).await);
    let huge = token(&key.with_kid("huge"), &idp);
    assert_unavailable(&call(&gw, &huge).await);
    assert_eq!(upstream.hits(), 0);

    // A set without a usable key is retried like a failed fetch, well
    // before jwks_refresh_s.
    let mut jwks = unusable_jwks(&key);
    jwks.push(key.jwk());
    idp.set_jwks(jwks);
    wait_ready(&gw).await;
    assert_eq!(call(&gw, &t).await.status, 200);
    assert_invalid_token(&call(&gw, &huge).await, "a skipped oversized key");
    assert_eq!(upstream.hits(), 1);
}

/// The `[issuers.corp]` configuration over `jwks.json` in its directory.
fn file_config(upstream: &Upstream) -> String {
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"
[issuers.corp]
issuer = "https://idp.invalid/"
jwks_file = "jwks.json"
audiences = ["{AUD}"]
[upstreams.echo]
url = "{}"
[[routes]]
path = "/api/**"
upstream = "echo"
"#,
        upstream.url()
    )
}

fn write_jwks(dir: &Path, jwks: Vec<serde_json::Value>) {
    std::fs::write(dir.join("jwks.json"), json!({ "keys": jwks }).to_string())
        .expect("write key set");
}

#[tokio::test]
async fn jwks_file_without_a_usable_key_is_not_ready_until_a_reload_reads_a_good_one() {
    let key = Key::es256("file-1");
    let dir = tempfile::tempdir().expect("tempdir");
    write_jwks(dir.path(), unusable_jwks(&key));
    let upstream = Upstream::echo().await;
    let gw = FileGateway::start_in(dir, &file_config(&upstream)).await;
    let admin = gw.admin_addr();
    let readyz = || async move { Client::h1().fetch(admin, request("GET", "/readyz")).await };
    assert_no_usable_key(&readyz().await, "corp");
    let t = key.token(&claims("https://idp.invalid/", AUD));
    assert_unavailable(&gw.send(&Client::h1(), bearer(&t)).await);
    assert_eq!(upstream.hits(), 0);

    write_jwks(gw.dir(), vec![key.jwk()]);
    gw.reload().await.expect("reload re-reads the key file");
    assert_eq!(readyz().await.status, 200);
    assert_eq!(gw.send(&Client::h1(), bearer(&t)).await.status, 200);
    assert_eq!(upstream.hits(), 1);
}

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

/// `tokengate check` of the file configuration in `dir`, logging as JSON.
fn check(dir: &Path, upstream: &str) -> std::process::Output {
    let path = dir.join("tokengate.toml");
    let text = format!(
        "[issuers.corp]\nissuer = \"https://idp.invalid/\"\njwks_file = \"jwks.json\"\n\
         audiences = [\"{AUD}\"]\n[upstreams.echo]\nurl = \"{upstream}\"\n\
         [[routes]]\npath = \"/api/**\"\nupstream = \"echo\"\n"
    );
    std::fs::write(&path, text).expect("write config");
    std::process::Command::new(BIN)
        .args(["check", "--log-format", "json", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .output()
        .expect("run tokengate check")
}

/// The JSON log line with this message.
fn log_event(stderr: &str, message: &str) -> serde_json::Value {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["message"] == message)
        .unwrap_or_else(|| panic!("no {message:?} event in:\n{stderr}"))
}

#[test]
fn check_reports_a_jwks_file_without_a_usable_key_and_logs_file_counts() {
    let key = Key::es256("file-2");
    let dir = tempfile::tempdir().expect("tempdir");
    write_jwks(dir.path(), unusable_jwks(&key));
    let out = check(dir.path(), "http://127.0.0.1:9");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("issuers.corp.jwks_file: ") && l.contains("no usable key")),
        "{stderr}"
    );
    let event = log_event(
        &stderr,
        "key set has no usable key; the issuer is not ready",
    );
    assert_eq!(event["issuer"], "corp", "{event}");
    assert_eq!(event["keys"], 0, "{event}");
    assert_eq!(event["skipped"], 3, "{event}");

    let mut jwks = unusable_jwks(&key);
    jwks.push(key.jwk());
    write_jwks(dir.path(), jwks);
    let out = check(dir.path(), "http://127.0.0.1:9");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let event = log_event(&stderr, "key set loaded");
    assert_eq!(event["issuer"], "corp", "{event}");
    assert_eq!(event["keys"], 1, "{event}");
    assert_eq!(event["skipped"], 3, "{event}");
}
