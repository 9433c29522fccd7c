//! The scenario: requests carrying every kind of secret, each with the
//! access-log event it must produce, and the gateway configuration they
//! run against.

use super::*;

/// One request of the scenario and what its access-log event must say.
pub(crate) struct Case {
    pub(crate) what: &'static str,
    pub(crate) request: Request<Body>,
    pub(crate) status: u16,
    pub(crate) outcome: &'static str,
    pub(crate) route: &'static str,
    pub(crate) subject: &'static str,
}

/// Everything the scenario sends, plus every string that must never be
/// logged. Tokens are minted per call, so each protocol gets its own.
pub(crate) struct Scenario {
    pub(crate) cases: Vec<Case>,
    pub(crate) secrets: Vec<(String, String)>,
}

pub(crate) fn scenario(key: &Key, idp: &TestIdp, tag: &str) -> Scenario {
    let iss = "https://logs-idp.test/";
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut secret = |what: &str, value: String| -> String {
        secrets.push((what.to_string(), value.clone()));
        value
    };
    let jwt = |sub: &str| key.token(&with(&claims(iss, AUD), json!({ "sub": sub })));
    let good = secret("valid JWT", jwt("logs-alice"));
    let good2 = secret("valid JWT (proxy case)", jwt("logs-alice"));
    let good3 = secret("valid JWT (query case)", jwt("logs-alice"));
    let good4 = secret("valid JWT (open route)", jwt("logs-alice"));
    let good5 = secret("valid JWT (scope refused)", jwt("logs-dave"));
    let forged = secret(
        "forged JWT",
        key.jwt(&claims(iss, AUD))
            .signed_by(&Key::es256(key.kid().unwrap_or("k")))
            .encode(),
    );
    let expired = secret(
        "expired JWT",
        key.token(&with(
            &claims(iss, AUD),
            json!({"iat": now() - 7200, "exp": now() - 3600}),
        )),
    );
    let header = good.split('.').next().unwrap_or_default().to_string();
    secrets.push(("JWT header segment (any token prefix)".to_string(), header));
    for (what, token) in [
        ("valid JWT", &good),
        ("forged JWT", &forged),
        ("expired JWT", &expired),
    ] {
        let signature = token.rsplit('.').next().unwrap_or_default().to_string();
        secrets.push((format!("{what} signature"), signature));
    }
    let mut secret = |what: &str, value: String| -> String {
        secrets.push((what.to_string(), value.clone()));
        value
    };
    let opaque_active = secret("active opaque token", format!("op-active-{tag}-Tq4"));
    let opaque_inactive = secret("inactive opaque token", format!("op-inactive-{tag}-Lm2"));
    let opaque_post = secret("opaque token (POST client)", format!("op-post-{tag}-Hc7"));
    let opaque_down = secret("opaque token (down issuer)", format!("op-down-{tag}-Rr3"));
    let query_token = secret("query token", format!("query-token-{tag}-Yu6"));
    idp.set_introspection(
        &opaque_active,
        json!({"active": true, "sub": "logs-bob", "scope": "read", "exp": now() + 300}),
    );
    idp.set_introspection(
        &opaque_post,
        json!({"active": true, "client_id": "logs-carol", "scope": "read", "exp": now() + 300}),
    );
    let user_basic = secret(
        "user Basic credentials",
        STANDARD.encode(format!("logs-user:{USER_PASSWORD}")),
    );
    let proxy_basic = secret(
        "Proxy-Authorization credentials",
        STANDARD.encode(format!("proxy-user:{PROXY_PASSWORD}")),
    );
    let malformed = secret("malformed bearer", format!("malformed-{tag}-Jk8"));
    let good6 = secret("valid JWT (upstream credentials)", jwt("logs-erin"));
    let upstream_token = secret(
        "the gateway's upstream token",
        format!("gw-upstream-{tag}-Pz5"),
    );
    idp.set_token_answer(TokenAnswer::Json(
        200,
        json!({"access_token": upstream_token, "token_type": "Bearer", "expires_in": 300}),
    ));
    let bearer = |t: &str| format!("Bearer {t}");
    let proxy = format!("Basic {proxy_basic}");

    let cases = vec![
        Case {
            what: "valid JWT",
            request: get_with("/api/a", &[("authorization", &bearer(&good))]),
            status: 200,
            outcome: "forwarded",
            route: "/api/**",
            subject: "logs-alice",
        },
        Case {
            what: "forged JWT",
            request: get_with("/api/b", &[("authorization", &bearer(&forged))]),
            status: 401,
            outcome: "invalid_token",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "expired JWT",
            request: get_with("/api/c", &[("authorization", &bearer(&expired))]),
            status: 401,
            outcome: "invalid_token",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "active opaque token (Basic client auth)",
            request: get_with("/api/d", &[("authorization", &bearer(&opaque_active))]),
            status: 200,
            outcome: "forwarded",
            route: "/api/**",
            subject: "logs-bob",
        },
        Case {
            what: "inactive opaque token",
            request: get_with("/api/e", &[("authorization", &bearer(&opaque_inactive))]),
            status: 401,
            outcome: "invalid_token",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "active opaque token (POST client auth)",
            request: get_with("/post/f", &[("authorization", &bearer(&opaque_post))]),
            status: 200,
            outcome: "forwarded",
            route: "/post/**",
            subject: "logs-carol",
        },
        Case {
            what: "opaque token, introspection endpoint down",
            request: get_with("/down/g", &[("authorization", &bearer(&opaque_down))]),
            status: 503,
            outcome: "unavailable",
            route: "/down/**",
            subject: "-",
        },
        Case {
            what: "token only in ?access_token=",
            request: get_with(&format!("/api/h?access_token={query_token}&x=1"), &[]),
            status: 401,
            outcome: "missing_token",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "token in the query and the header",
            request: get_with(
                &format!("/api/i?access_token={query_token}"),
                &[("authorization", &bearer(&good3))],
            ),
            status: 400,
            outcome: "invalid_request",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "Basic credentials",
            request: get_with(
                "/api/j",
                &[("authorization", &format!("Basic {user_basic}"))],
            ),
            status: 401,
            outcome: "missing_token",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "malformed bearer credential",
            request: get_with(
                "/api/k",
                &[("authorization", &format!("Bearer {malformed} trailing"))],
            ),
            status: 400,
            outcome: "invalid_request",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "valid JWT with Proxy-Authorization",
            request: get_with(
                "/api/l",
                &[
                    ("authorization", &bearer(&good2)),
                    ("proxy-authorization", &proxy),
                ],
            ),
            status: 200,
            outcome: "forwarded",
            route: "/api/**",
            subject: "logs-alice",
        },
        Case {
            what: "valid JWT lacking the route's scope",
            request: get_with("/scoped/n", &[("authorization", &bearer(&good5))]),
            status: 403,
            outcome: "insufficient_scope",
            route: "/scoped/**",
            subject: "logs-dave",
        },
        Case {
            what: "Proxy-Authorization and a bearer token on an open route",
            request: get_with(
                "/open/m",
                &[
                    ("authorization", &bearer(&good4)),
                    ("proxy-authorization", &proxy),
                ],
            ),
            status: 200,
            outcome: "forwarded",
            route: "/open/**",
            subject: "-",
        },
        Case {
            what: "upstream credentials: the gateway's own token",
            request: get_with("/billing/o", &[("authorization", &bearer(&good6))]),
            status: 200,
            outcome: "forwarded",
            route: "/billing/**",
            subject: "logs-erin",
        },
        Case {
            what: "upstream credentials: the token endpoint refuses (invalid_client)",
            request: get_with("/refused/p", &[("authorization", &bearer(&good6))]),
            status: 502,
            outcome: "upstream_error",
            route: "/refused/**",
            subject: "logs-erin",
        },
        Case {
            what: "upstream credentials: the token endpoint is down",
            request: get_with("/unreachable/q", &[("authorization", &bearer(&good6))]),
            status: 503,
            outcome: "unavailable",
            route: "/unreachable/**",
            subject: "logs-erin",
        },
    ];
    secrets.extend([
        (
            "upstream client secret".to_string(),
            UPSTREAM_SECRET.to_string(),
        ),
        (
            "upstream client secret (POST)".to_string(),
            UPSTREAM_POST_SECRET.to_string(),
        ),
        (
            "the gateway's Basic credentials for the upstream".to_string(),
            STANDARD.encode(format!("{UPSTREAM_CLIENT}:{UPSTREAM_SECRET}")),
        ),
        ("Basic client secret".to_string(), BASIC_SECRET.to_string()),
        ("POST client secret".to_string(), POST_SECRET.to_string()),
        ("down client secret".to_string(), DOWN_SECRET.to_string()),
        (
            "gateway's Basic credentials".to_string(),
            STANDARD.encode(format!("{BASIC_CLIENT}:{BASIC_SECRET}")),
        ),
        ("user password".to_string(), USER_PASSWORD.to_string()),
        ("proxy password".to_string(), PROXY_PASSWORD.to_string()),
    ]);
    Scenario { cases, secrets }
}

