//! The RFC 7662 request the gateway sends, and what counts as active.

use super::*;

#[tokio::test]
async fn request_shape_client_secret_basic_form_encodes_credentials_and_keeps_the_token_out_of_the_url(
) {
    let s = Setup::start("auth_method = \"client_secret_basic\"").await;
    let token = opaque("basic");
    s.idp.set_introspection(&token, active(json!({})));

    let reply = s.call("/api/x", &token).await;
    assert_forwarded(&reply, "active token");
    assert_eq!(s.upstream.hits(), 1);
    assert_eq!(s.idp.introspect_hits(), 1);

    let call = s.idp.last_introspect_call();
    assert_eq!(call.method, Method::POST);
    assert_eq!(call.uri.path(), "/introspect");
    assert_eq!(call.uri.query(), None, "nothing in the URL query");
    assert_eq!(
        call.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(call.header("accept"), Some("application/json"));
    assert_eq!(
        sorted(call.form()),
        pairs(&[("token", &token), ("token_type_hint", "access_token")]),
        "exactly the token and the hint; client credentials are not in the body"
    );
    let raw = String::from_utf8(call.body.to_vec()).expect("UTF-8 body");
    assert!(
        !raw.contains(&token),
        "`+` and `/` of the token are escaped: {raw:?}"
    );

    // RFC 6749 section 2.3.1: base64(form(id) ":" form(secret)).
    let basic = call
        .header("authorization")
        .expect("Authorization")
        .strip_prefix("Basic ")
        .expect("Basic scheme");
    let decoded = STANDARD.decode(basic).expect("base64 credentials");
    let decoded = String::from_utf8(decoded).expect("UTF-8 credentials");
    assert_eq!(
        decoded.matches(':').count(),
        1,
        "the `:` inside id and secret are escaped: {decoded:?}"
    );
    let (id, secret) = decoded.split_once(':').expect("id:secret");
    for part in [id, secret] {
        assert!(
            !part.contains([' ', '@', '/']),
            "not form-encoded: {part:?}"
        );
    }
    assert_eq!(form_unescape(id), CLIENT_ID);
    assert_eq!(form_unescape(secret), CLIENT_SECRET);
}

#[tokio::test]
async fn request_shape_client_secret_post_puts_credentials_in_the_body_only() {
    let s = Setup::start("auth_method = \"client_secret_post\"").await;
    let token = opaque("post");
    s.idp.set_introspection(&token, active(json!({})));

    let reply = s.call("/api/x", &token).await;
    assert_forwarded(&reply, "active token");
    assert_eq!(s.upstream.hits(), 1);
    assert_eq!(s.idp.introspect_hits(), 1);

    let call = s.idp.last_introspect_call();
    assert_eq!(call.method, Method::POST);
    assert_eq!(call.uri.query(), None);
    assert_eq!(
        call.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(call.header("accept"), Some("application/json"));
    assert!(
        call.header("authorization").is_none(),
        "client_secret_post sends no Authorization header"
    );
    assert_eq!(
        sorted(call.form()),
        pairs(&[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("token", &token),
            ("token_type_hint", "access_token"),
        ])
    );
}

#[tokio::test]
async fn active_answer_forwards_with_identity_headers_from_the_answer() {
    let s = Setup::start("").await;
    let full = opaque("full");
    s.idp.set_introspection(
        &full,
        active(json!({"sub": "bob", "client_id": "app-7", "scope": "read audit"})),
    );
    let reply = s.call("/read/x", &full).await;
    assert_forwarded(&reply, "full answer");
    let seen = s.upstream.last();
    assert_eq!(seen.header("x-auth-subject"), Some("bob"));
    assert_eq!(seen.header("x-auth-client-id"), Some("app-7"));
    assert_eq!(seen.header("x-auth-scope"), Some("read audit"));

    // RFC 7662 requires only `active`; absent claims are not forwarded, and
    // the spoofed values never are.
    let minimal = opaque("minimal");
    s.idp
        .set_introspection(&minimal, json!({"active": true, "scope": "read"}));
    let reply = s.call("/read/x", &minimal).await;
    assert_forwarded(&reply, "minimal answer");
    let seen = s.upstream.last();
    assert!(!seen.has("x-auth-subject"), "no sub, no header");
    assert!(!seen.has("x-auth-client-id"), "no client_id, no header");
    assert_eq!(seen.header("x-auth-scope"), Some("read"));

    assert_eq!(s.upstream.hits(), 2);
    assert_eq!(s.idp.introspect_hits(), 2);
}

#[tokio::test]
async fn only_the_boolean_true_is_active() {
    let s = Setup::start("").await;
    let cases = [
        ("false", active(json!({"active": false}))),
        ("string \"true\"", active(json!({"active": "true"}))),
        ("number 1", active(json!({"active": 1}))),
        ("object", active(json!({"active": {"value": true}}))),
        ("missing", active(json!({"active": null}))),
    ];
    for (n, (what, answer)) in cases.iter().enumerate() {
        let token = opaque(&format!("inactive{n}"));
        s.idp.set_introspection(&token, answer.clone());
        let reply = s.call("/read/x", &token).await;
        assert_invalid_token(&reply, what);
        assert_eq!(s.idp.introspect_hits(), n + 1, "{what}");
    }
    // A token the endpoint does not know: its default `{"active": false}`.
    let reply = s.call("/read/x", &opaque("unknown")).await;
    assert_invalid_token(&reply, "unknown token");
    assert_eq!(s.idp.introspect_hits(), cases.len() + 1);
    assert_eq!(s.upstream.hits(), 0, "no inactive token was forwarded");
}

#[tokio::test]
async fn active_answers_with_refused_members_are_invalid_token() {
    let s = Setup::start("").await;
    let refused = [
        ("exp in the past", json!({"exp": now() - 10})),
        ("foreign iss", json!({"iss": "https://evil.test/"})),
        (
            "aud string without ours",
            json!({"aud": "https://other.test"}),
        ),
        (
            "aud array without ours",
            json!({"aud": ["https://other.test", "https://api.test/"]}),
        ),
        ("token_type DPoP", json!({"token_type": "DPoP"})),
        (
            "cnf",
            json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
        ),
    ];
    for (n, (what, changes)) in refused.iter().enumerate() {
        let token = opaque(&format!("refused{n}"));
        s.idp.set_introspection(&token, active(changes.clone()));
        let reply = s.call("/read/x", &token).await;
        assert_invalid_token(&reply, what);
        assert_eq!(s.idp.introspect_hits(), n + 1, "{what}");
    }
    assert_eq!(s.upstream.hits(), 0, "no refused token was forwarded");

    // The same members with acceptable values pass.
    let accepted = [
        (
            "aud array with ours",
            json!({"aud": ["https://other.test", AUD]}),
        ),
        (
            "no iss, aud, exp or token_type",
            json!({"iss": null, "aud": null, "exp": null, "token_type": null}),
        ),
    ];
    for (n, (what, changes)) in accepted.iter().enumerate() {
        let token = opaque(&format!("accepted{n}"));
        s.idp.set_introspection(&token, active(changes.clone()));
        assert_forwarded(&s.call("/read/x", &token).await, what);
    }
    assert_eq!(s.upstream.hits(), accepted.len());
    assert_eq!(s.idp.introspect_hits(), refused.len() + accepted.len());
}

/// RFC 7662 section 2.2: `nbf` in an active answer is honoured with the
/// issuer's `leeway_s` (here 5 s), as a JWT's `nbf` is.
#[tokio::test]
async fn active_answer_not_yet_valid_beyond_leeway_is_invalid_token() {
    let s = Setup::start_with_issuer("leeway_s = 5", "").await;
    let cases = [
        ("nbf an hour ahead", now() + 3_600, false),
        ("nbf a minute ahead", now() + 60, false),
        ("nbf within leeway", now() + 2, true),
        ("nbf now", now(), true),
        ("nbf in the past", now() - 60, true),
    ];
    for (n, (what, nbf, valid)) in cases.iter().enumerate() {
        let token = opaque(&format!("nbf{n}"));
        s.idp
            .set_introspection(&token, active(json!({ "nbf": nbf })));
        let reply = s.call("/read/x", &token).await;
        if *valid {
            assert_forwarded(&reply, what);
        } else {
            assert_invalid_token(&reply, what);
            let challenge = reply.header("www-authenticate").unwrap_or_default();
            assert!(challenge.contains("not yet valid"), "{what}: {challenge}");
        }
    }
    let forwarded = cases.iter().filter(|c| c.2).count();
    assert_eq!(s.upstream.hits(), forwarded, "no early token was forwarded");
    assert_eq!(s.idp.introspect_hits(), cases.len());
}
