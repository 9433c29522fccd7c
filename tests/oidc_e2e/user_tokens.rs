//! Tokens a user's login yields: authorization code with PKCE, refresh
//! token rotation; and the provider rotating its signing key.

use super::*;

#[test]
fn authorization_code_with_pkce_yields_an_accepted_token() {
    let Some(op) = Provider::start("authorization_code_with_pkce_yields_an_accepted_token") else {
        return;
    };
    run(async {
        let upstream = Upstream::echo().await;
        let gw = jwt_gateway(&op, &upstream, &jwks_uri(&op)).await;

        // The public client must use PKCE: without a challenge the provider
        // answers at the redirect URI with an error and no code.
        let location = user_agent(&op, authorization_url(&op, "no-pkce", None)).await;
        assert_eq!(
            query_param(&location, "error").as_deref(),
            Some("invalid_request"),
            "{location}"
        );
        assert_eq!(query_param(&location, "code"), None);

        let tokens = authorization_code_flow(&op).await;
        assert_eq!(tokens["token_type"], "Bearer", "{tokens}");
        assert_eq!(tokens["scope"], "orders:read", "{tokens}");
        let access = tokens["access_token"].as_str().expect("access_token");
        let claims = jwt_part(access, 1);
        assert_eq!(claims["aud"], API, "{claims}");
        assert_eq!(claims["sub"], "alice", "{claims}");

        let reply = call(&gw, "GET", "/orders/1", Some(access)).await;
        assert_forwarded(&reply, "valid token");
        assert_upstream_identity(&upstream, Some("alice"), SPA, "orders:read");
        let reply = call(&gw, "POST", "/orders/1", Some(access)).await;
        assert_eq!(reply.gateway_error(403)["error"], "insufficient_scope");
        assert_eq!(upstream.hits(), 1);
    });
    op.stop();
}

#[test]
fn refresh_token_rotation() {
    let Some(op) = Provider::start("refresh_token_rotation") else {
        return;
    };
    run(async {
        let upstream = Upstream::echo().await;
        let gw = jwt_gateway(&op, &upstream, &jwks_uri(&op)).await;

        let tokens = authorization_code_flow(&op).await;
        let first_access = tokens["access_token"].as_str().expect("access_token");
        let first_refresh = tokens["refresh_token"]
            .as_str()
            .expect("refresh_token (offline_access)");

        let renewed = ok_json(&refresh_grant(&op, first_refresh).await, "refresh grant");
        let access = renewed["access_token"].as_str().expect("access_token");
        let rotated = renewed["refresh_token"]
            .as_str()
            .expect("rotated refresh_token");
        assert_ne!(access, first_access);
        assert_ne!(
            rotated, first_refresh,
            "rotateRefreshToken: a new refresh token"
        );
        assert_eq!(jwt_part(access, 1)["aud"], API);

        let reply = call(&gw, "GET", "/orders/2", Some(access)).await;
        assert_forwarded(&reply, "valid token");
        assert_upstream_identity(&upstream, Some("alice"), SPA, "orders:read");

        // The rotated-out refresh token is refused by the provider.
        assert_oauth_error(
            &refresh_grant(&op, first_refresh).await,
            400,
            "invalid_grant",
            "reused refresh token",
        );
    });
    op.stop();
}

#[test]
fn provider_key_rotation_costs_exactly_one_key_set_fetch() {
    let Some(op) = Provider::start("provider_key_rotation_costs_exactly_one_key_set_fetch") else {
        return;
    };
    run(async {
        let upstream = Upstream::echo().await;
        // A long refresh period: the only refetch is the unknown-kid one.
        let key_source = format!(
            "jwks_uri = \"{}\"\njwks_refresh_s = 3600\njwks_miss_cooldown_s = 30",
            op.url("/jwks")
        );
        let gw = jwt_gateway(&op, &upstream, &key_source).await;
        assert_eq!(op.hits("jwks").await, 1, "one key-set fetch at start");

        let old = op.client_credentials(API, "orders:read").await;
        let old_kid = jwt_part(&old, 0)["kid"].as_str().expect("kid").to_string();
        assert_forwarded(&call(&gw, "GET", "/orders/3", Some(&old)).await, "old kid");
        assert_eq!(op.hits("jwks").await, 1);

        let new_kid = op.rotate().await;
        assert_ne!(new_kid, old_kid);
        let new = op.client_credentials(API, "orders:read").await;
        assert_eq!(
            jwt_part(&new, 0)["kid"],
            new_kid.as_str(),
            "signed with the new key"
        );

        let reply = call(&gw, "GET", "/orders/3", Some(&new)).await;
        assert_forwarded(&reply, "valid token");
        assert_eq!(
            op.hits("jwks").await,
            2,
            "exactly one refetch for the new kid"
        );
        for _ in 0..3 {
            assert_forwarded(&call(&gw, "GET", "/orders/3", Some(&new)).await, "new kid");
        }
        // The old key is still published second: its tokens still verify.
        assert_forwarded(&call(&gw, "GET", "/orders/3", Some(&old)).await, "old kid");
        assert_eq!(op.hits("jwks").await, 2, "no further fetches");
        assert_eq!(upstream.hits(), 6);
        assert_upstream_identity(&upstream, Some("svc"), "svc", "orders:read");
    });
    op.stop();
}

/// The key source naming the provider's key set directly.
fn jwks_uri(op: &Provider) -> String {
    format!("jwks_uri = \"{}\"", op.url("/jwks"))
}
