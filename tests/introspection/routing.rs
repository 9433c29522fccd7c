//! Which tokens are introspected and by which issuer, per route; the
//! introspection metrics; the endpoint's scheme rule.

use super::*;

#[tokio::test]
async fn optional_route_never_downgrades_an_opaque_token_it_cannot_accept() {
    let s = Setup::start("timeout_ms = 200").await;
    let anonymous =
        s.gw.send(&Client::h1(), request("GET", "/optional/x"))
            .await;
    assert_forwarded(&anonymous, "no token");
    assert_eq!(s.upstream.hits(), 1);

    let inactive = opaque("optional-inactive");
    let reply = s.call("/optional/x", &inactive).await;
    assert_invalid_token(&reply, "inactive token on an optional route");
    assert_eq!(s.idp.introspect_hits(), 1);

    let unchecked = opaque("optional-unchecked");
    s.idp.set_introspection(&unchecked, active(json!({})));
    s.idp.set_introspect_failure(IntrospectFailure::Status500);
    let reply = s.call("/optional/x", &unchecked).await;
    assert_unavailable(&reply, "endpoint failing on an optional route");
    assert_eq!(s.idp.introspect_hits(), 2);
    assert_eq!(s.upstream.hits(), 1, "neither was forwarded anonymously");
}

#[tokio::test]
async fn introspection_calls_are_counted_per_issuer_and_result() {
    let idp = TestIdp::start().await;
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .admin()
        .issuer(introspection_issuer("metered", &idp, "", ""))
        .upstream("echo", &upstream.url())
        .route(Route::new("/api/**", "echo"))
        .start()
        .await;
    let good = opaque("metered-good");
    idp.set_introspection(&good, json!({"active": true}));
    assert_forwarded(&call(gw.addr(), "/api/x", &good).await, "active");
    assert_forwarded(&call(gw.addr(), "/api/x", &good).await, "cached");
    assert_invalid_token(
        &call(gw.addr(), "/api/x", &opaque("metered-bad")).await,
        "inactive",
    );
    idp.set_introspect_failure(IntrospectFailure::Status500);
    assert_unavailable(
        &call(gw.addr(), "/api/x", &opaque("metered-x")).await,
        "500",
    );
    assert_eq!(idp.introspect_hits(), 3);
    assert_eq!(upstream.hits(), 2);

    let page = Client::h1()
        .fetch(gw.admin_addr(), request("GET", "/metrics"))
        .await;
    assert_eq!(page.status, 200);
    let page = String::from_utf8(page.body.to_vec()).expect("UTF-8 metrics");
    let series: Vec<(&str, f64)> = page
        .lines()
        .filter(|l| l.starts_with("tokengate_introspection_requests_total{"))
        .filter(|l| l.contains("issuer=\"metered\""))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name, value.parse().ok()?))
        })
        .collect();
    let total: f64 = series.iter().map(|(_, v)| v).sum();
    assert_eq!(
        total, 3.0,
        "one count per call, none per cache hit: {series:?}"
    );
    assert!(
        series.len() >= 3,
        "active, inactive and the failure are distinct results: {series:?}"
    );
}

#[tokio::test]
async fn jwt_shaped_tokens_are_never_introspected() {
    let s = Setup::start("").await;
    let key = Key::es256("k1");
    let tokens = [
        ("signed JWT", key.token(&claims(&iss("corp"), AUD))),
        ("three segments", "a.b.c".to_string()),
        ("two segments", "abc.def".to_string()),
        ("one dot", "opaque.looking-token".to_string()),
    ];
    for (what, token) in &tokens {
        // Were any of them introspected, the endpoint would vouch for it.
        s.idp.set_introspection(token, active(json!({})));
        let reply = s.call("/read/x", token).await;
        assert_invalid_token(&reply, what);
    }
    assert_eq!(s.idp.introspect_hits(), 0);
    assert_eq!(s.upstream.hits(), 0);
}

#[tokio::test]
async fn oversized_opaque_token_is_refused_without_a_call() {
    let s = Setup::start_with("max_token_bytes = 64", "").await;
    let fits = "a".repeat(64);
    let long = "a".repeat(65);
    for token in [&fits, &long] {
        s.idp.set_introspection(token, active(json!({})));
    }
    assert_invalid_token(&s.call("/read/x", &long).await, "65 bytes");
    assert_eq!(s.idp.introspect_hits(), 0);
    assert_forwarded(&s.call("/read/x", &fits).await, "64 bytes");
    assert_eq!(s.idp.introspect_hits(), 1);
    assert_eq!(s.upstream.hits(), 1);
}

