//! The Auth0 and Okta recipes.

use super::*;

const AUTH0_API: &str = "https://orders.example.com";
const AUTH0_CLIENT: &str = "Qb3Lx9Yz1aBcDeFgHiJkLmNoPqRsTuVw";

/// An Auth0-profile user token that asked for `openid` too: `aud` is an
/// array with the tenant's `/userinfo`, the client in `azp`, RBAC
/// `permissions`.
fn auth0_user_claims(iss: &str) -> Value {
    let (iat, exp) = times();
    json!({
        "iss": iss,
        "sub": "auth0|64f1c2e9a1b2c3d4e5f60718",
        "aud": [AUTH0_API, format!("{iss}userinfo")],
        "iat": iat,
        "exp": exp,
        "azp": AUTH0_CLIENT,
        "scope": "openid profile read:orders",
        "permissions": ["read:orders"],
    })
}

#[tokio::test]
async fn auth0_profile_tokens_pass_the_auth0_recipe() {
    let r = Recipe::start("auth0", "auth0-kid-1").await;
    r.assert_issuer_path("/");
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "auth0-kid-1"});
    let user = auth0_user_claims(&r.iss);
    r.accepts(
        &r.mint(&header, &user),
        &[
            ("x-auth-subject", Some("auth0|64f1c2e9a1b2c3d4e5f60718")),
            ("x-auth-client-id", Some(AUTH0_CLIENT)),
            ("x-auth-scope", Some("openid profile read:orders")),
            ("x-auth-permissions", Some("read:orders")),
        ],
    )
    .await;

    // A client-credentials token: `aud` a string, `sub` CLIENT@clients.
    let (iat, exp) = times();
    let m2m = json!({
        "iss": r.iss, "sub": format!("{AUTH0_CLIENT}@clients"), "aud": AUTH0_API,
        "iat": iat, "exp": exp, "scope": "read:orders", "gty": "client-credentials",
        "azp": AUTH0_CLIENT, "permissions": ["read:orders"],
    });
    let m2m_sub = format!("{AUTH0_CLIENT}@clients");
    r.accepts(
        &r.mint(&header, &m2m),
        &[
            ("x-auth-subject", Some(m2m_sub.as_str())),
            ("x-auth-client-id", Some(AUTH0_CLIENT)),
            ("x-auth-scope", Some("read:orders")),
        ],
    )
    .await;

    // Another API's token, or only the /userinfo audience.
    let other = with(
        &user,
        json!({"aud": ["https://billing.example.com", format!("{}userinfo", r.iss)]}),
    );
    r.refuses(&r.mint(&header, &other), "token audience is not accepted")
        .await;
    let userinfo_only = with(&user, json!({"aud": format!("{}userinfo", r.iss)}));
    r.refuses(
        &r.mint(&header, &userinfo_only),
        "token audience is not accepted",
    )
    .await;

    // No `audience` in the request: the token is not a JWS for the API
    // (here an encrypted, five-segment form), and there is no introspection.
    r.refuses_token("eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..c2FsdA.Y2lwaGVydGV4dA.dGFn")
        .await;

    // The route's scope is missing (`scope_claims = ["scope"]`: permissions
    // are not read).
    let no_scope = with(
        &user,
        json!({"scope": "openid profile", "permissions": ["read:orders"]}),
    );
    r.forbids(&r.mint(&header, &no_scope)).await;
}

#[tokio::test]
async fn auth0_rfc9068_tokens_pass_the_strict_recipe_and_auth0_profile_tokens_do_not() {
    let r = Recipe::start("auth0-rfc9068", "auth0-kid-2").await;
    r.assert_issuer_path("/");
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "auth0-kid-2"});
    let (iat, exp) = times();
    let claims = json!({
        "iss": r.iss,
        "sub": "auth0|64f1c2e9a1b2c3d4e5f60718",
        "aud": [AUTH0_API, format!("{}userinfo", r.iss)],
        "client_id": AUTH0_CLIENT,
        "exp": exp,
        "iat": iat,
        "jti": "73WakrfVbNJBaAmhQtEeDv",
        "scope": "openid profile read:orders",
        "permissions": ["read:orders"],
    });
    r.accepts(
        &r.mint(&header, &claims),
        &[
            ("x-auth-subject", Some("auth0|64f1c2e9a1b2c3d4e5f60718")),
            ("x-auth-client-id", Some(AUTH0_CLIENT)),
            ("x-auth-scope", Some("openid profile read:orders")),
        ],
    )
    .await;
    let other = with(&claims, json!({"aud": "https://billing.example.com"}));
    r.refuses(&r.mint(&header, &other), "token audience is not accepted")
        .await;
    let no_scope = with(&claims, json!({"scope": "openid profile"}));
    r.forbids(&r.mint(&header, &no_scope)).await;

    // An Auth0-profile token (typ JWT, azp, no client_id or jti) is refused
    // by the rfc9068 profile: switch profile and API setting together.
    let auth0_profile = json!({"alg": "RS256", "typ": "JWT", "kid": "auth0-kid-2"});
    r.refuses(
        &r.mint(&auth0_profile, &auth0_user_claims(&r.iss)),
        "token type is not accepted",
    )
    .await;
    let no_client_id = with(&claims, json!({"client_id": null, "azp": AUTH0_CLIENT}));
    r.refuses(
        &r.mint(&header, &no_client_id),
        "token lacks a required claim",
    )
    .await;
}

const OKTA_CLIENT: &str = "0oa1b2c3d4E5F6g7H8i9";

#[tokio::test]
async fn okta_custom_authorization_server_tokens_pass_the_okta_recipe() {
    let r = Recipe::start("okta", "okta-kid-1").await;
    r.assert_issuer_path("/oauth2/default");
    // Okta's header: kid and alg, no typ.
    let header = json!({"kid": "okta-kid-1", "alg": "RS256"});
    let (iat, exp) = times();
    let claims = json!({
        "ver": 1,
        "jti": "AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE",
        "iss": r.iss,
        "aud": "api://default",
        "iat": iat,
        "exp": exp,
        "cid": OKTA_CLIENT,
        "uid": "00uk1u7AsAk6dZL3z0g3",
        "scp": ["openid", "orders:read"],
        "auth_time": iat,
        "sub": "alice@example.com",
    });
    r.accepts(
        &r.mint(&header, &claims),
        &[
            ("x-auth-subject", Some("alice@example.com")),
            ("x-auth-client-id", Some(OKTA_CLIENT)),
            ("x-auth-scope", Some("openid orders:read")),
        ],
    )
    .await;
    let other = with(&claims, json!({"aud": "api://billing"}));
    r.refuses(&r.mint(&header, &other), "token audience is not accepted")
        .await;
    let no_scope = with(&claims, json!({"scp": ["openid", "orders:write"]}));
    r.forbids(&r.mint(&header, &no_scope)).await;

    // The org authorization server: issuer and audience are the bare org
    // URL. Not this recipe's issuer.
    let org = r.idp.base_url();
    let org_token = with(&claims, json!({"iss": org, "aud": org}));
    r.refuses(&r.mint(&header, &org_token), "token issuer is not accepted")
        .await;
    // A trailing slash is another issuer.
    let slash = with(&claims, json!({"iss": format!("{}/", r.iss)}));
    r.refuses(&r.mint(&header, &slash), "token issuer is not accepted")
        .await;
}
