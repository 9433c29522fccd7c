//! RFC 8693 token exchange: each caller token is exchanged once (its
//! concurrent requests share the exchange), and an exchanged token is
//! not used past the caller token's `exp`.

use super::*;

#[tokio::test]
async fn each_caller_token_is_exchanged_once_with_the_rfc_8693_parameters() {
    let s = Setup::start(
        "token_exchange",
        "resource = \"https://billing.test\"\nscope = \"billing\"",
    )
    .await;
    let (alice, bob) = (s.caller("alice"), s.caller("bob"));
    for (caller, token) in [(&alice, "Bearer tok-1"), (&bob, "Bearer tok-2")] {
        assert_forwarded(&s.call("/api/x", caller).await, "exchanged");
        assert_eq!(s.upstream_authorization().as_deref(), Some(token));
        let call = s.idp.last_token_call();
        assert_eq!(
            call.param("grant_type").as_deref(),
            Some("urn:ietf:params:oauth:grant-type:token-exchange")
        );
        assert_eq!(
            call.param("subject_token").as_deref(),
            Some(caller.as_str())
        );
        assert_eq!(
            call.param("subject_token_type").as_deref(),
            Some("urn:ietf:params:oauth:token-type:access_token")
        );
        assert_eq!(
            call.param("resource").as_deref(),
            Some("https://billing.test")
        );
        assert_eq!(call.param("scope").as_deref(), Some("billing"));
        assert!(
            call.header("authorization").is_some(),
            "client_secret_basic"
        );
    }
    for (caller, token) in [(&alice, "Bearer tok-1"), (&bob, "Bearer tok-2")] {
        assert_forwarded(&s.call("/api/again", caller).await, "cached");
        assert_eq!(s.upstream_authorization().as_deref(), Some(token));
    }
    assert_eq!(s.idp.token_hits(), 2, "one exchange per caller token");
}

#[tokio::test]
async fn an_exchanged_token_is_not_used_past_the_caller_token_exp() {
    let s = Setup::start("token_exchange", "").await;
    let now = s.clock.now() as i64;
    // Expires in 10 s; the issuer's 60 s leeway still accepts it after.
    let caller = s.key.token(&with(
        &claims(&s.idp.issuer(), AUD),
        json!({"iat": now, "exp": now + 10}),
    ));
    assert_forwarded(&s.call("/api/x", &caller).await, "exchanged");
    assert_forwarded(&s.call("/api/x", &caller).await, "cached");
    assert_eq!(s.idp.token_hits(), 1);

    s.clock.advance(Duration::from_secs(11));
    assert_forwarded(&s.call("/api/x", &caller).await, "past exp, in leeway");
    assert_eq!(s.upstream_authorization().as_deref(), Some("Bearer tok-2"));
    assert_eq!(
        s.idp.token_hits(),
        2,
        "the exchanged token ended with the caller's"
    );
}

#[tokio::test]
async fn concurrent_requests_of_one_caller_share_one_exchange() {
    const N: usize = 10;
    let s = Setup::start("token_exchange", "").await;
    let caller = s.caller("alice");
    let statuses = held_concurrent_calls(&s, &caller, N, 1).await;
    assert_eq!(statuses, vec![200; N]);
    assert_eq!(s.idp.token_hits(), 1, "{N} requests, one exchange");
}

#[tokio::test]
async fn a_refused_exchange_is_a_502_and_not_cached() {
    let s = Setup::start("token_exchange", "").await;
    let caller = s.caller("alice");
    s.idp
        .set_token_answer(TokenAnswer::Json(400, json!({"error": "invalid_grant"})));
    assert_bad_gateway(&s.call("/api/x", &caller).await, "invalid_grant");
    s.idp.set_token_answer(TokenAnswer::Issue {
        expires_in: Some(300),
    });
    assert_forwarded(&s.call("/api/x", &caller).await, "retried");
    assert_eq!(s.idp.token_hits(), 2);
    assert_eq!(s.token_requests("invalid_grant").await, 1.0);
}
