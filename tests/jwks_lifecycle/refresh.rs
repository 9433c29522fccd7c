//! Refreshes that fail in every way an identity provider can fail, and
//! the stale limit.

use super::*;

/// While refreshes fail with `failure`, the last good key set keeps
/// verifying (fresh and cached tokens) and the gateway stays ready; a key
/// published meanwhile is not picked up (nothing the failing answer said is
/// believed, a redirect is not followed); when the idp recovers it is.
async fn last_good_keys_survive(failure: Failure) {
    let k1 = Key::es256("k1");
    let (idp, upstream, gw) = ready(&[&k1], "jwks_refresh_s = 1\njwks_timeout_ms = 300").await;
    let cached = token(&k1, &idp);
    assert_eq!(gw.call("/api/x", &cached).await.status, 200);

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
        gw.call("/api/x", &cached).await.status,
        200,
        "{failure:?}: cached token"
    );
    assert_eq!(
        gw.call("/api/x", &token(&k1, &idp)).await.status,
        200,
        "{failure:?}: fresh token"
    );
    assert_invalid_token(
        &gw.call("/api/x", &token(&k2, &idp)).await,
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
        gw.call("/api/x", &token(&k2, &idp)).await.status,
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
    let (idp, upstream, gw) = ready(
        &[&key],
        "jwks_refresh_s = 1\njwks_max_stale_s = 1\njwks_timeout_ms = 300",
    )
    .await;
    let cached = token(&key, &idp);
    assert_eq!(gw.call("/api/x", &cached).await.status, 200);

    idp.set_failure(Failure::Status500);
    let reply = wait_not_ready(&gw).await;
    assert_names_issuer(&reply, "corp");
    assert_unavailable(&gw.call("/api/x", &cached).await, "unavailable");
    assert_unavailable(&gw.call("/api/x", &token(&key, &idp)).await, "unavailable");
    assert_eq!(
        upstream.hits(),
        1,
        "nothing is forwarded on a stale key set"
    );

    idp.set_failure(Failure::None);
    wait_ready(&gw).await;
    assert_eq!(gw.call("/api/x", &cached).await.status, 200);
}
