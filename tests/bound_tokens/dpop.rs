//! DPoP (RFC 9449; extensions section 9): a DPoP-bound token with a valid
//! proof is forwarded without its `DPoP` header; the identity cache never
//! skips the proof; every way a proof can be wrong is `invalid_dpop_proof`;
//! `htu` is compared after normalisation and takes its scheme from
//! `X-Forwarded-Proto` only from a trusted proxy; the key must be the
//! token's `cnf.jkt`; a DPoP-bound token is not a bearer token; without
//! `[dpop]` the scheme is unknown; and server nonces.

use super::*;
use common::dpop::{ath, fresh_jti};
use common::mint::now;
use std::time::Duration;

#[tokio::test]
async fn valid_proof_is_forwarded_and_the_upstream_never_sees_it() {
    let s = Bound::with_dpop().await;
    for key in [DpopKey::es256(), DpopKey::eddsa(), DpopKey::rs256()] {
        let token = s.dpop_token(&key);
        let reply = s.dpop_fresh(&key, "/any/x", &token).await;
        assert_ok(&reply, key.alg());
        assert!(
            reply.header("dpop-nonce").is_none(),
            "no nonce unless require_nonce"
        );
        let seen = s.upstream.last();
        assert!(
            !seen.has("dpop"),
            "{}: the proof is not forwarded",
            key.alg()
        );
        assert_eq!(seen.target(), "/any/x");
    }
    assert_eq!(s.upstream.hits(), 3);
}

#[tokio::test]
async fn h2_request_is_proven_by_its_authority() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::es256();
    let token = s.dpop_token(&key);
    for _ in 0..2 {
        let proof = key.proof("GET", &s.url("/any/x"), &token).encode();
        let req = get_with(
            "/any/x",
            &[
                ("authorization", &format!("DPoP {token}")),
                ("dpop", &proof),
            ],
        );
        let reply = s.gw.send(&Client::h2(), req).await;
        assert_ok(&reply, "h2");
        assert_eq!(reply.version, http::Version::HTTP_2);
    }
    assert!(!s.upstream.last().has("dpop"));
}

#[tokio::test]
async fn concurrent_replays_of_one_proof_pass_once() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::es256();
    let token = s.dpop_token(&key);
    // Warm the identity cache, so the copies race on the replay check only.
    assert_ok(&s.dpop_fresh(&key, "/any/x", &token).await, "warm-up");
    let proof = key.proof("GET", &s.url("/any/x"), &token).encode();
    let copies = (0..8).map(|_| s.dpop("/any/x", &token, &proof));
    let replies = futures_util::future::join_all(copies).await;
    let passed = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(passed, 1, "exactly one copy of the proof is accepted");
    for reply in replies.iter().filter(|r| r.status != 200) {
        assert_bad_proof(reply, "a concurrent copy");
    }
    assert_eq!(s.upstream.hits(), 2);
}

#[tokio::test]
async fn dpop_scheme_is_case_insensitive() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::es256();
    let token = s.dpop_token(&key);
    for scheme in ["dpop", "DPOP", "DPoP"] {
        let proof = key.proof("GET", &s.url("/any/x"), &token).encode();
        let auth = format!("{scheme} {token}");
        let reply = s
            .get("/any/x", &[("authorization", &auth), ("dpop", &proof)])
            .await;
        assert_ok(&reply, scheme);
    }
}

#[tokio::test]
async fn identity_cache_never_skips_the_proof() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::es256();
    let token = s.dpop_token(&key);

    assert_ok(&s.dpop_fresh(&key, "/any/x", &token).await, "first request");
    let fetches = s.idp.jwks_hits();
    // The identity is cached now; a fresh proof is still checked and passes.
    let proof = key.proof("GET", &s.url("/any/x"), &token).encode();
    assert_ok(&s.dpop("/any/x", &token, &proof).await, "fresh proof");

    let auth = format!("DPoP {token}");
    let no_proof = s.get("/any/x", &[("authorization", &auth)]).await;
    assert_bad_proof(&no_proof, "cached identity, no proof");
    let replay = s.dpop("/any/x", &token, &proof).await;
    assert_bad_proof(&replay, "cached identity, replayed proof");
    let as_bearer = s.bearer("/any/x", &token).await;
    assert_invalid(&as_bearer, "Bearer", "cached identity, Bearer scheme");
    let other = DpopKey::es256();
    let wrong_key = s.dpop_fresh(&other, "/any/x", &token).await;
    assert_invalid(&wrong_key, "DPoP", "cached identity, another key");

    assert_eq!(s.upstream.hits(), 2, "only the two proven requests");
    assert_eq!(
        s.idp.jwks_hits(),
        fetches,
        "no key-set fetch for the proofs"
    );
}

