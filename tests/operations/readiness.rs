//! `/readyz` and `/healthz`.

use super::*;

#[tokio::test]
async fn readyz_names_the_issuer_that_is_not_ready_while_healthz_is_200() {
    let key = Key::es256("ready-1");
    let idp = TestIdp::with_keys(&[&key]).await;
    idp.set_failure(Failure::Down);
    let dir = tempfile::tempdir().expect("tempdir");
    let file_key = Key::es256("ready-file");
    std::fs::write(
        dir.path().join("jwks.json"),
        json!({ "keys": [file_key.jwk()] }).to_string(),
    )
    .expect("write key set");
    let upstream = Upstream::echo().await;
    let toml = GatewayConfig::new()
        .admin()
        .issuer(
            Issuer::new("ready_remote", &idp.issuer())
                .jwks_uri(&idp.jwks_uri())
                .with("jwks_refresh_s = 1")
                .with("jwks_timeout_ms = 500"),
        )
        .issuer(Issuer::new("ready_file", "https://ready-file.test/").jwks_file("jwks.json"))
        .upstream("ready_echo", &upstream.url())
        .route(Route::new("/ready/**", "ready_echo"))
        .render();
    let gw = Gateway::start_in(&toml, dir.path()).await;
    eventually("a first key-set fetch attempt", || idp.total_hits() >= 1).await;

    let health = |path: &'static str| {
        let addr = gw.admin_addr();
        async move { Client::h1().fetch(addr, request("GET", path)).await }
    };
    let reply = readyz(&gw).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["status"], "not_ready", "{body}");
    let issuers = body["issuers"].as_object().expect("issuers object");
    assert_eq!(
        issuers.keys().collect::<Vec<_>>(),
        ["ready_remote"],
        "only the issuer without keys: {body}"
    );
    let reason = issuers["ready_remote"].as_str().expect("reason text");
    assert!(reason.contains("key set"), "a reason: {reason}");
    let healthz = health("/healthz").await;
    assert_eq!(healthz.status, 200, "alive while not ready");
    assert_eq!(healthz.json()["status"], "ok");

    idp.set_failure(Failure::None);
    wait_ready(&gw).await;
    let reply = readyz(&gw).await;
    assert_eq!(reply.json(), json!({"status": "ready"}));
    assert_eq!(health("/healthz").await.status, 200);
}
