//! Encoding helpers, the gateway configurations the flows run against, and
//! the authorization code flow with authorize.mjs as the browser.

use super::*;

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One query parameter of an absolute URL, percent-decoded.
pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JWT's header (0) or claims (1) as JSON.
pub(crate) fn jwt_part(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).expect("JWT segment");
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url segment");
    serde_json::from_slice(&bytes).expect("JSON segment")
}

/// The JSON body of a 200 answer.
pub(crate) fn ok_json(reply: &Reply, what: &str) -> Value {
    assert_eq!(reply.status, 200, "{what}: {}", text(reply));
    reply.json()
}

/// An OAuth error answer (RFC 6749 5.2): the status and the `error` code.
pub(crate) fn assert_oauth_error(reply: &Reply, status: u16, error: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", text(reply));
    assert_eq!(reply.json()["error"], error, "{what}: {}", text(reply));
}

/// The upstream and route table every test uses, after its issuer:
/// reading orders needs `orders:read`, writing them `orders:write`.
pub(crate) async fn start_gateway(upstream: &Upstream, issuer: Issuer) -> Gateway {
    let gw = GatewayConfig::new()
        .admin()
        .issuer(issuer)
        .upstream("echo", &upstream.url())
        .forward(
            "claims = { sub = \"x-auth-subject\", client_id = \"x-auth-client-id\", \
             scope = \"x-auth-scope\" }",
        )
        .route(
            Route::new("/orders/**", "echo")
                .with("methods = [\"GET\"]")
                .scopes(&["orders:read"]),
        )
        .route(
            Route::new("/orders/**", "echo")
                .with("methods = [\"POST\"]")
                .scopes(&["orders:write"]),
        )
        .start()
        .await;
    wait_ready(&gw).await;
    gw
}

/// A gateway trusting the provider's JWTs for `https://api.test`, with
/// `key_source` (and any other issuer keys) given by the test.
pub(crate) async fn jwt_gateway(op: &Provider, upstream: &Upstream, key_source: &str) -> Gateway {
    start_gateway(upstream, jwt_issuer(op, key_source)).await
}

/// The provider as an issuer of RFC 9068 JWTs for `https://api.test`.
pub(crate) fn jwt_issuer(op: &Provider, key_source: &str) -> Issuer {
    Issuer::new("op", &op.issuer)
        .audiences(&[API])
        .with(key_source)
        .with("algorithms = [\"RS256\"]\nprofile = \"rfc9068\"")
}

/// A gateway introspecting the provider's opaque tokens for
/// `https://opaque.test` (no key source: opaque tokens only).
pub(crate) async fn opaque_gateway(
    op: &Provider,
    upstream: &Upstream,
    (client_id, client_secret): (&str, &str),
    auth_method: &str,
    cache_ttl_s: u64,
) -> Gateway {
    let issuer = opaque_issuer(op, (client_id, client_secret), auth_method, cache_ttl_s);
    start_gateway(upstream, issuer).await
}

/// The provider as an issuer of opaque tokens for `https://opaque.test`,
/// introspected as `client_id`.
pub(crate) fn opaque_issuer(
    op: &Provider,
    (client_id, client_secret): (&str, &str),
    auth_method: &str,
    cache_ttl_s: u64,
) -> Issuer {
    Issuer::new("op", &op.issuer)
        .audiences(&[OPAQUE])
        .introspection(&format!(
            "endpoint = \"{}\"\nclient_id = \"{client_id}\"\n\
             client_secret = \"{client_secret}\"\nauth_method = \"{auth_method}\"\n\
             cache_ttl_s = {cache_ttl_s}\nnegative_cache_ttl_s = 1\ntimeout_ms = 2000",
            op.url("/token/introspection")
        ))
}

pub(crate) async fn call(gw: &Gateway, method: &str, path: &str, token: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    gw.send(&Client::h1(), req.body(empty()).expect("request"))
        .await
}

