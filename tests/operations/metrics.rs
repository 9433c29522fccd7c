//! The `/metrics` page: every series, and each outcome counted exactly.

use super::*;

const M_ROUTES: [&str; 6] = [
    "/m/ok/**",
    "/m/admin/**",
    "/m/down/**",
    "/m/get-only",
    "/m/broken/**",
    "-",
];

fn requests_total(s: &Scrape, route: &str, outcome: &str) -> f64 {
    s.value(
        "tokengate_requests_total",
        &[("route", route), ("outcome", outcome)],
    )
}

#[tokio::test]
async fn metrics_page_has_every_series_and_counts_each_outcome_exactly() {
    let key = Key::es256("metrics-1");
    let stranger = Key::es256("metrics-1");
    let idp = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let closed = closed_port().await;
    let endpoint = idp.introspection_endpoint();
    let down = format!("http://127.0.0.1:{closed}/introspect");
    let toml = GatewayConfig::new()
        .admin()
        .issuer(Issuer::new("metrics_jwt", &idp.issuer()).jwks_uri(&idp.jwks_uri()))
        .issuer(
            Issuer::new("metrics_opaque", "https://metrics-opaque.test/").introspect_at(
                &endpoint,
                "gateway",
                "metrics-secret",
            ),
        )
        .issuer(
            Issuer::new("metrics_down", "https://metrics-down.test/")
                .introspect_at(&down, "gateway", "metrics-secret")
                .introspection("timeout_ms = 2000"),
        )
        .upstream("metrics_echo", &upstream.url())
        .upstream_with(
            "metrics_broken",
            &format!("http://127.0.0.1:{closed}"),
            "connect_timeout_ms = 2000",
        )
        .route(
            Route::new("/m/ok/**", "metrics_echo")
                .scopes(&["read"])
                .issuers(&["metrics_jwt", "metrics_opaque"]),
        )
        .route(
            Route::new("/m/admin/**", "metrics_echo")
                .scopes(&["admin"])
                .issuers(&["metrics_jwt"]),
        )
        .route(Route::new("/m/down/**", "metrics_echo").issuers(&["metrics_down"]))
        .route(Route::open("/m/get-only", "metrics_echo").with("methods = [\"GET\"]"))
        .route(Route::open("/m/broken/**", "metrics_broken"))
        .render();
    let gw = FileGateway::start(&toml).await;
    eventually("issuers ready", || gw.not_ready().is_empty()).await;

    let jwt = key.token(&claims(&idp.issuer(), AUD));
    let forged = key
        .jwt(&claims(&idp.issuer(), AUD))
        .signed_by(&stranger)
        .encode();
    let active = "metrics-opaque-active";
    idp.set_introspection(
        active,
        json!({"active": true, "sub": "op-user", "scope": "read", "exp": now() + 300}),
    );

    let before = gw.scrape().await;
    // (route label, outcome, status, request, h2)
    let calls: Vec<(&str, &str, u16, Request<Body>, bool)> = vec![
        (
            "/m/ok/**",
            "forwarded",
            200,
            authorized("GET", "/m/ok/a", &jwt),
            false,
        ),
        (
            "/m/ok/**",
            "forwarded",
            200,
            authorized("GET", "/m/ok/b", &jwt),
            true,
        ),
        (
            "/m/ok/**",
            "forwarded",
            200,
            authorized("GET", "/m/ok/c", active),
            false,
        ),
        (
            "/m/ok/**",
            "forwarded",
            200,
            authorized("GET", "/m/ok/d", active),
            true,
        ),
        (
            "/m/ok/**",
            "missing_token",
            401,
            request("GET", "/m/ok/e"),
            false,
        ),
        (
            "/m/ok/**",
            "invalid_request",
            400,
            authorized("GET", "/m/ok/f", "a b"),
            false,
        ),
        (
            "/m/ok/**",
            "invalid_token",
            401,
            authorized("GET", "/m/ok/g", &forged),
            false,
        ),
        (
            "/m/ok/**",
            "invalid_token",
            401,
            authorized("GET", "/m/ok/h", "metrics-opaque-inactive"),
            false,
        ),
        (
            "/m/admin/**",
            "insufficient_scope",
            403,
            authorized("GET", "/m/admin/x", &jwt),
            false,
        ),
        (
            "/m/down/**",
            "unavailable",
            503,
            authorized("GET", "/m/down/x", "metrics-opaque-down"),
            false,
        ),
        ("-", "not_found", 404, request("GET", "/m-nowhere"), false),
        (
            "-",
            "method_not_allowed",
            405,
            request("POST", "/m/get-only"),
            true,
        ),
        (
            "/m/get-only",
            "forwarded",
            200,
            request("GET", "/m/get-only"),
            false,
        ),
        (
            "/m/broken/**",
            "upstream_error",
            502,
            request("GET", "/m/broken/x"),
            false,
        ),
    ];
    let mut expected: HashMap<(&str, &str), f64> = HashMap::new();
    let mut per_route: HashMap<&str, f64> = HashMap::new();
    for (route, outcome, status, req, h2) in calls {
        let what = format!("{} {}", req.method(), req.uri());
        let client = if h2 { Client::h2() } else { Client::h1() };
        let reply = gw.send(&client, req).await;
        assert_eq!(
            reply.status.as_u16(),
            status,
            "{what}: {:?}",
            String::from_utf8_lossy(&reply.body)
        );
        *expected.entry((route, outcome)).or_default() += 1.0;
        *per_route.entry(route).or_default() += 1.0;
    }
    // A connection held open while scraping.
    let mut held = RawConn::connect(gw.addr()).await;
    held.write(b"GET /m/get-only HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(held.response().await.status, 200);
    *expected.entry(("/m/get-only", "forwarded")).or_default() += 1.0;
    *per_route.entry("/m/get-only").or_default() += 1.0;
    // Makes the reload counter exist in this process.
    gw.reload().await.expect("reload of an unchanged file");

    let after = gw.scrape().await;
    for route in M_ROUTES {
        for outcome in OUTCOMES {
            let want = expected.get(&(route, outcome)).copied().unwrap_or(0.0);
            let got =
                requests_total(&after, route, outcome) - requests_total(&before, route, outcome);
            assert_eq!(
                got, want,
                "tokengate_requests_total{{route={route:?},outcome={outcome:?}}}"
            );
        }
    }
    for outcome in OUTCOMES {
        assert!(
            after.has(
                "tokengate_requests_total",
                &[("route", "/m/ok/**"), ("outcome", outcome)]
            ),
            "series for outcome {outcome}"
        );
    }
    assert_eq!(after.kind("tokengate_requests_total"), Some("counter"));

    // Histograms: buckets, sum and count, one observation per request.
    for (family, label, value, want) in [
        (
            "tokengate_request_duration_seconds",
            "route",
            "/m/ok/**",
            per_route["/m/ok/**"],
        ),
        (
            "tokengate_request_duration_seconds",
            "route",
            "-",
            per_route["-"],
        ),
        (
            "tokengate_upstream_duration_seconds",
            "upstream",
            "metrics_echo",
            expected[&("/m/ok/**", "forwarded")] + expected[&("/m/get-only", "forwarded")],
        ),
        (
            "tokengate_upstream_duration_seconds",
            "upstream",
            "metrics_broken",
            1.0,
        ),
    ] {
        assert_eq!(after.kind(family), Some("histogram"), "{family}");
        let labels = [(label, value)];
        let count = format!("{family}_count");
        let got = after.value(&count, &labels) - before.value(&count, &labels);
        assert_eq!(got, want, "{count}{{{label}={value:?}}}");
        let inf = [(label, value), ("le", "+Inf")];
        let bucket = format!("{family}_bucket");
        assert_eq!(
            after.value(&bucket, &inf),
            after.value(&count, &labels),
            "{bucket} le=+Inf equals the count"
        );
        assert!(
            after.find(&bucket, &labels).len() > 2,
            "{bucket}: several buckets"
        );
        assert!(after.has(&format!("{family}_sum"), &labels), "{family}_sum");
    }

    // Key sets.
    assert_eq!(
        after.value(
            "tokengate_jwks_fetches_total",
            &[("issuer", "metrics_jwt"), ("result", "ok")]
        ),
        idp.jwks_hits() as f64
    );
    let age = after.find("tokengate_jwks_age_seconds", &[("issuer", "metrics_jwt")]);
    assert_eq!(age.len(), 1, "one age gauge for the issuer");
    assert!((0.0..60.0).contains(&age[0].value), "age {}", age[0].value);
    assert_eq!(after.kind("tokengate_jwks_age_seconds"), Some("gauge"));

    // Introspection: one call per cache miss, by result.
    let intro = |s: &Scrape, issuer: &str, result: &str| {
        s.value(
            "tokengate_introspection_requests_total",
            &[("issuer", issuer), ("result", result)],
        )
    };
    assert_eq!(intro(&after, "metrics_opaque", "active"), 1.0);
    assert_eq!(intro(&after, "metrics_opaque", "inactive"), 1.0);
    assert_eq!(intro(&after, "metrics_down", "connect_error"), 1.0);
    assert_eq!(
        after.value(
            "tokengate_introspection_requests_total",
            &[("issuer", "metrics_down")]
        ),
        1.0
    );

    // Caches.
    let cache = |s: &Scrape, name: &str, cache: &str| s.value(name, &[("cache", cache)]);
    for (name, kind, at_least) in [
        ("tokengate_cache_hits_total", "identity", 2.0),
        ("tokengate_cache_misses_total", "identity", 2.0),
    ] {
        let got = cache(&after, name, kind) - cache(&before, name, kind);
        assert!(got >= at_least, "{name}{{cache={kind:?}}} moved by {got}");
    }
    // No other test of this binary introspects: these are exact.
    let hits = "tokengate_cache_hits_total";
    let misses = "tokengate_cache_misses_total";
    assert_eq!(
        cache(&after, hits, "introspection") - cache(&before, hits, "introspection"),
        1.0
    );
    assert_eq!(
        cache(&after, misses, "introspection") - cache(&before, misses, "introspection"),
        3.0
    );

    // Connections and reloads.
    let open = after.find("tokengate_open_connections", &[]);
    assert_eq!(open.len(), 1);
    assert!(
        open[0].value >= 1.0,
        "the held connection is open: {}",
        open[0].value
    );
    assert_eq!(after.kind("tokengate_open_connections"), Some("gauge"));
    assert!(reloads(&after, "ok") - reloads(&before, "ok") >= 1.0);
    assert!(after.has("tokengate_config_reloads_total", &[("result", "ok")]));
    drop(held);
}
