//! DPoP in operation (docs/behavior.md section 12): a reload keeps the
//! server nonces it issued valid and the proofs it accepted spent, and
//! every DPoP refusal is counted with the outcome `invalid_token`.

use super::*;
use common::ops::FileGateway;

/// A file-configured gateway with `[dpop]` (`dpop_lines` added) and the
/// one route `PREFIX/**`, whose metric series no other test may touch (the
/// metrics are the process's).
async fn file_gateway(
    idp: &TestIdp,
    upstream: &Upstream,
    prefix: &str,
    dpop_lines: &str,
) -> (FileGateway, String) {
    let toml = GatewayConfig::new()
        .admin()
        .issuer(issuer_table("corp", idp, ""))
        .upstream("echo", &upstream.url())
        .route(Route::new(&format!("{prefix}/**"), "echo"))
        .raw(&dpop_table(dpop_lines))
        .render();
    let gw = FileGateway::start(&toml).await;
    common::idp::eventually("the key set is loaded", || gw.not_ready().is_empty()).await;
    (gw, toml)
}

/// `GET path` on `gw` with `token` and `proof`.
async fn dpop_call(gw: &FileGateway, path: &str, token: &str, proof: &str) -> Reply {
    let auth = format!("DPoP {token}");
    let req = get_with(path, &[("authorization", &auth), ("dpop", proof)]);
    gw.send(&Client::h1(), req).await
}

#[tokio::test]
async fn reload_keeps_issued_nonces_and_spent_proofs() {
    let key = Key::eddsa("issuer-1");
    let idp = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let (gw, toml) = file_gateway(&idp, &upstream, "/bt-reload", "require_nonce = true").await;
    let client = DpopKey::es256();
    let token = key.token(&with(
        &claims(&idp.issuer(), AUD),
        json!({ "cnf": cnf_jkt(&client) }),
    ));
    let url = format!("http://{}/bt-reload/x", gw.addr());

    let first = dpop_call(
        &gw,
        "/bt-reload/x",
        &token,
        &client.proof("GET", &url, &token).encode(),
    )
    .await;
    assert_challenge(&first, 401, "DPoP", Some("use_dpop_nonce"), "no nonce yet");
    let nonce = first.header("dpop-nonce").expect("DPoP-Nonce").to_string();
    let proof = client
        .proof("GET", &url, &token)
        .claim("nonce", json!(nonce))
        .encode();
    assert_ok(
        &dpop_call(&gw, "/bt-reload/x", &token, &proof).await,
        "before the reload",
    );

    gw.write_and_reload(&toml).await.expect("reload");
    let replay = dpop_call(&gw, "/bt-reload/x", &token, &proof).await;
    assert_bad_proof(&replay, "a spent proof after the reload");
    let fresh = client
        .proof("GET", &url, &token)
        .claim("nonce", json!(nonce))
        .encode();
    assert_ok(
        &dpop_call(&gw, "/bt-reload/x", &token, &fresh).await,
        "a nonce issued before the reload",
    );
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn dpop_refusals_are_counted_as_invalid_token() {
    let key = Key::eddsa("issuer-1");
    let idp = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let (gw, _) = file_gateway(&idp, &upstream, "/bt-metered", "require_nonce = true").await;
    let client = DpopKey::es256();
    let token = key.token(&with(
        &claims(&idp.issuer(), AUD),
        json!({ "cnf": cnf_jkt(&client) }),
    ));
    let count = |scrape: &common::ops::Scrape, outcome: &str| {
        scrape.value(
            "tokengate_requests_total",
            &[("route", "/bt-metered/**"), ("outcome", outcome)],
        )
    };
    let before = gw.scrape().await;
    let url = format!("http://{}/bt-metered/x", gw.addr());
    // use_dpop_nonce, invalid_dpop_proof (no proof), invalid_token (a
    // proof by another key, with a live nonce).
    let first = dpop_call(
        &gw,
        "/bt-metered/x",
        &token,
        &client.proof("GET", &url, &token).encode(),
    )
    .await;
    assert_eq!(first.status, 401);
    let nonce = first.header("dpop-nonce").expect("DPoP-Nonce").to_string();
    let auth = format!("DPoP {token}");
    let req = get_with("/bt-metered/x", &[("authorization", &auth)]);
    assert_bad_proof(&gw.send(&Client::h1(), req).await, "no proof");
    let thief = DpopKey::es256();
    let stolen = thief
        .proof("GET", &url, &token)
        .claim("nonce", json!(nonce))
        .encode();
    let reply = dpop_call(&gw, "/bt-metered/x", &token, &stolen).await;
    assert_invalid(&reply, "DPoP", "another key");

    let after = gw.scrape().await;
    assert_eq!(
        count(&after, "invalid_token") - count(&before, "invalid_token"),
        3.0
    );
    for outcome in ["forwarded", "missing_token", "invalid_request"] {
        assert_eq!(count(&after, outcome), count(&before, outcome), "{outcome}");
    }
    assert!(
        !after.text.contains("invalid_dpop_proof") && !after.text.contains("use_dpop_nonce"),
        "no outcome label of its own"
    );
}
