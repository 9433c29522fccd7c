//! The challenges of a gateway with `[dpop]` (extensions section 9): a
//! request without a credential is offered what its route accepts (both
//! schemes on `any` and `bound`, Bearer first; DPoP alone on `dpop`; Bearer
//! alone on `mtls`); every other refusal carries one challenge in the
//! scheme the request used, and DPoP on a `dpop` route.

use super::*;
use common::mint::now;

/// The exact challenges offered to a request without a credential.
fn offered(reply: &Reply, what: &str) -> Vec<String> {
    assert_eq!(reply.status, 401, "{what}: {:?}", text(reply));
    let body = reply.gateway_error(401);
    assert!(body.get("error").is_none(), "{what}: {body}");
    reply
        .header_all("www-authenticate")
        .into_iter()
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn request_without_credential_is_offered_what_its_route_accepts() {
    let s = Bound::with_dpop().await;
    let bearer = "Bearer realm=\"tokengate\"".to_string();
    let dpop = format!("DPoP realm=\"tokengate\", algs=\"{ALGS}\"");
    let cases = [
        ("/any/x", vec![bearer.clone(), dpop.clone()]),
        ("/bound/x", vec![bearer.clone(), dpop.clone()]),
        ("/admin/x", vec![bearer.clone(), dpop.clone()]),
        ("/dpop/x", vec![dpop.clone()]),
        ("/mtls/x", vec![bearer.clone()]),
    ];
    for (path, want) in cases {
        assert_eq!(offered(&s.get(path, &[]).await, path), want, "{path}");
        // Another scheme is no credential: the same offer.
        let basic = s.get(path, &[("authorization", "Basic YTpi")]).await;
        assert_eq!(offered(&basic, path), want, "{path} with Basic");
    }
    assert_eq!(s.upstream.hits(), 0);
}

#[tokio::test]
async fn empty_dpop_table_offers_the_default_algorithms() {
    let s = Bound::start(Options {
        dpop: Some("[dpop]\n".to_string()),
        ..Options::default()
    })
    .await;
    let reply = s.get("/dpop/x", &[]).await;
    assert_eq!(
        offered(&reply, "no credential"),
        ["DPoP realm=\"tokengate\", algs=\"ES256 EdDSA RS256 PS256\"".to_string()]
    );
    // The defaults of max_age_s and leeway_s: 300 s and 5 s.
    let key = DpopKey::es256();
    let token = s.dpop_token(&key);
    let htu = s.url("/dpop/x");
    let inside = key
        .proof("GET", &htu, &token)
        .claim("iat", json!(now() - 290));
    assert_ok(
        &s.dpop("/dpop/x", &token, &inside.encode()).await,
        "290 s old",
    );
    let outside = key
        .proof("GET", &htu, &token)
        .claim("iat", json!(now() - 320));
    let reply = s.dpop("/dpop/x", &token, &outside.encode()).await;
    assert_eq!(reply.status, 401, "320 s old");
    let params = parse_scheme_challenge(reply.header("www-authenticate").expect("challenge")).1;
    assert_eq!(params["error"], "invalid_dpop_proof");
}

#[tokio::test]
async fn challenges_name_the_configured_realm() {
    let s = Bound::start(Options::dpop().server("realm = \"orders\"")).await;
    let reply = s.get("/any/x", &[]).await;
    assert_eq!(
        offered(&reply, "no credential"),
        [
            "Bearer realm=\"orders\"".to_string(),
            format!("DPoP realm=\"orders\", algs=\"{ALGS}\""),
        ]
    );
    let key = DpopKey::es256();
    let token = s.dpop_token(&key);
    let auth = format!("DPoP {token}");
    let reply = s.get("/any/x", &[("authorization", &auth)]).await;
    let field = reply.header("www-authenticate").expect("challenge");
    assert!(
        field.starts_with("DPoP realm=\"orders\", error=\"invalid_dpop_proof\""),
        "{field}"
    );
}

#[tokio::test]
async fn other_refusals_answer_in_the_scheme_the_request_used() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::es256();
    let junk = "not.a.token";
    let unbound = s.token(json!({}));
    let bound = s.dpop_token(&key);

    // Bearer requests on any, bound and mtls routes: Bearer.
    for path in ["/any/x", "/bound/x", "/mtls/x"] {
        assert_invalid(&s.bearer(path, junk).await, "Bearer", path);
    }
    assert_invalid(
        &s.bearer("/bound/x", &unbound).await,
        "Bearer",
        "unbound on bound",
    );
    assert_invalid(
        &s.bearer("/mtls/x", &unbound).await,
        "Bearer",
        "unbound on mtls",
    );
    // DPoP requests: DPoP, whatever the route.
    for path in ["/any/x", "/bound/x", "/mtls/x", "/dpop/x"] {
        let reply = s.dpop_fresh(&key, path, junk).await;
        assert_invalid(&reply, "DPoP", &format!("junk token via DPoP on {path}"));
    }
    let reply = s.dpop_fresh(&key, "/mtls/x", &bound).await;
    assert_invalid(&reply, "DPoP", "DPoP-bound token on an mtls route");
    // A dpop route answers in DPoP whatever the request used.
    assert_invalid(
        &s.bearer("/dpop/x", junk).await,
        "DPoP",
        "junk bearer on dpop",
    );
    assert_invalid(
        &s.bearer("/dpop/x", &unbound).await,
        "DPoP",
        "unbound on dpop",
    );

    // A malformed credential is a 400 with one challenge in its scheme.
    let reply = s.get("/any/x", &[("authorization", "DPoP a b")]).await;
    assert_challenge(
        &reply,
        400,
        "DPoP",
        Some("invalid_request"),
        "malformed DPoP",
    );
    let reply = s.get("/any/x", &[("authorization", "Bearer a b")]).await;
    assert_challenge(
        &reply,
        400,
        "Bearer",
        Some("invalid_request"),
        "malformed Bearer",
    );
    let reply = s.get("/dpop/x", &[("authorization", "Bearer a b")]).await;
    assert_challenge(
        &reply,
        400,
        "DPoP",
        Some("invalid_request"),
        "malformed on dpop",
    );
    assert_eq!(s.upstream.hits(), 0);
}

#[tokio::test]
async fn insufficient_scope_of_a_dpop_request_uses_the_dpop_challenge() {
    let s = Bound::with_dpop().await;
    let key = DpopKey::eddsa();
    let token = s.dpop_token(&key);
    let reply = s.dpop_fresh(&key, "/admin/x", &token).await;
    let params = assert_challenge(&reply, 403, "DPoP", Some("insufficient_scope"), "DPoP");
    assert_eq!(params.get("scope").map(String::as_str), Some("admin"));

    let unbound = s.token(json!({}));
    let reply = s.bearer("/admin/x", &unbound).await;
    let params = assert_challenge(&reply, 403, "Bearer", Some("insufficient_scope"), "Bearer");
    assert_eq!(params.get("scope").map(String::as_str), Some("admin"));
    assert_eq!(s.upstream.hits(), 0);

    let admin = s.token(json!({"scope": "admin", "cnf": cnf_jkt(&key)}));
    assert_ok(
        &s.dpop_fresh(&key, "/admin/x", &admin).await,
        "with the scope",
    );
}
