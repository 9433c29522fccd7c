//! Upstream credentials against oidc-provider (extensions section 14):
//! the caller's gateway gets its own token for the upstream, and a second
//! tokengate in front of the upstream verifies it like any token, so the
//! chain gateway → gateway works. Client credentials with an RFC 8707
//! resource indicator, and RFC 8693 token exchange through the custom
//! grant type provider.mjs registers.

use super::*;

/// The gateway's own clients at the provider, as registered in provider.mjs.
const UPSTREAM_CLIENT: (&str, &str) = ("tokengate-upstream", "gateway-upstream-secret");
const EXCHANGE_CLIENT: (&str, &str) = ("tokengate-exchange", "gateway-exchange-secret");

/// `[upstreams.inner]` pointing at the `inner` gateway, with its `oauth`
/// table at the provider's token endpoint for `https://api.test`.
fn inner_upstream(
    config: GatewayConfig,
    op: &Provider,
    inner: &Gateway,
    grant: &str,
    (client_id, secret): (&str, &str),
    auth_method: &str,
) -> GatewayConfig {
    let oauth = format!(
        "[upstreams.inner.oauth]\ngrant = \"{grant}\"\ntoken_endpoint = \"{}\"\n\
         client_id = \"{client_id}\"\nclient_secret = \"{secret}\"\n\
         auth_method = \"{auth_method}\"\nresource = \"{API}\"\nscope = \"orders:read\"",
        op.url("/token")
    );
    config
        .upstream_with("inner", &format!("http://{}", inner.addr()), &oauth)
        .route(Route::new("/orders/**", "inner").scopes(&["orders:read"]))
}

/// The bearer token the upstream received last, with its claims.
fn upstream_token(upstream: &Upstream) -> (String, Value) {
    let seen = upstream.last();
    let token = seen
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("a bearer token at the upstream")
        .to_string();
    let claims = jwt_part(&token, 1);
    (token, claims)
}

#[test]
fn client_credentials_token_for_the_upstream_passes_a_second_gateway() {
    let Some(op) =
        Provider::start("client_credentials_token_for_the_upstream_passes_a_second_gateway")
    else {
        return;
    };
    run(async {
        let upstream = Upstream::echo().await;
        let inner = jwt_gateway(&op, &upstream, "discovery = true").await;
        let config = GatewayConfig::new()
            .admin()
            .issuer(jwt_issuer(&op, "discovery = true"));
        let outer = inner_upstream(
            config,
            &op,
            &inner,
            "client_credentials",
            UPSTREAM_CLIENT,
            "client_secret_basic",
        )
        .start()
        .await;
        wait_ready(&outer).await;

        let caller = op.client_credentials(API, "orders:read").await;
        let before = op.hits("token").await;
        for n in 0..3 {
            let reply = call(&outer, "GET", &format!("/orders/{n}"), Some(&caller)).await;
            assert_forwarded(&reply, "through both gateways");
        }
        assert_eq!(
            op.hits("token").await,
            before + 1,
            "one gateway token for 3 requests"
        );
        // The inner gateway verified the outer one's token, not the caller's.
        assert_upstream_identity(
            &upstream,
            Some(UPSTREAM_CLIENT.0),
            UPSTREAM_CLIENT.0,
            "orders:read",
        );
        let (token, claims) = upstream_token(&upstream);
        assert_ne!(
            token, caller,
            "the caller's token never reaches the upstream"
        );
        assert_eq!(claims["aud"], API, "the resource indicator: {claims}");
        assert_eq!(claims["client_id"], UPSTREAM_CLIENT.0, "{claims}");
        assert_eq!(upstream.hits(), 3);
    });
    op.stop();
}

#[test]
fn token_exchange_for_each_caller_passes_a_second_gateway() {
    let Some(op) = Provider::start("token_exchange_for_each_caller_passes_a_second_gateway") else {
        return;
    };
    run(async {
        let upstream = Upstream::echo().await;
        let inner = jwt_gateway(&op, &upstream, "discovery = true").await;
        // The caller's opaque tokens are introspected by the outer gateway
        // and exchanged (RFC 8693) for JWTs the inner gateway accepts.
        let config = GatewayConfig::new().admin().issuer(opaque_issuer(
            &op,
            GATEWAY_BASIC,
            "client_secret_basic",
            60,
        ));
        let outer = inner_upstream(
            config,
            &op,
            &inner,
            "token_exchange",
            EXCHANGE_CLIENT,
            "client_secret_post",
        )
        .start()
        .await;
        wait_ready(&outer).await;

        let first = op.client_credentials(OPAQUE, "orders:read").await;
        let second = op.client_credentials(OPAQUE, "orders:read").await;
        let before = op.hits("token").await;
        let mut exchanged = Vec::new();
        for caller in [&first, &second, &first] {
            let reply = call(&outer, "GET", "/orders/7", Some(caller)).await;
            assert_forwarded(&reply, "exchanged through both gateways");
            // The subject stays the caller's; the gateway's client acts.
            assert_upstream_identity(&upstream, Some(SVC.0), EXCHANGE_CLIENT.0, "orders:read");
            let (token, claims) = upstream_token(&upstream);
            assert_eq!(claims["act"]["sub"], EXCHANGE_CLIENT.0, "{claims}");
            assert_eq!(claims["aud"], API, "{claims}");
            assert_ne!(&token, caller);
            exchanged.push(token);
        }
        assert_ne!(exchanged[0], exchanged[1], "one token per caller token");
        assert_eq!(
            exchanged[0], exchanged[2],
            "the first caller's token, cached"
        );
        assert_eq!(
            op.hits("token").await,
            before + 2,
            "one exchange per caller token"
        );
    });
    op.stop();
}
