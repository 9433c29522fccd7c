//! Sender-constrained tokens the provider issues: DPoP-bound (RFC 9449)
//! with proofs made by the `dpop` npm package, certificate-bound (RFC 8705)
//! with rcgen certificates presented in the gateway's own TLS handshake,
//! and an unbound token on a route that accepts DPoP only.

use super::*;
use client_cert::{fetch_tls, tls_client, ClientCert};
use common::{authorized, Pki};
use dpop_key::DpopKey;
use std::collections::BTreeMap;

/// `dpop.algorithms` of every gateway here: the `dpop` package signs ES256.
const DPOP_ALGS: &str = "ES256";

/// A gateway trusting the provider's JWTs for `https://api.test`, with
/// `[dpop]` on. `GET /orders/**` needs `orders:read` and takes any token
/// (`token_binding = "any"`, the default); `/dpop/**` needs the same scope
/// and DPoP-bound tokens only. With `pki`, the listener speaks TLS and asks
/// for a client certificate (`tls_client_auth = "optional"`, no CA: any
/// certificate passes the handshake, RFC 8705 section 2.2).
async fn bound_gateway(op: &Provider, upstream: &Upstream, pki: Option<&Pki>) -> Gateway {
    let mut config = GatewayConfig::new()
        .admin()
        .issuer(
            Issuer::new("op", &op.issuer)
                .audiences(&[API])
                .discovery()
                .with("algorithms = [\"RS256\"]\nprofile = \"rfc9068\""),
        )
        .upstream("echo", &upstream.url())
        .forward(
            "claims = { sub = \"x-auth-subject\", client_id = \"x-auth-client-id\", \
             scope = \"x-auth-scope\" }",
        )
        .route(
            Route::new("/orders/**", "echo")
                .with("methods = [\"GET\"]")
                .scopes(&["orders:read"]),
        )
        .route(
            Route::new("/dpop/**", "echo")
                .scopes(&["orders:read"])
                .with("token_binding = \"dpop\""),
        )
        .raw(&format!("[dpop]\nalgorithms = [\"{DPOP_ALGS}\"]\n"));
    let gw = match pki {
        Some(pki) => {
            config = config.server(
                "tls_cert = \"server.pem\"\ntls_key = \"server.key\"\n\
                 tls_client_auth = \"optional\"",
            );
            config.start_in(pki.dir()).await
        }
        None => config.start().await,
    };
    wait_ready(&gw).await;
    gw
}

/// A client-credentials grant for `orders:read` at `https://api.test`,
/// with `headers` (a `DPoP` proof, a `Client-Cert`).
async fn grant(op: &Provider, client: (&str, &str), headers: &[(&str, &str)]) -> Reply {
    op.post_form_with(
        "/token",
        Some(client),
        headers,
        &[
            ("grant_type", "client_credentials"),
            ("resource", API),
            ("scope", "orders:read"),
        ],
    )
    .await
}

/// A DPoP-bound access token for `key` (RFC 9449 section 5): the provider
/// refuses svc-dpop without a proof, and binds the token to the proof's key.
async fn dpop_token(op: &Provider, key: &DpopKey) -> String {
    assert_oauth_error(
        &grant(op, SVC_DPOP, &[]).await,
        400,
        "invalid_grant",
        "svc-dpop without a DPoP proof",
    );
    let proof = key.proof(None, "POST", &op.url("/token")).await;
    let body = ok_json(
        &grant(op, SVC_DPOP, &[("dpop", &proof)]).await,
        "client_credentials grant with a DPoP proof",
    );
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let token = body["access_token"].as_str().expect("access_token");
    let claims = jwt_part(token, 1);
    assert_eq!(claims["aud"], API, "{claims}");
    assert_eq!(claims["cnf"]["jkt"], key.jkt.as_str(), "{claims}");
    token.to_string()
}

/// `method path` with `Authorization: DPoP token` and, when given, one
/// `DPoP` proof header (RFC 9449 section 7.1).
async fn dpop_call(
    gw: &Gateway,
    method: &str,
    path: &str,
    token: &str,
    proof: Option<&str>,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("DPoP {token}"));
    if let Some(proof) = proof {
        req = req.header("dpop", proof);
    }
    gw.send(&Client::h1(), req.body(empty()).expect("request"))
        .await
}

