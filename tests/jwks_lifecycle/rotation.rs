//! Rotation and removal of keys, and the unknown-kid refetch budget.

use super::*;

#[tokio::test]
async fn new_kid_costs_exactly_one_fetch_then_is_served_from_memory() {
    let k1 = Key::rs256("k1");
    let (idp, upstream, gw) =
        ready(&[&k1], "jwks_refresh_s = 300\njwks_miss_cooldown_s = 60").await;
    let base = idp.jwks_hits();
    assert_eq!(base, 1, "one fetch at start");
    for _ in 0..3 {
        assert_eq!(gw.call("/api/x", &token(&k1, &idp)).await.status, 200);
    }
    assert_eq!(idp.jwks_hits(), base, "known kids need no fetch");

    let k2 = Key::ps256("k2");
    idp.add_key(&k2);
    assert_eq!(
        gw.call("/api/x", &token(&k2, &idp)).await.status,
        200,
        "the rotated-in key is fetched"
    );
    assert_eq!(idp.jwks_hits(), base + 1, "exactly one extra fetch");
    for _ in 0..3 {
        assert_eq!(gw.call("/api/x", &token(&k2, &idp)).await.status, 200);
    }
    assert_eq!(idp.jwks_hits(), base + 1, "the new kid is now in memory");
    assert_eq!(
        gw.call("/api/x", &token(&k1, &idp)).await.status,
        200,
        "the old key still works"
    );

    // Another new kid within the cooldown: no fetch, so it stays unknown.
    let k3 = Key::es256("k3");
    idp.add_key(&k3);
    assert_invalid_token(
        &gw.call("/api/x", &token(&k3, &idp)).await,
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
    let (idp, upstream, gw) = ready(&[&old, &new], "jwks_refresh_s = 1").await;
    let cached = token(&old, &idp);
    let other = token(&new, &idp);
    assert_eq!(gw.call("/api/x", &cached).await.status, 200);
    assert_eq!(gw.call("/api/x", &cached).await.status, 200);
    assert_eq!(gw.call("/api/x", &other).await.status, 200);

    idp.remove_kid("old");
    // The refresh loop is sequential: fetch n+2 starts only after fetch n+1,
    // which began after the removal, was installed.
    let h = idp.jwks_hits();
    idp.wait_jwks_hits(h + 2).await;

    assert_invalid_token(
        &gw.call("/api/x", &cached).await,
        "cached identity of a withdrawn key",
    );
    assert_invalid_token(
        &gw.call("/api/x", &token(&old, &idp)).await,
        "fresh token of a withdrawn key",
    );
    assert_eq!(
        upstream.hits(),
        3,
        "withdrawn keys' tokens are not forwarded"
    );
    assert_eq!(
        gw.call("/api/x", &other).await.status,
        200,
        "the remaining key still verifies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_unknown_kids_cost_at_most_one_fetch_per_cooldown() {
    let known = Key::eddsa("known");
    let (idp, upstream, gw) =
        ready(&[&known], "jwks_refresh_s = 300\njwks_miss_cooldown_s = 60").await;
    let base = idp.jwks_hits();

    let signer = Key::eddsa("unused");
    let c = claims(&idp.issuer(), AUD);
    let tokens: Vec<String> = (0..1000)
        .map(|i| signer.with_kid(&format!("unknown-{i}")).token(&c))
        .collect();
    let statuses: Vec<u16> = futures_util::stream::iter(tokens.iter())
        .map(|t| {
            let gw = &gw;
            async move { gw.call("/api/x", t).await.status.as_u16() }
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
    assert_eq!(gw.call("/api/x", &token(&known, &idp)).await.status, 200);
}
