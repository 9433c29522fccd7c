//! Where key sets come from: discovery, `Cache-Control: max-age` bounds, a
//! key file that needs no network, and key sets without a usable key.

use super::*;

/// A gateway whose issuer `issuer` finds its key set by discovery.
async fn discovery_gateway(upstream: &Upstream, issuer: Issuer) -> Gateway {
    GatewayConfig::new()
        .admin()
        .issuer(issuer.discovery())
        .upstream("echo", &upstream.url())
        .route(Route::new("/api/**", "echo"))
        .start()
        .await
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
        let gw = discovery_gateway(&upstream, Issuer::new("corp", &idp.issuer())).await;
        wait_ready(&gw).await;
        assert_eq!(
            gw.call("/api/x", &token(&key, &idp)).await.status,
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
    let issuer = Issuer::new("corp", &ours).with("jwks_refresh_s = 1");
    let gw = discovery_gateway(&upstream, issuer).await;
    idp.wait_discovery_hits(2).await;
    assert_names_issuer(&readyz(&gw).await, "corp");
    let t = key.token(&claims(&ours, AUD));
    assert_unavailable(&gw.call("/api/x", &t).await, "unavailable");
    assert_eq!(
        idp.jwks_hits(),
        0,
        "the key set of a mismatched document is never fetched"
    );
    assert_eq!(upstream.hits(), 0);
    let failures = common::ops::scrape(gw.admin_addr()).await;
    let mismatch = failures.samples.iter().any(|s| {
        s.name == "tokengate_jwks_fetches_total"
            && s.label("issuer") == Some("corp")
            && s.label("result") == Some("issuer_mismatch")
            && s.value >= 1.0
    });
    assert!(
        mismatch,
        "fetches counted as issuer_mismatch:\n{}",
        failures.text
    );

    idp.set_issuer(&ours);
    wait_ready(&gw).await;
    assert_eq!(gw.call("/api/x", &t).await.status, 200);
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
        assert_eq!(gw.call("/api/x", &token(&key, idp)).await.status, 200);
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
    assert_eq!(gw.call("/api/x", &key.token(&c)).await.status, 200);
    assert_eq!(
        gw.call("/api/x", &key.token(&with(&c, json!({"sub": "bob"}))))
            .await
            .status,
        200
    );
    assert_invalid_token(
        &gw.call("/api/x", &key.with_kid("other").token(&c)).await,
        "kid not in the file",
    );
    assert_eq!(upstream.hits(), 2);
}

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
    assert_unavailable(&gw.call("/api/x", &t).await, "unavailable");
    let huge = token(&key.with_kid("huge"), &idp);
    assert_unavailable(&gw.call("/api/x", &huge).await, "unavailable");
    assert_eq!(upstream.hits(), 0);

    // A set without a usable key is retried like a failed fetch, well
    // before jwks_refresh_s.
    let mut jwks = unusable_jwks(&key);
    jwks.push(key.jwk());
    idp.set_jwks(jwks);
    wait_ready(&gw).await;
    assert_eq!(gw.call("/api/x", &t).await.status, 200);
    assert_invalid_token(&gw.call("/api/x", &huge).await, "a skipped oversized key");
    assert_eq!(upstream.hits(), 1);
}

/// The `[issuers.corp]` configuration over `jwks.json` in its directory.
fn file_config(upstream: &Upstream) -> String {
    file_gateway_config(&upstream.url()).admin().render()
}

/// The `corp` issuer over `jwks.json`, upstream `echo` at `url`, one
/// protected route `/api/**`.
fn file_gateway_config(url: &str) -> GatewayConfig {
    GatewayConfig::new()
        .issuer(Issuer::new("corp", "https://idp.invalid/").jwks_file("jwks.json"))
        .upstream("echo", url)
        .route(Route::new("/api/**", "echo"))
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
    assert_unavailable(&gw.call("/api/x", &t).await, "unavailable");
    assert_eq!(upstream.hits(), 0);

    write_jwks(gw.dir(), vec![key.jwk()]);
    gw.reload().await.expect("reload re-reads the key file");
    assert_eq!(readyz().await.status, 200);
    assert_eq!(gw.call("/api/x", &t).await.status, 200);
    assert_eq!(upstream.hits(), 1);
}

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

/// `tokengate check` of the file configuration in `dir`, logging as JSON.
fn check(dir: &Path, upstream: &str) -> std::process::Output {
    let path = dir.join("tokengate.toml");
    let text = file_gateway_config(upstream).render();
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
