//! Opaque tokens bound by their introspection answer (extensions section
//! 9): `cnf.jkt` binds them to a DPoP key exactly as it binds a JWT, with
//! `token_type` `DPoP` (any case) allowed only then; the cached answer
//! never skips the proof.

use super::*;
use common::config::Issuer;
use common::mint::now;

const ISS: &str = "https://op.idp.test/";

/// An introspection-only issuer at a fresh identity provider, the echo
/// upstream, and a `[dpop]` gateway with `/any/**` and `/dpop/**`.
struct Opaque {
    idp: TestIdp,
    upstream: Upstream,
    gw: Gateway,
}

impl Opaque {
    async fn start() -> Opaque {
        Opaque::start_with("").await
    }

    /// With these `[server]` lines.
    async fn start_with(server: &str) -> Opaque {
        let idp = TestIdp::start().await;
        let upstream = Upstream::echo().await;
        let gw = GatewayConfig::new()
            .server(server)
            .issuer(Issuer::new("op", ISS).introspect_at(
                &idp.introspection_endpoint(),
                "gateway",
                "secret",
            ))
            .upstream("echo", &upstream.url())
            .route(Route::new("/any/**", "echo"))
            .route(Route::new("/dpop/**", "echo").with("token_binding = \"dpop\""))
            .raw(&dpop_table(""))
            .start()
            .await;
        Opaque { idp, upstream, gw }
    }

    /// Registers an active answer for `token` with `changes`.
    fn answer(&self, token: &str, changes: Value) {
        let answer = with(
            &json!({
                "active": true,
                "sub": "alice",
                "scope": "read",
                "iss": ISS,
                "aud": AUD,
                "exp": now() + 300,
            }),
            changes,
        );
        self.idp.set_introspection(token, answer);
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.gw.send(&Client::h1(), get_with(path, headers)).await
    }

    async fn dpop(&self, key: &DpopKey, path: &str, token: &str) -> Reply {
        let proof = key.proof("GET", &self.gw.url(path), token).encode();
        let auth = format!("DPoP {token}");
        self.get(path, &[("authorization", &auth), ("dpop", &proof)])
            .await
    }

    async fn bearer(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.get(path, &[("authorization", &auth)]).await
    }
}

#[tokio::test]
async fn introspected_cnf_jkt_binds_like_a_jwt() {
    let s = Opaque::start().await;
    let key = DpopKey::es256();
    let bound = [
        (
            "op-dpop",
            json!({"token_type": "DPoP", "cnf": cnf_jkt(&key)}),
        ),
        (
            "op-lower",
            json!({"token_type": "dpop", "cnf": cnf_jkt(&key)}),
        ),
        ("op-no-type", json!({"cnf": cnf_jkt(&key)})),
    ];
    for (token, changes) in &bound {
        s.answer(token, changes.clone());
        assert_ok(&s.dpop(&key, "/any/x", token).await, token);
        assert_ok(&s.dpop(&key, "/dpop/x", token).await, token);
        assert_invalid(&s.bearer("/any/x", token).await, "Bearer", token);
        assert_invalid(&s.bearer("/dpop/x", token).await, "DPoP", token);
        let thief = DpopKey::es256();
        assert_invalid(&s.dpop(&thief, "/any/x", token).await, "DPoP", token);
    }
    assert_eq!(s.upstream.hits(), 2 * bound.len());
    assert!(!s.upstream.last().has("dpop"));
}

#[tokio::test]
async fn cached_introspection_answer_never_skips_the_proof() {
    let s = Opaque::start().await;
    let key = DpopKey::eddsa();
    s.answer(
        "op-cached",
        json!({"token_type": "DPoP", "cnf": cnf_jkt(&key)}),
    );
    assert_ok(&s.dpop(&key, "/any/x", "op-cached").await, "first");
    assert_ok(&s.dpop(&key, "/any/x", "op-cached").await, "second, cached");
    assert_eq!(s.idp.introspect_hits(), 1, "the answer is cached");
    let auth = "DPoP op-cached";
    let reply = s.get("/any/x", &[("authorization", auth)]).await;
    assert_bad_proof(&reply, "cached answer, no proof");
    assert_invalid(
        &s.bearer("/any/x", "op-cached").await,
        "Bearer",
        "as Bearer",
    );
    assert_eq!(s.upstream.hits(), 2);
}

