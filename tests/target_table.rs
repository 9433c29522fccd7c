//! The request-target table of behavior.md section 5, over the wire.
//!
//! Refusals are sent as raw bytes (a client library would normalise or
//! refuse them) to a gateway whose only route is a catch-all `/**`, so any
//! target that slipped through would reach the upstream. hyper's HTTP/1
//! parser refuses some byte sequences itself with a bare 400 before the
//! gateway sees them; that is still a 400 with nothing forwarded, and the
//! JSON body is only checked where the gateway answered.

mod common;

use common::assert::assert_bad_target;
use common::{get_with, raw, raw_get, request, Client, Gateway, GatewayConfig, Route, Upstream};

async fn catch_all() -> (Upstream, Gateway) {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .upstream("echo", &upstream.url())
        .route(Route::open("/**", "echo"))
        .start()
        .await;
    (upstream, gw)
}

async fn api_and_admin() -> (Upstream, Gateway) {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .upstream("echo", &upstream.url())
        .route(Route::open("/api/**", "echo"))
        .route(Route::open("/admin/**", "echo"))
        .start()
        .await;
    (upstream, gw)
}

#[tokio::test]
async fn target_refusal_table_is_400_and_reaches_nothing() {
    let (upstream, gw) = catch_all().await;
    let targets: &[&[u8]] = &[
        b"/a/./b",
        b"/a/../b",
        b"/a/..",
        b"/a/.",
        b"/..",
        b"/a/%2e%2e/b",
        b"/a/%2E%2E/b",
        b"/a/.%2E/b",
        b"/a/%2e./b",
        b"/a/%2e/b",
        b"//a",
        b"/a//b",
        b"/a/b//",
        b"/a%2Fb",
        b"/a%2fb",
        b"/a%5Cb",
        b"/a%5cb",
        b"/a%00b",
        b"/a\\b",
        b"/a;b",
        b"/a;jsessionid=1/b",
        b"/a\x01b",
        b"/a\x1fb",
        b"/a\x7fb",
        b"/a%0ab",
        b"/a%0Db",
        b"/a%7fb",
        b"/caf\xc3\xa9",
        b"/a\xffb",
        b"/a%zz",
        b"/a%",
        b"/a%2",
        b"/a%g1",
        b"a/b",
    ];
    let mut by_gateway = Vec::new();
    for target in targets {
        let what = String::from_utf8_lossy(target).into_owned();
        let reply = raw_get(gw.addr(), target).await;
        assert_bad_target(&reply, &what);
        if reply.gateway_json().is_some() {
            by_gateway.push(what.clone());
        }
        assert_eq!(upstream.hits(), 0, "{what:?} reached the upstream");
    }
    // The gateway's own check must carry the cases hyper lets through.
    for expected in [
        "/a/../b",
        "/a/%2e%2e/b",
        "//a",
        "/a%2Fb",
        "/a%00b",
        "/a\\b",
        "/a;b",
        "/a%zz",
        "/a%0ab",
        "/caf\u{e9}",
    ] {
        assert!(
            by_gateway.iter().any(|t| t == expected),
            "{expected} not refused by the gateway: {by_gateway:?}"
        );
    }
}

