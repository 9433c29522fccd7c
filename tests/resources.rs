//! Protected-resource metadata (RFC 9728) through real sockets: the
//! document at the derived well-known URL, served before routing and
//! without a token; `resource_metadata` in the 401 and 403 challenges of a
//! route with a resource (and nowhere else); and the audience binding of
//! such a route (RFC 8707): the token's `aud` must hold the identifier.

mod common;

use common::assert::{assert_refused, assert_status, parse_challenge, DEFAULT_REALM};
use common::idp::{issuer_table, wait_ready, TestIdp};
use common::mint::{claims, with, Key, AUD};
use common::{get_with, request, Client, Gateway, GatewayConfig, Reply, Route, Upstream};
use serde_json::{json, Value};
use tokengate::config::Config;

const API: &str = "https://api.example.com";
const API_METADATA: &str = "https://api.example.com/.well-known/oauth-protected-resource";
const MCP: &str = "https://mcp.example.com/mcp";
const MCP_METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

const RESOURCES: &str = "[resources.api]\nresource = \"https://api.example.com\"\n\
    resource_name = \"Orders API\"\n\
    [resources.mcp]\nresource = \"https://mcp.example.com/mcp\"\n\
    scopes_supported = [\"tools\"]\n";

struct Setup {
    idp: TestIdp,
    key: Key,
    upstream: Upstream,
    gw: Gateway,
}

impl Setup {
    async fn start() -> Setup {
        let key = Key::eddsa("k1");
        let idp = TestIdp::with_keys(&[&key]).await;
        let upstream = Upstream::echo().await;
        let gw = GatewayConfig::new()
            .admin()
            .issuer(issuer_table("corp", &idp, ""))
            .upstream("echo", &upstream.url())
            .raw(RESOURCES)
            .route(
                Route::new("/orders/**", "echo")
                    .scopes(&["orders:read"])
                    .with("resource = \"api\""),
            )
            .route(Route::new("/mcp/**", "echo").with("resource = \"mcp\""))
            .route(Route::new("/**", "echo"))
            .start()
            .await;
        wait_ready(&gw).await;
        Setup {
            idp,
            key,
            upstream,
            gw,
        }
    }

    fn token(&self, changes: Value) -> String {
        self.key
            .token(&with(&claims(&self.idp.issuer(), AUD), changes))
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.gw.send(&Client::h1(), get_with(path, headers)).await
    }
}

fn json_body(reply: &Reply) -> Value {
    assert_eq!(reply.header("content-type"), Some("application/json"));
    serde_json::from_slice(&reply.body).expect("a JSON document")
}

#[tokio::test]
async fn metadata_is_served_at_the_derived_urls_before_routing_without_a_token() {
    let s = Setup::start().await;
    let idp_issuer = s.idp.issuer();
    let reply = s
        .get(
            "/.well-known/oauth-protected-resource",
            &[("host", "api.example.com")],
        )
        .await;
    assert_status(&reply, 200, "api metadata");
    assert_eq!(
        json_body(&reply),
        json!({
            "resource": API,
            "authorization_servers": [idp_issuer],
            "scopes_supported": ["orders:read"],
            "bearer_methods_supported": ["header"],
            "dpop_bound_access_tokens_required": false,
            "tls_client_certificate_bound_access_tokens": false,
            "resource_name": "Orders API",
        })
    );
    let reply = s
        .get("/.well-known/oauth-protected-resource/mcp", &[])
        .await;
    assert_status(&reply, 200, "mcp metadata");
    let doc = json_body(&reply);
    assert_eq!(doc["resource"], MCP);
    assert_eq!(doc["scopes_supported"], json!(["tools"]));
    assert!(doc.get("resource_name").is_none());

    let head =
        s.gw.send(
            &Client::h1(),
            request("HEAD", "/.well-known/oauth-protected-resource/mcp"),
        )
        .await;
    assert_status(&head, 200, "HEAD");
    assert!(head.body.is_empty());
    assert_eq!(s.upstream.hits(), 0, "metadata never reaches the upstream");
}

