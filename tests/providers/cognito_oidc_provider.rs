//! The AWS Cognito and oidc-provider recipes.

use super::*;

const COGNITO_CLIENT: &str = "3n4b5urk1ft4fl3mg5e62d9ado";
const COGNITO_USER: &str = "a1b2c3d4-0000-4000-8000-e5f6a7b8c9d0";

#[tokio::test]
async fn cognito_id_tokens_pass_the_cognito_recipe_and_access_tokens_cannot() {
    let r = Recipe::start("cognito", "cognito-kid-1").await;
    r.assert_issuer_path("/eu-west-1_Example01");
    // Cognito's header: kid and alg, no typ.
    let header = json!({"kid": "cognito-kid-1", "alg": "RS256"});
    let (iat, exp) = times();

    // The access token: client_id, token_use access, scope, and no aud.
    let access = json!({
        "sub": COGNITO_USER,
        "cognito:groups": ["orders-readers"],
        "iss": r.iss,
        "version": 2,
        "client_id": COGNITO_CLIENT,
        "origin_jti": "7c1b9e2a-1111-4222-8333-944455566677",
        "event_id": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        "token_use": "access",
        "scope": "orders/read",
        "auth_time": iat,
        "exp": exp,
        "iat": iat,
        "jti": "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d",
        "username": "alice",
    });
    r.refuses(&r.mint(&header, &access), "token has no audience")
        .await;

    // The ID token: aud is the app client ID, groups an array.
    let id = json!({
        "sub": COGNITO_USER,
        "cognito:groups": ["orders-readers"],
        "email_verified": true,
        "iss": r.iss,
        "cognito:username": "alice",
        "origin_jti": "7c1b9e2a-1111-4222-8333-944455566677",
        "aud": COGNITO_CLIENT,
        "event_id": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        "token_use": "id",
        "auth_time": iat,
        "exp": exp,
        "iat": iat,
        "jti": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        "email": "alice@example.com",
    });
    r.accepts(
        &r.mint(&header, &id),
        &[
            ("x-auth-subject", Some(COGNITO_USER)),
            ("x-auth-client-id", Some(COGNITO_CLIENT)),
            ("x-auth-groups", Some("orders-readers")),
            ("x-auth-email", Some("alice@example.com")),
        ],
    )
    .await;
    // Another app client of the pool.
    let other = with(&id, json!({"aud": "7h8i9j0k1l2m3n4o5p6q7r8s9t"}));
    r.refuses(&r.mint(&header, &other), "token audience is not accepted")
        .await;
    // Not in the group, or in no group at all (the claim is then absent).
    let other_group = with(&id, json!({"cognito:groups": ["billing"]}));
    r.forbids(&r.mint(&header, &other_group)).await;
    let no_group = with(&id, json!({"cognito:groups": null}));
    r.forbids(&r.mint(&header, &no_group)).await;
}

#[tokio::test]
async fn oidc_provider_resource_tokens_pass_the_oidc_provider_recipe() {
    let r = Recipe::start("oidc-provider", "rsa-1-op").await;
    r.assert_issuer_path("");
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "rsa-1-op"});
    let (iat, exp) = times();
    // client_credentials with resource=https://orders.example.com.
    let claims = json!({
        "jti": "kOkZ2eBq4c3yWbYk0hZlX",
        "sub": "svc",
        "iat": iat,
        "exp": exp,
        "scope": "orders:read",
        "client_id": "svc",
        "iss": r.iss,
        "aud": "https://orders.example.com",
    });
    r.accepts(
        &r.mint(&header, &claims),
        &[
            ("x-auth-subject", Some("svc")),
            ("x-auth-client-id", Some("svc")),
            ("x-auth-scope", Some("orders:read")),
        ],
    )
    .await;
    let other = with(&claims, json!({"aud": "https://opaque.example.com"}));
    r.refuses(&r.mint(&header, &other), "token audience is not accepted")
        .await;
    let no_scope = with(&claims, json!({"scope": "orders:write"}));
    r.forbids(&r.mint(&header, &no_scope)).await;
    // Without a resource indicator the token is opaque: no introspection
    // table in this recipe.
    r.refuses_token("2yQb8pCZt0b6oNqV3wRk1mJ5sXhL9dE7fA4gU0iT-cY")
        .await;
}
