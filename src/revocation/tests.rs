//! The deny-list's rules, table-driven: what each kind of entry refuses,
//! the issuer filter, expiry, and the admin body's validation.

use super::*;

const NOW: f64 = 1_800_000_000.0;

fn principal(
    jti: Option<&str>,
    sub: Option<&str>,
    client: Option<&str>,
    iat: Option<f64>,
) -> Principal {
    Principal {
        issuer: 0,
        key: None,
        expires_at: NOW + 3600.0,
        scopes: Vec::new(),
        subject: sub.map(String::from),
        client_id: client.map(String::from),
        token_id: jti.map(String::from),
        issued_at: iat,
        audiences: Vec::new(),
        binding: None,
        forwarded: Vec::new(),
    }
}

fn entry(id: &str, target: Target, issuer: Option<&str>, created: f64, ttl: f64) -> Entry {
    Entry {
        id: id.into(),
        target,
        issuer: issuer.map(String::from),
        created_at: created,
        expires_at: created + ttl,
    }
}

#[test]
fn each_kind_of_entry_refuses_what_section_11_says() {
    let list = DenyList::new();
    assert!(!list.revoked(
        &principal(Some("j"), Some("alice"), Some("app"), Some(NOW - 10.0)),
        "corp",
        NOW
    ));
    list.insert(entry(
        "1",
        Target::Jti("j1".into()),
        None,
        NOW - 100.0,
        3600.0,
    ));
    list.insert(entry(
        "2",
        Target::Sub("alice".into()),
        None,
        NOW - 100.0,
        3600.0,
    ));
    list.insert(entry(
        "3",
        Target::ClientId("app".into()),
        Some("corp"),
        NOW - 100.0,
        3600.0,
    ));
    list.insert(entry(
        "4",
        Target::Jti("old".into()),
        None,
        NOW - 7200.0,
        3600.0,
    ));
    let cases = [
        // jti: that token, whenever it was issued.
        (principal(Some("j1"), None, None, Some(NOW)), "corp", true),
        (principal(Some("j2"), None, None, None), "corp", false),
        // sub: tokens issued before the revocation, or without iat.
        (
            principal(None, Some("alice"), None, Some(NOW - 101.0)),
            "corp",
            true,
        ),
        (principal(None, Some("alice"), None, None), "corp", true),
        (
            principal(None, Some("alice"), None, Some(NOW - 99.0)),
            "corp",
            false,
        ),
        (
            principal(None, Some("bob"), None, Some(NOW - 101.0)),
            "corp",
            false,
        ),
        // client_id, only for the named issuer.
        (
            principal(None, None, Some("app"), Some(NOW - 200.0)),
            "corp",
            true,
        ),
        (
            principal(None, None, Some("app"), Some(NOW - 200.0)),
            "partner",
            false,
        ),
        // An expired entry refuses nothing.
        (principal(Some("old"), None, None, None), "corp", false),
    ];
    for (i, (p, issuer, want)) in cases.iter().enumerate() {
        assert_eq!(list.revoked(p, issuer, NOW), *want, "case {i}");
    }
    assert_eq!(list.list(NOW).len(), 3, "the expired entry is not listed");
    assert!(list.remove("1"));
    assert!(!list.remove("1"));
    assert!(!list.revoked(&cases[0].0, "corp", NOW));
}

#[test]
fn replace_keeps_changes_redis_has_not_taken() {
    let list = DenyList::new();
    list.insert(entry("local", Target::Jti("a".into()), None, NOW, 60.0));
    list.defer(Pending::Add(entry(
        "local",
        Target::Jti("a".into()),
        None,
        NOW,
        60.0,
    )));
    list.insert(entry("gone", Target::Jti("b".into()), None, NOW, 60.0));
    list.defer(Pending::Delete("remote-deleted".into()));
    let from_redis = vec![
        entry("remote", Target::Sub("s".into()), None, NOW, 60.0),
        entry("remote-deleted", Target::Sub("t".into()), None, NOW, 60.0),
        entry("expired", Target::Sub("u".into()), None, NOW - 120.0, 60.0),
    ];
    list.replace(from_redis, NOW);
    let mut ids: Vec<String> = list.list(NOW).iter().map(|e| e.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["local", "remote"]);
    list.written(1);
    assert_eq!(list.pending().len(), 1);
}

#[test]
fn the_admin_body_is_validated_with_clear_reasons() {
    let issuers = ["corp"];
    let ok = |body: &str| api::parse(body.as_bytes(), &issuers, NOW);
    let e = ok(r#"{"jti": "abc"}"#).unwrap();
    assert_eq!(e.target, Target::Jti("abc".into()));
    assert_eq!(e.expires_at - e.created_at, 86_400.0);
    assert_eq!(e.id.len(), 32);
    let e = ok(r#"{"client_id": "app", "issuer": "corp", "ttl_s": 31536000}"#).unwrap();
    assert_eq!(e.issuer.as_deref(), Some("corp"));
    let cases = [
        ("", "the body must be a JSON object"),
        ("[]", "the body must be a JSON object"),
        ("{}", "name exactly one of jti, sub or client_id"),
        (
            r#"{"jti": "a", "sub": "b"}"#,
            "name exactly one of jti, sub or client_id",
        ),
        (
            r#"{"jti": ""}"#,
            "jti, sub, client_id and issuer must be non-empty strings of at most 1024 bytes",
        ),
        (
            r#"{"sub": 5}"#,
            "jti, sub, client_id and issuer must be non-empty strings of at most 1024 bytes",
        ),
        (
            r#"{"jti": "a", "ttl_s": 0}"#,
            "ttl_s must be an integer from 1 to 31536000",
        ),
        (
            r#"{"jti": "a", "ttl_s": 31536001}"#,
            "ttl_s must be an integer from 1 to 31536000",
        ),
        (
            r#"{"jti": "a", "ttl_s": "60"}"#,
            "ttl_s must be an integer from 1 to 31536000",
        ),
        (
            r#"{"jti": "a", "issuer": "other"}"#,
            "issuer must be the name of a configured issuer",
        ),
        (
            r#"{"jti": "a", "reason": "x"}"#,
            "unknown member; allowed: jti, sub, client_id, issuer, ttl_s",
        ),
    ];
    for (body, why) in cases {
        assert_eq!(ok(body).map(|_| ()), Err(why), "{body}");
    }
}
