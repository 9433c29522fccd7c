//! The identity-provider recipes of `docs/providers.md`, tested as written.
//!
//! Each recipe's TOML block is read from the document by its
//! `<!-- recipe:NAME -->` marker, so the document and the tests cannot
//! drift apart. The host of `issuer` and the whole `jwks_uri` are replaced by
//! a local [`TestIdp`] (which answers discovery under the issuer's path, as
//! the providers do); everything else is used verbatim. Tokens are minted
//! with each provider's header and claims layout as its public
//! documentation describes them, and every recipe is checked to:
//! - accept the provider's token (200) and forward the identity headers its
//!   `[forward]` table names;
//! - refuse a wrong audience with `401 invalid_token`;
//! - answer `403 insufficient_scope` when the route's scope is missing.
//!
//! Token shapes the gateway cannot accept (Cognito access tokens without
//! `aud`, Keycloak's `typ: JWT` under profile `rfc9068`, Okta org-server
//! tokens, opaque Google and Auth0 tokens) are pinned as refusals, with the
//! reason the document gives.

mod common;

use common::idp::{wait_ready, TestIdp};
use common::mint::{now, Key};
use common::{empty, Client, Gateway, Reply, Upstream};
use http::Request;
use serde_json::{json, Value};
use std::path::Path;
use tokengate::config::Config;

/// The document under test.
const DOC: &str = include_str!("../docs/providers.md");

/// Every recipe in the document, in document order; each has a test below.
const RECIPES: &[&str] = &[
    "auth0",
    "auth0-rfc9068",
    "okta",
    "entra",
    "entra-v1",
    "keycloak",
    "google",
    "google-legacy-issuer",
    "cognito",
    "oidc-provider",
];

const MARKER: &str = "<!-- recipe:";

/// The TOML block that follows `<!-- recipe:NAME -->`.
fn recipe_block(name: &str) -> &'static str {
    let marker = format!("{MARKER}{name} -->\n```toml\n");
    let start = DOC
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/providers.md has no recipe {name:?}"))
        + marker.len();
    let len = DOC[start..]
        .find("```")
        .unwrap_or_else(|| panic!("recipe {name:?} is not closed"));
    &DOC[start..start + len]
}

/// The names of every recipe marker in the document, in order.
fn recipe_names() -> Vec<&'static str> {
    DOC.match_indices(MARKER)
        .map(|(at, _)| {
            let rest = &DOC[at + MARKER.len()..];
            &rest[..rest.find(" -->").expect("marker is closed")]
        })
        .collect()
}

/// The string value of `key = "..."` on this line, if the line sets `key`.
fn string_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(key)?.trim_start().strip_prefix('=')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    rest.find('"').map(|end| &rest[..end])
}

/// `issuer` moved onto the test IdP: same path (and trailing slash), local
/// origin. An issuer that is not a URL stays as it is.
fn local_issuer(issuer: &str, idp: &TestIdp) -> String {
    match issuer.split_once("://") {
        Some((_, rest)) => {
            let path = rest.find('/').map_or("", |at| &rest[at..]);
            format!("{}{path}", idp.base_url())
        }
        None => issuer.to_string(),
    }
}

/// A recipe's gateway: the block as written, issuer and key set local.
struct Recipe {
    idp: TestIdp,
    upstream: Upstream,
    gw: Gateway,
    /// The issuer tokens must carry (the recipe's, on the test IdP).
    iss: String,
    key: Key,
}

impl Recipe {
    async fn start(name: &str, kid: &str) -> Recipe {
        Recipe::start_with(name, kid, |block| block.to_string(), "").await
    }

