//! The revocation endpoints of the admin listener on one in-process
//! gateway without `[redis]` ("without `[redis]` the same API works for
//! the one instance"): 404 without `api_token`, 401 without the right
//! bearer, each 400 reason, the entry answered by `POST`, listed by `GET`,
//! removed by `DELETE`, and the refusal of the revoked token, cached
//! identity included.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::assert::text;
use crate::common::{test_clock, Upstream};
use crate::support::{assert_revoked, call, status, Admin, Keys, API_TOKEN};

/// A wall-clock instant, as `created_at` is.
fn wall_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// The members of a JSON object.
fn members(doc: &Value) -> BTreeSet<String> {
    doc.as_object()
        .unwrap_or_else(|| panic!("not an object: {doc}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The JSON error body of an admin refusal, with its headers.
fn assert_admin_error(reply: &crate::common::Reply, status: u16, error: &str, what: &str) -> Value {
    assert_eq!(reply.status, status, "{what}: {}", text(reply));
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}");
    let body = reply.json();
    assert_eq!(body["error"], error, "{what}: {body}");
    body
}

/// Every method and path of the API, with a body where it takes one.
const CALLS: [(&str, &str, &str); 4] = [
    ("POST", "/revocations", r#"{"jti":"x"}"#),
    ("GET", "/revocations", ""),
    (
        "DELETE",
        "/revocations/0123456789abcdef0123456789abcdef",
        "",
    ),
    ("GET", "/revocations/", ""),
];

#[tokio::test]
async fn without_an_api_token_the_endpoints_answer_404() {
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let gw = keys.config_without_api_token(&upstream, "").start().await;
    let admin = Admin(gw.admin_addr());
    let token = keys.token(json!({}));
    for (method, path, body) in CALLS {
        for auth in [None, Some(format!("Bearer {API_TOKEN}"))] {
            let reply = admin.send(method, path, auth.as_deref(), body).await;
            assert_admin_error(&reply, 404, "not_found", &format!("{method} {path}"));
        }
    }
    assert_eq!(status(gw.addr(), &token).await, 200, "nothing was revoked");
    assert_eq!(
        admin.readyz().await.status,
        200,
        "the rest of the admin API"
    );
}

#[tokio::test]
async fn a_missing_or_wrong_admin_token_is_401_and_changes_nothing() {
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let gw = keys.config(&upstream, "").start().await;
    let admin = Admin(gw.admin_addr());
    let token = keys.token(json!({}));
    let wrong = [
        None,
        Some("Bearer wrong-admin-token-0123456789ab".to_string()),
        Some(format!("Bearer {API_TOKEN}x")),
        Some(format!("Bearer {}", &API_TOKEN[..API_TOKEN.len() - 1])),
        Some(format!("Basic {API_TOKEN}")),
        Some(API_TOKEN.to_string()),
        Some("Bearer ".to_string()),
        Some(format!("Bearer {token}")),
    ];
    for (method, path, body) in CALLS {
        for auth in &wrong {
            let what = format!("{method} {path} with {auth:?}");
            let reply = admin.send(method, path, auth.as_deref(), body).await;
            let err = assert_admin_error(&reply, 401, "unauthorized", &what);
            assert_eq!(
                err["error_description"], "the admin API token is missing or wrong",
                "{what}"
            );
            assert_eq!(
                reply.header("www-authenticate"),
                Some("Bearer realm=\"tokengate-admin\""),
                "{what}"
            );
        }
    }
    assert_eq!(admin.list().await, Vec::<Value>::new(), "nothing was added");
    assert_eq!(status(gw.addr(), &token).await, 200);
    // The scheme is case-insensitive (RFC 6750 section 2.1 via RFC 9110).
    let reply = admin
        .send(
            "GET",
            "/revocations",
            Some(&format!("bearer {API_TOKEN}")),
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", text(&reply));
}

#[tokio::test]
async fn bad_bodies_are_400_each_with_its_reason() {
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let gw = keys.config(&upstream, "").start().await;
    let admin = Admin(gw.admin_addr());
    const NOT_OBJECT: &str = "the body must be a JSON object";
    const UNKNOWN: &str = "unknown member; allowed: jti, sub, client_id, issuer, ttl_s";
    const STRINGS: &str =
        "jti, sub, client_id and issuer must be non-empty strings of at most 1024 bytes";
    const ONE: &str = "name exactly one of jti, sub or client_id";
    const ISSUER: &str = "issuer must be the name of a configured issuer";
    const TTL: &str = "ttl_s must be an integer from 1 to 31536000";
    const SIZE: &str = "the body must be a JSON object of at most 8 KiB";
    let long = "x".repeat(1025);
    let huge = format!(r#"{{"jti":"{}"}}"#, "y".repeat(8 * 1024));
    let cases: Vec<(String, &str)> = vec![
        ("".into(), NOT_OBJECT),
        ("not json".into(), NOT_OBJECT),
        ("[]".into(), NOT_OBJECT),
        (r#""jti""#.into(), NOT_OBJECT),
        ("null".into(), NOT_OBJECT),
        (r#"{"jti":"a""#.into(), NOT_OBJECT),
        (r#"{"jti":"a","reason":"stolen"}"#.into(), UNKNOWN),
        (r#"{"JTI":"a"}"#.into(), UNKNOWN),
        (r#"{"jti":""}"#.into(), STRINGS),
        (r#"{"sub":5}"#.into(), STRINGS),
        (r#"{"client_id":null}"#.into(), STRINGS),
        (r#"{"client_id":["app"]}"#.into(), STRINGS),
        (format!(r#"{{"jti":"{long}"}}"#), STRINGS),
        (r#"{"jti":"a","issuer":""}"#.into(), STRINGS),
        ("{}".into(), ONE),
        (r#"{"issuer":"corp","ttl_s":60}"#.into(), ONE),
        (r#"{"jti":"a","sub":"b"}"#.into(), ONE),
        (r#"{"sub":"b","client_id":"c"}"#.into(), ONE),
        (r#"{"jti":"a","sub":"b","client_id":"c"}"#.into(), ONE),
        (r#"{"jti":"a","issuer":"nobody"}"#.into(), ISSUER),
        (
            r#"{"jti":"a","issuer":"https://corp.idp.test/"}"#.into(),
            ISSUER,
        ),
        (r#"{"jti":"a","ttl_s":0}"#.into(), TTL),
        (r#"{"jti":"a","ttl_s":-1}"#.into(), TTL),
        (r#"{"jti":"a","ttl_s":31536001}"#.into(), TTL),
        (r#"{"jti":"a","ttl_s":1.5}"#.into(), TTL),
        (r#"{"jti":"a","ttl_s":"60"}"#.into(), TTL),
        (r#"{"jti":"a","ttl_s":null}"#.into(), TTL),
        (huge, SIZE),
    ];
    for (body, why) in &cases {
        let shown: String = body.chars().take(60).collect();
        let reply = admin.post(body).await;
        let err = assert_admin_error(&reply, 400, "invalid_request", &shown);
        assert_eq!(err["error_description"], *why, "{shown}");
    }
    assert_eq!(admin.list().await, Vec::<Value>::new(), "no entry was made");
    // The bounds themselves are accepted.
    for body in [
        json!({"jti": "a", "ttl_s": 1}),
        json!({"jti": "b", "ttl_s": 31_536_000}),
        json!({"jti": "x".repeat(1024)}),
    ] {
        admin.revoke(body).await;
    }
    assert_eq!(admin.list().await.len(), 3);
}

#[tokio::test]
async fn post_answers_the_entry_get_lists_live_entries_delete_removes_one() {
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let gw = keys.config(&upstream, "").start().await;
    let admin = Admin(gw.admin_addr());

    let before = wall_now();
    let reply = admin.post(r#"{"jti":"jti-api-1"}"#).await;
    let after = wall_now();
    assert_eq!(reply.status, 201, "{}", text(&reply));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let first = reply.json();
    assert_eq!(
        members(&first),
        set(&[
            "id",
            "jti",
            "created_at",
            "expires_at",
            "ttl_s",
            "propagated"
        ]),
        "{first}"
    );
    let id = first["id"].as_str().expect("id").to_string();
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "id is 128 bits in lower-case hex: {id}"
    );
    assert_eq!(first["jti"], "jti-api-1");
    let created = first["created_at"].as_f64().expect("created_at");
    assert!(
        before <= created && created <= after,
        "{before} <= {created} <= {after}"
    );
    assert_eq!(first["expires_at"].as_f64(), Some(created + 86_400.0));
    assert_eq!(first["ttl_s"], 86_400, "the default ttl_s");
    assert_eq!(first["propagated"], true, "no Redis to wait for");

    let second = admin
        .revoke(json!({"sub": "sub-api", "issuer": "partner", "ttl_s": 60}))
        .await;
    assert_eq!(
        members(&second),
        set(&[
            "id",
            "sub",
            "issuer",
            "created_at",
            "expires_at",
            "ttl_s",
            "propagated"
        ]),
        "{second}"
    );
    assert_eq!(second["sub"], "sub-api");
    assert_eq!(second["issuer"], "partner");
    assert_eq!(second["ttl_s"], 60);
    let created2 = second["created_at"].as_f64().expect("created_at");
    assert_eq!(second["expires_at"].as_f64(), Some(created2 + 60.0));
    let third = admin.revoke(json!({"client_id": "client-api"})).await;
    assert_eq!(third["client_id"], "client-api");
    assert_ne!(first["id"], second["id"]);
    assert_ne!(second["id"], third["id"]);

    // The list: the answered entries, oldest first, without `propagated`.
    let listed = admin.list().await;
    let expected: Vec<Value> = [&first, &second, &third]
        .into_iter()
        .map(|e| {
            let mut e = e.clone();
            e.as_object_mut().expect("object").remove("propagated");
            e
        })
        .collect();
    assert_eq!(listed, expected);

    let gone = admin.delete(&id).await;
    assert_eq!(gone.status, 204, "{}", text(&gone));
    assert!(gone.body.is_empty());
    let again = admin.delete(&id).await;
    let err = assert_admin_error(&again, 404, "not_found", "second DELETE");
    assert_eq!(err["error_description"], "no such revocation");
    let unknown = admin.delete("0123456789abcdef0123456789abcdef").await;
    assert_admin_error(&unknown, 404, "not_found", "unknown id");
    assert_eq!(admin.list().await, expected[1..].to_vec());

    // Other methods.
    let put = admin.authorized("PUT", "/revocations", "{}").await;
    assert_admin_error(&put, 405, "method_not_allowed", "PUT /revocations");
    assert_eq!(put.header("allow"), Some("GET, HEAD, POST"));
    let get_one = admin
        .authorized(
            "GET",
            &format!("/revocations/{}", second["id"].as_str().unwrap()),
            "",
        )
        .await;
    assert_admin_error(&get_one, 405, "method_not_allowed", "GET /revocations/{id}");
    assert_eq!(get_one.header("allow"), Some("DELETE"));
}

#[tokio::test]
async fn without_redis_a_revoked_token_is_refused_also_when_its_identity_is_cached() {
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let gw = keys.config(&upstream, "").start().await;
    let admin = Admin(gw.admin_addr());
    let token = keys.token(json!({"jti": "jti-cached"}));
    let other = keys.token(json!({"jti": "jti-other"}));
    assert_eq!(status(gw.addr(), &token).await, 200, "first use");
    assert_eq!(
        status(gw.addr(), &token).await,
        200,
        "from the identity cache"
    );

    let entry = admin.revoke(json!({"jti": "jti-cached"})).await;
    assert_revoked(&call(gw.addr(), &token).await, "cached, then revoked");
    assert_revoked(&call(gw.addr(), &token).await, "and again");
    assert_eq!(status(gw.addr(), &other).await, 200, "another jti");
    assert_eq!(upstream.hits(), 3, "the refused calls reached nothing");

    let gone = admin.delete(entry["id"].as_str().expect("id")).await;
    assert_eq!(gone.status, 204);
    assert_eq!(
        status(gw.addr(), &token).await,
        200,
        "DELETE lifts the refusal"
    );
    let ready = admin.readyz().await;
    assert_eq!(
        ready.json(),
        json!({"status": "ready"}),
        "no redis member without [redis]"
    );
}

#[tokio::test]
async fn an_entry_lives_for_ttl_s_then_is_neither_listed_nor_enforced() {
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let clock = test_clock();
    let gw = keys.config(&upstream, "").start_on(&clock).await;
    let admin = Admin(gw.admin_addr());
    let token = keys.token(json!({"jti": "jti-ttl"}));
    let entry = admin.revoke(json!({"jti": "jti-ttl", "ttl_s": 60})).await;
    assert_eq!(
        entry["created_at"].as_f64(),
        Some(clock.now()),
        "the gateway's clock"
    );
    assert_revoked(&call(gw.addr(), &token).await, "within ttl_s");

    clock.advance(Duration::from_secs(59));
    assert_revoked(&call(gw.addr(), &token).await, "one second before expiry");
    assert_eq!(admin.list().await.len(), 1);

    clock.advance(Duration::from_secs(1));
    assert_eq!(status(gw.addr(), &token).await, 200, "expired at ttl_s");
    assert_eq!(admin.list().await, Vec::<Value>::new());
    let gone = admin.delete(entry["id"].as_str().expect("id")).await;
    assert_eq!(gone.status, 404, "an expired entry is unknown");
}
