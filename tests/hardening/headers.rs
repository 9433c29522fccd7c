//! Request headers: client address headers, h2 cookies, access tokens in
//! the query.

use super::*;

#[tokio::test]
async fn client_address_headers_are_replaced_unless_the_peer_is_trusted() {
    let upstream = Upstream::echo().await;
    let spoof = [
        ("x-real-ip", "198.51.100.1"),
        ("true-client-ip", "198.51.100.2"),
        ("x-client-ip", "198.51.100.3"),
        ("x-cluster-client-ip", "198.51.100.4"),
        ("forwarded-for", "198.51.100.5"),
    ];
    let spoofed = |xff: Option<&str>| {
        let mut req = Request::get("/api/x");
        for (k, v) in spoof {
            req = req.header(k, v);
        }
        if let Some(xff) = xff {
            req = req.header("x-forwarded-for", xff);
        }
        req.body(common::empty()).expect("request")
    };

    let gw = Gateway::start(&api_config(&upstream.url(), "")).await;
    let reply = gw.send(&Client::h1(), spoofed(None)).await;
    assert_eq!(reply.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    for (name, _) in &spoof[1..] {
        assert!(
            !seen.has(name),
            "{name} from an untrusted peer reached the upstream"
        );
    }

    let trusted = GatewayConfig::open_api(&upstream.url())
        .server("trusted_proxies = [\"127.0.0.0/8\"]")
        .render();
    let gw = Gateway::start(&trusted).await;
    let reply = gw
        .send(&Client::h1(), spoofed(Some("203.0.113.9, 127.0.0.5")))
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("true-client-ip"), Some("198.51.100.2"));
    assert_eq!(
        seen.header("x-real-ip"),
        Some("198.51.100.1"),
        "a trusted proxy's X-Real-IP is kept"
    );

    // Without an X-Real-IP of its own, the nearest untrusted address of the
    // chain is the client.
    let req = get_with("/api/x", &[("x-forwarded-for", "203.0.113.9, 127.0.0.5")]);
    gw.send(&Client::h1(), req).await;
    assert_eq!(upstream.last().header("x-real-ip"), Some("203.0.113.9"));
}

#[tokio::test]
async fn h2_cookie_fields_are_joined_for_an_http1_upstream() {
    let upstream = Upstream::echo().await;
    let gw = Gateway::start(&api_config(&upstream.url(), "")).await;
    let req = get_with(
        "/api/x",
        &[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")],
    );
    let reply = gw.send(&Client::h2(), req).await;
    assert_eq!(reply.status, 200);
    let seen = upstream.last();
    let cookies: Vec<_> = seen.headers.get_all("cookie").iter().collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert_eq!(seen.header("cookie"), Some("a=1; b=2; c=3"));
}

#[tokio::test]
async fn access_token_query_parameters_are_removed_with_strip_authorization() {
    let upstream = Upstream::echo().await;
    let stripping = api_config(&upstream.url(), "[forward]\nstrip_authorization = true\n");
    let gw = Gateway::start(&stripping).await;
    for (target, forwarded) in [
        ("/api/x?a=1&access_token=leaked&b=2", "/api/x?a=1&b=2"),
        ("/api/x?access_token=leaked", "/api/x"),
        ("/api/x?access%5Ftoken=leaked&c", "/api/x?c"),
        ("/api/x?access_tokens=kept", "/api/x?access_tokens=kept"),
    ] {
        let reply = gw.get(target).await;
        assert_eq!(reply.status, 200, "{target}");
        assert_eq!(upstream.last().target(), forwarded, "{target}");
    }

    let keeping = Gateway::start(&api_config(&upstream.url(), "")).await;
    keeping.get("/api/x?access_token=t&b=2").await;
    assert_eq!(upstream.last().target(), "/api/x?access_token=t&b=2");
}
