//! The positive and negative caches and their lifetimes, one call for
//! concurrent lookups of a token, the bound on calls in flight, and
//! fail-closed answers when the endpoint cannot be consulted.

use super::*;

#[tokio::test]
async fn active_answers_are_cached_for_cache_ttl_then_asked_again() {
    let s = Setup::start("cache_ttl_s = 1").await;
    let token = opaque("revoked");
    s.idp.set_introspection(&token, active(json!({})));
    assert_forwarded(&s.call("/read/x", &token).await, "first use");
    assert_eq!(s.idp.introspect_hits(), 1);

    // Revoked at the IdP: within the TTL the cached answer still holds.
    s.idp.set_introspection(&token, json!({"active": false}));
    for n in 0..5 {
        assert_forwarded(&s.call("/read/x", &token).await, &format!("cached use {n}"));
    }
    assert_eq!(
        s.idp.introspect_hits(),
        1,
        "repeats within the TTL: no call"
    );
    assert_eq!(s.upstream.hits(), 6);

    s.k.advance(PAST_ONE_SECOND);
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
    assert_forwarded(&s.call("/read/x", &token).await, "first use");
    assert_forwarded(&s.call("/read/x", &token).await, "cached use");
    assert_eq!(s.idp.introspect_hits(), 1);
    assert_eq!(s.upstream.hits(), 2);

    // The entry lived min(cache_ttl_s, exp - now): past exp the gateway asks
    // again, and the (unchanged) answer is now expired.
    s.k.advance(Duration::from_secs_f64(exp as f64 - s.k.now() + 0.05));
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

    s.k.advance(PAST_ONE_SECOND);
    assert_forwarded(&s.call("/read/x", &token).await, "after the negative TTL");
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
        assert_forwarded(reply, "coalesced lookup");
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
    assert_forwarded(&s.call("/read/x", &token).await, "after the failure");
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
        assert_forwarded(reply, "held request");
    }
    assert_eq!(s.idp.introspect_max_in_flight(), 2, "never more than two");
    assert_eq!(s.idp.introspect_hits(), 2);
    assert_eq!(s.upstream.hits(), 2);

    // Shedding is not remembered: each shed token now gets its own call
    // (the two answered ones are cached).
    for token in &tokens {
        assert_forwarded(&s.call("/read/x", token).await, "after the flood");
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
    assert_forwarded(&s.call("/read/x", &token).await, "endpoint recovered");
    assert_eq!(s.idp.introspect_hits(), calls + 1);
    assert_eq!(s.upstream.hits(), 1);
}
