//! Extensions section 14's failure mapping: an RFC 6749 section 5.2
//! refusal is a 502, a token endpoint that cannot be consulted a 503 with
//! `Retry-After`, an answer without a Bearer token a 502; the upstream
//! sees nothing, and `tokengate_upstream_token_requests_total` counts each
//! token request under its result. Failures are never cached.

use super::*;

#[tokio::test]
async fn each_rfc_6749_error_code_is_a_502_and_counted_under_its_code() {
    let s = Setup::start("client_credentials", "").await;
    let caller = s.caller("alice");
    let codes = [
        (400, "invalid_request"),
        (401, "invalid_client"),
        (400, "invalid_grant"),
        (400, "unauthorized_client"),
        (400, "unsupported_grant_type"),
        (400, "invalid_scope"),
    ];
    for (status, code) in codes {
        s.idp.set_token_answer(TokenAnswer::Json(
            status,
            json!({ "error": code, "error_description": "refused in a test" }),
        ));
        let reply = s.call("/api/x", &caller).await;
        assert_bad_gateway(&reply, code);
        assert_eq!(s.token_requests(code).await, 1.0, "{code}");
    }
    assert_eq!(s.idp.token_hits(), codes.len(), "failures are not cached");
    assert_eq!(s.upstream.hits(), 0, "nothing reached the upstream");

    s.idp.set_token_answer(TokenAnswer::Issue {
        expires_in: Some(300),
    });
    assert_forwarded(&s.call("/api/x", &caller).await, "after the refusals");
    assert_eq!(s.token_requests("ok").await, 1.0);
}

#[tokio::test]
async fn a_slow_5xx_or_non_json_token_endpoint_is_a_503_with_retry_after() {
    let s = Setup::start("client_credentials", "timeout_ms = 300").await;
    let caller = s.caller("alice");
    let cases = [
        (
            TokenAnswer::Json(500, json!({"error": "server_error"})),
            "bad_status",
        ),
        (
            TokenAnswer::Json(503, json!({"error": "temporarily_unavailable"})),
            "bad_status",
        ),
        (TokenAnswer::Html, "not_json"),
        (TokenAnswer::Hang, "timeout"),
    ];
    for (answer, result) in cases {
        s.idp.set_token_answer(answer.clone());
        let reply = s.call("/api/x", &caller).await;
        assert_unavailable(&reply, &format!("{answer:?}"));
        assert_eq!(
            reply.gateway_error(503)["error_description"],
            "the upstream's token endpoint cannot be consulted"
        );
        assert!(s.token_requests(result).await >= 1.0, "{answer:?}");
    }
    assert_eq!(s.token_requests("bad_status").await, 2.0);
    assert_eq!(s.upstream.hits(), 0);
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_a_503() {
    let key = Key::es256("caller-key");
    let idp = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let closed = common::closed_port().await;
    let endpoint = format!("http://127.0.0.1:{closed}/token");
    let gw = minimal_config(&idp, &upstream, &endpoint, "timeout_ms = 1000")
        .start()
        .await;
    let caller = key.token(&claims(&idp.issuer(), AUD));
    let reply = gw.call("/api/x", &caller).await;
    assert_unavailable(&reply, "connection refused");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_200_without_a_bearer_access_token_is_a_502() {
    let s = Setup::start("client_credentials", "").await;
    let caller = s.caller("alice");
    let cases = [
        (
            json!({"access_token": "t", "token_type": "DPoP", "expires_in": 60}),
            "not_bearer",
        ),
        (json!({"access_token": "t", "expires_in": 60}), "not_bearer"),
        (
            json!({"token_type": "Bearer", "expires_in": 60}),
            "no_access_token",
        ),
        (
            json!({"access_token": "", "token_type": "Bearer"}),
            "no_access_token",
        ),
    ];
    for (doc, result) in cases {
        s.idp.set_token_answer(TokenAnswer::Json(200, doc.clone()));
        let reply = s.call("/api/x", &caller).await;
        assert_bad_gateway(&reply, &doc.to_string());
        assert!(s.token_requests(result).await >= 1.0, "{doc}");
    }
    assert_eq!(s.token_requests("not_bearer").await, 2.0);
    assert_eq!(s.token_requests("no_access_token").await, 2.0);
    assert_eq!(s.upstream.hits(), 0);
    // A lower-case token_type is a Bearer token (RFC 6749 section 5.1).
    s.idp.set_token_answer(TokenAnswer::Json(
        200,
        json!({"access_token": "lower", "token_type": "bearer", "expires_in": 60}),
    ));
    assert_forwarded(&s.call("/api/x", &caller).await, "bearer");
    assert_eq!(s.upstream_authorization().as_deref(), Some("Bearer lower"));
    let body = text(&s.call("/api/y", &caller).await);
    assert!(!body.contains(CLIENT_SECRET));
}