#[tokio::test]
async fn target_non_origin_forms_are_400() {
    let (upstream, gw) = catch_all().await;
    let addr = gw.addr();
    let cases = [
        ("OPTIONS *", format!("OPTIONS * HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")),
        (
            "CONNECT authority-form",
            format!("CONNECT {addr} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        ),
        (
            "absolute-form, other authority",
            format!("GET http://evil.example/a HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        ),
        (
            "absolute-form, other port",
            format!("GET http://127.0.0.1:1/a HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        ),
        (
            "absolute-form, no Host",
            format!("GET http://{addr}/a HTTP/1.1\r\nConnection: close\r\n\r\n"),
        ),
        (
            "two Host headers",
            format!("GET /a HTTP/1.1\r\nHost: {addr}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"),
        ),
    ];
    for (what, request) in cases {
        let reply = raw(addr, request.as_bytes()).await;
        assert_bad_target(&reply, what);
        assert_eq!(upstream.hits(), 0, "{what} reached the upstream");
    }
}

#[tokio::test]
async fn target_refusals_apply_to_h2_too() {
    let (upstream, gw) = catch_all().await;
    for path in [
        "/a/../b",
        "/a/./b",
        "//a",
        "/a//b",
        "/a%2Fb",
        "/a%5Cb",
        "/a%00b",
        "/a;b",
        "/a%zz",
        "/a/%2e%2e/b",
    ] {
        let reply = gw.send(&Client::h2(), request("GET", path)).await;
        assert_eq!(
            reply.gateway_error(400)["error"],
            "invalid_request",
            "{path}"
        );
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn target_fragment_is_refused_or_never_forwarded() {
    let (upstream, gw) = catch_all().await;
    let reply = raw_get(gw.addr(), b"/a#/../admin").await;
    match reply.status {
        400 => assert_eq!(upstream.hits(), 0),
        200 => assert_eq!(upstream.last().target(), "/a"),
        other => panic!("unexpected status {other}: {}", reply.head),
    }
}

#[tokio::test]
async fn target_encoded_unreserved_characters_are_decoded_before_matching_and_forwarding() {
    let (upstream, gw) = api_and_admin().await;
    for (sent, arrived) in [
        (&b"/%61pi/x"[..], "/api/x"),
        (b"/%61%70%69/x", "/api/x"),
        (b"/api/%7euser/a%2Db_%2E", "/api/~user/a-b_."),
        (b"/api/a%20b", "/api/a%20b"),
        (b"/api/x/", "/api/x/"),
    ] {
        let reply = raw_get(gw.addr(), sent).await;
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(sent));
        assert_eq!(upstream.last().target(), arrived);
    }
    // Other escapes are kept (hex case is not significant).
    assert_eq!(raw_get(gw.addr(), b"/api/caf%c3%a9").await.status, 200);
    assert!(upstream
        .last()
        .target()
        .eq_ignore_ascii_case("/api/caf%C3%A9"));
    // Decoding can't smuggle a different route: %2F stays refused.
    assert_bad_target(
        &raw_get(gw.addr(), b"/api%2F..%2Fadmin").await,
        "/api%2F..%2Fadmin",
    );
}

#[tokio::test]
async fn target_absolute_form_naming_the_host_is_accepted() {
    let (upstream, gw) = api_and_admin().await;
    let addr = gw.addr();
    let request = format!(
        "GET http://{addr}/api/x?q=1 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let reply = raw(addr, request.as_bytes()).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    let seen = upstream.last();
    assert_eq!(seen.target(), "/api/x?q=1", "forwarded in origin-form");
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(addr.to_string().as_str())
    );
}

#[tokio::test]
async fn target_matching_is_segment_aware_and_case_sensitive() {
    let (upstream, gw) = api_and_admin().await;
    for path in ["/admin", "/admin/", "/admin/x", "/api/x/y"] {
        assert_eq!(gw.get(path).await.status, 200, "{path}");
    }
    let forwarded = upstream.hits();
    for path in [
        "/admin-x",
        "/adminx",
        "/administrator/x",
        "/ADMIN/x",
        "/Admin",
        "/API/x",
        "/Api/x",
        "/apix",
    ] {
        let reply = gw.get(path).await;
        assert_eq!(reply.gateway_error(404)["error"], "not_found", "{path}");
    }
    assert_eq!(upstream.hits(), forwarded, "no 404 reached the upstream");
}

#[tokio::test]
async fn target_query_never_influences_matching_and_is_forwarded_unchanged() {
    let (upstream, gw) = api_and_admin().await;
    for path in ["/nope?next=/api/x", "/nope?/admin/x", "/x?%2Fapi"] {
        assert_eq!(gw.get(path).await.status, 404, "{path}");
    }
    assert_eq!(upstream.hits(), 0);
    // Path rules do not apply to the query: it passes byte for byte.
    for target in [
        &b"/api/x?a=../b&c=%2F//d;e"[..],
        b"/api/x?next=/admin/../x&e=%zz",
        b"/api/x?",
        b"/api/x?a=%00",
    ] {
        let reply = raw_get(gw.addr(), target).await;
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(target));
        assert_eq!(upstream.last().target().as_bytes(), target);
    }
}

#[tokio::test]
async fn target_host_routes_compare_the_host_without_port_and_case() {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .upstream("echo", &upstream.url())
        .route(Route::open("/v/**", "echo").host("api.example.com"))
        .start()
        .await;
    for host in [
        "api.example.com",
        "API.Example.COM:8443",
        "api.example.com:80",
    ] {
        let req = get_with("/v/x", &[("host", host)]);
        assert_eq!(gw.send(&Client::h1(), req).await.status, 200, "{host}");
        assert_eq!(upstream.last().header("x-forwarded-host"), Some(host));
    }
    // h2: the host is the :authority.
    let req = http::Request::get("http://API.example.com:9/v/x")
        .body(common::empty())
        .expect("request");
    assert_eq!(gw.send(&Client::h2(), req).await.status, 200);
    let forwarded = upstream.hits();
    for host in [
        "other.example.com",
        "api.example.com.evil",
        "xapi.example.com",
    ] {
        let req = get_with("/v/x", &[("host", host)]);
        assert_eq!(gw.send(&Client::h1(), req).await.status, 404, "{host}");
    }
    assert_eq!(
        gw.send(&Client::h1(), request("GET", "/v/x")).await.status,
        404,
        "Host is the gateway's address"
    );
    assert_eq!(upstream.hits(), forwarded);
}
