//! Claim checks per profile (`typ`, audience forms, leeway), signed tokens
//! of every algorithm forwarded with their identity headers, unusable
//! published keys, and a cached identity's end at `exp`.

use super::*;

#[tokio::test]
async fn typ_is_checked_per_profile() {
    let s = Setup::start("", "").await;
    let c = s.claims();
    let strict = with(&c, json!({"iss": strict_issuer(&s.idp)}));
    let mut forwarded = 0;
    for (typ, generic_ok, rfc9068_ok) in [
        (None, true, false),
        (Some("JWT"), true, false),
        (Some("jwt"), true, false),
        (Some("at+jwt"), true, true),
        (Some("AT+JWT"), true, true),
        (Some("application/at+jwt"), true, true),
        (Some("application/AT+JWT"), true, true),
        (Some("dpop+jwt"), false, false),
        (Some("application/jwt"), false, false),
        (Some("secevent+jwt"), false, false),
    ] {
        for (claims, ok, profile) in [
            (&c, generic_ok, "generic"),
            (&strict, rfc9068_ok, "rfc9068"),
        ] {
            let token =
                s.k.ed
                    .jwt(claims)
                    .header("typ", typ.map_or(Value::Null, |t| json!(t)))
                    .encode();
            let reply = s.call("/api/x", &token).await;
            if ok {
                assert_eq!(reply.status, 200, "typ {typ:?} in profile {profile}");
                forwarded += 1;
            } else {
                assert_invalid_token_hides(
                    &reply,
                    REALM,
                    &token,
                    &format!("typ {typ:?} in profile {profile}"),
                );
            }
            assert_eq!(
                s.upstream.hits(),
                forwarded,
                "typ {typ:?} in profile {profile}"
            );
        }
    }
    // rfc9068 requires iat, sub, client_id and jti; generic does not.
    for missing in ["iat", "sub", "client_id", "jti"] {
        let token = s.k.ed.token(&with(&strict, json!({ missing: null })));
        assert_invalid_token_hides(
            &s.call("/api/x", &token).await,
            REALM,
            &token,
            &format!("rfc9068 without {missing}"),
        );
        let token = s.k.ed.token(&with(&c, json!({ missing: null })));
        assert_eq!(
            s.call("/api/x", &token).await.status,
            200,
            "generic without {missing}"
        );
        forwarded += 1;
    }
    assert_eq!(s.upstream.hits(), forwarded);
}

#[tokio::test]
async fn audience_forms_and_leeway_edges() {
    let s = Setup::start("", "").await;
    let c = s.claims();
    let t = now();
    let accepted = [
        ("aud our string", json!({"aud": AUD})),
        ("aud our second audience", json!({"aud": AUD2})),
        (
            "aud array with ours last",
            json!({"aud": ["https://evil.test", AUD2]}),
        ),
        (
            "aud array with ours first",
            json!({"aud": [AUD, "https://evil.test"]}),
        ),
        ("exp just inside the 5 s leeway", json!({"exp": t - 2})),
        ("nbf in the future within leeway", json!({"nbf": t + 2})),
        ("nbf in the past", json!({"nbf": t - 100})),
        ("iat in the future within leeway", json!({"iat": t + 2})),
        ("no iat", json!({"iat": null})),
        ("fractional exp", json!({"exp": t as f64 + 600.5})),
    ];
    for (what, change) in &accepted {
        let reply = s
            .call("/api/x", &s.k.ps.token(&with(&c, change.clone())))
            .await;
        assert_status(&reply, 200, what);
    }
    let refused = [
        ("exp just outside the 5 s leeway", json!({"exp": t - 7})),
        ("nbf beyond the leeway", json!({"nbf": t + 15})),
        ("iat beyond the leeway", json!({"iat": t + 15})),
    ];
    for (what, change) in &refused {
        let token = s.k.ps.token(&with(&c, change.clone()));
        assert_invalid_token_hides(&s.call("/api/x", &token).await, REALM, &token, what);
    }
    assert_eq!(s.upstream.hits(), accepted.len());
}

