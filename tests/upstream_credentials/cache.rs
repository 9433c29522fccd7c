//! The client-credentials token is cached until `expires_in -
//! refresh_skew_s`, renewed by one request that every waiting request
//! shares, renewed before it expires so that requests do not wait, and
//! kept over a reload that leaves its table unchanged.

use super::*;
use common::idp::eventually;
use common::ops::FileGateway;

/// `expires_in` of these tests' tokens: renewal is due at 270 s (skew 30).
const LIFETIME: Duration = Duration::from_secs(300);
const RENEW_AT: Duration = Duration::from_secs(270);

#[tokio::test]
async fn one_token_serves_every_request_until_it_is_due() {
    let s = Setup::start("client_credentials", "").await;
    s.idp.set_token_answer(TokenAnswer::Issue {
        expires_in: Some(LIFETIME.as_secs()),
    });
    let caller = s.caller("alice");
    for n in 0..5 {
        assert_forwarded(&s.call(&format!("/api/{n}"), &caller).await, "cached");
        assert_eq!(s.upstream_authorization().as_deref(), Some("Bearer tok-1"));
    }
    assert_eq!(s.idp.token_hits(), 1, "five requests, one token request");
    assert_eq!(s.token_requests("ok").await, 1.0);

    // Past expires_in: the next request waits for a new token.
    s.clock.advance(LIFETIME + Duration::from_secs(1));
    assert_forwarded(&s.call("/api/later", &caller).await, "renewed");
    assert_eq!(s.upstream_authorization().as_deref(), Some("Bearer tok-2"));
    assert_eq!(s.idp.token_hits(), 2);
}

/// N requests arrive after the token expired, while the one renewal is
/// held at the token endpoint: they all wait for it, and the endpoint
/// sees one request.
#[tokio::test]
async fn concurrent_requests_at_expiry_share_one_token_request() {
    const N: usize = 50;
    let s = Setup::start("client_credentials", "").await;
    s.idp.set_token_answer(TokenAnswer::Issue {
        expires_in: Some(LIFETIME.as_secs()),
    });
    let caller = s.caller("alice");
    assert_forwarded(&s.call("/api/first", &caller).await, "first token");
    assert_eq!(s.idp.token_hits(), 1);

    s.clock.advance(LIFETIME + Duration::from_secs(1));
    let statuses = held_concurrent_calls(&s, &caller, N, 2).await;
    assert_eq!(statuses, vec![200; N]);
    let renewals = s.idp.token_hits() - 1;
    println!(
        "single-flight renewal: {N} concurrent requests at expiry -> {renewals} token request(s)"
    );
    assert_eq!(renewals, 1, "{N} requests at expiry share one renewal");
    let seen = s.upstream.requests();
    assert_eq!(seen.len(), N + 1);
    for request in &seen[1..] {
        assert_eq!(request.header("authorization"), Some("Bearer tok-2"));
    }
}

/// Between `renew_at` and `expires_at` requests go on with the current
/// token while one renewal runs, even while the token endpoint is slow.
#[tokio::test]
async fn requests_in_the_skew_window_do_not_wait_for_the_renewal() {
    let s = Setup::start("client_credentials", "").await;
    s.idp.set_token_answer(TokenAnswer::Issue {
        expires_in: Some(LIFETIME.as_secs()),
    });
    let caller = s.caller("alice");
    assert_forwarded(&s.call("/api/first", &caller).await, "first token");

    s.clock.advance(RENEW_AT + Duration::from_secs(1));
    s.idp.hold_tokens();
    for n in 0..3 {
        // Answered while the renewal is held: nobody waits for it.
        assert_forwarded(&s.call(&format!("/api/{n}"), &caller).await, "window");
        assert_eq!(s.upstream_authorization().as_deref(), Some("Bearer tok-1"));
    }
    s.idp.wait_token_hits(2).await;
    assert_eq!(s.idp.token_hits(), 2, "one renewal for the whole window");
    s.idp.release_tokens();

    // Past the old token's expiry only the renewed token is sent.
    s.clock.advance(LIFETIME - RENEW_AT);
    assert_forwarded(&s.call("/api/after", &caller).await, "renewed");
    assert_eq!(s.upstream_authorization().as_deref(), Some("Bearer tok-2"));
    assert_eq!(s.idp.token_hits(), 2);
}

/// On the system clock, with a two-second token (renewal due after one
/// second): the gateway renews it by itself, without a request.
#[tokio::test]
async fn the_token_is_renewed_in_the_background_before_it_expires() {
    let s = Setup::start_on("client_credentials", "", Clock::system()).await;
    s.idp.set_token_answer(TokenAnswer::Issue {
        expires_in: Some(2),
    });
    let caller = s.caller("alice");
    assert_forwarded(&s.call("/api/first", &caller).await, "first token");
    assert_eq!(s.upstream_authorization().as_deref(), Some("Bearer tok-1"));
    s.idp.wait_token_hits(2).await;
    assert_eq!(s.upstream.hits(), 1, "renewed without a request");
    assert_forwarded(&s.call("/api/later", &caller).await, "renewed");
    let sent = s.upstream_authorization().expect("a token");
    assert_ne!(sent, "Bearer tok-1", "the renewed token is used");
}

/// A reload keeps the token of an upstream whose `oauth` table did not
/// change, and starts afresh for one whose table did.
#[tokio::test]
async fn a_reload_keeps_the_token_of_an_unchanged_oauth_table() {
    let key = Key::es256("caller-key");
    let idp = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let config = |scope: &str| {
        minimal_config(
            &idp,
            &upstream,
            &idp.token_endpoint(),
            &format!("scope = \"{scope}\""),
        )
        .render()
    };
    let gw = FileGateway::start(&config("a")).await;
    eventually("the issuer's keys", || gw.not_ready().is_empty()).await;
    let caller = key.token(&claims(&idp.issuer(), AUD));
    assert_forwarded(&gw.call("/api/1", &caller).await, "first token");

    let unchanged = format!("{}\n# only a comment changed\n", config("a"));
    gw.write_and_reload(&unchanged).await.expect("reload");
    assert_forwarded(&gw.call("/api/2", &caller).await, "after the reload");
    assert_eq!(
        upstream.last().header("authorization"),
        Some("Bearer tok-1")
    );
    assert_eq!(idp.token_hits(), 1, "the token survived the reload");

    gw.write_and_reload(&config("b")).await.expect("reload");
    assert_forwarded(&gw.call("/api/3", &caller).await, "new scope");
    assert_eq!(
        upstream.last().header("authorization"),
        Some("Bearer tok-2")
    );
    assert_eq!(idp.last_token_call().param("scope").as_deref(), Some("b"));
}
