//! The token request on the wire (RFC 6749 sections 2.3.1 and 4.4.2) and
//! what the upstream receives instead of the caller's credential.

use super::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The form parameters of a token request, sorted by name.
fn params(call: &common::idp::IntrospectCall) -> Vec<(String, String)> {
    let mut form = call.form();
    form.sort();
    form
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn client_secret_basic_request_is_a_form_post_with_encoded_credentials() {
    let s = Setup::start(
        "client_credentials",
        "scope = \"billing:read billing:write\"\nresource = \"https://billing.test/api\"",
    )
    .await;
    let reply = s.call("/api/invoices/7", &s.caller("alice")).await;
    assert_forwarded(&reply, "with the gateway's token");
    assert_eq!(s.upstream_authorization().as_deref(), Some("Bearer tok-1"));

    let call = s.idp.last_token_call();
    assert_eq!(call.method, http::Method::POST);
    assert_eq!(call.uri, "/token", "nothing in the URL");
    assert_eq!(
        call.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(call.header("accept"), Some("application/json"));
    // RFC 6749 2.3.1: id and secret form-urlencoded, then Basic.
    let basic = call.header("authorization").expect("Basic credentials");
    let decoded = STANDARD
        .decode(basic.strip_prefix("Basic ").expect("Basic scheme"))
        .expect("base64");
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "gate+way:p%40ss%3Aw%2Frd-Upstream-Secret-77"
    );
    assert_eq!(
        params(&call),
        pairs(&[
            ("grant_type", "client_credentials"),
            ("resource", "https://billing.test/api"),
            ("scope", "billing:read billing:write"),
        ])
    );
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_as_form_fields_and_omits_empty_parameters() {
    let s = Setup::start(
        "client_credentials",
        "auth_method = \"client_secret_post\"\nscope = \"\"\nresource = \"\"",
    )
    .await;
    assert_forwarded(&s.call("/api/x", &s.caller("alice")).await, "post");
    let call = s.idp.last_token_call();
    assert_eq!(call.header("authorization"), None);
    assert_eq!(
        params(&call),
        pairs(&[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("grant_type", "client_credentials"),
        ])
    );
}

/// The caller's `Authorization`, any `DPoP` header and an `access_token`
/// query parameter never reach an upstream with its own token; an
/// upstream without one still gets the caller's token.
#[tokio::test]
async fn caller_credential_is_never_forwarded_to_an_upstream_with_its_own_token() {
    let s = Setup::start("client_credentials", "").await;
    let caller = s.caller("alice");
    let req = http::Request::get("/api/x?page=2")
        .header("authorization", format!("Bearer {caller}"))
        .header("dpop", "not-a-proof")
        .body(common::empty())
        .unwrap();
    let reply = s.gw.send(&common::Client::h1(), req).await;
    assert_forwarded(&reply, "with the gateway's token");
    let seen = s.upstream.last();
    let authorizations: Vec<_> = seen.headers.get_all("authorization").iter().collect();
    assert_eq!(authorizations, vec!["Bearer tok-1"]);
    assert!(!seen.has("dpop"));
    assert_eq!(seen.target(), "/api/x?page=2");
    assert!(
        !format!("{:?}", seen.headers).contains(&caller),
        "the caller's token reached the upstream"
    );

    // Without auth, an access_token query parameter is no credential
    // (behavior.md section 2), but it is still not forwarded.
    let reply = s.gw.get("/open/x?access_token=query-secret&page=3").await;
    assert_forwarded(&reply, "open route");
    assert_eq!(s.upstream.last().target(), "/open/x?page=3");
    assert_eq!(s.upstream_authorization().as_deref(), Some("Bearer tok-1"));

    let reply = s.call("/plain/x", &caller).await;
    assert_forwarded(&reply, "plain upstream");
    assert_eq!(
        s.upstream_authorization(),
        Some(format!("Bearer {caller}")),
        "an upstream without oauth is forwarded to as before"
    );
    assert_eq!(s.idp.token_hits(), 1);
}