#[tokio::test]
async fn other_methods_are_refused_and_other_well_known_paths_are_routed() {
    let s = Setup::start().await;
    let post =
        s.gw.send(
            &Client::h1(),
            request("POST", "/.well-known/oauth-protected-resource/mcp"),
        )
        .await;
    assert_status(&post, 405, "POST");
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let unknown = s
        .get("/.well-known/oauth-protected-resource/other", &[])
        .await;
    // Not a configured resource: routed like any path (here `/**`, which
    // requires a token).
    assert_status(&unknown, 401, "a resource that is not configured");
    assert_eq!(s.upstream.hits(), 0);
    let token = s.token(json!({}));
    let routed = s
        .get(
            "/.well-known/oauth-protected-resource/other",
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_status(&routed, 200, "forwarded by the catch-all route");
    assert_eq!(s.upstream.hits(), 1);
}

#[tokio::test]
async fn challenges_of_a_route_with_a_resource_name_its_metadata_url() {
    let s = Setup::start().await;
    let challenge =
        |reply: &Reply| parse_challenge(reply.header("www-authenticate").expect("a challenge"));
    let missing = s.get("/orders/1", &[]).await;
    assert_status(&missing, 401, "no token");
    let c = challenge(&missing);
    assert_eq!(
        c.get("resource_metadata").map(String::as_str),
        Some(API_METADATA)
    );
    assert_eq!(c.get("realm").map(String::as_str), Some(DEFAULT_REALM));

    let bad = s
        .get("/mcp/x", &[("authorization", "Bearer not.a.token")])
        .await;
    assert_status(&bad, 401, "invalid token");
    assert_eq!(
        challenge(&bad).get("resource_metadata").map(String::as_str),
        Some(MCP_METADATA)
    );

    let no_scope = s.token(json!({"aud": [AUD, API]}));
    let auth = format!("Bearer {no_scope}");
    let forbidden = s.get("/orders/1", &[("authorization", &auth)]).await;
    assert_status(&forbidden, 403, "insufficient scope");
    let c = challenge(&forbidden);
    assert_eq!(
        c.get("error").map(String::as_str),
        Some("insufficient_scope")
    );
    assert_eq!(
        c.get("resource_metadata").map(String::as_str),
        Some(API_METADATA)
    );

    // A 400 and a route without a resource carry no resource_metadata.
    let malformed = s.get("/orders/1", &[("authorization", "Bearer a b")]).await;
    assert_status(&malformed, 400, "malformed credential");
    assert!(!challenge(&malformed).contains_key("resource_metadata"));
    let elsewhere = s.get("/other", &[]).await;
    assert_refused(&elsewhere, DEFAULT_REALM, 401, None, None);
    assert_eq!(s.upstream.hits(), 0);
}

#[tokio::test]
async fn a_route_with_a_resource_needs_the_identifier_in_aud() {
    let setup = Setup::start().await;
    let s = &setup;
    let scoped = |aud: Value| s.token(json!({"aud": aud, "scope": "orders:read"}));
    let call = |token: String| {
        let auth = format!("Bearer {token}");
        async move { s.get("/orders/1", &[("authorization", &auth)]).await }
    };
    let without = call(scoped(json!(AUD))).await;
    assert_status(&without, 401, "no resource in aud");
    let c = parse_challenge(without.header("www-authenticate").expect("a challenge"));
    assert_eq!(c["error"], "invalid_token");
    assert_eq!(
        c["error_description"],
        "token audience does not include the resource"
    );
    assert_eq!(c["resource_metadata"], API_METADATA);
    let other = call(scoped(json!([AUD, MCP]))).await;
    assert_status(&other, 401, "another resource's identifier");
    assert_eq!(s.upstream.hits(), 0);

    assert_status(
        &call(scoped(json!([AUD, API]))).await,
        200,
        "bound to the resource",
    );
    // The issuer's audiences rule still holds: the identifier alone is not enough.
    assert_status(&call(scoped(json!([API]))).await, 401, "identifier only");
    // A route without a resource does not ask for it.
    let plain = s.token(json!({}));
    let auth = format!("Bearer {plain}");
    assert_status(
        &s.get("/other", &[("authorization", &auth)]).await,
        200,
        "no resource",
    );
    assert_eq!(s.upstream.hits(), 2);
}

#[test]
fn resource_configuration_errors_name_the_key() {
    let base = "[upstreams.a]\nurl = \"http://127.0.0.1:1\"\n";
    let cases = [
        (
            "[resources.api]\nresource = \"http://api.example.com\"\n",
            "resources.api.resource",
        ),
        (
            "[resources.api]\nresource = \"https://api.example.com/#x\"\n",
            "resources.api.resource",
        ),
        (
            "[resources.api]\nresource = \"https://api.example.com\"\nresource_documentation = \"docs\"\n",
            "resources.api.resource_documentation",
        ),
        (
            "[resources.a]\nresource = \"https://api.example.com\"\n[resources.b]\nresource = \"https://api.example.com/\"\n",
            "resources.b.resource",
        ),
        (
            "[[routes]]\npath = \"/x\"\nupstream = \"a\"\nauth = \"none\"\nresource = \"nope\"\n",
            "routes[0].resource",
        ),
        // serde names the table of a missing required key, as everywhere.
        ("[resources.api]\nresource_name = \"x\"\n", "resources.api"),
    ];
    for (toml, key) in cases {
        let text = format!("{base}{toml}");
        let errors =
            Config::from_toml(&text, std::path::Path::new("."), Vec::new()).expect_err(toml);
        assert!(
            errors.0.iter().any(|e| e.key == key),
            "{toml}: expected an error at {key}, got {errors}"
        );
    }
}