/// A 401 with exactly one challenge, `DPoP` in the default realm
/// (RFC 9449 section 7.1), naming the accepted algorithms, with `error`
/// when given; the JSON body carries the same code.
fn assert_dpop_refusal(reply: &Reply, error: Option<&str>, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", text(reply));
    let body = reply.gateway_error(401);
    let challenges = reply.header_all("www-authenticate");
    assert_eq!(challenges.len(), 1, "{what}: one challenge: {challenges:?}");
    let params = dpop_challenge(challenges[0], what);
    assert_eq!(
        params.get("realm").map(String::as_str),
        Some("tokengate"),
        "{what}: {params:?}"
    );
    assert_eq!(
        params.get("algs").map(String::as_str),
        Some(DPOP_ALGS),
        "{what}: {params:?}"
    );
    assert_eq!(
        params.get("error").map(String::as_str),
        error,
        "{what}: {params:?}"
    );
    assert_eq!(
        body.get("error").and_then(Value::as_str),
        error,
        "{what}: {body}"
    );
}

/// The parameters of a `DPoP` challenge, which share the auth-param
/// grammar of Bearer's (RFC 9449 section 7.1 builds on RFC 6750 section 3).
fn dpop_challenge(value: &str, what: &str) -> BTreeMap<String, String> {
    let params = value
        .strip_prefix("DPoP ")
        .unwrap_or_else(|| panic!("{what}: challenge is not DPoP: {value:?}"));
    assert!(
        params.starts_with("realm=\"tokengate\""),
        "{what}: realm first: {value:?}"
    );
    common::assert::parse_challenge(&format!("Bearer {params}"))
}

#[test]
fn dpop_bound_token_needs_a_fresh_proof_of_its_key() {
    let Some(op) = Provider::start("dpop_bound_token_needs_a_fresh_proof_of_its_key") else {
        return;
    };
    run(async {
        let key = DpopKey::generate().await;
        let token = dpop_token(&op, &key).await;
        let upstream = Upstream::echo().await;
        let gw = bound_gateway(&op, &upstream, None).await;

        // htu is the request URI without its query (RFC 9449 section 4.2).
        let url = gw.url("/orders/42");
        let proofs = key
            .proofs(
                Some(&token),
                &[
                    ("GET", &url),
                    ("GET", &url),
                    ("GET", &gw.url("/orders/43")),
                    ("POST", &url),
                ],
            )
            .await;
        let [first, second, other_url, other_method] = &proofs[..] else {
            unreachable!("four proofs")
        };

        let reply = dpop_call(&gw, "GET", "/orders/42?expand=1", &token, Some(first)).await;
        assert_forwarded(&reply, "DPoP-bound token with a fresh proof");
        let seen = upstream.last();
        assert_eq!(seen.target(), "/orders/42?expand=1");
        assert_eq!(seen.header("dpop"), None, "the proof is not forwarded");
        assert_upstream_identity(&upstream, Some("svc-dpop"), "svc-dpop", "orders:read");

        // The same proof again: a replayed jti (RFC 9449 section 11.1).
        assert_dpop_refusal(
            &dpop_call(&gw, "GET", "/orders/42?expand=1", &token, Some(first)).await,
            Some("invalid_dpop_proof"),
            "replayed proof",
        );
        // A fresh proof of the same key still works.
        let reply = dpop_call(&gw, "GET", "/orders/42", &token, Some(second)).await;
        assert_forwarded(&reply, "a second fresh proof");

        for (proof, what) in [
            (Some(other_url), "proof for another URL"),
            (Some(other_method), "proof for another method"),
            (None, "DPoP scheme without a proof"),
        ] {
            assert_dpop_refusal(
                &dpop_call(&gw, "GET", "/orders/42", &token, proof.map(String::as_str)).await,
                Some("invalid_dpop_proof"),
                what,
            );
        }

        // A well-formed proof by a key the token is not bound to.
        let thief = DpopKey::generate().await;
        let stolen = thief.proof(Some(&token), "GET", &url).await;
        assert_dpop_refusal(
            &dpop_call(&gw, "GET", "/orders/42", &token, Some(&stolen)).await,
            Some("invalid_token"),
            "proof by another key",
        );

        // The bound token as a bearer token (RFC 9449 section 7.2): a
        // Bearer challenge, the scheme the request used.
        let reply = call(&gw, "GET", "/orders/42", Some(&token)).await;
        assert_invalid_token(&reply, "DPoP-bound token sent as Bearer");
        assert_eq!(reply.header_all("www-authenticate").len(), 1);

        assert_eq!(upstream.hits(), 2, "refusals never reach the upstream");
    });
    op.stop();
}

