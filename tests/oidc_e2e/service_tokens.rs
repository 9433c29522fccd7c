//! Client-credentials tokens: a JWT enforced per route, and opaque tokens
//! introspected with either client authentication method.

use super::*;

#[test]
fn client_credentials_jwt_is_enforced() {
    let Some(op) = Provider::start("client_credentials_jwt_is_enforced") else {
        return;
    };
    run(async {
        let upstream = Upstream::echo().await;
        // Discovery against the provider, whose issuer has no trailing slash.
        let gw = jwt_gateway(&op, &upstream, "discovery = true").await;

        let read = op.client_credentials(API, "orders:read").await;
        let header = jwt_part(&read, 0);
        assert_eq!(header["typ"], "at+jwt", "{header}");
        assert_eq!(header["alg"], "RS256", "{header}");
        let claims = jwt_part(&read, 1);
        assert_eq!(claims["iss"], op.issuer.as_str(), "{claims}");
        assert_eq!(claims["aud"], API, "{claims}");

        let reply = call(&gw, "GET", "/orders/42?expand=1", Some(&read)).await;
        assert_forwarded(&reply, "valid token");
        assert_eq!(upstream.hits(), 1);
        assert_eq!(upstream.last().target(), "/orders/42?expand=1");
        // A client-credentials token's subject is the client (RFC 9068 2.2).
        assert_upstream_identity(&upstream, Some("svc"), "svc", "orders:read");

        // orders:write only, on a route that needs orders:read.
        let write = op.client_credentials(API, "orders:write").await;
        let reply = call(&gw, "GET", "/orders/42", Some(&write)).await;
        assert_eq!(reply.gateway_error(403)["error"], "insufficient_scope");
        let challenge = reply.header("www-authenticate").expect("challenge");
        assert!(
            challenge.contains("error=\"insufficient_scope\"")
                && challenge.contains("scope=\"orders:read\""),
            "{challenge}"
        );
        assert_eq!(
            upstream.hits(),
            1,
            "a refused request never reaches the upstream"
        );
        // ... and it does what it was issued for.
        let reply = call(&gw, "POST", "/orders/42", Some(&write)).await;
        assert_forwarded(&reply, "valid token");
        assert_upstream_identity(&upstream, Some("svc"), "svc", "orders:write");

        // No token: a bare challenge, no error code (RFC 6750 3.1).
        let reply = call(&gw, "GET", "/orders/42", None).await;
        let body = reply.gateway_error(401);
        assert!(body.get("error").is_none(), "{body}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"tokengate\"")
        );

        // Tampered: claims widened under the original signature ...
        let mut widened = jwt_part(&read, 1);
        widened["scope"] = "orders:read orders:write".into();
        let segments: Vec<&str> = read.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            segments[0],
            URL_SAFE_NO_PAD.encode(widened.to_string()),
            segments[2]
        );
        assert_invalid_token(
            &call(&gw, "POST", "/orders/42", Some(&forged)).await,
            "claims changed after signing",
        );
        // ... and one signature bit flipped.
        let mut signature = URL_SAFE_NO_PAD.decode(segments[2]).expect("signature");
        signature[0] ^= 0x01;
        let flipped = format!(
            "{}.{}.{}",
            segments[0],
            segments[1],
            URL_SAFE_NO_PAD.encode(signature)
        );
        assert_invalid_token(
            &call(&gw, "GET", "/orders/42", Some(&flipped)).await,
            "signature changed",
        );
        assert_eq!(
            upstream.hits(),
            2,
            "only the two valid requests were forwarded"
        );
    });
    op.stop();
}