#[tokio::test]
async fn replayed_proof_is_invalid_dpop_proof() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::eddsa();
    let token = s.dpop_token(&key);
    let proof = key.proof("GET", &s.url("/any/x"), &token).encode();
    assert_ok(&s.dpop("/any/x", &token, &proof).await, "first use");
    let replay = s.dpop("/any/x", &token, &proof).await;
    let params = assert_challenge(&replay, 401, "DPoP", Some("invalid_dpop_proof"), "replay");
    assert_eq!(params["algs"], ALGS);
    // The same jti in a new proof (new signature, new iat) is a replay too.
    let again = key
        .proof("GET", &s.url("/any/x"), &token)
        .claim("jti", json!(replay_jti(&proof)))
        .encode();
    assert_bad_proof(&s.dpop("/any/x", &token, &again).await, "same jti");
    assert_eq!(s.upstream.hits(), 1);
}

/// The `jti` of an encoded proof.
fn replay_jti(proof: &str) -> String {
    use base64::Engine;
    let claims = proof.split('.').nth(1).expect("claims segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("JSON claims");
    claims["jti"].as_str().expect("jti").to_string()
}

#[tokio::test]
async fn missing_or_repeated_dpop_header_is_invalid_dpop_proof() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::es256();
    let token = s.dpop_token(&key);
    let auth = format!("DPoP {token}");
    let missing = s.get("/any/x", &[("authorization", &auth)]).await;
    assert_bad_proof(&missing, "no DPoP header");

    let one = key.proof("GET", &s.url("/any/x"), &token).encode();
    let two = key.proof("GET", &s.url("/any/x"), &token).encode();
    let both = s
        .get(
            "/any/x",
            &[("authorization", &auth), ("dpop", &one), ("dpop", &two)],
        )
        .await;
    assert_bad_proof(&both, "two DPoP headers");
    let empty = s.dpop("/any/x", &token, "").await;
    assert_bad_proof(&empty, "an empty DPoP header");
    assert_eq!(s.upstream.hits(), 0);
    // Neither proof was used up by the refused request.
    assert_ok(&s.dpop("/any/x", &token, &one).await, "one proof alone");
}

#[tokio::test]
async fn every_wrong_proof_is_invalid_dpop_proof() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::es256();
    let token = s.dpop_token(&key);
    let htu = s.url("/any/x");
    let good = || key.proof("GET", &htu, &token);
    let mut private = key.jwk();
    private["d"] = json!("AAAA");
    let ed = DpopKey::eddsa();
    let long_jti = "j".repeat(257);
    let cases: Vec<(&str, String)> = vec![
        ("not a JWS", "not-a-proof".to_string()),
        ("two segments", "eyJhbGciOiJFUzI1NiJ9.e30".to_string()),
        ("typ JWT", good().header("typ", json!("JWT")).encode()),
        ("typ at+jwt", good().header("typ", json!("at+jwt")).encode()),
        ("no typ", good().header("typ", Value::Null).encode()),
        (
            "alg not accepted",
            good().header("alg", json!("ES384")).encode(),
        ),
        ("alg none", good().header("alg", json!("none")).encode()),
        ("alg HS256", good().header("alg", json!("HS256")).encode()),
        ("no jwk", good().header("jwk", Value::Null).encode()),
        ("private jwk", good().header("jwk", private).encode()),
        (
            "jwk of another type",
            good().header("jwk", ed.jwk()).encode(),
        ),
        ("crit", good().header("crit", json!(["exp"])).encode()),
        (
            "signed by another key",
            good().signed_by(&DpopKey::es256()).encode(),
        ),
        ("no jti", good().claim("jti", Value::Null).encode()),
        ("empty jti", good().claim("jti", json!("")).encode()),
        (
            "jti over 256 bytes",
            good().claim("jti", json!(long_jti)).encode(),
        ),
        ("jti a number", good().claim("jti", json!(7)).encode()),
        ("htm POST", good().claim("htm", json!("POST")).encode()),
        ("htm lower case", good().claim("htm", json!("get")).encode()),
        ("no htm", good().claim("htm", Value::Null).encode()),
        ("no htu", good().claim("htu", Value::Null).encode()),
        (
            "htu not a URL",
            good().claim("htu", json!("/any/x")).encode(),
        ),
        ("no iat", good().claim("iat", Value::Null).encode()),
        (
            "iat stale",
            good().claim("iat", json!(now() - 400)).encode(),
        ),
        (
            "iat in the future",
            good().claim("iat", json!(now() + 400)).encode(),
        ),
        (
            "iat a string",
            good().claim("iat", json!(now().to_string())).encode(),
        ),
        ("no ath", good().claim("ath", Value::Null).encode()),
        (
            "ath of another token",
            good().claim("ath", json!(ath("other"))).encode(),
        ),
        (
            "ath not base64url",
            good().claim("ath", json!(ath(&token) + "=")).encode(),
        ),
    ];
    for (what, proof) in cases {
        let reply = s.dpop("/any/x", &token, &proof).await;
        assert_bad_proof(&reply, what);
        let description = reply.json()["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            !description.contains(&token) && !description.contains(&proof),
            "{what}: the description echoes the credential"
        );
    }
    assert_eq!(s.upstream.hits(), 0);
}

