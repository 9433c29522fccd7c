//! The Microsoft Entra ID recipes (v2 and v1 tokens).

use super::*;

const ENTRA_TENANT: &str = "8eaef023-2b34-4da1-9baa-8bc8c9d6a490";
const ENTRA_API: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
const ENTRA_CLIENT: &str = "2d4d11a2-f814-46a7-890a-274a72a7309e";
const ENTRA_USER_OID: &str = "690222be-ff1a-4d56-abd1-7e4f7d38e474";
const ENTRA_APP_OID: &str = "3f8a2b1c-5d6e-4f70-8192-a3b4c5d6e7f8";

/// A v2 delegated (user) token: `scp` a string, client in `azp`.
fn entra_v2_delegated(iss: &str) -> Value {
    let (iat, exp) = times();
    json!({
        "aud": ENTRA_API,
        "iss": iss,
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "aio": "AWQAm/8TAAAA",
        "azp": ENTRA_CLIENT,
        "azpacr": "0",
        "name": "Alice Example",
        "oid": ENTRA_USER_OID,
        "preferred_username": "alice@contoso.example",
        "rh": "0.AQkAI_CurjQroU2bqovIydakkA.",
        "scp": "Orders.Read User.Read",
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "tid": ENTRA_TENANT,
        "uti": "fqiBqXLPj0eQa82S-IYFAA",
        "ver": "2.0",
    })
}

#[tokio::test]
async fn entra_v2_delegated_and_app_only_tokens_pass_the_v2_recipe() {
    let r = Recipe::start("entra", "entra-kid-1").await;
    r.assert_issuer_path(&format!("/{ENTRA_TENANT}/v2.0"));
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "entra-kid-1"});
    let delegated = entra_v2_delegated(&r.iss);
    r.accepts(
        &r.mint(&header, &delegated),
        &[
            ("x-auth-subject", Some(ENTRA_USER_OID)),
            ("x-auth-client-id", Some(ENTRA_CLIENT)),
            ("x-auth-scope", Some("Orders.Read User.Read")),
            ("x-auth-roles", None),
            ("x-auth-tenant", Some(ENTRA_TENANT)),
        ],
    )
    .await;

    // Application-only (client credentials): no scp, roles an array.
    let (iat, exp) = times();
    let app = json!({
        "aud": ENTRA_API, "iss": r.iss, "iat": iat, "nbf": iat, "exp": exp,
        "aio": "E2ZgYDgV", "azp": ENTRA_CLIENT, "azpacr": "1", "idtyp": "app",
        "oid": ENTRA_APP_OID, "rh": "0.AQkAI_CurjQroU2bqovIydakkA.",
        "roles": ["Orders.Read.All"], "sub": ENTRA_APP_OID, "tid": ENTRA_TENANT,
        "uti": "kJzAZd2-mUe7oVZsCxYaAA", "ver": "2.0",
    });
    r.accepts(
        &r.mint(&header, &app),
        &[
            ("x-auth-subject", Some(ENTRA_APP_OID)),
            ("x-auth-scope", None),
            ("x-auth-roles", Some("Orders.Read.All")),
        ],
    )
    .await;

    // v2 `aud` is the client ID: the App ID URI, Graph, another API: 401.
    for aud in [
        format!("api://{ENTRA_API}"),
        "00000003-0000-0000-c000-000000000000".to_string(),
        "9a3c2f4e-0000-4000-8000-000000000001".to_string(),
    ] {
        let wrong = with(&delegated, json!({ "aud": aud }));
        r.refuses(&r.mint(&header, &wrong), "token audience is not accepted")
            .await;
    }

    // A v1 token (sts.windows.net-style issuer: no /v2.0, trailing slash).
    let v1_iss = format!("{}/{ENTRA_TENANT}/", r.idp.base_url());
    let v1 = with(&delegated, json!({"iss": v1_iss, "ver": "1.0"}));
    r.refuses(&r.mint(&header, &v1), "token issuer is not accepted")
        .await;

    // Neither the delegated scope nor the app role.
    let no_scope = with(&delegated, json!({"scp": "User.Read"}));
    r.forbids(&r.mint(&header, &no_scope)).await;
    let other_role = with(&app, json!({"roles": ["Orders.Write.All"]}));
    r.forbids(&r.mint(&header, &other_role)).await;
    // scp wins when present: a user's app role does not stand in for it.
    let user_role = with(
        &delegated,
        json!({"scp": "User.Read", "roles": ["Orders.Read.All"]}),
    );
    r.forbids(&r.mint(&header, &user_role)).await;
}

#[tokio::test]
async fn entra_v1_tokens_pass_the_v1_recipe() {
    let r = Recipe::start("entra-v1", "entra-kid-v1").await;
    r.assert_issuer_path(&format!("/{ENTRA_TENANT}/"));
    // v1 headers carry x5t next to kid (same value).
    let header =
        json!({"typ": "JWT", "alg": "RS256", "x5t": "entra-kid-v1", "kid": "entra-kid-v1"});
    let (iat, exp) = times();
    let claims = json!({
        "aud": format!("api://{ENTRA_API}"),
        "iss": r.iss,
        "iat": iat, "nbf": iat, "exp": exp,
        "acr": "1", "aio": "AVQAq/8TAAAA", "amr": ["pwd"],
        "appid": ENTRA_CLIENT, "appidacr": "0",
        "family_name": "Example", "given_name": "Alice", "ipaddr": "192.0.2.10",
        "name": "Alice Example", "oid": ENTRA_USER_OID, "rh": "0.AQkAI_CurjQroU2bqovIydakkA.",
        "scp": "Orders.Read", "sub": "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA",
        "tid": ENTRA_TENANT, "unique_name": "alice@contoso.example",
        "upn": "alice@contoso.example", "uti": "fqiBqXLPj0eQa82S-IYFAA", "ver": "1.0",
    });
    r.accepts(
        &r.mint(&header, &claims),
        &[
            ("x-auth-subject", Some(ENTRA_USER_OID)),
            ("x-auth-client-id", Some(ENTRA_CLIENT)),
            ("x-auth-scope", Some("Orders.Read")),
        ],
    )
    .await;
    // v1 `aud` may also be the client ID.
    let guid = with(&claims, json!({"aud": ENTRA_API}));
    r.accepts(&r.mint(&header, &guid), &[]).await;
    let wrong = with(&claims, json!({"aud": "https://graph.microsoft.com"}));
    r.refuses(&r.mint(&header, &wrong), "token audience is not accepted")
        .await;
    let no_scope = with(&claims, json!({"scp": "User.Read"}));
    r.forbids(&r.mint(&header, &no_scope)).await;
}