#[test]
fn certificate_bound_token_needs_its_certificate_in_the_handshake() {
    let Some(op) =
        Provider::start("certificate_bound_token_needs_its_certificate_in_the_handshake")
    else {
        return;
    };
    run(async {
        let cert = ClientCert::self_signed("svc-mtls");
        // Same name, another key: only the thumbprint binds.
        let other = ClientCert::self_signed("svc-mtls");

        assert_oauth_error(
            &grant(&op, SVC_MTLS, &[]).await,
            400,
            "invalid_grant",
            "svc-mtls without a client certificate",
        );
        let body = ok_json(
            &grant(&op, SVC_MTLS, &[("client-cert", &cert.header_value())]).await,
            "client_credentials grant with a client certificate",
        );
        // A certificate-bound token is still a Bearer token (RFC 8705 section 3).
        assert_eq!(body["token_type"], "Bearer", "{body}");
        let token = body["access_token"].as_str().expect("access_token");
        let claims = jwt_part(token, 1);
        assert_eq!(claims["aud"], API, "{claims}");
        assert_eq!(
            claims["cnf"]["x5t#S256"],
            cert.thumbprint().as_str(),
            "the provider's thumbprint of the certificate: {claims}"
        );

        let pki = Pki::generate();
        let upstream = Upstream::echo().await;
        let gw = bound_gateway(&op, &upstream, Some(&pki)).await;
        let orders = || authorized("GET", "/orders/42", token);
        let reply = fetch_tls(&gw, tls_client(&pki, Some(&cert)), orders()).await;
        assert_forwarded(&reply, "certificate-bound token over its certificate");
        assert_upstream_identity(&upstream, Some("svc-mtls"), "svc-mtls", "orders:read");

        assert_invalid_token(
            &fetch_tls(&gw, tls_client(&pki, Some(&other)), orders()).await,
            "another client certificate",
        );
        assert_invalid_token(
            &fetch_tls(&gw, tls_client(&pki, None), orders()).await,
            "no client certificate",
        );
        // The certificate alone authenticates nothing.
        let reply = fetch_tls(
            &gw,
            tls_client(&pki, Some(&cert)),
            common::request("GET", "/orders/42"),
        )
        .await;
        let body = reply.gateway_error(401);
        assert!(
            body.get("error").is_none(),
            "no token, no error code: {body}"
        );

        assert_eq!(upstream.hits(), 1, "refusals never reach the upstream");
    });
    op.stop();
}

#[test]
fn unbound_token_on_a_dpop_route_gets_a_dpop_challenge() {
    let Some(op) = Provider::start("unbound_token_on_a_dpop_route_gets_a_dpop_challenge") else {
        return;
    };
    run(async {
        let bearer = op.client_credentials(API, "orders:read").await;
        assert!(
            jwt_part(&bearer, 1).get("cnf").is_none(),
            "an unbound token"
        );
        let key = DpopKey::generate().await;
        let token = dpop_token(&op, &key).await;
        let upstream = Upstream::echo().await;
        let gw = bound_gateway(&op, &upstream, None).await;

        // Where bearer tokens are allowed, it is accepted ...
        assert_forwarded(
            &call(&gw, "GET", "/orders/1", Some(&bearer)).await,
            "unbound token on a route that allows bearer tokens",
        );
        // ... where only DPoP is, every refusal is a DPoP challenge.
        assert_dpop_refusal(
            &call(&gw, "GET", "/dpop/1", Some(&bearer)).await,
            Some("invalid_token"),
            "unbound token on a dpop route",
        );
        assert_dpop_refusal(
            &call(&gw, "GET", "/dpop/1", None).await,
            None,
            "no credentials on a dpop route",
        );

        // A DPoP-bound token with its proof passes the same route.
        let proof = key.proof(Some(&token), "GET", &gw.url("/dpop/1")).await;
        assert_forwarded(
            &dpop_call(&gw, "GET", "/dpop/1", &token, Some(&proof)).await,
            "DPoP-bound token on a dpop route",
        );
        assert_eq!(upstream.hits(), 2, "refusals never reach the upstream");
    });
    op.stop();
}