#[tokio::test]
async fn proof_limits_are_inclusive() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::eddsa();
    let token = s.dpop_token(&key);
    let htu = s.url("/any/x");
    let cases = [
        (
            "a 256-byte jti",
            key.proof("GET", &htu, &token)
                .claim("jti", json!("j".repeat(256))),
        ),
        // max_age_s (300) + leeway_s (5): 290 s either way is inside.
        (
            "iat 290 s ago",
            key.proof("GET", &htu, &token)
                .claim("iat", json!(now() - 290)),
        ),
        (
            "iat 290 s ahead",
            key.proof("GET", &htu, &token)
                .claim("iat", json!(now() + 290)),
        ),
        (
            "a fractional iat",
            key.proof("GET", &htu, &token)
                .claim("iat", json!(now() as f64 + 0.5)),
        ),
        // RFC 7638: the thumbprint covers the required members only.
        (
            "a jwk with kid, use and alg",
            key.proof("GET", &htu, &token)
                .header("jwk", extra_members(&key)),
        ),
    ];
    for (what, proof) in cases {
        assert_ok(&s.dpop("/any/x", &token, &proof.encode()).await, what);
    }
}

/// `key`'s public JWK with the optional members a client may add.
fn extra_members(key: &DpopKey) -> Value {
    let mut jwk = key.jwk();
    jwk["kid"] = json!("client-key-1");
    jwk["use"] = json!("sig");
    jwk["alg"] = json!(key.alg());
    jwk
}

#[tokio::test]
async fn htm_is_the_request_method() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::es256();
    let token = s.dpop_token(&key);
    for method in ["POST", "DELETE", "PATCH"] {
        let proof = key.proof(method, &s.url("/any/x"), &token).encode();
        let req = http::Request::builder()
            .method(method)
            .uri("/any/x")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", &proof)
            .body(common::empty())
            .expect("request");
        assert_ok(&s.gw.send(&s.client(), req).await, method);
        assert_eq!(s.upstream.last().method.as_str(), method);
        // The same proof on GET names the wrong method.
        let fresh = key.proof(method, &s.url("/any/x"), &token).encode();
        assert_bad_proof(&s.dpop("/any/x", &token, &fresh).await, method);
    }
    assert_eq!(s.upstream.hits(), 3);
}