#[tokio::test]
async fn tokens_of_every_algorithm_are_forwarded_with_identity_headers() {
    let s = Setup::start("", "").await;
    let c = with(
        &s.claims(),
        json!({"sub": "alice", "client_id": "app-1", "scope": "read write"}),
    );
    let keys = [
        ("RS256", s.k.rs.clone()),
        ("PS256", s.k.ps.clone()),
        ("ES256", s.k.ec.clone()),
        ("ES256 second key", s.k.ec2.clone()),
        ("EdDSA", s.k.ed.clone()),
        ("RS256 without kid, one RS256 key", s.k.rs.without_kid()),
        ("EdDSA without kid, one Ed25519 key", s.k.ed.without_kid()),
    ];
    let mut hits = 0;
    for (what, key) in &keys {
        let token = key.token(&c);
        for client in [Client::h1(), Client::h2()] {
            let req = get_with(
                "/api/orders?x=1",
                &[
                    ("authorization", &format!("Bearer {token}")),
                    ("x-auth-subject", "mallory"),
                    ("x-auth-subject", "eve"),
                    ("x-auth-client-id", "evil-app"),
                    ("x-auth-scope", "admin"),
                    ("x_auth_subject", "underscored"),
                ],
            );
            let reply = s.gw.send(&client, req).await;
            assert_status(&reply, 200, what);
            hits += 1;
            assert_eq!(s.upstream.hits(), hits);
            let seen = s.upstream.last();
            assert_eq!(seen.target(), "/api/orders?x=1");
            let all = |name: &str| -> Vec<String> {
                seen.headers
                    .get_all(name)
                    .iter()
                    .map(|v| v.to_str().expect("ASCII").to_string())
                    .collect()
            };
            assert_eq!(all("x-auth-subject"), ["alice"], "{what}");
            assert_eq!(all("x-auth-client-id"), ["app-1"], "{what}");
            assert_eq!(all("x-auth-scope"), ["read write"], "{what}");
            assert!(!seen.has("x_auth_subject"), "{what}");
            assert_eq!(
                all("authorization"),
                [format!("Bearer {token}")],
                "kept by default: {what}"
            );
        }
    }

    // Claims that cannot be a header value are not sent; absent ones neither.
    let odd = with(
        &c,
        json!({"sub": "alice\r\nx-injected: 1", "client_id": null, "scope": ["a", "b"]}),
    );
    let reply = s.call("/api/x", &s.k.ed.token(&odd)).await;
    assert_eq!(reply.status, 200);
    let seen = s.upstream.last();
    assert!(
        !seen.has("x-auth-subject") && !seen.has("x-injected") && !seen.has("x-auth-client-id")
    );
    assert_eq!(seen.header("x-auth-scope"), Some("a b"));
}

#[tokio::test]
async fn strip_authorization_removes_the_token_upstream() {
    let s = Setup::start("", "strip_authorization = true").await;
    let token = s.k.ec.token(&s.claims());
    for client in [Client::h1(), Client::h2()] {
        let reply = s.gw.send(&client, bearer("/api/x", &token)).await;
        assert_eq!(reply.status, 200);
        let seen = s.upstream.last();
        assert!(!seen.has("authorization"), "{:?}", seen.headers);
        assert_eq!(seen.header("x-auth-subject"), Some("alice"));
    }
}

#[tokio::test]
async fn unusable_published_keys_are_skipped() {
    let s = Setup::start("", "").await;
    let c = s.claims();
    let variant = |kid: &str, changes: Value| with(&s.k.rs.with_kid(kid).jwk(), changes);
    let d = b64(s.k.rs.rsa_modulus());
    let mut published: Vec<Value> = s.k.all().iter().map(|k| k.jwk()).collect();
    published.extend([
        variant("use-enc", json!({"use": "enc"})),
        variant("ops-encrypt", json!({"key_ops": ["encrypt"]})),
        variant("private", json!({"d": d})),
        variant("alg-hs256", json!({"alg": "HS256"})),
        variant("alg-es256", json!({"alg": "ES256"})),
        variant("ops-verify", json!({"key_ops": ["sign", "verify"]})),
        variant("no-use", json!({"use": null, "alg": null})),
    ]);
    published.push(json!({"kty": "oct", "kid": "oct", "k": b64(b"shared secret"), "alg": "HS256"}));
    s.idp.set_jwks(published);
    // The first unknown kid refetches the set; every later kid is decided on it.
    for kid in [
        "use-enc",
        "ops-encrypt",
        "private",
        "alg-hs256",
        "alg-es256",
    ] {
        let token = s.k.rs.with_kid(kid).token(&c);
        assert_invalid_token_hides(&s.call("/api/x", &token).await, REALM, &token, kid);
    }
    let oct = hmac_token(
        "HS256",
        b"shared secret",
        &json!({"alg": "HS256", "kid": "oct"}),
        &c,
    );
    assert_invalid_token_hides(&s.call("/api/x", &oct).await, REALM, &oct, "oct key");
    assert_eq!(s.upstream.hits(), 0);
    for kid in ["ops-verify", "no-use"] {
        assert_eq!(
            s.call("/api/x", &s.k.rs.with_kid(kid).token(&c))
                .await
                .status,
            200,
            "{kid}"
        );
    }
}

#[tokio::test]
async fn cached_identity_expires_at_exp() {
    let clock = common::test_clock();
    let s = Setup::start_on("", "leeway_s = 0", "", &clock).await;
    let exp = now() + 2;
    let token = s.k.ed.token(&with(&s.claims(), json!({ "exp": exp })));
    assert_eq!(s.call("/api/x", &token).await.status, 200);
    assert_eq!(
        s.call("/api/x", &token).await.status,
        200,
        "served from the identity cache"
    );
    // Step the gateway's clock to exp: the cached identity is refused.
    clock.advance(std::time::Duration::from_secs_f64(exp as f64 - clock.now()));
    assert_invalid_token_hides(
        &s.call("/api/x", &token).await,
        REALM,
        &token,
        "expired cached token",
    );
    assert_eq!(s.upstream.hits(), 2);
}