    /// As [`Recipe::start`], with the block changed by `edit` (for the
    /// pinned "what if" cases) and `extra` TOML appended (test-only routes).
    async fn start_with(
        name: &str,
        kid: &str,
        edit: impl Fn(&str) -> String,
        extra: &str,
    ) -> Recipe {
        let key = Key::rs256(kid);
        let idp = TestIdp::with_keys(&[&key]).await;
        let upstream = Upstream::echo().await;
        let mut block = String::new();
        let mut iss = None;
        for line in edit(recipe_block(name)).lines() {
            if let Some(issuer) = string_value(line, "issuer") {
                let local = local_issuer(issuer, &idp);
                idp.set_issuer(&local);
                block.push_str(&format!("issuer = \"{local}\"\n"));
                iss = Some(local);
            } else if string_value(line, "jwks_uri").is_some() {
                block.push_str(&format!("jwks_uri = \"{}\"\n", idp.jwks_uri()));
            } else {
                block.push_str(line);
                block.push('\n');
            }
        }
        let iss = iss.unwrap_or_else(|| panic!("recipe {name:?} has no issuer"));
        let toml = format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n\n{block}\n{extra}\n[upstreams.api]\nurl = \"{}\"\n",
            upstream.url()
        );
        let gw = Gateway::start(&toml).await;
        wait_ready(&gw).await;
        Recipe {
            idp,
            upstream,
            gw,
            iss,
            key,
        }
    }

    /// The recipe's issuer has the provider's documented shape: this path
    /// (trailing slash included) after the origin.
    fn assert_issuer_path(&self, path: &str) {
        assert_eq!(self.iss, format!("{}{path}", self.idp.base_url()));
    }

    /// A token with exactly this header and these claims, signed by the
    /// recipe's key.
    fn mint(&self, header: &Value, claims: &Value) -> String {
        let header = header.as_object().expect("header object").clone();
        self.key.jwt(claims).header_object(header).encode()
    }

    async fn call(&self, path: &str, token: &str) -> Reply {
        let req = Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(empty())
            .expect("request");
        self.gw.send(&Client::h1(), req).await
    }

    /// 200, and the upstream saw exactly these identity headers (`None`:
    /// absent).
    async fn accepts(&self, token: &str, headers: &[(&str, Option<&str>)]) {
        let reply = self.call("/orders/1", token).await;
        assert_eq!(
            reply.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&reply.body)
        );
        let seen = self.upstream.last();
        for (name, value) in headers {
            assert_eq!(seen.header(name), *value, "header {name}");
        }
    }

    /// `status` with this `error` and description; nothing forwarded.
    async fn refuses_at(&self, path: &str, token: &str, status: u16, error: &str) -> Value {
        let before = self.upstream.hits();
        let reply = self.call(path, token).await;
        let body = reply.gateway_error(status);
        assert_eq!(body["error"], error, "{body}");
        let challenge = reply.header("www-authenticate").expect("challenge");
        assert!(
            challenge.contains(&format!("error=\"{error}\"")),
            "{challenge}"
        );
        assert_eq!(
            self.upstream.hits(),
            before,
            "a refusal reached the upstream"
        );
        body
    }

    /// 401 `invalid_token` with this description.
    async fn refuses(&self, token: &str, description: &str) {
        let body = self
            .refuses_at("/orders/1", token, 401, "invalid_token")
            .await;
        assert_eq!(body["error_description"], description, "{body}");
    }

    /// 401 `invalid_token`, whatever the reason.
    async fn refuses_token(&self, token: &str) {
        self.refuses_at("/orders/1", token, 401, "invalid_token")
            .await;
    }

    /// 403 `insufficient_scope` on `path`.
    async fn forbids_at(&self, path: &str, token: &str) {
        self.refuses_at(path, token, 403, "insufficient_scope")
            .await;
    }

    async fn forbids(&self, token: &str) {
        self.forbids_at("/orders/1", token).await;
    }
}

/// `claims` with each member of `changes` set, or removed when `null`.
fn with(claims: &Value, changes: Value) -> Value {
    common::mint::with(claims, changes)
}

/// `iat`, `nbf` and `exp` of a token issued now for an hour.
fn times() -> (i64, i64) {
    let t = now();
    (t, t + 3600)
}

// ---------------------------------------------------------------------------
// The document itself

#[test]
fn every_recipe_in_the_document_is_tested() {
    assert_eq!(recipe_names(), RECIPES);
}

#[test]
fn every_recipe_loads_as_written() {
    for name in RECIPES {
        let toml = format!(
            "{}\n[upstreams.api]\nurl = \"http://127.0.0.1:8081\"\n",
            recipe_block(name)
        );
        if let Err(e) = Config::from_toml(&toml, Path::new("."), Vec::new()) {
            panic!("recipe {name} does not load:\n{e}\n---\n{toml}");
        }
    }
}

// ---------------------------------------------------------------------------
// Auth0

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

// ---------------------------------------------------------------------------
// Okta

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

// ---------------------------------------------------------------------------
// Microsoft Entra ID

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

// ---------------------------------------------------------------------------
// Keycloak

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

// ---------------------------------------------------------------------------
// Google

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

// ---------------------------------------------------------------------------
// AWS Cognito

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

// ---------------------------------------------------------------------------
// oidc-provider

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