#[tokio::test]
async fn htu_is_compared_after_normalisation() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::es256();
    let token = s.dpop_token(&key);
    // (request target, Host, htu)
    let accepted = [
        ("/any/x", "API.Example.COM", "http://api.example.com/any/x"),
        ("/any/x", "api.example.com", "HTTP://API.EXAMPLE.COM/any/x"),
        (
            "/any/x",
            "api.example.com:80",
            "http://api.example.com/any/x",
        ),
        (
            "/any/x",
            "api.example.com",
            "http://api.example.com:80/any/x",
        ),
        (
            "/any/x?q=1",
            "api.example.com",
            "http://api.example.com/any/x",
        ),
        (
            "/any/x",
            "api.example.com",
            "http://api.example.com/any/x?q=2",
        ),
        (
            "/any/x?q=1",
            "api.example.com",
            "http://api.example.com/any/x?q=1#f",
        ),
        (
            "/any/x",
            "api.example.com",
            "http://api.example.com/any/./x",
        ),
        (
            "/any/x",
            "api.example.com",
            "http://api.example.com/any/%78",
        ),
    ];
    for (target, host, htu) in accepted {
        let proof = key.proof("GET", htu, &token).encode();
        let auth = format!("DPoP {token}");
        let reply = s
            .get(
                target,
                &[("host", host), ("authorization", &auth), ("dpop", &proof)],
            )
            .await;
        assert_ok(&reply, &format!("{target} at {host} as {htu}"));
    }
    let refused = [
        ("/any/x", "api.example.com", "http://api.example.com/any/y"),
        ("/any/x", "api.example.com", "http://api.example.com/ANY/x"),
        ("/any/x", "api.example.com", "http://api.example.com/any/x/"),
        ("/any/x", "api.example.com", "https://api.example.com/any/x"),
        (
            "/any/x",
            "api.example.com",
            "http://api.example.com:8080/any/x",
        ),
        (
            "/any/x",
            "api.example.com",
            "http://other.example.com/any/x",
        ),
        (
            "/any/x",
            "api.example.com:8080",
            "http://api.example.com/any/x",
        ),
        ("/any/x", "api.example.com", "ftp://api.example.com/any/x"),
        (
            "/any/x",
            "api.example.com",
            "http://user@api.example.com/any/x",
        ),
    ];
    for (target, host, htu) in refused {
        let proof = key.proof("GET", htu, &token).encode();
        let auth = format!("DPoP {token}");
        let reply = s
            .get(
                target,
                &[("host", host), ("authorization", &auth), ("dpop", &proof)],
            )
            .await;
        assert_bad_proof(&reply, &format!("{target} at {host} as {htu}"));
    }
    assert_eq!(s.upstream.hits(), accepted.len());
}

#[tokio::test]
async fn htu_scheme_comes_from_x_forwarded_proto_only_from_a_trusted_proxy() {
    let trusted =
        Bound::start(Options::dpop().server("trusted_proxies = [\"127.0.0.1/32\"]")).await;
    let untrusted =
        Bound::start(Options::dpop().server("trusted_proxies = [\"10.0.0.0/8\"]")).await;
    for (s, trusted_peer) in [(&trusted, true), (&untrusted, false)] {
        let key = DpopKey::es256();
        let token = s.dpop_token(&key);
        let auth = format!("DPoP {token}");
        let https = s.url("/any/x").replacen("http://", "https://", 1);
        let http = s.url("/any/x");
        let call = |htu: String| {
            let proof = key.proof("GET", &htu, &token).encode();
            let auth = auth.clone();
            async move {
                s.get(
                    "/any/x",
                    &[
                        ("authorization", &auth),
                        ("dpop", &proof),
                        ("x-forwarded-proto", "https"),
                    ],
                )
                .await
            }
        };
        let (as_https, as_http) = (call(https).await, call(http).await);
        if trusted_peer {
            assert_ok(&as_https, "trusted proxy said https");
            assert_bad_proof(&as_http, "trusted proxy said https, proof says http");
        } else {
            assert_bad_proof(&as_https, "an untrusted peer's X-Forwarded-Proto");
            assert_ok(&as_http, "the connection's scheme");
        }
        assert_eq!(s.upstream.hits(), 1);
    }
}

#[tokio::test]
async fn htu_scheme_is_https_on_a_tls_connection() {
    let s = Bound::start(Options::dpop().tls()).await;
    let key = DpopKey::eddsa();
    let token = s.dpop_token(&key);
    let https = s.url("/any/x");
    assert!(https.starts_with("https://localhost:"), "{https}");
    assert_ok(&s.dpop_fresh(&key, "/any/x", &token).await, "https");
    let http = https.replacen("https://", "http://", 1);
    let proof = key.proof("GET", &http, &token).encode();
    assert_bad_proof(&s.dpop("/any/x", &token, &proof).await, "http on TLS");
    assert_eq!(s.upstream.hits(), 1);
}