pub(crate) fn config(idp: &TestIdp, upstream: &Upstream, closed: u16, tls: Option<&Pki>) -> String {
    let tls = tls.map_or_else(String::new, |pki| {
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            pki.dir().join("server.pem").display(),
            pki.dir().join("server.key").display()
        )
    });
    let endpoint = idp.introspection_endpoint();
    let down = format!("http://127.0.0.1:{closed}/introspect");
    GatewayConfig::new()
        .server(&format!("listen = \"127.0.0.1:0\"\n{tls}"))
        .issuer(Issuer::new("corp", "https://logs-idp.test/").jwks_file("jwks.json"))
        .issuer(
            Issuer::new("opaque", "https://logs-opaque.test/").introspect_at(
                &endpoint,
                BASIC_CLIENT,
                BASIC_SECRET,
            ),
        )
        .issuer(
            Issuer::new("post", "https://logs-post.test/")
                .introspect_at(&endpoint, POST_CLIENT, POST_SECRET)
                .introspection("auth_method = \"client_secret_post\""),
        )
        .issuer(
            Issuer::new("down", "https://logs-down.test/")
                .introspect_at(&down, BASIC_CLIENT, DOWN_SECRET)
                .introspection("timeout_ms = 2000"),
        )
        .upstream("echo", &upstream.url())
        .upstream_with(
            "billing",
            &upstream.url(),
            &oauth_table("billing", &idp.token_endpoint(), UPSTREAM_SECRET, ""),
        )
        .upstream_with(
            "billing_refused",
            &upstream.url(),
            &oauth_table(
                "billing_refused",
                &format!("{}/token-error/invalid_client", idp.base_url()),
                UPSTREAM_SECRET,
                "",
            ),
        )
        .upstream_with(
            "billing_down",
            &upstream.url(),
            &oauth_table(
                "billing_down",
                &format!("http://127.0.0.1:{closed}/token"),
                UPSTREAM_POST_SECRET,
                "auth_method = \"client_secret_post\"",
            ),
        )
        .route(Route::new("/api/**", "echo").issuers(&["corp", "opaque"]))
        .route(Route::new("/billing/**", "billing").issuers(&["corp"]))
        .route(Route::new("/refused/**", "billing_refused").issuers(&["corp"]))
        .route(Route::new("/unreachable/**", "billing_down").issuers(&["corp"]))
        .route(Route::new("/post/**", "echo").issuers(&["post"]))
        .route(Route::new("/down/**", "echo").issuers(&["down"]))
        .route(Route::open("/open/**", "echo"))
        .route(
            Route::new("/scoped/**", "echo")
                .scopes(&["logs:admin"])
                .issuers(&["corp"]),
        )
        .render()
}

/// `[upstreams.NAME.oauth]`: client credentials for the gateway's client
/// at `endpoint`, with `secret` and `lines`.
fn oauth_table(name: &str, endpoint: &str, secret: &str, lines: &str) -> String {
    format!(
        "[upstreams.{name}.oauth]\ngrant = \"client_credentials\"\ntoken_endpoint = \"{endpoint}\"\n\
         client_id = \"{UPSTREAM_CLIENT}\"\nclient_secret = \"{secret}\"\n{lines}"
    )
}