/// The identity headers the upstream received for the last request.
pub(crate) fn assert_upstream_identity(
    upstream: &Upstream,
    subject: Option<&str>,
    client_id: &str,
    scope: &str,
) {
    let seen = upstream.last();
    assert_eq!(seen.header("x-auth-subject"), subject, "x-auth-subject");
    assert_eq!(seen.header("x-auth-client-id"), Some(client_id));
    assert_eq!(seen.header("x-auth-scope"), Some(scope));
}

/// Runs `node authorize.mjs URL REDIRECT_URI` (login and consent through
/// devInteractions) and returns the Location it was redirected to.
pub(crate) async fn user_agent(op: &Provider, authorization_url: String) -> String {
    let redirect_uri = op.redirect_uri.clone();
    let out = tokio::task::spawn_blocking(move || {
        run_bounded(
            Command::new("node")
                .arg("authorize.mjs")
                .arg(&authorization_url)
                .arg(&redirect_uri)
                .arg("alice")
                .current_dir(e2e_dir()),
            HELPER_LIMIT,
        )
    })
    .await
    .expect("authorize.mjs thread")
    .unwrap_or_else(|e| panic!("authorize.mjs: {e}"));
    assert!(out.success, "authorize.mjs failed:\n{}", out.stderr);
    let printed: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("authorize.mjs output ({e}): {}", out.stdout));
    let location = printed["location"].as_str().expect("location").to_string();
    assert!(location.starts_with(&op.redirect_uri), "{location}");
    location
}

/// The authorization request (RFC 6749 4.1.1, RFC 7636 4.3, RFC 8707 2.1).
pub(crate) fn authorization_url(
    op: &Provider,
    state: &str,
    code_challenge: Option<&str>,
) -> String {
    let mut params = vec![
        ("client_id", SPA),
        ("response_type", "code"),
        ("redirect_uri", op.redirect_uri.as_str()),
        ("scope", "openid offline_access orders:read"),
        ("resource", API),
        ("state", state),
        // offline_access (a refresh token) needs an explicit consent prompt.
        ("prompt", "consent"),
    ];
    if let Some(challenge) = code_challenge {
        params.push(("code_challenge", challenge));
        params.push(("code_challenge_method", "S256"));
    }
    op.url(&format!("/auth?{}", form_encode(&params)))
}

pub(crate) fn random_b64url() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The whole authorization-code flow with PKCE; returns the token response
/// (an access token for `https://api.test` and a refresh token).
pub(crate) async fn authorization_code_flow(op: &Provider) -> Value {
    let verifier = random_b64url();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random_b64url();

    let location = user_agent(op, authorization_url(op, &state, Some(&challenge))).await;
    assert_eq!(query_param(&location, "error"), None, "{location}");
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some(state.as_str())
    );
    // RFC 9207: the authorization response names its issuer.
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(op.issuer.as_str())
    );
    let code = query_param(&location, "code").expect("code in the redirect");

    let exchange = |code_verifier: String| {
        let code = code.clone();
        async move {
            op.post_form(
                "/token",
                None,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", SPA),
                    ("code", &code),
                    ("redirect_uri", &op.redirect_uri),
                    ("code_verifier", &code_verifier),
                    ("resource", API),
                ],
            )
            .await
        }
    };
    // A wrong verifier is refused before the code is consumed.
    assert_oauth_error(
        &exchange(random_b64url()).await,
        400,
        "invalid_grant",
        "code exchange with the wrong code_verifier",
    );
    ok_json(&exchange(verifier).await, "code exchange")
}

/// The refresh-token grant (RFC 6749 6) for the public client.
pub(crate) async fn refresh_grant(op: &Provider, refresh_token: &str) -> Reply {
    op.post_form(
        "/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", SPA),
            ("refresh_token", refresh_token),
            ("resource", API),
        ],
    )
    .await
}