#[tokio::test]
async fn proof_key_that_is_not_cnf_jkt_is_invalid_token_in_a_dpop_challenge() {
    let s = Bound::with_dpop().await;
    let holder = DpopKey::es256();
    let thief = DpopKey::es256();
    let token = s.dpop_token(&holder);
    // The thief's own, valid proof for the stolen token.
    let reply = s.dpop_fresh(&thief, "/any/x", &token).await;
    assert_invalid(&reply, "DPoP", "proof by another key");
    // A proof naming the holder's key but signed by the thief's.
    let forged = holder
        .proof("GET", &s.url("/any/x"), &token)
        .signed_by(&thief)
        .encode();
    assert_bad_proof(&s.dpop("/any/x", &token, &forged).await, "forged signature");
    // A jkt of the same key under another algorithm's thumbprint.
    let ed = DpopKey::eddsa();
    let other_alg = s.token(json!({"cnf": {"jkt": ed.thumbprint()}}));
    assert_invalid(
        &s.dpop_fresh(&holder, "/any/x", &other_alg).await,
        "DPoP",
        "token bound to an EdDSA key, ES256 proof",
    );
    assert_eq!(s.upstream.hits(), 0);
    assert_ok(&s.dpop_fresh(&holder, "/any/x", &token).await, "the holder");
}

#[tokio::test]
async fn token_without_cnf_jkt_sent_with_the_dpop_scheme_is_invalid_token() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::eddsa();
    let unbound = s.token(json!({}));
    let reply = s.dpop_fresh(&key, "/any/x", &unbound).await;
    assert_invalid(&reply, "DPoP", "unbound token, DPoP scheme");
    let cert_bound = s.token(json!({"cnf": {"x5t#S256": "abc"}}));
    let reply = s.dpop_fresh(&key, "/any/x", &cert_bound).await;
    assert_invalid(&reply, "DPoP", "certificate-bound token, DPoP scheme");
    // The same unbound token is fine as a bearer token.
    assert_ok(&s.bearer("/any/x", &unbound).await, "as Bearer");
    assert_eq!(s.upstream.hits(), 1);
}

#[tokio::test]
async fn malformed_cnf_is_invalid_token() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::es256();
    for cnf in [
        json!({}),
        json!({"jkt": 5}),
        json!({"jkt": ""}),
        json!({"x5t#S256": ["a"]}),
        json!("jkt"),
        json!({"jwk": key.jwk()}),
    ] {
        let token = s.token(json!({ "cnf": cnf }));
        assert_invalid(
            &s.bearer("/any/x", &token).await,
            "Bearer",
            &cnf.to_string(),
        );
        let reply = s.dpop_fresh(&key, "/any/x", &token).await;
        assert_invalid(&reply, "DPoP", &cnf.to_string());
    }
    assert_eq!(s.upstream.hits(), 0);
}

#[tokio::test]
async fn dpop_bound_token_sent_as_bearer_is_invalid_token() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::es256();
    let token = s.dpop_token(&key);
    // RFC 9449 section 7.2: in a Bearer challenge, even with a valid proof.
    let reply = s.bearer("/any/x", &token).await;
    assert_invalid(&reply, "Bearer", "Bearer scheme on an any route");
    let proof = key.proof("GET", &s.url("/any/x"), &token).encode();
    let auth = format!("Bearer {token}");
    let with_proof = s
        .get("/any/x", &[("authorization", &auth), ("dpop", &proof)])
        .await;
    assert_invalid(&with_proof, "Bearer", "Bearer scheme with a proof");
    // Every refusal on a dpop route uses the DPoP challenge.
    let reply = s.bearer("/dpop/x", &token).await;
    assert_invalid(&reply, "DPoP", "Bearer scheme on a dpop route");
    assert_eq!(s.upstream.hits(), 0);
    assert_ok(
        &s.dpop("/any/x", &token, &proof).await,
        "the proof was not used up",
    );
}

#[tokio::test]
async fn without_dpop_table_the_scheme_is_unknown_and_jkt_tokens_are_refused() {
    let s = Bound::start(Options::default()).await;
    let key = DpopKey::es256();
    let token = s.dpop_token(&key);

    // An unknown scheme is no credential: 401 without error, Bearer only.
    let proof = key.proof("GET", &s.url("/any/x"), &token).encode();
    let reply = s.dpop("/any/x", &token, &proof).await;
    assert_challenge(&reply, 401, "Bearer", None, "DPoP scheme without [dpop]");
    let reply = s.get("/any/x", &[("authorization", "DPoP x")]).await;
    assert_challenge(&reply, 401, "Bearer", None, "DPoP x");
    // A missing token: one Bearer challenge, as in section 2.
    let reply = s.get("/any/x", &[]).await;
    assert_challenge(&reply, 401, "Bearer", None, "no credential");
    let reply = s.get("/bound/x", &[]).await;
    assert_challenge(&reply, 401, "Bearer", None, "no credential, bound route");

    let reply = s.bearer("/any/x", &token).await;
    assert_invalid(&reply, "Bearer", "cnf.jkt token without [dpop]");
    let auth = format!("Bearer {token}");
    let reply = s
        .get("/any/x", &[("authorization", &auth), ("dpop", &proof)])
        .await;
    assert_invalid(
        &reply,
        "Bearer",
        "cnf.jkt token with a proof, without [dpop]",
    );
    assert_eq!(s.upstream.hits(), 0);

    // A stray DPoP header is still never forwarded.
    let plain = s.token(json!({}));
    let auth = format!("Bearer {plain}");
    let reply = s
        .get("/any/x", &[("authorization", &auth), ("dpop", &proof)])
        .await;
    assert_ok(&reply, "bearer token with a stray DPoP header");
    assert!(!s.upstream.last().has("dpop"));
}

