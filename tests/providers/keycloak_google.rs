//! The Keycloak and Google recipes.

use super::*;

/// A Keycloak access token after an Audience mapper added `orders-api`.
fn keycloak_claims(iss: &str) -> Value {
    let (iat, exp) = times();
    json!({
        "exp": exp,
        "iat": iat,
        "auth_time": iat,
        "jti": "onrtac:5b1f3c0e-8d4a-4c36-9f1e-2a7b6c5d4e3f",
        "iss": iss,
        "aud": ["orders-api", "account"],
        "sub": "f1e2d3c4-b5a6-4978-8a9b-0c1d2e3f4a5b",
        "typ": "Bearer",
        "azp": "orders-frontend",
        "sid": "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a",
        "acr": "1",
        "allowed-origins": ["https://app.example.com"],
        "realm_access": {"roles": ["default-roles-example", "offline_access", "uma_authorization"]},
        "resource_access": {"account": {"roles": ["manage-account", "manage-account-links", "view-profile"]}},
        "scope": "openid profile email orders:read",
        "email_verified": true,
        "preferred_username": "alice",
    })
}

#[tokio::test]
async fn keycloak_tokens_with_an_audience_mapper_pass_the_keycloak_recipe() {
    let r = Recipe::start("keycloak", "kc-kid-1").await;
    r.assert_issuer_path("/realms/example");
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "kc-kid-1"});
    let claims = keycloak_claims(&r.iss);
    r.accepts(
        &r.mint(&header, &claims),
        &[
            (
                "x-auth-subject",
                Some("f1e2d3c4-b5a6-4978-8a9b-0c1d2e3f4a5b"),
            ),
            ("x-auth-client-id", Some("orders-frontend")),
            ("x-auth-scope", Some("openid profile email orders:read")),
        ],
    )
    .await;

    // Without the audience mapper: only `account`, or no aud at all.
    let account = with(&claims, json!({"aud": "account"}));
    r.refuses(&r.mint(&header, &account), "token audience is not accepted")
        .await;
    let none = with(&claims, json!({"aud": null}));
    r.refuses(&r.mint(&header, &none), "token has no audience")
        .await;
    // The frontend's ID token (payload typ ID, aud its own client ID).
    let id_token = with(
        &claims,
        json!({"typ": "ID", "aud": "orders-frontend", "scope": null}),
    );
    r.refuses(
        &r.mint(&header, &id_token),
        "token audience is not accepted",
    )
    .await;

    let no_scope = with(&claims, json!({"scope": "openid profile email"}));
    r.forbids(&r.mint(&header, &no_scope)).await;
}

#[tokio::test]
async fn keycloak_tokens_are_refused_by_the_rfc9068_profile() {
    // Why the recipe says generic: Keycloak's header typ is JWT.
    let r = Recipe::start_with(
        "keycloak",
        "kc-kid-2",
        |block| {
            assert!(block.contains("profile = \"generic\""));
            block.replace("profile = \"generic\"", "profile = \"rfc9068\"")
        },
        "",
    )
    .await;
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "kc-kid-2"});
    r.refuses(
        &r.mint(&header, &keycloak_claims(&r.iss)),
        "token type is not accepted",
    )
    .await;
}

const GOOGLE_AUD: &str = "https://orders.example.com";
const GOOGLE_SA: &str = "orders-caller@example-project.iam.gserviceaccount.com";

/// A route that needs a scope, added by the tests only: Google ID tokens
/// have none.
const SCOPED_ROUTE: &str =
    "[[routes]]\npath = \"/scoped/**\"\nupstream = \"api\"\nscopes = [\"orders:read\"]\n";

/// A service account's ID token, as the metadata server or
/// `generateIdToken` (with `includeEmail`) return it.
fn google_id_token_claims(iss: &str) -> Value {
    let (iat, exp) = times();
    json!({
        "aud": GOOGLE_AUD,
        "azp": "112233445566778899001",
        "email": GOOGLE_SA,
        "email_verified": true,
        "exp": exp,
        "iat": iat,
        "iss": iss,
        "sub": "112233445566778899001",
    })
}

#[tokio::test]
async fn google_id_tokens_pass_the_google_recipe_and_access_tokens_do_not() {
    let r = Recipe::start_with("google", "g-kid-1", str::to_string, SCOPED_ROUTE).await;
    r.assert_issuer_path("");
    let header = json!({"alg": "RS256", "kid": "g-kid-1", "typ": "JWT"});
    let claims = google_id_token_claims(&r.iss);
    r.accepts(
        &r.mint(&header, &claims),
        &[
            ("x-auth-subject", Some("112233445566778899001")),
            ("x-auth-email", Some(GOOGLE_SA)),
            ("x-auth-scope", None),
        ],
    )
    .await;
    let other = with(&claims, json!({"aud": "https://billing.example.com"}));
    r.refuses(&r.mint(&header, &other), "token audience is not accepted")
        .await;
    let no_email = with(&claims, json!({"email": null, "email_verified": null}));
    r.refuses(&r.mint(&header, &no_email), "token lacks a required claim")
        .await;
    // `https://accounts.google.com/` is another issuer.
    let slash = with(&claims, json!({"iss": format!("{}/", r.iss)}));
    r.refuses(&r.mint(&header, &slash), "token issuer is not accepted")
        .await;
    // An opaque Google access token: no key can verify it, no introspection.
    r.refuses_token("ya29.a0AfB_byC1dE2fG3hI4jK5lM6nO7pQ8rS9tU0vW1xY2zA3bC4dE5fG6hI7jK8")
        .await;
    // A route that requires a scope: no Google ID token has one.
    r.forbids_at("/scoped/1", &r.mint(&header, &claims)).await;
}

#[tokio::test]
async fn google_legacy_issuer_tokens_pass_the_second_table() {
    let r = Recipe::start_with(
        "google-legacy-issuer",
        "g-kid-2",
        str::to_string,
        SCOPED_ROUTE,
    )
    .await;
    assert_eq!(r.iss, "accounts.google.com");
    let header = json!({"alg": "RS256", "kid": "g-kid-2", "typ": "JWT"});
    let claims = google_id_token_claims(&r.iss);
    r.accepts(
        &r.mint(&header, &claims),
        &[("x-auth-email", Some(GOOGLE_SA))],
    )
    .await;
    let https = with(&claims, json!({"iss": "https://accounts.google.com"}));
    r.refuses(&r.mint(&header, &https), "token issuer is not accepted")
        .await;
    let other = with(&claims, json!({"aud": "https://billing.example.com"}));
    r.refuses(&r.mint(&header, &other), "token audience is not accepted")
        .await;
    r.forbids_at("/scoped/1", &r.mint(&header, &claims)).await;
}