#[test]
fn opaque_token_introspected_with_client_secret_basic_is_refused_after_revocation() {
    let Some(op) = Provider::start(
        "opaque_token_introspected_with_client_secret_basic_is_refused_after_revocation",
    ) else {
        return;
    };
    const CACHE_TTL: Duration = Duration::from_secs(1);
    run(async {
        let upstream = Upstream::echo().await;
        let gw = opaque_gateway(
            &op,
            &upstream,
            GATEWAY_BASIC,
            "client_secret_basic",
            CACHE_TTL.as_secs(),
        )
        .await;

        let token = op.client_credentials(OPAQUE, "orders:read").await;
        assert!(!token.contains('.'), "an opaque token, not a JWT: {token}");
        let reply = call(&gw, "GET", "/orders/7", Some(&token)).await;
        assert_forwarded(&reply, "valid token");
        assert_eq!(
            op.hits("introspection").await,
            1,
            "the gateway asked the provider"
        );
        // Introspection of a client-credentials token has no `sub`: no header.
        assert_upstream_identity(&upstream, None, "svc", "orders:read");

        // Scopes apply to introspected identities too.
        let write = op.client_credentials(OPAQUE, "orders:write").await;
        let reply = call(&gw, "GET", "/orders/7", Some(&write)).await;
        assert_eq!(reply.gateway_error(403)["error"], "insufficient_scope");
        // A token the provider never issued: active=false.
        let unknown = random_b64url();
        assert_invalid_token(
            &call(&gw, "GET", "/orders/7", Some(&unknown)).await,
            "unknown opaque token",
        );
        assert_eq!(upstream.hits(), 1);

        // RFC 7009 revocation at the provider.
        op.revoke(&token).await;
        let revoked_at = Instant::now();
        assert_eq!(op.introspect(&token).await["active"], false);
        // Right after revocation the gateway may still answer from its
        // cache: a revoked token lives on at the gateway for at most
        // cache_ttl_s. After that it must be refused; poll, bounded (the
        // slack covers scheduling on a loaded machine).
        let bound = CACHE_TTL + Duration::from_millis(1500);
        let mut forwarded = 1;
        loop {
            let reply = call(&gw, "GET", "/orders/7", Some(&token)).await;
            if reply.status == 401 {
                assert_invalid_token(&reply, "revoked token");
                break;
            }
            assert_forwarded(&reply, "revoked token, still cached");
            forwarded += 1;
            assert!(
                revoked_at.elapsed() < bound,
                "a revoked token was still accepted {:?} after revocation (cache_ttl_s = {CACHE_TTL:?})",
                revoked_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "revoked token: {} request(s) still served from the cache, refused {:?} after revocation",
            forwarded - 1,
            revoked_at.elapsed()
        );
        assert_invalid_token(
            &call(&gw, "GET", "/orders/7", Some(&token)).await,
            "revoked token stays refused",
        );
        assert_eq!(
            upstream.hits(),
            forwarded,
            "refusals never reach the upstream"
        );
    });
    op.stop();
}

#[test]
fn opaque_token_introspected_with_client_secret_post_is_cached() {
    let Some(op) = Provider::start("opaque_token_introspected_with_client_secret_post_is_cached")
    else {
        return;
    };
    run(async {
        let upstream = Upstream::echo().await;
        let gw = opaque_gateway(&op, &upstream, GATEWAY_POST, "client_secret_post", 60).await;

        let token = op
            .client_credentials(OPAQUE, "orders:read orders:write")
            .await;
        for _ in 0..3 {
            let reply = call(&gw, "GET", "/orders/9", Some(&token)).await;
            assert_forwarded(&reply, "valid token");
        }
        assert_eq!(
            op.hits("introspection").await,
            1,
            "one call, then the cache"
        );
        assert_upstream_identity(&upstream, None, "svc", "orders:read orders:write");
        let reply = call(&gw, "POST", "/orders/9", Some(&token)).await;
        assert_forwarded(&reply, "valid token");
        assert_eq!(
            op.hits("introspection").await,
            1,
            "scopes are checked on the cached identity"
        );

        // Revoked at the provider but cached at the gateway: accepted until
        // cache_ttl_s (60 s here) runs out. That is the documented bound.
        op.revoke(&token).await;
        assert_eq!(op.introspect(&token).await["active"], false);
        let asked = op.hits("introspection").await;
        let reply = call(&gw, "GET", "/orders/9", Some(&token)).await;
        assert_forwarded(&reply, "revoked token within cache_ttl_s");
        assert_eq!(
            op.hits("introspection").await,
            asked,
            "answered from the cache"
        );
        assert_eq!(upstream.hits(), 5);

        // The provider refuses the gateway's own credentials: 503, never forwarded.
        let refused = opaque_gateway(
            &op,
            &upstream,
            (GATEWAY_POST.0, "wrong-secret"),
            "client_secret_post",
            60,
        )
        .await;
        let fresh = op.client_credentials(OPAQUE, "orders:read").await;
        let reply = call(&refused, "GET", "/orders/9", Some(&fresh)).await;
        assert_eq!(reply.gateway_error(503)["error"], "temporarily_unavailable");
        assert!(reply.header("www-authenticate").is_none());
        assert!(reply.header("retry-after").is_some());
        assert_eq!(upstream.hits(), 5);
    });
    op.stop();
}