#[tokio::test]
async fn token_type_dpop_without_cnf_jkt_or_a_malformed_cnf_is_invalid_token() {
    let s = Opaque::start().await;
    let key = DpopKey::es256();
    let cert = json!({"x5t#S256": "abc"});
    let cases = [
        ("op-no-cnf", json!({"token_type": "DPoP"})),
        ("op-cert-only", json!({"token_type": "DPoP", "cnf": cert})),
        ("op-empty-cnf", json!({"token_type": "DPoP", "cnf": {}})),
        // A malformed cnf is refused whatever the token_type.
        ("op-number-jkt", json!({"cnf": {"jkt": 5}})),
        (
            "op-neither",
            json!({"token_type": "Bearer", "cnf": {"jwk": {}}}),
        ),
    ];
    for (token, changes) in cases {
        s.answer(token, changes);
        assert_invalid(&s.bearer("/any/x", token).await, "Bearer", token);
        assert_invalid(&s.dpop(&key, "/any/x", token).await, "DPoP", token);
    }
    // An unbound bearer answer is a bearer token, not a DPoP one.
    s.answer("op-bearer", json!({"token_type": "Bearer"}));
    assert_ok(&s.bearer("/any/x", "op-bearer").await, "bearer");
    assert_invalid(
        &s.dpop(&key, "/any/x", "op-bearer").await,
        "DPoP",
        "bearer via DPoP",
    );
    assert_eq!(s.upstream.hits(), 1);
}

#[tokio::test]
async fn proof_is_checked_before_the_token_is_introspected() {
    let s = Opaque::start().await;
    let key = DpopKey::es256();
    s.answer("op-early", json!({"cnf": cnf_jkt(&key)}));
    let auth = "DPoP op-early";
    let reply = s.get("/any/x", &[("authorization", auth)]).await;
    assert_bad_proof(&reply, "no proof");
    let stale = key
        .proof("GET", &s.gw.url("/any/x"), "op-early")
        .claim("iat", json!(now() - 3600))
        .encode();
    let reply = s
        .get("/any/x", &[("authorization", auth), ("dpop", &stale)])
        .await;
    assert_bad_proof(&reply, "stale proof");
    assert_eq!(s.idp.introspect_hits(), 0, "no network for a bad proof");
    assert_eq!(s.upstream.hits(), 0);
}

#[tokio::test]
async fn introspected_x5t_binds_to_the_client_certificate() {
    let s = Opaque::start_with(
        "client_cert_header = \"Client-Cert\"\ntrusted_proxies = [\"127.0.0.1/32\"]",
    )
    .await;
    let cert = ClientCert::self_signed("client");
    let other = ClientCert::self_signed("other");
    s.answer("op-cert", json!({ "cnf": cert.cnf() }));
    let auth = "Bearer op-cert";
    let (mine, theirs) = (cert.header_value(), other.header_value());
    let reply = s
        .get("/any/x", &[("authorization", auth), ("client-cert", &mine)])
        .await;
    assert_ok(&reply, "the certificate");
    assert!(!s.upstream.last().has("client-cert"));
    let reply = s
        .get(
            "/any/x",
            &[("authorization", auth), ("client-cert", &theirs)],
        )
        .await;
    assert_invalid(&reply, "Bearer", "another certificate");
    let reply = s.get("/any/x", &[("authorization", auth)]).await;
    assert_invalid(&reply, "Bearer", "no certificate");
    assert_eq!(s.idp.introspect_hits(), 1, "one cached answer");
    assert_eq!(s.upstream.hits(), 1);
}