#[tokio::test]
async fn dpop_header_is_not_forwarded_from_any_route() {
    let s = Bound::with_dpop().await;
    let reply = s.get("/open/x", &[("dpop", "anything")]).await;
    assert_ok(&reply, "auth = none");
    assert!(!s.upstream.last().has("dpop"));
    let plain = s.token(json!({}));
    let auth = format!("Bearer {plain}");
    let reply = s
        .get("/any/x", &[("authorization", &auth), ("dpop", "anything")])
        .await;
    assert_ok(&reply, "bearer token with a DPoP header");
    assert!(!s.upstream.last().has("dpop"));
}

#[tokio::test]
async fn required_nonce_is_issued_then_accepted() {
    let s = Bound::start(Options::dpop_with("require_nonce = true\nnonce_ttl_s = 60")).await;
    let key = DpopKey::es256();
    let token = s.dpop_token(&key);
    let htu = s.url("/any/x");

    let first = s.dpop_fresh(&key, "/any/x", &token).await;
    assert_challenge(&first, 401, "DPoP", Some("use_dpop_nonce"), "no nonce");
    let nonce = first.header("dpop-nonce").expect("DPoP-Nonce").to_string();
    assert!(!nonce.is_empty());
    assert_eq!(s.upstream.hits(), 0);

    let proof = key.proof("GET", &htu, &token).claim("nonce", json!(nonce));
    let reply = s.dpop("/any/x", &token, &proof.encode()).await;
    assert_ok(&reply, "with the nonce");
    let next = reply.header("dpop-nonce").expect("a nonce on success");
    assert!(!next.is_empty());
    assert!(!s.upstream.last().has("dpop-nonce"));

    // The nonce serves more than one proof while it lives.
    let again = key.proof("GET", &htu, &token).claim("nonce", json!(next));
    assert_ok(
        &s.dpop("/any/x", &token, &again.encode()).await,
        "the next nonce",
    );

    let forged = key
        .proof("GET", &htu, &token)
        .claim("nonce", json!("bm9ub25jZQ"));
    let reply = s.dpop("/any/x", &token, &forged.encode()).await;
    assert_challenge(
        &reply,
        401,
        "DPoP",
        Some("use_dpop_nonce"),
        "a made-up nonce",
    );
    assert!(reply.header("dpop-nonce").is_some());
    assert_eq!(s.upstream.hits(), 2);
}

#[tokio::test]
async fn stale_nonce_gets_a_fresh_one() {
    let s = Bound::start(Options::dpop_with("require_nonce = true\nnonce_ttl_s = 60")).await;
    let key = DpopKey::eddsa();
    let token = s.dpop_token(&key);
    let first = s.dpop_fresh(&key, "/any/x", &token).await;
    let old = first.header("dpop-nonce").expect("DPoP-Nonce").to_string();

    s.clock.advance(Duration::from_secs(61));
    let iat = s.clock.now() as i64;
    let proof = key
        .proof("GET", &s.url("/any/x"), &token)
        .claim("nonce", json!(old))
        .claim("iat", json!(iat));
    let reply = s.dpop("/any/x", &token, &proof.encode()).await;
    assert_challenge(&reply, 401, "DPoP", Some("use_dpop_nonce"), "a stale nonce");
    let fresh = reply
        .header("dpop-nonce")
        .expect("a fresh nonce")
        .to_string();
    assert_ne!(fresh, old);
    assert_eq!(s.upstream.hits(), 0);

    let proof = key
        .proof("GET", &s.url("/any/x"), &token)
        .claim("nonce", json!(fresh))
        .claim("iat", json!(iat))
        .claim("jti", json!(fresh_jti()));
    assert_ok(
        &s.dpop("/any/x", &token, &proof.encode()).await,
        "the fresh nonce",
    );
}