#[tokio::test]
async fn opaque_tokens_go_to_the_first_route_issuer_with_introspection() {
    let a = TestIdp::start().await;
    let b = TestIdp::start().await;
    let key = Key::es256("c-1");
    let c = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .admin()
        .issuer(introspection_issuer("a", &a, "", ""))
        .issuer(introspection_issuer("b", &b, "", ""))
        .issuer(issuer_table("c", &c, ""))
        .upstream("echo", &upstream.url())
        .route(Route::new("/ba/**", "echo").issuers(&["b", "a"]))
        .route(Route::new("/ab/**", "echo").issuers(&["a", "b"]))
        .route(Route::new("/ca/**", "echo").issuers(&["c", "a"]))
        .route(Route::new("/c/**", "echo").issuers(&["c"]))
        .start()
        .await;
    wait_ready(&gw).await;
    let jwks_hits = c.jwks_hits();

    // Both endpoints vouch for the token, each with its own subject.
    let token = opaque("shared");
    a.set_introspection(&token, json!({"active": true, "sub": "from-a"}));
    b.set_introspection(&token, json!({"active": true, "sub": "from-b"}));
    let subject = |u: &Upstream| u.last().header("x-auth-subject").map(String::from);

    assert_forwarded(&call(gw.addr(), "/ba/x", &token).await, "issuers b, a");
    assert_eq!((a.introspect_hits(), b.introspect_hits()), (0, 1));
    assert_eq!(subject(&upstream).as_deref(), Some("from-b"));

    assert_forwarded(&call(gw.addr(), "/ab/x", &token).await, "issuers a, b");
    assert_eq!((a.introspect_hits(), b.introspect_hits()), (1, 1));
    assert_eq!(subject(&upstream).as_deref(), Some("from-a"));

    let other = opaque("other");
    a.set_introspection(&other, json!({"active": true, "sub": "from-a"}));
    assert_forwarded(&call(gw.addr(), "/ca/x", &other).await, "issuers c, a");
    assert_eq!((a.introspect_hits(), b.introspect_hits()), (2, 1));
    assert_eq!(subject(&upstream).as_deref(), Some("from-a"));
    assert_eq!(upstream.hits(), 3);

    // No route issuer can introspect: refused without asking anybody.
    let reply = call(gw.addr(), "/c/x", &token).await;
    assert_invalid_token(&reply, "route without introspection");
    assert_eq!((a.introspect_hits(), b.introspect_hits()), (2, 1));
    assert_eq!(c.jwks_hits(), jwks_hits, "no key-set fetch either");
    assert_eq!(c.introspect_hits(), 0);
    assert_eq!(upstream.hits(), 3);
}

#[tokio::test]
async fn cached_active_token_is_checked_against_each_routes_scopes() {
    let s = Setup::start("").await;
    let token = opaque("reader");
    s.idp
        .set_introspection(&token, active(json!({"scope": "read"})));
    assert_forwarded(&s.call("/read/x", &token).await, "read route");
    assert_eq!(s.idp.introspect_hits(), 1);

    let reply = s.call("/admin/x", &token).await;
    let body = reply.gateway_error(403);
    assert_eq!(body["error"], "insufficient_scope", "{body}");
    let challenge = reply.header("www-authenticate").expect("challenge");
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.ends_with("scope=\"admin\""),
        "{challenge}"
    );
    assert_eq!(s.idp.introspect_hits(), 1, "the cached answer was used");
    assert_eq!(s.upstream.hits(), 1);

    assert_forwarded(&s.call("/read/x", &token).await, "read route again");
    assert_eq!(s.idp.introspect_hits(), 1);
    assert_eq!(s.upstream.hits(), 2);
}

#[test]
fn introspection_endpoint_must_be_https_except_on_loopback() {
    let config = |endpoint: &str| {
        let text = format!(
            "[upstreams.echo]\nurl = \"http://127.0.0.1:1\"\n\n\
             [issuers.corp]\nissuer = \"https://corp.idp.test/\"\naudiences = [\"{AUD}\"]\n\n\
             [issuers.corp.introspection]\nendpoint = \"{endpoint}\"\n\
             client_id = \"tokengate\"\nclient_secret = \"s\"\n"
        );
        Config::from_toml(&text, Path::new("."), Vec::new())
    };
    for allowed in [
        "http://127.0.0.1:9/introspect",
        "http://127.1.2.3:9/introspect",
        "http://localhost:9/introspect",
        "http://[::1]:9/introspect",
        "https://idp.example.com/introspect",
    ] {
        if let Err(e) = config(allowed) {
            panic!("{allowed} is allowed, got:\n{e}");
        }
    }
    for refused in [
        "http://example.com/introspect",
        "http://10.0.0.1/introspect",
        "ftp://127.0.0.1/introspect",
    ] {
        let Err(errors) = config(refused) else {
            panic!("{refused} must be refused");
        };
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.key == "issuers.corp.introspection.endpoint"),
            "{refused}: {errors}"
        );
    }
}
